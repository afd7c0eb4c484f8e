/* tls.c - the mutual-TLS identity layer of tls.h: party table, TLS 1.3-only contexts
 * whose certificate check (a cert_verify callback, so it runs inside the handshake)
 * identifies the peer by its leaf's Authority Key Identifier, and blocking helpers.
 *
 * Why a cert_verify callback rather than the per-certificate verify callback: it sees the
 * finished chain, so it can demand "leaf issued directly by a root in the party table"
 * in one place, after OpenSSL's own checks (signatures, validity, purpose, name) passed.
 * A refusal there aborts the handshake with an alert; SSL_get_verify_result then holds
 * the reason, which dy_tls_describe_error turns into words.
 *
 * Private keys are read by OpenSSL from the PEM files (it wipes its buffers); this file
 * never holds raw key bytes.
 */
#include "tls.h"

#include "dy.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#define S_LINE_MAX 1024            /* longest line of a party table file */
#define S_DEFAULT_TIMEOUT_MS 30000 /* handshake timeout when the caller gives none */

/* One row of the party table. */
struct s_party {
    uint8_t skid[DY_SKID_MAX]; /* the root's Subject Key Identifier */
    size_t skid_len;           /* bytes used in skid, 1..DY_SKID_MAX */
    char id[DY_PARTY_ID_MAX];  /* party id, NUL-terminated */
};

struct dy_parties {
    struct s_party *v; /* owned array of n entries (cap allocated) */
    size_t n;          /* entries in use */
    size_t cap;        /* entries allocated */
};

/* What a context of ours carries, as SSL_CTX ex_data (freed with the context). */
typedef struct {
    dy_parties_t *parties; /* owned copy of the caller's table */
    bool server;           /* true: we verify clients; false: we verify servers */
    char *sni;             /* owned; client only: server name to send, NULL for IP literals */
} s_ctx_data_t;

static CRYPTO_ONCE s_once = CRYPTO_ONCE_STATIC_INIT;
static int s_ctx_index = -1;

/* snprintf into an optional error buffer. */
static void DY_PRINTF(3, 4) s_err(char *errbuf, size_t errcap, const char *fmt, ...)
{
    if (errbuf == NULL || errcap == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(errbuf, errcap, fmt, ap);
    va_end(ap);
}

/* The reason string of this thread's most recent OpenSSL error (empties the queue). */
static const char *s_ossl_reason(void)
{
    unsigned long e = ERR_peek_last_error();
    const char *r = e ? ERR_reason_error_string(e) : NULL;
    ERR_clear_error();
    return r ? r : "unknown OpenSSL error";
}

/* ---- party table ---- */

dy_parties_t *dy_parties_new(void)
{
    return calloc(1, sizeof(dy_parties_t));
}

void dy_parties_destroy(dy_parties_t **parties_p)
{
    if (parties_p == NULL || *parties_p == NULL)
        return;
    free((*parties_p)->v);
    free(*parties_p);
    *parties_p = NULL;
}

size_t dy_parties_count(const dy_parties_t *parties)
{
    return parties ? parties->n : 0;
}

/* True if s (length n) is 1..63 characters of an id: duchy ids lower-case letters, digits
 * and inner hyphens starting with a letter; other ids base64url characters. */
static bool s_id_ok(const char *s, bool duchy)
{
    size_t n = strlen(s);
    if (n == 0 || n > 63)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        bool lower = c >= 'a' && c <= 'z', digit = c >= '0' && c <= '9';
        if (duchy) {
            if (i == 0 ? !lower : !(lower || digit || (c == '-' && i + 1 < n)))
                return false;
        } else if (!(lower || digit || (c >= 'A' && c <= 'Z') || c == '-' || c == '_')) {
            return false;
        }
    }
    return true;
}

bool dy_party_id_valid(const char *id)
{
    static const struct {
        const char *prefix;
        bool duchy;
    } kinds[] = {
        {"duchies/", true},
        {"dataProviders/", false},
        {"measurementConsumers/", false},
    };
    if (id == NULL)
        return false;
    if (strcmp(id, "kingdom") == 0)
        return true;
    for (size_t i = 0; i < DY_ARRAY_LEN(kinds); i++) {
        size_t n = strlen(kinds[i].prefix);
        if (strncmp(id, kinds[i].prefix, n) == 0)
            return s_id_ok(id + n, kinds[i].duchy);
    }
    return false;
}

const char *dy_parties_lookup(const dy_parties_t *parties, const uint8_t *skid, size_t skid_len)
{
    if (parties == NULL || skid == NULL)
        return NULL;
    for (size_t i = 0; i < parties->n; i++)
        if (parties->v[i].skid_len == skid_len && memcmp(parties->v[i].skid, skid, skid_len) == 0)
            return parties->v[i].id;
    return NULL;
}

int dy_parties_add(dy_parties_t *parties, const uint8_t *skid, size_t skid_len,
                   const char *party_id)
{
    if (parties == NULL || skid == NULL || skid_len == 0 || skid_len > DY_SKID_MAX ||
        !dy_party_id_valid(party_id))
        return -EINVAL;
    if (dy_parties_lookup(parties, skid, skid_len) != NULL)
        return -EEXIST;
    if (parties->n == parties->cap) {
        size_t ncap = parties->cap ? parties->cap * 2 : 8;
        struct s_party *v = realloc(parties->v, ncap * sizeof(*v));
        if (v == NULL)
            return -ENOMEM;
        parties->v = v;
        parties->cap = ncap;
    }
    struct s_party *p = &parties->v[parties->n++];
    memset(p, 0, sizeof(*p));
    memcpy(p->skid, skid, skid_len);
    p->skid_len = skid_len;
    snprintf(p->id, sizeof(p->id), "%s", party_id);
    return 0;
}

dy_parties_t *dy_parties_dup(const dy_parties_t *parties)
{
    dy_parties_t *copy = dy_parties_new();
    if (copy == NULL || parties == NULL || parties->n == 0)
        return copy;
    copy->v = malloc(parties->n * sizeof(*copy->v));
    if (copy->v == NULL) {
        dy_parties_destroy(&copy);
        return NULL;
    }
    memcpy(copy->v, parties->v, parties->n * sizeof(*copy->v));
    copy->n = copy->cap = parties->n;
    return copy;
}

/* Parses one line (already stripped of its comment) into parties.  0 or -errno with the
 * reason in errbuf. */
static int s_parse_line(dy_parties_t *parties, char *line, char *errbuf, size_t errcap)
{
    char *save = NULL;
    char *hex = strtok_r(line, " \t\r\n", &save);
    if (hex == NULL)
        return 0; /* blank */
    char *id = strtok_r(NULL, " \t\r\n", &save);
    if (id == NULL || strtok_r(NULL, " \t\r\n", &save) != NULL) {
        s_err(errbuf, errcap, "expected \"<SKID hex> <party id>\"");
        return -EINVAL;
    }
    uint8_t skid[DY_SKID_MAX];
    int n = dy_unhex(hex, skid, sizeof(skid));
    if (n <= 0) {
        s_err(errbuf, errcap, "bad SKID hex (even length, 1-%d bytes)", DY_SKID_MAX);
        return -EINVAL;
    }
    int rc = dy_parties_add(parties, skid, (size_t)n, id);
    if (rc == -EINVAL)
        s_err(errbuf, errcap, "bad party id \"%.*s\"", DY_PARTY_ID_MAX, id);
    else if (rc == -EEXIST)
        s_err(errbuf, errcap, "SKID listed twice");
    else if (rc < 0)
        s_err(errbuf, errcap, "out of memory");
    return rc == -EEXIST ? -EINVAL : rc;
}

dy_parties_t *dy_parties_load(const char *path, char *errbuf, size_t errcap)
{
    FILE *f = path ? fopen(path, "re") : NULL;
    if (f == NULL) {
        int e = path ? errno : EINVAL;
        s_err(errbuf, errcap, "%s: %s", path ? path : "(null)", strerror(e));
        errno = e;
        return NULL;
    }
    dy_parties_t *parties = dy_parties_new();
    char line[S_LINE_MAX + 2];
    char why[160] = "out of memory";
    unsigned lineno = 0;
    int rc = parties ? 0 : -ENOMEM;
    while (rc == 0 && fgets(line, sizeof(line), f) != NULL) {
        lineno++;
        size_t len = strlen(line);
        if (len == sizeof(line) - 1 && line[len - 1] != '\n') {
            snprintf(why, sizeof(why), "line longer than %d bytes", S_LINE_MAX);
            rc = -EINVAL;
            break;
        }
        char *hash = strchr(line, '#');
        if (hash != NULL)
            *hash = '\0';
        rc = s_parse_line(parties, line, why, sizeof(why));
    }
    if (rc == 0 && ferror(f)) {
        rc = -EIO;
        snprintf(why, sizeof(why), "read error");
    }
    fclose(f);
    if (rc < 0) {
        s_err(errbuf, errcap, "%s:%u: %s", path, lineno, why);
        dy_parties_destroy(&parties);
        errno = -rc;
        return NULL;
    }
    return parties;
}

/* ---- contexts ---- */

static void s_ctx_data_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl,
                            void *argp)
{
    s_ctx_data_t *d = ptr;
    if (d == NULL)
        return;
    dy_parties_destroy(&d->parties);
    free(d->sni);
    free(d);
}

static void s_init_once(void)
{
    s_ctx_index = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, s_ctx_data_free);
}

/* Our data on ctx, or NULL if ctx was not made here. */
static s_ctx_data_t *s_ctx_data(const SSL_CTX *ctx)
{
    if (ctx == NULL || !CRYPTO_THREAD_run_once(&s_once, s_init_once) || s_ctx_index < 0)
        return NULL;
    return SSL_CTX_get_ex_data(ctx, s_ctx_index);
}

/* Records why the leaf is refused and fails verification. */
static int s_refuse(X509_STORE_CTX *xs, X509 *leaf, int err)
{
    X509_STORE_CTX_set_error(xs, err);
    X509_STORE_CTX_set_error_depth(xs, 0);
    X509_STORE_CTX_set_current_cert(xs, leaf);
    return 0;
}

/* The party id of a leaf's issuing root per its AKID, or NULL. */
static const char *s_leaf_party(const dy_parties_t *parties, const X509 *leaf)
{
    const ASN1_OCTET_STRING *akid = X509_get0_authority_key_id((X509 *)leaf);
    if (akid == NULL || ASN1_STRING_length(akid) <= 0)
        return NULL;
    return dy_parties_lookup(parties, ASN1_STRING_get0_data(akid),
                             (size_t)ASN1_STRING_length(akid));
}

/* The certificate check of every handshake: OpenSSL's chain verification (trusted roots,
 * validity, purpose, expected name), then our identity rules. */
static int s_cert_verify(X509_STORE_CTX *xs, void *arg)
{
    const s_ctx_data_t *d = arg;
    if (X509_verify_cert(xs) <= 0) {
        if (X509_STORE_CTX_get_error(xs) == X509_V_OK)
            X509_STORE_CTX_set_error(xs, X509_V_ERR_UNSPECIFIED);
        return 0;
    }
    STACK_OF(X509) *chain = X509_STORE_CTX_get0_chain(xs);
    X509 *leaf = sk_X509_value(chain, 0);
    /* OpenSSL's purpose check lets a leaf without any EKU pass (the signing certificates
     * have none): we demand the EKU for the role explicitly. */
    uint32_t need = d->server ? XKU_SSL_CLIENT : XKU_SSL_SERVER;
    if (!(X509_get_extension_flags(leaf) & EXFLAG_XKUSAGE) ||
        !(X509_get_extended_key_usage(leaf) & need))
        return s_refuse(xs, leaf, X509_V_ERR_INVALID_PURPOSE);
    /* Leaf directly under a trusted root, AKID = that root's SKID, root in the table. */
    if (sk_X509_num(chain) != 2)
        return s_refuse(xs, leaf, X509_V_ERR_APPLICATION_VERIFICATION);
    const ASN1_OCTET_STRING *akid = X509_get0_authority_key_id(leaf);
    const ASN1_OCTET_STRING *skid = X509_get0_subject_key_id(sk_X509_value(chain, 1));
    if (akid == NULL || skid == NULL || ASN1_OCTET_STRING_cmp(akid, skid) != 0 ||
        s_leaf_party(d->parties, leaf) == NULL)
        return s_refuse(xs, leaf, X509_V_ERR_APPLICATION_VERIFICATION);
    return 1;
}

/* The shared part of both contexts. */
static SSL_CTX *s_ctx_new(const dy_tls_conf_t *conf, bool server, char *errbuf, size_t errcap)
{
    if (conf == NULL || conf->cert_path == NULL || conf->key_path == NULL ||
        conf->trusted_ca_path == NULL || conf->parties == NULL) {
        s_err(errbuf, errcap, "TLS configuration incomplete (cert, key, trusted CA, parties)");
        return NULL;
    }
    if (conf->parties->n == 0) {
        s_err(errbuf, errcap, "the party table is empty");
        return NULL;
    }
    if (!server && (conf->expected_name == NULL || conf->expected_name[0] == '\0')) {
        s_err(errbuf, errcap, "a client needs the server's expected name");
        return NULL;
    }
    if (!CRYPTO_THREAD_run_once(&s_once, s_init_once) || s_ctx_index < 0) {
        s_err(errbuf, errcap, "cannot allocate SSL_CTX ex_data index");
        return NULL;
    }
    ERR_clear_error();
    SSL_CTX *ctx = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
    if (ctx == NULL) {
        s_err(errbuf, errcap, "SSL_CTX_new: %s", s_ossl_reason());
        return NULL;
    }
    s_ctx_data_t *d = calloc(1, sizeof(*d));
    if (d == NULL || !SSL_CTX_set_ex_data(ctx, s_ctx_index, d)) {
        free(d);
        s_err(errbuf, errcap, "out of memory");
        goto fail;
    }
    /* From here d belongs to ctx (freed by s_ctx_data_free). */
    d->server = server;
    d->parties = dy_parties_dup(conf->parties);
    if (d->parties == NULL) {
        s_err(errbuf, errcap, "out of memory");
        goto fail;
    }
    if (!SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION) ||
        !SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION)) {
        s_err(errbuf, errcap, "cannot restrict to TLS 1.3: %s", s_ossl_reason());
        goto fail;
    }
    /* No resumption: every connection proves its identity with a full handshake. */
    SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET | SSL_OP_NO_COMPRESSION);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    if (server)
        SSL_CTX_set_num_tickets(ctx, 0);
    if (SSL_CTX_use_certificate_chain_file(ctx, conf->cert_path) != 1) {
        s_err(errbuf, errcap, "cannot load certificate %s: %s", conf->cert_path, s_ossl_reason());
        goto fail;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, conf->key_path, SSL_FILETYPE_PEM) != 1) {
        s_err(errbuf, errcap, "cannot load private key %s: %s", conf->key_path, s_ossl_reason());
        goto fail;
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        s_err(errbuf, errcap, "private key %s does not match certificate %s", conf->key_path,
              conf->cert_path);
        ERR_clear_error();
        goto fail;
    }
    if (SSL_CTX_load_verify_locations(ctx, conf->trusted_ca_path, NULL) != 1) {
        s_err(errbuf, errcap, "cannot load trusted roots %s: %s", conf->trusted_ca_path,
              s_ossl_reason());
        goto fail;
    }
    X509_VERIFY_PARAM *vp = SSL_CTX_get0_param(ctx);
    X509_VERIFY_PARAM_set_flags(vp, X509_V_FLAG_X509_STRICT);
    SSL_CTX_set_purpose(ctx, server ? X509_PURPOSE_SSL_CLIENT : X509_PURPOSE_SSL_SERVER);
    if (!server) {
        const char *name = conf->expected_name;
        unsigned char addr[16];
        bool ip = inet_pton(AF_INET, name, addr) == 1 || inet_pton(AF_INET6, name, addr) == 1;
        int ok;
        if (ip) {
            ok = X509_VERIFY_PARAM_set1_ip_asc(vp, name);
        } else {
            X509_VERIFY_PARAM_set_hostflags(vp, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
            ok = X509_VERIFY_PARAM_set1_host(vp, name, 0);
            d->sni = strdup(name);
            ok = ok && d->sni != NULL;
        }
        if (!ok) {
            s_err(errbuf, errcap, "bad expected server name \"%s\"", name);
            ERR_clear_error();
            goto fail;
        }
    }
    SSL_CTX_set_verify(
        ctx, server ? SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT : SSL_VERIFY_PEER, NULL);
    SSL_CTX_set_cert_verify_callback(ctx, s_cert_verify, d);
    return ctx;
fail:
    SSL_CTX_free(ctx);
    return NULL;
}

SSL_CTX *dy_tls_server_ctx(const dy_tls_conf_t *conf, char *errbuf, size_t errcap)
{
    return s_ctx_new(conf, true, errbuf, errcap);
}

SSL_CTX *dy_tls_client_ctx(const dy_tls_conf_t *conf, char *errbuf, size_t errcap)
{
    return s_ctx_new(conf, false, errbuf, errcap);
}

int dy_tls_peer_identity(SSL *ssl, char *out, size_t cap)
{
    const s_ctx_data_t *d = ssl ? s_ctx_data(SSL_get_SSL_CTX(ssl)) : NULL;
    if (d == NULL || out == NULL || !SSL_is_init_finished(ssl))
        return -EINVAL;
    X509 *peer = SSL_get0_peer_certificate(ssl);
    if (peer == NULL || SSL_get_verify_result(ssl) != X509_V_OK)
        return -EACCES;
    const char *id = s_leaf_party(d->parties, peer);
    if (id == NULL)
        return -EACCES;
    if (strlen(id) >= cap)
        return -ENOSPC;
    memcpy(out, id, strlen(id) + 1);
    return 0;
}

/* ---- error descriptions ---- */

/* Words for a failed verification of the peer's certificate. */
static int s_describe_verify(SSL *ssl, long vr, char *errbuf, size_t errcap)
{
    const char *peer = SSL_is_server(ssl) ? "client" : "server";
    switch (vr) {
    case X509_V_ERR_CERT_HAS_EXPIRED:
        s_err(errbuf, errcap, "expired: the %s's certificate has expired", peer);
        break;
    case X509_V_ERR_CERT_NOT_YET_VALID:
        s_err(errbuf, errcap, "not yet valid: the %s's certificate is not valid yet", peer);
        break;
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
    case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
    case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
    case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
    case X509_V_ERR_CERT_UNTRUSTED:
        s_err(errbuf, errcap,
              "unknown root: the %s's certificate does not chain to a trusted "
              "root",
              peer);
        break;
    case X509_V_ERR_INVALID_PURPOSE:
        s_err(errbuf, errcap, "no %s use: the %s's certificate lacks extendedKeyUsage %s", peer,
              peer, SSL_is_server(ssl) ? "clientAuth" : "serverAuth");
        break;
    case X509_V_ERR_HOSTNAME_MISMATCH:
    case X509_V_ERR_IP_ADDRESS_MISMATCH: {
        const char *want = X509_VERIFY_PARAM_get0_host(SSL_get0_param(ssl), 0);
        s_err(errbuf, errcap, "wrong name: the server's certificate does not match \"%s\"",
              want ? want : "the expected address");
        break;
    }
    case X509_V_ERR_APPLICATION_VERIFICATION:
        s_err(errbuf, errcap,
              "not in party table: the %s's certificate is not issued directly "
              "by a root in the party table",
              peer);
        break;
    default:
        s_err(errbuf, errcap, "certificate refused: %s", X509_verify_cert_error_string(vr));
        break;
    }
    return -EACCES;
}

/* Names of the alerts OpenSSL 3.0 leaves as "unknown". */
static const char *s_alert_name(int alert)
{
    switch (alert) {
    case SSL_AD_CERTIFICATE_REQUIRED:
        return "certificate required";
    case SSL_AD_MISSING_EXTENSION:
        return "missing extension";
    default:
        return SSL_alert_desc_string_long(alert);
    }
}

int dy_tls_describe_error(SSL *ssl, int ret, char *errbuf, size_t errcap)
{
    int se = ssl ? SSL_get_error(ssl, ret) : SSL_ERROR_SSL;
    int saved_errno = errno;
    /* The first SSL-library error in the queue says what went wrong first. */
    unsigned long err = 0, e;
    while ((e = ERR_get_error()) != 0)
        if (err == 0 || (ERR_GET_LIB(err) != ERR_LIB_SSL && ERR_GET_LIB(e) == ERR_LIB_SSL))
            err = e;
    int reason = err ? ERR_GET_REASON(err) : 0;
    long vr = ssl ? SSL_get_verify_result(ssl) : X509_V_OK;

    if (ssl && vr != X509_V_OK && ERR_GET_LIB(err) == ERR_LIB_SSL &&
        reason == SSL_R_CERTIFICATE_VERIFY_FAILED)
        return s_describe_verify(ssl, vr, errbuf, errcap);
    if (ERR_GET_LIB(err) == ERR_LIB_SSL) {
        switch (reason) {
        case SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE:
            s_err(errbuf, errcap, "no certificate: the client presented no certificate");
            return -EACCES;
        case SSL_R_UNSUPPORTED_PROTOCOL:
        case SSL_R_NO_PROTOCOLS_AVAILABLE:
        case SSL_R_WRONG_VERSION_NUMBER:
        case SSL_R_WRONG_SSL_VERSION:
        case SSL_R_VERSION_TOO_LOW:
        case SSL_R_VERSION_TOO_HIGH:
        case SSL_R_TLSV1_ALERT_PROTOCOL_VERSION:
            s_err(errbuf, errcap, "protocol version: the peer does not speak TLS 1.3 (%s)",
                  ERR_reason_error_string(err));
            return -EPROTONOSUPPORT;
        default:
            break;
        }
        if (reason >= SSL_AD_REASON_OFFSET && reason < SSL_AD_REASON_OFFSET + 256) {
            int alert = reason - SSL_AD_REASON_OFFSET;
            s_err(errbuf, errcap, "peer refused the handshake (alert: %s)", s_alert_name(alert));
            switch (alert) {
            case SSL_AD_HANDSHAKE_FAILURE:
            case SSL_AD_BAD_CERTIFICATE:
            case SSL_AD_UNSUPPORTED_CERTIFICATE:
            case SSL_AD_CERTIFICATE_REVOKED:
            case SSL_AD_CERTIFICATE_EXPIRED:
            case SSL_AD_CERTIFICATE_UNKNOWN:
            case SSL_AD_UNKNOWN_CA:
            case SSL_AD_ACCESS_DENIED:
            case SSL_AD_CERTIFICATE_REQUIRED:
                return -EACCES;
            default:
                return -EPROTO;
            }
        }
        s_err(errbuf, errcap, "TLS failure: %s", ERR_reason_error_string(err));
        return -EPROTO;
    }
    if (se == SSL_ERROR_ZERO_RETURN || (se == SSL_ERROR_SYSCALL && err == 0 && ret == 0)) {
        s_err(errbuf, errcap, "connection closed by the peer");
        return -ECONNRESET;
    }
    if (se == SSL_ERROR_SYSCALL && err == 0) {
        s_err(errbuf, errcap, "connection error: %s", strerror(saved_errno));
        return saved_errno == ECONNRESET || saved_errno == EPIPE ? -ECONNRESET : -EPROTO;
    }
    s_err(errbuf, errcap, "TLS failure: %s",
          err ? ERR_reason_error_string(err) : "unexpected SSL error");
    return -EPROTO;
}

/* ---- blocking helpers ---- */

/* Milliseconds left until deadline (0 when passed), clamped to int. */
static int s_left_ms(int64_t deadline)
{
    int64_t left = deadline - dy_now_ms();
    return left <= 0 ? 0 : left > 0x7fffffff ? 0x7fffffff : (int)left;
}

static int s_set_nonblock(int fd, bool on)
{
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0)
        return -errno;
    fl = on ? fl | O_NONBLOCK : fl & ~O_NONBLOCK;
    return fcntl(fd, F_SETFL, fl) < 0 ? -errno : 0;
}

int dy_tls_listen(const char *host, uint16_t port, uint16_t *ret_port)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICHOST | AI_NUMERICSERV};
    struct addrinfo *res = NULL;
    char portstr[8];
    snprintf(portstr, sizeof(portstr), "%u", (unsigned)port);
    if (getaddrinfo(host, portstr, &hints, &res) != 0 || res == NULL)
        return -EINVAL;
    int fd = socket(res->ai_family, res->ai_socktype | SOCK_CLOEXEC, res->ai_protocol);
    int rc = fd < 0 ? -errno : 0;
    int one = 1;
    if (rc == 0)
        (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (rc == 0 && (bind(fd, res->ai_addr, res->ai_addrlen) < 0 || listen(fd, 64) < 0))
        rc = -errno;
    freeaddrinfo(res);
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    if (rc == 0 && getsockname(fd, (struct sockaddr *)&ss, &sl) < 0)
        rc = -errno;
    if (rc < 0) {
        if (fd >= 0)
            close(fd);
        return rc;
    }
    if (ret_port != NULL)
        *ret_port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                                   : ((struct sockaddr_in *)&ss)->sin_port);
    return fd;
}

int dy_tls_handshake(SSL *ssl, int timeout_ms, char *errbuf, size_t errcap)
{
    int fd = ssl ? SSL_get_fd(ssl) : -1;
    if (fd < 0) {
        s_err(errbuf, errcap, "no socket");
        return -EINVAL;
    }
    int64_t deadline = dy_now_ms() + (timeout_ms > 0 ? timeout_ms : S_DEFAULT_TIMEOUT_MS);
    int rc = s_set_nonblock(fd, true);
    if (rc < 0) {
        s_err(errbuf, errcap, "fcntl: %s", strerror(-rc));
        return rc;
    }
    for (;;) {
        ERR_clear_error();
        int r = SSL_do_handshake(ssl);
        if (r == 1)
            break;
        int se = SSL_get_error(ssl, r);
        if (se != SSL_ERROR_WANT_READ && se != SSL_ERROR_WANT_WRITE) {
            rc = dy_tls_describe_error(ssl, r, errbuf, errcap);
            break;
        }
        int left = s_left_ms(deadline);
        if (left == 0) {
            s_err(errbuf, errcap, "handshake timed out");
            rc = -ETIMEDOUT;
            break;
        }
        struct pollfd pfd = {.fd = fd, .events = se == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT};
        if (poll(&pfd, 1, left) < 0 && errno != EINTR) {
            rc = -errno;
            s_err(errbuf, errcap, "poll: %s", strerror(errno));
            break;
        }
    }
    int rc2 = s_set_nonblock(fd, false);
    return rc < 0 ? rc : rc2;
}

/* A TCP connection to host:port within the deadline, or -errno with errbuf set. */
static int s_tcp_connect(const char *host, uint16_t port, int64_t deadline, char *errbuf,
                         size_t errcap)
{
    struct addrinfo hints = {
        .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV};
    struct addrinfo *res = NULL;
    char portstr[8];
    snprintf(portstr, sizeof(portstr), "%u", (unsigned)port);
    int gai = getaddrinfo(host, portstr, &hints, &res);
    if (gai != 0) {
        s_err(errbuf, errcap, "resolve %s: %s", host, gai_strerror(gai));
        return -EHOSTUNREACH;
    }
    int rc = -ECONNREFUSED, fd = -1;
    for (struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, ai->ai_protocol);
        if (fd < 0) {
            rc = -errno;
            continue;
        }
        rc = 0;
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
            rc = -errno;
            if (rc == -EINPROGRESS) {
                struct pollfd pfd = {.fd = fd, .events = POLLOUT};
                int n;
                do
                    n = poll(&pfd, 1, s_left_ms(deadline));
                while (n < 0 && errno == EINTR);
                int soerr = 0;
                socklen_t sl = sizeof(soerr);
                if (n == 0)
                    rc = -ETIMEDOUT;
                else if (n < 0)
                    rc = -errno;
                else if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0)
                    rc = -errno;
                else
                    rc = -soerr;
            }
        }
        if (rc == 0)
            break;
        close(fd);
        fd = -1;
        if (rc == -ETIMEDOUT)
            break;
    }
    freeaddrinfo(res);
    if (fd < 0) {
        s_err(errbuf, errcap, "connect to %s:%u: %s", host, (unsigned)port, strerror(-rc));
        return rc;
    }
    int one = 1;
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return fd;
}

/* Wraps fd (taken) in an SSL of ctx in the given role and runs the handshake.  The SSL,
 * or NULL with fd closed. */
static SSL *s_wrap(SSL_CTX *ctx, int fd, bool server, int64_t deadline, char *errbuf, size_t errcap)
{
    SSL *ssl = SSL_new(ctx);
    if (ssl == NULL || SSL_set_fd(ssl, fd) != 1) {
        s_err(errbuf, errcap, "SSL_new: %s", s_ossl_reason());
        SSL_free(ssl);
        close(fd);
        return NULL;
    }
    if (server) {
        SSL_set_accept_state(ssl);
    } else {
        SSL_set_connect_state(ssl);
        const s_ctx_data_t *d = s_ctx_data(ctx);
        if (d != NULL && d->sni != NULL)
            (void)SSL_set_tlsext_host_name(ssl, d->sni);
    }
    int left = s_left_ms(deadline);
    int rc = left > 0 ? dy_tls_handshake(ssl, left, errbuf, errcap) : -ETIMEDOUT;
    if (rc == -ETIMEDOUT && left == 0)
        s_err(errbuf, errcap, "handshake timed out");
    if (rc < 0) {
        SSL_free(ssl);
        close(fd);
        return NULL;
    }
    return ssl;
}

SSL *dy_tls_connect(SSL_CTX *ctx, const char *host, uint16_t port, int timeout_ms, char *errbuf,
                    size_t errcap)
{
    if (ctx == NULL || host == NULL) {
        s_err(errbuf, errcap, "no context or host");
        return NULL;
    }
    int64_t deadline = dy_now_ms() + (timeout_ms > 0 ? timeout_ms : S_DEFAULT_TIMEOUT_MS);
    int fd = s_tcp_connect(host, port, deadline, errbuf, errcap);
    if (fd < 0)
        return NULL;
    return s_wrap(ctx, fd, false, deadline, errbuf, errcap);
}

SSL *dy_tls_accept(SSL_CTX *ctx, int listen_fd, int timeout_ms, char *errbuf, size_t errcap)
{
    if (ctx == NULL || listen_fd < 0) {
        s_err(errbuf, errcap, "no context or listening socket");
        return NULL;
    }
    int64_t deadline = dy_now_ms() + (timeout_ms > 0 ? timeout_ms : S_DEFAULT_TIMEOUT_MS);
    int fd = -1;
    while (fd < 0) {
        struct pollfd pfd = {.fd = listen_fd, .events = POLLIN};
        int n = poll(&pfd, 1, s_left_ms(deadline));
        if (n == 0) {
            s_err(errbuf, errcap, "no connection before the timeout");
            return NULL;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            s_err(errbuf, errcap, "poll: %s", strerror(errno));
            return NULL;
        }
        fd = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0 && errno != EINTR && errno != EAGAIN && errno != ECONNABORTED) {
            s_err(errbuf, errcap, "accept: %s", strerror(errno));
            return NULL;
        }
    }
    int one = 1;
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return s_wrap(ctx, fd, true, deadline, errbuf, errcap);
}

void dy_tls_close(SSL **ssl_p)
{
    if (ssl_p == NULL || *ssl_p == NULL)
        return;
    SSL *ssl = *ssl_p;
    int fd = SSL_get_fd(ssl);
    if (SSL_is_init_finished(ssl) && !(SSL_get_shutdown(ssl) & SSL_SENT_SHUTDOWN))
        (void)SSL_shutdown(ssl);
    ERR_clear_error();
    SSL_free(ssl);
    if (fd >= 0)
        close(fd);
    *ssl_p = NULL;
}
