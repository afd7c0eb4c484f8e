/* log.h - JSON-lines logging on stderr, with the OpenBSD verbs (STYLE.md
 * rules 23-24).  One line per event:
 *   {"ts":"2026-11-24T22:50:01.123Z","level":"info","proc":"claimer",
 *    "pid":123,"duchy":"worker1","computation":"...","stage":"SETUP_PHASE",
 *    "attempt":1,"msg":"..."}
 * computation/stage/attempt appear on every line that concerns a
 * computation (the *_c variants).  Messages are escaped as JSON strings.
 * Never log a secret: keys, scalars, seeds, decrypted points, shares.
 */
#ifndef DY_LOG_H
#define DY_LOG_H

#include "dy.h"

/* The computation a line concerns (any field may be NULL / 0). */
typedef struct {
    const char *computation; /* global id */
    const char *stage;       /* stage name */
    int64_t attempt;         /* 0 = not shown */
} dy_log_ctx_t;

/* Sets the process name ("claimer", "kingdom", ...) and duchy id (NULL for
 * the Kingdom and tools) shown on every line, and whether debug lines are
 * printed.  Call once at start. */
void dy_log_init(const char *proc, const char *duchy, bool verbose);
void dy_log_set_verbose(bool verbose);
bool dy_log_verbose(void);

/* Adds a key/value to every following line of this process (e.g. an owner
 * id); at most 8; value copied.  NULL value removes the key. */
void dy_log_set_field(const char *key, const char *value);

void log_info(const char *fmt, ...) DY_PRINTF(1, 2);
void log_debug(const char *fmt, ...) DY_PRINTF(1, 2);
/* log_warn appends ": strerror(errno)"; log_warnx does not. */
void log_warn(const char *fmt, ...) DY_PRINTF(1, 2);
void log_warnx(const char *fmt, ...) DY_PRINTF(1, 2);
/* Log at level "fatal" and exit: fatal/fatalx with 111 (temporary:
 * restart), fatal_config with 100 (permanent: do not restart). */
void fatal(const char *fmt, ...) DY_PRINTF(1, 2) __attribute__((noreturn));
void fatalx(const char *fmt, ...) DY_PRINTF(1, 2) __attribute__((noreturn));
void fatal_config(const char *fmt, ...) DY_PRINTF(1, 2) __attribute__((noreturn));

/* The same with a computation context. */
void log_info_c(const dy_log_ctx_t *ctx, const char *fmt, ...) DY_PRINTF(2, 3);
void log_debug_c(const dy_log_ctx_t *ctx, const char *fmt, ...) DY_PRINTF(2, 3);
void log_warnx_c(const dy_log_ctx_t *ctx, const char *fmt, ...) DY_PRINTF(2, 3);

/* Exit codes (STYLE.md rule 8). */
#define DY_EXIT_OK 0
#define DY_EXIT_USAGE 64
#define DY_EXIT_PERMANENT 100
#define DY_EXIT_TEMPORARY 111

#endif
