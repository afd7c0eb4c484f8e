/* protocol/rollv2.c - reach-only LLv2 (CRYPTO.md §5.2): 130-byte index
 * registers, setup noise without keys and counts, and the excessive-noise
 * ciphertext X (Enc(N·P), N the number of distinct blinded-histogram ids)
 * carried as the last block of every output: summed at AGG's setup,
 * partially decrypted by the NAs, decrypted and looked up at AGG.
 */
#include "llv2_int.h"
#include "../par.h"

#include <stdlib.h>
#include <string.h>

#define S_B DY_LLV2_RO_BLOCK

typedef struct {
    const uint8_t *p;
    size_t len;
} s_part_t;

/* ---- setup ---------------------------------------------------------------------- */

/* x = X_self (+ the X blocks ending each part), encoded into out. */
static int s_setup_x(dy_llv2_t *self, int64_t nbh, const s_part_t *parts, size_t nparts,
                     uint8_t out[S_B], dy_err_t *err)
{
    const dy_ec_t *ec = self->ec;
    BN_CTX *ctx = BN_CTX_new();
    BIGNUM *r = dy_scalar_new(), *nb = dy_scalar_new();
    EC_POINT **p = dy_ec_points_new(ec, 5);
    int rc = (ctx && r && nb && p) ? 0 : -ENOMEM;
    if (rc == 0)
        rc = dy_ec_rand_scalars(ec, &r, 1);
    const EC_POINT *m = NULL;
    if (rc == 0 && nbh > 0) {
        if (BN_set_word(nb, (BN_ULONG)nbh) != 1)
            rc = -EIO;
        else if ((rc = dy_ec_mul(ec, p[4], dy_ec_const(ec, DY_EC_UNIT), nb, ctx)) == 0)
            m = p[4];
    }
    if (rc == 0)
        rc = dy_eg_encrypt(ec, self->tY, p[0], p[1], m, r, ctx);
    if (rc < 0) {
        rc = dy_llv2_err_internal(err, rc, "reach-only setup");
        goto done;
    }
    for (size_t i = 0; i < nparts; i++) {
        size_t bad = 0;
        if (dy_ec_decode_many(ec, p + 2, parts[i].p + parts[i].len - S_B, 2, &bad, ctx) < 0) {
            rc = dy_llv2_err_decode(err, "reach-only setup noise ciphertext", i);
            goto done;
        }
        if ((rc = dy_ec_add(ec, p[0], p[0], p[2], ctx)) < 0 ||
            (rc = dy_ec_add(ec, p[1], p[1], p[3], ctx)) < 0) {
            rc = dy_llv2_err_internal(err, rc, "reach-only setup");
            goto done;
        }
    }
    if ((rc = dy_ec_encode_many(ec, p, 2, out, ctx)) < 0)
        rc = dy_llv2_err_encode(err, rc, "reach-only setup noise ciphertext");
done:
    dy_ec_points_free(p, 5);
    dy_scalar_free(&r);
    dy_scalar_free(&nb);
    BN_CTX_free(ctx);
    return rc;
}

static int s_setup(dy_llv2_t *self, const dy_buf_t *reqs, size_t nreqs, const s_part_t *parts,
                   size_t nparts, dy_buf_t *out, dy_stage_counters_t *cnt, dy_err_t *err)
{
    size_t nreg = 0, nin = 0;
    int rc;
    for (size_t i = 0; i < nreqs; i++) {
        if (reqs[i].len % S_B != 0)
            return dy_err_set(err, -EINVAL, "bad_length",
                              "reach-only setup: requisition %zu length %zu is not a multiple "
                              "of %d", i, reqs[i].len, S_B);
        nreg += reqs[i].len / S_B;
    }
    for (size_t i = 0; i < nparts; i++) {
        if (parts[i].len % S_B != 0 || parts[i].len < S_B)
            return dy_err_set(err, -EINVAL, "bad_length",
                              "reach-only setup: input %zu length %zu is not a positive "
                              "multiple of %d", i, parts[i].len, S_B);
        nin += parts[i].len / S_B - 1;
    }
    /* Validate everything first. */
    for (size_t i = 0; i < nparts; i++)
        if ((rc = dy_llv2_check_blob(self, parts[i].p, parts[i].len, S_B, "reach-only setup input",
                                     err)) < 0)
            return rc;
    for (size_t i = 0; i < nreqs; i++)
        if ((rc = dy_llv2_check_blob(self, reqs[i].data, reqs[i].len, S_B,
                                     "reach-only setup requisition", err)) < 0)
            return rc;
    size_t nnoise = self->noise ? (size_t)self->T + 2 : 0, total = nreg + nin + nnoise;
    if ((rc = dy_buf_reserve(out, (total + 1) * S_B)) < 0)
        return dy_llv2_err_internal(err, rc, "reach-only setup");
    for (size_t i = 0; i < nreqs; i++)
        if (reqs[i].len)
            dy_buf_append(out, reqs[i].data, reqs[i].len);
    for (size_t i = 0; i < nparts; i++)
        dy_buf_append(out, parts[i].p, parts[i].len - S_B);
    int64_t nbh = 0;
    uint64_t nb = 0;
    if (self->noise && (rc = dy_llv2_setup_noise(self, true, out, &nb, &nbh, err)) < 0)
        goto fail;
    if ((rc = dy_sort_blocks(out->data, total, S_B, self->prm.threads)) < 0) {
        rc = dy_llv2_err_internal(err, rc, "reach-only setup sort");
        goto fail;
    }
    uint8_t *x = dy_buf_extend(out, S_B);
    if ((rc = s_setup_x(self, nbh, parts, nparts, x, err)) < 0)
        goto fail;
    if (cnt) {
        cnt->in_blocks += nreg + nin + nparts;
        cnt->out_blocks += total + 1;
        cnt->noise_blocks += nb;
    }
    return 0;
fail:
    dy_llv2_out_reset(out);
    return rc;
}

/* The split p of a || X1 || b || X2 with a and b block-sorted: block p is
 * X1.  Valid p satisfy maxD - 1 <= p <= minD over the descents D (indices i
 * in [1, L-2] with block i < block i-1).  -EINVAL unless exactly one. */
static int s_split(const uint8_t *in, size_t L, size_t *ret_p)
{
    if (L < 2)
        return -EINVAL;
    size_t lo = 0, hi = L - 2;
    for (size_t i = 1; i + 1 < L; i++)
        if (memcmp(in + i * S_B, in + (i - 1) * S_B, S_B) < 0) {
            if (i < hi)
                hi = i;
            if (i - 1 > lo)
                lo = i - 1;
        }
    if (lo != hi)
        return -EINVAL;
    *ret_p = lo;
    return 0;
}

int dy_rollv2_setup_agg(dy_llv2_t *self, const dy_buf_t *reqs, size_t nreqs, const uint8_t *na1,
                        size_t na1_len, const uint8_t *na2, size_t na2_len, dy_buf_t *out,
                        dy_stage_counters_t *cnt, dy_err_t *err)
{
    if (self == NULL || out == NULL || (nreqs && reqs == NULL) || (na1_len && !na1) ||
        (na2_len && !na2))
        return dy_err_set(err, -EINVAL, "bad_params", "reach-only setup: missing argument");
    dy_llv2_out_reset(out);
    if (self->role != DY_LLV2_AGG)
        return dy_err_set(err, -EINVAL, "unexpected_input",
                          "reach-only setup: only the aggregator receives the NAs' outputs");
    s_part_t parts[2] = {{na1, na1_len}, {na2, na2_len}};
    return s_setup(self, reqs, nreqs, parts, 2, out, cnt, err);
}

int dy_rollv2_setup(dy_llv2_t *self, const dy_buf_t *reqs, size_t nreqs, const uint8_t *crv_in,
                    size_t crv_len, dy_buf_t *out, dy_stage_counters_t *cnt, dy_err_t *err)
{
    if (self == NULL || out == NULL || (nreqs && reqs == NULL) || (crv_len && crv_in == NULL))
        return dy_err_set(err, -EINVAL, "bad_params", "reach-only setup: missing argument");
    dy_llv2_out_reset(out);
    if (self->role != DY_LLV2_AGG) {
        if (crv_len != 0)
            return dy_err_set(err, -EINVAL, "unexpected_input",
                              "reach-only setup: only the aggregator receives the NAs' outputs");
        return s_setup(self, reqs, nreqs, NULL, 0, out, cnt, err);
    }
    if (crv_len % S_B != 0)
        return dy_err_set(err, -EINVAL, "bad_length",
                          "reach-only setup: input length %zu is not a multiple of %d", crv_len,
                          S_B);
    size_t p;
    if (s_split(crv_in, crv_len / S_B, &p) < 0)
        return dy_err_set(err, -EINVAL, "ambiguous_input",
                          "reach-only setup: cannot tell where NA1's output ends in the "
                          "concatenation; pass the outputs apart (dy_rollv2_setup_agg)");
    size_t l1 = (p + 1) * S_B;
    return dy_rollv2_setup_agg(self, reqs, nreqs, crv_in, l1, crv_in + l1, crv_len - l1, out,
                               cnt, err);
}

/* ---- execution -------------------------------------------------------------------- */

typedef struct {
    dy_llv2_t *self;
    const uint8_t *in;
    uint8_t *out;      /* NA: blinded registers; AGG: 33-byte decrypted indices */
    const BIGNUM *k, *kx;
} s_ex_t;

static int s_na_chunk(void *arg, dy_llv2_tls_t *t, size_t b, size_t e, dy_err_t *err)
{
    s_ex_t *j = arg;
    const dy_ec_t *ec = j->self->ec;
    size_t n = e - b, bad = 0;
    if (dy_ec_decode_many(ec, t->pt, j->in + b * S_B, 2 * n, &bad, t->ctx) < 0)
        return dy_llv2_err_decode(err, "reach-only register", b + bad / 2);
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < n; i++)
        rc = dy_eg_blind(ec, t->pt[2 * i], t->pt[2 * i + 1], j->k, j->kx, t->ctx);
    if (rc < 0)
        return dy_llv2_err_internal(err, rc, "reach-only blind");
    rc = dy_ec_encode_many(ec, t->pt, 2 * n, j->out + b * S_B, t->ctx);
    return rc < 0 ? dy_llv2_err_encode(err, rc, "reach-only blind") : 0;
}

static int s_agg_chunk(void *arg, dy_llv2_tls_t *t, size_t b, size_t e, dy_err_t *err)
{
    s_ex_t *j = arg;
    size_t n = e - b;
    uint8_t *enc = NULL;
    int rc = dy_llv2_partdec_items(j->self, t, j->in + b * S_B, n, 2, b, "reach-only register",
                                   &enc, err);
    if (rc < 0)
        return rc;
    for (size_t i = 0; i < n; i++)
        dy_llv2_compress(enc + i * DY_PT_LEN, j->out + (b + i) * DY_PTC_LEN);
    free(enc);
    return 0;
}

/* Partially decrypts (NA) or decrypts (AGG) X: out gets the 130-byte block
 * (NA) or *ret_n the count N (AGG). */
static int s_exec_x(dy_llv2_t *self, const uint8_t *xin, uint8_t *xout, int64_t *ret_n,
                    dy_err_t *err)
{
    const dy_ec_t *ec = self->ec;
    BN_CTX *ctx = BN_CTX_new();
    EC_POINT **p = dy_ec_points_new(ec, 2);
    int rc = (ctx && p) ? 0 : -ENOMEM;
    size_t bad = 0;
    if (rc < 0) {
        rc = dy_llv2_err_internal(err, rc, "reach-only");
    } else if (dy_ec_decode_many(ec, p, xin, 2, &bad, ctx) < 0) {
        rc = dy_llv2_err_decode(err, "reach-only noise ciphertext", 0);
    } else if ((rc = dy_eg_partdec(ec, p[0], p[1], self->x, ctx)) < 0) {
        rc = dy_llv2_err_internal(err, rc, "reach-only");
    } else if (xout) {
        memcpy(xout, xin, DY_PT_LEN);
        if ((rc = dy_ec_encode(ec, p[1], xout + DY_PT_LEN, ctx)) < 0)
            rc = dy_llv2_err_encode(err, rc, "reach-only noise ciphertext");
    } else if (dy_ec_is_inf(ec, p[1])) {
        *ret_n = 0;
    } else {
        rc = dy_llv2_ro_lookup(self, p[1], ret_n, ctx, err);
    }
    dy_ec_points_free(p, 2);
    BN_CTX_free(ctx);
    return rc;
}

int dy_rollv2_exec(dy_llv2_t *self, const uint8_t *in, size_t len, dy_buf_t *out,
                   int64_t *ret_reach, dy_stage_counters_t *cnt, dy_err_t *err)
{
    if (self == NULL || out == NULL || (len && in == NULL))
        return dy_err_set(err, -EINVAL, "bad_params", "reach-only: missing argument");
    dy_llv2_out_reset(out);
    if (len % S_B != 0 || len < S_B)
        return dy_err_set(err, -EINVAL, "bad_length",
                          "reach-only: length %zu is not a positive multiple of %d", len, S_B);
    size_t n = len / S_B - 1;
    const uint8_t *xin = in + n * S_B;
    int rc;
    if (self->role != DY_LLV2_AGG) {
        uint8_t *dst = NULL;
        if ((rc = dy_buf_reserve(out, len)) < 0 || (dst = dy_buf_extend(out, len)) == NULL)
            return dy_llv2_err_internal(err, -ENOMEM, "reach-only");
        if ((rc = s_exec_x(self, xin, dst + n * S_B, NULL, err)) < 0)
            goto fail;
        BIGNUM *k = dy_scalar_new(), *kx = dy_scalar_new();
        BN_CTX *ctx = BN_CTX_new();
        rc = (k && kx && ctx) ? dy_ec_rand_scalars(self->ec, &k, 1) : -ENOMEM;
        if (rc == 0 && BN_mod_mul(kx, k, self->x, dy_ec_order(self->ec), ctx) != 1)
            rc = -EIO;
        BN_CTX_free(ctx);
        if (rc < 0) {
            rc = dy_llv2_err_internal(err, rc, "reach-only blinding");
        } else {
            s_ex_t job = {self, in, dst, k, kx};
            rc = dy_llv2_par_chunks(self, n, DY_LLV2_CHUNK, 2, 0, s_na_chunk, &job, err);
        }
        dy_scalar_free(&k);
        dy_scalar_free(&kx);
        if (rc == 0 && (rc = dy_sort_blocks(dst, n, S_B, self->prm.threads)) < 0)
            rc = dy_llv2_err_internal(err, rc, "reach-only sort");
        if (rc < 0)
            goto fail;
        if (cnt) {
            cnt->in_blocks += n + 1;
            cnt->out_blocks += n + 1;
        }
        return 0;
    }
    if (ret_reach == NULL)
        return dy_err_set(err, -EINVAL, "bad_params", "reach-only: no place for the reach");
    int64_t N = 0;
    if ((rc = s_exec_x(self, xin, NULL, &N, err)) < 0)
        return rc;
    uint8_t *z = malloc(n ? n * DY_PTC_LEN : 1);
    if (z == NULL)
        return dy_llv2_err_internal(err, -ENOMEM, "reach-only");
    s_ex_t job = {self, in, z, NULL, NULL};
    rc = dy_llv2_par_chunks(self, n, DY_LLV2_CHUNK, 2, 0, s_agg_chunk, &job, err);
    if (rc == 0 && (rc = dy_sort_blocks(z, n, DY_PTC_LEN, self->prm.threads)) < 0)
        rc = dy_llv2_err_internal(err, rc, "reach-only sort");
    int64_t U = 0;
    for (size_t i = 0; rc == 0 && i < n; i++)
        if (i == 0 || memcmp(z + i * DY_PTC_LEN, z + (i - 1) * DY_PTC_LEN, DY_PTC_LEN) != 0)
            U++;
    free(z);
    if (rc < 0)
        return rc;
    int64_t active = U - N;
    if (self->noise)
        active -= 2 + 3 * self->off_reach;
    if (active < 0)
        active = 0;
    if (active >= self->prm.sketch_size)
        return dy_err_set(err, -EINVAL, "sketch_saturated",
                          "reach-only: %lld active registers for a sketch of %lld",
                          (long long)active, (long long)self->prm.sketch_size);
    int64_t reach;
    rc = dy_ll_estimate(self->prm.decay_rate, self->prm.sketch_size, (uint64_t)active,
                        self->prm.vid_width, &reach);
    if (rc < 0)
        return dy_err_set(err, rc == -ERANGE ? -ERANGE : -EINVAL, "sketch_saturated",
                          "reach-only: the reach estimate failed");
    *ret_reach = reach;
    if (cnt)
        cnt->in_blocks += n + 1;
    return 0;
fail:
    dy_llv2_out_reset(out);
    return rc;
}
