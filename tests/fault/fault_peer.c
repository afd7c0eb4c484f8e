/* fault_peer.c - fault-peer, a misbehaving but authenticated peer for the fault matrix
 * (tests/fault/).  It speaks the real wire protocol of PROTOCOL.md §2 (mutual TLS 1.3,
 * length-prefixed halo.wire.v1.Frame, credit, chunked uploads with a SHA-256 trailer) with
 * the TLS credentials of any party of a federation directory (docs/federation-dir.md), and
 * breaks the protocol in controlled ways so tests can check what a duchy's gateway answers.
 *
 *   fault-peer get-stage --dir DIR --as PARTY --to DUCHY --computation ID
 *       GetComputationStage(computations/ID/participants/DUCHY/computationStage) at DUCHY.
 *   fault-peer flood --dir DIR --as PARTY --to DUCHY --rate R --seconds S
 *                    [--rpc get-stage] [--computation ID] [--connections N]
 *       R cheap unary calls per second for S seconds, paced on an open-loop schedule over
 *       N connections (default ceil(R/50), at most 64), one thread per connection, since a
 *       connection carries one call at a time (§2).  NOT_FOUND (the default computation id
 *       does not exist) is as cheap an answer as any.  The gateway's token buckets are per
 *       identity: flooding as a duchy also drains that duchy's real calls to DUCHY.
 *   fault-peer advance --dir DIR --as PARTY --to DUCHY --computation ID --description DESC
 *                      --file BLOB [--mode ok|flip|truncate|oversize|bad-trailer]
 *                      [--protocol P] [--chunk-size BYTES] [--extra BYTES] [--rss]
 *       One AdvanceComputation upload of BLOB's bytes (header; body chunks of 1 MiB, sent as
 *       CREDIT allows; trailer {SHA-256, length}; HALF_CLOSE), as common/coord_send.c sends
 *       it, except for MODE:
 *         ok           well-formed;
 *         flip         one bit flipped in the middle of the middle chunk, after the trailer's
 *                      hash was computed over the right bytes (expect DATA_LOSS, nothing
 *                      stored);
 *         truncate     the first half of the chunks (at least one) and half of the next
 *                      chunk's frame, then the socket is closed without close_notify (no
 *                      status expected; nothing stored);
 *         oversize     once the header is accepted (CREDIT), a frame prefix claiming 1 GiB
 *                      and --extra bytes (64), then wait for the server to close (expect
 *                      RESOURCE_EXHAUSTED, then close, with no allocation);
 *         bad-trailer  the right bytes and length, a wrong SHA-256 (expect DATA_LOSS).
 *       DESC is an enum name of control.proto (EXECUTION_PHASE_ONE_INPUT,
 *       SHUFFLE_PHASE_INPUT_TWO, ...) or a number; the protocol comes from --protocol
 *       (llv2, llv2-reach-only, hmss), else from the name when only one protocol has it,
 *       else from DUCHY's GetComputationStage.  Every mode, ok included, goes through this
 *       file's own frame writer (not dy_rpc_upload), so the modes differ only in their
 *       fault; an OK to --mode ok shows the writer matches the real sender.  --chunk-size
 *       (default 1 MiB) may leave the protocol's 1-4 MiB on purpose, up to one frame.
 *   fault-peer raw-oversize --dir DIR --as PARTY --to DUCHY [--extra BYTES] [--rss]
 *       Right after the handshake, a prefix claiming 1 GiB and --extra bytes, no call:
 *       the frame decoder's own limit.
 *
 * Common options: --timeout-ms MS (per call; flood 5000, others 120000), --wait-ms MS (how
 * long oversize waits for the server to close, 10000), --rss (VmRSS of DUCHY's
 * duchy-gateway, found in RUN/supervisor.json next to its admin socket, before and after
 * the run), --rss-pid PID (the same for any process).  PARTY is a duchy id, an EDP id or
 * the MC id of DIR/federation.json; DUCHY a duchy id.  The server must authenticate as
 * duchies/DUCHY.
 *
 * Output: exactly one JSON object, as the last stdout line (diagnostics go to stderr):
 *   get-stage    {"command", "code", "code_name", "reason", "message", "protocol", "stage",
 *                 "stage_name", "etag"}
 *   flood        {"command", "calls", "ok", "resource_exhausted", "other": {NAME: count},
 *                 "p50_ms", "p99_ms", "max_ms", "achieved_rate", "connections",
 *                 "reconnects", ...}
 *   advance      {"mode", "code": int|null, "code_name", "reason", "message",
 *   raw-oversize  "bytes_sent", "body_bytes", "chunks_sent", "closed_by", "detail", ...}
 *                (code null: the connection ended without a STATUS; bytes_sent counts every
 *                plaintext byte written to TLS, prefixes included)
 *   any failure  {"command", "error"}
 * Exit: 0 the run itself worked (whatever the server answered), 1 harness error, 64 usage.
 */
#include "dy.h"
#include "mc_util.h"
#include "rpc.h"
#include "tls.h"
#include "wire.h"

#include "control.pb-c.h"

#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>

#define SY(x) Wfa__Measurement__System__V1alpha__##x
#define sy(x) wfa__measurement__system__v1alpha__##x
#define SYE(x) WFA__MEASUREMENT__SYSTEM__V1ALPHA__##x

#define S_PROG "fault-peer"
#define S_M_ADVANCE "/wfa.measurement.system.v1alpha.ComputationControl/AdvanceComputation"
#define S_M_GET_STAGE "/wfa.measurement.system.v1alpha.ComputationControl/GetComputationStage"
#define S_OVERSIZE_LEN (UINT32_C(1) << 30) /* what the oversized prefix claims: 1 GiB */
#define S_IO_CHUNK 16384
#define S_FLOOD_MAX_CALLS 5000000u /* rate x seconds */
#define S_MAX_CONNS 64
#define S_EXIT_OK 0
#define S_EXIT_FAIL 1
#define S_EXIT_USAGE 64

static const char s_usage[] =
    "usage: fault-peer COMMAND --dir DIR --as PARTY --to DUCHY [options]\n"
    "\n"
    "  get-stage --computation ID\n"
    "  flood --rate R --seconds S [--rpc get-stage] [--computation ID] [--connections N]\n"
    "  advance --computation ID --description DESC --file BLOB\n"
    "          [--mode ok|flip|truncate|oversize|bad-trailer] [--protocol P]\n"
    "          [--chunk-size BYTES] [--extra BYTES]\n"
    "  raw-oversize [--extra BYTES]\n"
    "\n"
    "Common: --timeout-ms MS, --wait-ms MS, --rss, --rss-pid PID.  Prints one JSON object as\n"
    "the last stdout line.  Exit: 0 ran, 1 harness error, 64 usage.\n";

/* ---- options and the federation ------------------------------------------------------------ */

typedef enum {
    S_MODE_OK = 0,
    S_MODE_FLIP,
    S_MODE_TRUNCATE,
    S_MODE_OVERSIZE,
    S_MODE_BAD_TRAILER,
} s_mode_t;
static const char *const s_mode_names[] = {"ok", "flip", "truncate", "oversize", "bad-trailer"};

/* The protocol of an AdvanceComputation header (its oneof). */
typedef enum { S_PROTO_NONE = 0, S_PROTO_LLV2, S_PROTO_ROLLV2, S_PROTO_HMSS } s_proto_t;
static const char *const s_proto_names[] = {"", "llv2", "llv2-reach-only", "hmss"};

typedef struct {
    const char *cmd;         /* borrowed from argv: the subcommand */
    const char *dir;         /* borrowed from argv */
    const char *as;          /* borrowed: the party we impersonate (its own credentials) */
    const char *to;          /* borrowed: the duchy we talk to */
    const char *computation; /* borrowed: bare computation id */
    const char *description; /* borrowed: enum name or number */
    const char *file;        /* borrowed: the body to upload */
    const char *rpc;         /* borrowed: flood's method ("get-stage") */
    s_mode_t mode;
    s_proto_t protocol; /* NONE: work it out */
    double rate;        /* flood: calls per second */
    double seconds;     /* flood: duration */
    int connections;    /* flood: 0 = automatic */
    size_t chunk_size;  /* advance: body chunk bytes */
    size_t extra;       /* oversize: bytes after the oversized prefix */
    int timeout_ms;     /* per call; 0 = the command's default */
    int wait_ms;        /* oversize: wait for the server to close */
    bool rss;           /* measure the receiving gateway's VmRSS */
    long rss_pid;       /* explicit process to measure, 0 = none */
} s_opts_t;

typedef struct {
    s_opts_t o;
    dy_fed_t fed; /* owned */
    bool fed_loaded;
    char party[DY_PARTY_ID_MAX];  /* our party id as the server sees it */
    char expect[DY_PARTY_ID_MAX]; /* "duchies/<to>" */
    char host[256];               /* the receiving gateway */
    int port;
    char run_dir[PATH_MAX]; /* the receiving duchy's runtime dir ("" if unknown) */
    SSL_CTX *ctx;           /* owned: client context with our credentials */
} s_peer_t;

/* Prints the failure JSON and returns code. */
static int DY_PRINTF(3, 4) s_fail(const s_peer_t *p, int code, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    fprintf(stderr, S_PROG ": %s\n", msg);
    fputs("{\"command\": ", stdout);
    dy_json_put_str(stdout, p && p->o.cmd ? p->o.cmd : "");
    fputs(", \"error\": ", stdout);
    dy_json_put_str(stdout, msg);
    fputs("}\n", stdout);
    fflush(stdout);
    return code;
}

static int64_t s_mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int64_t s_mono_ms(void)
{
    return s_mono_us() / 1000;
}

static uint64_t s_unix_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* A path from federation.json, made absolute against DIR when relative. */
static void s_fed_path(const char *dir, const char *path, char *out, size_t cap)
{
    if (path[0] == '/')
        snprintf(out, cap, "%s", path);
    else
        snprintf(out, cap, "%s/%s", dir, path);
}

/* The TLS credentials of --as, and the receiving duchy's admin socket directory.  The
 * duchies' TLS credentials are not part of dy_fed_t (the MC and EDP tools never act as a
 * duchy), so they are read from federation.json directly.  0 or -1 (message printed). */
static int s_credentials(s_peer_t *p, char *cert, char *key, size_t cap, char *err, size_t errlen)
{
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/federation.json", p->o.dir);
    char jerr[256];
    dy_json_t *j = dy_json_load(path, jerr, sizeof(jerr));
    if (j == NULL) {
        snprintf(err, errlen, "%s", jerr);
        return -1;
    }
    int rc = -1;
    const dy_json_t *ds = dy_json_get(j, "duchies");
    for (size_t i = 0; ds != NULL && ds->type == DY_JSON_ARRAY && i < ds->n; i++) {
        const char *id = dy_json_str(dy_json_get(&ds->items[i], "id"));
        if (id == NULL)
            continue;
        if (strcmp(id, p->o.to) == 0) {
            const char *admin = dy_json_str(dy_json_get(&ds->items[i], "admin"));
            if (admin != NULL && strncmp(admin, "ipc://", 6) == 0) {
                snprintf(p->run_dir, sizeof(p->run_dir), "%s", admin + 6);
                char *slash = strrchr(p->run_dir, '/');
                if (slash != NULL)
                    *slash = '\0';
            }
        }
        if (strcmp(id, p->o.as) == 0) {
            const char *c = dy_json_str(dy_json_get(&ds->items[i], "cert"));
            const char *k = dy_json_str(dy_json_get(&ds->items[i], "key"));
            if (c == NULL || k == NULL) {
                snprintf(err, errlen, "%.200s: duchy %.64s has no cert/key", path, id);
                goto out;
            }
            s_fed_path(p->o.dir, c, cert, cap);
            s_fed_path(p->o.dir, k, key, cap);
            snprintf(p->party, sizeof(p->party), "duchies/%s", id);
            rc = 0;
        }
    }
    if (rc == 0)
        goto out;
    int e = dy_fed_edp_index(&p->fed, p->o.as);
    if (e >= 0) {
        snprintf(cert, cap, "%s", p->fed.edps[e].cert);
        snprintf(key, cap, "%s", p->fed.edps[e].key);
        snprintf(p->party, sizeof(p->party), "dataProviders/%s", p->o.as);
        rc = 0;
    } else if (p->fed.mc.id != NULL && strcmp(p->fed.mc.id, p->o.as) == 0) {
        snprintf(cert, cap, "%s", p->fed.mc.cert);
        snprintf(key, cap, "%s", p->fed.mc.key);
        snprintf(p->party, sizeof(p->party), "measurementConsumers/%s", p->o.as);
        rc = 0;
    } else {
        snprintf(err, errlen, "--as %.64s: no such party in %.200s", p->o.as, path);
    }
out:
    dy_json_destroy(&j);
    return rc;
}

/* Loads the federation, our credentials and the receiver's endpoint.  0, or an exit code
 * (the failure JSON printed). */
static int s_setup(s_peer_t *p)
{
    char err[512] = "";
    if (dy_fed_load(p->o.dir, &p->fed, err, sizeof(err)) < 0)
        return s_fail(p, S_EXIT_FAIL, "federation: %s", err);
    p->fed_loaded = true;
    const dy_fed_duchy_t *to = NULL;
    for (size_t i = 0; i < p->fed.nduchies; i++)
        if (strcmp(p->fed.duchies[i].id, p->o.to) == 0)
            to = &p->fed.duchies[i];
    if (to == NULL)
        return s_fail(p, S_EXIT_USAGE, "--to %s: no such duchy in %s/federation.json", p->o.to,
                      p->o.dir);
    if (dy_fed_split_endpoint(to->endpoint, p->host, sizeof(p->host), &p->port) < 0)
        return s_fail(p, S_EXIT_FAIL, "duchy %s: bad endpoint %s", to->id, to->endpoint);
    snprintf(p->expect, sizeof(p->expect), "duchies/%s", to->id);
    char cert[PATH_MAX], key[PATH_MAX];
    if (s_credentials(p, cert, key, sizeof(cert), err, sizeof(err)) < 0)
        return s_fail(p, strstr(err, "no such party") ? S_EXIT_USAGE : S_EXIT_FAIL, "%s", err);
    dy_parties_t *parties = dy_parties_load(p->fed.parties, err, sizeof(err));
    if (parties == NULL)
        return s_fail(p, S_EXIT_FAIL, "party table: %s", err);
    dy_tls_conf_t tc = {.cert_path = cert,
                        .key_path = key,
                        .trusted_ca_path = p->fed.trusted_ca,
                        .parties = parties,
                        .expected_name = p->fed.tls_name};
    p->ctx = dy_tls_client_ctx(&tc, err, sizeof(err));
    dy_parties_destroy(&parties);
    if (p->ctx == NULL)
        return s_fail(p, S_EXIT_FAIL, "TLS client context for %s: %s", p->party, err);
    return 0;
}

static void s_teardown(s_peer_t *p)
{
    SSL_CTX_free(p->ctx);
    p->ctx = NULL;
    if (p->fed_loaded)
        dy_fed_free(&p->fed);
}

/* A blocking rpc client to the receiver, checked to be duchies/<to>.  NULL with err set. */
static dy_rpc_client_t *s_dial(const s_peer_t *p, char *err, size_t errlen)
{
    dy_rpc_client_conf_t cc = {.ctx = p->ctx, .host = p->host, .port = p->port};
    dy_rpc_client_t *c = dy_rpc_client_new(&cc, err, errlen);
    if (c == NULL)
        return NULL;
    if (strcmp(dy_rpc_client_peer(c), p->expect) != 0) {
        snprintf(err, errlen, "%s:%d authenticated as %s, not %s", p->host, p->port,
                 dy_rpc_client_peer(c), p->expect);
        dy_rpc_client_destroy(&c);
    }
    return c;
}

/* ---- VmRSS ------------------------------------------------------------------------------- */

/* VmRSS of pid in KiB, or -1. */
static long s_rss_kb(long pid)
{
    char path[64], line[256];
    snprintf(path, sizeof(path), "/proc/%ld/status", pid);
    FILE *f = fopen(path, "re");
    if (f == NULL)
        return -1;
    long kb = -1;
    while (fgets(line, sizeof(line), f) != NULL)
        if (strncmp(line, "VmRSS:", 6) == 0) {
            kb = strtol(line + 6, NULL, 10);
            break;
        }
    fclose(f);
    return kb;
}

/* The pid of the receiving duchy's duchy-gateway from RUN/supervisor.json, or -1. */
static long s_gateway_pid(const s_peer_t *p)
{
    if (p->run_dir[0] == '\0')
        return -1;
    char path[PATH_MAX + 32], err[256];
    snprintf(path, sizeof(path), "%s/supervisor.json", p->run_dir);
    dy_json_t *j = dy_json_load(path, err, sizeof(err));
    if (j == NULL)
        return -1;
    long pid = -1;
    const dy_json_t *a = dy_json_get(j, "actors");
    for (size_t i = 0; a != NULL && a->type == DY_JSON_ARRAY && i < a->n; i++) {
        const char *name = dy_json_str(dy_json_get(&a->items[i], "name"));
        uint64_t v = 0;
        if (name != NULL && strcmp(name, "duchy-gateway") == 0 &&
            dy_json_u64(dy_json_get(&a->items[i], "pid"), &v) == 0)
            pid = (long)v;
    }
    dy_json_destroy(&j);
    return pid;
}

/* ---- a raw connection: frames by hand, so the protocol can be broken ------------------------ */

typedef struct {
    SSL *ssl;               /* owned; non-blocking socket after the handshake */
    int fd;                 /* the socket, owned through ssl */
    dy_wire_reader_t rd;    /* owned: frames from the server */
    uint8_t in[S_IO_CHUNK]; /* plaintext read but not yet fed to rd */
    size_t in_off, in_len;
    uint64_t sent; /* plaintext bytes written (frames with their prefixes) */
    bool eof;      /* the server closed (close_notify, FIN or reset) */
    char err[160]; /* the last transport failure */
} s_raw_t;

/* Connects and checks the server's identity.  0 or -1 with err set. */
static int s_raw_open(s_raw_t *r, const s_peer_t *p, char *err, size_t errlen)
{
    memset(r, 0, sizeof(*r));
    r->ssl = dy_tls_connect(p->ctx, p->host, (uint16_t)p->port, 10000, err, errlen);
    if (r->ssl == NULL)
        return -1;
    r->fd = SSL_get_fd(r->ssl);
    char peer[DY_PARTY_ID_MAX];
    int rc = dy_tls_peer_identity(r->ssl, peer, sizeof(peer));
    if (rc < 0 || strcmp(peer, p->expect) != 0) {
        snprintf(err, errlen, "server identity %s, not %s", rc < 0 ? strerror(-rc) : peer,
                 p->expect);
        dy_tls_close(&r->ssl);
        return -1;
    }
    int fl = fcntl(r->fd, F_GETFL);
    if (fl < 0 || fcntl(r->fd, F_SETFL, fl | O_NONBLOCK) < 0) {
        snprintf(err, errlen, "fcntl: %s", strerror(errno));
        dy_tls_close(&r->ssl);
        return -1;
    }
    SSL_set_mode(r->ssl, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    dy_wire_reader_init(&r->rd, 0);
    return 0;
}

/* Closes: with close_notify (graceful) or without it, a bare FIN (abrupt). */
static void s_raw_close(s_raw_t *r, bool graceful)
{
    if (r->ssl != NULL && !graceful)
        SSL_set_shutdown(r->ssl, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
    dy_tls_close(&r->ssl);
    dy_wire_reader_free(&r->rd);
}

static int s_raw_wait(s_raw_t *r, short events, int64_t deadline)
{
    for (;;) {
        int64_t left = deadline - s_mono_ms();
        if (left <= 0)
            return -ETIMEDOUT;
        struct pollfd pfd = {.fd = r->fd, .events = events};
        int n = poll(&pfd, 1, (int)(left > INT32_MAX ? INT32_MAX : left));
        if (n > 0)
            return 0;
        if (n < 0 && errno != EINTR)
            return -errno;
    }
}

static int s_raw_ssl_fail(s_raw_t *r, int ret)
{
    int se = SSL_get_error(r->ssl, ret);
    if (se == SSL_ERROR_ZERO_RETURN)
        snprintf(r->err, sizeof(r->err), "closed by the server (close_notify)");
    else
        (void)dy_tls_describe_error(r->ssl, ret, r->err, sizeof(r->err));
    ERR_clear_error();
    r->eof = true;
    return -ECONNRESET;
}

/* Writes n bytes before deadline.  0, -ETIMEDOUT or -ECONNRESET. */
static int s_raw_write(s_raw_t *r, const void *data, size_t n, int64_t deadline)
{
    const uint8_t *q = data;
    while (n > 0) {
        ERR_clear_error();
        int w = SSL_write(r->ssl, q, (int)(n > (1u << 20) ? (1u << 20) : n));
        if (w > 0) {
            q += w;
            n -= (size_t)w;
            r->sent += (uint64_t)w;
            continue;
        }
        int se = SSL_get_error(r->ssl, w);
        if (se == SSL_ERROR_WANT_WRITE || se == SSL_ERROR_WANT_READ) {
            int rc = s_raw_wait(r, se == SSL_ERROR_WANT_WRITE ? POLLOUT : POLLIN, deadline);
            if (rc < 0)
                return rc;
            continue;
        }
        return s_raw_ssl_fail(r, w);
    }
    return 0;
}

static int s_raw_write_buf(s_raw_t *r, dy_buf_t *b, int64_t deadline)
{
    int rc = s_raw_write(r, b->data, b->len, deadline);
    b->len = 0;
    return rc;
}

/* The next frame from the server.  0 with *ret (caller frees); -EAGAIN (try_only, nothing
 * whole yet); -ETIMEDOUT; -ECONNRESET (closed: r->eof); -EPROTO (a bad frame). */
static int s_raw_read(s_raw_t *r, int64_t deadline, bool try_only, Halo__Wire__V1__Frame **ret)
{
    for (;;) {
        if (r->in_off < r->in_len) {
            size_t used = 0, flen = 0;
            const uint8_t *fb = NULL;
            int rc = dy_wire_reader_feed(&r->rd, r->in + r->in_off, r->in_len - r->in_off, &used,
                                         &fb, &flen);
            r->in_off += used;
            if (rc < 0) {
                snprintf(r->err, sizeof(r->err), "server frame refused: %s", strerror(-rc));
                return -EPROTO;
            }
            if (rc == 1) {
                const char *why = "";
                if (dy_wire_frame_decode(fb, flen, r->rd.max_frame, ret, &why) < 0) {
                    snprintf(r->err, sizeof(r->err), "bad frame from the server: %s", why);
                    return -EPROTO;
                }
                return 0;
            }
            continue;
        }
        if (r->eof)
            return -ECONNRESET;
        r->in_off = r->in_len = 0;
        ERR_clear_error();
        int n = SSL_read(r->ssl, r->in, (int)sizeof(r->in));
        if (n > 0) {
            r->in_len = (size_t)n;
            continue;
        }
        int se = SSL_get_error(r->ssl, n);
        if (se == SSL_ERROR_WANT_READ || se == SSL_ERROR_WANT_WRITE) {
            if (try_only)
                return -EAGAIN;
            int rc = s_raw_wait(r, se == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, deadline);
            if (rc < 0)
                return rc;
            continue;
        }
        return s_raw_ssl_fail(r, n);
    }
}

/* ---- the outcome of a raw exchange ------------------------------------------------------- */

typedef struct {
    bool have_status;      /* a STATUS frame arrived */
    int code;              /* its code */
    char reason[32];       /* its reason ("" or STAGE_NOT_READY, ...) */
    char message[256];     /* its message */
    bool got_response;     /* a MESSAGE (the response) arrived */
    const char *closed_by; /* "server", "client", "timeout" or NULL (still open) */
    uint64_t chunks_sent;
    uint64_t body_bytes; /* chunk payload bytes sent */
    char detail[320];    /* what the tool saw, for people */
} s_outcome_t;

/* What one server frame means during an upload.  1: STATUS (the call is over), 0: go on. */
static int s_on_frame(const Halo__Wire__V1__Frame *f, dy_wire_credit_t *credit, s_outcome_t *out)
{
    switch (f->kind) {
    case HALO__WIRE__V1__KIND__STATUS:
        out->have_status = true;
        out->code = f->status ? f->status->code : 0;
        snprintf(out->reason, sizeof(out->reason), "%s",
                 f->status && f->status->reason ? f->status->reason : "");
        snprintf(out->message, sizeof(out->message), "%s",
                 f->status && f->status->message ? f->status->message : "");
        return 1;
    case HALO__WIRE__V1__KIND__CREDIT:
        if (credit != NULL)
            (void)dy_wire_credit_grant(credit, f->credit);
        return 0;
    case HALO__WIRE__V1__KIND__MESSAGE:
        out->got_response = true;
        return 0;
    default:
        return 0;
    }
}

/* Reads until a STATUS, the server's close or the deadline. */
static void s_await_status(s_raw_t *r, int64_t deadline, dy_wire_credit_t *credit, s_outcome_t *out)
{
    while (!out->have_status) {
        Halo__Wire__V1__Frame *f = NULL;
        int rc = s_raw_read(r, deadline, false, &f);
        if (rc == -ETIMEDOUT) {
            out->closed_by = "timeout";
            snprintf(out->detail, sizeof(out->detail), "no STATUS before the deadline");
            return;
        }
        if (rc < 0) {
            out->closed_by = "server";
            snprintf(out->detail, sizeof(out->detail), "connection ended without a STATUS: %s",
                     r->err);
            return;
        }
        (void)s_on_frame(f, credit, out);
        dy_wire_frame_free(&f);
    }
}

/* After a STATUS that ends the connection (oversize): waits for the close itself. */
static void s_await_close(s_raw_t *r, int64_t deadline, s_outcome_t *out)
{
    for (;;) {
        Halo__Wire__V1__Frame *f = NULL;
        int rc = s_raw_read(r, deadline, false, &f);
        if (rc == -ETIMEDOUT) {
            out->closed_by = "timeout";
            return;
        }
        if (rc < 0) {
            out->closed_by = "server";
            return;
        }
        if (!out->have_status)
            (void)s_on_frame(f, NULL, out);
        dy_wire_frame_free(&f);
    }
}

/* Writes a length prefix claiming S_OVERSIZE_LEN and `extra` bytes of garbage. */
static int s_send_oversize(s_raw_t *r, size_t extra, int64_t deadline)
{
    uint8_t pre[4] = {(uint8_t)(S_OVERSIZE_LEN >> 24), (uint8_t)(S_OVERSIZE_LEN >> 16),
                      (uint8_t)(S_OVERSIZE_LEN >> 8), (uint8_t)S_OVERSIZE_LEN};
    int rc = s_raw_write(r, pre, sizeof(pre), deadline);
    uint8_t junk[4096];
    memset(junk, 0xa5, sizeof(junk));
    while (rc == 0 && extra > 0) {
        size_t n = extra < sizeof(junk) ? extra : sizeof(junk);
        rc = s_raw_write(r, junk, n, deadline);
        extra -= n;
    }
    return rc;
}

static void s_put_outcome(const char *mode, const s_raw_t *r, const s_outcome_t *o)
{
    fputs("\"mode\": ", stdout);
    dy_json_put_str(stdout, mode);
    if (o->have_status) {
        const char *name = dy_wire_status_name(o->code);
        printf(", \"code\": %d, \"code_name\": ", o->code);
        dy_json_put_str(stdout, name ? name : "?");
    } else {
        fputs(", \"code\": null, \"code_name\": null", stdout);
    }
    fputs(", \"reason\": ", stdout);
    dy_json_put_str(stdout, o->reason);
    fputs(", \"message\": ", stdout);
    dy_json_put_str(stdout, o->message);
    printf(", \"bytes_sent\": %" PRIu64 ", \"body_bytes\": %" PRIu64 ", \"chunks_sent\": %" PRIu64
           ", \"response\": %s, \"closed_by\": ",
           r->sent, o->body_bytes, o->chunks_sent, o->got_response ? "true" : "false");
    if (o->closed_by != NULL)
        dy_json_put_str(stdout, o->closed_by);
    else
        fputs("null", stdout);
    fputs(", \"detail\": ", stdout);
    dy_json_put_str(stdout, o->detail);
}

static void s_put_rss(long pid, long before, long after)
{
    if (pid <= 0)
        return;
    printf(", \"rss_pid\": %ld, \"rss_before_kb\": %ld, \"rss_after_kb\": %ld, "
           "\"rss_growth_kb\": %ld",
           pid, before, after, before >= 0 && after >= 0 ? after - before : 0);
}

/* The process whose RSS --rss / --rss-pid asks for, or 0 (none), or -1 (not found). */
static long s_rss_target(const s_peer_t *p)
{
    if (p->o.rss_pid > 0)
        return p->o.rss_pid;
    if (!p->o.rss)
        return 0;
    return s_gateway_pid(p);
}

/* ---- get-stage ----------------------------------------------------------------------------- */

/* The stage enum descriptor and value of a ComputationStage. */
static void s_stage_of(const SY(ComputationStage) * cs, s_proto_t *ret_proto, int *ret_stage,
                       const char **ret_name)
{
    const ProtobufCEnumDescriptor *d = NULL;
    int v = -1;
    *ret_proto = S_PROTO_NONE;
    switch (cs->stage_case) {
    case SYE(COMPUTATION_STAGE__STAGE_LIQUID_LEGIONS_V2_STAGE):
        *ret_proto = S_PROTO_LLV2;
        d = &sy(liquid_legions_v2_stage__stage__descriptor);
        v = cs->liquid_legions_v2_stage ? (int)cs->liquid_legions_v2_stage->stage : -1;
        break;
    case SYE(COMPUTATION_STAGE__STAGE_REACH_ONLY_LIQUID_LEGIONS_STAGE):
        *ret_proto = S_PROTO_ROLLV2;
        d = &sy(reach_only_liquid_legions_v2_stage__stage__descriptor);
        v = cs->reach_only_liquid_legions_stage ? (int)cs->reach_only_liquid_legions_stage->stage
                                                : -1;
        break;
    case SYE(COMPUTATION_STAGE__STAGE_HONEST_MAJORITY_SHARE_SHUFFLE_STAGE):
        *ret_proto = S_PROTO_HMSS;
        d = &sy(honest_majority_share_shuffle_stage__stage__descriptor);
        v = cs->honest_majority_share_shuffle_stage
                ? (int)cs->honest_majority_share_shuffle_stage->stage
                : -1;
        break;
    default:
        break;
    }
    const ProtobufCEnumValue *ev = d && v >= 0 ? protobuf_c_enum_descriptor_get_value(d, v) : NULL;
    *ret_stage = v;
    *ret_name = ev ? ev->name : "";
}

typedef struct {
    dy_rpc_status_t st;
    bool ok;
    s_proto_t proto;
    int stage;
    const char *stage_name; /* static (descriptor) */
    char etag[64];
} s_stage_t;

/* One GetComputationStage on client c.  Returns the rpc result (0 OK). */
static int s_get_stage_call(const s_peer_t *p, dy_rpc_client_t *c, const char *computation,
                            int timeout_ms, s_stage_t *out)
{
    char name[256];
    snprintf(name, sizeof(name), "computations/%s/participants/%s/computationStage", computation,
             p->o.to);
    SY(GetComputationStageRequest) q = SYE(GET_COMPUTATION_STAGE_REQUEST__INIT);
    q.name = name;
    ProtobufCMessage *resp = NULL;
    memset(out, 0, sizeof(*out));
    out->stage = -1;
    out->stage_name = "";
    int rc = dy_rpc_unary(c, S_M_GET_STAGE, &q.base, &sy(computation_stage__descriptor), &resp,
                          timeout_ms, &out->st);
    if (rc == 0 && resp != NULL) {
        const SY(ComputationStage) *cs = (const SY(ComputationStage) *)resp;
        out->ok = true;
        s_stage_of(cs, &out->proto, &out->stage, &out->stage_name);
        snprintf(out->etag, sizeof(out->etag), "%s", cs->etag ? cs->etag : "");
        protobuf_c_message_free_unpacked(resp, NULL);
    }
    return rc;
}

static int s_cmd_get_stage(s_peer_t *p)
{
    char err[512] = "";
    dy_rpc_client_t *c = s_dial(p, err, sizeof(err));
    if (c == NULL)
        return s_fail(p, S_EXIT_FAIL, "connect %s:%d: %s", p->host, p->port, err);
    s_stage_t s;
    (void)s_get_stage_call(p, c, p->o.computation, p->o.timeout_ms ? p->o.timeout_ms : 30000, &s);
    dy_rpc_client_destroy(&c);
    const char *cn = dy_wire_status_name(s.st.code);
    const char *rn = dy_wire_reason_name(s.st.reason);
    fputs("{\"command\": \"get-stage\", \"as\": ", stdout);
    dy_json_put_str(stdout, p->party);
    fputs(", \"to\": ", stdout);
    dy_json_put_str(stdout, p->o.to);
    fputs(", \"computation\": ", stdout);
    dy_json_put_str(stdout, p->o.computation);
    printf(", \"code\": %d, \"code_name\": ", s.st.code);
    dy_json_put_str(stdout, cn ? cn : "?");
    fputs(", \"reason\": ", stdout);
    dy_json_put_str(stdout, rn ? rn : "");
    fputs(", \"message\": ", stdout);
    dy_json_put_str(stdout, s.st.message);
    if (s.ok) {
        fputs(", \"protocol\": ", stdout);
        dy_json_put_str(stdout, s_proto_names[s.proto]);
        printf(", \"stage\": %d, \"stage_name\": ", s.stage);
        dy_json_put_str(stdout, s.stage_name);
        fputs(", \"etag\": ", stdout);
        dy_json_put_str(stdout, s.etag);
    } else {
        fputs(", \"protocol\": null, \"stage\": null, \"stage_name\": null, \"etag\": null",
              stdout);
    }
    fputs("}\n", stdout);
    return S_EXIT_OK;
}

/* ---- flood --------------------------------------------------------------------------------- */

typedef struct {
    const s_peer_t *p;  /* borrowed */
    dy_rpc_client_t *c; /* owned; NULL while disconnected */
    int idx, nconn;
    int64_t t0_us;  /* common start, monotonic */
    int64_t end_us; /* no call is started at or after this */
    char name[256]; /* the request's name */
    float *lat_ms;  /* owned: one latency per call */
    size_t nlat, caplat;
    uint64_t by_code[_DY_WIRE_STATUS_MAX]; /* answers by status code */
    uint64_t reconnects;
    uint64_t connect_failures;
} s_worker_t;

static void *s_flood_worker(void *arg)
{
    s_worker_t *w = arg;
    const s_peer_t *p = w->p;
    double rate = p->o.rate;
    int timeout = p->o.timeout_ms ? p->o.timeout_ms : 5000;
    SY(GetComputationStageRequest) q = SYE(GET_COMPUTATION_STAGE_REQUEST__INIT);
    q.name = w->name;
    for (uint64_t k = 0;; k++) {
        /* Open loop: call k of this worker is due at t0 + (k * nconn + idx) / rate; a worker
         * that falls behind catches up without waiting. */
        int64_t due = w->t0_us + (int64_t)(((double)k * w->nconn + w->idx) * 1e6 / rate);
        if (due >= w->end_us)
            break;
        int64_t now = s_mono_us();
        if (due > now) {
            struct timespec ts = {.tv_sec = (time_t)(due / 1000000),
                                  .tv_nsec = (long)(due % 1000000) * 1000};
            while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
                ;
        }
        if (w->c == NULL) {
            char err[256];
            w->c = s_dial(p, err, sizeof(err));
            if (w->c == NULL) {
                w->connect_failures++;
                continue; /* the slot is lost; try again at the next one */
            }
            w->reconnects++;
        }
        dy_rpc_status_t st;
        ProtobufCMessage *resp = NULL;
        int64_t t = s_mono_us();
        int rc = dy_rpc_unary(w->c, S_M_GET_STAGE, &q.base, &sy(computation_stage__descriptor),
                              &resp, timeout, &st);
        float ms = (float)(s_mono_us() - t) / 1000.0f;
        if (resp != NULL)
            protobuf_c_message_free_unpacked(resp, NULL);
        int code = rc == 0 ? 0 : st.code;
        if (code < 0 || code >= _DY_WIRE_STATUS_MAX)
            code = DY_WIRE_STATUS_UNKNOWN;
        w->by_code[code]++;
        if (w->nlat < w->caplat)
            w->lat_ms[w->nlat++] = ms;
        /* Transport-level outcomes leave the client unusable (rpc.h): start afresh. */
        if (code == DY_WIRE_STATUS_UNAVAILABLE || code == DY_WIRE_STATUS_INTERNAL ||
            code == DY_WIRE_STATUS_DEADLINE_EXCEEDED || code == DY_WIRE_STATUS_CANCELLED)
            dy_rpc_client_destroy(&w->c);
    }
    return NULL;
}

static int s_cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return x < y ? -1 : x > y;
}

static double s_pct(const float *v, size_t n, double q)
{
    if (n == 0)
        return 0;
    size_t i = (size_t)ceil(q * (double)n);
    if (i > 0)
        i--;
    if (i >= n)
        i = n - 1;
    return v[i];
}

static int s_cmd_flood(s_peer_t *p)
{
    const s_opts_t *o = &p->o;
    double total = o->rate * o->seconds;
    if (total > S_FLOOD_MAX_CALLS)
        return s_fail(p, S_EXIT_USAGE, "--rate x --seconds above %u calls", S_FLOOD_MAX_CALLS);
    int nconn = o->connections;
    if (nconn <= 0) {
        nconn = (int)ceil(o->rate / 50.0);
        if (nconn < 1)
            nconn = 1;
        if (nconn > S_MAX_CONNS)
            nconn = S_MAX_CONNS;
    }
    char id[DY_EXT_ID_LEN + 1];
    const char *comp = o->computation;
    if (comp == NULL) {
        dy_ext_id_encode(UINT64_C(0x0123456789abcdef), id); /* well-formed, never generated */
        comp = id;
    }
    s_worker_t *ws = calloc((size_t)nconn, sizeof(*ws));
    pthread_t *th = calloc((size_t)nconn, sizeof(*th));
    if (ws == NULL || th == NULL) {
        free(ws);
        free(th);
        return s_fail(p, S_EXIT_FAIL, "out of memory");
    }
    int ret = S_EXIT_OK;
    int started = 0;
    for (int i = 0; i < nconn; i++) {
        s_worker_t *w = &ws[i];
        w->p = p;
        w->idx = i;
        w->nconn = nconn;
        snprintf(w->name, sizeof(w->name), "computations/%s/participants/%s/computationStage", comp,
                 o->to);
        w->caplat = (size_t)ceil(total / nconn) + 2;
        w->lat_ms = calloc(w->caplat, sizeof(float));
        char err[512] = "";
        w->c = w->lat_ms ? s_dial(p, err, sizeof(err)) : NULL;
        if (w->c == NULL) {
            ret = s_fail(p, S_EXIT_FAIL, "connection %d to %s:%d: %s", i, p->host, p->port,
                         w->lat_ms ? err : "out of memory");
            goto out;
        }
    }
    /* Every connection is up before the clock starts: handshakes do not eat the schedule. */
    int64_t t0 = s_mono_us() + 20000;
    int64_t end = t0 + (int64_t)(o->seconds * 1e6);
    for (int i = 0; i < nconn; i++) {
        ws[i].t0_us = t0;
        ws[i].end_us = end;
        if (pthread_create(&th[i], NULL, s_flood_worker, &ws[i]) != 0) {
            ret = s_fail(p, S_EXIT_FAIL, "pthread_create: %s", strerror(errno));
            break;
        }
        started++;
    }
    for (int i = 0; i < started; i++)
        pthread_join(th[i], NULL);
    if (ret != S_EXIT_OK)
        goto out;
    /* At low rates the last call starts well before the window ends: rate over the window. */
    double elapsed = (double)(s_mono_us() - t0) / 1e6;
    double window = elapsed > o->seconds ? elapsed : o->seconds;

    uint64_t by_code[_DY_WIRE_STATUS_MAX] = {0}, calls = 0, reconnects = 0, cfail = 0;
    size_t nlat = 0;
    for (int i = 0; i < nconn; i++)
        nlat += ws[i].nlat;
    float *all = calloc(nlat ? nlat : 1, sizeof(float));
    if (all == NULL) {
        ret = s_fail(p, S_EXIT_FAIL, "out of memory");
        goto out;
    }
    size_t k = 0;
    for (int i = 0; i < nconn; i++) {
        for (int c = 0; c < _DY_WIRE_STATUS_MAX; c++) {
            by_code[c] += ws[i].by_code[c];
            calls += ws[i].by_code[c];
        }
        reconnects += ws[i].reconnects;
        cfail += ws[i].connect_failures;
        memcpy(all + k, ws[i].lat_ms, ws[i].nlat * sizeof(float));
        k += ws[i].nlat;
    }
    qsort(all, nlat, sizeof(float), s_cmp_float);
    fputs("{\"command\": \"flood\", \"as\": ", stdout);
    dy_json_put_str(stdout, p->party);
    fputs(", \"to\": ", stdout);
    dy_json_put_str(stdout, o->to);
    fputs(", \"rpc\": \"get-stage\", \"computation\": ", stdout);
    dy_json_put_str(stdout, comp);
    printf(", \"rate\": %.6g, \"seconds\": %.6g, \"connections\": %d", o->rate, o->seconds, nconn);
    printf(", \"calls\": %" PRIu64 ", \"ok\": %" PRIu64 ", \"resource_exhausted\": %" PRIu64
           ", \"other\": {",
           calls, by_code[DY_WIRE_STATUS_OK], by_code[DY_WIRE_STATUS_RESOURCE_EXHAUSTED]);
    bool first = true;
    for (int c = 1; c < _DY_WIRE_STATUS_MAX; c++) {
        if (c == DY_WIRE_STATUS_RESOURCE_EXHAUSTED || by_code[c] == 0)
            continue;
        printf("%s\"%s\": %" PRIu64, first ? "" : ", ", dy_wire_status_name(c), by_code[c]);
        first = false;
    }
    printf("}, \"p50_ms\": %.3f, \"p99_ms\": %.3f, \"max_ms\": %.3f", s_pct(all, nlat, 0.50),
           s_pct(all, nlat, 0.99), nlat ? (double)all[nlat - 1] : 0.0);
    printf(", \"elapsed_s\": %.3f, \"achieved_rate\": %.2f, \"reconnects\": %" PRIu64
           ", \"connect_failures\": %" PRIu64 "}\n",
           elapsed, (double)calls / window, reconnects, cfail);
    free(all);
out:
    for (int i = 0; i < nconn; i++) {
        dy_rpc_client_destroy(&ws[i].c);
        free(ws[i].lat_ms);
    }
    free(ws);
    free(th);
    return ret;
}

/* ---- advance ------------------------------------------------------------------------------- */

/* The description enum of a protocol. */
static const ProtobufCEnumDescriptor *s_desc_enum(s_proto_t proto)
{
    switch (proto) {
    case S_PROTO_LLV2:
        return &sy(liquid_legions_v2__description__descriptor);
    case S_PROTO_ROLLV2:
        return &sy(reach_only_liquid_legions_v2__description__descriptor);
    case S_PROTO_HMSS:
        return &sy(honest_majority_share_shuffle__description__descriptor);
    default:
        return NULL;
    }
}

/* Resolves --description (a name or a number) for proto.  0 or -EINVAL. */
static int s_desc_value(s_proto_t proto, const char *desc, int *ret)
{
    char *end = NULL;
    long v = strtol(desc, &end, 10);
    if (end != desc && *end == '\0') {
        if (v < 0 || v > INT32_MAX)
            return -EINVAL;
        *ret = (int)v; /* numbers go out as given, even undefined ones */
        return 0;
    }
    const ProtobufCEnumValue *ev =
        protobuf_c_enum_descriptor_get_value_by_name(s_desc_enum(proto), desc);
    if (ev == NULL)
        return -EINVAL;
    *ret = ev->value;
    return 0;
}

/* The protocols whose description enum has this name (a bit per s_proto_t). */
static unsigned s_desc_protocols(const char *desc)
{
    unsigned m = 0;
    for (s_proto_t pr = S_PROTO_LLV2; pr <= S_PROTO_HMSS; pr++)
        if (protobuf_c_enum_descriptor_get_value_by_name(s_desc_enum(pr), desc) != NULL)
            m |= 1u << pr;
    return m;
}

/* Reads a whole file.  0 or a negative errno. */
static int s_read_file(const char *path, dy_buf_t *out)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    uint8_t tmp[65536];
    int rc = 0;
    for (;;) {
        ssize_t n = read(fd, tmp, sizeof(tmp));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = -errno;
            break;
        }
        if (n == 0)
            break;
        if (dy_buf_append(out, tmp, (size_t)n) < 0) {
            rc = -ENOMEM;
            break;
        }
    }
    close(fd);
    return rc;
}

/* The header request: AdvanceComputationRequest{header{name, protocol{description}}}. */
static int s_encode_header(dy_buf_t *out, const char *computation, s_proto_t proto, int desc)
{
    char name[256];
    snprintf(name, sizeof(name), "computations/%s", computation);
    SY(LiquidLegionsV2) ll = SYE(LIQUID_LEGIONS_V2__INIT);
    SY(ReachOnlyLiquidLegionsV2) ro = SYE(REACH_ONLY_LIQUID_LEGIONS_V2__INIT);
    SY(HonestMajorityShareShuffle) hm = SYE(HONEST_MAJORITY_SHARE_SHUFFLE__INIT);
    SY(AdvanceComputationRequest__Header) h = SYE(ADVANCE_COMPUTATION_REQUEST__HEADER__INIT);
    h.name = name;
    switch (proto) {
    case S_PROTO_LLV2:
        ll.description = (SY(LiquidLegionsV2__Description))desc;
        h.protocol_case = SYE(ADVANCE_COMPUTATION_REQUEST__HEADER__PROTOCOL_LIQUID_LEGIONS_V2);
        h.liquid_legions_v2 = &ll;
        break;
    case S_PROTO_ROLLV2:
        ro.description = (SY(ReachOnlyLiquidLegionsV2__Description))desc;
        h.protocol_case =
            SYE(ADVANCE_COMPUTATION_REQUEST__HEADER__PROTOCOL_REACH_ONLY_LIQUID_LEGIONS_V2);
        h.reach_only_liquid_legions_v2 = &ro;
        break;
    default:
        hm.description = (SY(HonestMajorityShareShuffle__Description))desc;
        h.protocol_case =
            SYE(ADVANCE_COMPUTATION_REQUEST__HEADER__PROTOCOL_HONEST_MAJORITY_SHARE_SHUFFLE);
        h.honest_majority_share_shuffle = &hm;
        break;
    }
    SY(AdvanceComputationRequest) req = SYE(ADVANCE_COMPUTATION_REQUEST__INIT);
    req.payload_case = SYE(ADVANCE_COMPUTATION_REQUEST__PAYLOAD_HEADER);
    req.header = &h;
    return dy_wire_encode_pb(out, &req.base);
}

/* One body chunk MESSAGE frame. */
static int s_encode_chunk(dy_buf_t *out, const uint8_t *data, size_t n)
{
    SY(AdvanceComputationRequest__BodyChunk)
    bc = SYE(ADVANCE_COMPUTATION_REQUEST__BODY_CHUNK__INIT);
    bc.partial_data.data = (uint8_t *)data;
    bc.partial_data.len = n;
    SY(AdvanceComputationRequest) req = SYE(ADVANCE_COMPUTATION_REQUEST__INIT);
    req.payload_case = SYE(ADVANCE_COMPUTATION_REQUEST__PAYLOAD_BODY_CHUNK);
    req.body_chunk = &bc;
    return dy_wire_encode_pb(out, &req.base);
}

/* The trailer MESSAGE frame and HALF_CLOSE. */
static int s_encode_trailer(dy_buf_t *out, const uint8_t sha[32], uint64_t total)
{
    Halo__Wire__V1__Trailer t = HALO__WIRE__V1__TRAILER__INIT;
    t.sha256.data = (uint8_t *)sha;
    t.sha256.len = 32;
    t.total_length = total;
    SY(AdvanceComputationRequest) req = SYE(ADVANCE_COMPUTATION_REQUEST__INIT);
    req.payload_case = SYE(ADVANCE_COMPUTATION_REQUEST__PAYLOAD_TRAILER);
    req.trailer = &t;
    int rc = dy_wire_encode_pb(out, &req.base);
    return rc < 0 ? rc : dy_wire_encode_bare(out, HALO__WIRE__V1__KIND__HALF_CLOSE);
}

/* Waits until one MESSAGE may be sent, handling what the server says meanwhile.  0: go; 1:
 * the server ended the call (STATUS); negative: transport failure (out says what). */
static int s_take_credit(s_raw_t *r, dy_wire_credit_t *credit, int64_t deadline, s_outcome_t *out)
{
    for (;;) {
        Halo__Wire__V1__Frame *f = NULL;
        int rc = s_raw_read(r, deadline, true, &f);
        if (rc == -EAGAIN)
            break;
        if (rc < 0)
            return rc;
        rc = s_on_frame(f, credit, out);
        dy_wire_frame_free(&f);
        if (rc == 1)
            return 1;
    }
    while (dy_wire_credit_take(credit) == -EAGAIN) {
        Halo__Wire__V1__Frame *f = NULL;
        int rc = s_raw_read(r, deadline, false, &f);
        if (rc < 0)
            return rc;
        rc = s_on_frame(f, credit, out);
        dy_wire_frame_free(&f);
        if (rc == 1)
            return 1;
    }
    return 0;
}

/* A transport failure during the upload: record it, and look for a STATUS the server may
 * have sent before it closed. */
static void s_upload_broke(s_raw_t *r, int rc, s_outcome_t *out, const char *when)
{
    if (rc == -ETIMEDOUT) {
        out->closed_by = "timeout";
        snprintf(out->detail, sizeof(out->detail), "deadline passed %s", when);
        return;
    }
    out->closed_by = "server";
    snprintf(out->detail, sizeof(out->detail), "connection lost %s: %s", when, r->err);
    if (!r->eof)
        s_await_status(r, s_mono_ms() + 500, NULL, out);
}

static int s_cmd_advance(s_peer_t *p)
{
    const s_opts_t *o = &p->o;
    dy_buf_t body = {0};
    int rc = s_read_file(o->file, &body);
    if (rc < 0)
        return s_fail(p, S_EXIT_FAIL, "%s: %s", o->file, strerror(-rc));
    if (body.len == 0 && (o->mode == S_MODE_FLIP || o->mode == S_MODE_TRUNCATE)) {
        dy_buf_free(&body);
        return s_fail(p, S_EXIT_USAGE, "--mode %s needs a non-empty --file", s_mode_names[o->mode]);
    }
    int timeout = o->timeout_ms ? o->timeout_ms : 120000;

    /* The protocol: --protocol, else the only protocol with this description, else ask. */
    s_proto_t proto = o->protocol;
    const char *proto_from = "option";
    if (proto == S_PROTO_NONE) {
        unsigned m = s_desc_protocols(o->description);
        if (m == (1u << S_PROTO_LLV2) || m == (1u << S_PROTO_ROLLV2) || m == (1u << S_PROTO_HMSS)) {
            proto = m == (1u << S_PROTO_LLV2)     ? S_PROTO_LLV2
                    : m == (1u << S_PROTO_ROLLV2) ? S_PROTO_ROLLV2
                                                  : S_PROTO_HMSS;
            proto_from = "description";
        } else {
            char err[512] = "";
            dy_rpc_client_t *c = s_dial(p, err, sizeof(err));
            s_stage_t s;
            memset(&s, 0, sizeof(s));
            bool dialed = c != NULL;
            if (dialed)
                (void)s_get_stage_call(p, c, o->computation, 30000, &s);
            dy_rpc_client_destroy(&c);
            if (!dialed || !s.ok || s.proto == S_PROTO_NONE) {
                dy_buf_free(&body);
                return s_fail(p, S_EXIT_FAIL,
                              "cannot tell the protocol of %s (%s): pass --protocol",
                              o->computation, dialed ? s.st.message : err);
            }
            proto = s.proto;
            proto_from = "get-stage";
        }
    }
    int desc = 0;
    if (s_desc_value(proto, o->description, &desc) < 0) {
        dy_buf_free(&body);
        return s_fail(p, S_EXIT_USAGE, "--description %s is not a %s description", o->description,
                      s_proto_names[proto]);
    }

    uint8_t sha[32];
    if (dy_wire_sha256(body.data, body.len, sha) < 0) {
        dy_buf_free(&body);
        return s_fail(p, S_EXIT_FAIL, "SHA-256 failed");
    }
    if (o->mode == S_MODE_BAD_TRAILER)
        sha[0] ^= 0x01;

    long rss_pid = s_rss_target(p);
    long rss_before = rss_pid > 0 ? s_rss_kb(rss_pid) : -1;

    s_raw_t r;
    char err[512] = "";
    if (s_raw_open(&r, p, err, sizeof(err)) < 0) {
        dy_buf_free(&body);
        return s_fail(p, S_EXIT_FAIL, "connect %s:%d: %s", p->host, p->port, err);
    }
    int64_t deadline = s_mono_ms() + timeout;
    s_outcome_t out;
    memset(&out, 0, sizeof(out));
    dy_buf_t fb = {0};
    char rid[33];
    rc = dy_wire_request_id_new(rid);
    if (rc == 0)
        rc = dy_wire_encode_call_start(&fb, S_M_ADVANCE, rid, s_unix_ms() + (uint64_t)timeout);
    if (rc == 0)
        rc = s_encode_header(&fb, o->computation, proto, desc);
    if (rc < 0) {
        s_raw_close(&r, true);
        dy_buf_free(&body);
        dy_buf_free(&fb);
        return s_fail(p, S_EXIT_FAIL, "cannot encode the header: %s", strerror(-rc));
    }
    dy_wire_credit_t credit;
    dy_wire_credit_init(&credit);
    (void)dy_wire_credit_take(&credit); /* the header needs no credit */
    rc = s_raw_write_buf(&r, &fb, deadline);
    if (rc < 0) {
        s_upload_broke(&r, rc, &out, "sending the header");
        goto report;
    }

    if (o->mode == S_MODE_OVERSIZE) {
        /* The header must pass first: the first CREDIT says it did. */
        rc = s_take_credit(&r, &credit, deadline, &out);
        if (rc == 1) {
            snprintf(out.detail, sizeof(out.detail), "header refused; no oversized frame sent");
            goto report;
        }
        if (rc < 0) {
            s_upload_broke(&r, rc, &out, "waiting for credit");
            goto report;
        }
        rc = s_send_oversize(&r, o->extra, deadline);
        int64_t wait_until = s_mono_ms() + (o->wait_ms ? o->wait_ms : 10000);
        if (rc < 0 && r.eof) {
            /* The server closed while we wrote: a STATUS may be waiting. */
            s_await_status(&r, s_mono_ms() + 500, NULL, &out);
        } else {
            s_await_status(&r, wait_until, NULL, &out);
            if (out.have_status)
                s_await_close(&r, wait_until, &out);
        }
        snprintf(out.detail, sizeof(out.detail),
                 "prefix claiming %" PRIu32 " bytes and %zu more bytes sent after the header; "
                 "connection %s",
                 S_OVERSIZE_LEN, o->extra,
                 out.closed_by == NULL || strcmp(out.closed_by, "timeout") == 0
                     ? "still open when the wait ended"
                     : "closed by the server");
        goto report;
    }

    size_t cs = o->chunk_size;
    uint64_t nchunks = body.len == 0 ? 0 : (body.len + cs - 1) / cs;
    uint64_t flip_chunk = nchunks / 2;
    uint64_t stop_after = o->mode == S_MODE_TRUNCATE ? (nchunks / 2 ? nchunks / 2 : 1) : nchunks;
    for (uint64_t i = 0; i < nchunks; i++) {
        size_t off = (size_t)(i * cs);
        size_t n = body.len - off < cs ? body.len - off : cs;
        rc = s_take_credit(&r, &credit, deadline, &out);
        if (rc == 1) {
            snprintf(out.detail, sizeof(out.detail),
                     "server ended the call after %" PRIu64 " chunk(s)", out.chunks_sent);
            goto report;
        }
        if (rc < 0) {
            s_upload_broke(&r, rc, &out, "waiting for credit");
            goto report;
        }
        if (o->mode == S_MODE_FLIP && i == flip_chunk) {
            uint8_t *copy = malloc(n);
            if (copy == NULL) {
                rc = -ENOMEM;
            } else {
                memcpy(copy, body.data + off, n);
                copy[n / 2] ^= 0x01;
                rc = s_encode_chunk(&fb, copy, n);
                free(copy);
            }
        } else {
            rc = s_encode_chunk(&fb, body.data + off, n);
        }
        if (rc < 0) {
            s_raw_close(&r, true);
            dy_buf_free(&body);
            dy_buf_free(&fb);
            return s_fail(p, S_EXIT_FAIL, "cannot encode chunk %" PRIu64 ": %s", i, strerror(-rc));
        }
        if (i == stop_after) { /* truncate: half of this chunk's frame, then hang up */
            fb.len /= 2;
            (void)s_raw_write_buf(&r, &fb, deadline);
            break;
        }
        rc = s_raw_write_buf(&r, &fb, deadline);
        if (rc < 0) {
            s_upload_broke(&r, rc, &out, "sending a chunk");
            goto report;
        }
        out.chunks_sent++;
        out.body_bytes += n;
    }
    if (o->mode == S_MODE_TRUNCATE) {
        /* Whatever the server said so far (CREDIT; a STATUS would be news). */
        Halo__Wire__V1__Frame *f = NULL;
        while (!out.have_status && s_raw_read(&r, deadline, true, &f) == 0) {
            (void)s_on_frame(f, &credit, &out);
            dy_wire_frame_free(&f);
        }
        out.closed_by = "client";
        snprintf(out.detail, sizeof(out.detail),
                 "closed without close_notify after %" PRIu64 " of %" PRIu64
                 " chunk(s)%s, no trailer",
                 out.chunks_sent, nchunks, out.chunks_sent < nchunks ? " and half a frame" : "");
        s_raw_close(&r, false);
        goto report;
    }
    rc = s_take_credit(&r, &credit, deadline, &out);
    if (rc == 1) {
        snprintf(out.detail, sizeof(out.detail), "server ended the call before the trailer");
        goto report;
    }
    if (rc < 0) {
        s_upload_broke(&r, rc, &out, "waiting for credit for the trailer");
        goto report;
    }
    rc = s_encode_trailer(&fb, sha, body.len);
    if (rc == 0)
        rc = s_raw_write_buf(&r, &fb, deadline);
    if (rc < 0) {
        s_upload_broke(&r, rc, &out, "sending the trailer");
        goto report;
    }
    s_await_status(&r, deadline, &credit, &out);
    if (out.have_status)
        snprintf(out.detail, sizeof(out.detail),
                 "%" PRIu64 " chunk(s), trailer%s%s sent; STATUS received", out.chunks_sent,
                 o->mode == S_MODE_BAD_TRAILER ? " (wrong SHA-256)" : "",
                 o->mode == S_MODE_FLIP ? " (over the unflipped bytes)" : "");

report:
    if (r.ssl != NULL)
        s_raw_close(&r, true);
    long rss_after = -1;
    if (rss_pid > 0) {
        struct timespec ts = {0, 200 * 1000000L}; /* let the server finish its step */
        nanosleep(&ts, NULL);
        rss_after = s_rss_kb(rss_pid);
    }
    char hex[65];
    (void)dy_wire_sha256(body.data, body.len, sha);
    dy_hex(sha, 32, hex);
    fputs("{\"command\": \"advance\", ", stdout);
    s_put_outcome(s_mode_names[o->mode], &r, &out);
    fputs(", \"as\": ", stdout);
    dy_json_put_str(stdout, p->party);
    fputs(", \"to\": ", stdout);
    dy_json_put_str(stdout, o->to);
    fputs(", \"computation\": ", stdout);
    dy_json_put_str(stdout, o->computation);
    fputs(", \"protocol\": ", stdout);
    dy_json_put_str(stdout, s_proto_names[proto]);
    fputs(", \"protocol_from\": ", stdout);
    dy_json_put_str(stdout, proto_from);
    printf(", \"description\": %d, \"file_bytes\": %zu, \"file_sha256\": \"%s\"", desc, body.len,
           hex);
    s_put_rss(rss_pid, rss_before, rss_after);
    fputs("}\n", stdout);
    dy_buf_free(&body);
    dy_buf_free(&fb);
    return S_EXIT_OK;
}

/* ---- raw-oversize -------------------------------------------------------------------------- */

static int s_cmd_raw_oversize(s_peer_t *p)
{
    long rss_pid = s_rss_target(p);
    long rss_before = rss_pid > 0 ? s_rss_kb(rss_pid) : -1;
    s_raw_t r;
    char err[512] = "";
    if (s_raw_open(&r, p, err, sizeof(err)) < 0)
        return s_fail(p, S_EXIT_FAIL, "connect %s:%d: %s", p->host, p->port, err);
    s_outcome_t out;
    memset(&out, 0, sizeof(out));
    int64_t wait_until = s_mono_ms() + (p->o.wait_ms ? p->o.wait_ms : 10000);
    int rc = s_send_oversize(&r, p->o.extra, wait_until);
    if (rc < 0 && r.eof) {
        s_await_status(&r, s_mono_ms() + 500, NULL, &out);
    } else {
        s_await_status(&r, wait_until, NULL, &out);
        if (out.have_status)
            s_await_close(&r, wait_until, &out);
    }
    snprintf(out.detail, sizeof(out.detail),
             "prefix claiming %" PRIu32 " bytes and %zu more bytes sent right after the "
             "handshake; connection %s",
             S_OVERSIZE_LEN, p->o.extra,
             out.closed_by == NULL || strcmp(out.closed_by, "timeout") == 0
                 ? "still open when the wait ended"
                 : "closed by the server");
    s_raw_close(&r, true);
    long rss_after = -1;
    if (rss_pid > 0) {
        struct timespec ts = {0, 200 * 1000000L};
        nanosleep(&ts, NULL);
        rss_after = s_rss_kb(rss_pid);
    }
    fputs("{\"command\": \"raw-oversize\", ", stdout);
    s_put_outcome("raw-oversize", &r, &out);
    fputs(", \"as\": ", stdout);
    dy_json_put_str(stdout, p->party);
    fputs(", \"to\": ", stdout);
    dy_json_put_str(stdout, p->o.to);
    s_put_rss(rss_pid, rss_before, rss_after);
    fputs("}\n", stdout);
    return S_EXIT_OK;
}

/* ---- main ---------------------------------------------------------------------------------- */

enum {
    O_DIR = 1000,
    O_AS,
    O_TO,
    O_COMPUTATION,
    O_DESCRIPTION,
    O_FILE,
    O_MODE,
    O_PROTOCOL,
    O_RATE,
    O_SECONDS,
    O_RPC,
    O_CONNECTIONS,
    O_CHUNK,
    O_EXTRA,
    O_TIMEOUT,
    O_WAIT,
    O_RSS,
    O_RSS_PID,
    O_HELP
};

static bool s_num(const char *s, double lo, double hi, double *ret)
{
    char *end = NULL;
    double v = strtod(s, &end);
    if (end == s || *end != '\0' || !(v >= lo && v <= hi))
        return false;
    *ret = v;
    return true;
}

int main(int argc, char **argv)
{
    static s_peer_t peer; /* large (paths): not on the stack */
    s_peer_t *p = &peer;
    s_opts_t *o = &p->o;
    o->chunk_size = DY_WIRE_CHUNK_DEFAULT;
    o->extra = 64;
    o->rpc = "get-stage";
    if (argc < 2 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
        fputs(s_usage, argc < 2 ? stderr : stdout);
        if (argc < 2)
            return s_fail(p, S_EXIT_USAGE, "a command is needed");
        return S_EXIT_OK;
    }
    o->cmd = argv[1];
    enum { C_GET_STAGE, C_FLOOD, C_ADVANCE, C_RAW_OVERSIZE } cmd;
    if (strcmp(o->cmd, "get-stage") == 0)
        cmd = C_GET_STAGE;
    else if (strcmp(o->cmd, "flood") == 0)
        cmd = C_FLOOD;
    else if (strcmp(o->cmd, "advance") == 0)
        cmd = C_ADVANCE;
    else if (strcmp(o->cmd, "raw-oversize") == 0)
        cmd = C_RAW_OVERSIZE;
    else
        return s_fail(p, S_EXIT_USAGE, "unknown command \"%s\" (see --help)", o->cmd);

    static const struct option opts[] = {
        {"dir", required_argument, NULL, O_DIR},
        {"as", required_argument, NULL, O_AS},
        {"to", required_argument, NULL, O_TO},
        {"computation", required_argument, NULL, O_COMPUTATION},
        {"description", required_argument, NULL, O_DESCRIPTION},
        {"file", required_argument, NULL, O_FILE},
        {"mode", required_argument, NULL, O_MODE},
        {"protocol", required_argument, NULL, O_PROTOCOL},
        {"rate", required_argument, NULL, O_RATE},
        {"seconds", required_argument, NULL, O_SECONDS},
        {"rpc", required_argument, NULL, O_RPC},
        {"connections", required_argument, NULL, O_CONNECTIONS},
        {"chunk-size", required_argument, NULL, O_CHUNK},
        {"extra", required_argument, NULL, O_EXTRA},
        {"timeout-ms", required_argument, NULL, O_TIMEOUT},
        {"wait-ms", required_argument, NULL, O_WAIT},
        {"rss", no_argument, NULL, O_RSS},
        {"rss-pid", required_argument, NULL, O_RSS_PID},
        {"help", no_argument, NULL, O_HELP},
        {NULL, 0, NULL, 0},
    };
    opterr = 0;
    optind = 2;
    int c;
    double v;
    bool have_mode = false;
    while ((c = getopt_long(argc, argv, ":", opts, NULL)) != -1) {
        switch (c) {
        case O_DIR:
            o->dir = optarg;
            break;
        case O_AS:
            o->as = optarg;
            break;
        case O_TO:
            o->to = optarg;
            break;
        case O_COMPUTATION:
            o->computation = optarg;
            break;
        case O_DESCRIPTION:
            o->description = optarg;
            break;
        case O_FILE:
            o->file = optarg;
            break;
        case O_RPC:
            o->rpc = optarg;
            break;
        case O_RSS:
            o->rss = true;
            break;
        case O_MODE: {
            size_t i;
            for (i = 0; i < DY_ARRAY_LEN(s_mode_names); i++)
                if (strcmp(optarg, s_mode_names[i]) == 0)
                    break;
            if (i == DY_ARRAY_LEN(s_mode_names))
                return s_fail(p, S_EXIT_USAGE,
                              "--mode must be ok, flip, truncate, oversize or bad-trailer");
            o->mode = (s_mode_t)i;
            have_mode = true;
            break;
        }
        case O_PROTOCOL:
            if (strcmp(optarg, "llv2") == 0)
                o->protocol = S_PROTO_LLV2;
            else if (strcmp(optarg, "llv2-reach-only") == 0 || strcmp(optarg, "rollv2") == 0)
                o->protocol = S_PROTO_ROLLV2;
            else if (strcmp(optarg, "hmss") == 0 || strcmp(optarg, "hmss-reach-only") == 0)
                o->protocol = S_PROTO_HMSS;
            else
                return s_fail(p, S_EXIT_USAGE, "--protocol must be llv2, llv2-reach-only or hmss");
            break;
        case O_RATE:
            if (!s_num(optarg, 0.01, 1e6, &o->rate))
                return s_fail(p, S_EXIT_USAGE, "--rate must be a number in [0.01, 1e6]");
            break;
        case O_SECONDS:
            if (!s_num(optarg, 0.01, 86400, &o->seconds))
                return s_fail(p, S_EXIT_USAGE, "--seconds must be a number in [0.01, 86400]");
            break;
        case O_CONNECTIONS:
            if (!s_num(optarg, 1, S_MAX_CONNS, &v) || v != floor(v))
                return s_fail(p, S_EXIT_USAGE, "--connections must be an integer in [1, %d]",
                              S_MAX_CONNS);
            o->connections = (int)v;
            break;
        case O_CHUNK:
            /* Beyond the protocol's 1-4 MiB on purpose (tests of the receiver's chunk rules),
             * but within what one frame can carry. */
            if (!s_num(optarg, 1, (double)(DY_WIRE_MAX_FRAME_DEFAULT - 1024), &v) || v != floor(v))
                return s_fail(p, S_EXIT_USAGE, "--chunk-size must be an integer in [1, %zu]",
                              DY_WIRE_MAX_FRAME_DEFAULT - 1024);
            o->chunk_size = (size_t)v;
            break;
        case O_EXTRA:
            if (!s_num(optarg, 0, (double)(1u << 30), &v) || v != floor(v))
                return s_fail(p, S_EXIT_USAGE, "--extra must be an integer in [0, 2^30]");
            o->extra = (size_t)v;
            break;
        case O_TIMEOUT:
        case O_WAIT:
            if (!s_num(optarg, 1, 3600000, &v) || v != floor(v))
                return s_fail(p, S_EXIT_USAGE, "%s must be an integer in [1, 3600000]",
                              argv[optind - 1]);
            if (c == O_TIMEOUT)
                o->timeout_ms = (int)v;
            else
                o->wait_ms = (int)v;
            break;
        case O_RSS_PID:
            if (!s_num(optarg, 1, (double)INT32_MAX, &v) || v != floor(v))
                return s_fail(p, S_EXIT_USAGE, "--rss-pid must be a process id");
            o->rss_pid = (long)v;
            break;
        case O_HELP:
            fputs(s_usage, stdout);
            return S_EXIT_OK;
        case ':':
            return s_fail(p, S_EXIT_USAGE, "%s needs a value", argv[optind - 1]);
        default:
            return s_fail(p, S_EXIT_USAGE, "unknown option %s", argv[optind - 1]);
        }
    }
    if (optind != argc)
        return s_fail(p, S_EXIT_USAGE, "unexpected argument \"%s\"", argv[optind]);
    if (o->dir == NULL || o->as == NULL || o->to == NULL)
        return s_fail(p, S_EXIT_USAGE, "%s: --dir, --as and --to are required", o->cmd);
    switch (cmd) {
    case C_GET_STAGE:
        if (o->computation == NULL)
            return s_fail(p, S_EXIT_USAGE, "get-stage needs --computation");
        break;
    case C_FLOOD:
        if (o->rate <= 0 || o->seconds <= 0)
            return s_fail(p, S_EXIT_USAGE, "flood needs --rate and --seconds");
        if (strcmp(o->rpc, "get-stage") != 0)
            return s_fail(p, S_EXIT_USAGE, "--rpc: only get-stage is supported");
        break;
    case C_ADVANCE:
        if (o->computation == NULL || o->description == NULL || o->file == NULL)
            return s_fail(p, S_EXIT_USAGE, "advance needs --computation, --description and --file");
        if (!have_mode)
            o->mode = S_MODE_OK;
        if (o->protocol == S_PROTO_NONE && s_desc_protocols(o->description) == 0) {
            char *end = NULL;
            (void)strtol(o->description, &end, 10);
            if (end == o->description || *end != '\0')
                return s_fail(p, S_EXIT_USAGE, "--description %s: no protocol has that description",
                              o->description);
        }
        break;
    case C_RAW_OVERSIZE:
        break;
    }

    signal(SIGPIPE, SIG_IGN);
    int ret = s_setup(p);
    if (ret == 0) {
        switch (cmd) {
        case C_GET_STAGE:
            ret = s_cmd_get_stage(p);
            break;
        case C_FLOOD:
            ret = s_cmd_flood(p);
            break;
        case C_ADVANCE:
            ret = s_cmd_advance(p);
            break;
        case C_RAW_OVERSIZE:
            ret = s_cmd_raw_oversize(p);
            break;
        }
    }
    fflush(stdout);
    s_teardown(p);
    return ret;
}
