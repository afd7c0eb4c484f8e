/* test_kingdom_db.c - kingdom_db.c: the external-id codec and base64url (PROTOCOL.md §1),
 * schema creation and reopening (PRAGMA user_version), insert/load round trips, versions
 * bumped only for dirty rows, update_time = max(now, last + 1) table-wide under a frozen or
 * backwards clock, and the stream query's key order and visibility.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <sqlite3.h>
#include <unistd.h>

#include "kingdom_db.h"

static int64_t s_now;
static int64_t s_clock(void *arg)
{
    (void)arg;
    return s_now;
}

static void test_id_codec(void **state)
{
    (void)state;
    char out[DY_KD_EXT_ID_LEN + 1];
    dy_ext_id_encode(1, out);
    assert_string_equal(out, "AAAAAAAAAAE");
    dy_ext_id_encode(UINT64_MAX, out);
    assert_string_equal(out, "__________8");
    dy_ext_id_encode(0x0123456789abcdefull, out);
    assert_string_equal(out, "ASNFZ4mrze8");
    uint64_t id;
    for (uint64_t v = 1; v < (1ull << 62); v = v * 3 + 7) {
        dy_ext_id_encode(v, out);
        assert_int_equal(strlen(out), 11);
        assert_int_equal(dy_ext_id_decode(out, &id), 0);
        assert_true(id == v);
    }
    static const char *const bad[] = {"AAAAAAAAAAA", "AAAAAAAAAA", "AAAAAAAAAAAE", "AAAAAAAAAA=",
                                      "AAAAAAAAAAB", "AAAAAAAAA+E", "AAAAAAAAA/E", ""};
    for (size_t i = 0; i < DY_ARRAY_LEN(bad); i++)
        if (dy_ext_id_decode(bad[i], &id) == 0)
            fail_msg("'%s' accepted", bad[i]);
    assert_int_equal(dy_ext_id_decode(NULL, &id), -EINVAL);
}

static void test_b64url(void **state)
{
    (void)state;
    uint8_t buf[16];
    char s[32];
    assert_int_equal(dy_b64url_encode((const uint8_t *)"\xfb\xff", 2, s, sizeof(s)), 3);
    assert_string_equal(s, "-_8");
    assert_int_equal(dy_kd_b64url_decode("-_8", buf, sizeof(buf)), 2);
    assert_int_equal(dy_kd_b64url_decode("-_8=", buf, sizeof(buf)), 2);
    assert_int_equal(dy_kd_b64url_decode("-_8==", buf, sizeof(buf)), -EINVAL);
    assert_int_equal(dy_kd_b64url_decode("+/8", buf, sizeof(buf)), -EINVAL);
    assert_int_equal(dy_kd_b64url_decode("A", buf, sizeof(buf)), -EINVAL);
    assert_int_equal(dy_kd_b64url_decode("", buf, sizeof(buf)), 0);
    assert_int_equal(dy_kd_b64url_decode("AAAAAAAA", buf, 5), -EINVAL); /* too long */
}

typedef struct {
    char path[128];
    dy_kd_db_t *db;
} fx_t;

static int setup(void **state)
{
    fx_t *fx = calloc(1, sizeof(*fx));
    snprintf(fx->path, sizeof(fx->path), "/tmp/test_kingdom_db.XXXXXX");
    int fd = mkstemp(fx->path);
    if (fd < 0)
        return -1;
    close(fd);
    char err[256];
    fx->db = dy_kd_db_open(fx->path, 1000, err, sizeof(err));
    if (fx->db == NULL)
        return -1;
    dy_kd_db_set_clock(fx->db, s_clock, NULL);
    s_now = 1000;
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    fx_t *fx = *state;
    dy_kd_db_destroy(&fx->db);
    char p[160];
    unlink(fx->path);
    snprintf(p, sizeof(p), "%s-wal", fx->path);
    unlink(p);
    snprintf(p, sizeof(p), "%s-shm", fx->path);
    unlink(p);
    free(fx);
    return 0;
}

/* Inserts a computation with 3 participants (worker1, worker2, aggregator) and 1 requisition
 * for edp1; returns its id. */
static uint64_t s_insert(fx_t *fx, dy_kd_comp_state_t state)
{
    dy_kd_comp_t c = {0};
    assert_int_equal(dy_kd_db_begin(fx->db), 0);
    assert_int_equal(dy_kd_db_new_id(fx->db, 'm', &c.id), 0);
    assert_true(c.id > 0 && c.id <= INT64_MAX);
    snprintf(c.mc, sizeof(c.mc), "mc1");
    c.protocol = DY_KD_PROTO_LLV2;
    c.state = state;
    assert_int_equal(dy_buf_append(&c.spec, "spec", 4), 0);
    assert_int_equal(dy_buf_append(&c.mpc_config, "cfg", 3), 0);
    c.nparts = 3;
    const char *d[3] = {"worker1", "worker2", "aggregator"};
    for (int i = 0; i < 3; i++) {
        snprintf(c.parts[i].duchy, sizeof(c.parts[i].duchy), "%s", d[i]);
        c.parts[i].state = DY_KD_PART_CREATED;
    }
    c.nreqs = 1;
    c.reqs = calloc(1, sizeof(*c.reqs));
    assert_int_equal(dy_kd_db_new_id(fx->db, 'r', &c.reqs[0].id), 0);
    snprintf(c.reqs[0].edp, sizeof(c.reqs[0].edp), "edp1");
    c.reqs[0].state = DY_KD_REQ_PENDING_PARAMS;
    c.reqs[0].fulfiller = -1;
    c.reqs[0].assigned = -1;
    memset(c.reqs[0].nonce_hash, 7, 32);
    dy_kd_db_measurement_t m = {.request_id = "", .measurement = (const uint8_t *)"m",
                                .measurement_len = 1, .protocol_config = (const uint8_t *)"p",
                                .protocol_config_len = 1};
    assert_int_equal(dy_kd_db_insert(fx->db, &c, &m), 0);
    assert_int_equal(dy_kd_db_commit(fx->db), 0);
    uint64_t id = c.id;
    dy_kd_comp_free(&c);
    return id;
}

static void test_schema_and_reopen(void **state)
{
    fx_t *fx = *state;
    uint64_t id = s_insert(fx, DY_KD_COMP_PENDING_REQUISITION_PARAMS);
    dy_kd_db_destroy(&fx->db);
    sqlite3 *raw;
    assert_int_equal(sqlite3_open(fx->path, &raw), SQLITE_OK);
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(raw, "PRAGMA user_version", -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int(st, 0), DY_KD_DB_SCHEMA);
    sqlite3_finalize(st);
    assert_int_equal(sqlite3_prepare_v2(raw, "PRAGMA journal_mode", -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(st, 0), "wal");
    sqlite3_finalize(st);
    /* A future schema is refused. */
    assert_int_equal(sqlite3_exec(raw, "PRAGMA user_version = 99", NULL, NULL, NULL), SQLITE_OK);
    char err[256];
    assert_null(dy_kd_db_open(fx->path, 1000, err, sizeof(err)));
    assert_non_null(strstr(err, "schema version 99"));
    assert_int_equal(sqlite3_exec(raw, "PRAGMA user_version = 1", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(raw);
    fx->db = dy_kd_db_open(fx->path, 1000, err, sizeof(err));
    assert_non_null(fx->db);
    dy_kd_db_set_clock(fx->db, s_clock, NULL);
    dy_kd_comp_t c;
    assert_int_equal(dy_kd_db_load(fx->db, id, &c), 0);
    assert_int_equal(c.nparts, 3);
    assert_string_equal(c.parts[2].duchy, "aggregator");
    assert_int_equal(c.parts[0].version, 1);
    assert_int_equal(c.nreqs, 1);
    assert_string_equal(c.reqs[0].edp, "edp1");
    assert_int_equal(c.reqs[0].state, DY_KD_REQ_PENDING_PARAMS);
    assert_memory_equal(c.spec.data, "spec", 4);
    assert_string_equal(c.mc, "mc1");
    dy_kd_comp_free(&c);
    assert_int_equal(dy_kd_db_load(fx->db, id + 1, &c), -ENOENT);
    assert_int_equal(dy_kd_db_load(fx->db, UINT64_MAX, &c), -ENOENT);
}

static void test_save_versions_and_clock(void **state)
{
    fx_t *fx = *state;
    uint64_t a = s_insert(fx, DY_KD_COMP_PENDING_REQUISITION_PARAMS);
    uint64_t b = s_insert(fx, DY_KD_COMP_PENDING_REQUISITION_PARAMS); /* same frozen clock */
    dy_kd_comp_t ca, cb;
    assert_int_equal(dy_kd_db_load(fx->db, a, &ca), 0);
    assert_int_equal(dy_kd_db_load(fx->db, b, &cb), 0);
    assert_true(cb.update_us == ca.update_us + 1);
    int64_t last = cb.update_us;
    dy_kd_comp_free(&cb);
    /* Nothing dirty: nothing written, the time stays. */
    assert_int_equal(dy_kd_db_begin(fx->db), 0);
    assert_int_equal(dy_kd_db_save(fx->db, &ca), 0);
    assert_int_equal(dy_kd_db_commit(fx->db), 0);
    int64_t t0 = ca.update_us;
    /* The clock goes backwards: still strictly increasing. */
    s_now = 10;
    ca.parts[1].state = DY_KD_PART_REQUISITION_PARAMS_SET;
    assert_int_equal(dy_buf_append(&ca.parts[1].params, "P", 1), 0);
    ca.parts[1].dirty = true;
    ca.dirty = true;
    assert_int_equal(dy_kd_db_begin(fx->db), 0);
    assert_int_equal(dy_kd_db_save(fx->db, &ca), 0);
    assert_int_equal(dy_kd_db_commit(fx->db), 0);
    assert_true(ca.update_us == last + 1);
    assert_true(ca.update_us > t0);
    assert_int_equal(ca.parts[1].version, 2);
    assert_int_equal(ca.parts[0].version, 1);
    assert_int_equal(ca.reqs[0].version, 1);
    dy_kd_comp_free(&ca);
    assert_int_equal(dy_kd_db_load(fx->db, a, &ca), 0);
    assert_int_equal(ca.parts[1].state, DY_KD_PART_REQUISITION_PARAMS_SET);
    assert_int_equal(ca.parts[1].version, 2);
    assert_int_equal(ca.parts[1].update_us, last + 1);
    assert_memory_equal(ca.parts[1].params.data, "P", 1);
    dy_kd_comp_free(&ca);
    /* A real, later clock wins. */
    s_now = 1000000;
    assert_int_equal(dy_kd_db_load(fx->db, b, &cb), 0);
    cb.state = DY_KD_COMP_CANCELLED;
    cb.dirty = true;
    assert_int_equal(dy_kd_db_begin(fx->db), 0);
    assert_int_equal(dy_kd_db_save(fx->db, &cb), 0);
    assert_int_equal(dy_kd_db_commit(fx->db), 0);
    assert_int_equal(cb.update_us, 1000000);
    dy_kd_comp_free(&cb);
}

static void test_stream_query(void **state)
{
    fx_t *fx = *state;
    uint64_t ids[8];
    int64_t times[8];
    uint64_t x = s_insert(fx, DY_KD_COMP_PENDING_REQUISITION_PARAMS);
    uint64_t y = s_insert(fx, DY_KD_COMP_PENDING_REQUISITION_FULFILLMENT); /* not streamed */
    uint64_t z = s_insert(fx, DY_KD_COMP_SUCCEEDED);
    int n = dy_kd_db_stream(fx->db, "worker2", -1, 0, 8, ids, times);
    assert_int_equal(n, 2);
    assert_true(ids[0] == x && ids[1] == z);
    assert_true(times[0] < times[1]);
    assert_int_equal(dy_kd_db_stream(fx->db, "outsider", -1, 0, 8, ids, times), 0);
    assert_int_equal(dy_kd_db_stream(fx->db, "worker2", times[0], x, 8, ids, times), 1);
    assert_true(ids[0] == z);
    assert_int_equal(dy_kd_db_stream(fx->db, "worker2", -1, 0, 1, ids, times), 1);
    assert_int_equal(dy_kd_db_stream(fx->db, "worker2", times[0], UINT64_MAX, 8, ids, times), 1);
    (void)y;
    /* Requisitions are listed only once visible. */
    uint64_t rids[4], cids[4];
    assert_int_equal(dy_kd_db_list_requisitions(fx->db, "edp1", 0, 4, rids, cids), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_id_codec),
        cmocka_unit_test(test_b64url),
        cmocka_unit_test_setup_teardown(test_schema_and_reopen, setup, teardown),
        cmocka_unit_test_setup_teardown(test_save_versions_and_clock, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stream_query, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
