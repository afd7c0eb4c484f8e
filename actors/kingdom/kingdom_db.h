/* kingdom_db.h - the Kingdom's own SQLite database: measurements, computations, participants,
 * requisitions and log entries (PROTOCOL.md §4, §7.2), plus the external-id codec of §1.
 *
 * One connection, WAL, busy_timeout, foreign keys on, every statement prepared once at open.
 * Schema versions by PRAGMA user_version (migrations in s_migrations[]).  The handlers work
 * on whole computations (dy_kd_comp_t of kingdom_fsm.h): dy_kd_db_begin, dy_kd_db_load, apply
 * the state machine, dy_kd_db_save, dy_kd_db_commit.  dy_kd_db_save assigns the stream key's
 * time, update_time = max(now_us, last_assigned + 1) table-wide, inside that transaction, so
 * commit order is key order; it also bumps the version (etag) of every dirty row.
 *
 * IDs are stored as SQLite integers; the Kingdom generates them in 1..2^63-1 (as the
 * reference's positive longs), so SQLite's signed order is their unsigned order.
 *
 * Errors: 0 or a negative errno (-ENOENT absent, -EEXIST unique conflict, -EBUSY busy past the
 * timeout, -EIO other SQLite failures, -ENOMEM).  Nothing here logs.
 */
#ifndef DY_KINGDOM_DB_H
#define DY_KINGDOM_DB_H

#include "kingdom_fsm.h"

typedef struct dy_kd_db dy_kd_db_t;

/* Opens (creating or migrating) the database at path (":memory:" works).  busy_ms is the
 * busy_timeout.  NULL with a reason in errbuf.  Caller destroys. */
dy_kd_db_t *dy_kd_db_open(const char *path, int busy_ms, char *errbuf, size_t errlen);
void dy_kd_db_destroy(dy_kd_db_t **self_p);

/* The schema version this code writes. */
#define DY_KD_DB_SCHEMA 1

/* BEGIN IMMEDIATE / COMMIT / ROLLBACK.  Rollback is safe without an open transaction. */
int dy_kd_db_begin(dy_kd_db_t *db);
int dy_kd_db_commit(dy_kd_db_t *db);
void dy_kd_db_rollback(dy_kd_db_t *db);

/* Test hook: a clock returning microseconds (NULL = the real clock). */
void dy_kd_db_set_clock(dy_kd_db_t *db, int64_t (*now_us)(void *arg), void *arg);

/* A new random external id in 1..2^63-1 not used as a measurement (kind 'm') or requisition
 * (kind 'r') or log entry (kind 'l').  0 or -EIO. */
int dy_kd_db_new_id(dy_kd_db_t *db, char kind, uint64_t *ret_id);

/* The measurement row of a new computation. */
typedef struct {
    const char *request_id;        /* "" = no idempotency key */
    const uint8_t *measurement;    /* serialized public Measurement as accepted (normalised) */
    size_t measurement_len;
    const uint8_t *protocol_config; /* serialized public ProtocolConfig (effective) */
    size_t protocol_config_len;
    /* Per requisition (comp->nreqs of each), serialized/borrowed. */
    const char *const *dp_certificates;
    const dy_buf_t *encrypted_specs; /* serialized EncryptedMessage */
    const dy_buf_t *dp_public_keys;  /* serialized Any, may be empty */
} dy_kd_db_measurement_t;

/* Inserts a new computation (comp: state set by the CREATE action, ids assigned) with its
 * measurement row, participants and requisitions, and assigns times and versions 1.  Inside a
 * transaction.  -EEXIST if (mc, request_id) exists. */
int dy_kd_db_insert(dy_kd_db_t *db, dy_kd_comp_t *comp, const dy_kd_db_measurement_t *m);

/* Loads computation id into *comp (zeroed first; caller frees with dy_kd_comp_free).
 * 0 or -ENOENT. */
int dy_kd_db_load(dy_kd_db_t *db, uint64_t id, dy_kd_comp_t *comp);

/* Writes the dirty rows of comp (clearing the flags), bumping their versions, and assigns
 * a fresh update_time if anything was dirty.  Inside a transaction. */
int dy_kd_db_save(dy_kd_db_t *db, dy_kd_comp_t *comp);

/* The measurement's stored blobs (caller frees both buffers).  0 or -ENOENT. */
int dy_kd_db_measurement(dy_kd_db_t *db, uint64_t id, dy_buf_t *ret_measurement,
                         dy_buf_t *ret_protocol_config);

/* The public requisition's stored blobs and certificate (caller frees).  0 or -ENOENT. */
int dy_kd_db_requisition_extra(dy_kd_db_t *db, uint64_t req_id, char **ret_dp_certificate,
                               dy_buf_t *ret_encrypted_spec, dy_buf_t *ret_dp_public_key);

/* The computation of (mc, request_id).  0 or -ENOENT. */
int dy_kd_db_find_request(dy_kd_db_t *db, const char *mc, const char *request_id,
                          uint64_t *ret_id);

/* The computation and data provider of requisition req_id.  0 or -ENOENT. */
int dy_kd_db_find_requisition(dy_kd_db_t *db, uint64_t req_id, uint64_t *ret_comp,
                              char ret_edp[DY_KD_ID_MAX]);

/* Stream query (§7.2): up to max computations that duchy participates in, in a streamed
 * state, with (update_time, id) strictly after (t0, id0), ascending.  Fills ids and times;
 * returns the count or a negative errno. */
int dy_kd_db_stream(dy_kd_db_t *db, const char *duchy, int64_t t0, uint64_t id0, size_t max,
                    uint64_t *ids, int64_t *times);

/* Visible requisitions of data provider edp with id > after, ascending: up to max
 * (requisition id, computation id) pairs.  Count or negative errno. */
int dy_kd_db_list_requisitions(dy_kd_db_t *db, const char *edp, uint64_t after, size_t max,
                               uint64_t *req_ids, uint64_t *comp_ids);

/* Appends a log entry.  0 or negative errno. */
int dy_kd_db_log_insert(dy_kd_db_t *db, uint64_t comp, const char *duchy, uint64_t id,
                        const uint8_t *entry, size_t len);

/* Number of log entries of (comp, duchy), for tests. */
int dy_kd_db_log_count(dy_kd_db_t *db, uint64_t comp, const char *duchy);

/* Non-terminal computations created before before_us: up to max ids.  Count or errno. */
int dy_kd_db_expired(dy_kd_db_t *db, int64_t before_us, size_t max, uint64_t *ids);

/* Current time in microseconds per the db's clock. */
int64_t dy_kd_db_now(dy_kd_db_t *db);

/* ---- external ids and tokens (PROTOCOL.md §1, §7.2) ------------------------------------ */

/* Ids use dy_ext_id_encode / dy_ext_id_decode and tokens dy_b64url_encode (dy.h). */
#define DY_KD_EXT_ID_LEN DY_EXT_ID_LEN /* characters */

/* Decodes a continuation token: base64url, where the Kingdom also accepts '=' padding as
 * the proper tail of a multiple-of-4 string (kingdom_api.c D4).  Returns the byte count,
 * or -EINVAL (bad character, bad length, non-zero trailing bits, too long). */
int dy_kd_b64url_decode(const char *s, uint8_t *out, size_t cap);

#endif
