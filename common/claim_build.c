/* claim_build.c - MillJob construction for a claimed stage (claim_build.h).
 *
 * Inputs by slot (proto/mill.proto):
 *   "secrets"            stage 1's recorded "secrets" (LLv2: INITIALIZATION_PHASE's output;
 *                        HMSS: the herald's, recorded at INITIALIZED)
 *   "requisition/<rid>"  requisitions fulfilled here (store requisitions table)
 *   "input/<sender>"     inputs received at the awaited wait stage (slot = sender id)
 *   "reach"              LLv2 AG EXECUTION_PHASE_THREE: stage 10's "reach"
 */
#include "claim_build.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "claim_job.h"
#include "internal.pb-c.h"
#include "mill.pb-c.h"
#include "public.pb-c.h"

#define S_MAX_IN 80

typedef struct {
    Halo__Internal__V1__Blob b[S_MAX_IN];
    Halo__Internal__V1__Blob *p[S_MAX_IN];
    char slot[S_MAX_IN][DY_STORE_NAME_MAX + 16];
    dy_blob_info_t info[S_MAX_IN];
    size_t n;
} s_inputs_t;

static int s_why(char *errbuf, size_t errlen, int rc, const char *fmt, ...) DY_PRINTF(4, 5);
static int s_why(char *errbuf, size_t errlen, int rc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (errbuf && errlen)
        vsnprintf(errbuf, errlen, fmt, ap);
    va_end(ap);
    return rc;
}

static int s_add(s_inputs_t *in, const char *slot, const dy_blob_info_t *info)
{
    if (in->n == S_MAX_IN)
        return -ENOBUFS;
    size_t i = in->n++;
    snprintf(in->slot[i], sizeof(in->slot[i]), "%s", slot);
    in->info[i] = *info;
    halo__internal__v1__blob__init(&in->b[i]);
    in->b[i].slot = in->slot[i];
    in->b[i].path = in->info[i].path;
    in->b[i].size = in->info[i].size;
    in->b[i].sha256 = (ProtobufCBinaryData){32, in->info[i].sha256};
    in->p[i] = &in->b[i];
    return 0;
}

/* A recorded blob (computation, stage, slot) as input `as`. */
static int s_add_recorded(dy_store_t *st, s_inputs_t *in, const char *comp, int stage,
                          const char *slot, const char *as, bool required, char *errbuf,
                          size_t errlen)
{
    dy_blob_rec_t rec;
    int rc = dy_store_get_blob(st, comp, stage, slot, &rec);
    if (rc == -ENOENT && !required)
        return 0;
    if (rc < 0)
        return s_why(errbuf, errlen, rc, "no recorded blob (stage %d, slot %s): %s", stage, slot,
                     strerror(-rc));
    return s_add(in, as, &rec.blob);
}

int dy_claim_output_slots(int protocol, int role, int stage, int max_frequency,
                          const char *out[3])
{
    if (!dy_stage_computes(protocol, role, stage))
        return 0;
    int n = 0;
    bool agg = role == DY_ROLE_AGG;
    const dy_stage_info_t *i = dy_stage_info(protocol, stage);
    if (i->initial) {
        out[n++] = "secrets";
        out[n++] = "public_key";
        return n;
    }
    dy_stage_effect_t fx = dy_stage_effect(protocol, role, stage, max_frequency);
    if (fx == DY_FX_SEND)
        out[n++] = "output";
    if (protocol == DY_PROTO_LLV2 && agg && stage == 10)
        out[n++] = "reach";
    if (fx == DY_FX_SUBMIT)
        out[n++] = "result";
    return n;
}

void dy_claim_jump(int protocol, int next, dy_store_completion_t *c)
{
    /* system Computation.State: PENDING_PARTICIPANT_CONFIRMATION = 3, PENDING_COMPUTATION = 4 */
    const char *name = dy_stage_name(protocol, next);
    if (protocol != DY_PROTO_HMSS && strcmp(name, "WAIT_REQUISITIONS_AND_KEY_SET") == 0) {
        c->jump_min_kingdom_state = 3;
        c->jump_stage = 3; /* CONFIRMATION_PHASE */
        c->jump_kind = DY_STAGE_WORK;
    } else if (strcmp(name, "WAIT_TO_START") == 0) {
        c->jump_min_kingdom_state = 4;
        c->jump_stage = protocol == DY_PROTO_HMSS ? 4 : 6; /* SETUP_PHASE */
        c->jump_kind = DY_STAGE_WORK;
    }
}

/* Requisitions fulfilled here, in id order. */
typedef struct {
    s_inputs_t *in;
    const char *me;
    char (*ids)[DY_STORE_NAME_MAX];
    uint8_t **seeds;  /* owned copies (HMSS) */
    size_t *seed_lens;
    size_t n, cap;
    int rc;
} s_reqs_t;

static int s_req_cb(const dy_requisition_t *r, void *arg)
{
    s_reqs_t *q = arg;
    /* Integration fix: data stored here means fulfilled here.  The Kingdom names the
     * fulfilling participant only once it has been told (kingdom_fsm), and the herald
     * copies that name into the row only with its next stream item; an HMSS second
     * non-aggregator enters SETUP_PHASE on the first one's input, which can come first,
     * and then left its own requisitions (and their seeds for the peer) out.  A row that
     * names another duchy is still skipped. */
    if (!r->fulfilled || (r->fulfilling_duchy[0] && strcmp(r->fulfilling_duchy, q->me) != 0))
        return 0;
    if (q->n == q->cap)
        return q->rc = -ENOBUFS;
    char slot[DY_STORE_NAME_MAX + 16];
    snprintf(slot, sizeof(slot), "requisition/%s", r->id);
    if ((q->rc = s_add(q->in, slot, &r->blob)) < 0)
        return q->rc;
    snprintf(q->ids[q->n], DY_STORE_NAME_MAX, "%s", r->id);
    q->seeds[q->n] = NULL;
    q->seed_lens[q->n] = 0;
    if (r->seed_len) {
        q->seeds[q->n] = malloc(r->seed_len);
        if (!q->seeds[q->n])
            return q->rc = -ENOMEM;
        memcpy(q->seeds[q->n], r->seed, r->seed_len);
        q->seed_lens[q->n] = r->seed_len;
    }
    q->n++;
    return 0;
}

/* The awaited wait stage whose rule leads to `stage` for the role, or -1. */
static int s_awaited(int protocol, int role, int stage)
{
    for (int desc = 1; desc <= 4; desc++) {
        dy_stage_rule_t r;
        if (dy_stage_receive_rule(protocol, role, desc, &r) == 0 && r.next == stage)
            return r.awaited;
    }
    return -1;
}

typedef Wfa__Measurement__Api__V2alpha__FulfillRequisitionRequest__Header__HonestMajorityShareShuffle
    s_hmss_hdr_t;

int dy_claim_build_job(dy_store_t *st, const dy_details_t *d, const dy_claim_env_t *env,
                       const dy_lease_t *lease, const char *job_id, uint64_t deadline_unix_ms,
                       dy_buf_t *out, char *errbuf, size_t errlen)
{
    const char *comp = lease->computation;
    int proto = lease->protocol, role = lease->role, stage = lease->stage;
    s_inputs_t *in = calloc(1, sizeof(*in));
    enum { MAXR = 64 };
    char(*ids)[DY_STORE_NAME_MAX] = calloc(MAXR, DY_STORE_NAME_MAX);
    uint8_t *seeds[MAXR] = {0};
    size_t seed_lens[MAXR] = {0};
    s_hmss_hdr_t *hdrs[MAXR] = {0};
    s_reqs_t q = {.in = in, .me = env->duchy_id, .ids = ids, .seeds = seeds,
                  .seed_lens = seed_lens, .cap = MAXR};
    Halo__Internal__V1__MillParams prm = HALO__INTERNAL__V1__MILL_PARAMS__INIT;
    Halo__Internal__V1__Llv2Params l = HALO__INTERNAL__V1__LLV2_PARAMS__INIT;
    Halo__Internal__V1__HmssParams h = HALO__INTERNAL__V1__HMSS_PARAMS__INIT;
    Halo__Internal__V1__DpParams dp[4];
    Halo__Internal__V1__HmssRequisition hr[MAXR], *hrp[MAXR];
    char *ring[3], *reqp[MAXR];
    uint8_t keys[3][33];
    ProtobufCBinaryData kb[3];
    int rc = in && ids ? 0 : -ENOMEM;
    bool initial = dy_stage_info(proto, stage) && dy_stage_info(proto, stage)->initial;

    for (int i = 0; i < 4; i++)
        halo__internal__v1__dp_params__init(&dp[i]);
    prm.protocol = (Halo__Internal__V1__Protocol)proto;
    prm.role = (Halo__Internal__V1__Role)role;
    prm.stage = stage;
    prm.computation_id = (char *)comp;
    prm.duchy_id = (char *)env->duchy_id;
    prm.master_key_file = (char *)env->master_key_file;

    /* secrets: stage 1's; optional only where the mill makes them */
    if (rc == 0 && (proto != DY_PROTO_HMSS || role != DY_ROLE_AGG))
        rc = s_add_recorded(st, in, comp, 1, "secrets", "secrets", !initial, errbuf, errlen);
    if (rc == 0 && !initial)
        rc = dy_store_list_requisitions(st, comp, s_req_cb, &q);
    if (rc == 0 && q.rc < 0)
        rc = s_why(errbuf, errlen, q.rc, "requisitions: %s", strerror(-q.rc));
    /* received inputs of the awaited stage */
    int awaited = s_awaited(proto, role, stage);
    if (rc == 0 && proto != DY_PROTO_HMSS && !initial) {
        int idx = dy_details_ring_index(d, env->duchy_id);
        if (!d->has_ring || idx < 0 || dy_details_ring_keys(d, keys) < 0)
            rc = s_why(errbuf, errlen, -EINVAL, "the ring is not known");
        for (int i = 0; rc == 0 && i < 3; i++) {
            ring[i] = (char *)d->ring[i];
            kb[i] = (ProtobufCBinaryData){33, keys[i]};
        }
        if (rc == 0 && awaited > 0) {
            char as[DY_STORE_NAME_MAX + 8];
            for (int i = 0; rc == 0 && i < 3; i++) {
                bool want = (role == DY_ROLE_AGG && stage == 6) ? i < 2 : i == (idx + 2) % 3;
                if (!want)
                    continue;
                snprintf(as, sizeof(as), "input/%s", d->ring[i]);
                rc = s_add_recorded(st, in, comp, awaited, d->ring[i], as, true, errbuf, errlen);
            }
        }
        if (rc == 0 && proto == DY_PROTO_LLV2 && role == DY_ROLE_AGG && stage == 12)
            rc = s_add_recorded(st, in, comp, 10, "reach", "reach", true, errbuf, errlen);
        l.n_ring = 3;
        l.ring = ring;
        l.n_ring_public_keys = 3;
        l.ring_public_keys = kb;
        l.ring_index = idx;
    }
    if (rc == 0 && proto != DY_PROTO_HMSS) {
        prm.llv2 = &l;
        l.decay_rate = d->decay_rate;
        l.sketch_size = d->sketch_size;
        l.max_frequency = proto == DY_PROTO_RO_LLV2 ? 1 : d->max_frequency;
        l.num_sketches = (int32_t)d->nrequisitions;
        l.vid_width = d->vid_width;
        l.noise = (Halo__Internal__V1__MillNoise)d->noise;
        dy_dp_params_t v[4] = {d->blinded_histogram_dp, d->publisher_dp, d->reach_dp,
                               d->frequency_dp};
        for (int i = 0; i < 4; i++) {
            dp[i].epsilon = v[i].epsilon;
            dp[i].delta = v[i].delta;
        }
        l.blinded_histogram = &dp[0];
        l.publisher = &dp[1];
        l.reach = &dp[2];
        l.frequency = &dp[3];
        for (size_t i = 0; i < q.n; i++)
            reqp[i] = ids[i];
        l.n_requisitions = q.n;
        l.requisitions = reqp;
    }
    if (rc == 0 && proto == DY_PROTO_HMSS) {
        prm.hmss = &h;
        bool fna = strcmp(env->duchy_id, d->first_na) == 0;
        h.ring_modulus = d->ring_modulus;
        h.max_frequency = d->reach_only ? 1 : d->max_frequency;
        h.reach_only = d->reach_only;
        h.vid_width = d->vid_width;
        h.noise = (Halo__Internal__V1__MillNoise)d->noise;
        dp[0].epsilon = d->reach_dp.epsilon;
        dp[0].delta = d->reach_dp.delta;
        dp[1].epsilon = d->frequency_dp.epsilon;
        dp[1].delta = d->frequency_dp.delta;
        h.reach = &dp[0];
        h.frequency = &dp[1];
        h.first_non_aggregator = (char *)d->first_na;
        h.second_non_aggregator = (char *)d->second_na;
        h.peer = (char *)(fna ? d->second_na : d->first_na);
        h.trusted_ca = (char *)env->trusted_ca;
        h.parties = (char *)env->parties;
        h.certificate_dir = (char *)env->certificate_dir;
        h.max_register_count = env->max_register_count;
        if (d->nrequisitions > MAXR)
            rc = s_why(errbuf, errlen, -EINVAL, "too many requisitions");
        for (size_t i = 0; rc == 0 && i < d->nrequisitions; i++) {
            halo__internal__v1__hmss_requisition__init(&hr[i]);
            hr[i].id = (char *)d->requisitions[i].id;
            hr[i].name = (char *)d->requisitions[i].name;
            for (size_t k = 0; k < q.n; k++) {
                if (strcmp(ids[k], d->requisitions[i].id) != 0)
                    continue;
                hr[i].local = true;
                if (seeds[k] &&
                    (hdrs[k] = (s_hmss_hdr_t *)protobuf_c_message_unpack(
                         &wfa__measurement__api__v2alpha__fulfill_requisition_request__header__honest_majority_share_shuffle__descriptor,
                         NULL, seed_lens[k], seeds[k]))) {
                    if (hdrs[k]->secret_seed)
                        hr[i].secret_seed_ciphertext = hdrs[k]->secret_seed->ciphertext;
                    hr[i].register_count = hdrs[k]->register_count;
                    hr[i].data_provider_certificate = hdrs[k]->data_provider_certificate;
                }
            }
            hrp[i] = &hr[i];
        }
        h.n_requisitions = d->nrequisitions;
        h.requisitions = hrp;
        /* received inputs: the peer's ShufflePhaseInput (SNA got it at stage 3, FNA at 5),
         * the aggregator's two AggregationPhaseInputs (stage 6) */
        char as[DY_STORE_NAME_MAX + 8];
        if (rc == 0 && stage == 7) {
            snprintf(as, sizeof(as), "input/%s", h.peer);
            rc = s_add_recorded(st, in, comp, fna ? 5 : 3, h.peer, as, true, errbuf, errlen);
        }
        if (rc == 0 && stage == 8) {
            const char *nas[2] = {d->first_na, d->second_na};
            for (int i = 0; rc == 0 && i < 2; i++) {
                snprintf(as, sizeof(as), "input/%s", nas[i]);
                rc = s_add_recorded(st, in, comp, awaited, nas[i], as, true, errbuf, errlen);
            }
        }
    }
    if (rc == 0) {
        Halo__Internal__V1__MillJob job = HALO__INTERNAL__V1__MILL_JOB__INIT;
        job.job_id = (char *)job_id;
        job.computation_id = (char *)comp;
        job.protocol = prm.protocol;
        job.role = prm.role;
        job.stage = stage;
        job.stage_name = (char *)dy_stage_name(proto, stage);
        job.attempt = lease->attempt;
        job.n_inputs = in->n;
        job.inputs = in->p;
        job.output_dir = (char *)env->blob_root;
        job.deadline_unix_ms = deadline_unix_ms;
        job.threads = env->threads > 0 ? (uint32_t)env->threads : 1;
        size_t pn = halo__internal__v1__mill_params__get_packed_size(&prm);
        job.params.data = malloc(pn ? pn : 1);
        if (!job.params.data)
            rc = -ENOMEM;
        else {
            job.params.len = halo__internal__v1__mill_params__pack(&prm, job.params.data);
            size_t jn = halo__internal__v1__mill_job__get_packed_size(&job);
            uint8_t *jb = malloc(jn ? jn : 1);
            rc = jb ? 0 : -ENOMEM;
            if (jb) {
                halo__internal__v1__mill_job__pack(&job, jb);
                rc = dy_mill_frame(jb, jn, out);
                free(jb);
            }
            free(job.params.data);
        }
    }
    for (size_t i = 0; i < MAXR; i++) {
        free(seeds[i]);
        if (hdrs[i])
            protobuf_c_message_free_unpacked(&hdrs[i]->base, NULL);
    }
    free(ids);
    free(in);
    return rc;
}
