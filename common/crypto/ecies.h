/* crypto/ecies.h - ECIES-P256-HKDF-SHA256-AES256GCM (CRYPTO.md §9.1), used
 * for measurement results and HMSS seeds.  Keys: private 32 bytes
 * big-endian, public 33 bytes compressed.  Ciphertext:
 * 01 || E (65 B uncompressed) || ct || tag (16 B), |M| + 82 bytes.
 */
#ifndef DY_CRYPTO_ECIES_H
#define DY_CRYPTO_ECIES_H

#include "../dy.h"

#define DY_ECIES_OVERHEAD 82

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

#endif
