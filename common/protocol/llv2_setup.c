/* protocol/llv2_setup.c - the LLv2 setup phase (CRYPTO.md §4.2): pass the
 * duchy's requisitions through (K = 1: DestroyKeysAndCounts, §5.1), append
 * the AGG's inputs from the NAs, add exactly T noise registers (blinded
 * histogram, noise for publisher noise, global reach DP, padding) and sort
 * the 390-byte blocks.  The noise generator also serves reach-only setup
 * (§5.2, index-only registers, publisher noise + 1, padding T + 2 - rest).
 */
#include "llv2_int.h"
#include "../par.h"

#include <stdlib.h>
#include <string.h>

/* ---- noise registers ----------------------------------------------------------- */

enum { S_BH = 0, S_PUB, S_REACH, S_PAD };

typedef struct {
    uint8_t kind; /* S_BH, S_PUB, S_REACH, S_PAD */
    uint32_t id;  /* S_BH: which blinded-histogram id (index into ids) */
} s_nreg_t;

typedef struct {
    dy_llv2_t *self;
    bool ro;           /* index-only registers */
    const s_nreg_t *regs;
    BIGNUM **ids;      /* the blinded-histogram ids' secret scalars */
    uint8_t *out;      /* the first noise block */
} s_noise_t;

static int s_noise_chunk(void *arg, dy_llv2_tls_t *t, size_t b, size_t e, dy_err_t *err)
{
    s_noise_t *j = arg;
    const dy_ec_t *ec = j->self->ec;
    const dy_ec_fixed_t *tY = j->self->tY;
    size_t ppr = j->ro ? 2 : 6, spr = j->ro ? 2 : 4;
    int rc = dy_ec_rand_scalars(ec, t->sc, (e - b) * spr);
    if (rc < 0)
        return dy_llv2_err_internal(err, rc, "setup noise");
    const EC_POINT *B = dy_ec_const(ec, DY_EC_BLINDED_HIST), *D = dy_ec_const(ec, DY_EC_DESTROYED);
    for (size_t i = b; rc == 0 && i < e; i++) {
        EC_POINT **p = t->pt + (i - b) * ppr;
        BIGNUM **r = t->sc + (i - b) * spr;
        const s_nreg_t *nr = &j->regs[i];
        const EC_POINT *idx = NULL, *key = NULL;
        switch (nr->kind) {
        case S_BH:
            rc = dy_ec_mul_g(ec, t->tmp[0], j->ids[nr->id], t->ctx);
            idx = t->tmp[0];
            key = B;
            break;
        case S_PUB:
            idx = dy_ec_const(ec, DY_EC_PUB_NOISE_ID);
            if (!j->ro)
                rc = dy_llv2_rand_point(ec, t->tmp[1], r[spr - 1], t->ctx);
            key = t->tmp[1];
            break;
        case S_REACH:
            rc = dy_llv2_rand_point(ec, t->tmp[0], r[spr - 1], t->ctx);
            idx = t->tmp[0];
            key = D;
            break;
        default:
            idx = dy_ec_const(ec, DY_EC_PADDING_ID);
            if (!j->ro)
                rc = dy_llv2_rand_point(ec, t->tmp[1], r[spr - 1], t->ctx);
            key = t->tmp[1];
            break;
        }
        if (rc == 0)
            rc = dy_eg_encrypt(ec, tY, p[0], p[1], idx, r[0], t->ctx);
        if (rc == 0 && !j->ro) {
            /* "R" in key and count is one point, each ciphertext its own r. */
            rc = dy_eg_encrypt(ec, tY, p[2], p[3], key, r[1], t->ctx);
            if (rc == 0)
                rc = dy_eg_encrypt(ec, tY, p[4], p[5], key, r[2], t->ctx);
        }
    }
    if (rc < 0)
        return dy_llv2_err_internal(err, rc, "setup noise");
    size_t block = ppr * DY_PT_LEN;
    if ((rc = dy_ec_encode_many(ec, t->pt, (e - b) * ppr, j->out + b * block, t->ctx)) < 0)
        return dy_llv2_err_encode(err, rc, "setup noise");
    return 0;
}

static int s_push(s_nreg_t *regs, size_t cap, size_t *n, uint8_t kind, uint32_t id)
{
    if (*n >= cap)
        return -ERANGE;
    regs[(*n)++] = (s_nreg_t){kind, id};
    return 0;
}

int dy_llv2_setup_noise(dy_llv2_t *self, bool reach_only, dy_buf_t *out, uint64_t *ret_blocks,
                        int64_t *ret_nbh, dy_err_t *err)
{
    size_t total = (size_t)self->T + (reach_only ? 2 : 0);
    size_t block = reach_only ? DY_LLV2_RO_BLOCK : DY_LLV2_CRV_BLOCK;
    int S = self->prm.num_sketches;
    s_nreg_t *regs = calloc(total ? total : 1, sizeof(*regs));
    if (regs == NULL)
        return dy_llv2_err_internal(err, -ENOMEM, "setup noise");
    size_t n = 0;
    int64_t nids = 0, v;
    int rc = 0;
    /* Blinded histogram: for k = 1..S, n_k fresh ids, each k times. */
    int64_t *nk = calloc((size_t)S + 1, sizeof(*nk));
    if (nk == NULL)
        rc = -ENOMEM;
    for (int k = 1; rc == 0 && k <= S; k++) {
        rc = dy_llv2_draw(&self->nz_bh, &nk[k]);
        nids += nk[k];
    }
    BIGNUM **ids = NULL;
    if (rc == 0 && nids > 0) {
        ids = dy_scalars_new((size_t)nids);
        rc = ids ? dy_ec_rand_scalars(self->ec, ids, (size_t)nids) : -ENOMEM;
    }
    uint32_t id = 0;
    for (int k = 1; rc == 0 && k <= S; k++)
        for (int64_t j = 0; rc == 0 && j < nk[k]; j++, id++)
            for (int c = 0; rc == 0 && c < k; c++)
                rc = s_push(regs, total, &n, S_BH, id);
    /* Noise for publisher noise (+1 in reach-only), global reach DP. */
    if (rc == 0 && (rc = dy_llv2_draw(&self->nz_pub, &v)) == 0)
        for (int64_t j = 0; rc == 0 && j < v + (reach_only ? 1 : 0); j++)
            rc = s_push(regs, total, &n, S_PUB, 0);
    if (rc == 0 && (rc = dy_llv2_draw(&self->nz_reach, &v)) == 0)
        for (int64_t j = 0; rc == 0 && j < v; j++)
            rc = s_push(regs, total, &n, S_REACH, 0);
    /* Padding: the rest (at least 1 in reach-only: publisher adds at most
     * 2·off_pub + 1 of its T + 2). */
    while (rc == 0 && n < total)
        rc = s_push(regs, total, &n, S_PAD, 0);
    free(nk);
    if (rc < 0) {
        dy_scalars_free(ids, (size_t)nids);
        free(regs);
        return dy_llv2_err_internal(err, rc, "setup noise");
    }
    uint8_t *dst = dy_buf_extend(out, total * block);
    if (dst == NULL) {
        dy_scalars_free(ids, (size_t)nids);
        free(regs);
        return dy_llv2_err_internal(err, -ENOMEM, "setup noise");
    }
    s_noise_t job = {self, reach_only, regs, ids, dst};
    rc = dy_llv2_par_chunks(self, total, DY_LLV2_CHUNK, reach_only ? 2 : 6, reach_only ? 2 : 4,
                            s_noise_chunk, &job, err);
    dy_scalars_free(ids, (size_t)nids);
    free(regs);
    if (rc < 0)
        return rc;
    *ret_blocks = total;
    *ret_nbh = nids;
    return 0;
}

/* ---- K = 1: DestroyKeysAndCounts ---------------------------------------------------- */

typedef struct {
    dy_llv2_t *self;
    const uint8_t *in; /* the requisition's registers */
    uint8_t *out;      /* where they go */
} s_destroy_t;

static int s_destroy_chunk(void *arg, dy_llv2_tls_t *t, size_t b, size_t e, dy_err_t *err)
{
    s_destroy_t *j = arg;
    const dy_ec_t *ec = j->self->ec;
    const size_t B = DY_LLV2_CRV_BLOCK;
    size_t bad = 0, n = e - b;
    if (dy_ec_check_many(ec, j->in + b * B, n * 6, &bad, t->ctx) < 0)
        return dy_llv2_err_decode(err, "setup requisition", b + bad / 6);
    int rc = dy_ec_rand_scalars(ec, t->sc, n * 3);
    const EC_POINT *D = dy_ec_const(ec, DY_EC_DESTROYED);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        EC_POINT **p = t->pt + i * 4;
        BIGNUM **r = t->sc + i * 3;
        rc = dy_eg_encrypt(ec, j->self->tY, p[0], p[1], D, r[0], t->ctx);
        if (rc == 0)
            rc = dy_llv2_rand_point(ec, t->tmp[0], r[2], t->ctx);
        if (rc == 0)
            rc = dy_eg_encrypt(ec, j->self->tY, p[2], p[3], t->tmp[0], r[1], t->ctx);
    }
    if (rc < 0)
        return dy_llv2_err_internal(err, rc, "setup destroy");
    uint8_t *tmp = malloc(n * 4 * DY_PT_LEN);
    if (tmp == NULL)
        return dy_llv2_err_internal(err, -ENOMEM, "setup destroy");
    rc = dy_ec_encode_many(ec, t->pt, n * 4, tmp, t->ctx);
    if (rc < 0) {
        free(tmp);
        return dy_llv2_err_encode(err, rc, "setup destroy");
    }
    for (size_t i = 0; i < n; i++) {
        uint8_t *o = j->out + (b + i) * B;
        memcpy(o, j->in + (b + i) * B, DY_CT_LEN);
        memcpy(o + DY_CT_LEN, tmp + i * 4 * DY_PT_LEN, 2 * DY_CT_LEN);
    }
    free(tmp);
    return 0;
}

/* ---- the stage ----------------------------------------------------------------------- */

int dy_llv2_setup(dy_llv2_t *self, const dy_buf_t *reqs, size_t nreqs, const uint8_t *crv_in,
                  size_t crv_len, dy_buf_t *out, dy_stage_counters_t *cnt, dy_err_t *err)
{
    const size_t B = DY_LLV2_CRV_BLOCK;
    if (self == NULL || out == NULL || (nreqs && reqs == NULL) || (crv_len && crv_in == NULL))
        return dy_err_set(err, -EINVAL, "bad_params", "setup: missing argument");
    dy_llv2_out_reset(out);
    if (self->role != DY_LLV2_AGG && crv_len != 0)
        return dy_err_set(err, -EINVAL, "unexpected_input",
                          "setup: only the aggregator receives the NAs' outputs");
    size_t nreg = 0;
    for (size_t i = 0; i < nreqs; i++) {
        if (reqs[i].len % B != 0)
            return dy_err_set(err, -EINVAL, "bad_length",
                              "setup: requisition %zu length %zu is not a multiple of %zu", i,
                              reqs[i].len, B);
        nreg += reqs[i].len / B;
    }
    int rc = dy_llv2_check_blob(self, crv_in, crv_len, B, "setup input", err);
    if (rc < 0)
        return rc;
    size_t ncrv = crv_len / B, total = nreg + ncrv + (self->noise ? (size_t)self->T : 0);
    if ((rc = dy_buf_reserve(out, total * B)) < 0)
        return dy_llv2_err_internal(err, rc, "setup");
    bool destroy = self->prm.max_frequency == 1;
    for (size_t i = 0; i < nreqs; i++) {
        size_t n = reqs[i].len / B;
        uint8_t *dst = dy_buf_extend(out, reqs[i].len);
        if (dst == NULL)
            return dy_llv2_err_internal(err, -ENOMEM, "setup");
        if (destroy) {
            s_destroy_t job = {self, reqs[i].data, dst};
            rc = dy_llv2_par_chunks(self, n, DY_LLV2_CHUNK, 4, 3, s_destroy_chunk, &job, err);
        } else {
            rc = dy_llv2_check_blob(self, reqs[i].data, reqs[i].len, B, "setup requisition",
                                    err);
            if (rc == 0 && n)
                memcpy(dst, reqs[i].data, reqs[i].len);
        }
        if (rc < 0) {
            dy_llv2_out_reset(out);
            return rc;
        }
    }
    if (ncrv && dy_buf_append(out, crv_in, crv_len) < 0)
        return dy_llv2_err_internal(err, -ENOMEM, "setup");
    uint64_t nnoise = 0;
    if (self->noise) {
        int64_t nbh;
        if ((rc = dy_llv2_setup_noise(self, false, out, &nnoise, &nbh, err)) < 0) {
            dy_llv2_out_reset(out);
            return rc;
        }
    }
    if ((rc = dy_sort_blocks(out->data, total, B, self->prm.threads)) < 0) {
        dy_llv2_out_reset(out);
        return dy_llv2_err_internal(err, rc, "setup sort");
    }
    if (cnt) {
        cnt->in_blocks += nreg + ncrv;
        cnt->out_blocks += total;
        cnt->noise_blocks += nnoise;
    }
    return 0;
}
