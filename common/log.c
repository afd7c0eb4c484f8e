/* log.c - the JSON-lines logger of log.h (STYLE.md rules 7, 8, 23, 24).
 *
 * Each call formats its whole line into a buffer on its own stack and
 * hands it to write(2) once, so lines from the engine's worker threads (or
 * from processes sharing the supervisor's pipe) never interleave: a write
 * of at most PIPE_BUF bytes to a pipe is atomic, and a longer one is still
 * a single call.  A line is capped at S_LINE_MAX bytes; a longer message is
 * cut at a character boundary and ends in "...(truncated)", so the line
 * stays valid JSON.
 *
 * Shared state (process name, duchy id, extra fields) is written by
 * dy_log_init and dy_log_set_field, which actors call at start-up, and is
 * read under a mutex while a line is built; the verbose flag is atomic.
 *
 * Strings are escaped as JSON: quote, backslash and every control
 * character, also U+2028/U+2029 (so a line is valid JavaScript too); bytes
 * that are not well-formed UTF-8 become U+FFFD.  errno is preserved across
 * every call except the fatal ones.
 */
#include "log.h"

#include "config.h" /* dy_config_utf8_decode */

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define S_LINE_MAX 8192  /* bytes in one line, newline included */
/* Bytes of formatted message before escaping: more than a line can hold,
 * so a message cut here is always cut again, visibly, when escaped. */
#define S_MSG_MAX S_LINE_MAX
#define S_MAX_FIELDS 8
#define S_NAME_MAX 64    /* proc, duchy and field keys */
#define S_VALUE_MAX 256  /* field values */

static pthread_mutex_t s_lock = PTHREAD_MUTEX_INITIALIZER;
static atomic_bool s_verbose;
static char s_proc[S_NAME_MAX];  /* empty until dy_log_init: program name is used */
static char s_duchy[S_NAME_MAX]; /* empty = not shown */
static struct {
    char key[S_NAME_MAX];
    char value[S_VALUE_MAX];
} s_fields[S_MAX_FIELDS];        /* key[0] == '\0' = free slot */

void dy_log_init(const char *proc, const char *duchy, bool verbose)
{
    pthread_mutex_lock(&s_lock);
    snprintf(s_proc, sizeof(s_proc), "%s", proc ? proc : "");
    snprintf(s_duchy, sizeof(s_duchy), "%s", duchy ? duchy : "");
    pthread_mutex_unlock(&s_lock);
    atomic_store(&s_verbose, verbose);
}

void dy_log_set_verbose(bool verbose)
{
    atomic_store(&s_verbose, verbose);
}

bool dy_log_verbose(void)
{
    return atomic_load(&s_verbose);
}

void dy_log_set_field(const char *key, const char *value)
{
    if (key == NULL || key[0] == '\0')
        return;
    pthread_mutex_lock(&s_lock);
    int slot = -1, free_slot = -1;
    for (int i = 0; i < S_MAX_FIELDS; i++) {
        if (s_fields[i].key[0] == '\0') {
            if (free_slot < 0)
                free_slot = i;
        } else if (strncmp(s_fields[i].key, key, S_NAME_MAX - 1) == 0) {
            slot = i;
        }
    }
    if (value == NULL) {
        if (slot >= 0)
            s_fields[slot].key[0] = '\0';
    } else {
        if (slot < 0)
            slot = free_slot; /* a ninth key is dropped: at most 8 by contract */
        if (slot >= 0) {
            snprintf(s_fields[slot].key, sizeof(s_fields[slot].key), "%s", key);
            snprintf(s_fields[slot].value, sizeof(s_fields[slot].value), "%s", value);
        }
    }
    pthread_mutex_unlock(&s_lock);
}

/* A line under construction.  Every string is appended with a cap on its
 * escaped length, and the caps of everything before the message add up to
 * far less than S_LINE_MAX (S_FIELD_CAP each), so only the message, which
 * goes last and gets what is left, is ever cut. */
typedef struct {
    char buf[S_LINE_MAX];
    size_t len;
} s_line_t;

#define S_FIELD_CAP 256 /* escaped bytes of any string before the message */
#define S_MARK "...(truncated)"

static void s_raw(s_line_t *l, const char *s, size_t n)
{
    if (n > S_LINE_MAX - l->len)
        n = S_LINE_MAX - l->len; /* unreachable by the caps; never overrun */
    memcpy(l->buf + l->len, s, n);
    l->len += n;
}

static void s_str(s_line_t *l, const char *s)
{
    s_raw(l, s, strlen(s));
}

/* Appends s as a quoted JSON string of at most cap escaped bytes between
 * the quotes (cap >= sizeof(S_MARK)); a longer string is cut at a
 * character boundary and ends in S_MARK. */
static void s_json(s_line_t *l, const char *s, size_t cap)
{
    const unsigned char *p = (const unsigned char *)(s ? s : "");
    size_t n = strlen((const char *)p), used = 0;
    s_raw(l, "\"", 1);
    while (n > 0) {
        uint32_t cp;
        size_t k = dy_config_utf8_decode(p, n, &cp);
        char esc[8];
        const char *out = esc;
        size_t outlen;
        if (k == 0) {
            out = "\\ufffd";
            outlen = 6;
            k = 1;
        } else if (cp == '"' || cp == '\\') {
            esc[0] = '\\', esc[1] = (char)cp;
            outlen = 2;
        } else if (cp == '\n' || cp == '\r' || cp == '\t') {
            esc[0] = '\\', esc[1] = cp == '\n' ? 'n' : cp == '\r' ? 'r' : 't';
            outlen = 2;
        } else if (cp < 0x20 || cp == 0x7f || cp == 0x2028 || cp == 0x2029) {
            snprintf(esc, sizeof(esc), "\\u%04x", (unsigned)cp);
            outlen = 6;
        } else {
            out = (const char *)p;
            outlen = k;
        }
        /* Keep room for the marker unless this is the last character. */
        if (used + outlen + (k < n ? sizeof(S_MARK) - 1 : 0) > cap) {
            s_raw(l, S_MARK, sizeof(S_MARK) - 1);
            break;
        }
        s_raw(l, out, outlen);
        used += outlen;
        p += k, n -= k;
    }
    s_raw(l, "\"", 1);
}

static void s_kv_str(s_line_t *l, const char *key, const char *value)
{
    s_str(l, ",");
    s_json(l, key, S_FIELD_CAP);
    s_str(l, ":");
    s_json(l, value, S_FIELD_CAP);
}

static void s_kv_int(s_line_t *l, const char *key, long long value)
{
    char num[32];
    snprintf(num, sizeof(num), "%lld", value);
    s_str(l, ",");
    s_json(l, key, S_FIELD_CAP);
    s_str(l, ":");
    s_str(l, num);
}

static void s_write_all(const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = write(STDERR_FILENO, buf, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return; /* nowhere to report a failing stderr */
        buf += n;
        len -= (size_t)n;
    }
}

/* Formats and writes one line.  err_no != 0 appends ": strerror(err_no)". */
static void s_log(const char *level, const dy_log_ctx_t *ctx, int err_no, const char *fmt,
                  va_list ap) DY_PRINTF(4, 0);

static void s_log(const char *level, const dy_log_ctx_t *ctx, int err_no, const char *fmt,
                  va_list ap)
{
    int saved_errno = errno;
    char msg[S_MSG_MAX];
    int n = vsnprintf(msg, sizeof(msg), fmt, ap);
    if (n < 0)
        snprintf(msg, sizeof(msg), "(bad log format: %s)", fmt);
    if (err_no != 0) {
        size_t used = strnlen(msg, sizeof(msg));
        char ebuf[128];
        const char *es = strerror_r(err_no, ebuf, sizeof(ebuf));
        snprintf(msg + used, sizeof(msg) - used, ": %s", es);
    }

    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    char tsbuf[96];
    snprintf(tsbuf, sizeof(tsbuf), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
             ts.tv_nsec / 1000000);

    s_line_t line; /* not zeroed: only buf[0..len) is ever read */
    s_line_t *l = &line;
    l->len = 0;
    s_str(l, "{\"ts\":");
    s_json(l, tsbuf, S_FIELD_CAP);
    s_kv_str(l, "level", level);
    pthread_mutex_lock(&s_lock);
    s_kv_str(l, "proc", s_proc[0] ? s_proc : program_invocation_short_name);
    s_kv_int(l, "pid", (long long)getpid());
    if (s_duchy[0])
        s_kv_str(l, "duchy", s_duchy);
    for (int i = 0; i < S_MAX_FIELDS; i++)
        if (s_fields[i].key[0])
            s_kv_str(l, s_fields[i].key, s_fields[i].value);
    pthread_mutex_unlock(&s_lock);
    if (ctx != NULL) {
        if (ctx->computation)
            s_kv_str(l, "computation", ctx->computation);
        if (ctx->stage)
            s_kv_str(l, "stage", ctx->stage);
        if (ctx->attempt != 0)
            s_kv_int(l, "attempt", (long long)ctx->attempt);
    }
    /* The message last: it is the part that may be truncated, so the
     * fields before it always survive. */
    s_str(l, ",\"msg\":");
    s_json(l, msg, S_LINE_MAX - l->len - 4); /* 4: two quotes, '}' and '\n' */
    s_str(l, "}\n");
    s_write_all(l->buf, l->len);
    errno = saved_errno;
}

#define S_VERB(name, level, ctxarg, errexpr, guard)                                           \
    do {                                                                                      \
        if (!(guard))                                                                         \
            break;                                                                            \
        int e_ = (errexpr);                                                                   \
        va_list ap;                                                                           \
        va_start(ap, fmt);                                                                    \
        s_log(level, ctxarg, e_, fmt, ap);                                                    \
        va_end(ap);                                                                           \
    } while (0)

void log_info(const char *fmt, ...)
{
    S_VERB(log_info, "info", NULL, 0, true);
}

void log_debug(const char *fmt, ...)
{
    S_VERB(log_debug, "debug", NULL, 0, atomic_load(&s_verbose));
}

void log_warn(const char *fmt, ...)
{
    S_VERB(log_warn, "warn", NULL, errno, true);
}

void log_warnx(const char *fmt, ...)
{
    S_VERB(log_warnx, "warn", NULL, 0, true);
}

void fatal(const char *fmt, ...)
{
    S_VERB(fatal, "fatal", NULL, errno, true);
    exit(DY_EXIT_TEMPORARY);
}

void fatalx(const char *fmt, ...)
{
    S_VERB(fatalx, "fatal", NULL, 0, true);
    exit(DY_EXIT_TEMPORARY);
}

void fatal_config(const char *fmt, ...)
{
    S_VERB(fatal_config, "fatal", NULL, 0, true);
    exit(DY_EXIT_PERMANENT);
}

void log_info_c(const dy_log_ctx_t *ctx, const char *fmt, ...)
{
    S_VERB(log_info_c, "info", ctx, 0, true);
}

void log_debug_c(const dy_log_ctx_t *ctx, const char *fmt, ...)
{
    S_VERB(log_debug_c, "debug", ctx, 0, atomic_load(&s_verbose));
}

void log_warnx_c(const dy_log_ctx_t *ctx, const char *fmt, ...)
{
    S_VERB(log_warnx_c, "warn", ctx, 0, true);
}
