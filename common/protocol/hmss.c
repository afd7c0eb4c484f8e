/* protocol/hmss.c - Honest-Majority Share Shuffle (CRYPTO.md §8): the data
 * provider's sharing (§8.2), the shuffle phase at W1 and W2 (§8.4), the
 * aggregation (§8.5), parameter checks (§8.1, §8.6, §7.5) and the wire
 * helpers.
 *
 * Every PRNG draw here must be bit-identical to §8.3 (dy_prng_*), yet the
 * long draws (a seed share's R values, the reach-only ρ, the 16·|v| bytes
 * of a shuffle) run on params->threads threads (§11 item 8).  So this file
 * carries its own *positional* view of the same AES-256-CTR stream: a
 * generator is (key, initial counter block, byte position), and any byte
 * range can be produced on its own by starting AES-CTR at counter block
 * ctr0 + offset/16 (128-bit big-endian add) and dropping offset mod 16
 * bytes.  A uniform(N, q) call is then replayed exactly: per batch (the
 * batch arithmetic of §8.3, discarded tail included) each chunk of groups
 * first counts its accepted values, a prefix sum gives every chunk its
 * first output index, and a second pass regenerates the chunk's keystream
 * and writes its values (AES is cheap next to the memory traffic, so
 * regenerating beats buffering).  The tests check this against
 * dy_prng_uniform, dy_prng_nonzero and dy_prng_shuffle.
 *
 * Shuffle: the swap targets j_i = i + ρ_i mod (n-i) are computed in
 * parallel, block by block, while thread 0 performs the previous block's
 * swaps (sequential by nature) with software prefetch.
 *
 * Measured here (2 vCPU, q = 127, 1e7 registers, 2 EDPs, noise off, both
 * shuffles and the aggregation): about 0.25-0.4 s on 2 threads and
 * 0.42-0.65 s on 1 thread, depending on the machine's other load.
 *
 * Error codes (dy_err_t.code): invalid_params, unsupported_noise_mechanism,
 * bad_share (a malformed share list), register_count_mismatch,
 * value_out_of_range (an input value >= q, or an EDP value > K_e),
 * bad_length, share_inconsistent (§8.5 step 1), zero_total (§8.5 step 4),
 * and internal (allocation or OpenSSL failure, TEMPFAIL).
 *
 * Secrets: seeds, the common seed and its generator, keystream buffers,
 * swap targets, and the shuffler's noise vector and masks are wiped after
 * use.  Nothing secret is put in a message.
 */
#include "hmss.h"

#include "../crypto/ec.h" /* dy_rand_bytes */
#include "../par.h"

#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

__extension__ typedef unsigned __int128 s_u128;

/* Below this many values a pass runs in the calling thread only. */
#define S_PAR_MIN 65536
/* Keystream is produced through an L1-sized buffer. */
#define S_BUF 16384
/* Swap-phase prefetch distance (CRYPTO.md §11 item 8: about 32). */
#define S_PREFETCH 32

/* HMSS noise: two contributors (the shufflers), sensitivity 2 for reach and
 * frequency (CRYPTO.md §7.1). */
#define S_NOISE_CONTRIBUTORS 2
#define S_NOISE_SENSITIVITY 2.0

static const uint8_t s_zeros[S_BUF];

/* ---- positional AES-256-CTR generator (CRYPTO.md §8.3) ------------------ */

typedef struct {
    uint8_t key[32]; /* seed[0..32) */
    uint8_t ctr[16]; /* seed[32..48): the initial counter block */
    uint64_t pos;    /* keystream bytes consumed so far */
} s_gen_t;

static void s_gen_init(s_gen_t *g, const uint8_t seed[DY_PRNG_SEED_LEN])
{
    memcpy(g->key, seed, 32);
    memcpy(g->ctr, seed + 32, 16);
    g->pos = 0;
}

/* Opens an AES-CTR context producing g's keystream from byte offset off.
 * NULL on failure. */
static EVP_CIPHER_CTX *s_cursor(const s_gen_t *g, uint64_t off)
{
    uint8_t iv[16];
    uint64_t add = off >> 4;
    unsigned carry = 0;
    for (int i = 15; i >= 0; i--) {
        unsigned s = (unsigned)g->ctr[i] + (unsigned)(add & 0xff) + carry;
        iv[i] = (uint8_t)s;
        carry = s >> 8;
        add >>= 8;
    }
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    int len, ok = ctx != NULL
                  && EVP_EncryptInit_ex(ctx, EVP_aes_256_ctr(), NULL, g->key, iv) == 1;
    uint8_t skip[16];
    if (ok && (off & 15))
        ok = EVP_EncryptUpdate(ctx, skip, &len, s_zeros, (int)(off & 15)) == 1;
    OPENSSL_cleanse(iv, sizeof(iv));
    OPENSSL_cleanse(skip, sizeof(skip));
    if (!ok) {
        EVP_CIPHER_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}

/* The next n keystream bytes of an open cursor.  0 or -EIO. */
static int s_cursor_read(EVP_CIPHER_CTX *ctx, uint8_t *out, size_t n)
{
    while (n > 0) {
        size_t k = n < S_BUF ? n : S_BUF;
        int len;
        if (EVP_EncryptUpdate(ctx, out, &len, s_zeros, (int)k) != 1 || (size_t)len != k)
            return -EIO;
        out += k;
        n -= k;
    }
    return 0;
}

/* The next n bytes of g (sequential use).  0 or -EIO. */
static int s_gen_bytes(s_gen_t *g, uint8_t *out, size_t n)
{
    EVP_CIPHER_CTX *ctx = s_cursor(g, g->pos);
    if (ctx == NULL)
        return -EIO;
    int rc = s_cursor_read(ctx, out, n);
    EVP_CIPHER_CTX_free(ctx);
    if (rc == 0)
        g->pos += n;
    return rc;
}

/* ---- modular helpers ----------------------------------------------------- */

static unsigned s_bitlen(uint64_t x)
{
    return x ? 64u - (unsigned)__builtin_clzll(x) : 0u;
}

/* x mod q for x < 2^64, q >= 2, with barrett = floor((2^64-1)/q). */
static inline uint64_t s_mod_barrett(uint64_t x, uint64_t q, uint64_t barrett)
{
    uint64_t qe = (uint64_t)(((s_u128)x * barrett) >> 64);
    uint64_t r = x - qe * q;
    while (r >= q)
        r -= q;
    return r;
}

/* (hi·2^64 + lo) mod m for m >= 1: reducing hi first keeps the 128-by-64
 * division to the case whose quotient fits 64 bits (one hardware divide;
 * measured here 5.4 ns, against 15 ns for a double-reciprocal variant). */
static inline uint64_t s_mod128(uint64_t hi, uint64_t lo, uint64_t m)
{
    return (uint64_t)((((s_u128)(hi % m)) << 64 | lo) % m);
}

/* ---- parallel uniform(N, q) ---------------------------------------------- */

/* What a pass does with each accepted value u (index k of the call). */
typedef enum {
    S_OP_STORE, /* out[k] = u */
    S_OP_ADD,   /* out[k] = base[k] + u mod q (base[k] <= limit checked) */
    S_OP_SUB,   /* out[k] = base[k] - u mod q (base[k] <= limit checked) */
} s_op_t;

typedef struct {
    const s_gen_t *g;      /* borrowed */
    uint64_t pos;          /* stream offset of this batch */
    uint64_t groups;       /* groups in this batch */
    unsigned bpv;          /* bytes per value */
    uint32_t mask;         /* 2^L - 1 */
    uint64_t q;            /* modulus */
    bool all_accept;       /* q = 2^L: every group is accepted */
    size_t nchunks;        /* chunks of groups */
    uint64_t *count;       /* owned by the caller: accepted per chunk */
    uint64_t *start;       /* owned by the caller: first output index per chunk */
    uint64_t *written;     /* owned by the caller: values written per chunk */
    bool counted;          /* count[] and start[] hold the counting pass */
    uint64_t need;         /* values still wanted by this call */
    s_op_t op;
    const uint32_t *base;  /* ADD/SUB operand, already offset; borrowed */
    uint32_t limit;        /* ADD/SUB: largest admissible operand */
    uint32_t *out;         /* output, already offset; borrowed */
    int bad[256];          /* per chunk: an operand above limit was seen */
} s_unif_t;

static uint64_t s_chunk_lo(uint64_t n, size_t nchunks, size_t c)
{
    return (uint64_t)(((s_u128)n * c) / nchunks);
}

/* Counts the accepted values among groups [g0, g1) of the batch. */
static inline __attribute__((always_inline)) int s_count_chunk(const s_unif_t *u, uint64_t g0,
                                                               uint64_t g1, unsigned bpv,
                                                               uint64_t *ret)
{
    uint8_t buf[S_BUF];
    uint64_t per = S_BUF / bpv, cnt = 0;
    EVP_CIPHER_CTX *ctx = s_cursor(u->g, u->pos + g0 * bpv);
    if (ctx == NULL)
        return -EIO;
    for (uint64_t at = g0; at < g1;) {
        uint64_t k = g1 - at < per ? g1 - at : per;
        if (s_cursor_read(ctx, buf, k * bpv) < 0) {
            EVP_CIPHER_CTX_free(ctx);
            return -EIO;
        }
        const uint8_t *p = buf;
        uint64_t c = 0;
        for (uint64_t i = 0; i < k; i++, p += bpv)
            c += (uint64_t)((dy_prng_load_be(p, bpv) & u->mask) < u->q);
        cnt += c;
        at += k;
    }
    OPENSSL_cleanse(buf, sizeof(buf));
    EVP_CIPHER_CTX_free(ctx);
    *ret = cnt;
    return 0;
}

/* out[k] = op(base[k], v) for an accepted value v < q. */
static inline __attribute__((always_inline)) uint32_t s_apply(s_op_t op, uint32_t b, uint32_t v,
                                                              uint64_t q)
{
    if (op == S_OP_STORE)
        return v;
    uint64_t s = op == S_OP_ADD ? (uint64_t)b + v : (uint64_t)b + (q - v);
    return (uint32_t)(s >= q ? s - q : s);
}

/* Writes the accepted values of groups [g0, g1) to output indices
 * [k0, kend) (kend: where the chunk's values end, capped at u->need).
 * *bad is set if an ADD/SUB operand exceeded the limit.  While a whole
 * buffer cannot pass kend the loop is branch-free: every group is written
 * at the current index, which advances only on acceptance, so a rejected
 * value is overwritten by the next accepted one and no write leaves the
 * chunk's own output range (base may alias out, so a rejected ADD/SUB
 * writes the operand back unchanged). */
static inline __attribute__((always_inline)) int
s_write_chunk(const s_unif_t *u, uint64_t g0, uint64_t g1, uint64_t k0, uint64_t kend,
              unsigned bpv, s_op_t op, int *bad, uint64_t *ret_written)
{
    uint8_t buf[S_BUF];
    uint64_t per = S_BUF / bpv, k = k0, q = u->q;
    uint32_t mask = u->mask, limit = u->limit;
    uint32_t *out = u->out;
    const uint32_t *base = u->base;
    bool ovf = false;
    EVP_CIPHER_CTX *ctx = s_cursor(u->g, u->pos + g0 * bpv);
    if (ctx == NULL)
        return -EIO;
    for (uint64_t at = g0; at < g1 && k < kend;) {
        uint64_t n = g1 - at < per ? g1 - at : per;
        if (s_cursor_read(ctx, buf, n * bpv) < 0) {
            EVP_CIPHER_CTX_free(ctx);
            return -EIO;
        }
        const uint8_t *p = buf;
        if (k + n <= kend) {
            for (uint64_t i = 0; i < n; i++, p += bpv) {
                uint32_t v = dy_prng_load_be(p, bpv) & mask, b = op == S_OP_STORE ? 0 : base[k];
                bool ok = (uint64_t)v < q;
                ovf |= b > limit;
                /* base may be out: a rejected value rewrites base[k]. */
                out[k] = op == S_OP_STORE || ok ? s_apply(op, b, v, q) : b;
                k += ok;
            }
        } else {
            for (uint64_t i = 0; i < n && k < kend; i++, p += bpv) {
                uint32_t v = dy_prng_load_be(p, bpv) & mask;
                if ((uint64_t)v >= q)
                    continue;
                uint32_t b = op == S_OP_STORE ? 0 : base[k];
                ovf |= b > limit;
                out[k++] = s_apply(op, b, v, q);
            }
        }
        at += n;
    }
    OPENSSL_cleanse(buf, sizeof(buf));
    EVP_CIPHER_CTX_free(ctx);
    *bad |= ovf;
    *ret_written = k - k0;
    return 0;
}

static int s_count_fn(void *arg, size_t begin, size_t end, int thread)
{
    (void)thread;
    s_unif_t *u = arg;
    for (size_t c = begin; c < end; c++) {
        uint64_t g0 = s_chunk_lo(u->groups, u->nchunks, c);
        uint64_t g1 = s_chunk_lo(u->groups, u->nchunks, c + 1);
        int rc;
        switch (u->bpv) {
        case 1:
            rc = s_count_chunk(u, g0, g1, 1, &u->count[c]);
            break;
        case 2:
            rc = s_count_chunk(u, g0, g1, 2, &u->count[c]);
            break;
        case 3:
            rc = s_count_chunk(u, g0, g1, 3, &u->count[c]);
            break;
        default:
            rc = s_count_chunk(u, g0, g1, 4, &u->count[c]);
            break;
        }
        if (rc < 0)
            return rc;
    }
    return 0;
}

#define S_WRITE_CASE(bpv_)                                                                    \
    case bpv_:                                                                                \
        rc = u->op == S_OP_STORE   ? s_write_chunk(u, g0, g1, k0, kend, bpv_, S_OP_STORE, bad, wr) \
             : u->op == S_OP_ADD ? s_write_chunk(u, g0, g1, k0, kend, bpv_, S_OP_ADD, bad, wr)   \
                                 : s_write_chunk(u, g0, g1, k0, kend, bpv_, S_OP_SUB, bad, wr);  \
        break

static int s_write_fn(void *arg, size_t begin, size_t end, int thread)
{
    (void)thread;
    s_unif_t *u = arg;
    for (size_t c = begin; c < end; c++) {
        uint64_t g0 = s_chunk_lo(u->groups, u->nchunks, c);
        uint64_t g1 = s_chunk_lo(u->groups, u->nchunks, c + 1);
        /* Uncounted (one chunk, or every group accepted): chunk c's values
         * start at its first group's index and are at most its groups. */
        uint64_t k0 = u->counted ? u->start[c] : g0;
        uint64_t kend = k0 + (u->counted ? u->count[c] : g1 - g0);
        int *bad = &u->bad[c];
        uint64_t *wr = &u->written[c];
        *wr = 0;
        int rc;
        if (kend > u->need)
            kend = u->need;
        if (k0 >= kend)
            continue;
        switch (u->bpv) {
            S_WRITE_CASE(1);
            S_WRITE_CASE(2);
            S_WRITE_CASE(3);
        default:
            S_WRITE_CASE(4);
        }
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* g.uniform(n, q) as §8.3, applied through op to out[0..n) (with operand
 * base[0..n) for ADD/SUB, each checked <= limit).  Advances g exactly as
 * the sequential generator would.  0, -EINVAL (an operand above limit; the
 * output is then garbage) or -EIO. */
static int s_uniform(s_gen_t *g, uint64_t n, uint64_t q, int threads, s_op_t op,
                     const uint32_t *base, uint32_t limit, uint32_t *out)
{
    unsigned L = s_bitlen(q - 1);
    s_unif_t u = {.g = g, .bpv = (L + 7) / 8, .q = q, .op = op, .limit = limit};
    u.mask = L >= 32 ? UINT32_MAX : (uint32_t)((1u << L) - 1);
    u.all_accept = ((uint64_t)1 << L) == q;
    double phi = (double)(((uint64_t)1 << L) - q) / (double)((uint64_t)1 << L);
    uint64_t count[DY_ARRAY_LEN(u.bad)], start[DY_ARRAY_LEN(u.bad)];
    uint64_t written[DY_ARRAY_LEN(u.bad)];
    u.count = count;
    u.start = start;
    u.written = written;
    if (threads < 1)
        threads = 1;
    if (threads > (int)DY_ARRAY_LEN(u.bad))
        threads = (int)DY_ARRAY_LEN(u.bad);

    uint64_t acc = 0;
    while (acc < n) {
        uint64_t need = n - acc;
        uint64_t batch = (uint64_t)((double)need + 1.0 + phi * (double)need / (1.0 - phi));
        u.pos = g->pos;
        u.groups = batch;
        u.need = need;
        u.base = base ? base + acc : NULL;
        u.out = out + acc;
        u.nchunks = batch >= S_PAR_MIN ? (size_t)threads : 1;
        memset(u.bad, 0, sizeof(u.bad));
        int rc;
        u.counted = !u.all_accept && u.nchunks > 1;
        if (u.counted) {
            rc = dy_par_for((int)u.nchunks, u.nchunks, 1, s_count_fn, &u);
            if (rc < 0)
                return rc;
            uint64_t at = 0;
            for (size_t c = 0; c < u.nchunks; c++) {
                start[c] = at;
                at += count[c];
            }
        }
        rc = dy_par_for((int)u.nchunks, u.nchunks, 1, s_write_fn, &u);
        if (rc < 0)
            return rc;
        uint64_t got = 0;
        for (size_t c = 0; c < u.nchunks; c++) {
            if (u.bad[c])
                return -EINVAL;
            got += written[c];
        }
        g->pos += batch * u.bpv;
        acc += got;
    }
    return 0;
}

/* ---- parallel nonzero(N, q) ---------------------------------------------- */

typedef struct {
    const uint32_t *src;  /* uniform batch; borrowed */
    uint64_t len;         /* its length */
    size_t nchunks;
    uint64_t count[256];  /* nonzeros per chunk */
    uint64_t start[256];  /* first output index per chunk */
    uint64_t need;        /* values wanted from this batch */
    bool mul;             /* out[k] = out[k]·v mod q, else out[k] = v */
    uint64_t q, barrett;  /* modulus and floor((2^64-1)/q) */
    uint32_t *out;        /* already offset; borrowed */
} s_nz_t;

static int s_nz_count_fn(void *arg, size_t begin, size_t end, int thread)
{
    (void)thread;
    s_nz_t *z = arg;
    for (size_t c = begin; c < end; c++) {
        uint64_t lo = s_chunk_lo(z->len, z->nchunks, c), hi = s_chunk_lo(z->len, z->nchunks, c + 1);
        uint64_t cnt = 0;
        for (uint64_t i = lo; i < hi; i++)
            cnt += z->src[i] != 0;
        z->count[c] = cnt;
    }
    return 0;
}

static int s_nz_write_fn(void *arg, size_t begin, size_t end, int thread)
{
    (void)thread;
    s_nz_t *z = arg;
    for (size_t c = begin; c < end; c++) {
        uint64_t lo = s_chunk_lo(z->len, z->nchunks, c), hi = s_chunk_lo(z->len, z->nchunks, c + 1);
        uint64_t k = z->start[c];
        for (uint64_t i = lo; i < hi && k < z->need; i++) {
            uint32_t v = z->src[i];
            if (v == 0)
                continue;
            if (z->mul)
                z->out[k] = (uint32_t)s_mod_barrett((uint64_t)z->out[k] * v, z->q, z->barrett);
            else
                z->out[k] = v;
            k++;
        }
    }
    return 0;
}

/* g.nonzero(n, q) as §8.3 (uniform batches with φ = 1/q, batch in int64,
 * zeros dropped, the rest of a batch discarded); stores the values in
 * out[0..n), or with mul multiplies out[k] by them mod q (q < 2^32).
 * 0, -ENOMEM or -EIO. */
static int s_nonzero(s_gen_t *g, uint64_t n, uint64_t q, int threads, bool mul, uint32_t *out)
{
    double phi = 1.0 / (double)q;
    s_nz_t z = {.mul = mul, .q = q, .barrett = UINT64_MAX / q};
    if (threads < 1)
        threads = 1;
    if (threads > (int)DY_ARRAY_LEN(z.count))
        threads = (int)DY_ARRAY_LEN(z.count);
    uint64_t acc = 0;
    while (acc < n) {
        uint64_t need = n - acc;
        int64_t batch = (int64_t)((double)need + 1.0 + phi * (double)need / (1.0 - phi));
        uint32_t *tmp = malloc((size_t)batch * sizeof(*tmp));
        if (tmp == NULL)
            return -ENOMEM;
        int rc = s_uniform(g, (uint64_t)batch, q, threads, S_OP_STORE, NULL, 0, tmp);
        if (rc < 0) {
            free(tmp);
            return rc;
        }
        z.src = tmp;
        z.len = (uint64_t)batch;
        z.need = need;
        z.out = out + acc;
        z.nchunks = (uint64_t)batch >= S_PAR_MIN ? (size_t)threads : 1;
        (void)dy_par_for((int)z.nchunks, z.nchunks, 1, s_nz_count_fn, &z);
        uint64_t got = 0;
        for (size_t c = 0; c < z.nchunks; c++) {
            z.start[c] = got;
            got += z.count[c];
        }
        (void)dy_par_for((int)z.nchunks, z.nchunks, 1, s_nz_write_fn, &z);
        OPENSSL_cleanse(tmp, (size_t)batch * sizeof(*tmp));
        free(tmp);
        acc += got < need ? got : need;
    }
    return 0;
}

/* Large arrays on transparent huge pages when the system allows it: the
 * swap phase touches the output vector at random.  Caller frees with
 * free(). */
static void *s_alloc_big(size_t bytes)
{
    const size_t huge = (size_t)2 << 20;
    if (bytes < 2 * huge)
        return malloc(bytes ? bytes : 1);
    void *p = NULL;
    size_t rounded = (bytes + huge - 1) / huge * huge;
    if (posix_memalign(&p, huge, rounded) != 0)
        return NULL;
    (void)madvise(p, rounded, MADV_HUGEPAGE);
    return p;
}

/* ---- parallel Shuffle(v, σ') ---------------------------------------------- */

/* The swaps are inherently sequential, the swap targets are not.  The
 * vector is processed in blocks: while thread 0 swaps block b-1 (with
 * prefetch, the targets being random), the other threads compute the
 * targets of block b in sub-chunks taken from a shared counter, and thread
 * 0 joins them once its swaps are done.  Two block buffers alternate. */
#define S_PERM_BLOCK ((uint64_t)1 << 18)
#define S_PERM_SUB 4096

typedef struct {
    const s_gen_t *g;       /* fresh generator on σ'; borrowed */
    uint64_t n;             /* |v| */
    uint32_t *v;            /* borrowed */
    uint64_t lo, hi;        /* targets to compute this step: i in [lo, hi) */
    uint32_t *jc;           /* their buffer: j[i - lo] */
    uint64_t next;          /* atomic: next sub-chunk of [lo, hi) */
    uint64_t swap_lo, swap_hi; /* swaps to do this step (thread 0) */
    const uint32_t *js;     /* their targets: j[i - swap_lo] */
} s_perm_t;

/* j_i = i + ρ_i mod (n - i) for i in [a, b), into j[i - lo]. */
static int s_perm_targets(const s_perm_t *p, uint64_t a, uint64_t b)
{
    uint8_t buf[S_BUF];
    const uint64_t per = S_BUF / 16;
    EVP_CIPHER_CTX *ctx = s_cursor(p->g, a * 16);
    if (ctx == NULL)
        return -EIO;
    for (uint64_t i = a; i < b;) {
        uint64_t k = b - i < per ? b - i : per;
        if (s_cursor_read(ctx, buf, k * 16) < 0) {
            EVP_CIPHER_CTX_free(ctx);
            return -EIO;
        }
        for (uint64_t t = 0; t < k; t++, i++) {
            const uint8_t *r = buf + 16 * t;
            uint64_t lo = 0, hi = 0;
            for (int x = 7; x >= 0; x--) {
                lo = lo << 8 | r[x];
                hi = hi << 8 | r[8 + x];
            }
            p->jc[i - p->lo] = (uint32_t)(i + s_mod128(hi, lo, p->n - i));
        }
    }
    OPENSSL_cleanse(buf, sizeof(buf));
    EVP_CIPHER_CTX_free(ctx);
    return 0;
}

static void s_perm_swaps(uint32_t *v, const uint32_t *j, uint64_t lo, uint64_t hi)
{
    uint64_t i = lo;
    for (; i + S_PREFETCH < hi; i++) {
        __builtin_prefetch(&v[j[i - lo + S_PREFETCH]], 1, 0);
        uint32_t t = v[i], x = j[i - lo];
        v[i] = v[x];
        v[x] = t;
    }
    for (; i < hi; i++) {
        uint32_t t = v[i], x = j[i - lo];
        v[i] = v[x];
        v[x] = t;
    }
}

static int s_perm_fn(void *arg, size_t begin, size_t end, int thread)
{
    (void)begin;
    (void)end;
    s_perm_t *p = arg;
    if (thread == 0 && p->swap_hi > p->swap_lo)
        s_perm_swaps(p->v, p->js, p->swap_lo, p->swap_hi);
    for (;;) {
        uint64_t a = __atomic_fetch_add(&p->next, S_PERM_SUB, __ATOMIC_RELAXED);
        if (a >= p->hi)
            return 0;
        int rc = s_perm_targets(p, a, a + S_PERM_SUB < p->hi ? a + S_PERM_SUB : p->hi);
        if (rc < 0)
            return rc;
    }
}

/* Shuffle(v[0..n), seed) as §8.3, on `threads` threads.  0, -EINVAL
 * (n >= 2^32), -ENOMEM or -EIO. */
static int s_shuffle(const uint8_t seed[DY_PRNG_SEED_LEN], uint32_t *v, uint64_t n, int threads)
{
    if (n < 2)
        return 0;
    if (n > UINT32_MAX)
        return -EINVAL;
    uint64_t last = n - 1; /* swaps i = 0 .. n-2 */
    uint64_t blk = last < S_PERM_BLOCK ? last : S_PERM_BLOCK;
    uint32_t *jb[2] = {malloc(blk * sizeof(uint32_t)), malloc(blk * sizeof(uint32_t))};
    if (jb[0] == NULL || jb[1] == NULL) {
        free(jb[0]);
        free(jb[1]);
        return -ENOMEM;
    }
    if (threads < 1 || last < S_PAR_MIN)
        threads = 1;
    s_gen_t g;
    s_gen_init(&g, seed);
    s_perm_t p = {.g = &g, .n = n, .v = v};
    int rc = 0;
    /* Step s computes block s (if any) and swaps block s-1 (if any). */
    uint64_t nblocks = (last + blk - 1) / blk;
    for (uint64_t step = 0; rc == 0 && step <= nblocks; step++) {
        p.lo = step < nblocks ? step * blk : last;
        p.hi = step < nblocks && p.lo + blk < last ? p.lo + blk : last;
        p.jc = jb[step & 1];
        p.next = p.lo;
        p.swap_lo = step ? (step - 1) * blk : 0;
        p.swap_hi = step ? (step * blk < last ? step * blk : last) : 0;
        p.js = jb[(step + 1) & 1];
        if (threads == 1) {
            s_perm_swaps(v, p.js, p.swap_lo, p.swap_hi);
            if (p.hi > p.lo)
                rc = s_perm_targets(&p, p.lo, p.hi);
        } else {
            rc = dy_par_for(threads, (size_t)threads, 1, s_perm_fn, &p);
        }
    }
    OPENSSL_cleanse(&g, sizeof(g));
    OPENSSL_cleanse(jb[0], blk * sizeof(uint32_t));
    OPENSSL_cleanse(jb[1], blk * sizeof(uint32_t));
    free(jb[0]);
    free(jb[1]);
    return rc;
}

/* ---- public parallel PRNG equivalents ------------------------------------ */

int dy_hmss_expand(const uint8_t seed[DY_PRNG_SEED_LEN], uint64_t q, size_t n, int threads,
                   uint32_t *out)
{
    if (seed == NULL || (out == NULL && n > 0) || q < 2 || q > ((uint64_t)1 << 32))
        return -EINVAL;
    s_gen_t g;
    s_gen_init(&g, seed);
    int rc = s_uniform(&g, n, q, threads, S_OP_STORE, NULL, 0, out);
    OPENSSL_cleanse(&g, sizeof(g));
    return rc;
}

int dy_hmss_permute(const uint8_t seed[DY_PRNG_SEED_LEN], uint32_t *v, size_t n, int threads)
{
    if (seed == NULL || (v == NULL && n > 0))
        return -EINVAL;
    return s_shuffle(seed, v, n, threads);
}

/* ---- parameters ------------------------------------------------------------ */

static bool s_is_prime(uint64_t n)
{
    if (n < 2)
        return false;
    if (n % 2 == 0)
        return n == 2;
    for (uint64_t d = 3; d * d <= n; d += 2)
        if (n % d == 0)
            return false;
    return true;
}

#define S_REACH_ONLY_QMAX 2147483647ull /* 2^31 - 1, itself prime */

/* Checks one DP parameter pair and returns its offset. */
static int s_dp_offset(dy_noise_mech_t mech, dy_dp_params_t dp, const char *what,
                       int64_t *ret_off, dy_err_t *err)
{
    if (!(dp.epsilon >= 1e-6) || !(dp.delta > 0) || !isfinite(dp.epsilon))
        return dy_err_set(err, -EINVAL, "invalid_params",
                          "%s privacy parameters need epsilon >= 1e-6 and delta > 0", what);
    int rc = dy_noise_offset(mech, dp, S_NOISE_CONTRIBUTORS, S_NOISE_SENSITIVITY, ret_off);
    if (rc < 0 || *ret_off < 0)
        return dy_err_set(err, rc < 0 ? rc : -EINVAL, "invalid_params",
                          "%s privacy parameters (epsilon %g, delta %g) are not usable", what,
                          dp.epsilon, dp.delta);
    return 0;
}

/* Noise offsets (0 when noise is NONE) and the per-shuffler noise length
 * N_z of p, which dy_hmss_params_check has accepted. */
static int s_noise_size(const dy_hmss_params_t *p, int64_t *ret_off_r, int64_t *ret_off_f,
                        uint64_t *ret_nz, dy_err_t *err)
{
    int64_t off_r = 0, off_f = 0;
    uint64_t nz = 0;
    if (p->noise != DY_NOISE_NONE) {
        int rc = s_dp_offset(p->noise, p->reach, "reach", &off_r, err);
        if (rc < 0)
            return rc;
        if (!p->reach_only) {
            rc = s_dp_offset(p->noise, p->frequency, "frequency", &off_f, err);
            if (rc < 0)
                return rc;
        }
        uint64_t mcf = (uint64_t)p->max_frequency * (uint64_t)p->num_sketches;
        s_u128 big = (s_u128)2 * (uint64_t)off_r + (s_u128)2 * (uint64_t)off_f * mcf;
        if (big > UINT32_MAX / 4)
            return dy_err_set(err, -EINVAL, "invalid_params",
                              "noise of %llu values per shuffler is too large",
                              (unsigned long long)(big > UINT64_MAX ? UINT64_MAX : big));
        nz = (uint64_t)big;
    }
    *ret_off_r = off_r;
    *ret_off_f = off_f;
    *ret_nz = nz;
    return 0;
}

int dy_hmss_params_check(const dy_hmss_params_t *p, dy_err_t *err)
{
    if (p == NULL)
        return dy_err_set(err, -EINVAL, "invalid_params", "no parameters");
    if (p->max_frequency < 1 || p->num_sketches < 1)
        return dy_err_set(err, -EINVAL, "invalid_params",
                          "max frequency %d and sketch count %d must be >= 1", p->max_frequency,
                          p->num_sketches);
    if (p->reach_only && p->max_frequency != 1)
        return dy_err_set(err, -EINVAL, "invalid_params",
                          "reach only needs max frequency 1, not %d", p->max_frequency);
    uint64_t q = p->ring_modulus;
    uint64_t mcf = (uint64_t)p->max_frequency * (uint64_t)p->num_sketches;
    if (p->reach_only) {
        if (q > S_REACH_ONLY_QMAX)
            return dy_err_set(err, -EINVAL, "invalid_params",
                              "reach-only ring modulus %llu exceeds 2^31-1; the largest usable "
                              "prime is %llu",
                              (unsigned long long)q, S_REACH_ONLY_QMAX);
        if (!s_is_prime(q)) {
            uint64_t below = q > 2 ? q - 1 : 0;
            while (below >= 2 && !s_is_prime(below))
                below--;
            if (below < 2)
                return dy_err_set(err, -EINVAL, "invalid_params",
                                  "reach-only ring modulus %llu is not a prime",
                                  (unsigned long long)q);
            return dy_err_set(err, -EINVAL, "invalid_params",
                              "reach-only ring modulus %llu is not a prime; the largest prime "
                              "below it is %llu",
                              (unsigned long long)q, (unsigned long long)below);
        }
    } else if (q < 2 || q > ((uint64_t)1 << 32)) {
        return dy_err_set(err, -EINVAL, "invalid_params",
                          "ring modulus %llu is outside [2, 2^32]", (unsigned long long)q);
    }
    if (q <= mcf + 1)
        return dy_err_set(err, -EINVAL, "invalid_params",
                          "ring modulus %llu must exceed MCF+1 = %llu (K_e %d x S %d, plus 1)",
                          (unsigned long long)q, (unsigned long long)(mcf + 1),
                          p->max_frequency, p->num_sketches);
    if (!(p->vid_width > 0.0f && p->vid_width <= 1.0f))
        return dy_err_set(err, -EINVAL, "invalid_params", "vid width %g is outside (0, 1]",
                          (double)p->vid_width);
    switch (p->noise) {
    case DY_NOISE_NONE:
        return 0;
    case DY_NOISE_GEOMETRIC:
    case DY_NOISE_DISCRETE_GAUSSIAN: {
        int64_t off_r, off_f;
        uint64_t nz;
        return s_noise_size(p, &off_r, &off_f, &nz, err);
    }
    case DY_NOISE_CONTINUOUS_GAUSSIAN:
        return dy_err_set(err, -EINVAL, "unsupported_noise_mechanism",
                          "HMSS admits only GEOMETRIC and DISCRETE_GAUSSIAN noise (or none)");
    default:
        return dy_err_set(err, -EINVAL, "invalid_params", "unknown noise mechanism %d",
                          (int)p->noise);
    }
}

static int s_threads(const dy_hmss_params_t *p)
{
    return p->threads < 1 ? 1 : p->threads;
}

/* ---- EDP sharing (§8.2) ------------------------------------------------------ */

int dy_hmss_share(const dy_hmss_params_t *p, const uint32_t *values, size_t R,
                  uint8_t seed[DY_PRNG_SEED_LEN], uint32_t *data, dy_err_t *err)
{
    int rc = dy_hmss_params_check(p, err);
    if (rc < 0)
        return rc;
    if (values == NULL || seed == NULL || data == NULL || R == 0)
        return dy_err_set(err, -EINVAL, "invalid_params", "no values to share");
    if (dy_rand_bytes(seed, DY_PRNG_SEED_LEN) < 0)
        return dy_err_set(err, -EIO, "internal", "random source failed");
    s_gen_t g;
    s_gen_init(&g, seed);
    rc = s_uniform(&g, R, p->ring_modulus, s_threads(p), S_OP_SUB, values,
                   (uint32_t)p->max_frequency, data);
    OPENSSL_cleanse(&g, sizeof(g));
    if (rc == -EINVAL) {
        OPENSSL_cleanse(seed, DY_PRNG_SEED_LEN);
        return dy_err_set(err, rc, "value_out_of_range", "a register value exceeds %d",
                          p->max_frequency);
    }
    if (rc < 0) {
        OPENSSL_cleanse(seed, DY_PRNG_SEED_LEN);
        return dy_err_set(err, rc, "internal", "PRNG expansion failed");
    }
    return 0;
}

/* ---- shuffle phase (§8.4) ---------------------------------------------------- */

typedef struct {
    uint32_t *dst;             /* borrowed */
    const uint32_t *const *src; /* nsrc vectors; borrowed */
    size_t nsrc;
    uint64_t q;
    int bad[256];              /* per thread: a value >= q was seen */
} s_sum_t;

static int s_sum_fn(void *arg, size_t begin, size_t end, int thread)
{
    s_sum_t *s = arg;
    uint64_t q = s->q;
    bool bad = false;
    for (size_t i = begin; i < end; i++) {
        uint64_t a = 0;
        for (size_t k = 0; k < s->nsrc; k++) {
            uint32_t v = s->src[k][i];
            bad |= v >= q;
            a += v;
            a = a >= q ? a - q : a;
        }
        s->dst[i] = (uint32_t)a;
    }
    s->bad[thread] |= bad;
    return 0;
}

/* A nonzero value in [1, q) from the local random source (reach-only noise). */
static int s_local_nonzero(uint64_t q, uint32_t *ret)
{
    uint64_t span = q - 1, lim = UINT64_MAX - UINT64_MAX % span, x;
    do {
        if (dy_rand_bytes((uint8_t *)&x, sizeof(x)) < 0)
            return -EIO;
    } while (x >= lim);
    *ret = (uint32_t)(1 + x % span);
    return 0;
}

/* The shuffler's noise vector z (length nz), §8.4 step 3.1 and reach only.
 * Draw order (from dy_rand_bytes through dy_noise_draw): n_0, then n_1 ..
 * n_MCF (reach and frequency), or then the n_0 local nonzero values (reach
 * only). */
static int s_noise_vector(const dy_hmss_params_t *p, uint64_t nz, uint32_t *z, dy_err_t *err)
{
    uint64_t q = p->ring_modulus;
    uint64_t mcf = (uint64_t)p->max_frequency * (uint64_t)p->num_sketches;
    dy_noise_t nr = {0}, nf = {0};
    int rc = dy_noise_init(&nr, p->noise, p->reach, S_NOISE_CONTRIBUTORS, S_NOISE_SENSITIVITY);
    if (rc == 0 && !p->reach_only)
        rc = dy_noise_init(&nf, p->noise, p->frequency, S_NOISE_CONTRIBUTORS,
                           S_NOISE_SENSITIVITY);
    if (rc < 0) {
        dy_noise_free(&nr);
        return dy_err_set(err, rc, "invalid_params", "noise initialisation failed");
    }
    int64_t n0 = 0;
    uint64_t at = 0;
    rc = dy_noise_draw(&nr, &n0);
    if (rc == 0 && (n0 < 0 || (uint64_t)n0 > 2 * (uint64_t)nr.offset || (uint64_t)n0 > nz))
        rc = -EIO;
    if (rc == 0 && p->reach_only) {
        for (; at < (uint64_t)n0 && rc == 0; at++)
            rc = s_local_nonzero(q, &z[at]);
        for (; at < nz; at++)
            z[at] = 0;
    } else if (rc == 0) {
        for (; at < (uint64_t)n0; at++)
            z[at] = 0;
        for (uint64_t k = 1; k <= mcf && rc == 0; k++) {
            int64_t nk = 0;
            rc = dy_noise_draw(&nf, &nk);
            if (rc == 0 && (nk < 0 || (uint64_t)nk > 2 * (uint64_t)nf.offset
                            || at + (uint64_t)nk > nz))
                rc = -EIO;
            for (int64_t c = 0; rc == 0 && c < nk; c++)
                z[at++] = (uint32_t)k;
        }
        for (; rc == 0 && at < nz; at++)
            z[at] = (uint32_t)(q - 1);
    }
    dy_noise_free(&nr);
    dy_noise_free(&nf);
    if (rc < 0)
        return dy_err_set(err, rc, "internal", "noise draw failed");
    return 0;
}

int dy_hmss_shuffle(const dy_hmss_params_t *p, int which, const dy_hmss_share_t *shares,
                    size_t nshares, const uint8_t common_seed[DY_PRNG_SEED_LEN],
                    uint32_t **ret_vec, size_t *ret_len, dy_err_t *err)
{
    int rc = dy_hmss_params_check(p, err);
    if (rc < 0)
        return rc;
    if ((which != 1 && which != 2) || shares == NULL || nshares == 0 || common_seed == NULL
        || ret_vec == NULL || ret_len == NULL)
        return dy_err_set(err, -EINVAL, "invalid_params",
                          "shuffler must be 1 or 2 with at least one share");
    size_t R = shares[0].registers, ndata = 0;
    for (size_t i = 0; i < nshares; i++) {
        if ((shares[i].data == NULL) == (shares[i].seed == NULL))
            return dy_err_set(err, -EINVAL, "bad_share",
                              "share %zu must be either data or a seed", i);
        if (shares[i].registers != R)
            return dy_err_set(err, -EINVAL, "register_count_mismatch",
                              "share %zu has %zu registers, share 0 has %zu", i,
                              shares[i].registers, R);
        ndata += shares[i].data != NULL;
    }
    if (R == 0)
        return dy_err_set(err, -EINVAL, "bad_length", "empty frequency vector");
    int64_t off_r, off_f;
    uint64_t nz;
    rc = s_noise_size(p, &off_r, &off_f, &nz, err);
    if (rc < 0)
        return rc;
    if ((uint64_t)R > UINT32_MAX - 2 * nz)
        return dy_err_set(err, -EINVAL, "bad_length", "%zu registers are too many", R);
    uint64_t q = p->ring_modulus, total = (uint64_t)R + 2 * nz;
    int threads = s_threads(p);

    uint32_t *A = s_alloc_big((size_t)total * sizeof(*A));
    uint32_t *z = NULL, *rv1 = NULL, *rv2 = NULL;
    uint8_t sigma[DY_PRNG_SEED_LEN];
    s_gen_t g;
    if (A == NULL)
        return dy_err_set(err, -ENOMEM, "internal", "out of memory");

    /* Step 1: A = Σ shares mod q.  Data shares first (one pass), then each
     * seed's expansion added in one pass; a lone data share is the first
     * expansion's operand directly. */
    const uint32_t *base = NULL;
    if (ndata >= 2 || (ndata == 1 && ndata == nshares)) {
        const uint32_t **src = calloc(ndata, sizeof(*src));
        if (src == NULL) {
            rc = dy_err_set(err, -ENOMEM, "internal", "out of memory");
            goto out;
        }
        s_sum_t s = {.dst = A, .src = src, .nsrc = 0, .q = q};
        for (size_t i = 0; i < nshares; i++)
            if (shares[i].data)
                src[s.nsrc++] = shares[i].data;
        int t = R >= S_PAR_MIN ? (threads > 256 ? 256 : threads) : 1;
        (void)dy_par_for(t, R, 1024, s_sum_fn, &s);
        free(src);
        for (int i = 0; i < t; i++)
            if (s.bad[i]) {
                rc = dy_err_set(err, -EINVAL, "value_out_of_range",
                                "a data share holds a value >= %llu", (unsigned long long)q);
                goto out;
            }
        base = A;
    } else if (ndata == 1) {
        for (size_t i = 0; i < nshares; i++)
            if (shares[i].data)
                base = shares[i].data;
    }
    for (size_t i = 0; i < nshares; i++) {
        if (shares[i].seed == NULL)
            continue;
        s_gen_init(&g, shares[i].seed);
        rc = s_uniform(&g, R, q, threads, base ? S_OP_ADD : S_OP_STORE, base, (uint32_t)(q - 1),
                       A);
        OPENSSL_cleanse(&g, sizeof(g));
        if (rc == -EINVAL) {
            rc = dy_err_set(err, rc, "value_out_of_range", "a data share holds a value >= %llu",
                            (unsigned long long)q);
            goto out;
        }
        if (rc < 0) {
            rc = dy_err_set(err, rc, "internal", "seed expansion failed");
            goto out;
        }
        base = A;
    }

    /* Step 2: Γ = PRNG(c); reach only: ρ = Γ.nonzero(R, q), A_i ·= ρ_i. */
    s_gen_init(&g, common_seed);
    if (p->reach_only) {
        rc = s_nonzero(&g, R, q, threads, true, A);
        if (rc < 0) {
            rc = dy_err_set(err, rc, "internal", "rho draw failed");
            goto out;
        }
    }

    /* Step 3: noise shares. */
    if (nz > 0) {
        z = malloc(nz * sizeof(*z));
        rv1 = malloc(nz * sizeof(*rv1));
        rv2 = malloc(nz * sizeof(*rv2));
        if (z == NULL || rv1 == NULL || rv2 == NULL) {
            rc = dy_err_set(err, -ENOMEM, "internal", "out of memory");
            goto out;
        }
        rc = s_noise_vector(p, nz, z, err);
        if (rc < 0)
            goto out;
        rc = s_uniform(&g, nz, q, threads, S_OP_STORE, NULL, 0, rv1);
        if (rc == 0)
            rc = s_uniform(&g, nz, q, threads, S_OP_STORE, NULL, 0, rv2);
        if (rc < 0) {
            rc = dy_err_set(err, rc, "internal", "noise mask draw failed");
            goto out;
        }
        const uint32_t *rv = which == 1 ? rv1 : rv2;
        uint32_t *zpart = A + R + (which == 1 ? 0 : nz);
        uint32_t *rpart = A + R + (which == 1 ? nz : 0);
        for (uint64_t k = 0; k < nz; k++) {
            zpart[k] = (uint32_t)(((uint64_t)z[k] + (q - rv[k])) % q);
            rpart[k] = which == 1 ? rv2[k] : rv1[k];
        }
    }

    /* Step 4: σ' = the next 48 bytes of Γ; A = Shuffle(A, σ'). */
    rc = s_gen_bytes(&g, sigma, sizeof(sigma));
    if (rc == 0)
        rc = s_shuffle(sigma, A, total, threads);
    if (rc < 0) {
        rc = dy_err_set(err, rc, "internal", "shuffle failed");
        goto out;
    }
    *ret_vec = A;
    *ret_len = (size_t)total;
    A = NULL;
    rc = 0;
out:
    OPENSSL_cleanse(&g, sizeof(g));
    OPENSSL_cleanse(sigma, sizeof(sigma));
    if (z)
        OPENSSL_cleanse(z, nz * sizeof(*z));
    if (rv1)
        OPENSSL_cleanse(rv1, nz * sizeof(*rv1));
    if (rv2)
        OPENSSL_cleanse(rv2, nz * sizeof(*rv2));
    free(z);
    free(rv1);
    free(rv2);
    free(A);
    return rc;
}

/* ---- aggregation (§8.5) ------------------------------------------------------- */

#define S_AGG_MAX_THREADS 64

typedef struct {
    const uint32_t *v1, *v2; /* borrowed */
    uint64_t q, mcf;
    int K;                   /* f[0..K) counted; 0 for reach only */
    uint64_t *hist;          /* owned by caller: per thread K counters */
    uint64_t nonzero[S_AGG_MAX_THREADS];
    uint64_t bad_in[S_AGG_MAX_THREADS];  /* inputs >= q */
    uint64_t bad_sum[S_AGG_MAX_THREADS]; /* sums outside [0, MCF] ∪ {q-1} */
} s_agg_t;

static int s_agg_fn(void *arg, size_t begin, size_t end, int thread)
{
    s_agg_t *a = arg;
    uint64_t q = a->q, mcf = a->mcf, nzc = 0, bin = 0, bsum = 0;
    uint64_t *h = a->hist + (size_t)thread * (size_t)a->K;
    for (size_t i = begin; i < end; i++) {
        uint64_t x = a->v1[i], y = a->v2[i];
        bin += (x >= q) | (y >= q);
        uint64_t s = x + y;
        s = s >= q ? s - q : s;
        nzc += s != 0;
        if (a->K > 0) {
            if (s < (uint64_t)a->K)
                h[s]++;
            bsum += s > mcf && s != q - 1;
        }
    }
    a->nonzero[thread] = nzc;
    a->bad_in[thread] = bin;
    a->bad_sum[thread] = bsum;
    return 0;
}

int dy_hmss_aggregate(const dy_hmss_params_t *p, const uint32_t *v1, const uint32_t *v2,
                      size_t len, size_t R, int64_t *ret_reach, double *freq, dy_err_t *err)
{
    int rc = dy_hmss_params_check(p, err);
    if (rc < 0)
        return rc;
    if (v1 == NULL || v2 == NULL || ret_reach == NULL || (!p->reach_only && freq == NULL))
        return dy_err_set(err, -EINVAL, "invalid_params", "missing aggregation input");
    int64_t off_r, off_f;
    uint64_t nz;
    rc = s_noise_size(p, &off_r, &off_f, &nz, err);
    if (rc < 0)
        return rc;
    if (R == 0 || (uint64_t)len != (uint64_t)R + 2 * nz)
        return dy_err_set(err, -EINVAL, "bad_length",
                          "%zu values for %zu registers, expected %llu", len, R,
                          (unsigned long long)((uint64_t)R + 2 * nz));
    int K = p->reach_only ? 0 : p->max_frequency;
    int threads = s_threads(p);
    if (threads > S_AGG_MAX_THREADS)
        threads = S_AGG_MAX_THREADS;
    if (len < S_PAR_MIN)
        threads = 1;
    s_agg_t a = {.v1 = v1, .v2 = v2, .q = p->ring_modulus, .K = K};
    a.mcf = (uint64_t)p->max_frequency * (uint64_t)p->num_sketches;
    a.hist = calloc((size_t)threads * (size_t)(K > 0 ? K : 1), sizeof(*a.hist));
    if (a.hist == NULL)
        return dy_err_set(err, -ENOMEM, "internal", "out of memory");
    (void)dy_par_for(threads, len, 4096, s_agg_fn, &a);
    uint64_t nonzero = 0, bad_in = 0, bad_sum = 0;
    for (int t = 0; t < threads; t++) {
        nonzero += a.nonzero[t];
        bad_in += a.bad_in[t];
        bad_sum += a.bad_sum[t];
    }
    int64_t *fs = calloc((size_t)K + 1, sizeof(*fs));
    if (fs == NULL) {
        free(a.hist);
        return dy_err_set(err, -ENOMEM, "internal", "out of memory");
    }
    for (int t = 0; t < threads; t++)
        for (int j = 0; j < K; j++)
            fs[j] += (int64_t)a.hist[(size_t)t * (size_t)K + (size_t)j];
    free(a.hist);
    if (bad_in) {
        free(fs);
        return dy_err_set(err, -EINVAL, "value_out_of_range",
                          "%llu shuffler values are >= the ring modulus",
                          (unsigned long long)bad_in);
    }
    if (bad_sum) {
        free(fs);
        return dy_err_set(err, -EINVAL, "share_inconsistent",
                          "%llu combined values are neither <= %llu nor the sentinel",
                          (unsigned long long)bad_sum, (unsigned long long)a.mcf);
    }
    bool dp = p->noise != DY_NOISE_NONE;
    int64_t nonempty;
    double width = (double)p->vid_width;
    if (p->reach_only) {
        nonempty = (int64_t)nonzero;
        if (dp) {
            nonempty -= 2 * off_r;
            nonempty = nonempty < 0 ? 0 : nonempty > (int64_t)R ? (int64_t)R : nonempty;
        }
        free(fs);
        *ret_reach = (int64_t)trunc((double)nonempty / width);
        return 0;
    }

    /* Reach and frequency, steps 2 to 6. */
    nonempty = (int64_t)R - fs[0];
    if (dp) {
        fs[0] = fs[0] - 2 * off_r < 0 ? 0 : fs[0] - 2 * off_r;
        for (int j = 1; j < K; j++)
            fs[j] = fs[j] - 2 * off_f < 0 ? 0 : fs[j] - 2 * off_f;
        nonempty += 2 * off_r;
        nonempty = nonempty < 0 ? 0 : nonempty > (int64_t)R ? (int64_t)R : nonempty;
    }
    int64_t acc = 0, total;
    for (int j = 0; j < K; j++)
        acc += fs[j];
    if (acc <= (int64_t)R) {
        fs[K] = (int64_t)R - acc;
        total = (int64_t)R - fs[0];
    } else {
        fs[K] = 0;
        total = acc - fs[0];
    }
    if (total == 0) {
        free(fs);
        return dy_err_set(err, -EINVAL, "zero_total",
                          "no nonempty registers remain for the frequency distribution");
    }
    for (int j = 1; j <= K; j++)
        freq[j - 1] = (double)fs[j] / (double)total;
    free(fs);
    *ret_reach = (int64_t)trunc((double)nonempty / width);
    return 0;
}

/* ---- wire helpers ----------------------------------------------------------- */

int dy_hmss_to_le(const uint32_t *v, size_t n, dy_buf_t *out)
{
    if ((v == NULL && n > 0) || out == NULL || n > SIZE_MAX / 4)
        return -EINVAL;
    uint8_t *dst = dy_buf_extend(out, n * 4);
    if (dst == NULL)
        return -ENOMEM;
    for (size_t i = 0; i < n; i++) {
        dst[4 * i] = (uint8_t)v[i];
        dst[4 * i + 1] = (uint8_t)(v[i] >> 8);
        dst[4 * i + 2] = (uint8_t)(v[i] >> 16);
        dst[4 * i + 3] = (uint8_t)(v[i] >> 24);
    }
    return 0;
}

int dy_hmss_from_le(const uint8_t *in, size_t len, uint64_t q, uint32_t **ret, size_t *ret_n,
                    dy_err_t *err)
{
    if ((in == NULL && len > 0) || ret == NULL || ret_n == NULL)
        return dy_err_set(err, -EINVAL, "invalid_params", "missing input");
    if (len % 4 != 0)
        return dy_err_set(err, -EINVAL, "bad_length",
                          "%zu bytes is not a whole number of uint32 values", len);
    size_t n = len / 4;
    uint32_t *v = s_alloc_big(n * sizeof(*v));
    if (v == NULL)
        return dy_err_set(err, -ENOMEM, "internal", "out of memory");
    uint32_t bad = 0;
    for (size_t i = 0; i < n; i++) {
        const uint8_t *b = in + 4 * i;
        v[i] = (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
        bad |= (uint64_t)v[i] >= q;
    }
    if (bad) {
        free(v);
        return dy_err_set(err, -EINVAL, "value_out_of_range",
                          "a value is >= the ring modulus %llu", (unsigned long long)q);
    }
    *ret = v;
    *ret_n = n;
    return 0;
}
