/* test_coord_cluster.c - duchy-gateway and duchy-coordinator as real
 * processes: a PKI from deploy/mkpki, a duchy config in a mkdtemp
 * directory, a computation stored beforehand (the aggregator of an LLv2
 * computation in WAIT_SETUP_PHASE_INPUTS), then real mutual-TLS clients:
 *   - a peer duchy asks GetComputationStage and uploads SETUP_PHASE_INPUT
 *     through the gateway; the bytes land in the blob store with their
 *     SHA-256, and the second NA's upload moves the computation to
 *     SETUP_PHASE;
 *   - a data provider calling ComputationControl is PERMISSION_DENIED, a
 *     body that is not whole registers INVALID_ARGUMENT (nothing stored);
 *   - the spool directory is empty afterwards;
 *   - the duchy admin endpoint answers COMPUTATIONS, STATUS and AUDIT verify.
 * Needs DY_SOURCE_ROOT (mkpki) and DY_BUILD_ROOT (the actor binaries); skips
 * (77) without them.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "actor.h"
#include "admin.pb-c.h"
#include "control.pb-c.h"
#include "coord.h"
#include "coord_send.h"
#include "details.h"
#include "duchy.pb-c.h"
#include "kingdom_fixture.h"
#include "public.pb-c.h"
#include "rpc.h"
#include "stages.h"
#include "store.h"
#include "tls.h"
#include "wire.h"

#define COMP "AAAAAAAAAAE"
#define REQ_EVEN "AAAAAAAAAAI"
#define REQ_ODD "AAAAAAAAAAM"

static char s_dir[256];
static char s_cfg[400];
static int s_port;
static pid_t s_pids[2];

static int s_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) < 0)
        return -1;
    int port = ntohs(a.sin_port);
    close(fd);
    return port;
}

/* Starts build/actors/duchy-<name> with --ready-fd and waits for READY (10 s). */
static pid_t s_start(const char *name)
{
    char bin[512];
    snprintf(bin, sizeof(bin), "%s/actors/duchy-%s", getenv("DY_BUILD_ROOT"), name);
    int p[2];
    if (pipe(p) < 0)
        return -1;
    pid_t pid = fork();
    if (pid == 0) {
        dup2(p[1], 3);
        if (p[0] != 3)
            close(p[0]);
        if (p[1] != 3)
            close(p[1]);
        char logp[512];
        snprintf(logp, sizeof(logp), "%s/%s.log", s_dir, name);
        int lfd = open(logp, O_WRONLY | O_CREAT | O_APPEND, 0600);
        if (lfd >= 0)
            dup2(lfd, 2);
        execl(bin, bin, "--config", s_cfg, "--ready-fd", "3", (char *)NULL);
        _exit(127);
    }
    close(p[1]);
    char line[256] = "";
    size_t have = 0;
    struct pollfd pfd = {.fd = p[0], .events = POLLIN};
    for (int waited = 0; waited < 100 && !strchr(line, '\n'); waited++) {
        if (poll(&pfd, 1, 100) > 0) {
            ssize_t k = read(p[0], line + have, sizeof(line) - 1 - have);
            if (k <= 0)
                break;
            have += (size_t)k;
            line[have] = '\0';
        }
    }
    close(p[0]);
    if (strncmp(line, "READY name=", 11) != 0) {
        fprintf(stderr, "# duchy-%s did not become ready: \"%s\"\n", name, line);
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        return -1;
    }
    return pid;
}

static void s_write(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    chmod(path, 0600);
}

/* The fixture's first two requisitions with generated ids (even, odd) and
 * requisition spec hashes. */
static void s_rename_requisitions(const dy_buf_t *in, dy_buf_t *out)
{
    FX_SYS(Computation) *c =
        wfa__measurement__system__v1alpha__computation__unpack(NULL, in->len, in->data);
    assert_non_null(c);
    static const char *ids[2] = {REQ_EVEN, REQ_ODD};
    char names[2][128];
    uint8_t hashes[2][32];
    char *old_names[2];
    ProtobufCBinaryData old_hash[2];
    for (int i = 0; i < 2; i++) {
        snprintf(names[i], sizeof(names[i]), "computations/%s/requisitions/%s", COMP, ids[i]);
        memset(hashes[i], 0x50 + i, 32);
        old_names[i] = c->requisitions[i]->name;
        old_hash[i] = c->requisitions[i]->requisition_spec_hash;
        c->requisitions[i]->name = names[i];
        c->requisitions[i]->requisition_spec_hash = (ProtobufCBinaryData){32, hashes[i]};
    }
    size_t n = wfa__measurement__system__v1alpha__computation__get_packed_size(c);
    wfa__measurement__system__v1alpha__computation__pack(c, dy_buf_extend(out, n));
    for (int i = 0; i < 2; i++) {
        c->requisitions[i]->name = old_names[i];
        c->requisitions[i]->requisition_spec_hash = old_hash[i];
    }
    wfa__measurement__system__v1alpha__computation__free_unpacked(c, NULL);
}

/* ---- a fake participant: answers KingdomFulfill (OK for REQ_ODD, the Kingdom's
 * FAILED_PRECONDITION otherwise) ---- */
static volatile int s_part_stop;
static pthread_t s_part_thread;
static bool s_part_started;
static volatile int s_part_seen;

static void *s_participant(void *arg)
{
    (void)arg;
    zsock_t *r = zsock_new(ZMQ_ROUTER);
    char ep[600];
    snprintf(ep, sizeof(ep), "ipc://%s/run/participant.sock", s_dir);
    if (!r || zsock_bind(r, "%s", ep) < 0)
        return NULL;
    zsock_set_linger(r, 0);
    zsock_set_rcvtimeo(r, 100);
    while (!s_part_stop) {
        zframe_t *id = NULL;
        Halo__Internal__V1__ActorMessage *m = dy_actor_recv_msg(r, &id);
        if (!m)
            continue;
        if (m->body_case == HALO__INTERNAL__V1__ACTOR_MESSAGE__BODY_KINGDOM_FULFILL) {
            s_part_seen++;
            bool ok = strstr(m->kingdom_fulfill->requisition, REQ_ODD) != NULL &&
                      m->kingdom_fulfill->nonce == 2;
            Halo__Internal__V1__EffectsReply er = HALO__INTERNAL__V1__EFFECTS_REPLY__INIT;
            er.outcome = ok ? HALO__INTERNAL__V1__OUTCOME__OUTCOME_OK
                            : HALO__INTERNAL__V1__OUTCOME__OUTCOME_PERMFAIL;
            er.code = ok ? "" : "failed_precondition";
            er.message = ok ? "" : "requisition not unfulfilled";
            Halo__Internal__V1__ActorMessage rm = HALO__INTERNAL__V1__ACTOR_MESSAGE__INIT;
            rm.version = 1;
            rm.request_id = m->request_id;
            rm.sender = "participant";
            rm.body_case = HALO__INTERNAL__V1__ACTOR_MESSAGE__BODY_EFFECTS_REPLY;
            rm.effects_reply = &er;
            dy_actor_send_msg(r, id, &rm);
        }
        halo__internal__v1__actor_message__free_unpacked(m, NULL);
        zframe_destroy(&id);
    }
    zsock_destroy(&r);
    return NULL;
}

static int s_setup(void **state)
{
    const char *src = getenv("DY_SOURCE_ROOT"), *bld = getenv("DY_BUILD_ROOT");
    if (!src || !bld)
        return -1;
    snprintf(s_dir, sizeof(s_dir), "/tmp/test_coord_cluster.XXXXXX");
    if (!mkdtemp(s_dir))
        return -1;
    char cmd[1024];
    snprintf(cmd, sizeof(cmd),
             "'%s/deploy/mkpki' --dir '%s/pki' --duchies worker1,worker2,aggregator --edps edp1 "
             ">/dev/null 2>&1",
             src, s_dir);
    if (system(cmd) != 0)
        return -1;
    char p[600];
    snprintf(p, sizeof(p), "%s/data", s_dir);
    mkdir(p, 0700);
    snprintf(p, sizeof(p), "%s/run", s_dir);
    mkdir(p, 0700);
    snprintf(p, sizeof(p), "%s/master.key", s_dir);
    s_write(p, "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n");
    s_port = s_free_port();
    char y[4096];
    snprintf(y, sizeof(y),
             "duchy:\n  id: aggregator\n  data_dir: %s/data\n  runtime_dir: %s/run\n"
             "  master_key_file: %s/master.key\n  claimers: 1\n"
             "tls:\n  cert: %s/pki/aggregator/tls.pem\n  key: %s/pki/aggregator/tls.key\n"
             "  trusted_ca: %s/pki/trusted-ca.pem\n  parties: %s/pki/parties.txt\n"
             "signing:\n  cert: %s/pki/aggregator/sign.pem\n  key: %s/pki/aggregator/sign.key\n"
             "  certificate: duchies/aggregator/certificates/1\n"
             "kingdom:\n  endpoint: 127.0.0.1:1\n  server_name: localhost\n  call_timeout: 2s\n"
             "gateway:\n  listen: 127.0.0.1:%d\n"
             "peers:\n  - id: worker1\n    endpoint: 127.0.0.1:1\n    server_name: localhost\n"
             "  - id: worker2\n    endpoint: 127.0.0.1:1\n    server_name: localhost\n"
             "roles:\n  aggregator: aggregator\n  first_non_aggregator: worker1\n"
             "  second_non_aggregator: worker2\n",
             s_dir, s_dir, s_dir, s_dir, s_dir, s_dir, s_dir, s_dir, s_dir, s_port);
    snprintf(s_cfg, sizeof(s_cfg), "%s/duchy.yaml", s_dir);
    s_write(s_cfg, y);

    /* The computation, stored before the actors start. */
    fx_t fx;
    fx_default(&fx, FX_LLV2);
    fx.keys = true;
    dy_buf_t k0 = {0}, k = {0}, det = {0};
    fx_build(&fx, &k0);
    s_rename_requisitions(&k0, &k);
    dy_buf_free(&k0);
    char err[256];
    if (dy_details_build(k.data, k.len, "aggregator", "aggregator", "worker1", "worker2", &det, err,
                         sizeof(err)) < 0)
        return -1;
    snprintf(p, sizeof(p), "%s/data/duchy.db", s_dir);
    dy_store_config_t sc = {.path = p};
    dy_store_t *st = NULL;
    if (dy_store_open(&sc, &st) < 0)
        return -1;
    dy_computation_new_t cn = {.id = COMP,
                               .protocol = DY_PROTO_LLV2,
                               .role = DY_ROLE_AGG,
                               .stage = 5,
                               .kind = DY_STAGE_WAIT,
                               .kingdom_state = 4,
                               .details = det.data,
                               .details_len = det.len};
    int rc = dy_store_create(st, &cn);
    dy_store_destroy(&st);
    dy_buf_free(&k);
    dy_buf_free(&det);
    if (rc < 0)
        return -1;

    s_part_stop = 0;
    if (pthread_create(&s_part_thread, NULL, s_participant, NULL) != 0)
        return -1;
    s_part_started = true;
    /* A spool file left by an earlier run: the gateway removes it at start. */
    snprintf(p, sizeof(p), "%s/data/spool", s_dir);
    mkdir(p, 0700);
    snprintf(p, sizeof(p), "%s/data/spool/stale-call", s_dir);
    s_write(p, "half an upload");
    s_pids[0] = s_start("coordinator");
    s_pids[1] = s_pids[0] > 0 ? s_start("gateway") : -1;
    *state = NULL;
    return s_pids[0] > 0 && s_pids[1] > 0 ? 0 : -1;
}

static int s_teardown(void **state)
{
    for (int i = 1; i >= 0; i--) {
        if (s_pids[i] <= 0)
            continue;
        kill(s_pids[i], SIGTERM);
        int status = 0;
        for (int w = 0; w < 50; w++) {
            if (waitpid(s_pids[i], &status, WNOHANG) == s_pids[i])
                break;
            usleep(100000);
            if (w == 49) {
                kill(s_pids[i], SIGKILL);
                waitpid(s_pids[i], &status, 0);
            }
        }
    }
    s_part_stop = 1;
    if (s_part_started)
        pthread_join(s_part_thread, NULL);
    s_part_started = false;
    if (getenv("DY_KEEP") == NULL) {
        char cmd[400];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", s_dir);
        if (system(cmd) != 0)
            fprintf(stderr, "# cleanup failed\n");
    }
    return 0;
}

static dy_rpc_client_t *s_client(const char *party, SSL_CTX **ret_ctx)
{
    char cert[600], key[600], ca[600], parties_path[600], err[256];
    snprintf(cert, sizeof(cert), "%s/pki/%s/tls.pem", s_dir, party);
    snprintf(key, sizeof(key), "%s/pki/%s/tls.key", s_dir, party);
    snprintf(ca, sizeof(ca), "%s/pki/trusted-ca.pem", s_dir);
    snprintf(parties_path, sizeof(parties_path), "%s/pki/parties.txt", s_dir);
    dy_parties_t *parties = dy_parties_load(parties_path, err, sizeof(err));
    assert_non_null(parties);
    if (*ret_ctx) /* the previous client of this party is gone */
        SSL_CTX_free(*ret_ctx);
    dy_tls_conf_t tc = {.cert_path = cert,
                        .key_path = key,
                        .trusted_ca_path = ca,
                        .parties = parties,
                        .expected_name = "localhost"};
    *ret_ctx = dy_tls_client_ctx(&tc, err, sizeof(err));
    dy_parties_destroy(&parties);
    if (!*ret_ctx)
        fail_msg("client ctx: %s", err);
    dy_rpc_client_conf_t cc = {.ctx = *ret_ctx, .host = "127.0.0.1", .port = s_port};
    dy_rpc_client_t *cl = dy_rpc_client_new(&cc, err, sizeof(err));
    if (!cl)
        fail_msg("connect: %s", err);
    return cl;
}

/* The serialized AdvanceComputationRequest{header} of an LLv2 input. */
static size_t s_header_bytes(int description, uint8_t *out, size_t cap)
{
    Wfa__Measurement__System__V1alpha__AdvanceComputationRequest req =
        WFA__MEASUREMENT__SYSTEM__V1ALPHA__ADVANCE_COMPUTATION_REQUEST__INIT;
    Wfa__Measurement__System__V1alpha__AdvanceComputationRequest__Header h =
        WFA__MEASUREMENT__SYSTEM__V1ALPHA__ADVANCE_COMPUTATION_REQUEST__HEADER__INIT;
    Wfa__Measurement__System__V1alpha__LiquidLegionsV2 ll =
        WFA__MEASUREMENT__SYSTEM__V1ALPHA__LIQUID_LEGIONS_V2__INIT;
    ll.description = description;
    h.name = "computations/" COMP;
    h.protocol_case =
        WFA__MEASUREMENT__SYSTEM__V1ALPHA__ADVANCE_COMPUTATION_REQUEST__HEADER__PROTOCOL_LIQUID_LEGIONS_V2;
    h.liquid_legions_v2 = &ll;
    req.payload_case =
        WFA__MEASUREMENT__SYSTEM__V1ALPHA__ADVANCE_COMPUTATION_REQUEST__PAYLOAD_HEADER;
    req.header = &h;
    assert_true(protobuf_c_message_get_packed_size(&req.base) <= cap);
    return protobuf_c_message_pack(&req.base, out);
}

/* A file of n bytes of fill under the test directory; its path and SHA-256. */
static void s_body_file(const char *name, size_t n, uint8_t fill, char *path, size_t cap,
                        uint8_t sha[32])
{
    snprintf(path, cap, "%s/%s", s_dir, name);
    uint8_t *b = malloc(n ? n : 1);
    memset(b, fill, n);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(b, 1, n, f), n);
    fclose(f);
    dy_wire_sha256(b, n, sha);
    free(b);
}

static int s_upload(dy_rpc_client_t *cl, int description, size_t n, uint8_t fill,
                    dy_rpc_status_t *st)
{
    Wfa__Measurement__System__V1alpha__AdvanceComputationRequest req =
        WFA__MEASUREMENT__SYSTEM__V1ALPHA__ADVANCE_COMPUTATION_REQUEST__INIT;
    Wfa__Measurement__System__V1alpha__AdvanceComputationRequest__Header h =
        WFA__MEASUREMENT__SYSTEM__V1ALPHA__ADVANCE_COMPUTATION_REQUEST__HEADER__INIT;
    Wfa__Measurement__System__V1alpha__LiquidLegionsV2 ll =
        WFA__MEASUREMENT__SYSTEM__V1ALPHA__LIQUID_LEGIONS_V2__INIT;
    ll.description = description;
    h.name = "computations/" COMP;
    h.protocol_case =
        WFA__MEASUREMENT__SYSTEM__V1ALPHA__ADVANCE_COMPUTATION_REQUEST__HEADER__PROTOCOL_LIQUID_LEGIONS_V2;
    h.liquid_legions_v2 = &ll;
    req.payload_case =
        WFA__MEASUREMENT__SYSTEM__V1ALPHA__ADVANCE_COMPUTATION_REQUEST__PAYLOAD_HEADER;
    req.header = &h;
    uint8_t *body = malloc(n ? n : 1);
    memset(body, fill, n);
    dy_rpc_body_t b = {.data = body, .len = n, .fd = -1};
    ProtobufCMessage *resp = NULL;
    int rc =
        dy_rpc_upload(cl, DY_COORD_M_ADVANCE, &req.base, &b,
                      &wfa__measurement__system__v1alpha__advance_computation_response__descriptor,
                      &resp, 20000, st);
    if (resp)
        protobuf_c_message_free_unpacked(resp, NULL);
    free(body);
    return rc;
}

/* FulfillRequisition of requisition `req` (nonce) with n body bytes; the
 * fingerprint from the stored computation. */
static int s_fulfill(dy_rpc_client_t *cl, const char *req_id, uint64_t nonce, size_t n,
                     dy_rpc_status_t *st)
{
    char p[600];
    snprintf(p, sizeof(p), "%s/data/duchy.db", s_dir);
    dy_store_config_t sc = {.path = p};
    dy_store_t *store = NULL;
    assert_int_equal(dy_store_open(&sc, &store), 0);
    dy_computation_t row = {0};
    assert_int_equal(dy_store_get(store, COMP, &row), 0);
    Halo__Internal__V1__ComputationDetails *cd =
        halo__internal__v1__computation_details__unpack(NULL, row.details_len, row.details);
    FX_SYS(Computation) *c = wfa__measurement__system__v1alpha__computation__unpack(
        NULL, cd->kingdom_computation.len, cd->kingdom_computation.data);
    int idx = strcmp(req_id, REQ_ODD) == 0 ? 1 : 0;
    dy_buf_t fb = {0};
    dy_buf_append(&fb, c->measurement_spec.data, c->measurement_spec.len);
    dy_buf_append(&fb, c->requisitions[idx]->requisition_spec_hash.data,
                  c->requisitions[idx]->requisition_spec_hash.len);
    uint8_t fp[32];
    dy_wire_sha256(fb.data, fb.len, fp);
    dy_buf_free(&fb);
    wfa__measurement__system__v1alpha__computation__free_unpacked(c, NULL);
    halo__internal__v1__computation_details__free_unpacked(cd, NULL);
    dy_computation_clear(&row);
    dy_store_destroy(&store);

    Wfa__Measurement__Api__V2alpha__FulfillRequisitionRequest rq =
        WFA__MEASUREMENT__API__V2ALPHA__FULFILL_REQUISITION_REQUEST__INIT;
    Wfa__Measurement__Api__V2alpha__FulfillRequisitionRequest__Header h =
        WFA__MEASUREMENT__API__V2ALPHA__FULFILL_REQUISITION_REQUEST__HEADER__INIT;
    char name[128];
    snprintf(name, sizeof(name), "dataProviders/edp1/requisitions/%s", req_id);
    h.name = name;
    h.requisition_fingerprint = (ProtobufCBinaryData){32, fp};
    h.nonce = nonce;
    rq.payload_case = WFA__MEASUREMENT__API__V2ALPHA__FULFILL_REQUISITION_REQUEST__PAYLOAD_HEADER;
    rq.header = &h;
    uint8_t *body = malloc(n ? n : 1);
    memset(body, 0x33, n);
    dy_rpc_body_t b = {.data = body, .len = n, .fd = -1};
    ProtobufCMessage *resp = NULL;
    int rc =
        dy_rpc_upload(cl, DY_COORD_M_FULFILL, &rq.base, &b,
                      &wfa__measurement__api__v2alpha__fulfill_requisition_response__descriptor,
                      &resp, 20000, st);
    if (rc == 0) {
        Wfa__Measurement__Api__V2alpha__FulfillRequisitionResponse *fr = (void *)resp;
        assert_int_equal(fr->state, WFA__MEASUREMENT__API__V2ALPHA__REQUISITION__STATE__FULFILLED);
    }
    if (resp)
        protobuf_c_message_free_unpacked(resp, NULL);
    free(body);
    return rc;
}

static int s_stage_of(void)
{
    char p[600];
    snprintf(p, sizeof(p), "%s/data/duchy.db", s_dir);
    dy_store_config_t sc = {.path = p};
    dy_store_t *st = NULL;
    assert_int_equal(dy_store_open(&sc, &st), 0);
    dy_computation_t row = {0};
    assert_int_equal(dy_store_get(st, COMP, &row), 0);
    int stage = row.stage;
    dy_computation_clear(&row);
    dy_store_destroy(&st);
    return stage;
}

static char *s_admin(int verb, const char *arg)
{
    char ep[600];
    snprintf(ep, sizeof(ep), "ipc://%s/run/admin.sock", s_dir);
    const char *args[1] = {arg};
    void *resp = NULL;
    int rc = dy_actor_admin_call(ep, verb, args, arg ? 1 : 0, true, 5000, &resp);
    if (rc < 0)
        fail_msg("admin call: %s", strerror(-rc));
    Halo__Admin__V1__AdminResponse *r = resp;
    if (r->code != 0 || r->body_case != HALO__ADMIN__V1__ADMIN_RESPONSE__BODY_JSON)
        fail_msg("admin verb %d: code %d %s", verb, r->code, r->message);
    char *out = strdup(r->json);
    halo__admin__v1__admin_response__free_unpacked(r, NULL);
    return out;
}

static void test_cluster(void **state)
{
    (void)state;
    SSL_CTX *ctx1 = NULL, *ctx2 = NULL, *ctxe = NULL;
    dy_rpc_client_t *w1 = s_client("worker1", &ctx1);
    assert_string_equal(dy_rpc_client_peer(w1), "duchies/aggregator");

    /* §6.2 rule 2 as a sender sees it. */
    Wfa__Measurement__System__V1alpha__GetComputationStageRequest gq =
        WFA__MEASUREMENT__SYSTEM__V1ALPHA__GET_COMPUTATION_STAGE_REQUEST__INIT;
    gq.name = "computations/" COMP "/participants/aggregator/computationStage";
    ProtobufCMessage *resp = NULL;
    dy_rpc_status_t st;
    assert_int_equal(dy_rpc_unary(w1, DY_COORD_M_GET_STAGE, &gq.base,
                                  &wfa__measurement__system__v1alpha__computation_stage__descriptor,
                                  &resp, 10000, &st),
                     0);
    Wfa__Measurement__System__V1alpha__ComputationStage *cs = (void *)resp;
    assert_int_equal(cs->liquid_legions_v2_stage->stage, 5);
    protobuf_c_message_free_unpacked(resp, NULL);

    /* Uploads: a bad shape is refused, a good one recorded. */
    assert_int_equal(s_upload(w1, 1, 1000, 1, &st), -1);
    assert_int_equal(st.code, DY_WIRE_STATUS_INVALID_ARGUMENT);
    dy_rpc_client_destroy(&w1);
    w1 = s_client("worker1", &ctx1);
    size_t big = (size_t)390 * 6000; /* 2.3 MB: three chunks */
    if (s_upload(w1, 1, big, 1, &st) != 0)
        fail_msg("upload: %s %s", dy_wire_status_name(st.code), st.message);
    assert_int_equal(s_stage_of(), 5);
    /* A replay is a no-op OK. */
    if (s_upload(w1, 1, big, 1, &st) != 0)
        fail_msg("replay: %s %s", dy_wire_status_name(st.code), st.message);

    /* Not a duchy: PERMISSION_DENIED before any byte of the body. */
    dy_rpc_client_t *edp = s_client("edp1", &ctxe);
    assert_int_equal(s_upload(edp, 1, 390, 1, &st), -1);
    assert_int_equal(st.code, DY_WIRE_STATUS_PERMISSION_DENIED);
    dy_rpc_client_destroy(&edp);

    /* The second NA sends as a `duchy-coordinator --send` worker does (§6.2):
     * the receiver awaits it, so it uploads; then the receiver is past the
     * stage and the send is skipped. */
    dy_rpc_client_t *w2 = s_client("worker2", &ctx2);
    uint8_t hdr[256], sha[32];
    size_t hl = s_header_bytes(1, hdr, sizeof(hdr));
    char body[600], ep[64], code[48], msg[256];
    s_body_file("w2-output", 390 * 2, 2, body, sizeof(body), sha);
    snprintf(ep, sizeof(ep), "127.0.0.1:%d", s_port);
    dy_coord_send_job_t job = {.ctx = ctx2,
                               .computation = COMP,
                               .peer_id = "aggregator",
                               .endpoint = ep,
                               .header = hdr,
                               .header_len = hl,
                               .body_path = body,
                               .body_size = 390 * 2,
                               .awaited = 5,
                               .complete = 13,
                               .timeout_ms = 20000};
    memcpy(job.body_sha256, sha, 32);
    dy_outcome_t o = dy_coord_send_run(&job, code, msg);
    if (o != DY_OUTCOME_OK || strcmp(code, "sent") != 0)
        fail_msg("send: %d %s %s", o, code, msg);
    assert_int_equal(s_stage_of(), 6);
    o = dy_coord_send_run(&job, code, msg);
    assert_int_equal(o, DY_OUTCOME_OK);
    assert_string_equal(code, "skipped");
    /* A damaged recorded output is never sent. */
    job.body_sha256[0] ^= 1;
    o = dy_coord_send_run(&job, code, msg);
    assert_int_equal(o, DY_OUTCOME_TEMPFAIL);
    assert_string_equal(code, "output_unreadable");
    job.body_sha256[0] ^= 1;
    /* The peer must be the duchy it claims to be. */
    job.peer_id = "worker1";
    o = dy_coord_send_run(&job, code, msg);
    assert_int_equal(o, DY_OUTCOME_PERMFAIL);
    assert_string_equal(code, "wrong_peer");
    /* Now past the awaited stage: a conflicting replay is INPUT_CONFLICT. */
    assert_int_equal(s_upload(w2, 1, 390 * 2, 3, &st), -1);
    assert_int_equal(st.code, DY_WIRE_STATUS_FAILED_PRECONDITION);
    assert_int_equal(st.reason, DY_WIRE_REASON_INPUT_CONFLICT);
    dy_rpc_client_destroy(&w2);
    dy_rpc_client_destroy(&w1);

    /* An upload that dies mid-body (the client's deadline passes while its body source
     * stalls): the gateway drops the spool file and tells the coordinator. */
    int pp[2];
    assert_int_equal(pipe(pp), 0);
    pid_t wr = fork();
    if (wr == 0) {
        close(pp[0]);
        static uint8_t chunk[65536];
        memset(chunk, 1, sizeof(chunk));
        for (int i = 0; i < 24; i++) /* 1.5 MiB: one full chunk and a half */
            if (write(pp[1], chunk, sizeof(chunk)) < 0)
                _exit(1);
        sleep(3);
        _exit(0);
    }
    close(pp[1]);
    w1 = s_client("worker1", &ctx1);
    {
        Wfa__Measurement__System__V1alpha__AdvanceComputationRequest *hreq =
            wfa__measurement__system__v1alpha__advance_computation_request__unpack(NULL, hl, hdr);
        /* worker1's slot of the (past) setup stage: the header passes, the body never ends. */
        dy_rpc_body_t pb = {.fd = pp[0]};
        ProtobufCMessage *r2 = NULL;
        assert_int_equal(
            dy_rpc_upload(
                w1, DY_COORD_M_ADVANCE, &hreq->base, &pb,
                &wfa__measurement__system__v1alpha__advance_computation_response__descriptor, &r2,
                1000, &st),
            -1);
        wfa__measurement__system__v1alpha__advance_computation_request__free_unpacked(hreq, NULL);
    }
    close(pp[0]);
    waitpid(wr, NULL, 0);
    dy_rpc_client_destroy(&w1);
    usleep(300000);

    /* Nothing left in the spool (the stale file included). */
    char p[600];
    snprintf(p, sizeof(p), "%s/data/spool", s_dir);
    DIR *d = opendir(p);
    assert_non_null(d);
    int files = 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;)
        if (e->d_name[0] != '.')
            files++;
    closedir(d);
    assert_int_equal(files, 0);

    /* A claimer's SEND after the aggregator's SETUP_PHASE: the coordinator
     * forks a send worker to NA1, whose gateway (127.0.0.1:1) refuses the
     * connection: TEMPFAIL, the claimer retries later. */
    zsock_t *claimer = zsock_new(ZMQ_DEALER);
    assert_non_null(claimer);
    zsock_set_linger(claimer, 0);
    zsock_set_rcvtimeo(claimer, 20000);
    snprintf(p, sizeof(p), "ipc://%s/run/coordinator.sock", s_dir);
    assert_int_equal(zsock_connect(claimer, "%s", p), 0);
    char out_path[600];
    s_body_file("ag-output", 390, 9, out_path, sizeof(out_path), sha);
    Halo__Internal__V1__Blob ob = HALO__INTERNAL__V1__BLOB__INIT;
    ob.slot = "output";
    ob.path = out_path;
    ob.size = 390;
    ob.sha256 = (ProtobufCBinaryData){32, sha};
    Halo__Internal__V1__Blob *obp[1] = {&ob};
    Halo__Internal__V1__StageEffects fx = HALO__INTERNAL__V1__STAGE_EFFECTS__INIT;
    fx.kind = HALO__INTERNAL__V1__STAGE_EFFECTS__KIND__SEND;
    fx.computation_id = COMP;
    fx.protocol = HALO__INTERNAL__V1__PROTOCOL__LIQUID_LEGIONS_V2;
    fx.role = HALO__INTERNAL__V1__ROLE__AGGREGATOR;
    fx.stage = 6;
    fx.stage_name = "SETUP_PHASE";
    fx.attempt = 1;
    fx.n_outputs = 1;
    fx.outputs = obp;
    Halo__Internal__V1__ActorMessage am = HALO__INTERNAL__V1__ACTOR_MESSAGE__INIT;
    am.version = 1;
    am.request_id = "fx-1";
    am.sender = "claimer-1";
    am.body_case = HALO__INTERNAL__V1__ACTOR_MESSAGE__BODY_STAGE_EFFECTS;
    am.stage_effects = &fx;
    assert_int_equal(dy_actor_send_msg(claimer, NULL, &am), 0);
    Halo__Internal__V1__ActorMessage *rep = dy_actor_recv_msg(claimer, NULL);
    assert_non_null(rep);
    assert_string_equal(rep->request_id, "fx-1");
    assert_int_equal(rep->body_case, HALO__INTERNAL__V1__ACTOR_MESSAGE__BODY_EFFECTS_REPLY);
    if (rep->effects_reply->outcome != HALO__INTERNAL__V1__OUTCOME__OUTCOME_TEMPFAIL ||
        strcmp(rep->effects_reply->code, "peer_unavailable") != 0)
        fail_msg("SEND: %d %s %s", rep->effects_reply->outcome, rep->effects_reply->code,
                 rep->effects_reply->message);
    halo__internal__v1__actor_message__free_unpacked(rep, NULL);
    zsock_destroy(&claimer);

    /* An EDP fulfils a requisition: stored, the Kingdom told (fake participant), FULFILLED;
     * the Kingdom's refusal of another is passed on. */
    edp = s_client("edp1", &ctxe);
    assert_int_equal(s_fulfill(edp, REQ_ODD, 2, 390 * 3, &st), 0);
    dy_rpc_client_destroy(&edp);
    edp = s_client("edp1", &ctxe);
    assert_int_equal(s_fulfill(edp, REQ_EVEN, 1, 390, &st), -1);
    assert_int_equal(st.code, DY_WIRE_STATUS_FAILED_PRECONDITION);
    assert_int_equal(s_part_seen, 2);
    /* A nonce that is not the requisition's is refused before the body. */
    dy_rpc_client_destroy(&edp);
    edp = s_client("edp1", &ctxe);
    assert_int_equal(s_fulfill(edp, REQ_ODD, 7, 390, &st), -1);
    assert_int_equal(st.code, DY_WIRE_STATUS_FAILED_PRECONDITION);
    assert_int_equal(s_part_seen, 2);
    dy_rpc_client_destroy(&edp);

    /* The duchy admin endpoint. */
    char *j = s_admin(HALO__ADMIN__V1__VERB__COMPUTATIONS, NULL);
    assert_non_null(strstr(j, "\"stage\":\"SETUP_PHASE\""));
    free(j);
    j = s_admin(HALO__ADMIN__V1__VERB__AUDIT, "verify");
    assert_non_null(strstr(j, "\"ok\":true"));
    free(j);
    j = s_admin(HALO__ADMIN__V1__VERB__STATUS, NULL);
    assert_non_null(strstr(j, "\"duchy\":\"aggregator\""));
    assert_non_null(strstr(j, "{\"name\":\"duchy-gateway\",\"pid\":"));
    assert_non_null(strstr(j, "\"state\":\"unreachable\"")); /* no herald here */
    assert_non_null(strstr(j, "\"gateway\":{"));
    assert_non_null(strstr(j, "\"uploads_aborted\":1"));
    free(j);

    SSL_CTX_free(ctx1);
    SSL_CTX_free(ctx2);
    SSL_CTX_free(ctxe);
}

int main(void)
{
    if (!getenv("DY_SOURCE_ROOT") || !getenv("DY_BUILD_ROOT"))
        return 77;
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_cluster, s_setup, s_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
