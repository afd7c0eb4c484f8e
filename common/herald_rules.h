/* herald_rules.h - the herald's decisions (PROTOCOL.md §5.4, §7.2) without sockets or a
 * store, so the table is unit-tested: what one StreamActiveComputations item does to the
 * local computation, and the ordering key of a continuation token.
 *
 * §5.4 as a table indexed by the item's Kingdom state, refined by protocol and role:
 *
 *   Kingdom state                     LLv2 / RO-LLv2                 HMSS
 *   PENDING_REQUISITION_PARAMS        create @INITIALIZATION_PHASE   create @INITIALIZED
 *                                     (exists: store only)           (NAs: seed + key pair)
 *   PENDING_REQUISITION_FULFILLMENT   store (not streamed)           store
 *   PENDING_PARTICIPANT_CONFIRMATION  store; WAIT_REQUISITIONS_AND_  store, log "does not occur"
 *                                     KEY_SET -> CONFIRMATION_PHASE
 *   PENDING_COMPUTATION               store; NA: WAIT_TO_START ->    store; FNA: WAIT_TO_START ->
 *                                     SETUP_PHASE                    SETUP_PHASE
 *   SUCCEEDED / FAILED / CANCELLED    store; COMPLETE(reason) unless ended; publish the
 *                                     cancellation so claimers kill workers at once; a
 *                                     row that already ended only stores the state
 * A non-creating item for a computation absent locally is a no-op (logged).
 */
#ifndef DY_HERALD_RULES_H
#define DY_HERALD_RULES_H

#include "dy.h"

typedef enum {
    DY_HR_NOOP = 0,  /* nothing to do (absent and not creatable, or already ended) */
    DY_HR_CREATE,    /* create at `to_stage` (WORK); absent only */
    DY_HR_UPDATE,    /* store Kingdom state and details (none for a terminal item); then
                      * advance if from_stage > 0 */
    DY_HR_END,       /* store the state, COMPLETE with end_reason, publish cancellation */
} dy_hr_action_t;

typedef struct {
    dy_hr_action_t action;
    int from_stage;     /* UPDATE: the wait stage left (0: none) */
    int to_stage;       /* CREATE: the initial stage; UPDATE: the work stage entered */
    int end_reason;     /* END: DY_END_SUCCEEDED / FAILED / CANCELLED (store.h values) */
    bool needs_secrets; /* CREATE: an HMSS non-aggregator's seed and ECIES key pair */
    bool unexpected;    /* the state does not occur for this protocol (log it) */
} dy_hr_plan_t;

/* The plan for an item: protocol and role (stages.h values; for an absent computation
 * the ones dy_details_build derived), the item's Kingdom state, whether the computation
 * exists locally and whether it has ended.  0 or -EINVAL (unknown protocol, role or
 * state). */
int dy_herald_plan(int protocol, int role, int kingdom_state, bool exists, bool ended,
                   dy_hr_plan_t *out);

/* The (update_time in us, external id) key of a continuation token (base64url, unpadded,
 * of a serialized StreamActiveComputationsContinuationToken).  0 or -EINVAL. */
int dy_herald_token_key(const char *token, int64_t *ret_time_us, uint64_t *ret_id);

/* The bare computation id of "computations/{id}" into out (DY_ID_MAX).  0 or -EINVAL. */
int dy_herald_computation_id(const char *name, char *out, size_t cap);

#endif
