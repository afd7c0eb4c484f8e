/* noise/noise.h - differential-privacy noise of CRYPTO.md §7: the mapping
 * from (epsilon, delta, contributors, sensitivity) to distribution
 * parameters and offsets, and one contributor's noise component in
 * [0, 2·off], drawn by inverting the truncated pmf with a 53-bit uniform
 * from dy_rand_bytes (so it cannot fail and replays under an injected
 * random source).
 */
#ifndef DY_NOISE_H
#define DY_NOISE_H

#include "../dy.h"

/* Values follow the system API's NoiseMechanism enum (PROTOCOL.md §3.1). */
typedef enum {
    DY_NOISE_UNSPECIFIED = 0,
    DY_NOISE_GEOMETRIC = 1,
    DY_NOISE_DISCRETE_GAUSSIAN = 2,
    DY_NOISE_CONTINUOUS_GAUSSIAN = 3, /* refused: unsupported_noise_mechanism */
    DY_NOISE_NONE = 4,
} dy_noise_mech_t;

typedef struct {
    double epsilon;
    double delta;
} dy_dp_params_t;

/* One contributor's noise distribution. */
typedef struct {
    dy_noise_mech_t mech; /* GEOMETRIC or DISCRETE_GAUSSIAN */
    int contributors;     /* n */
    double sensitivity;   /* s (ignored by DISCRETE_GAUSSIAN) */
    double p;             /* GEOMETRIC: exp(-eps/s) */
    double sigma_d;       /* DISCRETE_GAUSSIAN: sigma / sqrt(n) */
    int64_t offset;       /* off: components lie in [0, 2·off] */
    double *cdf;          /* owned: cdf[i] = P(component <= i), 2·off+1 entries */
} dy_noise_t;

/* Fills nz for mech (GEOMETRIC or DISCRETE_GAUSSIAN) and dp.  Errors:
 * -EINVAL for epsilon <= 0 or not finite, delta not in (0, 1] (1 is the
 * reference's mpc_noise budget, (1, 1)), contributors < 1, a GEOMETRIC
 * sensitivity <= 0, other mechanisms, or an offset outside [0, 10^7].
 * Free with dy_noise_free. */
int dy_noise_init(dy_noise_t *nz, dy_noise_mech_t mech, dy_dp_params_t dp, int contributors,
                  double sensitivity);
void dy_noise_free(dy_noise_t *nz);

/* The offset alone (no table), for sizing: same formulas as init. */
int dy_noise_offset(dy_noise_mech_t mech, dy_dp_params_t dp, int contributors,
                    double sensitivity, int64_t *ret_offset);

/* P(component = v) for v in [0, 2·off]; 0 outside. */
double dy_noise_pmf(const dy_noise_t *nz, int64_t v);

/* q(k) of NB(r, p) renormalised on [0, off] (the law of A and B in a
 * GEOMETRIC component, with r = 1/n): q(0) = (1-p)^r,
 * q(k+1) = q(k)·p·(k+r)/(k+1), divided by their sum.  0 for k outside
 * [0, off] or bad parameters, NaN if out of memory.  O(off); for tests. */
double dy_noise_nb_pmf(double r, double p, int64_t off, int64_t k);

/* Draws one component in [0, 2·off].  0 or -EIO. */
int dy_noise_draw(const dy_noise_t *nz, int64_t *ret);

#endif
