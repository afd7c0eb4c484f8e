/* test_spawn.c - isolated workers (common/spawn.c).  The worker is this test binary itself,
 * re-executed through /proc/self/exe with DY_SPAWN_TEST_MODE naming what it does: result
 * round trip, a job larger than any pipe buffer (read fully, or never read at all: no
 * deadlock), deadline kill, memory limit, result over the cap, exec failure, inherited fds
 * (only 0-3), rlimits and PR_SET_PDEATHSIG in the worker, the process group killed with it,
 * and death of the parent killing the worker. */
#include <dirent.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "spawn.h"

/* ---- the worker side ----------------------------------------------------------------- */

static uint64_t s_fnv(const uint8_t *p, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 1099511628211ull;
    return h;
}

static int s_worker(const char *mode)
{
    char out[4096];
    if (strcmp(mode, "echo") == 0) {
        dy_buf_t job = {0};
        if (dy_spawn_read_job(&job, 64u << 20) < 0)
            return 2;
        int n = snprintf(out, sizeof(out), "len=%zu fnv=%016llx head=%.16s", job.len,
                         (unsigned long long)s_fnv(job.data, job.len),
                         job.len ? (const char *)job.data : "");
        dy_buf_free(&job);
        return dy_spawn_write_result((const uint8_t *)out, (size_t)n) < 0 ? 3 : 0;
    }
    if (strcmp(mode, "ignore") == 0)
        return dy_spawn_write_result((const uint8_t *)"ignored", 7) < 0 ? 3 : 0;
    if (strcmp(mode, "sleep") == 0) {
        for (;;)
            pause();
    }
    if (strcmp(mode, "group") == 0) {
        /* A grandchild in the same group; both sleep. */
        pid_t g = fork();
        if (g == 0) {
            for (;;)
                pause();
        }
        int n = snprintf(out, sizeof(out), "%ld", (long)g);
        if (write(3, out, (size_t)n) < 0)
            return 3;
        close(3);
        for (;;)
            pause();
    }
    if (strcmp(mode, "mem") == 0) {
        size_t sz = 512u << 20;
        char *p = malloc(sz);
        if (p == NULL)
            return 42; /* the address-space limit held */
        memset(p, 1, sz);
        free(p);
        return 0;
    }
    if (strcmp(mode, "flood") == 0) {
        static uint8_t big[65536];
        memset(big, 'x', sizeof(big));
        signal(SIGPIPE, SIG_IGN);
        for (int i = 0; i < 64; i++)
            if (write(3, big, sizeof(big)) < 0)
                return 5;
        return 0;
    }
    if (strcmp(mode, "fds") == 0) {
        DIR *d = opendir("/proc/self/fd");
        if (d == NULL)
            return 4;
        size_t n = 0;
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            if (e->d_name[0] == '.' || atoi(e->d_name) == dirfd(d))
                continue;
            n += (size_t)snprintf(out + n, sizeof(out) - n, "%s ", e->d_name);
        }
        closedir(d);
        struct rlimit core, as;
        getrlimit(RLIMIT_CORE, &core);
        getrlimit(RLIMIT_AS, &as);
        int pdeath = 0;
        prctl(PR_GET_PDEATHSIG, &pdeath);
        n += (size_t)snprintf(out + n, sizeof(out) - n, "| core=%llu as=%llu pdeath=%d pg=%d",
                              (unsigned long long)core.rlim_cur,
                              (unsigned long long)as.rlim_cur, pdeath,
                              getpgrp() == getpid());
        return dy_spawn_write_result((const uint8_t *)out, n) < 0 ? 3 : 0;
    }
    return 99;
}

/* ---- helpers ------------------------------------------------------------------------- */

static char s_mode[64];
static char *s_argv[] = {"test_spawn-worker", NULL};
/* This binary's path, read once: under valgrind, exec("/proc/self/exe") would start the
 * valgrind tool itself, while readlink reports the program being checked. */
static char s_self[4096];

static dy_spawn_t *s_start(const char *mode, const uint8_t *job, size_t len,
                           dy_spawn_conf_t *extra)
{
    snprintf(s_mode, sizeof(s_mode), "%s", mode);
    setenv("DY_SPAWN_TEST_MODE", mode, 1);
    dy_spawn_conf_t conf = {0};
    if (extra)
        conf = *extra;
    conf.path = s_self;
    conf.argv = s_argv;
    conf.job = job;
    conf.job_len = len;
    dy_spawn_t *s = dy_spawn_start(&conf);
    unsetenv("DY_SPAWN_TEST_MODE");
    return s;
}

static bool s_alive(pid_t pid)
{
    return kill(pid, 0) == 0;
}

/* ---- tests --------------------------------------------------------------------------- */

static void test_round_trip(void **state)
{
    const char *job = "MillJob{computation: c1}";
    dy_spawn_t *s = s_start("echo", (const uint8_t *)job, strlen(job), NULL);
    assert_non_null(s);
    assert_true(dy_spawn_pid(s) > 0);
    assert_true(dy_spawn_result_fd(s) >= 0);
    assert_int_equal(dy_spawn_wait(s), 0);
    dy_spawn_status_t st;
    dy_spawn_status(s, &st);
    assert_true(st.exited);
    assert_int_equal(st.exit_code, 0);
    assert_false(st.deadline);
    char want[256];
    snprintf(want, sizeof(want), "len=%zu fnv=%016llx head=%.16s", strlen(job),
             (unsigned long long)s_fnv((const uint8_t *)job, strlen(job)), job);
    assert_int_equal(st.result_len, strlen(want));
    assert_memory_equal(st.result, want, st.result_len);
    dy_spawn_destroy(&s);
    assert_null(s);
    dy_spawn_destroy(&s); /* NULL-safe */

    /* Empty job. */
    s = s_start("echo", NULL, 0, NULL);
    assert_non_null(s);
    assert_int_equal(dy_spawn_wait(s), 0);
    dy_spawn_status(s, &st);
    assert_true(st.exited && st.exit_code == 0);
    assert_true(st.result_len > 6 && memcmp(st.result, "len=0 ", 6) == 0);
    dy_spawn_destroy(&s);
}

/* Jobs bigger than a pipe buffer: the start never blocks, whether the worker reads the job
 * (the sizes straddle 64 KiB and 1 MiB) or exits without reading it. */
static void test_large_job(void **state)
{
    const size_t sizes[] = {65536 + 1, (1u << 20) + 3, 24u << 20};
    for (size_t i = 0; i < 3; i++) {
        size_t n = sizes[i];
        uint8_t *job = malloc(n);
        for (size_t j = 0; j < n; j++)
            job[j] = (uint8_t)(j * 31 + (j >> 8));
        dy_spawn_t *s = s_start("echo", job, n, NULL);
        assert_non_null(s);
        assert_int_equal(dy_spawn_wait(s), 0);
        dy_spawn_status_t st;
        dy_spawn_status(s, &st);
        assert_true(st.exited && st.exit_code == 0);
        char want[256];
        snprintf(want, sizeof(want), "len=%zu fnv=%016llx ", n,
                 (unsigned long long)s_fnv(job, n));
        assert_true(st.result_len >= strlen(want));
        assert_memory_equal(st.result, want, strlen(want));
        dy_spawn_destroy(&s);

        double t0 = (double)time(NULL);
        s = s_start("ignore", job, n, NULL);
        assert_non_null(s);
        assert_int_equal(dy_spawn_wait(s), 0);
        dy_spawn_status(s, &st);
        assert_true(st.exited && st.exit_code == 0);
        assert_int_equal(st.result_len, 7);
        assert_true((double)time(NULL) - t0 < 10);
        dy_spawn_destroy(&s);
        free(job);
    }
}

static void test_deadline(void **state)
{
    dy_spawn_conf_t c = {.deadline_ms = 300};
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    dy_spawn_t *s = s_start("sleep", NULL, 0, &c);
    assert_non_null(s);
    assert_false(dy_spawn_expired(s));
    assert_int_equal(dy_spawn_poll(s), 0);
    assert_int_equal(dy_spawn_pump(s), 0);
    assert_int_equal(dy_spawn_wait(s), 0);
    clock_gettime(CLOCK_MONOTONIC, &b);
    double el = (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9;
    assert_true(el >= 0.29 && el < 5);
    assert_true(dy_spawn_expired(s));
    dy_spawn_status_t st;
    dy_spawn_status(s, &st);
    assert_false(st.exited);
    assert_int_equal(st.signal, SIGKILL);
    assert_true(st.deadline);
    pid_t pid = dy_spawn_pid(s);
    assert_false(s_alive(pid)); /* reaped */
    dy_spawn_kill(s);           /* idempotent */
    dy_spawn_destroy(&s);

    /* No deadline: a kill by the caller is not reported as one. */
    s = s_start("sleep", NULL, 0, NULL);
    assert_non_null(s);
    dy_spawn_kill(s);
    dy_spawn_status(s, &st);
    assert_int_equal(st.signal, SIGKILL);
    assert_false(st.deadline);
    dy_spawn_destroy(&s);
}

static void test_group_killed(void **state)
{
    dy_spawn_t *s = s_start("group", NULL, 0, NULL);
    assert_non_null(s);
    /* The grandchild's pid arrives on the result pipe. */
    for (int i = 0; i < 500 && dy_spawn_pump(s) == 0; i++) {
        dy_spawn_status_t st;
        dy_spawn_status(s, &st);
        if (st.result_len > 0)
            break;
        usleep(10000);
    }
    dy_spawn_status_t st;
    dy_spawn_status(s, &st);
    assert_true(st.result_len > 0);
    char buf[32];
    snprintf(buf, sizeof(buf), "%.*s", (int)st.result_len, (const char *)st.result);
    pid_t g = (pid_t)atol(buf);
    assert_true(g > 0);
    assert_true(s_alive(g));
    dy_spawn_kill(s);
    /* The grandchild is not our child: it was reparented; wait for it to vanish. */
    bool gone = false;
    for (int i = 0; i < 500 && !gone; i++) {
        char path[64];
        snprintf(path, sizeof(path), "/proc/%ld/stat", (long)g);
        FILE *f = fopen(path, "r");
        if (f == NULL) {
            gone = true;
            break;
        }
        char line[512] = "";
        if (fgets(line, sizeof(line), f) == NULL)
            line[0] = '\0';
        fclose(f);
        char *rp = strrchr(line, ')');
        if (rp && (rp[2] == 'Z' || rp[2] == 'X'))
            gone = true;
        else
            usleep(10000);
    }
    assert_true(gone);
    dy_spawn_destroy(&s);
}

static void test_memory_limit(void **state)
{
    if (!dy_spawn_memory_limit_enforced()) {
        /* Sanitizer build: no RLIMIT_AS (see spawn.c); the plain build runs
         * this.  (cmocka's skip() prints "not ok # SKIP", which meson's TAP
         * reader counts as a failure.) */
        printf("# memory limit not enforced in this sanitizer build\n");
        return;
    }
    dy_spawn_conf_t c = {.memory_limit = 256u << 20, .deadline_ms = 20000};
    dy_spawn_t *s = s_start("mem", NULL, 0, &c);
    assert_non_null(s);
    assert_int_equal(dy_spawn_wait(s), 0);
    dy_spawn_status_t st;
    dy_spawn_status(s, &st);
    /* The allocation failed (exit 42) or the worker died of it: never a success. */
    assert_false(st.exited && st.exit_code == 0);
    assert_false(st.deadline);
    if (st.exited)
        assert_int_equal(st.exit_code, 42);
    dy_spawn_destroy(&s);

    /* Without the limit the same worker succeeds (the test can fail). */
    c.memory_limit = 0;
    s = s_start("mem", NULL, 0, &c);
    assert_non_null(s);
    assert_int_equal(dy_spawn_wait(s), 0);
    dy_spawn_status(s, &st);
    assert_true(st.exited);
    assert_int_equal(st.exit_code, 0);
    dy_spawn_destroy(&s);
}

static void test_result_cap(void **state)
{
    dy_spawn_conf_t c = {.max_result = 1024, .deadline_ms = 20000};
    dy_spawn_t *s = s_start("flood", NULL, 0, &c);
    assert_non_null(s);
    assert_int_equal(dy_spawn_wait(s), 0);
    dy_spawn_status_t st;
    dy_spawn_status(s, &st);
    assert_null(st.result);
    assert_int_equal(st.result_len, 0);
    assert_int_equal(dy_spawn_pump(s), -EMSGSIZE);
    assert_false(st.exited && st.exit_code == 0); /* its writes failed */
    dy_spawn_destroy(&s);
}

static void test_exec_failure(void **state)
{
    char *argv[] = {"nope", NULL};
    dy_spawn_conf_t c = {.path = "/nonexistent/duchy-mill", .argv = argv};
    errno = 0;
    assert_null(dy_spawn_start(&c));
    assert_int_equal(errno, ENOENT);
    c.path = NULL;
    assert_null(dy_spawn_start(&c));
    assert_int_equal(errno, EINVAL);
}

static void test_fds_and_limits(void **state)
{
    /* An fd without CLOEXEC, and one with, must not reach the worker. */
    int leak = dup2(2, 40);
    assert_int_equal(leak, 40);
    int leak2 = fcntl(2, F_DUPFD_CLOEXEC, 41);
    assert_true(leak2 >= 41);
    dy_spawn_conf_t c = {.memory_limit = 1u << 30};
    dy_spawn_t *s = s_start("fds", NULL, 0, &c);
    close(leak);
    close(leak2);
    assert_non_null(s);
    assert_int_equal(dy_spawn_wait(s), 0);
    dy_spawn_status_t st;
    dy_spawn_status(s, &st);
    assert_true(st.exited && st.exit_code == 0);
    char out[4096];
    snprintf(out, sizeof(out), "%.*s", (int)st.result_len, (const char *)st.result);
    /* readdir order is the kernel's: check the set. */
    char *bar = strchr(out, '|');
    assert_non_null(bar);
    *bar = '\0';
    int seen[4] = {0}, others = 0;
    for (char *tok = strtok(out, " "); tok; tok = strtok(NULL, " ")) {
        int fd = atoi(tok);
        if (fd >= 0 && fd <= 3)
            seen[fd]++;
        else
            others++;
    }
    if (others != 0 || !seen[0] || !seen[1] || !seen[2] || !seen[3])
        fail_msg("worker fds: %s", out);
    char want[128];
    struct rlimit own;
    getrlimit(RLIMIT_AS, &own);
    unsigned long long as = dy_spawn_memory_limit_enforced() ? 1ull << 30
                                                             : (unsigned long long)own.rlim_cur;
    snprintf(want, sizeof(want), " core=0 as=%llu pdeath=%d pg=1", as, SIGKILL);
    assert_string_equal(bar + 1, want);
    dy_spawn_destroy(&s);
}

/* The parent dies: PR_SET_PDEATHSIG kills the worker. */
static void test_pdeathsig(void **state)
{
    assert_int_equal(prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
    int p[2];
    assert_int_equal(pipe(p), 0);
    pid_t mid = fork();
    assert_true(mid >= 0);
    if (mid == 0) {
        close(p[0]);
        dy_spawn_t *s = s_start("sleep", NULL, 0, NULL);
        pid_t w = s ? dy_spawn_pid(s) : -1;
        if (write(p[1], &w, sizeof(w)) != sizeof(w))
            _exit(2);
        _exit(0); /* without destroying: only the death signal can stop it */
    }
    close(p[1]);
    pid_t w = -1;
    assert_int_equal(read(p[0], &w, sizeof(w)), sizeof(w));
    close(p[0]);
    assert_true(w > 0);
    int st;
    assert_int_equal(waitpid(mid, &st, 0), mid);
    /* The worker was reparented to us (subreaper); it must die of SIGKILL. */
    pid_t r = 0;
    for (int i = 0; i < 500 && r == 0; i++) {
        r = waitpid(w, &st, WNOHANG);
        if (r == 0)
            usleep(10000);
    }
    if (r != w) {
        kill(w, SIGKILL);
        waitpid(w, &st, 0);
        fail_msg("the worker outlived its parent");
    }
    assert_true(WIFSIGNALED(st));
    assert_int_equal(WTERMSIG(st), SIGKILL);
    prctl(PR_SET_CHILD_SUBREAPER, 0);
}

int main(void)
{
    const char *mode = getenv("DY_SPAWN_TEST_MODE");
    if (mode != NULL)
        return s_worker(mode);
    ssize_t n = readlink("/proc/self/exe", s_self, sizeof(s_self) - 1);
    if (n <= 0)
        return 1;
    s_self[n] = '\0';
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),    cmocka_unit_test(test_large_job),
        cmocka_unit_test(test_deadline),      cmocka_unit_test(test_group_killed),
        cmocka_unit_test(test_memory_limit),  cmocka_unit_test(test_result_cap),
        cmocka_unit_test(test_exec_failure),  cmocka_unit_test(test_fds_and_limits),
        cmocka_unit_test(test_pdeathsig),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
