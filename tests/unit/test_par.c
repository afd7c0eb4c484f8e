/* test_par.c - the parallel for and the parallel block sort. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dy.h"
#include "par.h"

typedef struct {
    uint32_t *hits;
    int max_thread;
    int fail_at; /* range beginning at which to fail, or -1 */
} s_for_t;

static int s_mark(void *arg, size_t begin, size_t end, int thread)
{
    s_for_t *f = arg;
    if (f->fail_at >= 0 && begin == (size_t)f->fail_at)
        return -EIO;
    if (thread > f->max_thread)
        f->max_thread = thread; /* benign race: only ever grows */
    for (size_t i = begin; i < end; i++)
        f->hits[i]++;
    return 0;
}

static void test_for_covers_once(void **state)
{
    (void)state;
    size_t sizes[] = {0, 1, 2, 7, 1000, 1025};
    int threads[] = {1, 2, 3, 8};
    for (size_t s = 0; s < DY_ARRAY_LEN(sizes); s++)
        for (size_t t = 0; t < DY_ARRAY_LEN(threads); t++)
            for (size_t grain = 0; grain < 300; grain += 128) {
                s_for_t f = {calloc(sizes[s] + 1, sizeof(uint32_t)), 0, -1};
                assert_int_equal(dy_par_for(threads[t], sizes[s], grain, s_mark, &f), 0);
                for (size_t i = 0; i < sizes[s]; i++)
                    assert_int_equal(f.hits[i], 1);
                assert_true(f.max_thread < threads[t]);
                free(f.hits);
            }
}

static void test_for_error(void **state)
{
    (void)state;
    s_for_t f = {calloc(100, sizeof(uint32_t)), 0, 50};
    assert_int_equal(dy_par_for(2, 100, 1, s_mark, &f), -EIO);
    free(f.hits);
}

static uint64_t s_rng = 88172645463325252ULL;
static uint64_t s_next(void)
{
    s_rng ^= s_rng << 13;
    s_rng ^= s_rng >> 7;
    s_rng ^= s_rng << 17;
    return s_rng;
}

static int s_cmp(const void *a, const void *b, void *size)
{
    return memcmp(a, b, *(size_t *)size);
}

static void test_sort_matches_qsort(void **state)
{
    (void)state;
    size_t sizes[] = {1, 5, 130, 520};
    size_t counts[] = {0, 1, 2, 3, 100, 4097};
    for (size_t s = 0; s < DY_ARRAY_LEN(sizes); s++)
        for (size_t c = 0; c < DY_ARRAY_LEN(counts); c++)
            for (int threads = 1; threads <= 5; threads += 2) {
                size_t n = counts[c], sz = sizes[s];
                unsigned char *a = malloc(n * sz + 1), *b = malloc(n * sz + 1);
                for (size_t i = 0; i < n * sz; i++)
                    a[i] = (unsigned char)(s_next() % 4); /* many ties */
                memcpy(b, a, n * sz);
                assert_int_equal(dy_sort_blocks(a, n, sz, threads), 0);
                qsort_r(b, n, sz, s_cmp, &sz);
                assert_true(n == 0 || memcmp(a, b, n * sz) == 0);
                free(a);
                free(b);
            }
}

static void test_default_threads(void **state)
{
    (void)state;
    setenv("DY_THREADS", "3", 1);
    assert_int_equal(dy_par_default_threads(), 3);
    setenv("DY_THREADS", "0", 1);
    assert_true(dy_par_default_threads() >= 1);
    unsetenv("DY_THREADS");
    assert_true(dy_par_default_threads() >= 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_for_covers_once),
        cmocka_unit_test(test_for_error),
        cmocka_unit_test(test_sort_matches_qsort),
        cmocka_unit_test(test_default_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
