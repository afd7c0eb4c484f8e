/* test_mctools.c - mc_util.c, the pure logic of duchy-mc and duchy-edp, and deploy/mkpki's
 * encryption keys: the JSON reader, federation.json loading, certificate names and trust
 * checks, the measurement spec (build, sign, verify, parse), the encrypted requisition spec,
 * the fingerprint, signed duchy keys, sealed HMSS seeds, the result envelope with every
 * refusal of CRYPTO.md §9.3 (wrong aggregator certificate, untrusted certificate, bad
 * signature, wrong OID, wrong computation in the ECIES info, bad plaintext ranges), and the
 * ground truth.  The PKI comes from $DY_SOURCE_ROOT/deploy/mkpki in a mkdtemp directory.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <ftw.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mc_util.h"

#include "crypto/ecies.h"
#include "crypto/sig.h"
#include "sketch/campaign.h"
#include "sketch/ll.h"

#include "protocol/hmss.h"
#include "protocol/llv2.h"
#include "rpc.h"
#include "sketch/fvec.h"

#include "public.pb-c.h"

#include <pthread.h>
#include <signal.h>

#define V2(x) Wfa__Measurement__Api__V2alpha__##x
#define V2E(x) WFA__MEASUREMENT__API__V2ALPHA__##x

static char s_dir[256]; /* mkdtemp root: federation.json lives here, the PKI in pki/ */
static char s_pki[300];
static dy_mc_trust_t *s_trust;

#define S_COMP "computations/AAAAAAAAAAE"
#define S_AGG "aggregator"

static const char *s_path(char *out, const char *rel)
{
    snprintf(out, PATH_MAX, "%s/%s", s_pki, rel);
    return out;
}

static void s_fake_free(void);

static int s_rm(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static int s_write(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (f == NULL)
        return -1;
    fputs(text, f);
    return fclose(f);
}

/* A federation.json for the PKI (relative paths on purpose). */
static const char s_fed_json[] =
    "{\"dir\": \".\", \"kingdom\": {\"endpoint\": \"127.0.0.1:4000\"},\n"
    " \"duchies\": [\n"
    "  {\"id\": \"worker1\", \"role\": \"non_aggregator\", \"endpoint\": \"127.0.0.1:4001\",\n"
    "   \"admin\": \"ipc:///x\", \"cert\": \"pki/worker1/tls.pem\", \"key\": \"pki/worker1/tls.key\"},\n"
    "  {\"id\": \"worker2\", \"role\": \"non_aggregator\", \"endpoint\": \"127.0.0.1:4002\",\n"
    "   \"admin\": \"ipc:///y\", \"cert\": \"pki/worker2/tls.pem\", \"key\": \"pki/worker2/tls.key\"},\n"
    "  {\"id\": \"aggregator\", \"role\": \"aggregator\", \"endpoint\": \"127.0.0.1:4003\",\n"
    "   \"admin\": \"ipc:///z\", \"cert\": \"pki/aggregator/tls.pem\", \"key\": \"pki/aggregator/tls.key\"}],\n"
    " \"edps\": [{\"id\": \"edp1\", \"cert\": \"pki/edp1/tls.pem\", \"key\": \"pki/edp1/tls.key\"},\n"
    "          {\"id\": \"edp2\", \"cert\": \"pki/edp2/tls.pem\", \"key\": \"pki/edp2/tls.key\"}],\n"
    " \"mc\": {\"id\": \"mc1\", \"cert\": \"pki/mc1/tls.pem\", \"key\": \"pki/mc1/tls.key\",\n"
    "        \"certificate\": \"measurementConsumers/mc1/certificates/sign\"},\n"
    " \"trusted_ca\": \"pki/trusted-ca.pem\", \"pki\": \"pki\",\n"
    " \"campaign\": {\"population\": 20000, \"reach\": 3000, \"seed\": 18446744073709551615,\n"
    "              \"max_events\": 6},\n"
    " \"llv2\": {\"decay_rate\": 12.0, \"sketch_size\": 50000}}\n";

static int group_setup(void **state)
{
    (void)state;
    signal(SIGPIPE, SIG_IGN);
    const char *root = getenv("DY_SOURCE_ROOT");
    if (root == NULL) {
        fprintf(stderr, "# DY_SOURCE_ROOT is not set\n");
        return -1;
    }
    const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    if (strlen(tmp) > 200)
        tmp = "/tmp";
    snprintf(s_dir, sizeof(s_dir), "%s/dy-mct-XXXXXX", tmp);
    if (mkdtemp(s_dir) == NULL)
        return -1;
    snprintf(s_pki, sizeof(s_pki), "%s/pki", s_dir);
    char cmd[3 * PATH_MAX];
    snprintf(cmd, sizeof(cmd),
             "'%s/deploy/mkpki' --dir '%s' --duchies worker1,worker2,aggregator "
             "--edps edp1,edp2 --mcs mc1 --negative >/dev/null 2>&1",
             root, s_pki);
    int st = system(cmd);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        fprintf(stderr, "# deploy/mkpki failed\n");
        return -1;
    }
    char p[PATH_MAX], q[PATH_MAX], err[256] = "";
    s_trust = dy_mc_trust_new(s_path(p, "trusted-ca.pem"), s_path(q, "parties.txt"), err,
                              sizeof(err));
    if (s_trust == NULL)
        fprintf(stderr, "# %s\n", err);
    snprintf(p, sizeof(p), "%s/federation.json", s_dir);
    if (s_write(p, s_fed_json) < 0)
        return -1;
    return s_trust ? 0 : -1;
}

static int group_teardown(void **state)
{
    (void)state;
    s_fake_free();
    dy_mc_trust_destroy(&s_trust);
    if (s_dir[0])
        nftw(s_dir, s_rm, 16, FTW_DEPTH | FTW_PHYS);
    return 0;
}

static EVP_PKEY *s_sign_key(const char *party)
{
    char p[PATH_MAX], rel[128];
    snprintf(rel, sizeof(rel), "%s/sign.key", party);
    EVP_PKEY *k = dy_mc_load_sign_key(s_path(p, rel));
    assert_non_null(k);
    return k;
}

static X509 *s_cert(const char *party, const char *file)
{
    char p[PATH_MAX], rel[128];
    snprintf(rel, sizeof(rel), "%s/%s", party, file);
    X509 *c = dy_mc_load_cert(s_path(p, rel));
    assert_non_null(c);
    return c;
}

static void s_enc_keys(const char *party, uint8_t priv[32], uint8_t pub[33])
{
    char p[PATH_MAX], rel[128];
    snprintf(rel, sizeof(rel), "%s/enc.key", party);
    assert_int_equal(dy_mc_load_enc_priv(s_path(p, rel), priv), 0);
    snprintf(rel, sizeof(rel), "%s/enc.pub", party);
    assert_int_equal(dy_mc_load_enc_pub(s_path(p, rel), pub), 0);
}

/* ---- JSON ---------------------------------------------------------------------------- */

static void test_json(void **state)
{
    (void)state;
    char err[128];
    const char *doc = "{\"a\": [1, -2.5e3, true, null, \"x\\u00e9\\n\\ud83d\\ude00\"],"
                      " \"big\": 18446744073709551615, \"o\": {}}";
    dy_json_t *j = dy_json_parse(doc, strlen(doc), err, sizeof(err));
    assert_non_null(j);
    const dy_json_t *a = dy_json_get(j, "a");
    assert_non_null(a);
    assert_int_equal(a->type, DY_JSON_ARRAY);
    assert_int_equal(a->n, 5);
    uint64_t u;
    double d;
    assert_int_equal(dy_json_u64(&a->items[0], &u), 0);
    assert_int_equal(u, 1);
    assert_int_equal(dy_json_u64(&a->items[1], &u), -EINVAL);
    assert_int_equal(dy_json_double(&a->items[1], &d), 0);
    assert_true(d == -2500.0);
    assert_true(a->items[2].type == DY_JSON_BOOL && a->items[2].boolean);
    assert_int_equal(a->items[3].type, DY_JSON_NULL);
    assert_string_equal(dy_json_str(&a->items[4]), "x\xc3\xa9\n\xf0\x9f\x98\x80");
    assert_int_equal(dy_json_u64(dy_json_get(j, "big"), &u), 0);
    assert_true(u == UINT64_MAX);
    assert_null(dy_json_get(j, "missing"));
    assert_null(dy_json_str(dy_json_get(j, "o")));
    dy_json_destroy(&j);
    assert_null(j);

    static const char *const bad[] = {
        "", "{", "{\"a\":1,}", "[1 2]", "{\"a\":1,\"a\":2}", "01", "1.", "\"\\x\"", "tru",
        "\"\\ud800\"", "{} x", "\"a\x01\"", "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]",
        "\"\\u0000\"",
    };
    for (size_t i = 0; i < DY_ARRAY_LEN(bad); i++) {
        err[0] = '\0';
        j = dy_json_parse(bad[i], strlen(bad[i]), err, sizeof(err));
        if (j != NULL)
            fail_msg("accepted bad JSON #%zu: %s", i, bad[i]);
        assert_true(strncmp(err, "offset ", 7) == 0);
    }
}

/* ---- federation directory ------------------------------------------------------------- */

static void test_federation(void **state)
{
    (void)state;
    dy_fed_t fed;
    char err[256] = "", p[PATH_MAX];
    assert_int_equal(dy_fed_load(s_dir, &fed, err, sizeof(err)), 0);
    assert_string_equal(fed.kingdom_host, "127.0.0.1");
    assert_int_equal(fed.kingdom_port, 4000);
    assert_string_equal(fed.tls_name, "localhost");
    assert_int_equal(fed.nduchies, 3);
    assert_int_equal(dy_fed_aggregator(&fed), 2);
    assert_int_equal(fed.nedps, 2);
    assert_int_equal(dy_fed_edp_index(&fed, "edp2"), 1);
    assert_int_equal(dy_fed_edp_index(&fed, "edp3"), -1);
    snprintf(p, sizeof(p), "%s/pki/edp1/tls.pem", s_dir);
    assert_string_equal(fed.edps[0].cert, p); /* relative to DIR */
    snprintf(p, sizeof(p), "%s/pki/parties.txt", s_dir);
    assert_string_equal(fed.parties, p); /* default: pki/parties.txt */
    assert_true(fed.seed == UINT64_MAX);
    assert_int_equal(fed.population, 20000);
    assert_int_equal(fed.max_events, 6);
    assert_true(fed.decay_rate == 12.0);
    assert_int_equal(fed.sketch_size, 50000);
    assert_int_equal(fed.hmss_rf_modulus, 127);

    /* Certificate names and their local files. */
    char name[256];
    assert_int_equal(dy_fed_cert_name("dataProviders/edp1", NULL, name, sizeof(name)), 0);
    assert_string_equal(name, "dataProviders/edp1/certificates/sign");
    assert_int_equal(dy_fed_cert_name("x", "measurementConsumers/mc1/certificates/c9", name,
                                      sizeof(name)), 0);
    assert_string_equal(name, "measurementConsumers/mc1/certificates/c9");
    assert_int_equal(dy_fed_cert_path(&fed, "duchies/aggregator/certificates/sign", p,
                                      sizeof(p)), 0);
    char want[PATH_MAX];
    snprintf(want, sizeof(want), "%s/pki/aggregator/sign.pem", s_dir);
    assert_string_equal(p, want);
    assert_int_equal(dy_fed_cert_path(&fed, "duchies/aggregator/certificates/../x", p,
                                      sizeof(p)), -EINVAL);
    assert_int_equal(dy_fed_cert_path(&fed, "kingdom/certificates/sign", p, sizeof(p)),
                     -EINVAL);
    assert_int_equal(dy_fed_cert_path(&fed, "duchies/Bad/certificates/sign", p, sizeof(p)),
                     -EINVAL);
    dy_fed_free(&fed);

    char host[64];
    int port;
    assert_int_equal(dy_fed_split_endpoint("localhost:65535", host, sizeof(host), &port), 0);
    assert_int_equal(port, 65535);
    assert_int_equal(dy_fed_split_endpoint("localhost:0", host, sizeof(host), &port), -EINVAL);
    assert_int_equal(dy_fed_split_endpoint("localhost", host, sizeof(host), &port), -EINVAL);

    /* A broken file names the problem. */
    char dir2[PATH_MAX - 32];
    snprintf(dir2, sizeof(dir2), "%s/broken", s_dir);
    assert_int_equal(mkdir(dir2, 0700), 0);
    snprintf(p, sizeof(p), "%s/federation.json", dir2);
    assert_int_equal(s_write(p, "{\"kingdom\": {\"endpoint\": \"127.0.0.1:1\"}}"), 0);
    assert_int_equal(dy_fed_load(dir2, &fed, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "duchies"));
    assert_int_equal(dy_fed_load("/nonexistent-dir", &fed, err, sizeof(err)), -ENOENT);
}

/* ---- keys, certificates, trust ------------------------------------------------------- */

static void test_keys_and_trust(void **state)
{
    (void)state;
    uint8_t priv[32], pub[33], derived[33];
    s_enc_keys("mc1", priv, pub);
    assert_int_equal(dy_ecies_pub_from_priv(priv, derived), 0);
    assert_memory_equal(pub, derived, 33); /* mkpki's enc.pub matches enc.key */
    s_enc_keys("edp2", priv, pub);
    assert_int_equal(dy_ecies_pub_from_priv(priv, derived), 0);
    assert_memory_equal(pub, derived, 33);
    char p[PATH_MAX];
    struct stat st;
    assert_int_equal(stat(s_path(p, "aggregator/enc.key"), &st), -1); /* duchies: none */
    assert_int_equal(stat(s_path(p, "mc1/enc.key"), &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(dy_mc_load_enc_pub(s_path(p, "mc1/enc.key"), pub), -EINVAL);
    assert_int_equal(dy_mc_load_enc_priv(s_path(p, "nope/enc.key"), priv), -ENOENT);

    char err[256];
    X509 *agg = s_cert("aggregator", "sign.pem");
    assert_int_equal(dy_mc_trust_check(s_trust, agg, "duchies/aggregator", err, sizeof(err)),
                     0);
    assert_int_equal(dy_mc_trust_check(s_trust, agg, "duchies/worker1", err, sizeof(err)),
                     -EACCES);
    assert_non_null(strstr(err, "duchies/aggregator"));
    X509 *rogue = s_cert("negative", "rogue.pem");
    assert_int_equal(dy_mc_trust_check(s_trust, rogue, "duchies/aggregator", err, sizeof(err)),
                     -EACCES);
    X509 *root = s_cert("aggregator", "root.pem"); /* a root is not a signing leaf */
    assert_int_equal(dy_mc_trust_check(s_trust, root, "duchies/aggregator", err, sizeof(err)),
                     -EACCES);
    assert_int_equal(dy_mc_trust_check(s_trust, NULL, "duchies/aggregator", err, sizeof(err)),
                     -EACCES);
    /* DER round trip. */
    dy_buf_t der = {0};
    assert_int_equal(dy_mc_cert_der(agg, &der), 0);
    X509 *back = dy_mc_cert_from_der(der.data, der.len);
    assert_non_null(back);
    assert_int_equal(X509_cmp(back, agg), 0);
    assert_null(dy_mc_cert_from_der(der.data, der.len - 1));
    X509_free(back);
    dy_buf_free(&der);
    X509_free(agg);
    X509_free(rogue);
    X509_free(root);
}

/* ---- specs ------------------------------------------------------------------------------ */

static void s_make_spec(bool reach_only, const uint64_t *nonces, size_t n, dy_buf_t *out)
{
    uint8_t priv[32];
    dy_mc_spec_t s = {.reach_only = reach_only, .max_frequency = 5, .epsilon = 0.5,
                      .delta = 1e-6, .vid_start = 0.0f, .vid_width = 1.0f, .nonces = nonces,
                      .nnonces = n};
    s_enc_keys("mc1", priv, s.mc_pub);
    assert_int_equal(dy_mc_spec_build(&s, out), 0);
}

static void test_spec(void **state)
{
    (void)state;
    uint64_t nonces[2] = {0x0102030405060708ULL, 42};
    dy_buf_t spec = {0};
    s_make_spec(false, nonces, 2, &spec);

    /* Sign with the MC's key; verify with its certificate. */
    EVP_PKEY *k = s_sign_key("mc1");
    X509 *c = s_cert("mc1", "sign.pem");
    char err[256];
    assert_int_equal(dy_mc_trust_check(s_trust, c, "measurementConsumers/mc1", err,
                                       sizeof(err)), 0);
    uint8_t sig[72];
    size_t siglen;
    assert_int_equal(dy_mc_spec_sign(k, spec.data, spec.len, sig, &siglen), 0);
    assert_int_equal(dy_mc_spec_verify(X509_get0_pubkey(c), spec.data, spec.len, sig, siglen),
                     0);
    spec.data[spec.len - 1] ^= 1;
    assert_int_equal(dy_mc_spec_verify(X509_get0_pubkey(c), spec.data, spec.len, sig, siglen),
                     -EBADMSG);
    spec.data[spec.len - 1] ^= 1;
    sig[siglen - 1] ^= 1;
    assert_int_equal(dy_mc_spec_verify(X509_get0_pubkey(c), spec.data, spec.len, sig, siglen),
                     -EBADMSG);
    sig[siglen - 1] ^= 1;
    X509 *other = s_cert("edp1", "sign.pem");
    assert_int_equal(dy_mc_spec_verify(X509_get0_pubkey(other), spec.data, spec.len, sig,
                                       siglen), -EBADMSG);
    /* The signature is domain-separated: a plain ECDSA over the bytes is not accepted. */
    uint8_t raw[72];
    size_t rawlen;
    assert_int_equal(dy_sig_sign(k, spec.data, spec.len, raw, &rawlen), 0);
    assert_int_equal(dy_mc_spec_verify(X509_get0_pubkey(c), spec.data, spec.len, raw, rawlen),
                     -EBADMSG);

    /* Parse it back. */
    dy_mc_spec_info_t info;
    assert_int_equal(dy_mc_spec_parse(spec.data, spec.len, &info), 0);
    assert_false(info.reach_only);
    assert_int_equal(info.max_frequency, 5);
    assert_true(info.epsilon == 0.5 && info.delta == 1e-6);
    assert_true(info.vid_start == 0.0f && info.vid_width == 1.0f);
    assert_int_equal(info.nnonce_hashes, 2);
    uint8_t h[32], priv[32], pub[33];
    assert_int_equal(dy_mc_nonce_hash(42, h), 0);
    assert_memory_equal(info.nonce_hashes[1], h, 32);
    s_enc_keys("mc1", priv, pub);
    assert_memory_equal(info.mc_pub, pub, 33);
    dy_mc_spec_info_free(&info);

    /* A nonce hash is SHA-256 of the 8 big-endian bytes. */
    const uint8_t be[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    uint8_t want[32];
    assert_int_equal(dy_mc_sha256(be, 8, want), 0);
    assert_int_equal(dy_mc_nonce_hash(nonces[0], h), 0);
    assert_memory_equal(h, want, 32);

    /* Reach only. */
    dy_buf_t reach = {0};
    s_make_spec(true, nonces, 1, &reach);
    assert_int_equal(dy_mc_spec_parse(reach.data, reach.len, &info), 0);
    assert_true(info.reach_only);
    assert_int_equal(info.max_frequency, 1);
    assert_int_equal(info.nnonce_hashes, 1);
    dy_mc_spec_info_free(&info);

    /* Bad inputs. */
    dy_mc_spec_t bad = {.max_frequency = 1, .vid_width = 1.0f, .nonces = nonces, .nnonces = 1};
    dy_buf_t tmp = {0};
    assert_int_equal(dy_mc_spec_build(&bad, &tmp), -EINVAL); /* R&F with K = 1 */
    uint64_t zero = 0;
    bad.reach_only = true;
    bad.nonces = &zero;
    assert_int_equal(dy_mc_spec_build(&bad, &tmp), -EINVAL);
    const uint8_t junk[] = {0xff, 0xff, 0xff};
    assert_int_equal(dy_mc_spec_parse(junk, sizeof(junk), &info), -EINVAL);
    assert_int_equal(dy_mc_spec_parse((const uint8_t *)"", 0, &info), -EINVAL); /* no key */
    dy_buf_free(&tmp);
    dy_buf_free(&reach);
    dy_buf_free(&spec);
    EVP_PKEY_free(k);
    X509_free(c);
    X509_free(other);
}

static void test_reqspec(void **state)
{
    (void)state;
    uint8_t priv[32], pub[33], spec_hash[32], got_hash[32];
    s_enc_keys("edp1", priv, pub);
    memset(spec_hash, 0xab, sizeof(spec_hash));
    dy_buf_t ct = {0};
    assert_int_equal(dy_mc_reqspec_seal(pub, "dataProviders/edp1", 0x8877665544332211ULL,
                                        spec_hash, &ct), 0);
    assert_int_equal(ct.len, 41 + DY_ECIES_OVERHEAD);
    uint64_t nonce = 0;
    assert_int_equal(dy_mc_reqspec_open(priv, "dataProviders/edp1", ct.data, ct.len, &nonce,
                                        got_hash), 0);
    assert_true(nonce == 0x8877665544332211ULL);
    assert_memory_equal(got_hash, spec_hash, 32);
    /* Another EDP's name in the info, another key, a flipped byte: all refused alike. */
    assert_int_equal(dy_mc_reqspec_open(priv, "dataProviders/edp2", ct.data, ct.len, &nonce,
                                        got_hash), -EBADMSG);
    uint8_t priv2[32], pub2[33];
    s_enc_keys("edp2", priv2, pub2);
    assert_int_equal(dy_mc_reqspec_open(priv2, "dataProviders/edp1", ct.data, ct.len, &nonce,
                                        got_hash), -EBADMSG);
    ct.data[ct.len / 2] ^= 0x40;
    assert_int_equal(dy_mc_reqspec_open(priv, "dataProviders/edp1", ct.data, ct.len, &nonce,
                                        got_hash), -EBADMSG);
    assert_int_equal(dy_mc_reqspec_seal(pub, "dataProviders/edp1", 0, spec_hash, &ct), -EINVAL);

    /* Fingerprint = SHA-256(spec || SHA-256(ciphertext)). */
    const uint8_t spec[] = "a measurement spec";
    uint8_t rh[32], fp[32], want[32];
    assert_int_equal(dy_mc_sha256(ct.data, ct.len, rh), 0);
    assert_int_equal(dy_mc_fingerprint(spec, sizeof(spec), rh, fp), 0);
    uint8_t cat[sizeof(spec) + 32];
    memcpy(cat, spec, sizeof(spec));
    memcpy(cat + sizeof(spec), rh, 32);
    assert_int_equal(dy_mc_sha256(cat, sizeof(cat), want), 0);
    assert_memory_equal(fp, want, 32);
    dy_buf_free(&ct);
}

/* ---- duchy keys and seeds --------------------------------------------------------------- */

static void test_duchy_keys(void **state)
{
    (void)state;
    EVP_PKEY *k = s_sign_key("worker1");
    X509 *c = s_cert("worker1", "sign.pem");
    EVP_PKEY *pk = X509_get0_pubkey(c);
    uint8_t Y[33], sig[72];
    size_t siglen;
    uint8_t x[32];
    assert_int_equal(dy_ecies_keygen(x, Y), 0);
    assert_int_equal(dy_mc_key_sign(k, DY_MC_LABEL_ELGAMAL, S_COMP, Y, sig, &siglen), 0);
    assert_int_equal(dy_mc_key_verify(pk, DY_MC_LABEL_ELGAMAL, S_COMP, Y, sig, siglen), 0);
    /* The exact message of CRYPTO.md §2.1. */
    dy_buf_t msg = {0};
    const char label[] = "halo-duchy/v1/elgamal-key";
    assert_int_equal(dy_buf_append(&msg, label, strlen(label)), 0);
    assert_int_equal(dy_buf_append(&msg, "\0", 1), 0);
    assert_int_equal(dy_buf_append(&msg, S_COMP, strlen(S_COMP)), 0);
    assert_int_equal(dy_buf_append(&msg, "\0", 1), 0);
    assert_int_equal(dy_buf_append(&msg, Y, 33), 0);
    assert_int_equal(dy_sig_verify(pk, msg.data, msg.len, sig, siglen), 0);
    dy_buf_free(&msg);
    /* Bound to the computation, the key and the label. */
    assert_int_equal(dy_mc_key_verify(pk, DY_MC_LABEL_ELGAMAL, "computations/AAAAAAAAAAI", Y,
                                      sig, siglen), -EBADMSG);
    assert_int_equal(dy_mc_key_verify(pk, DY_MC_LABEL_HMSS_KEY, S_COMP, Y, sig, siglen),
                     -EBADMSG);
    Y[5] ^= 1;
    assert_int_equal(dy_mc_key_verify(pk, DY_MC_LABEL_ELGAMAL, S_COMP, Y, sig, siglen),
                     -EBADMSG);
    Y[5] ^= 1;
    assert_int_equal(dy_mc_key_verify(pk, DY_MC_LABEL_ELGAMAL, S_COMP, Y, sig, 0), -EBADMSG);
    EVP_PKEY_free(k);
    X509_free(c);
}

static void test_seed(void **state)
{
    (void)state;
    const char *req = S_COMP "/requisitions/AAAAAAAAAAM";
    EVP_PKEY *edp = s_sign_key("edp1");
    X509 *edp_cert = s_cert("edp1", "sign.pem");
    uint8_t d[32], Q[33], seed[DY_MC_SEED_LEN], got[DY_MC_SEED_LEN];
    for (int i = 0; i < DY_MC_SEED_LEN; i++)
        seed[i] = (uint8_t)i;
    assert_int_equal(dy_ecies_keygen(d, Q), 0);
    dy_buf_t ct = {0};
    assert_int_equal(dy_mc_seed_seal(edp, Q, S_COMP, req, seed, &ct), 0);
    assert_true(ct.len > DY_MC_SEED_LEN + DY_ECIES_OVERHEAD);
    assert_int_equal(dy_mc_seed_open(d, X509_get0_pubkey(edp_cert), S_COMP, req, ct.data, ct.len,
                                     got), 0);
    assert_memory_equal(got, seed, DY_MC_SEED_LEN);
    /* The ECIES info binds the requisition (-EBADMSG: does not decrypt); the signature
     * binds the EDP (-EKEYREJECTED: decrypts, the signature does not verify). */
    assert_int_equal(dy_mc_seed_open(d, X509_get0_pubkey(edp_cert), S_COMP,
                                     S_COMP "/requisitions/AAAAAAAAAAQ", ct.data, ct.len, got),
                     -EBADMSG);
    X509 *other = s_cert("edp2", "sign.pem");
    assert_int_equal(dy_mc_seed_open(d, X509_get0_pubkey(other), S_COMP, req, ct.data, ct.len,
                                     got), -EKEYREJECTED);
    /* sealed with another EDP's key, opened with edp1's certificate */
    EVP_PKEY *edp2 = s_sign_key("edp2");
    dy_buf_t ct2 = {0};
    assert_int_equal(dy_mc_seed_seal(edp2, Q, S_COMP, req, seed, &ct2), 0);
    assert_int_equal(dy_mc_seed_open(d, X509_get0_pubkey(edp_cert), S_COMP, req, ct2.data,
                                     ct2.len, got), -EKEYREJECTED);
    dy_buf_free(&ct2);
    EVP_PKEY_free(edp2);
    uint8_t d2[32], Q2[33];
    assert_int_equal(dy_ecies_keygen(d2, Q2), 0);
    assert_int_equal(dy_mc_seed_open(d2, X509_get0_pubkey(edp_cert), S_COMP, req, ct.data,
                                     ct.len, got), -EBADMSG);
    dy_buf_free(&ct);
    EVP_PKEY_free(edp);
    X509_free(edp_cert);
    X509_free(other);
}

/* ---- result envelope ------------------------------------------------------------------ */

/* Opens env as the MC of the test federation, aggregator "aggregator". */
static int s_open(const char *cert_name, X509 *cert, const char *comp, const dy_buf_t *env,
                  bool freq, dy_mc_result_t *r, dy_mc_step_t *step)
{
    uint8_t priv[32], pub[33];
    char err[256] = "";
    s_enc_keys("mc1", priv, pub);
    int rc = dy_mc_result_open(s_trust, cert_name, cert, S_AGG, comp, priv, env->data, env->len,
                               freq, r, step, err, sizeof(err));
    if (rc < 0)
        assert_true(err[0] != '\0');
    return rc;
}

static void s_seal(EVP_PKEY *key, const char *comp, const char *agg_id, int64_t reach,
                   const double *freq, int nfreq, dy_buf_t *env)
{
    uint8_t priv[32], pub[33];
    s_enc_keys("mc1", priv, pub);
    dy_buf_t r = {0};
    assert_int_equal(dy_mc_result_pack(reach, freq, nfreq, &r), 0);
    assert_int_equal(dy_mc_result_seal(key, pub, comp, agg_id, r.data, r.len, env), 0);
    dy_buf_free(&r);
}

#define S_AGG_CERT "duchies/aggregator/certificates/sign"

static void test_result_ok(void **state)
{
    (void)state;
    EVP_PKEY *k = s_sign_key("aggregator");
    X509 *c = s_cert("aggregator", "sign.pem");
    const double f[3] = {0.5, 0.25, 0.25};
    dy_buf_t env = {0};
    s_seal(k, S_COMP, S_AGG, 12345, f, 3, &env);
    dy_mc_result_t r;
    dy_mc_step_t step = DY_MC_STEP_RESULT;
    assert_int_equal(s_open(S_AGG_CERT, c, S_COMP, &env, true, &r, &step), 0);
    assert_int_equal(step, DY_MC_STEP_OK);
    assert_int_equal(r.reach, 12345);
    assert_int_equal(r.nfreq, 3);
    assert_true(r.freq[0] == 0.5 && r.freq[1] == 0.25 && r.freq[2] == 0.25);

    /* Reach only. */
    dy_buf_t env2 = {0};
    s_seal(k, S_COMP, S_AGG, 0, NULL, 0, &env2);
    assert_int_equal(s_open(S_AGG_CERT, c, S_COMP, &env2, false, &r, &step), 0);
    assert_int_equal(r.reach, 0);
    assert_int_equal(r.nfreq, 0);
    dy_buf_free(&env);
    dy_buf_free(&env2);
    EVP_PKEY_free(k);
    X509_free(c);
}

static void test_result_certificate_refusals(void **state)
{
    (void)state;
    EVP_PKEY *agg = s_sign_key("aggregator"), *w1 = s_sign_key("worker1");
    X509 *agg_cert = s_cert("aggregator", "sign.pem"), *w1_cert = s_cert("worker1", "sign.pem");
    X509 *rogue = s_cert("negative", "rogue.pem");
    const double f[2] = {0.5, 0.5};
    dy_buf_t env = {0}, env_w1 = {0};
    s_seal(agg, S_COMP, S_AGG, 10, f, 2, &env);
    s_seal(w1, S_COMP, S_AGG, 10, f, 2, &env_w1); /* a non-aggregator signs instead */
    dy_mc_result_t r;
    dy_mc_step_t step;

    /* The certificate name is not the aggregator's. */
    assert_int_equal(s_open("duchies/worker1/certificates/sign", w1_cert, S_COMP, &env_w1, true,
                            &r, &step), -EACCES);
    assert_int_equal(step, DY_MC_STEP_CERTIFICATE);
    /* The aggregator's name, but a non-aggregator's certificate. */
    assert_int_equal(s_open(S_AGG_CERT, w1_cert, S_COMP, &env_w1, true, &r, &step), -EACCES);
    assert_int_equal(step, DY_MC_STEP_CERTIFICATE);
    /* A certificate that does not chain to the trusted roots. */
    assert_int_equal(s_open(S_AGG_CERT, rogue, S_COMP, &env, true, &r, &step), -EACCES);
    assert_int_equal(step, DY_MC_STEP_CERTIFICATE);
    /* No certificate, or a malformed name. */
    assert_int_equal(s_open(S_AGG_CERT, NULL, S_COMP, &env, true, &r, &step), -EACCES);
    assert_int_equal(step, DY_MC_STEP_CERTIFICATE);
    assert_int_equal(s_open("duchies/aggregator/certificates/", agg_cert, S_COMP, &env, true, &r,
                            &step), -EACCES);
    assert_int_equal(s_open(NULL, agg_cert, S_COMP, &env, true, &r, &step), -EACCES);
    assert_int_equal(step, DY_MC_STEP_CERTIFICATE);
    /* The aggregator's certificate with a non-aggregator's signature. */
    assert_int_equal(s_open(S_AGG_CERT, agg_cert, S_COMP, &env_w1, true, &r, &step), -EBADMSG);
    assert_int_equal(step, DY_MC_STEP_SIGNATURE);
    dy_buf_free(&env);
    dy_buf_free(&env_w1);
    EVP_PKEY_free(agg);
    EVP_PKEY_free(w1);
    X509_free(agg_cert);
    X509_free(w1_cert);
    X509_free(rogue);
}

/* Builds an EncryptedSignedResult by hand: X under info_comp, signature over sig_comp,
 * sig_agg, X; flip_sig flips the signature's last bit; oid as given. */
static void s_envelope(const char *info_comp, const char *sig_comp, const char *sig_agg,
                       const uint8_t *pt, size_t len, bool flip_sig, const char *oid,
                       dy_buf_t *out)
{
    uint8_t priv[32], pub[33];
    s_enc_keys("mc1", priv, pub);
    EVP_PKEY *k = s_sign_key("aggregator");
    dy_buf_t info = {0}, x = {0}, msg = {0};
    dy_part_t ip = {info_comp, strlen(info_comp)};
    assert_int_equal(dy_sig_message(&info, "halo-duchy/v1/result", &ip, 1), 0);
    assert_int_equal(dy_ecies_encrypt(pub, 33, info.data, info.len, pt, len, &x), 0);
    dy_part_t sp[3] = {{sig_comp, strlen(sig_comp)}, {sig_agg, strlen(sig_agg)}, {x.data, x.len}};
    assert_int_equal(dy_sig_message(&msg, "halo-duchy/v1/result-sig", sp, 3), 0);
    uint8_t sig[72];
    size_t siglen;
    assert_int_equal(dy_sig_sign(k, msg.data, msg.len, sig, &siglen), 0);
    if (flip_sig)
        sig[siglen - 1] ^= 1;
    V2(EncryptedSignedResult) esr = V2E(ENCRYPTED_SIGNED_RESULT__INIT);
    esr.ciphertext.data = x.data;
    esr.ciphertext.len = x.len;
    esr.signature.data = sig;
    esr.signature.len = siglen;
    esr.signature_algorithm_oid = (char *)oid;
    out->len = 0;
    assert_int_equal(dy_buf_reserve(out, protobuf_c_message_get_packed_size(&esr.base)), 0);
    out->len = protobuf_c_message_pack(&esr.base, out->data);
    dy_buf_free(&info);
    dy_buf_free(&x);
    dy_buf_free(&msg);
    EVP_PKEY_free(k);
}

static void test_result_envelope_refusals(void **state)
{
    (void)state;
    X509 *c = s_cert("aggregator", "sign.pem");
    dy_buf_t pt = {0}, env = {0};
    const double f[2] = {0.75, 0.25};
    assert_int_equal(dy_mc_result_pack(99, f, 2, &pt), 0);
    dy_mc_result_t r;
    dy_mc_step_t step;

    /* Control: the hand-built envelope opens. */
    s_envelope(S_COMP, S_COMP, S_AGG, pt.data, pt.len, false, DY_SIG_OID, &env);
    assert_int_equal(s_open(S_AGG_CERT, c, S_COMP, &env, true, &r, &step), 0);
    assert_int_equal(r.reach, 99);
    /* A bad signature (last bit flipped). */
    s_envelope(S_COMP, S_COMP, S_AGG, pt.data, pt.len, true, DY_SIG_OID, &env);
    assert_int_equal(s_open(S_AGG_CERT, c, S_COMP, &env, true, &r, &step), -EBADMSG);
    assert_int_equal(step, DY_MC_STEP_SIGNATURE);
    /* Signed for another computation or another aggregator id. */
    s_envelope(S_COMP, "computations/AAAAAAAAAAI", S_AGG, pt.data, pt.len, false, DY_SIG_OID,
               &env);
    assert_int_equal(s_open(S_AGG_CERT, c, S_COMP, &env, true, &r, &step), -EBADMSG);
    assert_int_equal(step, DY_MC_STEP_SIGNATURE);
    s_envelope(S_COMP, S_COMP, "worker1", pt.data, pt.len, false, DY_SIG_OID, &env);
    assert_int_equal(s_open(S_AGG_CERT, c, S_COMP, &env, true, &r, &step), -EBADMSG);
    assert_int_equal(step, DY_MC_STEP_SIGNATURE);
    /* Another signature algorithm. */
    s_envelope(S_COMP, S_COMP, S_AGG, pt.data, pt.len, false, "1.2.840.10045.4.3.3", &env);
    assert_int_equal(s_open(S_AGG_CERT, c, S_COMP, &env, true, &r, &step), -EBADMSG);
    assert_int_equal(step, DY_MC_STEP_SIGNATURE);
    /* Signed correctly, but encrypted under another computation's info. */
    s_envelope("computations/AAAAAAAAAAI", S_COMP, S_AGG, pt.data, pt.len, false, DY_SIG_OID,
               &env);
    assert_int_equal(s_open(S_AGG_CERT, c, S_COMP, &env, true, &r, &step), -EBADMSG);
    assert_int_equal(step, DY_MC_STEP_DECRYPTION);
    /* Not an EncryptedSignedResult at all. */
    dy_buf_t junk = {0};
    assert_int_equal(dy_buf_append(&junk, "\xff\xff\xff", 3), 0);
    assert_int_equal(s_open(S_AGG_CERT, c, S_COMP, &junk, true, &r, &step), -EBADMSG);
    assert_int_equal(step, DY_MC_STEP_SIGNATURE);
    dy_buf_free(&junk);
    dy_buf_free(&pt);
    dy_buf_free(&env);
    X509_free(c);
}

/* A Measurement.Result with arbitrary entries (keys and values as given). */
static void s_raw_result(int64_t reach, bool with_reach, const int64_t *keys,
                         const double *vals, size_t n, dy_buf_t *out)
{
    V2(Measurement__Result) r = V2E(MEASUREMENT__RESULT__INIT);
    V2(Measurement__Result__Reach) rr = V2E(MEASUREMENT__RESULT__REACH__INIT);
    V2(Measurement__Result__Frequency) rf = V2E(MEASUREMENT__RESULT__FREQUENCY__INIT);
    V2(Measurement__Result__Frequency__RelativeFrequencyDistributionEntry) e[8], *ep[8];
    rr.value = reach;
    if (with_reach)
        r.reach = &rr;
    for (size_t i = 0; i < n; i++) {
        wfa__measurement__api__v2alpha__measurement__result__frequency__relative_frequency_distribution_entry__init(&e[i]);
        e[i].key = keys[i];
        e[i].value = vals[i];
        ep[i] = &e[i];
    }
    if (n > 0) {
        rf.n_relative_frequency_distribution = n;
        rf.relative_frequency_distribution = ep;
        r.frequency = &rf;
    }
    out->len = 0;
    assert_int_equal(dy_buf_reserve(out, protobuf_c_message_get_packed_size(&r.base) + 1), 0);
    out->len = protobuf_c_message_pack(&r.base, out->data);
}

static void test_result_plaintext_refusals(void **state)
{
    (void)state;
    X509 *c = s_cert("aggregator", "sign.pem");
    dy_buf_t pt = {0}, env = {0};
    dy_mc_result_t r;
    dy_mc_step_t step;
    static const struct {
        const char *what;
        int64_t reach;
        bool with_reach;
        int64_t keys[4];
        double vals[4];
        size_t n;
        bool freq; /* the measurement is reach and frequency */
    } cases[] = {
        {"negative reach", -1, true, {1, 2}, {0.5, 0.5}, 2, true},
        {"no reach", 0, false, {1, 2}, {0.5, 0.5}, 2, true},
        {"frequency above 1", 5, true, {1, 2}, {1.5, -0.5}, 2, true},
        {"negative frequency", 5, true, {1, 2, 3}, {0.6, -0.1, 0.5}, 3, true},
        {"sum below 1", 5, true, {1, 2}, {0.5, 0.4}, 2, true},
        {"sum slightly above 1", 5, true, {1, 2}, {0.5, 0.5 + 1e-8}, 2, true},
        {"key 0", 5, true, {0, 1}, {0.5, 0.5}, 2, true},
        {"repeated key", 5, true, {1, 1}, {0.5, 0.5}, 2, true},
        {"gap in keys", 5, true, {1, 3}, {0.5, 0.5}, 2, true},
        {"NaN", 5, true, {1, 2}, {NAN, 0.5}, 2, true},
        {"no frequency for R&F", 5, true, {0}, {0}, 0, true},
        {"frequency in a reach result", 5, true, {1}, {1.0}, 1, false},
    };
    for (size_t i = 0; i < DY_ARRAY_LEN(cases); i++) {
        s_raw_result(cases[i].reach, cases[i].with_reach, cases[i].keys, cases[i].vals,
                     cases[i].n, &pt);
        s_envelope(S_COMP, S_COMP, S_AGG, pt.data, pt.len, false, DY_SIG_OID, &env);
        int rc = s_open(S_AGG_CERT, c, S_COMP, &env, cases[i].freq, &r, &step);
        if (rc != -EBADMSG || step != DY_MC_STEP_RESULT)
            fail_msg("accepted or misfiled: %s (rc %d, step %d)", cases[i].what, rc, step);
    }
    /* Within 1e-9 is accepted. */
    const int64_t keys[2] = {1, 2};
    const double vals[2] = {0.5, 0.5 + 5e-10};
    s_raw_result(7, true, keys, vals, 2, &pt);
    s_envelope(S_COMP, S_COMP, S_AGG, pt.data, pt.len, false, DY_SIG_OID, &env);
    assert_int_equal(s_open(S_AGG_CERT, c, S_COMP, &env, true, &r, &step), 0);
    /* Garbage plaintext. */
    s_envelope(S_COMP, S_COMP, S_AGG, (const uint8_t *)"\xff\xff", 2, false, DY_SIG_OID, &env);
    assert_int_equal(s_open(S_AGG_CERT, c, S_COMP, &env, true, &r, &step), -EBADMSG);
    assert_int_equal(step, DY_MC_STEP_RESULT);
    dy_buf_free(&pt);
    dy_buf_free(&env);
    X509_free(c);
}

/* ---- ground truth ----------------------------------------------------------------------- */

static void test_truth(void **state)
{
    (void)state;
    dy_fed_t fed;
    char err[256];
    assert_int_equal(dy_fed_load(s_dir, &fed, err, sizeof(err)), 0);
    /* Independently: generate, then truth over EDP 1 alone and over both. */
    dy_campaign_params_t p = {.population = fed.population, .edps = 2, .reach = fed.reach,
                              .max_events = fed.max_events, .seed = fed.seed};
    dy_campaign_t camp = {0};
    assert_int_equal(dy_campaign_generate(&p, &camp), 0);
    dy_campaign_t one = {.params = p, .edp = &camp.edp[1]};
    one.params.edps = 1;
    uint64_t reach1;
    double f1[4];
    assert_int_equal(dy_campaign_truth(&one, 4, &reach1, f1), 0);
    assert_int_equal(reach1, fed.reach);

    dy_mc_truth_t t;
    const int idx1[1] = {1};
    assert_int_equal(dy_mc_truth(&fed, idx1, 1, 4, false, 1.0f, &t), 0);
    assert_int_equal(t.true_reach, (int64_t)reach1);
    assert_memory_equal(t.true_freq, f1, sizeof(f1));
    assert_int_equal(t.plaintext_estimate, -1);

    const int both[2] = {0, 1};
    uint64_t reach2;
    assert_int_equal(dy_campaign_truth(&camp, 4, &reach2, NULL), 0);
    assert_int_equal(dy_mc_truth(&fed, both, 2, 4, true, 1.0f, &t), 0);
    assert_int_equal(t.true_reach, (int64_t)reach2);
    assert_true(t.true_reach > (int64_t)fed.reach && t.true_reach < 2 * (int64_t)fed.reach);
    /* The plaintext estimate: the estimator on the union of the two sketches. */
    dy_ll_sketch_t sk[2];
    const dy_ll_sketch_t *skp[2] = {&sk[0], &sk[1]};
    for (int i = 0; i < 2; i++) {
        assert_int_equal(dy_ll_sketch_init(&sk[i], fed.decay_rate, fed.sketch_size), 0);
        for (size_t j = 0; j < camp.edp[i].n; j++)
            assert_int_equal(dy_ll_sketch_add_vid(&sk[i], camp.edp[i].vids[j],
                                                  camp.edp[i].events[j]), 0);
        assert_int_equal(dy_ll_sketch_finish(&sk[i]), 0);
    }
    int64_t est;
    uint64_t active;
    double fq[4];
    assert_int_equal(dy_ll_plaintext(skp, 2, 4, 1.0f, &est, fq, &active), 0);
    assert_int_equal(t.plaintext_estimate, est);
    assert_true(llabs(est - t.true_reach) < t.true_reach / 10);
    for (int i = 0; i < 2; i++)
        dy_ll_sketch_free(&sk[i]);

    const int bad[1] = {2};
    assert_int_equal(dy_mc_truth(&fed, bad, 1, 4, false, 1.0f, &t), -EINVAL);
    dy_campaign_free(&camp);
    dy_fed_free(&fed);
}

static void test_names(void **state)
{
    (void)state;
    dy_mc_protocol_t p;
    dy_mc_noise_t n;
    for (int i = 0; i < _DY_MC_PROTOCOL_MAX; i++) {
        assert_int_equal(dy_mc_protocol_parse(dy_mc_protocol_name((dy_mc_protocol_t)i), &p), 0);
        assert_int_equal((int)p, i);
    }
    assert_int_equal(dy_mc_protocol_parse("llv3", &p), -EINVAL);
    assert_int_equal(dy_mc_noise_parse("discrete-gaussian", &n), 0);
    assert_int_equal(n, DY_MC_NOISE_DISCRETE_GAUSSIAN);
    assert_int_equal(dy_mc_noise_parse("laplace", &n), -EINVAL);
    assert_true(dy_mc_protocol_is_llv2(DY_MC_ROLLV2));
    assert_false(dy_mc_protocol_is_llv2(DY_MC_HMSS_RO));
}

/* ---- duchy-edp against a fake Kingdom and a fake duchy ----------------------------------- *
 * Two rpc servers in a thread: a "Kingdom" (kingdom/tls.pem) serving ListRequisitions (one
 * crafted requisition until it is fulfilled or refused), GetCertificate (the MC's from the
 * PKI; everything else NOT_FOUND, so the EDP's fallback to the PKI copy is used too) and
 * RefuseRequisition, and "worker1" (worker1/tls.pem) serving FulfillRequisition, which
 * records the header and body.  The real duchy-edp binary ($DY_EDP_BIN) runs --once. */

#define S_MEAS "measurementConsumers/mc1/measurements/AAAAAAAAAAE"
#define S_REQ "dataProviders/edp1/requisitions/AAAAAAAAAAM"
#define S_SREQ S_COMP "/requisitions/AAAAAAAAAAM"
#define S_SVC "/wfa.measurement.api.v2alpha."
#define S_TP "type.googleapis.com/wfa.measurement.api.v2alpha."

static struct {
    dy_buf_t requisition;    /* serialized public Requisition served by ListRequisitions */
    volatile int fulfilled, refused;
    char name[160];          /* upload header */
    uint8_t fingerprint[32];
    uint64_t nonce;
    bool hmss;
    int64_t register_count;
    dy_buf_t seed_ct;
    char dp_cert[160];
    dy_buf_t body;
    volatile int stop;
} s_fake;

static void s_fake_free(void)
{
    dy_buf_free(&s_fake.requisition);
    dy_buf_free(&s_fake.seed_ct);
    dy_buf_free(&s_fake.body);
}

static void s_send_pb(dy_rpc_call_t *call, const ProtobufCMessage *m)
{
    dy_rpc_call_send_pb(call, m);
    dy_rpc_call_finish(call, DY_WIRE_STATUS_OK, DY_WIRE_REASON_NONE, "ok");
}

static void s_on_list(dy_rpc_call_t *call, const uint8_t *req, size_t len, void *arg)
{
    (void)arg;
    (void)req;
    (void)len;
    V2(ListRequisitionsResponse) resp = V2E(LIST_REQUISITIONS_RESPONSE__INIT);
    V2(Requisition) *r = NULL;
    if (!s_fake.fulfilled && !s_fake.refused) {
        r = wfa__measurement__api__v2alpha__requisition__unpack(NULL, s_fake.requisition.len,
                                                                s_fake.requisition.data);
        resp.n_requisitions = 1;
        resp.requisitions = &r;
    }
    s_send_pb(call, &resp.base);
    if (r != NULL)
        wfa__measurement__api__v2alpha__requisition__free_unpacked(r, NULL);
}

static void s_on_cert(dy_rpc_call_t *call, const uint8_t *req, size_t len, void *arg)
{
    (void)arg;
    V2(GetCertificateRequest) *g = wfa__measurement__api__v2alpha__get_certificate_request__unpack(
        NULL, len, req);
    if (g == NULL || strcmp(g->name, "measurementConsumers/mc1/certificates/sign") != 0) {
        dy_rpc_call_finish(call, DY_WIRE_STATUS_NOT_FOUND, DY_WIRE_REASON_NONE, "unknown");
    } else {
        X509 *c = s_cert("mc1", "sign.pem");
        dy_buf_t der = {0};
        assert_int_equal(dy_mc_cert_der(c, &der), 0);
        V2(Certificate) cert = V2E(CERTIFICATE__INIT);
        cert.name = g->name;
        cert.x509_der.data = der.data;
        cert.x509_der.len = der.len;
        s_send_pb(call, &cert.base);
        dy_buf_free(&der);
        X509_free(c);
    }
    if (g != NULL)
        wfa__measurement__api__v2alpha__get_certificate_request__free_unpacked(g, NULL);
}

static void s_on_refuse(dy_rpc_call_t *call, const uint8_t *req, size_t len, void *arg)
{
    (void)arg;
    (void)req;
    (void)len;
    s_fake.refused = 1;
    V2(Requisition) r = V2E(REQUISITION__INIT);
    r.name = (char *)S_REQ;
    r.state = V2E(REQUISITION__STATE__REFUSED);
    s_send_pb(call, &r.base);
}

static void s_on_header(dy_rpc_call_t *call, const uint8_t *req, size_t len, void *arg)
{
    (void)arg;
    V2(FulfillRequisitionRequest) *f =
        wfa__measurement__api__v2alpha__fulfill_requisition_request__unpack(NULL, len, req);
    if (f == NULL || f->payload_case != V2E(FULFILL_REQUISITION_REQUEST__PAYLOAD_HEADER)) {
        dy_rpc_call_finish(call, DY_WIRE_STATUS_INVALID_ARGUMENT, DY_WIRE_REASON_NONE, "header");
    } else {
        const V2(FulfillRequisitionRequest__Header) *h = f->header;
        snprintf(s_fake.name, sizeof(s_fake.name), "%s", h->name);
        if (h->requisition_fingerprint.len == 32)
            memcpy(s_fake.fingerprint, h->requisition_fingerprint.data, 32);
        s_fake.nonce = h->nonce;
        s_fake.hmss = h->protocol_case
                      == V2E(FULFILL_REQUISITION_REQUEST__HEADER__PROTOCOL_HONEST_MAJORITY_SHARE_SHUFFLE);
        if (s_fake.hmss) {
            const V2(FulfillRequisitionRequest__Header__HonestMajorityShareShuffle) *hh =
                h->honest_majority_share_shuffle;
            s_fake.register_count = hh->register_count;
            snprintf(s_fake.dp_cert, sizeof(s_fake.dp_cert), "%s", hh->data_provider_certificate);
            s_fake.seed_ct.len = 0;
            if (hh->secret_seed != NULL)
                dy_buf_append(&s_fake.seed_ct, hh->secret_seed->ciphertext.data,
                              hh->secret_seed->ciphertext.len);
        }
        s_fake.body.len = 0;
        dy_rpc_call_accept_upload(call, 0);
    }
    if (f != NULL)
        wfa__measurement__api__v2alpha__fulfill_requisition_request__free_unpacked(f, NULL);
}

static int s_on_chunk(dy_rpc_call_t *call, const uint8_t *data, size_t len, void *arg)
{
    (void)call;
    (void)arg;
    return dy_buf_append(&s_fake.body, data, len);
}

static void s_on_complete(dy_rpc_call_t *call, const uint8_t sha256[32], uint64_t total,
                          void *arg)
{
    (void)arg;
    (void)sha256;
    (void)total;
    s_fake.fulfilled = 1;
    V2(FulfillRequisitionResponse) r = V2E(FULFILL_REQUISITION_RESPONSE__INIT);
    r.state = V2E(REQUISITION__STATE__FULFILLED);
    s_send_pb(call, &r.base);
}

static void *s_serve(void *arg)
{
    dy_rpc_server_t **srv = arg;
    while (!s_fake.stop) {
        dy_rpc_server_step(srv[0], 10);
        dy_rpc_server_step(srv[1], 10);
    }
    return NULL;
}

static dy_rpc_server_t *s_server(const char *party, const dy_rpc_method_t *m, size_t n,
                                 SSL_CTX **ret_ctx)
{
    char cert[PATH_MAX], key[PATH_MAX], ca[PATH_MAX], pt[PATH_MAX], rel[64], err[256];
    snprintf(rel, sizeof(rel), "%s/tls.pem", party);
    s_path(cert, rel);
    snprintf(rel, sizeof(rel), "%s/tls.key", party);
    s_path(key, rel);
    dy_parties_t *parties = dy_parties_load(s_path(pt, "parties.txt"), err, sizeof(err));
    assert_non_null(parties);
    dy_tls_conf_t tc = {.cert_path = cert, .key_path = key,
                        .trusted_ca_path = s_path(ca, "trusted-ca.pem"), .parties = parties};
    *ret_ctx = dy_tls_server_ctx(&tc, err, sizeof(err));
    dy_parties_destroy(&parties);
    assert_non_null(*ret_ctx);
    dy_rpc_server_conf_t sc = {.ctx = *ret_ctx, .host = "127.0.0.1", .port = 0};
    dy_rpc_server_t *srv = dy_rpc_server_new(&sc, m, n, err, sizeof(err));
    if (srv == NULL)
        fail_msg("server: %s", err);
    return srv;
}

/* Signed key of duchy `id` wrapped as type tname. */
static V2(SignedMessage) *s_signed_key(const char *id, const char *label, bool elgamal,
                                       const uint8_t pub[33])
{
    V2(SignedMessage) *sm = calloc(1, sizeof(*sm));
    Google__Protobuf__Any *any = calloc(1, sizeof(*any));
    wfa__measurement__api__v2alpha__signed_message__init(sm);
    google__protobuf__any__init(any);
    dy_buf_t b = {0};
    if (elgamal) {
        V2(ElGamalPublicKey) k = V2E(EL_GAMAL_PUBLIC_KEY__INIT);
        k.elliptic_curve_id = 415;
        k.element.data = (uint8_t *)pub;
        k.element.len = 33;
        dy_buf_reserve(&b, protobuf_c_message_get_packed_size(&k.base));
        b.len = protobuf_c_message_pack(&k.base, b.data);
        any->type_url = strdup(S_TP "ElGamalPublicKey");
    } else {
        V2(EncryptionPublicKey) k = V2E(ENCRYPTION_PUBLIC_KEY__INIT);
        k.format = V2E(ENCRYPTION_PUBLIC_KEY__FORMAT__ECIES_P256);
        k.data.data = (uint8_t *)pub;
        k.data.len = 33;
        dy_buf_reserve(&b, protobuf_c_message_get_packed_size(&k.base));
        b.len = protobuf_c_message_pack(&k.base, b.data);
        any->type_url = strdup(S_TP "EncryptionPublicKey");
    }
    any->value.data = b.data;
    any->value.len = b.len;
    EVP_PKEY *k = s_sign_key(id);
    sm->signature.data = malloc(72);
    assert_int_equal(dy_mc_key_sign(k, label, S_COMP, pub, sm->signature.data,
                                    &sm->signature.len), 0);
    EVP_PKEY_free(k);
    sm->signature_algorithm_oid = strdup(DY_SIG_OID);
    sm->message = any;
    return sm;
}

/* The requisition the fake Kingdom serves: LLv2 (3 signed ElGamal keys, one with a broken
 * signature if tamper) or HMSS (worker1 assigned, worker2's signed key with secret *ret_d). */
static void s_make_requisition(bool hmss, bool tamper, uint64_t nonce, dy_buf_t *ret_spec,
                               uint8_t ret_d[32])
{
    uint64_t nonces[1] = {nonce};
    s_make_spec(false, nonces, 1, ret_spec);
    EVP_PKEY *mk = s_sign_key("mc1");
    uint8_t sig[72], edp_priv[32], edp_pub[33], spec_hash[32];
    size_t siglen;
    assert_int_equal(dy_mc_spec_sign(mk, ret_spec->data, ret_spec->len, sig, &siglen), 0);
    EVP_PKEY_free(mk);
    s_enc_keys("edp1", edp_priv, edp_pub);
    assert_int_equal(dy_mc_sha256(ret_spec->data, ret_spec->len, spec_hash), 0);
    dy_buf_t ct = {0};
    assert_int_equal(dy_mc_reqspec_seal(edp_pub, "dataProviders/edp1", nonce, spec_hash, &ct),
                     0);

    V2(Requisition) r = V2E(REQUISITION__INIT);
    r.name = (char *)S_REQ;
    r.measurement = (char *)S_MEAS;
    r.measurement_consumer_certificate = (char *)"measurementConsumers/mc1/certificates/sign";
    Google__Protobuf__Any spec_any = GOOGLE__PROTOBUF__ANY__INIT;
    spec_any.type_url = (char *)S_TP "MeasurementSpec";
    spec_any.value.data = ret_spec->data;
    spec_any.value.len = ret_spec->len;
    V2(SignedMessage) sspec = V2E(SIGNED_MESSAGE__INIT);
    sspec.signature.data = sig;
    sspec.signature.len = siglen;
    sspec.signature_algorithm_oid = (char *)DY_SIG_OID;
    sspec.message = &spec_any;
    r.measurement_spec = &sspec;
    V2(EncryptedMessage) em = V2E(ENCRYPTED_MESSAGE__INIT);
    em.ciphertext.data = ct.data;
    em.ciphertext.len = ct.len;
    r.encrypted_requisition_spec = &em;
    r.state = V2E(REQUISITION__STATE__UNFULFILLED);

    V2(ProtocolConfig) pc = V2E(PROTOCOL_CONFIG__INIT);
    V2(ProtocolConfig__Protocol) proto = V2E(PROTOCOL_CONFIG__PROTOCOL__INIT), *protos[1];
    V2(ProtocolConfig__LiquidLegionsV2) ll = V2E(PROTOCOL_CONFIG__LIQUID_LEGIONS_V2__INIT);
    V2(LiquidLegionsSketchParams) sp = V2E(LIQUID_LEGIONS_SKETCH_PARAMS__INIT);
    V2(ProtocolConfig__HonestMajorityShareShuffle) hm =
        V2E(PROTOCOL_CONFIG__HONEST_MAJORITY_SHARE_SHUFFLE__INIT);
    protos[0] = &proto;
    pc.n_protocols = 1;
    pc.protocols = protos;
    static const char *const ids[3] = {"worker1", "worker2", "aggregator"};
    V2(Requisition__DuchyEntry) de[3], *dep[3];
    V2(Requisition__DuchyEntry__Value) dv[3];
    V2(Requisition__DuchyEntry__LiquidLegionsV2) dl[3];
    V2(Requisition__DuchyEntry__HonestMajorityShareShuffle) dh[2];
    char keys[3][64], certs[3][96];
    V2(SignedMessage) *sms[3] = {NULL, NULL, NULL};
    size_t nd = hmss ? 2 : 3;
    dy_ec_t *ec = dy_ec_new();
    for (size_t i = 0; i < nd; i++) {
        snprintf(keys[i], sizeof(keys[i]), "duchies/%s", ids[i]);
        snprintf(certs[i], sizeof(certs[i]), "duchies/%s/certificates/sign", ids[i]);
        wfa__measurement__api__v2alpha__requisition__duchy_entry__init(&de[i]);
        wfa__measurement__api__v2alpha__requisition__duchy_entry__value__init(&dv[i]);
        de[i].key = keys[i];
        de[i].value = &dv[i];
        dv[i].duchy_certificate = certs[i];
        dep[i] = &de[i];
        uint8_t x[32], pub[33];
        if (!hmss) {
            assert_int_equal(dy_llv2_keygen(ec, x, pub), 0);
            sms[i] = s_signed_key(ids[i], DY_MC_LABEL_ELGAMAL, true, pub);
            if (tamper && i == 1)
                sms[i]->signature.data[sms[i]->signature.len - 1] ^= 1;
            wfa__measurement__api__v2alpha__requisition__duchy_entry__liquid_legions_v2__init(&dl[i]);
            dl[i].el_gamal_public_key = sms[i];
            dv[i].protocol_case = V2E(REQUISITION__DUCHY_ENTRY__VALUE__PROTOCOL_LIQUID_LEGIONS_V2);
            dv[i].liquid_legions_v2 = &dl[i];
        } else {
            wfa__measurement__api__v2alpha__requisition__duchy_entry__honest_majority_share_shuffle__init(&dh[i]);
            if (i == 1) {
                assert_int_equal(dy_ecies_keygen(ret_d, pub), 0);
                sms[i] = s_signed_key(ids[i], DY_MC_LABEL_HMSS_KEY, false, pub);
                dh[i].public_key = sms[i];
            }
            dv[i].protocol_case =
                V2E(REQUISITION__DUCHY_ENTRY__VALUE__PROTOCOL_HONEST_MAJORITY_SHARE_SHUFFLE);
            dv[i].honest_majority_share_shuffle = &dh[i];
        }
    }
    dy_ec_destroy(&ec);
    if (!hmss) {
        sp.decay_rate = 12.0;
        sp.max_size = 50000;
        ll.sketch_params = &sp;
        proto.protocol_case = V2E(PROTOCOL_CONFIG__PROTOCOL__PROTOCOL_LIQUID_LEGIONS_V2);
        proto.liquid_legions_v2 = &ll;
    } else {
        hm.ring_modulus = 127;
        proto.protocol_case = V2E(PROTOCOL_CONFIG__PROTOCOL__PROTOCOL_HONEST_MAJORITY_SHARE_SHUFFLE);
        proto.honest_majority_share_shuffle = &hm;
    }
    r.protocol_config = &pc;
    r.n_duchies = nd;
    r.duchies = dep;
    s_fake.requisition.len = 0;
    dy_buf_reserve(&s_fake.requisition, protobuf_c_message_get_packed_size(&r.base));
    s_fake.requisition.len = protobuf_c_message_pack(&r.base, s_fake.requisition.data);
    for (size_t i = 0; i < 3; i++)
        if (sms[i] != NULL)
            protobuf_c_message_free_unpacked(&sms[i]->base, NULL); /* malloc'd parts */
    dy_buf_free(&ct);
}

/* Runs duchy-edp --once against the fakes; returns its exit status. */
/* Environment assignments for the next duchy-edp run (e.g. "DY_EDP_CORRUPT=wrong-count"). */
static const char *s_edp_env = "";

static int s_run_edp(bool hmss, bool tamper, uint64_t nonce, dy_buf_t *spec, uint8_t d[32])
{
    const char *bin = getenv("DY_EDP_BIN");
    s_make_requisition(hmss, tamper, nonce, spec, d);
    s_fake.fulfilled = s_fake.refused = 0;
    s_fake.stop = 0;
    const dy_rpc_method_t km[] = {
        {.method = S_SVC "Requisitions/ListRequisitions", .kind = DY_RPC_UNARY,
         .on_request = s_on_list},
        {.method = S_SVC "Certificates/GetCertificate", .kind = DY_RPC_UNARY,
         .on_request = s_on_cert},
        {.method = S_SVC "Requisitions/RefuseRequisition", .kind = DY_RPC_UNARY,
         .on_request = s_on_refuse},
    };
    const dy_rpc_method_t dm[] = {
        {.method = S_SVC "RequisitionFulfillment/FulfillRequisition",
         .kind = DY_RPC_CLIENT_STREAM, .on_header = s_on_header, .on_chunk = s_on_chunk,
         .on_complete = s_on_complete},
    };
    SSL_CTX *kctx, *dctx;
    dy_rpc_server_t *srv[2];
    srv[0] = s_server("kingdom", km, DY_ARRAY_LEN(km), &kctx);
    srv[1] = s_server("worker1", dm, DY_ARRAY_LEN(dm), &dctx);
    char dir[PATH_MAX - 64], path[PATH_MAX], json[2048];
    snprintf(dir, sizeof(dir), "%s/fake", s_dir);
    (void)mkdir(dir, 0700);
    snprintf(json, sizeof(json),
             "{\"kingdom\": {\"endpoint\": \"127.0.0.1:%d\"}, \"duchies\": ["
             "{\"id\": \"worker1\", \"role\": \"non_aggregator\", \"endpoint\": \"127.0.0.1:%d\"},"
             "{\"id\": \"worker2\", \"role\": \"non_aggregator\", \"endpoint\": \"127.0.0.1:1\"},"
             "{\"id\": \"aggregator\", \"role\": \"aggregator\", \"endpoint\": \"127.0.0.1:1\"}],"
             " \"edps\": [{\"id\": \"edp1\", \"cert\": \"%s/edp1/tls.pem\", \"key\": \"%s/edp1/tls.key\"},"
             " {\"id\": \"edp2\", \"cert\": \"x\", \"key\": \"x\"}],"
             " \"mc\": {\"id\": \"mc1\", \"cert\": \"x\", \"key\": \"x\"},"
             " \"trusted_ca\": \"%s/trusted-ca.pem\", \"pki\": \"%s\","
             " \"campaign\": {\"population\": 20000, \"reach\": 3000, \"seed\": 5, \"max_events\": 6}}",
             dy_rpc_server_port(srv[0]), dy_rpc_server_port(srv[1]), s_pki, s_pki, s_pki, s_pki);
    snprintf(path, sizeof(path), "%s/federation.json", dir);
    assert_int_equal(s_write(path, json), 0);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, s_serve, srv), 0);
    char cmd[2 * PATH_MAX];
    snprintf(cmd, sizeof(cmd), "env %s '%s' run --dir '%s' --id edp1 --once 2>>'%s/edp.log'",
             s_edp_env, bin, dir, dir);
    int st = system(cmd);
    s_fake.stop = 1;
    pthread_join(th, NULL);
    dy_rpc_server_destroy(&srv[0]);
    dy_rpc_server_destroy(&srv[1]);
    SSL_CTX_free(kctx);
    SSL_CTX_free(dctx);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static bool s_have_edp(void)
{
    const char *bin = getenv("DY_EDP_BIN");
    if (bin == NULL || access(bin, X_OK) != 0) {
        fprintf(stderr, "# DY_EDP_BIN not set or not built: skipped\n");
        return false;
    }
    return true;
}

static void s_check_fingerprint(const dy_buf_t *spec)
{
    V2(Requisition) *r = wfa__measurement__api__v2alpha__requisition__unpack(
        NULL, s_fake.requisition.len, s_fake.requisition.data);
    uint8_t rh[32], fp[32];
    assert_int_equal(dy_mc_sha256(r->encrypted_requisition_spec->ciphertext.data,
                                  r->encrypted_requisition_spec->ciphertext.len, rh), 0);
    assert_int_equal(dy_mc_fingerprint(spec->data, spec->len, rh, fp), 0);
    assert_memory_equal(s_fake.fingerprint, fp, 32);
    wfa__measurement__api__v2alpha__requisition__free_unpacked(r, NULL);
}

static void test_edp_llv2(void **state)
{
    (void)state;
    if (!s_have_edp())
        skip();
    dy_buf_t spec = {0};
    uint8_t d[32];
    assert_int_equal(s_run_edp(false, false, 0x1122334455667788ULL, &spec, d), 0);
    assert_true(s_fake.fulfilled);
    assert_false(s_fake.refused);
    assert_string_equal(s_fake.name, S_REQ);
    assert_true(s_fake.nonce == 0x1122334455667788ULL);
    assert_false(s_fake.hmss);
    s_check_fingerprint(&spec);
    /* The body: one 390-byte block per register of the EDP's sketch, built with the
     * requisition's sketch parameters (size 50000, not the federation default). */
    dy_campaign_params_t p = {.population = 20000, .edps = 2, .reach = 3000, .max_events = 6,
                              .seed = 5};
    dy_campaign_t camp = {0};
    assert_int_equal(dy_campaign_generate(&p, &camp), 0);
    dy_ll_sketch_t sk;
    assert_int_equal(dy_ll_sketch_init(&sk, 12.0, 50000), 0);
    for (size_t i = 0; i < camp.edp[0].n; i++)
        assert_int_equal(dy_ll_sketch_add_vid(&sk, camp.edp[0].vids[i], camp.edp[0].events[i]),
                         0);
    assert_int_equal(dy_ll_sketch_finish(&sk), 0);
    assert_int_equal(s_fake.body.len, sk.n * DY_LLV2_CRV_BLOCK);
    dy_ll_sketch_free(&sk);
    dy_campaign_free(&camp);
    /* The ground-truth record. */
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/fake/edp/edp1/AAAAAAAAAAE.json", s_dir);
    dy_json_t *j = dy_json_load(path, NULL, 0);
    assert_non_null(j);
    assert_string_equal(dy_json_str(dy_json_get(j, "duchy")), "worker1");
    assert_string_equal(dy_json_str(dy_json_get(j, "protocol")), "llv2");
    dy_json_destroy(&j);
    dy_buf_free(&spec);
}

static void test_edp_llv2_bad_key_refused(void **state)
{
    (void)state;
    if (!s_have_edp())
        skip();
    dy_buf_t spec = {0};
    uint8_t d[32];
    assert_int_equal(s_run_edp(false, true, 99, &spec, d), 1);
    assert_true(s_fake.refused);
    assert_false(s_fake.fulfilled);
    dy_buf_free(&spec);
}

static void test_edp_hmss(void **state)
{
    (void)state;
    if (!s_have_edp())
        skip();
    dy_buf_t spec = {0};
    uint8_t d[32];
    assert_int_equal(s_run_edp(true, false, 7, &spec, d), 0);
    assert_true(s_fake.fulfilled);
    assert_true(s_fake.hmss);
    s_check_fingerprint(&spec);
    assert_string_equal(s_fake.dp_cert, "dataProviders/edp1/certificates/sign");
    /* The peer (worker2) opens the seed; data + PRNG(seed) = the frequency vector. */
    X509 *edp = s_cert("edp1", "sign.pem");
    uint8_t seed[DY_MC_SEED_LEN];
    assert_int_equal(dy_mc_seed_open(d, X509_get0_pubkey(edp), S_COMP, S_SREQ,
                                     s_fake.seed_ct.data, s_fake.seed_ct.len, seed), 0);
    X509_free(edp);
    size_t R = (size_t)s_fake.register_count;
    assert_int_equal(R, 20000);
    assert_int_equal(s_fake.body.len, R * 4);
    uint32_t *data = NULL, *mask = calloc(R, 4), *want = calloc(R, 4);
    size_t n = 0;
    assert_int_equal(dy_hmss_from_le(s_fake.body.data, s_fake.body.len, 127, &data, &n, NULL), 0);
    assert_int_equal(dy_hmss_expand(seed, 127, R, 1, mask), 0);
    dy_campaign_params_t p = {.population = 20000, .edps = 2, .reach = 3000, .max_events = 6,
                              .seed = 5};
    dy_campaign_t camp = {0};
    assert_int_equal(dy_campaign_generate(&p, &camp), 0);
    dy_fvec_index_t ix;
    assert_int_equal(dy_fvec_index_init(&ix, 20000, 0.0f, 1.0f), 0);
    assert_int_equal(dy_fvec_build(&ix, &camp.edp[0], 5, want), 0);
    size_t nonzero = 0;
    for (size_t i = 0; i < R; i++) {
        assert_int_equal((data[i] + mask[i]) % 127, want[i]);
        nonzero += want[i] != 0;
    }
    assert_int_equal(nonzero, 3000);
    dy_fvec_index_free(&ix);
    dy_campaign_free(&camp);
    free(data);
    free(mask);
    free(want);
    dy_buf_free(&spec);
}

/* duchy-edp's fault injection (TESTING ONLY; DY_EDP_CORRUPT, the --corrupt fallback):
 * each mode's bad upload, and modes leave other protocols alone. */
static void test_edp_corrupt(void **state)
{
    (void)state;
    if (!s_have_edp())
        skip();
    dy_buf_t spec = {0};
    uint8_t d[32];
    dy_ec_t *ec = dy_ec_new();
    BN_CTX *ctx = BN_CTX_new();
    assert_non_null(ec);
    assert_non_null(ctx);
    const size_t B = DY_LLV2_CRV_BLOCK, P = 65;
    size_t bad = 0;

    /* not-on-curve: whole registers, one point off the curve (the middle register's key
     * ciphertext), every other point valid */
    s_edp_env = "DY_EDP_CORRUPT=not-on-curve";
    assert_int_equal(s_run_edp(false, false, 11, &spec, d), 0);
    assert_true(s_fake.fulfilled);
    size_t n = s_fake.body.len / B, at = (n / 2) * 6 + 2;
    assert_true(n > 2);
    assert_int_equal(s_fake.body.len % B, 0);
    assert_int_equal(s_fake.body.data[at * P], 0x04);
    assert_int_equal(dy_ec_check_many(ec, s_fake.body.data, n * 6, &bad, ctx), -EINVAL);
    assert_int_equal(bad, at);
    assert_int_equal(dy_ec_check_many(ec, s_fake.body.data + (at + 1) * P, n * 6 - at - 1, &bad,
                                      ctx), 0);
    dy_buf_free(&spec);

    /* wrong-count: one point (65 bytes) short of whole registers */
    s_edp_env = "DY_EDP_CORRUPT=wrong-count";
    assert_int_equal(s_run_edp(false, false, 12, &spec, d), 0);
    assert_true(s_fake.fulfilled);
    assert_int_equal(s_fake.body.len % B, B - P);
    dy_buf_free(&spec);

    /* an HMSS mode leaves an LLv2 fulfilment alone */
    s_edp_env = "DY_EDP_CORRUPT=bad-signature";
    assert_int_equal(s_run_edp(false, false, 13, &spec, d), 0);
    assert_int_equal(s_fake.body.len % B, 0);
    assert_int_equal(dy_ec_check_many(ec, s_fake.body.data, s_fake.body.len / P, &bad, ctx), 0);
    dy_buf_free(&spec);

    /* bad-signature: the seed decrypts but its signature is not edp1's */
    X509 *edp = s_cert("edp1", "sign.pem");
    uint8_t seed[DY_MC_SEED_LEN];
    assert_int_equal(s_run_edp(true, false, 14, &spec, d), 0);
    assert_true(s_fake.hmss);
    assert_int_equal(dy_mc_seed_open(d, X509_get0_pubkey(edp), S_COMP, S_SREQ,
                                     s_fake.seed_ct.data, s_fake.seed_ct.len, seed),
                     -EKEYREJECTED);
    assert_int_equal(s_fake.register_count, 20000);
    dy_buf_free(&spec);

    /* hmss-bad-share: one register short, header and body agreeing; the seed is good */
    s_edp_env = "DY_EDP_CORRUPT=hmss-bad-share";
    assert_int_equal(s_run_edp(true, false, 15, &spec, d), 0);
    assert_int_equal(s_fake.register_count, 19999);
    assert_int_equal(s_fake.body.len, 19999 * 4);
    assert_int_equal(dy_mc_seed_open(d, X509_get0_pubkey(edp), S_COMP, S_SREQ,
                                     s_fake.seed_ct.data, s_fake.seed_ct.len, seed), 0);
    dy_buf_free(&spec);

    /* a limit of 0 corrupts nothing */
    s_edp_env = "DY_EDP_CORRUPT=hmss-bad-share DY_EDP_CORRUPT_LIMIT=0";
    assert_int_equal(s_run_edp(true, false, 16, &spec, d), 0);
    assert_int_equal(s_fake.register_count, 20000);
    assert_int_equal(s_fake.body.len, 20000 * 4);
    dy_buf_free(&spec);

    s_edp_env = "";
    X509_free(edp);
    BN_CTX_free(ctx);
    dy_ec_destroy(&ec);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_json),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_federation),
        cmocka_unit_test(test_keys_and_trust),
        cmocka_unit_test(test_spec),
        cmocka_unit_test(test_reqspec),
        cmocka_unit_test(test_duchy_keys),
        cmocka_unit_test(test_seed),
        cmocka_unit_test(test_result_ok),
        cmocka_unit_test(test_result_certificate_refusals),
        cmocka_unit_test(test_result_envelope_refusals),
        cmocka_unit_test(test_result_plaintext_refusals),
        cmocka_unit_test(test_truth),
        cmocka_unit_test(test_edp_llv2),
        cmocka_unit_test(test_edp_llv2_bad_key_refused),
        cmocka_unit_test(test_edp_corrupt),
        cmocka_unit_test(test_edp_hmss),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
