/* kingdom_fsm.h - the Kingdom's computation state machine (PROTOCOL.md §4, §6.3) as a table,
 * over an in-memory model of one computation with its participants and requisitions.
 *
 * No database, no sockets, no protobuf: the handlers (kingdom_api.c) load a computation
 * (kingdom_db.c), turn a request into a dy_kd_event_t, run dy_kd_fsm_apply, and store what
 * the action marked dirty, all inside one write transaction.
 *
 * Table: s_actions[computation state][trigger] -> action.  Cells that §4 does not allow point
 * to s_invalid (FAILED_PRECONDITION), except the §6.3 replays, whose cells point to
 * "replay-only" actions: byte-identical repeats answer OK and change nothing, anything else is
 * invalid.  Row DY_KD_COMP_NONE is "the computation does not exist" (only CREATE is allowed).
 *
 *   state \ trigger   CREATE  SET_PARAMS  FULFILL  REFUSE  CONFIRM  SET_RESULT  FAIL   CANCEL  EXPIRE
 *   NONE              create  -           -        -       -        -           -      -       -
 *   P_REQ_PARAMS      -       params      ful/rp   -       conf/rp  -           fail   cancel  expire
 *   P_REQ_FULFILL     -       params/rp   fulfill  refuse  conf/rp  -           fail   cancel  expire
 *   P_PART_CONFIRM    -       params/rp   ful/rp   -       confirm  -           fail   cancel  expire
 *   P_COMPUTATION     -       params/rp   ful/rp   -       conf/rp  result      fail   cancel  expire
 *   SUCCEEDED         -       params/rp   ful/rp   -       conf/rp  result/rp   fail/rp -      -
 *   FAILED            -       params/rp   ful/rp   -       conf/rp  -           fail/rp -      -
 *   CANCELLED         -       params/rp   ful/rp   -       conf/rp  -           fail/rp noop   -
 *   ("/rp" = replay only; "-" = s_invalid)
 *
 * Sub-states.  Participant: CREATED -> REQUISITION_PARAMS_SET -> READY (LLv2, RO-LLv2) or
 * CREATED -> READY (HMSS); non-terminal -> FAILED.  Requisition: PENDING_PARAMS -> UNFULFILLED
 * -> FULFILLED | REFUSED; PENDING_PARAMS | UNFULFILLED -> WITHDRAWN.
 *
 * Order of checks inside an action (the handlers rely on it): replay (OK, no change) -> etag
 * (ABORTED) -> state conditions (FAILED_PRECONDITION) -> transition.  A replay wins over a
 * stale etag because the caller's retry carries the etag it read before its first attempt.
 */
#ifndef DY_KINGDOM_FSM_H
#define DY_KINGDOM_FSM_H

#include "dy.h"

#define DY_KD_PARTICIPANTS 3 /* three duchies per computation */
#define DY_KD_ID_MAX 64      /* a duchy / EDP / MC id with its NUL */
#define DY_KD_HASH_LEN 32    /* SHA-256 */

/* The computation's protocol: the MpcProtocolConfig oneof numbers. */
typedef enum {
    DY_KD_PROTO_NONE = 0,
    DY_KD_PROTO_LLV2 = 1,   /* liquid_legions_v2 */
    DY_KD_PROTO_ROLLV2 = 2, /* reach_only_liquid_legions_v2 */
    DY_KD_PROTO_HMSS = 3,   /* honest_majority_share_shuffle */
    _DY_KD_PROTO_MAX,
} dy_kd_protocol_t;

/* A participant's role (PROTOCOL.md intro).  LLv2 and RO-LLv2 use AGGREGATOR and
 * NON_AGGREGATOR; HMSS uses AGGREGATOR, FIRST_ and SECOND_NON_AGGREGATOR. */
typedef enum {
    DY_KD_ROLE_AGGREGATOR = 0,
    DY_KD_ROLE_NON_AGGREGATOR = 1,
    DY_KD_ROLE_FIRST_NON_AGGREGATOR = 2,
    DY_KD_ROLE_SECOND_NON_AGGREGATOR = 3,
    _DY_KD_ROLE_MAX,
} dy_kd_role_t;

/* Computation states: the system API's Computation.State numbers; NONE = absent. */
typedef enum {
    DY_KD_COMP_NONE = 0,
    DY_KD_COMP_PENDING_REQUISITION_PARAMS = 1,
    DY_KD_COMP_PENDING_REQUISITION_FULFILLMENT = 2,
    DY_KD_COMP_PENDING_PARTICIPANT_CONFIRMATION = 3,
    DY_KD_COMP_PENDING_COMPUTATION = 4,
    DY_KD_COMP_SUCCEEDED = 5,
    DY_KD_COMP_FAILED = 6,
    DY_KD_COMP_CANCELLED = 7,
    _DY_KD_COMP_MAX,
} dy_kd_comp_state_t;

/* Participant states: ComputationParticipant.State numbers. */
typedef enum {
    DY_KD_PART_CREATED = 1,
    DY_KD_PART_REQUISITION_PARAMS_SET = 2,
    DY_KD_PART_READY = 3,
    DY_KD_PART_FAILED = 4,
} dy_kd_part_state_t;

/* Requisition states: the system Requisition.State numbers, plus the Kingdom-internal
 * PENDING_PARAMS (shown to duchies as UNFULFILLED, invisible to EDPs). */
typedef enum {
    DY_KD_REQ_UNFULFILLED = 1,
    DY_KD_REQ_FULFILLED = 2,
    DY_KD_REQ_REFUSED = 3,
    DY_KD_REQ_WITHDRAWN = 4,
    DY_KD_REQ_PENDING_PARAMS = 5,
} dy_kd_req_state_t;

/* Measurement.Failure.Reason numbers. */
typedef enum {
    DY_KD_FAILURE_NONE = 0,
    DY_KD_FAILURE_CERTIFICATE_REVOKED = 1,
    DY_KD_FAILURE_REQUISITION_REFUSED = 2,
    DY_KD_FAILURE_COMPUTATION_PARTICIPANT_FAILED = 3,
} dy_kd_failure_t;

typedef struct {
    char duchy[DY_KD_ID_MAX]; /* duchy id (the name's last segment) */
    dy_kd_role_t role;
    dy_kd_part_state_t state;
    dy_buf_t params;  /* owned: serialized RequisitionParams (duchy_certificate_der cleared) */
    dy_buf_t failure; /* owned: serialized ComputationParticipant.Failure, when FAILED */
    int64_t version;  /* row version = etag; bumped by the store on every change */
    int64_t update_us; /* last change, microseconds since the epoch */
    bool dirty;       /* set by actions: the row must be written */
} dy_kd_part_t;

typedef struct {
    uint64_t id;                 /* external requisition id (nonzero, < 2^63) */
    char edp[DY_KD_ID_MAX];      /* data provider id */
    dy_kd_req_state_t state;
    uint8_t spec_hash[DY_KD_HASH_LEN];  /* SHA-256 of the encrypted RequisitionSpec */
    uint8_t nonce_hash[DY_KD_HASH_LEN]; /* SHA-256 of the nonce's 8 big-endian bytes */
    uint64_t nonce;              /* when FULFILLED */
    int fulfiller;               /* participant index, -1 = none */
    int assigned;                /* HMSS: participant index fixed at creation; else -1 */
    bool visible;                /* reached UNFULFILLED once: EDPs may list it */
    dy_buf_t context;            /* owned: serialized system FulfillmentContext */
    dy_buf_t refusal;            /* owned: serialized public Requisition.Refusal */
    int64_t version;             /* row version = etag */
    int64_t update_us;
    bool dirty;
} dy_kd_req_t;

typedef struct {
    uint64_t id;                 /* external computation id = measurement id (< 2^63) */
    char mc[DY_KD_ID_MAX];       /* measurement consumer id */
    dy_kd_protocol_t protocol;
    dy_kd_comp_state_t state;
    int64_t create_us;
    int64_t update_us;           /* the stream key's time (§7.2) */
    dy_buf_t spec;               /* owned: serialized MeasurementSpec */
    dy_buf_t mpc_config;         /* owned: serialized system MpcProtocolConfig */
    char *aggregator_cert;       /* owned, NULL until SUCCEEDED */
    dy_buf_t result_key;         /* owned: result_public_key, when SUCCEEDED */
    dy_buf_t result;             /* owned: encrypted_result, when SUCCEEDED */
    char *api_version;           /* owned, NULL until SUCCEEDED */
    dy_kd_failure_t failure_reason; /* measurement failure */
    char *failure_message;       /* owned, NULL = none */
    size_t nparts;               /* DY_KD_PARTICIPANTS once created */
    dy_kd_part_t parts[DY_KD_PARTICIPANTS];
    size_t nreqs;
    dy_kd_req_t *reqs;           /* owned array of nreqs */
    bool dirty;                  /* the computation row changed */
} dy_kd_comp_t;

/* Frees what comp owns and zeroes it.  NULL-safe. */
void dy_kd_comp_free(dy_kd_comp_t *comp);

typedef enum {
    DY_KD_EV_CREATE = 0,
    DY_KD_EV_SET_PARAMS,
    DY_KD_EV_FULFILL,
    DY_KD_EV_REFUSE,
    DY_KD_EV_CONFIRM,
    DY_KD_EV_SET_RESULT,
    DY_KD_EV_FAIL,
    DY_KD_EV_CANCEL,
    DY_KD_EV_EXPIRE,
    _DY_KD_EV_MAX,
} dy_kd_trigger_t;

/* One trigger with its arguments; everything borrowed. */
typedef struct {
    dy_kd_trigger_t trigger;
    int part;                 /* acting participant index (SET_PARAMS, FULFILL, CONFIRM, FAIL) */
    int req;                  /* requisition index (FULFILL, REFUSE) */
    const char *etag;         /* "" or NULL = none; else must equal the row version */
    const uint8_t *data;      /* SET_PARAMS params; FAIL failure; REFUSE refusal; FULFILL
                               * context; SET_RESULT encrypted result (serialized) */
    size_t len;
    uint64_t nonce;           /* FULFILL */
    const char *cert;         /* SET_RESULT aggregator_certificate */
    const uint8_t *key;       /* SET_RESULT result_public_key */
    size_t key_len;
    const char *version;      /* SET_RESULT public_api_version */
    const char *message;      /* FAIL / REFUSE: the measurement's failure message */
} dy_kd_event_t;

/* Outcome of an event. */
typedef enum {
    DY_KD_FSM_CHANGED = 0, /* the model changed (dirty rows); commit */
    DY_KD_FSM_REPLAY = 1,  /* §6.3 replay: OK, nothing changed */
    DY_KD_FSM_INVALID = 2, /* FAILED_PRECONDITION; nothing changed */
    DY_KD_FSM_STALE = 3,   /* etag mismatch: ABORTED; nothing changed */
    DY_KD_FSM_BAD = 4,     /* the event itself is malformed (bad index): a caller bug */
} dy_kd_fsm_result_t;

/* Applies ev to comp through the table.  On CHANGED, comp holds the new state with the
 * changed rows marked dirty (versions and times are the store's business).  On any other
 * result comp is unchanged.  why (may be NULL) receives a short reason for non-CHANGED
 * results.  CREATE is handled by the creator (kingdom_api.c builds the model); through this
 * function it only checks that the state is NONE and moves to PENDING_REQUISITION_PARAMS. */
dy_kd_fsm_result_t dy_kd_fsm_apply(dy_kd_comp_t *comp, const dy_kd_event_t *ev, char *why,
                                   size_t whylen);

/* True if the table cell [state][trigger] is a real transition (not s_invalid and not
 * replay-only): for tests and docs. */
bool dy_kd_fsm_allowed(dy_kd_comp_state_t state, dy_kd_trigger_t trigger);

/* Names for logs ("PENDING_COMPUTATION", "SET_PARAMS", ...); static strings. */
const char *dy_kd_comp_state_name(dy_kd_comp_state_t s);
const char *dy_kd_trigger_name(dy_kd_trigger_t t);

/* True for SUCCEEDED, FAILED, CANCELLED. */
bool dy_kd_comp_terminal(dy_kd_comp_state_t s);

/* True for states the stream sends (§7.2): all but NONE and PENDING_REQUISITION_FULFILLMENT. */
bool dy_kd_comp_streamed(dy_kd_comp_state_t s);

/* The public Measurement.State number (§3.9) of a computation state, which the database
 * stores and the API reports: 0 (STATE_UNSPECIFIED) for NONE and out-of-range values. */
int dy_kd_measurement_state(dy_kd_comp_state_t s);

/* SHA-256 of the nonce's 8 big-endian bytes.  0 or -EIO. */
int dy_kd_nonce_hash(uint64_t nonce, uint8_t out[DY_KD_HASH_LEN]);

#endif
