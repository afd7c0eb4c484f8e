/* tests/unit/llv2_harness.h - an in-process three-duchy federation for the
 * LLv2 and reach-only LLv2 tests: key generation at NA1, NA2 and AGG, the
 * data providers' sketch encryption (requisition e goes to duchy e mod 3),
 * then every stage round the ring, keeping each stage's output, counters
 * and wall time so that tests can check results, structure and sizes.
 * Included by test_llv2.c and test_rollv2.c only (static functions).
 */
#ifndef DY_TEST_LLV2_HARNESS_H
#define DY_TEST_LLV2_HARNESS_H

#include "protocol/llv2.h"
#include "par.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define H_MAX_EDP 8
#define H_MAX_K 16

typedef struct {
    dy_ec_t *ec;                  /* borrowed */
    dy_llv2_params_t prm;
    uint8_t x[3][DY_SCALAR_LEN];
    uint8_t pub[3][DY_PTC_LEN];
    uint8_t Y[DY_PTC_LEN];
    dy_llv2_t *ctx[3];            /* owned */
    dy_buf_t req[H_MAX_EDP];      /* owned: encrypted sketches */
    size_t nreq;
    dy_buf_t setup[3];            /* owned: setup outputs */
    dy_buf_t ex[3][3];            /* owned: ex[phase][duchy] outputs */
    dy_stage_counters_t c_setup[3], c_ex[3][3];
    double t_setup[3], t_ex[3][3]; /* seconds */
    int64_t reach;
    double freq[H_MAX_K];
    dy_err_t err;                 /* the failing stage's error */
} h_fed_t;

/* The group context shared by a suite's tests: cmocka group setup and
 * teardown. */
static dy_ec_t *g_ec;

static int h_group_setup(void **state)
{
    (void)state;
    g_ec = dy_ec_new();
    return g_ec ? 0 : -1;
}

static int h_group_teardown(void **state)
{
    (void)state;
    dy_ec_destroy(&g_ec);
    return 0;
}

static uint64_t h_rng_state = 0x9e3779b97f4a7c15ULL;

static uint64_t h_rand(void)
{
    uint64_t x = h_rng_state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return h_rng_state = x;
}

static dy_llv2_params_t h_params(int K, int S, int threads)
{
    dy_llv2_params_t p = {.decay_rate = 12, .sketch_size = 100000, .max_frequency = K,
                          .num_sketches = S, .vid_width = 1.0f, .noise = DY_NOISE_NONE,
                          .blinded_histogram = {1, 1}, .publisher = {1, 1},
                          .reach = {40, exp(-80)}, .frequency = {40, exp(-80)},
                          .threads = threads};
    return p;
}

static int h_fed_init(h_fed_t *f, dy_ec_t *ec, const dy_llv2_params_t *prm)
{
    memset(f, 0, sizeof(*f));
    f->ec = ec;
    f->prm = *prm;
    dy_err_clear(&f->err);
    for (int d = 0; d < 3; d++)
        if (dy_llv2_keygen(ec, f->x[d], f->pub[d]) < 0)
            return -1;
    if (dy_llv2_combine_keys(ec, (const uint8_t(*)[DY_PTC_LEN])f->pub, 3, f->Y) < 0)
        return -1;
    for (int d = 0; d < 3; d++) {
        f->ctx[d] = dy_llv2_new(ec, prm, (dy_llv2_role_t)d, f->x[d],
                                (const uint8_t(*)[DY_PTC_LEN])f->pub, &f->err);
        if (f->ctx[d] == NULL)
            return -1;
    }
    return 0;
}

static void h_fed_free(h_fed_t *f)
{
    for (int d = 0; d < 3; d++) {
        dy_llv2_destroy(&f->ctx[d]);
        dy_buf_free(&f->setup[d]);
        for (int p = 0; p < 3; p++)
            dy_buf_free(&f->ex[p][d]);
    }
    for (size_t i = 0; i < f->nreq; i++)
        dy_buf_free(&f->req[i]);
}

static int h_fed_encrypt(h_fed_t *f, dy_ll_sketch_t *sk, size_t n, bool ro)
{
    f->nreq = n;
    for (size_t e = 0; e < n; e++)
        if (dy_llv2_encrypt_sketch(f->ec, f->Y, &sk[e], f->prm.max_frequency, ro,
                                   f->prm.threads, &f->req[e], &f->err) < 0)
            return -1;
    return 0;
}

/* Duchy d's requisitions (e mod 3 == d), copied into reqs. */
static size_t h_reqs_of(h_fed_t *f, int d, dy_buf_t *reqs)
{
    size_t n = 0;
    for (size_t e = 0; e < f->nreq; e++)
        if ((int)(e % 3) == d)
            reqs[n++] = f->req[e];
    return n;
}

/* Setup at every duchy.  ro_concat: reach-only AGG gets the concatenation
 * (dy_rollv2_setup) instead of the two outputs apart. */
static int h_fed_setup(h_fed_t *f, bool ro, bool ro_concat)
{
    for (int d = 0; d < 3; d++) {
        dy_buf_t reqs[H_MAX_EDP];
        size_t nr = h_reqs_of(f, d, reqs);
        dy_buf_t cat = {0};
        double t0 = dy_now();
        int rc;
        if (d == 2) {
            if (ro && !ro_concat) {
                rc = dy_rollv2_setup_agg(f->ctx[2], reqs, nr, f->setup[0].data, f->setup[0].len,
                                         f->setup[1].data, f->setup[1].len, &f->setup[2],
                                         &f->c_setup[2], &f->err);
            } else {
                dy_buf_append(&cat, f->setup[0].data, f->setup[0].len);
                dy_buf_append(&cat, f->setup[1].data, f->setup[1].len);
                rc = (ro ? dy_rollv2_setup : dy_llv2_setup)(f->ctx[2], reqs, nr, cat.data,
                                                             cat.len, &f->setup[2],
                                                             &f->c_setup[2], &f->err);
            }
        } else {
            rc = (ro ? dy_rollv2_setup : dy_llv2_setup)(f->ctx[d], reqs, nr, NULL, 0,
                                                         &f->setup[d], &f->c_setup[d], &f->err);
        }
        f->t_setup[d] = dy_now() - t0;
        dy_buf_free(&cat);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* The input of phase p at duchy d. */
static const dy_buf_t *h_input(h_fed_t *f, int p, int d)
{
    if (d > 0)
        return &f->ex[p][d - 1];
    return p == 0 ? &f->setup[2] : &f->ex[p - 1][2];
}

static int h_fed_phase(h_fed_t *f, int p, int d, bool ro)
{
    const dy_buf_t *in = h_input(f, p, d);
    double t0 = dy_now();
    int rc;
    dy_stage_counters_t *c = &f->c_ex[p][d];
    if (ro)
        rc = dy_rollv2_exec(f->ctx[d], in->data, in->len, &f->ex[p][d], &f->reach, c, &f->err);
    else if (p == 0)
        rc = dy_llv2_exec1(f->ctx[d], in->data, in->len, &f->ex[p][d], c, &f->err);
    else if (p == 1)
        rc = dy_llv2_exec2(f->ctx[d], in->data, in->len, &f->ex[p][d], &f->reach, c, &f->err);
    else
        rc = dy_llv2_exec3(f->ctx[d], in->data, in->len, &f->ex[p][d], f->freq, c, &f->err);
    f->t_ex[p][d] = dy_now() - t0;
    return rc;
}

/* Runs everything after encryption.  0 or the failing stage's rc. */
static int h_fed_run(h_fed_t *f, bool ro)
{
    int rc = h_fed_setup(f, ro, false);
    int phases = ro ? 1 : (f->prm.max_frequency == 1 ? 2 : 3);
    for (int p = 0; rc == 0 && p < phases; p++)
        for (int d = 0; rc == 0 && d < 3; d++)
            rc = h_fed_phase(f, p, d, ro);
    return rc;
}

/* Random sketches for S EDPs over a shared index pool: overlaps with equal
 * keys (counts add), key collisions across EDPs (destroyed) and registers
 * destroyed inside one sketch. */
static void h_sketches(dy_ll_sketch_t *sk, int S, size_t per, int64_t pool, uint64_t seed)
{
    h_rng_state = seed * 0x2545f4914f6cdd1dULL + 1;
    for (int e = 0; e < S; e++) {
        dy_ll_sketch_init(&sk[e], 12, 100000);
        for (size_t i = 0; i < per; i++) {
            int64_t idx = (int64_t)(h_rand() % (uint64_t)pool);
            uint64_t r = h_rand() % 16;
            uint64_t key = (uint64_t)idx * 7 + 1 + (r == 0 ? (uint64_t)e + 1 : 0);
            uint64_t count = 1 + h_rand() % 6;
            dy_ll_sketch_put(&sk[e], idx, key, count);
            if (r == 1) /* destroyed inside this sketch */
                dy_ll_sketch_put(&sk[e], idx, key + 1000, 1);
        }
        dy_ll_sketch_finish(&sk[e]);
    }
}

static bool h_sorted(const dy_buf_t *b, size_t block, size_t n)
{
    for (size_t i = 1; i < n; i++)
        if (memcmp(b->data + (i - 1) * block, b->data + i * block, block) > 0)
            return false;
    return true;
}

static bool h_points_ok(dy_ec_t *ec, const uint8_t *p, size_t len)
{
    BN_CTX *ctx = BN_CTX_new();
    size_t bad;
    bool ok = len % DY_PT_LEN == 0 && dy_ec_check_many(ec, p, len / DY_PT_LEN, &bad, ctx) == 0;
    BN_CTX_free(ctx);
    return ok;
}

#endif
