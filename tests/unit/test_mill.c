/* test_mill.c - duchy-mill run for real (through dy_spawn, as the claimer
 * runs it) over whole computations: LLv2 (K = 3 and K = 1) and reach-only
 * LLv2 at NA1, NA2 and AGG, every stage's output blob chained into the next
 * stage's input, the final "result" compared with the plaintext answer;
 * HMSS with mkpki's EDP signing certificates (forwarded, signed, encrypted
 * seeds), the result compared with the summed frequency vectors; and the
 * typed failures: bad inputs PERMFAIL with the engine's code, a missing
 * master key TEMPFAIL.
 *
 * Environment: DY_MILL = the duchy-mill executable, DY_SOURCE_ROOT = the
 * source tree (deploy/mkpki); absent -> skipped (exit 77 via cmocka skip).
 */
/* clang-format off */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
/* clang-format on */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "blob.h"
#include "claim_build.h"
#include "claim_job.h"
#include "crypto/ec.h"
#include "crypto/ecies.h"
#include "duchy.pb-c.h"
#include "hmss.pb-c.h"
#include "internal.pb-c.h"
#include "mc_util.h"
#include "mill.pb-c.h"
#include "protocol/hmss.h"
#include "protocol/llv2.h"
#include "public.pb-c.h"
#include "secrets.h"
#include "sketch/ll.h"
#include "spawn.h"
#include "stages.h"

#define S_COMP "comp-1"
#define S_NREQ 3

typedef Halo__Internal__V1__Blob s_blob_t;

typedef struct {
    char *root;                 /* mkdtemp, owned */
    const char *mill;           /* $DY_MILL */
    const char *src;            /* $DY_SOURCE_ROOT */
    char blobs[512];            /* root/blobs: the mills' output_dir */
    char keys[3][512];          /* per-duchy master key files */
    dy_blobdir_t *edp;          /* root/blobs/edp: requisition data */
    int job_seq;
} s_fix_t;

/* A recorded blob (what the claimer keeps per slot). */
typedef struct {
    char slot[64];
    char path[DY_BLOB_PATH_MAX];
    uint64_t size;
    uint8_t sha[32];
} s_rec_t;

/* A mill run's outcome. */
typedef struct {
    dy_outcome_t outcome;
    char code[48];
    char message[256];
    s_rec_t out[8];
    size_t nout;
} s_res_t;

static const char *s_ids[3] = {"na1", "na2", "agg"};

static int s_setup(void **state)
{
    s_fix_t *f = calloc(1, sizeof(*f));
    f->mill = getenv("DY_MILL");
    f->src = getenv("DY_SOURCE_ROOT");
    const char *base = getenv("TMPDIR");
    char tmpl[512];
    snprintf(tmpl, sizeof(tmpl), "%s/dy-mill-XXXXXX", base && base[0] ? base : "/tmp");
    if (!mkdtemp(tmpl))
        return -1;
    f->root = strdup(tmpl);
    snprintf(f->blobs, sizeof(f->blobs), "%s/blobs", f->root);
    if (mkdir(f->blobs, 0700) < 0)
        return -1;
    for (int d = 0; d < 3; d++) {
        snprintf(f->keys[d], sizeof(f->keys[d]), "%s/master-%d.key", f->root, d);
        if (dy_secrets_make_master(f->keys[d]) < 0)
            return -1;
    }
    f->edp = dy_blobdir_new(f->blobs, "edp");
    *state = f;
    return f->edp ? 0 : -1;
}

static int s_teardown(void **state)
{
    s_fix_t *f = *state;
    char cmd[600];
    dy_blobdir_destroy(&f->edp);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->root);
    if (system(cmd) != 0)
        return -1;
    free(f->root);
    free(f);
    return 0;
}

static void s_need_mill(const s_fix_t *f)
{
    if (!f->mill || access(f->mill, X_OK) != 0)
        skip();
}

/* Writes bytes as a blob of the test's "edp" directory. */
static s_rec_t s_put(s_fix_t *f, const char *slot, int stage, const void *data, size_t len)
{
    dy_blob_key_t key = {.computation = S_COMP, .stage = stage, .attempt = 0, .slot = "x"};
    char name[64];
    static int seq;
    snprintf(name, sizeof(name), "b%d", ++seq);
    key.slot = name;
    dy_blob_writer_t *w = NULL;
    dy_blob_info_t info;
    assert_int_equal(dy_blob_open(f->edp, &key, &w), 0);
    assert_int_equal(dy_blob_write(w, data, len), 0);
    assert_int_equal(dy_blob_commit(&w, &info), 0);
    s_rec_t r = {.size = info.size};
    snprintf(r.slot, sizeof(r.slot), "%s", slot);
    memcpy(r.path, info.path, sizeof(r.path));
    memcpy(r.sha, info.sha256, 32);
    return r;
}

/* A recorded output under another slot name (how the claimer passes it on). */
static s_rec_t s_as(const s_rec_t *r, const char *slot)
{
    s_rec_t x = *r;
    snprintf(x.slot, sizeof(x.slot), "%s", slot);
    return x;
}

static const s_rec_t *s_out(const s_res_t *res, const char *slot)
{
    for (size_t i = 0; i < res->nout; i++)
        if (strcmp(res->out[i].slot, slot) == 0)
            return &res->out[i];
    return NULL;
}

static void s_read_rec(const s_rec_t *r, dy_buf_t *out)
{
    dy_blob_info_t info = {.size = r->size};
    memcpy(info.path, r->path, sizeof(info.path));
    memcpy(info.sha256, r->sha, 32);
    assert_int_equal(dy_blob_read(&info, out), 0);
}

/* Runs duchy-mill for one (duchy d, stage) with params and inputs. */
static s_res_t s_mill(s_fix_t *f, int d, Halo__Internal__V1__MillParams *prm, const s_rec_t *in,
                      size_t nin, int64_t attempt)
{
    Halo__Internal__V1__MillJob job = HALO__INTERNAL__V1__MILL_JOB__INIT;
    char job_id[32];
    snprintf(job_id, sizeof(job_id), "job-%d", ++f->job_seq);
    prm->computation_id = S_COMP;
    prm->duchy_id = (char *)s_ids[d];
    prm->master_key_file = f->keys[d];
    job.job_id = job_id;
    job.computation_id = S_COMP;
    job.protocol = prm->protocol;
    job.role = prm->role;
    job.stage = prm->stage;
    job.stage_name = (char *)dy_stage_name(prm->protocol, prm->stage);
    job.attempt = attempt;
    job.output_dir = f->blobs;
    job.threads = 2;
    s_blob_t blobs[16], *bp[16];
    assert_true(nin <= 16);
    for (size_t i = 0; i < nin; i++) {
        halo__internal__v1__blob__init(&blobs[i]);
        blobs[i].slot = (char *)in[i].slot;
        blobs[i].path = (char *)in[i].path;
        blobs[i].size = in[i].size;
        blobs[i].sha256 = (ProtobufCBinaryData){32, (uint8_t *)in[i].sha};
        bp[i] = &blobs[i];
    }
    job.n_inputs = nin;
    job.inputs = bp;
    size_t plen = halo__internal__v1__mill_params__get_packed_size(prm);
    job.params.data = malloc(plen + 1);
    job.params.len = halo__internal__v1__mill_params__pack(prm, job.params.data);
    size_t jlen = halo__internal__v1__mill_job__get_packed_size(&job);
    uint8_t *jb = malloc(jlen + 1);
    halo__internal__v1__mill_job__pack(&job, jb);
    dy_buf_t frame = {0};
    assert_int_equal(dy_mill_frame(jb, jlen, &frame), 0);
    free(jb);
    free(job.params.data);

    char *argv[] = {"duchy-mill", NULL};
    dy_spawn_conf_t conf = {.path = f->mill, .argv = argv, .job = frame.data,
                            .job_len = frame.len, .memory_limit = 4ull << 30,
                            .deadline_ms = 120000};
    dy_spawn_t *sp = dy_spawn_start(&conf);
    assert_non_null(sp);
    assert_int_equal(dy_spawn_wait(sp), 0);
    dy_spawn_status_t st;
    dy_spawn_status(sp, &st);
    dy_mill_outcome_t oc;
    dy_mill_outcome(&st, job_id, &oc);
    s_res_t res = {.outcome = oc.outcome};
    snprintf(res.code, sizeof(res.code), "%s", oc.code);
    snprintf(res.message, sizeof(res.message), "%s", oc.message);
    if (oc.result) {
        Halo__Internal__V1__MillResult *r = oc.result;
        assert_true(r->wall_seconds >= 0 && r->peak_rss_bytes > 0);
        assert_true(r->n_counters > 0);
        for (size_t i = 0; i < r->n_outputs && i < 8; i++) {
            s_rec_t *o = &res.out[res.nout++];
            snprintf(o->slot, sizeof(o->slot), "%s", r->outputs[i]->slot);
            snprintf(o->path, sizeof(o->path), "%s", r->outputs[i]->path);
            o->size = r->outputs[i]->size;
            memcpy(o->sha, r->outputs[i]->sha256.data, 32);
            /* the output is where blob.h says, and matches its hash */
            char want[64];
            snprintf(want, sizeof(want), "/%s/%s/%d/%lld/%s", s_ids[d], S_COMP, prm->stage,
                     (long long)attempt, o->slot);
            assert_non_null(strstr(o->path, want));
            dy_buf_t b = {0};
            s_read_rec(o, &b);
            dy_buf_free(&b);
        }
    }
    dy_mill_outcome_clear(&oc);
    dy_spawn_destroy(&sp);
    dy_buf_free(&frame);
    return res;
}

static void s_expect_ok(const s_res_t *r)
{
    if (r->outcome != DY_OUTCOME_OK)
        fail_msg("mill failed: %s: %s", r->code, r->message);
}

/* ---- LLv2 ----------------------------------------------------------------- */

static uint64_t s_rng = 88172645463325252ull;
static uint64_t s_rand(void)
{
    s_rng ^= s_rng << 13;
    s_rng ^= s_rng >> 7;
    s_rng ^= s_rng << 17;
    return s_rng;
}

static void s_sketches(dy_ll_sketch_t *sk, int n, size_t per, int64_t pool)
{
    for (int e = 0; e < n; e++) {
        assert_int_equal(dy_ll_sketch_init(&sk[e], 12, 100000), 0);
        for (size_t i = 0; i < per; i++) {
            int64_t idx = (int64_t)(s_rand() % (uint64_t)pool);
            uint64_t key = (uint64_t)idx * 7 + 1 + (s_rand() % 20 == 0 ? (uint64_t)e + 1 : 0);
            assert_int_equal(dy_ll_sketch_put(&sk[e], idx, key, 1 + s_rand() % 4), 0);
        }
        assert_int_equal(dy_ll_sketch_finish(&sk[e]), 0);
    }
}

typedef struct {
    Halo__Internal__V1__MillParams prm;
    Halo__Internal__V1__Llv2Params l;
    Halo__Internal__V1__DpParams dp;
    ProtobufCBinaryData keys[3];
    char *ring[3];
    char *reqs[S_NREQ];
    char reqbuf[S_NREQ][16];
} s_llp_t;

/* Params of duchy d (ring index d) for stage. */
static void s_llv2_params(s_llp_t *p, int protocol, int K, int d, int stage,
                          uint8_t pub[3][33], bool with_keys)
{
    halo__internal__v1__mill_params__init(&p->prm);
    halo__internal__v1__llv2_params__init(&p->l);
    halo__internal__v1__dp_params__init(&p->dp);
    p->dp.epsilon = 1;
    p->dp.delta = 1;
    p->prm.protocol = (Halo__Internal__V1__Protocol)protocol;
    p->prm.role = (Halo__Internal__V1__Role)(d == 2 ? DY_ROLE_AGG : DY_ROLE_NA);
    p->prm.stage = stage;
    p->prm.llv2 = &p->l;
    p->l.decay_rate = 12;
    p->l.sketch_size = 100000;
    p->l.max_frequency = K;
    p->l.num_sketches = S_NREQ;
    p->l.vid_width = 1.0f;
    p->l.noise = HALO__INTERNAL__V1__MILL_NOISE__MILL_NOISE_NONE;
    p->l.blinded_histogram = p->l.publisher = p->l.reach = p->l.frequency = &p->dp;
    for (int i = 0; i < 3; i++) {
        p->keys[i] = (ProtobufCBinaryData){33, pub[i]};
        p->ring[i] = (char *)s_ids[i];
    }
    p->l.n_ring_public_keys = with_keys ? 3 : 0;
    p->l.ring_public_keys = p->keys;
    p->l.n_ring = 3;
    p->l.ring = p->ring;
    p->l.ring_index = d;
    /* requisition e goes to duchy e mod 3 */
    for (int e = 0; e < S_NREQ; e++) {
        if (e % 3 != d)
            continue;
        snprintf(p->reqbuf[p->l.n_requisitions], sizeof(p->reqbuf[0]), "r%d", e);
        p->reqs[p->l.n_requisitions] = p->reqbuf[p->l.n_requisitions];
        p->l.n_requisitions++;
    }
    p->l.requisitions = p->reqs;
}

/* A whole LLv2 / RO-LLv2 computation through the mill.  Checks the result
 * against the plaintext answer. */
static void s_llv2_run(s_fix_t *f, int protocol, int K)
{
    bool ro = protocol == DY_PROTO_RO_LLV2;
    uint8_t pub[3][33];
    s_rec_t secrets[3];
    /* INITIALIZATION_PHASE at each duchy */
    for (int d = 0; d < 3; d++) {
        s_llp_t p = {0};
        s_llv2_params(&p, protocol, K, d, 1, pub, false);
        s_res_t r = s_mill(f, d, &p.prm, NULL, 0, 1);
        s_expect_ok(&r);
        assert_int_equal(r.nout, 2);
        const s_rec_t *pk = s_out(&r, "public_key"), *sec = s_out(&r, "secrets");
        assert_non_null(pk);
        assert_non_null(sec);
        assert_int_equal(pk->size, 33);
        dy_buf_t b = {0};
        s_read_rec(pk, &b);
        memcpy(pub[d], b.data, 33);
        dy_buf_free(&b);
        secrets[d] = s_as(sec, "secrets");
        /* the secrets are sealed to this duchy's master key and computation */
        s_read_rec(sec, &b);
        uint8_t mk[32];
        dy_buf_t pt = {0};
        assert_int_equal(dy_secrets_load_master(f->keys[d], mk), 0);
        assert_int_equal(dy_secrets_open(mk, S_COMP, b.data, b.len, &pt), 0);
        assert_int_equal(dy_secrets_open(mk, "comp-2", b.data, b.len, &pt), -EBADMSG);
        dy_buf_free(&pt);
        dy_buf_free(&b);
        /* a retry reuses the stored pair: same public key, no new secrets */
        uint8_t pk_sha[32];
        memcpy(pk_sha, pk->sha, 32);
        r = s_mill(f, d, &p.prm, &secrets[d], 1, 2);
        s_expect_ok(&r);
        assert_int_equal(r.nout, 1);
        assert_memory_equal(s_out(&r, "public_key")->sha, pk_sha, 32);
    }
    /* EDPs encrypt under the combined key */
    dy_ec_t *ec = dy_ec_new();
    uint8_t Y[33];
    assert_int_equal(dy_llv2_combine_keys(ec, (const uint8_t(*)[33])pub, 3, Y), 0);
    dy_ll_sketch_t sk[S_NREQ];
    s_sketches(sk, S_NREQ, 150, 400);
    s_rec_t req[S_NREQ];
    for (int e = 0; e < S_NREQ; e++) {
        dy_buf_t enc = {0};
        dy_err_t err;
        dy_err_clear(&err);
        assert_int_equal(dy_llv2_encrypt_sketch(ec, Y, &sk[e], ro ? 1 : K, ro, 1, &enc, &err), 0);
        char slot[32];
        snprintf(slot, sizeof(slot), "requisition/r%d", e);
        req[e] = s_put(f, slot, 0, enc.data, enc.len);
        dy_buf_free(&enc);
    }
    dy_ec_destroy(&ec);

    /* SETUP_PHASE: NA1, NA2, then AG with both NA outputs */
    s_rec_t prev[3];
    for (int d = 0; d < 3; d++) {
        s_llp_t p = {0};
        s_llv2_params(&p, protocol, K, d, 6, pub, true);
        s_rec_t in[8];
        size_t n = 0;
        in[n++] = secrets[d];
        for (int e = 0; e < S_NREQ; e++)
            if (e % 3 == d)
                in[n++] = req[e];
        if (d == 2) {
            in[n++] = s_as(&prev[0], "input/na1");
            in[n++] = s_as(&prev[1], "input/na2");
        }
        s_res_t r = s_mill(f, d, &p.prm, in, n, 1);
        s_expect_ok(&r);
        assert_non_null(s_out(&r, "output"));
        prev[d] = *s_out(&r, "output");
    }
    /* execution phases round the ring: NA1 <- AG, NA2 <- NA1, AG <- NA2 */
    static const int ll_stages[] = {8, 10, 12};
    int phases = ro ? 1 : (K == 1 ? 2 : 3);
    s_rec_t last = prev[2], reach = {0};
    const s_rec_t *result = NULL;
    s_res_t r = {0};
    for (int ph = 0; ph < phases; ph++) {
        int stage = ro ? 8 : ll_stages[ph];
        for (int d = 0; d < 3; d++) {
            s_llp_t p = {0};
            s_llv2_params(&p, protocol, K, d, stage, pub, true);
            char slot[32];
            snprintf(slot, sizeof(slot), "input/%s", s_ids[(d + 2) % 3]);
            s_rec_t in[3] = {secrets[d], s_as(&last, slot), s_as(&reach, "reach")};
            r = s_mill(f, d, &p.prm, in, d == 2 && ph == 2 ? 3 : 2, 1);
            s_expect_ok(&r);
            bool final = d == 2 && ph == phases - 1;
            const s_rec_t *o = s_out(&r, "output");
            assert_true(final ? o == NULL : o != NULL);
            if (o)
                last = *o;
            if (d == 2 && stage == 10) {
                assert_non_null(s_out(&r, "reach"));
                reach = *s_out(&r, "reach");
            }
            result = s_out(&r, "result");
            assert_true(final ? result != NULL : result == NULL);
        }
    }
    /* the result against the plaintext answer */
    int64_t want_reach = 0;
    double want_freq[16] = {0};
    uint64_t active = 0;
    const dy_ll_sketch_t *sp[S_NREQ] = {&sk[0], &sk[1], &sk[2]};
    int Kp = ro ? 1 : K;
    assert_int_equal(dy_ll_plaintext(sp, S_NREQ, Kp, 1.0f, &want_reach, Kp > 1 ? want_freq : NULL,
                                     &active), 0);
    dy_buf_t b = {0};
    s_read_rec(result, &b);
    Wfa__Measurement__Api__V2alpha__Measurement__Result *mr =
        (Wfa__Measurement__Api__V2alpha__Measurement__Result *)protobuf_c_message_unpack(
            &wfa__measurement__api__v2alpha__measurement__result__descriptor, NULL, b.len, b.data);
    assert_non_null(mr);
    assert_non_null(mr->reach);
    assert_int_equal(mr->reach->value, want_reach);
    assert_true(want_reach > 100);
    if (Kp == 1) {
        assert_null(mr->frequency);
    } else {
        assert_non_null(mr->frequency);
        assert_int_equal(mr->frequency->n_relative_frequency_distribution, K);
        for (size_t i = 0; i < (size_t)K; i++) {
            const Wfa__Measurement__Api__V2alpha__Measurement__Result__Frequency__RelativeFrequencyDistributionEntry
                *en = mr->frequency->relative_frequency_distribution[i];
            assert_true(en->key >= 1 && en->key <= K);
            assert_float_equal(en->value, want_freq[en->key - 1], 1e-12);
        }
    }
    protobuf_c_message_free_unpacked(&mr->base, NULL);
    dy_buf_free(&b);
    for (int e = 0; e < S_NREQ; e++)
        dy_ll_sketch_free(&sk[e]);
}

static void test_llv2_k3(void **state)
{
    s_fix_t *f = *state;
    s_need_mill(f);
    s_llv2_run(f, DY_PROTO_LLV2, 3);
}

static void test_llv2_k1(void **state)
{
    s_fix_t *f = *state;
    s_need_mill(f);
    s_llv2_run(f, DY_PROTO_LLV2, 1);
}

static void test_rollv2(void **state)
{
    s_fix_t *f = *state;
    s_need_mill(f);
    s_llv2_run(f, DY_PROTO_RO_LLV2, 1);
}

/* Bad inputs: PERMFAIL with the engine's code, and ours. */
static void test_llv2_bad_inputs(void **state)
{
    s_fix_t *f = *state;
    s_need_mill(f);
    uint8_t pub[3][33];
    s_rec_t sec[3];
    for (int d = 0; d < 3; d++) {
        s_llp_t p = {0};
        s_llv2_params(&p, DY_PROTO_LLV2, 3, d, 1, pub, false);
        s_res_t r = s_mill(f, d, &p.prm, NULL, 0, 1);
        s_expect_ok(&r);
        dy_buf_t b = {0};
        s_read_rec(s_out(&r, "public_key"), &b);
        memcpy(pub[d], b.data, 33);
        dy_buf_free(&b);
        sec[d] = s_as(s_out(&r, "secrets"), "secrets");
    }
    /* exec1 at NA2 with a 100-byte input: the engine's bad_length */
    uint8_t junk[100] = {1, 2, 3};
    s_rec_t bad = s_put(f, "input/na1", 7, junk, sizeof(junk));
    s_llp_t p = {0};
    s_llv2_params(&p, DY_PROTO_LLV2, 3, 1, 8, pub, true);
    s_rec_t in[2] = {sec[1], bad};
    s_res_t r = s_mill(f, 1, &p.prm, in, 2, 1);
    assert_int_equal(r.outcome, DY_OUTCOME_PERMFAIL);
    assert_string_equal(r.code, "bad_length");
    assert_int_equal(r.nout, 0);
    /* a whole block of garbage: not a point */
    uint8_t blk[390];
    memset(blk, 0x5a, sizeof(blk));
    bad = s_put(f, "input/na1", 7, blk, sizeof(blk));
    in[1] = bad;
    r = s_mill(f, 1, &p.prm, in, 2, 1);
    assert_int_equal(r.outcome, DY_OUTCOME_PERMFAIL);
    assert_string_equal(r.code, "invalid_point");
    /* a blob whose recorded hash differs */
    in[1].sha[0] ^= 1;
    r = s_mill(f, 1, &p.prm, in, 2, 1);
    assert_int_equal(r.outcome, DY_OUTCOME_PERMFAIL);
    assert_string_equal(r.code, "input_corrupt");
    /* the input missing */
    r = s_mill(f, 1, &p.prm, in, 1, 1);
    assert_int_equal(r.outcome, DY_OUTCOME_PERMFAIL);
    assert_string_equal(r.code, "missing_input");
    /* another duchy's secrets do not open under this master key */
    in[0] = sec[0];
    in[1] = bad;
    r = s_mill(f, 1, &p.prm, in, 2, 1);
    assert_int_equal(r.outcome, DY_OUTCOME_PERMFAIL);
    assert_string_equal(r.code, "secrets_unreadable");
    /* a stage that does not compute for the role */
    s_llv2_params(&p, DY_PROTO_LLV2, 3, 1, 3, pub, true);
    r = s_mill(f, 1, &p.prm, in, 2, 1);
    assert_int_equal(r.outcome, DY_OUTCOME_PERMFAIL);
    assert_string_equal(r.code, "bad_job");
    /* the master key file gone: TEMPFAIL */
    char moved[600];
    snprintf(moved, sizeof(moved), "%s.moved", f->keys[1]);
    assert_int_equal(rename(f->keys[1], moved), 0);
    s_llv2_params(&p, DY_PROTO_LLV2, 3, 1, 8, pub, true);
    in[0] = sec[1];
    r = s_mill(f, 1, &p.prm, in, 2, 1);
    assert_int_equal(r.outcome, DY_OUTCOME_TEMPFAIL);
    assert_string_equal(r.code, "master_key");
    assert_int_equal(rename(moved, f->keys[1]), 0);
}

/* ---- HMSS ------------------------------------------------------------------- */

#define H_R 64
#define H_K 3
#define H_Q 127

typedef struct {
    Halo__Internal__V1__MillParams prm;
    Halo__Internal__V1__HmssParams h;
    Halo__Internal__V1__HmssRequisition rq[S_NREQ], *rqp[S_NREQ];
    char ids[S_NREQ][8], names[S_NREQ][64], certs[S_NREQ][64];
    char ca[600], parties[600], certdir[600];
} s_hp_t;


/* Requisition e's data is at shuffler e % 2 (0 = FNA, 1 = SNA). */
static void s_hmss_params(s_fix_t *f, s_hp_t *p, int d, int stage, bool reach_only,
                          dy_buf_t *seed_ct)
{
    halo__internal__v1__mill_params__init(&p->prm);
    halo__internal__v1__hmss_params__init(&p->h);
    p->prm.protocol = (Halo__Internal__V1__Protocol)DY_PROTO_HMSS;
    p->prm.role = (Halo__Internal__V1__Role)(d == 0 ? DY_ROLE_FNA : d == 1 ? DY_ROLE_SNA : DY_ROLE_AGG);
    p->prm.stage = stage;
    p->prm.hmss = &p->h;
    p->h.ring_modulus = H_Q;
    p->h.max_frequency = reach_only ? 1 : H_K;
    p->h.reach_only = reach_only;
    p->h.vid_width = 1.0f;
    p->h.noise = HALO__INTERNAL__V1__MILL_NOISE__MILL_NOISE_NONE;
    p->h.first_non_aggregator = "na1";
    p->h.second_non_aggregator = "na2";
    p->h.peer = d == 0 ? "na2" : "na1";
    snprintf(p->ca, sizeof(p->ca), "%s/pki/trusted-ca.pem", f->root);
    snprintf(p->parties, sizeof(p->parties), "%s/pki/parties.txt", f->root);
    snprintf(p->certdir, sizeof(p->certdir), "%s/certs", f->root);
    p->h.trusted_ca = p->ca;
    p->h.parties = p->parties;
    p->h.certificate_dir = p->certdir;
    p->h.max_register_count = H_R; /* the bound itself is allowed */
    for (int e = 0; e < S_NREQ; e++) {
        Halo__Internal__V1__HmssRequisition *r = &p->rq[e];
        halo__internal__v1__hmss_requisition__init(r);
        snprintf(p->ids[e], sizeof(p->ids[e]), "r%d", e);
        snprintf(p->names[e], sizeof(p->names[e]), "computations/%s/requisitions/r%d", S_COMP, e);
        snprintf(p->certs[e], sizeof(p->certs[e]), "dataProviders/e%d/certificates/sign", e);
        r->id = p->ids[e];
        r->name = p->names[e];
        r->local = d < 2 && e % 2 == d;
        r->register_count = H_R;
        r->data_provider_certificate = p->certs[e];
        if (r->local && seed_ct)
            r->secret_seed_ciphertext = (ProtobufCBinaryData){seed_ct[e].len, seed_ct[e].data};
        p->rqp[e] = r;
    }
    p->h.n_requisitions = S_NREQ;
    p->h.requisitions = p->rqp;
}

static s_rec_t s_hmss_secrets(s_fix_t *f, int d, uint8_t pub[33])
{
    uint8_t priv[32], seed[48], mk[32];
    assert_int_equal(dy_ecies_keygen(priv, pub), 0);
    for (int i = 0; i < 48; i++)
        seed[i] = (uint8_t)s_rand();
    Halo__Internal__V1__Secrets s = HALO__INTERNAL__V1__SECRETS__INIT;
    s.hmss_enc_private = (ProtobufCBinaryData){32, priv};
    s.hmss_enc_public = (ProtobufCBinaryData){33, pub};
    s.hmss_seed = (ProtobufCBinaryData){48, seed};
    uint8_t pt[256];
    size_t n = halo__internal__v1__secrets__pack(&s, pt);
    dy_buf_t sealed = {0};
    assert_int_equal(dy_secrets_load_master(f->keys[d], mk), 0);
    assert_int_equal(dy_secrets_seal(mk, S_COMP, pt, n, &sealed), 0);
    s_rec_t r = s_put(f, "secrets", 1, sealed.data, sealed.len);
    dy_buf_free(&sealed);
    return r;
}

static void s_mkpki(s_fix_t *f)
{
    if (!f->src)
        skip();
    char cmd[2048];
    snprintf(cmd, sizeof(cmd),
             "'%s/deploy/mkpki' --dir '%s/pki' --duchies na1,na2,agg --edps e0,e1,e2 --mcs mc "
             ">/dev/null 2>&1 && mkdir -p '%s/certs/dataProviders' && for e in e0 e1 e2; do "
             "mkdir -p '%s/certs/dataProviders/'$e/certificates && ln -s '%s/pki/'$e/sign.pem "
             "'%s/certs/dataProviders/'$e/certificates/sign.pem; done",
             f->src, f->root, f->root, f->root, f->root, f->root);
    assert_int_equal(system(cmd), 0);
}

/* What s_hmss_run breaks: nothing, requisition 1's seed ciphertext (FNA cannot decrypt it),
 * requisition 1's seed signed by EDP e0 instead of e1 (FNA's signature check), or
 * requisition 2's share one register short (FNA's register count check). */
typedef enum { H_OK, H_TAMPER_SEED, H_WRONG_SIGNER, H_SHORT_SHARE, H_HUGE_COUNT } s_hmss_fault_t;

static void s_hmss_run(s_fix_t *f, bool reach_only, s_hmss_fault_t fault)
{
    s_mkpki(f);
    uint8_t pub[2][33];
    s_rec_t sec[2] = {s_hmss_secrets(f, 0, pub[0]), s_hmss_secrets(f, 1, pub[1])};
    /* EDPs: values, shares, signed seeds for the other shuffler */
    dy_hmss_params_t hp = {.ring_modulus = H_Q, .max_frequency = reach_only ? 1 : H_K,
                           .num_sketches = S_NREQ, .reach_only = reach_only, .vid_width = 1.0f,
                           .noise = DY_NOISE_NONE, .threads = 1};
    uint32_t sum[H_R] = {0};
    dy_buf_t seed_ct[S_NREQ] = {{0}};
    s_rec_t data[S_NREQ];
    for (int e = 0; e < S_NREQ; e++) {
        uint32_t v[H_R], share[H_R];
        uint8_t seed[48];
        for (int i = 0; i < H_R; i++) {
            v[i] = (uint32_t)(s_rand() % 3 == 0 ? 0 : 1 + s_rand() % (uint64_t)hp.max_frequency);
            sum[i] += v[i];
        }
        dy_err_t err;
        dy_err_clear(&err);
        assert_int_equal(dy_hmss_share(&hp, v, H_R, seed, share, &err), 0);
        dy_buf_t le = {0};
        assert_int_equal(dy_hmss_to_le(share, fault == H_SHORT_SHARE && e == 2 ? H_R - 1 : H_R,
                                       &le), 0);
        char slot[32], path[600], name[64];
        snprintf(slot, sizeof(slot), "requisition/r%d", e);
        data[e] = s_put(f, slot, 0, le.data, le.len);
        dy_buf_free(&le);
        snprintf(path, sizeof(path), "%s/pki/e%d/sign.key", f->root,
                 fault == H_WRONG_SIGNER && e == 1 ? 0 : e);
        EVP_PKEY *k = dy_mc_load_sign_key(path);
        assert_non_null(k);
        snprintf(name, sizeof(name), "computations/%s/requisitions/r%d", S_COMP, e);
        /* seed for the shuffler that does not hold the data */
        assert_int_equal(dy_mc_seed_seal(k, pub[1 - e % 2], "computations/" S_COMP, name, seed,
                                         &seed_ct[e]), 0);
        if (fault == H_TAMPER_SEED && e == 1)
            seed_ct[e].data[seed_ct[e].len - 1] ^= 1;
        EVP_PKEY_free(k);
    }
    /* SETUP_PHASE at FNA and SNA */
    s_rec_t setup[2];
    for (int d = 0; d < 2; d++) {
        s_hp_t p;
        s_hmss_params(f, &p, d, 4, reach_only, seed_ct);
        if (fault == H_HUGE_COUNT && d == 1) /* the SNA forwards r1's seed with 2^40 */
            p.rq[1].register_count = (int64_t)1 << 40;
        s_res_t r = s_mill(f, d, &p.prm, &sec[d], 1, 1);
        s_expect_ok(&r);
        setup[d] = *s_out(&r, "output");
    }
    /* SHUFFLE_PHASE at FNA and SNA: local shares + the peer's forwarded seeds */
    s_rec_t agg_in[2];
    for (int d = 0; d < 2; d++) {
        s_hp_t p;
        s_hmss_params(f, &p, d, 7, reach_only, NULL);
        s_rec_t in[6];
        size_t n = 0;
        in[n++] = sec[d];
        in[n++] = s_as(&setup[1 - d], d == 0 ? "input/na2" : "input/na1");
        for (int e = 0; e < S_NREQ; e++)
            if (e % 2 == d)
                in[n++] = data[e];
        s_res_t r = s_mill(f, d, &p.prm, in, n, 1);
        if (fault != H_OK && d == 0) { /* requisition 1's seed and 2's share are at FNA */
            assert_int_equal(r.outcome, DY_OUTCOME_PERMFAIL);
            /* the reason names the cause and the requisition(s) */
            if (fault == H_HUGE_COUNT) {
                /* refused before the expansion allocates: not out_of_memory, not retried */
                assert_string_equal(r.code, "register_count_too_large");
                assert_non_null(strstr(r.message, "requisition r1: register count 1099511627776"));
            } else if (fault == H_SHORT_SHARE) {
                assert_string_equal(r.code, "share_inconsistent");
                assert_non_null(strstr(r.message, "requisition r0 has 64"));
                assert_non_null(strstr(r.message, "requisition r2 63"));
            } else {
                assert_string_equal(r.code, "seed_invalid");
                assert_non_null(strstr(r.message, "requisition r1: "));
                assert_non_null(strstr(r.message, fault == H_WRONG_SIGNER
                                                      ? "signature does not verify"
                                                      : "does not decrypt"));
            }
            for (int e = 0; e < S_NREQ; e++)
                dy_buf_free(&seed_ct[e]);
            return;
        }
        s_expect_ok(&r);
        agg_in[d] = *s_out(&r, "output");
    }
    /* AGGREGATION_PHASE */
    s_hp_t p;
    s_hmss_params(f, &p, 2, 8, reach_only, NULL);
    s_rec_t in[2] = {s_as(&agg_in[0], "input/na1"), s_as(&agg_in[1], "input/na2")};
    s_res_t r = s_mill(f, 2, &p.prm, in, 2, 1);
    s_expect_ok(&r);
    assert_int_equal(r.nout, 1);
    /* truth */
    int64_t reach = 0;
    int64_t hist[H_K + 1] = {0};
    for (int i = 0; i < H_R; i++) {
        if (sum[i])
            reach++;
        hist[sum[i] >= H_K ? H_K : sum[i]]++;
    }
    dy_buf_t b = {0};
    s_read_rec(s_out(&r, "result"), &b);
    Wfa__Measurement__Api__V2alpha__Measurement__Result *mr =
        (Wfa__Measurement__Api__V2alpha__Measurement__Result *)protobuf_c_message_unpack(
            &wfa__measurement__api__v2alpha__measurement__result__descriptor, NULL, b.len, b.data);
    assert_non_null(mr);
    assert_int_equal(mr->reach->value, reach);
    if (reach_only) {
        assert_null(mr->frequency);
    } else {
        assert_int_equal(mr->frequency->n_relative_frequency_distribution, H_K);
        for (size_t i = 0; i < H_K; i++) {
            const Wfa__Measurement__Api__V2alpha__Measurement__Result__Frequency__RelativeFrequencyDistributionEntry
                *en = mr->frequency->relative_frequency_distribution[i];
            assert_float_equal(en->value, (double)hist[en->key] / (double)reach, 1e-12);
        }
    }
    protobuf_c_message_free_unpacked(&mr->base, NULL);
    dy_buf_free(&b);
    for (int e = 0; e < S_NREQ; e++)
        dy_buf_free(&seed_ct[e]);
}

static void test_hmss(void **state)
{
    s_fix_t *f = *state;
    s_need_mill(f);
    s_hmss_run(f, false, H_OK);
}

static void test_hmss_reach_only(void **state)
{
    s_fix_t *f = *state;
    s_need_mill(f);
    s_hmss_run(f, true, H_OK);
}

static void test_hmss_tampered_seed(void **state)
{
    s_fix_t *f = *state;
    s_need_mill(f);
    s_hmss_run(f, false, H_TAMPER_SEED);
}

/* A seed signed by another EDP's key: seed_invalid, saying the signature does not verify. */
static void test_hmss_wrong_signer(void **state)
{
    s_fix_t *f = *state;
    s_need_mill(f);
    s_hmss_run(f, false, H_WRONG_SIGNER);
}

/* A share of the wrong length (header and body agreeing): share_inconsistent, naming both
 * requisitions whose counts differ. */
static void test_hmss_short_share(void **state)
{
    s_fix_t *f = *state;
    s_need_mill(f);
    s_hmss_run(f, false, H_SHORT_SHARE);
}

/* A peer-forwarded register count above max_register_count (gateway.max_upload / 4):
 * register_count_too_large at once, where it was bounded only by the mill's memory limit. */
static void test_hmss_huge_count(void **state)
{
    s_fix_t *f = *state;
    s_need_mill(f);
    s_hmss_run(f, false, H_HUGE_COUNT);
}

/* A job that is not a frame: TEMPFAIL bad_job, still a typed result. */
static void test_bad_job(void **state)
{
    s_fix_t *f = *state;
    s_need_mill(f);
    char *argv[] = {"duchy-mill", NULL};
    uint8_t junk[3] = {0, 0, 9};
    dy_spawn_conf_t conf = {.path = f->mill, .argv = argv, .job = junk, .job_len = 3,
                            .deadline_ms = 10000};
    dy_spawn_t *sp = dy_spawn_start(&conf);
    assert_non_null(sp);
    assert_int_equal(dy_spawn_wait(sp), 0);
    dy_spawn_status_t st;
    dy_spawn_status(sp, &st);
    dy_mill_outcome_t oc;
    dy_mill_outcome(&st, "", &oc);
    assert_int_equal(oc.outcome, DY_OUTCOME_TEMPFAIL);
    assert_string_equal(oc.code, "bad_job");
    dy_mill_outcome_clear(&oc);
    /* and the claimer-side mapping of a result for another job */
    dy_mill_outcome(&st, "other", &oc);
    assert_string_equal(oc.code, "mill_bad_result");
    dy_mill_outcome_clear(&oc);
    dy_spawn_destroy(&sp);
}

/* claim_job.c's frames. */
static void test_frames(void **state)
{
    (void)state;
    dy_buf_t b = {0};
    const uint8_t *body;
    size_t n;
    assert_int_equal(dy_mill_frame((const uint8_t *)"abc", 3, &b), 0);
    assert_int_equal(b.len, 7);
    assert_int_equal(dy_mill_unframe(b.data, b.len, &body, &n), 0);
    assert_int_equal(n, 3);
    assert_memory_equal(body, "abc", 3);
    assert_int_equal(dy_mill_unframe(b.data, b.len - 1, &body, &n), -EBADMSG);
    assert_int_equal(dy_mill_unframe(b.data, 3, &body, &n), -EBADMSG);
    dy_buf_append(&b, "x", 1);
    assert_int_equal(dy_mill_unframe(b.data, b.len, &body, &n), -EBADMSG);
    dy_buf_free(&b);
    dy_spawn_status_t st = {.exited = false, .signal = 9};
    dy_mill_outcome_t oc;
    dy_mill_outcome(&st, "j", &oc);
    assert_string_equal(oc.code, "mill_signal");
    st = (dy_spawn_status_t){.deadline = true};
    dy_mill_outcome(&st, "j", &oc);
    assert_string_equal(oc.code, "mill_deadline");
    st = (dy_spawn_status_t){.exited = true, .exit_code = 111};
    dy_mill_outcome(&st, "j", &oc);
    assert_string_equal(oc.code, "mill_exit");
    st = (dy_spawn_status_t){.exited = true};
    dy_mill_outcome(&st, "j", &oc);
    assert_string_equal(oc.code, "mill_no_result");
    /* an UNSPECIFIED outcome never reads as success */
    Halo__Internal__V1__MillResult r = HALO__INTERNAL__V1__MILL_RESULT__INIT;
    r.job_id = "j";
    uint8_t pb[64];
    size_t pl = halo__internal__v1__mill_result__pack(&r, pb);
    assert_int_equal(dy_mill_frame(pb, pl, &b), 0);
    st.result = b.data;
    st.result_len = b.len;
    dy_mill_outcome(&st, "j", &oc);
    assert_int_equal(oc.outcome, DY_OUTCOME_TEMPFAIL);
    assert_string_equal(oc.code, "mill_bad_result");
    dy_buf_free(&b);
    r.outcome = HALO__INTERNAL__V1__MILL_RESULT__OUTCOME__PERMFAIL;
    r.code = "bad_length";
    pl = halo__internal__v1__mill_result__pack(&r, pb);
    assert_int_equal(dy_mill_frame(pb, pl, &b), 0);
    st.result = b.data;
    st.result_len = b.len;
    dy_mill_outcome(&st, "j", &oc);
    assert_int_equal(oc.outcome, DY_OUTCOME_PERMFAIL);
    assert_string_equal(oc.code, "bad_length");
    dy_mill_outcome_clear(&oc);
    dy_buf_free(&b);
}

/* claim_build.c's output slots (the output cache) and the §5.4 jump. */
static void test_claim_slots(void **state)
{
    (void)state;
    const char *s[3];
    assert_int_equal(dy_claim_output_slots(DY_PROTO_LLV2, DY_ROLE_NA, 1, 3, s), 2);
    assert_string_equal(s[0], "secrets");
    assert_string_equal(s[1], "public_key");
    assert_int_equal(dy_claim_output_slots(DY_PROTO_LLV2, DY_ROLE_AGG, 10, 3, s), 2);
    assert_string_equal(s[0], "output");
    assert_string_equal(s[1], "reach");
    assert_int_equal(dy_claim_output_slots(DY_PROTO_LLV2, DY_ROLE_AGG, 10, 1, s), 2);
    assert_string_equal(s[0], "reach");
    assert_string_equal(s[1], "result");
    assert_int_equal(dy_claim_output_slots(DY_PROTO_LLV2, DY_ROLE_AGG, 12, 3, s), 1);
    assert_string_equal(s[0], "result");
    assert_int_equal(dy_claim_output_slots(DY_PROTO_LLV2, DY_ROLE_NA, 3, 3, s), 0);
    assert_int_equal(dy_claim_output_slots(DY_PROTO_RO_LLV2, DY_ROLE_AGG, 8, 1, s), 1);
    assert_string_equal(s[0], "result");
    assert_int_equal(dy_claim_output_slots(DY_PROTO_HMSS, DY_ROLE_AGG, 1, 3, s), 0);
    assert_int_equal(dy_claim_output_slots(DY_PROTO_HMSS, DY_ROLE_FNA, 7, 3, s), 1);
    assert_string_equal(s[0], "output");
    assert_int_equal(dy_claim_output_slots(DY_PROTO_HMSS, DY_ROLE_AGG, 8, 3, s), 1);
    assert_string_equal(s[0], "result");
    dy_store_completion_t c = {0};
    dy_claim_jump(DY_PROTO_LLV2, 2, &c);
    assert_int_equal(c.jump_min_kingdom_state, 3);
    assert_int_equal(c.jump_stage, 3);
    memset(&c, 0, sizeof(c));
    dy_claim_jump(DY_PROTO_LLV2, 4, &c);
    assert_int_equal(c.jump_stage, 6);
    assert_int_equal(c.jump_min_kingdom_state, 4);
    memset(&c, 0, sizeof(c));
    dy_claim_jump(DY_PROTO_HMSS, 2, &c);
    assert_int_equal(c.jump_stage, 4);
    memset(&c, 0, sizeof(c));
    dy_claim_jump(DY_PROTO_LLV2, 7, &c);
    assert_int_equal(c.jump_min_kingdom_state, 0);
    memset(&c, 0, sizeof(c));
    dy_claim_jump(DY_PROTO_HMSS, 3, &c);
    assert_int_equal(c.jump_min_kingdom_state, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_frames),
        cmocka_unit_test(test_claim_slots),
        cmocka_unit_test_setup_teardown(test_bad_job, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_llv2_k3, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_llv2_k1, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_rollv2, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_llv2_bad_inputs, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_hmss, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_hmss_reach_only, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_hmss_tampered_seed, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_hmss_wrong_signer, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_hmss_short_share, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_hmss_huge_count, s_setup, s_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
