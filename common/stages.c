/* stages.c - the duchy's stage machines of PROTOCOL.md §5 as static tables
 * (STYLE.md rule 16): one table of stages per protocol, one table of work
 * rows (protocol, role, stage) -> computes, effect, next, sends, and one
 * table of §6.1 receive rules.  Anything not in a table is refused with
 * -EINVAL / NULL / false: an unlisted transition is a bug (§5).
 *
 * What "computes" means here: the stage runs duchy-mill.  LLv2 and RO-LLv2
 * INITIALIZATION_PHASE computes (key pair, reused from the secrets blob);
 * CONFIRMATION_PHASE does not: its checks and ConfirmComputationParticipant
 * are the participant's StageEffects CONFIRM, and the combined/partial keys
 * are derived by each later mill from the ring's public keys.  HMSS
 * INITIALIZED does not compute (the herald made the key pair and seed; the
 * participant signs the key).
 */
#include "stages.h"

/* ---- stages ---------------------------------------------------------- */

static const dy_stage_info_t s_llv2_stages[] = {
    {1, "INITIALIZATION_PHASE", DY_STAGE_WORK, true, true},
    {2, "WAIT_REQUISITIONS_AND_KEY_SET", DY_STAGE_WAIT, false, false},
    {3, "CONFIRMATION_PHASE", DY_STAGE_WORK, false, false},
    {4, "WAIT_TO_START", DY_STAGE_WAIT, false, false},
    {5, "WAIT_SETUP_PHASE_INPUTS", DY_STAGE_WAIT, false, false},
    {6, "SETUP_PHASE", DY_STAGE_WORK, false, false},
    {7, "WAIT_EXECUTION_PHASE_ONE_INPUTS", DY_STAGE_WAIT, false, false},
    {8, "EXECUTION_PHASE_ONE", DY_STAGE_WORK, false, false},
    {9, "WAIT_EXECUTION_PHASE_TWO_INPUTS", DY_STAGE_WAIT, false, false},
    {10, "EXECUTION_PHASE_TWO", DY_STAGE_WORK, false, false},
    {11, "WAIT_EXECUTION_PHASE_THREE_INPUTS", DY_STAGE_WAIT, false, false},
    {12, "EXECUTION_PHASE_THREE", DY_STAGE_WORK, false, false},
    {13, "COMPLETE", DY_STAGE_COMPLETE, false, false},
};

static const dy_stage_info_t s_rollv2_stages[] = {
    {1, "INITIALIZATION_PHASE", DY_STAGE_WORK, true, true},
    {2, "WAIT_REQUISITIONS_AND_KEY_SET", DY_STAGE_WAIT, false, false},
    {3, "CONFIRMATION_PHASE", DY_STAGE_WORK, false, false},
    {4, "WAIT_TO_START", DY_STAGE_WAIT, false, false},
    {5, "WAIT_SETUP_PHASE_INPUTS", DY_STAGE_WAIT, false, false},
    {6, "SETUP_PHASE", DY_STAGE_WORK, false, false},
    {7, "WAIT_EXECUTION_PHASE_INPUTS", DY_STAGE_WAIT, false, false},
    {8, "EXECUTION_PHASE", DY_STAGE_WORK, false, false},
    {9, "COMPLETE", DY_STAGE_COMPLETE, false, false},
};

static const dy_stage_info_t s_hmss_stages[] = {
    {1, "INITIALIZED", DY_STAGE_WORK, true, true},
    {2, "WAIT_TO_START", DY_STAGE_WAIT, false, false},
    {3, "WAIT_ON_SHUFFLE_INPUT_PHASE_ONE", DY_STAGE_WAIT, false, false},
    {4, "SETUP_PHASE", DY_STAGE_WORK, false, false},
    {5, "WAIT_ON_SHUFFLE_INPUT_PHASE_TWO", DY_STAGE_WAIT, false, false},
    {6, "WAIT_ON_AGGREGATION_INPUT", DY_STAGE_WAIT, false, false},
    {7, "SHUFFLE_PHASE", DY_STAGE_WORK, false, false},
    {8, "AGGREGATION_PHASE", DY_STAGE_WORK, false, false},
    {9, "COMPLETE", DY_STAGE_COMPLETE, false, false},
};

typedef struct {
    const dy_stage_info_t *stages; /* indexed by stage - 1 */
    size_t n;
} s_machine_t;

static const s_machine_t *s_machine(int protocol)
{
    static const s_machine_t m[] = {
        [DY_PROTO_LLV2] = {s_llv2_stages, DY_ARRAY_LEN(s_llv2_stages)},
        [DY_PROTO_RO_LLV2] = {s_rollv2_stages, DY_ARRAY_LEN(s_rollv2_stages)},
        [DY_PROTO_HMSS] = {s_hmss_stages, DY_ARRAY_LEN(s_hmss_stages)},
    };
    if (protocol < DY_PROTO_LLV2 || protocol > DY_PROTO_HMSS)
        return NULL;
    return &m[protocol];
}

const dy_stage_info_t *dy_stage_info(int protocol, int stage)
{
    const s_machine_t *m = s_machine(protocol);
    if (!m || stage < 1 || (size_t)stage > m->n)
        return NULL;
    return &m->stages[stage - 1];
}

const char *dy_stage_name(int protocol, int stage)
{
    const dy_stage_info_t *i = dy_stage_info(protocol, stage);
    return i ? i->name : "UNKNOWN";
}

int dy_stage_initial(int protocol)
{
    return s_machine(protocol) ? 1 : -EINVAL;
}

int dy_stage_complete(int protocol)
{
    const s_machine_t *m = s_machine(protocol);
    return m ? (int)m->n : -EINVAL;
}

/* ---- work rows ------------------------------------------------------- */

/* Which maximum frequencies a row applies to (LLv2 EXECUTION_PHASE_TWO). */
enum { K_ANY = 0, K_ONE = 1, K_MANY = 2 };

/* Description numbers (control.proto). */
enum { LL_SETUP = 1, LL_EXEC1 = 2, LL_EXEC2 = 3, LL_EXEC3 = 4 };
enum { RO_SETUP = 1, RO_EXEC = 2 };
enum { HM_SHUFFLE1 = 1, HM_SHUFFLE2 = 2, HM_AGG = 3 };

typedef struct {
    int protocol;
    int role;     /* DY_ROLE_*; rows are per role */
    int stage;    /* a work stage */
    int kmode;    /* K_ANY, K_ONE, K_MANY */
    bool computes;
    dy_stage_effect_t effect;
    int next;
    int nsends;
    dy_send_t sends[2];
} s_work_t;

#define AG DY_ROLE_AGG
#define NA DY_ROLE_NA
#define FNA DY_ROLE_FNA
#define SNA DY_ROLE_SNA
#define LL DY_PROTO_LLV2
#define RO DY_PROTO_RO_LLV2
#define HM DY_PROTO_HMSS

static const s_work_t s_work[] = {
    /* §5.1 LLv2 */
    {LL, NA, 1, K_ANY, true, DY_FX_SET_PARAMS, 2, 0, {{0}}},
    {LL, AG, 1, K_ANY, true, DY_FX_SET_PARAMS, 2, 0, {{0}}},
    {LL, NA, 3, K_ANY, false, DY_FX_CONFIRM, 4, 0, {{0}}},
    {LL, AG, 3, K_ANY, false, DY_FX_CONFIRM, 5, 0, {{0}}},
    {LL, NA, 6, K_ANY, true, DY_FX_SEND, 7, 1, {{DY_SEND_AGGREGATOR, LL_SETUP}}},
    {LL, AG, 6, K_ANY, true, DY_FX_SEND, 7, 1, {{DY_SEND_NA1, LL_EXEC1}}},
    {LL, NA, 8, K_ANY, true, DY_FX_SEND, 9, 1, {{DY_SEND_SUCCESSOR, LL_EXEC1}}},
    {LL, AG, 8, K_ANY, true, DY_FX_SEND, 9, 1, {{DY_SEND_NA1, LL_EXEC2}}},
    {LL, NA, 10, K_MANY, true, DY_FX_SEND, 11, 1, {{DY_SEND_SUCCESSOR, LL_EXEC2}}},
    {LL, NA, 10, K_ONE, true, DY_FX_SEND, 13, 1, {{DY_SEND_SUCCESSOR, LL_EXEC2}}},
    {LL, AG, 10, K_MANY, true, DY_FX_SEND, 11, 1, {{DY_SEND_NA1, LL_EXEC3}}},
    {LL, AG, 10, K_ONE, true, DY_FX_SUBMIT, 13, 0, {{0}}},
    {LL, NA, 12, K_MANY, true, DY_FX_SEND, 13, 1, {{DY_SEND_SUCCESSOR, LL_EXEC3}}},
    {LL, AG, 12, K_MANY, true, DY_FX_SUBMIT, 13, 0, {{0}}},
    /* §5.2 RO-LLv2 */
    {RO, NA, 1, K_ANY, true, DY_FX_SET_PARAMS, 2, 0, {{0}}},
    {RO, AG, 1, K_ANY, true, DY_FX_SET_PARAMS, 2, 0, {{0}}},
    {RO, NA, 3, K_ANY, false, DY_FX_CONFIRM, 4, 0, {{0}}},
    {RO, AG, 3, K_ANY, false, DY_FX_CONFIRM, 5, 0, {{0}}},
    {RO, NA, 6, K_ANY, true, DY_FX_SEND, 7, 1, {{DY_SEND_AGGREGATOR, RO_SETUP}}},
    {RO, AG, 6, K_ANY, true, DY_FX_SEND, 7, 1, {{DY_SEND_NA1, RO_EXEC}}},
    {RO, NA, 8, K_ANY, true, DY_FX_SEND, 9, 1, {{DY_SEND_SUCCESSOR, RO_EXEC}}},
    {RO, AG, 8, K_ANY, true, DY_FX_SUBMIT, 9, 0, {{0}}},
    /* §5.3 HMSS */
    {HM, FNA, 1, K_ANY, false, DY_FX_SET_PARAMS, 2, 0, {{0}}},
    {HM, SNA, 1, K_ANY, false, DY_FX_SET_PARAMS, 3, 0, {{0}}},
    {HM, AG, 1, K_ANY, false, DY_FX_SET_PARAMS, 6, 0, {{0}}},
    {HM, FNA, 4, K_ANY, true, DY_FX_SEND, 5, 1, {{DY_SEND_PEER_NA, HM_SHUFFLE1}}},
    {HM, SNA, 4, K_ANY, true, DY_FX_SEND, 7, 1, {{DY_SEND_PEER_NA, HM_SHUFFLE2}}},
    {HM, FNA, 7, K_ANY, true, DY_FX_SEND, 9, 1, {{DY_SEND_AGGREGATOR, HM_AGG}}},
    {HM, SNA, 7, K_ANY, true, DY_FX_SEND, 9, 1, {{DY_SEND_AGGREGATOR, HM_AGG}}},
    {HM, AG, 8, K_ANY, true, DY_FX_SUBMIT, 9, 0, {{0}}},
};

static const s_work_t *s_work_row(int protocol, int role, int stage, int max_frequency)
{
    for (size_t i = 0; i < DY_ARRAY_LEN(s_work); i++) {
        const s_work_t *w = &s_work[i];
        if (w->protocol != protocol || w->role != role || w->stage != stage)
            continue;
        if (w->kmode == K_ANY)
            return w;
        if (max_frequency < 1)
            return NULL; /* K must be known for a K-dependent row */
        if ((w->kmode == K_ONE) == (max_frequency == 1))
            return w;
    }
    return NULL;
}

bool dy_stage_computes(int protocol, int role, int stage)
{
    /* Whether a stage computes does not depend on K: any row will do. */
    const s_work_t *w = s_work_row(protocol, role, stage, 2);
    return w && w->computes;
}

dy_stage_effect_t dy_stage_effect(int protocol, int role, int stage, int max_frequency)
{
    const s_work_t *w = s_work_row(protocol, role, stage, max_frequency);
    return w ? w->effect : DY_FX_NONE;
}

int dy_stage_next(int protocol, int role, int stage, int max_frequency)
{
    const s_work_t *w = s_work_row(protocol, role, stage, max_frequency);
    return w ? w->next : -EINVAL;
}

int dy_stage_sends(int protocol, int role, int stage, int max_frequency, dy_send_t out[2])
{
    const s_work_t *w = s_work_row(protocol, role, stage, max_frequency);
    if (!w)
        return -EINVAL;
    for (int i = 0; i < w->nsends; i++)
        out[i] = w->sends[i];
    return w->nsends;
}

/* ---- §6.1 receive rules ---------------------------------------------- */

typedef struct {
    int protocol;
    int description;
    int role;     /* the receiver's role; 0 = any role of the protocol */
    int awaited;
    int next;
    int slots;
} s_recv_t;

static const s_recv_t s_recv[] = {
    {LL, LL_SETUP, AG, 5, 6, 2},
    {LL, LL_EXEC1, 0, 7, 8, 1},
    {LL, LL_EXEC2, 0, 9, 10, 1},
    {LL, LL_EXEC3, 0, 11, 12, 1},
    {RO, RO_SETUP, AG, 5, 6, 2},
    {RO, RO_EXEC, 0, 7, 8, 1},
    {HM, HM_SHUFFLE1, SNA, 3, 4, 1},
    {HM, HM_SHUFFLE2, FNA, 5, 7, 1},
    {HM, HM_AGG, AG, 6, 8, 2},
};

/* The roles a protocol knows. */
static bool s_role_ok(int protocol, int role)
{
    switch (protocol) {
    case DY_PROTO_LLV2:
    case DY_PROTO_RO_LLV2:
        return role == DY_ROLE_AGG || role == DY_ROLE_NA;
    case DY_PROTO_HMSS:
        return role == DY_ROLE_AGG || role == DY_ROLE_FNA || role == DY_ROLE_SNA;
    default:
        return false;
    }
}

int dy_stage_receive_rule(int protocol, int role, int description, dy_stage_rule_t *out)
{
    if (!out || !s_role_ok(protocol, role))
        return -EINVAL;
    for (size_t i = 0; i < DY_ARRAY_LEN(s_recv); i++) {
        const s_recv_t *r = &s_recv[i];
        if (r->protocol != protocol || r->description != description)
            continue;
        if (r->role != 0 && r->role != role)
            return -EINVAL;
        out->awaited = r->awaited;
        out->next = r->next;
        out->slots = r->slots;
        return 0;
    }
    return -EINVAL;
}
