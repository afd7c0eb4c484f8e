/* noise/noise.c - the differential-privacy noise of CRYPTO.md §7: offsets
 * from (epsilon, delta, contributors, sensitivity) per §7.1, and one
 * contributor's component per §7.2, drawn by inverting its cdf.
 *
 * GEOMETRIC: off + A − B with A, B i.i.d. negative binomial NB(1/n, p)
 * conditioned on <= off, so that n components sum to n·off plus a two-sided
 * geometric variable (before truncation).  DISCRETE_GAUSSIAN: off + Y with
 * Y ∝ exp(−y²/(2σ_d²)) on [−off, off].
 *
 * [clean] The reference samples by rejection (Poisson-Gamma for NB, the
 * Canonne-Kamath-Steinke sampler for the Gaussian) and gives up after 20
 * rejections.  Inverting the exact truncated cdf with a 53-bit uniform from
 * dy_rand_bytes draws the same distribution, cannot fail, and replays
 * under an injected random source.
 *
 * Cost: the GEOMETRIC table is the autocorrelation of the truncated NB pmf,
 * O(off²) in the worst case (p near 1); offsets met in practice are below
 * a few hundred, so init takes microseconds.  Each draw is one binary search.
 */
#include "noise.h"

#include <math.h>
#include <stdlib.h>

#include "../crypto/ec.h" /* dy_rand_bytes only */

#define S_MAX_OFFSET 10000000 /* 2·off+1 doubles: 160 MB at the limit */

static int s_check(dy_noise_mech_t mech, dy_dp_params_t dp, int contributors,
                   double sensitivity)
{
    if (mech != DY_NOISE_GEOMETRIC && mech != DY_NOISE_DISCRETE_GAUSSIAN)
        return -EINVAL; /* UNSPECIFIED, NONE, CONTINUOUS_GAUSSIAN: no component */
    if (!(dp.epsilon > 0) || !isfinite(dp.epsilon) || !(dp.delta > 0) || !(dp.delta <= 1))
        return -EINVAL;
    if (contributors < 1)
        return -EINVAL;
    if (mech == DY_NOISE_GEOMETRIC && (!(sensitivity > 0) || !isfinite(sensitivity)))
        return -EINVAL;
    return 0;
}

/* The offset as a double (not yet range-checked) and the distribution's
 * parameter (p or sigma_d). */
static double s_offset(dy_noise_mech_t mech, dy_dp_params_t dp, int n, double s,
                       double *ret_param)
{
    double eps = dp.epsilon, delta = dp.delta;
    if (mech == DY_NOISE_GEOMETRIC) {
        *ret_param = exp(-eps / s);
        return ceil(log(2.0 * n * s * (1.0 + exp(eps)) / delta) / (eps / s));
    }
    double sigma = sqrt(2.0 * log(1.25 / (delta / 2.0))) / eps;
    double sigma_d = sigma / sqrt((double)n);
    *ret_param = sigma_d;
    return ceil(sigma_d * sqrt(2.0 * log(n * (1.0 + exp(eps)) / (delta / 2.0))));
}

int dy_noise_offset(dy_noise_mech_t mech, dy_dp_params_t dp, int contributors,
                    double sensitivity, int64_t *ret_offset)
{
    int rc = s_check(mech, dp, contributors, sensitivity);
    if (rc < 0)
        return rc;
    double param;
    double off = s_offset(mech, dp, contributors, sensitivity, &param);
    /* A negative offset means parameters so loose that no noise is needed;
     * the reference has no such case either, so refuse it. */
    if (!(off >= 0) || off > S_MAX_OFFSET)
        return -EINVAL;
    if (ret_offset)
        *ret_offset = (int64_t)off;
    return 0;
}

/* q[0..off]: the NB(r, p) pmf renormalised on [0, off]. */
static void s_nb_table(double r, double p, int64_t off, double *q)
{
    q[0] = pow(1.0 - p, r);
    for (int64_t k = 0; k < off; k++)
        q[k + 1] = q[k] * p * ((double)k + r) / (double)(k + 1);
    double z = 0;
    for (int64_t k = 0; k <= off; k++)
        z += q[k];
    for (int64_t k = 0; k <= off; k++)
        q[k] /= z;
}

double dy_noise_nb_pmf(double r, double p, int64_t off, int64_t k)
{
    if (!(r > 0) || !(p >= 0) || !(p < 1) || off < 0 || off > S_MAX_OFFSET || k < 0 || k > off)
        return 0.0;
    double *q = malloc((size_t)(off + 1) * sizeof(*q));
    if (q == NULL)
        return NAN;
    s_nb_table(r, p, off, q);
    double v = q[k];
    free(q);
    return v;
}

/* w[0..2off]: unnormalised weights of the GEOMETRIC component off + A − B:
 * w[off+d] = w[off−d] = Σ_b q[b+d]·q[b].  q is decreasing (its ratio is
 * p(k+r)/(k+1) < p), so each term is below p² times the previous one; the
 * sum stops once the rest cannot reach 2^-64 of it. */
static int s_geometric_weights(double r, double p, int64_t off, double *w)
{
    double *q = malloc((size_t)(off + 1) * sizeof(*q));
    if (q == NULL)
        return -ENOMEM;
    s_nb_table(r, p, off, q);
    double tail = p * p / (1.0 - p * p); /* rest <= term · tail */
    for (int64_t d = 0; d <= off; d++) {
        double sum = 0;
        for (int64_t b = 0; b + d <= off; b++) {
            double t = q[b + d] * q[b];
            sum += t;
            if (t * tail < sum * 0x1p-64)
                break;
        }
        w[off + d] = w[off - d] = sum;
    }
    free(q);
    return 0;
}

static void s_gaussian_weights(double sigma_d, int64_t off, double *w)
{
    double two_var = 2.0 * sigma_d * sigma_d;
    for (int64_t y = 0; y <= off; y++)
        w[off + y] = w[off - y] = exp(-(double)(y * y) / two_var);
}

int dy_noise_init(dy_noise_t *nz, dy_noise_mech_t mech, dy_dp_params_t dp, int contributors,
                  double sensitivity)
{
    if (nz == NULL)
        return -EINVAL;
    int64_t off;
    int rc = dy_noise_offset(mech, dp, contributors, sensitivity, &off);
    if (rc < 0)
        return rc;
    double param;
    (void)s_offset(mech, dp, contributors, sensitivity, &param);

    size_t len = (size_t)(2 * off + 1);
    double *cdf = malloc(len * sizeof(*cdf));
    if (cdf == NULL)
        return -ENOMEM;
    if (mech == DY_NOISE_GEOMETRIC) {
        rc = s_geometric_weights(1.0 / contributors, param, off, cdf);
        if (rc < 0) {
            free(cdf);
            return rc;
        }
    } else {
        s_gaussian_weights(param, off, cdf);
    }
    /* Weights to cdf.  partial <= total, so every entry is <= 1, the last
     * is exactly 1, and the sequence never decreases. */
    double total = 0;
    for (size_t i = 0; i < len; i++)
        total += cdf[i];
    double acc = 0;
    for (size_t i = 0; i < len; i++) {
        acc += cdf[i];
        cdf[i] = acc / total;
    }
    cdf[len - 1] = 1.0;

    *nz = (dy_noise_t){
        .mech = mech,
        .contributors = contributors,
        .sensitivity = sensitivity,
        .p = mech == DY_NOISE_GEOMETRIC ? param : 0.0,
        .sigma_d = mech == DY_NOISE_DISCRETE_GAUSSIAN ? param : 0.0,
        .offset = off,
        .cdf = cdf,
    };
    return 0;
}

void dy_noise_free(dy_noise_t *nz)
{
    if (nz == NULL)
        return;
    free(nz->cdf);
    nz->cdf = NULL;
}

double dy_noise_pmf(const dy_noise_t *nz, int64_t v)
{
    if (nz == NULL || nz->cdf == NULL || v < 0 || v > 2 * nz->offset)
        return 0.0;
    return v == 0 ? nz->cdf[0] : nz->cdf[v] - nz->cdf[v - 1];
}

int dy_noise_draw(const dy_noise_t *nz, int64_t *ret)
{
    if (nz == NULL || nz->cdf == NULL || ret == NULL)
        return -EINVAL;
    uint8_t b[8];
    if (dy_rand_bytes(b, sizeof(b)) < 0)
        return -EIO;
    uint64_t x = 0;
    for (int i = 0; i < 8; i++)
        x = x << 8 | b[i];
    double u = (double)(x >> 11) * 0x1p-53; /* uniform on [0, 1) */
    /* The smallest i with u < cdf[i]; cdf[2·off] = 1 > u, so one exists,
     * and a zero-probability value (cdf[i] = cdf[i−1]) is never chosen. */
    int64_t lo = 0, hi = 2 * nz->offset;
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        if (u < nz->cdf[mid])
            hi = mid;
        else
            lo = mid + 1;
    }
    *ret = lo;
    return 0;
}
