/* protocol/llv2_int.h - private to the LLv2 engine files (llv2.c,
 * llv2_setup.c, llv2_exec.c, rollv2.c, llv2_edp.c): the context structure,
 * the per-thread chunk runner every phase is built on, and the small
 * helpers the stages share.  Not installed, not part of the API.
 *
 * Parallel model (CRYPTO.md §11 items 5-7): a phase splits its n items
 * (registers, tuples, columns) into contiguous per-thread ranges
 * (dy_par_for) and each thread walks its range in chunks of about 1024
 * items: decode the chunk's points (validation), compute, encode the
 * chunk's output points with one batched affine conversion, next chunk.
 * Points live only per chunk, so memory stays bounded.  Each thread has its
 * own BN_CTX and scratch; the first error stops the other threads at their
 * next chunk and is reported with its typed code.
 */
#ifndef DY_PROTOCOL_LLV2_INT_H
#define DY_PROTOCOL_LLV2_INT_H

#include "llv2.h"

#include <stdatomic.h>

/* Limits enforced by dy_llv2_params_check. */
#define DY_LLV2_MAX_FREQUENCY 1000
#define DY_LLV2_MAX_SKETCHES 1000
#define DY_LLV2_MAX_THREADS 256
#define DY_LLV2_MAX_NOISE 100000000LL /* T or tuples per contributor */

/* Items per chunk: registers (6 points), tuples (8 points). */
#define DY_LLV2_CHUNK 1024

struct dy_llv2 {
    const dy_ec_t *ec;          /* borrowed: must outlive the context */
    dy_llv2_params_t prm;       /* copy */
    dy_llv2_role_t role;
    BIGNUM *x;                  /* owned secret, constant time */
    EC_POINT *Y;                /* owned: Y1 + Y2 + Y3 */
    EC_POINT *Yp;               /* owned: partial key (NA1 Y2+Y3, NA2 Y3, AGG Y) */
    dy_ec_fixed_t *tY;          /* owned: table for Y */
    dy_ec_fixed_t *tYp_own;     /* owned: table for Yp at NAs, NULL at AGG */
    const dy_ec_fixed_t *tYp;   /* tYp_own, or tY at AGG */
    EC_POINT **cP;              /* owned: cP[c-1] = c·P for c = 1..K+1 */
    bool noise;                 /* reach noise: mechanism is not NONE */
    bool fnoise;                /* frequency noise: noise and K > 1 */
    dy_noise_t nz_bh;           /* blinded histogram, sensitivity 2 */
    dy_noise_t nz_pub;          /* noise for publisher noise, sensitivity S */
    dy_noise_t nz_reach;        /* global reach DP, sensitivity 1 */
    dy_noise_t nz_freq;         /* frequency DP, sensitivity 2 (fnoise only) */
    int64_t off_bh, off_pub, off_reach, off_freq; /* 0 when unused */
    int64_t T;                  /* setup noise registers per duchy (LLv2) */
    uint8_t *ro_tab;            /* owned, lazily built at AGG: reach-only
                                 * lookup, sorted records of 33-byte
                                 * compressed i·P then 4-byte big-endian i */
    size_t ro_n;                /* records in ro_tab */
    bool ro_built;
};

#define DY_LLV2_RO_REC 37

/* Per-thread scratch: a BN_CTX, npt points and nsc scalars. */
typedef struct {
    BN_CTX *ctx;      /* owned */
    EC_POINT **pt;    /* owned, npt entries */
    size_t npt;
    BIGNUM **sc;      /* owned, nsc entries, constant time */
    size_t nsc;
    EC_POINT *tmp[4]; /* owned scratch points */
    int thread;       /* thread index */
} dy_llv2_tls_t;

/* Work on items [b, e) (at most `chunk` of them) with the thread's scratch.
 * Returns 0 or a negative errno after dy_err_set on err. */
typedef int (*dy_llv2_chunk_fn)(void *arg, dy_llv2_tls_t *t, size_t b, size_t e, dy_err_t *err);

/* Runs fn over [0, n) on self->prm.threads threads in chunks of `chunk`
 * items, each thread with npt_per·chunk points and nsc_per·chunk scalars.
 * The first failing chunk (lowest thread) decides the error reported in
 * err.  0 or a negative errno. */
int dy_llv2_par_chunks(const dy_llv2_t *self, size_t n, size_t chunk, size_t npt_per,
                       size_t nsc_per, dy_llv2_chunk_fn fn, void *arg, dy_err_t *err);
/* The same with an explicit ec and thread count (no context: the EDP). */
int dy_llv2_par_chunks_ec(const dy_ec_t *ec, int threads, size_t n, size_t chunk,
                          size_t npt_per, size_t nsc_per, dy_llv2_chunk_fn fn, void *arg,
                          dy_err_t *err);

/* Typed errors for the common failures: decoding item `item` failed
 * (invalid_point), encoding met O (identity_point), other library failure
 * (internal). */
int dy_llv2_err_decode(dy_err_t *err, const char *what, size_t item);
int dy_llv2_err_encode(dy_err_t *err, int rc, const char *what);
int dy_llv2_err_internal(dy_err_t *err, int rc, const char *what);

/* Decodes n items of `stride` 65-byte points at in (all validated; a bad
 * one is invalid_point naming `what` and item first_item + its index),
 * partially decrypts each item's first ciphertext (its points 0 and 1)
 * with this duchy's x, and encodes the n decrypted e points, in item order,
 * into *ret_enc (n × 65 bytes, caller frees).  Needs stride·n points in
 * t->pt; afterwards t->pt[0..n) hold the decrypted points.  Shared by
 * exec1 AGG (group keys), exec3 NA and reach-only AGG. */
int dy_llv2_partdec_items(const dy_llv2_t *self, dy_llv2_tls_t *t, const uint8_t *in, size_t n,
                          size_t stride, size_t first_item, const char *what, uint8_t **ret_enc,
                          dy_err_t *err);

/* Validates every 65-byte point of blob (len a multiple of block) in
 * parallel.  -EINVAL bad_length / invalid_point. */
int dy_llv2_check_blob(const dy_llv2_t *self, const uint8_t *blob, size_t len, size_t block,
                       const char *what, dy_err_t *err);

/* Fresh random point s·G (s a fresh scalar from sc). */
int dy_llv2_rand_point(const dy_ec_t *ec, EC_POINT *r, const BIGNUM *s, BN_CTX *ctx);

/* Compressed encoding of an uncompressed one: (02 | y odd) ‖ X. */
void dy_llv2_compress(const uint8_t in[DY_PT_LEN], uint8_t out[DY_PTC_LEN]);

/* Reach-only: the count N with z = N·P, N in 1..2·off_bh·S·3 (table built
 * on first use).  -EINVAL noise_lookup_miss if absent. */
int dy_llv2_ro_lookup(dy_llv2_t *self, const EC_POINT *z, int64_t *ret_n, BN_CTX *ctx,
                      dy_err_t *err);

/* Draws one component of nz (0 or -EIO). */
int dy_llv2_draw(const dy_noise_t *nz, int64_t *ret);

/* Frequency-noise tuples (CRYPTO.md §4.6) of one contributor: exactly
 * 2·off_freq·(K+1) tuples of 520 bytes appended to out, flags under the
 * table tf (Y at AGG, the partial key at the NAs), counts under Y.
 * Requires self->fnoise. */
int dy_llv2_freq_noise(dy_llv2_t *self, const dy_ec_fixed_t *tf, dy_buf_t *out,
                       uint64_t *ret_blocks, dy_err_t *err);

/* Setup noise registers (§4.2; §5.2 when reach_only): appends the blocks
 * (390 or 130 bytes) to out and returns the number of distinct blinded
 * histogram ids in *ret_nbh.  Requires self->noise. */
int dy_llv2_setup_noise(dy_llv2_t *self, bool reach_only, dy_buf_t *out, uint64_t *ret_blocks,
                        int64_t *ret_nbh, dy_err_t *err);

/* Resets out for a stage's output. */
void dy_llv2_out_reset(dy_buf_t *out);

#endif
