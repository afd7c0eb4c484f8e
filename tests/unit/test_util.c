/* test_util.c - dy.h helpers: errors, buffers, hex. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <string.h>

#include "dy.h"

static void test_err_first_wins(void **state)
{
    (void)state;
    dy_err_t err;
    dy_err_clear(&err);
    assert_int_equal(err.outcome, DY_OUTCOME_OK);
    assert_int_equal(dy_err_set(&err, -EINVAL, "bad_length", "length %d", 7), -EINVAL);
    assert_int_equal(err.outcome, DY_OUTCOME_PERMFAIL);
    assert_string_equal(err.code, "bad_length");
    assert_string_equal(err.message, "length 7");
    dy_err_set(&err, -EIO, "io", "later");
    assert_string_equal(err.code, "bad_length");
    dy_err_clear(&err);
    dy_err_set(&err, -EIO, "io", "x");
    assert_int_equal(err.outcome, DY_OUTCOME_TEMPFAIL);
    assert_int_equal(dy_err_set(NULL, -ENOMEM, "a", "b"), -ENOMEM);
}

static void test_buf(void **state)
{
    (void)state;
    dy_buf_t b = {0};
    for (int i = 0; i < 1000; i++) {
        uint8_t c = (uint8_t)i;
        assert_int_equal(dy_buf_append(&b, &c, 1), 0);
    }
    assert_int_equal(b.len, 1000);
    for (int i = 0; i < 1000; i++)
        assert_int_equal(b.data[i], (uint8_t)i);
    uint8_t *p = dy_buf_extend(&b, 24);
    assert_non_null(p);
    assert_ptr_equal(p, b.data + 1000);
    assert_int_equal(b.len, 1024);
    assert_int_equal(dy_buf_append(&b, NULL, 0), 0);
    assert_null(dy_buf_extend(&b, SIZE_MAX));
    assert_int_equal(b.len, 1024);
    dy_buf_free(&b);
    assert_null(b.data);
    assert_int_equal(b.len, 0);
    dy_buf_free(&b);
    dy_buf_free(NULL);
    /* Nothing appended to an empty buffer is not "out of memory" (found by fuzz_llv2: an
     * NA without requisitions sent an empty part). */
    assert_int_equal(dy_buf_append(&b, NULL, 0), 0);
    assert_non_null(dy_buf_extend(&b, 0));
    assert_int_equal(b.len, 0);
    dy_buf_free(&b);
}

static void test_hex(void **state)
{
    (void)state;
    uint8_t in[3] = {0x00, 0xab, 0x7f}, out[3];
    char hex[7];
    dy_hex(in, 3, hex);
    assert_string_equal(hex, "00ab7f");
    assert_int_equal(dy_unhex("00AB7f", out, sizeof(out)), 3);
    assert_memory_equal(in, out, 3);
    assert_int_equal(dy_unhex("abc", out, sizeof(out)), -EINVAL);
    assert_int_equal(dy_unhex("zz", out, sizeof(out)), -EINVAL);
    assert_int_equal(dy_unhex("0011223344", out, sizeof(out)), -EINVAL);
}

static void test_b64url_and_ids(void **state)
{
    (void)state;
    const uint8_t in[5] = {0xfb, 0xff, 0x00, 0x10, 0x83};
    char enc[16];
    assert_int_equal(dy_b64url_encode(in, 5, enc, sizeof(enc)), 7);
    assert_string_equal(enc, "-_8AEIM");
    uint8_t out[8];
    assert_int_equal(dy_b64url_decode(enc, 7, out, sizeof(out)), 5);
    assert_memory_equal(out, in, 5);
    assert_int_equal(dy_b64url_decode("-_8AEIM", 7, out, 4), -EINVAL);  /* too long */
    assert_int_equal(dy_b64url_decode("-_8AEIN", 7, out, sizeof(out)), -EINVAL); /* bits */
    assert_int_equal(dy_b64url_decode("AAAAA", 5, out, sizeof(out)), -EINVAL);   /* 1 mod 4 */
    assert_int_equal(dy_b64url_decode("AA==", 4, out, sizeof(out)), -EINVAL);    /* no pad */
    assert_int_equal(dy_b64url_decode("a+b/", 4, out, sizeof(out)), -EINVAL);    /* alphabet */
    assert_int_equal(dy_b64url_value('_'), 63);
    assert_int_equal(dy_b64url_value('='), -1);

    char id[DY_EXT_ID_LEN + 1];
    uint64_t v = 0;
    dy_ext_id_encode(0x0123456789abcdefULL, id);
    assert_int_equal(strlen(id), DY_EXT_ID_LEN);
    assert_int_equal(dy_ext_id_decode(id, &v), 0);
    assert_true(v == 0x0123456789abcdefULL);
    dy_ext_id_encode(0, id);
    assert_int_equal(dy_ext_id_decode(id, &v), -EINVAL);          /* zero */
    assert_int_equal(dy_ext_id_decode("AAAAAAAAAAB", &v), -EINVAL); /* non-canonical */
    assert_int_equal(dy_ext_id_decode("AAAAAAAAAA", &v), -EINVAL);  /* length */
    assert_int_equal(dy_ext_id_decode(NULL, &v), -EINVAL);
}

static void test_clocks(void **state)
{
    (void)state;
    double a = dy_now(), c = dy_cpu_now();
    volatile double x = 0;
    for (int i = 0; i < 1000000; i++)
        x += i;
    assert_true(dy_now() >= a);
    assert_true(dy_cpu_now() >= c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_err_first_wins),
        cmocka_unit_test(test_buf),
        cmocka_unit_test(test_hex),
        cmocka_unit_test(test_b64url_and_ids),
        cmocka_unit_test(test_clocks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
