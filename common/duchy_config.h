/* duchy_config.h - the configuration of one duchy: one YAML file read by
 * every actor of the duchy and by deploy/duchy-supervise, described by one
 * key table (duchy_config.c, through common/config.h).  An example that
 * passes --check-config is deploy/duchy.example.yaml.
 *
 *   duchy:     id, data_dir, runtime_dir, master_key_file, claimers,
 *              workers, mill_threads, lease, max_attempts, backoff_scale,
 *              mill_deadline, mill_memory, send_deadline
 *   tls:       cert, key, trusted_ca, parties        (this duchy's TLS identity)
 *   signing:   cert, key, certificate                (result / key signatures;
 *              certificate = its resource name at the Kingdom)
 *   kingdom:   endpoint, server_name, call_timeout, stream_idle_timeout
 *   gateway:   listen, max_frame, max_connections, idle_timeout,
 *              calls_per_second, call_burst, bytes_per_second, byte_burst,
 *              max_upload
 *   peers:     list of {id, endpoint, server_name}   (the two other duchies)
 *   roles:     aggregator, first_non_aggregator, second_non_aggregator
 *              (duchy ids; the federation's roles, the same in every duchy's
 *              and the Kingdom's config: LLv2 uses the aggregator, HMSS all three)
 *   log:       verbose
 */
#ifndef DY_DUCHY_CONFIG_H
#define DY_DUCHY_CONFIG_H

#include "config.h"

typedef struct {
    char *id;            /* duchy id, [a-z]([a-z0-9-]{0,61}[a-z0-9])? */
    char *endpoint;      /* host:port of its gateway */
    char *server_name;   /* expected TLS name, e.g. localhost */
} dy_duchy_peer_t;

typedef struct {
    /* duchy */
    char *id;
    char *data_dir;            /* duchy.db, blobs/, spool/ */
    char *runtime_dir;         /* 0700: ipc sockets */
    char *master_key_file;     /* 32 bytes (raw or 64 hex), 0600: secrets at rest */
    int64_t claimers;          /* claimer processes the supervisor starts, 1..16 */
    int64_t workers;           /* mills per claimer at a time, 1..64 */
    int64_t mill_threads;      /* threads per mill, 1..256 */
    int64_t lease_ms;          /* work lease, default 5 min */
    int64_t max_attempts;      /* per stage, default 10 */
    double backoff_scale;      /* transient backoff multiplier (tests: 0.01) */
    int64_t mill_deadline_ms;  /* a mill is killed after this */
    uint64_t mill_memory;      /* RLIMIT_AS of a mill, bytes */
    int64_t send_deadline_ms;  /* one stage send to a peer */
    /* tls */
    char *tls_cert, *tls_key, *trusted_ca, *parties;
    /* signing */
    char *sign_cert, *sign_key, *sign_certificate_name;
    /* kingdom */
    char *kingdom_endpoint, *kingdom_server_name;
    int64_t kingdom_call_timeout_ms;
    int64_t kingdom_stream_idle_ms;
    /* gateway */
    char *gateway_listen;
    uint64_t max_frame;
    int64_t max_connections;
    int64_t idle_timeout_ms;
    double calls_per_second, call_burst, bytes_per_second, byte_burst;
    uint64_t max_upload;       /* one upload body, bytes */
    /* peers */
    dy_duchy_peer_t *peers;    /* owned, npeers entries */
    size_t npeers;
    /* roles */
    char *aggregator_id;
    char *first_na_id;
    char *second_na_id;
    /* log */
    bool verbose;
} dy_duchy_config_t;

/* The key table (for dy_config_print / dy_config_nonreloadable_diff). */
extern const dy_cfg_key_t dy_duchy_config_keys[];
extern const size_t dy_duchy_config_nkeys;

/* Loads and validates path (beyond the table: the id pattern, peers are
 * exactly two with ids different from ours and each other).  0, or
 * -EINVAL / -errno with "file:line: key: reason" in errbuf.  The three
 * role ids must be distinct and be our id or a peer's. */
int dy_duchy_config_load(const char *path, dy_duchy_config_t *out, char *errbuf, size_t errlen);
void dy_duchy_config_free(dy_duchy_config_t *cfg);
/* The peer with this id, or NULL. */
const dy_duchy_peer_t *dy_duchy_config_peer(const dy_duchy_config_t *cfg, const char *id);

#endif
