/* test_campaign.c - seeded synthetic campaigns: determinism, validity,
 * uniform sampling without replacement, natural overlap, the event law,
 * ground truth against a naive count, and speed at 10^7 people. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sketch/campaign.h"

#define S_Z_1E4 3.719016485455709 /* upper 1e-4 normal quantile */

static double s_chi2_critical(int df)
{
    double k = df, h = 2.0 / (9.0 * k);
    double c = 1.0 - h + S_Z_1E4 * sqrt(h);
    return k * c * c * c;
}

/* Timing bounds do not apply under valgrind. */
static bool s_slow_runtime(void)
{
    const char *pre = getenv("LD_PRELOAD");
    return pre != NULL && (strstr(pre, "valgrind") || strstr(pre, "vgpreload"));
}

static void s_check_valid(const dy_campaign_t *c)
{
    for (int e = 0; e < c->params.edps; e++) {
        const dy_campaign_edp_t *d = &c->edp[e];
        assert_int_equal(d->n, c->params.reach);
        for (size_t i = 0; i < d->n; i++) {
            assert_true(d->vids[i] >= 1 && d->vids[i] <= c->params.population);
            if (i > 0)
                assert_true(d->vids[i] > d->vids[i - 1]);
            assert_true(d->events[i] >= 1 && (int)d->events[i] <= c->params.max_events);
        }
    }
}

static void test_deterministic_and_valid(void **state)
{
    (void)state;
    dy_campaign_params_t p = {100000, 3, 20000, 10, 1};
    dy_campaign_t a, b, c;
    assert_int_equal(dy_campaign_generate(&p, &a), 0);
    assert_int_equal(dy_campaign_generate(&p, &b), 0);
    p.seed = 2;
    assert_int_equal(dy_campaign_generate(&p, &c), 0);
    s_check_valid(&a);
    s_check_valid(&c);
    for (int e = 0; e < 3; e++) {
        assert_memory_equal(a.edp[e].vids, b.edp[e].vids, a.edp[e].n * sizeof(uint64_t));
        assert_memory_equal(a.edp[e].events, b.edp[e].events, a.edp[e].n * sizeof(uint32_t));
        assert_memory_not_equal(a.edp[e].vids, c.edp[e].vids, a.edp[e].n * sizeof(uint64_t));
    }
    /* EDPs are different streams. */
    assert_memory_not_equal(a.edp[0].vids, a.edp[1].vids, a.edp[0].n * sizeof(uint64_t));
    dy_campaign_free(&a);
    dy_campaign_free(&b);
    dy_campaign_free(&c);
    dy_campaign_free(&c);
}

static void test_edges_and_errors(void **state)
{
    (void)state;
    dy_campaign_t c;
    dy_campaign_params_t bad[] = {
        {0, 1, 0, 1, 1}, {10, 0, 5, 1, 1}, {10, 1, 11, 1, 1}, {10, 1, 5, 0, 1},
        {10, 1, 5, (1 << 20) + 1, 1},
    };
    for (size_t i = 0; i < DY_ARRAY_LEN(bad); i++)
        assert_int_equal(dy_campaign_generate(&bad[i], &c), -EINVAL);
    assert_int_equal(dy_campaign_generate(NULL, &c), -EINVAL);

    /* Everyone reached: exactly 1..N. */
    dy_campaign_params_t all = {1000, 2, 1000, 1, 9};
    assert_int_equal(dy_campaign_generate(&all, &c), 0);
    for (int e = 0; e < 2; e++)
        for (size_t i = 0; i < 1000; i++) {
            assert_int_equal(c.edp[e].vids[i], i + 1);
            assert_int_equal(c.edp[e].events[i], 1);
        }
    uint64_t reach;
    double f[2];
    assert_int_equal(dy_campaign_truth(&c, 2, &reach, f), 0);
    assert_int_equal(reach, 1000);
    assert_true(f[0] == 0.0 && f[1] == 1.0);
    assert_int_equal(dy_campaign_truth(&c, 0, &reach, f), -EINVAL);
    /* A hand-made zero-event person is refused. */
    c.edp[1].events[5] = 0;
    c.edp[0].events[5] = 0;
    assert_int_equal(dy_campaign_truth(&c, 2, &reach, f), -EINVAL);
    dy_campaign_free(&c);

    /* Nobody reached. */
    dy_campaign_params_t none = {1000, 2, 0, 5, 9};
    assert_int_equal(dy_campaign_generate(&none, &c), 0);
    assert_int_equal(dy_campaign_truth(&c, 2, &reach, f), 0);
    assert_int_equal(reach, 0);
    assert_true(f[0] == 0.0 && f[1] == 0.0);
    dy_campaign_free(&c);

    /* A population of one. */
    dy_campaign_params_t one = {1, 3, 1, 4, 9};
    assert_int_equal(dy_campaign_generate(&one, &c), 0);
    assert_int_equal(c.edp[2].vids[0], 1);
    dy_campaign_free(&c);
}

/* Truth against a naive per-person count. */
static void test_truth_naive(void **state)
{
    (void)state;
    dy_campaign_params_t p = {5000, 4, 1500, 7, 42};
    dy_campaign_t c;
    assert_int_equal(dy_campaign_generate(&p, &c), 0);
    uint64_t *tot = calloc(p.population + 1, sizeof(*tot));
    assert_non_null(tot);
    for (int e = 0; e < p.edps; e++)
        for (size_t i = 0; i < c.edp[e].n; i++)
            tot[c.edp[e].vids[i]] += c.edp[e].events[i];
    for (int K = 1; K <= 12; K++) {
        uint64_t want_reach = 0, hist[12] = {0};
        for (uint64_t v = 1; v <= p.population; v++) {
            if (tot[v] == 0)
                continue;
            want_reach++;
            hist[(tot[v] < (uint64_t)K ? tot[v] : (uint64_t)K) - 1]++;
        }
        uint64_t reach = 0;
        double f[12];
        assert_int_equal(dy_campaign_truth(&c, K, &reach, f), 0);
        assert_int_equal(reach, want_reach);
        for (int k = 0; k < K; k++)
            assert_true(f[k] == (double)hist[k] / (double)want_reach);
    }
    uint64_t r2 = 0;
    assert_int_equal(dy_campaign_truth(&c, 0, &r2, NULL), 0);
    assert_true(r2 > 1500 && r2 < 5000);
    free(tot);
    dy_campaign_free(&c);
}

/* Uniform sampling: the union and pairwise overlaps match independent
 * uniform subsets; vids spread evenly over the population. */
static void test_overlap_and_uniformity(void **state)
{
    (void)state;
    const uint64_t N = 1000000, r = 100000;
    dy_campaign_params_t p = {N, 3, r, 10, 7};
    dy_campaign_t c;
    assert_int_equal(dy_campaign_generate(&p, &c), 0);
    uint64_t reach;
    assert_int_equal(dy_campaign_truth(&c, 1, &reach, NULL), 0);
    double want = (double)N * (1 - pow(1 - (double)r / (double)N, 3));
    assert_true(fabs((double)reach - want) < 0.005 * want);

    /* |EDP0 ∩ EDP1| ~ r²/N = 10^4 (sd about 95). */
    size_t i = 0, j = 0, inter = 0;
    while (i < c.edp[0].n && j < c.edp[1].n) {
        uint64_t a = c.edp[0].vids[i], b = c.edp[1].vids[j];
        inter += a == b;
        i += a <= b;
        j += b <= a;
    }
    assert_true(inter > 9500 && inter < 10500);

    /* 100 equal slices of the population. */
    int bins[100] = {0};
    for (size_t k = 0; k < c.edp[2].n; k++)
        bins[(c.edp[2].vids[k] - 1) * 100 / N]++;
    double chi = 0, ex = (double)r / 100;
    for (int b = 0; b < 100; b++)
        chi += (bins[b] - ex) * (bins[b] - ex) / ex;
    assert_true(chi < s_chi2_critical(99));
    dy_campaign_free(&c);
}

/* A sparse population (10^4 of 10^9, where sampling uses a hash set rather
 * than a bitmap) is just as valid and uniform. */
static void test_sparse_population(void **state)
{
    (void)state;
    const uint64_t N = 1000000000, r = 20000;
    dy_campaign_params_t p = {N, 2, r, 3, 13};
    dy_campaign_t c;
    assert_int_equal(dy_campaign_generate(&p, &c), 0);
    s_check_valid(&c);
    int bins[50] = {0};
    for (size_t k = 0; k < c.edp[0].n; k++)
        bins[(c.edp[0].vids[k] - 1) / (N / 50)]++;
    double chi = 0, ex = (double)r / 50;
    for (int b = 0; b < 50; b++)
        chi += (bins[b] - ex) * (bins[b] - ex) / ex;
    assert_true(chi < s_chi2_critical(49));
    uint64_t reach;
    assert_int_equal(dy_campaign_truth(&c, 1, &reach, NULL), 0);
    assert_true(reach >= 2 * r - 5 && reach <= 2 * r); /* overlap ~ r²/N = 0.4 */
    dy_campaign_free(&c);
}

/* Events: P(k) ∝ 1/k on [1, max_events]. */
static void test_event_law(void **state)
{
    (void)state;
    dy_campaign_params_t p = {2000000, 3, 200000, 10, 11};
    dy_campaign_t c;
    assert_int_equal(dy_campaign_generate(&p, &c), 0);
    double hist[10] = {0}, n = 0;
    for (int e = 0; e < 3; e++)
        for (size_t i = 0; i < c.edp[e].n; i++, n++)
            hist[c.edp[e].events[i] - 1]++;
    double z = 0;
    for (int k = 1; k <= 10; k++)
        z += 1.0 / k;
    double chi = 0;
    for (int k = 1; k <= 10; k++) {
        double ex = n / k / z;
        chi += (hist[k - 1] - ex) * (hist[k - 1] - ex) / ex;
    }
    assert_true(chi < s_chi2_critical(9));
    assert_true(hist[0] > 3 * hist[9]); /* skewed towards small counts */
    dy_campaign_free(&c);
}

static void test_speed(void **state)
{
    (void)state;
    dy_campaign_params_t p = {10000000, 3, 100000, 21, 5};
    dy_campaign_t c;
    double t0 = dy_now();
    assert_int_equal(dy_campaign_generate(&p, &c), 0);
    uint64_t reach;
    double f[10];
    assert_int_equal(dy_campaign_truth(&c, 10, &reach, f), 0);
    double t1 = dy_now();
    s_check_valid(&c);
    dy_campaign_free(&c);

    dy_campaign_params_t big = {10000000, 3, 1000000, 21, 5};
    double t2 = dy_now();
    assert_int_equal(dy_campaign_generate(&big, &c), 0);
    assert_int_equal(dy_campaign_truth(&c, 10, &reach, f), 0);
    double t3 = dy_now();
    dy_campaign_free(&c);
    printf("# 3 x 10^5 of 10^7: %.3f s; 3 x 10^6 of 10^7: %.3f s\n", t1 - t0, t3 - t2);
    if (!s_slow_runtime()) {
        assert_true(t1 - t0 < 1.0);
        assert_true(t3 - t2 < 5.0);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_deterministic_and_valid),
        cmocka_unit_test(test_edges_and_errors),
        cmocka_unit_test(test_truth_naive),
        cmocka_unit_test(test_overlap_and_uniformity),
        cmocka_unit_test(test_sparse_population),
        cmocka_unit_test(test_event_law),
        cmocka_unit_test(test_speed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
