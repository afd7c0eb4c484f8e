/* crypto/ec.c - the P-256 group context, scalars, point codecs with full
 * validation (CRYPTO.md §1) and the non-deprecated point arithmetic.
 *
 * Only non-deprecated OpenSSL 3 calls are used here; the batched and
 * precomputed operations live in ec_fast.c.  Multiplications go through
 * EC_POINT_mul, which on x86_64 dispatches to the constant-time nistz256
 * code (checked by dy_ec_is_nistz256 in the unit tests).
 */
#include "ec.h"
#include "ec_internal.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/err.h>

/* The hashed names of the named constants, indexed by dy_ec_const_t. */
static const char *const s_const_names[_DY_EC_CONST_MAX] = {
    [DY_EC_UNIT] = "unit_ec_point",
    [DY_EC_DESTROYED] = "destroyed_register_key",
    [DY_EC_BLINDED_HIST] = "blinded_histogram_noise_register_key",
    [DY_EC_PUB_NOISE_ID] = "publisher_noise_register_id",
    [DY_EC_PADDING_ID] = "padding_noise_register_id",
};

/* ---- the group context --------------------------------------------------- */

void dy_ec_destroy(dy_ec_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    dy_ec_t *self = *self_p;
    for (int i = 0; i < _DY_EC_CONST_MAX; i++)
        EC_POINT_free(self->consts[i]);
    BN_MONT_CTX_free(self->mont_p);
    BN_free(self->p);
    BN_free(self->b);
    BN_free(self->order);
    BN_free(self->sqrt_exp);
    EC_GROUP_free(self->group);
    free(self);
    *self_p = NULL;
}

dy_ec_t *dy_ec_new(void)
{
    dy_ec_t *self = calloc(1, sizeof(*self));
    BN_CTX *ctx = BN_CTX_new();
    if (!self || !ctx)
        goto fail;
    self->group = EC_GROUP_new_by_curve_name(DY_EC_NID);
    self->p = BN_new();
    self->b = BN_new();
    self->order = BN_new();
    self->sqrt_exp = BN_new();
    self->mont_p = BN_MONT_CTX_new();
    if (!self->group || !self->p || !self->b || !self->order || !self->sqrt_exp
        || !self->mont_p)
        goto fail;
    if (!EC_GROUP_get_curve(self->group, self->p, NULL, self->b, ctx)
        || !BN_copy(self->order, EC_GROUP_get0_order(self->group))
        || !BN_MONT_CTX_set(self->mont_p, self->p, ctx))
        goto fail;
    if (BN_bn2binpad(self->p, self->p_bytes, DY_SCALAR_LEN) != DY_SCALAR_LEN
        || BN_bn2binpad(self->order, self->order_bytes, DY_SCALAR_LEN) != DY_SCALAR_LEN)
        goto fail;
    /* p = 3 mod 4, so a square t has the roots ±t^((p+1)/4). */
    if (!BN_copy(self->sqrt_exp, self->p) || !BN_add_word(self->sqrt_exp, 1)
        || !BN_rshift(self->sqrt_exp, self->sqrt_exp, 2))
        goto fail;
    for (int i = 0; i < _DY_EC_CONST_MAX; i++) {
        self->consts[i] = EC_POINT_new(self->group);
        if (!self->consts[i]
            || dy_ec_hash_to_curve(self, self->consts[i], (const uint8_t *)s_const_names[i],
                                   strlen(s_const_names[i]), ctx) < 0)
            goto fail;
    }
    BN_CTX_free(ctx);
    return self;
fail:
    BN_CTX_free(ctx);
    dy_ec_destroy(&self);
    return NULL;
}

const EC_GROUP *dy_ec_group(const dy_ec_t *self)
{
    return self->group;
}

const BIGNUM *dy_ec_order(const dy_ec_t *self)
{
    return self->order;
}

const EC_POINT *dy_ec_const(const dy_ec_t *self, dy_ec_const_t which)
{
    if ((int)which < 0 || which >= _DY_EC_CONST_MAX)
        return NULL;
    return self->consts[which];
}

EC_POINT *dy_ec_point_new(const dy_ec_t *self)
{
    return EC_POINT_new(self->group); /* EC_POINT_new initialises to O */
}

EC_POINT **dy_ec_points_new(const dy_ec_t *self, size_t n)
{
    EC_POINT **pts = calloc(n ? n : 1, sizeof(*pts));
    if (!pts)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        pts[i] = EC_POINT_new(self->group);
        if (!pts[i]) {
            dy_ec_points_free(pts, i);
            return NULL;
        }
    }
    return pts;
}

void dy_ec_points_free(EC_POINT **pts, size_t n)
{
    if (!pts)
        return;
    for (size_t i = 0; i < n; i++)
        EC_POINT_clear_free(pts[i]);
    free(pts);
}

/* ---- scalars ------------------------------------------------------------- */

BIGNUM *dy_scalar_new(void)
{
    BIGNUM *s = BN_new();
    if (s)
        BN_set_flags(s, BN_FLG_CONSTTIME);
    return s;
}

void dy_scalar_free(BIGNUM **s_p)
{
    if (!s_p)
        return;
    BN_clear_free(*s_p);
    *s_p = NULL;
}

BIGNUM **dy_scalars_new(size_t n)
{
    BIGNUM **s = calloc(n ? n : 1, sizeof(*s));
    if (!s)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        s[i] = dy_scalar_new();
        if (!s[i]) {
            dy_scalars_free(s, i);
            return NULL;
        }
    }
    return s;
}

void dy_scalars_free(BIGNUM **s, size_t n)
{
    if (!s)
        return;
    for (size_t i = 0; i < n; i++)
        BN_clear_free(s[i]);
    free(s);
}

/* 1 if the 32-byte big-endian value `v` lies in [1, lim-1], else 0.  Runs
 * in time independent of v (it may be a secret scalar). */
static int s_in_range32(const uint8_t v[DY_SCALAR_LEN], const uint8_t lim[DY_SCALAR_LEN])
{
    /* Subtract lim from v byte by byte; the final borrow says v < lim. */
    unsigned borrow = 0, nonzero = 0;
    for (int i = DY_SCALAR_LEN - 1; i >= 0; i--) {
        unsigned d = (unsigned)v[i] - (unsigned)lim[i] - borrow;
        borrow = (d >> 8) & 1;
        nonzero |= v[i];
    }
    return (int)(borrow & ((nonzero + 0xff) >> 8));
}

int dy_ec_scalar_from_bytes(const dy_ec_t *self, BIGNUM *out, const uint8_t *in, size_t len)
{
    uint8_t buf[DY_SCALAR_LEN] = {0};
    int rc = -EINVAL;

    if (!in || len < 1 || len > DY_SCALAR_LEN)
        return -EINVAL;
    memcpy(buf + DY_SCALAR_LEN - len, in, len);
    if (s_in_range32(buf, self->order_bytes)) {
        BN_set_flags(out, BN_FLG_CONSTTIME);
        rc = BN_bin2bn(buf, DY_SCALAR_LEN, out) ? 0 : -ENOMEM;
    }
    OPENSSL_cleanse(buf, sizeof(buf));
    return rc;
}

int dy_ec_scalar_to_bytes(const BIGNUM *s, uint8_t out[DY_SCALAR_LEN])
{
    if (BN_is_negative(s) || BN_num_bytes(s) > DY_SCALAR_LEN)
        return -EINVAL;
    return BN_bn2binpad(s, out, DY_SCALAR_LEN) == DY_SCALAR_LEN ? 0 : -EINVAL;
}

int dy_ec_rand_scalars(const dy_ec_t *self, BIGNUM **out, size_t n)
{
    enum { CHUNK = 256 };
    uint8_t buf[CHUNK * DY_SCALAR_LEN];
    int rc = 0;
    size_t i = 0;

    while (i < n) {
        size_t want = n - i < CHUNK ? n - i : CHUNK;
        rc = dy_rand_bytes(buf, want * DY_SCALAR_LEN);
        if (rc < 0)
            break;
        /* Each accepted 32-byte block fills the next scalar; a rejected
         * block (probability about 2^-32) is simply skipped and the next
         * chunk draws again for the missing ones. */
        for (size_t j = 0; j < want; j++) {
            const uint8_t *blk = buf + j * DY_SCALAR_LEN;
            if (!s_in_range32(blk, self->order_bytes))
                continue;
            BN_set_flags(out[i], BN_FLG_CONSTTIME);
            if (!BN_bin2bn(blk, DY_SCALAR_LEN, out[i])) {
                rc = -ENOMEM;
                goto out;
            }
            i++;
        }
    }
out:
    OPENSSL_cleanse(buf, sizeof(buf));
    return rc < 0 ? (rc == -ENOMEM ? rc : -EIO) : 0;
}

/* ---- point codecs (CRYPTO.md §1) ------------------------------------------ */

/* 1 if the 32-byte big-endian coordinate c is < p (public data). */
static bool s_below_p(const dy_ec_t *self, const uint8_t *c)
{
    return memcmp(c, self->p_bytes, DY_SCALAR_LEN) < 0;
}

int dy_ec_decode(const dy_ec_t *self, EC_POINT *out, const uint8_t in[DY_PT_LEN], BN_CTX *ctx)
{
    int rc = -EINVAL;

    if (in[0] != 0x04 || !s_below_p(self, in + 1) || !s_below_p(self, in + 1 + DY_SCALAR_LEN))
        return -EINVAL;
    BN_CTX_start(ctx);
    BIGNUM *x = BN_CTX_get(ctx);
    BIGNUM *y = BN_CTX_get(ctx);
    if (!y || !BN_bin2bn(in + 1, DY_SCALAR_LEN, x)
        || !BN_bin2bn(in + 1 + DY_SCALAR_LEN, DY_SCALAR_LEN, y)) {
        rc = -ENOMEM;
        goto out;
    }
    /* OpenSSL 3's EC_POINT_set_affine_coordinates ends with
     * EC_POINT_is_on_curve and fails for a point off the curve (the unit
     * tests' off-curve cases depend on it); an affine point is never O. */
    if (!EC_POINT_set_affine_coordinates(self->group, out, x, y, ctx)) {
        ERR_clear_error();
        goto out;
    }
    rc = 0;
out:
    BN_CTX_end(ctx);
    return rc;
}

int dy_ec_decode_many(const dy_ec_t *self, EC_POINT **out, const uint8_t *in, size_t n,
                      size_t *ret_bad, BN_CTX *ctx)
{
    for (size_t i = 0; i < n; i++) {
        int rc = dy_ec_decode(self, out[i], in + i * DY_PT_LEN, ctx);
        if (rc < 0) {
            if (ret_bad)
                *ret_bad = i;
            return rc;
        }
    }
    return 0;
}

int dy_ec_check_many(const dy_ec_t *self, const uint8_t *in, size_t n, size_t *ret_bad,
                     BN_CTX *ctx)
{
    EC_POINT *tmp = EC_POINT_new(self->group);
    int rc = 0;

    if (!tmp)
        return -ENOMEM;
    for (size_t i = 0; i < n; i++) {
        rc = dy_ec_decode(self, tmp, in + i * DY_PT_LEN, ctx);
        if (rc < 0) {
            if (ret_bad)
                *ret_bad = i;
            break;
        }
    }
    EC_POINT_free(tmp);
    return rc;
}

int dy_ec_decode_compressed(const dy_ec_t *self, EC_POINT *out, const uint8_t *in, size_t len,
                            BN_CTX *ctx)
{
    int rc = -EINVAL;

    /* Steps 1-3: length, prefix, X < p. */
    if (!in || len != DY_PTC_LEN || (in[0] != 0x02 && in[0] != 0x03) || !s_below_p(self, in + 1))
        return -EINVAL;
    BN_CTX_start(ctx);
    BIGNUM *x = BN_CTX_get(ctx);
    BIGNUM *y = BN_CTX_get(ctx);
    BIGNUM *rhs = BN_CTX_get(ctx);
    BIGNUM *chk = BN_CTX_get(ctx);
    if (!chk || !BN_bin2bn(in + 1, DY_SCALAR_LEN, x)) {
        rc = -ENOMEM;
        goto out;
    }
    /* Step 4: rhs = X^3 - 3X + b must be a square; y = rhs^((p+1)/4). */
    if (dy_ec_curve_rhs(self, rhs, x, ctx) < 0
        || !BN_mod_exp_mont(y, rhs, self->sqrt_exp, self->p, ctx, self->mont_p)
        || !BN_mod_sqr(chk, y, self->p, ctx)) {
        rc = -EIO;
        goto out;
    }
    if (BN_cmp(chk, rhs) != 0)
        goto out;
    /* Step 5: match the prefix's parity (y = 0 cannot occur: odd order). */
    if (BN_is_odd(y) != (in[0] == 0x03) && !BN_is_zero(y) && !BN_sub(y, self->p, y)) {
        rc = -EIO;
        goto out;
    }
    if (!EC_POINT_set_affine_coordinates(self->group, out, x, y, ctx)) {
        ERR_clear_error();
        goto out;
    }
    if (EC_POINT_is_at_infinity(self->group, out))
        goto out;
    rc = 0;
out:
    BN_CTX_end(ctx);
    return rc;
}

int dy_ec_encode_compressed(const dy_ec_t *self, const EC_POINT *p, uint8_t out[DY_PTC_LEN],
                            BN_CTX *ctx)
{
    if (EC_POINT_is_at_infinity(self->group, p))
        return -EDOM;
    size_t n = EC_POINT_point2oct(self->group, p, POINT_CONVERSION_COMPRESSED, out, DY_PTC_LEN,
                                  ctx);
    return n == DY_PTC_LEN ? 0 : -EIO;
}

int dy_ec_encode(const dy_ec_t *self, const EC_POINT *p, uint8_t out[DY_PT_LEN], BN_CTX *ctx)
{
    if (EC_POINT_is_at_infinity(self->group, p))
        return -EDOM;
    size_t n = EC_POINT_point2oct(self->group, p, POINT_CONVERSION_UNCOMPRESSED, out, DY_PT_LEN,
                                  ctx);
    return n == DY_PT_LEN ? 0 : -EIO;
}

/* ---- arithmetic ----------------------------------------------------------- */

int dy_ec_mul(const dy_ec_t *self, EC_POINT *r, const EC_POINT *p, const BIGNUM *s, BN_CTX *ctx)
{
    return EC_POINT_mul(self->group, r, NULL, p, s, ctx) ? 0 : -EIO;
}

int dy_ec_mul_g(const dy_ec_t *self, EC_POINT *r, const BIGNUM *s, BN_CTX *ctx)
{
    return EC_POINT_mul(self->group, r, s, NULL, NULL, ctx) ? 0 : -EIO;
}

int dy_ec_add(const dy_ec_t *self, EC_POINT *r, const EC_POINT *a, const EC_POINT *b, BN_CTX *ctx)
{
    return EC_POINT_add(self->group, r, a, b, ctx) ? 0 : -EIO;
}

int dy_ec_sub(const dy_ec_t *self, EC_POINT *r, const EC_POINT *a, const EC_POINT *b, BN_CTX *ctx)
{
    EC_POINT *nb = EC_POINT_dup(b, self->group);
    int rc = -EIO;

    if (!nb)
        return -ENOMEM;
    if (EC_POINT_invert(self->group, nb, ctx) && EC_POINT_add(self->group, r, a, nb, ctx))
        rc = 0;
    EC_POINT_free(nb);
    return rc;
}

int dy_ec_neg(const dy_ec_t *self, EC_POINT *r, const EC_POINT *a, BN_CTX *ctx)
{
    if (r != a && !EC_POINT_copy(r, a))
        return -EIO;
    return EC_POINT_invert(self->group, r, ctx) ? 0 : -EIO;
}

int dy_ec_copy(EC_POINT *r, const EC_POINT *a)
{
    return EC_POINT_copy(r, a) ? 0 : -EIO;
}

int dy_ec_eq(const dy_ec_t *self, const EC_POINT *a, const EC_POINT *b, BN_CTX *ctx)
{
    int c = EC_POINT_cmp(self->group, a, b, ctx);
    if (c < 0)
        return -EIO;
    return c == 0 ? 1 : 0;
}

bool dy_ec_is_inf(const dy_ec_t *self, const EC_POINT *p)
{
    return EC_POINT_is_at_infinity(self->group, p) == 1;
}

/* ---- helpers shared with hash_to_curve.c ------------------------------------ */

int dy_ec_curve_rhs(const dy_ec_t *self, BIGNUM *rhs, const BIGNUM *x, BN_CTX *ctx)
{
    int rc = -EIO;

    BN_CTX_start(ctx);
    BIGNUM *t = BN_CTX_get(ctx);
    /* rhs = (x^2 - 3)·x + b mod p */
    if (t && BN_mod_sqr(t, x, self->p, ctx) && BN_sub_word(t, 3)
        && BN_mod_mul(rhs, t, x, self->p, ctx) && BN_mod_add(rhs, rhs, self->b, self->p, ctx))
        rc = 0;
    BN_CTX_end(ctx);
    return rc;
}

int dy_ec_decode_public(const EC_GROUP *g, const uint8_t *in, size_t len, EC_POINT *p,
                        BN_CTX *ctx)
{
    if (in == NULL)
        return -EINVAL;
    bool ok = (len == 33 && (in[0] == 0x02 || in[0] == 0x03)) || (len == 65 && in[0] == 0x04);
    if (!ok || EC_POINT_oct2point(g, p, in, len, ctx) != 1 || EC_POINT_is_at_infinity(g, p) ||
        EC_POINT_is_on_curve(g, p, ctx) != 1)
        return -EINVAL;
    return 0;
}
