/* fuzz_crypto.c - libFuzzer target for the cryptographic decoders every outside byte
 * string meets before use (common/crypto, common/sketch, common/secrets.c; STYLE.md rule
 * 38), each with its round-trip or consistency invariant:
 *   0 dy_ec_decode (65-byte uncompressed point); an accepted point re-encodes identically
 *   1 dy_ec_decode_compressed (33 bytes); likewise with dy_ec_encode_compressed
 *   2 dy_ec_decode_public (SEC1 33 or 65 bytes, the ECIES and signature key decoder) and
 *     dy_sig_key_from_pub, which must agree
 *   3 dy_ec_decode_many / dy_ec_check_many over a blob of points (ElGamal ciphertexts):
 *     the same verdict and the same first bad index; accepted ciphertexts partially
 *     decrypt and re-encode
 *   4 dy_ec_scalar_from_bytes (1..32 bytes in [1, n-1]); round trip through
 *     dy_ec_scalar_to_bytes
 *   5 dy_ecies_decrypt of a ciphertext (version, ephemeral point, GCM) under an info string
 *     taken from the input, with the fixture MC key
 *   6 dy_sig_verify of a DER signature (strict DER), with dy_mc_key_verify /
 *     dy_kf_key_verify over the same signature
 *   7 dy_mc_cert_from_der and dy_mc_trust_check of a certificate
 *   8 sketch registers (index, key, count) into dy_ll_sketch_put / dy_ll_sketch_finish,
 *     then dy_ll_plaintext and the estimator (dy_ll_estimate, dy_ll_invert) on counts and
 *     parameters from the input
 *   9 dy_ec_hash_to_curve of the input (public data)
 *  10 dy_secrets_open of a sealed secrets blob, then its Secrets message
 * Input layout: byte 0 operation (% 11); the rest is the bytes to decode.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_fixture.h"
#include "internal.pb-c.h"
#include "secrets.h"
#include "sketch/ll.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static BN_CTX *s_ctx;
static EVP_PKEY *s_verify_key; /* the aggregator's signing key, public half */

static void s_close(void)
{
    BN_CTX_free(s_ctx);
    EVP_PKEY_free(s_verify_key);
}

static void s_init(void)
{
    if (s_ctx != NULL)
        return;
    (void)fz_world();
    s_ctx = BN_CTX_new();
    FZ_CHECK(s_ctx != NULL);
    uint8_t pub[33];
    FZ_CHECK(dy_sig_key_pub(fz_world()->sign[2], pub) == 0);
    s_verify_key = dy_sig_key_from_pub(pub, 33);
    FZ_CHECK(s_verify_key != NULL);
    atexit(s_close);
}

static void s_point(const uint8_t *p, size_t n)
{
    const dy_ec_t *ec = fz_world()->ec;
    uint8_t in[DY_PT_LEN] = {0}, out[DY_PT_LEN];
    memcpy(in, p, n < DY_PT_LEN ? n : DY_PT_LEN);
    EC_POINT *pt = dy_ec_point_new(ec);
    FZ_CHECK(pt != NULL);
    int rc = dy_ec_decode(ec, pt, in, s_ctx);
    FZ_CHECK(rc == 0 || rc == -EINVAL);
    if (rc == 0) {
        FZ_CHECK(in[0] == 0x04 && !dy_ec_is_inf(ec, pt));
        FZ_CHECK(dy_ec_encode(ec, pt, out, s_ctx) == 0 && memcmp(in, out, DY_PT_LEN) == 0);
    }
    EC_POINT_free(pt);
}

static void s_compressed(const uint8_t *p, size_t n)
{
    const dy_ec_t *ec = fz_world()->ec;
    EC_POINT *pt = dy_ec_point_new(ec);
    FZ_CHECK(pt != NULL);
    int rc = dy_ec_decode_compressed(ec, pt, p, n, s_ctx);
    FZ_CHECK(rc == 0 || rc == -EINVAL);
    if (rc == 0) {
        uint8_t out[DY_PTC_LEN];
        FZ_CHECK(n == DY_PTC_LEN && !dy_ec_is_inf(ec, pt));
        FZ_CHECK(dy_ec_encode_compressed(ec, pt, out, s_ctx) == 0 && memcmp(p, out, n) == 0);
    }
    EC_POINT_free(pt);
}

static void s_public(const uint8_t *p, size_t n)
{
    const dy_ec_t *ec = fz_world()->ec;
    EC_POINT *pt = dy_ec_point_new(ec);
    FZ_CHECK(pt != NULL);
    int rc = dy_ec_decode_public(dy_ec_group(ec), p, n, pt, s_ctx);
    FZ_CHECK(rc == 0 || rc == -EINVAL);
    if (rc == 0)
        FZ_CHECK((n == 33 || n == 65) && !dy_ec_is_inf(ec, pt));
    EVP_PKEY *k = dy_sig_key_from_pub(p, n);
    FZ_CHECK((k != NULL) == (rc == 0));
    EVP_PKEY_free(k);
    EC_POINT_free(pt);
}

static void s_many(const uint8_t *p, size_t n)
{
    const fz_world_t *w = fz_world();
    size_t npt = n / DY_PT_LEN;
    if (npt > 64)
        npt = 64;
    EC_POINT **pts = npt ? dy_ec_points_new(w->ec, npt) : NULL;
    FZ_CHECK(npt == 0 || pts != NULL);
    size_t bad1 = (size_t)-1, bad2 = (size_t)-1;
    int rc1 = npt ? dy_ec_decode_many(w->ec, pts, p, npt, &bad1, s_ctx) : 0;
    int rc2 = dy_ec_check_many(w->ec, p, npt, &bad2, s_ctx);
    FZ_CHECK(rc1 == rc2 && (rc1 == 0 || rc1 == -EINVAL));
    if (rc1 < 0)
        FZ_CHECK(bad1 == bad2 && bad1 < npt);
    /* Accepted pairs are ciphertexts: a partial decryption with a fixture key re-encodes
     * unless it meets the identity. */
    if (rc1 == 0 && npt >= 2) {
        BIGNUM *x = dy_scalar_new();
        FZ_CHECK(x != NULL && dy_ec_scalar_from_bytes(w->ec, x, w->llv2_x[0], DY_SCALAR_LEN) == 0);
        int rc = dy_eg_partdec(w->ec, pts[0], pts[1], x, s_ctx);
        FZ_CHECK(rc == 0);
        uint8_t out[2 * DY_PT_LEN];
        rc = dy_ec_encode_many(w->ec, pts, 2, out, s_ctx);
        FZ_CHECK(rc == 0 || rc == -EDOM);
        dy_scalar_free(&x);
    }
    dy_ec_points_free(pts, npt);
}

static void s_scalar(const uint8_t *p, size_t n)
{
    const dy_ec_t *ec = fz_world()->ec;
    BIGNUM *s = dy_scalar_new();
    FZ_CHECK(s != NULL);
    int rc = dy_ec_scalar_from_bytes(ec, s, p, n);
    FZ_CHECK(rc == 0 || rc == -EINVAL);
    if (rc == 0) {
        uint8_t out[DY_SCALAR_LEN];
        FZ_CHECK(n >= 1 && n <= DY_SCALAR_LEN);
        FZ_CHECK(dy_ec_scalar_to_bytes(s, out) == 0);
        FZ_CHECK(memcmp(out + DY_SCALAR_LEN - n, p, n) == 0);
        for (size_t i = 0; i < DY_SCALAR_LEN - n; i++)
            FZ_CHECK(out[i] == 0);
    }
    dy_scalar_free(&s);
}

static void s_ecies(const uint8_t *p, size_t n)
{
    fz_in_t in = {p, n};
    fz_in_t info = fz_part(&in);
    dy_buf_t out = {0};
    int rc = dy_ecies_decrypt(fz_world()->mc_priv, info.p, info.n, in.p, in.n, &out);
    FZ_CHECK(rc == 0 || rc == -EBADMSG);
    if (rc == 0)
        FZ_CHECK(in.n >= DY_ECIES_OVERHEAD && out.len == in.n - DY_ECIES_OVERHEAD);
    else
        FZ_CHECK(out.len == 0);
    dy_buf_free(&out);
}

static void s_sig(const uint8_t *p, size_t n)
{
    const fz_world_t *w = fz_world();
    fz_in_t in = {p, n};
    fz_in_t msg = fz_part(&in);
    int rc = dy_sig_verify(s_verify_key, msg.p, msg.n, in.p, in.n);
    FZ_CHECK(rc == 0 || rc == -EBADMSG);
    char cid[DY_EXT_ID_LEN + 1], cname[64];
    fz_id(0x101, cid);
    snprintf(cname, sizeof(cname), "computations/%s", cid);
    rc = dy_mc_key_verify(s_verify_key, DY_MC_LABEL_HMSS_KEY, cname, w->hmss_pub[0], in.p, in.n);
    FZ_CHECK(rc == 0 || rc == -EBADMSG);
    rc = dy_kf_key_verify(s_verify_key, DY_KF_LABEL_ELGAMAL, cname, w->llv2_pub[2], in.p, in.n);
    FZ_CHECK(rc == 0 || rc == -EBADMSG);
}

static void s_cert(const uint8_t *p, size_t n)
{
    X509 *x = dy_mc_cert_from_der(p, n);
    if (x == NULL)
        return;
    dy_buf_t der = {0};
    /* What parsed without trailing bytes re-encodes to a certificate that parses. */
    if (dy_mc_cert_der(x, &der) == 0) {
        X509 *y = dy_mc_cert_from_der(der.data, der.len);
        FZ_CHECK(y != NULL);
        X509_free(y);
    }
    dy_buf_free(&der);
    for (int i = 0; i < FZ_NPARTIES; i++) {
        char why[160];
        int rc = dy_mc_trust_check(fz_world()->trust, x, fz_party(i), why, sizeof(why));
        FZ_CHECK(rc == 0 || rc == -EACCES);
    }
    X509_free(x);
}

static uint64_t s_u64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return v;
}

static void s_sketch(const uint8_t *p, size_t n)
{
    if (n < 10)
        return;
    /* Parameters: decay rate (1, 65], size 1..2^16, K 1..8, width (0, 1]. */
    double a = 1.0 + (double)(p[0] + 1) / 4.0;
    int64_t m = 1 + (int64_t)((size_t)p[1] << 8 | p[2]);
    int K = 1 + p[3] % 8;
    float width = (float)(p[4] + 1) / 256.0f;
    dy_ll_sketch_t sk[2];
    FZ_CHECK(dy_ll_sketch_init(&sk[0], a, m) == 0 && dy_ll_sketch_init(&sk[1], a, m) == 0);
    p += 5;
    n -= 5;
    size_t which = 0;
    for (; n >= 10; p += 10, n -= 10, which ^= 1) {
        int64_t index =
            (int64_t)((uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]) %
                (m + 2) -
            1;
        uint64_t key = (uint64_t)p[4] << 16 | (uint64_t)p[5] << 8 | p[6];
        uint64_t count = (uint64_t)p[7] << 16 | (uint64_t)p[8] << 8 | p[9];
        int rc = dy_ll_sketch_put(&sk[which], index, key, count);
        FZ_CHECK(rc == 0 || rc == -EINVAL);
        if (rc == 0)
            FZ_CHECK(index >= 0 && index < m);
    }
    for (int i = 0; i < 2; i++) {
        FZ_CHECK(dy_ll_sketch_finish(&sk[i]) == 0);
        for (size_t j = 1; j < sk[i].n; j++)
            FZ_CHECK(sk[i].regs[j - 1].index < sk[i].regs[j].index);
    }
    const dy_ll_sketch_t *sks[2] = {&sk[0], &sk[1]};
    int64_t reach = -1;
    double freq[8];
    uint64_t active = 0;
    int rc = dy_ll_plaintext(sks, 2, K, width, &reach, freq, &active);
    FZ_CHECK(rc == 0 || rc == -EINVAL || rc == -ERANGE);
    if (rc == 0) {
        FZ_CHECK(reach >= 0 && active <= (uint64_t)m);
        double sum = 0;
        for (int i = 0; i < K; i++) {
            FZ_CHECK(freq[i] >= 0 && freq[i] <= 1);
            sum += freq[i];
        }
        FZ_CHECK(sum == 0 || fabs(sum - 1.0) < 1e-9);
    }
    /* The estimator on a count from the input (exec2 at AGG computes it from tuples). */
    if (n >= 8) {
        uint64_t target = s_u64(p) % (uint64_t)(m + 2);
        int64_t est = -1;
        rc = dy_ll_estimate(a, m, target, width, &est);
        FZ_CHECK(rc == 0 || rc == -EINVAL || rc == -ERANGE);
        if (rc == 0)
            FZ_CHECK(est >= 0 && target < (uint64_t)m);
        uint64_t c = 0;
        rc = dy_ll_invert(a, m, target, &c);
        FZ_CHECK(rc == 0 || rc == -ERANGE);
    }
    dy_ll_sketch_free(&sk[0]);
    dy_ll_sketch_free(&sk[1]);
}

static void s_hash(const uint8_t *p, size_t n)
{
    const dy_ec_t *ec = fz_world()->ec;
    EC_POINT *pt = dy_ec_point_new(ec);
    FZ_CHECK(pt != NULL);
    FZ_CHECK(dy_ec_hash_to_curve(ec, pt, p, n, s_ctx) == 0);
    uint8_t enc[DY_PT_LEN];
    FZ_CHECK(dy_ec_encode(ec, pt, enc, s_ctx) == 0);
    EC_POINT *back = dy_ec_point_new(ec);
    FZ_CHECK(back != NULL && dy_ec_decode(ec, back, enc, s_ctx) == 0);
    FZ_CHECK(dy_ec_eq(ec, pt, back, s_ctx) == 1);
    EC_POINT_free(pt);
    EC_POINT_free(back);
}

static void s_secrets(const uint8_t *p, size_t n)
{
    char cid[DY_EXT_ID_LEN + 1];
    fz_id(0x101, cid);
    dy_buf_t pt = {0};
    int rc = dy_secrets_open(fz_world()->master, cid, p, n, &pt);
    FZ_CHECK(rc == 0 || rc == -EBADMSG);
    if (rc == 0) {
        FZ_CHECK(n >= DY_SECRETS_OVERHEAD && pt.len == n - DY_SECRETS_OVERHEAD);
        Halo__Internal__V1__Secrets *s = halo__internal__v1__secrets__unpack(NULL, pt.len, pt.data);
        if (s != NULL)
            halo__internal__v1__secrets__free_unpacked(s, NULL);
    }
    dy_buf_free(&pt);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    s_init();
    fz_rng_reset(0x63727970);
    const uint8_t *p = data + 1;
    size_t n = size - 1;
    switch (data[0] % 11) {
    case 0:
        s_point(p, n);
        break;
    case 1:
        s_compressed(p, n);
        break;
    case 2:
        s_public(p, n);
        break;
    case 3:
        s_many(p, n);
        break;
    case 4:
        s_scalar(p, n);
        break;
    case 5:
        s_ecies(p, n);
        break;
    case 6:
        s_sig(p, n);
        break;
    case 7:
        s_cert(p, n);
        break;
    case 8:
        s_sketch(p, n);
        break;
    case 9:
        s_hash(p, n);
        break;
    default:
        s_secrets(p, n);
        break;
    }
    return 0;
}
