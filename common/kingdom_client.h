/* kingdom_client.h - one lazily (re)connected mutual-TLS client to the Kingdom, built from
 * the duchy config (tls.*, kingdom.*), for the actors that call it (herald, participant,
 * submitter).  A transport failure drops the connection; the next call reconnects.
 * Blocking, with the config's call timeout.  Nothing here logs.
 */
#ifndef DY_KINGDOM_CLIENT_H
#define DY_KINGDOM_CLIENT_H

#include "duchy_config.h"
#include "rpc.h"

typedef struct dy_kc dy_kc_t;

/* NULL with the reason in errbuf (bad TLS files, endpoint).  Caller destroys. */
dy_kc_t *dy_kc_new(const dy_duchy_config_t *cfg, char *errbuf, size_t errlen);
void dy_kc_destroy(dy_kc_t **self_p);

/* The connected client (connecting first if needed), or NULL with st filled UNAVAILABLE. */
dy_rpc_client_t *dy_kc_client(dy_kc_t *self, dy_rpc_status_t *st);
/* Drops the connection (after a transport failure or a stream's end). */
void dy_kc_drop(dy_kc_t *self);

/* Unary call with the config's timeout; drops the connection on UNAVAILABLE,
 * DEADLINE_EXCEEDED or CANCELLED.  0 on OK (*ret_resp: caller frees), else -1 with st. */
int dy_kc_unary(dy_kc_t *self, const char *method, const ProtobufCMessage *req,
                const ProtobufCMessageDescriptor *resp_desc, ProtobufCMessage **ret_resp,
                dy_rpc_status_t *st);

#define DY_KC_SYS "/wfa.measurement.system.v1alpha."
#define DY_KC_GET_COMPUTATION DY_KC_SYS "Computations/GetComputation"
#define DY_KC_STREAM DY_KC_SYS "Computations/StreamActiveComputations"
#define DY_KC_SET_RESULT DY_KC_SYS "Computations/SetComputationResult"
#define DY_KC_GET_PARTICIPANT DY_KC_SYS "ComputationParticipants/GetComputationParticipant"
#define DY_KC_SET_PARAMS DY_KC_SYS "ComputationParticipants/SetParticipantRequisitionParams"
#define DY_KC_CONFIRM DY_KC_SYS "ComputationParticipants/ConfirmComputationParticipant"
#define DY_KC_FAIL DY_KC_SYS "ComputationParticipants/FailComputationParticipant"
#define DY_KC_FULFILL DY_KC_SYS "Requisitions/FulfillRequisition"
#define DY_KC_LOG DY_KC_SYS "ComputationLogEntries/CreateComputationLogEntry"
#define DY_KC_GET_CERT "/wfa.measurement.api.v2alpha.Certificates/GetCertificate"

#endif
