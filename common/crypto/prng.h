/* crypto/prng.h - the AES-256-CTR pseudo-random generator of CRYPTO.md §8.3
 * (any-sketch's, bit-exact): 48-byte seeds (key || initial counter block),
 * uniform values mod q by masked rejection in batches, nonzero values, and
 * the seeded Fisher-Yates shuffle used by HMSS.
 */
#ifndef DY_CRYPTO_PRNG_H
#define DY_CRYPTO_PRNG_H

#include "../dy.h"

#define DY_PRNG_SEED_LEN 48

typedef struct dy_prng dy_prng_t;

/* A generator on seed (key = seed[0..32), counter block = seed[32..48),
 * big-endian 128-bit counter).  Caller destroys.  NULL on failure. */
dy_prng_t *dy_prng_new(const uint8_t seed[DY_PRNG_SEED_LEN]);
void dy_prng_destroy(dy_prng_t **self_p);

/* The next n keystream bytes.  0 or -EIO. */
int dy_prng_bytes(dy_prng_t *self, uint8_t *out, size_t n);

/* n values uniform in [0, q), 2 <= q <= 2^32, exactly as §8.3 (batches,
 * the rest of a batch discarded).  0, -EINVAL (q out of range) or -EIO. */
int dy_prng_uniform(dy_prng_t *self, uint32_t *out, size_t n, uint64_t q);

/* n values uniform in [1, q) as §8.3's nonzero().  Same errors. */
int dy_prng_nonzero(dy_prng_t *self, uint32_t *out, size_t n, uint64_t q);

/* Shuffles v[0..n) with a fresh generator on seed, as §8.3's Shuffle.
 * 0, -ENOMEM or -EIO. */
int dy_prng_shuffle(const uint8_t seed[DY_PRNG_SEED_LEN], uint32_t *v, size_t n);

/* The big-endian value of bpv (1..4) keystream bytes at p, as §8.3 reads
 * each value before masking.  Inline for the hot loops of prng.c and the
 * parallel expansion in protocol/hmss.c; with a constant bpv the switch
 * disappears. */
static inline __attribute__((always_inline)) uint32_t dy_prng_load_be(const uint8_t *p,
                                                                       unsigned bpv)
{
    switch (bpv) {
    case 1:
        return p[0];
    case 2:
        return (uint32_t)p[0] << 8 | p[1];
    case 3:
        return (uint32_t)p[0] << 16 | (uint32_t)p[1] << 8 | p[2];
    default:
        return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
    }
}

#endif
