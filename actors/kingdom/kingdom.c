/* kingdom.c - duchy-kingdom, the test Kingdom daemon: the central coordinator of a local
 * federation (PROTOCOL.md §3.4-§3.6, §3.9, §4, §7.2).
 *
 *   duchy-kingdom --config FILE [--check-config] [--ready-fd N] [--verbose]
 *
 * Peers (all over mutual TLS 1.3, identified by certificate, PROTOCOL.md §9):
 *   duchies      -> system API: Computations (GetComputation, StreamActiveComputations,
 *                   SetComputationResult), ComputationParticipants, Requisitions
 *                   (FulfillRequisition), ComputationLogEntries
 *   MCs          -> Measurements (CreateMeasurement, GetMeasurement, CancelMeasurement)
 *   EDPs         -> Requisitions (ListRequisitions, RefuseRequisition)
 *   any party    -> Certificates.GetCertificate
 * Messages: proto/system.proto, proto/public.proto.  State machine: kingdom_fsm.h (the
 * computation table [state][trigger]); handlers: kingdom_api.c; storage: kingdom_db.c.
 *
 * main(): parse argv -> load config (--check-config prints it and exits 0 / 100) -> open the
 * database -> TLS context and listener -> READY line on --ready-fd -> loop (one housekeeping
 * timer inside: the pending-TTL sweep) -> SIGTERM/SIGINT: leave the loop, close, exit 0.
 * Exit codes: 0 clean stop, 64 usage, 100 bad configuration, 111 temporary failure.
 *
 * StreamActiveComputations: one open stream per call; every tick (stream.poll) it polls the
 * database for up to stream.batch items strictly after the call's cursor and sends them;
 * after stream.max_duration it ends with OK (the duchy reopens from its token).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "dy.h"
#include "kingdom_api.h"
#include "log.h"
#include "rpc.h"
#include "tls.h"

/* ---- configuration --------------------------------------------------------------------- */

typedef struct {
    char *id;  /* owned: duchy id */
    int role;  /* 0 = aggregator, 1 = non_aggregator */
} s_duchy_cfg_t;

typedef struct {
    char *listen;              /* host:port */
    char *database;            /* SQLite path */
    int64_t busy_timeout_ms;
    char *tls_cert, *tls_key, *tls_trusted_ca, *tls_parties;
    char *certificates_dir;    /* "" = none: every certificate unknown */
    s_duchy_cfg_t *duchies;    /* owned array */
    size_t nduchies;
    double llv2_decay_rate;
    int64_t llv2_max_size;
    double llv2_bh_epsilon, llv2_bh_delta, llv2_pub_epsilon, llv2_pub_delta;
    int64_t llv2_curve_id;
    int64_t hmss_rf_modulus, hmss_reach_modulus;
    int64_t stream_batch;
    int64_t stream_poll_ms;
    int64_t stream_max_duration_ms;
    double calls_per_second, call_burst, bytes_per_second, byte_burst;
    int64_t idle_timeout_ms, handshake_timeout_ms, ping_interval_ms;
    int64_t max_connections;
    int64_t pending_ttl_ms;    /* 0 = never expire */
} s_config_t;

#define S_OFF(f) offsetof(s_config_t, f)
#define S_DOFF(f) offsetof(s_duchy_cfg_t, f)
#define S_DAY_MS 86400000.0

static const char *const s_roles[] = {"aggregator", "non_aggregator", NULL};

static const dy_cfg_key_t s_duchy_keys[] = {
    {.path = "id", .type = DY_CFG_STRING, .offset = S_DOFF(id),
     .help = "duchy id, [a-z]([a-z0-9-]{0,61}[a-z0-9])?"},
    {.path = "role", .type = DY_CFG_ENUM, .offset = S_DOFF(role), .choices = s_roles,
     .help = "aggregator | non_aggregator (NAs in order: FIRST, SECOND for HMSS)"},
};

static const dy_cfg_key_t s_keys[] = {
    {.path = "listen", .type = DY_CFG_ENDPOINT, .def = "127.0.0.1:0", .offset = S_OFF(listen),
     .help = "host:port of the mutual-TLS listener (port 0 = ephemeral)"},
    {.path = "database", .type = DY_CFG_STRING, .offset = S_OFF(database),
     .help = "the Kingdom's SQLite database"},
    {.path = "busy_timeout", .type = DY_CFG_DURATION, .def = "5s", .min = 10, .max = 600000,
     .offset = S_OFF(busy_timeout_ms), .help = "SQLite busy_timeout"},
    {.path = "tls.cert", .type = DY_CFG_STRING, .offset = S_OFF(tls_cert),
     .help = "PEM: the Kingdom's TLS leaf"},
    {.path = "tls.key", .type = DY_CFG_STRING, .offset = S_OFF(tls_key),
     .help = "PEM: its private key"},
    {.path = "tls.trusted_ca", .type = DY_CFG_STRING, .offset = S_OFF(tls_trusted_ca),
     .help = "PEM bundle of every organisation's root"},
    {.path = "tls.parties", .type = DY_CFG_STRING, .offset = S_OFF(tls_parties),
     .help = "party table: <root SKID hex> <party id> per line (mkpki's parties.txt)"},
    {.path = "certificates_dir", .type = DY_CFG_STRING, .def = "",
     .offset = S_OFF(certificates_dir),
     .help = "mkpki directory: <kind>/<id>/certificates/<c> is DIR/<id>/<c>.pem"},
    {.path = "duchies", .type = DY_CFG_LIST, .offset = S_OFF(duchies),
     .count_offset = S_OFF(nduchies), .sub = s_duchy_keys, .nsub = DY_ARRAY_LEN(s_duchy_keys),
     .item_size = sizeof(s_duchy_cfg_t), .min_items = 3, .max_items = 3,
     .help = "the three active duchies: one aggregator, two non-aggregators"},
    {.path = "llv2.decay_rate", .type = DY_CFG_DOUBLE, .def = "12", .min = 1, .max = 1000,
     .offset = S_OFF(llv2_decay_rate), .help = "LiquidLegions sketch decay rate"},
    {.path = "llv2.max_size", .type = DY_CFG_INT, .def = "100000", .min = 1, .max = 100000000,
     .offset = S_OFF(llv2_max_size), .help = "LiquidLegions sketch size"},
    {.path = "llv2.blinded_histogram_noise.epsilon", .type = DY_CFG_DOUBLE, .def = "1",
     .min = 1e-9, .max = 1e6, .offset = S_OFF(llv2_bh_epsilon), .help = "mpc_noise"},
    {.path = "llv2.blinded_histogram_noise.delta", .type = DY_CFG_DOUBLE, .def = "1",
     .min = 1e-300, .max = 1, .offset = S_OFF(llv2_bh_delta), .help = "mpc_noise"},
    {.path = "llv2.publisher_noise.epsilon", .type = DY_CFG_DOUBLE, .def = "1", .min = 1e-9,
     .max = 1e6, .offset = S_OFF(llv2_pub_epsilon), .help = "mpc_noise"},
    {.path = "llv2.publisher_noise.delta", .type = DY_CFG_DOUBLE, .def = "1", .min = 1e-300,
     .max = 1, .offset = S_OFF(llv2_pub_delta), .help = "mpc_noise"},
    {.path = "llv2.elliptic_curve_id", .type = DY_CFG_INT, .def = "415", .min = 415, .max = 415,
     .offset = S_OFF(llv2_curve_id), .help = "415 = prime256v1, the only one accepted"},
    {.path = "hmss.reach_and_frequency_ring_modulus", .type = DY_CFG_INT, .def = "127",
     .min = 2, .max = 4294967296.0, .offset = S_OFF(hmss_rf_modulus),
     .help = "HMSS ring modulus for reach and frequency"},
    {.path = "hmss.reach_ring_modulus", .type = DY_CFG_INT, .def = "127", .min = 2,
     .max = 2147483647.0, .offset = S_OFF(hmss_reach_modulus),
     .help = "HMSS ring modulus for reach (a prime)"},
    {.path = "stream.batch", .type = DY_CFG_INT, .def = "50", .min = 1, .max = 50,
     .offset = S_OFF(stream_batch), .help = "items per StreamActiveComputations poll"},
    {.path = "stream.poll", .type = DY_CFG_DURATION, .def = "1s", .min = 10, .max = 60000,
     .offset = S_OFF(stream_poll_ms), .help = "pause between polls of an open stream"},
    {.path = "stream.max_duration", .type = DY_CFG_DURATION, .def = "10m", .min = 100,
     .max = S_DAY_MS, .offset = S_OFF(stream_max_duration_ms),
     .help = "a stream ends with OK after this long"},
    {.path = "limits.calls_per_second", .type = DY_CFG_DOUBLE, .def = "0", .min = 0, .max = 1e6,
     .offset = S_OFF(calls_per_second), .help = "per identity; 0 = unlimited"},
    {.path = "limits.call_burst", .type = DY_CFG_DOUBLE, .def = "0", .min = 0, .max = 1e6,
     .offset = S_OFF(call_burst), .help = "per identity"},
    {.path = "limits.bytes_per_second", .type = DY_CFG_DOUBLE, .def = "0", .min = 0, .max = 1e12,
     .offset = S_OFF(bytes_per_second), .help = "per identity; 0 = unlimited"},
    {.path = "limits.byte_burst", .type = DY_CFG_DOUBLE, .def = "0", .min = 0, .max = 1e12,
     .offset = S_OFF(byte_burst), .help = "per identity"},
    {.path = "limits.max_connections", .type = DY_CFG_INT, .def = "256", .min = 1, .max = 65536,
     .offset = S_OFF(max_connections), .help = "open connections"},
    {.path = "timeouts.idle", .type = DY_CFG_DURATION, .def = "60s", .min = 100, .max = S_DAY_MS,
     .offset = S_OFF(idle_timeout_ms), .help = "no frame for this long: UNAVAILABLE"},
    {.path = "timeouts.handshake", .type = DY_CFG_DURATION, .def = "10s", .min = 100,
     .max = 600000, .offset = S_OFF(handshake_timeout_ms), .help = "TLS handshake"},
    {.path = "timeouts.ping", .type = DY_CFG_DURATION, .def = "30s", .min = 100, .max = 600000,
     .offset = S_OFF(ping_interval_ms), .help = "PING period on open streams"},
    {.path = "pending_ttl", .type = DY_CFG_DURATION, .def = "0", .min = 0, .max = 365 * S_DAY_MS,
     .offset = S_OFF(pending_ttl_ms),
     .help = "cancel non-terminal computations older than this; 0 = never (ref. 30d)"},
};

/* Checks what the table cannot: duchy ids, distinct, exactly one aggregator. */
static int s_config_check(const s_config_t *cfg, char *err, size_t errlen)
{
    int aggs = 0;
    for (size_t i = 0; i < cfg->nduchies; i++) {
        const char *id = cfg->duchies[i].id;
        char name[DY_KD_ID_MAX + 16];
        snprintf(name, sizeof(name), "duchies/%s", id != NULL ? id : "");
        if (id == NULL || strlen(id) >= DY_KD_ID_MAX || !dy_party_id_valid(name) ||
            id[0] < 'a' || id[0] > 'z') {
            snprintf(err, errlen, "duchies[%zu].id: not a duchy id", i);
            return -EINVAL;
        }
        for (size_t j = 0; j < i; j++)
            if (strcmp(cfg->duchies[j].id, id) == 0) {
                snprintf(err, errlen, "duchies[%zu].id: duplicate %s", i, id);
                return -EINVAL;
            }
        aggs += cfg->duchies[i].role == 0;
    }
    if (aggs != 1) {
        snprintf(err, errlen, "duchies: exactly one aggregator needed (have %d)", aggs);
        return -EINVAL;
    }
    return 0;
}

/* ---- transport glue -------------------------------------------------------------------- */

typedef struct {
    dy_kd_api_t *api;            /* borrowed */
    const dy_kd_method_t *m;     /* borrowed from the static table */
} s_unary_arg_t;

typedef struct {
    dy_kd_api_t *api;            /* borrowed */
    int64_t max_duration_ms;
} s_stream_arg_t;

typedef struct {
    dy_kd_stream_t cursor;
    double started;              /* dy_now() */
} s_stream_state_t;

static void s_on_unary(dy_rpc_call_t *call, const uint8_t *req, size_t len, void *arg)
{
    s_unary_arg_t *a = arg;
    dy_buf_t resp = {0};
    dy_kd_status_t st = {0};
    const char *peer = dy_rpc_call_peer(call);
    if (a->m->handler(a->api, peer, req, len, &resp, &st) == 0) {
        if (dy_rpc_call_send(call, resp.data, resp.len) < 0)
            log_warnx("%s: cannot queue the response", dy_rpc_call_method(call));
        dy_rpc_call_finish(call, DY_WIRE_STATUS_OK, DY_WIRE_REASON_NONE, "%s", "");
    } else {
        log_debug("%s from %s: %s %s", dy_rpc_call_method(call), peer,
                  dy_wire_status_name((int)st.code), st.message);
        dy_rpc_call_finish(call, st.code, st.reason, "%s", st.message);
    }
    dy_buf_free(&resp);
}

/* Sends what one poll of the stream's cursor finds; 0 or -1 (the call was finished). */
static int s_stream_pump(dy_rpc_call_t *call, s_stream_arg_t *a, s_stream_state_t *s)
{
    dy_buf_t *items = NULL;
    dy_kd_status_t st = {0};
    int n = dy_kd_stream_poll(a->api, &s->cursor, &items, &st);
    if (n < 0) {
        log_warnx("stream of duchies/%s: %s", s->cursor.duchy, st.message);
        dy_rpc_call_finish(call, st.code, st.reason, "%s", st.message);
        return -1;
    }
    int rc = 0;
    for (int i = 0; i < n; i++) {
        if (rc == 0 && dy_rpc_call_send(call, items[i].data, items[i].len) < 0) {
            dy_rpc_call_finish(call, DY_WIRE_STATUS_UNAVAILABLE, DY_WIRE_REASON_NONE,
                               "cannot queue stream items");
            rc = -1;
        }
        dy_buf_free(&items[i]);
    }
    free(items);
    if (n > 0)
        log_debug("stream of duchies/%s: %d item(s)", s->cursor.duchy, n);
    return rc;
}

static void s_on_stream(dy_rpc_call_t *call, const uint8_t *req, size_t len, void *arg)
{
    s_stream_arg_t *a = arg;
    dy_kd_status_t st = {0};
    s_stream_state_t *s = calloc(1, sizeof(*s));
    if (s == NULL) {
        dy_rpc_call_finish(call, DY_WIRE_STATUS_RESOURCE_EXHAUSTED, DY_WIRE_REASON_NONE,
                           "out of memory");
        return;
    }
    if (dy_kd_stream_open(a->api, dy_rpc_call_peer(call), req, len, &s->cursor, &st) < 0) {
        free(s);
        dy_rpc_call_finish(call, st.code, st.reason, "%s", st.message);
        return;
    }
    s->started = dy_now();
    dy_rpc_call_set_data(call, s);
    (void)s_stream_pump(call, a, s);
}

static void s_on_stream_tick(dy_rpc_call_t *call, void *arg)
{
    s_stream_arg_t *a = arg;
    s_stream_state_t *s = dy_rpc_call_data(call);
    if (s == NULL)
        return;
    if (s_stream_pump(call, a, s) < 0)
        return;
    if ((dy_now() - s->started) * 1000.0 >= (double)a->max_duration_ms)
        dy_rpc_call_finish(call, DY_WIRE_STATUS_OK, DY_WIRE_REASON_NONE, "%s",
                           "stream duration reached");
}

static void s_on_stream_close(dy_rpc_call_t *call, bool completed, void *arg)
{
    free(dy_rpc_call_data(call));
    dy_rpc_call_set_data(call, NULL);
}

/* ---- main ------------------------------------------------------------------------------ */

static volatile int s_stop;

static void s_on_signal(int sig)
{
    (void)sig;
    s_stop = 1;
}

static void s_usage(FILE *f)
{
    fprintf(f, "usage: duchy-kingdom --config FILE [--check-config] [--ready-fd N] "
               "[--verbose]\n");
}

/* Splits "host:port". */
static int s_endpoint(const char *ep, char *host, size_t cap, int *port)
{
    const char *colon = strrchr(ep, ':');
    if (colon == NULL || (size_t)(colon - ep) >= cap)
        return -EINVAL;
    memcpy(host, ep, (size_t)(colon - ep));
    host[colon - ep] = '\0';
    *port = atoi(colon + 1);
    return 0;
}

int main(int argc, char **argv)
{
    const char *config_path = NULL;
    bool check = false, verbose = false;
    int ready_fd = -1;
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'}, {"check-config", no_argument, NULL, 'k'},
        {"ready-fd", required_argument, NULL, 'r'}, {"verbose", no_argument, NULL, 'v'},
        {"help", no_argument, NULL, 'h'},         {NULL, 0, NULL, 0},
    };
    int o;
    while ((o = getopt_long(argc, argv, "c:kr:vh", opts, NULL)) != -1) {
        switch (o) {
        case 'c':
            config_path = optarg;
            break;
        case 'k':
            check = true;
            break;
        case 'r': {
            char *end = NULL;
            long v = strtol(optarg, &end, 10);
            if (end == optarg || *end != '\0' || v < 0 || v > 65535) {
                fprintf(stderr, "duchy-kingdom: bad --ready-fd %s\n", optarg);
                return DY_EXIT_USAGE;
            }
            ready_fd = (int)v;
            break;
        }
        case 'v':
            verbose = true;
            break;
        case 'h':
            s_usage(stdout);
            return DY_EXIT_OK;
        default:
            s_usage(stderr);
            return DY_EXIT_USAGE;
        }
    }
    if (config_path == NULL || optind != argc) {
        s_usage(stderr);
        return DY_EXIT_USAGE;
    }
    dy_log_init("kingdom", NULL, verbose);

    s_config_t cfg;
    char err[512];
    if (dy_config_load(config_path, s_keys, DY_ARRAY_LEN(s_keys), &cfg, err, sizeof(err)) < 0) {
        fprintf(stderr, "duchy-kingdom: %s\n", err);
        return DY_EXIT_PERMANENT;
    }
    if (s_config_check(&cfg, err, sizeof(err)) < 0) {
        fprintf(stderr, "duchy-kingdom: %s: %s\n", config_path, err);
        dy_config_free(s_keys, DY_ARRAY_LEN(s_keys), &cfg);
        return DY_EXIT_PERMANENT;
    }
    if (check) {
        int rc = dy_config_print(s_keys, DY_ARRAY_LEN(s_keys), &cfg, stdout) < 0
                     ? DY_EXIT_PERMANENT
                     : DY_EXIT_OK;
        dy_config_free(s_keys, DY_ARRAY_LEN(s_keys), &cfg);
        return rc;
    }

    /* The API's view of the configuration. */
    dy_kd_conf_t conf;
    dy_kd_conf_defaults(&conf);
    for (size_t i = 0; i < cfg.nduchies; i++) {
        snprintf(conf.duchies[i].id, sizeof(conf.duchies[i].id), "%s", cfg.duchies[i].id);
        conf.duchies[i].aggregator = cfg.duchies[i].role == 0;
    }
    conf.nduchies = cfg.nduchies;
    conf.llv2_decay_rate = cfg.llv2_decay_rate;
    conf.llv2_max_size = cfg.llv2_max_size;
    conf.llv2_bh_epsilon = cfg.llv2_bh_epsilon;
    conf.llv2_bh_delta = cfg.llv2_bh_delta;
    conf.llv2_pub_epsilon = cfg.llv2_pub_epsilon;
    conf.llv2_pub_delta = cfg.llv2_pub_delta;
    conf.llv2_curve_id = (int32_t)cfg.llv2_curve_id;
    conf.hmss_rf_modulus = cfg.hmss_rf_modulus;
    conf.hmss_reach_modulus = cfg.hmss_reach_modulus;
    conf.stream_batch = (size_t)cfg.stream_batch;
    if (cfg.certificates_dir != NULL && cfg.certificates_dir[0] != '\0') {
        conf.cert_lookup = dy_kd_cert_dir_lookup;
        conf.cert_arg = cfg.certificates_dir;
    }

    int exit_code = DY_EXIT_TEMPORARY;
    dy_kd_db_t *db = NULL;
    dy_parties_t *parties = NULL;
    SSL_CTX *ctx = NULL;
    dy_rpc_server_t *server = NULL;
    s_unary_arg_t *uargs = NULL;
    dy_rpc_method_t *methods = NULL;

    db = dy_kd_db_open(cfg.database, (int)cfg.busy_timeout_ms, err, sizeof(err));
    if (db == NULL) {
        log_warnx("database: %s", err);
        goto out;
    }
    dy_kd_api_t api = {.db = db, .conf = &conf};

    parties = dy_parties_load(cfg.tls_parties, err, sizeof(err));
    if (parties == NULL) {
        log_warnx("party table: %s", err);
        exit_code = DY_EXIT_PERMANENT;
        goto out;
    }
    dy_tls_conf_t tconf = {.cert_path = cfg.tls_cert, .key_path = cfg.tls_key,
                           .trusted_ca_path = cfg.tls_trusted_ca, .parties = parties};
    ctx = dy_tls_server_ctx(&tconf, err, sizeof(err));
    if (ctx == NULL) {
        log_warnx("TLS: %s", err);
        exit_code = DY_EXIT_PERMANENT;
        goto out;
    }

    size_t nm;
    const dy_kd_method_t *km = dy_kd_methods(&nm);
    uargs = calloc(nm, sizeof(*uargs));
    methods = calloc(nm, sizeof(*methods));
    if (uargs == NULL || methods == NULL) {
        log_warnx("out of memory");
        goto out;
    }
    s_stream_arg_t sarg = {.api = &api, .max_duration_ms = cfg.stream_max_duration_ms};
    for (size_t i = 0; i < nm; i++) {
        methods[i].method = km[i].method;
        if (km[i].handler == NULL) {
            methods[i].kind = DY_RPC_SERVER_STREAM;
            methods[i].on_request = s_on_stream;
            methods[i].on_tick = s_on_stream_tick;
            methods[i].on_close = s_on_stream_close;
            methods[i].arg = &sarg;
        } else {
            uargs[i].api = &api;
            uargs[i].m = &km[i];
            methods[i].kind = DY_RPC_UNARY;
            methods[i].on_request = s_on_unary;
            methods[i].arg = &uargs[i];
        }
    }
    char host[256];
    int port = 0;
    if (s_endpoint(cfg.listen, host, sizeof(host), &port) < 0) {
        log_warnx("listen: bad endpoint %s", cfg.listen);
        exit_code = DY_EXIT_PERMANENT;
        goto out;
    }
    dy_rpc_server_conf_t sconf = {
        .ctx = ctx, .host = host, .port = port,
        .max_connections = (int)cfg.max_connections,
        .idle_timeout_ms = (int)cfg.idle_timeout_ms,
        .ping_interval_ms = (int)cfg.ping_interval_ms,
        .handshake_timeout_ms = (int)cfg.handshake_timeout_ms,
        .tick_ms = (int)cfg.stream_poll_ms,
        .calls_per_second = cfg.calls_per_second, .call_burst = cfg.call_burst,
        .bytes_per_second = cfg.bytes_per_second, .byte_burst = cfg.byte_burst,
    };
    server = dy_rpc_server_new(&sconf, methods, nm, err, sizeof(err));
    if (server == NULL) {
        log_warnx("listen on %s: %s", cfg.listen, err);
        goto out;
    }

    struct sigaction sa = {.sa_handler = s_on_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    log_info("listening on %s:%d, database %s", host, dy_rpc_server_port(server),
             cfg.database);
    if (ready_fd >= 0) {
        dprintf(ready_fd, "READY pid=%d port=%d\n", (int)getpid(), dy_rpc_server_port(server));
        close(ready_fd);
    }

    /* The loop, with the one housekeeping timer (pending TTL, every 60 s). */
    double next_sweep = dy_now() + 60.0;
    exit_code = DY_EXIT_OK;
    while (!s_stop) {
        int rc = dy_rpc_server_step(server, 100);
        if (rc < 0 && rc != -EINTR) {
            log_warnx("server loop: error %d", rc);
            exit_code = DY_EXIT_TEMPORARY;
            break;
        }
        if (cfg.pending_ttl_ms > 0 && dy_now() >= next_sweep) {
            next_sweep = dy_now() + 60.0;
            int n = dy_kd_expire(&api, cfg.pending_ttl_ms * 1000);
            if (n > 0)
                log_info("cancelled %d computation(s) past the pending TTL", n);
        }
    }
    if (s_stop)
        log_info("stopping");
out:
    dy_rpc_server_destroy(&server);
    free(methods);
    free(uargs);
    if (ctx != NULL)
        SSL_CTX_free(ctx);
    dy_parties_destroy(&parties);
    dy_kd_db_destroy(&db);
    dy_config_free(s_keys, DY_ARRAY_LEN(s_keys), &cfg);
    return exit_code;
}
