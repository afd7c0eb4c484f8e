/* participant.c - duchy-participant: this duchy's participant calls at the Kingdom
 * (docs/cluster.md).
 *
 * Peers:     claimers     -> ROUTER ipc://RUN/participant.sock  StageEffects -> EffectsReply
 *            coordinator  -> same socket                          KingdomFulfill -> EffectsReply
 *            the Kingdom  <- mutual TLS (common/kingdom_client)   blocking unary calls
 * Effects:   SET_REQUISITION_PARAMS  GetComputationParticipant (skip if already set, §6.3),
 *                                    sign the key (CRYPTO.md §2.1 / §8.7),
 *                                    SetParticipantRequisitionParams
 *            CONFIRM                 GetComputationParticipant (READY: done), GetComputation,
 *                                    §5.1 stage 3 checks (kingdom_fx), Confirm...
 *            FAIL                    FailComputationParticipant{error_message, stage_attempt}
 *            LOG                     CreateComputationLogEntry (TRANSIENT)
 *            KingdomFulfill          Requisitions.FulfillRequisition
 * Outcomes (PROTOCOL.md §6.2, §7.1): UNAVAILABLE, DEADLINE_EXCEEDED, ABORTED (and CANCELLED,
 * RESOURCE_EXHAUSTED) are retried up to 3 times, each after a fresh GetComputationParticipant,
 * then TEMPFAIL; FAILED_PRECONDITION -> GetComputation: terminal -> OK (the computation has
 * ended at the Kingdom; the herald ends it locally), else PERMFAIL; anything else PERMFAIL.
 *
 * Calls block with the config's deadline: this actor serves nothing else, so a slow Kingdom
 * delays nobody (docs/cluster.md).  Certificates for CONFIRM: the Kingdom's
 * duchy_certificate_der (filled on reads), else Certificates.GetCertificate; either way
 * checked against tls.trusted_ca and tls.parties (kingdom_fx.c).
 * No state machine: each request is handled to its end before the next is read.
 */
#include "actor.h"
#include "blob.h"
#include "duchy_state.h"
#include "kingdom_client.h"
#include "kingdom_fx.h"
#include "mc_util.h"
#include "secrets.h"
#include "stages.h"
#include "store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>

#include "duchy.pb-c.h"
#include "public.pb-c.h"
#include "system.pb-c.h"

#define SYS(x) Wfa__Measurement__System__V1alpha__##x
#define SYSE(x) WFA__MEASUREMENT__SYSTEM__V1ALPHA__##x
#define SYSD(x) wfa__measurement__system__v1alpha__##x##__descriptor
#define AM(x) Halo__Internal__V1__##x
#define AME(x) HALO__INTERNAL__V1__##x
#define KIND(x) AME(STAGE_EFFECTS__KIND__##x)
#define S_TRIES 3

typedef struct {
    dy_actor_t *actor;            /* borrowed */
    const dy_duchy_config_t *cfg; /* borrowed from actor */
    zsock_t *router;              /* owned */
    dy_store_t *store;            /* owned */
    dy_blobdir_t *blobs;          /* owned */
    dy_kc_t *kingdom;             /* owned */
    dy_mc_trust_t *trust;         /* owned */
    EVP_PKEY *sign_key;           /* owned */
    uint8_t master[32];           /* secret: wiped at exit */
} s_part_t;

typedef struct {
    dy_outcome_t outcome;
    char code[48];
    char message[256];
} s_result_t;

static void s_set(s_result_t *r, dy_outcome_t o, const char *code, const char *fmt, ...)
    DY_PRINTF(4, 5);
static void s_set(s_result_t *r, dy_outcome_t o, const char *code, const char *fmt, ...)
{
    r->outcome = o;
    snprintf(r->code, sizeof(r->code), "%s", code);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->message, sizeof(r->message), fmt, ap);
    va_end(ap);
}

static Google__Protobuf__Timestamp s_now_ts(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    Google__Protobuf__Timestamp t = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
    t.seconds = tv.tv_sec;
    t.nanos = (int32_t)tv.tv_usec * 1000;
    return t;
}

/* GetComputation: the computation's Kingdom state, or -1 if it could not be read. */
static int s_kingdom_state(s_part_t *p, const char *name, ProtobufCMessage **ret_comp)
{
    SYS(GetComputationRequest) rq = SYSE(GET_COMPUTATION_REQUEST__INIT);
    rq.name = (char *)name;
    ProtobufCMessage *resp = NULL;
    dy_rpc_status_t st;
    if (dy_kc_unary(p->kingdom, DY_KC_GET_COMPUTATION, &rq.base, &SYSD(computation), &resp, &st)
        < 0)
        return -1;
    int state = (int)((SYS(Computation) *)resp)->state;
    if (ret_comp != NULL)
        *ret_comp = resp;
    else
        protobuf_c_message_free_unpacked(resp, NULL);
    return state;
}

/* Maps a failed call's status to the outcome (header comment).  Returns true when the
 * caller should retry (RETRY class, tries left). */
static bool s_classify(s_part_t *p, const char *name, const char *what,
                       const dy_rpc_status_t *st, int try, s_result_t *r)
{
    switch (dy_kf_classify(st->code)) {
    case DY_KF_OK:
        s_set(r, DY_OUTCOME_OK, "", "%s", "");
        return false;
    case DY_KF_RETRY:
        if (try < S_TRIES)
            return true;
        s_set(r, DY_OUTCOME_TEMPFAIL, "kingdom_unavailable", "%s: %d %s", what, st->code,
              st->message);
        return false;
    case DY_KF_CHECK_ENDED: {
        int state = s_kingdom_state(p, name, NULL);
        if (state >= 0 && dy_kf_state_terminal(state)) {
            /* The computation ended at the Kingdom: nothing left to do for this effect.
             * Answered OK-as-ended; the herald ends it locally from the stream. */
            s_set(r, DY_OUTCOME_OK, "computation_ended", "%s: computation is terminal (%d)",
                  what, state);
            return false;
        }
        if (state < 0) {
            s_set(r, DY_OUTCOME_TEMPFAIL, "kingdom_unavailable",
                  "%s: FAILED_PRECONDITION and GetComputation failed", what);
            return false;
        }
        s_set(r, DY_OUTCOME_PERMFAIL, "failed_precondition", "%s: %s", what, st->message);
        return false;
    }
    default:
        s_set(r, DY_OUTCOME_PERMFAIL, "kingdom_refused", "%s: %d %s", what, st->code,
              st->message);
        return false;
    }
}

/* GetComputationParticipant: 0 with *ret (caller frees), or -1 with st. */
static int s_get_participant(s_part_t *p, const char *pname, SYS(ComputationParticipant) **ret,
                             dy_rpc_status_t *st)
{
    SYS(GetComputationParticipantRequest) rq = SYSE(GET_COMPUTATION_PARTICIPANT_REQUEST__INIT);
    rq.name = (char *)pname;
    return dy_kc_unary(p->kingdom, DY_KC_GET_PARTICIPANT, &rq.base,
                       &SYSD(computation_participant), (ProtobufCMessage **)ret, st);
}

static const AM(Blob) *s_output(const AM(StageEffects) *fx, const char *slot)
{
    for (size_t i = 0; i < fx->n_outputs; i++)
        if (fx->outputs[i]->slot && strcmp(fx->outputs[i]->slot, slot) == 0)
            return fx->outputs[i];
    return NULL;
}

static int s_read_blob(const AM(Blob) *b, dy_buf_t *out)
{
    dy_blob_info_t info;
    memset(&info, 0, sizeof(info));
    if (b->path == NULL || strlen(b->path) >= sizeof(info.path) || b->sha256.len != 32)
        return -EINVAL;
    snprintf(info.path, sizeof(info.path), "%s", b->path);
    info.size = b->size;
    memcpy(info.sha256, b->sha256.data, 32);
    return dy_blob_read(&info, out);
}

/* The public key this duchy publishes: LLv2 the "public_key" output, HMSS NAs the ECIES key
 * of the sealed secrets, HMSS aggregator none (*ret_has false). */
static int s_my_public_key(s_part_t *p, const AM(StageEffects) *fx, uint8_t pub[33],
                           bool *ret_has, s_result_t *r)
{
    *ret_has = false;
    dy_buf_t buf = {0};
    int rc;
    if (fx->protocol != AME(PROTOCOL__HONEST_MAJORITY_SHARE_SHUFFLE)) {
        const AM(Blob) *b = s_output(fx, "public_key");
        if (b == NULL || (rc = s_read_blob(b, &buf)) < 0 || buf.len != 33) {
            dy_buf_free(&buf);
            s_set(r, DY_OUTCOME_PERMFAIL, "missing_output", "no 33-byte public_key output");
            return -EINVAL;
        }
        memcpy(pub, buf.data, 33);
        *ret_has = true;
        dy_buf_free(&buf);
        return 0;
    }
    if (fx->role == AME(ROLE__AGGREGATOR))
        return 0;
    dy_blob_rec_t rec;
    dy_buf_t pt = {0};
    rc = dy_store_get_blob(p->store, fx->computation_id, dy_stage_initial(DY_PROTO_HMSS),
                           DY_KF_SECRETS_SLOT, &rec);
    if (rc == 0)
        rc = dy_blob_read(&rec.blob, &buf);
    if (rc == 0)
        rc = dy_secrets_open(p->master, fx->computation_id, buf.data, buf.len, &pt);
    AM(Secrets) *s = rc == 0 ? halo__internal__v1__secrets__unpack(NULL, pt.len, pt.data) : NULL;
    if (s == NULL || s->hmss_enc_public.len != 33) {
        s_set(r, rc == -EIO || rc == -EBUSY ? DY_OUTCOME_TEMPFAIL : DY_OUTCOME_PERMFAIL,
              "secrets_unavailable", "the sealed HMSS secrets cannot be read (%d)", rc);
        rc = -EINVAL;
    } else {
        memcpy(pub, s->hmss_enc_public.data, 33);
        *ret_has = true;
        rc = 0;
    }
    if (s != NULL)
        halo__internal__v1__secrets__free_unpacked(s, NULL);
    dy_buf_free(&buf);
    dy_buf_free(&pt);
    return rc;
}

static void s_set_params(s_part_t *p, const AM(StageEffects) *fx, s_result_t *r)
{
    char name[128], pname[256];
    snprintf(name, sizeof(name), "computations/%s", fx->computation_id);
    snprintf(pname, sizeof(pname), "%s/participants/%s", name, p->cfg->id);
    uint8_t pub[33];
    bool has = false;
    if (s_my_public_key(p, fx, pub, &has, r) < 0)
        return;
    dy_buf_t params = {0};
    if (dy_kf_requisition_params((int)fx->protocol, p->cfg->sign_certificate_name, name,
                                 has ? pub : NULL, p->sign_key, &params)
        < 0) {
        s_set(r, DY_OUTCOME_PERMFAIL, "sign_failed", "cannot build the requisition params");
        return;
    }
    SYS(ComputationParticipant__RequisitionParams) *rp =
        (void *)protobuf_c_message_unpack(&SYSD(computation_participant__requisition_params), NULL,
                                          params.len, params.data);
    dy_buf_free(&params);
    for (int try = 1;; try++) {
        dy_rpc_status_t st;
        SYS(ComputationParticipant) *cp = NULL;
        if (s_get_participant(p, pname, &cp, &st) < 0) {
            if (s_classify(p, name, "GetComputationParticipant", &st, try, r))
                continue;
            break;
        }
        if (cp->state != SYSE(COMPUTATION_PARTICIPANT__STATE__CREATED)) {
            /* §6.3: already set (or further): skip, as the reference's caller does. */
            s_set(r, DY_OUTCOME_OK, "", "already set (participant state %d)", (int)cp->state);
            protobuf_c_message_free_unpacked(&cp->base, NULL);
            break;
        }
        SYS(SetParticipantRequisitionParamsRequest) rq =
            SYSE(SET_PARTICIPANT_REQUISITION_PARAMS_REQUEST__INIT);
        rq.name = pname;
        rq.requisition_params = rp;
        rq.etag = cp->etag;
        ProtobufCMessage *resp = NULL;
        int rc = dy_kc_unary(p->kingdom, DY_KC_SET_PARAMS, &rq.base,
                             &SYSD(computation_participant), &resp, &st);
        protobuf_c_message_free_unpacked(&cp->base, NULL);
        if (rc == 0) {
            protobuf_c_message_free_unpacked(resp, NULL);
            s_set(r, DY_OUTCOME_OK, "", "requisition params set");
            break;
        }
        if (!s_classify(p, name, "SetParticipantRequisitionParams", &st, try, r))
            break;
    }
    protobuf_c_message_free_unpacked(&rp->base, NULL);
}

typedef struct {
    s_part_t *p;
    const char *computation;
} s_confirm_arg_t;

static int s_has_data_cb(const dy_requisition_t *req, void *arg)
{
    const char *want = arg;
    return strcmp(req->id, want) == 0 && req->fulfilled ? 1 : 0;
}

static bool s_has_data(const char *requisition_id, void *arg)
{
    s_confirm_arg_t *a = arg;
    return dy_store_list_requisitions(a->p->store, a->computation, s_has_data_cb,
                                      (void *)requisition_id)
           == 1;
}

static int s_fetch_cert(const char *cert_name, dy_buf_t *ret_der, void *arg)
{
    s_confirm_arg_t *a = arg;
    Wfa__Measurement__Api__V2alpha__GetCertificateRequest rq =
        WFA__MEASUREMENT__API__V2ALPHA__GET_CERTIFICATE_REQUEST__INIT;
    rq.name = (char *)cert_name;
    ProtobufCMessage *resp = NULL;
    dy_rpc_status_t st;
    if (dy_kc_unary(a->p->kingdom, DY_KC_GET_CERT, &rq.base,
                    &wfa__measurement__api__v2alpha__certificate__descriptor, &resp, &st)
        < 0)
        return -ENOENT;
    Wfa__Measurement__Api__V2alpha__Certificate *c = (void *)resp;
    int rc = dy_buf_append(ret_der, c->x509_der.data, c->x509_der.len);
    protobuf_c_message_free_unpacked(resp, NULL);
    return rc;
}

static void s_confirm(s_part_t *p, const AM(StageEffects) *fx, s_result_t *r)
{
    char name[128], pname[256];
    snprintf(name, sizeof(name), "computations/%s", fx->computation_id);
    snprintf(pname, sizeof(pname), "%s/participants/%s", name, p->cfg->id);
    dy_computation_t row;
    memset(&row, 0, sizeof(row));
    dy_details_t d;
    char err[256] = "";
    if (dy_store_get(p->store, fx->computation_id, &row) < 0
        || dy_details_parse(row.details, row.details_len, p->cfg->id, &d, err, sizeof(err)) < 0) {
        dy_computation_clear(&row);
        s_set(r, DY_OUTCOME_PERMFAIL, "bad_details", "stored details unusable: %s", err);
        return;
    }
    dy_computation_clear(&row);
    for (int try = 1;; try++) {
        dy_rpc_status_t st;
        SYS(ComputationParticipant) *cp = NULL;
        if (s_get_participant(p, pname, &cp, &st) < 0) {
            if (s_classify(p, name, "GetComputationParticipant", &st, try, r))
                continue;
            break;
        }
        if (cp->state == SYSE(COMPUTATION_PARTICIPANT__STATE__READY)) {
            protobuf_c_message_free_unpacked(&cp->base, NULL);
            s_set(r, DY_OUTCOME_OK, "", "already confirmed");
            break;
        }
        ProtobufCMessage *comp = NULL;
        if (s_kingdom_state(p, name, &comp) < 0) {
            protobuf_c_message_free_unpacked(&cp->base, NULL);
            if (try < S_TRIES)
                continue;
            s_set(r, DY_OUTCOME_TEMPFAIL, "kingdom_unavailable", "GetComputation failed");
            break;
        }
        size_t n = protobuf_c_message_get_packed_size(comp);
        uint8_t *bytes = malloc(n + 1);
        if (bytes == NULL)
            fatalx("%s: out of memory", __func__);
        protobuf_c_message_pack(comp, bytes);
        protobuf_c_message_free_unpacked(comp, NULL);
        s_confirm_arg_t a = {p, fx->computation_id};
        char code[48];
        int rc = dy_kf_confirm_check(&d, bytes, n, p->trust, s_has_data, s_fetch_cert, &a, code,
                                     err, sizeof(err));
        free(bytes);
        if (rc < 0) {
            protobuf_c_message_free_unpacked(&cp->base, NULL);
            s_set(r, DY_OUTCOME_PERMFAIL, code[0] ? code : "confirm_check", "%s", err);
            break;
        }
        SYS(ConfirmComputationParticipantRequest) rq =
            SYSE(CONFIRM_COMPUTATION_PARTICIPANT_REQUEST__INIT);
        rq.name = pname;
        rq.etag = cp->etag;
        ProtobufCMessage *resp = NULL;
        rc = dy_kc_unary(p->kingdom, DY_KC_CONFIRM, &rq.base, &SYSD(computation_participant),
                         &resp, &st);
        protobuf_c_message_free_unpacked(&cp->base, NULL);
        if (rc == 0) {
            protobuf_c_message_free_unpacked(resp, NULL);
            s_set(r, DY_OUTCOME_OK, "", "confirmed");
            break;
        }
        if (!s_classify(p, name, "ConfirmComputationParticipant", &st, try, r))
            break;
    }
    dy_details_free(&d);
}

/* FAIL and LOG: one call each, retried without re-reading (both are idempotent enough:
 * Fail on FAILED is OK, log entries are append-only). */
static void s_fail_or_log(s_part_t *p, const AM(StageEffects) *fx, bool fail, s_result_t *r)
{
    char name[128], pname[256], msg[1200];
    snprintf(name, sizeof(name), "computations/%s", fx->computation_id);
    snprintf(pname, sizeof(pname), "%s/participants/%s", name, p->cfg->id);
    snprintf(msg, sizeof(msg), "%s%s%s", fx->error_code ? fx->error_code : "",
             fx->error_code && fx->error_code[0] ? ": " : "",
             fx->error_message ? fx->error_message : "");
    Google__Protobuf__Timestamp now = s_now_ts();
    SYS(StageAttempt) sa = SYSE(STAGE_ATTEMPT__INIT);
    sa.stage = fx->stage;
    sa.stage_name = fx->stage_name;
    sa.attempt_number = fx->attempt;
    for (int try = 1;; try++) {
        dy_rpc_status_t st;
        ProtobufCMessage *resp = NULL;
        int rc;
        if (fail) {
            SYS(ComputationParticipant__Failure) f = SYSE(COMPUTATION_PARTICIPANT__FAILURE__INIT);
            f.error_message = msg;
            f.error_time = &now;
            f.stage_attempt = &sa;
            SYS(FailComputationParticipantRequest) rq =
                SYSE(FAIL_COMPUTATION_PARTICIPANT_REQUEST__INIT);
            rq.name = pname;
            rq.failure = &f;
            rc = dy_kc_unary(p->kingdom, DY_KC_FAIL, &rq.base, &SYSD(computation_participant),
                             &resp, &st);
        } else {
            SYS(ComputationLogEntry__ErrorDetails) ed =
                SYSE(COMPUTATION_LOG_ENTRY__ERROR_DETAILS__INIT);
            ed.type = SYSE(COMPUTATION_LOG_ENTRY__ERROR_DETAILS__TYPE__TRANSIENT);
            ed.error_time = &now;
            SYS(ComputationLogEntry) e = SYSE(COMPUTATION_LOG_ENTRY__INIT);
            e.log_message = msg;
            e.stage_attempt = &sa;
            e.error_details = &ed;
            SYS(CreateComputationLogEntryRequest) rq =
                SYSE(CREATE_COMPUTATION_LOG_ENTRY_REQUEST__INIT);
            rq.parent = pname;
            rq.computation_log_entry = &e;
            rc = dy_kc_unary(p->kingdom, DY_KC_LOG, &rq.base, &SYSD(computation_log_entry), &resp,
                             &st);
        }
        if (rc == 0) {
            protobuf_c_message_free_unpacked(resp, NULL);
            s_set(r, DY_OUTCOME_OK, "", "%s", fail ? "failed at the Kingdom" : "logged");
            return;
        }
        if (!s_classify(p, name, fail ? "FailComputationParticipant" : "CreateComputationLogEntry",
                        &st, try, r))
            return;
    }
}

static void s_fulfill(s_part_t *p, const AM(KingdomFulfill) *kf, s_result_t *r)
{
    char comp[128] = "";
    const char *q = kf->requisition ? strstr(kf->requisition, "/requisitions/") : NULL;
    if (q != NULL && (size_t)(q - kf->requisition) < sizeof(comp))
        memcpy(comp, kf->requisition, (size_t)(q - kf->requisition));
    for (int try = 1;; try++) {
        SYS(FulfillRequisitionRequest) rq = SYSE(FULFILL_REQUISITION_REQUEST__INIT);
        rq.name = kf->requisition;
        rq.nonce = kf->nonce;
        rq.etag = kf->etag;
        ProtobufCMessage *resp = NULL;
        dy_rpc_status_t st;
        if (dy_kc_unary(p->kingdom, DY_KC_FULFILL, &rq.base, &SYSD(requisition), &resp, &st)
            == 0) {
            protobuf_c_message_free_unpacked(resp, NULL);
            s_set(r, DY_OUTCOME_OK, "", "fulfilled at the Kingdom");
            return;
        }
        /* FAILED_PRECONDITION here is the Kingdom refusing (§3.8): pass it on as PERMFAIL
         * unless the computation ended. */
        if (!s_classify(p, comp, "FulfillRequisition", &st, try, r))
            return;
    }
}

static int s_on_request(zloop_t *loop, zsock_t *sock, void *arg)
{
    s_part_t *p = arg;
    zframe_t *identity = NULL;
    AM(ActorMessage) *m = dy_actor_recv_msg(sock, &identity);
    if (m == NULL) {
        zframe_destroy(&identity);
        return 0;
    }
    s_result_t r;
    s_set(&r, DY_OUTCOME_PERMFAIL, "internal", "unknown request");
    dy_log_ctx_t ctx = {0};
    if (m->body_case == AME(ACTOR_MESSAGE__BODY_STAGE_EFFECTS) && m->stage_effects != NULL) {
        const AM(StageEffects) *fx = m->stage_effects;
        ctx.computation = fx->computation_id;
        ctx.stage = fx->stage_name;
        ctx.attempt = fx->attempt;
        if (!dy_blob_name_ok(fx->computation_id)) {
            s_set(&r, DY_OUTCOME_PERMFAIL, "bad_request", "bad computation id");
        } else {
            switch (fx->kind) {
            case KIND(SET_REQUISITION_PARAMS):
                s_set_params(p, fx, &r);
                break;
            case KIND(CONFIRM):
                s_confirm(p, fx, &r);
                break;
            case KIND(FAIL):
                s_fail_or_log(p, fx, true, &r);
                break;
            case KIND(LOG):
                s_fail_or_log(p, fx, false, &r);
                break;
            default:
                log_warnx_c(&ctx, "unexpected effect kind %d", (int)fx->kind);
                break;
            }
        }
    } else if (m->body_case == AME(ACTOR_MESSAGE__BODY_KINGDOM_FULFILL) && m->kingdom_fulfill) {
        s_fulfill(p, m->kingdom_fulfill, &r);
    } else {
        log_warnx("unexpected message kind %d from %s", (int)m->body_case,
                  m->sender ? m->sender : "?");
    }
    if (r.outcome == DY_OUTCOME_OK)
        log_debug_c(&ctx, "effect done: %s", r.message);
    else
        log_info_c(&ctx, "effect %s: %s: %s",
                   r.outcome == DY_OUTCOME_TEMPFAIL ? "TEMPFAIL" : "PERMFAIL", r.code, r.message);
    dy_actor_count(p->actor, r.outcome == DY_OUTCOME_OK         ? "ok"
                             : r.outcome == DY_OUTCOME_TEMPFAIL ? "tempfail"
                                                                : "permfail",
                   1);
    if (dy_actor_reply_effects(sock, identity, m->request_id, "participant", r.outcome, r.code,
                               r.message) < 0)
        log_warnx("cannot answer request %s, ignoring", m->request_id);
    zframe_destroy(&identity);
    protobuf_c_message_free_unpacked(&m->base, NULL);
    return 0;
}

int main(int argc, char **argv)
{
    s_part_t p;
    memset(&p, 0, sizeof(p));
    dy_actor_ops_t ops = {.arg = &p};
    p.actor = dy_actor_new("participant", argc, argv, &ops);
    p.cfg = dy_actor_config(p.actor);
    char err[512] = "";
    int rc = dy_duchy_store_open(p.cfg, &p.store, err, sizeof(err));
    if (rc < 0)
        fatalx("%s", err);
    if ((p.blobs = dy_duchy_blobs_open(p.cfg, err, sizeof(err))) == NULL)
        fatalx("%s", err);
    if ((rc = dy_secrets_load_master(p.cfg->master_key_file, p.master)) < 0)
        fatal_config("cannot read the master key %s: %s", p.cfg->master_key_file, strerror(-rc));
    if ((p.sign_key = dy_kf_load_key(p.cfg->sign_key)) == NULL)
        fatal_config("cannot read the signing key %s", p.cfg->sign_key);
    if ((p.trust = dy_mc_trust_new(p.cfg->trusted_ca, p.cfg->parties, err, sizeof(err))) == NULL)
        fatal_config("trust anchors: %s", err);
    if ((p.kingdom = dy_kc_new(p.cfg, err, sizeof(err))) == NULL)
        fatal_config("Kingdom client: %s", err);
    char ep[1100];
    dy_actor_endpoint(p.actor, "participant.sock", ep, sizeof(ep));
    p.router = zsock_new(ZMQ_ROUTER);
    if (p.router == NULL || zsock_bind(p.router, "%s", ep) < 0)
        fatal("cannot bind %s", ep);
    zloop_reader(dy_actor_loop(p.actor), p.router, s_on_request, &p);
    dy_actor_ready(p.actor);
    rc = dy_actor_run(p.actor);
    zloop_reader_end(dy_actor_loop(p.actor), p.router);
    zsock_destroy(&p.router);
    dy_kc_destroy(&p.kingdom);
    dy_mc_trust_destroy(&p.trust);
    EVP_PKEY_free(p.sign_key);
    OPENSSL_cleanse(p.master, sizeof(p.master));
    dy_blobdir_destroy(&p.blobs);
    dy_store_destroy(&p.store);
    dy_actor_destroy(&p.actor);
    return rc;
}
