/* crypto/sig.c - ECDSA P-256 / SHA-256 signatures (CRYPTO.md §8.7, §9.3)
 * through EVP_PKEY, and the domain-separated messages they cover.
 *
 * Keys are built from raw octets with EVP_PKEY_fromdata (no EC_KEY): a
 * private key from its 32-byte scalar (the public point is computed and
 * included, so dy_sig_key_pub works on it), a public key from a validated
 * 33- or 65-byte point (§1 rules: exact length and prefix, on the curve,
 * never O).  Signatures are DER.  Verification is strict: the signature
 * must be one DER ECDSA-Sig-Value with nothing after it, and must re-encode
 * to exactly the same bytes, so no BER variant (long-form lengths, padded
 * or negative integers) is ever accepted.
 */
#include "sig.h"

#include "ec.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/obj_mac.h>
#include <openssl/param_build.h>
#include <string.h>

#define S_GROUP_NAME "prime256v1"
#define S_RAND_TRIES 64 /* draws of a private scalar before giving up */

int dy_sig_message(dy_buf_t *out, const char *label, const dy_part_t *parts, size_t nparts)
{
    static const uint8_t sep = 0x00;
    if (out == NULL || label == NULL || (parts == NULL && nparts > 0))
        return -EINVAL;
    for (size_t i = 0; i < nparts; i++) {
        if (parts[i].data == NULL && parts[i].len > 0)
            return -EINVAL;
    }
    size_t old = out->len;
    int rc = dy_buf_append(out, label, strlen(label));
    for (size_t i = 0; i < nparts && rc == 0; i++) {
        rc = dy_buf_append(out, &sep, 1);
        if (rc == 0)
            rc = dy_buf_append(out, parts[i].data, parts[i].len);
    }
    if (rc < 0)
        out->len = old;
    return rc;
}

/* True if key is an EC key on P-256. */
static bool s_is_p256(EVP_PKEY *key)
{
    char name[32];
    size_t len = 0;
    return key != NULL && EVP_PKEY_is_a(key, "EC")
           && EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_GROUP_NAME, name, sizeof(name),
                                             &len) == 1
           && strcmp(name, S_GROUP_NAME) == 0;
}

/* An EC key from params (group name, pub, and priv if selection says so).
 * NULL on failure. */
static EVP_PKEY *s_fromdata(OSSL_PARAM *params, int selection)
{
    EVP_PKEY *key = NULL;
    EVP_PKEY_CTX *pc = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
    if (pc == NULL || EVP_PKEY_fromdata_init(pc) != 1
        || EVP_PKEY_fromdata(pc, &key, selection, params) != 1) {
        EVP_PKEY_free(key);
        key = NULL;
    }
    EVP_PKEY_CTX_free(pc);
    return key;
}

EVP_PKEY *dy_sig_key_from_priv(const uint8_t priv[32])
{
    if (priv == NULL)
        return NULL;
    EVP_PKEY *key = NULL;
    uint8_t pub[65];
    EC_GROUP *g = EC_GROUP_new_by_curve_name(NID_X9_62_prime256v1);
    BN_CTX *ctx = BN_CTX_secure_new();
    EC_POINT *p = g ? EC_POINT_new(g) : NULL;
    BIGNUM *d = BN_secure_new();
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    OSSL_PARAM *params = NULL;
    if (ctx == NULL || p == NULL || d == NULL || bld == NULL)
        goto out;
    BN_set_flags(d, BN_FLG_CONSTTIME);
    /* The scalar must be in [1, n-1]; fromdata would not check it. */
    if (BN_bin2bn(priv, 32, d) == NULL || BN_is_zero(d)
        || BN_cmp(d, EC_GROUP_get0_order(g)) >= 0)
        goto out;
    if (EC_POINT_mul(g, p, d, NULL, NULL, ctx) != 1
        || EC_POINT_point2oct(g, p, POINT_CONVERSION_UNCOMPRESSED, pub, sizeof(pub), ctx)
               != sizeof(pub))
        goto out;
    if (OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, S_GROUP_NAME, 0) != 1
        || OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_PRIV_KEY, d) != 1
        || OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, pub, sizeof(pub)) != 1
        || (params = OSSL_PARAM_BLD_to_param(bld)) == NULL)
        goto out;
    key = s_fromdata(params, EVP_PKEY_KEYPAIR);
out:
    if (params != NULL) {
        OSSL_PARAM *pp = OSSL_PARAM_locate(params, OSSL_PKEY_PARAM_PRIV_KEY);
        if (pp != NULL && pp->data != NULL)
            OPENSSL_cleanse(pp->data, pp->data_size);
        OSSL_PARAM_free(params);
    }
    OSSL_PARAM_BLD_free(bld);
    BN_clear_free(d);
    EC_POINT_free(p);
    BN_CTX_free(ctx);
    EC_GROUP_free(g);
    return key;
}

EVP_PKEY *dy_sig_keygen(void)
{
    /* The scalar comes from dy_rand_bytes, so tests can replay keys. */
    uint8_t d[32];
    EVP_PKEY *key = NULL;
    for (int i = 0; i < S_RAND_TRIES && key == NULL; i++) {
        if (dy_rand_bytes(d, sizeof(d)) < 0)
            break;
        key = dy_sig_key_from_priv(d); /* NULL for 0 or >= n: draw again */
    }
    OPENSSL_cleanse(d, sizeof(d));
    return key;
}

EVP_PKEY *dy_sig_key_from_pub(const uint8_t *pub, size_t len)
{
    EVP_PKEY *key = NULL;
    EC_GROUP *g = EC_GROUP_new_by_curve_name(NID_X9_62_prime256v1);
    EC_POINT *p = g ? EC_POINT_new(g) : NULL;
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    OSSL_PARAM *params = NULL;
    if (p == NULL || bld == NULL || dy_ec_decode_public(g, pub, len, p, NULL) < 0)
        goto out;
    if (OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, S_GROUP_NAME, 0) != 1
        || OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, pub, len) != 1
        || (params = OSSL_PARAM_BLD_to_param(bld)) == NULL)
        goto out;
    key = s_fromdata(params, EVP_PKEY_PUBLIC_KEY);
out:
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(bld);
    EC_POINT_free(p);
    EC_GROUP_free(g);
    if (key == NULL)
        ERR_clear_error();
    return key;
}

int dy_sig_key_pub(EVP_PKEY *key, uint8_t pub[33])
{
    uint8_t raw[133]; /* room for any SEC1 encoding OpenSSL may hand back */
    size_t len = 0;
    int rc = -EINVAL;
    EC_GROUP *g = NULL;
    EC_POINT *p = NULL;
    if (pub == NULL || !s_is_p256(key)
        || EVP_PKEY_get_octet_string_param(key, OSSL_PKEY_PARAM_PUB_KEY, raw, sizeof(raw), &len)
               != 1)
        goto out;
    g = EC_GROUP_new_by_curve_name(NID_X9_62_prime256v1);
    p = g ? EC_POINT_new(g) : NULL;
    if (p != NULL && EC_POINT_oct2point(g, p, raw, len, NULL) == 1
        && !EC_POINT_is_at_infinity(g, p)
        && EC_POINT_point2oct(g, p, POINT_CONVERSION_COMPRESSED, pub, 33, NULL) == 33)
        rc = 0;
out:
    EC_POINT_free(p);
    EC_GROUP_free(g);
    if (rc < 0)
        ERR_clear_error();
    return rc;
}

int dy_sig_sign(EVP_PKEY *key, const uint8_t *msg, size_t len, uint8_t sig[DY_SIG_MAX],
                size_t *ret_len)
{
    static const uint8_t empty[1];
    if (sig == NULL || ret_len == NULL || (msg == NULL && len > 0) || !s_is_p256(key))
        return -EIO;
    int rc = -EIO;
    size_t siglen = DY_SIG_MAX;
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    if (md != NULL && EVP_DigestSignInit_ex(md, NULL, "SHA256", NULL, NULL, key, NULL) == 1
        && EVP_DigestSign(md, sig, &siglen, msg ? msg : empty, len) == 1
        && siglen <= DY_SIG_MAX) {
        *ret_len = siglen;
        rc = 0;
    }
    EVP_MD_CTX_free(md);
    if (rc < 0)
        ERR_clear_error();
    return rc;
}

/* True if sig is exactly one DER ECDSA-Sig-Value: it parses with no bytes
 * left over and re-encodes to the same bytes. */
static bool s_strict_der(const uint8_t *sig, size_t sig_len)
{
    const unsigned char *p = sig;
    unsigned char *der = NULL;
    ECDSA_SIG *s = d2i_ECDSA_SIG(NULL, &p, (long)sig_len);
    bool ok = s != NULL && p == sig + sig_len;
    if (ok) {
        int n = i2d_ECDSA_SIG(s, &der);
        ok = n > 0 && (size_t)n == sig_len && memcmp(der, sig, sig_len) == 0;
    }
    OPENSSL_free(der);
    ECDSA_SIG_free(s);
    return ok;
}

int dy_sig_verify(EVP_PKEY *key, const uint8_t *msg, size_t len, const uint8_t *sig,
                  size_t sig_len)
{
    static const uint8_t empty[1];
    if (sig == NULL || sig_len == 0 || sig_len > DY_SIG_MAX || (msg == NULL && len > 0)
        || !s_is_p256(key) || !s_strict_der(sig, sig_len)) {
        ERR_clear_error();
        return -EBADMSG;
    }
    int rc = -EBADMSG;
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    if (md != NULL && EVP_DigestVerifyInit_ex(md, NULL, "SHA256", NULL, NULL, key, NULL) == 1
        && EVP_DigestVerify(md, sig, sig_len, msg ? msg : empty, len) == 1)
        rc = 0;
    EVP_MD_CTX_free(md);
    if (rc < 0)
        ERR_clear_error();
    return rc;
}
