/* edp.c - duchy-edp, the data provider simulator (DESIGN.md §6; PROTOCOL.md §3.3, §3.8,
 * §3.9, §5.5 steps 4-5 of LLv2 and step 4 of HMSS; CRYPTO.md §2.1, §3, §8.1-8.2, §8.7).
 * Run through the tools/edp wrapper.
 *
 *   run --dir DIR --id EDP [--once] [--poll-ms N] [--threads T]
 *       [--corrupt MODE [--corrupt-limit N]] [-v]
 *       polls the Kingdom's ListRequisitions for this EDP's UNFULFILLED requisitions and
 *       fulfils each: decrypts its requisition spec (the nonce), verifies the MC's signature
 *       on the measurement spec and the nonce, then
 *         LLv2 / RO-LLv2: verifies the three duchies' signed ElGamal keys, combines them,
 *           builds the EDP's Liquid Legions sketch from the federation's seeded campaign,
 *           encrypts it and uploads it to a duchy (round-robin by EDP index);
 *         HMSS: builds the frequency vector, splits it into a data share and a seed, signs
 *           the seed and encrypts it to the other shuffler's signed key, and uploads the
 *           share with the sealed seed in the header to the assigned shuffler;
 *       and records DIR/edp/<id>/<measurement>.json (what this EDP contributed).  A spec or
 *       key that fails verification is refused (RefuseRequisition); transient failures are
 *       retried with backoff.  --once: one pass, then exit (1 if anything failed).
 *   refuse --dir DIR --id EDP REQUISITION [--json]
 *       refuses one requisition (DECLINED).
 *
 * Fault injection (TESTING ONLY: --corrupt, or DY_EDP_CORRUPT=MODE and
 * DY_EDP_CORRUPT_LIMIT=N when the option is absent; tools/federation up --edp-corrupt
 * ID:MODE[:N] passes the option to one EDP).  The first N (default 1) fulfilments of the
 * protocols a mode applies to upload deliberately bad data; fulfilments of other protocols
 * are untouched and do not count.  A fulfilment counts once its upload was answered (accepted
 * or refused for good); each corrupted one is logged at warn with "CORRUPTED".
 *   not-on-curve   LLv2, RO-LLv2: one ciphertext point of the middle register gets y+1: still
 *                  04 || x || y with x, y < p, but off P-256 (the duchy's mill must fail the
 *                  setup with invalid_point)
 *   wrong-count    LLv2, RO-LLv2: the sketch loses its last point (65 bytes), so its length is
 *                  no whole number of registers (the duchy refuses the upload itself with
 *                  INVALID_ARGUMENT and stores nothing; the EDP then fulfils again, with good
 *                  data once the limit is used up)
 *   hmss-bad-share HMSS: the share has one register too few (R-1, or R+1 if R = 1), with
 *                  register_count saying so, consistent with the body, so the upload is taken
 *                  and the shufflers must fail on the register counts (share_inconsistent)
 *   bad-signature  HMSS: the seed for the peer shuffler is signed by a throwaway key, not the
 *                  EDP's (the peer's mill must fail with seed_invalid)
 *
 * Peers: the Kingdom (public Requisitions and Certificates services) and the duchies'
 * RequisitionFulfillment service, all over mutual TLS with the EDP's client certificate; each
 * server's identity is checked ("kingdom", "duchies/<id>").  SIGTERM / SIGINT: finish the
 * requisition in hand, exit 0.  Exit: 0, 1 failure, 64 usage.
 */
#include "log.h"
#include "mc_util.h"
#include "rpc.h"
#include "tls.h"

#include "crypto/ec.h"
#include "crypto/sig.h"
#include "protocol/hmss.h"
#include "protocol/llv2.h"
#include "sketch/campaign.h"
#include "sketch/fvec.h"
#include "sketch/ll.h"

#include "public.pb-c.h"

#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/obj_mac.h>

#include <errno.h>
#include <getopt.h>
#include <limits.h>
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

#define S_PROG "duchy-edp"
#define S_SVC "/wfa.measurement.api.v2alpha."
#define S_TYPE_PREFIX "type.googleapis.com/wfa.measurement.api.v2alpha."
#define S_CALL_MS 30000
#define S_UPLOAD_MS 600000
#define S_SEEN_MAX 1024
#define S_G_HEX "036b17d1f2e12c4247f8bce6e563a440f277037d812deb33a0f4a13945d898c296"

static const char s_usage[] =
    "usage: tools/edp <command> [options]\n"
    "\n"
    "The data provider simulator of a running federation (docs/federation-dir.md).\n"
    "\n"
    "  run --dir DIR --id EDP [--once] [--poll-ms N (1000)] [--threads T] [-v]\n"
    "      [--corrupt MODE [--corrupt-limit N (1)]]\n"
    "      fulfils this EDP's requisitions from the federation's seeded campaign until\n"
    "      SIGTERM (--once: one pass).  TESTING ONLY: --corrupt (else $DY_EDP_CORRUPT,\n"
    "      $DY_EDP_CORRUPT_LIMIT) uploads bad data in the first N fulfilments it applies\n"
    "      to: not-on-curve, wrong-count (LLv2, RO-LLv2), hmss-bad-share, bad-signature\n"
    "      (HMSS)\n"
    "  refuse --dir DIR --id EDP REQUISITION [--json]\n"
    "      refuses a requisition (its name or last segment)\n"
    "\n"
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

static volatile sig_atomic_t s_stop;
static void s_on_signal(int sig)
{
    (void)sig;
    s_stop = 1;
}

/* Outcome of one requisition. */
typedef enum {
    S_DONE = 0,      /* fulfilled (or no longer ours to fulfil) */
    S_RETRY = 1,     /* transient: try again later */
    S_REFUSE = 2,    /* verification failed: refuse it */
    S_GIVE_UP = 3,   /* permanent failure that is not the MC's fault: log, stop trying */
} s_outcome_t;

/* Deliberate corruption of uploads (TESTING ONLY; see the header). */
typedef enum {
    S_CORRUPT_NONE = 0,
    S_CORRUPT_NOT_ON_CURVE,
    S_CORRUPT_WRONG_COUNT,
    S_CORRUPT_HMSS_BAD_SHARE,
    S_CORRUPT_BAD_SIGNATURE,
} s_corrupt_t;

static const char *const s_corrupt_names[] = {"none", "not-on-curve", "wrong-count",
                                              "hmss-bad-share", "bad-signature"};

static int s_corrupt_parse(const char *v, s_corrupt_t *ret)
{
    for (size_t i = 0; i < DY_ARRAY_LEN(s_corrupt_names); i++)
        if (strcmp(v, s_corrupt_names[i]) == 0) {
            *ret = (s_corrupt_t)i;
            return 0;
        }
    return -EINVAL;
}

/* A requisition seen by this run. */
typedef struct {
    char name[160];
    bool finished;      /* done, refused or given up */
    int attempts;
    double next_try;    /* dy_now() seconds */
} s_seen_t;

typedef struct {
    const char *dir;             /* borrowed from argv */
    const char *id;              /* borrowed from argv */
    int index;                   /* in fed.edps */
    int threads;
    bool json;
    dy_fed_t fed;                /* owned */
    char party[DY_PARTY_ID_MAX]; /* dataProviders/<id> */
    char cert_name[256];         /* this EDP's signing certificate's resource name */
    SSL_CTX *ctx;                /* owned: client context with the EDP's TLS credentials */
    dy_rpc_client_t *kingdom;    /* owned; NULL when disconnected */
    dy_mc_trust_t *trust;        /* owned */
    uint8_t enc_priv[32];        /* secret: the EDP's ECIES key */
    EVP_PKEY *sign;              /* owned: the EDP's signing key */
    dy_ec_t *ec;                 /* owned */
    dy_campaign_t camp;          /* owned: the federation's campaign */
    dy_fvec_index_t fvix;        /* owned: HMSS positions, built on first use */
    float fv_start, fv_width;    /* the window fvix was built for */
    bool have_fvix;
    s_seen_t seen[S_SEEN_MAX];
    size_t nseen;
    int failures;                /* requisitions that failed in this pass (--once) */
    s_corrupt_t corrupt;         /* TESTING ONLY: what to corrupt */
    int corrupt_limit;           /* in how many fulfilments */
    int corrupted;               /* fulfilments corrupted so far */
} s_edp_t;

/* ---- plumbing ------------------------------------------------------------------------------ */

static dy_rpc_client_t *s_dial(s_edp_t *e, const char *host, int port, const char *expect)
{
    char err[512] = "";
    dy_rpc_client_conf_t cc = {.ctx = e->ctx, .host = host, .port = port};
    dy_rpc_client_t *c = dy_rpc_client_new(&cc, err, sizeof(err));
    if (c == NULL) {
        log_warnx("%s at %s:%d: %s", expect, host, port, err);
        return NULL;
    }
    const char *peer = dy_rpc_client_peer(c);
    if (peer == NULL || strcmp(peer, expect) != 0) {
        log_warnx("the server at %s:%d is %s, not %s", host, port, peer ? peer : "unidentified",
                  expect);
        dy_rpc_client_destroy(&c);
    }
    return c;
}

static int s_kingdom(s_edp_t *e)
{
    if (e->kingdom == NULL)
        e->kingdom = s_dial(e, e->fed.kingdom_host, e->fed.kingdom_port, "kingdom");
    return e->kingdom != NULL ? 0 : -1;
}

static int s_call(s_edp_t *e, const char *method, const ProtobufCMessage *req,
                  const ProtobufCMessageDescriptor *desc, ProtobufCMessage **ret,
                  dy_rpc_status_t *ret_st)
{
    dy_rpc_status_t st;
    memset(&st, 0, sizeof(st));
    if (s_kingdom(e) < 0) {
        st.code = DY_WIRE_STATUS_UNAVAILABLE;
        snprintf(st.message, sizeof(st.message), "no connection");
        if (ret_st != NULL)
            *ret_st = st;
        return -1;
    }
    int rc = dy_rpc_unary(e->kingdom, method, req, desc, ret, S_CALL_MS, &st);
    if (ret_st != NULL)
        *ret_st = st;
    if (rc < 0) {
        log_debug("%s: %s: %s", method + strlen(S_SVC), dy_wire_status_name(st.code),
                  st.message);
        if (st.code == DY_WIRE_STATUS_UNAVAILABLE || st.code == DY_WIRE_STATUS_CANCELLED
            || st.code == DY_WIRE_STATUS_DEADLINE_EXCEEDED)
            dy_rpc_client_destroy(&e->kingdom);
        return -1;
    }
    return 0;
}

/* A signing certificate by resource name (GetCertificate, else the PKI copy), checked to
 * belong to party.  NULL (reason logged) if unavailable or refused; *ret_refused tells a
 * certificate that exists but fails the checks (refuse) from one not found (retry). */
static X509 *s_cert(s_edp_t *e, const char *name, const char *party, bool *ret_refused)
{
    *ret_refused = false;
    V2(GetCertificateRequest) req = V2E(GET_CERTIFICATE_REQUEST__INIT);
    req.name = (char *)name;
    ProtobufCMessage *resp = NULL;
    X509 *cert = NULL;
    if (s_call(e, S_SVC "Certificates/GetCertificate", &req.base, &v2(certificate__descriptor),
               &resp, NULL) == 0) {
        V2(Certificate) *c = (V2(Certificate) *)resp;
        cert = dy_mc_cert_from_der(c->x509_der.data, c->x509_der.len);
        protobuf_c_message_free_unpacked(resp, NULL);
    }
    char path[PATH_MAX];
    if (cert == NULL && dy_fed_cert_path(&e->fed, name, path, sizeof(path)) == 0)
        cert = dy_mc_load_cert(path);
    if (cert == NULL) {
        log_warnx("certificate %s: unavailable", name);
        return NULL;
    }
    char err[256];
    if (dy_mc_trust_check(e->trust, cert, party, err, sizeof(err)) < 0) {
        log_warnx("certificate %s refused: %s", name, err);
        X509_free(cert);
        *ret_refused = true;
        return NULL;
    }
    return cert;
}

/* The last segment of a resource name after prefix (NULL if name does not match). */
static const char *s_segment(const char *name, const char *prefix)
{
    size_t n = strlen(prefix);
    if (name == NULL || strncmp(name, prefix, n) != 0 || name[n] == '\0'
        || strchr(name + n, '/') != NULL || strlen(name + n) > 63)
        return NULL;
    return name + n;
}

/* ---- per-protocol fulfilment --------------------------------------------------------------- */

/* What one requisition carries, once verified. */
typedef struct {
    const V2(Requisition) *req;   /* borrowed */
    const char *measurement_id;   /* borrowed: last segment of req->measurement */
    char computation_id[96];      /* computations/{measurement} */
    char requisition_id[192];     /* computations/{measurement}/requisitions/{requisition} */
    const uint8_t *spec;          /* borrowed: serialized MeasurementSpec */
    size_t spec_len;
    dy_mc_spec_info_t info;       /* owned */
    uint64_t nonce;
    uint8_t fingerprint[32];
    dy_mc_protocol_t protocol;
    /* Outputs for the upload and the record. */
    char duchy[64];               /* the fulfilling duchy's id */
    dy_buf_t body;                /* owned */
    dy_buf_t seed_ct;             /* owned: HMSS sealed seed */
    int64_t register_count;       /* HMSS R */
    size_t registers;             /* LLv2: sketch registers */
    s_corrupt_t corrupt;          /* TESTING ONLY: corrupt this fulfilment's upload */
} s_job_t;

static const V2(ProtocolConfig__Protocol) *s_protocol(const V2(Requisition) *r)
{
    if (r->protocol_config == NULL || r->protocol_config->n_protocols != 1)
        return NULL;
    return r->protocol_config->protocols[0];
}

/* The protocol of a requisition, from its protocol config, else from its duchy entries. */
static int s_job_protocol(s_job_t *j)
{
    const V2(ProtocolConfig__Protocol) *p = s_protocol(j->req);
    int pc = p ? (int)p->protocol_case : 0;
    if (pc == 0 && j->req->n_duchies > 0 && j->req->duchies[0]->value != NULL) {
        switch ((int)j->req->duchies[0]->value->protocol_case) {
        case V2E(REQUISITION__DUCHY_ENTRY__VALUE__PROTOCOL_LIQUID_LEGIONS_V2):
            pc = V2E(PROTOCOL_CONFIG__PROTOCOL__PROTOCOL_LIQUID_LEGIONS_V2);
            break;
        case V2E(REQUISITION__DUCHY_ENTRY__VALUE__PROTOCOL_REACH_ONLY_LIQUID_LEGIONS_V2):
            pc = V2E(PROTOCOL_CONFIG__PROTOCOL__PROTOCOL_REACH_ONLY_LIQUID_LEGIONS_V2);
            break;
        case V2E(REQUISITION__DUCHY_ENTRY__VALUE__PROTOCOL_HONEST_MAJORITY_SHARE_SHUFFLE):
            pc = V2E(PROTOCOL_CONFIG__PROTOCOL__PROTOCOL_HONEST_MAJORITY_SHARE_SHUFFLE);
            break;
        default: break;
        }
    }
    switch (pc) {
    case V2E(PROTOCOL_CONFIG__PROTOCOL__PROTOCOL_LIQUID_LEGIONS_V2):
        j->protocol = DY_MC_LLV2;
        return 0;
    case V2E(PROTOCOL_CONFIG__PROTOCOL__PROTOCOL_REACH_ONLY_LIQUID_LEGIONS_V2):
        j->protocol = DY_MC_ROLLV2;
        return 0;
    case V2E(PROTOCOL_CONFIG__PROTOCOL__PROTOCOL_HONEST_MAJORITY_SHARE_SHUFFLE):
        j->protocol = j->info.reach_only ? DY_MC_HMSS_RO : DY_MC_HMSS;
        return 0;
    default:
        return -1;
    }
}

/* A duchy's signed key (SignedMessage wrapping type_name): verified with the duchy's
 * certificate over label; the 33-byte key into out. */
static s_outcome_t s_duchy_key(s_edp_t *e, s_job_t *j, const V2(Requisition__DuchyEntry) *d,
                               const V2(SignedMessage) *sm, bool elgamal, uint8_t out[33])
{
    const char *did = s_segment(d->key, "duchies/");
    if (did == NULL || d->value == NULL || sm == NULL || sm->message == NULL) {
        log_warnx("%s: duchy entry \"%s\" has no signed key", j->req->name,
                  d->key ? d->key : "");
        return S_REFUSE;
    }
    const char *want = elgamal ? S_TYPE_PREFIX "ElGamalPublicKey"
                               : S_TYPE_PREFIX "EncryptionPublicKey";
    if (sm->message->type_url == NULL || strcmp(sm->message->type_url, want) != 0
        || sm->signature_algorithm_oid == NULL
        || strcmp(sm->signature_algorithm_oid, DY_SIG_OID) != 0) {
        log_warnx("%s: duchy %s: unexpected key type or signature algorithm", j->req->name, did);
        return S_REFUSE;
    }
    if (elgamal) {
        V2(ElGamalPublicKey) *k = v2(el_gamal_public_key__unpack)(NULL, sm->message->value.len,
                                                                  sm->message->value.data);
        uint8_t g[33];
        (void)dy_unhex(S_G_HEX, g, sizeof(g));
        bool ok = k != NULL && k->elliptic_curve_id == 415 && k->element.len == 33
                  && (k->generator.len == 0
                      || (k->generator.len == 33 && memcmp(k->generator.data, g, 33) == 0));
        if (ok)
            memcpy(out, k->element.data, 33);
        if (k != NULL)
            v2(el_gamal_public_key__free_unpacked)(k, NULL);
        if (!ok) {
            log_warnx("%s: duchy %s: malformed ElGamal key", j->req->name, did);
            return S_REFUSE;
        }
    } else {
        V2(EncryptionPublicKey) *k = v2(encryption_public_key__unpack)(
            NULL, sm->message->value.len, sm->message->value.data);
        bool ok = k != NULL && k->format == V2E(ENCRYPTION_PUBLIC_KEY__FORMAT__ECIES_P256)
                  && k->data.len == 33;
        if (ok)
            memcpy(out, k->data.data, 33);
        if (k != NULL)
            v2(encryption_public_key__free_unpacked)(k, NULL);
        if (!ok) {
            log_warnx("%s: duchy %s: malformed encryption key", j->req->name, did);
            return S_REFUSE;
        }
    }
    char party[DY_PARTY_ID_MAX];
    snprintf(party, sizeof(party), "duchies/%s", did);
    bool refused;
    X509 *cert = s_cert(e, d->value->duchy_certificate, party, &refused);
    if (cert == NULL)
        return refused ? S_REFUSE : S_RETRY;
    int rc = dy_mc_key_verify(X509_get0_pubkey(cert),
                              elgamal ? DY_MC_LABEL_ELGAMAL : DY_MC_LABEL_HMSS_KEY,
                              j->computation_id, out, sm->signature.data, sm->signature.len);
    X509_free(cert);
    if (rc < 0) {
        log_warnx("%s: duchy %s: key signature does not verify", j->req->name, did);
        return S_REFUSE;
    }
    return S_DONE;
}

/* ---- fault injection (TESTING ONLY) -------------------------------------------------------- */

static bool s_corrupt_applies(s_corrupt_t c, dy_mc_protocol_t p)
{
    switch (c) {
    case S_CORRUPT_NOT_ON_CURVE:
    case S_CORRUPT_WRONG_COUNT: return dy_mc_protocol_is_llv2(p);
    case S_CORRUPT_HMSS_BAD_SHARE:
    case S_CORRUPT_BAD_SIGNATURE: return !dy_mc_protocol_is_llv2(p);
    default: return false;
    }
}

/* Moves the uncompressed P-256 point pt (04 || x || y) off the curve: y -> y+1 mod p (again
 * while still on it), so x and y stay field elements and only the on-curve check fails.
 * 0, or -1 if pt is not an uncompressed point or OpenSSL fails. */
static int s_off_curve(uint8_t pt[65])
{
    if (pt[0] != 0x04)
        return -1;
    EC_GROUP *g = EC_GROUP_new_by_curve_name(NID_X9_62_prime256v1);
    BN_CTX *ctx = BN_CTX_new();
    BIGNUM *p = BN_new(), *y = BN_new();
    EC_POINT *q = g ? EC_POINT_new(g) : NULL;
    int rc = -1;
    if (g == NULL || ctx == NULL || p == NULL || y == NULL || q == NULL
        || EC_GROUP_get_curve(g, p, NULL, NULL, ctx) != 1 || BN_bin2bn(pt + 33, 32, y) == NULL)
        goto out;
    for (int i = 0; i < 4 && rc < 0; i++) {
        if (BN_add_word(y, 1) != 1 || (BN_cmp(y, p) >= 0 && BN_sub(y, y, p) != 1)
            || BN_bn2binpad(y, pt + 33, 32) != 32)
            goto out;
        ERR_set_mark();
        if (EC_POINT_oct2point(g, q, pt, 65, ctx) != 1)
            rc = 0; /* decodes syntactically, refused as off the curve */
        ERR_pop_to_mark();
    }
out:
    EC_POINT_free(q);
    BN_free(y);
    BN_free(p);
    BN_CTX_free(ctx);
    EC_GROUP_free(g);
    return rc;
}

/* Corrupts an encrypted LL sketch in j->body as j->corrupt says.  0, or -1 (left intact). */
static int s_corrupt_sketch(s_job_t *j, bool ro)
{
    const size_t B = ro ? 130 : 390, P = 65;
    size_t n = j->body.len / B;
    if (n == 0) {
        log_warnx("%s: empty sketch, nothing to corrupt", j->req->name);
        return -1;
    }
    if (j->corrupt == S_CORRUPT_NOT_ON_CURVE) {
        /* the middle register's key ciphertext (LLv2) or index ciphertext (RO), first point */
        size_t off = (n / 2) * B + (ro ? 0 : 2 * P);
        if (s_off_curve(j->body.data + off) < 0) {
            log_warnx("%s: cannot move a point off the curve", j->req->name);
            return -1;
        }
        log_warnx("%s: CORRUPTED (not-on-curve): register %zu of %zu, byte offset %zu, is off "
                  "P-256", j->req->name, n / 2, n, off);
    } else {
        j->body.len -= P;
        log_warnx("%s: CORRUPTED (wrong-count): %zu bytes, %zu registers of %zu bytes less one "
                  "point", j->req->name, j->body.len, n, B);
    }
    return 0;
}

static s_outcome_t s_llv2(s_edp_t *e, s_job_t *j)
{
    bool ro = j->protocol == DY_MC_ROLLV2;
    uint8_t keys[DY_FED_DUCHIES][33];
    char ids[DY_FED_DUCHIES][64];
    if (j->req->n_duchies != DY_FED_DUCHIES) {
        log_warnx("%s: %zu duchies, not %d", j->req->name, j->req->n_duchies, DY_FED_DUCHIES);
        return S_REFUSE;
    }
    for (size_t i = 0; i < DY_FED_DUCHIES; i++) {
        const V2(Requisition__DuchyEntry) *d = j->req->duchies[i];
        const V2(SignedMessage) *sm = NULL;
        if (d->value != NULL) {
            if (!ro && d->value->protocol_case
                           == V2E(REQUISITION__DUCHY_ENTRY__VALUE__PROTOCOL_LIQUID_LEGIONS_V2))
                sm = d->value->liquid_legions_v2->el_gamal_public_key;
            if (ro && d->value->protocol_case
                          == V2E(REQUISITION__DUCHY_ENTRY__VALUE__PROTOCOL_REACH_ONLY_LIQUID_LEGIONS_V2))
                sm = d->value->reach_only_liquid_legions_v2->el_gamal_public_key;
        }
        s_outcome_t o = s_duchy_key(e, j, d, sm, true, keys[i]);
        if (o != S_DONE)
            return o;
        snprintf(ids[i], sizeof(ids[i]), "%s", d->key + strlen("duchies/"));
        for (size_t k = 0; k < i; k++)
            if (strcmp(ids[k], ids[i]) == 0) {
                log_warnx("%s: duchy %s listed twice", j->req->name, ids[i]);
                return S_REFUSE;
            }
    }
    uint8_t Y[33];
    if (dy_llv2_combine_keys(e->ec, (const uint8_t(*)[33])keys, DY_FED_DUCHIES, Y) < 0) {
        log_warnx("%s: the duchies' keys do not combine", j->req->name);
        return S_REFUSE;
    }

    /* Sketch parameters: the requisition's, else the federation's. */
    double a = e->fed.decay_rate;
    int64_t m = e->fed.sketch_size;
    const V2(ProtocolConfig__Protocol) *p = s_protocol(j->req);
    if (p != NULL && !ro && p->protocol_case
                                == V2E(PROTOCOL_CONFIG__PROTOCOL__PROTOCOL_LIQUID_LEGIONS_V2)
        && p->liquid_legions_v2->sketch_params != NULL
        && p->liquid_legions_v2->sketch_params->max_size > 0) {
        a = p->liquid_legions_v2->sketch_params->decay_rate;
        m = p->liquid_legions_v2->sketch_params->max_size;
    } else if (p != NULL && ro
               && p->protocol_case
                      == V2E(PROTOCOL_CONFIG__PROTOCOL__PROTOCOL_REACH_ONLY_LIQUID_LEGIONS_V2)
               && p->reach_only_liquid_legions_v2->sketch_params != NULL
               && p->reach_only_liquid_legions_v2->sketch_params->max_size > 0) {
        a = p->reach_only_liquid_legions_v2->sketch_params->decay_rate;
        m = p->reach_only_liquid_legions_v2->sketch_params->max_size;
    }
    const dy_campaign_edp_t *data = &e->camp.edp[e->index];
    dy_ll_sketch_t sk;
    if (dy_ll_sketch_init(&sk, a, m) < 0) {
        log_warnx("%s: bad sketch parameters (decay %g, size %lld)", j->req->name, a,
                  (long long)m);
        return S_GIVE_UP;
    }
    int rc = 0;
    for (size_t i = 0; i < data->n && rc == 0; i++)
        rc = dy_ll_sketch_add_vid(&sk, data->vids[i], data->events[i]);
    if (rc == 0)
        rc = dy_ll_sketch_finish(&sk);
    dy_err_t err;
    dy_err_clear(&err);
    if (rc == 0)
        rc = dy_llv2_encrypt_sketch(e->ec, Y, &sk, j->info.max_frequency, ro, e->threads,
                                    &j->body, &err);
    j->registers = sk.n;
    dy_ll_sketch_free(&sk);
    if (rc < 0) {
        log_warnx("%s: sketch encryption failed: %s %s", j->req->name, err.code, err.message);
        return S_GIVE_UP;
    }
    if (j->corrupt != S_CORRUPT_NONE && s_corrupt_sketch(j, ro) < 0)
        j->corrupt = S_CORRUPT_NONE;
    /* Any participant may fulfil (§3.3): round-robin by EDP index. */
    snprintf(j->duchy, sizeof(j->duchy), "%s",
             e->fed.duchies[(size_t)e->index % e->fed.nduchies].id);
    return S_DONE;
}

static s_outcome_t s_hmss(s_edp_t *e, s_job_t *j)
{
    /* The assigned shuffler is the non-aggregator without a key; the other one's key seals
     * the seed (§3.9). */
    int agg = dy_fed_aggregator(&e->fed);
    const V2(Requisition__DuchyEntry) *assigned = NULL, *peer = NULL;
    for (size_t i = 0; i < j->req->n_duchies; i++) {
        const V2(Requisition__DuchyEntry) *d = j->req->duchies[i];
        const char *did = s_segment(d->key, "duchies/");
        if (did == NULL || strcmp(did, e->fed.duchies[agg].id) == 0)
            continue;
        bool has_key = d->value != NULL
                       && d->value->protocol_case
                              == V2E(REQUISITION__DUCHY_ENTRY__VALUE__PROTOCOL_HONEST_MAJORITY_SHARE_SHUFFLE)
                       && d->value->honest_majority_share_shuffle->public_key != NULL;
        if (has_key && peer == NULL)
            peer = d;
        else if (!has_key && assigned == NULL)
            assigned = d;
        else
            peer = assigned = NULL, i = j->req->n_duchies; /* ambiguous */
    }
    if (assigned == NULL || peer == NULL) {
        log_warnx("%s: cannot tell the assigned shuffler from its peer", j->req->name);
        return S_REFUSE;
    }
    uint8_t Q[33];
    s_outcome_t o = s_duchy_key(e, j, peer, peer->value->honest_majority_share_shuffle->public_key,
                                false, Q);
    if (o != S_DONE)
        return o;

    bool ro = j->info.reach_only;
    const V2(ProtocolConfig__Protocol) *p = s_protocol(j->req);
    uint64_t q = ro ? e->fed.hmss_reach_modulus : e->fed.hmss_rf_modulus;
    if (p != NULL && p->protocol_case
                         == V2E(PROTOCOL_CONFIG__PROTOCOL__PROTOCOL_HONEST_MAJORITY_SHARE_SHUFFLE)
        && p->honest_majority_share_shuffle->ring_modulus > 0)
        q = (uint64_t)p->honest_majority_share_shuffle->ring_modulus;
    dy_hmss_params_t hp = {.ring_modulus = q, .max_frequency = ro ? 1 : j->info.max_frequency,
                           .num_sketches = (int)j->info.nnonce_hashes, .reach_only = ro,
                           .vid_width = j->info.vid_width, .noise = DY_NOISE_NONE,
                           .threads = e->threads};
    if (!e->have_fvix || e->fv_start != j->info.vid_start || e->fv_width != j->info.vid_width) {
        dy_fvec_index_free(&e->fvix);
        e->have_fvix = false;
        if (dy_fvec_index_init(&e->fvix, e->fed.population, j->info.vid_start,
                               j->info.vid_width) < 0) {
            log_warnx("%s: cannot index the population for HMSS", j->req->name);
            return S_GIVE_UP;
        }
        e->have_fvix = true;
        e->fv_start = j->info.vid_start;
        e->fv_width = j->info.vid_width;
    }
    size_t R = e->fvix.registers;
    uint32_t *values = calloc(R, sizeof(*values)), *data = calloc(R, sizeof(*data));
    uint8_t seed[DY_MC_SEED_LEN];
    dy_err_t err;
    dy_err_clear(&err);
    s_outcome_t out = S_GIVE_UP;
    int rc;
    if (values == NULL || data == NULL) {
        log_warnx("%s: out of memory for %zu registers", j->req->name, R);
        goto done;
    }
    if (dy_fvec_build(&e->fvix, &e->camp.edp[e->index], (uint32_t)hp.max_frequency, values) < 0
        || dy_hmss_share(&hp, values, R, seed, data, &err) < 0) {
        log_warnx("%s: cannot share the frequency vector: %s %s", j->req->name, err.code,
                  err.message);
        goto done;
    }
    /* TESTING ONLY: a seed signed by a throwaway key instead of this EDP's. */
    EVP_PKEY *signer = e->sign;
    if (j->corrupt == S_CORRUPT_BAD_SIGNATURE && (signer = EVP_EC_gen("P-256")) == NULL) {
        log_warnx("%s: cannot make a throwaway signing key", j->req->name);
        goto done;
    }
    rc = dy_mc_seed_seal(signer, Q, j->computation_id, j->requisition_id, seed, &j->seed_ct);
    if (signer != e->sign)
        EVP_PKEY_free(signer);
    if (rc < 0 || dy_hmss_to_le(data, R, &j->body) < 0) {
        log_warnx("%s: cannot seal the seed", j->req->name);
        goto done;
    }
    j->register_count = (int64_t)R;
    if (j->corrupt == S_CORRUPT_BAD_SIGNATURE)
        log_warnx("%s: CORRUPTED (bad-signature): the seed is signed by a throwaway key",
                  j->req->name);
    if (j->corrupt == S_CORRUPT_HMSS_BAD_SHARE) {
        /* one register too few (too many if R = 1), header and body consistent */
        j->register_count = R > 1 ? (int64_t)R - 1 : 2;
        if (R > 1)
            j->body.len -= 4;
        else if (dy_buf_append(&j->body, (const uint8_t[4]){0}, 4) < 0)
            goto done;
        log_warnx("%s: CORRUPTED (hmss-bad-share): a share of %lld registers, not %zu",
                  j->req->name, (long long)j->register_count, R);
    }
    snprintf(j->duchy, sizeof(j->duchy), "%s", assigned->key + strlen("duchies/"));
    out = S_DONE;
done:
    OPENSSL_cleanse(seed, sizeof(seed));
    if (values != NULL)
        OPENSSL_cleanse(values, R * sizeof(*values));
    free(values);
    free(data);
    return out;
}

/* Uploads j's body to its duchy (RequisitionFulfillment.FulfillRequisition). */
static s_outcome_t s_upload(s_edp_t *e, s_job_t *j)
{
    int di = -1;
    for (size_t i = 0; i < e->fed.nduchies; i++)
        if (strcmp(e->fed.duchies[i].id, j->duchy) == 0)
            di = (int)i;
    char host[256], expect[DY_PARTY_ID_MAX];
    int port;
    if (di < 0 || dy_fed_split_endpoint(e->fed.duchies[di].endpoint, host, sizeof(host), &port)
                      < 0) {
        log_warnx("%s: no endpoint for duchy %s", j->req->name, j->duchy);
        return S_GIVE_UP;
    }
    snprintf(expect, sizeof(expect), "duchies/%s", j->duchy);
    dy_rpc_client_t *c = s_dial(e, host, port, expect);
    if (c == NULL)
        return S_RETRY;

    V2(FulfillRequisitionRequest__Header) h = V2E(FULFILL_REQUISITION_REQUEST__HEADER__INIT);
    V2(FulfillRequisitionRequest__Header__HonestMajorityShareShuffle) hh =
        V2E(FULFILL_REQUISITION_REQUEST__HEADER__HONEST_MAJORITY_SHARE_SHUFFLE__INIT);
    V2(EncryptedMessage) seed = V2E(ENCRYPTED_MESSAGE__INIT);
    h.name = j->req->name;
    h.requisition_fingerprint.data = j->fingerprint;
    h.requisition_fingerprint.len = 32;
    h.nonce = j->nonce;
    if (j->protocol == DY_MC_HMSS || j->protocol == DY_MC_HMSS_RO) {
        seed.ciphertext.data = j->seed_ct.data;
        seed.ciphertext.len = j->seed_ct.len;
        seed.type_url = (char *)"halo-duchy/v1/hmss-seed";
        hh.secret_seed = &seed;
        hh.register_count = j->register_count;
        hh.data_provider_certificate = e->cert_name;
        h.protocol_case = V2E(FULFILL_REQUISITION_REQUEST__HEADER__PROTOCOL_HONEST_MAJORITY_SHARE_SHUFFLE);
        h.honest_majority_share_shuffle = &hh;
    }
    V2(FulfillRequisitionRequest) req = V2E(FULFILL_REQUISITION_REQUEST__INIT);
    req.payload_case = V2E(FULFILL_REQUISITION_REQUEST__PAYLOAD_HEADER);
    req.header = &h;
    dy_rpc_body_t body = {.data = j->body.data, .len = j->body.len, .fd = -1};
    dy_rpc_status_t st;
    memset(&st, 0, sizeof(st));
    ProtobufCMessage *resp = NULL;
    double t0 = dy_now();
    int rc = dy_rpc_upload(c, S_SVC "RequisitionFulfillment/FulfillRequisition", &req.base, &body,
                           &v2(fulfill_requisition_response__descriptor), &resp, S_UPLOAD_MS,
                           &st);
    dy_rpc_client_destroy(&c);
    if (rc == 0) {
        int state = (int)((V2(FulfillRequisitionResponse) *)resp)->state;
        protobuf_c_message_free_unpacked(resp, NULL);
        log_info("%s: %zu bytes to %s in %.1f s: %s", j->req->name, j->body.len, j->duchy,
                 dy_now() - t0, state == V2E(REQUISITION__STATE__FULFILLED) ? "FULFILLED" : "?");
        return S_DONE;
    }
    log_warnx("%s: upload to %s: %s: %s", j->req->name, j->duchy, dy_wire_status_name(st.code),
              st.message);
    switch (st.code) {
    case DY_WIRE_STATUS_INVALID_ARGUMENT:
    case DY_WIRE_STATUS_PERMISSION_DENIED:
    case DY_WIRE_STATUS_UNAUTHENTICATED:
    case DY_WIRE_STATUS_NOT_FOUND:
        return S_GIVE_UP;
    case DY_WIRE_STATUS_FAILED_PRECONDITION:
        /* Another state (withdrawn, cancelled) or different data stored: a re-list says. */
        return S_RETRY;
    default: return S_RETRY;
    }
}

/* Records what this EDP contributed: DIR/edp/<id>/<measurement>.json. */
static void s_record(s_edp_t *e, const s_job_t *j)
{
    char d1[PATH_MAX], path[PATH_MAX + 80], tmp[PATH_MAX + 88];
    snprintf(d1, sizeof(d1), "%s/edp", e->dir);
    (void)mkdir(d1, 0700);
    snprintf(d1, sizeof(d1), "%s/edp/%s", e->dir, e->id);
    (void)mkdir(d1, 0700);
    snprintf(path, sizeof(path), "%s/%s.json", d1, j->measurement_id);
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    const dy_campaign_edp_t *data = &e->camp.edp[e->index];
    uint64_t events = 0;
    for (size_t i = 0; i < data->n; i++)
        events += data->events[i];
    FILE *f = fopen(tmp, "w");
    if (f == NULL) {
        log_warn("%s, ignoring", tmp);
        return;
    }
    fputs("{\"measurement\": ", f);
    dy_json_put_str(f, j->req->measurement);
    fputs(", \"requisition\": ", f);
    dy_json_put_str(f, j->req->name);
    fprintf(f, ", \"protocol\": \"%s\", \"duchy\": ", dy_mc_protocol_name(j->protocol));
    dy_json_put_str(f, j->duchy);
    fprintf(f, ", \"edp_index\": %d, \"reach\": %zu, \"events\": %llu, \"max_frequency\": %d",
            e->index, data->n, (unsigned long long)events, j->info.max_frequency);
    if (j->protocol == DY_MC_HMSS || j->protocol == DY_MC_HMSS_RO)
        fprintf(f, ", \"register_count\": %lld", (long long)j->register_count);
    else
        fprintf(f, ", \"sketch_registers\": %zu", j->registers);
    fprintf(f, ", \"bytes\": %zu}\n", j->body.len);
    if (fclose(f) != 0 || rename(tmp, path) < 0)
        log_warn("%s, ignoring", path);
}

/* Verifies and fulfils one requisition. */
static s_outcome_t s_fulfill(s_edp_t *e, const V2(Requisition) *r, char *why, size_t whylen)
{
    s_job_t j;
    memset(&j, 0, sizeof(j));
    j.req = r;
    s_outcome_t o = S_REFUSE;
    char prefix[DY_PARTY_ID_MAX + 16];
    snprintf(prefix, sizeof(prefix), "%s/requisitions/", e->party);
    const char *rid = s_segment(r->name, prefix);
    const char *slash = r->measurement ? strstr(r->measurement, "/measurements/") : NULL;
    j.measurement_id = slash ? s_segment(slash, "/measurements/") : NULL;
    if (rid == NULL || j.measurement_id == NULL
        || strncmp(r->measurement, "measurementConsumers/", 21) != 0) {
        snprintf(why, whylen, "malformed requisition or measurement name");
        goto out;
    }
    char mc_party[DY_PARTY_ID_MAX];
    snprintf(mc_party, sizeof(mc_party), "%.*s", (int)(slash - r->measurement), r->measurement);
    snprintf(j.computation_id, sizeof(j.computation_id), "computations/%s", j.measurement_id);
    snprintf(j.requisition_id, sizeof(j.requisition_id), "%s/requisitions/%s", j.computation_id,
             rid);

    /* The signed measurement spec and the encrypted requisition spec. */
    const V2(SignedMessage) *sm = r->measurement_spec;
    if (sm == NULL || sm->message == NULL || sm->message->type_url == NULL
        || strcmp(sm->message->type_url, S_TYPE_PREFIX "MeasurementSpec") != 0
        || r->encrypted_requisition_spec == NULL) {
        snprintf(why, whylen, "no signed measurement spec or requisition spec");
        goto out;
    }
    j.spec = sm->message->value.data;
    j.spec_len = sm->message->value.len;
    uint8_t spec_hash[32], claimed[32], reqspec_hash[32];
    const V2(EncryptedMessage) *em = r->encrypted_requisition_spec;
    if (dy_mc_reqspec_open(e->enc_priv, e->party, em->ciphertext.data, em->ciphertext.len,
                           &j.nonce, claimed) < 0) {
        snprintf(why, whylen, "the requisition spec does not decrypt");
        goto out;
    }
    (void)dy_mc_sha256(j.spec, j.spec_len, spec_hash);
    if (memcmp(spec_hash, claimed, 32) != 0) {
        snprintf(why, whylen, "the requisition spec names another measurement spec");
        goto out;
    }
    bool refused;
    X509 *mc_cert = s_cert(e, r->measurement_consumer_certificate, mc_party, &refused);
    if (mc_cert == NULL) {
        snprintf(why, whylen, "the MC's certificate is %s", refused ? "refused" : "unavailable");
        o = refused ? S_REFUSE : S_RETRY;
        goto out;
    }
    int rc = sm->signature_algorithm_oid && strcmp(sm->signature_algorithm_oid, DY_SIG_OID) == 0
                 ? dy_mc_spec_verify(X509_get0_pubkey(mc_cert), j.spec, j.spec_len,
                                     sm->signature.data, sm->signature.len)
                 : -EBADMSG;
    X509_free(mc_cert);
    if (rc < 0) {
        snprintf(why, whylen, "the MC's signature on the measurement spec does not verify");
        goto out;
    }
    if (dy_mc_spec_parse(j.spec, j.spec_len, &j.info) < 0) {
        snprintf(why, whylen, "the measurement spec is not one this EDP can fulfil");
        goto out;
    }
    uint8_t nh[32];
    bool found = false;
    (void)dy_mc_nonce_hash(j.nonce, nh);
    for (size_t i = 0; i < j.info.nnonce_hashes; i++)
        found |= memcmp(nh, j.info.nonce_hashes[i], 32) == 0;
    if (!found) {
        snprintf(why, whylen, "the nonce's hash is not in the measurement spec");
        goto out;
    }
    (void)dy_mc_sha256(em->ciphertext.data, em->ciphertext.len, reqspec_hash);
    (void)dy_mc_fingerprint(j.spec, j.spec_len, reqspec_hash, j.fingerprint);
    if (s_job_protocol(&j) < 0) {
        snprintf(why, whylen, "unsupported protocol");
        goto out;
    }
    if (s_corrupt_applies(e->corrupt, j.protocol) && e->corrupted < e->corrupt_limit)
        j.corrupt = e->corrupt;
    o = dy_mc_protocol_is_llv2(j.protocol) ? s_llv2(e, &j) : s_hmss(e, &j);
    if (o != S_DONE) {
        snprintf(why, whylen, "the duchies' keys or this EDP's data failed (see above)");
        goto out;
    }
    o = s_upload(e, &j);
    if (j.corrupt != S_CORRUPT_NONE && o != S_RETRY) {
        e->corrupted++;
        log_warnx("%s: corrupted fulfilment %d of %d (%s) %s", r->name, e->corrupted,
                  e->corrupt_limit, s_corrupt_names[j.corrupt],
                  o == S_DONE ? "accepted by the duchy" : "refused by the duchy");
        if (o != S_DONE) {
            /* The duchy refused the bad upload and stored nothing: fulfil again (with good
             * data once the limit is used up), as an EDP that fixed its data would. */
            snprintf(why, whylen, "the corrupted upload was refused");
            o = S_RETRY;
            goto out;
        }
    }
    if (o == S_DONE)
        s_record(e, &j);
    else
        snprintf(why, whylen, "upload failed");
out:
    dy_mc_spec_info_free(&j.info);
    dy_buf_free(&j.body);
    dy_buf_free(&j.seed_ct);
    return o;
}

static int s_refuse(s_edp_t *e, const char *name, const char *message, int *ret_state)
{
    V2(Requisition__Refusal) ref = V2E(REQUISITION__REFUSAL__INIT);
    ref.justification = message ? V2E(REQUISITION__REFUSAL__JUSTIFICATION__SPEC_INVALID)
                                : V2E(REQUISITION__REFUSAL__JUSTIFICATION__DECLINED);
    ref.message = (char *)(message ? message : "declined by the operator");
    V2(RefuseRequisitionRequest) req = V2E(REFUSE_REQUISITION_REQUEST__INIT);
    req.name = (char *)name;
    req.refusal = &ref;
    ProtobufCMessage *resp = NULL;
    dy_rpc_status_t st;
    if (s_call(e, S_SVC "Requisitions/RefuseRequisition", &req.base,
               &v2(requisition__descriptor), &resp, &st) < 0) {
        log_warnx("%s: RefuseRequisition: %s: %s", name, dy_wire_status_name(st.code),
                  st.message);
        return -1;
    }
    if (ret_state != NULL)
        *ret_state = (int)((V2(Requisition) *)resp)->state;
    protobuf_c_message_free_unpacked(resp, NULL);
    return 0;
}

/* ---- run loop ------------------------------------------------------------------------------ */

static s_seen_t *s_seen(s_edp_t *e, const char *name)
{
    for (size_t i = 0; i < e->nseen; i++)
        if (strcmp(e->seen[i].name, name) == 0)
            return &e->seen[i];
    if (e->nseen == S_SEEN_MAX) { /* forget the oldest finished entry */
        size_t k = 0;
        while (k < e->nseen && !e->seen[k].finished)
            k++;
        if (k == e->nseen)
            return NULL;
        memmove(&e->seen[k], &e->seen[k + 1], (e->nseen - k - 1) * sizeof(e->seen[0]));
        e->nseen--;
    }
    s_seen_t *s = &e->seen[e->nseen++];
    memset(s, 0, sizeof(*s));
    snprintf(s->name, sizeof(s->name), "%s", name);
    return s;
}

/* One pass over the UNFULFILLED requisitions.  0, or -1 if the Kingdom could not be read. */
static int s_pass(s_edp_t *e)
{
    char token[256] = "";
    do {
        V2(Requisition__State) states[1] = {V2E(REQUISITION__STATE__UNFULFILLED)};
        V2(ListRequisitionsRequest__Filter) filter = V2E(LIST_REQUISITIONS_REQUEST__FILTER__INIT);
        filter.n_states = 1;
        filter.states = states;
        V2(ListRequisitionsRequest) req = V2E(LIST_REQUISITIONS_REQUEST__INIT);
        req.parent = e->party;
        req.page_size = 50;
        req.page_token = token;
        req.filter = &filter;
        ProtobufCMessage *resp = NULL;
        dy_rpc_status_t st;
        if (s_call(e, S_SVC "Requisitions/ListRequisitions", &req.base,
                   &v2(list_requisitions_response__descriptor), &resp, &st) < 0) {
            log_warnx("ListRequisitions: %s: %s", dy_wire_status_name(st.code), st.message);
            return -1;
        }
        V2(ListRequisitionsResponse) *l = (V2(ListRequisitionsResponse) *)resp;
        for (size_t i = 0; i < l->n_requisitions && !s_stop; i++) {
            const V2(Requisition) *r = l->requisitions[i];
            if (r->state != V2E(REQUISITION__STATE__UNFULFILLED) || r->name == NULL)
                continue;
            s_seen_t *s = s_seen(e, r->name);
            if (s == NULL || s->finished || dy_now() < s->next_try)
                continue;
            char why[256] = "";
            s->attempts++;
            log_info("%s: fulfilling (attempt %d)", r->name, s->attempts);
            s_outcome_t o = s_fulfill(e, r, why, sizeof(why));
            switch (o) {
            case S_DONE: s->finished = true; break;
            case S_REFUSE:
                log_warnx("%s: refusing: %s", r->name, why);
                if (s_refuse(e, r->name, why, NULL) == 0)
                    s->finished = true;
                else
                    s->next_try = dy_now() + 2;
                e->failures++;
                break;
            case S_GIVE_UP:
                log_warnx("%s: giving up: %s", r->name, why);
                s->finished = true;
                e->failures++;
                break;
            case S_RETRY: {
                double backoff = s->attempts < 6 ? (double)(1 << s->attempts) : 60.0;
                log_warnx("%s: %s; retrying in %.0f s", r->name, why, backoff);
                s->next_try = dy_now() + backoff;
                e->failures++;
                break;
            }
            }
        }
        snprintf(token, sizeof(token), "%s", l->next_page_token ? l->next_page_token : "");
        protobuf_c_message_free_unpacked(resp, NULL);
    } while (token[0] != '\0' && !s_stop);
    return 0;
}

static int s_setup(s_edp_t *e, bool keys)
{
    char err[512] = "", path[PATH_MAX];
    if (dy_fed_load(e->dir, &e->fed, err, sizeof(err)) < 0) {
        log_warnx("%s", err);
        return -1;
    }
    e->index = dy_fed_edp_index(&e->fed, e->id);
    if (e->index < 0) {
        log_warnx("EDP \"%s\" is not in %s/federation.json", e->id, e->dir);
        return -1;
    }
    const dy_fed_party_t *me = &e->fed.edps[e->index];
    snprintf(e->party, sizeof(e->party), "dataProviders/%s", e->id);
    (void)dy_fed_cert_name(e->party, me->certificate, e->cert_name, sizeof(e->cert_name));
    dy_parties_t *parties = dy_parties_load(e->fed.parties, err, sizeof(err));
    if (parties == NULL) {
        log_warnx("party table: %s", err);
        return -1;
    }
    dy_tls_conf_t tc = {.cert_path = me->cert, .key_path = me->key,
                        .trusted_ca_path = e->fed.trusted_ca, .parties = parties,
                        .expected_name = e->fed.tls_name};
    e->ctx = dy_tls_client_ctx(&tc, err, sizeof(err));
    dy_parties_destroy(&parties);
    if (e->ctx == NULL) {
        log_warnx("TLS client context: %s", err);
        return -1;
    }
    if (!keys)
        return 0;
    e->trust = dy_mc_trust_new(e->fed.trusted_ca, e->fed.parties, err, sizeof(err));
    if (e->trust == NULL) {
        log_warnx("trust anchors: %s", err);
        return -1;
    }
    if (dy_fed_pki_path(&e->fed, e->id, "enc.key", path, sizeof(path)) < 0
        || dy_mc_load_enc_priv(path, e->enc_priv) < 0) {
        log_warnx("%s: cannot load the EDP's encryption key", path);
        return -1;
    }
    (void)dy_fed_pki_path(&e->fed, e->id, "sign.key", path, sizeof(path));
    if ((e->sign = dy_mc_load_sign_key(path)) == NULL) {
        log_warnx("%s: cannot load the EDP's signing key", path);
        return -1;
    }
    if ((e->ec = dy_ec_new()) == NULL) {
        log_warnx("cannot set up the curve");
        return -1;
    }
    dy_campaign_params_t p = {.population = e->fed.population, .edps = (int)e->fed.nedps,
                              .reach = e->fed.reach, .max_events = e->fed.max_events,
                              .seed = e->fed.seed};
    if (dy_campaign_generate(&p, &e->camp) < 0) {
        log_warnx("cannot generate the campaign");
        return -1;
    }
    log_info("EDP %s (index %d of %zu): %zu people reached", e->id, e->index, e->fed.nedps,
             e->camp.edp[e->index].n);
    return 0;
}

static void s_teardown(s_edp_t *e)
{
    dy_rpc_client_destroy(&e->kingdom);
    SSL_CTX_free(e->ctx);
    dy_mc_trust_destroy(&e->trust);
    EVP_PKEY_free(e->sign);
    dy_ec_destroy(&e->ec);
    dy_campaign_free(&e->camp);
    dy_fvec_index_free(&e->fvix);
    OPENSSL_cleanse(e->enc_priv, sizeof(e->enc_priv));
    dy_fed_free(&e->fed);
}

enum { O_DIR = 1000, O_ID, O_ONCE, O_POLL, O_THREADS, O_JSON, O_HELP, O_CORRUPT, O_CLIMIT };

/* --corrupt-limit / $DY_EDP_CORRUPT_LIMIT: 0 or -1. */
static int s_parse_limit(const char *v, int *ret)
{
    char *end;
    long n = strtol(v, &end, 10);
    if (*end != '\0' || end == v || n < 0 || n > 1000000)
        return -1;
    *ret = (int)n;
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2)
        s_usage_die("a command is required");
    const char *cmd = argv[1];
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
        fputs(s_usage, stdout);
        return 0;
    }
    bool run = strcmp(cmd, "run") == 0;
    if (!run && strcmp(cmd, "refuse") != 0)
        s_usage_die("unknown command \"%s\"", cmd);
    static const struct option opts[] = {
        {"dir", required_argument, NULL, O_DIR},       {"id", required_argument, NULL, O_ID},
        {"once", no_argument, NULL, O_ONCE},           {"poll-ms", required_argument, NULL, O_POLL},
        {"threads", required_argument, NULL, O_THREADS}, {"json", no_argument, NULL, O_JSON},
        {"help", no_argument, NULL, O_HELP},           {"verbose", no_argument, NULL, 'v'},
        {"corrupt", required_argument, NULL, O_CORRUPT},
        {"corrupt-limit", required_argument, NULL, O_CLIMIT},
        {NULL, 0, NULL, 0},
    };
    static s_edp_t e; /* large (the seen table): not on the stack */
    long poll_ms = 1000;
    bool once = false, verbose = false;
    e.threads = 2;
    e.corrupt_limit = 1;
    bool corrupt_set = false, limit_set = false;
    int c;
    opterr = 0;
    optind = 2;
    while ((c = getopt_long(argc, argv, ":v", opts, NULL)) != -1) {
        if (!run && (c == O_ONCE || c == O_POLL || c == O_THREADS || c == O_CORRUPT
                     || c == O_CLIMIT))
            s_usage_die("refuse: %s is an option of run", argv[optind - 1]);
        char *end;
        switch (c) {
        case O_DIR: e.dir = optarg; break;
        case O_ID: {
            char party[DY_PARTY_ID_MAX];
            snprintf(party, sizeof(party), "dataProviders/%.64s", optarg);
            if (strlen(optarg) > 63 || !dy_party_id_valid(party))
                s_usage_die("--id \"%s\" is not a valid id", optarg);
            e.id = optarg;
            break;
        }
        case O_ONCE: once = true; break;
        case O_POLL:
            poll_ms = strtol(optarg, &end, 10);
            if (*end != '\0' || end == optarg || poll_ms < 10 || poll_ms > 600000)
                s_usage_die("--poll-ms must be an integer in [10, 600000]");
            break;
        case O_THREADS:
            e.threads = (int)strtol(optarg, &end, 10);
            if (*end != '\0' || end == optarg || e.threads < 1 || e.threads > 256)
                s_usage_die("--threads must be an integer in [1, 256]");
            break;
        case O_JSON: e.json = true; break;
        case O_CORRUPT:
            if (s_corrupt_parse(optarg, &e.corrupt) < 0)
                s_usage_die("--corrupt: not-on-curve, wrong-count, hmss-bad-share, "
                            "bad-signature or none");
            corrupt_set = true;
            break;
        case O_CLIMIT:
            if (s_parse_limit(optarg, &e.corrupt_limit) < 0)
                s_usage_die("--corrupt-limit must be an integer in [0, 1000000]");
            limit_set = true;
            break;
        case 'v': verbose = true; break;
        case O_HELP: fputs(s_usage, stdout); return 0;
        case ':': s_usage_die("%s needs a value", argv[optind - 1]);
        default: s_usage_die("unknown option %s", argv[optind - 1]);
        }
    }
    if (e.dir == NULL || e.id == NULL)
        s_usage_die("%s: --dir and --id are required", cmd);
    if (run && optind != argc)
        s_usage_die("run takes no arguments");
    if (!run && optind != argc - 1)
        s_usage_die("refuse takes one REQUISITION");
    const char *env = getenv("DY_EDP_CORRUPT");
    if (run && !corrupt_set && env != NULL && env[0] != '\0'
        && s_corrupt_parse(env, &e.corrupt) < 0)
        s_usage_die("DY_EDP_CORRUPT=\"%s\" is not a corruption mode", env);
    env = getenv("DY_EDP_CORRUPT_LIMIT");
    if (run && !limit_set && env != NULL && env[0] != '\0'
        && s_parse_limit(env, &e.corrupt_limit) < 0)
        s_usage_die("DY_EDP_CORRUPT_LIMIT=\"%s\" is not an integer in [0, 1000000]", env);

    dy_log_init("edp", NULL, verbose);
    dy_log_set_field("edp", e.id);
    signal(SIGPIPE, SIG_IGN);
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = s_on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    int ret = 1;
    if (s_setup(&e, run) < 0)
        goto out;
    if (!run) {
        const char *arg = argv[optind];
        char name[256];
        if (strchr(arg, '/') != NULL)
            snprintf(name, sizeof(name), "%s", arg);
        else
            snprintf(name, sizeof(name), "%s/requisitions/%s", e.party, arg);
        int state = 0;
        if (s_refuse(&e, name, NULL, &state) < 0)
            goto out;
        log_info("%s refused", name);
        if (e.json) {
            fputs("{\"requisition\": ", stdout);
            dy_json_put_str(stdout, name);
            printf(", \"state\": \"%s\"}\n",
                   state == V2E(REQUISITION__STATE__REFUSED) ? "REFUSED" : "UNKNOWN");
        }
        ret = 0;
        goto out;
    }
    if (e.corrupt != S_CORRUPT_NONE)
        log_warnx("TESTING: corrupting the first %d fulfilments it applies to (%s)",
                  e.corrupt_limit, s_corrupt_names[e.corrupt]);
    log_info("polling the Kingdom every %ld ms", poll_ms);
    while (!s_stop) {
        int rc = s_pass(&e);
        if (once) {
            ret = rc == 0 && e.failures == 0 ? 0 : 1;
            goto out;
        }
        for (long waited = 0; waited < poll_ms && !s_stop; waited += 100) {
            struct timespec ts = {0, (poll_ms - waited < 100 ? poll_ms - waited : 100) * 1000000L};
            nanosleep(&ts, NULL);
        }
    }
    log_info("stopping on signal");
    ret = 0;
out:
    s_teardown(&e);
    if (e.json && !run && ret != 0)
        printf("{\"command\": \"refuse\", \"error\": \"failed (see stderr)\"}\n");
    return ret;
}
