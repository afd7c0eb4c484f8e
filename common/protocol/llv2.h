/* protocol/llv2.h - the Liquid Legions v2 stages (CRYPTO.md §4) and
 * reach-only LLv2 (§5.2), each a pure function of serialized input,
 * parameters and keys, producing serialized output (the exact bytes the
 * cluster sends) and counters.  Every input is validated in full before
 * anything is computed; a bad input returns -EINVAL with a typed error,
 * never a crash.  Also the data provider's sketch encryption (§3).
 *
 * Ring order: NA1, NA2, AGG.  Wire formats: 130-byte ciphertexts of
 * uncompressed points; CRV blocks 390 B (reach-only 130 B); tuples 520 B;
 * SKA matrix rows of (K-1) ciphertexts.
 */
#ifndef DY_PROTOCOL_LLV2_H
#define DY_PROTOCOL_LLV2_H

#include "../crypto/ec.h"
#include "../noise/noise.h"
#include "../sketch/ll.h"

#define DY_LLV2_CRV_BLOCK 390
#define DY_LLV2_TUPLE_BLOCK 520
#define DY_LLV2_RO_BLOCK 130

typedef enum { DY_LLV2_NA1 = 0, DY_LLV2_NA2 = 1, DY_LLV2_AGG = 2 } dy_llv2_role_t;

typedef struct {
    double decay_rate;     /* a */
    int64_t sketch_size;   /* m */
    int max_frequency;     /* K (1 = reach only within LLv2) */
    int num_sketches;      /* S: requisitions of the computation */
    float vid_width;       /* vid_sampling_interval.width, (0, 1] */
    dy_noise_mech_t noise; /* NONE, GEOMETRIC or DISCRETE_GAUSSIAN */
    dy_dp_params_t blinded_histogram; /* mpc_noise */
    dy_dp_params_t publisher;         /* mpc_noise */
    dy_dp_params_t reach;             /* measurement's reach privacy */
    dy_dp_params_t frequency;         /* measurement's frequency privacy */
    int threads;           /* worker threads (>= 1) */
} dy_llv2_params_t;

/* Counters of one stage run. */
typedef struct {
    uint64_t in_blocks;    /* blocks read */
    uint64_t out_blocks;   /* blocks written */
    uint64_t noise_blocks; /* blocks of noise added */
    uint64_t dropped;      /* exec1 AGG: registers in groups larger than S */
} dy_stage_counters_t;

/* One duchy's context for one computation: its role, secret x, the three
 * public keys in ring order, the composite key Y and its partial key, with
 * fixed-base tables.  Caller destroys. */
typedef struct dy_llv2 dy_llv2_t;

/* params are checked as by dy_llv2_params_check (reach_only when K = 1, so
 * the frequency privacy parameters are then ignored); the same context
 * serves LLv2 and reach-only LLv2.  Builds two fixed-base tables (about
 * 40 ms).  ec must outlive the context.
 * pub points to the three 33-byte public keys in ring order (NA1, NA2,
 * AGG); x is this duchy's 32-byte secret, whose public key must equal
 * pub[role].
 * NULL on failure with err set (bad params, keys, identity composite key). */
dy_llv2_t *dy_llv2_new(const dy_ec_t *ec, const dy_llv2_params_t *params, dy_llv2_role_t role,
                       const uint8_t x[DY_SCALAR_LEN], const uint8_t (*pub)[DY_PTC_LEN],
                       dy_err_t *err);
void dy_llv2_destroy(dy_llv2_t **self_p);

/* Validates the parameters alone (§3.1 checks, noise mechanism). */
int dy_llv2_params_check(const dy_llv2_params_t *params, bool reach_only, dy_err_t *err);

/* Stage outputs: out is reset (len = 0, storage reused) and receives the
 * whole output; it must not alias the input.  On failure out is empty and
 * err holds the typed error (bad_length, invalid_point, identity_point,
 * sketch_saturated, noise_lookup_miss, ...).  Counters are added to.
 *
 * Setup (§4.2).  reqs[0..nreqs) are this duchy's requisition blobs; at AGG
 * crv_in is NA1's output || NA2's output (NULL/0 elsewhere). */
int dy_llv2_setup(dy_llv2_t *self, const dy_buf_t *reqs, size_t nreqs, const uint8_t *crv_in,
                  size_t crv_len, dy_buf_t *out, dy_stage_counters_t *cnt, dy_err_t *err);

/* Execution phase one (§4.3): NA blind and re-randomise; AGG group, build
 * tuples (+ frequency noise). */
int dy_llv2_exec1(dy_llv2_t *self, const uint8_t *in, size_t len, dy_buf_t *out,
                  dy_stage_counters_t *cnt, dy_err_t *err);

/* Execution phase two (§4.4).  At AGG *ret_reach receives the reach and out
 * the SKA matrix (empty when K = 1). */
int dy_llv2_exec2(dy_llv2_t *self, const uint8_t *in, size_t len, dy_buf_t *out,
                  int64_t *ret_reach, dy_stage_counters_t *cnt, dy_err_t *err);

/* Execution phase three (§4.5).  NA: partial decryption into out.  AGG:
 * freq[0..K) receives the distribution for 1..K (K meaning K or more). */
int dy_llv2_exec3(dy_llv2_t *self, const uint8_t *in, size_t len, dy_buf_t *out, double *freq,
                  dy_stage_counters_t *cnt, dy_err_t *err);

/* Reach-only LLv2 (§5.2): setup, and execution (NA: out; AGG: reach). */
int dy_rollv2_setup(dy_llv2_t *self, const dy_buf_t *reqs, size_t nreqs, const uint8_t *crv_in,
                    size_t crv_len, dy_buf_t *out, dy_stage_counters_t *cnt, dy_err_t *err);
int dy_rollv2_exec(dy_llv2_t *self, const uint8_t *in, size_t len, dy_buf_t *out,
                   int64_t *ret_reach, dy_stage_counters_t *cnt, dy_err_t *err);

/* Reach-only setup at AGG with the NAs' outputs given apart (each ends with
 * its excessive-noise block X_i, which AGG must find).  Prefer this to
 * dy_rollv2_setup at AGG: a concatenation NA1 || NA2 does not always say
 * where NA1's output ends (e.g. when NA2 sends only its X block);
 * dy_rollv2_setup then splits it by block order only when exactly one
 * split is possible, and fails with "ambiguous_input" otherwise. */
int dy_rollv2_setup_agg(dy_llv2_t *self, const dy_buf_t *reqs, size_t nreqs, const uint8_t *na1,
                        size_t na1_len, const uint8_t *na2, size_t na2_len, dy_buf_t *out,
                        dy_stage_counters_t *cnt, dy_err_t *err);

/* Data provider: encrypts a finished sketch under the composite key Y
 * (33 bytes) for maximum frequency K: 390 B per register (index, key,
 * min(count, K+1)·P; destroyed registers carry D, D), or 130 B per
 * register (index only) if reach_only.  Appends to out. */
int dy_llv2_encrypt_sketch(const dy_ec_t *ec, const uint8_t Y[DY_PTC_LEN],
                           const dy_ll_sketch_t *sk, int K, bool reach_only, int threads,
                           dy_buf_t *out, dy_err_t *err);

/* Key helpers: a fresh ElGamal key pair (secret 32 B, public 33 B), and the
 * composite of n public keys.  0 or negative errno. */
int dy_llv2_keygen(const dy_ec_t *ec, uint8_t x[DY_SCALAR_LEN], uint8_t pub[DY_PTC_LEN]);
int dy_llv2_combine_keys(const dy_ec_t *ec, const uint8_t (*pubs)[DY_PTC_LEN], size_t n,
                         uint8_t out[DY_PTC_LEN]);

#endif
