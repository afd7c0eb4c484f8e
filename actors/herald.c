/* herald.c - duchy-herald: the duchy's one StreamActiveComputations stream to the Kingdom
 * (PROTOCOL.md §5.4, §7.2; docs/cluster.md).
 *
 * Peers:     the Kingdom  <- mutual TLS, Computations.StreamActiveComputations (one stream),
 *                            ComputationParticipants.FailComputationParticipant
 *            claimers     <- PUB ipc://RUN/events.sock  CancelComputation (no reply)
 * Per item, in arrival order, in ONE store transaction: the §5.4 plan (herald_rules.c):
 * create at the initial stage (HMSS non-aggregators: a 48-byte seed and an ECIES key pair,
 * sealed under the master key with the computation id as AAD, blob slot "secrets"), store
 * the latest Kingdom state, details (dy_details_build), requisitions, the wait -> work move,
 * or COMPLETE for a terminal state; then the item's continuation token.  So the token is
 * never persisted past an unprocessed item, and an older token is ignored (the store says
 * DY_STORE_E_TOKEN_OLD: logged).  After the commit a terminal item is published as
 * CancelComputation so claimers kill their workers at once.
 *   A §3.1 check failure (dy_details_build refuses) -> FailComputationParticipant at the
 *   Kingdom, end FAILED locally, item processed.  A local resource failure (disk full,
 *   I/O error, store busy, out of memory: PROTOCOL.md §7.1 transient) -> rollback, the item
 *   stays pending and is retried with backoff (1 s doubling to 30 s) for as long as it
 *   takes: the computation is not at fault, so it is never failed for it, and the token
 *   stays before the item.  Any other failure is retried 1 s apart; after 3 tries, the
 *   same as a permanent one.
 *
 * Structure (why not a timer-driven pump): rpc.c's dy_rpc_stream_next treats its idle
 * timeout as the end of the stream (UNAVAILABLE, connection unusable), so reading in 200 ms
 * slices from the loop would reconnect five times a second while the Kingdom is quiet.
 * Instead one reader thread owns the Kingdom connection and blocks in the stream with the
 * configured idle timeout (kingdom.stream_idle_timeout); it hands each item to the loop
 * through a pipe (watched by zloop like any socket) and waits for the loop's
 * acknowledgement before reading the next, so items are handled strictly one at a time
 * and the loop stays free for admin verbs and signals.  The thread reopens the stream from
 * the last acknowledged token when it ends, and reconnects with backoff (0.5 s doubling to
 * 30 s) on UNAVAILABLE / DEADLINE_EXCEEDED.  It holds no zmq socket, so exit never waits
 * for it.  Were rpc.h to gain a non-destructive poll (e.g. the connection's fd), the thread
 * could become the timer pump the brief suggested.
 * Secrets location: the "secrets" blob is recorded at (computation, INITIALIZED, "secrets")
 * through dy_store_receive with a one-slot rule whose next stage is the initial stage itself
 * (the store has no unfenced blob record for the herald; see the report).
 */
#include "actor.h"
#include "audit.h"
#include "blob.h"
#include "details.h"
#include "herald_rules.h"
#include "kingdom_client.h"
#include "kingdom_fx.h"
#include "secrets.h"
#include "stages.h"
#include "store.h"

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "duchy.pb-c.h"
#include "system.pb-c.h"

#define SYS(x) Wfa__Measurement__System__V1alpha__##x
#define SYSE(x) WFA__MEASUREMENT__SYSTEM__V1ALPHA__##x
#define SYSD(x) wfa__measurement__system__v1alpha__##x##__descriptor
#define S_ITEM_TRIES 3
#define S_STREAM_DEADLINE_MS (11 * 60 * 1000)

/* ---- the reader thread ------------------------------------------------------------------ */

/* What the reader thread touches, and nothing else: not the actor's config, which a
 * SIGHUP replaces and the exit path frees on the loop thread while the reader may still
 * be running. */
typedef struct {
    dy_kc_t *kc;                  /* owned by the reader: made in main, never destroyed */
    int idle_ms;                  /* kingdom.stream_idle_timeout (not reloadable) */
    int fd_out;                   /* write end: item pointers to the loop */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool acked;                   /* the loop finished the item in flight */
    char token[DY_STORE_TOKEN_MAX]; /* resume point: the last acknowledged item's token */
} s_reader_t;

/* An item handed to the loop (heap; the loop frees it). */
typedef struct {
    uint8_t *bytes; /* serialized StreamActiveComputationsResponse, or NULL for a status */
    size_t len;
    char status[300]; /* stream end / failure, for the loop to log */
} s_item_t;

static void s_hand(s_reader_t *r, s_item_t *it)
{
    /* Decided before the write: once written, the item belongs to the loop, which frees a
     * status at once, so it must not be read here again (reading it->bytes after the
     * write was a use-after-free that could leave this thread waiting for an
     * acknowledgement that never comes, and the duchy deaf to the Kingdom). */
    bool needs_ack = it->bytes != NULL; /* statuses need no acknowledgement */
    pthread_mutex_lock(&r->mu);
    r->acked = false;
    pthread_mutex_unlock(&r->mu);
    ssize_t n;
    do
        n = write(r->fd_out, &it, sizeof(it));
    while (n < 0 && errno == EINTR);
    if (n != sizeof(it)) {
        free(it->bytes);
        free(it);
        return;
    }
    if (!needs_ack)
        return;
    pthread_mutex_lock(&r->mu);
    while (!r->acked)
        pthread_cond_wait(&r->cv, &r->mu);
    pthread_mutex_unlock(&r->mu);
}

static void s_status(s_reader_t *r, const char *fmt, ...) DY_PRINTF(2, 3);
static void s_status(s_reader_t *r, const char *fmt, ...)
{
    s_item_t *it = calloc(1, sizeof(*it));
    if (it == NULL)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(it->status, sizeof(it->status), fmt, ap);
    va_end(ap);
    s_hand(r, it);
}

static void *s_reader_main(void *arg)
{
    s_reader_t *r = arg;
    dy_kc_t *kc = r->kc;
    int backoff_ms = 500;
    for (;;) {
        dy_rpc_status_t st;
        dy_rpc_client_t *c = dy_kc_client(kc, &st);
        SYS(StreamActiveComputationsRequest) rq = SYSE(STREAM_ACTIVE_COMPUTATIONS_REQUEST__INIT);
        rq.continuation_token = r->token;
        if (c == NULL || dy_rpc_stream_open(c, DY_KC_STREAM, &rq.base, S_STREAM_DEADLINE_MS, &st) < 0) {
            dy_kc_drop(kc);
            s_status(r, "stream open failed: %d %s; retrying in %d ms", st.code, st.message,
                     backoff_ms);
            poll(NULL, 0, backoff_ms);
            backoff_ms = backoff_ms * 2 > 30000 ? 30000 : backoff_ms * 2;
            continue;
        }
        int idle = r->idle_ms;
        for (;;) {
            ProtobufCMessage *msg = NULL;
            int rc = dy_rpc_stream_next(c, &SYSD(stream_active_computations_response), &msg, idle,
                                        &st);
            if (rc == 1) {
                backoff_ms = 500;
                s_item_t *it = calloc(1, sizeof(*it));
                if (it != NULL) {
                    it->len = protobuf_c_message_get_packed_size(msg);
                    it->bytes = malloc(it->len + 1);
                    if (it->bytes != NULL) {
                        protobuf_c_message_pack(msg, it->bytes);
                        /* The token to resume from once the loop has handled the item,
                         * copied before msg (which owns it) is freed. */
                        const char *tok = ((SYS(StreamActiveComputationsResponse) *)msg)
                                              ->continuation_token;
                        char next[DY_STORE_TOKEN_MAX];
                        snprintf(next, sizeof(next), "%s", tok ? tok : "");
                        protobuf_c_message_free_unpacked(msg, NULL);
                        msg = NULL;
                        s_hand(r, it); /* blocks until the loop acknowledged */
                        if (next[0] != '\0')
                            snprintf(r->token, sizeof(r->token), "%s", next);
                    } else {
                        free(it);
                    }
                }
                if (msg != NULL)
                    protobuf_c_message_free_unpacked(msg, NULL);
                continue;
            }
            if (rc == 0) {
                s_status(r, "stream ended (%d %s); reopening", st.code, st.message);
                if (st.code != DY_WIRE_STATUS_OK) {
                    dy_kc_drop(kc);
                    poll(NULL, 0, backoff_ms);
                    backoff_ms = backoff_ms * 2 > 30000 ? 30000 : backoff_ms * 2;
                }
            } else {
                s_status(r, "stream failed: %d %s; reconnecting in %d ms", st.code, st.message,
                         backoff_ms);
                dy_kc_drop(kc);
                poll(NULL, 0, backoff_ms);
                backoff_ms = backoff_ms * 2 > 30000 ? 30000 : backoff_ms * 2;
            }
            break;
        }
    }
    return NULL;
}

/* ---- the loop side ------------------------------------------------------------------------ */

typedef struct {
    dy_actor_t *actor;            /* borrowed */
    const dy_duchy_config_t *cfg; /* borrowed */
    dy_store_t *store;            /* owned */
    dy_blobdir_t *blobs;          /* owned */
    dy_kc_t *kingdom;             /* owned: the loop's own connection for Fail calls */
    zsock_t *events;              /* owned: PUB */
    uint8_t master[32];           /* secret */
    s_reader_t reader;
    int fds[2];                   /* pipe: [0] read by the loop, [1] written by the reader */
    s_item_t *pending;            /* owned: the item being retried, or NULL */
    int tries;                    /* failed tries of pending */
    int retry_timer;              /* zloop timer id, or -1 */
} s_herald_t;

static void s_ack(s_herald_t *h)
{
    pthread_mutex_lock(&h->reader.mu);
    h->reader.acked = true;
    pthread_cond_signal(&h->reader.cv);
    pthread_mutex_unlock(&h->reader.mu);
}

static void s_publish_cancel(s_herald_t *h, const char *id, int reason)
{
    Halo__Internal__V1__CancelComputation cc = HALO__INTERNAL__V1__CANCEL_COMPUTATION__INIT;
    cc.computation_id = (char *)id;
    cc.reason = (char *)dy_end_reason_name((dy_end_reason_t)reason);
    Halo__Internal__V1__ActorMessage m = HALO__INTERNAL__V1__ACTOR_MESSAGE__INIT;
    m.version = 1;
    m.request_id = (char *)id;
    m.sender = (char *)"herald";
    m.body_case = HALO__INTERNAL__V1__ACTOR_MESSAGE__BODY_CANCEL;
    m.cancel = &cc;
    if (dy_actor_send_msg(h->events, NULL, &m) < 0)
        log_warnx("cannot publish the cancellation of %s, ignoring", id);
}

/* FailComputationParticipant for a computation the herald must fail (§5.4). */
static void s_fail_at_kingdom(s_herald_t *h, const char *id, const char *why)
{
    char pname[256];
    snprintf(pname, sizeof(pname), "computations/%s/participants/%s", id, h->cfg->id);
    SYS(ComputationParticipant__Failure) f = SYSE(COMPUTATION_PARTICIPANT__FAILURE__INIT);
    f.error_message = (char *)why;
    SYS(FailComputationParticipantRequest) rq = SYSE(FAIL_COMPUTATION_PARTICIPANT_REQUEST__INIT);
    rq.name = pname;
    rq.failure = &f;
    for (int try = 1; try <= 3; try++) {
        ProtobufCMessage *resp = NULL;
        dy_rpc_status_t st;
        if (dy_kc_unary(h->kingdom, DY_KC_FAIL, &rq.base, &SYSD(computation_participant), &resp,
                        &st)
            == 0) {
            protobuf_c_message_free_unpacked(resp, NULL);
            return;
        }
        if (dy_kf_classify(st.code) != DY_KF_RETRY) {
            /* FAILED_PRECONDITION: already terminal at the Kingdom. */
            if (st.code != DY_WIRE_STATUS_FAILED_PRECONDITION)
                log_warnx("FailComputationParticipant %s: %d %s, ignoring", id, st.code,
                          st.message);
            return;
        }
    }
    log_warnx("FailComputationParticipant %s: Kingdom unreachable, ignoring", id);
}

/* Sets ComputationDetails.secrets_stored in a serialized details buffer. */
static int s_mark_secrets(dy_buf_t *det)
{
    Halo__Internal__V1__ComputationDetails *cd =
        halo__internal__v1__computation_details__unpack(NULL, det->len, det->data);
    if (cd == NULL)
        return -EINVAL;
    cd->secrets_stored = true;
    dy_buf_t out = {0};
    size_t n = halo__internal__v1__computation_details__get_packed_size(cd);
    uint8_t *p = dy_buf_extend(&out, n);
    if (p != NULL)
        halo__internal__v1__computation_details__pack(cd, p);
    halo__internal__v1__computation_details__free_unpacked(cd, NULL);
    if (p == NULL)
        return -ENOMEM;
    dy_buf_free(det);
    *det = out;
    return 0;
}

static bool s_secrets_flag(const uint8_t *d, size_t len)
{
    Halo__Internal__V1__ComputationDetails *cd =
        halo__internal__v1__computation_details__unpack(NULL, len, d);
    bool v = cd != NULL && cd->secrets_stored;
    if (cd != NULL)
        halo__internal__v1__computation_details__free_unpacked(cd, NULL);
    return v;
}

/* Writes (or, after a crash before the commit, finds) the sealed secrets blob. */
static int s_secrets_blob(s_herald_t *h, const char *id, int stage, dy_blob_info_t *ret)
{
    char path[DY_BLOB_PATH_MAX];
    dy_buf_t sealed = {0}, probe = {0};
    int rc = dy_kf_secrets_path(h->blobs, id, stage, path, sizeof(path));
    if (rc < 0)
        return rc;
    rc = dy_kf_secrets_read_file(path, h->master, id, &probe);
    dy_buf_free(&probe);
    if (rc == 0) { /* reuse the file a crashed earlier try left: read its raw bytes */
        FILE *f = fopen(path, "rb");
        uint8_t buf[4096];
        size_t n = f ? fread(buf, 1, sizeof(buf), f) : 0;
        if (f)
            fclose(f);
        rc = dy_buf_append(&sealed, buf, n);
    } else {
        rc = dy_kf_secrets_new_hmss(h->master, id, &sealed);
    }
    dy_blob_key_t key = {id, stage, 0, DY_KF_SECRETS_SLOT};
    dy_blob_writer_t *w = NULL;
    if (rc == 0 && (rc = dy_blob_open(h->blobs, &key, &w)) == 0
        && (rc = dy_blob_write(w, sealed.data, sealed.len)) == 0)
        rc = dy_blob_commit(&w, ret);
    dy_blob_abort(&w);
    dy_buf_free(&sealed);
    return rc;
}

static int s_put_requisitions(s_herald_t *h, const char *id, const SYS(Computation) * k)
{
    for (size_t i = 0; i < k->n_requisitions; i++) {
        const SYS(Requisition) *rq = k->requisitions[i];
        const char *rid = rq->name ? strrchr(rq->name, '/') : NULL;
        const char *fp = rq->fulfilling_computation_participant;
        const char *duchy = fp && fp[0] ? strrchr(fp, '/') : NULL;
        if (rid == NULL)
            return -EINVAL;
        size_t n = protobuf_c_message_get_packed_size(&rq->base);
        uint8_t *b = malloc(n + 1);
        if (b == NULL)
            return -ENOMEM;
        protobuf_c_message_pack(&rq->base, b);
        int rc = dy_store_put_requisition(h->store, id, rid + 1, duchy ? duchy + 1 : "", b, n);
        free(b);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* Handles one item inside a transaction.  0 (processed, token persisted), -EAGAIN-like
 * negative errno for a transient failure (rolled back), or 1 for a permanent failure of the
 * computation (rolled back; the caller fails it and marks the item processed). */
static int s_apply(s_herald_t *h, const SYS(Computation) * k, const uint8_t *kbytes, size_t klen,
                   const char *id, const char *token, char *why, size_t whylen, int *ret_cancel)
{
    *ret_cancel = 0;
    dy_computation_t row;
    memset(&row, 0, sizeof(row));
    dy_buf_t det = {0};
    int rc = dy_store_begin(h->store);
    if (rc < 0)
        return rc;
    rc = dy_store_get(h->store, id, &row);
    bool exists = rc == 0;
    if (rc < 0 && rc != -ENOENT)
        goto fail;
    int protocol = row.protocol, role = row.role;
    bool terminal = dy_kf_state_terminal((int)k->state);
    if (!terminal) {
        rc = dy_details_build(kbytes, klen, h->cfg->id, h->cfg->aggregator_id, h->cfg->first_na_id,
                              h->cfg->second_na_id, &det, why, whylen);
        if (rc == -EINVAL) {
            rc = 1;
            goto fail;
        }
        if (rc < 0)
            goto fail;
        Halo__Internal__V1__ComputationDetails *cd =
            halo__internal__v1__computation_details__unpack(NULL, det.len, det.data);
        if (cd == NULL) {
            rc = -ENOMEM;
            goto fail;
        }
        if (!exists) {
            protocol = (int)cd->protocol;
            role = (int)cd->role;
        }
        halo__internal__v1__computation_details__free_unpacked(cd, NULL);
        if (exists && s_secrets_flag(row.details, row.details_len) && (rc = s_mark_secrets(&det)) < 0)
            goto fail;
    }
    dy_hr_plan_t plan;
    memset(&plan, 0, sizeof(plan));
    if (exists || !terminal) {
        rc = dy_herald_plan(protocol, role, (int)k->state, exists,
                            row.ending_reason != DY_END_NONE, &plan);
        if (rc < 0) {
            snprintf(why, whylen, "no §5.4 rule for state %d", (int)k->state);
            rc = 1;
            goto fail;
        }
    }
    if (plan.unexpected && exists)
        log_info_c(&(dy_log_ctx_t){.computation = id, .stage = dy_stage_name(protocol, row.stage)},
                   "Kingdom state %d does not occur for this protocol; stored only", (int)k->state);
    else if (plan.unexpected) /* absent here: no stage to name, so the id goes in the text */
        log_info("computation %s: Kingdom state %d does not occur for this protocol; absent "
                 "here, not stored",
                 id, (int)k->state);
    switch (plan.action) {
    case DY_HR_CREATE: {
        dy_blob_info_t sb;
        if (plan.needs_secrets) {
            if ((rc = s_secrets_blob(h, id, plan.to_stage, &sb)) < 0
                || (rc = s_mark_secrets(&det)) < 0)
                goto fail;
        }
        dy_computation_new_t nc = {.id = id, .protocol = protocol, .role = role,
                                   .stage = plan.to_stage, .kind = DY_STAGE_WORK,
                                   .kingdom_state = (int)k->state, .details = det.data,
                                   .details_len = det.len};
        rc = dy_store_create(h->store, &nc);
        if (rc < 0 && rc != DY_STORE_E_EXISTS)
            goto fail;
        if ((rc = s_put_requisitions(h, id, k)) < 0)
            goto fail;
        if (plan.needs_secrets) {
            const char *slots[1] = {DY_KF_SECRETS_SLOT};
            dy_receive_rule_t rule = {.computation = id, .awaited_stage = plan.to_stage,
                                      .slot = DY_KF_SECRETS_SLOT, .slots = slots, .n_slots = 1,
                                      .next_stage = plan.to_stage};
            dy_receive_result_t res;
            if ((rc = dy_store_receive(h->store, &rule, &sb, &res)) < 0)
                goto fail;
        }
        log_info_c(
            &(dy_log_ctx_t){.computation = id, .stage = dy_stage_name(protocol, plan.to_stage)},
            "created (protocol %d, role %d)", protocol, role);
        break;
    }
    case DY_HR_UPDATE: {
        bool changed = false, moved = false;
        if ((rc = dy_store_set_kingdom(h->store, id, (int)k->state, det.data, det.len, &changed))
                < 0
            || (rc = s_put_requisitions(h, id, k)) < 0)
            goto fail;
        if (plan.from_stage > 0
            && (rc = dy_store_advance(h->store, id, plan.from_stage, plan.to_stage, DY_STAGE_WORK,
                                      &moved))
                   < 0)
            goto fail;
        if (moved)
            log_info_c(
                &(dy_log_ctx_t){.computation = id, .stage = dy_stage_name(protocol, plan.to_stage)},
                "stage %s -> %s (Kingdom state %d)", dy_stage_name(protocol, plan.from_stage),
                dy_stage_name(protocol, plan.to_stage), (int)k->state);
        break;
    }
    case DY_HR_END: {
        bool changed = false;
        char text[64];
        snprintf(text, sizeof(text), "Kingdom state %d", (int)k->state);
        if ((rc = dy_store_set_kingdom(h->store, id, (int)k->state, NULL, 0, &changed)) < 0
            || (rc = dy_store_end(h->store, id, NULL, dy_stage_complete(protocol),
                                  (dy_end_reason_t)plan.end_reason, text, &changed))
                   < 0)
            goto fail;
        if (changed)
            *ret_cancel = plan.end_reason;
        break;
    }
    case DY_HR_NOOP:
        if (!exists)
            log_debug("item for computation %s absent here (state %d): no-op", id, (int)k->state);
        break;
    }
    dy_buf_free(&det);
    dy_computation_clear(&row);
    goto token;
fail:
    dy_buf_free(&det);
    dy_computation_clear(&row);
    dy_store_rollback(h->store);
    return rc;
token:;
    int64_t t;
    uint64_t kid;
    if (token != NULL && token[0] != '\0') {
        if (dy_herald_token_key(token, &t, &kid) < 0) {
            log_warnx("item %s carries a malformed token; not persisted", id);
        } else {
            dy_token_t tok = {(const uint8_t *)token, strlen(token), t, kid};
            rc = dy_store_token_set(h->store, &tok);
            if (rc == DY_STORE_E_TOKEN_OLD)
                log_info("token of item %s is older than the stored one, ignored", id);
            else if (rc < 0) {
                dy_store_rollback(h->store);
                return rc;
            }
        }
    }
    rc = dy_store_commit(h->store);
    if (rc < 0)
        dy_store_rollback(h->store);
    return rc;
}

/* Persists only the token (an item whose computation was failed or cannot be used). */
static void s_token_only(s_herald_t *h, const char *token)
{
    int64_t t;
    uint64_t kid;
    if (token == NULL || dy_herald_token_key(token, &t, &kid) < 0)
        return;
    dy_token_t tok = {(const uint8_t *)token, strlen(token), t, kid};
    int rc = dy_store_token_set(h->store, &tok);
    if (rc < 0 && rc != DY_STORE_E_TOKEN_OLD)
        log_warnx("cannot persist the token: %s, ignoring", strerror(-rc));
}

/* The name of the stage computation id is in here, for a log line: one read of its row.
 * NULL if it is absent (or unreadable) here. */
static const char *s_stage_of(s_herald_t *h, const char *id)
{
    dy_computation_t row;
    memset(&row, 0, sizeof(row));
    const char *name =
        dy_store_get(h->store, id, &row) == 0 ? dy_stage_name(row.protocol, row.stage) : NULL;
    dy_computation_clear(&row);
    return name;
}

/* A failure of this duchy's own resources (§7.1 transient: ENOSPC, EIO, SQLITE_BUSY ...),
 * not of the item. */
static bool s_local_transient(int rc)
{
    /* Not -EDQUOT: that is the store's DY_STORE_E_EXHAUSTED (attempts used up); a disk
     * quota reaches the herald as SQLITE_FULL, i.e. -ENOSPC. */
    return rc == -ENOSPC || rc == -EIO || rc == -EBUSY || rc == -ENOMEM || rc == -EMFILE ||
           rc == -ENFILE || rc == -EINTR;
}

/* Processes h->pending.  true when done with it (acknowledge), false to retry later. */
static bool s_process(s_herald_t *h)
{
    s_item_t *it = h->pending;
    SYS(StreamActiveComputationsResponse) *resp =
        (void *)protobuf_c_message_unpack(&SYSD(stream_active_computations_response), NULL,
                                          it->len, it->bytes);
    if (resp == NULL || resp->computation == NULL) {
        log_warnx("undecodable stream item, skipped");
        if (resp)
            protobuf_c_message_free_unpacked(&resp->base, NULL);
        return true;
    }
    const SYS(Computation) *k = resp->computation;
    char id[DY_ID_MAX];
    if (dy_herald_computation_id(k->name, id, sizeof(id)) < 0) {
        log_warnx("stream item with a bad computation name, skipped");
        s_token_only(h, resp->continuation_token);
        protobuf_c_message_free_unpacked(&resp->base, NULL);
        return true;
    }
    size_t klen = protobuf_c_message_get_packed_size(&k->base);
    uint8_t *kbytes = malloc(klen + 1);
    if (kbytes == NULL)
        fatalx("%s: out of memory", __func__);
    protobuf_c_message_pack(&k->base, kbytes);
    char why[256] = "";
    int cancel = 0;
    int rc = s_apply(h, k, kbytes, klen, id, resp->continuation_token, why, sizeof(why), &cancel);
    free(kbytes);
    bool done = true;
    /* A failed item's lines name the stage the computation is in here; one absent here
     * (e.g. its creation failed) has none, so its id goes in the text instead. */
    const char *stage = rc != 0 ? s_stage_of(h, id) : NULL;
    char pfx[DY_ID_MAX + 16] = "";
    if (rc != 0 && stage == NULL)
        snprintf(pfx, sizeof(pfx), "computation %s: ", id);
    dy_log_ctx_t ctx = {.computation = stage ? id : NULL, .stage = stage};
    if (rc == 0) {
        dy_actor_count(h->actor, "items", 1);
        if (cancel)
            s_publish_cancel(h, id, cancel);
    } else if (rc < 0 && s_local_transient(rc)) {
        h->tries++;
        if (h->tries == 1 || (h->tries & (h->tries - 1)) == 0) /* 1, 2, 4, 8 ... */
            log_warnx_c(&ctx, "%sitem failed (%s), retrying until it works (try %d)", pfx,
                        strerror(-rc), h->tries);
        done = false;
    } else if (rc < 0 && ++h->tries < S_ITEM_TRIES) {
        log_warnx_c(&ctx, "%sitem failed (%s), retrying", pfx, strerror(-rc));
        done = false;
    } else {
        if (rc < 0)
            snprintf(why, sizeof(why), "item kept failing: %s", strerror(-rc));
        log_warnx_c(&ctx, "%sfailing the computation: %s", pfx, why);
        s_fail_at_kingdom(h, id, why);
        bool changed = false;
        dy_computation_t row;
        memset(&row, 0, sizeof(row));
        bool here = dy_store_get(h->store, id, &row) == 0;
        /* The durable local record of why, also for a computation refused before it had a
         * row here (e.g. a protocol config this duchy does not support). */
        dy_audit_event_t ev = {.actor = "herald", .computation = id,
                               .stage = here ? row.stage : -1,
                               .event = "computation_failed", .detail = why};
        int arc = dy_audit_append(h->store, &ev, NULL);
        if (arc < 0)
            log_warnx_c(&ctx, "%scannot record the failure in the audit log: %s", pfx,
                        strerror(-arc));
        if (here) {
            int erc = dy_store_end(h->store, id, NULL, dy_stage_complete(row.protocol),
                                   DY_END_FAILED, why, &changed);
            if (erc < 0)
                log_warnx_c(&ctx, "%scannot end it locally: %s, ignoring", pfx, strerror(-erc));
            else if (changed)
                s_publish_cancel(h, id, DY_END_FAILED);
        }
        dy_computation_clear(&row);
        s_token_only(h, resp->continuation_token);
        dy_actor_count(h->actor, "failed_items", 1);
    }
    protobuf_c_message_free_unpacked(&resp->base, NULL);
    return done;
}

static void s_finish_pending(s_herald_t *h)
{
    free(h->pending->bytes);
    free(h->pending);
    h->pending = NULL;
    h->tries = 0;
    s_ack(h);
}

/* The pause before the next try of the pending item: 1 s doubling to 30 s. */
static size_t s_retry_ms(const s_herald_t *h)
{
    int t = h->tries < 1 ? 1 : h->tries;
    return t >= 5 ? 30000 : (size_t)1000 << (t - 1);
}

static int s_on_retry(zloop_t *loop, int timer_id, void *arg)
{
    s_herald_t *h = arg;
    h->retry_timer = -1;
    if (h->pending == NULL)
        return 0;
    if (s_process(h))
        s_finish_pending(h);
    else
        h->retry_timer = zloop_timer(loop, s_retry_ms(h), 1, s_on_retry, h);
    return 0;
}

static int s_on_item(zloop_t *loop, zmq_pollitem_t *item, void *arg)
{
    s_herald_t *h = arg;
    s_item_t *it = NULL;
    ssize_t n = read(h->fds[0], &it, sizeof(it));
    if (n != sizeof(it) || it == NULL)
        return 0;
    if (it->bytes == NULL) { /* a status line of the reader */
        log_info("%s", it->status);
        free(it);
        return 0;
    }
    if (h->pending != NULL) { /* cannot happen: the reader waits for the ack */
        log_warnx("%s: item while one is pending, dropped", __func__);
        free(it->bytes);
        free(it);
        return 0;
    }
    h->pending = it;
    h->tries = 0;
    if (dy_actor_draining(h->actor))
        return 0; /* not acknowledged: the token stays before it */
    if (s_process(h))
        s_finish_pending(h);
    else
        h->retry_timer = zloop_timer(loop, s_retry_ms(h), 1, s_on_retry, h);
    return 0;
}

static void s_drain(dy_actor_t *a, void *arg)
{
    (void)arg;
    dy_actor_drained(a); /* the item in hand commits as one transaction: nothing to drain */
}

int main(int argc, char **argv)
{
    s_herald_t h;
    memset(&h, 0, sizeof(h));
    h.retry_timer = -1;
    dy_actor_ops_t ops = {.drain = s_drain, .arg = &h};
    h.actor = dy_actor_new("herald", argc, argv, &ops);
    h.cfg = dy_actor_config(h.actor);
    char path[1024], err[512] = "";
    snprintf(path, sizeof(path), "%s/duchy.db", h.cfg->data_dir);
    dy_store_config_t sc = {.path = path, .max_attempts = (int)h.cfg->max_attempts};
    int rc = dy_store_open(&sc, &h.store);
    if (rc < 0)
        fatalx("cannot open the store %s: %s", path, strerror(-rc));
    snprintf(path, sizeof(path), "%s/blobs", h.cfg->data_dir);
    if (mkdir(path, 0700) < 0 && errno != EEXIST)
        fatal("cannot create %s", path);
    if ((h.blobs = dy_blobdir_new(path, h.cfg->id)) == NULL)
        fatal("cannot open the blob directory %s", path);
    if ((rc = dy_secrets_load_master(h.cfg->master_key_file, h.master)) < 0)
        fatal_config("cannot read the master key %s: %s", h.cfg->master_key_file, strerror(-rc));
    if ((h.kingdom = dy_kc_new(h.cfg, err, sizeof(err))) == NULL)
        fatal_config("Kingdom client: %s", err);
    char ep[1100];
    dy_actor_endpoint(h.actor, "events.sock", ep, sizeof(ep));
    h.events = zsock_new(ZMQ_PUB);
    if (h.events == NULL || zsock_bind(h.events, "%s", ep) < 0)
        fatal("cannot bind %s", ep);

    /* The resume point: the persisted token (none: from the start). */
    uint8_t tokbuf[DY_STORE_TOKEN_MAX];
    dy_token_t tok;
    if ((h.reader.kc = dy_kc_new(h.cfg, err, sizeof(err))) == NULL)
        fatal_config("Kingdom client: %s", err);
    h.reader.idle_ms =
        h.cfg->kingdom_stream_idle_ms > 0 ? (int)h.cfg->kingdom_stream_idle_ms : 60000;
    if ((rc = dy_store_token_get(h.store, tokbuf, sizeof(tokbuf) - 1, &tok)) == 0) {
        memcpy(h.reader.token, tok.token, tok.token_len);
        h.reader.token[tok.token_len] = '\0';
        /* Says where a restarted herald picks up (tests/e2e/cluster.sh checks this line). */
        log_info("resuming the stream from the persisted token (update_time %lld us, id %llu)",
                 (long long)tok.key_time, (unsigned long long)tok.key_id);
    } else if (rc == -ENOENT) {
        log_info("no persisted token: streaming from the start");
    } else {
        log_warnx("cannot read the persisted token: %s; streaming from the start", strerror(-rc));
    }
    if (pipe2(h.fds, O_CLOEXEC) < 0)
        fatal("pipe");
    h.reader.fd_out = h.fds[1];
    pthread_mutex_init(&h.reader.mu, NULL);
    pthread_cond_init(&h.reader.cv, NULL);
    zmq_pollitem_t pi = {.socket = NULL, .fd = h.fds[0], .events = ZMQ_POLLIN};
    zloop_poller(dy_actor_loop(h.actor), &pi, s_on_item, &h);
    pthread_t th;
    if (pthread_create(&th, NULL, s_reader_main, &h.reader) != 0)
        fatal("cannot start the stream reader");
    pthread_detach(th);
    dy_actor_ready(h.actor);
    rc = dy_actor_run(h.actor);
    /* The reader thread may be blocked in the stream; it holds no zmq socket and the process
     * exits under it (the Kingdom sees the connection close). */
    zsock_destroy(&h.events);
    OPENSSL_cleanse(h.master, sizeof(h.master));
    dy_store_destroy(&h.store);
    dy_blobdir_destroy(&h.blobs);
    dy_actor_destroy(&h.actor);
    _exit(rc);
}
