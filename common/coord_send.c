/* coord_send.c - one stage send to a peer duchy (PROTOCOL.md §6.2), as the
 * `duchy-coordinator --send` worker runs it: connect to the peer's gateway
 * over mutual TLS, ask GetComputationStage (send / skip / retry), upload the
 * recorded output with AdvanceComputation, and classify the outcome.
 */
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "blob.h"
#include "control.pb-c.h"
#include "coord_send.h"
#include "duchy.pb-c.h"
#include "log.h"
#include "rpc.h"
#include "spawn.h"
#include "stages.h"
#include "store.h"
#include "tls.h"
#include "wire.h"

static dy_outcome_t s_result(dy_outcome_t o, char code[48], char msg[256], const char *c,
                             const char *fmt, ...) DY_PRINTF(5, 6);
static dy_outcome_t s_result(dy_outcome_t o, char code[48], char msg[256], const char *c,
                             const char *fmt, ...)
{
    snprintf(code, 48, "%s", c);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, 256, fmt, ap);
    va_end(ap);
    return o;
}

int dy_coord_split_endpoint(const char *endpoint, char *host, size_t hostcap, int *ret_port)
{
    const char *colon = endpoint ? strrchr(endpoint, ':') : NULL;
    if (!colon || colon == endpoint || (size_t)(colon - endpoint) >= hostcap)
        return -EINVAL;
    char *end = NULL;
    long port = strtol(colon + 1, &end, 10);
    if (!end || *end || port <= 0 || port > 65535)
        return -EINVAL;
    const char *h = endpoint;
    size_t hl = (size_t)(colon - endpoint);
    if (h[0] == '[' && hl >= 2 && h[hl - 1] == ']') { /* [v6]:port */
        h++;
        hl -= 2;
    }
    memcpy(host, h, hl);
    host[hl] = '\0';
    *ret_port = (int)port;
    return 0;
}

static int s_peer_stage(const Wfa__Measurement__System__V1alpha__ComputationStage *cs)
{
    switch (cs->stage_case) {
    case WFA__MEASUREMENT__SYSTEM__V1ALPHA__COMPUTATION_STAGE__STAGE_LIQUID_LEGIONS_V2_STAGE:
        return cs->liquid_legions_v2_stage ? (int)cs->liquid_legions_v2_stage->stage : -1;
    case WFA__MEASUREMENT__SYSTEM__V1ALPHA__COMPUTATION_STAGE__STAGE_REACH_ONLY_LIQUID_LEGIONS_STAGE:
        return cs->reach_only_liquid_legions_stage ? (int)cs->reach_only_liquid_legions_stage->stage
                                                   : -1;
    case WFA__MEASUREMENT__SYSTEM__V1ALPHA__COMPUTATION_STAGE__STAGE_HONEST_MAJORITY_SHARE_SHUFFLE_STAGE:
        return cs->honest_majority_share_shuffle_stage
                   ? (int)cs->honest_majority_share_shuffle_stage->stage
                   : -1;
    default:
        return -1;
    }
}

/* Milliseconds left until end (a dy_now() time), at least 1. */
static int s_left_ms(double end)
{
    double left = (end - dy_now()) * 1000.0;
    return left < 1 ? 1 : left > INT32_MAX ? INT32_MAX : (int)left;
}

dy_outcome_t dy_coord_send_run(const dy_coord_send_job_t *job, char code[48], char msg[256])
{
    char host[256];
    int port = 0;
    if (dy_coord_split_endpoint(job->endpoint, host, sizeof(host), &port) < 0)
        return s_result(DY_OUTCOME_PERMFAIL, code, msg, "bad_endpoint", "peer endpoint %s",
                        job->endpoint ? job->endpoint : "");
    /* §6.2 rule 1: exactly the recorded bytes; a damaged blob is a local
     * storage fault, retried. */
    dy_blob_info_t info;
    memset(&info, 0, sizeof(info));
    snprintf(info.path, sizeof(info.path), "%s", job->body_path);
    info.size = job->body_size;
    memcpy(info.sha256, job->body_sha256, 32);
    int rc = dy_blob_verify(&info);
    if (rc < 0)
        return s_result(DY_OUTCOME_TEMPFAIL, code, msg, "output_unreadable",
                        "recorded output %s: %s", job->body_path, strerror(-rc));

    /* One deadline for the whole send (§2: the call's deadline): each call gets what is
     * left of timeout_ms, so the worker answers DEADLINE_EXCEEDED itself before the
     * coordinator's kill backstop. */
    double end = dy_now() + job->timeout_ms / 1000.0;
    dy_rpc_client_conf_t cc = {.ctx = job->ctx,
                               .host = host,
                               .port = port,
                               .connect_timeout_ms =
                                   job->timeout_ms < 10000 ? job->timeout_ms : 10000};
    char err[256] = "";
    dy_rpc_client_t *cl = dy_rpc_client_new(&cc, err, sizeof(err));
    if (!cl)
        return s_result(DY_OUTCOME_TEMPFAIL, code, msg, "peer_unavailable", "connect %s: %s",
                        job->endpoint, err);
    char expect[128];
    snprintf(expect, sizeof(expect), "duchies/%s", job->peer_id);
    dy_outcome_t out;
    if (strcmp(dy_rpc_client_peer(cl), expect) != 0) {
        out = s_result(DY_OUTCOME_PERMFAIL, code, msg, "wrong_peer", "%s answered as %s",
                       job->endpoint, dy_rpc_client_peer(cl));
        goto done;
    }

    /* §6.2 rule 2. */
    char name[256];
    snprintf(name, sizeof(name), "computations/%s/participants/%s/computationStage",
             job->computation, job->peer_id);
    Wfa__Measurement__System__V1alpha__GetComputationStageRequest gq =
        WFA__MEASUREMENT__SYSTEM__V1ALPHA__GET_COMPUTATION_STAGE_REQUEST__INIT;
    gq.name = name;
    ProtobufCMessage *resp = NULL;
    dy_rpc_status_t st;
    rc = dy_rpc_unary(cl, DY_COORD_M_GET_STAGE, &gq.base,
                      &wfa__measurement__system__v1alpha__computation_stage__descriptor, &resp,
                      s_left_ms(end), &st);
    int peer_stage = -1;
    if (rc == 0 && resp) {
        peer_stage =
            s_peer_stage((const Wfa__Measurement__System__V1alpha__ComputationStage *)resp);
        protobuf_c_message_free_unpacked(resp, NULL);
        resp = NULL;
    }
    switch (dy_coord_send_decide(rc == 0 ? 0 : st.code, peer_stage, job->awaited, job->complete)) {
    case DY_COORD_SKIP:
        out = s_result(DY_OUTCOME_OK, code, msg, "skipped", "peer past stage %d (at %d)",
                       job->awaited, peer_stage);
        goto done;
    case DY_COORD_RETRY:
        out = s_result(DY_OUTCOME_TEMPFAIL, code, msg, "peer_not_ready",
                       "peer stage %d, awaited %d (%s %s)", peer_stage, job->awaited,
                       rc == 0 ? "OK" : dy_wire_status_name(st.code), rc == 0 ? "" : st.message);
        goto done;
    case DY_COORD_SEND:
        break;
    }

    Wfa__Measurement__System__V1alpha__AdvanceComputationRequest *hdr =
        wfa__measurement__system__v1alpha__advance_computation_request__unpack(
            NULL, job->header_len, job->header);
    if (!hdr) {
        out = s_result(DY_OUTCOME_PERMFAIL, code, msg, "bad_header", "send header undecodable");
        goto done;
    }
    int fd = open(job->body_path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        wfa__measurement__system__v1alpha__advance_computation_request__free_unpacked(hdr, NULL);
        out = s_result(DY_OUTCOME_TEMPFAIL, code, msg, "output_unreadable", "open %s",
                       job->body_path);
        goto done;
    }
    dy_rpc_body_t body = {.data = NULL, .len = 0, .fd = fd, .chunk_size = 0};
    rc = dy_rpc_upload(cl, DY_COORD_M_ADVANCE, &hdr->base, &body,
                       &wfa__measurement__system__v1alpha__advance_computation_response__descriptor,
                       &resp, s_left_ms(end), &st);
    close(fd);
    wfa__measurement__system__v1alpha__advance_computation_request__free_unpacked(hdr, NULL);
    if (resp)
        protobuf_c_message_free_unpacked(resp, NULL);
    if (rc == 0) {
        out = s_result(DY_OUTCOME_OK, code, msg, "sent", "%" PRIu64 " bytes to %s", job->body_size,
                       job->peer_id);
        goto done;
    }
    bool terminal = false;
    if (st.code == DY_WIRE_STATUS_FAILED_PRECONDITION &&
        st.reason == DY_WIRE_REASON_COMPUTATION_ENDED && job->local_terminal)
        terminal = job->local_terminal(job->local_terminal_arg);
    out = dy_coord_send_classify(st.code, (int)st.reason, terminal);
    {
        char c[48];
        const char *rn = dy_wire_reason_name(st.reason);
        snprintf(c, sizeof(c), "%s", rn && rn[0] ? rn : dy_wire_status_name(st.code));
        for (char *p = c; *p; p++)
            if (*p >= 'A' && *p <= 'Z')
                *p = (char)(*p - 'A' + 'a');
        s_result(out, code, msg, c, "AdvanceComputation to %s: %s %s", job->peer_id,
                 dy_wire_status_name(st.code), st.message);
    }
done:
    dy_rpc_client_destroy(&cl);
    return out;
}

/* ---- the send worker (`--send`) ---------------------------------------------------------- */

typedef struct {
    const char *data_dir;
    const char *computation;
} s_term_arg_t;

/* §6.2 rule 3: the peer said COMPUTATION_ENDED; is ours terminal too? */
static bool s_local_terminal(void *arg)
{
    s_term_arg_t *t = arg;
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/duchy.db", t->data_dir);
    dy_store_config_t sc = {.path = path};
    dy_store_t *st = NULL;
    if (dy_store_open(&sc, &st) < 0)
        return false;
    dy_computation_t row;
    memset(&row, 0, sizeof(row));
    bool terminal = dy_store_get(st, t->computation, &row) == 0 && row.ending_reason != DY_END_NONE;
    dy_computation_clear(&row);
    dy_store_destroy(&st);
    return terminal;
}

static int s_send_result(dy_outcome_t o, const char *code, const char *msg)
{
    Halo__Internal__V1__EffectsReply er = HALO__INTERNAL__V1__EFFECTS_REPLY__INIT;
    er.outcome = o == DY_OUTCOME_OK         ? HALO__INTERNAL__V1__OUTCOME__OUTCOME_OK
                 : o == DY_OUTCOME_TEMPFAIL ? HALO__INTERNAL__V1__OUTCOME__OUTCOME_TEMPFAIL
                                            : HALO__INTERNAL__V1__OUTCOME__OUTCOME_PERMFAIL;
    er.code = (char *)code;
    er.message = (char *)msg;
    uint8_t buf[1024];
    size_t n = halo__internal__v1__effects_reply__get_packed_size(&er);
    if (n > sizeof(buf))
        return DY_EXIT_TEMPORARY;
    halo__internal__v1__effects_reply__pack(&er, buf);
    return dy_spawn_write_result(buf, n) == 0 ? DY_EXIT_OK : DY_EXIT_TEMPORARY;
}

int dy_coord_send_worker_main(void)
{
    char err[512];
    dy_buf_t jb = {0};
    Halo__Internal__V1__SendJob *job = NULL;
    int rc = dy_spawn_read_job(&jb, 1u << 20);
    if (rc == 0)
        job = halo__internal__v1__send_job__unpack(NULL, jb.len, jb.data);
    dy_buf_free(&jb);
    const Halo__Internal__V1__SendConfig *cfg = job ? job->config : NULL;
    if (!job || !job->body || !job->body->path || job->body->sha256.len != 32 || !cfg ||
        !cfg->duchy_id[0] || !cfg->data_dir[0] || !cfg->parties[0]) {
        /* No log line: without the job's config the duchy id is unknown, so the reason
         * goes to the coordinator, which logs it with duchy, computation and stage. */
        if (job)
            halo__internal__v1__send_job__free_unpacked(job, NULL);
        return s_send_result(DY_OUTCOME_PERMFAIL, "bad_job", "undecodable SendJob");
    }
    dy_log_init("coordinator-send", cfg->duchy_id, cfg->verbose);
    dy_coord_advance_hdr_t h;
    dy_coord_reply_t r = {0};
    int ret;
    if (dy_coord_decode_advance(job->header_request.data, job->header_request.len, &h, &r) < 0) {
        ret = s_send_result(DY_OUTCOME_PERMFAIL, "bad_header", r.message);
        goto out;
    }
    dy_parties_t *parties = dy_parties_load(cfg->parties, err, sizeof(err));
    dy_tls_conf_t tc = {.cert_path = cfg->tls_cert,
                        .key_path = cfg->tls_key,
                        .trusted_ca_path = cfg->trusted_ca,
                        .parties = parties,
                        .expected_name = job->server_name};
    SSL_CTX *ctx = parties ? dy_tls_client_ctx(&tc, err, sizeof(err)) : NULL;
    dy_parties_destroy(&parties);
    if (!ctx) {
        ret = s_send_result(DY_OUTCOME_PERMFAIL, "bad_tls_config", err);
        goto out;
    }
    s_term_arg_t ta = {.data_dir = cfg->data_dir, .computation = job->computation_id};
    /* the coordinator always sets the deadline (wall-clock ms); 10 min (the default) if
     * not */
    int64_t left = job->deadline_unix_ms ? (int64_t)job->deadline_unix_ms - dy_wall_ms() : 600000;
    dy_coord_send_job_t sj = {.ctx = ctx,
                              .computation = job->computation_id,
                              .peer_id = job->peer_id,
                              .endpoint = job->endpoint,
                              .header = job->header_request.data,
                              .header_len = job->header_request.len,
                              .body_path = job->body->path,
                              .body_size = job->body->size,
                              .awaited = job->awaited_stage,
                              .complete = dy_stage_complete(h.protocol),
                              .timeout_ms =
                                  left > 1000 ? (int)(left > INT32_MAX ? INT32_MAX : left) : 1000,
                              .local_terminal = s_local_terminal,
                              .local_terminal_arg = &ta};
    memcpy(sj.body_sha256, job->body->sha256.data, 32);
    char code[48], msg[256];
    dy_outcome_t o = dy_coord_send_run(&sj, code, msg);
    /* The stage being sent, as the coordinator named it (this worker is its own binary, so
     * it is set; dy_stage_name's "UNKNOWN" otherwise). */
    dy_log_ctx_t lc = {.computation = job->computation_id,
                       .stage = job->stage_name && job->stage_name[0] ? job->stage_name : "UNKNOWN",
                       .attempt = job->attempt};
    log_info_c(&lc, "send to %s: %s %s", job->peer_id, code, msg);
    SSL_CTX_free(ctx);
    ret = s_send_result(o, code, msg);
out:
    dy_coord_reply_clear(&r);
    halo__internal__v1__send_job__free_unpacked(job, NULL);
    return ret;
}
