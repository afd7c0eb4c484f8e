/* protocol/hmss.h - Honest-Majority Share Shuffle (CRYPTO.md §8): the data
 * provider's secret sharing, the shuffle phase at each shuffler (W1 = first
 * non-aggregator, W2 = second) and the aggregation phase, for reach and
 * frequency and for reach only.  Vectors are uint32 values < q; on the wire
 * R × uint32 little-endian (dy_hmss_to_le / dy_hmss_from_le).
 */
#ifndef DY_PROTOCOL_HMSS_H
#define DY_PROTOCOL_HMSS_H

#include "../crypto/prng.h"
#include "../noise/noise.h"

typedef struct {
    uint64_t ring_modulus; /* q */
    int max_frequency;     /* K_e: K for reach and frequency, 1 for reach only */
    int num_sketches;      /* S: requisitions */
    bool reach_only;       /* the reach-only shuffle and aggregation */
    float vid_width;       /* (0, 1] */
    dy_noise_mech_t noise; /* NONE, GEOMETRIC or DISCRETE_GAUSSIAN */
    dy_dp_params_t reach;
    dy_dp_params_t frequency;
    int threads;
} dy_hmss_params_t;

/* One requisition's share at a shuffler: either the data vector itself or
 * the 48-byte seed that expands to it (already decrypted and verified). */
typedef struct {
    const uint32_t *data;                 /* R values, or NULL */
    const uint8_t *seed;                  /* DY_PRNG_SEED_LEN bytes, or NULL */
    size_t registers;                     /* R */
} dy_hmss_share_t;

/* Parameter checks (§8.1, §8.6; q > MCF+1, reach only q prime <= 2^31-1). */
int dy_hmss_params_check(const dy_hmss_params_t *p, dy_err_t *err);

/* Data provider: splits values[0..R) (each <= K_e) into data (out, R
 * values) and a fresh seed (48 bytes, from dy_rand_bytes). */
int dy_hmss_share(const dy_hmss_params_t *p, const uint32_t *values, size_t R,
                  uint8_t seed[DY_PRNG_SEED_LEN], uint32_t *data, dy_err_t *err);

/* Shuffle phase at shuffler `which` (1 or 2): sums the shares (in the
 * order given: ascending requisition id), adds the shuffler's noise share,
 * shuffles with the common seed c = omega_W1 xor omega_W2.  *ret_vec
 * (caller frees) receives R + 2·N_z values. */
int dy_hmss_shuffle(const dy_hmss_params_t *p, int which, const dy_hmss_share_t *shares,
                    size_t nshares, const uint8_t common_seed[DY_PRNG_SEED_LEN],
                    uint32_t **ret_vec, size_t *ret_len, dy_err_t *err);

/* Aggregation (§8.5): v = v1 + v2 mod q over len values, R the original
 * register count.  *ret_reach; freq[0..K) for reach and frequency (may be
 * NULL for reach only). */
int dy_hmss_aggregate(const dy_hmss_params_t *p, const uint32_t *v1, const uint32_t *v2,
                      size_t len, size_t R, int64_t *ret_reach, double *freq, dy_err_t *err);

/* Wire helpers: R × uint32 little-endian.  to_le appends 4n bytes to out:
 * 0, -EINVAL or -ENOMEM. */
int dy_hmss_to_le(const uint32_t *v, size_t n, dy_buf_t *out);
/* Parses len bytes (a multiple of 4) into *ret (caller frees), each < q. */
int dy_hmss_from_le(const uint8_t *in, size_t len, uint64_t q, uint32_t **ret, size_t *ret_n,
                    dy_err_t *err);

/* Parallel, bit-identical equivalents of the §8.3 PRNG calls (CRYPTO.md
 * §11 item 8), for EDPs, benchmarks and tests:
 * dy_hmss_expand: out[0..n) = PRNG(seed).uniform(n, q) on a fresh
 * generator, 2 <= q <= 2^32.  0, -EINVAL or -EIO.
 * dy_hmss_permute: v = Shuffle(v, seed) (n < 2^32).  0, -EINVAL, -ENOMEM
 * or -EIO.  Both use up to `threads` threads (< 1 means 1). */
int dy_hmss_expand(const uint8_t seed[DY_PRNG_SEED_LEN], uint64_t q, size_t n, int threads,
                   uint32_t *out);
int dy_hmss_permute(const uint8_t seed[DY_PRNG_SEED_LEN], uint32_t *v, size_t n, int threads);

#endif
