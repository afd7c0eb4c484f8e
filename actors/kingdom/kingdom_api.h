/* kingdom_api.h - the Kingdom's RPC handlers, independent of the transport.
 *
 * Each handler takes the caller's party id (from its TLS certificate: "duchies/<id>",
 * "dataProviders/<id>", "measurementConsumers/<id>" or "kingdom"), the serialized request,
 * and returns the serialized response or a status, exactly per PROTOCOL.md §8's RPC x code
 * table and §9's visibility rules.  The daemon (kingdom.c) registers one transport method per
 * entry of dy_kd_methods(); tests call dy_kd_call directly with a temporary database.
 *
 * Services (methods are "/<package>.<Service>/<Method>"):
 *   system (duchies):  Computations.{GetComputation, StreamActiveComputations,
 *                      SetComputationResult}, ComputationParticipants.{Get..., Set...Params,
 *                      Confirm..., Fail...}, Requisitions.FulfillRequisition,
 *                      ComputationLogEntries.CreateComputationLogEntry
 *   public (§3.9):     Measurements.{CreateMeasurement, GetMeasurement, CancelMeasurement} (MCs),
 *                      Requisitions.{ListRequisitions, RefuseRequisition} (EDPs),
 *                      Certificates.GetCertificate (any party)
 * The decisions where PROTOCOL.md leaves details open are listed atop kingdom_api.c.
 */
#ifndef DY_KINGDOM_API_H
#define DY_KINGDOM_API_H

#include "kingdom_db.h"
#include "wire.h"

/* A handler's outcome besides OK. */
typedef struct {
    dy_wire_status_t code;
    dy_wire_reason_t reason;
    char message[256];
} dy_kd_status_t;

/* One configured duchy. */
typedef struct {
    char id[DY_KD_ID_MAX];
    bool aggregator; /* else a non-aggregator; NAs in order = FIRST, SECOND for HMSS */
} dy_kd_duchy_t;

/* Looks a certificate up by resource name ("duchies/w1/certificates/sign"): 0 with the DER
 * in *ret_der (caller frees with free()), -ENOENT if unknown, -EINVAL if not a certificate. */
typedef int (*dy_kd_cert_fn)(void *arg, const char *name, uint8_t **ret_der, size_t *ret_len);

typedef struct {
    dy_kd_duchy_t duchies[DY_KD_PARTICIPANTS]; /* exactly one aggregator, two NAs */
    size_t nduchies;
    /* LLv2 / RO-LLv2 MpcProtocolConfig defaults. */
    double llv2_decay_rate;      /* 12 */
    int64_t llv2_max_size;       /* 100000 */
    double llv2_bh_epsilon, llv2_bh_delta;   /* blinded_histogram_noise (1, 1) */
    double llv2_pub_epsilon, llv2_pub_delta; /* publisher_noise (1, 1) */
    int32_t llv2_curve_id;       /* 415 */
    /* HMSS defaults. */
    int64_t hmss_rf_modulus;     /* 127 */
    int64_t hmss_reach_modulus;  /* 127 */
    size_t stream_batch;         /* items per poll, 1..50 */
    dy_kd_cert_fn cert_lookup;   /* NULL = every certificate unknown */
    void *cert_arg;
} dy_kd_conf_t;

/* Fills conf with the defaults above (no duchies, no certificates). */
void dy_kd_conf_defaults(dy_kd_conf_t *conf);

typedef struct {
    dy_kd_db_t *db;            /* borrowed */
    const dy_kd_conf_t *conf;  /* borrowed */
} dy_kd_api_t;

/* A unary handler: on OK returns 0 with *resp filled (caller frees); otherwise returns -1
 * with st filled and resp untouched. */
typedef int (*dy_kd_handler_fn)(dy_kd_api_t *api, const char *caller, const uint8_t *req,
                                size_t len, dy_buf_t *resp, dy_kd_status_t *st);

typedef struct {
    const char *method;       /* "/wfa.measurement.system.v1alpha.Computations/GetComputation" */
    dy_kd_handler_fn handler; /* NULL for the server-streaming StreamActiveComputations */
} dy_kd_method_t;

#define DY_KD_METHOD_STREAM "/wfa.measurement.system.v1alpha.Computations/StreamActiveComputations"

/* The method table (static); *ret_n entries. */
const dy_kd_method_t *dy_kd_methods(size_t *ret_n);

/* Dispatches a unary call by method name (UNIMPLEMENTED if unknown or the stream). */
int dy_kd_call(dy_kd_api_t *api, const char *method, const char *caller, const uint8_t *req,
               size_t len, dy_buf_t *resp, dy_kd_status_t *st);

/* ---- StreamActiveComputations (§7.2) -------------------------------------------------- */

/* The cursor of one open stream: the key of the last item sent. */
typedef struct {
    char duchy[DY_KD_ID_MAX];
    int64_t t0;   /* update_time, microseconds; -1 = from the start */
    uint64_t id0;
} dy_kd_stream_t;

/* Checks the caller (PERMISSION_DENIED if not a duchy) and the request's continuation token
 * (INVALID_ARGUMENT if malformed), and sets up *ret.  0 or -1 with st. */
int dy_kd_stream_open(dy_kd_api_t *api, const char *caller, const uint8_t *req, size_t len,
                      dy_kd_stream_t *ret, dy_kd_status_t *st);

/* One poll: up to conf->stream_batch items strictly after the cursor, ascending; each a
 * serialized StreamActiveComputationsResponse appended to items[] (caller frees each and the
 * array).  Advances the cursor past the items returned.  Returns the count or -1 with st. */
int dy_kd_stream_poll(dy_kd_api_t *api, dy_kd_stream_t *stream, dy_buf_t **ret_items,
                      dy_kd_status_t *st);

/* Token codec (exposed for tests): base64url(serialized
 * StreamActiveComputationsContinuationToken).  decode: 0 or -EINVAL. */
int dy_kd_token_encode(int64_t t_us, uint64_t id, char *out, size_t cap);
int dy_kd_token_decode(const char *token, int64_t *ret_t_us, uint64_t *ret_id);

/* Pending-TTL sweep (§4, optional): cancels non-terminal computations created more than
 * ttl_us ago.  Returns the number cancelled or a negative errno. */
int dy_kd_expire(dy_kd_api_t *api, int64_t ttl_us);

/* ---- certificates from a directory ----------------------------------------------------- */

/* A dy_kd_cert_fn over a directory laid out as deploy/mkpki writes it (arg = the directory
 * path): "{duchies|dataProviders|measurementConsumers}/{id}/certificates/{cert}" maps to
 * DIR/{id}/{cert}.pem, cert in [A-Za-z0-9_-]{1,63} (mkpki's "sign", "tls", "root"). */
int dy_kd_cert_dir_lookup(void *arg, const char *name, uint8_t **ret_der, size_t *ret_len);

#endif
