/* test_stages.c - the stage tables of stages.c against PROTOCOL.md §5 and
 * §6.1, written out here a second time by stage *name*, with the numbers
 * taken from control.proto's generated enum descriptors: so a wrong number,
 * name, kind, next stage, effect, send or receive rule in stages.c fails,
 * and so does any (protocol, role, stage, K) that stages.c accepts but §5
 * does not list. */
/* clang-format off */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
/* clang-format on */

#include <stdio.h>
#include <string.h>

#include "control.pb-c.h"
#include "stages.h"

static const ProtobufCEnumDescriptor *s_stage_enum(int protocol)
{
    switch (protocol) {
    case DY_PROTO_LLV2:
        return &wfa__measurement__system__v1alpha__liquid_legions_v2_stage__stage__descriptor;
    case DY_PROTO_RO_LLV2:
        return &wfa__measurement__system__v1alpha__reach_only_liquid_legions_v2_stage__stage__descriptor;
    case DY_PROTO_HMSS:
        return &wfa__measurement__system__v1alpha__honest_majority_share_shuffle_stage__stage__descriptor;
    }
    return NULL;
}

static const ProtobufCEnumDescriptor *s_desc_enum(int protocol)
{
    switch (protocol) {
    case DY_PROTO_LLV2:
        return &wfa__measurement__system__v1alpha__liquid_legions_v2__description__descriptor;
    case DY_PROTO_RO_LLV2:
        return &wfa__measurement__system__v1alpha__reach_only_liquid_legions_v2__description__descriptor;
    case DY_PROTO_HMSS:
        return &wfa__measurement__system__v1alpha__honest_majority_share_shuffle__description__descriptor;
    }
    return NULL;
}

/* Stage number by name, from control.proto. */
static int S(int protocol, const char *name)
{
    const ProtobufCEnumValue *v = protobuf_c_enum_descriptor_get_value_by_name(s_stage_enum(protocol), name);
    if (!v)
        fail_msg("no stage %s in protocol %d", name, protocol);
    return v->value;
}

static int D(int protocol, const char *name)
{
    const ProtobufCEnumValue *v = protobuf_c_enum_descriptor_get_value_by_name(s_desc_enum(protocol), name);
    if (!v)
        fail_msg("no description %s in protocol %d", name, protocol);
    return v->value;
}

static const int s_protocols[] = {DY_PROTO_LLV2, DY_PROTO_RO_LLV2, DY_PROTO_HMSS};

/* ---- stage list ------------------------------------------------------ */

typedef struct {
    int protocol;
    const char *name;
    dy_stage_kind_t kind;
    bool initial;
} s_stage_exp_t;

#define W DY_STAGE_WORK
#define T DY_STAGE_WAIT
#define C DY_STAGE_COMPLETE
static const s_stage_exp_t s_stage_exp[] = {
    {DY_PROTO_LLV2, "INITIALIZATION_PHASE", W, true},
    {DY_PROTO_LLV2, "WAIT_REQUISITIONS_AND_KEY_SET", T, false},
    {DY_PROTO_LLV2, "CONFIRMATION_PHASE", W, false},
    {DY_PROTO_LLV2, "WAIT_TO_START", T, false},
    {DY_PROTO_LLV2, "WAIT_SETUP_PHASE_INPUTS", T, false},
    {DY_PROTO_LLV2, "SETUP_PHASE", W, false},
    {DY_PROTO_LLV2, "WAIT_EXECUTION_PHASE_ONE_INPUTS", T, false},
    {DY_PROTO_LLV2, "EXECUTION_PHASE_ONE", W, false},
    {DY_PROTO_LLV2, "WAIT_EXECUTION_PHASE_TWO_INPUTS", T, false},
    {DY_PROTO_LLV2, "EXECUTION_PHASE_TWO", W, false},
    {DY_PROTO_LLV2, "WAIT_EXECUTION_PHASE_THREE_INPUTS", T, false},
    {DY_PROTO_LLV2, "EXECUTION_PHASE_THREE", W, false},
    {DY_PROTO_LLV2, "COMPLETE", C, false},
    {DY_PROTO_RO_LLV2, "INITIALIZATION_PHASE", W, true},
    {DY_PROTO_RO_LLV2, "WAIT_REQUISITIONS_AND_KEY_SET", T, false},
    {DY_PROTO_RO_LLV2, "CONFIRMATION_PHASE", W, false},
    {DY_PROTO_RO_LLV2, "WAIT_TO_START", T, false},
    {DY_PROTO_RO_LLV2, "WAIT_SETUP_PHASE_INPUTS", T, false},
    {DY_PROTO_RO_LLV2, "SETUP_PHASE", W, false},
    {DY_PROTO_RO_LLV2, "WAIT_EXECUTION_PHASE_INPUTS", T, false},
    {DY_PROTO_RO_LLV2, "EXECUTION_PHASE", W, false},
    {DY_PROTO_RO_LLV2, "COMPLETE", C, false},
    {DY_PROTO_HMSS, "INITIALIZED", W, true},
    {DY_PROTO_HMSS, "WAIT_TO_START", T, false},
    {DY_PROTO_HMSS, "WAIT_ON_SHUFFLE_INPUT_PHASE_ONE", T, false},
    {DY_PROTO_HMSS, "SETUP_PHASE", W, false},
    {DY_PROTO_HMSS, "WAIT_ON_SHUFFLE_INPUT_PHASE_TWO", T, false},
    {DY_PROTO_HMSS, "WAIT_ON_AGGREGATION_INPUT", T, false},
    {DY_PROTO_HMSS, "SHUFFLE_PHASE", W, false},
    {DY_PROTO_HMSS, "AGGREGATION_PHASE", W, false},
    {DY_PROTO_HMSS, "COMPLETE", C, false},
};

static void test_stage_list(void **state)
{
    (void)state;
    for (size_t i = 0; i < DY_ARRAY_LEN(s_stage_exp); i++) {
        const s_stage_exp_t *e = &s_stage_exp[i];
        int n = S(e->protocol, e->name);
        const dy_stage_info_t *info = dy_stage_info(e->protocol, n);
        assert_non_null(info);
        assert_int_equal(info->stage, n);
        assert_string_equal(info->name, e->name);
        assert_string_equal(dy_stage_name(e->protocol, n), e->name);
        assert_int_equal(info->kind, e->kind);
        assert_int_equal(info->initial, e->initial);
        assert_int_equal(info->prioritized, e->initial); /* §7.1 */
        if (e->initial)
            assert_int_equal(dy_stage_initial(e->protocol), n);
        if (e->kind == DY_STAGE_COMPLETE)
            assert_int_equal(dy_stage_complete(e->protocol), n);
    }
    /* Every stage of the proto enums is listed, and nothing else exists. */
    for (size_t p = 0; p < DY_ARRAY_LEN(s_protocols); p++) {
        const ProtobufCEnumDescriptor *ed = s_stage_enum(s_protocols[p]);
        size_t listed = 0;
        for (size_t i = 0; i < DY_ARRAY_LEN(s_stage_exp); i++)
            listed += s_stage_exp[i].protocol == s_protocols[p];
        assert_int_equal(listed, ed->n_values - 1); /* minus STAGE_UNSPECIFIED */
        assert_null(dy_stage_info(s_protocols[p], 0));
        assert_null(dy_stage_info(s_protocols[p], (int)ed->n_values));
        assert_null(dy_stage_info(s_protocols[p], -1));
        assert_string_equal(dy_stage_name(s_protocols[p], 99), "UNKNOWN");
    }
    assert_null(dy_stage_info(0, 1));
    assert_null(dy_stage_info(4, 1));
    assert_int_equal(dy_stage_initial(0), -EINVAL);
    assert_int_equal(dy_stage_complete(9), -EINVAL);
}

/* ---- work rows ------------------------------------------------------- */

/* K: 0 = any K (checked with 1, 2 and 10), 1 = K = 1 only, 2 = K > 1 only. */
typedef struct {
    int protocol;
    int role;
    const char *stage;
    int k;
    bool computes;
    dy_stage_effect_t effect;
    const char *next;
    int nsends;
    int to[2];
    const char *desc[2];
} s_row_exp_t;

#define LL DY_PROTO_LLV2
#define RO DY_PROTO_RO_LLV2
#define HM DY_PROTO_HMSS
#define AG DY_ROLE_AGG
#define NA DY_ROLE_NA
#define FNA DY_ROLE_FNA
#define SNA DY_ROLE_SNA
static const s_row_exp_t s_rows[] = {
    /* §5.1 */
    {LL, NA, "INITIALIZATION_PHASE", 0, true, DY_FX_SET_PARAMS, "WAIT_REQUISITIONS_AND_KEY_SET", 0, {0}, {0}},
    {LL, AG, "INITIALIZATION_PHASE", 0, true, DY_FX_SET_PARAMS, "WAIT_REQUISITIONS_AND_KEY_SET", 0, {0}, {0}},
    {LL, NA, "CONFIRMATION_PHASE", 0, false, DY_FX_CONFIRM, "WAIT_TO_START", 0, {0}, {0}},
    {LL, AG, "CONFIRMATION_PHASE", 0, false, DY_FX_CONFIRM, "WAIT_SETUP_PHASE_INPUTS", 0, {0}, {0}},
    {LL, NA, "SETUP_PHASE", 0, true, DY_FX_SEND, "WAIT_EXECUTION_PHASE_ONE_INPUTS", 1,
     {DY_SEND_AGGREGATOR}, {"SETUP_PHASE_INPUT"}},
    {LL, AG, "SETUP_PHASE", 0, true, DY_FX_SEND, "WAIT_EXECUTION_PHASE_ONE_INPUTS", 1,
     {DY_SEND_NA1}, {"EXECUTION_PHASE_ONE_INPUT"}},
    {LL, NA, "EXECUTION_PHASE_ONE", 0, true, DY_FX_SEND, "WAIT_EXECUTION_PHASE_TWO_INPUTS", 1,
     {DY_SEND_SUCCESSOR}, {"EXECUTION_PHASE_ONE_INPUT"}},
    {LL, AG, "EXECUTION_PHASE_ONE", 0, true, DY_FX_SEND, "WAIT_EXECUTION_PHASE_TWO_INPUTS", 1,
     {DY_SEND_NA1}, {"EXECUTION_PHASE_TWO_INPUT"}},
    {LL, NA, "EXECUTION_PHASE_TWO", 2, true, DY_FX_SEND, "WAIT_EXECUTION_PHASE_THREE_INPUTS", 1,
     {DY_SEND_SUCCESSOR}, {"EXECUTION_PHASE_TWO_INPUT"}},
    {LL, AG, "EXECUTION_PHASE_TWO", 2, true, DY_FX_SEND, "WAIT_EXECUTION_PHASE_THREE_INPUTS", 1,
     {DY_SEND_NA1}, {"EXECUTION_PHASE_THREE_INPUT"}},
    /* K = 1 ends LLv2 in EXECUTION_PHASE_TWO: NAs still send on, AG submits. */
    {LL, NA, "EXECUTION_PHASE_TWO", 1, true, DY_FX_SEND, "COMPLETE", 1,
     {DY_SEND_SUCCESSOR}, {"EXECUTION_PHASE_TWO_INPUT"}},
    {LL, AG, "EXECUTION_PHASE_TWO", 1, true, DY_FX_SUBMIT, "COMPLETE", 0, {0}, {0}},
    {LL, NA, "EXECUTION_PHASE_THREE", 2, true, DY_FX_SEND, "COMPLETE", 1,
     {DY_SEND_SUCCESSOR}, {"EXECUTION_PHASE_THREE_INPUT"}},
    {LL, AG, "EXECUTION_PHASE_THREE", 2, true, DY_FX_SUBMIT, "COMPLETE", 0, {0}, {0}},
    /* §5.2 */
    {RO, NA, "INITIALIZATION_PHASE", 0, true, DY_FX_SET_PARAMS, "WAIT_REQUISITIONS_AND_KEY_SET", 0, {0}, {0}},
    {RO, AG, "INITIALIZATION_PHASE", 0, true, DY_FX_SET_PARAMS, "WAIT_REQUISITIONS_AND_KEY_SET", 0, {0}, {0}},
    {RO, NA, "CONFIRMATION_PHASE", 0, false, DY_FX_CONFIRM, "WAIT_TO_START", 0, {0}, {0}},
    {RO, AG, "CONFIRMATION_PHASE", 0, false, DY_FX_CONFIRM, "WAIT_SETUP_PHASE_INPUTS", 0, {0}, {0}},
    {RO, NA, "SETUP_PHASE", 0, true, DY_FX_SEND, "WAIT_EXECUTION_PHASE_INPUTS", 1,
     {DY_SEND_AGGREGATOR}, {"SETUP_PHASE_INPUT"}},
    {RO, AG, "SETUP_PHASE", 0, true, DY_FX_SEND, "WAIT_EXECUTION_PHASE_INPUTS", 1,
     {DY_SEND_NA1}, {"EXECUTION_PHASE_INPUT"}},
    {RO, NA, "EXECUTION_PHASE", 0, true, DY_FX_SEND, "COMPLETE", 1,
     {DY_SEND_SUCCESSOR}, {"EXECUTION_PHASE_INPUT"}},
    {RO, AG, "EXECUTION_PHASE", 0, true, DY_FX_SUBMIT, "COMPLETE", 0, {0}, {0}},
    /* §5.3 */
    {HM, FNA, "INITIALIZED", 0, false, DY_FX_SET_PARAMS, "WAIT_TO_START", 0, {0}, {0}},
    {HM, SNA, "INITIALIZED", 0, false, DY_FX_SET_PARAMS, "WAIT_ON_SHUFFLE_INPUT_PHASE_ONE", 0, {0}, {0}},
    {HM, AG, "INITIALIZED", 0, false, DY_FX_SET_PARAMS, "WAIT_ON_AGGREGATION_INPUT", 0, {0}, {0}},
    {HM, FNA, "SETUP_PHASE", 0, true, DY_FX_SEND, "WAIT_ON_SHUFFLE_INPUT_PHASE_TWO", 1,
     {DY_SEND_PEER_NA}, {"SHUFFLE_PHASE_INPUT_ONE"}},
    {HM, SNA, "SETUP_PHASE", 0, true, DY_FX_SEND, "SHUFFLE_PHASE", 1,
     {DY_SEND_PEER_NA}, {"SHUFFLE_PHASE_INPUT_TWO"}},
    {HM, FNA, "SHUFFLE_PHASE", 0, true, DY_FX_SEND, "COMPLETE", 1,
     {DY_SEND_AGGREGATOR}, {"AGGREGATION_PHASE_INPUT"}},
    {HM, SNA, "SHUFFLE_PHASE", 0, true, DY_FX_SEND, "COMPLETE", 1,
     {DY_SEND_AGGREGATOR}, {"AGGREGATION_PHASE_INPUT"}},
    {HM, AG, "AGGREGATION_PHASE", 0, true, DY_FX_SUBMIT, "COMPLETE", 0, {0}, {0}},
};

static bool s_k_matches(int k, int K)
{
    return k == 0 || (k == 1 && K == 1) || (k == 2 && K > 1);
}

static const s_row_exp_t *s_find_row(int protocol, int role, int stage, int K)
{
    for (size_t i = 0; i < DY_ARRAY_LEN(s_rows); i++) {
        const s_row_exp_t *r = &s_rows[i];
        if (r->protocol == protocol && r->role == role && S(protocol, r->stage) == stage &&
            s_k_matches(r->k, K))
            return r;
    }
    return NULL;
}

static void test_work_rows(void **state)
{
    (void)state;
    static const int ks[] = {1, 2, 10};
    for (size_t i = 0; i < DY_ARRAY_LEN(s_rows); i++) {
        const s_row_exp_t *r = &s_rows[i];
        int stage = S(r->protocol, r->stage);
        assert_int_equal(dy_stage_info(r->protocol, stage)->kind, DY_STAGE_WORK);
        assert_int_equal(dy_stage_computes(r->protocol, r->role, stage), r->computes);
        for (size_t k = 0; k < DY_ARRAY_LEN(ks); k++) {
            if (!s_k_matches(r->k, ks[k]))
                continue;
            assert_int_equal(dy_stage_next(r->protocol, r->role, stage, ks[k]),
                             S(r->protocol, r->next));
            assert_int_equal(dy_stage_effect(r->protocol, r->role, stage, ks[k]), r->effect);
            dy_send_t sends[2] = {{-1, -1}, {-1, -1}};
            int n = dy_stage_sends(r->protocol, r->role, stage, ks[k], sends);
            assert_int_equal(n, r->nsends);
            for (int j = 0; j < n; j++) {
                assert_int_equal(sends[j].to, r->to[j]);
                assert_int_equal(sends[j].description, D(r->protocol, r->desc[j]));
            }
        }
    }
}

/* Every (protocol, role, stage, K) that §5 does not list is refused. */
static void test_refused_transitions(void **state)
{
    (void)state;
    static const int roles[] = {0, DY_ROLE_AGG, DY_ROLE_NA, DY_ROLE_FNA, DY_ROLE_SNA, 5, -1};
    static const int ks[] = {1, 2, 10};
    int refused = 0;
    for (int protocol = -1; protocol <= 5; protocol++) {
        for (size_t ri = 0; ri < DY_ARRAY_LEN(roles); ri++) {
            for (int stage = -1; stage <= 15; stage++) {
                for (size_t k = 0; k < DY_ARRAY_LEN(ks); k++) {
                    bool known = protocol >= 1 && protocol <= 3;
                    const s_row_exp_t *r =
                        known ? s_find_row(protocol, roles[ri], stage, ks[k]) : NULL;
                    if (r)
                        continue;
                    dy_send_t sends[2];
                    assert_int_equal(dy_stage_next(protocol, roles[ri], stage, ks[k]), -EINVAL);
                    assert_int_equal(dy_stage_effect(protocol, roles[ri], stage, ks[k]),
                                     DY_FX_NONE);
                    assert_int_equal(dy_stage_sends(protocol, roles[ri], stage, ks[k], sends),
                                     -EINVAL);
                    refused++;
                }
                /* computes: only listed work rows of the role (any K) */
                bool any = false;
                for (size_t k = 0; k < DY_ARRAY_LEN(ks); k++) {
                    const s_row_exp_t *r = (protocol >= 1 && protocol <= 3)
                                               ? s_find_row(protocol, roles[ri], stage, ks[k])
                                               : NULL;
                    any = any || (r && r->computes);
                }
                assert_int_equal(dy_stage_computes(protocol, roles[ri], stage), any);
            }
        }
    }
    assert_true(refused > 1000);
    /* Named refusals that matter: wait stages, COMPLETE, LLv2 exec3 at K = 1,
     * NA roles crossed between protocols, a K that is not known. */
    int ll = DY_PROTO_LLV2, hm = DY_PROTO_HMSS;
    assert_int_equal(dy_stage_next(ll, AG, S(ll, "WAIT_SETUP_PHASE_INPUTS"), 2), -EINVAL);
    assert_int_equal(dy_stage_next(ll, AG, S(ll, "COMPLETE"), 2), -EINVAL);
    assert_int_equal(dy_stage_next(ll, AG, S(ll, "EXECUTION_PHASE_THREE"), 1), -EINVAL);
    assert_int_equal(dy_stage_next(ll, NA, S(ll, "EXECUTION_PHASE_THREE"), 1), -EINVAL);
    assert_int_equal(dy_stage_next(ll, FNA, S(ll, "SETUP_PHASE"), 2), -EINVAL);
    assert_int_equal(dy_stage_next(hm, NA, S(hm, "SETUP_PHASE"), 2), -EINVAL);
    assert_int_equal(dy_stage_next(hm, AG, S(hm, "SETUP_PHASE"), 2), -EINVAL);
    assert_int_equal(dy_stage_next(hm, AG, S(hm, "SHUFFLE_PHASE"), 2), -EINVAL);
    assert_int_equal(dy_stage_next(hm, FNA, S(hm, "AGGREGATION_PHASE"), 2), -EINVAL);
    assert_int_equal(dy_stage_next(ll, AG, S(ll, "EXECUTION_PHASE_TWO"), 0), -EINVAL);
    assert_int_equal(dy_stage_next(ll, AG, S(ll, "EXECUTION_PHASE_ONE"), 0),
                     S(ll, "WAIT_EXECUTION_PHASE_TWO_INPUTS")); /* K-independent row */
}

/* ---- §6.1 receive rules ------------------------------------------------ */

typedef struct {
    int protocol;
    const char *desc;
    int role; /* 0: every role of the protocol */
    const char *awaited;
    const char *next;
    int slots;
} s_recv_exp_t;

static const s_recv_exp_t s_recv_exp[] = {
    {LL, "SETUP_PHASE_INPUT", AG, "WAIT_SETUP_PHASE_INPUTS", "SETUP_PHASE", 2},
    {LL, "EXECUTION_PHASE_ONE_INPUT", 0, "WAIT_EXECUTION_PHASE_ONE_INPUTS", "EXECUTION_PHASE_ONE", 1},
    {LL, "EXECUTION_PHASE_TWO_INPUT", 0, "WAIT_EXECUTION_PHASE_TWO_INPUTS", "EXECUTION_PHASE_TWO", 1},
    {LL, "EXECUTION_PHASE_THREE_INPUT", 0, "WAIT_EXECUTION_PHASE_THREE_INPUTS",
     "EXECUTION_PHASE_THREE", 1},
    {RO, "SETUP_PHASE_INPUT", AG, "WAIT_SETUP_PHASE_INPUTS", "SETUP_PHASE", 2},
    {RO, "EXECUTION_PHASE_INPUT", 0, "WAIT_EXECUTION_PHASE_INPUTS", "EXECUTION_PHASE", 1},
    {HM, "SHUFFLE_PHASE_INPUT_ONE", SNA, "WAIT_ON_SHUFFLE_INPUT_PHASE_ONE", "SETUP_PHASE", 1},
    {HM, "SHUFFLE_PHASE_INPUT_TWO", FNA, "WAIT_ON_SHUFFLE_INPUT_PHASE_TWO", "SHUFFLE_PHASE", 1},
    {HM, "AGGREGATION_PHASE_INPUT", AG, "WAIT_ON_AGGREGATION_INPUT", "AGGREGATION_PHASE", 2},
};

static bool s_proto_role(int protocol, int role)
{
    if (protocol == DY_PROTO_HMSS)
        return role == AG || role == FNA || role == SNA;
    return role == AG || role == NA;
}

static void test_receive_rules(void **state)
{
    (void)state;
    static const int roles[] = {0, AG, NA, FNA, SNA, 7};
    int accepted = 0;
    for (int protocol = 0; protocol <= 4; protocol++) {
        for (size_t ri = 0; ri < DY_ARRAY_LEN(roles); ri++) {
            for (int desc = -1; desc <= 6; desc++) {
                const s_recv_exp_t *e = NULL;
                for (size_t i = 0; i < DY_ARRAY_LEN(s_recv_exp); i++) {
                    const s_recv_exp_t *x = &s_recv_exp[i];
                    if (x->protocol == protocol && D(protocol, x->desc) == desc &&
                        s_proto_role(protocol, roles[ri]) && (x->role == 0 || x->role == roles[ri]))
                        e = x;
                }
                dy_stage_rule_t out = {-1, -1, -1};
                int rc = dy_stage_receive_rule(protocol, roles[ri], desc, &out);
                if (!e) {
                    assert_int_equal(rc, -EINVAL);
                    continue;
                }
                assert_int_equal(rc, 0);
                assert_int_equal(out.awaited, S(protocol, e->awaited));
                assert_int_equal(out.next, S(protocol, e->next));
                assert_int_equal(out.slots, e->slots);
                assert_int_equal(dy_stage_info(protocol, out.awaited)->kind, DY_STAGE_WAIT);
                assert_int_equal(dy_stage_info(protocol, out.next)->kind, DY_STAGE_WORK);
                accepted++;
            }
        }
    }
    /* LL: 1 + 3*2, RO: 1 + 2, HMSS: 3 */
    assert_int_equal(accepted, 7 + 3 + 3);
    dy_stage_rule_t out;
    assert_int_equal(dy_stage_receive_rule(LL, AG, 1, NULL), -EINVAL);
    assert_int_equal(dy_stage_receive_rule(LL, NA, D(LL, "SETUP_PHASE_INPUT"), &out), -EINVAL);
    assert_int_equal(dy_stage_receive_rule(HM, FNA, D(HM, "SHUFFLE_PHASE_INPUT_ONE"), &out),
                     -EINVAL);
    assert_int_equal(dy_stage_receive_rule(HM, SNA, D(HM, "AGGREGATION_PHASE_INPUT"), &out),
                     -EINVAL);
}

/* Each send's description is received, by the receiver's role, at a wait
 * stage whose next stage is a work stage of that role (the machines agree
 * with each other). */
static void test_sends_meet_receive_rules(void **state)
{
    (void)state;
    for (size_t i = 0; i < DY_ARRAY_LEN(s_rows); i++) {
        const s_row_exp_t *r = &s_rows[i];
        for (int j = 0; j < r->nsends; j++) {
            int to_roles[2];
            int n = 0;
            switch (r->to[j]) {
            case DY_SEND_AGGREGATOR:
                to_roles[n++] = AG;
                break;
            case DY_SEND_NA1:
                to_roles[n++] = NA;
                break;
            case DY_SEND_SUCCESSOR: /* NA1 -> NA2, NA2 -> AG */
                to_roles[n++] = NA;
                to_roles[n++] = AG;
                break;
            case DY_SEND_PEER_NA:
                to_roles[n++] = r->role == FNA ? SNA : FNA;
                break;
            }
            for (int t = 0; t < n; t++) {
                dy_stage_rule_t out;
                assert_int_equal(
                    dy_stage_receive_rule(r->protocol, to_roles[t], D(r->protocol, r->desc[j]), &out),
                    0);
                int K = r->k == 1 ? 1 : 2;
                assert_true(dy_stage_next(r->protocol, to_roles[t], out.next, K) > 0);
            }
        }
    }
}

/* Walk each role from the initial stage to COMPLETE by the tables, taking
 * wait stages out through the receive rule (or §5.4's herald moves). */
static void test_walks(void **state)
{
    (void)state;
    typedef struct {
        int protocol, role, K;
        const char *path[16];
    } walk_t;
    static const walk_t walks[] = {
        {LL, NA, 3, {"INITIALIZATION_PHASE", "CONFIRMATION_PHASE", "SETUP_PHASE",
                     "EXECUTION_PHASE_ONE", "EXECUTION_PHASE_TWO", "EXECUTION_PHASE_THREE",
                     "COMPLETE"}},
        {LL, AG, 1, {"INITIALIZATION_PHASE", "CONFIRMATION_PHASE", "SETUP_PHASE",
                     "EXECUTION_PHASE_ONE", "EXECUTION_PHASE_TWO", "COMPLETE"}},
        {RO, AG, 1, {"INITIALIZATION_PHASE", "CONFIRMATION_PHASE", "SETUP_PHASE",
                     "EXECUTION_PHASE", "COMPLETE"}},
        {HM, FNA, 5, {"INITIALIZED", "SETUP_PHASE", "SHUFFLE_PHASE", "COMPLETE"}},
        {HM, SNA, 5, {"INITIALIZED", "SETUP_PHASE", "SHUFFLE_PHASE", "COMPLETE"}},
        {HM, AG, 5, {"INITIALIZED", "AGGREGATION_PHASE", "COMPLETE"}},
    };
    for (size_t w = 0; w < DY_ARRAY_LEN(walks); w++) {
        const walk_t *wk = &walks[w];
        int stage = dy_stage_initial(wk->protocol);
        for (int i = 0; wk->path[i]; i++) {
            assert_int_equal(stage, S(wk->protocol, wk->path[i]));
            if (dy_stage_info(wk->protocol, stage)->kind == DY_STAGE_COMPLETE)
                break;
            int next = dy_stage_next(wk->protocol, wk->role, stage, wk->K);
            assert_true(next > 0);
            /* leave wait stages: find the rule awaiting there, else the herald's move */
            if (dy_stage_info(wk->protocol, next)->kind == DY_STAGE_WAIT) {
                int to = -1;
                for (int d = 1; d <= 4; d++) {
                    dy_stage_rule_t out;
                    if (dy_stage_receive_rule(wk->protocol, wk->role, d, &out) == 0 &&
                        out.awaited == next)
                        to = out.next;
                }
                if (to < 0) /* §5.4: WAIT_REQUISITIONS_AND_KEY_SET / WAIT_TO_START */
                    to = next + 1 == S(wk->protocol, "COMPLETE") ? -1
                         : strcmp(dy_stage_name(wk->protocol, next), "WAIT_TO_START") == 0
                             ? (wk->protocol == HM ? S(HM, "SETUP_PHASE")
                                                   : S(wk->protocol, "SETUP_PHASE"))
                             : next + 1;
                next = to;
            }
            stage = next;
        }
        assert_int_equal(stage, dy_stage_complete(wk->protocol));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stage_list),
        cmocka_unit_test(test_work_rows),
        cmocka_unit_test(test_refused_transitions),
        cmocka_unit_test(test_receive_rules),
        cmocka_unit_test(test_sends_meet_receive_rules),
        cmocka_unit_test(test_walks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
