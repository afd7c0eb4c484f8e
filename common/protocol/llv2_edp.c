/* protocol/llv2_edp.c - the data provider's side of LLv2 (CRYPTO.md §3,
 * §2.5): encrypts a finished Liquid Legions sketch under the composite key
 * Y, register by register, in parallel chunks.  Index i and key v become
 * H(decimal(i)) and H(decimal(v)); the count c becomes min(c, K+1)·P; a
 * destroyed register (stored key 0) carries D as key and count.
 */
#include "llv2_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const dy_ec_t *ec;
    const dy_ec_fixed_t *tY;
    const dy_ll_sketch_t *sk;
    EC_POINT **cP; /* cP[c-1] = c·P, c = 1..K+1 */
    int K;
    bool ro;
    uint8_t *out;
} s_edp_t;

static int s_hash_u64(const dy_ec_t *ec, EC_POINT *r, uint64_t v, BN_CTX *ctx)
{
    char s[24];
    int n = snprintf(s, sizeof(s), "%" PRIu64, v);
    return dy_ec_hash_to_curve(ec, r, (const uint8_t *)s, (size_t)n, ctx);
}

static int s_edp_chunk(void *arg, dy_llv2_tls_t *t, size_t b, size_t e, dy_err_t *err)
{
    s_edp_t *j = arg;
    const dy_ec_t *ec = j->ec;
    size_t ppr = j->ro ? 2 : 6, n = e - b;
    int rc = dy_ec_rand_scalars(ec, t->sc, n * (ppr / 2));
    const EC_POINT *D = dy_ec_const(ec, DY_EC_DESTROYED);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        const dy_ll_register_t *reg = &j->sk->regs[b + i];
        EC_POINT **p = t->pt + i * ppr;
        BIGNUM **r = t->sc + i * (ppr / 2);
        if (reg->index < 0 || reg->index >= j->sk->size || (!j->ro && reg->key != 0 &&
                                                             reg->count == 0))
            return dy_err_set(err, -EINVAL, "bad_sketch", "register %zu is out of range", b + i);
        if ((rc = s_hash_u64(ec, t->tmp[0], (uint64_t)reg->index, t->ctx)) < 0 ||
            (rc = dy_eg_encrypt(ec, j->tY, p[0], p[1], t->tmp[0], r[0], t->ctx)) < 0 || j->ro)
            continue;
        const EC_POINT *key = D, *count = D;
        if (reg->key != 0) {
            if ((rc = s_hash_u64(ec, t->tmp[1], reg->key, t->ctx)) < 0)
                continue;
            key = t->tmp[1];
            uint64_t c = reg->count > (uint64_t)j->K + 1 ? (uint64_t)j->K + 1 : reg->count;
            count = j->cP[c - 1];
        }
        if ((rc = dy_eg_encrypt(ec, j->tY, p[2], p[3], key, r[1], t->ctx)) == 0)
            rc = dy_eg_encrypt(ec, j->tY, p[4], p[5], count, r[2], t->ctx);
    }
    if (rc < 0)
        return dy_llv2_err_internal(err, rc, "sketch encryption");
    rc = dy_ec_encode_many(ec, t->pt, n * ppr, j->out + b * ppr * DY_PT_LEN, t->ctx);
    return rc < 0 ? dy_llv2_err_encode(err, rc, "sketch encryption") : 0;
}

int dy_llv2_encrypt_sketch(const dy_ec_t *ec, const uint8_t Y[DY_PTC_LEN],
                           const dy_ll_sketch_t *sk, int K, bool reach_only, int threads,
                           dy_buf_t *out, dy_err_t *err)
{
    if (ec == NULL || Y == NULL || sk == NULL || out == NULL || (sk->n && sk->regs == NULL))
        return dy_err_set(err, -EINVAL, "bad_params", "sketch encryption: missing argument");
    if (!reach_only && (K < 1 || K > DY_LLV2_MAX_FREQUENCY))
        return dy_err_set(err, -EINVAL, "bad_params", "maximum frequency out of range");
    if (reach_only)
        K = 1;
    BN_CTX *ctx = BN_CTX_new();
    EC_POINT *y = dy_ec_point_new(ec);
    EC_POINT **cP = dy_ec_points_new(ec, (size_t)K + 1);
    dy_ec_fixed_t *tY = NULL;
    int rc = (ctx && y && cP) ? 0 : -ENOMEM;
    if (rc < 0) {
        rc = dy_llv2_err_internal(err, rc, "sketch encryption");
        goto done;
    }
    if (dy_ec_decode_compressed(ec, y, Y, DY_PTC_LEN, ctx) < 0) {
        rc = dy_err_set(err, -EINVAL, "bad_key", "the composite key does not decode");
        goto done;
    }
    const EC_POINT *P = dy_ec_const(ec, DY_EC_UNIT);
    rc = dy_ec_copy(cP[0], P);
    for (int c = 1; rc == 0 && c <= K; c++)
        rc = dy_ec_add(ec, cP[c], cP[c - 1], P, ctx);
    if (rc == 0 && (tY = dy_ec_fixed_new(ec, y)) == NULL)
        rc = -ENOMEM;
    if (rc < 0) {
        rc = dy_llv2_err_internal(err, rc, "sketch encryption");
        goto done;
    }
    size_t block = reach_only ? DY_LLV2_RO_BLOCK : DY_LLV2_CRV_BLOCK, old = out->len;
    uint8_t *dst = dy_buf_extend(out, sk->n * block);
    if (dst == NULL && sk->n) {
        rc = dy_llv2_err_internal(err, -ENOMEM, "sketch encryption");
        goto done;
    }
    s_edp_t job = {ec, tY, sk, cP, K, reach_only, dst};
    rc = dy_llv2_par_chunks_ec(ec, threads, sk->n, DY_LLV2_CHUNK, reach_only ? 2 : 6,
                               reach_only ? 1 : 3, s_edp_chunk, &job, err);
    if (rc < 0)
        out->len = old;
done:
    dy_ec_fixed_destroy(&tY);
    dy_ec_points_free(cP, (size_t)K + 1);
    EC_POINT_free(y);
    BN_CTX_free(ctx);
    return rc;
}
