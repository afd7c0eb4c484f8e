/* submitter.c - duchy-submitter: the aggregator's result, encrypted to the MC, signed, and
 * set at the Kingdom (docs/cluster.md, CRYPTO.md §9.3, PROTOCOL.md §3.4, §6.3).
 *
 * Peers:     claimers   -> ROUTER ipc://RUN/submitter.sock  StageEffects{SUBMIT_RESULT}
 *                          <- EffectsReply
 *            the Kingdom <- mutual TLS, Computations.SetComputationResult (blocking)
 * Steps:     1. read the "result" output (serialized Measurement.Result);
 *            2. if no "encrypted_result" is recorded for (computation, stage): ECIES to the
 *               spec's MC key, sign (kingdom_fx.c), write the blob and record it with
 *               dy_store_record_output BEFORE the first call: encryption is randomised, so a
 *               retry must resend the same bytes for the Kingdom's byte-identical replay rule;
 *            3. SetComputationResult{name, aggregator_certificate, result_public_key = the
 *               spec's serialized EncryptionPublicKey, encrypted_result, "v2alpha"}.
 * The record is fenced by the claim the claimer holds while it waits for us: the row's
 * current (version, lease_owner) as read here; if the row is no longer at this stage under
 * an owner, the claim is gone and the answer is TEMPFAIL (nothing written).
 * Outcomes as the participant's: transient codes retried 3 times then TEMPFAIL;
 * FAILED_PRECONDITION -> GetComputation: terminal -> OK-as-ended, else PERMFAIL.
 */
#include "actor.h"
#include "blob.h"
#include "duchy_state.h"
#include "details.h"
#include "kingdom_client.h"
#include "kingdom_fx.h"
#include "stages.h"
#include "store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "duchy.pb-c.h"
#include "public.pb-c.h"
#include "system.pb-c.h"

#define SYS(x) Wfa__Measurement__System__V1alpha__##x
#define SYSE(x) WFA__MEASUREMENT__SYSTEM__V1ALPHA__##x
#define SYSD(x) wfa__measurement__system__v1alpha__##x##__descriptor
#define AM(x) Halo__Internal__V1__##x
#define AME(x) HALO__INTERNAL__V1__##x
#define S_TRIES 3
#define S_SLOT "encrypted_result"

typedef struct {
    dy_actor_t *actor;            /* borrowed */
    const dy_duchy_config_t *cfg; /* borrowed */
    zsock_t *router;              /* owned */
    dy_store_t *store;            /* owned */
    dy_blobdir_t *blobs;          /* owned */
    dy_kc_t *kingdom;             /* owned */
    EVP_PKEY *sign_key;           /* owned */
} s_sub_t;

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

/* The spec's serialized measurement_public_key (EncryptionPublicKey) from the stored
 * Kingdom computation, appended to out. */
static int s_result_key(const uint8_t *details, size_t len, dy_buf_t *out)
{
    Halo__Internal__V1__ComputationDetails *cd =
        halo__internal__v1__computation_details__unpack(NULL, len, details);
    if (cd == NULL)
        return -EINVAL;
    int rc = -EINVAL;
    SYS(Computation) *k = wfa__measurement__system__v1alpha__computation__unpack(
        NULL, cd->kingdom_computation.len, cd->kingdom_computation.data);
    Wfa__Measurement__Api__V2alpha__MeasurementSpec *s =
        k ? wfa__measurement__api__v2alpha__measurement_spec__unpack(
                NULL, k->measurement_spec.len, k->measurement_spec.data)
          : NULL;
    if (s != NULL && s->measurement_public_key != NULL)
        rc = dy_buf_append(out, s->measurement_public_key->value.data,
                           s->measurement_public_key->value.len);
    if (s != NULL)
        wfa__measurement__api__v2alpha__measurement_spec__free_unpacked(s, NULL);
    if (k != NULL)
        wfa__measurement__system__v1alpha__computation__free_unpacked(k, NULL);
    halo__internal__v1__computation_details__free_unpacked(cd, NULL);
    return rc;
}

/* Step 2: the recorded ciphertext, sealing and recording it first if needed. */
static int s_encrypted(s_sub_t *sb, const AM(StageEffects) *fx, const dy_details_t *d,
                       dy_buf_t *out, s_result_t *r)
{
    dy_blob_rec_t rec;
    int rc = dy_store_get_blob(sb->store, fx->computation_id, fx->stage, S_SLOT, &rec);
    if (rc == 0) {
        if ((rc = dy_blob_read(&rec.blob, out)) < 0)
            s_set(r, DY_OUTCOME_TEMPFAIL, "blob_read", "recorded ciphertext unreadable (%d)", rc);
        return rc;
    }
    const AM(Blob) *b = NULL;
    for (size_t i = 0; i < fx->n_outputs; i++)
        if (fx->outputs[i]->slot && strcmp(fx->outputs[i]->slot, "result") == 0)
            b = fx->outputs[i];
    dy_blob_info_t info;
    memset(&info, 0, sizeof(info));
    if (b == NULL || b->path == NULL || strlen(b->path) >= sizeof(info.path) || b->sha256.len != 32) {
        s_set(r, DY_OUTCOME_PERMFAIL, "missing_output", "no \"result\" output");
        return -EINVAL;
    }
    snprintf(info.path, sizeof(info.path), "%s", b->path);
    info.size = b->size;
    memcpy(info.sha256, b->sha256.data, 32);
    dy_buf_t plain = {0}, sealed = {0};
    if ((rc = dy_blob_read(&info, &plain)) < 0) {
        s_set(r, DY_OUTCOME_TEMPFAIL, "blob_read", "result output unreadable (%d)", rc);
        return rc;
    }
    rc = dy_kf_result_seal(sb->sign_key, d->mc_public_key, d->name, sb->cfg->id, plain.data,
                           plain.len, &sealed);
    dy_buf_free(&plain);
    if (rc < 0) {
        s_set(r, DY_OUTCOME_PERMFAIL, "seal_failed", "cannot encrypt and sign (%d)", rc);
        return rc;
    }
    /* Borrow the claimer's live claim as the fence (header comment). */
    dy_computation_t row;
    memset(&row, 0, sizeof(row));
    rc = dy_store_get(sb->store, fx->computation_id, &row);
    dy_lease_t lease;
    memset(&lease, 0, sizeof(lease));
    if (rc < 0 || row.stage != fx->stage || row.lease_owner[0] == '\0') {
        dy_computation_clear(&row);
        dy_buf_free(&sealed);
        s_set(r, DY_OUTCOME_TEMPFAIL, "claim_lost", "the stage is no longer claimed");
        return -ESTALE;
    }
    snprintf(lease.computation, sizeof(lease.computation), "%s", row.id);
    snprintf(lease.owner, sizeof(lease.owner), "%s", row.lease_owner);
    lease.protocol = row.protocol;
    lease.role = row.role;
    lease.stage = row.stage;
    lease.attempt = fx->attempt > 0 ? fx->attempt : 1;
    lease.version = row.version;
    dy_computation_clear(&row);
    dy_blob_key_t key = {fx->computation_id, fx->stage, lease.attempt, S_SLOT};
    dy_blob_writer_t *w = NULL;
    dy_blob_info_t bi;
    if ((rc = dy_blob_open(sb->blobs, &key, &w)) == 0
        && (rc = dy_blob_write(w, sealed.data, sealed.len)) == 0)
        rc = dy_blob_commit(&w, &bi);
    dy_blob_abort(&w);
    if (rc == 0) {
        dy_store_output_t o = {S_SLOT, &bi};
        rc = dy_store_record_output(sb->store, &lease, &o);
    }
    if (rc == -EEXIST) { /* another submission recorded first: use that one */
        dy_buf_free(&sealed);
        if ((rc = dy_store_get_blob(sb->store, fx->computation_id, fx->stage, S_SLOT, &rec)) == 0)
            rc = dy_blob_read(&rec.blob, &sealed);
    }
    if (rc < 0) {
        dy_buf_free(&sealed);
        s_set(r, DY_OUTCOME_TEMPFAIL, rc == DY_STORE_E_STALE ? "claim_lost" : "record_failed",
              "cannot record the ciphertext (%d)", rc);
        return rc;
    }
    *out = sealed;
    return 0;
}

static void s_submit(s_sub_t *sb, const AM(StageEffects) *fx, s_result_t *r)
{
    dy_computation_t row;
    memset(&row, 0, sizeof(row));
    dy_details_t d;
    char err[256] = "";
    dy_buf_t keybytes = {0}, enc = {0};
    if (dy_store_get(sb->store, fx->computation_id, &row) < 0
        || dy_details_parse(row.details, row.details_len, sb->cfg->id, &d, err, sizeof(err)) < 0) {
        dy_computation_clear(&row);
        s_set(r, DY_OUTCOME_PERMFAIL, "bad_details", "stored details unusable: %s", err);
        return;
    }
    if (s_result_key(row.details, row.details_len, &keybytes) < 0) {
        s_set(r, DY_OUTCOME_PERMFAIL, "bad_details", "no measurement public key");
        goto out;
    }
    if (s_encrypted(sb, fx, &d, &enc, r) < 0)
        goto out;
    for (int try = 1;; try++) {
        SYS(SetComputationResultRequest) rq = SYSE(SET_COMPUTATION_RESULT_REQUEST__INIT);
        rq.name = d.name;
        rq.aggregator_certificate = sb->cfg->sign_certificate_name;
        rq.result_public_key.data = keybytes.data;
        rq.result_public_key.len = keybytes.len;
        rq.encrypted_result.data = enc.data;
        rq.encrypted_result.len = enc.len;
        rq.public_api_version = (char *)DY_KF_API_VERSION;
        ProtobufCMessage *resp = NULL;
        dy_rpc_status_t st;
        if (dy_kc_unary(sb->kingdom, DY_KC_SET_RESULT, &rq.base, &SYSD(computation), &resp, &st)
            == 0) {
            protobuf_c_message_free_unpacked(resp, NULL);
            s_set(r, DY_OUTCOME_OK, "", "result set");
            break;
        }
        dy_kf_class_t cl = dy_kf_classify(st.code);
        if (cl == DY_KF_RETRY && try < S_TRIES)
            continue;
        if (cl == DY_KF_RETRY) {
            s_set(r, DY_OUTCOME_TEMPFAIL, "kingdom_unavailable", "%d %s", st.code, st.message);
        } else if (cl == DY_KF_CHECK_ENDED) {
            SYS(GetComputationRequest) g = SYSE(GET_COMPUTATION_REQUEST__INIT);
            g.name = d.name;
            ProtobufCMessage *c = NULL;
            dy_rpc_status_t st2;
            if (dy_kc_unary(sb->kingdom, DY_KC_GET_COMPUTATION, &g.base, &SYSD(computation), &c,
                            &st2)
                < 0) {
                s_set(r, DY_OUTCOME_TEMPFAIL, "kingdom_unavailable", "GetComputation failed");
            } else {
                int state = (int)((SYS(Computation) *)c)->state;
                protobuf_c_message_free_unpacked(c, NULL);
                /* Terminal: the computation ended at the Kingdom (e.g. cancelled, or an
                 * earlier identical submission succeeded): OK-as-ended. */
                if (dy_kf_state_terminal(state))
                    s_set(r, DY_OUTCOME_OK, "computation_ended", "computation is terminal (%d)",
                          state);
                else
                    s_set(r, DY_OUTCOME_PERMFAIL, "failed_precondition", "%s", st.message);
            }
        } else {
            s_set(r, DY_OUTCOME_PERMFAIL, "kingdom_refused", "%d %s", st.code, st.message);
        }
        break;
    }
out:
    dy_buf_free(&keybytes);
    dy_buf_free(&enc);
    dy_details_free(&d);
    dy_computation_clear(&row);
}

static int s_on_request(zloop_t *loop, zsock_t *sock, void *arg)
{
    s_sub_t *sb = arg;
    zframe_t *identity = NULL;
    AM(ActorMessage) *m = dy_actor_recv_msg(sock, &identity);
    if (m == NULL) {
        zframe_destroy(&identity);
        return 0;
    }
    s_result_t r;
    s_set(&r, DY_OUTCOME_PERMFAIL, "internal", "unknown request");
    dy_log_ctx_t ctx = {0};
    if (m->body_case == AME(ACTOR_MESSAGE__BODY_STAGE_EFFECTS) && m->stage_effects != NULL
        && m->stage_effects->kind == AME(STAGE_EFFECTS__KIND__SUBMIT_RESULT)
        && dy_blob_name_ok(m->stage_effects->computation_id)) {
        ctx.computation = m->stage_effects->computation_id;
        ctx.stage = m->stage_effects->stage_name;
        ctx.attempt = m->stage_effects->attempt;
        s_submit(sb, m->stage_effects, &r);
    } else {
        log_warnx("unexpected message kind %d from %s", (int)m->body_case,
                  m->sender ? m->sender : "?");
    }
    if (r.outcome == DY_OUTCOME_OK)
        log_info_c(&ctx, "result submitted: %s", r.message);
    else
        log_info_c(&ctx, "submission %s: %s: %s",
                   r.outcome == DY_OUTCOME_TEMPFAIL ? "TEMPFAIL" : "PERMFAIL", r.code, r.message);
    if (dy_actor_reply_effects(sock, identity, m->request_id, "submitter", r.outcome, r.code,
                               r.message) < 0)
        log_warnx("cannot answer request %s, ignoring", m->request_id);
    zframe_destroy(&identity);
    protobuf_c_message_free_unpacked(&m->base, NULL);
    return 0;
}

int main(int argc, char **argv)
{
    s_sub_t sb;
    memset(&sb, 0, sizeof(sb));
    dy_actor_ops_t ops = {.arg = &sb};
    sb.actor = dy_actor_new("submitter", argc, argv, &ops);
    sb.cfg = dy_actor_config(sb.actor);
    char err[512] = "";
    int rc = dy_duchy_store_open(sb.cfg, &sb.store, err, sizeof(err));
    if (rc < 0)
        fatalx("%s", err);
    if ((sb.blobs = dy_duchy_blobs_open(sb.cfg, err, sizeof(err))) == NULL)
        fatalx("%s", err);
    if ((sb.sign_key = dy_kf_load_key(sb.cfg->sign_key)) == NULL)
        fatal_config("cannot read the signing key %s", sb.cfg->sign_key);
    if ((sb.kingdom = dy_kc_new(sb.cfg, err, sizeof(err))) == NULL)
        fatal_config("Kingdom client: %s", err);
    char ep[1100];
    dy_actor_endpoint(sb.actor, "submitter.sock", ep, sizeof(ep));
    sb.router = zsock_new(ZMQ_ROUTER);
    if (sb.router == NULL || zsock_bind(sb.router, "%s", ep) < 0)
        fatal("cannot bind %s", ep);
    zloop_reader(dy_actor_loop(sb.actor), sb.router, s_on_request, &sb);
    dy_actor_ready(sb.actor);
    rc = dy_actor_run(sb.actor);
    zloop_reader_end(dy_actor_loop(sb.actor), sb.router);
    zsock_destroy(&sb.router);
    dy_kc_destroy(&sb.kingdom);
    EVP_PKEY_free(sb.sign_key);
    dy_blobdir_destroy(&sb.blobs);
    dy_store_destroy(&sb.store);
    dy_actor_destroy(&sb.actor);
    return rc;
}
