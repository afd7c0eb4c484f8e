/* coord_send.h - one stage send to a peer duchy (PROTOCOL.md §6.2), run by
 * the `duchy-coordinator --send` worker (a fresh process: it opens its own
 * TLS client and, for the COMPUTATION_ENDED check, its own store).
 */
#ifndef DY_COORD_SEND_H
#define DY_COORD_SEND_H

#include <openssl/ssl.h>

#include "coord.h"

typedef struct {
    SSL_CTX *ctx;            /* borrowed: dy_tls_client_ctx with the peer's name */
    const char *computation; /* bare id */
    const char *peer_id;     /* receiving duchy id */
    const char *endpoint;    /* host:port of its gateway */
    const uint8_t *header;   /* serialized AdvanceComputationRequest{header} */
    size_t header_len;
    const char *body_path; /* the recorded output blob */
    uint64_t body_size;
    uint8_t body_sha256[32];
    int awaited;    /* the receiver's stage awaiting this input */
    int complete;   /* the protocol's COMPLETE stage number */
    int timeout_ms; /* each call's deadline */
    /* COMPUTATION_ENDED from the peer: is the local computation terminal? */
    bool (*local_terminal)(void *arg);
    void *local_terminal_arg;
} dy_coord_send_job_t;

/* Runs the send; returns the outcome with a stable snake_case code ("sent",
 * "skipped", "peer_not_ready", "peer_unavailable", the lower-cased status or
 * reason, ...) and a message. */
dy_outcome_t dy_coord_send_run(const dy_coord_send_job_t *job, char code[48], char msg[256]);

/* "host:port" (or "[v6]:port") → host, port.  0 or -EINVAL. */
int dy_coord_split_endpoint(const char *endpoint, char *host, size_t hostcap, int *ret_port);

/* The `duchy-coordinator --send` worker: reads a SendJob from fd 0 (spawn.h), which
 * carries the coordinator's running config (SendConfig: the worker never reads the
 * config file, so a broken edit that the coordinator's reload refused cannot reach it),
 * runs the send and writes an EffectsReply to fd 3.  Returns the process exit code
 * (0 once a result was written). */
int dy_coord_send_worker_main(void);

#endif
