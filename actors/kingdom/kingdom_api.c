/* kingdom_api.c - the Kingdom's handlers (see kingdom_api.h): decode, then validate, then
 * load the computation and run the state machine (kingdom_fsm.c) inside one write
 * transaction (kingdom_db.c), then encode the response.
 *
 * Peers: duchies (system API), measurement consumers and data providers (public subset);
 * any party may fetch certificates.  Messages: system.proto, public.proto.  State machine:
 * kingdom_fsm.h.
 *
 * Check order in every handler (so each §8 code is reached deterministically):
 *   1. caller's party type            -> PERMISSION_DENIED
 *   2. request decodes; names parse   -> INVALID_ARGUMENT
 *   3. name's owner = caller (participant/log entry duchy, MC, EDP, result cert) -> PERMISSION_DENIED
 *   4. required fields                -> INVALID_ARGUMENT
 *   5. computation exists and the caller participates (duchies) -> NOT_FOUND
 *   6. role checks (aggregator, HMSS assignee) -> PERMISSION_DENIED
 *   7. checks that need the computation (protocol, result key) -> INVALID_ARGUMENT
 *   8. certificate known              -> FAILED_PRECONDITION
 *   9. state machine: replay -> OK; etag -> ABORTED; state -> FAILED_PRECONDITION
 *
 * Decisions where PROTOCOL.md leaves details open (kept consistent with proto/):
 *   D1  A replay (§6.3) answers OK even with a stale etag: the retry carries the etag read
 *       before the first attempt.  Etags: participants and requisitions, row version in
 *       decimal; bumped on every change of the row.
 *   D2  update_time moves on every committed change of a computation, including participant
 *       and requisition changes that leave its state alone; such items reappear on streams.
 *   D3  Generated ids are in 1..2^63-1; a well-formed id above that is simply NOT_FOUND.
 *   D4  Continuation token: unpadded base64url (padded accepted) of the serialized token;
 *       malformed = not base64url, not a token message, no last_seen_update_time, negative
 *       seconds, or nanos outside 0..999999999.  Nanos are floored to microseconds.
 *   D5  CreateMeasurement: caller must be the parent MC (PERMISSION_DENIED); request_id
 *       (<= 256 bytes) non-empty = idempotency key, checked before anything else of the
 *       measurement; the spec is the SignedMessage's Any value (the Kingdom does not verify
 *       the MC's signature: EDPs and duchies do); REACH or REACH_AND_FREQUENCY only;
 *       measurement_public_key required; protocol_config.protocols exactly one entry:
 *       liquid_legions_v2 -> LLv2, reach_only_liquid_legions_v2 (REACH specs only) -> RO-LLv2,
 *       honest_majority_share_shuffle -> HMSS, trus_tee -> UNIMPLEMENTED.  Public noise
 *       mechanism mapped to the system numbering; UNSPECIFIED = GEOMETRIC (LLv2, RO) /
 *       DISCRETE_GAUSSIAN (HMSS) as the reference's defaults; CONTINUOUS_LAPLACE has no system
 *       value -> INVALID_ARGUMENT.  Each data provider entry: key dataProviders/{dp}, unique,
 *       nonce_hash 32 bytes, encrypted_requisition_spec with a ciphertext; the entries'
 *       nonce hashes must be exactly the spec's nonce_hashes (as a multiset).
 *       requisition_spec_hash = SHA-256(encrypted_requisition_spec.ciphertext).
 *       The returned/stored Measurement carries the EFFECTIVE protocol_config: the request's
 *       protocol and noise with the Kingdom's sketch params / ring modulus of the spec's type,
 *       and measurement_type set; EDPs read the same config in ListRequisitions.
 *   D6  Participants are stored in configured duchy order; HMSS roles: the first configured
 *       non-aggregator is FIRST_NON_AGGREGATOR, the second SECOND.
 *   D7  SetParticipantRequisitionParams: the LLv2 key must parse as an ElGamalPublicKey with
 *       the configured curve and 33-byte points; the HMSS NA key as an EncryptionPublicKey
 *       with format ECIES_P256 and 33 bytes; an OID, if given, must be ECDSA-SHA256.  The
 *       HMSS aggregator's sub-message is stored as sent (it should be empty).  The Kingdom
 *       does not verify the duchy's signature (the EDPs and peer duchies do) but requires
 *       the named certificate to be one it serves (else FAILED_PRECONDITION).  Stored params
 *       have duchy_certificate_der cleared; reads fill it from the certificate.
 *   D8  SetComputationResult: result_public_key must equal the spec's measurement_public_key
 *       value (INVALID_ARGUMENT); public_api_version must be "v2alpha" (INVALID_ARGUMENT).
 *   D9  GetMeasurement / CancelMeasurement / RefuseRequisition / ListRequisitions: a name
 *       whose MC / EDP is not the caller is PERMISSION_DENIED without a lookup.  EDPs see a
 *       requisition once it reached UNFULFILLED (all params set); before that, NOT_FOUND.
 *       RefuseRequisition needs a refusal (INVALID_ARGUMENT) and is not a §6.3 replay: a
 *       repeat is FAILED_PRECONDITION.
 *   D10 ListRequisitions: page_size 0 = 50, max 500, negative INVALID_ARGUMENT; ordered by
 *       requisition id; page_token = the external id of the last requisition scanned;
 *       next_page_token set when a full page was scanned; filter.states applied after the
 *       scan (a page may hold fewer items).
 *   D11 Public requisition duchies[]: key duchies/{id}; LLv2/RO: all three participants with
 *       SignedMessage{signature, oid, Any{type.googleapis.com/wfa.measurement.api.v2alpha.
 *       ElGamalPublicKey, key bytes}}; HMSS: the two NAs, the non-assigned one with
 *       public_key = SignedMessage{..., Any{...EncryptionPublicKey, tink_public_key}}, the
 *       assigned one with an empty honest_majority_share_shuffle.
 *   D12 GetMeasurement results[0]: certificate = aggregator_certificate, encrypted_result
 *       {ciphertext = the stored EncryptedSignedResult bytes, type_url =
 *       type.googleapis.com/wfa.measurement.api.v2alpha.EncryptedSignedResult}.
 *   D13 GetCertificate: any authenticated party; names
 *       {duchies|dataProviders|measurementConsumers}/{id}/certificates/{cert}; the directory
 *       lookup maps them to DIR/{id}/{cert}.pem (mkpki: cert = sign | tls | root).  Returns
 *       name, x509_der and subject_key_identifier.
 *   D14 FailComputationParticipant: the measurement's failure message is
 *       "duchies/{id}: {error_message}"; RefuseRequisition's is
 *       "{requisition name} refused: {refusal message}".
 *   D15 CreateComputationLogEntry: the entry is stored with its assigned name
 *       computations/{c}/participants/{d}/logEntries/{id}; the computation is untouched.
 *   D16 Storage busy past busy_timeout -> UNAVAILABLE; other storage errors -> INTERNAL.
 */
#include "kingdom_api.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "public.pb-c.h"
#include "system.pb-c.h"

#define SYS_(x) Wfa__Measurement__System__V1alpha__##x
#define API_(x) Wfa__Measurement__Api__V2alpha__##x
#define SYSD(x) (&wfa__measurement__system__v1alpha__##x##__descriptor)
#define APID(x) (&wfa__measurement__api__v2alpha__##x##__descriptor)

#define S_API_VERSION "v2alpha"
#define S_ECDSA_OID "1.2.840.10045.4.3.2"
#define S_TYPE_PREFIX "type.googleapis.com/wfa.measurement.api.v2alpha."
#define S_LIST_DEFAULT 50
#define S_LIST_MAX 500
#define S_STREAM_MAX 50

/* ---- small helpers --------------------------------------------------------------------- */

static int s_fail(dy_kd_status_t *st, dy_wire_status_t code, const char *fmt, ...)
    DY_PRINTF(3, 4);
static int s_fail(dy_kd_status_t *st, dy_wire_status_t code, const char *fmt, ...)
{
    st->code = code;
    st->reason = DY_WIRE_REASON_NONE;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(st->message, sizeof(st->message), fmt, ap);
    va_end(ap);
    return -1;
}

static int s_db_fail(dy_kd_status_t *st, int e)
{
    if (e == -EBUSY)
        return s_fail(st, DY_WIRE_STATUS_UNAVAILABLE, "storage busy");
    return s_fail(st, DY_WIRE_STATUS_INTERNAL, "storage error %d", e);
}

/* A tiny arena for response messages: plain allocations and unpacked messages. */
typedef struct {
    void **plain;
    size_t nplain, capplain;
    ProtobufCMessage **pb;
    size_t npb, cappb;
    bool oom;
} s_arena_t;

static void *s_keep(s_arena_t *a, void *p)
{
    if (p == NULL) {
        a->oom = true;
        return NULL;
    }
    if (a->nplain == a->capplain) {
        size_t n = a->capplain ? 2 * a->capplain : 32;
        void **np = realloc(a->plain, n * sizeof(*np));
        if (np == NULL) {
            free(p);
            a->oom = true;
            return NULL;
        }
        a->plain = np;
        a->capplain = n;
    }
    a->plain[a->nplain++] = p;
    return p;
}

static void *s_keep_pb(s_arena_t *a, ProtobufCMessage *m)
{
    if (m == NULL)
        return NULL;
    if (a->npb == a->cappb) {
        size_t n = a->cappb ? 2 * a->cappb : 16;
        ProtobufCMessage **np = realloc(a->pb, n * sizeof(*np));
        if (np == NULL) {
            protobuf_c_message_free_unpacked(m, NULL);
            a->oom = true;
            return NULL;
        }
        a->pb = np;
        a->cappb = n;
    }
    a->pb[a->npb++] = m;
    return m;
}

static void s_arena_free(s_arena_t *a)
{
    for (size_t i = 0; i < a->npb; i++)
        protobuf_c_message_free_unpacked(a->pb[i], NULL);
    for (size_t i = 0; i < a->nplain; i++)
        free(a->plain[i]);
    free(a->pb);
    free(a->plain);
    memset(a, 0, sizeof(*a));
}

/* A new, initialised message of type desc owned by the arena. */
static void *s_new(s_arena_t *a, const ProtobufCMessageDescriptor *desc)
{
    void *m = s_keep(a, calloc(1, desc->sizeof_message));
    if (m != NULL)
        protobuf_c_message_init(desc, m);
    return m;
}

static void *s_array(s_arena_t *a, size_t n, size_t size)
{
    return s_keep(a, calloc(n > 0 ? n : 1, size));
}

static char *s_fmt(s_arena_t *a, const char *fmt, ...) DY_PRINTF(2, 3);
static char *s_fmt(s_arena_t *a, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *s = NULL;
    int n = vasprintf(&s, fmt, ap);
    va_end(ap);
    if (n < 0)
        s = NULL;
    return s_keep(a, s);
}

/* Unpacks bytes with desc, owned by the arena; NULL for empty input or failure. */
static void *s_unpack(s_arena_t *a, const ProtobufCMessageDescriptor *desc, const dy_buf_t *b)
{
    if (b->len == 0)
        return NULL;
    return s_keep_pb(a, protobuf_c_message_unpack(desc, NULL, b->len, b->data));
}

static int s_pack(const ProtobufCMessage *m, dy_buf_t *out)
{
    size_t n = protobuf_c_message_get_packed_size(m);
    out->len = 0;
    if (dy_buf_reserve(out, n > 0 ? n : 1) < 0)
        return -ENOMEM;
    out->len = protobuf_c_message_pack(m, out->data);
    return 0;
}

static int s_respond(s_arena_t *a, const void *m, dy_buf_t *resp, dy_kd_status_t *st)
{
    int rc = 0;
    if (m == NULL || a->oom || s_pack(m, resp) < 0)
        rc = s_fail(st, DY_WIRE_STATUS_INTERNAL, "out of memory");
    s_arena_free(a);
    return rc;
}

static Google__Protobuf__Timestamp *s_ts(s_arena_t *a, int64_t us)
{
    Google__Protobuf__Timestamp *t = s_new(a, &google__protobuf__timestamp__descriptor);
    if (t != NULL) {
        t->seconds = us / 1000000;
        t->nanos = (int32_t)(us % 1000000) * 1000;
    }
    return t;
}

static char *s_ext(s_arena_t *a, uint64_t id)
{
    char buf[DY_KD_EXT_ID_LEN + 1];
    dy_ext_id_encode(id, buf);
    return s_fmt(a, "%s", buf);
}

/* ---- names (PROTOCOL.md §1) ------------------------------------------------------------ */

#define S_MAX_SEGS 8

/* Splits name on '/' into at most S_MAX_SEGS segments (copied into buf).  Returns the count,
 * or -1 if too many or any segment is empty. */
static int s_split(const char *name, char buf[256], char *segs[S_MAX_SEGS])
{
    if (name == NULL || strlen(name) >= 256 || name[0] == '\0')
        return -1;
    strcpy(buf, name);
    int n = 0;
    char *p = buf;
    for (;;) {
        if (n == S_MAX_SEGS)
            return -1;
        segs[n++] = p;
        char *slash = strchr(p, '/');
        if (slash == NULL)
            break;
        *slash = '\0';
        p = slash + 1;
    }
    for (int i = 0; i < n; i++)
        if (segs[i][0] == '\0')
            return -1;
    return n;
}

static bool s_duchy_id_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 63 || s[0] < 'a' || s[0] > 'z')
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'))
            return false;
    }
    return s[n - 1] != '-';
}

/* Other ids (EDPs, MCs, certificates): [A-Za-z0-9_-]{1,63}. */
static bool s_other_id_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 63)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_'))
            return false;
    }
    return true;
}

/* "computations/{c}[/<kind>/{x}]": kind NULL = just the computation.  x copied to ret_x
 * (duchy ids checked by duchy_x).  0 or -1. */
static int s_parse_comp_name(const char *name, const char *kind, uint64_t *ret_comp,
                             char ret_x[DY_KD_ID_MAX], bool duchy_x)
{
    char buf[256];
    char *seg[S_MAX_SEGS];
    int n = s_split(name, buf, seg);
    int want = kind == NULL ? 2 : 4;
    if (n != want || strcmp(seg[0], "computations") != 0 || dy_ext_id_decode(seg[1], ret_comp) < 0)
        return -1;
    if (kind == NULL)
        return 0;
    if (strcmp(seg[2], kind) != 0)
        return -1;
    if (duchy_x ? !s_duchy_id_ok(seg[3]) : strlen(seg[3]) != DY_KD_EXT_ID_LEN)
        return -1;
    snprintf(ret_x, DY_KD_ID_MAX, "%s", seg[3]);
    return 0;
}

/* "<root>/{owner}/<kind>/{x}" with owner checked by the root's alphabet; x is an external id
 * (ret_id) or, when ret_id is NULL, an other-id copied to ret_x. */
static int s_parse_owned(const char *name, const char *root, const char *kind,
                         char ret_owner[DY_KD_ID_MAX], uint64_t *ret_id,
                         char ret_x[DY_KD_ID_MAX])
{
    char buf[256];
    char *seg[S_MAX_SEGS];
    int n = s_split(name, buf, seg);
    if (n != 4 || strcmp(seg[0], root) != 0 || strcmp(seg[2], kind) != 0)
        return -1;
    bool owner_ok = strcmp(root, "duchies") == 0 ? s_duchy_id_ok(seg[1]) : s_other_id_ok(seg[1]);
    if (!owner_ok)
        return -1;
    if (ret_id != NULL) {
        if (dy_ext_id_decode(seg[3], ret_id) < 0)
            return -1;
    } else if (!s_other_id_ok(seg[3])) {
        return -1;
    } else if (ret_x != NULL) {
        snprintf(ret_x, DY_KD_ID_MAX, "%s", seg[3]);
    }
    snprintf(ret_owner, DY_KD_ID_MAX, "%s", seg[1]);
    return 0;
}

/* "{duchies|dataProviders|measurementConsumers}/{owner}/certificates/{cert}" (D13): the
 * owner to ret_owner and, if ret_cert is not NULL, the certificate id to ret_cert.  0 or -1. */
static int s_parse_cert_name(const char *name, char ret_owner[DY_KD_ID_MAX],
                             char ret_cert[DY_KD_ID_MAX])
{
    static const char *const roots[] = {"duchies", "dataProviders", "measurementConsumers"};
    for (size_t i = 0; i < DY_ARRAY_LEN(roots); i++)
        if (s_parse_owned(name, roots[i], "certificates", ret_owner, NULL, ret_cert) == 0)
            return 0;
    return -1;
}

/* "<root>/{id}" (one level). */
static int s_parse_party(const char *name, const char *root, char ret_id[DY_KD_ID_MAX])
{
    char buf[256];
    char *seg[S_MAX_SEGS];
    int n = s_split(name, buf, seg);
    if (n != 2 || strcmp(seg[0], root) != 0)
        return -1;
    if (strcmp(root, "duchies") == 0 ? !s_duchy_id_ok(seg[1]) : !s_other_id_ok(seg[1]))
        return -1;
    snprintf(ret_id, DY_KD_ID_MAX, "%s", seg[1]);
    return 0;
}

/* The caller's id if its party type is root ("duchies", ...), else NULL. */
static const char *s_caller(const char *caller, const char *root)
{
    size_t n = strlen(root);
    if (caller == NULL || strncmp(caller, root, n) != 0 || caller[n] != '/' ||
        caller[n + 1] == '\0')
        return NULL;
    return caller + n + 1;
}

/* A party type a handler serves: its name root and how a refusal names it. */
typedef struct {
    const char *root; /* "duchies", ... */
    const char *noun; /* for "caller is not <noun>" */
} s_party_t;

static const s_party_t s_duchies = {"duchies", "a duchy"};
static const s_party_t s_mcs = {"measurementConsumers", "a measurement consumer"};
static const s_party_t s_edps = {"dataProviders", "a data provider"};

/* Check steps 1 and 2 of a handler: the caller is of party type `party` (else
 * PERMISSION_DENIED), then req decodes as desc (else INVALID_ARGUMENT).  Returns the request
 * (caller frees it with protobuf_c_message_free_unpacked) and, if ret_id is not NULL, the
 * caller's id (points into caller); NULL with st filled. */
static void *s_decode(const s_party_t *party, const char *caller,
                      const ProtobufCMessageDescriptor *desc, const uint8_t *req, size_t len,
                      const char **ret_id, dy_kd_status_t *st)
{
    const char *id = s_caller(caller, party->root);
    if (id == NULL) {
        s_fail(st, DY_WIRE_STATUS_PERMISSION_DENIED, "caller is not %s", party->noun);
        return NULL;
    }
    ProtobufCMessage *rq = protobuf_c_message_unpack(desc, NULL, len, req);
    if (rq == NULL) {
        s_fail(st, DY_WIRE_STATUS_INVALID_ARGUMENT, "malformed request");
        return NULL;
    }
    if (ret_id != NULL)
        *ret_id = id;
    return rq;
}

/* Participant index of duchy in comp, or -1. */
static int s_part_index(const dy_kd_comp_t *comp, const char *duchy)
{
    for (size_t i = 0; i < comp->nparts; i++)
        if (strcmp(comp->parts[i].duchy, duchy) == 0)
            return (int)i;
    return -1;
}

static int s_req_index(const dy_kd_comp_t *comp, uint64_t id)
{
    for (size_t i = 0; i < comp->nreqs; i++)
        if (comp->reqs[i].id == id)
            return (int)i;
    return -1;
}

/* Begins a transaction and loads computation id visible to duchy (NOT_FOUND otherwise).  On
 * success the transaction is open; on failure it is rolled back. */
static int s_begin_load(dy_kd_api_t *api, uint64_t id, const char *duchy, dy_kd_comp_t *comp,
                        int *ret_part, dy_kd_status_t *st)
{
    int e = dy_kd_db_begin(api->db);
    if (e < 0)
        return s_db_fail(st, e);
    e = dy_kd_db_load(api->db, id, comp);
    if (e == -ENOENT) {
        dy_kd_db_rollback(api->db);
        return s_fail(st, DY_WIRE_STATUS_NOT_FOUND, "computation not found");
    }
    if (e < 0) {
        dy_kd_db_rollback(api->db);
        return s_db_fail(st, e);
    }
    if (duchy != NULL) {
        int p = s_part_index(comp, duchy);
        if (p < 0) {
            dy_kd_db_rollback(api->db);
            dy_kd_comp_free(comp);
            return s_fail(st, DY_WIRE_STATUS_NOT_FOUND, "computation not found");
        }
        if (ret_part != NULL)
            *ret_part = p;
    }
    return 0;
}

/* Runs the event; on CHANGED saves and commits; on REPLAY rolls back and succeeds; otherwise
 * rolls back and fills st.  comp stays loaded either way. */
static int s_apply(dy_kd_api_t *api, dy_kd_comp_t *comp, const dy_kd_event_t *ev,
                   dy_kd_status_t *st)
{
    char why[200];
    dy_kd_fsm_result_t r = dy_kd_fsm_apply(comp, ev, why, sizeof(why));
    switch (r) {
    case DY_KD_FSM_CHANGED: {
        int e = dy_kd_db_save(api->db, comp);
        if (e == 0)
            e = dy_kd_db_commit(api->db);
        if (e < 0) {
            dy_kd_db_rollback(api->db);
            return s_db_fail(st, e);
        }
        return 0;
    }
    case DY_KD_FSM_REPLAY:
        dy_kd_db_rollback(api->db);
        return 0;
    case DY_KD_FSM_STALE:
        dy_kd_db_rollback(api->db);
        return s_fail(st, DY_WIRE_STATUS_ABORTED, "%s", why);
    case DY_KD_FSM_INVALID:
        dy_kd_db_rollback(api->db);
        return s_fail(st, DY_WIRE_STATUS_FAILED_PRECONDITION, "%s", why);
    default:
        dy_kd_db_rollback(api->db);
        return s_fail(st, DY_WIRE_STATUS_INTERNAL, "%s", why);
    }
}

/* Looks a certificate up: 0 with DER (caller frees), or -1. */
static int s_cert(dy_kd_api_t *api, const char *name, uint8_t **der, size_t *len)
{
    if (api->conf->cert_lookup == NULL)
        return -1;
    return api->conf->cert_lookup(api->conf->cert_arg, name, der, len) == 0 ? 0 : -1;
}

/* Check step 8: the named certificate is one the Kingdom serves.  0, or -1 with st
 * (FAILED_PRECONDITION). */
static int s_cert_known(dy_kd_api_t *api, const char *name, dy_kd_status_t *st)
{
    uint8_t *der = NULL;
    size_t dlen = 0;
    if (s_cert(api, name, &der, &dlen) < 0)
        return s_fail(st, DY_WIRE_STATUS_FAILED_PRECONDITION, "certificate %s unknown", name);
    free(der);
    return 0;
}

/* ---- views ----------------------------------------------------------------------------- */

static SYS_(ComputationParticipant) *s_part_view(dy_kd_api_t *api, s_arena_t *a,
                                                 const dy_kd_comp_t *comp, size_t i)
{
    const dy_kd_part_t *p = &comp->parts[i];
    SYS_(ComputationParticipant) *v = s_new(a, SYSD(computation_participant));
    if (v == NULL)
        return NULL;
    char cid[DY_KD_EXT_ID_LEN + 1];
    dy_ext_id_encode(comp->id, cid);
    v->name = s_fmt(a, "computations/%s/participants/%s", cid, p->duchy);
    v->state = (SYS_(ComputationParticipant__State))p->state;
    v->update_time = s_ts(a, p->update_us);
    v->etag = s_fmt(a, "%" PRId64, p->version);
    SYS_(ComputationParticipant__RequisitionParams) *rp =
        s_unpack(a, SYSD(computation_participant__requisition_params), &p->params);
    if (rp != NULL) {
        SYS_(ComputationParticipant__RequisitionParams) *copy =
            s_keep(a, malloc(sizeof(*copy)));
        if (copy != NULL) {
            *copy = *rp;
            uint8_t *der = NULL;
            size_t dlen = 0;
            if (s_cert(api, rp->duchy_certificate, &der, &dlen) == 0 && s_keep(a, der)) {
                copy->duchy_certificate_der.data = der;
                copy->duchy_certificate_der.len = dlen;
            }
            v->requisition_params = copy;
        }
    }
    v->failure = s_unpack(a, SYSD(computation_participant__failure), &p->failure);
    if (v->name == NULL || v->etag == NULL)
        a->oom = true;
    return v;
}

static SYS_(Requisition) *s_sysreq_view(s_arena_t *a, const dy_kd_comp_t *comp, size_t i)
{
    const dy_kd_req_t *r = &comp->reqs[i];
    SYS_(Requisition) *v = s_new(a, SYSD(requisition));
    if (v == NULL)
        return NULL;
    char cid[DY_KD_EXT_ID_LEN + 1], rid[DY_KD_EXT_ID_LEN + 1];
    dy_ext_id_encode(comp->id, cid);
    dy_ext_id_encode(r->id, rid);
    v->name = s_fmt(a, "computations/%s/requisitions/%s", cid, rid);
    v->requisition_spec_hash.data = (uint8_t *)r->spec_hash;
    v->requisition_spec_hash.len = DY_KD_HASH_LEN;
    v->nonce_hash.data = (uint8_t *)r->nonce_hash;
    v->nonce_hash.len = DY_KD_HASH_LEN;
    v->state = r->state == DY_KD_REQ_PENDING_PARAMS ? 1 : (SYS_(Requisition__State))r->state;
    if (r->fulfiller >= 0 && (size_t)r->fulfiller < comp->nparts)
        v->fulfilling_computation_participant =
            s_fmt(a, "computations/%s/participants/%s", cid, comp->parts[r->fulfiller].duchy);
    if (r->state == DY_KD_REQ_FULFILLED)
        v->nonce = r->nonce;
    v->fulfillment_context = s_unpack(a, SYSD(requisition__fulfillment_context), &r->context);
    return v;
}

static SYS_(Computation) *s_comp_view(dy_kd_api_t *api, s_arena_t *a, const dy_kd_comp_t *comp)
{
    SYS_(Computation) *v = s_new(a, SYSD(computation));
    if (v == NULL)
        return NULL;
    char cid[DY_KD_EXT_ID_LEN + 1];
    dy_ext_id_encode(comp->id, cid);
    v->name = s_fmt(a, "computations/%s", cid);
    v->public_api_version = S_API_VERSION;
    v->measurement_spec.data = comp->spec.data;
    v->measurement_spec.len = comp->spec.len;
    v->state = (SYS_(Computation__State))comp->state;
    if (comp->state == DY_KD_COMP_SUCCEEDED) {
        v->aggregator_certificate = comp->aggregator_cert != NULL ? comp->aggregator_cert : "";
        v->encrypted_result.data = comp->result.data;
        v->encrypted_result.len = comp->result.len;
    }
    v->n_computation_participants = comp->nparts;
    v->computation_participants = s_array(a, comp->nparts, sizeof(void *));
    for (size_t i = 0; v->computation_participants != NULL && i < comp->nparts; i++)
        v->computation_participants[i] = s_part_view(api, a, comp, i);
    v->n_requisitions = comp->nreqs;
    v->requisitions = s_array(a, comp->nreqs, sizeof(void *));
    for (size_t i = 0; v->requisitions != NULL && i < comp->nreqs; i++)
        v->requisitions[i] = s_sysreq_view(a, comp, i);
    v->mpc_protocol_config =
        s_unpack(a, SYSD(computation__mpc_protocol_config), &comp->mpc_config);
    if (v->name == NULL || v->computation_participants == NULL || v->requisitions == NULL)
        a->oom = true;
    for (size_t i = 0; !a->oom && i < comp->nparts; i++)
        if (v->computation_participants[i] == NULL)
            a->oom = true;
    for (size_t i = 0; !a->oom && i < comp->nreqs; i++)
        if (v->requisitions[i] == NULL)
            a->oom = true;
    return v;
}

/* Stored measurement and effective protocol config of comp, owned by the arena. */
static void s_meas_parts(dy_kd_api_t *api, s_arena_t *a, const dy_kd_comp_t *comp,
                         API_(Measurement) **ret_m, API_(ProtocolConfig) **ret_pc)
{
    dy_buf_t mb = {0}, pb = {0};
    *ret_m = NULL;
    *ret_pc = NULL;
    if (dy_kd_db_measurement(api->db, comp->id, &mb, &pb) == 0) {
        *ret_m = s_unpack(a, APID(measurement), &mb);
        *ret_pc = s_unpack(a, APID(protocol_config), &pb);
    }
    dy_buf_free(&mb);
    dy_buf_free(&pb);
}

/* The public Measurement of comp (stored blobs from the db). */
static API_(Measurement) *s_meas_view(dy_kd_api_t *api, s_arena_t *a, const dy_kd_comp_t *comp)
{
    API_(Measurement) *stored;
    API_(ProtocolConfig) *pc;
    s_meas_parts(api, a, comp, &stored, &pc);
    API_(Measurement) *v = s_new(a, APID(measurement));
    if (v == NULL || stored == NULL) {
        a->oom = true;
        return NULL;
    }
    *v = *stored; /* shallow: the stored message keeps ownership */
    char mid[DY_KD_EXT_ID_LEN + 1];
    dy_ext_id_encode(comp->id, mid);
    v->name = s_fmt(a, "measurementConsumers/%s/measurements/%s", comp->mc, mid);
    v->protocol_config = pc;
    v->state = (API_(Measurement__State))dy_kd_measurement_state(comp->state);
    v->n_results = 0;
    v->results = NULL;
    v->failure = NULL;
    if (comp->state == DY_KD_COMP_SUCCEEDED) {
        API_(Measurement__ResultOutput) *ro = s_new(a, APID(measurement__result_output));
        API_(EncryptedMessage) *em = s_new(a, APID(encrypted_message));
        v->results = s_array(a, 1, sizeof(void *));
        if (ro != NULL && em != NULL && v->results != NULL) {
            ro->certificate = comp->aggregator_cert != NULL ? comp->aggregator_cert : "";
            em->ciphertext.data = comp->result.data;
            em->ciphertext.len = comp->result.len;
            em->type_url = S_TYPE_PREFIX "EncryptedSignedResult";
            ro->encrypted_result = em;
            v->results[0] = ro;
            v->n_results = 1;
        }
    }
    if (comp->failure_reason != DY_KD_FAILURE_NONE) {
        API_(Measurement__Failure) *f = s_new(a, APID(measurement__failure));
        if (f != NULL) {
            f->reason = (API_(Measurement__Failure__Reason))comp->failure_reason;
            f->message = comp->failure_message != NULL ? comp->failure_message : "";
            v->failure = f;
        }
    }
    v->create_time = s_ts(a, comp->create_us);
    v->update_time = s_ts(a, comp->update_us);
    if (v->name == NULL)
        a->oom = true;
    return v;
}

/* A SignedMessage wrapping `type` bytes. */
static API_(SignedMessage) *s_signed(s_arena_t *a, const char *type, ProtobufCBinaryData msg,
                                     ProtobufCBinaryData sig, const char *oid)
{
    API_(SignedMessage) *sm = s_new(a, APID(signed_message));
    Google__Protobuf__Any *any = s_new(a, &google__protobuf__any__descriptor);
    if (sm == NULL || any == NULL)
        return NULL;
    any->type_url = s_fmt(a, S_TYPE_PREFIX "%s", type);
    any->value = msg;
    sm->signature = sig;
    sm->signature_algorithm_oid = oid != NULL && oid[0] != '\0' ? (char *)oid : S_ECDSA_OID;
    sm->message = any;
    return sm;
}

/* duchies[] entries of a public requisition (D11). */
static int s_duchy_entries(s_arena_t *a, const dy_kd_comp_t *comp, const dy_kd_req_t *r,
                           API_(Requisition) *v)
{
    v->duchies = s_array(a, comp->nparts, sizeof(void *));
    if (v->duchies == NULL)
        return -1;
    for (size_t i = 0; i < comp->nparts; i++) {
        const dy_kd_part_t *p = &comp->parts[i];
        bool hmss = comp->protocol == DY_KD_PROTO_HMSS;
        if (hmss && p->role == DY_KD_ROLE_AGGREGATOR)
            continue;
        SYS_(ComputationParticipant__RequisitionParams) *rp =
            s_unpack(a, SYSD(computation_participant__requisition_params), &p->params);
        API_(Requisition__DuchyEntry) *e = s_new(a, APID(requisition__duchy_entry));
        API_(Requisition__DuchyEntry__Value) *val =
            s_new(a, APID(requisition__duchy_entry__value));
        if (e == NULL || val == NULL)
            return -1;
        e->key = s_fmt(a, "duchies/%s", p->duchy);
        e->value = val;
        val->duchy_certificate = rp != NULL ? rp->duchy_certificate : "";
        if (!hmss) {
            API_(Requisition__DuchyEntry__LiquidLegionsV2) *ll =
                s_new(a, APID(requisition__duchy_entry__liquid_legions_v2));
            if (ll == NULL)
                return -1;
            const SYS_(ComputationParticipant__RequisitionParams__LiquidLegionsV2) *k = NULL;
            if (rp != NULL && rp->protocol_case == 3)
                k = rp->liquid_legions_v2;
            else if (rp != NULL && rp->protocol_case == 4)
                k = rp->reach_only_liquid_legions_v2;
            if (k != NULL)
                ll->el_gamal_public_key =
                    s_signed(a, "ElGamalPublicKey", k->el_gamal_public_key,
                             k->el_gamal_public_key_signature,
                             k->el_gamal_public_key_signature_algorithm_oid);
            if (comp->protocol == DY_KD_PROTO_ROLLV2) {
                val->protocol_case = 3;
                val->reach_only_liquid_legions_v2 = ll;
            } else {
                val->protocol_case = 2;
                val->liquid_legions_v2 = ll;
            }
        } else {
            API_(Requisition__DuchyEntry__HonestMajorityShareShuffle) *hm =
                s_new(a, APID(requisition__duchy_entry__honest_majority_share_shuffle));
            if (hm == NULL)
                return -1;
            if ((int)i != r->assigned && rp != NULL && rp->protocol_case == 6 &&
                rp->honest_majority_share_shuffle != NULL) {
                const SYS_(ComputationParticipant__RequisitionParams__HonestMajorityShareShuffle)
                    *k = rp->honest_majority_share_shuffle;
                hm->public_key = s_signed(a, "EncryptionPublicKey", k->tink_public_key,
                                          k->tink_public_key_signature,
                                          k->tink_public_key_signature_algorithm_oid);
            }
            val->protocol_case = 4;
            val->honest_majority_share_shuffle = hm;
        }
        v->duchies[v->n_duchies++] = e;
    }
    return 0;
}

/* The public Requisition of comp->reqs[i], given the stored measurement (may be NULL). */
static API_(Requisition) *s_pubreq_view(dy_kd_api_t *api, s_arena_t *a, const dy_kd_comp_t *comp,
                                        size_t i, const API_(Measurement) *m,
                                        API_(ProtocolConfig) *pc)
{
    const dy_kd_req_t *r = &comp->reqs[i];
    API_(Requisition) *v = s_new(a, APID(requisition));
    if (v == NULL)
        return NULL;
    char rid[DY_KD_EXT_ID_LEN + 1], mid[DY_KD_EXT_ID_LEN + 1];
    dy_ext_id_encode(r->id, rid);
    dy_ext_id_encode(comp->id, mid);
    v->name = s_fmt(a, "dataProviders/%s/requisitions/%s", r->edp, rid);
    v->measurement = s_fmt(a, "measurementConsumers/%s/measurements/%s", comp->mc, mid);
    if (m != NULL) {
        v->measurement_consumer_certificate = m->measurement_consumer_certificate;
        v->measurement_spec = m->measurement_spec;
    }
    v->protocol_config = pc;
    char *dpc = NULL;
    dy_buf_t es = {0}, dk = {0};
    if (dy_kd_db_requisition_extra(api->db, r->id, &dpc, &es, &dk) == 0) {
        s_keep(a, dpc);
        v->data_provider_certificate = dpc;
        v->encrypted_requisition_spec = s_unpack(a, APID(encrypted_message), &es);
        v->data_provider_public_key = s_unpack(a, &google__protobuf__any__descriptor, &dk);
    } else {
        a->oom = true;
    }
    dy_buf_free(&es);
    dy_buf_free(&dk);
    if (s_duchy_entries(a, comp, r, v) < 0)
        a->oom = true;
    v->state = r->state == DY_KD_REQ_PENDING_PARAMS ? 1 : (API_(Requisition__State))r->state;
    if (r->state == DY_KD_REQ_FULFILLED)
        v->nonce = r->nonce;
    v->refusal = s_unpack(a, APID(requisition__refusal), &r->refusal);
    v->measurement_state = (API_(Measurement__State))dy_kd_measurement_state(comp->state);
    v->update_time = s_ts(a, r->update_us);
    /* Same field numbers in both packages. */
    v->fulfillment_context = s_unpack(a, APID(requisition__fulfillment_context), &r->context);
    v->etag = s_fmt(a, "%" PRId64, r->version);
    if (v->name == NULL || v->measurement == NULL || v->etag == NULL)
        a->oom = true;
    return v;
}

/* ---- system API: Computations ---------------------------------------------------------- */

static int s_get_computation(dy_kd_api_t *api, const char *caller, const uint8_t *req,
                             size_t len, dy_buf_t *resp, dy_kd_status_t *st)
{
    const char *duchy;
    SYS_(GetComputationRequest) *rq =
        s_decode(&s_duchies, caller, SYSD(get_computation_request), req, len, &duchy, st);
    if (rq == NULL)
        return -1;
    uint64_t id;
    int bad = s_parse_comp_name(rq->name, NULL, &id, NULL, false);
    protobuf_c_message_free_unpacked(&rq->base, NULL);
    if (bad)
        return s_fail(st, DY_WIRE_STATUS_INVALID_ARGUMENT, "bad computation name");
    dy_kd_comp_t comp;
    if (s_begin_load(api, id, duchy, &comp, NULL, st) < 0)
        return -1;
    dy_kd_db_rollback(api->db);
    s_arena_t a = {0};
    SYS_(Computation) *v = s_comp_view(api, &a, &comp);
    int rc = s_respond(&a, v, resp, st);
    dy_kd_comp_free(&comp);
    return rc;
}

int dy_kd_token_encode(int64_t t_us, uint64_t id, char *out, size_t cap)
{
    Google__Protobuf__Timestamp ts = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
    ts.seconds = t_us / 1000000;
    ts.nanos = (int32_t)(t_us % 1000000) * 1000;
    SYS_(StreamActiveComputationsContinuationToken) tok;
    protobuf_c_message_init(SYSD(stream_active_computations_continuation_token), &tok);
    tok.last_seen_update_time = &ts;
    tok.last_seen_external_computation_id = id;
    uint8_t buf[64];
    size_t n = protobuf_c_message_get_packed_size(&tok.base);
    if (n > sizeof(buf) || cap < 4 * ((n + 2) / 3) + 1)
        return -EINVAL;
    protobuf_c_message_pack(&tok.base, buf);
    dy_b64url_encode(buf, n, out, cap);
    return 0;
}

int dy_kd_token_decode(const char *token, int64_t *ret_t_us, uint64_t *ret_id)
{
    uint8_t buf[128];
    if (token == NULL || strlen(token) > 160)
        return -EINVAL;
    int n = dy_kd_b64url_decode(token, buf, sizeof(buf));
    if (n <= 0)
        return -EINVAL;
    SYS_(StreamActiveComputationsContinuationToken) *tok = (void *)protobuf_c_message_unpack(
        SYSD(stream_active_computations_continuation_token), NULL, (size_t)n, buf);
    if (tok == NULL)
        return -EINVAL;
    int rc = -EINVAL;
    const Google__Protobuf__Timestamp *ts = tok->last_seen_update_time;
    if (ts != NULL && ts->seconds >= 0 && ts->seconds < INT64_MAX / 1000000 - 1 &&
        ts->nanos >= 0 && ts->nanos <= 999999999) {
        *ret_t_us = ts->seconds * 1000000 + ts->nanos / 1000;
        *ret_id = tok->last_seen_external_computation_id;
        rc = 0;
    }
    protobuf_c_message_free_unpacked(&tok->base, NULL);
    return rc;
}

int dy_kd_stream_open(dy_kd_api_t *api, const char *caller, const uint8_t *req, size_t len,
                      dy_kd_stream_t *ret, dy_kd_status_t *st)
{
    const char *duchy = s_caller(caller, "duchies");
    if (duchy == NULL || !s_duchy_id_ok(duchy))
        return s_fail(st, DY_WIRE_STATUS_PERMISSION_DENIED, "caller is not a duchy");
    SYS_(StreamActiveComputationsRequest) *rq = (void *)protobuf_c_message_unpack(
        SYSD(stream_active_computations_request), NULL, len, req);
    if (rq == NULL)
        return s_fail(st, DY_WIRE_STATUS_INVALID_ARGUMENT, "malformed request");
    dy_kd_stream_t s = {.t0 = -1, .id0 = 0};
    snprintf(s.duchy, sizeof(s.duchy), "%s", duchy);
    int bad = 0;
    if (rq->continuation_token[0] != '\0')
        bad = dy_kd_token_decode(rq->continuation_token, &s.t0, &s.id0) < 0;
    protobuf_c_message_free_unpacked(&rq->base, NULL);
    if (bad)
        return s_fail(st, DY_WIRE_STATUS_INVALID_ARGUMENT, "malformed continuation token");
    *ret = s;
    return 0;
}

int dy_kd_stream_poll(dy_kd_api_t *api, dy_kd_stream_t *stream, dy_buf_t **ret_items,
                      dy_kd_status_t *st)
{
    size_t max = api->conf->stream_batch;
    if (max == 0 || max > S_STREAM_MAX)
        max = S_STREAM_MAX;
    uint64_t ids[S_STREAM_MAX];
    int64_t times[S_STREAM_MAX];
    *ret_items = NULL;
    int e = dy_kd_db_begin(api->db);
    if (e < 0)
        return s_db_fail(st, e);
    int n = dy_kd_db_stream(api->db, stream->duchy, stream->t0, stream->id0, max, ids, times);
    if (n <= 0) {
        dy_kd_db_rollback(api->db);
        return n < 0 ? s_db_fail(st, n) : 0;
    }
    dy_buf_t *items = calloc((size_t)n, sizeof(*items));
    if (items == NULL) {
        dy_kd_db_rollback(api->db);
        return s_fail(st, DY_WIRE_STATUS_INTERNAL, "out of memory");
    }
    int got = 0;
    for (int i = 0; i < n; i++) {
        dy_kd_comp_t comp;
        if ((e = dy_kd_db_load(api->db, ids[i], &comp)) < 0)
            break;
        s_arena_t a = {0};
        SYS_(StreamActiveComputationsResponse) *r =
            s_new(&a, SYSD(stream_active_computations_response));
        char tok[96];
        if (r != NULL && dy_kd_token_encode(times[i], ids[i], tok, sizeof(tok)) == 0) {
            r->computation = s_comp_view(api, &a, &comp);
            r->continuation_token = tok;
        } else {
            a.oom = true;
        }
        dy_kd_status_t dummy;
        e = s_respond(&a, r, &items[i], &dummy) < 0 ? -ENOMEM : 0;
        dy_kd_comp_free(&comp);
        if (e < 0)
            break;
        got++;
        stream->t0 = times[i];
        stream->id0 = ids[i];
    }
    dy_kd_db_rollback(api->db);
    if (got == 0) {
        free(items);
        return s_db_fail(st, e < 0 ? e : -EIO);
    }
    *ret_items = items;
    return got;
}

static int s_set_result(dy_kd_api_t *api, const char *caller, const uint8_t *req, size_t len,
                        dy_buf_t *resp, dy_kd_status_t *st)
{
    const char *duchy;
    SYS_(SetComputationResultRequest) *rq =
        s_decode(&s_duchies, caller, SYSD(set_computation_result_request), req, len, &duchy, st);
    if (rq == NULL)
        return -1;
    int rc = -1;
    dy_kd_comp_t comp = {0};
    uint64_t id;
    char owner[DY_KD_ID_MAX];
    int part = -1;
    if (s_parse_comp_name(rq->name, NULL, &id, NULL, false) < 0 ||
        s_parse_owned(rq->aggregator_certificate, "duchies", "certificates", owner, NULL,
                      NULL) < 0) {
        s_fail(st, DY_WIRE_STATUS_INVALID_ARGUMENT, "bad name");
        goto out;
    }
    if (rq->result_public_key.len == 0 || rq->encrypted_result.len == 0 ||
        rq->public_api_version[0] == '\0') {
        s_fail(st, DY_WIRE_STATUS_INVALID_ARGUMENT,
               "result_public_key, encrypted_result and public_api_version are required");
        goto out;
    }
    if (strcmp(rq->public_api_version, S_API_VERSION) != 0) {
        s_fail(st, DY_WIRE_STATUS_INVALID_ARGUMENT, "public_api_version must be " S_API_VERSION);
        goto out;
    }
    if (strcmp(owner, duchy) != 0) {
        s_fail(st, DY_WIRE_STATUS_PERMISSION_DENIED, "certificate is not the caller's");
        goto out;
    }
    if (s_begin_load(api, id, duchy, &comp, &part, st) < 0)
        goto out;
    if (comp.parts[part].role != DY_KD_ROLE_AGGREGATOR) {
        dy_kd_db_rollback(api->db);
        s_fail(st, DY_WIRE_STATUS_PERMISSION_DENIED, "caller is not the aggregator");
        goto out;
    }
    API_(MeasurementSpec) *spec = (void *)protobuf_c_message_unpack(APID(measurement_spec), NULL,
                                                                    comp.spec.len,
                                                                    comp.spec.data);
    bool key_ok = spec != NULL && spec->measurement_public_key != NULL &&
                  spec->measurement_public_key->value.len == rq->result_public_key.len &&
                  memcmp(spec->measurement_public_key->value.data, rq->result_public_key.data,
                         rq->result_public_key.len) == 0;
    if (spec != NULL)
        protobuf_c_message_free_unpacked(&spec->base, NULL);
    if (!key_ok) {
        dy_kd_db_rollback(api->db);
        s_fail(st, DY_WIRE_STATUS_INVALID_ARGUMENT,
               "result_public_key is not the measurement's public key");
        goto out;
    }
    if (s_cert_known(api, rq->aggregator_certificate, st) < 0) {
        dy_kd_db_rollback(api->db);
        goto out;
    }
    dy_kd_event_t ev = {.trigger = DY_KD_EV_SET_RESULT, .part = part, .req = -1,
                        .data = rq->encrypted_result.data, .len = rq->encrypted_result.len,
                        .cert = rq->aggregator_certificate, .key = rq->result_public_key.data,
                        .key_len = rq->result_public_key.len,
                        .version = rq->public_api_version};
    if (s_apply(api, &comp, &ev, st) < 0)
        goto out;
    s_arena_t a = {0};
    rc = s_respond(&a, s_comp_view(api, &a, &comp), resp, st);
out:
    dy_kd_comp_free(&comp);
    protobuf_c_message_free_unpacked(&rq->base, NULL);
    return rc;
}

/* ---- system API: ComputationParticipants ----------------------------------------------- */

/* Check steps 2 and 3 of the participant calls: name is
 * computations/{c}/participants/{duchy} with the caller's duchy.  0 with the computation id
 * in *ret_comp, or -1 with st. */
static int s_part_name(const char *duchy, const char *name, uint64_t *ret_comp,
                       dy_kd_status_t *st)
{
    char pd[DY_KD_ID_MAX];
    if (s_parse_comp_name(name, "participants", ret_comp, pd, true) < 0)
        return s_fail(st, DY_WIRE_STATUS_INVALID_ARGUMENT, "bad participant name");
    if (strcmp(pd, duchy) != 0)
        return s_fail(st, DY_WIRE_STATUS_PERMISSION_DENIED, "not the caller's participant");
    return 0;
}

static int s_part_respond(dy_kd_api_t *api, const dy_kd_comp_t *comp, int part, dy_buf_t *resp,
                          dy_kd_status_t *st)
{
    s_arena_t a = {0};
    return s_respond(&a, s_part_view(api, &a, comp, (size_t)part), resp, st);
}

static int s_get_participant(dy_kd_api_t *api, const char *caller, const uint8_t *req,
                             size_t len, dy_buf_t *resp, dy_kd_status_t *st)
{
    const char *duchy;
    SYS_(GetComputationParticipantRequest) *rq =
        s_decode(&s_duchies, caller, SYSD(get_computation_participant_request),
                 req, len, &duchy, st);
    if (rq == NULL)
        return -1;
    dy_kd_comp_t comp = {0};
    uint64_t id;
    int part = -1, rc = -1;
    if (s_part_name(duchy, rq->name, &id, st) == 0 &&
        s_begin_load(api, id, duchy, &comp, &part, st) == 0) {
        dy_kd_db_rollback(api->db);
        rc = s_part_respond(api, &comp, part, resp, st);
    }
    dy_kd_comp_free(&comp);
    protobuf_c_message_free_unpacked(&rq->base, NULL);
    return rc;
}

/* Validates params for comp's protocol and the caller (D7); 0 or -1 with st. */
static int s_check_params(dy_kd_api_t *api, const dy_kd_comp_t *comp, int part,
                          const SYS_(ComputationParticipant__RequisitionParams) *rp,
                          dy_kd_status_t *st)
{
    char owner[DY_KD_ID_MAX];
    if (s_parse_owned(rp->duchy_certificate, "duchies", "certificates", owner, NULL, NULL) < 0 ||
        strcmp(owner, comp->parts[part].duchy) != 0)
        return s_fail(st, DY_WIRE_STATUS_INVALID_ARGUMENT,
                      "duchy_certificate must name one of the caller's certificates");
    int want = comp->protocol == DY_KD_PROTO_LLV2     ? 3
               : comp->protocol == DY_KD_PROTO_ROLLV2 ? 4
                                                      : 6;
    if ((int)rp->protocol_case != want)
        return s_fail(st, DY_WIRE_STATUS_INVALID_ARGUMENT, "no or wrong protocol");
    if (want == 3 || want == 4) {
        const SYS_(ComputationParticipant__RequisitionParams__LiquidLegionsV2) *k =
            want == 3 ? rp->liquid_legions_v2 : rp->reach_only_liquid_legions_v2;
        if (k == NULL || k->el_gamal_public_key.len == 0 ||
            k->el_gamal_public_key_signature.len == 0)
            return s_fail(st, DY_WIRE_STATUS_INVALID_ARGUMENT, "missing key or signature");
        if (k->el_gamal_public_key_signature_algorithm_oid[0] != '\0' &&
            strcmp(k->el_gamal_public_key_signature_algorithm_oid, S_ECDSA_OID) != 0)
            return s_fail(st, DY_WIRE_STATUS_INVALID_ARGUMENT, "unsupported signature algorithm");
        API_(ElGamalPublicKey) *eg = (void *)protobuf_c_message_unpack(
            APID(el_gamal_public_key), NULL, k->el_gamal_public_key.len,
            k->el_gamal_public_key.data);
        bool ok = eg != NULL && eg->elliptic_curve_id == api->conf->llv2_curve_id &&
                  eg->generator.len == 33 && eg->element.len == 33;
        if (eg != NULL)
            protobuf_c_message_free_unpacked(&eg->base, NULL);
        if (!ok)
            return s_fail(st, DY_WIRE_STATUS_INVALID_ARGUMENT, "malformed ElGamal public key");
    } else if (comp->parts[part].role != DY_KD_ROLE_AGGREGATOR) {
        const SYS_(ComputationParticipant__RequisitionParams__HonestMajorityShareShuffle) *k =
            rp->honest_majority_share_shuffle;
        if (k == NULL || k->tink_public_key.len == 0 || k->tink_public_key_signature.len == 0)
            return s_fail(st, DY_WIRE_STATUS_INVALID_ARGUMENT, "missing key or signature");
        if (k->tink_public_key_signature_algorithm_oid[0] != '\0' &&
            strcmp(k->tink_public_key_signature_algorithm_oid, S_ECDSA_OID) != 0)
            return s_fail(st, DY_WIRE_STATUS_INVALID_ARGUMENT, "unsupported signature algorithm");
        API_(EncryptionPublicKey) *ek = (void *)protobuf_c_message_unpack(
            APID(encryption_public_key), NULL, k->tink_public_key.len, k->tink_public_key.data);
        bool ok = ek != NULL && ek->format == 100 && ek->data.len == 33;
        if (ek != NULL)
            protobuf_c_message_free_unpacked(&ek->base, NULL);
        if (!ok)
            return s_fail(st, DY_WIRE_STATUS_INVALID_ARGUMENT, "malformed encryption public key");
    }
    return 0;
}

static int s_set_params(dy_kd_api_t *api, const char *caller, const uint8_t *req, size_t len,
                        dy_buf_t *resp, dy_kd_status_t *st)
{
    const char *duchy;
    SYS_(SetParticipantRequisitionParamsRequest) *rq =
        s_decode(&s_duchies, caller, SYSD(set_participant_requisition_params_request),
                 req, len, &duchy, st);
    if (rq == NULL)
        return -1;
    dy_kd_comp_t comp = {0};
    dy_buf_t params = {0};
    uint64_t id;
    int part = -1, rc = -1;
    if (s_part_name(duchy, rq->name, &id, st) < 0)
        goto out;
    if (rq->requisition_params == NULL) {
        s_fail(st, DY_WIRE_STATUS_INVALID_ARGUMENT, "requisition_params missing");
        goto out;
    }
    if (s_begin_load(api, id, duchy, &comp, &part, st) < 0)
        goto out;
    if (s_check_params(api, &comp, part, rq->requisition_params, st) < 0) {
        dy_kd_db_rollback(api->db);
        goto out;
    }
    if (s_cert_known(api, rq->requisition_params->duchy_certificate, st) < 0) {
        dy_kd_db_rollback(api->db);
        goto out;
    }
    /* Normalise: the DER is output only. */
    SYS_(ComputationParticipant__RequisitionParams) norm = *rq->requisition_params;
    norm.duchy_certificate_der.data = NULL;
    norm.duchy_certificate_der.len = 0;
    if (s_pack(&norm.base, &params) < 0) {
        dy_kd_db_rollback(api->db);
        s_fail(st, DY_WIRE_STATUS_INTERNAL, "out of memory");
        goto out;
    }
    dy_kd_event_t ev = {.trigger = DY_KD_EV_SET_PARAMS, .part = part, .req = -1,
                        .etag = rq->etag, .data = params.data, .len = params.len};
    if (s_apply(api, &comp, &ev, st) < 0)
        goto out;
    rc = s_part_respond(api, &comp, part, resp, st);
out:
    dy_buf_free(&params);
    dy_kd_comp_free(&comp);
    protobuf_c_message_free_unpacked(&rq->base, NULL);
    return rc;
}

static int s_confirm(dy_kd_api_t *api, const char *caller, const uint8_t *req, size_t len,
                     dy_buf_t *resp, dy_kd_status_t *st)
{
    const char *duchy;
    SYS_(ConfirmComputationParticipantRequest) *rq =
        s_decode(&s_duchies, caller, SYSD(confirm_computation_participant_request),
                 req, len, &duchy, st);
    if (rq == NULL)
        return -1;
    dy_kd_comp_t comp = {0};
    uint64_t id;
    int part = -1, rc = -1;
    if (s_part_name(duchy, rq->name, &id, st) == 0 &&
        s_begin_load(api, id, duchy, &comp, &part, st) == 0) {
        dy_kd_event_t ev = {.trigger = DY_KD_EV_CONFIRM, .part = part, .req = -1,
                            .etag = rq->etag};
        if (s_apply(api, &comp, &ev, st) == 0)
            rc = s_part_respond(api, &comp, part, resp, st);
    }
    dy_kd_comp_free(&comp);
    protobuf_c_message_free_unpacked(&rq->base, NULL);
    return rc;
}

static int s_fail_participant(dy_kd_api_t *api, const char *caller, const uint8_t *req,
                              size_t len, dy_buf_t *resp, dy_kd_status_t *st)
{
    const char *duchy;
    SYS_(FailComputationParticipantRequest) *rq =
        s_decode(&s_duchies, caller, SYSD(fail_computation_participant_request),
                 req, len, &duchy, st);
    if (rq == NULL)
        return -1;
    dy_kd_comp_t comp = {0};
    dy_buf_t failure = {0};
    uint64_t id;
    int part = -1, rc = -1;
    char *msg = NULL;
    if (s_part_name(duchy, rq->name, &id, st) < 0)
        goto out;
    if (rq->failure == NULL) {
        s_fail(st, DY_WIRE_STATUS_INVALID_ARGUMENT, "failure missing");
        goto out;
    }
    if (s_pack(&rq->failure->base, &failure) < 0) {
        s_fail(st, DY_WIRE_STATUS_INTERNAL, "out of memory");
        goto out;
    }
    if (s_begin_load(api, id, duchy, &comp, &part, st) < 0)
        goto out;
    if (asprintf(&msg, "%s: %s", caller, rq->failure->error_message) < 0)
        msg = NULL;
    dy_kd_event_t ev = {.trigger = DY_KD_EV_FAIL, .part = part, .req = -1, .etag = rq->etag,
                        .data = failure.data, .len = failure.len, .message = msg};
    if (s_apply(api, &comp, &ev, st) < 0)
        goto out;
    rc = s_part_respond(api, &comp, part, resp, st);
out:
    free(msg);
    dy_buf_free(&failure);
    dy_kd_comp_free(&comp);
    protobuf_c_message_free_unpacked(&rq->base, NULL);
    return rc;
}

/* ---- system API: Requisitions, log entries --------------------------------------------- */

static int s_fulfill(dy_kd_api_t *api, const char *caller, const uint8_t *req, size_t len,
                     dy_buf_t *resp, dy_kd_status_t *st)
{
    const char *duchy;
    SYS_(FulfillRequisitionRequest) *rq =
        s_decode(&s_duchies, caller, SYSD(fulfill_requisition_request), req, len, &duchy, st);
    if (rq == NULL)
        return -1;
    dy_kd_comp_t comp = {0};
    dy_buf_t ctx = {0};
    int part = -1, rc = -1;
    uint64_t cid, rid;
    char rids[DY_KD_ID_MAX];
    if (s_parse_comp_name(rq->name, "requisitions", &cid, rids, false) < 0 ||
        dy_ext_id_decode(rids, &rid) < 0) {
        s_fail(st, DY_WIRE_STATUS_INVALID_ARGUMENT, "bad requisition name");
        goto out;
    }
    if (rq->nonce == 0) {
        s_fail(st, DY_WIRE_STATUS_INVALID_ARGUMENT, "nonce must be nonzero");
        goto out;
    }
    if (rq->fulfillment_context != NULL && s_pack(&rq->fulfillment_context->base, &ctx) < 0) {
        s_fail(st, DY_WIRE_STATUS_INTERNAL, "out of memory");
        goto out;
    }
    if (s_begin_load(api, cid, duchy, &comp, &part, st) < 0)
        goto out;
    int ri = s_req_index(&comp, rid);
    if (ri < 0) {
        dy_kd_db_rollback(api->db);
        s_fail(st, DY_WIRE_STATUS_NOT_FOUND, "requisition not found");
        goto out;
    }
    if (comp.protocol == DY_KD_PROTO_HMSS && comp.reqs[ri].assigned != part) {
        dy_kd_db_rollback(api->db);
        s_fail(st, DY_WIRE_STATUS_PERMISSION_DENIED, "requisition is assigned to %s",
               comp.reqs[ri].assigned >= 0 ? comp.parts[comp.reqs[ri].assigned].duchy : "?");
        goto out;
    }
    dy_kd_event_t ev = {.trigger = DY_KD_EV_FULFILL, .part = part, .req = ri, .etag = rq->etag,
                        .data = ctx.data, .len = ctx.len, .nonce = rq->nonce};
    if (s_apply(api, &comp, &ev, st) < 0)
        goto out;
    s_arena_t a = {0};
    rc = s_respond(&a, s_sysreq_view(&a, &comp, (size_t)ri), resp, st);
out:
    dy_buf_free(&ctx);
    dy_kd_comp_free(&comp);
    protobuf_c_message_free_unpacked(&rq->base, NULL);
    return rc;
}

static int s_log_entry(dy_kd_api_t *api, const char *caller, const uint8_t *req, size_t len,
                       dy_buf_t *resp, dy_kd_status_t *st)
{
    const char *duchy;
    SYS_(CreateComputationLogEntryRequest) *rq =
        s_decode(&s_duchies, caller, SYSD(create_computation_log_entry_request),
                 req, len, &duchy, st);
    if (rq == NULL)
        return -1;
    int rc = -1;
    dy_kd_comp_t comp = {0};
    uint64_t cid, lid = 0;
    char pd[DY_KD_ID_MAX];
    if (s_parse_comp_name(rq->parent, "participants", &cid, pd, true) < 0) {
        s_fail(st, DY_WIRE_STATUS_INVALID_ARGUMENT, "bad parent");
        goto out;
    }
    if (strcmp(pd, duchy) != 0) {
        s_fail(st, DY_WIRE_STATUS_PERMISSION_DENIED, "not the caller's participant");
        goto out;
    }
    SYS_(ComputationLogEntry) *e = rq->computation_log_entry;
    if (e == NULL) {
        s_fail(st, DY_WIRE_STATUS_INVALID_ARGUMENT, "computation_log_entry missing");
        goto out;
    }
    if (e->error_details == NULL || e->error_details->type != 1) {
        s_fail(st, DY_WIRE_STATUS_INVALID_ARGUMENT, "only TRANSIENT errors are logged here");
        goto out;
    }
    if (s_begin_load(api, cid, duchy, &comp, NULL, st) < 0)
        goto out;
    int dbe = dy_kd_db_new_id(api->db, 'l', &lid);
    char lids[DY_KD_EXT_ID_LEN + 1];
    dy_ext_id_encode(lid, lids);
    char *name = NULL;
    if (dbe == 0 && asprintf(&name, "%s/logEntries/%s", rq->parent, lids) < 0)
        dbe = -ENOMEM;
    dy_buf_t packed = {0};
    if (dbe == 0) {
        SYS_(ComputationLogEntry) named = *e;
        named.name = name;
        dbe = s_pack(&named.base, &packed);
        if (dbe == 0)
            dbe = dy_kd_db_log_insert(api->db, cid, duchy, lid, packed.data, packed.len);
        if (dbe == 0)
            dbe = dy_kd_db_commit(api->db);
    }
    free(name);
    if (dbe < 0) {
        dy_kd_db_rollback(api->db);
        dy_buf_free(&packed);
        s_db_fail(st, dbe);
        goto out;
    }
    dy_buf_free(resp);
    *resp = packed;
    rc = 0;
out:
    dy_kd_comp_free(&comp);
    protobuf_c_message_free_unpacked(&rq->base, NULL);
    return rc;
}

/* ---- public API: measurements ---------------------------------------------------------- */

/* System noise mechanism for a public one (D5); -1 if none. */
static int s_noise(int pub, dy_kd_protocol_t proto)
{
    switch (pub) {
    case 0:
        return proto == DY_KD_PROTO_HMSS ? 2 : 1;
    case 1:
        return 1; /* GEOMETRIC */
    case 2:
        return 2; /* DISCRETE_GAUSSIAN */
    case 3:
        return 4; /* NONE */
    case 5:
        return 3; /* CONTINUOUS_GAUSSIAN */
    case 6:
        return 5; /* DETERMINISTIC_TRUNCATED_LAPLACE */
    default:
        return -1;
    }
}

/* Public noise mechanism for a system one (for the effective public config). */
static int s_noise_public(int sys)
{
    static const int map[] = {0, 1, 2, 5, 3, 6};
    return sys >= 0 && sys <= 5 ? map[sys] : 0;
}

static int s_sha256(const uint8_t *d, size_t n, uint8_t out[32])
{
    unsigned int l = 0;
    return EVP_Digest(d, n, out, &l, EVP_sha256(), NULL) == 1 ? 0 : -EIO;
}

/* Builds the system MpcProtocolConfig and the effective public ProtocolConfig (D5). */
static int s_build_configs(dy_kd_api_t *api, dy_kd_protocol_t proto, int noise, bool reach,
                           dy_buf_t *ret_mpc, dy_buf_t *ret_pub)
{
    const dy_kd_conf_t *c = api->conf;
    SYS_(Computation__MpcProtocolConfig) mpc;
    SYS_(Computation__MpcProtocolConfig__LiquidLegionsV2) ll;
    SYS_(Computation__MpcProtocolConfig__LiquidLegionsV2__LiquidLegionsSketchParams) sk;
    SYS_(Computation__MpcProtocolConfig__LiquidLegionsV2__MpcNoise) mn;
    SYS_(DifferentialPrivacyParams) bh, pubn;
    SYS_(Computation__MpcProtocolConfig__HonestMajorityShareShuffle) hm;
    protobuf_c_message_init(SYSD(computation__mpc_protocol_config), &mpc);
    protobuf_c_message_init(SYSD(computation__mpc_protocol_config__liquid_legions_v2), &ll);
    protobuf_c_message_init(
        SYSD(computation__mpc_protocol_config__liquid_legions_v2__liquid_legions_sketch_params),
        &sk);
    protobuf_c_message_init(SYSD(computation__mpc_protocol_config__liquid_legions_v2__mpc_noise),
                            &mn);
    protobuf_c_message_init(SYSD(differential_privacy_params), &bh);
    protobuf_c_message_init(SYSD(differential_privacy_params), &pubn);
    protobuf_c_message_init(SYSD(computation__mpc_protocol_config__honest_majority_share_shuffle),
                            &hm);

    API_(ProtocolConfig) pc;
    API_(ProtocolConfig__Protocol) pp;
    API_(ProtocolConfig__Protocol) *ppp = &pp;
    API_(ProtocolConfig__LiquidLegionsV2) pll;
    API_(ProtocolConfig__ReachOnlyLiquidLegionsV2) pro;
    API_(LiquidLegionsSketchParams) psk;
    API_(ReachOnlyLiquidLegionsSketchParams) prsk;
    API_(ProtocolConfig__HonestMajorityShareShuffle) phm;
    protobuf_c_message_init(APID(protocol_config), &pc);
    protobuf_c_message_init(APID(protocol_config__protocol), &pp);
    protobuf_c_message_init(APID(protocol_config__liquid_legions_v2), &pll);
    protobuf_c_message_init(APID(protocol_config__reach_only_liquid_legions_v2), &pro);
    protobuf_c_message_init(APID(liquid_legions_sketch_params), &psk);
    protobuf_c_message_init(APID(reach_only_liquid_legions_sketch_params), &prsk);
    protobuf_c_message_init(APID(protocol_config__honest_majority_share_shuffle), &phm);
    pc.measurement_type = reach ? 4 : 1;
    pc.n_protocols = 1;
    pc.protocols = &ppp;

    if (proto == DY_KD_PROTO_HMSS) {
        hm.reach_and_frequency_ring_modulus = c->hmss_rf_modulus;
        hm.reach_ring_modulus = c->hmss_reach_modulus;
        hm.noise_mechanism = noise;
        mpc.protocol_case = 3;
        mpc.honest_majority_share_shuffle = &hm;
        phm.noise_mechanism = s_noise_public(noise);
        phm.ring_modulus = reach ? c->hmss_reach_modulus : c->hmss_rf_modulus;
        pp.protocol_case = 4;
        pp.honest_majority_share_shuffle = &phm;
    } else {
        sk.decay_rate = c->llv2_decay_rate;
        sk.max_size = c->llv2_max_size;
        bh.epsilon = c->llv2_bh_epsilon;
        bh.delta = c->llv2_bh_delta;
        pubn.epsilon = c->llv2_pub_epsilon;
        pubn.delta = c->llv2_pub_delta;
        mn.blinded_histogram_noise = &bh;
        mn.publisher_noise = &pubn;
        ll.sketch_params = &sk;
        ll.mpc_noise = &mn;
        ll.elliptic_curve_id = c->llv2_curve_id;
        ll.noise_mechanism = noise;
        if (proto == DY_KD_PROTO_LLV2) {
            mpc.protocol_case = 1;
            mpc.liquid_legions_v2 = &ll;
            psk.decay_rate = c->llv2_decay_rate;
            psk.max_size = c->llv2_max_size;
            pll.sketch_params = &psk;
            pll.elliptic_curve_id = c->llv2_curve_id;
            pll.noise_mechanism = s_noise_public(noise);
            pp.protocol_case = 1;
            pp.liquid_legions_v2 = &pll;
        } else {
            mpc.protocol_case = 2;
            mpc.reach_only_liquid_legions_v2 = &ll;
            prsk.decay_rate = c->llv2_decay_rate;
            prsk.max_size = c->llv2_max_size;
            pro.sketch_params = &prsk;
            pro.elliptic_curve_id = c->llv2_curve_id;
            pro.noise_mechanism = s_noise_public(noise);
            pp.protocol_case = 3;
            pp.reach_only_liquid_legions_v2 = &pro;
        }
    }
    if (s_pack(&mpc.base, ret_mpc) < 0 || s_pack(&pc.base, ret_pub) < 0)
        return -ENOMEM;
    return 0;
}

static int s_respond_measurement(dy_kd_api_t *api, const dy_kd_comp_t *comp, dy_buf_t *resp,
                                 dy_kd_status_t *st)
{
    s_arena_t a = {0};
    return s_respond(&a, s_meas_view(api, &a, comp), resp, st);
}

/* Returns the existing measurement of (mc, request_id) as the response: 1 if found, 0 if
 * not, -1 with st on error. */
static int s_existing(dy_kd_api_t *api, const char *mc, const char *request_id, dy_buf_t *resp,
                      dy_kd_status_t *st)
{
    uint64_t id;
    int e = dy_kd_db_find_request(api->db, mc, request_id, &id);
    if (e == -ENOENT)
        return 0;
    if (e < 0)
        return s_db_fail(st, e);
    dy_kd_comp_t comp;
    if ((e = dy_kd_db_load(api->db, id, &comp)) < 0)
        return s_db_fail(st, e);
    int rc = s_respond_measurement(api, &comp, resp, st);
    dy_kd_comp_free(&comp);
    return rc < 0 ? -1 : 1;
}

static int s_create_measurement(dy_kd_api_t *api, const char *caller, const uint8_t *req,
                                size_t len, dy_buf_t *resp, dy_kd_status_t *st)
{
    const char *mc;
    API_(CreateMeasurementRequest) *rq =
        s_decode(&s_mcs, caller, APID(create_measurement_request), req, len, &mc, st);
    if (rq == NULL)
        return -1;
    int rc = -1;
    API_(MeasurementSpec) *spec = NULL;
    dy_kd_comp_t comp = {0};
    dy_buf_t mpc = {0}, pubc = {0}, stored = {0};
    dy_buf_t *enc = NULL, *dpk = NULL;
    const char **dpc = NULL;
    bool in_tx = false;
    char parent[DY_KD_ID_MAX];
    if (s_parse_party(rq->parent, "measurementConsumers", parent) < 0) {
        s_fail(st, DY_WIRE_STATUS_INVALID_ARGUMENT, "bad parent");
        goto out;
    }
    if (strcmp(parent, mc) != 0) {
        s_fail(st, DY_WIRE_STATUS_PERMISSION_DENIED, "parent is another measurement consumer");
        goto out;
    }
    if (strlen(rq->request_id) > 256) {
        s_fail(st, DY_WIRE_STATUS_INVALID_ARGUMENT, "request_id too long");
        goto out;
    }
    int e = dy_kd_db_begin(api->db);
    if (e < 0) {
        s_db_fail(st, e);
        goto out;
    }
    in_tx = true;
    if (rq->request_id[0] != '\0') {
        int ex = s_existing(api, mc, rq->request_id, resp, st);
        if (ex != 0) {
            rc = ex > 0 ? 0 : -1;
            goto out;
        }
    }
    API_(Measurement) *m = rq->measurement;
    if (m == NULL || m->measurement_spec == NULL || m->measurement_spec->message == NULL ||
        m->measurement_spec->message->value.len == 0) {
        s_fail(st, DY_WIRE_STATUS_INVALID_ARGUMENT, "measurement_spec missing");
        goto out;
    }
    const ProtobufCBinaryData *sb = &m->measurement_spec->message->value;
    spec = (void *)protobuf_c_message_unpack(APID(measurement_spec), NULL, sb->len, sb->data);
    if (spec == NULL) {
        s_fail(st, DY_WIRE_STATUS_INVALID_ARGUMENT, "measurement_spec is not a MeasurementSpec");
        goto out;
    }
    bool reach = spec->measurement_type_case == 7;
    if (!reach && spec->measurement_type_case != 4) {
        s_fail(st, DY_WIRE_STATUS_INVALID_ARGUMENT, "only REACH and REACH_AND_FREQUENCY");
        goto out;
    }
    if (spec->measurement_public_key == NULL || spec->measurement_public_key->value.len == 0) {
        s_fail(st, DY_WIRE_STATUS_INVALID_ARGUMENT, "measurement_public_key missing");
        goto out;
    }
    if (m->measurement_consumer_certificate[0] != '\0') {
        char owner[DY_KD_ID_MAX];
        if (s_parse_owned(m->measurement_consumer_certificate, "measurementConsumers",
                          "certificates", owner, NULL, NULL) < 0 ||
            strcmp(owner, mc) != 0) {
            s_fail(st, DY_WIRE_STATUS_INVALID_ARGUMENT,
                   "measurement_consumer_certificate must be one of the caller's");
            goto out;
        }
    }
    if (m->protocol_config == NULL || m->protocol_config->n_protocols != 1 ||
        m->protocol_config->protocols[0] == NULL) {
        s_fail(st, DY_WIRE_STATUS_INVALID_ARGUMENT, "protocol_config needs exactly one protocol");
        goto out;
    }
    const API_(ProtocolConfig__Protocol) *pp = m->protocol_config->protocols[0];
    dy_kd_protocol_t proto;
    int pub_noise;
    switch ((int)pp->protocol_case) {
    case 1:
        proto = DY_KD_PROTO_LLV2;
        pub_noise = pp->liquid_legions_v2->noise_mechanism;
        break;
    case 3:
        proto = DY_KD_PROTO_ROLLV2;
        pub_noise = pp->reach_only_liquid_legions_v2->noise_mechanism;
        break;
    case 4:
        proto = DY_KD_PROTO_HMSS;
        pub_noise = pp->honest_majority_share_shuffle->noise_mechanism;
        break;
    case 5:
        s_fail(st, DY_WIRE_STATUS_UNIMPLEMENTED, "TrusTee is not supported");
        goto out;
    default:
        s_fail(st, DY_WIRE_STATUS_INVALID_ARGUMENT, "no protocol");
        goto out;
    }
    if (proto == DY_KD_PROTO_ROLLV2 && !reach) {
        s_fail(st, DY_WIRE_STATUS_INVALID_ARGUMENT,
               "reach_only_liquid_legions_v2 needs a REACH measurement");
        goto out;
    }
    int noise = s_noise(pub_noise, proto);
    if (noise < 0) {
        s_fail(st, DY_WIRE_STATUS_INVALID_ARGUMENT, "unsupported noise mechanism");
        goto out;
    }
    size_t n = m->n_data_providers;
    if (n == 0 || n > 1000) {
        s_fail(st, DY_WIRE_STATUS_INVALID_ARGUMENT, "1..1000 data providers needed");
        goto out;
    }
    if (spec->n_nonce_hashes != n) {
        s_fail(st, DY_WIRE_STATUS_INVALID_ARGUMENT,
               "the spec's nonce_hashes must match the data provider entries");
        goto out;
    }
    /* Participants from the configuration (D6). */
    const dy_kd_conf_t *c = api->conf;
    size_t naggs = 0;
    for (size_t i = 0; i < c->nduchies; i++)
        naggs += c->duchies[i].aggregator ? 1 : 0;
    if (c->nduchies != DY_KD_PARTICIPANTS || naggs != 1) {
        s_fail(st, DY_WIRE_STATUS_FAILED_PRECONDITION,
               "three active duchies (one aggregator) are needed");
        goto out;
    }
    comp.reqs = calloc(n, sizeof(*comp.reqs));
    enc = calloc(n, sizeof(*enc));
    dpk = calloc(n, sizeof(*dpk));
    dpc = calloc(n, sizeof(*dpc));
    bool *used = calloc(n, sizeof(*used));
    if (comp.reqs == NULL || enc == NULL || dpk == NULL || dpc == NULL || used == NULL) {
        free(used);
        s_fail(st, DY_WIRE_STATUS_INTERNAL, "out of memory");
        goto out;
    }
    comp.nreqs = n;
    const char *bad = NULL;
    for (size_t i = 0; i < n && bad == NULL; i++) {
        const API_(Measurement__DataProviderEntry) *dp = m->data_providers[i];
        dy_kd_req_t *r = &comp.reqs[i];
        r->fulfiller = -1;
        r->assigned = -1;
        r->state = DY_KD_REQ_PENDING_PARAMS;
        if (dp == NULL || s_parse_party(dp->key, "dataProviders", r->edp) < 0) {
            bad = "bad data provider key";
            break;
        }
        for (size_t j = 0; j < i; j++)
            if (strcmp(comp.reqs[j].edp, r->edp) == 0)
                bad = "duplicate data provider";
        const API_(Measurement__DataProviderEntry__Value) *v = dp->value;
        if (bad != NULL)
            break;
        if (v == NULL || v->nonce_hash.len != DY_KD_HASH_LEN ||
            v->encrypted_requisition_spec == NULL ||
            v->encrypted_requisition_spec->ciphertext.len == 0) {
            bad = "data provider entry needs nonce_hash and encrypted_requisition_spec";
            break;
        }
        memcpy(r->nonce_hash, v->nonce_hash.data, DY_KD_HASH_LEN);
        bool found = false;
        for (size_t j = 0; j < n && !found; j++)
            if (!used[j] && spec->nonce_hashes[j].len == DY_KD_HASH_LEN &&
                memcmp(spec->nonce_hashes[j].data, r->nonce_hash, DY_KD_HASH_LEN) == 0)
                found = used[j] = true;
        if (!found) {
            bad = "the spec's nonce_hashes must match the data provider entries";
            break;
        }
        const ProtobufCBinaryData *ct = &v->encrypted_requisition_spec->ciphertext;
        if (s_sha256(ct->data, ct->len, r->spec_hash) < 0 ||
            s_pack(&v->encrypted_requisition_spec->base, &enc[i]) < 0 ||
            (v->data_provider_public_key != NULL &&
             s_pack(&v->data_provider_public_key->base, &dpk[i]) < 0)) {
            bad = "out of memory";
            break;
        }
        dpc[i] = v->data_provider_certificate;
    }
    free(used);
    if (bad != NULL) {
        s_fail(st, DY_WIRE_STATUS_INVALID_ARGUMENT, "%s", bad);
        goto out;
    }
    /* The model: ids, participants, requisitions. */
    if ((e = dy_kd_db_new_id(api->db, 'm', &comp.id)) < 0) {
        s_db_fail(st, e);
        goto out;
    }
    snprintf(comp.mc, sizeof(comp.mc), "%s", mc);
    comp.protocol = proto;
    comp.state = DY_KD_COMP_NONE;
    comp.nparts = DY_KD_PARTICIPANTS;
    int nas = 0, fna = -1, sna = -1;
    for (size_t i = 0; i < DY_KD_PARTICIPANTS; i++) {
        dy_kd_part_t *p = &comp.parts[i];
        snprintf(p->duchy, sizeof(p->duchy), "%s", c->duchies[i].id);
        p->state = DY_KD_PART_CREATED;
        if (c->duchies[i].aggregator) {
            p->role = DY_KD_ROLE_AGGREGATOR;
        } else if (proto != DY_KD_PROTO_HMSS) {
            p->role = DY_KD_ROLE_NON_AGGREGATOR;
        } else if (nas++ == 0) {
            p->role = DY_KD_ROLE_FIRST_NON_AGGREGATOR;
            fna = (int)i;
        } else {
            p->role = DY_KD_ROLE_SECOND_NON_AGGREGATOR;
            sna = (int)i;
        }
    }
    for (size_t i = 0; i < n; i++) {
        bool dup;
        do { /* unique in the database and within this computation */
            if ((e = dy_kd_db_new_id(api->db, 'r', &comp.reqs[i].id)) < 0) {
                s_db_fail(st, e);
                goto out;
            }
            dup = false;
            for (size_t j = 0; j < i; j++)
                dup |= comp.reqs[j].id == comp.reqs[i].id;
        } while (dup);
        if (proto == DY_KD_PROTO_HMSS)
            comp.reqs[i].assigned = comp.reqs[i].id % 2 == 0 ? fna : sna;
    }
    if (dy_buf_append(&comp.spec, sb->data, sb->len) < 0 ||
        s_build_configs(api, proto, noise, reach, &mpc, &pubc) < 0 ||
        dy_buf_append(&comp.mpc_config, mpc.data, mpc.len) < 0) {
        s_fail(st, DY_WIRE_STATUS_INTERNAL, "out of memory");
        goto out;
    }
    /* Store the request's measurement with output fields cleared. */
    API_(Measurement) norm = *m;
    norm.name = "";
    norm.protocol_config = NULL;
    norm.state = 0;
    norm.n_results = 0;
    norm.results = NULL;
    norm.failure = NULL;
    norm.create_time = NULL;
    norm.update_time = NULL;
    if (s_pack(&norm.base, &stored) < 0) {
        s_fail(st, DY_WIRE_STATUS_INTERNAL, "out of memory");
        goto out;
    }
    dy_kd_event_t ev = {.trigger = DY_KD_EV_CREATE, .part = -1, .req = -1};
    char why[128];
    if (dy_kd_fsm_apply(&comp, &ev, why, sizeof(why)) != DY_KD_FSM_CHANGED) {
        s_fail(st, DY_WIRE_STATUS_INTERNAL, "%s", why);
        goto out;
    }
    dy_kd_db_measurement_t row = {
        .request_id = rq->request_id, .measurement = stored.data,
        .measurement_len = stored.len, .protocol_config = pubc.data,
        .protocol_config_len = pubc.len, .dp_certificates = dpc, .encrypted_specs = enc,
        .dp_public_keys = dpk,
    };
    if ((e = dy_kd_db_insert(api->db, &comp, &row)) < 0 || (e = dy_kd_db_commit(api->db)) < 0) {
        s_db_fail(st, e);
        goto out;
    }
    in_tx = false;
    rc = s_respond_measurement(api, &comp, resp, st);
out:
    if (in_tx)
        dy_kd_db_rollback(api->db);
    for (size_t i = 0; enc != NULL && i < comp.nreqs; i++)
        dy_buf_free(&enc[i]);
    for (size_t i = 0; dpk != NULL && i < comp.nreqs; i++)
        dy_buf_free(&dpk[i]);
    free(enc);
    free(dpk);
    free(dpc);
    dy_buf_free(&mpc);
    dy_buf_free(&pubc);
    dy_buf_free(&stored);
    dy_kd_comp_free(&comp);
    if (spec != NULL)
        protobuf_c_message_free_unpacked(&spec->base, NULL);
    protobuf_c_message_free_unpacked(&rq->base, NULL);
    return rc;
}

/* Common front of Get/CancelMeasurement after s_decode (mc = the caller's id): 0 with the
 * transaction open and comp loaded. */
static int s_meas_front(dy_kd_api_t *api, const char *mc, const char *name,
                        dy_kd_comp_t *comp, dy_kd_status_t *st)
{
    char owner[DY_KD_ID_MAX];
    uint64_t id;
    if (s_parse_owned(name, "measurementConsumers", "measurements", owner, &id, NULL) < 0)
        return s_fail(st, DY_WIRE_STATUS_INVALID_ARGUMENT, "bad measurement name");
    if (strcmp(owner, mc) != 0)
        return s_fail(st, DY_WIRE_STATUS_PERMISSION_DENIED, "another measurement consumer's");
    if (s_begin_load(api, id, NULL, comp, NULL, st) < 0)
        return -1;
    if (strcmp(comp->mc, mc) != 0) {
        dy_kd_db_rollback(api->db);
        dy_kd_comp_free(comp);
        return s_fail(st, DY_WIRE_STATUS_NOT_FOUND, "measurement not found");
    }
    return 0;
}

static int s_get_measurement(dy_kd_api_t *api, const char *caller, const uint8_t *req,
                             size_t len, dy_buf_t *resp, dy_kd_status_t *st)
{
    const char *mc;
    API_(GetMeasurementRequest) *rq =
        s_decode(&s_mcs, caller, APID(get_measurement_request), req, len, &mc, st);
    if (rq == NULL)
        return -1;
    dy_kd_comp_t comp = {0};
    int rc = -1;
    if (s_meas_front(api, mc, rq->name, &comp, st) == 0) {
        rc = s_respond_measurement(api, &comp, resp, st);
        dy_kd_db_rollback(api->db);
    }
    dy_kd_comp_free(&comp);
    protobuf_c_message_free_unpacked(&rq->base, NULL);
    return rc;
}

static int s_cancel_measurement(dy_kd_api_t *api, const char *caller, const uint8_t *req,
                                size_t len, dy_buf_t *resp, dy_kd_status_t *st)
{
    const char *mc;
    API_(CancelMeasurementRequest) *rq =
        s_decode(&s_mcs, caller, APID(cancel_measurement_request), req, len, &mc, st);
    if (rq == NULL)
        return -1;
    dy_kd_comp_t comp = {0};
    int rc = -1;
    if (s_meas_front(api, mc, rq->name, &comp, st) == 0) {
        dy_kd_event_t ev = {.trigger = DY_KD_EV_CANCEL, .part = -1, .req = -1};
        if (s_apply(api, &comp, &ev, st) == 0)
            rc = s_respond_measurement(api, &comp, resp, st);
    }
    dy_kd_comp_free(&comp);
    protobuf_c_message_free_unpacked(&rq->base, NULL);
    return rc;
}

/* ---- public API: requisitions ---------------------------------------------------------- */

static int s_list_requisitions(dy_kd_api_t *api, const char *caller, const uint8_t *req,
                               size_t len, dy_buf_t *resp, dy_kd_status_t *st)
{
    const char *edp;
    API_(ListRequisitionsRequest) *rq =
        s_decode(&s_edps, caller, APID(list_requisitions_request), req, len, &edp, st);
    if (rq == NULL)
        return -1;
    int rc = -1;
    uint64_t *rids = NULL, *cids = NULL;
    char parent[DY_KD_ID_MAX];
    uint64_t after = 0;
    if (s_parse_party(rq->parent, "dataProviders", parent) < 0 ||
        (rq->page_token[0] != '\0' && dy_ext_id_decode(rq->page_token, &after) < 0) ||
        rq->page_size < 0) {
        s_fail(st, DY_WIRE_STATUS_INVALID_ARGUMENT, "bad parent, page token or page size");
        goto out;
    }
    if (strcmp(parent, edp) != 0) {
        s_fail(st, DY_WIRE_STATUS_PERMISSION_DENIED, "another data provider's requisitions");
        goto out;
    }
    size_t page = rq->page_size == 0 ? S_LIST_DEFAULT
                  : rq->page_size > S_LIST_MAX ? S_LIST_MAX
                                               : (size_t)rq->page_size;
    rids = calloc(page, sizeof(*rids));
    cids = calloc(page, sizeof(*cids));
    if (rids == NULL || cids == NULL) {
        s_fail(st, DY_WIRE_STATUS_INTERNAL, "out of memory");
        goto out;
    }
    int e = dy_kd_db_begin(api->db);
    if (e < 0) {
        s_db_fail(st, e);
        goto out;
    }
    int n = dy_kd_db_list_requisitions(api->db, edp, after, page, rids, cids);
    if (n < 0) {
        dy_kd_db_rollback(api->db);
        s_db_fail(st, n);
        goto out;
    }
    s_arena_t a = {0};
    API_(ListRequisitionsResponse) *lr = s_new(&a, APID(list_requisitions_response));
    if (lr != NULL)
        lr->requisitions = s_array(&a, (size_t)n, sizeof(void *));
    dy_kd_comp_t *comps = calloc((size_t)(n > 0 ? n : 1), sizeof(*comps));
    if (comps == NULL)
        a.oom = true;
    for (int i = 0; !a.oom && lr != NULL && lr->requisitions != NULL && i < n; i++) {
        if (dy_kd_db_load(api->db, cids[i], &comps[i]) < 0) {
            a.oom = true;
            break;
        }
        int ri = s_req_index(&comps[i], rids[i]);
        if (ri < 0)
            continue;
        bool keep = rq->filter == NULL || rq->filter->n_states == 0;
        int pst = comps[i].reqs[ri].state;
        for (size_t k = 0; !keep && k < rq->filter->n_states; k++)
            keep = (int)rq->filter->states[k] == pst;
        if (!keep)
            continue;
        API_(Measurement) *m;
        API_(ProtocolConfig) *pc;
        s_meas_parts(api, &a, &comps[i], &m, &pc);
        API_(Requisition) *v = s_pubreq_view(api, &a, &comps[i], (size_t)ri, m, pc);
        if (v == NULL)
            a.oom = true;
        else
            lr->requisitions[lr->n_requisitions++] = v;
    }
    if (lr != NULL && (size_t)n == page && n > 0)
        lr->next_page_token = s_ext(&a, rids[n - 1]);
    dy_kd_db_rollback(api->db);
    rc = s_respond(&a, lr, resp, st);
    for (int i = 0; comps != NULL && i < n; i++)
        dy_kd_comp_free(&comps[i]);
    free(comps);
out:
    free(rids);
    free(cids);
    protobuf_c_message_free_unpacked(&rq->base, NULL);
    return rc;
}

static int s_refuse(dy_kd_api_t *api, const char *caller, const uint8_t *req, size_t len,
                    dy_buf_t *resp, dy_kd_status_t *st)
{
    const char *edp;
    API_(RefuseRequisitionRequest) *rq =
        s_decode(&s_edps, caller, APID(refuse_requisition_request), req, len, &edp, st);
    if (rq == NULL)
        return -1;
    int rc = -1;
    dy_kd_comp_t comp = {0};
    dy_buf_t refusal = {0};
    char *msg = NULL;
    char owner[DY_KD_ID_MAX], redp[DY_KD_ID_MAX];
    uint64_t rid, cid;
    if (s_parse_owned(rq->name, "dataProviders", "requisitions", owner, &rid, NULL) < 0) {
        s_fail(st, DY_WIRE_STATUS_INVALID_ARGUMENT, "bad requisition name");
        goto out;
    }
    if (strcmp(owner, edp) != 0) {
        s_fail(st, DY_WIRE_STATUS_PERMISSION_DENIED, "another data provider's requisition");
        goto out;
    }
    if (rq->refusal == NULL) {
        s_fail(st, DY_WIRE_STATUS_INVALID_ARGUMENT, "refusal missing");
        goto out;
    }
    if (s_pack(&rq->refusal->base, &refusal) < 0) {
        s_fail(st, DY_WIRE_STATUS_INTERNAL, "out of memory");
        goto out;
    }
    int e = dy_kd_db_begin(api->db);
    if (e < 0) {
        s_db_fail(st, e);
        goto out;
    }
    e = dy_kd_db_find_requisition(api->db, rid, &cid, redp);
    if (e == 0 && strcmp(redp, edp) != 0)
        e = -ENOENT;
    int ri = -1;
    if (e == 0 && (e = dy_kd_db_load(api->db, cid, &comp)) == 0) {
        ri = s_req_index(&comp, rid);
        if (ri < 0 || !comp.reqs[ri].visible)
            e = -ENOENT;
    }
    if (e < 0) {
        dy_kd_db_rollback(api->db);
        if (e == -ENOENT)
            s_fail(st, DY_WIRE_STATUS_NOT_FOUND, "requisition not found");
        else
            s_db_fail(st, e);
        goto out;
    }
    if (asprintf(&msg, "%s refused: %s", rq->name, rq->refusal->message) < 0)
        msg = NULL;
    dy_kd_event_t ev = {.trigger = DY_KD_EV_REFUSE, .part = -1, .req = ri, .etag = rq->etag,
                        .data = refusal.data, .len = refusal.len, .message = msg};
    if (s_apply(api, &comp, &ev, st) < 0)
        goto out;
    s_arena_t a = {0};
    API_(Measurement) *m;
    API_(ProtocolConfig) *pc;
    s_meas_parts(api, &a, &comp, &m, &pc);
    rc = s_respond(&a, s_pubreq_view(api, &a, &comp, (size_t)ri, m, pc), resp, st);
out:
    free(msg);
    dy_buf_free(&refusal);
    dy_kd_comp_free(&comp);
    protobuf_c_message_free_unpacked(&rq->base, NULL);
    return rc;
}

/* ---- public API: certificates ---------------------------------------------------------- */

static int s_get_certificate(dy_kd_api_t *api, const char *caller, const uint8_t *req,
                             size_t len, dy_buf_t *resp, dy_kd_status_t *st)
{
    if (caller == NULL || caller[0] == '\0')
        return s_fail(st, DY_WIRE_STATUS_UNAUTHENTICATED, "no identity");
    API_(GetCertificateRequest) *rq = (void *)protobuf_c_message_unpack(
        APID(get_certificate_request), NULL, len, req);
    if (rq == NULL)
        return s_fail(st, DY_WIRE_STATUS_INVALID_ARGUMENT, "malformed request");
    int rc = -1;
    char owner[DY_KD_ID_MAX];
    if (s_parse_cert_name(rq->name, owner, NULL) < 0) {
        s_fail(st, DY_WIRE_STATUS_INVALID_ARGUMENT, "bad certificate name");
        goto out;
    }
    uint8_t *der = NULL;
    size_t dlen = 0;
    if (s_cert(api, rq->name, &der, &dlen) < 0) {
        s_fail(st, DY_WIRE_STATUS_NOT_FOUND, "certificate not found");
        goto out;
    }
    s_arena_t a = {0};
    s_keep(&a, der);
    API_(Certificate) *cert = s_new(&a, APID(certificate));
    if (cert != NULL) {
        cert->name = rq->name;
        cert->x509_der.data = der;
        cert->x509_der.len = dlen;
        const unsigned char *p = der;
        X509 *x = d2i_X509(NULL, &p, (long)dlen);
        if (x != NULL) {
            const ASN1_OCTET_STRING *skid = X509_get0_subject_key_id(x);
            if (skid != NULL) {
                uint8_t *copy = s_keep(&a, malloc((size_t)ASN1_STRING_length(skid) + 1));
                if (copy != NULL) {
                    memcpy(copy, ASN1_STRING_get0_data(skid), (size_t)ASN1_STRING_length(skid));
                    cert->subject_key_identifier.data = copy;
                    cert->subject_key_identifier.len = (size_t)ASN1_STRING_length(skid);
                }
            }
            X509_free(x);
        }
    }
    rc = s_respond(&a, cert, resp, st);
out:
    protobuf_c_message_free_unpacked(&rq->base, NULL);
    return rc;
}

int dy_kd_cert_dir_lookup(void *arg, const char *name, uint8_t **ret_der, size_t *ret_len)
{
    const char *dir = arg;
    char owner[DY_KD_ID_MAX], cert[DY_KD_ID_MAX];
    if (dir == NULL || s_parse_cert_name(name, owner, cert) < 0)
        return -EINVAL;
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s/%s.pem", dir, owner, cert);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return -ENOENT;
    X509 *x = PEM_read_X509(f, NULL, NULL, NULL);
    fclose(f);
    if (x == NULL)
        return -EINVAL;
    unsigned char *der = NULL;
    int n = i2d_X509(x, &der);
    X509_free(x);
    if (n <= 0)
        return -EINVAL;
    /* Hand out memory from malloc (callers free()). */
    uint8_t *copy = malloc((size_t)n);
    if (copy == NULL) {
        OPENSSL_free(der);
        return -ENOMEM;
    }
    memcpy(copy, der, (size_t)n);
    OPENSSL_free(der);
    *ret_der = copy;
    *ret_len = (size_t)n;
    return 0;
}

/* ---- pending TTL ----------------------------------------------------------------------- */

int dy_kd_expire(dy_kd_api_t *api, int64_t ttl_us)
{
    uint64_t ids[64];
    int e = dy_kd_db_begin(api->db);
    if (e < 0)
        return e;
    int n = dy_kd_db_expired(api->db, dy_kd_db_now(api->db) - ttl_us, DY_ARRAY_LEN(ids), ids);
    dy_kd_db_rollback(api->db);
    if (n < 0)
        return n;
    int done = 0;
    for (int i = 0; i < n; i++) {
        dy_kd_comp_t comp;
        dy_kd_status_t st;
        if (s_begin_load(api, ids[i], NULL, &comp, NULL, &st) < 0)
            continue;
        dy_kd_event_t ev = {.trigger = DY_KD_EV_EXPIRE, .part = -1, .req = -1};
        if (s_apply(api, &comp, &ev, &st) == 0)
            done++;
        dy_kd_comp_free(&comp);
    }
    return done;
}

/* ---- dispatch -------------------------------------------------------------------------- */

#define S_SYS "/wfa.measurement.system.v1alpha."
#define S_PUB "/wfa.measurement.api.v2alpha."

static const dy_kd_method_t s_methods[] = {
    {S_SYS "Computations/GetComputation", s_get_computation},
    {DY_KD_METHOD_STREAM, NULL},
    {S_SYS "Computations/SetComputationResult", s_set_result},
    {S_SYS "ComputationParticipants/GetComputationParticipant", s_get_participant},
    {S_SYS "ComputationParticipants/SetParticipantRequisitionParams", s_set_params},
    {S_SYS "ComputationParticipants/ConfirmComputationParticipant", s_confirm},
    {S_SYS "ComputationParticipants/FailComputationParticipant", s_fail_participant},
    {S_SYS "Requisitions/FulfillRequisition", s_fulfill},
    {S_SYS "ComputationLogEntries/CreateComputationLogEntry", s_log_entry},
    {S_PUB "Measurements/CreateMeasurement", s_create_measurement},
    {S_PUB "Measurements/GetMeasurement", s_get_measurement},
    {S_PUB "Measurements/CancelMeasurement", s_cancel_measurement},
    {S_PUB "Requisitions/ListRequisitions", s_list_requisitions},
    {S_PUB "Requisitions/RefuseRequisition", s_refuse},
    {S_PUB "Certificates/GetCertificate", s_get_certificate},
};

const dy_kd_method_t *dy_kd_methods(size_t *ret_n)
{
    *ret_n = DY_ARRAY_LEN(s_methods);
    return s_methods;
}

int dy_kd_call(dy_kd_api_t *api, const char *method, const char *caller, const uint8_t *req,
               size_t len, dy_buf_t *resp, dy_kd_status_t *st)
{
    for (size_t i = 0; i < DY_ARRAY_LEN(s_methods); i++)
        if (strcmp(s_methods[i].method, method) == 0 && s_methods[i].handler != NULL)
            return s_methods[i].handler(api, caller, req, len, resp, st);
    return s_fail(st, DY_WIRE_STATUS_UNIMPLEMENTED, "unknown method %s", method);
}

void dy_kd_conf_defaults(dy_kd_conf_t *conf)
{
    memset(conf, 0, sizeof(*conf));
    conf->llv2_decay_rate = 12.0;
    conf->llv2_max_size = 100000;
    conf->llv2_bh_epsilon = 1.0;
    conf->llv2_bh_delta = 1.0;
    conf->llv2_pub_epsilon = 1.0;
    conf->llv2_pub_delta = 1.0;
    conf->llv2_curve_id = 415;
    conf->hmss_rf_modulus = 127;
    conf->hmss_reach_modulus = 127;
    conf->stream_batch = S_STREAM_MAX;
}
