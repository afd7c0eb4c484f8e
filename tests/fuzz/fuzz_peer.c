/* fuzz_peer.c - libFuzzer target for what a duchy decodes from a peer duchy over
 * ComputationControl (proto/control.proto; STYLE.md rule 38), through the coordinator's own
 * handlers (common/coord.c, common/coord_rules.c) against an in-memory store holding the
 * fixture's computations at several stages (tests/fuzz/fuzz_fixture.h):
 *   - the AdvanceComputation header: dy_coord_advance_header (dy_coord_decode_advance, the
 *     §6.1 expected-sender rule from the stored details, dy_store_receive's header check);
 *   - GetComputationStage: dy_coord_get_stage;
 *   - the body's shape before it is stored: dy_coord_check_body for every protocol and
 *     description (LLv2 blocks, RO-LLv2 blocks, HMSS ShufflePhaseInput and
 *     AggregationPhaseInput);
 *   - what the send worker reads back from a peer (common/coord_send.c): the
 *     ComputationStage answer and its §6.2 rule 2 decision, the AdvanceComputation
 *     response, and the upload's status with its reason text (§6.2 rule 3).
 * The stage-input payloads themselves are fuzz_llv2.c's and fuzz_hmss.c's.
 *
 * Input layout: byte 0 operation (% 4: 0 AdvanceComputation header, 1 GetComputationStage,
 * 2 body, 3 peer answers); byte 1: receiving duchy = b % 3 (worker1, worker2, aggregator),
 * caller = (b / 3) % 4 (duchies/worker1, duchies/worker2, duchies/aggregator,
 * dataProviders/edp1), body protocol = b % 3 + 1; the rest is the message.  Invariants
 * (abort on violation): every answer is either OK or an error with a message and a known
 * code and no response; an accepted header grants credit; an OK GetComputationStage
 * answer decodes to the asked name; the store is never changed by a header.
 */
#include <stdlib.h>
#include <string.h>

#include "control.pb-c.h"
#include "fuzz_fixture.h"
#include "wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static fz_coord_t s_co;
static bool s_ready;

static const char *const s_callers[4] = {"duchies/worker1", "duchies/worker2", "duchies/aggregator",
                                         "dataProviders/edp1"};

static void s_close(void)
{
    fz_coord_close(&s_co);
}

static void s_init(void)
{
    if (s_ready)
        return;
    fz_coord_open(&s_co);
    atexit(s_close);
    s_ready = true;
}

/* Shape of any answer: OK with (optionally) a response, or an error with a message. */
static void s_reply_ok(const dy_coord_reply_t *r)
{
    FZ_CHECK(dy_wire_status_name(r->code) != NULL);
    if (r->code != 0) {
        FZ_CHECK(r->message[0] != '\0');
        FZ_CHECK(r->response == NULL && r->response_len == 0 && !r->accept_upload);
    }
    FZ_CHECK(memchr(r->message, '\0', sizeof(r->message)) != NULL);
}

static void s_advance(int d, const char *caller, const uint8_t *msg, size_t len)
{
    dy_coord_reply_t r = {0};
    dy_coord_advance_header(&s_co.ctx[d], caller, msg, len, &r);
    s_reply_ok(&r);
    if (r.code == 0) {
        /* Accepted: the caller is a duchy, the header decodes, credit is granted. */
        FZ_CHECK(r.accept_upload && r.max_total == s_co.ctx[d].max_upload);
        FZ_CHECK(dy_coord_peer_duchy(caller) != NULL);
        dy_coord_advance_hdr_t h;
        dy_coord_reply_t r2 = {0};
        FZ_CHECK(dy_coord_decode_advance(msg, len, &h, &r2) == 0);
        dy_coord_reply_clear(&r2);
    }
    dy_coord_reply_clear(&r);
}

static void s_get_stage(int d, const char *caller, const uint8_t *msg, size_t len)
{
    dy_coord_reply_t r = {0};
    dy_coord_get_stage(&s_co.ctx[d], caller, msg, len, &r);
    s_reply_ok(&r);
    if (r.code == 0) {
        FZ_CHECK(r.response != NULL);
        Wfa__Measurement__System__V1alpha__ComputationStage *cs =
            wfa__measurement__system__v1alpha__computation_stage__unpack(NULL, r.response_len,
                                                                         r.response);
        Wfa__Measurement__System__V1alpha__GetComputationStageRequest *q =
            wfa__measurement__system__v1alpha__get_computation_stage_request__unpack(NULL, len,
                                                                                     msg);
        FZ_CHECK(cs != NULL && q != NULL && strcmp(cs->name, q->name) == 0);
        wfa__measurement__system__v1alpha__computation_stage__free_unpacked(cs, NULL);
        wfa__measurement__system__v1alpha__get_computation_stage_request__free_unpacked(q, NULL);
    }
    dy_coord_reply_clear(&r);
}

static void s_body(int protocol, const uint8_t *msg, size_t len)
{
    if (len == 0)
        return;
    int description = msg[0] % 6; /* 0 and 5: out of range on purpose */
    char why[160];
    memset(why, 'x', sizeof(why));
    int rc = dy_coord_check_body(protocol, description, msg + 1, len - 1, why, sizeof(why));
    FZ_CHECK(rc == 0 || rc == -EINVAL);
    FZ_CHECK(memchr(why, '\0', sizeof(why)) != NULL || rc == 0);
}

/* The send worker's view of a peer's answers (coord_send.c). */
static int s_peer_stage(const Wfa__Measurement__System__V1alpha__ComputationStage *cs)
{
    switch (cs->stage_case) {
    case WFA__MEASUREMENT__SYSTEM__V1ALPHA__COMPUTATION_STAGE__STAGE_LIQUID_LEGIONS_V2_STAGE:
        return cs->liquid_legions_v2_stage ? (int)cs->liquid_legions_v2_stage->stage : -1;
    case WFA__MEASUREMENT__SYSTEM__V1ALPHA__COMPUTATION_STAGE__STAGE_REACH_ONLY_LIQUID_LEGIONS_STAGE:
        return cs->reach_only_liquid_legions_stage ? (int)cs->reach_only_liquid_legions_stage->stage
                                                   : -1;
    case WFA__MEASUREMENT__SYSTEM__V1ALPHA__COMPUTATION_STAGE__STAGE_HONEST_MAJORITY_SHARE_SHUFFLE_STAGE:
        return cs->honest_majority_share_shuffle_stage
                   ? (int)cs->honest_majority_share_shuffle_stage->stage
                   : -1;
    default:
        return -1;
    }
}

static void s_answers(int sel, const uint8_t *msg, size_t len)
{
    fz_in_t in = {msg, len};
    fz_in_t stage = fz_part(&in), adv = fz_part(&in), reason = fz_part(&in);
    /* §6.2 rule 2: the receiver's stage against each awaited stage of the tables. */
    Wfa__Measurement__System__V1alpha__ComputationStage *cs =
        wfa__measurement__system__v1alpha__computation_stage__unpack(NULL, stage.n, stage.p);
    int code = sel % 17;
    int peer = cs ? s_peer_stage(cs) : -1;
    for (int awaited = 1; awaited <= 13; awaited++) {
        dy_coord_send_step_t st =
            dy_coord_send_decide(cs ? code : DY_WIRE_STATUS_UNAVAILABLE, peer, awaited, 13);
        FZ_CHECK(st == DY_COORD_SEND || st == DY_COORD_SKIP || st == DY_COORD_RETRY);
        if (st == DY_COORD_SEND)
            FZ_CHECK(peer == awaited && code == 0 && cs != NULL);
    }
    if (cs)
        wfa__measurement__system__v1alpha__computation_stage__free_unpacked(cs, NULL);
    Wfa__Measurement__System__V1alpha__AdvanceComputationResponse *ar =
        wfa__measurement__system__v1alpha__advance_computation_response__unpack(NULL, adv.n, adv.p);
    if (ar)
        wfa__measurement__system__v1alpha__advance_computation_response__free_unpacked(ar, NULL);
    /* §6.2 rule 3: the upload's status, its reason as the frame carries it. */
    char *text = fz_str(reason.p, reason.n);
    int r = dy_wire_reason_parse(text);
    for (int c = 0; c <= 16; c++)
        for (int term = 0; term < 2; term++) {
            dy_outcome_t o = dy_coord_send_classify(c, r, term);
            FZ_CHECK(o == DY_OUTCOME_OK || o == DY_OUTCOME_TEMPFAIL || o == DY_OUTCOME_PERMFAIL);
            FZ_CHECK((o == DY_OUTCOME_OK) == (c == 0));
        }
    free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    s_init();
    fz_rng_reset(0x70656572);
    int op = data[0] % 4, d = data[1] % 3;
    const char *caller = s_callers[(data[1] / 3) % 4];
    const uint8_t *msg = data + 2;
    size_t len = size - 2;
    switch (op) {
    case 0:
        s_advance(d, caller, msg, len);
        break;
    case 1:
        s_get_stage(d, caller, msg, len);
        break;
    case 2:
        s_body(data[1] % 3 + 1, msg, len);
        break;
    default:
        s_answers(data[1], msg, len);
        break;
    }
    return 0;
}
