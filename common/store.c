/* store.c - the backend-independent half of the store: argument checks,
 * the fork guard, transaction nesting, the clock and the transient
 * backoff policy, then dispatch through the backend's dy_store_ops_t.
 * Policy that must be the same for every backend lives here, so a second
 * backend only implements SQL.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/rand.h>

#include "store.h"

static const char *const s_end_names[_DY_END_MAX] = {
    [DY_END_NONE] = "",
    [DY_END_SUCCEEDED] = "SUCCEEDED",
    [DY_END_FAILED] = "FAILED",
    [DY_END_CANCELLED] = "CANCELLED",
    [DY_END_LOCK_OVERWRITTEN] = "LOCK_OVERWRITTEN",
};

const char *dy_end_reason_name(dy_end_reason_t r)
{
    if ((int)r < 0 || r >= _DY_END_MAX)
        return NULL;
    return s_end_names[r];
}

void dy_computation_clear(dy_computation_t *c)
{
    if (!c)
        return;
    free(c->details);
    memset(c, 0, sizeof(*c));
}

void dy_requisition_clear(dy_requisition_t *r)
{
    if (!r)
        return;
    free(r->seed);
    free(r->details);
    memset(r, 0, sizeof(*r));
}

/* A non-empty name that fits DY_STORE_NAME_MAX. */
static bool s_name_ok(const char *s)
{
    return s && s[0] && strlen(s) < DY_STORE_NAME_MAX;
}

static bool s_kind_ok(dy_stage_kind_t k)
{
    return (int)k >= 0 && k < _DY_STAGE_MAX;
}

static bool s_lease_ok(const dy_lease_t *l)
{
    return l && s_name_ok(l->computation) && s_name_ok(l->owner) && l->attempt >= 1;
}

/* Every call goes through here first: a store belongs to its opener. */
static int s_usable(const dy_store_t *st)
{
    if (!st)
        return -EINVAL;
    if (st->pid != (int)getpid())
        return -EBADFD;
    return 0;
}

static int64_t s_realtime_us(void *arg)
{
    (void)arg;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int dy_store_open(const dy_store_config_t *cfg, dy_store_t **ret_st)
{
    if (!cfg || !cfg->path || !cfg->path[0] || !ret_st)
        return -EINVAL;
    if (cfg->busy_timeout_ms < 0 || cfg->max_attempts < 0 || cfg->backoff_scale < 0)
        return -EINVAL;
    dy_store_config_t c = *cfg;
    if (!c.backend)
        c.backend = "sqlite";
    if (!c.busy_timeout_ms)
        c.busy_timeout_ms = 5000;
    if (!c.max_attempts)
        c.max_attempts = DY_STORE_DEFAULT_MAX_ATTEMPTS;
    if (c.backoff_scale == 0)
        c.backoff_scale = 1.0;
    if (!c.clock) {
        c.clock = s_realtime_us;
        c.clock_arg = NULL;
    }
    dy_store_t *st = NULL;
    int rc;
    if (strcmp(c.backend, "sqlite") == 0)
        rc = dy_store_sqlite_open(&c, &st);
    else
        return -ENOTSUP;
    if (rc < 0)
        return rc;
    st->pid = (int)getpid();
    st->tx_depth = 0;
    *ret_st = st;
    return 0;
}

void dy_store_destroy(dy_store_t **st_p)
{
    if (!st_p || !*st_p)
        return;
    dy_store_t *st = *st_p;
    *st_p = NULL;
    if (st->pid != (int)getpid()) {
        /* Inherited across fork: never touch the connection (closing it
         * could checkpoint or unlink the WAL under the parent). */
        free(st->path);
        free(st);
        return;
    }
    if (st->tx_depth > 0)
        st->ops->rollback(st);
    st->ops->close(st);
}

int64_t dy_store_now(dy_store_t *st)
{
    return st->cfg.clock(st->cfg.clock_arg);
}

int dy_store_begin(dy_store_t *st)
{
    int rc = s_usable(st);
    if (rc < 0)
        return rc;
    if (st->tx_depth == 0) {
        rc = st->ops->begin(st);
        if (rc < 0)
            return rc;
    }
    st->tx_depth++;
    return 0;
}

int dy_store_commit(dy_store_t *st)
{
    int rc = s_usable(st);
    if (rc < 0)
        return rc;
    if (st->tx_depth <= 0)
        return -EINVAL;
    if (st->tx_depth > 1) {
        st->tx_depth--;
        return 0;
    }
    rc = st->ops->commit(st);
    if (rc < 0) {
        /* SQLite keeps the transaction open after a failed COMMIT (e.g.
         * SQLITE_BUSY); we give it up so the caller's state is simple. */
        st->ops->rollback(st);
    }
    st->tx_depth = 0;
    return rc;
}

void dy_store_rollback(dy_store_t *st)
{
    if (s_usable(st) < 0 || st->tx_depth <= 0)
        return;
    st->ops->rollback(st);
    st->tx_depth = 0;
}

int dy_store_create(dy_store_t *st, const dy_computation_new_t *c)
{
    int rc = s_usable(st);
    if (rc < 0)
        return rc;
    if (!c || !s_name_ok(c->id) || !s_kind_ok(c->kind) || c->kind == DY_STAGE_COMPLETE ||
        (c->details_len && !c->details))
        return -EINVAL;
    return st->ops->create(st, c, dy_store_now(st));
}

int dy_store_get(dy_store_t *st, const char *id, dy_computation_t *ret)
{
    int rc = s_usable(st);
    if (rc < 0)
        return rc;
    if (!s_name_ok(id) || !ret)
        return -EINVAL;
    return st->ops->get(st, id, ret);
}

int dy_store_list(dy_store_t *st, bool include_ended, dy_store_computation_fn fn, void *arg)
{
    int rc = s_usable(st);
    if (rc < 0)
        return rc;
    if (!fn)
        return -EINVAL;
    return st->ops->list(st, include_ended, fn, arg);
}

int dy_store_claim(dy_store_t *st, const char *owner, const dy_stage_ref_t *prio, size_t n_prio,
                   int64_t lease_us, dy_lease_t *ret, size_t max, size_t *ret_n)
{
    int rc = s_usable(st);
    if (rc < 0)
        return rc;
    if (!s_name_ok(owner) || (n_prio && !prio) || n_prio > DY_STORE_MAX_PRIORITY || lease_us <= 0 ||
        !ret || !ret_n)
        return -EINVAL;
    if (max == 0)
        return -EINVAL;
    *ret_n = 0;
    return st->ops->claim(st, owner, prio, n_prio, lease_us, dy_store_now(st), ret, max, ret_n);
}

int dy_store_renew(dy_store_t *st, dy_lease_t *lease, int64_t lease_us)
{
    int rc = s_usable(st);
    if (rc < 0)
        return rc;
    if (!s_lease_ok(lease) || lease_us <= 0)
        return -EINVAL;
    return st->ops->renew(st, lease, lease_us, dy_store_now(st));
}

static bool s_output_ok(const dy_store_output_t *o)
{
    return o && s_name_ok(o->slot) && o->blob && o->blob->path[0] &&
           strnlen(o->blob->path, DY_BLOB_PATH_MAX) < DY_BLOB_PATH_MAX;
}

int dy_store_record_output(dy_store_t *st, const dy_lease_t *lease, const dy_store_output_t *o)
{
    int rc = s_usable(st);
    if (rc < 0)
        return rc;
    if (!s_lease_ok(lease) || !s_output_ok(o))
        return -EINVAL;
    return st->ops->record_output(st, lease, o, dy_store_now(st));
}

int dy_store_get_blob(dy_store_t *st, const char *id, int stage, const char *slot,
                      dy_blob_rec_t *ret)
{
    int rc = s_usable(st);
    if (rc < 0)
        return rc;
    if (!s_name_ok(id) || !s_name_ok(slot) || !ret)
        return -EINVAL;
    return st->ops->get_blob(st, id, stage, slot, ret);
}

int dy_store_complete(dy_store_t *st, const dy_lease_t *lease, const dy_store_completion_t *c,
                      int *ret_stage)
{
    int rc = s_usable(st);
    if (rc < 0)
        return rc;
    if (!s_lease_ok(lease) || !c || !s_kind_ok(c->next_kind) ||
        (c->jump_min_kingdom_state > 0 && !s_kind_ok(c->jump_kind)) ||
        (c->n_outputs && !c->outputs) || (c->set_details && c->details_len && !c->details))
        return -EINVAL;
    for (size_t i = 0; i < c->n_outputs; i++)
        if (!s_output_ok(&c->outputs[i]))
            return -EINVAL;
    int stage = 0;
    rc = st->ops->complete(st, lease, c, dy_store_now(st), &stage);
    if (rc == 0 && ret_stage)
        *ret_stage = stage;
    return rc;
}

void dy_store_backoff_bounds(const dy_store_t *st, int64_t attempt, int64_t *ret_min,
                             int64_t *ret_max)
{
    /* base = min(600, 2^attempt) seconds (PROTOCOL.md §7.1), scaled. */
    double base_s = 600.0;
    if (attempt < 10)
        base_s = ldexp(1.0, attempt < 0 ? 0 : (int)attempt);
    int64_t base = (int64_t)llround(base_s * 1e6 * st->cfg.backoff_scale);
    if (ret_min)
        *ret_min = base;
    if (ret_max)
        *ret_max = 2 * base;
}

int dy_store_fail_transient(dy_store_t *st, const dy_lease_t *lease, const char *error,
                            int64_t *ret_retry_at)
{
    int rc = s_usable(st);
    if (rc < 0)
        return rc;
    if (!s_lease_ok(lease))
        return -EINVAL;
    int64_t now = dy_store_now(st), base, top;
    dy_store_backoff_bounds(st, lease->attempt, &base, &top);
    uint64_t r = 0;
    if (RAND_bytes((unsigned char *)&r, sizeof(r)) != 1)
        return -EIO;
    /* U[0, base]: a 53-bit fraction in [0, 1], inclusive of both ends. */
    double u = (double)(r >> 11) / (double)((UINT64_C(1) << 53) - 1);
    int64_t retry_at = now + base + (int64_t)llround(u * (double)base);
    bool exhausted = lease->attempt >= st->cfg.max_attempts;
    rc = st->ops->fail_transient(st, lease, error ? error : "", exhausted, retry_at, now);
    if (rc < 0)
        return rc;
    if (exhausted)
        return DY_STORE_E_EXHAUSTED;
    if (ret_retry_at)
        *ret_retry_at = retry_at;
    return 0;
}

int dy_store_end(dy_store_t *st, const char *id, const dy_lease_t *fence, int complete_stage,
                 dy_end_reason_t reason, const char *error, bool *ret_changed)
{
    int rc = s_usable(st);
    if (rc < 0)
        return rc;
    if (!s_name_ok(id) || (fence && (!s_lease_ok(fence) || strcmp(fence->computation, id))))
        return -EINVAL;
    if (reason != DY_END_SUCCEEDED && reason != DY_END_FAILED && reason != DY_END_CANCELLED)
        return -EINVAL;
    bool changed = false;
    rc = st->ops->end(st, id, fence, complete_stage, reason, error, dy_store_now(st), &changed);
    if (rc == 0 && ret_changed)
        *ret_changed = changed;
    return rc;
}

int dy_store_advance(dy_store_t *st, const char *id, int from_stage, int to_stage,
                     dy_stage_kind_t to_kind, bool *ret_moved)
{
    int rc = s_usable(st);
    if (rc < 0)
        return rc;
    if (!s_name_ok(id) || !s_kind_ok(to_kind) || to_kind == DY_STAGE_COMPLETE)
        return -EINVAL;
    bool moved = false;
    rc = st->ops->advance(st, id, from_stage, to_stage, to_kind, dy_store_now(st), &moved);
    if (rc == 0 && ret_moved)
        *ret_moved = moved;
    return rc;
}

int dy_store_set_kingdom(dy_store_t *st, const char *id, int state, const uint8_t *details,
                         size_t details_len, bool *ret_changed)
{
    int rc = s_usable(st);
    if (rc < 0)
        return rc;
    if (!s_name_ok(id))
        return -EINVAL;
    bool changed = false;
    rc = st->ops->set_kingdom(st, id, state, details, details_len, details != NULL,
                              dy_store_now(st), &changed);
    if (rc == 0 && ret_changed)
        *ret_changed = changed;
    return rc;
}

int dy_store_receive(dy_store_t *st, const dy_receive_rule_t *rule, const dy_blob_info_t *blob,
                     dy_receive_result_t *ret)
{
    int rc = s_usable(st);
    if (rc < 0)
        return rc;
    if (!rule || !s_name_ok(rule->computation) || !s_name_ok(rule->slot) || !rule->slots ||
        rule->n_slots == 0 || rule->n_slots > DY_STORE_MAX_SLOTS || (rule->n_order && !rule->order))
        return -EINVAL;
    bool found = false;
    for (size_t i = 0; i < rule->n_slots; i++) {
        if (!s_name_ok(rule->slots[i]))
            return -EINVAL;
        if (strcmp(rule->slots[i], rule->slot) == 0)
            found = true;
    }
    if (!found)
        return -EINVAL;
    if (blob && (!blob->path[0] || strnlen(blob->path, DY_BLOB_PATH_MAX) >= DY_BLOB_PATH_MAX))
        return -EINVAL;
    dy_receive_result_t res = DY_RECV_READY;
    rc = st->ops->receive(st, rule, blob, dy_store_now(st), &res);
    if (rc == 0 && ret)
        *ret = res;
    return rc;
}

int dy_store_attempts(dy_store_t *st, const char *id, dy_store_attempt_fn fn, void *arg)
{
    int rc = s_usable(st);
    if (rc < 0)
        return rc;
    if (!s_name_ok(id) || !fn)
        return -EINVAL;
    return st->ops->attempts(st, id, fn, arg);
}

int dy_store_token_get(dy_store_t *st, uint8_t *buf, size_t cap, dy_token_t *ret)
{
    int rc = s_usable(st);
    if (rc < 0)
        return rc;
    if ((!buf && cap) || !ret)
        return -EINVAL;
    return st->ops->token_get(st, buf, cap, ret);
}

int dy_store_token_set(dy_store_t *st, const dy_token_t *tok)
{
    int rc = s_usable(st);
    if (rc < 0)
        return rc;
    if (!tok || (tok->token_len && !tok->token) || tok->token_len > DY_STORE_TOKEN_MAX)
        return -EINVAL;
    return st->ops->token_set(st, tok, dy_store_now(st));
}

int dy_store_put_requisition(dy_store_t *st, const char *computation, const char *requisition,
                             const char *fulfilling_duchy, const uint8_t *details,
                             size_t details_len)
{
    int rc = s_usable(st);
    if (rc < 0)
        return rc;
    if (!s_name_ok(computation) || !s_name_ok(requisition) ||
        (fulfilling_duchy && strlen(fulfilling_duchy) >= DY_STORE_NAME_MAX) ||
        (details_len && !details))
        return -EINVAL;
    return st->ops->req_put(st, computation, requisition, fulfilling_duchy ? fulfilling_duchy : "",
                            details, details_len);
}

int dy_store_fulfill_requisition(dy_store_t *st, const char *computation, const char *requisition,
                                 const dy_blob_info_t *blob, const uint8_t *seed, size_t seed_len,
                                 bool *ret_duplicate)
{
    int rc = s_usable(st);
    if (rc < 0)
        return rc;
    if (!s_name_ok(computation) || !s_name_ok(requisition) || !blob || !blob->path[0] ||
        (seed_len && !seed))
        return -EINVAL;
    bool dup = false;
    rc = st->ops->req_fulfill(st, computation, requisition, blob, seed, seed_len, dy_store_now(st),
                              &dup);
    if (rc == 0 && ret_duplicate)
        *ret_duplicate = dup;
    return rc;
}

int dy_store_list_requisitions(dy_store_t *st, const char *computation, dy_store_requisition_fn fn,
                               void *arg)
{
    int rc = s_usable(st);
    if (rc < 0)
        return rc;
    if (!s_name_ok(computation) || !fn)
        return -EINVAL;
    return st->ops->req_list(st, computation, fn, arg);
}

int dy_store_audit_tail(dy_store_t *st, int64_t *ret_seq, uint8_t ret_hash[32])
{
    int rc = s_usable(st);
    if (rc < 0)
        return rc;
    if (!ret_seq || !ret_hash)
        return -EINVAL;
    return st->ops->audit_tail(st, ret_seq, ret_hash);
}

int dy_store_audit_insert(dy_store_t *st, const dy_audit_row_t *row)
{
    int rc = s_usable(st);
    if (rc < 0)
        return rc;
    if (!row || row->seq < 1)
        return -EINVAL;
    return st->ops->audit_insert(st, row);
}

int dy_store_audit_scan(dy_store_t *st, int64_t after_seq, dy_store_audit_fn fn, void *arg)
{
    int rc = s_usable(st);
    if (rc < 0)
        return rc;
    if (!fn)
        return -EINVAL;
    return st->ops->audit_scan(st, after_seq, fn, arg);
}

int dy_store_check(dy_store_t *st)
{
    int rc = s_usable(st);
    if (rc < 0)
        return rc;
    return st->ops->check(st);
}
