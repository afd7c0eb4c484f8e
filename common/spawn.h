/* spawn.h - isolated worker processes (STYLE.md "per-job worker isolation",
 * OpenSMTPD forkmda): fork + exec of a worker binary with a fresh address
 * space, nothing inherited but fds 0 (the job, a pipe), 1/2 (logs: the
 * parent's stderr) and 3 (the result, a pipe); rlimits (address space, CPU,
 * no core dumps), PR_SET_PDEATHSIG(SIGKILL), its own process group, and a
 * deadline enforced by the parent.  Never fork without exec: the parent
 * holds a zmq context and a SQLite connection.
 */
#ifndef DY_SPAWN_H
#define DY_SPAWN_H

#include "dy.h"

#include <sys/types.h>

typedef struct dy_spawn dy_spawn_t;

typedef struct {
    const char *path;          /* executable */
    char *const *argv;         /* NULL-terminated, argv[0] included */
    const uint8_t *job;        /* written to the child's fd 0, then closed */
    size_t job_len;
    uint64_t memory_limit;     /* RLIMIT_AS bytes, 0 = none */
    uint64_t cpu_seconds;      /* RLIMIT_CPU, 0 = none */
    int64_t deadline_ms;       /* wall time from start; 0 = none */
    size_t max_result;         /* bytes accepted on fd 3; 0 = 1 MiB */
} dy_spawn_conf_t;

/* Whether memory_limit (RLIMIT_AS) is applied: always, except in
 * AddressSanitizer builds, whose shadow memory needs the whole address
 * space (see spawn.c). */
bool dy_spawn_memory_limit_enforced(void);

/* Starts the child.  NULL with errno set on failure. */
dy_spawn_t *dy_spawn_start(const dy_spawn_conf_t *conf);

/* The child's pid; the result pipe's fd (poll it for readability, e.g.
 * with zloop_poller), and the deadline check. */
pid_t dy_spawn_pid(const dy_spawn_t *self);
int dy_spawn_result_fd(const dy_spawn_t *self);

/* Reads what is available on the result pipe (non-blocking).  Returns 1
 * when the pipe reached EOF (the child closed fd 3 or exited), 0 if more
 * may come, negative errno on error. */
int dy_spawn_pump(dy_spawn_t *self);

/* Reaps the child if it exited (WNOHANG).  1 = exited (status via
 * dy_spawn_status), 0 = still running. */
int dy_spawn_poll(dy_spawn_t *self);

/* Kills the child's process group with SIGKILL (idempotent) and reaps it. */
void dy_spawn_kill(dy_spawn_t *self);

/* True once the deadline has passed (the caller then kills). */
bool dy_spawn_expired(const dy_spawn_t *self);

typedef struct {
    bool exited;               /* exited normally (else signalled) */
    int exit_code;             /* when exited */
    int signal;                /* when signalled: SIGKILL also for deadline / memory */
    bool deadline;             /* killed by the parent for its deadline */
    const uint8_t *result;     /* bytes read from fd 3 (owned by self) */
    size_t result_len;
} dy_spawn_status_t;
void dy_spawn_status(const dy_spawn_t *self, dy_spawn_status_t *out);

/* Addition: blocks until the child exited and its result pipe reached EOF
 * (or was dropped for exceeding max_result), killing the process group at
 * the deadline; the outcome is then in dy_spawn_status.  For tools, tests
 * and workers that may block; an actor's loop uses pump/poll/expired
 * instead.  0, or -ENOMEM. */
int dy_spawn_wait(dy_spawn_t *self);

/* Kills (if needed), reaps and frees.  NULL-safe. */
void dy_spawn_destroy(dy_spawn_t **self_p);

/* In the child: the worker's side.  Reads all of fd 0 into *ret (caller
 * frees), bounded by max bytes.  0 or negative errno. */
int dy_spawn_read_job(dy_buf_t *ret, size_t max);
/* Writes the result to fd 3 and closes it.  0 or negative errno. */
int dy_spawn_write_result(const uint8_t *data, size_t len);

#endif
