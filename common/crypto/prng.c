/* crypto/prng.c - the AES-256-CTR generator of CRYPTO.md §8.3, bit-exact
 * with any-sketch: the keystream (zero bytes encrypted under key σ[0..32)
 * with the 128-bit big-endian counter block σ[32..48)), uniform values by
 * masked rejection in batches whose unused tail is discarded, nonzero
 * values, and the seeded Fisher-Yates shuffle of HMSS.
 *
 * Speed: HMSS expands tens of millions of values, so the keystream is made
 * in blocks of DY_PRNG_CHUNK bytes (one EVP call per block, never one per
 * value) and the rejection loop is branch-free while the output cannot
 * overflow.  The EVP context keeps the position inside the current AES
 * block, so the stream stays continuous across calls of any length.
 *
 * Secrets: the seed, the keystream and the values are secret; the scratch
 * block is wiped when the generator is destroyed.
 */
#include "prng.h"

#include <limits.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

/* Keystream block size, in bytes.  uniform() uses the largest multiple of
 * bytes-per-value that fits; Shuffle uses all of it (1024 ρ values). */
#define DY_PRNG_CHUNK 16384

/* Swap indices computed ahead of the swaps in Shuffle (for prefetching). */
#define DY_PRNG_SHUFFLE_BLOCK (DY_PRNG_CHUNK / 16)
#define DY_PRNG_PREFETCH 16

struct dy_prng {
    EVP_CIPHER_CTX *ctx;                /* owned; AES-256-CTR, keyed at creation */
    uint8_t scratch[DY_PRNG_CHUNK];     /* keystream block being consumed; wiped on destroy */
};

dy_prng_t *dy_prng_new(const uint8_t seed[DY_PRNG_SEED_LEN])
{
    if (seed == NULL)
        return NULL;
    dy_prng_t *self = calloc(1, sizeof(*self));
    if (self == NULL)
        return NULL;
    self->ctx = EVP_CIPHER_CTX_new();
    if (self->ctx == NULL
        || EVP_EncryptInit_ex(self->ctx, EVP_aes_256_ctr(), NULL, seed, seed + 32) != 1) {
        dy_prng_destroy(&self);
        return NULL;
    }
    return self;
}

void dy_prng_destroy(dy_prng_t **self_p)
{
    if (self_p == NULL || *self_p == NULL)
        return;
    dy_prng_t *self = *self_p;
    EVP_CIPHER_CTX_free(self->ctx); /* wipes the key schedule */
    OPENSSL_cleanse(self->scratch, sizeof(self->scratch));
    free(self);
    *self_p = NULL;
}

/* Writes the next n keystream bytes to out (n <= INT_MAX): zeroes, then
 * encrypts them in place.  0 or -EIO. */
static int s_stream(dy_prng_t *self, uint8_t *out, size_t n)
{
    int outl = 0;
    memset(out, 0, n);
    if (EVP_EncryptUpdate(self->ctx, out, &outl, out, (int)n) != 1 || (size_t)outl != n)
        return -EIO;
    return 0;
}

int dy_prng_bytes(dy_prng_t *self, uint8_t *out, size_t n)
{
    if (self == NULL || (out == NULL && n > 0))
        return -EINVAL;
    while (n > 0) {
        size_t k = n > (size_t)INT_MAX ? (size_t)INT_MAX & ~(size_t)15 : n;
        int r = s_stream(self, out, k);
        if (r < 0)
            return r;
        out += k;
        n -= k;
    }
    return 0;
}

/* Branch-free rejection of ngroups groups at p into out, which must have
 * room for ngroups values.  Adds the values accepted to *acc and returns
 * how many were stored (with skip_zero, accepted zeros are not stored). */
static inline __attribute__((always_inline)) size_t
s_scan_fast(const uint8_t *p, size_t ngroups, unsigned bpv, bool skip_zero, uint32_t mask,
            uint64_t q, uint32_t *out, uint64_t *acc)
{
    size_t k = 0;
    uint64_t a = 0;
    for (size_t g = 0; g < ngroups; g++) {
        uint32_t v = dy_prng_load_be(p + g * bpv, bpv) & mask;
        size_t ok = (uint64_t)v < q;
        out[k] = v;
        a += ok;
        k += skip_zero ? ok & (v != 0) : ok;
    }
    *acc += a;
    return k;
}

static size_t s_scan_fast_any(const uint8_t *p, size_t ngroups, unsigned bpv, bool skip_zero,
                              uint32_t mask, uint64_t q, uint32_t *out, uint64_t *acc)
{
#define S_CASE(b)                                                                  \
    case b:                                                                        \
        return skip_zero ? s_scan_fast(p, ngroups, b, true, mask, q, out, acc)     \
                         : s_scan_fast(p, ngroups, b, false, mask, q, out, acc)
    switch (bpv) {
    S_CASE(1);
    S_CASE(2);
    S_CASE(3);
    default:
    S_CASE(4);
    }
#undef S_CASE
}

/* The rejection state of one uniform(count, q) call (§8.3). */
typedef struct {
    uint64_t q;         /* modulus, 2..2^32 */
    uint32_t mask;      /* 2^L - 1 */
    unsigned bpv;       /* bytes per value, ceil(L/8) */
    double phi;         /* rejection probability (2^L - q) / 2^L */
    uint64_t count;     /* values the call must accept */
    uint64_t accepted;  /* values accepted so far */
    bool skip_zero;     /* store only nonzero values (nonzero()) */
    uint32_t *out;      /* borrowed; where stored values go */
    size_t nmax;        /* room in out */
    size_t stored;      /* values written to out */
} s_draw_t;

/* Consumes ngroups groups at p: accepts values < q until count values are
 * accepted (the rest of the groups are ignored), storing them as d says. */
static void s_scan(s_draw_t *d, const uint8_t *p, size_t ngroups)
{
    /* Fast path: neither the accepted count nor out can fill up here. */
    if (d->count - d->accepted >= ngroups && d->nmax - d->stored >= ngroups) {
        d->stored += s_scan_fast_any(p, ngroups, d->bpv, d->skip_zero, d->mask, d->q,
                                     d->out + d->stored, &d->accepted);
        return;
    }
    for (size_t g = 0; g < ngroups && d->accepted < d->count; g++) {
        uint32_t v = dy_prng_load_be(p + g * d->bpv, d->bpv) & d->mask;
        if ((uint64_t)v >= d->q)
            continue;
        d->accepted++;
        if (d->stored < d->nmax && !(d->skip_zero && v == 0))
            d->out[d->stored++] = v;
    }
}

/* Runs §8.3's uniform(count, q) on self, storing the accepted values (or,
 * with skip_zero, only the nonzero ones) into out until nmax are stored;
 * the others are drawn and dropped.  *ret_stored gets the number stored.
 * q must already be checked.  0 or -EIO (-EINVAL if a batch overflows). */
static int s_uniform(dy_prng_t *self, uint64_t q, uint64_t count, bool skip_zero, uint32_t *out,
                     size_t nmax, size_t *ret_stored)
{
    unsigned L = 64 - (unsigned)__builtin_clzll(q - 1);     /* bitlen(q - 1), 1..32 */
    uint64_t two_l = (uint64_t)1 << L;
    s_draw_t d = {
        .q = q,
        .mask = (uint32_t)(two_l - 1),
        .bpv = (L + 7) / 8,
        .phi = (double)(two_l - q) / (double)two_l,
        .count = count,
        .skip_zero = skip_zero,
        .out = out,
        .nmax = nmax,
    };
    /* Largest whole number of groups in one keystream block. */
    size_t chunk = DY_PRNG_CHUNK / d.bpv * d.bpv;

    while (d.accepted < d.count) {
        uint64_t need = d.count - d.accepted;
        /* The reference's expression, evaluated in its order. */
        double want = (double)need + 1.0 + (double)need * d.phi / (1.0 - d.phi);
        if (!(want < 18446744073709551615.0))
            return -EINVAL;
        uint64_t batch = (uint64_t)want;
        if (batch > UINT64_MAX / d.bpv)
            return -EINVAL;
        uint64_t left = batch * d.bpv;     /* bytes of this batch still to read */
        while (left > 0) {
            size_t k = left > chunk ? chunk : (size_t)left;
            int r = s_stream(self, self->scratch, k);
            if (r < 0)
                return r;
            if (d.accepted < d.count)
                s_scan(&d, self->scratch, k / d.bpv);
            left -= k;
        }
    }
    *ret_stored = d.stored;
    return 0;
}

static bool s_q_ok(uint64_t q)
{
    return q >= 2 && q <= ((uint64_t)1 << 32);
}

int dy_prng_uniform(dy_prng_t *self, uint32_t *out, size_t n, uint64_t q)
{
    if (self == NULL || !s_q_ok(q) || (out == NULL && n > 0))
        return -EINVAL;
    size_t stored = 0;
    return s_uniform(self, q, n, false, out, n, &stored);
}

int dy_prng_nonzero(dy_prng_t *self, uint32_t *out, size_t n, uint64_t q)
{
    if (self == NULL || !s_q_ok(q) || (out == NULL && n > 0))
        return -EINVAL;
    /* The reference's failure rate 1/q and its int64 batch size. */
    double fail = 1.0 / (double)q;
    size_t got = 0;
    while (got < n) {
        size_t need = n - got;
        double want = (double)need + 1.0 + (double)need * fail / (1.0 - fail);
        if (!(want < 9223372036854775807.0))
            return -EINVAL;
        int64_t batch = (int64_t)want;
        size_t stored = 0;
        int r = s_uniform(self, q, (uint64_t)batch, true, out + got, need, &stored);
        if (r < 0)
            return r;
        got += stored;
    }
    return 0;
}

__extension__ typedef unsigned __int128 s_u128;

/* rho mod m for the 128-bit rho = hi·2^64 + lo and m >= 1.  Reducing hi
 * first keeps the 128-by-64 division to its cheap case (the quotient fits
 * 64 bits): measured here 5.4 ns, against 7.7 ns for §11 item 8's
 * ((hi mod m)·(2^64 mod m) + lo mod m) mod m, which needs m <= 2^32. */
static inline uint64_t s_mod128(uint64_t hi, uint64_t lo, uint64_t m)
{
    return (uint64_t)((((s_u128)(hi % m)) << 64 | lo) % m);
}

static inline uint64_t s_le64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

int dy_prng_shuffle(const uint8_t seed[DY_PRNG_SEED_LEN], uint32_t *v, size_t n)
{
    if (seed == NULL || (v == NULL && n > 0))
        return -EINVAL;
    if (n < 2)
        return 0; /* no swaps; the 16·n keystream bytes would be unused */
    dy_prng_t *g = dy_prng_new(seed);
    if (g == NULL)
        return -ENOMEM;
    size_t js[DY_PRNG_SHUFFLE_BLOCK];
    int r = 0;
    /* ρ_i for i = 0..n-2 come from bytes [16i, 16i+16); the last 16 bytes
     * of the reference's 16·n are never used, so they are not made. */
    for (size_t base = 0; base + 1 < n; base += DY_PRNG_SHUFFLE_BLOCK) {
        size_t cnt = n - 1 - base;
        if (cnt > DY_PRNG_SHUFFLE_BLOCK)
            cnt = DY_PRNG_SHUFFLE_BLOCK;
        r = s_stream(g, g->scratch, 16 * cnt);
        if (r < 0)
            break;
        for (size_t k = 0; k < cnt; k++) {
            const uint8_t *p = g->scratch + 16 * k;
            size_t i = base + k;
            js[k] = i + (size_t)s_mod128(s_le64(p + 8), s_le64(p), (uint64_t)(n - i));
        }
        for (size_t k = 0; k < cnt; k++) {
            if (k + DY_PRNG_PREFETCH < cnt)
                __builtin_prefetch(&v[js[k + DY_PRNG_PREFETCH]], 1);
            size_t i = base + k, j = js[k];
            uint32_t t = v[i];
            v[i] = v[j];
            v[j] = t;
        }
    }
    OPENSSL_cleanse(js, sizeof(js));
    dy_prng_destroy(&g);
    return r;
}
