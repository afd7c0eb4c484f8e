/* kingdom_client.c - the actors' client to the Kingdom (kingdom_client.h). */
#include "kingdom_client.h"

#include "tls.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct dy_kc {
    SSL_CTX *ctx;              /* owned */
    char host[256];            /* the Kingdom's host */
    int port;
    int timeout_ms;            /* unary calls */
    dy_rpc_client_t *client;   /* owned; NULL while disconnected */
};

dy_kc_t *dy_kc_new(const dy_duchy_config_t *cfg, char *errbuf, size_t errlen)
{
    dy_kc_t *self = calloc(1, sizeof(*self));
    if (self == NULL) {
        snprintf(errbuf, errlen, "out of memory");
        return NULL;
    }
    const char *ep = cfg->kingdom_endpoint ? cfg->kingdom_endpoint : "";
    const char *colon = strrchr(ep, ':');
    if (colon == NULL || (size_t)(colon - ep) >= sizeof(self->host) || colon == ep) {
        snprintf(errbuf, errlen, "kingdom.endpoint \"%s\" is not host:port", ep);
        free(self);
        return NULL;
    }
    memcpy(self->host, ep, (size_t)(colon - ep));
    self->port = atoi(colon + 1);
    self->timeout_ms = cfg->kingdom_call_timeout_ms > 0 ? (int)cfg->kingdom_call_timeout_ms : 30000;
    dy_parties_t *parties = dy_parties_load(cfg->parties, errbuf, errlen);
    if (parties == NULL) {
        free(self);
        return NULL;
    }
    dy_tls_conf_t tc = {
        .cert_path = cfg->tls_cert,
        .key_path = cfg->tls_key,
        .trusted_ca_path = cfg->trusted_ca,
        .parties = parties,
        .expected_name = cfg->kingdom_server_name ? cfg->kingdom_server_name : self->host,
    };
    self->ctx = dy_tls_client_ctx(&tc, errbuf, errlen);
    dy_parties_destroy(&parties);
    if (self->ctx == NULL) {
        free(self);
        return NULL;
    }
    return self;
}

void dy_kc_destroy(dy_kc_t **self_p)
{
    if (self_p == NULL || *self_p == NULL)
        return;
    dy_kc_t *self = *self_p;
    dy_rpc_client_destroy(&self->client);
    SSL_CTX_free(self->ctx);
    free(self);
    *self_p = NULL;
}

dy_rpc_client_t *dy_kc_client(dy_kc_t *self, dy_rpc_status_t *st)
{
    if (self->client != NULL)
        return self->client;
    dy_rpc_client_conf_t cc = {.ctx = self->ctx, .host = self->host, .port = self->port};
    char err[256] = "";
    self->client = dy_rpc_client_new(&cc, err, sizeof(err));
    if (self->client == NULL) {
        st->code = DY_WIRE_STATUS_UNAVAILABLE;
        st->reason = DY_WIRE_REASON_NONE;
        snprintf(st->message, sizeof(st->message), "connect to the Kingdom: %s", err);
    }
    return self->client;
}

void dy_kc_drop(dy_kc_t *self)
{
    dy_rpc_client_destroy(&self->client);
}

int dy_kc_unary(dy_kc_t *self, const char *method, const ProtobufCMessage *req,
                const ProtobufCMessageDescriptor *resp_desc, ProtobufCMessage **ret_resp,
                dy_rpc_status_t *st)
{
    memset(st, 0, sizeof(*st));
    dy_rpc_client_t *c = dy_kc_client(self, st);
    if (c == NULL)
        return -1;
    int rc = dy_rpc_unary(c, method, req, resp_desc, ret_resp, self->timeout_ms, st);
    if (rc < 0 && (st->code == DY_WIRE_STATUS_UNAVAILABLE
                   || st->code == DY_WIRE_STATUS_DEADLINE_EXCEEDED
                   || st->code == DY_WIRE_STATUS_CANCELLED))
        dy_kc_drop(self);
    return rc;
}
