/* kingdom_db.c - the Kingdom's SQLite store (see kingdom_db.h): schema and migrations,
 * prepared statements, whole-computation load/save, the stream and list queries, and the
 * external-id / base64url codec of PROTOCOL.md §1.
 */
#include "kingdom_db.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/rand.h>
#include <sqlite3.h>

/* ---- schema ---------------------------------------------------------------------------- */

/* s_migrations[i] takes the schema from user_version i to i+1. */
static const char *const s_migrations[] = {
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);"
    "INSERT INTO meta VALUES ('last_update_us', 0);"
    /* One row per measurement; state/failure are the public view (Measurement.State). */
    "CREATE TABLE measurements ("
    "  id INTEGER PRIMARY KEY,"
    "  mc TEXT NOT NULL,"
    "  request_id TEXT NOT NULL,"
    "  measurement BLOB NOT NULL,"      /* public Measurement as accepted */
    "  spec BLOB NOT NULL,"             /* MeasurementSpec bytes */
    "  protocol_config BLOB NOT NULL,"  /* effective public ProtocolConfig */
    "  state INTEGER NOT NULL,"
    "  failure_reason INTEGER NOT NULL DEFAULT 0,"
    "  failure_message TEXT,"
    "  create_us INTEGER NOT NULL,"
    "  update_us INTEGER NOT NULL);"
    "CREATE UNIQUE INDEX measurements_request ON measurements(mc, request_id)"
    "  WHERE request_id <> '';"
    /* The computation of a measurement has the measurement's id (§3.9 [ours]). */
    "CREATE TABLE computations ("
    "  id INTEGER PRIMARY KEY REFERENCES measurements(id),"
    "  protocol INTEGER NOT NULL,"
    "  state INTEGER NOT NULL,"
    "  mpc_config BLOB NOT NULL,"
    "  update_time INTEGER NOT NULL,"   /* microseconds, table-wide strictly increasing */
    "  aggregator_certificate TEXT,"
    "  encrypted_result BLOB,"
    "  result_public_key BLOB,"
    "  public_api_version TEXT);"
    "CREATE INDEX computations_key ON computations(update_time, id);"
    "CREATE TABLE participants ("
    "  computation INTEGER NOT NULL REFERENCES computations(id),"
    "  ord INTEGER NOT NULL,"
    "  duchy TEXT NOT NULL,"
    "  role INTEGER NOT NULL,"
    "  state INTEGER NOT NULL,"
    "  params BLOB,"
    "  failure BLOB,"
    "  version INTEGER NOT NULL,"        /* etag */
    "  update_us INTEGER NOT NULL,"
    "  PRIMARY KEY (computation, duchy));"
    "CREATE INDEX participants_duchy ON participants(duchy, computation);"
    "CREATE TABLE requisitions ("
    "  id INTEGER PRIMARY KEY,"
    "  computation INTEGER NOT NULL REFERENCES computations(id),"
    "  ord INTEGER NOT NULL,"
    "  data_provider TEXT NOT NULL,"
    "  state INTEGER NOT NULL,"         /* 1-4 as the API, 5 = PENDING_PARAMS */
    "  spec_hash BLOB NOT NULL,"
    "  nonce_hash BLOB NOT NULL,"
    "  nonce INTEGER NOT NULL DEFAULT 0,"   /* the uint64's bits */
    "  fulfiller INTEGER NOT NULL DEFAULT -1," /* participant ord */
    "  assigned INTEGER NOT NULL DEFAULT -1,"  /* HMSS: participant ord */
    "  visible INTEGER NOT NULL DEFAULT 0,"
    "  context BLOB,"
    "  refusal BLOB,"
    "  dp_certificate TEXT NOT NULL,"
    "  encrypted_spec BLOB NOT NULL,"
    "  dp_public_key BLOB,"
    "  version INTEGER NOT NULL,"
    "  update_us INTEGER NOT NULL);"
    "CREATE INDEX requisitions_dp ON requisitions(data_provider, id);"
    "CREATE TABLE log_entries ("
    "  id INTEGER PRIMARY KEY,"
    "  computation INTEGER NOT NULL REFERENCES computations(id),"
    "  duchy TEXT NOT NULL,"
    "  entry BLOB NOT NULL,"
    "  create_us INTEGER NOT NULL);",
};

enum {
    Q_BEGIN,
    Q_COMMIT,
    Q_ROLLBACK,
    Q_CLOCK_GET,
    Q_CLOCK_SET,
    Q_ID_USED_M,
    Q_ID_USED_R,
    Q_ID_USED_L,
    Q_INS_MEAS,
    Q_INS_COMP,
    Q_INS_PART,
    Q_INS_REQ,
    Q_LOAD_COMP,
    Q_LOAD_PARTS,
    Q_LOAD_REQS,
    Q_UPD_COMP,
    Q_UPD_MEAS,
    Q_UPD_PART,
    Q_UPD_REQ,
    Q_GET_MEAS,
    Q_GET_REQ_EXTRA,
    Q_FIND_REQUEST,
    Q_FIND_REQ,
    Q_STREAM,
    Q_LIST_REQS,
    Q_INS_LOG,
    Q_COUNT_LOG,
    Q_EXPIRED,
    Q__MAX,
};

static const char *const s_sql[Q__MAX] = {
    [Q_BEGIN] = "BEGIN IMMEDIATE",
    [Q_COMMIT] = "COMMIT",
    [Q_ROLLBACK] = "ROLLBACK",
    [Q_CLOCK_GET] = "SELECT value FROM meta WHERE key = 'last_update_us'",
    [Q_CLOCK_SET] = "UPDATE meta SET value = ?1 WHERE key = 'last_update_us'",
    [Q_ID_USED_M] = "SELECT 1 FROM measurements WHERE id = ?1",
    [Q_ID_USED_R] = "SELECT 1 FROM requisitions WHERE id = ?1",
    [Q_ID_USED_L] = "SELECT 1 FROM log_entries WHERE id = ?1",
    [Q_INS_MEAS] = "INSERT INTO measurements (id, mc, request_id, measurement, spec,"
                   " protocol_config, state, create_us, update_us)"
                   " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8)",
    [Q_INS_COMP] = "INSERT INTO computations (id, protocol, state, mpc_config, update_time)"
                   " VALUES (?1, ?2, ?3, ?4, ?5)",
    [Q_INS_PART] = "INSERT INTO participants (computation, ord, duchy, role, state, version,"
                   " update_us) VALUES (?1, ?2, ?3, ?4, ?5, 1, ?6)",
    [Q_INS_REQ] = "INSERT INTO requisitions (id, computation, ord, data_provider, state,"
                  " spec_hash, nonce_hash, assigned, dp_certificate, encrypted_spec,"
                  " dp_public_key, version, update_us)"
                  " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, 1, ?12)",
    [Q_LOAD_COMP] = "SELECT c.protocol, c.state, c.mpc_config, c.update_time,"
                    " c.aggregator_certificate, c.encrypted_result, c.result_public_key,"
                    " c.public_api_version, m.mc, m.spec, m.failure_reason, m.failure_message,"
                    " m.create_us FROM computations c JOIN measurements m ON m.id = c.id"
                    " WHERE c.id = ?1",
    [Q_LOAD_PARTS] = "SELECT ord, duchy, role, state, params, failure, version, update_us"
                     " FROM participants WHERE computation = ?1 ORDER BY ord",
    [Q_LOAD_REQS] = "SELECT id, data_provider, state, spec_hash, nonce_hash, nonce, fulfiller,"
                    " assigned, visible, context, refusal, version, update_us"
                    " FROM requisitions WHERE computation = ?1 ORDER BY ord",
    [Q_UPD_COMP] = "UPDATE computations SET state = ?2, update_time = ?3,"
                   " aggregator_certificate = ?4, encrypted_result = ?5, result_public_key = ?6,"
                   " public_api_version = ?7 WHERE id = ?1",
    [Q_UPD_MEAS] = "UPDATE measurements SET state = ?2, failure_reason = ?3,"
                   " failure_message = ?4, update_us = ?5 WHERE id = ?1",
    [Q_UPD_PART] = "UPDATE participants SET state = ?3, params = ?4, failure = ?5,"
                   " version = version + 1, update_us = ?6 WHERE computation = ?1 AND ord = ?2"
                   " RETURNING version",
    [Q_UPD_REQ] = "UPDATE requisitions SET state = ?2, nonce = ?3, fulfiller = ?4, visible = ?5,"
                  " context = ?6, refusal = ?7, version = version + 1, update_us = ?8"
                  " WHERE id = ?1 RETURNING version",
    [Q_GET_MEAS] = "SELECT measurement, protocol_config FROM measurements WHERE id = ?1",
    [Q_GET_REQ_EXTRA] = "SELECT dp_certificate, encrypted_spec, dp_public_key FROM requisitions"
                        " WHERE id = ?1",
    [Q_FIND_REQUEST] = "SELECT id FROM measurements WHERE mc = ?1 AND request_id = ?2"
                       " AND request_id <> ''",
    [Q_FIND_REQ] = "SELECT computation, data_provider FROM requisitions WHERE id = ?1",
    [Q_STREAM] = "SELECT c.id, c.update_time FROM computations c"
                 " JOIN participants p ON p.computation = c.id"
                 " WHERE p.duchy = ?1 AND c.state IN (1, 3, 4, 5, 6, 7)"
                 " AND (c.update_time > ?2 OR (c.update_time = ?2 AND c.id > ?3))"
                 " ORDER BY c.update_time, c.id LIMIT ?4",
    [Q_LIST_REQS] = "SELECT id, computation FROM requisitions"
                    " WHERE data_provider = ?1 AND visible = 1 AND id > ?2 ORDER BY id LIMIT ?3",
    [Q_INS_LOG] = "INSERT INTO log_entries (id, computation, duchy, entry, create_us)"
                  " VALUES (?1, ?2, ?3, ?4, ?5)",
    [Q_COUNT_LOG] = "SELECT count(*) FROM log_entries WHERE computation = ?1 AND duchy = ?2",
    [Q_EXPIRED] = "SELECT m.id FROM measurements m JOIN computations c ON c.id = m.id"
                  " WHERE c.state IN (1, 2, 3, 4) AND m.create_us < ?1 ORDER BY m.id LIMIT ?2",
};

struct dy_kd_db {
    sqlite3 *sql;                 /* owned connection */
    sqlite3_stmt *stmt[Q__MAX];   /* owned prepared statements */
    int64_t (*clock)(void *arg);  /* test hook, NULL = real time */
    void *clock_arg;
};

static int64_t s_real_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t dy_kd_db_now(dy_kd_db_t *db)
{
    return db->clock != NULL ? db->clock(db->clock_arg) : s_real_now_us();
}

void dy_kd_db_set_clock(dy_kd_db_t *db, int64_t (*now_us)(void *arg), void *arg)
{
    db->clock = now_us;
    db->clock_arg = arg;
}

static int s_err(int rc)
{
    switch (rc & 0xff) {
    case SQLITE_OK:
    case SQLITE_DONE:
    case SQLITE_ROW:
        return 0;
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        return -EBUSY;
    case SQLITE_CONSTRAINT:
        return -EEXIST;
    case SQLITE_NOMEM:
        return -ENOMEM;
    default:
        return -EIO;
    }
}

/* Resets and clears the bindings of statement q, and returns it. */
static sqlite3_stmt *s_q(dy_kd_db_t *db, int q)
{
    sqlite3_stmt *st = db->stmt[q];
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return st;
}

static int s_bind_buf(sqlite3_stmt *st, int i, const dy_buf_t *b)
{
    if (b == NULL || b->len == 0)
        return sqlite3_bind_null(st, i);
    return sqlite3_bind_blob(st, i, b->data, (int)b->len, SQLITE_TRANSIENT);
}

static int s_bind_text(sqlite3_stmt *st, int i, const char *s)
{
    return s == NULL ? sqlite3_bind_null(st, i) : sqlite3_bind_text(st, i, s, -1, SQLITE_TRANSIENT);
}

/* Runs a statement that returns no row (or ignores rows). */
static int s_exec(sqlite3_stmt *st)
{
    int rc = sqlite3_step(st);
    while (rc == SQLITE_ROW)
        rc = sqlite3_step(st);
    int e = s_err(rc);
    sqlite3_reset(st);
    return e;
}

static int s_col_buf(sqlite3_stmt *st, int col, dy_buf_t *out)
{
    out->len = 0;
    const void *p = sqlite3_column_blob(st, col);
    int n = sqlite3_column_bytes(st, col);
    if (p == NULL || n <= 0)
        return 0;
    return dy_buf_append(out, p, (size_t)n);
}

static char *s_col_str(sqlite3_stmt *st, int col)
{
    const unsigned char *p = sqlite3_column_text(st, col);
    return p != NULL ? strdup((const char *)p) : NULL;
}

static void s_col_id(sqlite3_stmt *st, int col, char *out, size_t cap)
{
    const unsigned char *p = sqlite3_column_text(st, col);
    snprintf(out, cap, "%s", p != NULL ? (const char *)p : "");
}

dy_kd_db_t *dy_kd_db_open(const char *path, int busy_ms, char *errbuf, size_t errlen)
{
    dy_kd_db_t *db = calloc(1, sizeof(*db));
    if (db == NULL) {
        snprintf(errbuf, errlen, "out of memory");
        return NULL;
    }
    if (sqlite3_open_v2(path, &db->sql, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) !=
        SQLITE_OK) {
        snprintf(errbuf, errlen, "%s: %s", path,
                 db->sql != NULL ? sqlite3_errmsg(db->sql) : "cannot open");
        goto fail;
    }
    sqlite3_busy_timeout(db->sql, busy_ms > 0 ? busy_ms : 5000);
    char *msg = NULL;
    if (sqlite3_exec(db->sql, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"
                              " PRAGMA foreign_keys=ON;", NULL, NULL, &msg) != SQLITE_OK) {
        snprintf(errbuf, errlen, "%s: pragmas: %s", path, msg != NULL ? msg : "?");
        sqlite3_free(msg);
        goto fail;
    }
    sqlite3_stmt *uv = NULL;
    int version = -1;
    if (sqlite3_prepare_v2(db->sql, "PRAGMA user_version", -1, &uv, NULL) == SQLITE_OK &&
        sqlite3_step(uv) == SQLITE_ROW)
        version = sqlite3_column_int(uv, 0);
    sqlite3_finalize(uv);
    if (version < 0 || version > DY_KD_DB_SCHEMA) {
        snprintf(errbuf, errlen, "%s: schema version %d not supported (max %d)", path, version,
                 DY_KD_DB_SCHEMA);
        goto fail;
    }
    for (int v = version; v < DY_KD_DB_SCHEMA; v++) {
        char set[64];
        snprintf(set, sizeof(set), "PRAGMA user_version = %d;", v + 1);
        if (sqlite3_exec(db->sql, "BEGIN IMMEDIATE", NULL, NULL, &msg) != SQLITE_OK ||
            sqlite3_exec(db->sql, s_migrations[v], NULL, NULL, &msg) != SQLITE_OK ||
            sqlite3_exec(db->sql, set, NULL, NULL, &msg) != SQLITE_OK ||
            sqlite3_exec(db->sql, "COMMIT", NULL, NULL, &msg) != SQLITE_OK) {
            snprintf(errbuf, errlen, "%s: migration %d: %s", path, v + 1,
                     msg != NULL ? msg : "?");
            sqlite3_free(msg);
            sqlite3_exec(db->sql, "ROLLBACK", NULL, NULL, NULL);
            goto fail;
        }
    }
    for (int q = 0; q < Q__MAX; q++) {
        if (sqlite3_prepare_v3(db->sql, s_sql[q], -1, SQLITE_PREPARE_PERSISTENT, &db->stmt[q],
                               NULL) != SQLITE_OK) {
            snprintf(errbuf, errlen, "prepare %d: %s", q, sqlite3_errmsg(db->sql));
            goto fail;
        }
    }
    return db;
fail:
    dy_kd_db_destroy(&db);
    return NULL;
}

void dy_kd_db_destroy(dy_kd_db_t **self_p)
{
    if (self_p == NULL || *self_p == NULL)
        return;
    dy_kd_db_t *db = *self_p;
    for (int q = 0; q < Q__MAX; q++)
        sqlite3_finalize(db->stmt[q]);
    sqlite3_close(db->sql);
    free(db);
    *self_p = NULL;
}

int dy_kd_db_begin(dy_kd_db_t *db)
{
    return s_exec(s_q(db, Q_BEGIN));
}

int dy_kd_db_commit(dy_kd_db_t *db)
{
    return s_exec(s_q(db, Q_COMMIT));
}

void dy_kd_db_rollback(dy_kd_db_t *db)
{
    if (!sqlite3_get_autocommit(db->sql))
        (void)s_exec(s_q(db, Q_ROLLBACK));
}

int dy_kd_db_new_id(dy_kd_db_t *db, char kind, uint64_t *ret_id)
{
    int q = kind == 'm' ? Q_ID_USED_M : kind == 'r' ? Q_ID_USED_R : Q_ID_USED_L;
    for (int tries = 0; tries < 16; tries++) {
        uint64_t id = 0;
        if (RAND_bytes((unsigned char *)&id, sizeof(id)) != 1)
            return -EIO;
        id &= INT64_MAX;
        if (id == 0)
            continue;
        sqlite3_stmt *st = s_q(db, q);
        sqlite3_bind_int64(st, 1, (int64_t)id);
        int rc = sqlite3_step(st);
        sqlite3_reset(st);
        if (rc == SQLITE_DONE) {
            *ret_id = id;
            return 0;
        }
        if (rc != SQLITE_ROW)
            return s_err(rc);
    }
    return -EIO;
}

/* max(now, last + 1), stored table-wide.  Inside the caller's transaction. */
static int s_next_time(dy_kd_db_t *db, int64_t *ret_us)
{
    sqlite3_stmt *st = s_q(db, Q_CLOCK_GET);
    int rc = sqlite3_step(st);
    int64_t last = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    sqlite3_reset(st);
    if (rc != SQLITE_ROW)
        return s_err(rc) < 0 ? s_err(rc) : -EIO;
    int64_t now = dy_kd_db_now(db);
    int64_t t = now > last ? now : last + 1;
    st = s_q(db, Q_CLOCK_SET);
    sqlite3_bind_int64(st, 1, t);
    int e = s_exec(st);
    if (e == 0)
        *ret_us = t;
    return e;
}

int dy_kd_db_insert(dy_kd_db_t *db, dy_kd_comp_t *comp, const dy_kd_db_measurement_t *m)
{
    int64_t t;
    int e = s_next_time(db, &t);
    if (e < 0)
        return e;
    comp->create_us = t;
    comp->update_us = t;
    sqlite3_stmt *st = s_q(db, Q_INS_MEAS);
    sqlite3_bind_int64(st, 1, (int64_t)comp->id);
    sqlite3_bind_text(st, 2, comp->mc, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 3, m->request_id != NULL ? m->request_id : "", -1, SQLITE_TRANSIENT);
    sqlite3_bind_blob(st, 4, m->measurement != NULL ? (const void *)m->measurement : "",
                      (int)m->measurement_len, SQLITE_TRANSIENT);
    sqlite3_bind_blob(st, 5, comp->spec.data != NULL ? (const void *)comp->spec.data : "",
                      (int)comp->spec.len, SQLITE_TRANSIENT);
    sqlite3_bind_blob(st, 6, m->protocol_config != NULL ? (const void *)m->protocol_config : "",
                      (int)m->protocol_config_len, SQLITE_TRANSIENT);
    sqlite3_bind_int(st, 7, dy_kd_measurement_state(comp->state));
    sqlite3_bind_int64(st, 8, t);
    if ((e = s_exec(st)) < 0)
        return e;
    st = s_q(db, Q_INS_COMP);
    sqlite3_bind_int64(st, 1, (int64_t)comp->id);
    sqlite3_bind_int(st, 2, (int)comp->protocol);
    sqlite3_bind_int(st, 3, (int)comp->state);
    sqlite3_bind_blob(st, 4, comp->mpc_config.data != NULL ? (const void *)comp->mpc_config.data
                                                           : "",
                      (int)comp->mpc_config.len, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 5, t);
    if ((e = s_exec(st)) < 0)
        return e;
    comp->dirty = false;
    for (size_t i = 0; i < comp->nparts; i++) {
        dy_kd_part_t *p = &comp->parts[i];
        st = s_q(db, Q_INS_PART);
        sqlite3_bind_int64(st, 1, (int64_t)comp->id);
        sqlite3_bind_int(st, 2, (int)i);
        sqlite3_bind_text(st, 3, p->duchy, -1, SQLITE_TRANSIENT);
        sqlite3_bind_int(st, 4, (int)p->role);
        sqlite3_bind_int(st, 5, (int)p->state);
        sqlite3_bind_int64(st, 6, t);
        if ((e = s_exec(st)) < 0)
            return e;
        p->version = 1;
        p->update_us = t;
        p->dirty = false;
    }
    for (size_t i = 0; i < comp->nreqs; i++) {
        dy_kd_req_t *r = &comp->reqs[i];
        st = s_q(db, Q_INS_REQ);
        sqlite3_bind_int64(st, 1, (int64_t)r->id);
        sqlite3_bind_int64(st, 2, (int64_t)comp->id);
        sqlite3_bind_int(st, 3, (int)i);
        sqlite3_bind_text(st, 4, r->edp, -1, SQLITE_TRANSIENT);
        sqlite3_bind_int(st, 5, (int)r->state);
        sqlite3_bind_blob(st, 6, r->spec_hash, DY_KD_HASH_LEN, SQLITE_TRANSIENT);
        sqlite3_bind_blob(st, 7, r->nonce_hash, DY_KD_HASH_LEN, SQLITE_TRANSIENT);
        sqlite3_bind_int(st, 8, r->assigned);
        s_bind_text(st, 9, m->dp_certificates != NULL && m->dp_certificates[i] != NULL
                               ? m->dp_certificates[i]
                               : "");
        if (m->encrypted_specs != NULL && m->encrypted_specs[i].len > 0)
            s_bind_buf(st, 10, &m->encrypted_specs[i]);
        else
            sqlite3_bind_blob(st, 10, "", 0, SQLITE_STATIC);
        s_bind_buf(st, 11, m->dp_public_keys != NULL ? &m->dp_public_keys[i] : NULL);
        sqlite3_bind_int64(st, 12, t);
        if ((e = s_exec(st)) < 0)
            return e;
        r->version = 1;
        r->update_us = t;
        r->dirty = false;
    }
    return 0;
}

int dy_kd_db_load(dy_kd_db_t *db, uint64_t id, dy_kd_comp_t *comp)
{
    memset(comp, 0, sizeof(*comp));
    if (id == 0 || id > INT64_MAX)
        return -ENOENT;
    sqlite3_stmt *st = s_q(db, Q_LOAD_COMP);
    sqlite3_bind_int64(st, 1, (int64_t)id);
    int rc = sqlite3_step(st);
    if (rc != SQLITE_ROW) {
        sqlite3_reset(st);
        return rc == SQLITE_DONE ? -ENOENT : s_err(rc);
    }
    int e = 0;
    comp->id = id;
    comp->protocol = (dy_kd_protocol_t)sqlite3_column_int(st, 0);
    comp->state = (dy_kd_comp_state_t)sqlite3_column_int(st, 1);
    e |= s_col_buf(st, 2, &comp->mpc_config);
    comp->update_us = sqlite3_column_int64(st, 3);
    comp->aggregator_cert = s_col_str(st, 4);
    e |= s_col_buf(st, 5, &comp->result);
    e |= s_col_buf(st, 6, &comp->result_key);
    comp->api_version = s_col_str(st, 7);
    s_col_id(st, 8, comp->mc, sizeof(comp->mc));
    e |= s_col_buf(st, 9, &comp->spec);
    comp->failure_reason = (dy_kd_failure_t)sqlite3_column_int(st, 10);
    comp->failure_message = s_col_str(st, 11);
    comp->create_us = sqlite3_column_int64(st, 12);
    sqlite3_reset(st);

    st = s_q(db, Q_LOAD_PARTS);
    sqlite3_bind_int64(st, 1, (int64_t)id);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW && comp->nparts < DY_KD_PARTICIPANTS) {
        dy_kd_part_t *p = &comp->parts[comp->nparts++];
        s_col_id(st, 1, p->duchy, sizeof(p->duchy));
        p->role = (dy_kd_role_t)sqlite3_column_int(st, 2);
        p->state = (dy_kd_part_state_t)sqlite3_column_int(st, 3);
        e |= s_col_buf(st, 4, &p->params);
        e |= s_col_buf(st, 5, &p->failure);
        p->version = sqlite3_column_int64(st, 6);
        p->update_us = sqlite3_column_int64(st, 7);
    }
    sqlite3_reset(st);

    st = s_q(db, Q_LOAD_REQS);
    sqlite3_bind_int64(st, 1, (int64_t)id);
    size_t cap = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (comp->nreqs == cap) {
            size_t ncap = cap ? 2 * cap : 4;
            dy_kd_req_t *n = realloc(comp->reqs, ncap * sizeof(*n));
            if (n == NULL) {
                e = -1;
                break;
            }
            comp->reqs = n;
            cap = ncap;
        }
        dy_kd_req_t *r = &comp->reqs[comp->nreqs++];
        memset(r, 0, sizeof(*r));
        r->id = (uint64_t)sqlite3_column_int64(st, 0);
        s_col_id(st, 1, r->edp, sizeof(r->edp));
        r->state = (dy_kd_req_state_t)sqlite3_column_int(st, 2);
        if (sqlite3_column_bytes(st, 3) == DY_KD_HASH_LEN)
            memcpy(r->spec_hash, sqlite3_column_blob(st, 3), DY_KD_HASH_LEN);
        if (sqlite3_column_bytes(st, 4) == DY_KD_HASH_LEN)
            memcpy(r->nonce_hash, sqlite3_column_blob(st, 4), DY_KD_HASH_LEN);
        r->nonce = (uint64_t)sqlite3_column_int64(st, 5);
        r->fulfiller = sqlite3_column_int(st, 6);
        r->assigned = sqlite3_column_int(st, 7);
        r->visible = sqlite3_column_int(st, 8) != 0;
        e |= s_col_buf(st, 9, &r->context);
        e |= s_col_buf(st, 10, &r->refusal);
        r->version = sqlite3_column_int64(st, 11);
        r->update_us = sqlite3_column_int64(st, 12);
    }
    sqlite3_reset(st);
    if (e != 0 || (rc != SQLITE_DONE && rc != SQLITE_ROW)) {
        dy_kd_comp_free(comp);
        return e != 0 ? -ENOMEM : s_err(rc);
    }
    return 0;
}

int dy_kd_db_save(dy_kd_db_t *db, dy_kd_comp_t *comp)
{
    bool any = comp->dirty;
    for (size_t i = 0; i < comp->nparts; i++)
        any |= comp->parts[i].dirty;
    for (size_t i = 0; i < comp->nreqs; i++)
        any |= comp->reqs[i].dirty;
    if (!any)
        return 0;
    int64_t t;
    int e = s_next_time(db, &t);
    if (e < 0)
        return e;
    sqlite3_stmt *st = s_q(db, Q_UPD_COMP);
    sqlite3_bind_int64(st, 1, (int64_t)comp->id);
    sqlite3_bind_int(st, 2, (int)comp->state);
    sqlite3_bind_int64(st, 3, t);
    s_bind_text(st, 4, comp->aggregator_cert);
    s_bind_buf(st, 5, &comp->result);
    s_bind_buf(st, 6, &comp->result_key);
    s_bind_text(st, 7, comp->api_version);
    if ((e = s_exec(st)) < 0)
        return e;
    st = s_q(db, Q_UPD_MEAS);
    sqlite3_bind_int64(st, 1, (int64_t)comp->id);
    sqlite3_bind_int(st, 2, dy_kd_measurement_state(comp->state));
    sqlite3_bind_int(st, 3, (int)comp->failure_reason);
    s_bind_text(st, 4, comp->failure_message);
    sqlite3_bind_int64(st, 5, t);
    if ((e = s_exec(st)) < 0)
        return e;
    comp->update_us = t;
    comp->dirty = false;
    for (size_t i = 0; i < comp->nparts; i++) {
        dy_kd_part_t *p = &comp->parts[i];
        if (!p->dirty)
            continue;
        st = s_q(db, Q_UPD_PART);
        sqlite3_bind_int64(st, 1, (int64_t)comp->id);
        sqlite3_bind_int(st, 2, (int)i);
        sqlite3_bind_int(st, 3, (int)p->state);
        s_bind_buf(st, 4, &p->params);
        s_bind_buf(st, 5, &p->failure);
        sqlite3_bind_int64(st, 6, t);
        int rc = sqlite3_step(st);
        if (rc != SQLITE_ROW) {
            sqlite3_reset(st);
            return rc == SQLITE_DONE ? -ENOENT : s_err(rc);
        }
        p->version = sqlite3_column_int64(st, 0);
        sqlite3_reset(st);
        p->update_us = t;
        p->dirty = false;
    }
    for (size_t i = 0; i < comp->nreqs; i++) {
        dy_kd_req_t *r = &comp->reqs[i];
        if (!r->dirty)
            continue;
        st = s_q(db, Q_UPD_REQ);
        sqlite3_bind_int64(st, 1, (int64_t)r->id);
        sqlite3_bind_int(st, 2, (int)r->state);
        sqlite3_bind_int64(st, 3, (int64_t)r->nonce);
        sqlite3_bind_int(st, 4, r->fulfiller);
        sqlite3_bind_int(st, 5, r->visible ? 1 : 0);
        s_bind_buf(st, 6, &r->context);
        s_bind_buf(st, 7, &r->refusal);
        sqlite3_bind_int64(st, 8, t);
        int rc = sqlite3_step(st);
        if (rc != SQLITE_ROW) {
            sqlite3_reset(st);
            return rc == SQLITE_DONE ? -ENOENT : s_err(rc);
        }
        r->version = sqlite3_column_int64(st, 0);
        sqlite3_reset(st);
        r->update_us = t;
        r->dirty = false;
    }
    return 0;
}

int dy_kd_db_measurement(dy_kd_db_t *db, uint64_t id, dy_buf_t *ret_measurement,
                         dy_buf_t *ret_protocol_config)
{
    sqlite3_stmt *st = s_q(db, Q_GET_MEAS);
    sqlite3_bind_int64(st, 1, (int64_t)id);
    int rc = sqlite3_step(st);
    if (rc != SQLITE_ROW) {
        sqlite3_reset(st);
        return rc == SQLITE_DONE ? -ENOENT : s_err(rc);
    }
    int e = s_col_buf(st, 0, ret_measurement) | s_col_buf(st, 1, ret_protocol_config);
    sqlite3_reset(st);
    return e != 0 ? -ENOMEM : 0;
}

int dy_kd_db_requisition_extra(dy_kd_db_t *db, uint64_t req_id, char **ret_dp_certificate,
                               dy_buf_t *ret_encrypted_spec, dy_buf_t *ret_dp_public_key)
{
    sqlite3_stmt *st = s_q(db, Q_GET_REQ_EXTRA);
    sqlite3_bind_int64(st, 1, (int64_t)req_id);
    int rc = sqlite3_step(st);
    if (rc != SQLITE_ROW) {
        sqlite3_reset(st);
        return rc == SQLITE_DONE ? -ENOENT : s_err(rc);
    }
    *ret_dp_certificate = s_col_str(st, 0);
    int e = s_col_buf(st, 1, ret_encrypted_spec) | s_col_buf(st, 2, ret_dp_public_key);
    sqlite3_reset(st);
    return e != 0 || *ret_dp_certificate == NULL ? -ENOMEM : 0;
}

int dy_kd_db_find_request(dy_kd_db_t *db, const char *mc, const char *request_id,
                          uint64_t *ret_id)
{
    sqlite3_stmt *st = s_q(db, Q_FIND_REQUEST);
    sqlite3_bind_text(st, 1, mc, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 2, request_id, -1, SQLITE_TRANSIENT);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        *ret_id = (uint64_t)sqlite3_column_int64(st, 0);
    sqlite3_reset(st);
    return rc == SQLITE_ROW ? 0 : rc == SQLITE_DONE ? -ENOENT : s_err(rc);
}

int dy_kd_db_find_requisition(dy_kd_db_t *db, uint64_t req_id, uint64_t *ret_comp,
                              char ret_edp[DY_KD_ID_MAX])
{
    if (req_id == 0 || req_id > INT64_MAX)
        return -ENOENT;
    sqlite3_stmt *st = s_q(db, Q_FIND_REQ);
    sqlite3_bind_int64(st, 1, (int64_t)req_id);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        *ret_comp = (uint64_t)sqlite3_column_int64(st, 0);
        s_col_id(st, 1, ret_edp, DY_KD_ID_MAX);
    }
    sqlite3_reset(st);
    return rc == SQLITE_ROW ? 0 : rc == SQLITE_DONE ? -ENOENT : s_err(rc);
}

int dy_kd_db_stream(dy_kd_db_t *db, const char *duchy, int64_t t0, uint64_t id0, size_t max,
                    uint64_t *ids, int64_t *times)
{
    /* Every stored id is below 2^63: a larger token id is past all of them. */
    int64_t sid0 = id0 > INT64_MAX ? INT64_MAX : (int64_t)id0;
    sqlite3_stmt *st = s_q(db, Q_STREAM);
    sqlite3_bind_text(st, 1, duchy, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 2, t0);
    sqlite3_bind_int64(st, 3, sid0);
    sqlite3_bind_int64(st, 4, (int64_t)max);
    size_t n = 0;
    int rc;
    while (n < max && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        ids[n] = (uint64_t)sqlite3_column_int64(st, 0);
        times[n] = sqlite3_column_int64(st, 1);
        n++;
    }
    if (n < max && rc != SQLITE_DONE) {
        sqlite3_reset(st);
        return s_err(rc) < 0 ? s_err(rc) : -EIO;
    }
    sqlite3_reset(st);
    return (int)n;
}

int dy_kd_db_list_requisitions(dy_kd_db_t *db, const char *edp, uint64_t after, size_t max,
                               uint64_t *req_ids, uint64_t *comp_ids)
{
    int64_t safter = after > INT64_MAX ? INT64_MAX : (int64_t)after;
    sqlite3_stmt *st = s_q(db, Q_LIST_REQS);
    sqlite3_bind_text(st, 1, edp, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 2, safter);
    sqlite3_bind_int64(st, 3, (int64_t)max);
    size_t n = 0;
    int rc = SQLITE_DONE;
    while (n < max && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        req_ids[n] = (uint64_t)sqlite3_column_int64(st, 0);
        comp_ids[n] = (uint64_t)sqlite3_column_int64(st, 1);
        n++;
    }
    sqlite3_reset(st);
    if (n < max && rc != SQLITE_DONE)
        return s_err(rc) < 0 ? s_err(rc) : -EIO;
    return (int)n;
}

int dy_kd_db_log_insert(dy_kd_db_t *db, uint64_t comp, const char *duchy, uint64_t id,
                        const uint8_t *entry, size_t len)
{
    sqlite3_stmt *st = s_q(db, Q_INS_LOG);
    sqlite3_bind_int64(st, 1, (int64_t)id);
    sqlite3_bind_int64(st, 2, (int64_t)comp);
    sqlite3_bind_text(st, 3, duchy, -1, SQLITE_TRANSIENT);
    sqlite3_bind_blob(st, 4, entry != NULL ? (const void *)entry : "", (int)len,
                      SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 5, dy_kd_db_now(db));
    return s_exec(st);
}

int dy_kd_db_log_count(dy_kd_db_t *db, uint64_t comp, const char *duchy)
{
    sqlite3_stmt *st = s_q(db, Q_COUNT_LOG);
    sqlite3_bind_int64(st, 1, (int64_t)comp);
    sqlite3_bind_text(st, 2, duchy, -1, SQLITE_TRANSIENT);
    int rc = sqlite3_step(st);
    int n = rc == SQLITE_ROW ? sqlite3_column_int(st, 0) : -EIO;
    sqlite3_reset(st);
    return n;
}

int dy_kd_db_expired(dy_kd_db_t *db, int64_t before_us, size_t max, uint64_t *ids)
{
    sqlite3_stmt *st = s_q(db, Q_EXPIRED);
    sqlite3_bind_int64(st, 1, before_us);
    sqlite3_bind_int64(st, 2, (int64_t)max);
    size_t n = 0;
    int rc = SQLITE_DONE;
    while (n < max && (rc = sqlite3_step(st)) == SQLITE_ROW)
        ids[n++] = (uint64_t)sqlite3_column_int64(st, 0);
    sqlite3_reset(st);
    if (n < max && rc != SQLITE_DONE)
        return s_err(rc) < 0 ? s_err(rc) : -EIO;
    return (int)n;
}

/* ---- tokens --------------------------------------------------------------------------- */

int dy_kd_b64url_decode(const char *s, uint8_t *out, size_t cap)
{
    size_t len = strlen(s);
    /* Padding: only as the tail of a multiple-of-4 string, at most two '='. */
    if (len % 4 == 0 && len > 0) {
        size_t pad = 0;
        while (pad < 2 && s[len - 1 - pad] == '=')
            pad++;
        len -= pad;
    }
    return dy_b64url_decode(s, len, out, cap);
}
