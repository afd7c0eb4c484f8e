/* gateway.c - duchy-gateway: the duchy's only outside listener
 * (docs/cluster.md).  Mutual TLS and framed calls come from common/rpc
 * (server reactor: frame limits, idle timeouts, deadlines, per-identity
 * rate limits); this file checks the caller's party type per method,
 * forwards calls to the coordinator and spools upload bodies.
 *
 * Peers:
 *   TLS clients   duchies/<peer> (ComputationControl), dataProviders/<dp>
 *                 (RequisitionFulfillment); any other party or a duchy that
 *                 is not one of the two peers: PERMISSION_DENIED
 *   DEALER ipc://RUN/coordinator.sock
 *                 -> GatewayCall (unary request, or an upload's header)
 *                 -> UploadCommit (body spooled, fsynced, verified)
 *                 -> UploadAbort (the upload died before its commit)
 *                 <- GatewayReply (response / status / accept_upload)
 *
 * A call's life (s_call_t, keyed by its call id):
 *   unary:  on_request -> GatewayCall -> GatewayReply -> finish
 *   upload: on_header -> GatewayCall -> GatewayReply{accept_upload}:
 *           open DATA/spool/<call id> (O_EXCL, 0600), grant credit |
 *           GatewayReply{error}: finish
 *           on_chunk: append to the spool file
 *           on_complete (trailer verified): fsync, UploadCommit ->
 *           GatewayReply: finish with the coordinator's answer
 *           on_close(false) before the commit: remove the spool file,
 *           UploadAbort
 *   A call that ends while the coordinator still owes a reply stays in the
 *   table (call pointer NULL) until the reply arrives and is dropped.
 *
 * The rpc server owns the poll loop; the actor's zloop (admin socket,
 * housekeeping) runs it one step at a time from a 1 ms timer, each step
 * waiting up to 50 ms, so admin requests wait at most that long.  The
 * DEALER is watched through its ZMQ_FD (edge-triggered: drained while
 * ZMQ_EVENTS says POLLIN, and again after every step).
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
#include "coord.h"
#include "coord_send.h"
#include "duchy.pb-c.h"
#include "rpc.h"
#include "tls.h"
#include "wire.h"

#define S_STEP_MS 50
#define S_ORPHAN_MS (15 * 60 * 1000) /* an owed reply that never came */

typedef struct s_gw s_gw_t;

typedef struct {
    s_gw_t *gw;          /* borrowed */
    dy_rpc_call_t *call; /* borrowed from the server; NULL after on_close */
    char id[48];         /* call id, also the spool file's name */
    char method[DY_WIRE_METHOD_MAX + 1];
    char peer[DY_PARTY_ID_MAX];
    bool upload;
    uint8_t *header; /* owned: the header request bytes */
    size_t header_len;
    int fd;           /* spool file, -1 if none open */
    bool spooled;     /* the spool file exists */
    bool owed;        /* the coordinator owes a GatewayReply */
    bool committing;  /* UploadCommit sent */
    int64_t ended_ms; /* when on_close ran (orphan expiry) */
} s_call_t;

struct s_gw {
    dy_actor_t *actor;             /* owned */
    const dy_duchy_config_t *cfg;  /* borrowed from the actor */
    SSL_CTX *ctx;                  /* owned */
    dy_rpc_server_t *srv;          /* owned */
    zsock_t *dealer;               /* owned */
    zhashx_t *calls;               /* call id -> s_call_t *, owned */
    char spool_dir[PATH_MAX - 64]; /* room for "/<call id>" */
    uint64_t seq;
    int64_t drain_start_ms; /* 0 = not draining */
};

static void s_call_free(void **item)
{
    s_call_t *c = *item;
    if (!c)
        return;
    if (c->fd >= 0)
        close(c->fd);
    free(c->header);
    free(c);
    *item = NULL;
}

/* ---- to the coordinator ----------------------------------------------------------------- */

static void s_drain_dealer(s_gw_t *gw);

static int s_send(s_gw_t *gw, Halo__Internal__V1__ActorMessage *m, const char *rid)
{
    m->version = 1;
    m->request_id = (char *)rid;
    m->sender = "gateway";
    int rc = dy_actor_send_msg(gw->dealer, NULL, m);
    if (rc < 0)
        log_warnx("to the coordinator: %s", strerror(-rc));
    return rc;
}

static int s_forward(s_gw_t *gw, s_call_t *c)
{
    Halo__Internal__V1__GatewayCall gc = HALO__INTERNAL__V1__GATEWAY_CALL__INIT;
    gc.call_id = c->id;
    gc.peer = c->peer;
    gc.method = c->method;
    gc.request.data = c->header;
    gc.request.len = c->header_len;
    gc.deadline_unix_ms = dy_rpc_call_deadline(c->call);
    Halo__Internal__V1__ActorMessage m = HALO__INTERNAL__V1__ACTOR_MESSAGE__INIT;
    m.body_case = HALO__INTERNAL__V1__ACTOR_MESSAGE__BODY_GATEWAY_CALL;
    m.gateway_call = &gc;
    int rc = s_send(gw, &m, c->id);
    if (rc == 0)
        c->owed = true;
    return rc;
}

static void s_abort(s_gw_t *gw, s_call_t *c)
{
    Halo__Internal__V1__UploadAbort ua = HALO__INTERNAL__V1__UPLOAD_ABORT__INIT;
    ua.call_id = c->id;
    Halo__Internal__V1__ActorMessage m = HALO__INTERNAL__V1__ACTOR_MESSAGE__INIT;
    m.body_case = HALO__INTERNAL__V1__ACTOR_MESSAGE__BODY_UPLOAD_ABORT;
    m.upload_abort = &ua;
    (void)s_send(gw, &m, c->id);
}

/* ---- identity ------------------------------------------------------------------------------ */

/* PROTOCOL.md §9: ComputationControl for the two peer duchies,
 * RequisitionFulfillment for data providers; no one else. */
static bool s_allowed(const s_gw_t *gw, const char *method, const char *peer)
{
    if (!peer)
        return false;
    if (strcmp(method, DY_COORD_M_FULFILL) == 0)
        return strncmp(peer, "dataProviders/", 14) == 0 && peer[14];
    const char *d = dy_coord_peer_duchy(peer);
    return d && dy_duchy_config_peer(gw->cfg, d) != NULL;
}

static s_call_t *s_call_new(s_gw_t *gw, dy_rpc_call_t *call, const uint8_t *req, size_t len,
                            bool upload)
{
    s_call_t *c = calloc(1, sizeof(*c));
    if (!c)
        fatal("%s: calloc", __func__);
    c->gw = gw;
    c->call = call;
    c->fd = -1;
    c->upload = upload;
    snprintf(c->id, sizeof(c->id), "g%ld-%" PRIu64, (long)getpid(), ++gw->seq);
    snprintf(c->method, sizeof(c->method), "%s", dy_rpc_call_method(call));
    snprintf(c->peer, sizeof(c->peer), "%s", dy_rpc_call_peer(call));
    c->header = malloc(len ? len : 1);
    if (!c->header)
        fatal("%s: malloc", __func__);
    if (len)
        memcpy(c->header, req, len);
    c->header_len = len;
    zhashx_insert(gw->calls, c->id, c);
    dy_rpc_call_set_data(call, c);
    return c;
}

/* Common start of a unary call or an upload header. */
static void s_start(dy_rpc_call_t *call, const uint8_t *req, size_t len, void *arg, bool upload)
{
    s_gw_t *gw = arg;
    const char *method = dy_rpc_call_method(call);
    const char *peer = dy_rpc_call_peer(call);
    if (!s_allowed(gw, method, peer)) {
        dy_actor_count(gw->actor, "permission_denied", 1);
        dy_rpc_call_finish(call, DY_WIRE_STATUS_PERMISSION_DENIED, DY_WIRE_REASON_NONE,
                           "%s may not call this method", peer ? peer : "caller");
        return;
    }
    if (gw->drain_start_ms) {
        dy_rpc_call_finish(call, DY_WIRE_STATUS_UNAVAILABLE, DY_WIRE_REASON_NONE, "draining");
        return;
    }
    s_call_t *c = s_call_new(gw, call, req, len, upload);
    if (s_forward(gw, c) < 0)
        dy_rpc_call_finish(call, DY_WIRE_STATUS_UNAVAILABLE, DY_WIRE_REASON_NONE,
                           "coordinator unavailable");
    s_drain_dealer(gw);
}

static void s_on_request(dy_rpc_call_t *call, const uint8_t *req, size_t len, void *arg)
{
    s_start(call, req, len, arg, false);
}

static void s_on_header(dy_rpc_call_t *call, const uint8_t *req, size_t len, void *arg)
{
    s_start(call, req, len, arg, true);
}

static int s_on_chunk(dy_rpc_call_t *call, const uint8_t *data, size_t len, void *arg)
{
    s_call_t *c = dy_rpc_call_data(call);
    if (!c || c->fd < 0)
        return -EPROTO;
    while (len > 0) {
        ssize_t k = write(c->fd, data, len);
        if (k < 0) {
            if (errno == EINTR)
                continue;
            int e = errno;
            log_warn("spool %s", c->id);
            return e == ENOSPC ? -ENOSPC : -EIO;
        }
        data += k;
        len -= (size_t)k;
    }
    return 0;
}

static void s_spool_path(const s_gw_t *gw, const s_call_t *c, char *out, size_t cap)
{
    snprintf(out, cap, "%s/%s", gw->spool_dir, c->id);
}

static void s_on_complete(dy_rpc_call_t *call, const uint8_t sha256[32], uint64_t total, void *arg)
{
    s_gw_t *gw = arg;
    s_call_t *c = dy_rpc_call_data(call);
    if (!c || c->fd < 0) {
        dy_rpc_call_finish(call, DY_WIRE_STATUS_INTERNAL, DY_WIRE_REASON_NONE, "no spool file");
        return;
    }
    int rc = fsync(c->fd) < 0 ? -errno : 0;
    close(c->fd);
    c->fd = -1;
    if (rc < 0) {
        log_warnx("fsync of spool %s: %s", c->id, strerror(-rc));
        dy_rpc_call_finish(call, DY_WIRE_STATUS_UNAVAILABLE, DY_WIRE_REASON_NONE,
                           "storage failure, retry");
        return; /* on_close removes the file */
    }
    char path[PATH_MAX];
    s_spool_path(gw, c, path, sizeof(path));
    Halo__Internal__V1__UploadCommit uc = HALO__INTERNAL__V1__UPLOAD_COMMIT__INIT;
    uc.call_id = c->id;
    uc.peer = c->peer;
    uc.method = c->method;
    uc.header_request.data = c->header;
    uc.header_request.len = c->header_len;
    uc.spool_path = path;
    uc.size = total;
    uc.sha256.data = (uint8_t *)sha256;
    uc.sha256.len = 32;
    Halo__Internal__V1__ActorMessage m = HALO__INTERNAL__V1__ACTOR_MESSAGE__INIT;
    m.body_case = HALO__INTERNAL__V1__ACTOR_MESSAGE__BODY_UPLOAD_COMMIT;
    m.upload_commit = &uc;
    if (s_send(gw, &m, c->id) < 0) {
        dy_rpc_call_finish(call, DY_WIRE_STATUS_UNAVAILABLE, DY_WIRE_REASON_NONE,
                           "coordinator unavailable");
        return;
    }
    c->owed = true;
    c->committing = true; /* the coordinator owns the spool file now */
    dy_actor_count(gw->actor, "uploads_committed", 1);
    s_drain_dealer(gw);
}

static void s_on_close(dy_rpc_call_t *call, bool completed, void *arg)
{
    s_gw_t *gw = arg;
    s_call_t *c = dy_rpc_call_data(call);
    if (!c)
        return;
    c->call = NULL;
    c->ended_ms = dy_now_ms();
    if (c->fd >= 0) {
        close(c->fd);
        c->fd = -1;
    }
    if (c->spooled && !c->committing) {
        char path[PATH_MAX];
        s_spool_path(gw, c, path, sizeof(path));
        (void)unlink(path);
        c->spooled = false;
        if (!completed) {
            s_abort(gw, c);
            dy_actor_count(gw->actor, "uploads_aborted", 1);
        }
    }
    if (!c->owed)
        zhashx_delete(gw->calls, c->id);
}

/* ---- from the coordinator ------------------------------------------------------------------ */

static void s_reply(s_gw_t *gw, const Halo__Internal__V1__GatewayReply *gr)
{
    s_call_t *c = gr->call_id ? zhashx_lookup(gw->calls, gr->call_id) : NULL;
    if (!c) {
        log_warnx("GatewayReply for unknown call %s, dropped", gr->call_id);
        return;
    }
    c->owed = false;
    dy_rpc_call_t *call = c->call;
    if (!call) { /* the caller went away meanwhile */
        zhashx_delete(gw->calls, c->id);
        return;
    }
    if (gr->accept_upload && c->upload && !c->committing) {
        char path[PATH_MAX];
        s_spool_path(gw, c, path, sizeof(path));
        c->fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (c->fd < 0) {
            log_warn("spool %s", path);
            dy_rpc_call_finish(call, DY_WIRE_STATUS_UNAVAILABLE, DY_WIRE_REASON_NONE,
                               "storage failure, retry");
            return;
        }
        c->spooled = true;
        uint64_t cap = gr->max_total;
        if (gw->cfg->max_upload && (cap == 0 || cap > gw->cfg->max_upload))
            cap = gw->cfg->max_upload;
        if (dy_rpc_call_accept_upload(call, cap) < 0)
            dy_rpc_call_finish(call, DY_WIRE_STATUS_INTERNAL, DY_WIRE_REASON_NONE, "accept");
        return;
    }
    if (gr->accept_upload) {
        dy_rpc_call_finish(call, DY_WIRE_STATUS_INTERNAL, DY_WIRE_REASON_NONE,
                           "unexpected upload acceptance");
        return;
    }
    if (c->committing)
        c->spooled = false; /* adopted or removed by the coordinator */
    int code = gr->code;
    if (code < 0 || code >= _DY_WIRE_STATUS_MAX)
        code = DY_WIRE_STATUS_INTERNAL;
    if (code == DY_WIRE_STATUS_OK) {
        int rc = dy_rpc_call_send(call, gr->response.data, gr->response.len);
        if (rc < 0) {
            dy_rpc_call_finish(call, DY_WIRE_STATUS_INTERNAL, DY_WIRE_REASON_NONE, "send: %s",
                               strerror(-rc));
            return;
        }
        dy_rpc_call_finish(call, DY_WIRE_STATUS_OK, DY_WIRE_REASON_NONE, NULL);
        return;
    }
    int reason = dy_wire_reason_parse(gr->reason);
    dy_rpc_call_finish(call, (dy_wire_status_t)code,
                       reason < 0 ? DY_WIRE_REASON_NONE : (dy_wire_reason_t)reason, "%s",
                       gr->message ? gr->message : "");
}

static void s_drain_dealer(s_gw_t *gw)
{
    while (zsock_events(gw->dealer) & ZMQ_POLLIN) {
        Halo__Internal__V1__ActorMessage *m = dy_actor_recv_msg(gw->dealer, NULL);
        if (!m)
            continue; /* malformed: logged and dropped by the helper */
        if (m->body_case == HALO__INTERNAL__V1__ACTOR_MESSAGE__BODY_GATEWAY_REPLY)
            s_reply(gw, m->gateway_reply);
        else
            log_warnx("message kind %d from the coordinator: dropped", (int)m->body_case);
        halo__internal__v1__actor_message__free_unpacked(m, NULL);
    }
}

static void s_dealer_watch(int fd, void *arg)
{
    s_drain_dealer(arg);
}

/* ---- the loop ------------------------------------------------------------------------------ */

static int s_step(zloop_t *loop, int timer_id, void *arg)
{
    s_gw_t *gw = arg;
    int rc = dy_rpc_server_step(gw->srv, S_STEP_MS);
    if (rc < 0 && rc != -EINTR) {
        log_warnx("rpc server: %s", strerror(-rc));
        dy_actor_stop(gw->actor, DY_EXIT_TEMPORARY);
        return -1;
    }
    s_drain_dealer(gw);
    return 0;
}

static void s_status(dy_actor_t *a, void *arg)
{
    s_gw_t *gw = arg;
    dy_rpc_server_stats_t st;
    dy_rpc_server_stats(gw->srv, &st);
    dy_actor_gauge(a, "connections", (int64_t)st.connections);
    dy_actor_gauge(a, "accepted", (int64_t)st.accepted);
    dy_actor_gauge(a, "refused", (int64_t)st.refused);
    dy_actor_gauge(a, "calls", (int64_t)st.calls);
    dy_actor_gauge(a, "rate_limited", (int64_t)st.rate_limited);
    dy_actor_gauge(a, "oversized", (int64_t)st.oversized);
    dy_actor_gauge(a, "bytes_in", (int64_t)st.bytes_in);
    dy_actor_gauge(a, "bytes_out", (int64_t)st.bytes_out);
    dy_actor_gauge(a, "calls_in_flight", (int64_t)zhashx_size(gw->calls));
}

static void s_housekeeping(dy_actor_t *a, void *arg)
{
    s_gw_t *gw = arg;
    int64_t now = dy_now_ms();
    /* Replies the coordinator never sent (it restarted): forget the call. */
    for (s_call_t *c = zhashx_first(gw->calls); c; c = zhashx_next(gw->calls))
        if (!c->call && c->ended_ms && now - c->ended_ms > S_ORPHAN_MS) {
            zhashx_delete(gw->calls, c->id);
            break; /* the iteration is invalid now; the rest next second */
        }
    if (gw->drain_start_ms) {
        dy_rpc_server_stats_t st;
        dy_rpc_server_stats(gw->srv, &st);
        if (zhashx_size(gw->calls) == 0 || now - gw->drain_start_ms > 10000)
            dy_actor_drained(a);
    }
}

static void s_drain(dy_actor_t *a, void *arg)
{
    s_gw_t *gw = arg;
    gw->drain_start_ms = dy_now_ms();
    if (zhashx_size(gw->calls) == 0)
        dy_actor_drained(a);
}

/* Removes every file left in the spool directory by an earlier run. */
static void s_clean_spool(const char *dir)
{
    if (mkdir(dir, 0700) < 0 && errno != EEXIST)
        fatal("mkdir %s", dir);
    DIR *d = opendir(dir);
    if (!d)
        fatal("opendir %s", dir);
    size_t n = 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        if (unlinkat(dirfd(d), e->d_name, 0) == 0)
            n++;
    }
    closedir(d);
    if (n)
        log_info("removed %zu stale spool file(s)", n);
}

int main(int argc, char **argv)
{
    s_gw_t *gw = calloc(1, sizeof(*gw));
    if (!gw)
        return DY_EXIT_TEMPORARY;
    dy_actor_ops_t ops = {
        .status = s_status, .housekeeping = s_housekeeping, .drain = s_drain, .arg = gw};
    gw->actor = dy_actor_new("gateway", argc, argv, &ops);
    const dy_duchy_config_t *cfg = gw->cfg = dy_actor_config(gw->actor);

    snprintf(gw->spool_dir, sizeof(gw->spool_dir), "%s/spool", cfg->data_dir);
    s_clean_spool(gw->spool_dir);

    char err[512];
    dy_parties_t *parties = dy_parties_load(cfg->parties, err, sizeof(err));
    if (!parties)
        fatal_config("tls.parties %s: %s", cfg->parties, err);
    dy_tls_conf_t tc = {.cert_path = cfg->tls_cert,
                        .key_path = cfg->tls_key,
                        .trusted_ca_path = cfg->trusted_ca,
                        .parties = parties};
    gw->ctx = dy_tls_server_ctx(&tc, err, sizeof(err));
    dy_parties_destroy(&parties);
    if (!gw->ctx)
        fatal_config("TLS server context: %s", err);

    char host[256];
    int port = 0;
    if (dy_coord_split_endpoint(cfg->gateway_listen, host, sizeof(host), &port) < 0)
        fatal_config("gateway.listen %s: expected host:port", cfg->gateway_listen);
    const dy_rpc_method_t methods[] = {
        {.method = DY_COORD_M_ADVANCE,
         .kind = DY_RPC_CLIENT_STREAM,
         .on_header = s_on_header,
         .on_chunk = s_on_chunk,
         .on_complete = s_on_complete,
         .on_close = s_on_close,
         .arg = gw},
        {.method = DY_COORD_M_GET_STAGE,
         .kind = DY_RPC_UNARY,
         .on_request = s_on_request,
         .on_close = s_on_close,
         .arg = gw},
        {.method = DY_COORD_M_FULFILL,
         .kind = DY_RPC_CLIENT_STREAM,
         .on_header = s_on_header,
         .on_chunk = s_on_chunk,
         .on_complete = s_on_complete,
         .on_close = s_on_close,
         .arg = gw},
    };
    dy_rpc_server_conf_t sc = {.ctx = gw->ctx,
                               .host = host,
                               .port = port,
                               .max_frame = cfg->max_frame,
                               .max_connections = (int)cfg->max_connections,
                               .idle_timeout_ms = (int)cfg->idle_timeout_ms,
                               .calls_per_second = cfg->calls_per_second,
                               .call_burst = cfg->call_burst,
                               .bytes_per_second = cfg->bytes_per_second,
                               .byte_burst = cfg->byte_burst};
    gw->srv = dy_rpc_server_new(&sc, methods, DY_ARRAY_LEN(methods), err, sizeof(err));
    if (!gw->srv)
        fatal("listen on %s: %s", cfg->gateway_listen, err);

    gw->calls = zhashx_new();
    zhashx_set_destructor(gw->calls, s_call_free);
    char ep[PATH_MAX + 16];
    dy_actor_endpoint(gw->actor, "coordinator.sock", ep, sizeof(ep));
    gw->dealer = zsock_new(ZMQ_DEALER);
    if (!gw->dealer)
        fatal("zsock_new");
    zsock_set_linger(gw->dealer, 0);
    if (zsock_connect(gw->dealer, "%s", ep) < 0)
        fatal("connect %s", ep);
    if (dy_rpc_server_watch(gw->srv, zsock_fd(gw->dealer), s_dealer_watch, gw) < 0)
        fatal("watch the coordinator socket");
    if (zloop_timer(dy_actor_loop(gw->actor), 1, 0, s_step, gw) < 0)
        fatal("zloop_timer");

    dy_actor_set_state(gw->actor, "ready");
    dy_actor_ready(gw->actor);
    log_info("listening on %s:%d", host, dy_rpc_server_port(gw->srv));
    int rc = dy_actor_run(gw->actor);

    /* The server first: its destroy runs the on_close of every call still open (the ones the
     * coordinator never answered when it stopped first: a drain that ran out its 10 s), and
     * s_on_close uses the call table and the dealer.  Destroying the table first made
     * s_on_close write to freed s_call_t's and, for a call not owed (an upload mid-stream),
     * zhashx_delete(NULL): SIGSEGV at exit, exit 139 in the supervisor's log when a duchy
     * was stopped mid-measurement.  tests/e2e/cluster.sh restart drains with an open call
     * every time (the use-after-free shows under ASan/valgrind; the crash needs the upload). */
    dy_rpc_server_destroy(&gw->srv);
    zhashx_destroy(&gw->calls);
    zsock_destroy(&gw->dealer);
    SSL_CTX_free(gw->ctx);
    dy_actor_destroy(&gw->actor);
    free(gw);
    return rc;
}
