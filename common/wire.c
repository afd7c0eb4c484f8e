/* wire.c - frame codec, envelope validation, credit and upload accounting (see wire.h).
 *
 * Everything here works on buffers; the transport owns sockets, TLS, timers and the call
 * state machine.  The reader is the first code to touch a peer's bytes, so it trusts nothing:
 * a length prefix is checked against max_frame before any allocation, the buffer only grows
 * with bytes actually received, and errors are sticky so a confused caller cannot resume a
 * stream whose framing is lost.
 */
#include "wire.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* A reader keeps a buffer up to this size between frames; a larger one (left by a big frame)
 * is released when a small frame follows, so idle connections hold little memory. */
#define S_READER_KEEP ((size_t)64 << 10)
/* First allocation of the reader buffer. */
#define S_READER_MIN_ALLOC ((size_t)4 << 10)

/* ---- status codes ------------------------------------------------------------------------ */

static const char *const s_status_names[_DY_WIRE_STATUS_MAX] = {
    [DY_WIRE_STATUS_OK] = "OK",
    [DY_WIRE_STATUS_CANCELLED] = "CANCELLED",
    [DY_WIRE_STATUS_UNKNOWN] = "UNKNOWN",
    [DY_WIRE_STATUS_INVALID_ARGUMENT] = "INVALID_ARGUMENT",
    [DY_WIRE_STATUS_DEADLINE_EXCEEDED] = "DEADLINE_EXCEEDED",
    [DY_WIRE_STATUS_NOT_FOUND] = "NOT_FOUND",
    [DY_WIRE_STATUS_ALREADY_EXISTS] = "ALREADY_EXISTS",
    [DY_WIRE_STATUS_PERMISSION_DENIED] = "PERMISSION_DENIED",
    [DY_WIRE_STATUS_RESOURCE_EXHAUSTED] = "RESOURCE_EXHAUSTED",
    [DY_WIRE_STATUS_FAILED_PRECONDITION] = "FAILED_PRECONDITION",
    [DY_WIRE_STATUS_ABORTED] = "ABORTED",
    [DY_WIRE_STATUS_OUT_OF_RANGE] = "OUT_OF_RANGE",
    [DY_WIRE_STATUS_UNIMPLEMENTED] = "UNIMPLEMENTED",
    [DY_WIRE_STATUS_INTERNAL] = "INTERNAL",
    [DY_WIRE_STATUS_UNAVAILABLE] = "UNAVAILABLE",
    [DY_WIRE_STATUS_DATA_LOSS] = "DATA_LOSS",
    [DY_WIRE_STATUS_UNAUTHENTICATED] = "UNAUTHENTICATED",
};

const char *dy_wire_status_name(int code)
{
    if (code < 0 || code >= _DY_WIRE_STATUS_MAX)
        return NULL;
    return s_status_names[code];
}

int dy_wire_status_from_name(const char *name)
{
    if (name == NULL)
        return -EINVAL;
    for (int i = 0; i < _DY_WIRE_STATUS_MAX; i++)
        if (strcmp(name, s_status_names[i]) == 0)
            return i;
    return -EINVAL;
}

dy_wire_status_t dy_wire_status_from_errno(int rc)
{
    switch (rc) {
    case 0:
        return DY_WIRE_STATUS_OK;
    case -EINVAL:
    case -EPROTO:
    case -E2BIG:
    case -EOVERFLOW:
    case -EAGAIN:
        return DY_WIRE_STATUS_INVALID_ARGUMENT;
    case -EMSGSIZE:
    case -EFBIG:
    case -ENOMEM:
        return DY_WIRE_STATUS_RESOURCE_EXHAUSTED;
    case -EBADMSG:
        return DY_WIRE_STATUS_DATA_LOSS;
    case -ETIMEDOUT:
        return DY_WIRE_STATUS_DEADLINE_EXCEEDED;
    case -ECANCELED:
        return DY_WIRE_STATUS_CANCELLED;
    case -ECONNRESET:
    case -EPIPE:
    case -ENOTCONN:
        return DY_WIRE_STATUS_UNAVAILABLE;
    case -ENOSYS:
        return DY_WIRE_STATUS_UNIMPLEMENTED;
    default:
        return DY_WIRE_STATUS_INTERNAL;
    }
}

static const char *const s_reason_names[_DY_WIRE_REASON_MAX] = {
    [DY_WIRE_REASON_NONE] = "",
    [DY_WIRE_REASON_STAGE_NOT_READY] = "STAGE_NOT_READY",
    [DY_WIRE_REASON_COMPUTATION_ENDED] = "COMPUTATION_ENDED",
    [DY_WIRE_REASON_INPUT_CONFLICT] = "INPUT_CONFLICT",
};

const char *dy_wire_reason_name(dy_wire_reason_t reason)
{
    if ((int)reason < 0 || reason >= _DY_WIRE_REASON_MAX)
        return NULL;
    return s_reason_names[reason];
}

int dy_wire_reason_parse(const char *s)
{
    if (s == NULL)
        return DY_WIRE_REASON_NONE;
    for (int i = 0; i < _DY_WIRE_REASON_MAX; i++)
        if (strcmp(s, s_reason_names[i]) == 0)
            return i;
    return -EINVAL;
}

/* ---- validation -------------------------------------------------------------------------- */

static bool s_ident_start(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_';
}

static bool s_ident_char(char c)
{
    return s_ident_start(c) || (c >= '0' && c <= '9');
}

/* Scans one identifier at *pp; advances past it.  False if none starts there. */
static bool s_scan_ident(const char **pp)
{
    const char *p = *pp;
    if (!s_ident_start(*p))
        return false;
    while (s_ident_char(*p))
        p++;
    *pp = p;
    return true;
}

int dy_wire_method_check(const char *method)
{
    if (method == NULL || strnlen(method, DY_WIRE_METHOD_MAX + 1) > DY_WIRE_METHOD_MAX)
        return -EINVAL;
    const char *p = method;
    if (*p++ != '/')
        return -EINVAL;
    /* package: ident ('.' ident)*, then '.' Service */
    int segments = 0;
    for (;;) {
        if (!s_scan_ident(&p))
            return -EINVAL;
        segments++;
        if (*p == '.') {
            p++;
            continue;
        }
        break;
    }
    if (segments < 2 || *p++ != '/')
        return -EINVAL;
    if (!s_scan_ident(&p) || *p != '\0')
        return -EINVAL;
    return 0;
}

int dy_wire_request_id_check(const char *id)
{
    if (id == NULL)
        return -EINVAL;
    size_t n = strnlen(id, DY_WIRE_REQUEST_ID_MAX + 1);
    if (n == 0 || n > DY_WIRE_REQUEST_ID_MAX)
        return -EINVAL;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)id[i] < 0x20 || (unsigned char)id[i] > 0x7e)
            return -EINVAL;
    return 0;
}

static int s_fail(const char **ret_why, const char *why, int rc)
{
    if (ret_why != NULL)
        *ret_why = why;
    return rc;
}

int dy_wire_frame_check(const Halo__Wire__V1__Frame *f, size_t max_message,
                        const char **ret_why)
{
    if (max_message == 0)
        max_message = DY_WIRE_MAX_FRAME_DEFAULT;
    if (f == NULL)
        return s_fail(ret_why, "no frame", -EINVAL);
    if (f->version != DY_WIRE_VERSION)
        return s_fail(ret_why, "bad version", -EINVAL);
    switch ((int)f->kind) {
    case HALO__WIRE__V1__KIND__CALL_START:
        if (dy_wire_method_check(f->method) < 0)
            return s_fail(ret_why, "bad method", -EINVAL);
        if (dy_wire_request_id_check(f->request_id) < 0)
            return s_fail(ret_why, "bad request id", -EINVAL);
        return 0;
    case HALO__WIRE__V1__KIND__MESSAGE:
        if (f->message.len > max_message)
            return s_fail(ret_why, "message too large", -EMSGSIZE);
        if (f->message.len > 0 && f->message.data == NULL)
            return s_fail(ret_why, "no message", -EINVAL);
        return 0;
    case HALO__WIRE__V1__KIND__STATUS:
        if (f->status == NULL)
            return s_fail(ret_why, "no status", -EINVAL);
        if (dy_wire_status_name(f->status->code) == NULL)
            return s_fail(ret_why, "bad status code", -EINVAL);
        if (dy_wire_reason_parse(f->status->reason) < 0)
            return s_fail(ret_why, "bad status reason", -EINVAL);
        return 0;
    case HALO__WIRE__V1__KIND__CREDIT:
        if (f->credit == 0)
            return s_fail(ret_why, "zero credit", -EINVAL);
        return 0;
    case HALO__WIRE__V1__KIND__HALF_CLOSE:
    case HALO__WIRE__V1__KIND__CANCEL:
    case HALO__WIRE__V1__KIND__PING:
        return 0;
    default:
        return s_fail(ret_why, "bad kind", -EINVAL);
    }
}

/* ---- decoding ---------------------------------------------------------------------------- */

int dy_wire_frame_decode(const uint8_t *data, size_t len, size_t max_message,
                         Halo__Wire__V1__Frame **ret_frame, const char **ret_why)
{
    if (data == NULL && len > 0)
        return s_fail(ret_why, "no data", -EINVAL);
    Halo__Wire__V1__Frame *f = halo__wire__v1__frame__unpack(NULL, len, data);
    if (f == NULL)
        return s_fail(ret_why, "undecodable frame", -EPROTO);
    int rc = dy_wire_frame_check(f, max_message, ret_why);
    if (rc < 0) {
        halo__wire__v1__frame__free_unpacked(f, NULL);
        return rc;
    }
    *ret_frame = f;
    return 0;
}

void dy_wire_frame_free(Halo__Wire__V1__Frame **frame_p)
{
    if (frame_p == NULL || *frame_p == NULL)
        return;
    halo__wire__v1__frame__free_unpacked(*frame_p, NULL);
    *frame_p = NULL;
}

/* ---- the incremental reader -------------------------------------------------------------- */

void dy_wire_reader_init(dy_wire_reader_t *r, size_t max_frame)
{
    memset(r, 0, sizeof(*r));
    r->max_frame = max_frame ? max_frame : DY_WIRE_MAX_FRAME_DEFAULT;
}

static void s_reader_release(dy_wire_reader_t *r)
{
    if (r->buf != NULL)
        OPENSSL_cleanse(r->buf, r->cap);
    free(r->buf);
    r->buf = NULL;
    r->cap = 0;
}

/* Makes room for at least want (<= r->need) body bytes, growing geometrically but never
 * beyond the announced frame length. */
static int s_reader_grow(dy_wire_reader_t *r, size_t want)
{
    if (want <= r->cap)
        return 0;
    size_t ncap = r->cap ? r->cap : S_READER_MIN_ALLOC;
    while (ncap < want)
        ncap = ncap > r->need / 2 ? r->need : ncap * 2;
    if (ncap > r->need)
        ncap = r->need;
    if (ncap < want)
        ncap = want;
    uint8_t *p = realloc(r->buf, ncap);
    if (p == NULL)
        return -ENOMEM;
    r->buf = p;
    r->cap = ncap;
    return 0;
}

int dy_wire_reader_feed(dy_wire_reader_t *r, const void *data, size_t len, size_t *ret_used,
                        const uint8_t **ret_frame, size_t *ret_frame_len)
{
    const uint8_t *in = data;
    size_t used = 0;

    *ret_used = 0;
    if (r->error < 0)
        return r->error;
    if (len > 0 && in == NULL)
        return -EINVAL;
    if (r->delivered) {
        r->delivered = false;
        r->prefix_len = 0;
        r->need = r->have = 0;
    }
    while (r->prefix_len < DY_WIRE_PREFIX_LEN) {
        if (used == len) {
            *ret_used = used;
            return 0;
        }
        r->prefix[r->prefix_len++] = in[used++];
        if (r->prefix_len == DY_WIRE_PREFIX_LEN) {
            uint32_t n = (uint32_t)r->prefix[0] << 24 | (uint32_t)r->prefix[1] << 16 |
                         (uint32_t)r->prefix[2] << 8 | (uint32_t)r->prefix[3];
            if ((uint64_t)n > (uint64_t)r->max_frame) {
                r->error = -EMSGSIZE;
                *ret_used = used;
                return r->error;
            }
            r->need = n;
            r->have = 0;
            if (r->cap > S_READER_KEEP && r->need <= S_READER_KEEP)
                s_reader_release(r);
        }
    }
    size_t take = len - used;
    if (take > r->need - r->have)
        take = r->need - r->have;
    if (take > 0) {
        int rc = s_reader_grow(r, r->have + take);
        if (rc < 0) {
            r->error = rc;
            *ret_used = used;
            return rc;
        }
        memcpy(r->buf + r->have, in + used, take);
        r->have += take;
        used += take;
    }
    *ret_used = used;
    if (r->have < r->need)
        return 0;
    r->delivered = true;
    *ret_frame = r->buf != NULL ? r->buf : (const uint8_t *)"";
    *ret_frame_len = r->need;
    return 1;
}

bool dy_wire_reader_at_boundary(const dy_wire_reader_t *r)
{
    return r->delivered || r->prefix_len == 0;
}

void dy_wire_reader_free(dy_wire_reader_t *r)
{
    if (r == NULL)
        return;
    size_t max_frame = r->max_frame;
    s_reader_release(r);
    dy_wire_reader_init(r, max_frame);
}

/* ---- encoding ---------------------------------------------------------------------------- */

void dy_wire_frame_init(Halo__Wire__V1__Frame *f, Halo__Wire__V1__Kind kind)
{
    halo__wire__v1__frame__init(f);
    f->version = DY_WIRE_VERSION;
    f->kind = kind;
}

int dy_wire_frame_encode(const Halo__Wire__V1__Frame *f, size_t max_frame, dy_buf_t *out)
{
    if (max_frame == 0)
        max_frame = DY_WIRE_MAX_FRAME_DEFAULT;
    int rc = dy_wire_frame_check(f, max_frame, NULL);
    if (rc < 0)
        return rc;
    size_t n = halo__wire__v1__frame__get_packed_size(f);
    if (n > max_frame || n > UINT32_MAX)
        return -EMSGSIZE;
    size_t old_len = out->len;
    uint8_t *p = dy_buf_extend(out, DY_WIRE_PREFIX_LEN + n);
    if (p == NULL)
        return -ENOMEM;
    p[0] = (uint8_t)(n >> 24);
    p[1] = (uint8_t)(n >> 16);
    p[2] = (uint8_t)(n >> 8);
    p[3] = (uint8_t)n;
    if (halo__wire__v1__frame__pack(f, p + DY_WIRE_PREFIX_LEN) != n) {
        out->len = old_len;
        return -EIO;
    }
    return 0;
}

int dy_wire_encode_call_start(dy_buf_t *out, const char *method, const char *request_id,
                              uint64_t deadline_unix_ms)
{
    Halo__Wire__V1__Frame f;
    dy_wire_frame_init(&f, HALO__WIRE__V1__KIND__CALL_START);
    f.method = (char *)(method ? method : "");
    f.request_id = (char *)(request_id ? request_id : "");
    f.deadline_unix_ms = deadline_unix_ms;
    return dy_wire_frame_encode(&f, 0, out);
}

int dy_wire_encode_message(dy_buf_t *out, const void *msg, size_t len)
{
    if (msg == NULL && len > 0)
        return -EINVAL;
    Halo__Wire__V1__Frame f;
    dy_wire_frame_init(&f, HALO__WIRE__V1__KIND__MESSAGE);
    f.message.data = (uint8_t *)msg;
    f.message.len = len;
    return dy_wire_frame_encode(&f, 0, out);
}

int dy_wire_encode_pb(dy_buf_t *out, const ProtobufCMessage *msg)
{
    if (msg == NULL)
        return -EINVAL;
    size_t n = protobuf_c_message_get_packed_size(msg);
    if (n > DY_WIRE_MAX_FRAME_DEFAULT)
        return -EMSGSIZE;
    uint8_t *tmp = malloc(n ? n : 1);
    if (tmp == NULL)
        return -ENOMEM;
    int rc = protobuf_c_message_pack(msg, tmp) == n ? dy_wire_encode_message(out, tmp, n) : -EIO;
    OPENSSL_cleanse(tmp, n ? n : 1);
    free(tmp);
    return rc;
}

int dy_wire_encode_status(dy_buf_t *out, dy_wire_status_t code, const char *message,
                          dy_wire_reason_t reason)
{
    const char *rs = dy_wire_reason_name(reason);
    if (rs == NULL)
        return -EINVAL;
    Halo__Wire__V1__Status st;
    halo__wire__v1__status__init(&st);
    st.code = (int32_t)code;
    st.message = (char *)(message ? message : "");
    st.reason = (char *)rs;
    Halo__Wire__V1__Frame f;
    dy_wire_frame_init(&f, HALO__WIRE__V1__KIND__STATUS);
    f.status = &st;
    return dy_wire_frame_encode(&f, 0, out);
}

int dy_wire_encode_credit(dy_buf_t *out, uint32_t credit)
{
    Halo__Wire__V1__Frame f;
    dy_wire_frame_init(&f, HALO__WIRE__V1__KIND__CREDIT);
    f.credit = credit;
    return dy_wire_frame_encode(&f, 0, out);
}

int dy_wire_encode_bare(dy_buf_t *out, Halo__Wire__V1__Kind kind)
{
    if (kind != HALO__WIRE__V1__KIND__HALF_CLOSE && kind != HALO__WIRE__V1__KIND__CANCEL &&
        kind != HALO__WIRE__V1__KIND__PING)
        return -EINVAL;
    Halo__Wire__V1__Frame f;
    dy_wire_frame_init(&f, kind);
    return dy_wire_frame_encode(&f, 0, out);
}

int dy_wire_request_id_new(char out[33])
{
    uint8_t raw[16];
    if (RAND_bytes(raw, sizeof(raw)) != 1)
        return -EIO;
    dy_hex(raw, sizeof(raw), out);
    return 0;
}

/* ---- credit ------------------------------------------------------------------------------ */

void dy_wire_credit_init(dy_wire_credit_t *c)
{
    c->header_done = false;
    c->available = 0;
}

int dy_wire_credit_grant(dy_wire_credit_t *c, uint32_t n)
{
    if (n == 0)
        return -EINVAL;
    if (!c->header_done)
        return -EPROTO;
    if (c->available + n > UINT32_MAX)
        return -EOVERFLOW;
    c->available += n;
    return 0;
}

/* One MESSAGE: the header is free, later ones cost a credit. */
static int s_credit_use(dy_wire_credit_t *c)
{
    if (!c->header_done) {
        c->header_done = true;
        return 0;
    }
    if (c->available == 0)
        return -EAGAIN;
    c->available--;
    return 0;
}

int dy_wire_credit_take(dy_wire_credit_t *c)
{
    return s_credit_use(c);
}

int dy_wire_credit_accept(dy_wire_credit_t *c)
{
    return s_credit_use(c);
}

/* ---- uploads ----------------------------------------------------------------------------- */

int dy_wire_sha256(const void *data, size_t len, uint8_t out[DY_WIRE_SHA256_LEN])
{
    unsigned int n = 0;
    if (EVP_Digest(len ? data : "", len, out, &n, EVP_sha256(), NULL) != 1 ||
        n != DY_WIRE_SHA256_LEN)
        return -EIO;
    return 0;
}

static int s_md_new(void **ret_md)
{
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    if (md == NULL)
        return -ENOMEM;
    if (EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1) {
        EVP_MD_CTX_free(md);
        return -EIO;
    }
    *ret_md = md;
    return 0;
}

static int s_md_final(void *md, uint8_t out[DY_WIRE_SHA256_LEN])
{
    unsigned int n = 0;
    if (EVP_DigestFinal_ex(md, out, &n) != 1 || n != DY_WIRE_SHA256_LEN)
        return -EIO;
    return 0;
}

int dy_wire_upload_rx_init(dy_wire_upload_rx_t *rx, size_t min_chunk, size_t max_chunk,
                           uint64_t max_total)
{
    memset(rx, 0, sizeof(*rx));
    rx->min_chunk = min_chunk ? min_chunk : DY_WIRE_CHUNK_MIN;
    rx->max_chunk = max_chunk ? max_chunk : DY_WIRE_CHUNK_MAX;
    rx->max_total = max_total;
    if (rx->min_chunk > rx->max_chunk)
        return -EINVAL;
    return s_md_new(&rx->md);
}

static int s_rx_fail(dy_wire_upload_rx_t *rx, int rc)
{
    if (rx->error == 0)
        rx->error = rc;
    return rc;
}

int dy_wire_upload_rx_chunk(dy_wire_upload_rx_t *rx, const void *data, size_t len)
{
    if (rx->verified)
        return s_rx_fail(rx, -EPROTO);
    if (rx->error < 0)
        return rx->error;
    if (rx->md == NULL)
        return s_rx_fail(rx, -EPROTO);
    if (len == 0 || data == NULL || rx->short_seen)
        return s_rx_fail(rx, -EINVAL);
    if (len > rx->max_chunk)
        return s_rx_fail(rx, -E2BIG);
    if (rx->max_total && (len > rx->max_total || rx->total > rx->max_total - len))
        return s_rx_fail(rx, -EFBIG);
    if (EVP_DigestUpdate(rx->md, data, len) != 1)
        return s_rx_fail(rx, -EIO);
    rx->total += len;
    rx->chunks++;
    if (len < rx->min_chunk)
        rx->short_seen = true;
    return 0;
}

int dy_wire_upload_rx_trailer(dy_wire_upload_rx_t *rx, const Halo__Wire__V1__Trailer *t)
{
    if (rx->verified || rx->error < 0 || rx->md == NULL)
        return s_rx_fail(rx, -EPROTO);
    if (t == NULL || t->sha256.len != DY_WIRE_SHA256_LEN || t->sha256.data == NULL)
        return s_rx_fail(rx, -EINVAL);
    uint8_t digest[DY_WIRE_SHA256_LEN];
    if (s_md_final(rx->md, digest) < 0)
        return s_rx_fail(rx, -EIO);
    if (t->total_length != rx->total || memcmp(digest, t->sha256.data, sizeof(digest)) != 0)
        return s_rx_fail(rx, -EBADMSG);
    memcpy(rx->sha256, digest, sizeof(digest));
    rx->verified = true;
    return 0;
}

bool dy_wire_upload_rx_verified(const dy_wire_upload_rx_t *rx)
{
    return rx->verified && rx->error == 0;
}

void dy_wire_upload_rx_free(dy_wire_upload_rx_t *rx)
{
    if (rx == NULL)
        return;
    EVP_MD_CTX_free(rx->md);
    rx->md = NULL;
}

uint64_t dy_wire_upload_chunk_count(uint64_t total, size_t chunk_size)
{
    if (chunk_size == 0)
        return 0;
    return total / chunk_size + (total % chunk_size != 0);
}

int dy_wire_upload_tx_init(dy_wire_upload_tx_t *tx, size_t chunk_size)
{
    memset(tx, 0, sizeof(*tx));
    if (chunk_size == 0)
        chunk_size = DY_WIRE_CHUNK_DEFAULT;
    if (chunk_size < DY_WIRE_CHUNK_MIN || chunk_size > DY_WIRE_CHUNK_MAX)
        return -EINVAL;
    tx->chunk_size = chunk_size;
    return s_md_new(&tx->md);
}

int dy_wire_upload_tx_next_buf(dy_wire_upload_tx_t *tx, const void *buf, size_t len,
                               const uint8_t **ret_chunk, size_t *ret_len)
{
    if (tx->finished || tx->md == NULL)
        return -EPROTO;
    if (tx->total > len)
        return -EINVAL;
    size_t n = len - (size_t)tx->total;
    if (n == 0)
        return 0;
    if (n > tx->chunk_size)
        n = tx->chunk_size;
    const uint8_t *p = (const uint8_t *)buf + tx->total;
    if (EVP_DigestUpdate(tx->md, p, n) != 1)
        return -EIO;
    tx->total += n;
    tx->chunks++;
    *ret_chunk = p;
    *ret_len = n;
    return 1;
}

int dy_wire_upload_tx_next_fd(dy_wire_upload_tx_t *tx, int fd, dy_buf_t *chunk)
{
    if (tx->finished || tx->md == NULL)
        return -EPROTO;
    chunk->len = 0;
    if (dy_buf_reserve(chunk, tx->chunk_size) < 0)
        return -ENOMEM;
    size_t got = 0;
    while (got < tx->chunk_size) {
        ssize_t r = read(fd, chunk->data + got, tx->chunk_size - got);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            int err = errno;
            return err ? -err : -EIO;
        }
        if (r == 0)
            break;
        got += (size_t)r;
    }
    if (got == 0)
        return 0;
    if (EVP_DigestUpdate(tx->md, chunk->data, got) != 1)
        return -EIO;
    chunk->len = got;
    tx->total += got;
    tx->chunks++;
    return 1;
}

int dy_wire_upload_tx_trailer(dy_wire_upload_tx_t *tx, uint8_t ret_sha256[DY_WIRE_SHA256_LEN],
                              uint64_t *ret_total)
{
    if (tx->finished || tx->md == NULL)
        return -EPROTO;
    uint8_t digest[DY_WIRE_SHA256_LEN];
    if (s_md_final(tx->md, digest) < 0)
        return -EIO;
    tx->finished = true;
    memcpy(ret_sha256, digest, sizeof(digest));
    *ret_total = tx->total;
    return 0;
}

void dy_wire_upload_tx_free(dy_wire_upload_tx_t *tx)
{
    if (tx == NULL)
        return;
    EVP_MD_CTX_free(tx->md);
    tx->md = NULL;
}
