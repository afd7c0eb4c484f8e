/* crypto/elgamal.c - EC ElGamal as the protocol uses it (CRYPTO.md §2.2,
 * §2.3): encryption and re-randomization through the fixed-base tables
 * (r·G and r·Y), partial decryption, the zero test, and the Pohlig-Hellman
 * blind as one two-point multiplication plus one single one (§11 item 2).
 *
 * Every scalar here is a secret; all multiplications are the constant-time
 * nistz256 ones, and temporaries derived from secrets are wiped.
 */
#include "ec.h"
#include "ec_internal.h"

/* One or two (b non-NULL) scratch points of the group.  0 or -ENOMEM; the
 * caller frees whatever was allocated either way. */
static int s_tmp2(const dy_ec_t *ec, EC_POINT **a, EC_POINT **b)
{
    *a = EC_POINT_new(dy_ec_group(ec));
    if (b)
        *b = EC_POINT_new(dy_ec_group(ec));
    return *a && (!b || *b) ? 0 : -ENOMEM;
}

int dy_eg_encrypt(const dy_ec_t *ec, const dy_ec_fixed_t *Y, EC_POINT *u, EC_POINT *e,
                  const EC_POINT *m, const BIGNUM *r, BN_CTX *ctx)
{
    int rc = dy_ec_mul_g(ec, u, r, ctx);
    if (rc == 0)
        rc = dy_ec_fixed_mul(Y, e, r, ctx);
    if (rc == 0 && m)
        rc = dy_ec_add(ec, e, e, m, ctx);
    return rc;
}

int dy_eg_rerand(const dy_ec_t *ec, const dy_ec_fixed_t *Y, EC_POINT *u, EC_POINT *e,
                 const BIGNUM *r, BN_CTX *ctx)
{
    EC_POINT *ru = NULL, *re = NULL;
    int rc = s_tmp2(ec, &ru, &re);

    if (rc == 0)
        rc = dy_eg_encrypt(ec, Y, ru, re, NULL, r, ctx);
    if (rc == 0)
        rc = dy_ec_add(ec, u, u, ru, ctx);
    if (rc == 0)
        rc = dy_ec_add(ec, e, e, re, ctx);
    EC_POINT_clear_free(ru);
    EC_POINT_clear_free(re);
    return rc;
}

int dy_eg_partdec(const dy_ec_t *ec, const EC_POINT *u, EC_POINT *e, const BIGNUM *x, BN_CTX *ctx)
{
    EC_POINT *xu = NULL;
    int rc = s_tmp2(ec, &xu, NULL);

    if (rc == 0)
        rc = dy_ec_mul(ec, xu, u, x, ctx);
    if (rc == 0)
        rc = dy_ec_sub(ec, e, e, xu, ctx);
    EC_POINT_clear_free(xu);
    return rc;
}

int dy_eg_is_zero(const dy_ec_t *ec, const EC_POINT *u, const EC_POINT *e, const BIGNUM *x,
                  bool *ret_zero, BN_CTX *ctx)
{
    EC_POINT *xu = NULL;
    int rc = s_tmp2(ec, &xu, NULL);

    if (rc == 0)
        rc = dy_ec_mul(ec, xu, u, x, ctx);
    if (rc == 0) {
        int eq = dy_ec_eq(ec, xu, e, ctx);
        if (eq < 0)
            rc = eq;
        else
            *ret_zero = eq == 1;
    }
    EC_POINT_clear_free(xu);
    return rc;
}

int dy_eg_blind(const dy_ec_t *ec, EC_POINT *u, EC_POINT *e, const BIGNUM *k, const BIGNUM *kx,
                BN_CTX *ctx)
{
    EC_POINT *ne = NULL, *nu = NULL;
    BIGNUM *neg = dy_scalar_new();
    int rc = s_tmp2(ec, &ne, &nu);

    if (!neg)
        rc = -ENOMEM;
    /* neg = n - kx, so k·e - kx·u = k·e + neg·u in one 2-point mul.  kx is
     * in [0, n) (the caller reduced it), so the difference is in (0, n]. */
    if (rc == 0 && !BN_sub(neg, dy_ec_order(ec), kx))
        rc = -EIO;
    if (rc == 0)
        rc = dy_ec_mul2(ec, ne, e, k, u, neg, ctx);
    if (rc == 0)
        rc = dy_ec_mul(ec, nu, u, k, ctx);
    if (rc == 0)
        rc = dy_ec_copy(e, ne);
    if (rc == 0)
        rc = dy_ec_copy(u, nu);
    EC_POINT_clear_free(ne);
    EC_POINT_clear_free(nu);
    dy_scalar_free(&neg);
    return rc;
}
