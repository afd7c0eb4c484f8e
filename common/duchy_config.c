/* duchy_config.c - the key table of one duchy's configuration
 * (duchy_config.h) and the checks that a table cannot express.
 *
 * Every key is declared once below, with its default, bounds and whether
 * it may change on SIGHUP.  Reloadable: log.verbose, the gateway's rate
 * limits (calls_per_second, call_burst, bytes_per_second, byte_burst) and
 * duchy.backoff_scale; everything else needs a restart, because sockets,
 * files, the store and the processes the supervisor started depend on it.
 *
 * Beyond the table, dy_duchy_config_load checks:
 *   - every duchy id (ours, the peers') matches [a-z]([a-z0-9-]{0,61}[a-z0-9])?
 *   - exactly two peers, with ids different from ours and from each other;
 *   - the three role ids are distinct and each is ours or a peer's.
 * Those errors read "file:line: key: reason" too; the line is that of the
 * first line of the file that sets the key to the offending value (1 when
 * it cannot be found, e.g. for a value that came from a default).
 *
 * Nothing here logs (STYLE.md rule 23).
 */
#include "duchy_config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_OFF(f) offsetof(dy_duchy_config_t, f)
#define S_POFF(f) offsetof(dy_duchy_peer_t, f)

/* 2^40: a tebibyte, the upper bound of the size keys. */
#define S_TIB 1099511627776.0
#define S_DAY_MS 86400000.0

static const dy_cfg_key_t s_peer_keys[] = {
    {.path = "id", .type = DY_CFG_STRING, .offset = S_POFF(id),
     .help = "the peer duchy's id"},
    {.path = "endpoint", .type = DY_CFG_ENDPOINT, .offset = S_POFF(endpoint),
     .help = "host:port of the peer's gateway"},
    {.path = "server_name", .type = DY_CFG_STRING, .offset = S_POFF(server_name),
     .help = "the TLS name the peer's certificate must carry"},
};

const dy_cfg_key_t dy_duchy_config_keys[] = {
    /* duchy */
    {.path = "duchy.id", .type = DY_CFG_STRING, .offset = S_OFF(id),
     .help = "this duchy's id, [a-z]([a-z0-9-]{0,61}[a-z0-9])?"},
    {.path = "duchy.data_dir", .type = DY_CFG_STRING, .offset = S_OFF(data_dir),
     .help = "duchy.db, blobs/ and spool/"},
    {.path = "duchy.runtime_dir", .type = DY_CFG_STRING, .offset = S_OFF(runtime_dir),
     .help = "0700 directory of the ipc sockets"},
    {.path = "duchy.master_key_file", .type = DY_CFG_STRING, .offset = S_OFF(master_key_file),
     .help = "32-byte master key (raw or hex), 0600: secrets at rest"},
    {.path = "duchy.claimers", .type = DY_CFG_INT, .def = "1", .min = 1, .max = 16,
     .offset = S_OFF(claimers), .help = "claimer processes the supervisor starts"},
    {.path = "duchy.workers", .type = DY_CFG_INT, .def = "2", .min = 1, .max = 64,
     .offset = S_OFF(workers), .help = "mills per claimer at a time"},
    {.path = "duchy.mill_threads", .type = DY_CFG_INT, .def = "2", .min = 1, .max = 256,
     .offset = S_OFF(mill_threads), .help = "threads per mill"},
    {.path = "duchy.lease", .type = DY_CFG_DURATION, .def = "5m", .min = 1000,
     .max = S_DAY_MS, .offset = S_OFF(lease_ms), .help = "work lease, renewed every lease/3"},
    {.path = "duchy.max_attempts", .type = DY_CFG_INT, .def = "10", .min = 1, .max = 1000,
     .offset = S_OFF(max_attempts), .help = "attempts of one stage before it fails"},
    {.path = "duchy.backoff_scale", .type = DY_CFG_DOUBLE, .def = "1.0", .min = 0,
     .max = 1000, .reloadable = true, .offset = S_OFF(backoff_scale),
     .help = "multiplier of the transient-failure backoff (tests: 0.01)"},
    {.path = "duchy.mill_deadline", .type = DY_CFG_DURATION, .def = "30m", .min = 1000,
     .max = 7 * S_DAY_MS, .offset = S_OFF(mill_deadline_ms),
     .help = "a mill is killed after this"},
    {.path = "duchy.mill_memory", .type = DY_CFG_SIZE, .def = "8GiB", .min = 64.0 * 1048576,
     .max = S_TIB, .offset = S_OFF(mill_memory), .help = "address-space limit of a mill"},
    {.path = "duchy.send_deadline", .type = DY_CFG_DURATION, .def = "10m", .min = 1000,
     .max = S_DAY_MS, .offset = S_OFF(send_deadline_ms),
     .help = "one stage send to a peer"},
    /* tls */
    {.path = "tls.cert", .type = DY_CFG_STRING, .offset = S_OFF(tls_cert),
     .help = "this duchy's TLS certificate (PEM)"},
    {.path = "tls.key", .type = DY_CFG_STRING, .offset = S_OFF(tls_key),
     .help = "its private key (PEM, 0600)"},
    {.path = "tls.trusted_ca", .type = DY_CFG_STRING, .offset = S_OFF(trusted_ca),
     .help = "PEM bundle of every organisation's root"},
    {.path = "tls.parties", .type = DY_CFG_STRING, .offset = S_OFF(parties),
     .help = "the party table: <root SKID hex> <party id> per line"},
    /* signing */
    {.path = "signing.cert", .type = DY_CFG_STRING, .offset = S_OFF(sign_cert),
     .help = "signing certificate (PEM)"},
    {.path = "signing.key", .type = DY_CFG_STRING, .offset = S_OFF(sign_key),
     .help = "signing private key (PEM, 0600)"},
    {.path = "signing.certificate", .type = DY_CFG_STRING,
     .offset = S_OFF(sign_certificate_name),
     .help = "the signing certificate's resource name at the Kingdom"},
    /* kingdom */
    {.path = "kingdom.endpoint", .type = DY_CFG_ENDPOINT, .offset = S_OFF(kingdom_endpoint),
     .help = "host:port of the Kingdom"},
    {.path = "kingdom.server_name", .type = DY_CFG_STRING, .offset = S_OFF(kingdom_server_name),
     .help = "the TLS name the Kingdom's certificate must carry"},
    {.path = "kingdom.call_timeout", .type = DY_CFG_DURATION, .def = "30s", .min = 100,
     .max = 3600000, .offset = S_OFF(kingdom_call_timeout_ms),
     .help = "deadline of one unary Kingdom call"},
    {.path = "kingdom.stream_idle_timeout", .type = DY_CFG_DURATION, .def = "60s", .min = 1000,
     .max = S_DAY_MS, .offset = S_OFF(kingdom_stream_idle_ms),
     .help = "the computation stream is reopened after this much silence"},
    /* gateway */
    {.path = "gateway.listen", .type = DY_CFG_ENDPOINT, .offset = S_OFF(gateway_listen),
     .help = "the TLS listener, host:port"},
    {.path = "gateway.max_frame", .type = DY_CFG_SIZE, .def = "4259840", .min = 65536,
     .max = 64.0 * 1048576, .offset = S_OFF(max_frame),
     .help = "largest frame accepted (4MiB of payload + 64KiB)"},
    {.path = "gateway.max_connections", .type = DY_CFG_INT, .def = "256", .min = 1,
     .max = 65536, .offset = S_OFF(max_connections), .help = "open TLS connections at most"},
    {.path = "gateway.idle_timeout", .type = DY_CFG_DURATION, .def = "60s", .min = 1000,
     .max = S_DAY_MS, .offset = S_OFF(idle_timeout_ms),
     .help = "a connection silent this long is closed"},
    {.path = "gateway.calls_per_second", .type = DY_CFG_DOUBLE, .def = "1000", .min = 0.001,
     .max = 1e12, .reloadable = true, .offset = S_OFF(calls_per_second),
     .help = "per-peer call rate (token bucket)"},
    {.path = "gateway.call_burst", .type = DY_CFG_DOUBLE, .def = "2000", .min = 1, .max = 1e12,
     .reloadable = true, .offset = S_OFF(call_burst), .help = "per-peer call burst"},
    {.path = "gateway.bytes_per_second", .type = DY_CFG_DOUBLE, .def = "1073741824",
     .min = 1024, .max = 1e15, .reloadable = true, .offset = S_OFF(bytes_per_second),
     .help = "per-peer byte rate (token bucket)"},
    {.path = "gateway.byte_burst", .type = DY_CFG_DOUBLE, .def = "2147483648", .min = 65536,
     .max = 1e15, .reloadable = true, .offset = S_OFF(byte_burst),
     .help = "per-peer byte burst"},
    {.path = "gateway.max_upload", .type = DY_CFG_SIZE, .def = "2GiB", .min = 1048576,
     .max = S_TIB, .offset = S_OFF(max_upload), .help = "one upload body at most"},
    /* peers */
    {.path = "peers", .type = DY_CFG_LIST, .offset = S_OFF(peers),
     .count_offset = S_OFF(npeers), .sub = s_peer_keys, .nsub = DY_ARRAY_LEN(s_peer_keys),
     .item_size = sizeof(dy_duchy_peer_t), .min_items = 2, .max_items = 2,
     .help = "the two other duchies of the federation"},
    /* roles */
    {.path = "roles.aggregator", .type = DY_CFG_STRING, .offset = S_OFF(aggregator_id),
     .help = "the aggregator's duchy id"},
    {.path = "roles.first_non_aggregator", .type = DY_CFG_STRING, .offset = S_OFF(first_na_id),
     .help = "the first non-aggregator's duchy id"},
    {.path = "roles.second_non_aggregator", .type = DY_CFG_STRING,
     .offset = S_OFF(second_na_id), .help = "the second non-aggregator's duchy id"},
    /* log */
    {.path = "log.verbose", .type = DY_CFG_BOOL, .def = "false", .reloadable = true,
     .offset = S_OFF(verbose), .help = "debug logging"},
};
const size_t dy_duchy_config_nkeys = DY_ARRAY_LEN(dy_duchy_config_keys);

/* [a-z]([a-z0-9-]{0,61}[a-z0-9])? */
static bool s_id_ok(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n > 63 || s[0] < 'a' || s[0] > 'z')
        return false;
    for (size_t i = 1; i < n; i++) {
        char c = s[i];
        bool alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
        if (!alnum && !(c == '-' && i + 1 < n))
            return false;
    }
    return true;
}

/* The line of path that sets `leaf` (a "leaf:" after indentation or "- ")
 * inside the top-level mapping `section` (a "section:" line at column 0),
 * for the nth (0-based) such line, or the first whose value contains
 * `value` when value is not NULL; 1 if none (e.g. flow style, a default). */
static size_t s_line_of(const char *path, const char *section, const char *leaf,
                        const char *value, size_t nth)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return 1;
    char line[1024];
    size_t no = 0, found = 1, seen = 0;
    size_t llen = strlen(leaf), slen = strlen(section);
    bool inside = false;
    while (fgets(line, sizeof(line), f) != NULL) {
        no++;
        if (line[0] != ' ' && line[0] != '-' && line[0] != '#' && line[0] != '\n') {
            inside = strncmp(line, section, slen) == 0 && line[slen] == ':';
            continue;
        }
        if (!inside)
            continue;
        const char *p = line;
        while (*p == ' ' || *p == '\t' || *p == '-')
            p++;
        if (strncmp(p, leaf, llen) != 0 || p[llen] != ':')
            continue;
        if (value != NULL ? strstr(p + llen + 1, value) != NULL : seen++ == nth) {
            found = no;
            break;
        }
    }
    fclose(f);
    return found;
}

static int s_fail(const char *path, const char *key, size_t line, char *errbuf, size_t errlen,
                  const char *why)
{
    if (errbuf != NULL && errlen > 0)
        snprintf(errbuf, errlen, "%s:%zu: %s: %s", path, line, key, why);
    return -EINVAL;
}

/* The checks beyond the table, on a loaded config. */
static int s_validate(const char *path, const dy_duchy_config_t *c, char *errbuf,
                      size_t errlen)
{
    char why[256];
    if (!s_id_ok(c->id))
        return s_fail(path, "duchy.id", s_line_of(path, "duchy", "id", NULL, 0), errbuf, errlen,
                      "not a duchy id ([a-z]([a-z0-9-]{0,61}[a-z0-9])?)");
    if (c->npeers != 2)
        return s_fail(path, "peers", s_line_of(path, "peers", "id", NULL, 0), errbuf, errlen,
                      "exactly two peers needed");
    for (size_t i = 0; i < c->npeers; i++) {
        const char *pid = c->peers[i].id;
        char key[32];
        snprintf(key, sizeof(key), "peers[%zu].id", i);
        size_t line = s_line_of(path, "peers", "id", NULL, i);
        if (!s_id_ok(pid))
            return s_fail(path, key, line, errbuf, errlen,
                          "not a duchy id ([a-z]([a-z0-9-]{0,61}[a-z0-9])?)");
        if (strcmp(pid, c->id) == 0)
            return s_fail(path, key, line, errbuf, errlen,
                          "a peer cannot have this duchy's id");
        for (size_t j = 0; j < i; j++)
            if (strcmp(pid, c->peers[j].id) == 0)
                return s_fail(path, key, line, errbuf, errlen, "duplicate peer id");
    }
    const struct {
        const char *key, *leaf, *value;
    } roles[3] = {
        {"roles.aggregator", "aggregator", c->aggregator_id},
        {"roles.first_non_aggregator", "first_non_aggregator", c->first_na_id},
        {"roles.second_non_aggregator", "second_non_aggregator", c->second_na_id},
    };
    for (size_t i = 0; i < 3; i++) {
        const char *v = roles[i].value;
        size_t line = s_line_of(path, "roles", roles[i].leaf, NULL, 0);
        if (strcmp(v, c->id) != 0 && dy_duchy_config_peer(c, v) == NULL) {
            snprintf(why, sizeof(why), "\"%s\" is neither this duchy nor a peer", v);
            return s_fail(path, roles[i].key, line, errbuf, errlen, why);
        }
        for (size_t j = 0; j < i; j++)
            if (strcmp(v, roles[j].value) == 0) {
                snprintf(why, sizeof(why), "\"%s\" already holds %s", v, roles[j].key);
                return s_fail(path, roles[i].key, line, errbuf, errlen, why);
            }
    }
    return 0;
}

int dy_duchy_config_load(const char *path, dy_duchy_config_t *out, char *errbuf, size_t errlen)
{
    dy_duchy_config_t tmp;
    int rc = dy_config_load(path, dy_duchy_config_keys, dy_duchy_config_nkeys, &tmp, errbuf,
                            errlen);
    if (rc < 0)
        return rc;
    rc = s_validate(path, &tmp, errbuf, errlen);
    if (rc < 0) {
        dy_duchy_config_free(&tmp);
        return rc;
    }
    *out = tmp;
    return 0;
}

void dy_duchy_config_free(dy_duchy_config_t *cfg)
{
    if (cfg == NULL)
        return;
    dy_config_free(dy_duchy_config_keys, dy_duchy_config_nkeys, cfg);
    memset(cfg, 0, sizeof(*cfg));
}

const dy_duchy_peer_t *dy_duchy_config_peer(const dy_duchy_config_t *cfg, const char *id)
{
    if (cfg == NULL || id == NULL)
        return NULL;
    for (size_t i = 0; i < cfg->npeers; i++)
        if (cfg->peers[i].id != NULL && strcmp(cfg->peers[i].id, id) == 0)
            return &cfg->peers[i];
    return NULL;
}
