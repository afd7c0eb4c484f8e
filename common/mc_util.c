/* mc_util.c - the pure logic of duchy-mc and duchy-edp (see mc_util.h): JSON reading, the
 * federation directory, keys and trust, the measurement and requisition specs, signed duchy
 * keys and HMSS seeds, the result envelope and the ground truth.
 */
#include "mc_util.h"

#include "crypto/ecies.h"
#include "crypto/sig.h"
#include "sketch/campaign.h"
#include "sketch/ll.h"

#include "public.pb-c.h"

#include <ctype.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/core_names.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

/* Short names for the generated public API types. */
#define V2(x) Wfa__Measurement__Api__V2alpha__##x
#define v2(x) wfa__measurement__api__v2alpha__##x
#define V2E(x) WFA__MEASUREMENT__API__V2ALPHA__##x

#define S_TYPE_PREFIX "type.googleapis.com/wfa.measurement.api.v2alpha."
#define S_LABEL_SPEC "halo-duchy/v1/measurement-spec"
#define S_LABEL_REQSPEC "halo-duchy/v1/requisition-spec"
#define S_LABEL_SEED "halo-duchy/v1/hmss-seed"
#define S_LABEL_RESULT "halo-duchy/v1/result"
#define S_LABEL_RESULT_SIG "halo-duchy/v1/result-sig"
#define S_REQSPEC_VERSION 0x01
#define S_REQSPEC_LEN 41

static void DY_PRINTF(3, 4) s_err(char *errbuf, size_t errlen, const char *fmt, ...)
{
    if (errbuf == NULL || errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(errbuf, errlen, fmt, ap);
    va_end(ap);
}

/* ---- JSON reader ---------------------------------------------------------------------- */

#define S_JSON_DEPTH 32

typedef struct {
    const char *p;     /* borrowed: the text */
    size_t len;
    size_t pos;
    char *errbuf;      /* borrowed */
    size_t errlen;
    bool failed;
} s_jp_t;

static void DY_PRINTF(2, 3) s_jfail(s_jp_t *jp, const char *fmt, ...)
{
    if (jp->failed)
        return;
    jp->failed = true;
    char msg[160];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    s_err(jp->errbuf, jp->errlen, "offset %zu: %s", jp->pos, msg);
}

static void s_jws(s_jp_t *jp)
{
    while (jp->pos < jp->len && (jp->p[jp->pos] == ' ' || jp->p[jp->pos] == '\t'
                                 || jp->p[jp->pos] == '\n' || jp->p[jp->pos] == '\r'))
        jp->pos++;
}

static void s_json_free(dy_json_t *v)
{
    free(v->text);
    for (size_t i = 0; i < v->n; i++) {
        s_json_free(&v->items[i]);
        if (v->keys != NULL)
            free(v->keys[i]);
    }
    free(v->items);
    free(v->keys);
    memset(v, 0, sizeof(*v));
}

static int s_hex4(const char *s)
{
    int v = 0;
    for (int i = 0; i < 4; i++) {
        int c = s[i], d;
        if (c >= '0' && c <= '9')
            d = c - '0';
        else if (c >= 'a' && c <= 'f')
            d = c - 'a' + 10;
        else if (c >= 'A' && c <= 'F')
            d = c - 'A' + 10;
        else
            return -1;
        v = v * 16 + d;
    }
    return v;
}

static void s_utf8(dy_buf_t *b, unsigned cp, int *rc)
{
    uint8_t o[4];
    size_t n;
    if (cp < 0x80) {
        o[0] = (uint8_t)cp;
        n = 1;
    } else if (cp < 0x800) {
        o[0] = (uint8_t)(0xc0 | (cp >> 6));
        o[1] = (uint8_t)(0x80 | (cp & 0x3f));
        n = 2;
    } else if (cp < 0x10000) {
        o[0] = (uint8_t)(0xe0 | (cp >> 12));
        o[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3f));
        o[2] = (uint8_t)(0x80 | (cp & 0x3f));
        n = 3;
    } else {
        o[0] = (uint8_t)(0xf0 | (cp >> 18));
        o[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3f));
        o[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3f));
        o[3] = (uint8_t)(0x80 | (cp & 0x3f));
        n = 4;
    }
    if (dy_buf_append(b, o, n) < 0)
        *rc = -ENOMEM;
}

/* Parses a string literal at jp->pos (the opening quote) into a malloc'd C string. */
static char *s_jstring(s_jp_t *jp)
{
    dy_buf_t b = {0};
    int rc = 0;
    jp->pos++; /* opening quote */
    while (rc == 0) {
        if (jp->pos >= jp->len) {
            s_jfail(jp, "unterminated string");
            break;
        }
        unsigned char c = (unsigned char)jp->p[jp->pos++];
        if (c == '"') {
            if (dy_buf_append(&b, "", 1) < 0)
                break;
            return (char *)b.data;
        }
        if (c < 0x20) {
            s_jfail(jp, "control character in string");
            break;
        }
        if (c != '\\') {
            if (c == 0) {
                s_jfail(jp, "NUL in string");
                break;
            }
            if (dy_buf_append(&b, &c, 1) < 0)
                rc = -ENOMEM;
            continue;
        }
        if (jp->pos >= jp->len) {
            s_jfail(jp, "unterminated escape");
            break;
        }
        char e = jp->p[jp->pos++];
        const char *simple = strchr("\"\\/bfnrt", e);
        if (simple != NULL && e != '\0') {
            static const char out[] = "\"\\/\b\f\n\r\t";
            if (dy_buf_append(&b, &out[simple - "\"\\/bfnrt"], 1) < 0)
                rc = -ENOMEM;
            continue;
        }
        if (e != 'u' || jp->pos + 4 > jp->len) {
            s_jfail(jp, "bad escape");
            break;
        }
        int cp = s_hex4(jp->p + jp->pos);
        jp->pos += 4;
        if (cp < 0) {
            s_jfail(jp, "bad \\u escape");
            break;
        }
        if (cp >= 0xd800 && cp < 0xdc00) {
            int lo = -1;
            if (jp->pos + 6 <= jp->len && jp->p[jp->pos] == '\\' && jp->p[jp->pos + 1] == 'u')
                lo = s_hex4(jp->p + jp->pos + 2);
            if (lo < 0xdc00 || lo > 0xdfff) {
                s_jfail(jp, "unpaired surrogate");
                break;
            }
            jp->pos += 6;
            cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
        } else if (cp >= 0xdc00 && cp < 0xe000) {
            s_jfail(jp, "unpaired surrogate");
            break;
        } else if (cp == 0) {
            s_jfail(jp, "NUL in string");
            break;
        }
        s_utf8(&b, (unsigned)cp, &rc);
    }
    if (rc < 0)
        s_jfail(jp, "out of memory");
    dy_buf_free(&b);
    return NULL;
}

static int s_jvalue(s_jp_t *jp, dy_json_t *v, int depth);

static int s_jcontainer(s_jp_t *jp, dy_json_t *v, int depth, bool object)
{
    char close = object ? '}' : ']';
    v->type = object ? DY_JSON_OBJECT : DY_JSON_ARRAY;
    jp->pos++;
    s_jws(jp);
    if (jp->pos < jp->len && jp->p[jp->pos] == close) {
        jp->pos++;
        return 0;
    }
    size_t cap = 0;
    for (;;) {
        if (v->n == cap) {
            size_t ncap = cap ? cap * 2 : 4;
            dy_json_t *items = realloc(v->items, ncap * sizeof(*items));
            if (items == NULL)
                return s_jfail(jp, "out of memory"), -ENOMEM;
            v->items = items;
            if (object) {
                char **keys = realloc(v->keys, ncap * sizeof(*keys));
                if (keys == NULL)
                    return s_jfail(jp, "out of memory"), -ENOMEM;
                v->keys = keys;
            }
            cap = ncap;
        }
        dy_json_t *item = &v->items[v->n];
        memset(item, 0, sizeof(*item));
        s_jws(jp);
        if (object) {
            if (jp->pos >= jp->len || jp->p[jp->pos] != '"')
                return s_jfail(jp, "expected a member name"), -EINVAL;
            char *key = s_jstring(jp);
            if (key == NULL)
                return -EINVAL;
            for (size_t i = 0; i < v->n; i++) {
                if (strcmp(v->keys[i], key) == 0) {
                    s_jfail(jp, "duplicate key \"%.40s\"", key);
                    free(key);
                    return -EINVAL;
                }
            }
            s_jws(jp);
            if (jp->pos >= jp->len || jp->p[jp->pos] != ':') {
                free(key);
                return s_jfail(jp, "expected ':'"), -EINVAL;
            }
            jp->pos++;
            v->keys[v->n] = key;
        }
        v->n++; /* counted before parsing so a failed item is freed */
        if (s_jvalue(jp, item, depth + 1) < 0)
            return -EINVAL;
        s_jws(jp);
        if (jp->pos < jp->len && jp->p[jp->pos] == ',') {
            jp->pos++;
            continue;
        }
        if (jp->pos < jp->len && jp->p[jp->pos] == close) {
            jp->pos++;
            return 0;
        }
        return s_jfail(jp, "expected ',' or '%c'", close), -EINVAL;
    }
}

static int s_jnumber(s_jp_t *jp, dy_json_t *v)
{
    size_t start = jp->pos;
    const char *p = jp->p;
    size_t i = jp->pos;
    if (i < jp->len && p[i] == '-')
        i++;
    if (i >= jp->len || !isdigit((unsigned char)p[i]))
        return s_jfail(jp, "bad number"), -EINVAL;
    if (p[i] == '0')
        i++;
    else
        while (i < jp->len && isdigit((unsigned char)p[i]))
            i++;
    if (i < jp->len && p[i] == '.') {
        i++;
        if (i >= jp->len || !isdigit((unsigned char)p[i]))
            return s_jfail(jp, "bad number"), -EINVAL;
        while (i < jp->len && isdigit((unsigned char)p[i]))
            i++;
    }
    if (i < jp->len && (p[i] == 'e' || p[i] == 'E')) {
        i++;
        if (i < jp->len && (p[i] == '+' || p[i] == '-'))
            i++;
        if (i >= jp->len || !isdigit((unsigned char)p[i]))
            return s_jfail(jp, "bad number"), -EINVAL;
        while (i < jp->len && isdigit((unsigned char)p[i]))
            i++;
    }
    v->type = DY_JSON_NUMBER;
    v->text = strndup(p + start, i - start);
    if (v->text == NULL)
        return s_jfail(jp, "out of memory"), -ENOMEM;
    v->number = strtod(v->text, NULL);
    jp->pos = i;
    return 0;
}

static int s_jvalue(s_jp_t *jp, dy_json_t *v, int depth)
{
    if (depth > S_JSON_DEPTH)
        return s_jfail(jp, "nested too deeply"), -EINVAL;
    s_jws(jp);
    if (jp->pos >= jp->len)
        return s_jfail(jp, "unexpected end"), -EINVAL;
    char c = jp->p[jp->pos];
    static const struct {
        const char *word;
        dy_json_type_t type;
        bool value;
    } words[] = {{"null", DY_JSON_NULL, false}, {"true", DY_JSON_BOOL, true},
                 {"false", DY_JSON_BOOL, false}};
    for (size_t i = 0; i < DY_ARRAY_LEN(words); i++) {
        size_t n = strlen(words[i].word);
        if (jp->len - jp->pos >= n && memcmp(jp->p + jp->pos, words[i].word, n) == 0) {
            v->type = words[i].type;
            v->boolean = words[i].value;
            jp->pos += n;
            return 0;
        }
    }
    if (c == '{' || c == '[')
        return s_jcontainer(jp, v, depth, c == '{');
    if (c == '"') {
        v->type = DY_JSON_STRING;
        v->text = s_jstring(jp);
        return v->text != NULL ? 0 : -EINVAL;
    }
    return s_jnumber(jp, v);
}

dy_json_t *dy_json_parse(const char *text, size_t len, char *errbuf, size_t errlen)
{
    s_jp_t jp = {.p = text, .len = len, .errbuf = errbuf, .errlen = errlen};
    dy_json_t *v = calloc(1, sizeof(*v));
    if (v == NULL) {
        s_err(errbuf, errlen, "out of memory");
        return NULL;
    }
    if (text == NULL || s_jvalue(&jp, v, 0) < 0) {
        if (text == NULL)
            s_err(errbuf, errlen, "no text");
        s_json_free(v);
        free(v);
        return NULL;
    }
    s_jws(&jp);
    if (jp.pos != jp.len) {
        s_jfail(&jp, "trailing characters");
        s_json_free(v);
        free(v);
        return NULL;
    }
    return v;
}

dy_json_t *dy_json_load(const char *path, char *errbuf, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        s_err(errbuf, errlen, "%s: %s", path, strerror(errno));
        return NULL;
    }
    dy_buf_t b = {0};
    char chunk[8192];
    size_t n;
    bool toobig = false;
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
        if (b.len + n > (16u << 20)) {
            toobig = true;
            break;
        }
        if (dy_buf_append(&b, chunk, n) < 0)
            break;
    }
    bool bad = ferror(f) || toobig;
    fclose(f);
    if (bad) {
        s_err(errbuf, errlen, "%s: %s", path, toobig ? "larger than 16 MiB" : "read error");
        dy_buf_free(&b);
        return NULL;
    }
    char msg[200] = "";
    dy_json_t *v = dy_json_parse((const char *)(b.data ? b.data : (uint8_t *)""), b.len, msg,
                                 sizeof(msg));
    dy_buf_free(&b);
    if (v == NULL)
        s_err(errbuf, errlen, "%s: %s", path, msg);
    return v;
}

void dy_json_destroy(dy_json_t **json_p)
{
    if (json_p == NULL || *json_p == NULL)
        return;
    s_json_free(*json_p);
    free(*json_p);
    *json_p = NULL;
}

const dy_json_t *dy_json_get(const dy_json_t *obj, const char *key)
{
    if (obj == NULL || obj->type != DY_JSON_OBJECT)
        return NULL;
    for (size_t i = 0; i < obj->n; i++)
        if (strcmp(obj->keys[i], key) == 0)
            return &obj->items[i];
    return NULL;
}

const char *dy_json_str(const dy_json_t *v)
{
    return v != NULL && v->type == DY_JSON_STRING ? v->text : NULL;
}

int dy_json_u64(const dy_json_t *v, uint64_t *ret)
{
    if (v == NULL || v->type != DY_JSON_NUMBER || v->text[0] == '-'
        || strpbrk(v->text, ".eE") != NULL)
        return -EINVAL;
    errno = 0;
    char *end;
    unsigned long long x = strtoull(v->text, &end, 10);
    if (errno != 0 || *end != '\0')
        return -EINVAL;
    *ret = x;
    return 0;
}

int dy_json_double(const dy_json_t *v, double *ret)
{
    if (v == NULL || v->type != DY_JSON_NUMBER || !isfinite(v->number))
        return -EINVAL;
    *ret = v->number;
    return 0;
}

void dy_json_put_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)(s ? s : ""); *p; p++) {
        switch (*p) {
        case '"': fputs("\\\"", f); break;
        case '\\': fputs("\\\\", f); break;
        case '\n': fputs("\\n", f); break;
        case '\r': fputs("\\r", f); break;
        case '\t': fputs("\\t", f); break;
        default:
            if (*p < 0x20)
                fprintf(f, "\\u%04x", *p);
            else
                fputc(*p, f);
        }
    }
    fputc('"', f);
}

void dy_json_put_double(FILE *f, double v)
{
    if (!isfinite(v)) {
        fputs("null", f);
        return;
    }
    char buf[40];
    snprintf(buf, sizeof(buf), "%.17g", v);
    /* Shortest form that reads back exactly, for readable output. */
    for (int prec = 1; prec < 17; prec++) {
        char t[40];
        snprintf(t, sizeof(t), "%.*g", prec, v);
        if (strtod(t, NULL) == v) {
            memcpy(buf, t, sizeof(t));
            break;
        }
    }
    fputs(buf, f);
}

/* ---- federation directory ---------------------------------------------------------------- */

/* True if id is a valid id of the party kind prefix ("duchies", "dataProviders", ...). */
static bool s_id_valid(const char *prefix, const char *id)
{
    char party[DY_PARTY_ID_MAX];
    int n = snprintf(party, sizeof(party), "%s/%s", prefix, id ? id : "");
    return n > 0 && (size_t)n < sizeof(party) && dy_party_id_valid(party);
}

/* A copy of a string member, made absolute against dir if it is a relative path. */
static int s_fed_str(const dy_json_t *obj, const char *key, bool path, const char *dir,
                     bool required, char **ret, char *errbuf, size_t errlen, const char *ctx)
{
    const dy_json_t *v = dy_json_get(obj, key);
    if (v == NULL || v->type == DY_JSON_NULL) {
        if (!required)
            return 0;
        s_err(errbuf, errlen, "federation.json: %s%s is missing", ctx, key);
        return -EINVAL;
    }
    const char *s = dy_json_str(v);
    if (s == NULL || s[0] == '\0') {
        s_err(errbuf, errlen, "federation.json: %s%s must be a non-empty string", ctx, key);
        return -EINVAL;
    }
    char *out;
    if (path && s[0] != '/' && strstr(s, "://") == NULL) {
        if (asprintf(&out, "%s/%s", dir, s) < 0)
            out = NULL;
    } else {
        out = strdup(s);
    }
    if (out == NULL)
        return -ENOMEM;
    *ret = out;
    return 0;
}

static int s_fed_party(const dy_json_t *obj, const char *dir, const char *prefix,
                       dy_fed_party_t *p, char *errbuf, size_t errlen, const char *ctx)
{
    int rc;
    if ((rc = s_fed_str(obj, "id", false, dir, true, &p->id, errbuf, errlen, ctx)) < 0
        || (rc = s_fed_str(obj, "cert", true, dir, true, &p->cert, errbuf, errlen, ctx)) < 0
        || (rc = s_fed_str(obj, "key", true, dir, true, &p->key, errbuf, errlen, ctx)) < 0
        || (rc = s_fed_str(obj, "certificate", false, dir, false, &p->certificate, errbuf,
                           errlen, ctx)) < 0)
        return rc;
    if (!s_id_valid(prefix, p->id)) {
        s_err(errbuf, errlen, "federation.json: %sid \"%s\" is not a valid id", ctx, p->id);
        return -EINVAL;
    }
    return 0;
}

static int s_fed_num(const dy_json_t *obj, const char *key, uint64_t def, uint64_t min,
                     uint64_t max, uint64_t *ret, char *errbuf, size_t errlen, const char *ctx)
{
    const dy_json_t *v = dy_json_get(obj, key);
    if (v == NULL) {
        *ret = def;
        return 0;
    }
    uint64_t x;
    if (dy_json_u64(v, &x) < 0 || x < min || x > max) {
        s_err(errbuf, errlen, "federation.json: %s%s must be an integer in [%llu, %llu]", ctx,
              key, (unsigned long long)min, (unsigned long long)max);
        return -EINVAL;
    }
    *ret = x;
    return 0;
}

int dy_fed_split_endpoint(const char *endpoint, char *host, size_t cap, int *ret_port)
{
    const char *colon = endpoint ? strrchr(endpoint, ':') : NULL;
    if (colon == NULL || colon == endpoint || (size_t)(colon - endpoint) >= cap)
        return -EINVAL;
    char *end;
    errno = 0;
    long port = strtol(colon + 1, &end, 10);
    if (errno != 0 || *end != '\0' || end == colon + 1 || port < 1 || port > 65535)
        return -EINVAL;
    memcpy(host, endpoint, (size_t)(colon - endpoint));
    host[colon - endpoint] = '\0';
    *ret_port = (int)port;
    return 0;
}

int dy_fed_load(const char *dir, dy_fed_t *out, char *errbuf, size_t errlen)
{
    memset(out, 0, sizeof(*out));
    char path[4096];
    if (snprintf(path, sizeof(path), "%s/federation.json", dir) >= (int)sizeof(path)) {
        s_err(errbuf, errlen, "%s: path too long", dir);
        return -EINVAL;
    }
    struct stat st;
    if (stat(path, &st) < 0) {
        s_err(errbuf, errlen, "%s: %s", path, strerror(errno));
        return -ENOENT;
    }
    dy_json_t *root = dy_json_load(path, errbuf, errlen);
    if (root == NULL)
        return -EINVAL;
    int rc = -EINVAL;
    char ctx[64];
    const dy_json_t *k, *arr, *o;
    uint64_t x;
    if (root->type != DY_JSON_OBJECT) {
        s_err(errbuf, errlen, "federation.json: not an object");
        goto out;
    }
    out->dir = strdup(dir);
    if (out->dir == NULL) {
        rc = -ENOMEM;
        goto out;
    }
    k = dy_json_get(root, "kingdom");
    char *ep = NULL;
    if ((rc = s_fed_str(k, "endpoint", false, dir, true, &ep, errbuf, errlen, "kingdom.")) < 0)
        goto out;
    char host[256];
    if (dy_fed_split_endpoint(ep, host, sizeof(host), &out->kingdom_port) < 0) {
        s_err(errbuf, errlen, "federation.json: kingdom.endpoint \"%s\" is not host:port", ep);
        free(ep);
        rc = -EINVAL;
        goto out;
    }
    free(ep);
    if ((out->kingdom_host = strdup(host)) == NULL) {
        rc = -ENOMEM;
        goto out;
    }
    if ((rc = s_fed_str(root, "tls_name", false, dir, false, &out->tls_name, errbuf, errlen,
                        "")) < 0)
        goto out;
    if (out->tls_name == NULL && (out->tls_name = strdup("localhost")) == NULL) {
        rc = -ENOMEM;
        goto out;
    }
    rc = -EINVAL;
    arr = dy_json_get(root, "duchies");
    if (arr == NULL || arr->type != DY_JSON_ARRAY || arr->n != DY_FED_DUCHIES) {
        s_err(errbuf, errlen, "federation.json: duchies must be an array of %d",
              DY_FED_DUCHIES);
        goto out;
    }
    for (size_t i = 0; i < arr->n; i++) {
        dy_fed_duchy_t *d = &out->duchies[i];
        snprintf(ctx, sizeof(ctx), "duchies[%zu].", i);
        o = &arr->items[i];
        out->nduchies = i + 1;
        if ((rc = s_fed_str(o, "id", false, dir, true, &d->id, errbuf, errlen, ctx)) < 0
            || (rc = s_fed_str(o, "role", false, dir, true, &d->role, errbuf, errlen, ctx)) < 0
            || (rc = s_fed_str(o, "endpoint", false, dir, true, &d->endpoint, errbuf, errlen,
                               ctx)) < 0
            || (rc = s_fed_str(o, "certificate", false, dir, false, &d->certificate, errbuf,
                               errlen, ctx)) < 0)
            goto out;
        rc = -EINVAL;
        if (!s_id_valid("duchies", d->id)) {
            s_err(errbuf, errlen, "federation.json: %sid \"%s\" is not a duchy id", ctx, d->id);
            goto out;
        }
        if (strcmp(d->role, "aggregator") != 0 && strcmp(d->role, "non_aggregator") != 0) {
            s_err(errbuf, errlen, "federation.json: %srole \"%s\" is unknown", ctx, d->role);
            goto out;
        }
    }
    if (dy_fed_aggregator(out) < 0) {
        s_err(errbuf, errlen, "federation.json: no duchy has role \"aggregator\"");
        goto out;
    }
    arr = dy_json_get(root, "edps");
    if (arr == NULL || arr->type != DY_JSON_ARRAY || arr->n < 1 || arr->n > DY_FED_MAX_EDPS) {
        s_err(errbuf, errlen, "federation.json: edps must be an array of 1..%d",
              DY_FED_MAX_EDPS);
        goto out;
    }
    for (size_t i = 0; i < arr->n; i++) {
        snprintf(ctx, sizeof(ctx), "edps[%zu].", i);
        out->nedps = i + 1;
        if ((rc = s_fed_party(&arr->items[i], dir, "dataProviders", &out->edps[i], errbuf,
                              errlen, ctx)) < 0)
            goto out;
    }
    if ((rc = s_fed_party(dy_json_get(root, "mc"), dir, "measurementConsumers", &out->mc,
                          errbuf, errlen, "mc.")) < 0
        || (rc = s_fed_str(root, "trusted_ca", true, dir, true, &out->trusted_ca, errbuf,
                           errlen, "")) < 0
        || (rc = s_fed_str(root, "pki", true, dir, true, &out->pki, errbuf, errlen, "")) < 0)
        goto out;
    if ((rc = s_fed_str(root, "parties", true, dir, false, &out->parties, errbuf, errlen, ""))
        < 0)
        goto out;
    if (out->parties == NULL && asprintf(&out->parties, "%s/parties.txt", out->pki) < 0) {
        out->parties = NULL;
        rc = -ENOMEM;
        goto out;
    }
    o = dy_json_get(root, "campaign");
    if (o == NULL || o->type != DY_JSON_OBJECT) {
        s_err(errbuf, errlen, "federation.json: campaign is missing");
        rc = -EINVAL;
        goto out;
    }
    if ((rc = s_fed_num(o, "population", 0, 1, (1ULL << 31) - 1, &out->population, errbuf,
                        errlen, "campaign.")) < 0
        || (rc = s_fed_num(o, "reach", 0, 1, (1ULL << 31) - 1, &out->reach, errbuf, errlen,
                           "campaign.")) < 0
        || (rc = s_fed_num(o, "seed", 1, 0, UINT64_MAX, &out->seed, errbuf, errlen,
                           "campaign.")) < 0
        || (rc = s_fed_num(o, "max_events", 10, 1, 1u << 20, &x, errbuf, errlen, "campaign."))
               < 0)
        goto out;
    out->max_events = (int)x;
    rc = -EINVAL;
    if (out->population == 0 || out->reach == 0 || out->reach > out->population) {
        s_err(errbuf, errlen, "federation.json: campaign needs 1 <= reach <= population");
        goto out;
    }
    o = dy_json_get(root, "llv2");
    out->decay_rate = 12.0;
    out->sketch_size = 100000;
    if (o != NULL) {
        const dy_json_t *a = dy_json_get(o, "decay_rate");
        if (a != NULL && (dy_json_double(a, &out->decay_rate) < 0 || out->decay_rate <= 1.0)) {
            s_err(errbuf, errlen, "federation.json: llv2.decay_rate must be a number > 1");
            goto out;
        }
        if ((rc = s_fed_num(o, "sketch_size", 100000, 1, 1ULL << 40, &x, errbuf, errlen,
                            "llv2.")) < 0)
            goto out;
        out->sketch_size = (int64_t)x;
    }
    o = dy_json_get(root, "hmss");
    if ((rc = s_fed_num(o, "reach_and_frequency_ring_modulus", 127, 3, 1ULL << 32,
                        &out->hmss_rf_modulus, errbuf, errlen, "hmss.")) < 0
        || (rc = s_fed_num(o, "reach_ring_modulus", 127, 3, (1ULL << 31) - 1,
                           &out->hmss_reach_modulus, errbuf, errlen, "hmss.")) < 0)
        goto out;
    rc = 0;
out:
    dy_json_destroy(&root);
    if (rc < 0)
        dy_fed_free(out);
    return rc;
}

static void s_party_free(dy_fed_party_t *p)
{
    free(p->id);
    free(p->cert);
    free(p->key);
    free(p->certificate);
}

void dy_fed_free(dy_fed_t *fed)
{
    if (fed == NULL)
        return;
    free(fed->dir);
    free(fed->kingdom_host);
    free(fed->tls_name);
    for (size_t i = 0; i < fed->nduchies; i++) {
        free(fed->duchies[i].id);
        free(fed->duchies[i].role);
        free(fed->duchies[i].endpoint);
        free(fed->duchies[i].certificate);
    }
    for (size_t i = 0; i < fed->nedps; i++)
        s_party_free(&fed->edps[i]);
    s_party_free(&fed->mc);
    free(fed->trusted_ca);
    free(fed->pki);
    free(fed->parties);
    memset(fed, 0, sizeof(*fed));
}

int dy_fed_aggregator(const dy_fed_t *fed)
{
    for (size_t i = 0; i < fed->nduchies; i++)
        if (fed->duchies[i].role != NULL && strcmp(fed->duchies[i].role, "aggregator") == 0)
            return (int)i;
    return -1;
}

int dy_fed_edp_index(const dy_fed_t *fed, const char *id)
{
    for (size_t i = 0; i < fed->nedps; i++)
        if (strcmp(fed->edps[i].id, id) == 0)
            return (int)i;
    return -1;
}

int dy_fed_pki_path(const dy_fed_t *fed, const char *name, const char *file, char *out,
                    size_t cap)
{
    int n = snprintf(out, cap, "%s/%s/%s", fed->pki, name, file);
    return n < 0 || (size_t)n >= cap ? -ENAMETOOLONG : 0;
}

int dy_fed_cert_name(const char *party, const char *override, char *out, size_t cap)
{
    int n = override != NULL && override[0] != '\0'
                ? snprintf(out, cap, "%s", override)
                : snprintf(out, cap, "%s/certificates/sign", party ? party : "");
    return n < 0 || (size_t)n >= cap ? -ENOSPC : 0;
}

int dy_fed_cert_path(const dy_fed_t *fed, const char *name, char *out, size_t cap)
{
    static const char *const kinds[] = {"duchies/", "dataProviders/", "measurementConsumers/"};
    const char *rest = NULL;
    for (size_t i = 0; name != NULL && i < DY_ARRAY_LEN(kinds); i++)
        if (strncmp(name, kinds[i], strlen(kinds[i])) == 0)
            rest = name + strlen(kinds[i]);
    if (rest == NULL)
        return -EINVAL;
    const char *slash = strchr(rest, '/');
    const char *lit = "/certificates/";
    if (slash == NULL || slash == rest || slash - rest > 63
        || strncmp(slash, lit, strlen(lit)) != 0)
        return -EINVAL;
    const char *cert = slash + strlen(lit);
    size_t clen = strlen(cert);
    if (clen == 0 || clen > 63 || strspn(cert, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                                               "0123456789_-") != clen)
        return -EINVAL;
    char party[DY_PARTY_ID_MAX];
    memcpy(party, name, (size_t)(slash - name));
    party[slash - name] = '\0';
    if (!dy_party_id_valid(party))
        return -EINVAL;
    const char *id = party + (rest - name);
    int n = snprintf(out, cap, "%s/%s/%s.pem", fed->pki, id, cert);
    return n < 0 || (size_t)n >= cap ? -ENAMETOOLONG : 0;
}

/* ---- keys and trust ------------------------------------------------------------------- */

int dy_mc_load_enc_priv(const char *path, uint8_t priv[32])
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return -ENOENT;
    EVP_PKEY *pk = PEM_read_PrivateKey(f, NULL, NULL, NULL);
    fclose(f);
    if (pk == NULL)
        return -EINVAL;
    BIGNUM *d = NULL;
    char group[32] = "";
    int rc = -EINVAL;
    if (EVP_PKEY_get_utf8_string_param(pk, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof(group),
                                       NULL) == 1
        && strcmp(group, "prime256v1") == 0
        && EVP_PKEY_get_bn_param(pk, OSSL_PKEY_PARAM_PRIV_KEY, &d) == 1
        && BN_bn2binpad(d, priv, 32) == 32) {
        uint8_t pub[33];
        rc = dy_ecies_pub_from_priv(priv, pub) == 0 ? 0 : -EINVAL;
    }
    BN_clear_free(d);
    EVP_PKEY_free(pk);
    if (rc < 0)
        OPENSSL_cleanse(priv, 32);
    return rc;
}

int dy_mc_load_enc_pub(const char *path, uint8_t pub[33])
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return -ENOENT;
    char line[256] = "";
    size_t n = fread(line, 1, sizeof(line) - 1, f);
    fclose(f);
    line[n] = '\0';
    char hex[256];
    size_t h = 0;
    for (size_t i = 0; i < n; i++)
        if (!isspace((unsigned char)line[i]))
            hex[h++] = line[i];
    hex[h] = '\0';
    if (h != 66 || dy_unhex(hex, pub, 33) != 33)
        return -EINVAL;
    EVP_PKEY *k = dy_sig_key_from_pub(pub, 33); /* validates the point */
    if (k == NULL)
        return -EINVAL;
    EVP_PKEY_free(k);
    return 0;
}

EVP_PKEY *dy_mc_load_sign_key(const char *path)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return NULL;
    EVP_PKEY *pk = PEM_read_PrivateKey(f, NULL, NULL, NULL);
    fclose(f);
    return pk;
}

X509 *dy_mc_load_cert(const char *path)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return NULL;
    X509 *c = PEM_read_X509(f, NULL, NULL, NULL);
    fclose(f);
    return c;
}

X509 *dy_mc_cert_from_der(const uint8_t *der, size_t len)
{
    if (der == NULL || len == 0 || len > LONG_MAX)
        return NULL;
    const unsigned char *p = der;
    X509 *c = d2i_X509(NULL, &p, (long)len);
    if (c != NULL && p != der + len) { /* trailing bytes */
        X509_free(c);
        return NULL;
    }
    return c;
}

int dy_mc_cert_der(X509 *cert, dy_buf_t *out)
{
    int n = i2d_X509(cert, NULL);
    if (n <= 0)
        return -EINVAL;
    uint8_t *p = dy_buf_extend(out, (size_t)n);
    if (p == NULL)
        return -ENOMEM;
    unsigned char *q = p;
    return i2d_X509(cert, &q) == n ? 0 : -EINVAL;
}

struct dy_mc_trust {
    X509_STORE *store;       /* owned: the trusted roots */
    dy_parties_t *parties;   /* owned */
};

dy_mc_trust_t *dy_mc_trust_new(const char *trusted_ca, const char *parties, char *errbuf,
                               size_t errlen)
{
    dy_mc_trust_t *t = calloc(1, sizeof(*t));
    if (t == NULL)
        return NULL;
    t->store = X509_STORE_new();
    if (t->store == NULL || X509_STORE_load_file(t->store, trusted_ca) != 1) {
        s_err(errbuf, errlen, "%s: cannot load the trusted roots", trusted_ca);
        dy_mc_trust_destroy(&t);
        return NULL;
    }
    char why[256] = "";
    t->parties = dy_parties_load(parties, why, sizeof(why));
    if (t->parties == NULL) {
        s_err(errbuf, errlen, "%s", why[0] ? why : "cannot load the party table");
        dy_mc_trust_destroy(&t);
        return NULL;
    }
    return t;
}

void dy_mc_trust_destroy(dy_mc_trust_t **self_p)
{
    if (self_p == NULL || *self_p == NULL)
        return;
    X509_STORE_free((*self_p)->store);
    dy_parties_destroy(&(*self_p)->parties);
    free(*self_p);
    *self_p = NULL;
}

int dy_mc_trust_check(const dy_mc_trust_t *trust, X509 *cert, const char *expected_party,
                      char *errbuf, size_t errlen)
{
    if (trust == NULL || cert == NULL || expected_party == NULL) {
        s_err(errbuf, errlen, "no certificate");
        return -EACCES;
    }
    int rc = -EACCES;
    X509_STORE_CTX *ctx = X509_STORE_CTX_new();
    if (ctx == NULL || X509_STORE_CTX_init(ctx, trust->store, cert, NULL) != 1) {
        s_err(errbuf, errlen, "cannot set up verification");
        goto out;
    }
    if (X509_verify_cert(ctx) != 1) {
        s_err(errbuf, errlen, "certificate does not chain to a trusted root: %s",
              X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx)));
        goto out;
    }
    STACK_OF(X509) *chain = X509_STORE_CTX_get0_chain(ctx);
    if (chain == NULL || sk_X509_num(chain) != 2) {
        s_err(errbuf, errlen, "certificate is not issued directly by a root");
        goto out;
    }
    uint32_t ku = X509_get_key_usage(cert);
    if (ku != UINT32_MAX && !(ku & KU_DIGITAL_SIGNATURE)) {
        s_err(errbuf, errlen, "certificate may not sign (keyUsage)");
        goto out;
    }
    EVP_PKEY *pk = X509_get0_pubkey(cert);
    char group[32] = "";
    if (pk == NULL || EVP_PKEY_get_base_id(pk) != EVP_PKEY_EC
        || EVP_PKEY_get_utf8_string_param(pk, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof(group),
                                          NULL) != 1
        || strcmp(group, "prime256v1") != 0) {
        s_err(errbuf, errlen, "certificate key is not EC P-256");
        goto out;
    }
    /* The issuing root's SKID, which the leaf's AKI must name, says whose it is. */
    X509 *root = sk_X509_value(chain, 1);
    const ASN1_OCTET_STRING *skid = X509_get0_subject_key_id(root);
    const ASN1_OCTET_STRING *akid = X509_get0_authority_key_id(cert);
    if (skid == NULL || akid == NULL || ASN1_OCTET_STRING_cmp(skid, akid) != 0) {
        s_err(errbuf, errlen, "certificate's AKI does not name its root's SKID");
        goto out;
    }
    const char *who = dy_parties_lookup(trust->parties, ASN1_STRING_get0_data(skid),
                                        (size_t)ASN1_STRING_length(skid));
    if (who == NULL) {
        s_err(errbuf, errlen, "certificate's root is not in the party table");
        goto out;
    }
    if (strcmp(who, expected_party) != 0) {
        s_err(errbuf, errlen, "certificate belongs to %s, not %s", who, expected_party);
        goto out;
    }
    rc = 0;
out:
    X509_STORE_CTX_free(ctx);
    return rc;
}

/* ---- specs ------------------------------------------------------------------------------- */

static const char *const s_protocol_names[_DY_MC_PROTOCOL_MAX] = {
    "llv2", "llv2-reach-only", "hmss", "hmss-reach-only",
};
static const char *const s_noise_names[_DY_MC_NOISE_MAX] = {
    "none", "geometric", "discrete-gaussian",
};

const char *dy_mc_protocol_name(dy_mc_protocol_t p)
{
    return (int)p >= 0 && p < _DY_MC_PROTOCOL_MAX ? s_protocol_names[p] : "?";
}

int dy_mc_protocol_parse(const char *s, dy_mc_protocol_t *ret)
{
    for (int i = 0; s != NULL && i < _DY_MC_PROTOCOL_MAX; i++)
        if (strcmp(s, s_protocol_names[i]) == 0) {
            *ret = (dy_mc_protocol_t)i;
            return 0;
        }
    return -EINVAL;
}

const char *dy_mc_noise_name(dy_mc_noise_t n)
{
    return (int)n >= 0 && n < _DY_MC_NOISE_MAX ? s_noise_names[n] : "?";
}

int dy_mc_noise_parse(const char *s, dy_mc_noise_t *ret)
{
    for (int i = 0; s != NULL && i < _DY_MC_NOISE_MAX; i++)
        if (strcmp(s, s_noise_names[i]) == 0) {
            *ret = (dy_mc_noise_t)i;
            return 0;
        }
    return -EINVAL;
}

bool dy_mc_protocol_is_llv2(dy_mc_protocol_t p)
{
    return p == DY_MC_LLV2 || p == DY_MC_ROLLV2;
}

int dy_mc_sha256(const void *data, size_t len, uint8_t out[32])
{
    unsigned int n = 0;
    return EVP_Digest(data, len, out, &n, EVP_sha256(), NULL) == 1 && n == 32 ? 0 : -EIO;
}

int dy_mc_nonce_hash(uint64_t nonce, uint8_t out[32])
{
    uint8_t be[8];
    for (int i = 0; i < 8; i++)
        be[i] = (uint8_t)(nonce >> (56 - 8 * i));
    return dy_mc_sha256(be, sizeof(be), out);
}

/* Serializes a protobuf-c message, replacing out's contents. */
static int s_pack(const ProtobufCMessage *m, dy_buf_t *out)
{
    out->len = 0;
    size_t n = protobuf_c_message_get_packed_size(m);
    if (dy_buf_reserve(out, n ? n : 1) < 0)
        return -ENOMEM;
    out->len = protobuf_c_message_pack(m, out->data);
    return out->len == n ? 0 : -EIO;
}

int dy_mc_spec_build(const dy_mc_spec_t *s, dy_buf_t *out)
{
    if (s == NULL || out == NULL || s->nnonces == 0 || s->nonces == NULL
        || (!s->reach_only && s->max_frequency < 2) || !(s->vid_width > 0.0f)
        || s->vid_width > 1.0f || s->vid_start < 0.0f || s->vid_start > 1.0f)
        return -EINVAL;
    V2(EncryptionPublicKey) key = V2E(ENCRYPTION_PUBLIC_KEY__INIT);
    key.format = V2E(ENCRYPTION_PUBLIC_KEY__FORMAT__ECIES_P256);
    key.data.data = (uint8_t *)s->mc_pub;
    key.data.len = 33;
    dy_buf_t keybuf = {0};
    int rc = s_pack(&key.base, &keybuf);
    if (rc < 0)
        return rc;
    Google__Protobuf__Any any = GOOGLE__PROTOBUF__ANY__INIT;
    any.type_url = (char *)S_TYPE_PREFIX "EncryptionPublicKey";
    any.value.data = keybuf.data;
    any.value.len = keybuf.len;

    uint8_t(*hashes)[32] = calloc(s->nnonces, 32);
    ProtobufCBinaryData *bins = calloc(s->nnonces, sizeof(*bins));
    if (hashes == NULL || bins == NULL) {
        rc = -ENOMEM;
        goto out;
    }
    for (size_t i = 0; i < s->nnonces; i++) {
        if (s->nonces[i] == 0 || dy_mc_nonce_hash(s->nonces[i], hashes[i]) < 0) {
            rc = -EINVAL;
            goto out;
        }
        bins[i].data = hashes[i];
        bins[i].len = 32;
    }
    V2(MeasurementSpec) spec = V2E(MEASUREMENT_SPEC__INIT);
    V2(MeasurementSpec__VidSamplingInterval) vid = V2E(MEASUREMENT_SPEC__VID_SAMPLING_INTERVAL__INIT);
    V2(MeasurementSpec__Reach) reach = V2E(MEASUREMENT_SPEC__REACH__INIT);
    V2(MeasurementSpec__ReachAndFrequency) rf = V2E(MEASUREMENT_SPEC__REACH_AND_FREQUENCY__INIT);
    V2(DifferentialPrivacyParams) dp = V2E(DIFFERENTIAL_PRIVACY_PARAMS__INIT);
    dp.epsilon = s->epsilon;
    dp.delta = s->delta;
    vid.start = s->vid_start;
    vid.width = s->vid_width;
    spec.n_nonce_hashes = s->nnonces;
    spec.nonce_hashes = bins;
    spec.vid_sampling_interval = &vid;
    spec.measurement_public_key = &any;
    if (s->reach_only) {
        reach.privacy_params = &dp;
        spec.measurement_type_case = V2E(MEASUREMENT_SPEC__MEASUREMENT_TYPE_REACH);
        spec.reach = &reach;
    } else {
        rf.reach_privacy_params = &dp;
        rf.frequency_privacy_params = &dp;
        rf.maximum_frequency = s->max_frequency;
        spec.measurement_type_case = V2E(MEASUREMENT_SPEC__MEASUREMENT_TYPE_REACH_AND_FREQUENCY);
        spec.reach_and_frequency = &rf;
    }
    rc = s_pack(&spec.base, out);
out:
    free(hashes);
    free(bins);
    dy_buf_free(&keybuf);
    return rc;
}

/* Signs or verifies label 00 parts... with key. */
static int s_sign_parts(EVP_PKEY *key, const char *label, const dy_part_t *parts, size_t n,
                        uint8_t sig[72], size_t *ret_len)
{
    dy_buf_t msg = {0};
    int rc = dy_sig_message(&msg, label, parts, n);
    if (rc == 0)
        rc = dy_sig_sign(key, msg.data, msg.len, sig, ret_len);
    dy_buf_free(&msg);
    return rc < 0 ? -EIO : 0;
}

static int s_verify_parts(EVP_PKEY *key, const char *label, const dy_part_t *parts, size_t n,
                          const uint8_t *sig, size_t sig_len)
{
    if (key == NULL || sig == NULL || sig_len == 0 || sig_len > DY_SIG_MAX)
        return -EBADMSG;
    dy_buf_t msg = {0};
    int rc = dy_sig_message(&msg, label, parts, n);
    if (rc == 0)
        rc = dy_sig_verify(key, msg.data, msg.len, sig, sig_len);
    dy_buf_free(&msg);
    return rc < 0 ? -EBADMSG : 0;
}

int dy_mc_spec_sign(EVP_PKEY *key, const uint8_t *spec, size_t len, uint8_t sig[72],
                    size_t *ret_len)
{
    dy_part_t part = {spec, len};
    return s_sign_parts(key, S_LABEL_SPEC, &part, 1, sig, ret_len);
}

int dy_mc_spec_verify(EVP_PKEY *key, const uint8_t *spec, size_t len, const uint8_t *sig,
                      size_t sig_len)
{
    dy_part_t part = {spec, len};
    return s_verify_parts(key, S_LABEL_SPEC, &part, 1, sig, sig_len);
}

static bool s_dp_ok(const V2(DifferentialPrivacyParams) *dp)
{
    return dp == NULL || (isfinite(dp->epsilon) && isfinite(dp->delta));
}

int dy_mc_spec_parse(const uint8_t *spec, size_t len, dy_mc_spec_info_t *out)
{
    memset(out, 0, sizeof(*out));
    V2(MeasurementSpec) *s = v2(measurement_spec__unpack)(NULL, len, spec);
    if (s == NULL)
        return -EINVAL;
    int rc = -EINVAL;
    V2(EncryptionPublicKey) *key = NULL;
    const Google__Protobuf__Any *any = s->measurement_public_key;
    if (any == NULL || any->type_url == NULL
        || strcmp(any->type_url, S_TYPE_PREFIX "EncryptionPublicKey") != 0)
        goto out;
    key = v2(encryption_public_key__unpack)(NULL, any->value.len, any->value.data);
    if (key == NULL || key->format != V2E(ENCRYPTION_PUBLIC_KEY__FORMAT__ECIES_P256)
        || key->data.len != 33)
        goto out;
    memcpy(out->mc_pub, key->data.data, 33);
    const V2(DifferentialPrivacyParams) *dp = NULL;
    if (s->measurement_type_case == V2E(MEASUREMENT_SPEC__MEASUREMENT_TYPE_REACH)) {
        out->reach_only = true;
        out->max_frequency = 1;
        dp = s->reach->privacy_params;
    } else if (s->measurement_type_case
               == V2E(MEASUREMENT_SPEC__MEASUREMENT_TYPE_REACH_AND_FREQUENCY)) {
        out->max_frequency = s->reach_and_frequency->maximum_frequency;
        dp = s->reach_and_frequency->reach_privacy_params;
        if (out->max_frequency < 1 || out->max_frequency > DY_MC_FREQ_MAX
            || !s_dp_ok(s->reach_and_frequency->frequency_privacy_params))
            goto out;
    } else {
        goto out;
    }
    if (!s_dp_ok(dp))
        goto out;
    out->epsilon = dp ? dp->epsilon : 0;
    out->delta = dp ? dp->delta : 0;
    out->vid_start = s->vid_sampling_interval ? s->vid_sampling_interval->start : 0.0f;
    out->vid_width = s->vid_sampling_interval ? s->vid_sampling_interval->width : 1.0f;
    if (!(out->vid_width > 0.0f) || out->vid_width > 1.0f || !(out->vid_start >= 0.0f)
        || out->vid_start > 1.0f || s->n_nonce_hashes == 0)
        goto out;
    out->nonce_hashes = calloc(s->n_nonce_hashes, 32);
    if (out->nonce_hashes == NULL) {
        rc = -ENOMEM;
        goto out;
    }
    for (size_t i = 0; i < s->n_nonce_hashes; i++) {
        if (s->nonce_hashes[i].len != 32)
            goto out;
        memcpy(out->nonce_hashes[i], s->nonce_hashes[i].data, 32);
    }
    out->nnonce_hashes = s->n_nonce_hashes;
    rc = 0;
out:
    if (key != NULL)
        v2(encryption_public_key__free_unpacked)(key, NULL);
    v2(measurement_spec__free_unpacked)(s, NULL);
    if (rc < 0)
        dy_mc_spec_info_free(out);
    return rc;
}

void dy_mc_spec_info_free(dy_mc_spec_info_t *info)
{
    if (info == NULL)
        return;
    free(info->nonce_hashes);
    memset(info, 0, sizeof(*info));
}

/* info = label 00 a [00 b [00 c]] */
static int s_info(dy_buf_t *out, const char *label, const char *a, const char *b,
                  const char *c)
{
    dy_part_t parts[3];
    size_t n = 0;
    const char *s[3] = {a, b, c};
    for (int i = 0; i < 3 && s[i] != NULL; i++)
        parts[n++] = (dy_part_t){s[i], strlen(s[i])};
    return dy_sig_message(out, label, parts, n);
}

int dy_mc_reqspec_seal(const uint8_t edp_pub[33], const char *edp_party, uint64_t nonce,
                       const uint8_t spec_hash[32], dy_buf_t *out)
{
    if (edp_pub == NULL || edp_party == NULL || nonce == 0 || spec_hash == NULL)
        return -EINVAL;
    uint8_t pt[S_REQSPEC_LEN];
    pt[0] = S_REQSPEC_VERSION;
    for (int i = 0; i < 8; i++)
        pt[1 + i] = (uint8_t)(nonce >> (56 - 8 * i));
    memcpy(pt + 9, spec_hash, 32);
    dy_buf_t info = {0};
    int rc = s_info(&info, S_LABEL_REQSPEC, edp_party, NULL, NULL);
    out->len = 0;
    if (rc == 0)
        rc = dy_ecies_encrypt(edp_pub, 33, info.data, info.len, pt, sizeof(pt), out);
    dy_buf_free(&info);
    OPENSSL_cleanse(pt, sizeof(pt));
    return rc;
}

int dy_mc_reqspec_open(const uint8_t edp_priv[32], const char *edp_party, const uint8_t *ct,
                       size_t len, uint64_t *ret_nonce, uint8_t ret_spec_hash[32])
{
    dy_buf_t info = {0}, pt = {0};
    int rc = s_info(&info, S_LABEL_REQSPEC, edp_party, NULL, NULL);
    if (rc == 0)
        rc = dy_ecies_decrypt(edp_priv, info.data, info.len, ct, len, &pt);
    if (rc == 0 && (pt.len != S_REQSPEC_LEN || pt.data[0] != S_REQSPEC_VERSION))
        rc = -EBADMSG;
    uint64_t nonce = 0;
    for (int i = 0; rc == 0 && i < 8; i++)
        nonce = (nonce << 8) | pt.data[1 + i];
    if (rc == 0 && nonce == 0)
        rc = -EBADMSG;
    if (rc == 0) {
        *ret_nonce = nonce;
        memcpy(ret_spec_hash, pt.data + 9, 32);
    }
    dy_buf_free(&info);
    dy_buf_free(&pt);
    return rc < 0 ? -EBADMSG : 0;
}

int dy_mc_fingerprint(const uint8_t *spec, size_t spec_len, const uint8_t reqspec_hash[32],
                      uint8_t out[32])
{
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    unsigned int n = 0;
    int ok = c != NULL && EVP_DigestInit_ex(c, EVP_sha256(), NULL) == 1
             && EVP_DigestUpdate(c, spec, spec_len) == 1
             && EVP_DigestUpdate(c, reqspec_hash, 32) == 1 && EVP_DigestFinal_ex(c, out, &n) == 1
             && n == 32;
    EVP_MD_CTX_free(c);
    return ok ? 0 : -EIO;
}

/* ---- duchy keys and seeds ---------------------------------------------------------------- */

int dy_mc_key_sign(EVP_PKEY *key, const char *label, const char *computation_id,
                   const uint8_t pub[33], uint8_t sig[72], size_t *ret_len)
{
    dy_part_t parts[2] = {{computation_id, strlen(computation_id)}, {pub, 33}};
    return s_sign_parts(key, label, parts, 2, sig, ret_len);
}

int dy_mc_key_verify(EVP_PKEY *key, const char *label, const char *computation_id,
                     const uint8_t pub[33], const uint8_t *sig, size_t sig_len)
{
    dy_part_t parts[2] = {{computation_id, strlen(computation_id)}, {pub, 33}};
    return s_verify_parts(key, label, parts, 2, sig, sig_len);
}

int dy_mc_seed_seal(EVP_PKEY *edp_key, const uint8_t peer_pub[33], const char *computation_id,
                    const char *requisition_id, const uint8_t seed[DY_MC_SEED_LEN],
                    dy_buf_t *out)
{
    dy_part_t parts[3] = {{computation_id, strlen(computation_id)},
                          {requisition_id, strlen(requisition_id)},
                          {seed, DY_MC_SEED_LEN}};
    uint8_t pt[DY_MC_SEED_LEN + DY_SIG_MAX];
    size_t siglen = 0;
    int rc = s_sign_parts(edp_key, S_LABEL_SEED, parts, 3, pt + DY_MC_SEED_LEN, &siglen);
    if (rc < 0)
        return rc;
    memcpy(pt, seed, DY_MC_SEED_LEN);
    dy_buf_t info = {0};
    rc = s_info(&info, S_LABEL_SEED, computation_id, requisition_id, NULL);
    out->len = 0;
    if (rc == 0)
        rc = dy_ecies_encrypt(peer_pub, 33, info.data, info.len, pt, DY_MC_SEED_LEN + siglen,
                              out);
    dy_buf_free(&info);
    OPENSSL_cleanse(pt, sizeof(pt));
    return rc;
}

int dy_mc_seed_open(const uint8_t peer_priv[32], EVP_PKEY *edp_pub, const char *computation_id,
                    const char *requisition_id, const uint8_t *ct, size_t len,
                    uint8_t ret_seed[DY_MC_SEED_LEN])
{
    dy_buf_t info = {0}, pt = {0};
    int rc = s_info(&info, S_LABEL_SEED, computation_id, requisition_id, NULL);
    if (rc == 0)
        rc = dy_ecies_decrypt(peer_priv, info.data, info.len, ct, len, &pt);
    if (rc == 0 && (pt.len <= DY_MC_SEED_LEN || pt.len > DY_MC_SEED_LEN + DY_SIG_MAX))
        rc = -EBADMSG;
    if (rc == 0) {
        dy_part_t parts[3] = {{computation_id, strlen(computation_id)},
                              {requisition_id, strlen(requisition_id)},
                              {pt.data, DY_MC_SEED_LEN}};
        if (s_verify_parts(edp_pub, S_LABEL_SEED, parts, 3, pt.data + DY_MC_SEED_LEN,
                           pt.len - DY_MC_SEED_LEN) < 0)
            rc = -EKEYREJECTED;
    }
    if (rc == 0)
        memcpy(ret_seed, pt.data, DY_MC_SEED_LEN);
    dy_buf_free(&info);
    dy_buf_free(&pt);
    return rc == 0 || rc == -EKEYREJECTED ? rc : -EBADMSG;
}

/* ---- result envelope ------------------------------------------------------------------- */

int dy_mc_result_pack(int64_t reach, const double *freq, int nfreq, dy_buf_t *out)
{
    if (nfreq < 0 || nfreq > DY_MC_FREQ_MAX || (nfreq > 0 && freq == NULL))
        return -EINVAL;
    V2(Measurement__Result) r = V2E(MEASUREMENT__RESULT__INIT);
    V2(Measurement__Result__Reach) rr = V2E(MEASUREMENT__RESULT__REACH__INIT);
    V2(Measurement__Result__Frequency) rf = V2E(MEASUREMENT__RESULT__FREQUENCY__INIT);
    V2(Measurement__Result__Frequency__RelativeFrequencyDistributionEntry) e[DY_MC_FREQ_MAX];
    V2(Measurement__Result__Frequency__RelativeFrequencyDistributionEntry) *ep[DY_MC_FREQ_MAX];
    rr.value = reach;
    r.reach = &rr;
    for (int i = 0; i < nfreq; i++) {
        v2(measurement__result__frequency__relative_frequency_distribution_entry__init)(&e[i]);
        e[i].key = i + 1;
        e[i].value = freq[i];
        ep[i] = &e[i];
    }
    if (nfreq > 0) {
        rf.n_relative_frequency_distribution = (size_t)nfreq;
        rf.relative_frequency_distribution = ep;
        r.frequency = &rf;
    }
    return s_pack(&r.base, out);
}

int dy_mc_result_seal(EVP_PKEY *agg_key, const uint8_t mc_pub[33], const char *computation_id,
                      const char *aggregator_id, const uint8_t *result, size_t len,
                      dy_buf_t *out)
{
    dy_buf_t info = {0}, x = {0};
    int rc = s_info(&info, S_LABEL_RESULT, computation_id, NULL, NULL);
    if (rc == 0)
        rc = dy_ecies_encrypt(mc_pub, 33, info.data, info.len, result, len, &x);
    uint8_t sig[DY_SIG_MAX];
    size_t siglen = 0;
    if (rc == 0) {
        dy_part_t parts[3] = {{computation_id, strlen(computation_id)},
                              {aggregator_id, strlen(aggregator_id)},
                              {x.data, x.len}};
        rc = s_sign_parts(agg_key, S_LABEL_RESULT_SIG, parts, 3, sig, &siglen);
    }
    if (rc == 0) {
        V2(EncryptedSignedResult) esr = V2E(ENCRYPTED_SIGNED_RESULT__INIT);
        esr.ciphertext.data = x.data;
        esr.ciphertext.len = x.len;
        esr.signature.data = sig;
        esr.signature.len = siglen;
        esr.signature_algorithm_oid = (char *)DY_SIG_OID;
        rc = s_pack(&esr.base, out);
    }
    dy_buf_free(&info);
    dy_buf_free(&x);
    return rc;
}

/* Step (4): parse and range-check the plaintext. */
static int s_result_check(const uint8_t *pt, size_t len, bool expect_frequency,
                          dy_mc_result_t *out, char *errbuf, size_t errlen)
{
    /* A nested message: protobuf-c generates no unpack function for it. */
    V2(Measurement__Result) *r = (V2(Measurement__Result) *)protobuf_c_message_unpack(
        &v2(measurement__result__descriptor), NULL, len, pt);
    if (r == NULL) {
        s_err(errbuf, errlen, "result does not parse");
        return -EBADMSG;
    }
    int rc = -EBADMSG;
    memset(out, 0, sizeof(*out));
    if (r->reach == NULL || r->reach->value < 0) {
        s_err(errbuf, errlen, "result has no reach or a negative one");
        goto out;
    }
    out->reach = r->reach->value;
    size_t n = r->frequency ? r->frequency->n_relative_frequency_distribution : 0;
    if (expect_frequency != (n > 0)) {
        s_err(errbuf, errlen, expect_frequency ? "result has no frequency distribution"
                                               : "reach result carries a frequency distribution");
        goto out;
    }
    if (n > DY_MC_FREQ_MAX) {
        s_err(errbuf, errlen, "frequency distribution has %zu keys", n);
        goto out;
    }
    bool seen[DY_MC_FREQ_MAX] = {false};
    double sum = 0;
    for (size_t i = 0; i < n; i++) {
        const V2(Measurement__Result__Frequency__RelativeFrequencyDistributionEntry) *e =
            r->frequency->relative_frequency_distribution[i];
        if (e->key < 1 || e->key > (int64_t)n || seen[e->key - 1]) {
            s_err(errbuf, errlen, "frequency key %lld is not one of 1..%zu once",
                  (long long)e->key, n);
            goto out;
        }
        if (!(e->value >= 0.0 && e->value <= 1.0)) {
            s_err(errbuf, errlen, "frequency %lld is %g, outside [0, 1]", (long long)e->key,
                  e->value);
            goto out;
        }
        seen[e->key - 1] = true;
        out->freq[e->key - 1] = e->value;
        sum += e->value;
    }
    if (n > 0 && fabs(sum - 1.0) > 1e-9) {
        s_err(errbuf, errlen, "frequencies sum to %.12g, not 1", sum);
        goto out;
    }
    out->nfreq = (int)n;
    rc = 0;
out:
    protobuf_c_message_free_unpacked(&r->base, NULL);
    return rc;
}

int dy_mc_result_open(const dy_mc_trust_t *trust, const char *cert_name, X509 *cert,
                      const char *aggregator_id, const char *computation_id,
                      const uint8_t mc_priv[32], const uint8_t *encrypted_result, size_t len,
                      bool expect_frequency, dy_mc_result_t *out, dy_mc_step_t *ret_step,
                      char *errbuf, size_t errlen)
{
    dy_mc_step_t step = DY_MC_STEP_CERTIFICATE;
    int rc = -EACCES;
    V2(EncryptedSignedResult) *esr = NULL;
    dy_buf_t info = {0}, pt = {0};
    char party[DY_PARTY_ID_MAX], prefix[DY_PARTY_ID_MAX + 16];

    /* (1) the certificate is the computation's aggregator's and chains to the CA set. */
    snprintf(party, sizeof(party), "duchies/%s", aggregator_id ? aggregator_id : "");
    snprintf(prefix, sizeof(prefix), "%s/certificates/", party);
    if (cert_name == NULL || strncmp(cert_name, prefix, strlen(prefix)) != 0
        || cert_name[strlen(prefix)] == '\0' || strchr(cert_name + strlen(prefix), '/')) {
        s_err(errbuf, errlen, "result certificate \"%s\" is not the aggregator's (%s)",
              cert_name ? cert_name : "", party);
        goto out;
    }
    if ((rc = dy_mc_trust_check(trust, cert, party, errbuf, errlen)) < 0)
        goto out;

    /* (2) the signature, strict DER, over the domain message. */
    step = DY_MC_STEP_SIGNATURE;
    rc = -EBADMSG;
    esr = v2(encrypted_signed_result__unpack)(NULL, len, encrypted_result);
    if (esr == NULL) {
        s_err(errbuf, errlen, "encrypted result does not parse");
        goto out;
    }
    if (esr->signature_algorithm_oid == NULL
        || strcmp(esr->signature_algorithm_oid, DY_SIG_OID) != 0) {
        s_err(errbuf, errlen, "signature algorithm \"%s\" is not ECDSA-SHA256",
              esr->signature_algorithm_oid ? esr->signature_algorithm_oid : "");
        goto out;
    }
    dy_part_t parts[3] = {{computation_id, strlen(computation_id)},
                          {aggregator_id, strlen(aggregator_id)},
                          {esr->ciphertext.data, esr->ciphertext.len}};
    if (s_verify_parts(X509_get0_pubkey(cert), S_LABEL_RESULT_SIG, parts, 3,
                       esr->signature.data, esr->signature.len) < 0) {
        s_err(errbuf, errlen, "the aggregator's signature does not verify");
        goto out;
    }

    /* (3) decryption under this computation's info. */
    step = DY_MC_STEP_DECRYPTION;
    if (s_info(&info, S_LABEL_RESULT, computation_id, NULL, NULL) < 0
        || dy_ecies_decrypt(mc_priv, info.data, info.len, esr->ciphertext.data,
                            esr->ciphertext.len, &pt) < 0) {
        s_err(errbuf, errlen, "the result does not decrypt for %s", computation_id);
        goto out;
    }

    /* (4) the plaintext. */
    step = DY_MC_STEP_RESULT;
    if ((rc = s_result_check(pt.data, pt.len, expect_frequency, out, errbuf, errlen)) < 0)
        goto out;
    step = DY_MC_STEP_OK;
    rc = 0;
out:
    if (esr != NULL)
        v2(encrypted_signed_result__free_unpacked)(esr, NULL);
    dy_buf_free(&info);
    dy_buf_free(&pt);
    if (ret_step != NULL)
        *ret_step = step;
    return rc;
}

/* ---- ground truth ------------------------------------------------------------------------ */

int dy_mc_truth(const dy_fed_t *fed, const int *edp_index, size_t n, int K, bool llv2,
                float vid_width, dy_mc_truth_t *out)
{
    if (fed == NULL || edp_index == NULL || n == 0 || n > fed->nedps || K < 1
        || K > DY_MC_FREQ_MAX || out == NULL)
        return -EINVAL;
    memset(out, 0, sizeof(*out));
    out->plaintext_estimate = -1;
    dy_campaign_params_t p = {.population = fed->population, .edps = (int)fed->nedps,
                              .reach = fed->reach, .max_events = fed->max_events,
                              .seed = fed->seed};
    dy_campaign_t all = {0};
    int rc = dy_campaign_generate(&p, &all);
    if (rc < 0)
        return rc;
    dy_campaign_t sub = {.params = p};
    sub.params.edps = (int)n;
    sub.edp = calloc(n, sizeof(*sub.edp));
    dy_ll_sketch_t *sk = llv2 ? calloc(n, sizeof(*sk)) : NULL;
    const dy_ll_sketch_t **skp = llv2 ? calloc(n, sizeof(*skp)) : NULL;
    size_t nsk = 0;
    if (sub.edp == NULL || (llv2 && (sk == NULL || skp == NULL))) {
        rc = -ENOMEM;
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        if (edp_index[i] < 0 || (size_t)edp_index[i] >= fed->nedps) {
            rc = -EINVAL;
            goto out;
        }
        sub.edp[i] = all.edp[edp_index[i]]; /* borrowed arrays */
    }
    uint64_t reach = 0;
    if ((rc = dy_campaign_truth(&sub, K, &reach, out->true_freq)) < 0)
        goto out;
    out->true_reach = (int64_t)reach;
    if (llv2) {
        for (size_t i = 0; i < n; i++) {
            if ((rc = dy_ll_sketch_init(&sk[i], fed->decay_rate, fed->sketch_size)) < 0)
                goto out;
            nsk++;
            for (size_t j = 0; j < sub.edp[i].n && rc == 0; j++)
                rc = dy_ll_sketch_add_vid(&sk[i], sub.edp[i].vids[j], sub.edp[i].events[j]);
            if (rc < 0 || (rc = dy_ll_sketch_finish(&sk[i])) < 0)
                goto out;
            skp[i] = &sk[i];
        }
        uint64_t active = 0;
        if ((rc = dy_ll_plaintext(skp, n, K, vid_width, &out->plaintext_estimate,
                                  K > 1 ? out->plaintext_freq : NULL, &active)) < 0)
            goto out;
        out->plaintext_nfreq = K > 1 ? K : 0;
    }
out:
    for (size_t i = 0; i < nsk; i++)
        dy_ll_sketch_free(&sk[i]);
    free(sk);
    free(skp);
    free(sub.edp);
    dy_campaign_free(&all);
    return rc;
}
