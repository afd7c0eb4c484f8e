/* config.c - the YAML configuration loader of config.h (STYLE.md rules 26-27).
 *
 * Loading runs in two passes.  First libyaml's event API builds a small
 * node tree (scalars, mappings, sequences, each with its line); this pass
 * enforces the safety limits, so hostile input cannot make it large:
 *   - the document is at most DY_CONFIG_MAX_BYTES (1 MiB);
 *   - anchors and aliases are refused outright (no billion laughs, no
 *     merge keys), as are tags and a second document in the stream;
 *   - nesting is at most S_MAX_DEPTH levels and the tree at most
 *     S_MAX_NODES nodes.
 * Then the tree is walked against the key table: dotted paths ("tls.cert")
 * are nested mappings, every key is checked (unknown, duplicate, wrong
 * type, out of range, bad enum value, list length) and converted into the
 * caller's struct.  A key the document does not set takes its default,
 * which is YAML text in the table and goes through the same two passes.
 *
 * Value syntax (also what dy_config_print writes):
 *   BOOL      true/false/yes/no/on/off in any letter case; unquoted.
 *   INT       optional sign and decimal digits; unquoted.
 *   DOUBLE    a finite strtod number ("0.5", "1e-9"); unquoted.
 *   DURATION  a non-negative integer count with unit ms, s, m, h or d;
 *             a bare integer is milliseconds.  Fractions ("1.5s") are
 *             refused: write "1500ms".  Printed in the largest unit that
 *             holds the value exactly ("90s", "2h", "0ms").
 *   SIZE      a non-negative integer count with unit B, KiB, MiB, GiB or
 *             TiB (powers of 1024); a bare integer is bytes.  Fractions
 *             ("1.5MiB") and decimal or ambiguous units ("MB", "k") are
 *             refused, so every accepted text names an exact byte count:
 *             write "1536KiB".  Printed like durations ("4MiB", "100B").
 *   ENDPOINT  host:port, port 0-65535; host is a DNS name or IPv4 address
 *             (letters, digits, '-', '_', '.', no empty label), "*", or
 *             an IPv6 address in brackets ("[::1]:443").
 *   ENUM      one of the choices, exactly.
 *   STRING    any scalar (plain scalars are taken as text, so `7` is
 *             "7"); a null scalar (empty, ~, null) is refused and so is a
 *             NUL byte.  Printed double-quoted.
 *   LIST      a sequence of mappings, each checked against the sub table;
 *             lists inside list items are not supported.
 *
 * Errors read "name:line: key: reason"; errors that concern no key (YAML
 * syntax, size, aliases, a root that is not a mapping) read
 * "name:line: reason".  Lines count from 1; a missing key is reported at
 * the line of the mapping that lacks it (line 1 for the document).  An
 * error in the key table itself (a programmer's error: a list inside a
 * list item, an enum without choices) reads "name:0: key: reason", and an
 * error in a default's text names "<default of key>" as the file.
 *
 * Nothing here logs (STYLE.md rule 23): every failure goes to errbuf.
 */
#include "config.h"

#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml.h>

#define S_MAX_DEPTH 32
#define S_MAX_NODES 100000

typedef enum { S_SCALAR, S_MAP, S_SEQ } s_kind_t;

/* One node of the parsed document. */
typedef struct s_node s_node_t;
struct s_node {
    s_kind_t kind;
    size_t line;     /* 1-based */
    char *text;      /* S_SCALAR: owned, NUL-terminated (may hold NULs: see len) */
    size_t len;      /* S_SCALAR: bytes in text */
    bool plain;      /* S_SCALAR: unquoted */
    s_node_t **kids; /* S_MAP: key, value, key, value...; S_SEQ: items; owned */
    size_t nkids, capkids;
};

/* The state of one load. */
typedef struct {
    const char *name; /* file name for messages; borrowed */
    char *errbuf;     /* borrowed */
    size_t errlen;
    bool failed;      /* an error is recorded; the first one wins */
} s_ctx_t;

static int s_fail(s_ctx_t *c, size_t line, const char *key, const char *fmt, ...)
    DY_PRINTF(4, 5);

/* Records "name:line: key: reason" (key may be NULL) and returns -EINVAL. */
static int s_fail(s_ctx_t *c, size_t line, const char *key, const char *fmt, ...)
{
    if (c->failed)
        return -EINVAL;
    c->failed = true;
    if (c->errbuf == NULL || c->errlen == 0)
        return -EINVAL;
    int n = key ? snprintf(c->errbuf, c->errlen, "%s:%zu: %s: ", c->name, line, key)
                : snprintf(c->errbuf, c->errlen, "%s:%zu: ", c->name, line);
    if (n >= 0 && (size_t)n < c->errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(c->errbuf + n, c->errlen - (size_t)n, fmt, ap);
        va_end(ap);
    }
    return -EINVAL;
}

/* ---- pass 1: events to tree -------------------------------------------------------------- */

static void s_node_free(s_node_t *n)
{
    if (n == NULL)
        return;
    for (size_t i = 0; i < n->nkids; i++)
        s_node_free(n->kids[i]);
    free(n->kids);
    free(n->text);
    free(n);
}

static int s_node_add(s_node_t *parent, s_node_t *kid)
{
    if (parent->nkids == parent->capkids) {
        size_t ncap = parent->capkids ? parent->capkids * 2 : 8;
        s_node_t **p = realloc(parent->kids, ncap * sizeof(*p));
        if (p == NULL)
            return -ENOMEM;
        parent->kids = p;
        parent->capkids = ncap;
    }
    parent->kids[parent->nkids++] = kid;
    return 0;
}

/* Parses len bytes of YAML into *ret_root (NULL for an empty document).
 * 0, -EINVAL (message recorded) or -ENOMEM. */
static int s_parse(s_ctx_t *c, const char *data, size_t len, s_node_t **ret_root)
{
    if (len > DY_CONFIG_MAX_BYTES)
        return s_fail(c, 1, NULL, "document is %zu bytes, larger than the limit of %d bytes",
                      len, DY_CONFIG_MAX_BYTES);
    yaml_parser_t parser;
    if (!yaml_parser_initialize(&parser))
        return -ENOMEM;
    yaml_parser_set_input_string(&parser, (const unsigned char *)data, len);

    s_node_t *root = NULL;
    s_node_t *stack[S_MAX_DEPTH];
    size_t depth = 0, nnodes = 0, ndocs = 0;
    int rc = 0;
    bool done = false;
    while (!done && rc == 0) {
        yaml_event_t ev;
        if (!yaml_parser_parse(&parser, &ev)) {
            if (parser.error == YAML_MEMORY_ERROR) {
                rc = -ENOMEM;
            } else {
                size_t line = parser.problem_mark.line + 1;
                if (parser.context)
                    rc = s_fail(c, line, NULL, "YAML syntax error: %s %s", parser.problem,
                                parser.context);
                else
                    rc = s_fail(c, line, NULL, "YAML syntax error: %s",
                                parser.problem ? parser.problem : "unknown");
            }
            break;
        }
        size_t line = ev.start_mark.line + 1;
        const yaml_char_t *anchor = NULL, *tag = NULL;
        s_node_t *node = NULL;
        switch (ev.type) {
        case YAML_STREAM_END_EVENT:
            done = true;
            break;
        case YAML_DOCUMENT_START_EVENT:
            if (++ndocs > 1)
                rc = s_fail(c, line, NULL, "only one YAML document is allowed");
            break;
        case YAML_ALIAS_EVENT:
            rc = s_fail(c, line, NULL, "anchors and aliases are not supported");
            break;
        case YAML_SCALAR_EVENT:
        case YAML_SEQUENCE_START_EVENT:
        case YAML_MAPPING_START_EVENT:
            if (ev.type == YAML_SCALAR_EVENT) {
                anchor = ev.data.scalar.anchor;
                tag = ev.data.scalar.tag;
            } else if (ev.type == YAML_SEQUENCE_START_EVENT) {
                anchor = ev.data.sequence_start.anchor;
                tag = ev.data.sequence_start.tag;
            } else {
                anchor = ev.data.mapping_start.anchor;
                tag = ev.data.mapping_start.tag;
            }
            if (anchor) {
                rc = s_fail(c, line, NULL, "anchors and aliases are not supported");
                break;
            }
            if (tag) {
                rc = s_fail(c, line, NULL, "YAML tags are not supported");
                break;
            }
            if (++nnodes > S_MAX_NODES) {
                rc = s_fail(c, line, NULL, "document has more than %d nodes", S_MAX_NODES);
                break;
            }
            node = calloc(1, sizeof(*node));
            if (node == NULL) {
                rc = -ENOMEM;
                break;
            }
            node->line = line;
            if (ev.type == YAML_SCALAR_EVENT) {
                node->kind = S_SCALAR;
                node->len = ev.data.scalar.length;
                node->text = malloc(node->len + 1);
                if (node->text == NULL) {
                    free(node);
                    rc = -ENOMEM;
                    break;
                }
                memcpy(node->text, ev.data.scalar.value, node->len);
                node->text[node->len] = '\0';
                node->plain = ev.data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
            } else {
                node->kind = ev.type == YAML_SEQUENCE_START_EVENT ? S_SEQ : S_MAP;
            }
            if (depth == 0) {
                /* libyaml gives one root per document and we allow one document. */
                root = node;
            } else if (s_node_add(stack[depth - 1], node) < 0) {
                s_node_free(node);
                rc = -ENOMEM;
                break;
            }
            if (node->kind != S_SCALAR) {
                if (depth == S_MAX_DEPTH) {
                    rc = s_fail(c, line, NULL, "nesting deeper than %d levels", S_MAX_DEPTH);
                    break;
                }
                stack[depth++] = node;
            }
            break;
        case YAML_SEQUENCE_END_EVENT:
        case YAML_MAPPING_END_EVENT:
            if (depth > 0)
                depth--;
            break;
        default:
            break;
        }
        yaml_event_delete(&ev);
    }
    yaml_parser_delete(&parser);
    if (rc < 0) {
        s_node_free(root);
        return rc;
    }
    *ret_root = root;
    return 0;
}

/* ---- value syntax ------------------------------------------------------------------------ */

static bool s_is_null(const s_node_t *n)
{
    if (n->kind != S_SCALAR || !n->plain)
        return false;
    return n->len == 0 || strcmp(n->text, "~") == 0 || strcmp(n->text, "null") == 0 ||
           strcmp(n->text, "Null") == 0 || strcmp(n->text, "NULL") == 0;
}

static const char *s_kind_name(const s_node_t *n)
{
    if (n->kind == S_MAP)
        return "a mapping";
    if (n->kind == S_SEQ)
        return "a sequence";
    if (s_is_null(n))
        return "null";
    return n->plain ? "a scalar" : "a quoted string";
}

/* Parses a non-negative decimal integer prefix of s into *ret; returns the
 * number of digits, 0 if none, or -1 on overflow. */
static int s_parse_count(const char *s, uint64_t *ret)
{
    uint64_t v = 0;
    int i = 0;
    for (; s[i] >= '0' && s[i] <= '9'; i++) {
        unsigned d = (unsigned)(s[i] - '0');
        if (v > (UINT64_MAX - d) / 10)
            return -1;
        v = v * 10 + d;
        if (i > 40)
            return -1;
    }
    *ret = v;
    return i;
}

/* A unit suffix and what it multiplies by.  Tables run from the largest unit down, so the
 * first unit that holds a value exactly is the one it prints in. */
typedef struct {
    const char *unit;
    uint64_t mult;
} s_unit_t;

static const s_unit_t s_duration_units[] = {
    {"d", 86400000}, {"h", 3600000}, {"m", 60000}, {"s", 1000}, {"ms", 1},
};

static const s_unit_t s_size_units[] = {
    {"TiB", 1ULL << 40}, {"GiB", 1ULL << 30}, {"MiB", 1ULL << 20}, {"KiB", 1ULL << 10},
    {"B", 1},
};

/* Parses "<count>[<unit>]" (no unit = 1) with units (nunits entries) into *ret, which must
 * not exceed max: 0, -EINVAL (bad syntax) or -ERANGE.  *ret is untouched on failure. */
static int s_parse_units(const char *s, const s_unit_t *units, size_t nunits, uint64_t max,
                         uint64_t *ret)
{
    uint64_t v;
    int nd = s_parse_count(s, &v);
    if (nd < 0)
        return -ERANGE;
    if (nd == 0)
        return -EINVAL;
    const char *unit = s + nd;
    uint64_t mult = 0;
    if (*unit == '\0')
        mult = 1;
    for (size_t i = 0; i < nunits && mult == 0; i++)
        if (strcmp(unit, units[i].unit) == 0)
            mult = units[i].mult;
    if (mult == 0)
        return -EINVAL;
    if (v > max / mult)
        return -ERANGE;
    *ret = v * mult;
    return 0;
}

/* Parses a duration into milliseconds: 0, -EINVAL (bad syntax) or -ERANGE. */
int dy_config_parse_duration(const char *s, int64_t *ret_ms)
{
    uint64_t v;
    int rc = s_parse_units(s, s_duration_units, DY_ARRAY_LEN(s_duration_units),
                           (uint64_t)INT64_MAX, &v);
    if (rc == 0)
        *ret_ms = (int64_t)v;
    return rc;
}

/* Parses a size into bytes: 0, -EINVAL (bad syntax) or -ERANGE. */
int dy_config_parse_size(const char *s, uint64_t *ret_bytes)
{
    return s_parse_units(s, s_size_units, DY_ARRAY_LEN(s_size_units), UINT64_MAX, ret_bytes);
}

/* Formats v in the largest unit of units that holds it exactly (0 in the unit of 1). */
static void s_fmt_units(uint64_t v, const s_unit_t *units, size_t nunits, char *out,
                        size_t outlen)
{
    for (size_t i = 0; i < nunits; i++) {
        uint64_t m = units[i].mult;
        if (v == 0 ? m == 1 : v % m == 0) {
            snprintf(out, outlen, "%" PRIu64 "%s", v / m, units[i].unit);
            return;
        }
    }
}

/* Formats ms in the largest unit that holds it exactly. */
static void s_fmt_duration(int64_t ms, char *out, size_t outlen)
{
    if (ms < 0) {
        snprintf(out, outlen, "%" PRId64 "ms", ms);
        return;
    }
    s_fmt_units((uint64_t)ms, s_duration_units, DY_ARRAY_LEN(s_duration_units), out, outlen);
}

static void s_fmt_size(uint64_t b, char *out, size_t outlen)
{
    s_fmt_units(b, s_size_units, DY_ARRAY_LEN(s_size_units), out, outlen);
}

/* Shortest decimal text that strtod reads back to exactly d. */
static void s_fmt_double(double d, char *out, size_t outlen)
{
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(out, outlen, "%.*g", prec, d);
        if (strtod(out, NULL) == d)
            break;
    }
    /* %g chose an exponent for a whole number ("1e+01"): 10.0 reads better. */
    if (strstr(out, "e+") != NULL && fabs(d) < 1e16)
        snprintf(out, outlen, "%.1f", d);
    if (isfinite(d) && strpbrk(out, ".e") == NULL && strlen(out) + 3 <= outlen)
        strcat(out, ".0");
}

static bool s_is_host_char(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           ch == '-' || ch == '_' || ch == '.';
}

/* Checks host:port; 0 or -EINVAL with *why set. */
int dy_config_check_endpoint(const char *s, const char **ret_why)
{
    const char *colon = strrchr(s, ':');
    *ret_why = "expected host:port";
    if (colon == NULL || colon == s)
        return -EINVAL;
    const char *port = colon + 1;
    uint64_t p;
    int nd = s_parse_count(port, &p);
    if (nd <= 0 || port[nd] != '\0' || nd > 5 || p > 65535) {
        *ret_why = "port must be a number from 0 to 65535";
        return -EINVAL;
    }
    size_t hlen = (size_t)(colon - s);
    if (s[0] == '[') {
        if (hlen < 3 || s[hlen - 1] != ']') {
            *ret_why = "bad bracketed IPv6 address";
            return -EINVAL;
        }
        bool has_colon = false;
        for (size_t i = 1; i < hlen - 1; i++) {
            char ch = s[i];
            if (ch == ':')
                has_colon = true;
            else if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f') ||
                       (ch >= 'A' && ch <= 'F') || ch == '.')) {
                *ret_why = "bad bracketed IPv6 address";
                return -EINVAL;
            }
        }
        if (!has_colon) {
            *ret_why = "bad bracketed IPv6 address";
            return -EINVAL;
        }
        return 0;
    }
    if (hlen == 1 && s[0] == '*')
        return 0;
    if (hlen > 253) {
        *ret_why = "host name longer than 253 characters";
        return -EINVAL;
    }
    size_t label = 0;
    for (size_t i = 0; i < hlen; i++) {
        char ch = s[i];
        if (!s_is_host_char(ch)) {
            *ret_why = "bad character in host (an IPv6 address needs brackets)";
            return -EINVAL;
        }
        if (ch == '.') {
            if (label == 0) {
                *ret_why = "empty label in host name";
                return -EINVAL;
            }
            label = 0;
        } else if (++label > 63) {
            *ret_why = "host name label longer than 63 characters";
            return -EINVAL;
        }
    }
    /* label == 0 here means a trailing dot after a non-empty label: an FQDN. */
    return 0;
}

/* ---- pass 2: tree to struct -------------------------------------------------------------- */

static bool s_bounded(const dy_cfg_key_t *k)
{
    return k->min != k->max;
}

/* Formats a bound of key k for messages, in the key's own units. */
static void s_fmt_bound(const dy_cfg_key_t *k, double b, char *out, size_t outlen)
{
    if (k->type == DY_CFG_DURATION && b >= 0 && b < 9.2e18)
        s_fmt_duration((int64_t)b, out, outlen);
    else if (k->type == DY_CFG_SIZE && b >= 0 && b < 1.8e19)
        s_fmt_size((uint64_t)b, out, outlen);
    else if (k->type == DY_CFG_DOUBLE)
        s_fmt_double(b, out, outlen);
    else
        snprintf(out, outlen, "%.0f", b);
}

static int s_range_fail(s_ctx_t *c, const s_node_t *v, const char *key, const dy_cfg_key_t *k)
{
    char lo[64], hi[64];
    if (!s_bounded(k))
        return s_fail(c, v->line, key, "value %s out of range", v->text);
    s_fmt_bound(k, k->min, lo, sizeof(lo));
    s_fmt_bound(k, k->max, hi, sizeof(hi));
    return s_fail(c, v->line, key, "value %s out of range [%s, %s]", v->text, lo, hi);
}

static bool s_strieq(const char *a, const char *b)
{
    return strcasecmp(a, b) == 0;
}

static int s_load_items(s_ctx_t *c, const dy_cfg_key_t *k, const s_node_t *v, const char *key,
                        void *out);
static void s_free_list(const dy_cfg_key_t *k, void *cfg);

/* Converts the value node v of key k (display path `key`) into out. */
static int s_convert(s_ctx_t *c, const dy_cfg_key_t *k, const s_node_t *v, const char *key,
                     void *out)
{
    char *field = (char *)out + k->offset;
    if (k->type == DY_CFG_LIST)
        return s_load_items(c, k, v, key, out);
    if (v->kind != S_SCALAR)
        return s_fail(c, v->line, key, "expected a scalar, got %s", s_kind_name(v));
    if (strlen(v->text) != v->len)
        return s_fail(c, v->line, key, "value contains a NUL byte");

    switch (k->type) {
    case DY_CFG_STRING:
    case DY_CFG_ENDPOINT: {
        if (s_is_null(v))
            return s_fail(c, v->line, key, "expected a %s, got null (write \"\" for empty)",
                          k->type == DY_CFG_STRING ? "string" : "host:port endpoint");
        if (k->type == DY_CFG_ENDPOINT) {
            const char *why;
            if (dy_config_check_endpoint(v->text, &why) < 0)
                return s_fail(c, v->line, key, "bad endpoint \"%s\": %s", v->text, why);
        }
        char *s = strdup(v->text);
        if (s == NULL)
            return -ENOMEM;
        char **slot = (char **)(void *)field;
        free(*slot);
        *slot = s;
        return 0;
    }
    case DY_CFG_INT: {
        if (!v->plain)
            return s_fail(c, v->line, key, "expected an integer, got a quoted string");
        const char *t = v->text;
        const char *digits = (*t == '-' || *t == '+') ? t + 1 : t;
        uint64_t mag;
        int nd = s_parse_count(digits, &mag);
        if (nd == 0 || (nd > 0 && digits[nd] != '\0'))
            return s_fail(c, v->line, key, "expected an integer, got \"%s\"", t);
        int64_t val;
        if (nd < 0 || mag > (uint64_t)INT64_MAX + (*t == '-'))
            return s_range_fail(c, v, key, k);
        if (*t == '-')
            val = mag == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)mag;
        else
            val = (int64_t)mag;
        if (s_bounded(k) && ((double)val < k->min || (double)val > k->max))
            return s_range_fail(c, v, key, k);
        memcpy(field, &val, sizeof(val));
        return 0;
    }
    case DY_CFG_DOUBLE: {
        if (!v->plain)
            return s_fail(c, v->line, key, "expected a number, got a quoted string");
        char *end;
        errno = 0;
        double d = strtod(v->text, &end);
        /* strtod also reads hex floats, "inf" and "nan"; YAML configs should not. */
        bool ok = end != v->text && *end == '\0' && strpbrk(v->text, "xXiInN") == NULL;
        if (!ok)
            return s_fail(c, v->line, key, "expected a number, got \"%s\"", v->text);
        if (!isfinite(d) || (s_bounded(k) && (d < k->min || d > k->max)))
            return s_range_fail(c, v, key, k);
        memcpy(field, &d, sizeof(d));
        return 0;
    }
    case DY_CFG_BOOL: {
        bool b;
        if (v->plain && (s_strieq(v->text, "true") || s_strieq(v->text, "yes") ||
                         s_strieq(v->text, "on")))
            b = true;
        else if (v->plain && (s_strieq(v->text, "false") || s_strieq(v->text, "no") ||
                              s_strieq(v->text, "off")))
            b = false;
        else
            return s_fail(c, v->line, key, "expected a boolean (true/false/yes/no/on/off), "
                                           "got \"%s\"", v->text);
        memcpy(field, &b, sizeof(b));
        return 0;
    }
    case DY_CFG_DURATION: {
        int64_t ms;
        int rc = dy_config_parse_duration(v->text, &ms);
        if (rc == -EINVAL)
            return s_fail(c, v->line, key, "expected a duration (e.g. 250ms, 5s, 10m, 1h, 1d; "
                                           "a bare number is ms), got \"%s\"", v->text);
        if (rc < 0 || (s_bounded(k) && ((double)ms < k->min || (double)ms > k->max)))
            return s_range_fail(c, v, key, k);
        memcpy(field, &ms, sizeof(ms));
        return 0;
    }
    case DY_CFG_SIZE: {
        uint64_t b;
        int rc = dy_config_parse_size(v->text, &b);
        if (rc == -EINVAL)
            return s_fail(c, v->line, key, "expected a size (e.g. 512B, 64KiB, 4MiB, 1GiB, "
                                           "1TiB; a bare number is bytes), got \"%s\"", v->text);
        if (rc < 0 || (s_bounded(k) && ((double)b < k->min || (double)b > k->max)))
            return s_range_fail(c, v, key, k);
        memcpy(field, &b, sizeof(b));
        return 0;
    }
    case DY_CFG_ENUM: {
        for (int i = 0; k->choices[i] != NULL; i++) {
            if (strcmp(k->choices[i], v->text) == 0) {
                memcpy(field, &i, sizeof(i));
                return 0;
            }
        }
        char list[512];
        size_t off = 0;
        list[0] = '\0';
        for (int i = 0; k->choices[i] != NULL && off < sizeof(list); i++) {
            int n = snprintf(list + off, sizeof(list) - off, "%s%s", i ? ", " : "",
                             k->choices[i]);
            if (n < 0)
                break;
            off += (size_t)n;
        }
        return s_fail(c, v->line, key, "bad value \"%s\" (choices: %s)", v->text, list);
    }
    case DY_CFG_LIST:
        break;
    }
    return s_fail(c, v->line, key, "key has an unknown type %d", (int)k->type);
}

/* Walks mapping `map`, whose keys are relative to table prefix `prefix`,
 * recording each table key's value node in vals[] (and the line of its key
 * in lines[]).  dispprefix is prepended to paths in messages. */
static int s_walk(s_ctx_t *c, const s_node_t *map, const char *prefix, const char *dispprefix,
                  const dy_cfg_key_t *keys, size_t nkeys, const s_node_t **vals)
{
    char rel[512], disp[1024];
    for (size_t i = 0; i + 1 < map->nkids; i += 2) {
        const s_node_t *kn = map->kids[i], *vn = map->kids[i + 1];
        if (kn->kind != S_SCALAR) {
            snprintf(disp, sizeof(disp), "%s%s", dispprefix, prefix);
            size_t dl = strlen(disp);
            if (dl > 0 && disp[dl - 1] == '.')
                disp[dl - 1] = '\0';
            return s_fail(c, kn->line, dl > 0 ? disp : NULL,
                          "mapping keys must be scalars, got %s", s_kind_name(kn));
        }
        snprintf(disp, sizeof(disp), "%s%s%s", dispprefix, prefix, kn->text);
        int n = snprintf(rel, sizeof(rel), "%s%s", prefix, kn->text);
        bool bad = n < 0 || (size_t)n >= sizeof(rel) || strlen(kn->text) != kn->len ||
                   kn->len == 0 || strchr(kn->text, '.') != NULL;
        for (size_t j = 0; j < i && !bad; j += 2)
            if (strcmp(map->kids[j]->text, kn->text) == 0)
                return s_fail(c, kn->line, disp, "duplicate key (first set on line %zu)",
                              map->kids[j]->line);
        size_t exact = nkeys;
        bool group = false;
        size_t rlen = bad ? 0 : (size_t)n;
        for (size_t j = 0; j < nkeys && !bad; j++) {
            if (strcmp(keys[j].path, rel) == 0)
                exact = j;
            else if (strncmp(keys[j].path, rel, rlen) == 0 && keys[j].path[rlen] == '.')
                group = true;
        }
        if (exact < nkeys) {
            vals[exact] = vn;
        } else if (group) {
            if (s_is_null(vn))
                continue;
            if (vn->kind != S_MAP)
                return s_fail(c, vn->line, disp, "expected a mapping, got %s", s_kind_name(vn));
            char sub[sizeof(rel) + 2];
            snprintf(sub, sizeof(sub), "%s.", rel);
            int rc = s_walk(c, vn, sub, dispprefix, keys, nkeys, vals);
            if (rc < 0)
                return rc;
        } else {
            return s_fail(c, kn->line, disp, "unknown key");
        }
    }
    return 0;
}

static int s_load_default(s_ctx_t *c, const dy_cfg_key_t *k, const char *key, void *out);

/* Loads the mapping `map` (NULL = empty) against a table; `line` is used
 * for missing keys; dispprefix as for s_walk. */
static int s_load_map(s_ctx_t *c, const s_node_t *map, size_t line, const char *dispprefix,
                      const dy_cfg_key_t *keys, size_t nkeys, void *out)
{
    const s_node_t **vals = calloc(nkeys ? nkeys : 1, sizeof(*vals));
    if (vals == NULL)
        return -ENOMEM;
    int rc = map ? s_walk(c, map, "", dispprefix, keys, nkeys, vals) : 0;
    for (size_t i = 0; i < nkeys && rc == 0; i++) {
        char disp[1024];
        snprintf(disp, sizeof(disp), "%s%s", dispprefix, keys[i].path);
        if (vals[i] != NULL)
            rc = s_convert(c, &keys[i], vals[i], disp, out);
        else if (keys[i].def != NULL)
            rc = s_load_default(c, &keys[i], disp, out);
        else
            rc = s_fail(c, line, disp, "missing required key");
    }
    free(vals);
    return rc;
}

static int s_load_items(s_ctx_t *c, const dy_cfg_key_t *k, const s_node_t *v, const char *key,
                        void *out)
{
    void **slot = (void **)(void *)((char *)out + k->offset);
    size_t *count = (size_t *)(void *)((char *)out + k->count_offset);
    size_t n = 0;
    if (!s_is_null(v)) {
        if (v->kind != S_SEQ)
            return s_fail(c, v->line, key, "expected a sequence, got %s", s_kind_name(v));
        n = v->nkids;
    }
    if (n < k->min_items || (k->max_items != 0 && n > k->max_items)) {
        if (k->max_items != 0)
            return s_fail(c, v->line, key, "list has %zu items, expected %zu to %zu", n,
                          k->min_items, k->max_items);
        return s_fail(c, v->line, key, "list has %zu items, expected at least %zu", n,
                      k->min_items);
    }
    void *items = NULL;
    if (n > 0) {
        items = calloc(n, k->item_size);
        if (items == NULL)
            return -ENOMEM;
    }
    /* Store first, so dy_config_free finds half-built items after an error. */
    s_free_list(k, out);
    *slot = items;
    *count = n;
    for (size_t i = 0; i < n; i++) {
        const s_node_t *item = v->kids[i];
        char disp[1024];
        snprintf(disp, sizeof(disp), "%s[%zu]", key, i);
        if (item->kind != S_MAP)
            return s_fail(c, item->line, disp, "expected a mapping, got %s", s_kind_name(item));
        snprintf(disp, sizeof(disp), "%s[%zu].", key, i);
        int rc = s_load_map(c, item, item->line, disp, k->sub, k->nsub,
                            (char *)items + i * k->item_size);
        if (rc < 0)
            return rc;
    }
    return 0;
}

static int s_load_default(s_ctx_t *c, const dy_cfg_key_t *k, const char *key, void *out)
{
    char name[1100];
    snprintf(name, sizeof(name), "<default of %s>", key);
    s_ctx_t dc = {.name = name, .errbuf = c->errbuf, .errlen = c->errlen, .failed = c->failed};
    int rc;
    if (k->type == DY_CFG_STRING && k->def[0] == '\0') {
        /* An empty string default: YAML would read "" as an empty document. */
        s_node_t empty = {.kind = S_SCALAR, .line = 1, .text = (char *)"", .len = 0};
        rc = s_convert(&dc, k, &empty, key, out);
    } else {
        s_node_t *root = NULL;
        rc = s_parse(&dc, k->def, strlen(k->def), &root);
        if (rc == 0 && root == NULL && k->type == DY_CFG_LIST) {
            s_node_t empty = {.kind = S_SEQ, .line = 1};
            rc = s_convert(&dc, k, &empty, key, out);
        } else if (rc == 0 && root == NULL) {
            rc = s_fail(&dc, 1, key, "empty default");
        } else if (rc == 0) {
            rc = s_convert(&dc, k, root, key, out);
        }
        s_node_free(root);
    }
    c->failed = dc.failed;
    return rc;
}

/* Checks the table itself (programmer errors, reported like input errors). */
static int s_check_table(s_ctx_t *c, const dy_cfg_key_t *keys, size_t nkeys, bool in_list)
{
    for (size_t i = 0; i < nkeys; i++) {
        const dy_cfg_key_t *k = &keys[i];
        if (k->path == NULL || k->path[0] == '\0')
            return s_fail(c, 0, NULL, "key table entry %zu has no path", i);
        if (k->type == DY_CFG_ENUM && k->choices == NULL)
            return s_fail(c, 0, k->path, "enum key has no choices");
        if (k->type == DY_CFG_LIST) {
            if (in_list)
                return s_fail(c, 0, k->path, "lists inside list items are not supported");
            if (k->sub == NULL || k->item_size == 0)
                return s_fail(c, 0, k->path, "list key has no item table");
            int rc = s_check_table(c, k->sub, k->nsub, true);
            if (rc < 0)
                return rc;
        }
    }
    return 0;
}

static int s_load_mem(const char *data, size_t len, const char *name, const dy_cfg_key_t *keys,
                      size_t nkeys, void *out, char *errbuf, size_t errlen)
{
    s_ctx_t c = {.name = name ? name : "<string>", .errbuf = errbuf, .errlen = errlen};
    if (errbuf && errlen)
        errbuf[0] = '\0';
    int rc = s_check_table(&c, keys, nkeys, false);
    s_node_t *root = NULL;
    if (rc == 0)
        rc = s_parse(&c, data, len, &root);
    if (rc == 0 && root != NULL && root->kind != S_MAP && !s_is_null(root))
        rc = s_fail(&c, root->line, NULL, "the document must be a mapping, got %s",
                    s_kind_name(root));
    if (rc == 0) {
        const s_node_t *map = root && root->kind == S_MAP ? root : NULL;
        rc = s_load_map(&c, map, root ? root->line : 1, "", keys, nkeys, out);
    }
    s_node_free(root);
    if (rc < 0) {
        dy_config_free(keys, nkeys, out);
        if (rc == -ENOMEM && !c.failed && errbuf && errlen)
            snprintf(errbuf, errlen, "%s: out of memory", c.name);
    }
    return rc;
}

/* Computes the size of a struct a key table describes: the end of its last field. */
static size_t s_field_end(const dy_cfg_key_t *k)
{
    size_t sz;
    switch (k->type) {
    case DY_CFG_STRING:
    case DY_CFG_ENDPOINT:
        sz = sizeof(char *);
        break;
    case DY_CFG_INT:
    case DY_CFG_DURATION:
        sz = sizeof(int64_t);
        break;
    case DY_CFG_SIZE:
        sz = sizeof(uint64_t);
        break;
    case DY_CFG_DOUBLE:
        sz = sizeof(double);
        break;
    case DY_CFG_BOOL:
        sz = sizeof(bool);
        break;
    case DY_CFG_ENUM:
        sz = sizeof(int);
        break;
    case DY_CFG_LIST: {
        size_t a = k->offset + sizeof(void *), b = k->count_offset + sizeof(size_t);
        return a > b ? a : b;
    }
    default:
        sz = 0;
    }
    return k->offset + sz;
}

int dy_config_load_string(const char *yaml, const char *name, const dy_cfg_key_t *keys,
                          size_t nkeys, void *out, char *errbuf, size_t errlen)
{
    /* "out (zeroed first)": zero every field the table describes, since the
     * struct's size is not passed in. */
    for (size_t i = 0; i < nkeys; i++)
        memset((char *)out + keys[i].offset, 0, s_field_end(&keys[i]) - keys[i].offset);
    for (size_t i = 0; i < nkeys; i++)
        if (keys[i].type == DY_CFG_LIST)
            memset((char *)out + keys[i].count_offset, 0, sizeof(size_t));
    size_t len = strnlen(yaml, (size_t)DY_CONFIG_MAX_BYTES + 1);
    return s_load_mem(yaml, len, name, keys, nkeys, out, errbuf, errlen);
}

int dy_config_load(const char *path, const dy_cfg_key_t *keys, size_t nkeys, void *out,
                   char *errbuf, size_t errlen)
{
    if (errbuf && errlen)
        errbuf[0] = '\0';
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        if (errbuf && errlen)
            snprintf(errbuf, errlen, "%s: %s", path, strerror(e));
        return -e;
    }
    /* Read at most one byte past the cap, so an oversized (or endless) file is refused
     * without reading it all. */
    size_t cap = (size_t)DY_CONFIG_MAX_BYTES + 1, len = 0;
    char *buf = malloc(cap + 1);
    if (buf == NULL) {
        close(fd);
        return -ENOMEM;
    }
    while (len < cap) {
        ssize_t n = read(fd, buf + len, cap - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int e = errno;
            if (errbuf && errlen)
                snprintf(errbuf, errlen, "%s: %s", path, strerror(e));
            free(buf);
            close(fd);
            return -e;
        }
        if (n == 0)
            break;
        len += (size_t)n;
    }
    close(fd);
    buf[len] = '\0';
    for (size_t i = 0; i < nkeys; i++)
        memset((char *)out + keys[i].offset, 0, s_field_end(&keys[i]) - keys[i].offset);
    for (size_t i = 0; i < nkeys; i++)
        if (keys[i].type == DY_CFG_LIST)
            memset((char *)out + keys[i].count_offset, 0, sizeof(size_t));
    int rc = s_load_mem(buf, len, path, keys, nkeys, out, errbuf, errlen);
    free(buf);
    return rc;
}

/* ---- printing ---------------------------------------------------------------------------- */

/* Defined here, not in log.c, because fuzz_config compiles config.c on its own. */
size_t dy_config_utf8_decode(const unsigned char *p, size_t n, uint32_t *ret_cp)
{
    if (p[0] < 0x80) {
        *ret_cp = p[0];
        return 1;
    }
    size_t len;
    uint32_t v, min;
    if ((p[0] & 0xe0) == 0xc0) {
        len = 2, v = p[0] & 0x1f, min = 0x80;
    } else if ((p[0] & 0xf0) == 0xe0) {
        len = 3, v = p[0] & 0x0f, min = 0x800;
    } else if ((p[0] & 0xf8) == 0xf0) {
        len = 4, v = p[0] & 0x07, min = 0x10000;
    } else {
        return 0;
    }
    if (len > n)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((p[i] & 0xc0) != 0x80)
            return 0;
        v = (v << 6) | (p[i] & 0x3f);
    }
    if (v < min || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff))
        return 0;
    *ret_cp = v;
    return len;
}

/* Prints s as a YAML double-quoted scalar.  Characters YAML does not allow
 * raw in a stream (controls, DEL, C1 controls, BOM, U+FFFE/U+FFFF) and
 * those it folds as line breaks inside quotes (NEL U+0085, LS U+2028, PS
 * U+2029; found by fuzz_config) are escaped, so the output always loads
 * again.  Bytes that are not UTF-8 (only a hand-built struct can hold
 * them) are written as \xHH, which reads back as U+00HH. */
static void s_print_string(FILE *f, const char *s)
{
    const unsigned char *p = (const unsigned char *)(s ? s : "");
    size_t n = strlen((const char *)p);
    fputc('"', f);
    while (n > 0) {
        uint32_t cp;
        size_t l = dy_config_utf8_decode(p, n, &cp);
        if (l == 0) {
            fprintf(f, "\\x%02x", p[0]);
            p++, n--;
            continue;
        }
        if (cp == '"')
            fputs("\\\"", f);
        else if (cp == '\\')
            fputs("\\\\", f);
        else if (cp == '\n')
            fputs("\\n", f);
        else if (cp == '\t')
            fputs("\\t", f);
        else if (cp < 0x20 || cp == 0x7f)
            fprintf(f, "\\x%02x", (unsigned)cp);
        else if ((cp >= 0x80 && cp <= 0x9f) || cp == 0x2028 || cp == 0x2029 || cp == 0xfeff ||
                 cp == 0xfffe || cp == 0xffff)
            fprintf(f, "\\u%04x", (unsigned)cp);
        else
            fwrite(p, 1, l, f);
        p += l, n -= l;
    }
    fputc('"', f);
}

/* Enum choices are printed plain when they are simple identifiers. */
static void s_print_choice(FILE *f, const char *s)
{
    bool simple = (s[0] >= 'a' && s[0] <= 'z') || (s[0] >= 'A' && s[0] <= 'Z') || s[0] == '_';
    for (const char *p = s; *p && simple; p++)
        simple = s_is_host_char(*p);
    if (simple)
        fputs(s, f);
    else
        s_print_string(f, s);
}

static void s_indent(FILE *f, int n)
{
    fprintf(f, "%*s", n, "");
}

static void s_print_help(FILE *f, const dy_cfg_key_t *k, int indent)
{
    if (k->help == NULL || k->help[0] == '\0')
        return;
    s_indent(f, indent);
    fputs("#", f);
    /* One line by contract; a stray newline must not end the comment. */
    fputc(' ', f);
    for (const char *p = k->help; *p; p++)
        fputc(*p == '\n' || *p == '\r' ? ' ' : *p, f);
    fputc('\n', f);
}

static void s_print_map(FILE *f, const dy_cfg_key_t *keys, size_t nkeys, const void *cfg,
                        const char *prefix, int indent, bool *done, bool *scratch);

static void s_print_scalar(FILE *f, const dy_cfg_key_t *k, const void *cfg)
{
    const char *field = (const char *)cfg + k->offset;
    char buf[64];
    switch (k->type) {
    case DY_CFG_STRING:
    case DY_CFG_ENDPOINT: {
        const char *s;
        memcpy(&s, field, sizeof(s));
        s_print_string(f, s);
        break;
    }
    case DY_CFG_INT: {
        int64_t v;
        memcpy(&v, field, sizeof(v));
        fprintf(f, "%" PRId64, v);
        break;
    }
    case DY_CFG_DOUBLE: {
        double d;
        memcpy(&d, field, sizeof(d));
        s_fmt_double(d, buf, sizeof(buf));
        fputs(buf, f);
        break;
    }
    case DY_CFG_BOOL: {
        bool b;
        memcpy(&b, field, sizeof(b));
        fputs(b ? "true" : "false", f);
        break;
    }
    case DY_CFG_DURATION: {
        int64_t ms;
        memcpy(&ms, field, sizeof(ms));
        s_fmt_duration(ms, buf, sizeof(buf));
        fputs(buf, f);
        break;
    }
    case DY_CFG_SIZE: {
        uint64_t b;
        memcpy(&b, field, sizeof(b));
        s_fmt_size(b, buf, sizeof(buf));
        fputs(buf, f);
        break;
    }
    case DY_CFG_ENUM: {
        int e;
        memcpy(&e, field, sizeof(e));
        int n = 0;
        while (k->choices[n] != NULL)
            n++;
        if (e >= 0 && e < n)
            s_print_choice(f, k->choices[e]);
        else
            fputs("\"\"", f); /* not a choice: prints, and fails to load, visibly */
        break;
    }
    case DY_CFG_LIST:
        break;
    }
}

/* Prints a list's items; scratch holds at least k->nsub flags. */
static void s_print_list(FILE *f, const dy_cfg_key_t *k, const void *cfg, int indent,
                         bool *scratch)
{
    const char *base = (const char *)cfg;
    const char *items;
    size_t n;
    memcpy(&items, base + k->offset, sizeof(items));
    memcpy(&n, base + k->count_offset, sizeof(n));
    if (n == 0) {
        fputs(" []\n", f);
        return;
    }
    fputc('\n', f);
    for (size_t i = 0; i < n; i++) {
        s_indent(f, indent + 2);
        fputs("-\n", f);
        memset(scratch, 0, k->nsub * sizeof(*scratch));
        s_print_map(f, k->sub, k->nsub, items + i * k->item_size, "", indent + 4, scratch,
                    NULL);
    }
}

/* Prints, in table order, every key under `prefix` not yet done; a key
 * "a.b.c" opens mapping "a" the first time a key under it comes up, and
 * every key under "a" is printed there. */
static void s_print_map(FILE *f, const dy_cfg_key_t *keys, size_t nkeys, const void *cfg,
                        const char *prefix, int indent, bool *done, bool *scratch)
{
    size_t plen = strlen(prefix);
    for (size_t i = 0; i < nkeys; i++) {
        const dy_cfg_key_t *k = &keys[i];
        if (done[i] || strncmp(k->path, prefix, plen) != 0)
            continue;
        const char *rest = k->path + plen;
        const char *dot = strchr(rest, '.');
        if (dot == NULL) {
            done[i] = true;
            s_print_help(f, k, indent);
            s_indent(f, indent);
            fprintf(f, "%s:", rest);
            if (k->type == DY_CFG_LIST) {
                s_print_list(f, k, cfg, indent, scratch);
            } else {
                fputc(' ', f);
                s_print_scalar(f, k, cfg);
                fputc('\n', f);
            }
            continue;
        }
        char sub[512];
        snprintf(sub, sizeof(sub), "%s%.*s.", prefix, (int)(dot - rest), rest);
        s_indent(f, indent);
        fprintf(f, "%.*s:\n", (int)(dot - rest), rest);
        s_print_map(f, keys, nkeys, cfg, sub, indent + 2, done, scratch);
    }
}

int dy_config_print(const dy_cfg_key_t *keys, size_t nkeys, const void *cfg, FILE *out)
{
    size_t nscratch = 1;
    for (size_t i = 0; i < nkeys; i++)
        if (keys[i].type == DY_CFG_LIST && keys[i].nsub > nscratch)
            nscratch = keys[i].nsub;
    bool *done = calloc(nkeys + nscratch, sizeof(*done));
    if (done == NULL)
        return -EIO;
    s_print_map(out, keys, nkeys, cfg, "", 0, done, done + nkeys);
    free(done);
    return ferror(out) || fflush(out) != 0 ? -EIO : 0;
}

/* ---- comparison and freeing -------------------------------------------------------------- */

static bool s_key_equal(const dy_cfg_key_t *k, const void *a, const void *b)
{
    const char *fa = (const char *)a + k->offset, *fb = (const char *)b + k->offset;
    switch (k->type) {
    case DY_CFG_STRING:
    case DY_CFG_ENDPOINT: {
        const char *sa, *sb;
        memcpy(&sa, fa, sizeof(sa));
        memcpy(&sb, fb, sizeof(sb));
        if (sa == NULL || sb == NULL)
            return sa == sb;
        return strcmp(sa, sb) == 0;
    }
    case DY_CFG_INT:
    case DY_CFG_DURATION:
    case DY_CFG_SIZE:
        return memcmp(fa, fb, sizeof(int64_t)) == 0;
    case DY_CFG_DOUBLE: {
        double da, db;
        memcpy(&da, fa, sizeof(da));
        memcpy(&db, fb, sizeof(db));
        return da == db;
    }
    case DY_CFG_BOOL: {
        bool ba, bb;
        memcpy(&ba, fa, sizeof(ba));
        memcpy(&bb, fb, sizeof(bb));
        return ba == bb;
    }
    case DY_CFG_ENUM:
        return memcmp(fa, fb, sizeof(int)) == 0;
    case DY_CFG_LIST: {
        const char *ia, *ib;
        size_t na, nb;
        memcpy(&ia, fa, sizeof(ia));
        memcpy(&ib, fb, sizeof(ib));
        memcpy(&na, (const char *)a + k->count_offset, sizeof(na));
        memcpy(&nb, (const char *)b + k->count_offset, sizeof(nb));
        if (na != nb)
            return false;
        for (size_t i = 0; i < na; i++)
            if (!dy_config_equal(k->sub, k->nsub, ia + i * k->item_size,
                                 ib + i * k->item_size))
                return false;
        return true;
    }
    }
    return false;
}

bool dy_config_equal(const dy_cfg_key_t *keys, size_t nkeys, const void *a, const void *b)
{
    for (size_t i = 0; i < nkeys; i++)
        if (!s_key_equal(&keys[i], a, b))
            return false;
    return true;
}

int dy_config_nonreloadable_diff(const dy_cfg_key_t *keys, size_t nkeys, const void *a,
                                 const void *b, char *errbuf, size_t errlen)
{
    int n = 0;
    if (errbuf && errlen)
        errbuf[0] = '\0';
    for (size_t i = 0; i < nkeys; i++) {
        if (keys[i].reloadable || s_key_equal(&keys[i], a, b))
            continue;
        if (n++ == 0 && errbuf && errlen)
            snprintf(errbuf, errlen, "%s", keys[i].path);
    }
    return n;
}

static void s_free_list(const dy_cfg_key_t *k, void *cfg)
{
    void **slot = (void **)(void *)((char *)cfg + k->offset);
    size_t *count = (size_t *)(void *)((char *)cfg + k->count_offset);
    if (*slot != NULL)
        for (size_t j = 0; j < *count; j++)
            dy_config_free(k->sub, k->nsub, (char *)*slot + j * k->item_size);
    free(*slot);
    *slot = NULL;
    *count = 0;
}

void dy_config_free(const dy_cfg_key_t *keys, size_t nkeys, void *cfg)
{
    if (cfg == NULL)
        return;
    for (size_t i = 0; i < nkeys; i++) {
        const dy_cfg_key_t *k = &keys[i];
        if (k->type == DY_CFG_STRING || k->type == DY_CFG_ENDPOINT) {
            char **slot = (char **)(void *)((char *)cfg + k->offset);
            free(*slot);
            *slot = NULL;
        } else if (k->type == DY_CFG_LIST) {
            s_free_list(k, cfg);
        }
    }
}
