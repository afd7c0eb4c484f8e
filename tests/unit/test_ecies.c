/* test_ecies.c - crypto/ecies.c: the §9.1 known answer (key, okm, the exact
 * 109-byte output, its decryption), the random path through an injected
 * source, round trips, and rejection of every tampered, truncated or
 * malformed ciphertext and key with one opaque error.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <openssl/ec.h>
#include <openssl/obj_mac.h>

#include "crypto/ec.h"
#include "crypto/ecies.h"

#define KAT_D "8cc49b774728ca6d3df8dc210fe59f8fbd676219bbcbd163a0fe124e844629a1"
#define KAT_Q "0250c6baca83a9fbf1f11d30cfd46236f10c9687344a39f148f33f948b4a749013"
#define KAT_E "bd6337822813c37601ed10f3f631c8b49991e9f589135afdab5035d879e374ba"
#define KAT_OKM "26704eda9c101f94ba8d1a75299f8908fcc39a957bc110a9df7b68ae017fe535" \
                "22ba7879bf788f6a03e8ebf1"
#define KAT_OUT "010408791f9a4a1ca44552d4e42e66a40e31eccc5db3437a8bc30900c46303ca28" \
                "2728794f04220c41daf6cf07e950941366f7ce3e387cda05d46a1e7323d77cc5c3" \
                "7b8305a394b800ef287b08629ca849e57d78e9f7a3a11d3e3ea8a7c3225a6d638c" \
                "a2e18ca384c2325be695"
#define KAT_M "hello, measurement consumer"
#define N_HEX "ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551"

static uint8_t s_d[32], s_q[33], s_e[32], s_okm[44], s_out[109], s_info[64];
static size_t s_info_len;

static int setup(void **state)
{
    (void)state;
    static const char info[] = "halo-duchy/v1/result\0computations/kat-1";
    s_info_len = sizeof(info) - 1; /* the embedded 00 separator, no terminator */
    memcpy(s_info, info, s_info_len);
    if (dy_unhex(KAT_D, s_d, 32) != 32 || dy_unhex(KAT_Q, s_q, 33) != 33
        || dy_unhex(KAT_E, s_e, 32) != 32 || dy_unhex(KAT_OKM, s_okm, 44) != 44
        || dy_unhex(KAT_OUT, s_out, 109) != 109)
        return -1;
    return 0;
}

/* The 65-byte form of a 33-byte point, through OpenSSL directly. */
static void s_uncompress(const uint8_t in[33], uint8_t out[65])
{
    EC_GROUP *g = EC_GROUP_new_by_curve_name(NID_X9_62_prime256v1);
    EC_POINT *p = EC_POINT_new(g);
    assert_int_equal(EC_POINT_oct2point(g, p, in, 33, NULL), 1);
    assert_int_equal(EC_POINT_point2oct(g, p, POINT_CONVERSION_UNCOMPRESSED, out, 65, NULL), 65);
    EC_POINT_free(p);
    EC_GROUP_free(g);
}

static void test_kat(void **state)
{
    (void)state;
    uint8_t q[33], okm[44];
    assert_int_equal(dy_ecies_pub_from_priv(s_d, q), 0);
    assert_memory_equal(q, s_q, 33);

    assert_int_equal(dy_ecies_kdf(s_q, 33, s_e, s_info, s_info_len, okm), 0);
    assert_memory_equal(okm, s_okm, 44);

    dy_buf_t out = {0};
    assert_int_equal(dy_ecies_encrypt_with(s_q, 33, s_e, s_info, s_info_len,
                                           (const uint8_t *)KAT_M, strlen(KAT_M), &out), 0);
    assert_int_equal(out.len, 109);
    assert_int_equal(out.len, strlen(KAT_M) + DY_ECIES_OVERHEAD);
    assert_memory_equal(out.data, s_out, 109);

    /* The same with the recipient key in its 65-byte form. */
    uint8_t q65[65];
    s_uncompress(s_q, q65);
    out.len = 0;
    assert_int_equal(dy_ecies_encrypt_with(q65, 65, s_e, s_info, s_info_len,
                                           (const uint8_t *)KAT_M, strlen(KAT_M), &out), 0);
    assert_memory_equal(out.data, s_out, 109);

    dy_buf_t pt = {0};
    assert_int_equal(dy_ecies_decrypt(s_d, s_info, s_info_len, s_out, 109, &pt), 0);
    assert_int_equal(pt.len, strlen(KAT_M));
    assert_memory_equal(pt.data, KAT_M, pt.len);
    dy_buf_free(&pt);
    dy_buf_free(&out);
}

/* An injected random source that hands out queued 32-byte blocks. */
typedef struct {
    const uint8_t *blocks[4];
    size_t n, next;
    bool fail;
} s_src_t;

static int s_src(void *arg, uint8_t *buf, size_t len)
{
    s_src_t *s = arg;
    if (s->fail || len != 32 || s->next >= s->n)
        return -EIO;
    memcpy(buf, s->blocks[s->next++], 32);
    return 0;
}

/* dy_ecies_encrypt draws e from dy_rand_bytes, redrawing out-of-range
 * scalars: with the KAT e queued it reproduces the KAT output. */
static void test_random_path(void **state)
{
    (void)state;
    static const uint8_t zero[32] = {0};
    uint8_t n[32];
    assert_int_equal(dy_unhex(N_HEX, n, 32), 32);
    s_src_t src = {.blocks = {zero, n, s_e}, .n = 3};
    dy_rand_set_source(s_src, &src);
    dy_buf_t out = {0};
    int rc = dy_ecies_encrypt(s_q, 33, s_info, s_info_len, (const uint8_t *)KAT_M, strlen(KAT_M),
                              &out);
    assert_int_equal(rc, 0);
    assert_int_equal(src.next, 3);
    assert_int_equal(out.len, 109);
    assert_memory_equal(out.data, s_out, 109);

    /* A failing source is -EIO and leaves out alone. */
    src.fail = true;
    assert_int_equal(dy_ecies_encrypt(s_q, 33, s_info, s_info_len, (const uint8_t *)"x", 1, &out),
                     -EIO);
    uint8_t priv[32], pub[33];
    assert_int_equal(dy_ecies_keygen(priv, pub), -EIO);
    assert_int_equal(out.len, 109);

    /* keygen takes its scalar from the same source. */
    src = (s_src_t){.blocks = {s_d}, .n = 1};
    assert_int_equal(dy_ecies_keygen(priv, pub), 0);
    assert_memory_equal(priv, s_d, 32);
    assert_memory_equal(pub, s_q, 33);
    dy_rand_set_source(NULL, NULL);
    dy_buf_free(&out);
}

static void test_roundtrip(void **state)
{
    (void)state;
    static const size_t lens[] = {0, 1, 15, 16, 17, 1000, 100000};
    uint8_t priv[32], pub[33];
    assert_int_equal(dy_ecies_keygen(priv, pub), 0);
    uint8_t *msg = malloc(100000);
    assert_non_null(msg);
    for (size_t i = 0; i < 100000; i++)
        msg[i] = (uint8_t)(i * 31 + 7);
    for (size_t li = 0; li < DY_ARRAY_LEN(lens); li++) {
        size_t len = lens[li];
        dy_buf_t a = {0}, b = {0}, pt = {0};
        assert_int_equal(dy_buf_append(&a, "prefix", 6), 0);
        assert_int_equal(dy_ecies_encrypt(pub, 33, s_info, s_info_len, msg, len, &a), 0);
        assert_int_equal(a.len, 6 + len + DY_ECIES_OVERHEAD);
        assert_memory_equal(a.data, "prefix", 6);
        assert_int_equal(a.data[6], 0x01);
        assert_int_equal(a.data[7], 0x04);
        assert_int_equal(dy_ecies_encrypt(pub, 33, s_info, s_info_len, msg, len, &b), 0);
        /* A fresh ephemeral key each time. */
        assert_memory_not_equal(a.data + 6, b.data, 66);

        assert_int_equal(dy_buf_append(&pt, "keep", 4), 0);
        assert_int_equal(dy_ecies_decrypt(priv, s_info, s_info_len, a.data + 6, a.len - 6, &pt),
                         0);
        assert_int_equal(pt.len, 4 + len);
        assert_memory_equal(pt.data, "keep", 4);
        if (len)
            assert_memory_equal(pt.data + 4, msg, len);
        pt.len = 0;
        assert_int_equal(dy_ecies_decrypt(priv, s_info, s_info_len, b.data, b.len, &pt), 0);
        assert_int_equal(pt.len, len);
        dy_buf_free(&a);
        dy_buf_free(&b);
        dy_buf_free(&pt);
    }
    /* Empty info and the longest info. */
    uint8_t *info = calloc(1, DY_ECIES_INFO_MAX + 1);
    assert_non_null(info);
    size_t ilens[] = {0, DY_ECIES_INFO_MAX};
    for (size_t k = 0; k < 2; k++) {
        dy_buf_t a = {0}, pt = {0};
        assert_int_equal(dy_ecies_encrypt(pub, 33, info, ilens[k], msg, 10, &a), 0);
        assert_int_equal(dy_ecies_decrypt(priv, info, ilens[k], a.data, a.len, &pt), 0);
        assert_memory_equal(pt.data, msg, 10);
        dy_buf_free(&a);
        dy_buf_free(&pt);
    }
    dy_buf_t a = {0};
    assert_int_equal(dy_ecies_encrypt(pub, 33, info, DY_ECIES_INFO_MAX + 1, msg, 10, &a), -EINVAL);
    assert_int_equal(a.len, 0);
    assert_int_equal(dy_ecies_decrypt(priv, info, DY_ECIES_INFO_MAX + 1, s_out, 109, &a),
                     -EBADMSG);
    free(info);
    free(msg);
    dy_buf_free(&a);
}

/* Decrypts ct and expects the opaque error with out untouched. */
static void s_expect_bad(const uint8_t priv[32], const uint8_t *info, size_t info_len,
                         const uint8_t *ct, size_t len)
{
    dy_buf_t out = {0};
    assert_int_equal(dy_buf_append(&out, "z", 1), 0);
    assert_int_equal(dy_ecies_decrypt(priv, info, info_len, ct, len, &out), -EBADMSG);
    assert_int_equal(out.len, 1);
    assert_int_equal(out.data[0], 'z');
    dy_buf_free(&out);
}

static void test_decrypt_rejects(void **state)
{
    (void)state;
    uint8_t ct[109];

    /* Every single-bit change anywhere (version, Ē, ct, tag). */
    for (size_t i = 0; i < 109; i++) {
        for (int bit = 0; bit < 8; bit += 3) {
            memcpy(ct, s_out, 109);
            ct[i] ^= (uint8_t)(1 << bit);
            s_expect_bad(s_d, s_info, s_info_len, ct, 109);
        }
    }
    /* Every truncation, and an appended byte. */
    for (size_t len = 0; len < 109; len++)
        s_expect_bad(s_d, s_info, s_info_len, s_out, len);
    uint8_t longer[110];
    memcpy(longer, s_out, 109);
    longer[109] = 0;
    s_expect_bad(s_d, s_info, s_info_len, longer, 110);
    s_expect_bad(s_d, s_info, s_info_len, NULL, 109);

    /* Wrong info, wrong key, invalid keys. */
    s_expect_bad(s_d, s_info, s_info_len - 1, s_out, 109);
    s_expect_bad(s_d, NULL, 0, s_out, 109);
    uint8_t d2[32];
    memcpy(d2, s_d, 32);
    d2[31] ^= 1;
    s_expect_bad(d2, s_info, s_info_len, s_out, 109);
    static const uint8_t zero[32] = {0};
    s_expect_bad(zero, s_info, s_info_len, s_out, 109);
    uint8_t n[32];
    assert_int_equal(dy_unhex(N_HEX, n, 32), 32);
    s_expect_bad(n, s_info, s_info_len, s_out, 109);

    /* Ē in other encodings of the same point: hybrid 06/07 (which
     * oct2point would accept) and compressed 02/03 are refused. */
    memcpy(ct, s_out, 109);
    ct[1] = (uint8_t)(0x06 | (s_out[65] & 1));
    s_expect_bad(s_d, s_info, s_info_len, ct, 109);
    ct[1] = 0x02;
    s_expect_bad(s_d, s_info, s_info_len, ct, 109);
    /* Ē off the curve (Y + 1), X = p, and all zeros. */
    memcpy(ct, s_out, 109);
    ct[65] ^= 1;
    s_expect_bad(s_d, s_info, s_info_len, ct, 109);
    memcpy(ct, s_out, 109);
    assert_int_equal(dy_unhex("ffffffff00000001000000000000000000000000ffffffffffffffffffffffff",
                              ct + 2, 32), 32);
    s_expect_bad(s_d, s_info, s_info_len, ct, 109);
    memcpy(ct, s_out, 109);
    memset(ct + 2, 0, 64);
    s_expect_bad(s_d, s_info, s_info_len, ct, 109);
}

static void test_key_checks(void **state)
{
    (void)state;
    static const uint8_t zero[32] = {0};
    uint8_t pub[65], okm[44], n[32], bad[33];
    dy_buf_t out = {0};
    const uint8_t *m = (const uint8_t *)"m";
    assert_int_equal(dy_unhex(N_HEX, n, 32), 32);

    /* Private keys must be in [1, n-1]. */
    assert_int_equal(dy_ecies_pub_from_priv(zero, pub), -EINVAL);
    assert_int_equal(dy_ecies_pub_from_priv(n, pub), -EINVAL);
    n[31]--;
    assert_int_equal(dy_ecies_pub_from_priv(n, pub), 0); /* n - 1 */
    n[31]++;
    /* So must the ephemeral scalar. */
    assert_int_equal(dy_ecies_encrypt_with(s_q, 33, zero, s_info, s_info_len, m, 1, &out),
                     -EINVAL);
    assert_int_equal(dy_ecies_kdf(s_q, 33, n, s_info, s_info_len, okm), -EINVAL);

    /* Recipient keys (§1): X = 0 with 02 is a valid point, X = 1 is not,
     * 04 with 33 bytes, 02 with 65 bytes, a 1-byte 00, odd lengths. */
    memset(bad, 0, 33);
    bad[0] = 0x02;
    assert_int_equal(dy_ecies_encrypt_with(bad, 33, s_e, NULL, 0, m, 1, &out), 0);
    out.len = 0;
    bad[32] = 1;
    assert_int_equal(dy_ecies_encrypt_with(bad, 33, s_e, NULL, 0, m, 1, &out), -EINVAL);
    memcpy(bad, s_q, 33);
    bad[0] = 0x04;
    assert_int_equal(dy_ecies_encrypt_with(bad, 33, s_e, NULL, 0, m, 1, &out), -EINVAL);
    s_uncompress(s_q, pub);
    pub[0] = 0x02;
    assert_int_equal(dy_ecies_encrypt_with(pub, 65, s_e, NULL, 0, m, 1, &out), -EINVAL);
    pub[0] = 0x04;
    pub[64] ^= 1;
    assert_int_equal(dy_ecies_encrypt_with(pub, 65, s_e, NULL, 0, m, 1, &out), -EINVAL);
    static const uint8_t inf[1] = {0};
    assert_int_equal(dy_ecies_encrypt_with(inf, 1, s_e, NULL, 0, m, 1, &out), -EINVAL);
    assert_int_equal(dy_ecies_encrypt_with(s_q, 32, s_e, NULL, 0, m, 1, &out), -EINVAL);
    assert_int_equal(dy_ecies_encrypt_with(NULL, 33, s_e, NULL, 0, m, 1, &out), -EINVAL);
    assert_int_equal(dy_ecies_encrypt(inf, 1, NULL, 0, m, 1, &out), -EINVAL);
    assert_int_equal(out.len, 0);
    dy_buf_free(&out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kat),
        cmocka_unit_test(test_random_path),
        cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_decrypt_rejects),
        cmocka_unit_test(test_key_checks),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
