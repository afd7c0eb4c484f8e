/* test_noise.c - DP noise (CRYPTO.md §7): every figure of §7.2 and §7.4,
 * parameter validation, and a chi-squared test of each sampler over 10^6
 * draws from a fixed-seed random source. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crypto/ec.h"
#include "noise/noise.h"

#define S_Z_1E4 3.719016485455709 /* upper 1e-4 normal quantile */

static const dy_noise_mech_t GEO = DY_NOISE_GEOMETRIC;
static const dy_noise_mech_t DG = DY_NOISE_DISCRETE_GAUSSIAN;

/* ---- a deterministic random source: SplitMix64 bytes ----------------------- */

static int s_splitmix_source(void *arg, uint8_t *buf, size_t len)
{
    uint64_t *s = arg;
    while (len > 0) {
        uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
        z ^= z >> 31;
        for (int i = 0; i < 8 && len > 0; i++, len--) {
            *buf++ = (uint8_t)z;
            z >>= 8;
        }
    }
    return 0;
}

static int s_failing_source(void *arg, uint8_t *buf, size_t len)
{
    (void)arg;
    (void)buf;
    (void)len;
    return -EIO;
}

static int64_t s_off(dy_noise_mech_t mech, double eps, double delta, int n, double s)
{
    int64_t off = -1;
    dy_dp_params_t dp = {eps, delta};
    assert_int_equal(dy_noise_offset(mech, dp, n, s, &off), 0);
    /* init agrees with offset */
    dy_noise_t nz;
    assert_int_equal(dy_noise_init(&nz, mech, dp, n, s), 0);
    assert_int_equal(nz.offset, off);
    dy_noise_free(&nz);
    return off;
}

static void s_near(double got, double want, double tol)
{
    if (!(fabs(got - want) <= tol))
        fail_msg("got %.9g, want %.9g (tolerance %g)", got, want, tol);
}

/* ---- §7.1 / §7.4 parameters ------------------------------------------------------ */

static void test_reference_case(void **state)
{
    (void)state;
    const int n = 3, S = 3, K = 10;
    const double e80 = exp(-80.0);
    /* GEOMETRIC: blinded (1, 1) s = 2, publisher (1, 1) s = S, reach (40,
     * e^-80) s = 1, frequency (40, e^-80) s = 2. */
    int64_t bh = s_off(GEO, 1, 1, n, 2);
    int64_t pub = s_off(GEO, 1, 1, n, S);
    int64_t reach = s_off(GEO, 40, e80, n, 1);
    int64_t freq = s_off(GEO, 40, e80, n, 2);
    assert_int_equal(bh, 8);
    assert_int_equal(pub, 13);
    assert_int_equal(reach, 4);
    assert_int_equal(freq, 7);
    assert_int_equal(2 * pub + 2 * reach + bh * S * (S + 1), 130);
    assert_int_equal(3 * (2 * pub + 2 * reach + bh * S * (S + 1)), 390);
    assert_int_equal(2 * freq * (K + 1), 154);
    dy_noise_t nz;
    dy_dp_params_t one = {1, 1}, forty = {40, e80};
    assert_int_equal(dy_noise_init(&nz, GEO, one, n, 2), 0);
    s_near(nz.p, 0.60653, 5e-6);
    dy_noise_free(&nz);
    assert_int_equal(dy_noise_init(&nz, GEO, one, n, S), 0);
    s_near(nz.p, 0.71653, 5e-6);
    dy_noise_free(&nz);
    assert_int_equal(dy_noise_init(&nz, GEO, forty, n, 1), 0);
    s_near(nz.p, 4.2e-18, 0.05e-18);
    dy_noise_free(&nz);
    assert_int_equal(dy_noise_init(&nz, GEO, forty, n, 2), 0);
    s_near(nz.p, 2.1e-9, 0.05e-9);
    dy_noise_free(&nz);

    /* DISCRETE_GAUSSIAN: sigma 1.35373, 1.35373, 0.31803, 0.31803. */
    struct {
        double eps, delta, sigma;
        int64_t off;
    } dg[] = {{1, 1, 1.35373, 2}, {1, 1, 1.35373, 2},
              {40, e80, 0.31803, 3},      {40, e80, 0.31803, 3}};
    int64_t o[4];
    for (int i = 0; i < 4; i++) {
        dy_dp_params_t dp = {dg[i].eps, dg[i].delta};
        assert_int_equal(dy_noise_init(&nz, DG, dp, n, 0), 0);
        s_near(nz.sigma_d * sqrt(3.0), dg[i].sigma, 5e-6);
        assert_int_equal(nz.offset, dg[i].off);
        o[i] = nz.offset;
        dy_noise_free(&nz);
    }
    int64_t T = 2 * o[1] + 2 * o[2] + o[0] * S * (S + 1);
    assert_int_equal(T, 34);
    assert_int_equal(3 * T, 102);
    assert_int_equal(2 * o[3] * (K + 1), 66);
}

static void test_eps1_delta1e5(void **state)
{
    (void)state;
    const double s_list[4] = {1, 2, 3, 5};
    const int64_t want[4] = {15, 31, 48, 82};
    for (int i = 0; i < 4; i++)
        assert_int_equal(s_off(GEO, 1, 1e-5, 3, s_list[i]), want[i]);
    dy_noise_t nz;
    assert_int_equal(dy_noise_init(&nz, DG, (dy_dp_params_t){1, 1e-5}, 3, 1), 0);
    s_near(nz.sigma_d * sqrt(3.0), 4.98582, 5e-6);
    s_near(nz.sigma_d, 2.87857, 5e-6);
    s_near(nz.sigma_d, 2.8785663, 5e-8);
    assert_int_equal(nz.offset, 16);
    dy_noise_free(&nz);
    /* n = 2 */
    assert_int_equal(s_off(GEO, 1, 1e-5, 2, 2), 30);
    assert_int_equal(dy_noise_init(&nz, DG, (dy_dp_params_t){1, 1e-5}, 2, 1), 0);
    s_near(nz.sigma_d, 3.52551, 5e-6);
    assert_int_equal(nz.offset, 19);
    dy_noise_free(&nz);
    /* GEOMETRIC p for s = 2 */
    assert_int_equal(dy_noise_init(&nz, GEO, (dy_dp_params_t){1, 1e-5}, 3, 2), 0);
    s_near(nz.p, 0.6065307, 5e-8);
    assert_int_equal(nz.offset, 31);
    dy_noise_free(&nz);
}

static void test_hmss_benchmark(void **state)
{
    (void)state;
    const int MCF = 11;
    int64_t r = s_off(DG, 0.1, 0.1, 2, 2);
    int64_t f = s_off(DG, 1, 0.1, 2, 2);
    assert_int_equal(r, 54);
    assert_int_equal(f, 6);
    assert_int_equal(2 * r + 2 * f * MCF, 240);
    int64_t ro = s_off(DG, 1, 0.1, 2, 2);
    assert_int_equal(ro, 6);
    assert_int_equal(2 * ro, 12);
}

static void test_refusals(void **state)
{
    (void)state;
    dy_noise_t nz = {0};
    int64_t off = -7;
    const dy_dp_params_t ok = {1, 1e-5};
    const dy_noise_mech_t refused[] = {DY_NOISE_UNSPECIFIED, DY_NOISE_CONTINUOUS_GAUSSIAN,
                                       DY_NOISE_NONE, (dy_noise_mech_t)99};
    for (size_t i = 0; i < DY_ARRAY_LEN(refused); i++) {
        assert_int_equal(dy_noise_init(&nz, refused[i], ok, 3, 2), -EINVAL);
        assert_int_equal(dy_noise_offset(refused[i], ok, 3, 2, &off), -EINVAL);
    }
    const dy_dp_params_t bad[] = {{0, 1e-5}, {-1, 1e-5}, {NAN, 1e-5}, {INFINITY, 1e-5},
                                  {1, 0},    {1, -1e-5}, {1, 1.5},    {1, NAN}};
    for (size_t i = 0; i < DY_ARRAY_LEN(bad); i++) {
        assert_int_equal(dy_noise_offset(GEO, bad[i], 3, 2, &off), -EINVAL);
        assert_int_equal(dy_noise_offset(DG, bad[i], 3, 2, &off), -EINVAL);
    }
    assert_int_equal(dy_noise_offset(GEO, ok, 0, 2, &off), -EINVAL);
    assert_int_equal(dy_noise_offset(DG, ok, 0, 2, &off), -EINVAL);
    assert_int_equal(dy_noise_offset(GEO, ok, 3, 0, &off), -EINVAL);
    assert_int_equal(dy_noise_offset(GEO, ok, 3, -1, &off), -EINVAL);
    /* DISCRETE_GAUSSIAN ignores the sensitivity. */
    assert_int_equal(dy_noise_offset(DG, ok, 3, 0, &off), 0);
    assert_int_equal(off, 16);
    /* Offsets above 10^7. */
    assert_int_equal(dy_noise_offset(GEO, (dy_dp_params_t){1e-7, 1e-5}, 3, 2, &off), -EINVAL);
    assert_int_equal(dy_noise_init(&nz, DG, (dy_dp_params_t){1e-8, 1e-5}, 3, 2), -EINVAL);
    assert_null(nz.cdf);
    dy_noise_free(&nz);
    dy_noise_free(NULL);
}

/* ---- §7.2 distributions ----------------------------------------------------- */

static void test_geometric_figures(void **state)
{
    (void)state;
    dy_noise_t nz;
    assert_int_equal(dy_noise_init(&nz, GEO, (dy_dp_params_t){1, 1e-5}, 3, 2), 0);
    const int64_t off = nz.offset;
    const double p = nz.p, r = 1.0 / 3;
    const double q[4] = {0.732774, 0.148150, 0.059905, 0.028260};
    for (int k = 0; k < 4; k++)
        s_near(dy_noise_nb_pmf(r, p, off, k), q[k], 5e-7);
    assert_true(dy_noise_nb_pmf(r, p, off, off + 1) == 0.0);
    assert_true(dy_noise_nb_pmf(r, p, off, -1) == 0.0);
    /* The truncated NB sums to 1. */
    double z = 0;
    for (int64_t k = 0; k <= off; k++)
        z += dy_noise_nb_pmf(r, p, off, k);
    s_near(z, 1.0, 1e-12);

    /* P(A − B = 0, ±1, ±2, ±5) */
    s_near(dy_noise_pmf(&nz, off), 0.563578, 5e-7);
    const int64_t d[3] = {1, 2, 5};
    const double pd[3] = {0.119683, 0.049233, 0.006284};
    for (int i = 0; i < 3; i++) {
        s_near(dy_noise_pmf(&nz, off + d[i]), pd[i], 5e-7);
        s_near(dy_noise_pmf(&nz, off - d[i]), pd[i], 5e-7);
    }
    /* Var(A − B): 2.61178 truncated; 2p/(1−p)²/3 = 2.61180 untruncated. */
    double var = 0, mass = 0, mean = 0;
    for (int64_t v = 0; v <= 2 * off; v++) {
        double pv = dy_noise_pmf(&nz, v);
        assert_true(pv >= 0);
        mass += pv;
        mean += (double)(v - off) * pv;
        var += (double)(v - off) * (double)(v - off) * pv;
    }
    s_near(mass, 1.0, 1e-12);
    s_near(mean, 0.0, 1e-12);
    s_near(var, 2.61178, 5e-6);
    s_near(2 * p / ((1 - p) * (1 - p)) / 3, 2.61180, 5e-6);
    assert_true(dy_noise_pmf(&nz, -1) == 0.0 && dy_noise_pmf(&nz, 2 * off + 1) == 0.0);
    dy_noise_free(&nz);
}

static void test_gaussian_figures(void **state)
{
    (void)state;
    dy_noise_t nz;
    assert_int_equal(dy_noise_init(&nz, DG, (dy_dp_params_t){1, 1e-5}, 3, 2), 0);
    const int64_t off = nz.offset;
    assert_int_equal(off, 16);
    s_near(dy_noise_pmf(&nz, off), 0.138591, 5e-7);
    s_near(dy_noise_pmf(&nz, off + 1), 0.130475, 5e-7);
    s_near(dy_noise_pmf(&nz, off - 1), 0.130475, 5e-7);
    s_near(dy_noise_pmf(&nz, off + 5), 0.030661, 5e-7);
    s_near(dy_noise_pmf(&nz, off - 5), 0.030661, 5e-7);
    assert_true(nz.cdf[2 * off] == 1.0);
    dy_noise_free(&nz);
}

/* ---- chi-squared tests of the samplers -------------------------------------- */

static double s_chi2_critical(int df)
{
    double k = df, h = 2.0 / (9.0 * k);
    double c = 1.0 - h + S_Z_1E4 * sqrt(h);
    return k * c * c * c;
}

/* Pearson's statistic of counts against nz's pmf, pooling adjacent bins
 * until each pool expects >= 5 (a short last pool joins the one before). */
static double s_chi2(const uint64_t *count, const dy_noise_t *nz, uint64_t draws, int *ret_df)
{
    int64_t len = 2 * nz->offset + 1;
    double chi = 0, pe = 0, po = 0, last_e = 0, last_o = 0;
    int pools = 0;
    for (int64_t v = 0; v < len; v++) {
        pe += dy_noise_pmf(nz, v) * (double)draws;
        po += (double)count[v];
        if (pe >= 5) {
            if (pools > 0)
                chi += (last_o - last_e) * (last_o - last_e) / last_e;
            last_e = pe;
            last_o = po;
            pools++;
            pe = po = 0;
        }
    }
    last_e += pe;
    last_o += po;
    if (pools > 0)
        chi += (last_o - last_e) * (last_o - last_e) / last_e;
    *ret_df = pools - 1;
    return chi;
}

/* Draws 10^6 components from src and histograms them centred on dst's
 * offset (clamped to dst's range). */
static uint64_t *s_histogram(const dy_noise_t *src, const dy_noise_t *dst, uint64_t seed,
                             double *ret_mean)
{
    const uint64_t draws = 1000000;
    uint64_t *count = calloc((size_t)(2 * dst->offset + 1), sizeof(*count));
    assert_non_null(count);
    uint64_t st = seed;
    dy_rand_set_source(s_splitmix_source, &st);
    double sum = 0;
    for (uint64_t i = 0; i < draws; i++) {
        int64_t v = -1;
        assert_int_equal(dy_noise_draw(src, &v), 0);
        assert_true(v >= 0 && v <= 2 * src->offset);
        sum += (double)v;
        v += dst->offset - src->offset;
        v = v < 0 ? 0 : v > 2 * dst->offset ? 2 * dst->offset : v;
        count[v]++;
    }
    dy_rand_set_source(NULL, NULL);
    *ret_mean = sum / (double)draws;
    return count;
}

static void s_sampler_case(dy_noise_mech_t mech, dy_dp_params_t dp, int n, double s,
                           uint64_t seed, int min_df)
{
    const uint64_t draws = 1000000;
    dy_noise_t nz;
    assert_int_equal(dy_noise_init(&nz, mech, dp, n, s), 0);
    double mean;
    uint64_t *count = s_histogram(&nz, &nz, seed, &mean);
    int df;
    double chi = s_chi2(count, &nz, draws, &df);
    assert_true(df >= min_df);
    if (!(chi < s_chi2_critical(df)))
        fail_msg("chi2 %.2f >= %.2f at df %d", chi, s_chi2_critical(df), df);
    /* Centred on the offset. */
    s_near(mean, (double)nz.offset, 0.01);
    free(count);
    printf("# mech %d off %lld: chi2 %.1f, df %d, critical %.1f\n", (int)mech,
           (long long)nz.offset, chi, df, s_chi2_critical(df));

    /* The test has teeth: draws of a slightly wider law (epsilon 10% lower),
     * recentred, are rejected. */
    dy_noise_t other;
    dy_dp_params_t dp2 = {dp.epsilon * 0.9, dp.delta};
    assert_int_equal(dy_noise_init(&other, mech, dp2, n, s), 0);
    count = s_histogram(&other, &nz, seed + 1000, &mean);
    double chi2 = s_chi2(count, &nz, draws, &df);
    if (!(chi2 > s_chi2_critical(df)))
        fail_msg("a wrong law passed: chi2 %.2f < %.2f at df %d", chi2, s_chi2_critical(df), df);
    printf("#   a wrong law: chi2 %.1f\n", chi2);
    free(count);
    dy_noise_free(&other);
    dy_noise_free(&nz);
}

static void test_chi2_geometric(void **state)
{
    (void)state;
    s_sampler_case(GEO, (dy_dp_params_t){1, 1e-5}, 3, 2, 1, 15);
    s_sampler_case(GEO, (dy_dp_params_t){1, 1}, 3, 3, 2, 10);
    s_sampler_case(GEO, (dy_dp_params_t){0.5, 1e-9}, 2, 1, 3, 15);
}

static void test_chi2_gaussian(void **state)
{
    (void)state;
    s_sampler_case(DG, (dy_dp_params_t){1, 1e-5}, 3, 0, 4, 10);
    s_sampler_case(DG, (dy_dp_params_t){0.1, 0.1}, 2, 0, 5, 40);
}

static void test_draw_replay_and_failure(void **state)
{
    (void)state;
    dy_noise_t nz;
    assert_int_equal(dy_noise_init(&nz, GEO, (dy_dp_params_t){1, 1e-5}, 3, 2), 0);
    int64_t a[64], b[64];
    uint64_t st = 99;
    dy_rand_set_source(s_splitmix_source, &st);
    for (int i = 0; i < 64; i++)
        assert_int_equal(dy_noise_draw(&nz, &a[i]), 0);
    st = 99;
    for (int i = 0; i < 64; i++)
        assert_int_equal(dy_noise_draw(&nz, &b[i]), 0);
    assert_memory_equal(a, b, sizeof(a));
    dy_rand_set_source(s_failing_source, NULL);
    int64_t v = -5;
    assert_int_equal(dy_noise_draw(&nz, &v), -EIO);
    assert_int_equal(v, -5);
    dy_rand_set_source(NULL, NULL);
    /* The production source works too. */
    assert_int_equal(dy_noise_draw(&nz, &v), 0);
    assert_true(v >= 0 && v <= 62);
    dy_noise_free(&nz);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reference_case),
        cmocka_unit_test(test_eps1_delta1e5),
        cmocka_unit_test(test_hmss_benchmark),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_geometric_figures),
        cmocka_unit_test(test_gaussian_figures),
        cmocka_unit_test(test_chi2_geometric),
        cmocka_unit_test(test_chi2_gaussian),
        cmocka_unit_test(test_draw_replay_and_failure),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
