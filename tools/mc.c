/* mc.c - duchy-mc, the measurement consumer (INTERFACES.md "A running federation"; PROTOCOL.md
 * §3.9, §5.5 steps 1 and 15; CRYPTO.md §9.3).  Run through the tools/mc wrapper.
 *
 *   create --dir DIR --protocol P [--type T] [--noise N] [--epsilon E --delta D]
 *          [--max-frequency K] [--edps N] [--request-id ID] [--json]
 *          [--testing-noise-mechanism M]
 *       builds and signs the MeasurementSpec, encrypts one requisition spec per EDP, calls
 *       Measurements.CreateMeasurement at the Kingdom and records DIR/mc/<id>.json.
 *       --testing-noise-mechanism M (TESTING ONLY, fault injection): puts the raw public
 *       ProtocolConfig.NoiseMechanism number M (0..6) in the request instead of --noise's.
 *       The test Kingdom maps every public value with a system one and passes it on in
 *       the computation's MpcProtocolConfig (kingdom_api.c, D5): 5 CONTINUOUS_GAUSSIAN ->
 *       system 3, 6 DETERMINISTIC_TRUNCATED_LAPLACE -> system 5, which no duchy supports
 *       (PROTOCOL.md §3.1), so the duchies see a protocol config they do not know and
 *       must fail the computation (4 CONTINUOUS_LAPLACE has no system value: the Kingdom
 *       refuses it).  Recorded as "noise_mechanism_override" in DIR/mc/<id>.json.
 *   wait --dir DIR MEASUREMENT [--timeout S] [--poll-ms N] [--json]
 *       polls GetMeasurement until the state is terminal; on SUCCEEDED checks the result (the
 *       aggregator's certificate, its signature, the decryption, the ranges) and prints it
 *       beside the ground truth regenerated from the federation's campaign.
 *   show --dir DIR MEASUREMENT [--json]      one GetMeasurement, summarised.
 *   cancel --dir DIR MEASUREMENT [--json]    CancelMeasurement.
 *
 * Peers: the Kingdom only (mutual TLS with the MC's client certificate, the server checked as
 * "kingdom").  Keys: the MC's signing key (pki/<mc>/sign.key) for the spec, its ECIES key
 * (pki/<mc>/enc.key, enc.pub) for results; the EDPs' enc.pub for their requisition specs.
 * The federation directory is described in docs/federation-dir.md.
 *
 * Exit codes: 0 success; 1 failure (RPC refused, verification failed, measurement not
 * SUCCEEDED, timeout); 64 usage error (one line on stderr).  With --json the last stdout line
 * is one JSON object; logs go to stderr.
 */
#include "log.h"
#include "mc_util.h"
#include "rpc.h"
#include "tls.h"

#include "crypto/ecies.h"
#include "crypto/ec.h"
#include "crypto/sig.h"

#include "public.pb-c.h"

#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define V2(x) Wfa__Measurement__Api__V2alpha__##x
#define v2(x) wfa__measurement__api__v2alpha__##x
#define V2E(x) WFA__MEASUREMENT__API__V2ALPHA__##x

#define S_PROG "duchy-mc"
#define S_SVC "/wfa.measurement.api.v2alpha."
#define S_TYPE_PREFIX "type.googleapis.com/wfa.measurement.api.v2alpha."
#define S_CALL_MS 30000

static const char s_usage[] =
    "usage: tools/mc <command> [options]\n"
    "\n"
    "The measurement consumer of a running federation (docs/federation-dir.md).\n"
    "\n"
    "  create --dir DIR --protocol llv2|llv2-reach-only|hmss|hmss-reach-only\n"
    "         [--type reach|reach-and-frequency] [--noise none|geometric|discrete-gaussian]\n"
    "         [--epsilon E (1)] [--delta D (1e-5)] [--max-frequency K (10)]\n"
    "         [--edps N (all)] [--request-id ID] [--json]\n"
    "         [--testing-noise-mechanism M]\n"
    "      creates a measurement over the first N EDPs; prints {\"measurement\": name}.\n"
    "      TESTING ONLY: --testing-noise-mechanism sends the raw public noise mechanism\n"
    "      number M (0..6) instead of --noise's (5, 6: unsupported by the duchies)\n"
    "  wait --dir DIR MEASUREMENT [--timeout S (900)] [--poll-ms N (500)] [--json]\n"
    "      waits for a terminal state, verifies and decrypts the result, prints it beside\n"
    "      the ground truth (the demo's JSON object)\n"
    "  show --dir DIR MEASUREMENT [--json]     the measurement's state\n"
    "  cancel --dir DIR MEASUREMENT [--json]   cancels it; prints {\"measurement\", \"state\"}\n"
    "\n"
    "MEASUREMENT is the name create printed or its last segment.  -v: debug logs.\n"
    "Exit: 0 ok, 1 failed, 64 usage.\n";

static void DY_PRINTF(1, 2) __attribute__((noreturn)) s_usage_die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs(S_PROG ": ", stderr);
    vfprintf(stderr, fmt, ap);
    fputs(" (try --help)\n", stderr);
    va_end(ap);
    exit(DY_EXIT_USAGE);
}

/* Set once a command printed its JSON object; main prints {"error"} otherwise. */
static bool s_json_done;

/* ---- shared plumbing ------------------------------------------------------------------- */

typedef struct {
    const char *dir;           /* borrowed from argv */
    bool json;
    dy_fed_t fed;              /* owned */
    SSL_CTX *ctx;              /* owned */
    dy_rpc_client_t *kingdom;  /* owned */
    char mc_party[DY_PARTY_ID_MAX];
} s_mc_t;

static void s_mc_free(s_mc_t *m)
{
    dy_rpc_client_destroy(&m->kingdom);
    SSL_CTX_free(m->ctx);
    dy_fed_free(&m->fed);
}

static int s_load(s_mc_t *m)
{
    char err[512] = "";
    if (dy_fed_load(m->dir, &m->fed, err, sizeof(err)) < 0) {
        log_warnx("%s", err);
        return -1;
    }
    snprintf(m->mc_party, sizeof(m->mc_party), "measurementConsumers/%s", m->fed.mc.id);
    return 0;
}

/* Connects to the Kingdom with the MC's TLS credentials. */
static int s_connect(s_mc_t *m)
{
    char err[512] = "";
    dy_parties_t *parties = dy_parties_load(m->fed.parties, err, sizeof(err));
    if (parties == NULL) {
        log_warnx("party table: %s", err);
        return -1;
    }
    dy_tls_conf_t tc = {.cert_path = m->fed.mc.cert, .key_path = m->fed.mc.key,
                        .trusted_ca_path = m->fed.trusted_ca, .parties = parties,
                        .expected_name = m->fed.tls_name};
    m->ctx = dy_tls_client_ctx(&tc, err, sizeof(err));
    dy_parties_destroy(&parties);
    if (m->ctx == NULL) {
        log_warnx("TLS client context: %s", err);
        return -1;
    }
    dy_rpc_client_conf_t cc = {.ctx = m->ctx, .host = m->fed.kingdom_host,
                               .port = m->fed.kingdom_port};
    m->kingdom = dy_rpc_client_new(&cc, err, sizeof(err));
    if (m->kingdom == NULL) {
        log_warnx("Kingdom at %s:%d: %s", m->fed.kingdom_host, m->fed.kingdom_port, err);
        return -1;
    }
    const char *peer = dy_rpc_client_peer(m->kingdom);
    if (peer == NULL || strcmp(peer, "kingdom") != 0) {
        log_warnx("the server at %s:%d is %s, not the Kingdom", m->fed.kingdom_host,
                  m->fed.kingdom_port, peer ? peer : "unidentified");
        return -1;
    }
    return 0;
}

/* One unary call to the Kingdom; logs a refusal.  0 or -1. */
static int s_call(s_mc_t *m, const char *method, const ProtobufCMessage *req,
                  const ProtobufCMessageDescriptor *desc, ProtobufCMessage **ret,
                  dy_rpc_status_t *ret_st)
{
    dy_rpc_status_t st;
    memset(&st, 0, sizeof(st));
    int rc = dy_rpc_unary(m->kingdom, method, req, desc, ret, S_CALL_MS, &st);
    if (ret_st != NULL)
        *ret_st = st;
    if (rc < 0) {
        log_warnx("%s: %s: %s", method + strlen(S_SVC), dy_wire_status_name(st.code),
                  st.message);
        if (st.code == DY_WIRE_STATUS_UNAVAILABLE || st.code == DY_WIRE_STATUS_CANCELLED
            || st.code == DY_WIRE_STATUS_DEADLINE_EXCEEDED)
            dy_rpc_client_destroy(&m->kingdom); /* the connection is unusable; reconnect */
        return -1;
    }
    return 0;
}

/* The measurement id (last segment) and full name of arg (a name or a bare id). */
static int s_measurement_name(const s_mc_t *m, const char *arg, char *id, size_t idcap,
                              char *name, size_t namecap)
{
    const char *slash = strrchr(arg, '/');
    const char *seg = slash ? slash + 1 : arg;
    size_t n = strlen(seg);
    if (n == 0 || n >= idcap || n > 63 || strspn(seg, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnop"
                                                      "qrstuvwxyz0123456789_-") != n)
        return -1;
    memcpy(id, seg, n + 1);
    int w = snprintf(name, namecap, "%s/measurements/%s", m->mc_party, id);
    if (w < 0 || (size_t)w >= namecap)
        return -1;
    if (slash != NULL && strcmp(arg, name) != 0)
        return -1; /* another MC's measurement, or not a measurement name */
    return 0;
}

static const char *s_state_name(int state)
{
    static const char *const names[] = {"STATE_UNSPECIFIED", "AWAITING_REQUISITION_FULFILLMENT",
                                        "COMPUTING", "SUCCEEDED", "FAILED", "CANCELLED"};
    return state >= 0 && state < (int)DY_ARRAY_LEN(names) ? names[state] : "UNKNOWN";
}

static bool s_state_terminal(int state)
{
    return state == V2E(MEASUREMENT__STATE__SUCCEEDED) || state == V2E(MEASUREMENT__STATE__FAILED)
           || state == V2E(MEASUREMENT__STATE__CANCELLED);
}

static double s_wall(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Parses a number option strictly. */
static double s_opt_double(const char *opt, const char *s, double min, double max)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno != 0 || end == s || *end != '\0' || !isfinite(v) || v < min || v > max)
        s_usage_die("%s: \"%s\" is not a number in [%g, %g]", opt, s, min, max);
    return v;
}

static long s_opt_long(const char *opt, const char *s, long min, long max)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < min || v > max)
        s_usage_die("%s: \"%s\" is not an integer in [%ld, %ld]", opt, s, min, max);
    return v;
}

/* ---- local state: DIR/mc/<id>.json ------------------------------------------------------ */

typedef struct {
    char name[256];
    char protocol[32];
    bool reach_only;
    int max_frequency;
    int nedps;
    int edp_index[DY_FED_MAX_EDPS];
    float vid_width;
    double created;
} s_state_t;

static int s_state_path(const s_mc_t *m, const char *id, char *out, size_t cap)
{
    int n = snprintf(out, cap, "%s/mc/%s.json", m->dir, id);
    return n < 0 || (size_t)n >= cap ? -1 : 0;
}

static int s_state_load(const s_mc_t *m, const char *id, s_state_t *st)
{
    char path[PATH_MAX], err[512] = "";
    memset(st, 0, sizeof(*st));
    if (s_state_path(m, id, path, sizeof(path)) < 0)
        return -1;
    dy_json_t *j = dy_json_load(path, err, sizeof(err));
    if (j == NULL) {
        log_warnx("no local record of the measurement: %s", err);
        return -1;
    }
    int rc = -1;
    const char *name = dy_json_str(dy_json_get(j, "measurement"));
    const char *proto = dy_json_str(dy_json_get(j, "protocol"));
    const char *type = dy_json_str(dy_json_get(j, "type"));
    const dy_json_t *idx = dy_json_get(j, "edp_index");
    uint64_t k = 0;
    double w = 1.0, created = 0;
    dy_mc_protocol_t p;
    if (name == NULL || proto == NULL || type == NULL || dy_mc_protocol_parse(proto, &p) < 0
        || dy_json_u64(dy_json_get(j, "max_frequency"), &k) < 0 || k < 1 || k > DY_MC_FREQ_MAX
        || dy_json_double(dy_json_get(j, "vid_width"), &w) < 0
        || dy_json_double(dy_json_get(j, "created_unix"), &created) < 0 || idx == NULL
        || idx->type != DY_JSON_ARRAY || idx->n < 1 || idx->n > DY_FED_MAX_EDPS) {
        log_warnx("%s: malformed", path);
        goto out;
    }
    snprintf(st->name, sizeof(st->name), "%s", name);
    snprintf(st->protocol, sizeof(st->protocol), "%s", proto);
    st->reach_only = strcmp(type, "reach") == 0;
    st->max_frequency = st->reach_only ? 1 : (int)k;
    st->vid_width = (float)w;
    st->created = created;
    st->nedps = (int)idx->n;
    for (size_t i = 0; i < idx->n; i++) {
        uint64_t x;
        if (dy_json_u64(&idx->items[i], &x) < 0 || x >= m->fed.nedps) {
            log_warnx("%s: edp_index[%zu] is not an EDP of this federation", path, i);
            goto out;
        }
        st->edp_index[i] = (int)x;
    }
    rc = 0;
out:
    dy_json_destroy(&j);
    return rc;
}

/* ---- create ------------------------------------------------------------------------------ */

typedef struct {
    dy_mc_protocol_t protocol;
    bool have_protocol;
    int type;                  /* -1 default, 0 reach, 1 reach-and-frequency */
    dy_mc_noise_t noise;
    double epsilon, delta;
    int max_frequency;
    int edps;                  /* 0 = all */
    const char *request_id;
    int noise_override;        /* TESTING ONLY: raw public noise mechanism, -1 = none */
} s_create_opts_t;

static int s_public_noise(const s_create_opts_t *o)
{
    if (o->noise_override >= 0)
        return o->noise_override;
    switch (o->noise) {
    case DY_MC_NOISE_GEOMETRIC: return V2E(PROTOCOL_CONFIG__NOISE_MECHANISM__GEOMETRIC);
    case DY_MC_NOISE_DISCRETE_GAUSSIAN:
        return V2E(PROTOCOL_CONFIG__NOISE_MECHANISM__DISCRETE_GAUSSIAN);
    default: return V2E(PROTOCOL_CONFIG__NOISE_MECHANISM__NONE);
    }
}

/* Writes the state file atomically (temporary file, rename). */
static int s_state_write(const s_mc_t *m, const char *id, const char *name, const char *request_id,
                         const s_create_opts_t *o, bool reach_only, int K, int n,
                         const uint64_t *nonces, double created)
{
    char dir[PATH_MAX], path[PATH_MAX], tmp[PATH_MAX + 8];
    snprintf(dir, sizeof(dir), "%s/mc", m->dir);
    if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
        log_warn("mkdir %s", dir);
        return -1;
    }
    if (s_state_path(m, id, path, sizeof(path)) < 0)
        return -1;
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (f == NULL) {
        log_warn("%s", tmp);
        return -1;
    }
    fputs("{\"measurement\": ", f);
    dy_json_put_str(f, name);
    fputs(", \"id\": ", f);
    dy_json_put_str(f, id);
    fputs(", \"request_id\": ", f);
    dy_json_put_str(f, request_id);
    fprintf(f, ", \"protocol\": \"%s\", \"type\": \"%s\", \"noise\": \"%s\", \"epsilon\": ",
            dy_mc_protocol_name(o->protocol), reach_only ? "reach" : "reach-and-frequency",
            dy_mc_noise_name(o->noise));
    dy_json_put_double(f, o->epsilon);
    fputs(", \"delta\": ", f);
    dy_json_put_double(f, o->delta);
    if (o->noise_override >= 0)
        fprintf(f, ", \"noise_mechanism_override\": %d", o->noise_override);
    fprintf(f, ", \"max_frequency\": %d, \"vid_start\": 0, \"vid_width\": 1, \"edps\": [", K);
    for (int i = 0; i < n; i++) {
        fputs(i ? ", " : "", f);
        dy_json_put_str(f, m->fed.edps[i].id);
    }
    fputs("], \"edp_index\": [", f);
    for (int i = 0; i < n; i++)
        fprintf(f, "%s%d", i ? ", " : "", i);
    fputs("], \"nonces\": [", f);
    for (int i = 0; i < n; i++)
        fprintf(f, "%s\"%016" PRIx64 "\"", i ? ", " : "", nonces[i]);
    fprintf(f, "], \"created_unix\": %.3f}\n", created);
    if (fflush(f) != 0 || fsync(fileno(f)) < 0) {
        log_warn("%s", tmp);
        fclose(f);
        return -1;
    }
    fclose(f);
    if (rename(tmp, path) < 0) {
        log_warn("rename %s", tmp);
        return -1;
    }
    return 0;
}

static int s_create(s_mc_t *m, const s_create_opts_t *o)
{
    if (s_load(m) < 0)
        return 1;
    int n = o->edps > 0 ? o->edps : (int)m->fed.nedps;
    if (n > (int)m->fed.nedps) {
        log_warnx("--edps %d: the federation has %zu EDPs", n, m->fed.nedps);
        return 1;
    }
    bool reach_only = o->protocol == DY_MC_ROLLV2 || o->protocol == DY_MC_HMSS_RO
                      || o->type == 0 || o->max_frequency == 1;
    int K = reach_only ? 1 : o->max_frequency;

    /* Keys. */
    char path[PATH_MAX];
    uint8_t mc_pub[33];
    if (dy_fed_pki_path(&m->fed, m->fed.mc.id, "enc.pub", path, sizeof(path)) < 0
        || dy_mc_load_enc_pub(path, mc_pub) < 0) {
        log_warnx("%s: cannot load the MC's result key", path);
        return 1;
    }
    (void)dy_fed_pki_path(&m->fed, m->fed.mc.id, "sign.key", path, sizeof(path));
    EVP_PKEY *sign = dy_mc_load_sign_key(path);
    if (sign == NULL) {
        log_warnx("%s: cannot load the MC's signing key", path);
        return 1;
    }
    int ret = 1;
    uint64_t nonces[DY_FED_MAX_EDPS];
    uint8_t nonce_hash[DY_FED_MAX_EDPS][32];
    for (int i = 0; i < n; i++) {
        do {
            if (dy_rand_bytes((uint8_t *)&nonces[i], 8) < 0) {
                log_warnx("random source failed");
                goto out_key;
            }
        } while (nonces[i] == 0);
        (void)dy_mc_nonce_hash(nonces[i], nonce_hash[i]);
    }
    dy_mc_spec_t spec = {.reach_only = reach_only, .max_frequency = K,
                         .epsilon = o->epsilon, .delta = o->delta, .vid_start = 0.0f,
                         .vid_width = 1.0f, .nonces = nonces, .nnonces = (size_t)n};
    memcpy(spec.mc_pub, mc_pub, 33);
    dy_buf_t spec_bytes = {0}, enc_specs[DY_FED_MAX_EDPS], edp_keys[DY_FED_MAX_EDPS];
    memset(enc_specs, 0, sizeof(enc_specs));
    memset(edp_keys, 0, sizeof(edp_keys));
    uint8_t sig[DY_SIG_MAX];
    size_t siglen = 0;
    if (dy_mc_spec_build(&spec, &spec_bytes) < 0
        || dy_mc_spec_sign(sign, spec_bytes.data, spec_bytes.len, sig, &siglen) < 0) {
        log_warnx("cannot build or sign the measurement spec");
        goto out;
    }
    uint8_t spec_hash[32];
    (void)dy_mc_sha256(spec_bytes.data, spec_bytes.len, spec_hash);

    /* One entry per EDP: its certificate, nonce hash, encrypted requisition spec, key. */
    V2(Measurement__DataProviderEntry) entries[DY_FED_MAX_EDPS];
    V2(Measurement__DataProviderEntry) *entry_ptrs[DY_FED_MAX_EDPS];
    V2(Measurement__DataProviderEntry__Value) values[DY_FED_MAX_EDPS];
    V2(EncryptedMessage) encs[DY_FED_MAX_EDPS];
    Google__Protobuf__Any anys[DY_FED_MAX_EDPS];
    char keys[DY_FED_MAX_EDPS][DY_PARTY_ID_MAX], certs[DY_FED_MAX_EDPS][256];
    for (int i = 0; i < n; i++) {
        const dy_fed_party_t *e = &m->fed.edps[i];
        uint8_t edp_pub[33];
        snprintf(keys[i], sizeof(keys[i]), "dataProviders/%s", e->id);
        if (dy_fed_pki_path(&m->fed, e->id, "enc.pub", path, sizeof(path)) < 0
            || dy_mc_load_enc_pub(path, edp_pub) < 0) {
            log_warnx("%s: cannot load %s's encryption key", path, keys[i]);
            goto out;
        }
        if (dy_mc_reqspec_seal(edp_pub, keys[i], nonces[i], spec_hash, &enc_specs[i]) < 0
            || dy_fed_cert_name(keys[i], e->certificate, certs[i], sizeof(certs[i])) < 0) {
            log_warnx("cannot encrypt the requisition spec of %s", keys[i]);
            goto out;
        }
        V2(EncryptionPublicKey) ek = V2E(ENCRYPTION_PUBLIC_KEY__INIT);
        ek.format = V2E(ENCRYPTION_PUBLIC_KEY__FORMAT__ECIES_P256);
        ek.data.data = edp_pub;
        ek.data.len = 33;
        size_t kl = protobuf_c_message_get_packed_size(&ek.base);
        if (dy_buf_reserve(&edp_keys[i], kl) < 0)
            goto out;
        edp_keys[i].len = protobuf_c_message_pack(&ek.base, edp_keys[i].data);
        google__protobuf__any__init(&anys[i]);
        anys[i].type_url = (char *)S_TYPE_PREFIX "EncryptionPublicKey";
        anys[i].value.data = edp_keys[i].data;
        anys[i].value.len = edp_keys[i].len;
        v2(encrypted_message__init)(&encs[i]);
        encs[i].ciphertext.data = enc_specs[i].data;
        encs[i].ciphertext.len = enc_specs[i].len;
        encs[i].type_url = (char *)DY_MC_REQSPEC_TYPE_URL;
        v2(measurement__data_provider_entry__value__init)(&values[i]);
        values[i].data_provider_certificate = certs[i];
        values[i].nonce_hash.data = nonce_hash[i];
        values[i].nonce_hash.len = 32;
        values[i].encrypted_requisition_spec = &encs[i];
        values[i].data_provider_public_key = &anys[i];
        v2(measurement__data_provider_entry__init)(&entries[i]);
        entries[i].key = keys[i];
        entries[i].value = &values[i];
        entry_ptrs[i] = &entries[i];
    }

    /* The signed spec, the protocol config and the request. */
    Google__Protobuf__Any spec_any = GOOGLE__PROTOBUF__ANY__INIT;
    spec_any.type_url = (char *)S_TYPE_PREFIX "MeasurementSpec";
    spec_any.value.data = spec_bytes.data;
    spec_any.value.len = spec_bytes.len;
    V2(SignedMessage) signed_spec = V2E(SIGNED_MESSAGE__INIT);
    signed_spec.signature.data = sig;
    signed_spec.signature.len = siglen;
    signed_spec.signature_algorithm_oid = (char *)DY_SIG_OID;
    signed_spec.message = &spec_any;

    V2(ProtocolConfig) pc = V2E(PROTOCOL_CONFIG__INIT);
    V2(ProtocolConfig__Protocol) proto = V2E(PROTOCOL_CONFIG__PROTOCOL__INIT);
    V2(ProtocolConfig__Protocol) *protos[1] = {&proto};
    V2(ProtocolConfig__LiquidLegionsV2) llv2 = V2E(PROTOCOL_CONFIG__LIQUID_LEGIONS_V2__INIT);
    V2(ProtocolConfig__ReachOnlyLiquidLegionsV2) rollv2 =
        V2E(PROTOCOL_CONFIG__REACH_ONLY_LIQUID_LEGIONS_V2__INIT);
    V2(ProtocolConfig__HonestMajorityShareShuffle) hmss =
        V2E(PROTOCOL_CONFIG__HONEST_MAJORITY_SHARE_SHUFFLE__INIT);
    pc.measurement_type = reach_only ? V2E(PROTOCOL_CONFIG__MEASUREMENT_TYPE__REACH)
                                     : V2E(PROTOCOL_CONFIG__MEASUREMENT_TYPE__REACH_AND_FREQUENCY);
    pc.n_protocols = 1;
    pc.protocols = protos;
    switch (o->protocol) {
    case DY_MC_LLV2:
        llv2.noise_mechanism = s_public_noise(o);
        llv2.elliptic_curve_id = 415;
        proto.protocol_case = V2E(PROTOCOL_CONFIG__PROTOCOL__PROTOCOL_LIQUID_LEGIONS_V2);
        proto.liquid_legions_v2 = &llv2;
        break;
    case DY_MC_ROLLV2:
        rollv2.noise_mechanism = s_public_noise(o);
        rollv2.elliptic_curve_id = 415;
        proto.protocol_case = V2E(PROTOCOL_CONFIG__PROTOCOL__PROTOCOL_REACH_ONLY_LIQUID_LEGIONS_V2);
        proto.reach_only_liquid_legions_v2 = &rollv2;
        break;
    default:
        hmss.noise_mechanism = s_public_noise(o);
        proto.protocol_case = V2E(PROTOCOL_CONFIG__PROTOCOL__PROTOCOL_HONEST_MAJORITY_SHARE_SHUFFLE);
        proto.honest_majority_share_shuffle = &hmss;
        break;
    }

    char mc_cert[256], request_id[40];
    if (dy_fed_cert_name(m->mc_party, m->fed.mc.certificate, mc_cert, sizeof(mc_cert)) < 0)
        goto out;
    if (o->request_id != NULL) {
        snprintf(request_id, sizeof(request_id), "%s", o->request_id);
    } else {
        uint8_t rnd[12];
        if (dy_rand_bytes(rnd, sizeof(rnd)) < 0)
            goto out;
        dy_hex(rnd, sizeof(rnd), request_id);
    }
    V2(Measurement) meas = V2E(MEASUREMENT__INIT);
    meas.measurement_consumer_certificate = mc_cert;
    meas.measurement_spec = &signed_spec;
    meas.n_data_providers = (size_t)n;
    meas.data_providers = entry_ptrs;
    meas.protocol_config = &pc;
    V2(CreateMeasurementRequest) req = V2E(CREATE_MEASUREMENT_REQUEST__INIT);
    req.measurement = &meas;
    req.request_id = request_id;
    req.parent = m->mc_party;

    if (s_connect(m) < 0)
        goto out;
    double created = s_wall();
    ProtobufCMessage *resp = NULL;
    if (s_call(m, S_SVC "Measurements/CreateMeasurement", &req.base,
               &v2(measurement__descriptor), &resp, NULL) < 0)
        goto out;
    V2(Measurement) *got = (V2(Measurement) *)resp;
    char id[64], name[256];
    if (got->name == NULL || s_measurement_name(m, got->name, id, sizeof(id), name,
                                                sizeof(name)) < 0) {
        log_warnx("the Kingdom answered with a malformed measurement name \"%s\"",
                  got->name ? got->name : "");
        protobuf_c_message_free_unpacked(resp, NULL);
        goto out;
    }
    protobuf_c_message_free_unpacked(resp, NULL);
    if (s_state_write(m, id, name, request_id, o, reach_only, K, n, nonces, created) < 0)
        goto out;
    log_info("created %s (%s, %s, %d EDPs)", name, dy_mc_protocol_name(o->protocol),
             reach_only ? "reach" : "reach and frequency", n);
    if (m->json) {
        s_json_done = true;
        fputs("{\"measurement\": ", stdout);
        dy_json_put_str(stdout, name);
        fputs("}\n", stdout);
    } else {
        printf("%s\n", name);
    }
    ret = 0;
out:
    dy_buf_free(&spec_bytes);
    for (int i = 0; i < n; i++) {
        dy_buf_free(&enc_specs[i]);
        dy_buf_free(&edp_keys[i]);
    }
    OPENSSL_cleanse(nonces, sizeof(nonces));
out_key:
    EVP_PKEY_free(sign);
    return ret;
}

/* ---- wait / show / cancel ---------------------------------------------------------------- */

/* The aggregator's certificate: GetCertificate at the Kingdom, else the PKI directory's copy
 * (both are checked the same way afterwards).  NULL if neither is available. */
static X509 *s_fetch_cert(s_mc_t *m, const char *name)
{
    V2(GetCertificateRequest) req = V2E(GET_CERTIFICATE_REQUEST__INIT);
    req.name = (char *)name;
    ProtobufCMessage *resp = NULL;
    dy_rpc_status_t st;
    X509 *cert = NULL;
    if (m->kingdom != NULL
        && s_call(m, S_SVC "Certificates/GetCertificate", &req.base,
                  &v2(certificate__descriptor), &resp, &st) == 0) {
        V2(Certificate) *c = (V2(Certificate) *)resp;
        cert = dy_mc_cert_from_der(c->x509_der.data, c->x509_der.len);
        if (cert == NULL)
            log_warnx("GetCertificate %s: not a DER certificate", name);
        protobuf_c_message_free_unpacked(resp, NULL);
        return cert;
    }
    char path[PATH_MAX];
    if (dy_fed_cert_path(&m->fed, name, path, sizeof(path)) == 0
        && (cert = dy_mc_load_cert(path)) != NULL)
        log_info("using %s for %s", path, name);
    return cert;
}

static void s_put_freq(const double *f, int n)
{
    fputc('{', stdout);
    for (int i = 0; i < n; i++) {
        printf("%s\"%d\": ", i ? ", " : "", i + 1);
        dy_json_put_double(stdout, f[i]);
    }
    fputc('}', stdout);
}

static int s_get(s_mc_t *m, const char *name, V2(Measurement) **ret)
{
    V2(GetMeasurementRequest) req = V2E(GET_MEASUREMENT_REQUEST__INIT);
    req.name = (char *)name;
    ProtobufCMessage *resp = NULL;
    if (s_call(m, S_SVC "Measurements/GetMeasurement", &req.base,
               &v2(measurement__descriptor), &resp, NULL) < 0)
        return -1;
    *ret = (V2(Measurement) *)resp;
    return 0;
}

static volatile sig_atomic_t s_stop;
static void s_on_signal(int sig)
{
    (void)sig;
    s_stop = 1;
}

static int s_wait(s_mc_t *m, const char *arg, double timeout, long poll_ms)
{
    char id[64], name[256], err[512] = "";
    s_state_t st;
    if (s_load(m) < 0)
        return 1;
    if (s_measurement_name(m, arg, id, sizeof(id), name, sizeof(name)) < 0) {
        log_warnx("\"%s\" is not a measurement of %s", arg, m->mc_party);
        return 1;
    }
    if (s_state_load(m, id, &st) < 0)
        return 1;
    dy_mc_protocol_t protocol;
    (void)dy_mc_protocol_parse(st.protocol, &protocol);

    /* Poll until terminal; reconnect after transport failures. */
    double t0 = dy_now();
    V2(Measurement) *meas = NULL;
    int last = -1;
    while (!s_stop) {
        if (m->kingdom == NULL && s_connect(m) < 0)
            dy_rpc_client_destroy(&m->kingdom);
        if (m->kingdom != NULL && s_get(m, name, &meas) == 0) {
            if ((int)meas->state != last) {
                log_info("%s: %s", name, s_state_name((int)meas->state));
                last = (int)meas->state;
            }
            if (s_state_terminal((int)meas->state))
                break;
            protobuf_c_message_free_unpacked(&meas->base, NULL);
            meas = NULL;
        }
        if (dy_now() - t0 >= timeout)
            break;
        struct timespec ts = {poll_ms / 1000, (poll_ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
    }
    double seconds = s_wall() - st.created;
    const char *state = meas ? s_state_name((int)meas->state) : (last >= 0 ? s_state_name(last)
                                                                          : "UNKNOWN");
    bool succeeded = meas != NULL && meas->state == V2E(MEASUREMENT__STATE__SUCCEEDED);
    if (meas == NULL)
        log_warnx("%s: no terminal state within %.0f s", name, timeout);
    else if (!succeeded && meas->failure != NULL)
        log_warnx("%s: %s: %s", name, state, meas->failure->message ? meas->failure->message : "");

    /* Verify and decrypt (CRYPTO.md §9.3). */
    bool verified = false;
    dy_mc_result_t result = {0};
    if (succeeded) {
        int agg = dy_fed_aggregator(&m->fed);
        char path[PATH_MAX], computation[128];
        uint8_t mc_priv[32];
        snprintf(computation, sizeof(computation), "computations/%s", id);
        dy_mc_trust_t *trust = dy_mc_trust_new(m->fed.trusted_ca, m->fed.parties, err,
                                               sizeof(err));
        if (meas->n_results != 1 || meas->results[0]->encrypted_result == NULL) {
            log_warnx("%s: SUCCEEDED with %zu results", name, meas->n_results);
        } else if (trust == NULL) {
            log_warnx("trust anchors: %s", err);
        } else if (dy_fed_pki_path(&m->fed, m->fed.mc.id, "enc.key", path, sizeof(path)) < 0
                   || dy_mc_load_enc_priv(path, mc_priv) < 0) {
            log_warnx("%s: cannot load the MC's private key", path);
        } else {
            const char *cert_name = meas->results[0]->certificate;
            X509 *cert = s_fetch_cert(m, cert_name ? cert_name : "");
            const V2(EncryptedMessage) *em = meas->results[0]->encrypted_result;
            dy_mc_step_t step;
            if (dy_mc_result_open(trust, cert_name, cert, m->fed.duchies[agg].id, computation,
                                  mc_priv, em->ciphertext.data, em->ciphertext.len,
                                  !st.reach_only, &result, &step, err, sizeof(err)) == 0) {
                verified = true;
                log_info("%s: result verified (aggregator %s)", name, m->fed.duchies[agg].id);
            } else {
                static const char *const steps[] = {"ok", "certificate", "signature",
                                                    "decryption", "result"};
                log_warnx("%s: result REFUSED at the %s check: %s", name, steps[step], err);
            }
            X509_free(cert);
            OPENSSL_cleanse(mc_priv, sizeof(mc_priv));
        }
        dy_mc_trust_destroy(&trust);
    }

    /* Ground truth. */
    dy_mc_truth_t truth;
    bool have_truth = dy_mc_truth(&m->fed, st.edp_index, (size_t)st.nedps, st.max_frequency,
                                  dy_mc_protocol_is_llv2(protocol), st.vid_width, &truth) == 0;
    if (!have_truth)
        log_warnx("cannot regenerate the campaign's ground truth");

    int K = st.reach_only ? 0 : st.max_frequency;
    if (m->json) {
        s_json_done = true;
        fputs("{\"measurement\": ", stdout);
        dy_json_put_str(stdout, name);
        printf(", \"protocol\": \"%s\", \"state\": \"%s\", \"reach\": ", st.protocol, state);
        if (verified)
            printf("%lld", (long long)result.reach);
        else
            fputs("null", stdout);
        fputs(", \"true_reach\": ", stdout);
        if (have_truth)
            printf("%lld", (long long)truth.true_reach);
        else
            fputs("null", stdout);
        fputs(", \"frequency\": ", stdout);
        if (verified)
            s_put_freq(result.freq, result.nfreq);
        else
            fputs("null", stdout);
        fputs(", \"true_frequency\": ", stdout);
        if (have_truth)
            s_put_freq(truth.true_freq, K);
        else
            fputs("null", stdout);
        printf(", \"signature_verified\": %s, \"seconds\": %.3f", verified ? "true" : "false",
               seconds);
        if (dy_mc_protocol_is_llv2(protocol)) {
            fputs(", \"plaintext_estimate\": ", stdout);
            if (have_truth)
                printf("%lld", (long long)truth.plaintext_estimate);
            else
                fputs("null", stdout);
            if (have_truth && truth.plaintext_nfreq > 0) {
                fputs(", \"plaintext_frequency\": ", stdout);
                s_put_freq(truth.plaintext_freq, truth.plaintext_nfreq);
            }
        }
        fputs("}\n", stdout);
    } else {
        printf("measurement %s\nprotocol    %s\nstate       %s\n", name, st.protocol, state);
        if (verified)
            printf("reach       %10lld   true %10lld\n", (long long)result.reach,
                   have_truth ? (long long)truth.true_reach : -1LL);
        if (have_truth && dy_mc_protocol_is_llv2(protocol))
            printf("plaintext estimate %lld\n", (long long)truth.plaintext_estimate);
        for (int i = 0; verified && i < result.nfreq; i++)
            printf("frequency %2d  %.4f   true %.4f\n", i + 1, result.freq[i],
                   have_truth ? truth.true_freq[i] : -1.0);
        printf("signature   %s\nseconds     %.1f\n", verified ? "verified" : "NOT verified",
               seconds);
    }
    if (meas != NULL)
        protobuf_c_message_free_unpacked(&meas->base, NULL);
    return succeeded && verified ? 0 : 1;
}

static int s_show(s_mc_t *m, const char *arg)
{
    char id[64], name[256];
    if (s_load(m) < 0)
        return 1;
    if (s_measurement_name(m, arg, id, sizeof(id), name, sizeof(name)) < 0) {
        log_warnx("\"%s\" is not a measurement of %s", arg, m->mc_party);
        return 1;
    }
    V2(Measurement) *meas = NULL;
    if (s_connect(m) < 0 || s_get(m, name, &meas) < 0)
        return 1;
    s_state_t st;
    bool local = s_state_load(m, id, &st) == 0;
    const char *state = s_state_name((int)meas->state);
    const char *fmsg = meas->failure && meas->failure->message ? meas->failure->message : "";
    if (m->json) {
        s_json_done = true;
        fputs("{\"measurement\": ", stdout);
        dy_json_put_str(stdout, name);
        printf(", \"state\": \"%s\"", state);
        if (local)
            printf(", \"protocol\": \"%s\", \"type\": \"%s\", \"edps\": %d", st.protocol,
                   st.reach_only ? "reach" : "reach-and-frequency", st.nedps);
        printf(", \"data_providers\": %zu, \"results\": %zu", meas->n_data_providers,
               meas->n_results);
        if (meas->failure != NULL) {
            printf(", \"failure\": {\"reason\": %d, \"message\": ", (int)meas->failure->reason);
            dy_json_put_str(stdout, fmsg);
            fputc('}', stdout);
        }
        fputs("}\n", stdout);
    } else {
        printf("measurement: %s\nstate: %s\n", name, state);
        if (local)
            printf("protocol: %s\ntype: %s\n", st.protocol,
                   st.reach_only ? "reach" : "reach-and-frequency");
        printf("data_providers: %zu\nresults: %zu\n", meas->n_data_providers, meas->n_results);
        if (meas->failure != NULL)
            printf("failure: %d %s\n", (int)meas->failure->reason, fmsg);
    }
    protobuf_c_message_free_unpacked(&meas->base, NULL);
    return 0;
}

static int s_cancel(s_mc_t *m, const char *arg)
{
    char id[64], name[256];
    if (s_load(m) < 0)
        return 1;
    if (s_measurement_name(m, arg, id, sizeof(id), name, sizeof(name)) < 0) {
        log_warnx("\"%s\" is not a measurement of %s", arg, m->mc_party);
        return 1;
    }
    V2(CancelMeasurementRequest) req = V2E(CANCEL_MEASUREMENT_REQUEST__INIT);
    req.name = name;
    ProtobufCMessage *resp = NULL;
    if (s_connect(m) < 0
        || s_call(m, S_SVC "Measurements/CancelMeasurement", &req.base,
                  &v2(measurement__descriptor), &resp, NULL) < 0)
        return 1;
    const char *state = s_state_name((int)((V2(Measurement) *)resp)->state);
    log_info("%s: %s", name, state);
    if (m->json) {
        s_json_done = true;
        fputs("{\"measurement\": ", stdout);
        dy_json_put_str(stdout, name);
        printf(", \"state\": \"%s\"}\n", state);
    } else {
        printf("%s %s\n", name, state);
    }
    protobuf_c_message_free_unpacked(resp, NULL);
    return 0;
}

/* ---- main ---------------------------------------------------------------------------- */

enum {
    O_DIR = 1000, O_PROTOCOL, O_TYPE, O_NOISE, O_EPSILON, O_DELTA, O_MAXF, O_EDPS, O_REQID,
    O_NOISE_OVERRIDE, O_TIMEOUT, O_POLL, O_JSON, O_HELP,
};

int main(int argc, char **argv)
{
    if (argc < 2)
        s_usage_die("a command is required");
    const char *cmd = argv[1];
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
        fputs(s_usage, stdout);
        return 0;
    }
    if (strcmp(cmd, "create") != 0 && strcmp(cmd, "wait") != 0 && strcmp(cmd, "show") != 0
        && strcmp(cmd, "cancel") != 0)
        s_usage_die("unknown command \"%s\"", cmd);

    static const struct option opts[] = {
        {"dir", required_argument, NULL, O_DIR},
        {"protocol", required_argument, NULL, O_PROTOCOL},
        {"type", required_argument, NULL, O_TYPE},
        {"noise", required_argument, NULL, O_NOISE},
        {"epsilon", required_argument, NULL, O_EPSILON},
        {"delta", required_argument, NULL, O_DELTA},
        {"max-frequency", required_argument, NULL, O_MAXF},
        {"edps", required_argument, NULL, O_EDPS},
        {"request-id", required_argument, NULL, O_REQID},
        {"testing-noise-mechanism", required_argument, NULL, O_NOISE_OVERRIDE},
        {"timeout", required_argument, NULL, O_TIMEOUT},
        {"poll-ms", required_argument, NULL, O_POLL},
        {"json", no_argument, NULL, O_JSON},
        {"help", no_argument, NULL, O_HELP},
        {"verbose", no_argument, NULL, 'v'},
        {NULL, 0, NULL, 0},
    };
    s_mc_t m;
    memset(&m, 0, sizeof(m));
    s_create_opts_t co = {.type = -1, .noise = DY_MC_NOISE_GEOMETRIC, .epsilon = 1.0,
                          .delta = 1e-5, .max_frequency = 10, .noise_override = -1};
    bool create = strcmp(cmd, "create") == 0, waitcmd = strcmp(cmd, "wait") == 0;
    bool set_maxf = false;
    double timeout = 900;
    long poll_ms = 500;
    bool verbose = false;
    int c;
    opterr = 0;
    optind = 2;
    while ((c = getopt_long(argc, argv, ":v", opts, NULL)) != -1) {
        if (!create && c >= O_PROTOCOL && c <= O_NOISE_OVERRIDE)
            s_usage_die("%s: %s is an option of create", cmd, argv[optind - 1]);
        if (!waitcmd && (c == O_TIMEOUT || c == O_POLL))
            s_usage_die("%s: %s is an option of wait", cmd, argv[optind - 1]);
        switch (c) {
        case O_DIR: m.dir = optarg; break;
        case O_PROTOCOL:
            if (dy_mc_protocol_parse(optarg, &co.protocol) < 0)
                s_usage_die("unknown protocol \"%s\"", optarg);
            co.have_protocol = true;
            break;
        case O_TYPE:
            if (strcmp(optarg, "reach") == 0)
                co.type = 0;
            else if (strcmp(optarg, "reach-and-frequency") == 0)
                co.type = 1;
            else
                s_usage_die("unknown type \"%s\"", optarg);
            break;
        case O_NOISE:
            if (dy_mc_noise_parse(optarg, &co.noise) < 0)
                s_usage_die("unknown noise \"%s\"", optarg);
            break;
        case O_EPSILON: co.epsilon = s_opt_double("--epsilon", optarg, 1e-9, 1e6); break;
        case O_DELTA: co.delta = s_opt_double("--delta", optarg, 1e-300, 1.0); break;
        case O_MAXF:
            co.max_frequency = (int)s_opt_long("--max-frequency", optarg, 1, DY_MC_FREQ_MAX);
            set_maxf = true;
            break;
        case O_EDPS: co.edps = (int)s_opt_long("--edps", optarg, 1, DY_FED_MAX_EDPS); break;
        case O_REQID:
            if (strlen(optarg) == 0 || strlen(optarg) > 36)
                s_usage_die("--request-id must be 1-36 characters");
            co.request_id = optarg;
            break;
        case O_NOISE_OVERRIDE:
            co.noise_override = (int)s_opt_long("--testing-noise-mechanism", optarg, 0, 6);
            break;
        case O_TIMEOUT: timeout = s_opt_double("--timeout", optarg, 0, 86400 * 7); break;
        case O_POLL: poll_ms = s_opt_long("--poll-ms", optarg, 10, 60000); break;
        case O_JSON: m.json = true; break;
        case 'v': verbose = true; break;
        case O_HELP: fputs(s_usage, stdout); return 0;
        case ':': s_usage_die("%s needs a value", argv[optind - 1]);
        default: s_usage_die("unknown option %s", argv[optind - 1]);
        }
    }
    if (m.dir == NULL)
        s_usage_die("%s: --dir is required", cmd);
    const char *target = NULL;
    if (create) {
        if (optind != argc)
            s_usage_die("create takes no arguments");
        if (!co.have_protocol)
            s_usage_die("create: --protocol is required");
        bool ro = co.protocol == DY_MC_ROLLV2 || co.protocol == DY_MC_HMSS_RO;
        if (ro && co.type == 1)
            s_usage_die("%s measures reach only", dy_mc_protocol_name(co.protocol));
        if (ro && set_maxf && co.max_frequency != 1)
            s_usage_die("%s measures reach only (--max-frequency 1)",
                        dy_mc_protocol_name(co.protocol));
        if (co.type == 1 && co.max_frequency < 2)
            s_usage_die("reach-and-frequency needs --max-frequency >= 2");
    } else {
        if (optind != argc - 1)
            s_usage_die("%s takes one MEASUREMENT", cmd);
        target = argv[optind];
    }

    dy_log_init("mc", NULL, verbose);
    signal(SIGPIPE, SIG_IGN);
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = s_on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    int rc;
    if (create)
        rc = s_create(&m, &co);
    else if (waitcmd)
        rc = s_wait(&m, target, timeout, poll_ms);
    else if (strcmp(cmd, "show") == 0)
        rc = s_show(&m, target);
    else
        rc = s_cancel(&m, target);
    s_mc_free(&m);
    if (m.json && !s_json_done) {
        printf("{\"command\": \"%s\", \"error\": \"failed (see stderr)\"}\n", cmd);
        if (rc == 0)
            rc = 1;
    }
    return rc;
}
