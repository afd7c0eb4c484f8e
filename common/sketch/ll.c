/* sketch/ll.c - the Liquid Legions sketch of CRYPTO.md §3 as the EDP side
 * builds it: SHA-256 fingerprints, the truncated-exponential register index,
 * registers merged by the reference's rules (equal keys add counts,
 * different keys destroy), and the plaintext answer of §6.2 that a
 * noise-free MPC run must reproduce exactly.
 *
 * The estimator itself (E1, E(c), invert, LLEstimate) is in estimator.c.
 */
#include "ll.h"

#include <inttypes.h>
#include <math.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

uint64_t dy_ll_fingerprint(uint64_t vid, const char *spec)
{
    char msg[96];
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    int n = snprintf(msg, sizeof(msg), "AnySketchFingerprint:%" PRIu64 ":%s", vid, spec);

    /* Only programmer errors (an absurd spec) or a broken libcrypto get here;
     * neither has a sensible fingerprint, and the signature has no error. */
    if (n < 0 || (size_t)n >= sizeof(msg) ||
        EVP_Digest(msg, (size_t)n, md, &mdlen, EVP_sha256(), NULL) != 1 || mdlen < 8)
        abort();
    uint64_t fp = 0;
    for (int i = 0; i < 8; i++)
        fp = fp << 8 | md[i];
    return fp;
}

int64_t dy_ll_register_index(double a, int64_t m, uint64_t fp)
{
    /* (double)(2^64 - 1) rounds to 2^64; the reference divides by that too. */
    double u = (double)fp / (double)UINT64_MAX;
    double ea = exp(a);
    double x = 1.0 - log(ea + u * (1.0 - ea)) / a;
    double v = x * (double)m;

    /* u near 1 gives x = 1 (index m) or a log of a non-positive number
     * (NaN or +inf): all of these are the top register [clean].  u = 0 may
     * round x to a hair below 0. */
    if (isnan(v) || v >= (double)m)
        return m - 1;
    if (v < 0)
        return 0;
    return (int64_t)v;
}

int dy_ll_sketch_init(dy_ll_sketch_t *sk, double a, int64_t m)
{
    if (sk == NULL || !(a > 1.0) || !isfinite(a) || m < 1)
        return -EINVAL;
    memset(sk, 0, sizeof(*sk));
    sk->decay_rate = a;
    sk->size = m;
    return 0;
}

void dy_ll_sketch_free(dy_ll_sketch_t *sk)
{
    if (sk == NULL)
        return;
    free(sk->regs);
    sk->regs = NULL;
    sk->n = sk->cap = 0;
}

int dy_ll_sketch_put(dy_ll_sketch_t *sk, int64_t index, uint64_t key, uint64_t count)
{
    /* Keys are not range-checked: add_vid stores 1..10^7, but any nonzero
     * value is a valid key for the merge rules and the encryption. */
    if (sk == NULL || index < 0 || index >= sk->size || (key != 0 && count == 0))
        return -EINVAL;
    if (sk->n == sk->cap) {
        size_t ncap = sk->cap ? sk->cap * 2 : 64;
        if (ncap > SIZE_MAX / sizeof(*sk->regs))
            return -ENOMEM;
        dy_ll_register_t *p = realloc(sk->regs, ncap * sizeof(*p));
        if (p == NULL)
            return -ENOMEM;
        sk->regs = p;
        sk->cap = ncap;
    }
    sk->regs[sk->n++] = (dy_ll_register_t){.index = index, .key = key, .count = count};
    return 0;
}

int dy_ll_sketch_add_vid(dy_ll_sketch_t *sk, uint64_t vid, uint64_t events)
{
    if (sk == NULL || events == 0)
        return -EINVAL;
    int64_t index = dy_ll_register_index(sk->decay_rate, sk->size, dy_ll_fingerprint(vid, "Index"));
    uint64_t key = dy_ll_fingerprint(vid, "SamplingIndicator") % DY_LL_KEY_SPACE + 1;
    return dy_ll_sketch_put(sk, index, key, events);
}

static int s_cmp_index(const void *pa, const void *pb)
{
    const dy_ll_register_t *a = pa, *b = pb;
    return (a->index > b->index) - (a->index < b->index);
}

/* Merges src into dst by the register rules: a destroyed member (key 0) or
 * two different keys destroy; counts add (saturating), and are meaningless
 * once destroyed. */
static void s_merge(dy_ll_register_t *dst, const dy_ll_register_t *src)
{
    if (dst->key != src->key)
        dst->key = 0;
    dst->count = src->count > UINT64_MAX - dst->count ? UINT64_MAX : dst->count + src->count;
}

int dy_ll_sketch_finish(dy_ll_sketch_t *sk)
{
    if (sk == NULL)
        return -EINVAL;
    if (sk->n < 2)
        return 0;
    qsort(sk->regs, sk->n, sizeof(*sk->regs), s_cmp_index);
    size_t w = 0;
    for (size_t i = 1; i < sk->n; i++) {
        if (sk->regs[i].index == sk->regs[w].index)
            s_merge(&sk->regs[w], &sk->regs[i]);
        else
            sk->regs[++w] = sk->regs[i];
    }
    sk->n = w + 1;
    return 0;
}

int dy_ll_plaintext(const dy_ll_sketch_t *const *sketches, size_t n, int K, float width,
                    int64_t *ret_reach, double *freq, uint64_t *ret_active)
{
    if (sketches == NULL || n == 0 || (freq != NULL && K < 1))
        return -EINVAL;
    double a = sketches[0]->decay_rate;
    int64_t m = sketches[0]->size;
    size_t total = 0;
    for (size_t s = 0; s < n; s++) {
        if (sketches[s] == NULL || sketches[s]->decay_rate != a || sketches[s]->size != m)
            return -EINVAL;
        total += sketches[s]->n;
    }

    /* Grouping the raw registers of every sketch at once gives the same
     * answer as merging each sketch and then the union: destruction and
     * addition are both associative.  So unfinished sketches work too. */
    dy_ll_register_t *all = malloc((total ? total : 1) * sizeof(*all));
    uint64_t *hist = freq ? calloc((size_t)K, sizeof(*hist)) : NULL;
    if (all == NULL || (freq != NULL && hist == NULL)) {
        free(all);
        free(hist);
        return -ENOMEM;
    }
    size_t k = 0;
    for (size_t s = 0; s < n; s++) {
        if (sketches[s]->n)
            memcpy(all + k, sketches[s]->regs, sketches[s]->n * sizeof(*all));
        k += sketches[s]->n;
    }
    qsort(all, total, sizeof(*all), s_cmp_index);

    uint64_t active = 0, kept = 0;
    for (size_t i = 0; i < total;) {
        dy_ll_register_t g = all[i];
        size_t j = i + 1;
        for (; j < total && all[j].index == g.index; j++)
            s_merge(&g, &all[j]);
        active++;
        if (g.key != 0) {
            kept++;
            if (hist)
                hist[(g.count < (uint64_t)K ? g.count : (uint64_t)K) - 1]++;
        }
        i = j;
    }
    free(all);

    int64_t reach = 0;
    int rc = dy_ll_estimate(a, m, active, width, &reach);
    if (rc == 0 && freq) {
        for (int f = 0; f < K; f++)
            freq[f] = kept ? (double)hist[f] / (double)kept : 0.0;
    }
    free(hist);
    if (rc < 0)
        return rc;
    if (ret_reach)
        *ret_reach = reach;
    if (ret_active)
        *ret_active = active;
    return 0;
}
