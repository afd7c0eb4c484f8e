/* secrets.h - per-computation secrets at rest (docs/cluster.md "State"):
 * AES-256-GCM under the duchy's master key, with the computation id as
 * associated data, so a secrets blob cannot be moved to another
 * computation.  Format: 01 || nonce (12) || ciphertext || tag (16).
 */
#ifndef DY_SECRETS_H
#define DY_SECRETS_H

#include "dy.h"

#define DY_SECRETS_OVERHEAD 29

/* Reads the master key: a file of exactly 32 raw bytes or 64 hex digits
 * (plus an optional newline), owned by us and not readable by group or
 * others.  0, -EINVAL (size, format), -EPERM (mode) or -errno. */
int dy_secrets_load_master(const char *path, uint8_t key[32]);

/* Creates a master key file (mode 0600, O_EXCL) with 32 random bytes. */
int dy_secrets_make_master(const char *path);

/* Appends the sealed form of pt to out.  0 or -EIO. */
int dy_secrets_seal(const uint8_t key[32], const char *aad, const uint8_t *pt, size_t len,
                    dy_buf_t *out);

/* Appends the plaintext to out.  Every failure is -EBADMSG. */
int dy_secrets_open(const uint8_t key[32], const char *aad, const uint8_t *ct, size_t len,
                    dy_buf_t *out);

#endif
