/* actor.c - the skeleton every duchy actor runs (actor.h; STYLE.md rules
 * 1-8, 21, 28-30).
 *
 * dy_actor_new: flags (getopt_long) -> config (dy_duchy_config_load) ->
 * logging -> process hardening (PR_SET_DUMPABLE 0, RLIMIT_CORE 0) ->
 * runtime directory check -> loop, housekeeping timer, admin socket.
 *
 * Signals only set flags.  czmq's own SIGINT/SIGTERM handler is switched
 * off (zsys_handler_set(NULL), before the first socket exists) and ours
 * sets s_sig_term / s_sig_hup.  The loop is nonstop, but czmq 4.2.1's
 * zloop_start still returns when zmq_poll is interrupted (EINTR), so
 * dy_actor_run restarts it, after acting on the flags at once; the one
 * 1 s housekeeping timer acts on them too (a signal that arrives while a
 * handler runs is seen there):
 *   SIGTERM/SIGINT: state "draining", ops->drain (or dy_actor_drained at
 *   once when there is none); the loop ends once dy_actor_drained was
 *   called.
 *   SIGHUP: the config file is loaded again; a load error, or a change to
 *   a key that is not reloadable, is logged and the old config kept; else
 *   ops->reload is offered the new one (no hook = accept).  An accepted
 *   config is swapped in; the previous one is retired, not freed, until
 *   dy_actor_destroy, so pointers an actor took from it stay valid.
 *
 * The admin socket is a REP on ipc://RUN/admin-<name>.sock.  Only the
 * service user can reach it: the runtime directory is 0700 and ours (STYLE
 * rule 28 checks that before binding), which is the credential check of
 * rule 29 for ipc.  Requests larger than S_ADMIN_MAX_REQ bytes, or with
 * more than 16 args or an arg over 256 bytes, are refused
 * (INVALID_ARGUMENT).  Built-in verbs: STATUS, VERBOSE on|off, CONFIG; any
 * other goes to ops->admin, and -ENOTSUP (or no hook) is UNIMPLEMENTED.
 * CONFIG prints every key of the normalised config; the config holds key
 * and certificate *paths* only, never key material.
 *
 * Additions to actor.h: dy_actor_stop, the dy_actor_admin_* response
 * helpers and client call, dy_actor_json_escape.
 */
#include "actor.h"

#include "admin.pb-c.h"
#include "duchy.pb-c.h"

#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#ifndef DY_VERSION
#define DY_VERSION "0.1.0"
#endif

#define S_ACTOR_MSG_VERSION 1
#define S_ADMIN_MAX_REQ 65536
#define S_ADMIN_MAX_ARGS 16
#define S_ADMIN_MAX_ARG 256

/* gRPC status numbers (PROTOCOL.md §8). */
#define S_CODE_OK 0
#define S_CODE_INVALID_ARGUMENT 3
#define S_CODE_UNIMPLEMENTED 12
#define S_CODE_INTERNAL 13

typedef struct {
    char name[64];
    int64_t value;
} s_counter_t;

struct dy_actor {
    char base[32];               /* "claimer" */
    char name[48];               /* "claimer-2" (base + instance when given) */
    int instance;                /* --instance, default 1 */
    char *config_path;           /* owned */
    dy_duchy_config_t cfg;       /* the running config (owned) */
    dy_duchy_config_t *retired;  /* replaced configs, owned, freed at destroy */
    size_t nretired;
    bool verbose_flag;           /* --verbose */
    int ready_fd;                /* --ready-fd, -1 once used / none */
    dy_actor_ops_t ops;          /* copy */
    zloop_t *loop;               /* owned */
    zsock_t *admin;              /* owned */
    char admin_endpoint[sizeof(((struct sockaddr_un *)0)->sun_path) + 8];
    char state[32];
    s_counter_t *counters;       /* owned */
    size_t ncounters, capcounters;
    int64_t start_ms;            /* monotonic */
    bool draining, drained, stopped;
    int exit_code;
};

static volatile sig_atomic_t s_sig_term;
static volatile sig_atomic_t s_sig_hup;

static void s_on_signal(int sig)
{
    if (sig == SIGHUP)
        s_sig_hup = 1;
    else
        s_sig_term = 1;
}

static char *s_xstrdup(const char *s)
{
    char *d = strdup(s ? s : "");
    if (d == NULL)
        fatal("strdup");
    return d;
}

static void s_usage(const char *prog, FILE *f)
{
    fprintf(f,
            "usage: %s --config FILE [--check-config] [--ready-fd N] [--instance N] "
            "[--verbose]\n"
            "  --config FILE   the duchy's YAML configuration (required)\n"
            "  --check-config  print the normalised configuration and exit (0, or 100)\n"
            "  --ready-fd N    write \"READY name=... pid=... version=...\" to fd N when "
            "serving\n"
            "  --instance N    instance number (claimers), 1-64\n"
            "  --verbose       debug logging\n"
            "  --help          this text\n"
            "exit: 0 clean stop, 64 usage, 100 bad config (permanent), 111 temporary\n",
            prog);
}

/* czmq's own log lines ("E: yy-mm-dd hh:mm:ss [pid]text", e.g. the "dangling socket"
 * report of its atexit handler after a fatal exit) would reach stdout, which the supervisor
 * appends to the duchy log, as lines that are not JSON: a stdio stream whose writes become
 * our log lines (the letter picks the level) replaces czmq's. */
static ssize_t s_czmq_log(void *cookie, const char *buf, size_t size)
{
    (void)cookie;
    for (size_t i = 0, j; i < size; i = j + 1) {
        for (j = i; j < size && buf[j] != '\n'; j++)
            ;
        const char *s = buf + i;
        size_t n = j - i;
        if (n == 0)
            continue;
        char level = n > 1 && s[1] == ':' ? s[0] : 'W';
        const char *rb = n > 1 && s[1] == ':' ? memchr(s, ']', n < 48 ? n : 48) : NULL;
        if (rb != NULL) {
            n -= (size_t)(rb + 1 - s);
            s = rb + 1;
        }
        if (level == 'D')
            log_debug("czmq: %.*s", (int)n, s);
        else if (level == 'I' || level == 'N')
            log_info("czmq: %.*s", (int)n, s);
        else
            log_warnx("czmq: %.*s", (int)n, s);
    }
    return (ssize_t)size;
}

static void s_usage_error(const char *prog, const char *what)
{
    fprintf(stderr, "%s: %s (try --help)\n", prog, what);
    exit(DY_EXIT_USAGE);
}

/* ---- runtime directory ------------------------------------------------------------------- */

/* Creates dir (0700) and missing parents (0700); checks it is a directory
 * of ours that neither group nor others may write.  0 or exits 100. */
static void s_runtime_dir(const char *dir)
{
    char path[PATH_MAX];
    if (snprintf(path, sizeof(path), "%s", dir) >= (int)sizeof(path))
        fatal_config("duchy.runtime_dir: path too long");
    for (char *p = path + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(path, 0700) < 0 && errno != EEXIST)
            fatal_config("duchy.runtime_dir: mkdir %s: %s", path, strerror(errno));
        *p = '/';
    }
    if (mkdir(path, 0700) < 0 && errno != EEXIST)
        fatal_config("duchy.runtime_dir: mkdir %s: %s", path, strerror(errno));
    struct stat st;
    if (lstat(path, &st) < 0)
        fatal_config("duchy.runtime_dir: %s: %s", path, strerror(errno));
    if (!S_ISDIR(st.st_mode))
        fatal_config("duchy.runtime_dir: %s is not a directory", path);
    if (st.st_uid != geteuid())
        fatal_config("duchy.runtime_dir: %s is owned by uid %u, not by us (%u)", path,
                     (unsigned)st.st_uid, (unsigned)geteuid());
    if (st.st_mode & 0022)
        fatal_config("duchy.runtime_dir: %s is group- or other-writable (mode %03o)", path,
                     (unsigned)(st.st_mode & 0777));
}

/* ---- construction ------------------------------------------------------------------------ */

static int s_housekeeping(zloop_t *loop, int timer_id, void *arg);
static int s_admin_ready(zloop_t *loop, zsock_t *sock, void *arg);

dy_actor_t *dy_actor_new(const char *name, int argc, char **argv, const dy_actor_ops_t *ops)
{
    const char *prog = argc > 0 && argv[0] ? argv[0] : "duchy-actor";
    const char *slash = strrchr(prog, '/');
    if (slash)
        prog = slash + 1;

    dy_actor_t *self = calloc(1, sizeof(*self));
    if (self == NULL) {
        fprintf(stderr, "%s: out of memory\n", prog);
        exit(DY_EXIT_TEMPORARY);
    }
    snprintf(self->base, sizeof(self->base), "%s", name);
    self->instance = 1;
    self->ready_fd = -1;
    self->start_ms = dy_now_ms();
    snprintf(self->state, sizeof(self->state), "starting");
    if (ops)
        self->ops = *ops;

    /* Flags. */
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'},
        {"check-config", no_argument, NULL, 'C'},
        {"ready-fd", required_argument, NULL, 'r'},
        {"instance", required_argument, NULL, 'i'},
        {"verbose", no_argument, NULL, 'v'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    bool check = false, have_instance = false;
    const char *config = NULL;
    optind = 1;
    opterr = 0;
    int ch;
    while ((ch = getopt_long(argc, argv, ":c:Cr:i:vh", longopts, NULL)) != -1) {
        char *end;
        long v;
        switch (ch) {
        case 'c':
            config = optarg;
            break;
        case 'C':
            check = true;
            break;
        case 'r':
            errno = 0;
            v = strtol(optarg, &end, 10);
            if (errno || *end || end == optarg || v < 0 || v > INT_MAX)
                s_usage_error(prog, "--ready-fd: not a file descriptor number");
            if (fcntl((int)v, F_GETFD) < 0)
                s_usage_error(prog, "--ready-fd: descriptor is not open");
            self->ready_fd = (int)v;
            break;
        case 'i':
            errno = 0;
            v = strtol(optarg, &end, 10);
            if (errno || *end || end == optarg || v < 1 || v > 64)
                s_usage_error(prog, "--instance: expected a number 1-64");
            self->instance = (int)v;
            have_instance = true;
            break;
        case 'v':
            self->verbose_flag = true;
            break;
        case 'h':
            s_usage(prog, stdout);
            exit(DY_EXIT_OK);
        case ':':
            s_usage_error(prog, "option needs an argument");
            break;
        default:
            s_usage_error(prog, "unknown option");
        }
    }
    /* `--check-config FILE` is accepted as well as `--config FILE --check-config`. */
    if (check && config == NULL && optind == argc - 1)
        config = argv[optind++];
    if (optind < argc)
        s_usage_error(prog, "unexpected argument");
    if (config == NULL)
        s_usage_error(prog, "--config FILE is required");
    if (have_instance)
        snprintf(self->name, sizeof(self->name), "%s-%d", self->base, self->instance);
    else
        snprintf(self->name, sizeof(self->name), "%s", self->base);
    self->config_path = s_xstrdup(config);

    /* Config. */
    char err[512];
    int rc = dy_duchy_config_load(config, &self->cfg, err, sizeof(err));
    if (check) {
        if (rc < 0) {
            if (rc == -EINVAL)
                fprintf(stderr, "%s\n", err);
            else
                fprintf(stderr, "%s: %s\n", config, strerror(-rc));
            exit(DY_EXIT_PERMANENT);
        }
        rc = dy_config_print(dy_duchy_config_keys, dy_duchy_config_nkeys, &self->cfg, stdout);
        exit(rc < 0 ? DY_EXIT_TEMPORARY : DY_EXIT_OK);
    }
    dy_log_init(self->name, rc == 0 ? self->cfg.id : NULL, self->verbose_flag);
    if (rc < 0) {
        if (rc == -EINVAL)
            fatal_config("%s", err);
        fatal_config("%s: %s", config, strerror(-rc));
    }
    dy_log_set_verbose(self->verbose_flag || self->cfg.verbose);
    if (self->ready_fd >= 0)
        (void)fcntl(self->ready_fd, F_SETFD, FD_CLOEXEC);

    /* Hardening: no core dumps, no ptrace by other processes of our uid. */
    struct rlimit rl = {0, 0};
    if (setrlimit(RLIMIT_CORE, &rl) < 0)
        log_warn("setrlimit(RLIMIT_CORE), ignoring");
    if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0)
        log_warn("prctl(PR_SET_DUMPABLE), ignoring");

    /* Signals: flags only; czmq's handler off before the first socket. */
    zsys_handler_set(NULL);
    FILE *zlog = fopencookie(NULL, "w", (cookie_io_functions_t){.write = s_czmq_log});
    if (zlog != NULL) {
        (void)setvbuf(zlog, NULL, _IOLBF, 0);
        zsys_set_logstream(zlog);
    }
    /* The flags are cleared before the handlers go in: a SIGTERM delivered in between
     * must not be lost. */
    s_sig_term = 0;
    s_sig_hup = 0;
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = s_on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    s_runtime_dir(self->cfg.runtime_dir);

    self->loop = zloop_new();
    if (self->loop == NULL)
        fatalx("zloop_new failed");
    zloop_set_nonstop(self->loop, true);
    if (zloop_timer(self->loop, 1000, 0, s_housekeeping, self) < 0)
        fatalx("zloop_timer failed");

    char file[96];
    snprintf(file, sizeof(file), "admin-%s.sock", self->name);
    dy_actor_endpoint(self, file, self->admin_endpoint, sizeof(self->admin_endpoint));
    if (strlen(self->admin_endpoint) - strlen("ipc://") >=
        sizeof(((struct sockaddr_un *)0)->sun_path))
        fatal_config("duchy.runtime_dir: %s is too long for an ipc socket path",
                     self->cfg.runtime_dir);
    self->admin = zsock_new(ZMQ_REP);
    if (self->admin == NULL)
        fatalx("zsock_new(REP) failed");
    zsock_set_linger(self->admin, 0);
    zsock_set_maxmsgsize(self->admin, S_ADMIN_MAX_REQ);
    if (zsock_bind(self->admin, "%s", self->admin_endpoint) < 0)
        fatal("bind %s", self->admin_endpoint);
    if (zloop_reader(self->loop, self->admin, s_admin_ready, self) < 0)
        fatalx("zloop_reader failed");
    zloop_reader_set_tolerant(self->loop, self->admin);
    log_debug("admin socket %s", self->admin_endpoint);
    return self;
}

void dy_actor_destroy(dy_actor_t **self_p)
{
    if (self_p == NULL || *self_p == NULL)
        return;
    dy_actor_t *self = *self_p;
    if (self->loop)
        zloop_destroy(&self->loop);
    if (self->admin) {
        zsock_destroy(&self->admin);
        /* The socket file: ours alone, by name. */
        (void)unlink(self->admin_endpoint + strlen("ipc://"));
    }
    if (self->ready_fd >= 0)
        close(self->ready_fd);
    dy_duchy_config_free(&self->cfg);
    for (size_t i = 0; i < self->nretired; i++)
        dy_duchy_config_free(&self->retired[i]);
    free(self->retired);
    free(self->counters);
    free(self->config_path);
    free(self);
    *self_p = NULL;
}

zloop_t *dy_actor_loop(dy_actor_t *self)
{
    return self->loop;
}

const dy_duchy_config_t *dy_actor_config(const dy_actor_t *self)
{
    return &self->cfg;
}

const char *dy_actor_name(const dy_actor_t *self)
{
    return self->name;
}

int dy_actor_instance(const dy_actor_t *self)
{
    return self->instance;
}

void dy_actor_endpoint(const dy_actor_t *self, const char *file, char *out, size_t cap)
{
    const char *dir = self->cfg.runtime_dir;
    size_t n = strlen(dir);
    while (n > 1 && dir[n - 1] == '/')
        n--;
    snprintf(out, cap, "ipc://%.*s/%s", (int)n, dir, file);
}

int dy_actor_ready(dy_actor_t *self)
{
    if (!self->draining)
        snprintf(self->state, sizeof(self->state), "ready");
    if (self->ready_fd < 0)
        return 0;
    char line[160];
    int n = snprintf(line, sizeof(line), "READY name=%s pid=%ld version=%s\n", self->name,
                     (long)getpid(), DY_VERSION);
    int rc = 0;
    const char *p = line;
    while (n > 0) {
        ssize_t w = write(self->ready_fd, p, (size_t)n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            rc = -errno;
            break;
        }
        p += w;
        n -= (int)w;
    }
    close(self->ready_fd);
    self->ready_fd = -1;
    if (rc < 0)
        log_warnx("writing the readiness line: %s, ignoring", strerror(-rc));
    log_info("ready");
    return rc;
}

/* ---- signals, reload, drain -------------------------------------------------------------- */

static void s_reload(dy_actor_t *self)
{
    dy_duchy_config_t next;
    char err[512];
    int rc = dy_duchy_config_load(self->config_path, &next, err, sizeof(err));
    if (rc < 0) {
        if (rc == -EINVAL)
            log_warnx("reload: %s; keeping the running config", err);
        else
            log_warnx("reload: %s: %s; keeping the running config", self->config_path,
                      strerror(-rc));
        return;
    }
    int n = dy_config_nonreloadable_diff(dy_duchy_config_keys, dy_duchy_config_nkeys, &self->cfg,
                                         &next, err, sizeof(err));
    if (n > 0) {
        log_warnx("reload: %s cannot change without a restart (%d key%s); keeping the running "
                  "config",
                  err, n, n == 1 ? "" : "s");
        dy_duchy_config_free(&next);
        return;
    }
    if (self->ops.reload && self->ops.reload(self, &next, self->ops.arg) != 0) {
        log_warnx("reload: refused by the actor; keeping the running config");
        dy_duchy_config_free(&next);
        return;
    }
    dy_duchy_config_t *r = realloc(self->retired, (self->nretired + 1) * sizeof(*r));
    if (r == NULL)
        fatal("realloc");
    self->retired = r;
    self->retired[self->nretired++] = self->cfg;
    self->cfg = next;
    dy_log_set_verbose(self->verbose_flag || self->cfg.verbose);
    log_info("reload: configuration reloaded");
}

/* Acts on the signal flags.  Returns -1 when the loop should end. */
static int s_check(dy_actor_t *self)
{
    if (s_sig_hup) {
        s_sig_hup = 0;
        s_reload(self);
    }
    if (s_sig_term && !self->draining) {
        self->draining = true;
        snprintf(self->state, sizeof(self->state), "draining");
        log_info("stop requested: draining");
        if (self->ops.drain)
            self->ops.drain(self, self->ops.arg);
        else
            dy_actor_drained(self);
    }
    return self->drained || self->stopped ? -1 : 0;
}

static int s_housekeeping(zloop_t *loop, int timer_id, void *arg)
{
    dy_actor_t *self = arg;
    if (s_check(self) < 0)
        return -1;
    if (self->ops.housekeeping)
        self->ops.housekeeping(self, self->ops.arg);
    return self->drained || self->stopped ? -1 : 0;
}

int dy_actor_run(dy_actor_t *self)
{
    for (;;) {
        if (s_check(self) < 0)
            break;
        int rc = zloop_start(self->loop);
        if (self->drained || self->stopped)
            break;
        if (rc == -1) {
            /* A handler (not ours) ended the loop. */
            log_warnx("the loop was ended by a handler without a drain");
            self->exit_code = DY_EXIT_TEMPORARY;
            self->stopped = true;
            break;
        }
        /* rc 0: zmq_poll was interrupted by a signal; act on it, go on. */
    }
    if (self->drained && !self->stopped)
        log_info("drained: exiting");
    return self->stopped ? self->exit_code : DY_EXIT_OK;
}

void dy_actor_drained(dy_actor_t *self)
{
    self->drained = true;
}

bool dy_actor_draining(const dy_actor_t *self)
{
    return self->draining;
}

void dy_actor_stop(dy_actor_t *self, int exit_code)
{
    if (!self->stopped) {
        self->stopped = true;
        self->exit_code = exit_code;
    }
}

void dy_actor_set_state(dy_actor_t *self, const char *state)
{
    snprintf(self->state, sizeof(self->state), "%s", state ? state : "");
}

static s_counter_t *s_counter(dy_actor_t *self, const char *name)
{
    for (size_t i = 0; i < self->ncounters; i++)
        if (strcmp(self->counters[i].name, name) == 0)
            return &self->counters[i];
    if (self->ncounters == self->capcounters) {
        size_t cap = self->capcounters ? 2 * self->capcounters : 16;
        s_counter_t *c = realloc(self->counters, cap * sizeof(*c));
        if (c == NULL)
            fatal("realloc");
        self->counters = c;
        self->capcounters = cap;
    }
    s_counter_t *c = &self->counters[self->ncounters++];
    snprintf(c->name, sizeof(c->name), "%s", name);
    c->value = 0;
    return c;
}

void dy_actor_count(dy_actor_t *self, const char *name, int64_t delta)
{
    s_counter(self, name)->value += delta;
}

void dy_actor_gauge(dy_actor_t *self, const char *name, int64_t value)
{
    s_counter(self, name)->value = value;
}

/* ---- JSON and admin responses ------------------------------------------------------------ */

int dy_actor_json_escape(dy_buf_t *out, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    for (const unsigned char *p = (const unsigned char *)(s ? s : ""); *p; p++) {
        char esc[7];
        size_t n;
        switch (*p) {
        case '"': memcpy(esc, "\\\"", 2); n = 2; break;
        case '\\': memcpy(esc, "\\\\", 2); n = 2; break;
        case '\n': memcpy(esc, "\\n", 2); n = 2; break;
        case '\r': memcpy(esc, "\\r", 2); n = 2; break;
        case '\t': memcpy(esc, "\\t", 2); n = 2; break;
        default:
            if (*p < 0x20) {
                memcpy(esc, "\\u00", 4);
                esc[4] = hex[*p >> 4];
                esc[5] = hex[*p & 15];
                n = 6;
            } else {
                esc[0] = (char)*p;
                n = 1;
            }
        }
        if (dy_buf_append(out, esc, n) < 0)
            return -ENOMEM;
    }
    return 0;
}

static void s_buf_str(dy_buf_t *b, const char *s)
{
    if (dy_buf_append(b, s, strlen(s)) < 0)
        fatal("out of memory");
}

static void s_buf_fmt(dy_buf_t *b, const char *fmt, ...) DY_PRINTF(2, 3);
static void s_buf_fmt(dy_buf_t *b, const char *fmt, ...)
{
    char tmp[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    s_buf_str(b, tmp);
}

static void s_buf_jstr(dy_buf_t *b, const char *s)
{
    s_buf_str(b, "\"");
    if (dy_actor_json_escape(b, s) < 0)
        fatal("out of memory");
    s_buf_str(b, "\"");
}

/* A malloc'd NUL-terminated copy of the buffer's bytes; frees the buffer. */
static char *s_buf_take(dy_buf_t *b)
{
    char *s = malloc(b->len + 1);
    if (s == NULL)
        fatal("malloc");
    if (b->len)
        memcpy(s, b->data, b->len);
    s[b->len] = '\0';
    dy_buf_free(b);
    return s;
}

static void s_free_str(char *s)
{
    if (s != NULL && s != protobuf_c_empty_string)
        free(s);
}

/* Frees the response's body, whichever of json or sections it is, and
 * leaves it with no body. */
static void s_admin_body_free(Halo__Admin__V1__AdminResponse *resp)
{
    if (resp->body_case == HALO__ADMIN__V1__ADMIN_RESPONSE__BODY_JSON)
        s_free_str(resp->json);
    if (resp->body_case == HALO__ADMIN__V1__ADMIN_RESPONSE__BODY_SECTIONS && resp->sections) {
        Halo__Admin__V1__Sections *ss = resp->sections;
        for (size_t i = 0; i < ss->n_sections; i++) {
            Halo__Admin__V1__Section *sec = ss->sections[i];
            for (size_t j = 0; j < sec->n_entries; j++) {
                s_free_str(sec->entries[j]->key);
                s_free_str(sec->entries[j]->value);
                free(sec->entries[j]);
            }
            free(sec->entries);
            s_free_str(sec->name);
            free(sec);
        }
        free(ss->sections);
        free(ss);
    }
    resp->json = NULL;
    resp->sections = NULL;
    resp->body_case = HALO__ADMIN__V1__ADMIN_RESPONSE__BODY__NOT_SET;
}

void dy_actor_admin_clear(void *resp_)
{
    Halo__Admin__V1__AdminResponse *resp = resp_;
    if (resp == NULL)
        return;
    s_free_str(resp->message);
    s_admin_body_free(resp);
    halo__admin__v1__admin_response__init(resp);
}

void dy_actor_admin_json(void *resp_, const char *json)
{
    Halo__Admin__V1__AdminResponse *resp = resp_;
    s_admin_body_free(resp);
    resp->body_case = HALO__ADMIN__V1__ADMIN_RESPONSE__BODY_JSON;
    resp->json = s_xstrdup(json);
}

void dy_actor_admin_error(void *resp_, int code, const char *fmt, ...)
{
    Halo__Admin__V1__AdminResponse *resp = resp_;
    char tmp[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    s_free_str(resp->message);
    resp->message = s_xstrdup(tmp);
    resp->code = code;
}

void dy_actor_admin_kv(void *resp_, const char *section, const char *key, const char *fmt, ...)
{
    Halo__Admin__V1__AdminResponse *resp = resp_;
    if (resp->body_case != HALO__ADMIN__V1__ADMIN_RESPONSE__BODY_SECTIONS ||
        resp->sections == NULL) {
        s_admin_body_free(resp);
        Halo__Admin__V1__Sections *ss = malloc(sizeof(*ss));
        if (ss == NULL)
            fatal("malloc");
        halo__admin__v1__sections__init(ss);
        resp->sections = ss;
        resp->body_case = HALO__ADMIN__V1__ADMIN_RESPONSE__BODY_SECTIONS;
    }
    Halo__Admin__V1__Sections *ss = resp->sections;
    Halo__Admin__V1__Section *sec = NULL;
    for (size_t i = 0; i < ss->n_sections; i++)
        if (strcmp(ss->sections[i]->name, section) == 0)
            sec = ss->sections[i];
    if (sec == NULL) {
        Halo__Admin__V1__Section **v =
            realloc(ss->sections, (ss->n_sections + 1) * sizeof(*v));
        sec = malloc(sizeof(*sec));
        if (v == NULL || sec == NULL)
            fatal("malloc");
        halo__admin__v1__section__init(sec);
        sec->name = s_xstrdup(section);
        ss->sections = v;
        ss->sections[ss->n_sections++] = sec;
    }
    char tmp[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    Halo__Admin__V1__KeyValue **e = realloc(sec->entries, (sec->n_entries + 1) * sizeof(*e));
    Halo__Admin__V1__KeyValue *kv = malloc(sizeof(*kv));
    if (e == NULL || kv == NULL)
        fatal("malloc");
    halo__admin__v1__key_value__init(kv);
    kv->key = s_xstrdup(key);
    kv->value = s_xstrdup(tmp);
    sec->entries = e;
    sec->entries[sec->n_entries++] = kv;
}

/* ---- built-in verbs ---------------------------------------------------------------------- */

static void s_admin_status(dy_actor_t *self, bool want_json,
                           Halo__Admin__V1__AdminResponse *resp)
{
    if (self->ops.status)
        self->ops.status(self, self->ops.arg);
    double up = (double)(dy_now_ms() - self->start_ms) / 1000.0;
    if (want_json) {
        dy_buf_t b = {0};
        s_buf_str(&b, "{\"name\":");
        s_buf_jstr(&b, self->name);
        s_buf_str(&b, ",\"program\":");
        char prog[64];
        snprintf(prog, sizeof(prog), "duchy-%s", self->base);
        s_buf_jstr(&b, prog);
        s_buf_fmt(&b, ",\"pid\":%ld,\"uptime_seconds\":%.3f,\"state\":", (long)getpid(), up);
        s_buf_jstr(&b, self->state);
        s_buf_str(&b, ",\"version\":");
        s_buf_jstr(&b, DY_VERSION);
        s_buf_str(&b, ",\"counters\":{");
        for (size_t i = 0; i < self->ncounters; i++) {
            if (i)
                s_buf_str(&b, ",");
            s_buf_jstr(&b, self->counters[i].name);
            s_buf_fmt(&b, ":%" PRId64, self->counters[i].value);
        }
        s_buf_str(&b, "}}");
        char *json = s_buf_take(&b);
        dy_actor_admin_json(resp, json);
        free(json);
        return;
    }
    dy_actor_admin_kv(resp, "actor", "name", "%s", self->name);
    dy_actor_admin_kv(resp, "actor", "program", "duchy-%s", self->base);
    dy_actor_admin_kv(resp, "actor", "pid", "%ld", (long)getpid());
    dy_actor_admin_kv(resp, "actor", "uptime_seconds", "%.3f", up);
    dy_actor_admin_kv(resp, "actor", "state", "%s", self->state);
    dy_actor_admin_kv(resp, "actor", "version", "%s", DY_VERSION);
    for (size_t i = 0; i < self->ncounters; i++)
        dy_actor_admin_kv(resp, "counters", self->counters[i].name, "%" PRId64,
                          self->counters[i].value);
}

static void s_fmt_duration(int64_t ms, char *out, size_t cap)
{
    static const struct {
        const char *unit;
        int64_t ms;
    } u[] = {{"d", 86400000}, {"h", 3600000}, {"m", 60000}, {"s", 1000}};
    for (size_t i = 0; i < DY_ARRAY_LEN(u); i++)
        if (ms != 0 && ms % u[i].ms == 0) {
            snprintf(out, cap, "%" PRId64 "%s", ms / u[i].ms, u[i].unit);
            return;
        }
    snprintf(out, cap, "%" PRId64 "ms", ms);
}

static void s_fmt_size(uint64_t b, char *out, size_t cap)
{
    static const char *units[] = {"TiB", "GiB", "MiB", "KiB"};
    for (int i = 0; i < 4; i++) {
        uint64_t m = (uint64_t)1 << (10 * (4 - i));
        if (b != 0 && b % m == 0) {
            snprintf(out, cap, "%" PRIu64 "%s", b / m, units[i]);
            return;
        }
    }
    snprintf(out, cap, "%" PRIu64 "B", b);
}

/* One scalar of a config struct as text; *ret_string tells JSON to quote it. */
static void s_fmt_key(const dy_cfg_key_t *k, const void *cfg, char *out, size_t cap,
                      bool *ret_string)
{
    const char *field = (const char *)cfg + k->offset;
    *ret_string = false;
    switch (k->type) {
    case DY_CFG_STRING:
    case DY_CFG_ENDPOINT: {
        const char *s;
        memcpy(&s, field, sizeof(s));
        snprintf(out, cap, "%s", s ? s : "");
        *ret_string = true;
        return;
    }
    case DY_CFG_INT: {
        int64_t v;
        memcpy(&v, field, sizeof(v));
        snprintf(out, cap, "%" PRId64, v);
        return;
    }
    case DY_CFG_DOUBLE: {
        double d;
        memcpy(&d, field, sizeof(d));
        snprintf(out, cap, "%.17g", d);
        return;
    }
    case DY_CFG_BOOL: {
        bool b;
        memcpy(&b, field, sizeof(b));
        snprintf(out, cap, "%s", b ? "true" : "false");
        return;
    }
    case DY_CFG_DURATION: {
        int64_t ms;
        memcpy(&ms, field, sizeof(ms));
        s_fmt_duration(ms, out, cap);
        *ret_string = true;
        return;
    }
    case DY_CFG_SIZE: {
        uint64_t b;
        memcpy(&b, field, sizeof(b));
        s_fmt_size(b, out, cap);
        *ret_string = true;
        return;
    }
    case DY_CFG_ENUM: {
        int e;
        memcpy(&e, field, sizeof(e));
        int n = 0;
        while (k->choices && k->choices[n])
            n++;
        snprintf(out, cap, "%s", e >= 0 && e < n ? k->choices[e] : "");
        *ret_string = true;
        return;
    }
    case DY_CFG_LIST:
        break;
    }
    snprintf(out, cap, "?");
}

/* Calls fn(key, value, is_string) for every scalar of the config, list
 * items as "peers[0].id". */
typedef void (*s_kv_fn)(const char *key, const char *value, bool is_string, void *arg);
static void s_walk_config(const dy_cfg_key_t *keys, size_t nkeys, const void *cfg,
                          const char *prefix, s_kv_fn fn, void *arg)
{
    for (size_t i = 0; i < nkeys; i++) {
        const dy_cfg_key_t *k = &keys[i];
        char key[160];
        snprintf(key, sizeof(key), "%s%s", prefix, k->path);
        if (k->type == DY_CFG_LIST) {
            const char *items;
            size_t n;
            memcpy(&items, (const char *)cfg + k->offset, sizeof(items));
            memcpy(&n, (const char *)cfg + k->count_offset, sizeof(n));
            for (size_t j = 0; j < n; j++) {
                char sub[200];
                snprintf(sub, sizeof(sub), "%s[%zu].", key, j);
                s_walk_config(k->sub, k->nsub, items + j * k->item_size, sub, fn, arg);
            }
            continue;
        }
        char value[1024];
        bool is_string;
        s_fmt_key(k, cfg, value, sizeof(value), &is_string);
        fn(key, value, is_string, arg);
    }
}

typedef struct {
    dy_buf_t *b;
    bool first;
} s_json_walk_t;

static void s_cfg_json(const char *key, const char *value, bool is_string, void *arg)
{
    s_json_walk_t *w = arg;
    if (!w->first)
        s_buf_str(w->b, ",");
    w->first = false;
    s_buf_jstr(w->b, key);
    s_buf_str(w->b, ":");
    if (is_string)
        s_buf_jstr(w->b, value);
    else
        s_buf_str(w->b, value);
}

static void s_cfg_kv(const char *key, const char *value, bool is_string, void *arg)
{
    dy_actor_admin_kv(arg, "config", key, "%s", value);
}

static void s_admin_config(dy_actor_t *self, bool want_json,
                           Halo__Admin__V1__AdminResponse *resp)
{
    if (!want_json) {
        dy_actor_admin_kv(resp, "file", "path", "%s", self->config_path);
        s_walk_config(dy_duchy_config_keys, dy_duchy_config_nkeys, &self->cfg, "", s_cfg_kv,
                      resp);
        return;
    }
    dy_buf_t b = {0};
    s_buf_str(&b, "{\"file\":");
    s_buf_jstr(&b, self->config_path);
    s_buf_str(&b, ",\"config\":{");
    s_json_walk_t w = {&b, true};
    s_walk_config(dy_duchy_config_keys, dy_duchy_config_nkeys, &self->cfg, "", s_cfg_json, &w);
    s_buf_str(&b, "}}");
    char *json = s_buf_take(&b);
    dy_actor_admin_json(resp, json);
    free(json);
}

static void s_admin_verbose(dy_actor_t *self, const Halo__Admin__V1__AdminRequest *req,
                            Halo__Admin__V1__AdminResponse *resp)
{
    bool on;
    if (req->n_args == 1 && strcmp(req->args[0], "on") == 0)
        on = true;
    else if (req->n_args == 1 && strcmp(req->args[0], "off") == 0)
        on = false;
    else {
        dy_actor_admin_error(resp, S_CODE_INVALID_ARGUMENT, "VERBOSE takes on or off");
        return;
    }
    dy_log_set_verbose(on);
    log_info("admin: verbose %s", on ? "on" : "off");
    if (req->want_json)
        dy_actor_admin_json(resp, on ? "{\"verbose\":true}" : "{\"verbose\":false}");
    else
        dy_actor_admin_kv(resp, "log", "verbose", "%s", on ? "on" : "off");
}

/* Validates and answers one request; resp is filled. */
static void s_admin_dispatch(dy_actor_t *self, const uint8_t *data, size_t len,
                             Halo__Admin__V1__AdminResponse *resp)
{
    if (len > S_ADMIN_MAX_REQ) {
        dy_actor_admin_error(resp, S_CODE_INVALID_ARGUMENT, "request too large");
        return;
    }
    Halo__Admin__V1__AdminRequest *req =
        halo__admin__v1__admin_request__unpack(NULL, len, data);
    if (req == NULL) {
        dy_actor_count(self, "admin_malformed", 1);
        dy_actor_admin_error(resp, S_CODE_INVALID_ARGUMENT, "malformed AdminRequest");
        return;
    }
    bool ok = req->n_args <= S_ADMIN_MAX_ARGS;
    for (size_t i = 0; ok && i < req->n_args; i++)
        ok = strlen(req->args[i]) <= S_ADMIN_MAX_ARG;
    if (!ok) {
        dy_actor_admin_error(resp, S_CODE_INVALID_ARGUMENT, "too many or too long arguments");
        halo__admin__v1__admin_request__free_unpacked(req, NULL);
        return;
    }
    switch (req->verb) {
    case HALO__ADMIN__V1__VERB__STATUS:
        s_admin_status(self, req->want_json, resp);
        break;
    case HALO__ADMIN__V1__VERB__VERBOSE:
        s_admin_verbose(self, req, resp);
        break;
    case HALO__ADMIN__V1__VERB__CONFIG:
        s_admin_config(self, req->want_json, resp);
        break;
    default: {
        int rc = self->ops.admin ? self->ops.admin(self, req, resp, self->ops.arg) : -ENOTSUP;
        if (rc == -ENOTSUP) {
            dy_actor_admin_clear(resp);
            dy_actor_admin_error(resp, S_CODE_UNIMPLEMENTED, "verb %d not served by %s",
                                 (int)req->verb, self->name);
        } else if (rc < 0 && resp->code == 0) {
            dy_actor_admin_error(resp, S_CODE_INTERNAL, "%s", strerror(-rc));
        }
    }
    }
    halo__admin__v1__admin_request__free_unpacked(req, NULL);
}

static int s_admin_ready(zloop_t *loop, zsock_t *sock, void *arg)
{
    dy_actor_t *self = arg;
    zmsg_t *msg = zmsg_recv(sock);
    if (msg == NULL)
        return 0; /* interrupted: the loop turns and the flags are seen */
    Halo__Admin__V1__AdminResponse resp;
    halo__admin__v1__admin_response__init(&resp);
    if (zmsg_size(msg) != 1) {
        dy_actor_admin_error(&resp, S_CODE_INVALID_ARGUMENT, "one frame expected");
    } else {
        zframe_t *f = zmsg_first(msg);
        s_admin_dispatch(self, zframe_data(f), zframe_size(f), &resp);
    }
    zmsg_destroy(&msg);
    size_t n = halo__admin__v1__admin_response__get_packed_size(&resp);
    zframe_t *out = zframe_new(NULL, n);
    if (out == NULL)
        fatal("zframe_new");
    halo__admin__v1__admin_response__pack(&resp, zframe_data(out));
    dy_actor_admin_clear(&resp);
    if (zframe_send(&out, sock, 0) < 0) {
        log_warn("admin: reply not sent, ignoring");
        zframe_destroy(&out);
    }
    dy_actor_count(self, "admin_requests", 1);
    return 0;
}

/* ---- the admin client -------------------------------------------------------------------- */

int dy_actor_admin_call(const char *endpoint, int verb, const char *const *args, size_t nargs,
                        bool want_json, int timeout_ms, void **ret_resp)
{
    if (endpoint == NULL || ret_resp == NULL || nargs > S_ADMIN_MAX_ARGS)
        return -EINVAL;
    Halo__Admin__V1__AdminRequest req;
    halo__admin__v1__admin_request__init(&req);
    req.verb = (Halo__Admin__V1__Verb)verb;
    req.args = (char **)args;
    req.n_args = nargs;
    req.want_json = want_json;
    size_t n = halo__admin__v1__admin_request__get_packed_size(&req);
    zframe_t *f = zframe_new(NULL, n);
    if (f == NULL)
        return -ENOMEM;
    halo__admin__v1__admin_request__pack(&req, zframe_data(f));

    zsock_t *s = zsock_new(ZMQ_REQ);
    if (s == NULL) {
        zframe_destroy(&f);
        return -EIO;
    }
    zsock_set_linger(s, 0);
    zsock_set_rcvtimeo(s, timeout_ms);
    zsock_set_sndtimeo(s, timeout_ms);
    int rc = 0;
    if (zsock_connect(s, "%s", endpoint) < 0) {
        rc = -EINVAL;
        zframe_destroy(&f);
        goto out;
    }
    if (zframe_send(&f, s, 0) < 0) {
        zframe_destroy(&f);
        rc = -ETIMEDOUT;
        goto out;
    }
    zmsg_t *msg = zmsg_recv(s);
    if (msg == NULL) {
        rc = -ETIMEDOUT;
        goto out;
    }
    zframe_t *r = zmsg_first(msg);
    Halo__Admin__V1__AdminResponse *resp =
        zmsg_size(msg) == 1
            ? halo__admin__v1__admin_response__unpack(NULL, zframe_size(r), zframe_data(r))
            : NULL;
    zmsg_destroy(&msg);
    if (resp == NULL) {
        rc = -EPROTO;
        goto out;
    }
    *ret_resp = resp;
out:
    zsock_destroy(&s);
    return rc;
}

/* ---- actor messages ---------------------------------------------------------------------- */

int dy_actor_reply_effects(zsock_t *sock, zframe_t *identity, const char *request_id,
                           const char *sender, dy_outcome_t outcome, const char *code,
                           const char *message)
{
    Halo__Internal__V1__EffectsReply er = HALO__INTERNAL__V1__EFFECTS_REPLY__INIT;
    er.outcome = outcome == DY_OUTCOME_OK         ? HALO__INTERNAL__V1__OUTCOME__OUTCOME_OK
                 : outcome == DY_OUTCOME_TEMPFAIL ? HALO__INTERNAL__V1__OUTCOME__OUTCOME_TEMPFAIL
                                                  : HALO__INTERNAL__V1__OUTCOME__OUTCOME_PERMFAIL;
    er.code = (char *)(code ? code : "");
    er.message = (char *)(message ? message : "");
    Halo__Internal__V1__ActorMessage reply = HALO__INTERNAL__V1__ACTOR_MESSAGE__INIT;
    reply.version = 1;
    reply.request_id = (char *)(request_id ? request_id : "");
    reply.sender = (char *)sender;
    reply.body_case = HALO__INTERNAL__V1__ACTOR_MESSAGE__BODY_EFFECTS_REPLY;
    reply.effects_reply = &er;
    return dy_actor_send_msg(sock, identity, &reply);
}

int dy_actor_send_msg(zsock_t *sock, zframe_t *identity, const void *actor_message)
{
    const Halo__Internal__V1__ActorMessage *m = actor_message;
    if (sock == NULL || m == NULL)
        return -EINVAL;
    size_t n = halo__internal__v1__actor_message__get_packed_size(m);
    zframe_t *f = zframe_new(NULL, n);
    if (f == NULL)
        return -ENOMEM;
    halo__internal__v1__actor_message__pack(m, zframe_data(f));
    if (identity != NULL) {
        zframe_t *id = zframe_dup(identity);
        if (id == NULL || zframe_send(&id, sock, ZFRAME_MORE) < 0) {
            int e = errno ? errno : EIO;
            zframe_destroy(&id);
            zframe_destroy(&f);
            return -e;
        }
    }
    if (zframe_send(&f, sock, 0) < 0) {
        int e = errno ? errno : EIO;
        zframe_destroy(&f);
        return -e;
    }
    return 0;
}

void *dy_actor_recv_msg(zsock_t *sock, zframe_t **ret_identity)
{
    zmsg_t *msg = zmsg_recv(sock);
    if (msg == NULL)
        return NULL;
    bool router = zsock_type(sock) == ZMQ_ROUTER;
    size_t want = router ? 2 : 1;
    if (zmsg_size(msg) != want) {
        log_warnx("%s: message of %zu frames, %zu expected: dropped", __func__,
                  zmsg_size(msg), want);
        zmsg_destroy(&msg);
        return NULL;
    }
    zframe_t *id = router ? zmsg_pop(msg) : NULL;
    zframe_t *body = zmsg_first(msg);
    Halo__Internal__V1__ActorMessage *m =
        halo__internal__v1__actor_message__unpack(NULL, zframe_size(body), zframe_data(body));
    zmsg_destroy(&msg);
    if (m == NULL) {
        log_warnx("%s: undecodable ActorMessage: dropped", __func__);
        zframe_destroy(&id);
        return NULL;
    }
    if (m->version != S_ACTOR_MSG_VERSION) {
        log_warnx("%s: ActorMessage version %u from \"%s\" (want %d): dropped", __func__,
                  m->version, m->sender, S_ACTOR_MSG_VERSION);
        halo__internal__v1__actor_message__free_unpacked(m, NULL);
        zframe_destroy(&id);
        return NULL;
    }
    if (ret_identity != NULL)
        *ret_identity = id;
    else
        zframe_destroy(&id);
    return m;
}
