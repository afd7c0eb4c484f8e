/* mc_util.h - the pure logic of the measurement consumer (tools/mc.c, duchy-mc) and the data
 * provider simulator (tools/edp.c, duchy-edp): no sockets here, so every piece is unit-tested
 * (tests/unit/test_mctools.c) without a federation.
 *
 *   - a small JSON reader for the federation directory (docs/federation-dir.md) and the tools'
 *     state files, and a JSON string writer;
 *   - the federation directory: federation.json, the PKI paths, the parties' keys;
 *   - trust: signing certificates checked against trusted_ca and the party table;
 *   - the measurement spec (PROTOCOL.md §3.1), its signature, nonce hashes, the encrypted
 *     requisition spec and the requisition fingerprint (§3.3);
 *   - the duchies' signed keys (CRYPTO.md §2.1, §8.7), the EDP's signed and encrypted HMSS
 *     seed (§8.7);
 *   - the result envelope (CRYPTO.md §9.3): sealing (as an aggregator does; for tests) and
 *     opening with every check, in order;
 *   - the ground truth of a seeded campaign (and the LLv2 plaintext estimate).
 *
 * Domain strings defined here [ours, documented in docs/federation-dir.md]:
 *   "halo-duchy/v1/measurement-spec"   MC signature over 00 || serialized MeasurementSpec
 *   "halo-duchy/v1/requisition-spec"   ECIES info, 00 || "dataProviders/{dp}"
 * Errors: 0 or a negative errno (common/ convention); nothing here logs.  Messages in errbuf
 * never hold key material.
 */
#ifndef DY_MC_UTIL_H
#define DY_MC_UTIL_H

#include "dy.h"
#include "tls.h"

#include <stdio.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

/* ---- JSON ----------------------------------------------------------------------------- */

typedef enum {
    DY_JSON_NULL = 0,
    DY_JSON_BOOL,
    DY_JSON_NUMBER,
    DY_JSON_STRING,
    DY_JSON_ARRAY,
    DY_JSON_OBJECT,
} dy_json_type_t;

/* A parsed JSON value.  Objects keep their members in document order; a duplicate key is a
 * parse error. */
typedef struct dy_json dy_json_t;
struct dy_json {
    dy_json_type_t type;
    bool boolean;       /* BOOL */
    double number;      /* NUMBER */
    char *text;         /* owned: STRING contents (UTF-8, NUL-terminated) or NUMBER's text */
    size_t n;           /* ARRAY / OBJECT: members */
    dy_json_t *items;   /* owned: n values */
    char **keys;        /* owned: OBJECT only, n keys */
};

/* Parses one JSON document (RFC 8259; depth <= 32).  Returns the value (caller destroys) or
 * NULL with "offset N: reason" in errbuf. */
dy_json_t *dy_json_parse(const char *text, size_t len, char *errbuf, size_t errlen);
/* Reads and parses a file (at most 16 MiB).  NULL with "path: reason" in errbuf. */
dy_json_t *dy_json_load(const char *path, char *errbuf, size_t errlen);
/* Frees the value and nulls *json_p.  NULL-safe. */
void dy_json_destroy(dy_json_t **json_p);
/* The member `key` of an object, or NULL (also when obj is not an object). */
const dy_json_t *dy_json_get(const dy_json_t *obj, const char *key);
/* The string of a STRING value, or NULL. */
const char *dy_json_str(const dy_json_t *v);
/* An exact unsigned integer (a NUMBER written without fraction or exponent, < 2^64):
 * 0 or -EINVAL. */
int dy_json_u64(const dy_json_t *v, uint64_t *ret);
/* A NUMBER as double: 0 or -EINVAL. */
int dy_json_double(const dy_json_t *v, double *ret);
/* Writes s as a JSON string literal (quotes included) to f. */
void dy_json_put_str(FILE *f, const char *s);
/* Writes a double as JSON: finite values with 17 significant digits, else null. */
void dy_json_put_double(FILE *f, double v);

/* ---- the federation directory ------------------------------------------------------------ */

#define DY_FED_DUCHIES 3
#define DY_FED_MAX_EDPS 64

typedef struct {
    char *id;          /* owned: "worker1" (party "duchies/worker1") */
    char *role;        /* owned: "aggregator" | "non_aggregator" */
    char *endpoint;    /* owned: "127.0.0.1:PORT", the duchy's mTLS gateway */
    char *certificate; /* owned: the signing certificate's resource name */
} dy_fed_duchy_t;

typedef struct {
    char *id;          /* owned: "edp1" (party "dataProviders/edp1") / "mc" */
    char *cert;        /* owned: TLS client certificate (PEM path) */
    char *key;         /* owned: its key */
    char *certificate; /* owned: the signing certificate's resource name */
} dy_fed_party_t;

typedef struct {
    char *dir;                    /* owned: the federation directory (absolute if given so) */
    char *kingdom_host;           /* owned */
    int kingdom_port;
    char *tls_name;               /* owned: name the servers' certificates carry ("localhost") */
    dy_fed_duchy_t duchies[DY_FED_DUCHIES];
    size_t nduchies;
    dy_fed_party_t edps[DY_FED_MAX_EDPS];
    size_t nedps;
    dy_fed_party_t mc;
    char *trusted_ca;             /* owned: PEM bundle of every root */
    char *pki;                    /* owned: the deploy/mkpki directory */
    char *parties;                /* owned: the party table */
    uint64_t population;          /* campaign */
    uint64_t reach;
    uint64_t seed;
    int max_events;
    double decay_rate;            /* llv2 */
    int64_t sketch_size;
    uint64_t hmss_rf_modulus;     /* hmss (fallbacks when a requisition does not say) */
    uint64_t hmss_reach_modulus;
} dy_fed_t;

/* Loads DIR/federation.json into *out (zeroed first; free with dy_fed_free).  Relative paths
 * in the file are taken relative to DIR.  0, or -EINVAL / -ENOENT with the reason in errbuf. */
int dy_fed_load(const char *dir, dy_fed_t *out, char *errbuf, size_t errlen);
void dy_fed_free(dy_fed_t *fed);
/* The index of the duchy with role "aggregator", or -1. */
int dy_fed_aggregator(const dy_fed_t *fed);
/* The index of EDP id, or -1. */
int dy_fed_edp_index(const dy_fed_t *fed, const char *id);
/* DIR/pki/<name>/<file> into out: 0 or -ENAMETOOLONG. */
int dy_fed_pki_path(const dy_fed_t *fed, const char *name, const char *file, char *out,
                    size_t cap);
/* The resource name of a party's signing certificate ("measurementConsumers/mc"): override
 * when given (federation.json "certificate"), else "<party>/certificates/sign", the name the
 * Kingdom's certificate directory serves from DIR/<id>/sign.pem.  0 or -ENOSPC. */
int dy_fed_cert_name(const char *party, const char *override, char *out, size_t cap);
/* The local PEM of a certificate resource name "{kind}/{id}/certificates/{cert}" (kind
 * duchies, dataProviders or measurementConsumers; cert [A-Za-z0-9_-]{1,63}):
 * pki/{id}/{cert}.pem.  0, -EINVAL (not such a name) or -ENAMETOOLONG. */
int dy_fed_cert_path(const dy_fed_t *fed, const char *name, char *out, size_t cap);

/* Splits "host:port" (port 1-65535): 0 or -EINVAL.  host (cap bytes) gets the host. */
int dy_fed_split_endpoint(const char *endpoint, char *host, size_t cap, int *ret_port);

/* ---- keys and trust ------------------------------------------------------------------- */

/* The 32-byte private scalar of an EC P-256 PEM key (enc.key).  0, -ENOENT, -EINVAL. */
int dy_mc_load_enc_priv(const char *path, uint8_t priv[32]);
/* The 33-byte public key of enc.pub (66 hex digits, optional whitespace).  0, -ENOENT, -EINVAL
 * (also for a point that is not on the curve). */
int dy_mc_load_enc_pub(const char *path, uint8_t pub[33]);
/* A P-256 private key from PEM (sign.key); NULL on failure.  Caller frees (EVP_PKEY_free). */
EVP_PKEY *dy_mc_load_sign_key(const char *path);
/* A certificate from a PEM file / DER bytes; NULL on failure.  Caller frees (X509_free). */
X509 *dy_mc_load_cert(const char *path);
X509 *dy_mc_cert_from_der(const uint8_t *der, size_t len);
/* DER encoding of cert appended to out.  0 or -EINVAL. */
int dy_mc_cert_der(X509 *cert, dy_buf_t *out);

/* The trust anchors: trusted_ca's roots and the party table. */
typedef struct dy_mc_trust dy_mc_trust_t;
/* NULL with the reason in errbuf.  Caller destroys. */
dy_mc_trust_t *dy_mc_trust_new(const char *trusted_ca, const char *parties, char *errbuf,
                               size_t errlen);
void dy_mc_trust_destroy(dy_mc_trust_t **self_p);
/* Checks that cert is a signing certificate of expected_party ("duchies/agg",
 * "measurementConsumers/mc", ...): it verifies against the trusted roots (now, chain of two:
 * issued directly by a root), has keyUsage digitalSignature, an EC P-256 key, and its AKI is
 * the SKID of a root that the party table maps to expected_party.  0 or -EACCES with the
 * reason in errbuf. */
int dy_mc_trust_check(const dy_mc_trust_t *trust, X509 *cert, const char *expected_party,
                      char *errbuf, size_t errlen);

/* ---- measurement spec and requisition spec ------------------------------------------- */

typedef enum {
    DY_MC_LLV2 = 0,   /* "llv2": liquid_legions_v2 */
    DY_MC_ROLLV2,     /* "llv2-reach-only": reach_only_liquid_legions_v2 */
    DY_MC_HMSS,       /* "hmss": honest_majority_share_shuffle */
    DY_MC_HMSS_RO,    /* "hmss-reach-only": the HMSS config with a REACH measurement */
    _DY_MC_PROTOCOL_MAX,
} dy_mc_protocol_t;

typedef enum {
    DY_MC_NOISE_NONE = 0,
    DY_MC_NOISE_GEOMETRIC,
    DY_MC_NOISE_DISCRETE_GAUSSIAN,
    _DY_MC_NOISE_MAX,
} dy_mc_noise_t;

const char *dy_mc_protocol_name(dy_mc_protocol_t p); /* "llv2", ... or "?" */
int dy_mc_protocol_parse(const char *s, dy_mc_protocol_t *ret);  /* 0 or -EINVAL */
const char *dy_mc_noise_name(dy_mc_noise_t n);       /* "none", "geometric", ... */
int dy_mc_noise_parse(const char *s, dy_mc_noise_t *ret);
bool dy_mc_protocol_is_llv2(dy_mc_protocol_t p);     /* LLv2 or RO-LLv2 */

/* What the MC asks for. */
typedef struct {
    bool reach_only;         /* a REACH measurement (else REACH_AND_FREQUENCY) */
    int max_frequency;       /* K >= 2 for reach and frequency; ignored for reach */
    double epsilon, delta;   /* the DP parameters (reach and frequency alike) */
    float vid_start, vid_width;
    uint8_t mc_pub[33];      /* the MC's result key (ECIES, compressed) */
    const uint64_t *nonces;  /* borrowed: one per EDP, nonzero */
    size_t nnonces;
} dy_mc_spec_t;

/* SHA-256 of the nonce's 8 big-endian bytes (PROTOCOL.md §3.3).  0 or -EIO. */
int dy_mc_nonce_hash(uint64_t nonce, uint8_t out[32]);
/* The serialized MeasurementSpec (§3.1), replacing out's contents.  0, -EINVAL, -ENOMEM. */
int dy_mc_spec_build(const dy_mc_spec_t *spec, dy_buf_t *out);
/* The MC's signature over "halo-duchy/v1/measurement-spec" 00 || spec.  0 or -EIO. */
int dy_mc_spec_sign(EVP_PKEY *key, const uint8_t *spec, size_t len, uint8_t sig[72],
                    size_t *ret_len);
/* 0 if sig is valid (strict DER), else -EBADMSG. */
int dy_mc_spec_verify(EVP_PKEY *key, const uint8_t *spec, size_t len, const uint8_t *sig,
                      size_t sig_len);
/* What a MeasurementSpec says, for data providers and the MC.  0 or -EINVAL (does not
 * parse, no ECIES_P256 result key, neither reach nor reach_and_frequency, K < 1). */
typedef struct {
    bool reach_only;
    int max_frequency;       /* 1 for reach */
    double epsilon, delta;   /* reach privacy parameters */
    float vid_start, vid_width;
    uint8_t mc_pub[33];
    size_t nnonce_hashes;
    uint8_t (*nonce_hashes)[32]; /* owned: free() */
} dy_mc_spec_info_t;
int dy_mc_spec_parse(const uint8_t *spec, size_t len, dy_mc_spec_info_t *out);
void dy_mc_spec_info_free(dy_mc_spec_info_t *info);

/* The encrypted requisition spec [ours]: the plaintext is 41 bytes,
 * 01 || nonce (8 bytes big-endian) || SHA-256(serialized MeasurementSpec), ECIES-encrypted to
 * the EDP's enc.pub under info "halo-duchy/v1/requisition-spec" 00 "dataProviders/{dp}".
 * seal replaces out's contents.  0, -EINVAL (bad key, nonce 0) or -EIO. */
#define DY_MC_REQSPEC_TYPE_URL "halo-duchy/v1/requisition-spec"
int dy_mc_reqspec_seal(const uint8_t edp_pub[33], const char *edp_party, uint64_t nonce,
                       const uint8_t spec_hash[32], dy_buf_t *out);
/* Decrypts and parses: 0, or -EBADMSG (wrong key, wrong EDP, tampered, bad format). */
int dy_mc_reqspec_open(const uint8_t edp_priv[32], const char *edp_party, const uint8_t *ct,
                       size_t len, uint64_t *ret_nonce, uint8_t ret_spec_hash[32]);
/* requisition_spec_hash = SHA-256(ciphertext of the encrypted requisition spec), and the
 * fingerprint SHA-256(serialized MeasurementSpec || requisition_spec_hash).  0 or -EIO. */
int dy_mc_sha256(const void *data, size_t len, uint8_t out[32]);
int dy_mc_fingerprint(const uint8_t *spec, size_t spec_len, const uint8_t reqspec_hash[32],
                      uint8_t out[32]);

/* ---- duchy keys and HMSS seeds ---------------------------------------------------------- */

/* Signature over "halo-duchy/v1/elgamal-key" 00 computation_id 00 Y (CRYPTO.md §2.1) or
 * "halo-duchy/v1/hmss-enc-key" 00 computation_id 00 Q (§8.7), key 33 bytes compressed.
 * sign: 0 or -EIO; verify: 0 or -EBADMSG. */
#define DY_MC_LABEL_ELGAMAL "halo-duchy/v1/elgamal-key"
#define DY_MC_LABEL_HMSS_KEY "halo-duchy/v1/hmss-enc-key"
int dy_mc_key_sign(EVP_PKEY *key, const char *label, const char *computation_id,
                   const uint8_t pub[33], uint8_t sig[72], size_t *ret_len);
int dy_mc_key_verify(EVP_PKEY *key, const char *label, const char *computation_id,
                     const uint8_t pub[33], const uint8_t *sig, size_t sig_len);

/* The EDP's seed for the peer shuffler (§8.7): ECIES(peer_pub, σ || DER signature) under
 * info "halo-duchy/v1/hmss-seed" 00 computation_id 00 requisition_id, the signature by
 * edp_key over "halo-duchy/v1/hmss-seed" 00 computation_id 00 requisition_id 00 σ.
 * requisition_id is the system name computations/{c}/requisitions/{r}.  Replaces out.
 * 0, -EINVAL or -EIO. */
#define DY_MC_SEED_LEN 48
int dy_mc_seed_seal(EVP_PKEY *edp_key, const uint8_t peer_pub[33], const char *computation_id,
                    const char *requisition_id, const uint8_t seed[DY_MC_SEED_LEN],
                    dy_buf_t *out);
/* What the receiving shuffler does: decrypt, then verify with the EDP's public key.
 * 0, -EBADMSG (does not decrypt under peer_priv and these ids, or is malformed) or
 * -EKEYREJECTED (decrypts, but the signature does not verify with edp_pub). */
int dy_mc_seed_open(const uint8_t peer_priv[32], EVP_PKEY *edp_pub, const char *computation_id,
                    const char *requisition_id, const uint8_t *ct, size_t len,
                    uint8_t ret_seed[DY_MC_SEED_LEN]);

/* ---- result envelope ------------------------------------------------------------------- */

#define DY_MC_FREQ_MAX 64 /* largest frequency key accepted */

/* A decrypted, checked Measurement.Result. */
typedef struct {
    int64_t reach;
    int nfreq;                       /* 0 (reach only) or K: keys 1..K all present */
    double freq[DY_MC_FREQ_MAX];     /* freq[k-1] for key k */
} dy_mc_result_t;

/* The step that refused a result (dy_mc_result_open), in CRYPTO.md §9.3's order. */
typedef enum {
    DY_MC_STEP_OK = 0,
    DY_MC_STEP_CERTIFICATE = 1, /* not the aggregator's, or does not chain */
    DY_MC_STEP_SIGNATURE = 2,   /* bad signature, OID or envelope */
    DY_MC_STEP_DECRYPTION = 3,  /* ECIES under this computation's info failed */
    DY_MC_STEP_RESULT = 4,      /* plaintext does not parse or is out of range */
} dy_mc_step_t;

/* The serialized Measurement.Result of reach and freq[0..nfreq) (nfreq 0: reach only),
 * replacing out.  0, -EINVAL or -ENOMEM. */
int dy_mc_result_pack(int64_t reach, const double *freq, int nfreq, dy_buf_t *out);
/* As the aggregator's submitter: X = ECIES(mc_pub, result, "halo-duchy/v1/result" 00
 * computation_id), sig by agg_key over "halo-duchy/v1/result-sig" 00 computation_id 00
 * aggregator_id 00 X, out = serialized EncryptedSignedResult.  For tests and tools. */
int dy_mc_result_seal(EVP_PKEY *agg_key, const uint8_t mc_pub[33], const char *computation_id,
                      const char *aggregator_id, const uint8_t *result, size_t len,
                      dy_buf_t *out);
/* The MC's checks, in order (CRYPTO.md §9.3): (1) cert_name names a certificate of
 * duchies/{aggregator_id} and cert passes dy_mc_trust_check for that party; (2) the
 * EncryptedSignedResult parses, its OID is ECDSA-SHA256 and the signature verifies (strict
 * DER) with cert's key; (3) the ciphertext decrypts with mc_priv under this computation's
 * info; (4) the Result parses, reach >= 0, and if frequencies are present they are keys
 * 1..K (K <= DY_MC_FREQ_MAX), each in [0, 1], summing to 1 ± 1e-9; a reach and frequency
 * measurement (expect_frequency) must carry them, a reach one must not.
 * Returns 0 with *out filled, or a negative errno with *ret_step naming the refusing step
 * and the reason in errbuf. */
int dy_mc_result_open(const dy_mc_trust_t *trust, const char *cert_name, X509 *cert,
                      const char *aggregator_id, const char *computation_id,
                      const uint8_t mc_priv[32], const uint8_t *encrypted_result, size_t len,
                      bool expect_frequency, dy_mc_result_t *out, dy_mc_step_t *ret_step,
                      char *errbuf, size_t errlen);

/* ---- ground truth ------------------------------------------------------------------------ */

/* The campaign of a federation: dy_campaign_generate with the federation's campaign
 * parameters and edps = fed->nedps (EDP i of edps[] uses campaign EDP i). */
typedef struct {
    int64_t true_reach;
    double true_freq[DY_MC_FREQ_MAX]; /* [0, K) */
    int64_t plaintext_estimate;       /* LLv2 only, else -1 */
    /* LLv2 reach and frequency: the estimator's frequency distribution of the plaintext
     * union sketch [0, K) (what a noise-free run must equal); else nfreq 0 */
    double plaintext_freq[DY_MC_FREQ_MAX];
    int plaintext_nfreq;
} dy_mc_truth_t;
/* Ground truth over the EDPs edp_index[0..n) (indices into fed->edps), with K buckets
 * (1 for reach), and for llv2 the estimator on the plaintext union of their sketches (the
 * federation's sketch parameters, vid width).  0, -EINVAL or -ENOMEM. */
int dy_mc_truth(const dy_fed_t *fed, const int *edp_index, size_t n, int K, bool llv2,
                float vid_width, dy_mc_truth_t *out);

#endif
