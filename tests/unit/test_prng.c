/* test_prng.c - crypto/prng.c against the known answers of CRYPTO.md §8.3
 * and §8.8, against a naive model of §8.3 written from the text (for many
 * moduli, lengths crossing keystream blocks, and the stream position left
 * behind), argument checks, and a throughput figure printed as '#' lines.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "crypto/prng.h"
#include "test_scale.h"

__extension__ typedef unsigned __int128 u128_t;

/* seed[i] = start + i. */
static void s_seed_seq(uint8_t seed[DY_PRNG_SEED_LEN], unsigned start)
{
    for (unsigned i = 0; i < DY_PRNG_SEED_LEN; i++)
        seed[i] = (uint8_t)(start + i);
}

static dy_prng_t *s_new_seq(unsigned start)
{
    uint8_t seed[DY_PRNG_SEED_LEN];
    s_seed_seq(seed, start);
    dy_prng_t *g = dy_prng_new(seed);
    assert_non_null(g);
    return g;
}

static void s_expect_u32(const uint32_t *got, const uint32_t *want, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (got[i] != want[i])
            fail_msg("value %zu: got %u, want %u", i, got[i], want[i]);
    }
}

/* ---- known answers ------------------------------------------------------- */

static void test_keystream_kat(void **state)
{
    (void)state;
    dy_prng_t *g = s_new_seq(0x00);
    uint8_t ks[32], want[32];
    assert_int_equal(dy_unhex("61a6936e4e8f101c1cc1f993b542a0d4"
                              "b3b2f089cd2a435206ca05f23127a19b", want, sizeof(want)), 32);
    assert_int_equal(dy_prng_bytes(g, ks, sizeof(ks)), 0);
    assert_memory_equal(ks, want, 32);
    dy_prng_destroy(&g);
    assert_null(g);
    dy_prng_destroy(&g); /* NULL-safe */
    dy_prng_destroy(NULL);
}

static void test_uniform_kat(void **state)
{
    (void)state;
    static const uint32_t w16[] = {97, 38, 19, 110, 78, 15, 16, 28,
                                   28, 65, 121, 19, 53, 66, 32, 84};
    static const uint32_t w4[] = {50, 112, 9, 77};
    static const uint32_t w100k[] = {20111, 7196, 82592, 46002, 35277, 17234, 51717, 12583};
    static const uint32_t w64k[] = {24998, 37742, 20111, 4124, 7361, 63891, 46402, 41172};
    uint32_t out[16];

    dy_prng_t *g = s_new_seq(0x00);
    assert_int_equal(dy_prng_uniform(g, out, 16, 127), 0);
    s_expect_u32(out, w16, 16);
    assert_int_equal(dy_prng_uniform(g, out, 4, 127), 0);
    s_expect_u32(out, w4, 4);
    dy_prng_destroy(&g);

    g = s_new_seq(0x00);
    assert_int_equal(dy_prng_uniform(g, out, 8, 100000), 0);
    s_expect_u32(out, w100k, 8);
    dy_prng_destroy(&g);

    g = s_new_seq(0x00);
    assert_int_equal(dy_prng_uniform(g, out, 8, 65536), 0);
    s_expect_u32(out, w64k, 8);
    dy_prng_destroy(&g);

    /* §8.3: fresh nonzero(16, 127) equals uniform(16, 127). */
    g = s_new_seq(0x00);
    assert_int_equal(dy_prng_nonzero(g, out, 16, 127), 0);
    s_expect_u32(out, w16, 16);
    dy_prng_destroy(&g);
}

static void test_shuffle_kat(void **state)
{
    (void)state;
    static const uint32_t w1[] = {1, 4, 6, 3, 8, 5, 7, 0, 2, 9};
    static const uint32_t w2[] = {8, 6, 5, 9, 4, 7, 1, 3, 2, 0};
    uint8_t seed[DY_PRNG_SEED_LEN];
    uint32_t v[10];

    s_seed_seq(seed, 0x00);
    for (uint32_t i = 0; i < 10; i++)
        v[i] = i;
    assert_int_equal(dy_prng_shuffle(seed, v, 10), 0);
    s_expect_u32(v, w1, 10);

    s_seed_seq(seed, 0x64);
    for (uint32_t i = 0; i < 10; i++)
        v[i] = i;
    assert_int_equal(dy_prng_shuffle(seed, v, 10), 0);
    s_expect_u32(v, w2, 10);
}

/* §8.8's worked example: the shares' PRNG lines, Γ = PRNG(c), σ′ = the first
 * 48 bytes of Γ (noise off), both shuffles, and the reach-only ρ. */
static void test_worked_example(void **state)
{
    (void)state;
    static const uint32_t p1[] = {97, 38, 19, 110, 78, 15, 16, 28};
    static const uint32_t p2[] = {5, 66, 22, 122, 126, 24, 59, 2};
    static const uint32_t rho[] = {95, 8, 25, 113, 120, 35, 52, 64};
    uint32_t a1[] = {35, 29, 6, 12, 50, 9, 43, 102};
    static const uint32_t s1[] = {102, 12, 9, 43, 29, 6, 50, 35};
    uint32_t a2[] = {93, 100, 124, 115, 82, 118, 86, 26};
    static const uint32_t s2[] = {26, 115, 118, 86, 100, 124, 82, 93};
    uint32_t out[8];

    dy_prng_t *g = s_new_seq(0x00);
    assert_int_equal(dy_prng_uniform(g, out, 8, 127), 0);
    s_expect_u32(out, p1, 8);
    dy_prng_destroy(&g);

    g = s_new_seq(0x30);
    assert_int_equal(dy_prng_uniform(g, out, 8, 127), 0);
    s_expect_u32(out, p2, 8);
    dy_prng_destroy(&g);

    uint8_t w1[DY_PRNG_SEED_LEN], w2[DY_PRNG_SEED_LEN], c[DY_PRNG_SEED_LEN];
    s_seed_seq(w1, 0x60);
    s_seed_seq(w2, 0x90);
    for (int i = 0; i < DY_PRNG_SEED_LEN; i++) {
        c[i] = w1[i] ^ w2[i];
        assert_int_equal(c[i], i < 16 ? 0xf0 : i < 32 ? 0xd0 : 0x30);
    }

    uint8_t sp[DY_PRNG_SEED_LEN], want[DY_PRNG_SEED_LEN];
    assert_int_equal(dy_unhex("df0819f1f823ff3440157b105a60db98b979c45823ac1bb9eadfcd65086b01c3"
                              "357adac8632ce215958fa2deeb4fe6aa", want, sizeof(want)),
                     DY_PRNG_SEED_LEN);
    g = dy_prng_new(c);
    assert_non_null(g);
    assert_int_equal(dy_prng_bytes(g, sp, sizeof(sp)), 0);
    assert_memory_equal(sp, want, sizeof(sp));
    dy_prng_destroy(&g);

    assert_int_equal(dy_prng_shuffle(sp, a1, 8), 0);
    s_expect_u32(a1, s1, 8);
    assert_int_equal(dy_prng_shuffle(sp, a2, 8), 0);
    s_expect_u32(a2, s2, 8);

    g = dy_prng_new(c);
    assert_non_null(g);
    assert_int_equal(dy_prng_nonzero(g, out, 8, 127), 0);
    s_expect_u32(out, rho, 8);
    dy_prng_destroy(&g);
}

/* ---- a naive model of §8.3, written straight from the text ------------- */

/* uniform(n, q) on model generator m, byte by byte through dy_prng_bytes. */
static void s_model_uniform(dy_prng_t *m, uint32_t *out, size_t n, uint64_t q)
{
    unsigned L = 0;
    while (L < 64 && ((q - 1) >> L) != 0)
        L++;
    unsigned bpv = (L + 7) / 8;
    uint64_t mask = ((uint64_t)1 << L) - 1;
    double phi = (double)(((uint64_t)1 << L) - q) / (double)((uint64_t)1 << L);
    size_t acc = 0;
    while (acc < n) {
        uint64_t need = n - acc;
        uint64_t batch = (uint64_t)(need + 1.0 + phi * need / (1 - phi));
        uint8_t *bytes = malloc(batch * bpv);
        assert_non_null(bytes);
        assert_int_equal(dy_prng_bytes(m, bytes, batch * bpv), 0);
        for (uint64_t b = 0; b < batch && acc < n; b++) {
            uint64_t v = 0;
            for (unsigned j = 0; j < bpv; j++)
                v = v << 8 | bytes[b * bpv + j];
            v &= mask;
            if (v < q)
                out[acc++] = (uint32_t)v;
        }
        free(bytes);
    }
}

static void s_model_nonzero(dy_prng_t *m, uint32_t *out, size_t n, uint64_t q)
{
    double phi = 1.0 / (double)q;
    size_t acc = 0;
    while (acc < n) {
        int64_t need = (int64_t)(n - acc);
        int64_t batch = (int64_t)(need + 1.0 + phi * need / (1 - phi));
        uint32_t *tmp = malloc((size_t)batch * sizeof(*tmp));
        assert_non_null(tmp);
        s_model_uniform(m, tmp, (size_t)batch, q);
        for (int64_t b = 0; b < batch && acc < n; b++) {
            if (tmp[b] != 0)
                out[acc++] = tmp[b];
        }
        free(tmp);
    }
}

/* Compares generator g with model m: the same values, then the same next
 * keystream bytes (so the stream position matches too). */
static void s_compare_stream(dy_prng_t *g, dy_prng_t *m)
{
    uint8_t a[37], b[37];
    assert_int_equal(dy_prng_bytes(g, a, sizeof(a)), 0);
    assert_int_equal(dy_prng_bytes(m, b, sizeof(b)), 0);
    assert_memory_equal(a, b, sizeof(a));
}

static const uint64_t s_moduli[] = {
    2, 3, 5, 100, 127, 128, 129, 200, 255, 256, 257, 65521, 65536, 65537, 100000,
    (1u << 24) - 1, (1u << 24), (1u << 24) + 1, 2147483647u, 2147483648u, 2147483649u,
    3000000000u, 4294967295u, 4294967296ull,
};

static void test_uniform_vs_model(void **state)
{
    (void)state;
    static const size_t lens[] = {0, 1, 2, 7, 1000, 20000, 70001};
    uint32_t *got = malloc(70001 * sizeof(*got)), *want = malloc(70001 * sizeof(*want));
    assert_non_null(got);
    assert_non_null(want);
    for (size_t qi = 0; qi < DY_ARRAY_LEN(s_moduli); qi++) {
        uint64_t q = s_moduli[qi];
        /* Both generators are advanced by an odd number of bytes first, so
         * the values do not start on an AES block boundary. */
        dy_prng_t *g = s_new_seq((unsigned)qi), *m = s_new_seq((unsigned)qi);
        s_compare_stream(g, m);
        for (size_t li = 0; li < DY_ARRAY_LEN(lens); li++) {
            size_t n = lens[li];
            memset(got, 0xee, n * sizeof(*got));
            assert_int_equal(dy_prng_uniform(g, got, n, q), 0);
            s_model_uniform(m, want, n, q);
            for (size_t i = 0; i < n; i++) {
                if ((uint64_t)got[i] >= q || got[i] != want[i])
                    fail_msg("q=%llu n=%zu i=%zu: %u vs model %u", (unsigned long long)q, n, i,
                             got[i], want[i]);
            }
            s_compare_stream(g, m);
        }
        dy_prng_destroy(&g);
        dy_prng_destroy(&m);
    }
    free(got);
    free(want);
}

static void test_nonzero_vs_model(void **state)
{
    (void)state;
    static const size_t lens[] = {1, 16, 999, 40000};
    uint32_t *got = malloc(40000 * sizeof(*got)), *want = malloc(40000 * sizeof(*want));
    assert_non_null(got);
    assert_non_null(want);
    for (size_t qi = 0; qi < DY_ARRAY_LEN(s_moduli); qi++) {
        uint64_t q = s_moduli[qi];
        dy_prng_t *g = s_new_seq(0x40 + (unsigned)qi), *m = s_new_seq(0x40 + (unsigned)qi);
        for (size_t li = 0; li < DY_ARRAY_LEN(lens); li++) {
            size_t n = lens[li];
            assert_int_equal(dy_prng_nonzero(g, got, n, q), 0);
            s_model_nonzero(m, want, n, q);
            for (size_t i = 0; i < n; i++) {
                if (got[i] == 0 || (uint64_t)got[i] >= q || got[i] != want[i])
                    fail_msg("q=%llu n=%zu i=%zu: %u vs model %u", (unsigned long long)q, n, i,
                             got[i], want[i]);
            }
            s_compare_stream(g, m);
        }
        dy_prng_destroy(&g);
        dy_prng_destroy(&m);
    }
    free(got);
    free(want);
}

/* q = 2 takes the low bit of each keystream byte; q = 2^32 takes every
 * 4-byte group whole (bpv 4, nothing rejected). */
static void test_uniform_edges(void **state)
{
    (void)state;
    enum { N = 5000 };
    uint8_t ks[4 * (N + 1)];
    uint32_t v[N];

    dy_prng_t *g = s_new_seq(7), *m = s_new_seq(7);
    assert_int_equal(dy_prng_uniform(g, v, N, 2), 0);
    assert_int_equal(dy_prng_bytes(m, ks, N + 1), 0); /* batch = N + 1 */
    size_t ones = 0;
    for (size_t i = 0; i < N; i++) {
        assert_int_equal(v[i], ks[i] & 1);
        ones += v[i];
    }
    assert_true(ones > N / 2 - 250 && ones < N / 2 + 250);
    s_compare_stream(g, m);
    dy_prng_destroy(&g);
    dy_prng_destroy(&m);

    g = s_new_seq(9);
    m = s_new_seq(9);
    assert_int_equal(dy_prng_uniform(g, v, N, (uint64_t)1 << 32), 0);
    assert_int_equal(dy_prng_bytes(m, ks, 4 * (N + 1)), 0);
    uint32_t top = 0;
    for (size_t i = 0; i < N; i++) {
        uint32_t w = (uint32_t)ks[4 * i] << 24 | (uint32_t)ks[4 * i + 1] << 16
                     | (uint32_t)ks[4 * i + 2] << 8 | ks[4 * i + 3];
        assert_int_equal(v[i], w);
        top |= v[i];
    }
    assert_true(top & 0x80000000u);
    s_compare_stream(g, m);
    dy_prng_destroy(&g);
    dy_prng_destroy(&m);

    /* q = 2^31 - 1: bpv 4, mask 2^31 - 1, values < q. */
    g = s_new_seq(11);
    assert_int_equal(dy_prng_uniform(g, v, N, 2147483647u), 0);
    for (size_t i = 0; i < N; i++)
        assert_true(v[i] < 2147483647u);
    dy_prng_destroy(&g);
}

static void test_uniform_distribution(void **state)
{
    (void)state;
    enum { N = 127 * 2000 };
    uint32_t *v = malloc(N * sizeof(*v));
    assert_non_null(v);
    unsigned cnt[127] = {0};
    dy_prng_t *g = s_new_seq(3);
    assert_int_equal(dy_prng_uniform(g, v, N, 127), 0);
    for (size_t i = 0; i < N; i++) {
        assert_true(v[i] < 127);
        cnt[v[i]]++;
    }
    /* Chi-squared with 126 degrees of freedom; 250 is far in the tail. */
    double chi = 0;
    for (int k = 0; k < 127; k++)
        chi += ((double)cnt[k] - 2000.0) * ((double)cnt[k] - 2000.0) / 2000.0;
    assert_true(chi < 250.0);
    dy_prng_destroy(&g);
    free(v);
}

static void test_invalid(void **state)
{
    (void)state;
    static const uint64_t bad[] = {0, 1, ((uint64_t)1 << 32) + 1, UINT64_MAX};
    uint32_t v[4];
    dy_prng_t *g = s_new_seq(0);
    for (size_t i = 0; i < DY_ARRAY_LEN(bad); i++) {
        assert_int_equal(dy_prng_uniform(g, v, 4, bad[i]), -EINVAL);
        assert_int_equal(dy_prng_nonzero(g, v, 4, bad[i]), -EINVAL);
    }
    assert_int_equal(dy_prng_uniform(NULL, v, 4, 127), -EINVAL);
    assert_int_equal(dy_prng_uniform(g, NULL, 4, 127), -EINVAL);
    assert_int_equal(dy_prng_bytes(g, NULL, 4), -EINVAL);
    assert_null(dy_prng_new(NULL));
    assert_int_equal(dy_prng_shuffle(NULL, v, 4), -EINVAL);
    /* Rejected calls did not move the stream. */
    uint8_t ks[32], want[32];
    assert_int_equal(dy_unhex("61a6936e4e8f101c1cc1f993b542a0d4"
                              "b3b2f089cd2a435206ca05f23127a19b", want, sizeof(want)), 32);
    assert_int_equal(dy_prng_bytes(g, ks, 32), 0);
    assert_memory_equal(ks, want, 32);
    dy_prng_destroy(&g);
}

/* The keystream does not depend on how it is cut into calls. */
static void test_bytes_continuity(void **state)
{
    (void)state;
    static const size_t cuts[] = {1, 15, 16, 17, 0, 3, 1000, 20000, 33, 70000};
    size_t total = 0;
    for (size_t i = 0; i < DY_ARRAY_LEN(cuts); i++)
        total += cuts[i];
    uint8_t *one = malloc(total), *many = malloc(total);
    assert_non_null(one);
    assert_non_null(many);
    dy_prng_t *g = s_new_seq(0x21), *m = s_new_seq(0x21);
    assert_int_equal(dy_prng_bytes(g, one, total), 0);
    size_t off = 0;
    for (size_t i = 0; i < DY_ARRAY_LEN(cuts); i++) {
        assert_int_equal(dy_prng_bytes(m, many + off, cuts[i]), 0);
        off += cuts[i];
    }
    assert_memory_equal(one, many, total);
    dy_prng_destroy(&g);
    dy_prng_destroy(&m);
    free(one);
    free(many);
}

/* Shuffle against the text: j = i + ρ_i mod (n - i), ρ_i little-endian
 * 128-bit from bytes [16i, 16i+16) of a fresh generator. */
static void test_shuffle_vs_model(void **state)
{
    (void)state;
    static const size_t lens[] = {0, 1, 2, 3, 100, 1023, 1024, 1025, 5000, 70000};
    uint8_t seed[DY_PRNG_SEED_LEN];
    s_seed_seq(seed, 0x99);
    for (size_t li = 0; li < DY_ARRAY_LEN(lens); li++) {
        size_t n = lens[li];
        uint32_t *v = malloc((n + 1) * sizeof(*v)), *w = malloc((n + 1) * sizeof(*w));
        uint8_t *ks = malloc(16 * n + 1);
        assert_non_null(v);
        assert_non_null(w);
        assert_non_null(ks);
        for (size_t i = 0; i < n; i++)
            v[i] = w[i] = (uint32_t)(i * 2654435761u);
        assert_int_equal(dy_prng_shuffle(seed, v, n), 0);
        dy_prng_t *m = dy_prng_new(seed);
        assert_non_null(m);
        assert_int_equal(dy_prng_bytes(m, ks, 16 * n), 0);
        dy_prng_destroy(&m);
        for (size_t i = 0; i + 1 < n; i++) {
            u128_t rho = 0;
            for (int b = 15; b >= 0; b--)
                rho = rho << 8 | ks[16 * i + (size_t)b];
            size_t j = i + (size_t)(rho % (u128_t)(n - i));
            uint32_t t = w[i];
            w[i] = w[j];
            w[j] = t;
        }
        if (n > 0)
            s_expect_u32(v, w, n);
        free(v);
        free(w);
        free(ks);
    }
}

/* ---- throughput ------------------------------------------------------------ */

static void test_throughput(void **state)
{
    (void)state;
    /* 10^7 values and a 10^6 shuffle; 10^6 and 10^5 under valgrind. */
    const size_t NU = scale_pick(10000000, 1000000), NS = scale_pick(1000000, 100000);
    uint32_t *v = malloc(NU * sizeof(*v));
    assert_non_null(v);
    memset(v, 0, NU * sizeof(*v)); /* fault the pages in before timing */
    dy_prng_t *g = s_new_seq(0x55);

    double t0 = dy_now();
    assert_int_equal(dy_prng_uniform(g, v, NU, 127), 0);
    double t1 = dy_now();
    uint64_t sum = 0;
    for (size_t i = 0; i < NU; i++)
        sum += v[i];
    /* Mean 63 within a generous margin; also keeps the work observable. */
    assert_true(sum > (uint64_t)NU * 62 && sum < (uint64_t)NU * 64);
    fprintf(stderr, "# uniform(%zu, 127): %.3f s, %.2f ns/value\n", NU, t1 - t0,
            (t1 - t0) * 1e9 / (double)NU);

    t0 = dy_now();
    assert_int_equal(dy_prng_uniform(g, v, NU, (uint64_t)1 << 32), 0);
    t1 = dy_now();
    fprintf(stderr, "# uniform(%zu, 2^32): %.3f s, %.2f ns/value\n", NU, t1 - t0,
            (t1 - t0) * 1e9 / (double)NU);

    t0 = dy_now();
    assert_int_equal(dy_prng_nonzero(g, v, NU, 127), 0);
    t1 = dy_now();
    fprintf(stderr, "# nonzero(%zu, 127): %.3f s, %.2f ns/value\n", NU, t1 - t0,
            (t1 - t0) * 1e9 / (double)NU);

    uint8_t seed[DY_PRNG_SEED_LEN];
    s_seed_seq(seed, 0x77);
    for (uint32_t i = 0; i < NS; i++)
        v[i] = i;
    t0 = dy_now();
    assert_int_equal(dy_prng_shuffle(seed, v, NS), 0);
    t1 = dy_now();
    uint64_t psum = 0, moved = 0;
    for (uint32_t i = 0; i < NS; i++) {
        psum += v[i];
        moved += v[i] != i;
    }
    assert_true(psum == (uint64_t)NS * (NS - 1) / 2 && moved > NS / 2);
    fprintf(stderr, "# shuffle(%zu): %.3f s, %.2f ns/value\n", NS, t1 - t0,
            (t1 - t0) * 1e9 / (double)NS);

    dy_prng_destroy(&g);
    free(v);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_keystream_kat),
        cmocka_unit_test(test_uniform_kat),
        cmocka_unit_test(test_shuffle_kat),
        cmocka_unit_test(test_worked_example),
        cmocka_unit_test(test_uniform_vs_model),
        cmocka_unit_test(test_nonzero_vs_model),
        cmocka_unit_test(test_uniform_edges),
        cmocka_unit_test(test_uniform_distribution),
        cmocka_unit_test(test_invalid),
        cmocka_unit_test(test_bytes_continuity),
        cmocka_unit_test(test_shuffle_vs_model),
        cmocka_unit_test(test_throughput),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
