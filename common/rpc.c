/* rpc.c - calls over the framed mutual-TLS transport (rpc.h, PROTOCOL.md §2): a blocking,
 * poll()-based client and a single-threaded non-blocking poll(2) reactor server.
 *
 * Client.  After the handshake the socket is non-blocking; every read and write waits with
 * poll() for at most the time left before the call's deadline.  Bytes read from TLS go
 * through a dy_wire_reader (which refuses oversized prefixes before allocating); frames
 * are decoded and checked by wire.c.  Upload chunks and the trailer are encoded here by
 * hand (field 2 {bytes 1}, field 15 {bytes 1; uint64 2}) and a chunk's bytes are written
 * straight from the caller's buffer, never copied into a protobuf-c structure.  When the
 * local deadline passes, the client sends CANCEL and waits briefly for the STATUS so the
 * connection stays usable; a transport failure makes the client unusable.
 *
 * Server.  One poll set holds the listening socket, every connection and the extra
 * watched descriptors.  Per connection: a non-blocking accept and TLS handshake (with a
 * timeout), the peer's party id (dy_tls_peer_identity), a frame reader, an output buffer
 * written with non-blocking SSL_write (partial writes, moving buffer; WANT_READ and
 * WANT_WRITE respected), and at most one call.  The state of a connection is
 * HANDSHAKE -> OPEN -> CLOSING (flush the final STATUS, discard input) -> DEAD (freed at
 * the end of the step).
 *
 * Call lifetime.  A call is created at CALL_START and belongs to its connection until it
 * ends: the handler finishes it (completed = true), or the server ends it (error STATUS,
 * CANCEL, deadline, idle timeout, connection lost; completed = false).  Ending detaches
 * the call from its connection (later frames of that call are dropped) and puts it on the
 * server's closing list; at a safe point of the loop (never inside a handler callback)
 * on_close runs once - only if the handler ever saw the call - and the call is freed.  So
 * a handler may use the call after finishing it within the same callback, a second finish
 * returns -EALREADY, and a handler that answers later (from a watch callback or on_tick)
 * must drop its pointer in on_close.
 *
 * Flow control.  Upload credit is granted after the handler accepts the header
 * (upload_credit MESSAGE frames), and topped up to upload_credit whenever at most half is
 * left, after each chunk is consumed.  A connection whose output buffer is above a
 * high-water mark (4 frames) is not read until it drains, and dy_rpc_call_send refuses
 * with -ENOBUFS above it, so a peer that does not read cannot make the server buffer
 * without bound.
 *
 * Rate limits.  One pair of token buckets per peer identity (shared by all its
 * connections): a call costs one call token at CALL_START (refused: RESOURCE_EXHAUSTED
 * for that call only, the connection stays); request bytes (every MESSAGE of a call)
 * draw on the byte bucket, which may go into debt by one message (a message is allowed
 * while the bucket is positive), so a 4 MiB chunk passes a smaller burst.
 *
 * SIGPIPE.  SSL_write on a socket the peer reset raises SIGPIPE; dy_rpc_client_new and
 * dy_rpc_server_new set SIGPIPE to SIG_IGN if it is SIG_DFL (a process-wide change that a
 * program with its own SIGPIPE handler keeps).
 *
 * Nothing here logs; failures reach callers as statuses and negative errnos.
 */
#include "rpc.h"

#include "tls.h"

#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>

#define S_UNARY_TIMEOUT_MS 30000 /* PROTOCOL.md §2 defaults */
#define S_UPLOAD_TIMEOUT_MS 600000
#define S_STREAM_TIMEOUT_MS 660000
#define S_STREAM_IDLE_MS 60000
#define S_CONNECT_TIMEOUT_MS 10000
#define S_CANCEL_DRAIN_MS 2000          /* client: wait for the STATUS after a CANCEL */
#define S_SALVAGE_MS 200                /* client: look for a STATUS after a failed write */
#define S_IO_CHUNK 16384                /* plaintext read per SSL_read */
#define S_READ_BUDGET ((size_t)1 << 20) /* server: bytes read per connection per step */
#define S_WRITE_MAX ((size_t)1 << 20)   /* largest single SSL_write */
#define S_OUT_KEEP ((size_t)256 << 10)  /* output buffer kept between bursts */
#define S_LINGER_MS 1000                /* server: time to flush a final STATUS */
#define S_ACCEPT_BURST 32               /* connections accepted per step */

/* ---- shared helpers ---------------------------------------------------------------------- */

static int64_t s_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static uint64_t s_unix_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Milliseconds from now until deadline, clamped to 0..INT_MAX. */
static int s_left_ms(int64_t deadline, int64_t now)
{
    int64_t left = deadline - now;
    return left <= 0 ? 0 : left > INT_MAX ? INT_MAX : (int)left;
}

/* SSL_write on a reset socket raises SIGPIPE: ignore it unless the program chose a
 * handler itself. */
static void s_sigpipe_ignore(void)
{
    struct sigaction sa;
    if (sigaction(SIGPIPE, NULL, &sa) == 0 && !(sa.sa_flags & SA_SIGINFO) &&
        sa.sa_handler == SIG_DFL)
        (void)signal(SIGPIPE, SIG_IGN);
}

static int s_set_nonblock(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
        return -errno;
    return 0;
}

static size_t s_varint_len(uint64_t v)
{
    size_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

static size_t s_varint_put(uint8_t *p, uint64_t v)
{
    size_t n = 0;
    while (v >= 0x80) {
        p[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    p[n++] = (uint8_t)v;
    return n;
}

static int s_varint_get(const uint8_t **pp, const uint8_t *end, uint64_t *ret)
{
    const uint8_t *p = *pp;
    uint64_t v = 0;
    for (unsigned shift = 0; shift < 64; shift += 7) {
        if (p == end)
            return -EPROTO;
        uint8_t b = *p++;
        v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *pp = p;
            *ret = v;
            return 0;
        }
    }
    return -EPROTO;
}

/* One field of a serialized protobuf message. */
typedef struct {
    uint32_t num;        /* field number */
    unsigned wt;         /* wire type */
    const uint8_t *data; /* wire type 2: the bytes (borrowed from the message) */
    size_t len;          /* wire type 2: their length */
} s_pbfield_t;

/* Reads the field at *pp (advancing past it).  1: a field; 0: end of message; -EPROTO:
 * malformed (truncated, bad wire type, field number 0). */
static int s_pb_next(const uint8_t **pp, const uint8_t *end, s_pbfield_t *f)
{
    if (*pp == end)
        return 0;
    uint64_t key, v;
    if (s_varint_get(pp, end, &key) < 0 || (key >> 3) == 0 || (key >> 3) > 0x1fffffff)
        return -EPROTO;
    f->num = (uint32_t)(key >> 3);
    f->wt = (unsigned)(key & 7);
    f->data = NULL;
    f->len = 0;
    switch (f->wt) {
    case 0:
        return s_varint_get(pp, end, &v) < 0 ? -EPROTO : 1;
    case 1:
    case 5: {
        size_t n = f->wt == 1 ? 8 : 4;
        if ((size_t)(end - *pp) < n)
            return -EPROTO;
        *pp += n;
        return 1;
    }
    case 2:
        if (s_varint_get(pp, end, &v) < 0 || v > (uint64_t)(end - *pp))
            return -EPROTO;
        f->data = *pp;
        f->len = (size_t)v;
        *pp += v;
        return 1;
    default:
        return -EPROTO;
    }
}

/* The upload request shape (rpc.h): field 1 header, 2 body_chunk {bytes 1}, 15 trailer. */
enum { S_UP_HEADER = 1, S_UP_CHUNK = 2, S_UP_TRAILER = 15 };

/* True if msg is a header message: field 1 (a message) and neither 2 nor 15. */
static bool s_upload_is_header(const uint8_t *msg, size_t len)
{
    const uint8_t *p = msg, *end = msg + len;
    s_pbfield_t f;
    bool header = false;
    int rc;
    while ((rc = s_pb_next(&p, end, &f)) == 1) {
        if (f.num == S_UP_HEADER)
            header = f.wt == 2;
        else if (f.num == S_UP_CHUNK || f.num == S_UP_TRAILER)
            return false;
    }
    return rc == 0 && header;
}

/* Parses a later upload message: exactly one of body_chunk (*ret_kind = S_UP_CHUNK,
 * *ret_p and *ret_n = partial_data) or trailer (S_UP_TRAILER, the Trailer's bytes).  Unknown
 * fields are skipped.  0 or -EPROTO (malformed, a header, or not exactly one payload). */
static int s_upload_parse(const uint8_t *msg, size_t len, int *ret_kind, const uint8_t **ret_p,
                          size_t *ret_n)
{
    const uint8_t *p = msg, *end = msg + len;
    s_pbfield_t f;
    int rc, payloads = 0, kind = 0;
    const uint8_t *inner = NULL;
    size_t inner_len = 0;
    while ((rc = s_pb_next(&p, end, &f)) == 1) {
        if (f.num != S_UP_HEADER && f.num != S_UP_CHUNK && f.num != S_UP_TRAILER)
            continue;
        if (f.num == S_UP_HEADER || f.wt != 2)
            return -EPROTO;
        payloads++;
        kind = (int)f.num;
        inner = f.data;
        inner_len = f.len;
    }
    if (rc < 0 || payloads != 1)
        return -EPROTO;
    *ret_kind = kind;
    if (kind == S_UP_TRAILER) {
        *ret_p = inner;
        *ret_n = inner_len;
        return 0;
    }
    /* BodyChunk { bytes partial_data = 1; }: the last occurrence wins, as in protobuf. */
    const uint8_t *data = NULL;
    size_t n = 0;
    p = inner;
    end = inner + inner_len;
    while ((rc = s_pb_next(&p, end, &f)) == 1) {
        if (f.num != 1)
            continue;
        if (f.wt != 2)
            return -EPROTO;
        data = f.data;
        n = f.len;
    }
    if (rc < 0)
        return -EPROTO;
    *ret_p = data;
    *ret_n = n;
    return 0;
}

static void DY_PRINTF(4, 5)
    s_st_set(dy_rpc_status_t *st, int code, dy_wire_reason_t reason, const char *fmt, ...)
{
    if (st == NULL)
        return;
    st->code = code;
    st->reason = reason;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(st->message, sizeof(st->message), fmt, ap);
    va_end(ap);
}

/* ---- client ------------------------------------------------------------------------------ */

struct dy_rpc_client {
    SSL *ssl;                   /* owned; non-blocking socket after the handshake */
    int fd;                     /* the socket, owned through ssl */
    dy_wire_reader_t rd;        /* frames from the server */
    uint8_t in[S_IO_CHUNK];     /* plaintext read but not yet fed to rd */
    size_t in_off, in_len;      /* unfed bytes are in[in_off..in_len) */
    dy_buf_t out;               /* owned scratch for encoding frames */
    bool broken;                /* a transport failure happened: unusable */
    bool stream_open;           /* a server-stream call awaits its STATUS */
    int64_t stream_deadline;    /* that call's deadline, monotonic ms */
    char err[160];              /* the last transport failure, for status messages */
    char peer[DY_PARTY_ID_MAX]; /* the server's party id */
};

dy_rpc_client_t *dy_rpc_client_new(const dy_rpc_client_conf_t *conf, char *errbuf, size_t errlen)
{
    char dummy[8];
    if (errbuf == NULL || errlen == 0) {
        errbuf = dummy;
        errlen = sizeof(dummy);
    }
    if (conf == NULL || conf->ctx == NULL || conf->host == NULL || conf->port <= 0 ||
        conf->port > 65535) {
        snprintf(errbuf, errlen, "bad client configuration");
        return NULL;
    }
    s_sigpipe_ignore();
    dy_rpc_client_t *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        snprintf(errbuf, errlen, "out of memory");
        return NULL;
    }
    int timeout = conf->connect_timeout_ms > 0 ? conf->connect_timeout_ms : S_CONNECT_TIMEOUT_MS;
    c->ssl = dy_tls_connect(conf->ctx, conf->host, (uint16_t)conf->port, timeout, errbuf, errlen);
    if (c->ssl == NULL) {
        free(c);
        return NULL;
    }
    c->fd = SSL_get_fd(c->ssl);
    int rc = dy_tls_peer_identity(c->ssl, c->peer, sizeof(c->peer));
    if (rc < 0) {
        snprintf(errbuf, errlen, "server identity: %s", strerror(-rc));
        dy_rpc_client_destroy(&c);
        return NULL;
    }
    rc = s_set_nonblock(c->fd);
    if (rc < 0) {
        snprintf(errbuf, errlen, "fcntl: %s", strerror(-rc));
        dy_rpc_client_destroy(&c);
        return NULL;
    }
    SSL_set_mode(c->ssl, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    dy_wire_reader_init(&c->rd, conf->max_frame);
    return c;
}

void dy_rpc_client_destroy(dy_rpc_client_t **self_p)
{
    if (self_p == NULL || *self_p == NULL)
        return;
    dy_rpc_client_t *c = *self_p;
    dy_tls_close(&c->ssl);
    dy_wire_reader_free(&c->rd);
    dy_buf_free(&c->out);
    free(c);
    *self_p = NULL;
}

const char *dy_rpc_client_peer(const dy_rpc_client_t *self)
{
    return self ? self->peer : NULL;
}

/* A deadline timeout_ms from now (<= 0: dflt). */
static int64_t s_deadline(int timeout_ms, int dflt)
{
    return s_mono_ms() + (timeout_ms > 0 ? timeout_ms : dflt);
}

/* The same deadline as Unix milliseconds for CALL_START. */
static uint64_t s_deadline_unix(int64_t deadline)
{
    return s_unix_ms() + (uint64_t)s_left_ms(deadline, s_mono_ms());
}

/* Records an SSL failure of ret in c->err; always -ECONNRESET (the transport is gone). */
static int s_cli_ssl_fail(dy_rpc_client_t *c, int ret)
{
    (void)dy_tls_describe_error(c->ssl, ret, c->err, sizeof(c->err));
    return -ECONNRESET;
}

/* Waits for events on the socket until deadline.  0 or -ETIMEDOUT / -errno. */
static int s_cli_wait(dy_rpc_client_t *c, short events, int64_t deadline)
{
    for (;;) {
        int left = s_left_ms(deadline, s_mono_ms());
        if (left == 0)
            return -ETIMEDOUT;
        struct pollfd pfd = {.fd = c->fd, .events = events};
        int n = poll(&pfd, 1, left);
        if (n > 0)
            return 0;
        if (n < 0 && errno != EINTR) {
            snprintf(c->err, sizeof(c->err), "poll: %s", strerror(errno));
            return -errno;
        }
    }
}

/* Writes all n bytes before the deadline.  0, -ETIMEDOUT or -ECONNRESET. */
static int s_cli_write(dy_rpc_client_t *c, const void *data, size_t n, int64_t deadline)
{
    const uint8_t *p = data;
    while (n > 0) {
        ERR_clear_error();
        int w = SSL_write(c->ssl, p, (int)(n > S_WRITE_MAX ? S_WRITE_MAX : n));
        if (w > 0) {
            p += w;
            n -= (size_t)w;
            continue;
        }
        int se = SSL_get_error(c->ssl, w);
        if (se == SSL_ERROR_WANT_WRITE || se == SSL_ERROR_WANT_READ) {
            int rc = s_cli_wait(c, se == SSL_ERROR_WANT_WRITE ? POLLOUT : POLLIN, deadline);
            if (rc < 0)
                return rc;
            continue;
        }
        return s_cli_ssl_fail(c, w);
    }
    return 0;
}

/* Writes and empties c->out. */
static int s_cli_flush(dy_rpc_client_t *c, int64_t deadline)
{
    int rc = s_cli_write(c, c->out.data, c->out.len, deadline);
    c->out.len = 0;
    return rc;
}

/* Reads the next frame.  0 with *ret_frame (caller frees); -EAGAIN (try_only and no whole
 * frame yet: partial bytes stay in the reader); -ETIMEDOUT; -ECONNRESET; -EPROTO (the
 * server broke the framing or sent an invalid frame). */
static int s_cli_read_frame(dy_rpc_client_t *c, int64_t deadline, bool try_only,
                            Halo__Wire__V1__Frame **ret_frame)
{
    for (;;) {
        if (c->in_off < c->in_len) {
            size_t used = 0, flen = 0;
            const uint8_t *fb = NULL;
            int rc = dy_wire_reader_feed(&c->rd, c->in + c->in_off, c->in_len - c->in_off, &used,
                                         &fb, &flen);
            c->in_off += used;
            if (rc < 0) {
                snprintf(c->err, sizeof(c->err), "server frame refused: %s", strerror(-rc));
                return -EPROTO;
            }
            if (rc == 1) {
                const char *why = "";
                rc = dy_wire_frame_decode(fb, flen, c->rd.max_frame, ret_frame, &why);
                if (rc < 0) {
                    snprintf(c->err, sizeof(c->err), "bad frame from the server: %s", why);
                    return -EPROTO;
                }
                return 0;
            }
            continue;
        }
        c->in_off = c->in_len = 0;
        ERR_clear_error();
        int n = SSL_read(c->ssl, c->in, (int)sizeof(c->in));
        if (n > 0) {
            c->in_len = (size_t)n;
            continue;
        }
        int se = SSL_get_error(c->ssl, n);
        if (se == SSL_ERROR_WANT_READ || se == SSL_ERROR_WANT_WRITE) {
            if (try_only)
                return -EAGAIN;
            int rc = s_cli_wait(c, se == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, deadline);
            if (rc < 0)
                return rc;
            continue;
        }
        return s_cli_ssl_fail(c, n);
    }
}

/* What one server frame means to the call in progress.  0: keep going; 1: STATUS (st
 * filled, the call is over); -EPROTO: a frame the call cannot have.  A MESSAGE is unpacked
 * into *resp (resp_desc NULL: ignored; a second one is a violation when !multi).  CREDIT
 * is added to credit (NULL: a violation). */
static int s_cli_on_frame(dy_rpc_client_t *c, const Halo__Wire__V1__Frame *f,
                          const ProtobufCMessageDescriptor *resp_desc, ProtobufCMessage **resp,
                          dy_wire_credit_t *credit, dy_rpc_status_t *st)
{
    switch (f->kind) {
    case HALO__WIRE__V1__KIND__PING:
        return 0;
    case HALO__WIRE__V1__KIND__MESSAGE:
        if (resp_desc == NULL || resp == NULL)
            return 0;
        if (*resp != NULL) {
            snprintf(c->err, sizeof(c->err), "more than one response");
            return -EPROTO;
        }
        *resp = protobuf_c_message_unpack(resp_desc, NULL, f->message.len, f->message.data);
        if (*resp == NULL) {
            snprintf(c->err, sizeof(c->err), "undecodable %s", resp_desc->name);
            return -EPROTO;
        }
        return 0;
    case HALO__WIRE__V1__KIND__CREDIT:
        if (credit == NULL || dy_wire_credit_grant(credit, f->credit) < 0) {
            snprintf(c->err, sizeof(c->err), "unexpected CREDIT");
            return -EPROTO;
        }
        return 0;
    case HALO__WIRE__V1__KIND__STATUS: {
        int reason = dy_wire_reason_parse(f->status->reason);
        s_st_set(st, f->status->code, reason < 0 ? DY_WIRE_REASON_NONE : (dy_wire_reason_t)reason,
                 "%s", f->status->message ? f->status->message : "");
        return 1;
    }
    default:
        snprintf(c->err, sizeof(c->err), "unexpected frame kind %d from the server", (int)f->kind);
        return -EPROTO;
    }
}

/* Reads frames until STATUS (1, st filled) or a failure (negative). */
static int s_cli_await(dy_rpc_client_t *c, int64_t deadline,
                       const ProtobufCMessageDescriptor *resp_desc, ProtobufCMessage **resp,
                       dy_wire_credit_t *credit, dy_rpc_status_t *st)
{
    for (;;) {
        Halo__Wire__V1__Frame *f = NULL;
        int rc = s_cli_read_frame(c, deadline, false, &f);
        if (rc < 0)
            return rc;
        rc = s_cli_on_frame(c, f, resp_desc, resp, credit, st);
        dy_wire_frame_free(&f);
        if (rc != 0)
            return rc;
    }
}

/* Sends CANCEL for the call in progress and waits (briefly) for its STATUS, discarding
 * responses.  0: the connection is in step again; else it is marked broken. */
static int s_cli_abandon(dy_rpc_client_t *c)
{
    int64_t deadline = s_mono_ms() + S_CANCEL_DRAIN_MS;
    dy_rpc_status_t ignored;
    dy_wire_credit_t credit;
    dy_wire_credit_init(&credit);
    credit.header_done = true;
    c->out.len = 0;
    int rc = dy_wire_encode_bare(&c->out, HALO__WIRE__V1__KIND__CANCEL);
    if (rc == 0)
        rc = s_cli_flush(c, deadline);
    if (rc == 0)
        rc = s_cli_await(c, deadline, NULL, NULL, &credit, &ignored);
    if (rc < 0) {
        c->broken = true;
        return rc;
    }
    return 0;
}

/* Turns a transport-level failure of a call into st; marks the client broken unless the
 * call was abandoned cleanly after a timeout. */
static void s_cli_fail(dy_rpc_client_t *c, int rc, dy_rpc_status_t *st)
{
    switch (rc) {
    case -ETIMEDOUT:
        s_st_set(st, DY_WIRE_STATUS_DEADLINE_EXCEEDED, DY_WIRE_REASON_NONE, "deadline exceeded");
        if (!c->broken)
            (void)s_cli_abandon(c);
        break;
    case -EPROTO:
        c->broken = true;
        s_st_set(st, DY_WIRE_STATUS_INTERNAL, DY_WIRE_REASON_NONE, "protocol violation: %s",
                 c->err);
        break;
    default:
        c->broken = true;
        s_st_set(st, DY_WIRE_STATUS_UNAVAILABLE, DY_WIRE_REASON_NONE, "connection lost: %s",
                 c->err[0] ? c->err : strerror(-rc));
        break;
    }
}

/* After a failed write: the server may have ended the call (and closed) with a STATUS that
 * explains why; report it if it is there.  The client is broken either way. */
static void s_cli_write_failed(dy_rpc_client_t *c, int rc, dy_rpc_status_t *st)
{
    if (rc == -ETIMEDOUT) {
        s_cli_fail(c, rc, st);
        return;
    }
    c->broken = true;
    int64_t deadline = s_mono_ms() + S_SALVAGE_MS;
    for (;;) {
        Halo__Wire__V1__Frame *f = NULL;
        if (s_cli_read_frame(c, deadline, false, &f) < 0)
            break;
        bool status = f->kind == HALO__WIRE__V1__KIND__STATUS;
        if (status)
            (void)s_cli_on_frame(c, f, NULL, NULL, NULL, st);
        dy_wire_frame_free(&f);
        if (status)
            return;
    }
    s_cli_fail(c, rc, st);
}

/* Common checks at the start of a call; false with st filled if the call cannot start. */
static bool s_cli_ready(dy_rpc_client_t *c, const char *method, dy_rpc_status_t *st)
{
    if (c == NULL || method == NULL || dy_wire_method_check(method) < 0) {
        s_st_set(st, DY_WIRE_STATUS_INVALID_ARGUMENT, DY_WIRE_REASON_NONE, "bad call arguments");
        return false;
    }
    if (c->broken) {
        s_st_set(st, DY_WIRE_STATUS_UNAVAILABLE, DY_WIRE_REASON_NONE, "connection unusable: %s",
                 c->err[0] ? c->err : "earlier failure");
        return false;
    }
    if (c->stream_open) {
        s_st_set(st, DY_WIRE_STATUS_INTERNAL, DY_WIRE_REASON_NONE, "a stream is still open");
        return false;
    }
    c->err[0] = '\0';
    return true;
}

/* Queues CALL_START (and, when req is set, the request MESSAGE and optionally HALF_CLOSE)
 * in c->out.  0 or a negative errno (INVALID_ARGUMENT-worthy: nothing was sent). */
static int s_cli_encode_start(dy_rpc_client_t *c, const char *method, const ProtobufCMessage *req,
                              bool half_close, int64_t deadline)
{
    char rid[33];
    c->out.len = 0;
    int rc = dy_wire_request_id_new(rid);
    if (rc == 0)
        rc = dy_wire_encode_call_start(&c->out, method, rid, s_deadline_unix(deadline));
    if (rc == 0 && req != NULL)
        rc = dy_wire_encode_pb(&c->out, req);
    if (rc == 0 && half_close)
        rc = dy_wire_encode_bare(&c->out, HALO__WIRE__V1__KIND__HALF_CLOSE);
    if (rc < 0)
        c->out.len = 0;
    return rc;
}

/* The end of a unary or upload call: 0 on OK with the response handed over, else -1. */
static int s_cli_result(int rc, ProtobufCMessage *resp, const ProtobufCMessageDescriptor *resp_desc,
                        ProtobufCMessage **ret_resp, dy_rpc_status_t *st)
{
    if (rc >= 0 && st->code == DY_WIRE_STATUS_OK) {
        if (resp_desc != NULL && resp == NULL) {
            s_st_set(st, DY_WIRE_STATUS_INTERNAL, DY_WIRE_REASON_NONE, "OK without a response");
            return -1;
        }
        if (ret_resp != NULL)
            *ret_resp = resp;
        else if (resp != NULL)
            protobuf_c_message_free_unpacked(resp, NULL);
        return 0;
    }
    if (resp != NULL)
        protobuf_c_message_free_unpacked(resp, NULL);
    return -1;
}

/* The start of a call that sends one request (unary, server stream): st reset, the client
 * ready, req encoded and flushed by the call's deadline (timeout_ms, or dflt_ms when not
 * positive; returned in *ret_deadline).  0, or -1 with st filled (a write failure also fails
 * the connection). */
static int s_cli_send_request(dy_rpc_client_t *self, const char *method,
                              const ProtobufCMessage *req, int timeout_ms, int dflt_ms,
                              int64_t *ret_deadline, dy_rpc_status_t *st)
{
    s_st_set(st, DY_WIRE_STATUS_OK, DY_WIRE_REASON_NONE, "%s", "");
    if (!s_cli_ready(self, method, st))
        return -1;
    if (req == NULL) {
        s_st_set(st, DY_WIRE_STATUS_INVALID_ARGUMENT, DY_WIRE_REASON_NONE, "no request");
        return -1;
    }
    int64_t deadline = s_deadline(timeout_ms, dflt_ms);
    *ret_deadline = deadline;
    int rc = s_cli_encode_start(self, method, req, true, deadline);
    if (rc < 0) {
        s_st_set(st, dy_wire_status_from_errno(rc), DY_WIRE_REASON_NONE,
                 "cannot encode the request: %s", strerror(-rc));
        return -1;
    }
    rc = s_cli_flush(self, deadline);
    if (rc < 0) {
        s_cli_write_failed(self, rc, st);
        return -1;
    }
    return 0;
}

int dy_rpc_unary(dy_rpc_client_t *self, const char *method, const ProtobufCMessage *req,
                 const ProtobufCMessageDescriptor *resp_desc, ProtobufCMessage **ret_resp,
                 int timeout_ms, dy_rpc_status_t *st)
{
    dy_rpc_status_t scratch;
    if (st == NULL)
        st = &scratch;
    int64_t deadline;
    if (s_cli_send_request(self, method, req, timeout_ms, S_UNARY_TIMEOUT_MS, &deadline, st) < 0)
        return -1;
    ProtobufCMessage *resp = NULL;
    int rc = s_cli_await(self, deadline, resp_desc, &resp, NULL, st);
    if (rc < 0)
        s_cli_fail(self, rc, st);
    return s_cli_result(rc, resp, resp_desc, ret_resp, st);
}

/* Writes one body chunk frame: Frame{version 1, kind MESSAGE, message = Request{body_chunk
 * = BodyChunk{partial_data}}}, the envelope by hand and the bytes from data itself. */
static int s_cli_write_chunk(dy_rpc_client_t *c, const uint8_t *data, size_t n, int64_t deadline)
{
    size_t inner = 1 + s_varint_len(n) + n;
    size_t payload = 1 + s_varint_len(inner) + inner;
    size_t body = 2 + 2 + 1 + s_varint_len(payload) + payload;
    if (body > DY_WIRE_MAX_FRAME_DEFAULT)
        return -EMSGSIZE;
    uint8_t hdr[64];
    size_t h = 0;
    hdr[h++] = (uint8_t)(body >> 24);
    hdr[h++] = (uint8_t)(body >> 16);
    hdr[h++] = (uint8_t)(body >> 8);
    hdr[h++] = (uint8_t)body;
    hdr[h++] = 0x08; /* Frame.version */
    hdr[h++] = DY_WIRE_VERSION;
    hdr[h++] = 0x10; /* Frame.kind */
    hdr[h++] = HALO__WIRE__V1__KIND__MESSAGE;
    hdr[h++] = 0x32; /* Frame.message */
    h += s_varint_put(hdr + h, payload);
    hdr[h++] = (S_UP_CHUNK << 3) | 2; /* body_chunk */
    h += s_varint_put(hdr + h, inner);
    hdr[h++] = (1 << 3) | 2; /* partial_data */
    h += s_varint_put(hdr + h, n);
    int rc = s_cli_write(c, hdr, h, deadline);
    return rc < 0 ? rc : s_cli_write(c, data, n, deadline);
}

/* Queues the trailer MESSAGE (field 15 {bytes 1 sha256; uint64 2 total_length}) and
 * HALF_CLOSE in c->out. */
static int s_cli_encode_trailer(dy_rpc_client_t *c, const uint8_t sha[DY_WIRE_SHA256_LEN],
                                uint64_t total)
{
    uint8_t msg[64];
    size_t t = 2 + DY_WIRE_SHA256_LEN + (total ? 1 + s_varint_len(total) : 0);
    size_t m = 0;
    msg[m++] = (S_UP_TRAILER << 3) | 2;
    m += s_varint_put(msg + m, t);
    msg[m++] = (1 << 3) | 2;
    msg[m++] = DY_WIRE_SHA256_LEN;
    memcpy(msg + m, sha, DY_WIRE_SHA256_LEN);
    m += DY_WIRE_SHA256_LEN;
    if (total) {
        msg[m++] = (2 << 3) | 0;
        m += s_varint_put(msg + m, total);
    }
    c->out.len = 0;
    int rc = dy_wire_encode_message(&c->out, msg, m);
    if (rc == 0)
        rc = dy_wire_encode_bare(&c->out, HALO__WIRE__V1__KIND__HALF_CLOSE);
    return rc;
}

/* Waits until one MESSAGE may be sent (taking its credit) while handling what the server
 * says.  0: go; 1: the server ended the call (st filled); negative: failure. */
static int s_cli_take_credit(dy_rpc_client_t *c, dy_wire_credit_t *credit, int64_t deadline,
                             const ProtobufCMessageDescriptor *resp_desc, ProtobufCMessage **resp,
                             dy_rpc_status_t *st)
{
    /* First whatever already arrived (a STATUS ends the upload early). */
    for (;;) {
        Halo__Wire__V1__Frame *f = NULL;
        int rc = s_cli_read_frame(c, deadline, true, &f);
        if (rc == -EAGAIN)
            break;
        if (rc < 0)
            return rc;
        rc = s_cli_on_frame(c, f, resp_desc, resp, credit, st);
        dy_wire_frame_free(&f);
        if (rc != 0)
            return rc;
    }
    while (dy_wire_credit_take(credit) == -EAGAIN) {
        Halo__Wire__V1__Frame *f = NULL;
        int rc = s_cli_read_frame(c, deadline, false, &f);
        if (rc < 0)
            return rc;
        rc = s_cli_on_frame(c, f, resp_desc, resp, credit, st);
        dy_wire_frame_free(&f);
        if (rc != 0)
            return rc;
    }
    return 0;
}

int dy_rpc_upload(dy_rpc_client_t *self, const char *method, const ProtobufCMessage *header_req,
                  const dy_rpc_body_t *body, const ProtobufCMessageDescriptor *resp_desc,
                  ProtobufCMessage **ret_resp, int timeout_ms, dy_rpc_status_t *st)
{
    dy_rpc_status_t scratch;
    if (st == NULL)
        st = &scratch;
    s_st_set(st, DY_WIRE_STATUS_OK, DY_WIRE_REASON_NONE, "%s", "");
    if (!s_cli_ready(self, method, st))
        return -1;
    dy_wire_upload_tx_t tx;
    if (header_req == NULL || body == NULL || (body->fd < 0 && body->data == NULL && body->len) ||
        dy_wire_upload_tx_init(&tx, body->chunk_size) < 0) {
        s_st_set(st, DY_WIRE_STATUS_INVALID_ARGUMENT, DY_WIRE_REASON_NONE,
                 "bad upload arguments (header, body or chunk size)");
        return -1;
    }
    int64_t deadline = s_deadline(timeout_ms, S_UPLOAD_TIMEOUT_MS);
    dy_wire_credit_t credit;
    dy_wire_credit_init(&credit);
    (void)dy_wire_credit_take(&credit); /* the header is free */
    ProtobufCMessage *resp = NULL;
    dy_buf_t chunk = {0};
    bool ended = false;
    int rc = s_cli_encode_start(self, method, header_req, false, deadline);
    if (rc < 0) {
        s_st_set(st, dy_wire_status_from_errno(rc), DY_WIRE_REASON_NONE,
                 "cannot encode the header: %s", strerror(-rc));
        dy_wire_upload_tx_free(&tx);
        return -1;
    }
    rc = s_cli_flush(self, deadline);
    while (rc == 0 && !ended) {
        const uint8_t *p = NULL;
        size_t n = 0;
        int more;
        if (body->fd >= 0) {
            more = dy_wire_upload_tx_next_fd(&tx, body->fd, &chunk);
            p = chunk.data;
            n = chunk.len;
        } else {
            more = dy_wire_upload_tx_next_buf(&tx, body->data, body->len, &p, &n);
        }
        if (more < 0) {
            /* The body cannot be read: abandon the call, nothing is committed. */
            (void)s_cli_abandon(self);
            s_st_set(st, DY_WIRE_STATUS_CANCELLED, DY_WIRE_REASON_NONE,
                     "cannot read the upload body: %s", strerror(-more));
            dy_buf_free(&chunk);
            dy_wire_upload_tx_free(&tx);
            return -1;
        }
        rc = s_cli_take_credit(self, &credit, deadline, resp_desc, &resp, st);
        if (rc == 1) {
            ended = true;
            break;
        }
        if (rc < 0)
            break;
        if (more == 0) {
            uint8_t sha[DY_WIRE_SHA256_LEN];
            uint64_t total = 0;
            rc = dy_wire_upload_tx_trailer(&tx, sha, &total);
            if (rc == 0)
                rc = s_cli_encode_trailer(self, sha, total);
            if (rc == 0)
                rc = s_cli_flush(self, deadline);
            break;
        }
        rc = s_cli_write_chunk(self, p, n, deadline);
    }
    dy_buf_free(&chunk);
    dy_wire_upload_tx_free(&tx);
    if (rc == 0 && !ended)
        rc = s_cli_await(self, deadline, resp_desc, &resp, &credit, st);
    if (rc < 0) {
        if (resp != NULL)
            protobuf_c_message_free_unpacked(resp, NULL);
        /* A timeout abandons the call; a broken connection may still hold the STATUS
         * that explains it (the server refused and closed). */
        if (rc == -ETIMEDOUT || rc == -EPROTO)
            s_cli_fail(self, rc, st);
        else
            s_cli_write_failed(self, rc, st);
        return -1;
    }
    return s_cli_result(rc, resp, resp_desc, ret_resp, st);
}

int dy_rpc_stream_open(dy_rpc_client_t *self, const char *method, const ProtobufCMessage *req,
                       int timeout_ms, dy_rpc_status_t *st)
{
    dy_rpc_status_t scratch;
    if (st == NULL)
        st = &scratch;
    int64_t deadline;
    if (s_cli_send_request(self, method, req, timeout_ms, S_STREAM_TIMEOUT_MS, &deadline, st) < 0)
        return -1;
    self->stream_open = true;
    self->stream_deadline = deadline;
    return 0;
}

int dy_rpc_stream_next(dy_rpc_client_t *self, const ProtobufCMessageDescriptor *resp_desc,
                       ProtobufCMessage **ret_msg, int idle_timeout_ms, dy_rpc_status_t *st)
{
    dy_rpc_status_t scratch;
    if (st == NULL)
        st = &scratch;
    s_st_set(st, DY_WIRE_STATUS_OK, DY_WIRE_REASON_NONE, "%s", "");
    if (self == NULL || resp_desc == NULL || ret_msg == NULL || !self->stream_open) {
        s_st_set(st, DY_WIRE_STATUS_INTERNAL, DY_WIRE_REASON_NONE, "no stream is open");
        return -1;
    }
    int idle = idle_timeout_ms > 0 ? idle_timeout_ms : S_STREAM_IDLE_MS;
    for (;;) {
        int64_t idle_deadline = s_mono_ms() + idle;
        bool by_idle = idle_deadline < self->stream_deadline;
        Halo__Wire__V1__Frame *f = NULL;
        int rc = s_cli_read_frame(self, by_idle ? idle_deadline : self->stream_deadline, false, &f);
        if (rc == -ETIMEDOUT && by_idle) {
            self->stream_open = false;
            self->broken = true;
            s_st_set(st, DY_WIRE_STATUS_UNAVAILABLE, DY_WIRE_REASON_NONE,
                     "no frame from the server for %d ms", idle);
            return -1;
        }
        if (rc < 0) {
            self->stream_open = false;
            s_cli_fail(self, rc, st); /* past the call's deadline: CANCEL and drain */
            return -1;
        }
        ProtobufCMessage *msg = NULL;
        rc = s_cli_on_frame(self, f, resp_desc, &msg, NULL, st);
        dy_wire_frame_free(&f);
        if (rc < 0) {
            self->stream_open = false;
            s_cli_fail(self, rc, st);
            return -1;
        }
        if (rc == 1) {
            self->stream_open = false;
            return 0;
        }
        if (msg != NULL) {
            *ret_msg = msg;
            return 1;
        }
    }
}

int dy_rpc_cancel(dy_rpc_client_t *self)
{
    if (self == NULL)
        return -EINVAL;
    if (!self->stream_open)
        return 0;
    self->stream_open = false;
    if (self->broken)
        return -ENOTCONN;
    return s_cli_abandon(self);
}

/* ---- server ------------------------------------------------------------------------------ */

typedef enum {
    S_CONN_HANDSHAKE = 0, /* TLS handshake in progress */
    S_CONN_OPEN,          /* frames flow */
    S_CONN_CLOSING,       /* final STATUS queued: flush it, close_notify, linger discarding */
    S_CONN_DEAD,          /* to be freed at the end of the step */
} s_conn_state_t;

/* Token buckets of one peer identity. */
typedef struct s_bucket {
    char id[DY_PARTY_ID_MAX]; /* the party id */
    double calls;             /* call tokens */
    double bytes;             /* byte tokens (may be negative: debt) */
    int64_t at;               /* last refill, monotonic ms */
    struct s_bucket *next;    /* owned: next in the server's list */
} s_bucket_t;

typedef struct s_conn s_conn_t;

struct dy_rpc_call {
    dy_rpc_server_t *srv;     /* borrowed: the server */
    s_conn_t *conn;           /* borrowed: NULL once the call ended */
    const dy_rpc_method_t *m; /* borrowed from srv->methods; NULL: unknown method */
    char method[DY_WIRE_METHOD_MAX + 1];
    char peer[DY_PARTY_ID_MAX];   /* the caller's party id */
    uint64_t deadline_unix;       /* the client's deadline, 0 = none */
    int64_t deadline;             /* the same, monotonic ms, 0 = none */
    bool got_request;             /* request (or upload header) received */
    bool half_closed;             /* HALF_CLOSE received */
    bool seen;                    /* the handler saw the call: on_close is owed */
    bool finished;                /* ended: nothing more goes out */
    bool completed;               /* ended by the handler's finish */
    bool accepted;                /* upload: header accepted, rx initialised */
    bool trailer_ok;              /* upload: trailer verified */
    dy_wire_credit_t credit;      /* upload credit as granted and used */
    dy_wire_upload_rx_t rx;       /* upload: owned once accepted */
    int64_t next_tick, next_ping; /* server streams, monotonic ms */
    void *data;                   /* the handler's, borrowed */
    dy_rpc_call_t *next_closing;  /* on srv->closing */
};

struct s_conn {
    dy_rpc_server_t *srv; /* borrowed */
    SSL *ssl;             /* owned */
    int fd;               /* owned (closed after SSL_free) */
    s_conn_state_t state;
    char peer[DY_PARTY_ID_MAX];
    s_bucket_t *bucket;  /* borrowed from srv->buckets once open */
    dy_wire_reader_t rd; /* owned buffer */
    dy_buf_t out;        /* owned: frames not yet written from out_off */
    size_t out_off;
    bool want_write;     /* the last SSL call asked for POLLOUT */
    bool shut_sent;      /* CLOSING: close_notify and FIN sent, lingering */
    int64_t since;       /* handshake or closing start, monotonic ms */
    int64_t last_rx;     /* last frame (or idle-timer restart), monotonic ms */
    dy_rpc_call_t *call; /* the call in progress (owned until it ends) or NULL */
    int pidx;            /* index in the poll set of this step, -1 = none */
    s_conn_t *next;      /* owned: next in srv->conns */
};

typedef struct {
    int fd;
    dy_rpc_watch_fn fn;
    void *arg;
    bool removed; /* unwatched during a step: compacted at its end */
    int pidx;     /* index in the poll set of this step, -1 = none */
} s_watch_t;

struct dy_rpc_server {
    SSL_CTX *ctx; /* borrowed */
    int lfd;      /* owned listening socket */
    int port;
    dy_rpc_server_conf_t conf; /* with defaults filled in */
    dy_rpc_method_t *methods;  /* owned copy of the table (strings borrowed) */
    size_t nmethods;
    s_conn_t *conns; /* owned list */
    size_t nconns;
    s_watch_t *watches; /* owned array */
    size_t nwatch, capwatch;
    s_bucket_t *buckets;    /* owned list */
    dy_rpc_call_t *closing; /* owned: ended calls awaiting on_close */
    struct pollfd *pfds;    /* owned scratch */
    size_t pcap;
    dy_rpc_server_stats_t stats;
    size_t reader_peak; /* largest reader buffer seen */
    bool in_step;       /* dy_rpc_server_step is running */
};

static size_t s_out_pending(const s_conn_t *conn)
{
    return conn->out.len - conn->out_off;
}

static size_t s_out_high(const dy_rpc_server_t *srv)
{
    return 4 * srv->conf.max_frame;
}

/* ---- buckets ---- */

static void s_bucket_refill(dy_rpc_server_t *srv, s_bucket_t *b, int64_t now)
{
    double dt = (double)(now - b->at) / 1000.0;
    b->at = now;
    if (dt <= 0)
        return;
    b->calls += dt * srv->conf.calls_per_second;
    if (b->calls > srv->conf.call_burst)
        b->calls = srv->conf.call_burst;
    b->bytes += dt * srv->conf.bytes_per_second;
    if (b->bytes > srv->conf.byte_burst)
        b->bytes = srv->conf.byte_burst;
}

static s_bucket_t *s_bucket_get(dy_rpc_server_t *srv, const char *id)
{
    for (s_bucket_t *b = srv->buckets; b != NULL; b = b->next)
        if (strcmp(b->id, id) == 0)
            return b;
    s_bucket_t *b = calloc(1, sizeof(*b));
    if (b == NULL)
        return NULL;
    snprintf(b->id, sizeof(b->id), "%s", id);
    b->calls = srv->conf.call_burst;
    b->bytes = srv->conf.byte_burst;
    b->at = s_mono_ms();
    b->next = srv->buckets;
    srv->buckets = b;
    return b;
}

static bool s_bucket_take_call(dy_rpc_server_t *srv, s_bucket_t *b)
{
    if (srv->conf.calls_per_second <= 0 || b == NULL)
        return true;
    s_bucket_refill(srv, b, s_mono_ms());
    if (b->calls < 1.0)
        return false;
    b->calls -= 1.0;
    return true;
}

static bool s_bucket_take_bytes(dy_rpc_server_t *srv, s_bucket_t *b, size_t n)
{
    if (srv->conf.bytes_per_second <= 0 || b == NULL)
        return true;
    s_bucket_refill(srv, b, s_mono_ms());
    if (b->bytes <= 0)
        return false;
    b->bytes -= (double)n;
    return true;
}

/* ---- output ---- */

static void DY_PRINTF(4, 5) s_conn_status(s_conn_t *conn, dy_wire_status_t code,
                                          dy_wire_reason_t reason, const char *fmt, ...)
{
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    (void)dy_wire_encode_status(&conn->out, code, msg, reason);
}

static void s_conn_lost(s_conn_t *conn);

/* Writes queued output until done or the socket is full. */
static void s_conn_flush(s_conn_t *conn)
{
    dy_rpc_server_t *srv = conn->srv;
    if (conn->state != S_CONN_OPEN && conn->state != S_CONN_CLOSING)
        return;
    /* Reclaim the written front of a big buffer (the retry sees the same bytes; the
     * context allows a moving buffer). */
    if (conn->out_off >= S_OUT_KEEP && conn->out_off >= s_out_pending(conn)) {
        memmove(conn->out.data, conn->out.data + conn->out_off, s_out_pending(conn));
        conn->out.len -= conn->out_off;
        conn->out_off = 0;
    }
    conn->want_write = false;
    while (s_out_pending(conn) > 0) {
        size_t n = s_out_pending(conn);
        if (n > S_WRITE_MAX)
            n = S_WRITE_MAX;
        ERR_clear_error();
        int w = SSL_write(conn->ssl, conn->out.data + conn->out_off, (int)n);
        if (w > 0) {
            conn->out_off += (size_t)w;
            srv->stats.bytes_out += (uint64_t)w;
            continue;
        }
        int se = SSL_get_error(conn->ssl, w);
        if (se == SSL_ERROR_WANT_WRITE) {
            conn->want_write = true;
            return;
        }
        if (se == SSL_ERROR_WANT_READ)
            return;
        ERR_clear_error();
        s_conn_lost(conn);
        return;
    }
    conn->out.len = conn->out_off = 0;
    if (conn->out.cap > S_OUT_KEEP)
        dy_buf_free(&conn->out);
}

/* ---- call lifetime ---- */

/* Ends the call: detaches it from its connection and queues on_close.  Idempotent. */
static void s_call_end(dy_rpc_call_t *call, bool completed)
{
    if (call->finished)
        return;
    call->finished = true;
    call->completed = completed;
    s_conn_t *conn = call->conn;
    if (conn != NULL) {
        if (conn->call == call)
            conn->call = NULL;
        conn->last_rx = s_mono_ms(); /* the idle timer restarts: we wait for the client */
        call->conn = NULL;
    }
    call->next_closing = call->srv->closing;
    call->srv->closing = call;
}

/* The server ends the call with an error STATUS (completed = false). */
static void DY_PRINTF(3, 4)
    s_call_fail(dy_rpc_call_t *call, dy_wire_status_t code, const char *fmt, ...)
{
    if (call->finished)
        return;
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (call->conn != NULL && call->conn->state == S_CONN_OPEN)
        (void)dy_wire_encode_status(&call->conn->out, code, msg, DY_WIRE_REASON_NONE);
    s_call_end(call, false);
}

static void s_call_free(dy_rpc_call_t *call)
{
    dy_wire_upload_rx_free(&call->rx);
    free(call);
}

/* Runs the owed on_close callbacks and frees ended calls (never inside a handler). */
static void s_reap_calls(dy_rpc_server_t *srv)
{
    dy_rpc_call_t *call;
    while ((call = srv->closing) != NULL) {
        srv->closing = call->next_closing;
        if (call->seen && call->m != NULL && call->m->on_close != NULL)
            call->m->on_close(call, call->completed, call->m->arg);
        s_call_free(call);
    }
}

/* ---- connection lifetime ---- */

/* The peer is gone (or the transport broke): the call in progress is lost. */
static void s_conn_lost(s_conn_t *conn)
{
    if (conn->call != NULL)
        s_call_end(conn->call, false);
    conn->state = S_CONN_DEAD;
}

/* Ends the connection after a last STATUS (the call in progress, if any, is lost). */
static void DY_PRINTF(3, 4)
    s_conn_close(s_conn_t *conn, dy_wire_status_t code, const char *fmt, ...)
{
    if (conn->state != S_CONN_OPEN)
        return;
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (conn->call != NULL)
        s_call_end(conn->call, false);
    s_conn_status(conn, code, DY_WIRE_REASON_NONE, "%s", msg);
    conn->state = S_CONN_CLOSING;
    conn->since = s_mono_ms();
}

static void s_conn_free(dy_rpc_server_t *srv, s_conn_t *conn)
{
    if (conn->call != NULL)
        s_call_end(conn->call, false);
    if (conn->ssl != NULL)
        SSL_free(conn->ssl);
    ERR_clear_error();
    if (conn->fd >= 0)
        close(conn->fd);
    dy_wire_reader_free(&conn->rd);
    dy_buf_free(&conn->out);
    free(conn);
    srv->nconns--;
    srv->stats.connections--;
}

static void s_reap_conns(dy_rpc_server_t *srv)
{
    s_conn_t **pp = &srv->conns;
    while (*pp != NULL) {
        s_conn_t *conn = *pp;
        if (conn->state == S_CONN_DEAD) {
            *pp = conn->next;
            s_conn_free(srv, conn);
        } else {
            pp = &conn->next;
        }
    }
}

/* ---- calls: frames from the client ---- */

static const dy_rpc_method_t *s_method_find(const dy_rpc_server_t *srv, const char *name)
{
    for (size_t i = 0; i < srv->nmethods; i++)
        if (strcmp(srv->methods[i].method, name) == 0)
            return &srv->methods[i];
    return NULL;
}

static void s_call_start(s_conn_t *conn, const Halo__Wire__V1__Frame *f)
{
    dy_rpc_server_t *srv = conn->srv;
    srv->stats.calls++;
    if (conn->call != NULL) {
        s_conn_close(conn, DY_WIRE_STATUS_INVALID_ARGUMENT,
                     "CALL_START while a call is in progress (one call at a time)");
        return;
    }
    dy_rpc_call_t *call = calloc(1, sizeof(*call));
    if (call == NULL) {
        s_conn_status(conn, DY_WIRE_STATUS_RESOURCE_EXHAUSTED, DY_WIRE_REASON_NONE,
                      "out of memory");
        return;
    }
    call->srv = srv;
    call->conn = conn;
    conn->call = call;
    snprintf(call->method, sizeof(call->method), "%s", f->method);
    snprintf(call->peer, sizeof(call->peer), "%s", conn->peer);
    dy_wire_credit_init(&call->credit);
    int64_t now = s_mono_ms();
    uint64_t now_unix = s_unix_ms();
    call->deadline_unix = f->deadline_unix_ms;
    if (f->deadline_unix_ms != 0) {
        if (f->deadline_unix_ms <= now_unix) {
            s_call_fail(call, DY_WIRE_STATUS_DEADLINE_EXCEEDED,
                        "deadline passed before the call started");
            return;
        }
        uint64_t left = f->deadline_unix_ms - now_unix;
        call->deadline =
            now + (int64_t)(left > (uint64_t)INT32_MAX * 1000 ? (uint64_t)INT32_MAX * 1000 : left);
    }
    if (!s_bucket_take_call(srv, conn->bucket)) {
        srv->stats.rate_limited++;
        s_call_fail(call, DY_WIRE_STATUS_RESOURCE_EXHAUSTED, "rate limit: too many calls from %s",
                    conn->peer);
        return;
    }
    call->m = s_method_find(srv, call->method);
    if (call->m == NULL) {
        s_call_fail(call, DY_WIRE_STATUS_UNIMPLEMENTED, "unknown method %s", call->method);
        return;
    }
}

/* Keeps the client's window at upload_credit: tops it up once half is used. */
static void s_call_regrant(dy_rpc_call_t *call)
{
    dy_rpc_server_t *srv = call->srv;
    uint32_t want = srv->conf.upload_credit;
    if (call->conn == NULL || call->credit.available > want / 2)
        return;
    uint32_t n = want - (uint32_t)call->credit.available;
    if (n == 0 || dy_wire_credit_grant(&call->credit, n) < 0)
        return;
    (void)dy_wire_encode_credit(&call->conn->out, n);
}

static void s_upload_message(dy_rpc_call_t *call, const uint8_t *data, size_t len)
{
    const dy_rpc_method_t *m = call->m;
    if (dy_wire_credit_accept(&call->credit) < 0) {
        s_call_fail(call, DY_WIRE_STATUS_INVALID_ARGUMENT, "MESSAGE without credit");
        return;
    }
    if (!call->got_request) {
        if (!s_upload_is_header(data, len)) {
            s_call_fail(call, DY_WIRE_STATUS_INVALID_ARGUMENT,
                        "the first upload message must carry the header (field 1) alone");
            return;
        }
        call->got_request = true;
        if (m->on_header == NULL) {
            s_call_fail(call, DY_WIRE_STATUS_UNIMPLEMENTED, "method has no header handler");
            return;
        }
        call->seen = true;
        m->on_header(call, data, len, m->arg);
        return;
    }
    int kind = 0;
    const uint8_t *p = NULL;
    size_t n = 0;
    if (s_upload_parse(data, len, &kind, &p, &n) < 0) {
        s_call_fail(call, DY_WIRE_STATUS_INVALID_ARGUMENT, "malformed upload message");
        return;
    }
    if (!call->accepted || call->trailer_ok) {
        s_call_fail(call, DY_WIRE_STATUS_INVALID_ARGUMENT, "upload message out of order");
        return;
    }
    if (kind == S_UP_TRAILER) {
        Halo__Wire__V1__Trailer *t = halo__wire__v1__trailer__unpack(NULL, n, p);
        if (t == NULL) {
            s_call_fail(call, DY_WIRE_STATUS_INVALID_ARGUMENT, "malformed trailer");
            return;
        }
        int rc = dy_wire_upload_rx_trailer(&call->rx, t);
        halo__wire__v1__trailer__free_unpacked(t, NULL);
        if (rc == -EBADMSG)
            s_call_fail(call, DY_WIRE_STATUS_DATA_LOSS,
                        "upload length or SHA-256 mismatch: nothing stored");
        else if (rc < 0)
            s_call_fail(call, dy_wire_status_from_errno(rc), "bad trailer: %s", strerror(-rc));
        else
            call->trailer_ok = true;
        return;
    }
    int rc = dy_wire_upload_rx_chunk(&call->rx, p, n);
    if (rc < 0) {
        const char *why = rc == -E2BIG    ? "chunk larger than 4 MiB"
                          : rc == -EFBIG  ? "upload larger than allowed"
                          : rc == -EINVAL ? "empty chunk, or a chunk after a short one"
                                          : strerror(-rc);
        s_call_fail(call, dy_wire_status_from_errno(rc), "%s", why);
        return;
    }
    if (m->on_chunk != NULL) {
        rc = m->on_chunk(call, p, n, m->arg);
        if (rc < 0) {
            s_call_fail(call, dy_wire_status_from_errno(rc), "chunk refused by the handler: %s",
                        strerror(-rc));
            return;
        }
    }
    if (!call->finished)
        s_call_regrant(call);
}

static void s_call_message(dy_rpc_call_t *call, const uint8_t *data, size_t len)
{
    dy_rpc_server_t *srv = call->srv;
    s_conn_t *conn = call->conn;
    if (!s_bucket_take_bytes(srv, conn->bucket, len)) {
        srv->stats.rate_limited++;
        s_call_fail(call, DY_WIRE_STATUS_RESOURCE_EXHAUSTED, "rate limit: too many bytes from %s",
                    conn->peer);
        return;
    }
    if (call->half_closed) {
        s_call_fail(call, DY_WIRE_STATUS_INVALID_ARGUMENT, "MESSAGE after HALF_CLOSE");
        return;
    }
    const dy_rpc_method_t *m = call->m;
    if (m->kind == DY_RPC_CLIENT_STREAM) {
        s_upload_message(call, data, len);
        return;
    }
    if (call->got_request) {
        s_call_fail(call, DY_WIRE_STATUS_INVALID_ARGUMENT, "more than one request message");
        return;
    }
    call->got_request = true;
    if (m->on_request == NULL) {
        s_call_fail(call, DY_WIRE_STATUS_UNIMPLEMENTED, "method has no request handler");
        return;
    }
    int64_t now = s_mono_ms();
    call->next_tick = now + srv->conf.tick_ms;
    call->next_ping = now + srv->conf.ping_interval_ms;
    call->seen = true;
    m->on_request(call, data, len, m->arg);
}

static void s_call_half_close(dy_rpc_call_t *call)
{
    if (call->half_closed) {
        s_call_fail(call, DY_WIRE_STATUS_INVALID_ARGUMENT, "second HALF_CLOSE");
        return;
    }
    call->half_closed = true;
    const dy_rpc_method_t *m = call->m;
    if (!call->got_request) {
        s_call_fail(call, DY_WIRE_STATUS_INVALID_ARGUMENT, "HALF_CLOSE before the request");
        return;
    }
    if (m->kind != DY_RPC_CLIENT_STREAM)
        return;
    if (!call->trailer_ok) {
        s_call_fail(call, DY_WIRE_STATUS_INVALID_ARGUMENT,
                    "upload ended without a trailer: nothing committed");
        return;
    }
    if (m->on_complete == NULL) {
        s_call_fail(call, DY_WIRE_STATUS_INTERNAL, "method has no completion handler");
        return;
    }
    m->on_complete(call, call->rx.sha256, call->rx.total, m->arg);
}

static void s_conn_frame(s_conn_t *conn, const Halo__Wire__V1__Frame *f)
{
    switch (f->kind) {
    case HALO__WIRE__V1__KIND__CALL_START:
        s_call_start(conn, f);
        break;
    /* MESSAGE, HALF_CLOSE and CANCEL with no call in progress belong to a call the server
     * already ended (the client may not have seen its STATUS yet): dropped. */
    case HALO__WIRE__V1__KIND__MESSAGE:
        if (conn->call != NULL)
            s_call_message(conn->call, f->message.data, f->message.len);
        break;
    case HALO__WIRE__V1__KIND__HALF_CLOSE:
        if (conn->call != NULL)
            s_call_half_close(conn->call);
        break;
    case HALO__WIRE__V1__KIND__CANCEL:
        if (conn->call != NULL)
            s_call_fail(conn->call, DY_WIRE_STATUS_CANCELLED, "cancelled by the client");
        break;
    case HALO__WIRE__V1__KIND__PING:
        break;
    default:
        s_conn_close(conn, DY_WIRE_STATUS_INVALID_ARGUMENT, "a client may not send %s frames",
                     f->kind == HALO__WIRE__V1__KIND__STATUS ? "STATUS" : "CREDIT");
        break;
    }
}

/* Feeds plaintext to the reader and handles every whole frame. */
static void s_conn_input(s_conn_t *conn, const uint8_t *data, size_t n)
{
    dy_rpc_server_t *srv = conn->srv;
    size_t off = 0;
    while (off < n && conn->state == S_CONN_OPEN) {
        size_t used = 0, flen = 0;
        const uint8_t *fb = NULL;
        int rc = dy_wire_reader_feed(&conn->rd, data + off, n - off, &used, &fb, &flen);
        off += used;
        if (conn->rd.cap > srv->reader_peak)
            srv->reader_peak = conn->rd.cap;
        if (rc == -EMSGSIZE) {
            srv->stats.oversized++;
            s_conn_close(conn, DY_WIRE_STATUS_RESOURCE_EXHAUSTED,
                         "frame larger than %zu bytes refused", conn->rd.max_frame);
            return;
        }
        if (rc < 0) {
            s_conn_close(conn, dy_wire_status_from_errno(rc), "frame reader: %s", strerror(-rc));
            return;
        }
        if (rc == 0)
            break;
        Halo__Wire__V1__Frame *f = NULL;
        const char *why = "";
        rc = dy_wire_frame_decode(fb, flen, srv->conf.max_frame, &f, &why);
        if (rc < 0) {
            s_conn_close(conn, dy_wire_status_from_errno(rc), "bad frame: %s", why);
            return;
        }
        conn->last_rx = s_mono_ms();
        s_conn_frame(conn, f);
        dy_wire_frame_free(&f);
    }
    /* A big frame leaves a big reader buffer that wire.c keeps until a small frame
     * follows; release it now so an idle connection holds little. */
    if (conn->rd.cap > S_OUT_KEEP && dy_wire_reader_at_boundary(&conn->rd) && conn->rd.error == 0)
        dy_wire_reader_free(&conn->rd);
}

/* Reads what the socket has (within a budget).  While CLOSING, input is discarded. */
static void s_conn_read(s_conn_t *conn)
{
    dy_rpc_server_t *srv = conn->srv;
    size_t budget = S_READ_BUDGET;
    uint8_t buf[S_IO_CHUNK];
    while (conn->state == S_CONN_OPEN || conn->state == S_CONN_CLOSING) {
        if (conn->state == S_CONN_OPEN && s_out_pending(conn) > s_out_high(srv))
            return; /* back-pressure: the peer is not reading */
        ERR_clear_error();
        int n = SSL_read(conn->ssl, buf, (int)sizeof(buf));
        if (n > 0) {
            srv->stats.bytes_in += (uint64_t)n;
            if (conn->state == S_CONN_OPEN)
                s_conn_input(conn, buf, (size_t)n);
            if ((size_t)n >= budget)
                return;
            budget -= (size_t)n;
            continue;
        }
        int se = SSL_get_error(conn->ssl, n);
        if (se == SSL_ERROR_WANT_READ)
            return;
        if (se == SSL_ERROR_WANT_WRITE) {
            conn->want_write = true;
            return;
        }
        ERR_clear_error();
        s_conn_lost(conn);
        return;
    }
}

static void s_conn_handshake(s_conn_t *conn)
{
    dy_rpc_server_t *srv = conn->srv;
    ERR_clear_error();
    int r = SSL_do_handshake(conn->ssl);
    if (r != 1) {
        int se = SSL_get_error(conn->ssl, r);
        if (se == SSL_ERROR_WANT_READ || se == SSL_ERROR_WANT_WRITE) {
            conn->want_write = se == SSL_ERROR_WANT_WRITE;
            return;
        }
        ERR_clear_error();
        srv->stats.refused++;
        conn->state = S_CONN_DEAD;
        return;
    }
    conn->want_write = false;
    if (dy_tls_peer_identity(conn->ssl, conn->peer, sizeof(conn->peer)) < 0) {
        srv->stats.refused++;
        conn->state = S_CONN_DEAD;
        return;
    }
    conn->bucket = s_bucket_get(srv, conn->peer);
    srv->stats.accepted++;
    conn->state = S_CONN_OPEN;
    conn->last_rx = s_mono_ms();
    s_conn_read(conn); /* a TLS 1.3 client may have sent its first frames already */
}

static void s_accept(dy_rpc_server_t *srv)
{
    for (int i = 0; i < S_ACCEPT_BURST; i++) {
        int fd = accept4(srv->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            return; /* EAGAIN, or a transient error (EMFILE, ECONNABORTED): next step */
        if ((int)srv->nconns >= srv->conf.max_connections) {
            close(fd);
            continue;
        }
        int one = 1;
        (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        s_conn_t *conn = calloc(1, sizeof(*conn));
        SSL *ssl = conn ? SSL_new(srv->ctx) : NULL;
        if (ssl == NULL || SSL_set_fd(ssl, fd) != 1) {
            ERR_clear_error();
            SSL_free(ssl);
            free(conn);
            close(fd);
            continue;
        }
        SSL_set_accept_state(ssl);
        SSL_set_mode(ssl, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
        conn->srv = srv;
        conn->ssl = ssl;
        conn->fd = fd;
        conn->state = S_CONN_HANDSHAKE;
        conn->since = s_mono_ms();
        conn->pidx = -1;
        dy_wire_reader_init(&conn->rd, srv->conf.max_frame);
        conn->next = srv->conns;
        srv->conns = conn;
        srv->nconns++;
        srv->stats.connections++;
        s_conn_handshake(conn);
    }
}

/* ---- timers ---- */

/* True while the server waits for the client to send something (the idle timeout
 * applies): no call, or a call still expecting request frames that are not blocked on
 * the server (an upload header not yet accepted, a request being served). */
static bool s_conn_waits_for_peer(const s_conn_t *conn)
{
    const dy_rpc_call_t *call = conn->call;
    if (call == NULL)
        return true;
    if (call->half_closed || call->m == NULL)
        return false;
    if (call->m->kind == DY_RPC_CLIENT_STREAM)
        return !call->got_request || call->accepted;
    return !call->got_request;
}

static int64_t s_min64(int64_t a, int64_t b)
{
    return a < b ? a : b;
}

/* Runs due timers; returns the next due time (INT64_MAX: none). */
static int64_t s_timers(dy_rpc_server_t *srv, int64_t now)
{
    const dy_rpc_server_conf_t *cf = &srv->conf;
    int64_t next = INT64_MAX;
    for (s_conn_t *conn = srv->conns; conn != NULL; conn = conn->next) {
        switch (conn->state) {
        case S_CONN_HANDSHAKE:
            if (now - conn->since >= cf->handshake_timeout_ms) {
                srv->stats.refused++;
                conn->state = S_CONN_DEAD;
            } else {
                next = s_min64(next, conn->since + cf->handshake_timeout_ms);
            }
            continue;
        case S_CONN_CLOSING:
            if (now - conn->since >= S_LINGER_MS)
                conn->state = S_CONN_DEAD;
            else
                next = s_min64(next, conn->since + S_LINGER_MS);
            continue;
        case S_CONN_DEAD:
            continue;
        case S_CONN_OPEN:
            break;
        }
        if (s_conn_waits_for_peer(conn)) {
            if (now - conn->last_rx >= cf->idle_timeout_ms) {
                s_conn_close(conn, DY_WIRE_STATUS_UNAVAILABLE, "no frame for %d ms",
                             cf->idle_timeout_ms);
                continue;
            }
            next = s_min64(next, conn->last_rx + cf->idle_timeout_ms);
        }
        dy_rpc_call_t *call = conn->call;
        if (call == NULL)
            continue;
        if (call->deadline != 0) {
            if (now >= call->deadline) {
                s_call_fail(call, DY_WIRE_STATUS_DEADLINE_EXCEEDED, "deadline exceeded");
                continue;
            }
            next = s_min64(next, call->deadline);
        }
        if (call->m == NULL || call->m->kind != DY_RPC_SERVER_STREAM || !call->seen)
            continue;
        if (now >= call->next_ping) {
            (void)dy_wire_encode_bare(&conn->out, HALO__WIRE__V1__KIND__PING);
            call->next_ping = now + cf->ping_interval_ms;
        }
        next = s_min64(next, call->next_ping);
        if (call->m->on_tick != NULL) {
            if (now >= call->next_tick) {
                call->next_tick = now + cf->tick_ms;
                call->m->on_tick(call, call->m->arg);
            }
            /* the call may have ended in on_tick; its memory lives until the reap */
            if (!call->finished)
                next = s_min64(next, call->next_tick);
        }
    }
    return next;
}

/* ---- server API ---- */

dy_rpc_server_t *dy_rpc_server_new(const dy_rpc_server_conf_t *conf, const dy_rpc_method_t *methods,
                                   size_t nmethods, char *errbuf, size_t errlen)
{
    char dummy[8];
    if (errbuf == NULL || errlen == 0) {
        errbuf = dummy;
        errlen = sizeof(dummy);
    }
    if (conf == NULL || conf->ctx == NULL || conf->host == NULL || conf->port < 0 ||
        conf->port > 65535 || (nmethods > 0 && methods == NULL)) {
        snprintf(errbuf, errlen, "bad server configuration");
        return NULL;
    }
    for (size_t i = 0; i < nmethods; i++) {
        const dy_rpc_method_t *m = &methods[i];
        if (m->method == NULL || dy_wire_method_check(m->method) < 0 ||
            (int)m->kind < DY_RPC_UNARY || m->kind > DY_RPC_SERVER_STREAM) {
            snprintf(errbuf, errlen, "bad method entry %zu", i);
            return NULL;
        }
    }
    s_sigpipe_ignore();
    dy_rpc_server_t *srv = calloc(1, sizeof(*srv));
    if (srv == NULL) {
        snprintf(errbuf, errlen, "out of memory");
        return NULL;
    }
    srv->lfd = -1;
    srv->ctx = conf->ctx;
    srv->conf = *conf;
    dy_rpc_server_conf_t *cf = &srv->conf;
    cf->host = NULL; /* borrowed only for the call */
    if (cf->max_frame == 0)
        cf->max_frame = DY_WIRE_MAX_FRAME_DEFAULT;
    if (cf->max_connections <= 0)
        cf->max_connections = 256;
    if (cf->idle_timeout_ms <= 0)
        cf->idle_timeout_ms = 60000;
    if (cf->ping_interval_ms <= 0)
        cf->ping_interval_ms = 30000;
    if (cf->handshake_timeout_ms <= 0)
        cf->handshake_timeout_ms = 10000;
    if (cf->tick_ms <= 0)
        cf->tick_ms = 1000;
    if (cf->upload_credit == 0)
        cf->upload_credit = 8;
    if (cf->calls_per_second > 0 && cf->call_burst < 1)
        cf->call_burst = cf->calls_per_second > 1 ? cf->calls_per_second : 1;
    if (cf->bytes_per_second > 0 && cf->byte_burst <= 0)
        cf->byte_burst = cf->bytes_per_second;
    if (nmethods > 0) {
        srv->methods = calloc(nmethods, sizeof(*srv->methods));
        if (srv->methods == NULL) {
            snprintf(errbuf, errlen, "out of memory");
            dy_rpc_server_destroy(&srv);
            return NULL;
        }
        memcpy(srv->methods, methods, nmethods * sizeof(*methods));
        srv->nmethods = nmethods;
    }
    uint16_t port = 0;
    int fd = dy_tls_listen(conf->host, (uint16_t)conf->port, &port);
    if (fd < 0) {
        snprintf(errbuf, errlen, "listen on %s:%d: %s", conf->host, conf->port, strerror(-fd));
        dy_rpc_server_destroy(&srv);
        return NULL;
    }
    srv->lfd = fd;
    srv->port = port;
    int rc = s_set_nonblock(fd);
    if (rc < 0) {
        snprintf(errbuf, errlen, "fcntl: %s", strerror(-rc));
        dy_rpc_server_destroy(&srv);
        return NULL;
    }
    return srv;
}

void dy_rpc_server_destroy(dy_rpc_server_t **self_p)
{
    if (self_p == NULL || *self_p == NULL)
        return;
    dy_rpc_server_t *srv = *self_p;
    for (s_conn_t *conn = srv->conns; conn != NULL; conn = conn->next)
        if (conn->call != NULL)
            s_call_end(conn->call, false);
    s_reap_calls(srv);
    for (s_conn_t *conn = srv->conns; conn != NULL; conn = conn->next)
        conn->state = S_CONN_DEAD;
    s_reap_conns(srv);
    s_reap_calls(srv); /* handlers' on_close may not start anything, but be safe */
    while (srv->buckets != NULL) {
        s_bucket_t *b = srv->buckets;
        srv->buckets = b->next;
        free(b);
    }
    if (srv->lfd >= 0)
        close(srv->lfd);
    free(srv->watches);
    free(srv->pfds);
    free(srv->methods);
    free(srv);
    *self_p = NULL;
}

int dy_rpc_server_port(const dy_rpc_server_t *self)
{
    return self ? self->port : -1;
}

int dy_rpc_server_watch(dy_rpc_server_t *self, int fd, dy_rpc_watch_fn fn, void *arg)
{
    if (self == NULL || fd < 0 || fn == NULL)
        return -EINVAL;
    for (size_t i = 0; i < self->nwatch; i++)
        if (self->watches[i].fd == fd && !self->watches[i].removed)
            return -EEXIST;
    if (self->nwatch == self->capwatch) {
        size_t ncap = self->capwatch ? 2 * self->capwatch : 4;
        s_watch_t *w = realloc(self->watches, ncap * sizeof(*w));
        if (w == NULL)
            return -ENOMEM;
        self->watches = w;
        self->capwatch = ncap;
    }
    self->watches[self->nwatch++] =
        (s_watch_t){.fd = fd, .fn = fn, .arg = arg, .removed = false, .pidx = -1};
    return 0;
}

static void s_watch_compact(dy_rpc_server_t *srv)
{
    size_t j = 0;
    for (size_t i = 0; i < srv->nwatch; i++)
        if (!srv->watches[i].removed)
            srv->watches[j++] = srv->watches[i];
    srv->nwatch = j;
}

int dy_rpc_server_unwatch(dy_rpc_server_t *self, int fd)
{
    if (self == NULL)
        return -EINVAL;
    for (size_t i = 0; i < self->nwatch; i++) {
        if (self->watches[i].fd == fd && !self->watches[i].removed) {
            self->watches[i].removed = true;
            if (!self->in_step)
                s_watch_compact(self);
            return 0;
        }
    }
    return -ENOENT;
}

static int s_pfds_reserve(dy_rpc_server_t *srv, size_t n)
{
    if (n <= srv->pcap)
        return 0;
    size_t ncap = srv->pcap ? srv->pcap : 16;
    while (ncap < n)
        ncap *= 2;
    struct pollfd *p = realloc(srv->pfds, ncap * sizeof(*p));
    if (p == NULL)
        return -ENOMEM;
    srv->pfds = p;
    srv->pcap = ncap;
    return 0;
}

int dy_rpc_server_step(dy_rpc_server_t *self, int timeout_ms)
{
    if (self == NULL)
        return -EINVAL;
    if (self->in_step)
        return -EBUSY; /* not re-entrant: never call it from a handler */
    dy_rpc_server_t *srv = self;
    srv->in_step = true;
    int rc = 0;
    int64_t now = s_mono_ms();
    int64_t next = s_timers(srv, now);
    s_reap_calls(srv);
    size_t np = 1 + srv->nconns + srv->nwatch;
    if (s_pfds_reserve(srv, np) < 0) {
        rc = -ENOMEM;
        goto out;
    }
    np = 0;
    srv->pfds[np++] = (struct pollfd){.fd = srv->lfd, .events = POLLIN};
    bool ready = false; /* plaintext already buffered in some SSL */
    for (s_conn_t *conn = srv->conns; conn != NULL; conn = conn->next) {
        conn->pidx = -1;
        short ev = 0;
        switch (conn->state) {
        case S_CONN_HANDSHAKE:
            ev = conn->want_write ? POLLOUT : POLLIN;
            break;
        case S_CONN_OPEN:
            if (s_out_pending(conn) <= s_out_high(srv)) {
                ev |= POLLIN;
                if (SSL_pending(conn->ssl) > 0)
                    ready = true;
            }
            if (s_out_pending(conn) > 0 || conn->want_write)
                ev |= POLLOUT;
            break;
        case S_CONN_CLOSING:
            ev = POLLIN;
            if (s_out_pending(conn) > 0 || conn->want_write)
                ev |= POLLOUT;
            break;
        case S_CONN_DEAD:
            continue;
        }
        conn->pidx = (int)np;
        srv->pfds[np++] = (struct pollfd){.fd = conn->fd, .events = ev};
    }
    size_t nwatch = srv->nwatch;
    for (size_t i = 0; i < nwatch; i++) {
        s_watch_t *w = &srv->watches[i];
        w->pidx = -1;
        if (w->removed)
            continue;
        w->pidx = (int)np;
        srv->pfds[np++] = (struct pollfd){.fd = w->fd, .events = POLLIN};
    }
    int wait = timeout_ms < 0 ? -1 : timeout_ms;
    if (next != INT64_MAX) {
        int t = s_left_ms(next, now);
        if (wait < 0 || t < wait)
            wait = t;
    }
    if (ready)
        wait = 0;
    int n = poll(srv->pfds, (nfds_t)np, wait);
    if (n < 0) {
        if (errno != EINTR)
            rc = -errno;
        goto out;
    }
    if (srv->pfds[0].revents & POLLIN)
        s_accept(srv);
    for (s_conn_t *conn = srv->conns; conn != NULL; conn = conn->next) {
        if (conn->pidx < 0)
            continue;
        short re = srv->pfds[conn->pidx].revents;
        if (conn->state == S_CONN_HANDSHAKE) {
            if (re != 0)
                s_conn_handshake(conn);
            continue;
        }
        if (re & POLLOUT)
            s_conn_flush(conn);
        if ((re & (POLLIN | POLLERR | POLLHUP)) || ((re & POLLOUT) && conn->want_write) ||
            (conn->state == S_CONN_OPEN && SSL_pending(conn->ssl) > 0))
            s_conn_read(conn);
    }
    for (size_t i = 0; i < nwatch && i < srv->nwatch; i++) {
        s_watch_t w = srv->watches[i]; /* a copy: the callback may add or remove watches */
        if (w.removed || w.pidx < 0 || srv->pfds[w.pidx].revents == 0)
            continue;
        w.fn(w.fd, w.arg);
    }
    (void)s_timers(srv, s_mono_ms());
out:
    s_reap_calls(srv);
    for (s_conn_t *conn = srv->conns; conn != NULL; conn = conn->next) {
        if (s_out_pending(conn) > 0)
            s_conn_flush(conn);
        if (conn->state == S_CONN_CLOSING && s_out_pending(conn) == 0 && !conn->shut_sent) {
            /* close_notify and FIN, then linger reading (and discarding) until the peer
             * closes or S_LINGER_MS pass: closing with unread input would send a reset
             * that can destroy the final STATUS before the peer reads it. */
            ERR_clear_error();
            (void)SSL_shutdown(conn->ssl);
            ERR_clear_error();
            (void)shutdown(conn->fd, SHUT_WR);
            conn->shut_sent = true;
        }
    }
    s_reap_calls(srv);
    s_reap_conns(srv);
    s_watch_compact(srv);
    srv->in_step = false;
    return rc;
}

int dy_rpc_server_run(dy_rpc_server_t *self, volatile const int *stop)
{
    if (self == NULL || stop == NULL)
        return -EINVAL;
    while (!*stop) {
        int rc = dy_rpc_server_step(self, 100);
        if (rc < 0)
            return rc;
    }
    return 0;
}

void dy_rpc_server_stats(const dy_rpc_server_t *self, dy_rpc_server_stats_t *out)
{
    if (self == NULL || out == NULL)
        return;
    *out = self->stats;
}

void dy_rpc_server_mem(const dy_rpc_server_t *self, dy_rpc_server_mem_t *out)
{
    if (self == NULL || out == NULL)
        return;
    memset(out, 0, sizeof(*out));
    for (const s_conn_t *conn = self->conns; conn != NULL; conn = conn->next) {
        out->reader_bytes += conn->rd.cap;
        out->out_bytes += conn->out.cap;
    }
    out->reader_peak = self->reader_peak;
}

/* ---- a call, on the server side ---- */

const char *dy_rpc_call_peer(const dy_rpc_call_t *call)
{
    return call ? call->peer : NULL;
}

const char *dy_rpc_call_method(const dy_rpc_call_t *call)
{
    return call ? call->method : NULL;
}

uint64_t dy_rpc_call_deadline(const dy_rpc_call_t *call)
{
    return call ? call->deadline_unix : 0;
}

size_t dy_rpc_call_pending(const dy_rpc_call_t *call)
{
    return call && call->conn ? s_out_pending(call->conn) : 0;
}

/* The connection a live call may still write to, or NULL with *rc set. */
static s_conn_t *s_call_conn(dy_rpc_call_t *call, int *rc)
{
    if (call == NULL) {
        *rc = -EINVAL;
        return NULL;
    }
    if (call->finished || call->conn == NULL) {
        *rc = -EALREADY;
        return NULL;
    }
    if (call->conn->state != S_CONN_OPEN) {
        *rc = -ENOTCONN;
        return NULL;
    }
    return call->conn;
}

int dy_rpc_call_send(dy_rpc_call_t *call, const uint8_t *msg, size_t len)
{
    int rc = 0;
    s_conn_t *conn = s_call_conn(call, &rc);
    if (conn == NULL)
        return rc;
    if (s_out_pending(conn) > s_out_high(call->srv))
        return -ENOBUFS;
    rc = dy_wire_encode_message(&conn->out, msg, len);
    if (rc == 0)
        call->next_ping = s_mono_ms() + call->srv->conf.ping_interval_ms;
    return rc;
}

int dy_rpc_call_send_pb(dy_rpc_call_t *call, const ProtobufCMessage *msg)
{
    int rc = 0;
    s_conn_t *conn = s_call_conn(call, &rc);
    if (conn == NULL)
        return rc;
    if (msg == NULL)
        return -EINVAL;
    if (s_out_pending(conn) > s_out_high(call->srv))
        return -ENOBUFS;
    rc = dy_wire_encode_pb(&conn->out, msg);
    if (rc == 0)
        call->next_ping = s_mono_ms() + call->srv->conf.ping_interval_ms;
    return rc;
}

int dy_rpc_call_finish(dy_rpc_call_t *call, dy_wire_status_t code, dy_wire_reason_t reason,
                       const char *fmt, ...)
{
    if (call == NULL)
        return -EINVAL;
    if (call->finished)
        return -EALREADY;
    if (dy_wire_status_name((int)code) == NULL || dy_wire_reason_name(reason) == NULL)
        return -EINVAL;
    char msg[256] = "";
    if (fmt != NULL) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
    }
    int rc = 0;
    if (call->conn != NULL && call->conn->state == S_CONN_OPEN)
        rc = dy_wire_encode_status(&call->conn->out, code, msg, reason);
    s_call_end(call, true);
    return rc;
}

int dy_rpc_call_accept_upload(dy_rpc_call_t *call, uint64_t max_total)
{
    int rc = 0;
    s_conn_t *conn = s_call_conn(call, &rc);
    if (conn == NULL)
        return rc;
    if (call->m == NULL || call->m->kind != DY_RPC_CLIENT_STREAM || !call->got_request)
        return -EINVAL;
    if (call->accepted)
        return -EALREADY;
    rc = dy_wire_upload_rx_init(&call->rx, 0, 0, max_total);
    if (rc < 0)
        return rc;
    call->accepted = true;
    uint32_t n = call->srv->conf.upload_credit;
    rc = dy_wire_credit_grant(&call->credit, n);
    if (rc == 0)
        rc = dy_wire_encode_credit(&conn->out, n);
    conn->last_rx = s_mono_ms(); /* now the client may send: the idle timer restarts */
    return rc;
}

void dy_rpc_call_set_data(dy_rpc_call_t *call, void *data)
{
    if (call != NULL)
        call->data = data;
}

void *dy_rpc_call_data(const dy_rpc_call_t *call)
{
    return call ? call->data : NULL;
}
