/* test_config.c - the YAML loader of common/config.c against a realistic key table: golden
 * normalised output (tests/unit/config/golden.ok, found through DY_SOURCE_ROOT), print ->
 * load round trips, every error class with its exact "file:line: key: reason" text, the
 * value syntaxes, the alias/oversize/depth refusals and the reload diff. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "config.h"

/* ---- the table ------------------------------------------------------------------------- */

typedef struct {
    char *id;       /* owned */
    char *endpoint; /* owned */
    int role;       /* index into s_roles */
    int64_t weight;
} t_peer_t;

typedef struct {
    char *duchy_id;           /* owned */
    int64_t workers;
    char *tls_cert;           /* owned */
    char *listen;             /* owned */
    char *tls_key;            /* owned */
    int64_t tls_handshake_ms;
    int64_t offset;
    int64_t lease_ms;
    uint64_t max_blob;
    int log_level;            /* index into s_levels */
    bool log_verbose;
    char *motd;               /* owned */
    double epsilon;
    double delta;
    t_peer_t *peers;          /* owned, npeers items */
    size_t npeers;
} t_cfg_t;

static const char *const s_levels[] = {"debug", "info", "warn", NULL};
static const char *const s_roles[] = {"aggregator", "non_aggregator", NULL};

static const dy_cfg_key_t s_peer_keys[] = {
    {.path = "id", .type = DY_CFG_STRING, .offset = offsetof(t_peer_t, id),
     .help = "The peer's duchy id."},
    {.path = "endpoint", .type = DY_CFG_ENDPOINT, .offset = offsetof(t_peer_t, endpoint),
     .help = "Where the peer's herald listens."},
    {.path = "role", .type = DY_CFG_ENUM, .def = "non_aggregator", .choices = s_roles,
     .offset = offsetof(t_peer_t, role), .help = "The peer's protocol role."},
    {.path = "weight", .type = DY_CFG_INT, .def = "1", .min = 0, .max = 100,
     .offset = offsetof(t_peer_t, weight)},
};

/* Keys of one group ("tls.*") are deliberately not adjacent: print must group them. */
static const dy_cfg_key_t s_keys[] = {
    {.path = "duchy.id", .type = DY_CFG_STRING, .offset = offsetof(t_cfg_t, duchy_id),
     .help = "This duchy's id in the federation."},
    {.path = "workers", .type = DY_CFG_INT, .def = "4", .min = 1, .max = 64, .reloadable = true,
     .offset = offsetof(t_cfg_t, workers), .help = "Job worker processes."},
    {.path = "tls.cert", .type = DY_CFG_STRING, .offset = offsetof(t_cfg_t, tls_cert),
     .help = "TLS certificate chain (PEM)."},
    {.path = "listen", .type = DY_CFG_ENDPOINT, .def = "0.0.0.0:8443",
     .offset = offsetof(t_cfg_t, listen), .help = "Herald listening address."},
    {.path = "tls.key", .type = DY_CFG_STRING, .offset = offsetof(t_cfg_t, tls_key),
     .help = "TLS private key (PEM)."},
    {.path = "tls.handshake_timeout", .type = DY_CFG_DURATION, .def = "10s", .min = 100,
     .max = 60000, .offset = offsetof(t_cfg_t, tls_handshake_ms)},
    {.path = "offset", .type = DY_CFG_INT, .def = "-5", .min = -100, .max = 100,
     .reloadable = true, .offset = offsetof(t_cfg_t, offset), .help = "A signed knob."},
    {.path = "lease", .type = DY_CFG_DURATION, .def = "30s", .min = 1000, .max = 3600000,
     .offset = offsetof(t_cfg_t, lease_ms), .help = "Claim lease length."},
    {.path = "max_blob", .type = DY_CFG_SIZE, .def = "64MiB", .min = 1024,
     .max = 1099511627776.0, .offset = offsetof(t_cfg_t, max_blob),
     .help = "Largest blob accepted."},
    {.path = "log.level", .type = DY_CFG_ENUM, .def = "info", .choices = s_levels,
     .reloadable = true, .offset = offsetof(t_cfg_t, log_level), .help = "Log level."},
    {.path = "log.verbose", .type = DY_CFG_BOOL, .def = "off", .reloadable = true,
     .offset = offsetof(t_cfg_t, log_verbose), .help = "Print debug lines."},
    {.path = "motd", .type = DY_CFG_STRING, .def = "", .reloadable = true,
     .offset = offsetof(t_cfg_t, motd), .help = "Free text shown by duchyctl status."},
    {.path = "mpc_noise.publisher.epsilon", .type = DY_CFG_DOUBLE, .def = "0.0115",
     .min = 0.0001, .max = 10, .offset = offsetof(t_cfg_t, epsilon),
     .help = "Publisher noise epsilon."},
    {.path = "mpc_noise.publisher.delta", .type = DY_CFG_DOUBLE, .def = "1e-12",
     .offset = offsetof(t_cfg_t, delta), .help = "Publisher noise delta (unbounded)."},
    {.path = "peers", .type = DY_CFG_LIST, .offset = offsetof(t_cfg_t, peers),
     .count_offset = offsetof(t_cfg_t, npeers), .sub = s_peer_keys,
     .nsub = DY_ARRAY_LEN(s_peer_keys), .item_size = sizeof(t_peer_t), .min_items = 1,
     .max_items = 8, .help = "The other duchies."},
};
#define NKEYS DY_ARRAY_LEN(s_keys)

/* The 8-line base every error case extends (required keys only). */
#define BASE                                                                                  \
    "duchy:\n"                                                                                \
    "  id: worker1\n"                                                                         \
    "tls:\n"                                                                                  \
    "  cert: /c\n"                                                                            \
    "  key: /k\n"                                                                             \
    "peers:\n"                                                                                \
    "  - id: a\n"                                                                             \
    "    endpoint: a.example:443\n"

/* ---- helpers --------------------------------------------------------------------------- */

static char *s_path(const char *file)
{
    const char *root = getenv("DY_SOURCE_ROOT");
    assert_non_null(root);
    char *p = NULL;
    assert_true(asprintf(&p, "%s/tests/unit/config/%s", root, file) > 0);
    return p;
}

static char *s_slurp(const char *path, size_t *ret_len)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    char *buf = NULL;
    size_t len = 0, cap = 0, n;
    do {
        if (cap - len < 4096) {
            cap = cap ? cap * 2 : 8192;
            buf = realloc(buf, cap + 1);
            assert_non_null(buf);
        }
        n = fread(buf + len, 1, cap - len, f);
        len += n;
    } while (n > 0);
    fclose(f);
    buf[len] = '\0';
    *ret_len = len;
    return buf;
}

static char *s_print(const t_cfg_t *cfg)
{
    char *out = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&out, &len);
    assert_non_null(f);
    assert_int_equal(dy_config_print(s_keys, NKEYS, cfg, f), 0);
    fclose(f);
    return out;
}

static void s_load_ok(const char *yaml, t_cfg_t *cfg)
{
    char err[512] = "";
    int rc = dy_config_load_string(yaml, "t.yaml", s_keys, NKEYS, cfg, err, sizeof(err));
    if (rc != 0)
        fail_msg("load failed: %d %s", rc, err);
}

/* Loads yaml, which must fail with exactly `want`, leaving nothing allocated. */
static void s_expect_error(const char *yaml, const char *want)
{
    t_cfg_t cfg;
    memset(&cfg, 0xa5, sizeof(cfg));
    char err[512] = "";
    int rc = dy_config_load_string(yaml, "t.yaml", s_keys, NKEYS, &cfg, err, sizeof(err));
    if (rc != -EINVAL || strcmp(err, want) != 0)
        fail_msg("rc %d\n got:  %s\n want: %s", rc, err, want);
    assert_null(cfg.duchy_id);
    assert_null(cfg.tls_cert);
    assert_null(cfg.tls_key);
    assert_null(cfg.listen);
    assert_null(cfg.motd);
    assert_null(cfg.peers);
    assert_int_equal(cfg.npeers, 0);
}

/* ---- golden and round trip ------------------------------------------------------------- */

static void test_full_values(void **state)
{
    (void)state;
    char *path = s_path("full.yaml");
    t_cfg_t cfg;
    char err[512];
    assert_int_equal(dy_config_load(path, s_keys, NKEYS, &cfg, err, sizeof(err)), 0);
    assert_string_equal(cfg.duchy_id, "worker1");
    assert_string_equal(cfg.tls_cert, "/etc/duchy/tls/worker1.pem");
    assert_string_equal(cfg.tls_key, "/etc/duchy/tls/worker1.key");
    assert_int_equal(cfg.tls_handshake_ms, 1500);
    assert_int_equal(cfg.workers, 12);
    assert_int_equal(cfg.offset, -7);
    assert_string_equal(cfg.listen, "[::1]:8443");
    assert_int_equal(cfg.lease_ms, 90000);
    assert_int_equal(cfg.max_blob, 64u << 20);
    assert_int_equal(cfg.log_level, 0);
    assert_true(cfg.log_verbose);
    assert_string_equal(cfg.motd, "tab\there, \"quoted\", back\\slash, caf\xc3\xa9, bell\a");
    assert_true(cfg.epsilon == 0.25);
    assert_true(cfg.delta == 1.0e-12);
    assert_int_equal(cfg.npeers, 3);
    assert_string_equal(cfg.peers[0].id, "aggregator");
    assert_string_equal(cfg.peers[0].endpoint, "agg.duchy.example:443");
    assert_int_equal(cfg.peers[0].role, 0);
    assert_int_equal(cfg.peers[0].weight, 100);
    assert_string_equal(cfg.peers[1].id, "worker2");
    assert_string_equal(cfg.peers[1].endpoint, "10.1.2.3:8443");
    assert_int_equal(cfg.peers[1].role, 1); /* default */
    assert_int_equal(cfg.peers[1].weight, 1);
    assert_string_equal(cfg.peers[2].endpoint, "[2001:db8::3]:443");
    assert_int_equal(cfg.peers[2].weight, 0);
    dy_config_free(s_keys, NKEYS, &cfg);
    assert_null(cfg.duchy_id);
    assert_null(cfg.peers);
    assert_int_equal(cfg.npeers, 0);
    free(path);
}

static void test_golden(void **state)
{
    (void)state;
    char *path = s_path("full.yaml"), *gpath = s_path("golden.ok");
    t_cfg_t cfg;
    char err[512];
    assert_int_equal(dy_config_load(path, s_keys, NKEYS, &cfg, err, sizeof(err)), 0);
    char *out = s_print(&cfg);
    size_t glen;
    char *golden = s_slurp(gpath, &glen);
    if (strcmp(out, golden) != 0) {
        fprintf(stderr, "# normalised output differs from %s; got:\n%s", gpath, out);
        fail();
    }
    free(golden);
    free(out);
    dy_config_free(s_keys, NKEYS, &cfg);
    free(path);
    free(gpath);
}

/* print -> load gives an equal struct, and printing that gives the same bytes. */
static void s_round_trip(const t_cfg_t *cfg)
{
    char *out = s_print(cfg);
    t_cfg_t back;
    s_load_ok(out, &back);
    assert_true(dy_config_equal(s_keys, NKEYS, cfg, &back));
    char *out2 = s_print(&back);
    assert_string_equal(out, out2);
    free(out);
    free(out2);
    dy_config_free(s_keys, NKEYS, &back);
}

static void test_round_trip(void **state)
{
    (void)state;
    const char *files[] = {"full.yaml", "minimal.yaml"};
    for (size_t i = 0; i < DY_ARRAY_LEN(files); i++) {
        char *path = s_path(files[i]);
        t_cfg_t cfg;
        char err[512];
        assert_int_equal(dy_config_load(path, s_keys, NKEYS, &cfg, err, sizeof(err)), 0);
        s_round_trip(&cfg);
        dy_config_free(s_keys, NKEYS, &cfg);
        free(path);
    }
}

/* Values a hand-built struct can hold that are awkward to print. */
static void test_round_trip_awkward(void **state)
{
    (void)state;
    t_cfg_t cfg;
    s_load_ok(BASE, &cfg);
    free(cfg.motd);
    /* controls, DEL, C1 U+0085 and U+0080, BOM, U+FFFE, a non-BMP character, U+2028 and
     * U+2029 (which YAML folds as line breaks; found by fuzz_config), YAML syntax */
    cfg.motd = strdup("\x01\x1f\x7f \xc2\x85\xc2\x80 \xef\xbb\xbf \xef\xbf\xbe \xf0\x9f\x98\x80"
                      " \xe2\x80\xa8|\xe2\x80\xa9"
                      " - [a]: {b} # c & *d ! | > ' \" % @ `\r\n");
    free(cfg.tls_key);
    cfg.tls_key = strdup("");
    cfg.workers = 64;
    cfg.offset = -100;
    cfg.epsilon = 0.1;
    cfg.delta = 5e-324; /* the smallest subnormal */
    cfg.lease_ms = 3600000;
    cfg.tls_handshake_ms = 1001;
    cfg.max_blob = 1099511627776ULL - 1;
    s_round_trip(&cfg);
    cfg.delta = -0.0;
    cfg.epsilon = 10;
    cfg.max_blob = 1024;
    s_round_trip(&cfg);
    dy_config_free(s_keys, NKEYS, &cfg);
}

static void test_defaults(void **state)
{
    (void)state;
    t_cfg_t cfg;
    s_load_ok(BASE, &cfg);
    assert_int_equal(cfg.workers, 4);
    assert_string_equal(cfg.listen, "0.0.0.0:8443");
    assert_int_equal(cfg.tls_handshake_ms, 10000);
    assert_int_equal(cfg.offset, -5);
    assert_int_equal(cfg.lease_ms, 30000);
    assert_int_equal(cfg.max_blob, 64u << 20);
    assert_int_equal(cfg.log_level, 1);
    assert_false(cfg.log_verbose);
    assert_string_equal(cfg.motd, "");
    assert_true(cfg.epsilon == 0.0115);
    assert_true(cfg.delta == 1e-12);
    assert_int_equal(cfg.peers[0].role, 1);
    dy_config_free(s_keys, NKEYS, &cfg);
}

/* A null value for a group ("log:" with everything commented out) means "all defaults". */
static void test_empty_group(void **state)
{
    (void)state;
    t_cfg_t cfg;
    s_load_ok(BASE "log:\nmpc_noise:\n  publisher: ~\n", &cfg);
    assert_int_equal(cfg.log_level, 1);
    dy_config_free(s_keys, NKEYS, &cfg);
}

/* ---- errors ---------------------------------------------------------------------------- */

static void test_error_unknown(void **state)
{
    (void)state;
    s_expect_error(BASE "bogus: 1\n", "t.yaml:9: bogus: unknown key");
    s_expect_error(BASE "log:\n  colour: red\n", "t.yaml:10: log.colour: unknown key");
    s_expect_error(BASE "    colour: red\n", "t.yaml:9: peers[0].colour: unknown key");
    /* A dotted key is not a shortcut for the nested form. */
    s_expect_error(BASE "log.level: warn\n", "t.yaml:9: log.level: unknown key");
    s_expect_error(BASE "? [a]\n: 1\n",
                   "t.yaml:9: mapping keys must be scalars, got a sequence");
}

static void test_error_missing(void **state)
{
    (void)state;
    s_expect_error("duchy:\n  id: w\ntls:\n  cert: /c\npeers: [{id: a, endpoint: 'a:1'}]\n",
                   "t.yaml:1: tls.key: missing required key");
    s_expect_error("duchy: {id: w}\ntls: {cert: c, key: k}\npeers:\n  - id: a\n  - id: b\n"
                   "    endpoint: b:1\n",
                   "t.yaml:4: peers[0].endpoint: missing required key");
    s_expect_error("", "t.yaml:1: duchy.id: missing required key");
    s_expect_error("# nothing but a comment\n", "t.yaml:1: duchy.id: missing required key");
}

static void test_error_duplicate(void **state)
{
    (void)state;
    s_expect_error(BASE "workers: 2\nworkers: 3\n",
                   "t.yaml:10: workers: duplicate key (first set on line 9)");
    s_expect_error(BASE "tls:\n  key: /other\n", "t.yaml:9: tls: duplicate key (first set on "
                                                 "line 3)");
    s_expect_error(BASE "    id: b\n", "t.yaml:9: peers[0].id: duplicate key (first set on "
                                      "line 7)");
}

static void test_error_type(void **state)
{
    (void)state;
    s_expect_error(BASE "workers: [1]\n", "t.yaml:9: workers: expected a scalar, got a sequence");
    s_expect_error(BASE "workers: two\n", "t.yaml:9: workers: expected an integer, got \"two\"");
    s_expect_error(BASE "workers: 1.0\n", "t.yaml:9: workers: expected an integer, got \"1.0\"");
    s_expect_error(BASE "workers: \"2\"\n",
                   "t.yaml:9: workers: expected an integer, got a quoted string");
    s_expect_error(BASE "log: 5\n", "t.yaml:9: log: expected a mapping, got a scalar");
    s_expect_error(BASE "log:\n  verbose: maybe\n",
                   "t.yaml:10: log.verbose: expected a boolean (true/false/yes/no/on/off), "
                   "got \"maybe\"");
    s_expect_error(BASE "mpc_noise: {publisher: {delta: .nan}}\n",
                   "t.yaml:9: mpc_noise.publisher.delta: expected a number, got \".nan\"");
    s_expect_error(BASE "mpc_noise: {publisher: {delta: 0x10}}\n",
                   "t.yaml:9: mpc_noise.publisher.delta: expected a number, got \"0x10\"");
    s_expect_error(BASE "motd: ~\n",
                   "t.yaml:9: motd: expected a string, got null (write \"\" for empty)");
    s_expect_error(BASE "motd: \"a\\0b\"\n", "t.yaml:9: motd: value contains a NUL byte");
    s_expect_error("duchy: {id: w}\ntls: {cert: c, key: k}\npeers: {id: a}\n",
                   "t.yaml:3: peers: expected a sequence, got a mapping");
    s_expect_error("duchy: {id: w}\ntls: {cert: c, key: k}\npeers: [a]\n",
                   "t.yaml:3: peers[0]: expected a mapping, got a scalar");
    s_expect_error("- 1\n", "t.yaml:1: the document must be a mapping, got a sequence");
    s_expect_error("just text\n", "t.yaml:1: the document must be a mapping, got a scalar");
}

static void test_error_range(void **state)
{
    (void)state;
    s_expect_error(BASE "workers: 65\n", "t.yaml:9: workers: value 65 out of range [1, 64]");
    s_expect_error(BASE "workers: 0\n", "t.yaml:9: workers: value 0 out of range [1, 64]");
    s_expect_error(BASE "offset: -101\n",
                   "t.yaml:9: offset: value -101 out of range [-100, 100]");
    s_expect_error(BASE "offset: 99999999999999999999\n",
                   "t.yaml:9: offset: value 99999999999999999999 out of range [-100, 100]");
    s_expect_error(BASE "lease: 2h\n", "t.yaml:9: lease: value 2h out of range [1s, 1h]");
    s_expect_error(BASE "lease: 999\n", "t.yaml:9: lease: value 999 out of range [1s, 1h]");
    s_expect_error(BASE "max_blob: 1023B\n",
                   "t.yaml:9: max_blob: value 1023B out of range [1KiB, 1TiB]");
    s_expect_error(BASE "max_blob: 99999999TiB\n",
                   "t.yaml:9: max_blob: value 99999999TiB out of range [1KiB, 1TiB]");
    s_expect_error(BASE "mpc_noise: {publisher: {epsilon: 10.5}}\n",
                   "t.yaml:9: mpc_noise.publisher.epsilon: value 10.5 out of range "
                   "[0.0001, 10.0]");
    s_expect_error(BASE "mpc_noise: {publisher: {delta: 1e999}}\n",
                   "t.yaml:9: mpc_noise.publisher.delta: value 1e999 out of range");
    s_expect_error(BASE "    weight: 101\n",
                   "t.yaml:9: peers[0].weight: value 101 out of range [0, 100]");
}

static void test_error_enum_and_syntax(void **state)
{
    (void)state;
    s_expect_error(BASE "log:\n  level: loud\n",
                   "t.yaml:10: log.level: bad value \"loud\" (choices: debug, info, warn)");
    s_expect_error(BASE "    role: Aggregator\n",
                   "t.yaml:9: peers[0].role: bad value \"Aggregator\" (choices: aggregator, "
                   "non_aggregator)");
    s_expect_error(BASE "lease: 1.5s\n",
                   "t.yaml:9: lease: expected a duration (e.g. 250ms, 5s, 10m, 1h, 1d; a bare "
                   "number is ms), got \"1.5s\"");
    s_expect_error(BASE "max_blob: 4MB\n",
                   "t.yaml:9: max_blob: expected a size (e.g. 512B, 64KiB, 4MiB, 1GiB, 1TiB; a "
                   "bare number is bytes), got \"4MB\"");
    s_expect_error(BASE "listen: localhost\n",
                   "t.yaml:9: listen: bad endpoint \"localhost\": expected host:port");
    s_expect_error(BASE "listen: \"h:70000\"\n",
                   "t.yaml:9: listen: bad endpoint \"h:70000\": port must be a number from 0 to "
                   "65535");
    s_expect_error(BASE "listen: \"::1:80\"\n",
                   "t.yaml:9: listen: bad endpoint \"::1:80\": bad character in host (an IPv6 "
                   "address needs brackets)");
}

static void test_error_list_bounds(void **state)
{
    (void)state;
    s_expect_error("duchy: {id: w}\ntls: {cert: c, key: k}\npeers: []\n",
                   "t.yaml:3: peers: list has 0 items, expected 1 to 8");
    s_expect_error("duchy: {id: w}\ntls: {cert: c, key: k}\npeers:\n",
                   "t.yaml:3: peers: list has 0 items, expected 1 to 8");
    char yaml[2048] = "duchy: {id: w}\ntls: {cert: c, key: k}\npeers:\n";
    for (int i = 0; i < 9; i++)
        snprintf(yaml + strlen(yaml), sizeof(yaml) - strlen(yaml),
                 "  - {id: p%d, endpoint: 'p:%d'}\n", i, i);
    s_expect_error(yaml, "t.yaml:4: peers: list has 9 items, expected 1 to 8");
    /* eight is fine */
    *strrchr(yaml, '-') = '\0';
    yaml[strlen(yaml) - 2] = '\0';
    t_cfg_t cfg;
    s_load_ok(yaml, &cfg);
    assert_int_equal(cfg.npeers, 8);
    assert_string_equal(cfg.peers[7].endpoint, "p:7");
    dy_config_free(s_keys, NKEYS, &cfg);
}

static void test_error_document(void **state)
{
    (void)state;
    s_expect_error(BASE "motd: &m hello\nlisten: *m\n",
                   "t.yaml:9: anchors and aliases are not supported");
    s_expect_error(BASE "workers: !!int 3\n", "t.yaml:9: YAML tags are not supported");
    s_expect_error(BASE "---\nworkers: 3\n", "t.yaml:9: only one YAML document is allowed");
    s_expect_error(BASE "<<: {workers: 3}\n", "t.yaml:9: <<: unknown key");

    t_cfg_t cfg;
    char err[512];
    assert_int_equal(dy_config_load_string(BASE "motd: [1, 2\n", "t.yaml", s_keys, NKEYS, &cfg,
                                           err, sizeof(err)),
                     -EINVAL);
    assert_memory_equal(err, "t.yaml:10: YAML syntax error: ", 30);

    /* Deep nesting is refused before it costs anything. */
    char deep[300] = "motd: ";
    memset(deep + 6, '[', 200);
    s_expect_error(deep, "t.yaml:1: nesting deeper than 32 levels");

    assert_int_equal(dy_config_load("/nonexistent/duchy.yaml", s_keys, NKEYS, &cfg, err,
                                    sizeof(err)),
                     -ENOENT);
    assert_string_equal(err, "/nonexistent/duchy.yaml: No such file or directory");
}

/* The classic billion-laughs document: refused at the first anchor, whatever its size. */
static void test_billion_laughs(void **state)
{
    (void)state;
    char *yaml = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&yaml, &len);
    assert_non_null(f);
    fprintf(f, "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n");
    for (char c = 'b'; c <= 'i'; c++)
        fprintf(f, "%c: &%c [*%c,*%c,*%c,*%c,*%c,*%c,*%c,*%c]\n", c, c, c - 1, c - 1, c - 1,
                c - 1, c - 1, c - 1, c - 1, c - 1);
    fclose(f);
    s_expect_error(yaml, "t.yaml:1: anchors and aliases are not supported");
    /* Without the anchor on line 1, the first alias is what is refused. */
    yaml[3] = ' ', yaml[4] = ' ';
    s_expect_error(yaml, "t.yaml:2: anchors and aliases are not supported");
    free(yaml);
}

static void test_oversize(void **state)
{
    (void)state;
    size_t n = DY_CONFIG_MAX_BYTES + 1;
    char *yaml = malloc(n + 1);
    assert_non_null(yaml);
    memset(yaml, '#', n);
    for (size_t i = 79; i < n; i += 80)
        yaml[i] = '\n';
    yaml[n] = '\0';
    s_expect_error(yaml, "t.yaml:1: document is 1048577 bytes, larger than the limit of "
                         "1048576 bytes");

    /* The same through a file; a file of exactly the limit is read. */
    char path[] = "/tmp/test_config_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, yaml, n), (ssize_t)n);
    close(fd);
    t_cfg_t cfg;
    char err[512];
    assert_int_equal(dy_config_load(path, s_keys, NKEYS, &cfg, err, sizeof(err)), -EINVAL);
    char want[512];
    snprintf(want, sizeof(want), "%s:1: document is 1048577 bytes, larger than the limit of "
             "1048576 bytes", path);
    assert_string_equal(err, want);
    assert_int_equal(truncate(path, (off_t)n - 1), 0);
    assert_int_equal(dy_config_load(path, s_keys, NKEYS, &cfg, err, sizeof(err)), -EINVAL);
    snprintf(want, sizeof(want), "%s:1: duchy.id: missing required key", path);
    assert_string_equal(err, want);
    unlink(path);
    free(yaml);
}

/* A table error is a programmer's error, but is reported, not crashed on. */
static void test_nested_list_refused(void **state)
{
    (void)state;
    static const dy_cfg_key_t inner[] = {
        {.path = "x", .type = DY_CFG_INT, .def = "1", .offset = 0},
    };
    static const dy_cfg_key_t mid[] = {
        {.path = "inner", .type = DY_CFG_LIST, .sub = inner, .nsub = 1, .item_size = 8,
         .offset = 0, .count_offset = 8, .def = "[]"},
    };
    static const dy_cfg_key_t outer[] = {
        {.path = "outer", .type = DY_CFG_LIST, .sub = mid, .nsub = 1, .item_size = 16,
         .offset = 0, .count_offset = 8, .def = "[]"},
    };
    struct {
        void *items;
        size_t n;
    } cfg;
    char err[256];
    assert_int_equal(dy_config_load_string("", "t.yaml", outer, 1, &cfg, err, sizeof(err)),
                     -EINVAL);
    assert_string_equal(err, "t.yaml:0: inner: lists inside list items are not supported");
}

/* ---- value syntax ---------------------------------------------------------------------- */

static void test_durations(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        int rc;
        int64_t ms;
    } cases[] = {
        {"0", 0, 0},        {"250ms", 0, 250},  {"5s", 0, 5000},      {"10m", 0, 600000},
        {"1h", 0, 3600000}, {"2d", 0, 172800000}, {"42", 0, 42},
        {"9223372036854775807", 0, INT64_MAX}, {"9223372036854775808", -ERANGE, 0},
        {"106751991167d", 0, 106751991167LL * 86400000}, {"106751991168d", -ERANGE, 0},
        {"", -EINVAL, 0},   {"s", -EINVAL, 0},  {"-1s", -EINVAL, 0},  {"1.5s", -EINVAL, 0},
        {"5 s", -EINVAL, 0}, {"5S", -EINVAL, 0}, {"5sec", -EINVAL, 0}, {"1us", -EINVAL, 0},
    };
    for (size_t i = 0; i < DY_ARRAY_LEN(cases); i++) {
        int64_t ms = -1;
        int rc = dy_config_parse_duration(cases[i].text, &ms);
        if (rc != cases[i].rc || (rc == 0 && ms != cases[i].ms))
            fail_msg("%s: rc %d ms %lld", cases[i].text, rc, (long long)ms);
    }
}

static void test_sizes(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        int rc;
        uint64_t b;
    } cases[] = {
        {"0", 0, 0},           {"100", 0, 100},           {"100B", 0, 100},
        {"64KiB", 0, 65536},   {"4MiB", 0, 4u << 20},     {"1GiB", 0, 1u << 30},
        {"2TiB", 0, 2ULL << 40}, {"16777215TiB", 0, 16777215ULL << 40},
        {"16777216TiB", -ERANGE, 0}, {"18446744073709551615", 0, UINT64_MAX},
        {"18446744073709551616", -ERANGE, 0},
        {"1.5MiB", -EINVAL, 0}, {"4MB", -EINVAL, 0}, {"4M", -EINVAL, 0}, {"4k", -EINVAL, 0},
        {"4kib", -EINVAL, 0},  {"-1", -EINVAL, 0},  {"MiB", -EINVAL, 0}, {"1 KiB", -EINVAL, 0},
    };
    for (size_t i = 0; i < DY_ARRAY_LEN(cases); i++) {
        uint64_t b = 1;
        int rc = dy_config_parse_size(cases[i].text, &b);
        if (rc != cases[i].rc || (rc == 0 && b != cases[i].b))
            fail_msg("%s: rc %d b %llu", cases[i].text, rc, (unsigned long long)b);
    }
}

static void test_endpoints(void **state)
{
    (void)state;
    static const char *const good[] = {
        "localhost:0", "*:8443", "[::1]:443", "[2001:db8::1]:65535", "10.0.0.1:1",
        "a_b.example.com:80", "example.com.:80", "[::ffff:10.0.0.1]:5",
    };
    static const char *const bad[] = {
        ":80", "host:", "host", "host:65536", "host:-1", "host:1x", "ho st:1", "a..b:1",
        ".a:1", "[::1:1", "[zz::1]:1", "[]:1", "[1.2.3.4]:1", "::1:80", "host:123456",
        "**:1", "h\xc3\xa9:1",
    };
    const char *why = NULL;
    for (size_t i = 0; i < DY_ARRAY_LEN(good); i++)
        if (dy_config_check_endpoint(good[i], &why) != 0)
            fail_msg("%s refused: %s", good[i], why);
    for (size_t i = 0; i < DY_ARRAY_LEN(bad); i++)
        if (dy_config_check_endpoint(bad[i], &why) != -EINVAL)
            fail_msg("%s accepted", bad[i]);
}

static void test_bools(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        bool v;
    } cases[] = {
        {"true", true}, {"True", true}, {"YES", true}, {"on", true},
        {"false", false}, {"FALSE", false}, {"no", false}, {"Off", false},
    };
    for (size_t i = 0; i < DY_ARRAY_LEN(cases); i++) {
        char yaml[256];
        snprintf(yaml, sizeof(yaml), BASE "log: {verbose: %s}\n", cases[i].text);
        t_cfg_t cfg;
        s_load_ok(yaml, &cfg);
        assert_int_equal(cfg.log_verbose, cases[i].v);
        dy_config_free(s_keys, NKEYS, &cfg);
    }
    s_expect_error(BASE "log: {verbose: 1}\n",
                   "t.yaml:9: log.verbose: expected a boolean (true/false/yes/no/on/off), "
                   "got \"1\"");
    s_expect_error(BASE "log: {verbose: 'true'}\n",
                   "t.yaml:9: log.verbose: expected a boolean (true/false/yes/no/on/off), "
                   "got \"true\"");
}

/* ---- reload ---------------------------------------------------------------------------- */

static void test_nonreloadable_diff(void **state)
{
    (void)state;
    t_cfg_t a, b;
    char err[128];
    s_load_ok(BASE, &a);

    s_load_ok(BASE "workers: 9\nlog: {level: warn, verbose: yes}\nmotd: hi\n", &b);
    assert_int_equal(dy_config_nonreloadable_diff(s_keys, NKEYS, &a, &b, err, sizeof(err)), 0);
    assert_string_equal(err, "");
    assert_false(dy_config_equal(s_keys, NKEYS, &a, &b));
    dy_config_free(s_keys, NKEYS, &b);

    s_load_ok(BASE "workers: 9\nlisten: '*:1'\n", &b);
    assert_int_equal(dy_config_nonreloadable_diff(s_keys, NKEYS, &a, &b, err, sizeof(err)), 1);
    assert_string_equal(err, "listen");
    dy_config_free(s_keys, NKEYS, &b);

    /* Two differences: the count, and the first in table order. */
    s_load_ok(BASE "    role: aggregator\nmax_blob: 1MiB\n", &b);
    assert_int_equal(dy_config_nonreloadable_diff(s_keys, NKEYS, &a, &b, err, sizeof(err)), 2);
    assert_string_equal(err, "max_blob");
    dy_config_free(s_keys, NKEYS, &b);

    /* The same values written differently are no difference at all. */
    s_load_ok("duchy: {id: \"worker1\"}\ntls: {cert: \"/c\", key: /k, handshake_timeout: 10000}\n"
              "lease: 30000ms\nmax_blob: 67108864\npeers: [{endpoint: 'a.example:443', id: a}]\n",
              &b);
    assert_true(dy_config_equal(s_keys, NKEYS, &a, &b));
    assert_int_equal(dy_config_nonreloadable_diff(s_keys, NKEYS, &a, &b, err, sizeof(err)), 0);
    dy_config_free(s_keys, NKEYS, &b);
    dy_config_free(s_keys, NKEYS, &a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_full_values),
        cmocka_unit_test(test_golden),
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_round_trip_awkward),
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_empty_group),
        cmocka_unit_test(test_error_unknown),
        cmocka_unit_test(test_error_missing),
        cmocka_unit_test(test_error_duplicate),
        cmocka_unit_test(test_error_type),
        cmocka_unit_test(test_error_range),
        cmocka_unit_test(test_error_enum_and_syntax),
        cmocka_unit_test(test_error_list_bounds),
        cmocka_unit_test(test_error_document),
        cmocka_unit_test(test_billion_laughs),
        cmocka_unit_test(test_oversize),
        cmocka_unit_test(test_nested_list_refused),
        cmocka_unit_test(test_durations),
        cmocka_unit_test(test_sizes),
        cmocka_unit_test(test_endpoints),
        cmocka_unit_test(test_bools),
        cmocka_unit_test(test_nonreloadable_diff),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
