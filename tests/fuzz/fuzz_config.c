/* fuzz_config.c - libFuzzer target for the YAML config loader (common/config.c), which reads
 * operator-written files and must refuse anything malformed cleanly (STYLE.md rule 38).
 *
 * The input is a YAML document, loaded against a fixed table with every key type, nested
 * groups and a list of mappings.  Invariants that must hold for any input abort() on
 * violation: the loader returns 0 or -EINVAL (or -ENOMEM); a refusal leaves an error message
 * naming the input and nothing allocated; an accepted config prints, the printed text loads
 * again to an equal struct, and printing that gives the same text (the --check-config
 * round trip).  tests/fuzz/replay.c runs this over tests/fuzz/corpus/config in every build.
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define S_CHECK(cond)                                                                         \
    do {                                                                                      \
        if (!(cond))                                                                          \
            abort();                                                                          \
    } while (0)

typedef struct {
    char *name;     /* owned */
    char *endpoint; /* owned */
    int role;
    int64_t weight;
    double share;
} f_item_t;

typedef struct {
    char *id;       /* owned */
    int64_t workers;
    double epsilon;
    double delta;
    bool verbose;
    int64_t lease;
    uint64_t max_blob;
    char *listen;   /* owned */
    int level;
    char *cert;     /* owned */
    int64_t timeout;
    f_item_t *items; /* owned */
    size_t nitems;
} f_cfg_t;

static const char *const f_roles[] = {"aggregator", "non_aggregator", "x-y.z", NULL};
static const char *const f_levels[] = {"debug", "info", "warn", NULL};

static const dy_cfg_key_t f_item_keys[] = {
    {.path = "name", .type = DY_CFG_STRING, .offset = offsetof(f_item_t, name), .help = "n"},
    {.path = "net.endpoint", .type = DY_CFG_ENDPOINT, .def = "'[::1]:1'",
     .offset = offsetof(f_item_t, endpoint)},
    {.path = "role", .type = DY_CFG_ENUM, .def = "aggregator", .choices = f_roles,
     .offset = offsetof(f_item_t, role)},
    {.path = "weight", .type = DY_CFG_INT, .def = "0", .offset = offsetof(f_item_t, weight)},
    {.path = "net.share", .type = DY_CFG_DOUBLE, .def = "0.5", .min = -1, .max = 1,
     .offset = offsetof(f_item_t, share)},
};

static const dy_cfg_key_t f_keys[] = {
    {.path = "duchy.id", .type = DY_CFG_STRING, .def = "", .offset = offsetof(f_cfg_t, id),
     .help = "id"},
    {.path = "workers", .type = DY_CFG_INT, .def = "4", .min = -1000, .max = 1e12,
     .offset = offsetof(f_cfg_t, workers)},
    {.path = "noise.epsilon", .type = DY_CFG_DOUBLE, .def = "1", .min = 0, .max = 1e300,
     .offset = offsetof(f_cfg_t, epsilon)},
    {.path = "noise.delta", .type = DY_CFG_DOUBLE, .def = "1e-9",
     .offset = offsetof(f_cfg_t, delta)},
    {.path = "log.verbose", .type = DY_CFG_BOOL, .def = "no", .reloadable = true,
     .offset = offsetof(f_cfg_t, verbose)},
    {.path = "lease", .type = DY_CFG_DURATION, .def = "30s",
     .offset = offsetof(f_cfg_t, lease)},
    {.path = "max_blob", .type = DY_CFG_SIZE, .def = "1GiB",
     .offset = offsetof(f_cfg_t, max_blob)},
    {.path = "listen", .type = DY_CFG_ENDPOINT, .def = "'*:8443'",
     .offset = offsetof(f_cfg_t, listen)},
    {.path = "log.level", .type = DY_CFG_ENUM, .def = "info", .choices = f_levels,
     .offset = offsetof(f_cfg_t, level)},
    {.path = "tls.a.b.cert", .type = DY_CFG_STRING, .def = "c", .offset = offsetof(f_cfg_t, cert)},
    {.path = "tls.timeout", .type = DY_CFG_DURATION, .def = "1s", .min = 0, .max = 1e15,
     .offset = offsetof(f_cfg_t, timeout)},
    {.path = "items", .type = DY_CFG_LIST, .def = "[]", .offset = offsetof(f_cfg_t, items),
     .count_offset = offsetof(f_cfg_t, nitems), .sub = f_item_keys,
     .nsub = DY_ARRAY_LEN(f_item_keys), .item_size = sizeof(f_item_t), .max_items = 64},
};
#define F_NKEYS DY_ARRAY_LEN(f_keys)

static char *f_print(const f_cfg_t *cfg, size_t *ret_len)
{
    char *out = NULL;
    FILE *f = open_memstream(&out, ret_len);
    S_CHECK(f != NULL);
    S_CHECK(dy_config_print(f_keys, F_NKEYS, cfg, f) == 0);
    fclose(f);
    return out;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *yaml = malloc(size + 1);
    if (yaml == NULL)
        return 0;
    memcpy(yaml, data, size);
    yaml[size] = '\0';

    f_cfg_t cfg;
    memset(&cfg, 0x5a, sizeof(cfg));
    char err[256];
    int rc = dy_config_load_string(yaml, "fuzz.yaml", f_keys, F_NKEYS, &cfg, err, sizeof(err));
    free(yaml);
    S_CHECK(rc == 0 || rc == -EINVAL || rc == -ENOMEM);
    if (rc != 0) {
        S_CHECK(rc == -ENOMEM || strncmp(err, "fuzz.yaml:", 10) == 0 ||
                strncmp(err, "<default of ", 12) == 0);
        S_CHECK(cfg.id == NULL && cfg.listen == NULL && cfg.cert == NULL);
        S_CHECK(cfg.items == NULL && cfg.nitems == 0);
        return 0;
    }
    S_CHECK(cfg.nitems <= 64);

    size_t len1, len2;
    char *out1 = f_print(&cfg, &len1);
    S_CHECK(strlen(out1) == len1);
    f_cfg_t back;
    rc = dy_config_load_string(out1, "printed", f_keys, F_NKEYS, &back, err, sizeof(err));
    if (rc != 0) {
        fprintf(stderr, "printed config does not load: %s\n%s", err, out1);
        abort();
    }
    S_CHECK(dy_config_equal(f_keys, F_NKEYS, &cfg, &back));
    S_CHECK(dy_config_nonreloadable_diff(f_keys, F_NKEYS, &cfg, &back, err, sizeof(err)) == 0);
    char *out2 = f_print(&back, &len2);
    S_CHECK(len1 == len2 && memcmp(out1, out2, len1) == 0);
    free(out1);
    free(out2);
    dy_config_free(f_keys, F_NKEYS, &back);
    dy_config_free(f_keys, F_NKEYS, &cfg);
    S_CHECK(cfg.id == NULL && cfg.items == NULL);
    return 0;
}
