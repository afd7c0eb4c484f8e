/* test_sig.c - crypto/sig.c: the §9.3 verify known answer (and its
 * one-bit forgery), keys from raw octets, sign/verify round trips, wrong
 * keys and messages, strict DER (trailing bytes, long-form lengths, padded
 * integers, truncations), and the domain-separated message builder.
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
#include <openssl/evp.h>
#include <openssl/obj_mac.h>

#include "crypto/ec.h"
#include "crypto/sig.h"

#define KAT_Q "038e00db01a5e0dc50ff54b7a821ea60896a8dda6aadb6983e40feee773744c8c9"
#define KAT_MSG "halo-duchy/v1/kat-signature-message"
#define KAT_SIG "3045022100978ab74f8f97875cf54108c75e4d5c31d79dae2e5c7d947bcb5a9be9dcc7bba7" \
                "0220391cc0fc72eb523020d130932f883254689190d30d8aeb026609a9b37f43c485"
/* §9.1's ECIES key pair, reused as a known private/public pair. */
#define PAIR_D "8cc49b774728ca6d3df8dc210fe59f8fbd676219bbcbd163a0fe124e844629a1"
#define PAIR_Q "0250c6baca83a9fbf1f11d30cfd46236f10c9687344a39f148f33f948b4a749013"
#define N_HEX "ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551"

static uint8_t s_q[33], s_sig[71];

static int setup(void **state)
{
    (void)state;
    return dy_unhex(KAT_Q, s_q, 33) == 33 && dy_unhex(KAT_SIG, s_sig, 71) == 71 ? 0 : -1;
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

/* The KAT message, built with dy_sig_message (a bare label). */
static void s_kat_msg(dy_buf_t *m)
{
    assert_int_equal(dy_sig_message(m, KAT_MSG, NULL, 0), 0);
    assert_int_equal(m->len, strlen(KAT_MSG));
}

static void test_verify_kat(void **state)
{
    (void)state;
    dy_buf_t m = {0};
    s_kat_msg(&m);
    EVP_PKEY *k = dy_sig_key_from_pub(s_q, 33);
    assert_non_null(k);
    assert_int_equal(dy_sig_verify(k, m.data, m.len, s_sig, sizeof(s_sig)), 0);

    uint8_t bad[71];
    memcpy(bad, s_sig, sizeof(bad));
    bad[70] ^= 1; /* the last bit */
    assert_int_equal(dy_sig_verify(k, m.data, m.len, bad, sizeof(bad)), -EBADMSG);
    /* Another message, one byte shorter. */
    assert_int_equal(dy_sig_verify(k, m.data, m.len - 1, s_sig, sizeof(s_sig)), -EBADMSG);

    /* The same key from its 65-byte form. */
    uint8_t q65[65], back[33];
    s_uncompress(s_q, q65);
    EVP_PKEY *k65 = dy_sig_key_from_pub(q65, 65);
    assert_non_null(k65);
    assert_int_equal(dy_sig_verify(k65, m.data, m.len, s_sig, sizeof(s_sig)), 0);
    assert_int_equal(dy_sig_verify(k65, m.data, m.len, bad, sizeof(bad)), -EBADMSG);
    assert_int_equal(dy_sig_key_pub(k65, back), 0);
    assert_memory_equal(back, s_q, 33);
    assert_int_equal(dy_sig_key_pub(k, back), 0);
    assert_memory_equal(back, s_q, 33);

    EVP_PKEY_free(k);
    EVP_PKEY_free(k65);
    dy_buf_free(&m);
}

/* Verifies a modified KAT signature and expects -EBADMSG. */
static void s_expect_bad(EVP_PKEY *k, const dy_buf_t *m, const uint8_t *sig, size_t len)
{
    assert_int_equal(dy_sig_verify(k, m->data, m->len, sig, len), -EBADMSG);
}

static void test_strict_der(void **state)
{
    (void)state;
    dy_buf_t m = {0};
    s_kat_msg(&m);
    EVP_PKEY *k = dy_sig_key_from_pub(s_q, 33);
    assert_non_null(k);
    uint8_t b[80];

    /* Trailing bytes (still <= 72 bytes in all). */
    memcpy(b, s_sig, 71);
    b[71] = 0x00;
    s_expect_bad(k, &m, b, 72);
    /* Every truncation. */
    for (size_t len = 0; len < 71; len++)
        s_expect_bad(k, &m, s_sig, len);
    s_expect_bad(k, &m, NULL, 71);

    /* Outer length in long form: 30 81 45 ... (72 bytes, BER not DER). */
    b[0] = 0x30;
    b[1] = 0x81;
    memcpy(b + 2, s_sig + 1, 70);
    b[2] = 0x45;
    memcpy(b + 3, s_sig + 2, 69);
    s_expect_bad(k, &m, b, 72);

    /* s padded with a needless 00: 30 46 02 21 00 97.. 02 21 00 39.. */
    size_t n = 0;
    b[n++] = 0x30;
    b[n++] = 0x46;
    memcpy(b + n, s_sig + 2, 35); /* 02 21 00 r */
    n += 35;
    b[n++] = 0x02;
    b[n++] = 0x21;
    b[n++] = 0x00;
    memcpy(b + n, s_sig + 39, 32);
    n += 32;
    assert_int_equal(n, 72);
    s_expect_bad(k, &m, b, n);

    /* r without its sign byte: a negative INTEGER, 30 44 02 20 97.. */
    n = 0;
    b[n++] = 0x30;
    b[n++] = 0x44;
    b[n++] = 0x02;
    b[n++] = 0x20;
    memcpy(b + n, s_sig + 5, 32);
    n += 32;
    memcpy(b + n, s_sig + 37, 34);
    n += 34;
    assert_int_equal(n, 70);
    s_expect_bad(k, &m, b, n);

    /* Wrong outer tag, wrong inner tag, an extra INTEGER, longer than 72. */
    memcpy(b, s_sig, 71);
    b[0] = 0x31;
    s_expect_bad(k, &m, b, 71);
    memcpy(b, s_sig, 71);
    b[2] = 0x03;
    s_expect_bad(k, &m, b, 71);
    memcpy(b, s_sig, 71);
    b[1] = 0x48;
    b[71] = 0x02;
    b[72] = 0x01;
    b[73] = 0x01;
    s_expect_bad(k, &m, b, 74);
    memset(b, 0, sizeof(b));
    s_expect_bad(k, &m, b, sizeof(b));

    /* r = 0 and s = 0 are well-formed DER but never valid. */
    static const uint8_t zero_rs[] = {0x30, 0x06, 0x02, 0x01, 0x00, 0x02, 0x01, 0x00};
    s_expect_bad(k, &m, zero_rs, sizeof(zero_rs));

    /* The untouched signature still verifies (the cases above are real). */
    assert_int_equal(dy_sig_verify(k, m.data, m.len, s_sig, sizeof(s_sig)), 0);
    EVP_PKEY_free(k);
    dy_buf_free(&m);
}

static void test_roundtrip(void **state)
{
    (void)state;
    EVP_PKEY *k = dy_sig_keygen(), *other = dy_sig_keygen();
    assert_non_null(k);
    assert_non_null(other);
    uint8_t pub[33], opub[33];
    assert_int_equal(dy_sig_key_pub(k, pub), 0);
    assert_int_equal(dy_sig_key_pub(other, opub), 0);
    assert_memory_not_equal(pub, opub, 33);
    EVP_PKEY *kp = dy_sig_key_from_pub(pub, 33);
    assert_non_null(kp);

    uint8_t msg[300];
    for (size_t i = 0; i < sizeof(msg); i++)
        msg[i] = (uint8_t)i;
    for (int round = 0; round < 64; round++) {
        size_t len = (size_t)round * 4;
        uint8_t sig[DY_SIG_MAX], sig2[DY_SIG_MAX];
        size_t sl = 0, sl2 = 0;
        assert_int_equal(dy_sig_sign(k, msg, len, sig, &sl), 0);
        assert_true(sl >= 8 && sl <= DY_SIG_MAX);
        assert_int_equal(sig[0], 0x30);
        assert_int_equal(dy_sig_verify(kp, msg, len, sig, sl), 0);
        assert_int_equal(dy_sig_verify(k, msg, len, sig, sl), 0);
        /* Wrong key, other message, flipped bit. */
        assert_int_equal(dy_sig_verify(other, msg, len, sig, sl), -EBADMSG);
        assert_int_equal(dy_sig_verify(kp, msg, len + 1, sig, sl), -EBADMSG);
        sig[sl - 1] ^= 0x80;
        assert_int_equal(dy_sig_verify(kp, msg, len, sig, sl), -EBADMSG);
        /* ECDSA is randomised: two signatures differ, both verify. */
        sig[sl - 1] ^= 0x80;
        assert_int_equal(dy_sig_sign(k, msg, len, sig2, &sl2), 0);
        assert_false(sl == sl2 && memcmp(sig, sig2, sl) == 0);
        assert_int_equal(dy_sig_verify(kp, msg, len, sig2, sl2), 0);
    }
    /* Empty message with a NULL pointer. */
    uint8_t sig[DY_SIG_MAX];
    size_t sl = 0;
    assert_int_equal(dy_sig_sign(k, NULL, 0, sig, &sl), 0);
    assert_int_equal(dy_sig_verify(kp, NULL, 0, sig, sl), 0);
    assert_int_equal(dy_sig_verify(kp, msg, 1, sig, sl), -EBADMSG);

    EVP_PKEY_free(k);
    EVP_PKEY_free(other);
    EVP_PKEY_free(kp);
}

/* A source that hands out one fixed 32-byte block, then a second one. */
typedef struct {
    const uint8_t *blocks[3];
    size_t n, next;
} s_src_t;

static int s_src(void *arg, uint8_t *buf, size_t len)
{
    s_src_t *s = arg;
    if (len != 32 || s->next >= s->n)
        return -EIO;
    memcpy(buf, s->blocks[s->next++], 32);
    return 0;
}

static void test_keys(void **state)
{
    (void)state;
    uint8_t d[32], q[33], n[32], pub[33];
    static const uint8_t zero[32] = {0};
    assert_int_equal(dy_unhex(PAIR_D, d, 32), 32);
    assert_int_equal(dy_unhex(PAIR_Q, q, 33), 33);
    assert_int_equal(dy_unhex(N_HEX, n, 32), 32);

    /* A private key from raw octets has the right public point, and what
     * it signs verifies under the public key made from that point. */
    EVP_PKEY *k = dy_sig_key_from_priv(d);
    assert_non_null(k);
    assert_int_equal(dy_sig_key_pub(k, pub), 0);
    assert_memory_equal(pub, q, 33);
    EVP_PKEY *kp = dy_sig_key_from_pub(q, 33);
    assert_non_null(kp);
    uint8_t sig[DY_SIG_MAX];
    size_t sl = 0;
    assert_int_equal(dy_sig_sign(k, (const uint8_t *)"x", 1, sig, &sl), 0);
    assert_int_equal(dy_sig_verify(kp, (const uint8_t *)"x", 1, sig, sl), 0);
    /* A public-only key cannot sign. */
    assert_int_equal(dy_sig_sign(kp, (const uint8_t *)"x", 1, sig, &sl), -EIO);
    EVP_PKEY_free(k);
    EVP_PKEY_free(kp);

    /* Out-of-range scalars. */
    assert_null(dy_sig_key_from_priv(zero));
    assert_null(dy_sig_key_from_priv(n));
    assert_null(dy_sig_key_from_priv(NULL));

    /* keygen draws from dy_rand_bytes and redraws 0 and n. */
    s_src_t src = {.blocks = {zero, n, d}, .n = 3};
    dy_rand_set_source(s_src, &src);
    k = dy_sig_keygen();
    dy_rand_set_source(NULL, NULL);
    assert_non_null(k);
    assert_int_equal(src.next, 3);
    assert_int_equal(dy_sig_key_pub(k, pub), 0);
    assert_memory_equal(pub, q, 33);
    EVP_PKEY_free(k);

    /* Public points (§1): X = 0 with 02 is valid; X = 1, 04 with 33 bytes,
     * 02 with 65 bytes, off-curve Y, a 1-byte 00 and odd lengths are not. */
    uint8_t b[65];
    memset(b, 0, 33);
    b[0] = 0x02;
    kp = dy_sig_key_from_pub(b, 33);
    assert_non_null(kp);
    EVP_PKEY_free(kp);
    b[32] = 1;
    assert_null(dy_sig_key_from_pub(b, 33));
    memcpy(b, s_q, 33);
    b[0] = 0x04;
    assert_null(dy_sig_key_from_pub(b, 33));
    s_uncompress(s_q, b);
    b[0] = 0x02;
    assert_null(dy_sig_key_from_pub(b, 65));
    b[0] = 0x06 | (b[64] & 1); /* hybrid form */
    assert_null(dy_sig_key_from_pub(b, 65));
    b[0] = 0x04;
    b[64] ^= 1;
    assert_null(dy_sig_key_from_pub(b, 65));
    static const uint8_t inf[1] = {0};
    assert_null(dy_sig_key_from_pub(inf, 1));
    assert_null(dy_sig_key_from_pub(s_q, 32));
    assert_null(dy_sig_key_from_pub(NULL, 33));

    /* Keys on another curve are refused everywhere. */
    EVP_PKEY *p384 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
    assert_non_null(p384);
    assert_int_equal(dy_sig_key_pub(p384, pub), -EINVAL);
    assert_int_equal(dy_sig_sign(p384, (const uint8_t *)"x", 1, sig, &sl), -EIO);
    assert_int_equal(dy_sig_verify(p384, (const uint8_t *)"x", 1, s_sig, sizeof(s_sig)),
                     -EBADMSG);
    EVP_PKEY_free(p384);
    assert_int_equal(dy_sig_key_pub(NULL, pub), -EINVAL);
    assert_int_equal(dy_sig_verify(NULL, (const uint8_t *)"x", 1, s_sig, sizeof(s_sig)),
                     -EBADMSG);
}

static void test_message(void **state)
{
    (void)state;
    dy_buf_t m = {0};
    assert_int_equal(dy_buf_append(&m, "pre|", 4), 0);
    const dy_part_t parts[] = {
        {"computations/7", 14},
        {"", 0},
        {"\x00x", 2},
        {NULL, 0},
    };
    assert_int_equal(dy_sig_message(&m, "halo-duchy/v1/result-sig", parts, 4), 0);
    static const char want[] = "pre|halo-duchy/v1/result-sig\0computations/7\0\0\0x\0";
    assert_int_equal(m.len, sizeof(want) - 1);
    assert_memory_equal(m.data, want, m.len);

    /* Bad arguments leave the buffer as it was. */
    const dy_part_t bad[] = {{"a", 1}, {NULL, 3}};
    assert_int_equal(dy_sig_message(&m, "l", bad, 2), -EINVAL);
    assert_int_equal(dy_sig_message(&m, NULL, NULL, 0), -EINVAL);
    assert_int_equal(dy_sig_message(NULL, "l", NULL, 0), -EINVAL);
    assert_int_equal(m.len, sizeof(want) - 1);

    /* The label alone. */
    dy_buf_t l = {0};
    assert_int_equal(dy_sig_message(&l, "abc", NULL, 0), 0);
    assert_int_equal(l.len, 3);
    assert_memory_equal(l.data, "abc", 3);
    dy_buf_free(&l);
    dy_buf_free(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_verify_kat),
        cmocka_unit_test(test_strict_der),
        cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_keys),
        cmocka_unit_test(test_message),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
