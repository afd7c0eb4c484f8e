/* sketch/estimator.c - the Liquid Legions cardinality estimator of
 * CRYPTO.md §6.1, bit-exact with the reference (any-sketch on libstdc++).
 *
 * The reference computes E(c) with std::expint, so E1 here is a port of
 * libstdc++'s algorithm, quirks included: the series below 1, the modified
 * Lentz continued fraction up to 100 and, above 100, the asymptotic series
 * cut after its first term (an unsigned negation in libstdc++ makes the
 * second term huge, which stops the loop).  Every expression keeps the
 * reference's order of operations; this file must never be compiled with
 * -ffast-math.  The one a*b + c that a compiler could contract into an FMA
 * (gnu11 allows it on targets with FMA, such as aarch64) goes through a
 * volatile, so the product is rounded on its own as in libstdc++.
 */
#include "ll.h"

#include <float.h>
#include <math.h>

#define S_EPS 2.220446049250313080847e-16 /* 2^-52, numeric_limits::epsilon */
#define S_GAMMA 0.57721566490153286       /* libstdc++'s __gamma_e, rounded */

/* E1 for 0 < y < 1: the power series, with the even and odd terms summed
 * apart as libstdc++ does. */
static double s_e1_series(double y)
{
    double term = 1.0, esum = 0.0, osum = 0.0;
    for (unsigned int i = 1; i < 1000; i++) {
        term *= -y / (double)i;
        if (fabs(term) < S_EPS)
            break;
        if (term >= 0.0)
            esum += term / (double)i;
        else
            osum += term / (double)i;
    }
    return ((-esum - osum) - S_GAMMA) - log(y);
}

/* E1 for 1 <= y < 100: the continued fraction by modified Lentz (libstdc++'s
 * __expint_En_cf with n = 1).  libstdc++ throws when it fails to converge
 * in 1000 steps, which cannot happen in this range; we return NaN. */
static double s_e1_cf(double y)
{
    double b = y + 1.0;
    double c = 1.0 / DBL_MIN;
    double d = 1.0 / b;
    double h = d;
    for (unsigned int i = 1; i <= 1000; i++) {
        double alpha = -(double)(i * i);
        b += 2.0;
        volatile double ad = alpha * d; /* no FMA contraction */
        d = 1.0 / (ad + b);
        c = b + alpha / c;
        double del = c * d;
        h *= del;
        if (fabs(del - 1.0) < S_EPS)
            return h * exp(-y);
    }
    return NAN;
}

double dy_ll_e1(double y)
{
    if (isnan(y) || !(y > 0.0))
        return NAN;
    if (y < 1.0)
        return s_e1_series(y);
    if (y < 100.0)
        return s_e1_cf(y);
    /* The first term of the asymptotic series only: exp(-y)·(1 + 0)/y. */
    return exp(-y) * 1.0 / y;
}

uint64_t dy_ll_expected(double a, int64_t m, uint64_t c)
{
    if (c == 0 || m < 1)
        return 0;
    double t = (double)c / (double)m;
    double A = exp(a);
    /* The reference evaluates -Ei(arg1) + Ei(arg2) with these arguments and
     * Ei(x) = -E1(-x) for x < 0; negation is exact, so this is the same. */
    double y1 = -((-a * t) / (A - 1.0));
    double y2 = -(((-a * A) * t) / (A - 1.0));
    double e = (1.0 - (dy_ll_e1(y1) - dy_ll_e1(y2)) / a) * (double)m;
    /* Converting a negative or NaN double is undefined; E is >= 0 in exact
     * arithmetic, so treat those as 0 (never seen in practice). */
    if (!(e >= 1.0))
        return 0;
    if (e >= 18446744073709551616.0)
        return UINT64_MAX;
    return (uint64_t)e;
}

int dy_ll_invert(double a, int64_t m, uint64_t target, uint64_t *ret)
{
    if (ret == NULL || !(a > 1.0) || m < 1)
        return -EINVAL;
    /* Exponential search for an upper bound, then the reference's binary
     * search, which returns one particular point of E's plateau at target
     * (so invert(0) = 1 and invert(1) = 2, as in the reference). */
    uint64_t left = 0, right = 1;
    while (dy_ll_expected(a, m, right) < target) {
        left = right;
        right *= 2;
        if (right > (UINT64_C(1) << 62))
            return -ERANGE; /* [clean] the reference overflows here */
    }
    uint64_t mid = (left + right) / 2;
    while (right > left) {
        if (dy_ll_expected(a, m, mid) > target)
            right = mid - 1;
        else
            left = mid + 1;
        mid = (left + right) / 2;
    }
    *ret = mid;
    return 0;
}

int dy_ll_estimate(double a, int64_t m, uint64_t active, float width, int64_t *ret_reach)
{
    if (ret_reach == NULL || !(a > 1.0) || m < 1 || (uint64_t)m <= active ||
        !(width > 0.0f) || width > 1.0f)
        return -EINVAL;
    uint64_t c;
    int rc = dy_ll_invert(a, m, active, &c);
    if (rc < 0)
        return rc;
    double r = (double)c / (double)width;
    if (!(r < 9223372036854775808.0))
        return -ERANGE;
    *ret_reach = (int64_t)r;
    return 0;
}
