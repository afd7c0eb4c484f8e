/* crypto/sig.h - ECDSA P-256 / SHA-256 signatures (DER, OID
 * 1.2.840.10045.4.3.2) over domain-separated messages, through EVP_PKEY.
 */
#ifndef DY_CRYPTO_SIG_H
#define DY_CRYPTO_SIG_H

#include "../dy.h"

#include <openssl/evp.h>

#define DY_SIG_MAX 72
#define DY_SIG_OID "1.2.840.10045.4.3.2"

/* Builds the domain-separated message `label 00 part1 00 part2 ...`: the
 * label, then each of the nparts parts preceded by one 00 byte.  Parts are
 * (pointer, length) pairs.  0 or -ENOMEM. */
typedef struct {
    const void *data;
    size_t len;
} dy_part_t;
int dy_sig_message(dy_buf_t *out, const char *label, const dy_part_t *parts, size_t nparts);

/* A P-256 private key from 32 raw bytes / a fresh one; caller frees with
 * EVP_PKEY_free.  NULL on failure. */
EVP_PKEY *dy_sig_key_from_priv(const uint8_t priv[32]);
EVP_PKEY *dy_sig_keygen(void);
/* A P-256 public key from a 33- or 65-byte point; NULL if invalid. */
EVP_PKEY *dy_sig_key_from_pub(const uint8_t *pub, size_t len);
/* The compressed public point of a P-256 key.  0 or -EINVAL. */
int dy_sig_key_pub(EVP_PKEY *key, uint8_t pub[33]);

/* Signs msg; writes the DER signature (<= 72 bytes) to sig, its length to
 * *ret_len.  0 or -EIO. */
int dy_sig_sign(EVP_PKEY *key, const uint8_t *msg, size_t len, uint8_t sig[DY_SIG_MAX],
                size_t *ret_len);

/* Verifies a strict-DER signature.  0 if valid, -EBADMSG if not. */
int dy_sig_verify(EVP_PKEY *key, const uint8_t *msg, size_t len, const uint8_t *sig,
                  size_t sig_len);

#endif
