/* test_kingdom_fx.c - common/kingdom_fx.c: the status classes, the signed requisition params
 * (checked with mc_util's independent verifier), the CONFIRMATION_PHASE checks against a real
 * PKI made by deploy/mkpki (nonces, data present, signatures, certificate chains, changed
 * keys), the result envelope (opened with the MC's own dy_mc_result_open) and the sealed
 * secrets round trip. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "blob.h"
#include "crypto/ecies.h"
#include "crypto/sig.h"
#include "details.h"
#include "kingdom_fx.h"
#include "mc_util.h"
#include "secrets.h"
#include "stages.h"
#include "wire.h"

#include "duchy.pb-c.h"
#include "kingdom_fixture.h"

static char s_dir[] = "/tmp/test_kingdom_fx.XXXXXX";
static bool s_have_pki;

static int group_setup(void **state)
{
    (void)state;
    if (mkdtemp(s_dir) == NULL)
        return -1;
    const char *root = getenv("DY_SOURCE_ROOT");
    if (root == NULL)
        return 0;
    char cmd[2048];
    snprintf(cmd, sizeof(cmd),
             "'%s/deploy/mkpki' --dir '%s/pki' --duchies worker1,worker2,aggregator "
             ">/dev/null 2>&1",
             root, s_dir);
    int st = system(cmd);
    s_have_pki = WIFEXITED(st) && WEXITSTATUS(st) == 0;
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", s_dir);
    return system(cmd) == 0 ? 0 : -1;
}

static void test_classify(void **state)
{
    (void)state;
    assert_int_equal(dy_kf_classify(DY_WIRE_STATUS_OK), DY_KF_OK);
    assert_int_equal(dy_kf_classify(DY_WIRE_STATUS_UNAVAILABLE), DY_KF_RETRY);
    assert_int_equal(dy_kf_classify(DY_WIRE_STATUS_DEADLINE_EXCEEDED), DY_KF_RETRY);
    assert_int_equal(dy_kf_classify(DY_WIRE_STATUS_ABORTED), DY_KF_RETRY);
    assert_int_equal(dy_kf_classify(DY_WIRE_STATUS_FAILED_PRECONDITION), DY_KF_CHECK_ENDED);
    assert_int_equal(dy_kf_classify(DY_WIRE_STATUS_INVALID_ARGUMENT), DY_KF_PERMANENT);
    assert_int_equal(dy_kf_classify(DY_WIRE_STATUS_PERMISSION_DENIED), DY_KF_PERMANENT);
    assert_int_equal(dy_kf_classify(DY_WIRE_STATUS_NOT_FOUND), DY_KF_PERMANENT);
    assert_true(dy_kf_state_terminal(5) && dy_kf_state_terminal(6) && dy_kf_state_terminal(7));
    assert_false(dy_kf_state_terminal(4) || dy_kf_state_terminal(0));
}

typedef Wfa__Measurement__System__V1alpha__ComputationParticipant__RequisitionParams rp_t;

static rp_t *s_unpack_rp(const dy_buf_t *b)
{
    return (rp_t *)protobuf_c_message_unpack(
        &wfa__measurement__system__v1alpha__computation_participant__requisition_params__descriptor,
        NULL, b->len, b->data);
}

static void test_params(void **state)
{
    (void)state;
    EVP_PKEY *key = dy_sig_keygen();
    assert_non_null(key);
    uint8_t priv[32], pub[33];
    assert_int_equal(dy_ecies_keygen(priv, pub), 0);
    const char *cn = "computations/AAAAAAAAAAE";
    dy_buf_t b = {0};
    /* LLv2 */
    assert_int_equal(dy_kf_requisition_params(DY_PROTO_LLV2, "duchies/w/certificates/c", cn, pub,
                                              key, &b),
                     0);
    rp_t *rp = s_unpack_rp(&b);
    assert_non_null(rp);
    assert_string_equal(rp->duchy_certificate, "duchies/w/certificates/c");
    assert_int_equal(rp->protocol_case,
                     WFA__MEASUREMENT__SYSTEM__V1ALPHA__COMPUTATION_PARTICIPANT__REQUISITION_PARAMS__PROTOCOL_LIQUID_LEGIONS_V2);
    Wfa__Measurement__Api__V2alpha__ElGamalPublicKey *k =
        wfa__measurement__api__v2alpha__el_gamal_public_key__unpack(
            NULL, rp->liquid_legions_v2->el_gamal_public_key.len,
            rp->liquid_legions_v2->el_gamal_public_key.data);
    assert_non_null(k);
    assert_int_equal(k->elliptic_curve_id, 415);
    assert_memory_equal(k->generator.data, fx_g, 33);
    assert_memory_equal(k->element.data, pub, 33);
    wfa__measurement__api__v2alpha__el_gamal_public_key__free_unpacked(k, NULL);
    assert_string_equal(rp->liquid_legions_v2->el_gamal_public_key_signature_algorithm_oid,
                        DY_SIG_OID);
    const ProtobufCBinaryData *sig = &rp->liquid_legions_v2->el_gamal_public_key_signature;
    assert_int_equal(dy_mc_key_verify(key, DY_MC_LABEL_ELGAMAL, cn, pub, sig->data, sig->len), 0);
    assert_int_not_equal(dy_mc_key_verify(key, DY_MC_LABEL_ELGAMAL, "computations/other", pub,
                                          sig->data, sig->len),
                         0);
    assert_int_not_equal(dy_mc_key_verify(key, DY_MC_LABEL_HMSS_KEY, cn, pub, sig->data,
                                          sig->len),
                         0);
    protobuf_c_message_free_unpacked(&rp->base, NULL);
    dy_buf_free(&b);
    /* RO-LLv2 uses its own oneof case */
    assert_int_equal(dy_kf_requisition_params(DY_PROTO_RO_LLV2, "c", cn, pub, key, &b), 0);
    rp = s_unpack_rp(&b);
    assert_int_equal(rp->protocol_case,
                     WFA__MEASUREMENT__SYSTEM__V1ALPHA__COMPUTATION_PARTICIPANT__REQUISITION_PARAMS__PROTOCOL_REACH_ONLY_LIQUID_LEGIONS_V2);
    protobuf_c_message_free_unpacked(&rp->base, NULL);
    dy_buf_free(&b);
    /* HMSS NA: EncryptionPublicKey format 100, §8.7 signature */
    assert_int_equal(dy_kf_requisition_params(DY_PROTO_HMSS, "c", cn, pub, key, &b), 0);
    rp = s_unpack_rp(&b);
    const ProtobufCBinaryData *tk = &rp->honest_majority_share_shuffle->tink_public_key;
    Wfa__Measurement__Api__V2alpha__EncryptionPublicKey *ek =
        wfa__measurement__api__v2alpha__encryption_public_key__unpack(NULL, tk->len, tk->data);
    assert_int_equal(ek->format, 100);
    assert_memory_equal(ek->data.data, pub, 33);
    wfa__measurement__api__v2alpha__encryption_public_key__free_unpacked(ek, NULL);
    sig = &rp->honest_majority_share_shuffle->tink_public_key_signature;
    assert_int_equal(dy_mc_key_verify(key, DY_MC_LABEL_HMSS_KEY, cn, pub, sig->data, sig->len),
                     0);
    protobuf_c_message_free_unpacked(&rp->base, NULL);
    dy_buf_free(&b);
    /* HMSS AG: the sub-message present and empty */
    assert_int_equal(dy_kf_requisition_params(DY_PROTO_HMSS, "c", cn, NULL, NULL, &b), 0);
    rp = s_unpack_rp(&b);
    assert_non_null(rp->honest_majority_share_shuffle);
    assert_int_equal(rp->honest_majority_share_shuffle->tink_public_key.len, 0);
    assert_int_equal(rp->honest_majority_share_shuffle->tink_public_key_signature.len, 0);
    protobuf_c_message_free_unpacked(&rp->base, NULL);
    dy_buf_free(&b);
    assert_int_equal(dy_kf_requisition_params(DY_PROTO_LLV2, "c", cn, NULL, key, &b), -EINVAL);
    EVP_PKEY_free(key);
}

static void test_result_seal(void **state)
{
    (void)state;
    if (!s_have_pki)
        skip();
    char path[1024];
    snprintf(path, sizeof(path), "%s/pki/aggregator/sign.key", s_dir);
    EVP_PKEY *key = dy_kf_load_key(path);
    assert_non_null(key);
    snprintf(path, sizeof(path), "%s/pki/aggregator/sign.pem", s_dir);
    X509 *cert = dy_mc_load_cert(path);
    assert_non_null(cert);
    char ca[1024], parties[1024], err[256] = "";
    snprintf(ca, sizeof(ca), "%s/pki/trusted-ca.pem", s_dir);
    snprintf(parties, sizeof(parties), "%s/pki/parties.txt", s_dir);
    dy_mc_trust_t *trust = dy_mc_trust_new(ca, parties, err, sizeof(err));
    assert_non_null(trust);
    uint8_t mc_priv[32], mc_pub[33];
    assert_int_equal(dy_ecies_keygen(mc_priv, mc_pub), 0);
    double freq[3] = {0.5, 0.25, 0.25};
    dy_buf_t result = {0}, env = {0};
    assert_int_equal(dy_mc_result_pack(42, freq, 3, &result), 0);
    assert_int_equal(dy_kf_result_seal(key, mc_pub, "computations/AAAAAAAAAAE", "aggregator",
                                       result.data, result.len, &env),
                     0);
    dy_mc_result_t out;
    dy_mc_step_t step;
    int rc = dy_mc_result_open(trust, "duchies/aggregator/certificates/sign", cert, "aggregator",
                               "computations/AAAAAAAAAAE", mc_priv, env.data, env.len, true, &out,
                               &step, err, sizeof(err));
    if (rc != 0)
        fail_msg("open: step %d: %s", (int)step, err);
    assert_int_equal(out.reach, 42);
    assert_int_equal(out.nfreq, 3);
    /* bound to the computation and the aggregator */
    rc = dy_mc_result_open(trust, "duchies/aggregator/certificates/sign", cert, "aggregator",
                           "computations/AAAAAAAAAAF", mc_priv, env.data, env.len, true, &out,
                           &step, err, sizeof(err));
    assert_int_not_equal(rc, 0);
    assert_int_equal(step, DY_MC_STEP_SIGNATURE);
    dy_buf_free(&result);
    dy_buf_free(&env);
    X509_free(cert);
    EVP_PKEY_free(key);
    dy_mc_trust_destroy(&trust);
}

/* A CONFIRM fixture: an LLv2 computation whose participants carry keys signed by their
 * real signing keys and the DER of their certificates. */
typedef struct {
    bool data_here;
} s_cb_t;

static bool s_has_data(const char *req, void *arg)
{
    (void)req;
    return ((s_cb_t *)arg)->data_here;
}

/* Re-signs each participant's key in a serialized Computation with the duchy's sign.key and
 * attaches sign.pem's DER (or another duchy's, when wrong_cert). */
static void s_sign_all(dy_buf_t *comp, bool wrong_cert, bool wrong_sig)
{
    Wfa__Measurement__System__V1alpha__Computation *c =
        wfa__measurement__system__v1alpha__computation__unpack(NULL, comp->len, comp->data);
    assert_non_null(c);
    uint8_t sigs[3][DY_SIG_MAX];
    dy_buf_t ders[3] = {{0}};
    for (size_t i = 0; i < 3; i++) {
        Wfa__Measurement__System__V1alpha__ComputationParticipant *p =
            c->computation_participants[i];
        const char *id = strrchr(p->name, '/') + 1;
        char path[1024];
        snprintf(path, sizeof(path), "%s/pki/%s/sign.key", s_dir, wrong_sig && i == 1 ? "worker1" : id);
        EVP_PKEY *k = dy_kf_load_key(path);
        assert_non_null(k);
        snprintf(path, sizeof(path), "%s/pki/%s/sign.pem", s_dir,
                 wrong_cert && i == 2 ? "worker2" : id);
        X509 *x = dy_mc_load_cert(path);
        assert_int_equal(dy_mc_cert_der(x, &ders[i]), 0);
        X509_free(x);
        Wfa__Measurement__System__V1alpha__ComputationParticipant__RequisitionParams__LiquidLegionsV2
            *ll = p->requisition_params->liquid_legions_v2;
        Wfa__Measurement__Api__V2alpha__ElGamalPublicKey *ek =
            wfa__measurement__api__v2alpha__el_gamal_public_key__unpack(
                NULL, ll->el_gamal_public_key.len, ll->el_gamal_public_key.data);
        size_t n;
        assert_int_equal(dy_mc_key_sign(k, DY_MC_LABEL_ELGAMAL, "computations/AAAAAAAAAAE",
                                        ek->element.data, sigs[i], &n),
                         0);
        wfa__measurement__api__v2alpha__el_gamal_public_key__free_unpacked(ek, NULL);
        EVP_PKEY_free(k);
        free(ll->el_gamal_public_key_signature.data);
        ll->el_gamal_public_key_signature.data = malloc(n);
        memcpy(ll->el_gamal_public_key_signature.data, sigs[i], n);
        ll->el_gamal_public_key_signature.len = n;
        free(p->requisition_params->duchy_certificate_der.data);
        p->requisition_params->duchy_certificate_der.data = malloc(ders[i].len);
        memcpy(p->requisition_params->duchy_certificate_der.data, ders[i].data, ders[i].len);
        p->requisition_params->duchy_certificate_der.len = ders[i].len;
        dy_buf_free(&ders[i]);
    }
    dy_buf_free(comp);
    size_t n = wfa__measurement__system__v1alpha__computation__get_packed_size(c);
    wfa__measurement__system__v1alpha__computation__pack(c, dy_buf_extend(comp, n));
    wfa__measurement__system__v1alpha__computation__free_unpacked(c, NULL);
}

static int s_confirm(const fx_t *f, bool data_here, bool wrong_cert, bool wrong_sig,
                     const dy_mc_trust_t *trust, char code[48])
{
    dy_buf_t comp = {0}, det = {0};
    fx_build(f, &comp);
    char err[256];
    assert_int_equal(dy_details_build(comp.data, comp.len, "worker1", "aggregator", "", "", &det,
                                      err, sizeof(err)),
                     0);
    dy_details_t d;
    assert_int_equal(dy_details_parse(det.data, det.len, "worker1", &d, err, sizeof(err)), 0);
    s_sign_all(&comp, wrong_cert, wrong_sig);
    s_cb_t cb = {data_here};
    int rc = dy_kf_confirm_check(&d, comp.data, comp.len, trust, s_has_data, NULL, &cb, code,
                                 err, sizeof(err));
    dy_details_free(&d);
    dy_buf_free(&comp);
    dy_buf_free(&det);
    return rc;
}

static void test_confirm(void **state)
{
    (void)state;
    if (!s_have_pki)
        skip();
    char ca[1024], parties[1024], err[256] = "", code[48];
    snprintf(ca, sizeof(ca), "%s/pki/trusted-ca.pem", s_dir);
    snprintf(parties, sizeof(parties), "%s/pki/parties.txt", s_dir);
    dy_mc_trust_t *trust = dy_mc_trust_new(ca, parties, err, sizeof(err));
    assert_non_null(trust);
    fx_t f;
    fx_default(&f, FX_LLV2);
    f.keys = true;
    f.fulfilled = true;
    f.state = 3;
    assert_int_equal(s_confirm(&f, true, false, false, trust, code), 0);
    /* data missing for a requisition fulfilled here */
    assert_int_not_equal(s_confirm(&f, false, false, false, trust, code), 0);
    assert_string_equal(code, "requisition_data_missing");
    /* a certificate of another duchy */
    assert_int_not_equal(s_confirm(&f, true, true, false, trust, code), 0);
    assert_string_equal(code, "untrusted_certificate");
    /* a signature by the wrong key */
    assert_int_not_equal(s_confirm(&f, true, false, true, trust, code), 0);
    assert_string_equal(code, "bad_key_signature");
    /* fewer fulfilled requisitions than spec nonce hashes */
    fx_t g = f;
    g.fulfilled = false;
    assert_int_not_equal(s_confirm(&g, true, false, false, trust, code), 0);
    assert_string_equal(code, "nonce_mismatch");
    dy_mc_trust_destroy(&trust);
}

static void test_secrets(void **state)
{
    (void)state;
    uint8_t master[32];
    memset(master, 7, sizeof(master));
    dy_buf_t sealed = {0}, pt = {0};
    assert_int_equal(dy_kf_secrets_new_hmss(master, "AAAAAAAAAAE", &sealed), 0);
    char blobroot[1024];
    snprintf(blobroot, sizeof(blobroot), "%s/blobs", s_dir);
    assert_int_equal(mkdir(blobroot, 0700), 0);
    dy_blobdir_t *bd = dy_blobdir_new(blobroot, "worker1");
    assert_non_null(bd);
    dy_blob_key_t key = {"AAAAAAAAAAE", 1, 0, DY_KF_SECRETS_SLOT};
    dy_blob_writer_t *w = NULL;
    dy_blob_info_t info;
    assert_int_equal(dy_blob_open(bd, &key, &w), 0);
    assert_int_equal(dy_blob_write(w, sealed.data, sealed.len), 0);
    assert_int_equal(dy_blob_commit(&w, &info), 0);
    char path[DY_BLOB_PATH_MAX];
    assert_int_equal(dy_kf_secrets_path(bd, "AAAAAAAAAAE", 1, path, sizeof(path)), 0);
    assert_string_equal(path, info.path);
    assert_int_equal(dy_kf_secrets_read_file(path, master, "AAAAAAAAAAE", &pt), 0);
    Halo__Internal__V1__Secrets *s = halo__internal__v1__secrets__unpack(NULL, pt.len, pt.data);
    assert_non_null(s);
    assert_int_equal(s->hmss_seed.len, 48);
    uint8_t pub[33];
    assert_int_equal(dy_ecies_pub_from_priv(s->hmss_enc_private.data, pub), 0);
    assert_memory_equal(pub, s->hmss_enc_public.data, 33);
    halo__internal__v1__secrets__free_unpacked(s, NULL);
    dy_buf_free(&pt);
    /* bound to the computation id (AAD) and the key */
    assert_int_equal(dy_kf_secrets_read_file(path, master, "AAAAAAAAAAF", &pt), -EBADMSG);
    master[0] ^= 1;
    assert_int_equal(dy_kf_secrets_read_file(path, master, "AAAAAAAAAAE", &pt), -EBADMSG);
    assert_int_equal(dy_kf_secrets_read_file("/nonexistent/x", master, "A", &pt), -ENOENT);
    dy_buf_free(&pt);
    dy_buf_free(&sealed);
    dy_blobdir_destroy(&bd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_classify),    cmocka_unit_test(test_params),
        cmocka_unit_test(test_result_seal), cmocka_unit_test(test_confirm),
        cmocka_unit_test(test_secrets),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
