/* test_duchyctl.c - tools/duchyctl (found through DY_DUCHYCTL) against fake admin
 * responders: REP sockets in threads answering fixed halo.admin.v1 responses and recording
 * each request.  Checks the command grammar (usage 64, --help 0), --json as the last stdout
 * line, the key: value output from sections and from JSON, the request each command sends
 * (verb, args, want_json), --actor routing, an error code (exit 1), the 2 s timeout
 * (exit 1, endpoint named), and `top --iterations 2` frames. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "actor.h"
#include "admin.pb-c.h"

static const char *s_status_json =
    "{\"duchy\":\"worker1\",\"actors\":[{\"name\":\"duchy-gateway\",\"pid\":101,"
    "\"uptime_seconds\":12.5,\"state\":\"ready\"},{\"name\":\"duchy-claimer-1\",\"pid\":102,"
    "\"uptime_seconds\":11,\"state\":\"ready\"}],\"counters\":{\"stages_done\":5}}";
static const char *s_comp_json =
    "{\"computations\":[{\"id\":\"comp-1\",\"protocol\":\"LIQUID_LEGIONS_V2\","
    "\"role\":\"AGGREGATOR\",\"stage\":\"SETUP_PHASE\",\"attempt\":1,"
    "\"lease_owner\":\"worker1/claimer-1/102\",\"lease_expiry\":\"2026-01-01T00:00:00Z\"}]}";
static const char *s_workers_json =
    "[{\"pid\":4242,\"computation\":\"comp-1\",\"stage\":\"SETUP_PHASE\",\"attempt\":1,"
    "\"started\":\"2026-01-01T00:00:00Z\"}]";

/* One fake responder. */
typedef struct {
    char endpoint[256];
    zsock_t *sock;
    pthread_t thread;
    volatile int stop;
    pthread_mutex_t lock;
    int last_verb;
    char last_args[256];
    int last_want_json;
    int requests;
} s_fake_t;

static s_fake_t s_duchy, s_claimer;
static char s_dir[] = "/tmp/test_duchyctl.XXXXXX";

static void *s_serve(void *arg)
{
    s_fake_t *f = arg;
    while (!f->stop) {
        zframe_t *in = zframe_recv(f->sock);
        if (in == NULL)
            continue; /* receive timeout: look at stop */
        Halo__Admin__V1__AdminRequest *req =
            halo__admin__v1__admin_request__unpack(NULL, zframe_size(in), zframe_data(in));
        zframe_destroy(&in);
        Halo__Admin__V1__AdminResponse resp = HALO__ADMIN__V1__ADMIN_RESPONSE__INIT;
        pthread_mutex_lock(&f->lock);
        f->requests++;
        f->last_verb = req ? (int)req->verb : -1;
        f->last_want_json = req ? req->want_json : -1;
        f->last_args[0] = '\0';
        for (size_t i = 0; req && i < req->n_args; i++) {
            strncat(f->last_args, req->args[i], sizeof(f->last_args) - strlen(f->last_args) - 2);
            strcat(f->last_args, ";");
        }
        pthread_mutex_unlock(&f->lock);
        int verb = req ? (int)req->verb : 0;
        bool json = req && req->want_json;
        switch (verb) {
        case HALO__ADMIN__V1__VERB__STATUS:
            if (json) {
                dy_actor_admin_json(&resp, s_status_json);
            } else {
                dy_actor_admin_kv(&resp, "duchy", "id", "worker1");
                dy_actor_admin_kv(&resp, "actor duchy-gateway", "pid", "101");
                dy_actor_admin_kv(&resp, "actor duchy-gateway", "state", "ready");
            }
            break;
        case HALO__ADMIN__V1__VERB__COMPUTATIONS:
            /* JSON even when sections were asked for: duchyctl flattens it. */
            dy_actor_admin_json(&resp, s_comp_json);
            break;
        case HALO__ADMIN__V1__VERB__WORKERS:
            dy_actor_admin_json(&resp, s_workers_json);
            break;
        case HALO__ADMIN__V1__VERB__CLAIMS:
            dy_actor_admin_error(&resp, 14, "claimer-1 unreachable");
            break;
        case HALO__ADMIN__V1__VERB__AUDIT:
            dy_actor_admin_json(&resp, "{\"entries\":3,\n\"verified\":true}");
            break;
        case HALO__ADMIN__V1__VERB__VERBOSE:
            dy_actor_admin_json(&resp, "{\"verbose\":true}");
            break;
        default:
            dy_actor_admin_error(&resp, 12, "no");
        }
        if (req)
            halo__admin__v1__admin_request__free_unpacked(req, NULL);
        size_t n = halo__admin__v1__admin_response__get_packed_size(&resp);
        zframe_t *out = zframe_new(NULL, n);
        halo__admin__v1__admin_response__pack(&resp, zframe_data(out));
        dy_actor_admin_clear(&resp);
        zframe_send(&out, f->sock, 0);
    }
    return NULL;
}

static void s_fake_start(s_fake_t *f, const char *file)
{
    memset(f, 0, sizeof(*f));
    pthread_mutex_init(&f->lock, NULL);
    snprintf(f->endpoint, sizeof(f->endpoint), "ipc://%s/%s", s_dir, file);
    f->sock = zsock_new_rep(f->endpoint);
    assert_non_null(f->sock);
    zsock_set_rcvtimeo(f->sock, 100);
    assert_int_equal(pthread_create(&f->thread, NULL, s_serve, f), 0);
}

static void s_fake_stop(s_fake_t *f)
{
    f->stop = 1;
    pthread_join(f->thread, NULL);
    zsock_destroy(&f->sock);
}

/* Runs duchyctl with args (a shell-quoted string); stdout into out, returns the exit code. */
static int s_run(const char *args, char *out, size_t cap, char *err, size_t errcap)
{
    const char *bin = getenv("DY_DUCHYCTL");
    char cmd[1024], errfile[300];
    snprintf(errfile, sizeof(errfile), "%s/stderr", s_dir);
    snprintf(cmd, sizeof(cmd), "'%s' %s 2>'%s'", bin, args, errfile);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t n = fread(out, 1, cap - 1, p);
    out[n] = '\0';
    int st = pclose(p);
    FILE *e = fopen(errfile, "r");
    size_t m = e ? fread(err, 1, errcap - 1, e) : 0;
    err[m] = '\0';
    if (e)
        fclose(e);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static const char *s_last_line(char *out)
{
    size_t n = strlen(out);
    while (n > 0 && out[n - 1] == '\n')
        out[--n] = '\0';
    char *nl = strrchr(out, '\n');
    return nl ? nl + 1 : out;
}

static char s_out[65536], s_err[4096], s_args[1024];

static void test_usage(void **state)
{
    assert_int_equal(s_run("--help", s_out, sizeof(s_out), s_err, sizeof(s_err)), 0);
    assert_non_null(strstr(s_out, "audit verify"));
    assert_int_equal(s_run("--admin ipc://x", s_out, sizeof(s_out), s_err, sizeof(s_err)), 64);
    assert_int_equal(s_run("--admin ipc://x frobnicate", s_out, sizeof(s_out), s_err,
                           sizeof(s_err)),
                     64);
    assert_non_null(strstr(s_err, "unknown command \"frobnicate\""));
    assert_non_null(strchr(s_err, '\n'));
    assert_ptr_equal(strchr(s_err, '\n'), s_err + strlen(s_err) - 1); /* one line */
    assert_int_equal(s_run("status", s_out, sizeof(s_out), s_err, sizeof(s_err)), 64);
    assert_int_equal(s_run("--admin ipc://x verbose loud", s_out, sizeof(s_out), s_err,
                           sizeof(s_err)),
                     64);
    assert_int_equal(s_run("--admin ipc://x computations --actor claimer-1", s_out,
                           sizeof(s_out), s_err, sizeof(s_err)),
                     64);
}

static void test_status(void **state)
{
    snprintf(s_args, sizeof(s_args), "--admin '%s' status --json", s_duchy.endpoint);
    assert_int_equal(s_run(s_args, s_out, sizeof(s_out), s_err, sizeof(s_err)), 0);
    assert_string_equal(s_last_line(s_out), s_status_json);
    assert_int_equal(s_duchy.last_verb, HALO__ADMIN__V1__VERB__STATUS);
    assert_int_equal(s_duchy.last_want_json, 1);

    snprintf(s_args, sizeof(s_args), "--admin '%s' status", s_duchy.endpoint);
    assert_int_equal(s_run(s_args, s_out, sizeof(s_out), s_err, sizeof(s_err)), 0);
    assert_string_equal(s_out, "# duchy\nid: worker1\n\n# actor duchy-gateway\npid: 101\n"
                               "state: ready\n");
    assert_int_equal(s_duchy.last_want_json, 0);
}

static void test_commands(void **state)
{
    /* JSON answers flattened to key: value lines. */
    snprintf(s_args, sizeof(s_args), "--admin '%s' computations", s_duchy.endpoint);
    assert_int_equal(s_run(s_args, s_out, sizeof(s_out), s_err, sizeof(s_err)), 0);
    assert_non_null(strstr(s_out, "computations[0].id: comp-1\n"));
    assert_non_null(strstr(s_out, "computations[0].lease_owner: worker1/claimer-1/102\n"));
    snprintf(s_args, sizeof(s_args), "--admin '%s' workers", s_duchy.endpoint);
    assert_int_equal(s_run(s_args, s_out, sizeof(s_out), s_err, sizeof(s_err)), 0);
    assert_non_null(strstr(s_out, "workers[0].pid: 4242\n"));
    /* audit verify sends the argument; a multi-line JSON answer is one line with --json. */
    snprintf(s_args, sizeof(s_args), "--admin '%s' audit verify --json", s_duchy.endpoint);
    assert_int_equal(s_run(s_args, s_out, sizeof(s_out), s_err, sizeof(s_err)), 0);
    assert_string_equal(s_last_line(s_out), "{\"entries\":3,\"verified\":true}");
    assert_int_equal(s_duchy.last_verb, HALO__ADMIN__V1__VERB__AUDIT);
    assert_string_equal(s_duchy.last_args, "verify;");
    snprintf(s_args, sizeof(s_args), "--admin '%s' audit", s_duchy.endpoint);
    assert_int_equal(s_run(s_args, s_out, sizeof(s_out), s_err, sizeof(s_err)), 0);
    assert_string_equal(s_duchy.last_args, "");
    /* An error code: exit 1, the message on stderr, a JSON error object as the last line. */
    snprintf(s_args, sizeof(s_args), "--admin '%s' claims --json", s_duchy.endpoint);
    assert_int_equal(s_run(s_args, s_out, sizeof(s_out), s_err, sizeof(s_err)), 1);
    assert_non_null(strstr(s_err, "claims: error 14: claimer-1 unreachable"));
    assert_string_equal(s_last_line(s_out), "{\"code\":14,\"message\":\"claimer-1 unreachable\"}");
}

static void test_actor_routing(void **state)
{
    int before = s_duchy.requests;
    snprintf(s_args, sizeof(s_args), "--admin '%s' verbose on --actor claimer-1 --json",
             s_duchy.endpoint);
    assert_int_equal(s_run(s_args, s_out, sizeof(s_out), s_err, sizeof(s_err)), 0);
    assert_string_equal(s_last_line(s_out), "{\"verbose\":true}");
    assert_int_equal(s_claimer.last_verb, HALO__ADMIN__V1__VERB__VERBOSE);
    assert_string_equal(s_claimer.last_args, "on;");
    assert_int_equal(s_duchy.requests, before);
    snprintf(s_args, sizeof(s_args), "--admin '%s' verbose off", s_duchy.endpoint);
    assert_int_equal(s_run(s_args, s_out, sizeof(s_out), s_err, sizeof(s_err)), 0);
    assert_string_equal(s_out, "verbose: true\n");
    assert_int_equal(s_duchy.last_verb, HALO__ADMIN__V1__VERB__VERBOSE); /* reached the duchy */
    assert_string_equal(s_duchy.last_args, "off;");
}

static void test_timeout(void **state)
{
    snprintf(s_args, sizeof(s_args), "--admin 'ipc://%s/nobody.sock' status --json", s_dir);
    double t0 = dy_now();
    assert_int_equal(s_run(s_args, s_out, sizeof(s_out), s_err, sizeof(s_err)), 1);
    double el = dy_now() - t0;
    assert_true(el >= 1.9 && el < 6);
    assert_non_null(strstr(s_err, "no answer from ipc://"));
    assert_non_null(strstr(s_err, "within 2000 ms"));
}

static void test_top(void **state)
{
    snprintf(s_args, sizeof(s_args), "--admin '%s' top --iterations 2 </dev/null",
             s_duchy.endpoint);
    double t0 = dy_now();
    assert_int_equal(s_run(s_args, s_out, sizeof(s_out), s_err, sizeof(s_err)), 0);
    double el = dy_now() - t0;
    assert_true(el >= 0.9 && el < 6);
    /* Two frames, no ANSI codes (stdout is a pipe). */
    const char *a = strstr(s_out, "duchy worker1");
    assert_non_null(a);
    assert_non_null(strstr(a + 1, "duchy worker1"));
    assert_null(strchr(s_out, '\033'));
    assert_non_null(strstr(s_out, "duchy-claimer-1"));
    assert_non_null(strstr(s_out, "comp-1"));
    assert_non_null(strstr(s_out, "SETUP_PHASE"));
    assert_non_null(strstr(s_out, "4242"));
    assert_non_null(strstr(s_out, "stages_done"));
}

static int s_setup(void **state)
{
    if (getenv("DY_DUCHYCTL") == NULL || access(getenv("DY_DUCHYCTL"), X_OK) != 0) {
        fprintf(stderr, "DY_DUCHYCTL not set or not executable\n");
        return -1;
    }
    if (mkdtemp(s_dir) == NULL)
        return -1;
    zsys_handler_set(NULL);
    s_fake_start(&s_duchy, "admin.sock");
    s_fake_start(&s_claimer, "admin-claimer-1.sock");
    return 0;
}

static int s_teardown(void **state)
{
    s_fake_stop(&s_duchy);
    s_fake_stop(&s_claimer);
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", s_dir);
    return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
    const char *bin = getenv("DY_DUCHYCTL");
    if (bin == NULL || access(bin, X_OK) != 0) {
        printf("1..0 # SKIP duchyctl not built\n");
        return 77;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_usage),   cmocka_unit_test(test_status),
        cmocka_unit_test(test_commands), cmocka_unit_test(test_actor_routing),
        cmocka_unit_test(test_timeout), cmocka_unit_test(test_top),
    };
    return cmocka_run_group_tests(tests, s_setup, s_teardown);
}
