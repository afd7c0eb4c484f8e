/* crypto/ec.h - P-256 arithmetic for the engine (CRYPTO.md §1, §2, §11):
 * the group context, scalars, point codecs with full validation, fixed-base
 * tables, hashing to the curve, and the EC ElGamal operations.
 *
 * Everything works on OpenSSL EC_POINT/BIGNUM; no EC_KEY.  The deprecated
 * EC_POINT-level calls (EC_POINTs_mul, EC_POINTs_make_affine,
 * EC_GROUP_precompute_mult, get_Jprojective) live only in ec_fast.c.
 *
 * Threads: a dy_ec_t and a dy_ec_fixed_t are immutable after construction
 * and may be shared by any number of threads.  Each thread passes its own
 * BN_CTX.  Secret scalars carry BN_FLG_CONSTTIME and go only to the
 * constant-time nistz256 multiplications (never to wNAF code).
 */
#ifndef DY_CRYPTO_EC_H
#define DY_CRYPTO_EC_H

#include "../dy.h"

#include <openssl/bn.h>
#include <openssl/ec.h>

#define DY_EC_NID 415      /* NID_X9_62_prime256v1 */
#define DY_PT_LEN 65       /* uncompressed point: 04 || X || Y */
#define DY_PTC_LEN 33      /* compressed point: 02/03 || X */
#define DY_CT_LEN 130      /* ElGamal ciphertext on the wire: u || e */
#define DY_SCALAR_LEN 32   /* big-endian scalar */

/* The named constants of CRYPTO.md §2.4/2.5, each H(string). */
typedef enum {
    DY_EC_UNIT = 0,        /* P = H("unit_ec_point") */
    DY_EC_DESTROYED,       /* D = H("destroyed_register_key") */
    DY_EC_BLINDED_HIST,    /* B = H("blinded_histogram_noise_register_key") */
    DY_EC_PUB_NOISE_ID,    /* I_pub = H("publisher_noise_register_id") */
    DY_EC_PADDING_ID,      /* I_pad = H("padding_noise_register_id") */
    _DY_EC_CONST_MAX
} dy_ec_const_t;

typedef struct dy_ec dy_ec_t;

/* ---- random source ------------------------------------------------------ */

/* A source of random bytes: fills buf, returns 0 or a negative errno. */
typedef int (*dy_rand_fn)(void *arg, uint8_t *buf, size_t len);

/* Replaces the process-wide random source (tests replay vectors with it);
 * NULL restores RAND_priv_bytes.  Not thread-safe against concurrent draws:
 * set it before starting work. */
void dy_rand_set_source(dy_rand_fn fn, void *arg);

/* Fills buf from the current source.  0 or -EIO. */
int dy_rand_bytes(uint8_t *buf, size_t len);

/* ---- the group context --------------------------------------------------- */

/* Creates the P-256 context and hashes the named constants.  Caller
 * destroys.  NULL on failure. */
dy_ec_t *dy_ec_new(void);
void dy_ec_destroy(dy_ec_t **self_p);

const EC_GROUP *dy_ec_group(const dy_ec_t *self);
const BIGNUM *dy_ec_order(const dy_ec_t *self);
const EC_POINT *dy_ec_const(const dy_ec_t *self, dy_ec_const_t which);

/* New point (initialised to O) / array of n points; NULL on failure.
 * dy_ec_points_free is NULL-safe and frees every non-NULL entry. */
EC_POINT *dy_ec_point_new(const dy_ec_t *self);
EC_POINT **dy_ec_points_new(const dy_ec_t *self, size_t n);
void dy_ec_points_free(EC_POINT **pts, size_t n);

/* ---- scalars ------------------------------------------------------------- */

/* A new scalar with BN_FLG_CONSTTIME set (value 0).  Free with
 * dy_scalar_free, which wipes it. */
BIGNUM *dy_scalar_new(void);
void dy_scalar_free(BIGNUM **s_p);
/* n new scalars / free n; NULL-safe. */
BIGNUM **dy_scalars_new(size_t n);
void dy_scalars_free(BIGNUM **s, size_t n);

/* Sets each of out[0..n) to a uniform scalar in [1, n-1], drawing the
 * bytes in bulk from dy_rand_bytes (rejecting 0 and >= order).  0 or -EIO.
 * Replay rule: the candidates are the consecutive 32-byte big-endian blocks
 * of the random stream, in order; a rejected block is skipped, no other
 * bytes are drawn.  The results carry BN_FLG_CONSTTIME. */
int dy_ec_rand_scalars(const dy_ec_t *self, BIGNUM **out, size_t n);

/* Parses a big-endian scalar of 1..32 bytes; must be in [1, order-1].
 * 0 or -EINVAL. */
int dy_ec_scalar_from_bytes(const dy_ec_t *self, BIGNUM *out, const uint8_t *in, size_t len);

/* Writes s as 32 bytes big-endian.  0 or -EINVAL (s negative or too big). */
int dy_ec_scalar_to_bytes(const BIGNUM *s, uint8_t out[DY_SCALAR_LEN]);

/* ---- point codecs (CRYPTO.md §1) ------------------------------------------ */

/* Decodes and validates a 65-byte uncompressed point: prefix 04, X < p,
 * Y < p, on the curve.  0 or -EINVAL.  Never yields O. */
int dy_ec_decode(const dy_ec_t *self, EC_POINT *out, const uint8_t in[DY_PT_LEN], BN_CTX *ctx);

/* Decodes n consecutive 65-byte points of `in` into out[0..n) with the same
 * validation.  On failure returns -EINVAL and sets *ret_bad (if non-NULL)
 * to the index of the first bad point. */
int dy_ec_decode_many(const dy_ec_t *self, EC_POINT **out, const uint8_t *in, size_t n,
                      size_t *ret_bad, BN_CTX *ctx);

/* Validates n consecutive 65-byte points without keeping them (for
 * pass-through data a stage must still check).  0 or -EINVAL (*ret_bad). */
int dy_ec_check_many(const dy_ec_t *self, const uint8_t *in, size_t n, size_t *ret_bad,
                     BN_CTX *ctx);

/* Decodes a 33-byte compressed point (steps 1-5 of §1).  0 or -EINVAL. */
int dy_ec_decode_compressed(const dy_ec_t *self, EC_POINT *out, const uint8_t *in, size_t len,
                            BN_CTX *ctx);

/* Decodes a public point given in either SEC1 form (33 bytes 02/03 ‖ X or
 * 65 bytes 04 ‖ X ‖ Y) on a P-256 group without a dy_ec_t: the length and
 * prefix are checked first, the point must be on the curve and never O
 * (ECIES keys and ephemeral keys, signature keys).  0 or -EINVAL. */
int dy_ec_decode_public(const EC_GROUP *g, const uint8_t *in, size_t len, EC_POINT *p,
                        BN_CTX *ctx);

/* Encodes p compressed (33 bytes) / uncompressed (65 bytes).
 * -EDOM if p is O (the identity is never encoded). */
int dy_ec_encode_compressed(const dy_ec_t *self, const EC_POINT *p, uint8_t out[DY_PTC_LEN],
                            BN_CTX *ctx);
int dy_ec_encode(const dy_ec_t *self, const EC_POINT *p, uint8_t out[DY_PT_LEN], BN_CTX *ctx);

/* Encodes n points uncompressed into out (n * 65 bytes) with one batched
 * affine conversion; pts[i] may be modified (made affine) but keep their
 * values.  Entries may be repeated.  -EDOM if any is O (out undefined). */
int dy_ec_encode_many(const dy_ec_t *self, EC_POINT **pts, size_t n, uint8_t *out, BN_CTX *ctx);

/* ---- arithmetic ----------------------------------------------------------- */

/* r = s·p (variable base, constant time).  In the multiplications below r
 * may alias any input point (nistz256 writes r only at the end). */
int dy_ec_mul(const dy_ec_t *self, EC_POINT *r, const EC_POINT *p, const BIGNUM *s, BN_CTX *ctx);
/* r = s·G (fixed base, precomputed table). */
int dy_ec_mul_g(const dy_ec_t *self, EC_POINT *r, const BIGNUM *s, BN_CTX *ctx);
/* r = s1·p1 + s2·p2 (one 2-point constant-time multiplication). */
int dy_ec_mul2(const dy_ec_t *self, EC_POINT *r, const EC_POINT *p1, const BIGNUM *s1,
               const EC_POINT *p2, const BIGNUM *s2, BN_CTX *ctx);
/* r = a + b; r = a - b; r = -a (in place allowed: r may alias a or b). */
int dy_ec_add(const dy_ec_t *self, EC_POINT *r, const EC_POINT *a, const EC_POINT *b, BN_CTX *ctx);
int dy_ec_sub(const dy_ec_t *self, EC_POINT *r, const EC_POINT *a, const EC_POINT *b, BN_CTX *ctx);
int dy_ec_neg(const dy_ec_t *self, EC_POINT *r, const EC_POINT *a, BN_CTX *ctx);
/* r = a (copy). */
int dy_ec_copy(EC_POINT *r, const EC_POINT *a);
/* 1 if a == b, 0 if not, negative on error. */
int dy_ec_eq(const dy_ec_t *self, const EC_POINT *a, const EC_POINT *b, BN_CTX *ctx);
bool dy_ec_is_inf(const dy_ec_t *self, const EC_POINT *p);

/* true if the group runs on OpenSSL's constant-time nistz256 method (the
 * x86_64 assembly), which every secret multiplication here relies on.
 * Detected as: none of the exported GFp methods, with a built-in G table. */
bool dy_ec_is_nistz256(const dy_ec_t *self);

/* ---- fixed-base tables (CRYPTO.md §11 item 1) ------------------------------ */

/* A precomputed table for multiples of `base` (a key such as Y, Y23, Y3):
 * a duplicate of the group with `base` as generator and
 * EC_GROUP_precompute_mult (about 18 ms).  Caller destroys.  NULL if base
 * is O or on failure. */
typedef struct dy_ec_fixed dy_ec_fixed_t;
dy_ec_fixed_t *dy_ec_fixed_new(const dy_ec_t *self, const EC_POINT *base);
void dy_ec_fixed_destroy(dy_ec_fixed_t **self_p);
const EC_POINT *dy_ec_fixed_base(const dy_ec_fixed_t *self);
/* r = s·base. */
int dy_ec_fixed_mul(const dy_ec_fixed_t *self, EC_POINT *r, const BIGNUM *s, BN_CTX *ctx);

/* ---- hashing to the curve (CRYPTO.md §2.4, exact) ------------------------ */

/* out = H(msg) by PJC's try-and-increment.  Variable time: public input only. */
int dy_ec_hash_to_curve(const dy_ec_t *self, EC_POINT *out, const uint8_t *msg, size_t len,
                        BN_CTX *ctx);

/* ---- EC ElGamal (CRYPTO.md §2.2, §2.3) --------------------------------------
 * A ciphertext is a pair of points (u, e).  Y is the encryption key's
 * fixed-base table.  All scalars are secrets. */

/* (u, e) = Enc_Y(m; r) = (r·G, m + r·Y); m == NULL encrypts O. */
int dy_eg_encrypt(const dy_ec_t *ec, const dy_ec_fixed_t *Y, EC_POINT *u, EC_POINT *e,
                  const EC_POINT *m, const BIGNUM *r, BN_CTX *ctx);
/* (u, e) += Enc_Y(O; r), in place. */
int dy_eg_rerand(const dy_ec_t *ec, const dy_ec_fixed_t *Y, EC_POINT *u, EC_POINT *e,
                 const BIGNUM *r, BN_CTX *ctx);
/* e -= x·u, in place (u unchanged). */
int dy_eg_partdec(const dy_ec_t *ec, const EC_POINT *u, EC_POINT *e, const BIGNUM *x, BN_CTX *ctx);
/* *ret_zero = (x·u == e), i.e. the last layer's plaintext is O. */
int dy_eg_is_zero(const dy_ec_t *ec, const EC_POINT *u, const EC_POINT *e, const BIGNUM *x,
                  bool *ret_zero, BN_CTX *ctx);
/* Pohlig-Hellman blind, in place: (u, e) = (k·u, k·e - kx·u) where
 * kx = k·x mod n, precomputed once per phase by the caller. */
int dy_eg_blind(const dy_ec_t *ec, EC_POINT *u, EC_POINT *e, const BIGNUM *k, const BIGNUM *kx,
                BN_CTX *ctx);

#endif
