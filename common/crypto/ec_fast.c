/* crypto/ec_fast.c - the batched and precomputed P-256 operations of
 * CRYPTO.md §11: two-point multiplication, batched affine encoding,
 * fixed-base tables for per-computation keys, and bulk random scalars.
 *
 * This is the only file that uses the deprecated EC_POINT-level calls
 * (EC_POINTs_mul, EC_POINTs_make_affine, EC_GROUP_precompute_mult,
 * EC_POINT_get_Jprojective_coordinates_GFp, EC_GROUP_method_of); they are
 * EC_POINT-level, not EC_KEY, and OpenSSL 3.0 still ships them.
 */
#define OPENSSL_SUPPRESS_DEPRECATED 1

#include "ec.h"
#include "ec_internal.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

struct dy_ec_fixed {
    EC_GROUP *group;   /* owned; dup of the P-256 group with `base` as generator + table */
    EC_POINT *base;    /* owned; the base, as a point of the context's group */
};

bool dy_ec_is_nistz256(const dy_ec_t *self)
{
    const EC_METHOD *m = EC_GROUP_method_of(self->group);

    /* nistz256's method is not exported; it is the one P-256 method that is
     * none of the public GFp methods and has a built-in table for G. */
    if (m == EC_GFp_simple_method() || m == EC_GFp_mont_method() || m == EC_GFp_nist_method())
        return false;
#ifndef OPENSSL_NO_EC_NISTP_64_GCC_128
    if (m == EC_GFp_nistp256_method())
        return false;
#endif
    return EC_GROUP_have_precompute_mult(self->group) == 1;
}

int dy_ec_mul2(const dy_ec_t *self, EC_POINT *r, const EC_POINT *p1, const BIGNUM *s1,
               const EC_POINT *p2, const BIGNUM *s2, BN_CTX *ctx)
{
    const EC_POINT *pts[2] = {p1, p2};
    const BIGNUM *ss[2] = {s1, s2};

    return EC_POINTs_mul(self->group, r, NULL, 2, pts, ss, ctx) ? 0 : -EIO;
}

static int s_ptr_cmp(const void *a, const void *b)
{
    uintptr_t x = (uintptr_t)*(EC_POINT *const *)a;
    uintptr_t y = (uintptr_t)*(EC_POINT *const *)b;
    return x < y ? -1 : x > y;
}

int dy_ec_encode_many(const dy_ec_t *self, EC_POINT **pts, size_t n, uint8_t *out, BN_CTX *ctx)
{
    EC_POINT **uniq = NULL;
    size_t nu = 0;
    int rc = -EIO;

    if (n == 0)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (EC_POINT_is_at_infinity(self->group, pts[i]))
            return -EDOM;
    /* make_affine overwrites each Z with 1/Z on its way back, so a point
     * listed twice would be converted with a wrong inverse: pass each
     * distinct point once. */
    if (n > SIZE_MAX / sizeof(*uniq))
        return -ENOMEM;
    uniq = malloc(n * sizeof(*uniq));
    if (!uniq)
        return -ENOMEM;
    memcpy(uniq, pts, n * sizeof(*uniq));
    qsort(uniq, n, sizeof(*uniq), s_ptr_cmp);
    for (size_t i = 0; i < n; i++)
        if (nu == 0 || uniq[nu - 1] != uniq[i])
            uniq[nu++] = uniq[i];

    BN_CTX_start(ctx);
    BIGNUM *x = BN_CTX_get(ctx);
    BIGNUM *y = BN_CTX_get(ctx);
    BIGNUM *z = BN_CTX_get(ctx);
    if (!z) {
        rc = -ENOMEM;
        goto out;
    }
    if (!EC_POINTs_make_affine(self->group, nu, uniq, ctx))
        goto out;
    for (size_t i = 0; i < n; i++) {
        uint8_t *o = out + i * DY_PT_LEN;
        if (!EC_POINT_get_Jprojective_coordinates_GFp(self->group, pts[i], x, y, z, ctx)
            || !BN_is_one(z))
            goto out;
        o[0] = 0x04;
        if (BN_bn2binpad(x, o + 1, DY_SCALAR_LEN) != DY_SCALAR_LEN
            || BN_bn2binpad(y, o + 1 + DY_SCALAR_LEN, DY_SCALAR_LEN) != DY_SCALAR_LEN)
            goto out;
    }
    rc = 0;
out:
    BN_CTX_end(ctx);
    free(uniq);
    return rc;
}

/* ---- fixed-base tables ------------------------------------------------------ */

void dy_ec_fixed_destroy(dy_ec_fixed_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    dy_ec_fixed_t *self = *self_p;
    EC_POINT_free(self->base);
    EC_GROUP_free(self->group);
    free(self);
    *self_p = NULL;
}

dy_ec_fixed_t *dy_ec_fixed_new(const dy_ec_t *ec, const EC_POINT *base)
{
    if (!base || EC_POINT_is_at_infinity(ec->group, base))
        return NULL;
    dy_ec_fixed_t *self = calloc(1, sizeof(*self));
    BN_CTX *ctx = BN_CTX_new();
    BIGNUM *one = BN_new();
    if (!self || !ctx || !one)
        goto fail;
    self->base = EC_POINT_dup(base, ec->group);
    self->group = EC_GROUP_dup(ec->group);
    if (!self->base || !self->group || !BN_one(one))
        goto fail;
    /* set_generator drops any table, so precompute afterwards.  Points of
     * the context's group stay compatible with the dup (same method and
     * curve name), so callers pass their ordinary points to fixed_mul. */
    if (!EC_GROUP_set_generator(self->group, self->base, ec->order, one)
        || !EC_GROUP_precompute_mult(self->group, ctx)
        || EC_GROUP_have_precompute_mult(self->group) != 1)
        goto fail;
    BN_free(one);
    BN_CTX_free(ctx);
    return self;
fail:
    BN_free(one);
    BN_CTX_free(ctx);
    dy_ec_fixed_destroy(&self);
    return NULL;
}

const EC_POINT *dy_ec_fixed_base(const dy_ec_fixed_t *self)
{
    return self->base;
}

int dy_ec_fixed_mul(const dy_ec_fixed_t *self, EC_POINT *r, const BIGNUM *s, BN_CTX *ctx)
{
    return EC_POINT_mul(self->group, r, s, NULL, NULL, ctx) ? 0 : -EIO;
}
