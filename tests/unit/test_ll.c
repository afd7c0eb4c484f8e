/* test_ll.c - the Liquid Legions sketch (CRYPTO.md §3), the estimator with
 * every figure of §6.1, and the plaintext answer of §6.2 / §4.8. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "sketch/ll.h"

/* Upper 1e-4 quantile of the standard normal, for Wilson-Hilferty. */
#define S_Z_1E4 3.719016485455709

static double s_chi2_critical(int df)
{
    double k = df, h = 2.0 / (9.0 * k);
    double c = 1.0 - h + S_Z_1E4 * sqrt(h);
    return k * c * c * c;
}

static uint64_t s_splitmix(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* ---- fingerprints and register indices ----------------------------------- */

static void test_fingerprint_kat(void **state)
{
    (void)state;
    /* From `printf 'AnySketchFingerprint:1:Index' | sha256sum`, first 8 bytes. */
    assert_true(dy_ll_fingerprint(1, "Index") == 0xd7ebcaf0ac9663a5ULL);
    assert_true(dy_ll_fingerprint(12345, "SamplingIndicator") == 0x7adeaa88787eba6cULL);
    assert_true(dy_ll_fingerprint(1, "SamplingIndicator") != dy_ll_fingerprint(1, "Index"));
}

static void test_register_index_edges(void **state)
{
    (void)state;
    assert_int_equal(dy_ll_register_index(12, 100000, 0), 0);
    /* u rounds to 1.0 for fp >= 2^64 - 2^10: clamped to m - 1 [clean]. */
    assert_int_equal(dy_ll_register_index(12, 100000, UINT64_MAX), 99999);
    assert_int_equal(dy_ll_register_index(12, 100000, UINT64_MAX - 1023), 99999);
    assert_int_equal(dy_ll_register_index(5.6, 1000000, UINT64_MAX), 999999);
    assert_int_equal(dy_ll_register_index(12, 1, 1ULL << 63), 0);
    /* The median register: u = 1/2 gives x = 1 - ln((e^a + 1)/2)/a. */
    double a = 12, x = 1 - log((exp(a) + 1) / 2) / a;
    assert_int_equal(dy_ll_register_index(a, 100000, 1ULL << 63), (int64_t)(x * 100000));
    /* Monotone in fp. */
    int64_t prev = 0;
    for (uint64_t fp = 0; fp < UINT64_MAX - (1ULL << 52); fp += 1ULL << 52) {
        int64_t i = dy_ll_register_index(a, 1000, fp);
        assert_true(i >= prev && i < 1000);
        prev = i;
    }
}

/* Pr[i] = (e^(-a i/m) - e^(-a(i+1)/m)) / (1 - e^(-a)), checked by chi-squared. */
static void test_register_index_distribution(void **state)
{
    (void)state;
    const double a = 5.6;
    const int m = 64, draws = 400000;
    int hist[64] = {0};
    uint64_t seed = 7;
    for (int k = 0; k < draws; k++)
        hist[dy_ll_register_index(a, m, s_splitmix(&seed))]++;
    double chi = 0, exp_acc = 0, obs_acc = 0;
    int df = -1;
    for (int i = 0; i < m; i++) {
        double pr = (exp(-a * i / m) - exp(-a * (i + 1) / m)) / (1 - exp(-a));
        exp_acc += pr * draws;
        obs_acc += hist[i];
        if (exp_acc >= 5 || i == m - 1) {
            chi += (obs_acc - exp_acc) * (obs_acc - exp_acc) / exp_acc;
            df++;
            exp_acc = obs_acc = 0;
        }
    }
    assert_true(df > 30);
    assert_true(chi < s_chi2_critical(df));
    /* The test has teeth: a = 6 instead of 5.6 is rejected. */
    double chi6 = 0;
    for (int i = 0; i < m; i++) {
        double pr = (exp(-6.0 * i / m) - exp(-6.0 * (i + 1) / m)) / (1 - exp(-6.0));
        chi6 += (hist[i] - pr * draws) * (hist[i] - pr * draws) / (pr * draws);
    }
    assert_true(chi6 > s_chi2_critical(m - 1));
}

/* ---- sketches --------------------------------------------------------------- */

static void test_sketch_merge_rules(void **state)
{
    (void)state;
    dy_ll_sketch_t sk;
    assert_int_equal(dy_ll_sketch_init(&sk, 1.0, 10), -EINVAL);
    assert_int_equal(dy_ll_sketch_init(&sk, 12, 0), -EINVAL);
    assert_int_equal(dy_ll_sketch_init(&sk, 12, 100), 0);
    assert_int_equal(dy_ll_sketch_put(&sk, 100, 1, 1), -EINVAL);
    assert_int_equal(dy_ll_sketch_put(&sk, -1, 1, 1), -EINVAL);
    assert_int_equal(dy_ll_sketch_put(&sk, 5, 1, 0), -EINVAL);
    /* In any order: 50 (7,2)+(7,3); 10 (4,1)+(5,1); 20 (9,1)+(9,1)+(8,1);
     * 30 destroyed then (3,1); 40 alone. */
    assert_int_equal(dy_ll_sketch_put(&sk, 50, 7, 2), 0);
    assert_int_equal(dy_ll_sketch_put(&sk, 20, 9, 1), 0);
    assert_int_equal(dy_ll_sketch_put(&sk, 10, 4, 1), 0);
    assert_int_equal(dy_ll_sketch_put(&sk, 30, 0, 1), 0);
    assert_int_equal(dy_ll_sketch_put(&sk, 40, 6, 4), 0);
    assert_int_equal(dy_ll_sketch_put(&sk, 20, 9, 1), 0);
    assert_int_equal(dy_ll_sketch_put(&sk, 10, 5, 1), 0);
    assert_int_equal(dy_ll_sketch_put(&sk, 50, 7, 3), 0);
    assert_int_equal(dy_ll_sketch_put(&sk, 30, 3, 1), 0);
    assert_int_equal(dy_ll_sketch_put(&sk, 20, 8, 1), 0);
    assert_int_equal(dy_ll_sketch_finish(&sk), 0);
    assert_int_equal(sk.n, 5);
    const int64_t idx[5] = {10, 20, 30, 40, 50};
    const uint64_t key[5] = {0, 0, 0, 6, 7};
    for (size_t i = 0; i < 5; i++) {
        assert_int_equal(sk.regs[i].index, idx[i]);
        assert_int_equal(sk.regs[i].key, key[i]);
    }
    assert_int_equal(sk.regs[3].count, 4);
    assert_int_equal(sk.regs[4].count, 5);
    /* finish is idempotent. */
    assert_int_equal(dy_ll_sketch_finish(&sk), 0);
    assert_int_equal(sk.n, 5);
    dy_ll_sketch_free(&sk);
    assert_null(sk.regs);
    dy_ll_sketch_free(&sk);
}

static void test_sketch_add_vid(void **state)
{
    (void)state;
    dy_ll_sketch_t sk;
    assert_int_equal(dy_ll_sketch_init(&sk, 12, 100000), 0);
    assert_int_equal(dy_ll_sketch_add_vid(&sk, 42, 0), -EINVAL);
    /* The same person twice: same index and key, so the counts add. */
    assert_int_equal(dy_ll_sketch_add_vid(&sk, 42, 2), 0);
    assert_int_equal(dy_ll_sketch_add_vid(&sk, 42, 3), 0);
    for (uint64_t v = 1000; v < 3000; v++)
        assert_int_equal(dy_ll_sketch_add_vid(&sk, v, 1 + v % 4), 0);
    assert_int_equal(dy_ll_sketch_finish(&sk), 0);
    int64_t i42 = dy_ll_register_index(12, 100000, dy_ll_fingerprint(42, "Index"));
    uint64_t k42 = dy_ll_fingerprint(42, "SamplingIndicator") % DY_LL_KEY_SPACE + 1;
    bool found = false;
    for (size_t i = 0; i < sk.n; i++) {
        assert_true(sk.regs[i].index >= 0 && sk.regs[i].index < 100000);
        assert_true(sk.regs[i].key <= DY_LL_KEY_SPACE);
        if (i > 0)
            assert_true(sk.regs[i].index > sk.regs[i - 1].index);
        if (sk.regs[i].index == i42) {
            found = true;
            if (sk.regs[i].key != 0) { /* unless another vid collided */
                assert_int_equal(sk.regs[i].key, k42);
                assert_true(sk.regs[i].count >= 5);
            }
        }
    }
    assert_true(found);
    /* 2001 people in 10^5 registers with a = 12: a few collide, most do not. */
    assert_true(sk.n > 1800 && sk.n < 2001);
    dy_ll_sketch_free(&sk);
}

/* ---- the estimator ------------------------------------------------------------ */

static void test_e1_values(void **state)
{
    (void)state;
    /* §6.1, to full double precision (shortest round-trip representations). */
    assert_true(dy_ll_e1(1e-6) == 13.23829589306249);
    assert_true(dy_ll_e1(0.5) == 0.5597735947761607);
    assert_true(dy_ll_e1(1) == 0.21938393439551984);
    assert_true(dy_ll_e1(2.5) == 0.024914917870269684);
    assert_true(dy_ll_e1(12) == 4.751081824672496e-07);
    assert_true(dy_ll_e1(50) == 3.78326402955046e-24);
    /* Above 100, only the first asymptotic term (libstdc++'s quirk). */
    assert_true(dy_ll_e1(150) == exp(-150.0) / 150.0);
    assert_true(isnan(dy_ll_e1(0)));
    assert_true(isnan(dy_ll_e1(-1)));
}

static void test_expected(void **state)
{
    (void)state;
    assert_int_equal(dy_ll_expected(12, 100000, 0), 0);
    assert_int_equal(dy_ll_expected(12, 100000, 14474), 10000);
    assert_int_equal(dy_ll_expected(12, 100000, 14475), 10001);
    assert_int_equal(dy_ll_expected(12, 100000, 14476), 10001);
    assert_int_equal(dy_ll_expected(12, 1000000, 144723), 100000);
    assert_int_equal(dy_ll_expected(12, 1000000, 144724), 100001);
    /* E is the continuum form of sum_i (1 - e^(-c p_i)); at c = 14475 that
     * sum is 10001.35. */
    const double a = 12, m = 100000, c = 14475;
    double sum = 0;
    for (int i = 0; i < 100000; i++) {
        double p = (exp(-a * i / m) - exp(-a * (i + 1) / m)) / (1 - exp(-a));
        sum += -expm1(-c * p);
    }
    assert_true(fabs(sum - 10001.35) < 0.005);
    /* E is non-decreasing. */
    uint64_t prev = 0;
    for (uint64_t x = 1; x < 200000; x += 97) {
        uint64_t e = dy_ll_expected(12, 100000, x);
        assert_true(e >= prev && e < 100000);
        prev = e;
    }
}

typedef struct {
    double a;
    int64_t m;
    uint64_t active;
    float w;
    uint64_t invert;
    int64_t reach;
} s_est_case_t;

static void test_invert_table(void **state)
{
    (void)state;
    static const s_est_case_t cases[] = {
        {12, 100000, 10000, 0.5f, 14475, 28950},
        {12, 1000000, 100000, 0.5f, 144724, 289448},
        {12, 100000, 10000, 0.1f, 14475, 144749},
        {12, 100000, 0, 1, 1, 1},
        {12, 100000, 1, 1, 2, 2},
        {12, 100000, 2, 1, 4, 4},
        {12, 100000, 4, 1, 5, 5},
        {12, 100000, 10, 1, 11, 11},
        {12, 100, 50, 1, 2048, 2048},
        {12, 100, 99, 1, 2097152, 2097152},
        {5.6, 1000000, 1000, 1, 1003, 1003},
        {5.6, 1000000, 50000, 1, 53827, 53827},
        {5.6, 1000000, 500000, 1, 1701247, 1701247},
        {5.6, 1000000, 900000, 1, 24047174, 24047174},
        {23, 330000, 100, 1, 101, 101},
        {23, 330000, 100000, 1, 8571084, 8571084},
        {10, 1000, 500, 1, 8448, 8448},
        {2, 1000, 999, 1, 16384, 16384},
        {1.5, 10, 5, 1, 8, 8},
    };
    for (size_t i = 0; i < DY_ARRAY_LEN(cases); i++) {
        const s_est_case_t *t = &cases[i];
        uint64_t inv = 0;
        int64_t reach = 0;
        assert_int_equal(dy_ll_invert(t->a, t->m, t->active, &inv), 0);
        if (inv != t->invert)
            fail_msg("case %zu: invert %llu, want %llu", i, (unsigned long long)inv,
                     (unsigned long long)t->invert);
        assert_int_equal(dy_ll_estimate(t->a, t->m, t->active, t->w, &reach), 0);
        if (reach != t->reach)
            fail_msg("case %zu: reach %lld, want %lld", i, (long long)reach,
                     (long long)t->reach);
    }
}

static void test_estimate_errors(void **state)
{
    (void)state;
    int64_t r = -7;
    uint64_t inv;
    assert_int_equal(dy_ll_estimate(1.0, 1000, 10, 1, &r), -EINVAL);
    assert_int_equal(dy_ll_estimate(0.5, 1000, 10, 1, &r), -EINVAL);
    assert_int_equal(dy_ll_estimate(12, 1000, 1000, 1, &r), -EINVAL);
    assert_int_equal(dy_ll_estimate(12, 1000, 2000, 1, &r), -EINVAL);
    assert_int_equal(dy_ll_estimate(12, 0, 0, 1, &r), -EINVAL);
    assert_int_equal(dy_ll_estimate(12, 1000, 10, 0.0f, &r), -EINVAL);
    assert_int_equal(dy_ll_estimate(12, 1000, 10, -0.5f, &r), -EINVAL);
    assert_int_equal(dy_ll_estimate(12, 1000, 10, 1.5f, &r), -EINVAL);
    assert_int_equal(dy_ll_estimate(12, 1000, 10, NAN, &r), -EINVAL);
    assert_int_equal(dy_ll_invert(1.0, 1000, 10, &inv), -EINVAL);
    assert_int_equal(r, -7);
    /* Saturation: reaching m - 1 active registers of 10^15 needs more than
     * 2^62 people, where the reference overflows. */
    assert_int_equal(dy_ll_invert(12, 1000000000000000LL, 999999999999999ULL, &inv), -ERANGE);
    assert_int_equal(dy_ll_estimate(12, 1000000000000000LL, 999999999999999ULL, 1, &r), -ERANGE);
    assert_int_equal(r, -7);
    /* The top of the table still works: m - 1 of 100. */
    assert_int_equal(dy_ll_estimate(12, 100, 99, 1, &r), 0);
}

/* ---- the plaintext answer ----------------------------------------------------- */

/* §4.8: EDP A (3, 11, 1), (7, 12, 2), (9, 13, 1); EDP B (3, 11, 4), (7, 99, 1)
 * and destroyed register 15.  Reach 5; frequency {0.5, 0, 0.5} with K = 3. */
static void test_plaintext_worked_example(void **state)
{
    (void)state;
    dy_ll_sketch_t A, B;
    assert_int_equal(dy_ll_sketch_init(&A, 12, 100000), 0);
    assert_int_equal(dy_ll_sketch_init(&B, 12, 100000), 0);
    assert_int_equal(dy_ll_sketch_put(&A, 3, 11, 1), 0);
    assert_int_equal(dy_ll_sketch_put(&A, 7, 12, 2), 0);
    assert_int_equal(dy_ll_sketch_put(&A, 9, 13, 1), 0);
    assert_int_equal(dy_ll_sketch_put(&B, 3, 11, 4), 0);
    assert_int_equal(dy_ll_sketch_put(&B, 7, 99, 1), 0);
    assert_int_equal(dy_ll_sketch_put(&B, 15, 0, 1), 0);
    assert_int_equal(dy_ll_sketch_finish(&A), 0);
    assert_int_equal(dy_ll_sketch_finish(&B), 0);
    const dy_ll_sketch_t *sks[2] = {&A, &B};
    int64_t reach = 0;
    uint64_t active = 0;
    double freq[3] = {-1, -1, -1};
    assert_int_equal(dy_ll_plaintext(sks, 2, 3, 1.0f, &reach, freq, &active), 0);
    assert_int_equal(active, 4);
    assert_int_equal(reach, 5);
    assert_true(freq[0] == 0.5 && freq[1] == 0.0 && freq[2] == 0.5);
    /* K = 10: the summed 5 lands in bucket 5. */
    double f10[10];
    assert_int_equal(dy_ll_plaintext(sks, 2, 10, 1.0f, &reach, f10, NULL), 0);
    for (int f = 0; f < 10; f++)
        assert_true(f10[f] == (f == 0 || f == 4 ? 0.5 : 0.0));
    /* Reach only, and width 0.5. */
    assert_int_equal(dy_ll_plaintext(sks, 2, 0, 0.5f, &reach, NULL, NULL), 0);
    assert_int_equal(reach, 10);
    /* Order does not matter, nor does finishing. */
    const dy_ll_sketch_t *rev[2] = {&B, &A};
    assert_int_equal(dy_ll_plaintext(rev, 2, 3, 1.0f, &reach, freq, &active), 0);
    assert_int_equal(reach, 5);
    assert_true(freq[0] == 0.5 && freq[2] == 0.5);
    /* Errors: mismatched sketches, K < 1 with freq, no sketches. */
    dy_ll_sketch_t C;
    assert_int_equal(dy_ll_sketch_init(&C, 12, 1000), 0);
    const dy_ll_sketch_t *bad[2] = {&A, &C};
    assert_int_equal(dy_ll_plaintext(bad, 2, 3, 1.0f, &reach, freq, NULL), -EINVAL);
    assert_int_equal(dy_ll_plaintext(sks, 2, 0, 1.0f, &reach, freq, NULL), -EINVAL);
    assert_int_equal(dy_ll_plaintext(sks, 0, 3, 1.0f, &reach, freq, NULL), -EINVAL);
    /* Every group destroyed: frequency all zero, reach still counted. */
    assert_int_equal(dy_ll_sketch_put(&C, 1, 0, 1), 0);
    assert_int_equal(dy_ll_sketch_put(&C, 2, 5, 1), 0);
    assert_int_equal(dy_ll_sketch_put(&C, 2, 6, 1), 0);
    const dy_ll_sketch_t *only[1] = {&C};
    assert_int_equal(dy_ll_plaintext(only, 1, 3, 1.0f, &reach, freq, &active), 0);
    assert_int_equal(active, 2);
    assert_int_equal(reach, 4);
    assert_true(freq[0] == 0 && freq[1] == 0 && freq[2] == 0);
    dy_ll_sketch_free(&A);
    dy_ll_sketch_free(&B);
    dy_ll_sketch_free(&C);
}

/* People sketched one by one: the plaintext active count is the number of
 * distinct indices, and the estimate lands near the true reach. */
static void test_plaintext_people(void **state)
{
    (void)state;
    dy_ll_sketch_t s1, s2;
    assert_int_equal(dy_ll_sketch_init(&s1, 12, 100000), 0);
    assert_int_equal(dy_ll_sketch_init(&s2, 12, 100000), 0);
    /* vids 1..20000 in s1, 10001..30000 in s2: reach 30000. */
    for (uint64_t v = 1; v <= 20000; v++)
        assert_int_equal(dy_ll_sketch_add_vid(&s1, v, 1), 0);
    for (uint64_t v = 10001; v <= 30000; v++)
        assert_int_equal(dy_ll_sketch_add_vid(&s2, v, 1), 0);
    assert_int_equal(dy_ll_sketch_finish(&s1), 0);
    assert_int_equal(dy_ll_sketch_finish(&s2), 0);
    /* Distinct indices, counted independently. */
    size_t n = s1.n + s2.n, k = 0, distinct = 0;
    int64_t *idx = malloc(n * sizeof(*idx));
    assert_non_null(idx);
    char *seen = calloc(100000, 1);
    assert_non_null(seen);
    for (size_t i = 0; i < s1.n; i++)
        idx[k++] = s1.regs[i].index;
    for (size_t i = 0; i < s2.n; i++)
        idx[k++] = s2.regs[i].index;
    for (size_t i = 0; i < n; i++)
        if (!seen[idx[i]]++)
            distinct++;
    const dy_ll_sketch_t *sks[2] = {&s1, &s2};
    int64_t reach;
    uint64_t active;
    double freq[2];
    assert_int_equal(dy_ll_plaintext(sks, 2, 2, 1.0f, &reach, freq, &active), 0);
    assert_int_equal(active, distinct);
    assert_true(reach > 28500 && reach < 31500);
    /* Overlapping people have 2 events in total. */
    assert_true(freq[1] > 0.25 && freq[1] < 0.42);
    assert_true(fabs(freq[0] + freq[1] - 1.0) < 1e-12);
    free(idx);
    free(seen);
    dy_ll_sketch_free(&s1);
    dy_ll_sketch_free(&s2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fingerprint_kat),
        cmocka_unit_test(test_register_index_edges),
        cmocka_unit_test(test_register_index_distribution),
        cmocka_unit_test(test_sketch_merge_rules),
        cmocka_unit_test(test_sketch_add_vid),
        cmocka_unit_test(test_e1_values),
        cmocka_unit_test(test_expected),
        cmocka_unit_test(test_invert_table),
        cmocka_unit_test(test_estimate_errors),
        cmocka_unit_test(test_plaintext_worked_example),
        cmocka_unit_test(test_plaintext_people),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
