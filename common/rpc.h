/* rpc.h - calls over the framed mutual-TLS transport of PROTOCOL.md §2.
 *
 * A connection is TLS 1.3 (common/tls.h) carrying length-prefixed
 * halo.wire.v1.Frame messages (common/wire.h).  One call at a time per
 * connection: CALL_START, MESSAGE*, HALF_CLOSE from the client; MESSAGE*,
 * STATUS from the server; CREDIT for client-streaming uploads; PING keeps
 * long streams alive; CANCEL ends a call.
 *
 * Uploads (AdvanceComputation, FulfillRequisition at a duchy) share one
 * request shape, which this layer relies on: field 1 = header (a message,
 * sent as the first MESSAGE, built by the caller), field 2 = body_chunk
 * { bytes 1 }, field 15 = trailer { bytes sha256 = 1; uint64 total_length
 * = 2 }.  The transport writes and parses the chunk and trailer messages
 * itself, so 1-4 MiB chunks are never copied into protobuf-c structures.
 *
 * Client: blocking calls with deadlines, for tools and for actors' outgoing
 * calls.  Server: a single-threaded non-blocking reactor (poll) that owns
 * the listening socket and every connection, identifies each peer by its
 * certificate (dy_tls_peer_identity), enforces frame limits, idle timeouts,
 * deadlines and per-identity token-bucket rate limits, and hands calls to
 * method handlers that may answer at once or later (asynchronously).
 */
#ifndef DY_RPC_H
#define DY_RPC_H

#include "dy.h"
#include "wire.h"

#include <openssl/ssl.h>
#include <protobuf-c/protobuf-c.h>

/* The outcome of a call.  Transport failures are reported with the code a
 * gRPC client would see: UNAVAILABLE (connection lost or refused),
 * DEADLINE_EXCEEDED, CANCELLED. */
typedef struct {
    int code;                 /* dy_wire_status_t */
    dy_wire_reason_t reason;  /* FAILED_PRECONDITION detail, else NONE */
    char message[256];        /* the server's message or a transport description */
} dy_rpc_status_t;

/* ---- client ------------------------------------------------------------- */

typedef struct dy_rpc_client dy_rpc_client_t;

typedef struct {
    SSL_CTX *ctx;              /* borrowed: dy_tls_client_ctx(), expected name set */
    const char *host;          /* e.g. "127.0.0.1" */
    int port;
    int connect_timeout_ms;    /* TCP connect + TLS handshake; 0 = 10000 */
    size_t max_frame;          /* 0 = DY_WIRE_MAX_FRAME_DEFAULT */
} dy_rpc_client_conf_t;

/* Connects and completes the handshake.  NULL on failure with a reason in
 * errbuf (no secrets).  Caller destroys. */
dy_rpc_client_t *dy_rpc_client_new(const dy_rpc_client_conf_t *conf, char *errbuf,
                                   size_t errlen);
void dy_rpc_client_destroy(dy_rpc_client_t **self_p);

/* The authenticated server's party id (e.g. "kingdom", "duchies/worker1"). */
const char *dy_rpc_client_peer(const dy_rpc_client_t *self);

/* Unary call.  On OK, *ret_resp (caller frees with
 * protobuf_c_message_free_unpacked) holds the response.  Returns 0 on OK,
 * else -1 with st describing the failure (st is always filled).  After a
 * transport failure the client is unusable (reconnect). */
int dy_rpc_unary(dy_rpc_client_t *self, const char *method, const ProtobufCMessage *req,
                 const ProtobufCMessageDescriptor *resp_desc, ProtobufCMessage **ret_resp,
                 int timeout_ms, dy_rpc_status_t *st);

/* A body to upload: from memory (fd < 0) or from a file descriptor read to
 * its end. */
typedef struct {
    const uint8_t *data; /* borrowed, when fd < 0 */
    size_t len;
    int fd;              /* >= 0: read from here instead */
    size_t chunk_size;   /* 0 = DY_WIRE_CHUNK_DEFAULT; 1-4 MiB */
} dy_rpc_body_t;

/* Client-streaming upload: `header_req` (the request message with its
 * header set) as the first MESSAGE; then, once the server grants credit,
 * the body chunks and the trailer; HALF_CLOSE; the response.  Returns 0 on
 * OK, else -1 with st filled (a refusal of the header arrives before any
 * chunk is sent). */
int dy_rpc_upload(dy_rpc_client_t *self, const char *method, const ProtobufCMessage *header_req,
                  const dy_rpc_body_t *body, const ProtobufCMessageDescriptor *resp_desc,
                  ProtobufCMessage **ret_resp, int timeout_ms, dy_rpc_status_t *st);

/* Server-streaming call: sends CALL_START, the request and HALF_CLOSE.
 * Then dy_rpc_stream_next returns 1 with the next message (caller frees),
 * 0 when the stream ended (st holds its final status), or -1 on a
 * transport failure (st filled).  PINGs are absorbed; no frame for
 * idle_timeout_ms (0 = 60000) is UNAVAILABLE. */
int dy_rpc_stream_open(dy_rpc_client_t *self, const char *method, const ProtobufCMessage *req,
                       int timeout_ms, dy_rpc_status_t *st);
int dy_rpc_stream_next(dy_rpc_client_t *self, const ProtobufCMessageDescriptor *resp_desc,
                       ProtobufCMessage **ret_msg, int idle_timeout_ms, dy_rpc_status_t *st);
/* Sends CANCEL for the call in progress and drains to its STATUS. */
int dy_rpc_cancel(dy_rpc_client_t *self);

/* ---- server -------------------------------------------------------------- */

typedef struct dy_rpc_server dy_rpc_server_t;
typedef struct dy_rpc_call dy_rpc_call_t;

typedef enum {
    DY_RPC_UNARY = 0,
    DY_RPC_CLIENT_STREAM = 1, /* uploads: header, chunks, trailer */
    DY_RPC_SERVER_STREAM = 2,
} dy_rpc_kind_t;

/* A method handler.  Every callback gets the call and the handler's arg.
 * A handler answers with dy_rpc_call_send (responses) and exactly one
 * dy_rpc_call_finish, at once or later from any other callback of the
 * server's loop.  on_close tells the handler the call is gone (finished,
 * cancelled, connection lost, deadline); after it the call pointer is
 * invalid. */
typedef struct {
    const char *method;  /* "/package.Service/Method" */
    dy_rpc_kind_t kind;
    /* Unary and server-stream: the single request message (serialized). */
    void (*on_request)(dy_rpc_call_t *call, const uint8_t *req, size_t len, void *arg);
    /* Client-stream: the header request (serialized, field 1 set).  Accept
     * with dy_rpc_call_accept_upload, or refuse with dy_rpc_call_finish. */
    void (*on_header)(dy_rpc_call_t *call, const uint8_t *req, size_t len, void *arg);
    /* Client-stream: one body chunk's bytes.  Return 0, or a negative errno
     * to abort the call (the handler then finishes it). */
    int (*on_chunk)(dy_rpc_call_t *call, const uint8_t *data, size_t len, void *arg);
    /* Client-stream: the trailer verified (length and SHA-256 of the whole
     * body); the handler commits and finishes.  A mismatch never reaches the
     * handler: the server answers DATA_LOSS and calls on_close. */
    void (*on_complete)(dy_rpc_call_t *call, const uint8_t sha256[32], uint64_t total,
                        void *arg);
    /* Server-stream: called every tick_ms while the call is open (e.g. to
     * poll a database for new items). */
    void (*on_tick)(dy_rpc_call_t *call, void *arg);
    /* The call is gone; release anything attached to it.  `completed` is
     * true when the handler finished it, false when it was cancelled, timed
     * out or lost (an upload then has committed nothing). */
    void (*on_close)(dy_rpc_call_t *call, bool completed, void *arg);
    void *arg;
} dy_rpc_method_t;

typedef struct {
    SSL_CTX *ctx;                 /* borrowed: dy_tls_server_ctx() */
    const char *host;             /* listen address, e.g. "127.0.0.1" */
    int port;                     /* 0 = ephemeral (see dy_rpc_server_port) */
    size_t max_frame;             /* 0 = DY_WIRE_MAX_FRAME_DEFAULT */
    int max_connections;          /* 0 = 256 */
    int idle_timeout_ms;          /* no frame for this long: UNAVAILABLE; 0 = 60000 */
    int ping_interval_ms;         /* on open server streams; 0 = 30000 */
    int handshake_timeout_ms;     /* 0 = 10000 */
    int tick_ms;                  /* server-stream on_tick period; 0 = 1000 */
    uint32_t upload_credit;       /* MESSAGE frames granted per CREDIT; 0 = 8 */
    /* Per-identity token buckets; 0 = unlimited.  Over the limit:
     * RESOURCE_EXHAUSTED for that call only. */
    double calls_per_second;
    double call_burst;
    double bytes_per_second;
    double byte_burst;
} dy_rpc_server_conf_t;

/* Creates the server and its listening socket.  NULL with errbuf set. */
dy_rpc_server_t *dy_rpc_server_new(const dy_rpc_server_conf_t *conf, const dy_rpc_method_t *methods,
                                   size_t nmethods, char *errbuf, size_t errlen);
void dy_rpc_server_destroy(dy_rpc_server_t **self_p);
int dy_rpc_server_port(const dy_rpc_server_t *self);

/* Extra descriptors watched by the loop (e.g. a zmq socket's ZMQ_FD, a
 * signal pipe).  The callback runs when fd is readable (level-triggered as
 * poll reports it; for ZMQ_FD drain while ZMQ_EVENTS says POLLIN). */
typedef void (*dy_rpc_watch_fn)(int fd, void *arg);
int dy_rpc_server_watch(dy_rpc_server_t *self, int fd, dy_rpc_watch_fn fn, void *arg);
int dy_rpc_server_unwatch(dy_rpc_server_t *self, int fd);

/* Runs the loop once: waits up to timeout_ms for I/O, handles what is
 * ready, runs timers.  0 or a negative errno (fatal to the server). */
int dy_rpc_server_step(dy_rpc_server_t *self, int timeout_ms);

/* Runs until *stop becomes true (checked at least every 100 ms). */
int dy_rpc_server_run(dy_rpc_server_t *self, volatile const int *stop);

/* Server counters for admin views. */
typedef struct {
    uint64_t connections;      /* currently open */
    uint64_t accepted;         /* handshakes completed */
    uint64_t refused;          /* handshakes failed */
    uint64_t calls;            /* calls started */
    uint64_t rate_limited;     /* calls refused RESOURCE_EXHAUSTED by a bucket */
    uint64_t oversized;        /* frames refused by size */
    uint64_t bytes_in, bytes_out;
} dy_rpc_server_stats_t;
void dy_rpc_server_stats(const dy_rpc_server_t *self, dy_rpc_server_stats_t *out);

/* Memory held by connection buffers, for admin views and tests (a peer must not be able
 * to make the server allocate more than it sent). */
typedef struct {
    size_t reader_bytes;  /* allocated now by every connection's frame reader */
    size_t reader_peak;   /* largest single reader allocation since the server started */
    size_t out_bytes;     /* allocated now by output buffers */
} dy_rpc_server_mem_t;
void dy_rpc_server_mem(const dy_rpc_server_t *self, dy_rpc_server_mem_t *out);

/* ---- a call, on the server side ------------------------------------------ */

/* The caller's party id from its certificate (never from a message). */
const char *dy_rpc_call_peer(const dy_rpc_call_t *call);
const char *dy_rpc_call_method(const dy_rpc_call_t *call);
/* The client's deadline in unix ms, 0 = none. */
uint64_t dy_rpc_call_deadline(const dy_rpc_call_t *call);

/* Queues one response message (serialized).  0 or negative errno. */
int dy_rpc_call_send(dy_rpc_call_t *call, const uint8_t *msg, size_t len);
int dy_rpc_call_send_pb(dy_rpc_call_t *call, const ProtobufCMessage *msg);
/* Bytes queued on the call's connection and not yet written (0 once the call ended).
 * dy_rpc_call_send and _send_pb return -ENOBUFS while this is above the high-water mark
 * (4 x max_frame), so a server stream whose client does not read paces itself: send
 * again from a later on_tick.  Both return -EALREADY after the call ended. */
size_t dy_rpc_call_pending(const dy_rpc_call_t *call);
/* Ends the call with a status (OK or an error), then on_close runs. */
int dy_rpc_call_finish(dy_rpc_call_t *call, dy_wire_status_t code, dy_wire_reason_t reason,
                       const char *fmt, ...) DY_PRINTF(4, 5);
/* Upload: accept the header and start granting credit; max_total caps the
 * body (0 = none; over it RESOURCE_EXHAUSTED). */
int dy_rpc_call_accept_upload(dy_rpc_call_t *call, uint64_t max_total);

/* Per-call handler data. */
void dy_rpc_call_set_data(dy_rpc_call_t *call, void *data);
void *dy_rpc_call_data(const dy_rpc_call_t *call);

#endif
