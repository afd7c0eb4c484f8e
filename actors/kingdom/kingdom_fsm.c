/* kingdom_fsm.c - the Kingdom's computation state machine (PROTOCOL.md §4, §6.3): the action
 * table s_actions[state][trigger] and its actions.  See kingdom_fsm.h for the table drawn out,
 * the sub-state machines and the order of checks.  Pure: no I/O besides SHA-256.
 */
#include "kingdom_fsm.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

typedef dy_kd_fsm_result_t (*s_action_fn)(dy_kd_comp_t *comp, const dy_kd_event_t *ev,
                                          char *why, size_t whylen);

void dy_kd_comp_free(dy_kd_comp_t *comp)
{
    if (comp == NULL)
        return;
    dy_buf_free(&comp->spec);
    dy_buf_free(&comp->mpc_config);
    dy_buf_free(&comp->result_key);
    dy_buf_free(&comp->result);
    free(comp->aggregator_cert);
    free(comp->api_version);
    free(comp->failure_message);
    for (size_t i = 0; i < comp->nparts; i++) {
        dy_buf_free(&comp->parts[i].params);
        dy_buf_free(&comp->parts[i].failure);
    }
    for (size_t i = 0; i < comp->nreqs; i++) {
        dy_buf_free(&comp->reqs[i].context);
        dy_buf_free(&comp->reqs[i].refusal);
    }
    free(comp->reqs);
    memset(comp, 0, sizeof(*comp));
}

int dy_kd_nonce_hash(uint64_t nonce, uint8_t out[DY_KD_HASH_LEN])
{
    uint8_t be[8];
    for (int i = 0; i < 8; i++)
        be[i] = (uint8_t)(nonce >> (56 - 8 * i));
    unsigned int n = 0;
    return EVP_Digest(be, sizeof(be), out, &n, EVP_sha256(), NULL) == 1 && n == DY_KD_HASH_LEN
               ? 0
               : -EIO;
}

bool dy_kd_comp_terminal(dy_kd_comp_state_t s)
{
    return s == DY_KD_COMP_SUCCEEDED || s == DY_KD_COMP_FAILED || s == DY_KD_COMP_CANCELLED;
}

bool dy_kd_comp_streamed(dy_kd_comp_state_t s)
{
    return s > DY_KD_COMP_NONE && s < _DY_KD_COMP_MAX &&
           s != DY_KD_COMP_PENDING_REQUISITION_FULFILLMENT;
}

int dy_kd_measurement_state(dy_kd_comp_state_t s)
{
    switch (s) {
    case DY_KD_COMP_PENDING_REQUISITION_PARAMS:
    case DY_KD_COMP_PENDING_REQUISITION_FULFILLMENT:
        return 1;
    case DY_KD_COMP_PENDING_PARTICIPANT_CONFIRMATION:
    case DY_KD_COMP_PENDING_COMPUTATION:
        return 2;
    case DY_KD_COMP_SUCCEEDED:
        return 3;
    case DY_KD_COMP_FAILED:
        return 4;
    case DY_KD_COMP_CANCELLED:
        return 5;
    default:
        return 0;
    }
}

const char *dy_kd_comp_state_name(dy_kd_comp_state_t s)
{
    static const char *const names[_DY_KD_COMP_MAX] = {
        "NONE", "PENDING_REQUISITION_PARAMS", "PENDING_REQUISITION_FULFILLMENT",
        "PENDING_PARTICIPANT_CONFIRMATION", "PENDING_COMPUTATION", "SUCCEEDED", "FAILED",
        "CANCELLED",
    };
    return (int)s >= 0 && s < _DY_KD_COMP_MAX ? names[s] : "?";
}

const char *dy_kd_trigger_name(dy_kd_trigger_t t)
{
    static const char *const names[_DY_KD_EV_MAX] = {
        "CREATE", "SET_PARAMS", "FULFILL", "REFUSE", "CONFIRM",
        "SET_RESULT", "FAIL", "CANCEL", "EXPIRE",
    };
    return (int)t >= 0 && t < _DY_KD_EV_MAX ? names[t] : "?";
}

static void s_why(char *why, size_t whylen, const char *fmt, ...) DY_PRINTF(3, 4);
static void s_why(char *why, size_t whylen, const char *fmt, ...)
{
    if (why == NULL || whylen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, whylen, fmt, ap);
    va_end(ap);
}

/* Copies len bytes into buf (replacing its contents).  0 or -ENOMEM. */
static int s_set_buf(dy_buf_t *buf, const uint8_t *data, size_t len)
{
    buf->len = 0;
    return len == 0 ? 0 : dy_buf_append(buf, data, len);
}

static bool s_buf_eq(const dy_buf_t *buf, const uint8_t *data, size_t len)
{
    return buf->len == len && (len == 0 || memcmp(buf->data, data, len) == 0);
}

/* True if etag is empty or names version. */
static bool s_etag_ok(const char *etag, int64_t version)
{
    if (etag == NULL || etag[0] == '\0')
        return true;
    char cur[24];
    snprintf(cur, sizeof(cur), "%" PRId64, version);
    return strcmp(cur, etag) == 0;
}

/* The etag check of the actions that change a row: true (with why) if the event's etag is
 * given and does not name version, i.e. the caller read the row before another change. */
static bool s_stale(const dy_kd_event_t *ev, int64_t version, char *why, size_t whylen)
{
    if (s_etag_ok(ev->etag, version))
        return false;
    s_why(why, whylen, "etag %s is stale", ev->etag);
    return true;
}

static bool s_part_ok(const dy_kd_comp_t *comp, const dy_kd_event_t *ev)
{
    return ev->part >= 0 && (size_t)ev->part < comp->nparts;
}

static bool s_req_ok(const dy_kd_comp_t *comp, const dy_kd_event_t *ev)
{
    return ev->req >= 0 && (size_t)ev->req < comp->nreqs;
}

/* Open requisitions (PENDING_PARAMS, UNFULFILLED) -> WITHDRAWN. */
static void s_withdraw_open(dy_kd_comp_t *comp)
{
    for (size_t i = 0; i < comp->nreqs; i++) {
        dy_kd_req_t *r = &comp->reqs[i];
        if (r->state == DY_KD_REQ_PENDING_PARAMS || r->state == DY_KD_REQ_UNFULFILLED) {
            r->state = DY_KD_REQ_WITHDRAWN;
            r->dirty = true;
        }
    }
}

/* Records the measurement failure (message copied; allocation failure leaves it NULL). */
static void s_set_failure(dy_kd_comp_t *comp, dy_kd_failure_t reason, const char *message)
{
    comp->failure_reason = reason;
    free(comp->failure_message);
    comp->failure_message = strdup(message != NULL ? message : "");
}

static void s_move(dy_kd_comp_t *comp, dy_kd_comp_state_t to)
{
    comp->state = to;
    comp->dirty = true;
}

/* The computation fails (REFUSE, FAIL): open requisitions are withdrawn, the measurement
 * failure recorded and the state moves to FAILED. */
static void s_fail_computation(dy_kd_comp_t *comp, dy_kd_failure_t reason, const char *message)
{
    s_withdraw_open(comp);
    s_set_failure(comp, reason, message);
    s_move(comp, DY_KD_COMP_FAILED);
}

/* ---- actions --------------------------------------------------------------------------- */

static dy_kd_fsm_result_t s_invalid(dy_kd_comp_t *comp, const dy_kd_event_t *ev, char *why,
                                    size_t whylen)
{
    s_why(why, whylen, "%s not allowed in state %s", dy_kd_trigger_name(ev->trigger),
          dy_kd_comp_state_name(comp->state));
    return DY_KD_FSM_INVALID;
}

static dy_kd_fsm_result_t s_noop(dy_kd_comp_t *comp, const dy_kd_event_t *ev, char *why,
                                 size_t whylen)
{
    s_why(why, whylen, "already %s", dy_kd_comp_state_name(comp->state));
    return DY_KD_FSM_REPLAY;
}

static dy_kd_fsm_result_t s_create(dy_kd_comp_t *comp, const dy_kd_event_t *ev, char *why,
                                   size_t whylen)
{
    s_move(comp, DY_KD_COMP_PENDING_REQUISITION_PARAMS);
    for (size_t i = 0; i < comp->nparts; i++)
        comp->parts[i].dirty = true;
    for (size_t i = 0; i < comp->nreqs; i++)
        comp->reqs[i].dirty = true;
    return DY_KD_FSM_CHANGED;
}

/* SET_PARAMS replay: the stored params are byte-identical. */
static bool s_params_replay(const dy_kd_comp_t *comp, const dy_kd_event_t *ev)
{
    const dy_kd_part_t *p = &comp->parts[ev->part];
    return p->state != DY_KD_PART_CREATED && p->params.len > 0 &&
           s_buf_eq(&p->params, ev->data, ev->len);
}

static dy_kd_fsm_result_t s_params_rp(dy_kd_comp_t *comp, const dy_kd_event_t *ev, char *why,
                                      size_t whylen)
{
    if (s_params_replay(comp, ev))
        return DY_KD_FSM_REPLAY;
    return s_invalid(comp, ev, why, whylen);
}

static dy_kd_fsm_result_t s_params(dy_kd_comp_t *comp, const dy_kd_event_t *ev, char *why,
                                   size_t whylen)
{
    if (s_params_replay(comp, ev))
        return DY_KD_FSM_REPLAY;
    dy_kd_part_t *p = &comp->parts[ev->part];
    if (s_stale(ev, p->version, why, whylen))
        return DY_KD_FSM_STALE;
    if (p->state != DY_KD_PART_CREATED) {
        s_why(why, whylen, "participant %s already set its requisition params", p->duchy);
        return DY_KD_FSM_INVALID;
    }
    if (ev->len == 0 || s_set_buf(&p->params, ev->data, ev->len) < 0) {
        s_why(why, whylen, "no params");
        return DY_KD_FSM_BAD;
    }
    p->state = comp->protocol == DY_KD_PROTO_HMSS ? DY_KD_PART_READY
                                                   : DY_KD_PART_REQUISITION_PARAMS_SET;
    p->dirty = true;
    comp->dirty = true; /* a participant change moves the stream key too */
    for (size_t i = 0; i < comp->nparts; i++)
        if (comp->parts[i].state == DY_KD_PART_CREATED)
            return DY_KD_FSM_CHANGED;
    s_move(comp, DY_KD_COMP_PENDING_REQUISITION_FULFILLMENT);
    for (size_t i = 0; i < comp->nreqs; i++) {
        dy_kd_req_t *r = &comp->reqs[i];
        if (r->state == DY_KD_REQ_PENDING_PARAMS) {
            r->state = DY_KD_REQ_UNFULFILLED;
            r->visible = true;
            r->dirty = true;
        }
    }
    return DY_KD_FSM_CHANGED;
}

/* FULFILL replay: FULFILLED by the same duchy with the same nonce. */
static bool s_fulfill_replay(const dy_kd_comp_t *comp, const dy_kd_event_t *ev)
{
    const dy_kd_req_t *r = &comp->reqs[ev->req];
    return r->state == DY_KD_REQ_FULFILLED && r->fulfiller == ev->part && r->nonce == ev->nonce;
}

static dy_kd_fsm_result_t s_fulfill_rp(dy_kd_comp_t *comp, const dy_kd_event_t *ev, char *why,
                                       size_t whylen)
{
    if (s_fulfill_replay(comp, ev))
        return DY_KD_FSM_REPLAY;
    return s_invalid(comp, ev, why, whylen);
}

static dy_kd_fsm_result_t s_fulfill(dy_kd_comp_t *comp, const dy_kd_event_t *ev, char *why,
                                    size_t whylen)
{
    if (s_fulfill_replay(comp, ev))
        return DY_KD_FSM_REPLAY;
    dy_kd_req_t *r = &comp->reqs[ev->req];
    if (s_stale(ev, r->version, why, whylen))
        return DY_KD_FSM_STALE;
    if (r->state != DY_KD_REQ_UNFULFILLED) {
        s_why(why, whylen, "requisition is not UNFULFILLED");
        return DY_KD_FSM_INVALID;
    }
    uint8_t h[DY_KD_HASH_LEN];
    if (dy_kd_nonce_hash(ev->nonce, h) < 0 || memcmp(h, r->nonce_hash, sizeof(h)) != 0) {
        s_why(why, whylen, "SHA-256(nonce) does not match nonce_hash");
        return DY_KD_FSM_INVALID;
    }
    if (s_set_buf(&r->context, ev->data, ev->len) < 0) {
        s_why(why, whylen, "out of memory");
        return DY_KD_FSM_BAD;
    }
    r->state = DY_KD_REQ_FULFILLED;
    r->nonce = ev->nonce;
    r->fulfiller = ev->part;
    r->dirty = true;
    comp->dirty = true;
    for (size_t i = 0; i < comp->nreqs; i++)
        if (comp->reqs[i].state != DY_KD_REQ_FULFILLED)
            return DY_KD_FSM_CHANGED;
    s_move(comp, comp->protocol == DY_KD_PROTO_HMSS ? DY_KD_COMP_PENDING_COMPUTATION
                                                     : DY_KD_COMP_PENDING_PARTICIPANT_CONFIRMATION);
    return DY_KD_FSM_CHANGED;
}

static dy_kd_fsm_result_t s_refuse(dy_kd_comp_t *comp, const dy_kd_event_t *ev, char *why,
                                   size_t whylen)
{
    dy_kd_req_t *r = &comp->reqs[ev->req];
    if (s_stale(ev, r->version, why, whylen))
        return DY_KD_FSM_STALE;
    if (r->state != DY_KD_REQ_UNFULFILLED) {
        s_why(why, whylen, "requisition is not UNFULFILLED");
        return DY_KD_FSM_INVALID;
    }
    if (s_set_buf(&r->refusal, ev->data, ev->len) < 0) {
        s_why(why, whylen, "out of memory");
        return DY_KD_FSM_BAD;
    }
    r->state = DY_KD_REQ_REFUSED;
    r->dirty = true;
    s_fail_computation(comp, DY_KD_FAILURE_REQUISITION_REFUSED,
                       ev->message != NULL ? ev->message : "requisition refused");
    return DY_KD_FSM_CHANGED;
}

static dy_kd_fsm_result_t s_confirm_rp(dy_kd_comp_t *comp, const dy_kd_event_t *ev, char *why,
                                       size_t whylen)
{
    if (comp->parts[ev->part].state == DY_KD_PART_READY)
        return DY_KD_FSM_REPLAY;
    return s_invalid(comp, ev, why, whylen);
}

static dy_kd_fsm_result_t s_confirm(dy_kd_comp_t *comp, const dy_kd_event_t *ev, char *why,
                                    size_t whylen)
{
    dy_kd_part_t *p = &comp->parts[ev->part];
    if (p->state == DY_KD_PART_READY)
        return DY_KD_FSM_REPLAY;
    if (s_stale(ev, p->version, why, whylen))
        return DY_KD_FSM_STALE;
    if (p->state != DY_KD_PART_REQUISITION_PARAMS_SET) {
        s_why(why, whylen, "participant %s is not REQUISITION_PARAMS_SET", p->duchy);
        return DY_KD_FSM_INVALID;
    }
    p->state = DY_KD_PART_READY;
    p->dirty = true;
    comp->dirty = true;
    for (size_t i = 0; i < comp->nparts; i++)
        if (comp->parts[i].state != DY_KD_PART_READY)
            return DY_KD_FSM_CHANGED;
    s_move(comp, DY_KD_COMP_PENDING_COMPUTATION);
    return DY_KD_FSM_CHANGED;
}

static bool s_result_replay(const dy_kd_comp_t *comp, const dy_kd_event_t *ev)
{
    return comp->state == DY_KD_COMP_SUCCEEDED && comp->aggregator_cert != NULL &&
           ev->cert != NULL && strcmp(comp->aggregator_cert, ev->cert) == 0 &&
           comp->api_version != NULL && ev->version != NULL &&
           strcmp(comp->api_version, ev->version) == 0 &&
           s_buf_eq(&comp->result_key, ev->key, ev->key_len) &&
           s_buf_eq(&comp->result, ev->data, ev->len);
}

static dy_kd_fsm_result_t s_result_rp(dy_kd_comp_t *comp, const dy_kd_event_t *ev, char *why,
                                      size_t whylen)
{
    if (s_result_replay(comp, ev))
        return DY_KD_FSM_REPLAY;
    s_why(why, whylen, "a different result was already set");
    return DY_KD_FSM_INVALID;
}

static dy_kd_fsm_result_t s_result(dy_kd_comp_t *comp, const dy_kd_event_t *ev, char *why,
                                   size_t whylen)
{
    char *cert = ev->cert != NULL ? strdup(ev->cert) : NULL;
    char *ver = ev->version != NULL ? strdup(ev->version) : NULL;
    dy_buf_t key = {0}, res = {0};
    if (cert == NULL || ver == NULL || dy_buf_append(&key, ev->key, ev->key_len) < 0 ||
        dy_buf_append(&res, ev->data, ev->len) < 0) {
        free(cert);
        free(ver);
        dy_buf_free(&key);
        dy_buf_free(&res);
        s_why(why, whylen, "out of memory or missing field");
        return DY_KD_FSM_BAD;
    }
    free(comp->aggregator_cert);
    free(comp->api_version);
    dy_buf_free(&comp->result_key);
    dy_buf_free(&comp->result);
    comp->aggregator_cert = cert;
    comp->api_version = ver;
    comp->result_key = key;
    comp->result = res;
    s_move(comp, DY_KD_COMP_SUCCEEDED);
    return DY_KD_FSM_CHANGED;
}

static dy_kd_fsm_result_t s_fail_rp(dy_kd_comp_t *comp, const dy_kd_event_t *ev, char *why,
                                    size_t whylen)
{
    if (comp->parts[ev->part].state == DY_KD_PART_FAILED)
        return DY_KD_FSM_REPLAY;
    s_why(why, whylen, "computation already %s", dy_kd_comp_state_name(comp->state));
    return DY_KD_FSM_INVALID;
}

static dy_kd_fsm_result_t s_fail(dy_kd_comp_t *comp, const dy_kd_event_t *ev, char *why,
                                 size_t whylen)
{
    dy_kd_part_t *p = &comp->parts[ev->part];
    if (p->state == DY_KD_PART_FAILED)
        return DY_KD_FSM_REPLAY;
    if (s_stale(ev, p->version, why, whylen))
        return DY_KD_FSM_STALE;
    if (s_set_buf(&p->failure, ev->data, ev->len) < 0) {
        s_why(why, whylen, "out of memory");
        return DY_KD_FSM_BAD;
    }
    p->state = DY_KD_PART_FAILED;
    p->dirty = true;
    s_fail_computation(comp, DY_KD_FAILURE_COMPUTATION_PARTICIPANT_FAILED,
                       ev->message != NULL ? ev->message : "computation participant failed");
    return DY_KD_FSM_CHANGED;
}

static dy_kd_fsm_result_t s_cancel(dy_kd_comp_t *comp, const dy_kd_event_t *ev, char *why,
                                   size_t whylen)
{
    s_withdraw_open(comp);
    s_move(comp, DY_KD_COMP_CANCELLED);
    return DY_KD_FSM_CHANGED;
}

/* ---- the table ------------------------------------------------------------------------- */

#define INV s_invalid
static const s_action_fn s_actions[_DY_KD_COMP_MAX][_DY_KD_EV_MAX] = {
    /*                 CREATE    SET_PARAMS   FULFILL       REFUSE    CONFIRM       SET_RESULT
     *                 FAIL       CANCEL    EXPIRE */
    [DY_KD_COMP_NONE] = {s_create, INV, INV, INV, INV, INV, INV, INV, INV},
    [DY_KD_COMP_PENDING_REQUISITION_PARAMS] = {INV, s_params, s_fulfill_rp, INV, s_confirm_rp,
                                               INV, s_fail, s_cancel, s_cancel},
    [DY_KD_COMP_PENDING_REQUISITION_FULFILLMENT] = {INV, s_params_rp, s_fulfill, s_refuse,
                                                    s_confirm_rp, INV, s_fail, s_cancel,
                                                    s_cancel},
    [DY_KD_COMP_PENDING_PARTICIPANT_CONFIRMATION] = {INV, s_params_rp, s_fulfill_rp, INV,
                                                     s_confirm, INV, s_fail, s_cancel, s_cancel},
    [DY_KD_COMP_PENDING_COMPUTATION] = {INV, s_params_rp, s_fulfill_rp, INV, s_confirm_rp,
                                        s_result, s_fail, s_cancel, s_cancel},
    [DY_KD_COMP_SUCCEEDED] = {INV, s_params_rp, s_fulfill_rp, INV, s_confirm_rp, s_result_rp,
                              s_fail_rp, INV, INV},
    [DY_KD_COMP_FAILED] = {INV, s_params_rp, s_fulfill_rp, INV, s_confirm_rp, INV, s_fail_rp,
                           INV, INV},
    [DY_KD_COMP_CANCELLED] = {INV, s_params_rp, s_fulfill_rp, INV, s_confirm_rp, INV, s_fail_rp,
                              s_noop, INV},
};
#undef INV

bool dy_kd_fsm_allowed(dy_kd_comp_state_t state, dy_kd_trigger_t trigger)
{
    if ((int)state < 0 || state >= _DY_KD_COMP_MAX || (int)trigger < 0 ||
        trigger >= _DY_KD_EV_MAX)
        return false;
    s_action_fn a = s_actions[state][trigger];
    return a != s_invalid && a != s_noop && a != s_params_rp && a != s_fulfill_rp &&
           a != s_confirm_rp && a != s_result_rp && a != s_fail_rp;
}

dy_kd_fsm_result_t dy_kd_fsm_apply(dy_kd_comp_t *comp, const dy_kd_event_t *ev, char *why,
                                   size_t whylen)
{
    if (why != NULL && whylen > 0)
        why[0] = '\0';
    if (comp == NULL || ev == NULL || (int)ev->trigger < 0 || ev->trigger >= _DY_KD_EV_MAX ||
        (int)comp->state < 0 || comp->state >= _DY_KD_COMP_MAX) {
        s_why(why, whylen, "bad event");
        return DY_KD_FSM_BAD;
    }
    /* Index checks for the triggers that name a participant or a requisition. */
    switch (ev->trigger) {
    case DY_KD_EV_SET_PARAMS:
    case DY_KD_EV_CONFIRM:
    case DY_KD_EV_FAIL:
        if (!s_part_ok(comp, ev)) {
            s_why(why, whylen, "bad participant index");
            return DY_KD_FSM_BAD;
        }
        break;
    case DY_KD_EV_FULFILL:
        if (!s_part_ok(comp, ev) || !s_req_ok(comp, ev)) {
            s_why(why, whylen, "bad participant or requisition index");
            return DY_KD_FSM_BAD;
        }
        break;
    case DY_KD_EV_REFUSE:
        if (!s_req_ok(comp, ev)) {
            s_why(why, whylen, "bad requisition index");
            return DY_KD_FSM_BAD;
        }
        break;
    default:
        break;
    }
    return s_actions[comp->state][ev->trigger](comp, ev, why, whylen);
}
