/* test_tls.c - tls.c and deploy/mkpki: the party table (parsing, lookups, malformed
 * files), the PKI files mkpki makes (modes, extensions, idempotence), and real handshakes
 * over loopback TCP (127.0.0.1, ephemeral ports) with a server thread: a good pair gets
 * each other's party id; a peer with no certificate, an unknown root, an expired
 * certificate, no client use, a root outside the party table, TLS 1.2 only, or (client
 * side) the wrong name or an unknown root is refused in the handshake, and the server's
 * SSL_read never returns the client's bytes.  Each refusal has a control case that
 * differs in that one property and succeeds.
 *
 * The PKI comes from $DY_SOURCE_ROOT/deploy/mkpki into a mkdtemp directory.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "dy.h"
#include "tls.h"

#define T_TIMEOUT_MS 5000
#define T_PING "ping"

static char s_dir[256]; /* mkdtemp root of this run */
static char s_pki[256]; /* s_dir/pki */
static dy_parties_t *s_parties;

/* s_pki/rel into out (PATH_MAX). */
static const char *s_path(char *out, const char *rel)
{
    snprintf(out, PATH_MAX, "%s/%s", s_pki, rel);
    return out;
}

/* Runs deploy/mkpki with args; returns its exit status. */
static int s_mkpki(const char *args)
{
    const char *root = getenv("DY_SOURCE_ROOT");
    if (root == NULL)
        return -1;
    char cmd[3 * PATH_MAX];
    snprintf(cmd, sizeof(cmd), "'%s/deploy/mkpki' --dir '%s' %s >/dev/null 2>&1", root, s_pki,
             args);
    int st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

#define S_MKPKI_ARGS "--duchies worker1,worker2,aggregator --edps edp1 --mcs mc1 --negative"

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
    signal(SIGPIPE, SIG_IGN);
    if (getenv("DY_SOURCE_ROOT") == NULL) {
        fprintf(stderr, "# DY_SOURCE_ROOT is not set\n");
        return -1;
    }
    const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    if (strlen(tmp) > 200)
        tmp = "/tmp";
    snprintf(s_dir, sizeof(s_dir), "%s/dy-tls-XXXXXX", tmp);
    if (mkdtemp(s_dir) == NULL)
        return -1;
    snprintf(s_pki, sizeof(s_pki), "%.240s/pki", s_dir);
    int rc = s_mkpki(S_MKPKI_ARGS);
    if (rc != 0) {
        fprintf(stderr, "# deploy/mkpki failed with %d\n", rc);
        return -1;
    }
    char p[PATH_MAX], err[256] = "";
    s_parties = dy_parties_load(s_path(p, "parties.txt"), err, sizeof(err));
    if (s_parties == NULL)
        fprintf(stderr, "# %s\n", err);
    return s_parties ? 0 : -1;
}

static int group_teardown(void **state)
{
    (void)state;
    dy_parties_destroy(&s_parties);
    if (s_dir[0])
        nftw(s_dir, s_rm, 16, FTW_DEPTH | FTW_PHYS);
    return 0;
}

static X509 *s_load_cert(const char *rel)
{
    char p[PATH_MAX];
    FILE *f = fopen(s_path(p, rel), "r");
    assert_non_null(f);
    X509 *x = PEM_read_X509(f, NULL, NULL, NULL);
    fclose(f);
    assert_non_null(x);
    return x;
}

static const char *s_lookup_cert_skid(const dy_parties_t *parties, const char *rel)
{
    X509 *x = s_load_cert(rel);
    const ASN1_OCTET_STRING *skid = X509_get0_subject_key_id(x);
    assert_non_null(skid);
    const char *id =
        dy_parties_lookup(parties, ASN1_STRING_get0_data(skid), (size_t)ASN1_STRING_length(skid));
    X509_free(x);
    return id;
}

/* ---- party table ---- */

static void test_party_ids(void **state)
{
    (void)state;
    assert_true(dy_party_id_valid("kingdom"));
    assert_true(dy_party_id_valid("duchies/worker1"));
    assert_true(dy_party_id_valid("duchies/a"));
    assert_true(dy_party_id_valid("duchies/agg-1"));
    assert_true(dy_party_id_valid("dataProviders/edp1"));
    assert_true(dy_party_id_valid("dataProviders/AbC-_9"));
    assert_true(dy_party_id_valid("measurementConsumers/mc1"));
    assert_false(dy_party_id_valid(NULL));
    assert_false(dy_party_id_valid(""));
    assert_false(dy_party_id_valid("kingdoms"));
    assert_false(dy_party_id_valid("duchies/"));
    assert_false(dy_party_id_valid("duchies/Worker1"));
    assert_false(dy_party_id_valid("duchies/1worker"));
    assert_false(dy_party_id_valid("duchies/worker-"));
    assert_false(dy_party_id_valid("duchies/a/b"));
    assert_false(dy_party_id_valid("dataProviders/e.1"));
    assert_false(dy_party_id_valid("models/x"));
    char longid[80];
    memset(longid, 'a', sizeof(longid));
    memcpy(longid, "duchies/", 8);
    longid[8 + 63] = '\0';
    assert_true(dy_party_id_valid(longid));
    longid[8 + 63] = 'a';
    longid[8 + 64] = '\0';
    assert_false(dy_party_id_valid(longid));
}

static void test_party_table_from_mkpki(void **state)
{
    (void)state;
    assert_int_equal(dy_parties_count(s_parties), 6);
    assert_string_equal(s_lookup_cert_skid(s_parties, "kingdom/root.pem"), "kingdom");
    assert_string_equal(s_lookup_cert_skid(s_parties, "worker1/root.pem"), "duchies/worker1");
    assert_string_equal(s_lookup_cert_skid(s_parties, "aggregator/root.pem"), "duchies/aggregator");
    assert_string_equal(s_lookup_cert_skid(s_parties, "edp1/root.pem"), "dataProviders/edp1");
    assert_string_equal(s_lookup_cert_skid(s_parties, "mc1/root.pem"), "measurementConsumers/mc1");
    assert_null(s_lookup_cert_skid(s_parties, "negative/outsider-root.pem"));
    assert_null(s_lookup_cert_skid(s_parties, "negative/rogue-root.pem"));
    /* A leaf's SKID is not a root's. */
    assert_null(s_lookup_cert_skid(s_parties, "worker1/tls.pem"));
}

/* Writes text to s_dir/name and tries to load it. */
static dy_parties_t *s_load_text(const char *text, char *err, size_t errcap)
{
    char p[PATH_MAX];
    snprintf(p, sizeof(p), "%s/table.txt", s_dir);
    FILE *f = fopen(p, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    err[0] = '\0';
    return dy_parties_load(p, err, errcap);
}

static void test_party_table_parse(void **state)
{
    (void)state;
    char err[256];
    dy_parties_t *t = s_load_text("# header\n\n  0a0B  duchies/w1 # trailing\n"
                                  "ff dataProviders/e1\r\n\t# only a comment\n",
                                  err, sizeof(err));
    assert_non_null(t);
    assert_int_equal(dy_parties_count(t), 2);
    const uint8_t k1[] = {0x0a, 0x0b}, k2[] = {0xff}, k3[] = {0x0a};
    assert_string_equal(dy_parties_lookup(t, k1, 2), "duchies/w1");
    assert_string_equal(dy_parties_lookup(t, k2, 1), "dataProviders/e1");
    assert_null(dy_parties_lookup(t, k3, 1));
    dy_parties_t *c = dy_parties_dup(t);
    dy_parties_destroy(&t);
    assert_null(t);
    assert_string_equal(dy_parties_lookup(c, k1, 2), "duchies/w1");
    assert_int_equal(dy_parties_add(c, k1, 2, "kingdom"), -EEXIST);
    assert_int_equal(dy_parties_add(c, k3, 1, "duchies/Bad"), -EINVAL);
    assert_int_equal(dy_parties_add(c, k3, 0, "kingdom"), -EINVAL);
    assert_int_equal(dy_parties_add(c, k3, 1, "kingdom"), 0);
    assert_string_equal(dy_parties_lookup(c, k3, 1), "kingdom");
    dy_parties_destroy(&c);
    dy_parties_destroy(&c); /* NULL-safe */

    static const struct {
        const char *text, *why;
    } bad[] = {
        {"abc kingdom\n", ":1: bad SKID"},
        {"zz kingdom\n", ":1: bad SKID"},
        {"# ok\nab\n", ":2: expected"},
        {"ab kingdom extra\n", ":1: expected"},
        {"ab duchies/UPPER\n", ":1: bad party id"},
        {"ab kingdom\ncd duchies/w\nab duchies/x\n", ":3: SKID listed twice"},
    };
    for (size_t i = 0; i < DY_ARRAY_LEN(bad); i++) {
        errno = 0;
        assert_null(s_load_text(bad[i].text, err, sizeof(err)));
        assert_int_equal(errno, EINVAL);
        if (strstr(err, bad[i].why) == NULL)
            fail_msg("case %zu: \"%s\" lacks \"%s\"", i, err, bad[i].why);
    }
    errno = 0;
    assert_null(dy_parties_load("/nonexistent/parties.txt", err, sizeof(err)));
    assert_int_equal(errno, ENOENT);
    assert_non_null(strstr(err, "/nonexistent/parties.txt"));
}

/* ---- mkpki ---- */

static void s_read_file(const char *rel, char *buf, size_t cap, size_t *ret_len)
{
    char p[PATH_MAX];
    FILE *f = fopen(s_path(p, rel), "r");
    assert_non_null(f);
    *ret_len = fread(buf, 1, cap, f);
    fclose(f);
}

static void test_mkpki_files(void **state)
{
    (void)state;
    char p[PATH_MAX];
    static const char *keys[] = {"kingdom/root.key", "kingdom/tls.key", "worker1/sign.key",
                                 "mc1/tls.key", "negative/expired.key"};
    for (size_t i = 0; i < DY_ARRAY_LEN(keys); i++) {
        struct stat st;
        assert_int_equal(stat(s_path(p, keys[i]), &st), 0);
        assert_int_equal(st.st_mode & 0777, 0600);
    }
    /* TLS leaf: EKU serverAuth+clientAuth, AKID = root SKID, not a CA. */
    X509 *root = s_load_cert("worker1/root.pem"), *tls = s_load_cert("worker1/tls.pem");
    X509 *sign = s_load_cert("worker1/sign.pem");
    assert_int_equal(X509_check_ca(root), 1);
    assert_true(X509_get_key_usage(root) & KU_KEY_CERT_SIGN);
    assert_int_equal(X509_check_ca(tls), 0);
    assert_true(X509_get_extension_flags(tls) & EXFLAG_XKUSAGE);
    assert_int_equal(X509_get_extended_key_usage(tls) & (XKU_SSL_SERVER | XKU_SSL_CLIENT),
                     XKU_SSL_SERVER | XKU_SSL_CLIENT);
    assert_int_equal(
        ASN1_OCTET_STRING_cmp(X509_get0_authority_key_id(tls), X509_get0_subject_key_id(root)), 0);
    assert_int_equal(X509_check_host(tls, "localhost", 0, 0, NULL), 1);
    assert_int_equal(X509_check_ip_asc(tls, "127.0.0.1", 0), 1);
    /* Signing leaf: digitalSignature only, no EKU, its own key, same root. */
    assert_int_equal(X509_get_key_usage(sign), KU_DIGITAL_SIGNATURE);
    assert_false(X509_get_extension_flags(sign) & EXFLAG_XKUSAGE);
    assert_int_equal(
        ASN1_OCTET_STRING_cmp(X509_get0_authority_key_id(sign), X509_get0_subject_key_id(root)), 0);
    assert_int_not_equal(EVP_PKEY_eq(X509_get0_pubkey(tls), X509_get0_pubkey(sign)), 1);
    X509_free(root);
    X509_free(tls);
    X509_free(sign);

    /* Idempotent: a second run keeps keys and certificates byte for byte. */
    static char a[4096], b[4096];
    size_t la, lb;
    static const char *kept[] = {"worker1/tls.key", "worker1/tls.pem", "kingdom/root.pem",
                                 "parties.txt", "negative/expired.pem"};
    static char before[DY_ARRAY_LEN(kept)][4096];
    size_t lens[DY_ARRAY_LEN(kept)];
    for (size_t i = 0; i < DY_ARRAY_LEN(kept); i++)
        s_read_file(kept[i], before[i], sizeof(before[i]), &lens[i]);
    assert_int_equal(s_mkpki(S_MKPKI_ARGS), 0);
    for (size_t i = 0; i < DY_ARRAY_LEN(kept); i++) {
        s_read_file(kept[i], a, sizeof(a), &la);
        assert_int_equal(la, lens[i]);
        assert_memory_equal(a, before[i], la);
    }
    /* A deleted leaf key is remade, and its certificate with it; the root stays. */
    s_read_file("mc1/tls.pem", a, sizeof(a), &la);
    assert_int_equal(unlink(s_path(p, "mc1/tls.key")), 0);
    assert_int_equal(s_mkpki(S_MKPKI_ARGS), 0);
    s_read_file("mc1/tls.pem", b, sizeof(b), &lb);
    assert_false(la == lb && memcmp(a, b, la) == 0);
    s_read_file("kingdom/root.pem", a, sizeof(a), &la);
    assert_memory_equal(a, before[2], lens[2]);
    /* Usage errors exit 64. */
    assert_int_equal(s_mkpki("--duchies Bad_Id"), 64);
    assert_int_equal(s_mkpki("--bogus"), 64);
    assert_int_equal(s_mkpki("--edps e1,e1"), 64);
}

/* ---- handshakes ---- */

/* What the server thread saw. */
typedef struct {
    SSL_CTX *ctx;               /* borrowed */
    int lfd;                    /* borrowed listening socket */
    bool use_accept_helper;     /* dy_tls_accept instead of accept + dy_tls_handshake */
    int accept_timeout_ms;      /* for dy_tls_accept */
    int hs_rc;                  /* handshake result, 0 or -errno */
    char err[256];              /* handshake error string */
    int id_rc;                  /* dy_tls_peer_identity result */
    char peer[DY_PARTY_ID_MAX]; /* peer identity */
    int nread;                  /* SSL_read result (attempted even after a failure) */
    char data[64];              /* bytes read */
} srv_t;

/* What the client saw. */
typedef struct {
    bool hs_ok;                 /* dy_tls_connect returned a connection */
    char err[256];              /* connect or first-read error */
    int id_rc;                  /* dy_tls_peer_identity result */
    char peer[DY_PARTY_ID_MAX]; /* server identity */
    int id_small_rc;            /* dy_tls_peer_identity into a 3-byte buffer */
    int nread;                  /* first SSL_read result */
    char data[64];              /* the server's reply: its view of our identity */
} cli_t;

static void s_rcvtimeo(int fd, int ms)
{
    struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
    (void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
}

static void *s_server_main(void *arg)
{
    srv_t *s = arg;
    SSL *ssl = NULL;
    s->nread = -1;
    if (s->use_accept_helper) {
        ssl = dy_tls_accept(s->ctx, s->lfd, s->accept_timeout_ms, s->err, sizeof(s->err));
        s->hs_rc = ssl ? 0 : -1;
        if (ssl == NULL)
            return NULL;
    } else {
        /* A server that reads even after a failed handshake: whatever it does, the
         * refused client's bytes must not come out of SSL_read. */
        struct pollfd pfd = {.fd = s->lfd, .events = POLLIN};
        if (poll(&pfd, 1, T_TIMEOUT_MS) != 1) {
            snprintf(s->err, sizeof(s->err), "no client");
            s->hs_rc = -ETIMEDOUT;
            return NULL;
        }
        int fd = accept(s->lfd, NULL, NULL);
        if (fd < 0) {
            s->hs_rc = -errno;
            return NULL;
        }
        s_rcvtimeo(fd, 2000);
        ssl = SSL_new(s->ctx);
        SSL_set_fd(ssl, fd);
        SSL_set_accept_state(ssl);
        s->hs_rc = dy_tls_handshake(ssl, T_TIMEOUT_MS, s->err, sizeof(s->err));
    }
    if (s->hs_rc == 0)
        s->id_rc = dy_tls_peer_identity(ssl, s->peer, sizeof(s->peer));
    ERR_clear_error();
    s->nread = SSL_read(ssl, s->data, sizeof(s->data) - 1);
    if (s->nread > 0) {
        s->data[s->nread] = '\0';
        const char *reply = s->id_rc == 0 ? s->peer : "?";
        (void)SSL_write(ssl, reply, (int)strlen(reply));
    }
    if (s->hs_rc == 0) {
        dy_tls_close(&ssl);
    } else {
        int fd = SSL_get_fd(ssl);
        SSL_free(ssl);
        close(fd);
    }
    ERR_clear_error();
    return NULL;
}

static void s_client_run(SSL_CTX *ctx, uint16_t port, cli_t *c)
{
    memset(c, 0, sizeof(*c));
    c->nread = -1;
    SSL *ssl = dy_tls_connect(ctx, "127.0.0.1", port, T_TIMEOUT_MS, c->err, sizeof(c->err));
    c->hs_ok = ssl != NULL;
    if (ssl == NULL)
        return;
    c->id_rc = dy_tls_peer_identity(ssl, c->peer, sizeof(c->peer));
    char small[3];
    c->id_small_rc = dy_tls_peer_identity(ssl, small, sizeof(small));
    s_rcvtimeo(SSL_get_fd(ssl), T_TIMEOUT_MS);
    ERR_clear_error();
    (void)SSL_write(ssl, T_PING, (int)strlen(T_PING));
    ERR_clear_error();
    c->nread = SSL_read(ssl, c->data, sizeof(c->data) - 1);
    if (c->nread > 0)
        c->data[c->nread] = '\0';
    else
        (void)dy_tls_describe_error(ssl, c->nread, c->err, sizeof(c->err));
    dy_tls_close(&ssl);
}

/* One connection from a client of cctx to a server of sctx (thread). */
static void s_exchange(SSL_CTX *sctx, SSL_CTX *cctx, srv_t *s, cli_t *c)
{
    uint16_t port = 0;
    memset(s, 0, sizeof(*s));
    s->ctx = sctx;
    s->lfd = dy_tls_listen("127.0.0.1", 0, &port);
    assert_true(s->lfd >= 0);
    assert_int_not_equal(port, 0);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, s_server_main, s), 0);
    s_client_run(cctx, port, c);
    assert_int_equal(pthread_join(th, NULL), 0);
    close(s->lfd);
    fprintf(stderr,
            "# server: rc %d \"%s\" peer \"%s\" read %d | client: %s \"%s\" peer "
            "\"%s\" read %d\n",
            s->hs_rc, s->err, s->peer, s->nread, c->hs_ok ? "connected" : "refused", c->err,
            c->peer, c->nread);
}

/* A context of ours for party dir `who` (cert/key file base `base`). */
static SSL_CTX *s_ctx(bool server, const char *cert, const char *key, const char *ca,
                      const dy_parties_t *parties, const char *name)
{
    char pc[PATH_MAX], pk[PATH_MAX], pa[PATH_MAX], err[256] = "";
    dy_tls_conf_t conf = {
        .cert_path = s_path(pc, cert),
        .key_path = s_path(pk, key),
        .trusted_ca_path = s_path(pa, ca),
        .parties = parties ? parties : s_parties,
        .expected_name = name,
    };
    SSL_CTX *ctx = server ? dy_tls_server_ctx(&conf, err, sizeof(err))
                          : dy_tls_client_ctx(&conf, err, sizeof(err));
    if (ctx == NULL)
        fail_msg("context: %s", err);
    return ctx;
}

static SSL_CTX *s_server(const char *party)
{
    char c[64], k[64];
    snprintf(c, sizeof(c), "%s/tls.pem", party);
    snprintf(k, sizeof(k), "%s/tls.key", party);
    return s_ctx(true, c, k, "trusted-ca.pem", NULL, NULL);
}

static SSL_CTX *s_client(const char *party)
{
    char c[64], k[64];
    snprintf(c, sizeof(c), "%s/tls.pem", party);
    snprintf(k, sizeof(k), "%s/tls.key", party);
    return s_ctx(false, c, k, "trusted-ca.pem", NULL, "localhost");
}

/* The good path, with each side's view of the other checked. */
static void s_assert_good(const srv_t *s, const cli_t *c, const char *client_id,
                          const char *server_id)
{
    assert_int_equal(s->hs_rc, 0);
    assert_int_equal(s->id_rc, 0);
    assert_string_equal(s->peer, client_id);
    assert_int_equal(s->nread, (int)strlen(T_PING));
    assert_string_equal(s->data, T_PING);
    assert_true(c->hs_ok);
    assert_int_equal(c->id_rc, 0);
    assert_string_equal(c->peer, server_id);
    assert_int_equal(c->id_small_rc, -ENOSPC);
    assert_string_equal(c->data, client_id);
}

/* Refused by the server in the handshake, for the reason `why`, with no application byte
 * reaching the server, and the client's handshake or first read failing. */
static void s_assert_server_refused(const srv_t *s, const cli_t *c, const char *why)
{
    assert_true(s->hs_rc < 0);
    if (strstr(s->err, why) == NULL)
        fail_msg("server error \"%s\" does not say \"%s\"", s->err, why);
    assert_true(s->nread <= 0);
    assert_true(!c->hs_ok || c->nread <= 0);
    assert_true(c->data[0] == '\0');
}

/* Refused by the client (it judged the server) for the reason `why`. */
static void s_assert_client_refused(const srv_t *s, const cli_t *c, const char *why)
{
    assert_false(c->hs_ok);
    if (strstr(c->err, why) == NULL)
        fail_msg("client error \"%s\" does not say \"%s\"", c->err, why);
    assert_true(s->hs_rc < 0);
    assert_true(s->nread <= 0);
}

static void test_good_handshake(void **state)
{
    (void)state;
    srv_t s;
    cli_t c;
    SSL_CTX *sk = s_server("kingdom"), *sw = s_server("worker2");
    static const struct {
        const char *client, *id;
    } clients[] = {
        {"worker1", "duchies/worker1"},
        {"edp1", "dataProviders/edp1"},
        {"mc1", "measurementConsumers/mc1"},
    };
    for (size_t i = 0; i < DY_ARRAY_LEN(clients); i++) {
        SSL_CTX *cc = s_client(clients[i].client);
        s_exchange(sk, cc, &s, &c);
        s_assert_good(&s, &c, clients[i].id, "kingdom");
        SSL_CTX_free(cc);
    }
    /* Duchy to duchy, expecting the server by IP literal. */
    SSL_CTX *cc = s_ctx(false, "aggregator/tls.pem", "aggregator/tls.key", "trusted-ca.pem", NULL,
                        "127.0.0.1");
    s_exchange(sw, cc, &s, &c);
    s_assert_good(&s, &c, "duchies/aggregator", "duchies/worker2");
    SSL_CTX_free(cc);
    SSL_CTX_free(sk);
    SSL_CTX_free(sw);
}

static void test_accept_helper(void **state)
{
    (void)state;
    SSL_CTX *sk = s_server("kingdom"), *cc = s_client("worker1");
    uint16_t port = 0;
    srv_t s = {.ctx = sk, .use_accept_helper = true, .accept_timeout_ms = T_TIMEOUT_MS};
    cli_t c;
    s.lfd = dy_tls_listen("127.0.0.1", 0, &port);
    assert_true(s.lfd >= 0);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, s_server_main, &s), 0);
    s_client_run(cc, port, &c);
    assert_int_equal(pthread_join(th, NULL), 0);
    s_assert_good(&s, &c, "duchies/worker1", "kingdom");
    /* Nobody connects: the accept times out. */
    char err[256] = "";
    double t0 = dy_now();
    assert_null(dy_tls_accept(sk, s.lfd, 200, err, sizeof(err)));
    assert_true(dy_now() - t0 < 2.0);
    assert_non_null(strstr(err, "no connection"));
    close(s.lfd);
    /* Nothing listens: the connect fails with a reason. */
    assert_null(dy_tls_connect(cc, "127.0.0.1", port, 1000, err, sizeof(err)));
    assert_non_null(strstr(err, "connect to 127.0.0.1"));
    SSL_CTX_free(sk);
    SSL_CTX_free(cc);
}

static void test_no_client_certificate(void **state)
{
    (void)state;
    char pa[PATH_MAX];
    SSL_CTX *sk = s_server("kingdom");
    /* A plain TLS 1.3 client that trusts the federation but has no certificate. */
    SSL_CTX *cc = SSL_CTX_new(TLS_client_method());
    assert_non_null(cc);
    assert_int_equal(SSL_CTX_load_verify_locations(cc, s_path(pa, "trusted-ca.pem"), NULL), 1);
    SSL_CTX_set_verify(cc, SSL_VERIFY_PEER, NULL);
    srv_t s;
    cli_t c;
    s_exchange(sk, cc, &s, &c);
    s_assert_server_refused(&s, &c, "no certificate");
    SSL_CTX_free(cc);
    SSL_CTX_free(sk);
}

static void test_unknown_root(void **state)
{
    (void)state;
    SSL_CTX *sk = s_server("kingdom");
    SSL_CTX *cc = s_ctx(false, "negative/rogue.pem", "negative/rogue.key", "trusted-ca.pem", NULL,
                        "localhost");
    srv_t s;
    cli_t c;
    s_exchange(sk, cc, &s, &c);
    s_assert_server_refused(&s, &c, "unknown root");
    SSL_CTX_free(cc);
    /* Client side: a server with a leaf from the rogue root. */
    SSL_CTX *sr =
        s_ctx(true, "negative/rogue.pem", "negative/rogue.key", "trusted-ca.pem", NULL, NULL);
    cc = s_client("worker1");
    s_exchange(sr, cc, &s, &c);
    s_assert_client_refused(&s, &c, "unknown root");
    SSL_CTX_free(cc);
    SSL_CTX_free(sr);
    SSL_CTX_free(sk);
}

static void test_expired(void **state)
{
    (void)state;
    SSL_CTX *sk = s_server("kingdom");
    SSL_CTX *cc = s_ctx(false, "negative/expired.pem", "negative/expired.key", "trusted-ca.pem",
                        NULL, "localhost");
    srv_t s;
    cli_t c;
    s_exchange(sk, cc, &s, &c);
    s_assert_server_refused(&s, &c, "expired");
    SSL_CTX_free(cc);
    SSL_CTX_free(sk);
}

static void test_no_client_use(void **state)
{
    (void)state;
    SSL_CTX *sk = s_server("kingdom");
    srv_t s;
    cli_t c;
    /* EKU serverAuth only. */
    SSL_CTX *cc = s_ctx(false, "negative/noclient.pem", "negative/noclient.key", "trusted-ca.pem",
                        NULL, "localhost");
    s_exchange(sk, cc, &s, &c);
    s_assert_server_refused(&s, &c, "no client use");
    SSL_CTX_free(cc);
    /* The signing certificate (no EKU at all, which OpenSSL alone would accept). */
    cc = s_ctx(false, "worker1/sign.pem", "worker1/sign.key", "trusted-ca.pem", NULL, "localhost");
    s_exchange(sk, cc, &s, &c);
    s_assert_server_refused(&s, &c, "no client use");
    SSL_CTX_free(cc);
    /* Control: the clientAuth-only leaf is accepted as a client. */
    cc = s_ctx(false, "negative/noserver.pem", "negative/noserver.key", "trusted-ca.pem", NULL,
               "localhost");
    s_exchange(sk, cc, &s, &c);
    s_assert_good(&s, &c, "kingdom", "kingdom");
    SSL_CTX_free(cc);
    /* Client side: a server whose leaf lacks serverAuth is refused... */
    SSL_CTX *sn =
        s_ctx(true, "negative/noserver.pem", "negative/noserver.key", "trusted-ca.pem", NULL, NULL);
    cc = s_client("worker1");
    s_exchange(sn, cc, &s, &c);
    s_assert_client_refused(&s, &c, "no server use");
    SSL_CTX_free(sn);
    /* ...and the serverAuth-only leaf is fine as a server. */
    sn =
        s_ctx(true, "negative/noclient.pem", "negative/noclient.key", "trusted-ca.pem", NULL, NULL);
    s_exchange(sn, cc, &s, &c);
    s_assert_good(&s, &c, "duchies/worker1", "kingdom");
    SSL_CTX_free(sn);
    SSL_CTX_free(cc);
    SSL_CTX_free(sk);
}

static void test_not_in_party_table(void **state)
{
    (void)state;
    /* The server trusts the outsider's root (chain verifies) but its table lacks it. */
    SSL_CTX *sk = s_ctx(true, "kingdom/tls.pem", "kingdom/tls.key",
                        "negative/trusted-ca-outsider.pem", NULL, NULL);
    SSL_CTX *cc = s_ctx(false, "negative/outsider.pem", "negative/outsider.key", "trusted-ca.pem",
                        NULL, "localhost");
    srv_t s;
    cli_t c;
    s_exchange(sk, cc, &s, &c);
    s_assert_server_refused(&s, &c, "not in party table");
    SSL_CTX_free(sk);
    /* Control: the same client is accepted once its root is in the table. */
    dy_parties_t *more = dy_parties_dup(s_parties);
    X509 *root = s_load_cert("negative/outsider-root.pem");
    const ASN1_OCTET_STRING *skid = X509_get0_subject_key_id(root);
    assert_int_equal(dy_parties_add(more, ASN1_STRING_get0_data(skid),
                                    (size_t)ASN1_STRING_length(skid), "duchies/outsider"),
                     0);
    X509_free(root);
    sk = s_ctx(true, "kingdom/tls.pem", "kingdom/tls.key", "negative/trusted-ca-outsider.pem", more,
               NULL);
    dy_parties_destroy(&more); /* the context keeps its own copy */
    s_exchange(sk, cc, &s, &c);
    s_assert_good(&s, &c, "duchies/outsider", "kingdom");
    SSL_CTX_free(sk);
    SSL_CTX_free(cc);
}

static void test_tls12_client(void **state)
{
    (void)state;
    SSL_CTX *sk = s_server("kingdom"), *cc = s_client("worker1");
    assert_int_equal(SSL_CTX_set_min_proto_version(cc, TLS1_2_VERSION), 1);
    assert_int_equal(SSL_CTX_set_max_proto_version(cc, TLS1_2_VERSION), 1);
    srv_t s;
    cli_t c;
    s_exchange(sk, cc, &s, &c);
    s_assert_server_refused(&s, &c, "protocol version");
    assert_false(c.hs_ok);
    assert_non_null(strstr(c.err, "protocol version"));
    SSL_CTX_free(cc);
    SSL_CTX_free(sk);
}

static void test_wrong_name(void **state)
{
    (void)state;
    SSL_CTX *sw = s_ctx(true, "negative/wrongname.pem", "negative/wrongname.key", "trusted-ca.pem",
                        NULL, NULL);
    SSL_CTX *cc = s_client("worker1");
    srv_t s;
    cli_t c;
    s_exchange(sw, cc, &s, &c);
    s_assert_client_refused(&s, &c, "wrong name");
    SSL_CTX_free(cc);
    /* A right certificate expected under another name is refused too. */
    SSL_CTX *sk = s_server("kingdom");
    cc = s_ctx(false, "worker1/tls.pem", "worker1/tls.key", "trusted-ca.pem", NULL,
               "kingdom.example");
    s_exchange(sk, cc, &s, &c);
    s_assert_client_refused(&s, &c, "wrong name");
    SSL_CTX_free(cc);
    /* Control: expecting the name the certificate does carry succeeds. */
    cc = s_ctx(false, "worker1/tls.pem", "worker1/tls.key", "trusted-ca.pem", NULL,
               "wrong-name.invalid");
    s_exchange(sw, cc, &s, &c);
    s_assert_good(&s, &c, "duchies/worker1", "kingdom");
    SSL_CTX_free(cc);
    SSL_CTX_free(sw);
    SSL_CTX_free(sk);
}

static void test_context_errors(void **state)
{
    (void)state;
    char pc[PATH_MAX], pk[PATH_MAX], pa[PATH_MAX], err[256];
    dy_tls_conf_t conf = {
        .cert_path = s_path(pc, "worker1/tls.pem"),
        .key_path = s_path(pk, "worker1/tls.key"),
        .trusted_ca_path = s_path(pa, "trusted-ca.pem"),
        .parties = s_parties,
    };
    /* A client must name the server it expects. */
    err[0] = '\0';
    assert_null(dy_tls_client_ctx(&conf, err, sizeof(err)));
    assert_non_null(strstr(err, "expected name"));
    conf.expected_name = "localhost";
    SSL_CTX *ok = dy_tls_client_ctx(&conf, err, sizeof(err));
    assert_non_null(ok);
    /* TLS 1.3 only, in both directions. */
    assert_int_equal(SSL_CTX_get_min_proto_version(ok), TLS1_3_VERSION);
    assert_int_equal(SSL_CTX_get_max_proto_version(ok), TLS1_3_VERSION);
    /* An SSL without a handshake has no identity. */
    SSL *ssl = SSL_new(ok);
    char id[DY_PARTY_ID_MAX];
    assert_int_equal(dy_tls_peer_identity(ssl, id, sizeof(id)), -EINVAL);
    SSL_free(ssl);
    SSL_CTX_free(ok);
    ok = dy_tls_server_ctx(&conf, err, sizeof(err));
    assert_non_null(ok);
    assert_int_equal(SSL_CTX_get_verify_mode(ok),
                     SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT);
    SSL_CTX_free(ok);
    /* Missing files and mismatched keys name the file. */
    char missing[PATH_MAX];
    conf.cert_path = s_path(missing, "nope.pem");
    assert_null(dy_tls_server_ctx(&conf, err, sizeof(err)));
    assert_non_null(strstr(err, "nope.pem"));
    conf.cert_path = pc;
    conf.key_path = s_path(missing, "worker2/tls.key");
    assert_null(dy_tls_server_ctx(&conf, err, sizeof(err)));
    assert_non_null(strstr(err, "worker2/tls.key"));
    conf.key_path = pk;
    conf.trusted_ca_path = missing;
    s_path(missing, "nope-ca.pem");
    assert_null(dy_tls_server_ctx(&conf, err, sizeof(err)));
    assert_non_null(strstr(err, "nope-ca.pem"));
    conf.trusted_ca_path = pa;
    /* An empty party table would refuse everyone: refused up front. */
    dy_parties_t *empty = dy_parties_new();
    conf.parties = empty;
    assert_null(dy_tls_server_ctx(&conf, err, sizeof(err)));
    assert_non_null(strstr(err, "party table"));
    dy_parties_destroy(&empty);
    conf.parties = NULL;
    assert_null(dy_tls_server_ctx(&conf, err, sizeof(err)));
    ERR_clear_error();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_party_ids),
        cmocka_unit_test(test_party_table_from_mkpki),
        cmocka_unit_test(test_party_table_parse),
        cmocka_unit_test(test_mkpki_files),
        cmocka_unit_test(test_good_handshake),
        cmocka_unit_test(test_accept_helper),
        cmocka_unit_test(test_no_client_certificate),
        cmocka_unit_test(test_unknown_root),
        cmocka_unit_test(test_expired),
        cmocka_unit_test(test_no_client_use),
        cmocka_unit_test(test_not_in_party_table),
        cmocka_unit_test(test_tls12_client),
        cmocka_unit_test(test_wrong_name),
        cmocka_unit_test(test_context_errors),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
