/* fuzz_fixture.h - the fixed world the libFuzzer targets of tests/fuzz/ and their seed
 * generator (fuzz_seeds.c) share, so that a committed seed still means the same thing in
 * every later run: a federation of three duchies (worker1, worker2 and the aggregator), one
 * data provider (edp1) and one measurement consumer, every key derived from a label
 * (SHA-256 of "halo-duchy-fuzz/<label>"), certificates made in-process from those keys
 * (the roots' SKIDs, and so the party table, are the same in every run; the ECDSA
 * signatures inside are not, which verification does not care about), Kingdom
 * Computations built from a small description (fz_comp_t), and per duchy an in-memory
 * store holding a table of computations at chosen stages (fz_coord_open), which the
 * coordinator's call handlers run against.
 *
 * Header-only (every function static and DY_UNUSED) so each target and the generator get
 * their own copy.  Randomness: fz_rng_reset installs a deterministic dy_rand_bytes source,
 * which the targets reset before each input so a run depends on its input only.  Nothing
 * here is secret: these keys exist for tests only.
 */
#ifndef DY_FUZZ_FIXTURE_H
#define DY_FUZZ_FIXTURE_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/sha.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "coord.h"
#include "crypto/ec.h"
#include "crypto/ecies.h"
#include "crypto/sig.h"
#include "details.h"
#include "kingdom_fx.h"
#include "mc_util.h"
#include "stages.h"
#include "store.h"

#include "duchy.pb-c.h"
#include "public.pb-c.h"
#include "system.pb-c.h"

/* Aborts (a finding for libFuzzer, a failure for the replay) when an invariant breaks. */
#define FZ_CHECK(cond)                                                                             \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: invariant violated: %s\n", __FILE__, __LINE__, #cond);         \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

#define FZ_SYS(x) Wfa__Measurement__System__V1alpha__##x
#define FZ_SYSI(x) WFA__MEASUREMENT__SYSTEM__V1ALPHA__##x
#define FZ_V2(x) Wfa__Measurement__Api__V2alpha__##x
#define FZ_V2I(x) WFA__MEASUREMENT__API__V2ALPHA__##x

/* The parties.  Duchy index i: 0 worker1 (LLv2 NA, HMSS first non-aggregator), 1 worker2
 * (NA, second non-aggregator), 2 aggregator.  Party index 3 is the data provider. */
#define FZ_NDUCHIES 3
#define FZ_NPARTIES 4
#define FZ_EDP 3
static const char *const fz_duchy[FZ_NDUCHIES] = {"worker1", "worker2", "aggregator"};
#define FZ_AGG_ID "aggregator"
#define FZ_FNA_ID "worker1"
#define FZ_SNA_ID "worker2"
#define FZ_EDP_ID "edp1"
#define FZ_EDP_PARTY "dataProviders/edp1"
#define FZ_EDP_CERT "dataProviders/edp1/certificates/sign"

/* Sketch parameters of every fixture LLv2 computation and stage context. */
#define FZ_DECAY 12.0
#define FZ_SKETCH 1000
/* HMSS ring modulus of every fixture computation (prime, so reach-only accepts it too). */
#define FZ_Q 127

/* ---- deterministic randomness --------------------------------------------------------- */

static uint64_t fz_rng_state;

DY_UNUSED static int fz_rng_fill(void *arg, uint8_t *buf, size_t len)
{
    (void)arg;
    for (size_t i = 0; i < len; i += 8) {
        /* splitmix64: not cryptographic; only reproducibility matters here. */
        uint64_t z = (fz_rng_state += UINT64_C(0x9e3779b97f4a7c15));
        z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
        z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
        z ^= z >> 31;
        size_t n = len - i < 8 ? len - i : 8;
        memcpy(buf + i, &z, n);
    }
    return 0;
}

/* Makes dy_rand_bytes a fixed stream starting from seed (engine scalars, ECIES ephemeral
 * keys).  OpenSSL's own generator (ECDSA nonces) is untouched. */
DY_UNUSED static void fz_rng_reset(uint64_t seed)
{
    fz_rng_state = seed;
    dy_rand_set_source(fz_rng_fill, NULL);
}

/* ---- keys and certificates ----------------------------------------------------------- */

/* A valid P-256 private scalar derived from label (hashed again until it is in range). */
DY_UNUSED static void fz_priv(const char *label, uint8_t out[32])
{
    char text[160];
    snprintf(text, sizeof(text), "halo-duchy-fuzz/%s", label);
    SHA256((const unsigned char *)text, strlen(text), out);
    uint8_t pub[33];
    while (dy_ecies_pub_from_priv(out, pub) < 0)
        SHA256(out, 32, out);
}

typedef struct {
    dy_ec_t *ec;                     /* owned */
    uint8_t llv2_x[FZ_NDUCHIES][32]; /* ElGamal secrets, by duchy index */
    uint8_t llv2_pub[FZ_NDUCHIES][33];
    uint8_t hmss_priv[2][32]; /* HMSS ECIES keys of worker1, worker2 */
    uint8_t hmss_pub[2][33];
    uint8_t mc_priv[32], mc_pub[33];   /* the MC's result key */
    uint8_t edp_priv[32], edp_pub[33]; /* the EDP's requisition-spec key */
    uint8_t master[32];                /* a duchy master key (sealed secrets) */
    EVP_PKEY *root[FZ_NPARTIES];       /* owned: the parties' root keys */
    EVP_PKEY *sign[FZ_NPARTIES];       /* owned: their signing keys */
    X509 *root_cert[FZ_NPARTIES];      /* owned */
    X509 *sign_cert[FZ_NPARTIES];      /* owned */
    dy_buf_t sign_der[FZ_NPARTIES];    /* DER of sign_cert */
    dy_mc_trust_t *trust;              /* owned: trusted roots and party table */
} fz_world_t;

static fz_world_t fz_w;
static bool fz_w_ready;

DY_UNUSED static const char *fz_party(int i)
{
    static const char *const p[FZ_NPARTIES] = {"duchies/worker1", "duchies/worker2",
                                               "duchies/aggregator", FZ_EDP_PARTY};
    return p[i];
}

DY_UNUSED static EVP_PKEY *fz_sign_key(const char *label)
{
    uint8_t priv[32];
    fz_priv(label, priv);
    EVP_PKEY *k = dy_sig_key_from_priv(priv);
    FZ_CHECK(k != NULL);
    return k;
}

DY_UNUSED static void fz_ext(X509 *c, X509 *issuer, int nid, const char *value)
{
    X509V3_CTX v;
    X509V3_set_ctx(&v, issuer ? issuer : c, c, NULL, NULL, 0);
    X509_EXTENSION *e = X509V3_EXT_conf_nid(NULL, &v, nid, value);
    FZ_CHECK(e != NULL && X509_add_ext(c, e, -1) == 1);
    X509_EXTENSION_free(e);
}

/* A root (issuer NULL: self-signed CA, SKID = hash of the key) or a signing leaf issued by
 * issuer (keyUsage digitalSignature, AKI = the root's SKID), valid 2020-2120, as
 * deploy/mkpki makes them. */
DY_UNUSED static X509 *fz_cert(EVP_PKEY *key, const char *cn, X509 *issuer, EVP_PKEY *issuer_key)
{
    X509 *c = X509_new();
    FZ_CHECK(c != NULL && X509_set_version(c, 2) == 1);
    FZ_CHECK(ASN1_INTEGER_set(X509_get_serialNumber(c), issuer ? 2 : 1) == 1);
    X509_NAME *n = X509_NAME_new();
    FZ_CHECK(n != NULL && X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC,
                                                     (const unsigned char *)cn, -1, -1, 0) == 1);
    FZ_CHECK(X509_set_subject_name(c, n) == 1);
    FZ_CHECK(X509_set_issuer_name(c, issuer ? X509_get_subject_name(issuer) : n) == 1);
    X509_NAME_free(n);
    FZ_CHECK(ASN1_TIME_set_string_X509(X509_getm_notBefore(c), "20200101000000Z") == 1);
    FZ_CHECK(ASN1_TIME_set_string_X509(X509_getm_notAfter(c), "21200101000000Z") == 1);
    FZ_CHECK(X509_set_pubkey(c, key) == 1);
    if (issuer == NULL) {
        fz_ext(c, NULL, NID_basic_constraints, "critical,CA:TRUE,pathlen:0");
        fz_ext(c, NULL, NID_key_usage, "critical,keyCertSign,cRLSign");
        fz_ext(c, NULL, NID_subject_key_identifier, "hash");
    } else {
        fz_ext(c, issuer, NID_basic_constraints, "critical,CA:FALSE");
        fz_ext(c, issuer, NID_key_usage, "critical,digitalSignature");
        fz_ext(c, issuer, NID_subject_key_identifier, "hash");
        fz_ext(c, issuer, NID_authority_key_identifier, "keyid:always");
    }
    FZ_CHECK(X509_sign(c, issuer_key ? issuer_key : key, EVP_sha256()) > 0);
    return c;
}

/* Writes the roots and the party table to a temporary directory, loads them as the
 * trust anchors and removes the files again. */
DY_UNUSED static dy_mc_trust_t *fz_make_trust(void)
{
    const char *tmp = getenv("TMPDIR");
    char dir[512], ca[600], parties[600], err[256];
    snprintf(dir, sizeof(dir), "%s/dy-fuzz-pki-XXXXXX", tmp && tmp[0] ? tmp : "/tmp");
    FZ_CHECK(mkdtemp(dir) != NULL);
    snprintf(ca, sizeof(ca), "%s/trusted-ca.pem", dir);
    snprintf(parties, sizeof(parties), "%s/parties.txt", dir);
    FILE *f = fopen(ca, "w"), *p = fopen(parties, "w");
    FZ_CHECK(f != NULL && p != NULL);
    for (int i = 0; i < FZ_NPARTIES; i++) {
        FZ_CHECK(PEM_write_X509(f, fz_w.root_cert[i]) == 1);
        const ASN1_OCTET_STRING *skid = X509_get0_subject_key_id(fz_w.root_cert[i]);
        FZ_CHECK(skid != NULL);
        char hex[2 * 64 + 1];
        FZ_CHECK(ASN1_STRING_length(skid) <= 64);
        dy_hex(ASN1_STRING_get0_data(skid), (size_t)ASN1_STRING_length(skid), hex);
        fprintf(p, "%s %s\n", hex, fz_party(i));
    }
    fclose(f);
    fclose(p);
    dy_mc_trust_t *t = dy_mc_trust_new(ca, parties, err, sizeof(err));
    if (t == NULL)
        fprintf(stderr, "fuzz fixture: %s\n", err);
    FZ_CHECK(t != NULL);
    unlink(ca);
    unlink(parties);
    rmdir(dir);
    return t;
}

DY_UNUSED static void fz_world_free(void)
{
    if (!fz_w_ready)
        return;
    for (int i = 0; i < FZ_NPARTIES; i++) {
        EVP_PKEY_free(fz_w.root[i]);
        EVP_PKEY_free(fz_w.sign[i]);
        X509_free(fz_w.root_cert[i]);
        X509_free(fz_w.sign_cert[i]);
        dy_buf_free(&fz_w.sign_der[i]);
    }
    dy_mc_trust_destroy(&fz_w.trust);
    dy_ec_destroy(&fz_w.ec);
    fz_w_ready = false;
}

/* The world, made on first use and freed at exit (so leak checkers see nothing). */
DY_UNUSED static const fz_world_t *fz_world(void)
{
    if (fz_w_ready)
        return &fz_w;
    fz_w.ec = dy_ec_new();
    FZ_CHECK(fz_w.ec != NULL);
    char label[64];
    for (int i = 0; i < FZ_NDUCHIES; i++) {
        snprintf(label, sizeof(label), "elgamal/%s", fz_duchy[i]);
        fz_priv(label, fz_w.llv2_x[i]);
        FZ_CHECK(dy_ecies_pub_from_priv(fz_w.llv2_x[i], fz_w.llv2_pub[i]) == 0);
    }
    for (int i = 0; i < 2; i++) {
        snprintf(label, sizeof(label), "hmss-enc/%s", fz_duchy[i]);
        fz_priv(label, fz_w.hmss_priv[i]);
        FZ_CHECK(dy_ecies_pub_from_priv(fz_w.hmss_priv[i], fz_w.hmss_pub[i]) == 0);
    }
    fz_priv("mc/enc", fz_w.mc_priv);
    FZ_CHECK(dy_ecies_pub_from_priv(fz_w.mc_priv, fz_w.mc_pub) == 0);
    fz_priv("edp1/enc", fz_w.edp_priv);
    FZ_CHECK(dy_ecies_pub_from_priv(fz_w.edp_priv, fz_w.edp_pub) == 0);
    fz_priv("master", fz_w.master);
    for (int i = 0; i < FZ_NPARTIES; i++) {
        snprintf(label, sizeof(label), "%s/root", fz_party(i));
        fz_w.root[i] = fz_sign_key(label);
        snprintf(label, sizeof(label), "%s/sign", fz_party(i));
        fz_w.sign[i] = fz_sign_key(label);
        char cn[96];
        snprintf(cn, sizeof(cn), "%s root", fz_party(i));
        fz_w.root_cert[i] = fz_cert(fz_w.root[i], cn, NULL, NULL);
        snprintf(cn, sizeof(cn), "%s sign", fz_party(i));
        fz_w.sign_cert[i] = fz_cert(fz_w.sign[i], cn, fz_w.root_cert[i], fz_w.root[i]);
        FZ_CHECK(dy_mc_cert_der(fz_w.sign_cert[i], &fz_w.sign_der[i]) == 0);
    }
    fz_w.trust = fz_make_trust();
    fz_w_ready = true;
    atexit(fz_world_free);
    return &fz_w;
}

/* ---- names ------------------------------------------------------------------------------ */

/* The external id text of v (11 base64url characters). */
DY_UNUSED static void fz_id(uint64_t v, char out[DY_EXT_ID_LEN + 1])
{
    dy_ext_id_encode(v, out);
}

/* Requisition i of computation c has external id c * 16 + i (i < 16). */
DY_UNUSED static uint64_t fz_req_id(uint64_t comp, size_t i)
{
    return comp * 16 + i;
}

/* Its nonce (nonzero) and the SHA-256 of the nonce's 8 big-endian bytes. */
DY_UNUSED static uint64_t fz_nonce(uint64_t comp, size_t i)
{
    return fz_req_id(comp, i) * 7 + 1;
}

DY_UNUSED static void fz_be64(uint64_t v, uint8_t out[8])
{
    for (int i = 0; i < 8; i++)
        out[i] = (uint8_t)(v >> (56 - 8 * i));
}

DY_UNUSED static void fz_nonce_hash(uint64_t nonce, uint8_t out[32])
{
    uint8_t be[8];
    fz_be64(nonce, be);
    SHA256(be, 8, out);
}

/* The requisition_spec_hash the Kingdom lists for requisition i of comp. */
DY_UNUSED static void fz_reqspec_hash(uint64_t comp, size_t i, uint8_t out[32])
{
    uint8_t b[16];
    memcpy(b, "reqspec:", 8);
    fz_be64(fz_req_id(comp, i), b + 8);
    SHA256(b, sizeof(b), out);
}

/* ---- Kingdom Computations ------------------------------------------------------------------ */

/* A Computation as the Kingdom would send it. */
typedef struct {
    uint64_t id;      /* external computation id */
    int protocol;     /* DY_PROTO_* */
    bool rf;          /* reach and frequency (else reach) */
    int K;            /* maximum frequency when rf */
    bool noise;       /* GEOMETRIC with epsilon 1 (else NONE) */
    int state;        /* Computation.State */
    bool keys;        /* participants have set their requisition params */
    bool signed_keys; /* LLv2: with a key signature and the certificate DER */
    size_t nreq;      /* requisitions (< 16) */
    bool fulfilled;   /* requisitions FULFILLED (nonces set) */
} fz_comp_t;

/* HMSS requisitions go to the first non-aggregator when their id is even (PROTOCOL.md
 * §3.3), LLv2 ones to worker1. */
DY_UNUSED static int fz_req_duchy(const fz_comp_t *c, size_t i)
{
    if (c->protocol == DY_PROTO_HMSS)
        return fz_req_id(c->id, i) % 2 == 0 ? 0 : 1;
    return 0;
}

DY_UNUSED static uint8_t *fz_pack(const ProtobufCMessage *m, size_t *ret_len)
{
    *ret_len = protobuf_c_message_get_packed_size(m);
    uint8_t *b = malloc(*ret_len + 1);
    FZ_CHECK(b != NULL);
    protobuf_c_message_pack(m, b);
    return b;
}

/* G of P-256, compressed. */
static const uint8_t fz_g[33] = {
    0x03, 0x6b, 0x17, 0xd1, 0xf2, 0xe1, 0x2c, 0x42, 0x47, 0xf8, 0xbc,
    0xe6, 0xe5, 0x63, 0xa4, 0x40, 0xf2, 0x77, 0x03, 0x7d, 0x81, 0x2d,
    0xeb, 0x33, 0xa0, 0xf4, 0xa1, 0x39, 0x45, 0xd8, 0x98, 0xc2, 0x96,
};

/* The serialized MeasurementSpec of c (caller frees). */
DY_UNUSED static uint8_t *fz_spec(const fz_comp_t *c, size_t *ret_len)
{
    const fz_world_t *w = fz_world();
    FZ_V2(MeasurementSpec) s = FZ_V2I(MEASUREMENT_SPEC__INIT);
    FZ_V2(DifferentialPrivacyParams) dp = FZ_V2I(DIFFERENTIAL_PRIVACY_PARAMS__INIT);
    dp.epsilon = 1.0;
    dp.delta = 1e-9;
    FZ_V2(MeasurementSpec__Reach) r = FZ_V2I(MEASUREMENT_SPEC__REACH__INIT);
    FZ_V2(MeasurementSpec__ReachAndFrequency)
    rf = FZ_V2I(MEASUREMENT_SPEC__REACH_AND_FREQUENCY__INIT);
    if (c->rf) {
        rf.reach_privacy_params = &dp;
        rf.frequency_privacy_params = &dp;
        rf.maximum_frequency = c->K;
        s.measurement_type_case = FZ_V2I(MEASUREMENT_SPEC__MEASUREMENT_TYPE_REACH_AND_FREQUENCY);
        s.reach_and_frequency = &rf;
    } else {
        r.privacy_params = &dp;
        s.measurement_type_case = FZ_V2I(MEASUREMENT_SPEC__MEASUREMENT_TYPE_REACH);
        s.reach = &r;
    }
    FZ_V2(MeasurementSpec__VidSamplingInterval)
    vid = FZ_V2I(MEASUREMENT_SPEC__VID_SAMPLING_INTERVAL__INIT);
    vid.start = 0.0f;
    vid.width = 1.0f;
    s.vid_sampling_interval = &vid;
    FZ_V2(EncryptionPublicKey) k = FZ_V2I(ENCRYPTION_PUBLIC_KEY__INIT);
    k.format = FZ_V2I(ENCRYPTION_PUBLIC_KEY__FORMAT__ECIES_P256);
    k.data.data = (uint8_t *)w->mc_pub;
    k.data.len = 33;
    size_t klen;
    uint8_t *kbytes = fz_pack(&k.base, &klen);
    Google__Protobuf__Any any = GOOGLE__PROTOBUF__ANY__INIT;
    any.type_url = (char *)"type.googleapis.com/wfa.measurement.api.v2alpha.EncryptionPublicKey";
    any.value.data = kbytes;
    any.value.len = klen;
    s.measurement_public_key = &any;
    uint8_t hashes[16][32];
    ProtobufCBinaryData bd[16];
    FZ_CHECK(c->nreq <= 16);
    for (size_t i = 0; i < c->nreq; i++) {
        fz_nonce_hash(fz_nonce(c->id, i), hashes[i]);
        bd[i].data = hashes[i];
        bd[i].len = 32;
    }
    s.n_nonce_hashes = c->nreq;
    s.nonce_hashes = bd;
    uint8_t *out = fz_pack(&s.base, ret_len);
    free(kbytes);
    return out;
}

/* The serialized Computation of c, appended to out. */
DY_UNUSED static void fz_computation(const fz_comp_t *c, dy_buf_t *out)
{
    const fz_world_t *w = fz_world();
    char cid[DY_EXT_ID_LEN + 1], name[64];
    fz_id(c->id, cid);
    snprintf(name, sizeof(name), "computations/%s", cid);
    FZ_SYS(Computation) k = FZ_SYSI(COMPUTATION__INIT);
    k.name = name;
    k.public_api_version = (char *)"v2alpha";
    k.state = c->state;
    size_t speclen;
    uint8_t *spec = fz_spec(c, &speclen);
    k.measurement_spec.data = spec;
    k.measurement_spec.len = speclen;

    FZ_SYS(Computation__MpcProtocolConfig) cfg = FZ_SYSI(COMPUTATION__MPC_PROTOCOL_CONFIG__INIT);
    FZ_SYS(Computation__MpcProtocolConfig__LiquidLegionsV2)
    ll = FZ_SYSI(COMPUTATION__MPC_PROTOCOL_CONFIG__LIQUID_LEGIONS_V2__INIT);
    FZ_SYS(Computation__MpcProtocolConfig__LiquidLegionsV2__LiquidLegionsSketchParams)
    sk = FZ_SYSI(
        COMPUTATION__MPC_PROTOCOL_CONFIG__LIQUID_LEGIONS_V2__LIQUID_LEGIONS_SKETCH_PARAMS__INIT);
    FZ_SYS(Computation__MpcProtocolConfig__LiquidLegionsV2__MpcNoise)
    mn = FZ_SYSI(COMPUTATION__MPC_PROTOCOL_CONFIG__LIQUID_LEGIONS_V2__MPC_NOISE__INIT);
    FZ_SYS(DifferentialPrivacyParams) mdp = FZ_SYSI(DIFFERENTIAL_PRIVACY_PARAMS__INIT);
    FZ_SYS(Computation__MpcProtocolConfig__HonestMajorityShareShuffle)
    hm = FZ_SYSI(COMPUTATION__MPC_PROTOCOL_CONFIG__HONEST_MAJORITY_SHARE_SHUFFLE__INIT);
    int noise = c->noise ? FZ_SYSI(COMPUTATION__MPC_PROTOCOL_CONFIG__NOISE_MECHANISM__GEOMETRIC)
                         : FZ_SYSI(COMPUTATION__MPC_PROTOCOL_CONFIG__NOISE_MECHANISM__NONE);
    mdp.epsilon = 1.0;
    mdp.delta = 1.0;
    mn.blinded_histogram_noise = &mdp;
    mn.publisher_noise = &mdp;
    sk.decay_rate = FZ_DECAY;
    sk.max_size = FZ_SKETCH;
    ll.sketch_params = &sk;
    ll.mpc_noise = &mn;
    ll.elliptic_curve_id = 415;
    ll.noise_mechanism = noise;
    hm.reach_and_frequency_ring_modulus = FZ_Q;
    hm.reach_ring_modulus = FZ_Q;
    hm.noise_mechanism = noise;
    if (c->protocol == DY_PROTO_LLV2) {
        cfg.protocol_case = FZ_SYSI(COMPUTATION__MPC_PROTOCOL_CONFIG__PROTOCOL_LIQUID_LEGIONS_V2);
        cfg.liquid_legions_v2 = &ll;
    } else if (c->protocol == DY_PROTO_RO_LLV2) {
        cfg.protocol_case =
            FZ_SYSI(COMPUTATION__MPC_PROTOCOL_CONFIG__PROTOCOL_REACH_ONLY_LIQUID_LEGIONS_V2);
        cfg.reach_only_liquid_legions_v2 = &ll;
    } else {
        cfg.protocol_case =
            FZ_SYSI(COMPUTATION__MPC_PROTOCOL_CONFIG__PROTOCOL_HONEST_MAJORITY_SHARE_SHUFFLE);
        cfg.honest_majority_share_shuffle = &hm;
    }
    k.mpc_protocol_config = &cfg;

    FZ_SYS(ComputationParticipant) parts[FZ_NDUCHIES], *pp[FZ_NDUCHIES];
    FZ_SYS(ComputationParticipant__RequisitionParams) rp[FZ_NDUCHIES];
    FZ_SYS(ComputationParticipant__RequisitionParams__LiquidLegionsV2) rll[FZ_NDUCHIES];
    FZ_SYS(ComputationParticipant__RequisitionParams__HonestMajorityShareShuffle) rh[FZ_NDUCHIES];
    char pnames[FZ_NDUCHIES][128], certs[FZ_NDUCHIES][128];
    uint8_t *keybytes[FZ_NDUCHIES] = {NULL, NULL, NULL};
    uint8_t sig[FZ_NDUCHIES][DY_SIG_MAX];
    for (int i = 0; i < FZ_NDUCHIES; i++) {
        parts[i] = (FZ_SYS(ComputationParticipant))FZ_SYSI(COMPUTATION_PARTICIPANT__INIT);
        snprintf(pnames[i], sizeof(pnames[i]), "%s/participants/%s", name, fz_duchy[i]);
        parts[i].name = pnames[i];
        parts[i].state = c->keys ? FZ_SYSI(COMPUTATION_PARTICIPANT__STATE__REQUISITION_PARAMS_SET)
                                 : FZ_SYSI(COMPUTATION_PARTICIPANT__STATE__CREATED);
        parts[i].etag = (char *)"1";
        pp[i] = &parts[i];
        if (!c->keys)
            continue;
        rp[i] = (FZ_SYS(ComputationParticipant__RequisitionParams))FZ_SYSI(
            COMPUTATION_PARTICIPANT__REQUISITION_PARAMS__INIT);
        snprintf(certs[i], sizeof(certs[i]), "duchies/%s/certificates/sign", fz_duchy[i]);
        rp[i].duchy_certificate = certs[i];
        size_t klen = 0;
        if (c->protocol == DY_PROTO_HMSS) {
            rh[i] = (FZ_SYS(ComputationParticipant__RequisitionParams__HonestMajorityShareShuffle))
                FZ_SYSI(
                    COMPUTATION_PARTICIPANT__REQUISITION_PARAMS__HONEST_MAJORITY_SHARE_SHUFFLE__INIT);
            if (i < 2) { /* the aggregator sends the sub-message empty */
                FZ_V2(EncryptionPublicKey) ek = FZ_V2I(ENCRYPTION_PUBLIC_KEY__INIT);
                ek.format = FZ_V2I(ENCRYPTION_PUBLIC_KEY__FORMAT__ECIES_P256);
                ek.data.data = (uint8_t *)w->hmss_pub[i];
                ek.data.len = 33;
                keybytes[i] = fz_pack(&ek.base, &klen);
                rh[i].tink_public_key.data = keybytes[i];
                rh[i].tink_public_key.len = klen;
            }
            rp[i].protocol_case = FZ_SYSI(
                COMPUTATION_PARTICIPANT__REQUISITION_PARAMS__PROTOCOL_HONEST_MAJORITY_SHARE_SHUFFLE);
            rp[i].honest_majority_share_shuffle = &rh[i];
        } else {
            rll[i] = (FZ_SYS(ComputationParticipant__RequisitionParams__LiquidLegionsV2))FZ_SYSI(
                COMPUTATION_PARTICIPANT__REQUISITION_PARAMS__LIQUID_LEGIONS_V2__INIT);
            FZ_V2(ElGamalPublicKey) gk = FZ_V2I(EL_GAMAL_PUBLIC_KEY__INIT);
            gk.elliptic_curve_id = 415;
            gk.generator.data = (uint8_t *)fz_g;
            gk.generator.len = 33;
            gk.element.data = (uint8_t *)w->llv2_pub[i];
            gk.element.len = 33;
            keybytes[i] = fz_pack(&gk.base, &klen);
            rll[i].el_gamal_public_key.data = keybytes[i];
            rll[i].el_gamal_public_key.len = klen;
            rll[i].el_gamal_public_key_signature_algorithm_oid = (char *)DY_SIG_OID;
            if (c->signed_keys) {
                size_t slen = 0;
                FZ_CHECK(dy_kf_key_sign(w->sign[i], DY_KF_LABEL_ELGAMAL, name, w->llv2_pub[i],
                                        sig[i], &slen) == 0);
                rll[i].el_gamal_public_key_signature.data = sig[i];
                rll[i].el_gamal_public_key_signature.len = slen;
                rp[i].duchy_certificate_der.data = w->sign_der[i].data;
                rp[i].duchy_certificate_der.len = w->sign_der[i].len;
            }
            if (c->protocol == DY_PROTO_RO_LLV2) {
                rp[i].protocol_case = FZ_SYSI(
                    COMPUTATION_PARTICIPANT__REQUISITION_PARAMS__PROTOCOL_REACH_ONLY_LIQUID_LEGIONS_V2);
                rp[i].reach_only_liquid_legions_v2 = &rll[i];
            } else {
                rp[i].protocol_case = FZ_SYSI(
                    COMPUTATION_PARTICIPANT__REQUISITION_PARAMS__PROTOCOL_LIQUID_LEGIONS_V2);
                rp[i].liquid_legions_v2 = &rll[i];
            }
        }
        parts[i].requisition_params = &rp[i];
    }
    k.n_computation_participants = FZ_NDUCHIES;
    k.computation_participants = pp;

    FZ_SYS(Requisition) reqs[16], *rpp[16];
    char rnames[16][96], fulfiller[16][96];
    uint8_t nh[16][32], rsh[16][32];
    FZ_CHECK(c->nreq <= 16);
    for (size_t i = 0; i < c->nreq; i++) {
        char rid[DY_EXT_ID_LEN + 1];
        fz_id(fz_req_id(c->id, i), rid);
        reqs[i] = (FZ_SYS(Requisition))FZ_SYSI(REQUISITION__INIT);
        snprintf(rnames[i], sizeof(rnames[i]), "%s/requisitions/%s", name, rid);
        reqs[i].name = rnames[i];
        fz_nonce_hash(fz_nonce(c->id, i), nh[i]);
        reqs[i].nonce_hash.data = nh[i];
        reqs[i].nonce_hash.len = 32;
        fz_reqspec_hash(c->id, i, rsh[i]);
        reqs[i].requisition_spec_hash.data = rsh[i];
        reqs[i].requisition_spec_hash.len = 32;
        reqs[i].state = c->fulfilled ? FZ_SYSI(REQUISITION__STATE__FULFILLED)
                                     : FZ_SYSI(REQUISITION__STATE__UNFULFILLED);
        if (c->fulfilled) {
            reqs[i].nonce = fz_nonce(c->id, i);
            snprintf(fulfiller[i], sizeof(fulfiller[i]), "%s/participants/%s", name,
                     fz_duchy[fz_req_duchy(c, i)]);
            reqs[i].fulfilling_computation_participant = fulfiller[i];
        }
        rpp[i] = &reqs[i];
    }
    k.n_requisitions = c->nreq;
    k.requisitions = rpp;

    size_t n = protobuf_c_message_get_packed_size(&k.base);
    uint8_t *dst = dy_buf_extend(out, n);
    FZ_CHECK(dst != NULL);
    protobuf_c_message_pack(&k.base, dst);
    free(spec);
    for (int i = 0; i < FZ_NDUCHIES; i++)
        free(keybytes[i]);
}

/* The serialized ComputationDetails duchy d would store for c (appended to out). */
DY_UNUSED static void fz_details(const fz_comp_t *c, int d, dy_buf_t *out)
{
    dy_buf_t k = {0};
    fz_computation(c, &k);
    char err[256] = "";
    int rc = dy_details_build(k.data, k.len, fz_duchy[d], FZ_AGG_ID, FZ_FNA_ID, FZ_SNA_ID, out, err,
                              sizeof(err));
    if (rc < 0)
        fprintf(stderr, "fuzz fixture: details of %llu: %s\n", (unsigned long long)c->id, err);
    FZ_CHECK(rc == 0);
    dy_buf_free(&k);
}

/* ---- the coordinator's stores -------------------------------------------------------------- */

/* One row of the fixture table, in every duchy's store. */
typedef struct {
    fz_comp_t c;     /* the computation */
    int stage;       /* the row's stage (control.proto numbers) */
    bool ended;      /* CANCELLED locally */
    bool no_details; /* stored without details (not set up yet) */
} fz_row_t;

#define FZ_PENDING FZ_SYSI(COMPUTATION__STATE__PENDING_COMPUTATION)
#define FZ_PARAMS FZ_SYSI(COMPUTATION__STATE__PENDING_REQUISITION_PARAMS)
#define FZ_FULFILL FZ_SYSI(COMPUTATION__STATE__PENDING_REQUISITION_FULFILLMENT)

/* Computation ids 0x101.. (seeds name them); LLv2 with K = 3, RO-LLv2, HMSS (K = 3). */
static const fz_row_t fz_rows[] = {
    {{0x101, DY_PROTO_LLV2, true, 3, false, FZ_PENDING, true, false, 2, false}, 5, false, false},
    {{0x102, DY_PROTO_LLV2, true, 3, false, FZ_PENDING, true, false, 2, false}, 7, false, false},
    {{0x103, DY_PROTO_LLV2, true, 3, false, FZ_PENDING, true, false, 2, false}, 9, false, false},
    {{0x104, DY_PROTO_LLV2, true, 3, false, FZ_PENDING, true, false, 2, false}, 11, false, false},
    {{0x105, DY_PROTO_LLV2, true, 3, false, FZ_PENDING, true, false, 2, false}, 13, true, false},
    {{0x106, DY_PROTO_LLV2, true, 3, false, FZ_FULFILL, false, false, 2, false}, 2, false, false},
    {{0x107, DY_PROTO_LLV2, false, 1, false, FZ_PENDING, true, false, 2, false}, 7, false, false},
    {{0x108, DY_PROTO_LLV2, true, 3, false, FZ_PENDING, true, false, 2, false}, 5, false, true},
    {{0x111, DY_PROTO_RO_LLV2, false, 1, false, FZ_PENDING, true, false, 2, false},
     5,
     false,
     false},
    {{0x112, DY_PROTO_RO_LLV2, false, 1, false, FZ_PENDING, true, false, 2, false},
     7,
     false,
     false},
    {{0x113, DY_PROTO_RO_LLV2, false, 1, false, FZ_FULFILL, true, false, 2, false},
     2,
     false,
     false},
    {{0x121, DY_PROTO_HMSS, true, 3, false, FZ_PENDING, true, false, 2, false}, 3, false, false},
    {{0x122, DY_PROTO_HMSS, true, 3, false, FZ_PENDING, true, false, 2, false}, 5, false, false},
    {{0x123, DY_PROTO_HMSS, true, 3, false, FZ_PENDING, true, false, 2, false}, 6, false, false},
    {{0x124, DY_PROTO_HMSS, false, 1, false, FZ_FULFILL, true, false, 2, false}, 2, false, false},
    {{0x125, DY_PROTO_HMSS, true, 3, false, FZ_FULFILL, true, false, 3, false}, 2, false, false},
};
#define FZ_NROWS DY_ARRAY_LEN(fz_rows)

typedef struct {
    dy_store_t *store[FZ_NDUCHIES];  /* owned: one in-memory store per duchy */
    dy_coord_ctx_t ctx[FZ_NDUCHIES]; /* the coordinator context of each duchy */
} fz_coord_t;

DY_UNUSED static int64_t fz_clock(void *arg)
{
    (void)arg;
    return INT64_C(1700000000000000); /* a fixed now: runs do not depend on the date */
}

/* Opens the three stores and fills them from fz_rows. */
DY_UNUSED static void fz_coord_open(fz_coord_t *co)
{
    memset(co, 0, sizeof(*co));
    for (int d = 0; d < FZ_NDUCHIES; d++) {
        dy_store_config_t cfg = {.path = ":memory:", .clock = fz_clock};
        FZ_CHECK(dy_store_open(&cfg, &co->store[d]) == 0);
        for (size_t i = 0; i < FZ_NROWS; i++) {
            const fz_row_t *row = &fz_rows[i];
            char cid[DY_EXT_ID_LEN + 1];
            fz_id(row->c.id, cid);
            dy_buf_t det = {0};
            fz_details(&row->c, d, &det);
            Halo__Internal__V1__ComputationDetails *cd =
                halo__internal__v1__computation_details__unpack(NULL, det.len, det.data);
            FZ_CHECK(cd != NULL);
            dy_computation_new_t nc = {.id = cid,
                                       .protocol = (int)cd->protocol,
                                       .role = (int)cd->role,
                                       .stage = row->stage,
                                       .kind = DY_STAGE_WAIT,
                                       .kingdom_state = row->c.state,
                                       .details = row->no_details ? NULL : det.data,
                                       .details_len = row->no_details ? 0 : det.len};
            FZ_CHECK(dy_store_create(co->store[d], &nc) == 0);
            halo__internal__v1__computation_details__free_unpacked(cd, NULL);
            dy_buf_free(&det);
            if (row->ended) {
                bool changed = false;
                FZ_CHECK(dy_store_end(co->store[d], cid, NULL, row->stage, DY_END_CANCELLED,
                                      "fixture", &changed) == 0);
            }
        }
        co->ctx[d] = (dy_coord_ctx_t){.my_id = fz_duchy[d],
                                      .aggregator_id = FZ_AGG_ID,
                                      .first_na_id = FZ_FNA_ID,
                                      .second_na_id = FZ_SNA_ID,
                                      .store = co->store[d],
                                      .blobs = NULL,
                                      .max_upload = 1u << 20,
                                      .actor = "fuzz"};
    }
}

DY_UNUSED static void fz_coord_close(fz_coord_t *co)
{
    for (int d = 0; d < FZ_NDUCHIES; d++)
        dy_store_destroy(&co->store[d]);
}

/* ---- LLv2 stage contexts --------------------------------------------------------------- */

#include "protocol/llv2.h"

/* Requisitions of the stage contexts (num_sketches) and their noise when on:
 * DISCRETE_GAUSSIAN with loose parameters, so a stage adds only a handful of noise
 * registers and tuples. */
#define FZ_LLV2_S 2
#define FZ_NOISE_EPS 20.0
#define FZ_NOISE_DELTA 0.1

DY_UNUSED static dy_llv2_params_t fz_llv2_params(int K, bool noise)
{
    dy_dp_params_t dp = {FZ_NOISE_EPS, FZ_NOISE_DELTA};
    return (dy_llv2_params_t){.decay_rate = FZ_DECAY,
                              .sketch_size = FZ_SKETCH,
                              .max_frequency = K,
                              .num_sketches = FZ_LLV2_S,
                              .vid_width = 1.0f,
                              .noise = noise ? DY_NOISE_DISCRETE_GAUSSIAN : DY_NOISE_NONE,
                              .blinded_histogram = dp,
                              .publisher = dp,
                              .reach = dp,
                              .frequency = dp,
                              .threads = 1};
}

/* [K == 1 ? 0 : 1][ring role NA1, NA2, AGG][noise] */
static dy_llv2_t *fz_llv2_cache[2][3][2];

DY_UNUSED static void fz_llv2_free(void)
{
    for (int a = 0; a < 2; a++)
        for (int r = 0; r < 3; r++)
            for (int n = 0; n < 2; n++)
                dy_llv2_destroy(&fz_llv2_cache[a][r][n]);
}

/* The stage context of ring member role (0 NA1 = worker1, 1 NA2 = worker2, 2 AGG) for
 * maximum frequency K (1 or 3), made on first use (about 40 ms) and kept. */
DY_UNUSED static dy_llv2_t *fz_llv2(int K, int role, bool noise)
{
    const fz_world_t *w = fz_world();
    dy_llv2_t **slot = &fz_llv2_cache[K == 1 ? 0 : 1][role][noise ? 1 : 0];
    if (*slot != NULL)
        return *slot;
    static bool registered;
    if (!registered) {
        atexit(fz_llv2_free); /* runs before fz_world_free, which frees the group */
        registered = true;
    }
    dy_llv2_params_t p = fz_llv2_params(K, noise);
    dy_err_t e;
    dy_err_clear(&e);
    *slot = dy_llv2_new(w->ec, &p, (dy_llv2_role_t)role, w->llv2_x[role],
                        (const uint8_t(*)[DY_PTC_LEN])w->llv2_pub, &e);
    if (*slot == NULL)
        fprintf(stderr, "fuzz fixture: llv2 context: %s: %s\n", e.code, e.message);
    FZ_CHECK(*slot != NULL);
    return *slot;
}

/* ---- HMSS parameters ------------------------------------------------------------------ */

#include "protocol/hmss.h"

/* The parameters duchy-mill derives for the fixture's HMSS computation 0x125 (three
 * requisitions, q = 127, K = 3 or reach only, DP (1, 1e-9) when noise is on). */
DY_UNUSED static dy_hmss_params_t fz_hmss_params(bool reach_only, bool noise)
{
    return (dy_hmss_params_t){.ring_modulus = FZ_Q,
                              .max_frequency = reach_only ? 1 : 3,
                              .num_sketches = 3,
                              .reach_only = reach_only,
                              .vid_width = 1.0f,
                              .noise = noise ? DY_NOISE_GEOMETRIC : DY_NOISE_NONE,
                              .reach = {1.0, 1e-9},
                              .frequency = {1.0, 1e-9},
                              .threads = 1};
}

/* ---- input helpers ------------------------------------------------------------------------- */

/* Reads the next part of an input: a 2-byte big-endian length, then that many bytes (fewer
 * if the input ends first).  A missing part is empty. */
typedef struct {
    const uint8_t *p;
    size_t n;
} fz_in_t;

DY_UNUSED static fz_in_t fz_part(fz_in_t *in)
{
    fz_in_t out = {in->p, 0};
    if (in->n < 2) {
        in->p += in->n;
        in->n = 0;
        return out;
    }
    size_t len = (size_t)in->p[0] << 8 | in->p[1];
    in->p += 2;
    in->n -= 2;
    if (len > in->n)
        len = in->n;
    out.p = in->p;
    out.n = len;
    in->p += len;
    in->n -= len;
    return out;
}

/* A NUL-terminated copy of n bytes (caller frees). */
DY_UNUSED static char *fz_str(const uint8_t *p, size_t n)
{
    char *s = malloc(n + 1);
    FZ_CHECK(s != NULL);
    if (n)
        memcpy(s, p, n);
    s[n] = '\0';
    return s;
}

#endif
