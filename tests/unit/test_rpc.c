/* test_rpc.c - rpc.c over real mutual TLS on 127.0.0.1 (ephemeral ports), with the
 * server's reactor in a thread and real generated messages (GetComputation,
 * StreamActiveComputations, AdvanceComputation of wfa.measurement.system.v1alpha).
 *
 * Covered: unary OK and an error with reason; both sides' view of the peer identity;
 * unknown method; uploads of 0, 1, 1 MiB and 5.5 MiB bytes (1 and 4 MiB chunks, memory and
 * file bodies) seen exactly by the handler with the verified SHA-256; a header refused
 * before any chunk is sent; with a raw client made of wire.h and tls.h calls: a corrupted
 * trailer, a wrong length, no trailer, a truncated upload, a MESSAGE without credit, a
 * chunk over 4 MiB, a 1 GiB length prefix (refused without allocating), a deadline already
 * past, PINGs on a stream; server streams with ticks and a client cancel; idle and
 * handshake timeouts; deadline exceeded; call and byte rate limits per identity;
 * concurrent connections; an asynchronous handler answering from a watched descriptor
 * (and finishing twice); max_connections.
 *
 * Handlers run on the server thread and only record what they saw (under s_rec.mu); the
 * test thread asserts.  Server stats are read while the loop thread is paused.  The PKI
 * comes from $DY_SOURCE_ROOT/deploy/mkpki into a mkdtemp directory.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/ssl.h>

#include "control.pb-c.h"
#include "dy.h"
#include "rpc.h"
#include "system.pb-c.h"
#include "tls.h"
#include "wire.h"

#define M_GET "/wfa.measurement.system.v1alpha.Computations/GetComputation"
#define M_STREAM "/wfa.measurement.system.v1alpha.Computations/StreamActiveComputations"
#define M_ADVANCE "/wfa.measurement.system.v1alpha.ComputationControl/AdvanceComputation"
#define M_NOPE "/wfa.measurement.system.v1alpha.Computations/NoSuchMethod"

#define MIB ((size_t)1 << 20)

typedef Wfa__Measurement__System__V1alpha__GetComputationRequest get_req_t;
typedef Wfa__Measurement__System__V1alpha__Computation computation_t;
typedef Wfa__Measurement__System__V1alpha__StreamActiveComputationsRequest stream_req_t;
typedef Wfa__Measurement__System__V1alpha__StreamActiveComputationsResponse stream_resp_t;
typedef Wfa__Measurement__System__V1alpha__AdvanceComputationRequest adv_req_t;
typedef Wfa__Measurement__System__V1alpha__AdvanceComputationRequest__Header adv_header_t;
typedef Wfa__Measurement__System__V1alpha__AdvanceComputationRequest__BodyChunk adv_chunk_t;
typedef Wfa__Measurement__System__V1alpha__AdvanceComputationResponse adv_resp_t;

#define COMPUTATION_DESC (&wfa__measurement__system__v1alpha__computation__descriptor)
#define STREAM_RESP_DESC                                                                           \
    (&wfa__measurement__system__v1alpha__stream_active_computations_response__descriptor)
#define ADV_RESP_DESC (&wfa__measurement__system__v1alpha__advance_computation_response__descriptor)

static char s_dir[256]; /* mkdtemp root of this run */
static char s_pki[256]; /* s_dir/pki */
static dy_parties_t *s_parties;
static SSL_CTX *s_sctx;    /* the server: duchies/aggregator */
static SSL_CTX *s_cctx[2]; /* clients: duchies/worker1, duchies/worker2 */

/* ---- what the handlers saw (written on the server thread) ---- */

enum { H_GET = 0, H_STREAM = 1, H_ADV = 2, H_N = 3 };

static struct {
    pthread_mutex_t mu;
    int requests; /* GetComputation requests */
    char last_peer[DY_PARTY_ID_MAX];
    int headers, chunks, completes;
    int closes[H_N][2]; /* on_close per handler, [completed] */
    dy_buf_t committed; /* body of the last completed upload */
    uint8_t committed_sha[32];
    uint64_t committed_total;
    dy_rpc_call_t *async_call; /* a GetComputation kept for the watch callback */
    int finish_again_rc;       /* a second finish of the async call */
    int send_after_rc;         /* a send after its finish */
    int wakeups;               /* watch callback runs */
    int flood_rc;              /* the first failed send of a "flood" stream */
    size_t flood_pending;      /* dy_rpc_call_pending then */
} s_rec = {.mu = PTHREAD_MUTEX_INITIALIZER};

static int s_pipe[2] = {-1, -1}; /* the watched descriptor: a byte = answer the async call */

static void s_lock(void)
{
    pthread_mutex_lock(&s_rec.mu);
}

static void s_unlock(void)
{
    pthread_mutex_unlock(&s_rec.mu);
}

static void s_rec_reset(void)
{
    s_lock();
    s_rec.requests = s_rec.headers = s_rec.chunks = s_rec.completes = 0;
    memset(s_rec.closes, 0, sizeof(s_rec.closes));
    s_rec.last_peer[0] = '\0';
    dy_buf_free(&s_rec.committed);
    s_rec.committed_total = 0;
    memset(s_rec.committed_sha, 0, sizeof(s_rec.committed_sha));
    s_rec.async_call = NULL;
    s_rec.finish_again_rc = s_rec.send_after_rc = 1;
    s_rec.wakeups = 0;
    s_rec.flood_rc = 0;
    s_rec.flood_pending = 0;
    s_unlock();
}

static int64_t s_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Waits (up to 5 s) until expr, evaluated under the record lock, holds. */
#define S_WAIT(expr)                                                                               \
    do {                                                                                           \
        int64_t end_ = s_ms() + 5000;                                                              \
        bool ok_;                                                                                  \
        for (;;) {                                                                                 \
            s_lock();                                                                              \
            ok_ = (expr);                                                                          \
            s_unlock();                                                                            \
            if (ok_ || s_ms() > end_)                                                              \
                break;                                                                             \
            usleep(2000);                                                                          \
        }                                                                                          \
        if (!ok_)                                                                                  \
            fail_msg("timed out waiting for %s", #expr);                                           \
    } while (0)

static int s_read_locked(int *p)
{
    s_lock();
    int v = *p;
    s_unlock();
    return v;
}

/* ---- handlers ---- */

static int s_idx[H_N] = {H_GET, H_STREAM, H_ADV};

static void s_on_close(dy_rpc_call_t *call, bool completed, void *arg)
{
    int idx = *(int *)arg;
    void *data = dy_rpc_call_data(call);
    if (idx == H_ADV && data != NULL) {
        dy_buf_free(data);
        free(data);
    } else {
        free(data);
    }
    s_lock();
    s_rec.closes[idx][completed ? 1 : 0]++;
    if (s_rec.async_call == call)
        s_rec.async_call = NULL;
    s_unlock();
}

static void s_get_request(dy_rpc_call_t *call, const uint8_t *req, size_t len, void *arg)
{
    (void)arg;
    get_req_t *r =
        wfa__measurement__system__v1alpha__get_computation_request__unpack(NULL, len, req);
    if (r == NULL) {
        (void)dy_rpc_call_finish(call, DY_WIRE_STATUS_INVALID_ARGUMENT, DY_WIRE_REASON_NONE,
                                 "undecodable request");
        return;
    }
    s_lock();
    s_rec.requests++;
    snprintf(s_rec.last_peer, sizeof(s_rec.last_peer), "%s", dy_rpc_call_peer(call));
    s_unlock();
    if (strcmp(r->name, "computations/notready") == 0) {
        (void)dy_rpc_call_finish(call, DY_WIRE_STATUS_FAILED_PRECONDITION,
                                 DY_WIRE_REASON_STAGE_NOT_READY, "stage %s not ready", "setup");
    } else if (strcmp(r->name, "computations/slow") == 0) {
        /* never answered: the deadline ends it */
    } else if (strcmp(r->name, "computations/async") == 0) {
        s_lock();
        s_rec.async_call = call;
        s_unlock();
    } else {
        computation_t c = WFA__MEASUREMENT__SYSTEM__V1ALPHA__COMPUTATION__INIT;
        c.name = r->name;
        /* echo the caller's identity so the client sees what the server saw */
        c.aggregator_certificate = (char *)dy_rpc_call_peer(call);
        (void)dy_rpc_call_send_pb(call, &c.base);
        (void)dy_rpc_call_finish(call, DY_WIRE_STATUS_OK, DY_WIRE_REASON_NONE, NULL);
    }
    wfa__measurement__system__v1alpha__get_computation_request__free_unpacked(r, NULL);
}

/* The watched pipe: answers the kept GetComputation, then misuses the finished call. */
static void s_on_wakeup(int fd, void *arg)
{
    (void)arg;
    char b;
    (void)!read(fd, &b, 1);
    s_lock();
    dy_rpc_call_t *call = s_rec.async_call;
    s_rec.wakeups++;
    s_unlock();
    if (call == NULL)
        return;
    computation_t c = WFA__MEASUREMENT__SYSTEM__V1ALPHA__COMPUTATION__INIT;
    c.name = "computations/async";
    (void)dy_rpc_call_send_pb(call, &c.base);
    (void)dy_rpc_call_finish(call, DY_WIRE_STATUS_OK, DY_WIRE_REASON_NONE, "later");
    int again = dy_rpc_call_finish(call, DY_WIRE_STATUS_INTERNAL, DY_WIRE_REASON_NONE, "twice");
    int send = dy_rpc_call_send_pb(call, &c.base);
    s_lock();
    s_rec.finish_again_rc = again;
    s_rec.send_after_rc = send;
    s_unlock();
}

typedef struct {
    int sent, limit;
    bool flood; /* each tick sends 32 KiB items until the server refuses one */
} s_stream_t;

/* A "flood" stream to a client that does not read: sends until -ENOBUFS. */
static void s_stream_flood(dy_rpc_call_t *call)
{
    static uint8_t blob[32 * 1024];
    computation_t c = WFA__MEASUREMENT__SYSTEM__V1ALPHA__COMPUTATION__INIT;
    c.name = "computations/flood";
    c.measurement_spec.data = blob;
    c.measurement_spec.len = sizeof(blob);
    stream_resp_t r = WFA__MEASUREMENT__SYSTEM__V1ALPHA__STREAM_ACTIVE_COMPUTATIONS_RESPONSE__INIT;
    r.computation = &c;
    int rc;
    while ((rc = dy_rpc_call_send_pb(call, &r.base)) == 0)
        ;
    s_lock();
    if (s_rec.flood_rc == 0) {
        s_rec.flood_rc = rc;
        s_rec.flood_pending = dy_rpc_call_pending(call);
    }
    s_unlock();
}

static void s_stream_item(dy_rpc_call_t *call, s_stream_t *st)
{
    char name[64], token[32];
    snprintf(name, sizeof(name), "computations/item-%d", st->sent);
    snprintf(token, sizeof(token), "t%d", st->sent);
    computation_t c = WFA__MEASUREMENT__SYSTEM__V1ALPHA__COMPUTATION__INIT;
    c.name = name;
    stream_resp_t r = WFA__MEASUREMENT__SYSTEM__V1ALPHA__STREAM_ACTIVE_COMPUTATIONS_RESPONSE__INIT;
    r.computation = &c;
    r.continuation_token = token;
    if (dy_rpc_call_send_pb(call, &r.base) == 0)
        st->sent++;
    if (st->sent >= st->limit)
        (void)dy_rpc_call_finish(call, DY_WIRE_STATUS_OK, DY_WIRE_REASON_NONE, "end of stream");
}

static void s_stream_request(dy_rpc_call_t *call, const uint8_t *req, size_t len, void *arg)
{
    (void)arg;
    stream_req_t *r = wfa__measurement__system__v1alpha__stream_active_computations_request__unpack(
        NULL, len, req);
    s_stream_t *st = calloc(1, sizeof(*st));
    if (r == NULL || st == NULL) {
        free(st);
        (void)dy_rpc_call_finish(call, DY_WIRE_STATUS_INVALID_ARGUMENT, DY_WIRE_REASON_NONE, "bad");
    } else {
        st->flood = strcmp(r->continuation_token, "flood") == 0;
        st->limit = st->flood || strcmp(r->continuation_token, "forever") == 0
                        ? INT_MAX
                        : atoi(r->continuation_token);
        dy_rpc_call_set_data(call, st);
        s_stream_item(call, st);
        if (st->sent < st->limit)
            s_stream_item(call, st);
    }
    if (r != NULL)
        wfa__measurement__system__v1alpha__stream_active_computations_request__free_unpacked(r,
                                                                                             NULL);
}

static void s_stream_tick(dy_rpc_call_t *call, void *arg)
{
    (void)arg;
    s_stream_t *st = dy_rpc_call_data(call);
    if (st->flood)
        s_stream_flood(call);
    else
        s_stream_item(call, st);
}

static void s_adv_header(dy_rpc_call_t *call, const uint8_t *req, size_t len, void *arg)
{
    (void)arg;
    adv_req_t *r =
        wfa__measurement__system__v1alpha__advance_computation_request__unpack(NULL, len, req);
    s_lock();
    s_rec.headers++;
    s_unlock();
    if (r == NULL ||
        r->payload_case !=
            WFA__MEASUREMENT__SYSTEM__V1ALPHA__ADVANCE_COMPUTATION_REQUEST__PAYLOAD_HEADER) {
        (void)dy_rpc_call_finish(call, DY_WIRE_STATUS_INVALID_ARGUMENT, DY_WIRE_REASON_NONE,
                                 "no header");
    } else if (strcmp(r->header->name, "computations/refuse") == 0) {
        (void)dy_rpc_call_finish(call, DY_WIRE_STATUS_FAILED_PRECONDITION,
                                 DY_WIRE_REASON_STAGE_NOT_READY, "not ready for this upload");
    } else if (strcmp(r->header->name, "computations/noaccept") == 0) {
        /* keeps the call without granting credit */
    } else {
        dy_buf_t *body = calloc(1, sizeof(*body));
        dy_rpc_call_set_data(call, body);
        (void)dy_rpc_call_accept_upload(call, 0);
    }
    if (r != NULL)
        wfa__measurement__system__v1alpha__advance_computation_request__free_unpacked(r, NULL);
}

static int s_adv_chunk(dy_rpc_call_t *call, const uint8_t *data, size_t len, void *arg)
{
    (void)arg;
    s_lock();
    s_rec.chunks++;
    s_unlock();
    return dy_buf_append(dy_rpc_call_data(call), data, len);
}

static void s_adv_complete(dy_rpc_call_t *call, const uint8_t sha256[32], uint64_t total, void *arg)
{
    (void)arg;
    dy_buf_t *body = dy_rpc_call_data(call);
    s_lock();
    s_rec.completes++;
    dy_buf_free(&s_rec.committed);
    (void)dy_buf_append(&s_rec.committed, body->data, body->len);
    memcpy(s_rec.committed_sha, sha256, 32);
    s_rec.committed_total = total;
    s_unlock();
    adv_resp_t resp = WFA__MEASUREMENT__SYSTEM__V1ALPHA__ADVANCE_COMPUTATION_RESPONSE__INIT;
    (void)dy_rpc_call_send_pb(call, &resp.base);
    (void)dy_rpc_call_finish(call, DY_WIRE_STATUS_OK, DY_WIRE_REASON_NONE, NULL);
}

static const dy_rpc_method_t s_methods[] = {
    {.method = M_GET,
     .kind = DY_RPC_UNARY,
     .on_request = s_get_request,
     .on_close = s_on_close,
     .arg = &s_idx[H_GET]},
    {.method = M_STREAM,
     .kind = DY_RPC_SERVER_STREAM,
     .on_request = s_stream_request,
     .on_tick = s_stream_tick,
     .on_close = s_on_close,
     .arg = &s_idx[H_STREAM]},
    {.method = M_ADVANCE,
     .kind = DY_RPC_CLIENT_STREAM,
     .on_header = s_adv_header,
     .on_chunk = s_adv_chunk,
     .on_complete = s_adv_complete,
     .on_close = s_on_close,
     .arg = &s_idx[H_ADV]},
};

/* ---- the server thread ---- */

typedef struct {
    dy_rpc_server_t *srv;
    pthread_t th;
    volatile int stop;
    bool running; /* th is running the loop */
    int port;
} s_server_t;

static void *s_server_main(void *arg)
{
    s_server_t *s = arg;
    return (void *)(intptr_t)dy_rpc_server_run(s->srv, &s->stop);
}

static void s_server_resume(s_server_t *s)
{
    s->stop = 0;
    assert_int_equal(pthread_create(&s->th, NULL, s_server_main, s), 0);
    s->running = true;
}

/* Stops the loop thread (handlers no longer run) so the test may read the server. */
static void s_server_pause(s_server_t *s)
{
    void *ret = NULL;
    s->stop = 1;
    if (!s->running)
        return;
    s->running = false;
    assert_int_equal(pthread_join(s->th, &ret), 0);
    assert_int_equal((int)(intptr_t)ret, 0);
}

static void s_server_stop(s_server_t *s);

/* The running server lives here, not on a test's stack: a failed test leaves it running
 * and the next start (or the group teardown) stops it. */
static s_server_t s_srv;

static s_server_t *s_server_start(dy_rpc_server_conf_t conf)
{
    char err[256] = "";
    s_server_t *s = &s_srv;
    if (s->srv != NULL)
        s_server_stop(s);
    s_rec_reset();
    conf.ctx = s_sctx;
    conf.host = "127.0.0.1";
    conf.port = 0;
    s->srv = dy_rpc_server_new(&conf, s_methods, DY_ARRAY_LEN(s_methods), err, sizeof(err));
    if (s->srv == NULL)
        fail_msg("server: %s", err);
    s->port = dy_rpc_server_port(s->srv);
    assert_true(s->port > 0);
    assert_int_equal(dy_rpc_server_watch(s->srv, s_pipe[0], s_on_wakeup, NULL), 0);
    assert_int_equal(dy_rpc_server_watch(s->srv, s_pipe[0], s_on_wakeup, NULL), -EEXIST);
    s_server_resume(s);
    return s;
}

static void s_server_stop(s_server_t *s)
{
    if (s->srv == NULL)
        return;
    s_server_pause(s);
    dy_rpc_server_destroy(&s->srv);
    assert_null(s->srv);
}

static void s_server_stats(s_server_t *s, dy_rpc_server_stats_t *st, dy_rpc_server_mem_t *mem)
{
    s_server_pause(s);
    dy_rpc_server_stats(s->srv, st);
    if (mem != NULL)
        dy_rpc_server_mem(s->srv, mem);
    s_server_resume(s);
}

/* ---- clients ---- */

static dy_rpc_client_t *s_client_try(int who, int port, char *err, size_t errlen)
{
    dy_rpc_client_conf_t conf = {
        .ctx = s_cctx[who], .host = "127.0.0.1", .port = port, .connect_timeout_ms = 5000};
    return dy_rpc_client_new(&conf, err, errlen);
}

static dy_rpc_client_t *s_client(int who, int port)
{
    char err[256] = "";
    dy_rpc_client_t *c = s_client_try(who, port, err, sizeof(err));
    if (c == NULL)
        fail_msg("client: %s", err);
    return c;
}

/* GetComputation(name); returns the call's result and frees the response after checking
 * that its name echoes the request. */
static int s_get(dy_rpc_client_t *c, const char *name, int timeout_ms, dy_rpc_status_t *st)
{
    get_req_t req = WFA__MEASUREMENT__SYSTEM__V1ALPHA__GET_COMPUTATION_REQUEST__INIT;
    req.name = (char *)name;
    ProtobufCMessage *resp = NULL;
    int rc = dy_rpc_unary(c, M_GET, &req.base, COMPUTATION_DESC, &resp, timeout_ms, st);
    if (rc == 0) {
        computation_t *comp = (computation_t *)resp;
        if (strcmp(comp->name, name) != 0)
            rc = -2;
        protobuf_c_message_free_unpacked(resp, NULL);
    }
    return rc;
}

/* Packs AdvanceComputationRequest{header{name}}. */
static void s_adv_header_req(adv_req_t *req, adv_header_t *h, const char *name)
{
    wfa__measurement__system__v1alpha__advance_computation_request__init(req);
    wfa__measurement__system__v1alpha__advance_computation_request__header__init(h);
    h->name = (char *)name;
    req->payload_case =
        WFA__MEASUREMENT__SYSTEM__V1ALPHA__ADVANCE_COMPUTATION_REQUEST__PAYLOAD_HEADER;
    req->header = h;
}

static int s_upload(dy_rpc_client_t *c, const char *name, const uint8_t *data, size_t len, int fd,
                    size_t chunk, dy_rpc_status_t *st)
{
    adv_req_t req;
    adv_header_t h;
    s_adv_header_req(&req, &h, name);
    dy_rpc_body_t body = {.data = data, .len = len, .fd = fd, .chunk_size = chunk};
    ProtobufCMessage *resp = NULL;
    int rc = dy_rpc_upload(c, M_ADVANCE, &req.base, &body, ADV_RESP_DESC, &resp, 10000, st);
    if (resp != NULL)
        protobuf_c_message_free_unpacked(resp, NULL);
    return rc;
}

/* Deterministic test bytes. */
static uint8_t *s_bytes(size_t n)
{
    uint8_t *p = malloc(n ? n : 1);
    assert_non_null(p);
    uint64_t x = 0x9e3779b97f4a7c15ull;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        p[i] = (uint8_t)x;
    }
    return p;
}

/* ---- a raw client from wire.h and tls.h, for what the real client never sends ---- */

typedef struct {
    SSL *ssl;
    dy_wire_reader_t rd;
    uint8_t in[16384];
    size_t off, len;
} s_raw_t;

static void s_raw_open(s_raw_t *r, int port)
{
    char err[256] = "";
    memset(r, 0, sizeof(*r));
    r->ssl = dy_tls_connect(s_cctx[0], "127.0.0.1", (uint16_t)port, 5000, err, sizeof(err));
    if (r->ssl == NULL)
        fail_msg("raw connect: %s", err);
    struct timeval tv = {.tv_sec = 5};
    assert_int_equal(setsockopt(SSL_get_fd(r->ssl), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)), 0);
    dy_wire_reader_init(&r->rd, 0);
}

static void s_raw_write(s_raw_t *r, const void *data, size_t n)
{
    const uint8_t *p = data;
    while (n > 0) {
        int w = SSL_write(r->ssl, p, (int)n);
        assert_true(w > 0);
        p += w;
        n -= (size_t)w;
    }
}

static void s_raw_send(s_raw_t *r, dy_buf_t *b)
{
    s_raw_write(r, b->data, b->len);
    b->len = 0;
}

/* The next frame from the server, or NULL at EOF or error. */
static Halo__Wire__V1__Frame *s_raw_frame(s_raw_t *r)
{
    for (;;) {
        if (r->off < r->len) {
            size_t used = 0, flen = 0;
            const uint8_t *fb = NULL;
            int rc =
                dy_wire_reader_feed(&r->rd, r->in + r->off, r->len - r->off, &used, &fb, &flen);
            r->off += used;
            assert_true(rc >= 0);
            if (rc == 1) {
                Halo__Wire__V1__Frame *f = NULL;
                assert_int_equal(dy_wire_frame_decode(fb, flen, 0, &f, NULL), 0);
                return f;
            }
            continue;
        }
        r->off = r->len = 0;
        int n = SSL_read(r->ssl, r->in, (int)sizeof(r->in));
        if (n <= 0)
            return NULL;
        r->len = (size_t)n;
    }
}

/* Skips CREDIT and PING frames; the next other frame must be a STATUS: its code, with its
 * message copied to msg (may be NULL). */
static int s_raw_status(s_raw_t *r, char *msg, size_t cap)
{
    for (;;) {
        Halo__Wire__V1__Frame *f = s_raw_frame(r);
        if (f == NULL)
            fail_msg("no STATUS from the server");
        if (f->kind == HALO__WIRE__V1__KIND__CREDIT || f->kind == HALO__WIRE__V1__KIND__PING) {
            dy_wire_frame_free(&f);
            continue;
        }
        assert_int_equal(f->kind, HALO__WIRE__V1__KIND__STATUS);
        int code = f->status->code;
        if (msg != NULL)
            snprintf(msg, cap, "%s", f->status->message);
        dy_wire_frame_free(&f);
        return code;
    }
}

static void s_raw_close(s_raw_t *r)
{
    dy_tls_close(&r->ssl);
    dy_wire_reader_free(&r->rd);
}

/* Queues CALL_START(method) and AdvanceComputationRequest{header{name}}. */
static void s_raw_upload_start(dy_buf_t *b, const char *name)
{
    adv_req_t req;
    adv_header_t h;
    s_adv_header_req(&req, &h, name);
    assert_int_equal(dy_wire_encode_call_start(b, M_ADVANCE, "raw-1", 0), 0);
    assert_int_equal(dy_wire_encode_pb(b, &req.base), 0);
}

/* Queues a body chunk as protobuf-c packs it (the real client packs it by hand). */
static void s_raw_chunk(dy_buf_t *b, const uint8_t *data, size_t n)
{
    adv_req_t req;
    adv_chunk_t ch;
    wfa__measurement__system__v1alpha__advance_computation_request__init(&req);
    wfa__measurement__system__v1alpha__advance_computation_request__body_chunk__init(&ch);
    ch.partial_data.data = (uint8_t *)data;
    ch.partial_data.len = n;
    req.payload_case =
        WFA__MEASUREMENT__SYSTEM__V1ALPHA__ADVANCE_COMPUTATION_REQUEST__PAYLOAD_BODY_CHUNK;
    req.body_chunk = &ch;
    assert_int_equal(dy_wire_encode_pb(b, &req.base), 0);
}

static void s_raw_trailer(dy_buf_t *b, const uint8_t sha[32], uint64_t total)
{
    adv_req_t req;
    Halo__Wire__V1__Trailer t;
    wfa__measurement__system__v1alpha__advance_computation_request__init(&req);
    halo__wire__v1__trailer__init(&t);
    t.sha256.data = (uint8_t *)sha;
    t.sha256.len = 32;
    t.total_length = total;
    req.payload_case =
        WFA__MEASUREMENT__SYSTEM__V1ALPHA__ADVANCE_COMPUTATION_REQUEST__PAYLOAD_TRAILER;
    req.trailer = &t;
    assert_int_equal(dy_wire_encode_pb(b, &req.base), 0);
}

/* Reads frames until a CREDIT arrives. */
static void s_raw_wait_credit(s_raw_t *r)
{
    Halo__Wire__V1__Frame *f = s_raw_frame(r);
    assert_non_null(f);
    assert_int_equal(f->kind, HALO__WIRE__V1__KIND__CREDIT);
    assert_true(f->credit > 0);
    dy_wire_frame_free(&f);
}

/* ---- setup ---- */

static int s_rm(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static SSL_CTX *s_ctx(bool server, const char *party)
{
    char c[PATH_MAX], k[PATH_MAX], a[PATH_MAX], err[256] = "";
    snprintf(c, sizeof(c), "%s/%s/tls.pem", s_pki, party);
    snprintf(k, sizeof(k), "%s/%s/tls.key", s_pki, party);
    snprintf(a, sizeof(a), "%s/trusted-ca.pem", s_pki);
    dy_tls_conf_t conf = {.cert_path = c,
                          .key_path = k,
                          .trusted_ca_path = a,
                          .parties = s_parties,
                          .expected_name = server ? NULL : "localhost"};
    SSL_CTX *ctx = server ? dy_tls_server_ctx(&conf, err, sizeof(err))
                          : dy_tls_client_ctx(&conf, err, sizeof(err));
    if (ctx == NULL)
        fprintf(stderr, "# context %s: %s\n", party, err);
    return ctx;
}

static int group_setup(void **state)
{
    (void)state;
    const char *root = getenv("DY_SOURCE_ROOT");
    if (root == NULL) {
        fprintf(stderr, "# DY_SOURCE_ROOT is not set\n");
        return -1;
    }
    const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    if (strlen(tmp) > 200)
        tmp = "/tmp";
    snprintf(s_dir, sizeof(s_dir), "%s/dy-rpc-XXXXXX", tmp);
    if (mkdtemp(s_dir) == NULL)
        return -1;
    snprintf(s_pki, sizeof(s_pki), "%.240s/pki", s_dir);
    char cmd[3 * PATH_MAX];
    snprintf(cmd, sizeof(cmd),
             "'%s/deploy/mkpki' --dir '%s' --duchies worker1,worker2,aggregator >/dev/null 2>&1",
             root, s_pki);
    int st = system(cmd);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        fprintf(stderr, "# deploy/mkpki failed\n");
        return -1;
    }
    char p[PATH_MAX], err[256] = "";
    snprintf(p, sizeof(p), "%s/parties.txt", s_pki);
    s_parties = dy_parties_load(p, err, sizeof(err));
    if (s_parties == NULL) {
        fprintf(stderr, "# %s\n", err);
        return -1;
    }
    s_sctx = s_ctx(true, "aggregator");
    s_cctx[0] = s_ctx(false, "worker1");
    s_cctx[1] = s_ctx(false, "worker2");
    if (pipe(s_pipe) < 0)
        return -1;
    return s_sctx && s_cctx[0] && s_cctx[1] ? 0 : -1;
}

static int group_teardown(void **state)
{
    (void)state;
    s_server_stop(&s_srv);
    SSL_CTX_free(s_sctx);
    SSL_CTX_free(s_cctx[0]);
    SSL_CTX_free(s_cctx[1]);
    dy_parties_destroy(&s_parties);
    dy_buf_free(&s_rec.committed);
    if (s_pipe[0] >= 0) {
        close(s_pipe[0]);
        close(s_pipe[1]);
    }
    if (s_dir[0])
        nftw(s_dir, s_rm, 16, FTW_DEPTH | FTW_PHYS);
    return 0;
}

/* ---- tests ---- */

static void test_unary(void **state)
{
    (void)state;
    s_server_t *s = s_server_start((dy_rpc_server_conf_t){0});
    dy_rpc_client_t *c = s_client(0, s->port);
    assert_string_equal(dy_rpc_client_peer(c), "duchies/aggregator");

    get_req_t req = WFA__MEASUREMENT__SYSTEM__V1ALPHA__GET_COMPUTATION_REQUEST__INIT;
    req.name = "computations/abc";
    ProtobufCMessage *resp = NULL;
    dy_rpc_status_t st;
    assert_int_equal(dy_rpc_unary(c, M_GET, &req.base, COMPUTATION_DESC, &resp, 5000, &st), 0);
    assert_int_equal(st.code, DY_WIRE_STATUS_OK);
    computation_t *comp = (computation_t *)resp;
    assert_string_equal(comp->name, "computations/abc");
    assert_string_equal(comp->aggregator_certificate, "duchies/worker1");
    protobuf_c_message_free_unpacked(resp, NULL);
    s_lock();
    assert_string_equal(s_rec.last_peer, "duchies/worker1");
    s_unlock();

    /* An error with its reason, and the connection stays usable. */
    resp = NULL;
    req.name = "computations/notready";
    assert_int_equal(dy_rpc_unary(c, M_GET, &req.base, COMPUTATION_DESC, &resp, 5000, &st), -1);
    assert_null(resp);
    assert_int_equal(st.code, DY_WIRE_STATUS_FAILED_PRECONDITION);
    assert_int_equal(st.reason, DY_WIRE_REASON_STAGE_NOT_READY);
    assert_string_equal(st.message, "stage setup not ready");
    assert_int_equal(s_get(c, "computations/again", 5000, &st), 0);

    /* The other identity is seen as such. */
    dy_rpc_client_t *c2 = s_client(1, s->port);
    assert_int_equal(s_get(c2, "computations/two", 5000, &st), 0);
    s_lock();
    assert_string_equal(s_rec.last_peer, "duchies/worker2");
    s_unlock();
    S_WAIT(s_rec.closes[H_GET][1] == 4 && s_rec.closes[H_GET][0] == 0);
    dy_rpc_client_destroy(&c2);
    dy_rpc_client_destroy(&c);
    assert_null(c);
    s_server_stop(s);
}

static void test_unimplemented(void **state)
{
    (void)state;
    s_server_t *s = s_server_start((dy_rpc_server_conf_t){0});
    dy_rpc_client_t *c = s_client(0, s->port);
    get_req_t req = WFA__MEASUREMENT__SYSTEM__V1ALPHA__GET_COMPUTATION_REQUEST__INIT;
    req.name = "computations/abc";
    ProtobufCMessage *resp = NULL;
    dy_rpc_status_t st;
    assert_int_equal(dy_rpc_unary(c, M_NOPE, &req.base, COMPUTATION_DESC, &resp, 5000, &st), -1);
    assert_int_equal(st.code, DY_WIRE_STATUS_UNIMPLEMENTED);
    assert_null(resp);
    /* Near misses of a known name are unknown too (exact match). */
    assert_int_equal(dy_rpc_unary(c, M_GET "s", &req.base, COMPUTATION_DESC, &resp, 5000, &st), -1);
    assert_int_equal(st.code, DY_WIRE_STATUS_UNIMPLEMENTED);
    /* The wrong kind of call for a method: a unary call to an upload method has no header. */
    get_req_t empty = WFA__MEASUREMENT__SYSTEM__V1ALPHA__GET_COMPUTATION_REQUEST__INIT;
    assert_int_equal(dy_rpc_unary(c, M_ADVANCE, &empty.base, ADV_RESP_DESC, &resp, 5000, &st), -1);
    assert_int_equal(st.code, DY_WIRE_STATUS_INVALID_ARGUMENT);
    assert_int_equal(s_get(c, "computations/after", 5000, &st), 0);
    s_lock();
    assert_int_equal(s_rec.requests, 1);
    assert_int_equal(s_rec.headers, 0);
    s_unlock();
    dy_rpc_client_destroy(&c);
    s_server_stop(s);
}

static void test_upload_sizes(void **state)
{
    (void)state;
    s_server_t *s = s_server_start((dy_rpc_server_conf_t){.upload_credit = 2});
    dy_rpc_client_t *c = s_client(0, s->port);
    size_t big = 5 * MIB + MIB / 2;
    uint8_t *data = s_bytes(big);
    struct {
        size_t len, chunk;
        bool from_file;
        int chunks;
    } cases[] = {
        {0, 0, false, 0},        {1, 0, false, 1},         {MIB, MIB, false, 1},
        {big, MIB, false, 6},    {big, 4 * MIB, false, 2}, {big, 4 * MIB, true, 2},
        {MIB + 7, MIB, true, 2}, {0, 0, true, 0},
    };
    for (size_t i = 0; i < DY_ARRAY_LEN(cases); i++) {
        int fd = -1;
        if (cases[i].from_file) {
            char p[PATH_MAX];
            snprintf(p, sizeof(p), "%s/body-%zu", s_dir, i);
            FILE *f = fopen(p, "w");
            assert_non_null(f);
            assert_int_equal(fwrite(data, 1, cases[i].len, f), cases[i].len);
            fclose(f);
            fd = open(p, O_RDONLY);
            assert_true(fd >= 0);
        }
        s_lock();
        int chunks0 = s_rec.chunks, completes0 = s_rec.completes;
        s_unlock();
        dy_rpc_status_t st;
        int rc = s_upload(c, "computations/up", data, cases[i].len, fd, cases[i].chunk, &st);
        if (rc != 0)
            fail_msg("case %zu: %d %s", i, st.code, st.message);
        if (fd >= 0)
            close(fd);
        uint8_t sha[32];
        assert_int_equal(dy_wire_sha256(data, cases[i].len, sha), 0);
        s_lock();
        assert_int_equal(s_rec.completes, completes0 + 1);
        assert_int_equal(s_rec.chunks - chunks0, cases[i].chunks);
        assert_int_equal(s_rec.committed.len, cases[i].len);
        assert_int_equal(s_rec.committed_total, cases[i].len);
        if (cases[i].len > 0)
            assert_memory_equal(s_rec.committed.data, data, cases[i].len);
        assert_memory_equal(s_rec.committed_sha, sha, 32);
        s_unlock();
    }
    S_WAIT(s_rec.closes[H_ADV][1] == (int)DY_ARRAY_LEN(cases));
    s_lock();
    assert_int_equal(s_rec.closes[H_ADV][0], 0);
    s_unlock();
    free(data);
    dy_rpc_client_destroy(&c);
    s_server_stop(s);
}

static void test_upload_refused_header(void **state)
{
    (void)state;
    s_server_t *s = s_server_start((dy_rpc_server_conf_t){0});
    dy_rpc_client_t *c = s_client(0, s->port);
    uint8_t *data = s_bytes(2 * MIB);
    dy_rpc_server_stats_t st0, st1;
    s_server_stats(s, &st0, NULL);
    dy_rpc_status_t st;
    assert_int_equal(s_upload(c, "computations/refuse", data, 2 * MIB, -1, 0, &st), -1);
    assert_int_equal(st.code, DY_WIRE_STATUS_FAILED_PRECONDITION);
    assert_int_equal(st.reason, DY_WIRE_REASON_STAGE_NOT_READY);
    /* Give a wrongly sent chunk time to arrive, then check none did. */
    usleep(100 * 1000);
    s_server_stats(s, &st1, NULL);
    assert_true(st1.bytes_in - st0.bytes_in < 4096);
    s_lock();
    assert_int_equal(s_rec.headers, 1);
    assert_int_equal(s_rec.chunks, 0);
    assert_int_equal(s_rec.completes, 0);
    assert_int_equal(s_rec.closes[H_ADV][1], 1); /* the handler finished it */
    s_unlock();
    /* The same connection then uploads normally. */
    assert_int_equal(s_upload(c, "computations/ok", data, 2 * MIB, -1, 0, &st), 0);
    s_lock();
    assert_int_equal(s_rec.chunks, 2);
    assert_int_equal(s_rec.completes, 1);
    s_unlock();
    free(data);
    dy_rpc_client_destroy(&c);
    s_server_stop(s);
}

static void test_upload_bad_trailer(void **state)
{
    (void)state;
    s_server_t *s = s_server_start((dy_rpc_server_conf_t){0});
    s_raw_t r;
    s_raw_open(&r, s->port);
    dy_buf_t b = {0};
    uint8_t data[100], sha[32];
    memset(data, 0x5a, sizeof(data));
    assert_int_equal(dy_wire_sha256(data, sizeof(data), sha), 0);
    char msg[256];

    /* Control: the right trailer commits. */
    s_raw_upload_start(&b, "computations/t0");
    s_raw_send(&r, &b);
    s_raw_wait_credit(&r);
    s_raw_chunk(&b, data, sizeof(data));
    s_raw_trailer(&b, sha, sizeof(data));
    assert_int_equal(dy_wire_encode_bare(&b, HALO__WIRE__V1__KIND__HALF_CLOSE), 0);
    s_raw_send(&r, &b);
    Halo__Wire__V1__Frame *f = s_raw_frame(&r);
    assert_non_null(f);
    assert_int_equal(f->kind, HALO__WIRE__V1__KIND__MESSAGE); /* the response */
    dy_wire_frame_free(&f);
    assert_int_equal(s_raw_status(&r, msg, sizeof(msg)), DY_WIRE_STATUS_OK);

    /* A corrupted SHA-256, then a wrong length: DATA_LOSS, nothing committed. */
    for (int i = 0; i < 2; i++) {
        uint8_t bad[32];
        memcpy(bad, sha, 32);
        if (i == 0)
            bad[7] ^= 1;
        s_raw_upload_start(&b, "computations/t1");
        s_raw_send(&r, &b);
        s_raw_wait_credit(&r);
        s_raw_chunk(&b, data, sizeof(data));
        s_raw_trailer(&b, bad, i == 0 ? sizeof(data) : sizeof(data) + 1);
        assert_int_equal(dy_wire_encode_bare(&b, HALO__WIRE__V1__KIND__HALF_CLOSE), 0);
        s_raw_send(&r, &b);
        assert_int_equal(s_raw_status(&r, msg, sizeof(msg)), DY_WIRE_STATUS_DATA_LOSS);
    }
    /* No trailer at all: INVALID_ARGUMENT, nothing committed. */
    s_raw_upload_start(&b, "computations/t2");
    s_raw_send(&r, &b);
    s_raw_wait_credit(&r);
    s_raw_chunk(&b, data, sizeof(data));
    assert_int_equal(dy_wire_encode_bare(&b, HALO__WIRE__V1__KIND__HALF_CLOSE), 0);
    s_raw_send(&r, &b);
    assert_int_equal(s_raw_status(&r, msg, sizeof(msg)), DY_WIRE_STATUS_INVALID_ARGUMENT);
    assert_non_null(strstr(msg, "trailer"));

    S_WAIT(s_rec.closes[H_ADV][0] == 3);
    s_lock();
    assert_int_equal(s_rec.completes, 1);
    assert_int_equal(s_rec.closes[H_ADV][1], 1);
    assert_int_equal(s_rec.chunks, 4);
    s_unlock();
    dy_buf_free(&b);
    s_raw_close(&r);
    s_server_stop(s);
}

static void test_upload_truncated(void **state)
{
    (void)state;
    s_server_t *s = s_server_start((dy_rpc_server_conf_t){0});
    s_raw_t r;
    s_raw_open(&r, s->port);
    dy_buf_t b = {0};
    uint8_t *data = s_bytes(MIB);
    s_raw_upload_start(&b, "computations/cut");
    s_raw_send(&r, &b);
    s_raw_wait_credit(&r);
    s_raw_chunk(&b, data, MIB);
    s_raw_send(&r, &b);
    S_WAIT(s_rec.chunks == 1);
    /* Half of the next chunk's frame, then the client goes away. */
    s_raw_chunk(&b, data, MIB);
    s_raw_write(&r, b.data, b.len / 2);
    b.len = 0;
    s_raw_close(&r);
    S_WAIT(s_rec.closes[H_ADV][0] == 1);
    s_lock();
    assert_int_equal(s_rec.chunks, 1);
    assert_int_equal(s_rec.completes, 0);
    assert_int_equal(s_rec.closes[H_ADV][1], 0);
    s_unlock();
    free(data);
    dy_buf_free(&b);
    s_server_stop(s);
}

static void test_upload_credit_and_chunk_size(void **state)
{
    (void)state;
    s_server_t *s = s_server_start((dy_rpc_server_conf_t){0});
    s_raw_t r;
    s_raw_open(&r, s->port);
    dy_buf_t b = {0};
    uint8_t small[10] = {1, 2, 3};
    char msg[256];

    /* A chunk sent before the server granted credit. */
    s_raw_upload_start(&b, "computations/noaccept");
    s_raw_chunk(&b, small, sizeof(small));
    s_raw_send(&r, &b);
    assert_int_equal(s_raw_status(&r, msg, sizeof(msg)), DY_WIRE_STATUS_INVALID_ARGUMENT);
    assert_non_null(strstr(msg, "credit"));
    S_WAIT(s_rec.closes[H_ADV][0] == 1);

    /* A chunk above 4 MiB (the frame itself fits max_frame). */
    uint8_t *big = s_bytes(DY_WIRE_CHUNK_MAX + 1);
    s_raw_upload_start(&b, "computations/big");
    s_raw_send(&r, &b);
    s_raw_wait_credit(&r);
    s_raw_chunk(&b, big, DY_WIRE_CHUNK_MAX + 1);
    s_raw_send(&r, &b);
    assert_int_equal(s_raw_status(&r, msg, sizeof(msg)), DY_WIRE_STATUS_INVALID_ARGUMENT);
    assert_non_null(strstr(msg, "4 MiB"));
    S_WAIT(s_rec.closes[H_ADV][0] == 2);

    /* A first message that is not a header. */
    assert_int_equal(dy_wire_encode_call_start(&b, M_ADVANCE, "raw-2", 0), 0);
    s_raw_chunk(&b, small, sizeof(small));
    s_raw_send(&r, &b);
    assert_int_equal(s_raw_status(&r, msg, sizeof(msg)), DY_WIRE_STATUS_INVALID_ARGUMENT);

    /* The connection survived all three (call-level errors). */
    s_lock();
    assert_int_equal(s_rec.chunks, 0);
    assert_int_equal(s_rec.completes, 0);
    s_unlock();
    s_raw_close(&r);
    free(big);
    dy_buf_free(&b);
    s_server_stop(s);
}

/* ASan's allocator keeps freed memory in quarantine, so RSS says nothing there; the
 * reader_peak check above holds in every build. */
static bool s_sanitized(void)
{
#if defined(__SANITIZE_ADDRESS__)
    return true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
    return true;
#endif
#endif
    return getenv("DY_TEST_NO_RSS") != NULL;
}

static long s_rss_kib(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    assert_non_null(f);
    long size = 0, rss = 0;
    assert_int_equal(fscanf(f, "%ld %ld", &size, &rss), 2);
    fclose(f);
    return rss * (sysconf(_SC_PAGESIZE) / 1024);
}

static void test_oversized_prefix(void **state)
{
    (void)state;
    s_server_t *s = s_server_start((dy_rpc_server_conf_t){0});
    long rss0 = s_rss_kib();
    s_raw_t r;
    s_raw_open(&r, s->port);
    /* 1 GiB announced, then 64 KiB of it. */
    uint8_t *junk = calloc(1, 4 + 65536);
    assert_non_null(junk);
    junk[0] = 0x40;
    s_raw_write(&r, junk, 4 + 65536);
    char msg[256];
    assert_int_equal(s_raw_status(&r, msg, sizeof(msg)), DY_WIRE_STATUS_RESOURCE_EXHAUSTED);
    assert_null(s_raw_frame(&r)); /* then closed */
    long rss1 = s_rss_kib();
    dy_rpc_server_stats_t st;
    dy_rpc_server_mem_t mem;
    s_server_stats(s, &st, &mem);
    assert_int_equal(st.oversized, 1);
    assert_true(mem.reader_peak <= 64 * 1024);
    if (!s_sanitized())
        assert_true(rss1 - rss0 < 1024);
    /* Connection gone on the server side too. */
    for (int i = 0; i < 100 && st.connections != 0; i++) {
        usleep(10 * 1000);
        s_server_stats(s, &st, NULL);
    }
    assert_int_equal(st.connections, 0);
    free(junk);
    s_raw_close(&r);
    s_server_stop(s);
}

static void test_server_stream(void **state)
{
    (void)state;
    s_server_t *s = s_server_start((dy_rpc_server_conf_t){.tick_ms = 40, .ping_interval_ms = 15});
    dy_rpc_client_t *c = s_client(0, s->port);
    stream_req_t req = WFA__MEASUREMENT__SYSTEM__V1ALPHA__STREAM_ACTIVE_COMPUTATIONS_REQUEST__INIT;
    dy_rpc_status_t st;

    /* Five items (two at once, three from ticks), then OK. */
    req.continuation_token = "5";
    assert_int_equal(dy_rpc_stream_open(c, M_STREAM, &req.base, 5000, &st), 0);
    for (int i = 0; i < 5; i++) {
        ProtobufCMessage *m = NULL;
        assert_int_equal(dy_rpc_stream_next(c, STREAM_RESP_DESC, &m, 2000, &st), 1);
        stream_resp_t *item = (stream_resp_t *)m;
        char want[64];
        snprintf(want, sizeof(want), "computations/item-%d", i);
        assert_string_equal(item->computation->name, want);
        protobuf_c_message_free_unpacked(m, NULL);
    }
    ProtobufCMessage *m = NULL;
    assert_int_equal(dy_rpc_stream_next(c, STREAM_RESP_DESC, &m, 2000, &st), 0);
    assert_null(m);
    assert_int_equal(st.code, DY_WIRE_STATUS_OK);
    assert_string_equal(st.message, "end of stream");
    S_WAIT(s_rec.closes[H_STREAM][1] == 1);

    /* An endless stream, cancelled by the client after three items. */
    req.continuation_token = "forever";
    assert_int_equal(dy_rpc_stream_open(c, M_STREAM, &req.base, 5000, &st), 0);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(dy_rpc_stream_next(c, STREAM_RESP_DESC, &m, 2000, &st), 1);
        protobuf_c_message_free_unpacked(m, NULL);
    }
    assert_int_equal(dy_rpc_cancel(c), 0);
    S_WAIT(s_rec.closes[H_STREAM][0] == 1);
    assert_int_equal(dy_rpc_stream_next(c, STREAM_RESP_DESC, &m, 100, &st), -1);
    /* The connection goes on. */
    assert_int_equal(s_get(c, "computations/after-stream", 5000, &st), 0);

    /* PINGs interleave with items on an open stream (seen with a raw client). */
    s_raw_t r;
    s_raw_open(&r, s->port);
    dy_buf_t b = {0};
    assert_int_equal(dy_wire_encode_call_start(&b, M_STREAM, "raw-3", 0), 0);
    assert_int_equal(dy_wire_encode_pb(&b, &req.base), 0);
    assert_int_equal(dy_wire_encode_bare(&b, HALO__WIRE__V1__KIND__HALF_CLOSE), 0);
    s_raw_send(&r, &b);
    int pings = 0, items = 0;
    for (int i = 0; i < 40 && pings == 0; i++) {
        Halo__Wire__V1__Frame *f = s_raw_frame(&r);
        assert_non_null(f);
        pings += f->kind == HALO__WIRE__V1__KIND__PING;
        items += f->kind == HALO__WIRE__V1__KIND__MESSAGE;
        dy_wire_frame_free(&f);
    }
    assert_true(pings > 0);
    assert_true(items >= 2);
    assert_int_equal(dy_wire_encode_bare(&b, HALO__WIRE__V1__KIND__CANCEL), 0);
    s_raw_send(&r, &b);
    assert_int_equal(s_raw_status(&r, NULL, 0), DY_WIRE_STATUS_CANCELLED);
    S_WAIT(s_rec.closes[H_STREAM][0] == 2);
    dy_buf_free(&b);
    s_raw_close(&r);
    dy_rpc_client_destroy(&c);
    s_server_stop(s);
}

static void test_timeouts(void **state)
{
    (void)state;
    s_server_t *s = s_server_start((dy_rpc_server_conf_t){.idle_timeout_ms = 300,
                                                          .handshake_timeout_ms = 300,
                                                          .tick_ms = 100,
                                                          .ping_interval_ms = 50});
    /* An idle connection: STATUS UNAVAILABLE after ~300 ms, then closed. */
    s_raw_t r;
    int64_t t0 = s_ms();
    s_raw_open(&r, s->port);
    char msg[256];
    assert_int_equal(s_raw_status(&r, msg, sizeof(msg)), DY_WIRE_STATUS_UNAVAILABLE);
    int64_t waited = s_ms() - t0;
    assert_true(waited >= 250);
    assert_true(waited < 3000);
    assert_null(s_raw_frame(&r));
    s_raw_close(&r);

    /* A TCP connection that never starts TLS is dropped after the handshake timeout. */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)s->port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    t0 = s_ms();
    assert_int_equal(poll(&pfd, 1, 3000), 1);
    char byte;
    assert_true(recv(fd, &byte, 1, 0) <= 0);
    assert_true(s_ms() - t0 >= 250);
    close(fd);

    /* A server stream outlives the idle timeout: the client is silent by design. */
    dy_rpc_client_t *c = s_client(0, s->port);
    stream_req_t req = WFA__MEASUREMENT__SYSTEM__V1ALPHA__STREAM_ACTIVE_COMPUTATIONS_REQUEST__INIT;
    req.continuation_token = "9"; /* 2 at once + 7 ticks of 100 ms */
    dy_rpc_status_t st;
    assert_int_equal(dy_rpc_stream_open(c, M_STREAM, &req.base, 5000, &st), 0);
    int n = 0;
    ProtobufCMessage *m = NULL;
    int rc;
    while ((rc = dy_rpc_stream_next(c, STREAM_RESP_DESC, &m, 1000, &st)) == 1) {
        protobuf_c_message_free_unpacked(m, NULL);
        n++;
    }
    assert_int_equal(rc, 0);
    assert_int_equal(st.code, DY_WIRE_STATUS_OK);
    assert_int_equal(n, 9);

    /* Deadline exceeded: the handler never answers; on_close(false) follows. */
    t0 = s_ms();
    assert_int_equal(s_get(c, "computations/slow", 200, &st), -1);
    assert_int_equal(st.code, DY_WIRE_STATUS_DEADLINE_EXCEEDED);
    assert_true(s_ms() - t0 >= 190);
    S_WAIT(s_rec.closes[H_GET][0] == 1);
    assert_int_equal(s_get(c, "computations/fine", 2000, &st), 0);
    /* The server enforces the deadline itself (a raw client that never cancels). */
    s_raw_open(&r, s->port);
    dy_buf_t b = {0};
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t now_unix = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
    get_req_t greq = WFA__MEASUREMENT__SYSTEM__V1ALPHA__GET_COMPUTATION_REQUEST__INIT;
    greq.name = "computations/slow";
    assert_int_equal(dy_wire_encode_call_start(&b, M_GET, "raw-6", now_unix + 200), 0);
    assert_int_equal(dy_wire_encode_pb(&b, &greq.base), 0);
    assert_int_equal(dy_wire_encode_bare(&b, HALO__WIRE__V1__KIND__HALF_CLOSE), 0);
    t0 = s_ms();
    s_raw_send(&r, &b);
    assert_int_equal(s_raw_status(&r, msg, sizeof(msg)), DY_WIRE_STATUS_DEADLINE_EXCEEDED);
    assert_true(s_ms() - t0 >= 150);
    S_WAIT(s_rec.closes[H_GET][0] == 2);
    s_raw_close(&r);

    /* The client idles longer than the server allows: the next call is UNAVAILABLE. */
    usleep(600 * 1000);
    assert_int_equal(s_get(c, "computations/late", 2000, &st), -1);
    assert_int_equal(st.code, DY_WIRE_STATUS_UNAVAILABLE);
    dy_rpc_client_destroy(&c);

    /* A deadline already past when the call starts. */
    s_raw_open(&r, s->port);
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t past = (uint64_t)ts.tv_sec * 1000 - 1000;
    greq.name = "computations/abc";
    assert_int_equal(dy_wire_encode_call_start(&b, M_GET, "raw-4", past), 0);
    assert_int_equal(dy_wire_encode_pb(&b, &greq.base), 0);
    assert_int_equal(dy_wire_encode_bare(&b, HALO__WIRE__V1__KIND__HALF_CLOSE), 0);
    s_raw_send(&r, &b);
    assert_int_equal(s_raw_status(&r, NULL, 0), DY_WIRE_STATUS_DEADLINE_EXCEEDED);
    s_raw_close(&r);
    dy_buf_free(&b);

    dy_rpc_server_stats_t sst;
    s_server_stats(s, &sst, NULL);
    assert_true(sst.refused >= 1);
    s_lock();
    assert_int_equal(s_rec.requests, 3); /* slow, fine, raw-6; late and raw-4 never got there */
    s_unlock();
    s_server_stop(s);
}

static void test_rate_limits(void **state)
{
    (void)state;
    s_server_t *s = s_server_start((dy_rpc_server_conf_t){.calls_per_second = 1, .call_burst = 3});
    dy_rpc_client_t *c1 = s_client(0, s->port), *c2 = s_client(1, s->port);
    dy_rpc_status_t st;
    int ok = 0, exhausted = 0;
    for (int i = 0; i < 6; i++) {
        int rc = s_get(c1, "computations/burst", 5000, &st);
        if (i < 3)
            assert_int_equal(rc, 0);
        if (rc == 0)
            ok++;
        else if (st.code == DY_WIRE_STATUS_RESOURCE_EXHAUSTED)
            exhausted++;
    }
    assert_true(ok <= 4);
    assert_true(exhausted >= 2);
    assert_int_equal(ok + exhausted, 6);
    /* The other identity is undisturbed. */
    for (int i = 0; i < 3; i++)
        assert_int_equal(s_get(c2, "computations/other", 5000, &st), 0);
    /* The limited connection was not closed: after a refill it works again. */
    usleep(1100 * 1000);
    assert_int_equal(s_get(c1, "computations/refilled", 5000, &st), 0);
    dy_rpc_server_stats_t sst;
    s_server_stats(s, &sst, NULL);
    assert_int_equal(sst.rate_limited, (uint64_t)exhausted);
    dy_rpc_client_destroy(&c1);
    dy_rpc_client_destroy(&c2);
    s_server_stop(s);

    /* Bytes: 1 MiB of burst and a trickle of refill. */
    s = s_server_start((dy_rpc_server_conf_t){.bytes_per_second = 1024, .byte_burst = (double)MIB});
    c1 = s_client(0, s->port);
    c2 = s_client(1, s->port);
    uint8_t *data = s_bytes(3 * MIB);
    assert_int_equal(s_upload(c1, "computations/flood", data, 3 * MIB, -1, 0, &st), -1);
    assert_int_equal(st.code, DY_WIRE_STATUS_RESOURCE_EXHAUSTED);
    assert_int_equal(s_upload(c2, "computations/polite", data, MIB / 2, -1, 0, &st), 0);
    S_WAIT(s_rec.closes[H_ADV][0] == 1 && s_rec.closes[H_ADV][1] == 1);
    s_lock();
    assert_int_equal(s_rec.completes, 1);
    assert_int_equal(s_rec.committed.len, MIB / 2);
    s_unlock();
    free(data);
    dy_rpc_client_destroy(&c1);
    dy_rpc_client_destroy(&c2);
    s_server_stop(s);
}

/* A server stream to a client that does not read: sends are refused with -ENOBUFS once
 * the output buffer passes its high-water mark, and the server's memory stays bounded. */
static void test_backpressure(void **state)
{
    (void)state;
    s_server_t *s = s_server_start((dy_rpc_server_conf_t){.max_frame = 64 * 1024, .tick_ms = 5});
    s_raw_t r;
    s_raw_open(&r, s->port);
    dy_buf_t b = {0};
    stream_req_t req = WFA__MEASUREMENT__SYSTEM__V1ALPHA__STREAM_ACTIVE_COMPUTATIONS_REQUEST__INIT;
    req.continuation_token = "flood";
    assert_int_equal(dy_wire_encode_call_start(&b, M_STREAM, "raw-7", 0), 0);
    assert_int_equal(dy_wire_encode_pb(&b, &req.base), 0);
    assert_int_equal(dy_wire_encode_bare(&b, HALO__WIRE__V1__KIND__HALF_CLOSE), 0);
    s_raw_send(&r, &b);
    S_WAIT(s_rec.flood_rc != 0);
    s_lock();
    assert_int_equal(s_rec.flood_rc, -ENOBUFS);
    assert_true(s_rec.flood_pending > 4 * 64 * 1024);
    s_unlock();
    usleep(50 * 1000);
    dy_rpc_server_stats_t st;
    dy_rpc_server_mem_t mem;
    s_server_stats(s, &st, &mem);
    assert_true(mem.out_bytes <= 1024 * 1024);
    s_raw_close(&r);
    S_WAIT(s_rec.closes[H_STREAM][0] == 1);
    dy_buf_free(&b);
    s_server_stop(s);
}

typedef struct {
    int port, who, ok;
} s_worker_t;

static void *s_worker(void *arg)
{
    s_worker_t *w = arg;
    char err[256];
    dy_rpc_client_t *c = s_client_try(w->who, w->port, err, sizeof(err));
    if (c == NULL)
        return NULL;
    for (int i = 0; i < 25; i++) {
        char name[64];
        snprintf(name, sizeof(name), "computations/w%d-%d", w->who, i);
        dy_rpc_status_t st;
        if (s_get(c, name, 5000, &st) == 0)
            w->ok++;
    }
    dy_rpc_client_destroy(&c);
    return NULL;
}

static void test_concurrent(void **state)
{
    (void)state;
    s_server_t *s = s_server_start((dy_rpc_server_conf_t){0});
    pthread_t th[6];
    s_worker_t w[6];
    for (int i = 0; i < 6; i++) {
        w[i] = (s_worker_t){.port = s->port, .who = i % 2};
        assert_int_equal(pthread_create(&th[i], NULL, s_worker, &w[i]), 0);
    }
    for (int i = 0; i < 6; i++) {
        assert_int_equal(pthread_join(th[i], NULL), 0);
        assert_int_equal(w[i].ok, 25);
    }
    dy_rpc_server_stats_t st;
    s_server_stats(s, &st, NULL);
    assert_int_equal(st.accepted, 6);
    assert_int_equal(st.calls, 150);
    assert_true(st.bytes_in > 0 && st.bytes_out > 0);
    s_server_stop(s);
}

typedef struct {
    int port, rc;
    dy_rpc_status_t st;
} s_async_t;

static void *s_async_client(void *arg)
{
    s_async_t *a = arg;
    char err[256];
    dy_rpc_client_t *c = s_client_try(0, a->port, err, sizeof(err));
    a->rc = c ? s_get(c, "computations/async", 5000, &a->st) : -3;
    dy_rpc_client_destroy(&c);
    return NULL;
}

static void test_async(void **state)
{
    (void)state;
    s_server_t *s = s_server_start((dy_rpc_server_conf_t){0});
    s_async_t a = {.port = s->port, .rc = 99};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, s_async_client, &a), 0);
    S_WAIT(s_rec.async_call != NULL);
    /* The loop keeps serving others while the call waits. */
    dy_rpc_client_t *c = s_client(1, s->port);
    dy_rpc_status_t st;
    assert_int_equal(s_get(c, "computations/meanwhile", 5000, &st), 0);
    s_lock();
    assert_non_null(s_rec.async_call);
    s_unlock();
    /* Wake the watch callback: it answers on a later loop iteration. */
    assert_int_equal(write(s_pipe[1], "x", 1), 1);
    assert_int_equal(pthread_join(th, NULL), 0);
    assert_int_equal(a.rc, 0);
    S_WAIT(s_rec.closes[H_GET][1] == 2);
    s_lock();
    assert_int_equal(s_rec.finish_again_rc, -EALREADY);
    assert_int_equal(s_rec.send_after_rc, -EALREADY);
    assert_int_equal(s_rec.wakeups, 1);
    assert_null(s_rec.async_call);
    s_unlock();

    /* A kept call whose client goes away: on_close(false), and a wakeup finds nothing. */
    s_raw_t r;
    s_raw_open(&r, s->port);
    dy_buf_t b = {0};
    get_req_t greq = WFA__MEASUREMENT__SYSTEM__V1ALPHA__GET_COMPUTATION_REQUEST__INIT;
    greq.name = "computations/async";
    assert_int_equal(dy_wire_encode_call_start(&b, M_GET, "raw-5", 0), 0);
    assert_int_equal(dy_wire_encode_pb(&b, &greq.base), 0);
    assert_int_equal(dy_wire_encode_bare(&b, HALO__WIRE__V1__KIND__HALF_CLOSE), 0);
    s_raw_send(&r, &b);
    S_WAIT(s_rec.async_call != NULL);
    s_raw_close(&r);
    S_WAIT(s_rec.closes[H_GET][0] == 1 && s_rec.async_call == NULL);
    assert_int_equal(write(s_pipe[1], "y", 1), 1);
    S_WAIT(s_rec.wakeups == 2);
    /* Unwatched: a byte no longer runs the callback. */
    s_server_pause(s);
    assert_int_equal(dy_rpc_server_unwatch(s->srv, s_pipe[0]), 0);
    assert_int_equal(dy_rpc_server_unwatch(s->srv, s_pipe[0]), -ENOENT);
    s_server_resume(s);
    assert_int_equal(write(s_pipe[1], "z", 1), 1);
    usleep(50 * 1000);
    assert_int_equal(s_read_locked(&s_rec.wakeups), 2);
    char drain;
    assert_int_equal(read(s_pipe[0], &drain, 1), 1);
    dy_buf_free(&b);
    dy_rpc_client_destroy(&c);
    s_server_stop(s);
}

static void test_max_connections(void **state)
{
    (void)state;
    s_server_t *s = s_server_start((dy_rpc_server_conf_t){.max_connections = 2});
    dy_rpc_client_t *c1 = s_client(0, s->port), *c2 = s_client(1, s->port);
    dy_rpc_status_t st;
    assert_int_equal(s_get(c1, "computations/one", 5000, &st), 0);
    assert_int_equal(s_get(c2, "computations/two", 5000, &st), 0);
    char err[256] = "";
    dy_rpc_client_t *c3 = s_client_try(0, s->port, err, sizeof(err));
    if (c3 != NULL) {
        /* TLS 1.3: the client may finish before the server's refusal shows. */
        assert_int_equal(s_get(c3, "computations/three", 2000, &st), -1);
        assert_int_equal(st.code, DY_WIRE_STATUS_UNAVAILABLE);
        dy_rpc_client_destroy(&c3);
    }
    dy_rpc_client_destroy(&c1);
    /* Once the server saw the first one go, a new connection is served. */
    int rc = -1;
    for (int i = 0; i < 100 && rc != 0; i++) {
        c3 = s_client_try(0, s->port, err, sizeof(err));
        rc = c3 ? s_get(c3, "computations/three", 2000, &st) : -1;
        dy_rpc_client_destroy(&c3);
        if (rc != 0)
            usleep(20 * 1000);
    }
    assert_int_equal(rc, 0);
    assert_int_equal(s_get(c2, "computations/two-again", 5000, &st), 0);
    dy_rpc_client_destroy(&c2);
    s_server_stop(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_unary),
        cmocka_unit_test(test_unimplemented),
        cmocka_unit_test(test_upload_sizes),
        cmocka_unit_test(test_upload_refused_header),
        cmocka_unit_test(test_upload_bad_trailer),
        cmocka_unit_test(test_upload_truncated),
        cmocka_unit_test(test_upload_credit_and_chunk_size),
        cmocka_unit_test(test_oversized_prefix),
        cmocka_unit_test(test_server_stream),
        cmocka_unit_test(test_timeouts),
        cmocka_unit_test(test_rate_limits),
        cmocka_unit_test(test_backpressure),
        cmocka_unit_test(test_concurrent),
        cmocka_unit_test(test_async),
        cmocka_unit_test(test_max_connections),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
