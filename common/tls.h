/* tls.h - the mutual-TLS identity layer (PROTOCOL.md §2, §9): the party table,
 * TLS 1.3-only server and client contexts that refuse unidentified peers during the
 * handshake, the authenticated peer's party id, and small blocking helpers (listen,
 * connect, accept, handshake with a timeout) for tools and tests.
 *
 * Identity.  A peer is identified only by its TLS leaf certificate: the chain must verify
 * against the trusted roots, the leaf must be issued directly by a root (chain of two),
 * carry an extendedKeyUsage naming the role it plays here (clientAuth when it connects,
 * serverAuth when it serves) and an Authority Key Identifier equal to the Subject Key
 * Identifier of the verified root, and that SKID must be in the party table
 * (deploy/mkpki writes it as DIR/parties.txt).  The checks run inside the handshake (a
 * cert_verify callback), so a refused peer never exchanges an application byte.
 *
 * Error strings (errbuf) name the reason: "unknown root", "expired", "no client use",
 * "not in party table", "wrong name", "protocol version", "no certificate", ...; they hold
 * OpenSSL reason strings and party names, never key material.
 *
 * The blocking helpers write to sockets; callers should ignore SIGPIPE.
 */
#ifndef DY_TLS_H
#define DY_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/ssl.h>

#define DY_PARTY_ID_MAX 128 /* longest party id, with its NUL */
#define DY_SKID_MAX 64      /* longest key identifier in bytes */

/* The party table: root SKID -> party id ("kingdom", "duchies/<id>",
 * "dataProviders/<id>", "measurementConsumers/<id>").  Opaque. */
typedef struct dy_parties dy_parties_t;

/* An empty table, or NULL on allocation failure.  Caller destroys. */
dy_parties_t *dy_parties_new(void);

/* Loads a party table file: one "<SKID hex> <party id>" per line, '#' starts a comment,
 * blank lines ignored.  Returns the table (caller destroys) or NULL with a reason
 * ("path:line: ...") in errbuf (may be NULL) and errno set (ENOENT, EINVAL, ENOMEM). */
dy_parties_t *dy_parties_load(const char *path, char *errbuf, size_t errcap);

/* Adds one entry.  0, -EINVAL (bad SKID length or party id), -EEXIST (SKID already
 * present), -ENOMEM. */
int dy_parties_add(dy_parties_t *parties, const uint8_t *skid, size_t skid_len,
                   const char *party_id);

/* The party id of the root whose SKID is skid, or NULL.  The string is borrowed from the
 * table. */
const char *dy_parties_lookup(const dy_parties_t *parties, const uint8_t *skid, size_t skid_len);

/* Number of entries (0 for NULL). */
size_t dy_parties_count(const dy_parties_t *parties);

/* A deep copy, or NULL on allocation failure.  Caller destroys. */
dy_parties_t *dy_parties_dup(const dy_parties_t *parties);

/* Frees the table and nulls *parties_p.  NULL-safe. */
void dy_parties_destroy(dy_parties_t **parties_p);

/* True if id is a well-formed party id (PROTOCOL.md §1: duchy ids
 * [a-z]([a-z0-9-]{0,61}[a-z0-9])?, other ids [A-Za-z0-9_-]{1,63}). */
bool dy_party_id_valid(const char *id);

/* What a context needs.  All strings are borrowed for the call only. */
typedef struct {
    const char *cert_path;       /* PEM: our leaf (optionally followed by intermediates) */
    const char *key_path;        /* PEM: its private key */
    const char *trusted_ca_path; /* PEM bundle of every trusted root */
    const dy_parties_t *parties; /* the party table; the context keeps its own copy */
    const char *expected_name;   /* client only: the server's DNS name or IP literal */
} dy_tls_conf_t;

/* A TLS 1.3-only server context: requires a client certificate (SSL_VERIFY_PEER |
 * SSL_VERIFY_FAIL_IF_NO_PEER_CERT) that verifies against the trusted roots, has EKU
 * clientAuth and whose issuing root is in the party table.  No session resumption.
 * Returns the context (caller frees with SSL_CTX_free) or NULL with a reason in errbuf
 * (may be NULL). */
SSL_CTX *dy_tls_server_ctx(const dy_tls_conf_t *conf, char *errbuf, size_t errcap);

/* The client counterpart: presents conf's certificate, requires the server's to verify,
 * have EKU serverAuth, match conf->expected_name (mandatory) and come from a root in the
 * party table. */
SSL_CTX *dy_tls_client_ctx(const dy_tls_conf_t *conf, char *errbuf, size_t errcap);

/* Writes the authenticated peer's party id (e.g. "duchies/worker1") into out.  Only for
 * a finished handshake on an SSL made from a dy_tls_*_ctx context; the id comes from the
 * verified leaf's AKID through the context's party table, never from a message.
 * 0, -EINVAL (not ours, handshake not done), -EACCES (peer not verified or not in the
 * table), -ENOSPC (cap too small). */
int dy_tls_peer_identity(SSL *ssl, char *out, size_t cap);

/* Describes why an SSL call that returned ret failed (uses SSL_get_error, the verify
 * result and this thread's OpenSSL error queue, which it empties).  Returns the matching
 * negative errno: -EACCES (certificate refused, ours or the peer's), -EPROTONOSUPPORT
 * (protocol version), -ETIMEDOUT, -ECONNRESET (peer closed), -EPROTO (other). */
int dy_tls_describe_error(SSL *ssl, int ret, char *errbuf, size_t errcap);

/* A listening TCP socket on host (numeric, e.g. "127.0.0.1") and port (0 = ephemeral),
 * close-on-exec.  Returns the fd and the bound port in *ret_port (may be NULL), or a
 * negative errno. */
int dy_tls_listen(const char *host, uint16_t port, uint16_t *ret_port);

/* Runs the handshake of ssl (whose fd is set; either role) within timeout_ms (<= 0: 30 s).
 * The fd is non-blocking during the handshake and blocking again afterwards.  0 or a
 * negative errno as dy_tls_describe_error, with the reason in errbuf. */
int dy_tls_handshake(SSL *ssl, int timeout_ms, char *errbuf, size_t errcap);

/* Connects to host:port (a name or numeric address) and completes the client handshake
 * within timeout_ms overall.  Returns the connection (caller frees with dy_tls_close) or
 * NULL with the reason in errbuf.  A TLS 1.3 client completes its handshake before the
 * server has judged the client certificate: a refusal shows up on the first read. */
SSL *dy_tls_connect(SSL_CTX *ctx, const char *host, uint16_t port, int timeout_ms, char *errbuf,
                    size_t errcap);

/* Accepts one connection on listen_fd and completes the server handshake, within
 * timeout_ms overall.  Returns the connection (caller frees with dy_tls_close) or NULL
 * with the reason in errbuf; a refused peer's socket is closed. */
SSL *dy_tls_accept(SSL_CTX *ctx, int listen_fd, int timeout_ms, char *errbuf, size_t errcap);

/* Sends close_notify (best effort), closes the socket, frees the SSL and nulls *ssl_p.
 * NULL-safe. */
void dy_tls_close(SSL **ssl_p);

#endif
