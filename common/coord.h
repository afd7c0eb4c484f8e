/* coord.h - the coordinator's logic (docs/cluster.md), free of sockets so it
 * can be unit-tested against a temporary store: the ComputationControl and
 * RequisitionFulfillment calls the gateway forwards (PROTOCOL.md §3.7, §3.8,
 * §6.1), the sends of a stage (§6.2) and the duchy-wide admin views.
 *
 * Three files implement it, split along what they include (stages.h and
 * details.h on one side, store.h on the other: their type names overlap):
 *   coord_rules.c  names, headers, the §6.1 expected-sender rules, the §3.8
 *                  requisition checks, body shapes and the send plan, all
 *                  from a computation's serialized details (details.h,
 *                  stages.h);
 *   coord.c        the calls as the gateway sees them, against the store
 *                  (store.h, blob.h, audit.h), and the admin JSON;
 *   coord_send.c   the send worker (`duchy-coordinator --send`): one upload
 *                  to a peer's gateway with the §6.2 rules.
 *
 * Every call-level function answers with a dy_coord_reply_t: a gRPC status
 * (code, reason, message) and, on OK, the serialized response or the
 * acceptance of an upload.  Nothing here logs above debug.
 */
#ifndef DY_COORD_H
#define DY_COORD_H

#include "dy.h"

typedef struct dy_store dy_store_t;
typedef struct dy_blobdir dy_blobdir_t;

#define DY_COORD_M_ADVANCE "/wfa.measurement.system.v1alpha.ComputationControl/AdvanceComputation"
#define DY_COORD_M_GET_STAGE                                                                       \
    "/wfa.measurement.system.v1alpha.ComputationControl/GetComputationStage"
#define DY_COORD_M_FULFILL "/wfa.measurement.api.v2alpha.RequisitionFulfillment/FulfillRequisition"

#define DY_COORD_ID_MAX 64

/* The answer to one forwarded call (or upload step). */
typedef struct {
    int code;            /* dy_wire_status_t, 0 = OK */
    int reason;          /* dy_wire_reason_t */
    char message[256];   /* detail for the caller, never secret */
    uint8_t *response;   /* owned (malloc): serialized response when code == 0 */
    size_t response_len; /* bytes at response */
    bool accept_upload;  /* upload header accepted: grant credit */
    uint64_t max_total;  /* upload cap when accepting, 0 = none */
} dy_coord_reply_t;

/* Frees the response and zeroes r.  NULL-safe. */
void dy_coord_reply_clear(dy_coord_reply_t *r);
/* Sets an error status (code != 0) with a formatted message; returns -1. */
int dy_coord_reply_error(dy_coord_reply_t *r, int code, int reason, const char *fmt, ...)
    DY_PRINTF(4, 5);

/* What the coordinator works with; every pointer borrowed. */
typedef struct {
    const char *my_id;         /* this duchy's id */
    const char *aggregator_id; /* the federation's roles (config roles:) */
    const char *first_na_id;
    const char *second_na_id;
    dy_store_t *store;
    dy_blobdir_t *blobs;
    uint64_t max_upload; /* cap of an LLv2 body; 0 = none */
    const char *actor;   /* audit actor name, e.g. "coordinator" */
} dy_coord_ctx_t;

/* ---- names (coord_rules.c) ----------------------------------------------------------- */

/* A generated id: 11 base64url characters decoding to 8 bytes, not all zero
 * (its value: dy_ext_id_decode, dy.h). */
bool dy_coord_generated_id_ok(const char *id);
/* A duchy id: [a-z]([a-z0-9-]{0,61}[a-z0-9])?. */
bool dy_coord_duchy_id_ok(const char *id);
/* A data provider / requisition id as PROTOCOL.md §1: non-empty, <= 63 bytes of
 * [A-Za-z0-9_-] (generated ids are checked with dy_coord_generated_id_ok). */
bool dy_coord_plain_id_ok(const char *id);

/* "computations/{c}" → c.  0 or -EINVAL. */
int dy_coord_parse_computation_name(const char *name, char ret_c[DY_COORD_ID_MAX]);
/* "computations/{c}/participants/{d}/computationStage" → c, d.  0 or -EINVAL. */
int dy_coord_parse_stage_name(const char *name, char ret_c[DY_COORD_ID_MAX],
                              char ret_d[DY_COORD_ID_MAX]);
/* "dataProviders/{dp}/requisitions/{r}" → dp, r.  0 or -EINVAL. */
int dy_coord_parse_requisition_name(const char *name, char ret_dp[DY_COORD_ID_MAX],
                                    char ret_r[DY_COORD_ID_MAX]);
/* "duchies/{d}" → d; NULL for any other party. */
const char *dy_coord_peer_duchy(const char *peer);

/* The stage's name for admin views ("UNKNOWN" if unknown). */
const char *dy_coord_stage_name(int protocol, int stage);
const char *dy_coord_protocol_name(int protocol);
const char *dy_coord_role_name(int role);

/* ---- AdvanceComputation (coord_rules.c) --------------------------------------------- */

typedef struct {
    char computation[DY_COORD_ID_MAX]; /* bare id */
    int protocol;                      /* DY_PROTO_* of the header's oneof */
    int description;                   /* the oneof's description, > 0 */
} dy_coord_advance_hdr_t;

/* Decodes an AdvanceComputationRequest that must hold a header with a valid
 * name, a protocol and a specified description.  0, or -1 with r set to
 * INVALID_ARGUMENT. */
int dy_coord_decode_advance(const uint8_t *req, size_t len, dy_coord_advance_hdr_t *ret,
                            dy_coord_reply_t *r);

/* The §6.1 receive rule for this input at this duchy, with the slots. */
typedef struct {
    int awaited;                    /* wait stage the input belongs to */
    int next;                       /* work stage once all slots are filled */
    char slots[2][DY_COORD_ID_MAX]; /* every slot the stage waits for */
    size_t nslots;
    char slot[DY_COORD_ID_MAX]; /* the sender's slot (its duchy id) */
} dy_coord_input_rule_t;

/* The checks after "computation exists": protocol equals the row's
 * (row_protocol) and the description fits this duchy's role (INVALID_ARGUMENT);
 * the sender duchy is the expected one (PERMISSION_DENIED; ring not known yet:
 * FAILED_PRECONDITION STAGE_NOT_READY).  details: the row's serialized
 * ComputationDetails.  0 with *ret filled, or -1 with r set. */
int dy_coord_input_rule(const uint8_t *details, size_t details_len, const char *my_id,
                        int row_protocol, int row_role, const dy_coord_advance_hdr_t *h,
                        const char *sender, dy_coord_input_rule_t *ret, dy_coord_reply_t *r);

/* The body's basic shape for the description (PROTOCOL.md §3.7, CRYPTO.md §4,
 * §5.2): LLv2 setup and phase-one inputs whole 390-byte blocks, phase-two
 * 520-byte tuples, phase-three 130-byte ciphertexts; RO-LLv2 130-byte blocks;
 * HMSS a parseable ShufflePhaseInput (48-byte seed) or AggregationPhaseInput
 * (register_count = number of values).  0 or -EINVAL with why set. */
int dy_coord_check_body(int protocol, int description, const uint8_t *body, size_t len, char *why,
                        size_t whylen);

/* ---- FulfillRequisition (coord_rules.c) ---------------------------------------------- */

typedef struct {
    char dp[DY_COORD_ID_MAX];  /* from the name */
    char req[DY_COORD_ID_MAX]; /* requisition id, the system one's */
    uint8_t fingerprint[32];
    uint64_t nonce;
    bool hmss; /* HMSS fields present */
    int64_t register_count;
    uint8_t *seed; /* owned: the serialized HMSS header fields (§6.3 "seed") */
    size_t seed_len;
} dy_coord_fulfill_hdr_t;

/* Decodes a FulfillRequisitionRequest header: name, fingerprint of 32
 * bytes, nonce != 0 (INVALID_ARGUMENT); the caller's party must be
 * dataProviders/{dp} of the name (PERMISSION_DENIED).  0 or -1 with r set. */
int dy_coord_decode_fulfill(const uint8_t *req, size_t len, const char *peer,
                            dy_coord_fulfill_hdr_t *ret, dy_coord_reply_t *r);
void dy_coord_fulfill_hdr_free(dy_coord_fulfill_hdr_t *h);

/* What a matching requisition needs for its body and its Kingdom call. */
typedef struct {
    int protocol;                           /* DY_PROTO_* */
    char name[256];                         /* system name computations/{c}/requisitions/{r} */
    uint64_t exact_size;                    /* HMSS: register_count x 4; else 0 */
    size_t block;                           /* LLv2 390, RO-LLv2 130; HMSS 0 */
    char fulfilling_duchy[DY_COORD_ID_MAX]; /* HMSS: the assigned NA (id mod 2: FNA, SNA);
                                             * else the Kingdom's fulfiller, "" if none */
} dy_coord_fulfill_match_t;

/* Checks a decoded header against one computation's details (§3.8):
 * returns 0 when the computation has no requisition with this id; 1 when it
 * has and every check passed (*ret filled); -1 when it has and a check
 * failed (r set: fingerprint or nonce FAILED_PRECONDITION; HMSS not this
 * duchy or fields missing, or HMSS fields for another protocol,
 * INVALID_ARGUMENT). */
int dy_coord_fulfill_match(const uint8_t *details, size_t details_len, const char *my_id,
                           const dy_coord_fulfill_hdr_t *h, dy_coord_fulfill_match_t *ret,
                           dy_coord_reply_t *r);

/* ---- sends (coord_rules.c) ------------------------------------------------------------- */

typedef struct {
    char peer[DY_COORD_ID_MAX]; /* receiving duchy id */
    int description;            /* what is sent */
    int awaited;                /* the receiver's stage that waits for it */
    uint8_t *header;            /* owned: serialized AdvanceComputationRequest{header} */
    size_t header_len;
} dy_coord_send_t;

/* The sends after work stage `stage` (stages.h dy_stage_sends) with their
 * receivers resolved from the details (ring successor, aggregator, peer NA,
 * NA1).  Returns the number of sends (0..2) or -EINVAL with why set (ring
 * unknown, details unreadable).  Free each with dy_coord_send_free. */
int dy_coord_plan_sends(const uint8_t *details, size_t details_len, const char *my_id, int stage,
                        dy_coord_send_t out[2], char *why, size_t whylen);
void dy_coord_send_free(dy_coord_send_t *s);

/* §6.2 rule 2: what to do given the receiver's GetComputationStage answer. */
typedef enum { DY_COORD_SEND = 0, DY_COORD_SKIP = 1, DY_COORD_RETRY = 2 } dy_coord_send_step_t;
dy_coord_send_step_t dy_coord_send_decide(int code, int peer_stage, int awaited, int complete);

/* §6.2 rule 3: the outcome (dy_outcome_t) of an upload's status.  For
 * COMPUTATION_ENDED the caller passes whether the local computation is
 * terminal (PERMFAIL: the claimer's fenced writes then find the row ended),
 * else TEMPFAIL.  Codes §6.2 does not list (INTERNAL, UNKNOWN, ...): TEMPFAIL
 * (attempts are bounded). */
dy_outcome_t dy_coord_send_classify(int code, int reason, bool local_terminal);

/* ---- calls against the store (coord.c) ----------------------------------------------- */

void dy_coord_get_stage(const dy_coord_ctx_t *c, const char *peer, const uint8_t *req, size_t len,
                        dy_coord_reply_t *r);
void dy_coord_advance_header(const dy_coord_ctx_t *c, const char *peer, const uint8_t *req,
                             size_t len, dy_coord_reply_t *r);
/* The verified body is at spool (size, sha256 as the trailer verified): the
 * header is checked again, the body's shape, then the file is adopted as a
 * blob and dy_store_receive applied in one transaction with an audit row.
 * The spool file is gone afterwards whatever the outcome. */
void dy_coord_advance_commit(const dy_coord_ctx_t *c, const char *peer, const uint8_t *req,
                             size_t len, const char *spool, uint64_t size, const uint8_t sha256[32],
                             dy_coord_reply_t *r);

void dy_coord_fulfill_header(const dy_coord_ctx_t *c, const char *peer, const uint8_t *req,
                             size_t len, dy_coord_reply_t *r);

/* What the actor must ask the Kingdom after storing an EDP's data. */
typedef struct {
    char computation[DY_COORD_ID_MAX];
    char requisition[DY_COORD_ID_MAX];
    char name[256]; /* system requisition name */
    uint64_t nonce;
} dy_coord_kingdom_t;

/* Commits an EDP upload: checks again, checks the body, stores it and
 * records it (same bytes and seed: skip storing).  Returns 1 with *ret_k
 * filled when the Kingdom must now be called (r untouched), or 0 with r
 * holding the final answer. */
int dy_coord_fulfill_commit(const dy_coord_ctx_t *c, const char *peer, const uint8_t *req,
                            size_t len, const char *spool, uint64_t size, const uint8_t sha256[32],
                            dy_coord_reply_t *r, dy_coord_kingdom_t *ret_k);
/* The Kingdom's answer (a status code: OK, FAILED_PRECONDITION, UNAVAILABLE,
 * ...) turned into the EDP's: OK → FulfillRequisitionResponse{FULFILLED};
 * FAILED_PRECONDITION → passed on (see the report: the store cannot delete
 * the local record yet); anything else → UNAVAILABLE (data kept). */
void dy_coord_fulfill_kingdom_done(const dy_coord_ctx_t *c, const dy_coord_kingdom_t *k, int code,
                                   const char *message, dy_coord_reply_t *r);

/* ---- admin (coord.c) ----------------------------------------------------------------- */

/* Appends a JSON string literal (quoted, escaped) to out. */
int dy_coord_json_str(dy_buf_t *out, const char *s);
/* COMPUTATIONS: [{"id","protocol","role","stage","attempt","lease_owner","lease_expiry"}]. */
int dy_coord_admin_computations(const dy_coord_ctx_t *c, dy_buf_t *out);
/* AUDIT: the last `tail` rows as a JSON array; verify: {"ok","rows","first_broken"}. */
int dy_coord_admin_audit(const dy_coord_ctx_t *c, bool verify, size_t tail, dy_buf_t *out);

/* The row's protocol, role, stage and details for a computation (NULL
 * details when absent); caller frees *ret_details.  0, -ENOENT. */
int dy_coord_load(const dy_coord_ctx_t *c, const char *id, int *ret_protocol, int *ret_role,
                  int *ret_stage, bool *ret_terminal, uint8_t **ret_details, size_t *ret_len);

#endif
