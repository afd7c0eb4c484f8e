/* test_wire.c - common/wire: status codes, frame codec round trips, every envelope refusal,
 * the incremental reader (oversize prefixes, byte-at-a-time feeding, allocation bounds),
 * credit accounting and the upload helpers (DATA_LOSS, empty bodies, chunk boundaries). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "control.pb-c.h"
#include "wire.h"

/* SHA-256 of the empty string. */
static const char s_sha256_empty_hex[] =
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/* Packs f without any validation, behind a 4-byte prefix, as a hostile peer could. */
static void s_raw_frame(const Halo__Wire__V1__Frame *f, dy_buf_t *out)
{
    size_t n = halo__wire__v1__frame__get_packed_size(f);
    uint8_t *p = dy_buf_extend(out, 4 + n);
    assert_non_null(p);
    p[0] = (uint8_t)(n >> 24);
    p[1] = (uint8_t)(n >> 16);
    p[2] = (uint8_t)(n >> 8);
    p[3] = (uint8_t)n;
    assert_int_equal(halo__wire__v1__frame__pack(f, p + 4), n);
}

/* Decodes the single frame in buf (prefix included) with the given message limit. */
static int s_decode_one(const dy_buf_t *buf, size_t max_message, Halo__Wire__V1__Frame **ret,
                        const char **why)
{
    dy_wire_reader_t r;
    dy_wire_reader_init(&r, 0);
    size_t used = 0, flen = 0;
    const uint8_t *frame = NULL;
    int rc = dy_wire_reader_feed(&r, buf->data, buf->len, &used, &frame, &flen);
    assert_int_equal(rc, 1);
    assert_int_equal(used, buf->len);
    rc = dy_wire_frame_decode(frame, flen, max_message, ret, why);
    dy_wire_reader_free(&r);
    return rc;
}

/* Expects the raw frame f to be refused by decoding with rc and a reason. */
static void s_expect_refused(const Halo__Wire__V1__Frame *f, size_t max_message, int rc,
                             const char *why_expected)
{
    dy_buf_t buf = {0};
    s_raw_frame(f, &buf);
    Halo__Wire__V1__Frame *out = NULL;
    const char *why = NULL;
    assert_int_equal(s_decode_one(&buf, max_message, &out, &why), rc);
    assert_null(out);
    assert_non_null(why);
    assert_string_equal(why, why_expected);
    /* The encoder refuses to produce it too, leaving the buffer as it was. */
    dy_buf_t enc = {0};
    assert_int_equal(dy_wire_frame_encode(f, max_message ? max_message : 0, &enc) < 0, true);
    assert_int_equal(enc.len, 0);
    dy_buf_free(&enc);
    dy_buf_free(&buf);
}

/* ---- status codes ------------------------------------------------------------------------ */

static void test_status_names(void **state)
{
    (void)state;
    static const char *const names[] = {
        "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
        "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
        "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS",
        "UNAUTHENTICATED",
    };
    assert_int_equal(DY_ARRAY_LEN(names), _DY_WIRE_STATUS_MAX);
    for (int i = 0; i < (int)DY_ARRAY_LEN(names); i++) {
        assert_string_equal(dy_wire_status_name(i), names[i]);
        assert_int_equal(dy_wire_status_from_name(names[i]), i);
    }
    assert_int_equal(DY_WIRE_STATUS_FAILED_PRECONDITION, 9);
    assert_int_equal(DY_WIRE_STATUS_DATA_LOSS, 15);
    assert_int_equal(DY_WIRE_STATUS_UNAUTHENTICATED, 16);
    assert_null(dy_wire_status_name(-1));
    assert_null(dy_wire_status_name(17));
    assert_int_equal(dy_wire_status_from_name("ok"), -EINVAL);
    assert_int_equal(dy_wire_status_from_name(NULL), -EINVAL);
}

static void test_status_from_errno(void **state)
{
    (void)state;
    assert_int_equal(dy_wire_status_from_errno(0), DY_WIRE_STATUS_OK);
    assert_int_equal(dy_wire_status_from_errno(-EINVAL), DY_WIRE_STATUS_INVALID_ARGUMENT);
    assert_int_equal(dy_wire_status_from_errno(-EPROTO), DY_WIRE_STATUS_INVALID_ARGUMENT);
    assert_int_equal(dy_wire_status_from_errno(-E2BIG), DY_WIRE_STATUS_INVALID_ARGUMENT);
    assert_int_equal(dy_wire_status_from_errno(-EAGAIN), DY_WIRE_STATUS_INVALID_ARGUMENT);
    assert_int_equal(dy_wire_status_from_errno(-EMSGSIZE), DY_WIRE_STATUS_RESOURCE_EXHAUSTED);
    assert_int_equal(dy_wire_status_from_errno(-EFBIG), DY_WIRE_STATUS_RESOURCE_EXHAUSTED);
    assert_int_equal(dy_wire_status_from_errno(-EBADMSG), DY_WIRE_STATUS_DATA_LOSS);
    assert_int_equal(dy_wire_status_from_errno(-ETIMEDOUT), DY_WIRE_STATUS_DEADLINE_EXCEEDED);
    assert_int_equal(dy_wire_status_from_errno(-ECANCELED), DY_WIRE_STATUS_CANCELLED);
    assert_int_equal(dy_wire_status_from_errno(-ECONNRESET), DY_WIRE_STATUS_UNAVAILABLE);
    assert_int_equal(dy_wire_status_from_errno(-ENOSYS), DY_WIRE_STATUS_UNIMPLEMENTED);
    assert_int_equal(dy_wire_status_from_errno(-EIO), DY_WIRE_STATUS_INTERNAL);
}

static void test_reasons(void **state)
{
    (void)state;
    assert_string_equal(dy_wire_reason_name(DY_WIRE_REASON_NONE), "");
    assert_string_equal(dy_wire_reason_name(DY_WIRE_REASON_STAGE_NOT_READY), "STAGE_NOT_READY");
    assert_string_equal(dy_wire_reason_name(DY_WIRE_REASON_COMPUTATION_ENDED),
                        "COMPUTATION_ENDED");
    assert_string_equal(dy_wire_reason_name(DY_WIRE_REASON_INPUT_CONFLICT), "INPUT_CONFLICT");
    assert_null(dy_wire_reason_name(_DY_WIRE_REASON_MAX));
    assert_int_equal(dy_wire_reason_parse(""), DY_WIRE_REASON_NONE);
    assert_int_equal(dy_wire_reason_parse(NULL), DY_WIRE_REASON_NONE);
    assert_int_equal(dy_wire_reason_parse("INPUT_CONFLICT"), DY_WIRE_REASON_INPUT_CONFLICT);
    assert_int_equal(dy_wire_reason_parse("input_conflict"), -EINVAL);
    assert_int_equal(dy_wire_reason_parse("OTHER"), -EINVAL);
}

/* ---- method and request id --------------------------------------------------------------- */

static void test_method_check(void **state)
{
    (void)state;
    static const char *const good[] = {
        "/wfa.measurement.system.v1alpha.ComputationControl/AdvanceComputation",
        "/wfa.measurement.api.v2alpha.RequisitionFulfillment/FulfillRequisition",
        "/a.B/C",
        "/_a.b_2.Svc/M_1",
    };
    static const char *const bad[] = {
        "", "/", "a.B/C", "/B/C", "/a.B/", "/a.B", "/a..B/C", "/.a.B/C", "/a.B./C",
        "/a.B/C/D", "/a.B/C ", " /a.B/C", "/1a.B/C", "/a.B/1C", "/a-b.B/C", "//a.B/C",
        "/a.B//C", "/a.B/C.D",
    };
    for (size_t i = 0; i < DY_ARRAY_LEN(good); i++)
        assert_int_equal(dy_wire_method_check(good[i]), 0);
    for (size_t i = 0; i < DY_ARRAY_LEN(bad); i++) {
        if (dy_wire_method_check(bad[i]) != -EINVAL)
            fail_msg("accepted method \"%s\"", bad[i]);
    }
    assert_int_equal(dy_wire_method_check(NULL), -EINVAL);
    /* Length bound: 256 bytes accepted, 257 refused. */
    char m[DY_WIRE_METHOD_MAX + 2];
    memset(m, 'x', sizeof(m));
    memcpy(m, "/a.B/", 5);
    m[DY_WIRE_METHOD_MAX] = '\0';
    assert_int_equal(dy_wire_method_check(m), 0);
    m[DY_WIRE_METHOD_MAX] = 'x';
    m[DY_WIRE_METHOD_MAX + 1] = '\0';
    assert_int_equal(dy_wire_method_check(m), -EINVAL);
}

static void test_request_id_check(void **state)
{
    (void)state;
    char id[DY_WIRE_REQUEST_ID_MAX + 2];
    memset(id, 'a', sizeof(id));
    id[DY_WIRE_REQUEST_ID_MAX] = '\0';
    assert_int_equal(dy_wire_request_id_check(id), 0);
    id[DY_WIRE_REQUEST_ID_MAX] = 'a';
    id[DY_WIRE_REQUEST_ID_MAX + 1] = '\0';
    assert_int_equal(dy_wire_request_id_check(id), -EINVAL);
    assert_int_equal(dy_wire_request_id_check(""), -EINVAL);
    assert_int_equal(dy_wire_request_id_check(NULL), -EINVAL);
    assert_int_equal(dy_wire_request_id_check("x"), 0);
    assert_int_equal(dy_wire_request_id_check("a b~!"), 0);
    assert_int_equal(dy_wire_request_id_check("a\tb"), -EINVAL);
    assert_int_equal(dy_wire_request_id_check("a\x7f"), -EINVAL);
    assert_int_equal(dy_wire_request_id_check("caf\xc3\xa9"), -EINVAL);

    char fresh[33], other[33];
    assert_int_equal(dy_wire_request_id_new(fresh), 0);
    assert_int_equal(dy_wire_request_id_new(other), 0);
    assert_int_equal(strlen(fresh), 32);
    assert_int_equal(dy_wire_request_id_check(fresh), 0);
    assert_string_not_equal(fresh, other);
}

/* ---- codec round trips ------------------------------------------------------------------- */

static void test_roundtrip_each_kind(void **state)
{
    (void)state;
    static const char method[] = "/wfa.measurement.system.v1alpha.Computations/GetComputation";
    uint8_t payload[300];
    for (size_t i = 0; i < sizeof(payload); i++)
        payload[i] = (uint8_t)(i * 7);

    dy_buf_t s = {0};
    assert_int_equal(dy_wire_encode_call_start(&s, method, "req-1", 1700000000123ull), 0);
    assert_int_equal(dy_wire_encode_message(&s, payload, sizeof(payload)), 0);
    assert_int_equal(dy_wire_encode_message(&s, NULL, 0), 0);
    assert_int_equal(dy_wire_encode_bare(&s, HALO__WIRE__V1__KIND__HALF_CLOSE), 0);
    assert_int_equal(dy_wire_encode_credit(&s, 8), 0);
    assert_int_equal(dy_wire_encode_status(&s, DY_WIRE_STATUS_FAILED_PRECONDITION, "not yet",
                                           DY_WIRE_REASON_STAGE_NOT_READY),
                     0);
    assert_int_equal(dy_wire_encode_bare(&s, HALO__WIRE__V1__KIND__CANCEL), 0);
    assert_int_equal(dy_wire_encode_bare(&s, HALO__WIRE__V1__KIND__PING), 0);
    assert_int_equal(dy_wire_encode_status(&s, DY_WIRE_STATUS_OK, NULL, DY_WIRE_REASON_NONE), 0);
    /* Kinds that carry something cannot be sent bare. */
    size_t before = s.len;
    assert_int_equal(dy_wire_encode_bare(&s, HALO__WIRE__V1__KIND__STATUS), -EINVAL);
    assert_int_equal(dy_wire_encode_bare(&s, HALO__WIRE__V1__KIND__MESSAGE), -EINVAL);
    assert_int_equal(s.len, before);

    static const Halo__Wire__V1__Kind kinds[] = {
        HALO__WIRE__V1__KIND__CALL_START, HALO__WIRE__V1__KIND__MESSAGE,
        HALO__WIRE__V1__KIND__MESSAGE,    HALO__WIRE__V1__KIND__HALF_CLOSE,
        HALO__WIRE__V1__KIND__CREDIT,     HALO__WIRE__V1__KIND__STATUS,
        HALO__WIRE__V1__KIND__CANCEL,     HALO__WIRE__V1__KIND__PING,
        HALO__WIRE__V1__KIND__STATUS,
    };
    dy_wire_reader_t r;
    dy_wire_reader_init(&r, 0);
    size_t off = 0, n = 0;
    while (off < s.len) {
        size_t used = 0, flen = 0;
        const uint8_t *fb = NULL;
        int rc = dy_wire_reader_feed(&r, s.data + off, s.len - off, &used, &fb, &flen);
        off += used;
        if (rc == 0)
            break;
        assert_int_equal(rc, 1);
        Halo__Wire__V1__Frame *f = NULL;
        assert_int_equal(dy_wire_frame_decode(fb, flen, 0, &f, NULL), 0);
        assert_true(n < DY_ARRAY_LEN(kinds));
        assert_int_equal(f->version, 1);
        assert_int_equal(f->kind, kinds[n]);
        switch (n) {
        case 0:
            assert_string_equal(f->method, method);
            assert_string_equal(f->request_id, "req-1");
            assert_int_equal(f->deadline_unix_ms, 1700000000123ull);
            break;
        case 1:
            assert_int_equal(f->message.len, sizeof(payload));
            assert_memory_equal(f->message.data, payload, sizeof(payload));
            break;
        case 2:
            assert_int_equal(f->message.len, 0);
            break;
        case 4:
            assert_int_equal(f->credit, 8);
            break;
        case 5:
            assert_non_null(f->status);
            assert_int_equal(f->status->code, 9);
            assert_string_equal(f->status->message, "not yet");
            assert_string_equal(f->status->reason, "STAGE_NOT_READY");
            break;
        case 8:
            assert_int_equal(f->status->code, 0);
            assert_string_equal(f->status->reason, "");
            break;
        default:
            break;
        }
        dy_wire_frame_free(&f);
        assert_null(f);
        n++;
    }
    assert_int_equal(n, DY_ARRAY_LEN(kinds));
    assert_int_equal(off, s.len);
    assert_true(dy_wire_reader_at_boundary(&r));
    dy_wire_reader_free(&r);
    dy_buf_free(&s);
}

static void test_encode_pb_and_prefix(void **state)
{
    (void)state;
    Wfa__Measurement__System__V1alpha__GetComputationStageRequest req =
        WFA__MEASUREMENT__SYSTEM__V1ALPHA__GET_COMPUTATION_STAGE_REQUEST__INIT;
    req.name = (char *)"computations/AAAAAAAAAAE/participants/worker1/computationStage";
    dy_buf_t s = {0};
    assert_int_equal(dy_wire_encode_pb(&s, &req.base), 0);
    /* The prefix is the big-endian length of what follows. */
    uint32_t n = (uint32_t)s.data[0] << 24 | (uint32_t)s.data[1] << 16 |
                 (uint32_t)s.data[2] << 8 | s.data[3];
    assert_int_equal(n, s.len - 4);
    Halo__Wire__V1__Frame *f = NULL;
    assert_int_equal(dy_wire_frame_decode(s.data + 4, n, 0, &f, NULL), 0);
    Wfa__Measurement__System__V1alpha__GetComputationStageRequest *back =
        wfa__measurement__system__v1alpha__get_computation_stage_request__unpack(
            NULL, f->message.len, f->message.data);
    assert_non_null(back);
    assert_string_equal(back->name, req.name);
    wfa__measurement__system__v1alpha__get_computation_stage_request__free_unpacked(back, NULL);
    dy_wire_frame_free(&f);
    assert_int_equal(dy_wire_encode_pb(&s, NULL), -EINVAL);
    dy_buf_free(&s);
}

/* ---- envelope refusals ------------------------------------------------------------------- */

static void test_refusals(void **state)
{
    (void)state;
    Halo__Wire__V1__Frame f;
    Halo__Wire__V1__Status st = HALO__WIRE__V1__STATUS__INIT;

    dy_wire_frame_init(&f, HALO__WIRE__V1__KIND__PING);
    f.version = 0;
    s_expect_refused(&f, 0, -EINVAL, "bad version");
    f.version = 2;
    s_expect_refused(&f, 0, -EINVAL, "bad version");

    dy_wire_frame_init(&f, HALO__WIRE__V1__KIND__KIND_UNSPECIFIED);
    s_expect_refused(&f, 0, -EINVAL, "bad kind");
    dy_wire_frame_init(&f, (Halo__Wire__V1__Kind)8);
    s_expect_refused(&f, 0, -EINVAL, "bad kind");
    dy_wire_frame_init(&f, (Halo__Wire__V1__Kind)-3);
    s_expect_refused(&f, 0, -EINVAL, "bad kind");

    dy_wire_frame_init(&f, HALO__WIRE__V1__KIND__CALL_START);
    f.request_id = (char *)"r1";
    s_expect_refused(&f, 0, -EINVAL, "bad method"); /* empty method */
    f.method = (char *)"/NoPackage/Get";
    s_expect_refused(&f, 0, -EINVAL, "bad method");
    f.method = (char *)"/a.B/C";
    f.request_id = (char *)"";
    s_expect_refused(&f, 0, -EINVAL, "bad request id");
    char longid[DY_WIRE_REQUEST_ID_MAX + 2];
    memset(longid, 'z', sizeof(longid) - 1);
    longid[sizeof(longid) - 1] = '\0';
    f.request_id = longid;
    s_expect_refused(&f, 0, -EINVAL, "bad request id");
    f.request_id = (char *)"bad\nid";
    s_expect_refused(&f, 0, -EINVAL, "bad request id");

    dy_wire_frame_init(&f, HALO__WIRE__V1__KIND__STATUS);
    s_expect_refused(&f, 0, -EINVAL, "no status");
    f.status = &st;
    st.code = 17;
    s_expect_refused(&f, 0, -EINVAL, "bad status code");
    st.code = -1;
    s_expect_refused(&f, 0, -EINVAL, "bad status code");
    st.code = 9;
    st.reason = (char *)"NOT_A_REASON";
    s_expect_refused(&f, 0, -EINVAL, "bad status reason");

    dy_wire_frame_init(&f, HALO__WIRE__V1__KIND__CREDIT);
    s_expect_refused(&f, 0, -EINVAL, "zero credit");

    uint8_t big[101];
    memset(big, 0x5a, sizeof(big));
    dy_wire_frame_init(&f, HALO__WIRE__V1__KIND__MESSAGE);
    f.message.data = big;
    f.message.len = sizeof(big);
    s_expect_refused(&f, 100, -EMSGSIZE, "message too large");
    /* ... and exactly at the limit it passes. */
    f.message.len = 100;
    dy_buf_t buf = {0};
    s_raw_frame(&f, &buf);
    Halo__Wire__V1__Frame *ok = NULL;
    assert_int_equal(s_decode_one(&buf, 100, &ok, NULL), 0);
    assert_int_equal(ok->message.len, 100);
    dy_wire_frame_free(&ok);
    dy_buf_free(&buf);

    /* Bytes that are no Frame at all. */
    static const uint8_t junk[] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01};
    Halo__Wire__V1__Frame *out = NULL;
    const char *why = NULL;
    assert_int_equal(dy_wire_frame_decode(junk, sizeof(junk), 0, &out, &why), -EPROTO);
    assert_null(out);
    assert_string_equal(why, "undecodable frame");
    /* A truncated frame body: the MESSAGE field claims more bytes than there are. */
    static const uint8_t trunc[] = {0x08, 0x01, 0x10, 0x02, 0x32, 0x10, 'a', 'b'};
    assert_int_equal(dy_wire_frame_decode(trunc, sizeof(trunc), 0, &out, &why), -EPROTO);
    /* An empty body decodes to version 0. */
    assert_int_equal(dy_wire_frame_decode((const uint8_t *)"", 0, 0, &out, &why), -EINVAL);
    assert_string_equal(why, "bad version");
    assert_int_equal(dy_wire_frame_check(NULL, 0, &why), -EINVAL);
}

static void test_encode_too_large(void **state)
{
    (void)state;
    size_t n = DY_WIRE_MAX_FRAME_DEFAULT;
    uint8_t *big = calloc(1, n);
    assert_non_null(big);
    dy_buf_t s = {0};
    assert_int_equal(dy_wire_encode_message(&s, big, n), -EMSGSIZE);
    assert_int_equal(s.len, 0);
    /* A full 4 MiB body chunk inside its request fits in the default frame. */
    Wfa__Measurement__System__V1alpha__AdvanceComputationRequest req =
        WFA__MEASUREMENT__SYSTEM__V1ALPHA__ADVANCE_COMPUTATION_REQUEST__INIT;
    Wfa__Measurement__System__V1alpha__AdvanceComputationRequest__BodyChunk chunk =
        WFA__MEASUREMENT__SYSTEM__V1ALPHA__ADVANCE_COMPUTATION_REQUEST__BODY_CHUNK__INIT;
    chunk.partial_data.data = big;
    chunk.partial_data.len = DY_WIRE_CHUNK_MAX;
    req.payload_case = WFA__MEASUREMENT__SYSTEM__V1ALPHA__ADVANCE_COMPUTATION_REQUEST__PAYLOAD_BODY_CHUNK;
    req.body_chunk = &chunk;
    assert_int_equal(dy_wire_encode_pb(&s, &req.base), 0);
    assert_true(s.len <= DY_WIRE_PREFIX_LEN + DY_WIRE_MAX_FRAME_DEFAULT);
    /* A custom, smaller frame limit is honoured by the encoder. */
    Halo__Wire__V1__Frame f;
    dy_wire_frame_init(&f, HALO__WIRE__V1__KIND__MESSAGE);
    f.message.data = big;
    f.message.len = 60;
    dy_buf_t t = {0};
    assert_int_equal(dy_wire_frame_encode(&f, 50, &t), -EMSGSIZE);
    assert_int_equal(t.len, 0);
    assert_int_equal(dy_wire_frame_encode(&f, 80, &t), 0);
    dy_buf_free(&t);
    dy_buf_free(&s);
    free(big);
}

/* ---- the reader -------------------------------------------------------------------------- */

static void test_reader_oversize_prefix(void **state)
{
    (void)state;
    dy_wire_reader_t r;
    dy_wire_reader_init(&r, 0);
    assert_int_equal(r.max_frame, DY_WIRE_MAX_FRAME_DEFAULT);
    static const uint8_t gib[] = {0x40, 0x00, 0x00, 0x00, 'x', 'y'}; /* 1 GiB */
    size_t used = 99, flen = 0;
    const uint8_t *fb = NULL;
    assert_int_equal(dy_wire_reader_feed(&r, gib, sizeof(gib), &used, &fb, &flen), -EMSGSIZE);
    assert_int_equal(used, 4);
    assert_null(r.buf);
    assert_int_equal(r.cap, 0);
    /* Sticky: the stream's framing is lost. */
    assert_int_equal(dy_wire_reader_feed(&r, gib + 4, 2, &used, &fb, &flen), -EMSGSIZE);
    assert_int_equal(used, 0);
    assert_int_equal(r.cap, 0);
    assert_int_equal(dy_wire_status_from_errno(-EMSGSIZE), DY_WIRE_STATUS_RESOURCE_EXHAUSTED);
    dy_wire_reader_free(&r);

    /* 0xffffffff, fed one byte at a time: refused on the fourth byte. */
    dy_wire_reader_init(&r, 0);
    static const uint8_t max[] = {0xff, 0xff, 0xff, 0xff};
    for (int i = 0; i < 3; i++)
        assert_int_equal(dy_wire_reader_feed(&r, max + i, 1, &used, &fb, &flen), 0);
    assert_int_equal(dy_wire_reader_feed(&r, max + 3, 1, &used, &fb, &flen), -EMSGSIZE);
    assert_int_equal(r.cap, 0);
    dy_wire_reader_free(&r);

    /* The bound is inclusive: max_frame passes, max_frame + 1 does not. */
    dy_wire_reader_init(&r, 100);
    static const uint8_t p100[] = {0, 0, 0, 100}, p101[] = {0, 0, 0, 101};
    assert_int_equal(dy_wire_reader_feed(&r, p100, 4, &used, &fb, &flen), 0);
    dy_wire_reader_free(&r);
    assert_int_equal(r.max_frame, 100);
    assert_int_equal(dy_wire_reader_feed(&r, p101, 4, &used, &fb, &flen), -EMSGSIZE);
    dy_wire_reader_free(&r);

    /* Just above the default limit. */
    dy_wire_reader_init(&r, 0);
    uint32_t n = (uint32_t)DY_WIRE_MAX_FRAME_DEFAULT + 1;
    uint8_t pre[4] = {(uint8_t)(n >> 24), (uint8_t)(n >> 16), (uint8_t)(n >> 8), (uint8_t)n};
    assert_int_equal(dy_wire_reader_feed(&r, pre, 4, &used, &fb, &flen), -EMSGSIZE);
    assert_int_equal(r.cap, 0);
    dy_wire_reader_free(&r);
}

static void test_reader_allocates_with_bytes_received(void **state)
{
    (void)state;
    dy_wire_reader_t r;
    dy_wire_reader_init(&r, 0);
    uint32_t n = 4u << 20; /* announces 4 MiB (allowed) ... */
    uint8_t head[4 + 10] = {(uint8_t)(n >> 24), (uint8_t)(n >> 16), (uint8_t)(n >> 8),
                            (uint8_t)n};
    size_t used = 0, flen = 0;
    const uint8_t *fb = NULL;
    assert_int_equal(dy_wire_reader_feed(&r, head, 4, &used, &fb, &flen), 0);
    assert_int_equal(r.cap, 0); /* nothing allocated for a bare prefix */
    assert_int_equal(dy_wire_reader_feed(&r, head + 4, 10, &used, &fb, &flen), 0);
    assert_int_equal(used, 10);
    assert_true(r.cap <= 4096); /* ... but only what arrived is held */
    assert_false(dy_wire_reader_at_boundary(&r));
    dy_wire_reader_free(&r);
    assert_int_equal(r.cap, 0);
}

static void test_reader_byte_at_a_time(void **state)
{
    (void)state;
    dy_buf_t s = {0};
    uint8_t payload[5000];
    for (size_t i = 0; i < sizeof(payload); i++)
        payload[i] = (uint8_t)(i ^ (i >> 8));
    assert_int_equal(dy_wire_encode_call_start(&s, "/x.Y/Z", "id", 0), 0);
    assert_int_equal(dy_wire_encode_message(&s, payload, sizeof(payload)), 0);
    assert_int_equal(dy_wire_encode_message(&s, NULL, 0), 0);
    assert_int_equal(dy_wire_encode_bare(&s, HALO__WIRE__V1__KIND__HALF_CLOSE), 0);

    dy_wire_reader_t r;
    dy_wire_reader_init(&r, 0);
    int frames = 0;
    for (size_t i = 0; i < s.len; i++) {
        size_t used = 0, flen = 0;
        const uint8_t *fb = NULL;
        int rc = dy_wire_reader_feed(&r, s.data + i, 1, &used, &fb, &flen);
        assert_int_equal(used, 1);
        assert_true(rc == 0 || rc == 1);
        if (rc == 0)
            continue;
        Halo__Wire__V1__Frame *f = NULL;
        assert_int_equal(dy_wire_frame_decode(fb, flen, 0, &f, NULL), 0);
        if (frames == 1) {
            assert_int_equal(f->kind, HALO__WIRE__V1__KIND__MESSAGE);
            assert_memory_equal(f->message.data, payload, sizeof(payload));
        }
        if (frames == 3)
            assert_int_equal(f->kind, HALO__WIRE__V1__KIND__HALF_CLOSE);
        dy_wire_frame_free(&f);
        frames++;
        assert_true(dy_wire_reader_at_boundary(&r));
    }
    assert_int_equal(frames, 4);
    /* Feeding nothing is harmless. */
    size_t used = 7, flen = 0;
    const uint8_t *fb = NULL;
    assert_int_equal(dy_wire_reader_feed(&r, NULL, 0, &used, &fb, &flen), 0);
    assert_int_equal(used, 0);
    dy_wire_reader_free(&r);
    dy_buf_free(&s);
}

static void test_reader_zero_length_and_truncation(void **state)
{
    (void)state;
    dy_wire_reader_t r;
    dy_wire_reader_init(&r, 0);
    static const uint8_t zero[] = {0, 0, 0, 0};
    size_t used = 0, flen = 99;
    const uint8_t *fb = NULL;
    assert_int_equal(dy_wire_reader_feed(&r, zero, 4, &used, &fb, &flen), 1);
    assert_int_equal(flen, 0);
    assert_non_null(fb);
    Halo__Wire__V1__Frame *f = NULL;
    assert_int_equal(dy_wire_frame_decode(fb, flen, 0, &f, NULL), -EINVAL);

    /* A frame cut short: the reader waits, and is not at a boundary. */
    dy_buf_t s = {0};
    assert_int_equal(dy_wire_encode_credit(&s, 3), 0);
    assert_int_equal(dy_wire_reader_feed(&r, s.data, s.len - 1, &used, &fb, &flen), 0);
    assert_int_equal(used, s.len - 1);
    assert_false(dy_wire_reader_at_boundary(&r));
    assert_int_equal(dy_wire_reader_feed(&r, s.data + s.len - 1, 1, &used, &fb, &flen), 1);
    assert_int_equal(dy_wire_frame_decode(fb, flen, 0, &f, NULL), 0);
    assert_int_equal(f->credit, 3);
    dy_wire_frame_free(&f);
    dy_wire_reader_free(&r);
    dy_buf_free(&s);
}

static void test_reader_releases_big_buffer(void **state)
{
    (void)state;
    size_t n = 1u << 20;
    uint8_t *big = calloc(1, n);
    assert_non_null(big);
    dy_buf_t s = {0};
    assert_int_equal(dy_wire_encode_message(&s, big, n), 0);
    assert_int_equal(dy_wire_encode_bare(&s, HALO__WIRE__V1__KIND__PING), 0);
    dy_wire_reader_t r;
    dy_wire_reader_init(&r, 0);
    size_t off = 0, used = 0, flen = 0;
    const uint8_t *fb = NULL;
    assert_int_equal(dy_wire_reader_feed(&r, s.data, s.len, &used, &fb, &flen), 1);
    assert_true(flen > n);
    assert_true(r.cap >= flen && r.cap <= flen);
    off += used;
    assert_int_equal(dy_wire_reader_feed(&r, s.data + off, s.len - off, &used, &fb, &flen), 1);
    assert_true(r.cap <= 4096);
    dy_wire_reader_free(&r);
    dy_buf_free(&s);
    free(big);
}

/* ---- credit ------------------------------------------------------------------------------ */

static void test_credit(void **state)
{
    (void)state;
    dy_wire_credit_t tx, rx;
    dy_wire_credit_init(&tx);
    dy_wire_credit_init(&rx);
    /* No credit may be granted before the header. */
    assert_int_equal(dy_wire_credit_grant(&rx, 1), -EPROTO);
    /* The header needs none. */
    assert_int_equal(dy_wire_credit_take(&tx), 0);
    assert_int_equal(dy_wire_credit_accept(&rx), 0);
    /* The next message does. */
    assert_int_equal(dy_wire_credit_take(&tx), -EAGAIN);
    assert_int_equal(dy_wire_credit_accept(&rx), -EAGAIN);
    assert_int_equal(dy_wire_credit_grant(&rx, 0), -EINVAL);
    assert_int_equal(dy_wire_credit_grant(&rx, 2), 0);
    assert_int_equal(dy_wire_credit_grant(&tx, 2), 0);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(dy_wire_credit_take(&tx), 0);
        assert_int_equal(dy_wire_credit_accept(&rx), 0);
    }
    assert_int_equal(dy_wire_credit_take(&tx), -EAGAIN);
    assert_int_equal(dy_wire_credit_accept(&rx), -EAGAIN);
    assert_int_equal(tx.available, 0);
    /* Outstanding credit is bounded. */
    assert_int_equal(dy_wire_credit_grant(&tx, UINT32_MAX), 0);
    assert_int_equal(dy_wire_credit_grant(&tx, 1), -EOVERFLOW);
    assert_int_equal(tx.available, UINT32_MAX);
}

/* ---- uploads ----------------------------------------------------------------------------- */

static void s_fill(uint8_t *p, size_t n, uint32_t seed)
{
    uint32_t x = seed * 2654435761u + 1;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        p[i] = (uint8_t)x;
    }
}

static void test_upload_rx_ok_and_mismatch(void **state)
{
    (void)state;
    uint8_t body[1000];
    s_fill(body, sizeof(body), 1);
    uint8_t digest[32];
    assert_int_equal(dy_wire_sha256(body, sizeof(body), digest), 0);

    /* Chunks of 300, 300, 300, 100 with test bounds 300..400. */
    Halo__Wire__V1__Trailer t = HALO__WIRE__V1__TRAILER__INIT;
    t.sha256.data = digest;
    t.sha256.len = 32;
    t.total_length = sizeof(body);
    dy_wire_upload_rx_t rx;
    assert_int_equal(dy_wire_upload_rx_init(&rx, 300, 400, 0), 0);
    for (size_t off = 0; off < sizeof(body); off += 300) {
        size_t n = sizeof(body) - off < 300 ? sizeof(body) - off : 300;
        assert_int_equal(dy_wire_upload_rx_chunk(&rx, body + off, n), 0);
    }
    assert_false(dy_wire_upload_rx_verified(&rx)); /* no trailer yet: nothing to commit */
    assert_int_equal(dy_wire_upload_rx_trailer(&rx, &t), 0);
    assert_true(dy_wire_upload_rx_verified(&rx));
    assert_memory_equal(rx.sha256, digest, 32);
    assert_int_equal(rx.total, sizeof(body));
    assert_int_equal(rx.chunks, 4);
    /* Nothing may follow the trailer. */
    assert_int_equal(dy_wire_upload_rx_trailer(&rx, &t), -EPROTO);
    assert_int_equal(dy_wire_upload_rx_chunk(&rx, body, 300), -EPROTO);
    assert_false(dy_wire_upload_rx_verified(&rx));
    dy_wire_upload_rx_free(&rx);

    /* Hash mismatch: one flipped bit in the body. */
    assert_int_equal(dy_wire_upload_rx_init(&rx, 300, 400, 0), 0);
    body[500] ^= 1;
    assert_int_equal(dy_wire_upload_rx_chunk(&rx, body, 400), 0);
    assert_int_equal(dy_wire_upload_rx_chunk(&rx, body + 400, 400), 0);
    assert_int_equal(dy_wire_upload_rx_chunk(&rx, body + 800, 200), 0);
    int rc = dy_wire_upload_rx_trailer(&rx, &t);
    assert_int_equal(rc, -EBADMSG);
    assert_int_equal(dy_wire_status_from_errno(rc), DY_WIRE_STATUS_DATA_LOSS);
    assert_false(dy_wire_upload_rx_verified(&rx));
    dy_wire_upload_rx_free(&rx);
    body[500] ^= 1;

    /* Length mismatch with the right hash. */
    assert_int_equal(dy_wire_upload_rx_init(&rx, 300, 400, 0), 0);
    assert_int_equal(dy_wire_upload_rx_chunk(&rx, body, 400), 0);
    assert_int_equal(dy_wire_upload_rx_chunk(&rx, body + 400, 400), 0);
    assert_int_equal(dy_wire_upload_rx_chunk(&rx, body + 800, 200), 0);
    t.total_length = sizeof(body) + 1;
    rc = dy_wire_upload_rx_trailer(&rx, &t);
    assert_int_equal(rc, -EBADMSG);
    assert_int_equal(dy_wire_status_from_errno(rc), DY_WIRE_STATUS_DATA_LOSS);
    dy_wire_upload_rx_free(&rx);

    /* Missing bytes: a chunk dropped, the trailer of the whole body. */
    t.total_length = sizeof(body);
    assert_int_equal(dy_wire_upload_rx_init(&rx, 300, 400, 0), 0);
    assert_int_equal(dy_wire_upload_rx_chunk(&rx, body, 400), 0);
    assert_int_equal(dy_wire_upload_rx_chunk(&rx, body + 800, 200), 0);
    assert_int_equal(dy_wire_upload_rx_trailer(&rx, &t), -EBADMSG);
    dy_wire_upload_rx_free(&rx);

    /* A malformed trailer (31-byte hash) is INVALID_ARGUMENT, not DATA_LOSS. */
    assert_int_equal(dy_wire_upload_rx_init(&rx, 300, 400, 0), 0);
    t.sha256.len = 31;
    assert_int_equal(dy_wire_upload_rx_trailer(&rx, &t), -EINVAL);
    dy_wire_upload_rx_free(&rx);
    assert_int_equal(dy_wire_upload_rx_init(&rx, 300, 400, 0), 0);
    assert_int_equal(dy_wire_upload_rx_trailer(&rx, NULL), -EINVAL);
    dy_wire_upload_rx_free(&rx);
}

static void test_upload_rx_chunk_rules(void **state)
{
    (void)state;
    uint8_t body[1000];
    s_fill(body, sizeof(body), 2);
    dy_wire_upload_rx_t rx;

    /* Chunk above the maximum. */
    assert_int_equal(dy_wire_upload_rx_init(&rx, 300, 400, 0), 0);
    assert_int_equal(dy_wire_upload_rx_chunk(&rx, body, 401), -E2BIG);
    assert_int_equal(dy_wire_status_from_errno(-E2BIG), DY_WIRE_STATUS_INVALID_ARGUMENT);
    /* The error is sticky. */
    assert_int_equal(dy_wire_upload_rx_chunk(&rx, body, 300), -E2BIG);
    assert_int_equal(dy_wire_upload_rx_trailer(&rx, NULL), -EPROTO);
    dy_wire_upload_rx_free(&rx);

    /* Empty chunk. */
    assert_int_equal(dy_wire_upload_rx_init(&rx, 300, 400, 0), 0);
    assert_int_equal(dy_wire_upload_rx_chunk(&rx, body, 0), -EINVAL);
    dy_wire_upload_rx_free(&rx);

    /* A short chunk must be the last. */
    assert_int_equal(dy_wire_upload_rx_init(&rx, 300, 400, 0), 0);
    assert_int_equal(dy_wire_upload_rx_chunk(&rx, body, 299), 0);
    assert_int_equal(dy_wire_upload_rx_chunk(&rx, body + 299, 300), -EINVAL);
    dy_wire_upload_rx_free(&rx);

    /* Exactly min and max are fine, in any order. */
    assert_int_equal(dy_wire_upload_rx_init(&rx, 300, 400, 0), 0);
    assert_int_equal(dy_wire_upload_rx_chunk(&rx, body, 400), 0);
    assert_int_equal(dy_wire_upload_rx_chunk(&rx, body + 400, 300), 0);
    assert_int_equal(dy_wire_upload_rx_chunk(&rx, body + 700, 300), 0);
    dy_wire_upload_rx_free(&rx);

    /* Upload cap: at the cap fine, one byte over refused. */
    assert_int_equal(dy_wire_upload_rx_init(&rx, 300, 400, 700), 0);
    assert_int_equal(dy_wire_upload_rx_chunk(&rx, body, 400), 0);
    assert_int_equal(dy_wire_upload_rx_chunk(&rx, body + 400, 300), 0);
    assert_int_equal(dy_wire_upload_rx_chunk(&rx, body + 700, 1), -EFBIG);
    assert_int_equal(dy_wire_status_from_errno(-EFBIG), DY_WIRE_STATUS_RESOURCE_EXHAUSTED);
    dy_wire_upload_rx_free(&rx);

    /* Default bounds are the protocol's 1 MiB .. 4 MiB; bad bounds refused. */
    assert_int_equal(dy_wire_upload_rx_init(&rx, 0, 0, 0), 0);
    assert_int_equal(rx.min_chunk, DY_WIRE_CHUNK_MIN);
    assert_int_equal(rx.max_chunk, DY_WIRE_CHUNK_MAX);
    dy_wire_upload_rx_free(&rx);
    assert_int_equal(dy_wire_upload_rx_init(&rx, 500, 400, 0), -EINVAL);
    dy_wire_upload_rx_free(&rx);
    dy_wire_upload_rx_free(NULL);
}

static void test_upload_empty_body(void **state)
{
    (void)state;
    /* Sender: zero chunks, then the trailer (0, SHA-256("")). */
    dy_wire_upload_tx_t tx;
    assert_int_equal(dy_wire_upload_tx_init(&tx, 0), 0);
    const uint8_t *chunk = NULL;
    size_t clen = 0;
    assert_int_equal(dy_wire_upload_tx_next_buf(&tx, NULL, 0, &chunk, &clen), 0);
    uint8_t sha[32];
    uint64_t total = 99;
    assert_int_equal(dy_wire_upload_tx_trailer(&tx, sha, &total), 0);
    assert_int_equal(total, 0);
    char hex[65];
    dy_hex(sha, 32, hex);
    assert_string_equal(hex, s_sha256_empty_hex);
    assert_int_equal(dy_wire_upload_tx_trailer(&tx, sha, &total), -EPROTO);
    dy_wire_upload_tx_free(&tx);

    /* Receiver: accepts it with no chunk at all. */
    Halo__Wire__V1__Trailer t = HALO__WIRE__V1__TRAILER__INIT;
    t.sha256.data = sha;
    t.sha256.len = 32;
    t.total_length = 0;
    dy_wire_upload_rx_t rx;
    assert_int_equal(dy_wire_upload_rx_init(&rx, 0, 0, 0), 0);
    assert_int_equal(dy_wire_upload_rx_trailer(&rx, &t), 0);
    assert_true(dy_wire_upload_rx_verified(&rx));
    assert_int_equal(rx.chunks, 0);
    dy_wire_upload_rx_free(&rx);

    /* ... but not with a wrong hash of nothing. */
    sha[0] ^= 0x80;
    assert_int_equal(dy_wire_upload_rx_init(&rx, 0, 0, 0), 0);
    assert_int_equal(dy_wire_upload_rx_trailer(&rx, &t), -EBADMSG);
    dy_wire_upload_rx_free(&rx);

    uint8_t d2[32];
    assert_int_equal(dy_wire_sha256(NULL, 0, d2), 0);
    dy_hex(d2, 32, hex);
    assert_string_equal(hex, s_sha256_empty_hex);
}

/* Cuts len bytes with chunk size cs and checks the chunk sizes and that a receiver with the
 * protocol's bounds accepts the result. */
static void s_check_chunking(const uint8_t *buf, size_t len, size_t cs, uint64_t want_chunks)
{
    dy_wire_upload_tx_t tx;
    dy_wire_upload_rx_t rx;
    assert_int_equal(dy_wire_upload_tx_init(&tx, cs), 0);
    assert_int_equal(dy_wire_upload_rx_init(&rx, 0, 0, 0), 0);
    assert_int_equal(dy_wire_upload_chunk_count(len, tx.chunk_size), want_chunks);
    const uint8_t *chunk = NULL;
    size_t clen = 0, off = 0;
    uint64_t count = 0;
    int rc;
    while ((rc = dy_wire_upload_tx_next_buf(&tx, buf, len, &chunk, &clen)) == 1) {
        assert_ptr_equal(chunk, buf + off);
        if (off + tx.chunk_size <= len)
            assert_int_equal(clen, tx.chunk_size);
        else
            assert_int_equal(clen, len - off);
        assert_true(clen > 0);
        assert_int_equal(dy_wire_upload_rx_chunk(&rx, chunk, clen), 0);
        off += clen;
        count++;
    }
    assert_int_equal(rc, 0);
    assert_int_equal(off, len);
    assert_int_equal(count, want_chunks);
    uint8_t sha[32], want[32];
    uint64_t total = 0;
    assert_int_equal(dy_wire_upload_tx_trailer(&tx, sha, &total), 0);
    assert_int_equal(total, len);
    assert_int_equal(dy_wire_sha256(buf, len, want), 0);
    assert_memory_equal(sha, want, 32);
    Halo__Wire__V1__Trailer t = HALO__WIRE__V1__TRAILER__INIT;
    t.sha256.data = sha;
    t.sha256.len = 32;
    t.total_length = total;
    assert_int_equal(dy_wire_upload_rx_trailer(&rx, &t), 0);
    /* No more chunks after the trailer. */
    assert_int_equal(dy_wire_upload_tx_next_buf(&tx, buf, len, &chunk, &clen), -EPROTO);
    dy_wire_upload_tx_free(&tx);
    dy_wire_upload_rx_free(&rx);
}

static void test_upload_chunking_boundaries(void **state)
{
    (void)state;
    size_t mib = (size_t)1 << 20;
    size_t len = 8 * mib + 5;
    uint8_t *buf = malloc(len);
    assert_non_null(buf);
    s_fill(buf, len, 3);

    s_check_chunking(buf, 1, 0, 1);               /* one byte: one short chunk */
    s_check_chunking(buf, mib - 1, 0, 1);
    s_check_chunking(buf, mib, 0, 1);             /* exactly one chunk */
    s_check_chunking(buf, mib + 1, 0, 2);         /* one full, one of 1 byte */
    s_check_chunking(buf, 2 * mib, 0, 2);         /* exact multiple: no empty tail */
    s_check_chunking(buf, 3 * mib + 5, mib, 4);
    s_check_chunking(buf, 8 * mib + 5, 4 * mib, 3); /* largest chunks */
    s_check_chunking(buf, 8 * mib, 4 * mib, 2);
    s_check_chunking(buf, 5 * mib, 3 * mib / 2, 4); /* an odd size within bounds */

    assert_int_equal(dy_wire_upload_chunk_count(0, mib), 0);
    assert_int_equal(dy_wire_upload_chunk_count(1, mib), 1);
    assert_int_equal(dy_wire_upload_chunk_count(mib, mib), 1);
    assert_int_equal(dy_wire_upload_chunk_count(mib + 1, mib), 2);

    /* Chunk sizes outside 1..4 MiB are refused. */
    dy_wire_upload_tx_t tx;
    assert_int_equal(dy_wire_upload_tx_init(&tx, mib - 1), -EINVAL);
    dy_wire_upload_tx_free(&tx);
    assert_int_equal(dy_wire_upload_tx_init(&tx, 4 * mib + 1), -EINVAL);
    dy_wire_upload_tx_free(&tx);
    assert_int_equal(dy_wire_upload_tx_init(&tx, 0), 0);
    assert_int_equal(tx.chunk_size, DY_WIRE_CHUNK_DEFAULT);
    /* The buffer may not shrink under the cursor. */
    const uint8_t *chunk = NULL;
    size_t clen = 0;
    assert_int_equal(dy_wire_upload_tx_next_buf(&tx, buf, 2 * mib, &chunk, &clen), 1);
    assert_int_equal(dy_wire_upload_tx_next_buf(&tx, buf, mib / 2, &chunk, &clen), -EINVAL);
    dy_wire_upload_tx_free(&tx);

    /* A chunk of 4 MiB + 1 from a misbehaving sender is refused by the receiver. */
    dy_wire_upload_rx_t rx;
    assert_int_equal(dy_wire_upload_rx_init(&rx, 0, 0, 0), 0);
    assert_int_equal(dy_wire_upload_rx_chunk(&rx, buf, 4 * mib + 1), -E2BIG);
    dy_wire_upload_rx_free(&rx);
    free(buf);
}

static void test_upload_from_fd(void **state)
{
    (void)state;
    size_t mib = (size_t)1 << 20;
    size_t len = 2 * mib + 12345;
    uint8_t *buf = malloc(len);
    assert_non_null(buf);
    s_fill(buf, len, 4);
    FILE *fp = tmpfile();
    assert_non_null(fp);
    assert_int_equal(fwrite(buf, 1, len, fp), len);
    assert_int_equal(fflush(fp), 0);
    rewind(fp);
    int fd = fileno(fp);

    dy_wire_upload_tx_t tx;
    assert_int_equal(dy_wire_upload_tx_init(&tx, mib), 0);
    dy_buf_t chunk = {0};
    size_t off = 0;
    int n = 0, rc;
    while ((rc = dy_wire_upload_tx_next_fd(&tx, fd, &chunk)) == 1) {
        assert_memory_equal(chunk.data, buf + off, chunk.len);
        assert_int_equal(chunk.len, n < 2 ? mib : 12345);
        off += chunk.len;
        n++;
    }
    assert_int_equal(rc, 0);
    assert_int_equal(n, 3);
    uint8_t sha[32], want[32];
    uint64_t total = 0;
    assert_int_equal(dy_wire_upload_tx_trailer(&tx, sha, &total), 0);
    assert_int_equal(total, len);
    assert_int_equal(dy_wire_sha256(buf, len, want), 0);
    assert_memory_equal(sha, want, 32);
    assert_int_equal(dy_wire_upload_tx_next_fd(&tx, fd, &chunk), -EPROTO);
    dy_wire_upload_tx_free(&tx);

    /* A bad descriptor surfaces read(2)'s errno. */
    assert_int_equal(dy_wire_upload_tx_init(&tx, mib), 0);
    assert_int_equal(dy_wire_upload_tx_next_fd(&tx, -1, &chunk), -EBADF);
    dy_wire_upload_tx_free(&tx);
    dy_buf_free(&chunk);
    fclose(fp);
    free(buf);
}

/* A whole AdvanceComputation upload, as a client would frame it and a server would take it
 * apart: CALL_START, header, (credit), chunks, trailer, HALF_CLOSE, fed in odd slices. */
static void test_upload_call_end_to_end(void **state)
{
    (void)state;
    size_t mib = (size_t)1 << 20;
    size_t len = 2 * mib + 777;
    uint8_t *body = malloc(len);
    assert_non_null(body);
    s_fill(body, len, 5);

    dy_buf_t s = {0};
    assert_int_equal(
        dy_wire_encode_call_start(
            &s, "/wfa.measurement.system.v1alpha.ComputationControl/AdvanceComputation", "r-42",
            0),
        0);
    Wfa__Measurement__System__V1alpha__LiquidLegionsV2 llv2 =
        WFA__MEASUREMENT__SYSTEM__V1ALPHA__LIQUID_LEGIONS_V2__INIT;
    llv2.description = WFA__MEASUREMENT__SYSTEM__V1ALPHA__LIQUID_LEGIONS_V2__DESCRIPTION__SETUP_PHASE_INPUT;
    Wfa__Measurement__System__V1alpha__AdvanceComputationRequest__Header hdr =
        WFA__MEASUREMENT__SYSTEM__V1ALPHA__ADVANCE_COMPUTATION_REQUEST__HEADER__INIT;
    hdr.name = (char *)"computations/AAAAAAAAAHs";
    hdr.protocol_case =
        WFA__MEASUREMENT__SYSTEM__V1ALPHA__ADVANCE_COMPUTATION_REQUEST__HEADER__PROTOCOL_LIQUID_LEGIONS_V2;
    hdr.liquid_legions_v2 = &llv2;
    Wfa__Measurement__System__V1alpha__AdvanceComputationRequest req =
        WFA__MEASUREMENT__SYSTEM__V1ALPHA__ADVANCE_COMPUTATION_REQUEST__INIT;
    req.payload_case =
        WFA__MEASUREMENT__SYSTEM__V1ALPHA__ADVANCE_COMPUTATION_REQUEST__PAYLOAD_HEADER;
    req.header = &hdr;
    dy_wire_credit_t ctx;
    dy_wire_credit_init(&ctx);
    assert_int_equal(dy_wire_credit_take(&ctx), 0);
    assert_int_equal(dy_wire_encode_pb(&s, &req.base), 0);
    /* The server's CREDIT, here simply granted. */
    assert_int_equal(dy_wire_credit_take(&ctx), -EAGAIN);
    assert_int_equal(dy_wire_credit_grant(&ctx, 16), 0);

    dy_wire_upload_tx_t tx;
    assert_int_equal(dy_wire_upload_tx_init(&tx, 0), 0);
    Wfa__Measurement__System__V1alpha__AdvanceComputationRequest__BodyChunk bc =
        WFA__MEASUREMENT__SYSTEM__V1ALPHA__ADVANCE_COMPUTATION_REQUEST__BODY_CHUNK__INIT;
    req.payload_case =
        WFA__MEASUREMENT__SYSTEM__V1ALPHA__ADVANCE_COMPUTATION_REQUEST__PAYLOAD_BODY_CHUNK;
    req.header = NULL;
    req.body_chunk = &bc;
    const uint8_t *chunk = NULL;
    size_t clen = 0;
    while (dy_wire_upload_tx_next_buf(&tx, body, len, &chunk, &clen) == 1) {
        assert_int_equal(dy_wire_credit_take(&ctx), 0);
        bc.partial_data.data = (uint8_t *)chunk;
        bc.partial_data.len = clen;
        assert_int_equal(dy_wire_encode_pb(&s, &req.base), 0);
    }
    uint8_t sha[32];
    uint64_t total = 0;
    assert_int_equal(dy_wire_upload_tx_trailer(&tx, sha, &total), 0);
    dy_wire_upload_tx_free(&tx);
    Halo__Wire__V1__Trailer tr = HALO__WIRE__V1__TRAILER__INIT;
    tr.sha256.data = sha;
    tr.sha256.len = 32;
    tr.total_length = total;
    req.payload_case = WFA__MEASUREMENT__SYSTEM__V1ALPHA__ADVANCE_COMPUTATION_REQUEST__PAYLOAD_TRAILER;
    req.body_chunk = NULL;
    req.trailer = &tr;
    assert_int_equal(dy_wire_credit_take(&ctx), 0);
    assert_int_equal(dy_wire_encode_pb(&s, &req.base), 0);
    assert_int_equal(dy_wire_encode_bare(&s, HALO__WIRE__V1__KIND__HALF_CLOSE), 0);

    /* Server side. */
    dy_wire_reader_t r;
    dy_wire_reader_init(&r, 0);
    dy_wire_credit_t crx;
    dy_wire_credit_init(&crx);
    dy_wire_upload_rx_t rx;
    assert_int_equal(dy_wire_upload_rx_init(&rx, 0, 0, 0), 0);
    int messages = 0;
    bool call_started = false, half_closed = false;
    size_t off = 0;
    while (off < s.len) {
        size_t slice = s.len - off < 7777 ? s.len - off : 7777, used = 0, flen = 0;
        const uint8_t *fb = NULL;
        int rc = dy_wire_reader_feed(&r, s.data + off, slice, &used, &fb, &flen);
        off += used;
        assert_true(rc == 0 || rc == 1);
        if (rc == 0)
            continue;
        Halo__Wire__V1__Frame *f = NULL;
        assert_int_equal(dy_wire_frame_decode(fb, flen, 0, &f, NULL), 0);
        if (f->kind == HALO__WIRE__V1__KIND__CALL_START) {
            assert_string_equal(f->request_id, "r-42");
            call_started = true;
        } else if (f->kind == HALO__WIRE__V1__KIND__HALF_CLOSE) {
            half_closed = true;
        } else {
            assert_int_equal(f->kind, HALO__WIRE__V1__KIND__MESSAGE);
            assert_int_equal(dy_wire_credit_accept(&crx), 0);
            Wfa__Measurement__System__V1alpha__AdvanceComputationRequest *m =
                wfa__measurement__system__v1alpha__advance_computation_request__unpack(
                    NULL, f->message.len, f->message.data);
            assert_non_null(m);
            if (messages == 0) {
                assert_int_equal(m->payload_case,
                                 WFA__MEASUREMENT__SYSTEM__V1ALPHA__ADVANCE_COMPUTATION_REQUEST__PAYLOAD_HEADER);
                assert_string_equal(m->header->name, "computations/AAAAAAAAAHs");
                assert_int_equal(dy_wire_credit_grant(&crx, 16), 0);
            } else if (m->payload_case ==
                       WFA__MEASUREMENT__SYSTEM__V1ALPHA__ADVANCE_COMPUTATION_REQUEST__PAYLOAD_BODY_CHUNK) {
                assert_int_equal(dy_wire_upload_rx_chunk(&rx, m->body_chunk->partial_data.data,
                                                         m->body_chunk->partial_data.len),
                                 0);
            } else {
                assert_int_equal(m->payload_case,
                                 WFA__MEASUREMENT__SYSTEM__V1ALPHA__ADVANCE_COMPUTATION_REQUEST__PAYLOAD_TRAILER);
                assert_int_equal(dy_wire_upload_rx_trailer(&rx, m->trailer), 0);
            }
            wfa__measurement__system__v1alpha__advance_computation_request__free_unpacked(m,
                                                                                         NULL);
            messages++;
        }
        dy_wire_frame_free(&f);
    }
    assert_true(call_started);
    assert_true(half_closed);
    assert_int_equal(messages, 1 + 3 + 1);
    assert_true(dy_wire_upload_rx_verified(&rx));
    assert_int_equal(rx.total, len);
    dy_wire_upload_rx_free(&rx);
    dy_wire_reader_free(&r);
    dy_buf_free(&s);
    free(body);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_status_names),
        cmocka_unit_test(test_status_from_errno),
        cmocka_unit_test(test_reasons),
        cmocka_unit_test(test_method_check),
        cmocka_unit_test(test_request_id_check),
        cmocka_unit_test(test_roundtrip_each_kind),
        cmocka_unit_test(test_encode_pb_and_prefix),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_encode_too_large),
        cmocka_unit_test(test_reader_oversize_prefix),
        cmocka_unit_test(test_reader_allocates_with_bytes_received),
        cmocka_unit_test(test_reader_byte_at_a_time),
        cmocka_unit_test(test_reader_zero_length_and_truncation),
        cmocka_unit_test(test_reader_releases_big_buffer),
        cmocka_unit_test(test_credit),
        cmocka_unit_test(test_upload_rx_ok_and_mismatch),
        cmocka_unit_test(test_upload_rx_chunk_rules),
        cmocka_unit_test(test_upload_empty_body),
        cmocka_unit_test(test_upload_chunking_boundaries),
        cmocka_unit_test(test_upload_from_fd),
        cmocka_unit_test(test_upload_call_end_to_end),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
