/* fuzz_llv2.c - libFuzzer target for the LLv2 and reach-only LLv2 stage inputs a duchy-mill
 * applies to bytes received from a peer duchy (AdvanceComputation bodies) or stored from a
 * data provider (encrypted sketches): dy_llv2_setup / exec1 / exec2 / exec3 and
 * dy_rollv2_setup / dy_rollv2_setup_agg / dy_rollv2_exec (common/protocol), which decode and
 * validate every point before computing (STYLE.md rule 38).
 *
 * The stage contexts are the fixture's (tests/fuzz/fuzz_fixture.h): fixed keys of the ring
 * worker1, worker2, aggregator, two requisitions, K = 3 or 1, with or without noise.
 * Input layout:
 *   byte 0  operation: 0 LLv2 setup, 1 exec1, 2 exec2, 3 exec3, 4 RO setup (the NAs'
 *           outputs apart at AGG, as the mill passes them), 5 RO setup with the NAs' outputs
 *           concatenated, 6 RO execution
 *   byte 1  role = b % 3 (NA1, NA2, AGG); noise = (b / 3) & 1; LLv2 K = 1 if (b / 6) & 1,
 *           else 3; requisitions = (b / 12) % 3
 *   rest    setup: the requisition blobs, then (AGG) NA1's and NA2's outputs, each a 2-byte
 *           big-endian length and its bytes; the other stages: the input itself.
 * Invariants (abort on violation): a refusal is a typed PERMFAIL with an empty output (only
 * out_of_memory may be TEMPFAIL); an accepted input yields an output of whole blocks that
 * the next duchy's body check (dy_coord_check_body) accepts, and frequencies summing to 1.
 * tests/fuzz/replay.c runs this over corpus/llv2 in every build; fuzz_seeds.c wrote the
 * seeds by running the real pipeline with the fixture's keys.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_fixture.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

enum { S_NA1 = 0, S_NA2 = 1, S_AGG = 2 };

/* A refusal must be typed and permanent, and leave no output. */
static void s_refused(int rc, const dy_err_t *e, const dy_buf_t *out)
{
    FZ_CHECK(rc < 0);
    FZ_CHECK(e->outcome != DY_OUTCOME_OK && e->code[0] != '\0');
    FZ_CHECK(e->outcome == DY_OUTCOME_PERMFAIL || strcmp(e->code, "out_of_memory") == 0);
    FZ_CHECK(out->len == 0);
}

/* What a duchy sends must pass the receiver's body check for that description. */
static void s_sendable(int protocol, int description, const dy_buf_t *out)
{
    char why[160] = "";
    int rc = dy_coord_check_body(protocol, description, out->data, out->len, why, sizeof(why));
    if (rc != 0)
        fprintf(stderr, "output refused by the receiver: %s\n", why);
    FZ_CHECK(rc == 0);
}

static void s_llv2(int op, int role, bool noise, int K, size_t nreqs, fz_in_t in)
{
    dy_llv2_t *ctx = fz_llv2(K, role, noise);
    dy_buf_t out = {0}, crv = {0};
    dy_buf_t reqs[2] = {{0}, {0}};
    dy_stage_counters_t cnt = {0};
    dy_err_t e;
    dy_err_clear(&e);
    int64_t reach = -1;
    double freq[3] = {0};
    int rc;
    switch (op) {
    case 0: {
        for (size_t i = 0; i < nreqs; i++) {
            fz_in_t p = fz_part(&in);
            FZ_CHECK(dy_buf_append(&reqs[i], p.p, p.n) == 0);
        }
        if (role == S_AGG) { /* the mill passes NA1's output || NA2's output */
            fz_in_t a = fz_part(&in), b = fz_part(&in);
            FZ_CHECK(dy_buf_append(&crv, a.p, a.n) == 0 && dy_buf_append(&crv, b.p, b.n) == 0);
        }
        rc = dy_llv2_setup(ctx, reqs, nreqs, crv.data, crv.len, &out, &cnt, &e);
        if (rc == 0) {
            /* NAs send their output to AGG (SETUP_PHASE_INPUT), AGG to NA1 (exec one). */
            s_sendable(DY_PROTO_LLV2, role == S_AGG ? 2 : 1, &out);
            FZ_CHECK(out.len >= reqs[0].len + reqs[1].len + crv.len);
        }
        break;
    }
    case 1:
        rc = dy_llv2_exec1(ctx, in.p, in.n, &out, &cnt, &e);
        if (rc == 0) {
            s_sendable(DY_PROTO_LLV2, role == S_AGG ? 3 : 2, &out);
            if (role != S_AGG)
                FZ_CHECK(out.len == in.n);
        }
        break;
    case 2:
        rc = dy_llv2_exec2(ctx, in.p, in.n, &out, &reach, &cnt, &e);
        if (rc == 0 && role == S_AGG) {
            FZ_CHECK(reach >= 0);
            if (K > 1)
                s_sendable(DY_PROTO_LLV2, 4, &out);
            else
                FZ_CHECK(out.len == 0);
        } else if (rc == 0) {
            s_sendable(DY_PROTO_LLV2, 3, &out);
        }
        break;
    default:
        rc = dy_llv2_exec3(ctx, in.p, in.n, &out, freq, &cnt, &e);
        if (rc == 0 && role == S_AGG) {
            double sum = 0;
            for (int i = 0; i < K; i++) {
                FZ_CHECK(freq[i] >= 0 && freq[i] <= 1);
                sum += freq[i];
            }
            FZ_CHECK(fabs(sum - 1.0) < 1e-9);
        } else if (rc == 0) {
            FZ_CHECK(out.len == in.n);
            s_sendable(DY_PROTO_LLV2, 4, &out);
        }
        break;
    }
    if (rc != 0)
        s_refused(rc, &e, &out);
    else
        FZ_CHECK(e.outcome == DY_OUTCOME_OK);
    for (size_t i = 0; i < 2; i++)
        dy_buf_free(&reqs[i]);
    dy_buf_free(&crv);
    dy_buf_free(&out);
}

static void s_rollv2(int op, int role, bool noise, size_t nreqs, fz_in_t in)
{
    dy_llv2_t *ctx = fz_llv2(1, role, noise);
    dy_buf_t out = {0};
    dy_buf_t reqs[2] = {{0}, {0}};
    dy_stage_counters_t cnt = {0};
    dy_err_t e;
    dy_err_clear(&e);
    int64_t reach = -1;
    int rc;
    if (op == 4 || op == 5) {
        for (size_t i = 0; i < nreqs; i++) {
            fz_in_t p = fz_part(&in);
            FZ_CHECK(dy_buf_append(&reqs[i], p.p, p.n) == 0);
        }
    }
    if (op == 4 && role == S_AGG) {
        fz_in_t a = fz_part(&in), b = fz_part(&in);
        rc = dy_rollv2_setup_agg(ctx, reqs, nreqs, a.p, a.n, b.p, b.n, &out, &cnt, &e);
    } else if (op == 4) {
        rc = dy_rollv2_setup(ctx, reqs, nreqs, NULL, 0, &out, &cnt, &e);
    } else if (op == 5) {
        rc = dy_rollv2_setup(ctx, reqs, nreqs, in.p, in.n, &out, &cnt, &e);
    } else {
        rc = dy_rollv2_exec(ctx, in.p, in.n, &out, &reach, &cnt, &e);
        if (rc == 0 && role == S_AGG)
            FZ_CHECK(reach >= 0 && out.len == 0);
        else if (rc == 0)
            FZ_CHECK(out.len == in.n);
    }
    if (rc == 0 && !(op == 6 && role == S_AGG)) {
        /* Every RO-LLv2 output ends with its X block and goes on as a body the receiver
         * accepts: setup to AGG (or, at AGG, to NA1 as the execution input), execution on
         * along the ring. */
        FZ_CHECK(out.len >= DY_LLV2_RO_BLOCK);
        s_sendable(DY_PROTO_RO_LLV2, op == 6 || role == S_AGG ? 2 : 1, &out);
    }
    if (rc != 0)
        s_refused(rc, &e, &out);
    for (size_t i = 0; i < 2; i++)
        dy_buf_free(&reqs[i]);
    dy_buf_free(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    fz_rng_reset(0x6c6c7632);
    int op = data[0] % 7, role = data[1] % 3;
    bool noise = (data[1] / 3) & 1;
    int K = ((data[1] / 6) & 1) ? 1 : 3;
    size_t nreqs = (size_t)(data[1] / 12) % 3;
    fz_in_t in = {data + 2, size - 2};
    if (op < 4)
        s_llv2(op, role, noise, K, nreqs, in);
    else
        s_rollv2(op, role, noise, nreqs, in);
    return 0;
}
