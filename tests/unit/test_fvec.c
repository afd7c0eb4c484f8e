/* test_fvec.c - the HMSS frequency vector (CRYPTO.md §8.1): the VID hash,
 * the (h, vid) ranking against a naive sort, the window mapping with and
 * without wrap, and the vector's values. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sketch/fvec.h"
#include "test_scale.h"

typedef struct {
    uint64_t h, vid;
} s_pair_t;

static int s_cmp(const void *pa, const void *pb)
{
    const s_pair_t *a = pa, *b = pb;
    if (a->h != b->h)
        return a->h < b->h ? -1 : 1;
    return (a->vid > b->vid) - (a->vid < b->vid);
}

/* order[rank] = vid, naively. */
static uint64_t *s_naive_order(uint64_t P)
{
    s_pair_t *pr = malloc(P * sizeof(*pr));
    uint64_t *order = malloc(P * sizeof(*order));
    assert_non_null(pr);
    assert_non_null(order);
    for (uint64_t v = 1; v <= P; v++)
        pr[v - 1] = (s_pair_t){dy_fvec_vid_hash(v), v};
    qsort(pr, P, sizeof(*pr), s_cmp);
    for (uint64_t i = 0; i < P; i++)
        order[i] = pr[i].vid;
    free(pr);
    return order;
}

static void test_hash_kat(void **state)
{
    (void)state;
    /* printf '%016x%016x' 1 21858450 | xxd -r -p | sha256sum: first 8 bytes. */
    assert_true(dy_fvec_vid_hash(1) == 0xc29ea1eab470f92fULL);
    assert_true(dy_fvec_vid_hash(1000000) == 0x3add6755937eb742ULL);
}

/* Checks ix against the window [lo, lo+R) of the naive ranking. */
static void s_check_window(const dy_fvec_index_t *ix, const uint64_t *order, uint64_t P,
                           uint64_t lo, size_t R)
{
    assert_int_equal(ix->population, P);
    assert_int_equal(ix->registers, R);
    size_t inside = 0;
    for (uint64_t v = 1; v <= P; v++)
        inside += ix->pos[v - 1] != UINT32_MAX;
    assert_int_equal(inside, R);
    for (size_t j = 0; j < R; j++)
        assert_int_equal(ix->pos[order[(lo + j) % P] - 1], j);
}

static void test_windows(void **state)
{
    (void)state;
    const uint64_t P = 1000;
    uint64_t *order = s_naive_order(P);
    dy_fvec_index_t ix;
    struct {
        float start, width;
        uint64_t lo;
        size_t R;
    } cases[] = {
        {0.0f, 1.0f, 0, 1000},    /* everyone, in rank order */
        {0.0f, 0.25f, 0, 250},    /* primary only */
        {0.5f, 0.25f, 500, 250},  /* primary only, inside */
        {0.75f, 0.25f, 750, 250}, /* up to the end exactly */
        {0.9f, 0.2f, 900, 200},   /* 100 primary + 100 wrapped */
        {0.5f, 1.0f, 500, 1000},  /* everyone, rotated */
        {1.0f, 0.1f, 0, 100},     /* start 1 = start 0 */
        {0.3f, 0.0001f, 300, 1},  /* width·P < 1: one register */
        {0.0f, 0.0015f, 0, 1},
        {0.0f, 0.0025f, 0, 2},
    };
    for (size_t i = 0; i < DY_ARRAY_LEN(cases); i++) {
        assert_int_equal(dy_fvec_index_init(&ix, P, cases[i].start, cases[i].width), 0);
        s_check_window(&ix, order, P, cases[i].lo, cases[i].R);
        dy_fvec_index_free(&ix);
    }
    /* Adjacent intervals partition the ranks: [0.1, 0.4) and [0.4, 0.7). */
    dy_fvec_index_t a, b;
    assert_int_equal(dy_fvec_index_init(&a, 777, 0.1f, 0.3f), 0);
    assert_int_equal(dy_fvec_index_init(&b, 777, 0.4f, 0.3f), 0);
    assert_int_equal(a.registers + b.registers, (size_t)(0.7 * 777) - (size_t)(0.1 * 777));
    for (uint64_t v = 0; v < 777; v++)
        assert_false(a.pos[v] != UINT32_MAX && b.pos[v] != UINT32_MAX);
    dy_fvec_index_free(&a);
    dy_fvec_index_free(&b);
    dy_fvec_index_free(&b);

    /* Errors. */
    assert_int_equal(dy_fvec_index_init(&ix, 0, 0, 1), -EINVAL);
    assert_int_equal(dy_fvec_index_init(&ix, 10, 0, 0), -EINVAL);
    assert_int_equal(dy_fvec_index_init(&ix, 10, 0, 1.5f), -EINVAL);
    assert_int_equal(dy_fvec_index_init(&ix, 10, -0.1f, 0.5f), -EINVAL);
    assert_int_equal(dy_fvec_index_init(&ix, 10, 1.1f, 0.5f), -EINVAL);
    assert_int_equal(dy_fvec_index_init(&ix, 1ULL << 31, 0, 1), -EINVAL);
    free(order);
}

static void test_build(void **state)
{
    (void)state;
    const uint64_t P = 5000;
    uint64_t *order = s_naive_order(P);
    dy_campaign_params_t cp = {P, 2, 1200, 6, 3};
    dy_campaign_t c;
    assert_int_equal(dy_campaign_generate(&cp, &c), 0);
    dy_fvec_index_t ix;
    assert_int_equal(dy_fvec_index_init(&ix, P, 0.8f, 0.4f), 0); /* wraps */
    assert_int_equal(ix.registers, 2000);
    uint32_t *out = malloc(ix.registers * sizeof(*out));
    uint64_t *ev = calloc(P + 1, sizeof(*ev));
    assert_non_null(out);
    assert_non_null(ev);
    for (uint32_t Ke = 1; Ke <= 4; Ke += 3) {
        assert_int_equal(dy_fvec_build(&ix, &c.edp[0], Ke, out), 0);
        memset(ev, 0, (P + 1) * sizeof(*ev));
        for (size_t i = 0; i < c.edp[0].n; i++)
            ev[c.edp[0].vids[i]] = c.edp[0].events[i];
        size_t nonzero = 0;
        for (size_t j = 0; j < ix.registers; j++) {
            uint64_t vid = order[(4000 + j) % P];
            uint64_t want = ev[vid] < Ke ? ev[vid] : Ke;
            assert_int_equal(out[j], want);
            nonzero += out[j] != 0;
        }
        /* About 40% of the 1200 people fall in the window. */
        assert_true(nonzero > 380 && nonzero < 580);
    }
    assert_int_equal(dy_fvec_build(&ix, &c.edp[0], 0, out), -EINVAL);
    /* A vid outside the population. */
    c.edp[1].vids[c.edp[1].n - 1] = P + 1;
    assert_int_equal(dy_fvec_build(&ix, &c.edp[1], 3, out), -EINVAL);
    free(out);
    free(ev);
    free(order);
    dy_fvec_index_free(&ix);
    dy_campaign_free(&c);
}

/* A population of 10^6 ranks in well under the time the hashing takes (10^5 under
 * valgrind). */
static void test_large(void **state)
{
    (void)state;
    const size_t R = scale_pick(1000000, 100000);
    dy_fvec_index_t ix;
    double t0 = dy_now();
    assert_int_equal(dy_fvec_index_init(&ix, R, 0.0f, 1.0f), 0);
    double t1 = dy_now();
    printf("# index of %zu: %.3f s\n", R, t1 - t0);
    assert_int_equal(ix.registers, R);
    /* A permutation of 0..R-1. */
    uint8_t *seen = calloc(R, 1);
    assert_non_null(seen);
    for (size_t v = 0; v < R; v++) {
        assert_true(ix.pos[v] < R);
        assert_int_equal(seen[ix.pos[v]]++, 0);
    }
    /* Spot-check the order: consecutive positions have ascending hashes. */
    uint64_t *vid_at = malloc(R * sizeof(*vid_at));
    assert_non_null(vid_at);
    for (size_t v = 0; v < R; v++)
        vid_at[ix.pos[v]] = v + 1;
    for (size_t j = 1; j < R; j += 997)
        assert_true(dy_fvec_vid_hash(vid_at[j - 1]) < dy_fvec_vid_hash(vid_at[j]));
    free(vid_at);
    free(seen);
    dy_fvec_index_free(&ix);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hash_kat),
        cmocka_unit_test(test_windows),
        cmocka_unit_test(test_build),
        cmocka_unit_test(test_large),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
