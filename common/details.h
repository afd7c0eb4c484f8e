/* details.h - a parsed, validated view of a computation as the duchy
 * stores it (the store row's `details`: halo.internal.v1.ComputationDetails
 * holding the latest Kingdom Computation).  Every actor that needs the
 * protocol parameters, the participants, the ring or the requisitions reads
 * them through this one parser, which applies PROTOCOL.md §3.1's checks.
 *
 * Blob slot conventions (docs/cluster.md), used with common/store.h:
 *   received input:      stage = the awaited wait stage, slot = sender duchy id
 *   stage output:        slot "output" (the bytes sent on), "result" (the
 *                        aggregator's serialized Measurement.Result),
 *                        "reach" (AG exec2: 8-byte big-endian reach estimate),
 *                        "public_key" (LLv2 INITIALIZATION: 33-byte Y_i),
 *                        "secrets" (sealed halo.internal.v1.Secrets),
 *                        "encrypted_result" (submitter, before the first call)
 *   EDP data:            the requisitions table (store), path + sha256
 */
#ifndef DY_DETAILS_H
#define DY_DETAILS_H

#include "dy.h"
#include "noise/noise.h"

#define DY_ID_MAX 64

typedef struct {
    char id[DY_ID_MAX];            /* duchy id */
    int state;                     /* ComputationParticipant.State */
    uint8_t elgamal_key[33];       /* LLv2: element of its ElGamalPublicKey */
    bool has_elgamal_key;
    uint8_t elgamal_key_bytes_sha1[20]; /* SHA-1(serialized key ‖ computation id): ring order */
    uint8_t hmss_key[33];          /* HMSS NA: its ECIES public key */
    bool has_hmss_key;
    char duchy_certificate[256];   /* resource name of its signing certificate */
} dy_participant_t;

typedef struct {
    char name[256];                /* computations/{c}/requisitions/{r} */
    char id[DY_ID_MAX];            /* {r} */
    int state;                     /* system Requisition.State */
    char fulfilling_duchy[DY_ID_MAX]; /* "" if none yet */
    uint8_t nonce_hash[32];
    uint64_t nonce;                /* when FULFILLED */
} dy_details_req_t; /* not dy_requisition_t: store.h owns that name (a store row) */

typedef struct {
    char computation_id[DY_ID_MAX]; /* bare {c} */
    char name[DY_ID_MAX + 16];      /* computations/{c} */
    int protocol;                   /* DY_PROTO_* (stages.h) */
    int role;                       /* DY_ROLE_* (stages.h) */
    int kingdom_state;              /* system Computation.State */
    char my_id[DY_ID_MAX];
    /* measurement */
    bool reach_only;                /* REACH spec (or RO-LLv2 / HMSS reach) */
    int max_frequency;              /* K (1 for reach) */
    float vid_start, vid_width;
    dy_noise_mech_t noise;
    dy_dp_params_t reach_dp, frequency_dp;
    uint8_t mc_public_key[33];      /* the MC's ECIES key for the result */
    uint8_t (*nonce_hashes)[32];    /* owned */
    size_t nnonce_hashes;
    /* LLv2 */
    double decay_rate;
    int64_t sketch_size;
    dy_dp_params_t blinded_histogram_dp, publisher_dp;
    /* HMSS */
    uint64_t ring_modulus;          /* the one for this measurement type */
    /* participants, ring, requisitions */
    dy_participant_t participants[3];
    size_t nparticipants;
    char ring[3][DY_ID_MAX];        /* LLv2: NA1, NA2, AGG once all keys are known */
    bool has_ring;
    char aggregator[DY_ID_MAX];
    char first_na[DY_ID_MAX], second_na[DY_ID_MAX]; /* HMSS */
    dy_details_req_t *requisitions; /* owned, sorted by id */
    size_t nrequisitions;
    char public_api_version[16];
} dy_details_t;

/* Parses a serialized ComputationDetails (with its Kingdom Computation),
 * for duchy my_id.  0, or -EINVAL with a reason in errbuf (a §3.1 check
 * failed: the computation must then fail permanently). */
int dy_details_parse(const uint8_t *details, size_t len, const char *my_id, dy_details_t *out,
                     char *errbuf, size_t errlen);
void dy_details_free(dy_details_t *d);

/* Builds a serialized ComputationDetails from a serialized Kingdom
 * Computation for duchy my_id (role from the participants and config,
 * ring computed when every LLv2 key is present).  Appends to out. */
int dy_details_build(const uint8_t *kingdom_computation, size_t len, const char *my_id,
                     const char *aggregator_id, const char *first_na, const char *second_na,
                     dy_buf_t *out, char *errbuf, size_t errlen);

/* Ring helpers (LLv2): this duchy's index in the ring (0..2), its
 * successor's id, and the public keys in ring order. */
int dy_details_ring_index(const dy_details_t *d, const char *id);
const char *dy_details_successor(const dy_details_t *d);
int dy_details_ring_keys(const dy_details_t *d, uint8_t out[3][33]);

#endif
