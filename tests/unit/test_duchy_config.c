/* test_duchy_config.c - the duchy's key table (common/duchy_config.c): the shipped example
 * deploy/duchy.example.yaml loads and prints exactly tests/unit/duchy_config/example.ok
 * (found through DY_SOURCE_ROOT), the printed form loads back to an equal config, the
 * defaults, and every check beyond the table (id pattern, two peers, role ids) with its
 * file:line: key: reason message; which keys are reloadable. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "duchy_config.h"

static char s_dir[] = "/tmp/test_duchy_config.XXXXXX";

static const char *s_base =
    "duchy:\n"
    "  id: worker1\n"
    "  data_dir: /d\n"
    "  runtime_dir: /r\n"
    "  master_key_file: /m\n"
    "tls: {cert: c, key: k, trusted_ca: t, parties: p}\n"
    "signing: {cert: sc, key: sk, certificate: duchies/worker1/certificates/1}\n"
    "kingdom: {endpoint: 'localhost:1', server_name: localhost}\n"
    "gateway: {listen: '127.0.0.1:2'}\n"
    "peers:\n"
    "  - id: worker2\n"
    "    endpoint: localhost:3\n"
    "    server_name: localhost\n"
    "  - id: aggregator\n"
    "    endpoint: localhost:4\n"
    "    server_name: localhost\n"
    "roles:\n"
    "  aggregator: aggregator\n"
    "  first_non_aggregator: worker1\n"
    "  second_non_aggregator: worker2\n";

static char *s_read(const char *path)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return NULL;
    char *buf = NULL;
    size_t cap = 0;
    FILE *m = open_memstream(&buf, &cap);
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
        fwrite(chunk, 1, n, m);
    fclose(f);
    fclose(m);
    return buf;
}

/* Writes text to a file in the temp dir; returns its path (static buffer). */
static const char *s_write(const char *name, const char *text)
{
    static char path[256];
    snprintf(path, sizeof(path), "%s/%s", s_dir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    return path;
}

/* s_base with one substring replaced. */
static char *s_edit(const char *from, const char *to)
{
    const char *p = strstr(s_base, from);
    assert_non_null(p);
    size_t n = strlen(s_base) - strlen(from) + strlen(to) + 1;
    char *out = malloc(n);
    snprintf(out, n, "%.*s%s%s", (int)(p - s_base), s_base, to, p + strlen(from));
    return out;
}

/* Loads text expecting failure; checks the message contains want. */
static void s_expect_error(const char *text, const char *want)
{
    const char *path = s_write("bad.yaml", text);
    dy_duchy_config_t cfg;
    char err[512] = "";
    int rc = dy_duchy_config_load(path, &cfg, err, sizeof(err));
    if (rc != -EINVAL || strstr(err, want) == NULL)
        fail_msg("rc %d, error \"%s\", wanted \"%s\"", rc, err, want);
}

static void test_example_golden(void **state)
{
    const char *root = getenv("DY_SOURCE_ROOT");
    if (root == NULL)
        skip();
    char path[512], ok[512];
    snprintf(path, sizeof(path), "%s/deploy/duchy.example.yaml", root);
    snprintf(ok, sizeof(ok), "%s/tests/unit/duchy_config/example.ok", root);
    dy_duchy_config_t cfg;
    char err[512] = "";
    int rc = dy_duchy_config_load(path, &cfg, err, sizeof(err));
    if (rc != 0)
        fail_msg("%s", err);
    char *out = NULL;
    size_t outlen = 0;
    FILE *m = open_memstream(&out, &outlen);
    assert_int_equal(dy_config_print(dy_duchy_config_keys, dy_duchy_config_nkeys, &cfg, m), 0);
    fclose(m);
    char *golden = s_read(ok);
    if (golden == NULL || strcmp(golden, out) != 0) {
        /* Leave the actual output next to the build for a diff. */
        FILE *f = fopen("duchy_config_example.out", "w");
        if (f) {
            fputs(out, f);
            fclose(f);
        }
        fail_msg("normalised example differs from %s (actual in duchy_config_example.out)",
                 ok);
    }
    /* The printed form loads again to an equal config. */
    const char *again = s_write("again.yaml", out);
    dy_duchy_config_t cfg2;
    rc = dy_duchy_config_load(again, &cfg2, err, sizeof(err));
    if (rc != 0)
        fail_msg("%s", err);
    assert_true(dy_config_equal(dy_duchy_config_keys, dy_duchy_config_nkeys, &cfg, &cfg2));
    dy_duchy_config_free(&cfg2);
    dy_duchy_config_free(&cfg);
    free(golden);
    free(out);
}

static void test_defaults(void **state)
{
    const char *path = s_write("base.yaml", s_base);
    dy_duchy_config_t c;
    char err[512] = "";
    int rc = dy_duchy_config_load(path, &c, err, sizeof(err));
    if (rc != 0)
        fail_msg("%s", err);
    assert_string_equal(c.id, "worker1");
    assert_int_equal(c.claimers, 1);
    assert_int_equal(c.workers, 2);
    assert_int_equal(c.mill_threads, 2);
    assert_int_equal(c.lease_ms, 5 * 60 * 1000);
    assert_int_equal(c.max_attempts, 10);
    assert_true(c.backoff_scale == 1.0);
    assert_int_equal(c.mill_deadline_ms, 30 * 60 * 1000);
    assert_true(c.mill_memory == 8ull << 30);
    assert_int_equal(c.send_deadline_ms, 10 * 60 * 1000);
    assert_int_equal(c.kingdom_call_timeout_ms, 30000);
    assert_int_equal(c.kingdom_stream_idle_ms, 60000);
    assert_true(c.max_frame == 4259840);
    assert_int_equal(c.max_connections, 256);
    assert_int_equal(c.idle_timeout_ms, 60000);
    assert_true(c.calls_per_second > 0 && c.call_burst >= c.calls_per_second);
    assert_true(c.byte_burst >= (double)c.max_frame);
    assert_true(c.max_upload == 2ull << 30);
    assert_false(c.verbose);
    assert_int_equal(c.npeers, 2);
    const dy_duchy_peer_t *p = dy_duchy_config_peer(&c, "aggregator");
    assert_non_null(p);
    assert_string_equal(p->endpoint, "localhost:4");
    assert_null(dy_duchy_config_peer(&c, "worker1"));
    assert_null(dy_duchy_config_peer(&c, NULL));
    assert_string_equal(c.aggregator_id, "aggregator");
    assert_string_equal(c.first_na_id, "worker1");
    assert_string_equal(c.second_na_id, "worker2");
    dy_duchy_config_free(&c);
    dy_duchy_config_free(&c); /* zeroed: a second free is harmless */
}

static void test_id_pattern(void **state)
{
    char *t = s_edit("id: worker1\n", "id: Worker1\n");
    s_expect_error(t, ":2: duchy.id: not a duchy id");
    free(t);
    t = s_edit("id: worker1\n", "id: worker1-\n");
    s_expect_error(t, "duchy.id: not a duchy id");
    free(t);
    t = s_edit("id: worker1\n", "id: 1worker\n");
    s_expect_error(t, "duchy.id: not a duchy id");
    free(t);
    t = s_edit("- id: worker2", "- id: worker_2");
    s_expect_error(t, ":11: peers[0].id: not a duchy id");
    free(t);
}

static void test_peers(void **state)
{
    /* A peer with our id. */
    char *t = s_edit("- id: worker2", "- id: worker1");
    s_expect_error(t, ":11: peers[0].id: a peer cannot have this duchy's id");
    free(t);
    /* Two peers with one id. */
    t = s_edit("- id: aggregator", "- id: worker2");
    s_expect_error(t, "peers[1].id: duplicate peer id");
    free(t);
    /* One peer only: the table's min_items. */
    t = s_edit("  - id: aggregator\n    endpoint: localhost:4\n    server_name: localhost\n", "");
    s_expect_error(t, "peers");
    free(t);
}

static void test_roles(void **state)
{
    char *t = s_edit("  aggregator: aggregator\n", "  aggregator: worker9\n");
    s_expect_error(t, ":18: roles.aggregator: \"worker9\" is neither this duchy nor a peer");
    free(t);
    t = s_edit("  second_non_aggregator: worker2\n", "  second_non_aggregator: worker1\n");
    s_expect_error(t, "roles.second_non_aggregator: \"worker1\" already holds "
                      "roles.first_non_aggregator");
    free(t);
    /* A missing role is a missing required key (the table). */
    t = s_edit("  second_non_aggregator: worker2\n", "");
    s_expect_error(t, "second_non_aggregator");
    free(t);
}

static void test_table_errors(void **state)
{
    char *t = s_edit("  runtime_dir: /r\n", "  runtime_dir: /r\n  workers: 0\n");
    s_expect_error(t, "duchy.workers");
    free(t);
    t = s_edit("  runtime_dir: /r\n", "  runtime_dir: /r\n  colour: blue\n");
    s_expect_error(t, "colour");
    free(t);
    /* A missing file is -ENOENT, not -EINVAL. */
    dy_duchy_config_t c;
    char err[256];
    assert_int_equal(dy_duchy_config_load("/nonexistent/duchy.yaml", &c, err, sizeof(err)),
                     -ENOENT);
}

static void test_reloadable(void **state)
{
    const char *path = s_write("a.yaml", s_base);
    dy_duchy_config_t a, b;
    char err[512] = "";
    assert_int_equal(dy_duchy_config_load(path, &a, err, sizeof(err)), 0);
    /* Reloadable: verbose, rate limits, backoff scale. */
    char *t = s_edit("roles:\n", "log: {verbose: true}\nroles:\n");
    char *t2 = s_edit("gateway: {listen: '127.0.0.1:2'}\n",
                      "gateway: {listen: '127.0.0.1:2', calls_per_second: 5, call_burst: 9,"
                      " bytes_per_second: 4096, byte_burst: 1048576}\n");
    char *t3 = s_edit("  runtime_dir: /r\n", "  runtime_dir: /r\n  backoff_scale: 0.01\n");
    const char *texts[] = {t, t2, t3};
    for (size_t i = 0; i < 3; i++) {
        path = s_write("b.yaml", texts[i]);
        if (dy_duchy_config_load(path, &b, err, sizeof(err)) != 0)
            fail_msg("%s", err);
        assert_false(dy_config_equal(dy_duchy_config_keys, dy_duchy_config_nkeys, &a, &b));
        assert_int_equal(dy_config_nonreloadable_diff(dy_duchy_config_keys,
                                                      dy_duchy_config_nkeys, &a, &b, err,
                                                      sizeof(err)),
                         0);
        dy_duchy_config_free(&b);
    }
    free(t);
    free(t2);
    free(t3);
    /* Not reloadable: everything else, e.g. the lease and a peer's endpoint. */
    t = s_edit("  runtime_dir: /r\n", "  runtime_dir: /r\n  lease: 10m\n");
    path = s_write("b.yaml", t);
    assert_int_equal(dy_duchy_config_load(path, &b, err, sizeof(err)), 0);
    assert_int_equal(dy_config_nonreloadable_diff(dy_duchy_config_keys, dy_duchy_config_nkeys,
                                                  &a, &b, err, sizeof(err)),
                     1);
    assert_non_null(strstr(err, "duchy.lease"));
    dy_duchy_config_free(&b);
    free(t);
    t = s_edit("localhost:4", "localhost:5");
    path = s_write("b.yaml", t);
    assert_int_equal(dy_duchy_config_load(path, &b, err, sizeof(err)), 0);
    assert_true(dy_config_nonreloadable_diff(dy_duchy_config_keys, dy_duchy_config_nkeys, &a,
                                             &b, err, sizeof(err)) >= 1);
    assert_non_null(strstr(err, "peers"));
    dy_duchy_config_free(&b);
    free(t);
    dy_duchy_config_free(&a);
}

static int s_setup(void **state)
{
    return mkdtemp(s_dir) ? 0 : -1;
}

static int s_teardown(void **state)
{
    const char *names[] = {"bad.yaml", "again.yaml", "base.yaml", "a.yaml", "b.yaml"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        char path[256];
        snprintf(path, sizeof(path), "%s/%s", s_dir, names[i]);
        unlink(path);
    }
    return rmdir(s_dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_example_golden), cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_id_pattern),     cmocka_unit_test(test_peers),
        cmocka_unit_test(test_roles),          cmocka_unit_test(test_table_errors),
        cmocka_unit_test(test_reloadable),
    };
    return cmocka_run_group_tests(tests, s_setup, s_teardown);
}
