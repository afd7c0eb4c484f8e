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

double dy_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

double dy_cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}
