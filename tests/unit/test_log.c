/* test_log.c - the JSON-lines logger of common/log.c.  stderr is redirected to a temporary
 * file, and every line written is checked by a strict little JSON reader (flat object of
 * string and integer members, valid UTF-8, no raw control characters) and, when python3 is
 * installed, by python's json module as well.  Covers the fields, escaping of hostile
 * strings, truncation, the *_c variants, extra fields, debug gating, errno handling, the
 * fatal exit codes (in forked children) and lines from concurrent threads. */
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "log.h"

/* ---- capturing stderr ------------------------------------------------------------------ */

static int s_saved_stderr = -1;
static char s_capture_path[64];

static void s_capture_start(void)
{
    snprintf(s_capture_path, sizeof(s_capture_path), "/tmp/test_log_XXXXXX");
    int fd = mkstemp(s_capture_path);
    assert_true(fd >= 0);
    close(fd);
    /* O_APPEND: concurrent writers each land at the end, as with the supervisor's pipe. */
    fd = open(s_capture_path, O_WRONLY | O_APPEND);
    assert_true(fd >= 0);
    s_saved_stderr = dup(STDERR_FILENO);
    assert_true(s_saved_stderr >= 0);
    assert_int_equal(dup2(fd, STDERR_FILENO), STDERR_FILENO);
    close(fd);
}

/* Restores stderr and returns everything written meanwhile (caller frees). */
static char *s_capture_end(size_t *ret_len)
{
    assert_int_equal(dup2(s_saved_stderr, STDERR_FILENO), STDERR_FILENO);
    close(s_saved_stderr);
    s_saved_stderr = -1;
    FILE *f = fopen(s_capture_path, "rb");
    assert_non_null(f);
    char *buf = NULL;
    size_t len = 0, cap = 0, n;
    do {
        if (cap - len < 65536) {
            cap = cap ? cap * 2 : 131072;
            buf = realloc(buf, cap + 1);
            assert_non_null(buf);
        }
        n = fread(buf + len, 1, cap - len, f);
        len += n;
    } while (n > 0);
    fclose(f);
    unlink(s_capture_path);
    buf[len] = '\0';
    if (ret_len)
        *ret_len = len;
    return buf;
}

/* ---- a strict reader for one line ------------------------------------------------------- */

#define T_MAX_MEMBERS 32

typedef struct {
    char *key[T_MAX_MEMBERS];   /* owned, decoded */
    char *value[T_MAX_MEMBERS]; /* owned, decoded string, or the integer's text */
    bool is_num[T_MAX_MEMBERS];
    size_t n;
} t_obj_t;

static void s_obj_free(t_obj_t *o)
{
    for (size_t i = 0; i < o->n; i++) {
        free(o->key[i]);
        free(o->value[i]);
    }
    o->n = 0;
}

static const char *s_get(const t_obj_t *o, const char *key)
{
    for (size_t i = 0; i < o->n; i++)
        if (strcmp(o->key[i], key) == 0)
            return o->value[i];
    return NULL;
}

static void s_put_utf8(char **out, unsigned cp)
{
    unsigned char *p = (unsigned char *)*out;
    if (cp < 0x80) {
        *p++ = (unsigned char)cp;
    } else if (cp < 0x800) {
        *p++ = (unsigned char)(0xc0 | cp >> 6);
        *p++ = (unsigned char)(0x80 | (cp & 0x3f));
    } else if (cp < 0x10000) {
        *p++ = (unsigned char)(0xe0 | cp >> 12);
        *p++ = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
        *p++ = (unsigned char)(0x80 | (cp & 0x3f));
    } else {
        *p++ = (unsigned char)(0xf0 | cp >> 18);
        *p++ = (unsigned char)(0x80 | ((cp >> 12) & 0x3f));
        *p++ = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
        *p++ = (unsigned char)(0x80 | (cp & 0x3f));
    }
    *out = (char *)p;
}

/* Length of a well-formed UTF-8 sequence at p, or 0. */
static size_t s_utf8_len(const unsigned char *p)
{
    unsigned cp;
    size_t n;
    if (p[0] < 0x80)
        return 1;
    if ((p[0] & 0xe0) == 0xc0)
        n = 2, cp = p[0] & 0x1f;
    else if ((p[0] & 0xf0) == 0xe0)
        n = 3, cp = p[0] & 0x0f;
    else if ((p[0] & 0xf8) == 0xf0)
        n = 4, cp = p[0] & 0x07;
    else
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((p[i] & 0xc0) != 0x80)
            return 0;
        cp = cp << 6 | (p[i] & 0x3f);
    }
    static const unsigned min[] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < min[n] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return n;
}

static int s_hex4(const char *p, unsigned *ret)
{
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f')
            v |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            v |= (unsigned)(c - 'A' + 10);
        else
            return -1;
    }
    *ret = v;
    return 0;
}

/* Reads a JSON string at *pp into a malloc'd decoded string; NULL if malformed. */
static char *s_read_string(const char **pp)
{
    const char *p = *pp;
    if (*p++ != '"')
        return NULL;
    char *out = malloc(strlen(p) * 4 + 1), *o = out;
    assert_non_null(out);
    for (;;) {
        unsigned char c = (unsigned char)*p;
        if (c == '"') {
            p++;
            break;
        }
        if (c < 0x20) /* includes the NUL at the end of an unterminated string */
            goto bad;
        if (c == '\\') {
            char e = p[1];
            p += 2;
            switch (e) {
            case '"': *o++ = '"'; break;
            case '\\': *o++ = '\\'; break;
            case '/': *o++ = '/'; break;
            case 'b': *o++ = '\b'; break;
            case 'f': *o++ = '\f'; break;
            case 'n': *o++ = '\n'; break;
            case 'r': *o++ = '\r'; break;
            case 't': *o++ = '\t'; break;
            case 'u': {
                unsigned cp, lo;
                if (s_hex4(p, &cp) < 0)
                    goto bad;
                p += 4;
                if (cp >= 0xd800 && cp <= 0xdbff) {
                    if (p[0] != '\\' || p[1] != 'u' || s_hex4(p + 2, &lo) < 0 || lo < 0xdc00 ||
                        lo > 0xdfff)
                        goto bad;
                    p += 6;
                    cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                } else if (cp >= 0xdc00 && cp <= 0xdfff) {
                    goto bad;
                }
                s_put_utf8(&o, cp);
                break;
            }
            default:
                goto bad;
            }
            continue;
        }
        size_t n = s_utf8_len((const unsigned char *)p);
        if (n == 0)
            goto bad;
        memcpy(o, p, n);
        o += n, p += n;
    }
    *o = '\0';
    *pp = p;
    return out;
bad:
    free(out);
    return NULL;
}

/* Parses one line (without its '\n') as a flat JSON object of strings and integers, with
 * no whitespace (the logger writes none) and no repeated member.  0 or -1. */
static int s_parse_line(const char *line, t_obj_t *o)
{
    memset(o, 0, sizeof(*o));
    const char *p = line;
    if (*p++ != '{')
        return -1;
    for (;;) {
        if (o->n == T_MAX_MEMBERS)
            goto bad;
        char *key = s_read_string(&p);
        if (key == NULL)
            goto bad;
        for (size_t i = 0; i < o->n; i++)
            if (strcmp(o->key[i], key) == 0) {
                free(key);
                goto bad;
            }
        o->key[o->n] = key;
        if (*p++ != ':') {
            o->value[o->n++] = NULL;
            goto bad;
        }
        if (*p == '"') {
            o->value[o->n] = s_read_string(&p);
            o->is_num[o->n] = false;
        } else {
            const char *start = p;
            if (*p == '-')
                p++;
            if (*p < '0' || *p > '9' || (*p == '0' && p[1] >= '0' && p[1] <= '9'))
                o->value[o->n] = NULL;
            else {
                while (*p >= '0' && *p <= '9')
                    p++;
                o->value[o->n] = strndup(start, (size_t)(p - start));
            }
            o->is_num[o->n] = true;
        }
        if (o->value[o->n++] == NULL)
            goto bad;
        if (*p == ',') {
            p++;
            continue;
        }
        if (*p == '}' && p[1] == '\0')
            return 0;
        goto bad;
    }
bad:
    s_obj_free(o);
    return -1;
}

/* Splits captured output into lines; each must end in '\n' and parse.  Returns the count
 * and, if objs is not NULL, the parsed lines (caller frees each and the array). */
static size_t s_parse_all(char *buf, t_obj_t **ret_objs)
{
    size_t count = 0, cap = 0;
    t_obj_t *objs = NULL;
    char *p = buf;
    while (*p) {
        char *nl = strchr(p, '\n');
        if (nl == NULL)
            fail_msg("unterminated line: %s", p);
        *nl = '\0';
        t_obj_t o;
        if (s_parse_line(p, &o) < 0)
            fail_msg("not a JSON object line: %s", p);
        if (strlen(p) + 1 > 8192)
            fail_msg("line of %zu bytes", strlen(p) + 1);
        if (count == cap) {
            cap = cap ? cap * 2 : 16;
            objs = realloc(objs, cap * sizeof(*objs));
            assert_non_null(objs);
        }
        objs[count++] = o;
        *nl = '\n';
        p = nl + 1;
    }
    if (ret_objs) {
        *ret_objs = objs;
    } else {
        for (size_t i = 0; i < count; i++)
            s_obj_free(&objs[i]);
        free(objs);
    }
    return count;
}

/* Captures exactly one line written by the calls between the macros. */
#define CAPTURE_ONE(obj, ...)                                                                 \
    do {                                                                                      \
        s_capture_start();                                                                    \
        __VA_ARGS__;                                                                          \
        char *buf_ = s_capture_end(NULL);                                                     \
        t_obj_t *objs_ = NULL;                                                                \
        assert_int_equal(s_parse_all(buf_, &objs_), 1);                                       \
        (obj) = objs_[0];                                                                     \
        free(objs_);                                                                          \
        free(buf_);                                                                           \
    } while (0)

/* ---- tests ------------------------------------------------------------------------------ */

static int s_setup(void **state)
{
    (void)state;
    dy_log_init("tester", "worker1", false);
    return 0;
}

static void test_fields(void **state)
{
    (void)state;
    t_obj_t o;
    time_t before = time(NULL);
    CAPTURE_ONE(o, log_info("hello %d", 42));
    time_t after = time(NULL);

    static const char *const order[] = {"ts", "level", "proc", "pid", "duchy", "msg"};
    assert_int_equal(o.n, DY_ARRAY_LEN(order));
    for (size_t i = 0; i < o.n; i++)
        assert_string_equal(o.key[i], order[i]);
    assert_string_equal(s_get(&o, "level"), "info");
    assert_string_equal(s_get(&o, "proc"), "tester");
    assert_string_equal(s_get(&o, "duchy"), "worker1");
    assert_string_equal(s_get(&o, "msg"), "hello 42");
    assert_true(o.is_num[3]);
    assert_int_equal(atol(s_get(&o, "pid")), getpid());

    /* ISO-8601 UTC with milliseconds, within the call's second. */
    const char *ts = s_get(&o, "ts");
    assert_int_equal(strlen(ts), 24);
    struct tm tm = {0};
    const char *end = strptime(ts, "%Y-%m-%dT%H:%M:%S", &tm);
    assert_non_null(end);
    assert_true(end[0] == '.' && end[1] >= '0' && end[1] <= '9' && end[2] >= '0' &&
                end[2] <= '9' && end[3] >= '0' && end[3] <= '9' && end[4] == 'Z' && !end[5]);
    time_t t = timegm(&tm);
    assert_true(t >= before && t <= after);
    s_obj_free(&o);

    /* Without a duchy id (the Kingdom, tools) the key is absent. */
    dy_log_init("kingdom", NULL, false);
    CAPTURE_ONE(o, log_warnx("x"));
    assert_null(s_get(&o, "duchy"));
    assert_string_equal(s_get(&o, "proc"), "kingdom");
    assert_string_equal(s_get(&o, "level"), "warn");
    s_obj_free(&o);
    dy_log_init("tester", "worker1", false);
}

static void test_escaping(void **state)
{
    (void)state;
    static const struct {
        const char *in, *want;
    } cases[] = {
        {"plain", "plain"},
        {"quote \" backslash \\ slash /", "quote \" backslash \\ slash /"},
        {"nl\ncr\rtab\tbs\bff\fbell\aesc\x1b del\x7f",
         "nl\ncr\rtab\tbs\bff\fbell\aesc\x1b del\x7f"},
        {"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"},
        {"ls\xe2\x80\xa8ps\xe2\x80\xa9", "ls\xe2\x80\xa8ps\xe2\x80\xa9"},
        /* invalid UTF-8: each bad byte becomes U+FFFD */
        {"a\xff" "b", "a\xef\xbf\xbd" "b"},
        {"cut\xe2\x82", "cut\xef\xbf\xbd\xef\xbf\xbd"},
        {"overlong\xc0\xaf", "overlong\xef\xbf\xbd\xef\xbf\xbd"},
        {"surrogate\xed\xa0\x80", "surrogate\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"},
        {"too big\xf4\x90\x80\x80", "too big\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"},
        {"lone cont\x80", "lone cont\xef\xbf\xbd"},
        {"}{\",\":\"", "}{\",\":\""},
    };
    for (size_t i = 0; i < DY_ARRAY_LEN(cases); i++) {
        t_obj_t o;
        s_capture_start();
        log_info("%s", cases[i].in);
        char *buf = s_capture_end(NULL);
        /* The raw line holds no control character but its final newline, and no raw
         * U+2028/U+2029. */
        for (char *p = buf; *p && p[1]; p++)
            assert_false((unsigned char)*p < 0x20 || *p == 0x7f);
        assert_null(strstr(buf, "\xe2\x80\xa8"));
        t_obj_t *objs;
        assert_int_equal(s_parse_all(buf, &objs), 1);
        o = objs[0];
        free(objs);
        free(buf);
        if (strcmp(s_get(&o, "msg"), cases[i].want) != 0)
            fail_msg("case %zu: got \"%s\"", i, s_get(&o, "msg"));
        s_obj_free(&o);
    }
}

static void test_context(void **state)
{
    (void)state;
    t_obj_t o;
    dy_log_ctx_t ctx = {.computation = "comp/\"1\"", .stage = "SETUP_PHASE", .attempt = 3};
    CAPTURE_ONE(o, log_info_c(&ctx, "stage %s", "started"));
    assert_string_equal(s_get(&o, "computation"), "comp/\"1\"");
    assert_string_equal(s_get(&o, "stage"), "SETUP_PHASE");
    assert_string_equal(s_get(&o, "attempt"), "3");
    assert_string_equal(s_get(&o, "msg"), "stage started");
    assert_string_equal(o.key[o.n - 1], "msg");
    s_obj_free(&o);

    dy_log_ctx_t partial = {.computation = "c2"};
    CAPTURE_ONE(o, log_warnx_c(&partial, "w"));
    assert_string_equal(s_get(&o, "level"), "warn");
    assert_string_equal(s_get(&o, "computation"), "c2");
    assert_null(s_get(&o, "stage"));
    assert_null(s_get(&o, "attempt"));
    s_obj_free(&o);

    CAPTURE_ONE(o, log_info_c(NULL, "no context"));
    assert_null(s_get(&o, "computation"));
    s_obj_free(&o);
}

static void test_extra_fields(void **state)
{
    (void)state;
    t_obj_t o;
    dy_log_set_field("owner", "claimer-7");
    dy_log_set_field("zone", "a\"b");
    CAPTURE_ONE(o, log_info("x"));
    assert_string_equal(s_get(&o, "owner"), "claimer-7");
    assert_string_equal(s_get(&o, "zone"), "a\"b");
    s_obj_free(&o);

    dy_log_set_field("owner", "claimer-8"); /* replaces, does not add */
    dy_log_set_field("zone", NULL);         /* removes */
    CAPTURE_ONE(o, log_info("x"));
    assert_string_equal(s_get(&o, "owner"), "claimer-8");
    assert_null(s_get(&o, "zone"));
    assert_int_equal(o.n, 7);
    s_obj_free(&o);

    /* At most 8: a ninth key is dropped, the line stays whole. */
    char key[16];
    for (int i = 0; i < 9; i++) {
        snprintf(key, sizeof(key), "k%d", i);
        dy_log_set_field(key, "v");
    }
    CAPTURE_ONE(o, log_info("x"));
    assert_int_equal(o.n, 6 + 8);
    assert_string_equal(s_get(&o, "owner"), "claimer-8");
    assert_null(s_get(&o, "k7"));
    assert_null(s_get(&o, "k8"));
    s_obj_free(&o);
    dy_log_set_field("owner", NULL);
    for (int i = 0; i < 9; i++) {
        snprintf(key, sizeof(key), "k%d", i);
        dy_log_set_field(key, NULL);
    }
    CAPTURE_ONE(o, log_info("x"));
    assert_int_equal(o.n, 6);
    s_obj_free(&o);
}

static void test_debug_gating(void **state)
{
    (void)state;
    dy_log_set_verbose(false);
    assert_false(dy_log_verbose());
    s_capture_start();
    log_debug("hidden");
    log_debug_c(NULL, "hidden");
    char *buf = s_capture_end(NULL);
    assert_string_equal(buf, "");
    free(buf);

    dy_log_set_verbose(true);
    assert_true(dy_log_verbose());
    s_capture_start();
    log_debug("shown");
    log_debug_c(&(dy_log_ctx_t){.stage = "S"}, "shown");
    buf = s_capture_end(NULL);
    t_obj_t *objs;
    assert_int_equal(s_parse_all(buf, &objs), 2);
    assert_string_equal(s_get(&objs[0], "level"), "debug");
    assert_string_equal(s_get(&objs[1], "stage"), "S");
    s_obj_free(&objs[0]);
    s_obj_free(&objs[1]);
    free(objs);
    free(buf);
    dy_log_set_verbose(false);
}

static void test_warn_errno(void **state)
{
    (void)state;
    t_obj_t o;
    errno = ENOENT;
    CAPTURE_ONE(o, log_warn("open %s", "/x"));
    assert_int_equal(errno, ENOENT); /* preserved */
    assert_string_equal(s_get(&o, "msg"), "open /x: No such file or directory");
    s_obj_free(&o);
    errno = EACCES;
    CAPTURE_ONE(o, log_warnx("plain"));
    assert_int_equal(errno, EACCES);
    assert_string_equal(s_get(&o, "msg"), "plain");
    s_obj_free(&o);
}

static void test_truncation(void **state)
{
    (void)state;
    /* A long message, and one whose escaping expands sixfold: both cut to a valid line. */
    size_t n = 20000;
    char *big = malloc(n + 1);
    assert_non_null(big);
    for (int round = 0; round < 2; round++) {
        memset(big, round == 0 ? 'x' : '\x01', n);
        big[n] = '\0';
        t_obj_t o;
        s_capture_start();
        log_info("%s", big);
        size_t len;
        char *buf = s_capture_end(&len);
        assert_true(len <= 8192);
        assert_true(len > 2000);
        t_obj_t *objs;
        assert_int_equal(s_parse_all(buf, &objs), 1);
        o = objs[0];
        free(objs);
        free(buf);
        const char *msg = s_get(&o, "msg");
        size_t ml = strlen(msg);
        assert_true(ml > 14);
        assert_string_equal(msg + ml - 14, "...(truncated)");
        assert_true(msg[0] == (round == 0 ? 'x' : '\x01'));
        s_obj_free(&o);
    }
    /* Cut inside a multi-byte character: the line must still be valid UTF-8. */
    for (size_t i = 0; i + 4 <= n; i += 4)
        memcpy(big + i, "\xf0\x9f\x98\x80", 4);
    big[n] = '\0';
    s_capture_start();
    log_info("%s", big);
    char *buf = s_capture_end(NULL);
    assert_int_equal(s_parse_all(buf, NULL), 1);
    free(buf);
    /* Hostile field values cannot push the message out. */
    memset(big, '"', 300);
    big[300] = '\0';
    dy_log_set_field(big, big);
    dy_log_ctx_t ctx = {.computation = big, .stage = big, .attempt = -1};
    t_obj_t o;
    CAPTURE_ONE(o, log_info_c(&ctx, "still here"));
    assert_string_equal(s_get(&o, "msg"), "still here");
    assert_string_equal(s_get(&o, "attempt"), "-1");
    s_obj_free(&o);
    dy_log_set_field(big, NULL);
    free(big);
}

/* Runs fn in a child with stderr captured; returns its exit status and its one line. */
static int s_run_fatal(void (*fn)(void), t_obj_t *ret_obj)
{
    s_capture_start();
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        fn();
        _exit(0); /* not reached: fn does not return */
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    char *buf = s_capture_end(NULL);
    t_obj_t *objs;
    assert_int_equal(s_parse_all(buf, &objs), 1);
    *ret_obj = objs[0];
    free(objs);
    free(buf);
    assert_true(WIFEXITED(status));
    return WEXITSTATUS(status);
}

static void s_call_fatal(void)
{
    errno = EPIPE;
    fatal("lost %s", "peer");
}

static void s_call_fatalx(void)
{
    fatalx("invariant %d", 7);
}

static void s_call_fatal_config(void)
{
    fatal_config("duchy.yaml:3: workers: value 0 out of range [1, 64]");
}

static void test_fatal(void **state)
{
    (void)state;
    t_obj_t o;
    assert_int_equal(s_run_fatal(s_call_fatal, &o), DY_EXIT_TEMPORARY);
    assert_int_equal(DY_EXIT_TEMPORARY, 111);
    assert_string_equal(s_get(&o, "level"), "fatal");
    assert_string_equal(s_get(&o, "msg"), "lost peer: Broken pipe");
    s_obj_free(&o);

    assert_int_equal(s_run_fatal(s_call_fatalx, &o), 111);
    assert_string_equal(s_get(&o, "msg"), "invariant 7");
    s_obj_free(&o);

    assert_int_equal(s_run_fatal(s_call_fatal_config, &o), DY_EXIT_PERMANENT);
    assert_int_equal(DY_EXIT_PERMANENT, 100);
    assert_string_equal(s_get(&o, "level"), "fatal");
    assert_string_equal(s_get(&o, "msg"), "duchy.yaml:3: workers: value 0 out of range [1, 64]");
    s_obj_free(&o);
}

#define T_THREADS 8
#define T_LINES 400

static void *s_thread(void *arg)
{
    int id = (int)(intptr_t)arg;
    char pad[1500]; /* lines of ~1.6 KB: under PIPE_BUF, far over stdio's chunking */
    memset(pad, 'a' + id, sizeof(pad) - 1);
    pad[sizeof(pad) - 1] = '\0';
    for (int i = 0; i < T_LINES; i++) {
        dy_log_ctx_t ctx = {.computation = "threads", .attempt = id + 1};
        log_info_c(&ctx, "%d %s", i, pad);
    }
    return NULL;
}

static void test_threads(void **state)
{
    (void)state;
    pthread_t th[T_THREADS];
    s_capture_start();
    for (int t = 0; t < T_THREADS; t++)
        assert_int_equal(pthread_create(&th[t], NULL, s_thread, (void *)(intptr_t)t), 0);
    for (int t = 0; t < T_THREADS; t++)
        pthread_join(th[t], NULL);
    char *buf = s_capture_end(NULL);
    t_obj_t *objs;
    size_t n = s_parse_all(buf, &objs);
    assert_int_equal(n, T_THREADS * T_LINES);
    int next[T_THREADS] = {0};
    for (size_t i = 0; i < n; i++) {
        int id = atoi(s_get(&objs[i], "attempt")) - 1;
        assert_true(id >= 0 && id < T_THREADS);
        const char *msg = s_get(&objs[i], "msg");
        char *sp;
        long seq = strtol(msg, &sp, 10);
        assert_int_equal(seq, next[id]); /* each thread's lines in its own order */
        next[id]++;
        assert_int_equal(strlen(sp + 1), 1499);
        assert_true(sp[1] == 'a' + id && sp[1499] == 'a' + id);
        s_obj_free(&objs[i]);
    }
    free(objs);
    free(buf);
}

/* Cross-check: python's json module reads every kind of line this file produces. */
static void test_python_json(void **state)
{
    (void)state;
    if (system("command -v python3 >/dev/null 2>&1") != 0)
        skip();
    char path[] = "/tmp/test_log_py_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    s_capture_start();
    log_info("nasty \"\\\n\t\x01\x7f\xff\xe2\x80\xa8 caf\xc3\xa9 \xf0\x9f\x98\x80");
    dy_log_ctx_t ctx = {.computation = "c\x1f", .stage = "S", .attempt = 2};
    log_warnx_c(&ctx, "w");
    dy_log_set_field("f\"", "v\\");
    log_info("x");
    dy_log_set_field("f\"", NULL);
    char *big = malloc(10001);
    assert_non_null(big);
    memset(big, '\x02', 10000);
    big[10000] = '\0';
    log_info("%s", big);
    free(big);
    size_t len;
    char *buf = s_capture_end(&len);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(buf, 1, len, f), len);
    fclose(f);
    free(buf);
    char cmd[1024];
    snprintf(cmd, sizeof(cmd),
             "python3 -c 'import json,sys\n"
             "ls=open(sys.argv[1],\"rb\").read().decode(\"utf-8\").split(\"\\n\")\n"
             "assert ls[-1]==\"\" and len(ls)==5\n"
             "o=[json.loads(l) for l in ls[:-1]]\n"
             "assert o[0][\"msg\"].startswith(\"nasty \\\"\\\\\\n\\t\\x01\\x7f\\ufffd\\u2028\")\n"
             "assert o[1][\"computation\"]==\"c\\x1f\" and o[1][\"attempt\"]==2\n"
             "assert o[2][\"f\\\"\"]==\"v\\\\\"\n' %s",
             path);
    int rc = system(cmd);
    unlink(path);
    assert_int_equal(rc, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fields),
        cmocka_unit_test(test_escaping),
        cmocka_unit_test(test_context),
        cmocka_unit_test(test_extra_fields),
        cmocka_unit_test(test_debug_gating),
        cmocka_unit_test(test_warn_errno),
        cmocka_unit_test(test_truncation),
        cmocka_unit_test(test_fatal),
        cmocka_unit_test(test_threads),
        cmocka_unit_test(test_python_json),
    };
    return cmocka_run_group_tests(tests, s_setup, NULL);
}
