/* herald_rules.c - the herald's §5.4 decisions and token keys (herald_rules.h). */
#include "herald_rules.h"

#include "stages.h" /* includes store.h: DY_END_* */

#include <string.h>

#include "system.pb-c.h"

#define KS(x) WFA__MEASUREMENT__SYSTEM__V1ALPHA__COMPUTATION__STATE__##x

/* control.proto stage numbers used by §5.4. */
enum {
    LL_WAIT_KEYS = 2,   /* WAIT_REQUISITIONS_AND_KEY_SET */
    LL_CONFIRM = 3,     /* CONFIRMATION_PHASE */
    LL_WAIT_START = 4,  /* WAIT_TO_START */
    LL_SETUP = 6,       /* SETUP_PHASE */
    HM_WAIT_START = 2,  /* WAIT_TO_START */
    HM_SETUP = 4,       /* SETUP_PHASE */
    INITIAL = 1,        /* INITIALIZATION_PHASE / INITIALIZED */
};

int dy_herald_plan(int protocol, int role, int kingdom_state, bool exists, bool ended,
                   dy_hr_plan_t *out)
{
    memset(out, 0, sizeof(*out));
    bool ll = protocol == DY_PROTO_LLV2 || protocol == DY_PROTO_RO_LLV2;
    bool hm = protocol == DY_PROTO_HMSS;
    if (!ll && !hm)
        return -EINVAL;
    if (ll ? (role != DY_ROLE_AGG && role != DY_ROLE_NA)
           : (role != DY_ROLE_AGG && role != DY_ROLE_FNA && role != DY_ROLE_SNA))
        return -EINVAL;
    switch (kingdom_state) {
    case KS(PENDING_REQUISITION_PARAMS):
        if (!exists) {
            out->action = DY_HR_CREATE;
            out->to_stage = INITIAL;
            out->needs_secrets = hm && role != DY_ROLE_AGG;
            return 0;
        }
        break;
    case KS(PENDING_REQUISITION_FULFILLMENT):
        break;
    case KS(PENDING_PARTICIPANT_CONFIRMATION):
        if (ll) {
            out->from_stage = LL_WAIT_KEYS;
            out->to_stage = LL_CONFIRM;
        } else {
            out->unexpected = true;
        }
        break;
    case KS(PENDING_COMPUTATION):
        if (ll && role == DY_ROLE_NA) {
            out->from_stage = LL_WAIT_START;
            out->to_stage = LL_SETUP;
        } else if (hm && role == DY_ROLE_FNA) {
            out->from_stage = HM_WAIT_START;
            out->to_stage = HM_SETUP;
        }
        break;
    case KS(SUCCEEDED):
    case KS(FAILED):
    case KS(CANCELLED):
        if (exists && !ended) {
            out->action = DY_HR_END;
            out->end_reason = kingdom_state == KS(SUCCEEDED) ? DY_END_SUCCEEDED
                              : kingdom_state == KS(FAILED)  ? DY_END_FAILED
                                                             : DY_END_CANCELLED;
        } else if (exists) {
            /* Ended here first (an NA COMPLETE after its last send, or failed here): still
             * store the Kingdom's final state (§5.4), so the row tells that the computation
             * failed or was cancelled elsewhere.  No stage move. */
            out->action = DY_HR_UPDATE;
        }
        return 0;
    default:
        return -EINVAL;
    }
    if (!exists || ended) {
        out->from_stage = out->to_stage = 0;
        out->action = DY_HR_NOOP;
        return 0;
    }
    out->action = DY_HR_UPDATE;
    return 0;
}

int dy_herald_token_key(const char *token, int64_t *ret_time_us, uint64_t *ret_id)
{
    if (token == NULL)
        return -EINVAL;
    size_t n = strlen(token);
    if (n == 0 || n > 1024 || n % 4 == 1)
        return -EINVAL;
    uint8_t buf[800];
    int len = dy_b64url_decode(token, n, buf, sizeof(buf));
    if (len < 0)
        return -EINVAL;
    Wfa__Measurement__System__V1alpha__StreamActiveComputationsContinuationToken *t =
        wfa__measurement__system__v1alpha__stream_active_computations_continuation_token__unpack(
            NULL, (size_t)len, buf);
    if (t == NULL)
        return -EINVAL;
    int64_t s = t->last_seen_update_time ? t->last_seen_update_time->seconds : 0;
    int32_t ns = t->last_seen_update_time ? t->last_seen_update_time->nanos : 0;
    uint64_t id = t->last_seen_external_computation_id;
    wfa__measurement__system__v1alpha__stream_active_computations_continuation_token__free_unpacked(
        t, NULL);
    /* A Timestamp's range (years 1 to 9999): anything else is not one, and s * 10^6 would
     * overflow. */
    if (s < INT64_C(-62135596800) || s > INT64_C(253402300799) || ns < 0 || ns > 999999999)
        return -EINVAL;
    *ret_time_us = s * 1000000 + ns / 1000;
    *ret_id = id;
    return 0;
}

int dy_herald_computation_id(const char *name, char *out, size_t cap)
{
    static const char pfx[] = "computations/";
    if (name == NULL || strncmp(name, pfx, sizeof(pfx) - 1) != 0)
        return -EINVAL;
    const char *id = name + sizeof(pfx) - 1;
    size_t n = strlen(id);
    if (n == 0 || n >= cap || n >= 64)
        return -EINVAL;
    for (size_t i = 0; i < n; i++) {
        char c = id[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
              || c == '_' || c == '-'))
            return -EINVAL;
    }
    memcpy(out, id, n + 1);
    return 0;
}
