/* test_herald_rules.c - common/herald_rules.c: the §5.4 table cell by cell (create, the
 * wait -> work moves per protocol and role, terminal states, absent and ended rows,
 * impossible inputs), continuation-token keys and computation names. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "herald_rules.h"
#include "stages.h"

#include "system.pb-c.h"

enum { PRP = 1, PRF = 2, PPC = 3, PC = 4, SUC = 5, FAI = 6, CAN = 7 };

static dy_hr_plan_t s_plan(int proto, int role, int state, bool exists, bool ended)
{
    dy_hr_plan_t p;
    assert_int_equal(dy_herald_plan(proto, role, state, exists, ended, &p), 0);
    return p;
}

static void test_create(void **state)
{
    (void)state;
    dy_hr_plan_t p = s_plan(DY_PROTO_LLV2, DY_ROLE_NA, PRP, false, false);
    assert_int_equal(p.action, DY_HR_CREATE);
    assert_int_equal(p.to_stage, 1);
    assert_false(p.needs_secrets);
    p = s_plan(DY_PROTO_HMSS, DY_ROLE_FNA, PRP, false, false);
    assert_int_equal(p.action, DY_HR_CREATE);
    assert_true(p.needs_secrets);
    p = s_plan(DY_PROTO_HMSS, DY_ROLE_SNA, PRP, false, false);
    assert_true(p.needs_secrets);
    p = s_plan(DY_PROTO_HMSS, DY_ROLE_AGG, PRP, false, false);
    assert_false(p.needs_secrets);
    /* exists: store only, no move */
    p = s_plan(DY_PROTO_LLV2, DY_ROLE_AGG, PRP, true, false);
    assert_int_equal(p.action, DY_HR_UPDATE);
    assert_int_equal(p.from_stage, 0);
}

static void test_moves(void **state)
{
    (void)state;
    dy_hr_plan_t p = s_plan(DY_PROTO_LLV2, DY_ROLE_NA, PPC, true, false);
    assert_int_equal(p.action, DY_HR_UPDATE);
    assert_int_equal(p.from_stage, 2); /* WAIT_REQUISITIONS_AND_KEY_SET */
    assert_int_equal(p.to_stage, 3);   /* CONFIRMATION_PHASE */
    p = s_plan(DY_PROTO_RO_LLV2, DY_ROLE_AGG, PPC, true, false);
    assert_int_equal(p.from_stage, 2);
    p = s_plan(DY_PROTO_HMSS, DY_ROLE_FNA, PPC, true, false);
    assert_true(p.unexpected);
    assert_int_equal(p.from_stage, 0);
    p = s_plan(DY_PROTO_LLV2, DY_ROLE_NA, PC, true, false);
    assert_int_equal(p.from_stage, 4); /* WAIT_TO_START */
    assert_int_equal(p.to_stage, 6);   /* SETUP_PHASE */
    p = s_plan(DY_PROTO_LLV2, DY_ROLE_AGG, PC, true, false);
    assert_int_equal(p.action, DY_HR_UPDATE);
    assert_int_equal(p.from_stage, 0);
    p = s_plan(DY_PROTO_HMSS, DY_ROLE_FNA, PC, true, false);
    assert_int_equal(p.from_stage, 2);
    assert_int_equal(p.to_stage, 4);
    p = s_plan(DY_PROTO_HMSS, DY_ROLE_SNA, PC, true, false);
    assert_int_equal(p.from_stage, 0);
    p = s_plan(DY_PROTO_LLV2, DY_ROLE_NA, PRF, true, false);
    assert_int_equal(p.action, DY_HR_UPDATE);
    assert_int_equal(p.from_stage, 0);
    /* absent or ended: nothing */
    p = s_plan(DY_PROTO_LLV2, DY_ROLE_NA, PC, false, false);
    assert_int_equal(p.action, DY_HR_NOOP);
    p = s_plan(DY_PROTO_LLV2, DY_ROLE_NA, PPC, true, true);
    assert_int_equal(p.action, DY_HR_NOOP);
    assert_int_equal(p.from_stage, 0);
}

static void test_terminal(void **state)
{
    (void)state;
    dy_hr_plan_t p = s_plan(DY_PROTO_LLV2, DY_ROLE_NA, SUC, true, false);
    assert_int_equal(p.action, DY_HR_END);
    assert_int_equal(p.end_reason, DY_END_SUCCEEDED);
    p = s_plan(DY_PROTO_HMSS, DY_ROLE_AGG, FAI, true, false);
    assert_int_equal(p.end_reason, DY_END_FAILED);
    p = s_plan(DY_PROTO_HMSS, DY_ROLE_SNA, CAN, true, false);
    assert_int_equal(p.end_reason, DY_END_CANCELLED);
    p = s_plan(DY_PROTO_LLV2, DY_ROLE_NA, CAN, false, false);
    assert_int_equal(p.action, DY_HR_NOOP);
    /* ended here first (an NA COMPLETE after its last send, then the Kingdom says FAILED):
     * store the final state, move nothing */
    p = s_plan(DY_PROTO_LLV2, DY_ROLE_NA, CAN, true, true);
    assert_int_equal(p.action, DY_HR_UPDATE);
    assert_int_equal(p.from_stage, 0);
    p = s_plan(DY_PROTO_HMSS, DY_ROLE_SNA, FAI, true, true);
    assert_int_equal(p.action, DY_HR_UPDATE);
    assert_int_equal(p.from_stage, 0);
    assert_int_equal(p.end_reason, 0);
    p = s_plan(DY_PROTO_HMSS, DY_ROLE_AGG, SUC, true, true);
    assert_int_equal(p.action, DY_HR_UPDATE);
    assert_int_equal(p.from_stage, 0);
}

static void test_invalid(void **state)
{
    (void)state;
    dy_hr_plan_t p;
    assert_int_equal(dy_herald_plan(0, DY_ROLE_NA, PRP, false, false, &p), -EINVAL);
    assert_int_equal(dy_herald_plan(DY_PROTO_LLV2, DY_ROLE_FNA, PRP, false, false, &p), -EINVAL);
    assert_int_equal(dy_herald_plan(DY_PROTO_HMSS, DY_ROLE_NA, PRP, false, false, &p), -EINVAL);
    assert_int_equal(dy_herald_plan(DY_PROTO_LLV2, DY_ROLE_NA, 0, true, false, &p), -EINVAL);
    assert_int_equal(dy_herald_plan(DY_PROTO_LLV2, DY_ROLE_NA, 8, true, false, &p), -EINVAL);
}

/* base64url (unpadded) of a serialized token, written here independently. */
static void s_token(int64_t secs, int32_t nanos, uint64_t id, char *out)
{
    Google__Protobuf__Timestamp ts = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
    ts.seconds = secs;
    ts.nanos = nanos;
    Wfa__Measurement__System__V1alpha__StreamActiveComputationsContinuationToken t =
        WFA__MEASUREMENT__SYSTEM__V1ALPHA__STREAM_ACTIVE_COMPUTATIONS_CONTINUATION_TOKEN__INIT;
    t.last_seen_update_time = &ts;
    t.last_seen_external_computation_id = id;
    uint8_t b[64];
    size_t n = wfa__measurement__system__v1alpha__stream_active_computations_continuation_token__pack(
        &t, b);
    static const char al[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)b[i] << 16 | (i + 1 < n ? (uint32_t)b[i + 1] << 8 : 0)
                     | (i + 2 < n ? b[i + 2] : 0);
        out[o++] = al[v >> 18 & 63];
        out[o++] = al[v >> 12 & 63];
        if (i + 1 < n)
            out[o++] = al[v >> 6 & 63];
        if (i + 2 < n)
            out[o++] = al[v & 63];
    }
    out[o] = '\0';
}

static void test_token(void **state)
{
    (void)state;
    char tok[128];
    int64_t t;
    uint64_t id;
    s_token(1700000000, 123456789, 0x0102030405060708ull, tok);
    assert_int_equal(dy_herald_token_key(tok, &t, &id), 0);
    assert_true(t == 1700000000LL * 1000000 + 123456);
    assert_true(id == 0x0102030405060708ull);
    assert_int_equal(dy_herald_token_key("", &t, &id), -EINVAL);
    assert_int_equal(dy_herald_token_key("ab+c", &t, &id), -EINVAL);
    assert_int_equal(dy_herald_token_key("a", &t, &id), -EINVAL);
    /* Not a Timestamp (years 1-9999): refused, not an overflowing s * 10^6. */
    s_token(INT64_MAX / 2, 0, 1, tok);
    assert_int_equal(dy_herald_token_key(tok, &t, &id), -EINVAL);
    s_token(1700000000, 1000000000, 1, tok);
    assert_int_equal(dy_herald_token_key(tok, &t, &id), -EINVAL);
    char id2[64];
    assert_int_equal(dy_herald_computation_id("computations/AAAAAAAAAAE", id2, sizeof(id2)), 0);
    assert_string_equal(id2, "AAAAAAAAAAE");
    assert_int_equal(dy_herald_computation_id("computations/", id2, sizeof(id2)), -EINVAL);
    assert_int_equal(dy_herald_computation_id("computations/a/b", id2, sizeof(id2)), -EINVAL);
    assert_int_equal(dy_herald_computation_id("measurements/a", id2, sizeof(id2)), -EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_create),   cmocka_unit_test(test_moves),
        cmocka_unit_test(test_terminal), cmocka_unit_test(test_invalid),
        cmocka_unit_test(test_token),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
