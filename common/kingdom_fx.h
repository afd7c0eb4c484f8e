/* kingdom_fx.h - the socket-free logic of the duchy's Kingdom-facing effects (the
 * participant and submitter actors, docs/cluster.md), so it is unit-tested without a
 * Kingdom:
 *   - the status -> outcome classes of PROTOCOL.md §6.2 / §7.1 for Kingdom calls;
 *   - the signed requisition params (CRYPTO.md §2.1 ElGamal key, §8.7 HMSS key);
 *   - the checks of LLv2 stage 3, CONFIRMATION_PHASE (§5.1): nonce hashes, requisition
 *     data present here, every participant's key signature and certificate chain;
 *   - the aggregator's result envelope (CRYPTO.md §9.3: encrypt, then sign);
 *   - the sealed per-computation secrets blob (docs/cluster.md "State").
 * Errors: 0 or a negative errno; reasons in errbuf / a stable code; nothing here logs.
 */
#ifndef DY_KINGDOM_FX_H
#define DY_KINGDOM_FX_H

#include "details.h"
#include "dy.h"

#include <openssl/evp.h>

typedef struct dy_mc_trust dy_mc_trust_t; /* mc_util.h */
typedef struct dy_blobdir dy_blobdir_t;   /* blob.h */

#define DY_KF_LABEL_ELGAMAL "halo-duchy/v1/elgamal-key"
#define DY_KF_LABEL_HMSS_KEY "halo-duchy/v1/hmss-enc-key"
#define DY_KF_LABEL_RESULT "halo-duchy/v1/result"
#define DY_KF_LABEL_RESULT_SIG "halo-duchy/v1/result-sig"
#define DY_KF_API_VERSION "v2alpha"
#define DY_KF_SECRETS_SLOT "secrets"
#define DY_KF_SEED_LEN 48

/* What a caller does with a Kingdom call's status (dy_wire_status_t code). */
typedef enum {
    DY_KF_OK = 0,          /* done (also an idempotent replay) */
    DY_KF_RETRY = 1,       /* UNAVAILABLE, DEADLINE_EXCEEDED, ABORTED, CANCELLED,
                              RESOURCE_EXHAUSTED: re-read and retry (≤ 3), then TEMPFAIL */
    DY_KF_CHECK_ENDED = 2, /* FAILED_PRECONDITION: GetComputation; terminal -> ended, else
                              PERMFAIL */
    DY_KF_PERMANENT = 3,   /* INVALID_ARGUMENT, PERMISSION_DENIED, UNAUTHENTICATED, NOT_FOUND,
                              anything else */
} dy_kf_class_t;
dy_kf_class_t dy_kf_classify(int code);
/* The Kingdom state (system Computation.State) is terminal. */
bool dy_kf_state_terminal(int state);

/* Signature over `label 00 computation_name 00 pub` (computation_name = "computations/{c}")
 * by key: DER into sig.  0 or -EIO. */
int dy_kf_key_sign(EVP_PKEY *key, const char *label, const char *computation_name,
                   const uint8_t pub[33], uint8_t sig[72], size_t *ret_len);
/* 0 if valid, -EBADMSG if not. */
int dy_kf_key_verify(EVP_PKEY *key, const char *label, const char *computation_name,
                     const uint8_t pub[33], const uint8_t *sig, size_t sig_len);

/* The serialized system RequisitionParams of this duchy, appended to out:
 *   LLv2 / RO-LLv2 (protocol DY_PROTO_LLV2 / _RO_LLV2): duchy_certificate = cert_name and
 *     {el_gamal_public_key = serialized ElGamalPublicKey{415, G, pub}, signature (§2.1), OID};
 *   HMSS with pub: {tink_public_key = serialized EncryptionPublicKey{ECIES_P256, pub},
 *     signature (§8.7), OID}; HMSS with pub NULL (the aggregator): the sub-message empty.
 * 0, -EINVAL, -EIO, -ENOMEM. */
int dy_kf_requisition_params(int protocol, const char *cert_name, const char *computation_name,
                             const uint8_t *pub, EVP_PKEY *sign_key, dy_buf_t *out);

/* CONFIRMATION_PHASE checks (§5.1 stage 3) on a serialized Kingdom Computation freshly read
 * (its participants carry duchy_certificate_der, which the Kingdom fills on reads) and this
 * duchy's parsed details (the keys it stored; they must not have changed):
 *   1. every FULFILLED requisition's SHA-256(nonce, 8 B big-endian) is in the spec's
 *      nonce_hashes, no two alike, and their count equals the spec's;
 *   2. has_data(requisition id) for each requisition fulfilled by this duchy;
 *   3. every participant's ElGamal key signature (OID ECDSA-SHA256) verifies with the key of
 *      its certificate, which passes dy_mc_trust_check for "duchies/{id}"; when the Kingdom
 *      sent no DER, fetch_cert(certificate name) supplies it.
 * 0, or -EBADMSG / -EACCES / -ENOENT with a stable code ("nonce_mismatch",
 * "requisition_data_missing", "bad_key_signature", "untrusted_certificate", "key_changed")
 * in code and the reason in errbuf. */
typedef bool (*dy_kf_has_data_fn)(const char *requisition_id, void *arg);
typedef int (*dy_kf_fetch_cert_fn)(const char *cert_name, dy_buf_t *ret_der, void *arg);
int dy_kf_confirm_check(const dy_details_t *d, const uint8_t *computation, size_t len,
                        const dy_mc_trust_t *trust, dy_kf_has_data_fn has_data,
                        dy_kf_fetch_cert_fn fetch_cert, void *arg, char code[48], char *errbuf,
                        size_t errlen);

/* The aggregator's EncryptedSignedResult (CRYPTO.md §9.3), serialized and appended to out:
 * X = ECIES(mc_pub, result, info "halo-duchy/v1/result" 00 computation_name), signature by
 * sign_key over "halo-duchy/v1/result-sig" 00 computation_name 00 aggregator_id 00 X.
 * 0, -EINVAL, -EIO, -ENOMEM. */
int dy_kf_result_seal(EVP_PKEY *sign_key, const uint8_t mc_pub[33], const char *computation_name,
                      const char *aggregator_id, const uint8_t *result, size_t len,
                      dy_buf_t *out);

/* The sealed secrets blob (slot "secrets", attempt 0, of `stage`): where it lives, reading
 * it back (AES-256-GCM under the master key, AAD = the bare computation id; a serialized
 * halo.internal.v1.Secrets appended to out).  read: 0, -ENOENT, -EBADMSG. */
int dy_kf_secrets_path(const dy_blobdir_t *bd, const char *computation_id, int stage, char *out,
                       size_t cap);
int dy_kf_secrets_read_file(const char *path, const uint8_t master[32], const char *computation_id,
                            dy_buf_t *out);
/* A fresh HMSS non-aggregator Secrets (48-byte seed, ECIES key pair), serialized and sealed:
 * appended to out.  0 or -EIO. */
int dy_kf_secrets_new_hmss(const uint8_t master[32], const char *computation_id, dy_buf_t *out);

/* Loads a PEM private key (the signing key).  NULL on failure.  Caller frees. */
EVP_PKEY *dy_kf_load_key(const char *path);

#endif
