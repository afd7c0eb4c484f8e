/* sketch/campaign.h - seeded synthetic campaigns for the data-provider
 * simulator and the benchmark: a population of virtual people, per-EDP
 * reach with overlap, and per-person frequency; plus the ground truth.
 */
#ifndef DY_SKETCH_CAMPAIGN_H
#define DY_SKETCH_CAMPAIGN_H

#include "../dy.h"

typedef struct {
    uint64_t population; /* virtual people: vids 1..population */
    int edps;            /* number of data providers */
    uint64_t reach;      /* people reached per EDP */
    int max_events;      /* per-person events drawn in [1, max_events] */
    uint64_t seed;
} dy_campaign_params_t;

/* One EDP's impressions: distinct vids with their event counts. */
typedef struct {
    size_t n;
    uint64_t *vids;   /* owned, ascending */
    uint32_t *events; /* owned, >= 1 */
} dy_campaign_edp_t;

typedef struct {
    dy_campaign_params_t params;
    dy_campaign_edp_t *edp; /* owned, params.edps entries */
} dy_campaign_t;

/* Generates a campaign deterministically from params.seed (a SplitMix64/
 * xoshiro stream, not a CSPRNG: synthetic data only).  Each EDP draws its
 * `reach` people uniformly without replacement, independently of the other
 * EDPs (so they overlap naturally), and gives each P(events = k) ∝ 1/k on
 * [1, max_events].  O(reach) per EDP whatever the population.  Caller frees
 * with dy_campaign_free.  0, -EINVAL (population 0, edps < 1,
 * reach > population, max_events outside [1, 2^20]) or -ENOMEM. */
int dy_campaign_generate(const dy_campaign_params_t *p, dy_campaign_t *out);
/* Frees the EDP arrays; NULL-safe and idempotent. */
void dy_campaign_free(dy_campaign_t *c);

/* Ground truth over all EDPs: distinct people reached, and freq[f-1] for
 * f = 1..K, the share of reached people whose total events fall in bucket
 * min(total, K) (all zero if nobody is reached).  freq may be NULL.
 * 0, -EINVAL (K < 1 with freq, a person with 0 events) or -ENOMEM. */
int dy_campaign_truth(const dy_campaign_t *c, int K, uint64_t *ret_reach, double *freq);

#endif
