/* sketch/fvec.c - the HMSS frequency vector of CRYPTO.md §8.1 (EDP side).
 *
 * VIDs 1..P are ranked by (h(vid), vid), h = the first 8 bytes of
 * SHA-256(vid as 8 B BE || 21858450 as 8 B BE) read big-endian, unsigned
 * [clean: the reference uses FarmHash compared as a signed long].
 *
 * The window [ref].  As the reference's FrequencyVectorBuilder, the
 * sampling interval [start, start+width) of the unit interval maps to ranks
 *     lo = (int)((float)P * start),  hi = (int)((float)P * (start + width))
 * (hi exclusive; products and the sum rounded to float, as Kotlin's
 * Int * Float does, so that 0.9f·1000 gives 900 and R matches the
 * reference), with the primary range lo..min(hi, P)−1 first and, when
 * hi > P, the wrapped range 0..hi−P−1 after it.  Adjacent intervals thus
 * partition the ranks.  R = hi − lo, and the vid of rank (lo + j) mod P sits
 * at position j.  One difference [clean]: R is at least 1, where the
 * reference would build an empty vector for width·P < 1.
 *
 * Ranking: hashes are computed in parallel (dy_par_for), vids are bucketed
 * by the top bits of their hash (a counting sort), and each small bucket is
 * sorted by (h, vid).  Memory: 16 B per person while building, 4 B after.
 */
#include "fvec.h"

#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

#include "par.h"

#define S_SALT 21858450ULL
#define S_MAX_POPULATION 0x7fffffffULL /* the reference's Int.MAX_VALUE bound */

static void s_be64(uint8_t *out, uint64_t v)
{
    for (int i = 7; i >= 0; i--) {
        out[i] = (uint8_t)v;
        v >>= 8;
    }
}

/* h(vid) with a caller's digest context (NULL: one-shot). */
static int s_hash(EVP_MD_CTX *ctx, const EVP_MD *md, uint64_t vid, uint64_t *ret)
{
    uint8_t in[16], out[EVP_MAX_MD_SIZE];
    unsigned int outlen = 0;
    s_be64(in, vid);
    s_be64(in + 8, S_SALT);
    int ok = ctx ? EVP_DigestInit_ex(ctx, md, NULL) == 1 &&
                       EVP_DigestUpdate(ctx, in, sizeof(in)) == 1 &&
                       EVP_DigestFinal_ex(ctx, out, &outlen) == 1
                 : EVP_Digest(in, sizeof(in), out, &outlen, md, NULL) == 1;
    if (!ok || outlen < 8)
        return -EIO;
    uint64_t h = 0;
    for (int i = 0; i < 8; i++)
        h = h << 8 | out[i];
    *ret = h;
    return 0;
}

uint64_t dy_fvec_vid_hash(uint64_t vid)
{
    uint64_t h = 0;
    /* No error return in the signature: a failing SHA-256 means a broken
     * libcrypto, which no caller can work around. */
    if (s_hash(NULL, EVP_sha256(), vid, &h) < 0)
        abort();
    return h;
}

typedef struct {
    uint64_t *h;    /* borrowed: h[vid-1] */
    const EVP_MD *md;
} s_hash_job_t;

static int s_hash_range(void *arg, size_t begin, size_t end, int thread)
{
    s_hash_job_t *job = arg;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (ctx == NULL)
        return -ENOMEM;
    int rc = 0;
    for (size_t i = begin; i < end && rc == 0; i++)
        rc = s_hash(ctx, job->md, (uint64_t)i + 1, &job->h[i]);
    EVP_MD_CTX_free(ctx);
    return rc;
}

typedef struct {
    uint64_t h;
    uint32_t vid;
} s_pair_t;

static int s_cmp_pair(const void *pa, const void *pb)
{
    const s_pair_t *a = pa, *b = pb;
    if (a->h != b->h)
        return a->h < b->h ? -1 : 1;
    return (a->vid > b->vid) - (a->vid < b->vid);
}

/* order[rank] = vid for ranks 0..P-1 by (h, vid). */
static int s_rank(const uint64_t *h, uint64_t P, uint32_t *order)
{
    int bits = 1;
    while (bits < 24 && (P >> (bits + 3)) != 0)
        bits++;
    size_t nb = (size_t)1 << bits;
    size_t *start = calloc(nb + 1, sizeof(*start));
    if (start == NULL)
        return -ENOMEM;
    for (uint64_t i = 0; i < P; i++)
        start[(h[i] >> (64 - bits)) + 1]++;
    size_t maxb = 0;
    for (size_t b = 0; b < nb; b++) {
        maxb = start[b + 1] > maxb ? start[b + 1] : maxb;
        start[b + 1] += start[b];
    }
    /* Scatter in vid order, so buckets hold ascending vids. */
    size_t *fill = malloc(nb * sizeof(*fill));
    s_pair_t *tmp = malloc((maxb ? maxb : 1) * sizeof(*tmp));
    if (fill == NULL || tmp == NULL) {
        free(start);
        free(fill);
        free(tmp);
        return -ENOMEM;
    }
    memcpy(fill, start, nb * sizeof(*fill));
    for (uint64_t i = 0; i < P; i++)
        order[fill[h[i] >> (64 - bits)]++] = (uint32_t)(i + 1);
    for (size_t b = 0; b < nb; b++) {
        size_t n = start[b + 1] - start[b];
        if (n < 2)
            continue;
        for (size_t k = 0; k < n; k++) {
            uint32_t vid = order[start[b] + k];
            tmp[k] = (s_pair_t){.h = h[vid - 1], .vid = vid};
        }
        qsort(tmp, n, sizeof(*tmp), s_cmp_pair);
        for (size_t k = 0; k < n; k++)
            order[start[b] + k] = tmp[k].vid;
    }
    free(start);
    free(fill);
    free(tmp);
    return 0;
}

int dy_fvec_index_init(dy_fvec_index_t *ix, uint64_t population, float start, float width)
{
    if (ix == NULL || population == 0 || population > S_MAX_POPULATION || !(width > 0.0f) ||
        width > 1.0f || !(start >= 0.0f) || start > 1.0f)
        return -EINVAL;
    uint64_t P = population;
    /* Assignments to float discard any excess precision (C11 5.2.4.2.2). */
    float end = start + width;
    float lo_f = (float)P * start;
    float hi_f = (float)P * end;
    uint64_t lo = (uint64_t)lo_f;
    uint64_t hi = (uint64_t)hi_f;
    uint64_t R = hi > lo ? hi - lo : 1;
    if (R > P)
        R = P;
    lo %= P; /* start = 1.0 begins at rank 0 */

    uint64_t *h = malloc(P * sizeof(*h));
    uint32_t *order = malloc(P * sizeof(*order));
    uint32_t *pos = malloc(P * sizeof(*pos));
    int rc = (h && order && pos) ? 0 : -ENOMEM;
    if (rc == 0) {
        /* An explicitly fetched digest skips the per-init implicit fetch
         * that EVP_sha256() costs with OpenSSL 3. */
        EVP_MD *md = EVP_MD_fetch(NULL, "SHA256", NULL);
        s_hash_job_t job = {.h = h, .md = md};
        rc = md ? dy_par_for(dy_par_default_threads(), P, 4096, s_hash_range, &job) : -EIO;
        EVP_MD_free(md);
    }
    if (rc == 0)
        rc = s_rank(h, P, order);
    free(h);
    if (rc < 0) {
        free(order);
        free(pos);
        return rc;
    }
    memset(pos, 0xff, P * sizeof(*pos));
    for (uint64_t j = 0; j < R; j++)
        pos[order[(lo + j) % P] - 1] = (uint32_t)j;
    free(order);
    ix->population = P;
    ix->registers = (size_t)R;
    ix->pos = pos;
    return 0;
}

void dy_fvec_index_free(dy_fvec_index_t *ix)
{
    if (ix == NULL)
        return;
    free(ix->pos);
    ix->pos = NULL;
    ix->registers = 0;
    ix->population = 0;
}

int dy_fvec_build(const dy_fvec_index_t *ix, const dy_campaign_edp_t *edp, uint32_t Ke,
                  uint32_t *out)
{
    if (ix == NULL || ix->pos == NULL || edp == NULL || out == NULL || Ke < 1)
        return -EINVAL;
    for (size_t i = 0; i < edp->n; i++)
        if (edp->vids[i] < 1 || edp->vids[i] > ix->population)
            return -EINVAL;
    memset(out, 0, ix->registers * sizeof(*out));
    for (size_t i = 0; i < edp->n; i++) {
        uint32_t p = ix->pos[edp->vids[i] - 1];
        if (p != UINT32_MAX)
            out[p] = edp->events[i] < Ke ? edp->events[i] : Ke;
    }
    return 0;
}
