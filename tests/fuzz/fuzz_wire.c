/* fuzz_wire.c - libFuzzer target for the frame reader and envelope validation (common/wire),
 * the first code to touch a peer's bytes (STYLE.md rule 38).
 *
 * Input layout: byte 0 chooses how the rest is fed to the reader (0 = all at once, n = n
 * bytes per feed), byte 1 chooses the reader's max_frame (even = default, odd = 256 bytes);
 * the rest is the byte stream of a connection.  Each frame the reader yields is decoded and
 * validated; a valid frame is re-encoded and decoded again, which must give the same frame;
 * MESSAGE frames are also read as AdvanceComputationRequest and driven through the credit
 * and upload-receiver state, as a coordinator would.  Invariants that must hold for any input
 * abort() on violation.  tests/fuzz/replay.c runs this over the committed corpus in every
 * build; tests/fuzz/make_corpus.py wrote the seed corpus.
 */
#include <stdlib.h>
#include <string.h>

#include "control.pb-c.h"
#include "wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define S_CHECK(cond)                                                                         \
    do {                                                                                      \
        if (!(cond))                                                                          \
            abort();                                                                          \
    } while (0)

/* Re-encodes a valid frame and checks that it decodes to the same fields. */
static void s_roundtrip(const Halo__Wire__V1__Frame *f, size_t max_frame)
{
    dy_buf_t enc = {0};
    int rc = dy_wire_frame_encode(f, max_frame, &enc);
    /* A valid frame re-encodes; only the size check may refuse it, since the canonical
     * packing can be a few bytes longer than what arrived (a negative enum packs to a
     * 10-byte varint) and so exceed max_frame. */
    S_CHECK(rc == 0 || rc == -EMSGSIZE);
    if (rc == 0) {
        S_CHECK(enc.len >= DY_WIRE_PREFIX_LEN);
        Halo__Wire__V1__Frame *g = NULL;
        S_CHECK(dy_wire_frame_decode(enc.data + DY_WIRE_PREFIX_LEN,
                                     enc.len - DY_WIRE_PREFIX_LEN, max_frame, &g, NULL) == 0);
        S_CHECK(g->version == f->version && g->kind == f->kind);
        S_CHECK(strcmp(g->method, f->method) == 0);
        S_CHECK(strcmp(g->request_id, f->request_id) == 0);
        S_CHECK(g->deadline_unix_ms == f->deadline_unix_ms && g->credit == f->credit);
        S_CHECK(g->message.len == f->message.len);
        S_CHECK(f->message.len == 0 ||
                memcmp(g->message.data, f->message.data, f->message.len) == 0);
        S_CHECK((g->status == NULL) == (f->status == NULL));
        if (f->status != NULL) {
            S_CHECK(g->status->code == f->status->code);
            S_CHECK(strcmp(g->status->reason, f->status->reason) == 0);
        }
        dy_wire_frame_free(&g);
    }
    dy_buf_free(&enc);
}

/* Treats a MESSAGE as one message of an AdvanceComputation upload. */
static void s_upload_message(const Halo__Wire__V1__Frame *f, dy_wire_credit_t *credit,
                             dy_wire_upload_rx_t *rx)
{
    if (dy_wire_credit_accept(credit) < 0)
        return;
    Wfa__Measurement__System__V1alpha__AdvanceComputationRequest *m =
        wfa__measurement__system__v1alpha__advance_computation_request__unpack(
            NULL, f->message.len, f->message.data);
    if (m == NULL)
        return;
    switch (m->payload_case) {
    case WFA__MEASUREMENT__SYSTEM__V1ALPHA__ADVANCE_COMPUTATION_REQUEST__PAYLOAD_HEADER:
        (void)dy_wire_credit_grant(credit, 4);
        break;
    case WFA__MEASUREMENT__SYSTEM__V1ALPHA__ADVANCE_COMPUTATION_REQUEST__PAYLOAD_BODY_CHUNK:
        (void)dy_wire_upload_rx_chunk(rx, m->body_chunk->partial_data.data,
                                      m->body_chunk->partial_data.len);
        break;
    case WFA__MEASUREMENT__SYSTEM__V1ALPHA__ADVANCE_COMPUTATION_REQUEST__PAYLOAD_TRAILER: {
        int rc = dy_wire_upload_rx_trailer(rx, m->trailer);
        S_CHECK(rc == 0 || rc == -EBADMSG || rc == -EINVAL || rc == -EPROTO);
        S_CHECK((rc == 0) == dy_wire_upload_rx_verified(rx));
        if (rc == 0)
            S_CHECK(memcmp(rx->sha256, m->trailer->sha256.data, DY_WIRE_SHA256_LEN) == 0);
        break;
    }
    default:
        break;
    }
    protobuf_c_message_free_unpacked(&m->base, NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    size_t slice = data[0];
    size_t max_frame = (data[1] & 1) ? 256 : DY_WIRE_MAX_FRAME_DEFAULT;
    data += 2;
    size -= 2;

    dy_wire_reader_t r;
    dy_wire_reader_init(&r, max_frame);
    dy_wire_credit_t credit;
    dy_wire_credit_init(&credit);
    dy_wire_upload_rx_t rx;
    S_CHECK(dy_wire_upload_rx_init(&rx, 1, 0, 1u << 20) == 0);

    size_t off = 0, peak = 0;
    while (off < size) {
        size_t n = size - off;
        if (slice != 0 && n > slice)
            n = slice;
        size_t used = 0, flen = 0;
        const uint8_t *fb = NULL;
        int rc = dy_wire_reader_feed(&r, data + off, n, &used, &fb, &flen);
        S_CHECK(used <= n);
        /* The buffer never exceeds the limit, and grows only with bytes received. */
        if (r.have > peak)
            peak = r.have;
        S_CHECK(r.cap <= r.max_frame);
        S_CHECK(r.cap <= 4096 || r.cap <= 2 * peak);
        off += used;
        if (rc < 0) {
            S_CHECK(rc == -EMSGSIZE);
            /* Sticky. */
            S_CHECK(dy_wire_reader_feed(&r, data, size, &used, &fb, &flen) == rc);
            break;
        }
        if (rc == 0) {
            S_CHECK(used == n);
            continue;
        }
        S_CHECK(rc == 1 && flen <= max_frame);
        Halo__Wire__V1__Frame *f = NULL;
        const char *why = NULL;
        rc = dy_wire_frame_decode(fb, flen, max_frame, &f, &why);
        if (rc < 0) {
            S_CHECK(f == NULL && why != NULL);
            S_CHECK(rc == -EPROTO || rc == -EINVAL || rc == -EMSGSIZE);
            S_CHECK(dy_wire_status_from_errno(rc) != DY_WIRE_STATUS_OK);
            continue;
        }
        S_CHECK(f->version == DY_WIRE_VERSION);
        if (f->kind == HALO__WIRE__V1__KIND__CALL_START)
            S_CHECK(dy_wire_method_check(f->method) == 0 &&
                    strlen(f->request_id) <= DY_WIRE_REQUEST_ID_MAX);
        if (f->kind == HALO__WIRE__V1__KIND__STATUS)
            S_CHECK(dy_wire_status_name(f->status->code) != NULL);
        s_roundtrip(f, max_frame);
        if (f->kind == HALO__WIRE__V1__KIND__MESSAGE)
            s_upload_message(f, &credit, &rx);
        dy_wire_frame_free(&f);
    }
    dy_wire_upload_rx_free(&rx);
    dy_wire_reader_free(&r);
    S_CHECK(r.cap == 0 && r.buf == NULL);
    return 0;
}
