/* sketch/ll.h - the Liquid Legions sketch (CRYPTO.md §3), its cardinality
 * estimator (§6.1, bit-exact with the reference) and the plaintext
 * reference answer (§6.2) that noise-free runs must reproduce.
 */
#ifndef DY_SKETCH_LL_H
#define DY_SKETCH_LL_H

#include "../dy.h"

#define DY_LL_KEY_SPACE 10000000ULL /* sampling_indicator_size */

/* One register: index in [0, m), stored key (fp mod 10^7, plus 1; 0 means
 * destroyed) and count (events, >= 1). */
typedef struct {
    int64_t index;
    uint64_t key;
    uint64_t count;
} dy_ll_register_t;

/* A sketch: registers sorted by index, at most one per index. */
typedef struct {
    double decay_rate; /* a > 1 */
    int64_t size;      /* m */
    size_t n;          /* registers in use */
    size_t cap;
    dy_ll_register_t *regs; /* owned */
} dy_ll_sketch_t;

/* Fingerprint: first 8 bytes (big-endian) of SHA-256 of
 * "AnySketchFingerprint:<vid>:<spec>", spec "Index" or "SamplingIndicator". */
uint64_t dy_ll_fingerprint(uint64_t vid, const char *spec);

/* Register index of fingerprint fp (truncated exponential, clamped to m-1). */
int64_t dy_ll_register_index(double a, int64_t m, uint64_t fp);

/* Initialises an empty sketch.  0 or -EINVAL (a <= 1, m < 1). */
int dy_ll_sketch_init(dy_ll_sketch_t *sk, double a, int64_t m);
void dy_ll_sketch_free(dy_ll_sketch_t *sk);

/* Inserts one raw register (merging: equal keys add counts, different keys
 * destroy).  Keeps regs sorted; amortised O(log n) via a final sort is not
 * required: callers may add in any order and call dy_ll_sketch_finish.
 * key is the stored key (0 = destroyed; other values are not range-checked)
 * and count must be >= 1 unless key is 0.  0, -EINVAL (index outside
 * [0, m), count 0) or -ENOMEM. */
int dy_ll_sketch_put(dy_ll_sketch_t *sk, int64_t index, uint64_t key, uint64_t count);

/* Adds a person (vid) with `events` >= 1 events: index from the "Index"
 * fingerprint, key = "SamplingIndicator" fingerprint mod 10^7, plus 1.
 * 0, -EINVAL (events 0) or -ENOMEM. */
int dy_ll_sketch_add_vid(dy_ll_sketch_t *sk, uint64_t vid, uint64_t events);

/* Sorts and merges registers with equal indices (a destroyed register's
 * count is the sum, and meaningless).  Idempotent.  0 or -EINVAL. */
int dy_ll_sketch_finish(dy_ll_sketch_t *sk);

/* E1 exponential integral, E(c), invert and LLEstimate (§6.1). */
/* E1(y) for y > 0 exactly as libstdc++ computes it; NaN for y <= 0. */
double dy_ll_e1(double y);
/* E(c): the expected number of active registers for c people; 0 for c = 0
 * (or m < 1). */
uint64_t dy_ll_expected(double a, int64_t m, uint64_t c);
/* The reference's search for c with E(c) = target (invert(0) = 1,
 * invert(1) = 2).  0, -EINVAL (a <= 1, m < 1) or -ERANGE (the search
 * passes 2^62: sketch_saturated). */
int dy_ll_invert(double a, int64_t m, uint64_t target, uint64_t *ret);
/* reach = trunc((double)invert(active) / (double)width).  -EINVAL with
 * a <= 1, m <= active, width not in (0, 1]; -ERANGE if saturated. */
int dy_ll_estimate(double a, int64_t m, uint64_t active, float width, int64_t *ret_reach);

/* The plaintext answer (§6.2) over the union of n finished sketches:
 * reach = LLEstimate(#distinct indices); freq[f-1] for f = 1..K the share of
 * non-destroyed groups whose summed count falls in bucket min(sum, K).
 * freq may be NULL (reach only).  If every group is destroyed, freq is all
 * zero.  Also returns the number of distinct indices in *ret_active. */
int dy_ll_plaintext(const dy_ll_sketch_t *const *sketches, size_t n, int K, float width,
                    int64_t *ret_reach, double *freq, uint64_t *ret_active);

#endif
