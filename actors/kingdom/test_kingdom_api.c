/* test_kingdom_api.c - the Kingdom's handlers (kingdom_api.c) over a temporary database:
 * each RPC's codes per PROTOCOL.md §8 (party type, names, owners, fields, absent and
 * invisible computations, state, etags), §9 visibility, StreamActiveComputations tokens
 * (strictly after, ascending, reappearing on update, batches, malformed tokens), §6.3
 * replays, CreateMeasurement idempotency, and full LLv2 and HMSS flows with the public views
 * an MC and an EDP read.  Certificates come from a stub lookup.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <unistd.h>

#include "kingdom_api.h"
#include "public.pb-c.h"
#include "system.pb-c.h"

#define SYS_(x) Wfa__Measurement__System__V1alpha__##x
#define API_(x) Wfa__Measurement__Api__V2alpha__##x
#define SYSD(x) (&wfa__measurement__system__v1alpha__##x##__descriptor)
#define APID(x) (&wfa__measurement__api__v2alpha__##x##__descriptor)

#define M_SYS "/wfa.measurement.system.v1alpha."
#define M_PUB "/wfa.measurement.api.v2alpha."

#define MC "measurementConsumers/mc1"
#define EDP1 "dataProviders/edp1"
#define EDP2 "dataProviders/edp2"
#define W1 "duchies/worker1"
#define W2 "duchies/worker2"
#define AG "duchies/aggregator"
#define OUT "duchies/outsider"

typedef struct {
    char path[256];
    dy_kd_db_t *db;
    dy_kd_conf_t conf;
    dy_kd_api_t api;
    int64_t clock;   /* fake clock, microseconds; 0 = frozen at 1000 */
} fx_t;

static int64_t s_clock(void *arg)
{
    fx_t *fx = arg;
    return fx->clock;
}

/* Certificates: every "<kind>/<id>/certificates/sign" is known, with a fake DER. */
static int s_cert_stub(void *arg, const char *name, uint8_t **ret_der, size_t *ret_len)
{
    (void)arg;
    size_t n = strlen(name);
    if (n < 5 || strcmp(name + n - 5, "/sign") != 0)
        return -ENOENT;
    *ret_der = (uint8_t *)strdup(name);
    *ret_len = n;
    return *ret_der != NULL ? 0 : -ENOMEM;
}

static int setup(void **state)
{
    fx_t *fx = calloc(1, sizeof(*fx));
    if (fx == NULL)
        return -1;
    snprintf(fx->path, sizeof(fx->path), "/tmp/test_kingdom_api.%d.XXXXXX", (int)getpid());
    int fd = mkstemp(fx->path);
    if (fd < 0)
        return -1;
    close(fd);
    char err[256];
    fx->db = dy_kd_db_open(fx->path, 2000, err, sizeof(err));
    if (fx->db == NULL) {
        fprintf(stderr, "%s\n", err);
        return -1;
    }
    fx->clock = 1000;
    dy_kd_db_set_clock(fx->db, s_clock, fx);
    dy_kd_conf_defaults(&fx->conf);
    snprintf(fx->conf.duchies[0].id, DY_KD_ID_MAX, "worker1");
    snprintf(fx->conf.duchies[1].id, DY_KD_ID_MAX, "worker2");
    snprintf(fx->conf.duchies[2].id, DY_KD_ID_MAX, "aggregator");
    fx->conf.duchies[2].aggregator = true;
    fx->conf.nduchies = 3;
    fx->conf.cert_lookup = s_cert_stub;
    fx->api.db = fx->db;
    fx->api.conf = &fx->conf;
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    fx_t *fx = *state;
    dy_kd_db_destroy(&fx->db);
    char p[300];
    unlink(fx->path);
    snprintf(p, sizeof(p), "%s-wal", fx->path);
    unlink(p);
    snprintf(p, sizeof(p), "%s-shm", fx->path);
    unlink(p);
    free(fx);
    return 0;
}

/* ---- call helpers ---------------------------------------------------------------------- */

static dy_kd_status_t s_st;

/* Calls method with msg; returns the status code; *ret (if not NULL) gets the response
 * unpacked with desc (caller frees). */
static int s_call(fx_t *fx, const char *method, const char *caller, const ProtobufCMessage *msg,
                  const ProtobufCMessageDescriptor *desc, void **ret)
{
    dy_buf_t req = {0}, resp = {0};
    size_t n = protobuf_c_message_get_packed_size(msg);
    assert_int_equal(dy_buf_reserve(&req, n + 1), 0);
    req.len = protobuf_c_message_pack(msg, req.data);
    memset(&s_st, 0, sizeof(s_st));
    int rc = dy_kd_call(&fx->api, method, caller, req.data, req.len, &resp, &s_st);
    dy_buf_free(&req);
    if (rc < 0) {
        assert_int_not_equal(s_st.code, 0);
        assert_null(resp.data);
        return (int)s_st.code;
    }
    if (ret != NULL) {
        *ret = protobuf_c_message_unpack(desc, NULL, resp.len, resp.data);
        assert_non_null(*ret);
    }
    dy_buf_free(&resp);
    return 0;
}

static void s_free(void *m)
{
    if (m != NULL)
        protobuf_c_message_free_unpacked(m, NULL);
}

static uint64_t s_nonce(int i)
{
    return 0xabc000ull + (uint64_t)i;
}

/* A CreateMeasurement request for nedp EDPs: proto 1 = LLv2, 3 = RO-LLv2, 4 = HMSS (public
 * oneof numbers); packed into out. */
static void s_create_req(dy_buf_t *out, int proto, bool reach, int nedp, const char *request_id,
                         const char *parent)
{
    uint8_t hashes[4][32];
    ProtobufCBinaryData hb[4];
    API_(MeasurementSpec) spec;
    protobuf_c_message_init(APID(measurement_spec), &spec);
    API_(MeasurementSpec__Reach) r;
    protobuf_c_message_init(APID(measurement_spec__reach), &r);
    API_(MeasurementSpec__ReachAndFrequency) rf;
    protobuf_c_message_init(APID(measurement_spec__reach_and_frequency), &rf);
    rf.maximum_frequency = 5;
    if (reach) {
        spec.measurement_type_case = 7;
        spec.reach = &r;
    } else {
        spec.measurement_type_case = 4;
        spec.reach_and_frequency = &rf;
    }
    Google__Protobuf__Any mpk;
    protobuf_c_message_init(&google__protobuf__any__descriptor, &mpk);
    mpk.type_url = "type.googleapis.com/wfa.measurement.api.v2alpha.EncryptionPublicKey";
    mpk.value.data = (uint8_t *)"MCKEY";
    mpk.value.len = 5;
    spec.measurement_public_key = &mpk;
    for (int i = 0; i < nedp; i++) {
        assert_int_equal(dy_kd_nonce_hash(s_nonce(i), hashes[i]), 0);
        hb[i].data = hashes[i];
        hb[i].len = 32;
    }
    spec.n_nonce_hashes = (size_t)nedp;
    spec.nonce_hashes = hb;
    uint8_t specbuf[512];
    size_t speclen = protobuf_c_message_pack(&spec.base, specbuf);

    Google__Protobuf__Any sany;
    protobuf_c_message_init(&google__protobuf__any__descriptor, &sany);
    sany.type_url = "type.googleapis.com/wfa.measurement.api.v2alpha.MeasurementSpec";
    sany.value.data = specbuf;
    sany.value.len = speclen;
    API_(SignedMessage) sm;
    protobuf_c_message_init(APID(signed_message), &sm);
    sm.signature.data = (uint8_t *)"SIG";
    sm.signature.len = 3;
    sm.message = &sany;

    API_(Measurement__DataProviderEntry) e[4], *ep[4];
    API_(Measurement__DataProviderEntry__Value) v[4];
    API_(EncryptedMessage) em[4];
    char keys[4][32];
    for (int i = 0; i < nedp; i++) {
        protobuf_c_message_init(APID(measurement__data_provider_entry), &e[i]);
        protobuf_c_message_init(APID(measurement__data_provider_entry__value), &v[i]);
        protobuf_c_message_init(APID(encrypted_message), &em[i]);
        snprintf(keys[i], sizeof(keys[i]), "dataProviders/edp%d", i + 1);
        e[i].key = keys[i];
        e[i].value = &v[i];
        v[i].data_provider_certificate = "dataProviders/x/certificates/sign";
        v[i].nonce_hash.data = hashes[i];
        v[i].nonce_hash.len = 32;
        em[i].ciphertext.data = (uint8_t *)keys[i];
        em[i].ciphertext.len = strlen(keys[i]);
        v[i].encrypted_requisition_spec = &em[i];
        ep[i] = &e[i];
    }
    API_(ProtocolConfig) pc;
    API_(ProtocolConfig__Protocol) pp, *ppp = &pp;
    API_(ProtocolConfig__LiquidLegionsV2) ll;
    API_(ProtocolConfig__ReachOnlyLiquidLegionsV2) ro;
    API_(ProtocolConfig__HonestMajorityShareShuffle) hm;
    protobuf_c_message_init(APID(protocol_config), &pc);
    protobuf_c_message_init(APID(protocol_config__protocol), &pp);
    protobuf_c_message_init(APID(protocol_config__liquid_legions_v2), &ll);
    protobuf_c_message_init(APID(protocol_config__reach_only_liquid_legions_v2), &ro);
    protobuf_c_message_init(APID(protocol_config__honest_majority_share_shuffle), &hm);
    pp.protocol_case = proto;
    if (proto == 1)
        pp.liquid_legions_v2 = &ll;
    else if (proto == 3)
        pp.reach_only_liquid_legions_v2 = &ro;
    else if (proto == 4)
        pp.honest_majority_share_shuffle = &hm;
    API_(ProtocolConfig__TrusTee) tt;
    protobuf_c_message_init(APID(protocol_config__trus_tee), &tt);
    if (proto == 5)
        pp.trus_tee = &tt;
    ll.noise_mechanism = 3; /* NONE */
    pc.n_protocols = 1;
    pc.protocols = &ppp;

    API_(Measurement) m;
    protobuf_c_message_init(APID(measurement), &m);
    m.measurement_spec = &sm;
    m.n_data_providers = (size_t)nedp;
    m.data_providers = ep;
    m.protocol_config = &pc;
    m.measurement_consumer_certificate = "measurementConsumers/mc1/certificates/sign";
    API_(CreateMeasurementRequest) rq;
    protobuf_c_message_init(APID(create_measurement_request), &rq);
    rq.measurement = &m;
    rq.request_id = (char *)request_id;
    rq.parent = (char *)parent;
    out->len = 0;
    assert_int_equal(dy_buf_reserve(out, protobuf_c_message_get_packed_size(&rq.base)), 0);
    out->len = protobuf_c_message_pack(&rq.base, out->data);
}

/* Creates a measurement; returns it (caller frees) and writes the computation id. */
static API_(Measurement) *s_create(fx_t *fx, int proto, bool reach, int nedp, const char *rid,
                                   char cid[16])
{
    dy_buf_t req = {0}, resp = {0};
    s_create_req(&req, proto, reach, nedp, rid, "measurementConsumers/mc1");
    int rc = dy_kd_call(&fx->api, M_PUB "Measurements/CreateMeasurement", MC, req.data,
                        req.len, &resp, &s_st);
    if (rc != 0)
        fail_msg("create: %d %s", s_st.code, s_st.message);
    API_(Measurement) *m = (void *)protobuf_c_message_unpack(APID(measurement), NULL, resp.len,
                                                             resp.data);
    assert_non_null(m);
    dy_buf_free(&req);
    dy_buf_free(&resp);
    const char *slash = strrchr(m->name, '/');
    assert_non_null(slash);
    snprintf(cid, 16, "%s", slash + 1);
    return m;
}

static int s_create_raw(fx_t *fx, const char *caller, int proto, bool reach, int nedp,
                        const char *parent)
{
    dy_buf_t req = {0}, resp = {0};
    s_create_req(&req, proto, reach, nedp, "", parent);
    int rc = dy_kd_call(&fx->api, M_PUB "Measurements/CreateMeasurement", caller, req.data,
                        req.len, &resp, &s_st);
    dy_buf_free(&req);
    dy_buf_free(&resp);
    return rc == 0 ? 0 : (int)s_st.code;
}

static SYS_(Computation) *s_get(fx_t *fx, const char *caller, const char *cid)
{
    char name[64];
    snprintf(name, sizeof(name), "computations/%s", cid);
    SYS_(GetComputationRequest) rq;
    protobuf_c_message_init(SYSD(get_computation_request), &rq);
    rq.name = name;
    void *c = NULL;
    int code = s_call(fx, M_SYS "Computations/GetComputation", caller, &rq.base,
                      SYSD(computation), &c);
    if (code != 0)
        fail_msg("get: %d %s", code, s_st.message);
    return c;
}

/* SetParticipantRequisitionParams with a well-formed key for proto (system oneof 3/4/6). */
static int s_set_params(fx_t *fx, const char *caller, const char *cid, const char *duchy,
                        int pcase, const char *cert, const char *etag, uint8_t keybyte)
{
    char name[96];
    snprintf(name, sizeof(name), "computations/%s/participants/%s", cid, duchy);
    uint8_t pt[33];
    memset(pt, keybyte, sizeof(pt));
    pt[0] = 2;
    uint8_t keybuf[128];
    size_t keylen;
    if (pcase == 6) {
        API_(EncryptionPublicKey) ek;
        protobuf_c_message_init(APID(encryption_public_key), &ek);
        ek.format = 100;
        ek.data.data = pt;
        ek.data.len = 33;
        keylen = protobuf_c_message_pack(&ek.base, keybuf);
    } else {
        API_(ElGamalPublicKey) eg;
        protobuf_c_message_init(APID(el_gamal_public_key), &eg);
        eg.elliptic_curve_id = 415;
        eg.generator.data = pt;
        eg.generator.len = 33;
        eg.element.data = pt;
        eg.element.len = 33;
        keylen = protobuf_c_message_pack(&eg.base, keybuf);
    }
    SYS_(ComputationParticipant__RequisitionParams) rp;
    SYS_(ComputationParticipant__RequisitionParams__LiquidLegionsV2) ll;
    SYS_(ComputationParticipant__RequisitionParams__HonestMajorityShareShuffle) hm;
    protobuf_c_message_init(SYSD(computation_participant__requisition_params), &rp);
    protobuf_c_message_init(SYSD(computation_participant__requisition_params__liquid_legions_v2),
                            &ll);
    protobuf_c_message_init(
        SYSD(computation_participant__requisition_params__honest_majority_share_shuffle), &hm);
    rp.duchy_certificate = (char *)cert;
    rp.protocol_case = pcase;
    ll.el_gamal_public_key.data = keybuf;
    ll.el_gamal_public_key.len = keylen;
    ll.el_gamal_public_key_signature.data = (uint8_t *)"SIG";
    ll.el_gamal_public_key_signature.len = 3;
    ll.el_gamal_public_key_signature_algorithm_oid = "1.2.840.10045.4.3.2";
    bool agg = strcmp(duchy, "aggregator") == 0;
    if (!agg) {
        hm.tink_public_key.data = keybuf;
        hm.tink_public_key.len = keylen;
        hm.tink_public_key_signature.data = (uint8_t *)"SIG";
        hm.tink_public_key_signature.len = 3;
    }
    if (pcase == 3)
        rp.liquid_legions_v2 = &ll;
    else if (pcase == 4)
        rp.reach_only_liquid_legions_v2 = &ll;
    else if (pcase == 6)
        rp.honest_majority_share_shuffle = &hm;
    SYS_(SetParticipantRequisitionParamsRequest) rq;
    protobuf_c_message_init(SYSD(set_participant_requisition_params_request), &rq);
    rq.name = name;
    rq.requisition_params = pcase < 0 ? NULL : &rp;
    rq.etag = (char *)(etag != NULL ? etag : "");
    void *resp = NULL;
    int code = s_call(fx, M_SYS "ComputationParticipants/SetParticipantRequisitionParams", caller,
                      &rq.base, SYSD(computation_participant), &resp);
    s_free(resp);
    return code;
}

static void s_all_params(fx_t *fx, const char *cid, int pcase)
{
    static const char *const d[3] = {"worker1", "worker2", "aggregator"};
    for (int i = 0; i < 3; i++) {
        char caller[64], cert[96];
        snprintf(caller, sizeof(caller), "duchies/%s", d[i]);
        snprintf(cert, sizeof(cert), "duchies/%s/certificates/sign", d[i]);
        assert_int_equal(s_set_params(fx, caller, cid, d[i], pcase, cert, NULL, (uint8_t)i), 0);
    }
}

static int s_fulfill(fx_t *fx, const char *caller, const char *cid, const char *rid,
                     uint64_t nonce, const char *etag)
{
    char name[96];
    snprintf(name, sizeof(name), "computations/%s/requisitions/%s", cid, rid);
    SYS_(FulfillRequisitionRequest) rq;
    protobuf_c_message_init(SYSD(fulfill_requisition_request), &rq);
    rq.name = name;
    rq.nonce = nonce;
    rq.etag = (char *)(etag != NULL ? etag : "");
    void *resp = NULL;
    int code = s_call(fx, M_SYS "Requisitions/FulfillRequisition", caller, &rq.base,
                      SYSD(requisition), &resp);
    s_free(resp);
    return code;
}

/* The requisition ids of a computation, in order, and the nonce index of each. */
static size_t s_reqs(fx_t *fx, const char *cid, char rids[4][16], int idx[4])
{
    SYS_(Computation) *c = s_get(fx, W1, cid);
    size_t n = c->n_requisitions;
    for (size_t i = 0; i < n; i++) {
        snprintf(rids[i], 16, "%s", strrchr(c->requisitions[i]->name, '/') + 1);
        idx[i] = -1;
        for (int k = 0; k < 4; k++) {
            uint8_t h[32];
            dy_kd_nonce_hash(s_nonce(k), h);
            if (memcmp(h, c->requisitions[i]->nonce_hash.data, 32) == 0)
                idx[i] = k;
        }
        assert_true(idx[i] >= 0);
    }
    s_free(c);
    return n;
}

static int s_confirm(fx_t *fx, const char *caller, const char *cid, const char *duchy,
                     const char *etag)
{
    char name[96];
    snprintf(name, sizeof(name), "computations/%s/participants/%s", cid, duchy);
    SYS_(ConfirmComputationParticipantRequest) rq;
    protobuf_c_message_init(SYSD(confirm_computation_participant_request), &rq);
    rq.name = name;
    rq.etag = (char *)(etag != NULL ? etag : "");
    return s_call(fx, M_SYS "ComputationParticipants/ConfirmComputationParticipant", caller,
                  &rq.base, NULL, NULL);
}

static int s_result(fx_t *fx, const char *caller, const char *cid, const char *cert,
                    const char *key, const char *res, const char *ver)
{
    char name[64];
    snprintf(name, sizeof(name), "computations/%s", cid);
    SYS_(SetComputationResultRequest) rq;
    protobuf_c_message_init(SYSD(set_computation_result_request), &rq);
    rq.name = name;
    rq.aggregator_certificate = (char *)cert;
    rq.result_public_key.data = (uint8_t *)key;
    rq.result_public_key.len = strlen(key);
    rq.encrypted_result.data = (uint8_t *)res;
    rq.encrypted_result.len = strlen(res);
    rq.public_api_version = (char *)ver;
    return s_call(fx, M_SYS "Computations/SetComputationResult", caller, &rq.base, NULL, NULL);
}

static int s_fail_part(fx_t *fx, const char *caller, const char *cid, const char *duchy,
                       bool with_failure)
{
    char name[96];
    snprintf(name, sizeof(name), "computations/%s/participants/%s", cid, duchy);
    SYS_(ComputationParticipant__Failure) f;
    protobuf_c_message_init(SYSD(computation_participant__failure), &f);
    f.error_message = "bad point";
    SYS_(FailComputationParticipantRequest) rq;
    protobuf_c_message_init(SYSD(fail_computation_participant_request), &rq);
    rq.name = name;
    rq.failure = with_failure ? &f : NULL;
    return s_call(fx, M_SYS "ComputationParticipants/FailComputationParticipant", caller,
                  &rq.base, NULL, NULL);
}

/* Drives an LLv2 computation with 2 EDPs to PENDING_COMPUTATION. */
static void s_to_pending_computation(fx_t *fx, char cid[16])
{
    s_free(s_create(fx, 1, false, 2, "", cid));
    s_all_params(fx, cid, 3);
    char rids[4][16];
    int idx[4];
    size_t n = s_reqs(fx, cid, rids, idx);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(s_fulfill(fx, i == 0 ? W1 : AG, cid, rids[i], s_nonce(idx[i]), NULL),
                         0);
    assert_int_equal(s_confirm(fx, W1, cid, "worker1", NULL), 0);
    assert_int_equal(s_confirm(fx, W2, cid, "worker2", NULL), 0);
    assert_int_equal(s_confirm(fx, AG, cid, "aggregator", NULL), 0);
}

/* ---- tests ----------------------------------------------------------------------------- */

static void test_llv2_full_flow(void **state)
{
    fx_t *fx = *state;
    char cid[16];
    API_(Measurement) *m = s_create(fx, 1, false, 2, "req-1", cid);
    assert_int_equal(m->state, 1);
    assert_non_null(m->protocol_config);
    assert_int_equal(m->protocol_config->measurement_type, 1);
    assert_int_equal(m->protocol_config->protocols[0]->liquid_legions_v2->sketch_params->max_size,
                     100000);
    assert_int_equal(m->protocol_config->protocols[0]->liquid_legions_v2->noise_mechanism, 3);
    s_free(m);
    SYS_(Computation) *c = s_get(fx, W1, cid);
    assert_int_equal(c->state, 1);
    assert_string_equal(c->public_api_version, "v2alpha");
    assert_int_equal(c->n_computation_participants, 3);
    assert_int_equal(c->n_requisitions, 2);
    assert_int_equal(c->requisitions[0]->state, 1); /* PENDING_PARAMS shows as UNFULFILLED */
    assert_int_equal(c->mpc_protocol_config->protocol_case, 1);
    assert_int_equal(c->mpc_protocol_config->liquid_legions_v2->noise_mechanism, 4);
    assert_int_equal(c->mpc_protocol_config->liquid_legions_v2->elliptic_curve_id, 415);
    assert_true(c->mpc_protocol_config->liquid_legions_v2->sketch_params->decay_rate == 12.0);
    s_free(c);
    /* EDPs see nothing before all params are set. */
    API_(ListRequisitionsRequest) lr;
    protobuf_c_message_init(APID(list_requisitions_request), &lr);
    lr.parent = EDP1;
    API_(ListRequisitionsResponse) *lresp = NULL;
    assert_int_equal(s_call(fx, M_PUB "Requisitions/ListRequisitions", EDP1, &lr.base,
                            APID(list_requisitions_response), (void **)&lresp),
                     0);
    assert_int_equal(lresp->n_requisitions, 0);
    s_free(lresp);

    s_all_params(fx, cid, 3);
    c = s_get(fx, AG, cid);
    assert_int_equal(c->state, 2);
    assert_int_equal(c->computation_participants[0]->state, 2);
    /* The DER is filled from the certificate on reads. */
    assert_int_equal(c->computation_participants[0]->requisition_params->duchy_certificate_der.len,
                     strlen("duchies/worker1/certificates/sign"));
    s_free(c);

    assert_int_equal(s_call(fx, M_PUB "Requisitions/ListRequisitions", EDP1, &lr.base,
                            APID(list_requisitions_response), (void **)&lresp),
                     0);
    assert_int_equal(lresp->n_requisitions, 1);
    API_(Requisition) *pr = lresp->requisitions[0];
    assert_int_equal(pr->state, 1);
    assert_int_equal(pr->n_duchies, 3);
    assert_string_equal(pr->duchies[0]->key, "duchies/worker1");
    assert_int_equal(pr->duchies[0]->value->protocol_case, 2);
    assert_non_null(pr->duchies[0]->value->liquid_legions_v2->el_gamal_public_key);
    assert_string_equal(
        pr->duchies[0]->value->liquid_legions_v2->el_gamal_public_key->message->type_url,
        "type.googleapis.com/wfa.measurement.api.v2alpha.ElGamalPublicKey");
    assert_string_equal(pr->duchies[2]->value->duchy_certificate,
                        "duchies/aggregator/certificates/sign");
    assert_non_null(pr->measurement_spec);
    assert_non_null(pr->encrypted_requisition_spec);
    assert_int_equal(pr->protocol_config->protocols[0]->liquid_legions_v2->elliptic_curve_id, 415);
    s_free(lresp);

    char rids[4][16];
    int idx[4];
    assert_int_equal(s_reqs(fx, cid, rids, idx), 2);
    assert_int_equal(s_fulfill(fx, W2, cid, rids[0], s_nonce(idx[0]), NULL), 0);
    assert_int_equal(s_fulfill(fx, AG, cid, rids[1], s_nonce(idx[1]), NULL), 0);
    c = s_get(fx, W1, cid);
    assert_int_equal(c->state, 3);
    assert_int_equal(c->requisitions[0]->state, 2);
    assert_int_equal(c->requisitions[0]->nonce, s_nonce(idx[0]));
    assert_non_null(strstr(c->requisitions[0]->fulfilling_computation_participant, "worker2"));
    s_free(c);
    assert_int_equal(s_confirm(fx, W1, cid, "worker1", NULL), 0);
    assert_int_equal(s_confirm(fx, W2, cid, "worker2", NULL), 0);
    assert_int_equal(s_confirm(fx, AG, cid, "aggregator", NULL), 0);
    c = s_get(fx, W2, cid);
    assert_int_equal(c->state, 4);
    assert_int_equal(c->aggregator_certificate[0], '\0');
    s_free(c);
    assert_int_equal(s_result(fx, AG, cid, "duchies/aggregator/certificates/sign", "MCKEY",
                              "ENCRESULT", "v2alpha"),
                     0);
    c = s_get(fx, W2, cid);
    assert_int_equal(c->state, 5);
    assert_string_equal(c->aggregator_certificate, "duchies/aggregator/certificates/sign");
    assert_memory_equal(c->encrypted_result.data, "ENCRESULT", 9);
    s_free(c);
    /* The MC reads the result. */
    char mname[96];
    snprintf(mname, sizeof(mname), "measurementConsumers/mc1/measurements/%s", cid);
    API_(GetMeasurementRequest) gm;
    protobuf_c_message_init(APID(get_measurement_request), &gm);
    gm.name = mname;
    assert_int_equal(s_call(fx, M_PUB "Measurements/GetMeasurement", MC, &gm.base,
                            APID(measurement), (void **)&m),
                     0);
    assert_int_equal(m->state, 3);
    assert_int_equal(m->n_results, 1);
    assert_string_equal(m->results[0]->certificate, "duchies/aggregator/certificates/sign");
    assert_memory_equal(m->results[0]->encrypted_result->ciphertext.data, "ENCRESULT", 9);
    assert_non_null(m->measurement_spec);
    assert_int_equal(m->n_data_providers, 2);
    s_free(m);
}

static void test_hmss_flow_and_assignment(void **state)
{
    fx_t *fx = *state;
    char cid[16];
    s_free(s_create(fx, 4, true, 3, "", cid));
    SYS_(Computation) *c = s_get(fx, W1, cid);
    assert_int_equal(c->mpc_protocol_config->protocol_case, 3);
    assert_int_equal(c->mpc_protocol_config->honest_majority_share_shuffle->reach_ring_modulus,
                     127);
    assert_int_equal(c->mpc_protocol_config->honest_majority_share_shuffle->noise_mechanism, 2);
    s_free(c);
    /* Params make each participant READY at once. */
    s_all_params(fx, cid, 6);
    c = s_get(fx, W1, cid);
    assert_int_equal(c->state, 2);
    for (size_t i = 0; i < 3; i++)
        assert_int_equal(c->computation_participants[i]->state, 3);
    s_free(c);
    char rids[4][16];
    int idx[4];
    size_t n = s_reqs(fx, cid, rids, idx);
    assert_int_equal(n, 3);
    for (size_t i = 0; i < n; i++) {
        uint64_t id;
        assert_int_equal(dy_ext_id_decode(rids[i], &id), 0);
        const char *assigned = id % 2 == 0 ? W1 : W2;
        const char *other = id % 2 == 0 ? W2 : W1;
        /* The EDP view: two NA entries, only the non-assigned one with a key. */
        API_(ListRequisitionsRequest) lr;
        protobuf_c_message_init(APID(list_requisitions_request), &lr);
        char edp[32];
        snprintf(edp, sizeof(edp), "dataProviders/edp%d", idx[i] + 1);
        lr.parent = edp;
        API_(ListRequisitionsResponse) *lresp = NULL;
        assert_int_equal(s_call(fx, M_PUB "Requisitions/ListRequisitions", edp, &lr.base,
                                APID(list_requisitions_response), (void **)&lresp),
                         0);
        assert_int_equal(lresp->n_requisitions, 1);
        API_(Requisition) *pr = lresp->requisitions[0];
        assert_int_equal(pr->n_duchies, 2);
        for (size_t k = 0; k < 2; k++) {
            bool is_assigned = strcmp(pr->duchies[k]->key, assigned) == 0;
            assert_int_equal(pr->duchies[k]->value->protocol_case, 4);
            if (is_assigned)
                assert_null(pr->duchies[k]->value->honest_majority_share_shuffle->public_key);
            else
                assert_non_null(pr->duchies[k]->value->honest_majority_share_shuffle->public_key);
        }
        s_free(lresp);
        /* Only the assigned NA may fulfil; the aggregator never. */
        assert_int_equal(s_fulfill(fx, other, cid, rids[i], s_nonce(idx[i]), NULL), 7);
        assert_int_equal(s_fulfill(fx, AG, cid, rids[i], s_nonce(idx[i]), NULL), 7);
        assert_int_equal(s_fulfill(fx, assigned, cid, rids[i], s_nonce(idx[i]), NULL), 0);
    }
    c = s_get(fx, W1, cid);
    assert_int_equal(c->state, 4); /* straight to PENDING_COMPUTATION */
    s_free(c);
}

static void test_get_computation_codes(void **state)
{
    fx_t *fx = *state;
    char cid[16];
    s_free(s_create(fx, 1, false, 1, "", cid));
    char name[64];
    snprintf(name, sizeof(name), "computations/%s", cid);
    SYS_(GetComputationRequest) rq;
    protobuf_c_message_init(SYSD(get_computation_request), &rq);
    const char *const method = M_SYS "Computations/GetComputation";
    rq.name = name;
    assert_int_equal(s_call(fx, method, EDP1, &rq.base, NULL, NULL), 7);
    assert_int_equal(s_call(fx, method, MC, &rq.base, NULL, NULL), 7);
    assert_int_equal(s_call(fx, method, "kingdom", &rq.base, NULL, NULL), 7);
    assert_int_equal(s_call(fx, method, OUT, &rq.base, NULL, NULL), 5); /* invisible */
    assert_int_equal(s_call(fx, method, W1, &rq.base, NULL, NULL), 0);
    static const char *const bad[] = {
        "computations", "computations/", "computation/AAAAAAAAAAE", "computations/AAAAAAAAAAA",
        "computations/AAAAAAAAAA", "computations/AAAAAAAAAAE/x", "computations/AAAAAAAAA!E",
        "/computations/AAAAAAAAAAE", "", "computations/AAAAAAAAAAF",
    };
    for (size_t i = 0; i < DY_ARRAY_LEN(bad); i++) {
        rq.name = (char *)bad[i];
        if (s_call(fx, method, W1, &rq.base, NULL, NULL) != 3)
            fail_msg("name '%s' not refused", bad[i]);
    }
    rq.name = "computations/AAAAAAAAAAE"; /* well-formed, absent */
    assert_int_equal(s_call(fx, method, W1, &rq.base, NULL, NULL), 5);
    rq.name = "computations/_____________"; /* too long */
    assert_int_equal(s_call(fx, method, W1, &rq.base, NULL, NULL), 3);
    rq.name = "computations/__________8"; /* 2^64-1: well-formed, never generated */
    assert_int_equal(s_call(fx, method, W1, &rq.base, NULL, NULL), 5);
    rq.name = "computations/AAAAAAAAAAB"; /* non-zero trailing bits */
    assert_int_equal(s_call(fx, method, W1, &rq.base, NULL, NULL), 3);
    rq.name = "computations/__________w"; /* valid 11 chars, top bit set */
    assert_int_equal(s_call(fx, method, W1, &rq.base, NULL, NULL), 5);
    /* Not a GetComputationRequest at all. */
    dy_buf_t resp = {0};
    assert_int_equal(dy_kd_call(&fx->api, method, W1, (const uint8_t *)"\xff\xff", 2, &resp,
                                &s_st),
                     -1);
    assert_int_equal(s_st.code, 3);
    assert_int_equal(dy_kd_call(&fx->api, "/x.Y/Z", W1, NULL, 0, &resp, &s_st), -1);
    assert_int_equal(s_st.code, 12);
    assert_int_equal(dy_kd_call(&fx->api, DY_KD_METHOD_STREAM, W1, NULL, 0, &resp, &s_st), -1);
    assert_int_equal(s_st.code, 12);
}

static void test_participant_codes(void **state)
{
    fx_t *fx = *state;
    char cid[16];
    s_free(s_create(fx, 1, false, 1, "", cid));
    const char *cert = "duchies/worker1/certificates/sign";
    /* Party type, name, owner. */
    assert_int_equal(s_set_params(fx, EDP1, cid, "worker1", 3, cert, NULL, 1), 7);
    assert_int_equal(s_set_params(fx, W2, cid, "worker1", 3, cert, NULL, 1), 7);
    assert_int_equal(s_set_params(fx, W1, cid, "Worker1", 3, cert, NULL, 1), 3);
    assert_int_equal(s_set_params(fx, W1, "AAAAAAAAAAE", "worker1", 3, cert, NULL, 1), 5);
    assert_int_equal(s_set_params(fx, OUT, cid, "outsider", 3,
                                  "duchies/outsider/certificates/sign", NULL, 1), 5);
    /* Fields. */
    assert_int_equal(s_set_params(fx, W1, cid, "worker1", -1, cert, NULL, 1), 3);
    assert_int_equal(s_set_params(fx, W1, cid, "worker1", 4, cert, NULL, 1), 3); /* RO */
    assert_int_equal(s_set_params(fx, W1, cid, "worker1", 6, cert, NULL, 1), 3); /* HMSS */
    assert_int_equal(s_set_params(fx, W1, cid, "worker1", 0, cert, NULL, 1), 3); /* none */
    assert_int_equal(s_set_params(fx, W1, cid, "worker1", 3,
                                  "duchies/worker2/certificates/sign", NULL, 1), 3);
    assert_int_equal(s_set_params(fx, W1, cid, "worker1", 3, "bogus", NULL, 1), 3);
    /* Unknown certificate: FAILED_PRECONDITION. */
    assert_int_equal(s_set_params(fx, W1, cid, "worker1", 3,
                                  "duchies/worker1/certificates/other", NULL, 1), 9);
    /* Etag. */
    assert_int_equal(s_set_params(fx, W1, cid, "worker1", 3, cert, "5", 1), 10);
    assert_int_equal(s_set_params(fx, W1, cid, "worker1", 3, cert, "1", 1), 0);
    /* Replays: identical -> OK (even with the old etag); different -> FAILED_PRECONDITION. */
    assert_int_equal(s_set_params(fx, W1, cid, "worker1", 3, cert, "1", 1), 0);
    assert_int_equal(s_set_params(fx, W1, cid, "worker1", 3, cert, NULL, 1), 0);
    assert_int_equal(s_set_params(fx, W1, cid, "worker1", 3, cert, NULL, 2), 9);
    /* Get: etag moved to 2. */
    char name[96];
    snprintf(name, sizeof(name), "computations/%s/participants/worker1", cid);
    SYS_(GetComputationParticipantRequest) g;
    protobuf_c_message_init(SYSD(get_computation_participant_request), &g);
    g.name = name;
    SYS_(ComputationParticipant) *p = NULL;
    const char *gm = M_SYS "ComputationParticipants/GetComputationParticipant";
    assert_int_equal(s_call(fx, gm, W1, &g.base, SYSD(computation_participant), (void **)&p), 0);
    assert_string_equal(p->etag, "2");
    assert_int_equal(p->state, 2);
    s_free(p);
    assert_int_equal(s_call(fx, gm, W2, &g.base, NULL, NULL), 7);
    assert_int_equal(s_call(fx, gm, MC, &g.base, NULL, NULL), 7);
    g.name = "computations/AAAAAAAAAAE/participants/worker1";
    assert_int_equal(s_call(fx, gm, W1, &g.base, NULL, NULL), 5);
    g.name = "computations/AAAAAAAAAAE/participant/worker1";
    assert_int_equal(s_call(fx, gm, W1, &g.base, NULL, NULL), 3);
    /* Confirm before PENDING_PARTICIPANT_CONFIRMATION: FAILED_PRECONDITION. */
    assert_int_equal(s_confirm(fx, W1, cid, "worker1", NULL), 9);
    assert_int_equal(s_confirm(fx, W1, cid, "worker2", NULL), 7);
    assert_int_equal(s_confirm(fx, EDP1, cid, "worker1", NULL), 7);
    /* Fail: needs a failure; then OK, replay OK; terminal for others. */
    assert_int_equal(s_fail_part(fx, W2, cid, "worker2", false), 3);
    assert_int_equal(s_fail_part(fx, W2, cid, "worker1", true), 7);
    assert_int_equal(s_fail_part(fx, W2, cid, "worker2", true), 0);
    assert_int_equal(s_fail_part(fx, W2, cid, "worker2", true), 0);
    assert_int_equal(s_fail_part(fx, AG, cid, "aggregator", true), 9);
    SYS_(Computation) *c = s_get(fx, W1, cid);
    assert_int_equal(c->state, 6);
    assert_int_equal(c->requisitions[0]->state, 4); /* WITHDRAWN */
    assert_int_equal(c->computation_participants[1]->state, 4);
    assert_string_equal(c->computation_participants[1]->failure->error_message, "bad point");
    s_free(c);
    /* The MC sees the failure. */
    char mname[96];
    snprintf(mname, sizeof(mname), "measurementConsumers/mc1/measurements/%s", cid);
    API_(GetMeasurementRequest) gmr;
    protobuf_c_message_init(APID(get_measurement_request), &gmr);
    gmr.name = mname;
    API_(Measurement) *m = NULL;
    assert_int_equal(s_call(fx, M_PUB "Measurements/GetMeasurement", MC, &gmr.base,
                            APID(measurement), (void **)&m),
                     0);
    assert_int_equal(m->state, 4);
    assert_int_equal(m->failure->reason, 3);
    assert_non_null(strstr(m->failure->message, "bad point"));
    s_free(m);
}

static void test_confirm_etag_and_replay(void **state)
{
    fx_t *fx = *state;
    char cid[16];
    s_free(s_create(fx, 1, false, 1, "", cid));
    s_all_params(fx, cid, 3);
    char rids[4][16];
    int idx[4];
    s_reqs(fx, cid, rids, idx);
    assert_int_equal(s_fulfill(fx, W1, cid, rids[0], s_nonce(idx[0]), NULL), 0);
    /* Participant versions: 1 at creation, 2 after params. */
    assert_int_equal(s_confirm(fx, W1, cid, "worker1", "1"), 10);
    assert_int_equal(s_confirm(fx, W1, cid, "worker1", "2"), 0);
    assert_int_equal(s_confirm(fx, W1, cid, "worker1", "2"), 0); /* replay, stale etag */
    assert_int_equal(s_confirm(fx, W1, cid, "worker1", NULL), 0);
}

static void test_fulfill_codes(void **state)
{
    fx_t *fx = *state;
    char cid[16];
    s_free(s_create(fx, 1, false, 2, "", cid));
    char rids[4][16];
    int idx[4];
    s_reqs(fx, cid, rids, idx);
    /* Before PENDING_REQUISITION_FULFILLMENT. */
    assert_int_equal(s_fulfill(fx, W1, cid, rids[0], s_nonce(idx[0]), NULL), 9);
    s_all_params(fx, cid, 3);
    assert_int_equal(s_fulfill(fx, EDP1, cid, rids[0], s_nonce(idx[0]), NULL), 7);
    assert_int_equal(s_fulfill(fx, W1, cid, rids[0], 0, NULL), 3);
    assert_int_equal(s_fulfill(fx, W1, cid, "bad", s_nonce(idx[0]), NULL), 3);
    assert_int_equal(s_fulfill(fx, W1, cid, "AAAAAAAAAAE", s_nonce(idx[0]), NULL), 5);
    assert_int_equal(s_fulfill(fx, OUT, cid, rids[0], s_nonce(idx[0]), NULL), 5);
    assert_int_equal(s_fulfill(fx, W1, "AAAAAAAAAAE", rids[0], s_nonce(idx[0]), NULL), 5);
    /* SHA-256(nonce) != nonce_hash. */
    assert_int_equal(s_fulfill(fx, W1, cid, rids[0], s_nonce(idx[0]) + 77, NULL), 9);
    assert_int_equal(s_fulfill(fx, W1, cid, rids[0], s_nonce(idx[0]), "9"), 10);
    /* Requisition versions: 1 at creation, 2 once UNFULFILLED. */
    assert_int_equal(s_fulfill(fx, W1, cid, rids[0], s_nonce(idx[0]), "2"), 0);
    /* Replays (the old etag does not matter). */
    assert_int_equal(s_fulfill(fx, W1, cid, rids[0], s_nonce(idx[0]), "1"), 0);
    assert_int_equal(s_fulfill(fx, W2, cid, rids[0], s_nonce(idx[0]), NULL), 9);
    /* A requisition of another computation is not found under this one. */
    char cid2[16], rids2[4][16];
    int idx2[4];
    s_free(s_create(fx, 1, false, 1, "", cid2));
    s_reqs(fx, cid2, rids2, idx2);
    assert_int_equal(s_fulfill(fx, W1, cid, rids2[0], s_nonce(idx2[0]), NULL), 5);
}

static void test_set_result_codes(void **state)
{
    fx_t *fx = *state;
    char cid[16];
    s_free(s_create(fx, 1, false, 1, "", cid));
    const char *cert = "duchies/aggregator/certificates/sign";
    /* Premature: state != PENDING_COMPUTATION. */
    assert_int_equal(s_result(fx, AG, cid, cert, "MCKEY", "R", "v2alpha"), 9);
    char cid2[16];
    s_to_pending_computation(fx, cid2);
    assert_int_equal(s_result(fx, MC, cid2, cert, "MCKEY", "R", "v2alpha"), 7);
    assert_int_equal(s_result(fx, AG, cid2, "duchies/aggregator", "MCKEY", "R", "v2alpha"), 3);
    assert_int_equal(s_result(fx, AG, cid2, cert, "", "R", "v2alpha"), 3);
    assert_int_equal(s_result(fx, AG, cid2, cert, "MCKEY", "", "v2alpha"), 3);
    assert_int_equal(s_result(fx, AG, cid2, cert, "MCKEY", "R", ""), 3);
    assert_int_equal(s_result(fx, AG, cid2, cert, "MCKEY", "R", "v1"), 3);
    assert_int_equal(s_result(fx, AG, cid2, cert, "OTHERKEY", "R", "v2alpha"), 3);
    /* Certificate of another duchy; caller not the aggregator; outsider. */
    assert_int_equal(s_result(fx, W1, cid2, cert, "MCKEY", "R", "v2alpha"), 7);
    assert_int_equal(s_result(fx, W1, cid2, "duchies/worker1/certificates/sign", "MCKEY", "R",
                              "v2alpha"),
                     7);
    assert_int_equal(s_result(fx, OUT, cid2, "duchies/outsider/certificates/sign", "MCKEY", "R",
                              "v2alpha"),
                     5);
    assert_int_equal(s_result(fx, AG, "AAAAAAAAAAE", cert, "MCKEY", "R", "v2alpha"), 5);
    /* Unknown certificate. */
    assert_int_equal(s_result(fx, AG, cid2, "duchies/aggregator/certificates/nope", "MCKEY", "R",
                              "v2alpha"),
                     9);
    assert_int_equal(s_result(fx, AG, cid2, cert, "MCKEY", "R", "v2alpha"), 0);
    /* Replay: identical OK, different bytes FAILED_PRECONDITION. */
    assert_int_equal(s_result(fx, AG, cid2, cert, "MCKEY", "R", "v2alpha"), 0);
    assert_int_equal(s_result(fx, AG, cid2, cert, "MCKEY", "R2", "v2alpha"), 9);
}

static void test_log_entry_codes(void **state)
{
    fx_t *fx = *state;
    char cid[16];
    s_free(s_create(fx, 1, false, 1, "", cid));
    char parent[96];
    snprintf(parent, sizeof(parent), "computations/%s/participants/worker1", cid);
    SYS_(ComputationLogEntry__ErrorDetails) ed;
    protobuf_c_message_init(SYSD(computation_log_entry__error_details), &ed);
    ed.type = 1;
    SYS_(ComputationLogEntry) e;
    protobuf_c_message_init(SYSD(computation_log_entry), &e);
    e.log_message = "retrying";
    e.error_details = &ed;
    SYS_(CreateComputationLogEntryRequest) rq;
    protobuf_c_message_init(SYSD(create_computation_log_entry_request), &rq);
    rq.parent = parent;
    rq.computation_log_entry = &e;
    const char *m = M_SYS "ComputationLogEntries/CreateComputationLogEntry";
    SYS_(ComputationLogEntry) *out = NULL;
    assert_int_equal(s_call(fx, m, W1, &rq.base, SYSD(computation_log_entry), (void **)&out), 0);
    assert_non_null(strstr(out->name, "/logEntries/"));
    assert_string_equal(out->log_message, "retrying");
    s_free(out);
    assert_int_equal(s_call(fx, m, W1, &rq.base, NULL, NULL), 0); /* duplicates harmless */
    uint64_t id;
    assert_int_equal(dy_ext_id_decode(cid, &id), 0);
    assert_int_equal(dy_kd_db_log_count(fx->db, id, "worker1"), 2);
    assert_int_equal(s_call(fx, m, W2, &rq.base, NULL, NULL), 7);
    assert_int_equal(s_call(fx, m, EDP1, &rq.base, NULL, NULL), 7);
    ed.type = 2;
    assert_int_equal(s_call(fx, m, W1, &rq.base, NULL, NULL), 3);
    e.error_details = NULL;
    assert_int_equal(s_call(fx, m, W1, &rq.base, NULL, NULL), 3);
    e.error_details = &ed;
    ed.type = 1;
    rq.computation_log_entry = NULL;
    assert_int_equal(s_call(fx, m, W1, &rq.base, NULL, NULL), 3);
    rq.computation_log_entry = &e;
    rq.parent = "computations/AAAAAAAAAAE/participants/worker1";
    assert_int_equal(s_call(fx, m, W1, &rq.base, NULL, NULL), 5);
    rq.parent = "computations/x";
    assert_int_equal(s_call(fx, m, W1, &rq.base, NULL, NULL), 3);
    assert_int_equal(dy_kd_db_log_count(fx->db, id, "worker1"), 2);
}

static void test_create_measurement_codes(void **state)
{
    fx_t *fx = *state;
    assert_int_equal(s_create_raw(fx, W1, 1, false, 1, "measurementConsumers/mc1"), 7);
    assert_int_equal(s_create_raw(fx, EDP1, 1, false, 1, "measurementConsumers/mc1"), 7);
    assert_int_equal(s_create_raw(fx, MC, 1, false, 1, "measurementConsumers/mc2"), 7);
    assert_int_equal(s_create_raw(fx, MC, 1, false, 1, "measurementConsumers"), 3);
    assert_int_equal(s_create_raw(fx, MC, 1, false, 1, "dataProviders/mc1"), 3);
    assert_int_equal(s_create_raw(fx, MC, 0, false, 1, "measurementConsumers/mc1"), 3);
    assert_int_equal(s_create_raw(fx, MC, 5, false, 1, "measurementConsumers/mc1"), 12);
    assert_int_equal(s_create_raw(fx, MC, 3, false, 1, "measurementConsumers/mc1"), 3);
    assert_int_equal(s_create_raw(fx, MC, 3, true, 1, "measurementConsumers/mc1"), 0);
    assert_int_equal(s_create_raw(fx, MC, 1, false, 0, "measurementConsumers/mc1"), 3);
    /* Not three duchies. */
    fx->conf.nduchies = 2;
    assert_int_equal(s_create_raw(fx, MC, 1, false, 1, "measurementConsumers/mc1"), 9);
    fx->conf.nduchies = 3;
    fx->conf.duchies[0].aggregator = true;
    assert_int_equal(s_create_raw(fx, MC, 1, false, 1, "measurementConsumers/mc1"), 9);
    fx->conf.duchies[0].aggregator = false;
    /* Garbage. */
    dy_buf_t resp = {0};
    assert_int_equal(dy_kd_call(&fx->api, M_PUB "Measurements/CreateMeasurement", MC,
                                (const uint8_t *)"\x0a\x05", 2, &resp, &s_st),
                     -1);
    assert_int_equal(s_st.code, 3);
}

static void test_create_idempotent(void **state)
{
    fx_t *fx = *state;
    char a[16], b[16], c[16], d[16];
    s_free(s_create(fx, 1, false, 2, "same", a));
    s_free(s_create(fx, 1, false, 2, "same", b));
    assert_string_equal(a, b);
    s_free(s_create(fx, 1, false, 2, "other", c));
    assert_string_not_equal(a, c);
    s_free(s_create(fx, 1, false, 2, "", d));
    char e[16];
    s_free(s_create(fx, 1, false, 2, "", e));
    assert_string_not_equal(d, e); /* no key, no idempotency */
    /* The existing measurement comes back even after it moved on. */
    char mname[96];
    snprintf(mname, sizeof(mname), "measurementConsumers/mc1/measurements/%s", a);
    API_(CancelMeasurementRequest) cr;
    protobuf_c_message_init(APID(cancel_measurement_request), &cr);
    cr.name = mname;
    assert_int_equal(s_call(fx, M_PUB "Measurements/CancelMeasurement", MC, &cr.base, NULL, NULL),
                     0);
    API_(Measurement) *m = s_create(fx, 4, true, 1, "same", b);
    assert_string_equal(a, b);
    assert_int_equal(m->state, 5);
    assert_int_equal(m->protocol_config->protocols[0]->protocol_case, 1); /* the original */
    s_free(m);
}

static void test_measurement_codes(void **state)
{
    fx_t *fx = *state;
    char cid[16];
    s_free(s_create(fx, 1, false, 1, "", cid));
    char mname[96];
    snprintf(mname, sizeof(mname), "measurementConsumers/mc1/measurements/%s", cid);
    API_(CancelMeasurementRequest) cr;
    protobuf_c_message_init(APID(cancel_measurement_request), &cr);
    const char *cm = M_PUB "Measurements/CancelMeasurement";
    const char *gm = M_PUB "Measurements/GetMeasurement";
    cr.name = mname;
    assert_int_equal(s_call(fx, cm, W1, &cr.base, NULL, NULL), 7);
    assert_int_equal(s_call(fx, cm, "measurementConsumers/mc2", &cr.base, NULL, NULL), 7);
    assert_int_equal(s_call(fx, gm, "measurementConsumers/mc2", &cr.base, NULL, NULL), 7);
    cr.name = "measurementConsumers/mc1/measurements/AAAAAAAAAAE";
    assert_int_equal(s_call(fx, cm, MC, &cr.base, NULL, NULL), 5);
    assert_int_equal(s_call(fx, gm, MC, &cr.base, NULL, NULL), 5);
    cr.name = "measurementConsumers/mc1/measurement/AAAAAAAAAAE";
    assert_int_equal(s_call(fx, cm, MC, &cr.base, NULL, NULL), 3);
    assert_int_equal(s_call(fx, gm, MC, &cr.base, NULL, NULL), 3);
    cr.name = mname;
    API_(Measurement) *m = NULL;
    assert_int_equal(s_call(fx, cm, MC, &cr.base, APID(measurement), (void **)&m), 0);
    assert_int_equal(m->state, 5);
    s_free(m);
    assert_int_equal(s_call(fx, cm, MC, &cr.base, NULL, NULL), 0); /* replay */
    SYS_(Computation) *c = s_get(fx, W1, cid);
    assert_int_equal(c->state, 7);
    assert_int_equal(c->requisitions[0]->state, 4);
    s_free(c);
    /* SUCCEEDED and FAILED cannot be cancelled. */
    char cid2[16];
    s_to_pending_computation(fx, cid2);
    assert_int_equal(s_result(fx, AG, cid2, "duchies/aggregator/certificates/sign", "MCKEY", "R",
                              "v2alpha"),
                     0);
    snprintf(mname, sizeof(mname), "measurementConsumers/mc1/measurements/%s", cid2);
    assert_int_equal(s_call(fx, cm, MC, &cr.base, NULL, NULL), 9);
    char cid3[16];
    s_free(s_create(fx, 1, false, 1, "", cid3));
    assert_int_equal(s_fail_part(fx, W1, cid3, "worker1", true), 0);
    snprintf(mname, sizeof(mname), "measurementConsumers/mc1/measurements/%s", cid3);
    assert_int_equal(s_call(fx, cm, MC, &cr.base, NULL, NULL), 9);
}

static void test_requisition_public_codes(void **state)
{
    fx_t *fx = *state;
    char cid[16];
    s_free(s_create(fx, 1, false, 2, "", cid));
    char rids[4][16];
    int idx[4];
    s_reqs(fx, cid, rids, idx);
    int i1 = idx[0] == 0 ? 0 : 1; /* the requisition of edp1 */
    char pname[96];
    snprintf(pname, sizeof(pname), "dataProviders/edp1/requisitions/%s", rids[i1]);
    API_(Requisition__Refusal) ref;
    protobuf_c_message_init(APID(requisition__refusal), &ref);
    ref.justification = 5;
    ref.message = "no consent";
    API_(RefuseRequisitionRequest) rr;
    protobuf_c_message_init(APID(refuse_requisition_request), &rr);
    rr.name = pname;
    rr.refusal = &ref;
    const char *rm = M_PUB "Requisitions/RefuseRequisition";
    /* Invisible before params. */
    assert_int_equal(s_call(fx, rm, EDP1, &rr.base, NULL, NULL), 5);
    s_all_params(fx, cid, 3);
    assert_int_equal(s_call(fx, rm, W1, &rr.base, NULL, NULL), 7);
    assert_int_equal(s_call(fx, rm, EDP2, &rr.base, NULL, NULL), 7);
    /* edp2's own name for edp1's requisition: not found. */
    char other[96];
    snprintf(other, sizeof(other), "dataProviders/edp2/requisitions/%s", rids[i1]);
    rr.name = other;
    assert_int_equal(s_call(fx, rm, EDP2, &rr.base, NULL, NULL), 5);
    rr.name = "dataProviders/edp1/requisitions/nope";
    assert_int_equal(s_call(fx, rm, EDP1, &rr.base, NULL, NULL), 3);
    rr.name = pname;
    rr.refusal = NULL;
    assert_int_equal(s_call(fx, rm, EDP1, &rr.base, NULL, NULL), 3);
    rr.refusal = &ref;
    rr.etag = "7";
    assert_int_equal(s_call(fx, rm, EDP1, &rr.base, NULL, NULL), 10);
    rr.etag = "";
    API_(Requisition) *pr = NULL;
    assert_int_equal(s_call(fx, rm, EDP1, &rr.base, APID(requisition), (void **)&pr), 0);
    assert_int_equal(pr->state, 3);
    assert_int_equal(pr->refusal->justification, 5);
    assert_int_equal(pr->measurement_state, 4);
    s_free(pr);
    assert_int_equal(s_call(fx, rm, EDP1, &rr.base, NULL, NULL), 9);
    SYS_(Computation) *c = s_get(fx, W1, cid);
    assert_int_equal(c->state, 6);
    assert_int_equal(c->requisitions[1 - i1]->state, 4);
    s_free(c);
    /* ListRequisitions codes. */
    API_(ListRequisitionsRequest) lr;
    protobuf_c_message_init(APID(list_requisitions_request), &lr);
    const char *lm = M_PUB "Requisitions/ListRequisitions";
    lr.parent = EDP1;
    assert_int_equal(s_call(fx, lm, MC, &lr.base, NULL, NULL), 7);
    assert_int_equal(s_call(fx, lm, EDP2, &lr.base, NULL, NULL), 7);
    lr.parent = "dataProviders";
    assert_int_equal(s_call(fx, lm, EDP1, &lr.base, NULL, NULL), 3);
    lr.parent = EDP1;
    lr.page_token = "!!";
    assert_int_equal(s_call(fx, lm, EDP1, &lr.base, NULL, NULL), 3);
    lr.page_token = "";
    lr.page_size = -1;
    assert_int_equal(s_call(fx, lm, EDP1, &lr.base, NULL, NULL), 3);
    lr.page_size = 0;
    /* Filter by state. */
    API_(ListRequisitionsRequest__Filter) f;
    protobuf_c_message_init(APID(list_requisitions_request__filter), &f);
    API_(Requisition__State) sts[1] = {1};
    f.n_states = 1;
    f.states = sts;
    lr.filter = &f;
    API_(ListRequisitionsResponse) *lresp = NULL;
    assert_int_equal(s_call(fx, lm, EDP1, &lr.base, APID(list_requisitions_response),
                            (void **)&lresp),
                     0);
    assert_int_equal(lresp->n_requisitions, 0);
    s_free(lresp);
    sts[0] = 3;
    assert_int_equal(s_call(fx, lm, EDP1, &lr.base, APID(list_requisitions_response),
                            (void **)&lresp),
                     0);
    assert_int_equal(lresp->n_requisitions, 1);
    s_free(lresp);
}

static void test_list_paging(void **state)
{
    fx_t *fx = *state;
    for (int i = 0; i < 5; i++) {
        char cid[16];
        s_free(s_create(fx, 1, false, 1, "", cid));
        s_all_params(fx, cid, 3);
    }
    API_(ListRequisitionsRequest) lr;
    protobuf_c_message_init(APID(list_requisitions_request), &lr);
    lr.parent = EDP1;
    lr.page_size = 2;
    char token[32] = "";
    uint64_t last = 0;
    int total = 0, pages = 0;
    for (;;) {
        lr.page_token = token;
        API_(ListRequisitionsResponse) *r = NULL;
        assert_int_equal(s_call(fx, M_PUB "Requisitions/ListRequisitions", EDP1, &lr.base,
                                APID(list_requisitions_response), (void **)&r),
                         0);
        assert_true(r->n_requisitions <= 2);
        for (size_t i = 0; i < r->n_requisitions; i++) {
            uint64_t id;
            assert_int_equal(dy_ext_id_decode(strrchr(r->requisitions[i]->name, '/') + 1, &id),
                             0);
            assert_true(id > last);
            last = id;
            total++;
        }
        pages++;
        snprintf(token, sizeof(token), "%s", r->next_page_token);
        s_free(r);
        if (token[0] == '\0')
            break;
        assert_true(pages < 10);
    }
    assert_int_equal(total, 5);
}

static void test_certificate(void **state)
{
    fx_t *fx = *state;
    API_(GetCertificateRequest) rq;
    protobuf_c_message_init(APID(get_certificate_request), &rq);
    const char *m = M_PUB "Certificates/GetCertificate";
    rq.name = "duchies/worker1/certificates/sign";
    API_(Certificate) *c = NULL;
    assert_int_equal(s_call(fx, m, EDP1, &rq.base, APID(certificate), (void **)&c), 0);
    assert_string_equal(c->name, "duchies/worker1/certificates/sign");
    assert_memory_equal(c->x509_der.data, "duchies/worker1/certificates/sign", 10);
    s_free(c);
    assert_int_equal(s_call(fx, m, MC, &rq.base, NULL, NULL), 0);
    assert_int_equal(s_call(fx, m, W2, &rq.base, NULL, NULL), 0);
    rq.name = "duchies/worker1/certificates/tls";
    assert_int_equal(s_call(fx, m, MC, &rq.base, NULL, NULL), 5);
    rq.name = "duchies/worker1/certs/sign";
    assert_int_equal(s_call(fx, m, MC, &rq.base, NULL, NULL), 3);
    rq.name = "kingdoms/x/certificates/sign";
    assert_int_equal(s_call(fx, m, MC, &rq.base, NULL, NULL), 3);
    rq.name = "duchies/Worker1/certificates/sign";
    assert_int_equal(s_call(fx, m, MC, &rq.base, NULL, NULL), 3);
}

/* ---- stream ---------------------------------------------------------------------------- */

typedef struct {
    char cid[DY_KD_EXT_ID_LEN + 1];
    int state;
    char token[96];
} s_item_t;

/* Opens a stream for caller from token and polls once; returns the item count. */
static int s_poll(fx_t *fx, const char *caller, const char *token, s_item_t *items, int cap,
                  dy_kd_stream_t *ret_stream)
{
    SYS_(StreamActiveComputationsRequest) rq;
    protobuf_c_message_init(SYSD(stream_active_computations_request), &rq);
    rq.continuation_token = (char *)token;
    uint8_t buf[256];
    size_t n = protobuf_c_message_pack(&rq.base, buf);
    dy_kd_stream_t s;
    if (dy_kd_stream_open(&fx->api, caller, buf, n, &s, &s_st) < 0)
        return -(int)s_st.code;
    dy_buf_t *out = NULL;
    int got = dy_kd_stream_poll(&fx->api, &s, &out, &s_st);
    assert_true(got >= 0);
    assert_true(got <= cap);
    for (int i = 0; i < got; i++) {
        SYS_(StreamActiveComputationsResponse) *r = (void *)protobuf_c_message_unpack(
            SYSD(stream_active_computations_response), NULL, out[i].len, out[i].data);
        assert_non_null(r);
        snprintf(items[i].cid, sizeof(items[i].cid), "%s", strrchr(r->computation->name, '/') + 1);
        items[i].state = r->computation->state;
        snprintf(items[i].token, sizeof(items[i].token), "%s", r->continuation_token);
        s_free(r);
        dy_buf_free(&out[i]);
    }
    free(out);
    if (ret_stream != NULL)
        *ret_stream = s;
    return got;
}

static void test_stream_tokens(void **state)
{
    fx_t *fx = *state;
    s_item_t it[60];
    char cids[3][16];
    for (int i = 0; i < 3; i++) {
        fx->clock = 1000; /* frozen clock: keys still strictly increase */
        s_free(s_create(fx, 1, false, 1, "", cids[i]));
    }
    assert_int_equal(s_poll(fx, EDP1, "", it, 60, NULL), -7);
    assert_int_equal(s_poll(fx, MC, "", it, 60, NULL), -7);
    assert_int_equal(s_poll(fx, OUT, "", it, 60, NULL), 0); /* participates in none */
    int n = s_poll(fx, W1, "", it, 60, NULL);
    assert_int_equal(n, 3);
    for (int i = 0; i < 3; i++) {
        assert_string_equal(it[i].cid, cids[i]);
        assert_int_equal(it[i].state, 1);
    }
    /* Ascending keys: decode the tokens. */
    int64_t t[3];
    uint64_t id[3];
    for (int i = 0; i < 3; i++)
        assert_int_equal(dy_kd_token_decode(it[i].token, &t[i], &id[i]), 0);
    assert_true(t[0] < t[1] && t[1] < t[2]);
    /* Strictly after: from the token of item 1 only item 2 remains. */
    char tok1[96];
    snprintf(tok1, sizeof(tok1), "%s", it[1].token);
    n = s_poll(fx, W1, tok1, it, 60, NULL);
    assert_int_equal(n, 1);
    assert_string_equal(it[0].cid, cids[2]);
    char tok2[96];
    snprintf(tok2, sizeof(tok2), "%s", it[0].token);
    assert_int_equal(s_poll(fx, W1, tok2, it, 60, NULL), 0);
    /* Same time, larger id: key order within a timestamp is by id. */
    char same[96];
    assert_int_equal(dy_kd_token_encode(t[2], id[2] - 1, same, sizeof(same)), 0);
    assert_int_equal(s_poll(fx, W1, same, it, 60, NULL), 1);
    assert_int_equal(dy_kd_token_encode(t[2], UINT64_MAX, same, sizeof(same)), 0);
    assert_int_equal(s_poll(fx, W1, same, it, 60, NULL), 0);
    /* An update makes computation 0 reappear after the others, once, with its new key. */
    fx->clock = 5000;
    assert_int_equal(s_set_params(fx, W1, cids[0], "worker1", 3,
                                  "duchies/worker1/certificates/sign", NULL, 1), 0);
    n = s_poll(fx, W1, tok2, it, 60, NULL);
    assert_int_equal(n, 1);
    assert_string_equal(it[0].cid, cids[0]);
    assert_int_equal(it[0].state, 1);
    snprintf(tok2, sizeof(tok2), "%s", it[0].token);
    assert_int_equal(s_poll(fx, W1, tok2, it, 60, NULL), 0);
    /* A replay changes nothing, so nothing reappears. */
    assert_int_equal(s_set_params(fx, W1, cids[0], "worker1", 3,
                                  "duchies/worker1/certificates/sign", NULL, 1), 0);
    assert_int_equal(s_poll(fx, W1, tok2, it, 60, NULL), 0);
    /* PENDING_REQUISITION_FULFILLMENT is not streamed. */
    assert_int_equal(s_set_params(fx, W2, cids[0], "worker2", 3,
                                  "duchies/worker2/certificates/sign", NULL, 1), 0);
    assert_int_equal(s_set_params(fx, AG, cids[0], "aggregator", 3,
                                  "duchies/aggregator/certificates/sign", NULL, 1), 0);
    n = s_poll(fx, W1, tok2, it, 60, NULL);
    for (int i = 0; i < n; i++)
        assert_int_not_equal(it[i].state, 2);
    assert_int_equal(n, 0);
    /* Terminal states are streamed. */
    char mname[96];
    snprintf(mname, sizeof(mname), "measurementConsumers/mc1/measurements/%s", cids[0]);
    API_(CancelMeasurementRequest) cr;
    protobuf_c_message_init(APID(cancel_measurement_request), &cr);
    cr.name = mname;
    assert_int_equal(s_call(fx, M_PUB "Measurements/CancelMeasurement", MC, &cr.base, NULL, NULL),
                     0);
    n = s_poll(fx, W1, tok2, it, 60, NULL);
    assert_int_equal(n, 1);
    assert_int_equal(it[0].state, 7);
    /* Malformed tokens. */
    static const char *const bad[] = {"!!!", "A", "AAAA", "____", "CgE", "EQ"};
    for (size_t i = 0; i < DY_ARRAY_LEN(bad); i++)
        if (s_poll(fx, W1, bad[i], it, 60, NULL) != -3)
            fail_msg("token '%s' accepted", bad[i]);
    /* A token without its timestamp, and one with nanos out of range. */
    Google__Protobuf__Timestamp ts;
    protobuf_c_message_init(&google__protobuf__timestamp__descriptor, &ts);
    SYS_(StreamActiveComputationsContinuationToken) tk;
    protobuf_c_message_init(SYSD(stream_active_computations_continuation_token), &tk);
    tk.last_seen_external_computation_id = 5;
    uint8_t raw[64];
    char enc[128];
    size_t rl = protobuf_c_message_pack(&tk.base, raw);
    dy_b64url_encode(raw, rl, enc, sizeof(enc));
    assert_int_equal(s_poll(fx, W1, enc, it, 60, NULL), -3);
    ts.seconds = 1;
    ts.nanos = 1000000000;
    tk.last_seen_update_time = &ts;
    rl = protobuf_c_message_pack(&tk.base, raw);
    dy_b64url_encode(raw, rl, enc, sizeof(enc));
    assert_int_equal(s_poll(fx, W1, enc, it, 60, NULL), -3);
    ts.nanos = 0;
    ts.seconds = -1;
    rl = protobuf_c_message_pack(&tk.base, raw);
    dy_b64url_encode(raw, rl, enc, sizeof(enc));
    assert_int_equal(s_poll(fx, W1, enc, it, 60, NULL), -3);
    /* A valid token with padding is accepted. */
    ts.seconds = 0;
    rl = protobuf_c_message_pack(&tk.base, raw);
    size_t el = dy_b64url_encode(raw, rl, enc, sizeof(enc));
    while (el % 4 != 0)
        enc[el++] = '=';
    enc[el] = '\0';
    assert_true(s_poll(fx, W1, enc, it, 60, NULL) >= 0);
}

static void test_stream_batches(void **state)
{
    fx_t *fx = *state;
    s_item_t it[60];
    for (int i = 0; i < 53; i++) {
        char cid[16];
        fx->clock += 10;
        s_free(s_create(fx, 1, false, 1, "", cid));
    }
    dy_kd_stream_t s;
    assert_int_equal(s_poll(fx, W2, "", it, 60, &s), 50);
    for (int i = 1; i < 50; i++) {
        int64_t ta, tb;
        uint64_t ia, ib;
        dy_kd_token_decode(it[i - 1].token, &ta, &ia);
        dy_kd_token_decode(it[i].token, &tb, &ib);
        assert_true(ta < tb || (ta == tb && ia < ib));
    }
    /* The cursor advanced: the next poll of the same stream gives the rest. */
    dy_buf_t *out = NULL;
    int n = dy_kd_stream_poll(&fx->api, &s, &out, &s_st);
    assert_int_equal(n, 3);
    for (int i = 0; i < n; i++)
        dy_buf_free(&out[i]);
    free(out);
    assert_int_equal(dy_kd_stream_poll(&fx->api, &s, &out, &s_st), 0);
    /* A smaller configured batch. */
    fx->conf.stream_batch = 7;
    assert_int_equal(s_poll(fx, W2, "", it, 60, NULL), 7);
}

static void test_expire(void **state)
{
    fx_t *fx = *state;
    char a[16], b[16];
    fx->clock = 1000000;
    s_free(s_create(fx, 1, false, 1, "", a));
    fx->clock = 9000000;
    s_free(s_create(fx, 1, false, 1, "", b));
    fx->clock = 10000000;
    assert_int_equal(dy_kd_expire(&fx->api, 5000000), 1);
    SYS_(Computation) *c = s_get(fx, W1, a);
    assert_int_equal(c->state, 7);
    s_free(c);
    c = s_get(fx, W1, b);
    assert_int_equal(c->state, 1);
    s_free(c);
    assert_int_equal(dy_kd_expire(&fx->api, 5000000), 0);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_llv2_full_flow),     T(test_hmss_flow_and_assignment),
        T(test_get_computation_codes), T(test_participant_codes),
        T(test_confirm_etag_and_replay), T(test_fulfill_codes),
        T(test_set_result_codes),   T(test_log_entry_codes),
        T(test_create_measurement_codes), T(test_create_idempotent),
        T(test_measurement_codes),  T(test_requisition_public_codes),
        T(test_list_paging),        T(test_certificate),
        T(test_stream_tokens),      T(test_stream_batches),
        T(test_expire),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
