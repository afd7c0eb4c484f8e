/* details.c - the parsed, validated view of a computation (details.h).
 *
 * One parser for every actor: a serialized halo.internal.v1.ComputationDetails holds the
 * latest Kingdom Computation (wfa.measurement.system.v1alpha) plus what the duchy decided
 * about it (protocol, role, ring, the federation's role ids).  dy_details_build makes one
 * from a Kingdom Computation (herald), dy_details_parse reads it back (everyone) and applies
 * PROTOCOL.md §3.1's checks, so a computation that fails them is refused in one place.
 *
 * Ring (PROTOCOL.md §5.1): the two non-aggregators ascending by SHA-1(serialized
 * ElGamalPublicKey bytes ‖ bare computation id), digests compared as bytes, then the
 * aggregator.  Known once all three LLv2 keys are.
 *
 * Nothing here logs (STYLE.md rule 23); reasons go to errbuf and never hold key material.
 */
#include "details.h"

#include "crypto/ec.h"
#include "crypto/sig.h"
#include "protocol/hmss.h"
#include "stages.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "duchy.pb-c.h"
#include "public.pb-c.h"
#include "system.pb-c.h"

#define SYS(x) Wfa__Measurement__System__V1alpha__##x
#define SYSE(x) WFA__MEASUREMENT__SYSTEM__V1ALPHA__##x
#define V2(x) Wfa__Measurement__Api__V2alpha__##x
#define V2E(x) WFA__MEASUREMENT__API__V2ALPHA__##x
#define MPC(x) SYSE(COMPUTATION__MPC_PROTOCOL_CONFIG__##x)

#define S_TYPE_ENC_KEY "type.googleapis.com/wfa.measurement.api.v2alpha.EncryptionPublicKey"
#define S_API_VERSION "v2alpha"
#define S_CURVE_ID 415
#define S_EPS_MIN_LLV2 1e-5
#define S_EPS_MIN_HMSS 1e-6

/* G of P-256, compressed (CRYPTO.md §1). */
static const uint8_t s_generator[33] = {
    0x03, 0x6b, 0x17, 0xd1, 0xf2, 0xe1, 0x2c, 0x42, 0x47, 0xf8, 0xbc, 0xe6, 0xe5, 0x63, 0xa4,
    0x40, 0xf2, 0x77, 0x03, 0x7d, 0x81, 0x2d, 0xeb, 0x33, 0xa0, 0xf4, 0xa1, 0x39, 0x45, 0xd8,
    0x98, 0xc2, 0x96,
};

static int s_fail(char *errbuf, size_t errlen, int rc, const char *fmt, ...) DY_PRINTF(4, 5);
static int s_fail(char *errbuf, size_t errlen, int rc, const char *fmt, ...)
{
    if (errbuf != NULL && errlen > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(errbuf, errlen, fmt, ap);
        va_end(ap);
    }
    return rc;
}

/* An id segment: 1..63 bytes of [A-Za-z0-9_-] (generated ids are base64url; duchy ids a
 * subset). */
static bool s_id_ok(const char *s, size_t n)
{
    if (n == 0 || n >= DY_ID_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
              || c == '_' || c == '-'))
            return false;
    }
    return true;
}

/* Matches "computations/{c}" + (middle != NULL ? "/{middle}/{x}" : "") exactly; copies the
 * segments out (cap DY_ID_MAX each). */
static bool s_parse_name(const char *name, const char *middle, char *ret_comp, char *ret_leaf)
{
    static const char pfx[] = "computations/";
    if (name == NULL || strncmp(name, pfx, sizeof(pfx) - 1) != 0)
        return false;
    const char *c = name + sizeof(pfx) - 1;
    const char *slash = strchr(c, '/');
    size_t clen = slash ? (size_t)(slash - c) : strlen(c);
    if (!s_id_ok(c, clen))
        return false;
    memcpy(ret_comp, c, clen);
    ret_comp[clen] = '\0';
    if (middle == NULL)
        return slash == NULL;
    if (slash == NULL)
        return false;
    size_t mlen = strlen(middle);
    if (strncmp(slash + 1, middle, mlen) != 0 || slash[1 + mlen] != '/')
        return false;
    const char *leaf = slash + 2 + mlen;
    size_t llen = strlen(leaf);
    if (!s_id_ok(leaf, llen) || strchr(leaf, '/') != NULL)
        return false;
    memcpy(ret_leaf, leaf, llen);
    ret_leaf[llen] = '\0';
    return true;
}

static bool s_noise_ok(int mech)
{
    return mech == MPC(NOISE_MECHANISM__GEOMETRIC) || mech == MPC(NOISE_MECHANISM__DISCRETE_GAUSSIAN)
           || mech == MPC(NOISE_MECHANISM__NONE);
}

/* The system enum's name of a noise mechanism, for reasons (its number alone reads like
 * the public API's, whose numbering differs): "CONTINUOUS_GAUSSIAN", or "unknown". */
static const char *s_noise_name(int mech)
{
    const ProtobufCEnumValue *v = protobuf_c_enum_descriptor_get_value(
        &wfa__measurement__system__v1alpha__computation__mpc_protocol_config__noise_mechanism__descriptor,
        mech);
    return v != NULL && v->name != NULL ? v->name : "unknown";
}

/* §3.1: delta > 0 and epsilon >= eps_min, only when noise is added. */
static int s_dp(const SYS(DifferentialPrivacyParams) * sp, const V2(DifferentialPrivacyParams) * vp,
                bool noise, double eps_min, const char *what, dy_dp_params_t *out, char *errbuf,
                size_t errlen)
{
    out->epsilon = sp ? sp->epsilon : vp ? vp->epsilon : 0.0;
    out->delta = sp ? sp->delta : vp ? vp->delta : 0.0;
    if (!noise)
        return 0;
    if (!isfinite(out->epsilon) || !isfinite(out->delta) || !(out->delta > 0.0))
        return s_fail(errbuf, errlen, -EINVAL, "%s privacy delta %g must be > 0", what,
                      out->delta);
    if (!(out->epsilon >= eps_min))
        return s_fail(errbuf, errlen, -EINVAL, "%s privacy epsilon %g is below %g", what,
                      out->epsilon, eps_min);
    return 0;
}

/* A serialized api EncryptionPublicKey of format ECIES_P256 with a valid 33-byte point. */
static int s_enc_key(const uint8_t *data, size_t len, uint8_t out[33])
{
    V2(EncryptionPublicKey) *k = wfa__measurement__api__v2alpha__encryption_public_key__unpack(
        NULL, len, data);
    if (k == NULL)
        return -EINVAL;
    int rc = -EINVAL;
    if (k->format == V2E(ENCRYPTION_PUBLIC_KEY__FORMAT__ECIES_P256) && k->data.len == 33) {
        EVP_PKEY *pk = dy_sig_key_from_pub(k->data.data, 33);
        if (pk != NULL) {
            memcpy(out, k->data.data, 33);
            EVP_PKEY_free(pk);
            rc = 0;
        }
    }
    wfa__measurement__api__v2alpha__encryption_public_key__free_unpacked(k, NULL);
    return rc;
}

/* A serialized api ElGamalPublicKey: curve 415, generator G, a valid element. */
static int s_elgamal_key(const uint8_t *data, size_t len, uint8_t out[33])
{
    V2(ElGamalPublicKey) *k =
        wfa__measurement__api__v2alpha__el_gamal_public_key__unpack(NULL, len, data);
    if (k == NULL)
        return -EINVAL;
    int rc = -EINVAL;
    if (k->elliptic_curve_id == S_CURVE_ID && k->generator.len == 33
        && memcmp(k->generator.data, s_generator, 33) == 0 && k->element.len == 33) {
        EVP_PKEY *pk = dy_sig_key_from_pub(k->element.data, 33);
        if (pk != NULL) {
            memcpy(out, k->element.data, 33);
            EVP_PKEY_free(pk);
            rc = 0;
        }
    }
    wfa__measurement__api__v2alpha__el_gamal_public_key__free_unpacked(k, NULL);
    return rc;
}

/* SHA-1(a ‖ b): the ring-order digest (§5.1). */
static int s_sha1_2(const void *a, size_t alen, const void *b, size_t blen, uint8_t out[20])
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    unsigned int n = 0;
    int ok = ctx != NULL && EVP_DigestInit_ex(ctx, EVP_sha1(), NULL) == 1
             && EVP_DigestUpdate(ctx, a, alen) == 1 && EVP_DigestUpdate(ctx, b, blen) == 1
             && EVP_DigestFinal_ex(ctx, out, &n) == 1 && n == 20;
    EVP_MD_CTX_free(ctx);
    return ok ? 0 : -EIO;
}

static int s_req_cmp(const void *a, const void *b)
{
    return strcmp(((const dy_details_req_t *)a)->id, ((const dy_details_req_t *)b)->id);
}

static dy_participant_t *s_find(dy_details_t *d, const char *id)
{
    for (size_t i = 0; i < d->nparticipants; i++)
        if (strcmp(d->participants[i].id, id) == 0)
            return &d->participants[i];
    return NULL;
}

/* The ring when every LLv2 key is known: NAs by digest, then the aggregator. */
static int s_ring(dy_details_t *d, char *errbuf, size_t errlen)
{
    d->has_ring = false;
    if (d->protocol != DY_PROTO_LLV2 && d->protocol != DY_PROTO_RO_LLV2)
        return 0;
    if (d->nparticipants != 3)
        return 0;
    const dy_participant_t *na[2] = {NULL, NULL};
    size_t nna = 0;
    bool agg = false;
    for (size_t i = 0; i < 3; i++) {
        const dy_participant_t *p = &d->participants[i];
        if (!p->has_elgamal_key)
            return 0;
        if (strcmp(p->id, d->aggregator) == 0)
            agg = true;
        else if (nna < 2)
            na[nna++] = p;
    }
    if (!agg || nna != 2)
        return s_fail(errbuf, errlen, -EINVAL, "aggregator %s is not one of the participants",
                      d->aggregator);
    int c = memcmp(na[0]->elgamal_key_bytes_sha1, na[1]->elgamal_key_bytes_sha1, 20);
    if (c == 0)
        return s_fail(errbuf, errlen, -EINVAL, "two non-aggregators published the same key");
    if (c > 0) {
        const dy_participant_t *t = na[0];
        na[0] = na[1];
        na[1] = t;
    }
    snprintf(d->ring[0], DY_ID_MAX, "%s", na[0]->id);
    snprintf(d->ring[1], DY_ID_MAX, "%s", na[1]->id);
    snprintf(d->ring[2], DY_ID_MAX, "%s", d->aggregator);
    d->has_ring = true;
    return 0;
}

static int s_participants(dy_details_t *d, const SYS(Computation) * k, char *errbuf,
                          size_t errlen)
{
    if (k->n_computation_participants > 3)
        return s_fail(errbuf, errlen, -EINVAL, "%zu participants (at most 3)",
                      k->n_computation_participants);
    for (size_t i = 0; i < k->n_computation_participants; i++) {
        const SYS(ComputationParticipant) *cp = k->computation_participants[i];
        dy_participant_t *p = &d->participants[d->nparticipants];
        char comp[DY_ID_MAX];
        if (!s_parse_name(cp->name, "participants", comp, p->id)
            || strcmp(comp, d->computation_id) != 0)
            return s_fail(errbuf, errlen, -EINVAL, "bad participant name");
        if (s_find(d, p->id) != NULL)
            return s_fail(errbuf, errlen, -EINVAL, "participant %s listed twice", p->id);
        p->state = (int)cp->state;
        d->nparticipants++;
        const SYS(ComputationParticipant__RequisitionParams) *rp = cp->requisition_params;
        if (rp == NULL)
            continue;
        if (rp->duchy_certificate != NULL) {
            if (strlen(rp->duchy_certificate) >= sizeof(p->duchy_certificate))
                return s_fail(errbuf, errlen, -EINVAL, "participant %s: certificate name too long",
                              p->id);
            snprintf(p->duchy_certificate, sizeof(p->duchy_certificate), "%s",
                     rp->duchy_certificate);
        }
        switch (rp->protocol_case) {
        case SYSE(COMPUTATION_PARTICIPANT__REQUISITION_PARAMS__PROTOCOL_LIQUID_LEGIONS_V2):
        case SYSE(COMPUTATION_PARTICIPANT__REQUISITION_PARAMS__PROTOCOL_REACH_ONLY_LIQUID_LEGIONS_V2): {
            const SYS(ComputationParticipant__RequisitionParams__LiquidLegionsV2) *ll =
                rp->protocol_case
                        == SYSE(COMPUTATION_PARTICIPANT__REQUISITION_PARAMS__PROTOCOL_LIQUID_LEGIONS_V2)
                    ? rp->liquid_legions_v2
                    : rp->reach_only_liquid_legions_v2;
            if (d->protocol == DY_PROTO_HMSS)
                return s_fail(errbuf, errlen, -EINVAL,
                              "participant %s: LLv2 params in an HMSS computation", p->id);
            if (ll == NULL || ll->el_gamal_public_key.len == 0)
                break;
            if (s_elgamal_key(ll->el_gamal_public_key.data, ll->el_gamal_public_key.len,
                              p->elgamal_key)
                < 0)
                return s_fail(errbuf, errlen, -EINVAL,
                              "participant %s: invalid ElGamal public key", p->id);
            p->has_elgamal_key = true;
            if (s_sha1_2(ll->el_gamal_public_key.data, ll->el_gamal_public_key.len,
                         d->computation_id, strlen(d->computation_id),
                         p->elgamal_key_bytes_sha1)
                < 0)
                return -EIO;
            break;
        }
        case SYSE(COMPUTATION_PARTICIPANT__REQUISITION_PARAMS__PROTOCOL_HONEST_MAJORITY_SHARE_SHUFFLE): {
            const SYS(ComputationParticipant__RequisitionParams__HonestMajorityShareShuffle) *h =
                rp->honest_majority_share_shuffle;
            if (d->protocol != DY_PROTO_HMSS)
                return s_fail(errbuf, errlen, -EINVAL,
                              "participant %s: HMSS params in an LLv2 computation", p->id);
            if (h == NULL || h->tink_public_key.len == 0)
                break; /* the aggregator's empty sub-message */
            if (s_enc_key(h->tink_public_key.data, h->tink_public_key.len, p->hmss_key) < 0)
                return s_fail(errbuf, errlen, -EINVAL,
                              "participant %s: invalid HMSS encryption public key", p->id);
            p->has_hmss_key = true;
            break;
        }
        case SYSE(COMPUTATION_PARTICIPANT__REQUISITION_PARAMS__PROTOCOL__NOT_SET):
            break;
        default:
            return s_fail(errbuf, errlen, -EINVAL, "participant %s: unsupported params protocol",
                          p->id);
        }
    }
    return 0;
}

static int s_requisitions(dy_details_t *d, const SYS(Computation) * k, char *errbuf,
                          size_t errlen)
{
    if (k->n_requisitions == 0)
        return 0;
    d->requisitions = calloc(k->n_requisitions, sizeof(*d->requisitions));
    if (d->requisitions == NULL)
        return -ENOMEM;
    for (size_t i = 0; i < k->n_requisitions; i++) {
        const SYS(Requisition) *r = k->requisitions[i];
        dy_details_req_t *q = &d->requisitions[d->nrequisitions];
        char comp[DY_ID_MAX];
        if (r->name == NULL || strlen(r->name) >= sizeof(q->name)
            || !s_parse_name(r->name, "requisitions", comp, q->id)
            || strcmp(comp, d->computation_id) != 0)
            return s_fail(errbuf, errlen, -EINVAL, "bad requisition name");
        snprintf(q->name, sizeof(q->name), "%s", r->name);
        q->state = (int)r->state;
        if (r->nonce_hash.len != 32)
            return s_fail(errbuf, errlen, -EINVAL, "requisition %s: nonce hash of %zu bytes",
                          q->id, r->nonce_hash.len);
        memcpy(q->nonce_hash, r->nonce_hash.data, 32);
        q->nonce = r->nonce;
        if (r->fulfilling_computation_participant != NULL
            && r->fulfilling_computation_participant[0] != '\0') {
            if (!s_parse_name(r->fulfilling_computation_participant, "participants", comp,
                              q->fulfilling_duchy)
                || strcmp(comp, d->computation_id) != 0)
                return s_fail(errbuf, errlen, -EINVAL,
                              "requisition %s: bad fulfilling participant", q->id);
        }
        d->nrequisitions++;
    }
    qsort(d->requisitions, d->nrequisitions, sizeof(*d->requisitions), s_req_cmp);
    for (size_t i = 1; i < d->nrequisitions; i++)
        if (strcmp(d->requisitions[i - 1].id, d->requisitions[i].id) == 0)
            return s_fail(errbuf, errlen, -EINVAL, "requisition %s listed twice",
                          d->requisitions[i].id);
    return 0;
}

/* The measurement spec: type, DP params, max frequency, vid interval, MC key, nonces. */
static int s_spec(dy_details_t *d, const SYS(Computation) * k, int llv2_max_frequency,
                  char *errbuf, size_t errlen)
{
    V2(MeasurementSpec) *s = wfa__measurement__api__v2alpha__measurement_spec__unpack(
        NULL, k->measurement_spec.len, k->measurement_spec.data);
    if (s == NULL)
        return s_fail(errbuf, errlen, -EINVAL, "measurement spec does not parse");
    int rc = -EINVAL;
    bool noise = d->noise != DY_NOISE_NONE;
    double eps_min = d->protocol == DY_PROTO_HMSS ? S_EPS_MIN_HMSS : S_EPS_MIN_LLV2;
    const Google__Protobuf__Any *any = s->measurement_public_key;
    if (any == NULL || any->type_url == NULL || strcmp(any->type_url, S_TYPE_ENC_KEY) != 0
        || s_enc_key(any->value.data, any->value.len, d->mc_public_key) < 0) {
        rc = s_fail(errbuf, errlen, -EINVAL,
                    "measurement public key is not an ECIES_P256 EncryptionPublicKey");
        goto out;
    }
    if (s->measurement_type_case == V2E(MEASUREMENT_SPEC__MEASUREMENT_TYPE_REACH)) {
        d->reach_only = true;
        d->max_frequency = 1;
        if ((rc = s_dp(NULL, s->reach->privacy_params, noise, eps_min, "reach", &d->reach_dp,
                       errbuf, errlen))
            < 0)
            goto out;
    } else if (s->measurement_type_case
               == V2E(MEASUREMENT_SPEC__MEASUREMENT_TYPE_REACH_AND_FREQUENCY)) {
        if (d->protocol == DY_PROTO_RO_LLV2) {
            rc = s_fail(errbuf, errlen, -EINVAL,
                        "reach-only LLv2 cannot serve a reach-and-frequency measurement");
            goto out;
        }
        const V2(MeasurementSpec__ReachAndFrequency) *rf = s->reach_and_frequency;
        d->reach_only = false;
        d->max_frequency = rf->maximum_frequency;
        if (d->max_frequency == 0 && d->protocol == DY_PROTO_LLV2)
            d->max_frequency = llv2_max_frequency; /* deprecated config field */
        if (d->max_frequency <= 1) {
            rc = s_fail(errbuf, errlen, -EINVAL,
                        "reach-and-frequency maximum frequency %d must be > 1", d->max_frequency);
            goto out;
        }
        if ((rc = s_dp(NULL, rf->reach_privacy_params, noise, eps_min, "reach", &d->reach_dp,
                       errbuf, errlen))
                < 0
            || (rc = s_dp(NULL, rf->frequency_privacy_params, noise, eps_min, "frequency",
                          &d->frequency_dp, errbuf, errlen))
                   < 0)
            goto out;
    } else {
        rc = s_fail(errbuf, errlen, -EINVAL, "unsupported measurement type");
        goto out;
    }
    d->vid_start = s->vid_sampling_interval ? s->vid_sampling_interval->start : 0.0f;
    d->vid_width = s->vid_sampling_interval ? s->vid_sampling_interval->width : 1.0f;
    if (!(d->vid_width > 0.0f && d->vid_width <= 1.0f)
        || !(d->vid_start >= 0.0f && d->vid_start <= 1.0f)) {
        rc = s_fail(errbuf, errlen, -EINVAL, "vid sampling interval (%g, %g) is invalid",
                    (double)d->vid_start, (double)d->vid_width);
        goto out;
    }
    if (s->n_nonce_hashes > 0) {
        d->nonce_hashes = calloc(s->n_nonce_hashes, 32);
        if (d->nonce_hashes == NULL) {
            rc = -ENOMEM;
            goto out;
        }
        for (size_t i = 0; i < s->n_nonce_hashes; i++) {
            if (s->nonce_hashes[i].len != 32) {
                rc = s_fail(errbuf, errlen, -EINVAL, "nonce hash %zu is %zu bytes", i,
                            s->nonce_hashes[i].len);
                goto out;
            }
            memcpy(d->nonce_hashes[i], s->nonce_hashes[i].data, 32);
        }
        d->nnonce_hashes = s->n_nonce_hashes;
    }
    rc = 0;
out:
    wfa__measurement__api__v2alpha__measurement_spec__free_unpacked(s, NULL);
    return rc;
}

/* The protocol config; the spec is read after it (noise decides which DP checks apply). */
static int s_config(dy_details_t *d, const SYS(Computation) * k, int *ret_llv2_mf, char *errbuf,
                    size_t errlen)
{
    const SYS(Computation__MpcProtocolConfig) *cfg = k->mpc_protocol_config;
    if (cfg == NULL)
        return s_fail(errbuf, errlen, -EINVAL, "no protocol config");
    *ret_llv2_mf = 0;
    switch (cfg->protocol_case) {
    case MPC(PROTOCOL_LIQUID_LEGIONS_V2):
    case MPC(PROTOCOL_REACH_ONLY_LIQUID_LEGIONS_V2): {
        bool ro = cfg->protocol_case == MPC(PROTOCOL_REACH_ONLY_LIQUID_LEGIONS_V2);
        const SYS(Computation__MpcProtocolConfig__LiquidLegionsV2) *ll =
            ro ? cfg->reach_only_liquid_legions_v2 : cfg->liquid_legions_v2;
        d->protocol = ro ? DY_PROTO_RO_LLV2 : DY_PROTO_LLV2;
        if (ll == NULL)
            return s_fail(errbuf, errlen, -EINVAL, "empty LLv2 config");
        if (ll->elliptic_curve_id != S_CURVE_ID)
            return s_fail(errbuf, errlen, -EINVAL, "elliptic curve %d (only 415 is accepted)",
                          ll->elliptic_curve_id);
        if (!s_noise_ok(ll->noise_mechanism))
            return s_fail(errbuf, errlen, -EINVAL, "noise mechanism %d (%s) is not supported",
                          (int)ll->noise_mechanism, s_noise_name(ll->noise_mechanism));
        d->noise = (dy_noise_mech_t)ll->noise_mechanism;
        if (ll->sketch_params == NULL || !(ll->sketch_params->decay_rate > 0.0)
            || !isfinite(ll->sketch_params->decay_rate) || ll->sketch_params->max_size <= 0)
            return s_fail(errbuf, errlen, -EINVAL, "LLv2 sketch parameters are missing or invalid");
        d->decay_rate = ll->sketch_params->decay_rate;
        d->sketch_size = ll->sketch_params->max_size;
        bool noise = d->noise != DY_NOISE_NONE;
        const SYS(Computation__MpcProtocolConfig__LiquidLegionsV2__MpcNoise) *mn = ll->mpc_noise;
        int rc;
        if ((rc = s_dp(mn ? mn->blinded_histogram_noise : NULL, NULL, noise, S_EPS_MIN_LLV2,
                       "blinded histogram", &d->blinded_histogram_dp, errbuf, errlen))
                < 0
            || (rc = s_dp(mn ? mn->publisher_noise : NULL, NULL, noise, S_EPS_MIN_LLV2,
                          "publisher", &d->publisher_dp, errbuf, errlen))
                   < 0)
            return rc;
        *ret_llv2_mf = ll->maximum_frequency;
        return 0;
    }
    case MPC(PROTOCOL_HONEST_MAJORITY_SHARE_SHUFFLE): {
        const SYS(Computation__MpcProtocolConfig__HonestMajorityShareShuffle) *h =
            cfg->honest_majority_share_shuffle;
        d->protocol = DY_PROTO_HMSS;
        if (h == NULL)
            return s_fail(errbuf, errlen, -EINVAL, "empty HMSS config");
        if (!s_noise_ok(h->noise_mechanism))
            return s_fail(errbuf, errlen, -EINVAL, "noise mechanism %d (%s) is not supported",
                          (int)h->noise_mechanism, s_noise_name(h->noise_mechanism));
        d->noise = (dy_noise_mech_t)h->noise_mechanism;
        return 0;
    }
    case MPC(PROTOCOL_TRUS_TEE):
        return s_fail(errbuf, errlen, -EINVAL, "protocol TrusTee is not supported");
    default:
        return s_fail(errbuf, errlen, -EINVAL, "no protocol in the config");
    }
}

/* HMSS moduli after the spec (the measurement type picks the modulus). */
static int s_hmss(dy_details_t *d, const SYS(Computation) * k, char *errbuf, size_t errlen)
{
    const SYS(Computation__MpcProtocolConfig__HonestMajorityShareShuffle) *h =
        k->mpc_protocol_config->honest_majority_share_shuffle;
    int64_t q = d->reach_only ? h->reach_ring_modulus : h->reach_and_frequency_ring_modulus;
    if (q < 2)
        return s_fail(errbuf, errlen, -EINVAL, "ring modulus %lld is invalid", (long long)q);
    d->ring_modulus = (uint64_t)q;
    dy_hmss_params_t p = {
        .ring_modulus = d->ring_modulus,
        .max_frequency = d->max_frequency,
        .num_sketches = d->nrequisitions > 0 ? (int)d->nrequisitions : 1,
        .reach_only = d->reach_only,
        .vid_width = d->vid_width,
        .noise = d->noise,
        .reach = d->reach_dp,
        .frequency = d->frequency_dp,
        .threads = 1,
    };
    dy_err_t err;
    dy_err_clear(&err);
    if (dy_hmss_params_check(&p, &err) < 0)
        return s_fail(errbuf, errlen, -EINVAL, "%s", err.message);
    return 0;
}

/* Everything but role, aggregator ids and ring, from a Kingdom Computation. */
static int s_from_kingdom(const SYS(Computation) * k, const char *my_id, dy_details_t *d,
                          char *errbuf, size_t errlen)
{
    int rc;
    if (!s_parse_name(k->name, NULL, d->computation_id, NULL))
        return s_fail(errbuf, errlen, -EINVAL, "bad computation name");
    snprintf(d->name, sizeof(d->name), "computations/%s", d->computation_id);
    if (my_id == NULL || strlen(my_id) >= sizeof(d->my_id))
        return s_fail(errbuf, errlen, -EINVAL, "bad duchy id");
    snprintf(d->my_id, sizeof(d->my_id), "%s", my_id);
    d->kingdom_state = (int)k->state;
    if (k->public_api_version == NULL || strcmp(k->public_api_version, S_API_VERSION) != 0)
        return s_fail(errbuf, errlen, -EINVAL, "public API version \"%s\" (want \"v2alpha\")",
                      k->public_api_version ? k->public_api_version : "");
    snprintf(d->public_api_version, sizeof(d->public_api_version), "%s", S_API_VERSION);
    int llv2_mf = 0;
    if ((rc = s_config(d, k, &llv2_mf, errbuf, errlen)) < 0)
        return rc;
    if ((rc = s_spec(d, k, llv2_mf, errbuf, errlen)) < 0)
        return rc;
    if ((rc = s_participants(d, k, errbuf, errlen)) < 0)
        return rc;
    if ((rc = s_requisitions(d, k, errbuf, errlen)) < 0)
        return rc;
    if (d->protocol == DY_PROTO_HMSS && (rc = s_hmss(d, k, errbuf, errlen)) < 0)
        return rc;
    if (d->nparticipants > 0 && s_find(d, my_id) == NULL)
        return s_fail(errbuf, errlen, -EINVAL, "duchy %s is not a participant", my_id);
    return 0;
}

static int s_role(dy_details_t *d, const char *aggregator_id, const char *first_na,
                  const char *second_na, char *errbuf, size_t errlen)
{
    if (aggregator_id == NULL || aggregator_id[0] == '\0'
        || strlen(aggregator_id) >= sizeof(d->aggregator))
        return s_fail(errbuf, errlen, -EINVAL, "no aggregator id");
    snprintf(d->aggregator, sizeof(d->aggregator), "%s", aggregator_id);
    if (d->protocol == DY_PROTO_HMSS) {
        if (first_na == NULL || second_na == NULL || first_na[0] == '\0' || second_na[0] == '\0'
            || strlen(first_na) >= DY_ID_MAX || strlen(second_na) >= DY_ID_MAX)
            return s_fail(errbuf, errlen, -EINVAL, "HMSS needs both non-aggregator ids");
        snprintf(d->first_na, sizeof(d->first_na), "%s", first_na);
        snprintf(d->second_na, sizeof(d->second_na), "%s", second_na);
        if (strcmp(d->my_id, aggregator_id) == 0)
            d->role = DY_ROLE_AGG;
        else if (strcmp(d->my_id, first_na) == 0)
            d->role = DY_ROLE_FNA;
        else if (strcmp(d->my_id, second_na) == 0)
            d->role = DY_ROLE_SNA;
        else
            return s_fail(errbuf, errlen, -EINVAL, "duchy %s has no HMSS role", d->my_id);
        for (size_t i = 0; i < d->nparticipants; i++) {
            const char *id = d->participants[i].id;
            if (strcmp(id, aggregator_id) != 0 && strcmp(id, first_na) != 0
                && strcmp(id, second_na) != 0)
                return s_fail(errbuf, errlen, -EINVAL, "participant %s has no HMSS role", id);
        }
    } else {
        d->role = strcmp(d->my_id, aggregator_id) == 0 ? DY_ROLE_AGG : DY_ROLE_NA;
    }
    if (d->nparticipants > 0 && s_find(d, aggregator_id) == NULL)
        return s_fail(errbuf, errlen, -EINVAL, "aggregator %s is not a participant",
                      aggregator_id);
    return 0;
}

void dy_details_free(dy_details_t *d)
{
    if (d == NULL)
        return;
    free(d->nonce_hashes);
    free(d->requisitions);
    memset(d, 0, sizeof(*d));
}

int dy_details_parse(const uint8_t *details, size_t len, const char *my_id, dy_details_t *out,
                     char *errbuf, size_t errlen)
{
    memset(out, 0, sizeof(*out));
    if (errbuf != NULL && errlen > 0)
        errbuf[0] = '\0';
    Halo__Internal__V1__ComputationDetails *cd =
        halo__internal__v1__computation_details__unpack(NULL, len, details);
    if (cd == NULL)
        return s_fail(errbuf, errlen, -EINVAL, "computation details do not parse");
    SYS(Computation) *k = wfa__measurement__system__v1alpha__computation__unpack(
        NULL, cd->kingdom_computation.len, cd->kingdom_computation.data);
    int rc;
    if (k == NULL) {
        rc = s_fail(errbuf, errlen, -EINVAL, "Kingdom computation does not parse");
        goto out;
    }
    if ((rc = s_from_kingdom(k, my_id, out, errbuf, errlen)) < 0)
        goto out;
    if ((int)cd->protocol != out->protocol) {
        rc = s_fail(errbuf, errlen, -EINVAL, "stored protocol %d differs from the config's %d",
                    (int)cd->protocol, out->protocol);
        goto out;
    }
    if ((rc = s_role(out, cd->aggregator_id, cd->first_non_aggregator_id,
                     cd->second_non_aggregator_id, errbuf, errlen))
        < 0)
        goto out;
    if ((int)cd->role != out->role) {
        rc = s_fail(errbuf, errlen, -EINVAL, "stored role %d differs from the derived %d",
                    (int)cd->role, out->role);
        goto out;
    }
    if ((rc = s_ring(out, errbuf, errlen)) < 0)
        goto out;
    if (cd->n_ring > 0) {
        bool same = out->has_ring && cd->n_ring == 3;
        for (size_t i = 0; same && i < 3; i++)
            same = strcmp(cd->ring[i], out->ring[i]) == 0;
        if (!same) {
            rc = s_fail(errbuf, errlen, -EINVAL, "stored ring differs from the keys' order");
            goto out;
        }
    }
    rc = 0;
out:
    if (k != NULL)
        wfa__measurement__system__v1alpha__computation__free_unpacked(k, NULL);
    halo__internal__v1__computation_details__free_unpacked(cd, NULL);
    if (rc < 0)
        dy_details_free(out);
    return rc;
}

int dy_details_build(const uint8_t *kingdom_computation, size_t len, const char *my_id,
                     const char *aggregator_id, const char *first_na, const char *second_na,
                     dy_buf_t *out, char *errbuf, size_t errlen)
{
    if (errbuf != NULL && errlen > 0)
        errbuf[0] = '\0';
    if (kingdom_computation == NULL && len > 0)
        return s_fail(errbuf, errlen, -EINVAL, "no computation");
    SYS(Computation) *k =
        wfa__measurement__system__v1alpha__computation__unpack(NULL, len, kingdom_computation);
    if (k == NULL)
        return s_fail(errbuf, errlen, -EINVAL, "Kingdom computation does not parse");
    dy_details_t d;
    memset(&d, 0, sizeof(d));
    int rc;
    if ((rc = s_from_kingdom(k, my_id, &d, errbuf, errlen)) < 0
        || (rc = s_role(&d, aggregator_id, first_na, second_na, errbuf, errlen)) < 0
        || (rc = s_ring(&d, errbuf, errlen)) < 0)
        goto out;
    Halo__Internal__V1__ComputationDetails cd = HALO__INTERNAL__V1__COMPUTATION_DETAILS__INIT;
    cd.kingdom_computation.data = (uint8_t *)kingdom_computation;
    cd.kingdom_computation.len = len;
    cd.protocol = (Halo__Internal__V1__Protocol)d.protocol;
    cd.role = (Halo__Internal__V1__Role)d.role;
    char *ring[3] = {d.ring[0], d.ring[1], d.ring[2]};
    if (d.has_ring) {
        cd.n_ring = 3;
        cd.ring = ring;
    }
    cd.aggregator_id = d.aggregator;
    cd.first_non_aggregator_id = d.first_na;
    cd.second_non_aggregator_id = d.second_na;
    size_t n = halo__internal__v1__computation_details__get_packed_size(&cd);
    uint8_t *dst = dy_buf_extend(out, n);
    if (dst == NULL) {
        rc = -ENOMEM;
        goto out;
    }
    halo__internal__v1__computation_details__pack(&cd, dst);
    rc = 0;
out:
    dy_details_free(&d);
    wfa__measurement__system__v1alpha__computation__free_unpacked(k, NULL);
    return rc;
}

int dy_details_ring_index(const dy_details_t *d, const char *id)
{
    if (d == NULL || id == NULL || !d->has_ring)
        return -EINVAL;
    for (int i = 0; i < 3; i++)
        if (strcmp(d->ring[i], id) == 0)
            return i;
    return -ENOENT;
}

const char *dy_details_successor(const dy_details_t *d)
{
    int i = dy_details_ring_index(d, d ? d->my_id : NULL);
    return i < 0 ? NULL : d->ring[(i + 1) % 3];
}

int dy_details_ring_keys(const dy_details_t *d, uint8_t out[3][33])
{
    if (d == NULL || !d->has_ring)
        return -EINVAL;
    for (int i = 0; i < 3; i++) {
        const dy_participant_t *p = NULL;
        for (size_t j = 0; j < d->nparticipants; j++)
            if (strcmp(d->participants[j].id, d->ring[i]) == 0)
                p = &d->participants[j];
        if (p == NULL || !p->has_elgamal_key)
            return -EINVAL;
        memcpy(out[i], p->elgamal_key, 33);
    }
    return 0;
}
