/* secrets.c - per-computation secrets at rest (secrets.h): AES-256-GCM
 * (OpenSSL EVP) under the duchy's master key, with the computation id as
 * associated data.
 *
 * Sealed form: version byte 0x01 || nonce (12 random bytes) ||
 * ciphertext || tag (16).  The version byte is authenticated too: it is
 * fed to GCM as associated data ahead of the computation id, so a blob
 * cannot be relabelled to a later format.
 *
 * Nonces and master keys come from OpenSSL's RAND_bytes, not from
 * dy_rand_bytes: tests may replace the latter with a deterministic source,
 * and a repeated GCM nonce under one key is fatal to its security.
 *
 * Failures of dy_secrets_open are all -EBADMSG, so a caller cannot tell a
 * wrong key from a wrong computation from a damaged blob (nor can an
 * attacker).  Key material on the stack is wiped with OPENSSL_cleanse.
 */
#include "secrets.h"

#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define S_VERSION 0x01
#define S_NONCE 12
#define S_TAG 16

int dy_secrets_load_master(const char *path, uint8_t key[32])
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return -errno;
    struct stat st;
    if (fstat(fd, &st) < 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    if (!S_ISREG(st.st_mode) || st.st_size > 65) {
        close(fd);
        return -EINVAL;
    }
    if (st.st_uid != geteuid() || (st.st_mode & 0077) != 0) {
        close(fd);
        return -EPERM;
    }
    uint8_t buf[80];
    size_t n = 0;
    for (;;) {
        ssize_t r = read(fd, buf + n, sizeof(buf) - n);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            int e = errno;
            close(fd);
            OPENSSL_cleanse(buf, sizeof(buf));
            return -e;
        }
        if (r == 0)
            break;
        n += (size_t)r;
        if (n == sizeof(buf))
            break;
    }
    close(fd);
    int rc = -EINVAL;
    if (n == 32) {
        memcpy(key, buf, 32);
        rc = 0;
    } else if (n == 64 || (n == 65 && buf[64] == '\n')) {
        char hex[65];
        memcpy(hex, buf, 64);
        hex[64] = '\0';
        uint8_t tmp[32];
        if (dy_unhex(hex, tmp, sizeof(tmp)) == 32) {
            memcpy(key, tmp, 32);
            rc = 0;
        }
        OPENSSL_cleanse(tmp, sizeof(tmp));
        OPENSSL_cleanse(hex, sizeof(hex));
    }
    OPENSSL_cleanse(buf, sizeof(buf));
    return rc;
}

int dy_secrets_make_master(const char *path)
{
    uint8_t key[32];
    if (RAND_bytes(key, sizeof(key)) != 1)
        return -EIO;
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) {
        int e = errno;
        OPENSSL_cleanse(key, sizeof(key));
        return -e;
    }
    /* The umask may have taken bits away but never adds any; make it exact. */
    (void)fchmod(fd, 0600);
    size_t off = 0;
    int rc = 0;
    while (off < sizeof(key)) {
        ssize_t w = write(fd, key + off, sizeof(key) - off);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            rc = -errno;
            break;
        }
        off += (size_t)w;
    }
    OPENSSL_cleanse(key, sizeof(key));
    if (rc == 0 && fsync(fd) < 0)
        rc = -errno;
    if (close(fd) < 0 && rc == 0)
        rc = -errno;
    if (rc < 0)
        (void)unlink(path);
    return rc;
}

int dy_secrets_seal(const uint8_t key[32], const char *aad, const uint8_t *pt, size_t len,
                    dy_buf_t *out)
{
    if (key == NULL || aad == NULL || (pt == NULL && len > 0) || out == NULL ||
        len > (size_t)INT32_MAX)
        return -EIO;
    size_t start = out->len;
    uint8_t *dst = dy_buf_extend(out, DY_SECRETS_OVERHEAD + len);
    if (dst == NULL)
        return -EIO;
    const uint8_t version = S_VERSION;
    dst[0] = version;
    uint8_t *nonce = dst + 1, *ct = dst + 1 + S_NONCE, *tag = ct + len;
    int ok = 0, outl = 0;
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    if (ctx != NULL && RAND_bytes(nonce, S_NONCE) == 1 &&
        EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL) == 1 &&
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, S_NONCE, NULL) == 1 &&
        EVP_EncryptInit_ex(ctx, NULL, NULL, key, nonce) == 1 &&
        EVP_EncryptUpdate(ctx, NULL, &outl, &version, 1) == 1 &&
        EVP_EncryptUpdate(ctx, NULL, &outl, (const uint8_t *)aad, (int)strlen(aad)) == 1 &&
        (len == 0 || EVP_EncryptUpdate(ctx, ct, &outl, pt, (int)len) == 1) &&
        EVP_EncryptFinal_ex(ctx, ct + len, &outl) == 1 &&
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, S_TAG, tag) == 1)
        ok = 1;
    EVP_CIPHER_CTX_free(ctx);
    if (!ok) {
        OPENSSL_cleanse(dst, DY_SECRETS_OVERHEAD + len);
        out->len = start;
        return -EIO;
    }
    return 0;
}

int dy_secrets_open(const uint8_t key[32], const char *aad, const uint8_t *ct, size_t len,
                    dy_buf_t *out)
{
    if (key == NULL || aad == NULL || ct == NULL || out == NULL ||
        len < DY_SECRETS_OVERHEAD || ct[0] != S_VERSION || len > (size_t)INT32_MAX)
        return -EBADMSG;
    size_t ptlen = len - DY_SECRETS_OVERHEAD;
    const uint8_t *nonce = ct + 1, *body = ct + 1 + S_NONCE, *tag = body + ptlen;
    size_t start = out->len;
    uint8_t *dst = dy_buf_extend(out, ptlen);
    if (dst == NULL && ptlen > 0)
        return -EBADMSG;
    uint8_t tagcopy[S_TAG];
    memcpy(tagcopy, tag, S_TAG);
    int ok = 0, outl = 0;
    uint8_t scratch[16];
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    if (ctx != NULL && EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL) == 1 &&
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, S_NONCE, NULL) == 1 &&
        EVP_DecryptInit_ex(ctx, NULL, NULL, key, nonce) == 1 &&
        EVP_DecryptUpdate(ctx, NULL, &outl, ct, 1) == 1 &&
        EVP_DecryptUpdate(ctx, NULL, &outl, (const uint8_t *)aad, (int)strlen(aad)) == 1 &&
        (ptlen == 0 || EVP_DecryptUpdate(ctx, dst, &outl, body, (int)ptlen) == 1) &&
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, S_TAG, tagcopy) == 1 &&
        EVP_DecryptFinal_ex(ctx, ptlen ? dst + ptlen : scratch, &outl) == 1)
        ok = 1;
    EVP_CIPHER_CTX_free(ctx);
    if (!ok) {
        if (ptlen > 0)
            OPENSSL_cleanse(dst, ptlen);
        out->len = start;
        return -EBADMSG;
    }
    return 0;
}
