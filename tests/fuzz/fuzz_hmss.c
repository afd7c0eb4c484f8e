/* fuzz_hmss.c - libFuzzer target for the Honest-Majority Share Shuffle stage inputs a duchy
 * receives from a peer duchy (proto/hmss.proto; STYLE.md rule 38), decoded and checked as
 * the coordinator and duchy-mill do:
 *   0 a ShufflePhaseInput at a shuffler: the coordinator's body check
 *     (dy_coord_check_body), then the mill's SHUFFLE_PHASE reading (actors/mill.c
 *     s_hmss_shuffle, whose decoding is inline there and repeated here step by step):
 *     the peer's 48-byte seed, for each requisition of the computation either the local
 *     data share or the peer's secret seed for it, opened and verified with
 *     dy_mc_seed_open, the register counts, then dy_hmss_shuffle; what it produces must
 *     pass the aggregator's body check;
 *   1 the two AggregationPhaseInputs at the aggregator: the body checks, the mill's
 *     s_agg_input checks (values < q, equal lengths and register counts), then
 *     dy_hmss_aggregate.
 * Parameters are those of the fixture's HMSS computation 0x125 (tests/fuzz/fuzz_fixture.h:
 * q = 127, three requisitions, even ids fulfilled at worker1, odd at worker2).
 * Input layout: byte 0 operation (% 2); byte 1: op 0 shuffler b % 2 (worker1 = first
 * non-aggregator, worker2), local share length 1 + (b / 2) % 8; op 1 reach only if b & 1,
 * noise if b & 2; then op 0 the ShufflePhaseInput, op 1 two parts (2-byte big-endian
 * length and bytes).  Invariants (abort on violation): refusals are permanent; shuffled
 * vectors hold R + 2 N_z values below q; aggregated frequencies sum to 1 (or are all 0).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_fixture.h"
#include "hmss.pb-c.h"
#include "protocol/hmss.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define S_COMP 0x125
#define S_NREQ 3
#define S_MAX_REGISTERS 4096 /* cap of the shuffle runs here (the product allows 2^32) */

typedef Wfa__Measurement__Internal__Duchy__Protocol__ShufflePhaseInput s_shuffle_in_t;
typedef Wfa__Measurement__Internal__Duchy__Protocol__AggregationPhaseInput s_agg_in_t;

static EVP_PKEY *s_edp_pub;

static void s_close(void)
{
    EVP_PKEY_free(s_edp_pub);
}

static void s_init(void)
{
    if (s_edp_pub != NULL)
        return;
    const fz_world_t *w = fz_world();
    uint8_t pub[33];
    FZ_CHECK(dy_sig_key_pub(w->sign[FZ_EDP], pub) == 0);
    s_edp_pub = dy_sig_key_from_pub(pub, 33);
    FZ_CHECK(s_edp_pub != NULL);
    atexit(s_close);
}

/* The mill's SHUFFLE_PHASE at shuffler `me` (0 FNA, 1 SNA). */
static void s_shuffle(int me, size_t R, const uint8_t *body, size_t len)
{
    const fz_world_t *w = fz_world();
    char why[160];
    /* The coordinator: SNA receives SHUFFLE_PHASE_INPUT_ONE, FNA _TWO. */
    if (dy_coord_check_body(DY_PROTO_HMSS, me == 1 ? 1 : 2, body, len, why, sizeof(why)) < 0)
        return;
    s_shuffle_in_t *peer =
        wfa__measurement__internal__duchy__protocol__shuffle_phase_input__unpack(NULL, len, body);
    FZ_CHECK(peer != NULL); /* the body check decoded it already */
    FZ_CHECK(peer->peer_random_seed.len == DY_PRNG_SEED_LEN);
    dy_hmss_params_t p = fz_hmss_params(false, false);
    char cid[DY_EXT_ID_LEN + 1], cname[64];
    fz_id(S_COMP, cid);
    snprintf(cname, sizeof(cname), "computations/%s", cid);
    dy_hmss_share_t shares[S_NREQ];
    uint32_t local[S_NREQ][8];
    uint8_t seeds[S_NREQ][DY_PRNG_SEED_LEN];
    bool ok = true;
    for (size_t i = 0; ok && i < S_NREQ; i++) {
        char rid[DY_EXT_ID_LEN + 1], rname[128];
        fz_id(fz_req_id(S_COMP, i), rid);
        snprintf(rname, sizeof(rname), "%s/requisitions/%s", cname, rid);
        bool is_local = (int)(fz_req_id(S_COMP, i) % 2) == me;
        if (is_local) {
            for (size_t k = 0; k < R; k++)
                local[i][k] = (uint32_t)((i * 31 + k * 7) % FZ_Q);
            shares[i] = (dy_hmss_share_t){.data = local[i], .registers = R};
        } else {
            /* The mill: the last of the peer's seeds naming the requisition. */
            ProtobufCBinaryData ct = {0, NULL};
            int64_t count = 0;
            for (size_t k = 0; k < peer->n_secret_seeds; k++)
                if (strcmp(peer->secret_seeds[k]->requisition_id, rname) == 0) {
                    ct = peer->secret_seeds[k]->secret_seed_ciphertext;
                    count = peer->secret_seeds[k]->register_count;
                }
            if (ct.len == 0 || count <= 0) {
                ok = false;
                break;
            }
            int rc = dy_mc_seed_open(w->hmss_priv[me], s_edp_pub, cname, rname, ct.data, ct.len,
                                     seeds[i]);
            FZ_CHECK(rc == 0 || rc == -EBADMSG);
            if (rc < 0 || (uint64_t)count > S_MAX_REGISTERS) {
                ok = false;
                break;
            }
            shares[i] = (dy_hmss_share_t){.seed = seeds[i], .registers = (size_t)count};
        }
        if (shares[i].registers != shares[0].registers)
            ok = false; /* share_inconsistent */
    }
    if (ok) {
        uint8_t common[DY_PRNG_SEED_LEN];
        uint8_t own[DY_PRNG_SEED_LEN];
        memset(own, 0x3c + me, sizeof(own));
        for (int i = 0; i < DY_PRNG_SEED_LEN; i++)
            common[i] = own[i] ^ peer->peer_random_seed.data[i];
        uint32_t *vec = NULL;
        size_t vlen = 0;
        dy_err_t e;
        dy_err_clear(&e);
        int rc = dy_hmss_shuffle(&p, me + 1, shares, S_NREQ, common, &vec, &vlen, &e);
        FZ_CHECK(rc == 0); /* every share was checked above */
        FZ_CHECK(vlen == shares[0].registers);
        for (size_t i = 0; i < vlen; i++)
            FZ_CHECK(vec[i] < FZ_Q);
        /* What goes to the aggregator passes its body check. */
        s_agg_in_t a = WFA__MEASUREMENT__INTERNAL__DUCHY__PROTOCOL__AGGREGATION_PHASE_INPUT__INIT;
        a.combined_frequency_vectors = vec;
        a.n_combined_frequency_vectors = vlen;
        a.register_count = (int64_t)shares[0].registers;
        size_t n = 0;
        uint8_t *packed = fz_pack(&a.base, &n);
        FZ_CHECK(dy_coord_check_body(DY_PROTO_HMSS, 3, packed, n, why, sizeof(why)) == 0);
        free(packed);
        free(vec);
    }
    wfa__measurement__internal__duchy__protocol__shuffle_phase_input__free_unpacked(peer, NULL);
}

/* The mill's s_agg_input: decoded, every value below q; NULL when refused. */
static s_agg_in_t *s_agg_input(fz_in_t part)
{
    char why[160];
    if (dy_coord_check_body(DY_PROTO_HMSS, 3, part.p, part.n, why, sizeof(why)) < 0)
        return NULL;
    s_agg_in_t *a = wfa__measurement__internal__duchy__protocol__aggregation_phase_input__unpack(
        NULL, part.n, part.p);
    FZ_CHECK(a != NULL && a->register_count >= 0);
    for (size_t i = 0; i < a->n_combined_frequency_vectors; i++)
        if (a->combined_frequency_vectors[i] >= FZ_Q) {
            wfa__measurement__internal__duchy__protocol__aggregation_phase_input__free_unpacked(
                a, NULL);
            return NULL;
        }
    return a;
}

static void s_aggregate(int sel, fz_in_t in)
{
    dy_hmss_params_t p = fz_hmss_params(sel & 1, (sel & 2) != 0);
    s_agg_in_t *a1 = s_agg_input(fz_part(&in));
    s_agg_in_t *a2 = a1 ? s_agg_input(fz_part(&in)) : NULL;
    if (a1 && a2 && a1->n_combined_frequency_vectors == a2->n_combined_frequency_vectors &&
        a1->register_count == a2->register_count && a1->register_count > 0 &&
        (uint64_t)a1->register_count <= a1->n_combined_frequency_vectors) {
        int64_t reach = -1;
        double freq[3] = {-1, -1, -1};
        dy_err_t e;
        dy_err_clear(&e);
        int rc =
            dy_hmss_aggregate(&p, a1->combined_frequency_vectors, a2->combined_frequency_vectors,
                              a1->n_combined_frequency_vectors, (size_t)a1->register_count, &reach,
                              p.reach_only ? NULL : freq, &e);
        if (rc < 0) {
            FZ_CHECK(e.outcome == DY_OUTCOME_PERMFAIL);
        } else {
            FZ_CHECK(reach >= 0);
            if (!p.reach_only) {
                double sum = 0;
                for (int i = 0; i < 3; i++) {
                    FZ_CHECK(freq[i] >= 0 && freq[i] <= 1);
                    sum += freq[i];
                }
                FZ_CHECK(fabs(sum - 1.0) < 1e-9 || sum == 0);
            }
        }
    }
    if (a1)
        wfa__measurement__internal__duchy__protocol__aggregation_phase_input__free_unpacked(a1,
                                                                                            NULL);
    if (a2)
        wfa__measurement__internal__duchy__protocol__aggregation_phase_input__free_unpacked(a2,
                                                                                            NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    s_init();
    fz_rng_reset(0x686d7373);
    fz_in_t in = {data + 2, size - 2};
    if (data[0] % 2 == 0)
        s_shuffle(data[1] % 2, 1 + (size_t)(data[1] / 2) % 8, in.p, in.n);
    else
        s_aggregate(data[1], in);
    return 0;
}
