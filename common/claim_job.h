/* claim_job.h - the claimer's side of a mill run that is worth testing
 * without processes (STYLE.md rule 1): the one-frame encoding of
 * internal.proto (4-byte big-endian length + message) for MillJob and
 * MillResult, and the mapping of how a mill ended (dy_spawn_status_t and
 * whatever it wrote on fd 3) to one typed outcome (STYLE.md rule 10).
 */
#ifndef DY_CLAIM_JOB_H
#define DY_CLAIM_JOB_H

#include "dy.h"
#include "spawn.h"

#define DY_MILL_FRAME_MAX (64u << 20) /* bytes of one framed job or result */

/* Appends 4-byte big-endian len || body to out.  0, -EMSGSIZE, -ENOMEM. */
int dy_mill_frame(const uint8_t *body, size_t len, dy_buf_t *out);

/* The body of one frame: 0 with *ret_body / *ret_len pointing into in, or
 * -EBADMSG (short, truncated, trailing bytes, over DY_MILL_FRAME_MAX). */
int dy_mill_unframe(const uint8_t *in, size_t len, const uint8_t **ret_body, size_t *ret_len);

/* A mill's typed end as the claimer sees it. */
typedef struct {
    dy_outcome_t outcome;       /* OK, TEMPFAIL or PERMFAIL */
    char code[48];              /* stable identifier ("" when OK) */
    char message[256];          /* detail, never a secret */
    void *result;               /* Halo__Internal__V1__MillResult * when one was decoded
                                 * (owned: dy_mill_outcome_clear), else NULL */
} dy_mill_outcome_t;

/* Maps the child's status and fd-3 bytes to an outcome: a deadline kill,
 * a signal, a non-zero exit, a missing, undecodable or UNSPECIFIED result,
 * or a job_id other than job_id are TEMPFAIL (codes "mill_deadline",
 * "mill_signal", "mill_exit", "mill_no_result", "mill_bad_result");
 * otherwise the result's own outcome, code and message.  An OK result
 * must list outputs with a path, a size and a 32-byte SHA-256. */
void dy_mill_outcome(const dy_spawn_status_t *st, const char *job_id, dy_mill_outcome_t *out);
void dy_mill_outcome_clear(dy_mill_outcome_t *o);

#endif
