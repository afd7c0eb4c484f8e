/* protocol/llv2_exec.c - LLv2 execution phases one to three (CRYPTO.md
 * §4.3-4.6) and the frequency-noise tuples.
 *
 * exec1  NA: blind the index, re-randomise key and count; sort.
 *       AGG: decrypt the indices to group keys, sort, drop groups larger
 *            than S, build one 520-byte tuple per group (+ frequency
 *            noise), sort.
 * exec2  NA: partially decrypt and re-randomise the flags under the partial
 *            key, re-randomise the count (+ frequency noise); sort.
 *       AGG: zero-test the flags, estimate the reach, build the SKA matrix.
 * exec3  NA: partially decrypt every matrix entry (deterministic, no sort).
 *       AGG: the first O of each column gives its bucket; histogram.
 *
 * Every phase runs in parallel chunks (llv2_int.h); the blinding scalar k
 * is drawn once per phase, shared by all threads and wiped at the end.
 */
#include "llv2_int.h"
#include "../par.h"

#include <stdlib.h>
#include <string.h>

#define S_CT DY_CT_LEN
#define S_PT DY_PT_LEN

/* ---- frequency-noise tuples (§4.6) ---------------------------------------------- */

enum { S_FDP = 0, S_FDEST, S_FPAD };

typedef struct {
    dy_llv2_t *self;
    const dy_ec_fixed_t *tf; /* flags' key */
    const uint8_t *kind;     /* per tuple: S_FDP, S_FDEST or S_FPAD */
    const uint16_t *f;       /* per tuple: the frequency of S_FDP */
    uint8_t *out;
} s_fnoise_t;

static int s_fnoise_chunk(void *arg, dy_llv2_tls_t *t, size_t b, size_t e, dy_err_t *err)
{
    s_fnoise_t *j = arg;
    const dy_ec_t *ec = j->self->ec;
    const dy_ec_fixed_t *tY = j->self->tY, *tf = j->tf;
    int rc = dy_ec_rand_scalars(ec, t->sc, (e - b) * 8);
    for (size_t i = b; rc == 0 && i < e; i++) {
        EC_POINT **o = t->pt + (i - b) * 8;
        BIGNUM **r = t->sc + (i - b) * 8, **s = r + 4;
        EC_POINT **R = t->tmp;
        switch (j->kind[i]) {
        case S_FDP: /* Enc(O), Enc(R), Enc(R'), Enc(f·P) */
            if ((rc = dy_llv2_rand_point(ec, R[0], s[0], t->ctx)) == 0 &&
                (rc = dy_llv2_rand_point(ec, R[1], s[1], t->ctx)) == 0 &&
                (rc = dy_eg_encrypt(ec, tf, o[0], o[1], NULL, r[0], t->ctx)) == 0 &&
                (rc = dy_eg_encrypt(ec, tf, o[2], o[3], R[0], r[1], t->ctx)) == 0 &&
                (rc = dy_eg_encrypt(ec, tf, o[4], o[5], R[1], r[2], t->ctx)) == 0)
                rc = dy_eg_encrypt(ec, tY, o[6], o[7], j->self->cP[j->f[i] - 1], r[3], t->ctx);
            break;
        case S_FDEST: /* Enc(R), Enc(R'), Enc(R''), Enc(R''') */
            for (int k = 0; rc == 0 && k < 4; k++)
                if ((rc = dy_llv2_rand_point(ec, R[k], s[k], t->ctx)) == 0)
                    rc = dy_eg_encrypt(ec, k == 3 ? tY : tf, o[2 * k], o[2 * k + 1], R[k], r[k],
                                       t->ctx);
            break;
        default: /* Enc(O), Enc(O), Enc(R), Enc(R) */
            if ((rc = dy_llv2_rand_point(ec, R[0], s[0], t->ctx)) == 0 &&
                (rc = dy_eg_encrypt(ec, tf, o[0], o[1], NULL, r[0], t->ctx)) == 0 &&
                (rc = dy_eg_encrypt(ec, tf, o[2], o[3], NULL, r[1], t->ctx)) == 0 &&
                (rc = dy_eg_encrypt(ec, tf, o[4], o[5], R[0], r[2], t->ctx)) == 0)
                rc = dy_eg_encrypt(ec, tY, o[6], o[7], R[0], r[3], t->ctx);
            break;
        }
    }
    if (rc < 0)
        return dy_llv2_err_internal(err, rc, "frequency noise");
    rc = dy_ec_encode_many(ec, t->pt, (e - b) * 8, j->out + b * DY_LLV2_TUPLE_BLOCK, t->ctx);
    return rc < 0 ? dy_llv2_err_encode(err, rc, "frequency noise") : 0;
}

int dy_llv2_freq_noise(dy_llv2_t *self, const dy_ec_fixed_t *tf, dy_buf_t *out,
                       uint64_t *ret_blocks, dy_err_t *err)
{
    int K = self->prm.max_frequency;
    size_t total = (size_t)(2 * self->off_freq * (K + 1)), n = 0;
    uint8_t *kind = calloc(total ? total : 1, 1);
    uint16_t *f = calloc(total ? total : 1, sizeof(*f));
    int rc = (kind && f) ? 0 : -ENOMEM;
    int64_t v;
    /* Each f = 1..K one component, then destroyed one component; every
     * component is at most 2·off, so the padding is never negative. */
    for (int fr = 1; rc == 0 && fr <= K + 1; fr++) {
        if ((rc = dy_llv2_draw(&self->nz_freq, &v)) < 0)
            break;
        for (int64_t i = 0; i < v && n < total; i++, n++) {
            kind[n] = fr <= K ? S_FDP : S_FDEST;
            f[n] = (uint16_t)(fr <= K ? fr : 0);
        }
    }
    for (; n < total; n++)
        kind[n] = S_FPAD;
    uint8_t *dst = rc == 0 ? dy_buf_extend(out, total * DY_LLV2_TUPLE_BLOCK) : NULL;
    if (rc == 0 && dst == NULL && total)
        rc = -ENOMEM;
    if (rc < 0) {
        free(kind);
        free(f);
        return dy_llv2_err_internal(err, rc, "frequency noise");
    }
    s_fnoise_t job = {self, tf, kind, f, dst};
    rc = dy_llv2_par_chunks(self, total, DY_LLV2_CHUNK, 8, 8, s_fnoise_chunk, &job, err);
    free(kind);
    free(f);
    if (rc == 0)
        *ret_blocks = total;
    return rc;
}

/* ---- shared ------------------------------------------------------------------------ */

static int s_len(size_t len, size_t block, const char *what, dy_err_t *err)
{
    if (len % block != 0)
        return dy_err_set(err, -EINVAL, "bad_length", "%s: length %zu is not a multiple of %zu",
                          what, len, block);
    return 0;
}

static int s_args(dy_llv2_t *self, const uint8_t *in, size_t len, dy_buf_t *out, dy_err_t *err)
{
    if (self == NULL || out == NULL || (len && in == NULL))
        return dy_err_set(err, -EINVAL, "bad_params", "missing argument");
    dy_llv2_out_reset(out);
    return 0;
}

/* k and kx = k·x mod n for one phase. */
static int s_blinding(dy_llv2_t *self, BIGNUM **k, BIGNUM **kx)
{
    *k = dy_scalar_new();
    *kx = dy_scalar_new();
    BN_CTX *ctx = BN_CTX_new();
    int rc = (*k && *kx && ctx) ? 0 : -ENOMEM;
    if (rc == 0)
        rc = dy_ec_rand_scalars(self->ec, k, 1);
    if (rc == 0 && BN_mod_mul(*kx, *k, self->x, dy_ec_order(self->ec), ctx) != 1)
        rc = -EIO;
    BN_CTX_free(ctx);
    return rc;
}

/* ---- exec1 NA ------------------------------------------------------------------------- */

typedef struct {
    dy_llv2_t *self;
    const uint8_t *in;
    uint8_t *out;
    const BIGNUM *k, *kx;
} s_e1na_t;

static int s_e1na_chunk(void *arg, dy_llv2_tls_t *t, size_t b, size_t e, dy_err_t *err)
{
    s_e1na_t *j = arg;
    const dy_ec_t *ec = j->self->ec;
    size_t n = e - b, bad = 0;
    if (dy_ec_decode_many(ec, t->pt, j->in + b * DY_LLV2_CRV_BLOCK, 6 * n, &bad, t->ctx) < 0)
        return dy_llv2_err_decode(err, "exec1 register", b + bad / 6);
    int rc = dy_ec_rand_scalars(ec, t->sc, 2 * n);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        EC_POINT **p = t->pt + 6 * i;
        if ((rc = dy_eg_blind(ec, p[0], p[1], j->k, j->kx, t->ctx)) == 0 &&
            (rc = dy_eg_rerand(ec, j->self->tY, p[2], p[3], t->sc[2 * i], t->ctx)) == 0)
            rc = dy_eg_rerand(ec, j->self->tY, p[4], p[5], t->sc[2 * i + 1], t->ctx);
    }
    if (rc < 0)
        return dy_llv2_err_internal(err, rc, "exec1");
    rc = dy_ec_encode_many(ec, t->pt, 6 * n, j->out + b * DY_LLV2_CRV_BLOCK, t->ctx);
    return rc < 0 ? dy_llv2_err_encode(err, rc, "exec1") : 0;
}

static int s_exec1_na(dy_llv2_t *self, const uint8_t *in, size_t len, dy_buf_t *out,
                      dy_stage_counters_t *cnt, dy_err_t *err)
{
    size_t n = len / DY_LLV2_CRV_BLOCK;
    uint8_t *dst = dy_buf_extend(out, len);
    if (dst == NULL && len)
        return dy_llv2_err_internal(err, -ENOMEM, "exec1");
    BIGNUM *k = NULL, *kx = NULL;
    int rc = s_blinding(self, &k, &kx);
    if (rc < 0) {
        rc = dy_llv2_err_internal(err, rc, "exec1 blinding");
    } else {
        s_e1na_t job = {self, in, dst, k, kx};
        rc = dy_llv2_par_chunks(self, n, DY_LLV2_CHUNK, 6, 2, s_e1na_chunk, &job, err);
    }
    dy_scalar_free(&k);
    dy_scalar_free(&kx);
    if (rc == 0 && (rc = dy_sort_blocks(out->data, n, DY_LLV2_CRV_BLOCK, self->prm.threads)) < 0)
        rc = dy_llv2_err_internal(err, rc, "exec1 sort");
    if (rc < 0) {
        dy_llv2_out_reset(out);
        return rc;
    }
    if (cnt) {
        cnt->in_blocks += n;
        cnt->out_blocks += n;
    }
    return 0;
}

/* ---- exec1 AGG ------------------------------------------------------------------------- */

#define S_GREC 37 /* group record: 33-byte compressed z, 4-byte big-endian register */

typedef struct {
    dy_llv2_t *self;
    const uint8_t *in;
    uint8_t *rec;           /* n records */
    const uint32_t *gstart; /* kept groups: first record */
    const uint32_t *gsize;  /* kept groups: members */
    uint8_t *out;
    EC_POINT **mem[DY_LLV2_MAX_THREADS]; /* per thread: 4·S member points */
    EC_POINT *CD[2], *CB[2];             /* Enc(D), Enc(B) */
} s_e1a_t;

static int s_e1a_keys_chunk(void *arg, dy_llv2_tls_t *t, size_t b, size_t e, dy_err_t *err)
{
    s_e1a_t *j = arg;
    size_t n = e - b;
    uint8_t *enc = NULL; /* z_i = k1k2·H(idx_i), the group keys */
    int rc = dy_llv2_partdec_items(j->self, t, j->in + b * DY_LLV2_CRV_BLOCK, n, 6, b,
                                   "exec1 register", &enc, err);
    if (rc < 0)
        return rc;
    for (size_t i = 0; i < n; i++) {
        uint8_t *r = j->rec + (b + i) * S_GREC;
        uint32_t v = (uint32_t)(b + i);
        dy_llv2_compress(enc + i * S_PT, r);
        r[33] = (uint8_t)(v >> 24);
        r[34] = (uint8_t)(v >> 16);
        r[35] = (uint8_t)(v >> 8);
        r[36] = (uint8_t)v;
    }
    free(enc);
    return 0;
}

static uint32_t s_rec_reg(const uint8_t *r)
{
    return ((uint32_t)r[33] << 24) | ((uint32_t)r[34] << 16) | ((uint32_t)r[35] << 8) | r[36];
}

/* dst = src + a - b, componentwise on ciphertexts given as point pairs. */
static int s_ct_add_sub(const dy_ec_t *ec, EC_POINT *du, EC_POINT *de, const EC_POINT *su,
                        const EC_POINT *se, const EC_POINT *au, const EC_POINT *ae,
                        const EC_POINT *bu, const EC_POINT *be, BN_CTX *ctx)
{
    int rc;
    if ((rc = dy_ec_add(ec, du, su, au, ctx)) < 0 || (rc = dy_ec_sub(ec, du, du, bu, ctx)) < 0 ||
        (rc = dy_ec_add(ec, de, se, ae, ctx)) < 0)
        return rc;
    return dy_ec_sub(ec, de, de, be, ctx);
}

static int s_e1a_group(s_e1a_t *j, dy_llv2_tls_t *t, size_t g, EC_POINT **o, BIGNUM **r,
                       EC_POINT **m)
{
    const dy_ec_t *ec = j->self->ec;
    const dy_ec_fixed_t *tY = j->self->tY;
    BN_CTX *ctx = t->ctx;
    EC_POINT **tmp = t->tmp;
    size_t s = j->gsize[g];
    int rc;
    /* r: r0, rc (or t), rb, re, r_1..r_{s-1} */
    if ((rc = dy_eg_encrypt(ec, tY, o[0], o[1], NULL, r[0], ctx)) < 0)
        return rc;
    if (s == 1) {
        /* [clean] count = C_0 + Enc(O; t): 2 F instead of r_c·flag_a. */
        if ((rc = dy_ec_copy(o[6], m[2])) < 0 || (rc = dy_ec_copy(o[7], m[3])) < 0 ||
            (rc = dy_eg_rerand(ec, tY, o[6], o[7], r[1], ctx)) < 0)
            return rc;
    } else {
        if ((rc = dy_ec_copy(o[6], m[2])) < 0 || (rc = dy_ec_copy(o[7], m[3])) < 0)
            return rc;
        for (size_t i = 1; i < s; i++) {
            EC_POINT **mi = m + 4 * i;
            /* flag_a += r_i·(K_i - K_0); count sum += C_i */
            if ((rc = dy_ec_sub(ec, tmp[0], mi[0], m[0], ctx)) < 0 ||
                (rc = dy_ec_mul(ec, tmp[1], tmp[0], r[3 + i], ctx)) < 0 ||
                (rc = dy_ec_add(ec, o[0], o[0], tmp[1], ctx)) < 0 ||
                (rc = dy_ec_sub(ec, tmp[0], mi[1], m[1], ctx)) < 0 ||
                (rc = dy_ec_mul(ec, tmp[1], tmp[0], r[3 + i], ctx)) < 0 ||
                (rc = dy_ec_add(ec, o[1], o[1], tmp[1], ctx)) < 0 ||
                (rc = dy_ec_add(ec, o[6], o[6], mi[2], ctx)) < 0 ||
                (rc = dy_ec_add(ec, o[7], o[7], mi[3], ctx)) < 0)
                return rc;
        }
        /* count += r_c·flag_a */
        if ((rc = dy_ec_mul(ec, tmp[1], o[0], r[1], ctx)) < 0 ||
            (rc = dy_ec_add(ec, o[6], o[6], tmp[1], ctx)) < 0 ||
            (rc = dy_ec_mul(ec, tmp[1], o[1], r[1], ctx)) < 0 ||
            (rc = dy_ec_add(ec, o[7], o[7], tmp[1], ctx)) < 0)
            return rc;
    }
    /* flag_b = r_b·(C_D + flag_a - K_0); flag_c = r_e·(C_B + flag_a - K_0) */
    for (int f = 0; f < 2; f++) {
        EC_POINT *const *C = f == 0 ? j->CD : j->CB;
        if ((rc = s_ct_add_sub(ec, tmp[0], tmp[1], C[0], C[1], o[0], o[1], m[0], m[1], ctx)) <
                0 ||
            (rc = dy_ec_mul(ec, o[2 + 2 * f], tmp[0], r[2 + f], ctx)) < 0 ||
            (rc = dy_ec_mul(ec, o[3 + 2 * f], tmp[1], r[2 + f], ctx)) < 0)
            return rc;
    }
    return 0;
}

static int s_e1a_groups_chunk(void *arg, dy_llv2_tls_t *t, size_t b, size_t e, dy_err_t *err)
{
    s_e1a_t *j = arg;
    const dy_ec_t *ec = j->self->ec;
    size_t S = (size_t)j->self->prm.num_sketches, nsc = 0;
    EC_POINT **m = j->mem[t->thread];
    if (m == NULL) {
        m = j->mem[t->thread] = dy_ec_points_new(ec, 4 * S);
        if (m == NULL)
            return dy_llv2_err_internal(err, -ENOMEM, "exec1 groups");
    }
    for (size_t g = b; g < e; g++)
        nsc += 3 + j->gsize[g];
    int rc = dy_ec_rand_scalars(ec, t->sc, nsc);
    if (rc < 0)
        return dy_llv2_err_internal(err, rc, "exec1 groups");
    BIGNUM **r = t->sc;
    for (size_t g = b; g < e; g++) {
        const uint8_t *rec = j->rec + (size_t)j->gstart[g] * S_GREC;
        for (size_t i = 0; i < j->gsize[g]; i++) {
            uint32_t reg = s_rec_reg(rec + i * S_GREC);
            size_t bad = 0;
            if (dy_ec_decode_many(ec, m + 4 * i, j->in + (size_t)reg * DY_LLV2_CRV_BLOCK + S_CT,
                                  4, &bad, t->ctx) < 0)
                return dy_llv2_err_decode(err, "exec1 register", reg);
        }
        if ((rc = s_e1a_group(j, t, g, t->pt + 8 * (g - b), r, m)) < 0)
            return dy_llv2_err_internal(err, rc, "exec1 tuple");
        r += 3 + j->gsize[g];
    }
    rc = dy_ec_encode_many(ec, t->pt, 8 * (e - b), j->out + b * DY_LLV2_TUPLE_BLOCK, t->ctx);
    return rc < 0 ? dy_llv2_err_encode(err, rc, "exec1 tuple") : 0;
}

static int s_exec1_agg(dy_llv2_t *self, const uint8_t *in, size_t len, dy_buf_t *out,
                       dy_stage_counters_t *cnt, dy_err_t *err)
{
    const dy_ec_t *ec = self->ec;
    size_t n = len / DY_LLV2_CRV_BLOCK, S = (size_t)self->prm.num_sketches;
    if (n > UINT32_MAX)
        return dy_err_set(err, -EINVAL, "bad_length", "exec1: too many registers");
    s_e1a_t job = {.self = self, .in = in};
    uint32_t *gstart = NULL, *gsize = NULL;
    BN_CTX *ctx = BN_CTX_new();
    BIGNUM *r2[2] = {dy_scalar_new(), dy_scalar_new()};
    for (int i = 0; i < 2; i++) {
        job.CD[i] = dy_ec_point_new(ec);
        job.CB[i] = dy_ec_point_new(ec);
    }
    job.rec = malloc(n ? n * S_GREC : 1);
    int rc = (ctx && r2[0] && r2[1] && job.rec && job.CD[0] && job.CD[1] && job.CB[0] &&
              job.CB[1]) ? 0 : -ENOMEM;
    if (rc < 0) {
        rc = dy_llv2_err_internal(err, rc, "exec1");
        goto done;
    }
    /* 1. Group keys z = k1k2·H(idx), validating every point. */
    if ((rc = dy_llv2_par_chunks(self, n, DY_LLV2_CHUNK, 6, 0, s_e1a_keys_chunk, &job, err)) < 0)
        goto done;
    /* 2. Sort, group, drop groups larger than S. */
    if ((rc = dy_sort_blocks(job.rec, n, S_GREC, self->prm.threads)) < 0) {
        rc = dy_llv2_err_internal(err, rc, "exec1 sort");
        goto done;
    }
    gstart = malloc(n ? n * sizeof(*gstart) : 1);
    gsize = malloc(n ? n * sizeof(*gsize) : 1);
    if (gstart == NULL || gsize == NULL) {
        rc = dy_llv2_err_internal(err, -ENOMEM, "exec1");
        goto done;
    }
    size_t ng = 0;
    uint64_t dropped = 0;
    for (size_t i = 0; i < n;) {
        size_t k = i + 1;
        while (k < n && memcmp(job.rec + k * S_GREC, job.rec + i * S_GREC, DY_PTC_LEN) == 0)
            k++;
        if (k - i > S) {
            dropped += k - i;
        } else {
            gstart[ng] = (uint32_t)i;
            gsize[ng++] = (uint32_t)(k - i);
        }
        i = k;
    }
    job.gstart = gstart;
    job.gsize = gsize;
    /* 3. C_D = Enc(D), C_B = Enc(B), once per call. */
    if ((rc = dy_ec_rand_scalars(ec, r2, 2)) < 0 ||
        (rc = dy_eg_encrypt(ec, self->tY, job.CD[0], job.CD[1],
                            dy_ec_const(ec, DY_EC_DESTROYED), r2[0], ctx)) < 0 ||
        (rc = dy_eg_encrypt(ec, self->tY, job.CB[0], job.CB[1],
                            dy_ec_const(ec, DY_EC_BLINDED_HIST), r2[1], ctx)) < 0) {
        rc = dy_llv2_err_internal(err, rc, "exec1");
        goto done;
    }
    /* 4. One tuple per kept group. */
    size_t nnoise = self->fnoise ? (size_t)(2 * self->off_freq * (self->prm.max_frequency + 1))
                                 : 0;
    if ((rc = dy_buf_reserve(out, (ng + nnoise) * DY_LLV2_TUPLE_BLOCK)) < 0) {
        rc = dy_llv2_err_internal(err, rc, "exec1");
        goto done;
    }
    job.out = dy_buf_extend(out, ng * DY_LLV2_TUPLE_BLOCK);
    if ((rc = dy_llv2_par_chunks(self, ng, 256, 8, 3 + S, s_e1a_groups_chunk, &job, err)) < 0)
        goto done;
    /* 5. Frequency noise. */
    uint64_t nb = 0;
    if (self->fnoise && (rc = dy_llv2_freq_noise(self, self->tY, out, &nb, err)) < 0)
        goto done;
    /* 6. Sort. */
    if ((rc = dy_sort_blocks(out->data, ng + nb, DY_LLV2_TUPLE_BLOCK, self->prm.threads)) < 0) {
        rc = dy_llv2_err_internal(err, rc, "exec1 sort");
        goto done;
    }
    if (cnt) {
        cnt->in_blocks += n;
        cnt->out_blocks += ng + nb;
        cnt->noise_blocks += nb;
        cnt->dropped += dropped;
    }
done:
    for (int i = 0; i < DY_LLV2_MAX_THREADS; i++)
        if (job.mem[i])
            dy_ec_points_free(job.mem[i], 4 * S);
    for (int i = 0; i < 2; i++) {
        EC_POINT_free(job.CD[i]);
        EC_POINT_free(job.CB[i]);
        dy_scalar_free(&r2[i]);
    }
    BN_CTX_free(ctx);
    free(job.rec);
    free(gstart);
    free(gsize);
    if (rc < 0)
        dy_llv2_out_reset(out);
    return rc;
}

int dy_llv2_exec1(dy_llv2_t *self, const uint8_t *in, size_t len, dy_buf_t *out,
                  dy_stage_counters_t *cnt, dy_err_t *err)
{
    int rc;
    if ((rc = s_args(self, in, len, out, err)) < 0 ||
        (rc = s_len(len, DY_LLV2_CRV_BLOCK, "exec1", err)) < 0)
        return rc;
    if (self->role == DY_LLV2_AGG)
        return s_exec1_agg(self, in, len, out, cnt, err);
    return s_exec1_na(self, in, len, out, cnt, err);
}

/* ---- exec2 NA ---------------------------------------------------------------------------- */

typedef struct {
    dy_llv2_t *self;
    const uint8_t *in;
    uint8_t *out;
    uint8_t *sel;      /* AGG: per tuple, selected for the SKA matrix */
    uint64_t cbh[DY_LLV2_MAX_THREADS]; /* AGG: per thread, tuples with flag_c = O */
    const size_t *idx; /* AGG pass 2: selected tuples in input order */
    EC_POINT **beta;   /* AGG: β_i = -(i+1)·E1 as (u, e), i = 0..K-2 */
} s_e2_t;

static int s_e2na_chunk(void *arg, dy_llv2_tls_t *t, size_t b, size_t e, dy_err_t *err)
{
    s_e2_t *j = arg;
    const dy_ec_t *ec = j->self->ec;
    size_t n = e - b, bad = 0;
    if (dy_ec_decode_many(ec, t->pt, j->in + b * DY_LLV2_TUPLE_BLOCK, 8 * n, &bad, t->ctx) < 0)
        return dy_llv2_err_decode(err, "exec2 tuple", b + bad / 8);
    int rc = dy_ec_rand_scalars(ec, t->sc, 4 * n);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        EC_POINT **p = t->pt + 8 * i;
        BIGNUM **r = t->sc + 4 * i;
        for (int f = 0; rc == 0 && f < 3; f++)
            if ((rc = dy_eg_partdec(ec, p[2 * f], p[2 * f + 1], j->self->x, t->ctx)) == 0)
                rc = dy_eg_rerand(ec, j->self->tYp, p[2 * f], p[2 * f + 1], r[f], t->ctx);
        if (rc == 0)
            rc = dy_eg_rerand(ec, j->self->tY, p[6], p[7], r[3], t->ctx);
    }
    if (rc < 0)
        return dy_llv2_err_internal(err, rc, "exec2");
    rc = dy_ec_encode_many(ec, t->pt, 8 * n, j->out + b * DY_LLV2_TUPLE_BLOCK, t->ctx);
    return rc < 0 ? dy_llv2_err_encode(err, rc, "exec2") : 0;
}

static int s_exec2_na(dy_llv2_t *self, const uint8_t *in, size_t len, dy_buf_t *out,
                      dy_stage_counters_t *cnt, dy_err_t *err)
{
    size_t n = len / DY_LLV2_TUPLE_BLOCK;
    size_t nnoise = self->fnoise ? (size_t)(2 * self->off_freq * (self->prm.max_frequency + 1))
                                 : 0;
    int rc = dy_buf_reserve(out, (n + nnoise) * DY_LLV2_TUPLE_BLOCK);
    if (rc < 0)
        return dy_llv2_err_internal(err, rc, "exec2");
    s_e2_t *job = calloc(1, sizeof(*job));
    if (job == NULL)
        return dy_llv2_err_internal(err, -ENOMEM, "exec2");
    *job = (s_e2_t){.self = self, .in = in, .out = dy_buf_extend(out, len)};
    rc = dy_llv2_par_chunks(self, n, DY_LLV2_CHUNK, 8, 4, s_e2na_chunk, job, err);
    free(job);
    uint64_t nb = 0;
    if (rc == 0 && self->fnoise)
        rc = dy_llv2_freq_noise(self, self->tYp, out, &nb, err);
    if (rc == 0 && (rc = dy_sort_blocks(out->data, n + nb, DY_LLV2_TUPLE_BLOCK,
                                        self->prm.threads)) < 0)
        rc = dy_llv2_err_internal(err, rc, "exec2 sort");
    if (rc < 0) {
        dy_llv2_out_reset(out);
        return rc;
    }
    if (cnt) {
        cnt->in_blocks += n;
        cnt->out_blocks += n + nb;
        cnt->noise_blocks += nb;
    }
    return 0;
}

/* ---- exec2 AGG --------------------------------------------------------------------------- */

static int s_e2a_flags_chunk(void *arg, dy_llv2_tls_t *t, size_t b, size_t e, dy_err_t *err)
{
    s_e2_t *j = arg;
    const dy_ec_t *ec = j->self->ec;
    const BIGNUM *x = j->self->x;
    bool freq = j->self->prm.max_frequency > 1;
    size_t n = e - b, bad = 0;
    if (dy_ec_decode_many(ec, t->pt, j->in + b * DY_LLV2_TUPLE_BLOCK, 8 * n, &bad, t->ctx) < 0)
        return dy_llv2_err_decode(err, "exec2 tuple", b + bad / 8);
    int rc = 0;
    uint64_t cbh = 0;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        EC_POINT **p = t->pt + 8 * i;
        bool fa = false, fb = false, fc = false;
        /* f_c for every tuple (reach); f_a, then f_b, only where they can
         * still select the tuple for the SKA matrix. */
        rc = dy_eg_is_zero(ec, p[4], p[5], x, &fc, t->ctx);
        if (rc == 0 && freq && !fc)
            rc = dy_eg_is_zero(ec, p[0], p[1], x, &fa, t->ctx);
        if (rc == 0 && fa)
            rc = dy_eg_is_zero(ec, p[2], p[3], x, &fb, t->ctx);
        cbh += fc;
        j->sel[b + i] = fa && !fb && !fc;
    }
    if (rc < 0)
        return dy_llv2_err_internal(err, rc, "exec2 zero test");
    j->cbh[t->thread] += cbh;
    return 0;
}

static int s_e2a_ska_chunk(void *arg, dy_llv2_tls_t *t, size_t b, size_t e, dy_err_t *err)
{
    s_e2_t *j = arg;
    const dy_ec_t *ec = j->self->ec;
    size_t K1 = (size_t)j->self->prm.max_frequency - 1, n = e - b;
    int rc = dy_ec_rand_scalars(ec, t->sc, K1 * n);
    if (rc < 0)
        return dy_llv2_err_internal(err, rc, "exec2 matrix");
    for (size_t i = 0; i < n; i++) {
        size_t tup = j->idx[b + i], bad = 0;
        EC_POINT **o = t->pt + 2 * K1 * i;
        BIGNUM **s = t->sc + K1 * i;
        /* The count (validated in pass 1), decoded into tmp[2..3]. */
        if (dy_ec_decode_many(ec, t->tmp + 2, j->in + tup * DY_LLV2_TUPLE_BLOCK + 3 * S_CT, 2,
                              &bad, t->ctx) < 0)
            return dy_llv2_err_decode(err, "exec2 tuple", tup);
        /* Destructor(β_i, count; s_i) = s_i·(count + β_i). */
        for (size_t k = 0; rc == 0 && k < K1; k++) {
            if ((rc = dy_ec_add(ec, t->tmp[0], t->tmp[2], j->beta[2 * k], t->ctx)) == 0 &&
                (rc = dy_ec_add(ec, t->tmp[1], t->tmp[3], j->beta[2 * k + 1], t->ctx)) == 0 &&
                (rc = dy_ec_mul(ec, o[2 * k], t->tmp[0], s[k], t->ctx)) == 0)
                rc = dy_ec_mul(ec, o[2 * k + 1], t->tmp[1], s[k], t->ctx);
        }
        if (rc < 0)
            return dy_llv2_err_internal(err, rc, "exec2 matrix");
    }
    rc = dy_ec_encode_many(ec, t->pt, 2 * K1 * n, j->out + b * K1 * S_CT, t->ctx);
    return rc < 0 ? dy_llv2_err_encode(err, rc, "exec2 matrix") : 0;
}

static int s_exec2_agg(dy_llv2_t *self, const uint8_t *in, size_t len, dy_buf_t *out,
                       int64_t *ret_reach, dy_stage_counters_t *cnt, dy_err_t *err)
{
    const dy_ec_t *ec = self->ec;
    size_t n = len / DY_LLV2_TUPLE_BLOCK;
    int K = self->prm.max_frequency;
    size_t K1 = (size_t)(K - 1);
    s_e2_t *job = calloc(1, sizeof(*job));
    size_t *idx = NULL;
    BN_CTX *ctx = BN_CTX_new();
    BIGNUM *r = dy_scalar_new();
    int rc = (job && ctx && r) ? 0 : -ENOMEM;
    if (rc == 0) {
        job->self = self;
        job->in = in;
        job->sel = calloc(n ? n : 1, 1);
        if (job->sel == NULL)
            rc = -ENOMEM;
    }
    if (rc < 0) {
        rc = dy_llv2_err_internal(err, rc, "exec2");
        goto done;
    }
    /* 1. Zero tests. */
    if ((rc = dy_llv2_par_chunks(self, n, DY_LLV2_CHUNK, 8, 0, s_e2a_flags_chunk, job, err)) < 0)
        goto done;
    /* 2. Reach. */
    uint64_t cbh = 0;
    for (int i = 0; i < DY_LLV2_MAX_THREADS; i++)
        cbh += job->cbh[i];
    int64_t active = (int64_t)n - (int64_t)cbh;
    if (self->noise)
        active -= 3 * self->off_reach;
    if (self->fnoise)
        active -= 3 * 2 * self->off_freq * (K + 1);
    if (active < 0)
        active = 0;
    if (active >= self->prm.sketch_size) {
        rc = dy_err_set(err, -EINVAL, "sketch_saturated",
                        "exec2: %lld active registers for a sketch of %lld", (long long)active,
                        (long long)self->prm.sketch_size);
        goto done;
    }
    int64_t reach = 0;
    rc = dy_ll_estimate(self->prm.decay_rate, self->prm.sketch_size, (uint64_t)active,
                        self->prm.vid_width, &reach);
    if (rc < 0) {
        rc = dy_err_set(err, rc == -ERANGE ? -ERANGE : -EINVAL, "sketch_saturated",
                        "exec2: the reach estimate failed");
        goto done;
    }
    /* 3. SKA matrix. */
    size_t nsel = 0;
    if (K > 1) {
        idx = malloc(n ? n * sizeof(*idx) : 1);
        job->beta = dy_ec_points_new(ec, 2 * K1);
        if (idx == NULL || job->beta == NULL) {
            rc = dy_llv2_err_internal(err, -ENOMEM, "exec2");
            goto done;
        }
        for (size_t i = 0; i < n; i++)
            if (job->sel[i])
                idx[nsel++] = i;
        /* E1 = Enc(P) fresh; β_0 = -E1, β_i = β_{i-1} - E1. */
        EC_POINT **bt = job->beta;
        if ((rc = dy_ec_rand_scalars(ec, &r, 1)) < 0 ||
            (rc = dy_eg_encrypt(ec, self->tY, bt[0], bt[1], self->cP[0], r, ctx)) < 0) {
            rc = dy_llv2_err_internal(err, rc, "exec2");
            goto done;
        }
        EC_POINT *e1u = dy_ec_point_new(ec), *e1e = dy_ec_point_new(ec);
        rc = (e1u && e1e) ? 0 : -ENOMEM;
        if (rc == 0 && (rc = dy_ec_copy(e1u, bt[0])) == 0 && (rc = dy_ec_copy(e1e, bt[1])) == 0 &&
            (rc = dy_ec_neg(ec, bt[0], bt[0], ctx)) == 0)
            rc = dy_ec_neg(ec, bt[1], bt[1], ctx);
        for (size_t k = 1; rc == 0 && k < K1; k++)
            if ((rc = dy_ec_sub(ec, bt[2 * k], bt[2 * k - 2], e1u, ctx)) == 0)
                rc = dy_ec_sub(ec, bt[2 * k + 1], bt[2 * k - 1], e1e, ctx);
        EC_POINT_free(e1u);
        EC_POINT_free(e1e);
        /* Affine β makes every later addition cheaper: the batched encoder
         * converts its points in place. */
        uint8_t *scratch = rc == 0 ? malloc(2 * K1 * S_PT) : NULL;
        if (rc == 0)
            rc = scratch ? dy_ec_encode_many(ec, bt, 2 * K1, scratch, ctx) : -ENOMEM;
        free(scratch);
        if (rc < 0) {
            rc = dy_llv2_err_internal(err, rc, "exec2");
            goto done;
        }
        if ((rc = dy_buf_reserve(out, nsel * K1 * S_CT)) < 0) {
            rc = dy_llv2_err_internal(err, rc, "exec2");
            goto done;
        }
        job->out = dy_buf_extend(out, nsel * K1 * S_CT);
        job->idx = idx;
        if ((rc = dy_llv2_par_chunks(self, nsel, 256, 2 * K1, K1, s_e2a_ska_chunk, job, err)) < 0)
            goto done;
    }
    *ret_reach = reach;
    if (cnt) {
        cnt->in_blocks += n;
        cnt->out_blocks += nsel;
    }
done:
    if (job) {
        free(job->sel);
        if (job->beta)
            dy_ec_points_free(job->beta, 2 * K1);
        free(job);
    }
    free(idx);
    dy_scalar_free(&r);
    BN_CTX_free(ctx);
    if (rc < 0)
        dy_llv2_out_reset(out);
    return rc;
}

int dy_llv2_exec2(dy_llv2_t *self, const uint8_t *in, size_t len, dy_buf_t *out,
                  int64_t *ret_reach, dy_stage_counters_t *cnt, dy_err_t *err)
{
    int rc;
    if ((rc = s_args(self, in, len, out, err)) < 0 ||
        (rc = s_len(len, DY_LLV2_TUPLE_BLOCK, "exec2", err)) < 0)
        return rc;
    if (self->role == DY_LLV2_AGG) {
        if (ret_reach == NULL)
            return dy_err_set(err, -EINVAL, "bad_params", "exec2: no place for the reach");
        return s_exec2_agg(self, in, len, out, ret_reach, cnt, err);
    }
    return s_exec2_na(self, in, len, out, cnt, err);
}

/* ---- exec3 ------------------------------------------------------------------------------- */

typedef struct {
    dy_llv2_t *self;
    const uint8_t *in;
    uint8_t *out;
    uint64_t *h; /* AGG: per thread, K buckets */
} s_e3_t;

static int s_e3na_chunk(void *arg, dy_llv2_tls_t *t, size_t b, size_t e, dy_err_t *err)
{
    s_e3_t *j = arg;
    size_t n = e - b;
    uint8_t *enc = NULL;
    int rc = dy_llv2_partdec_items(j->self, t, j->in + b * S_CT, n, 2, b, "exec3 ciphertext",
                                   &enc, err);
    if (rc < 0)
        return rc;
    for (size_t i = 0; i < n; i++) {
        uint8_t *o = j->out + (b + i) * S_CT;
        memcpy(o, j->in + (b + i) * S_CT, S_PT); /* u byte for byte */
        memcpy(o + S_PT, enc + i * S_PT, S_PT);
    }
    free(enc);
    return 0;
}

static int s_e3a_chunk(void *arg, dy_llv2_tls_t *t, size_t b, size_t e, dy_err_t *err)
{
    s_e3_t *j = arg;
    const dy_ec_t *ec = j->self->ec;
    size_t K = (size_t)j->self->prm.max_frequency, K1 = K - 1, n = e - b, bad = 0;
    if (dy_ec_decode_many(ec, t->pt, j->in + b * K1 * S_CT, 2 * K1 * n, &bad, t->ctx) < 0)
        return dy_llv2_err_decode(err, "exec3 column", b + bad / (2 * K1));
    uint64_t *h = j->h + (size_t)t->thread * K;
    int rc = 0;
    for (size_t c = 0; rc == 0 && c < n; c++) {
        EC_POINT **p = t->pt + 2 * K1 * c;
        size_t bucket = K1;
        for (size_t i = 0; rc == 0 && i < K1; i++) {
            bool z = false;
            rc = dy_eg_is_zero(ec, p[2 * i], p[2 * i + 1], j->self->x, &z, t->ctx);
            if (z) {
                bucket = i;
                break;
            }
        }
        h[bucket]++;
    }
    return rc < 0 ? dy_llv2_err_internal(err, rc, "exec3 zero test") : 0;
}

int dy_llv2_exec3(dy_llv2_t *self, const uint8_t *in, size_t len, dy_buf_t *out, double *freq,
                  dy_stage_counters_t *cnt, dy_err_t *err)
{
    int rc;
    if ((rc = s_args(self, in, len, out, err)) < 0)
        return rc;
    int K = self->prm.max_frequency;
    if (K < 2)
        return dy_err_set(err, -EINVAL, "reach_only",
                          "exec3: maximum frequency %d has no frequency phase", K);
    size_t row = (size_t)(K - 1) * S_CT, n = len / row;
    if ((rc = s_len(len, row, "exec3", err)) < 0)
        return rc;
    s_e3_t job = {.self = self, .in = in};
    if (self->role != DY_LLV2_AGG) {
        if ((job.out = dy_buf_extend(out, len)) == NULL && len)
            return dy_llv2_err_internal(err, -ENOMEM, "exec3");
        rc = dy_llv2_par_chunks(self, n * (size_t)(K - 1), DY_LLV2_CHUNK * 4, 2, 0,
                                s_e3na_chunk, &job, err);
        if (rc < 0) {
            dy_llv2_out_reset(out);
            return rc;
        }
        if (cnt) {
            cnt->in_blocks += n;
            cnt->out_blocks += n;
        }
        return 0;
    }
    if (freq == NULL)
        return dy_err_set(err, -EINVAL, "bad_params", "exec3: no place for the frequency");
    job.h = calloc((size_t)self->prm.threads * (size_t)K, sizeof(*job.h));
    if (job.h == NULL)
        return dy_llv2_err_internal(err, -ENOMEM, "exec3");
    rc = dy_llv2_par_chunks(self, n, 256, 2 * (size_t)(K - 1), 0, s_e3a_chunk, &job, err);
    if (rc == 0) {
        uint64_t total = 0;
        int64_t h[DY_LLV2_MAX_FREQUENCY];
        for (int i = 0; i < K; i++) {
            h[i] = 0;
            for (int t = 0; t < self->prm.threads; t++)
                h[i] += (int64_t)job.h[(size_t)t * (size_t)K + (size_t)i];
            if (self->fnoise)
                h[i] = h[i] > 3 * self->off_freq ? h[i] - 3 * self->off_freq : 0;
            total += (uint64_t)h[i];
        }
        if (total == 0) {
            rc = dy_err_set(err, -EINVAL, "empty_histogram",
                            "exec3: no register left in the frequency histogram");
        } else {
            for (int i = 0; i < K; i++)
                freq[i] = (double)h[i] / (double)total;
            if (cnt)
                cnt->in_blocks += n;
        }
    }
    free(job.h);
    return rc;
}
