/* fuzz_admin.c - libFuzzer target for the admin protocol (proto/admin.proto) and the
 * records actors hand each other (STYLE.md rule 38: "admin CLI grammar, job result
 * records"):
 *   0 an AdminRequest as every actor's admin socket decodes and answers it: the actor
 *     skeleton's own dispatcher (common/actor.c s_admin_dispatch: size and argument caps,
 *     STATUS, VERBOSE on|off, CONFIG, the actor's hook), reached by compiling actor.c into
 *     this file (the dispatcher is file-static there) and called on a hand-built actor (the
 *     socket, loop and process hardening of dy_actor_new are left out); the answer must
 *     pack and free;
 *   1 an AdminResponse as duchyctl and the coordinator's fan-out decode it: the message,
 *     then its JSON body through dy_json_parse (duchyctl prints it flattened) and
 *     dy_coord_json_member (the coordinator's STATUS assembly);
 *   2 the coordinator's duchy-wide assembly from its actors' answers: dy_coord_actor_names
 *     on supervisor.json text, dy_coord_status_json and dy_coord_merge_arrays on up to four
 *     answers (parts of a 2-byte big-endian length and bytes);
 *   3 a mill's result record on fd 3 as duchy-claimer reads it: dy_mill_unframe and
 *     dy_mill_outcome (common/claim_job.c);
 *   4 an AdminRequest at the coordinator's duchy-wide endpoint: its decoding and verb
 *     arguments (the size cap, unpack, AUDIT's "verify" or row count) are inline in
 *     actors/coordinator.c (s_admin_ready, s_admin_answer, file-static beside main) and
 *     repeated here line for line, then the views it answers from the store:
 *     dy_coord_admin_computations, dy_coord_admin_audit (on the fixture's store, with a
 *     few audit rows).  STATUS / WORKERS / CLAIMS fan out over ipc sockets and are
 *     answered by case 2's assembly instead.
 * duchyctl's command-line grammar is parsed inline in its main(), which exits on a usage
 * error, so there is no function to call for it here; its network side is case 1.
 * Input layout: byte 0 operation (% 5); byte 1 selector (op 0: want a hook answer for
 * WORKERS if b & 1; op 3: exit status b % 3); the rest is the message.
 */
#include "../../common/actor.c"

#include "audit.h"
#include "claim_job.h"
#include "coord_admin.h"
#include "fuzz_fixture.h"
#include "mc_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The actor under test, as dy_actor_new would leave it (minus loop and socket). */
static dy_actor_t *h_actor;
static bool h_hook_json;
/* The coordinator's store (fixture rows and a few audit rows). */
static fz_coord_t h_co;

static const char h_config_yaml[] = "duchy:\n"
                                    "  id: worker1\n"
                                    "  data_dir: /var/lib/duchy/worker1\n"
                                    "  runtime_dir: /run/duchy/worker1\n"
                                    "  master_key_file: /etc/duchy/worker1/master.key\n"
                                    "tls:\n"
                                    "  cert: /etc/duchy/worker1/tls.pem\n"
                                    "  key: /etc/duchy/worker1/tls.key\n"
                                    "  trusted_ca: /etc/duchy/trusted-ca.pem\n"
                                    "  parties: /etc/duchy/parties.txt\n"
                                    "signing:\n"
                                    "  cert: /etc/duchy/worker1/sign.pem\n"
                                    "  key: /etc/duchy/worker1/sign.key\n"
                                    "  certificate: duchies/worker1/certificates/1\n"
                                    "kingdom:\n"
                                    "  endpoint: localhost:8443\n"
                                    "  server_name: localhost\n"
                                    "gateway:\n"
                                    "  listen: 127.0.0.1:8444\n"
                                    "  max_upload: 2GiB\n"
                                    "peers:\n"
                                    "  - id: worker2\n"
                                    "    endpoint: localhost:8445\n"
                                    "    server_name: localhost\n"
                                    "  - id: aggregator\n"
                                    "    endpoint: localhost:8446\n"
                                    "    server_name: localhost\n"
                                    "roles:\n"
                                    "  aggregator: aggregator\n"
                                    "  first_non_aggregator: worker1\n"
                                    "  second_non_aggregator: worker2\n";

/* An actor hook as duchy-claimer has one: WORKERS answered, the rest not served. */
static int h_admin_hook(dy_actor_t *a, const void *req_, void *resp, void *arg)
{
    (void)a;
    (void)arg;
    const Halo__Admin__V1__AdminRequest *req = req_;
    if (req->verb != HALO__ADMIN__V1__VERB__WORKERS)
        return -ENOTSUP;
    if (!h_hook_json)
        return -EIO; /* a failing hook: INTERNAL */
    dy_actor_admin_json(resp, "[{\"pid\":1,\"computation\":\"AAAAAAAAAQE\"}]");
    return 0;
}

static void h_status_hook(dy_actor_t *a, void *arg)
{
    (void)arg;
    dy_actor_gauge(a, "running", 1);
}

static void h_close(void)
{
    if (h_actor == NULL)
        return;
    fz_coord_close(&h_co);
    dy_duchy_config_free(&h_actor->cfg);
    free(h_actor->counters);
    free(h_actor->config_path);
    free(h_actor);
    h_actor = NULL;
}

static void h_init(void)
{
    if (h_actor != NULL)
        return;
    dy_log_init("fuzz-admin", NULL, false);
    h_actor = calloc(1, sizeof(*h_actor));
    FZ_CHECK(h_actor != NULL);
    snprintf(h_actor->base, sizeof(h_actor->base), "claimer");
    snprintf(h_actor->name, sizeof(h_actor->name), "claimer-1");
    snprintf(h_actor->state, sizeof(h_actor->state), "ready");
    h_actor->instance = 1;
    h_actor->ready_fd = -1;
    h_actor->start_ms = dy_now_ms();
    h_actor->config_path = s_xstrdup("fuzz.yaml");
    h_actor->ops.admin = h_admin_hook;
    h_actor->ops.status = h_status_hook;
    char err[512];
    int rc = dy_config_load_string(h_config_yaml, "fuzz.yaml", dy_duchy_config_keys,
                                   dy_duchy_config_nkeys, &h_actor->cfg, err, sizeof(err));
    if (rc < 0)
        fprintf(stderr, "fuzz_admin: config: %s\n", err);
    FZ_CHECK(rc == 0);
    dy_actor_count(h_actor, "items", 3);
    fz_coord_open(&h_co);
    for (int i = 0; i < 3; i++) {
        dy_audit_event_t ev = {.actor = "fuzz",
                               .computation = "AAAAAAAAAQE",
                               .stage = i,
                               .event = "input_received",
                               .detail = "from=worker2 \"x\""};
        FZ_CHECK(dy_audit_append(h_co.store[0], &ev, NULL) == 0);
    }
    atexit(h_close);
}

static void h_request(int sel, const uint8_t *msg, size_t len)
{
    h_hook_json = sel & 1;
    Halo__Admin__V1__AdminResponse resp;
    halo__admin__v1__admin_response__init(&resp);
    s_admin_dispatch(h_actor, msg, len, &resp);
    /* Every answer is a known code with a message when it is an error, and packs. */
    FZ_CHECK(resp.code == S_CODE_OK || resp.code == S_CODE_INVALID_ARGUMENT ||
             resp.code == S_CODE_UNIMPLEMENTED || resp.code == S_CODE_INTERNAL);
    if (resp.code != S_CODE_OK)
        FZ_CHECK(resp.message != NULL && resp.message[0] != '\0');
    size_t n = halo__admin__v1__admin_response__get_packed_size(&resp);
    uint8_t *b = malloc(n + 1);
    FZ_CHECK(b != NULL);
    FZ_CHECK(halo__admin__v1__admin_response__pack(&resp, b) == n);
    Halo__Admin__V1__AdminResponse *back = halo__admin__v1__admin_response__unpack(NULL, n, b);
    FZ_CHECK(back != NULL && back->code == resp.code && back->body_case == resp.body_case);
    if (back->body_case == HALO__ADMIN__V1__ADMIN_RESPONSE__BODY_JSON) {
        /* What an actor answers in JSON is JSON. */
        char err[128];
        dy_json_t *j = dy_json_parse(back->json, strlen(back->json), err, sizeof(err));
        if (j == NULL)
            fprintf(stderr, "answer is not JSON (%s): %s\n", err, back->json);
        FZ_CHECK(j != NULL);
        dy_json_destroy(&j);
    }
    halo__admin__v1__admin_response__free_unpacked(back, NULL);
    free(b);
    dy_actor_admin_clear(&resp);
    /* VERBOSE on must not leak into later inputs. */
    dy_log_set_verbose(false);
}

static void h_walk(const dy_json_t *v, int depth)
{
    FZ_CHECK(depth <= 40);
    switch (v->type) {
    case DY_JSON_STRING:
        FZ_CHECK(v->text != NULL);
        (void)dy_json_str(v);
        break;
    case DY_JSON_NUMBER: {
        uint64_t u;
        double d;
        (void)dy_json_u64(v, &u);
        FZ_CHECK(dy_json_double(v, &d) == 0);
        break;
    }
    case DY_JSON_OBJECT:
        for (size_t i = 0; i < v->n; i++) {
            FZ_CHECK(v->keys[i] != NULL);
            FZ_CHECK(dy_json_get(v, v->keys[i]) != NULL);
            h_walk(&v->items[i], depth + 1);
        }
        break;
    case DY_JSON_ARRAY:
        for (size_t i = 0; i < v->n; i++)
            h_walk(&v->items[i], depth + 1);
        break;
    default:
        break;
    }
}

static void h_response(const uint8_t *msg, size_t len)
{
    Halo__Admin__V1__AdminResponse *r = halo__admin__v1__admin_response__unpack(NULL, len, msg);
    if (r == NULL)
        return;
    if (r->body_case == HALO__ADMIN__V1__ADMIN_RESPONSE__BODY_JSON) {
        char err[128];
        dy_json_t *j = dy_json_parse(r->json, strlen(r->json), err, sizeof(err));
        if (j != NULL) {
            h_walk(j, 0);
            dy_json_destroy(&j);
        } else {
            FZ_CHECK(memchr(err, '\0', sizeof(err)) != NULL);
        }
        static const char *const keys[] = {"pid", "uptime_seconds", "state", "counters"};
        for (size_t i = 0; i < DY_ARRAY_LEN(keys); i++) {
            char out[256];
            int rc = dy_coord_json_member(r->json, keys[i], out, sizeof(out));
            FZ_CHECK(rc == 0 || rc == -ENOENT || rc == -ENOSPC || rc == -EINVAL);
            if (rc == 0)
                FZ_CHECK(strlen(out) < sizeof(out));
        }
    } else if (r->body_case == HALO__ADMIN__V1__ADMIN_RESPONSE__BODY_SECTIONS) {
        for (size_t i = 0; i < r->sections->n_sections; i++)
            for (size_t k = 0; k < r->sections->sections[i]->n_entries; k++)
                FZ_CHECK(r->sections->sections[i]->entries[k]->key != NULL);
    }
    halo__admin__v1__admin_response__free_unpacked(r, NULL);
}

static void h_assembly(const uint8_t *msg, size_t len)
{
    fz_in_t in = {msg, len};
    fz_in_t sup = fz_part(&in);
    char *sj = fz_str(sup.p, sup.n);
    char names[DY_COORD_MAX_ACTORS][DY_COORD_NAME_MAX];
    int n = dy_coord_actor_names(sj, 2, names, DY_COORD_MAX_ACTORS);
    FZ_CHECK(n >= 1 && n <= DY_COORD_MAX_ACTORS);
    for (int i = 0; i < n; i++)
        FZ_CHECK(strlen(names[i]) > 0 && strlen(names[i]) < DY_COORD_NAME_MAX);
    free(sj);
    char *answers[DY_COORD_MAX_ACTORS] = {0};
    for (int i = 0; i < n && i < 4 && in.n > 0; i++) {
        fz_in_t a = fz_part(&in);
        answers[i] = fz_str(a.p, a.n);
    }
    dy_buf_t out = {0};
    int rc = dy_coord_status_json("worker1", names, (size_t)n, answers, &out);
    FZ_CHECK(rc == 0 || rc == -ENOMEM);
    dy_buf_free(&out);
    rc = dy_coord_merge_arrays(answers, (size_t)n, &out);
    FZ_CHECK(rc == 0 || rc == -ENOMEM);
    dy_buf_free(&out);
    for (int i = 0; i < n; i++)
        free(answers[i]);
}

static void h_mill_result(int sel, const uint8_t *msg, size_t len)
{
    const uint8_t *body = NULL;
    size_t blen = 0;
    int rc = dy_mill_unframe(msg, len, &body, &blen);
    FZ_CHECK(rc == 0 || rc == -EBADMSG);
    if (rc == 0)
        FZ_CHECK(blen + 4 == len && body == msg + 4);
    dy_spawn_status_t st = {.exited = sel % 3 != 2,
                            .exit_code = sel % 3 == 1 ? 111 : 0,
                            .signal = sel % 3 == 2 ? 9 : 0,
                            .result = msg,
                            .result_len = len};
    dy_mill_outcome_t o;
    dy_mill_outcome(&st, "job-1", &o);
    FZ_CHECK(o.outcome == DY_OUTCOME_OK || o.outcome == DY_OUTCOME_TEMPFAIL ||
             o.outcome == DY_OUTCOME_PERMFAIL);
    FZ_CHECK((o.outcome == DY_OUTCOME_OK) == (o.code[0] == '\0'));
    if (o.outcome == DY_OUTCOME_OK)
        FZ_CHECK(o.result != NULL && rc == 0);
    dy_mill_outcome_clear(&o);
}

/* actors/coordinator.c s_admin_ready / s_admin_answer, for the verbs answered from the
 * store. */
static void h_coordinator(const uint8_t *msg, size_t len)
{
    Halo__Admin__V1__AdminRequest *req =
        len <= 65536 ? halo__admin__v1__admin_request__unpack(NULL, len, msg) : NULL;
    if (req == NULL)
        return; /* INVALID_ARGUMENT "malformed or oversized AdminRequest" */
    dy_buf_t json = {0};
    int rc = -ENOTSUP;
    if (req->verb == HALO__ADMIN__V1__VERB__COMPUTATIONS) {
        rc = dy_coord_admin_computations(&h_co.ctx[0], &json);
    } else if (req->verb == HALO__ADMIN__V1__VERB__AUDIT) {
        bool verify = req->n_args > 0 && strcmp(req->args[0], "verify") == 0;
        size_t tail = 100;
        rc = 0;
        if (req->n_args > 0 && !verify) {
            char *end = NULL;
            long v = strtol(req->args[0], &end, 10);
            if (!end || *end || v <= 0 || v > 100000)
                rc = -EINVAL;
            tail = (size_t)v;
        }
        if (rc == 0)
            rc = dy_coord_admin_audit(&h_co.ctx[0], verify, tail, &json);
    }
    if (rc == 0) {
        /* The body the coordinator sends is JSON duchyctl can read. */
        char err[128];
        FZ_CHECK(dy_buf_append(&json, "", 1) == 0);
        dy_json_t *j = dy_json_parse((const char *)json.data, json.len - 1, err, sizeof(err));
        if (j == NULL)
            fprintf(stderr, "coordinator answer is not JSON (%s): %s\n", err, json.data);
        FZ_CHECK(j != NULL);
        dy_json_destroy(&j);
    } else {
        FZ_CHECK(rc == -ENOTSUP || rc == -EINVAL);
    }
    dy_buf_free(&json);
    halo__admin__v1__admin_request__free_unpacked(req, NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    h_init();
    const uint8_t *msg = data + 2;
    size_t len = size - 2;
    switch (data[0] % 5) {
    case 0:
        h_request(data[1], msg, len);
        break;
    case 1:
        h_response(msg, len);
        break;
    case 2:
        h_assembly(msg, len);
        break;
    case 3:
        h_mill_result(data[1], msg, len);
        break;
    default:
        h_coordinator(msg, len);
        break;
    }
    return 0;
}
