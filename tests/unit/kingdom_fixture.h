/* kingdom_fixture.h - builds real serialized Kingdom Computations (protobuf-c) for the
 * tests of details.c and the herald rules: a knob per field that PROTOCOL.md §3.1 checks.
 * Header-only (static functions) so each test executable gets its own copy.
 */
#ifndef DY_TEST_KINGDOM_FIXTURE_H
#define DY_TEST_KINGDOM_FIXTURE_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "crypto/ecies.h"
#include "dy.h"

#include "public.pb-c.h"
#include "system.pb-c.h"

#define FX_SYS(x) Wfa__Measurement__System__V1alpha__##x
#define FX_SYSI(x) WFA__MEASUREMENT__SYSTEM__V1ALPHA__##x
#define FX_V2(x) Wfa__Measurement__Api__V2alpha__##x
#define FX_V2I(x) WFA__MEASUREMENT__API__V2ALPHA__##x

enum { FX_LLV2 = 1, FX_RO = 2, FX_HMSS = 3, FX_TRUSTEE = 4 };

typedef struct {
    const char *id;            /* bare computation id */
    int protocol;              /* FX_* */
    bool rf;                   /* reach and frequency (else reach) */
    int spec_mf;               /* spec maximum frequency */
    int cfg_mf;                /* LLv2 deprecated maximum frequency */
    double eps, delta;         /* every DP param */
    int noise;                 /* system NoiseMechanism */
    int curve;                 /* LLv2 curve id */
    int64_t q_rf, q_r;         /* HMSS moduli */
    const char *api;           /* public_api_version */
    int state;                 /* Computation.State */
    const char *duchies[3];    /* participant ids */
    bool keys;                 /* LLv2: ElGamal keys / HMSS: NA encryption keys */
    uint8_t pub[3][33];        /* the participants' public keys when keys */
    int mc_format;             /* EncryptionPublicKey format of the MC key */
    size_t nreq;               /* requisitions */
    bool fulfilled;            /* requisitions FULFILLED by duchies[0], nonces i + 1 */
} fx_t;

static void fx_default(fx_t *f, int protocol)
{
    memset(f, 0, sizeof(*f));
    f->id = "AAAAAAAAAAE";
    f->protocol = protocol;
    f->rf = true;
    f->spec_mf = 5;
    f->eps = 1.0;
    f->delta = 1e-9;
    f->noise = FX_SYSI(COMPUTATION__MPC_PROTOCOL_CONFIG__NOISE_MECHANISM__GEOMETRIC);
    f->curve = 415;
    f->q_rf = 127;
    f->q_r = 127;
    f->api = "v2alpha";
    f->state = FX_SYSI(COMPUTATION__STATE__PENDING_REQUISITION_PARAMS);
    f->duchies[0] = "worker1";
    f->duchies[1] = "worker2";
    f->duchies[2] = "aggregator";
    f->mc_format = FX_V2I(ENCRYPTION_PUBLIC_KEY__FORMAT__ECIES_P256);
    f->nreq = 2;
    for (int i = 0; i < 3; i++) {
        uint8_t priv[32];
        if (dy_ecies_keygen(priv, f->pub[i]) < 0)
            abort();
    }
}

static const uint8_t fx_g[33] = {
    0x03, 0x6b, 0x17, 0xd1, 0xf2, 0xe1, 0x2c, 0x42, 0x47, 0xf8, 0xbc, 0xe6, 0xe5, 0x63, 0xa4,
    0x40, 0xf2, 0x77, 0x03, 0x7d, 0x81, 0x2d, 0xeb, 0x33, 0xa0, 0xf4, 0xa1, 0x39, 0x45, 0xd8,
    0x98, 0xc2, 0x96,
};

/* Serialized api ElGamalPublicKey / EncryptionPublicKey of a 33-byte point (caller frees). */
static uint8_t *fx_elgamal_key(const uint8_t y[33], size_t *ret_len)
{
    FX_V2(ElGamalPublicKey) k = FX_V2I(EL_GAMAL_PUBLIC_KEY__INIT);
    k.elliptic_curve_id = 415;
    k.generator.data = (uint8_t *)fx_g;
    k.generator.len = 33;
    k.element.data = (uint8_t *)y;
    k.element.len = 33;
    *ret_len = wfa__measurement__api__v2alpha__el_gamal_public_key__get_packed_size(&k);
    uint8_t *out = malloc(*ret_len + 1);
    wfa__measurement__api__v2alpha__el_gamal_public_key__pack(&k, out);
    return out;
}

static uint8_t *fx_enc_key(const uint8_t q[33], int format, size_t *ret_len)
{
    FX_V2(EncryptionPublicKey) k = FX_V2I(ENCRYPTION_PUBLIC_KEY__INIT);
    k.format = format;
    k.data.data = (uint8_t *)q;
    k.data.len = 33;
    *ret_len = wfa__measurement__api__v2alpha__encryption_public_key__get_packed_size(&k);
    uint8_t *out = malloc(*ret_len + 1);
    wfa__measurement__api__v2alpha__encryption_public_key__pack(&k, out);
    return out;
}

static void fx_sha256_nonce(uint64_t nonce, uint8_t out[32])
{
    uint8_t be[8];
    for (int i = 0; i < 8; i++)
        be[i] = (uint8_t)(nonce >> (56 - 8 * i));
    unsigned int n;
    EVP_Digest(be, 8, out, &n, EVP_sha256(), NULL);
}

/* The serialized MeasurementSpec of f (caller frees). */
static uint8_t *fx_spec(const fx_t *f, size_t *ret_len)
{
    FX_V2(MeasurementSpec) s = FX_V2I(MEASUREMENT_SPEC__INIT);
    FX_V2(DifferentialPrivacyParams) dp = FX_V2I(DIFFERENTIAL_PRIVACY_PARAMS__INIT);
    dp.epsilon = f->eps;
    dp.delta = f->delta;
    FX_V2(MeasurementSpec__Reach) r = FX_V2I(MEASUREMENT_SPEC__REACH__INIT);
    FX_V2(MeasurementSpec__ReachAndFrequency) rf =
        FX_V2I(MEASUREMENT_SPEC__REACH_AND_FREQUENCY__INIT);
    if (f->rf) {
        rf.reach_privacy_params = &dp;
        rf.frequency_privacy_params = &dp;
        rf.maximum_frequency = f->spec_mf;
        s.measurement_type_case = FX_V2I(MEASUREMENT_SPEC__MEASUREMENT_TYPE_REACH_AND_FREQUENCY);
        s.reach_and_frequency = &rf;
    } else {
        r.privacy_params = &dp;
        s.measurement_type_case = FX_V2I(MEASUREMENT_SPEC__MEASUREMENT_TYPE_REACH);
        s.reach = &r;
    }
    FX_V2(MeasurementSpec__VidSamplingInterval) vid =
        FX_V2I(MEASUREMENT_SPEC__VID_SAMPLING_INTERVAL__INIT);
    vid.start = 0.0f;
    vid.width = 1.0f;
    s.vid_sampling_interval = &vid;
    uint8_t mc_pub[33], mc_priv[32];
    dy_ecies_keygen(mc_priv, mc_pub);
    size_t klen;
    uint8_t *kbytes = fx_enc_key(mc_pub, f->mc_format, &klen);
    Google__Protobuf__Any any = GOOGLE__PROTOBUF__ANY__INIT;
    any.type_url = (char *)"type.googleapis.com/wfa.measurement.api.v2alpha.EncryptionPublicKey";
    any.value.data = kbytes;
    any.value.len = klen;
    s.measurement_public_key = &any;
    uint8_t (*hashes)[32] = calloc(f->nreq + 1, 32);
    ProtobufCBinaryData *bd = calloc(f->nreq + 1, sizeof(*bd));
    for (size_t i = 0; i < f->nreq; i++) {
        fx_sha256_nonce(i + 1, hashes[i]);
        bd[i].data = hashes[i];
        bd[i].len = 32;
    }
    s.n_nonce_hashes = f->nreq;
    s.nonce_hashes = bd;
    *ret_len = wfa__measurement__api__v2alpha__measurement_spec__get_packed_size(&s);
    uint8_t *out = malloc(*ret_len + 1);
    wfa__measurement__api__v2alpha__measurement_spec__pack(&s, out);
    free(kbytes);
    free(hashes);
    free(bd);
    return out;
}

/* The serialized Computation of f, appended to out. */
static void fx_build(const fx_t *f, dy_buf_t *out)
{
    FX_SYS(Computation) c = FX_SYSI(COMPUTATION__INIT);
    char name[128];
    snprintf(name, sizeof(name), "computations/%s", f->id);
    c.name = name;
    c.public_api_version = (char *)f->api;
    c.state = f->state;
    size_t speclen;
    uint8_t *spec = fx_spec(f, &speclen);
    c.measurement_spec.data = spec;
    c.measurement_spec.len = speclen;

    FX_SYS(Computation__MpcProtocolConfig) cfg = FX_SYSI(COMPUTATION__MPC_PROTOCOL_CONFIG__INIT);
    FX_SYS(Computation__MpcProtocolConfig__LiquidLegionsV2) ll =
        FX_SYSI(COMPUTATION__MPC_PROTOCOL_CONFIG__LIQUID_LEGIONS_V2__INIT);
    FX_SYS(Computation__MpcProtocolConfig__LiquidLegionsV2__LiquidLegionsSketchParams) sk =
        FX_SYSI(COMPUTATION__MPC_PROTOCOL_CONFIG__LIQUID_LEGIONS_V2__LIQUID_LEGIONS_SKETCH_PARAMS__INIT);
    FX_SYS(Computation__MpcProtocolConfig__LiquidLegionsV2__MpcNoise) mn =
        FX_SYSI(COMPUTATION__MPC_PROTOCOL_CONFIG__LIQUID_LEGIONS_V2__MPC_NOISE__INIT);
    FX_SYS(DifferentialPrivacyParams) mdp = FX_SYSI(DIFFERENTIAL_PRIVACY_PARAMS__INIT);
    FX_SYS(Computation__MpcProtocolConfig__HonestMajorityShareShuffle) hm =
        FX_SYSI(COMPUTATION__MPC_PROTOCOL_CONFIG__HONEST_MAJORITY_SHARE_SHUFFLE__INIT);
    FX_SYS(Computation__MpcProtocolConfig__TrusTee) tt =
        FX_SYSI(COMPUTATION__MPC_PROTOCOL_CONFIG__TRUS_TEE__INIT);
    mdp.epsilon = 1.0;
    mdp.delta = 1.0;
    mn.blinded_histogram_noise = &mdp;
    mn.publisher_noise = &mdp;
    sk.decay_rate = 12.0;
    sk.max_size = 100000;
    ll.sketch_params = &sk;
    ll.mpc_noise = &mn;
    ll.elliptic_curve_id = f->curve;
    ll.maximum_frequency = f->cfg_mf;
    ll.noise_mechanism = f->noise;
    hm.reach_and_frequency_ring_modulus = f->q_rf;
    hm.reach_ring_modulus = f->q_r;
    hm.noise_mechanism = f->noise;
    switch (f->protocol) {
    case FX_LLV2:
        cfg.protocol_case = FX_SYSI(COMPUTATION__MPC_PROTOCOL_CONFIG__PROTOCOL_LIQUID_LEGIONS_V2);
        cfg.liquid_legions_v2 = &ll;
        break;
    case FX_RO:
        cfg.protocol_case =
            FX_SYSI(COMPUTATION__MPC_PROTOCOL_CONFIG__PROTOCOL_REACH_ONLY_LIQUID_LEGIONS_V2);
        cfg.reach_only_liquid_legions_v2 = &ll;
        break;
    case FX_HMSS:
        cfg.protocol_case =
            FX_SYSI(COMPUTATION__MPC_PROTOCOL_CONFIG__PROTOCOL_HONEST_MAJORITY_SHARE_SHUFFLE);
        cfg.honest_majority_share_shuffle = &hm;
        break;
    default:
        cfg.protocol_case = FX_SYSI(COMPUTATION__MPC_PROTOCOL_CONFIG__PROTOCOL_TRUS_TEE);
        cfg.trus_tee = &tt;
        break;
    }
    c.mpc_protocol_config = &cfg;

    FX_SYS(ComputationParticipant) parts[3];
    FX_SYS(ComputationParticipant) *pp[3];
    FX_SYS(ComputationParticipant__RequisitionParams) rp[3];
    FX_SYS(ComputationParticipant__RequisitionParams__LiquidLegionsV2) rll[3];
    FX_SYS(ComputationParticipant__RequisitionParams__HonestMajorityShareShuffle) rh[3];
    char pnames[3][128], certs[3][128];
    uint8_t *keybytes[3] = {NULL, NULL, NULL};
    for (int i = 0; i < 3; i++) {
        parts[i] = (FX_SYS(ComputationParticipant))FX_SYSI(COMPUTATION_PARTICIPANT__INIT);
        snprintf(pnames[i], sizeof(pnames[i]), "computations/%s/participants/%s", f->id,
                 f->duchies[i]);
        parts[i].name = pnames[i];
        parts[i].state = f->keys ? FX_SYSI(COMPUTATION_PARTICIPANT__STATE__REQUISITION_PARAMS_SET)
                                 : FX_SYSI(COMPUTATION_PARTICIPANT__STATE__CREATED);
        pp[i] = &parts[i];
        if (!f->keys)
            continue;
        rp[i] = (FX_SYS(ComputationParticipant__RequisitionParams))FX_SYSI(
            COMPUTATION_PARTICIPANT__REQUISITION_PARAMS__INIT);
        snprintf(certs[i], sizeof(certs[i]), "duchies/%s/certificates/AAAAAAAAAAE",
                 f->duchies[i]);
        rp[i].duchy_certificate = certs[i];
        size_t klen = 0;
        if (f->protocol == FX_HMSS) {
            rh[i] = (FX_SYS(ComputationParticipant__RequisitionParams__HonestMajorityShareShuffle))
                FX_SYSI(COMPUTATION_PARTICIPANT__REQUISITION_PARAMS__HONEST_MAJORITY_SHARE_SHUFFLE__INIT);
            if (i < 2) { /* the aggregator (index 2) sends it empty */
                keybytes[i] = fx_enc_key(f->pub[i], FX_V2I(ENCRYPTION_PUBLIC_KEY__FORMAT__ECIES_P256),
                                         &klen);
                rh[i].tink_public_key.data = keybytes[i];
                rh[i].tink_public_key.len = klen;
            }
            rp[i].protocol_case =
                FX_SYSI(COMPUTATION_PARTICIPANT__REQUISITION_PARAMS__PROTOCOL_HONEST_MAJORITY_SHARE_SHUFFLE);
            rp[i].honest_majority_share_shuffle = &rh[i];
        } else {
            rll[i] = (FX_SYS(ComputationParticipant__RequisitionParams__LiquidLegionsV2))FX_SYSI(
                COMPUTATION_PARTICIPANT__REQUISITION_PARAMS__LIQUID_LEGIONS_V2__INIT);
            keybytes[i] = fx_elgamal_key(f->pub[i], &klen);
            rll[i].el_gamal_public_key.data = keybytes[i];
            rll[i].el_gamal_public_key.len = klen;
            rll[i].el_gamal_public_key_signature_algorithm_oid = (char *)"1.2.840.10045.4.3.2";
            if (f->protocol == FX_RO) {
                rp[i].protocol_case =
                    FX_SYSI(COMPUTATION_PARTICIPANT__REQUISITION_PARAMS__PROTOCOL_REACH_ONLY_LIQUID_LEGIONS_V2);
                rp[i].reach_only_liquid_legions_v2 = &rll[i];
            } else {
                rp[i].protocol_case =
                    FX_SYSI(COMPUTATION_PARTICIPANT__REQUISITION_PARAMS__PROTOCOL_LIQUID_LEGIONS_V2);
                rp[i].liquid_legions_v2 = &rll[i];
            }
        }
        parts[i].requisition_params = &rp[i];
    }
    c.n_computation_participants = 3;
    c.computation_participants = pp;

    FX_SYS(Requisition) *reqs = calloc(f->nreq + 1, sizeof(*reqs));
    FX_SYS(Requisition) **rpp = calloc(f->nreq + 1, sizeof(*rpp));
    char (*rnames)[128] = calloc(f->nreq + 1, 128);
    uint8_t (*rh2)[32] = calloc(f->nreq + 1, 32);
    char fulfiller[128];
    snprintf(fulfiller, sizeof(fulfiller), "computations/%s/participants/%s", f->id,
             f->duchies[0]);
    for (size_t i = 0; i < f->nreq; i++) {
        reqs[i] = (FX_SYS(Requisition))FX_SYSI(REQUISITION__INIT);
        snprintf(rnames[i], 128, "computations/%s/requisitions/req%zu", f->id, i);
        reqs[i].name = rnames[i];
        fx_sha256_nonce(i + 1, rh2[i]);
        reqs[i].nonce_hash.data = rh2[i];
        reqs[i].nonce_hash.len = 32;
        reqs[i].state = f->fulfilled ? FX_SYSI(REQUISITION__STATE__FULFILLED)
                                     : FX_SYSI(REQUISITION__STATE__UNFULFILLED);
        if (f->fulfilled) {
            reqs[i].nonce = i + 1;
            reqs[i].fulfilling_computation_participant = fulfiller;
        }
        rpp[i] = &reqs[i];
    }
    c.n_requisitions = f->nreq;
    c.requisitions = rpp;

    size_t n = wfa__measurement__system__v1alpha__computation__get_packed_size(&c);
    uint8_t *dst = dy_buf_extend(out, n);
    wfa__measurement__system__v1alpha__computation__pack(&c, dst);
    free(spec);
    for (int i = 0; i < 3; i++)
        free(keybytes[i]);
    free(reqs);
    free(rpp);
    free(rnames);
    free(rh2);
}

#endif
