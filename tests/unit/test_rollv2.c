/* tests/unit/test_rollv2.c - reach-only LLv2 (CRYPTO.md §5.2) through an
 * in-process three-duchy federation: exact noise-free reach (property 3),
 * noise sizes (T + 2) and bounds, structure, the excessive-noise
 * ciphertext, malformed inputs, lookup misses and the aggregator's two
 * ways of receiving the NAs' outputs.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "llv2_harness.h"
#include "test_scale.h"

static int64_t s_plain_reach(dy_ll_sketch_t *sk, size_t n, uint64_t *ret_active)
{
    const dy_ll_sketch_t *skp[H_MAX_EDP];
    for (size_t i = 0; i < n; i++)
        skp[i] = &sk[i];
    int64_t reach;
    assert_int_equal(dy_ll_plaintext(skp, n, 1, 1.0f, &reach, NULL, ret_active), 0);
    return reach;
}

/* Property 3: noise free, reach = LLEstimate(#distinct indices).  S = 1, 2, 3, 5 with 300
 * registers in all from a pool of 400; under valgrind S = 1, 2, 5 (S = 3 adds no case: 5
 * also gives every duchy a requisition) with 75 of 100. */
static void test_ro_exact(void **state)
{
    static const int Ss[] = {1, 2, 3, 5};
    for (size_t k = 0; k < DY_ARRAY_LEN(Ss); k++) {
        int S = Ss[k];
        if (scale_quick() && S == 3)
            continue;
        dy_ll_sketch_t sk[5];
        h_sketches(sk, S, scale_pick(300, 75) / (size_t)S, (int64_t)scale_pick(400, 100),
                   100 + (uint64_t)S);
        dy_llv2_params_t p = h_params(1, S, 2);
        h_fed_t f;
        assert_int_equal(h_fed_init(&f, g_ec, &p), 0);
        assert_int_equal(h_fed_encrypt(&f, sk, (size_t)S, true), 0);
        int rc = h_fed_run(&f, true);
        if (rc < 0)
            fprintf(stderr, "# stage error %s: %s\n", f.err.code, f.err.message);
        assert_int_equal(rc, 0);
        assert_int_equal(f.reach, s_plain_reach(sk, (size_t)S, NULL));
        /* Structure: registers sorted, X last; every point decodes. */
        for (int d = 0; d < 3; d++) {
            size_t n = f.setup[d].len / DY_LLV2_RO_BLOCK;
            assert_true(n >= 1);
            assert_true(h_sorted(&f.setup[d], DY_LLV2_RO_BLOCK, n - 1));
            assert_true(h_points_ok(g_ec, f.setup[d].data, f.setup[d].len));
            if (d < 2) {
                n = f.ex[0][d].len / DY_LLV2_RO_BLOCK;
                assert_true(h_sorted(&f.ex[0][d], DY_LLV2_RO_BLOCK, n - 1));
                assert_true(h_points_ok(g_ec, f.ex[0][d].data, f.ex[0][d].len));
                assert_int_equal(f.ex[0][d].len, f.setup[2].len);
            }
        }
        /* AGG's setup output: every register of the three duchies, one X. */
        size_t regs = 0;
        for (int e = 0; e < S; e++)
            regs += sk[e].n;
        assert_int_equal(f.setup[2].len, (regs + 1) * DY_LLV2_RO_BLOCK);
        h_fed_free(&f);
        for (int e = 0; e < S; e++)
            dy_ll_sketch_free(&sk[e]);
    }
}

/* 120 registers per sketch from a pool of 300; 30 of 75 under valgrind (the noise, T + 2
 * blocks, stays the same). */
static void s_ro_noise(dy_noise_mech_t mech, int64_t want_T)
{
    const int S = 3;
    dy_ll_sketch_t sk[3];
    h_sketches(sk, S, scale_pick(120, 30), (int64_t)scale_pick(300, 75), 555 + (uint64_t)mech);
    dy_llv2_params_t p = h_params(1, S, 2);
    p.noise = mech;
    int64_t ob, op, orr;
    assert_int_equal(dy_noise_offset(mech, p.blinded_histogram, 3, 2, &ob), 0);
    assert_int_equal(dy_noise_offset(mech, p.publisher, 3, S, &op), 0);
    assert_int_equal(dy_noise_offset(mech, p.reach, 3, 1, &orr), 0);
    int64_t T = 2 * op + 2 * orr + ob * S * (S + 1);
    assert_int_equal(T, want_T);
    h_fed_t f;
    assert_int_equal(h_fed_init(&f, g_ec, &p), 0);
    assert_int_equal(h_fed_encrypt(&f, sk, S, true), 0);
    int rc = h_fed_run(&f, true);
    if (rc < 0)
        fprintf(stderr, "# stage error %s: %s\n", f.err.code, f.err.message);
    assert_int_equal(rc, 0);
    for (int d = 0; d < 3; d++) {
        assert_int_equal(f.c_setup[d].noise_blocks, (uint64_t)(T + 2));
        dy_buf_t reqs[H_MAX_EDP];
        size_t nr = h_reqs_of(&f, d, reqs), own = 0;
        for (size_t i = 0; i < nr; i++)
            own += reqs[i].len / DY_LLV2_RO_BLOCK;
        size_t in = d == 2 ? (f.setup[0].len + f.setup[1].len) / DY_LLV2_RO_BLOCK - 2 : 0;
        assert_int_equal(f.setup[d].len, (own + in + (size_t)T + 2 + 1) * DY_LLV2_RO_BLOCK);
    }
    uint64_t active;
    s_plain_reach(sk, S, &active);
    int64_t rlo, rhi, alo = (int64_t)active - 3 * orr;
    assert_int_equal(dy_ll_estimate(12, 100000, (uint64_t)(alo > 0 ? alo : 0), 1.0f, &rlo), 0);
    assert_int_equal(dy_ll_estimate(12, 100000, active + (uint64_t)(3 * orr), 1.0f, &rhi), 0);
    if (!(f.reach >= rlo && f.reach <= rhi))
        fprintf(stderr, "# reach %lld not in [%lld, %lld]\n", (long long)f.reach,
                (long long)rlo, (long long)rhi);
    assert_true(f.reach >= rlo && f.reach <= rhi);

    /* The concatenated form: either split uniquely (and then correctly),
     * or refused as ambiguous; never a wrong answer. */
    dy_buf_t cat = {0}, out = {0}, reqs[H_MAX_EDP];
    size_t nr = h_reqs_of(&f, 2, reqs);
    dy_buf_append(&cat, f.setup[0].data, f.setup[0].len);
    dy_buf_append(&cat, f.setup[1].data, f.setup[1].len);
    dy_err_t err;
    dy_err_clear(&err);
    rc = dy_rollv2_setup(f.ctx[2], reqs, nr, cat.data, cat.len, &out, NULL, &err);
    if (rc < 0) {
        assert_string_equal(err.code, "ambiguous_input");
    } else {
        assert_int_equal(out.len, f.setup[2].len);
    }
    dy_buf_free(&cat);
    dy_buf_free(&out);
    h_fed_free(&f);
    for (int e = 0; e < S; e++)
        dy_ll_sketch_free(&sk[e]);
}

static void test_ro_noise_geometric(void **state)
{
    s_ro_noise(DY_NOISE_GEOMETRIC, 130);
}

static void test_ro_noise_gaussian(void **state)
{
    s_ro_noise(DY_NOISE_DISCRETE_GAUSSIAN, 34);
}

/* NA2 contributes only its X block: the concatenation is ambiguous. */
static void test_ro_concat_ambiguous(void **state)
{
    dy_ll_sketch_t sk[1];
    h_sketches(sk, 1, 50, 100, 9);
    dy_llv2_params_t p = h_params(1, 1, 1);
    h_fed_t f;
    assert_int_equal(h_fed_init(&f, g_ec, &p), 0);
    assert_int_equal(h_fed_encrypt(&f, sk, 1, true), 0);
    int rc = h_fed_setup(&f, true, true);
    assert_int_equal(rc, -EINVAL);
    assert_string_equal(f.err.code, "ambiguous_input");
    assert_int_equal(f.setup[1].len, DY_LLV2_RO_BLOCK);
    h_fed_free(&f);
    dy_ll_sketch_free(&sk[0]);
}

static int s_exec(h_fed_t *f, int d, const uint8_t *in, size_t len, dy_err_t *err)
{
    dy_buf_t out = {0};
    int64_t reach;
    dy_err_clear(err);
    int rc = dy_rollv2_exec(f->ctx[d], in, len, &out, &reach, NULL, err);
    if (rc < 0)
        assert_int_equal(out.len, 0);
    dy_buf_free(&out);
    return rc;
}

static void test_ro_malformed(void **state)
{
    dy_ll_sketch_t sk[2];
    h_sketches(sk, 2, 40, 60, 21);
    dy_llv2_params_t p = h_params(1, 2, 2);
    h_fed_t f;
    assert_int_equal(h_fed_init(&f, g_ec, &p), 0);
    assert_int_equal(h_fed_encrypt(&f, sk, 2, true), 0);
    assert_int_equal(h_fed_run(&f, true), 0);
    dy_err_t err;
    for (int d = 0; d < 3; d++) {
        const dy_buf_t *in = d == 0 ? &f.setup[2] : &f.ex[0][d - 1];
        assert_int_equal(s_exec(&f, d, in->data, in->len, &err), 0);
        assert_int_equal(s_exec(&f, d, in->data, in->len - 1, &err), -EINVAL);
        assert_string_equal(err.code, "bad_length");
        assert_int_equal(s_exec(&f, d, in->data, 0, &err), -EINVAL);
        uint8_t *c = malloc(in->len);
        size_t npts = in->len / DY_PT_LEN, at[3] = {0, npts / 2, npts - 1};
        for (int k = 0; k < 3; k++) {
            memcpy(c, in->data, in->len);
            c[at[k] * DY_PT_LEN + 10] ^= 0x40;
            assert_int_equal(s_exec(&f, d, c, in->len, &err), -EINVAL);
            assert_string_equal(err.code, "invalid_point");
        }
        free(c);
    }
    /* Setup: a bad requisition and a bad NA output. */
    {
        dy_buf_t out = {0}, bad = {0};
        dy_buf_append(&bad, f.req[0].data, f.req[0].len);
        bad.data[bad.len - 1] ^= 1;
        dy_err_clear(&err);
        assert_int_equal(dy_rollv2_setup(f.ctx[0], &bad, 1, NULL, 0, &out, NULL, &err), -EINVAL);
        assert_string_equal(err.code, "invalid_point");
        dy_err_clear(&err);
        assert_int_equal(dy_rollv2_setup_agg(f.ctx[2], NULL, 0, bad.data, bad.len,
                                             f.setup[1].data, f.setup[1].len, &out, NULL, &err),
                         -EINVAL);
        assert_string_equal(err.code, "invalid_point");
        dy_err_clear(&err);
        assert_int_equal(dy_rollv2_setup_agg(f.ctx[2], NULL, 0, f.setup[0].data, 0,
                                             f.setup[1].data, f.setup[1].len, &out, NULL, &err),
                         -EINVAL);
        assert_string_equal(err.code, "bad_length");
        dy_buf_free(&bad);
        dy_buf_free(&out);
    }
    /* Lookup miss: X replaced by Enc_{Y3}(5·P), which AGG decrypts to 5·P
     * although no noise was added. */
    {
        BN_CTX *ctx = BN_CTX_new();
        EC_POINT *y3 = dy_ec_point_new(g_ec), *u = dy_ec_point_new(g_ec),
                 *e = dy_ec_point_new(g_ec), *m = dy_ec_point_new(g_ec);
        BIGNUM *r = dy_scalar_new(), *five = dy_scalar_new();
        assert_int_equal(dy_ec_decode_compressed(g_ec, y3, f.pub[2], DY_PTC_LEN, ctx), 0);
        dy_ec_fixed_t *t3 = dy_ec_fixed_new(g_ec, y3);
        assert_non_null(t3);
        BN_set_word(five, 5);
        assert_int_equal(dy_ec_mul(g_ec, m, dy_ec_const(g_ec, DY_EC_UNIT), five, ctx), 0);
        assert_int_equal(dy_ec_rand_scalars(g_ec, &r, 1), 0);
        assert_int_equal(dy_eg_encrypt(g_ec, t3, u, e, m, r, ctx), 0);
        const dy_buf_t *in = &f.ex[0][1];
        uint8_t *c = malloc(in->len);
        memcpy(c, in->data, in->len);
        assert_int_equal(dy_ec_encode(g_ec, u, c + in->len - DY_CT_LEN, ctx), 0);
        assert_int_equal(dy_ec_encode(g_ec, e, c + in->len - DY_PT_LEN, ctx), 0);
        assert_int_equal(s_exec(&f, 2, c, in->len, &err), -EINVAL);
        assert_string_equal(err.code, "noise_lookup_miss");
        free(c);
        dy_ec_fixed_destroy(&t3);
        EC_POINT_free(y3);
        EC_POINT_free(u);
        EC_POINT_free(e);
        EC_POINT_free(m);
        dy_scalar_free(&r);
        dy_scalar_free(&five);
        BN_CTX_free(ctx);
    }
    h_fed_free(&f);
    dy_ll_sketch_free(&sk[0]);
    dy_ll_sketch_free(&sk[1]);
}

/* Property 6: re-running an NA's execution re-blinds every register but
 * decrypts X identically; the reach does not change. */
static void test_ro_rerun(void **state)
{
    dy_ll_sketch_t sk[3];
    h_sketches(sk, 3, 60, 120, 61);
    dy_llv2_params_t p = h_params(1, 3, 2);
    p.noise = DY_NOISE_GEOMETRIC;
    h_fed_t f;
    assert_int_equal(h_fed_init(&f, g_ec, &p), 0);
    assert_int_equal(h_fed_encrypt(&f, sk, 3, true), 0);
    assert_int_equal(h_fed_run(&f, true), 0);
    dy_buf_t out = {0};
    dy_err_t err;
    dy_err_clear(&err);
    assert_int_equal(dy_rollv2_exec(f.ctx[0], f.setup[2].data, f.setup[2].len, &out, NULL, NULL,
                                    &err), 0);
    assert_int_equal(out.len, f.ex[0][0].len);
    size_t n = out.len / DY_LLV2_RO_BLOCK;
    for (size_t i = 0; i + 1 < n; i++)
        assert_memory_not_equal(out.data + i * DY_LLV2_RO_BLOCK,
                                f.ex[0][0].data + i * DY_LLV2_RO_BLOCK, DY_PT_LEN);
    assert_memory_equal(out.data + out.len - DY_CT_LEN, f.ex[0][0].data + out.len - DY_CT_LEN,
                        DY_CT_LEN);
    /* Continue the ring with the new output: same reach. */
    int64_t reach = f.reach, r2 = -1;
    dy_buf_t o2 = {0};
    assert_int_equal(dy_rollv2_exec(f.ctx[1], out.data, out.len, &o2, NULL, NULL, &err), 0);
    dy_buf_t o3 = {0};
    assert_int_equal(dy_rollv2_exec(f.ctx[2], o2.data, o2.len, &o3, &r2, NULL, &err), 0);
    assert_int_equal(r2, reach);
    dy_buf_free(&out);
    dy_buf_free(&o2);
    dy_buf_free(&o3);
    h_fed_free(&f);
    for (int e = 0; e < 3; e++)
        dy_ll_sketch_free(&sk[e]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ro_exact),
        cmocka_unit_test(test_ro_noise_geometric),
        cmocka_unit_test(test_ro_noise_gaussian),
        cmocka_unit_test(test_ro_concat_ambiguous),
        cmocka_unit_test(test_ro_malformed),
        cmocka_unit_test(test_ro_rerun),
    };
    return cmocka_run_group_tests(tests, h_group_setup, h_group_teardown);
}
