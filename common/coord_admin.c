/* coord_admin.c - the duchy-wide admin views of the coordinator's
 * ipc://RUN/admin.sock (docs/cluster.md, INTERFACES.md duchyctl): which
 * actors there are, a parallel fan-out of one admin verb to their own admin
 * sockets within a time budget, and the JSON assembly of STATUS and of the
 * merged WORKERS / CLAIMS arrays.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <czmq.h>

#include "admin.pb-c.h"
#include "coord_admin.h"

int dy_coord_actor_names(const char *supervisor_json, int claimers, char names[][DY_COORD_NAME_MAX],
                         size_t max)
{
    size_t n = 0;
    if (supervisor_json) {
        /* Every "name": "<actor>" pair; a "duchy-" prefix is dropped. */
        const char *p = supervisor_json;
        while (n < max && (p = strstr(p, "\"name\"")) != NULL) {
            p += 6;
            while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
                p++;
            if (*p != ':')
                continue;
            p++;
            while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
                p++;
            if (*p != '"')
                continue;
            const char *s = ++p, *e = strchr(s, '"');
            if (!e)
                break;
            if (strncmp(s, "duchy-", 6) == 0)
                s += 6;
            size_t len = (size_t)(e - s);
            bool ok = len > 0 && len < DY_COORD_NAME_MAX;
            for (size_t i = 0; ok && i < len; i++)
                ok = (s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '-';
            bool dup = false;
            for (size_t i = 0; ok && i < n; i++)
                dup = dup || (strlen(names[i]) == len && strncmp(names[i], s, len) == 0);
            if (ok && !dup) {
                memcpy(names[n], s, len);
                names[n][len] = '\0';
                n++;
            }
            p = e + 1;
        }
        if (n > 0)
            return (int)n;
    }
    static const char *const fixed[] = {"coordinator", "participant", "submitter", "herald",
                                        "gateway"};
    for (size_t i = 0; i < DY_ARRAY_LEN(fixed) && n < max; i++)
        snprintf(names[n++], DY_COORD_NAME_MAX, "%s", fixed[i]);
    for (int i = 1; i <= claimers && n < max; i++)
        snprintf(names[n++], DY_COORD_NAME_MAX, "claimer-%d", i);
    return (int)n;
}

static int64_t s_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int dy_coord_fanout(const char *run_dir, char names[][DY_COORD_NAME_MAX], size_t n, int verb,
                    const char *const *args, size_t nargs, int budget_ms, char **ret_json)
{
    Halo__Admin__V1__AdminRequest req = HALO__ADMIN__V1__ADMIN_REQUEST__INIT;
    req.verb = (Halo__Admin__V1__Verb)verb;
    req.args = (char **)args;
    req.n_args = nargs;
    req.want_json = true;
    size_t len = halo__admin__v1__admin_request__get_packed_size(&req);
    uint8_t *buf = malloc(len ? len : 1);
    zsock_t **socks = calloc(n ? n : 1, sizeof(*socks));
    zmq_pollitem_t *items = calloc(n ? n : 1, sizeof(*items));
    if (!buf || !socks || !items) {
        free(buf);
        free(socks);
        free(items);
        return -ENOMEM;
    }
    halo__admin__v1__admin_request__pack(&req, buf);
    size_t waiting = 0;
    for (size_t i = 0; i < n; i++) {
        ret_json[i] = NULL;
        socks[i] = zsock_new(ZMQ_REQ);
        if (!socks[i])
            continue;
        zsock_set_linger(socks[i], 0);
        zsock_set_sndtimeo(socks[i], 0);
        if (zsock_connect(socks[i], "ipc://%s/admin-%s.sock", run_dir, names[i]) < 0 ||
            zmq_send(zsock_resolve(socks[i]), buf, len, ZMQ_DONTWAIT) < 0) {
            zsock_destroy(&socks[i]);
            continue;
        }
        items[i] = (zmq_pollitem_t){.socket = zsock_resolve(socks[i]), .events = ZMQ_POLLIN};
        waiting++;
    }
    int64_t deadline = s_ms() + budget_ms;
    while (waiting > 0) {
        int64_t left = deadline - s_ms();
        if (left <= 0)
            break;
        /* Unused slots poll a NULL socket with fd -1: poll ignores them. */
        for (size_t i = 0; i < n; i++)
            if (!socks[i])
                items[i] = (zmq_pollitem_t){.socket = NULL, .fd = -1, .events = 0};
        int rc = zmq_poll(items, (int)n, (long)left);
        if (rc < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        for (size_t i = 0; i < n; i++) {
            if (!socks[i] || !(items[i].revents & ZMQ_POLLIN))
                continue;
            zframe_t *f = zframe_recv(socks[i]);
            Halo__Admin__V1__AdminResponse *resp =
                f ? halo__admin__v1__admin_response__unpack(NULL, zframe_size(f), zframe_data(f))
                  : NULL;
            zframe_destroy(&f);
            if (resp && resp->code == 0 &&
                resp->body_case == HALO__ADMIN__V1__ADMIN_RESPONSE__BODY_JSON && resp->json)
                ret_json[i] = strdup(resp->json);
            else if (resp)
                ret_json[i] = strdup("");
            if (resp)
                halo__admin__v1__admin_response__free_unpacked(resp, NULL);
            zsock_destroy(&socks[i]);
            waiting--;
        }
    }
    for (size_t i = 0; i < n; i++)
        zsock_destroy(&socks[i]);
    free(items);
    free(socks);
    free(buf);
    return 0;
}

/* Skips a JSON value starting at p; returns its end or NULL. */
static const char *s_skip_value(const char *p)
{
    if (*p == '"') {
        for (p++; *p; p++) {
            if (*p == '\\' && p[1])
                p++;
            else if (*p == '"')
                return p + 1;
        }
        return NULL;
    }
    if (*p == '{' || *p == '[') {
        int depth = 0;
        for (; *p; p++) {
            if (*p == '"') {
                p = s_skip_value(p);
                if (!p)
                    return NULL;
                p--;
            } else if (*p == '{' || *p == '[') {
                depth++;
            } else if (*p == '}' || *p == ']') {
                if (--depth == 0)
                    return p + 1;
            }
        }
        return NULL;
    }
    while (*p && *p != ',' && *p != '}' && *p != ']')
        p++;
    return p;
}

static const char *s_ws(const char *p)
{
    while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
        p++;
    return p;
}

int dy_coord_json_member(const char *json, const char *key, char *out, size_t cap)
{
    if (!json)
        return -EINVAL;
    const char *p = s_ws(json);
    if (*p != '{')
        return -EINVAL;
    p = s_ws(p + 1);
    size_t klen = strlen(key);
    while (*p == '"') {
        const char *ks = p + 1;
        const char *ke = s_skip_value(p);
        if (!ke)
            return -EINVAL;
        p = s_ws(ke);
        if (*p != ':')
            return -EINVAL;
        p = s_ws(p + 1);
        const char *ve = s_skip_value(p);
        if (!ve)
            return -EINVAL;
        if ((size_t)(ke - 1 - ks) == klen && strncmp(ks, key, klen) == 0) {
            size_t vlen = (size_t)(ve - p);
            while (vlen && (p[vlen - 1] == ' ' || p[vlen - 1] == '\n'))
                vlen--;
            if (vlen >= cap)
                return -ENOSPC;
            memcpy(out, p, vlen);
            out[vlen] = '\0';
            return 0;
        }
        p = s_ws(ve);
        if (*p == ',')
            p = s_ws(p + 1);
    }
    return -ENOENT;
}

/* Appends s (NUL-terminated) to b. */
static int s_put(dy_buf_t *b, const char *s)
{
    return dy_buf_append(b, s, strlen(s));
}

static int s_put_str(dy_buf_t *b, const char *s)
{
    int rc = s_put(b, "\"");
    for (const unsigned char *p = (const unsigned char *)s; rc == 0 && *p; p++) {
        char esc[8];
        if (*p == '"' || *p == '\\') {
            esc[0] = '\\';
            esc[1] = (char)*p;
            esc[2] = '\0';
        } else if (*p < 0x20) {
            snprintf(esc, sizeof(esc), "\\u%04x", *p);
        } else {
            esc[0] = (char)*p;
            esc[1] = '\0';
        }
        rc = s_put(b, esc);
    }
    return rc ? rc : s_put(b, "\"");
}

int dy_coord_status_json(const char *duchy, char names[][DY_COORD_NAME_MAX], size_t n,
                         char **answers, dy_buf_t *out)
{
    int rc = s_put(out, "{\"duchy\":");
    rc = rc ? rc : s_put_str(out, duchy);
    rc = rc ? rc : s_put(out, ",\"actors\":[");
    for (size_t i = 0; rc == 0 && i < n; i++) {
        char pid[32] = "null", up[48] = "null", state[96] = "\"unreachable\"";
        if (answers[i] && answers[i][0]) {
            if (dy_coord_json_member(answers[i], "pid", pid, sizeof(pid)) < 0)
                snprintf(pid, sizeof(pid), "null");
            if (dy_coord_json_member(answers[i], "uptime_seconds", up, sizeof(up)) < 0)
                snprintf(up, sizeof(up), "null");
            if (dy_coord_json_member(answers[i], "state", state, sizeof(state)) < 0 ||
                state[0] != '"')
                snprintf(state, sizeof(state), "\"unknown\"");
        }
        char name[DY_COORD_NAME_MAX + 8];
        snprintf(name, sizeof(name), "duchy-%s", names[i]);
        rc = s_put(out, i ? ",{\"name\":" : "{\"name\":");
        rc = rc ? rc : s_put_str(out, name);
        if (rc == 0) {
            char tmp[256];
            snprintf(tmp, sizeof(tmp), ",\"pid\":%s,\"uptime_seconds\":%s,\"state\":%s}", pid, up,
                     state);
            rc = s_put(out, tmp);
        }
    }
    rc = rc ? rc : s_put(out, "],\"counters\":{");
    bool first = true;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        if (!answers[i] || !answers[i][0])
            continue;
        size_t cap = strlen(answers[i]) + 1;
        char *counters = malloc(cap);
        if (!counters)
            return -ENOMEM;
        if (dy_coord_json_member(answers[i], "counters", counters, cap) == 0 &&
            counters[0] == '{') {
            rc = s_put(out, first ? "" : ",");
            rc = rc ? rc : s_put_str(out, names[i]);
            rc = rc ? rc : s_put(out, ":");
            rc = rc ? rc : s_put(out, counters);
            first = false;
        }
        free(counters);
    }
    return rc ? rc : s_put(out, "}}");
}

int dy_coord_merge_arrays(char **answers, size_t n, dy_buf_t *out)
{
    int rc = s_put(out, "[");
    bool first = true;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        const char *a = answers[i];
        if (!a)
            continue;
        a = s_ws(a);
        if (*a != '[')
            continue;
        const char *e = s_skip_value(a);
        if (!e)
            continue;
        /* The inside of [ ... ]. */
        const char *s = s_ws(a + 1);
        const char *t = e - 1;
        while (t > s && (t[-1] == ' ' || t[-1] == '\n' || t[-1] == '\t' || t[-1] == '\r'))
            t--;
        if (t <= s)
            continue;
        if (!first)
            rc = s_put(out, ",");
        rc = rc ? rc : dy_buf_append(out, s, (size_t)(t - s));
        first = false;
    }
    return rc ? rc : s_put(out, "]");
}
