/* fuzz_seeds.c - writes the seed corpora of the engine fuzz targets (fuzz_peer, fuzz_llv2,
 * fuzz_hmss, fuzz_edp, fuzz_kingdom, fuzz_crypto, fuzz_admin) into CORPUS/<target>/seed-*,
 * using the fixture's keys (tests/fuzz/fuzz_fixture.h) and the real engine, so the seeds are
 * valid messages as far as the checks go: pipeline stage inputs made by running the LLv2
 * and RO-LLv2 stages in ring order, EDP sketches, signed and sealed HMSS seeds, fingerprinted
 * FulfillRequisition headers, signed Kingdom computations, certificates chaining to the
 * fixture's roots, and headers the coordinator accepts (found by asking it).
 *
 *   usage: fuzz_seeds CORPUS_DIR       (tests/fuzz/make_corpus.py --seeds runs it)
 *
 * Each file is a target's input: byte 0 the operation, byte 1 the selector, then the
 * message (see the target's header comment).  Rewrites the seed-* files it makes, leaves
 * every other file (crashers, minimised inputs) alone.  Deterministic except for ECDSA
 * signatures, which OpenSSL randomises.  Exit 0, 1 on failure, 64 on usage.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "admin.pb-c.h"
#include "claim_job.h"
#include "control.pb-c.h"
#include "fuzz_fixture.h"
#include "hmss.pb-c.h"
#include "internal.pb-c.h"
#include "protocol/hmss.h"
#include "secrets.h"
#include "sketch/ll.h"
#include "wire.h"

static const char *s_root;
static int s_count;

/* Writes CORPUS/<target>/seed-<name> = op, sel, body. */
static void s_seed(const char *target, const char *name, int op, int sel, const void *body,
                   size_t len)
{
    char dir[1024], path[1200];
    snprintf(dir, sizeof(dir), "%s/%s", s_root, target);
    (void)mkdir(dir, 0755);
    snprintf(path, sizeof(path), "%s/seed-%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (f == NULL) {
        perror(path);
        exit(1);
    }
    uint8_t hdr[2] = {(uint8_t)op, (uint8_t)sel};
    if (fwrite(hdr, 1, 2, f) != 2 || (len && fwrite(body, 1, len, f) != len) || fclose(f) != 0) {
        perror(path);
        exit(1);
    }
    s_count++;
}

static void s_seedb(const char *target, const char *name, int op, int sel, const dy_buf_t *b)
{
    s_seed(target, name, op, sel, b->data, b->len);
}

/* Appends a part: 2-byte big-endian length, then the bytes. */
static void s_part(dy_buf_t *b, const void *p, size_t n)
{
    FZ_CHECK(n <= 0xffff);
    uint8_t l[2] = {(uint8_t)(n >> 8), (uint8_t)n};
    FZ_CHECK(dy_buf_append(b, l, 2) == 0 && dy_buf_append(b, p, n) == 0);
}

static void s_append_pb(dy_buf_t *b, const ProtobufCMessage *m)
{
    size_t n = protobuf_c_message_get_packed_size(m);
    uint8_t *p = dy_buf_extend(b, n);
    FZ_CHECK(p != NULL || n == 0);
    if (n)
        protobuf_c_message_pack(m, p);
}

/* ---- LLv2 and RO-LLv2 ------------------------------------------------------------------ */

/* The fixture's composite key Y. */
static void s_composite(uint8_t Y[33])
{
    const fz_world_t *w = fz_world();
    FZ_CHECK(dy_llv2_combine_keys(w->ec, (const uint8_t(*)[33])w->llv2_pub, 3, Y) == 0);
}

/* An EDP's encrypted sketch: `regs` registers from `base`. */
static void s_sketch(int K, bool reach_only, int regs, int base, dy_buf_t *out)
{
    const fz_world_t *w = fz_world();
    dy_ll_sketch_t sk;
    FZ_CHECK(dy_ll_sketch_init(&sk, FZ_DECAY, FZ_SKETCH) == 0);
    for (int i = 0; i < regs; i++)
        FZ_CHECK(dy_ll_sketch_put(&sk, base + 7 * i, 1000 + (uint64_t)(i % 3),
                                  1 + (uint64_t)(i % 4)) == 0);
    FZ_CHECK(dy_ll_sketch_finish(&sk) == 0);
    uint8_t Y[33];
    s_composite(Y);
    dy_err_t e;
    dy_err_clear(&e);
    FZ_CHECK(dy_llv2_encrypt_sketch(w->ec, Y, &sk, K, reach_only, 1, out, &e) == 0);
    dy_ll_sketch_free(&sk);
}

static int s_flags(int role, bool noise, int K, int nreqs)
{
    return role + 3 * (noise ? 1 : 0) + 6 * (K == 1 ? 1 : 0) + 12 * nreqs;
}

/* The LLv2 pipeline (worker1 holds both requisitions): every stage input becomes a seed. */
static void s_llv2_pipeline(int K, bool noise)
{
    char tag[32], name[96];
    snprintf(tag, sizeof(tag), "k%d%s", K, noise ? "-noise" : "");
    dy_buf_t req[2] = {{0}, {0}}, s1 = {0}, s2 = {0}, a0 = {0}, x = {0}, y = {0}, z = {0};
    dy_stage_counters_t cnt = {0};
    dy_err_t e;
    dy_err_clear(&e);
    s_sketch(K, false, 3, 5, &req[0]);
    s_sketch(K, false, 3, 6, &req[1]);
    /* setup at NA1 (two requisitions), NA2 (none), AGG (the NAs' outputs) */
    dy_buf_t in = {0};
    s_part(&in, req[0].data, req[0].len);
    s_part(&in, req[1].data, req[1].len);
    snprintf(name, sizeof(name), "%s-na1-setup", tag);
    s_seedb("llv2", name, 0, s_flags(0, noise, K, 2), &in);
    in.len = 0;
    FZ_CHECK(dy_llv2_setup(fz_llv2(K, 0, noise), req, 2, NULL, 0, &s1, &cnt, &e) == 0);
    FZ_CHECK(dy_llv2_setup(fz_llv2(K, 1, noise), NULL, 0, NULL, 0, &s2, &cnt, &e) == 0);
    s_part(&in, s1.data, s1.len);
    s_part(&in, s2.data, s2.len);
    snprintf(name, sizeof(name), "%s-agg-setup", tag);
    s_seedb("llv2", name, 0, s_flags(2, noise, K, 0), &in);
    dy_buf_free(&in);
    FZ_CHECK(dy_buf_append(&x, s1.data, s1.len) == 0 && dy_buf_append(&x, s2.data, s2.len) == 0);
    FZ_CHECK(dy_llv2_setup(fz_llv2(K, 2, noise), NULL, 0, x.data, x.len, &a0, &cnt, &e) == 0);
    /* exec1 .. exec3 around the ring */
    int64_t reach = 0;
    double freq[3];
    dy_buf_t *cur = &a0, *nxt = &y;
    static const char *const roles[3] = {"na1", "na2", "agg"};
    for (int phase = 1; phase <= 3; phase++) {
        if (phase == 3 && K == 1)
            break;
        for (int r = 0; r < 3; r++) {
            snprintf(name, sizeof(name), "%s-%s-exec%d", tag, roles[r], phase);
            if (!noise || r == 2) /* with noise (large inputs) only the aggregator's */
                s_seedb("llv2", name, phase, s_flags(r, noise, K, 0), cur);
            dy_llv2_t *ctx = fz_llv2(K, r, noise);
            int rc = phase == 1   ? dy_llv2_exec1(ctx, cur->data, cur->len, nxt, &cnt, &e)
                     : phase == 2 ? dy_llv2_exec2(ctx, cur->data, cur->len, nxt, &reach, &cnt, &e)
                                  : dy_llv2_exec3(ctx, cur->data, cur->len, nxt, freq, &cnt, &e);
            if (rc != 0)
                fprintf(stderr, "fuzz_seeds: %s: %s: %s\n", name, e.code, e.message);
            FZ_CHECK(rc == 0);
            dy_buf_t *t = cur;
            cur = nxt;
            nxt = t;
        }
        if (phase == 2 && K == 1)
            break;
    }
    /* The EDP's sketch alone, as fuzz_edp reads it. */
    if (!noise) {
        snprintf(name, sizeof(name), "sketch-%s", tag);
        s_seedb("edp", name, 3, K == 1 ? 2 : 0, &req[0]);
    }
    for (int i = 0; i < 2; i++)
        dy_buf_free(&req[i]);
    dy_buf_free(&s1);
    dy_buf_free(&s2);
    dy_buf_free(&a0);
    dy_buf_free(&x);
    dy_buf_free(&y);
    dy_buf_free(&z);
}

static void s_rollv2_pipeline(bool noise)
{
    char tag[32], name[96];
    snprintf(tag, sizeof(tag), "ro%s", noise ? "-noise" : "");
    dy_buf_t req[2] = {{0}, {0}}, s1 = {0}, s2 = {0}, x0 = {0}, x1 = {0}, in = {0};
    dy_stage_counters_t cnt = {0};
    dy_err_t e;
    dy_err_clear(&e);
    s_sketch(1, true, 4, 3, &req[0]);
    s_sketch(1, true, 2, 9, &req[1]);
    s_part(&in, req[0].data, req[0].len);
    s_part(&in, req[1].data, req[1].len);
    snprintf(name, sizeof(name), "%s-na1-setup", tag);
    s_seedb("llv2", name, 4, s_flags(0, noise, 1, 2), &in);
    in.len = 0;
    FZ_CHECK(dy_rollv2_setup(fz_llv2(1, 0, noise), req, 2, NULL, 0, &s1, &cnt, &e) == 0);
    FZ_CHECK(dy_rollv2_setup(fz_llv2(1, 1, noise), NULL, 0, NULL, 0, &s2, &cnt, &e) == 0);
    s_part(&in, s1.data, s1.len);
    s_part(&in, s2.data, s2.len);
    snprintf(name, sizeof(name), "%s-agg-setup", tag);
    s_seedb("llv2", name, 4, s_flags(2, noise, 1, 0), &in);
    dy_buf_t cat = {0};
    FZ_CHECK(dy_buf_append(&cat, s1.data, s1.len) == 0 &&
             dy_buf_append(&cat, s2.data, s2.len) == 0);
    snprintf(name, sizeof(name), "%s-agg-setup-concatenated", tag);
    s_seedb("llv2", name, 5, s_flags(2, noise, 1, 0), &cat);
    dy_buf_free(&cat);
    FZ_CHECK(dy_rollv2_setup_agg(fz_llv2(1, 2, noise), NULL, 0, s1.data, s1.len, s2.data, s2.len,
                                 &x0, &cnt, &e) == 0);
    static const char *const roles[3] = {"na1", "na2", "agg"};
    dy_buf_t *cur = &x0, *nxt = &x1;
    for (int r = 0; r < 3; r++) {
        snprintf(name, sizeof(name), "%s-%s-exec", tag, roles[r]);
        if (!noise || r == 2)
            s_seedb("llv2", name, 6, s_flags(r, noise, 1, 0), cur);
        int64_t reach = 0;
        int rc = dy_rollv2_exec(fz_llv2(1, r, noise), cur->data, cur->len, nxt, &reach, &cnt, &e);
        if (rc != 0)
            fprintf(stderr, "fuzz_seeds: %s: %s: %s\n", name, e.code, e.message);
        FZ_CHECK(rc == 0);
        dy_buf_t *t = cur;
        cur = nxt;
        nxt = t;
    }
    if (!noise)
        s_seedb("edp", "sketch-ro", 3, 1, &req[0]);
    for (int i = 0; i < 2; i++)
        dy_buf_free(&req[i]);
    dy_buf_free(&s1);
    dy_buf_free(&s2);
    dy_buf_free(&x0);
    dy_buf_free(&x1);
    dy_buf_free(&in);
}

static void s_llv2_seeds(void)
{
    s_llv2_pipeline(3, false);
    s_llv2_pipeline(1, false);
    s_llv2_pipeline(3, true);
    s_rollv2_pipeline(false);
    s_rollv2_pipeline(true);
    /* a bad length and a point off the curve */
    uint8_t junk[391];
    memset(junk, 0x04, sizeof(junk));
    s_seed("llv2", "bad-length", 1, 0, junk, sizeof(junk));
    s_seed("llv2", "bad-point", 1, 0, junk, 390);
}

/* ---- names and messages ------------------------------------------------------------------ */

static void s_names(uint64_t comp, size_t i, char cid[DY_EXT_ID_LEN + 1], char cname[64],
                    char rid[DY_EXT_ID_LEN + 1], char rname[128])
{
    fz_id(comp, cid);
    snprintf(cname, 64, "computations/%s", cid);
    fz_id(fz_req_id(comp, i), rid);
    snprintf(rname, 128, "%s/requisitions/%s", cname, rid);
}

/* The EDP's seed for requisition i of comp, sealed to shuffler `to` (0 or 1). */
static void s_sealed_seed(uint64_t comp, size_t i, int to, dy_buf_t *out)
{
    const fz_world_t *w = fz_world();
    char cid[DY_EXT_ID_LEN + 1], cname[64], rid[DY_EXT_ID_LEN + 1], rname[128];
    s_names(comp, i, cid, cname, rid, rname);
    uint8_t seed[DY_MC_SEED_LEN];
    for (int k = 0; k < DY_MC_SEED_LEN; k++)
        seed[k] = (uint8_t)(comp + i * 13 + (size_t)k);
    FZ_CHECK(dy_mc_seed_seal(w->sign[FZ_EDP], w->hmss_pub[to], cname, rname, seed, out) == 0);
}

/* A FulfillRequisitionRequest header for requisition i of row c. */
static void s_fulfill_msg(const fz_comp_t *c, size_t i, int64_t registers, dy_buf_t *out)
{
    char cid[DY_EXT_ID_LEN + 1], cname[64], rid[DY_EXT_ID_LEN + 1], rname[128], name[96];
    s_names(c->id, i, cid, cname, rid, rname);
    snprintf(name, sizeof(name), "%s/requisitions/%s", FZ_EDP_PARTY, rid);
    size_t speclen;
    uint8_t *spec = fz_spec(c, &speclen);
    uint8_t rsh[32], fp[32];
    fz_reqspec_hash(c->id, i, rsh);
    FZ_CHECK(dy_mc_fingerprint(spec, speclen, rsh, fp) == 0);
    free(spec);
    FZ_V2(FulfillRequisitionRequest) m = FZ_V2I(FULFILL_REQUISITION_REQUEST__INIT);
    FZ_V2(FulfillRequisitionRequest__Header) h = FZ_V2I(FULFILL_REQUISITION_REQUEST__HEADER__INIT);
    FZ_V2(FulfillRequisitionRequest__Header__HonestMajorityShareShuffle)
    hm = FZ_V2I(FULFILL_REQUISITION_REQUEST__HEADER__HONEST_MAJORITY_SHARE_SHUFFLE__INIT);
    FZ_V2(EncryptedMessage) em = FZ_V2I(ENCRYPTED_MESSAGE__INIT);
    dy_buf_t ct = {0};
    h.name = name;
    h.requisition_fingerprint.data = fp;
    h.requisition_fingerprint.len = 32;
    h.nonce = fz_nonce(c->id, i);
    if (c->protocol == DY_PROTO_HMSS) {
        int to = 1 - fz_req_duchy(c, i); /* the seed is for the other shuffler */
        s_sealed_seed(c->id, i, to, &ct);
        em.ciphertext.data = ct.data;
        em.ciphertext.len = ct.len;
        hm.secret_seed = &em;
        hm.register_count = registers;
        hm.data_provider_certificate = (char *)FZ_EDP_CERT;
        h.protocol_case =
            FZ_V2I(FULFILL_REQUISITION_REQUEST__HEADER__PROTOCOL_HONEST_MAJORITY_SHARE_SHUFFLE);
        h.honest_majority_share_shuffle = &hm;
    }
    m.payload_case = FZ_V2I(FULFILL_REQUISITION_REQUEST__PAYLOAD_HEADER);
    m.header = &h;
    s_append_pb(out, &m.base);
    dy_buf_free(&ct);
}

/* ---- EDP -> duchy ---------------------------------------------------------------------------- */

static void s_edp_seeds(void)
{
    const fz_world_t *w = fz_world();
    char name[96];
    for (size_t r = 0; r < FZ_NROWS; r++) {
        const fz_comp_t *c = &fz_rows[r].c;
        if (fz_rows[r].stage != 2)
            continue;
        for (size_t i = 0; i < c->nreq; i++) {
            dy_buf_t m = {0};
            s_fulfill_msg(c, i, 8, &m);
            int d = fz_req_duchy(c, i);
            snprintf(name, sizeof(name), "fulfill-%llx-%zu", (unsigned long long)c->id, i);
            s_seedb("edp", name, 0, d, &m);
            if (i == 0) {
                snprintf(name, sizeof(name), "fulfill-%llx-%zu-at-agg", (unsigned long long)c->id,
                         i);
                s_seedb("edp", name, 0, 2, &m);
                snprintf(name, sizeof(name), "fulfill-%llx-%zu-other-edp",
                         (unsigned long long)c->id, i);
                s_seedb("edp", name, 0, d + 3, &m);
            }
            dy_buf_free(&m);
        }
    }
    /* a body chunk where the header belongs */
    FZ_V2(FulfillRequisitionRequest) bm = FZ_V2I(FULFILL_REQUISITION_REQUEST__INIT);
    FZ_V2(FulfillRequisitionRequest__BodyChunk)
    bc = FZ_V2I(FULFILL_REQUISITION_REQUEST__BODY_CHUNK__INIT);
    bc.data.data = (uint8_t *)"abc";
    bc.data.len = 3;
    bm.payload_case = FZ_V2I(FULFILL_REQUISITION_REQUEST__PAYLOAD_BODY_CHUNK);
    bm.body_chunk = &bc;
    dy_buf_t b = {0};
    s_append_pb(&b, &bm.base);
    s_seedb("edp", "fulfill-body-first", 0, 0, &b);
    dy_buf_free(&b);
    /* sealed seeds of 0x125 for each shuffler */
    for (int to = 0; to < 2; to++)
        for (size_t i = 0; i < 3; i++) {
            dy_buf_t ct = {0};
            s_sealed_seed(0x125, i, to, &ct);
            snprintf(name, sizeof(name), "seed-to-%d-req%zu", to, i);
            s_seedb("edp", name, 1, to + 2 * (int)i, &ct);
            dy_buf_free(&ct);
        }
    /* data shares */
    uint8_t share[32];
    for (int i = 0; i < 32; i++)
        share[i] = i % 4 == 0 ? (uint8_t)(i * 3 % FZ_Q) : 0;
    s_seed("edp", "share-q127", 2, 0, share, sizeof(share));
    s_seed("edp", "share-q2", 2, 1, share, 8);
    /* specs */
    const fz_comp_t *c = &fz_rows[0].c;
    size_t speclen;
    uint8_t *spec = fz_spec(c, &speclen);
    uint8_t sh[32];
    FZ_CHECK(dy_mc_sha256(spec, speclen, sh) == 0);
    dy_buf_t rs = {0}, both = {0};
    FZ_CHECK(dy_mc_reqspec_seal(w->edp_pub, FZ_EDP_PARTY, 77, sh, &rs) == 0);
    s_part(&both, spec, speclen);
    s_part(&both, rs.data, rs.len);
    s_seedb("edp", "specs", 4, 0, &both);
    free(spec);
    dy_buf_free(&rs);
    dy_buf_free(&both);
}

/* ---- HMSS ----------------------------------------------------------------------------------- */

static void s_hmss_seeds(void)
{
    const fz_comp_t *c = NULL;
    for (size_t r = 0; r < FZ_NROWS; r++)
        if (fz_rows[r].c.id == 0x125)
            c = &fz_rows[r].c;
    FZ_CHECK(c != NULL);
    /* The ShufflePhaseInput each shuffler receives: the sender's seeds for the
     * requisitions it holds, sealed to the receiver, 8 registers each. */
    for (int me = 0; me < 2; me++) {
        int sender = 1 - me;
        Wfa__Measurement__Internal__Duchy__Protocol__ShufflePhaseInput spi =
            WFA__MEASUREMENT__INTERNAL__DUCHY__PROTOCOL__SHUFFLE_PHASE_INPUT__INIT;
        Wfa__Measurement__Internal__Duchy__Protocol__SecretSeed ss[3], *ssp[3];
        dy_buf_t ct[3] = {{0}, {0}, {0}};
        char rname[3][128];
        uint8_t omega[DY_PRNG_SEED_LEN];
        memset(omega, 0x42 + sender, sizeof(omega));
        spi.peer_random_seed.data = omega;
        spi.peer_random_seed.len = sizeof(omega);
        for (size_t i = 0; i < 3; i++) {
            if (fz_req_duchy(c, i) != sender)
                continue;
            char cid[DY_EXT_ID_LEN + 1], cname[64], rid[DY_EXT_ID_LEN + 1];
            s_names(c->id, i, cid, cname, rid, rname[i]);
            s_sealed_seed(c->id, i, me, &ct[i]);
            size_t k = spi.n_secret_seeds;
            wfa__measurement__internal__duchy__protocol__secret_seed__init(&ss[k]);
            ss[k].requisition_id = rname[i];
            ss[k].secret_seed_ciphertext.data = ct[i].data;
            ss[k].secret_seed_ciphertext.len = ct[i].len;
            ss[k].register_count = 8;
            ss[k].data_provider_certificate = (char *)FZ_EDP_CERT;
            ssp[k] = &ss[k];
            spi.n_secret_seeds++;
        }
        spi.secret_seeds = ssp;
        dy_buf_t b = {0};
        s_append_pb(&b, &spi.base);
        char name[64];
        snprintf(name, sizeof(name), "shuffle-input-at-%s", fz_duchy[me]);
        s_seedb("hmss", name, 0, me + 14, &b); /* local shares of 8 registers */
        s_seedb("peer", name, 2, 2, &b);       /* body check, HMSS */
        dy_buf_free(&b);
        for (int i = 0; i < 3; i++)
            dy_buf_free(&ct[i]);
    }
    /* AggregationPhaseInputs from a real run: three requisitions of 8 registers shared as
     * data and seed (dy_hmss_share), shuffled by both non-aggregators (the data shares at
     * the assigned one, the seeds at the other), with and without noise, reach and
     * frequency or reach only. */
    for (int sel = 0; sel < 4; sel++) {
        dy_hmss_params_t p = fz_hmss_params(sel & 1, (sel & 2) != 0);
        uint32_t values[3][8], data[3][8];
        uint8_t seed[3][DY_PRNG_SEED_LEN], common[DY_PRNG_SEED_LEN];
        dy_err_t e;
        dy_err_clear(&e);
        for (size_t i = 0; i < 3; i++) {
            for (int k = 0; k < 8; k++)
                values[i][k] = (uint32_t)((i + (size_t)k) % (size_t)(p.max_frequency + 1));
            FZ_CHECK(dy_hmss_share(&p, values[i], 8, seed[i], data[i], &e) == 0);
        }
        memset(common, 0x77, sizeof(common));
        dy_buf_t both = {0};
        for (int w = 0; w < 2; w++) {
            dy_hmss_share_t sh[3];
            for (size_t i = 0; i < 3; i++) {
                bool mine = fz_req_duchy(c, i) == w;
                sh[i] = mine ? (dy_hmss_share_t){.data = data[i], .registers = 8}
                             : (dy_hmss_share_t){.seed = seed[i], .registers = 8};
            }
            uint32_t *vec = NULL;
            size_t vlen = 0;
            FZ_CHECK(dy_hmss_shuffle(&p, w + 1, sh, 3, common, &vec, &vlen, &e) == 0);
            Wfa__Measurement__Internal__Duchy__Protocol__AggregationPhaseInput a =
                WFA__MEASUREMENT__INTERNAL__DUCHY__PROTOCOL__AGGREGATION_PHASE_INPUT__INIT;
            a.combined_frequency_vectors = vec;
            a.n_combined_frequency_vectors = vlen;
            a.register_count = 8;
            dy_buf_t one = {0};
            s_append_pb(&one, &a.base);
            s_part(&both, one.data, one.len);
            if (w == 0 && sel == 0)
                s_seedb("peer", "aggregation-input", 2, 2, &one);
            dy_buf_free(&one);
            free(vec);
        }
        static const char *const names[4] = {"aggregation-rf", "aggregation-reach",
                                             "aggregation-rf-noise", "aggregation-reach-noise"};
        s_seedb("hmss", names[sel], 1, sel, &both);
        dy_buf_free(&both);
    }
}

/* ---- peer duchy -> duchy ----------------------------------------------------------------------
 */

static void s_advance_msg(uint64_t comp, int protocol, int description, dy_buf_t *out)
{
    char cid[DY_EXT_ID_LEN + 1], name[64];
    fz_id(comp, cid);
    snprintf(name, sizeof(name), "computations/%s", cid);
    Wfa__Measurement__System__V1alpha__AdvanceComputationRequest req =
        WFA__MEASUREMENT__SYSTEM__V1ALPHA__ADVANCE_COMPUTATION_REQUEST__INIT;
    Wfa__Measurement__System__V1alpha__AdvanceComputationRequest__Header h =
        WFA__MEASUREMENT__SYSTEM__V1ALPHA__ADVANCE_COMPUTATION_REQUEST__HEADER__INIT;
    Wfa__Measurement__System__V1alpha__LiquidLegionsV2 ll =
        WFA__MEASUREMENT__SYSTEM__V1ALPHA__LIQUID_LEGIONS_V2__INIT;
    Wfa__Measurement__System__V1alpha__ReachOnlyLiquidLegionsV2 ro =
        WFA__MEASUREMENT__SYSTEM__V1ALPHA__REACH_ONLY_LIQUID_LEGIONS_V2__INIT;
    Wfa__Measurement__System__V1alpha__HonestMajorityShareShuffle hm =
        WFA__MEASUREMENT__SYSTEM__V1ALPHA__HONEST_MAJORITY_SHARE_SHUFFLE__INIT;
    h.name = name;
    if (protocol == DY_PROTO_LLV2) {
        ll.description = description;
        h.protocol_case =
            WFA__MEASUREMENT__SYSTEM__V1ALPHA__ADVANCE_COMPUTATION_REQUEST__HEADER__PROTOCOL_LIQUID_LEGIONS_V2;
        h.liquid_legions_v2 = &ll;
    } else if (protocol == DY_PROTO_RO_LLV2) {
        ro.description = description;
        h.protocol_case =
            WFA__MEASUREMENT__SYSTEM__V1ALPHA__ADVANCE_COMPUTATION_REQUEST__HEADER__PROTOCOL_REACH_ONLY_LIQUID_LEGIONS_V2;
        h.reach_only_liquid_legions_v2 = &ro;
    } else {
        hm.description = description;
        h.protocol_case =
            WFA__MEASUREMENT__SYSTEM__V1ALPHA__ADVANCE_COMPUTATION_REQUEST__HEADER__PROTOCOL_HONEST_MAJORITY_SHARE_SHUFFLE;
        h.honest_majority_share_shuffle = &hm;
    }
    req.payload_case =
        WFA__MEASUREMENT__SYSTEM__V1ALPHA__ADVANCE_COMPUTATION_REQUEST__PAYLOAD_HEADER;
    req.header = &h;
    s_append_pb(out, &req.base);
}

static void s_peer_seeds(void)
{
    fz_coord_t co;
    fz_coord_open(&co);
    char name[128];
    /* AdvanceComputation headers: every accepted (row, description, receiver, sender) and,
     * per row, the first refusal of each kind. */
    for (size_t r = 0; r < FZ_NROWS; r++) {
        const fz_comp_t *c = &fz_rows[r].c;
        int refusals = 0;
        for (int desc = 1; desc <= 4; desc++) {
            dy_buf_t m = {0};
            s_advance_msg(c->id, c->protocol, desc, &m);
            for (int d = 0; d < FZ_NDUCHIES; d++)
                for (int s = 0; s < FZ_NDUCHIES; s++) {
                    char caller[64];
                    snprintf(caller, sizeof(caller), "duchies/%s", fz_duchy[s]);
                    dy_coord_reply_t rep = {0};
                    dy_coord_advance_header(&co.ctx[d], caller, m.data, m.len, &rep);
                    bool keep = rep.code == 0 || (refusals < 3 && s != d);
                    if (rep.code != 0 && keep)
                        refusals++;
                    if (keep) {
                        snprintf(name, sizeof(name), "advance-%llx-d%d-%s-to-%s-%s",
                                 (unsigned long long)c->id, desc, fz_duchy[s], fz_duchy[d],
                                 rep.code == 0 ? "ok" : dy_wire_status_name(rep.code));
                        s_seedb("peer", name, 0, d + 3 * s, &m);
                    }
                    dy_coord_reply_clear(&rep);
                }
            dy_buf_free(&m);
        }
        /* GetComputationStage of the row at each duchy. */
        for (int d = 0; d < FZ_NDUCHIES; d++) {
            char cid[DY_EXT_ID_LEN + 1], sname[128];
            fz_id(c->id, cid);
            snprintf(sname, sizeof(sname), "computations/%s/participants/%s/computationStage", cid,
                     fz_duchy[d]);
            Wfa__Measurement__System__V1alpha__GetComputationStageRequest q =
                WFA__MEASUREMENT__SYSTEM__V1ALPHA__GET_COMPUTATION_STAGE_REQUEST__INIT;
            q.name = sname;
            dy_buf_t m = {0};
            s_append_pb(&m, &q.base);
            if (r % 4 == 0 || d == 2) {
                snprintf(name, sizeof(name), "stage-%llx-at-%s", (unsigned long long)c->id,
                         fz_duchy[d]);
                s_seedb("peer", name, 1, d + 3 * ((d + 1) % 3), &m);
            }
            dy_buf_free(&m);
        }
    }
    fz_coord_close(&co);
    /* bodies */
    uint8_t blk[1 + 520];
    memset(blk, 0, sizeof(blk));
    for (int desc = 1; desc <= 4; desc++) {
        blk[0] = (uint8_t)desc;
        snprintf(name, sizeof(name), "body-llv2-d%d", desc);
        s_seed("peer", name, 2, 0, blk, 1 + (desc == 3 ? 520 : desc == 4 ? 260 : 390));
    }
    blk[0] = 2;
    s_seed("peer", "body-ro", 2, 1, blk, 1 + 260);
    /* the peer's answers to the send worker */
    static const char *const reasons[] = {"STAGE_NOT_READY", "COMPUTATION_ENDED", "INPUT_CONFLICT",
                                          ""};
    for (int k = 0; k < 3; k++) {
        Wfa__Measurement__System__V1alpha__ComputationStage cs =
            WFA__MEASUREMENT__SYSTEM__V1ALPHA__COMPUTATION_STAGE__INIT;
        Wfa__Measurement__System__V1alpha__LiquidLegionsV2Stage ll =
            WFA__MEASUREMENT__SYSTEM__V1ALPHA__LIQUID_LEGIONS_V2_STAGE__INIT;
        Wfa__Measurement__System__V1alpha__ReachOnlyLiquidLegionsV2Stage ro =
            WFA__MEASUREMENT__SYSTEM__V1ALPHA__REACH_ONLY_LIQUID_LEGIONS_V2_STAGE__INIT;
        Wfa__Measurement__System__V1alpha__HonestMajorityShareShuffleStage hm =
            WFA__MEASUREMENT__SYSTEM__V1ALPHA__HONEST_MAJORITY_SHARE_SHUFFLE_STAGE__INIT;
        cs.name = (char *)"computations/AAAAAAAAAQE/participants/worker2/computationStage";
        cs.etag = (char *)"3";
        if (k == 0) {
            ll.stage = 7;
            cs.stage_case =
                WFA__MEASUREMENT__SYSTEM__V1ALPHA__COMPUTATION_STAGE__STAGE_LIQUID_LEGIONS_V2_STAGE;
            cs.liquid_legions_v2_stage = &ll;
        } else if (k == 1) {
            ro.stage = 5;
            cs.stage_case =
                WFA__MEASUREMENT__SYSTEM__V1ALPHA__COMPUTATION_STAGE__STAGE_REACH_ONLY_LIQUID_LEGIONS_STAGE;
            cs.reach_only_liquid_legions_stage = &ro;
        } else {
            hm.stage = 6;
            cs.stage_case =
                WFA__MEASUREMENT__SYSTEM__V1ALPHA__COMPUTATION_STAGE__STAGE_HONEST_MAJORITY_SHARE_SHUFFLE_STAGE;
            cs.honest_majority_share_shuffle_stage = &hm;
        }
        dy_buf_t one = {0}, m = {0};
        s_append_pb(&one, &cs.base);
        s_part(&m, one.data, one.len);
        s_part(&m, "", 0);
        s_part(&m, reasons[k], strlen(reasons[k]));
        snprintf(name, sizeof(name), "answers-%d", k);
        s_seedb("peer", name, 3, k == 0 ? 0 : 9, &m);
        dy_buf_free(&one);
        dy_buf_free(&m);
    }
}

/* ---- Kingdom -> duchy ---------------------------------------------------------------------- */

static void s_token(int64_t secs, uint64_t id, char *out, size_t cap)
{
    Google__Protobuf__Timestamp ts = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
    ts.seconds = secs;
    ts.nanos = 500000;
    FZ_SYS(StreamActiveComputationsContinuationToken)
    t = FZ_SYSI(STREAM_ACTIVE_COMPUTATIONS_CONTINUATION_TOKEN__INIT);
    t.last_seen_update_time = &ts;
    t.last_seen_external_computation_id = id;
    dy_buf_t b = {0};
    s_append_pb(&b, &t.base);
    dy_b64url_encode(b.data, b.len, out, cap);
    dy_buf_free(&b);
}

static void s_kingdom_seeds(void)
{
    const fz_world_t *w = fz_world();
    char name[128], token[256];
    static const int states[] = {
        FZ_SYSI(COMPUTATION__STATE__PENDING_REQUISITION_PARAMS),
        FZ_SYSI(COMPUTATION__STATE__PENDING_REQUISITION_FULFILLMENT),
        FZ_SYSI(COMPUTATION__STATE__PENDING_PARTICIPANT_CONFIRMATION),
        FZ_SYSI(COMPUTATION__STATE__PENDING_COMPUTATION),
        FZ_SYSI(COMPUTATION__STATE__SUCCEEDED),
        FZ_SYSI(COMPUTATION__STATE__CANCELLED),
    };
    const fz_comp_t base[4] = {
        {0x141, DY_PROTO_LLV2, true, 3, true, 0, true, false, 2, false},
        {0x142, DY_PROTO_RO_LLV2, false, 1, false, 0, true, false, 2, true},
        {0x143, DY_PROTO_HMSS, true, 3, false, 0, true, false, 3, true},
        {0x144, DY_PROTO_HMSS, false, 1, true, 0, false, false, 2, false},
    };
    for (size_t b = 0; b < 4; b++)
        for (size_t s = 0; s < DY_ARRAY_LEN(states); s++) {
            if ((b + s) % 2 == 1 && s != 0)
                continue; /* keep the corpus small: half of the pairs */
            fz_comp_t c = base[b];
            c.state = states[s];
            dy_buf_t k = {0};
            fz_computation(&c, &k);
            FZ_SYS(Computation) *kc =
                wfa__measurement__system__v1alpha__computation__unpack(NULL, k.len, k.data);
            FZ_CHECK(kc != NULL);
            FZ_SYS(StreamActiveComputationsResponse)
            item = FZ_SYSI(STREAM_ACTIVE_COMPUTATIONS_RESPONSE__INIT);
            item.computation = kc;
            s_token(1700000000 + (int64_t)s, c.id, token, sizeof(token));
            item.continuation_token = token;
            dy_buf_t m = {0};
            s_append_pb(&m, &item.base);
            int sel = (int)((b + s) % 3) + 3 * (int)(s % 2);
            snprintf(name, sizeof(name), "item-%llx-state%d", (unsigned long long)c.id, c.state);
            s_seedb("kingdom", name, 0, sel, &m);
            dy_buf_free(&m);
            wfa__measurement__system__v1alpha__computation__free_unpacked(kc, NULL);
            dy_buf_free(&k);
        }
    /* confirmation: the stored 0x131 / 0x132 and the Kingdom's fresh reads of them */
    const fz_comp_t conf[2] = {
        {0x131, DY_PROTO_LLV2, true, 3, false,
         FZ_SYSI(COMPUTATION__STATE__PENDING_PARTICIPANT_CONFIRMATION), true, true, 2, true},
        {0x132, DY_PROTO_RO_LLV2, false, 1, false,
         FZ_SYSI(COMPUTATION__STATE__PENDING_PARTICIPANT_CONFIRMATION), true, true, 2, true},
    };
    for (int i = 0; i < 2; i++)
        for (int d = 0; d < FZ_NDUCHIES; d++) {
            dy_buf_t k = {0};
            fz_computation(&conf[i], &k);
            snprintf(name, sizeof(name), "confirm-%llx-at-%s", (unsigned long long)conf[i].id,
                     fz_duchy[d]);
            s_seedb("kingdom", name, 1, d + 12 * i + 0x80, &k);
            if (i == 0 && d == 0) /* without the certificate DER: fetched */
                s_seedb("kingdom", "confirm-no-data", 1, 0, &k);
            dy_buf_free(&k);
        }
    /* participant + certificate + key signature */
    for (int d = 0; d < FZ_NDUCHIES; d++) {
        char cid[DY_EXT_ID_LEN + 1], cname[64], pname[128];
        fz_id(0x131, cid);
        snprintf(cname, sizeof(cname), "computations/%s", cid);
        snprintf(pname, sizeof(pname), "%s/participants/%s", cname, fz_duchy[d]);
        FZ_SYS(ComputationParticipant) cp = FZ_SYSI(COMPUTATION_PARTICIPANT__INIT);
        cp.name = pname;
        cp.state = FZ_SYSI(COMPUTATION_PARTICIPANT__STATE__CREATED);
        cp.etag = (char *)"4";
        FZ_V2(Certificate) cert = FZ_V2I(CERTIFICATE__INIT);
        char certname[96];
        snprintf(certname, sizeof(certname), "duchies/%s/certificates/sign", fz_duchy[d]);
        cert.name = certname;
        cert.x509_der.data = w->sign_der[d].data;
        cert.x509_der.len = w->sign_der[d].len;
        uint8_t sig[DY_SIG_MAX];
        size_t slen = 0;
        FZ_CHECK(dy_kf_key_sign(w->sign[d], DY_KF_LABEL_ELGAMAL, cname, w->llv2_pub[d], sig,
                                &slen) == 0);
        dy_buf_t a = {0}, c = {0}, m = {0};
        s_append_pb(&a, &cp.base);
        s_append_pb(&c, &cert.base);
        s_part(&m, a.data, a.len);
        s_part(&m, c.data, c.len);
        s_part(&m, sig, slen);
        snprintf(name, sizeof(name), "participant-%s", fz_duchy[d]);
        s_seedb("kingdom", name, 2, d, &m);
        dy_buf_free(&a);
        dy_buf_free(&c);
        dy_buf_free(&m);
    }
    /* stored details of some rows */
    for (size_t r = 0; r < FZ_NROWS; r += 3)
        for (int d = 0; d < FZ_NDUCHIES; d++) {
            dy_buf_t det = {0};
            fz_details(&fz_rows[r].c, d, &det);
            snprintf(name, sizeof(name), "details-%llx-%s", (unsigned long long)fz_rows[r].c.id,
                     fz_duchy[d]);
            s_seedb("kingdom", name, 3, d, &det);
            dy_buf_free(&det);
        }
}

/* ---- crypto -------------------------------------------------------------------------------- */

static void s_crypto_seeds(void)
{
    const fz_world_t *w = fz_world();
    BN_CTX *ctx = BN_CTX_new();
    EC_POINT *p = dy_ec_point_new(w->ec);
    FZ_CHECK(ctx != NULL && p != NULL);
    uint8_t enc[DY_PT_LEN];
    for (int i = 0; i < 2; i++) {
        FZ_CHECK(dy_ec_decode_compressed(w->ec, p, w->llv2_pub[i], 33, ctx) == 0);
        FZ_CHECK(dy_ec_encode(w->ec, p, enc, ctx) == 0);
        char name[32];
        snprintf(name, sizeof(name), "point-%d", i);
        s_seed("crypto", name, 0, enc[0], enc + 1, DY_PT_LEN - 1); /* byte 1 is the prefix */
        snprintf(name, sizeof(name), "compressed-%d", i);
        s_seed("crypto", name, 1, w->llv2_pub[i][0], w->llv2_pub[i] + 1, 32);
        snprintf(name, sizeof(name), "public-%d", i);
        s_seed("crypto", name, 2, i ? enc[0] : w->llv2_pub[i][0], i ? enc + 1 : w->llv2_pub[i] + 1,
               i ? DY_PT_LEN - 1 : 32);
    }
    enc[DY_PT_LEN - 1] ^= 1;
    s_seed("crypto", "point-off-curve", 0, enc[0], enc + 1, DY_PT_LEN - 1);
    /* ciphertexts: an RO-LLv2 sketch (130-byte pairs) */
    dy_buf_t sk = {0};
    s_sketch(1, true, 2, 1, &sk);
    s_seed("crypto", "ciphertexts", 3, sk.data[0], sk.data + 1, sk.len - 1);
    dy_buf_free(&sk);
    s_seed("crypto", "scalar", 4, w->llv2_x[0][0], w->llv2_x[0] + 1, 31);
    /* ECIES under an info string */
    dy_buf_t ct = {0}, m = {0};
    const char *info = "halo-duchy/v1/result";
    FZ_CHECK(dy_ecies_encrypt(w->mc_pub, 33, (const uint8_t *)info, strlen(info),
                              (const uint8_t *)"result bytes", 12, &ct) == 0);
    s_part(&m, info, strlen(info));
    FZ_CHECK(dy_buf_append(&m, ct.data, ct.len) == 0);
    /* fuzz_crypto's input is op, then the bytes: the first goes where s_seed puts sel */
    s_seed("crypto", "ecies", 5, m.data[0], m.data + 1, m.len - 1);
    dy_buf_free(&ct);
    dy_buf_free(&m);
    /* a DER signature over a message, by the key the target verifies with */
    uint8_t sig[DY_SIG_MAX];
    size_t slen = 0;
    FZ_CHECK(dy_sig_sign(w->sign[2], (const uint8_t *)"message", 7, sig, &slen) == 0);
    m = (dy_buf_t){0};
    s_part(&m, "message", 7);
    FZ_CHECK(dy_buf_append(&m, sig, slen) == 0);
    s_seed("crypto", "signature", 6, m.data[0], m.data + 1, m.len - 1);
    dy_buf_free(&m);
    char cid[DY_EXT_ID_LEN + 1], cname[64];
    fz_id(0x101, cid);
    snprintf(cname, sizeof(cname), "computations/%s", cid);
    FZ_CHECK(dy_kf_key_sign(w->sign[2], DY_KF_LABEL_ELGAMAL, cname, w->llv2_pub[2], sig, &slen) ==
             0);
    m = (dy_buf_t){0};
    s_part(&m, "", 0);
    FZ_CHECK(dy_buf_append(&m, sig, slen) == 0);
    s_seed("crypto", "key-signature", 6, m.data[0], m.data + 1, m.len - 1);
    dy_buf_free(&m);
    /* certificates */
    for (int i = 0; i < FZ_NPARTIES; i += 3)
        s_seed("crypto", i ? "cert-edp" : "cert-worker1", 7, w->sign_der[i].data[0],
               w->sign_der[i].data + 1, w->sign_der[i].len - 1);
    /* sketch registers */
    uint8_t regs[5 + 6 * 10 + 8];
    regs[0] = 44;
    regs[1] = 0;
    regs[2] = 200;
    regs[3] = 2;
    regs[4] = 255;
    for (int i = 0; i < 6; i++) {
        uint8_t *r = regs + 5 + 10 * i;
        memset(r, 0, 10);
        r[3] = (uint8_t)(i * 17 % 200 + 1);
        r[6] = (uint8_t)(i % 2 ? 9 : 8);
        r[9] = (uint8_t)(1 + i % 3);
    }
    memset(regs + 5 + 60, 0, 8);
    regs[5 + 60 + 7] = 5;
    s_seed("crypto", "sketch", 8, regs[0], regs + 1, sizeof(regs) - 1);
    s_seed("crypto", "hash", 9, 'u', "nit_ec_point", 12);
    /* sealed secrets */
    Halo__Internal__V1__Secrets sec = HALO__INTERNAL__V1__SECRETS__INIT;
    sec.elgamal_secret.data = (uint8_t *)w->llv2_x[0];
    sec.elgamal_secret.len = 32;
    sec.elgamal_public.data = (uint8_t *)w->llv2_pub[0];
    sec.elgamal_public.len = 33;
    dy_buf_t pt = {0}, sealed = {0};
    s_append_pb(&pt, &sec.base);
    FZ_CHECK(dy_secrets_seal(w->master, cid, pt.data, pt.len, &sealed) == 0);
    s_seed("crypto", "secrets", 10, sealed.data[0], sealed.data + 1, sealed.len - 1);
    dy_buf_free(&pt);
    dy_buf_free(&sealed);
    EC_POINT_free(p);
    BN_CTX_free(ctx);
}

/* ---- admin --------------------------------------------------------------------------------- */

static void s_admin_req(const char *name, int verb, const char *arg, bool json, int sel)
{
    Halo__Admin__V1__AdminRequest r = HALO__ADMIN__V1__ADMIN_REQUEST__INIT;
    char *args[1] = {(char *)arg};
    r.verb = (Halo__Admin__V1__Verb)verb;
    r.args = args;
    r.n_args = arg ? 1 : 0;
    r.want_json = json;
    dy_buf_t b = {0};
    s_append_pb(&b, &r.base);
    s_seedb("admin", name, 0, sel, &b);
    dy_buf_free(&b);
}

static void s_admin_seeds(void)
{
    s_admin_req("status-json", HALO__ADMIN__V1__VERB__STATUS, NULL, true, 0);
    s_admin_req("status", HALO__ADMIN__V1__VERB__STATUS, NULL, false, 0);
    s_admin_req("verbose-on", HALO__ADMIN__V1__VERB__VERBOSE, "on", false, 0);
    s_admin_req("verbose-off-json", HALO__ADMIN__V1__VERB__VERBOSE, "off", true, 0);
    s_admin_req("verbose-bad", HALO__ADMIN__V1__VERB__VERBOSE, "loud", false, 0);
    s_admin_req("config-json", HALO__ADMIN__V1__VERB__CONFIG, NULL, true, 0);
    s_admin_req("config", HALO__ADMIN__V1__VERB__CONFIG, NULL, false, 0);
    s_admin_req("workers", HALO__ADMIN__V1__VERB__WORKERS, NULL, true, 1);
    s_admin_req("workers-failing", HALO__ADMIN__V1__VERB__WORKERS, NULL, true, 0);
    s_admin_req("audit-verify", HALO__ADMIN__V1__VERB__AUDIT, "verify", true, 0);
    s_admin_req("unknown-verb", 99, NULL, false, 0);
    /* the same requests at the coordinator's endpoint (op 4) */
    static const struct {
        const char *name;
        int verb;
        const char *arg;
    } co[] = {{"coordinator-computations", HALO__ADMIN__V1__VERB__COMPUTATIONS, NULL},
              {"coordinator-audit", HALO__ADMIN__V1__VERB__AUDIT, NULL},
              {"coordinator-audit-verify", HALO__ADMIN__V1__VERB__AUDIT, "verify"},
              {"coordinator-audit-2", HALO__ADMIN__V1__VERB__AUDIT, "2"},
              {"coordinator-audit-bad", HALO__ADMIN__V1__VERB__AUDIT, "-5"}};
    for (size_t i = 0; i < DY_ARRAY_LEN(co); i++) {
        Halo__Admin__V1__AdminRequest r = HALO__ADMIN__V1__ADMIN_REQUEST__INIT;
        char *args[1] = {(char *)co[i].arg};
        r.verb = (Halo__Admin__V1__Verb)co[i].verb;
        r.args = args;
        r.n_args = co[i].arg ? 1 : 0;
        r.want_json = true;
        dy_buf_t b = {0};
        s_append_pb(&b, &r.base);
        s_seedb("admin", co[i].name, 4, 0, &b);
        dy_buf_free(&b);
    }
    /* AdminResponses */
    Halo__Admin__V1__AdminResponse r = HALO__ADMIN__V1__ADMIN_RESPONSE__INIT;
    r.body_case = HALO__ADMIN__V1__ADMIN_RESPONSE__BODY_JSON;
    r.json = (char *)"{\"name\":\"claimer-1\",\"pid\":42,\"uptime_seconds\":1.5,"
                     "\"state\":\"ready\",\"counters\":{\"items\":3},\"list\":[1,2.5,true,null]}";
    dy_buf_t b = {0};
    s_append_pb(&b, &r.base);
    s_seedb("admin", "response-json", 1, 0, &b);
    b.len = 0;
    Halo__Admin__V1__KeyValue kv = HALO__ADMIN__V1__KEY_VALUE__INIT, *kvp = &kv;
    kv.key = (char *)"name";
    kv.value = (char *)"claimer-1";
    Halo__Admin__V1__Section sec = HALO__ADMIN__V1__SECTION__INIT, *secp = &sec;
    sec.name = (char *)"actor";
    sec.entries = &kvp;
    sec.n_entries = 1;
    Halo__Admin__V1__Sections ss = HALO__ADMIN__V1__SECTIONS__INIT;
    ss.sections = &secp;
    ss.n_sections = 1;
    Halo__Admin__V1__AdminResponse r2 = HALO__ADMIN__V1__ADMIN_RESPONSE__INIT;
    r2.body_case = HALO__ADMIN__V1__ADMIN_RESPONSE__BODY_SECTIONS;
    r2.sections = &ss;
    s_append_pb(&b, &r2.base);
    s_seedb("admin", "response-sections", 1, 0, &b);
    dy_buf_free(&b);
    /* supervisor.json and STATUS answers */
    const char *sup =
        "{\"actors\":[{\"name\":\"duchy-coordinator\"},{\"name\":\"duchy-claimer-1\"},"
        "{\"name\":\"duchy-herald\"}]}";
    const char *a1 =
        "{\"pid\":7,\"uptime_seconds\":2.0,\"state\":\"ready\",\"counters\":{\"x\":1}}";
    const char *a2 = "[{\"pid\":9,\"computation\":\"AAAAAAAAAQE\"}]";
    dy_buf_t m = {0};
    s_part(&m, sup, strlen(sup));
    s_part(&m, a1, strlen(a1));
    s_part(&m, a2, strlen(a2));
    s_part(&m, "", 0);
    s_seedb("admin", "assembly", 2, 0, &m);
    dy_buf_free(&m);
    /* mill results */
    Halo__Internal__V1__Blob blob = HALO__INTERNAL__V1__BLOB__INIT, *bp = &blob;
    uint8_t sha[32] = {1};
    blob.slot = (char *)"output";
    blob.path = (char *)"/tmp/x/output";
    blob.size = 390;
    blob.sha256.data = sha;
    blob.sha256.len = 32;
    Halo__Internal__V1__MillResult mr = HALO__INTERNAL__V1__MILL_RESULT__INIT;
    mr.job_id = (char *)"job-1";
    mr.outcome = HALO__INTERNAL__V1__MILL_RESULT__OUTCOME__OK;
    mr.outputs = &bp;
    mr.n_outputs = 1;
    for (int k = 0; k < 2; k++) {
        dy_buf_t body = {0}, frame = {0};
        if (k == 1) {
            mr.outcome = HALO__INTERNAL__V1__MILL_RESULT__OUTCOME__PERMFAIL;
            mr.code = (char *)"invalid_point";
            mr.message = (char *)"exec1 register: invalid point in item 3";
            mr.n_outputs = 0;
        }
        s_append_pb(&body, &mr.base);
        FZ_CHECK(dy_mill_frame(body.data, body.len, &frame) == 0);
        s_seedb("admin", k ? "mill-permfail" : "mill-ok", 3, 0, &frame);
        dy_buf_free(&body);
        dy_buf_free(&frame);
    }
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: fuzz_seeds CORPUS_DIR\n");
        return 64;
    }
    s_root = argv[1];
    fz_rng_reset(0x5eed);
    s_llv2_seeds();
    s_edp_seeds();
    s_hmss_seeds();
    s_peer_seeds();
    s_kingdom_seeds();
    s_crypto_seeds();
    s_admin_seeds();
    printf("wrote %d seeds under %s\n", s_count, s_root);
    return 0;
}
