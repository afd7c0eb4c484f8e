/* test_blob.c - blob files (blob.h): streaming SHA-256, atomic commit,
 * crash leftovers and their sweep, injected ENOSPC/EIO, hash-verified
 * reads, retention removal.  Everything lives in a mkdtemp directory. */
/* cmocka.h needs these first. */
/* clang-format off */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
/* clang-format on */

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/sha.h>

#include "blob.h"

typedef struct {
    char *root;        /* mkdtemp directory, owned */
    dy_blobdir_t *dir; /* <root>/duchy-a */
} s_fix_t;

static int s_setup(void **state)
{
    s_fix_t *f = calloc(1, sizeof(*f));
    const char *base = getenv("TMPDIR");
    char tmpl[512];
    snprintf(tmpl, sizeof(tmpl), "%s/dy-blob-XXXXXX", base && base[0] ? base : "/tmp");
    if (!f || !mkdtemp(tmpl))
        return -1;
    f->root = strdup(tmpl);
    f->dir = dy_blobdir_new(f->root, "duchy-a");
    if (!f->dir)
        return -1;
    *state = f;
    return 0;
}

static int s_teardown(void **state)
{
    s_fix_t *f = *state;
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->root);
    int rc = system(cmd);
    dy_blobdir_destroy(&f->dir);
    free(f->root);
    free(f);
    return rc == 0 ? 0 : -1;
}

/* Counts regular files under dir whose names start with prefix ("" = all). */
static int s_count(const char *dir, const char *prefix)
{
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        char p[2048];
        snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
        struct stat sb;
        if (lstat(p, &sb) < 0)
            continue;
        if (S_ISDIR(sb.st_mode))
            n += s_count(p, prefix);
        else if (strncmp(e->d_name, prefix, strlen(prefix)) == 0)
            n++;
    }
    closedir(d);
    return n;
}

static bool s_exists(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0;
}

static void s_fill(uint8_t *buf, size_t n, uint8_t seed)
{
    for (size_t i = 0; i < n; i++)
        buf[i] = (uint8_t)(i * 31 + seed);
}

static dy_blob_key_t s_key(const char *comp, int stage, int64_t attempt, const char *slot)
{
    dy_blob_key_t k = {.computation = comp, .stage = stage, .attempt = attempt, .slot = slot};
    return k;
}

/* Writes n bytes in uneven chunks and commits. */
static int s_write_blob(dy_blobdir_t *d, const dy_blob_key_t *k, const uint8_t *data, size_t n,
                        dy_blob_info_t *info)
{
    dy_blob_writer_t *w = NULL;
    int rc = dy_blob_open(d, k, &w);
    if (rc < 0)
        return rc;
    size_t off = 0, step = 1;
    while (off < n) {
        size_t c = n - off < step ? n - off : step;
        rc = dy_blob_write(w, data + off, c);
        if (rc < 0) {
            dy_blob_abort(&w);
            return rc;
        }
        off += c;
        step = step * 3 + 7;
    }
    return dy_blob_commit(&w, info);
}

static void test_roundtrip(void **state)
{
    s_fix_t *f = *state;
    static uint8_t data[300000];
    s_fill(data, sizeof(data), 1);
    dy_blob_key_t k = s_key("AAAAAAAAAAE", 6, 1, "out");
    dy_blob_info_t info;
    assert_int_equal(s_write_blob(f->dir, &k, data, sizeof(data), &info), 0);
    uint8_t want[32];
    SHA256(data, sizeof(data), want);
    assert_memory_equal(info.sha256, want, 32);
    assert_int_equal(info.size, sizeof(data));
    char expect[1200];
    snprintf(expect, sizeof(expect), "%s/duchy-a/AAAAAAAAAAE/6/1/out", f->root);
    assert_string_equal(info.path, expect);
    struct stat sb;
    assert_int_equal(stat(info.path, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);
    dy_buf_t buf = {0};
    assert_int_equal(dy_blob_read(&info, &buf), 0);
    assert_int_equal(buf.len, sizeof(data));
    assert_memory_equal(buf.data, data, sizeof(data));
    dy_buf_free(&buf);
    assert_int_equal(dy_blob_verify(&info), 0);
    assert_int_equal(s_count(dy_blobdir_path(f->dir), ".tmp."), 0);

    /* An empty blob: zero bytes, SHA-256 of the empty string. */
    k = s_key("AAAAAAAAAAE", 6, 1, "empty");
    assert_int_equal(s_write_blob(f->dir, &k, data, 0, &info), 0);
    SHA256((const uint8_t *)"", 0, want);
    assert_memory_equal(info.sha256, want, 32);
    assert_int_equal(info.size, 0);
    assert_int_equal(dy_blob_read(&info, &buf), 0);
    assert_int_equal(buf.len, 0);
    dy_buf_free(&buf);
}

static void test_abort_leaves_nothing(void **state)
{
    s_fix_t *f = *state;
    uint8_t data[1000];
    s_fill(data, sizeof(data), 2);
    dy_blob_key_t k = s_key("c1", 8, 2, "out");
    dy_blob_writer_t *w = NULL;
    assert_int_equal(dy_blob_open(f->dir, &k, &w), 0);
    assert_int_equal(dy_blob_write(w, data, sizeof(data)), 0);
    assert_int_equal(s_count(dy_blobdir_path(f->dir), ".tmp."), 1);
    dy_blob_abort(&w);
    assert_null(w);
    dy_blob_abort(&w); /* NULL-safe */
    assert_int_equal(s_count(dy_blobdir_path(f->dir), ""), 0);
}

static void test_crash_then_sweep(void **state)
{
    s_fix_t *f = *state;
    /* A child writes half a blob and dies before commit. */
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dy_blob_key_t k = s_key("c2", 6, 1, "out");
        dy_blob_writer_t *w = NULL;
        if (dy_blob_open(f->dir, &k, &w) < 0 || dy_blob_write(w, "partial", 7) < 0)
            _exit(1);
        _exit(0); /* "crash": no commit, no abort */
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    char final[1200];
    snprintf(final, sizeof(final), "%s/c2/6/1/out", dy_blobdir_path(f->dir));
    assert_false(s_exists(final));
    assert_int_equal(s_count(dy_blobdir_path(f->dir), ".tmp."), 1);
    /* A committed blob next to it is not touched by the sweep. */
    dy_blob_key_t k = s_key("c2", 6, 1, "kept");
    dy_blob_info_t info;
    assert_int_equal(s_write_blob(f->dir, &k, (const uint8_t *)"abc", 3, &info), 0);
    size_t removed = 99;
    /* Too young for a sweep that spares live writers. */
    assert_int_equal(dy_blob_sweep(f->dir, 3600, &removed), 0);
    assert_int_equal(removed, 0);
    assert_int_equal(dy_blob_sweep(f->dir, 0, &removed), 0);
    assert_int_equal(removed, 1);
    assert_int_equal(s_count(dy_blobdir_path(f->dir), ".tmp."), 0);
    assert_int_equal(dy_blob_verify(&info), 0);
}

/* A killed mill's attempt: only that attempt's temporary files go, at any age; a
 * committed blob beside them and another attempt's temporary file stay. */
static void test_sweep_attempt(void **state)
{
    s_fix_t *f = *state;
    dy_blob_key_t k1 = s_key("c3", 8, 2, "out"), k2 = s_key("c3", 8, 3, "out");
    dy_blob_writer_t *w1 = NULL, *w2 = NULL;
    assert_int_equal(dy_blob_open(f->dir, &k1, &w1), 0);
    assert_int_equal(dy_blob_write(w1, "partial", 7), 0);
    assert_int_equal(dy_blob_open(f->dir, &k2, &w2), 0);
    dy_blob_key_t kept = s_key("c3", 8, 2, "kept");
    dy_blob_info_t info;
    assert_int_equal(s_write_blob(f->dir, &kept, (const uint8_t *)"abc", 3, &info), 0);
    assert_int_equal(s_count(dy_blobdir_path(f->dir), ".tmp."), 2);
    size_t removed = 99;
    assert_int_equal(dy_blob_sweep_attempt(f->root, "duchy-a", &k1, &removed), 0);
    assert_int_equal(removed, 1);
    assert_int_equal(s_count(dy_blobdir_path(f->dir), ".tmp."), 1);
    assert_int_equal(dy_blob_verify(&info), 0);
    /* an attempt that wrote nothing: no directory, no error */
    dy_blob_key_t none = s_key("c3", 9, 1, "out");
    assert_int_equal(dy_blob_sweep_attempt(f->root, "duchy-a", &none, &removed), 0);
    assert_int_equal(removed, 0);
    assert_int_equal(dy_blob_sweep_attempt(f->root, "../x", &k1, &removed), -EINVAL);
    dy_blob_abort(&w2);
    dy_blob_abort(&w1); /* its file is gone already: abort copes */
    assert_int_equal(s_count(dy_blobdir_path(f->dir), ".tmp."), 0);
}

/* Fault hook: fail op `arg->op` with arg->rc, counting calls. */
typedef struct {
    const char *op;
    int rc;
    int after; /* let this many calls of op pass first */
    int calls;
} s_fault_t;

static int s_fault(const char *op, void *arg)
{
    s_fault_t *ft = arg;
    if (strcmp(op, ft->op) != 0)
        return 0;
    return ft->calls++ >= ft->after ? ft->rc : 0;
}

static void s_fault_case(s_fix_t *f, const char *op, int err, int after)
{
    s_fault_t ft = {.op = op, .rc = err, .after = after};
    dy_blobdir_set_fault(f->dir, s_fault, &ft);
    uint8_t data[5000];
    s_fill(data, sizeof(data), 3);
    dy_blob_key_t k = s_key("c3", 6, 1, op);
    dy_blob_writer_t *w = NULL;
    assert_int_equal(dy_blob_open(f->dir, &k, &w), 0);
    int rc = 0;
    for (int i = 0; i < 5 && rc == 0; i++)
        rc = dy_blob_write(w, data + i * 1000, 1000);
    if (strcmp(op, "write") == 0) {
        assert_int_equal(rc, err);
        assert_int_equal(dy_blob_write(w, data, 1), err); /* sticky */
    } else {
        assert_int_equal(rc, 0);
    }
    dy_blob_info_t info;
    memset(&info, 0, sizeof(info));
    assert_int_equal(dy_blob_commit(&w, &info), err);
    assert_null(w);
    assert_string_equal(info.path, ""); /* not touched on failure */
    dy_blobdir_set_fault(f->dir, NULL, NULL);
    char final[1200];
    snprintf(final, sizeof(final), "%s/c3/6/1/%s", dy_blobdir_path(f->dir), op);
    assert_false(s_exists(final));
    assert_int_equal(s_count(dy_blobdir_path(f->dir), ""), 0);
    assert_true(ft.calls > 0);
}

static void test_enospc_eio_no_partial_file(void **state)
{
    s_fix_t *f = *state;
    s_fault_case(f, "write", -ENOSPC, 2); /* the disk fills mid-blob */
    s_fault_case(f, "write", -EIO, 0);
    s_fault_case(f, "fsync", -EIO, 0);
    s_fault_case(f, "link", -ENOSPC, 0);
    s_fault_case(f, "dirsync", -EIO, 0); /* the linked final name is taken back */
}

static void test_existing_final_name(void **state)
{
    s_fix_t *f = *state;
    dy_blob_key_t k = s_key("c4", 5, 0, "na1");
    dy_blob_info_t a, b;
    assert_int_equal(s_write_blob(f->dir, &k, (const uint8_t *)"same bytes", 10, &a), 0);
    /* A resend of the same bytes (crash before the database record). */
    assert_int_equal(s_write_blob(f->dir, &k, (const uint8_t *)"same bytes", 10, &b), 0);
    assert_string_equal(a.path, b.path);
    assert_memory_equal(a.sha256, b.sha256, 32);
    /* Other bytes never replace a final file. */
    assert_int_equal(s_write_blob(f->dir, &k, (const uint8_t *)"other data", 10, &b), -EEXIST);
    assert_int_equal(dy_blob_verify(&a), 0);
    assert_int_equal(s_count(dy_blobdir_path(f->dir), ".tmp."), 0);
}

static void test_read_verifies_hash(void **state)
{
    s_fix_t *f = *state;
    uint8_t data[4096];
    s_fill(data, sizeof(data), 4);
    dy_blob_key_t k = s_key("c5", 10, 3, "out");
    dy_blob_info_t info;
    assert_int_equal(s_write_blob(f->dir, &k, data, sizeof(data), &info), 0);
    dy_buf_t buf = {0};
    /* Flip one byte on disk. */
    int fd = open(info.path, O_WRONLY);
    assert_true(fd >= 0);
    assert_int_equal(pwrite(fd, "\x00", 1, 1234) == 1 ? 0 : -1, 0);
    close(fd);
    assert_int_equal(dy_blob_read(&info, &buf), -EBADMSG);
    assert_int_equal(buf.len, 0);
    assert_int_equal(dy_blob_verify(&info), -EBADMSG);
    /* Wrong recorded size, truncated file, missing file. */
    dy_blob_info_t other = info;
    other.size++;
    assert_int_equal(dy_blob_verify(&other), -EBADMSG);
    assert_int_equal(truncate(info.path, 10), 0);
    assert_int_equal(dy_blob_read(&info, &buf), -EBADMSG);
    assert_int_equal(unlink(info.path), 0);
    assert_int_equal(dy_blob_read(&info, &buf), -ENOENT);
    dy_buf_free(&buf);
}

static void test_bad_keys(void **state)
{
    s_fix_t *f = *state;
    dy_blob_writer_t *w = NULL;
    const char *bad[] = {"",    "..",
                         "a/b", "a.b",
                         "x y", "0123456789012345678901234567890123456789012345678901234567890123"};
    for (size_t i = 0; i < DY_ARRAY_LEN(bad); i++) {
        dy_blob_key_t k = s_key(bad[i], 1, 1, "out");
        assert_int_equal(dy_blob_open(f->dir, &k, &w), -EINVAL);
        k = s_key("c", 1, 1, bad[i]);
        assert_int_equal(dy_blob_open(f->dir, &k, &w), -EINVAL);
    }
    dy_blob_key_t k = s_key("c", -1, 1, "out");
    assert_int_equal(dy_blob_open(f->dir, &k, &w), -EINVAL);
    assert_null(w);
    assert_null(dy_blobdir_new(f->root, "../up"));
    assert_true(dy_blob_name_ok("AAAAAAAAAAE-_z9"));
}

static void test_retention(void **state)
{
    s_fix_t *f = *state;
    dy_blob_info_t a, b;
    dy_blob_key_t k = s_key("done", 6, 1, "out");
    assert_int_equal(s_write_blob(f->dir, &k, (const uint8_t *)"x", 1, &a), 0);
    k = s_key("done", 8, 2, "out");
    assert_int_equal(s_write_blob(f->dir, &k, (const uint8_t *)"y", 1, &a), 0);
    k = s_key("running", 6, 1, "out");
    assert_int_equal(s_write_blob(f->dir, &k, (const uint8_t *)"z", 1, &b), 0);
    assert_int_equal(dy_blob_remove_computation(f->dir, "done"), 0);
    char p[1200];
    snprintf(p, sizeof(p), "%s/done", dy_blobdir_path(f->dir));
    assert_false(s_exists(p));
    assert_int_equal(dy_blob_verify(&b), 0);
    assert_int_equal(dy_blob_remove_computation(f->dir, "done"), 0); /* already gone */
    assert_int_equal(dy_blob_remove_computation(f->dir, "../x"), -EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_roundtrip, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_abort_leaves_nothing, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_crash_then_sweep, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_sweep_attempt, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_enospc_eio_no_partial_file, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_existing_final_name, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_read_verifies_hash, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_bad_keys, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_retention, s_setup, s_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
