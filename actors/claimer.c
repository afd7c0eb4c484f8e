/* claimer.c - duchy-claimer: claims work stages (PROTOCOL.md §7.1) and runs
 * each one: the mill for crypto, then the stage's effects through the
 * participant, coordinator or submitter, then the commit (docs/cluster.md
 * "A work stage, end to end").
 *
 * Peers (one zloop, nothing blocks):
 *   participant  DEALER ipc://RUN/participant.sock  StageEffects{SET_REQUISITION_PARAMS,
 *                                                   CONFIRM, FAIL, LOG} -> EffectsReply
 *   coordinator  DEALER ipc://RUN/coordinator.sock  StageEffects{SEND} -> EffectsReply
 *   submitter    DEALER ipc://RUN/submitter.sock    StageEffects{SUBMIT_RESULT} -> EffectsReply
 *   herald       SUB    ipc://RUN/events.sock       CancelComputation
 *   duchy-mill   fork+exec per (computation, stage, attempt): MillJob on fd 0, MillResult fd 3
 *   admin        (actor.c) STATUS ...; here WORKERS and CLAIMS
 *
 * One work item per held lease, a state machine as a table (STYLE.md 16):
 *
 *   state \ event  | MILL_OK      MILL_TEMP   MILL_PERM  FX_OK     FX_TEMP   FX_PERM  LOST/CANCEL
 *   ---------------+--------------------------------------------------------------------------
 *   MILL           | ->EFFECTS    TEMPFAIL    PERMFAIL   -         -         -        drop
 *   EFFECTS        | -            -           -          commit    TEMPFAIL  PERMFAIL drop
 *   FAILING        | -            -           -          end       release   release  drop
 *
 * TEMPFAIL = dy_store_fail_transient (+ StageEffects LOG, not awaited); if that
 * was the last attempt (EXHAUSTED) -> PERMFAIL.  PERMFAIL = StageEffects FAIL to the
 * participant (state FAILING), then dy_store_end(FAILED).  drop = kill the mill,
 * forget the item, write nothing.  SIGTERM: kill every mill, release every lease with
 * dy_store_fail_transient("draining") (the attempt ends FAILED with that reason; a
 * dedicated release would not spend an attempt, but the store has none), exit 0.
 *
 * Owner id: <duchy>/claimer-<instance>/<pid>.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "actor.h"
#include "blob.h"
#include "duchy_state.h"
#include "admin.pb-c.h"
#include "claim_build.h"
#include "claim_job.h"
#include "details.h"
#include "duchy.pb-c.h"
#include "internal.pb-c.h"
#include "mc_util.h"
#include "spawn.h"
#include "stages.h"
#include "store.h"

#define S_MAX_WORK 64
#define S_FX_MS 60000 /* EffectsReply deadline (a Kingdom call or a send with retries) */

typedef Halo__Internal__V1__ActorMessage s_msg_t;
typedef Halo__Internal__V1__StageEffects s_fx_t;

typedef enum { W_MILL = 0, W_EFFECTS, W_FAILING, _W_MAX } s_wstate_t;

enum { PEER_PARTICIPANT = 0, PEER_COORDINATOR, PEER_SUBMITTER, _PEER_MAX };

typedef struct s_claimer s_claimer_t;

typedef struct {
    bool used;
    dy_lease_t lease;             /* the fence of every write */
    dy_details_t det;             /* parsed details (owned) */
    bool has_det;
    s_wstate_t state;
    dy_spawn_t *mill;             /* owned while the mill runs */
    bool poller;                  /* result fd registered */
    char job_id[96];
    int64_t started_ms;           /* wall clock, for WORKERS */
    char request_id[96];          /* effects request awaited, "" = none */
    int64_t fx_deadline_ms;
    char code[48];                /* failure being reported */
    char message[256];
    char stage_name[64];
    dy_log_ctx_t lc;
} s_work_t;

struct s_claimer {
    dy_actor_t *actor;
    const dy_duchy_config_t *cfg;
    dy_store_t *store;
    char owner[DY_STORE_NAME_MAX];
    char mill_path[1100];
    char blob_root[1024];
    char cert_dir[1024];
    zsock_t *peer[_PEER_MAX];     /* DEALER */
    zsock_t *events;              /* SUB */
    s_work_t work[S_MAX_WORK];
    int64_t last_renew_ms;
    uint64_t seq;
};

static size_t s_running(const s_claimer_t *c)
{
    size_t n = 0;
    for (size_t i = 0; i < S_MAX_WORK; i++)
        n += c->work[i].used;
    return n;
}

/* ---- sending StageEffects ------------------------------------------------ */

/* Sends a StageEffects of `kind` for w to peer; awaited unless fire_and_forget. */
static int s_send_fx(s_claimer_t *c, s_work_t *w, int peer, int kind, bool fire_and_forget)
{
    s_msg_t m = HALO__INTERNAL__V1__ACTOR_MESSAGE__INIT;
    s_fx_t fx = HALO__INTERNAL__V1__STAGE_EFFECTS__INIT;
    Halo__Internal__V1__Blob blobs[3], *bp[3];
    dy_blob_rec_t rec[3];
    const char *slots[3];
    char rid[96];
    snprintf(rid, sizeof(rid), "%s-%llu", dy_actor_name(c->actor), (unsigned long long)++c->seq);
    m.version = 1;
    m.request_id = rid;
    m.sender = (char *)dy_actor_name(c->actor);
    m.body_case = HALO__INTERNAL__V1__ACTOR_MESSAGE__BODY_STAGE_EFFECTS;
    m.stage_effects = &fx;
    fx.kind = (Halo__Internal__V1__StageEffects__Kind)kind;
    fx.computation_id = w->lease.computation;
    fx.protocol = (Halo__Internal__V1__Protocol)w->lease.protocol;
    fx.role = (Halo__Internal__V1__Role)w->lease.role;
    fx.stage = w->lease.stage;
    fx.stage_name = w->stage_name;
    fx.attempt = w->lease.attempt;
    fx.error_code = w->code;
    fx.error_message = w->message;
    fx.deadline_unix_ms = (uint64_t)(dy_wall_ms() + S_FX_MS);
    int K = w->has_det ? w->det.max_frequency : 0;
    int n = dy_claim_output_slots(w->lease.protocol, w->lease.role, w->lease.stage, K, slots);
    for (int i = 0; i < n; i++) {
        if (dy_store_get_blob(c->store, w->lease.computation, w->lease.stage, slots[i],
                              &rec[fx.n_outputs]) < 0)
            continue;
        Halo__Internal__V1__Blob *b = &blobs[fx.n_outputs];
        halo__internal__v1__blob__init(b);
        b->slot = (char *)slots[i];
        b->path = rec[fx.n_outputs].blob.path;
        b->size = rec[fx.n_outputs].blob.size;
        b->sha256 = (ProtobufCBinaryData){32, rec[fx.n_outputs].blob.sha256};
        bp[fx.n_outputs] = b;
        fx.n_outputs++;
    }
    fx.outputs = bp;
    int rc = dy_actor_send_msg(c->peer[peer], NULL, &m);
    if (rc == 0 && !fire_and_forget) {
        snprintf(w->request_id, sizeof(w->request_id), "%s", rid);
        w->fx_deadline_ms = dy_wall_ms() + S_FX_MS;
    }
    return rc;
}

/* ---- the work item's end ------------------------------------------------- */

/* Ends the item's mill, if any (killed if still running, reaped), and removes the
 * temporary blob files its attempt left (a mill killed mid-write leaves one; the mill
 * is the only writer of its attempt's directory). */
static void s_mill_end(s_claimer_t *c, s_work_t *w)
{
    if (!w->mill)
        return;
    dy_spawn_destroy(&w->mill);
    char root[1024];
    snprintf(root, sizeof(root), "%s/blobs", c->cfg->data_dir);
    dy_blob_key_t key = {.computation = w->lease.computation, .stage = w->lease.stage,
                         .slot = "-", .attempt = w->lease.attempt};
    size_t removed = 0;
    if (dy_blob_sweep_attempt(root, c->cfg->id, &key, &removed) == 0 && removed > 0)
        log_info_c(&w->lc, "removed %zu temporary blob file%s of the ended mill", removed,
                   removed == 1 ? "" : "s");
}

static void s_drop(s_claimer_t *c, s_work_t *w)
{
    if (w->poller)
        zloop_poller_end(dy_actor_loop(c->actor), &(zmq_pollitem_t){.fd = dy_spawn_result_fd(w->mill)});
    s_mill_end(c, w); /* kills if running */
    if (w->has_det)
        dy_details_free(&w->det);
    memset(w, 0, sizeof(*w));
    dy_actor_gauge(c->actor, "running", (int64_t)s_running(c));
}

static void s_claim(s_claimer_t *c);

static void s_fail_perm(s_claimer_t *c, s_work_t *w, const char *code, const char *msg)
{
    if (code != w->code)
        snprintf(w->code, sizeof(w->code), "%s", code);
    if (msg != w->message)
        snprintf(w->message, sizeof(w->message), "%s", msg);
    log_warnx_c(&w->lc, "permanent failure %s: %s", w->code, w->message);
    dy_actor_count(c->actor, "permfail", 1);
    w->state = W_FAILING;
    s_mill_end(c, w);
    /* not sent: housekeeping resends FAIL every tick while the lease is renewed */
    (void)s_send_fx(c, w, PEER_PARTICIPANT, HALO__INTERNAL__V1__STAGE_EFFECTS__KIND__FAIL, false);
}

static void s_fail_temp(s_claimer_t *c, s_work_t *w, const char *code, const char *msg)
{
    char err[400];
    snprintf(err, sizeof(err), "%s: %s", code, msg);
    /* The caller may pass w->code and w->message themselves (a FAIL to retry): copying a
     * string onto itself with snprintf is undefined, and glibc's empties it. */
    if (code != w->code)
        snprintf(w->code, sizeof(w->code), "%s", code);
    if (msg != w->message)
        snprintf(w->message, sizeof(w->message), "%s", msg);
    int64_t retry = 0;
    int rc = dy_store_fail_transient(c->store, &w->lease, err, &retry);
    if (rc == DY_STORE_E_EXHAUSTED) {
        s_fail_perm(c, w, "attempts_exhausted", err);
        return;
    }
    log_info_c(&w->lc, "transient failure %s, retry in %.1f s", err,
               rc == 0 ? (double)(retry - dy_store_now(c->store)) / 1e6 : 0.0);
    dy_actor_count(c->actor, "tempfail", 1);
    if (rc == 0)
        (void)s_send_fx(c, w, PEER_PARTICIPANT, HALO__INTERNAL__V1__STAGE_EFFECTS__KIND__LOG, true);
    s_drop(c, w);
}

static void s_commit(s_claimer_t *c, s_work_t *w)
{
    int K = w->has_det ? w->det.max_frequency : 0;
    int next = dy_stage_next(w->lease.protocol, w->lease.role, w->lease.stage, K);
    const dy_stage_info_t *ni = next > 0 ? dy_stage_info(w->lease.protocol, next) : NULL;
    if (!ni) {
        s_fail_perm(c, w, "internal", "no next stage in the tables");
        return;
    }
    dy_store_completion_t comp = {.next_stage = next, .next_kind = ni->kind};
    dy_claim_jump(w->lease.protocol, next, &comp);
    int entered = 0;
    int rc = dy_store_complete(c->store, &w->lease, &comp, &entered);
    if (rc == 0) {
        log_info_c(&w->lc, "stage done, now %s", dy_stage_name(w->lease.protocol, entered));
        dy_actor_count(c->actor, "completed", 1);
    } else if (rc == DY_STORE_E_STALE) {
        log_info_c(&w->lc, "lease lost before commit, abandoned");
    } else {
        s_fail_temp(c, w, "store", strerror(-rc));
        return;
    }
    s_drop(c, w);
}

/* The effects of a finished (or cached) computation, or the commit. */
static void s_effects(s_claimer_t *c, s_work_t *w)
{
    int K = w->has_det ? w->det.max_frequency : 0;
    static const struct {
        dy_stage_effect_t fx;
        int peer;
        int kind;
    } map[] = {
        {DY_FX_SET_PARAMS, PEER_PARTICIPANT, HALO__INTERNAL__V1__STAGE_EFFECTS__KIND__SET_REQUISITION_PARAMS},
        {DY_FX_CONFIRM, PEER_PARTICIPANT, HALO__INTERNAL__V1__STAGE_EFFECTS__KIND__CONFIRM},
        {DY_FX_SEND, PEER_COORDINATOR, HALO__INTERNAL__V1__STAGE_EFFECTS__KIND__SEND},
        {DY_FX_SUBMIT, PEER_SUBMITTER, HALO__INTERNAL__V1__STAGE_EFFECTS__KIND__SUBMIT_RESULT},
    };
    dy_stage_effect_t fx = dy_stage_effect(w->lease.protocol, w->lease.role, w->lease.stage, K);
    w->state = W_EFFECTS;
    for (size_t i = 0; i < DY_ARRAY_LEN(map); i++) {
        if (map[i].fx != fx)
            continue;
        if (s_send_fx(c, w, map[i].peer, map[i].kind, false) < 0)
            s_fail_temp(c, w, "effects_unsent", "cannot send StageEffects");
        return;
    }
    s_commit(c, w); /* DY_FX_NONE */
}

/* ---- the mill -------------------------------------------------------------- */

static void s_mill_done(s_claimer_t *c, s_work_t *w)
{
    dy_spawn_status_t st;
    dy_spawn_status(w->mill, &st);
    dy_mill_outcome_t oc;
    dy_mill_outcome(&st, w->job_id, &oc);
    if (oc.outcome == DY_OUTCOME_OK) {
        Halo__Internal__V1__MillResult *r = oc.result;
        log_info_c(&w->lc, "mill done in %.3f s, peak RSS %llu", r->wall_seconds,
                   (unsigned long long)r->peak_rss_bytes);
        for (size_t i = 0; i < r->n_outputs; i++) {
            dy_blob_info_t info = {.size = r->outputs[i]->size};
            snprintf(info.path, sizeof(info.path), "%s", r->outputs[i]->path);
            memcpy(info.sha256, r->outputs[i]->sha256.data, 32);
            dy_store_output_t o = {.slot = r->outputs[i]->slot, .blob = &info};
            int rc = dy_store_record_output(c->store, &w->lease, &o);
            if (rc == DY_STORE_E_STALE) {
                log_info_c(&w->lc, "lease lost, mill outputs dropped");
                dy_mill_outcome_clear(&oc);
                s_drop(c, w);
                return;
            }
            if (rc < 0 && rc != -EEXIST) { /* -EEXIST: an earlier output is kept (§6.2) */
                dy_mill_outcome_clear(&oc);
                s_fail_temp(c, w, "store", strerror(-rc));
                return;
            }
        }
        dy_mill_outcome_clear(&oc);
        s_mill_end(c, w);
        s_effects(c, w);
        return;
    }
    s_mill_end(c, w);
    if (oc.outcome == DY_OUTCOME_PERMFAIL)
        s_fail_perm(c, w, oc.code, oc.message);
    else
        s_fail_temp(c, w, oc.code, oc.message);
    dy_mill_outcome_clear(&oc);
}

static int s_on_mill(zloop_t *loop, zmq_pollitem_t *item, void *arg)
{
    s_claimer_t *c = arg;
    for (size_t i = 0; i < S_MAX_WORK; i++) {
        s_work_t *w = &c->work[i];
        if (!w->used || !w->mill || !w->poller || dy_spawn_result_fd(w->mill) != item->fd)
            continue;
        if (dy_spawn_pump(w->mill) == 0)
            return 0;
        zloop_poller_end(loop, item);
        w->poller = false;
        /* EOF: the exit follows at once; reap it (bounded wait), then judge. */
        for (int k = 0; k < 200 && dy_spawn_poll(w->mill) == 0; k++)
            usleep(5000);
        if (dy_spawn_poll(w->mill) == 0)
            dy_spawn_kill(w->mill);
        s_mill_done(c, w);
        s_claim(c);
        return 0;
    }
    return 0;
}

static void s_start(s_claimer_t *c, s_work_t *w)
{
    const dy_duchy_config_t *cfg = c->cfg;
    w->lc = (dy_log_ctx_t){w->lease.computation, w->stage_name, w->lease.attempt};
    if (w->lease.exhausted) {
        s_fail_perm(c, w, "attempts_exhausted", "no attempt left");
        return;
    }
    dy_computation_t row = {0};
    char why[512] = "";
    int rc = dy_store_get(c->store, w->lease.computation, &row);
    if (rc == 0 && row.details &&
        dy_details_parse(row.details, row.details_len, cfg->id, &w->det, why, sizeof(why)) == 0)
        w->has_det = true;
    dy_computation_clear(&row);
    if (!w->has_det) {
        s_fail_perm(c, w, "bad_details", why[0] ? why : "no details stored");
        return;
    }
    int K = w->det.max_frequency;
    if (!dy_stage_computes(w->lease.protocol, w->lease.role, w->lease.stage)) {
        s_effects(c, w);
        return;
    }
    /* output cache (§7.1): every output recorded -> no mill */
    const char *slots[3];
    int n = dy_claim_output_slots(w->lease.protocol, w->lease.role, w->lease.stage, K, slots);
    int have = 0;
    for (int i = 0; i < n; i++) {
        dy_blob_rec_t rec;
        have += dy_store_get_blob(c->store, w->lease.computation, w->lease.stage, slots[i], &rec) == 0;
    }
    if (n > 0 && have == n) {
        log_info_c(&w->lc, "outputs recorded earlier, no mill");
        s_effects(c, w);
        return;
    }
    char root[1024], cdir[1024];
    snprintf(root, sizeof(root), "%s/blobs", cfg->data_dir);
    snprintf(cdir, sizeof(cdir), "%s/certificates", cfg->data_dir);
    dy_claim_env_t env = {.duchy_id = cfg->id, .blob_root = root,
                          .master_key_file = cfg->master_key_file, .trusted_ca = cfg->trusted_ca,
                          .parties = cfg->parties, .certificate_dir = cdir,
                          .threads = (int)cfg->mill_threads,
                          .max_register_count = (int64_t)(cfg->max_upload / 4)};
    snprintf(w->job_id, sizeof(w->job_id), "%s/%d/%lld", w->lease.computation, w->lease.stage,
             (long long)w->lease.attempt);
    dy_buf_t job = {0};
    int64_t deadline = dy_wall_ms() + cfg->mill_deadline_ms;
    rc = dy_claim_build_job(c->store, &w->det, &env, &w->lease, w->job_id, (uint64_t)deadline,
                            &job, why, sizeof(why));
    if (rc < 0) {
        dy_buf_free(&job);
        if (rc == -ENOMEM)
            s_fail_temp(c, w, "out_of_memory", "job");
        else
            s_fail_perm(c, w, "bad_job", why);
        return;
    }
    char *argv[] = {"duchy-mill", NULL};
    dy_spawn_conf_t sc = {.path = c->mill_path, .argv = argv, .job = job.data,
                          .job_len = job.len, .memory_limit = cfg->mill_memory,
                          .deadline_ms = cfg->mill_deadline_ms};
    w->mill = dy_spawn_start(&sc);
    dy_buf_free(&job);
    if (!w->mill) {
        s_fail_temp(c, w, "spawn_failed", strerror(errno));
        return;
    }
    w->started_ms = dy_wall_ms();
    zmq_pollitem_t item = {.fd = dy_spawn_result_fd(w->mill), .events = ZMQ_POLLIN};
    if (zloop_poller(dy_actor_loop(c->actor), &item, s_on_mill, c) < 0) {
        s_fail_temp(c, w, "spawn_failed", "cannot poll the mill");
        return;
    }
    w->poller = true;
    log_info_c(&w->lc, "mill started, pid %d", (int)dy_spawn_pid(w->mill));
}

/* ---- claiming ---------------------------------------------------------------- */

static void s_claim(s_claimer_t *c)
{
    if (dy_actor_draining(c->actor))
        return;
    size_t running = s_running(c);
    size_t want = (size_t)c->cfg->workers > running ? (size_t)c->cfg->workers - running : 0;
    if (want == 0)
        return;
    dy_stage_ref_t prio[3] = {{DY_PROTO_LLV2, dy_stage_initial(DY_PROTO_LLV2)},
                              {DY_PROTO_RO_LLV2, dy_stage_initial(DY_PROTO_RO_LLV2)},
                              {DY_PROTO_HMSS, dy_stage_initial(DY_PROTO_HMSS)}};
    dy_lease_t leases[S_MAX_WORK];
    size_t n = 0;
    int rc = dy_store_claim(c->store, c->owner, prio, 3, c->cfg->lease_ms * 1000, leases,
                            want > S_MAX_WORK ? S_MAX_WORK : want, &n);
    if (rc < 0) {
        log_warnx("claim failed: %s, ignoring", strerror(-rc));
        return;
    }
    for (size_t i = 0; i < n; i++) {
        s_work_t *w = NULL;
        for (size_t k = 0; k < S_MAX_WORK && !w; k++)
            if (!c->work[k].used)
                w = &c->work[k];
        if (!w)
            break; /* cannot happen: want <= free slots */
        memset(w, 0, sizeof(*w));
        w->used = true;
        w->lease = leases[i];
        snprintf(w->stage_name, sizeof(w->stage_name), "%s",
                 dy_stage_name(leases[i].protocol, leases[i].stage));
        dy_actor_count(c->actor, "claimed", 1);
        s_start(c, w);
    }
    dy_actor_gauge(c->actor, "running", (int64_t)s_running(c));
}

/* ---- replies, cancellation -------------------------------------------------- */

static int s_on_reply(zloop_t *loop, zsock_t *sock, void *arg)
{
    s_claimer_t *c = arg;
    s_msg_t *m = dy_actor_recv_msg(sock, NULL);
    if (!m)
        return 0;
    if (m->body_case != HALO__INTERNAL__V1__ACTOR_MESSAGE__BODY_EFFECTS_REPLY) {
        log_warnx("unexpected message kind %d from a peer, dropped", (int)m->body_case);
        protobuf_c_message_free_unpacked(&m->base, NULL);
        return 0;
    }
    const Halo__Internal__V1__EffectsReply *r = m->effects_reply;
    s_work_t *w = NULL;
    for (size_t i = 0; i < S_MAX_WORK && !w; i++)
        if (c->work[i].used && c->work[i].request_id[0] &&
            strcmp(c->work[i].request_id, m->request_id) == 0)
            w = &c->work[i];
    if (!w) {
        log_debug("reply to request %s not awaited (a LOG, or dropped work), ignored", m->request_id);
        protobuf_c_message_free_unpacked(&m->base, NULL);
        return 0;
    }
    w->request_id[0] = 0;
    bool ok = r->outcome == HALO__INTERNAL__V1__OUTCOME__OUTCOME_OK;
    bool perm = r->outcome == HALO__INTERNAL__V1__OUTCOME__OUTCOME_PERMFAIL;
    if (w->state == W_FAILING) {
        if (ok || perm) { /* FAIL reported (or the Kingdom says it already ended) */
            bool changed = false;
            /* "code: message", as a transient failure's attempt row has it. */
            char err[400];
            snprintf(err, sizeof(err), "%s: %s", w->code, w->message);
            int rc = dy_store_end(c->store, w->lease.computation, &w->lease,
                                  dy_stage_complete(w->lease.protocol), DY_END_FAILED, err,
                                  &changed);
            log_info_c(&w->lc, "computation ended FAILED%s", rc == 0 ? "" : " (lease lost first)");
            s_drop(c, w);
        } else {
            s_fail_temp(c, w, w->code, w->message); /* FAIL again on the retry */
        }
    } else if (ok) {
        s_commit(c, w);
    } else if (perm) {
        s_fail_perm(c, w, r->code[0] ? r->code : "effects_failed", r->message);
    } else {
        s_fail_temp(c, w, r->code[0] ? r->code : "effects_tempfail", r->message);
    }
    protobuf_c_message_free_unpacked(&m->base, NULL);
    s_claim(c);
    return 0;
}

static int s_on_event(zloop_t *loop, zsock_t *sock, void *arg)
{
    s_claimer_t *c = arg;
    s_msg_t *m = dy_actor_recv_msg(sock, NULL);
    if (!m)
        return 0;
    if (m->body_case == HALO__INTERNAL__V1__ACTOR_MESSAGE__BODY_CANCEL) {
        for (size_t i = 0; i < S_MAX_WORK; i++) {
            s_work_t *w = &c->work[i];
            if (w->used && strcmp(w->lease.computation, m->cancel->computation_id) == 0) {
                log_info_c(&w->lc, "computation %s: mill killed, attempt dropped",
                           m->cancel->reason);
                dy_actor_count(c->actor, "cancelled", 1);
                s_drop(c, w);
            }
        }
    }
    protobuf_c_message_free_unpacked(&m->base, NULL);
    return 0;
}

/* ---- housekeeping, drain, admin ------------------------------------------------ */

static void s_housekeeping(dy_actor_t *a, void *arg)
{
    s_claimer_t *c = arg;
    int64_t now = dy_wall_ms();
    if (now - c->last_renew_ms >= c->cfg->lease_ms / 3) {
        c->last_renew_ms = now;
        for (size_t i = 0; i < S_MAX_WORK; i++) {
            s_work_t *w = &c->work[i];
            if (!w->used)
                continue;
            int rc = dy_store_renew(c->store, &w->lease, c->cfg->lease_ms * 1000);
            if (rc == DY_STORE_E_LEASE_LOST) {
                log_warnx_c(&w->lc, "lease lost: mill killed, attempt abandoned");
                dy_actor_count(c->actor, "lease_lost", 1);
                s_drop(c, w);
            } else if (rc < 0) {
                log_warnx_c(&w->lc, "lease renewal failed: %s, ignoring", strerror(-rc));
            }
        }
    }
    for (size_t i = 0; i < S_MAX_WORK; i++) {
        s_work_t *w = &c->work[i];
        if (!w->used)
            continue;
        if (w->mill && w->poller && dy_spawn_expired(w->mill))
            dy_spawn_kill(w->mill); /* the pipe's EOF then reports a deadline TEMPFAIL */
        if (w->state == W_FAILING && w->request_id[0] == 0)
            (void)s_send_fx(c, w, PEER_PARTICIPANT, HALO__INTERNAL__V1__STAGE_EFFECTS__KIND__FAIL,
                            false);
        else if (w->request_id[0] && now > w->fx_deadline_ms) {
            w->request_id[0] = 0;
            if (w->state == W_EFFECTS)
                s_fail_temp(c, w, "effects_deadline", "no EffectsReply in time");
        }
    }
    s_claim(c);
}

/* Integration: claims are also polled every S_CLAIM_POLL_MS, not only from the 1 s
 * housekeeping tick: a stage made claimable by a peer's input or the herald otherwise
 * waits up to a second, and one measurement crosses ~15 such hops (a dy_store_claim that
 * finds nothing is one indexed SELECT). */
#define S_CLAIM_POLL_MS 100
static int s_on_claim_tick(zloop_t *loop, int timer_id, void *arg)
{
    s_claim(arg);
    return 0;
}

static void s_drain(dy_actor_t *a, void *arg)
{
    s_claimer_t *c = arg;
    for (size_t i = 0; i < S_MAX_WORK; i++) {
        s_work_t *w = &c->work[i];
        if (!w->used)
            continue;
        s_mill_end(c, w);
        w->poller = false; /* the loop ends; pollers go with it */
        int rc = dy_store_fail_transient(c->store, &w->lease, "draining: claimer stopped", NULL);
        log_info_c(&w->lc, "released (draining)%s", rc == 0 ? "" : ", lease already gone");
        if (w->has_det)
            dy_details_free(&w->det);
        memset(w, 0, sizeof(*w));
    }
    dy_actor_drained(a);
}

static int s_admin(dy_actor_t *a, const void *req_, void *resp, void *arg)
{
    s_claimer_t *c = arg;
    const Halo__Admin__V1__AdminRequest *req = req_;
    if (req->verb != HALO__ADMIN__V1__VERB__WORKERS && req->verb != HALO__ADMIN__V1__VERB__CLAIMS)
        return -ENOTSUP;
    bool workers = req->verb == HALO__ADMIN__V1__VERB__WORKERS;
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f)
        return -ENOMEM;
    fputc('[', f);
    bool first = true;
    for (size_t i = 0; i < S_MAX_WORK; i++) {
        const s_work_t *w = &c->work[i];
        if (!w->used || (workers && !w->mill))
            continue;
        fputs(first ? "{" : ",{", f);
        first = false;
        if (workers)
            fprintf(f, "\"pid\":%d,", (int)dy_spawn_pid(w->mill));
        fputs("\"computation\":", f);
        dy_json_put_str(f, w->lease.computation);
        fputs(",\"stage\":", f);
        dy_json_put_str(f, w->stage_name);
        fprintf(f, ",\"attempt\":%lld", (long long)w->lease.attempt);
        if (workers) {
            fprintf(f, ",\"started\":%.3f", (double)w->started_ms / 1000.0);
        } else {
            fputs(",\"owner\":", f);
            dy_json_put_str(f, c->owner);
            fprintf(f, ",\"lease_expiry\":%.3f,\"state\":\"%s\"",
                    (double)w->lease.lease_expiry / 1e6,
                    w->state == W_MILL ? "mill" : w->state == W_EFFECTS ? "effects" : "failing");
        }
        fputc('}', f);
    }
    fputc(']', f);
    fclose(f);
    dy_actor_admin_json(resp, buf);
    free(buf);
    return 0;
}

static void s_status(dy_actor_t *a, void *arg)
{
    s_claimer_t *c = arg;
    dy_actor_gauge(a, "running", (int64_t)s_running(c));
}

int main(int argc, char **argv)
{
    static s_claimer_t c;
    dy_actor_ops_t ops = {.admin = s_admin, .status = s_status, .housekeeping = s_housekeeping,
                          .drain = s_drain, .arg = &c};
    c.actor = dy_actor_new("claimer", argc, argv, &ops);
    c.cfg = dy_actor_config(c.actor);
    snprintf(c.owner, sizeof(c.owner), "%s/claimer-%d/%d", c.cfg->id,
             dy_actor_instance(c.actor), (int)getpid());
    dy_log_set_field("owner", c.owner);
    /* duchy-mill: next to our own executable */
    char self[1024];
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    if (n <= 0)
        fatal("readlink /proc/self/exe");
    self[n] = 0;
    char *slash = strrchr(self, '/');
    *slash = 0;
    snprintf(c.mill_path, sizeof(c.mill_path), "%s/duchy-mill", self);
    if (access(c.mill_path, X_OK) != 0)
        fatal_config("no executable duchy-mill at %s", c.mill_path);
    char err[512];
    int rc = dy_duchy_store_open(c.cfg, &c.store, err, sizeof(err));
    if (rc < 0)
        fatalx("%s", err);
    static const struct {
        int peer;
        const char *file;
    } peers[] = {{PEER_PARTICIPANT, "participant.sock"},
                 {PEER_COORDINATOR, "coordinator.sock"},
                 {PEER_SUBMITTER, "submitter.sock"}};
    char ep[1100];
    for (size_t i = 0; i < DY_ARRAY_LEN(peers); i++) {
        dy_actor_endpoint(c.actor, peers[i].file, ep, sizeof(ep));
        c.peer[peers[i].peer] = zsock_new(ZMQ_DEALER);
        if (!c.peer[peers[i].peer] || zsock_connect(c.peer[peers[i].peer], "%s", ep) < 0)
            fatal("cannot connect %s", ep);
        zsock_set_linger(c.peer[peers[i].peer], 0);
        zloop_reader(dy_actor_loop(c.actor), c.peer[peers[i].peer], s_on_reply, &c);
    }
    dy_actor_endpoint(c.actor, "events.sock", ep, sizeof(ep));
    c.events = zsock_new_sub(ep, "");
    if (!c.events)
        fatal("cannot subscribe to %s", ep);
    zloop_reader(dy_actor_loop(c.actor), c.events, s_on_event, &c);
    if (zloop_timer(dy_actor_loop(c.actor), S_CLAIM_POLL_MS, 0, s_on_claim_tick, &c) < 0)
        fatal("cannot arm the claim timer");
    dy_actor_ready(c.actor);
    s_claim(&c);
    rc = dy_actor_run(c.actor);
    for (size_t i = 0; i < S_MAX_WORK; i++)
        if (c.work[i].used) {
            dy_spawn_destroy(&c.work[i].mill);
            if (c.work[i].has_det)
                dy_details_free(&c.work[i].det);
        }
    for (int i = 0; i < _PEER_MAX; i++)
        zsock_destroy(&c.peer[i]);
    zsock_destroy(&c.events);
    dy_store_destroy(&c.store);
    dy_actor_destroy(&c.actor);
    return rc;
}
