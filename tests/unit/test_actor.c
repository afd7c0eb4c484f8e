/* test_actor.c - the actor skeleton (common/actor.c), run for real: this binary re-executed
 * with DY_ACTOR_TEST_TOY set is a toy actor ("toy") built on dy_actor_new/ready/run.  The
 * tests check its flags (--help 0, usage errors 64 with one stderr line, --check-config 0
 * and 100), the READY line on --ready-fd, the admin socket (STATUS json and sections,
 * VERBOSE, CONFIG, an actor verb, UNIMPLEMENTED, a malformed request), SIGHUP (a broken or
 * non-reloadable config is refused and the old one kept; a reloadable change is taken),
 * SIGTERM draining to exit 0, the runtime directory checks (exit 100), and actor messages
 * over DEALER/ROUTER including malformed ones. */
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "actor.h"
#include "admin.pb-c.h"
#include "duchy.pb-c.h"

/* ---- the toy actor ------------------------------------------------------------------- */

typedef struct {
    int ticks;
    bool drain_asked;
} toy_t;

static int toy_admin(dy_actor_t *a, const void *req_, void *resp, void *arg)
{
    const Halo__Admin__V1__AdminRequest *req = req_;
    if (req->verb != HALO__ADMIN__V1__VERB__COMPUTATIONS)
        return -ENOTSUP;
    dy_actor_count(a, "toy_computations_asked", 1);
    if (req->want_json)
        dy_actor_admin_json(resp, "[{\"id\":\"toy-computation\"}]");
    else
        dy_actor_admin_kv(resp, "computation toy", "id", "%s", "toy-computation");
    return 0;
}

static void toy_status(dy_actor_t *a, void *arg)
{
    dy_actor_gauge(a, "toy_gauge", 7);
}

static void toy_housekeeping(dy_actor_t *a, void *arg)
{
    toy_t *t = arg;
    t->ticks++;
    /* The drain takes one more tick: an asynchronous drain. */
    if (t->drain_asked)
        dy_actor_drained(a);
}

static void toy_drain(dy_actor_t *a, void *arg)
{
    toy_t *t = arg;
    t->drain_asked = true;
    log_info("toy: drain begins");
}

static int toy_main(int argc, char **argv)
{
    toy_t t = {0};
    dy_actor_ops_t ops = {.admin = toy_admin,
                          .status = toy_status,
                          .housekeeping = toy_housekeeping,
                          .drain = toy_drain,
                          .arg = &t};
    dy_actor_t *a = dy_actor_new("toy", argc, argv, &ops);
    dy_actor_count(a, "toy_started", 1);
    dy_actor_ready(a);
    int rc = dy_actor_run(a);
    dy_actor_destroy(&a);
    return rc;
}

/* ---- harness ------------------------------------------------------------------------- */

static char s_dir[] = "/tmp/test_actor.XXXXXX";
static char s_cfg[300], s_run[400], s_log[300];

static const char *s_yaml =
    "duchy: {id: worker1, data_dir: /nonexistent, runtime_dir: %s,"
    " master_key_file: /nonexistent/k%s}\n"
    "tls: {cert: c, key: k, trusted_ca: t, parties: p}\n"
    "signing: {cert: sc, key: sk, certificate: x}\n"
    "kingdom: {endpoint: 'localhost:1', server_name: localhost}\n"
    "gateway: {listen: '127.0.0.1:2'}\n"
    "peers:\n"
    "  - {id: worker2, endpoint: 'localhost:3', server_name: localhost}\n"
    "  - {id: aggregator, endpoint: 'localhost:4', server_name: localhost}\n"
    "roles: {aggregator: aggregator, first_non_aggregator: worker1,"
    " second_non_aggregator: worker2}\n"
    "%s";

static void s_write_cfg(const char *extra_duchy, const char *tail)
{
    char tmp[400];
    snprintf(tmp, sizeof(tmp), "%s.tmp", s_cfg);
    FILE *f = fopen(tmp, "w");
    assert_non_null(f);
    /* s_yaml is this file's own constant template. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
    fprintf(f, s_yaml, s_run, extra_duchy, tail);
#pragma GCC diagnostic pop
    fclose(f);
    assert_int_equal(rename(tmp, s_cfg), 0);
}

typedef struct {
    pid_t pid;
    int ready_r; /* read end of the readiness pipe, -1 if none */
    int out_r;   /* child's stdout */
} s_child_t;

/* This binary's path, read once: under valgrind, exec("/proc/self/exe") would start the
 * valgrind tool itself, while readlink reports the program being checked. */
static char s_self[4096];

/* Starts the toy with args (NULL-terminated); its fd 3 is the readiness pipe when ready. */
static s_child_t s_spawn(const char *const *args, bool ready)
{
    int rp[2] = {-1, -1}, op[2];
    if (ready)
        assert_int_equal(pipe(rp), 0);
    assert_int_equal(pipe(op), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int lf = open(s_log, O_WRONLY | O_CREAT | O_APPEND, 0600);
        dup2(lf, 2);
        dup2(op[1], 1);
        if (ready) {
            dup2(rp[1], 3);
        } else {
            close(3);
        }
        char *argv[16];
        int n = 0;
        argv[n++] = "duchy-toy";
        for (int i = 0; args[i] && n < 15; i++)
            argv[n++] = (char *)args[i];
        argv[n] = NULL;
        setenv("DY_ACTOR_TEST_TOY", "1", 1);
        for (int fd = 4; fd < 64; fd++)
            close(fd);
        execv(s_self, argv);
        _exit(127);
    }
    close(op[1]);
    if (ready)
        close(rp[1]);
    s_child_t c = {pid, ready ? rp[0] : -1, op[0]};
    return c;
}

/* Waits for the child's exit (at most ms); returns the exit code, or -signal. */
static int s_wait(pid_t pid, int ms)
{
    int st;
    for (int i = 0; i < ms / 10; i++) {
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid)
            return WIFEXITED(st) ? WEXITSTATUS(st) : -WTERMSIG(st);
        usleep(10000);
    }
    kill(pid, SIGKILL);
    waitpid(pid, &st, 0);
    fail_msg("child %ld did not exit in %d ms", (long)pid, ms);
    return -1;
}

/* Reads everything fd gives until EOF (bounded time). */
static char *s_slurp(int fd, int ms)
{
    static char buf[65536];
    size_t n = 0;
    for (;;) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, ms) <= 0)
            break;
        ssize_t r = read(fd, buf + n, sizeof(buf) - 1 - n);
        if (r <= 0)
            break;
        n += (size_t)r;
    }
    buf[n] = '\0';
    close(fd);
    return buf;
}

static bool s_log_has(const char *text, int ms)
{
    for (int i = 0; i < ms / 20; i++) {
        FILE *f = fopen(s_log, "r");
        if (f) {
            char line[8192];
            bool found = false;
            while (!found && fgets(line, sizeof(line), f))
                found = strstr(line, text) != NULL;
            fclose(f);
            if (found)
                return true;
        }
        usleep(20000);
    }
    return false;
}

static Halo__Admin__V1__AdminResponse *s_admin(const char *sock, int verb, const char *arg,
                                               bool json)
{
    char ep[512];
    snprintf(ep, sizeof(ep), "ipc://%s/%s", s_run, sock);
    const char *args[1] = {arg};
    void *resp = NULL;
    int rc = dy_actor_admin_call(ep, verb, args, arg ? 1 : 0, json, 2000, &resp);
    if (rc != 0)
        fail_msg("admin call to %s: %s", ep, strerror(-rc));
    return resp;
}

static const char *s_section_value(const Halo__Admin__V1__AdminResponse *r, const char *sec,
                                   const char *key)
{
    if (r->body_case != HALO__ADMIN__V1__ADMIN_RESPONSE__BODY_SECTIONS)
        return NULL;
    for (size_t i = 0; i < r->sections->n_sections; i++) {
        const Halo__Admin__V1__Section *s = r->sections->sections[i];
        if (strcmp(s->name, sec) != 0)
            continue;
        for (size_t j = 0; j < s->n_entries; j++)
            if (strcmp(s->entries[j]->key, key) == 0)
                return s->entries[j]->value;
    }
    return NULL;
}

/* ---- tests --------------------------------------------------------------------------- */

static void test_flags(void **state)
{
    s_write_cfg("", "");
    const char *help[] = {"--help", NULL};
    s_child_t c = s_spawn(help, false);
    char *out = s_slurp(c.out_r, 5000);
    assert_non_null(strstr(out, "usage:"));
    assert_int_equal(s_wait(c.pid, 5000), 0);

    const char *none[] = {NULL};
    c = s_spawn(none, false);
    s_slurp(c.out_r, 5000);
    assert_int_equal(s_wait(c.pid, 5000), 64);
    const char *bad[] = {"--config", s_cfg, "--frobnicate", NULL};
    c = s_spawn(bad, false);
    s_slurp(c.out_r, 5000);
    assert_int_equal(s_wait(c.pid, 5000), 64);
    const char *badfd[] = {"--config", s_cfg, "--ready-fd", "57", NULL};
    c = s_spawn(badfd, false);
    s_slurp(c.out_r, 5000);
    assert_int_equal(s_wait(c.pid, 5000), 64);
    const char *extra[] = {"--config", s_cfg, "stray", NULL};
    c = s_spawn(extra, false);
    s_slurp(c.out_r, 5000);
    assert_int_equal(s_wait(c.pid, 5000), 64);
    assert_true(s_log_has("duchy-toy: unexpected argument (try --help)", 1000));

    /* --check-config: the normalised config on stdout, 0; both spellings. */
    const char *check[] = {"--config", s_cfg, "--check-config", NULL};
    c = s_spawn(check, false);
    out = s_slurp(c.out_r, 5000);
    assert_non_null(strstr(out, "  id: \"worker1\"\n"));
    assert_non_null(strstr(out, "  lease: 5m\n"));
    assert_int_equal(s_wait(c.pid, 5000), 0);
    const char *check2[] = {"--check-config", s_cfg, NULL};
    c = s_spawn(check2, false);
    out = s_slurp(c.out_r, 5000);
    assert_non_null(strstr(out, "verbose: false"));
    assert_int_equal(s_wait(c.pid, 5000), 0);

    /* A bad config: 100 with file:line: key: reason. */
    s_write_cfg(", workers: 99", "");
    c = s_spawn(check, false);
    s_slurp(c.out_r, 5000);
    assert_int_equal(s_wait(c.pid, 5000), 100);
    assert_true(s_log_has(":1: duchy.workers:", 1000));
    const char *run[] = {"--config", s_cfg, NULL};
    c = s_spawn(run, false);
    s_slurp(c.out_r, 5000);
    assert_int_equal(s_wait(c.pid, 5000), 100);
    s_write_cfg("", "");
}

static void test_lifecycle(void **state)
{
    s_write_cfg("", "");
    const char *args[] = {"--config", s_cfg, "--ready-fd", "3", "--instance", "2", NULL};
    s_child_t c = s_spawn(args, true);
    char *ready = s_slurp(c.ready_r, 10000);
    char want[128];
    snprintf(want, sizeof(want), "READY name=toy-2 pid=%ld version=", (long)c.pid);
    if (strncmp(ready, want, strlen(want)) != 0 || ready[strlen(ready) - 1] != '\n' ||
        strchr(ready, '\n') != ready + strlen(ready) - 1)
        fail_msg("readiness line \"%s\"", ready);

    /* STATUS as JSON. */
    Halo__Admin__V1__AdminResponse *r =
        s_admin("admin-toy-2.sock", HALO__ADMIN__V1__VERB__STATUS, NULL, true);
    assert_int_equal(r->code, 0);
    assert_int_equal(r->body_case, HALO__ADMIN__V1__ADMIN_RESPONSE__BODY_JSON);
    char pidf[64];
    snprintf(pidf, sizeof(pidf), "\"pid\":%ld,", (long)c.pid);
    assert_true(strncmp(r->json, "{\"name\":\"toy-2\",", 16) == 0);
    assert_non_null(strstr(r->json, pidf));
    assert_non_null(strstr(r->json, "\"uptime_seconds\":"));
    assert_non_null(strstr(r->json, "\"state\":\"ready\""));
    assert_non_null(strstr(r->json, "\"counters\":{\"toy_started\":1,"));
    assert_non_null(strstr(r->json, "\"toy_gauge\":7"));
    protobuf_c_message_free_unpacked(&r->base, NULL);

    /* STATUS as sections. */
    r = s_admin("admin-toy-2.sock", HALO__ADMIN__V1__VERB__STATUS, NULL, false);
    assert_int_equal(r->body_case, HALO__ADMIN__V1__ADMIN_RESPONSE__BODY_SECTIONS);
    assert_string_equal(s_section_value(r, "actor", "name"), "toy-2");
    assert_string_equal(s_section_value(r, "actor", "state"), "ready");
    assert_string_equal(s_section_value(r, "counters", "toy_gauge"), "7");
    protobuf_c_message_free_unpacked(&r->base, NULL);

    /* VERBOSE. */
    r = s_admin("admin-toy-2.sock", HALO__ADMIN__V1__VERB__VERBOSE, "on", true);
    assert_int_equal(r->code, 0);
    assert_string_equal(r->json, "{\"verbose\":true}");
    protobuf_c_message_free_unpacked(&r->base, NULL);
    r = s_admin("admin-toy-2.sock", HALO__ADMIN__V1__VERB__VERBOSE, "loud", true);
    assert_int_equal(r->code, 3);
    protobuf_c_message_free_unpacked(&r->base, NULL);

    /* CONFIG: every key, paths only. */
    r = s_admin("admin-toy-2.sock", HALO__ADMIN__V1__VERB__CONFIG, NULL, true);
    assert_int_equal(r->code, 0);
    assert_non_null(strstr(r->json, "\"duchy.id\":\"worker1\""));
    assert_non_null(strstr(r->json, "\"duchy.lease\":\"5m\""));
    assert_non_null(strstr(r->json, "\"duchy.master_key_file\":\"/nonexistent/k\""));
    assert_non_null(strstr(r->json, "\"peers[1].id\":\"aggregator\""));
    assert_non_null(strstr(r->json, "\"log.verbose\":false"));
    protobuf_c_message_free_unpacked(&r->base, NULL);
    r = s_admin("admin-toy-2.sock", HALO__ADMIN__V1__VERB__CONFIG, NULL, false);
    assert_string_equal(s_section_value(r, "config", "duchy.workers"), "2");
    protobuf_c_message_free_unpacked(&r->base, NULL);

    /* The actor's own verb, and one nobody serves. */
    r = s_admin("admin-toy-2.sock", HALO__ADMIN__V1__VERB__COMPUTATIONS, NULL, true);
    assert_int_equal(r->code, 0);
    assert_string_equal(r->json, "[{\"id\":\"toy-computation\"}]");
    protobuf_c_message_free_unpacked(&r->base, NULL);
    r = s_admin("admin-toy-2.sock", HALO__ADMIN__V1__VERB__AUDIT, NULL, true);
    assert_int_equal(r->code, 12);
    assert_int_equal(r->body_case, HALO__ADMIN__V1__ADMIN_RESPONSE__BODY__NOT_SET);
    protobuf_c_message_free_unpacked(&r->base, NULL);

    /* A malformed request is answered INVALID_ARGUMENT and the socket keeps working. */
    char ep[512];
    snprintf(ep, sizeof(ep), "ipc://%s/admin-toy-2.sock", s_run);
    zsock_t *req = zsock_new_req(ep);
    assert_non_null(req);
    zsock_set_rcvtimeo(req, 2000);
    zstr_send(req, "\xff\xff\xff garbage");
    zframe_t *f = zframe_recv(req);
    assert_non_null(f);
    Halo__Admin__V1__AdminResponse *bad =
        halo__admin__v1__admin_response__unpack(NULL, zframe_size(f), zframe_data(f));
    assert_non_null(bad);
    assert_int_equal(bad->code, 3);
    halo__admin__v1__admin_response__free_unpacked(bad, NULL);
    zframe_destroy(&f);
    zsock_destroy(&req);

    /* SIGHUP with a broken config: refused, the old one kept. */
    FILE *cf = fopen(s_cfg, "w");
    fputs("duchy: [this is: not a config\n", cf);
    fclose(cf);
    kill(c.pid, SIGHUP);
    assert_true(s_log_has("keeping the running config", 5000));
    r = s_admin("admin-toy-2.sock", HALO__ADMIN__V1__VERB__CONFIG, NULL, true);
    assert_non_null(strstr(r->json, "\"duchy.id\":\"worker1\""));
    protobuf_c_message_free_unpacked(&r->base, NULL);

    /* A non-reloadable change (the lease): refused, named. */
    s_write_cfg(", lease: 10m", "");
    kill(c.pid, SIGHUP);
    assert_true(s_log_has("duchy.lease cannot change without a restart", 5000));
    r = s_admin("admin-toy-2.sock", HALO__ADMIN__V1__VERB__CONFIG, NULL, true);
    assert_non_null(strstr(r->json, "\"duchy.lease\":\"5m\""));
    protobuf_c_message_free_unpacked(&r->base, NULL);

    /* A reloadable change: taken. */
    s_write_cfg(", backoff_scale: 0.01", "log: {verbose: true}\n");
    kill(c.pid, SIGHUP);
    assert_true(s_log_has("configuration reloaded", 5000));
    r = s_admin("admin-toy-2.sock", HALO__ADMIN__V1__VERB__CONFIG, NULL, true);
    assert_non_null(strstr(r->json, "\"log.verbose\":true"));
    assert_non_null(strstr(r->json, "\"duchy.backoff_scale\":0.01"));
    protobuf_c_message_free_unpacked(&r->base, NULL);

    /* SIGTERM: the toy drains over a tick, then exits 0. */
    kill(c.pid, SIGTERM);
    assert_int_equal(s_wait(c.pid, 10000), 0);
    assert_true(s_log_has("toy: drain begins", 1000));
    assert_true(s_log_has("drained: exiting", 1000));
    close(c.out_r);
    /* The socket file is gone. */
    char sockpath[512];
    snprintf(sockpath, sizeof(sockpath), "%s/admin-toy-2.sock", s_run);
    assert_int_equal(access(sockpath, F_OK), -1);
    s_write_cfg("", "");
}

static void test_runtime_dir(void **state)
{
    s_write_cfg("", "");
    mkdir(s_run, 0700);
    assert_int_equal(chmod(s_run, 0770), 0);
    const char *args[] = {"--config", s_cfg, NULL};
    s_child_t c = s_spawn(args, false);
    s_slurp(c.out_r, 5000);
    assert_int_equal(s_wait(c.pid, 5000), 100);
    assert_true(s_log_has("group- or other-writable", 1000));
    assert_int_equal(chmod(s_run, 0700), 0);
    /* Missing: created 0700 (with its parent). */
    char sub[300];
    snprintf(sub, sizeof(sub), "%s/a/b", s_dir);
    char saved[400];
    snprintf(saved, sizeof(saved), "%s", s_run);
    snprintf(s_run, sizeof(s_run), "%s", sub);
    s_write_cfg("", "");
    const char *args2[] = {"--config", s_cfg, "--ready-fd", "3", NULL};
    c = s_spawn(args2, true);
    char *ready = s_slurp(c.ready_r, 10000);
    assert_true(strncmp(ready, "READY name=toy pid=", 19) == 0);
    struct stat st;
    assert_int_equal(stat(sub, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0700);
    kill(c.pid, SIGINT);
    assert_int_equal(s_wait(c.pid, 10000), 0);
    close(c.out_r);
    rmdir(sub);
    snprintf(sub, sizeof(sub), "%s/a", s_dir);
    rmdir(sub);
    snprintf(s_run, sizeof(s_run), "%s", saved);
    s_write_cfg("", "");
}

static void test_messages(void **state)
{
    char ep[512];
    snprintf(ep, sizeof(ep), "ipc://%s/msg.sock", s_dir);
    zsock_t *router = zsock_new_router(ep);
    zsock_t *dealer = zsock_new_dealer(ep);
    assert_non_null(router);
    assert_non_null(dealer);
    zsock_set_rcvtimeo(router, 2000);
    zsock_set_rcvtimeo(dealer, 2000);

    Halo__Internal__V1__ActorMessage m = HALO__INTERNAL__V1__ACTOR_MESSAGE__INIT;
    Halo__Internal__V1__CancelComputation cc = HALO__INTERNAL__V1__CANCEL_COMPUTATION__INIT;
    m.version = 1;
    m.request_id = "r1";
    m.sender = "claimer-1";
    cc.computation_id = "c9";
    cc.reason = "CANCELLED";
    m.body_case = HALO__INTERNAL__V1__ACTOR_MESSAGE__BODY_CANCEL;
    m.cancel = &cc;
    assert_int_equal(dy_actor_send_msg(dealer, NULL, &m), 0);
    zframe_t *id = NULL;
    Halo__Internal__V1__ActorMessage *got = dy_actor_recv_msg(router, &id);
    assert_non_null(got);
    assert_non_null(id);
    assert_string_equal(got->request_id, "r1");
    assert_int_equal(got->body_case, HALO__INTERNAL__V1__ACTOR_MESSAGE__BODY_CANCEL);
    assert_string_equal(got->cancel->computation_id, "c9");
    protobuf_c_message_free_unpacked(&got->base, NULL);

    /* The reply through the identity. */
    Halo__Internal__V1__EffectsReply er = HALO__INTERNAL__V1__EFFECTS_REPLY__INIT;
    er.outcome = HALO__INTERNAL__V1__OUTCOME__OUTCOME_OK;
    m.body_case = HALO__INTERNAL__V1__ACTOR_MESSAGE__BODY_EFFECTS_REPLY;
    m.effects_reply = &er;
    assert_int_equal(dy_actor_send_msg(router, id, &m), 0);
    zframe_destroy(&id);
    got = dy_actor_recv_msg(dealer, NULL);
    assert_non_null(got);
    assert_int_equal(got->effects_reply->outcome, HALO__INTERNAL__V1__OUTCOME__OUTCOME_OK);
    protobuf_c_message_free_unpacked(&got->base, NULL);

    /* Malformed: garbage, two frames, wrong version: each dropped (NULL). */
    zstr_send(dealer, "\xff\xff\xff\xff");
    assert_null(dy_actor_recv_msg(router, &id));
    zstr_sendm(dealer, "a");
    zstr_send(dealer, "b");
    assert_null(dy_actor_recv_msg(router, &id));
    m.version = 2;
    assert_int_equal(dy_actor_send_msg(dealer, NULL, &m), 0);
    assert_null(dy_actor_recv_msg(router, &id));
    assert_null(id);
    /* And the channel still works. */
    m.version = 1;
    assert_int_equal(dy_actor_send_msg(dealer, NULL, &m), 0);
    got = dy_actor_recv_msg(router, NULL);
    assert_non_null(got);
    protobuf_c_message_free_unpacked(&got->base, NULL);
    zsock_destroy(&dealer);
    zsock_destroy(&router);
}

static void test_admin_helpers(void **state)
{
    Halo__Admin__V1__AdminResponse r = HALO__ADMIN__V1__ADMIN_RESPONSE__INIT;
    dy_actor_admin_kv(&r, "a", "k1", "%d", 1);
    dy_actor_admin_kv(&r, "b", "k2", "%s", "two");
    dy_actor_admin_kv(&r, "a", "k3", "x");
    assert_int_equal(r.sections->n_sections, 2);
    assert_int_equal(r.sections->sections[0]->n_entries, 2);
    assert_string_equal(r.sections->sections[0]->entries[1]->key, "k3");
    dy_actor_admin_error(&r, 5, "not %s", "found");
    assert_string_equal(r.message, "not found");
    dy_actor_admin_json(&r, "{}");
    assert_int_equal(r.body_case, HALO__ADMIN__V1__ADMIN_RESPONSE__BODY_JSON);
    dy_actor_admin_clear(&r);
    assert_int_equal(r.code, 0);
    dy_actor_admin_clear(NULL);
    dy_buf_t b = {0};
    assert_int_equal(dy_actor_json_escape(&b, "a\"b\\c\n\x01"), 0);
    assert_int_equal(b.len, strlen("a\\\"b\\\\c\\n\\u0001"));
    assert_memory_equal(b.data, "a\\\"b\\\\c\\n\\u0001", b.len);
    dy_buf_free(&b);
    /* A call to nobody times out. */
    char ep[512];
    snprintf(ep, sizeof(ep), "ipc://%s/nobody.sock", s_dir);
    void *resp = NULL;
    assert_int_equal(dy_actor_admin_call(ep, 1, NULL, 0, true, 200, &resp), -ETIMEDOUT);
    assert_null(resp);
}

static int s_setup(void **state)
{
    if (mkdtemp(s_dir) == NULL)
        return -1;
    snprintf(s_cfg, sizeof(s_cfg), "%s/duchy.yaml", s_dir);
    snprintf(s_run, sizeof(s_run), "%s/run", s_dir);
    snprintf(s_log, sizeof(s_log), "%s/toy.log", s_dir);
    return 0;
}

static int s_teardown(void **state)
{
    char cmd[400];
    if (getenv("DY_TEST_KEEP") == NULL) {
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", s_dir);
        return system(cmd) == 0 ? 0 : -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (getenv("DY_ACTOR_TEST_TOY") != NULL)
        return toy_main(argc, argv);
    ssize_t n = readlink("/proc/self/exe", s_self, sizeof(s_self) - 1);
    if (n <= 0)
        return 1;
    s_self[n] = '\0';
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_flags),       cmocka_unit_test(test_lifecycle),
        cmocka_unit_test(test_runtime_dir), cmocka_unit_test(test_messages),
        cmocka_unit_test(test_admin_helpers),
    };
    return cmocka_run_group_tests(tests, s_setup, s_teardown);
}
