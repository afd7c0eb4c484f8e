/* fuzz_edp.c - libFuzzer target for what a duchy decodes from a data provider
 * (RequisitionFulfillment, proto/public.proto; STYLE.md rule 38), through the code that
 * really handles it:
 *   0 the FulfillRequisition header: dy_coord_fulfill_header against an in-memory store of
 *     the fixture's computations (dy_coord_decode_fulfill, then dy_coord_fulfill_match on
 *     every active computation: name, fingerprint, nonce, HMSS assignment); an accepted
 *     HMSS header's stored seed fields are read back as duchy-claimer does
 *     (claim_build.c) and the seed opened by the peer shuffler (dy_mc_seed_open);
 *   1 the HMSS signed seed as the receiving shuffler opens it: dy_mc_seed_open (ECIES
 *     decryption, then the EDP's signature over it, strict DER);
 *   2 the HMSS data share as duchy-mill reads it: dy_hmss_from_le, then dy_hmss_shuffle
 *     with it beside a seed share of the same length;
 *   3 the LLv2 / RO-LLv2 encrypted sketch as stored and set up: the coordinator's block
 *     check, then dy_llv2_setup / dy_rollv2_setup at NA1 (every point validated);
 *   4 the measurement spec and the encrypted requisition spec as parties parse them:
 *     dy_mc_spec_parse, dy_mc_reqspec_open.
 * Input layout: byte 0 operation (% 5); byte 1 selector (op 0: receiving duchy b % 3 and
 * caller (b / 3) % 3 of dataProviders/edp1, dataProviders/edp2, duchies/worker1; op 1:
 * receiving shuffler b % 2 and requisition (b / 2) % 3 of computation 0x125; op 2: ring
 * modulus b % 4 of 127, 2, 2^31 - 1, 2^32; op 3: RO if b & 1, K = 1 if b & 2, noise if
 * b & 4); then the message (op 4: two parts, each a 2-byte big-endian length and bytes).
 * Invariants (abort on violation) are checked after each call; see the functions.
 */
#include <stdlib.h>
#include <string.h>

#include "fuzz_fixture.h"
#include "protocol/hmss.h"
#include "wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define S_MAX_REGISTERS 4096 /* cap of the shuffle runs here (the product allows 2^32) */

typedef Wfa__Measurement__Api__V2alpha__FulfillRequisitionRequest__Header__HonestMajorityShareShuffle
    s_hmss_hdr_t;

static fz_coord_t s_co;
static bool s_ready;
static EVP_PKEY *s_edp_pub;

static const char *const s_callers[3] = {"dataProviders/edp1", "dataProviders/edp2",
                                         "duchies/worker1"};

static void s_close(void)
{
    fz_coord_close(&s_co);
    EVP_PKEY_free(s_edp_pub);
}

static void s_init(void)
{
    if (s_ready)
        return;
    const fz_world_t *w = fz_world();
    fz_coord_open(&s_co);
    uint8_t pub[33];
    FZ_CHECK(dy_sig_key_pub(w->sign[FZ_EDP], pub) == 0);
    s_edp_pub = dy_sig_key_from_pub(pub, 33);
    FZ_CHECK(s_edp_pub != NULL);
    atexit(s_close);
    s_ready = true;
}

/* The receiving shuffler's side of a seed: 0 or -EBADMSG, a seed only on success. */
static int s_seed_open(int shuffler, const char *comp_id, const char *req_name, const uint8_t *ct,
                       size_t len)
{
    const fz_world_t *w = fz_world();
    char cname[96];
    snprintf(cname, sizeof(cname), "computations/%s", comp_id);
    uint8_t seed[DY_MC_SEED_LEN];
    memset(seed, 0xa5, sizeof(seed));
    int rc = dy_mc_seed_open(w->hmss_priv[shuffler], s_edp_pub, cname, req_name, ct, len, seed);
    FZ_CHECK(rc == 0 || rc == -EBADMSG);
    if (rc == 0)
        FZ_CHECK(len > DY_ECIES_OVERHEAD + DY_MC_SEED_LEN);
    return rc;
}

static void s_fulfill(int d, const char *caller, const uint8_t *msg, size_t len)
{
    dy_coord_reply_t r = {0};
    dy_coord_fulfill_header(&s_co.ctx[d], caller, msg, len, &r);
    FZ_CHECK(dy_wire_status_name(r.code) != NULL);
    if (r.code != 0) {
        FZ_CHECK(!r.accept_upload && r.response == NULL && r.message[0] != '\0');
        dy_coord_reply_clear(&r);
        return;
    }
    FZ_CHECK(r.accept_upload && r.max_total > 0);
    /* Accepted: the caller owns the requisition, and what the coordinator would store for
     * it reads back as claim_build.c reads it. */
    dy_coord_fulfill_hdr_t h;
    dy_coord_reply_t r2 = {0};
    FZ_CHECK(dy_coord_decode_fulfill(msg, len, caller, &h, &r2) == 0);
    FZ_CHECK(strncmp(caller, "dataProviders/", 14) == 0 && strcmp(caller + 14, h.dp) == 0);
    if (h.hmss) {
        FZ_CHECK(r.max_total == (uint64_t)h.register_count * 4u);
        FZ_CHECK(d == 0 || d == 1); /* only a non-aggregator takes HMSS data */
        s_hmss_hdr_t *hm = (s_hmss_hdr_t *)protobuf_c_message_unpack(
            &wfa__measurement__api__v2alpha__fulfill_requisition_request__header__honest_majority_share_shuffle__descriptor,
            NULL, h.seed_len, h.seed);
        FZ_CHECK(hm != NULL && hm->secret_seed != NULL && hm->register_count > 0);
        /* The seed goes to the other shuffler, which opens it under the system name. */
        Wfa__Measurement__Api__V2alpha__FulfillRequisitionRequest *q =
            wfa__measurement__api__v2alpha__fulfill_requisition_request__unpack(NULL, len, msg);
        FZ_CHECK(q != NULL);
        for (size_t i = 0; i < FZ_NROWS; i++) {
            char cid[DY_EXT_ID_LEN + 1], rname[128];
            fz_id(fz_rows[i].c.id, cid);
            snprintf(rname, sizeof(rname), "computations/%s/requisitions/%s", cid, h.req);
            for (size_t k = 0; k < fz_rows[i].c.nreq; k++) {
                char rid[DY_EXT_ID_LEN + 1];
                fz_id(fz_req_id(fz_rows[i].c.id, k), rid);
                if (strcmp(rid, h.req) == 0)
                    (void)s_seed_open(1 - d, cid, rname, hm->secret_seed->ciphertext.data,
                                      hm->secret_seed->ciphertext.len);
            }
        }
        wfa__measurement__api__v2alpha__fulfill_requisition_request__free_unpacked(q, NULL);
        protobuf_c_message_free_unpacked(&hm->base, NULL);
    } else {
        FZ_CHECK(r.max_total == s_co.ctx[d].max_upload);
    }
    dy_coord_fulfill_hdr_free(&h);
    dy_coord_reply_clear(&r2);
    dy_coord_reply_clear(&r);
}

static void s_seed(int sel, const uint8_t *msg, size_t len)
{
    uint64_t comp = 0x125;
    char cid[DY_EXT_ID_LEN + 1], rid[DY_EXT_ID_LEN + 1], rname[128];
    fz_id(comp, cid);
    fz_id(fz_req_id(comp, (size_t)(sel / 2) % 3), rid);
    snprintf(rname, sizeof(rname), "computations/%s/requisitions/%s", cid, rid);
    (void)s_seed_open(sel % 2, cid, rname, msg, len);
}

static void s_share(int sel, const uint8_t *msg, size_t len)
{
    static const uint64_t qs[4] = {FZ_Q, 2, 2147483647ull, 4294967296ull};
    uint64_t q = qs[sel % 4];
    uint32_t *v = NULL;
    size_t n = 0;
    dy_err_t e;
    dy_err_clear(&e);
    int rc = dy_hmss_from_le(msg, len, q, &v, &n, &e);
    if (rc < 0) {
        FZ_CHECK(e.outcome == DY_OUTCOME_PERMFAIL && v == NULL);
        return;
    }
    FZ_CHECK(n * 4 == len);
    for (size_t i = 0; i < n; i++)
        FZ_CHECK(v[i] < q);
    /* The mill sums it with the other requisition's expanded seed (same register count). */
    if (n > 0 && n <= S_MAX_REGISTERS && q == FZ_Q) {
        dy_hmss_params_t p = {.ring_modulus = q,
                              .max_frequency = 3,
                              .num_sketches = 2,
                              .vid_width = 1.0f,
                              .noise = DY_NOISE_NONE,
                              .threads = 1};
        uint8_t seed[DY_PRNG_SEED_LEN], common[DY_PRNG_SEED_LEN];
        memset(seed, 0x5e, sizeof(seed));
        memset(common, 0xc0, sizeof(common));
        dy_hmss_share_t shares[2] = {{.data = v, .registers = n}, {.seed = seed, .registers = n}};
        uint32_t *vec = NULL;
        size_t vlen = 0;
        dy_err_clear(&e);
        rc = dy_hmss_shuffle(&p, 1 + sel / 4 % 2, shares, 2, common, &vec, &vlen, &e);
        FZ_CHECK(rc == 0);
        FZ_CHECK(vlen == n);
        for (size_t i = 0; i < vlen; i++)
            FZ_CHECK(vec[i] < q);
        free(vec);
    }
    free(v);
}

static void s_sketch(int sel, const uint8_t *msg, size_t len)
{
    bool ro = sel & 1;
    int K = (sel & 2) || ro ? 1 : 3;
    bool noise = (sel & 4) != 0;
    size_t block = ro ? DY_LLV2_RO_BLOCK : DY_LLV2_CRV_BLOCK;
    /* dy_coord_fulfill_commit: whole registers only. */
    if (len % block != 0)
        return;
    dy_buf_t req = {0}, out = {0};
    FZ_CHECK(dy_buf_append(&req, msg, len) == 0);
    dy_err_t e;
    dy_err_clear(&e);
    dy_stage_counters_t cnt = {0};
    dy_llv2_t *ctx = fz_llv2(K, 0, noise);
    int rc = ro ? dy_rollv2_setup(ctx, &req, 1, NULL, 0, &out, &cnt, &e)
                : dy_llv2_setup(ctx, &req, 1, NULL, 0, &out, &cnt, &e);
    if (rc < 0) {
        FZ_CHECK(e.outcome == DY_OUTCOME_PERMFAIL && out.len == 0);
    } else {
        FZ_CHECK(out.len >= len && out.len % block == 0);
        FZ_CHECK(cnt.in_blocks == len / block);
    }
    dy_buf_free(&req);
    dy_buf_free(&out);
}

static void s_specs(const uint8_t *msg, size_t len)
{
    const fz_world_t *w = fz_world();
    fz_in_t in = {msg, len};
    fz_in_t spec = fz_part(&in), rs = fz_part(&in);
    dy_mc_spec_info_t info;
    int rc = dy_mc_spec_parse(spec.p, spec.n, &info);
    FZ_CHECK(rc == 0 || rc == -EINVAL);
    if (rc == 0) {
        FZ_CHECK(info.max_frequency >= 1 && info.max_frequency <= DY_MC_FREQ_MAX);
        FZ_CHECK(info.nnonce_hashes > 0 && info.nonce_hashes != NULL);
        FZ_CHECK(info.vid_width > 0.0f && info.vid_width <= 1.0f);
        dy_mc_spec_info_free(&info);
    }
    uint64_t nonce = 0;
    uint8_t hash[32];
    rc = dy_mc_reqspec_open(w->edp_priv, FZ_EDP_PARTY, rs.p, rs.n, &nonce, hash);
    FZ_CHECK(rc == 0 || rc == -EBADMSG);
    if (rc == 0)
        FZ_CHECK(nonce != 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    s_init();
    fz_rng_reset(0x656470);
    int op = data[0] % 5, sel = data[1];
    const uint8_t *msg = data + 2;
    size_t len = size - 2;
    switch (op) {
    case 0:
        s_fulfill(sel % 3, s_callers[(sel / 3) % 3], msg, len);
        break;
    case 1:
        s_seed(sel, msg, len);
        break;
    case 2:
        s_share(sel, msg, len);
        break;
    case 3:
        s_sketch(sel, msg, len);
        break;
    default:
        s_specs(msg, len);
        break;
    }
    return 0;
}
