/* stages.h - the duchy's per-protocol stage machines (PROTOCOL.md §5) as
 * tables: stage names and kinds, the next stage of a work stage per role,
 * what a stage computes and which effects it has, and the AdvanceComputation
 * receive rules (§6.1) and sends (§6.2).  Numbers are the control.proto
 * stage enums; protocols and roles the halo.internal.v1 enums.
 */
#ifndef DY_STAGES_H
#define DY_STAGES_H

#include "dy.h"
#include "store.h" /* dy_stage_kind_t (DY_STAGE_WORK / WAIT / COMPLETE) */

/* halo.internal.v1.Protocol */
enum { DY_PROTO_LLV2 = 1, DY_PROTO_RO_LLV2 = 2, DY_PROTO_HMSS = 3 };
/* halo.internal.v1.Role */
enum { DY_ROLE_AGG = 1, DY_ROLE_NA = 2, DY_ROLE_FNA = 3, DY_ROLE_SNA = 4 };


/* What a work stage does after its crypto (docs/cluster.md). */
typedef enum {
    DY_FX_NONE = 0,
    DY_FX_SET_PARAMS,   /* participant: SetParticipantRequisitionParams */
    DY_FX_CONFIRM,      /* participant: checks + ConfirmComputationParticipant */
    DY_FX_SEND,         /* coordinator: AdvanceComputation to receivers */
    DY_FX_SUBMIT,       /* submitter: SetComputationResult */
    DY_FX_SEND_SUBMIT,  /* both (none in §5 today; kept for completeness) */
} dy_stage_effect_t;

typedef struct {
    int stage;              /* enum number */
    const char *name;       /* e.g. "EXECUTION_PHASE_ONE" */
    dy_stage_kind_t kind;
    bool initial;           /* INITIALIZATION_PHASE / INITIALIZED */
    bool prioritized;       /* claimed first (§7.1) */
} dy_stage_info_t;

/* The stage's entry, or NULL for an unknown (protocol, stage). */
const dy_stage_info_t *dy_stage_info(int protocol, int stage);
const char *dy_stage_name(int protocol, int stage);  /* "UNKNOWN" if unknown */
int dy_stage_initial(int protocol);
int dy_stage_complete(int protocol);

/* Whether the role runs the mill in this work stage, and the effect that
 * follows (max_frequency: K = 1 ends LLv2 in EXECUTION_PHASE_TWO). */
bool dy_stage_computes(int protocol, int role, int stage);
dy_stage_effect_t dy_stage_effect(int protocol, int role, int stage, int max_frequency);

/* The next stage after a work stage for the role, or -EINVAL for a
 * transition §5 does not list (a bug). */
int dy_stage_next(int protocol, int role, int stage, int max_frequency);

/* §6.1: for an AdvanceComputation description received by `role`, the
 * awaited (wait) stage, the work stage it leads to, and the number of
 * slots (1, or 2 for the aggregator's setup and aggregation inputs).
 * -EINVAL if the description does not fit the role. */
typedef struct {
    int awaited;
    int next;
    int slots;
} dy_stage_rule_t; /* not dy_receive_rule_t: store.h has that name (dy_store_receive) */
int dy_stage_receive_rule(int protocol, int role, int description, dy_stage_rule_t *out);

/* §5 "Sends": after work stage `stage` the role sends `description` to
 * `to` (DY_SEND_*); up to 2 sends.  Returns the number of sends. */
enum { DY_SEND_SUCCESSOR = 1, DY_SEND_AGGREGATOR = 2, DY_SEND_PEER_NA = 3, DY_SEND_NA1 = 4 };
typedef struct {
    int to;
    int description;
} dy_send_t;
int dy_stage_sends(int protocol, int role, int stage, int max_frequency, dy_send_t out[2]);

#endif
