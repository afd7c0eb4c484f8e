/* crypto/ecies.h - ECIES-P256-HKDF-SHA256-AES256GCM (CRYPTO.md §9.1), used
 * for measurement results and HMSS seeds.  Keys: private 32 bytes
 * big-endian, public 33 bytes compressed.  Ciphertext:
 * 01 || E (65 B uncompressed) || ct || tag (16 B), |M| + 82 bytes.
 */
#ifndef DY_CRYPTO_ECIES_H
#define DY_CRYPTO_ECIES_H

#include "../dy.h"

#define DY_ECIES_OVERHEAD 82
/* Longest info accepted (longer: -EINVAL, or -EBADMSG on decrypt).  Older
 * OpenSSL releases cap HKDF info at 1024 bytes (3.0.22, measured here,
 * takes 32 KiB); our infos are a few dozen bytes. */
#define DY_ECIES_INFO_MAX 1024

/* A fresh key pair.  0 or -EIO. */
int dy_ecies_keygen(uint8_t priv[32], uint8_t pub[33]);

/* Derives the 33-byte public key of priv.  0 or -EINVAL. */
int dy_ecies_pub_from_priv(const uint8_t priv[32], uint8_t pub[33]);

/* Encrypts msg to pub (33 or 65 bytes) under the context string info,
 * appending |msg| + 82 bytes to out.  The ephemeral scalar comes from
 * dy_rand_bytes.  0, -EINVAL (bad key) or -EIO. */
int dy_ecies_encrypt(const uint8_t *pub, size_t pub_len, const uint8_t *info, size_t info_len,
                     const uint8_t *msg, size_t msg_len, dy_buf_t *out);

/* As dy_ecies_encrypt with the ephemeral scalar given (known-answer tests). */
int dy_ecies_encrypt_with(const uint8_t *pub, size_t pub_len, const uint8_t eph[32],
                          const uint8_t *info, size_t info_len, const uint8_t *msg,
                          size_t msg_len, dy_buf_t *out);

/* Decrypts ct with priv under info, appending the plaintext to out.  Every
 * failure (version, length, bad point, tag) is the same -EBADMSG. */
int dy_ecies_decrypt(const uint8_t priv[32], const uint8_t *info, size_t info_len,
                     const uint8_t *ct, size_t ct_len, dy_buf_t *out);

/* The 44-byte okm (AES key ‖ GCM nonce) that encryption to pub with the
 * ephemeral scalar eph under info derives (§9.1 step 3); for known-answer
 * tests.  0, -EINVAL (bad key, scalar or info) or -EIO. */
#define DY_ECIES_OKM_LEN 44
int dy_ecies_kdf(const uint8_t *pub, size_t pub_len, const uint8_t eph[32], const uint8_t *info,
                 size_t info_len, uint8_t okm[DY_ECIES_OKM_LEN]);

#endif
