/* spawn.c - isolated worker processes (spawn.h; STYLE.md rules 9-10,
 * OpenSMTPD forkmda).
 *
 * Start-up, in the parent:
 *   - the job goes to the child's fd 0.  A job that fits in a pipe's buffer
 *     (64 KiB, or what F_SETPIPE_SZ grants up to 1 MiB) is written whole
 *     into a pipe before the fork, so neither side can block on it.  A
 *     larger job goes into an anonymous memory file (memfd_create, sealed
 *     against writes) that becomes the child's fd 0: the child reads it to
 *     EOF exactly like a pipe, and the parent never has to pump it, so a
 *     child that is slow to read (or never reads) cannot stall the parent's
 *     loop and no deadlock is possible.  (The memfd costs memory the size of
 *     the job while the child runs; jobs are descriptions of blobs, small.)
 *   - the result pipe (fd 3 in the child) is non-blocking on the parent's
 *     side; dy_spawn_pump reads what is there, bounded by max_result.
 *   - a CLOEXEC "exec report" pipe tells the parent whether exec succeeded:
 *     if the child writes an errno there, the start failed and
 *     dy_spawn_start returns NULL with that errno.
 *   - every fd the parent hands over is first duplicated to a number >= 10,
 *     so the child's dup2 onto 0 and 3 never meets an fd that already sits
 *     there (dup2(x, x) would keep FD_CLOEXEC).
 *
 * Between fork and exec the child calls only async-signal-safe functions:
 * dup2, close_range (or close in a loop), setpgid, sigprocmask, sigaction,
 * prctl, getppid, setrlimit, execv, write, _exit.  It never touches the
 * parent's zmq context, sockets or SQLite connection: exec replaces them.
 * PR_SET_PDEATHSIG(SIGKILL) is checked against the race where the parent
 * died before the prctl (getppid() no longer the parent: exit at once).
 * PR_SET_PDEATHSIG fires when the parent *thread* that forked exits, so
 * spawn from the actor's one loop thread.
 *
 * The child is the leader of a new process group (setpgid in both parent
 * and child, so there is no window where it is not), and dy_spawn_kill
 * sends SIGKILL to the whole group: a worker's own children die with it.
 * The group is killed only while the leader is not reaped: once reaped its
 * pid may be reused.
 *
 * Nothing here logs (STYLE.md rule 23).
 */
#include "spawn.h"

#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define S_DEFAULT_MAX_RESULT (1u << 20)
#define S_PIPE_JOB_MAX (1u << 20)
#define S_HIGH_FD 10

struct dy_spawn {
    pid_t pid;            /* the child, also its process group id */
    int result_fd;        /* read end of the result pipe, -1 once at EOF / closed */
    dy_buf_t result;      /* bytes read from fd 3 (owned) */
    size_t max_result;    /* cap on result.len */
    bool overflow;        /* the child wrote more than max_result: result dropped */
    bool reaped;          /* waitpid collected it */
    int wstatus;          /* when reaped */
    bool killed;          /* dy_spawn_kill sent SIGKILL */
    bool deadline;        /* killed because the deadline had passed */
    int64_t start_ms;     /* monotonic */
    int64_t deadline_ms;  /* relative to start; 0 = none */
};

static void s_close(int *fd)
{
    if (*fd >= 0) {
        close(*fd);
        *fd = -1;
    }
}

/* Writes all of buf to fd (blocking). 0 or -errno. */
static int s_write_all(int fd, const uint8_t *buf, size_t len)
{
    while (len > 0) {
        ssize_t w = write(fd, buf, len);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        buf += w;
        len -= (size_t)w;
    }
    return 0;
}

/* Makes the fd that becomes the child's fd 0, holding the job.  Returns
 * the fd (>= S_HIGH_FD, CLOEXEC) or -errno. */
static int s_job_fd(const uint8_t *job, size_t len)
{
    int rc;
    if (len <= S_PIPE_JOB_MAX) {
        int p[2];
        if (pipe2(p, O_CLOEXEC) < 0)
            return -errno;
        if (len > 65536) {
            int got = fcntl(p[1], F_SETPIPE_SZ, (int)S_PIPE_JOB_MAX);
            if (got < 0 || (size_t)got < len) {
                close(p[0]);
                close(p[1]);
                goto memfd; /* not granted (pipe-max-size): use a memfd */
            }
        }
        rc = len ? s_write_all(p[1], job, len) : 0;
        close(p[1]);
        if (rc < 0) {
            close(p[0]);
            return rc;
        }
        int hi = fcntl(p[0], F_DUPFD_CLOEXEC, S_HIGH_FD);
        rc = hi < 0 ? -errno : hi;
        close(p[0]);
        return rc;
    }
memfd:;
    int m = memfd_create("dy-spawn-job", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (m < 0)
        return -errno;
    rc = s_write_all(m, job, len);
    if (rc == 0 && lseek(m, 0, SEEK_SET) < 0)
        rc = -errno;
    if (rc == 0)
        (void)fcntl(m, F_ADD_SEALS, F_SEAL_WRITE | F_SEAL_GROW | F_SEAL_SHRINK | F_SEAL_SEAL);
    if (rc < 0) {
        close(m);
        return rc;
    }
    int hi = fcntl(m, F_DUPFD_CLOEXEC, S_HIGH_FD);
    rc = hi < 0 ? -errno : hi;
    close(m);
    return rc;
}

/* A pipe with both ends moved to >= S_HIGH_FD, CLOEXEC. */
static int s_high_pipe(int ret[2])
{
    int p[2];
    if (pipe2(p, O_CLOEXEC) < 0)
        return -errno;
    ret[0] = fcntl(p[0], F_DUPFD_CLOEXEC, S_HIGH_FD);
    ret[1] = ret[0] < 0 ? -1 : fcntl(p[1], F_DUPFD_CLOEXEC, S_HIGH_FD);
    int e = errno;
    close(p[0]);
    close(p[1]);
    if (ret[0] < 0 || ret[1] < 0) {
        s_close(&ret[0]);
        s_close(&ret[1]);
        return -e;
    }
    return 0;
}

/* In the child: report errno e on the exec-report pipe and exit. */
static void s_child_fail(int report, int e) __attribute__((noreturn));
static void s_child_fail(int report, int e)
{
    ssize_t w = write(report, &e, sizeof(e));
    (void)w;
    _exit(127);
}

static void s_close_from(int lowfd)
{
#ifdef SYS_close_range
    if (syscall(SYS_close_range, (unsigned)lowfd, ~0u, 0) == 0)
        return;
#endif
    struct rlimit rl;
    long max = 65536;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
        rl.rlim_cur < (rlim_t)(1 << 20))
        max = (long)rl.rlim_cur;
    for (long fd = lowfd; fd < max; fd++)
        (void)close((int)fd);
}

/* The child between fork and exec: async-signal-safe calls only. */
static void s_child(const dy_spawn_conf_t *conf, pid_t parent, int job_fd, int result_w,
                    int report) __attribute__((noreturn));
static void s_child(const dy_spawn_conf_t *conf, pid_t parent, int job_fd, int result_w,
                    int report)
{
    /* Death of the parent kills us; the parent may already be gone. */
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0)
        s_child_fail(report, errno);
    if (getppid() != parent)
        _exit(111);
    (void)setpgid(0, 0);

    /* Default dispositions (SIG_IGN survives exec) and an empty mask. */
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = SIG_DFL;
    for (int sig = 1; sig < NSIG; sig++)
        if (sig != SIGKILL && sig != SIGSTOP)
            (void)sigaction(sig, &sa, NULL);
    sigset_t none;
    sigemptyset(&none);
    (void)sigprocmask(SIG_SETMASK, &none, NULL);

    /* fds: 0 = job, 1/2 = inherited logs, 3 = result; report stays (CLOEXEC)
     * above 3 until exec. */
    if (dup2(job_fd, 0) < 0 || dup2(result_w, 3) < 0)
        s_child_fail(report, errno);
    int rep = report;
    if (report != 4) {
        if (dup2(report, 4) < 0)
            s_child_fail(report, errno);
        rep = 4;
        if (fcntl(rep, F_SETFD, FD_CLOEXEC) < 0)
            s_child_fail(report, errno);
    }
    s_close_from(5);

    struct rlimit rl;
    rl.rlim_cur = rl.rlim_max = 0;
    if (setrlimit(RLIMIT_CORE, &rl) < 0)
        s_child_fail(rep, errno);
    if (conf->memory_limit > 0 && dy_spawn_memory_limit_enforced()) {
        rl.rlim_cur = rl.rlim_max = (rlim_t)conf->memory_limit;
        if (setrlimit(RLIMIT_AS, &rl) < 0)
            s_child_fail(rep, errno);
    }
    if (conf->cpu_seconds > 0) {
        /* SIGXCPU at the soft limit, SIGKILL one second later. */
        rl.rlim_cur = (rlim_t)conf->cpu_seconds;
        rl.rlim_max = (rlim_t)conf->cpu_seconds + 1;
        if (setrlimit(RLIMIT_CPU, &rl) < 0)
            s_child_fail(rep, errno);
    }
    execv(conf->path, conf->argv);
    s_child_fail(rep, errno);
}

bool dy_spawn_memory_limit_enforced(void)
{
    /* AddressSanitizer reserves terabytes of address space for its shadow
     * memory before main(), so any RLIMIT_AS makes a sanitized worker die at
     * start.  Sanitizer builds (tests only) therefore run workers without
     * the address-space limit; production builds always apply it. */
#if defined(__SANITIZE_ADDRESS__)
    return false;
#else
    return true;
#endif
}

dy_spawn_t *dy_spawn_start(const dy_spawn_conf_t *conf)
{
    if (conf == NULL || conf->path == NULL || conf->argv == NULL || conf->argv[0] == NULL ||
        (conf->job == NULL && conf->job_len > 0)) {
        errno = EINVAL;
        return NULL;
    }
    dy_spawn_t *self = calloc(1, sizeof(*self));
    if (self == NULL)
        return NULL;
    self->pid = -1;
    self->result_fd = -1;
    self->max_result = conf->max_result ? conf->max_result : S_DEFAULT_MAX_RESULT;
    self->deadline_ms = conf->deadline_ms > 0 ? conf->deadline_ms : 0;

    int job_fd = -1, res[2] = {-1, -1}, rep[2] = {-1, -1};
    int rc = s_job_fd(conf->job, conf->job_len);
    if (rc < 0)
        goto fail;
    job_fd = rc;
    if ((rc = s_high_pipe(res)) < 0 || (rc = s_high_pipe(rep)) < 0)
        goto fail;

    pid_t parent = getpid();
    self->start_ms = dy_now_ms();
    pid_t pid = fork();
    if (pid < 0) {
        rc = -errno;
        goto fail;
    }
    if (pid == 0)
        s_child(conf, parent, job_fd, res[1], rep[1]);

    /* Parent. */
    self->pid = pid;
    (void)setpgid(pid, pid); /* no window where the group is not there */
    s_close(&job_fd);
    s_close(&res[1]);
    s_close(&rep[1]);

    /* Exec report: EOF = exec happened (CLOEXEC closed it); an int = errno. */
    int err = 0;
    ssize_t r;
    do
        r = read(rep[0], &err, sizeof(err));
    while (r < 0 && errno == EINTR);
    s_close(&rep[0]);
    if (r == (ssize_t)sizeof(err)) {
        int st;
        while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
            ;
        self->pid = -1;
        rc = -(err > 0 ? err : EIO);
        goto fail;
    }
    self->result_fd = res[0];
    res[0] = -1;
    int fl = fcntl(self->result_fd, F_GETFL);
    if (fl >= 0)
        (void)fcntl(self->result_fd, F_SETFL, fl | O_NONBLOCK);
    return self;

fail:
    s_close(&job_fd);
    s_close(&res[0]);
    s_close(&res[1]);
    s_close(&rep[0]);
    s_close(&rep[1]);
    free(self);
    errno = -rc;
    return NULL;
}

pid_t dy_spawn_pid(const dy_spawn_t *self)
{
    return self->pid;
}

int dy_spawn_result_fd(const dy_spawn_t *self)
{
    return self->result_fd;
}

int dy_spawn_pump(dy_spawn_t *self)
{
    if (self->result_fd < 0)
        return self->overflow ? -EMSGSIZE : 1;
    for (;;) {
        uint8_t chunk[16384];
        ssize_t r = read(self->result_fd, chunk, sizeof(chunk));
        if (r < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return 0;
            int e = errno;
            s_close(&self->result_fd);
            return -e;
        }
        if (r == 0) {
            s_close(&self->result_fd);
            return 1;
        }
        if (self->result.len + (size_t)r > self->max_result) {
            /* Too much: drop what we have and stop listening; the child gets
             * EPIPE (or SIGPIPE) on its next write. */
            self->overflow = true;
            dy_buf_free(&self->result);
            s_close(&self->result_fd);
            return -EMSGSIZE;
        }
        if (dy_buf_append(&self->result, chunk, (size_t)r) < 0)
            return -ENOMEM;
    }
}

int dy_spawn_poll(dy_spawn_t *self)
{
    if (self->reaped)
        return 1;
    if (self->pid <= 0)
        return 1;
    int st;
    pid_t r;
    do
        r = waitpid(self->pid, &st, WNOHANG);
    while (r < 0 && errno == EINTR);
    if (r == self->pid) {
        self->reaped = true;
        self->wstatus = st;
        return 1;
    }
    if (r < 0 && errno == ECHILD) {
        /* Reaped elsewhere (a SIGCHLD handler that waits for all): unknown status. */
        self->reaped = true;
        self->wstatus = 0x7f00; /* exit code 127 */
        return 1;
    }
    return 0;
}

void dy_spawn_kill(dy_spawn_t *self)
{
    if (self == NULL || self->pid <= 0 || self->reaped)
        return;
    if (!self->killed) {
        if (dy_spawn_expired(self))
            self->deadline = true;
        self->killed = true;
        if (kill(-self->pid, SIGKILL) < 0)
            (void)kill(self->pid, SIGKILL);
    }
    int st;
    pid_t r;
    do
        r = waitpid(self->pid, &st, 0);
    while (r < 0 && errno == EINTR);
    self->reaped = true;
    self->wstatus = r == self->pid ? st : 0x7f00;
}

bool dy_spawn_expired(const dy_spawn_t *self)
{
    return self->deadline_ms > 0 && dy_now_ms() - self->start_ms >= self->deadline_ms;
}

void dy_spawn_status(const dy_spawn_t *self, dy_spawn_status_t *out)
{
    memset(out, 0, sizeof(*out));
    if (self->reaped) {
        if (WIFEXITED(self->wstatus)) {
            out->exited = true;
            out->exit_code = WEXITSTATUS(self->wstatus);
        } else if (WIFSIGNALED(self->wstatus)) {
            out->signal = WTERMSIG(self->wstatus);
        }
    }
    out->deadline = self->deadline;
    if (!self->overflow) {
        out->result = self->result.data;
        out->result_len = self->result.len;
    }
}

int dy_spawn_wait(dy_spawn_t *self)
{
    for (;;) {
        if (self->result_fd >= 0) {
            int rc = dy_spawn_pump(self);
            if (rc == -ENOMEM)
                return rc;
        }
        if (self->result_fd < 0 && dy_spawn_poll(self) == 1)
            return 0;
        if (dy_spawn_expired(self)) {
            dy_spawn_kill(self);
            if (self->result_fd >= 0)
                (void)dy_spawn_pump(self);
            return 0;
        }
        int timeout = 100;
        if (self->deadline_ms > 0) {
            int64_t left = self->start_ms + self->deadline_ms - dy_now_ms();
            if (left < timeout)
                timeout = left > 0 ? (int)left : 0;
        }
        if (self->result_fd >= 0) {
            struct pollfd pfd = {.fd = self->result_fd, .events = POLLIN};
            (void)poll(&pfd, 1, timeout);
        } else {
            /* Result pipe closed; waiting for the exit only. */
            if (dy_spawn_poll(self) == 1)
                return 0;
            struct timespec ts = {0, 10 * 1000000};
            nanosleep(&ts, NULL);
        }
    }
}

void dy_spawn_destroy(dy_spawn_t **self_p)
{
    if (self_p == NULL || *self_p == NULL)
        return;
    dy_spawn_t *self = *self_p;
    if (self->pid > 0 && dy_spawn_poll(self) == 0)
        dy_spawn_kill(self);
    s_close(&self->result_fd);
    dy_buf_free(&self->result);
    free(self);
    *self_p = NULL;
}

/* ---- the worker's side ------------------------------------------------------------------- */

int dy_spawn_read_job(dy_buf_t *ret, size_t max)
{
    dy_buf_t buf = {0};
    for (;;) {
        uint8_t *dst = dy_buf_extend(&buf, 65536);
        if (dst == NULL) {
            dy_buf_free(&buf);
            return -ENOMEM;
        }
        buf.len -= 65536;
        ssize_t r = read(0, dst, 65536);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            int e = errno;
            dy_buf_free(&buf);
            return -e;
        }
        if (r == 0)
            break;
        buf.len += (size_t)r;
        if (buf.len > max) {
            dy_buf_free(&buf);
            return -EMSGSIZE;
        }
    }
    *ret = buf;
    return 0;
}

int dy_spawn_write_result(const uint8_t *data, size_t len)
{
    int rc = len ? s_write_all(3, data, len) : 0;
    if (close(3) < 0 && rc == 0)
        rc = -errno;
    return rc;
}
