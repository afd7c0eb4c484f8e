/* test_kingdom_fsm.c - the Kingdom state machine (kingdom_fsm.c), table-driven: every
 * (state, trigger) cell with a fresh event and with a §6.3 replay event, against tables
 * written here from PROTOCOL.md §4/§6.3 (not from the implementation's table); the next
 * state of every allowed transition; that refused events leave the model untouched; and the
 * protocol differences (LLv2 vs HMSS), etags, nonce hashes, withdrawal on failure/cancel.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "kingdom_fsm.h"

#define N0 0x1111ull
#define N1 0x2222ull

enum { C = DY_KD_FSM_CHANGED, R = DY_KD_FSM_REPLAY, I = DY_KD_FSM_INVALID };

/* Expected outcome of the fresh event of each trigger (see s_fresh), per state. */
static const int s_exp_fresh[_DY_KD_COMP_MAX][_DY_KD_EV_MAX] = {
    /*        CREATE SETP FUL REF CONF RES FAIL CANC EXP */
    /* NONE */ {C, I, I, I, I, I, I, I, I},
    /* PRP  */ {I, C, I, I, I, I, C, C, C},
    /* PRF  */ {I, I, C, C, I, I, C, C, C},
    /* PPC  */ {I, I, I, I, C, I, C, C, C},
    /* PC   */ {I, I, I, I, R, C, C, C, C},
    /* SUCC */ {I, I, I, I, R, I, I, I, I},
    /* FAIL */ {I, I, I, I, I, I, I, I, I},
    /* CANC */ {I, I, I, I, I, I, I, R, I},
};

/* Expected outcome of the replay event of each trigger (see s_replay), per state. */
static const int s_exp_replay[_DY_KD_COMP_MAX][_DY_KD_EV_MAX] = {
    /*        CREATE SETP FUL REF CONF RES FAIL CANC EXP */
    /* NONE */ {C, I, I, I, I, I, I, I, I},
    /* PRP  */ {I, R, I, I, I, I, C, C, C},
    /* PRF  */ {I, R, R, I, I, I, C, C, C},
    /* PPC  */ {I, R, R, I, R, I, C, C, C},
    /* PC   */ {I, R, R, I, R, C, C, C, C},
    /* SUCC */ {I, R, R, I, R, R, I, I, I},
    /* FAIL */ {I, R, R, I, R, I, R, I, I},
    /* CANC */ {I, R, R, I, R, I, I, R, I},
};

/* The state after each CHANGED fresh event (0 = not applicable). */
static const int s_exp_next[_DY_KD_COMP_MAX][_DY_KD_EV_MAX] = {
    /*        CREATE SETP FUL REF CONF RES FAIL CANC EXP */
    /* NONE */ {1, 0, 0, 0, 0, 0, 0, 0, 0},
    /* PRP  */ {0, 1, 0, 0, 0, 0, 6, 7, 7},
    /* PRF  */ {0, 0, 3, 6, 0, 0, 6, 7, 7},
    /* PPC  */ {0, 0, 0, 0, 3, 0, 6, 7, 7},
    /* PC   */ {0, 0, 0, 0, 0, 5, 6, 7, 7},
};

/* Real transitions per §4 (not replay-only cells). */
static const bool s_exp_allowed[_DY_KD_COMP_MAX][_DY_KD_EV_MAX] = {
    [0] = {true},
    [1] = {[DY_KD_EV_SET_PARAMS] = true, [DY_KD_EV_FAIL] = true, [DY_KD_EV_CANCEL] = true,
           [DY_KD_EV_EXPIRE] = true},
    [2] = {[DY_KD_EV_FULFILL] = true, [DY_KD_EV_REFUSE] = true, [DY_KD_EV_FAIL] = true,
           [DY_KD_EV_CANCEL] = true, [DY_KD_EV_EXPIRE] = true},
    [3] = {[DY_KD_EV_CONFIRM] = true, [DY_KD_EV_FAIL] = true, [DY_KD_EV_CANCEL] = true,
           [DY_KD_EV_EXPIRE] = true},
    [4] = {[DY_KD_EV_SET_RESULT] = true, [DY_KD_EV_FAIL] = true, [DY_KD_EV_CANCEL] = true,
           [DY_KD_EV_EXPIRE] = true},
};

static void s_params(dy_kd_part_t *p, const char *s)
{
    p->params.len = 0;
    assert_int_equal(dy_buf_append(&p->params, s, strlen(s)), 0);
}

static void s_fulfilled(dy_kd_req_t *r, int part, uint64_t nonce)
{
    r->state = DY_KD_REQ_FULFILLED;
    r->fulfiller = part;
    r->nonce = nonce;
    r->visible = true;
}

/* The canonical LLv2 model of each state (see the tables' comments in the file header). */
static void s_model(dy_kd_comp_t *c, dy_kd_comp_state_t state, dy_kd_protocol_t proto)
{
    memset(c, 0, sizeof(*c));
    c->id = 42;
    c->protocol = proto;
    c->state = state;
    c->nparts = 3;
    const char *names[3] = {"worker1", "worker2", "aggregator"};
    for (int i = 0; i < 3; i++) {
        snprintf(c->parts[i].duchy, sizeof(c->parts[i].duchy), "%s", names[i]);
        c->parts[i].state = DY_KD_PART_CREATED;
        c->parts[i].version = 1;
    }
    c->parts[2].role = DY_KD_ROLE_AGGREGATOR;
    c->nreqs = 2;
    c->reqs = calloc(2, sizeof(*c->reqs));
    assert_non_null(c->reqs);
    for (int i = 0; i < 2; i++) {
        c->reqs[i].id = 100 + (uint64_t)i;
        c->reqs[i].state = DY_KD_REQ_PENDING_PARAMS;
        c->reqs[i].fulfiller = -1;
        c->reqs[i].assigned = -1;
        c->reqs[i].version = 1;
        assert_int_equal(dy_kd_nonce_hash(i == 0 ? N0 : N1, c->reqs[i].nonce_hash), 0);
    }
    dy_kd_part_t *p = c->parts;
    dy_kd_req_t *r = c->reqs;
    switch (state) {
    case DY_KD_COMP_NONE:
        break;
    case DY_KD_COMP_PENDING_REQUISITION_PARAMS:
        p[1].state = DY_KD_PART_REQUISITION_PARAMS_SET;
        s_params(&p[1], "P1");
        break;
    case DY_KD_COMP_PENDING_REQUISITION_FULFILLMENT:
        for (int i = 0; i < 3; i++)
            p[i].state = DY_KD_PART_REQUISITION_PARAMS_SET;
        s_params(&p[0], "P0");
        s_params(&p[1], "P1");
        s_params(&p[2], "P2");
        r[0].state = DY_KD_REQ_UNFULFILLED;
        r[0].visible = true;
        s_fulfilled(&r[1], 1, N1);
        break;
    case DY_KD_COMP_PENDING_PARTICIPANT_CONFIRMATION:
    case DY_KD_COMP_PENDING_COMPUTATION:
    case DY_KD_COMP_SUCCEEDED:
    case DY_KD_COMP_FAILED:
    case DY_KD_COMP_CANCELLED:
        s_params(&p[0], "P0");
        s_params(&p[1], "P1");
        s_params(&p[2], "P2");
        p[0].state = p[2].state = DY_KD_PART_REQUISITION_PARAMS_SET;
        p[1].state = DY_KD_PART_READY;
        s_fulfilled(&r[0], 0, N0);
        s_fulfilled(&r[1], 1, N1);
        if (state == DY_KD_COMP_PENDING_COMPUTATION || state == DY_KD_COMP_SUCCEEDED)
            p[0].state = p[2].state = DY_KD_PART_READY;
        if (state == DY_KD_COMP_SUCCEEDED) {
            c->aggregator_cert = strdup("C");
            c->api_version = strdup("v2alpha");
            assert_int_equal(dy_buf_append(&c->result_key, "K", 1), 0);
            assert_int_equal(dy_buf_append(&c->result, "R", 1), 0);
        }
        if (state == DY_KD_COMP_FAILED) {
            p[0].state = DY_KD_PART_FAILED;
            r[0].state = DY_KD_REQ_WITHDRAWN;
        }
        if (state == DY_KD_COMP_CANCELLED)
            r[0].state = DY_KD_REQ_WITHDRAWN;
        break;
    default:
        fail();
    }
}

static dy_kd_event_t s_fresh(dy_kd_trigger_t t)
{
    dy_kd_event_t ev = {.trigger = t, .part = -1, .req = -1};
    switch (t) {
    case DY_KD_EV_SET_PARAMS:
        ev.part = 0;
        ev.data = (const uint8_t *)"NEW";
        ev.len = 3;
        break;
    case DY_KD_EV_FULFILL:
        ev.part = 2;
        ev.req = 0;
        ev.nonce = N0;
        break;
    case DY_KD_EV_REFUSE:
        ev.req = 0;
        break;
    case DY_KD_EV_CONFIRM:
        ev.part = 0;
        break;
    case DY_KD_EV_SET_RESULT:
        ev.cert = "C";
        ev.key = (const uint8_t *)"K";
        ev.key_len = 1;
        ev.data = (const uint8_t *)"R2";
        ev.len = 2;
        ev.version = "v2alpha";
        break;
    case DY_KD_EV_FAIL:
        ev.part = 2;
        ev.data = (const uint8_t *)"F";
        ev.len = 1;
        break;
    default:
        break;
    }
    return ev;
}

static dy_kd_event_t s_replay(dy_kd_trigger_t t)
{
    dy_kd_event_t ev = s_fresh(t);
    switch (t) {
    case DY_KD_EV_SET_PARAMS:
        ev.part = 1;
        ev.data = (const uint8_t *)"P1";
        ev.len = 2;
        break;
    case DY_KD_EV_FULFILL:
        ev.part = 1;
        ev.req = 1;
        ev.nonce = N1;
        break;
    case DY_KD_EV_REFUSE:
        ev.req = 1;
        break;
    case DY_KD_EV_CONFIRM:
        ev.part = 1;
        break;
    case DY_KD_EV_SET_RESULT:
        ev.data = (const uint8_t *)"R";
        ev.len = 1;
        break;
    case DY_KD_EV_FAIL:
        ev.part = 0;
        break;
    default:
        break;
    }
    return ev;
}

/* A comparable snapshot of the parts of the model the FSM may touch. */
typedef struct {
    int state, pst[3], rst[2];
    bool dirty;
} s_snap_t;

static s_snap_t s_snap(const dy_kd_comp_t *c)
{
    s_snap_t s = {.state = c->state, .dirty = c->dirty};
    for (int i = 0; i < 3; i++) {
        s.pst[i] = c->parts[i].state;
        s.dirty |= c->parts[i].dirty;
    }
    for (int i = 0; i < 2; i++) {
        s.rst[i] = c->reqs[i].state;
        s.dirty |= c->reqs[i].dirty;
    }
    return s;
}

static void s_run_table(const int exp[_DY_KD_COMP_MAX][_DY_KD_EV_MAX],
                        dy_kd_event_t (*make)(dy_kd_trigger_t), bool check_next)
{
    int cells = 0;
    for (int st = 0; st < _DY_KD_COMP_MAX; st++) {
        for (int t = 0; t < _DY_KD_EV_MAX; t++) {
            dy_kd_comp_t c;
            s_model(&c, (dy_kd_comp_state_t)st, DY_KD_PROTO_LLV2);
            s_snap_t before = s_snap(&c);
            dy_kd_event_t ev = make((dy_kd_trigger_t)t);
            char why[200];
            int got = dy_kd_fsm_apply(&c, &ev, why, sizeof(why));
            if (got != exp[st][t])
                fail_msg("state %s trigger %s: got %d want %d (%s)",
                         dy_kd_comp_state_name((dy_kd_comp_state_t)st),
                         dy_kd_trigger_name((dy_kd_trigger_t)t), got, exp[st][t], why);
            if (got != C) {
                s_snap_t after = s_snap(&c);
                assert_memory_equal(&before, &after, sizeof(before));
            } else {
                s_snap_t after = s_snap(&c);
                assert_true(after.dirty);
                if (check_next && s_exp_next[st][t] != 0 && (int)c.state != s_exp_next[st][t])
                    fail_msg("state %s trigger %s: next %s",
                             dy_kd_comp_state_name((dy_kd_comp_state_t)st),
                             dy_kd_trigger_name((dy_kd_trigger_t)t),
                             dy_kd_comp_state_name(c.state));
            }
            dy_kd_comp_free(&c);
            cells++;
        }
    }
    assert_int_equal(cells, _DY_KD_COMP_MAX * _DY_KD_EV_MAX);
}

static void test_table_fresh(void **state)
{
    (void)state;
    s_run_table(s_exp_fresh, s_fresh, true);
}

static void test_table_replay(void **state)
{
    (void)state;
    s_run_table(s_exp_replay, s_replay, false);
}

static void test_allowed_matches_spec(void **state)
{
    (void)state;
    for (int st = 0; st < _DY_KD_COMP_MAX; st++)
        for (int t = 0; t < _DY_KD_EV_MAX; t++)
            if (dy_kd_fsm_allowed((dy_kd_comp_state_t)st, (dy_kd_trigger_t)t) !=
                s_exp_allowed[st][t])
                fail_msg("allowed(%s, %s)", dy_kd_comp_state_name((dy_kd_comp_state_t)st),
                         dy_kd_trigger_name((dy_kd_trigger_t)t));
    assert_false(dy_kd_fsm_allowed(_DY_KD_COMP_MAX, DY_KD_EV_CREATE));
    assert_false(dy_kd_fsm_allowed(DY_KD_COMP_NONE, _DY_KD_EV_MAX));
}

/* Whole LLv2 flow: params -> fulfilment -> confirmation -> result. */
static void test_llv2_flow(void **state)
{
    (void)state;
    dy_kd_comp_t c;
    s_model(&c, DY_KD_COMP_NONE, DY_KD_PROTO_LLV2);
    dy_kd_event_t ev = {.trigger = DY_KD_EV_CREATE, .part = -1, .req = -1};
    assert_int_equal(dy_kd_fsm_apply(&c, &ev, NULL, 0), C);
    assert_int_equal(c.state, DY_KD_COMP_PENDING_REQUISITION_PARAMS);
    const char *ps[3] = {"A", "B", "G"};
    for (int i = 0; i < 3; i++) {
        ev = (dy_kd_event_t){.trigger = DY_KD_EV_SET_PARAMS, .part = i, .req = -1,
                             .data = (const uint8_t *)ps[i], .len = 1};
        assert_int_equal(dy_kd_fsm_apply(&c, &ev, NULL, 0), C);
        assert_int_equal(c.parts[i].state, DY_KD_PART_REQUISITION_PARAMS_SET);
        assert_int_equal(c.reqs[0].state, i < 2 ? DY_KD_REQ_PENDING_PARAMS
                                                : DY_KD_REQ_UNFULFILLED);
        assert_int_equal(c.reqs[0].visible, i == 2);
    }
    assert_int_equal(c.state, DY_KD_COMP_PENDING_REQUISITION_FULFILLMENT);
    /* LLv2: any participant may fulfil; the nonce must hash to nonce_hash. */
    ev = (dy_kd_event_t){.trigger = DY_KD_EV_FULFILL, .part = 2, .req = 0, .nonce = N1};
    assert_int_equal(dy_kd_fsm_apply(&c, &ev, NULL, 0), I);
    ev.nonce = N0;
    assert_int_equal(dy_kd_fsm_apply(&c, &ev, NULL, 0), C);
    assert_int_equal(c.reqs[0].fulfiller, 2);
    assert_int_equal(c.state, DY_KD_COMP_PENDING_REQUISITION_FULFILLMENT);
    /* Replay by another duchy or with another nonce is not a replay. */
    ev.part = 1;
    assert_int_equal(dy_kd_fsm_apply(&c, &ev, NULL, 0), I);
    ev = (dy_kd_event_t){.trigger = DY_KD_EV_FULFILL, .part = 0, .req = 1, .nonce = N1};
    assert_int_equal(dy_kd_fsm_apply(&c, &ev, NULL, 0), C);
    assert_int_equal(c.state, DY_KD_COMP_PENDING_PARTICIPANT_CONFIRMATION);
    for (int i = 0; i < 3; i++) {
        ev = (dy_kd_event_t){.trigger = DY_KD_EV_CONFIRM, .part = i, .req = -1};
        assert_int_equal(dy_kd_fsm_apply(&c, &ev, NULL, 0), C);
        assert_int_equal(dy_kd_fsm_apply(&c, &ev, NULL, 0), R);
    }
    assert_int_equal(c.state, DY_KD_COMP_PENDING_COMPUTATION);
    ev = (dy_kd_event_t){.trigger = DY_KD_EV_SET_RESULT, .part = 2, .req = -1, .cert = "c",
                         .key = (const uint8_t *)"k", .key_len = 1,
                         .data = (const uint8_t *)"res", .len = 3, .version = "v2alpha"};
    assert_int_equal(dy_kd_fsm_apply(&c, &ev, NULL, 0), C);
    assert_int_equal(c.state, DY_KD_COMP_SUCCEEDED);
    assert_int_equal(dy_kd_fsm_apply(&c, &ev, NULL, 0), R);
    ev.version = "v3";
    assert_int_equal(dy_kd_fsm_apply(&c, &ev, NULL, 0), I);
    ev.version = "v2alpha";
    ev.cert = "d";
    assert_int_equal(dy_kd_fsm_apply(&c, &ev, NULL, 0), I);
    ev.cert = "c";
    ev.key_len = 0;
    assert_int_equal(dy_kd_fsm_apply(&c, &ev, NULL, 0), I);
    dy_kd_comp_free(&c);
}

/* HMSS: CREATED -> READY on params; the last fulfilment goes straight to PENDING_COMPUTATION
 * and confirmation is never needed (a Confirm from a READY participant is a replay). */
static void test_hmss_flow(void **state)
{
    (void)state;
    dy_kd_comp_t c;
    s_model(&c, DY_KD_COMP_PENDING_REQUISITION_PARAMS, DY_KD_PROTO_HMSS);
    c.parts[1].state = DY_KD_PART_CREATED;
    c.parts[1].params.len = 0;
    for (int i = 0; i < 3; i++) {
        dy_kd_event_t ev = {.trigger = DY_KD_EV_SET_PARAMS, .part = i, .req = -1,
                            .data = (const uint8_t *)"K", .len = 1};
        assert_int_equal(dy_kd_fsm_apply(&c, &ev, NULL, 0), C);
        assert_int_equal(c.parts[i].state, DY_KD_PART_READY);
    }
    assert_int_equal(c.state, DY_KD_COMP_PENDING_REQUISITION_FULFILLMENT);
    dy_kd_event_t ev = {.trigger = DY_KD_EV_CONFIRM, .part = 0, .req = -1};
    assert_int_equal(dy_kd_fsm_apply(&c, &ev, NULL, 0), R);
    ev = (dy_kd_event_t){.trigger = DY_KD_EV_FULFILL, .part = 0, .req = 0, .nonce = N0};
    assert_int_equal(dy_kd_fsm_apply(&c, &ev, NULL, 0), C);
    ev = (dy_kd_event_t){.trigger = DY_KD_EV_FULFILL, .part = 1, .req = 1, .nonce = N1};
    assert_int_equal(dy_kd_fsm_apply(&c, &ev, NULL, 0), C);
    assert_int_equal(c.state, DY_KD_COMP_PENDING_COMPUTATION);
    dy_kd_comp_free(&c);
}

static void test_etag(void **state)
{
    (void)state;
    dy_kd_comp_t c;
    s_model(&c, DY_KD_COMP_PENDING_PARTICIPANT_CONFIRMATION, DY_KD_PROTO_LLV2);
    c.parts[0].version = 7;
    c.parts[1].version = 9;
    dy_kd_event_t ev = {.trigger = DY_KD_EV_CONFIRM, .part = 0, .req = -1, .etag = "6"};
    assert_int_equal(dy_kd_fsm_apply(&c, &ev, NULL, 0), DY_KD_FSM_STALE);
    assert_int_equal(c.parts[0].state, DY_KD_PART_REQUISITION_PARAMS_SET);
    ev.etag = "07";
    assert_int_equal(dy_kd_fsm_apply(&c, &ev, NULL, 0), DY_KD_FSM_STALE);
    ev.etag = "7";
    assert_int_equal(dy_kd_fsm_apply(&c, &ev, NULL, 0), C);
    /* A replay wins over a stale etag (D1). */
    ev = (dy_kd_event_t){.trigger = DY_KD_EV_CONFIRM, .part = 1, .req = -1, .etag = "1"};
    assert_int_equal(dy_kd_fsm_apply(&c, &ev, NULL, 0), R);
    /* Requisition etags. */
    dy_kd_comp_free(&c);
    s_model(&c, DY_KD_COMP_PENDING_REQUISITION_FULFILLMENT, DY_KD_PROTO_LLV2);
    c.reqs[0].version = 3;
    ev = (dy_kd_event_t){.trigger = DY_KD_EV_FULFILL, .part = 0, .req = 0, .nonce = N0,
                         .etag = "2"};
    assert_int_equal(dy_kd_fsm_apply(&c, &ev, NULL, 0), DY_KD_FSM_STALE);
    ev.etag = "";
    assert_int_equal(dy_kd_fsm_apply(&c, &ev, NULL, 0), C);
    dy_kd_comp_free(&c);
}

static void test_refuse_withdraws(void **state)
{
    (void)state;
    dy_kd_comp_t c;
    s_model(&c, DY_KD_COMP_PENDING_REQUISITION_FULFILLMENT, DY_KD_PROTO_LLV2);
    c.reqs[1].state = DY_KD_REQ_UNFULFILLED;
    c.reqs[1].fulfiller = -1;
    dy_kd_event_t ev = {.trigger = DY_KD_EV_REFUSE, .part = -1, .req = 0,
                        .data = (const uint8_t *)"x", .len = 1, .message = "no"};
    assert_int_equal(dy_kd_fsm_apply(&c, &ev, NULL, 0), C);
    assert_int_equal(c.state, DY_KD_COMP_FAILED);
    assert_int_equal(c.reqs[0].state, DY_KD_REQ_REFUSED);
    assert_int_equal(c.reqs[1].state, DY_KD_REQ_WITHDRAWN);
    assert_int_equal(c.failure_reason, DY_KD_FAILURE_REQUISITION_REFUSED);
    assert_string_equal(c.failure_message, "no");
    dy_kd_comp_free(&c);
}

static void test_fail_and_cancel_withdraw(void **state)
{
    (void)state;
    for (int which = 0; which < 3; which++) {
        dy_kd_comp_t c;
        s_model(&c, DY_KD_COMP_PENDING_REQUISITION_PARAMS, DY_KD_PROTO_HMSS);
        dy_kd_event_t ev = {.trigger = which == 0   ? DY_KD_EV_FAIL
                                       : which == 1 ? DY_KD_EV_CANCEL
                                                    : DY_KD_EV_EXPIRE,
                            .part = 0, .req = -1, .data = (const uint8_t *)"f", .len = 1,
                            .message = "boom"};
        assert_int_equal(dy_kd_fsm_apply(&c, &ev, NULL, 0), C);
        assert_int_equal(c.state, which == 0 ? DY_KD_COMP_FAILED : DY_KD_COMP_CANCELLED);
        for (int i = 0; i < 2; i++)
            assert_int_equal(c.reqs[i].state, DY_KD_REQ_WITHDRAWN);
        if (which == 0) {
            assert_int_equal(c.parts[0].state, DY_KD_PART_FAILED);
            assert_int_equal(c.failure_reason, DY_KD_FAILURE_COMPUTATION_PARTICIPANT_FAILED);
            assert_memory_equal(c.parts[0].failure.data, "f", 1);
            /* The participant's replay is OK; another participant's Fail is refused. */
            assert_int_equal(dy_kd_fsm_apply(&c, &ev, NULL, 0), R);
            ev.part = 1;
            assert_int_equal(dy_kd_fsm_apply(&c, &ev, NULL, 0), I);
        } else {
            assert_int_equal(c.failure_reason, DY_KD_FAILURE_NONE);
        }
        dy_kd_comp_free(&c);
    }
}

static void test_bad_events(void **state)
{
    (void)state;
    dy_kd_comp_t c;
    s_model(&c, DY_KD_COMP_PENDING_REQUISITION_FULFILLMENT, DY_KD_PROTO_LLV2);
    dy_kd_event_t ev = {.trigger = DY_KD_EV_FULFILL, .part = 3, .req = 0, .nonce = N0};
    assert_int_equal(dy_kd_fsm_apply(&c, &ev, NULL, 0), DY_KD_FSM_BAD);
    ev.part = 0;
    ev.req = 2;
    assert_int_equal(dy_kd_fsm_apply(&c, &ev, NULL, 0), DY_KD_FSM_BAD);
    ev.trigger = _DY_KD_EV_MAX;
    assert_int_equal(dy_kd_fsm_apply(&c, &ev, NULL, 0), DY_KD_FSM_BAD);
    assert_int_equal(dy_kd_fsm_apply(NULL, &ev, NULL, 0), DY_KD_FSM_BAD);
    assert_int_equal(c.state, DY_KD_COMP_PENDING_REQUISITION_FULFILLMENT);
    dy_kd_comp_free(&c);
}

static void test_names_and_helpers(void **state)
{
    (void)state;
    assert_string_equal(dy_kd_comp_state_name(DY_KD_COMP_PENDING_COMPUTATION),
                        "PENDING_COMPUTATION");
    assert_string_equal(dy_kd_trigger_name(DY_KD_EV_SET_RESULT), "SET_RESULT");
    assert_true(dy_kd_comp_terminal(DY_KD_COMP_CANCELLED));
    assert_false(dy_kd_comp_terminal(DY_KD_COMP_PENDING_COMPUTATION));
    assert_false(dy_kd_comp_streamed(DY_KD_COMP_PENDING_REQUISITION_FULFILLMENT));
    assert_false(dy_kd_comp_streamed(DY_KD_COMP_NONE));
    for (int s = 1; s < _DY_KD_COMP_MAX; s++)
        if (s != DY_KD_COMP_PENDING_REQUISITION_FULFILLMENT)
            assert_true(dy_kd_comp_streamed((dy_kd_comp_state_t)s));
    /* SHA-256 of 00 00 00 00 00 00 00 01. */
    uint8_t h[32];
    assert_int_equal(dy_kd_nonce_hash(1, h), 0);
    static const uint8_t want[4] = {0xcd, 0x26, 0x62, 0x15};
    assert_memory_equal(h, want, 4);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table_fresh),
        cmocka_unit_test(test_table_replay),
        cmocka_unit_test(test_allowed_matches_spec),
        cmocka_unit_test(test_llv2_flow),
        cmocka_unit_test(test_hmss_flow),
        cmocka_unit_test(test_etag),
        cmocka_unit_test(test_refuse_withdraws),
        cmocka_unit_test(test_fail_and_cancel_withdraw),
        cmocka_unit_test(test_bad_events),
        cmocka_unit_test(test_names_and_helpers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
