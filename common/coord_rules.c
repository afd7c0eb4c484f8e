/* coord_rules.c - the coordinator's checks that need a computation's details
 * and the stage tables, but no store (coord.h): names (PROTOCOL.md §1), the
 * AdvanceComputation header and expected sender (§6.1), body shapes (§3.7,
 * CRYPTO.md §4-§5), the RequisitionFulfillment checks (§3.8) and the
 * receivers of a stage's sends (§5 "Sends", §6.2).
 *
 * This file includes details.h and stages.h and never store.h (their type
 * names overlap); coord.c does the opposite.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/sha.h>

#include "control.pb-c.h"
#include "coord.h"
#include "details.h"
#include "duchy.pb-c.h"
#include "hmss.pb-c.h"
#include "public.pb-c.h"
#include "stages.h"
#include "system.pb-c.h"
#include "wire.h"

#define S_ADV_HDR Wfa__Measurement__System__V1alpha__AdvanceComputationRequest__Header
#define S_FUL_REQ Wfa__Measurement__Api__V2alpha__FulfillRequisitionRequest

void dy_coord_reply_clear(dy_coord_reply_t *r)
{
    if (!r)
        return;
    free(r->response);
    memset(r, 0, sizeof(*r));
}

int dy_coord_reply_error(dy_coord_reply_t *r, int code, int reason, const char *fmt, ...)
{
    free(r->response);
    memset(r, 0, sizeof(*r));
    r->code = code;
    r->reason = reason;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->message, sizeof(r->message), fmt, ap);
    va_end(ap);
    return -1;
}

/* ---- names ------------------------------------------------------------------------------ */

bool dy_coord_generated_id_ok(const char *id)
{
    uint64_t v;
    return dy_ext_id_decode(id, &v) == 0;
}

bool dy_coord_duchy_id_ok(const char *id)
{
    if (!id)
        return false;
    size_t n = strlen(id);
    if (n < 1 || n > 63 || id[0] < 'a' || id[0] > 'z')
        return false;
    for (size_t i = 1; i < n; i++) {
        char ch = id[i];
        bool ok = (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || (ch == '-' && i < n - 1);
        if (!ok)
            return false;
    }
    return true;
}

bool dy_coord_plain_id_ok(const char *id)
{
    if (!id)
        return false;
    size_t n = strlen(id);
    if (n < 1 || n > 63)
        return false;
    for (size_t i = 0; i < n; i++)
        if (dy_b64url_value(id[i]) < 0)
            return false;
    return true;
}

/* Splits name on '/' into exactly n segments (copied into seg, each < cap). */
static int s_split(const char *name, char seg[][DY_COORD_ID_MAX], int n)
{
    if (!name)
        return -EINVAL;
    const char *p = name;
    for (int i = 0; i < n; i++) {
        const char *e = strchr(p, '/');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        if (len == 0 || len >= DY_COORD_ID_MAX)
            return -EINVAL;
        memcpy(seg[i], p, len);
        seg[i][len] = '\0';
        if (i == n - 1) {
            if (e)
                return -EINVAL; /* more segments than expected */
        } else {
            if (!e)
                return -EINVAL;
            p = e + 1;
        }
    }
    return 0;
}

int dy_coord_parse_computation_name(const char *name, char ret_c[DY_COORD_ID_MAX])
{
    char seg[2][DY_COORD_ID_MAX];
    if (s_split(name, seg, 2) < 0 || strcmp(seg[0], "computations") != 0 ||
        !dy_coord_generated_id_ok(seg[1]))
        return -EINVAL;
    memcpy(ret_c, seg[1], DY_COORD_ID_MAX);
    return 0;
}

int dy_coord_parse_stage_name(const char *name, char ret_c[DY_COORD_ID_MAX],
                              char ret_d[DY_COORD_ID_MAX])
{
    char seg[5][DY_COORD_ID_MAX];
    if (s_split(name, seg, 5) < 0 || strcmp(seg[0], "computations") != 0 ||
        strcmp(seg[2], "participants") != 0 || strcmp(seg[4], "computationStage") != 0 ||
        !dy_coord_generated_id_ok(seg[1]) || !dy_coord_duchy_id_ok(seg[3]))
        return -EINVAL;
    memcpy(ret_c, seg[1], DY_COORD_ID_MAX);
    memcpy(ret_d, seg[3], DY_COORD_ID_MAX);
    return 0;
}

int dy_coord_parse_requisition_name(const char *name, char ret_dp[DY_COORD_ID_MAX],
                                    char ret_r[DY_COORD_ID_MAX])
{
    char seg[4][DY_COORD_ID_MAX];
    if (s_split(name, seg, 4) < 0 || strcmp(seg[0], "dataProviders") != 0 ||
        strcmp(seg[2], "requisitions") != 0 || !dy_coord_plain_id_ok(seg[1]) ||
        !dy_coord_generated_id_ok(seg[3]))
        return -EINVAL;
    memcpy(ret_dp, seg[1], DY_COORD_ID_MAX);
    memcpy(ret_r, seg[3], DY_COORD_ID_MAX);
    return 0;
}

const char *dy_coord_peer_duchy(const char *peer)
{
    if (!peer || strncmp(peer, "duchies/", 8) != 0 || !dy_coord_duchy_id_ok(peer + 8))
        return NULL;
    return peer + 8;
}

const char *dy_coord_stage_name(int protocol, int stage)
{
    return dy_stage_name(protocol, stage);
}

const char *dy_coord_protocol_name(int protocol)
{
    switch (protocol) {
    case DY_PROTO_LLV2:
        return "LIQUID_LEGIONS_V2";
    case DY_PROTO_RO_LLV2:
        return "REACH_ONLY_LIQUID_LEGIONS_V2";
    case DY_PROTO_HMSS:
        return "HONEST_MAJORITY_SHARE_SHUFFLE";
    default:
        return "UNKNOWN";
    }
}

const char *dy_coord_role_name(int role)
{
    switch (role) {
    case DY_ROLE_AGG:
        return "AGGREGATOR";
    case DY_ROLE_NA:
        return "NON_AGGREGATOR";
    case DY_ROLE_FNA:
        return "FIRST_NON_AGGREGATOR";
    case DY_ROLE_SNA:
        return "SECOND_NON_AGGREGATOR";
    default:
        return "UNKNOWN";
    }
}

/* ---- AdvanceComputation ------------------------------------------------------------------- */

int dy_coord_decode_advance(const uint8_t *req, size_t len, dy_coord_advance_hdr_t *ret,
                            dy_coord_reply_t *r)
{
    Wfa__Measurement__System__V1alpha__AdvanceComputationRequest *m =
        wfa__measurement__system__v1alpha__advance_computation_request__unpack(NULL, len, req);
    if (!m)
        return dy_coord_reply_error(r, DY_WIRE_STATUS_INVALID_ARGUMENT, 0, "malformed request");
    int rc = 0;
    memset(ret, 0, sizeof(*ret));
    const S_ADV_HDR *h =
        m->payload_case ==
                WFA__MEASUREMENT__SYSTEM__V1ALPHA__ADVANCE_COMPUTATION_REQUEST__PAYLOAD_HEADER
            ? m->header
            : NULL;
    if (!h) {
        rc = dy_coord_reply_error(r, DY_WIRE_STATUS_INVALID_ARGUMENT, 0,
                                  "first message is not a header");
        goto out;
    }
    if (dy_coord_parse_computation_name(h->name, ret->computation) < 0) {
        rc = dy_coord_reply_error(r, DY_WIRE_STATUS_INVALID_ARGUMENT, 0, "bad computation name");
        goto out;
    }
    switch (h->protocol_case) {
    case WFA__MEASUREMENT__SYSTEM__V1ALPHA__ADVANCE_COMPUTATION_REQUEST__HEADER__PROTOCOL_LIQUID_LEGIONS_V2:
        ret->protocol = DY_PROTO_LLV2;
        ret->description = h->liquid_legions_v2->description;
        break;
    case WFA__MEASUREMENT__SYSTEM__V1ALPHA__ADVANCE_COMPUTATION_REQUEST__HEADER__PROTOCOL_REACH_ONLY_LIQUID_LEGIONS_V2:
        ret->protocol = DY_PROTO_RO_LLV2;
        ret->description = h->reach_only_liquid_legions_v2->description;
        break;
    case WFA__MEASUREMENT__SYSTEM__V1ALPHA__ADVANCE_COMPUTATION_REQUEST__HEADER__PROTOCOL_HONEST_MAJORITY_SHARE_SHUFFLE:
        ret->protocol = DY_PROTO_HMSS;
        ret->description = h->honest_majority_share_shuffle->description;
        break;
    default:
        rc = dy_coord_reply_error(r, DY_WIRE_STATUS_INVALID_ARGUMENT, 0, "no protocol");
        goto out;
    }
    int max_desc = ret->protocol == DY_PROTO_LLV2 ? 4 : ret->protocol == DY_PROTO_RO_LLV2 ? 2 : 3;
    if (ret->description < 1 || ret->description > max_desc)
        rc = dy_coord_reply_error(r, DY_WIRE_STATUS_INVALID_ARGUMENT, 0, "bad description %d",
                                  ret->description);
out:
    wfa__measurement__system__v1alpha__advance_computation_request__free_unpacked(m, NULL);
    return rc;
}

static void s_copy_id(char dst[DY_COORD_ID_MAX], const char *src)
{
    snprintf(dst, DY_COORD_ID_MAX, "%s", src ? src : "");
}

int dy_coord_input_rule(const uint8_t *details, size_t details_len, const char *my_id,
                        int row_protocol, int row_role, const dy_coord_advance_hdr_t *h,
                        const char *sender, dy_coord_input_rule_t *ret, dy_coord_reply_t *r)
{
    if (h->protocol != row_protocol)
        return dy_coord_reply_error(r, DY_WIRE_STATUS_INVALID_ARGUMENT, 0,
                                    "protocol differs from the computation's");
    dy_stage_rule_t rule;
    if (dy_stage_receive_rule(row_protocol, row_role, h->description, &rule) < 0)
        return dy_coord_reply_error(r, DY_WIRE_STATUS_INVALID_ARGUMENT, 0,
                                    "description %d does not fit this duchy's role",
                                    h->description);
    if (!details || !details_len)
        return dy_coord_reply_error(r, DY_WIRE_STATUS_FAILED_PRECONDITION,
                                    DY_WIRE_REASON_STAGE_NOT_READY, "computation not set up yet");
    dy_details_t d;
    char err[160];
    if (dy_details_parse(details, details_len, my_id, &d, err, sizeof(err)) < 0)
        return dy_coord_reply_error(r, DY_WIRE_STATUS_FAILED_PRECONDITION,
                                    DY_WIRE_REASON_STAGE_NOT_READY, "details unreadable");
    memset(ret, 0, sizeof(*ret));
    ret->awaited = rule.awaited;
    ret->next = rule.next;
    int rc = 0;
    if (row_protocol == DY_PROTO_HMSS) {
        if (rule.slots == 2) { /* AGGREGATION_PHASE_INPUT: FNA and SNA */
            if (!d.first_na[0] || !d.second_na[0]) {
                rc = dy_coord_reply_error(r, DY_WIRE_STATUS_FAILED_PRECONDITION,
                                          DY_WIRE_REASON_STAGE_NOT_READY, "roles not known yet");
                goto out;
            }
            s_copy_id(ret->slots[0], d.first_na);
            s_copy_id(ret->slots[1], d.second_na);
            ret->nslots = 2;
        } else { /* SHUFFLE ONE from FNA (at SNA), TWO from SNA (at FNA) */
            const char *from = row_role == DY_ROLE_SNA ? d.first_na : d.second_na;
            if (!from[0]) {
                rc = dy_coord_reply_error(r, DY_WIRE_STATUS_FAILED_PRECONDITION,
                                          DY_WIRE_REASON_STAGE_NOT_READY, "roles not known yet");
                goto out;
            }
            s_copy_id(ret->slots[0], from);
            ret->nslots = 1;
        }
    } else if (rule.slots == 2) { /* LLv2 / RO SETUP_PHASE_INPUT at AG: each NA */
        size_t k = 0;
        for (size_t i = 0; i < d.nparticipants && k < 2; i++)
            if (strcmp(d.participants[i].id, d.aggregator) != 0)
                s_copy_id(ret->slots[k++], d.participants[i].id);
        if (k != 2) {
            rc = dy_coord_reply_error(r, DY_WIRE_STATUS_FAILED_PRECONDITION,
                                      DY_WIRE_REASON_STAGE_NOT_READY, "participants not known yet");
            goto out;
        }
        ret->nslots = 2;
    } else { /* execution inputs: the ring predecessor */
        int idx = d.has_ring ? dy_details_ring_index(&d, my_id) : -1;
        if (idx < 0) {
            rc = dy_coord_reply_error(r, DY_WIRE_STATUS_FAILED_PRECONDITION,
                                      DY_WIRE_REASON_STAGE_NOT_READY, "ring not known yet");
            goto out;
        }
        s_copy_id(ret->slots[0], d.ring[(idx + 2) % 3]);
        ret->nslots = 1;
    }
    for (size_t i = 0; i < ret->nslots; i++)
        if (sender && strcmp(ret->slots[i], sender) == 0)
            s_copy_id(ret->slot, sender);
    if (!ret->slot[0])
        rc = dy_coord_reply_error(r, DY_WIRE_STATUS_PERMISSION_DENIED, 0,
                                  "duchies/%s is not the expected sender", sender ? sender : "");
out:
    dy_details_free(&d);
    return rc;
}

static int s_why(char *why, size_t whylen, const char *fmt, ...) DY_PRINTF(3, 4);
static int s_why(char *why, size_t whylen, const char *fmt, ...)
{
    if (why && whylen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(why, whylen, fmt, ap);
        va_end(ap);
    }
    return -EINVAL;
}

int dy_coord_check_body(int protocol, int description, const uint8_t *body, size_t len, char *why,
                        size_t whylen)
{
    size_t block = 0;
    if (protocol == DY_PROTO_LLV2) {
        /* CRYPTO.md §4: CRVs of 390 B (setup, exec1), tuples of 520 B (exec2),
         * 130 B ciphertexts (exec3). */
        block = description <= 2 ? 390 : description == 3 ? 520 : 130;
    } else if (protocol == DY_PROTO_RO_LLV2) {
        block = 130; /* CRYPTO.md §5.2: index ciphertexts and the X block */
    } else if (protocol == DY_PROTO_HMSS) {
        if (description == 1 || description == 2) {
            Wfa__Measurement__Internal__Duchy__Protocol__ShufflePhaseInput *m =
                wfa__measurement__internal__duchy__protocol__shuffle_phase_input__unpack(NULL, len,
                                                                                         body);
            if (!m)
                return s_why(why, whylen, "body is not a ShufflePhaseInput");
            int rc = 0;
            if (m->peer_random_seed.len != 48)
                rc = s_why(why, whylen, "peer_random_seed is not 48 bytes");
            for (size_t i = 0; rc == 0 && i < m->n_secret_seeds; i++)
                if (m->secret_seeds[i]->register_count <= 0 ||
                    m->secret_seeds[i]->secret_seed_ciphertext.len == 0)
                    rc = s_why(why, whylen, "secret seed %zu incomplete", i);
            wfa__measurement__internal__duchy__protocol__shuffle_phase_input__free_unpacked(m,
                                                                                            NULL);
            return rc;
        }
        Wfa__Measurement__Internal__Duchy__Protocol__AggregationPhaseInput *m =
            wfa__measurement__internal__duchy__protocol__aggregation_phase_input__unpack(NULL, len,
                                                                                         body);
        if (!m)
            return s_why(why, whylen, "body is not an AggregationPhaseInput");
        int rc = 0;
        if (m->register_count < 0)
            rc = s_why(why, whylen, "negative register_count");
        wfa__measurement__internal__duchy__protocol__aggregation_phase_input__free_unpacked(m,
                                                                                            NULL);
        return rc;
    } else {
        return s_why(why, whylen, "unknown protocol");
    }
    if (len % block != 0)
        return s_why(why, whylen, "body of %zu bytes is not whole %zu-byte blocks", len, block);
    return 0;
}

/* ---- FulfillRequisition ------------------------------------------------------------------- */

void dy_coord_fulfill_hdr_free(dy_coord_fulfill_hdr_t *h)
{
    if (!h)
        return;
    free(h->seed);
    memset(h, 0, sizeof(*h));
}

int dy_coord_decode_fulfill(const uint8_t *req, size_t len, const char *peer,
                            dy_coord_fulfill_hdr_t *ret, dy_coord_reply_t *r)
{
    memset(ret, 0, sizeof(*ret));
    S_FUL_REQ *m =
        wfa__measurement__api__v2alpha__fulfill_requisition_request__unpack(NULL, len, req);
    if (!m)
        return dy_coord_reply_error(r, DY_WIRE_STATUS_INVALID_ARGUMENT, 0, "malformed request");
    int rc = 0;
    const Wfa__Measurement__Api__V2alpha__FulfillRequisitionRequest__Header *h =
        m->payload_case ==
                WFA__MEASUREMENT__API__V2ALPHA__FULFILL_REQUISITION_REQUEST__PAYLOAD_HEADER
            ? m->header
            : NULL;
    if (!h) {
        rc = dy_coord_reply_error(r, DY_WIRE_STATUS_INVALID_ARGUMENT, 0,
                                  "first message is not a header");
        goto out;
    }
    if (dy_coord_parse_requisition_name(h->name, ret->dp, ret->req) < 0) {
        rc = dy_coord_reply_error(r, DY_WIRE_STATUS_INVALID_ARGUMENT, 0, "bad requisition name");
        goto out;
    }
    /* The caller owns the requisition: its certificate's party is the name's
     * data provider (PROTOCOL.md §9; the system view names no EDP). */
    if (!peer || strncmp(peer, "dataProviders/", 14) != 0 || strcmp(peer + 14, ret->dp) != 0) {
        rc = dy_coord_reply_error(r, DY_WIRE_STATUS_PERMISSION_DENIED, 0,
                                  "requisition of another data provider");
        goto out;
    }
    if (h->nonce == 0) {
        rc = dy_coord_reply_error(r, DY_WIRE_STATUS_INVALID_ARGUMENT, 0, "nonce is 0");
        goto out;
    }
    if (h->requisition_fingerprint.len != 32) {
        rc = dy_coord_reply_error(r, DY_WIRE_STATUS_INVALID_ARGUMENT, 0,
                                  "requisition_fingerprint is not 32 bytes");
        goto out;
    }
    memcpy(ret->fingerprint, h->requisition_fingerprint.data, 32);
    ret->nonce = h->nonce;
    if (h->protocol_case ==
        WFA__MEASUREMENT__API__V2ALPHA__FULFILL_REQUISITION_REQUEST__HEADER__PROTOCOL_HONEST_MAJORITY_SHARE_SHUFFLE) {
        const Wfa__Measurement__Api__V2alpha__FulfillRequisitionRequest__Header__HonestMajorityShareShuffle
            *hm = h->honest_majority_share_shuffle;
        ret->hmss = true;
        ret->register_count = hm->register_count;
        if (!hm->secret_seed || hm->secret_seed->ciphertext.len == 0 || hm->register_count <= 0 ||
            !hm->data_provider_certificate || !hm->data_provider_certificate[0]) {
            rc = dy_coord_reply_error(r, DY_WIRE_STATUS_INVALID_ARGUMENT, 0,
                                      "HMSS needs secret_seed, register_count > 0 and "
                                      "data_provider_certificate");
            goto out;
        }
        if ((uint64_t)hm->register_count > (UINT64_MAX / 4)) {
            rc = dy_coord_reply_error(r, DY_WIRE_STATUS_INVALID_ARGUMENT, 0,
                                      "register_count too large");
            goto out;
        }
        size_t n = protobuf_c_message_get_packed_size(&hm->base);
        ret->seed = malloc(n ? n : 1);
        if (!ret->seed) {
            rc = dy_coord_reply_error(r, DY_WIRE_STATUS_INTERNAL, 0, "out of memory");
            goto out;
        }
        ret->seed_len = protobuf_c_message_pack(&hm->base, ret->seed);
    }
out:
    wfa__measurement__api__v2alpha__fulfill_requisition_request__free_unpacked(m, NULL);
    if (rc < 0)
        dy_coord_fulfill_hdr_free(ret);
    return rc;
}

int dy_coord_fulfill_match(const uint8_t *details, size_t details_len, const char *my_id,
                           const dy_coord_fulfill_hdr_t *h, dy_coord_fulfill_match_t *ret,
                           dy_coord_reply_t *r)
{
    if (!details || !details_len)
        return 0;
    Halo__Internal__V1__ComputationDetails *cd =
        halo__internal__v1__computation_details__unpack(NULL, details_len, details);
    if (!cd)
        return 0;
    Wfa__Measurement__System__V1alpha__Computation *kc =
        wfa__measurement__system__v1alpha__computation__unpack(NULL, cd->kingdom_computation.len,
                                                               cd->kingdom_computation.data);
    int rc = 0;
    if (!kc)
        goto out;
    char comp[DY_COORD_ID_MAX];
    if (dy_coord_parse_computation_name(kc->name, comp) < 0)
        goto out;
    char want[256];
    snprintf(want, sizeof(want), "computations/%s/requisitions/%s", comp, h->req);
    const Wfa__Measurement__System__V1alpha__Requisition *rq = NULL;
    for (size_t i = 0; i < kc->n_requisitions; i++)
        if (kc->requisitions[i]->name && strcmp(kc->requisitions[i]->name, want) == 0)
            rq = kc->requisitions[i];
    if (!rq)
        goto out;

    /* Fingerprint = SHA-256(serialized MeasurementSpec || requisition_spec_hash). */
    uint8_t fp[32];
    size_t fl = kc->measurement_spec.len + rq->requisition_spec_hash.len;
    uint8_t *fb = malloc(fl ? fl : 1);
    if (!fb) {
        rc = dy_coord_reply_error(r, DY_WIRE_STATUS_INTERNAL, 0, "out of memory");
        goto out;
    }
    if (kc->measurement_spec.len)
        memcpy(fb, kc->measurement_spec.data, kc->measurement_spec.len);
    if (rq->requisition_spec_hash.len)
        memcpy(fb + kc->measurement_spec.len, rq->requisition_spec_hash.data,
               rq->requisition_spec_hash.len);
    SHA256(fb, fl, fp);
    free(fb);
    if (memcmp(fp, h->fingerprint, 32) != 0) {
        rc = dy_coord_reply_error(r, DY_WIRE_STATUS_FAILED_PRECONDITION, 0,
                                  "requisition fingerprint mismatch");
        goto out;
    }
    uint8_t nb[8], nh[32];
    for (int i = 0; i < 8; i++)
        nb[i] = (uint8_t)(h->nonce >> (56 - 8 * i));
    SHA256(nb, sizeof(nb), nh);
    bool in_spec = false;
    Wfa__Measurement__Api__V2alpha__MeasurementSpec *spec =
        wfa__measurement__api__v2alpha__measurement_spec__unpack(NULL, kc->measurement_spec.len,
                                                                 kc->measurement_spec.data);
    for (size_t i = 0; spec && i < spec->n_nonce_hashes; i++)
        if (spec->nonce_hashes[i].len == 32 && memcmp(spec->nonce_hashes[i].data, nh, 32) == 0)
            in_spec = true;
    if (spec)
        wfa__measurement__api__v2alpha__measurement_spec__free_unpacked(spec, NULL);
    if (rq->nonce_hash.len != 32 || memcmp(rq->nonce_hash.data, nh, 32) != 0 || !in_spec) {
        rc = dy_coord_reply_error(r, DY_WIRE_STATUS_FAILED_PRECONDITION, 0,
                                  "SHA-256(nonce) does not match the nonce hash");
        goto out;
    }

    memset(ret, 0, sizeof(*ret));
    snprintf(ret->name, sizeof(ret->name), "%s", want);
    switch (cd->protocol) {
    case HALO__INTERNAL__V1__PROTOCOL__LIQUID_LEGIONS_V2:
        ret->protocol = DY_PROTO_LLV2;
        break;
    case HALO__INTERNAL__V1__PROTOCOL__REACH_ONLY_LIQUID_LEGIONS_V2:
        ret->protocol = DY_PROTO_RO_LLV2;
        break;
    case HALO__INTERNAL__V1__PROTOCOL__HONEST_MAJORITY_SHARE_SHUFFLE:
        ret->protocol = DY_PROTO_HMSS;
        break;
    default:
        rc = dy_coord_reply_error(r, DY_WIRE_STATUS_FAILED_PRECONDITION, 0, "unknown protocol");
        goto out;
    }
    const char *fcp = rq->fulfilling_computation_participant;
    const char *slash = fcp ? strrchr(fcp, '/') : NULL;
    if (slash && slash[1])
        s_copy_id(ret->fulfilling_duchy, slash + 1);
    if (ret->protocol == DY_PROTO_HMSS) {
        if (!h->hmss) {
            rc = dy_coord_reply_error(r, DY_WIRE_STATUS_INVALID_ARGUMENT, 0, "HMSS fields missing");
            goto out;
        }
        /* §3.3: fixed at creation, id mod 2: 0 = FNA, 1 = SNA.  The Kingdom's
         * system view names the fulfilling participant only once fulfilled. */
        uint64_t rid = 0;
        (void)dy_ext_id_decode(h->req, &rid);
        const char *assigned =
            rid % 2 == 0 ? cd->first_non_aggregator_id : cd->second_non_aggregator_id;
        s_copy_id(ret->fulfilling_duchy, assigned);
        if (strcmp(ret->fulfilling_duchy, my_id) != 0) {
            rc = dy_coord_reply_error(r, DY_WIRE_STATUS_INVALID_ARGUMENT, 0,
                                      "requisition is not assigned to this duchy");
            goto out;
        }
        ret->exact_size = (uint64_t)h->register_count * 4u;
    } else {
        if (h->hmss) {
            rc = dy_coord_reply_error(r, DY_WIRE_STATUS_INVALID_ARGUMENT, 0,
                                      "HMSS fields for an LLv2 computation");
            goto out;
        }
        ret->block = ret->protocol == DY_PROTO_LLV2 ? 390 : 130;
    }
    rc = 1;
out:
    if (kc)
        wfa__measurement__system__v1alpha__computation__free_unpacked(kc, NULL);
    halo__internal__v1__computation_details__free_unpacked(cd, NULL);
    return rc;
}

/* ---- sends ------------------------------------------------------------------------------- */

void dy_coord_send_free(dy_coord_send_t *s)
{
    if (!s)
        return;
    free(s->header);
    memset(s, 0, sizeof(*s));
}

static int s_pack_header(const char *comp, int protocol, int description, dy_coord_send_t *s)
{
    char name[DY_COORD_ID_MAX + 16];
    snprintf(name, sizeof(name), "computations/%s", comp);
    Wfa__Measurement__System__V1alpha__AdvanceComputationRequest req =
        WFA__MEASUREMENT__SYSTEM__V1ALPHA__ADVANCE_COMPUTATION_REQUEST__INIT;
    S_ADV_HDR h = WFA__MEASUREMENT__SYSTEM__V1ALPHA__ADVANCE_COMPUTATION_REQUEST__HEADER__INIT;
    Wfa__Measurement__System__V1alpha__LiquidLegionsV2 ll =
        WFA__MEASUREMENT__SYSTEM__V1ALPHA__LIQUID_LEGIONS_V2__INIT;
    Wfa__Measurement__System__V1alpha__ReachOnlyLiquidLegionsV2 ro =
        WFA__MEASUREMENT__SYSTEM__V1ALPHA__REACH_ONLY_LIQUID_LEGIONS_V2__INIT;
    Wfa__Measurement__System__V1alpha__HonestMajorityShareShuffle hm =
        WFA__MEASUREMENT__SYSTEM__V1ALPHA__HONEST_MAJORITY_SHARE_SHUFFLE__INIT;
    h.name = name;
    if (protocol == DY_PROTO_LLV2) {
        ll.description = description;
        h.protocol_case =
            WFA__MEASUREMENT__SYSTEM__V1ALPHA__ADVANCE_COMPUTATION_REQUEST__HEADER__PROTOCOL_LIQUID_LEGIONS_V2;
        h.liquid_legions_v2 = &ll;
    } else if (protocol == DY_PROTO_RO_LLV2) {
        ro.description = description;
        h.protocol_case =
            WFA__MEASUREMENT__SYSTEM__V1ALPHA__ADVANCE_COMPUTATION_REQUEST__HEADER__PROTOCOL_REACH_ONLY_LIQUID_LEGIONS_V2;
        h.reach_only_liquid_legions_v2 = &ro;
    } else {
        hm.description = description;
        h.protocol_case =
            WFA__MEASUREMENT__SYSTEM__V1ALPHA__ADVANCE_COMPUTATION_REQUEST__HEADER__PROTOCOL_HONEST_MAJORITY_SHARE_SHUFFLE;
        h.honest_majority_share_shuffle = &hm;
    }
    req.payload_case =
        WFA__MEASUREMENT__SYSTEM__V1ALPHA__ADVANCE_COMPUTATION_REQUEST__PAYLOAD_HEADER;
    req.header = &h;
    size_t n = protobuf_c_message_get_packed_size(&req.base);
    s->header = malloc(n ? n : 1);
    if (!s->header)
        return -ENOMEM;
    s->header_len = protobuf_c_message_pack(&req.base, s->header);
    return 0;
}

int dy_coord_plan_sends(const uint8_t *details, size_t details_len, const char *my_id, int stage,
                        dy_coord_send_t out[2], char *why, size_t whylen)
{
    memset(out, 0, 2 * sizeof(*out));
    dy_details_t d;
    char err[160];
    if (!details || dy_details_parse(details, details_len, my_id, &d, err, sizeof(err)) < 0)
        return s_why(why, whylen, "details unreadable");
    dy_send_t sends[2];
    int n = dy_stage_sends(d.protocol, d.role, stage, d.max_frequency, sends);
    int rc = n;
    if (n < 0)
        rc = s_why(why, whylen, "stage %d of this role is not a work stage", stage);
    for (int i = 0; i < n && rc >= 0; i++) {
        const char *to = NULL;
        int to_role = 0;
        switch (sends[i].to) {
        case DY_SEND_SUCCESSOR:
            to = d.has_ring ? dy_details_successor(&d) : NULL;
            if (to)
                to_role = strcmp(to, d.aggregator) == 0 ? DY_ROLE_AGG : DY_ROLE_NA;
            break;
        case DY_SEND_NA1:
            to = d.has_ring ? d.ring[0] : NULL;
            to_role = DY_ROLE_NA;
            break;
        case DY_SEND_AGGREGATOR:
            to = d.aggregator[0] ? d.aggregator : NULL;
            to_role = DY_ROLE_AGG;
            break;
        case DY_SEND_PEER_NA:
            if (d.role == DY_ROLE_FNA) {
                to = d.second_na;
                to_role = DY_ROLE_SNA;
            } else if (d.role == DY_ROLE_SNA) {
                to = d.first_na;
                to_role = DY_ROLE_FNA;
            }
            break;
        default:
            break;
        }
        if (!to || !to[0]) {
            rc = s_why(why, whylen, "receiver of send %d unknown (ring or roles not set)", i);
            break;
        }
        dy_stage_rule_t rule;
        if (dy_stage_receive_rule(d.protocol, to_role, sends[i].description, &rule) < 0) {
            rc = s_why(why, whylen, "no receive rule for description %d", sends[i].description);
            break;
        }
        s_copy_id(out[i].peer, to);
        out[i].description = sends[i].description;
        out[i].awaited = rule.awaited;
        if (s_pack_header(d.computation_id, d.protocol, sends[i].description, &out[i]) < 0)
            rc = s_why(why, whylen, "out of memory");
    }
    if (rc < 0)
        for (int i = 0; i < 2; i++)
            dy_coord_send_free(&out[i]);
    dy_details_free(&d);
    return rc;
}

dy_coord_send_step_t dy_coord_send_decide(int code, int peer_stage, int awaited, int complete)
{
    if (code != DY_WIRE_STATUS_OK)
        return DY_COORD_RETRY; /* NOT_FOUND or anything else: not ready, try later */
    if (peer_stage == awaited)
        return DY_COORD_SEND;
    /* Stage numbers increase along every role's path (PROTOCOL.md §5), so
     * a larger number is past the awaited stage; COMPLETE is past too. */
    if (peer_stage > awaited || peer_stage == complete)
        return DY_COORD_SKIP;
    return DY_COORD_RETRY;
}

dy_outcome_t dy_coord_send_classify(int code, int reason, bool local_terminal)
{
    switch (code) {
    case DY_WIRE_STATUS_OK:
        return DY_OUTCOME_OK;
    case DY_WIRE_STATUS_FAILED_PRECONDITION:
        if (reason == DY_WIRE_REASON_STAGE_NOT_READY)
            return DY_OUTCOME_TEMPFAIL;
        if (reason == DY_WIRE_REASON_COMPUTATION_ENDED)
            return local_terminal ? DY_OUTCOME_PERMFAIL : DY_OUTCOME_TEMPFAIL;
        return DY_OUTCOME_PERMFAIL; /* INPUT_CONFLICT or no reason */
    case DY_WIRE_STATUS_CANCELLED:
    case DY_WIRE_STATUS_UNAVAILABLE:
    case DY_WIRE_STATUS_DEADLINE_EXCEEDED:
    case DY_WIRE_STATUS_ABORTED:
    case DY_WIRE_STATUS_RESOURCE_EXHAUSTED:
    case DY_WIRE_STATUS_DATA_LOSS:
    case DY_WIRE_STATUS_NOT_FOUND:
        return DY_OUTCOME_TEMPFAIL;
    case DY_WIRE_STATUS_INVALID_ARGUMENT:
    case DY_WIRE_STATUS_PERMISSION_DENIED:
    case DY_WIRE_STATUS_UNAUTHENTICATED:
        return DY_OUTCOME_PERMFAIL;
    default:
        /* UNKNOWN, INTERNAL, UNIMPLEMENTED...: §6.2 lists no rule; a peer's
         * internal error may pass, so retry (attempts are bounded). */
        return DY_OUTCOME_TEMPFAIL;
    }
}
