/* crypto/ec_internal.h - private to ec.c, ec_fast.c, elgamal.c and
 * hash_to_curve.c: the layout of dy_ec_t and helpers shared between them.
 * Nothing outside common/crypto/ includes this file.
 */
#ifndef DY_CRYPTO_EC_INTERNAL_H
#define DY_CRYPTO_EC_INTERNAL_H

#include "ec.h"

struct dy_ec {
    EC_GROUP *group;                       /* owned; P-256 (nistz256 on x86_64) */
    BIGNUM *p;                             /* owned; field prime */
    BIGNUM *b;                             /* owned; curve coefficient b */
    BIGNUM *order;                         /* owned; group order n */
    BIGNUM *sqrt_exp;                      /* owned; (p+1)/4 */
    BN_MONT_CTX *mont_p;                   /* owned; Montgomery context mod p */
    uint8_t p_bytes[DY_SCALAR_LEN];        /* p, big-endian, for range checks */
    uint8_t order_bytes[DY_SCALAR_LEN];    /* n, big-endian, for range checks */
    EC_POINT *consts[_DY_EC_CONST_MAX];    /* owned; the named constants */
};

/* rhs = x^3 - 3x + b mod p.  0 or -EIO. */
int dy_ec_curve_rhs(const dy_ec_t *self, BIGNUM *rhs, const BIGNUM *x, BN_CTX *ctx);

#endif
