/* claim_job.c - mill job/result frames and the typed outcome of a mill run
 * (claim_job.h). */
#include "claim_job.h"

#include <stdio.h>
#include <string.h>
#include <sys/wait.h>

#include "internal.pb-c.h"

int dy_mill_frame(const uint8_t *body, size_t len, dy_buf_t *out)
{
    if (len > DY_MILL_FRAME_MAX)
        return -EMSGSIZE;
    uint8_t *p = dy_buf_extend(out, 4 + len);
    if (!p)
        return -ENOMEM;
    p[0] = (uint8_t)(len >> 24);
    p[1] = (uint8_t)(len >> 16);
    p[2] = (uint8_t)(len >> 8);
    p[3] = (uint8_t)len;
    if (len)
        memcpy(p + 4, body, len);
    return 0;
}

int dy_mill_unframe(const uint8_t *in, size_t len, const uint8_t **ret_body, size_t *ret_len)
{
    if (!in || len < 4)
        return -EBADMSG;
    size_t n = (size_t)in[0] << 24 | (size_t)in[1] << 16 | (size_t)in[2] << 8 | in[3];
    if (n > DY_MILL_FRAME_MAX || n != len - 4)
        return -EBADMSG;
    *ret_body = in + 4;
    *ret_len = n;
    return 0;
}

static void s_set(dy_mill_outcome_t *o, dy_outcome_t oc, const char *code, const char *fmt, ...)
    DY_PRINTF(4, 5);
static void s_set(dy_mill_outcome_t *o, dy_outcome_t oc, const char *code, const char *fmt, ...)
{
    o->outcome = oc;
    snprintf(o->code, sizeof(o->code), "%s", code);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(o->message, sizeof(o->message), fmt, ap);
    va_end(ap);
}

void dy_mill_outcome(const dy_spawn_status_t *st, const char *job_id, dy_mill_outcome_t *out)
{
    memset(out, 0, sizeof(*out));
    if (st->deadline) {
        s_set(out, DY_OUTCOME_TEMPFAIL, "mill_deadline", "mill killed at its deadline");
        return;
    }
    if (!st->exited) {
        s_set(out, DY_OUTCOME_TEMPFAIL, "mill_signal", "mill killed by signal %d", st->signal);
        return;
    }
    if (st->exit_code != 0) {
        s_set(out, DY_OUTCOME_TEMPFAIL, "mill_exit", "mill exited with status %d",
              st->exit_code);
        return;
    }
    const uint8_t *body;
    size_t len;
    if (st->result_len == 0 || dy_mill_unframe(st->result, st->result_len, &body, &len) < 0) {
        s_set(out, DY_OUTCOME_TEMPFAIL, "mill_no_result", "mill wrote no complete result");
        return;
    }
    Halo__Internal__V1__MillResult *r = halo__internal__v1__mill_result__unpack(NULL, len, body);
    if (!r) {
        s_set(out, DY_OUTCOME_TEMPFAIL, "mill_bad_result", "mill result does not decode");
        return;
    }
    bool ok = strcmp(r->job_id, job_id ? job_id : "") == 0;
    if (ok && r->outcome == HALO__INTERNAL__V1__MILL_RESULT__OUTCOME__OK) {
        for (size_t i = 0; i < r->n_outputs; i++) {
            const Halo__Internal__V1__Blob *b = r->outputs[i];
            if (!b->slot[0] || !b->path[0] || b->sha256.len != 32)
                ok = false;
        }
    }
    switch (ok ? r->outcome : HALO__INTERNAL__V1__MILL_RESULT__OUTCOME__OUTCOME_UNSPECIFIED) {
    case HALO__INTERNAL__V1__MILL_RESULT__OUTCOME__OK:
        s_set(out, DY_OUTCOME_OK, "", "%s", "");
        break;
    case HALO__INTERNAL__V1__MILL_RESULT__OUTCOME__TEMPFAIL:
        s_set(out, DY_OUTCOME_TEMPFAIL, r->code[0] ? r->code : "tempfail", "%s", r->message);
        break;
    case HALO__INTERNAL__V1__MILL_RESULT__OUTCOME__PERMFAIL:
        s_set(out, DY_OUTCOME_PERMFAIL, r->code[0] ? r->code : "permfail", "%s", r->message);
        break;
    default:
        s_set(out, DY_OUTCOME_TEMPFAIL, "mill_bad_result",
              "mill result invalid (outcome, job id or outputs)");
        halo__internal__v1__mill_result__free_unpacked(r, NULL);
        return;
    }
    out->result = r;
}

void dy_mill_outcome_clear(dy_mill_outcome_t *o)
{
    if (!o)
        return;
    if (o->result)
        halo__internal__v1__mill_result__free_unpacked(o->result, NULL);
    memset(o, 0, sizeof(*o));
}
