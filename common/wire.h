/* wire.h - the frame codec and envelope validation of PROTOCOL.md §2, with no sockets.
 *
 * A connection carries frames: a 4-byte big-endian length N, then N bytes of a serialized
 * halo.wire.v1.Frame (proto/wire.proto, which also gives the call grammar).  This module
 * holds everything about frames that does not need a socket, so the TLS transport on top of
 * it stays thin and every parser that sees outside bytes is fuzzed (tests/fuzz/fuzz_wire.c):
 *
 *   - status codes with gRPC numbering (PROTOCOL.md §8) and the three FAILED_PRECONDITION
 *     reasons;
 *   - an incremental frame reader: feed it bytes as they arrive, it yields whole frames and
 *     refuses a length prefix above max_frame before allocating anything;
 *   - frame encoding (prefix + Frame) and decode-then-validate (STYLE.md rule 12);
 *   - credit accounting for client-streaming calls;
 *   - upload helpers: the receiver's running SHA-256 and byte count over body chunks and the
 *     trailer check (DATA_LOSS on mismatch), and the sender's chunking and trailer.
 *
 * Errors follow dy.h: 0 or a negative errno.  dy_wire_status_from_errno() maps each errno
 * this module returns to the status code the caller puts on the wire; the mapping is part of
 * each function's contract below.  Nothing here logs.
 */
#ifndef DY_WIRE_H
#define DY_WIRE_H

#include "dy.h"
#include "wire.pb-c.h"

/* The envelope version this code speaks; Frame.version must equal it.  Bump it (and the
 * comment in proto/wire.proto) on any incompatible change to the framing or the envelope;
 * peers of different versions then refuse each other's frames with INVALID_ARGUMENT. */
#define DY_WIRE_VERSION 1u

#define DY_WIRE_PREFIX_LEN 4                                  /* big-endian frame length */
#define DY_WIRE_MAX_FRAME_DEFAULT ((size_t)(4u << 20) + (64u << 10)) /* 4 MiB + 64 KiB */
#define DY_WIRE_CHUNK_MIN ((size_t)1 << 20)                   /* 1 MiB: body chunk floor */
#define DY_WIRE_CHUNK_MAX ((size_t)4 << 20)                   /* 4 MiB: body chunk ceiling */
#define DY_WIRE_CHUNK_DEFAULT DY_WIRE_CHUNK_MIN               /* sender's default chunk */
#define DY_WIRE_REQUEST_ID_MAX 64                             /* bytes, printable ASCII */
#define DY_WIRE_METHOD_MAX 256                                /* bytes of "/pkg.Svc/Method" */
#define DY_WIRE_SHA256_LEN 32

/* ---- status codes ------------------------------------------------------------------------ */

/* Call outcomes, numbered as gRPC's (PROTOCOL.md §8). */
typedef enum {
    DY_WIRE_STATUS_OK = 0,
    DY_WIRE_STATUS_CANCELLED = 1,
    DY_WIRE_STATUS_UNKNOWN = 2,
    DY_WIRE_STATUS_INVALID_ARGUMENT = 3,
    DY_WIRE_STATUS_DEADLINE_EXCEEDED = 4,
    DY_WIRE_STATUS_NOT_FOUND = 5,
    DY_WIRE_STATUS_ALREADY_EXISTS = 6,
    DY_WIRE_STATUS_PERMISSION_DENIED = 7,
    DY_WIRE_STATUS_RESOURCE_EXHAUSTED = 8,
    DY_WIRE_STATUS_FAILED_PRECONDITION = 9,
    DY_WIRE_STATUS_ABORTED = 10,
    DY_WIRE_STATUS_OUT_OF_RANGE = 11,
    DY_WIRE_STATUS_UNIMPLEMENTED = 12,
    DY_WIRE_STATUS_INTERNAL = 13,
    DY_WIRE_STATUS_UNAVAILABLE = 14,
    DY_WIRE_STATUS_DATA_LOSS = 15,
    DY_WIRE_STATUS_UNAUTHENTICATED = 16,
    _DY_WIRE_STATUS_MAX,
} dy_wire_status_t;

/* The canonical name of a status code ("OK", "INVALID_ARGUMENT", ...), or NULL for a
 * number outside 0..16.  The string is static. */
const char *dy_wire_status_name(int code);

/* The code named name (exact, upper case), or -EINVAL. */
int dy_wire_status_from_name(const char *name);

/* The status to send for an error of this module (or of the transport):
 *   0                                   -> OK
 *   -EINVAL -EPROTO -E2BIG -EOVERFLOW   -> INVALID_ARGUMENT (bad frame, field or stream order)
 *   -EAGAIN                             -> INVALID_ARGUMENT (a receiver got a MESSAGE with no
 *                                          credit; a sender waits instead of mapping it)
 *   -EMSGSIZE -EFBIG -ENOMEM            -> RESOURCE_EXHAUSTED (oversized frame, upload cap)
 *   -EBADMSG                            -> DATA_LOSS (upload length or SHA-256 mismatch)
 *   -ETIMEDOUT                          -> DEADLINE_EXCEEDED
 *   -ECANCELED                          -> CANCELLED
 *   -ECONNRESET -EPIPE -ENOTCONN        -> UNAVAILABLE
 *   -ENOSYS                             -> UNIMPLEMENTED
 *   anything else                       -> INTERNAL */
dy_wire_status_t dy_wire_status_from_errno(int rc);

/* FAILED_PRECONDITION reasons (Status.reason); NONE is the empty string. */
typedef enum {
    DY_WIRE_REASON_NONE = 0,
    DY_WIRE_REASON_STAGE_NOT_READY = 1,
    DY_WIRE_REASON_COMPUTATION_ENDED = 2,
    DY_WIRE_REASON_INPUT_CONFLICT = 3,
    _DY_WIRE_REASON_MAX,
} dy_wire_reason_t;

/* The wire string of a reason ("" for NONE, "STAGE_NOT_READY", ...), or NULL if out of
 * range.  Static. */
const char *dy_wire_reason_name(dy_wire_reason_t reason);

/* The reason spelled s ("" or NULL = NONE), or -EINVAL for anything else. */
int dy_wire_reason_parse(const char *s);

/* ---- validation -------------------------------------------------------------------------- */

/* 0 if method has the form "/package.Service/Method" (identifiers [A-Za-z_][A-Za-z0-9_]*,
 * a package of at least one dotted segment, at most DY_WIRE_METHOD_MAX bytes), else -EINVAL. */
int dy_wire_method_check(const char *method);

/* 0 if id is 1..DY_WIRE_REQUEST_ID_MAX printable ASCII bytes (0x20..0x7e), else -EINVAL. */
int dy_wire_request_id_check(const char *id);

/* Checks a decoded frame against PROTOCOL.md §2: version == DY_WIRE_VERSION; kind one of
 * CALL_START..PING; CALL_START: valid method and request id; MESSAGE: message at most
 * max_message bytes (0 = DY_WIRE_MAX_FRAME_DEFAULT); STATUS: status present, code 0..16,
 * reason valid; CREDIT: credit > 0.  Returns 0, -EINVAL (invalid envelope) or -EMSGSIZE (the
 * message is too large), and on failure sets *ret_why (if not NULL) to a static, stable
 * description such as "bad version" for logs and Status.message. */
int dy_wire_frame_check(const Halo__Wire__V1__Frame *f, size_t max_message,
                        const char **ret_why);

/* ---- decoding ---------------------------------------------------------------------------- */

/* Decodes and checks one frame body (the N bytes after the prefix).  On success stores the
 * frame in *ret_frame (caller destroys with dy_wire_frame_free) and returns 0.  Errors:
 * -EPROTO (not a Frame), -EINVAL / -EMSGSIZE (as dy_wire_frame_check), -ENOMEM; *ret_frame is
 * untouched and *ret_why (if not NULL) describes the failure. */
int dy_wire_frame_decode(const uint8_t *data, size_t len, size_t max_message,
                         Halo__Wire__V1__Frame **ret_frame, const char **ret_why);

/* Frees a frame from dy_wire_frame_decode and nulls *frame_p.  NULL-safe. */
void dy_wire_frame_free(Halo__Wire__V1__Frame **frame_p);

/* ---- the incremental reader -------------------------------------------------------------- */

/* Collects the bytes of one frame at a time.  The buffer grows with the bytes actually
 * received (never to the announced length up front) and is at most max_frame bytes, so a
 * peer cannot make the reader allocate more than it sent. */
typedef struct {
    size_t max_frame;                   /* largest accepted N */
    uint8_t prefix[DY_WIRE_PREFIX_LEN]; /* the length prefix being collected */
    size_t prefix_len;                  /* prefix bytes collected, 0..4 */
    size_t need;                        /* N, once prefix_len == 4 */
    size_t have;                        /* body bytes collected, <= need */
    uint8_t *buf;                       /* owned; body bytes; NULL while cap == 0 */
    size_t cap;                         /* bytes allocated at buf */
    bool delivered;                     /* the last feed returned a frame */
    int error;                          /* sticky: 0 or the error that stopped the reader */
} dy_wire_reader_t;

/* Initialises r with the given limit (0 = DY_WIRE_MAX_FRAME_DEFAULT).  Allocates nothing. */
void dy_wire_reader_init(dy_wire_reader_t *r, size_t max_frame);

/* Feeds up to len bytes of data.  Returns
 *   1  a whole frame is ready: *ret_frame / *ret_frame_len give its body (the bytes after the
 *      prefix; valid until the next feed or free), and *ret_used bytes of data were consumed
 *      (maybe fewer than len: feed the rest afterwards);
 *   0  all len bytes were consumed (*ret_used == len) and no frame is complete yet;
 *   -EMSGSIZE  the length prefix exceeds max_frame: refused on reading the prefix, nothing
 *      allocated for it; the caller sends STATUS RESOURCE_EXHAUSTED if it can and closes;
 *   -ENOMEM.
 * Errors are sticky: every later feed returns the same error.  len may be 0. */
int dy_wire_reader_feed(dy_wire_reader_t *r, const void *data, size_t len, size_t *ret_used,
                        const uint8_t **ret_frame, size_t *ret_frame_len);

/* True when the reader holds no partial frame (a clean place for the peer to close). */
bool dy_wire_reader_at_boundary(const dy_wire_reader_t *r);

/* Frees the buffer (wiping it) and returns r to the initial state, keeping max_frame.
 * NULL-safe. */
void dy_wire_reader_free(dy_wire_reader_t *r);

/* ---- encoding ---------------------------------------------------------------------------- */

/* Initialises *f as an empty frame of the given kind with version DY_WIRE_VERSION. */
void dy_wire_frame_init(Halo__Wire__V1__Frame *f, Halo__Wire__V1__Kind kind);

/* Appends prefix + serialized f to out.  f must pass dy_wire_frame_check with max_message =
 * max_frame; the whole frame must be at most max_frame bytes (0 = default).  Returns 0,
 * -EINVAL (f invalid), -EMSGSIZE (too large) or -ENOMEM; out is unchanged on failure. */
int dy_wire_frame_encode(const Halo__Wire__V1__Frame *f, size_t max_frame, dy_buf_t *out);

/* Shorthands for dy_wire_frame_encode with the default limit; same returns. */
int dy_wire_encode_call_start(dy_buf_t *out, const char *method, const char *request_id,
                              uint64_t deadline_unix_ms);
int dy_wire_encode_message(dy_buf_t *out, const void *msg, size_t len);
/* Packs msg (any protobuf-c message) into one MESSAGE frame. */
int dy_wire_encode_pb(dy_buf_t *out, const ProtobufCMessage *msg);
/* message may be NULL (empty). */
int dy_wire_encode_status(dy_buf_t *out, dy_wire_status_t code, const char *message,
                          dy_wire_reason_t reason);
int dy_wire_encode_credit(dy_buf_t *out, uint32_t credit);
/* HALF_CLOSE, CANCEL or PING (the kinds that carry nothing); -EINVAL for other kinds. */
int dy_wire_encode_bare(dy_buf_t *out, Halo__Wire__V1__Kind kind);

/* Writes a fresh random request id (32 lower-case hex digits) into out.  0 or -EIO. */
int dy_wire_request_id_new(char out[33]);

/* ---- credit (client-streaming calls) ----------------------------------------------------- */

/* Credit of one client-streaming call, kept the same way by both ends: the first MESSAGE
 * (the header) needs none; each later MESSAGE consumes one credit, and CREDIT frames (sent
 * by the server only after the header passed its checks) add some. */
typedef struct {
    bool header_done;   /* the header MESSAGE has been sent / received */
    uint64_t available; /* MESSAGE frames allowed beyond those used, <= UINT32_MAX */
} dy_wire_credit_t;

/* Initialises c for a new call. */
void dy_wire_credit_init(dy_wire_credit_t *c);

/* Records a CREDIT of n frames (the sender on receiving CREDIT, the server on sending it).
 * Returns 0, -EINVAL (n == 0), -EPROTO (before the header: bad stream order) or -EOVERFLOW
 * (more than UINT32_MAX outstanding). */
int dy_wire_credit_grant(dy_wire_credit_t *c, uint32_t n);

/* Sender: accounts for one MESSAGE about to be sent.  0, or -EAGAIN when no credit is left
 * (wait for a CREDIT frame; nothing was consumed). */
int dy_wire_credit_take(dy_wire_credit_t *c);

/* Receiver: accounts for one MESSAGE received.  0, or -EAGAIN when the peer had no credit
 * for it (a protocol violation: INVALID_ARGUMENT). */
int dy_wire_credit_accept(dy_wire_credit_t *c);

/* ---- uploads ----------------------------------------------------------------------------- */

/* SHA-256 of len bytes.  0 or -EIO. */
int dy_wire_sha256(const void *data, size_t len, uint8_t out[DY_WIRE_SHA256_LEN]);

/* State of an upload being received: header accepted, body chunks spooled by the caller and
 * fed here, then the trailer.  Only after dy_wire_upload_rx_trailer returned 0 may the
 * caller commit the spooled body; a call that ends without a trailer commits nothing. */
typedef struct {
    void *md;           /* owned EVP_MD_CTX: running SHA-256 */
    uint64_t total;     /* payload bytes received */
    uint64_t chunks;    /* chunks received */
    size_t min_chunk;   /* every chunk but the last is at least this */
    size_t max_chunk;   /* no chunk is larger */
    uint64_t max_total; /* upload cap in bytes, 0 = none */
    bool short_seen;    /* a chunk below min_chunk arrived: only the trailer may follow */
    bool verified;      /* the trailer matched */
    int error;          /* sticky: 0 or the first error */
    uint8_t sha256[DY_WIRE_SHA256_LEN]; /* the body's SHA-256, valid once verified */
} dy_wire_upload_rx_t;

/* Initialises rx.  min_chunk 0 = DY_WIRE_CHUNK_MIN, max_chunk 0 = DY_WIRE_CHUNK_MAX (tests
 * may use smaller bounds), max_total 0 = unlimited.  0, -EINVAL (min > max) or -ENOMEM. */
int dy_wire_upload_rx_init(dy_wire_upload_rx_t *rx, size_t min_chunk, size_t max_chunk,
                           uint64_t max_total);

/* Accounts one body chunk of len bytes.  Returns 0, or (sticky, the upload is dead):
 * -EINVAL an empty chunk, or a chunk after one shorter than min_chunk (INVALID_ARGUMENT);
 * -E2BIG the chunk exceeds max_chunk (INVALID_ARGUMENT, PROTOCOL.md §8);
 * -EFBIG the body exceeds max_total (RESOURCE_EXHAUSTED);
 * -EPROTO the trailer was already received (INVALID_ARGUMENT); -EIO. */
int dy_wire_upload_rx_chunk(dy_wire_upload_rx_t *rx, const void *data, size_t len);

/* Checks the trailer against what was received.  0: length and SHA-256 match, rx->sha256
 * holds the digest and the body may be committed.  -EBADMSG: mismatch (DATA_LOSS, commit
 * nothing).  -EINVAL: sha256 not 32 bytes or t NULL (INVALID_ARGUMENT).  -EPROTO: a second
 * trailer or an earlier error (INVALID_ARGUMENT); -EIO. */
int dy_wire_upload_rx_trailer(dy_wire_upload_rx_t *rx, const Halo__Wire__V1__Trailer *t);

/* True once the trailer matched. */
bool dy_wire_upload_rx_verified(const dy_wire_upload_rx_t *rx);

/* Frees rx's state.  NULL-safe; safe on a zeroed or half-initialised rx. */
void dy_wire_upload_rx_free(dy_wire_upload_rx_t *rx);

/* The sending side of an upload: cuts a buffer or a file into chunks and computes the
 * trailer over exactly the bytes it handed out. */
typedef struct {
    void *md;          /* owned EVP_MD_CTX: running SHA-256 */
    size_t chunk_size; /* bytes per chunk, DY_WIRE_CHUNK_MIN..DY_WIRE_CHUNK_MAX */
    uint64_t total;    /* bytes handed out so far (also the buffer cursor) */
    uint64_t chunks;   /* chunks handed out */
    bool finished;     /* the trailer was produced */
} dy_wire_upload_tx_t;

/* Number of chunks for a body of total bytes: ceil(total / chunk_size), 0 for an empty body. */
uint64_t dy_wire_upload_chunk_count(uint64_t total, size_t chunk_size);

/* Initialises tx; chunk_size 0 = DY_WIRE_CHUNK_DEFAULT.  0, -EINVAL (chunk_size outside
 * 1..4 MiB) or -ENOMEM. */
int dy_wire_upload_tx_init(dy_wire_upload_tx_t *tx, size_t chunk_size);

/* Next chunk of the buffer buf[0..len), which must be the same on every call: 1 with
 * *ret_chunk / *ret_len (pointing into buf), 0 when the buffer is exhausted, -EPROTO after
 * the trailer, -EINVAL if len shrank below the cursor, -EIO. */
int dy_wire_upload_tx_next_buf(dy_wire_upload_tx_t *tx, const void *buf, size_t len,
                               const uint8_t **ret_chunk, size_t *ret_len);

/* Next chunk read from fd (a regular file or pipe, read to EOF): 1 with chunk holding it
 * (chunk->len bytes, replacing its contents), 0 at EOF, -errno of read(2), -EPROTO after
 * the trailer, -ENOMEM, -EIO. */
int dy_wire_upload_tx_next_fd(dy_wire_upload_tx_t *tx, int fd, dy_buf_t *chunk);

/* Finishes the hash: the trailer's sha256 and total_length.  0, -EPROTO (twice) or -EIO. */
int dy_wire_upload_tx_trailer(dy_wire_upload_tx_t *tx, uint8_t ret_sha256[DY_WIRE_SHA256_LEN],
                              uint64_t *ret_total);

/* Frees tx's state.  NULL-safe. */
void dy_wire_upload_tx_free(dy_wire_upload_tx_t *tx);

#endif
