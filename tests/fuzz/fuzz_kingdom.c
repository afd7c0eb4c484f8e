/* fuzz_kingdom.c - libFuzzer target for what a duchy decodes from the Kingdom's system API
 * (proto/system.proto; STYLE.md rule 38), through the functions the actors call:
 *   0 a StreamActiveComputations item as duchy-herald processes it (actors/herald.c
 *     s_process / s_apply): dy_herald_computation_id, dy_details_build (the PROTOCOL.md
 *     §3.1 checks: protocol config, measurement spec, participants and their keys,
 *     requisitions, roles, ring), dy_herald_plan and the continuation token
 *     (dy_herald_token_key); the details it would store then go through every reader
 *     (below);
 *   1 the Computation duchy-participant reads at CONFIRMATION_PHASE: dy_kf_confirm_check
 *     (nonces, data present, each participant's certificate chain and key signature), with
 *     the stored details of a fixture computation;
 *   2 a ComputationParticipant and a Certificate answer: the participant's state and etag,
 *     dy_mc_cert_from_der, dy_mc_trust_check for the duchy, dy_kf_key_verify of a key
 *     signature with the certificate's key;
 *   3 stored ComputationDetails as every actor reads them back: dy_details_parse, then
 *     dy_coord_plan_sends for each stage, dy_coord_input_rule for each description and
 *     sender, dy_coord_fulfill_match, dy_details_ring_keys / successor.
 * Keys, certificates and trust are the fixture's (tests/fuzz/fuzz_fixture.h).
 * Input layout: byte 0 operation (% 4); byte 1 selector: duchy b % 3 (worker1, worker2,
 * aggregator), (b / 3) & 1 exists locally, (b / 6) & 1 ended, (op 1) (b / 12) % 3 the
 * stored computation (LLv2, RO-LLv2, LLv2 with unsigned keys), (op 1) b & 0x80 data
 * present; then the message (op 2: three parts of a 2-byte big-endian length and bytes).
 * Invariants (abort on violation): details the herald builds parse back for the same duchy
 * and its plan exists; every reader refuses with an error or answers consistently; send
 * headers it plans decode as AdvanceComputation headers.
 */
#include <stdlib.h>
#include <string.h>

#include "fuzz_fixture.h"
#include "herald_rules.h"
#include "wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef FZ_SYS(Computation) s_comp_t;

/* The stored details for op 1: [which][duchy]. */
static dy_details_t s_stored[3][FZ_NDUCHIES];
static bool s_ready;

static void s_close(void)
{
    for (int i = 0; i < 3; i++)
        for (int d = 0; d < FZ_NDUCHIES; d++)
            dy_details_free(&s_stored[i][d]);
}

static void s_init(void)
{
    if (s_ready)
        return;
    const fz_comp_t c[3] = {
        {0x131, DY_PROTO_LLV2, true, 3, false,
         FZ_SYSI(COMPUTATION__STATE__PENDING_PARTICIPANT_CONFIRMATION), true, true, 2, true},
        {0x132, DY_PROTO_RO_LLV2, false, 1, false,
         FZ_SYSI(COMPUTATION__STATE__PENDING_PARTICIPANT_CONFIRMATION), true, true, 2, true},
        {0x133, DY_PROTO_LLV2, true, 3, false,
         FZ_SYSI(COMPUTATION__STATE__PENDING_PARTICIPANT_CONFIRMATION), true, false, 3, true},
    };
    for (int i = 0; i < 3; i++)
        for (int d = 0; d < FZ_NDUCHIES; d++) {
            dy_buf_t det = {0};
            fz_details(&c[i], d, &det);
            char err[256];
            FZ_CHECK(dy_details_parse(det.data, det.len, fz_duchy[d], &s_stored[i][d], err,
                                      sizeof(err)) == 0);
            dy_buf_free(&det);
        }
    atexit(s_close);
    s_ready = true;
}

/* Every reader of stored details (claimer, participant, submitter, coordinator). */
static void s_readers(const uint8_t *det, size_t len, int d)
{
    const char *me = fz_duchy[d];
    dy_details_t dd;
    char err[256];
    memset(err, 'x', sizeof(err));
    int rc = dy_details_parse(det, len, me, &dd, err, sizeof(err));
    FZ_CHECK(rc == 0 || rc == -EINVAL || rc == -ENOMEM || rc == -EIO);
    if (rc < 0) {
        FZ_CHECK(memchr(err, '\0', sizeof(err)) != NULL);
        return;
    }
    FZ_CHECK(strcmp(dd.my_id, me) == 0 && dd.nparticipants <= 3);
    FZ_CHECK(dd.protocol >= DY_PROTO_LLV2 && dd.protocol <= DY_PROTO_HMSS);
    if (dd.has_ring) {
        uint8_t keys[3][33];
        FZ_CHECK(dy_details_ring_keys(&dd, keys) == 0);
        if (dy_details_ring_index(&dd, me) >= 0)
            FZ_CHECK(dy_details_successor(&dd) != NULL);
    }
    for (size_t i = 1; i < dd.nrequisitions; i++)
        FZ_CHECK(strcmp(dd.requisitions[i - 1].id, dd.requisitions[i].id) < 0);
    /* The coordinator's sends after the protocol's work stages (and one that is not): the
     * headers must decode. */
    static const int ll_stages[] = {0, 1, 3, 6, 8, 10, 12}, ro_stages[] = {0, 6, 8},
                     hm_stages[] = {0, 1, 4, 7, 8};
    const int *stages = dd.protocol == DY_PROTO_LLV2      ? ll_stages
                        : dd.protocol == DY_PROTO_RO_LLV2 ? ro_stages
                                                          : hm_stages;
    size_t nstages = dd.protocol == DY_PROTO_LLV2      ? DY_ARRAY_LEN(ll_stages)
                     : dd.protocol == DY_PROTO_RO_LLV2 ? DY_ARRAY_LEN(ro_stages)
                                                       : DY_ARRAY_LEN(hm_stages);
    for (size_t si = 0; si < nstages; si++) {
        dy_coord_send_t out[2];
        char why[160];
        int n = dy_coord_plan_sends(det, len, me, stages[si], out, why, sizeof(why));
        FZ_CHECK(n == -EINVAL || (n >= 0 && n <= 2));
        for (int i = 0; i < n; i++) {
            dy_coord_advance_hdr_t h;
            dy_coord_reply_t r = {0};
            FZ_CHECK(dy_coord_decode_advance(out[i].header, out[i].header_len, &h, &r) == 0);
            FZ_CHECK(h.protocol == dd.protocol && h.description == out[i].description);
            FZ_CHECK(strcmp(h.computation, dd.computation_id) == 0);
            FZ_CHECK(out[i].peer[0] != '\0' && strcmp(out[i].peer, me) != 0);
            dy_coord_send_free(&out[i]);
        }
    }
    /* The §6.1 receive rules for each description from each other duchy. */
    dy_coord_advance_hdr_t h = {.protocol = dd.protocol};
    snprintf(h.computation, sizeof(h.computation), "%s", dd.computation_id);
    int max_desc = dd.protocol == DY_PROTO_LLV2 ? 4 : dd.protocol == DY_PROTO_RO_LLV2 ? 2 : 3;
    for (h.description = 1; h.description <= max_desc; h.description++)
        for (int s = 0; s < FZ_NDUCHIES; s++) {
            if (s == d)
                continue;
            dy_coord_input_rule_t rule;
            dy_coord_reply_t r = {0};
            rc =
                dy_coord_input_rule(det, len, me, dd.protocol, dd.role, &h, fz_duchy[s], &rule, &r);
            FZ_CHECK(rc == 0 || (rc == -1 && r.code != 0 && r.message[0] != '\0'));
            if (rc == 0)
                FZ_CHECK(strcmp(rule.slot, fz_duchy[s]) == 0 && rule.nslots >= 1 &&
                         rule.nslots <= 2);
            dy_coord_reply_clear(&r);
        }
    /* FulfillRequisition of each listed requisition, with its nonce when the Kingdom set
     * one. */
    for (size_t i = 0; i < dd.nrequisitions; i++) {
        dy_coord_fulfill_hdr_t fh = {.nonce =
                                         dd.requisitions[i].nonce ? dd.requisitions[i].nonce : 1};
        snprintf(fh.dp, sizeof(fh.dp), "%s", FZ_EDP_ID);
        snprintf(fh.req, sizeof(fh.req), "%s", dd.requisitions[i].id);
        fh.hmss = dd.protocol == DY_PROTO_HMSS;
        fh.register_count = 4;
        dy_coord_fulfill_match_t m;
        dy_coord_reply_t r = {0};
        rc = dy_coord_fulfill_match(det, len, me, &fh, &m, &r);
        FZ_CHECK(rc == 0 || rc == 1 || (rc == -1 && r.code != 0));
        dy_coord_reply_clear(&r);
    }
    dy_details_free(&dd);
}

static void s_stream_item(int sel, const uint8_t *msg, size_t len)
{
    int d = sel % 3;
    bool exists = (sel / 3) & 1, ended = (sel / 6) & 1;
    FZ_SYS(StreamActiveComputationsResponse) *resp =
        wfa__measurement__system__v1alpha__stream_active_computations_response__unpack(NULL, len,
                                                                                       msg);
    if (resp == NULL)
        return;
    int64_t t = 0;
    uint64_t kid = 0;
    if (resp->continuation_token != NULL && resp->continuation_token[0] != '\0')
        (void)dy_herald_token_key(resp->continuation_token, &t, &kid);
    const s_comp_t *k = resp->computation;
    char id[DY_ID_MAX];
    if (k == NULL || dy_herald_computation_id(k->name, id, sizeof(id)) < 0) {
        wfa__measurement__system__v1alpha__stream_active_computations_response__free_unpacked(resp,
                                                                                              NULL);
        return;
    }
    FZ_CHECK(strlen(id) < DY_ID_MAX && id[0] != '\0');
    size_t klen = 0;
    uint8_t *kbytes = fz_pack(&k->base, &klen);
    dy_buf_t det = {0};
    char why[256] = "";
    bool terminal = dy_kf_state_terminal((int)k->state);
    int protocol = DY_PROTO_LLV2, role = DY_ROLE_NA;
    int rc = 0;
    if (!terminal) {
        rc = dy_details_build(kbytes, klen, fz_duchy[d], FZ_AGG_ID, FZ_FNA_ID, FZ_SNA_ID, &det, why,
                              sizeof(why));
        FZ_CHECK(rc == 0 || rc == -EINVAL || rc == -ENOMEM || rc == -EIO);
        if (rc == 0) {
            /* What the herald stores, every actor must be able to read. */
            dy_details_t dd;
            char err[256];
            rc = dy_details_parse(det.data, det.len, fz_duchy[d], &dd, err, sizeof(err));
            if (rc != 0)
                fprintf(stderr, "built details do not parse: %s\n", err);
            FZ_CHECK(rc == 0);
            FZ_CHECK(strcmp(dd.computation_id, id) == 0);
            protocol = dd.protocol;
            role = dd.role;
            dy_details_free(&dd);
            s_readers(det.data, det.len, d);
        }
    }
    if (rc == 0 && (exists || !terminal)) {
        dy_hr_plan_t plan;
        int prc = dy_herald_plan(protocol, role, (int)k->state, exists, ended, &plan);
        FZ_CHECK(prc == 0 || prc == -EINVAL);
        if (prc == 0 && plan.action == DY_HR_CREATE)
            FZ_CHECK(!exists && plan.to_stage > 0);
    }
    dy_buf_free(&det);
    free(kbytes);
    wfa__measurement__system__v1alpha__stream_active_computations_response__free_unpacked(resp,
                                                                                          NULL);
}

typedef struct {
    bool data_present;
} s_cb_t;

static bool s_has_data(const char *requisition_id, void *arg)
{
    const s_cb_t *cb = arg;
    return cb->data_present && requisition_id[0] != '\0';
}

static int s_fetch_cert(const char *cert_name, dy_buf_t *ret_der, void *arg)
{
    (void)arg;
    const fz_world_t *w = fz_world();
    for (int i = 0; i < FZ_NDUCHIES; i++) {
        char want[96];
        snprintf(want, sizeof(want), "duchies/%s/certificates/sign", fz_duchy[i]);
        if (strcmp(cert_name, want) == 0)
            return dy_buf_append(ret_der, w->sign_der[i].data, w->sign_der[i].len);
    }
    return -ENOENT;
}

static void s_confirm(int sel, const uint8_t *msg, size_t len)
{
    const fz_world_t *w = fz_world();
    const dy_details_t *d = &s_stored[(sel / 12) % 3][sel % 3];
    s_cb_t cb = {.data_present = (sel & 0x80) != 0};
    char code[48], err[256];
    memset(code, 'x', sizeof(code));
    int rc = dy_kf_confirm_check(d, msg, len, w->trust, s_has_data, s_fetch_cert, &cb, code, err,
                                 sizeof(err));
    FZ_CHECK(rc == 0 || rc == -EBADMSG || rc == -EACCES || rc == -ENOENT || rc == -ENOMEM);
    if (rc < 0)
        FZ_CHECK(memchr(code, '\0', sizeof(code)) != NULL && code[0] != '\0');
}

static void s_participant(int sel, const uint8_t *msg, size_t len)
{
    const fz_world_t *w = fz_world();
    int d = sel % 3;
    fz_in_t in = {msg, len};
    fz_in_t cpb = fz_part(&in), certb = fz_part(&in), sig = fz_part(&in);
    FZ_SYS(ComputationParticipant) *cp =
        wfa__measurement__system__v1alpha__computation_participant__unpack(NULL, cpb.n, cpb.p);
    if (cp != NULL) {
        /* duchy-participant: skip when past CREATED / READY, else use the etag. */
        FZ_CHECK(cp->etag != NULL && cp->name != NULL);
        wfa__measurement__system__v1alpha__computation_participant__free_unpacked(cp, NULL);
    }
    FZ_V2(Certificate) *c =
        wfa__measurement__api__v2alpha__certificate__unpack(NULL, certb.n, certb.p);
    if (c == NULL)
        return;
    X509 *x = dy_mc_cert_from_der(c->x509_der.data, c->x509_der.len);
    wfa__measurement__api__v2alpha__certificate__free_unpacked(c, NULL);
    if (x == NULL)
        return;
    char party[64], why[160];
    snprintf(party, sizeof(party), "duchies/%s", fz_duchy[d]);
    int rc = dy_mc_trust_check(w->trust, x, party, why, sizeof(why));
    FZ_CHECK(rc == 0 || rc == -EACCES);
    EVP_PKEY *pk = rc == 0 ? X509_get0_pubkey(x) : NULL;
    if (pk != NULL) {
        char cid[DY_EXT_ID_LEN + 1], cname[64];
        fz_id(0x131, cid);
        snprintf(cname, sizeof(cname), "computations/%s", cid);
        rc = dy_kf_key_verify(pk, DY_KF_LABEL_ELGAMAL, cname, w->llv2_pub[d], sig.p, sig.n);
        FZ_CHECK(rc == 0 || rc == -EBADMSG);
    }
    X509_free(x);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    s_init();
    fz_rng_reset(0x6b696e67);
    int op = data[0] % 4, sel = data[1];
    const uint8_t *msg = data + 2;
    size_t len = size - 2;
    switch (op) {
    case 0:
        s_stream_item(sel, msg, len);
        break;
    case 1:
        s_confirm(sel, msg, len);
        break;
    case 2:
        s_participant(sel, msg, len);
        break;
    default:
        s_readers(msg, len, sel % 3);
        break;
    }
    return 0;
}
