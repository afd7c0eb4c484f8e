/* crypto/ecies.c - ECIES-P256-HKDF-SHA256-AES256GCM of CRYPTO.md §9.1:
 * ephemeral-static ECDH on P-256, HKDF-SHA256 (empty salt, IKM = Ē ‖ Z)
 * to a 32-byte AES key and a 12-byte nonce, AES-256-GCM with a 16-byte tag.
 *
 * Self-contained on purpose: it uses OpenSSL's EC_POINT/BIGNUM calls (none
 * deprecated, no EC_KEY) rather than ec.h's codecs, and only dy_rand_bytes
 * from rand.c.  Point decoding follows §1: exact length and prefix first
 * (oct2point would also take a 1-byte 00 or the hybrid 06/07 forms), then
 * OpenSSL's range and curve checks, then an explicit curve and O test.
 *
 * Secrets (e, d, S, Z, okm) are cleared before return.  Decryption turns
 * every failure into the same -EBADMSG and leaves out as it was.
 */
#include "ecies.h"

#include "ec.h"

#include <limits.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/obj_mac.h>
#include <openssl/params.h>
#include <string.h>

#define S_VERSION 0x01
#define S_EPH_LEN 65    /* Ē, uncompressed */
#define S_Z_LEN 32      /* X(S) */
#define S_KEY_LEN 32
#define S_NONCE_LEN 12
#define S_TAG_LEN 16
#define S_OKM_LEN (S_KEY_LEN + S_NONCE_LEN)
#define S_RAND_TRIES 64 /* draws of a scalar before giving up (each fails w.p. < 2^-32) */

/* The P-256 group; caller frees.  NULL on failure. */
static EC_GROUP *s_group(void)
{
    return EC_GROUP_new_by_curve_name(NID_X9_62_prime256v1);
}

/* A secret scalar from 32 big-endian bytes, which must be in [1, n-1].
 * Caller frees with BN_clear_free.  NULL if out of range or on failure. */
static BIGNUM *s_scalar(const EC_GROUP *g, const uint8_t in[32])
{
    BIGNUM *k = BN_secure_new();
    if (k == NULL)
        return NULL;
    BN_set_flags(k, BN_FLG_CONSTTIME);
    if (BN_bin2bn(in, 32, k) == NULL || BN_is_zero(k)
        || BN_cmp(k, EC_GROUP_get0_order(g)) >= 0) {
        BN_clear_free(k);
        return NULL;
    }
    return k;
}

/* okm = HKDF-SHA256(salt = empty, ikm, info, 44).  0, -EINVAL (info
 * longer than DY_ECIES_INFO_MAX) or -EIO. */
static int s_hkdf(const uint8_t *ikm, size_t ikm_len, const uint8_t *info, size_t info_len,
                  uint8_t okm[S_OKM_LEN])
{
    static char digest[] = "SHA256";
    if (info_len > DY_ECIES_INFO_MAX)
        return -EINVAL;
    int rc = -EIO;
    EVP_KDF *kdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
    EVP_KDF_CTX *kctx = kdf ? EVP_KDF_CTX_new(kdf) : NULL;
    if (kctx == NULL)
        goto out;
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, digest, 0),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)ikm, ikm_len),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, (void *)info, info_len),
        OSSL_PARAM_construct_end(),
    };
    if (info_len == 0)
        params[2] = OSSL_PARAM_construct_end();
    /* No salt parameter: HKDF then uses HashLen zero bytes, which is the
     * same HMAC key as the empty salt (RFC 5869 §2.2). */
    if (EVP_KDF_derive(kctx, okm, S_OKM_LEN, params) == 1)
        rc = 0;
out:
    EVP_KDF_CTX_free(kctx);
    EVP_KDF_free(kdf);
    return rc;
}

/* The shared part of both directions: given the ephemeral public key Ē
 * (65 bytes) and the shared point S = e·Q = d·E, okm = HKDF(Ē ‖ X(S)).
 * 0, -EDOM (S = O), -EINVAL or -EIO. */
static int s_okm(const EC_GROUP *g, const uint8_t eph_pub[S_EPH_LEN], const EC_POINT *s,
                 const uint8_t *info, size_t info_len, uint8_t okm[S_OKM_LEN], BN_CTX *ctx)
{
    if (EC_POINT_is_at_infinity(g, s))
        return -EDOM;
    uint8_t ikm[S_EPH_LEN + S_Z_LEN];
    int rc = -EIO;
    BN_CTX_start(ctx);
    BIGNUM *x = BN_CTX_get(ctx);
    if (x == NULL || EC_POINT_get_affine_coordinates(g, s, x, NULL, ctx) != 1
        || BN_bn2binpad(x, ikm + S_EPH_LEN, S_Z_LEN) != S_Z_LEN)
        goto out;
    memcpy(ikm, eph_pub, S_EPH_LEN);
    rc = s_hkdf(ikm, sizeof(ikm), info, info_len, okm);
out:
    if (x)
        BN_clear(x);
    BN_CTX_end(ctx);
    OPENSSL_cleanse(ikm, sizeof(ikm));
    return rc;
}

/* Sender side: Ē = e·G (65 bytes) and okm for pub.  0, -EINVAL (bad pub,
 * eph or info), -EDOM or -EIO. */
static int s_sender(const uint8_t *pub, size_t pub_len, const uint8_t eph[32],
                    const uint8_t *info, size_t info_len, uint8_t eph_pub[S_EPH_LEN],
                    uint8_t okm[S_OKM_LEN])
{
    int rc = -EIO;
    EC_GROUP *g = s_group();
    BN_CTX *ctx = BN_CTX_secure_new();
    EC_POINT *q = g ? EC_POINT_new(g) : NULL;
    EC_POINT *e_pt = g ? EC_POINT_new(g) : NULL;
    EC_POINT *s = g ? EC_POINT_new(g) : NULL;
    BIGNUM *e = NULL;
    if (ctx == NULL || q == NULL || e_pt == NULL || s == NULL)
        goto out;
    rc = -EINVAL;
    if (eph == NULL || dy_ec_decode_public(g, pub, pub_len, q, ctx) < 0 || (e = s_scalar(g, eph)) == NULL)
        goto out;
    rc = -EIO;
    if (EC_POINT_mul(g, e_pt, e, NULL, NULL, ctx) != 1
        || EC_POINT_point2oct(g, e_pt, POINT_CONVERSION_UNCOMPRESSED, eph_pub, S_EPH_LEN, ctx)
               != S_EPH_LEN
        || EC_POINT_mul(g, s, NULL, q, e, ctx) != 1)
        goto out;
    rc = s_okm(g, eph_pub, s, info, info_len, okm, ctx);
out:
    BN_clear_free(e);
    EC_POINT_clear_free(s);
    EC_POINT_free(e_pt);
    EC_POINT_free(q);
    BN_CTX_free(ctx);
    EC_GROUP_free(g);
    return rc;
}

int dy_ecies_kdf(const uint8_t *pub, size_t pub_len, const uint8_t eph[32], const uint8_t *info,
                 size_t info_len, uint8_t okm[DY_ECIES_OKM_LEN])
{
    uint8_t eph_pub[S_EPH_LEN];
    if (okm == NULL || (info == NULL && info_len > 0))
        return -EINVAL;
    return s_sender(pub, pub_len, eph, info, info_len, eph_pub, okm);
}

/* Public point of the secret scalar priv, compressed.  0, -EINVAL or -EIO. */
static int s_pub(const uint8_t priv[32], uint8_t pub[33])
{
    int rc = -EIO;
    EC_GROUP *g = s_group();
    BN_CTX *ctx = BN_CTX_new();
    EC_POINT *p = g ? EC_POINT_new(g) : NULL;
    BIGNUM *d = NULL;
    if (ctx == NULL || p == NULL)
        goto out;
    rc = -EINVAL;
    if (priv == NULL || pub == NULL || (d = s_scalar(g, priv)) == NULL)
        goto out;
    rc = -EIO;
    if (EC_POINT_mul(g, p, d, NULL, NULL, ctx) == 1
        && EC_POINT_point2oct(g, p, POINT_CONVERSION_COMPRESSED, pub, 33, ctx) == 33)
        rc = 0;
out:
    BN_clear_free(d);
    EC_POINT_free(p);
    BN_CTX_free(ctx);
    EC_GROUP_free(g);
    return rc;
}

int dy_ecies_pub_from_priv(const uint8_t priv[32], uint8_t pub[33])
{
    return s_pub(priv, pub);
}

/* Draws a scalar in [1, n-1] from dy_rand_bytes into k.  0 or -EIO. */
static int s_rand_scalar(uint8_t k[32])
{
    EC_GROUP *g = s_group();
    if (g == NULL)
        return -EIO;
    int rc = -EIO;
    for (int i = 0; i < S_RAND_TRIES; i++) {
        if (dy_rand_bytes(k, 32) < 0)
            break;
        BIGNUM *b = s_scalar(g, k);
        if (b != NULL) {
            BN_clear_free(b);
            rc = 0;
            break;
        }
    }
    if (rc < 0)
        OPENSSL_cleanse(k, 32);
    EC_GROUP_free(g);
    return rc;
}

int dy_ecies_keygen(uint8_t priv[32], uint8_t pub[33])
{
    if (priv == NULL || pub == NULL)
        return -EINVAL;
    uint8_t d[32];
    int rc = s_rand_scalar(d);
    if (rc == 0)
        rc = s_pub(d, pub) < 0 ? -EIO : 0;
    if (rc == 0)
        memcpy(priv, d, 32);
    OPENSSL_cleanse(d, sizeof(d));
    return rc;
}

/* AES-256-GCM of msg under okm (key ‖ nonce), empty AAD: writes ct (msg_len
 * bytes) then the tag.  0 or -EIO. */
static int s_seal(const uint8_t okm[S_OKM_LEN], const uint8_t *msg, size_t msg_len, uint8_t *ct)
{
    int rc = -EIO, n = 0;
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    if (c == NULL || EVP_EncryptInit_ex(c, EVP_aes_256_gcm(), NULL, NULL, NULL) != 1
        || EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_IVLEN, S_NONCE_LEN, NULL) != 1
        || EVP_EncryptInit_ex(c, NULL, NULL, okm, okm + S_KEY_LEN) != 1)
        goto out;
    if (msg_len > 0 && (EVP_EncryptUpdate(c, ct, &n, msg, (int)msg_len) != 1
                        || (size_t)n != msg_len))
        goto out;
    if (EVP_EncryptFinal_ex(c, ct + msg_len, &n) != 1 || n != 0
        || EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, S_TAG_LEN, ct + msg_len) != 1)
        goto out;
    rc = 0;
out:
    EVP_CIPHER_CTX_free(c);
    return rc;
}

/* Opens ct (ct_len bytes, then the tag) into pt.  0 or -EBADMSG. */
static int s_open(const uint8_t okm[S_OKM_LEN], const uint8_t *ct, size_t ct_len, uint8_t *pt)
{
    int rc = -EBADMSG, n = 0;
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    if (c == NULL || EVP_DecryptInit_ex(c, EVP_aes_256_gcm(), NULL, NULL, NULL) != 1
        || EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_IVLEN, S_NONCE_LEN, NULL) != 1
        || EVP_DecryptInit_ex(c, NULL, NULL, okm, okm + S_KEY_LEN) != 1)
        goto out;
    if (ct_len > 0 && (EVP_DecryptUpdate(c, pt, &n, ct, (int)ct_len) != 1
                       || (size_t)n != ct_len))
        goto out;
    if (EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG, S_TAG_LEN, (void *)(ct + ct_len)) != 1
        || EVP_DecryptFinal_ex(c, pt + ct_len, &n) != 1 || n != 0)
        goto out;
    rc = 0;
out:
    EVP_CIPHER_CTX_free(c);
    return rc;
}

int dy_ecies_encrypt_with(const uint8_t *pub, size_t pub_len, const uint8_t eph[32],
                          const uint8_t *info, size_t info_len, const uint8_t *msg,
                          size_t msg_len, dy_buf_t *out)
{
    if (out == NULL || (info == NULL && info_len > 0) || (msg == NULL && msg_len > 0)
        || msg_len > (size_t)INT_MAX - DY_ECIES_OVERHEAD)
        return -EINVAL;
    uint8_t eph_pub[S_EPH_LEN], okm[S_OKM_LEN];
    int rc = s_sender(pub, pub_len, eph, info, info_len, eph_pub, okm);
    if (rc == -EDOM)
        rc = -EINVAL; /* e·Q = O cannot happen for a valid Q and e in [1, n-1] */
    if (rc < 0)
        goto out;
    size_t old = out->len;
    uint8_t *dst = dy_buf_extend(out, msg_len + DY_ECIES_OVERHEAD);
    if (dst == NULL) {
        rc = -ENOMEM;
        goto out;
    }
    dst[0] = S_VERSION;
    memcpy(dst + 1, eph_pub, S_EPH_LEN);
    rc = s_seal(okm, msg, msg_len, dst + 1 + S_EPH_LEN);
    if (rc < 0) {
        OPENSSL_cleanse(dst, msg_len + DY_ECIES_OVERHEAD);
        out->len = old;
    }
out:
    OPENSSL_cleanse(okm, sizeof(okm));
    return rc;
}

int dy_ecies_encrypt(const uint8_t *pub, size_t pub_len, const uint8_t *info, size_t info_len,
                     const uint8_t *msg, size_t msg_len, dy_buf_t *out)
{
    uint8_t e[32];
    int rc = s_rand_scalar(e);
    if (rc == 0)
        rc = dy_ecies_encrypt_with(pub, pub_len, e, info, info_len, msg, msg_len, out);
    OPENSSL_cleanse(e, sizeof(e));
    return rc;
}

/* Receiver side: okm from d and the received Ē.  0 or -EBADMSG. */
static int s_receiver(const uint8_t priv[32], const uint8_t eph_pub[S_EPH_LEN],
                      const uint8_t *info, size_t info_len, uint8_t okm[S_OKM_LEN])
{
    int rc = -EBADMSG;
    EC_GROUP *g = s_group();
    BN_CTX *ctx = BN_CTX_secure_new();
    EC_POINT *e_pt = g ? EC_POINT_new(g) : NULL;
    EC_POINT *s = g ? EC_POINT_new(g) : NULL;
    BIGNUM *d = NULL;
    if (ctx == NULL || e_pt == NULL || s == NULL || priv == NULL)
        goto out;
    /* Ē must be the uncompressed form (§9.1), on the curve, not O. */
    if (eph_pub[0] != 0x04 || dy_ec_decode_public(g, eph_pub, S_EPH_LEN, e_pt, ctx) < 0
        || (d = s_scalar(g, priv)) == NULL || EC_POINT_mul(g, s, NULL, e_pt, d, ctx) != 1
        || s_okm(g, eph_pub, s, info, info_len, okm, ctx) < 0)
        goto out;
    rc = 0;
out:
    BN_clear_free(d);
    EC_POINT_clear_free(s);
    EC_POINT_free(e_pt);
    BN_CTX_free(ctx);
    EC_GROUP_free(g);
    return rc;
}

int dy_ecies_decrypt(const uint8_t priv[32], const uint8_t *info, size_t info_len,
                     const uint8_t *ct, size_t ct_len, dy_buf_t *out)
{
    if (out == NULL || ct == NULL || ct_len < DY_ECIES_OVERHEAD || ct[0] != S_VERSION
        || ct_len - DY_ECIES_OVERHEAD > (size_t)INT_MAX || (info == NULL && info_len > 0))
        return -EBADMSG;
    uint8_t okm[S_OKM_LEN];
    size_t msg_len = ct_len - DY_ECIES_OVERHEAD;
    int rc = s_receiver(priv, ct + 1, info, info_len, okm);
    if (rc < 0)
        goto out;
    size_t old = out->len;
    /* One spare byte: an empty plaintext must still get a non-NULL pointer
     * (extending an empty buffer by 0 bytes yields NULL). */
    uint8_t *dst = dy_buf_extend(out, msg_len + 1);
    if (dst == NULL) {
        rc = -EBADMSG;
        goto out;
    }
    rc = s_open(okm, ct + 1 + S_EPH_LEN, msg_len, dst);
    if (rc < 0)
        OPENSSL_cleanse(dst, msg_len);
    out->len = rc < 0 ? old : old + msg_len;
out:
    OPENSSL_cleanse(okm, sizeof(okm));
    if (rc < 0)
        ERR_clear_error(); /* the failure stays opaque, and leaves no queue behind */
    return rc < 0 ? -EBADMSG : 0;
}
