/* duchyctl.c - the duchy's admin CLI (INTERFACES.md "A running federation"; STYLE.md rule
 * 31): one halo.admin.v1 AdminRequest over a REQ socket to the duchy's admin endpoint
 * (ipc://RUN/admin.sock, served by the coordinator) or, with --actor NAME, to that actor's
 * own socket (ipc://RUN/admin-NAME.sock, next to the endpoint), and the answer printed.
 *
 *   duchyctl --admin ENDPOINT <command> [--json] [--actor NAME] [--timeout MS]
 *            [--iterations N]
 *
 * Commands are a grammar table (s_commands): status, computations, workers, claims, audit,
 * audit verify, top, verbose on|off, config.  Output: with --json the answer's JSON object
 * is the last line on stdout; otherwise stable "key: value" lines - the answer's sections
 * ("# name" then its lines, Redis INFO style), or, when the server answered JSON anyway,
 * that JSON flattened ("actors[0].name: duchy-gateway").  No answer within --timeout
 * (2000 ms) is an error naming the endpoint.  `top` redraws status, computations and
 * workers with counter rates every second (ANSI clear on a terminal, else one frame per
 * second separated by a blank line) until q, SIGINT or --iterations frames.
 *
 * Exit: 0 OK, 1 the request failed (no answer, an error code), 64 usage.
 */
#include "actor.h"
#include "admin.pb-c.h"
#include "mc_util.h"

#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#define S_PROG "duchyctl"

typedef struct s_ctx s_ctx_t;
typedef struct s_cmd s_cmd_t;

/* One command of the grammar. */
struct s_cmd {
    const char *words;   /* the command line words, space-separated */
    int verb;            /* Halo__Admin__V1__Verb */
    const char *arg;     /* the request's one argument, or NULL */
    bool to_actor;       /* --actor NAME sends it to that actor's own socket */
    int (*fn)(s_ctx_t *ctx, const s_cmd_t *cmd);
    const char *help;
};

struct s_ctx {
    const char *admin;   /* --admin ENDPOINT */
    const char *actor;   /* --actor NAME or NULL */
    char endpoint[512];  /* where the request goes */
    bool json;           /* --json */
    int timeout_ms;      /* --timeout */
    long iterations;     /* --iterations, 0 = until q / SIGINT */
};

static int s_do_request(s_ctx_t *ctx, const s_cmd_t *cmd);
static int s_do_top(s_ctx_t *ctx, const s_cmd_t *cmd);

static const s_cmd_t s_commands[] = {
    {"status", HALO__ADMIN__V1__VERB__STATUS, NULL, true, s_do_request,
     "the duchy's actors (name, pid, uptime, state) and counters"},
    {"computations", HALO__ADMIN__V1__VERB__COMPUTATIONS, NULL, false, s_do_request,
     "id, protocol, role, stage, attempt, lease owner, lease expiry"},
    {"workers", HALO__ADMIN__V1__VERB__WORKERS, NULL, false, s_do_request,
     "running mills: pid, computation, stage, attempt, started"},
    {"claims", HALO__ADMIN__V1__VERB__CLAIMS, NULL, false, s_do_request,
     "leases held by the claimers"},
    {"audit", HALO__ADMIN__V1__VERB__AUDIT, NULL, false, s_do_request,
     "the hash-chained audit log"},
    {"audit verify", HALO__ADMIN__V1__VERB__AUDIT, "verify", false, s_do_request,
     "verify the audit log's hash chain"},
    {"top", HALO__ADMIN__V1__VERB__STATUS, NULL, false, s_do_top,
     "live view: status, computations, workers, counter rates (q or ^C quits)"},
    {"verbose on", HALO__ADMIN__V1__VERB__VERBOSE, "on", true, s_do_request,
     "debug logging on (the endpoint's actor, or --actor NAME)"},
    {"verbose off", HALO__ADMIN__V1__VERB__VERBOSE, "off", true, s_do_request,
     "debug logging off"},
    {"config", HALO__ADMIN__V1__VERB__CONFIG, NULL, true, s_do_request,
     "the normalised running configuration (paths, no secrets)"},
};

static volatile sig_atomic_t s_interrupted;

static void s_on_sigint(int sig)
{
    s_interrupted = 1;
}

static void s_usage(FILE *f)
{
    fprintf(f, "usage: " S_PROG " --admin ENDPOINT <command> [--json] [--actor NAME] "
               "[--timeout MS] [--iterations N]\n"
               "commands:\n");
    for (size_t i = 0; i < DY_ARRAY_LEN(s_commands); i++)
        fprintf(f, "  %-14s %s\n", s_commands[i].words, s_commands[i].help);
    fprintf(f, "  --json          print the answer as one JSON object (the last stdout line)\n"
               "  --actor NAME    status/config/verbose to one actor (e.g. claimer-1)\n"
               "  --timeout MS    answer deadline (2000)\n"
               "  --iterations N  top: stop after N frames\n"
               "exit: 0 OK, 1 failed (no answer, error code), 64 usage\n");
}

static void s_usage_error(const char *what)
{
    fprintf(stderr, S_PROG ": %s (try --help)\n", what);
    exit(DY_EXIT_USAGE);
}

/* ---- printing -------------------------------------------------------------------------- */

static void s_print_scalar(FILE *f, const dy_json_t *v)
{
    switch (v->type) {
    case DY_JSON_NULL: fputs("null", f); break;
    case DY_JSON_BOOL: fputs(v->boolean ? "true" : "false", f); break;
    case DY_JSON_NUMBER:
    case DY_JSON_STRING: fputs(v->text ? v->text : "", f); break;
    default: break;
    }
}

/* "prefix.key: value" lines, arrays as prefix[i]. */
static void s_flatten(FILE *f, const char *prefix, const dy_json_t *v)
{
    char sub[512];
    if (v->type == DY_JSON_OBJECT) {
        for (size_t i = 0; i < v->n; i++) {
            snprintf(sub, sizeof(sub), "%s%s%s", prefix, *prefix ? "." : "", v->keys[i]);
            s_flatten(f, sub, &v->items[i]);
        }
        if (v->n == 0)
            fprintf(f, "%s: {}\n", prefix);
    } else if (v->type == DY_JSON_ARRAY) {
        for (size_t i = 0; i < v->n; i++) {
            snprintf(sub, sizeof(sub), "%s[%zu]", prefix, i);
            s_flatten(f, sub, &v->items[i]);
        }
        if (v->n == 0)
            fprintf(f, "%s: []\n", prefix);
    } else {
        fprintf(f, "%s: ", prefix);
        s_print_scalar(f, v);
        fputc('\n', f);
    }
}

static void s_print_sections(const Halo__Admin__V1__Sections *ss)
{
    for (size_t i = 0; i < ss->n_sections; i++) {
        const Halo__Admin__V1__Section *s = ss->sections[i];
        if (i)
            putchar('\n');
        printf("# %s\n", s->name);
        for (size_t j = 0; j < s->n_entries; j++)
            printf("%s: %s\n", s->entries[j]->key, s->entries[j]->value);
    }
}

/* Sections as one JSON object {"section": {"key": "value"}} (a server that ignored
 * want_json). */
static void s_sections_json(const Halo__Admin__V1__Sections *ss)
{
    putchar('{');
    for (size_t i = 0; i < ss->n_sections; i++) {
        const Halo__Admin__V1__Section *s = ss->sections[i];
        if (i)
            putchar(',');
        dy_json_put_str(stdout, s->name);
        fputs(":{", stdout);
        for (size_t j = 0; j < s->n_entries; j++) {
            if (j)
                putchar(',');
            dy_json_put_str(stdout, s->entries[j]->key);
            putchar(':');
            dy_json_put_str(stdout, s->entries[j]->value);
        }
        putchar('}');
    }
    fputs("}\n", stdout);
}

/* ---- one request ----------------------------------------------------------------------- */

/* Sends the command's request; *ret is the response (caller frees).  0, or 1 after
 * printing the error. */
static int s_call(s_ctx_t *ctx, int verb, const char *arg, bool want_json,
                  Halo__Admin__V1__AdminResponse **ret)
{
    const char *args[1] = {arg};
    void *resp = NULL;
    int rc = dy_actor_admin_call(ctx->endpoint, verb, args, arg ? 1 : 0, want_json,
                                 ctx->timeout_ms, &resp);
    if (rc == -ETIMEDOUT) {
        fprintf(stderr, S_PROG ": no answer from %s within %d ms\n", ctx->endpoint,
                ctx->timeout_ms);
        return 1;
    }
    if (rc < 0) {
        fprintf(stderr, S_PROG ": %s: %s\n", ctx->endpoint,
                rc == -EPROTO ? "undecodable answer" : strerror(-rc));
        return 1;
    }
    *ret = resp;
    return 0;
}

static int s_do_request(s_ctx_t *ctx, const s_cmd_t *cmd)
{
    Halo__Admin__V1__AdminResponse *r = NULL;
    if (s_call(ctx, cmd->verb, cmd->arg, ctx->json, &r) != 0)
        return 1;
    int rc = 0;
    if (r->code != 0) {
        fprintf(stderr, S_PROG ": %s: error %d: %s\n", cmd->words, r->code, r->message);
        if (ctx->json) {
            fputs("{\"code\":", stdout);
            printf("%d,\"message\":", r->code);
            dy_json_put_str(stdout, r->message);
            fputs("}\n", stdout);
        }
        rc = 1;
    } else if (r->body_case == HALO__ADMIN__V1__ADMIN_RESPONSE__BODY_JSON) {
        if (ctx->json) {
            /* One line, whatever the server's layout. */
            for (const char *p = r->json; *p; p++)
                if (*p != '\n' && *p != '\r')
                    putchar(*p);
            putchar('\n');
        } else {
            char err[128];
            dy_json_t *j = dy_json_parse(r->json, strlen(r->json), err, sizeof(err));
            if (j == NULL) {
                fprintf(stderr, S_PROG ": %s: the answer is not JSON (%s)\n", cmd->words, err);
                rc = 1;
            } else {
                s_flatten(stdout, j->type == DY_JSON_ARRAY ? cmd->words : "", j);
                dy_json_destroy(&j);
            }
        }
    } else if (r->body_case == HALO__ADMIN__V1__ADMIN_RESPONSE__BODY_SECTIONS) {
        if (ctx->json)
            s_sections_json(r->sections);
        else
            s_print_sections(r->sections);
    } else if (ctx->json) {
        puts("{}");
    }
    protobuf_c_message_free_unpacked(&r->base, NULL);
    return rc;
}

/* ---- top --------------------------------------------------------------------------------- */

typedef struct {
    char name[64];
    double value;
} s_rate_t;

/* The member key of v, or v itself when it is already the array (both answer forms). */
static const dy_json_t *s_list(const dy_json_t *v, const char *key)
{
    if (v == NULL)
        return NULL;
    if (v->type == DY_JSON_ARRAY)
        return v;
    const dy_json_t *m = dy_json_get(v, key);
    return m && m->type == DY_JSON_ARRAY ? m : NULL;
}

static const char *s_field(const dy_json_t *obj, const char *key, char *buf, size_t cap)
{
    const dy_json_t *v = dy_json_get(obj, key);
    if (v == NULL || v->type == DY_JSON_NULL)
        return "-";
    if (v->type == DY_JSON_STRING || v->type == DY_JSON_NUMBER) {
        snprintf(buf, cap, "%s", v->text ? v->text : "");
        return buf;
    }
    if (v->type == DY_JSON_BOOL)
        return v->boolean ? "true" : "false";
    return "...";
}

static dy_json_t *s_fetch(s_ctx_t *ctx, int verb, char *err, size_t errlen)
{
    Halo__Admin__V1__AdminResponse *r = NULL;
    const char *args[1] = {NULL};
    void *resp = NULL;
    int rc = dy_actor_admin_call(ctx->endpoint, verb, args, 0, true, ctx->timeout_ms, &resp);
    if (rc < 0) {
        snprintf(err, errlen, "%s", rc == -ETIMEDOUT ? "no answer" : strerror(-rc));
        return NULL;
    }
    r = resp;
    dy_json_t *j = NULL;
    if (r->code != 0)
        snprintf(err, errlen, "error %d: %s", r->code, r->message);
    else if (r->body_case != HALO__ADMIN__V1__ADMIN_RESPONSE__BODY_JSON)
        snprintf(err, errlen, "no JSON in the answer");
    else
        j = dy_json_parse(r->json, strlen(r->json), err, errlen); /* NULL: err says why */
    protobuf_c_message_free_unpacked(&r->base, NULL);
    return j;
}

static void s_frame(s_ctx_t *ctx, bool tty, s_rate_t *prev, size_t *nprev, double dt)
{
    char err[256], b1[128], b2[128], b3[128], b4[128], b5[128], b6[128], b7[128];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    char ts[32];
    strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%SZ", &tm);
    if (tty)
        fputs("\033[H\033[2J", stdout);

    dy_json_t *st = s_fetch(ctx, HALO__ADMIN__V1__VERB__STATUS, err, sizeof(err));
    printf("duchy %s   %s   %s\n", st ? s_field(st, "duchy", b1, sizeof(b1)) : "?",
           ctx->endpoint, ts);
    if (st == NULL) {
        printf("status: unreachable (%s)\n", err);
    } else {
        printf("\n%-24s %8s %12s  %s\n", "ACTOR", "PID", "UPTIME", "STATE");
        const dy_json_t *actors = s_list(st, "actors");
        for (size_t i = 0; actors && i < actors->n; i++) {
            const dy_json_t *a = &actors->items[i];
            printf("%-24s %8s %12s  %s\n", s_field(a, "name", b1, sizeof(b1)),
                   s_field(a, "pid", b2, sizeof(b2)), s_field(a, "uptime_seconds", b3, sizeof(b3)),
                   s_field(a, "state", b4, sizeof(b4)));
        }
        const dy_json_t *counters = dy_json_get(st, "counters");
        if (counters && counters->type == DY_JSON_OBJECT && counters->n > 0) {
            printf("\n%-32s %14s %10s\n", "COUNTER", "VALUE", "PER SEC");
            s_rate_t cur[64];
            size_t ncur = 0;
            for (size_t i = 0; i < counters->n && ncur < 64; i++) {
                double v = 0;
                if (dy_json_double(&counters->items[i], &v) < 0)
                    continue;
                snprintf(cur[ncur].name, sizeof(cur[ncur].name), "%s", counters->keys[i]);
                cur[ncur].value = v;
                char rate[32] = "-";
                for (size_t k = 0; k < *nprev; k++)
                    if (dt > 0 && strcmp(prev[k].name, cur[ncur].name) == 0)
                        snprintf(rate, sizeof(rate), "%.1f", (v - prev[k].value) / dt);
                printf("%-32s %14.0f %10s\n", cur[ncur].name, v, rate);
                ncur++;
            }
            memcpy(prev, cur, ncur * sizeof(*cur));
            *nprev = ncur;
        }
        dy_json_destroy(&st);
    }

    dy_json_t *cs = s_fetch(ctx, HALO__ADMIN__V1__VERB__COMPUTATIONS, err, sizeof(err));
    printf("\n%-28s %-22s %-16s %-24s %4s %-28s %s\n", "COMPUTATION", "PROTOCOL", "ROLE",
           "STAGE", "ATT", "LEASE OWNER", "LEASE EXPIRY");
    if (cs == NULL) {
        printf("computations: unreachable (%s)\n", err);
    } else {
        const dy_json_t *l = s_list(cs, "computations");
        for (size_t i = 0; l && i < l->n; i++) {
            const dy_json_t *c = &l->items[i];
            printf("%-28s %-22s %-16s %-24s %4s %-28s %s\n", s_field(c, "id", b1, sizeof(b1)),
                   s_field(c, "protocol", b2, sizeof(b2)), s_field(c, "role", b3, sizeof(b3)),
                   s_field(c, "stage", b4, sizeof(b4)), s_field(c, "attempt", b5, sizeof(b5)),
                   s_field(c, "lease_owner", b6, sizeof(b6)),
                   s_field(c, "lease_expiry", b7, sizeof(b7)));
        }
        dy_json_destroy(&cs);
    }

    dy_json_t *ws = s_fetch(ctx, HALO__ADMIN__V1__VERB__WORKERS, err, sizeof(err));
    printf("\n%8s %-28s %-24s %4s %s\n", "PID", "COMPUTATION", "STAGE", "ATT", "STARTED");
    if (ws == NULL) {
        printf("workers: unreachable (%s)\n", err);
    } else {
        const dy_json_t *l = s_list(ws, "workers");
        for (size_t i = 0; l && i < l->n; i++) {
            const dy_json_t *w = &l->items[i];
            printf("%8s %-28s %-24s %4s %s\n", s_field(w, "pid", b1, sizeof(b1)),
                   s_field(w, "computation", b2, sizeof(b2)), s_field(w, "stage", b3, sizeof(b3)),
                   s_field(w, "attempt", b4, sizeof(b4)), s_field(w, "started", b5, sizeof(b5)));
        }
        dy_json_destroy(&ws);
    }
    if (!tty)
        putchar('\n');
    fflush(stdout);
}

static int s_do_top(s_ctx_t *ctx, const s_cmd_t *cmd)
{
    bool tty = isatty(STDOUT_FILENO);
    bool keys = isatty(STDIN_FILENO);
    struct termios saved;
    if (keys && tcgetattr(STDIN_FILENO, &saved) == 0) {
        struct termios raw = saved;
        raw.c_lflag &= (tcflag_t) ~(ICANON | ECHO);
        raw.c_cc[VMIN] = 0;
        raw.c_cc[VTIME] = 0;
        tcsetattr(STDIN_FILENO, TCSANOW, &raw);
    } else {
        keys = false;
    }
    s_rate_t prev[64];
    size_t nprev = 0;
    double last = dy_now();
    for (long frame = 0; !s_interrupted; frame++) {
        double t = dy_now();
        s_frame(ctx, tty, prev, &nprev, frame ? t - last : 0);
        last = t;
        if (ctx->iterations > 0 && frame + 1 >= ctx->iterations)
            break;
        /* Wait a second for q (a terminal) or just the second; SIGINT interrupts. */
        struct pollfd p = {.fd = STDIN_FILENO, .events = POLLIN};
        double until = dy_now() + 1.0;
        bool quit = false;
        while (!s_interrupted && !quit) {
            double left = until - dy_now();
            if (left <= 0)
                break;
            int n = poll(keys ? &p : NULL, keys ? 1 : 0, (int)(left * 1000) + 1);
            if (n > 0 && keys) {
                char c;
                if (read(STDIN_FILENO, &c, 1) == 1 && (c == 'q' || c == 'Q'))
                    quit = true;
            }
        }
        if (quit)
            break;
    }
    if (keys)
        tcsetattr(STDIN_FILENO, TCSANOW, &saved);
    return 0;
}

/* ---- main ------------------------------------------------------------------------------ */

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"admin", required_argument, NULL, 'a'},  {"json", no_argument, NULL, 'j'},
        {"actor", required_argument, NULL, 'A'},  {"timeout", required_argument, NULL, 't'},
        {"iterations", required_argument, NULL, 'n'}, {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    s_ctx_t ctx = {.timeout_ms = 2000};
    opterr = 0;
    int ch;
    while ((ch = getopt_long(argc, argv, ":a:jA:t:n:h", longopts, NULL)) != -1) {
        char *end;
        long v;
        switch (ch) {
        case 'a': ctx.admin = optarg; break;
        case 'j': ctx.json = true; break;
        case 'A':
            for (const char *p = optarg; *p; p++)
                if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-'))
                    s_usage_error("--actor: an actor name such as claimer-1");
            ctx.actor = optarg;
            break;
        case 't':
            v = strtol(optarg, &end, 10);
            if (*end || end == optarg || v < 1 || v > 600000)
                s_usage_error("--timeout: milliseconds, 1-600000");
            ctx.timeout_ms = (int)v;
            break;
        case 'n':
            v = strtol(optarg, &end, 10);
            if (*end || end == optarg || v < 1)
                s_usage_error("--iterations: a positive number");
            ctx.iterations = v;
            break;
        case 'h': s_usage(stdout); return 0;
        case ':': s_usage_error("option needs an argument"); break;
        default: s_usage_error("unknown option");
        }
    }
    char words[256] = "";
    for (int i = optind; i < argc; i++) {
        if (strlen(words) + strlen(argv[i]) + 2 > sizeof(words))
            s_usage_error("command too long");
        if (*words)
            strcat(words, " ");
        strcat(words, argv[i]);
    }
    if (!*words)
        s_usage_error("a command is required");
    const s_cmd_t *cmd = NULL;
    for (size_t i = 0; i < DY_ARRAY_LEN(s_commands); i++)
        if (strcmp(s_commands[i].words, words) == 0)
            cmd = &s_commands[i];
    if (cmd == NULL) {
        char msg[300];
        snprintf(msg, sizeof(msg), "unknown command \"%s\"", words);
        s_usage_error(msg);
    }
    if (ctx.admin == NULL)
        s_usage_error("--admin ENDPOINT is required");
    if (ctx.actor && !cmd->to_actor)
        s_usage_error("--actor applies to status, config and verbose only");
    if (ctx.actor) {
        /* The actor's socket sits next to the duchy's admin socket. */
        const char *slash = strrchr(ctx.admin, '/');
        if (strncmp(ctx.admin, "ipc://", 6) != 0 || slash == NULL)
            s_usage_error("--actor needs an ipc:// --admin endpoint");
        snprintf(ctx.endpoint, sizeof(ctx.endpoint), "%.*s/admin-%s.sock",
                 (int)(slash - ctx.admin), ctx.admin, ctx.actor);
    } else {
        snprintf(ctx.endpoint, sizeof(ctx.endpoint), "%s", ctx.admin);
    }

    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = s_on_sigint;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    zsys_handler_set(NULL);
    int rc = cmd->fn(&ctx, cmd);
    zsys_shutdown();
    return rc;
}
