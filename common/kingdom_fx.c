/* kingdom_fx.c - the socket-free logic of the Kingdom-facing effects (kingdom_fx.h).
 *
 * Certificates for CONFIRMATION_PHASE: the Kingdom fills each participant's
 * duchy_certificate_der on reads (GetComputation), so the participant needs no second call;
 * that DER is untrusted input and goes through dy_mc_trust_check (the duchy's trusted_ca
 * roots + party table: the leaf must be issued by the root of "duchies/{id}").  When the DER
 * is absent the caller's fetch_cert (the Kingdom's public Certificates.GetCertificate)
 * supplies it, with the same check.
 */
#include "kingdom_fx.h"

#include "blob.h"
#include "crypto/ecies.h"
#include "crypto/ec.h"
#include "crypto/sig.h"
#include "mc_util.h"
#include "secrets.h"
#include "stages.h"
#include "wire.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/pem.h>
#include <openssl/x509.h>

#include "duchy.pb-c.h"
#include "public.pb-c.h"
#include "system.pb-c.h"

#define SYS(x) Wfa__Measurement__System__V1alpha__##x
#define SYSE(x) WFA__MEASUREMENT__SYSTEM__V1ALPHA__##x
#define V2(x) Wfa__Measurement__Api__V2alpha__##x
#define V2E(x) WFA__MEASUREMENT__API__V2ALPHA__##x
#define RP(x) SYSE(COMPUTATION_PARTICIPANT__REQUISITION_PARAMS__##x)

static const uint8_t s_generator[33] = {
    0x03, 0x6b, 0x17, 0xd1, 0xf2, 0xe1, 0x2c, 0x42, 0x47, 0xf8, 0xbc, 0xe6, 0xe5, 0x63, 0xa4,
    0x40, 0xf2, 0x77, 0x03, 0x7d, 0x81, 0x2d, 0xeb, 0x33, 0xa0, 0xf4, 0xa1, 0x39, 0x45, 0xd8,
    0x98, 0xc2, 0x96,
};

static int s_fail(char *errbuf, size_t errlen, char code[48], const char *c, int rc,
                  const char *fmt, ...) DY_PRINTF(6, 7);
static int s_fail(char *errbuf, size_t errlen, char code[48], const char *c, int rc,
                  const char *fmt, ...)
{
    if (code != NULL)
        snprintf(code, 48, "%s", c);
    if (errbuf != NULL && errlen > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(errbuf, errlen, fmt, ap);
        va_end(ap);
    }
    return rc;
}

dy_kf_class_t dy_kf_classify(int code)
{
    switch (code) {
    case DY_WIRE_STATUS_OK:
    case DY_WIRE_STATUS_ALREADY_EXISTS: /* §8: treated as success */
        return DY_KF_OK;
    case DY_WIRE_STATUS_UNAVAILABLE:
    case DY_WIRE_STATUS_DEADLINE_EXCEEDED:
    case DY_WIRE_STATUS_ABORTED:
    case DY_WIRE_STATUS_CANCELLED:          /* §8: like UNAVAILABLE */
    case DY_WIRE_STATUS_RESOURCE_EXHAUSTED: /* §8: retry after >= 1 s */
        return DY_KF_RETRY;
    case DY_WIRE_STATUS_FAILED_PRECONDITION:
        return DY_KF_CHECK_ENDED;
    default:
        return DY_KF_PERMANENT;
    }
}

bool dy_kf_state_terminal(int state)
{
    return state == SYSE(COMPUTATION__STATE__SUCCEEDED) || state == SYSE(COMPUTATION__STATE__FAILED)
           || state == SYSE(COMPUTATION__STATE__CANCELLED);
}

static int s_key_message(dy_buf_t *msg, const char *label, const char *computation_name,
                         const uint8_t pub[33])
{
    dy_part_t parts[2] = {{computation_name, strlen(computation_name)}, {pub, 33}};
    return dy_sig_message(msg, label, parts, 2);
}

int dy_kf_key_sign(EVP_PKEY *key, const char *label, const char *computation_name,
                   const uint8_t pub[33], uint8_t sig[72], size_t *ret_len)
{
    dy_buf_t msg = {0};
    int rc = s_key_message(&msg, label, computation_name, pub);
    if (rc == 0)
        rc = dy_sig_sign(key, msg.data, msg.len, sig, ret_len);
    dy_buf_free(&msg);
    return rc;
}

int dy_kf_key_verify(EVP_PKEY *key, const char *label, const char *computation_name,
                     const uint8_t pub[33], const uint8_t *sig, size_t sig_len)
{
    dy_buf_t msg = {0};
    int rc = s_key_message(&msg, label, computation_name, pub);
    if (rc == 0)
        rc = dy_sig_verify(key, msg.data, msg.len, sig, sig_len) == 0 ? 0 : -EBADMSG;
    dy_buf_free(&msg);
    return rc;
}

int dy_kf_requisition_params(int protocol, const char *cert_name, const char *computation_name,
                             const uint8_t *pub, EVP_PKEY *sign_key, dy_buf_t *out)
{
    if (cert_name == NULL || computation_name == NULL)
        return -EINVAL;
    SYS(ComputationParticipant__RequisitionParams) rp = SYSE(COMPUTATION_PARTICIPANT__REQUISITION_PARAMS__INIT);
    SYS(ComputationParticipant__RequisitionParams__LiquidLegionsV2) ll = RP(LIQUID_LEGIONS_V2__INIT);
    SYS(ComputationParticipant__RequisitionParams__HonestMajorityShareShuffle) hm =
        RP(HONEST_MAJORITY_SHARE_SHUFFLE__INIT);
    rp.duchy_certificate = (char *)cert_name;
    uint8_t sig[DY_SIG_MAX], keybytes[128];
    size_t siglen = 0, klen = 0;
    int rc;
    switch (protocol) {
    case DY_PROTO_LLV2:
    case DY_PROTO_RO_LLV2: {
        if (pub == NULL || sign_key == NULL)
            return -EINVAL;
        V2(ElGamalPublicKey) k = V2E(EL_GAMAL_PUBLIC_KEY__INIT);
        k.elliptic_curve_id = DY_EC_NID;
        k.generator.data = (uint8_t *)s_generator;
        k.generator.len = 33;
        k.element.data = (uint8_t *)pub;
        k.element.len = 33;
        klen = wfa__measurement__api__v2alpha__el_gamal_public_key__pack(&k, keybytes);
        if ((rc = dy_kf_key_sign(sign_key, DY_KF_LABEL_ELGAMAL, computation_name, pub, sig,
                                 &siglen))
            < 0)
            return rc;
        ll.el_gamal_public_key.data = keybytes;
        ll.el_gamal_public_key.len = klen;
        ll.el_gamal_public_key_signature.data = sig;
        ll.el_gamal_public_key_signature.len = siglen;
        ll.el_gamal_public_key_signature_algorithm_oid = (char *)DY_SIG_OID;
        if (protocol == DY_PROTO_LLV2) {
            rp.protocol_case = RP(PROTOCOL_LIQUID_LEGIONS_V2);
            rp.liquid_legions_v2 = &ll;
        } else {
            rp.protocol_case = RP(PROTOCOL_REACH_ONLY_LIQUID_LEGIONS_V2);
            rp.reach_only_liquid_legions_v2 = &ll;
        }
        break;
    }
    case DY_PROTO_HMSS:
        if (pub != NULL) {
            if (sign_key == NULL)
                return -EINVAL;
            V2(EncryptionPublicKey) k = V2E(ENCRYPTION_PUBLIC_KEY__INIT);
            k.format = V2E(ENCRYPTION_PUBLIC_KEY__FORMAT__ECIES_P256);
            k.data.data = (uint8_t *)pub;
            k.data.len = 33;
            klen = wfa__measurement__api__v2alpha__encryption_public_key__pack(&k, keybytes);
            if ((rc = dy_kf_key_sign(sign_key, DY_KF_LABEL_HMSS_KEY, computation_name, pub, sig,
                                     &siglen))
                < 0)
                return rc;
            hm.tink_public_key.data = keybytes;
            hm.tink_public_key.len = klen;
            hm.tink_public_key_signature.data = sig;
            hm.tink_public_key_signature.len = siglen;
            hm.tink_public_key_signature_algorithm_oid = (char *)DY_SIG_OID;
        }
        rp.protocol_case = RP(PROTOCOL_HONEST_MAJORITY_SHARE_SHUFFLE);
        rp.honest_majority_share_shuffle = &hm;
        break;
    default:
        return -EINVAL;
    }
    size_t n = protobuf_c_message_get_packed_size(&rp.base);
    uint8_t *dst = dy_buf_extend(out, n);
    if (dst == NULL)
        return -ENOMEM;
    protobuf_c_message_pack(&rp.base, dst);
    return 0;
}

static const dy_participant_t *s_find(const dy_details_t *d, const char *id)
{
    for (size_t i = 0; i < d->nparticipants; i++)
        if (strcmp(d->participants[i].id, id) == 0)
            return &d->participants[i];
    return NULL;
}

static void s_sha256_nonce(uint64_t nonce, uint8_t out[32])
{
    uint8_t be[8];
    for (int i = 0; i < 8; i++)
        be[i] = (uint8_t)(nonce >> (56 - 8 * i));
    unsigned int n = 0;
    EVP_Digest(be, 8, out, &n, EVP_sha256(), NULL);
}

/* Check 3 for one participant. */
static int s_check_participant(const dy_details_t *d, const SYS(ComputationParticipant) * cp,
                               const dy_mc_trust_t *trust, dy_kf_fetch_cert_fn fetch_cert,
                               void *arg, char code[48], char *errbuf, size_t errlen)
{
    const char *slash = cp->name ? strrchr(cp->name, '/') : NULL;
    const char *id = slash ? slash + 1 : "";
    const dy_participant_t *mine = s_find(d, id);
    if (mine == NULL || !mine->has_elgamal_key)
        return s_fail(errbuf, errlen, code, "key_changed", -EBADMSG,
                      "participant %s has no stored key", id);
    const SYS(ComputationParticipant__RequisitionParams) *rp = cp->requisition_params;
    const SYS(ComputationParticipant__RequisitionParams__LiquidLegionsV2) *ll = NULL;
    if (rp != NULL && rp->protocol_case == RP(PROTOCOL_LIQUID_LEGIONS_V2))
        ll = rp->liquid_legions_v2;
    else if (rp != NULL && rp->protocol_case == RP(PROTOCOL_REACH_ONLY_LIQUID_LEGIONS_V2))
        ll = rp->reach_only_liquid_legions_v2;
    if (ll == NULL)
        return s_fail(errbuf, errlen, code, "bad_key_signature", -EBADMSG,
                      "participant %s has no LLv2 params", id);
    V2(ElGamalPublicKey) *k = wfa__measurement__api__v2alpha__el_gamal_public_key__unpack(
        NULL, ll->el_gamal_public_key.len, ll->el_gamal_public_key.data);
    bool same = k != NULL && k->element.len == 33
                && memcmp(k->element.data, mine->elgamal_key, 33) == 0;
    if (k != NULL)
        wfa__measurement__api__v2alpha__el_gamal_public_key__free_unpacked(k, NULL);
    if (!same)
        return s_fail(errbuf, errlen, code, "key_changed", -EBADMSG,
                      "participant %s's key differs from the stored one", id);
    if (ll->el_gamal_public_key_signature_algorithm_oid == NULL
        || strcmp(ll->el_gamal_public_key_signature_algorithm_oid, DY_SIG_OID) != 0)
        return s_fail(errbuf, errlen, code, "bad_key_signature", -EBADMSG,
                      "participant %s: signature algorithm is not ECDSA-SHA256", id);
    char party[DY_ID_MAX + 16], prefix[DY_ID_MAX + 32];
    snprintf(party, sizeof(party), "duchies/%s", id);
    snprintf(prefix, sizeof(prefix), "duchies/%s/certificates/", id);
    if (rp->duchy_certificate == NULL || strncmp(rp->duchy_certificate, prefix, strlen(prefix)) != 0)
        return s_fail(errbuf, errlen, code, "untrusted_certificate", -EACCES,
                      "participant %s: certificate is not one of its own", id);
    dy_buf_t der = {0};
    int rc = 0;
    if (rp->duchy_certificate_der.len > 0)
        rc = dy_buf_append(&der, rp->duchy_certificate_der.data, rp->duchy_certificate_der.len);
    else if (fetch_cert != NULL)
        rc = fetch_cert(rp->duchy_certificate, &der, arg);
    else
        rc = -ENOENT;
    if (rc < 0) {
        dy_buf_free(&der);
        return s_fail(errbuf, errlen, code, "untrusted_certificate", rc == -ENOENT ? -EACCES : rc,
                      "participant %s: certificate %s unavailable", id, rp->duchy_certificate);
    }
    X509 *cert = dy_mc_cert_from_der(der.data, der.len);
    dy_buf_free(&der);
    char why[160] = "";
    if (cert == NULL || dy_mc_trust_check(trust, cert, party, why, sizeof(why)) < 0) {
        X509_free(cert);
        return s_fail(errbuf, errlen, code, "untrusted_certificate", -EACCES,
                      "participant %s: certificate refused: %s", id,
                      cert ? why : "does not parse");
    }
    EVP_PKEY *pk = X509_get0_pubkey(cert);
    rc = pk == NULL ? -EBADMSG
                    : dy_kf_key_verify(pk, DY_KF_LABEL_ELGAMAL, d->name, mine->elgamal_key,
                                       ll->el_gamal_public_key_signature.data,
                                       ll->el_gamal_public_key_signature.len);
    X509_free(cert);
    if (rc < 0)
        return s_fail(errbuf, errlen, code, "bad_key_signature", -EBADMSG,
                      "participant %s: key signature does not verify", id);
    return 0;
}

int dy_kf_confirm_check(const dy_details_t *d, const uint8_t *computation, size_t len,
                        const dy_mc_trust_t *trust, dy_kf_has_data_fn has_data,
                        dy_kf_fetch_cert_fn fetch_cert, void *arg, char code[48], char *errbuf,
                        size_t errlen)
{
    if (code != NULL)
        code[0] = '\0';
    SYS(Computation) *k = wfa__measurement__system__v1alpha__computation__unpack(NULL, len,
                                                                                computation);
    if (k == NULL)
        return s_fail(errbuf, errlen, code, "bad_computation", -EBADMSG,
                      "Kingdom computation does not parse");
    int rc = 0;
    /* 1. nonces: each fulfilled requisition's hash is a distinct spec hash, same count */
    bool *used = calloc(d->nnonce_hashes + 1, sizeof(bool));
    size_t nfulfilled = 0;
    if (used == NULL) {
        rc = -ENOMEM;
        goto out;
    }
    for (size_t i = 0; i < k->n_requisitions; i++) {
        const SYS(Requisition) *r = k->requisitions[i];
        if (r->state != SYSE(REQUISITION__STATE__FULFILLED))
            continue;
        nfulfilled++;
        uint8_t h[32];
        s_sha256_nonce(r->nonce, h);
        size_t j;
        for (j = 0; j < d->nnonce_hashes; j++)
            if (!used[j] && memcmp(d->nonce_hashes[j], h, 32) == 0)
                break;
        if (j == d->nnonce_hashes) {
            rc = s_fail(errbuf, errlen, code, "nonce_mismatch", -EBADMSG,
                        "requisition %s: SHA-256 of its nonce is not among the spec's",
                        r->name ? r->name : "?");
            goto out;
        }
        used[j] = true;
    }
    if (nfulfilled != d->nnonce_hashes) {
        rc = s_fail(errbuf, errlen, code, "nonce_mismatch", -EBADMSG,
                    "%zu fulfilled requisitions for %zu spec nonce hashes", nfulfilled,
                    d->nnonce_hashes);
        goto out;
    }
    /* 2. data present for the requisitions fulfilled here */
    char fulfiller[DY_ID_MAX + 96];
    snprintf(fulfiller, sizeof(fulfiller), "%s/participants/%s", d->name, d->my_id);
    for (size_t i = 0; i < k->n_requisitions; i++) {
        const SYS(Requisition) *r = k->requisitions[i];
        if (r->state != SYSE(REQUISITION__STATE__FULFILLED)
            || r->fulfilling_computation_participant == NULL
            || strcmp(r->fulfilling_computation_participant, fulfiller) != 0)
            continue;
        const char *slash = r->name ? strrchr(r->name, '/') : NULL;
        if (slash == NULL || has_data == NULL || !has_data(slash + 1, arg)) {
            rc = s_fail(errbuf, errlen, code, "requisition_data_missing", -ENOENT,
                        "requisition %s was fulfilled here but its data is not stored",
                        r->name ? r->name : "?");
            goto out;
        }
    }
    /* 3. every participant's key signature and certificate */
    if (k->n_computation_participants != d->nparticipants) {
        rc = s_fail(errbuf, errlen, code, "key_changed", -EBADMSG, "participants changed");
        goto out;
    }
    for (size_t i = 0; i < k->n_computation_participants; i++)
        if ((rc = s_check_participant(d, k->computation_participants[i], trust, fetch_cert, arg,
                                      code, errbuf, errlen))
            < 0)
            goto out;
out:
    free(used);
    wfa__measurement__system__v1alpha__computation__free_unpacked(k, NULL);
    return rc;
}

int dy_kf_result_seal(EVP_PKEY *sign_key, const uint8_t mc_pub[33], const char *computation_name,
                      const char *aggregator_id, const uint8_t *result, size_t len,
                      dy_buf_t *out)
{
    if (sign_key == NULL || mc_pub == NULL || computation_name == NULL || aggregator_id == NULL)
        return -EINVAL;
    dy_buf_t info = {0}, x = {0}, msg = {0};
    dy_part_t ip = {computation_name, strlen(computation_name)};
    int rc = dy_sig_message(&info, DY_KF_LABEL_RESULT, &ip, 1);
    if (rc == 0)
        rc = dy_ecies_encrypt(mc_pub, 33, info.data, info.len, result, len, &x);
    dy_part_t sp[3] = {{computation_name, strlen(computation_name)},
                       {aggregator_id, strlen(aggregator_id)},
                       {x.data, x.len}};
    if (rc == 0)
        rc = dy_sig_message(&msg, DY_KF_LABEL_RESULT_SIG, sp, 3);
    uint8_t sig[DY_SIG_MAX];
    size_t siglen = 0;
    if (rc == 0)
        rc = dy_sig_sign(sign_key, msg.data, msg.len, sig, &siglen);
    if (rc == 0) {
        V2(EncryptedSignedResult) e = V2E(ENCRYPTED_SIGNED_RESULT__INIT);
        e.ciphertext.data = x.data;
        e.ciphertext.len = x.len;
        e.signature.data = sig;
        e.signature.len = siglen;
        e.signature_algorithm_oid = (char *)DY_SIG_OID;
        size_t n = wfa__measurement__api__v2alpha__encrypted_signed_result__get_packed_size(&e);
        uint8_t *dst = dy_buf_extend(out, n);
        if (dst == NULL)
            rc = -ENOMEM;
        else
            wfa__measurement__api__v2alpha__encrypted_signed_result__pack(&e, dst);
    }
    dy_buf_free(&info);
    dy_buf_free(&x);
    dy_buf_free(&msg);
    return rc;
}

int dy_kf_secrets_path(const dy_blobdir_t *bd, const char *computation_id, int stage, char *out,
                       size_t cap)
{
    if (bd == NULL || !dy_blob_name_ok(computation_id) || stage < 0)
        return -EINVAL;
    int n = snprintf(out, cap, "%s/%s/%d/0/%s", dy_blobdir_path(bd), computation_id, stage,
                     DY_KF_SECRETS_SLOT);
    return n < 0 || (size_t)n >= cap ? -ENAMETOOLONG : 0;
}

int dy_kf_secrets_read_file(const char *path, const uint8_t master[32], const char *computation_id,
                            dy_buf_t *out)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? -ENOENT : -EIO;
    uint8_t buf[4096];
    size_t n = 0;
    for (;;) {
        ssize_t r = read(fd, buf + n, sizeof(buf) - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        n += (size_t)r;
        if (n == sizeof(buf))
            break;
    }
    close(fd);
    int rc = n == sizeof(buf) ? -EBADMSG
                              : dy_secrets_open(master, computation_id, buf, n, out);
    OPENSSL_cleanse(buf, sizeof(buf));
    return rc;
}

int dy_kf_secrets_new_hmss(const uint8_t master[32], const char *computation_id, dy_buf_t *out)
{
    uint8_t seed[DY_KF_SEED_LEN], priv[32], pub[33], pt[256];
    int rc = dy_rand_bytes(seed, sizeof(seed));
    if (rc == 0)
        rc = dy_ecies_keygen(priv, pub);
    if (rc == 0) {
        Halo__Internal__V1__Secrets s = HALO__INTERNAL__V1__SECRETS__INIT;
        s.hmss_enc_private.data = priv;
        s.hmss_enc_private.len = 32;
        s.hmss_enc_public.data = pub;
        s.hmss_enc_public.len = 33;
        s.hmss_seed.data = seed;
        s.hmss_seed.len = sizeof(seed);
        size_t n = halo__internal__v1__secrets__pack(&s, pt);
        rc = dy_secrets_seal(master, computation_id, pt, n, out);
    }
    OPENSSL_cleanse(seed, sizeof(seed));
    OPENSSL_cleanse(priv, sizeof(priv));
    OPENSSL_cleanse(pt, sizeof(pt));
    return rc < 0 ? -EIO : 0;
}

EVP_PKEY *dy_kf_load_key(const char *path)
{
    FILE *f = path ? fopen(path, "r") : NULL;
    if (f == NULL)
        return NULL;
    EVP_PKEY *pk = PEM_read_PrivateKey(f, NULL, NULL, NULL);
    fclose(f);
    return pk;
}
