/* test_details.c - common/details.c: real Kingdom Computations built with protobuf-c
 * (kingdom_fixture.h) go through dy_details_build and dy_details_parse: the LLv2 ring of
 * PROTOCOL.md §5.1 (checked against an independent SHA-1 ordering and against the
 * participants' listing order), HMSS roles, the parsed measurement and every §3.1 refusal.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "details.h"
#include "stages.h"

#include "duchy.pb-c.h"
#include "kingdom_fixture.h"

static int s_build(const fx_t *f, const char *me, dy_details_t *d, char *err, size_t errlen)
{
    dy_buf_t k = {0}, det = {0};
    fx_build(f, &k);
    int rc = dy_details_build(k.data, k.len, me, "aggregator", "worker1", "worker2", &det, err,
                              errlen);
    if (rc == 0)
        rc = dy_details_parse(det.data, det.len, me, d, err, errlen);
    dy_buf_free(&k);
    dy_buf_free(&det);
    return rc;
}

static void s_expect_refused(const fx_t *f, const char *needle)
{
    dy_details_t d;
    char err[256] = "";
    int rc = s_build(f, "worker1", &d, err, sizeof(err));
    if (rc != -EINVAL || strstr(err, needle) == NULL)
        fail_msg("expected -EINVAL with \"%s\", got %d \"%s\"", needle, rc, err);
}

static void s_expect_ok(const fx_t *f, dy_details_t *d)
{
    char err[256] = "";
    int rc = s_build(f, "worker1", d, err, sizeof(err));
    if (rc != 0)
        fail_msg("expected success, got %d \"%s\"", rc, err);
}

/* SHA-1(serialized ElGamalPublicKey ‖ id), computed here independently. */
static void s_digest(const uint8_t y[33], const char *id, uint8_t out[20])
{
    size_t klen;
    uint8_t *k = fx_elgamal_key(y, &klen);
    uint8_t *buf = malloc(klen + strlen(id));
    memcpy(buf, k, klen);
    memcpy(buf + klen, id, strlen(id));
    unsigned int n;
    EVP_Digest(buf, klen + strlen(id), out, &n, EVP_sha1(), NULL);
    free(buf);
    free(k);
}

static void test_llv2_parse(void **state)
{
    (void)state;
    fx_t f;
    fx_default(&f, FX_LLV2);
    f.nreq = 3;
    dy_details_t d;
    s_expect_ok(&f, &d);
    assert_string_equal(d.computation_id, "AAAAAAAAAAE");
    assert_string_equal(d.name, "computations/AAAAAAAAAAE");
    assert_int_equal(d.protocol, DY_PROTO_LLV2);
    assert_int_equal(d.role, DY_ROLE_NA);
    assert_int_equal(d.max_frequency, 5);
    assert_false(d.reach_only);
    assert_int_equal(d.noise, DY_NOISE_GEOMETRIC);
    assert_true(d.reach_dp.epsilon == 1.0 && d.frequency_dp.delta == 1e-9);
    assert_true(d.decay_rate == 12.0);
    assert_int_equal(d.sketch_size, 100000);
    assert_true(d.vid_width == 1.0f);
    assert_int_equal(d.nnonce_hashes, 3);
    assert_int_equal(d.nrequisitions, 3);
    assert_string_equal(d.requisitions[0].id, "req0");
    assert_string_equal(d.requisitions[2].name, "computations/AAAAAAAAAAE/requisitions/req2");
    uint8_t h[32];
    fx_sha256_nonce(2, h);
    assert_memory_equal(d.requisitions[1].nonce_hash, h, 32);
    assert_int_equal(d.nparticipants, 3);
    assert_false(d.has_ring); /* no keys yet */
    assert_int_equal(dy_details_ring_index(&d, "worker1"), -EINVAL);
    assert_null(dy_details_successor(&d));
    assert_string_equal(d.public_api_version, "v2alpha");
    dy_details_free(&d);

    /* the aggregator's view */
    char err[256];
    assert_int_equal(s_build(&f, "aggregator", &d, err, sizeof(err)), 0);
    assert_int_equal(d.role, DY_ROLE_AGG);
    dy_details_free(&d);
    /* a duchy that is no participant */
    assert_int_equal(s_build(&f, "stranger", &d, err, sizeof(err)), -EINVAL);
}

static void test_llv2_ring(void **state)
{
    (void)state;
    for (int round = 0; round < 8; round++) {
        fx_t f;
        fx_default(&f, round % 2 ? FX_RO : FX_LLV2);
        if (round % 2)
            f.rf = false;
        f.keys = true;
        f.fulfilled = true;
        f.state = 3;
        if (round >= 4) { /* listing order must not matter */
            f.duchies[0] = "aggregator";
            f.duchies[2] = "worker1";
            uint8_t t[33];
            memcpy(t, f.pub[0], 33);
            memcpy(f.pub[0], f.pub[2], 33);
            memcpy(f.pub[2], t, 33);
        }
        const uint8_t *y1 = round >= 4 ? f.pub[2] : f.pub[0]; /* worker1's key */
        const uint8_t *y2 = f.pub[1];
        const uint8_t *yag = round >= 4 ? f.pub[0] : f.pub[2];
        uint8_t d1[20], d2[20];
        s_digest(y1, f.id, d1);
        s_digest(y2, f.id, d2);
        bool w1_first = memcmp(d1, d2, 20) < 0;

        dy_details_t d;
        char err[256] = "";
        int rc = s_build(&f, "worker2", &d, err, sizeof(err));
        if (rc != 0)
            fail_msg("%d %s", rc, err);
        assert_true(d.has_ring);
        assert_string_equal(d.ring[0], w1_first ? "worker1" : "worker2");
        assert_string_equal(d.ring[1], w1_first ? "worker2" : "worker1");
        assert_string_equal(d.ring[2], "aggregator");
        assert_int_equal(dy_details_ring_index(&d, "aggregator"), 2);
        assert_int_equal(dy_details_ring_index(&d, "worker2"), w1_first ? 1 : 0);
        assert_int_equal(dy_details_ring_index(&d, "nobody"), -ENOENT);
        assert_string_equal(dy_details_successor(&d), w1_first ? "aggregator" : "worker1");
        uint8_t keys[3][33];
        assert_int_equal(dy_details_ring_keys(&d, keys), 0);
        assert_memory_equal(keys[0], w1_first ? y1 : y2, 33);
        assert_memory_equal(keys[1], w1_first ? y2 : y1, 33);
        assert_memory_equal(keys[2], yag, 33);
        assert_true(d.requisitions[0].nonce == 1);
        assert_string_equal(d.requisitions[0].fulfilling_duchy, round >= 4 ? "aggregator"
                                                                           : "worker1");
        dy_details_free(&d);
    }
}

/* A stored ring that disagrees with the keys is refused on parse. */
static void test_ring_tampered(void **state)
{
    (void)state;
    fx_t f;
    fx_default(&f, FX_LLV2);
    f.keys = true;
    dy_buf_t k = {0}, det = {0};
    fx_build(&f, &k);
    char err[256];
    assert_int_equal(dy_details_build(k.data, k.len, "worker1", "aggregator", "", "", &det, err,
                                      sizeof(err)),
                     0);
    Halo__Internal__V1__ComputationDetails *cd =
        halo__internal__v1__computation_details__unpack(NULL, det.len, det.data);
    assert_non_null(cd);
    assert_int_equal(cd->n_ring, 3);
    char *t = cd->ring[0];
    cd->ring[0] = cd->ring[1];
    cd->ring[1] = t;
    uint8_t buf[8192];
    size_t n = halo__internal__v1__computation_details__pack(cd, buf);
    halo__internal__v1__computation_details__free_unpacked(cd, NULL);
    dy_details_t d;
    assert_int_equal(dy_details_parse(buf, n, "worker1", &d, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "ring"));
    /* and garbage does not parse */
    uint8_t junk[5] = {0xff, 0xff, 0xff, 0xff, 0xff};
    assert_int_equal(dy_details_parse(junk, 5, "worker1", &d, err, sizeof(err)), -EINVAL);
    dy_buf_free(&k);
    dy_buf_free(&det);
}

static void test_hmss_roles(void **state)
{
    (void)state;
    fx_t f;
    fx_default(&f, FX_HMSS);
    f.keys = true;
    const char *who[3] = {"worker1", "worker2", "aggregator"};
    const int roles[3] = {DY_ROLE_FNA, DY_ROLE_SNA, DY_ROLE_AGG};
    for (int i = 0; i < 3; i++) {
        dy_details_t d;
        char err[256] = "";
        int rc = s_build(&f, who[i], &d, err, sizeof(err));
        if (rc != 0)
            fail_msg("%s: %d %s", who[i], rc, err);
        assert_int_equal(d.protocol, DY_PROTO_HMSS);
        assert_int_equal(d.role, roles[i]);
        assert_string_equal(d.first_na, "worker1");
        assert_string_equal(d.second_na, "worker2");
        assert_string_equal(d.aggregator, "aggregator");
        assert_int_equal(d.ring_modulus, 127);
        assert_false(d.has_ring);
        assert_true(d.participants[0].has_hmss_key);
        assert_memory_equal(d.participants[0].hmss_key, f.pub[0], 33);
        assert_false(d.participants[2].has_hmss_key); /* the aggregator's empty params */
        dy_details_free(&d);
    }
    /* swapped NA roles in the config swap the local roles */
    dy_buf_t k = {0}, det = {0};
    fx_build(&f, &k);
    char err[256];
    assert_int_equal(dy_details_build(k.data, k.len, "worker1", "aggregator", "worker2",
                                      "worker1", &det, err, sizeof(err)),
                     0);
    dy_details_t d;
    assert_int_equal(dy_details_parse(det.data, det.len, "worker1", &d, err, sizeof(err)), 0);
    assert_int_equal(d.role, DY_ROLE_SNA);
    dy_details_free(&d);
    /* a participant without an HMSS role */
    dy_buf_free(&det);
    assert_int_equal(dy_details_build(k.data, k.len, "worker1", "aggregator", "worker1",
                                      "someone", &det, err, sizeof(err)),
                     -EINVAL);
    assert_int_equal(det.len, 0);
    dy_buf_free(&k);

    /* reach: the reach modulus, which must be prime */
    fx_default(&f, FX_HMSS);
    f.rf = false;
    f.q_rf = 4; /* unused for reach */
    f.q_r = 65521;
    assert_int_equal(s_build(&f, "worker1", &d, err, sizeof(err)), 0);
    assert_int_equal(d.ring_modulus, 65521);
    assert_true(d.reach_only);
    assert_int_equal(d.max_frequency, 1);
    dy_details_free(&d);
    f.q_r = 65536;
    s_expect_refused(&f, "65521");
    /* R&F accepts 2^32, not beyond; q must exceed MCF+1 = 5 * 2 + 1 */
    fx_default(&f, FX_HMSS);
    f.q_rf = (int64_t)1 << 32;
    s_expect_ok(&f, &d);
    dy_details_free(&d);
    f.q_rf = ((int64_t)1 << 32) + 1;
    s_expect_refused(&f, "2^32");
    f.q_rf = 11;
    s_expect_refused(&f, "MCF");
    f.q_rf = 12;
    s_expect_ok(&f, &d);
    dy_details_free(&d);
}

static void test_refusals(void **state)
{
    (void)state;
    fx_t f;
    dy_details_t d;

    /* R&F maximum frequency > 1; the deprecated LLv2 one only if the spec's is 0 */
    fx_default(&f, FX_LLV2);
    f.spec_mf = 1;
    s_expect_refused(&f, "maximum frequency");
    f.spec_mf = 0;
    s_expect_refused(&f, "maximum frequency");
    f.cfg_mf = 7;
    s_expect_ok(&f, &d);
    assert_int_equal(d.max_frequency, 7);
    dy_details_free(&d);
    f.spec_mf = 3; /* the spec's wins */
    s_expect_ok(&f, &d);
    assert_int_equal(d.max_frequency, 3);
    dy_details_free(&d);
    fx_default(&f, FX_HMSS);
    f.spec_mf = 0;
    f.cfg_mf = 7;
    s_expect_refused(&f, "maximum frequency");

    /* a REACH spec on LLv2 runs with maximum frequency 1 */
    fx_default(&f, FX_LLV2);
    f.rf = false;
    s_expect_ok(&f, &d);
    assert_int_equal(d.max_frequency, 1);
    assert_true(d.reach_only);
    dy_details_free(&d);
    /* RO-LLv2 serves REACH only */
    fx_default(&f, FX_RO);
    s_expect_refused(&f, "reach-only");

    /* DP: delta > 0, epsilon >= 1e-5 (HMSS 1e-6), only with noise */
    fx_default(&f, FX_LLV2);
    f.delta = 0;
    s_expect_refused(&f, "delta");
    f.noise = FX_SYSI(COMPUTATION__MPC_PROTOCOL_CONFIG__NOISE_MECHANISM__NONE);
    s_expect_ok(&f, &d);
    assert_int_equal(d.noise, DY_NOISE_NONE);
    dy_details_free(&d);
    fx_default(&f, FX_LLV2);
    f.eps = 5e-6;
    s_expect_refused(&f, "epsilon");
    f.eps = 1e-5;
    s_expect_ok(&f, &d);
    dy_details_free(&d);
    fx_default(&f, FX_HMSS);
    f.eps = 5e-6;
    f.delta = 1e-5;
    s_expect_ok(&f, &d);
    dy_details_free(&d);
    f.eps = 5e-7;
    s_expect_refused(&f, "epsilon");
    f.delta = -1;
    f.eps = 1;
    s_expect_refused(&f, "delta");

    /* noise mechanisms: GEOMETRIC, DISCRETE_GAUSSIAN, NONE only */
    fx_default(&f, FX_LLV2);
    f.noise = FX_SYSI(COMPUTATION__MPC_PROTOCOL_CONFIG__NOISE_MECHANISM__DISCRETE_GAUSSIAN);
    s_expect_ok(&f, &d);
    dy_details_free(&d);
    f.noise = FX_SYSI(COMPUTATION__MPC_PROTOCOL_CONFIG__NOISE_MECHANISM__CONTINUOUS_GAUSSIAN);
    s_expect_refused(&f, "noise mechanism 3 (CONTINUOUS_GAUSSIAN) is not supported");
    f.noise = FX_SYSI(COMPUTATION__MPC_PROTOCOL_CONFIG__NOISE_MECHANISM__NOISE_MECHANISM_UNSPECIFIED);
    s_expect_refused(&f, "noise mechanism");
    fx_default(&f, FX_HMSS);
    f.noise = FX_SYSI(COMPUTATION__MPC_PROTOCOL_CONFIG__NOISE_MECHANISM__DETERMINISTIC_TRUNCATED_LAPLACE);
    s_expect_refused(&f, "noise mechanism 5 (DETERMINISTIC_TRUNCATED_LAPLACE) is not supported");
    f.noise = 42; /* a number the enum does not know */
    s_expect_refused(&f, "noise mechanism 42 (unknown) is not supported");

    /* curve 415 only */
    fx_default(&f, FX_LLV2);
    f.curve = 714;
    s_expect_refused(&f, "curve");

    /* public_api_version */
    fx_default(&f, FX_LLV2);
    f.api = "v1alpha";
    s_expect_refused(&f, "v2alpha");

    /* TrusTee is unsupported */
    fx_default(&f, FX_TRUSTEE);
    s_expect_refused(&f, "TrusTee");

    /* the MC key must be ECIES_P256 */
    fx_default(&f, FX_LLV2);
    f.mc_format = FX_V2I(ENCRYPTION_PUBLIC_KEY__FORMAT__TINK_KEYSET);
    s_expect_refused(&f, "measurement public key");

    /* a participant key that is not a point */
    fx_default(&f, FX_LLV2);
    f.keys = true;
    memset(f.pub[1], 0, 33);
    f.pub[1][0] = 0x02;
    f.pub[1][32] = 0x01; /* X = 1 is off the curve */
    s_expect_refused(&f, "ElGamal");
    fx_default(&f, FX_HMSS);
    f.keys = true;
    f.pub[0][0] = 0x05;
    s_expect_refused(&f, "HMSS encryption");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_llv2_parse),     cmocka_unit_test(test_llv2_ring),
        cmocka_unit_test(test_ring_tampered),  cmocka_unit_test(test_hmss_roles),
        cmocka_unit_test(test_refusals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
