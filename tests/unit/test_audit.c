/* test_audit.c - the hash-chained audit log (audit.h): append, verify,
 * transactions, and tampering by raw SQL detected at the right row. */
/* cmocka.h needs these first. */
/* clang-format off */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
/* clang-format on */

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit.h"

static int64_t g_now = 1700000000000000LL;

static int64_t s_clock(void *arg)
{
    (void)arg;
    return g_now++;
}

typedef struct {
    char *dir;      /* mkdtemp directory, owned */
    char path[600]; /* database file */
    dy_store_t *st; /* open store */
} s_fix_t;

static int s_setup(void **state)
{
    s_fix_t *f = calloc(1, sizeof(*f));
    const char *base = getenv("TMPDIR");
    char tmpl[512];
    snprintf(tmpl, sizeof(tmpl), "%s/dy-audit-XXXXXX", base && base[0] ? base : "/tmp");
    if (!f || !mkdtemp(tmpl))
        return -1;
    f->dir = strdup(tmpl);
    snprintf(f->path, sizeof(f->path), "%s/duchy.db", f->dir);
    dy_store_config_t cfg = {.path = f->path, .clock = s_clock};
    if (dy_store_open(&cfg, &f->st) < 0)
        return -1;
    *state = f;
    return 0;
}

static int s_teardown(void **state)
{
    s_fix_t *f = *state;
    int ok = dy_store_check(f->st) == 0;
    dy_store_destroy(&f->st);
    char cmd[700];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
    if (system(cmd) != 0)
        ok = 0;
    free(f->dir);
    free(f);
    return ok ? 0 : -1;
}

static void s_append_n(dy_store_t *st, int n)
{
    for (int i = 0; i < n; i++) {
        char detail[64];
        snprintf(detail, sizeof(detail), "attempt=%d", i + 1);
        dy_audit_event_t ev = {.actor = "duchy-claimer",
                               .computation = "AAAAAAAAAAE",
                               .stage = 6 + i % 3,
                               .event = "stage_completed",
                               .detail = detail};
        int64_t seq = 0;
        assert_int_equal(dy_audit_append(st, &ev, &seq), 0);
        (void)seq;
    }
}

static void s_sql(const char *path, const char *sql, int want)
{
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), want);
    sqlite3_close(db);
}

static void test_append_verify(void **state)
{
    s_fix_t *f = *state;
    int64_t bad = -1, rows = -1;
    assert_int_equal(dy_audit_verify(f->st, &bad, &rows), 0); /* empty chain */
    assert_int_equal(rows, 0);
    s_append_n(f->st, 5);
    dy_audit_event_t ev = {.actor = "duchyctl", .event = "admin_cancel", .stage = -1};
    int64_t seq = 0;
    assert_int_equal(dy_audit_append(f->st, &ev, &seq), 0);
    assert_int_equal(seq, 6);
    assert_int_equal(dy_audit_verify(f->st, &bad, &rows), 0);
    assert_int_equal(bad, 0);
    assert_int_equal(rows, 6);
    int64_t tail = 0;
    uint8_t h[32], zero[32] = {0};
    assert_int_equal(dy_audit_tail(f->st, &tail, h), 0);
    assert_int_equal(tail, 6);
    assert_memory_not_equal(h, zero, 32);

    /* The hash covers every field and the previous hash. */
    dy_audit_row_t r;
    memset(&r, 0, sizeof(r));
    r.seq = 1;
    snprintf(r.actor, sizeof(r.actor), "a");
    snprintf(r.event, sizeof(r.event), "e");
    uint8_t h1[32], h2[32];
    dy_audit_row_hash(&r, h1);
    r.stage = 1;
    dy_audit_row_hash(&r, h2);
    assert_memory_not_equal(h1, h2, 32);
    r.stage = 0;
    r.prev_hash[0] = 1;
    dy_audit_row_hash(&r, h2);
    assert_memory_not_equal(h1, h2, 32);
    /* Length prefixes: moving a byte between fields changes the hash. */
    r.prev_hash[0] = 0;
    snprintf(r.actor, sizeof(r.actor), "ae");
    snprintf(r.event, sizeof(r.event), "%s", "");
    dy_audit_row_hash(&r, h2);
    assert_memory_not_equal(h1, h2, 32);

    /* Bad events are refused, never cut. */
    char longer[DY_STORE_ERROR_MAX + 10];
    memset(longer, 'x', sizeof(longer) - 1);
    longer[sizeof(longer) - 1] = '\0';
    ev.detail = longer;
    assert_int_equal(dy_audit_append(f->st, &ev, NULL), -EINVAL);
    ev.detail = NULL;
    ev.actor = "";
    assert_int_equal(dy_audit_append(f->st, &ev, NULL), -EINVAL);
    ev.actor = "x";
    ev.event = NULL;
    assert_int_equal(dy_audit_append(f->st, &ev, NULL), -EINVAL);
    assert_int_equal(dy_audit_verify(f->st, &bad, &rows), 0);
    assert_int_equal(rows, 6);
}

static void test_append_in_transaction(void **state)
{
    s_fix_t *f = *state;
    s_append_n(f->st, 2);
    /* Rolled back with the caller's work. */
    assert_int_equal(dy_store_begin(f->st), 0);
    dy_computation_new_t c = {.id = "c1", .protocol = 1, .stage = 1};
    assert_int_equal(dy_store_create(f->st, &c), 0);
    dy_audit_event_t ev = {
        .actor = "duchy-herald", .computation = "c1", .stage = 1, .event = "computation_created"};
    int64_t seq = 0;
    assert_int_equal(dy_audit_append(f->st, &ev, &seq), 0);
    assert_int_equal(seq, 3);
    dy_store_rollback(f->st);
    int64_t tail = 0, bad = 0, rows = 0;
    uint8_t h[32];
    assert_int_equal(dy_audit_tail(f->st, &tail, h), 0);
    assert_int_equal(tail, 2);
    dy_computation_t got;
    assert_int_equal(dy_store_get(f->st, "c1", &got), -ENOENT);
    /* Committed with it. */
    assert_int_equal(dy_store_begin(f->st), 0);
    assert_int_equal(dy_store_create(f->st, &c), 0);
    assert_int_equal(dy_audit_append(f->st, &ev, &seq), 0);
    assert_int_equal(dy_store_commit(f->st), 0);
    assert_int_equal(seq, 3);
    assert_int_equal(dy_audit_verify(f->st, &bad, &rows), 0);
    assert_int_equal(rows, 3);
}

static void test_tamper_detected(void **state)
{
    s_fix_t *f = *state;
    s_append_n(f->st, 6);
    int64_t bad = 0, rows = 0;
    assert_int_equal(dy_audit_verify(f->st, &bad, &rows), 0);
    /* The schema refuses edits... */
    s_sql(f->path, "UPDATE audit_log SET detail = 'forged' WHERE seq = 3", SQLITE_CONSTRAINT);
    s_sql(f->path, "DELETE FROM audit_log WHERE seq = 3", SQLITE_CONSTRAINT);
    assert_int_equal(dy_audit_verify(f->st, &bad, &rows), 0);
    /* ...and someone who drops the triggers is still caught, at that row. */
    s_sql(f->path,
          "DROP TRIGGER audit_log_no_update; DROP TRIGGER audit_log_no_delete;"
          "UPDATE audit_log SET detail = 'forged' WHERE seq = 4",
          SQLITE_OK);
    assert_int_equal(dy_audit_verify(f->st, &bad, &rows), -EBADMSG);
    assert_int_equal(bad, 4);
    assert_int_equal(rows, 4);
}

static void test_tamper_rehashed_and_deleted(void **state)
{
    s_fix_t *f = *state;
    s_append_n(f->st, 6);
    s_sql(f->path, "DROP TRIGGER audit_log_no_update; DROP TRIGGER audit_log_no_delete;",
          SQLITE_OK);
    /* Forge row 2 and recompute its own hash: row 3 no longer chains. */
    dy_audit_row_t r;
    memset(&r, 0, sizeof(r));
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
    sqlite3_stmt *s = NULL;
    assert_int_equal(sqlite3_prepare_v2(db,
                                        "SELECT time, actor, computation, stage, event,"
                                        " prev_hash FROM audit_log WHERE seq = 2",
                                        -1, &s, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_step(s), SQLITE_ROW);
    r.seq = 2;
    r.time = sqlite3_column_int64(s, 0);
    snprintf(r.actor, sizeof(r.actor), "%s", (const char *)sqlite3_column_text(s, 1));
    snprintf(r.computation, sizeof(r.computation), "%s", (const char *)sqlite3_column_text(s, 2));
    r.stage = sqlite3_column_int(s, 3);
    snprintf(r.event, sizeof(r.event), "%s", (const char *)sqlite3_column_text(s, 4));
    memcpy(r.prev_hash, sqlite3_column_blob(s, 5), 32);
    sqlite3_finalize(s);
    snprintf(r.detail, sizeof(r.detail), "attempt=99");
    dy_audit_row_hash(&r, r.hash);
    assert_int_equal(sqlite3_prepare_v2(db,
                                        "UPDATE audit_log SET detail = ?1, hash = ?2"
                                        " WHERE seq = 2",
                                        -1, &s, NULL),
                     SQLITE_OK);
    sqlite3_bind_text(s, 1, r.detail, -1, SQLITE_STATIC);
    sqlite3_bind_blob(s, 2, r.hash, 32, SQLITE_STATIC);
    assert_int_equal(sqlite3_step(s), SQLITE_DONE);
    sqlite3_finalize(s);
    sqlite3_close(db);
    int64_t bad = 0;
    assert_int_equal(dy_audit_verify(f->st, &bad, NULL), -EBADMSG);
    assert_int_equal(bad, 3);

    /* A deleted row shows at the next one. */
    s_sql(f->path, "DELETE FROM audit_log WHERE seq = 5", SQLITE_OK);
    s_sql(f->path, "DELETE FROM audit_log WHERE seq IN (2, 3)", SQLITE_OK);
    assert_int_equal(dy_audit_verify(f->st, &bad, NULL), -EBADMSG);
    assert_int_equal(bad, 4);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_append_verify, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_append_in_transaction, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_tamper_detected, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_tamper_rehashed_and_deleted, s_setup, s_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
