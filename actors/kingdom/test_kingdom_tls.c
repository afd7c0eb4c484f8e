/* test_kingdom_tls.c - duchy-kingdom end to end over real mutual TLS (common/rpc.c): the
 * daemon started with a deploy/mkpki PKI, READY on --ready-fd, an MC creating a measurement,
 * a duchy reading it and streaming it, an EDP refused the system API, GetCertificate serving
 * mkpki's sign.pem, and SIGTERM -> exit 0.  Needs DY_SOURCE_ROOT and DY_KINGDOM_BIN.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <ftw.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kingdom_api.h"
#include "public.pb-c.h"
#include "rpc.h"
#include "system.pb-c.h"
#include "tls.h"

#define SYS_(x) Wfa__Measurement__System__V1alpha__##x
#define API_(x) Wfa__Measurement__Api__V2alpha__##x
#define SYSD(x) (&wfa__measurement__system__v1alpha__##x##__descriptor)
#define APID(x) (&wfa__measurement__api__v2alpha__##x##__descriptor)

static char s_dir[256];
static char s_pki[300];
static pid_t s_pid = -1;
static int s_port;
static dy_parties_t *s_parties;

static int s_rm(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static int group_setup(void **state)
{
    (void)state;
    const char *root = getenv("DY_SOURCE_ROOT");
    const char *bin = getenv("DY_KINGDOM_BIN");
    if (root == NULL || bin == NULL)
        return -1;
    snprintf(s_dir, sizeof(s_dir), "/tmp/test_kingdom_tls.XXXXXX");
    if (mkdtemp(s_dir) == NULL)
        return -1;
    snprintf(s_pki, sizeof(s_pki), "%s/pki", s_dir);
    char cmd[2048];
    snprintf(cmd, sizeof(cmd),
             "'%s/deploy/mkpki' --dir '%s' --duchies worker1,worker2,aggregator --edps edp1 "
             "--mcs mc1 >/dev/null 2>&1",
             root, s_pki);
    if (system(cmd) != 0)
        return -1;
    char cfg[512];
    snprintf(cfg, sizeof(cfg), "%s/kingdom.yaml", s_dir);
    FILE *f = fopen(cfg, "w");
    if (f == NULL)
        return -1;
    fprintf(f,
            "listen: \"127.0.0.1:0\"\ndatabase: %s/kingdom.db\n"
            "tls:\n  cert: %s/kingdom/tls.pem\n  key: %s/kingdom/tls.key\n"
            "  trusted_ca: %s/trusted-ca.pem\n  parties: %s/parties.txt\n"
            "certificates_dir: %s\n"
            "duchies:\n  - id: worker1\n    role: non_aggregator\n"
            "  - id: worker2\n    role: non_aggregator\n"
            "  - id: aggregator\n    role: aggregator\n"
            "stream:\n  poll: 100ms\n  max_duration: 3s\n",
            s_dir, s_pki, s_pki, s_pki, s_pki, s_pki);
    fclose(f);
    char parties[400];
    snprintf(parties, sizeof(parties), "%s/parties.txt", s_pki);
    s_parties = dy_parties_load(parties, NULL, 0);
    if (s_parties == NULL)
        return -1;
    int fds[2];
    if (pipe(fds) < 0)
        return -1;
    s_pid = fork();
    if (s_pid == 0) {
        close(fds[0]);
        char fdarg[16];
        snprintf(fdarg, sizeof(fdarg), "%d", fds[1]);
        execl(bin, bin, "--config", cfg, "--ready-fd", fdarg, (char *)NULL);
        _exit(127);
    }
    close(fds[1]);
    struct pollfd p = {.fd = fds[0], .events = POLLIN};
    char line[128] = {0};
    size_t got = 0;
    while (got < sizeof(line) - 1 && poll(&p, 1, 10000) > 0) {
        ssize_t n = read(fds[0], line + got, sizeof(line) - 1 - got);
        if (n <= 0)
            break;
        got += (size_t)n;
        if (strchr(line, '\n') != NULL)
            break;
    }
    close(fds[0]);
    int pid = 0;
    if (sscanf(line, "READY pid=%d port=%d", &pid, &s_port) != 2 || pid != s_pid)
        return -1;
    signal(SIGPIPE, SIG_IGN);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    if (s_pid > 0) {
        kill(s_pid, SIGKILL);
        waitpid(s_pid, NULL, 0);
    }
    dy_parties_destroy(&s_parties);
    if (s_dir[0] != '\0')
        nftw(s_dir, s_rm, 16, FTW_DEPTH | FTW_PHYS);
    return 0;
}

/* A client for party id (mkpki directory name). */
static dy_rpc_client_t *s_client(const char *id, SSL_CTX **ret_ctx)
{
    char cert[512], key[512], ca[512];
    snprintf(cert, sizeof(cert), "%s/%s/tls.pem", s_pki, id);
    snprintf(key, sizeof(key), "%s/%s/tls.key", s_pki, id);
    snprintf(ca, sizeof(ca), "%s/trusted-ca.pem", s_pki);
    dy_tls_conf_t tc = {.cert_path = cert, .key_path = key, .trusted_ca_path = ca,
                        .parties = s_parties, .expected_name = "localhost"};
    char err[256];
    SSL_CTX *ctx = dy_tls_client_ctx(&tc, err, sizeof(err));
    if (ctx == NULL)
        fail_msg("client ctx %s: %s", id, err);
    dy_rpc_client_conf_t cc = {.ctx = ctx, .host = "127.0.0.1", .port = s_port};
    dy_rpc_client_t *c = dy_rpc_client_new(&cc, err, sizeof(err));
    if (c == NULL)
        fail_msg("connect %s: %s", id, err);
    assert_string_equal(dy_rpc_client_peer(c), "kingdom");
    *ret_ctx = ctx;
    return c;
}

static void s_close(dy_rpc_client_t **c, SSL_CTX *ctx)
{
    dy_rpc_client_destroy(c);
    SSL_CTX_free(ctx);
}

static char s_cid[16];

static void test_create_get_stream(void **state)
{
    (void)state;
    /* MC: CreateMeasurement (LLv2, one EDP). */
    uint8_t hash[32];
    assert_int_equal(dy_kd_nonce_hash(77, hash), 0);
    ProtobufCBinaryData hb = {32, hash};
    API_(MeasurementSpec) spec;
    protobuf_c_message_init(APID(measurement_spec), &spec);
    API_(MeasurementSpec__ReachAndFrequency) rf;
    protobuf_c_message_init(APID(measurement_spec__reach_and_frequency), &rf);
    rf.maximum_frequency = 3;
    spec.measurement_type_case = 4;
    spec.reach_and_frequency = &rf;
    Google__Protobuf__Any mpk;
    protobuf_c_message_init(&google__protobuf__any__descriptor, &mpk);
    mpk.value.data = (uint8_t *)"K";
    mpk.value.len = 1;
    spec.measurement_public_key = &mpk;
    spec.n_nonce_hashes = 1;
    spec.nonce_hashes = &hb;
    uint8_t sbuf[256];
    Google__Protobuf__Any sany;
    protobuf_c_message_init(&google__protobuf__any__descriptor, &sany);
    sany.value.data = sbuf;
    sany.value.len = protobuf_c_message_pack(&spec.base, sbuf);
    API_(SignedMessage) sm;
    protobuf_c_message_init(APID(signed_message), &sm);
    sm.message = &sany;
    API_(EncryptedMessage) em;
    protobuf_c_message_init(APID(encrypted_message), &em);
    em.ciphertext.data = (uint8_t *)"spec";
    em.ciphertext.len = 4;
    API_(Measurement__DataProviderEntry__Value) v;
    protobuf_c_message_init(APID(measurement__data_provider_entry__value), &v);
    v.nonce_hash = hb;
    v.encrypted_requisition_spec = &em;
    API_(Measurement__DataProviderEntry) e, *ep = &e;
    protobuf_c_message_init(APID(measurement__data_provider_entry), &e);
    e.key = "dataProviders/edp1";
    e.value = &v;
    API_(ProtocolConfig__LiquidLegionsV2) ll;
    protobuf_c_message_init(APID(protocol_config__liquid_legions_v2), &ll);
    API_(ProtocolConfig__Protocol) pp, *ppp = &pp;
    protobuf_c_message_init(APID(protocol_config__protocol), &pp);
    pp.protocol_case = 1;
    pp.liquid_legions_v2 = &ll;
    API_(ProtocolConfig) pc;
    protobuf_c_message_init(APID(protocol_config), &pc);
    pc.n_protocols = 1;
    pc.protocols = &ppp;
    API_(Measurement) m;
    protobuf_c_message_init(APID(measurement), &m);
    m.measurement_spec = &sm;
    m.n_data_providers = 1;
    m.data_providers = &ep;
    m.protocol_config = &pc;
    API_(CreateMeasurementRequest) rq;
    protobuf_c_message_init(APID(create_measurement_request), &rq);
    rq.measurement = &m;
    rq.parent = "measurementConsumers/mc1";
    rq.request_id = "tls-1";

    SSL_CTX *ctx;
    dy_rpc_client_t *mc = s_client("mc1", &ctx);
    dy_rpc_status_t st;
    ProtobufCMessage *resp = NULL;
    if (dy_rpc_unary(mc, "/wfa.measurement.api.v2alpha.Measurements/CreateMeasurement",
                     &rq.base, APID(measurement), &resp, 10000, &st) != 0)
        fail_msg("create: %d %s", st.code, st.message);
    API_(Measurement) *got = (void *)resp;
    assert_int_equal(got->state, 1);
    snprintf(s_cid, sizeof(s_cid), "%s", strrchr(got->name, '/') + 1);
    protobuf_c_message_free_unpacked(resp, NULL);
    /* The MC may not use the system API. */
    char name[64];
    snprintf(name, sizeof(name), "computations/%s", s_cid);
    SYS_(GetComputationRequest) g;
    protobuf_c_message_init(SYSD(get_computation_request), &g);
    g.name = name;
    assert_int_equal(dy_rpc_unary(mc, "/wfa.measurement.system.v1alpha.Computations/GetComputation",
                                  &g.base, SYSD(computation), &resp, 10000, &st),
                     -1);
    assert_int_equal(st.code, DY_WIRE_STATUS_PERMISSION_DENIED);
    s_close(&mc, ctx);

    /* A duchy reads it and streams it. */
    dy_rpc_client_t *w1 = s_client("worker1", &ctx);
    assert_int_equal(dy_rpc_unary(w1, "/wfa.measurement.system.v1alpha.Computations/GetComputation",
                                  &g.base, SYSD(computation), &resp, 10000, &st),
                     0);
    SYS_(Computation) *c = (void *)resp;
    assert_int_equal(c->state, 1);
    assert_int_equal(c->n_computation_participants, 3);
    protobuf_c_message_free_unpacked(resp, NULL);
    SYS_(StreamActiveComputationsRequest) sr;
    protobuf_c_message_init(SYSD(stream_active_computations_request), &sr);
    assert_int_equal(dy_rpc_stream_open(w1,
                                        "/wfa.measurement.system.v1alpha.Computations/"
                                        "StreamActiveComputations",
                                        &sr.base, 20000, &st),
                     0);
    ProtobufCMessage *item = NULL;
    assert_int_equal(dy_rpc_stream_next(w1, SYSD(stream_active_computations_response), &item,
                                        10000, &st),
                     1);
    SYS_(StreamActiveComputationsResponse) *it = (void *)item;
    assert_non_null(strstr(it->computation->name, s_cid));
    assert_true(strlen(it->continuation_token) > 0);
    protobuf_c_message_free_unpacked(item, NULL);
    /* Nothing else: the stream ends with OK after stream.max_duration (3 s). */
    int r = dy_rpc_stream_next(w1, SYSD(stream_active_computations_response), &item, 10000, &st);
    assert_int_equal(r, 0);
    assert_int_equal(st.code, DY_WIRE_STATUS_OK);
    s_close(&w1, ctx);
}

static void test_edp_and_certificates(void **state)
{
    (void)state;
    SSL_CTX *ctx;
    dy_rpc_client_t *edp = s_client("edp1", &ctx);
    dy_rpc_status_t st;
    ProtobufCMessage *resp = NULL;
    SYS_(StreamActiveComputationsRequest) sr;
    protobuf_c_message_init(SYSD(stream_active_computations_request), &sr);
    /* Not a duchy: the stream is refused. */
    assert_int_equal(dy_rpc_stream_open(edp,
                                        "/wfa.measurement.system.v1alpha.Computations/"
                                        "StreamActiveComputations",
                                        &sr.base, 10000, &st),
                     0);
    assert_int_equal(dy_rpc_stream_next(edp, SYSD(stream_active_computations_response), &resp,
                                        10000, &st),
                     0);
    assert_int_equal(st.code, DY_WIRE_STATUS_PERMISSION_DENIED);
    API_(GetCertificateRequest) gc;
    protobuf_c_message_init(APID(get_certificate_request), &gc);
    gc.name = "duchies/aggregator/certificates/sign";
    assert_int_equal(dy_rpc_unary(edp, "/wfa.measurement.api.v2alpha.Certificates/GetCertificate",
                                  &gc.base, APID(certificate), &resp, 10000, &st),
                     0);
    API_(Certificate) *cert = (void *)resp;
    assert_true(cert->x509_der.len > 100);
    assert_int_equal(cert->x509_der.data[0], 0x30);
    assert_int_equal(cert->subject_key_identifier.len, 20);
    protobuf_c_message_free_unpacked(resp, NULL);
    gc.name = "duchies/aggregator/certificates/missing";
    assert_int_equal(dy_rpc_unary(edp, "/wfa.measurement.api.v2alpha.Certificates/GetCertificate",
                                  &gc.base, APID(certificate), &resp, 10000, &st),
                     -1);
    assert_int_equal(st.code, DY_WIRE_STATUS_NOT_FOUND);
    /* The EDP sees no requisition yet (params not set). */
    API_(ListRequisitionsRequest) lr;
    protobuf_c_message_init(APID(list_requisitions_request), &lr);
    lr.parent = "dataProviders/edp1";
    assert_int_equal(dy_rpc_unary(edp, "/wfa.measurement.api.v2alpha.Requisitions/ListRequisitions",
                                  &lr.base, APID(list_requisitions_response), &resp, 10000, &st),
                     0);
    assert_int_equal(((API_(ListRequisitionsResponse) *)resp)->n_requisitions, 0);
    protobuf_c_message_free_unpacked(resp, NULL);
    s_close(&edp, ctx);
}

static void test_sigterm(void **state)
{
    (void)state;
    assert_int_equal(kill(s_pid, SIGTERM), 0);
    int status = 0;
    for (int i = 0; i < 100; i++) {
        if (waitpid(s_pid, &status, WNOHANG) == s_pid) {
            s_pid = -1;
            break;
        }
        usleep(50000);
    }
    assert_int_equal(s_pid, -1);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_create_get_stream),
        cmocka_unit_test(test_edp_and_certificates),
        cmocka_unit_test(test_sigterm),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
