/* claim_build.h - what a claimed stage needs, from the store and the
 * parsed details (no sockets, no processes): the MillJob of a computing
 * stage (inputs by slot, MillParams), the output slots a stage records
 * (the output cache), and the §5.4 jump of a completion.  Used by
 * duchy-claimer; unit-testable with a temp store.
 */
#ifndef DY_CLAIM_BUILD_H
#define DY_CLAIM_BUILD_H

#include "details.h"
#include "stages.h"
#include "store.h"

/* Where things are, from the duchy config. */
typedef struct {
    const char *duchy_id;        /* borrowed */
    const char *blob_root;       /* DATA/blobs: MillJob.output_dir */
    const char *master_key_file; /* passed to the mill, never opened here */
    const char *trusted_ca;      /* EDP certificate chains (HMSS) */
    const char *parties;
    const char *certificate_dir; /* <dir>/<certificate name>.pem (HMSS) */
    int threads;                 /* mill threads */
    int64_t max_register_count;  /* HMSS: gateway.max_upload / 4; 0 = no bound */
} dy_claim_env_t;

/* The output slots the stage records for the role ("secrets" and
 * "public_key" at LLv2 INITIALIZATION, "output", "reach", "result"...).
 * Returns how many (<= 3) went to out. */
int dy_claim_output_slots(int protocol, int role, int stage, int max_frequency,
                          const char *out[3]);

/* Builds the serialized MillJob (framed: 4-byte length + message) of the
 * lease's stage into out (appended).  job_id is copied into the job.
 * 0; -ENOENT with a reason in errbuf when a needed input is not recorded
 * (a bug or a lost blob: PERMFAIL); -EINVAL when the details lack what the
 * stage needs (ring, keys); -ENOMEM. */
int dy_claim_build_job(dy_store_t *st, const dy_details_t *d, const dy_claim_env_t *env,
                       const dy_lease_t *lease, const char *job_id, uint64_t deadline_unix_ms,
                       dy_buf_t *out, char *errbuf, size_t errlen);

/* The §5.4 jump for completing into `next` (fills the completion's jump_*
 * fields): WAIT_REQUISITIONS_AND_KEY_SET -> CONFIRMATION_PHASE once the
 * Kingdom is at PENDING_PARTICIPANT_CONFIRMATION; WAIT_TO_START ->
 * SETUP_PHASE once at PENDING_COMPUTATION. */
void dy_claim_jump(int protocol, int next, dy_store_completion_t *c);

#endif
