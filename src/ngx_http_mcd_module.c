
/*
 * Copyright (C) ngx_mcd authors
 *
 * The http side of decryption.  "mcd_intercept on" in a "listen ... ssl"
 * server: nginx's own TLS termination, with a certificate callback that
 * presents a leaf minted by the gateway CA for the name the stream front
 * door authorized (the decision travels with the connection, see
 * mcd_decrypt_pass).  The server needs no ssl_certificate of its own.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_mcd.h"
#include "ngx_mcd_upstream.h"


typedef struct {
    ngx_flag_t                  intercept;
} ngx_http_mcd_srv_conf_t;


typedef struct {
    ngx_str_t                   reason;
} ngx_http_mcd_ctx_t;


ngx_int_t ngx_http_mcd_intercepts(ngx_listening_t *ls);

static int ngx_http_mcd_certificate(ngx_ssl_conn_t *ssl_conn, void *arg);
static ngx_int_t ngx_http_mcd_access_handler(ngx_http_request_t *r);
static ngx_int_t ngx_http_mcd_variable_reason(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_http_mcd_init(ngx_conf_t *cf);
static ngx_int_t ngx_http_mcd_variable_str(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_http_mcd_variable_decrypted(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_http_mcd_add_variables(ngx_conf_t *cf);
static void *ngx_http_mcd_create_srv_conf(ngx_conf_t *cf);
static char *ngx_http_mcd_merge_srv_conf(ngx_conf_t *cf, void *parent,
    void *child);
static char *ngx_http_mcd_intercept(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);


static ngx_command_t  ngx_http_mcd_commands[] = {

    { ngx_string("mcd_intercept"),
      NGX_HTTP_SRV_CONF|NGX_CONF_FLAG,
      ngx_http_mcd_intercept,
      NGX_HTTP_SRV_CONF_OFFSET,
      offsetof(ngx_http_mcd_srv_conf_t, intercept),
      NULL },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_mcd_module_ctx = {
    ngx_http_mcd_add_variables,            /* preconfiguration */
    ngx_http_mcd_init,                     /* postconfiguration */

    NULL,                                  /* create main configuration */
    NULL,                                  /* init main configuration */

    ngx_http_mcd_create_srv_conf,          /* create server configuration */
    ngx_http_mcd_merge_srv_conf,           /* merge server configuration */

    NULL,                                  /* create location configuration */
    NULL                                   /* merge location configuration */
};


ngx_module_t  ngx_http_mcd_module = {
    NGX_MODULE_V1,
    &ngx_http_mcd_module_ctx,              /* module context */
    ngx_http_mcd_commands,                 /* module directives */
    NGX_HTTP_MODULE,                       /* module type */
    NULL,                                  /* init master */
    NULL,                                  /* init module */
    NULL,                                  /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    NULL,                                  /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};


static ngx_http_variable_t  ngx_http_mcd_vars[] = {

    { ngx_string("mcd_fqdn"), NULL, ngx_http_mcd_variable_str,
      offsetof(ngx_mcd_handoff_t, fqdn), 0, 0 },

    { ngx_string("mcd_sni"), NULL, ngx_http_mcd_variable_str,
      offsetof(ngx_mcd_handoff_t, sni), 0, 0 },

    { ngx_string("mcd_rule"), NULL, ngx_http_mcd_variable_str,
      offsetof(ngx_mcd_handoff_t, rule), 0, 0 },

    { ngx_string("mcd_profile"), NULL, ngx_http_mcd_variable_str,
      offsetof(ngx_mcd_handoff_t, profile), 0, 0 },

    { ngx_string("mcd_upstream"), NULL, ngx_http_mcd_variable_str,
      offsetof(ngx_mcd_handoff_t, upstream), 0, 0 },

    { ngx_string("mcd_upstream_addr"), NULL, ngx_http_mcd_variable_str,
      offsetof(ngx_mcd_handoff_t, upstream_addr), 0, 0 },

    { ngx_string("mcd_decrypted"), NULL, ngx_http_mcd_variable_decrypted,
      0, 0, 0 },

    { ngx_string("mcd_reason"), NULL, ngx_http_mcd_variable_reason,
      0, NGX_HTTP_VAR_NOCACHEABLE, 0 },

      ngx_http_null_variable
};


/*
 * the certificate: only for a connection the stream front door handed over
 * after a "decrypt" verdict, only for the name it authorized; a client
 * that names another one in its SNI gets a failed handshake
 */

static int
ngx_http_mcd_certificate(ngx_ssl_conn_t *ssl_conn, void *arg)
{
    size_t               len;
    X509                *x509;
    EVP_PKEY            *key;
    ngx_uint_t           minted;
    const char          *err, *sni;
    ngx_connection_t    *c;
    ngx_mcd_handoff_t   *h;
    STACK_OF(X509)      *chain;

    c = ngx_ssl_get_connection(ssl_conn);

    h = ngx_mcd_handoff_get(c);

    if (h == NULL || h->action != MCD_ACTION_DECRYPT || h->fqdn.len == 0) {
        ngx_log_error(NGX_LOG_WARN, c->log, 0,
                      "mcd: refused a TLS handshake that the front door did "
                      "not hand over for decryption");
        return 0;
    }

    sni = SSL_get_servername(ssl_conn, TLSEXT_NAMETYPE_host_name);

    if (sni != NULL) {
        len = ngx_strlen(sni);

        if (len && sni[len - 1] == '.') {
            len--;
        }

        if (len != h->fqdn.len
            || ngx_strncasecmp((u_char *) sni, h->fqdn.data, len) != 0)
        {
            ngx_log_error(NGX_LOG_WARN, c->log, 0,
                          "mcd: refused \"%V\": the TLS server name differs "
                          "from the authorized one, reason \"sni_mismatch\"",
                          &h->fqdn);
            return 0;
        }
    }

    err = NULL;
    minted = 0;

    x509 = ngx_mcd_certificate(&h->fqdn, &key, &chain, &minted, &err);

    if (x509 == NULL) {
        ngx_log_error(NGX_LOG_ERR, c->log, 0,
                      "mcd: no certificate for \"%V\": %s", &h->fqdn,
                      err ? err : "unknown error");
        return 0;
    }

    if (SSL_use_cert_and_key(ssl_conn, x509, key, chain, 1) != 1) {
        X509_free(x509);
        ngx_ssl_error(NGX_LOG_ERR, c->log, 0, "SSL_use_cert_and_key() failed");
        return 0;
    }

    X509_free(x509);

    ngx_log_error(NGX_LOG_INFO, c->log, 0,
                  "mcd: certificate for \"%V\" %s", &h->fqdn,
                  minted ? "minted" : "from the cache");

    return 1;
}


/*
 * a decrypted request must be for the name that was authorized: a Host
 * (or :authority) naming anything else is answered 421, the way a server
 * answers a request for a name its certificate was not presented for
 */

static ngx_int_t
ngx_http_mcd_access_handler(ngx_http_request_t *r)
{
    size_t                    len;
    u_char                   *host;
    ngx_mcd_handoff_t        *h;
    ngx_http_mcd_ctx_t       *ctx;
    ngx_http_mcd_srv_conf_t  *hmcf;

    hmcf = ngx_http_get_module_srv_conf(r, ngx_http_mcd_module);

    if (!hmcf->intercept || r != r->main) {
        return NGX_DECLINED;
    }

    h = ngx_mcd_handoff_get(r->connection);

    if (h == NULL) {
        return NGX_HTTP_FORBIDDEN;
    }

    host = r->headers_in.server.data;
    len = r->headers_in.server.len;

    if (len && host[len - 1] == '.') {
        len--;
    }

    if (len == h->fqdn.len && ngx_strncasecmp(host, h->fqdn.data, len) == 0)
    {
        return NGX_DECLINED;
    }

    ctx = ngx_pcalloc(r->pool, sizeof(ngx_http_mcd_ctx_t));
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_str_set(&ctx->reason, "host_mismatch");
    ngx_http_set_ctx(r, ctx, ngx_http_mcd_module);

    /* Host was parsed by nginx: a valid host name, nothing to escape */

    ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                  "mcd: refused a request for \"%V\" on a connection "
                  "authorized for \"%V\", reason \"host_mismatch\"",
                  &r->headers_in.server, &h->fqdn);

    return NGX_HTTP_MISDIRECTED_REQUEST;
}


/* the listening socket's servers intercept (for mcd_decrypt_pass) */

ngx_int_t
ngx_http_mcd_intercepts(ngx_listening_t *ls)
{
    ngx_uint_t                 i;
    ngx_http_port_t           *port;
    ngx_http_in_addr_t        *addr;
#if (NGX_HAVE_INET6)
    ngx_http_in6_addr_t       *addr6;
#endif
    ngx_http_addr_conf_t      *conf;
    ngx_http_mcd_srv_conf_t   *hmcf;

    port = ls->servers;

    if (port == NULL) {
        return NGX_DECLINED;
    }

    for (i = 0; i < port->naddrs; i++) {

        switch (ls->sockaddr->sa_family) {

#if (NGX_HAVE_INET6)
        case AF_INET6:
            addr6 = port->addrs;
            conf = &addr6[i].conf;
            break;
#endif

        default: /* AF_INET */
            addr = port->addrs;
            conf = &addr[i].conf;
            break;
        }

        if (!conf->ssl) {
            return NGX_DECLINED;
        }

        hmcf = conf->default_server->ctx
                   ->srv_conf[ngx_http_mcd_module.ctx_index];

        if (!hmcf->intercept) {
            return NGX_DECLINED;
        }
    }

    return NGX_OK;
}


/* variables */


static ngx_int_t
ngx_http_mcd_variable_str(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    ngx_str_t          *str;
    ngx_mcd_handoff_t  *h;

    h = ngx_mcd_handoff_get(r->connection);

    if (h == NULL) {
        v->not_found = 1;
        return NGX_OK;
    }

    str = (ngx_str_t *) ((char *) h + data);

    if (str->len == 0) {
        v->not_found = 1;
        return NGX_OK;
    }

    v->len = str->len;
    v->valid = 1;
    v->no_cacheable = 0;
    v->not_found = 0;
    v->data = str->data;

    return NGX_OK;
}


static ngx_int_t
ngx_http_mcd_variable_decrypted(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    ngx_mcd_handoff_t  *h;

    h = ngx_mcd_handoff_get(r->connection);

    v->data = (u_char *) ((h && r->connection->ssl) ? "1" : "0");
    v->len = 1;
    v->valid = 1;
    v->no_cacheable = 0;
    v->not_found = 0;

    return NGX_OK;
}


static ngx_int_t
ngx_http_mcd_variable_reason(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    ngx_http_mcd_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_mcd_module);

    if (ctx == NULL || ctx->reason.len == 0) {
        v->not_found = 1;
        return NGX_OK;
    }

    v->data = ctx->reason.data;
    v->len = ctx->reason.len;
    v->valid = 1;
    v->no_cacheable = 0;
    v->not_found = 0;

    return NGX_OK;
}


static ngx_int_t
ngx_http_mcd_add_variables(ngx_conf_t *cf)
{
    ngx_http_variable_t  *var, *v;

    for (v = ngx_http_mcd_vars; v->name.len; v++) {
        var = ngx_http_add_variable(cf, &v->name, v->flags);
        if (var == NULL) {
            return NGX_ERROR;
        }

        var->get_handler = v->get_handler;
        var->data = v->data;
    }

    return NGX_OK;
}


/* configuration */


static ngx_int_t
ngx_http_mcd_init(ngx_conf_t *cf)
{
    ngx_http_handler_pt        *h;
    ngx_http_core_main_conf_t  *cmcf;

    cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_core_module);

    h = ngx_array_push(&cmcf->phases[NGX_HTTP_ACCESS_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = ngx_http_mcd_access_handler;

    return NGX_OK;
}


static void *
ngx_http_mcd_create_srv_conf(ngx_conf_t *cf)
{
    ngx_http_mcd_srv_conf_t  *conf;

    conf = ngx_pcalloc(cf->pool, sizeof(ngx_http_mcd_srv_conf_t));
    if (conf == NULL) {
        return NULL;
    }

    conf->intercept = NGX_CONF_UNSET;

    return conf;
}


/*
 * an interception server has no certificate of its own: "mcd_intercept on"
 * set ssl_reject_handshake, which makes nginx's ssl module create the
 * server's SSL_CTX without one (its merge ran before this one); here the
 * handshake is allowed again, the ssl module's check for a certificate is
 * satisfied with an empty list, and the certificate callback is installed
 */

static char *
ngx_http_mcd_merge_srv_conf(ngx_conf_t *cf, void *parent, void *child)
{
    ngx_http_mcd_srv_conf_t *prev = parent;
    ngx_http_mcd_srv_conf_t *conf = child;

    ngx_http_ssl_srv_conf_t  *sscf;

    ngx_conf_merge_value(conf->intercept, prev->intercept, 0);

    if (!conf->intercept) {
        return NGX_CONF_OK;
    }

    sscf = ngx_http_conf_get_module_srv_conf(cf, ngx_http_ssl_module);

    if (sscf->ssl.ctx == NULL) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "\"mcd_intercept\" needs an SSL context");
        return NGX_CONF_ERROR;
    }

    sscf->reject_handshake = 0;

    if (sscf->certificates == NULL) {
        sscf->certificates = ngx_array_create(cf->pool, 1, sizeof(ngx_str_t));
        if (sscf->certificates == NULL) {
            return NGX_CONF_ERROR;
        }
    }

    SSL_CTX_set_cert_cb(sscf->ssl.ctx, ngx_http_mcd_certificate, NULL);

    return NGX_CONF_OK;
}


static char *
ngx_http_mcd_intercept(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_mcd_srv_conf_t  *hmcf = conf;

    char                     *rv;
    ngx_http_ssl_srv_conf_t  *sscf;

    rv = ngx_conf_set_flag_slot(cf, cmd, conf);

    if (rv != NGX_CONF_OK || !hmcf->intercept) {
        return rv;
    }

    sscf = ngx_http_conf_get_module_srv_conf(cf, ngx_http_ssl_module);

    if (sscf->reject_handshake == NGX_CONF_UNSET) {
        sscf->reject_handshake = 1;
    }

    return NGX_CONF_OK;
}
