/* coordinator.c - duchy-coordinator: the duchy's side of ComputationControl
 * and RequisitionFulfillment behind the gateway, the stage sends to peers,
 * and the duchy-wide admin endpoint (docs/cluster.md).
 *
 * Peers (static table below):
 *   ROUTER ipc://RUN/coordinator.sock  <- gateway: GatewayCall, UploadCommit,
 *                                         UploadAbort; -> GatewayReply
 *                                      <- claimers: StageEffects{SEND};
 *                                         -> EffectsReply
 *   DEALER ipc://RUN/participant.sock  -> KingdomFulfill; <- EffectsReply
 *   REP    ipc://RUN/admin.sock        <- duchyctl: AdminRequest; -> AdminResponse
 *   send workers (fork+exec of `duchy-coordinator --send`): SendJob on fd 0,
 *                                       EffectsReply on fd 3
 *
 * The logic lives in common/coord*.c (unit-tested); this file moves
 * messages.  State per request:
 *   a FulfillRequisition commit waits for the participant's EffectsReply
 *   (pending table, deadline = kingdom.call_timeout + 5 s, then UNAVAILABLE);
 *   a SEND waits for its workers (one per receiver, in parallel), then one
 *   EffectsReply: PERMFAIL if any, else TEMPFAIL if any, else OK.
 *
 * `duchy-coordinator --send --config FILE` is the send worker: it reads a
 * SendJob on fd 0, runs common/coord_send.c and writes an EffectsReply on
 * fd 3.  It never touches the parent's sockets or database handle (a fresh
 * exec); it opens the store itself only to ask whether the computation is
 * terminal (§6.2 rule 3, COMPUTATION_ENDED).
 */
#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "actor.h"
#include "duchy_state.h"
#include "admin.pb-c.h"
#include "blob.h"
#include "coord.h"
#include "coord_admin.h"
#include "coord_send.h"
#include "duchy.pb-c.h"
#include "spawn.h"
#include "stages.h"
#include "store.h"
#include "tls.h"
#include "wire.h"

#define S_FANOUT_MS 500
#define S_SEND_GRACE_MS 2000 /* a send worker's kill backstop beyond its own deadline */
#define S_MAX_JOB (1u << 20)
#define S_AUDIT_TAIL 100

typedef struct s_coord s_coord_t;

/* One send worker. */
typedef struct {
    dy_spawn_t *sp;      /* owned; NULL once finished */
    zmq_pollitem_t item; /* the result pipe, registered with the loop */
    bool done;
    dy_outcome_t outcome;
    char code[48];
    char msg[256];
    char peer[DY_COORD_ID_MAX];
} s_worker_t;

/* A claimer's StageEffects{SEND} in progress. */
typedef struct {
    s_coord_t *co;      /* borrowed */
    zframe_t *identity; /* owned: the claimer's ROUTER identity */
    char request_id[80];
    char computation[DY_COORD_ID_MAX];
    char stage[64]; /* the stage whose outputs are sent, by name */
    int64_t attempt;
    s_worker_t w[2];
    size_t nw;
} s_effects_t;

/* A FulfillRequisition commit waiting for the Kingdom. */
typedef struct {
    char request_id[40]; /* of our KingdomFulfill */
    zframe_t *gateway;   /* owned: the gateway's identity */
    char call_id[80];    /* the gateway's call */
    dy_coord_kingdom_t k;
    int64_t deadline_ms;
} s_pending_t;

struct s_coord {
    dy_actor_t *actor;            /* owned */
    const dy_duchy_config_t *cfg; /* borrowed from the actor */
    dy_store_t *store;            /* owned */
    dy_blobdir_t *blobs;          /* owned */
    dy_coord_ctx_t ctx;
    zsock_t *router;      /* owned: coordinator.sock */
    zsock_t *participant; /* owned: DEALER to participant.sock */
    zsock_t *admin;       /* owned: REP admin.sock */
    char spool_dir[PATH_MAX];
    char exe[PATH_MAX];
    char config_path[PATH_MAX];
    zlistx_t *pending; /* s_pending_t *, owned */
    zlistx_t *effects; /* s_effects_t *, owned */
    uint64_t seq;
    int64_t start_ms;
};

/* ---- replies --------------------------------------------------------------------------- */

static void s_send(s_coord_t *co, zsock_t *sock, zframe_t *identity,
                   Halo__Internal__V1__ActorMessage *m, const char *request_id)
{
    m->version = 1;
    m->request_id = (char *)request_id;
    m->sender = "coordinator";
    int rc = dy_actor_send_msg(sock, identity, m);
    if (rc < 0)
        log_warnx("send %s: %s, ignoring", request_id, strerror(-rc));
}

static void s_gateway_reply(s_coord_t *co, zframe_t *identity, const char *request_id,
                            const char *call_id, const dy_coord_reply_t *r)
{
    Halo__Internal__V1__GatewayReply gr = HALO__INTERNAL__V1__GATEWAY_REPLY__INIT;
    gr.call_id = (char *)call_id;
    gr.code = r->code;
    const char *reason = dy_wire_reason_name((dy_wire_reason_t)r->reason);
    gr.reason = (char *)(reason ? reason : "");
    gr.message = (char *)r->message;
    gr.response.data = r->response;
    gr.response.len = r->response_len;
    gr.accept_upload = r->accept_upload;
    gr.max_total = r->max_total;
    Halo__Internal__V1__ActorMessage m = HALO__INTERNAL__V1__ACTOR_MESSAGE__INIT;
    m.body_case = HALO__INTERNAL__V1__ACTOR_MESSAGE__BODY_GATEWAY_REPLY;
    m.gateway_reply = &gr;
    s_send(co, co->router, identity, &m, request_id);
    dy_actor_count(co->actor, r->code == 0 ? "calls_ok" : "calls_refused", 1);
}

static void s_effects_reply(s_coord_t *co, zframe_t *identity, const char *request_id,
                            dy_outcome_t outcome, const char *code, const char *msg)
{
    Halo__Internal__V1__EffectsReply er = HALO__INTERNAL__V1__EFFECTS_REPLY__INIT;
    er.outcome = outcome == DY_OUTCOME_OK         ? HALO__INTERNAL__V1__OUTCOME__OUTCOME_OK
                 : outcome == DY_OUTCOME_TEMPFAIL ? HALO__INTERNAL__V1__OUTCOME__OUTCOME_TEMPFAIL
                                                  : HALO__INTERNAL__V1__OUTCOME__OUTCOME_PERMFAIL;
    er.code = (char *)code;
    er.message = (char *)msg;
    Halo__Internal__V1__ActorMessage m = HALO__INTERNAL__V1__ACTOR_MESSAGE__INIT;
    m.body_case = HALO__INTERNAL__V1__ACTOR_MESSAGE__BODY_EFFECTS_REPLY;
    m.effects_reply = &er;
    s_send(co, co->router, identity, &m, request_id);
}

/* ---- gateway calls ---------------------------------------------------------------------- */

static void s_gateway_call(s_coord_t *co, zframe_t *id, const char *rid,
                           const Halo__Internal__V1__GatewayCall *gc)
{
    dy_coord_reply_t r = {0};
    const char *method = gc->method ? gc->method : "";
    if (strcmp(method, DY_COORD_M_GET_STAGE) == 0)
        dy_coord_get_stage(&co->ctx, gc->peer, gc->request.data, gc->request.len, &r);
    else if (strcmp(method, DY_COORD_M_ADVANCE) == 0)
        dy_coord_advance_header(&co->ctx, gc->peer, gc->request.data, gc->request.len, &r);
    else if (strcmp(method, DY_COORD_M_FULFILL) == 0)
        dy_coord_fulfill_header(&co->ctx, gc->peer, gc->request.data, gc->request.len, &r);
    else
        dy_coord_reply_error(&r, DY_WIRE_STATUS_UNIMPLEMENTED, 0, "unknown method");
    if (r.code != 0)
        log_debug("%s from %s: %s %s", method, gc->peer, dy_wire_status_name(r.code), r.message);
    s_gateway_reply(co, id, rid, gc->call_id, &r);
    dy_coord_reply_clear(&r);
}

/* A spool path from the gateway must be a plain file directly in DATA/spool. */
static bool s_spool_ok(const s_coord_t *co, const char *path)
{
    size_t n = strlen(co->spool_dir);
    if (!path || strncmp(path, co->spool_dir, n) != 0 || path[n] != '/')
        return false;
    const char *name = path + n + 1;
    return name[0] && name[0] != '.' && !strchr(name, '/');
}

static void s_kingdom_fulfill(s_coord_t *co, zframe_t *gw, const char *call_id,
                              const dy_coord_kingdom_t *k)
{
    s_pending_t *p = calloc(1, sizeof(*p));
    if (!p)
        fatal("%s: calloc", __func__);
    snprintf(p->request_id, sizeof(p->request_id), "kf-%" PRIu64, ++co->seq);
    p->gateway = zframe_dup(gw);
    snprintf(p->call_id, sizeof(p->call_id), "%s", call_id);
    p->k = *k;
    p->deadline_ms = dy_now_ms() + co->cfg->kingdom_call_timeout_ms + 5000;
    Halo__Internal__V1__KingdomFulfill kf = HALO__INTERNAL__V1__KINGDOM_FULFILL__INIT;
    kf.requisition = p->k.name;
    kf.nonce = p->k.nonce;
    kf.etag = "";
    Halo__Internal__V1__ActorMessage m = HALO__INTERNAL__V1__ACTOR_MESSAGE__INIT;
    m.body_case = HALO__INTERNAL__V1__ACTOR_MESSAGE__BODY_KINGDOM_FULFILL;
    m.kingdom_fulfill = &kf;
    s_send(co, co->participant, NULL, &m, p->request_id);
    zlistx_add_end(co->pending, p);
}

static void s_upload_commit(s_coord_t *co, zframe_t *id, const char *rid,
                            const Halo__Internal__V1__UploadCommit *uc)
{
    dy_coord_reply_t r = {0};
    const char *method = uc->method ? uc->method : "";
    if (!s_spool_ok(co, uc->spool_path) || uc->sha256.len != 32) {
        log_warnx("UploadCommit with spool path %s: refused", uc->spool_path);
        dy_coord_reply_error(&r, DY_WIRE_STATUS_INTERNAL, 0, "bad spool file");
    } else if (strcmp(method, DY_COORD_M_ADVANCE) == 0) {
        dy_coord_advance_commit(&co->ctx, uc->peer, uc->header_request.data, uc->header_request.len,
                                uc->spool_path, uc->size, uc->sha256.data, &r);
        if (r.code == 0)
            dy_actor_count(co->actor, "inputs_received", 1);
    } else if (strcmp(method, DY_COORD_M_FULFILL) == 0) {
        dy_coord_kingdom_t k;
        if (dy_coord_fulfill_commit(&co->ctx, uc->peer, uc->header_request.data,
                                    uc->header_request.len, uc->spool_path, uc->size,
                                    uc->sha256.data, &r, &k) == 1) {
            dy_actor_count(co->actor, "requisitions_stored", 1);
            s_kingdom_fulfill(co, id, uc->call_id, &k);
            return; /* answered when the participant replies */
        }
    } else {
        (void)unlink(uc->spool_path);
        dy_coord_reply_error(&r, DY_WIRE_STATUS_UNIMPLEMENTED, 0, "unknown method");
    }
    if (r.code != 0)
        log_info("%s commit from %s: %s %s", method, uc->peer, dy_wire_status_name(r.code),
                 r.message);
    s_gateway_reply(co, id, rid, uc->call_id, &r);
    dy_coord_reply_clear(&r);
}

/* The participant answered a KingdomFulfill. */
static void s_participant_reply(s_coord_t *co, const char *rid,
                                const Halo__Internal__V1__EffectsReply *er)
{
    s_pending_t *p = NULL;
    for (s_pending_t *it = zlistx_first(co->pending); it; it = zlistx_next(co->pending))
        if (strcmp(it->request_id, rid) == 0) {
            p = it;
            break;
        }
    if (!p) {
        log_warnx("reply to unknown request %s from the participant, dropped", rid);
        return;
    }
    int code = DY_WIRE_STATUS_UNAVAILABLE;
    if (er->outcome == HALO__INTERNAL__V1__OUTCOME__OUTCOME_OK) {
        /* "computation_ended": the Kingdom's computation is terminal, the
         * requisition was not fulfilled there. */
        code = er->code && strcmp(er->code, "computation_ended") == 0
                   ? DY_WIRE_STATUS_FAILED_PRECONDITION
                   : DY_WIRE_STATUS_OK;
    } else if (er->outcome == HALO__INTERNAL__V1__OUTCOME__OUTCOME_PERMFAIL) {
        /* The participant names the Kingdom's status in code (upper or
         * lower case); a permanent refusal without one is a precondition. */
        char up[48];
        snprintf(up, sizeof(up), "%s", er->code ? er->code : "");
        for (char *c = up; *c; c++)
            if (*c >= 'a' && *c <= 'z')
                *c = (char)(*c - 'a' + 'A');
        int st = dy_wire_status_from_name(up);
        code = st > 0 ? st : DY_WIRE_STATUS_FAILED_PRECONDITION;
    }
    dy_coord_reply_t r = {0};
    if (code == DY_WIRE_STATUS_OK || code == DY_WIRE_STATUS_FAILED_PRECONDITION ||
        code == DY_WIRE_STATUS_UNAVAILABLE)
        dy_coord_fulfill_kingdom_done(&co->ctx, &p->k, code, er->message, &r);
    else
        dy_coord_reply_error(&r, code, 0, "Kingdom: %s", er->message ? er->message : "");
    log_info("requisition %s: Kingdom answered %s", p->k.requisition, dy_wire_status_name(code));
    s_gateway_reply(co, p->gateway, p->request_id, p->call_id, &r);
    dy_coord_reply_clear(&r);
    zlistx_delete(co->pending, zlistx_cursor(co->pending));
}

/* ---- sends ------------------------------------------------------------------------------- */

static int s_worker_ready(zloop_t *loop, zmq_pollitem_t *item, void *arg);

static void s_effects_finish(s_coord_t *co, s_effects_t *e)
{
    dy_outcome_t out = DY_OUTCOME_OK;
    const char *code = "sent", *msg = "";
    for (size_t i = 0; i < e->nw; i++) {
        s_worker_t *w = &e->w[i];
        if (w->outcome > out || (i == 0 && w->outcome == out)) {
            out = w->outcome;
            code = w->code;
            msg = w->msg;
        }
    }
    dy_log_ctx_t lc = {.computation = e->computation, .stage = e->stage, .attempt = e->attempt};
    if (out != DY_OUTCOME_OK)
        log_info_c(&lc, "sends: %s %s", code, msg);
    else
        log_debug_c(&lc, "sends done");
    dy_actor_count(co->actor, out == DY_OUTCOME_OK ? "sends_ok" : "sends_failed", 1);
    s_effects_reply(co, e->identity, e->request_id, out, code, msg);
    void *h = zlistx_find(co->effects, e);
    if (h)
        zlistx_delete(co->effects, h);
}

static void s_worker_end(s_coord_t *co, s_effects_t *e, s_worker_t *w, bool deadline)
{
    if (w->done)
        return;
    zloop_poller_end(dy_actor_loop(co->actor), &w->item);
    dy_spawn_status_t st;
    dy_spawn_status(w->sp, &st);
    Halo__Internal__V1__EffectsReply *er =
        st.result_len ? halo__internal__v1__effects_reply__unpack(NULL, st.result_len, st.result)
                      : NULL;
    if (!deadline && er && er->outcome != HALO__INTERNAL__V1__OUTCOME__OUTCOME_UNSPECIFIED) {
        w->outcome = er->outcome == HALO__INTERNAL__V1__OUTCOME__OUTCOME_OK ? DY_OUTCOME_OK
                     : er->outcome == HALO__INTERNAL__V1__OUTCOME__OUTCOME_TEMPFAIL
                         ? DY_OUTCOME_TEMPFAIL
                         : DY_OUTCOME_PERMFAIL;
        snprintf(w->code, sizeof(w->code), "%s", er->code ? er->code : "");
        snprintf(w->msg, sizeof(w->msg), "%s", er->message ? er->message : "");
    } else {
        w->outcome = DY_OUTCOME_TEMPFAIL;
        snprintf(w->code, sizeof(w->code), "%s", deadline ? "send_deadline" : "worker_failed");
        snprintf(w->msg, sizeof(w->msg), "send worker to %s %s", w->peer,
                 deadline ? "passed its deadline" : "gave no result");
    }
    if (er)
        halo__internal__v1__effects_reply__free_unpacked(er, NULL);
    dy_spawn_destroy(&w->sp);
    w->done = true;
    for (size_t i = 0; i < e->nw; i++)
        if (!e->w[i].done)
            return;
    s_effects_finish(co, e);
}

static int s_worker_ready(zloop_t *loop, zmq_pollitem_t *item, void *arg)
{
    s_effects_t *e = arg;
    for (size_t i = 0; i < e->nw; i++) {
        s_worker_t *w = &e->w[i];
        if (w->done || item->fd != w->item.fd)
            continue;
        int rc = dy_spawn_pump(w->sp);
        if (rc != 0)
            s_worker_end(e->co, e, w, false); /* may free e */
        return 0;
    }
    return 0;
}

static void s_effects_free(void **item)
{
    s_effects_t *e = *item;
    if (!e)
        return;
    for (size_t i = 0; i < e->nw; i++)
        if (e->w[i].sp) {
            zloop_poller_end(dy_actor_loop(e->co->actor), &e->w[i].item);
            dy_spawn_destroy(&e->w[i].sp);
        }
    zframe_destroy(&e->identity);
    free(e);
    *item = NULL;
}

static void s_pending_free(void **item)
{
    s_pending_t *p = *item;
    if (!p)
        return;
    zframe_destroy(&p->gateway);
    free(p);
    *item = NULL;
}

static const Halo__Internal__V1__Blob *s_output(const Halo__Internal__V1__StageEffects *se)
{
    for (size_t i = 0; i < se->n_outputs; i++)
        if (se->outputs[i]->slot && strcmp(se->outputs[i]->slot, "output") == 0)
            return se->outputs[i];
    return se->n_outputs == 1 ? se->outputs[0] : NULL;
}

static void s_stage_effects(s_coord_t *co, zframe_t *id, const char *rid,
                            const Halo__Internal__V1__StageEffects *se)
{
    if (se->kind != HALO__INTERNAL__V1__STAGE_EFFECTS__KIND__SEND) {
        log_warnx("StageEffects kind %d from a claimer: not the coordinator's", (int)se->kind);
        s_effects_reply(co, id, rid, DY_OUTCOME_PERMFAIL, "internal", "not a SEND");
        return;
    }
    const char *stage_name = se->stage_name && se->stage_name[0]
                                 ? se->stage_name
                                 : dy_stage_name((int)se->protocol, se->stage);
    dy_log_ctx_t lc = {
        .computation = se->computation_id, .stage = stage_name, .attempt = se->attempt};
    uint8_t *details = NULL;
    size_t dlen = 0;
    int rc = dy_coord_load(&co->ctx, se->computation_id, NULL, NULL, NULL, NULL, &details, &dlen);
    if (rc < 0) {
        s_effects_reply(co, id, rid, DY_OUTCOME_TEMPFAIL, "store", strerror(-rc));
        return;
    }
    dy_coord_send_t plan[2];
    char why[160] = "";
    int n = dy_coord_plan_sends(details, dlen, co->cfg->id, se->stage, plan, why, sizeof(why));
    free(details);
    if (n < 0) {
        log_warnx_c(&lc, "sends: %s", why);
        s_effects_reply(co, id, rid, DY_OUTCOME_PERMFAIL, "no_receiver", why);
        return;
    }
    if (n == 0) {
        s_effects_reply(co, id, rid, DY_OUTCOME_OK, "nothing_to_send", "");
        return;
    }
    const Halo__Internal__V1__Blob *out = s_output(se);
    if (!out || !out->path || out->sha256.len != 32) {
        for (int i = 0; i < n; i++)
            dy_coord_send_free(&plan[i]);
        s_effects_reply(co, id, rid, DY_OUTCOME_PERMFAIL, "no_output", "no recorded output");
        return;
    }
    s_effects_t *e = calloc(1, sizeof(*e));
    if (!e)
        fatal("%s: calloc", __func__);
    e->co = co;
    e->identity = zframe_dup(id);
    snprintf(e->request_id, sizeof(e->request_id), "%s", rid);
    snprintf(e->computation, sizeof(e->computation), "%s", se->computation_id);
    snprintf(e->stage, sizeof(e->stage), "%s", stage_name);
    e->attempt = se->attempt;
    zlistx_add_end(co->effects, e);
    char *argv[] = {co->exe, "--send", "--config", co->config_path, NULL};
    for (int i = 0; i < n; i++) {
        s_worker_t *w = &e->w[e->nw++];
        memcpy(w->peer, plan[i].peer, sizeof(w->peer));
        const dy_duchy_peer_t *peer = dy_duchy_config_peer(co->cfg, plan[i].peer);
        if (!peer) {
            w->done = true;
            w->outcome = DY_OUTCOME_PERMFAIL;
            snprintf(w->code, sizeof(w->code), "unknown_peer");
            snprintf(w->msg, sizeof(w->msg), "duchy %s is not in peers:", plan[i].peer);
            continue;
        }
        Halo__Internal__V1__Blob body = *out;
        Halo__Internal__V1__SendJob job = HALO__INTERNAL__V1__SEND_JOB__INIT;
        job.computation_id = se->computation_id;
        job.peer_id = plan[i].peer;
        job.endpoint = peer->endpoint;
        job.server_name = peer->server_name;
        job.method = DY_COORD_M_ADVANCE;
        job.header_request.data = plan[i].header;
        job.header_request.len = plan[i].header_len;
        job.body = &body;
        job.awaited_stage = plan[i].awaited;
        job.stage_name = e->stage;
        job.attempt = e->attempt;
        job.deadline_unix_ms = (uint64_t)(dy_wall_ms() + co->cfg->send_deadline_ms);
        Halo__Internal__V1__SendConfig jc = HALO__INTERNAL__V1__SEND_CONFIG__INIT;
        jc.duchy_id = co->cfg->id;
        jc.data_dir = co->cfg->data_dir;
        jc.tls_cert = co->cfg->tls_cert;
        jc.tls_key = co->cfg->tls_key;
        jc.trusted_ca = co->cfg->trusted_ca;
        jc.parties = co->cfg->parties;
        jc.verbose = co->cfg->verbose;
        job.config = &jc;
        size_t jl = halo__internal__v1__send_job__get_packed_size(&job);
        uint8_t *jb = malloc(jl ? jl : 1);
        if (!jb)
            fatal("%s: malloc", __func__);
        halo__internal__v1__send_job__pack(&job, jb);
        dy_spawn_conf_t sc = {.path = co->exe,
                              .argv = argv,
                              .job = jb,
                              .job_len = jl,
                              /* a backstop: the worker ends at its own deadline
                               * (DEADLINE_EXCEEDED, logged) before this kill */
                              .deadline_ms = co->cfg->send_deadline_ms + S_SEND_GRACE_MS,
                              .max_result = 65536};
        w->sp = dy_spawn_start(&sc);
        free(jb);
        if (!w->sp) {
            w->done = true;
            w->outcome = DY_OUTCOME_TEMPFAIL;
            snprintf(w->code, sizeof(w->code), "spawn_failed");
            snprintf(w->msg, sizeof(w->msg), "fork/exec: %s", strerror(errno));
            continue;
        }
        w->item =
            (zmq_pollitem_t){.socket = NULL, .fd = dy_spawn_result_fd(w->sp), .events = ZMQ_POLLIN};
        if (zloop_poller(dy_actor_loop(co->actor), &w->item, s_worker_ready, e) < 0)
            fatal("%s: zloop_poller", __func__);
        log_debug_c(&lc, "send to %s: worker %ld", w->peer, (long)dy_spawn_pid(w->sp));
    }
    for (int i = 0; i < n; i++)
        dy_coord_send_free(&plan[i]);
    bool all = true;
    for (size_t i = 0; i < e->nw; i++)
        all = all && e->w[i].done;
    if (all)
        s_effects_finish(co, e);
}

/* ---- the ROUTER and DEALER ---------------------------------------------------------------- */

static int s_router_ready(zloop_t *loop, zsock_t *sock, void *arg)
{
    s_coord_t *co = arg;
    zframe_t *id = NULL;
    Halo__Internal__V1__ActorMessage *m = dy_actor_recv_msg(sock, &id);
    if (!m)
        return 0;
    const char *rid = m->request_id ? m->request_id : "";
    switch (m->body_case) {
    case HALO__INTERNAL__V1__ACTOR_MESSAGE__BODY_GATEWAY_CALL:
        s_gateway_call(co, id, rid, m->gateway_call);
        break;
    case HALO__INTERNAL__V1__ACTOR_MESSAGE__BODY_UPLOAD_COMMIT:
        s_upload_commit(co, id, rid, m->upload_commit);
        break;
    case HALO__INTERNAL__V1__ACTOR_MESSAGE__BODY_UPLOAD_ABORT:
        log_debug("upload %s aborted by the gateway", m->upload_abort->call_id);
        break;
    case HALO__INTERNAL__V1__ACTOR_MESSAGE__BODY_STAGE_EFFECTS:
        s_stage_effects(co, id, rid, m->stage_effects);
        break;
    default: {
        /* STYLE rule 2: an unknown kind from a peer of this duchy is a bug. */
        log_warnx("message kind %d from %s: not handled here", (int)m->body_case, m->sender);
        dy_coord_reply_t r = {0};
        dy_coord_reply_error(&r, DY_WIRE_STATUS_INTERNAL, 0, "unexpected message");
        s_gateway_reply(co, id, rid, "", &r);
        break;
    }
    }
    halo__internal__v1__actor_message__free_unpacked(m, NULL);
    zframe_destroy(&id);
    return 0;
}

static int s_participant_ready(zloop_t *loop, zsock_t *sock, void *arg)
{
    s_coord_t *co = arg;
    Halo__Internal__V1__ActorMessage *m = dy_actor_recv_msg(sock, NULL);
    if (!m)
        return 0;
    if (m->body_case == HALO__INTERNAL__V1__ACTOR_MESSAGE__BODY_EFFECTS_REPLY)
        s_participant_reply(co, m->request_id ? m->request_id : "", m->effects_reply);
    else
        log_warnx("message kind %d from the participant: dropped", (int)m->body_case);
    halo__internal__v1__actor_message__free_unpacked(m, NULL);
    return 0;
}

/* ---- admin ---------------------------------------------------------------------------------- */

static char *s_read_small(const char *path, size_t max)
{
    FILE *f = fopen(path, "re");
    if (!f)
        return NULL;
    char *buf = calloc(1, max + 1);
    size_t n = buf ? fread(buf, 1, max, f) : 0;
    fclose(f);
    if (buf)
        buf[n] = '\0';
    return buf;
}

/* This process's own STATUS entry (its admin-coordinator.sock is served by
 * this same loop, which is busy answering). */
static char *s_self_status(s_coord_t *co)
{
    char buf[512];
    snprintf(buf, sizeof(buf),
             "{\"pid\":%ld,\"uptime_seconds\":%.3f,\"state\":\"%s\",\"counters\":"
             "{\"pending_kingdom\":%zu,\"sends_running\":%zu}}",
             (long)getpid(), (double)(dy_now_ms() - co->start_ms) / 1000.0,
             dy_actor_draining(co->actor) ? "draining" : "ready", zlistx_size(co->pending),
             zlistx_size(co->effects));
    return strdup(buf);
}

static int s_admin_answer(s_coord_t *co, const Halo__Admin__V1__AdminRequest *req, dy_buf_t *json,
                          char *err, size_t errlen)
{
    const dy_duchy_config_t *cfg = co->cfg;
    switch (req->verb) {
    case HALO__ADMIN__V1__VERB__COMPUTATIONS:
        return dy_coord_admin_computations(&co->ctx, json);
    case HALO__ADMIN__V1__VERB__AUDIT: {
        bool verify = req->n_args > 0 && strcmp(req->args[0], "verify") == 0;
        size_t tail = S_AUDIT_TAIL;
        if (req->n_args > 0 && !verify) {
            char *end = NULL;
            long v = strtol(req->args[0], &end, 10);
            if (!end || *end || v <= 0 || v > 100000) {
                snprintf(err, errlen, "AUDIT takes [verify] or a row count");
                return -EINVAL;
            }
            tail = (size_t)v;
        }
        return dy_coord_admin_audit(&co->ctx, verify, tail, json);
    }
    case HALO__ADMIN__V1__VERB__STATUS:
    case HALO__ADMIN__V1__VERB__WORKERS:
    case HALO__ADMIN__V1__VERB__CLAIMS: {
        char path[PATH_MAX];
        snprintf(path, sizeof(path), "%s/supervisor.json", cfg->runtime_dir);
        char *sup = s_read_small(path, 1 << 20);
        char names[DY_COORD_MAX_ACTORS][DY_COORD_NAME_MAX];
        int n = dy_coord_actor_names(sup, (int)cfg->claimers, names, DY_COORD_MAX_ACTORS);
        free(sup);
        char *answers[DY_COORD_MAX_ACTORS] = {0};
        char other[DY_COORD_MAX_ACTORS][DY_COORD_NAME_MAX];
        size_t self = (size_t)-1, k = 0;
        size_t map[DY_COORD_MAX_ACTORS];
        for (int i = 0; i < n; i++) {
            if (strcmp(names[i], "coordinator") == 0) {
                self = (size_t)i;
                continue;
            }
            /* WORKERS and CLAIMS are the claimers' business. */
            if (req->verb != HALO__ADMIN__V1__VERB__STATUS && strncmp(names[i], "claimer", 7) != 0)
                continue;
            memcpy(other[k], names[i], DY_COORD_NAME_MAX);
            map[k++] = (size_t)i;
        }
        char *got[DY_COORD_MAX_ACTORS] = {0};
        int rc = dy_coord_fanout(cfg->runtime_dir, other, k, (int)req->verb,
                                 (const char *const *)req->args, req->n_args, S_FANOUT_MS, got);
        for (size_t i = 0; i < k; i++)
            answers[map[i]] = got[i];
        if (rc == 0 && req->verb == HALO__ADMIN__V1__VERB__STATUS) {
            if (self != (size_t)-1)
                answers[self] = s_self_status(co);
            rc = dy_coord_status_json(cfg->id, names, (size_t)n, answers, json);
        } else if (rc == 0) {
            rc = dy_coord_merge_arrays(answers, (size_t)n, json);
        }
        for (int i = 0; i < n; i++)
            free(answers[i]);
        return rc;
    }
    default:
        snprintf(err, errlen, "verb %d is not served by the duchy endpoint", (int)req->verb);
        return -ENOTSUP;
    }
}

static int s_admin_ready(zloop_t *loop, zsock_t *sock, void *arg)
{
    s_coord_t *co = arg;
    zmsg_t *msg = zmsg_recv(sock);
    if (!msg)
        return 0;
    Halo__Admin__V1__AdminResponse resp = HALO__ADMIN__V1__ADMIN_RESPONSE__INIT;
    zframe_t *f = zmsg_first(msg);
    Halo__Admin__V1__AdminRequest *req =
        zmsg_size(msg) == 1 && zframe_size(f) <= 65536
            ? halo__admin__v1__admin_request__unpack(NULL, zframe_size(f), zframe_data(f))
            : NULL;
    zmsg_destroy(&msg);
    dy_buf_t json = {0};
    char err[160] = "";
    if (!req) {
        resp.code = DY_WIRE_STATUS_INVALID_ARGUMENT;
        resp.message = "malformed or oversized AdminRequest";
    } else {
        int rc = s_admin_answer(co, req, &json, err, sizeof(err));
        if (rc == 0 && dy_buf_append(&json, "", 1) == 0) {
            resp.body_case = HALO__ADMIN__V1__ADMIN_RESPONSE__BODY_JSON;
            resp.json = (char *)json.data;
        } else {
            resp.code = rc == -ENOTSUP  ? DY_WIRE_STATUS_UNIMPLEMENTED
                        : rc == -EINVAL ? DY_WIRE_STATUS_INVALID_ARGUMENT
                                        : DY_WIRE_STATUS_INTERNAL;
            if (!err[0])
                snprintf(err, sizeof(err), "%s", strerror(rc < 0 ? -rc : EIO));
            resp.message = err;
        }
        halo__admin__v1__admin_request__free_unpacked(req, NULL);
    }
    size_t n = halo__admin__v1__admin_response__get_packed_size(&resp);
    zframe_t *out = zframe_new(NULL, n);
    if (out) {
        halo__admin__v1__admin_response__pack(&resp, zframe_data(out));
        if (zframe_send(&out, sock, 0) < 0)
            zframe_destroy(&out);
    }
    dy_buf_free(&json);
    dy_actor_count(co->actor, "admin_requests", 1);
    return 0;
}

/* ---- housekeeping, start ----------------------------------------------------------------------
 */

static void s_housekeeping(dy_actor_t *a, void *arg)
{
    s_coord_t *co = arg;
    int64_t now = dy_now_ms();
    /* No saved "next" across a deletion: zlistx_find moves the list's cursor to the item
     * and zlistx_delete moves it back one, so a "next" taken before them can be the very
     * item deleted (a use-after-free when two neighbours expire in one tick).  The
     * deletion happens through the cursor, and the following zlistx_next is then the
     * item after it. */
    for (s_pending_t *p = zlistx_first(co->pending); p; p = zlistx_next(co->pending)) {
        if (now <= p->deadline_ms)
            continue;
        dy_coord_reply_t r = {0};
        dy_coord_fulfill_kingdom_done(&co->ctx, &p->k, DY_WIRE_STATUS_UNAVAILABLE,
                                      "the participant did not answer in time", &r);
        s_gateway_reply(co, p->gateway, p->request_id, p->call_id, &r);
        dy_coord_reply_clear(&r);
        zlistx_delete(co->pending, zlistx_cursor(co->pending));
    }
    /* s_worker_end may finish and free a send (find + delete inside): start over after
     * each one that ended; a finished worker is marked done, so the scan ends. */
    bool again = true;
    while (again) {
        again = false;
        for (s_effects_t *e = zlistx_first(co->effects); e && !again;
             e = zlistx_next(co->effects)) {
            for (size_t i = 0; i < e->nw; i++)
                if (!e->w[i].done && e->w[i].sp && dy_spawn_expired(e->w[i].sp)) {
                    dy_spawn_kill(e->w[i].sp);
                    s_worker_end(co, e, &e->w[i], true); /* may free e */
                    again = true;
                    break;
                }
        }
    }
    dy_actor_gauge(a, "pending_kingdom", (int64_t)zlistx_size(co->pending));
    dy_actor_gauge(a, "sends_running", (int64_t)zlistx_size(co->effects));
}

static void s_drain(dy_actor_t *a, void *arg)
{
    /* Sends in flight are abandoned (their workers are killed on destroy);
     * the claimer sees no reply and retries after its lease.  Nothing
     * durable is half-written: each commit is one transaction. */
    dy_actor_drained(a);
}

static void s_find_config(int argc, char **argv, char *out, size_t cap)
{
    out[0] = '\0';
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--config") == 0 && i + 1 < argc)
            snprintf(out, cap, "%s", argv[i + 1]);
        else if (strncmp(argv[i], "--config=", 9) == 0)
            snprintf(out, cap, "%s", argv[i] + 9);
    }
    if (out[0] && out[0] != '/') {
        char tmp[PATH_MAX];
        if (realpath(out, tmp))
            snprintf(out, cap, "%s", tmp);
    }
}

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--send") == 0)
            return dy_coord_send_worker_main();

    s_coord_t *co = calloc(1, sizeof(*co));
    if (!co)
        return DY_EXIT_TEMPORARY;
    dy_actor_ops_t ops = {
        .admin = NULL, .housekeeping = s_housekeeping, .drain = s_drain, .arg = co};
    co->actor = dy_actor_new("coordinator", argc, argv, &ops);
    co->cfg = dy_actor_config(co->actor);
    co->start_ms = dy_now_ms();
    s_find_config(argc, argv, co->config_path, sizeof(co->config_path));
    ssize_t k = readlink("/proc/self/exe", co->exe, sizeof(co->exe) - 1);
    if (k <= 0)
        fatal("readlink /proc/self/exe");
    co->exe[k] = '\0';

    const dy_duchy_config_t *cfg = co->cfg;
    char err[512];
    int rc = dy_duchy_store_open(cfg, &co->store, err, sizeof(err));
    if (rc < 0)
        fatalx("%s", err);
    if ((co->blobs = dy_duchy_blobs_open(cfg, err, sizeof(err))) == NULL)
        fatalx("%s", err);
    snprintf(co->spool_dir, sizeof(co->spool_dir), "%s/spool", cfg->data_dir);
    co->ctx = (dy_coord_ctx_t){.my_id = cfg->id,
                               .aggregator_id = cfg->aggregator_id,
                               .first_na_id = cfg->first_na_id,
                               .second_na_id = cfg->second_na_id,
                               .store = co->store,
                               .blobs = co->blobs,
                               .max_upload = cfg->max_upload,
                               .actor = "coordinator"};
    co->pending = zlistx_new();
    co->effects = zlistx_new();
    zlistx_set_destructor(co->pending, s_pending_free);
    zlistx_set_destructor(co->effects, s_effects_free);

    /* Peer table (STYLE rule 2). */
    struct {
        zsock_t **sock;
        int type;
        const char *file;
        bool bind;
        zloop_reader_fn *fn;
    } peers[] = {
        {&co->router, ZMQ_ROUTER, "coordinator.sock", true, s_router_ready},
        {&co->participant, ZMQ_DEALER, "participant.sock", false, s_participant_ready},
        {&co->admin, ZMQ_REP, "admin.sock", true, s_admin_ready},
    };
    for (size_t i = 0; i < DY_ARRAY_LEN(peers); i++) {
        char ep[PATH_MAX + 16];
        dy_actor_endpoint(co->actor, peers[i].file, ep, sizeof(ep));
        *peers[i].sock = zsock_new(peers[i].type);
        if (!*peers[i].sock)
            fatal("zsock_new");
        zsock_set_linger(*peers[i].sock, 0);
        if (peers[i].type == ZMQ_ROUTER)
            zsock_set_router_mandatory(*peers[i].sock, 1);
        rc = peers[i].bind ? zsock_bind(*peers[i].sock, "%s", ep)
                           : zsock_connect(*peers[i].sock, "%s", ep);
        if (rc < 0)
            fatal("%s %s", peers[i].bind ? "bind" : "connect", ep);
        if (zloop_reader(dy_actor_loop(co->actor), *peers[i].sock, peers[i].fn, co) < 0)
            fatal("zloop_reader");
    }

    dy_actor_set_state(co->actor, "ready");
    dy_actor_ready(co->actor);
    log_info("serving %s (data %s)", cfg->id, cfg->data_dir);
    rc = dy_actor_run(co->actor);

    zlistx_destroy(&co->effects);
    zlistx_destroy(&co->pending);
    zsock_destroy(&co->admin);
    zsock_destroy(&co->participant);
    zsock_destroy(&co->router);
    dy_blobdir_destroy(&co->blobs);
    dy_store_destroy(&co->store);
    dy_actor_destroy(&co->actor);
    free(co);
    return rc;
}
