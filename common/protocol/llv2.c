/* protocol/llv2.c - the LLv2 context (CRYPTO.md §2.1): this duchy's secret,
 * the composite key Y = Y1 + Y2 + Y3 and its partial key (NA1: Y2 + Y3,
 * NA2: Y3, AGG: Y), fixed-base tables for both, the count points c·P
 * (c = 1..K+1), the reach-only excessive-noise lookup, the noise parameters
 * (§7.1, n = 3 contributors) and T (§4.2); plus the parameter check, key
 * helpers and the parallel chunk runner shared by every stage.
 */
#include "llv2_int.h"
#include "../par.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define S_CONTRIBUTORS 3

/* ---- errors ---------------------------------------------------------------- */

int dy_llv2_err_decode(dy_err_t *err, const char *what, size_t item)
{
    return dy_err_set(err, -EINVAL, "invalid_point", "%s: invalid point in item %zu", what,
                      item);
}

int dy_llv2_err_encode(dy_err_t *err, int rc, const char *what)
{
    if (rc == -EDOM)
        return dy_err_set(err, -EDOM, "identity_point", "%s: an output point is the identity",
                          what);
    return dy_llv2_err_internal(err, rc, what);
}

int dy_llv2_err_internal(dy_err_t *err, int rc, const char *what)
{
    if (rc == -ENOMEM)
        return dy_err_set(err, rc, "out_of_memory", "%s: out of memory", what);
    return dy_err_set(err, rc < 0 ? rc : -EIO, "internal", "%s: crypto library failure", what);
}

void dy_llv2_out_reset(dy_buf_t *out)
{
    out->len = 0;
}

/* ---- parallel chunk runner ------------------------------------------------------ */

typedef struct {
    const dy_ec_t *ec;
    size_t chunk, npt, nsc;
    dy_llv2_chunk_fn fn;
    void *arg;
    dy_err_t *errs;    /* one per thread */
    int *rcs;          /* one per thread */
    atomic_int stop;   /* set by the first failing thread */
} s_job_t;

static void s_tls_free(dy_llv2_tls_t *t)
{
    dy_ec_points_free(t->pt, t->npt);
    dy_scalars_free(t->sc, t->nsc);
    for (size_t i = 0; i < DY_ARRAY_LEN(t->tmp); i++)
        if (t->tmp[i])
            EC_POINT_free(t->tmp[i]);
    BN_CTX_free(t->ctx);
    memset(t, 0, sizeof(*t));
}

static int s_tls_init(const dy_ec_t *ec, dy_llv2_tls_t *t, size_t npt, size_t nsc)
{
    memset(t, 0, sizeof(*t));
    t->ctx = BN_CTX_new();
    t->npt = npt;
    t->nsc = nsc;
    t->pt = npt ? dy_ec_points_new(ec, npt) : NULL;
    t->sc = nsc ? dy_scalars_new(nsc) : NULL;
    bool ok = t->ctx && (npt == 0 || t->pt) && (nsc == 0 || t->sc);
    for (size_t i = 0; ok && i < DY_ARRAY_LEN(t->tmp); i++)
        ok = (t->tmp[i] = dy_ec_point_new(ec)) != NULL;
    if (!ok) {
        if (t->pt == NULL)
            t->npt = 0;
        if (t->sc == NULL)
            t->nsc = 0;
        s_tls_free(t);
        return -ENOMEM;
    }
    return 0;
}

static int s_thread(void *arg, size_t begin, size_t end, int thread)
{
    s_job_t *job = arg;
    dy_llv2_tls_t t;
    dy_err_t *err = &job->errs[thread];
    size_t per = end - begin < job->chunk ? end - begin : job->chunk;
    int rc = s_tls_init(job->ec, &t, job->npt * per, job->nsc * per);
    if (rc < 0) {
        rc = dy_llv2_err_internal(err, rc, "thread scratch");
    } else {
        t.thread = thread;
        for (size_t b = begin; b < end; b += per) {
            if (atomic_load_explicit(&job->stop, memory_order_relaxed)) {
                rc = -ECANCELED;
                break;
            }
            size_t e = end - b < per ? end : b + per;
            rc = job->fn(job->arg, &t, b, e, err);
            if (rc < 0)
                break;
        }
        s_tls_free(&t);
    }
    if (rc < 0 && rc != -ECANCELED)
        atomic_store(&job->stop, 1);
    job->rcs[thread] = rc;
    return rc;
}

int dy_llv2_par_chunks_ec(const dy_ec_t *ec, int threads, size_t n, size_t chunk,
                          size_t npt_per, size_t nsc_per, dy_llv2_chunk_fn fn, void *arg,
                          dy_err_t *err)
{
    if (n == 0)
        return 0;
    if (threads < 1)
        threads = 1;
    if (chunk == 0)
        chunk = DY_LLV2_CHUNK;
    s_job_t job = {.ec = ec, .chunk = chunk, .npt = npt_per, .nsc = nsc_per, .fn = fn,
                   .arg = arg};
    atomic_init(&job.stop, 0);
    job.errs = calloc((size_t)threads, sizeof(*job.errs));
    job.rcs = calloc((size_t)threads, sizeof(*job.rcs));
    if (job.errs == NULL || job.rcs == NULL) {
        free(job.errs);
        free(job.rcs);
        return dy_llv2_err_internal(err, -ENOMEM, "thread state");
    }
    for (int i = 0; i < threads; i++)
        dy_err_clear(&job.errs[i]);
    int rc = dy_par_for(threads, n, 1, s_thread, &job);
    if (rc < 0) {
        /* Report the lowest thread's real error (not a cancellation). */
        int found = -1;
        for (int i = 0; i < threads && found < 0; i++)
            if (job.rcs[i] < 0 && job.rcs[i] != -ECANCELED)
                found = i;
        if (found >= 0 && job.errs[found].outcome != DY_OUTCOME_OK) {
            rc = job.rcs[found];
            dy_err_set(err, rc, job.errs[found].code, "%s", job.errs[found].message);
        } else {
            if (found >= 0)
                rc = job.rcs[found];
            dy_llv2_err_internal(err, rc, "parallel run");
        }
    }
    free(job.errs);
    free(job.rcs);
    return rc;
}

int dy_llv2_par_chunks(const dy_llv2_t *self, size_t n, size_t chunk, size_t npt_per,
                       size_t nsc_per, dy_llv2_chunk_fn fn, void *arg, dy_err_t *err)
{
    return dy_llv2_par_chunks_ec(self->ec, self->prm.threads, n, chunk, npt_per, nsc_per, fn,
                                 arg, err);
}

/* ---- blob validation ------------------------------------------------------------- */

typedef struct {
    const dy_ec_t *ec;
    const uint8_t *blob;
    size_t ppb; /* points per block */
    const char *what;
} s_check_t;

static int s_check_chunk(void *arg, dy_llv2_tls_t *t, size_t b, size_t e, dy_err_t *err)
{
    s_check_t *c = arg;
    size_t bad = 0;
    if (dy_ec_check_many(c->ec, c->blob + b * c->ppb * DY_PT_LEN, (e - b) * c->ppb, &bad,
                         t->ctx) < 0)
        return dy_llv2_err_decode(err, c->what, b + bad / c->ppb);
    return 0;
}

int dy_llv2_check_blob(const dy_llv2_t *self, const uint8_t *blob, size_t len, size_t block,
                       const char *what, dy_err_t *err)
{
    if (len % block != 0)
        return dy_err_set(err, -EINVAL, "bad_length",
                          "%s: length %zu is not a multiple of %zu", what, len, block);
    s_check_t c = {self->ec, blob, block / DY_PT_LEN, what};
    return dy_llv2_par_chunks(self, len / block, 4 * DY_LLV2_CHUNK, 0, 0, s_check_chunk, &c,
                              err);
}

/* ---- small helpers ------------------------------------------------------------------ */

int dy_llv2_rand_point(const dy_ec_t *ec, EC_POINT *r, const BIGNUM *s, BN_CTX *ctx)
{
    return dy_ec_mul_g(ec, r, s, ctx);
}

void dy_llv2_compress(const uint8_t in[DY_PT_LEN], uint8_t out[DY_PTC_LEN])
{
    out[0] = (uint8_t)(0x02 | (in[DY_PT_LEN - 1] & 1));
    memcpy(out + 1, in + 1, 32);
}

int dy_llv2_draw(const dy_noise_t *nz, int64_t *ret)
{
    int rc = dy_noise_draw(nz, ret);
    if (rc < 0)
        return rc;
    if (*ret < 0 || *ret > 2 * nz->offset)
        return -EIO;
    return 0;
}

/* ---- parameters ----------------------------------------------------------------------- */

static int s_check_dp(dy_noise_mech_t mech, dy_dp_params_t dp, double s, const char *what,
                      int64_t *ret_off, dy_err_t *err)
{
    /* PROTOCOL.md §3.1; delta may reach 1 (the reference's mpc_noise is (1, 1)). */
    if (!(dp.epsilon >= 1e-5) || !(dp.delta > 0) || !isfinite(dp.epsilon) || !isfinite(dp.delta))
        return dy_err_set(err, -EINVAL, "bad_params", "%s: epsilon must be >= 1e-5 and delta "
                          "> 0", what);
    int rc = dy_noise_offset(mech, dp, S_CONTRIBUTORS, s, ret_off);
    if (rc < 0)
        return dy_err_set(err, -EINVAL, "bad_params", "%s: invalid noise parameters", what);
    return 0;
}

/* Offsets for params (already range-checked); all 0 without noise. */
static int s_offsets(const dy_llv2_params_t *p, bool reach_only, int64_t off[4], dy_err_t *err)
{
    memset(off, 0, 4 * sizeof(off[0]));
    if (p->noise == DY_NOISE_NONE)
        return 0;
    int rc;
    if ((rc = s_check_dp(p->noise, p->blinded_histogram, 2, "blinded_histogram", &off[0],
                         err)) < 0 ||
        (rc = s_check_dp(p->noise, p->publisher, p->num_sketches, "publisher", &off[1],
                         err)) < 0 ||
        (rc = s_check_dp(p->noise, p->reach, 1, "reach", &off[2], err)) < 0)
        return rc;
    if (!reach_only && p->max_frequency > 1 &&
        (rc = s_check_dp(p->noise, p->frequency, 2, "frequency", &off[3], err)) < 0)
        return rc;
    return 0;
}

static int64_t s_total_noise(const int64_t off[4], int S)
{
    return 2 * off[1] + 2 * off[2] + off[0] * (int64_t)S * (S + 1);
}

int dy_llv2_params_check(const dy_llv2_params_t *params, bool reach_only, dy_err_t *err)
{
    const dy_llv2_params_t *p = params;
    if (p == NULL)
        return dy_err_set(err, -EINVAL, "bad_params", "no parameters");
    if (!(p->decay_rate > 1) || !isfinite(p->decay_rate))
        return dy_err_set(err, -EINVAL, "bad_params", "decay rate must be > 1");
    if (p->sketch_size < 1 || p->sketch_size > (INT64_C(1) << 40))
        return dy_err_set(err, -EINVAL, "bad_params", "sketch size out of range");
    if (!reach_only && (p->max_frequency < 1 || p->max_frequency > DY_LLV2_MAX_FREQUENCY))
        return dy_err_set(err, -EINVAL, "bad_params", "maximum frequency must be in [1, %d]",
                          DY_LLV2_MAX_FREQUENCY);
    if (p->num_sketches < 1 || p->num_sketches > DY_LLV2_MAX_SKETCHES)
        return dy_err_set(err, -EINVAL, "bad_params", "number of sketches must be in [1, %d]",
                          DY_LLV2_MAX_SKETCHES);
    if (!(p->vid_width > 0.0f) || !(p->vid_width <= 1.0f))
        return dy_err_set(err, -EINVAL, "bad_params", "vid sampling width must be in (0, 1]");
    if (p->threads < 1 || p->threads > DY_LLV2_MAX_THREADS)
        return dy_err_set(err, -EINVAL, "bad_params", "threads must be in [1, %d]",
                          DY_LLV2_MAX_THREADS);
    switch (p->noise) {
    case DY_NOISE_NONE:
    case DY_NOISE_GEOMETRIC:
    case DY_NOISE_DISCRETE_GAUSSIAN:
        break;
    case DY_NOISE_CONTINUOUS_GAUSSIAN:
        return dy_err_set(err, -EINVAL, "unsupported_noise_mechanism",
                          "CONTINUOUS_GAUSSIAN is not supported by LLv2");
    default:
        return dy_err_set(err, -EINVAL, "unsupported_noise_mechanism",
                          "noise mechanism %d is not supported", (int)p->noise);
    }
    int64_t off[4];
    int rc = s_offsets(p, reach_only, off, err);
    if (rc < 0)
        return rc;
    int K = reach_only ? 1 : p->max_frequency;
    if (s_total_noise(off, p->num_sketches) > DY_LLV2_MAX_NOISE ||
        2 * off[3] * (K + 1) > DY_LLV2_MAX_NOISE ||
        2 * off[0] * p->num_sketches * S_CONTRIBUTORS > DY_LLV2_MAX_NOISE)
        return dy_err_set(err, -EINVAL, "bad_params", "noise offsets too large");
    return 0;
}

/* ---- keys ------------------------------------------------------------------------------ */

int dy_llv2_keygen(const dy_ec_t *ec, uint8_t x[DY_SCALAR_LEN], uint8_t pub[DY_PTC_LEN])
{
    BIGNUM *s = dy_scalar_new();
    EC_POINT *p = dy_ec_point_new(ec);
    BN_CTX *ctx = BN_CTX_new();
    int rc = -ENOMEM;
    if (s && p && ctx) {
        uint8_t xb[DY_SCALAR_LEN], pb[DY_PTC_LEN];
        rc = dy_ec_rand_scalars(ec, &s, 1);
        if (rc == 0)
            rc = dy_ec_mul_g(ec, p, s, ctx);
        if (rc == 0)
            rc = dy_ec_encode_compressed(ec, p, pb, ctx);
        if (rc == 0)
            rc = dy_ec_scalar_to_bytes(s, xb);
        if (rc == 0) {
            memcpy(x, xb, sizeof(xb));
            memcpy(pub, pb, sizeof(pb));
        }
        OPENSSL_cleanse(xb, sizeof(xb));
    }
    dy_scalar_free(&s);
    EC_POINT_free(p);
    BN_CTX_free(ctx);
    return rc;
}

/* r = Σ decoded keys; -EINVAL on a bad key or an identity sum. */
static int s_sum_keys(const dy_ec_t *ec, const uint8_t (*pubs)[DY_PTC_LEN], size_t n,
                      EC_POINT *r, BN_CTX *ctx)
{
    EC_POINT *k = dy_ec_point_new(ec);
    if (k == NULL)
        return -ENOMEM;
    int rc = EC_POINT_set_to_infinity(dy_ec_group(ec), r) == 1 ? 0 : -EIO;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        rc = dy_ec_decode_compressed(ec, k, pubs[i], DY_PTC_LEN, ctx);
        if (rc == 0)
            rc = dy_ec_add(ec, r, r, k, ctx);
    }
    EC_POINT_free(k);
    if (rc == 0 && dy_ec_is_inf(ec, r))
        rc = -EINVAL;
    return rc;
}

int dy_llv2_combine_keys(const dy_ec_t *ec, const uint8_t (*pubs)[DY_PTC_LEN], size_t n,
                         uint8_t out[DY_PTC_LEN])
{
    if (n == 0)
        return -EINVAL;
    EC_POINT *r = dy_ec_point_new(ec);
    BN_CTX *ctx = BN_CTX_new();
    int rc = -ENOMEM;
    if (r && ctx) {
        rc = s_sum_keys(ec, pubs, n, r, ctx);
        if (rc == 0)
            rc = dy_ec_encode_compressed(ec, r, out, ctx);
    }
    EC_POINT_free(r);
    BN_CTX_free(ctx);
    return rc;
}

/* ---- the context ----------------------------------------------------------------------- */

void dy_llv2_destroy(dy_llv2_t **self_p)
{
    if (self_p == NULL || *self_p == NULL)
        return;
    dy_llv2_t *self = *self_p;
    dy_scalar_free(&self->x);
    EC_POINT_free(self->Y);
    EC_POINT_free(self->Yp);
    dy_ec_fixed_destroy(&self->tY);
    dy_ec_fixed_destroy(&self->tYp_own);
    if (self->cP)
        dy_ec_points_free(self->cP, (size_t)self->prm.max_frequency + 1);
    dy_noise_free(&self->nz_bh);
    dy_noise_free(&self->nz_pub);
    dy_noise_free(&self->nz_reach);
    dy_noise_free(&self->nz_freq);
    free(self->ro_tab);
    free(self);
    *self_p = NULL;
}

static int s_new_keys(dy_llv2_t *self, const uint8_t x[DY_SCALAR_LEN],
                      const uint8_t (*pub)[DY_PTC_LEN], BN_CTX *ctx, dy_err_t *err)
{
    const dy_ec_t *ec = self->ec;
    int r = (int)self->role;
    if (dy_ec_scalar_from_bytes(ec, self->x, x, DY_SCALAR_LEN) < 0)
        return dy_err_set(err, -EINVAL, "bad_key", "secret key out of range");
    EC_POINT *mine = dy_ec_point_new(ec), *xg = dy_ec_point_new(ec);
    int rc = (mine && xg) ? 0 : -ENOMEM;
    if (rc == 0 && dy_ec_decode_compressed(ec, mine, pub[r], DY_PTC_LEN, ctx) < 0)
        rc = dy_err_set(err, -EINVAL, "bad_key", "own public key does not decode");
    if (rc == 0 && (rc = dy_ec_mul_g(ec, xg, self->x, ctx)) == 0 &&
        dy_ec_eq(ec, xg, mine, ctx) != 1)
        rc = dy_err_set(err, -EINVAL, "bad_key", "public key does not match the secret");
    EC_POINT_free(mine);
    EC_POINT_free(xg);
    if (rc < 0)
        return err && err->outcome != DY_OUTCOME_OK ? rc : dy_llv2_err_internal(err, rc, "keys");
    /* Composite key, and the partial key: the keys after this duchy. */
    const uint8_t (*keys)[DY_PTC_LEN] = (const uint8_t (*)[DY_PTC_LEN])pub;
    if (s_sum_keys(ec, keys, 3, self->Y, ctx) < 0)
        return dy_err_set(err, -EINVAL, "bad_key", "a key is invalid or the composite is O");
    if (self->role == DY_LLV2_AGG) {
        if (dy_ec_copy(self->Yp, self->Y) < 0)
            return dy_llv2_err_internal(err, -EIO, "keys");
    } else if (s_sum_keys(ec, keys + r + 1, (size_t)(2 - r), self->Yp, ctx) < 0) {
        return dy_err_set(err, -EINVAL, "bad_key", "the partial key is invalid or O");
    }
    return 0;
}

dy_llv2_t *dy_llv2_new(const dy_ec_t *ec, const dy_llv2_params_t *params, dy_llv2_role_t role,
                       const uint8_t x[DY_SCALAR_LEN], const uint8_t (*pub)[DY_PTC_LEN],
                       dy_err_t *err)
{
    if (ec == NULL || x == NULL || pub == NULL || (int)role < 0 || (int)role > 2) {
        dy_err_set(err, -EINVAL, "bad_params", "missing context, keys or role");
        return NULL;
    }
    if (dy_llv2_params_check(params, params && params->max_frequency == 1, err) < 0)
        return NULL;
    dy_llv2_t *self = calloc(1, sizeof(*self));
    BN_CTX *ctx = BN_CTX_new();
    int rc = 0;
    if (self == NULL || ctx == NULL) {
        rc = -ENOMEM;
        goto fail;
    }
    self->ec = ec;
    self->prm = *params;
    self->role = role;
    int K = params->max_frequency;
    self->x = dy_scalar_new();
    self->Y = dy_ec_point_new(ec);
    self->Yp = dy_ec_point_new(ec);
    self->cP = dy_ec_points_new(ec, (size_t)K + 1);
    if (!self->x || !self->Y || !self->Yp || !self->cP) {
        rc = -ENOMEM;
        goto fail;
    }
    if ((rc = s_new_keys(self, x, pub, ctx, err)) < 0)
        goto fail;
    self->tY = dy_ec_fixed_new(ec, self->Y);
    if (self->tY == NULL) {
        rc = -ENOMEM;
        goto fail;
    }
    if (role == DY_LLV2_AGG) {
        self->tYp = self->tY;
    } else {
        self->tYp_own = dy_ec_fixed_new(ec, self->Yp);
        if (self->tYp_own == NULL) {
            rc = -ENOMEM;
            goto fail;
        }
        self->tYp = self->tYp_own;
    }
    /* c·P by repeated addition. */
    const EC_POINT *P = dy_ec_const(ec, DY_EC_UNIT);
    rc = dy_ec_copy(self->cP[0], P);
    for (int c = 1; rc == 0 && c <= K; c++)
        rc = dy_ec_add(ec, self->cP[c], self->cP[c - 1], P, ctx);
    if (rc < 0)
        goto fail;
    /* Noise. */
    self->noise = params->noise != DY_NOISE_NONE;
    self->fnoise = self->noise && K > 1;
    if (self->noise) {
        int S = params->num_sketches;
        if ((rc = dy_noise_init(&self->nz_bh, params->noise, params->blinded_histogram,
                                S_CONTRIBUTORS, 2)) < 0 ||
            (rc = dy_noise_init(&self->nz_pub, params->noise, params->publisher,
                                S_CONTRIBUTORS, S)) < 0 ||
            (rc = dy_noise_init(&self->nz_reach, params->noise, params->reach, S_CONTRIBUTORS,
                                1)) < 0 ||
            (self->fnoise && (rc = dy_noise_init(&self->nz_freq, params->noise,
                                                 params->frequency, S_CONTRIBUTORS, 2)) < 0)) {
            dy_err_set(err, -EINVAL, "bad_params", "noise parameters");
            goto fail;
        }
        self->off_bh = self->nz_bh.offset;
        self->off_pub = self->nz_pub.offset;
        self->off_reach = self->nz_reach.offset;
        self->off_freq = self->fnoise ? self->nz_freq.offset : 0;
        int64_t off[4] = {self->off_bh, self->off_pub, self->off_reach, self->off_freq};
        self->T = s_total_noise(off, S);
    }
    BN_CTX_free(ctx);
    return self;
fail:
    if (rc == -ENOMEM)
        dy_llv2_err_internal(err, rc, "context");
    else if (err && err->outcome == DY_OUTCOME_OK)
        dy_llv2_err_internal(err, rc, "context");
    BN_CTX_free(ctx);
    dy_llv2_destroy(&self);
    return NULL;
}

/* ---- reach-only excessive-noise lookup ----------------------------------------------------- */

static int s_ro_build(dy_llv2_t *self, BN_CTX *ctx)
{
    int64_t nmax = 2 * self->off_bh * self->prm.num_sketches * S_CONTRIBUTORS;
    self->ro_built = true;
    if (nmax <= 0)
        return 0;
    size_t n = (size_t)nmax;
    uint8_t *tab = malloc(n * DY_LLV2_RO_REC);
    EC_POINT **pts = dy_ec_points_new(self->ec, n < 1024 ? n : 1024);
    uint8_t *enc = malloc((n < 1024 ? n : 1024) * DY_PT_LEN);
    int rc = (tab && pts && enc) ? 0 : -ENOMEM;
    EC_POINT *acc = dy_ec_point_new(self->ec);
    if (acc == NULL)
        rc = -ENOMEM;
    const EC_POINT *P = dy_ec_const(self->ec, DY_EC_UNIT);
    if (rc == 0 && EC_POINT_set_to_infinity(dy_ec_group(self->ec), acc) != 1)
        rc = -EIO;
    for (size_t b = 0; rc == 0 && b < n; b += 1024) {
        size_t m = n - b < 1024 ? n - b : 1024;
        for (size_t i = 0; rc == 0 && i < m; i++)
            if ((rc = dy_ec_add(self->ec, acc, acc, P, ctx)) == 0)
                rc = dy_ec_copy(pts[i], acc);
        if (rc == 0)
            rc = dy_ec_encode_many(self->ec, pts, m, enc, ctx);
        for (size_t i = 0; rc == 0 && i < m; i++) {
            uint8_t *r = tab + (b + i) * DY_LLV2_RO_REC;
            uint32_t v = (uint32_t)(b + i + 1);
            dy_llv2_compress(enc + i * DY_PT_LEN, r);
            r[33] = (uint8_t)(v >> 24);
            r[34] = (uint8_t)(v >> 16);
            r[35] = (uint8_t)(v >> 8);
            r[36] = (uint8_t)v;
        }
    }
    if (rc == 0)
        rc = dy_sort_blocks(tab, n, DY_LLV2_RO_REC, self->prm.threads);
    EC_POINT_free(acc);
    dy_ec_points_free(pts, n < 1024 ? n : 1024);
    free(enc);
    if (rc < 0) {
        free(tab);
        self->ro_built = false;
        return rc;
    }
    self->ro_tab = tab;
    self->ro_n = n;
    return 0;
}

static int s_ro_cmp(const void *key, const void *rec)
{
    return memcmp(key, rec, DY_PTC_LEN);
}

int dy_llv2_ro_lookup(dy_llv2_t *self, const EC_POINT *z, int64_t *ret_n, BN_CTX *ctx,
                      dy_err_t *err)
{
    int rc;
    if (!self->ro_built && (rc = s_ro_build(self, ctx)) < 0)
        return dy_llv2_err_internal(err, rc, "excessive-noise table");
    uint8_t key[DY_PTC_LEN];
    if ((rc = dy_ec_encode_compressed(self->ec, z, key, ctx)) < 0)
        return dy_llv2_err_encode(err, rc, "excessive noise");
    const uint8_t *hit = self->ro_n ? bsearch(key, self->ro_tab, self->ro_n, DY_LLV2_RO_REC,
                                              s_ro_cmp) : NULL;
    if (hit == NULL)
        return dy_err_set(err, -EINVAL, "noise_lookup_miss",
                          "excessive-noise count is not in the lookup table");
    *ret_n = ((int64_t)hit[33] << 24) | ((int64_t)hit[34] << 16) | ((int64_t)hit[35] << 8) |
             hit[36];
    return 0;
}

int dy_llv2_partdec_items(const dy_llv2_t *self, dy_llv2_tls_t *t, const uint8_t *in, size_t n,
                          size_t stride, size_t first_item, const char *what, uint8_t **ret_enc,
                          dy_err_t *err)
{
    const dy_ec_t *ec = self->ec;
    size_t bad = 0;
    if (dy_ec_decode_many(ec, t->pt, in, stride * n, &bad, t->ctx) < 0)
        return dy_llv2_err_decode(err, what, first_item + bad / stride);
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        rc = dy_eg_partdec(ec, t->pt[stride * i], t->pt[stride * i + 1], self->x, t->ctx);
        /* Gather e' into pt[i]: pt[stride·i + 1] is untouched by earlier swaps. */
        EC_POINT *z = t->pt[stride * i + 1];
        t->pt[stride * i + 1] = t->pt[i];
        t->pt[i] = z;
    }
    if (rc < 0)
        return dy_llv2_err_internal(err, rc, what);
    uint8_t *enc = malloc(n * DY_PT_LEN);
    if (enc == NULL)
        return dy_llv2_err_internal(err, -ENOMEM, what);
    if ((rc = dy_ec_encode_many(ec, t->pt, n, enc, t->ctx)) < 0) {
        free(enc);
        return dy_llv2_err_encode(err, rc, what);
    }
    *ret_enc = enc;
    return 0;
}
