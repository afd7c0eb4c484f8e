/* store.h - the duchy's durable state: computations and their stage
 * machines' persistent part, stage attempts, leases, recorded blobs,
 * requisitions, the herald's continuation token and the audit log
 * (PROTOCOL.md §6.1, §7; DESIGN.md §3).
 *
 * One interface, several backends: dy_store_t carries a table of function
 * pointers (dy_store_ops_t); the public dy_store_*() functions check their
 * arguments and dispatch.  store_sqlite.c is the SQLite backend (one file
 * per duchy, WAL); a PostgreSQL backend for multi-host duchies (DESIGN.md
 * §7) implements the same table with the same SQL semantics.
 *
 * The store knows no protocol.  Stages, roles, protocols and Kingdom states
 * are integers chosen by the caller (the proto enum values); what the
 * store needs to know about them comes in as arguments: which stages are
 * prioritized for claiming, the kind of the next stage on a transition,
 * and for a received input the awaited stage, its slots and the role's
 * stage order.
 *
 * Time: integer microseconds since the Unix epoch everywhere (columns
 * created_at, updated_at, lease_expiry, begin_at, end_at, audit time),
 * read from the configured clock so tests can drive it.
 *
 * Processes and threads: every process opens its own store after it
 * starts; a store never crosses fork() (sqlite.org "how to corrupt": a
 * child using or even closing an inherited connection can corrupt the
 * database).  Calls from another process than the opener fail with
 * -EBADFD, and dy_store_destroy() there only frees memory.  One store is
 * used by one thread at a time; threads wanting concurrency open their own.
 *
 * Errors: 0 or a negative errno.  Results with protocol meaning have names:
 *   DY_STORE_E_EXISTS          create: the computation exists (ALREADY_EXISTS, a success)
 *   DY_STORE_E_STALE           version/lease_owner fence failed: ABORTED, stop silently
 *   DY_STORE_E_LEASE_LOST      renew found no row: kill the worker, write nothing
 *   DY_STORE_E_EXHAUSTED       transient failure of the last allowed attempt
 *   DY_STORE_E_STAGE_NOT_READY §6.1 FAILED_PRECONDITION STAGE_NOT_READY
 *   DY_STORE_E_ENDED           §6.1 FAILED_PRECONDITION COMPUTATION_ENDED
 *   DY_STORE_E_CONFLICT        §6.1 FAILED_PRECONDITION INPUT_CONFLICT
 *   DY_STORE_E_TOKEN_OLD       continuation token older than the stored one
 * Others: -ENOENT (no such row), -EINVAL (bad argument), -EBUSY (database
 * locked past busy_timeout: transient), -ENOSPC, -EIO, -ENOMEM, -EBADFD.
 * Nothing here logs above debug (it does not log at all).
 */
#ifndef DY_STORE_H
#define DY_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "blob.h"
#include "dy.h"

#define DY_STORE_E_EXISTS (-EEXIST)
#define DY_STORE_E_STALE (-ESTALE)
#define DY_STORE_E_LEASE_LOST (-ENOLCK)
#define DY_STORE_E_EXHAUSTED (-EDQUOT)
#define DY_STORE_E_STAGE_NOT_READY (-EAGAIN)
#define DY_STORE_E_ENDED (-ECANCELED)
#define DY_STORE_E_CONFLICT (-EBADE)
#define DY_STORE_E_TOKEN_OLD (-EALREADY)

#define DY_STORE_NAME_MAX 64      /* bytes of an id/owner/slot, NUL included */
#define DY_STORE_MAX_PRIORITY 8   /* prioritized (protocol, stage) pairs per claim */
#define DY_STORE_MAX_SLOTS 8      /* input slots of one awaited stage */
#define DY_STORE_ERROR_MAX 1024   /* bytes of attempt error text kept */
#define DY_STORE_TOKEN_MAX 4096   /* bytes of a continuation token */
#define DY_STORE_DEFAULT_CLAIM 50 /* rows per claim (PROTOCOL.md §7.1) */
#define DY_STORE_DEFAULT_MAX_ATTEMPTS 10

typedef struct dy_store dy_store_t;

/* Current microseconds since the epoch. */
typedef int64_t (*dy_clock_fn)(void *arg);

/* How a stage is left (PROTOCOL.md §5): work stages are claimable (expiry =
 * now), wait stages wait for an event and COMPLETE is terminal (expiry
 * NULL). */
typedef enum {
    DY_STAGE_WORK = 0,
    DY_STAGE_WAIT = 1,
    DY_STAGE_COMPLETE = 2,
    _DY_STAGE_MAX
} dy_stage_kind_t;

/* End reasons of computations (SUCCEEDED, FAILED, CANCELLED) and attempts
 * (all four).  NONE = not ended. */
typedef enum {
    DY_END_NONE = 0,
    DY_END_SUCCEEDED = 1,
    DY_END_FAILED = 2,
    DY_END_CANCELLED = 3,
    DY_END_LOCK_OVERWRITTEN = 4,
    _DY_END_MAX
} dy_end_reason_t;

/* "SUCCEEDED", ... ("" for NONE, NULL when out of range). */
const char *dy_end_reason_name(dy_end_reason_t r);

/* Store configuration; zero fields take the defaults. */
typedef struct {
    const char *backend;  /* borrowed; "sqlite" (NULL = sqlite) */
    const char *path;     /* borrowed; database file or ":memory:" */
    int busy_timeout_ms;  /* 0 = 5000 */
    int max_attempts;     /* 0 = DY_STORE_DEFAULT_MAX_ATTEMPTS */
    double backoff_scale; /* multiplies transient backoff; 0 = 1.0 (tests: e.g. 1e-3) */
    bool sync_normal;     /* PRAGMA synchronous=NORMAL instead of FULL */
    dy_clock_fn clock;    /* NULL = CLOCK_REALTIME */
    void *clock_arg;      /* borrowed; passed to clock */
} dy_store_config_t;

/* A computation row as read. */
typedef struct {
    char id[DY_STORE_NAME_MAX];          /* global computation id */
    int protocol;                        /* caller's protocol enum */
    int role;                            /* caller's role enum */
    int stage;                           /* caller's stage enum */
    int64_t next_attempt;                /* attempt number of the next claim (first 1) */
    int64_t version;                     /* bumped by every fenced move */
    char lease_owner[DY_STORE_NAME_MAX]; /* "" = unowned */
    bool claimable;                      /* lease_expiry is not NULL */
    int64_t lease_expiry;                /* us; meaningful if claimable */
    int64_t created_at;                  /* us */
    int64_t updated_at;                  /* us */
    int kingdom_state;                   /* latest Kingdom state stored (0 = none) */
    uint8_t *details;                    /* owned; opaque serialized details, or NULL */
    size_t details_len;                  /* bytes at details */
    dy_end_reason_t ending_reason;       /* NONE unless COMPLETE */
} dy_computation_t;

/* Frees the details and zeroes c.  NULL-safe. */
void dy_computation_clear(dy_computation_t *c);

/* A new computation (herald). */
typedef struct {
    const char *id;         /* borrowed */
    int protocol;           /* caller's enum */
    int role;               /* caller's enum */
    int stage;              /* initial stage */
    dy_stage_kind_t kind;   /* WORK: claimable at once; WAIT: not claimable */
    int kingdom_state;      /* Kingdom state of the creating item */
    const uint8_t *details; /* borrowed; may be NULL */
    size_t details_len;     /* bytes at details */
} dy_computation_new_t;

/* A claimed lease, the fence of every worker write. */
typedef struct {
    char computation[DY_STORE_NAME_MAX]; /* computation id */
    char owner[DY_STORE_NAME_MAX];       /* claimer's owner id */
    int protocol;                        /* of the computation */
    int role;                            /* of the computation */
    int stage;                           /* stage being worked */
    int64_t attempt;                     /* this attempt's number (first 1) */
    int64_t version;                     /* version after the claim */
    int64_t lease_expiry;                /* us */
    bool exhausted;                      /* attempt > max_attempts: fail it, don't run */
} dy_lease_t;

/* A (protocol, stage) pair. */
typedef struct {
    int protocol;
    int stage;
} dy_stage_ref_t;

/* A stage output to record (borrowed pointers). */
typedef struct {
    const char *slot;           /* name within the stage */
    const dy_blob_info_t *blob; /* committed blob */
} dy_store_output_t;

/* Completion of a claimed work stage (PROTOCOL.md §7.1). */
typedef struct {
    int next_stage;                   /* stage entered */
    dy_stage_kind_t next_kind;        /* its kind; COMPLETE ends SUCCEEDED */
    int jump_min_kingdom_state;       /* §5.4: if > 0 and the stored Kingdom state */
    int jump_stage;                   /*   is >= it, enter jump_stage (jump_kind) */
    dy_stage_kind_t jump_kind;        /*   instead, in the same transaction */
    const dy_store_output_t *outputs; /* borrowed; recorded (cache rules apply) */
    size_t n_outputs;                 /* entries at outputs */
    bool set_details;                 /* replace details with the two below */
    const uint8_t *details;           /* borrowed */
    size_t details_len;               /* bytes at details */
} dy_store_completion_t;

/* A §6.1 receive rule for one input, supplied by the protocol layer. */
typedef struct {
    const char *computation;  /* borrowed */
    int awaited_stage;        /* wait stage the input belongs to */
    const char *slot;         /* this sender's slot */
    const char *const *slots; /* borrowed; every slot the stage waits for */
    size_t n_slots;           /* 1..DY_STORE_MAX_SLOTS */
    int next_stage;           /* work stage entered when all slots are filled */
    const int *order;         /* borrowed; this role's stages in order, or NULL */
    size_t n_order;           /*   (NULL: numeric stage order) */
} dy_receive_rule_t;

/* Successful outcomes of dy_store_receive(). */
typedef enum {
    DY_RECV_READY = 0,     /* header check only: awaited stage, slot open or same */
    DY_RECV_RECORDED = 1,  /* blob recorded, more slots pending */
    DY_RECV_ADVANCED = 2,  /* blob recorded, all filled, next stage claimable */
    DY_RECV_DUPLICATE = 3, /* slot already held the same SHA-256 */
    DY_RECV_PAST = 4,      /* past the awaited stage: delivered earlier */
} dy_receive_result_t;

/* A stage attempt row. */
typedef struct {
    int stage;                      /* stage attempted */
    int64_t attempt;                /* number */
    char owner[DY_STORE_NAME_MAX];  /* claimer */
    int64_t begin_at;               /* us */
    int64_t end_at;                 /* us; 0 while open */
    dy_end_reason_t end_reason;     /* NONE while open */
    char error[DY_STORE_ERROR_MAX]; /* error text of a FAILED attempt, or "" */
} dy_attempt_t;

/* A recorded blob row. */
typedef struct {
    int stage;           /* stage it belongs to */
    int64_t attempt;     /* producing attempt (0: received) */
    dy_blob_info_t blob; /* path, size, sha256 */
} dy_blob_rec_t;

/* The herald's continuation token: opaque bytes plus the ordering key the
 * Kingdom assigns (update_time, external id), compared lexicographically. */
typedef struct {
    const uint8_t *token; /* borrowed on set; owned by the caller's buffer on get */
    size_t token_len;     /* bytes */
    int64_t key_time;     /* update_time in us */
    uint64_t key_id;      /* external id (fixed64) */
} dy_token_t;

/* A requisition row (PROTOCOL.md §3.3, §6.3). */
typedef struct {
    char computation[DY_STORE_NAME_MAX];      /* computation id */
    char id[DY_STORE_NAME_MAX];               /* requisition id */
    char fulfilling_duchy[DY_STORE_NAME_MAX]; /* "" if not assigned */
    bool fulfilled;                           /* data stored here */
    dy_blob_info_t blob;                      /* data blob if fulfilled */
    uint8_t *seed;                            /* owned; seed fields, serialized (HMSS) */
    size_t seed_len;                          /* bytes at seed */
    uint8_t *details;                         /* owned; herald's opaque details */
    size_t details_len;                       /* bytes at details */
} dy_requisition_t;

/* Frees owned fields and zeroes r.  NULL-safe. */
void dy_requisition_clear(dy_requisition_t *r);

/* An audit row (audit.h computes the hashes). */
typedef struct {
    int64_t seq;                         /* 1, 2, ... */
    int64_t time;                        /* us */
    char actor[DY_STORE_NAME_MAX];       /* who */
    char computation[DY_STORE_NAME_MAX]; /* "" if none */
    int stage;                           /* -1 if none */
    char event[DY_STORE_NAME_MAX];       /* what, a stable identifier */
    char detail[DY_STORE_ERROR_MAX];     /* free text, never secret */
    uint8_t prev_hash[32];               /* hash of row seq-1 (zeros for seq 1) */
    uint8_t hash[32];                    /* SHA-256(prev_hash || canonical row) */
} dy_audit_row_t;

/* Callbacks for listings: return 0 to go on, non-zero to stop (returned).
 * Rows are borrowed for the call; a callback must not call the store. */
typedef int (*dy_store_computation_fn)(const dy_computation_t *c, void *arg);
typedef int (*dy_store_attempt_fn)(const dy_attempt_t *a, void *arg);
typedef int (*dy_store_requisition_fn)(const dy_requisition_t *r, void *arg);
typedef int (*dy_store_audit_fn)(const dy_audit_row_t *row, void *arg);

/* The backend interface.  Arguments arrive checked by store.c. */
typedef struct {
    const char *name;
    void (*close)(dy_store_t *st);
    int (*begin)(dy_store_t *st);
    int (*commit)(dy_store_t *st);
    int (*rollback)(dy_store_t *st);
    int (*create)(dy_store_t *st, const dy_computation_new_t *c, int64_t now);
    int (*get)(dy_store_t *st, const char *id, dy_computation_t *ret);
    int (*list)(dy_store_t *st, bool include_ended, dy_store_computation_fn fn, void *arg);
    int (*claim)(dy_store_t *st, const char *owner, const dy_stage_ref_t *prio, size_t n_prio,
                 int64_t lease_us, int64_t now, dy_lease_t *ret, size_t max, size_t *ret_n);
    int (*renew)(dy_store_t *st, dy_lease_t *lease, int64_t lease_us, int64_t now);
    int (*record_output)(dy_store_t *st, const dy_lease_t *lease, const dy_store_output_t *o,
                         int64_t now);
    int (*get_blob)(dy_store_t *st, const char *id, int stage, const char *slot,
                    dy_blob_rec_t *ret);
    int (*complete)(dy_store_t *st, const dy_lease_t *lease, const dy_store_completion_t *c,
                    int64_t now, int *ret_stage);
    int (*fail_transient)(dy_store_t *st, const dy_lease_t *lease, const char *error,
                          bool exhausted, int64_t retry_at, int64_t now);
    int (*end)(dy_store_t *st, const char *id, const dy_lease_t *fence, int complete_stage,
               dy_end_reason_t reason, const char *error, int64_t now, bool *ret_changed);
    int (*advance)(dy_store_t *st, const char *id, int from_stage, int to_stage,
                   dy_stage_kind_t to_kind, int64_t now, bool *ret_moved);
    int (*set_kingdom)(dy_store_t *st, const char *id, int state, const uint8_t *details,
                       size_t details_len, bool set_details, int64_t now, bool *ret_changed);
    int (*receive)(dy_store_t *st, const dy_receive_rule_t *rule, const dy_blob_info_t *blob,
                   int64_t now, dy_receive_result_t *ret);
    int (*attempts)(dy_store_t *st, const char *id, dy_store_attempt_fn fn, void *arg);
    int (*token_get)(dy_store_t *st, uint8_t *buf, size_t cap, dy_token_t *ret);
    int (*token_set)(dy_store_t *st, const dy_token_t *tok, int64_t now);
    int (*req_put)(dy_store_t *st, const char *comp, const char *req, const char *duchy,
                   const uint8_t *details, size_t details_len);
    int (*req_fulfill)(dy_store_t *st, const char *comp, const char *req,
                       const dy_blob_info_t *blob, const uint8_t *seed, size_t seed_len,
                       int64_t now, bool *ret_duplicate);
    int (*req_list)(dy_store_t *st, const char *comp, dy_store_requisition_fn fn, void *arg);
    int (*audit_tail)(dy_store_t *st, int64_t *ret_seq, uint8_t ret_hash[32]);
    int (*audit_insert)(dy_store_t *st, const dy_audit_row_t *row);
    int (*audit_scan)(dy_store_t *st, int64_t after_seq, dy_store_audit_fn fn, void *arg);
    int (*check)(dy_store_t *st);
} dy_store_ops_t;

/* The common head of every backend's store object. */
struct dy_store {
    const dy_store_ops_t *ops; /* backend table, static */
    dy_store_config_t cfg;     /* copy; cfg.path points at path below */
    char *path;                /* owned copy of the database path */
    int pid;                   /* process that opened it (fork guard) */
    int tx_depth;              /* dy_store_begin nesting, kept by store.c */
};

/* Opens (creating and migrating) the store described by cfg.  0 with
 * *ret_st set (caller destroys), -EINVAL, -ENOTSUP (unknown backend),
 * -EPROTO (database schema newer than this code), -EBUSY, -EIO, -ENOMEM. */
int dy_store_open(const dy_store_config_t *cfg, dy_store_t **ret_st);

/* Closes and frees.  NULL-safe; nulls *st_p.  An open transaction is rolled
 * back.  In a forked child it frees memory only. */
void dy_store_destroy(dy_store_t **st_p);

/* The configured clock, in microseconds. */
int64_t dy_store_now(dy_store_t *st);

/* Transactions.  begin takes the write lock at once (BEGIN IMMEDIATE) so
 * the caller's reads and writes form one atomic unit; every dy_store_*
 * and dy_audit_* call inside joins it (as a savepoint, so a failed call
 * leaves the caller's earlier work intact).  Nesting is counted; the
 * outermost commit commits.  0, -EBUSY, -EIO, -EINVAL (commit without
 * begin).  rollback undoes everything since the outermost begin and is
 * NULL-safe to call at any depth (it closes all levels). */
int dy_store_begin(dy_store_t *st);
int dy_store_commit(dy_store_t *st);
void dy_store_rollback(dy_store_t *st);

/* Creates a computation (herald).  A WORK initial stage is claimable at
 * once (expiry = now), a WAIT one is not.  next_attempt 1, version 1.
 * 0, DY_STORE_E_EXISTS (the row exists; nothing changed), -EINVAL. */
int dy_store_create(dy_store_t *st, const dy_computation_new_t *c);

/* Reads a computation into *ret (caller clears it).  0 or -ENOENT. */
int dy_store_get(dy_store_t *st, const char *id, dy_computation_t *ret);

/* Calls fn for each computation, oldest first (admin view); ended ones
 * only if include_ended.  0, fn's non-zero result, or a negative errno. */
int dy_store_list(dy_store_t *st, bool include_ended, dy_store_computation_fn fn, void *arg);

/* Claims up to max (> 0; PROTOCOL.md §7.1 uses DY_STORE_DEFAULT_CLAIM) claimable
 * rows (expiry <= now) for owner in one BEGIN IMMEDIATE transaction:
 * prioritized (protocol, stage) pairs first, then by creation time,
 * expiry, update time.  Each row: owner set, expiry now+lease_us,
 * version+1, next_attempt+1, an attempt row (number = old next_attempt)
 * opened, and an expired previous owner's open attempt ended
 * LOCK_OVERWRITTEN.  ret[0..*ret_n) get the leases; a lease with
 * exhausted set must be failed (FailComputationParticipant, then
 * dy_store_end FAILED), not run.  0 (also when nothing was claimable),
 * -EINVAL, -EBUSY. */
int dy_store_claim(dy_store_t *st, const char *owner, const dy_stage_ref_t *prio, size_t n_prio,
                   int64_t lease_us, dy_lease_t *ret, size_t max, size_t *ret_n);

/* Extends a lease to now+lease_us (WHERE id AND lease_owner AND version).
 * 0 with lease->lease_expiry updated, or DY_STORE_E_LEASE_LOST (another
 * owner, cancelled or moved: kill the worker, write nothing). */
int dy_store_renew(dy_store_t *st, dy_lease_t *lease, int64_t lease_us);

/* Records a stage output before it is sent (§6.2 rule 1), under the lease:
 * row (computation, lease stage, slot, lease attempt).  0 (also when the
 * same SHA-256 is already recorded), -EEXIST (another output is recorded:
 * use that one, see dy_store_get_blob), DY_STORE_E_STALE. */
int dy_store_record_output(dy_store_t *st, const dy_lease_t *lease, const dy_store_output_t *o);

/* Output cache / received input lookup by (computation, stage, slot).
 * 0 with *ret filled, or -ENOENT. */
int dy_store_get_blob(dy_store_t *st, const char *id, int stage, const char *slot,
                      dy_blob_rec_t *ret);

/* Completes the lease's work stage in one transaction fenced by version
 * and lease_owner: outputs recorded, stage = next (or the §5.4 jump),
 * next_attempt 1, version+1, attempt SUCCEEDED, owner cleared, expiry now
 * (WORK) or NULL (WAIT, COMPLETE; COMPLETE ends SUCCEEDED).  *ret_stage
 * (optional) gets the stage entered.  0, DY_STORE_E_STALE (nothing
 * written: ABORTED), -EEXIST (an output slot holds other bytes), -EINVAL. */
int dy_store_complete(dy_store_t *st, const dy_lease_t *lease, const dy_store_completion_t *c,
                      int *ret_stage);

/* A transient failure of the lease's attempt: attempt FAILED with the
 * error text, owner cleared, version+1, expiry = now + base + U[0, base],
 * base = min(600, 2^attempt) s times backoff_scale.  *ret_retry_at
 * (optional) gets the expiry.  If the attempt was the last allowed one
 * (attempt >= max_attempts), the attempt is ended FAILED but the lease is
 * kept and DY_STORE_E_EXHAUSTED returned: the caller fails the computation
 * (FailComputationParticipant, then dy_store_end FAILED with this lease).
 * 0, DY_STORE_E_EXHAUSTED, DY_STORE_E_STALE. */
int dy_store_fail_transient(dy_store_t *st, const dy_lease_t *lease, const char *error,
                            int64_t *ret_retry_at);

/* The retry delay bounds used above, in microseconds, for tests and
 * admin output: base and 2*base for the attempt. */
void dy_store_backoff_bounds(const dy_store_t *st, int64_t attempt, int64_t *ret_min,
                             int64_t *ret_max);

/* Ends a computation: stage = complete_stage, ending_reason = reason
 * (SUCCEEDED, FAILED or CANCELLED), version+1 (fencing a running
 * worker), owner and expiry cleared; the current attempt ends with the
 * reason (error text kept if given), any other open attempt CANCELLED.
 * fence NULL (herald, admin): unconditional unless already ended, then a
 * no-op (*ret_changed false).  fence given (the worker's permanent
 * failure): DY_STORE_E_STALE unless version and owner match.
 * 0, DY_STORE_E_STALE, -ENOENT, -EINVAL. */
int dy_store_end(dy_store_t *st, const char *id, const dy_lease_t *fence, int complete_stage,
                 dy_end_reason_t reason, const char *error, bool *ret_changed);

/* Event-driven move out of a wait stage (herald; §5.4): if the stage is
 * from_stage and the computation has not ended, enter to_stage (expiry
 * per to_kind, next_attempt 1, version+1) and set *ret_moved; otherwise
 * a no-op.  0, -ENOENT, -EINVAL. */
int dy_store_advance(dy_store_t *st, const char *id, int from_stage, int to_stage,
                     dy_stage_kind_t to_kind, bool *ret_moved);

/* Stores the latest Kingdom state and, if details is not NULL, the
 * details (herald; version and lease untouched).  A state older than the
 * stored one changes nothing (*ret_changed false).  0, -ENOENT. */
int dy_store_set_kingdom(dy_store_t *st, const char *id, int state, const uint8_t *details,
                         size_t details_len, bool *ret_changed);

/* The §6.1 receive rule in one write transaction.  blob NULL: the header
 * check (nothing written; DY_RECV_READY / DY_RECV_PAST / the refusals).
 * With a blob: awaited stage and slot empty → recorded (attempt 0), and
 * when all slots are filled the computation enters rule->next_stage
 * (claimable, version+1); same SHA-256 → DUPLICATE; other bytes →
 * DY_STORE_E_CONFLICT; past the awaited stage (or ended SUCCEEDED) →
 * PAST, or DY_STORE_E_CONFLICT if the recorded input differs; before it →
 * DY_STORE_E_STAGE_NOT_READY (nothing stored); ended FAILED or CANCELLED →
 * DY_STORE_E_ENDED.  -ENOENT, -EINVAL (slot not in slots, stage not in
 * order). */
int dy_store_receive(dy_store_t *st, const dy_receive_rule_t *rule, const dy_blob_info_t *blob,
                     dy_receive_result_t *ret);

/* Calls fn for each attempt of a computation in the order they began.
 * 0, fn's non-zero result, or a negative errno. */
int dy_store_attempts(dy_store_t *st, const char *id, dy_store_attempt_fn fn, void *arg);

/* Reads the continuation token into buf (cap bytes); ret->token points at
 * buf.  0, -ENOENT (none stored yet: start from the beginning), -ENOBUFS. */
int dy_store_token_get(dy_store_t *st, uint8_t *buf, size_t cap, dy_token_t *ret);

/* Persists a token (inside the caller's transaction when one is open, so
 * the item's effects and the token commit together).  Its key must not be
 * older than the stored one: DY_STORE_E_TOKEN_OLD (nothing changed); an
 * equal key is a no-op 0.  0, -EINVAL. */
int dy_store_token_set(dy_store_t *st, const dy_token_t *tok);

/* Inserts a requisition or updates its assignment and details (herald);
 * recorded data is kept.  0, -ENOENT (no computation), -EINVAL. */
int dy_store_put_requisition(dy_store_t *st, const char *computation, const char *requisition,
                             const char *fulfilling_duchy, const uint8_t *details,
                             size_t details_len);

/* Records a requisition's data and seed fields (FulfillRequisition at a
 * duchy; §6.3): first time → stored; same SHA-256 and seed → 0 with
 * *ret_duplicate set; different → DY_STORE_E_CONFLICT.  -ENOENT. */
int dy_store_fulfill_requisition(dy_store_t *st, const char *computation, const char *requisition,
                                 const dy_blob_info_t *blob, const uint8_t *seed, size_t seed_len,
                                 bool *ret_duplicate);

/* Calls fn for each requisition of a computation in id order (the row's
 * owned fields live only during the call). */
int dy_store_list_requisitions(dy_store_t *st, const char *computation, dy_store_requisition_fn fn,
                               void *arg);

/* Backend primitives for audit.c (not for other callers). */
int dy_store_audit_tail(dy_store_t *st, int64_t *ret_seq, uint8_t ret_hash[32]);
int dy_store_audit_insert(dy_store_t *st, const dy_audit_row_t *row);
int dy_store_audit_scan(dy_store_t *st, int64_t after_seq, dy_store_audit_fn fn, void *arg);

/* Integrity check (SQLite: integrity_check and foreign_key_check).  0, or
 * -EUCLEAN if the database is damaged. */
int dy_store_check(dy_store_t *st);

/* Backend constructors (store_sqlite.c). */
int dy_store_sqlite_open(const dy_store_config_t *cfg, dy_store_t **ret_st);

#endif
