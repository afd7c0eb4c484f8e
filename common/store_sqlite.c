/* store_sqlite.c - the SQLite backend of the store (store.h).
 *
 * One database file per duchy in WAL mode (readers never block the single
 * writer), busy_timeout so competing writers queue instead of failing,
 * foreign keys on, synchronous FULL unless configured NORMAL.  Every write
 * runs in a BEGIN IMMEDIATE transaction (or, inside a caller's
 * dy_store_begin, a savepoint), so a read-check-write sequence is atomic
 * across processes.  Statements are prepared once per connection and
 * cached (s_stmts[]).  The schema is versioned with PRAGMA user_version:
 * s_migrations[i] moves version i to i+1, applied in one transaction at
 * open; a database newer than the code is refused (-EPROTO).
 *
 * Each process opens its own connection after it starts; store.c refuses
 * calls from a forked child.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "store.h"

/* Migrations, in order; never edit a shipped one, append a new one. */
static const char *const s_migrations[] = {
    /* 0 -> 1: the initial schema (PROTOCOL.md §7.1). */
    "CREATE TABLE computations ("
    "  id TEXT PRIMARY KEY NOT NULL,"
    "  protocol INTEGER NOT NULL,"
    "  role INTEGER NOT NULL,"
    "  stage INTEGER NOT NULL,"
    "  next_attempt INTEGER NOT NULL DEFAULT 1 CHECK (next_attempt >= 1),"
    "  version INTEGER NOT NULL DEFAULT 1,"
    "  lease_owner TEXT,"     /* NULL = none */
    "  lease_expiry INTEGER," /* us; NULL = not claimable */
    "  created_at INTEGER NOT NULL,"
    "  updated_at INTEGER NOT NULL,"
    "  kingdom_state INTEGER NOT NULL DEFAULT 0,"
    "  details BLOB,"
    "  ending_reason TEXT CHECK (ending_reason IN ('SUCCEEDED', 'FAILED', 'CANCELLED'))"
    ");"
    "CREATE INDEX computations_claimable ON computations (lease_expiry)"
    "  WHERE lease_expiry IS NOT NULL;"
    "CREATE TABLE stage_attempts ("
    "  computation TEXT NOT NULL REFERENCES computations (id) ON DELETE CASCADE,"
    "  stage INTEGER NOT NULL,"
    "  attempt INTEGER NOT NULL,"
    "  owner TEXT NOT NULL,"
    "  begin_at INTEGER NOT NULL,"
    "  end_at INTEGER,"
    "  end_reason TEXT CHECK (end_reason IN"
    "    ('SUCCEEDED', 'FAILED', 'CANCELLED', 'LOCK_OVERWRITTEN')),"
    "  error TEXT,"
    "  PRIMARY KEY (computation, stage, attempt)"
    ");"
    "CREATE TABLE blobs ("
    "  computation TEXT NOT NULL REFERENCES computations (id) ON DELETE CASCADE,"
    "  stage INTEGER NOT NULL,"
    "  slot TEXT NOT NULL,"
    "  attempt INTEGER NOT NULL,"
    "  path TEXT NOT NULL,"
    "  size INTEGER NOT NULL CHECK (size >= 0),"
    "  sha256 BLOB NOT NULL CHECK (length(sha256) = 32),"
    "  created_at INTEGER NOT NULL,"
    "  PRIMARY KEY (computation, stage, slot)"
    ");"
    "CREATE TABLE requisitions ("
    "  computation TEXT NOT NULL REFERENCES computations (id) ON DELETE CASCADE,"
    "  id TEXT NOT NULL,"
    "  fulfilling_duchy TEXT NOT NULL DEFAULT '',"
    "  details BLOB,"
    "  path TEXT," /* NULL until fulfilled here */
    "  size INTEGER,"
    "  sha256 BLOB CHECK (sha256 IS NULL OR length(sha256) = 32),"
    "  seed BLOB,"
    "  fulfilled_at INTEGER,"
    "  PRIMARY KEY (computation, id)"
    ");"
    "CREATE TABLE continuation_token ("
    "  id INTEGER PRIMARY KEY CHECK (id = 1),"
    "  token BLOB NOT NULL,"
    "  key_time INTEGER NOT NULL,"
    "  key_id INTEGER NOT NULL,"
    "  updated_at INTEGER NOT NULL"
    ");"
    "CREATE TABLE audit_log ("
    "  seq INTEGER PRIMARY KEY,"
    "  time INTEGER NOT NULL,"
    "  actor TEXT NOT NULL,"
    "  computation TEXT NOT NULL,"
    "  stage INTEGER NOT NULL,"
    "  event TEXT NOT NULL,"
    "  detail TEXT NOT NULL,"
    "  prev_hash BLOB NOT NULL CHECK (length(prev_hash) = 32),"
    "  hash BLOB NOT NULL CHECK (length(hash) = 32)"
    ");"
    /* Append-only: the chain makes tampering visible, the triggers make
     * accidents impossible through this schema. */
    "CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log"
    "  BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;"
    "CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log"
    "  BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;",
};

#define S_COMP_COLS                                                                                \
    "id, protocol, role, stage, next_attempt, version, lease_owner, lease_expiry, created_at, "    \
    "updated_at, kingdom_state, details, ending_reason"

/* The prioritized (protocol, stage) pairs of a claim are bound as a fixed
 * VALUES list; unused pairs are (NULL, NULL), which match nothing. */
#define S_PRIO_PAIR "(?, ?)"
#define S_PRIO_LIST                                                                                \
    S_PRIO_PAIR "," S_PRIO_PAIR "," S_PRIO_PAIR "," S_PRIO_PAIR "," S_PRIO_PAIR "," S_PRIO_PAIR    \
                "," S_PRIO_PAIR "," S_PRIO_PAIR

typedef enum {
    S_BEGIN,
    S_BEGIN_READ,
    S_COMMIT,
    S_ROLLBACK,
    S_SAVEPOINT,
    S_RELEASE,
    S_ROLLBACK_TO,
    S_COMP_INSERT,
    S_COMP_GET,
    S_COMP_LIST,
    S_CLAIM_SELECT,
    S_CLAIM_UPDATE,
    S_ATT_INSERT,
    S_ATT_OVERWRITE,
    S_ATT_END,
    S_ATT_CANCEL_OPEN,
    S_ATT_LIST,
    S_RENEW,
    S_FENCE,
    S_MOVE,
    S_RELEASE_BACKOFF,
    S_SET_DETAILS,
    S_SET_KINGDOM,
    S_BLOB_GET,
    S_BLOB_INSERT,
    S_TOKEN_GET,
    S_TOKEN_PUT,
    S_REQ_PUT,
    S_REQ_GET,
    S_REQ_FULFILL,
    S_REQ_LIST,
    S_AUDIT_TAIL,
    S_AUDIT_INSERT,
    S_AUDIT_SCAN,
    _S_MAX
} s_stmt_id_t;

static const char *const s_sql[_S_MAX] = {
    [S_BEGIN] = "BEGIN IMMEDIATE",
    [S_BEGIN_READ] = "BEGIN", /* deferred: a read-only check takes no write lock */
    [S_COMMIT] = "COMMIT",
    [S_ROLLBACK] = "ROLLBACK",
    [S_SAVEPOINT] = "SAVEPOINT dy_op",
    [S_RELEASE] = "RELEASE dy_op",
    [S_ROLLBACK_TO] = "ROLLBACK TO dy_op",
    [S_COMP_INSERT] = "INSERT INTO computations (id, protocol, role, stage, next_attempt, version,"
                      " lease_owner, lease_expiry, created_at, updated_at, kingdom_state, details)"
                      " VALUES (?1, ?2, ?3, ?4, 1, 1, NULL, ?5, ?6, ?6, ?7, ?8)"
                      " ON CONFLICT (id) DO NOTHING",
    [S_COMP_GET] = "SELECT " S_COMP_COLS " FROM computations WHERE id = ?1",
    [S_COMP_LIST] = "SELECT " S_COMP_COLS " FROM computations"
                    " WHERE ?1 OR ending_reason IS NULL ORDER BY created_at, id",
    [S_CLAIM_SELECT] = "SELECT id, version, lease_owner, stage, next_attempt, protocol, role"
                       " FROM computations"
                       " WHERE lease_expiry IS NOT NULL AND lease_expiry <= ?1"
                       " ORDER BY CASE WHEN (protocol, stage) IN (VALUES " S_PRIO_LIST ")"
                       " THEN 0 ELSE 1 END, created_at, lease_expiry, updated_at, id"
                       " LIMIT ?18",
    [S_CLAIM_UPDATE] = "UPDATE computations SET lease_owner = ?1, lease_expiry = ?2,"
                       " version = version + 1, next_attempt = next_attempt + 1, updated_at = ?3"
                       " WHERE id = ?4 AND version = ?5",
    [S_ATT_INSERT] = "INSERT INTO stage_attempts (computation, stage, attempt, owner, begin_at)"
                     " VALUES (?1, ?2, ?3, ?4, ?5)",
    [S_ATT_OVERWRITE] = "UPDATE stage_attempts SET end_at = ?1, end_reason = 'LOCK_OVERWRITTEN'"
                        " WHERE computation = ?2 AND owner = ?3 AND end_at IS NULL",
    [S_ATT_END] = "UPDATE stage_attempts SET end_at = ?1, end_reason = ?2, error = ?3"
                  " WHERE computation = ?4 AND stage = ?5 AND attempt = ?6 AND end_at IS NULL",
    [S_ATT_CANCEL_OPEN] = "UPDATE stage_attempts SET end_at = ?1, end_reason = 'CANCELLED'"
                          " WHERE computation = ?2 AND end_at IS NULL",
    [S_ATT_LIST] = "SELECT stage, attempt, owner, begin_at, end_at, end_reason, error"
                   " FROM stage_attempts WHERE computation = ?1 ORDER BY rowid",
    [S_RENEW] = "UPDATE computations SET lease_expiry = ?1"
                " WHERE id = ?2 AND lease_owner = ?3 AND version = ?4",
    [S_FENCE] = "SELECT kingdom_state FROM computations"
                " WHERE id = ?1 AND version = ?2 AND lease_owner = ?3",
    [S_MOVE] = "UPDATE computations SET stage = ?1, next_attempt = 1, version = version + 1,"
               " lease_owner = NULL, lease_expiry = ?2, updated_at = ?3, ending_reason = ?4"
               " WHERE id = ?5 AND version = ?6 AND lease_owner IS ?7",
    [S_RELEASE_BACKOFF] = "UPDATE computations SET lease_owner = NULL, lease_expiry = ?1,"
                          " version = version + 1, updated_at = ?2"
                          " WHERE id = ?3 AND version = ?4 AND lease_owner = ?5",
    [S_SET_DETAILS] = "UPDATE computations SET details = ?1 WHERE id = ?2",
    [S_SET_KINGDOM] = "UPDATE computations SET kingdom_state = ?1, updated_at = ?2 WHERE id = ?3",
    [S_BLOB_GET] = "SELECT path, size, sha256, attempt FROM blobs"
                   " WHERE computation = ?1 AND stage = ?2 AND slot = ?3",
    [S_BLOB_INSERT] = "INSERT INTO blobs (computation, stage, slot, attempt, path, size, sha256,"
                      " created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    [S_TOKEN_GET] = "SELECT token, key_time, key_id FROM continuation_token WHERE id = 1",
    [S_TOKEN_PUT] = "INSERT INTO continuation_token (id, token, key_time, key_id, updated_at)"
                    " VALUES (1, ?1, ?2, ?3, ?4) ON CONFLICT (id) DO UPDATE SET"
                    " token = excluded.token, key_time = excluded.key_time,"
                    " key_id = excluded.key_id, updated_at = excluded.updated_at",
    [S_REQ_PUT] = "INSERT INTO requisitions (computation, id, fulfilling_duchy, details)"
                  " VALUES (?1, ?2, ?3, ?4) ON CONFLICT (computation, id) DO UPDATE SET"
                  " fulfilling_duchy = excluded.fulfilling_duchy, details = excluded.details",
    [S_REQ_GET] = "SELECT path, sha256, seed FROM requisitions WHERE computation = ?1 AND id = ?2",
    [S_REQ_FULFILL] = "UPDATE requisitions SET path = ?1, size = ?2, sha256 = ?3, seed = ?4,"
                      " fulfilled_at = ?5 WHERE computation = ?6 AND id = ?7",
    [S_REQ_LIST] = "SELECT computation, id, fulfilling_duchy, details, path, size, sha256, seed"
                   " FROM requisitions WHERE computation = ?1 ORDER BY id",
    [S_AUDIT_TAIL] = "SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1",
    [S_AUDIT_INSERT] = "INSERT INTO audit_log (seq, time, actor, computation, stage, event,"
                       " detail, prev_hash, hash) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    [S_AUDIT_SCAN] = "SELECT seq, time, actor, computation, stage, event, detail, prev_hash,"
                     " hash FROM audit_log WHERE seq > ?1 ORDER BY seq",
};

typedef struct {
    dy_store_t base;             /* must stay first: the common head */
    sqlite3 *db;                 /* owned connection */
    sqlite3_stmt *stmts[_S_MAX]; /* owned; prepared on first use, cached */
} s_sqlite_t;

/* A claim candidate, read before any row is updated. */
typedef struct {
    char id[DY_STORE_NAME_MAX];
    char owner[DY_STORE_NAME_MAX];
    int64_t version, next_attempt;
    int stage, protocol, role;
} s_candidate_t;

static s_sqlite_t *s_of(dy_store_t *st)
{
    return (s_sqlite_t *)st;
}

/* SQLite result code to negative errno. */
static int s_errno(int rc)
{
    switch (rc & 0xff) {
    case SQLITE_OK:
    case SQLITE_ROW:
    case SQLITE_DONE:
        return 0;
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        return -EBUSY;
    case SQLITE_NOMEM:
        return -ENOMEM;
    case SQLITE_FULL:
        return -ENOSPC;
    case SQLITE_CONSTRAINT:
        return -EEXIST;
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
        return -EUCLEAN;
    case SQLITE_READONLY:
    case SQLITE_PERM:
    case SQLITE_AUTH:
        return -EACCES;
    case SQLITE_CANTOPEN:
        return -ENOENT;
    case SQLITE_TOOBIG:
        return -E2BIG;
    default:
        return -EIO;
    }
}

/* The cached statement id, reset and unbound, or NULL (*ret_rc set). */
static sqlite3_stmt *s_stmt(s_sqlite_t *sq, s_stmt_id_t id, int *ret_rc)
{
    sqlite3_stmt *s = sq->stmts[id];
    if (!s) {
        int rc = sqlite3_prepare_v3(sq->db, s_sql[id], -1, SQLITE_PREPARE_PERSISTENT, &s, NULL);
        if (rc != SQLITE_OK) {
            *ret_rc = s_errno(rc);
            return NULL;
        }
        sq->stmts[id] = s;
    }
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
    return s;
}

/* Runs a statement to completion, then resets it.  0 or a negative errno. */
static int s_done(sqlite3_stmt *s)
{
    int rc = sqlite3_step(s);
    while (rc == SQLITE_ROW)
        rc = sqlite3_step(s);
    int err = s_errno(rc);
    sqlite3_reset(s);
    return err;
}

/* Steps once: 1 row, 0 done (statement reset), or a negative errno. */
static int s_step(sqlite3_stmt *s)
{
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW)
        return 1;
    int err = s_errno(rc);
    sqlite3_reset(s);
    return err;
}

static int s_simple(s_sqlite_t *sq, s_stmt_id_t id)
{
    int rc = 0;
    sqlite3_stmt *s = s_stmt(sq, id, &rc);
    return s ? s_done(s) : rc;
}

static void s_bind_text(sqlite3_stmt *s, int i, const char *v)
{
    if (v)
        sqlite3_bind_text(s, i, v, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(s, i);
}

static void s_bind_blob(sqlite3_stmt *s, int i, const void *v, size_t n)
{
    if (v)
        sqlite3_bind_blob64(s, i, n ? v : "", n, SQLITE_STATIC);
    else
        sqlite3_bind_null(s, i);
}

static void s_copy_text(char *dst, size_t cap, sqlite3_stmt *s, int col)
{
    const unsigned char *t = sqlite3_column_text(s, col);
    if (!t) {
        dst[0] = '\0';
        return;
    }
    size_t n = strnlen((const char *)t, cap - 1);
    memcpy(dst, t, n);
    dst[n] = '\0';
}

/* Copies a BLOB column into a fresh heap buffer (NULL for SQL NULL or an
 * empty blob).  0 or -ENOMEM. */
static int s_copy_blob(sqlite3_stmt *s, int col, uint8_t **ret, size_t *ret_len)
{
    const void *p = sqlite3_column_blob(s, col);
    size_t n = (size_t)sqlite3_column_bytes(s, col);
    *ret = NULL;
    *ret_len = 0;
    if (!p || n == 0)
        return 0;
    uint8_t *c = malloc(n);
    if (!c)
        return -ENOMEM;
    memcpy(c, p, n);
    *ret = c;
    *ret_len = n;
    return 0;
}

static dy_end_reason_t s_reason_parse(const unsigned char *t)
{
    if (!t)
        return DY_END_NONE;
    for (int r = DY_END_SUCCEEDED; r < _DY_END_MAX; r++)
        if (strcmp((const char *)t, dy_end_reason_name((dy_end_reason_t)r)) == 0)
            return (dy_end_reason_t)r;
    return DY_END_NONE;
}

/* Fills *c from a row of S_COMP_COLS. */
static int s_read_comp(sqlite3_stmt *s, dy_computation_t *c)
{
    memset(c, 0, sizeof(*c));
    s_copy_text(c->id, sizeof(c->id), s, 0);
    c->protocol = sqlite3_column_int(s, 1);
    c->role = sqlite3_column_int(s, 2);
    c->stage = sqlite3_column_int(s, 3);
    c->next_attempt = sqlite3_column_int64(s, 4);
    c->version = sqlite3_column_int64(s, 5);
    s_copy_text(c->lease_owner, sizeof(c->lease_owner), s, 6);
    c->claimable = sqlite3_column_type(s, 7) != SQLITE_NULL;
    c->lease_expiry = sqlite3_column_int64(s, 7);
    c->created_at = sqlite3_column_int64(s, 8);
    c->updated_at = sqlite3_column_int64(s, 9);
    c->kingdom_state = sqlite3_column_int(s, 10);
    c->ending_reason = s_reason_parse(sqlite3_column_text(s, 12));
    return s_copy_blob(s, 11, &c->details, &c->details_len);
}

/* Reads one computation.  0, -ENOENT or a negative errno. */
static int s_get(s_sqlite_t *sq, const char *id, dy_computation_t *ret)
{
    int rc = 0;
    sqlite3_stmt *s = s_stmt(sq, S_COMP_GET, &rc);
    if (!s)
        return rc;
    s_bind_text(s, 1, id);
    rc = s_step(s);
    if (rc <= 0)
        return rc == 0 ? -ENOENT : rc;
    rc = s_read_comp(s, ret);
    sqlite3_reset(s);
    if (rc < 0)
        dy_computation_clear(ret);
    return rc;
}

/* Opens the unit of work of one operation: a transaction of its own, or a
 * savepoint inside the caller's dy_store_begin. */
static int s_enter(s_sqlite_t *sq)
{
    return s_simple(sq, sq->base.tx_depth > 0 ? S_SAVEPOINT : S_BEGIN);
}

/* The same for an operation that only reads: a deferred transaction, one consistent
 * snapshot without the write lock, so a check never waits behind (or is refused by) a
 * writer of another process that holds the lock, e.g. one stopped mid-transaction. */
static int s_enter_read(s_sqlite_t *sq)
{
    return s_simple(sq, sq->base.tx_depth > 0 ? S_SAVEPOINT : S_BEGIN_READ);
}

/* Closes it: commits (releases) when rc >= 0, else rolls back.  Returns rc,
 * or the commit's error. */
static int s_leave(s_sqlite_t *sq, int rc)
{
    if (sq->base.tx_depth > 0) {
        if (rc < 0)
            (void)s_simple(sq, S_ROLLBACK_TO);
        int r = s_simple(sq, S_RELEASE);
        return rc < 0 ? rc : (r < 0 ? r : rc);
    }
    if (rc >= 0) {
        int r = s_simple(sq, S_COMMIT);
        if (r == 0)
            return rc;
        rc = r;
    }
    if (!sqlite3_get_autocommit(sq->db))
        (void)s_simple(sq, S_ROLLBACK);
    return rc;
}

/* Runs a pragma or script with no interesting result. */
static int s_exec(sqlite3 *db, const char *sql)
{
    return s_errno(sqlite3_exec(db, sql, NULL, NULL, NULL));
}

static int s_user_version(sqlite3 *db, int *ret)
{
    sqlite3_stmt *s = NULL;
    int rc = sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &s, NULL);
    if (rc != SQLITE_OK)
        return s_errno(rc);
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW)
        *ret = sqlite3_column_int(s, 0);
    sqlite3_finalize(s);
    return rc == SQLITE_ROW ? 0 : s_errno(rc == SQLITE_DONE ? SQLITE_ERROR : rc);
}

/* Applies the missing migrations in one transaction. */
static int s_migrate(sqlite3 *db)
{
    const int target = (int)DY_ARRAY_LEN(s_migrations);
    int rc = s_exec(db, "BEGIN IMMEDIATE");
    if (rc < 0)
        return rc;
    int version = 0;
    rc = s_user_version(db, &version);
    if (rc == 0 && version > target)
        rc = -EPROTO;
    for (int v = version; rc == 0 && v < target; v++)
        rc = s_exec(db, s_migrations[v]);
    if (rc == 0 && version < target) {
        char sql[48];
        snprintf(sql, sizeof(sql), "PRAGMA user_version = %d", target);
        rc = s_exec(db, sql);
    }
    if (rc == 0)
        rc = s_exec(db, "COMMIT");
    if (rc < 0)
        (void)s_exec(db, "ROLLBACK");
    return rc;
}

static void s_close(dy_store_t *st)
{
    s_sqlite_t *sq = s_of(st);
    for (int i = 0; i < _S_MAX; i++)
        sqlite3_finalize(sq->stmts[i]);
    sqlite3_close(sq->db);
    free(sq->base.path);
    free(sq);
}

static int s_begin(dy_store_t *st)
{
    return s_simple(s_of(st), S_BEGIN);
}

static int s_commit(dy_store_t *st)
{
    return s_simple(s_of(st), S_COMMIT);
}

static int s_rollback(dy_store_t *st)
{
    s_sqlite_t *sq = s_of(st);
    if (sqlite3_get_autocommit(sq->db))
        return 0;
    return s_simple(sq, S_ROLLBACK);
}

static int s_create(dy_store_t *st, const dy_computation_new_t *c, int64_t now)
{
    s_sqlite_t *sq = s_of(st);
    int rc = s_enter(sq);
    if (rc < 0)
        return rc;
    sqlite3_stmt *s = s_stmt(sq, S_COMP_INSERT, &rc);
    if (s) {
        s_bind_text(s, 1, c->id);
        sqlite3_bind_int(s, 2, c->protocol);
        sqlite3_bind_int(s, 3, c->role);
        sqlite3_bind_int(s, 4, c->stage);
        if (c->kind == DY_STAGE_WORK)
            sqlite3_bind_int64(s, 5, now);
        sqlite3_bind_int64(s, 6, now);
        sqlite3_bind_int(s, 7, c->kingdom_state);
        s_bind_blob(s, 8, c->details, c->details_len);
        rc = s_done(s);
        if (rc == 0 && sqlite3_changes(sq->db) == 0)
            rc = DY_STORE_E_EXISTS;
    }
    return s_leave(sq, rc);
}

static int s_get_op(dy_store_t *st, const char *id, dy_computation_t *ret)
{
    return s_get(s_of(st), id, ret);
}

static int s_list(dy_store_t *st, bool include_ended, dy_store_computation_fn fn, void *arg)
{
    s_sqlite_t *sq = s_of(st);
    int rc = 0;
    sqlite3_stmt *s = s_stmt(sq, S_COMP_LIST, &rc);
    if (!s)
        return rc;
    sqlite3_bind_int(s, 1, include_ended);
    while ((rc = s_step(s)) == 1) {
        dy_computation_t c;
        rc = s_read_comp(s, &c);
        if (rc == 0)
            rc = fn(&c, arg);
        dy_computation_clear(&c);
        if (rc != 0) {
            sqlite3_reset(s);
            return rc;
        }
    }
    return rc;
}

/* Ends one attempt (if open) with reason and optional error text. */
static int s_end_attempt(s_sqlite_t *sq, const char *comp, int stage, int64_t attempt,
                         dy_end_reason_t reason, const char *error, int64_t now)
{
    int rc = 0;
    sqlite3_stmt *s = s_stmt(sq, S_ATT_END, &rc);
    if (!s)
        return rc;
    sqlite3_bind_int64(s, 1, now);
    s_bind_text(s, 2, dy_end_reason_name(reason));
    if (error && error[0])
        sqlite3_bind_text(s, 3, error, (int)strnlen(error, DY_STORE_ERROR_MAX - 1), SQLITE_STATIC);
    s_bind_text(s, 4, comp);
    sqlite3_bind_int(s, 5, stage);
    sqlite3_bind_int64(s, 6, attempt);
    return s_done(s);
}

/* The claim candidates' query with its parameters bound; NULL with *rc set. */
static sqlite3_stmt *s_claim_select(s_sqlite_t *sq, const dy_stage_ref_t *prio, size_t n_prio,
                                    int64_t now, size_t max, int *rc)
{
    sqlite3_stmt *s = s_stmt(sq, S_CLAIM_SELECT, rc);
    if (!s)
        return NULL;
    sqlite3_bind_int64(s, 1, now);
    for (size_t i = 0; i < n_prio; i++) {
        sqlite3_bind_int(s, 2 + 2 * (int)i, prio[i].protocol);
        sqlite3_bind_int(s, 3 + 2 * (int)i, prio[i].stage);
    }
    sqlite3_bind_int64(s, 18, (sqlite3_int64)max);
    return s;
}

static int s_claim_body(s_sqlite_t *sq, const char *owner, const dy_stage_ref_t *prio,
                        size_t n_prio, int64_t lease_us, int64_t now, dy_lease_t *ret, size_t max,
                        size_t *ret_n)
{
    s_candidate_t *cand = calloc(max, sizeof(*cand));
    if (!cand)
        return -ENOMEM;
    size_t n = 0;
    int rc = 0;
    sqlite3_stmt *s = s_claim_select(sq, prio, n_prio, now, max, &rc);
    if (!s)
        goto out;
    while (n < max && (rc = s_step(s)) == 1) {
        s_candidate_t *c = &cand[n++];
        s_copy_text(c->id, sizeof(c->id), s, 0);
        c->version = sqlite3_column_int64(s, 1);
        s_copy_text(c->owner, sizeof(c->owner), s, 2);
        c->stage = sqlite3_column_int(s, 3);
        c->next_attempt = sqlite3_column_int64(s, 4);
        c->protocol = sqlite3_column_int(s, 5);
        c->role = sqlite3_column_int(s, 6);
    }
    sqlite3_reset(s);
    if (rc < 0)
        goto out;
    rc = 0;
    for (size_t i = 0; i < n; i++) {
        const s_candidate_t *c = &cand[i];
        int64_t expiry = now + lease_us;
        s = s_stmt(sq, S_CLAIM_UPDATE, &rc);
        if (!s)
            goto out;
        s_bind_text(s, 1, owner);
        sqlite3_bind_int64(s, 2, expiry);
        sqlite3_bind_int64(s, 3, now);
        s_bind_text(s, 4, c->id);
        sqlite3_bind_int64(s, 5, c->version);
        if ((rc = s_done(s)) < 0)
            goto out;
        if (sqlite3_changes(sq->db) != 1)
            continue; /* someone else moved it first: not ours */
        if (c->owner[0]) {
            /* The previous owner's lease expired: its attempt is over. */
            s = s_stmt(sq, S_ATT_OVERWRITE, &rc);
            if (!s)
                goto out;
            sqlite3_bind_int64(s, 1, now);
            s_bind_text(s, 2, c->id);
            s_bind_text(s, 3, c->owner);
            if ((rc = s_done(s)) < 0)
                goto out;
        }
        s = s_stmt(sq, S_ATT_INSERT, &rc);
        if (!s)
            goto out;
        s_bind_text(s, 1, c->id);
        sqlite3_bind_int(s, 2, c->stage);
        sqlite3_bind_int64(s, 3, c->next_attempt);
        s_bind_text(s, 4, owner);
        sqlite3_bind_int64(s, 5, now);
        if ((rc = s_done(s)) < 0)
            goto out;
        dy_lease_t *l = &ret[(*ret_n)++];
        memset(l, 0, sizeof(*l));
        memcpy(l->computation, c->id, sizeof(l->computation));
        snprintf(l->owner, sizeof(l->owner), "%s", owner);
        l->protocol = c->protocol;
        l->role = c->role;
        l->stage = c->stage;
        l->attempt = c->next_attempt;
        l->version = c->version + 1;
        l->lease_expiry = expiry;
        l->exhausted = c->next_attempt > sq->base.cfg.max_attempts;
    }
out:
    free(cand);
    return rc;
}

static int s_claim(dy_store_t *st, const char *owner, const dy_stage_ref_t *prio, size_t n_prio,
                   int64_t lease_us, int64_t now, dy_lease_t *ret, size_t max, size_t *ret_n)
{
    s_sqlite_t *sq = s_of(st);
    int rc = 0;
    if (sq->base.tx_depth == 0) {
        /* Claimers poll several times a second; most polls find nothing.  Look first
         * without the write lock (an autocommit read), and take it only when there is
         * something to claim: the candidates are selected again under the lock, and the
         * version-fenced update settles any race. */
        sqlite3_stmt *s = s_claim_select(sq, prio, n_prio, now, max, &rc);
        if (!s)
            return rc;
        rc = s_step(s);
        sqlite3_reset(s);
        if (rc <= 0)
            return rc; /* 0: nothing claimable; or the error */
    }
    rc = s_enter(sq);
    if (rc < 0)
        return rc;
    rc = s_claim_body(sq, owner, prio, n_prio, lease_us, now, ret, max, ret_n);
    rc = s_leave(sq, rc);
    if (rc < 0)
        *ret_n = 0; /* rolled back: nothing was claimed */
    return rc;
}

static int s_renew(dy_store_t *st, dy_lease_t *lease, int64_t lease_us, int64_t now)
{
    s_sqlite_t *sq = s_of(st);
    int rc = s_enter(sq);
    if (rc < 0)
        return rc;
    int64_t expiry = now + lease_us;
    sqlite3_stmt *s = s_stmt(sq, S_RENEW, &rc);
    if (s) {
        sqlite3_bind_int64(s, 1, expiry);
        s_bind_text(s, 2, lease->computation);
        s_bind_text(s, 3, lease->owner);
        sqlite3_bind_int64(s, 4, lease->version);
        rc = s_done(s);
        if (rc == 0 && sqlite3_changes(sq->db) != 1)
            rc = DY_STORE_E_LEASE_LOST;
    }
    rc = s_leave(sq, rc);
    if (rc == 0)
        lease->lease_expiry = expiry;
    return rc;
}

/* Checks the worker's fence inside the current unit of work: 0 with the
 * stored Kingdom state, or DY_STORE_E_STALE. */
static int s_fence(s_sqlite_t *sq, const dy_lease_t *lease, int *ret_kingdom_state)
{
    int rc = 0;
    sqlite3_stmt *s = s_stmt(sq, S_FENCE, &rc);
    if (!s)
        return rc;
    s_bind_text(s, 1, lease->computation);
    sqlite3_bind_int64(s, 2, lease->version);
    s_bind_text(s, 3, lease->owner);
    rc = s_step(s);
    if (rc <= 0)
        return rc == 0 ? DY_STORE_E_STALE : rc;
    if (ret_kingdom_state)
        *ret_kingdom_state = sqlite3_column_int(s, 0);
    sqlite3_reset(s);
    return 0;
}

static int s_get_blob_rec(s_sqlite_t *sq, const char *id, int stage, const char *slot,
                          dy_blob_rec_t *ret)
{
    int rc = 0;
    sqlite3_stmt *s = s_stmt(sq, S_BLOB_GET, &rc);
    if (!s)
        return rc;
    s_bind_text(s, 1, id);
    sqlite3_bind_int(s, 2, stage);
    s_bind_text(s, 3, slot);
    rc = s_step(s);
    if (rc <= 0)
        return rc == 0 ? -ENOENT : rc;
    memset(ret, 0, sizeof(*ret));
    ret->stage = stage;
    s_copy_text(ret->blob.path, sizeof(ret->blob.path), s, 0);
    ret->blob.size = (uint64_t)sqlite3_column_int64(s, 1);
    if (sqlite3_column_bytes(s, 2) == 32)
        memcpy(ret->blob.sha256, sqlite3_column_blob(s, 2), 32);
    ret->attempt = sqlite3_column_int64(s, 3);
    sqlite3_reset(s);
    return 0;
}

/* Records a blob in (id, stage, slot) unless present: 0 if inserted or the
 * same SHA-256 is there (*ret_dup), -EEXIST if other bytes are. */
static int s_put_blob(s_sqlite_t *sq, const char *id, int stage, const char *slot, int64_t attempt,
                      const dy_blob_info_t *b, int64_t now, bool *ret_dup)
{
    dy_blob_rec_t old;
    int rc = s_get_blob_rec(sq, id, stage, slot, &old);
    if (rc == 0) {
        if (memcmp(old.blob.sha256, b->sha256, 32) != 0 || old.blob.size != b->size)
            return -EEXIST;
        if (ret_dup)
            *ret_dup = true;
        return 0;
    }
    if (rc != -ENOENT)
        return rc;
    sqlite3_stmt *s = s_stmt(sq, S_BLOB_INSERT, &rc);
    if (!s)
        return rc;
    s_bind_text(s, 1, id);
    sqlite3_bind_int(s, 2, stage);
    s_bind_text(s, 3, slot);
    sqlite3_bind_int64(s, 4, attempt);
    s_bind_text(s, 5, b->path);
    sqlite3_bind_int64(s, 6, (sqlite3_int64)b->size);
    sqlite3_bind_blob(s, 7, b->sha256, 32, SQLITE_STATIC);
    sqlite3_bind_int64(s, 8, now);
    if (ret_dup)
        *ret_dup = false;
    return s_done(s);
}

static int s_record_output(dy_store_t *st, const dy_lease_t *lease, const dy_store_output_t *o,
                           int64_t now)
{
    s_sqlite_t *sq = s_of(st);
    int rc = s_enter(sq);
    if (rc < 0)
        return rc;
    rc = s_fence(sq, lease, NULL);
    if (rc == 0)
        rc = s_put_blob(sq, lease->computation, lease->stage, o->slot, lease->attempt, o->blob, now,
                        NULL);
    return s_leave(sq, rc);
}

static int s_get_blob(dy_store_t *st, const char *id, int stage, const char *slot,
                      dy_blob_rec_t *ret)
{
    return s_get_blob_rec(s_of(st), id, stage, slot, ret);
}

/* Moves a computation to a stage: next_attempt 1, version+1, owner
 * cleared, expiry per kind, ending reason for COMPLETE; fenced by the
 * version and owner it was read with.  DY_STORE_E_STALE if they changed. */
static int s_move(s_sqlite_t *sq, const char *id, int64_t version, const char *owner, int stage,
                  dy_stage_kind_t kind, dy_end_reason_t reason, int64_t now)
{
    int rc = 0;
    sqlite3_stmt *s = s_stmt(sq, S_MOVE, &rc);
    if (!s)
        return rc;
    sqlite3_bind_int(s, 1, stage);
    if (kind == DY_STAGE_WORK)
        sqlite3_bind_int64(s, 2, now);
    sqlite3_bind_int64(s, 3, now);
    if (kind == DY_STAGE_COMPLETE)
        s_bind_text(s, 4, dy_end_reason_name(reason));
    s_bind_text(s, 5, id);
    sqlite3_bind_int64(s, 6, version);
    s_bind_text(s, 7, owner && owner[0] ? owner : NULL);
    rc = s_done(s);
    if (rc == 0 && sqlite3_changes(sq->db) != 1)
        rc = DY_STORE_E_STALE;
    return rc;
}

static int s_set_details(s_sqlite_t *sq, const char *id, const uint8_t *d, size_t n)
{
    int rc = 0;
    sqlite3_stmt *s = s_stmt(sq, S_SET_DETAILS, &rc);
    if (!s)
        return rc;
    s_bind_blob(s, 1, d, n);
    s_bind_text(s, 2, id);
    return s_done(s);
}

static int s_complete_body(s_sqlite_t *sq, const dy_lease_t *lease, const dy_store_completion_t *c,
                           int64_t now, int *ret_stage)
{
    int ks = 0;
    int rc = s_fence(sq, lease, &ks);
    if (rc < 0)
        return rc;
    for (size_t i = 0; i < c->n_outputs; i++) {
        rc = s_put_blob(sq, lease->computation, lease->stage, c->outputs[i].slot, lease->attempt,
                        c->outputs[i].blob, now, NULL);
        if (rc < 0)
            return rc;
    }
    if (c->set_details &&
        (rc = s_set_details(sq, lease->computation, c->details, c->details_len)) < 0)
        return rc;
    int stage = c->next_stage;
    dy_stage_kind_t kind = c->next_kind;
    if (c->jump_min_kingdom_state > 0 && ks >= c->jump_min_kingdom_state) {
        stage = c->jump_stage;
        kind = c->jump_kind;
    }
    rc = s_move(sq, lease->computation, lease->version, lease->owner, stage, kind, DY_END_SUCCEEDED,
                now);
    if (rc < 0)
        return rc;
    rc = s_end_attempt(sq, lease->computation, lease->stage, lease->attempt, DY_END_SUCCEEDED, NULL,
                       now);
    if (rc == 0)
        *ret_stage = stage;
    return rc;
}

static int s_complete(dy_store_t *st, const dy_lease_t *lease, const dy_store_completion_t *c,
                      int64_t now, int *ret_stage)
{
    s_sqlite_t *sq = s_of(st);
    int rc = s_enter(sq);
    if (rc < 0)
        return rc;
    return s_leave(sq, s_complete_body(sq, lease, c, now, ret_stage));
}

static int s_fail_body(s_sqlite_t *sq, const dy_lease_t *lease, const char *error, bool exhausted,
                       int64_t retry_at, int64_t now)
{
    int rc = s_fence(sq, lease, NULL);
    if (rc < 0)
        return rc;
    rc = s_end_attempt(sq, lease->computation, lease->stage, lease->attempt, DY_END_FAILED, error,
                       now);
    if (rc < 0 || exhausted)
        return rc; /* the last attempt: the caller ends the computation */
    sqlite3_stmt *s = s_stmt(sq, S_RELEASE_BACKOFF, &rc);
    if (!s)
        return rc;
    sqlite3_bind_int64(s, 1, retry_at);
    sqlite3_bind_int64(s, 2, now);
    s_bind_text(s, 3, lease->computation);
    sqlite3_bind_int64(s, 4, lease->version);
    s_bind_text(s, 5, lease->owner);
    rc = s_done(s);
    if (rc == 0 && sqlite3_changes(sq->db) != 1)
        rc = DY_STORE_E_STALE;
    return rc;
}

static int s_fail_transient(dy_store_t *st, const dy_lease_t *lease, const char *error,
                            bool exhausted, int64_t retry_at, int64_t now)
{
    s_sqlite_t *sq = s_of(st);
    int rc = s_enter(sq);
    if (rc < 0)
        return rc;
    return s_leave(sq, s_fail_body(sq, lease, error, exhausted, retry_at, now));
}

static int s_end_body(s_sqlite_t *sq, const char *id, const dy_lease_t *fence, int complete_stage,
                      dy_end_reason_t reason, const char *error, int64_t now, bool *ret_changed)
{
    dy_computation_t c;
    int rc = s_get(sq, id, &c);
    if (rc < 0)
        return rc;
    if (fence && (c.version != fence->version || strcmp(c.lease_owner, fence->owner) != 0)) {
        rc = DY_STORE_E_STALE;
        goto out;
    }
    if (c.ending_reason != DY_END_NONE)
        goto out; /* already ended: idempotent no-op */
    rc = s_move(sq, id, c.version, c.lease_owner, complete_stage, DY_STAGE_COMPLETE, reason, now);
    if (rc < 0)
        goto out;
    if (c.lease_owner[0] && c.next_attempt > 1) {
        /* The current attempt ends with the computation's reason. */
        rc = s_end_attempt(sq, id, c.stage, c.next_attempt - 1, reason, error, now);
        if (rc < 0)
            goto out;
    }
    int r = 0;
    sqlite3_stmt *s = s_stmt(sq, S_ATT_CANCEL_OPEN, &r);
    if (!s) {
        rc = r;
        goto out;
    }
    sqlite3_bind_int64(s, 1, now);
    s_bind_text(s, 2, id);
    rc = s_done(s);
    if (rc == 0)
        *ret_changed = true;
out:
    dy_computation_clear(&c);
    return rc;
}

static int s_end(dy_store_t *st, const char *id, const dy_lease_t *fence, int complete_stage,
                 dy_end_reason_t reason, const char *error, int64_t now, bool *ret_changed)
{
    s_sqlite_t *sq = s_of(st);
    int rc = s_enter(sq);
    if (rc < 0)
        return rc;
    return s_leave(sq, s_end_body(sq, id, fence, complete_stage, reason, error, now, ret_changed));
}

static int s_advance_body(s_sqlite_t *sq, const char *id, int from_stage, int to_stage,
                          dy_stage_kind_t to_kind, int64_t now, bool *ret_moved)
{
    dy_computation_t c;
    int rc = s_get(sq, id, &c);
    if (rc < 0)
        return rc;
    if (c.ending_reason == DY_END_NONE && c.stage == from_stage) {
        rc = s_move(sq, id, c.version, c.lease_owner, to_stage, to_kind, DY_END_NONE, now);
        if (rc == 0)
            *ret_moved = true;
    }
    dy_computation_clear(&c);
    return rc;
}

static int s_advance(dy_store_t *st, const char *id, int from_stage, int to_stage,
                     dy_stage_kind_t to_kind, int64_t now, bool *ret_moved)
{
    s_sqlite_t *sq = s_of(st);
    int rc = s_enter(sq);
    if (rc < 0)
        return rc;
    return s_leave(sq, s_advance_body(sq, id, from_stage, to_stage, to_kind, now, ret_moved));
}

static int s_set_kingdom_body(s_sqlite_t *sq, const char *id, int state, const uint8_t *details,
                              size_t details_len, bool set_details, int64_t now, bool *ret_changed)
{
    dy_computation_t c;
    int rc = s_get(sq, id, &c);
    if (rc < 0)
        return rc;
    int stored = c.kingdom_state;
    dy_computation_clear(&c);
    if (state < stored)
        return 0; /* an older item changes nothing (§5.4) */
    if (state > stored) {
        sqlite3_stmt *s = s_stmt(sq, S_SET_KINGDOM, &rc);
        if (!s)
            return rc;
        sqlite3_bind_int(s, 1, state);
        sqlite3_bind_int64(s, 2, now);
        s_bind_text(s, 3, id);
        if ((rc = s_done(s)) < 0)
            return rc;
        *ret_changed = true;
    }
    if (set_details) {
        if ((rc = s_set_details(sq, id, details, details_len)) < 0)
            return rc;
        *ret_changed = true;
    }
    return 0;
}

static int s_set_kingdom(dy_store_t *st, const char *id, int state, const uint8_t *details,
                         size_t details_len, bool set_details, int64_t now, bool *ret_changed)
{
    s_sqlite_t *sq = s_of(st);
    int rc = s_enter(sq);
    if (rc < 0)
        return rc;
    return s_leave(
        sq, s_set_kingdom_body(sq, id, state, details, details_len, set_details, now, ret_changed));
}

/* Position of stage in the role's order (numeric if no order), -1 if
 * absent. */
static long s_rank(const dy_receive_rule_t *r, int stage)
{
    if (!r->order)
        return stage;
    for (size_t i = 0; i < r->n_order; i++)
        if (r->order[i] == stage)
            return (long)i;
    return -1;
}

static int s_receive_body(s_sqlite_t *sq, const dy_receive_rule_t *r, const dy_blob_info_t *b,
                          int64_t now, dy_receive_result_t *ret)
{
    dy_computation_t c;
    int rc = s_get(sq, r->computation, &c);
    if (rc < 0)
        return rc;
    int64_t version = c.version;
    char owner[DY_STORE_NAME_MAX];
    memcpy(owner, c.lease_owner, sizeof(owner));
    dy_end_reason_t ended = c.ending_reason;
    int stage = c.stage;
    dy_computation_clear(&c);

    if (ended == DY_END_FAILED || ended == DY_END_CANCELLED)
        return DY_STORE_E_ENDED;
    bool past = ended == DY_END_SUCCEEDED;
    if (!past) {
        long cur = s_rank(r, stage), awaited = s_rank(r, r->awaited_stage);
        if (cur < 0 || awaited < 0)
            return -EINVAL;
        if (cur < awaited)
            return DY_STORE_E_STAGE_NOT_READY;
        past = cur > awaited;
    }
    dy_blob_rec_t old;
    rc = s_get_blob_rec(sq, r->computation, r->awaited_stage, r->slot, &old);
    if (rc < 0 && rc != -ENOENT)
        return rc;
    bool have = rc == 0;
    bool same =
        have && b && memcmp(old.blob.sha256, b->sha256, 32) == 0 && old.blob.size == b->size;
    if (past) {
        if (b && have && !same)
            return DY_STORE_E_CONFLICT;
        *ret = DY_RECV_PAST;
        return 0;
    }
    if (!b) {
        *ret = DY_RECV_READY;
        return 0;
    }
    if (have) {
        if (!same)
            return DY_STORE_E_CONFLICT;
        *ret = DY_RECV_DUPLICATE;
        return 0;
    }
    rc = s_put_blob(sq, r->computation, r->awaited_stage, r->slot, 0, b, now, NULL);
    if (rc < 0)
        return rc;
    for (size_t i = 0; i < r->n_slots; i++) {
        rc = s_get_blob_rec(sq, r->computation, r->awaited_stage, r->slots[i], &old);
        if (rc == -ENOENT) {
            *ret = DY_RECV_RECORDED;
            return 0;
        }
        if (rc < 0)
            return rc;
    }
    rc = s_move(sq, r->computation, version, owner, r->next_stage, DY_STAGE_WORK, DY_END_NONE, now);
    if (rc == 0)
        *ret = DY_RECV_ADVANCED;
    return rc;
}

static int s_receive(dy_store_t *st, const dy_receive_rule_t *rule, const dy_blob_info_t *blob,
                     int64_t now, dy_receive_result_t *ret)
{
    s_sqlite_t *sq = s_of(st);
    /* Without a blob it is the header check: s_receive_body only reads. */
    int rc = blob ? s_enter(sq) : s_enter_read(sq);
    if (rc < 0)
        return rc;
    return s_leave(sq, s_receive_body(sq, rule, blob, now, ret));
}

static int s_attempts(dy_store_t *st, const char *id, dy_store_attempt_fn fn, void *arg)
{
    s_sqlite_t *sq = s_of(st);
    int rc = 0;
    sqlite3_stmt *s = s_stmt(sq, S_ATT_LIST, &rc);
    if (!s)
        return rc;
    s_bind_text(s, 1, id);
    while ((rc = s_step(s)) == 1) {
        dy_attempt_t a;
        memset(&a, 0, sizeof(a));
        a.stage = sqlite3_column_int(s, 0);
        a.attempt = sqlite3_column_int64(s, 1);
        s_copy_text(a.owner, sizeof(a.owner), s, 2);
        a.begin_at = sqlite3_column_int64(s, 3);
        a.end_at = sqlite3_column_int64(s, 4);
        a.end_reason = s_reason_parse(sqlite3_column_text(s, 5));
        s_copy_text(a.error, sizeof(a.error), s, 6);
        rc = fn(&a, arg);
        if (rc != 0) {
            sqlite3_reset(s);
            return rc;
        }
    }
    return rc;
}

/* Reads the stored token: 0, -ENOENT, -ENOBUFS (buf NULL: key only). */
static int s_token_read(s_sqlite_t *sq, uint8_t *buf, size_t cap, dy_token_t *ret)
{
    int rc = 0;
    sqlite3_stmt *s = s_stmt(sq, S_TOKEN_GET, &rc);
    if (!s)
        return rc;
    rc = s_step(s);
    if (rc <= 0)
        return rc == 0 ? -ENOENT : rc;
    size_t n = (size_t)sqlite3_column_bytes(s, 0);
    ret->key_time = sqlite3_column_int64(s, 1);
    ret->key_id = (uint64_t)sqlite3_column_int64(s, 2);
    ret->token_len = n;
    ret->token = buf;
    rc = 0;
    if (buf) {
        if (n > cap)
            rc = -ENOBUFS;
        else if (n)
            memcpy(buf, sqlite3_column_blob(s, 0), n);
    }
    sqlite3_reset(s);
    return rc;
}

static int s_token_get(dy_store_t *st, uint8_t *buf, size_t cap, dy_token_t *ret)
{
    return s_token_read(s_of(st), buf, cap, ret);
}

static int s_token_set_body(s_sqlite_t *sq, const dy_token_t *tok, int64_t now)
{
    dy_token_t cur;
    int rc = s_token_read(sq, NULL, 0, &cur);
    if (rc == 0) {
        if (tok->key_time < cur.key_time ||
            (tok->key_time == cur.key_time && tok->key_id < cur.key_id))
            return DY_STORE_E_TOKEN_OLD;
        if (tok->key_time == cur.key_time && tok->key_id == cur.key_id)
            return 0; /* the same position: nothing to do */
    } else if (rc != -ENOENT) {
        return rc;
    }
    sqlite3_stmt *s = s_stmt(sq, S_TOKEN_PUT, &rc);
    if (!s)
        return rc;
    s_bind_blob(s, 1, tok->token ? tok->token : (const uint8_t *)"", tok->token_len);
    sqlite3_bind_int64(s, 2, tok->key_time);
    sqlite3_bind_int64(s, 3, (sqlite3_int64)tok->key_id);
    sqlite3_bind_int64(s, 4, now);
    return s_done(s);
}

static int s_token_set(dy_store_t *st, const dy_token_t *tok, int64_t now)
{
    /* key_id is compared as unsigned in C but stored as SQLite's signed
     * INTEGER; only equality and the C comparison above matter. */
    s_sqlite_t *sq = s_of(st);
    int rc = s_enter(sq);
    if (rc < 0)
        return rc;
    return s_leave(sq, s_token_set_body(sq, tok, now));
}

static int s_req_put_body(s_sqlite_t *sq, const char *comp, const char *req, const char *duchy,
                          const uint8_t *details, size_t details_len)
{
    dy_computation_t c;
    int rc = s_get(sq, comp, &c);
    if (rc < 0)
        return rc;
    dy_computation_clear(&c);
    sqlite3_stmt *s = s_stmt(sq, S_REQ_PUT, &rc);
    if (!s)
        return rc;
    s_bind_text(s, 1, comp);
    s_bind_text(s, 2, req);
    s_bind_text(s, 3, duchy);
    s_bind_blob(s, 4, details, details_len);
    return s_done(s);
}

static int s_req_put(dy_store_t *st, const char *comp, const char *req, const char *duchy,
                     const uint8_t *details, size_t details_len)
{
    s_sqlite_t *sq = s_of(st);
    int rc = s_enter(sq);
    if (rc < 0)
        return rc;
    return s_leave(sq, s_req_put_body(sq, comp, req, duchy, details, details_len));
}

static int s_req_fulfill_body(s_sqlite_t *sq, const char *comp, const char *req,
                              const dy_blob_info_t *b, const uint8_t *seed, size_t seed_len,
                              int64_t now, bool *ret_dup)
{
    int rc = 0;
    sqlite3_stmt *s = s_stmt(sq, S_REQ_GET, &rc);
    if (!s)
        return rc;
    s_bind_text(s, 1, comp);
    s_bind_text(s, 2, req);
    rc = s_step(s);
    if (rc <= 0)
        return rc == 0 ? -ENOENT : rc;
    if (sqlite3_column_type(s, 0) != SQLITE_NULL) {
        const void *sha = sqlite3_column_blob(s, 1);
        const void *old_seed = sqlite3_column_blob(s, 2);
        size_t old_seed_len = (size_t)sqlite3_column_bytes(s, 2);
        bool same = sha && sqlite3_column_bytes(s, 1) == 32 && memcmp(sha, b->sha256, 32) == 0 &&
                    old_seed_len == seed_len &&
                    (seed_len == 0 || memcmp(old_seed, seed, seed_len) == 0);
        sqlite3_reset(s);
        if (!same)
            return DY_STORE_E_CONFLICT;
        *ret_dup = true;
        return 0;
    }
    sqlite3_reset(s);
    s = s_stmt(sq, S_REQ_FULFILL, &rc);
    if (!s)
        return rc;
    s_bind_text(s, 1, b->path);
    sqlite3_bind_int64(s, 2, (sqlite3_int64)b->size);
    sqlite3_bind_blob(s, 3, b->sha256, 32, SQLITE_STATIC);
    s_bind_blob(s, 4, seed ? seed : (const uint8_t *)"", seed_len);
    sqlite3_bind_int64(s, 5, now);
    s_bind_text(s, 6, comp);
    s_bind_text(s, 7, req);
    return s_done(s);
}

static int s_req_fulfill(dy_store_t *st, const char *comp, const char *req,
                         const dy_blob_info_t *blob, const uint8_t *seed, size_t seed_len,
                         int64_t now, bool *ret_dup)
{
    s_sqlite_t *sq = s_of(st);
    int rc = s_enter(sq);
    if (rc < 0)
        return rc;
    return s_leave(sq, s_req_fulfill_body(sq, comp, req, blob, seed, seed_len, now, ret_dup));
}

static int s_req_list(dy_store_t *st, const char *comp, dy_store_requisition_fn fn, void *arg)
{
    s_sqlite_t *sq = s_of(st);
    int rc = 0;
    sqlite3_stmt *s = s_stmt(sq, S_REQ_LIST, &rc);
    if (!s)
        return rc;
    s_bind_text(s, 1, comp);
    while ((rc = s_step(s)) == 1) {
        dy_requisition_t r;
        memset(&r, 0, sizeof(r));
        s_copy_text(r.computation, sizeof(r.computation), s, 0);
        s_copy_text(r.id, sizeof(r.id), s, 1);
        s_copy_text(r.fulfilling_duchy, sizeof(r.fulfilling_duchy), s, 2);
        rc = s_copy_blob(s, 3, &r.details, &r.details_len);
        r.fulfilled = sqlite3_column_type(s, 4) != SQLITE_NULL;
        if (r.fulfilled) {
            s_copy_text(r.blob.path, sizeof(r.blob.path), s, 4);
            r.blob.size = (uint64_t)sqlite3_column_int64(s, 5);
            if (sqlite3_column_bytes(s, 6) == 32)
                memcpy(r.blob.sha256, sqlite3_column_blob(s, 6), 32);
            if (rc == 0)
                rc = s_copy_blob(s, 7, &r.seed, &r.seed_len);
        }
        if (rc == 0)
            rc = fn(&r, arg);
        dy_requisition_clear(&r);
        if (rc != 0) {
            sqlite3_reset(s);
            return rc;
        }
    }
    return rc;
}

static int s_audit_tail(dy_store_t *st, int64_t *ret_seq, uint8_t ret_hash[32])
{
    s_sqlite_t *sq = s_of(st);
    int rc = 0;
    sqlite3_stmt *s = s_stmt(sq, S_AUDIT_TAIL, &rc);
    if (!s)
        return rc;
    rc = s_step(s);
    if (rc < 0)
        return rc;
    if (rc == 0) {
        *ret_seq = 0;
        memset(ret_hash, 0, 32);
        return 0;
    }
    *ret_seq = sqlite3_column_int64(s, 0);
    memset(ret_hash, 0, 32);
    if (sqlite3_column_bytes(s, 1) == 32)
        memcpy(ret_hash, sqlite3_column_blob(s, 1), 32);
    sqlite3_reset(s);
    return 0;
}

static int s_audit_insert(dy_store_t *st, const dy_audit_row_t *row)
{
    s_sqlite_t *sq = s_of(st);
    int rc = 0;
    sqlite3_stmt *s = s_stmt(sq, S_AUDIT_INSERT, &rc);
    if (!s)
        return rc;
    sqlite3_bind_int64(s, 1, row->seq);
    sqlite3_bind_int64(s, 2, row->time);
    s_bind_text(s, 3, row->actor);
    s_bind_text(s, 4, row->computation);
    sqlite3_bind_int(s, 5, row->stage);
    s_bind_text(s, 6, row->event);
    s_bind_text(s, 7, row->detail);
    sqlite3_bind_blob(s, 8, row->prev_hash, 32, SQLITE_STATIC);
    sqlite3_bind_blob(s, 9, row->hash, 32, SQLITE_STATIC);
    return s_done(s);
}

static int s_audit_scan(dy_store_t *st, int64_t after_seq, dy_store_audit_fn fn, void *arg)
{
    s_sqlite_t *sq = s_of(st);
    int rc = 0;
    sqlite3_stmt *s = s_stmt(sq, S_AUDIT_SCAN, &rc);
    if (!s)
        return rc;
    sqlite3_bind_int64(s, 1, after_seq);
    dy_audit_row_t *row = malloc(sizeof(*row));
    if (!row)
        return -ENOMEM;
    while ((rc = s_step(s)) == 1) {
        memset(row, 0, sizeof(*row));
        row->seq = sqlite3_column_int64(s, 0);
        row->time = sqlite3_column_int64(s, 1);
        s_copy_text(row->actor, sizeof(row->actor), s, 2);
        s_copy_text(row->computation, sizeof(row->computation), s, 3);
        row->stage = sqlite3_column_int(s, 4);
        s_copy_text(row->event, sizeof(row->event), s, 5);
        s_copy_text(row->detail, sizeof(row->detail), s, 6);
        /* A hash column of the wrong size stays zero: verify reports it. */
        if (sqlite3_column_bytes(s, 7) == 32)
            memcpy(row->prev_hash, sqlite3_column_blob(s, 7), 32);
        if (sqlite3_column_bytes(s, 8) == 32)
            memcpy(row->hash, sqlite3_column_blob(s, 8), 32);
        rc = fn(row, arg);
        if (rc != 0) {
            sqlite3_reset(s);
            break;
        }
    }
    free(row);
    return rc;
}

static int s_check(dy_store_t *st)
{
    s_sqlite_t *sq = s_of(st);
    sqlite3_stmt *s = NULL;
    int rc = sqlite3_prepare_v2(sq->db, "PRAGMA integrity_check", -1, &s, NULL);
    if (rc != SQLITE_OK)
        return s_errno(rc);
    int bad = 0;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        const unsigned char *t = sqlite3_column_text(s, 0);
        if (!t || strcmp((const char *)t, "ok") != 0)
            bad = 1;
    }
    sqlite3_finalize(s);
    if (rc != SQLITE_DONE)
        return s_errno(rc);
    rc = sqlite3_prepare_v2(sq->db, "PRAGMA foreign_key_check", -1, &s, NULL);
    if (rc != SQLITE_OK)
        return s_errno(rc);
    while ((rc = sqlite3_step(s)) == SQLITE_ROW)
        bad = 1;
    sqlite3_finalize(s);
    if (rc != SQLITE_DONE)
        return s_errno(rc);
    return bad ? -EUCLEAN : 0;
}

static const dy_store_ops_t s_ops = {
    .name = "sqlite",
    .close = s_close,
    .begin = s_begin,
    .commit = s_commit,
    .rollback = s_rollback,
    .create = s_create,
    .get = s_get_op,
    .list = s_list,
    .claim = s_claim,
    .renew = s_renew,
    .record_output = s_record_output,
    .get_blob = s_get_blob,
    .complete = s_complete,
    .fail_transient = s_fail_transient,
    .end = s_end,
    .advance = s_advance,
    .set_kingdom = s_set_kingdom,
    .receive = s_receive,
    .attempts = s_attempts,
    .token_get = s_token_get,
    .token_set = s_token_set,
    .req_put = s_req_put,
    .req_fulfill = s_req_fulfill,
    .req_list = s_req_list,
    .audit_tail = s_audit_tail,
    .audit_insert = s_audit_insert,
    .audit_scan = s_audit_scan,
    .check = s_check,
};

/* Connection settings; journal_mode must be set outside a transaction and
 * stays WAL in the file (":memory:" answers "memory", which is fine). */
static int s_configure(sqlite3 *db, const dy_store_config_t *cfg)
{
    int rc = s_errno(sqlite3_busy_timeout(db, cfg->busy_timeout_ms));
    if (rc == 0)
        rc = s_exec(db, "PRAGMA journal_mode = WAL");
    if (rc == 0)
        rc = s_exec(db,
                    cfg->sync_normal ? "PRAGMA synchronous = NORMAL" : "PRAGMA synchronous = FULL");
    if (rc == 0)
        rc = s_exec(db, "PRAGMA foreign_keys = ON");
    if (rc == 0)
        rc = s_exec(db, "PRAGMA trusted_schema = OFF");
    return rc;
}

int dy_store_sqlite_open(const dy_store_config_t *cfg, dy_store_t **ret_st)
{
    s_sqlite_t *sq = calloc(1, sizeof(*sq));
    if (!sq)
        return -ENOMEM;
    sq->base.ops = &s_ops;
    sq->base.cfg = *cfg;
    sq->base.path = strdup(cfg->path);
    if (!sq->base.path) {
        free(sq);
        return -ENOMEM;
    }
    sq->base.cfg.path = sq->base.path;
    /* NOMUTEX: a connection is used by one thread at a time (store.h). */
    int rc = sqlite3_open_v2(
        cfg->path, &sq->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        rc = sq->db ? s_errno(sqlite3_extended_errcode(sq->db)) : -ENOMEM;
        goto fail;
    }
    sqlite3_extended_result_codes(sq->db, 1);
    rc = s_configure(sq->db, cfg);
    if (rc == 0)
        rc = s_migrate(sq->db);
    if (rc < 0)
        goto fail;
    *ret_st = &sq->base;
    return 0;
fail:
    sqlite3_close(sq->db);
    free(sq->base.path);
    free(sq);
    return rc;
}
