/* duchy-bench - runs one MPC protocol with all three duchies in this process
 * (no network, no database) and times each duchy's stages
 * (INTERFACES.md "The engine benchmark").
 *
 * LLv2 and reach-only LLv2: three ElGamal key pairs, the data providers
 * encrypt their sketches under the composite key (not timed), then setup at
 * NA1, NA2 and AGG, and execution phases one to three (reach only: one
 * execution phase) round the ring.  HMSS: the data providers share their
 * frequency vectors (not timed), both shufflers shuffle, the aggregator
 * aggregates.  total_seconds covers the duchies' work, including the
 * per-computation precomputation (fixed-base tables, in the "init" phases).
 *
 * Shapes: `reference` is the reference implementation's synthetic data
 * (LLv2: N distinct registers, register i has index i, key i+1, count
 * 1 + (i mod 7), in one requisition; HMSS: two data providers e = 0, 1
 * whose register i holds (i·(e+1)) mod 5, capped at K, so one register in
 * five is unreached); `campaign` draws the data
 * providers from a seeded population (sketch/campaign.h).
 */
#include "dy.h"
#include "crypto/ec.h"
#include "noise/noise.h"
#include "par.h"
#include "protocol/hmss.h"
#include "protocol/llv2.h"
#include "sketch/campaign.h"
#include "sketch/fvec.h"
#include "sketch/ll.h"

#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>

#define EX_USAGE 64
#define MAX_PHASES 64

typedef enum { P_LLV2, P_LLV2_RO, P_HMSS, P_HMSS_RO } s_proto_t;
static const char *s_proto_names[] = {"llv2", "llv2-reach-only", "hmss", "hmss-reach-only"};

typedef struct {
    s_proto_t proto;
    bool campaign; /* shape */
    uint64_t registers;
    int64_t sketch_size;
    double decay_rate;
    int max_frequency;
    dy_noise_mech_t noise;
    double epsilon, delta;
    int threads;
    uint64_t ring_modulus;
    int edps;
    uint64_t population, reach;
    uint64_t seed;
    bool json;
    bool openssl_speed;
} s_opts_t;

typedef struct {
    const char *name;
    const char *duchy;
    double seconds, cpu_seconds;
} s_phase_t;

typedef struct {
    s_phase_t phase[MAX_PHASES];
    int nphases;
    double t0, c0;
    /* results */
    int64_t reach, true_reach, plaintext_estimate;
    bool have_plaintext;
    double freq[64], true_freq[64];
    int nfreq;
    uint64_t nreg; /* registers processed: sketch registers (LLv2), R (HMSS) */
} s_run_t;

static const char *s_duchy_names[3] = {"worker1", "worker2", "aggregator"};

static void s_begin(s_run_t *run)
{
    run->t0 = dy_now();
    run->c0 = dy_cpu_now();
}

static void s_end(s_run_t *run, const char *name, const char *duchy)
{
    if (run->nphases >= MAX_PHASES)
        return;
    s_phase_t *p = &run->phase[run->nphases++];
    p->name = name;
    p->duchy = duchy;
    p->seconds = dy_now() - run->t0;
    p->cpu_seconds = dy_cpu_now() - run->c0;
    fprintf(stderr, "duchy-bench: %-12s %-18s %9.3f s (cpu %.3f s)\n", duchy, name, p->seconds,
            p->cpu_seconds);
}

static void s_die_err(const char *what, int rc, const dy_err_t *err)
{
    fprintf(stderr, "duchy-bench: %s failed (%d): %s: %s\n", what, rc,
            err && err->code[0] ? err->code : "error", err ? err->message : "");
    exit(1);
}

static void s_usage(FILE *out)
{
    fprintf(out,
            "usage: duchy-bench --protocol llv2|llv2-reach-only|hmss|hmss-reach-only [options]\n"
            "  --shape reference|campaign   synthetic data shape (reference)\n"
            "  --registers N                LLv2 reference: sketch registers; HMSS: vector "
            "length (10000)\n"
            "  --sketch-size M              LLv2 sketch size m (max(100000, 2N))\n"
            "  --decay-rate A               LLv2 decay rate a (12)\n"
            "  --max-frequency K            (10)\n"
            "  --noise none|geometric|discrete-gaussian   (none)\n"
            "  --epsilon E --delta D        DP parameters of reach and frequency (1, 1e-5)\n"
            "  --threads T                  worker threads (all CPUs)\n"
            "  --ring-modulus Q             HMSS ring modulus (127)\n"
            "  --edps N --population P --reach R --seed S   campaign shape (3, 1000000, "
            "20000, 1)\n"
            "  --openssl-speed              also time `openssl speed` (ecdhp256 for LLv2,\n"
            "                               aes-256-ctr for HMSS) and report units\n"
            "  --json                       print one JSON object as the last line\n");
}

static int s_parse_u64(const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    double d = strtod(s, &end); /* accepts 1e7 */
    if (errno || *end || d < 0 || d > 1.8e19 || d != floor(d))
        return -1;
    *out = (uint64_t)d;
    return 0;
}

static void s_bad(const char *msg, const char *arg)
{
    fprintf(stderr, "duchy-bench: %s: %s (see --help)\n", msg, arg ? arg : "");
    exit(EX_USAGE);
}

static void s_parse(int argc, char **argv, s_opts_t *o)
{
    enum { O_PROTO = 256, O_SHAPE, O_REG, O_SK, O_DECAY, O_K, O_NOISE, O_EPS, O_DELTA, O_THR,
           O_Q, O_EDPS, O_POP, O_REACH, O_SEED, O_JSON, O_SPEED, O_HELP };
    static const struct option opts[] = {
        {"protocol", required_argument, 0, O_PROTO}, {"shape", required_argument, 0, O_SHAPE},
        {"registers", required_argument, 0, O_REG}, {"sketch-size", required_argument, 0, O_SK},
        {"decay-rate", required_argument, 0, O_DECAY},
        {"max-frequency", required_argument, 0, O_K}, {"noise", required_argument, 0, O_NOISE},
        {"epsilon", required_argument, 0, O_EPS}, {"delta", required_argument, 0, O_DELTA},
        {"threads", required_argument, 0, O_THR}, {"ring-modulus", required_argument, 0, O_Q},
        {"edps", required_argument, 0, O_EDPS}, {"population", required_argument, 0, O_POP},
        {"reach", required_argument, 0, O_REACH}, {"seed", required_argument, 0, O_SEED},
        {"json", no_argument, 0, O_JSON}, {"openssl-speed", no_argument, 0, O_SPEED},
        {"help", no_argument, 0, O_HELP}, {0, 0, 0, 0}};
    *o = (s_opts_t){.proto = (s_proto_t)-1, .registers = 10000, .decay_rate = 12,
                    .max_frequency = 10, .noise = DY_NOISE_NONE, .epsilon = 1, .delta = 1e-5,
                    .threads = dy_par_default_threads(), .ring_modulus = 127, .edps = 3,
                    .population = 1000000, .reach = 20000, .seed = 1};
    int c;
    uint64_t v;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case O_PROTO:
            for (size_t i = 0; i < DY_ARRAY_LEN(s_proto_names); i++)
                if (strcmp(optarg, s_proto_names[i]) == 0)
                    o->proto = (s_proto_t)i;
            if ((int)o->proto < 0)
                s_bad("unknown protocol", optarg);
            break;
        case O_SHAPE:
            if (strcmp(optarg, "campaign") == 0)
                o->campaign = true;
            else if (strcmp(optarg, "reference") != 0)
                s_bad("unknown shape", optarg);
            break;
        case O_REG:
            if (s_parse_u64(optarg, &o->registers) || o->registers < 1)
                s_bad("bad --registers", optarg);
            break;
        case O_SK:
            if (s_parse_u64(optarg, &v) || v < 2 || v > (1ULL << 40))
                s_bad("bad --sketch-size", optarg);
            o->sketch_size = (int64_t)v;
            break;
        case O_DECAY:
            o->decay_rate = atof(optarg);
            if (!(o->decay_rate > 1))
                s_bad("bad --decay-rate", optarg);
            break;
        case O_K:
            if (s_parse_u64(optarg, &v) || v < 1 || v > 63)
                s_bad("bad --max-frequency (1..63)", optarg);
            o->max_frequency = (int)v;
            break;
        case O_NOISE:
            if (strcmp(optarg, "none") == 0)
                o->noise = DY_NOISE_NONE;
            else if (strcmp(optarg, "geometric") == 0)
                o->noise = DY_NOISE_GEOMETRIC;
            else if (strcmp(optarg, "discrete-gaussian") == 0)
                o->noise = DY_NOISE_DISCRETE_GAUSSIAN;
            else
                s_bad("unknown noise", optarg);
            break;
        case O_EPS:
            o->epsilon = atof(optarg);
            if (!(o->epsilon > 0))
                s_bad("bad --epsilon", optarg);
            break;
        case O_DELTA:
            o->delta = atof(optarg);
            if (!(o->delta > 0 && o->delta < 1))
                s_bad("bad --delta", optarg);
            break;
        case O_THR:
            if (s_parse_u64(optarg, &v) || v < 1 || v > 256)
                s_bad("bad --threads", optarg);
            o->threads = (int)v;
            break;
        case O_Q:
            if (s_parse_u64(optarg, &o->ring_modulus) || o->ring_modulus < 2)
                s_bad("bad --ring-modulus", optarg);
            break;
        case O_EDPS:
            if (s_parse_u64(optarg, &v) || v < 1 || v > 64)
                s_bad("bad --edps", optarg);
            o->edps = (int)v;
            break;
        case O_POP:
            if (s_parse_u64(optarg, &o->population) || o->population < 1)
                s_bad("bad --population", optarg);
            break;
        case O_REACH:
            if (s_parse_u64(optarg, &o->reach) || o->reach < 1)
                s_bad("bad --reach", optarg);
            break;
        case O_SEED:
            if (s_parse_u64(optarg, &o->seed))
                s_bad("bad --seed", optarg);
            break;
        case O_JSON:
            o->json = true;
            break;
        case O_SPEED:
            o->openssl_speed = true;
            break;
        case O_HELP:
            s_usage(stdout);
            exit(0);
        default:
            s_bad("unknown option", argv[optind - 1]);
        }
    }
    if (optind < argc)
        s_bad("unexpected argument", argv[optind]);
    if ((int)o->proto < 0)
        s_bad("--protocol is required", NULL);
    if (o->campaign && o->reach > o->population)
        s_bad("--reach exceeds --population", NULL);
    if (o->proto == P_LLV2_RO || o->proto == P_HMSS_RO)
        o->max_frequency = 1;
    if (o->sketch_size == 0) {
        uint64_t m = o->campaign ? 10 * o->reach : 2 * o->registers;
        o->sketch_size = (int64_t)(m < 100000 ? 100000 : m);
    }
}

/* ---- LLv2 ------------------------------------------------------------------ */

/* Builds the data providers' plaintext sketches. */
static void s_llv2_sketches(const s_opts_t *o, dy_ll_sketch_t **ret, size_t *ret_n,
                            dy_campaign_t *camp)
{
    size_t n = o->campaign ? (size_t)o->edps : 1;
    dy_ll_sketch_t *sk = calloc(n, sizeof(*sk));
    if (sk == NULL)
        exit(1);
    if (!o->campaign) {
        if ((uint64_t)o->sketch_size <= o->registers)
            s_bad("--sketch-size must exceed --registers", NULL);
        dy_ll_sketch_init(&sk[0], o->decay_rate, o->sketch_size);
        for (uint64_t i = 0; i < o->registers; i++)
            if (dy_ll_sketch_put(&sk[0], (int64_t)i, i + 1, 1 + i % 7) < 0)
                exit(1);
        dy_ll_sketch_finish(&sk[0]);
    } else {
        dy_campaign_params_t cp = {o->population, o->edps, o->reach, 2 * o->max_frequency + 1,
                                   o->seed};
        if (dy_campaign_generate(&cp, camp) < 0)
            s_die_err("campaign", -1, NULL);
        for (size_t e = 0; e < n; e++) {
            dy_ll_sketch_init(&sk[e], o->decay_rate, o->sketch_size);
            for (size_t i = 0; i < camp->edp[e].n; i++)
                if (dy_ll_sketch_add_vid(&sk[e], camp->edp[e].vids[i], camp->edp[e].events[i]) < 0)
                    exit(1);
            dy_ll_sketch_finish(&sk[e]);
        }
    }
    *ret = sk;
    *ret_n = n;
}

static void s_run_llv2(const s_opts_t *o, s_run_t *run)
{
    bool ro = o->proto == P_LLV2_RO;
    int K = o->max_frequency;
    dy_err_t err;
    dy_err_clear(&err);
    dy_ec_t *ec = dy_ec_new();
    if (ec == NULL)
        s_die_err("dy_ec_new", -1, NULL);

    dy_ll_sketch_t *sk;
    size_t nsk;
    dy_campaign_t camp = {0};
    s_llv2_sketches(o, &sk, &nsk, &camp);

    /* Truth and the plaintext estimate. */
    const dy_ll_sketch_t *skp[64];
    for (size_t i = 0; i < nsk; i++)
        skp[i] = &sk[i];
    uint64_t active;
    if (dy_ll_plaintext(skp, nsk, K, 1.0f, &run->plaintext_estimate, ro ? NULL : run->true_freq,
                        &active) < 0)
        s_die_err("plaintext", -1, NULL);
    run->have_plaintext = true;
    for (size_t i = 0; i < nsk; i++)
        run->nreg += sk[i].n;
    if (o->campaign) {
        uint64_t tr;
        dy_campaign_truth(&camp, K, &tr, ro ? NULL : run->true_freq);
        run->true_reach = (int64_t)tr;
    } else {
        run->true_reach = (int64_t)o->registers;
    }
    run->nfreq = ro ? 0 : K;

    dy_llv2_params_t prm = {.decay_rate = o->decay_rate, .sketch_size = o->sketch_size,
                            .max_frequency = K, .num_sketches = (int)nsk, .vid_width = 1.0f,
                            .noise = o->noise, .blinded_histogram = {1, 1}, .publisher = {1, 1},
                            .reach = {o->epsilon, o->delta},
                            .frequency = {o->epsilon, o->delta}, .threads = o->threads};
    uint8_t x[3][DY_SCALAR_LEN], pub[3][DY_PTC_LEN], Y[DY_PTC_LEN];
    for (int d = 0; d < 3; d++)
        if (dy_llv2_keygen(ec, x[d], pub[d]) < 0)
            s_die_err("keygen", -1, NULL);
    if (dy_llv2_combine_keys(ec, (const uint8_t(*)[DY_PTC_LEN])pub, 3, Y) < 0)
        s_die_err("combine keys", -1, NULL);

    /* Data providers (not timed): requisition e goes to duchy e mod 3. */
    dy_buf_t req[64] = {{0}};
    fprintf(stderr, "duchy-bench: encrypting %zu sketch(es) (data providers, not timed)\n", nsk);
    for (size_t e = 0; e < nsk; e++) {
        int rc = dy_llv2_encrypt_sketch(ec, Y, &sk[e], K, ro, o->threads, &req[e], &err);
        if (rc < 0)
            s_die_err("encrypt sketch", rc, &err);
    }
    dy_buf_t reqs[3][64];
    size_t nreq[3] = {0};
    for (size_t e = 0; e < nsk; e++)
        reqs[e % 3][nreq[e % 3]++] = req[e];

    dy_llv2_t *ctx[3];
    for (int d = 0; d < 3; d++) {
        s_begin(run);
        ctx[d] = dy_llv2_new(ec, &prm, (dy_llv2_role_t)d, x[d],
                             (const uint8_t(*)[DY_PTC_LEN])pub, &err);
        if (ctx[d] == NULL)
            s_die_err("dy_llv2_new", -1, &err);
        s_end(run, "init", s_duchy_names[d]);
    }

    dy_stage_counters_t cnt;
    dy_buf_t setup_out[3] = {{0}}, crv_in = {0};
    int rc;
    for (int d = 0; d < 3; d++) {
        if (d == 2) {
            dy_buf_append(&crv_in, setup_out[0].data, setup_out[0].len);
            dy_buf_append(&crv_in, setup_out[1].data, setup_out[1].len);
        }
        s_begin(run);
        memset(&cnt, 0, sizeof(cnt));
        if (ro && d == 2)
            /* Each NA's reach-only output ends with its own excessive-noise
             * block, so AGG takes them apart. */
            rc = dy_rollv2_setup_agg(ctx[d], reqs[d], nreq[d], setup_out[0].data,
                                     setup_out[0].len, setup_out[1].data, setup_out[1].len,
                                     &setup_out[d], &cnt, &err);
        else
            rc = (ro ? dy_rollv2_setup : dy_llv2_setup)(ctx[d], reqs[d], nreq[d],
                                                          d == 2 ? crv_in.data : NULL,
                                                          d == 2 ? crv_in.len : 0, &setup_out[d],
                                                          &cnt, &err);
        if (rc < 0)
            s_die_err("setup", rc, &err);
        s_end(run, "setup", s_duchy_names[d]);
    }
    dy_buf_free(&crv_in);
    dy_buf_free(&setup_out[0]);
    dy_buf_free(&setup_out[1]);

    /* Execution phases round the ring: NA1, NA2, AGG; AGG's output feeds
     * the next phase at NA1. */
    dy_buf_t cur = setup_out[2];
    int phases = ro ? 1 : (K == 1 ? 2 : 3);
    static const char *names[3] = {"execution_phase_one", "execution_phase_two",
                                   "execution_phase_three"};
    for (int ph = 0; ph < phases; ph++) {
        for (int d = 0; d < 3; d++) {
            dy_buf_t next = {0};
            s_begin(run);
            memset(&cnt, 0, sizeof(cnt));
            if (ro)
                rc = dy_rollv2_exec(ctx[d], cur.data, cur.len, &next, &run->reach, &cnt, &err);
            else if (ph == 0)
                rc = dy_llv2_exec1(ctx[d], cur.data, cur.len, &next, &cnt, &err);
            else if (ph == 1)
                rc = dy_llv2_exec2(ctx[d], cur.data, cur.len, &next, &run->reach, &cnt, &err);
            else
                rc = dy_llv2_exec3(ctx[d], cur.data, cur.len, &next, run->freq, &cnt, &err);
            if (rc < 0)
                s_die_err(ro ? "execution_phase" : names[ph], rc, &err);
            s_end(run, ro ? "execution_phase" : names[ph], s_duchy_names[d]);
            dy_buf_free(&cur);
            cur = next;
        }
    }
    dy_buf_free(&cur);
    if (K == 1 && !ro) {
        run->nfreq = 0;
    }
    for (int d = 0; d < 3; d++)
        dy_llv2_destroy(&ctx[d]);
    for (size_t e = 0; e < nsk; e++) {
        dy_buf_free(&req[e]);
        dy_ll_sketch_free(&sk[e]);
    }
    free(sk);
    dy_campaign_free(&camp);
    dy_ec_destroy(&ec);
}

/* ---- HMSS ------------------------------------------------------------------- */

static void s_run_hmss(const s_opts_t *o, s_run_t *run)
{
    bool ro = o->proto == P_HMSS_RO;
    int K = ro ? 1 : o->max_frequency;
    dy_err_t err;
    dy_err_clear(&err);
    int nedp = o->campaign ? o->edps : 2;
    size_t R;
    uint32_t **vals = calloc((size_t)nedp, sizeof(*vals));
    dy_campaign_t camp = {0};
    dy_fvec_index_t ix = {0};
    if (vals == NULL)
        exit(1);
    if (!o->campaign) {
        R = (size_t)o->registers;
        for (int e = 0; e < nedp; e++) {
            vals[e] = malloc(R * sizeof(uint32_t));
            if (vals[e] == NULL)
                exit(1);
            for (size_t i = 0; i < R; i++) {
                uint32_t v = (uint32_t)((i * ((size_t)e + 1)) % 5);
                vals[e][i] = v > (uint32_t)K ? (uint32_t)K : v;
            }
        }
    } else {
        dy_campaign_params_t cp = {o->population, o->edps, o->reach, 2 * o->max_frequency + 1,
                                   o->seed};
        if (dy_campaign_generate(&cp, &camp) < 0 ||
            dy_fvec_index_init(&ix, o->population, 0.0f, 1.0f) < 0)
            s_die_err("campaign", -1, NULL);
        R = ix.registers;
        for (int e = 0; e < nedp; e++) {
            vals[e] = malloc(R * sizeof(uint32_t));
            if (vals[e] == NULL || dy_fvec_build(&ix, &camp.edp[e], (uint32_t)K, vals[e]) < 0)
                s_die_err("frequency vector", -1, NULL);
        }
    }
    /* Truth: per register the summed value, capped at K. */
    {
        uint64_t reached = 0, hist[64] = {0};
        for (size_t i = 0; i < R; i++) {
            uint64_t s = 0;
            for (int e = 0; e < nedp; e++)
                s += vals[e][i];
            if (s) {
                reached++;
                hist[s > (uint64_t)K ? (uint64_t)K : s]++;
            }
        }
        run->true_reach = (int64_t)reached;
        for (int f = 1; f <= K && !ro; f++)
            run->true_freq[f - 1] = reached ? (double)hist[f] / (double)reached : 0;
        run->nfreq = ro ? 0 : K;
        run->nreg = R;
    }

    dy_hmss_params_t prm = {.ring_modulus = o->ring_modulus, .max_frequency = K,
                            .num_sketches = nedp, .reach_only = ro, .vid_width = 1.0f,
                            .noise = o->noise, .reach = {o->epsilon, o->delta},
                            .frequency = {o->epsilon, o->delta}, .threads = o->threads};
    if (dy_hmss_params_check(&prm, &err) < 0)
        s_die_err("parameters", -EINVAL, &err);

    /* Data providers (not timed): EDP e's data goes to shuffler e mod 2,
     * its seed to the other. */
    fprintf(stderr, "duchy-bench: sharing %d frequency vector(s) (data providers, not timed)\n",
            nedp);
    uint32_t **data = calloc((size_t)nedp, sizeof(*data));
    uint8_t(*seeds)[DY_PRNG_SEED_LEN] = calloc((size_t)nedp, DY_PRNG_SEED_LEN);
    dy_hmss_share_t *sh[2];
    sh[0] = calloc((size_t)nedp, sizeof(dy_hmss_share_t));
    sh[1] = calloc((size_t)nedp, sizeof(dy_hmss_share_t));
    if (data == NULL || seeds == NULL || sh[0] == NULL || sh[1] == NULL)
        exit(1);
    for (int e = 0; e < nedp; e++) {
        data[e] = malloc(R * sizeof(uint32_t));
        if (data[e] == NULL)
            exit(1);
        int rc = dy_hmss_share(&prm, vals[e], R, seeds[e], data[e], &err);
        if (rc < 0)
            s_die_err("share", rc, &err);
        int w = e % 2;
        sh[w][e] = (dy_hmss_share_t){.data = data[e], .registers = R};
        sh[1 - w][e] = (dy_hmss_share_t){.seed = seeds[e], .registers = R};
    }

    uint8_t omega[2][DY_PRNG_SEED_LEN], c[DY_PRNG_SEED_LEN];
    dy_rand_bytes(omega[0], sizeof(omega[0]));
    dy_rand_bytes(omega[1], sizeof(omega[1]));
    for (size_t i = 0; i < sizeof(c); i++)
        c[i] = omega[0][i] ^ omega[1][i];

    uint32_t *v[2] = {NULL, NULL};
    size_t len[2] = {0, 0};
    for (int w = 0; w < 2; w++) {
        s_begin(run);
        int rc = dy_hmss_shuffle(&prm, w + 1, sh[w], (size_t)nedp, c, &v[w], &len[w], &err);
        if (rc < 0)
            s_die_err("shuffle", rc, &err);
        s_end(run, "shuffle_phase", s_duchy_names[w]);
    }
    if (len[0] != len[1])
        s_die_err("shuffle lengths differ", -1, NULL);
    s_begin(run);
    int rc = dy_hmss_aggregate(&prm, v[0], v[1], len[0], R, &run->reach, ro ? NULL : run->freq,
                               &err);
    if (rc < 0)
        s_die_err("aggregate", rc, &err);
    s_end(run, "aggregation_phase", s_duchy_names[2]);

    for (int e = 0; e < nedp; e++) {
        free(vals[e]);
        free(data[e]);
    }
    free(vals);
    free(data);
    free(seeds);
    free(sh[0]);
    free(sh[1]);
    free(v[0]);
    free(v[1]);
    dy_fvec_index_free(&ix);
    dy_campaign_free(&camp);
}

/* ---- openssl speed ------------------------------------------------------------ */

/* Seconds per `openssl speed ecdhp256` operation, or 0 if unavailable. */
static double s_openssl_ecdh_seconds(void)
{
    FILE *p = popen("openssl speed -seconds 3 ecdhp256 2>/dev/null", "r");
    if (p == NULL)
        return 0;
    char line[512];
    double op = 0;
    while (fgets(line, sizeof(line), p)) {
        /* " 256 bits ecdh (nistp256)   0.0000s  24366.4" */
        const char *at = strstr(line, "bits ecdh (nistp256)");
        if (at) {
            at += strlen("bits ecdh (nistp256)");
            double s, ops;
            if (sscanf(at, " %lfs %lf", &s, &ops) == 2 && ops > 0)
                op = 1.0 / ops;
        }
    }
    pclose(p);
    return op;
}

/* Seconds per byte of `openssl speed -evp aes-256-ctr` on 16 KiB blocks, or
 * 0 if unavailable. */
static double s_openssl_aes_byte_seconds(void)
{
    FILE *p = popen("openssl speed -seconds 2 -bytes 16384 -evp aes-256-ctr 2>/dev/null", "r");
    if (p == NULL)
        return 0;
    char line[512];
    double bps = 0;
    while (fgets(line, sizeof(line), p)) {
        /* "AES-256-CTR    8064560.13k" (thousands of bytes per second) */
        if (strncasecmp(line, "aes-256-ctr", 11) != 0)
            continue;
        char *last = strrchr(line, ' ');
        double k;
        if (last && sscanf(last, " %lfk", &k) == 1 && k > 0)
            bps = k * 1000.0;
    }
    pclose(p);
    return bps > 0 ? 1.0 / bps : 0;
}

/* ---- output ------------------------------------------------------------------- */

static void s_json_freq(const double *f, int n)
{
    printf("{");
    for (int i = 0; i < n; i++)
        printf("%s\"%d\": %.17g", i ? ", " : "", i + 1, f[i]);
    printf("}");
}

int main(int argc, char **argv)
{
    s_opts_t o;
    s_parse(argc, argv, &o);
    s_run_t run = {0};
    bool llv2 = o.proto == P_LLV2 || o.proto == P_LLV2_RO;
    if (llv2)
        s_run_llv2(&o, &run);
    else
        s_run_hmss(&o, &run);

    double total = 0;
    for (int i = 0; i < run.nphases; i++)
        total += run.phase[i].seconds;
    uint64_t nreg = run.nreg;
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    uint64_t rss = (uint64_t)ru.ru_maxrss * 1024;
    double ecdh = o.openssl_speed && llv2 ? s_openssl_ecdh_seconds() : 0;
    double aes = o.openssl_speed && !llv2 ? s_openssl_aes_byte_seconds() : 0;

    double spr = nreg ? total / (double)nreg : 0;

    fprintf(stderr, "duchy-bench: %s %s, %llu registers, %d thread(s): %.3f s, %.3f us/register, "
                    "peak RSS %.1f MB\n",
            s_proto_names[o.proto], o.campaign ? "campaign" : "reference",
            (unsigned long long)nreg, o.threads, total, spr * 1e6, (double)rss / 1e6);
    fprintf(stderr, "duchy-bench: reach %lld (true %lld", (long long)run.reach,
            (long long)run.true_reach);
    if (run.have_plaintext)
        fprintf(stderr, ", plaintext estimate %lld", (long long)run.plaintext_estimate);
    fprintf(stderr, ")\n");
    if (ecdh > 0)
        fprintf(stderr, "duchy-bench: openssl ecdhp256 op %.1f us: %.1f units per register\n",
                ecdh * 1e6, spr / ecdh);
    if (aes > 0)
        fprintf(stderr, "duchy-bench: openssl aes-256-ctr %.3f ns/byte: %.0f byte-units per "
                        "register\n",
                aes * 1e9, spr / aes);

    if (!o.json)
        return 0;
    printf("{\"protocol\": \"%s\", \"shape\": \"%s\", \"registers\": %llu, \"threads\": %d, "
           "\"phases\": [",
           s_proto_names[o.proto], o.campaign ? "campaign" : "reference",
           (unsigned long long)nreg, o.threads);
    for (int i = 0; i < run.nphases; i++)
        printf("%s{\"name\": \"%s\", \"duchy\": \"%s\", \"seconds\": %.6f, \"cpu_seconds\": %.6f}",
               i ? ", " : "", run.phase[i].name, run.phase[i].duchy, run.phase[i].seconds,
               run.phase[i].cpu_seconds);
    printf("], \"total_seconds\": %.6f, \"seconds_per_register\": %.9g, \"peak_rss_bytes\": %llu, "
           "\"reach\": %lld, \"true_reach\": %lld",
           total, spr, (unsigned long long)rss, (long long)run.reach, (long long)run.true_reach);
    if (run.have_plaintext)
        printf(", \"plaintext_estimate\": %lld", (long long)run.plaintext_estimate);
    printf(", \"frequency\": ");
    s_json_freq(run.freq, run.nfreq);
    printf(", \"true_frequency\": ");
    s_json_freq(run.true_freq, run.nfreq);
    printf(", \"noise\": \"%s\"",
           o.noise == DY_NOISE_NONE ? "none"
                                    : o.noise == DY_NOISE_GEOMETRIC ? "geometric"
                                                                    : "discrete-gaussian");
    if (ecdh > 0)
        printf(", \"openssl_ecdhp256_op_seconds\": %.9g, \"ecdh_units_per_register\": %.3f",
               ecdh, spr / ecdh);
    if (aes > 0)
        printf(", \"openssl_aes256ctr_byte_seconds\": %.9g, \"aes_byte_units_per_register\": "
               "%.1f",
               aes, spr / aes);
    printf("}\n");
    return 0;
}
