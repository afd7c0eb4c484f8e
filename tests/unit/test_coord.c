/* test_coord.c - the coordinator's logic (common/coord*.c) against a real
 * store in a temporary directory, with computations built by protobuf-c
 * (kingdom_fixture.h → dy_details_build):
 *   names and headers (PROTOCOL.md §1, §3.7), the §6.1 header checks and the
 *   receive table as the gateway sees it (accept, refusals, commit: recorded,
 *   duplicate, conflict, advance, ended, bad body), GetComputationStage,
 *   FulfillRequisition (§3.8: owner, nonce, fingerprint, nonce hash, HMSS
 *   assignment and fields, body sizes, §6.3 replay), the send plan and the
 *   §6.2 decision and classification tables, the admin JSON views, and
 *   dy_blob_adopt (blob.h).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "audit.h"
#include "blob.h"
#include "control.pb-c.h"
#include "coord.h"
#include "coord_admin.h"
#include "coord_send.h"
#include "details.h"
#include "duchy.pb-c.h"
#include "hmss.pb-c.h"
#include "kingdom_fixture.h"
#include "stages.h"
#include "store.h"
#include "wire.h"

#define COMP "AAAAAAAAAAE"
#define REQ_EVEN "AAAAAAAAAAI" /* 2: HMSS FNA */
#define REQ_ODD "AAAAAAAAAAM"  /* 3: HMSS SNA */

typedef struct {
    char dir[256];
    char spool[300];
    dy_store_t *st;
    dy_blobdir_t *blobs;
    dy_coord_ctx_t ctx;
    int nspool;
} s_fix_t;

static int s_setup(void **state)
{
    s_fix_t *f = calloc(1, sizeof(*f));
    snprintf(f->dir, sizeof(f->dir), "/tmp/test_coord.XXXXXX");
    if (!mkdtemp(f->dir))
        return -1;
    char path[400];
    snprintf(path, sizeof(path), "%s/duchy.db", f->dir);
    dy_store_config_t sc = {.path = path};
    if (dy_store_open(&sc, &f->st) < 0)
        return -1;
    snprintf(path, sizeof(path), "%s/blobs", f->dir);
    mkdir(path, 0700);
    snprintf(f->spool, sizeof(f->spool), "%s/spool", f->dir);
    mkdir(f->spool, 0700);
    *state = f;
    return 0;
}

static void s_ctx(s_fix_t *f, const char *me)
{
    char path[400];
    snprintf(path, sizeof(path), "%s/blobs", f->dir);
    dy_blobdir_destroy(&f->blobs);
    f->blobs = dy_blobdir_new(path, me);
    assert_non_null(f->blobs);
    f->ctx = (dy_coord_ctx_t){.my_id = me,
                              .aggregator_id = "aggregator",
                              .first_na_id = "worker1",
                              .second_na_id = "worker2",
                              .store = f->st,
                              .blobs = f->blobs,
                              .max_upload = 1 << 20,
                              .actor = "test"};
}

static int s_teardown(void **state)
{
    s_fix_t *f = *state;
    dy_blobdir_destroy(&f->blobs);
    dy_store_destroy(&f->st);
    char cmd[400];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
    if (system(cmd) != 0)
        fprintf(stderr, "cleanup of %s failed\n", f->dir);
    free(f);
    return 0;
}

/* The fixture's computation with generated requisition ids (even, odd) and
 * requisition spec hashes, as ComputationDetails for `me`. */
static void s_details(fx_t *fx, const char *me, dy_buf_t *det)
{
    dy_buf_t k = {0};
    fx_build(fx, &k);
    FX_SYS(Computation) *c =
        wfa__measurement__system__v1alpha__computation__unpack(NULL, k.len, k.data);
    assert_non_null(c);
    assert_true(c->n_requisitions >= 2);
    static const char *ids[2] = {REQ_EVEN, REQ_ODD};
    char names[2][128];
    uint8_t hashes[2][32];
    char *old_names[2];
    ProtobufCBinaryData old_hash[2];
    for (int i = 0; i < 2; i++) {
        snprintf(names[i], sizeof(names[i]), "computations/%s/requisitions/%s", fx->id, ids[i]);
        memset(hashes[i], 0xa0 + i, 32);
        old_names[i] = c->requisitions[i]->name;
        old_hash[i] = c->requisitions[i]->requisition_spec_hash;
        c->requisitions[i]->name = names[i];
        c->requisitions[i]->requisition_spec_hash = (ProtobufCBinaryData){32, hashes[i]};
    }
    dy_buf_t k2 = {0};
    size_t n = wfa__measurement__system__v1alpha__computation__get_packed_size(c);
    wfa__measurement__system__v1alpha__computation__pack(c, dy_buf_extend(&k2, n));
    for (int i = 0; i < 2; i++) {
        c->requisitions[i]->name = old_names[i];
        c->requisitions[i]->requisition_spec_hash = old_hash[i];
    }
    wfa__measurement__system__v1alpha__computation__free_unpacked(c, NULL);
    char err[256] = "";
    int rc = dy_details_build(k2.data, k2.len, me, "aggregator", "worker1", "worker2", det, err,
                              sizeof(err));
    if (rc < 0)
        fail_msg("dy_details_build: %s", err);
    dy_buf_free(&k);
    dy_buf_free(&k2);
}

/* Creates the computation for `me` at `stage`; returns the parsed details. */
static void s_create(s_fix_t *f, fx_t *fx, const char *me, int stage, dy_details_t *d)
{
    dy_buf_t det = {0};
    s_details(fx, me, &det);
    char err[256];
    assert_int_equal(dy_details_parse(det.data, det.len, me, d, err, sizeof(err)), 0);
    dy_computation_new_t cn = {.id = fx->id,
                               .protocol = d->protocol,
                               .role = d->role,
                               .stage = stage,
                               .kind = DY_STAGE_WAIT,
                               .kingdom_state = 2,
                               .details = det.data,
                               .details_len = det.len};
    assert_int_equal(dy_store_create(f->st, &cn), 0);
    dy_buf_free(&det);
    s_ctx(f, me);
}

static void s_header(int protocol, int description, const char *comp, dy_buf_t *out)
{
    dy_buf_free(out);
    Wfa__Measurement__System__V1alpha__AdvanceComputationRequest req =
        WFA__MEASUREMENT__SYSTEM__V1ALPHA__ADVANCE_COMPUTATION_REQUEST__INIT;
    Wfa__Measurement__System__V1alpha__AdvanceComputationRequest__Header h =
        WFA__MEASUREMENT__SYSTEM__V1ALPHA__ADVANCE_COMPUTATION_REQUEST__HEADER__INIT;
    Wfa__Measurement__System__V1alpha__LiquidLegionsV2 ll =
        WFA__MEASUREMENT__SYSTEM__V1ALPHA__LIQUID_LEGIONS_V2__INIT;
    Wfa__Measurement__System__V1alpha__HonestMajorityShareShuffle hm =
        WFA__MEASUREMENT__SYSTEM__V1ALPHA__HONEST_MAJORITY_SHARE_SHUFFLE__INIT;
    char name[64];
    snprintf(name, sizeof(name), "computations/%s", comp);
    h.name = name;
    if (protocol == DY_PROTO_LLV2) {
        ll.description = description;
        h.protocol_case =
            WFA__MEASUREMENT__SYSTEM__V1ALPHA__ADVANCE_COMPUTATION_REQUEST__HEADER__PROTOCOL_LIQUID_LEGIONS_V2;
        h.liquid_legions_v2 = &ll;
    } else if (protocol == DY_PROTO_HMSS) {
        hm.description = description;
        h.protocol_case =
            WFA__MEASUREMENT__SYSTEM__V1ALPHA__ADVANCE_COMPUTATION_REQUEST__HEADER__PROTOCOL_HONEST_MAJORITY_SHARE_SHUFFLE;
        h.honest_majority_share_shuffle = &hm;
    }
    req.payload_case =
        WFA__MEASUREMENT__SYSTEM__V1ALPHA__ADVANCE_COMPUTATION_REQUEST__PAYLOAD_HEADER;
    req.header = &h;
    size_t n = protobuf_c_message_get_packed_size(&req.base);
    protobuf_c_message_pack(&req.base, dy_buf_extend(out, n));
}

/* Writes a spool file of n bytes of `fill`; returns its path. */
static const char *s_spool(s_fix_t *f, size_t n, uint8_t fill, uint8_t sha[32])
{
    static char path[400];
    snprintf(path, sizeof(path), "%s/g-%d", f->spool, ++f->nspool);
    uint8_t *b = malloc(n ? n : 1);
    memset(b, fill, n);
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite(b, 1, n, fp), n);
    fclose(fp);
    dy_wire_sha256(b, n, sha);
    free(b);
    return path;
}

static bool s_exists(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0;
}

static void s_expect(const dy_coord_reply_t *r, int code, int reason)
{
    if (r->code != code || r->reason != reason)
        fail_msg("expected %s/%d, got %s/%d \"%s\"", dy_wire_status_name(code), reason,
                 dy_wire_status_name(r->code), r->reason, r->message);
}

/* ---- names ------------------------------------------------------------------------------- */

static void test_names(void **state)
{
    (void)state;
    assert_true(dy_coord_generated_id_ok(COMP));
    uint64_t v = 0;
    assert_int_equal(dy_ext_id_decode(REQ_ODD, &v), 0);
    assert_int_equal(v, 3);
    assert_false(dy_coord_generated_id_ok("AAAAAAAAAAA")); /* zero */
    assert_false(dy_coord_generated_id_ok("AAAAAAAAAAF")); /* low bits set */
    assert_false(dy_coord_generated_id_ok("AAAAAAAAAE"));  /* short */
    assert_false(dy_coord_generated_id_ok("AAAAAAAAA.E"));
    assert_true(dy_coord_duchy_id_ok("worker1"));
    assert_false(dy_coord_duchy_id_ok("Worker1"));
    assert_false(dy_coord_duchy_id_ok("worker-"));
    char c[DY_COORD_ID_MAX], d[DY_COORD_ID_MAX];
    assert_int_equal(dy_coord_parse_computation_name("computations/" COMP, c), 0);
    assert_string_equal(c, COMP);
    assert_int_equal(dy_coord_parse_computation_name("computations/" COMP "/x", c), -EINVAL);
    assert_int_equal(dy_coord_parse_computation_name("computation/" COMP, c), -EINVAL);
    assert_int_equal(dy_coord_parse_computation_name("computations/", c), -EINVAL);
    assert_int_equal(dy_coord_parse_stage_name(
                         "computations/" COMP "/participants/worker2/computationStage", c, d),
                     0);
    assert_string_equal(d, "worker2");
    assert_int_equal(dy_coord_parse_stage_name("computations/" COMP "/participants/worker2", c, d),
                     -EINVAL);
    assert_int_equal(
        dy_coord_parse_requisition_name("dataProviders/edp1/requisitions/" REQ_ODD, c, d), 0);
    assert_string_equal(c, "edp1");
    assert_string_equal(d, REQ_ODD);
    assert_int_equal(dy_coord_parse_requisition_name("dataProviders//requisitions/" REQ_ODD, c, d),
                     -EINVAL);
    assert_string_equal(dy_coord_peer_duchy("duchies/worker1"), "worker1");
    assert_null(dy_coord_peer_duchy("dataProviders/worker1"));
    assert_null(dy_coord_peer_duchy("duchies/"));
}

static void test_decode_advance(void **state)
{
    (void)state;
    dy_buf_t b = {0};
    dy_coord_advance_hdr_t h;
    dy_coord_reply_t r = {0};
    s_header(DY_PROTO_LLV2, 2, COMP, &b);
    assert_int_equal(dy_coord_decode_advance(b.data, b.len, &h, &r), 0);
    assert_string_equal(h.computation, COMP);
    assert_int_equal(h.protocol, DY_PROTO_LLV2);
    assert_int_equal(h.description, 2);
    s_header(DY_PROTO_LLV2, 0, COMP, &b); /* unspecified description */
    assert_int_equal(dy_coord_decode_advance(b.data, b.len, &h, &r), -1);
    s_expect(&r, DY_WIRE_STATUS_INVALID_ARGUMENT, 0);
    s_header(DY_PROTO_LLV2, 5, COMP, &b); /* out of range */
    assert_int_equal(dy_coord_decode_advance(b.data, b.len, &h, &r), -1);
    s_header(0, 0, COMP, &b); /* no protocol */
    assert_int_equal(dy_coord_decode_advance(b.data, b.len, &h, &r), -1);
    s_header(DY_PROTO_LLV2, 1, "nope", &b);
    assert_int_equal(dy_coord_decode_advance(b.data, b.len, &h, &r), -1);
    const uint8_t junk[] = {0xff, 0xff, 0xff};
    assert_int_equal(dy_coord_decode_advance(junk, sizeof(junk), &h, &r), -1);
    s_expect(&r, DY_WIRE_STATUS_INVALID_ARGUMENT, 0);
    dy_coord_reply_clear(&r);
    dy_buf_free(&b);
}

/* ---- AdvanceComputation at the aggregator (two slots) ---------------------------------------- */

static void test_advance_setup_inputs(void **state)
{
    s_fix_t *f = *state;
    fx_t fx;
    fx_default(&fx, FX_LLV2);
    fx.keys = true;
    dy_details_t d;
    s_create(f, &fx, "aggregator", 5 /* WAIT_SETUP_PHASE_INPUTS */, &d);
    assert_int_equal(d.role, DY_ROLE_AGG);
    dy_buf_t b = {0};
    dy_coord_reply_t r = {0};
    s_header(DY_PROTO_LLV2, 1, COMP, &b);

    /* Header: each NA accepted; anyone else refused before credit. */
    dy_coord_advance_header(&f->ctx, "duchies/worker1", b.data, b.len, &r);
    s_expect(&r, 0, 0);
    assert_true(r.accept_upload);
    dy_coord_advance_header(&f->ctx, "duchies/stranger", b.data, b.len, &r);
    s_expect(&r, DY_WIRE_STATUS_PERMISSION_DENIED, 0);
    dy_coord_advance_header(&f->ctx, "dataProviders/worker1", b.data, b.len, &r);
    s_expect(&r, DY_WIRE_STATUS_PERMISSION_DENIED, 0);
    dy_coord_advance_header(&f->ctx, "duchies/aggregator", b.data, b.len, &r);
    s_expect(&r, DY_WIRE_STATUS_PERMISSION_DENIED, 0);
    /* Wrong protocol for the computation; a description that is not the AG's. */
    dy_buf_t hb = {0};
    s_header(DY_PROTO_HMSS, 3, COMP, &hb);
    dy_coord_advance_header(&f->ctx, "duchies/worker1", hb.data, hb.len, &r);
    s_expect(&r, DY_WIRE_STATUS_INVALID_ARGUMENT, 0);
    s_header(DY_PROTO_LLV2, 1, "AAAAAAAAAAQ", &hb); /* well-formed, absent */
    dy_coord_advance_header(&f->ctx, "duchies/worker1", hb.data, hb.len, &r);
    s_expect(&r, DY_WIRE_STATUS_NOT_FOUND, 0);

    /* Commit: bad shape first (nothing stored, spool removed). */
    uint8_t sha[32];
    const char *p = s_spool(f, 100, 1, sha);
    dy_coord_advance_commit(&f->ctx, "duchies/worker1", b.data, b.len, p, 100, sha, &r);
    s_expect(&r, DY_WIRE_STATUS_INVALID_ARGUMENT, 0);
    assert_false(s_exists(p));
    dy_blob_rec_t rec;
    assert_int_equal(dy_store_get_blob(f->st, COMP, 5, "worker1", &rec), -ENOENT);

    p = s_spool(f, 780, 1, sha);
    dy_coord_advance_commit(&f->ctx, "duchies/worker1", b.data, b.len, p, 780, sha, &r);
    s_expect(&r, 0, 0);
    assert_false(s_exists(p));
    assert_int_equal(dy_store_get_blob(f->st, COMP, 5, "worker1", &rec), 0);
    assert_memory_equal(rec.blob.sha256, sha, 32);
    assert_int_equal(dy_blob_verify(&rec.blob), 0);
    /* Replay of the same bytes: OK; other bytes: INPUT_CONFLICT. */
    p = s_spool(f, 780, 1, sha);
    dy_coord_advance_commit(&f->ctx, "duchies/worker1", b.data, b.len, p, 780, sha, &r);
    s_expect(&r, 0, 0);
    p = s_spool(f, 780, 2, sha);
    dy_coord_advance_commit(&f->ctx, "duchies/worker1", b.data, b.len, p, 780, sha, &r);
    s_expect(&r, DY_WIRE_STATUS_FAILED_PRECONDITION, DY_WIRE_REASON_INPUT_CONFLICT);
    assert_false(s_exists(p));
    dy_computation_t row = {0};
    assert_int_equal(dy_store_get(f->st, COMP, &row), 0);
    assert_int_equal(row.stage, 5);
    dy_computation_clear(&row);
    /* The second NA fills the last slot: SETUP_PHASE, claimable. */
    p = s_spool(f, 390, 3, sha);
    dy_coord_advance_commit(&f->ctx, "duchies/worker2", b.data, b.len, p, 390, sha, &r);
    s_expect(&r, 0, 0);
    assert_int_equal(dy_store_get(f->st, COMP, &row), 0);
    assert_int_equal(row.stage, 6);
    assert_true(row.claimable);
    dy_computation_clear(&row);
    /* Past the awaited stage: the same bytes are a no-op OK; the header too. */
    p = s_spool(f, 390, 3, sha);
    dy_coord_advance_commit(&f->ctx, "duchies/worker2", b.data, b.len, p, 390, sha, &r);
    s_expect(&r, 0, 0);
    dy_coord_advance_header(&f->ctx, "duchies/worker2", b.data, b.len, &r);
    s_expect(&r, 0, 0);
    /* Past it, a malformed body cannot be the input recorded there: INPUT_CONFLICT (§6.1
     * decides by the local stage first), nothing stored, spool removed. */
    p = s_spool(f, 100, 4, sha);
    dy_coord_advance_commit(&f->ctx, "duchies/worker2", b.data, b.len, p, 100, sha, &r);
    s_expect(&r, DY_WIRE_STATUS_FAILED_PRECONDITION, DY_WIRE_REASON_INPUT_CONFLICT);
    assert_false(s_exists(p));
    /* Each commit left one audit row, and the chain verifies. */
    int64_t bad = -1, rows = 0;
    assert_int_equal(dy_audit_verify(f->st, &bad, &rows), 0);
    assert_int_equal(rows, 4);

    /* Ended FAILED: COMPUTATION_ENDED at once. */
    bool changed = false;
    assert_int_equal(dy_store_end(f->st, COMP, NULL, 13, DY_END_FAILED, "test", &changed), 0);
    dy_coord_advance_header(&f->ctx, "duchies/worker1", b.data, b.len, &r);
    s_expect(&r, DY_WIRE_STATUS_FAILED_PRECONDITION, DY_WIRE_REASON_COMPUTATION_ENDED);
    /* ... also for a malformed body that reached the commit (the stage rule comes first). */
    p = s_spool(f, 100, 5, sha);
    dy_coord_advance_commit(&f->ctx, "duchies/worker1", b.data, b.len, p, 100, sha, &r);
    s_expect(&r, DY_WIRE_STATUS_FAILED_PRECONDITION, DY_WIRE_REASON_COMPUTATION_ENDED);
    assert_false(s_exists(p));

    dy_coord_reply_clear(&r);
    dy_buf_free(&b);
    dy_buf_free(&hb);
    dy_details_free(&d);
}

/* ---- execution inputs: the ring predecessor ---------------------------------------------------
 */

static void test_advance_ring(void **state)
{
    s_fix_t *f = *state;
    fx_t fx;
    fx_default(&fx, FX_LLV2);
    fx.keys = true;
    /* Learn the ring from the aggregator's view, then act as NA1. */
    dy_buf_t det = {0};
    s_details(&fx, "aggregator", &det);
    dy_details_t da;
    char err[256];
    assert_int_equal(dy_details_parse(det.data, det.len, "aggregator", &da, err, sizeof(err)), 0);
    assert_true(da.has_ring);
    char na1[64], na2[64];
    snprintf(na1, sizeof(na1), "%s", da.ring[0]);
    snprintf(na2, sizeof(na2), "%s", da.ring[1]);
    dy_details_free(&da);
    dy_buf_free(&det);

    dy_details_t d;
    s_create(f, &fx, na1, 4 /* WAIT_TO_START: before the awaited stage */, &d);
    dy_buf_t b = {0};
    dy_coord_reply_t r = {0};
    s_header(DY_PROTO_LLV2, 2 /* EXECUTION_PHASE_ONE_INPUT */, COMP, &b);
    dy_coord_advance_header(&f->ctx, "duchies/aggregator", b.data, b.len, &r);
    s_expect(&r, DY_WIRE_STATUS_FAILED_PRECONDITION, DY_WIRE_REASON_STAGE_NOT_READY);
    char peer[80];
    snprintf(peer, sizeof(peer), "duchies/%s", na2);
    dy_coord_advance_header(&f->ctx, peer, b.data, b.len, &r);
    s_expect(&r, DY_WIRE_STATUS_PERMISSION_DENIED, 0);
    /* SETUP_PHASE_INPUT is not an NA's input. */
    dy_buf_t sb = {0};
    s_header(DY_PROTO_LLV2, 1, COMP, &sb);
    dy_coord_advance_header(&f->ctx, "duchies/aggregator", sb.data, sb.len, &r);
    s_expect(&r, DY_WIRE_STATUS_INVALID_ARGUMENT, 0);

    /* A STAGE_NOT_READY commit stores nothing and drops the spool file. */
    uint8_t sha[32];
    const char *p = s_spool(f, 390, 7, sha);
    dy_coord_advance_commit(&f->ctx, "duchies/aggregator", b.data, b.len, p, 390, sha, &r);
    s_expect(&r, DY_WIRE_STATUS_FAILED_PRECONDITION, DY_WIRE_REASON_STAGE_NOT_READY);
    assert_false(s_exists(p));
    dy_blob_rec_t rec;
    assert_int_equal(dy_store_get_blob(f->st, COMP, 7, "aggregator", &rec), -ENOENT);

    /* In the awaited stage the predecessor's upload advances to EXECUTION_PHASE_ONE. */
    bool moved = false;
    assert_int_equal(dy_store_advance(f->st, COMP, 4, 7, DY_STAGE_WAIT, &moved), 0);
    assert_true(moved);
    p = s_spool(f, 390, 7, sha);
    dy_coord_advance_commit(&f->ctx, "duchies/aggregator", b.data, b.len, p, 390, sha, &r);
    s_expect(&r, 0, 0);
    dy_computation_t row = {0};
    assert_int_equal(dy_store_get(f->st, COMP, &row), 0);
    assert_int_equal(row.stage, 8);
    dy_computation_clear(&row);

    /* GetComputationStage: this duchy's stage with the etag; another duchy's name
     * is INVALID_ARGUMENT; an absent computation NOT_FOUND. */
    Wfa__Measurement__System__V1alpha__GetComputationStageRequest gq =
        WFA__MEASUREMENT__SYSTEM__V1ALPHA__GET_COMPUTATION_STAGE_REQUEST__INIT;
    char name[160];
    snprintf(name, sizeof(name), "computations/%s/participants/%s/computationStage", COMP, na1);
    gq.name = name;
    uint8_t buf[256];
    size_t n = protobuf_c_message_pack(&gq.base, buf);
    dy_coord_get_stage(&f->ctx, "duchies/aggregator", buf, n, &r);
    s_expect(&r, 0, 0);
    Wfa__Measurement__System__V1alpha__ComputationStage *cs =
        wfa__measurement__system__v1alpha__computation_stage__unpack(NULL, r.response_len,
                                                                     r.response);
    assert_non_null(cs);
    assert_int_equal(
        cs->stage_case,
        WFA__MEASUREMENT__SYSTEM__V1ALPHA__COMPUTATION_STAGE__STAGE_LIQUID_LEGIONS_V2_STAGE);
    assert_int_equal(cs->liquid_legions_v2_stage->stage, 8);
    assert_string_equal(cs->name, name);
    assert_true(cs->etag[0] != '\0');
    wfa__measurement__system__v1alpha__computation_stage__free_unpacked(cs, NULL);
    snprintf(name, sizeof(name), "computations/%s/participants/%s/computationStage", COMP, na2);
    n = protobuf_c_message_pack(&gq.base, buf);
    dy_coord_get_stage(&f->ctx, "duchies/aggregator", buf, n, &r);
    s_expect(&r, DY_WIRE_STATUS_INVALID_ARGUMENT, 0);
    snprintf(name, sizeof(name), "computations/AAAAAAAAAAQ/participants/%s/computationStage", na1);
    n = protobuf_c_message_pack(&gq.base, buf);
    dy_coord_get_stage(&f->ctx, "duchies/aggregator", buf, n, &r);
    s_expect(&r, DY_WIRE_STATUS_NOT_FOUND, 0);

    /* Admin: the computation with its stage name. */
    dy_buf_t j = {0};
    assert_int_equal(dy_coord_admin_computations(&f->ctx, &j), 0);
    dy_buf_append(&j, "", 1);
    assert_non_null(strstr((char *)j.data, "\"stage\":\"EXECUTION_PHASE_ONE\""));
    assert_non_null(strstr((char *)j.data, "\"id\":\"" COMP "\""));
    assert_non_null(strstr((char *)j.data, "\"role\":\"NON_AGGREGATOR\""));
    dy_buf_free(&j);

    dy_coord_reply_clear(&r);
    dy_buf_free(&b);
    dy_buf_free(&sb);
    dy_details_free(&d);
}

static void test_ring_unknown(void **state)
{
    s_fix_t *f = *state;
    fx_t fx;
    fx_default(&fx, FX_LLV2);
    fx.keys = false; /* no keys yet: no ring */
    dy_details_t d;
    s_create(f, &fx, "aggregator", 7, &d);
    dy_buf_t b = {0};
    dy_coord_reply_t r = {0};
    s_header(DY_PROTO_LLV2, 2, COMP, &b);
    dy_coord_advance_header(&f->ctx, "duchies/worker2", b.data, b.len, &r);
    s_expect(&r, DY_WIRE_STATUS_FAILED_PRECONDITION, DY_WIRE_REASON_STAGE_NOT_READY);
    dy_coord_reply_clear(&r);
    dy_buf_free(&b);
    dy_details_free(&d);
}

/* ---- HMSS receive rules and bodies -------------------------------------------------------------
 */

static void s_shuffle_input(size_t seed_len, dy_buf_t *out)
{
    uint8_t seed[64];
    memset(seed, 9, sizeof(seed));
    Wfa__Measurement__Internal__Duchy__Protocol__ShufflePhaseInput m =
        WFA__MEASUREMENT__INTERNAL__DUCHY__PROTOCOL__SHUFFLE_PHASE_INPUT__INIT;
    m.peer_random_seed = (ProtobufCBinaryData){seed_len, seed};
    size_t n = protobuf_c_message_get_packed_size(&m.base);
    protobuf_c_message_pack(&m.base, dy_buf_extend(out, n));
}

static void test_hmss_shuffle_input(void **state)
{
    s_fix_t *f = *state;
    fx_t fx;
    fx_default(&fx, FX_HMSS);
    fx.keys = true;
    dy_details_t d;
    s_create(f, &fx, "worker2", 3 /* WAIT_ON_SHUFFLE_INPUT_PHASE_ONE */, &d);
    assert_int_equal(d.role, DY_ROLE_SNA);
    dy_buf_t b = {0};
    dy_coord_reply_t r = {0};
    s_header(DY_PROTO_HMSS, 1, COMP, &b);
    dy_coord_advance_header(&f->ctx, "duchies/aggregator", b.data, b.len, &r);
    s_expect(&r, DY_WIRE_STATUS_PERMISSION_DENIED, 0);
    dy_coord_advance_header(&f->ctx, "duchies/worker1", b.data, b.len, &r);
    s_expect(&r, 0, 0);
    /* A seed of the wrong length is refused at commit; a good one advances. */
    char why[128];
    dy_buf_t body = {0};
    s_shuffle_input(47, &body);
    assert_int_equal(dy_coord_check_body(DY_PROTO_HMSS, 1, body.data, body.len, why, sizeof(why)),
                     -EINVAL);
    const uint8_t junk[] = {0xff, 0xff};
    assert_int_equal(dy_coord_check_body(DY_PROTO_HMSS, 3, junk, sizeof(junk), why, sizeof(why)),
                     -EINVAL);
    dy_buf_free(&body);
    s_shuffle_input(48, &body);
    assert_int_equal(dy_coord_check_body(DY_PROTO_HMSS, 1, body.data, body.len, why, sizeof(why)),
                     0);
    char path[400];
    snprintf(path, sizeof(path), "%s/hmss", f->spool);
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    fwrite(body.data, 1, body.len, fp);
    fclose(fp);
    uint8_t sha[32];
    dy_wire_sha256(body.data, body.len, sha);
    dy_coord_advance_commit(&f->ctx, "duchies/worker1", b.data, b.len, path, body.len, sha, &r);
    s_expect(&r, 0, 0);
    dy_computation_t row = {0};
    assert_int_equal(dy_store_get(f->st, COMP, &row), 0);
    assert_int_equal(row.stage, 4); /* SETUP_PHASE */
    dy_computation_clear(&row);
    dy_buf_free(&body);
    dy_coord_reply_clear(&r);
    dy_buf_free(&b);
    dy_details_free(&d);
}

static void test_body_shapes(void **state)
{
    (void)state;
    char why[128];
    assert_int_equal(dy_coord_check_body(DY_PROTO_LLV2, 1, NULL, 390 * 3, why, sizeof(why)), 0);
    assert_int_equal(dy_coord_check_body(DY_PROTO_LLV2, 2, NULL, 391, why, sizeof(why)), -EINVAL);
    assert_int_equal(dy_coord_check_body(DY_PROTO_LLV2, 3, NULL, 520 * 2, why, sizeof(why)), 0);
    assert_int_equal(dy_coord_check_body(DY_PROTO_LLV2, 3, NULL, 390, why, sizeof(why)), -EINVAL);
    assert_int_equal(dy_coord_check_body(DY_PROTO_LLV2, 4, NULL, 130 * 5, why, sizeof(why)), 0);
    assert_int_equal(dy_coord_check_body(DY_PROTO_RO_LLV2, 2, NULL, 130 * 7, why, sizeof(why)), 0);
    assert_int_equal(dy_coord_check_body(DY_PROTO_RO_LLV2, 1, NULL, 131, why, sizeof(why)),
                     -EINVAL);
    assert_int_equal(dy_coord_check_body(DY_PROTO_LLV2, 1, NULL, 0, why, sizeof(why)), 0);
}

/* ---- FulfillRequisition ------------------------------------------------------------------------
 */

typedef struct {
    const char *req;
    uint64_t nonce;
    bool good_fp;
    bool hmss;
    bool seed;
    int64_t registers;
    uint8_t seed_byte; /* 0 = 5 */
} s_ful_t;

/* The fingerprint of requisition `idx` of the stored computation. */
static void s_fingerprint(s_fix_t *f, int idx, uint8_t out[32])
{
    dy_computation_t row = {0};
    assert_int_equal(dy_store_get(f->st, COMP, &row), 0);
    Halo__Internal__V1__ComputationDetails *cd =
        halo__internal__v1__computation_details__unpack(NULL, row.details_len, row.details);
    FX_SYS(Computation) *c = wfa__measurement__system__v1alpha__computation__unpack(
        NULL, cd->kingdom_computation.len, cd->kingdom_computation.data);
    dy_buf_t b = {0};
    dy_buf_append(&b, c->measurement_spec.data, c->measurement_spec.len);
    dy_buf_append(&b, c->requisitions[idx]->requisition_spec_hash.data,
                  c->requisitions[idx]->requisition_spec_hash.len);
    dy_wire_sha256(b.data, b.len, out);
    dy_buf_free(&b);
    wfa__measurement__system__v1alpha__computation__free_unpacked(c, NULL);
    halo__internal__v1__computation_details__free_unpacked(cd, NULL);
    dy_computation_clear(&row);
}

static void s_fulfill_req(s_fix_t *f, const s_ful_t *s, dy_buf_t *out)
{
    dy_buf_free(out);
    Wfa__Measurement__Api__V2alpha__FulfillRequisitionRequest req =
        WFA__MEASUREMENT__API__V2ALPHA__FULFILL_REQUISITION_REQUEST__INIT;
    Wfa__Measurement__Api__V2alpha__FulfillRequisitionRequest__Header h =
        WFA__MEASUREMENT__API__V2ALPHA__FULFILL_REQUISITION_REQUEST__HEADER__INIT;
    Wfa__Measurement__Api__V2alpha__FulfillRequisitionRequest__Header__HonestMajorityShareShuffle hm =
        WFA__MEASUREMENT__API__V2ALPHA__FULFILL_REQUISITION_REQUEST__HEADER__HONEST_MAJORITY_SHARE_SHUFFLE__INIT;
    Wfa__Measurement__Api__V2alpha__EncryptedMessage em =
        WFA__MEASUREMENT__API__V2ALPHA__ENCRYPTED_MESSAGE__INIT;
    char name[128];
    snprintf(name, sizeof(name), "dataProviders/edp1/requisitions/%s", s->req);
    h.name = name;
    uint8_t fp[32];
    s_fingerprint(f, strcmp(s->req, REQ_ODD) == 0 ? 1 : 0, fp);
    if (!s->good_fp)
        fp[0] ^= 1;
    h.requisition_fingerprint = (ProtobufCBinaryData){32, fp};
    h.nonce = s->nonce;
    uint8_t ct[40];
    memset(ct, s->seed_byte ? s->seed_byte : 5, sizeof(ct));
    if (s->hmss) {
        em.ciphertext = (ProtobufCBinaryData){s->seed ? sizeof(ct) : 0, ct};
        hm.secret_seed = &em;
        hm.register_count = s->registers;
        hm.data_provider_certificate = "dataProviders/edp1/certificates/AAAAAAAAAAE";
        h.protocol_case =
            WFA__MEASUREMENT__API__V2ALPHA__FULFILL_REQUISITION_REQUEST__HEADER__PROTOCOL_HONEST_MAJORITY_SHARE_SHUFFLE;
        h.honest_majority_share_shuffle = &hm;
    }
    req.payload_case = WFA__MEASUREMENT__API__V2ALPHA__FULFILL_REQUISITION_REQUEST__PAYLOAD_HEADER;
    req.header = &h;
    size_t n = protobuf_c_message_get_packed_size(&req.base);
    protobuf_c_message_pack(&req.base, dy_buf_extend(out, n));
}

static int s_count_req(const dy_requisition_t *r, void *arg)
{
    if (r->fulfilled)
        (*(int *)arg)++;
    return 0;
}

static void test_fulfill_llv2(void **state)
{
    s_fix_t *f = *state;
    fx_t fx;
    fx_default(&fx, FX_LLV2);
    fx.keys = true;
    dy_details_t d;
    s_create(f, &fx, "worker1", 2, &d);
    dy_buf_t b = {0};
    dy_coord_reply_t r = {0};
    /* Nonces: requisition i has nonce i + 1 (fixture). */
    s_ful_t good = {.req = REQ_ODD, .nonce = 2, .good_fp = true};
    s_fulfill_req(f, &good, &b);
    dy_coord_fulfill_header(&f->ctx, "dataProviders/edp2", b.data, b.len, &r);
    s_expect(&r, DY_WIRE_STATUS_PERMISSION_DENIED, 0);
    dy_coord_fulfill_header(&f->ctx, "duchies/worker2", b.data, b.len, &r);
    s_expect(&r, DY_WIRE_STATUS_PERMISSION_DENIED, 0);
    dy_coord_fulfill_header(&f->ctx, "dataProviders/edp1", b.data, b.len, &r);
    s_expect(&r, 0, 0);
    assert_true(r.accept_upload);

    s_ful_t t = good;
    t.nonce = 0;
    s_fulfill_req(f, &t, &b);
    dy_coord_fulfill_header(&f->ctx, "dataProviders/edp1", b.data, b.len, &r);
    s_expect(&r, DY_WIRE_STATUS_INVALID_ARGUMENT, 0);
    t = good;
    t.nonce = 1; /* requisition 0's nonce */
    s_fulfill_req(f, &t, &b);
    dy_coord_fulfill_header(&f->ctx, "dataProviders/edp1", b.data, b.len, &r);
    s_expect(&r, DY_WIRE_STATUS_FAILED_PRECONDITION, 0);
    t = good;
    t.good_fp = false;
    s_fulfill_req(f, &t, &b);
    dy_coord_fulfill_header(&f->ctx, "dataProviders/edp1", b.data, b.len, &r);
    s_expect(&r, DY_WIRE_STATUS_FAILED_PRECONDITION, 0);
    t = good;
    t.req = "AAAAAAAAAAQ";
    s_fulfill_req(f, &t, &b);
    dy_coord_fulfill_header(&f->ctx, "dataProviders/edp1", b.data, b.len, &r);
    s_expect(&r, DY_WIRE_STATUS_NOT_FOUND, 0);
    t = good;
    t.hmss = t.seed = true;
    t.registers = 4;
    s_fulfill_req(f, &t, &b);
    dy_coord_fulfill_header(&f->ctx, "dataProviders/edp1", b.data, b.len, &r);
    s_expect(&r, DY_WIRE_STATUS_INVALID_ARGUMENT, 0);

    /* Commit: a body that is not whole registers is refused, nothing kept. */
    s_fulfill_req(f, &good, &b);
    uint8_t sha[32];
    dy_coord_kingdom_t k;
    const char *p = s_spool(f, 391, 4, sha);
    assert_int_equal(
        dy_coord_fulfill_commit(&f->ctx, "dataProviders/edp1", b.data, b.len, p, 391, sha, &r, &k),
        0);
    s_expect(&r, DY_WIRE_STATUS_INVALID_ARGUMENT, 0);
    assert_false(s_exists(p));
    int fulfilled = 0;
    assert_int_equal(dy_store_list_requisitions(f->st, COMP, s_count_req, &fulfilled), 0);
    assert_int_equal(fulfilled, 0);

    p = s_spool(f, 390 * 2, 4, sha);
    assert_int_equal(
        dy_coord_fulfill_commit(&f->ctx, "dataProviders/edp1", b.data, b.len, p, 780, sha, &r, &k),
        1);
    assert_string_equal(k.name, "computations/" COMP "/requisitions/" REQ_ODD);
    assert_int_equal(k.nonce, 2);
    assert_false(s_exists(p));
    assert_int_equal(dy_store_list_requisitions(f->st, COMP, s_count_req, &fulfilled), 0);
    assert_int_equal(fulfilled, 1);
    dy_coord_fulfill_kingdom_done(&f->ctx, &k, 0, "", &r);
    s_expect(&r, 0, 0);
    Wfa__Measurement__Api__V2alpha__FulfillRequisitionResponse *fr =
        wfa__measurement__api__v2alpha__fulfill_requisition_response__unpack(NULL, r.response_len,
                                                                             r.response);
    assert_non_null(fr);
    assert_int_equal(fr->state, WFA__MEASUREMENT__API__V2ALPHA__REQUISITION__STATE__FULFILLED);
    wfa__measurement__api__v2alpha__fulfill_requisition_response__free_unpacked(fr, NULL);
    /* Kingdom down: data kept, UNAVAILABLE; refused: passed on. */
    dy_coord_fulfill_kingdom_done(&f->ctx, &k, DY_WIRE_STATUS_UNAVAILABLE, "down", &r);
    s_expect(&r, DY_WIRE_STATUS_UNAVAILABLE, 0);
    dy_coord_fulfill_kingdom_done(&f->ctx, &k, DY_WIRE_STATUS_FAILED_PRECONDITION, "no", &r);
    s_expect(&r, DY_WIRE_STATUS_FAILED_PRECONDITION, 0);

    /* §6.3 replay: same bytes → the Kingdom is asked again; other bytes refused. */
    p = s_spool(f, 780, 4, sha);
    assert_int_equal(
        dy_coord_fulfill_commit(&f->ctx, "dataProviders/edp1", b.data, b.len, p, 780, sha, &r, &k),
        1);
    p = s_spool(f, 780, 5, sha);
    assert_int_equal(
        dy_coord_fulfill_commit(&f->ctx, "dataProviders/edp1", b.data, b.len, p, 780, sha, &r, &k),
        0);
    s_expect(&r, DY_WIRE_STATUS_FAILED_PRECONDITION, 0);
    assert_false(s_exists(p));

    dy_coord_reply_clear(&r);
    dy_buf_free(&b);
    dy_details_free(&d);
}

static void test_fulfill_hmss(void **state)
{
    s_fix_t *f = *state;
    fx_t fx;
    fx_default(&fx, FX_HMSS);
    fx.keys = true;
    dy_details_t d;
    s_create(f, &fx, "worker1", 2, &d); /* worker1 = FNA: even requisition ids */
    dy_buf_t b = {0};
    dy_coord_reply_t r = {0};
    s_ful_t good = {
        .req = REQ_EVEN, .nonce = 1, .good_fp = true, .hmss = true, .seed = true, .registers = 10};
    s_fulfill_req(f, &good, &b);
    dy_coord_fulfill_header(&f->ctx, "dataProviders/edp1", b.data, b.len, &r);
    s_expect(&r, 0, 0);
    assert_int_equal(r.max_total, 40);
    s_ful_t t = good;
    t.req = REQ_ODD; /* assigned to the SNA */
    t.nonce = 2;
    s_fulfill_req(f, &t, &b);
    dy_coord_fulfill_header(&f->ctx, "dataProviders/edp1", b.data, b.len, &r);
    s_expect(&r, DY_WIRE_STATUS_INVALID_ARGUMENT, 0);
    t = good;
    t.seed = false;
    s_fulfill_req(f, &t, &b);
    dy_coord_fulfill_header(&f->ctx, "dataProviders/edp1", b.data, b.len, &r);
    s_expect(&r, DY_WIRE_STATUS_INVALID_ARGUMENT, 0);
    t = good;
    t.registers = 0;
    s_fulfill_req(f, &t, &b);
    dy_coord_fulfill_header(&f->ctx, "dataProviders/edp1", b.data, b.len, &r);
    s_expect(&r, DY_WIRE_STATUS_INVALID_ARGUMENT, 0);
    t = good;
    t.hmss = false;
    s_fulfill_req(f, &t, &b);
    dy_coord_fulfill_header(&f->ctx, "dataProviders/edp1", b.data, b.len, &r);
    s_expect(&r, DY_WIRE_STATUS_INVALID_ARGUMENT, 0);

    s_fulfill_req(f, &good, &b);
    uint8_t sha[32];
    dy_coord_kingdom_t k;
    const char *p = s_spool(f, 36, 1, sha);
    assert_int_equal(
        dy_coord_fulfill_commit(&f->ctx, "dataProviders/edp1", b.data, b.len, p, 36, sha, &r, &k),
        0);
    s_expect(&r, DY_WIRE_STATUS_INVALID_ARGUMENT, 0);
    p = s_spool(f, 40, 1, sha);
    assert_int_equal(
        dy_coord_fulfill_commit(&f->ctx, "dataProviders/edp1", b.data, b.len, p, 40, sha, &r, &k),
        1);
    /* A replay with the same bytes and seed: stored once, the Kingdom asked again. */
    p = s_spool(f, 40, 1, sha);
    assert_int_equal(
        dy_coord_fulfill_commit(&f->ctx, "dataProviders/edp1", b.data, b.len, p, 40, sha, &r, &k),
        1);
    /* The same data with another seed is a conflict (§6.3). */
    t = good;
    t.seed_byte = 6;
    dy_buf_t b2 = {0};
    s_fulfill_req(f, &t, &b2);
    p = s_spool(f, 40, 1, sha);
    assert_int_equal(
        dy_coord_fulfill_commit(&f->ctx, "dataProviders/edp1", b2.data, b2.len, p, 40, sha, &r, &k),
        0);
    s_expect(&r, DY_WIRE_STATUS_FAILED_PRECONDITION, 0);
    dy_buf_free(&b2);
    dy_coord_reply_clear(&r);
    dy_buf_free(&b);
    dy_details_free(&d);
}

/* ---- sends -------------------------------------------------------------------------------------
 */

static void test_plan_sends(void **state)
{
    s_fix_t *f = *state;
    (void)f;
    fx_t fx;
    fx_default(&fx, FX_LLV2);
    fx.keys = true;
    dy_buf_t det = {0};
    s_details(&fx, "aggregator", &det);
    dy_details_t d;
    char err[256];
    assert_int_equal(dy_details_parse(det.data, det.len, "aggregator", &d, err, sizeof(err)), 0);
    dy_coord_send_t s[2];
    char why[128];
    /* AG after SETUP_PHASE: EXECUTION_PHASE_ONE_INPUT to NA1, which awaits it in 7. */
    assert_int_equal(dy_coord_plan_sends(det.data, det.len, "aggregator", 6, s, why, sizeof(why)),
                     1);
    assert_string_equal(s[0].peer, d.ring[0]);
    assert_int_equal(s[0].description, 2);
    assert_int_equal(s[0].awaited, 7);
    dy_coord_advance_hdr_t h;
    dy_coord_reply_t r = {0};
    assert_int_equal(dy_coord_decode_advance(s[0].header, s[0].header_len, &h, &r), 0);
    assert_string_equal(h.computation, COMP);
    assert_int_equal(h.protocol, DY_PROTO_LLV2);
    assert_int_equal(h.description, 2);
    dy_coord_send_free(&s[0]);
    /* A wait stage has no sends: a caller's bug. */
    assert_int_equal(dy_coord_plan_sends(det.data, det.len, "aggregator", 5, s, why, sizeof(why)),
                     -EINVAL);
    /* EXECUTION_PHASE_THREE at the AG submits: no send. */
    assert_int_equal(dy_coord_plan_sends(det.data, det.len, "aggregator", 12, s, why, sizeof(why)),
                     0);
    dy_buf_free(&det);
    /* NA after SETUP_PHASE: SETUP_PHASE_INPUT to the aggregator (awaited 5). */
    char na[64];
    snprintf(na, sizeof(na), "%s", d.ring[1]);
    s_details(&fx, na, &det);
    assert_int_equal(dy_coord_plan_sends(det.data, det.len, na, 6, s, why, sizeof(why)), 1);
    assert_string_equal(s[0].peer, "aggregator");
    assert_int_equal(s[0].description, 1);
    assert_int_equal(s[0].awaited, 5);
    dy_coord_send_free(&s[0]);
    /* ... and after EXECUTION_PHASE_ONE: to its ring successor. */
    assert_int_equal(dy_coord_plan_sends(det.data, det.len, na, 8, s, why, sizeof(why)), 1);
    assert_string_equal(s[0].peer, "aggregator"); /* NA2's successor */
    assert_int_equal(s[0].awaited, 7);
    dy_coord_send_free(&s[0]);
    dy_buf_free(&det);
    dy_details_free(&d);

    /* HMSS FNA after SETUP_PHASE: SHUFFLE_PHASE_INPUT_ONE to the SNA (awaited 3). */
    fx_default(&fx, FX_HMSS);
    fx.keys = true;
    s_details(&fx, "worker1", &det);
    int k4 = dy_coord_plan_sends(det.data, det.len, "worker1", 4, s, why, sizeof(why));
    if (k4 != 1)
        fail_msg("plan: %d %s", k4, why);
    assert_string_equal(s[0].peer, "worker2");
    assert_int_equal(s[0].description, 1);
    assert_int_equal(s[0].awaited, 3);
    dy_coord_send_free(&s[0]);
    assert_int_equal(dy_coord_plan_sends(det.data, det.len, "worker1", 7, s, why, sizeof(why)), 1);
    assert_string_equal(s[0].peer, "aggregator");
    assert_int_equal(s[0].awaited, 6);
    dy_coord_send_free(&s[0]);
    dy_buf_free(&det);
    dy_coord_reply_clear(&r);
}

static void test_send_tables(void **state)
{
    (void)state;
    /* §6.2 rule 2. */
    assert_int_equal(dy_coord_send_decide(0, 7, 7, 13), DY_COORD_SEND);
    assert_int_equal(dy_coord_send_decide(0, 8, 7, 13), DY_COORD_SKIP);
    assert_int_equal(dy_coord_send_decide(0, 13, 7, 13), DY_COORD_SKIP);
    assert_int_equal(dy_coord_send_decide(0, 4, 7, 13), DY_COORD_RETRY);
    assert_int_equal(dy_coord_send_decide(DY_WIRE_STATUS_NOT_FOUND, -1, 7, 13), DY_COORD_RETRY);
    assert_int_equal(dy_coord_send_decide(DY_WIRE_STATUS_UNAVAILABLE, -1, 7, 13), DY_COORD_RETRY);
    /* §6.2 rule 3. */
    static const int temp[] = {DY_WIRE_STATUS_CANCELLED,          DY_WIRE_STATUS_UNAVAILABLE,
                               DY_WIRE_STATUS_DEADLINE_EXCEEDED,  DY_WIRE_STATUS_ABORTED,
                               DY_WIRE_STATUS_RESOURCE_EXHAUSTED, DY_WIRE_STATUS_DATA_LOSS,
                               DY_WIRE_STATUS_NOT_FOUND};
    for (size_t i = 0; i < DY_ARRAY_LEN(temp); i++)
        assert_int_equal(dy_coord_send_classify(temp[i], 0, false), DY_OUTCOME_TEMPFAIL);
    static const int perm[] = {DY_WIRE_STATUS_INVALID_ARGUMENT, DY_WIRE_STATUS_PERMISSION_DENIED,
                               DY_WIRE_STATUS_UNAUTHENTICATED};
    for (size_t i = 0; i < DY_ARRAY_LEN(perm); i++)
        assert_int_equal(dy_coord_send_classify(perm[i], 0, false), DY_OUTCOME_PERMFAIL);
    assert_int_equal(dy_coord_send_classify(0, 0, false), DY_OUTCOME_OK);
    int fp = DY_WIRE_STATUS_FAILED_PRECONDITION;
    assert_int_equal(dy_coord_send_classify(fp, DY_WIRE_REASON_STAGE_NOT_READY, false),
                     DY_OUTCOME_TEMPFAIL);
    assert_int_equal(dy_coord_send_classify(fp, DY_WIRE_REASON_INPUT_CONFLICT, false),
                     DY_OUTCOME_PERMFAIL);
    assert_int_equal(dy_coord_send_classify(fp, DY_WIRE_REASON_COMPUTATION_ENDED, false),
                     DY_OUTCOME_TEMPFAIL);
    assert_int_equal(dy_coord_send_classify(fp, DY_WIRE_REASON_COMPUTATION_ENDED, true),
                     DY_OUTCOME_PERMFAIL);
    char host[64];
    int port = 0;
    assert_int_equal(dy_coord_split_endpoint("127.0.0.1:8443", host, sizeof(host), &port), 0);
    assert_string_equal(host, "127.0.0.1");
    assert_int_equal(port, 8443);
    assert_int_equal(dy_coord_split_endpoint("[::1]:9", host, sizeof(host), &port), 0);
    assert_string_equal(host, "::1");
    assert_int_equal(dy_coord_split_endpoint("localhost", host, sizeof(host), &port), -EINVAL);
    assert_int_equal(dy_coord_split_endpoint("h:70000", host, sizeof(host), &port), -EINVAL);
}

/* ---- admin -------------------------------------------------------------------------------------
 */

static void test_admin_json(void **state)
{
    s_fix_t *f = *state;
    s_ctx(f, "worker1");
    char names[DY_COORD_MAX_ACTORS][DY_COORD_NAME_MAX];
    int n = dy_coord_actor_names(NULL, 2, names, DY_COORD_MAX_ACTORS);
    assert_int_equal(n, 7);
    assert_string_equal(names[6], "claimer-2");
    n = dy_coord_actor_names("{\"actors\":[{\"name\": \"duchy-gateway\",\"pid\":3},"
                             "{\"name\":\"claimer-1\"},{\"name\":\"duchy-gateway\"}]}",
                             2, names, DY_COORD_MAX_ACTORS);
    assert_int_equal(n, 2);
    assert_string_equal(names[0], "gateway");
    assert_string_equal(names[1], "claimer-1");

    char v[64];
    const char *js = "{\"name\":\"x\",\"pid\":42,\"nested\":{\"pid\":7},\"state\":\"re\\\"ady\"}";
    assert_int_equal(dy_coord_json_member(js, "pid", v, sizeof(v)), 0);
    assert_string_equal(v, "42");
    assert_int_equal(dy_coord_json_member(js, "state", v, sizeof(v)), 0);
    assert_string_equal(v, "\"re\\\"ady\"");
    assert_int_equal(dy_coord_json_member(js, "nested", v, sizeof(v)), 0);
    assert_string_equal(v, "{\"pid\":7}");
    assert_int_equal(dy_coord_json_member(js, "absent", v, sizeof(v)), -ENOENT);

    char *answers[2] = {strdup("{\"pid\":5,\"uptime_seconds\":1.5,\"state\":\"ready\","
                               "\"counters\":{\"calls\":3}}"),
                        NULL};
    char two[2][DY_COORD_NAME_MAX] = {"gateway", "herald"};
    dy_buf_t out = {0};
    assert_int_equal(dy_coord_status_json("worker1", two, 2, answers, &out), 0);
    dy_buf_append(&out, "", 1);
    assert_string_equal((char *)out.data,
                        "{\"duchy\":\"worker1\",\"actors\":[{\"name\":\"duchy-gateway\",\"pid\":5,"
                        "\"uptime_seconds\":1.5,\"state\":\"ready\"},{\"name\":\"duchy-herald\","
                        "\"pid\":null,\"uptime_seconds\":null,\"state\":\"unreachable\"}],"
                        "\"counters\":{\"gateway\":{\"calls\":3}}}");
    dy_buf_free(&out);
    free(answers[0]);
    char *arrays[3] = {strdup("[{\"pid\":1}]"), strdup("[ ]"), strdup("[{\"pid\":2},{\"pid\":3}]")};
    assert_int_equal(dy_coord_merge_arrays(arrays, 3, &out), 0);
    dy_buf_append(&out, "", 1);
    assert_string_equal((char *)out.data, "[{\"pid\":1},{\"pid\":2},{\"pid\":3}]");
    dy_buf_free(&out);
    for (int i = 0; i < 3; i++)
        free(arrays[i]);

    /* Fan-out to actors that do not exist: all unreachable within the budget. */
    double t0 = dy_now();
    char *got[2] = {NULL, NULL};
    assert_int_equal(dy_coord_fanout(f->dir, two, 2, 1, NULL, 0, 200, got), 0);
    assert_null(got[0]);
    assert_null(got[1]);
    assert_true(dy_now() - t0 < 2.0);

    /* AUDIT views. */
    dy_audit_event_t ev = {.actor = "test", .stage = -1, .event = "hello", .detail = "a\"b"};
    assert_int_equal(dy_audit_append(f->st, &ev, NULL), 0);
    assert_int_equal(dy_audit_append(f->st, &ev, NULL), 0);
    assert_int_equal(dy_coord_admin_audit(&f->ctx, true, 0, &out), 0);
    dy_buf_append(&out, "", 1);
    assert_string_equal((char *)out.data, "{\"ok\":true,\"rows\":2,\"first_broken\":null}");
    dy_buf_free(&out);
    assert_int_equal(dy_coord_admin_audit(&f->ctx, false, 1, &out), 0);
    dy_buf_append(&out, "", 1);
    assert_non_null(strstr((char *)out.data, "\"seq\":2"));
    assert_null(strstr((char *)out.data, "\"seq\":1,"));
    assert_non_null(strstr((char *)out.data, "a\\\"b"));
    dy_buf_free(&out);
}

/* ---- dy_blob_adopt ------------------------------------------------------------------------------
 */

static void test_blob_adopt(void **state)
{
    s_fix_t *f = *state;
    s_ctx(f, "worker1");
    uint8_t sha[32], sha2[32];
    dy_blob_key_t key = {.computation = COMP, .stage = 5, .attempt = 0, .slot = "worker2"};
    dy_blob_info_t info;
    const char *p = s_spool(f, 1000, 7, sha);
    uint8_t wrong[32] = {0};
    assert_int_equal(dy_blob_adopt(f->blobs, &key, p, wrong, &info), -EBADMSG);
    assert_true(s_exists(p)); /* left for the caller */
    assert_int_equal(dy_blob_adopt(f->blobs, &key, p, sha, &info), 0);
    assert_false(s_exists(p));
    assert_int_equal(info.size, 1000);
    assert_memory_equal(info.sha256, sha, 32);
    assert_int_equal(dy_blob_verify(&info), 0);
    /* Same bytes again: kept, source removed. */
    p = s_spool(f, 1000, 7, sha);
    assert_int_equal(dy_blob_adopt(f->blobs, &key, p, NULL, &info), 0);
    assert_false(s_exists(p));
    /* Other bytes: -EEXIST, nothing replaced. */
    p = s_spool(f, 1000, 8, sha2);
    assert_int_equal(dy_blob_adopt(f->blobs, &key, p, NULL, &info), -EEXIST);
    assert_true(s_exists(p));
    dy_blob_info_t again = info;
    memcpy(again.sha256, sha, 32);
    assert_int_equal(dy_blob_verify(&again), 0);
    dy_blob_key_t bad = {.computation = "../x", .stage = 5, .attempt = 0, .slot = "s"};
    assert_int_equal(dy_blob_adopt(f->blobs, &bad, p, NULL, &info), -EINVAL);
    unlink(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_decode_advance),
        cmocka_unit_test_setup_teardown(test_advance_setup_inputs, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_advance_ring, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_ring_unknown, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_hmss_shuffle_input, s_setup, s_teardown),
        cmocka_unit_test(test_body_shapes),
        cmocka_unit_test_setup_teardown(test_fulfill_llv2, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_fulfill_hmss, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_plan_sends, s_setup, s_teardown),
        cmocka_unit_test(test_send_tables),
        cmocka_unit_test_setup_teardown(test_admin_json, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_blob_adopt, s_setup, s_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
