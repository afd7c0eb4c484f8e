/* crypto/rand.c - the process-wide random source (see ec.h).  Production
 * draws from RAND_priv_bytes; tests inject a deterministic source so that
 * known-answer vectors replay. */
#include "ec.h"

#include <limits.h>
#include <openssl/rand.h>

static dy_rand_fn s_fn;
static void *s_arg;

void dy_rand_set_source(dy_rand_fn fn, void *arg)
{
    s_fn = fn;
    s_arg = arg;
}

int dy_rand_bytes(uint8_t *buf, size_t len)
{
    if (s_fn)
        return s_fn(s_arg, buf, len);
    while (len > 0) {
        int n = len > INT_MAX ? INT_MAX : (int)len;
        if (RAND_priv_bytes(buf, n) != 1)
            return -EIO;
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}
