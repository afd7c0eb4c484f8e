/* sketch/fvec.h - the HMSS frequency vector (CRYPTO.md §8.1): the VIDs of a
 * population ordered by (h(vid), vid), h = first 8 bytes of SHA-256 of
 * (vid as 8 B big-endian || 21858450 as 8 B big-endian), unsigned; the
 * vector covers the VID-sampling window of those positions, wrapped at the
 * end (primary range first, then the wrapped part).
 */
#ifndef DY_SKETCH_FVEC_H
#define DY_SKETCH_FVEC_H

#include "../dy.h"
#include "campaign.h"

uint64_t dy_fvec_vid_hash(uint64_t vid);

/* The position of every vid of a population 1..population in the vector. */
typedef struct {
    uint64_t population;
    size_t registers; /* R: the window's length, >= 1 */
    uint32_t *pos;    /* owned: pos[vid-1] = position, or UINT32_MAX outside */
} dy_fvec_index_t;

/* Builds the index for the window [start, start+width) of the unit
 * interval (as the spec's vid_sampling_interval), wrapping past 1.  As the
 * reference's FrequencyVectorBuilder (in float arithmetic, as Kotlin's
 * Int * Float): lo = (int)((float)P * start), hi = (int)((float)P *
 * (start + width)); R = max(1, min(P, hi - lo)); the vid of rank
 * (lo + j) mod P, ranks ordered by (h(vid), vid), sits at position j.
 * Ranks 0..P-1 hashed on dy_par_default_threads() threads.
 * 0, -EINVAL (population 0 or above 2^31 - 1, width not in (0, 1], start
 * not in [0, 1]), -EIO or -ENOMEM.  Free with dy_fvec_index_free. */
int dy_fvec_index_init(dy_fvec_index_t *ix, uint64_t population, float start, float width);
/* NULL-safe and idempotent. */
void dy_fvec_index_free(dy_fvec_index_t *ix);

/* Fills out[0..R) with min(events, Ke) at each of edp's vids in the window,
 * 0 elsewhere.  0 or -EINVAL (a vid outside the population). */
int dy_fvec_build(const dy_fvec_index_t *ix, const dy_campaign_edp_t *edp, uint32_t Ke,
                  uint32_t *out);

#endif
