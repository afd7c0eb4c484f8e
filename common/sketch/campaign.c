/* sketch/campaign.c - seeded synthetic campaigns for the data-provider
 * simulator and the benchmark, and their ground truth.
 *
 * Each EDP reaches `reach` distinct people drawn uniformly without
 * replacement from 1..population, independently of the other EDPs, so
 * overlaps arise naturally (E[union] = N·(1 − (1 − r/N)^E)).  Sampling is
 * Floyd's algorithm, O(reach) draws whatever the population, with a bitmap
 * of the population when that is small (read back in order), else an
 * open-addressing hash set and a radix sort of the chosen vids.  Each reached
 * person then gets a Zipf(1) number of events on [1, max_events]:
 * P(k) ∝ 1/k, skewed towards small counts but with every bucket populated.
 *
 * Randomness: xoshiro256** seeded through SplitMix64 from (seed, EDP
 * number), so every EDP is an independent, reproducible stream.  Not a
 * CSPRNG: synthetic data only.
 */
#include "campaign.h"

#include <stdlib.h>
#include <string.h>

#define S_MAX_EVENTS (1 << 20) /* bound on the event table */

/* ---- xoshiro256** ---------------------------------------------------------- */

typedef struct {
    uint64_t s[4];
} s_rng_t;

static uint64_t s_splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static uint64_t s_rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

static uint64_t s_next(s_rng_t *r)
{
    uint64_t *s = r->s;
    uint64_t out = s_rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = s_rotl(s[3], 45);
    return out;
}

static void s_seed(s_rng_t *r, uint64_t seed, uint64_t stream)
{
    uint64_t x = seed ^ (stream * 0xd1342543de82ef95ULL);
    for (int i = 0; i < 4; i++)
        r->s[i] = s_splitmix64(&x);
}

/* Uniform in [0, n), n >= 1, without modulo bias (rejects the low
 * 2^64 mod n values). */
static uint64_t s_below(s_rng_t *r, uint64_t n)
{
    uint64_t threshold = (0 - n) % n;
    for (;;) {
        uint64_t x = s_next(r);
        if (x >= threshold)
            return x % n;
    }
}

/* Uniform double in [0, 1) with 53 bits. */
static double s_unit(s_rng_t *r)
{
    return (double)(s_next(r) >> 11) * 0x1p-53;
}

/* ---- sampling ---------------------------------------------------------------- */

/* Open-addressing set of nonzero uint64 (0 marks an empty slot). */
typedef struct {
    uint64_t *slot; /* owned, cap entries */
    size_t mask;    /* cap - 1, cap a power of two */
} s_set_t;

static size_t s_hash(uint64_t v)
{
    v ^= v >> 33;
    v *= 0xff51afd7ed558ccdULL;
    v ^= v >> 33;
    return (size_t)v;
}

/* Inserts v; returns false if it was already there. */
static bool s_set_insert(s_set_t *set, uint64_t v)
{
    size_t i = s_hash(v) & set->mask;
    while (set->slot[i] != 0) {
        if (set->slot[i] == v)
            return false;
        i = (i + 1) & set->mask;
    }
    set->slot[i] = v;
    return true;
}

/* LSD radix sort of n uint64 values below 2^bits, 16 bits per pass, using
 * tmp (n entries).  The result ends in v. */
static int s_radix_sort(uint64_t *v, size_t n, int bits)
{
    uint64_t *tmp = malloc((n ? n : 1) * sizeof(*tmp));
    size_t *count = malloc(65536 * sizeof(*count));
    if (tmp == NULL || count == NULL) {
        free(tmp);
        free(count);
        return -ENOMEM;
    }
    uint64_t *src = v, *dst = tmp;
    for (int shift = 0; shift < bits; shift += 16) {
        memset(count, 0, 65536 * sizeof(*count));
        for (size_t i = 0; i < n; i++)
            count[(src[i] >> shift) & 0xffff]++;
        size_t sum = 0;
        for (size_t d = 0; d < 65536; d++) {
            size_t c = count[d];
            count[d] = sum;
            sum += c;
        }
        for (size_t i = 0; i < n; i++)
            dst[count[(src[i] >> shift) & 0xffff]++] = src[i];
        uint64_t *t = src;
        src = dst;
        dst = t;
    }
    if (src != v)
        memcpy(v, src, n * sizeof(*v));
    free(tmp);
    free(count);
    return 0;
}

/* Membership for Floyd's algorithm: a bitmap over 1..N when that is no
 * larger than a hash set for r values (N < 192·r), else the hash set.  The
 * chosen set depends only on the draws, not on the structure. */
typedef struct {
    uint64_t *bits; /* owned, bitmap mode: bit v-1 for vid v */
    s_set_t set;    /* hash mode: set.slot owned */
} s_member_t;

static bool s_member_insert(s_member_t *m, uint64_t v)
{
    if (m->bits) {
        uint64_t w = (v - 1) >> 6, b = UINT64_C(1) << ((v - 1) & 63);
        if (m->bits[w] & b)
            return false;
        m->bits[w] |= b;
        return true;
    }
    return s_set_insert(&m->set, v);
}

/* Fills out[0..r) with r distinct vids of 1..N, ascending (Floyd). */
static int s_sample(s_rng_t *rng, uint64_t N, uint64_t r, uint64_t *out)
{
    if (r == 0)
        return 0;
    s_member_t m = {0};
    bool bitmap = N / 192 < r;
    if (bitmap) {
        m.bits = calloc((size_t)((N + 63) / 64), sizeof(uint64_t));
        if (m.bits == NULL)
            return -ENOMEM;
    } else {
        size_t cap = 16;
        while (cap < 2 * r)
            cap *= 2;
        m.set = (s_set_t){.slot = calloc(cap, sizeof(uint64_t)), .mask = cap - 1};
        if (m.set.slot == NULL)
            return -ENOMEM;
    }
    size_t k = 0;
    /* For j = N-r+1..N: pick t in 1..j; take t, or j if t is taken.  Every
     * r-subset comes out with equal probability. */
    for (uint64_t j = N - r + 1; j <= N && j != 0; j++) {
        uint64_t t = 1 + s_below(rng, j);
        if (!s_member_insert(&m, t)) {
            t = j;
            s_member_insert(&m, t);
        }
        out[k++] = t;
    }
    if (bitmap) { /* read the set back in order: already sorted */
        k = 0;
        for (uint64_t w = 0; w < (N + 63) / 64; w++)
            for (uint64_t x = m.bits[w]; x != 0; x &= x - 1)
                out[k++] = w * 64 + (uint64_t)__builtin_ctzll(x) + 1;
        free(m.bits);
        return 0;
    }
    free(m.set.slot);
    int bits = 0;
    while (bits < 64 && (N >> bits) != 0)
        bits++;
    return s_radix_sort(out, k, bits);
}

/* ---- events --------------------------------------------------------------------- */

/* cdf[k-1] = P(events <= k) for the Zipf(1) law on 1..max. */
static double *s_event_cdf(int max)
{
    double *cdf = malloc((size_t)max * sizeof(*cdf));
    if (cdf == NULL)
        return NULL;
    double z = 0;
    for (int k = 1; k <= max; k++)
        z += 1.0 / k;
    double acc = 0;
    for (int k = 1; k <= max; k++) {
        acc += 1.0 / k;
        cdf[k - 1] = acc / z;
    }
    cdf[max - 1] = 1.0;
    return cdf;
}

static uint32_t s_draw_events(s_rng_t *rng, const double *cdf, int max)
{
    double u = s_unit(rng);
    int lo = 0, hi = max - 1; /* smallest k-1 with u < cdf[k-1] */
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2;
        if (u < cdf[mid])
            hi = mid;
        else
            lo = mid + 1;
    }
    return (uint32_t)lo + 1;
}

/* ---- campaigns -------------------------------------------------------------------- */

void dy_campaign_free(dy_campaign_t *c)
{
    if (c == NULL)
        return;
    if (c->edp) {
        for (int e = 0; e < c->params.edps; e++) {
            free(c->edp[e].vids);
            free(c->edp[e].events);
        }
    }
    free(c->edp);
    c->edp = NULL;
}

int dy_campaign_generate(const dy_campaign_params_t *p, dy_campaign_t *out)
{
    if (p == NULL || out == NULL || p->population == 0 || p->edps < 1 ||
        p->reach > p->population || p->max_events < 1 || p->max_events > S_MAX_EVENTS ||
        p->reach > SIZE_MAX / 2 / sizeof(uint64_t))
        return -EINVAL;
    dy_campaign_t c = {.params = *p};
    double *cdf = s_event_cdf(p->max_events);
    c.edp = calloc((size_t)p->edps, sizeof(*c.edp));
    int rc = (cdf == NULL || c.edp == NULL) ? -ENOMEM : 0;
    for (int e = 0; rc == 0 && e < p->edps; e++) {
        dy_campaign_edp_t *edp = &c.edp[e];
        size_t r = (size_t)p->reach;
        edp->vids = malloc((r ? r : 1) * sizeof(*edp->vids));
        edp->events = malloc((r ? r : 1) * sizeof(*edp->events));
        if (edp->vids == NULL || edp->events == NULL) {
            rc = -ENOMEM;
            break;
        }
        s_rng_t rng;
        s_seed(&rng, p->seed, (uint64_t)e + 1);
        rc = s_sample(&rng, p->population, p->reach, edp->vids);
        if (rc < 0)
            break;
        edp->n = r;
        for (size_t i = 0; i < r; i++)
            edp->events[i] = s_draw_events(&rng, cdf, p->max_events);
    }
    free(cdf);
    if (rc < 0) {
        if (c.edp == NULL)
            c.params.edps = 0;
        dy_campaign_free(&c);
        return rc;
    }
    *out = c;
    return 0;
}

int dy_campaign_truth(const dy_campaign_t *c, int K, uint64_t *ret_reach, double *freq)
{
    if (c == NULL || c->edp == NULL || (freq != NULL && K < 1))
        return -EINVAL;
    int E = c->params.edps;
    size_t *pos = calloc((size_t)E, sizeof(*pos));
    uint64_t *hist = freq ? calloc((size_t)K, sizeof(*hist)) : NULL;
    if (pos == NULL || (freq != NULL && hist == NULL)) {
        free(pos);
        free(hist);
        return -ENOMEM;
    }
    /* A merge of the EDPs' ascending vid lists: each step takes the
     * smallest head and sums its events over the EDPs that have it. */
    uint64_t reach = 0;
    int rc = 0;
    for (;;) {
        uint64_t v = UINT64_MAX;
        for (int e = 0; e < E; e++)
            if (pos[e] < c->edp[e].n && c->edp[e].vids[pos[e]] < v)
                v = c->edp[e].vids[pos[e]];
        if (v == UINT64_MAX)
            break;
        uint64_t total = 0;
        for (int e = 0; e < E; e++) {
            if (pos[e] < c->edp[e].n && c->edp[e].vids[pos[e]] == v)
                total += c->edp[e].events[pos[e]++];
        }
        if (total == 0) { /* only a hand-made campaign can hold 0 events */
            rc = -EINVAL;
            break;
        }
        reach++;
        if (hist)
            hist[(total < (uint64_t)K ? total : (uint64_t)K) - 1]++;
    }
    if (rc == 0 && freq) {
        for (int f = 0; f < K; f++)
            freq[f] = reach ? (double)hist[f] / (double)reach : 0.0;
    }
    free(pos);
    free(hist);
    if (rc < 0)
        return rc;
    if (ret_reach)
        *ret_reach = reach;
    return 0;
}
