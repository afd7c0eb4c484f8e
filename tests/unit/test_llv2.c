/* tests/unit/test_llv2.c - the LLv2 stages (CRYPTO.md §4, §10) through an
 * in-process three-duchy federation: exact noise-free results against the
 * plaintext answer (property 1), the §4.8 worked example, K = 1, noise
 * sizes and bounds (property 4), output structure (5), clean errors on
 * every malformed input, re-runs (6), and a per-phase timing printout.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "llv2_harness.h"
#include "test_scale.h"

/* Runs the federation over sketches and compares with dy_ll_plaintext. */
static void s_check_exact(const dy_llv2_params_t *prm, dy_ll_sketch_t *sk, size_t n)
{
    h_fed_t f;
    assert_int_equal(h_fed_init(&f, g_ec, prm), 0);
    assert_int_equal(h_fed_encrypt(&f, sk, n, false), 0);
    int rc = h_fed_run(&f, false);
    if (rc < 0)
        fprintf(stderr, "# stage error %s: %s\n", f.err.code, f.err.message);
    assert_int_equal(rc, 0);
    const dy_ll_sketch_t *skp[H_MAX_EDP];
    for (size_t i = 0; i < n; i++)
        skp[i] = &sk[i];
    int K = prm->max_frequency;
    int64_t reach;
    double freq[H_MAX_K];
    uint64_t active;
    assert_int_equal(dy_ll_plaintext(skp, n, K, 1.0f, &reach, K > 1 ? freq : NULL, &active), 0);
    assert_int_equal(f.reach, reach);
    for (int i = 0; K > 1 && i < K; i++)
        assert_true(fabs(f.freq[i] - freq[i]) < 1e-12);
    h_fed_free(&f);
}

static void test_params(void **state)
{
    dy_err_t err;
    dy_llv2_params_t p = h_params(10, 3, 1);
    dy_err_clear(&err);
    assert_int_equal(dy_llv2_params_check(&p, false, &err), 0);
    p.noise = DY_NOISE_GEOMETRIC;
    assert_int_equal(dy_llv2_params_check(&p, false, &err), 0);
    dy_llv2_params_t bad[8];
    for (int i = 0; i < 8; i++)
        bad[i] = p;
    bad[0].decay_rate = 1.0;
    bad[1].max_frequency = 0;
    bad[2].vid_width = 0.0f;
    bad[3].noise = DY_NOISE_CONTINUOUS_GAUSSIAN;
    bad[4].threads = 0;
    bad[5].reach.epsilon = 0;
    bad[6].num_sketches = 0;
    bad[7].blinded_histogram.delta = 0;
    for (int i = 0; i < 8; i++) {
        dy_err_clear(&err);
        assert_int_equal(dy_llv2_params_check(&bad[i], false, &err), -EINVAL);
        if (i == 3)
            assert_string_equal(err.code, "unsupported_noise_mechanism");
    }
    /* Reach only ignores K and the frequency parameters. */
    dy_llv2_params_t ro = p;
    ro.max_frequency = 0;
    ro.frequency.epsilon = 0;
    dy_err_clear(&err);
    assert_int_equal(dy_llv2_params_check(&ro, true, &err), 0);
}

static void test_keys(void **state)
{
    uint8_t x[3][DY_SCALAR_LEN], pub[3][DY_PTC_LEN], Y[DY_PTC_LEN];
    for (int d = 0; d < 3; d++)
        assert_int_equal(dy_llv2_keygen(g_ec, x[d], pub[d]), 0);
    assert_int_equal(dy_llv2_combine_keys(g_ec, (const uint8_t(*)[DY_PTC_LEN])pub, 3, Y), 0);
    dy_llv2_params_t p = h_params(3, 2, 1);
    dy_err_t err;
    dy_err_clear(&err);
    dy_llv2_t *c = dy_llv2_new(g_ec, &p, DY_LLV2_NA2, x[1], (const uint8_t(*)[DY_PTC_LEN])pub,
                               &err);
    assert_non_null(c);
    dy_llv2_destroy(&c);
    assert_null(c);
    /* Wrong secret for the role. */
    dy_err_clear(&err);
    assert_null(dy_llv2_new(g_ec, &p, DY_LLV2_NA1, x[1], (const uint8_t(*)[DY_PTC_LEN])pub,
                            &err));
    assert_string_equal(err.code, "bad_key");
    /* Y3 = -Y2: the partial key of NA1 is O. */
    uint8_t pub2[3][DY_PTC_LEN];
    memcpy(pub2, pub, sizeof(pub2));
    memcpy(pub2[2], pub2[1], DY_PTC_LEN);
    pub2[2][0] ^= 1;
    dy_err_clear(&err);
    assert_null(dy_llv2_new(g_ec, &p, DY_LLV2_NA1, x[0], (const uint8_t(*)[DY_PTC_LEN])pub2,
                            &err));
    assert_string_equal(err.code, "bad_key");
    uint8_t two[2][DY_PTC_LEN];
    memcpy(two[0], pub[0], DY_PTC_LEN);
    memcpy(two[1], pub[0], DY_PTC_LEN);
    two[1][0] ^= 1;
    assert_true(dy_llv2_combine_keys(g_ec, (const uint8_t(*)[DY_PTC_LEN])two, 2, Y) < 0);
}

/* CRYPTO.md §4.8. */
static void test_worked_example(void **state)
{
    dy_ll_sketch_t sk[2];
    dy_ll_sketch_init(&sk[0], 12, 100000);
    dy_ll_sketch_init(&sk[1], 12, 100000);
    dy_ll_sketch_put(&sk[0], 3, 11, 1);
    dy_ll_sketch_put(&sk[0], 7, 12, 2);
    dy_ll_sketch_put(&sk[0], 9, 13, 1);
    dy_ll_sketch_put(&sk[1], 3, 11, 4);
    dy_ll_sketch_put(&sk[1], 7, 99, 1);
    dy_ll_sketch_put(&sk[1], 15, 0, 1);
    dy_ll_sketch_finish(&sk[0]);
    dy_ll_sketch_finish(&sk[1]);
    dy_llv2_params_t p = h_params(3, 2, 2);
    h_fed_t f;
    assert_int_equal(h_fed_init(&f, g_ec, &p), 0);
    assert_int_equal(h_fed_encrypt(&f, sk, 2, false), 0);
    assert_int_equal(h_fed_run(&f, false), 0);
    assert_int_equal(f.reach, 5);
    assert_true(fabs(f.freq[0] - 0.5) < 1e-15);
    assert_true(f.freq[1] == 0.0);
    assert_true(fabs(f.freq[2] - 0.5) < 1e-15);
    /* Four groups, four tuples; two columns of K-1 = 2. */
    assert_int_equal(f.c_ex[0][2].out_blocks, 4);
    assert_int_equal(f.ex[1][2].len, 2 * 2 * DY_CT_LEN);
    h_fed_free(&f);
    s_check_exact(&p, sk, 2);
    dy_ll_sketch_free(&sk[0]);
    dy_ll_sketch_free(&sk[1]);
}

/* Property 1: K in {2, 10}, S = 1..5, 250 registers in all (150 for S = 1).  Under
 * valgrind, where each federation's 5 + S fixed-base tables (OpenSSL precomputation) take
 * seconds apiece, three of the ten: S = 1 (NA2 and AGG get no requisition), 2 (AGG gets
 * none) and 5 (two at NA1 and NA2, one at AGG), K alternating, with 60 registers (40). */
static void test_noise_free_exact(void **state)
{
    static const int Ks[] = {2, 10};
    const bool quick = scale_quick();
    for (size_t k = 0; k < DY_ARRAY_LEN(Ks); k++)
        for (int S = 1; S <= 5; S++) {
            if (quick && !(S == 1 && k == 0) && !(S == 2 && k == 1) && !(S == 5 && k == 0))
                continue;
            dy_ll_sketch_t sk[5];
            size_t per = S == 1 ? scale_pick(150, 40) : scale_pick(250, 60) / (size_t)S;
            h_sketches(sk, S, per, (int64_t)(per * 3 / 2), (uint64_t)(k * 10 + (size_t)S));
            dy_llv2_params_t p = h_params(Ks[k], S, 2);
            s_check_exact(&p, sk, (size_t)S);
            for (int e = 0; e < S; e++)
                dy_ll_sketch_free(&sk[e]);
        }
}

/* K = 1 inside LLv2: reach only, the matrix is empty, exec3 refuses. */
static void test_k1(void **state)
{
    dy_ll_sketch_t sk[3];
    h_sketches(sk, 3, 80, 150, 77);
    dy_llv2_params_t p = h_params(1, 3, 2);
    s_check_exact(&p, sk, 3);
    h_fed_t f;
    assert_int_equal(h_fed_init(&f, g_ec, &p), 0);
    assert_int_equal(h_fed_encrypt(&f, sk, 3, false), 0);
    assert_int_equal(h_fed_run(&f, false), 0);
    assert_int_equal(f.ex[1][2].len, 0);
    dy_buf_t out = {0};
    dy_err_t err;
    dy_err_clear(&err);
    assert_int_equal(dy_llv2_exec3(f.ctx[0], f.ex[1][1].data, f.ex[1][1].len, &out, NULL, NULL,
                                   &err),
                     -EINVAL);
    h_fed_free(&f);
    for (int e = 0; e < 3; e++)
        dy_ll_sketch_free(&sk[e]);
}

/* Bounds of freq[i] = h_i / Σh when each h_j lies in [lo_j, hi_j]. */
static void s_freq_bounds(const uint64_t *truth, int K, int64_t spread, const double *freq)
{
    double lo[H_MAX_K], hi[H_MAX_K], slo = 0, shi = 0;
    for (int i = 0; i < K; i++) {
        lo[i] = (double)((int64_t)truth[i] > spread ? (int64_t)truth[i] - spread : 0);
        hi[i] = (double)((int64_t)truth[i] + spread);
        slo += lo[i];
        shi += hi[i];
    }
    for (int i = 0; i < K; i++) {
        double fmin = lo[i] / (lo[i] + (shi - hi[i])), fmax = hi[i] / (hi[i] + (slo - lo[i]));
        if (!(freq[i] >= fmin - 1e-12 && freq[i] <= fmax + 1e-12))
            fprintf(stderr, "# bucket %d: %.6f not in [%.6f, %.6f]\n", i + 1, freq[i], fmin,
                    fmax);
        assert_true(freq[i] >= fmin - 1e-12 && freq[i] <= fmax + 1e-12);
    }
}

/* Property 4 and the size formulas, for one mechanism.  100 registers per sketch from a
 * pool of 200; 30 of 60 under valgrind (the noise, T and the tuples, stays the same). */
static void s_noise_run(dy_noise_mech_t mech, int64_t want_T, int64_t want_tuples)
{
    const int K = 10, S = 3;
    dy_ll_sketch_t sk[3];
    h_sketches(sk, S, scale_pick(100, 30), (int64_t)scale_pick(200, 60), 4242 + (uint64_t)mech);
    dy_llv2_params_t p = h_params(K, S, 2);
    p.noise = mech;
    int64_t ob, op, orr, of;
    assert_int_equal(dy_noise_offset(mech, p.blinded_histogram, 3, 2, &ob), 0);
    assert_int_equal(dy_noise_offset(mech, p.publisher, 3, S, &op), 0);
    assert_int_equal(dy_noise_offset(mech, p.reach, 3, 1, &orr), 0);
    assert_int_equal(dy_noise_offset(mech, p.frequency, 3, 2, &of), 0);
    int64_t T = 2 * op + 2 * orr + ob * S * (S + 1), tuples = 2 * of * (K + 1);
    assert_int_equal(T, want_T);
    assert_int_equal(tuples, want_tuples);

    h_fed_t f;
    assert_int_equal(h_fed_init(&f, g_ec, &p), 0);
    assert_int_equal(h_fed_encrypt(&f, sk, S, false), 0);
    int rc = h_fed_run(&f, false);
    if (rc < 0)
        fprintf(stderr, "# stage error %s: %s\n", f.err.code, f.err.message);
    assert_int_equal(rc, 0);
    for (int d = 0; d < 3; d++) {
        assert_int_equal(f.c_setup[d].noise_blocks, (uint64_t)T);
        size_t own = 0;
        dy_buf_t reqs[H_MAX_EDP];
        size_t nr = h_reqs_of(&f, d, reqs);
        for (size_t i = 0; i < nr; i++)
            own += reqs[i].len / DY_LLV2_CRV_BLOCK;
        size_t in = d == 2 ? (f.setup[0].len + f.setup[1].len) / DY_LLV2_CRV_BLOCK : 0;
        assert_int_equal(f.setup[d].len, (own + in + (size_t)T) * DY_LLV2_CRV_BLOCK);
        /* Frequency noise: AGG in exec1, the NAs in exec2. */
        assert_int_equal(d == 2 ? f.c_ex[0][d].noise_blocks : f.c_ex[1][d].noise_blocks,
                         (uint64_t)tuples);
    }
    /* Reach within the reach-noise bound. */
    const dy_ll_sketch_t *skp[3] = {&sk[0], &sk[1], &sk[2]};
    int64_t reach;
    double freq[H_MAX_K];
    uint64_t active;
    assert_int_equal(dy_ll_plaintext(skp, 3, K, 1.0f, &reach, freq, &active), 0);
    int64_t rlo, rhi;
    int64_t alo = (int64_t)active - 3 * orr;
    assert_int_equal(dy_ll_estimate(12, 100000, (uint64_t)(alo > 0 ? alo : 0), 1.0f, &rlo), 0);
    assert_int_equal(dy_ll_estimate(12, 100000, active + (uint64_t)(3 * orr), 1.0f, &rhi), 0);
    assert_true(f.reach >= rlo && f.reach <= rhi);
    /* Frequency within 3·off_freq per bucket: recover the true bucket
     * counts from the plaintext shares. */
    uint64_t truth[H_MAX_K], groups = 0;
    {
        /* Non-destroyed groups = shares · N; N from the union. */
        size_t tot = 0;
        for (int e = 0; e < 3; e++)
            tot += sk[e].n;
        dy_ll_register_t *all = malloc(tot * sizeof(*all));
        size_t k = 0;
        for (int e = 0; e < 3; e++)
            for (size_t i = 0; i < sk[e].n; i++)
                all[k++] = sk[e].regs[i];
        memset(truth, 0, sizeof(truth));
        for (size_t i = 0; i < tot; i++) {
            bool first = true, destroyed = all[i].key == 0;
            uint64_t sum = all[i].count;
            for (size_t j = 0; j < tot; j++) {
                if (all[j].index != all[i].index || j == i)
                    continue;
                if (j < i)
                    first = false;
                if (all[j].key != all[i].key || all[j].key == 0)
                    destroyed = true;
                sum += all[j].count;
            }
            if (first && !destroyed) {
                truth[(sum > (uint64_t)K ? (uint64_t)K : sum) - 1]++;
                groups++;
            }
        }
        free(all);
        for (int i = 0; i < K; i++)
            assert_true(fabs((double)truth[i] / (double)groups - freq[i]) < 1e-12);
    }
    s_freq_bounds(truth, K, 3 * of, f.freq);
    h_fed_free(&f);
    for (int e = 0; e < 3; e++)
        dy_ll_sketch_free(&sk[e]);
}

static void test_noise_geometric(void **state)
{
    s_noise_run(DY_NOISE_GEOMETRIC, 130, 154);
}

static void test_noise_gaussian(void **state)
{
    s_noise_run(DY_NOISE_DISCRETE_GAUSSIAN, 34, 66);
}

/* Property 5: sorted outputs whose points all decode, sizes. */
static void test_structure(void **state)
{
    dy_ll_sketch_t sk[3];
    h_sketches(sk, 3, 60, 100, 99);
    dy_llv2_params_t p = h_params(4, 3, 2);
    p.noise = DY_NOISE_GEOMETRIC;
    h_fed_t f;
    assert_int_equal(h_fed_init(&f, g_ec, &p), 0);
    assert_int_equal(h_fed_encrypt(&f, sk, 3, false), 0);
    assert_int_equal(h_fed_run(&f, false), 0);
    for (int d = 0; d < 3; d++) {
        assert_true(h_sorted(&f.setup[d], DY_LLV2_CRV_BLOCK, f.setup[d].len / DY_LLV2_CRV_BLOCK));
        assert_true(h_points_ok(g_ec, f.setup[d].data, f.setup[d].len));
        assert_true(h_sorted(&f.ex[0][d], d == 2 ? DY_LLV2_TUPLE_BLOCK : DY_LLV2_CRV_BLOCK,
                             f.ex[0][d].len / (d == 2 ? DY_LLV2_TUPLE_BLOCK : DY_LLV2_CRV_BLOCK)));
        assert_true(h_points_ok(g_ec, f.ex[0][d].data, f.ex[0][d].len));
        if (d < 2)
            assert_true(h_sorted(&f.ex[1][d], DY_LLV2_TUPLE_BLOCK,
                                 f.ex[1][d].len / DY_LLV2_TUPLE_BLOCK));
        assert_true(h_points_ok(g_ec, f.ex[1][d].data, f.ex[1][d].len));
        if (d < 2) {
            assert_true(h_points_ok(g_ec, f.ex[2][d].data, f.ex[2][d].len));
            assert_int_equal(f.ex[2][d].len, f.ex[1][2].len);
        }
    }
    /* exec1 NA keeps the register count; exec2 NA adds its noise. */
    assert_int_equal(f.ex[0][0].len, f.setup[2].len);
    assert_int_equal(f.ex[0][1].len, f.setup[2].len);
    assert_int_equal(f.ex[1][0].len, f.ex[0][2].len + f.c_ex[1][0].noise_blocks *
                                                          DY_LLV2_TUPLE_BLOCK);
    assert_int_equal(f.ex[1][2].len % (3 * DY_CT_LEN), 0);
    h_fed_free(&f);
    for (int e = 0; e < 3; e++)
        dy_ll_sketch_free(&sk[e]);
}

/* ---- malformed inputs ---------------------------------------------------------- */

enum { T_SETUP_NA, T_SETUP_AGG, T_E1, T_E2 = T_E1 + 3, T_E3 = T_E2 + 3, T_MAX = T_E3 + 3 };

static int s_call(h_fed_t *f, int which, const uint8_t *in, size_t len, dy_err_t *err)
{
    dy_buf_t out = {0};
    int64_t reach;
    double freq[H_MAX_K];
    int rc;
    if (which == T_SETUP_NA) {
        dy_buf_t req = {(uint8_t *)in, len, len};
        rc = dy_llv2_setup(f->ctx[0], &req, 1, NULL, 0, &out, NULL, err);
    } else if (which == T_SETUP_AGG) {
        rc = dy_llv2_setup(f->ctx[2], NULL, 0, in, len, &out, NULL, err);
    } else if (which < T_E2) {
        rc = dy_llv2_exec1(f->ctx[which - T_E1], in, len, &out, NULL, err);
    } else if (which < T_E3) {
        rc = dy_llv2_exec2(f->ctx[which - T_E2], in, len, &out, &reach, NULL, err);
    } else {
        rc = dy_llv2_exec3(f->ctx[which - T_E3], in, len, &out, freq, NULL, err);
    }
    if (rc < 0)
        assert_int_equal(out.len, 0);
    dy_buf_free(&out);
    return rc;
}

static const dy_buf_t *s_input_of(h_fed_t *f, int which)
{
    if (which == T_SETUP_NA)
        return &f->req[0];
    if (which == T_SETUP_AGG)
        return &f->setup[0];
    int p = (which - T_E1) / 3, d = (which - T_E1) % 3;
    return h_input(f, p, d);
}

static void test_malformed(void **state)
{
    dy_ll_sketch_t sk[2];
    h_sketches(sk, 2, 30, 40, 5);
    dy_llv2_params_t p = h_params(3, 2, 2);
    h_fed_t f;
    assert_int_equal(h_fed_init(&f, g_ec, &p), 0);
    assert_int_equal(h_fed_encrypt(&f, sk, 2, false), 0);
    assert_int_equal(h_fed_run(&f, false), 0);
    for (int w = 0; w < T_MAX; w++) {
        const dy_buf_t *in = s_input_of(&f, w);
        assert_true(in->len > 0);
        uint8_t *c = malloc(in->len);
        dy_err_t err;
        /* The untouched input is accepted (re-run). */
        dy_err_clear(&err);
        assert_int_equal(s_call(&f, w, in->data, in->len, &err), 0);
        /* Truncated. */
        dy_err_clear(&err);
        assert_int_equal(s_call(&f, w, in->data, in->len - 1, &err), -EINVAL);
        assert_string_equal(err.code, "bad_length");
        /* A point off the curve, at the start, the middle and the very end
         * (exec3 AGG: an untested last row). */
        size_t npts = in->len / DY_PT_LEN, at[3] = {0, npts / 2, npts - 1};
        for (int k = 0; k < 3; k++) {
            memcpy(c, in->data, in->len);
            c[at[k] * DY_PT_LEN + DY_PT_LEN - 1] ^= 1;
            dy_err_clear(&err);
            assert_int_equal(s_call(&f, w, c, in->len, &err), -EINVAL);
            assert_string_equal(err.code, "invalid_point");
            /* A bad prefix. */
            memcpy(c, in->data, in->len);
            c[at[k] * DY_PT_LEN] = 0x02;
            dy_err_clear(&err);
            assert_int_equal(s_call(&f, w, c, in->len, &err), -EINVAL);
            assert_string_equal(err.code, "invalid_point");
        }
        free(c);
    }
    /* An output point equal to O: e = x1·u makes NA1's exec3 output O. */
    {
        BN_CTX *ctx = BN_CTX_new();
        BIGNUM *x1 = dy_scalar_new(), *r = dy_scalar_new();
        EC_POINT *u = dy_ec_point_new(g_ec), *e = dy_ec_point_new(g_ec);
        assert_int_equal(dy_ec_scalar_from_bytes(g_ec, x1, f.x[0], DY_SCALAR_LEN), 0);
        assert_int_equal(dy_ec_rand_scalars(g_ec, &r, 1), 0);
        assert_int_equal(dy_ec_mul_g(g_ec, u, r, ctx), 0);
        assert_int_equal(dy_ec_mul(g_ec, e, u, x1, ctx), 0);
        uint8_t row[2 * DY_CT_LEN];
        assert_int_equal(dy_ec_encode(g_ec, u, row, ctx), 0);
        assert_int_equal(dy_ec_encode(g_ec, e, row + DY_PT_LEN, ctx), 0);
        memcpy(row + DY_CT_LEN, f.ex[1][2].data, DY_CT_LEN);
        dy_err_t err;
        dy_err_clear(&err);
        assert_int_equal(s_call(&f, T_E3, row, sizeof(row), &err), -EDOM);
        assert_string_equal(err.code, "identity_point");
        dy_scalar_free(&x1);
        dy_scalar_free(&r);
        EC_POINT_free(u);
        EC_POINT_free(e);
        BN_CTX_free(ctx);
    }
    /* The aggregator refuses a non-empty crv_in at an NA. */
    {
        dy_buf_t out = {0};
        dy_err_t err;
        dy_err_clear(&err);
        assert_int_equal(dy_llv2_setup(f.ctx[0], NULL, 0, f.setup[1].data, f.setup[1].len, &out,
                                       NULL, &err),
                         -EINVAL);
        dy_buf_free(&out);
    }
    h_fed_free(&f);
    dy_ll_sketch_free(&sk[0]);
    dy_ll_sketch_free(&sk[1]);
}

/* active >= m is an error. */
static void test_saturated(void **state)
{
    dy_ll_sketch_t sk[1];
    dy_ll_sketch_init(&sk[0], 12, 40);
    for (int i = 0; i < 40; i++)
        dy_ll_sketch_put(&sk[0], i, (uint64_t)i + 1, 1);
    dy_ll_sketch_finish(&sk[0]);
    dy_llv2_params_t p = h_params(2, 1, 1);
    p.sketch_size = 40;
    h_fed_t f;
    assert_int_equal(h_fed_init(&f, g_ec, &p), 0);
    assert_int_equal(h_fed_encrypt(&f, sk, 1, false), 0);
    assert_int_equal(h_fed_run(&f, false), -EINVAL);
    assert_string_equal(f.err.code, "sketch_saturated");
    h_fed_free(&f);
    dy_ll_sketch_free(&sk[0]);
}

/* Property 6: a re-run changes the ciphertexts it creates, not the
 * result; pass-through setup and exec3 NA are deterministic. */
static void test_rerun(void **state)
{
    dy_ll_sketch_t sk[3];
    h_sketches(sk, 3, 50, 80, 31);
    dy_llv2_params_t p = h_params(5, 3, 2);
    h_fed_t f;
    assert_int_equal(h_fed_init(&f, g_ec, &p), 0);
    assert_int_equal(h_fed_encrypt(&f, sk, 3, false), 0);
    assert_int_equal(h_fed_run(&f, false), 0);
    int64_t reach = f.reach;
    double freq[H_MAX_K];
    memcpy(freq, f.freq, sizeof(freq));
    dy_buf_t keep[3][3] = {{{0}}}, ksetup[3] = {{0}};
    for (int d = 0; d < 3; d++) {
        dy_buf_append(&ksetup[d], f.setup[d].data, f.setup[d].len);
        for (int ph = 0; ph < 3; ph++)
            dy_buf_append(&keep[ph][d], f.ex[ph][d].data, f.ex[ph][d].len);
    }
    /* exec3 NA1 again on the same input: identical bytes. */
    {
        dy_buf_t out = {0};
        dy_err_t err;
        dy_err_clear(&err);
        assert_int_equal(dy_llv2_exec3(f.ctx[0], f.ex[1][2].data, f.ex[1][2].len, &out, NULL,
                                       NULL, &err), 0);
        assert_int_equal(out.len, f.ex[2][0].len);
        assert_memory_equal(out.data, f.ex[2][0].data, out.len);
        dy_buf_free(&out);
    }
    assert_int_equal(h_fed_run(&f, false), 0);
    assert_int_equal(f.reach, reach);
    for (int i = 0; i < 5; i++)
        assert_true(f.freq[i] == freq[i]);
    /* NA setups pass the requisitions through unchanged (no noise). */
    assert_int_equal(f.setup[0].len, ksetup[0].len);
    assert_memory_equal(f.setup[0].data, ksetup[0].data, ksetup[0].len);
    /* Every ciphertext created in exec1/exec2 is fresh. */
    for (int ph = 0; ph < 2; ph++)
        for (int d = 0; d < 3; d++) {
            if (ph == 1 && d == 2)
                continue;
            const dy_buf_t *a = &keep[ph][d], *b = &f.ex[ph][d];
            assert_int_equal(a->len, b->len);
            for (size_t i = 0; i < a->len / DY_PT_LEN; i++)
                assert_memory_not_equal(a->data + i * DY_PT_LEN, b->data + i * DY_PT_LEN,
                                        DY_PT_LEN);
        }
    for (int d = 0; d < 3; d++) {
        dy_buf_free(&ksetup[d]);
        for (int ph = 0; ph < 3; ph++)
            dy_buf_free(&keep[ph][d]);
    }
    h_fed_free(&f);
    for (int e = 0; e < 3; e++)
        dy_ll_sketch_free(&sk[e]);
}

/* Timing printout: 2,000 registers, K = 10, noise free, per phase, with 1 and 2 threads.
 * Under valgrind, where timings mean nothing: 100 registers, 1 thread only (every other
 * full run here uses 2). */
static void test_timing(void **state)
{
    const size_t N = scale_pick(2000, 100);
    dy_ll_sketch_t sk[1];
    dy_ll_sketch_init(&sk[0], 12, 100000);
    for (size_t i = 0; i < N; i++)
        dy_ll_sketch_put(&sk[0], (int64_t)i, i + 1, 1 + i % 7);
    dy_ll_sketch_finish(&sk[0]);
    static const char *names[4] = {"setup", "exec1", "exec2", "exec3"};
    for (int threads = 1; threads <= (scale_quick() ? 1 : 2); threads++) {
        dy_llv2_params_t p = h_params(10, 1, threads);
        h_fed_t f;
        double t0 = dy_now();
        assert_int_equal(h_fed_init(&f, g_ec, &p), 0);
        double tinit = dy_now() - t0;
        assert_int_equal(h_fed_encrypt(&f, sk, 1, false), 0);
        assert_int_equal(h_fed_run(&f, false), 0);
        int64_t reach;
        assert_int_equal(dy_ll_plaintext((const dy_ll_sketch_t *const[]){&sk[0]}, 1, 10, 1.0f,
                                         &reach, NULL, NULL), 0);
        assert_int_equal(f.reach, reach);
        double total = tinit;
        fprintf(stderr, "# llv2 timing, %zu registers, K = 10, %d thread(s), us per register "
                        "(NA1 / NA2 / AGG):\n", N, threads);
        for (int ph = 0; ph < 4; ph++) {
            double *t = ph == 0 ? f.t_setup : f.t_ex[ph - 1];
            fprintf(stderr, "#   %-6s %8.1f %8.1f %8.1f\n", names[ph], t[0] * 1e6 / N,
                    t[1] * 1e6 / N, t[2] * 1e6 / N);
            total += t[0] + t[1] + t[2];
        }
        fprintf(stderr, "#   init (keys, tables) %.1f ms; total %.1f us/register = %.1f ECDH "
                        "units (40 us)\n", tinit * 1e3, total * 1e6 / N, total * 1e6 / N / 40);
        h_fed_free(&f);
    }
    dy_ll_sketch_free(&sk[0]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_params),
        cmocka_unit_test(test_keys),
        cmocka_unit_test(test_worked_example),
        cmocka_unit_test(test_noise_free_exact),
        cmocka_unit_test(test_k1),
        cmocka_unit_test(test_noise_geometric),
        cmocka_unit_test(test_noise_gaussian),
        cmocka_unit_test(test_structure),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_saturated),
        cmocka_unit_test(test_rerun),
        cmocka_unit_test(test_timing),
    };
    return cmocka_run_group_tests(tests, h_group_setup, h_group_teardown);
}
