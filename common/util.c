/* util.c - the error record, byte buffers, hex and clocks of dy.h. */
#include "dy.h"

#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void dy_err_clear(dy_err_t *err)
{
    if (err == NULL)
        return;
    err->outcome = DY_OUTCOME_OK;
    err->code[0] = '\0';
    err->message[0] = '\0';
}

int dy_err_set(dy_err_t *err, int rc, const char *code, const char *fmt, ...)
{
    if (err == NULL || err->outcome != DY_OUTCOME_OK)
        return rc;
    err->outcome = (rc == -EINVAL || rc == -EDOM || rc == -ERANGE) ? DY_OUTCOME_PERMFAIL
                                                                   : DY_OUTCOME_TEMPFAIL;
    snprintf(err->code, sizeof(err->code), "%s", code);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof(err->message), fmt, ap);
    va_end(ap);
    return rc;
}

int dy_buf_reserve(dy_buf_t *buf, size_t cap)
{
    if (cap <= buf->cap)
        return 0;
    size_t ncap = buf->cap ? buf->cap : 256;
    while (ncap < cap)
        ncap = ncap > SIZE_MAX / 2 ? cap : ncap * 2;
    uint8_t *p = realloc(buf->data, ncap);
    if (p == NULL)
        return -ENOMEM;
    buf->data = p;
    buf->cap = ncap;
    return 0;
}

int dy_buf_append(dy_buf_t *buf, const void *src, size_t n)
{
    uint8_t *dst = dy_buf_extend(buf, n);
    if (dst == NULL)
        return -ENOMEM;
    if (n)
        memcpy(dst, src, n);
    return 0;
}

uint8_t *dy_buf_extend(dy_buf_t *buf, size_t n)
{
    if (n > SIZE_MAX - buf->len || dy_buf_reserve(buf, buf->len + n) < 0)
        return NULL;
    /* n == 0 on a buffer without storage: NULL would read as out of memory (and NULL + 0
     * is undefined), so give it storage. */
    if (buf->data == NULL && dy_buf_reserve(buf, 1) < 0)
        return NULL;
    uint8_t *p = buf->data + buf->len;
    buf->len += n;
    return p;
}

void dy_buf_free(dy_buf_t *buf)
{
    if (buf == NULL)
        return;
    if (buf->data)
        OPENSSL_cleanse(buf->data, buf->cap);
    free(buf->data);
    buf->data = NULL;
    buf->len = buf->cap = 0;
}

void dy_hex(const uint8_t *in, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 15];
    }
    out[2 * n] = '\0';
}

static int s_nibble(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int dy_unhex(const char *hex, uint8_t *out, size_t cap)
{
    size_t n = strlen(hex);
    if (n % 2 || n / 2 > cap)
        return -EINVAL;
    for (size_t i = 0; i < n / 2; i++) {
        int hi = s_nibble(hex[2 * i]), lo = s_nibble(hex[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return -EINVAL;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return (int)(n / 2);
}

static const char s_b64url[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

int dy_b64url_value(char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '-')
        return 62;
    if (c == '_')
        return 63;
    return -1;
}

size_t dy_b64url_encode(const uint8_t *in, size_t n, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16;
        size_t left = n - i;
        if (left > 1)
            v |= (uint32_t)in[i + 1] << 8;
        if (left > 2)
            v |= in[i + 2];
        size_t chars = left >= 3 ? 4 : left + 1;
        for (size_t k = 0; k < chars && o + 1 < cap; k++)
            out[o++] = s_b64url[(v >> (18 - 6 * k)) & 63];
    }
    if (cap > 0)
        out[o < cap ? o : cap - 1] = '\0';
    return o;
}

int dy_b64url_decode(const char *s, size_t len, uint8_t *out, size_t cap)
{
    if (len % 4 == 1)
        return -EINVAL;
    size_t o = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < len; i++) {
        int v = dy_b64url_value(s[i]);
        if (v < 0)
            return -EINVAL;
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (o >= cap)
                return -EINVAL;
            out[o++] = (uint8_t)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    if (acc != 0) /* non-canonical trailing bits */
        return -EINVAL;
    return (int)o;
}

void dy_ext_id_encode(uint64_t id, char out[DY_EXT_ID_LEN + 1])
{
    uint8_t be[8];
    for (int i = 0; i < 8; i++)
        be[i] = (uint8_t)(id >> (56 - 8 * i));
    dy_b64url_encode(be, sizeof(be), out, DY_EXT_ID_LEN + 1);
}

int dy_ext_id_decode(const char *s, uint64_t *ret_id)
{
    if (s == NULL || strlen(s) != DY_EXT_ID_LEN)
        return -EINVAL;
    uint8_t be[9];
    if (dy_b64url_decode(s, DY_EXT_ID_LEN, be, sizeof(be)) != 8)
        return -EINVAL;
    uint64_t id = 0;
    for (int i = 0; i < 8; i++)
        id = (id << 8) | be[i];
    if (id == 0)
        return -EINVAL;
    *ret_id = id;
    return 0;
}

double dy_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int64_t dy_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t dy_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

double dy_cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}
