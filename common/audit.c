/* audit.c - append and verify the hash-chained audit log (audit.h).  The
 * hashing and the chain rules live here; the rows are stored through the
 * store's backend primitives, so every backend gets the same chain.
 */
#include <errno.h>
#include <string.h>

#include <openssl/evp.h>

#include "audit.h"

static void s_u64(EVP_MD_CTX *md, uint64_t v)
{
    uint8_t b[8];
    for (int i = 0; i < 8; i++)
        b[i] = (uint8_t)(v >> (56 - 8 * i));
    EVP_DigestUpdate(md, b, sizeof(b));
}

static void s_str(EVP_MD_CTX *md, const char *s)
{
    size_t n = strlen(s);
    uint8_t b[4] = {(uint8_t)(n >> 24), (uint8_t)(n >> 16), (uint8_t)(n >> 8), (uint8_t)n};
    EVP_DigestUpdate(md, b, sizeof(b));
    EVP_DigestUpdate(md, s, n);
}

void dy_audit_row_hash(const dy_audit_row_t *row, uint8_t out[32])
{
    static const char tag[] = "dy-audit-v1";
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    unsigned int len = 0;
    /* Allocation failure here cannot be reported through a void API; an
     * all-zero hash never matches a stored one, so verify fails closed. */
    memset(out, 0, 32);
    if (!md)
        return;
    if (EVP_DigestInit_ex(md, EVP_sha256(), NULL) == 1) {
        EVP_DigestUpdate(md, row->prev_hash, 32);
        EVP_DigestUpdate(md, tag, sizeof(tag) - 1);
        s_u64(md, (uint64_t)row->seq);
        s_u64(md, (uint64_t)row->time);
        s_str(md, row->actor);
        s_str(md, row->computation);
        s_u64(md, (uint64_t)(int64_t)row->stage);
        s_str(md, row->event);
        s_str(md, row->detail);
        EVP_DigestFinal_ex(md, out, &len);
    }
    EVP_MD_CTX_free(md);
}

/* Copies s into dst (cap bytes) or fails if it does not fit. */
static int s_put(char *dst, size_t cap, const char *s, bool required)
{
    if (!s)
        s = "";
    size_t n = strlen(s);
    if ((required && n == 0) || n >= cap)
        return -EINVAL;
    memcpy(dst, s, n + 1);
    return 0;
}

static int s_append(dy_store_t *st, const dy_audit_row_t *fields, int64_t *ret_seq)
{
    dy_audit_row_t row = *fields;
    int rc = dy_store_audit_tail(st, &row.seq, row.prev_hash);
    if (rc < 0)
        return rc;
    row.seq++;
    dy_audit_row_hash(&row, row.hash);
    rc = dy_store_audit_insert(st, &row);
    if (rc == 0 && ret_seq)
        *ret_seq = row.seq;
    return rc;
}

int dy_audit_append(dy_store_t *st, const dy_audit_event_t *ev, int64_t *ret_seq)
{
    if (!st || !ev)
        return -EINVAL;
    static dy_audit_row_t zero;
    dy_audit_row_t row = zero;
    int rc = s_put(row.actor, sizeof(row.actor), ev->actor, true);
    if (rc == 0)
        rc = s_put(row.computation, sizeof(row.computation), ev->computation, false);
    if (rc == 0)
        rc = s_put(row.event, sizeof(row.event), ev->event, true);
    if (rc == 0)
        rc = s_put(row.detail, sizeof(row.detail), ev->detail, false);
    if (rc < 0)
        return rc;
    row.stage = ev->stage;
    row.time = dy_store_now(st);
    if (st->tx_depth > 0)
        return s_append(st, &row, ret_seq); /* joins the caller's transaction */
    /* Our own transaction: the tail read and the insert must not interleave
     * with another appender. */
    rc = dy_store_begin(st);
    if (rc < 0)
        return rc;
    rc = s_append(st, &row, ret_seq);
    if (rc < 0) {
        dy_store_rollback(st);
        return rc;
    }
    return dy_store_commit(st);
}

typedef struct {
    int64_t expect_seq; /* seq the next row must have */
    uint8_t prev[32];   /* hash the next row must chain to */
    int64_t bad_seq;    /* first broken row, 0 while intact */
    int64_t rows;       /* rows checked */
} s_verify_t;

static int s_verify_row(const dy_audit_row_t *row, void *arg)
{
    s_verify_t *v = arg;
    uint8_t h[32];
    v->rows++;
    dy_audit_row_hash(row, h);
    if (row->seq != v->expect_seq || memcmp(row->prev_hash, v->prev, 32) != 0 ||
        memcmp(row->hash, h, 32) != 0) {
        v->bad_seq = row->seq;
        return 1; /* stop */
    }
    memcpy(v->prev, row->hash, 32);
    v->expect_seq++;
    return 0;
}

int dy_audit_verify(dy_store_t *st, int64_t *ret_bad_seq, int64_t *ret_rows)
{
    if (!st || !ret_bad_seq)
        return -EINVAL;
    s_verify_t v = {.expect_seq = 1};
    int rc = dy_store_audit_scan(st, 0, s_verify_row, &v);
    if (rc < 0)
        return rc;
    *ret_bad_seq = v.bad_seq;
    if (ret_rows)
        *ret_rows = v.rows;
    return v.bad_seq ? -EBADMSG : 0;
}

int dy_audit_tail(dy_store_t *st, int64_t *ret_seq, uint8_t ret_hash[32])
{
    return dy_store_audit_tail(st, ret_seq, ret_hash);
}
