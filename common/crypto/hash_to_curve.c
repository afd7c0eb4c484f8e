/* crypto/hash_to_curve.c - PJC's GetPointByHashingToCurveSha256, exactly as
 * CRYPTO.md §2.4: try-and-increment on x = RO(m), always the even root.
 *
 * Inputs are public strings (register indices, keys, the named constants),
 * so the variable-time loop and BN_mod_exp are acceptable here.
 */
#include "ec.h"
#include "ec_internal.h"

#include <stdlib.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/sha.h>

/* x = int_be(SHA256(01 || m) || SHA256(02 || m)) mod p.  0 or -EIO. */
static int s_random_oracle(const dy_ec_t *self, BIGNUM *x, const uint8_t *m, size_t len,
                           BN_CTX *ctx)
{
    uint8_t digest[2 * SHA256_DIGEST_LENGTH];
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    int rc = -EIO;

    if (!md)
        return -ENOMEM;
    for (uint8_t i = 1; i <= 2; i++) {
        if (!EVP_DigestInit_ex(md, EVP_sha256(), NULL) || !EVP_DigestUpdate(md, &i, 1)
            || (len > 0 && !EVP_DigestUpdate(md, m, len))
            || !EVP_DigestFinal_ex(md, digest + (i - 1) * SHA256_DIGEST_LENGTH, NULL))
            goto out;
    }
    if (BN_bin2bn(digest, sizeof(digest), x) && BN_nnmod(x, x, self->p, ctx))
        rc = 0;
out:
    EVP_MD_CTX_free(md);
    return rc;
}

int dy_ec_hash_to_curve(const dy_ec_t *self, EC_POINT *out, const uint8_t *msg, size_t len,
                        BN_CTX *ctx)
{
    uint8_t xbuf[DY_SCALAR_LEN];
    int rc = -EIO;

    BN_CTX_start(ctx);
    BIGNUM *x = BN_CTX_get(ctx);
    BIGNUM *t = BN_CTX_get(ctx);
    BIGNUM *y = BN_CTX_get(ctx);
    BIGNUM *y2 = BN_CTX_get(ctx);
    if (!y2) {
        rc = -ENOMEM;
        goto out;
    }
    if (s_random_oracle(self, x, msg, len, ctx) < 0)
        goto out;
    for (;;) {
        /* PJC tests t^((p-1)/2) == 1.  Since p = 3 mod 4 that holds iff
         * t != 0 and y = t^((p+1)/4) satisfies y^2 = t, which gives the root
         * with one exponentiation instead of two. */
        if (dy_ec_curve_rhs(self, t, x, ctx) < 0)
            goto out;
        if (!BN_is_zero(t)) {
            if (!BN_mod_exp_mont(y, t, self->sqrt_exp, self->p, ctx, self->mont_p)
                || !BN_mod_sqr(y2, y, self->p, ctx))
                goto out;
            if (BN_cmp(y2, t) == 0)
                break;
        }
        /* Not a square (or zero): rehash the minimal big-endian bytes of x. */
        int n = BN_bn2bin(x, xbuf);
        if (s_random_oracle(self, x, xbuf, (size_t)n, ctx) < 0)
            goto out;
    }
    if (BN_is_odd(y) && !BN_sub(y, self->p, y))
        goto out;
    if (!EC_POINT_set_affine_coordinates(self->group, out, x, y, ctx)) {
        ERR_clear_error();
        goto out;
    }
    rc = 0;
out:
    BN_CTX_end(ctx);
    return rc;
}
