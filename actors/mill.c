/* mill.c - duchy-mill: runs ONE stage of one computation with the engine
 * (common/protocol) in a fresh process, fork+exec'd by duchy-claimer
 * (docs/cluster.md; STYLE.md rules 9, 10, 21).
 *
 * Peers: only its parent.  fd 0: one frame (4-byte big-endian length +
 * halo.internal.v1.MillJob, whose params are a serialized MillParams,
 * proto/mill.proto), then EOF.  fd 3: one frame holding the MillResult.
 * fd 2: JSON log lines.  No sockets, no database.
 *
 * Flow: read job -> PR_SET_DUMPABLE 0 -> decode and check -> the stage's
 * function (a table keyed by protocol and stage) -> outputs as blobs
 * (common/blob: <output_dir>/<duchy>/<computation>/<stage>/<attempt>/<slot>)
 * -> MillResult {OK | TEMPFAIL | PERMFAIL, code, message, outputs,
 * counters, timings, peak RSS} -> exit 0.  Exit 111 only if no result
 * could be written (the claimer maps that to TEMPFAIL).
 *
 * Outcomes: a bad input is PERMFAIL with the engine's code (or ours:
 * missing_input, input_corrupt, bad_params, secrets_unreadable, seed_invalid,
 * certificate_untrusted); I/O trouble (ENOSPC, EIO, a missing master key) is
 * TEMPFAIL.  Secrets (x, d, omega, the master key) live in locals that are
 * wiped right after use and never logged.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/x509.h>

#include "blob.h"
#include "claim_job.h"
#include "crypto/ec.h"
#include "crypto/sig.h"
#include "duchy.pb-c.h"
#include "hmss.pb-c.h"
#include "internal.pb-c.h"
#include "log.h"
#include "mc_util.h"
#include "mill.pb-c.h"
#include "protocol/hmss.h"
#include "protocol/llv2.h"
#include "secrets.h"
#include "spawn.h"
#include "stages.h"

typedef Halo__Internal__V1__MillJob s_job_t;
typedef Halo__Internal__V1__MillParams s_params_t;
typedef Halo__Internal__V1__Secrets s_secrets_t;
typedef Wfa__Measurement__Internal__Duchy__Protocol__ShufflePhaseInput s_shuffle_in_t;
typedef Wfa__Measurement__Internal__Duchy__Protocol__AggregationPhaseInput s_agg_in_t;
typedef Wfa__Measurement__Internal__Duchy__Protocol__SecretSeed s_seed_t;

#define S_MAX_OUTPUTS 8

typedef struct {
    char slot[DY_BLOB_NAME_MAX];
    dy_blob_info_t info;
} s_output_t;

typedef struct {
    s_job_t *job;              /* owned: the decoded job */
    s_params_t *prm;           /* owned: the decoded params */
    dy_blobdir_t *blobs;       /* owned */
    dy_ec_t *ec;               /* owned, made on first use */
    int threads;               /* >= 1 */
    dy_err_t err;              /* the first failure */
    dy_stage_counters_t cnt;   /* engine counters */
    uint64_t bytes_in;         /* input blob bytes read */
    uint64_t bytes_out;        /* output blob bytes written */
    s_output_t out[S_MAX_OUTPUTS];
    size_t nout;
    dy_log_ctx_t lc;           /* computation, stage, attempt of every line */
} s_mill_t;

/* ---- errors ----------------------------------------------------------- */

static int s_fail(s_mill_t *m, dy_outcome_t oc, const char *code, const char *fmt, ...)
    DY_PRINTF(4, 5);
static int s_fail(s_mill_t *m, dy_outcome_t oc, const char *code, const char *fmt, ...)
{
    if (m->err.outcome == DY_OUTCOME_OK) {
        m->err.outcome = oc;
        snprintf(m->err.code, sizeof(m->err.code), "%s", code);
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(m->err.message, sizeof(m->err.message), fmt, ap);
        va_end(ap);
    }
    return -1;
}

/* An engine failure: its typed error if it gave one. */
static int s_engine_fail(s_mill_t *m, int rc, const dy_err_t *e, const char *what)
{
    if (e && e->outcome != DY_OUTCOME_OK) {
        if (m->err.outcome == DY_OUTCOME_OK)
            m->err = *e;
        return -1;
    }
    return s_fail(m, rc == -EINVAL || rc == -EDOM || rc == -ERANGE ? DY_OUTCOME_PERMFAIL
                                                                   : DY_OUTCOME_TEMPFAIL,
                  rc == -ENOMEM ? "out_of_memory" : "engine_error", "%s failed: %s", what,
                  strerror(-rc));
}

/* ---- inputs and outputs ------------------------------------------------- */

static const Halo__Internal__V1__Blob *s_input(const s_mill_t *m, const char *slot)
{
    for (size_t i = 0; i < m->job->n_inputs; i++)
        if (strcmp(m->job->inputs[i]->slot, slot) == 0)
            return m->job->inputs[i];
    return NULL;
}

/* Reads input `slot` (hash-checked).  Missing: -ENOENT, recorded as a
 * PERMFAIL only if required. */
static int s_read(s_mill_t *m, const char *slot, bool required, dy_buf_t *out)
{
    const Halo__Internal__V1__Blob *b = s_input(m, slot);
    if (!b) {
        if (required)
            s_fail(m, DY_OUTCOME_PERMFAIL, "missing_input", "input %s missing", slot);
        return -ENOENT;
    }
    dy_blob_info_t info = {.size = b->size};
    if (b->sha256.len != 32 || strlen(b->path) >= sizeof(info.path))
        return s_fail(m, DY_OUTCOME_PERMFAIL, "bad_job", "input %s: bad blob reference", slot);
    memcpy(info.sha256, b->sha256.data, 32);
    memcpy(info.path, b->path, strlen(b->path) + 1);
    int rc = dy_blob_read(&info, out);
    if (rc == -EBADMSG)
        return s_fail(m, DY_OUTCOME_PERMFAIL, "input_corrupt",
                      "input %s: size or SHA-256 differs from the record", slot);
    if (rc == -ENOENT)
        return s_fail(m, DY_OUTCOME_PERMFAIL, "missing_input", "input %s: blob file missing",
                      slot);
    if (rc < 0)
        return s_fail(m, DY_OUTCOME_TEMPFAIL, "io_error", "input %s: %s", slot, strerror(-rc));
    m->bytes_in += out->len;
    return 0;
}

static int s_write(s_mill_t *m, const char *slot, const uint8_t *data, size_t len)
{
    if (m->nout == S_MAX_OUTPUTS)
        return s_fail(m, DY_OUTCOME_PERMFAIL, "internal", "too many outputs");
    dy_blob_key_t key = {.computation = m->job->computation_id, .stage = m->job->stage,
                         .attempt = m->job->attempt, .slot = slot};
    dy_blob_writer_t *w = NULL;
    int rc = dy_blob_open(m->blobs, &key, &w);
    if (rc == 0)
        rc = dy_blob_write(w, data, len);
    s_output_t *o = &m->out[m->nout];
    if (rc == 0)
        rc = dy_blob_commit(&w, &o->info);
    else
        dy_blob_abort(&w);
    if (rc < 0)
        return s_fail(m, rc == -EINVAL ? DY_OUTCOME_PERMFAIL : DY_OUTCOME_TEMPFAIL,
                      rc == -EEXIST ? "output_exists" : "io_error", "output %s: %s", slot,
                      strerror(-rc));
    snprintf(o->slot, sizeof(o->slot), "%s", slot);
    m->nout++;
    m->bytes_out += len;
    return 0;
}

static int s_write_reach(s_mill_t *m, int64_t reach)
{
    uint8_t b[8];
    for (int i = 0; i < 8; i++)
        b[i] = (uint8_t)((uint64_t)reach >> (56 - 8 * i));
    return s_write(m, "reach", b, 8);
}

static int s_write_result(s_mill_t *m, int64_t reach, const double *freq, int nfreq)
{
    dy_buf_t r = {0};
    int rc = dy_mc_result_pack(reach, freq, nfreq, &r);
    if (rc < 0) {
        dy_buf_free(&r);
        return s_fail(m, DY_OUTCOME_PERMFAIL, "bad_result", "result does not pack: %s",
                      strerror(-rc));
    }
    rc = s_write(m, "result", r.data, r.len);
    dy_buf_free(&r);
    return rc;
}

/* ---- secrets ------------------------------------------------------------ */

static void s_secrets_free(s_secrets_t **s_p)
{
    s_secrets_t *s = *s_p;
    if (!s)
        return;
    ProtobufCBinaryData *f[] = {&s->elgamal_secret, &s->elgamal_public, &s->hmss_enc_private,
                                &s->hmss_enc_public, &s->hmss_seed};
    for (size_t i = 0; i < DY_ARRAY_LEN(f); i++)
        if (f[i]->data)
            OPENSSL_cleanse(f[i]->data, f[i]->len);
    halo__internal__v1__secrets__free_unpacked(s, NULL);
    *s_p = NULL;
}

/* Opens the sealed "secrets" input with the master key.  -ENOENT (no
 * input; an error unless !required), 0 with *ret set (s_secrets_free). */
static int s_secrets_load(s_mill_t *m, bool required, s_secrets_t **ret)
{
    dy_buf_t sealed = {0}, pt = {0};
    int rc = s_read(m, "secrets", required, &sealed);
    if (rc < 0) {
        dy_buf_free(&sealed);
        return rc;
    }
    uint8_t key[32];
    rc = dy_secrets_load_master(m->prm->master_key_file, key);
    if (rc < 0) {
        dy_buf_free(&sealed);
        return s_fail(m, DY_OUTCOME_TEMPFAIL, "master_key", "master key %s: %s",
                      m->prm->master_key_file, strerror(-rc));
    }
    rc = dy_secrets_open(key, m->job->computation_id, sealed.data, sealed.len, &pt);
    OPENSSL_cleanse(key, sizeof(key));
    dy_buf_free(&sealed);
    if (rc < 0) {
        dy_buf_free(&pt);
        return s_fail(m, DY_OUTCOME_PERMFAIL, "secrets_unreadable",
                      "secrets do not open under the master key for this computation");
    }
    *ret = halo__internal__v1__secrets__unpack(NULL, pt.len, pt.data);
    dy_buf_free(&pt); /* wipes */
    if (!*ret)
        return s_fail(m, DY_OUTCOME_PERMFAIL, "secrets_unreadable", "secrets do not decode");
    return 0;
}

/* ---- LLv2 --------------------------------------------------------------- */

static dy_ec_t *s_ec(s_mill_t *m)
{
    if (!m->ec)
        m->ec = dy_ec_new();
    if (!m->ec)
        s_fail(m, DY_OUTCOME_TEMPFAIL, "engine_error", "EC group setup failed");
    return m->ec;
}

static int s_llv2_params(s_mill_t *m, dy_llv2_params_t *p)
{
    const Halo__Internal__V1__Llv2Params *l = m->prm->llv2;
    if (!l)
        return s_fail(m, DY_OUTCOME_PERMFAIL, "bad_params", "no llv2 params");
    const Halo__Internal__V1__DpParams zero = HALO__INTERNAL__V1__DP_PARAMS__INIT;
#define DP(f) ((dy_dp_params_t){(l->f ? l->f : &zero)->epsilon, (l->f ? l->f : &zero)->delta})
    *p = (dy_llv2_params_t){.decay_rate = l->decay_rate, .sketch_size = l->sketch_size,
                            .max_frequency = l->max_frequency, .num_sketches = l->num_sketches,
                            .vid_width = l->vid_width, .noise = (dy_noise_mech_t)l->noise,
                            .blinded_histogram = DP(blinded_histogram), .publisher = DP(publisher),
                            .reach = DP(reach), .frequency = DP(frequency),
                            .threads = m->threads};
#undef DP
    return 0;
}

/* The stage's engine context: params, secrets, ring keys. */
static dy_llv2_t *s_llv2_ctx(s_mill_t *m)
{
    const Halo__Internal__V1__Llv2Params *l = m->prm->llv2;
    dy_llv2_params_t p;
    if (s_llv2_params(m, &p) < 0 || !s_ec(m))
        return NULL;
    if (l->n_ring_public_keys != 3 || l->n_ring != 3 || l->ring_index < 0 || l->ring_index > 2) {
        s_fail(m, DY_OUTCOME_PERMFAIL, "bad_params", "llv2 ring incomplete");
        return NULL;
    }
    if (((int)m->prm->role == DY_ROLE_AGG) != (l->ring_index == DY_LLV2_AGG)) {
        s_fail(m, DY_OUTCOME_PERMFAIL, "bad_params", "role does not match ring index");
        return NULL;
    }
    uint8_t pub[3][DY_PTC_LEN];
    for (int i = 0; i < 3; i++) {
        if (l->ring_public_keys[i].len != DY_PTC_LEN) {
            s_fail(m, DY_OUTCOME_PERMFAIL, "bad_params", "ring key %d is not 33 bytes", i);
            return NULL;
        }
        memcpy(pub[i], l->ring_public_keys[i].data, DY_PTC_LEN);
    }
    s_secrets_t *sec = NULL;
    if (s_secrets_load(m, true, &sec) < 0)
        return NULL;
    if (sec->elgamal_secret.len != DY_SCALAR_LEN) {
        s_secrets_free(&sec);
        s_fail(m, DY_OUTCOME_PERMFAIL, "secrets_unreadable", "no ElGamal secret");
        return NULL;
    }
    dy_err_t e;
    dy_err_clear(&e);
    dy_llv2_t *ctx = dy_llv2_new(m->ec, &p, (dy_llv2_role_t)l->ring_index,
                                 sec->elgamal_secret.data, (const uint8_t(*)[DY_PTC_LEN])pub, &e);
    s_secrets_free(&sec);
    if (!ctx)
        s_engine_fail(m, -EINVAL, &e, "llv2 context");
    return ctx;
}

/* INITIALIZATION_PHASE: reuse the stored key pair, else make one. */
static int s_llv2_init(s_mill_t *m)
{
    s_secrets_t *sec = NULL;
    int rc = s_secrets_load(m, false, &sec);
    if (rc == 0) {
        if (sec->elgamal_public.len != DY_PTC_LEN || sec->elgamal_secret.len != DY_SCALAR_LEN) {
            s_secrets_free(&sec);
            return s_fail(m, DY_OUTCOME_PERMFAIL, "secrets_unreadable", "no ElGamal key pair");
        }
        rc = s_write(m, "public_key", sec->elgamal_public.data, DY_PTC_LEN);
        s_secrets_free(&sec);
        return rc;
    }
    if (rc != -ENOENT || !s_ec(m))
        return -1;
    uint8_t x[DY_SCALAR_LEN], pub[DY_PTC_LEN];
    if ((rc = dy_llv2_keygen(m->ec, x, pub)) < 0)
        return s_engine_fail(m, rc, NULL, "key generation");
    Halo__Internal__V1__Secrets s = HALO__INTERNAL__V1__SECRETS__INIT;
    s.elgamal_secret = (ProtobufCBinaryData){DY_SCALAR_LEN, x};
    s.elgamal_public = (ProtobufCBinaryData){DY_PTC_LEN, pub};
    size_t n = halo__internal__v1__secrets__get_packed_size(&s);
    uint8_t *pt = malloc(n);
    uint8_t key[32];
    dy_buf_t sealed = {0};
    if (!pt) {
        OPENSSL_cleanse(x, sizeof(x));
        return s_fail(m, DY_OUTCOME_TEMPFAIL, "out_of_memory", "secrets");
    }
    halo__internal__v1__secrets__pack(&s, pt);
    OPENSSL_cleanse(x, sizeof(x));
    rc = dy_secrets_load_master(m->prm->master_key_file, key);
    if (rc == 0) {
        rc = dy_secrets_seal(key, m->job->computation_id, pt, n, &sealed);
        OPENSSL_cleanse(key, sizeof(key));
        rc = rc < 0 ? s_fail(m, DY_OUTCOME_TEMPFAIL, "seal_failed", "secrets seal failed") : 0;
    } else {
        rc = s_fail(m, DY_OUTCOME_TEMPFAIL, "master_key", "master key %s: %s",
                    m->prm->master_key_file, strerror(-rc));
    }
    OPENSSL_cleanse(pt, n);
    free(pt);
    if (rc == 0)
        rc = s_write(m, "secrets", sealed.data, sealed.len);
    if (rc == 0)
        rc = s_write(m, "public_key", pub, DY_PTC_LEN);
    dy_buf_free(&sealed);
    return rc;
}

/* This duchy's requisition blobs, in the params' (ascending id) order. */
static int s_llv2_reqs(s_mill_t *m, dy_buf_t **ret, size_t *ret_n)
{
    const Halo__Internal__V1__Llv2Params *l = m->prm->llv2;
    dy_buf_t *reqs = calloc(l->n_requisitions ? l->n_requisitions : 1, sizeof(*reqs));
    if (!reqs)
        return s_fail(m, DY_OUTCOME_TEMPFAIL, "out_of_memory", "requisitions");
    *ret = reqs;
    *ret_n = l->n_requisitions;
    for (size_t i = 0; i < l->n_requisitions; i++) {
        char slot[DY_BLOB_NAME_MAX + 16];
        snprintf(slot, sizeof(slot), "requisition/%s", l->requisitions[i]);
        if (s_read(m, slot, true, &reqs[i]) < 0)
            return -1;
    }
    return 0;
}

static void s_bufs_free(dy_buf_t *b, size_t n)
{
    for (size_t i = 0; b && i < n; i++)
        dy_buf_free(&b[i]);
    free(b);
}

/* Input from ring member i ("input/<ring[i]>"). */
static int s_ring_input(s_mill_t *m, int i, dy_buf_t *out)
{
    char slot[DY_BLOB_NAME_MAX + 8];
    snprintf(slot, sizeof(slot), "input/%s", m->prm->llv2->ring[i]);
    return s_read(m, slot, true, out);
}

static int s_predecessor_input(s_mill_t *m, dy_buf_t *out)
{
    return s_ring_input(m, (m->prm->llv2->ring_index + 2) % 3, out);
}

static int s_setup_common(s_mill_t *m, bool reach_only)
{
    dy_llv2_t *ctx = s_llv2_ctx(m);
    dy_buf_t *reqs = NULL, na1 = {0}, na2 = {0}, crv = {0}, out = {0};
    size_t nreqs = 0;
    dy_err_t e;
    dy_err_clear(&e);
    int rc = ctx ? s_llv2_reqs(m, &reqs, &nreqs) : -1;
    bool agg = (int)m->prm->role == DY_ROLE_AGG;
    if (rc == 0 && agg)
        rc = s_ring_input(m, 0, &na1) < 0 || s_ring_input(m, 1, &na2) < 0 ? -1 : 0;
    if (rc == 0) {
        if (reach_only && agg)
            rc = dy_rollv2_setup_agg(ctx, reqs, nreqs, na1.data, na1.len, na2.data, na2.len,
                                     &out, &m->cnt, &e);
        else if (reach_only)
            rc = dy_rollv2_setup(ctx, reqs, nreqs, NULL, 0, &out, &m->cnt, &e);
        else {
            if (agg && (dy_buf_append(&crv, na1.data, na1.len) < 0 ||
                        dy_buf_append(&crv, na2.data, na2.len) < 0))
                rc = -ENOMEM;
            if (rc == 0)
                rc = dy_llv2_setup(ctx, reqs, nreqs, crv.data, crv.len, &out, &m->cnt, &e);
        }
        if (rc < 0)
            s_engine_fail(m, rc, &e, "setup");
        else
            rc = s_write(m, "output", out.data, out.len);
    }
    s_bufs_free(reqs, nreqs);
    dy_buf_free(&na1);
    dy_buf_free(&na2);
    dy_buf_free(&crv);
    dy_buf_free(&out);
    dy_llv2_destroy(&ctx);
    return rc;
}

static int s_llv2_setup(s_mill_t *m)
{
    return s_setup_common(m, false);
}

static int s_rollv2_setup(s_mill_t *m)
{
    return s_setup_common(m, true);
}

/* The execution phases: `phase` 1, 2, 3 (LLv2) or 0 (reach-only LLv2). */
static int s_exec(s_mill_t *m, int phase)
{
    dy_llv2_t *ctx = s_llv2_ctx(m);
    dy_buf_t in = {0}, out = {0}, rb = {0};
    dy_err_t e;
    dy_err_clear(&e);
    bool agg = (int)m->prm->role == DY_ROLE_AGG;
    int K = m->prm->llv2->max_frequency;
    int64_t reach = -1;
    double freq[DY_MC_FREQ_MAX] = {0};
    int rc = ctx ? s_predecessor_input(m, &in) : -1;
    if (rc == 0 && phase == 3 && agg) {
        if (K < 2 || K > DY_MC_FREQ_MAX)
            rc = s_fail(m, DY_OUTCOME_PERMFAIL, "bad_params", "max_frequency %d", K);
        else if ((rc = s_read(m, "reach", true, &rb)) == 0 && rb.len != 8)
            rc = s_fail(m, DY_OUTCOME_PERMFAIL, "input_corrupt", "reach is not 8 bytes");
        if (rc == 0) {
            reach = 0;
            for (int i = 0; i < 8; i++)
                reach = (int64_t)((uint64_t)reach << 8 | rb.data[i]);
        }
    }
    if (rc == 0) {
        switch (phase) {
        case 1:
            rc = dy_llv2_exec1(ctx, in.data, in.len, &out, &m->cnt, &e);
            break;
        case 2:
            rc = dy_llv2_exec2(ctx, in.data, in.len, &out, &reach, &m->cnt, &e);
            break;
        case 3:
            rc = dy_llv2_exec3(ctx, in.data, in.len, &out, freq, &m->cnt, &e);
            break;
        default:
            rc = dy_rollv2_exec(ctx, in.data, in.len, &out, &reach, &m->cnt, &e);
            break;
        }
        if (rc < 0)
            s_engine_fail(m, rc, &e, "execution");
    }
    if (rc == 0) {
        if (!agg)
            rc = s_write(m, "output", out.data, out.len);
        else if (phase == 1 || (phase == 2 && K > 1))
            rc = s_write(m, "output", out.data, out.len);
        if (rc == 0 && agg && phase == 2)
            rc = s_write_reach(m, reach);
        if (rc == 0 && agg && ((phase == 2 && K == 1) || phase == 0))
            rc = s_write_result(m, reach, NULL, 0);
        if (rc == 0 && agg && phase == 3)
            rc = s_write_result(m, reach, freq, K);
    }
    dy_buf_free(&in);
    dy_buf_free(&out);
    dy_buf_free(&rb);
    dy_llv2_destroy(&ctx);
    return rc;
}

static int s_llv2_exec1(s_mill_t *m)
{
    return s_exec(m, 1);
}
static int s_llv2_exec2(s_mill_t *m)
{
    return s_exec(m, 2);
}
static int s_llv2_exec3(s_mill_t *m)
{
    return s_exec(m, 3);
}
static int s_rollv2_exec(s_mill_t *m)
{
    return s_exec(m, 0);
}

/* ---- HMSS --------------------------------------------------------------- */

static int s_hmss_params(s_mill_t *m, dy_hmss_params_t *p)
{
    const Halo__Internal__V1__HmssParams *h = m->prm->hmss;
    if (!h)
        return s_fail(m, DY_OUTCOME_PERMFAIL, "bad_params", "no hmss params");
    const Halo__Internal__V1__DpParams zero = HALO__INTERNAL__V1__DP_PARAMS__INIT;
    const Halo__Internal__V1__DpParams *r = h->reach ? h->reach : &zero;
    const Halo__Internal__V1__DpParams *f = h->frequency ? h->frequency : &zero;
    *p = (dy_hmss_params_t){.ring_modulus = h->ring_modulus, .max_frequency = h->max_frequency,
                            .num_sketches = (int)h->n_requisitions, .reach_only = h->reach_only,
                            .vid_width = h->vid_width, .noise = (dy_noise_mech_t)h->noise,
                            .reach = {r->epsilon, r->delta},
                            .frequency = {f->epsilon, f->delta}, .threads = m->threads};
    dy_err_t e;
    dy_err_clear(&e);
    if (dy_hmss_params_check(p, &e) < 0)
        return s_engine_fail(m, -EINVAL, &e, "hmss params");
    return 0;
}

static int s_secrets_hmss(s_mill_t *m, s_secrets_t **ret)
{
    if (s_secrets_load(m, true, ret) < 0)
        return -1;
    if ((*ret)->hmss_seed.len != DY_PRNG_SEED_LEN || (*ret)->hmss_enc_private.len != 32) {
        s_secrets_free(ret);
        return s_fail(m, DY_OUTCOME_PERMFAIL, "secrets_unreadable", "no HMSS seed or key");
    }
    return 0;
}

/* SETUP_PHASE (NAs): ShufflePhaseInput = own omega + the seeds of the
 * requisitions fulfilled here, ascending id. */
static int s_hmss_setup(s_mill_t *m)
{
    const Halo__Internal__V1__HmssParams *h = m->prm->hmss;
    if (!h)
        return s_fail(m, DY_OUTCOME_PERMFAIL, "bad_params", "no hmss params");
    s_secrets_t *sec = NULL;
    if (s_secrets_hmss(m, &sec) < 0)
        return -1;
    s_shuffle_in_t spi = WFA__MEASUREMENT__INTERNAL__DUCHY__PROTOCOL__SHUFFLE_PHASE_INPUT__INIT;
    s_seed_t *seeds = calloc(h->n_requisitions + 1, sizeof(*seeds));
    s_seed_t **ptrs = calloc(h->n_requisitions + 1, sizeof(*ptrs));
    int rc = 0;
    if (!seeds || !ptrs)
        rc = s_fail(m, DY_OUTCOME_TEMPFAIL, "out_of_memory", "seeds");
    for (size_t i = 0; rc == 0 && i < h->n_requisitions; i++) {
        const Halo__Internal__V1__HmssRequisition *r = h->requisitions[i];
        if (!r->local)
            continue;
        if (!r->secret_seed_ciphertext.len || r->register_count <= 0 ||
            !r->data_provider_certificate[0]) {
            rc = s_fail(m, DY_OUTCOME_PERMFAIL, "missing_seed",
                        "requisition %s: no seed for the peer", r->id);
            break;
        }
        s_seed_t *s = &seeds[spi.n_secret_seeds];
        wfa__measurement__internal__duchy__protocol__secret_seed__init(s);
        s->requisition_id = r->name;
        s->secret_seed_ciphertext = r->secret_seed_ciphertext;
        s->register_count = r->register_count;
        s->data_provider_certificate = r->data_provider_certificate;
        ptrs[spi.n_secret_seeds++] = s;
    }
    if (rc == 0) {
        spi.peer_random_seed = sec->hmss_seed;
        spi.secret_seeds = ptrs;
        size_t n = wfa__measurement__internal__duchy__protocol__shuffle_phase_input__get_packed_size(&spi);
        uint8_t *buf = malloc(n ? n : 1);
        if (!buf)
            rc = s_fail(m, DY_OUTCOME_TEMPFAIL, "out_of_memory", "setup output");
        else {
            wfa__measurement__internal__duchy__protocol__shuffle_phase_input__pack(&spi, buf);
            rc = s_write(m, "output", buf, n);
            OPENSSL_cleanse(buf, n); /* holds omega */
            free(buf);
        }
    }
    free(seeds);
    free(ptrs);
    s_secrets_free(&sec);
    return rc;
}

/* "dataProviders/{dp}/certificates/{c}" -> "dataProviders/{dp}". */
static int s_party_of(const char *cert_name, char *out, size_t cap)
{
    const char *p = strstr(cert_name, "/certificates/");
    if (strncmp(cert_name, "dataProviders/", 14) != 0 || !p || p == cert_name + 14 ||
        (size_t)(p - cert_name) >= cap)
        return -EINVAL;
    memcpy(out, cert_name, (size_t)(p - cert_name));
    out[p - cert_name] = 0;
    return 0;
}

/* The peer-forwarded seed of requisition r: decrypt with d, verify the
 * EDP's signature with its certificate (chained to the trust set). */
static int s_open_seed(s_mill_t *m, dy_mc_trust_t *trust, const uint8_t d[32],
                       const Halo__Internal__V1__HmssRequisition *r, const s_shuffle_in_t *peer,
                       uint8_t seed[DY_PRNG_SEED_LEN], int64_t *ret_count)
{
    const Halo__Internal__V1__HmssParams *h = m->prm->hmss;
    ProtobufCBinaryData ct = r->secret_seed_ciphertext;
    const char *cert_name = r->data_provider_certificate;
    *ret_count = r->register_count;
    if (!ct.len) {
        for (size_t i = 0; i < peer->n_secret_seeds; i++) {
            if (strcmp(peer->secret_seeds[i]->requisition_id, r->name) == 0) {
                ct = peer->secret_seeds[i]->secret_seed_ciphertext;
                cert_name = peer->secret_seeds[i]->data_provider_certificate;
                *ret_count = peer->secret_seeds[i]->register_count;
            }
        }
    }
    if (!ct.len)
        return s_fail(m, DY_OUTCOME_PERMFAIL, "missing_seed",
                      "requisition %s: neither data nor seed", r->id);
    char party[DY_BLOB_NAME_MAX * 2], path[DY_BLOB_PATH_MAX], why[256] = "";
    if (s_party_of(cert_name, party, sizeof(party)) < 0)
        return s_fail(m, DY_OUTCOME_PERMFAIL, "certificate_untrusted",
                      "requisition %s: bad certificate name", r->id);
    if (r->certificate_path[0])
        snprintf(path, sizeof(path), "%s", r->certificate_path);
    else if (snprintf(path, sizeof(path), "%s/%s.pem", h->certificate_dir, cert_name) >=
             (int)sizeof(path))
        return s_fail(m, DY_OUTCOME_PERMFAIL, "bad_params", "certificate path too long");
    X509 *cert = dy_mc_load_cert(path);
    if (!cert)
        return s_fail(m, DY_OUTCOME_TEMPFAIL, "certificate_missing",
                      "requisition %s: certificate %s not available", r->id, cert_name);
    int rc = dy_mc_trust_check(trust, cert, party, why, sizeof(why));
    EVP_PKEY *pk = rc == 0 ? X509_get_pubkey(cert) : NULL;
    X509_free(cert);
    if (rc < 0 || !pk) {
        EVP_PKEY_free(pk);
        return s_fail(m, DY_OUTCOME_PERMFAIL, "certificate_untrusted", "requisition %s: %s",
                      r->id, why);
    }
    /* Integration fix: the seed's signature and ECIES info bind the computation's
     * resource name "computations/{c}" (CRYPTO.md 8.7, as the EDP seals it and as the
     * key signatures use it), not the bare local id the job carries. */
    char cname[DY_BLOB_NAME_MAX + 16];
    snprintf(cname, sizeof(cname), "computations/%s", m->job->computation_id);
    rc = dy_mc_seed_open(d, pk, cname, r->name, ct.data, ct.len, seed);
    EVP_PKEY_free(pk);
    if (rc == -EKEYREJECTED)
        return s_fail(m, DY_OUTCOME_PERMFAIL, "seed_invalid",
                      "requisition %s: the seed's signature does not verify with %s", r->id,
                      cert_name);
    if (rc < 0)
        return s_fail(m, DY_OUTCOME_PERMFAIL, "seed_invalid",
                      "requisition %s: the seed does not decrypt under this shuffler's key",
                      r->id);
    return 0;
}

/* SHUFFLE_PHASE (NAs). */
static int s_hmss_shuffle(s_mill_t *m)
{
    const Halo__Internal__V1__HmssParams *h = m->prm->hmss;
    dy_hmss_params_t p;
    if (s_hmss_params(m, &p) < 0)
        return -1;
    size_t n = h->n_requisitions;
    s_secrets_t *sec = NULL;
    dy_buf_t pin = {0}, out = {0};
    s_shuffle_in_t *peer = NULL;
    dy_mc_trust_t *trust = NULL;
    dy_hmss_share_t *shares = calloc(n + 1, sizeof(*shares));
    uint32_t **data = calloc(n + 1, sizeof(*data));
    uint8_t(*seeds)[DY_PRNG_SEED_LEN] = calloc(n + 1, DY_PRNG_SEED_LEN);
    uint32_t *vec = NULL;
    size_t vlen = 0;
    uint8_t common[DY_PRNG_SEED_LEN];
    char slot[DY_BLOB_NAME_MAX + 16], why[256] = "";
    int rc = shares && data && seeds ? 0 : s_fail(m, DY_OUTCOME_TEMPFAIL, "out_of_memory", "shares");
    if (rc == 0)
        rc = s_secrets_hmss(m, &sec);
    if (rc == 0) {
        snprintf(slot, sizeof(slot), "input/%s", h->peer);
        rc = s_read(m, slot, true, &pin);
    }
    if (rc == 0 && !(peer = wfa__measurement__internal__duchy__protocol__shuffle_phase_input__unpack(
                         NULL, pin.len, pin.data)))
        rc = s_fail(m, DY_OUTCOME_PERMFAIL, "bad_input", "peer's ShufflePhaseInput does not decode");
    if (rc == 0 && peer->peer_random_seed.len != DY_PRNG_SEED_LEN)
        rc = s_fail(m, DY_OUTCOME_PERMFAIL, "bad_length", "peer seed is not 48 bytes");
    for (size_t i = 0; rc == 0 && i < n; i++) {
        const Halo__Internal__V1__HmssRequisition *r = h->requisitions[i];
        if (i > 0 && strcmp(h->requisitions[i - 1]->id, r->id) >= 0) {
            rc = s_fail(m, DY_OUTCOME_PERMFAIL, "bad_params", "requisitions not ascending");
            break;
        }
        if (r->local) {
            dy_buf_t b = {0};
            dy_err_t e;
            dy_err_clear(&e);
            snprintf(slot, sizeof(slot), "requisition/%s", r->id);
            rc = s_read(m, slot, true, &b);
            if (rc == 0 && (rc = dy_hmss_from_le(b.data, b.len, p.ring_modulus, &data[i],
                                                 &shares[i].registers, &e)) < 0)
                s_engine_fail(m, rc, &e, "share");
            dy_buf_free(&b);
            shares[i].data = data[i];
        } else {
            int64_t count = 0;
            if (!trust && !(trust = dy_mc_trust_new(h->trusted_ca, h->parties, why, sizeof(why)))) {
                rc = s_fail(m, DY_OUTCOME_TEMPFAIL, "trust_unavailable", "%s", why);
                break;
            }
            rc = s_open_seed(m, trust, sec->hmss_enc_private.data, r, peer, seeds[i], &count);
            if (rc == 0 && count <= 0)
                rc = s_fail(m, DY_OUTCOME_PERMFAIL, "bad_length", "requisition %s: register count",
                            r->id);
            /* The count sizes the expansion of the seed: bound it as an upload of that
             * share here would be (gateway.max_upload), before anything is allocated,
             * rather than leave it to the memory limit (a transient out_of_memory,
             * retried). */
            if (rc == 0 && h->max_register_count > 0 && count > h->max_register_count)
                rc = s_fail(m, DY_OUTCOME_PERMFAIL, "register_count_too_large",
                            "requisition %s: register count %" PRId64 " above %" PRId64
                            " (gateway.max_upload / 4)",
                            r->id, count, (int64_t)h->max_register_count);
            shares[i].seed = seeds[i];
            shares[i].registers = (size_t)count;
        }
        /* Name both: either may be the wrong one. */
        if (rc == 0 && shares[i].registers != shares[0].registers)
            rc = s_fail(m, DY_OUTCOME_PERMFAIL, "share_inconsistent",
                        "register counts differ: requisition %s has %zu, requisition %s %zu",
                        h->requisitions[0]->id, shares[0].registers, r->id,
                        shares[i].registers);
    }
    if (rc == 0 && n == 0)
        rc = s_fail(m, DY_OUTCOME_PERMFAIL, "bad_params", "no requisitions");
    if (rc == 0) {
        for (int i = 0; i < DY_PRNG_SEED_LEN; i++)
            common[i] = sec->hmss_seed.data[i] ^ peer->peer_random_seed.data[i];
        dy_err_t e;
        dy_err_clear(&e);
        int which = (int)m->prm->role == DY_ROLE_FNA ? 1 : 2;
        rc = dy_hmss_shuffle(&p, which, shares, n, common, &vec, &vlen, &e);
        OPENSSL_cleanse(common, sizeof(common));
        if (rc < 0)
            s_engine_fail(m, rc, &e, "shuffle");
    }
    if (rc == 0) {
        s_agg_in_t a = WFA__MEASUREMENT__INTERNAL__DUCHY__PROTOCOL__AGGREGATION_PHASE_INPUT__INIT;
        a.combined_frequency_vectors = vec;
        a.n_combined_frequency_vectors = vlen;
        a.register_count = (int64_t)shares[0].registers;
        size_t sz = wfa__measurement__internal__duchy__protocol__aggregation_phase_input__get_packed_size(&a);
        if (dy_buf_reserve(&out, sz ? sz : 1) < 0)
            rc = s_fail(m, DY_OUTCOME_TEMPFAIL, "out_of_memory", "aggregation input");
        else {
            out.len = wfa__measurement__internal__duchy__protocol__aggregation_phase_input__pack(&a, out.data);
            m->cnt.out_blocks += vlen;
            m->cnt.in_blocks += shares[0].registers * n;
            m->cnt.noise_blocks += vlen - shares[0].registers;
            rc = s_write(m, "output", out.data, out.len);
        }
    }
    for (size_t i = 0; data && i < n; i++)
        free(data[i]);
    free(data);
    if (seeds)
        OPENSSL_cleanse(seeds, (n + 1) * DY_PRNG_SEED_LEN);
    free(seeds);
    free(shares);
    free(vec);
    dy_buf_free(&pin);
    dy_buf_free(&out);
    if (peer)
        wfa__measurement__internal__duchy__protocol__shuffle_phase_input__free_unpacked(peer, NULL);
    dy_mc_trust_destroy(&trust);
    s_secrets_free(&sec);
    return rc;
}

static s_agg_in_t *s_agg_input(s_mill_t *m, const char *from, uint64_t q)
{
    char slot[DY_BLOB_NAME_MAX + 8];
    dy_buf_t b = {0};
    snprintf(slot, sizeof(slot), "input/%s", from);
    if (s_read(m, slot, true, &b) < 0)
        return NULL;
    s_agg_in_t *a =
        wfa__measurement__internal__duchy__protocol__aggregation_phase_input__unpack(NULL, b.len, b.data);
    dy_buf_free(&b);
    if (!a) {
        s_fail(m, DY_OUTCOME_PERMFAIL, "bad_input", "%s: AggregationPhaseInput does not decode",
               from);
        return NULL;
    }
    for (size_t i = 0; i < a->n_combined_frequency_vectors; i++) {
        if (a->combined_frequency_vectors[i] >= q) {
            s_fail(m, DY_OUTCOME_PERMFAIL, "value_out_of_range", "%s: value %zu >= q", from, i);
            wfa__measurement__internal__duchy__protocol__aggregation_phase_input__free_unpacked(a, NULL);
            return NULL;
        }
    }
    return a;
}

/* AGGREGATION_PHASE (AG). */
static int s_hmss_aggregate(s_mill_t *m)
{
    const Halo__Internal__V1__HmssParams *h = m->prm->hmss;
    dy_hmss_params_t p;
    if (s_hmss_params(m, &p) < 0)
        return -1;
    if (p.max_frequency > DY_MC_FREQ_MAX)
        return s_fail(m, DY_OUTCOME_PERMFAIL, "bad_params", "max_frequency %d", p.max_frequency);
    s_agg_in_t *a1 = s_agg_input(m, h->first_non_aggregator, p.ring_modulus);
    s_agg_in_t *a2 = a1 ? s_agg_input(m, h->second_non_aggregator, p.ring_modulus) : NULL;
    int rc = a1 && a2 ? 0 : -1;
    if (rc == 0 && (a1->n_combined_frequency_vectors != a2->n_combined_frequency_vectors ||
                    a1->register_count != a2->register_count || a1->register_count <= 0 ||
                    (uint64_t)a1->register_count > a1->n_combined_frequency_vectors))
        rc = s_fail(m, DY_OUTCOME_PERMFAIL, "share_inconsistent",
                    "the shufflers' vectors differ in length or register count");
    if (rc == 0) {
        int64_t reach = 0;
        double freq[DY_MC_FREQ_MAX] = {0};
        dy_err_t e;
        dy_err_clear(&e);
        rc = dy_hmss_aggregate(&p, a1->combined_frequency_vectors, a2->combined_frequency_vectors,
                               a1->n_combined_frequency_vectors, (size_t)a1->register_count,
                               &reach, p.reach_only ? NULL : freq, &e);
        m->cnt.in_blocks += 2 * a1->n_combined_frequency_vectors;
        if (rc < 0)
            s_engine_fail(m, rc, &e, "aggregation");
        else
            rc = s_write_result(m, reach, freq, p.reach_only ? 0 : p.max_frequency);
    }
    if (a1)
        wfa__measurement__internal__duchy__protocol__aggregation_phase_input__free_unpacked(a1, NULL);
    if (a2)
        wfa__measurement__internal__duchy__protocol__aggregation_phase_input__free_unpacked(a2, NULL);
    return rc;
}

/* ---- the stage table ---------------------------------------------------- */

typedef int (*s_stage_fn)(s_mill_t *m);
static const struct {
    int protocol;
    int stage; /* control.proto numbers, as stages.c */
    s_stage_fn fn;
} s_stages[] = {
    {DY_PROTO_LLV2, 1, s_llv2_init},     {DY_PROTO_LLV2, 6, s_llv2_setup},
    {DY_PROTO_LLV2, 8, s_llv2_exec1},    {DY_PROTO_LLV2, 10, s_llv2_exec2},
    {DY_PROTO_LLV2, 12, s_llv2_exec3},   {DY_PROTO_RO_LLV2, 1, s_llv2_init},
    {DY_PROTO_RO_LLV2, 6, s_rollv2_setup}, {DY_PROTO_RO_LLV2, 8, s_rollv2_exec},
    {DY_PROTO_HMSS, 4, s_hmss_setup},    {DY_PROTO_HMSS, 7, s_hmss_shuffle},
    {DY_PROTO_HMSS, 8, s_hmss_aggregate},
};

static int s_run(s_mill_t *m)
{
    const s_job_t *j = m->job;
    const s_params_t *p = m->prm;
    if (p->protocol != j->protocol || p->role != j->role || p->stage != j->stage ||
        strcmp(p->computation_id, j->computation_id) != 0)
        return s_fail(m, DY_OUTCOME_PERMFAIL, "bad_job", "params do not match the job");
    if (!dy_stage_computes(j->protocol, j->role, j->stage))
        return s_fail(m, DY_OUTCOME_PERMFAIL, "bad_job", "stage %d does not compute for role %d",
                      j->stage, j->role);
    struct timeval tv;
    gettimeofday(&tv, NULL);
    if (j->deadline_unix_ms &&
        (uint64_t)tv.tv_sec * 1000 + (uint64_t)tv.tv_usec / 1000 > j->deadline_unix_ms)
        return s_fail(m, DY_OUTCOME_TEMPFAIL, "mill_deadline", "deadline passed before start");
    m->blobs = dy_blobdir_new(j->output_dir, p->duchy_id);
    if (!m->blobs)
        return s_fail(m, DY_OUTCOME_TEMPFAIL, "io_error", "blob directory %s/%s: %s",
                      j->output_dir, p->duchy_id, strerror(errno));
    for (size_t i = 0; i < DY_ARRAY_LEN(s_stages); i++)
        if (s_stages[i].protocol == (int)j->protocol && s_stages[i].stage == j->stage)
            return s_stages[i].fn(m);
    return s_fail(m, DY_OUTCOME_PERMFAIL, "bad_job", "no mill function for the stage");
}

/* ---- result ------------------------------------------------------------- */

static int s_send_result(s_mill_t *m, const char *job_id, double wall, double cpu)
{
    Halo__Internal__V1__MillResult r = HALO__INTERNAL__V1__MILL_RESULT__INIT;
    Halo__Internal__V1__Blob blobs[S_MAX_OUTPUTS], *bp[S_MAX_OUTPUTS];
    Halo__Internal__V1__Counter cnt[6], *cp[6];
    r.job_id = (char *)job_id;
    bool ok = m->err.outcome == DY_OUTCOME_OK;
    r.outcome = ok ? HALO__INTERNAL__V1__MILL_RESULT__OUTCOME__OK
                : m->err.outcome == DY_OUTCOME_PERMFAIL ? HALO__INTERNAL__V1__MILL_RESULT__OUTCOME__PERMFAIL
                                                        : HALO__INTERNAL__V1__MILL_RESULT__OUTCOME__TEMPFAIL;
    r.code = m->err.code;
    r.message = m->err.message;
    for (size_t i = 0; ok && i < m->nout; i++) {
        halo__internal__v1__blob__init(&blobs[i]);
        blobs[i].slot = m->out[i].slot;
        blobs[i].path = m->out[i].info.path;
        blobs[i].size = m->out[i].info.size;
        blobs[i].sha256 = (ProtobufCBinaryData){32, m->out[i].info.sha256};
        bp[i] = &blobs[i];
    }
    r.n_outputs = ok ? m->nout : 0;
    r.outputs = bp;
    const struct {
        const char *name;
        uint64_t v;
    } cv[6] = {{"in_blocks", m->cnt.in_blocks},       {"out_blocks", m->cnt.out_blocks},
               {"noise_blocks", m->cnt.noise_blocks}, {"dropped", m->cnt.dropped},
               {"bytes_in", m->bytes_in},             {"bytes_out", m->bytes_out}};
    for (int i = 0; i < 6; i++) {
        halo__internal__v1__counter__init(&cnt[i]);
        cnt[i].name = (char *)cv[i].name;
        cnt[i].value = (int64_t)cv[i].v;
        cp[i] = &cnt[i];
    }
    r.n_counters = 6;
    r.counters = cp;
    r.wall_seconds = wall;
    r.cpu_seconds = cpu;
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) == 0)
        r.peak_rss_bytes = (uint64_t)ru.ru_maxrss * 1024;
    size_t n = halo__internal__v1__mill_result__get_packed_size(&r);
    uint8_t *body = malloc(n ? n : 1);
    dy_buf_t frame = {0};
    int rc = body ? 0 : -ENOMEM;
    if (rc == 0) {
        halo__internal__v1__mill_result__pack(&r, body);
        rc = dy_mill_frame(body, n, &frame);
    }
    if (rc == 0)
        rc = dy_spawn_write_result(frame.data, frame.len);
    free(body);
    dy_buf_free(&frame);
    return rc;
}

int main(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    /* No core dumps and no ptrace by other processes of the user. */
    (void)prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
    double t0 = dy_now(), c0 = dy_cpu_now();
    s_mill_t m = {0};
    dy_err_clear(&m.err);
    dy_buf_t raw = {0};
    const uint8_t *body = NULL;
    size_t blen = 0;
    const char *job_id = "";
    dy_log_init("mill", NULL, false);
    int rc = dy_spawn_read_job(&raw, DY_MILL_FRAME_MAX + 4);
    if (rc < 0 || dy_mill_unframe(raw.data, raw.len, &body, &blen) < 0 ||
        !(m.job = halo__internal__v1__mill_job__unpack(NULL, blen, body)))
        s_fail(&m, DY_OUTCOME_TEMPFAIL, "bad_job", "job unreadable");
    else if (!(m.prm = halo__internal__v1__mill_params__unpack(NULL, m.job->params.len,
                                                               m.job->params.data)))
        s_fail(&m, DY_OUTCOME_PERMFAIL, "bad_params", "params do not decode");
    if (m.job) {
        job_id = m.job->job_id;
        if (m.job->params.data)
            OPENSSL_cleanse(m.job->params.data, m.job->params.len);
    }
    dy_buf_free(&raw);
    if (m.prm) {
        dy_log_init("mill", m.prm->duchy_id[0] ? m.prm->duchy_id : NULL, false);
        m.lc = (dy_log_ctx_t){m.job->computation_id,
                              dy_stage_name(m.job->protocol, m.job->stage), m.job->attempt};
        m.threads = m.job->threads > 0 ? (int)m.job->threads : 1;
        log_debug_c(&m.lc, "mill starts, %zu inputs, %d threads", m.job->n_inputs, m.threads);
        (void)s_run(&m);
    }
    double wall = dy_now() - t0, cpu = dy_cpu_now() - c0;
    /* Without params the duchy (and maybe the computation) is unknown here: no line; the
     * claimer logs the outcome, with duchy, computation and stage, from the MillResult. */
    if (m.err.outcome != DY_OUTCOME_OK && m.prm != NULL)
        log_warnx_c(&m.lc, "stage failed (%s): %s: %s",
                    m.err.outcome == DY_OUTCOME_PERMFAIL ? "PERMFAIL" : "TEMPFAIL", m.err.code,
                    m.err.message);
    else if (m.err.outcome == DY_OUTCOME_OK)
        log_info_c(&m.lc, "stage done in %.3f s (cpu %.3f s), %zu outputs", wall, cpu, m.nout);
    rc = s_send_result(&m, job_id, wall, cpu);
    dy_blobdir_destroy(&m.blobs);
    dy_ec_destroy(&m.ec);
    if (m.prm) {
        halo__internal__v1__mill_params__free_unpacked(m.prm, NULL);
    }
    if (m.job)
        halo__internal__v1__mill_job__free_unpacked(m.job, NULL);
    return rc < 0 ? DY_EXIT_TEMPORARY : DY_EXIT_OK;
}
