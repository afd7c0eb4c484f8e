/* test_proto.c - the proto/ definitions against an independent implementation: messages built
 * and packed with protobuf-c are decoded by Debian's protoc (`protoc --decode`, C++ protobuf)
 * from our .proto sources, and text encoded by `protoc --encode` is unpacked by protobuf-c.
 * This catches wrong field numbers, types and enum values between the generated code and
 * the .proto text that other implementations read.  Needs DY_SOURCE_ROOT (set by meson) or
 * the source root as argv[1]; exits 77 (skip) when protoc is not installed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "admin.pb-c.h"
#include "control.pb-c.h"
#include "hmss.pb-c.h"
#include "internal.pb-c.h"
#include "public.pb-c.h"
#include "system.pb-c.h"
#include "wire.pb-c.h"

#define SYS_PKG "wfa.measurement.system.v1alpha."
#define API_PKG "wfa.measurement.api.v2alpha."

static char s_proto_dir[4096];
static char s_tmpdir[] = "/tmp/dy-test-proto-XXXXXX";
static char s_extra_include[64]; /* " --proto_path=/usr/include" if the WKTs live there */

/* Runs protoc on the bytes of msg and returns its text output (caller frees); fails the
 * test if protoc exits non-zero. */
static char *s_decode(const ProtobufCMessage *msg, const char *type, const char *file)
{
    size_t n = protobuf_c_message_get_packed_size(msg);
    uint8_t *bin = malloc(n ? n : 1);
    assert_non_null(bin);
    assert_int_equal(protobuf_c_message_pack(msg, bin), n);
    char in[256];
    snprintf(in, sizeof(in), "%s/in.bin", s_tmpdir);
    FILE *fp = fopen(in, "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite(bin, 1, n, fp), n);
    assert_int_equal(fclose(fp), 0);
    free(bin);

    char cmd[16384];
    snprintf(cmd, sizeof(cmd), "protoc --decode=%s '--proto_path=%s'%s %s < '%s' 2>&1", type,
             s_proto_dir, s_extra_include, file, in);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t cap = 4096, len = 0;
    char *out = malloc(cap);
    assert_non_null(out);
    size_t got;
    while ((got = fread(out + len, 1, cap - len - 1, p)) > 0) {
        len += got;
        if (cap - len < 1024) {
            cap *= 2;
            out = realloc(out, cap);
            assert_non_null(out);
        }
    }
    out[len] = '\0';
    int st = pclose(p);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
        fail_msg("protoc --decode=%s failed:\n%s", type, out);
    return out;
}

/* Runs protoc --encode on text and returns the binary (caller frees). */
static uint8_t *s_encode(const char *text, const char *type, const char *file, size_t *ret_len)
{
    char in[256], out[256];
    snprintf(in, sizeof(in), "%s/in.txt", s_tmpdir);
    snprintf(out, sizeof(out), "%s/out.bin", s_tmpdir);
    FILE *fp = fopen(in, "w");
    assert_non_null(fp);
    fputs(text, fp);
    assert_int_equal(fclose(fp), 0);
    char cmd[16384];
    snprintf(cmd, sizeof(cmd), "protoc --encode=%s '--proto_path=%s'%s %s < '%s' > '%s'",
             type, s_proto_dir, s_extra_include, file, in, out);
    int st = system(cmd);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
        fail_msg("protoc --encode=%s failed", type);
    fp = fopen(out, "rb");
    assert_non_null(fp);
    uint8_t *buf = malloc(1 << 16);
    assert_non_null(buf);
    *ret_len = fread(buf, 1, 1 << 16, fp);
    fclose(fp);
    return buf;
}

/* Fails unless text contains needle exactly `times` times. */
static void s_expect(const char *text, const char *needle, int times)
{
    int count = 0;
    for (const char *p = text; (p = strstr(p, needle)) != NULL; p += strlen(needle))
        count++;
    if (count != times)
        fail_msg("expected %d x \"%s\", found %d, in:\n%s", times, needle, count, text);
}

static void test_computation(void **state)
{
    (void)state;
    /* The measurement spec travels as serialized bytes; build a real one. */
    Wfa__Measurement__Api__V2alpha__DifferentialPrivacyParams rdp =
        WFA__MEASUREMENT__API__V2ALPHA__DIFFERENTIAL_PRIVACY_PARAMS__INIT;
    rdp.epsilon = 0.5;
    rdp.delta = 1e-9;
    Wfa__Measurement__Api__V2alpha__MeasurementSpec__ReachAndFrequency rf =
        WFA__MEASUREMENT__API__V2ALPHA__MEASUREMENT_SPEC__REACH_AND_FREQUENCY__INIT;
    rf.reach_privacy_params = &rdp;
    rf.frequency_privacy_params = &rdp;
    rf.maximum_frequency = 10;
    Wfa__Measurement__Api__V2alpha__MeasurementSpec spec =
        WFA__MEASUREMENT__API__V2ALPHA__MEASUREMENT_SPEC__INIT;
    spec.measurement_type_case =
        WFA__MEASUREMENT__API__V2ALPHA__MEASUREMENT_SPEC__MEASUREMENT_TYPE_REACH_AND_FREQUENCY;
    spec.reach_and_frequency = &rf;
    Wfa__Measurement__Api__V2alpha__MeasurementSpec__VidSamplingInterval vid =
        WFA__MEASUREMENT__API__V2ALPHA__MEASUREMENT_SPEC__VID_SAMPLING_INTERVAL__INIT;
    vid.width = 0.25f;
    spec.vid_sampling_interval = &vid;
    Wfa__Measurement__Api__V2alpha__EncryptionPublicKey key =
        WFA__MEASUREMENT__API__V2ALPHA__ENCRYPTION_PUBLIC_KEY__INIT;
    key.format = WFA__MEASUREMENT__API__V2ALPHA__ENCRYPTION_PUBLIC_KEY__FORMAT__ECIES_P256;
    uint8_t point[33] = {0x02, 0xab};
    key.data.data = point;
    key.data.len = sizeof(point);
    size_t klen = wfa__measurement__api__v2alpha__encryption_public_key__get_packed_size(&key);
    uint8_t kbuf[64];
    assert_true(klen <= sizeof(kbuf));
    wfa__measurement__api__v2alpha__encryption_public_key__pack(&key, kbuf);
    Google__Protobuf__Any any = GOOGLE__PROTOBUF__ANY__INIT;
    any.type_url = (char *)"type.googleapis.com/" API_PKG "EncryptionPublicKey";
    any.value.data = kbuf;
    any.value.len = klen;
    spec.measurement_public_key = &any;
    uint8_t nh[32];
    memset(nh, 0x11, sizeof(nh));
    ProtobufCBinaryData hashes[2] = {{sizeof(nh), nh}, {sizeof(nh), nh}};
    spec.n_nonce_hashes = 2;
    spec.nonce_hashes = hashes;
    size_t slen = wfa__measurement__api__v2alpha__measurement_spec__get_packed_size(&spec);
    uint8_t *sbuf = malloc(slen);
    assert_non_null(sbuf);
    wfa__measurement__api__v2alpha__measurement_spec__pack(&spec, sbuf);

    char *text = s_decode(&spec.base, API_PKG "MeasurementSpec", "public.proto");
    s_expect(text, "nonce_hashes:", 2);
    s_expect(text, "width: 0.25", 1);
    s_expect(text, "maximum_frequency: 10", 1);
    s_expect(text, "epsilon: 0.5", 2);
    s_expect(text, "delta: 1e-09", 2);
    /* protoc --decode leaves Any packed: format 100 (field 1 = 'd'), 33 data bytes. */
    s_expect(text, "type_url: \"type.googleapis.com/wfa.measurement.api.v2alpha."
                   "EncryptionPublicKey\"", 1);
    s_expect(text, "value: \"\\010d\\022!\\002\\253", 1);
    free(text);
    text = s_decode(&key.base, API_PKG "EncryptionPublicKey", "public.proto");
    s_expect(text, "format: ECIES_P256", 1);
    free(text);

    Wfa__Measurement__System__V1alpha__Computation c =
        WFA__MEASUREMENT__SYSTEM__V1ALPHA__COMPUTATION__INIT;
    c.name = (char *)"computations/AAAAAAAAAHs";
    c.public_api_version = (char *)"v2alpha";
    c.measurement_spec.data = sbuf;
    c.measurement_spec.len = slen;
    c.state = WFA__MEASUREMENT__SYSTEM__V1ALPHA__COMPUTATION__STATE__PENDING_COMPUTATION;

    static const char *const duchies[] = {"worker1", "worker2", "aggregator"};
    Wfa__Measurement__System__V1alpha__ComputationParticipant parts[3];
    Wfa__Measurement__System__V1alpha__ComputationParticipant *pp[3];
    Wfa__Measurement__System__V1alpha__ComputationParticipant__RequisitionParams rp[3];
    Wfa__Measurement__System__V1alpha__ComputationParticipant__RequisitionParams__LiquidLegionsV2
        rpl[3];
    Google__Protobuf__Timestamp ts[3];
    char names[3][80];
    uint8_t elg[3][8];
    for (int i = 0; i < 3; i++) {
        wfa__measurement__system__v1alpha__computation_participant__init(&parts[i]);
        wfa__measurement__system__v1alpha__computation_participant__requisition_params__init(
            &rp[i]);
        wfa__measurement__system__v1alpha__computation_participant__requisition_params__liquid_legions_v2__init(
            &rpl[i]);
        google__protobuf__timestamp__init(&ts[i]);
        snprintf(names[i], sizeof(names[i]), "%s/participants/%s", c.name, duchies[i]);
        parts[i].name = names[i];
        parts[i].state = WFA__MEASUREMENT__SYSTEM__V1ALPHA__COMPUTATION_PARTICIPANT__STATE__READY;
        ts[i].seconds = 1700000000 + i;
        ts[i].nanos = 5;
        parts[i].update_time = &ts[i];
        memset(elg[i], 0xa0 + i, sizeof(elg[i]));
        rpl[i].el_gamal_public_key.data = elg[i];
        rpl[i].el_gamal_public_key.len = sizeof(elg[i]);
        rpl[i].el_gamal_public_key_signature_algorithm_oid = (char *)"1.2.840.10045.4.3.2";
        rp[i].duchy_certificate = (char *)"duchies/x/certificates/y";
        rp[i].protocol_case =
            WFA__MEASUREMENT__SYSTEM__V1ALPHA__COMPUTATION_PARTICIPANT__REQUISITION_PARAMS__PROTOCOL_LIQUID_LEGIONS_V2;
        rp[i].liquid_legions_v2 = &rpl[i];
        parts[i].requisition_params = &rp[i];
        parts[i].etag = (char *)"7";
        pp[i] = &parts[i];
    }
    c.n_computation_participants = 3;
    c.computation_participants = pp;

    Wfa__Measurement__System__V1alpha__Requisition req =
        WFA__MEASUREMENT__SYSTEM__V1ALPHA__REQUISITION__INIT;
    Wfa__Measurement__System__V1alpha__Requisition *reqs[1] = {&req};
    req.name = (char *)"computations/AAAAAAAAAHs/requisitions/AAAAAAAAAAE";
    req.state = WFA__MEASUREMENT__SYSTEM__V1ALPHA__REQUISITION__STATE__FULFILLED;
    req.nonce = 0xfedcba9876543210ull;
    req.fulfilling_computation_participant = names[1];
    c.n_requisitions = 1;
    c.requisitions = reqs;

    Wfa__Measurement__System__V1alpha__DifferentialPrivacyParams dp =
        WFA__MEASUREMENT__SYSTEM__V1ALPHA__DIFFERENTIAL_PRIVACY_PARAMS__INIT;
    dp.epsilon = 1.5;
    dp.delta = 1e-12;
    Wfa__Measurement__System__V1alpha__Computation__MpcProtocolConfig__LiquidLegionsV2__MpcNoise
        noise =
            WFA__MEASUREMENT__SYSTEM__V1ALPHA__COMPUTATION__MPC_PROTOCOL_CONFIG__LIQUID_LEGIONS_V2__MPC_NOISE__INIT;
    noise.blinded_histogram_noise = &dp;
    noise.publisher_noise = &dp;
    Wfa__Measurement__System__V1alpha__Computation__MpcProtocolConfig__LiquidLegionsV2__LiquidLegionsSketchParams
        sk =
            WFA__MEASUREMENT__SYSTEM__V1ALPHA__COMPUTATION__MPC_PROTOCOL_CONFIG__LIQUID_LEGIONS_V2__LIQUID_LEGIONS_SKETCH_PARAMS__INIT;
    sk.decay_rate = 12.0;
    sk.max_size = 100000;
    Wfa__Measurement__System__V1alpha__Computation__MpcProtocolConfig__LiquidLegionsV2 ll =
        WFA__MEASUREMENT__SYSTEM__V1ALPHA__COMPUTATION__MPC_PROTOCOL_CONFIG__LIQUID_LEGIONS_V2__INIT;
    ll.sketch_params = &sk;
    ll.mpc_noise = &noise;
    ll.elliptic_curve_id = 415;
    ll.noise_mechanism =
        WFA__MEASUREMENT__SYSTEM__V1ALPHA__COMPUTATION__MPC_PROTOCOL_CONFIG__NOISE_MECHANISM__DISCRETE_GAUSSIAN;
    Wfa__Measurement__System__V1alpha__Computation__MpcProtocolConfig cfg =
        WFA__MEASUREMENT__SYSTEM__V1ALPHA__COMPUTATION__MPC_PROTOCOL_CONFIG__INIT;
    cfg.protocol_case =
        WFA__MEASUREMENT__SYSTEM__V1ALPHA__COMPUTATION__MPC_PROTOCOL_CONFIG__PROTOCOL_LIQUID_LEGIONS_V2;
    cfg.liquid_legions_v2 = &ll;
    c.mpc_protocol_config = &cfg;

    text = s_decode(&c.base, SYS_PKG "Computation", "system.proto");
    s_expect(text, "name: \"computations/AAAAAAAAAHs\"", 1);
    s_expect(text, "public_api_version: \"v2alpha\"", 1);
    s_expect(text, "state: PENDING_COMPUTATION", 1);
    s_expect(text, "computation_participants {", 3);
    s_expect(text, "name: \"computations/AAAAAAAAAHs/participants/aggregator\"", 1);
    s_expect(text, "state: READY", 3);
    s_expect(text, "seconds: 1700000002", 1);
    s_expect(text, "nanos: 5", 3);
    s_expect(text, "liquid_legions_v2 {", 4); /* three params + the config */
    s_expect(text, "el_gamal_public_key: \"\\240\\240", 1);
    s_expect(text, "el_gamal_public_key_signature_algorithm_oid: \"1.2.840.10045.4.3.2\"", 3);
    s_expect(text, "etag: \"7\"", 3);
    s_expect(text, "state: FULFILLED", 1);
    s_expect(text, "nonce: 18364758544493064720", 1);
    s_expect(text, "fulfilling_computation_participant: \"computations/AAAAAAAAAHs/"
                   "participants/worker2\"",
             1);
    s_expect(text, "decay_rate: 12", 1);
    s_expect(text, "max_size: 100000", 1);
    s_expect(text, "blinded_histogram_noise {", 1);
    s_expect(text, "epsilon: 1.5", 2);
    s_expect(text, "elliptic_curve_id: 415", 1);
    s_expect(text, "noise_mechanism: DISCRETE_GAUSSIAN", 1);
    free(text);

    /* HMSS config: moduli above 2^31 survive as int64. */
    Wfa__Measurement__System__V1alpha__Computation__MpcProtocolConfig__HonestMajorityShareShuffle
        hm =
            WFA__MEASUREMENT__SYSTEM__V1ALPHA__COMPUTATION__MPC_PROTOCOL_CONFIG__HONEST_MAJORITY_SHARE_SHUFFLE__INIT;
    hm.reach_and_frequency_ring_modulus = 4294967296ll;
    hm.reach_ring_modulus = 2147483647;
    hm.noise_mechanism =
        WFA__MEASUREMENT__SYSTEM__V1ALPHA__COMPUTATION__MPC_PROTOCOL_CONFIG__NOISE_MECHANISM__NONE;
    cfg.protocol_case =
        WFA__MEASUREMENT__SYSTEM__V1ALPHA__COMPUTATION__MPC_PROTOCOL_CONFIG__PROTOCOL_HONEST_MAJORITY_SHARE_SHUFFLE;
    cfg.honest_majority_share_shuffle = &hm;
    text = s_decode(&cfg.base, SYS_PKG "Computation.MpcProtocolConfig", "system.proto");
    s_expect(text, "reach_and_frequency_ring_modulus: 4294967296", 1);
    s_expect(text, "reach_ring_modulus: 2147483647", 1);
    s_expect(text, "noise_mechanism: NONE", 1);
    free(text);
    free(sbuf);
}

static void test_stream_token(void **state)
{
    (void)state;
    Google__Protobuf__Timestamp ts = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
    ts.seconds = 1700000123;
    ts.nanos = 456000;
    Wfa__Measurement__System__V1alpha__StreamActiveComputationsContinuationToken tok =
        WFA__MEASUREMENT__SYSTEM__V1ALPHA__STREAM_ACTIVE_COMPUTATIONS_CONTINUATION_TOKEN__INIT;
    tok.last_seen_update_time = &ts;
    tok.last_seen_external_computation_id = 0x0123456789abcdefull;
    char *text = s_decode(&tok.base, SYS_PKG "StreamActiveComputationsContinuationToken",
                          "system.proto");
    s_expect(text, "last_seen_update_time {", 1);
    s_expect(text, "seconds: 1700000123", 1);
    s_expect(text, "nanos: 456000", 1);
    s_expect(text, "last_seen_external_computation_id: 81985529216486895", 1);
    free(text);
    /* fixed64 on the wire: tag 0x11 followed by 8 little-endian bytes. */
    uint8_t buf[64];
    size_t n = wfa__measurement__system__v1alpha__stream_active_computations_continuation_token__pack(
        &tok, buf);
    assert_true(n >= 9);
    assert_int_equal(buf[n - 9], 0x11);
    assert_int_equal(buf[n - 8], 0xef);
    assert_int_equal(buf[n - 1], 0x01);

    Wfa__Measurement__System__V1alpha__Computation c =
        WFA__MEASUREMENT__SYSTEM__V1ALPHA__COMPUTATION__INIT;
    c.name = (char *)"computations/AAAAAAAAAAE";
    c.state = WFA__MEASUREMENT__SYSTEM__V1ALPHA__COMPUTATION__STATE__CANCELLED;
    Wfa__Measurement__System__V1alpha__StreamActiveComputationsResponse resp =
        WFA__MEASUREMENT__SYSTEM__V1ALPHA__STREAM_ACTIVE_COMPUTATIONS_RESPONSE__INIT;
    resp.computation = &c;
    resp.continuation_token = (char *)"CgYI-5qlqgYRAAAAAAAAAAE";
    text = s_decode(&resp.base, SYS_PKG "StreamActiveComputationsResponse", "system.proto");
    s_expect(text, "state: CANCELLED", 1);
    s_expect(text, "continuation_token: \"CgYI-5qlqgYRAAAAAAAAAAE\"", 1);
    free(text);
}

static void test_advance_computation(void **state)
{
    (void)state;
    Wfa__Measurement__System__V1alpha__HonestMajorityShareShuffle hm =
        WFA__MEASUREMENT__SYSTEM__V1ALPHA__HONEST_MAJORITY_SHARE_SHUFFLE__INIT;
    hm.description =
        WFA__MEASUREMENT__SYSTEM__V1ALPHA__HONEST_MAJORITY_SHARE_SHUFFLE__DESCRIPTION__AGGREGATION_PHASE_INPUT;
    Wfa__Measurement__System__V1alpha__AdvanceComputationRequest__Header hdr =
        WFA__MEASUREMENT__SYSTEM__V1ALPHA__ADVANCE_COMPUTATION_REQUEST__HEADER__INIT;
    hdr.name = (char *)"computations/AAAAAAAAAHs";
    hdr.protocol_case =
        WFA__MEASUREMENT__SYSTEM__V1ALPHA__ADVANCE_COMPUTATION_REQUEST__HEADER__PROTOCOL_HONEST_MAJORITY_SHARE_SHUFFLE;
    hdr.honest_majority_share_shuffle = &hm;
    Wfa__Measurement__System__V1alpha__AdvanceComputationRequest req =
        WFA__MEASUREMENT__SYSTEM__V1ALPHA__ADVANCE_COMPUTATION_REQUEST__INIT;
    req.payload_case =
        WFA__MEASUREMENT__SYSTEM__V1ALPHA__ADVANCE_COMPUTATION_REQUEST__PAYLOAD_HEADER;
    req.header = &hdr;
    char *text = s_decode(&req.base, SYS_PKG "AdvanceComputationRequest", "control.proto");
    s_expect(text, "header {", 1);
    s_expect(text, "name: \"computations/AAAAAAAAAHs\"", 1);
    s_expect(text, "honest_majority_share_shuffle {", 1);
    s_expect(text, "description: AGGREGATION_PHASE_INPUT", 1);
    free(text);

    /* The trailer (field 15, [ours]). */
    uint8_t sha[32];
    memset(sha, 0xee, sizeof(sha));
    Halo__Wire__V1__Trailer tr = HALO__WIRE__V1__TRAILER__INIT;
    tr.sha256.data = sha;
    tr.sha256.len = sizeof(sha);
    tr.total_length = 5000000000ull;
    req.payload_case =
        WFA__MEASUREMENT__SYSTEM__V1ALPHA__ADVANCE_COMPUTATION_REQUEST__PAYLOAD_TRAILER;
    req.header = NULL;
    req.trailer = &tr;
    text = s_decode(&req.base, SYS_PKG "AdvanceComputationRequest", "control.proto");
    s_expect(text, "trailer {", 1);
    s_expect(text, "total_length: 5000000000", 1);
    s_expect(text, "sha256: \"\\356\\356", 1);
    free(text);
    uint8_t buf[64];
    size_t n = wfa__measurement__system__v1alpha__advance_computation_request__pack(&req, buf);
    assert_int_equal(buf[0], 15 << 3 | 2); /* field 15, length-delimited */
    assert_true(n > 34);

    /* A stage answer, reach-only LLv2 (field 3 keeps the reference's name). */
    Wfa__Measurement__System__V1alpha__ReachOnlyLiquidLegionsV2Stage ro =
        WFA__MEASUREMENT__SYSTEM__V1ALPHA__REACH_ONLY_LIQUID_LEGIONS_V2_STAGE__INIT;
    ro.stage = WFA__MEASUREMENT__SYSTEM__V1ALPHA__REACH_ONLY_LIQUID_LEGIONS_V2_STAGE__STAGE__WAIT_EXECUTION_PHASE_INPUTS;
    Wfa__Measurement__System__V1alpha__ComputationStage cs =
        WFA__MEASUREMENT__SYSTEM__V1ALPHA__COMPUTATION_STAGE__INIT;
    cs.name = (char *)"computations/AAAAAAAAAHs/participants/worker1/computationStage";
    cs.stage_case =
        WFA__MEASUREMENT__SYSTEM__V1ALPHA__COMPUTATION_STAGE__STAGE_REACH_ONLY_LIQUID_LEGIONS_STAGE;
    cs.reach_only_liquid_legions_stage = &ro;
    cs.etag = (char *)"12";
    text = s_decode(&cs.base, SYS_PKG "ComputationStage", "control.proto");
    s_expect(text, "reach_only_liquid_legions_stage {", 1);
    s_expect(text, "stage: WAIT_EXECUTION_PHASE_INPUTS", 1);
    s_expect(text, "etag: \"12\"", 1);
    free(text);
    assert_int_equal(WFA__MEASUREMENT__SYSTEM__V1ALPHA__LIQUID_LEGIONS_V2_STAGE__STAGE__COMPLETE,
                     13);
    assert_int_equal(
        WFA__MEASUREMENT__SYSTEM__V1ALPHA__HONEST_MAJORITY_SHARE_SHUFFLE_STAGE__STAGE__COMPLETE, 9);
}

static void test_frame(void **state)
{
    (void)state;
    Halo__Wire__V1__Frame f = HALO__WIRE__V1__FRAME__INIT;
    f.version = 1;
    f.kind = HALO__WIRE__V1__KIND__CALL_START;
    f.method = (char *)"/wfa.measurement.system.v1alpha.Computations/StreamActiveComputations";
    f.request_id = (char *)"0123456789abcdef";
    f.deadline_unix_ms = 1700000660000ull;
    char *text = s_decode(&f.base, "halo.wire.v1.Frame", "wire.proto");
    s_expect(text, "version: 1", 1);
    s_expect(text, "kind: CALL_START", 1);
    s_expect(text,
             "method: \"/wfa.measurement.system.v1alpha.Computations/StreamActiveComputations\"",
             1);
    s_expect(text, "request_id: \"0123456789abcdef\"", 1);
    s_expect(text, "deadline_unix_ms: 1700000660000", 1);
    free(text);

    Halo__Wire__V1__Status st = HALO__WIRE__V1__STATUS__INIT;
    st.code = 9;
    st.message = (char *)"peer not ready";
    st.reason = (char *)"STAGE_NOT_READY";
    halo__wire__v1__frame__init(&f);
    f.version = 1;
    f.kind = HALO__WIRE__V1__KIND__STATUS;
    f.status = &st;
    text = s_decode(&f.base, "halo.wire.v1.Frame", "wire.proto");
    s_expect(text, "kind: STATUS", 1);
    s_expect(text, "code: 9", 1);
    s_expect(text, "reason: \"STAGE_NOT_READY\"", 1);
    free(text);

    /* The other direction: protoc encodes, protobuf-c decodes. */
    size_t n = 0;
    uint8_t *bin = s_encode("version: 1 kind: CREDIT credit: 32 message: \"\\001\\002\"",
                            "halo.wire.v1.Frame", "wire.proto", &n);
    Halo__Wire__V1__Frame *back = halo__wire__v1__frame__unpack(NULL, n, bin);
    assert_non_null(back);
    assert_int_equal(back->version, 1);
    assert_int_equal(back->kind, HALO__WIRE__V1__KIND__CREDIT);
    assert_int_equal(back->credit, 32);
    assert_int_equal(back->message.len, 2);
    assert_int_equal(back->message.data[1], 2);
    halo__wire__v1__frame__free_unpacked(back, NULL);
    free(bin);
}

static void test_measurement_result(void **state)
{
    (void)state;
    Wfa__Measurement__Api__V2alpha__Measurement__Result__Reach reach =
        WFA__MEASUREMENT__API__V2ALPHA__MEASUREMENT__RESULT__REACH__INIT;
    reach.value = 12345;
    Wfa__Measurement__Api__V2alpha__Measurement__Result__Frequency__RelativeFrequencyDistributionEntry
        e[3];
    Wfa__Measurement__Api__V2alpha__Measurement__Result__Frequency__RelativeFrequencyDistributionEntry
        *ep[3];
    static const double shares[3] = {0.5, 0.25, 0.125};
    for (int i = 0; i < 3; i++) {
        wfa__measurement__api__v2alpha__measurement__result__frequency__relative_frequency_distribution_entry__init(
            &e[i]);
        e[i].key = i + 1;
        e[i].value = shares[i];
        ep[i] = &e[i];
    }
    Wfa__Measurement__Api__V2alpha__Measurement__Result__Frequency freq =
        WFA__MEASUREMENT__API__V2ALPHA__MEASUREMENT__RESULT__FREQUENCY__INIT;
    freq.n_relative_frequency_distribution = 3;
    freq.relative_frequency_distribution = ep;
    Wfa__Measurement__Api__V2alpha__Measurement__Result res =
        WFA__MEASUREMENT__API__V2ALPHA__MEASUREMENT__RESULT__INIT;
    res.reach = &reach;
    res.frequency = &freq;
    char *text = s_decode(&res.base, API_PKG "Measurement.Result", "public.proto");
    s_expect(text, "reach {", 1);
    s_expect(text, "value: 12345", 1);
    s_expect(text, "relative_frequency_distribution {", 3);
    s_expect(text, "key: 1\n", 1);
    s_expect(text, "key: 3\n", 1);
    s_expect(text, "value: 0.5\n", 1);
    s_expect(text, "value: 0.125\n", 1);
    free(text);

    /* protoc's map encoding, read back by protobuf-c. */
    size_t n = 0;
    uint8_t *bin = s_encode("reach { value: 77 } frequency { relative_frequency_distribution "
                            "{ key: 2 value: 0.75 } relative_frequency_distribution { key: 9 "
                            "value: 0.25 } }",
                            API_PKG "Measurement.Result", "public.proto", &n);
    Wfa__Measurement__Api__V2alpha__Measurement__Result *back =
        (Wfa__Measurement__Api__V2alpha__Measurement__Result *)protobuf_c_message_unpack(
            &wfa__measurement__api__v2alpha__measurement__result__descriptor, NULL, n, bin);
    assert_non_null(back);
    assert_int_equal(back->reach->value, 77);
    assert_int_equal(back->frequency->n_relative_frequency_distribution, 2);
    double sum = 0;
    int64_t keys = 0;
    for (size_t i = 0; i < 2; i++) {
        sum += back->frequency->relative_frequency_distribution[i]->value;
        keys += back->frequency->relative_frequency_distribution[i]->key;
    }
    assert_true(sum == 1.0);
    assert_int_equal(keys, 11);
    protobuf_c_message_free_unpacked(&back->base, NULL);
    free(bin);

    /* The wrapping results go in: EncryptedSignedResult. */
    Wfa__Measurement__Api__V2alpha__EncryptedSignedResult esr =
        WFA__MEASUREMENT__API__V2ALPHA__ENCRYPTED_SIGNED_RESULT__INIT;
    uint8_t ct[4] = {1, 2, 3, 4};
    esr.ciphertext.data = ct;
    esr.ciphertext.len = 4;
    esr.signature_algorithm_oid = (char *)"1.2.840.10045.4.3.2";
    text = s_decode(&esr.base, API_PKG "EncryptedSignedResult", "public.proto");
    s_expect(text, "ciphertext: \"\\001\\002\\003\\004\"", 1);
    s_expect(text, "signature_algorithm_oid: \"1.2.840.10045.4.3.2\"", 1);
    free(text);
}

static void test_hmss_payloads(void **state)
{
    (void)state;
    uint8_t seed[48];
    for (int i = 0; i < 48; i++)
        seed[i] = (uint8_t)(0x41 + i % 26);
    Wfa__Measurement__Internal__Duchy__Protocol__SecretSeed ss[2];
    Wfa__Measurement__Internal__Duchy__Protocol__SecretSeed *ssp[2];
    uint8_t ctext[2][20];
    for (int i = 0; i < 2; i++) {
        wfa__measurement__internal__duchy__protocol__secret_seed__init(&ss[i]);
        ss[i].requisition_id = i == 0 ? (char *)"computations/AAAAAAAAAHs/requisitions/AAAAAAAAAAE"
                                      : (char *)"computations/AAAAAAAAAHs/requisitions/AAAAAAAAAAI";
        memset(ctext[i], 0x30 + i, sizeof(ctext[i]));
        ss[i].secret_seed_ciphertext.data = ctext[i];
        ss[i].secret_seed_ciphertext.len = sizeof(ctext[i]);
        ss[i].register_count = 1000 + i;
        ss[i].data_provider_certificate = (char *)"dataProviders/edp1/certificates/c1";
        ssp[i] = &ss[i];
    }
    Wfa__Measurement__Internal__Duchy__Protocol__ShufflePhaseInput in =
        WFA__MEASUREMENT__INTERNAL__DUCHY__PROTOCOL__SHUFFLE_PHASE_INPUT__INIT;
    in.peer_random_seed.data = seed;
    in.peer_random_seed.len = sizeof(seed);
    in.n_secret_seeds = 2;
    in.secret_seeds = ssp;
    char *text = s_decode(&in.base, "wfa.measurement.internal.duchy.protocol.ShufflePhaseInput",
                          "hmss.proto");
    s_expect(text, "peer_random_seed: \"ABCDEFGHIJKLMNOPQRSTUVWXYZABCDEFGHIJKLMNOPQRSTUV\"", 1);
    s_expect(text, "secret_seeds {", 2);
    s_expect(text, "requisition_id: \"computations/AAAAAAAAAHs/requisitions/AAAAAAAAAAI\"", 1);
    s_expect(text, "secret_seed_ciphertext: \"00000000000000000000\"", 1);
    s_expect(text, "register_count: 1001", 1);
    s_expect(text, "data_provider_certificate: \"dataProviders/edp1/certificates/c1\"", 2);
    free(text);

    uint32_t v[4] = {0, 1, 4294967295u, 7};
    Wfa__Measurement__Internal__Duchy__Protocol__AggregationPhaseInput ag =
        WFA__MEASUREMENT__INTERNAL__DUCHY__PROTOCOL__AGGREGATION_PHASE_INPUT__INIT;
    ag.n_combined_frequency_vectors = 4;
    ag.combined_frequency_vectors = v;
    ag.register_count = 4;
    text = s_decode(&ag.base, "wfa.measurement.internal.duchy.protocol.AggregationPhaseInput",
                    "hmss.proto");
    s_expect(text, "combined_frequency_vectors: 4294967295", 1);
    s_expect(text, "combined_frequency_vectors:", 4);
    s_expect(text, "register_count: 4", 1);
    free(text);
}

static void test_internal_and_admin(void **state)
{
    (void)state;
    Halo__Internal__V1__Blob out = HALO__INTERNAL__V1__BLOB__INIT;
    Halo__Internal__V1__Blob *outs[1] = {&out};
    out.slot = (char *)"output";
    out.path = (char *)"/var/lib/duchy/blobs/x";
    out.size = 3;
    Halo__Internal__V1__MillResult r = HALO__INTERNAL__V1__MILL_RESULT__INIT;
    r.job_id = (char *)"j1";
    r.outcome = HALO__INTERNAL__V1__MILL_RESULT__OUTCOME__PERMFAIL;
    r.code = (char *)"invalid_point";
    r.n_outputs = 1;
    r.outputs = outs;
    char *text = s_decode(&r.base, "halo.internal.v1.MillResult", "internal.proto");
    s_expect(text, "outcome: PERMFAIL", 1);
    s_expect(text, "code: \"invalid_point\"", 1);
    s_expect(text, "size: 3", 1);
    free(text);

    Halo__Admin__V1__AdminRequest q = HALO__ADMIN__V1__ADMIN_REQUEST__INIT;
    char *args[1] = {(char *)"verify"};
    q.verb = HALO__ADMIN__V1__VERB__AUDIT;
    q.n_args = 1;
    q.args = args;
    text = s_decode(&q.base, "halo.admin.v1.AdminRequest", "admin.proto");
    s_expect(text, "verb: AUDIT", 1);
    s_expect(text, "args: \"verify\"", 1);
    free(text);
}

static int s_setup(void **state)
{
    (void)state;
    return mkdtemp(s_tmpdir) != NULL ? 0 : -1;
}

static int s_teardown(void **state)
{
    (void)state;
    static const char *const files[] = {"in.bin", "in.txt", "out.bin"};
    char p[256];
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        snprintf(p, sizeof(p), "%s/%s", s_tmpdir, files[i]);
        (void)unlink(p);
    }
    return rmdir(s_tmpdir);
}

int main(int argc, char **argv)
{
    const char *root = argc > 1 ? argv[1] : getenv("DY_SOURCE_ROOT");
    if (root == NULL || root[0] == '\0') {
        fprintf(stderr, "test_proto: set DY_SOURCE_ROOT or pass the source root\n");
        return 1;
    }
    if (system("protoc --version > /dev/null 2>&1") != 0) {
        printf("1..0 # SKIP protoc not installed\n");
        return 77;
    }
    snprintf(s_proto_dir, sizeof(s_proto_dir), "%s/proto", root);
    struct stat sb;
    if (stat("/usr/include/google/protobuf/timestamp.proto", &sb) == 0)
        snprintf(s_extra_include, sizeof(s_extra_include), " --proto_path=/usr/include");

    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_computation),      cmocka_unit_test(test_stream_token),
        cmocka_unit_test(test_advance_computation), cmocka_unit_test(test_frame),
        cmocka_unit_test(test_measurement_result), cmocka_unit_test(test_hmss_payloads),
        cmocka_unit_test(test_internal_and_admin),
    };
    return cmocka_run_group_tests(tests, s_setup, s_teardown);
}
