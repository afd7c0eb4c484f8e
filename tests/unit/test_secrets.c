/* test_secrets.c - secrets at rest (common/secrets.c): seal/open round trip, the format
 * (version byte, 12-byte nonce, 16-byte tag, fresh nonce each time), every tampering and the
 * wrong key or computation id refused with -EBADMSG, a known-answer check of AES-256-GCM
 * through OpenSSL directly, and the master key file rules (size, hex, mode, O_EXCL). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/evp.h>

#include "secrets.h"

static char s_dir[] = "/tmp/test_secrets.XXXXXX";

static void s_key(uint8_t key[32], uint8_t seed)
{
    for (int i = 0; i < 32; i++)
        key[i] = (uint8_t)(seed + i * 7);
}

static void test_round_trip(void **state)
{
    uint8_t key[32];
    s_key(key, 1);
    const char *msg = "elgamal secret: 32 bytes of it, and a seed";
    for (size_t len = 0; len <= strlen(msg); len += 7) {
        dy_buf_t ct = {0}, pt = {0};
        assert_int_equal(dy_secrets_seal(key, "comp-1", (const uint8_t *)msg, len, &ct), 0);
        assert_int_equal(ct.len, len + DY_SECRETS_OVERHEAD);
        assert_int_equal(ct.data[0], 0x01);
        assert_int_equal(dy_secrets_open(key, "comp-1", ct.data, ct.len, &pt), 0);
        assert_int_equal(pt.len, len);
        if (len)
            assert_memory_equal(pt.data, msg, len);
        dy_buf_free(&ct);
        dy_buf_free(&pt);
    }
}

static void test_appends(void **state)
{
    uint8_t key[32];
    s_key(key, 2);
    dy_buf_t ct = {0}, pt = {0};
    assert_int_equal(dy_buf_append(&ct, "hdr", 3), 0);
    assert_int_equal(dy_secrets_seal(key, "c", (const uint8_t *)"abc", 3, &ct), 0);
    assert_int_equal(ct.len, 3 + 3 + DY_SECRETS_OVERHEAD);
    assert_memory_equal(ct.data, "hdr", 3);
    assert_int_equal(dy_buf_append(&pt, "x", 1), 0);
    assert_int_equal(dy_secrets_open(key, "c", ct.data + 3, ct.len - 3, &pt), 0);
    assert_int_equal(pt.len, 4);
    assert_memory_equal(pt.data, "xabc", 4);
    /* A failed open leaves out as it was. */
    ct.data[ct.len - 1] ^= 1;
    assert_int_equal(dy_secrets_open(key, "c", ct.data + 3, ct.len - 3, &pt), -EBADMSG);
    assert_int_equal(pt.len, 4);
    dy_buf_free(&ct);
    dy_buf_free(&pt);
}

static void test_fresh_nonce(void **state)
{
    uint8_t key[32];
    s_key(key, 3);
    dy_buf_t a = {0}, b = {0};
    assert_int_equal(dy_secrets_seal(key, "c", (const uint8_t *)"same", 4, &a), 0);
    assert_int_equal(dy_secrets_seal(key, "c", (const uint8_t *)"same", 4, &b), 0);
    assert_int_equal(a.len, b.len);
    assert_memory_not_equal(a.data + 1, b.data + 1, 12);
    assert_memory_not_equal(a.data, b.data, a.len);
    dy_buf_free(&a);
    dy_buf_free(&b);
}

static void test_refusals(void **state)
{
    uint8_t key[32], other[32];
    s_key(key, 4);
    s_key(other, 5);
    const uint8_t pt[] = "the hmss seed, 48 bytes long, more or less......";
    dy_buf_t ct = {0}, out = {0};
    assert_int_equal(dy_secrets_seal(key, "comp-a", pt, sizeof(pt), &ct), 0);
    /* Wrong key, wrong computation id (moved blob), empty id. */
    assert_int_equal(dy_secrets_open(other, "comp-a", ct.data, ct.len, &out), -EBADMSG);
    assert_int_equal(dy_secrets_open(key, "comp-b", ct.data, ct.len, &out), -EBADMSG);
    assert_int_equal(dy_secrets_open(key, "", ct.data, ct.len, &out), -EBADMSG);
    /* Every single-bit flip anywhere is refused. */
    for (size_t i = 0; i < ct.len; i++) {
        for (int bit = 0; bit < 8; bit += 3) {
            ct.data[i] ^= (uint8_t)(1 << bit);
            assert_int_equal(dy_secrets_open(key, "comp-a", ct.data, ct.len, &out), -EBADMSG);
            ct.data[i] ^= (uint8_t)(1 << bit);
        }
    }
    /* Truncation, extension, too short. */
    assert_int_equal(dy_secrets_open(key, "comp-a", ct.data, ct.len - 1, &out), -EBADMSG);
    assert_int_equal(dy_secrets_open(key, "comp-a", ct.data, DY_SECRETS_OVERHEAD - 1, &out),
                     -EBADMSG);
    assert_int_equal(dy_secrets_open(key, "comp-a", ct.data, 0, &out), -EBADMSG);
    dy_buf_t longer = {0};
    assert_int_equal(dy_buf_append(&longer, ct.data, ct.len), 0);
    assert_int_equal(dy_buf_append(&longer, "", 1), 0);
    assert_int_equal(dy_secrets_open(key, "comp-a", longer.data, longer.len, &out), -EBADMSG);
    assert_int_equal(out.len, 0);
    /* Still fine untouched. */
    assert_int_equal(dy_secrets_open(key, "comp-a", ct.data, ct.len, &out), 0);
    assert_memory_equal(out.data, pt, sizeof(pt));
    dy_buf_free(&longer);
    dy_buf_free(&ct);
    dy_buf_free(&out);
}

/* The sealed form decrypts with a plain AES-256-GCM implementation given the documented
 * layout and AAD = version byte || computation id. */
static void test_format_known(void **state)
{
    uint8_t key[32];
    s_key(key, 6);
    dy_buf_t ct = {0};
    const char *aad = "computations/xyz";
    assert_int_equal(dy_secrets_seal(key, aad, (const uint8_t *)"hello", 5, &ct), 0);
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    uint8_t out[5];
    int n;
    assert_int_equal(EVP_DecryptInit_ex(c, EVP_aes_256_gcm(), NULL, key, ct.data + 1), 1);
    assert_int_equal(EVP_DecryptUpdate(c, NULL, &n, ct.data, 1), 1);
    assert_int_equal(EVP_DecryptUpdate(c, NULL, &n, (const uint8_t *)aad, (int)strlen(aad)), 1);
    assert_int_equal(EVP_DecryptUpdate(c, out, &n, ct.data + 13, 5), 1);
    assert_int_equal(EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG, 16, ct.data + 18), 1);
    assert_int_equal(EVP_DecryptFinal_ex(c, out + 5, &n), 1);
    assert_memory_equal(out, "hello", 5);
    EVP_CIPHER_CTX_free(c);
    dy_buf_free(&ct);
}

static const char *s_path(const char *name)
{
    static char p[256];
    snprintf(p, sizeof(p), "%s/%s", s_dir, name);
    return p;
}

static void s_put(const char *name, const void *data, size_t len, mode_t mode)
{
    const char *p = s_path(name);
    unlink(p);
    FILE *f = fopen(p, "w");
    assert_non_null(f);
    fwrite(data, 1, len, f);
    fclose(f);
    chmod(p, mode);
}

static void test_master_key(void **state)
{
    uint8_t key[32], key2[32];
    /* Made: 32 bytes, 0600, loads; a second make refuses to overwrite. */
    assert_int_equal(dy_secrets_make_master(s_path("made.key")), 0);
    struct stat st;
    assert_int_equal(stat(s_path("made.key"), &st), 0);
    assert_int_equal(st.st_size, 32);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(dy_secrets_load_master(s_path("made.key"), key), 0);
    assert_int_equal(dy_secrets_make_master(s_path("made.key")), -EEXIST);
    assert_int_equal(dy_secrets_make_master(s_path("made2.key")), 0);
    assert_int_equal(dy_secrets_load_master(s_path("made2.key"), key2), 0);
    assert_memory_not_equal(key, key2, 32);

    /* Hex, with and without newline, equals the raw form. */
    uint8_t raw[32];
    s_key(raw, 9);
    char hex[66];
    dy_hex(raw, 32, hex);
    s_put("hex.key", hex, 64, 0600);
    memset(key, 0, 32);
    assert_int_equal(dy_secrets_load_master(s_path("hex.key"), key), 0);
    assert_memory_equal(key, raw, 32);
    hex[64] = '\n';
    s_put("hexnl.key", hex, 65, 0400);
    memset(key, 0, 32);
    assert_int_equal(dy_secrets_load_master(s_path("hexnl.key"), key), 0);
    assert_memory_equal(key, raw, 32);
    s_put("raw.key", raw, 32, 0600);
    assert_int_equal(dy_secrets_load_master(s_path("raw.key"), key), 0);
    assert_memory_equal(key, raw, 32);

    /* Refusals: size, bad hex, group/other bits, missing, a directory. */
    s_put("short.key", raw, 31, 0600);
    assert_int_equal(dy_secrets_load_master(s_path("short.key"), key), -EINVAL);
    s_put("long.key", raw, 32, 0600);
    FILE *f = fopen(s_path("long.key"), "a");
    fputc('x', f);
    fclose(f);
    assert_int_equal(dy_secrets_load_master(s_path("long.key"), key), -EINVAL);
    hex[3] = 'g';
    s_put("badhex.key", hex, 64, 0600);
    assert_int_equal(dy_secrets_load_master(s_path("badhex.key"), key), -EINVAL);
    s_put("group.key", raw, 32, 0640);
    assert_int_equal(dy_secrets_load_master(s_path("group.key"), key), -EPERM);
    s_put("other.key", raw, 32, 0604);
    assert_int_equal(dy_secrets_load_master(s_path("other.key"), key), -EPERM);
    assert_int_equal(dy_secrets_load_master(s_path("missing.key"), key), -ENOENT);
    assert_int_equal(dy_secrets_load_master(s_dir, key), -EINVAL);
}

static int s_setup(void **state)
{
    return mkdtemp(s_dir) ? 0 : -1;
}

static int s_teardown(void **state)
{
    const char *names[] = {"made.key", "made2.key", "hex.key",   "hexnl.key", "raw.key",
                           "short.key", "long.key", "badhex.key", "group.key", "other.key"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        unlink(s_path(names[i]));
    return rmdir(s_dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),  cmocka_unit_test(test_appends),
        cmocka_unit_test(test_fresh_nonce), cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_format_known), cmocka_unit_test(test_master_key),
    };
    return cmocka_run_group_tests(tests, s_setup, s_teardown);
}
