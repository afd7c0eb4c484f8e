/* par.c - parallel for and parallel block sort (see par.h). */
#include "par.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct {
    dy_par_fn fn;
    void *arg;
    size_t begin, end;
    int thread;
    int rc;
} s_range_t;

static void *s_run(void *p)
{
    s_range_t *r = p;
    r->rc = r->fn(r->arg, r->begin, r->end, r->thread);
    return NULL;
}

int dy_par_for(int threads, size_t n, size_t grain, dy_par_fn fn, void *arg)
{
    if (grain == 0)
        grain = 1;
    if (threads < 1)
        threads = 1;
    size_t units = (n + grain - 1) / grain;
    if ((size_t)threads > units)
        threads = units ? (int)units : 1;
    if (threads == 1)
        return fn(arg, 0, n, 0);

    s_range_t *r = calloc((size_t)threads, sizeof(*r));
    pthread_t *tid = calloc((size_t)threads, sizeof(*tid));
    if (r == NULL || tid == NULL) {
        free(r);
        free(tid);
        return -ENOMEM;
    }
    size_t per = units / (size_t)threads, extra = units % (size_t)threads, at = 0;
    for (int t = 0; t < threads; t++) {
        size_t u = per + ((size_t)t < extra ? 1 : 0);
        r[t] = (s_range_t){fn, arg, at, at + u * grain > n ? n : at + u * grain, t, 0};
        at = r[t].end;
    }
    int started = 1;
    for (int t = 1; t < threads; t++, started++)
        if (pthread_create(&tid[t], NULL, s_run, &r[t]) != 0) {
            /* Run what could not be started here, in order. */
            for (int u = t; u < threads; u++)
                s_run(&r[u]);
            break;
        }
    s_run(&r[0]);
    for (int t = 1; t < started; t++)
        pthread_join(tid[t], NULL);
    int rc = 0;
    for (int t = 0; t < threads && rc == 0; t++)
        rc = r[t].rc;
    free(r);
    free(tid);
    return rc;
}

int dy_par_default_threads(void)
{
    const char *env = getenv("DY_THREADS");
    if (env && *env) {
        int t = atoi(env);
        if (t >= 1 && t <= 256)
            return t;
    }
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n >= 1 ? (int)n : 1;
}

/* ---- sort -------------------------------------------------------------- */

typedef struct {
    unsigned char *data;
    size_t size;
    unsigned char **idx; /* pointers into data */
    unsigned char **tmp;
} s_sort_t;


static int s_cmp_ptr(const void *a, const void *b, void *size)
{
    return memcmp(*(unsigned char *const *)a, *(unsigned char *const *)b, *(size_t *)size);
}

static int s_sort_range(void *arg, size_t begin, size_t end, int thread)
{
    (void)thread;
    s_sort_t *s = arg;
    qsort_r(s->idx + begin, end - begin, sizeof(*s->idx), s_cmp_ptr, &s->size);
    return 0;
}

static void s_merge(unsigned char **dst, unsigned char **a, size_t na, unsigned char **b,
                    size_t nb, size_t size)
{
    size_t i = 0, j = 0, k = 0;
    while (i < na && j < nb)
        dst[k++] = memcmp(a[i], b[j], size) <= 0 ? a[i++] : b[j++];
    while (i < na)
        dst[k++] = a[i++];
    while (j < nb)
        dst[k++] = b[j++];
}

int dy_sort_blocks(unsigned char *data, size_t n, size_t size, int threads)
{
    if (n < 2)
        return 0;
    s_sort_t s = {data, size, malloc(n * sizeof(*s.idx)), malloc(n * sizeof(*s.tmp))};
    unsigned char *copy = malloc(n * size);
    if (s.idx == NULL || s.tmp == NULL || copy == NULL) {
        free(s.idx);
        free(s.tmp);
        free(copy);
        return -ENOMEM;
    }
    for (size_t i = 0; i < n; i++)
        s.idx[i] = data + i * size;
    if (threads < 1)
        threads = 1;
    if ((size_t)threads > n)
        threads = (int)n;
    /* Sort `threads` contiguous runs in parallel, then merge pairwise. */
    size_t *bounds = calloc((size_t)threads + 1, sizeof(*bounds));
    if (bounds == NULL) {
        free(s.idx);
        free(s.tmp);
        free(copy);
        return -ENOMEM;
    }
    size_t per = n / (size_t)threads, extra = n % (size_t)threads;
    for (int t = 0; t < threads; t++)
        bounds[t + 1] = bounds[t] + per + ((size_t)t < extra ? 1 : 0);
    /* dy_par_for splits identically for grain 1, so runs match bounds. */
    int rc = dy_par_for(threads, n, 1, s_sort_range, &s);
    if (rc == 0) {
        int runs = threads;
        while (runs > 1) {
            int out = 0;
            for (int r = 0; r < runs; r += 2, out++) {
                size_t b0 = bounds[r], b1 = bounds[r + 1];
                size_t b2 = r + 1 < runs ? bounds[r + 2] : b1;
                s_merge(s.tmp + b0, s.idx + b0, b1 - b0, s.idx + b1, b2 - b1, size);
                bounds[out] = b0;
            }
            bounds[out] = n;
            unsigned char **sw = s.idx;
            s.idx = s.tmp;
            s.tmp = sw;
            runs = out;
        }
        for (size_t i = 0; i < n; i++)
            memcpy(copy + i * size, s.idx[i], size);
        memcpy(data, copy, n * size);
    }
    free(bounds);
    free(s.idx);
    free(s.tmp);
    free(copy);
    return rc;
}
