
/*
 * Copyright (C) ngx_mcd authors
 *
 * The http side, two jobs:
 *
 * - "mcd_intercept on" in a "listen ... ssl" server: decryption.  nginx's
 *   own TLS termination, with a certificate callback that presents a leaf
 *   minted by the gateway CA for the name the stream front door authorized
 *   (the decision travels with the connection, see mcd_decrypt_pass); the
 *   server needs no ssl_certificate of its own.  Every request must be for
 *   that name (421 otherwise), the profile is applied again, and the
 *   verification of the upstream's certificate by proxy_pass is watched so
 *   that its refusal carries the reason "upstream_cert".
 *
 * - "mcd_fqdn_filter NAME" in any server: the policy on the request's host,
 *   for plain HTTP forward proxying (requests handed over by mcd_http_pass),
 *   transparent port-80 traffic or a reverse proxy.  An allowed name is
 *   resolved (mcd_hosts_file, then the resolver), every address is judged
 *   by the destination guard, and $mcd_upstream_addr names the one to
 *   connect to: "proxy_pass http://$mcd_upstream_addr;" looks nothing up.
 *
 * Both run in the post-read phase: once per request, before any rewrite or
 * access module, and so not subject to "satisfy any".
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_mcd.h"
#include "ngx_mcd_upstream.h"
#include "ngx_mcd_metrics.h"


#define NGX_HTTP_MCD_PROXY_AUTH_REQUIRED  407


typedef struct {
    ngx_flag_t                  intercept;
    ngx_str_t                   profile_name;
    ngx_mcd_profile_t          *profile;           /* mcd_fqdn_filter */
    ngx_http_complex_value_t   *profile_value;     /* "$variable" */
    u_char                     *profile_file;      /* of "$variable" */
    ngx_uint_t                  profile_line;
    ngx_mcd_destination_t      *destination;
    ngx_array_t                *ports;             /* in_port_t */
} ngx_http_mcd_srv_conf_t;


/* a location's conf: only its merge is needed, to watch proxy_ssl_verify */

typedef struct {
    ngx_uint_t                  watched;
} ngx_http_mcd_loc_conf_t;


typedef struct {
    ngx_mcd_handoff_t           d;                 /* this request's */
    ngx_mcd_reason_e            reason;
    ngx_mcd_upstream_t          step;              /* resolve and guard */
    ngx_int_t                   rc;                /* the phase's answer */
    ngx_int_t                   step_rc;           /* the step's outcome */
    ngx_uint_t                  name_type;         /* MCD_NAME_* */
    unsigned                    decided:1;
    unsigned                    counted:1;         /* in mcd_decisions */
    unsigned                    outcome:1;         /* proxy_pass failure */
    unsigned                    waiting:1;
    unsigned                    in_handler:1;
    unsigned                    done:1;
    ngx_http_request_t         *request;           /* for the cleanup */
} ngx_http_mcd_ctx_t;


ngx_int_t ngx_http_mcd_intercepts(ngx_listening_t *ls);
ngx_int_t ngx_http_mcd_forwards(ngx_listening_t *ls);

static int ngx_http_mcd_certificate(ngx_ssl_conn_t *ssl_conn, void *arg);
static int ngx_http_mcd_verify(int ok, X509_STORE_CTX *store);
static ngx_int_t ngx_http_mcd_handler(ngx_http_request_t *r);
static ngx_int_t ngx_http_mcd_intercepted(ngx_http_request_t *r,
    ngx_http_mcd_srv_conf_t *hmcf, ngx_mcd_handoff_t *h);
static ngx_int_t ngx_http_mcd_filter(ngx_http_request_t *r,
    ngx_http_mcd_srv_conf_t *hmcf, ngx_mcd_handoff_t *h);
static ngx_int_t ngx_http_mcd_proxy_auth(ngx_http_request_t *r,
    ngx_http_mcd_ctx_t *ctx, ngx_mcd_handoff_t *h);
static ngx_int_t ngx_http_mcd_listener_is(ngx_listening_t *ls,
    ngx_uint_t intercept);
static ngx_int_t ngx_http_mcd_resolve(ngx_http_request_t *r,
    ngx_http_mcd_ctx_t *ctx, ngx_http_mcd_srv_conf_t *hmcf,
    ngx_addr_t *fixed);
static void ngx_http_mcd_resolved(ngx_mcd_upstream_t *u, ngx_int_t rc);
static ngx_int_t ngx_http_mcd_finish(ngx_http_request_t *r,
    ngx_http_mcd_ctx_t *ctx);
static void ngx_http_mcd_cleanup(void *data);
static in_port_t ngx_http_mcd_port(ngx_http_request_t *r);
static ngx_http_mcd_ctx_t *ngx_http_mcd_create_ctx(ngx_http_request_t *r,
    ngx_mcd_handoff_t *h);
static ngx_http_mcd_ctx_t *ngx_http_mcd_get_ctx(ngx_http_request_t *r);
static void ngx_http_mcd_ctx_cleanup(void *data);
static ngx_int_t ngx_http_mcd_refuse(ngx_http_request_t *r,
    ngx_http_mcd_ctx_t *ctx, ngx_uint_t status, ngx_mcd_reason_e reason,
    const char *detail);
static ngx_int_t ngx_http_mcd_answer(ngx_http_request_t *r,
    ngx_http_mcd_ctx_t *ctx, ngx_uint_t status, const char *detail);

static ngx_mcd_handoff_t *ngx_http_mcd_decision(ngx_http_request_t *r);
static ngx_int_t ngx_http_mcd_variable_str(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_http_mcd_variable_action(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_http_mcd_variable_ech(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_http_mcd_variable_sni(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_http_mcd_variable_mode(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_http_mcd_variable_port(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_http_mcd_variable_decrypted(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_http_mcd_variable_reason(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);

static ngx_int_t ngx_http_mcd_preconfiguration(ngx_conf_t *cf);
static ngx_int_t ngx_http_mcd_init(ngx_conf_t *cf);
static ngx_int_t ngx_http_mcd_init_module(ngx_cycle_t *cycle);
static void *ngx_http_mcd_create_srv_conf(ngx_conf_t *cf);
static char *ngx_http_mcd_merge_srv_conf(ngx_conf_t *cf, void *parent,
    void *child);
static void *ngx_http_mcd_create_loc_conf(ngx_conf_t *cf);
static char *ngx_http_mcd_merge_loc_conf(ngx_conf_t *cf, void *parent,
    void *child);
static char *ngx_http_mcd_intercept(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_mcd_fqdn_filter(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_mcd_destination(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_mcd_http_ports(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_mcd_status(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static ngx_int_t ngx_http_mcd_status_handler(ngx_http_request_t *r);
static void ngx_http_mcd_count(ngx_http_mcd_ctx_t *ctx);
static void ngx_http_mcd_upstream_outcome(ngx_http_request_t *r,
    ngx_http_mcd_ctx_t *ctx);


static ngx_command_t  ngx_http_mcd_commands[] = {

    { ngx_string("mcd_intercept"),
      NGX_HTTP_SRV_CONF|NGX_CONF_FLAG,
      ngx_http_mcd_intercept,
      NGX_HTTP_SRV_CONF_OFFSET,
      offsetof(ngx_http_mcd_srv_conf_t, intercept),
      NULL },

    { ngx_string("mcd_fqdn_filter"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_CONF_TAKE1,
      ngx_http_mcd_fqdn_filter,
      NGX_HTTP_SRV_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("mcd_destination"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_CONF_2MORE,
      ngx_http_mcd_destination,
      NGX_HTTP_SRV_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("mcd_status"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_mcd_status,
      0,
      0,
      NULL },

    { ngx_string("mcd_http_ports"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_CONF_1MORE,
      ngx_http_mcd_http_ports,
      NGX_HTTP_SRV_CONF_OFFSET,
      0,
      NULL },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_mcd_module_ctx = {
    ngx_http_mcd_preconfiguration,         /* preconfiguration */
    ngx_http_mcd_init,                     /* postconfiguration */

    NULL,                                  /* create main configuration */
    NULL,                                  /* init main configuration */

    ngx_http_mcd_create_srv_conf,          /* create server configuration */
    ngx_http_mcd_merge_srv_conf,           /* merge server configuration */

    ngx_http_mcd_create_loc_conf,          /* create location configuration */
    ngx_http_mcd_merge_loc_conf            /* merge location configuration */
};


ngx_module_t  ngx_http_mcd_module = {
    NGX_MODULE_V1,
    &ngx_http_mcd_module_ctx,              /* module context */
    ngx_http_mcd_commands,                 /* module directives */
    NGX_HTTP_MODULE,                       /* module type */
    NULL,                                  /* init master */
    ngx_http_mcd_init_module,              /* init module */
    NULL,                                  /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    NULL,                                  /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};


static ngx_http_variable_t  ngx_http_mcd_vars[] = {

    { ngx_string("mcd_fqdn"), NULL, ngx_http_mcd_variable_str,
      offsetof(ngx_mcd_handoff_t, fqdn), NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("mcd_sni"), NULL, ngx_http_mcd_variable_sni,
      0, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("mcd_rule"), NULL, ngx_http_mcd_variable_str,
      offsetof(ngx_mcd_handoff_t, rule), NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("mcd_profile"), NULL, ngx_http_mcd_variable_str,
      offsetof(ngx_mcd_handoff_t, profile), NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("mcd_upstream"), NULL, ngx_http_mcd_variable_str,
      offsetof(ngx_mcd_handoff_t, upstream), NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("mcd_upstream_addr"), NULL, ngx_http_mcd_variable_str,
      offsetof(ngx_mcd_handoff_t, upstream_addr), NGX_HTTP_VAR_NOCACHEABLE,
      0 },

    { ngx_string("mcd_alpn"), NULL, ngx_http_mcd_variable_str,
      offsetof(ngx_mcd_handoff_t, alpn), NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("mcd_original_dst"), NULL, ngx_http_mcd_variable_str,
      offsetof(ngx_mcd_handoff_t, original_dst), NGX_HTTP_VAR_NOCACHEABLE,
      0 },

    { ngx_string("mcd_ech"), NULL, ngx_http_mcd_variable_ech,
      0, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("mcd_user"), NULL, ngx_http_mcd_variable_str,
      offsetof(ngx_mcd_handoff_t, user), NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("mcd_action"), NULL, ngx_http_mcd_variable_action,
      0, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("mcd_mode"), NULL, ngx_http_mcd_variable_mode,
      0, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("mcd_port"), NULL, ngx_http_mcd_variable_port,
      0, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("mcd_decrypted"), NULL, ngx_http_mcd_variable_decrypted,
      0, 0, 0 },

    { ngx_string("mcd_reason"), NULL, ngx_http_mcd_variable_reason,
      0, NGX_HTTP_VAR_NOCACHEABLE, 0 },

      ngx_http_null_variable
};


/* the proxy module's index, for its SSL context (see the loc conf merge) */

static ngx_int_t  ngx_http_mcd_proxy_index = -1;


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
 * proxy_pass verifying an upstream certificate for a decrypted request
 * (installed on the proxy module's SSL context): nginx's own callback only
 * logs at debug level and lets the handshake finish, then refuses the
 * result; this one does the same and records why, for $mcd_reason, with
 * the name check nginx does after the handshake
 */

static int
ngx_http_mcd_verify(int ok, X509_STORE_CTX *store)
{
    int                  err, depth;
    X509                *cert;
    ngx_str_t           *name;
    ngx_ssl_conn_t      *ssl_conn;
    ngx_connection_t    *c;
    ngx_http_request_t  *r;
    ngx_http_mcd_ctx_t  *ctx;

    ssl_conn = X509_STORE_CTX_get_ex_data(store,
                                          SSL_get_ex_data_X509_STORE_CTX_idx());
    if (ssl_conn == NULL) {
        return 1;
    }

    c = ngx_ssl_get_connection(ssl_conn);

    if (c == NULL || c->data == NULL) {
        return 1;
    }

    /* an upstream connection's data is its request */

    r = c->data;
    ctx = ngx_http_mcd_get_ctx(r);

    if (ctx == NULL || ctx->reason == NGX_MCD_REASON_UPSTREAM_CERT) {
        return 1;
    }

    depth = X509_STORE_CTX_get_error_depth(store);

    if (!ok) {
        err = X509_STORE_CTX_get_error(store);

        ctx->reason = NGX_MCD_REASON_UPSTREAM_CERT;
        ngx_mcd_metrics_outcome(NGX_MCD_REASON_UPSTREAM_CERT);

        ngx_log_error(NGX_LOG_WARN, c->log, 0,
                      "mcd: the certificate of \"%V\" at %V does not verify "
                      "(depth %d: %d:%s), reason \"upstream_cert\"",
                      &ctx->d.fqdn, &ctx->d.upstream_addr, depth, err,
                      X509_verify_cert_error_string(err));
        return 1;
    }

    if (depth != 0 || r->upstream == NULL) {
        return 1;
    }

    name = &r->upstream->ssl_name;
    cert = X509_STORE_CTX_get_current_cert(store);

    if (cert != NULL
        && (name->len == 0
            || X509_check_host(cert, (char *) name->data, name->len, 0, NULL)
               != 1))
    {
        ctx->reason = NGX_MCD_REASON_UPSTREAM_CERT;
        ngx_mcd_metrics_outcome(NGX_MCD_REASON_UPSTREAM_CERT);

        ngx_log_error(NGX_LOG_WARN, c->log, 0,
                      "mcd: the certificate of \"%V\" at %V is not for "
                      "\"%V\", reason \"upstream_cert\"",
                      &ctx->d.fqdn, &ctx->d.upstream_addr, name);
    }

    return 1;
}


/* the post-read phase */

static ngx_int_t
ngx_http_mcd_handler(ngx_http_request_t *r)
{
    ngx_mcd_handoff_t        *h;
    ngx_http_mcd_ctx_t       *ctx;
    ngx_http_mcd_srv_conf_t  *hmcf;

    if (r != r->main) {
        return NGX_DECLINED;
    }

    ctx = ngx_http_mcd_get_ctx(r);

    if (ctx != NULL) {
        /* phases run again: after the resolution, or on a write event */
        return ctx->waiting ? NGX_DONE : ctx->rc;
    }

    hmcf = ngx_http_get_module_srv_conf(r, ngx_http_mcd_module);
    h = ngx_mcd_handoff_get(r->connection);

    if (hmcf->intercept) {
        return ngx_http_mcd_intercepted(r, hmcf, h);
    }

    if (hmcf->profile != NULL || hmcf->profile_value != NULL) {
        return ngx_http_mcd_filter(r, hmcf, h);
    }

    if (h != NULL && h->mode == NGX_MCD_MODE_HTTP) {

        /* mcd_http_pass reached a server (by name) without a policy */

        ctx = ngx_http_mcd_create_ctx(r, h);
        if (ctx == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        return ngx_http_mcd_refuse(r, ctx, NGX_HTTP_FORBIDDEN,
                                   NGX_MCD_REASON_NO_PROFILE,
                                   "this server has no mcd_fqdn_filter");
    }

    return NGX_DECLINED;
}


/*
 * a decrypted request must be for the name that was authorized: a Host
 * (or :authority, or the host of an absolute URI) naming anything else is
 * answered 421, the way a server answers a request for a name its
 * certificate was not presented for; then the profile that decided at the
 * front door decides again, with the server's own mcd_fqdn_filter and
 * mcd_destination when it has them
 */

static ngx_int_t
ngx_http_mcd_intercepted(ngx_http_request_t *r, ngx_http_mcd_srv_conf_t *hmcf,
    ngx_mcd_handoff_t *h)
{
    size_t               len;
    u_char              *host;
    ngx_int_t            rc;
    ngx_addr_t           addr;
    ngx_http_mcd_ctx_t  *ctx;
    ngx_mcd_decision_t   d;

    ctx = ngx_http_mcd_create_ctx(r, h);
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (h == NULL || h->action != MCD_ACTION_DECRYPT) {
        return ngx_http_mcd_refuse(r, ctx, NGX_HTTP_FORBIDDEN,
                                   NGX_MCD_REASON_POLICY,
                                   "not handed over for decryption");
    }

    host = r->headers_in.server.data;
    len = r->headers_in.server.len;

    if (len && host[len - 1] == '.') {
        len--;
    }

    if (len != h->fqdn.len || ngx_strncasecmp(host, h->fqdn.data, len) != 0)
    {
        ctx->reason = NGX_MCD_REASON_HOST_MISMATCH;

        /* Host was parsed by nginx: a valid host name, nothing to escape */

        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "mcd: refused a request for \"%V\" on a connection "
                      "authorized for \"%V\", reason \"host_mismatch\"",
                      &r->headers_in.server, &h->fqdn);

        return ngx_http_mcd_answer(r, ctx, NGX_HTTP_MISDIRECTED_REQUEST,
                                   "the request is not for the name this "
                                   "connection was authorized for");
    }

    if (h->profile_conf != NULL) {
        rc = ngx_mcd_decide(r->pool, h->profile_conf, h->fqdn.data,
                            h->fqdn.len, &d);

        if (rc == NGX_ERROR) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        if (rc != NGX_OK || d.action != MCD_ACTION_DECRYPT) {
            return ngx_http_mcd_refuse(r, ctx, NGX_HTTP_FORBIDDEN,
                                       NGX_MCD_REASON_POLICY,
                                       "the profile does not decrypt it");
        }
    }

    if (hmcf->profile != NULL) {
        rc = ngx_mcd_decide(r->pool, hmcf->profile, h->fqdn.data,
                            h->fqdn.len, &d);

        if (rc == NGX_ERROR) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        if (rc != NGX_OK || d.action == MCD_ACTION_DENY) {
            ctx->d.rule = d.rule;
            ctx->d.profile = hmcf->profile->name;

            return ngx_http_mcd_refuse(r, ctx, NGX_HTTP_FORBIDDEN,
                                       NGX_MCD_REASON_POLICY,
                                       "denied by policy");
        }
    }

    if (hmcf->destination == NULL) {
        ctx->rc = NGX_DECLINED;
        return NGX_DECLINED;
    }

    /* the address the front door resolved, judged by this server's rules */

    if (ngx_parse_addr_port(r->pool, &addr, h->upstream_addr.data,
                            h->upstream_addr.len)
        != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_http_mcd_resolve(r, ctx, hmcf, &addr);
}


/* mcd_fqdn_filter: the policy on the request's host */

static ngx_int_t
ngx_http_mcd_filter(ngx_http_request_t *r, ngx_http_mcd_srv_conf_t *hmcf,
    ngx_mcd_handoff_t *h)
{
    u_char              *p;
    in_port_t            port, *ports;
    ngx_int_t            rc;
    ngx_str_t           *host;
    ngx_uint_t           i;
    ngx_str_t            name;
    ngx_http_mcd_ctx_t  *ctx;
    ngx_mcd_decision_t   d;
    ngx_mcd_profile_t   *profile;

    ctx = ngx_http_mcd_create_ctx(r, NULL);
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx->d.mode = NGX_MCD_MODE_HTTP;

    if (h != NULL) {
        ctx->d.user = h->user;
    }

    /* proxy credentials: checked when the front door asks for them, and
       never forwarded */

    rc = ngx_http_mcd_proxy_auth(r, ctx, h);

    if (rc != NGX_DECLINED) {
        return rc;
    }

    /* the profile: the server's, or the one "$variable" names */

    profile = hmcf->profile;

    if (hmcf->profile_value != NULL) {
        if (ngx_http_complex_value(r, hmcf->profile_value, &name) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        profile = ngx_mcd_profile_find((ngx_cycle_t *) ngx_cycle,
                                       name.data, name.len);

        if (profile == NULL) {
            if (ngx_mcd_escape_str(r->pool, &name, &ctx->d.profile)
                != NGX_OK)
            {
                return NGX_HTTP_INTERNAL_SERVER_ERROR;
            }

            return ngx_http_mcd_refuse(r, ctx, NGX_HTTP_FORBIDDEN,
                                       NGX_MCD_REASON_NO_PROFILE,
                                       "no profile for this client");
        }
    }

    ctx->d.profile = profile->name;
    ctx->d.profile_conf = profile;

    host = &r->headers_in.server;

    if (host->len == 0) {
        return ngx_http_mcd_refuse(r, ctx, NGX_HTTP_BAD_REQUEST,
                                   NGX_MCD_REASON_BAD_REQUEST,
                                   "no host in the request");
    }

    if (r->schema_end
        && (r->schema_end - r->schema_start != 4
            || ngx_strncasecmp(r->schema_start, (u_char *) "http", 4) != 0))
    {
        return ngx_http_mcd_refuse(r, ctx, NGX_HTTP_BAD_REQUEST,
                                   NGX_MCD_REASON_BAD_REQUEST,
                                   "only http:// requests are forwarded");
    }

    port = ngx_http_mcd_port(r);

    if (port == 0) {
        return ngx_http_mcd_refuse(r, ctx, NGX_HTTP_BAD_REQUEST,
                                   NGX_MCD_REASON_BAD_REQUEST,
                                   "invalid port");
    }

    ctx->d.port = port;

    rc = ngx_mcd_decide(r->pool, profile, host->data, host->len, &d);

    if (rc == NGX_ERROR) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx->decided = 1;
    ctx->name_type = d.type;
    ctx->d.action = d.action;
    ctx->d.fqdn = d.fqdn;
    ctx->d.rule = d.rule;

    if (rc == NGX_DECLINED) {
        return ngx_http_mcd_refuse(r, ctx, NGX_HTTP_BAD_REQUEST,
                                   NGX_MCD_REASON_BAD_NAME,
                                   "not a valid host name");
    }

    p = ngx_pnalloc(r->pool, d.fqdn.len + sizeof(":65535") - 1);
    if (p == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx->d.upstream.data = p;
    ctx->d.upstream.len = ngx_sprintf(p, "%V:%d", &d.fqdn, (int) port) - p;

    if (d.action == MCD_ACTION_DENY) {
        return ngx_http_mcd_refuse(r, ctx, NGX_HTTP_FORBIDDEN,
                                   NGX_MCD_REASON_POLICY, "denied by policy");
    }

    ports = hmcf->ports->elts;

    for (i = 0; i < hmcf->ports->nelts; i++) {
        if (ports[i] == port) {
            break;
        }
    }

    if (i == hmcf->ports->nelts) {
        ctx->d.action = MCD_ACTION_DENY;

        return ngx_http_mcd_refuse(r, ctx, NGX_HTTP_FORBIDDEN,
                                   NGX_MCD_REASON_PORT,
                                   "port not allowed by mcd_http_ports");
    }

    return ngx_http_mcd_resolve(r, ctx, hmcf, NULL);
}


/*
 * Proxy-Authorization of a forwarded request: with the front door's
 * mcd_proxy_auth (carried by mcd_http_pass) it must name a user of its
 * file, else 407 with Proxy-Authenticate; either way the header is taken
 * out of the request: it is for the gateway, not for the server.  The
 * element cannot be unlinked from nginx's list (other fields point into
 * it), so it becomes an empty "Keep-Alive", a hop-by-hop header that
 * proxy_pass always replaces with its own
 */

static ngx_int_t
ngx_http_mcd_proxy_auth(ngx_http_request_t *r, ngx_http_mcd_ctx_t *ctx,
    ngx_mcd_handoff_t *h)
{
    u_char            *value;
    size_t             len;
    ngx_int_t          rc;
    ngx_uint_t         i;
    ngx_list_part_t   *part;
    ngx_table_elt_t   *header, *auth;
    const char        *detail;

    static u_char      keep_alive[] = "keep-alive";

    value = NULL;
    len = 0;

    part = &r->headers_in.headers.part;
    header = part->elts;

    for (i = 0; /* void */; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                break;
            }

            part = part->next;
            header = part->elts;
            i = 0;
        }

        if (header[i].key.len != sizeof("Proxy-Authorization") - 1
            || ngx_strncasecmp(header[i].key.data,
                               (u_char *) "Proxy-Authorization",
                               sizeof("Proxy-Authorization") - 1)
               != 0)
        {
            continue;
        }

        if (value == NULL) {
            value = ngx_pnalloc(r->pool, header[i].value.len);
            if (value == NULL) {
                return NGX_HTTP_INTERNAL_SERVER_ERROR;
            }

            len = header[i].value.len;
            ngx_memcpy(value, header[i].value.data, len);
        }

        ngx_explicit_memzero(header[i].value.data, header[i].value.len);

        ngx_str_set(&header[i].key, "Keep-Alive");
        header[i].lowcase_key = keep_alive;
        header[i].hash = ngx_hash_key(keep_alive, sizeof(keep_alive) - 1);
        header[i].value.len = 0;
    }

    if (h == NULL || h->auth_realm.len == 0) {
        return NGX_DECLINED;
    }

    rc = ngx_mcd_basic_auth(r->pool, h->auth_users, value, len, &ctx->d.user,
                            &detail);

    if (value != NULL) {
        ngx_explicit_memzero(value, len);
    }

    if (rc == NGX_OK) {
        return NGX_DECLINED;
    }

    if (rc == NGX_ERROR) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    auth = ngx_list_push(&r->headers_out.headers);
    if (auth == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    auth->hash = 1;
#if (nginx_version >= 1023000)
    auth->next = NULL;
#endif
    ngx_str_set(&auth->key, "Proxy-Authenticate");

    auth->value.len = sizeof("Basic realm=\"\"") - 1 + h->auth_realm.len;
    auth->value.data = ngx_pnalloc(r->pool, auth->value.len);
    if (auth->value.data == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_sprintf(auth->value.data, "Basic realm=\"%V\"", &h->auth_realm);

    return ngx_http_mcd_refuse(r, ctx, NGX_HTTP_MCD_PROXY_AUTH_REQUIRED,
                               NGX_MCD_REASON_AUTH, detail);
}


/*
 * the upstream step without a connect: the name (or the fixed address)
 * resolved and judged by the destination guard; asynchronous when the
 * resolver has to be asked, the client watched meanwhile
 */

static ngx_int_t
ngx_http_mcd_resolve(ngx_http_request_t *r, ngx_http_mcd_ctx_t *ctx,
    ngx_http_mcd_srv_conf_t *hmcf, ngx_addr_t *fixed)
{
    ngx_mcd_upstream_t        *u;
    ngx_http_cleanup_t        *cln;
    ngx_http_core_loc_conf_t  *clcf;

    clcf = ngx_http_get_module_loc_conf(r, ngx_http_core_module);

    cln = ngx_http_cleanup_add(r, 0);
    if (cln == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    cln->handler = ngx_http_mcd_cleanup;
    cln->data = ctx;

    u = &ctx->step;

    u->pool = r->pool;
    u->log = r->connection->log;
    u->data = r;
    u->fqdn = ctx->d.fqdn;
    u->name_type = ctx->name_type;
    u->port = fixed ? ngx_inet_get_port(fixed->sockaddr) : ctx->d.port;
    u->fixed = fixed;
    u->resolver = clcf->resolver;
    u->resolver_timeout = clcf->resolver_timeout;
    u->next_timeout = clcf->resolver_timeout;
    u->destination = hmcf->destination;
    u->handler = ngx_http_mcd_resolved;
    u->resolve_only = 1;

    ctx->waiting = 1;
    ctx->in_handler = 1;

    ngx_mcd_upstream_start(u);

    ctx->in_handler = 0;

    if (ctx->done) {
        return ngx_http_mcd_finish(r, ctx);
    }

    r->read_event_handler = ngx_http_test_reading;

    if (r->connection->read->ready) {
        /* the client's close may have been reported already (edge) */
        ngx_post_event(r->connection->read, &ngx_posted_events);
    }

    return NGX_DONE;
}


static void
ngx_http_mcd_resolved(ngx_mcd_upstream_t *u, ngx_int_t rc)
{
    ngx_connection_t    *c;
    ngx_http_request_t  *r;
    ngx_http_mcd_ctx_t  *ctx;

    r = u->data;
    c = r->connection;
    ctx = ngx_http_mcd_get_ctx(r);

    ctx->waiting = 0;
    ctx->done = 1;
    ctx->step_rc = rc;

    if (ctx->in_handler) {
        /* the phase handler that started the step finishes the job */
        return;
    }

    r->read_event_handler = ngx_http_block_reading;

    if (ngx_http_mcd_finish(r, ctx) == NGX_DECLINED) {
        ngx_http_core_run_phases(r);
    }

    /* a refused request is finalized: neither r nor ctx may be used */

    ngx_http_run_posted_requests(c);
}


/*
 * the step's outcome: NGX_DECLINED, the request goes on to the next
 * phases; NGX_DONE, it was refused and finalized (it may be freed)
 */

static ngx_int_t
ngx_http_mcd_finish(ngx_http_request_t *r, ngx_http_mcd_ctx_t *ctx)
{
    ngx_uint_t           status;
    ngx_mcd_upstream_t  *u;

    u = &ctx->step;

    if (ctx->step_rc == NGX_OK) {
        ctx->d.upstream_addr = u->current->name;
        ctx->rc = NGX_DECLINED;

        ngx_http_mcd_count(ctx);

        return NGX_DECLINED;
    }

    switch (u->reason) {

    case NGX_MCD_REASON_DST_BLOCKED:
    case NGX_MCD_REASON_LOOP:
        ctx->d.action = MCD_ACTION_DENY;
        status = NGX_HTTP_FORBIDDEN;
        break;

    case NGX_MCD_REASON_TIMEOUT:
        status = NGX_HTTP_GATEWAY_TIME_OUT;
        break;

    case NGX_MCD_REASON_DNS:
    case NGX_MCD_REASON_CONNECT:
        status = NGX_HTTP_BAD_GATEWAY;
        break;

    default:
        status = NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_http_mcd_refuse(r, ctx, status, u->reason,
                               (char *) u->detail);
}


/* the request ends while its name is resolved: nothing is called back */

static void
ngx_http_mcd_cleanup(void *data)
{
    ngx_http_mcd_ctx_t  *ctx = data;

    if (ctx->waiting) {
        ctx->waiting = 0;
        ctx->reason = NGX_MCD_REASON_CLIENT_CLOSED;
    }

    ngx_mcd_upstream_cancel(&ctx->step);
}


/*
 * the port of the request: of an absolute URI ("GET http://host:8080/"),
 * else of the Host header, else the scheme's; 0 when it is not a port
 */

static in_port_t
ngx_http_mcd_port(ngx_http_request_t *r)
{
    u_char     *p, *last;
    ngx_int_t   n;
    ngx_str_t  *host, tmp;

    if (r->host_end || r->headers_in.host) {

        if (r->host_end && r->host_end < r->request_end
            && *r->host_end == ':')
        {
            /* nginx before 1.29.4: the port follows r->host_end */

            p = r->host_end + 1;
            last = p;

            while (last < r->request_end && *last >= '0' && *last <= '9') {
                last++;
            }

            goto port;
        }

        /* nginx 1.29.4 on: r->host_start..r->host_end holds the port */

        if (r->host_end) {
            host = &tmp;
            host->data = r->host_start;
            host->len = r->host_end - r->host_start;

        } else {
            host = &r->headers_in.host->value;
        }

        p = host->data + host->len;
        last = p;

        while (p > host->data && p[-1] >= '0' && p[-1] <= '9') {
            p--;
        }

        if (p == host->data || p[-1] != ':') {
            return r->connection->ssl ? 443 : 80;
        }

        if (p == last) {
            return 0;
        }

    } else {
        return r->connection->ssl ? 443 : 80;
    }

port:

    n = ngx_atoi(p, last - p);

    if (n < 1 || n > 65535) {
        return 0;
    }

    return (in_port_t) n;
}


/*
 * the request's context is also marked on its pool: an internal redirect
 * (error_page serving a block page) clears module contexts, and the log
 * line must still say why
 */

static ngx_http_mcd_ctx_t *
ngx_http_mcd_create_ctx(ngx_http_request_t *r, ngx_mcd_handoff_t *h)
{
    ngx_pool_cleanup_t  *cln;
    ngx_http_mcd_ctx_t  *ctx;

    cln = ngx_pool_cleanup_add(r->pool, sizeof(ngx_http_mcd_ctx_t));
    if (cln == NULL) {
        return NULL;
    }

    cln->handler = ngx_http_mcd_ctx_cleanup;
    ctx = cln->data;

    ngx_memzero(ctx, sizeof(ngx_http_mcd_ctx_t));

    ctx->request = r;

    if (h != NULL) {
        ctx->d = *h;
        ctx->decided = (h->mode != NGX_MCD_MODE_HTTP);
    }

    ctx->rc = NGX_DECLINED;

    ngx_http_set_ctx(r, ctx, ngx_http_mcd_module);

    return ctx;
}


/*
 * a refusal: one log line naming client, host, rule, profile and reason,
 * then the answer
 */

static ngx_int_t
ngx_http_mcd_refuse(ngx_http_request_t *r, ngx_http_mcd_ctx_t *ctx,
    ngx_uint_t status, ngx_mcd_reason_e reason, const char *detail)
{
    ngx_str_t          host, fqdn, rule, profile, user;
    ngx_uint_t         level;
    ngx_connection_t  *c;

    static ngx_str_t   empty = ngx_string("");

    c = r->connection;

    ctx->decided = 1;
    ctx->reason = reason;

    ngx_mcd_metrics_outcome(reason);

    if (reason != NGX_MCD_REASON_DNS && reason != NGX_MCD_REASON_TIMEOUT
        && reason != NGX_MCD_REASON_CONNECT
        && reason != NGX_MCD_REASON_INTERNAL)
    {
        ctx->d.action = MCD_ACTION_DENY;
    }

    if (ctx->d.upstream.len) {
        host = ctx->d.upstream;

    } else if (ngx_mcd_escape_str(r->pool, &r->headers_in.server, &host)
               != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    fqdn = ctx->d.fqdn.len ? ctx->d.fqdn : empty;
    rule = ctx->d.rule.len ? ctx->d.rule : empty;
    profile = ctx->d.profile.len ? ctx->d.profile : empty;

    if (host.len == 0) {
        host = empty;
    }

    if (ngx_mcd_escape_str(r->pool, &ctx->d.user, &user) != NGX_OK
        || user.data == NULL)
    {
        user = empty;
    }

    level = (status == NGX_HTTP_FORBIDDEN || status >= 500
             || status == NGX_HTTP_MCD_PROXY_AUTH_REQUIRED)
            ? NGX_LOG_WARN : NGX_LOG_INFO;

    ngx_log_error(level, c->log, 0,
                  "mcd %V: refused \"%V\" from %V: %ui, fqdn \"%V\", "
                  "rule \"%V\", profile \"%V\", reason \"%V\": %s%s%V%s",
                  &ngx_mcd_modes[ctx->d.mode], &host, &c->addr_text, status,
                  &fqdn, &rule, &profile, ngx_mcd_reason_name(reason),
                  detail, user.len ? ", user \"" : "", &user,
                  user.len ? "\"" : "");

    switch (reason) {
    case NGX_MCD_REASON_DST_BLOCKED:
        detail = "destination address not allowed";
        break;
    case NGX_MCD_REASON_LOOP:
        detail = "destination is this gateway";
        break;
    default:
        break;
    }

    ngx_http_mcd_count(ctx);

    return ngx_http_mcd_answer(r, ctx, status, detail);
}


/*
 * proxy_pass could not connect to the address the gateway resolved (502)
 * or not in time (504): the request's reason, and the counter, say so as
 * for the stream side (a failure after the connect has no reason here).
 * Found when $mcd_reason is read (the log) and when the request ends, so
 * that it needs no place in the filter chain (whose order differs between
 * a dynamic and a static build)
 */

static void
ngx_http_mcd_upstream_outcome(ngx_http_request_t *r, ngx_http_mcd_ctx_t *ctx)
{
    if (ctx->outcome || ctx->reason != NGX_MCD_REASON_NONE) {
        return;
    }

    if (r->upstream == NULL
        || r->upstream->state == NULL
        || r->upstream->state->connect_time != (ngx_msec_t) -1
        || (r->headers_out.status != NGX_HTTP_BAD_GATEWAY
            && r->headers_out.status != NGX_HTTP_GATEWAY_TIME_OUT))
    {
        return;
    }

    ctx->outcome = 1;
    ctx->reason = (r->headers_out.status == NGX_HTTP_BAD_GATEWAY)
                  ? NGX_MCD_REASON_CONNECT : NGX_MCD_REASON_TIMEOUT;

    ngx_mcd_metrics_outcome(ctx->reason);
}


/* a plain-HTTP request decided by mcd_fqdn_filter, in the counters */

static void
ngx_http_mcd_count(ngx_http_mcd_ctx_t *ctx)
{
    if (ctx->counted || ctx->d.mode != NGX_MCD_MODE_HTTP) {
        return;
    }

    ctx->counted = 1;

    ngx_mcd_metrics_decision(ctx->reason == NGX_MCD_REASON_NO_PROFILE
                             ? NULL : ctx->d.profile_conf,
                             NGX_MCD_MODE_HTTP, ctx->d.action, ctx->reason);
}


/* "mcd_status": the counters in the Prometheus text format */

static ngx_int_t
ngx_http_mcd_status_handler(ngx_http_request_t *r)
{
    off_t         len;
    ngx_int_t     rc;
    ngx_chain_t  *out, *cl;

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
        return NGX_HTTP_NOT_ALLOWED;
    }

    rc = ngx_http_discard_request_body(r);

    if (rc != NGX_OK) {
        return rc;
    }

    out = ngx_mcd_metrics_render(r->pool);
    if (out == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    len = 0;

    for (cl = out; cl; cl = cl->next) {
        len += ngx_buf_size(cl->buf);
    }

    ngx_str_set(&r->headers_out.content_type,
                "text/plain; version=0.0.4; charset=utf-8");
    r->headers_out.content_type_len = sizeof("text/plain") - 1;
    r->headers_out.status = NGX_HTTP_OK;
    r->headers_out.content_length_n = len;

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    return ngx_http_output_filter(r, out);
}


static char *
ngx_http_mcd_status(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_core_loc_conf_t  *clcf;

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    clcf->handler = ngx_http_mcd_status_handler;

    return NGX_CONF_OK;
}


/*
 * the answer: the server's error_page for the status when it has one (a
 * block page), else "reason: detail" as text; the request is finalized
 * here, for the phase engine and for a resolution that ends later alike
 */

static ngx_int_t
ngx_http_mcd_answer(ngx_http_request_t *r, ngx_http_mcd_ctx_t *ctx,
    ngx_uint_t status, const char *detail)
{
    u_char                    *p;
    size_t                     len;
    ngx_int_t                  rc;
    ngx_str_t                 *reason, type;
    ngx_http_complex_value_t   cv;
    ngx_http_core_loc_conf_t  *clcf;

    clcf = ngx_http_get_module_loc_conf(r, ngx_http_core_module);

    if (clcf->error_pages) {
        rc = status;

    } else {
        reason = ngx_mcd_reason_name(ctx->reason);
        len = reason->len + sizeof(": \n") - 1 + ngx_strlen(detail);

        p = ngx_pnalloc(r->pool, len);
        if (p == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        ngx_memzero(&cv, sizeof(ngx_http_complex_value_t));

        cv.value.data = p;
        cv.value.len = ngx_sprintf(p, "%V: %s\n", reason, detail) - p;

        ngx_str_set(&type, "text/plain");

        if (status == NGX_HTTP_MCD_PROXY_AUTH_REQUIRED) {
            /* nginx's table of status lines has none for 407 */
            ngx_str_set(&r->headers_out.status_line,
                        "407 Proxy Authentication Required");
        }

        rc = ngx_http_send_response(r, status, &type, &cv);
    }

    ctx->rc = NGX_DONE;

    ngx_http_finalize_request(r, rc);

    return NGX_DONE;
}


/*
 * what the servers of an http listening socket are, for the stream
 * module's "nginx -t" checks: NGX_OK when every default server intercepts
 * (mcd_decrypt_pass needs "listen ... ssl" with mcd_intercept), or, for
 * mcd_http_pass, when it takes plain http and has an mcd_fqdn_filter (a
 * request for another server of the socket that has none is refused at
 * run time, no_profile)
 */

static ngx_int_t
ngx_http_mcd_listener_is(ngx_listening_t *ls, ngx_uint_t intercept)
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

        hmcf = conf->default_server->ctx
                   ->srv_conf[ngx_http_mcd_module.ctx_index];

        if (intercept) {
            if (!conf->ssl || !hmcf->intercept) {
                return NGX_DECLINED;
            }

        } else if (conf->ssl || hmcf->intercept
                   || hmcf->profile_name.len == 0)
        {
            return NGX_DECLINED;
        }
    }

    return NGX_OK;
}


ngx_int_t
ngx_http_mcd_intercepts(ngx_listening_t *ls)
{
    return ngx_http_mcd_listener_is(ls, 1);
}


ngx_int_t
ngx_http_mcd_forwards(ngx_listening_t *ls)
{
    return ngx_http_mcd_listener_is(ls, 0);
}


static ngx_http_mcd_ctx_t *
ngx_http_mcd_get_ctx(ngx_http_request_t *r)
{
    ngx_pool_cleanup_t  *cln;
    ngx_http_mcd_ctx_t  *ctx;

    r = r->main;

    ctx = ngx_http_get_module_ctx(r, ngx_http_mcd_module);

    if (ctx != NULL) {
        return ctx;
    }

    for (cln = r->pool->cleanup; cln; cln = cln->next) {
        if (cln->handler == ngx_http_mcd_ctx_cleanup) {
            ctx = cln->data;
            ngx_http_set_ctx(r, ctx, ngx_http_mcd_module);
            return ctx;
        }
    }

    return NULL;
}


static void
ngx_http_mcd_ctx_cleanup(void *data)
{
    ngx_http_mcd_ctx_t  *ctx = data;

    /*
     * the request's pool goes (its memory is still there): a proxy_pass
     * failure that no log line asked about is counted now
     */

    if (ctx->request != NULL) {
        ngx_http_mcd_upstream_outcome(ctx->request, ctx);
    }
}


/* variables: this request's decision, else the one handed over */

static ngx_mcd_handoff_t *
ngx_http_mcd_decision(ngx_http_request_t *r)
{
    ngx_http_mcd_ctx_t  *ctx;

    ctx = ngx_http_mcd_get_ctx(r);

    if (ctx != NULL) {
        return &ctx->d;
    }

    return ngx_mcd_handoff_get(r->connection);
}


static ngx_int_t
ngx_http_mcd_variable_str(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    ngx_str_t          *str;
    ngx_mcd_handoff_t  *d;

    d = ngx_http_mcd_decision(r);

    if (d == NULL) {
        v->not_found = 1;
        return NGX_OK;
    }

    str = (ngx_str_t *) ((char *) d + data);

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
ngx_http_mcd_variable_action(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    ngx_uint_t           action;
    ngx_mcd_handoff_t   *h;
    ngx_http_mcd_ctx_t  *ctx;

    ctx = ngx_http_mcd_get_ctx(r);

    if (ctx != NULL && ctx->decided) {
        action = ctx->d.action;

    } else if (ctx == NULL
               && (h = ngx_mcd_handoff_get(r->connection)) != NULL
               && h->mode != NGX_MCD_MODE_HTTP)
    {
        action = h->action;

    } else {
        v->not_found = 1;
        return NGX_OK;
    }

    v->data = (u_char *) ngx_mcd_action_name(action);
    v->len = ngx_strlen(v->data);
    v->valid = 1;
    v->no_cacheable = 0;
    v->not_found = 0;

    return NGX_OK;
}


/*
 * the SNI as the client sent it: read by the front door in transparent
 * mode, by the interception server's handshake after an explicit CONNECT
 */

static ngx_int_t
ngx_http_mcd_variable_sni(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    const char         *sni;
    ngx_mcd_handoff_t  *d;

    d = ngx_http_mcd_decision(r);

    if (d == NULL) {
        v->not_found = 1;
        return NGX_OK;
    }

    if (d->sni.len) {
        v->data = d->sni.data;
        v->len = d->sni.len;

    } else {
        sni = NULL;

        if (r->connection->ssl) {
            sni = SSL_get_servername(r->connection->ssl->connection,
                                     TLSEXT_NAMETYPE_host_name);
        }

        if (sni == NULL) {
            v->not_found = 1;
            return NGX_OK;
        }

        v->data = (u_char *) sni;
        v->len = ngx_strlen(sni);
    }

    v->valid = 1;
    v->no_cacheable = 0;
    v->not_found = 0;

    return NGX_OK;
}


static ngx_int_t
ngx_http_mcd_variable_ech(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    ngx_mcd_handoff_t  *d;

    d = ngx_http_mcd_decision(r);

    if (d == NULL || d->mode == NGX_MCD_MODE_HTTP) {
        v->not_found = 1;
        return NGX_OK;
    }

    v->data = (u_char *) (d->ech ? "1" : "0");
    v->len = 1;
    v->valid = 1;
    v->no_cacheable = 0;
    v->not_found = 0;

    return NGX_OK;
}


static ngx_int_t
ngx_http_mcd_variable_mode(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    ngx_mcd_handoff_t  *d;

    d = ngx_http_mcd_decision(r);

    if (d == NULL || d->mode == 0 || d->mode > NGX_MCD_MODE_HTTP) {
        v->not_found = 1;
        return NGX_OK;
    }

    v->data = ngx_mcd_modes[d->mode].data;
    v->len = ngx_mcd_modes[d->mode].len;
    v->valid = 1;
    v->no_cacheable = 0;
    v->not_found = 0;

    return NGX_OK;
}


static ngx_int_t
ngx_http_mcd_variable_port(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    u_char             *p;
    ngx_mcd_handoff_t  *d;

    d = ngx_http_mcd_decision(r);

    if (d == NULL || d->port == 0) {
        v->not_found = 1;
        return NGX_OK;
    }

    p = ngx_pnalloc(r->pool, sizeof("65535") - 1);
    if (p == NULL) {
        return NGX_ERROR;
    }

    v->data = p;
    v->len = ngx_sprintf(p, "%d", (int) d->port) - p;
    v->valid = 1;
    v->no_cacheable = 0;
    v->not_found = 0;

    return NGX_OK;
}


static ngx_int_t
ngx_http_mcd_variable_decrypted(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    ngx_mcd_handoff_t  *h;

    h = ngx_mcd_handoff_get(r->connection);

    v->data = (u_char *) ((h && h->action == MCD_ACTION_DECRYPT
                           && r->connection->ssl) ? "1" : "0");
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
    ngx_str_t           *name;
    ngx_http_mcd_ctx_t  *ctx;

    ctx = ngx_http_mcd_get_ctx(r);

    if (ctx != NULL) {
        ngx_http_mcd_upstream_outcome(r->main, ctx);
    }

    if (ctx == NULL || ctx->reason == NGX_MCD_REASON_NONE) {
        v->not_found = 1;
        return NGX_OK;
    }

    name = ngx_mcd_reason_name(ctx->reason);

    v->data = name->data;
    v->len = name->len;
    v->valid = 1;
    v->no_cacheable = 0;
    v->not_found = 0;

    return NGX_OK;
}


/* configuration */


static ngx_int_t
ngx_http_mcd_preconfiguration(ngx_conf_t *cf)
{
    ngx_uint_t            i;
    ngx_http_variable_t  *var, *v;

    for (v = ngx_http_mcd_vars; v->name.len; v++) {
        var = ngx_http_add_variable(cf, &v->name, v->flags);
        if (var == NULL) {
            return NGX_ERROR;
        }

        var->get_handler = v->get_handler;
        var->data = v->data;
    }

    if (ngx_mcd_metrics_zone(cf) != NGX_OK) {
        return NGX_ERROR;
    }

    /* note what "map" and "geo" blocks make, for "mcd_fqdn_filter $var" */

    if (ngx_mcd_wrap_values(cf, NGX_MCD_VALUES_HTTP) != NGX_OK) {
        return NGX_ERROR;
    }

    ngx_http_mcd_proxy_index = -1;

    for (i = 0; cf->cycle->modules[i]; i++) {
        if (ngx_strcmp(cf->cycle->modules[i]->name, "ngx_http_proxy_module")
            == 0)
        {
            ngx_http_mcd_proxy_index = cf->cycle->modules[i]->ctx_index;
            break;
        }
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_mcd_init(ngx_conf_t *cf)
{
    ngx_http_handler_pt        *h;
    ngx_http_core_main_conf_t  *cmcf;

    ngx_mcd_unwrap_values(NGX_MCD_VALUES_HTTP);

    cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_core_module);

    h = ngx_array_push(&cmcf->phases[NGX_HTTP_POST_READ_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = ngx_http_mcd_handler;

    return NGX_OK;
}


/*
 * the configuration is complete (also for "nginx -t"): every literal value
 * of the map or geo behind an "mcd_fqdn_filter $variable" names a profile
 */

static ngx_int_t
ngx_http_mcd_init_module(ngx_cycle_t *cycle)
{
    ngx_uint_t                   i;
    ngx_mcd_check_t              check;
    ngx_http_mcd_srv_conf_t     *hmcf;
    ngx_http_core_srv_conf_t   **cscfp;
    ngx_http_core_main_conf_t   *cmcf;

    cmcf = ngx_http_cycle_get_module_main_conf(cycle, ngx_http_core_module);

    if (cmcf == NULL) {
        return NGX_OK;
    }

    cscfp = cmcf->servers.elts;

    for (i = 0; i < cmcf->servers.nelts; i++) {

        hmcf = cscfp[i]->ctx->srv_conf[ngx_http_mcd_module.ctx_index];

        if (hmcf->profile_value == NULL) {
            continue;
        }

        ngx_memzero(&check, sizeof(ngx_mcd_check_t));
        check.cycle = cycle;

        if (ngx_mcd_values(cycle, NGX_MCD_VALUES_HTTP, &hmcf->profile_name,
                           ngx_mcd_check_value, &check)
            == NGX_ERROR)
        {
            ngx_log_error(NGX_LOG_EMERG, cycle->log, 0,
                          "\"%V\" may be \"%V\", which names no "
                          "mcd_fqdn_filter profile, in %s:%ui",
                          &hmcf->profile_name, &check.bad,
                          hmcf->profile_file, hmcf->profile_line);
            return NGX_ERROR;
        }
    }

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

    /*
     * set by ngx_pcalloc():
     *
     *     conf->profile_name = { 0, NULL };
     *     conf->profile = NULL;
     */

    conf->intercept = NGX_CONF_UNSET;
    conf->destination = NGX_CONF_UNSET_PTR;
    conf->ports = NGX_CONF_UNSET_PTR;

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

    in_port_t                *port;
    ngx_http_ssl_srv_conf_t  *sscf;

    ngx_conf_merge_value(conf->intercept, prev->intercept, 0);
    ngx_conf_merge_ptr_value(conf->destination, prev->destination, NULL);
    ngx_conf_merge_ptr_value(conf->ports, prev->ports, NULL);

    if (conf->ports == NULL) {
        conf->ports = ngx_array_create(cf->pool, 1, sizeof(in_port_t));
        if (conf->ports == NULL) {
            return NGX_CONF_ERROR;
        }

        port = ngx_array_push(conf->ports);
        if (port == NULL) {
            return NGX_CONF_ERROR;
        }

        *port = 80;
    }

    if (conf->profile_name.len == 0 && prev->profile_name.len) {

        /* the profile is found when the whole configuration is read */

        conf->profile_name = prev->profile_name;
        conf->profile_value = prev->profile_value;
        conf->profile_file = prev->profile_file;
        conf->profile_line = prev->profile_line;

        if (conf->profile_value == NULL
            && ngx_mcd_add_profile_ref(cf, &conf->profile_name,
                                       &conf->profile)
               != NGX_OK)
        {
            return NGX_CONF_ERROR;
        }
    }

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


static void *
ngx_http_mcd_create_loc_conf(ngx_conf_t *cf)
{
    return ngx_pcalloc(cf->pool, sizeof(ngx_http_mcd_loc_conf_t));
}


/*
 * in an interception server, a proxy_pass that verifies its upstream's
 * certificate gets the callback that records a refusal (the proxy module
 * merged before this one, its SSL context exists).  The proxy module's
 * location conf starts with its ngx_http_upstream_conf_t, in every nginx
 * from 1.22 to the current mainline.
 */

static char *
ngx_http_mcd_merge_loc_conf(ngx_conf_t *cf, void *parent, void *child)
{
    ngx_http_mcd_loc_conf_t *conf = child;

    SSL_CTX                   *ctx;
    ngx_http_conf_ctx_t       *hctx;
    ngx_http_upstream_conf_t  *ucf;
    ngx_http_mcd_srv_conf_t   *hmcf;

    hmcf = ngx_http_conf_get_module_srv_conf(cf, ngx_http_mcd_module);

    if (hmcf == NULL || hmcf->intercept != 1 || ngx_http_mcd_proxy_index < 0)
    {
        return NGX_CONF_OK;
    }

    hctx = cf->ctx;
    ucf = hctx->loc_conf[ngx_http_mcd_proxy_index];

    if (ucf == NULL || ucf->ssl == NULL || ucf->ssl->ctx == NULL
        || !ucf->ssl_verify)
    {
        return NGX_CONF_OK;
    }

    /* the mode stays as nginx set it: the chain is verified either way */

    ctx = ucf->ssl->ctx;

    SSL_CTX_set_verify(ctx, SSL_CTX_get_verify_mode(ctx), ngx_http_mcd_verify);

    conf->watched = 1;

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


static char *
ngx_http_mcd_fqdn_filter(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_mcd_srv_conf_t  *hmcf = conf;

    ngx_str_t                         *value;
    ngx_http_compile_complex_value_t   ccv;

    if (hmcf->profile_name.data != NULL) {
        return "is duplicate";
    }

    value = cf->args->elts;

    hmcf->profile_name = value[1];

    if (ngx_http_script_variables_count(&value[1]) == 0) {
        if (ngx_mcd_add_profile_ref(cf, &value[1], &hmcf->profile)
            != NGX_OK)
        {
            return NGX_CONF_ERROR;
        }

        return NGX_CONF_OK;
    }

    /* "$group": the profile is the one the value names, per request */

    hmcf->profile_value = ngx_palloc(cf->pool,
                                     sizeof(ngx_http_complex_value_t));
    if (hmcf->profile_value == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_memzero(&ccv, sizeof(ngx_http_compile_complex_value_t));

    ccv.cf = cf;
    ccv.value = &value[1];
    ccv.complex_value = hmcf->profile_value;

    if (ngx_http_compile_complex_value(&ccv) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    hmcf->profile_file = cf->conf_file->file.name.data;
    hmcf->profile_line = cf->conf_file->line;

    return NGX_CONF_OK;
}


static char *
ngx_http_mcd_destination(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_mcd_srv_conf_t  *hmcf = conf;

    return ngx_mcd_destination(cf, &hmcf->destination);
}


static char *
ngx_http_mcd_http_ports(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_mcd_srv_conf_t  *hmcf = conf;

    return ngx_mcd_ports(cf, &hmcf->ports);
}
