
/*
 * Copyright (C) ngx_mcd authors
 *
 * The stream front door's module: "mcd_proxy explicit|transparent" and the
 * directives that go with it, the variables, the content handler that
 * starts a session, and its end.  See ngx_stream_mcd.h for the map.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_stream.h>

#include "ngx_stream_mcd.h"


static void ngx_stream_mcd_handler(ngx_stream_session_t *s);
static void ngx_stream_mcd_cleanup(void *data);
static u_char *ngx_stream_mcd_log_error(ngx_log_t *log, u_char *buf,
    size_t len);

static ngx_int_t ngx_stream_mcd_variable_str(ngx_stream_session_t *s,
    ngx_stream_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_stream_mcd_variable_port(ngx_stream_session_t *s,
    ngx_stream_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_stream_mcd_variable_action(ngx_stream_session_t *s,
    ngx_stream_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_stream_mcd_variable_reason(ngx_stream_session_t *s,
    ngx_stream_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_stream_mcd_variable_profile(ngx_stream_session_t *s,
    ngx_stream_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_stream_mcd_variable_mode(ngx_stream_session_t *s,
    ngx_stream_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_stream_mcd_variable_ech(ngx_stream_session_t *s,
    ngx_stream_variable_value_t *v, uintptr_t data);

static ngx_int_t ngx_stream_mcd_add_variables(ngx_conf_t *cf);
static ngx_int_t ngx_stream_mcd_init(ngx_conf_t *cf);
static void *ngx_stream_mcd_create_srv_conf(ngx_conf_t *cf);
static char *ngx_stream_mcd_merge_srv_conf(ngx_conf_t *cf, void *parent,
    void *child);
static char *ngx_stream_mcd_proxy(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_stream_mcd_fqdn_filter(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_stream_mcd_connect_ports(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_stream_mcd_destination(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_stream_mcd_buffer_size(ngx_conf_t *cf, void *post,
    void *data);
static char *ngx_stream_mcd_pass(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_stream_mcd_proxy_auth(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_stream_mcd_proxy_auth_user_file(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
static ngx_int_t ngx_stream_mcd_init_module(ngx_cycle_t *cycle);


static ngx_conf_post_handler_pt  ngx_stream_mcd_buffer_size_post =
    ngx_stream_mcd_buffer_size;


static ngx_command_t  ngx_stream_mcd_commands[] = {

    { ngx_string("mcd_proxy"),
      NGX_STREAM_SRV_CONF|NGX_CONF_TAKE1,
      ngx_stream_mcd_proxy,
      NGX_STREAM_SRV_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("mcd_fqdn_filter"),
      NGX_STREAM_SRV_CONF|NGX_CONF_TAKE1,
      ngx_stream_mcd_fqdn_filter,
      NGX_STREAM_SRV_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("mcd_connect_ports"),
      NGX_STREAM_MAIN_CONF|NGX_STREAM_SRV_CONF|NGX_CONF_1MORE,
      ngx_stream_mcd_connect_ports,
      NGX_STREAM_SRV_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("mcd_decrypt_pass"),
      NGX_STREAM_SRV_CONF|NGX_CONF_TAKE1,
      ngx_stream_mcd_pass,
      NGX_STREAM_SRV_CONF_OFFSET,
      offsetof(ngx_stream_mcd_srv_conf_t, decrypt_pass),
      NULL },

    { ngx_string("mcd_http_pass"),
      NGX_STREAM_SRV_CONF|NGX_CONF_TAKE1,
      ngx_stream_mcd_pass,
      NGX_STREAM_SRV_CONF_OFFSET,
      offsetof(ngx_stream_mcd_srv_conf_t, http_pass),
      NULL },

    { ngx_string("mcd_proxy_auth"),
      NGX_STREAM_MAIN_CONF|NGX_STREAM_SRV_CONF|NGX_CONF_TAKE1,
      ngx_stream_mcd_proxy_auth,
      NGX_STREAM_SRV_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("mcd_proxy_auth_user_file"),
      NGX_STREAM_MAIN_CONF|NGX_STREAM_SRV_CONF|NGX_CONF_TAKE1,
      ngx_stream_mcd_proxy_auth_user_file,
      NGX_STREAM_SRV_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("mcd_destination"),
      NGX_STREAM_MAIN_CONF|NGX_STREAM_SRV_CONF|NGX_CONF_2MORE,
      ngx_stream_mcd_destination,
      NGX_STREAM_SRV_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("mcd_connect_timeout"),
      NGX_STREAM_MAIN_CONF|NGX_STREAM_SRV_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_STREAM_SRV_CONF_OFFSET,
      offsetof(ngx_stream_mcd_srv_conf_t, connect_timeout),
      NULL },

    { ngx_string("mcd_next_upstream_timeout"),
      NGX_STREAM_MAIN_CONF|NGX_STREAM_SRV_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_STREAM_SRV_CONF_OFFSET,
      offsetof(ngx_stream_mcd_srv_conf_t, next_upstream_timeout),
      NULL },

    { ngx_string("mcd_next_upstream_tries"),
      NGX_STREAM_MAIN_CONF|NGX_STREAM_SRV_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_STREAM_SRV_CONF_OFFSET,
      offsetof(ngx_stream_mcd_srv_conf_t, next_upstream_tries),
      NULL },

    { ngx_string("mcd_idle_timeout"),
      NGX_STREAM_MAIN_CONF|NGX_STREAM_SRV_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_STREAM_SRV_CONF_OFFSET,
      offsetof(ngx_stream_mcd_srv_conf_t, idle_timeout),
      NULL },

    { ngx_string("mcd_verify_destination"),
      NGX_STREAM_MAIN_CONF|NGX_STREAM_SRV_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_STREAM_SRV_CONF_OFFSET,
      offsetof(ngx_stream_mcd_srv_conf_t, verify_destination),
      NULL },

    { ngx_string("mcd_splice"),
      NGX_STREAM_MAIN_CONF|NGX_STREAM_SRV_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_STREAM_SRV_CONF_OFFSET,
      offsetof(ngx_stream_mcd_srv_conf_t, splice),
      NULL },

    { ngx_string("mcd_buffer_size"),
      NGX_STREAM_MAIN_CONF|NGX_STREAM_SRV_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_size_slot,
      NGX_STREAM_SRV_CONF_OFFSET,
      offsetof(ngx_stream_mcd_srv_conf_t, buffer_size),
      &ngx_stream_mcd_buffer_size_post },

      ngx_null_command
};


static ngx_stream_module_t  ngx_stream_mcd_module_ctx = {
    ngx_stream_mcd_add_variables,          /* preconfiguration */
    ngx_stream_mcd_init,                   /* postconfiguration */

    NULL,                                  /* create main configuration */
    NULL,                                  /* init main configuration */

    ngx_stream_mcd_create_srv_conf,        /* create server configuration */
    ngx_stream_mcd_merge_srv_conf          /* merge server configuration */
};


ngx_module_t  ngx_stream_mcd_module = {
    NGX_MODULE_V1,
    &ngx_stream_mcd_module_ctx,            /* module context */
    ngx_stream_mcd_commands,               /* module directives */
    NGX_STREAM_MODULE,                     /* module type */
    NULL,                                  /* init master */
    ngx_stream_mcd_init_module,            /* init module */
    NULL,                                  /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    NULL,                                  /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};


static ngx_stream_variable_t  ngx_stream_mcd_vars[] = {

    { ngx_string("mcd_fqdn"), NULL, ngx_stream_mcd_variable_str,
      offsetof(ngx_stream_mcd_ctx_t, fqdn), 0, 0 },

    { ngx_string("mcd_port"), NULL, ngx_stream_mcd_variable_port,
      0, 0, 0 },

    { ngx_string("mcd_action"), NULL, ngx_stream_mcd_variable_action,
      0, 0, 0 },

    { ngx_string("mcd_rule"), NULL, ngx_stream_mcd_variable_str,
      offsetof(ngx_stream_mcd_ctx_t, rule), 0, 0 },

    { ngx_string("mcd_profile"), NULL, ngx_stream_mcd_variable_profile,
      0, NGX_STREAM_VAR_NOCACHEABLE, 0 },

    { ngx_string("mcd_mode"), NULL, ngx_stream_mcd_variable_mode,
      0, 0, 0 },

    { ngx_string("mcd_upstream"), NULL, ngx_stream_mcd_variable_str,
      offsetof(ngx_stream_mcd_ctx_t, upstream), 0, 0 },

    { ngx_string("mcd_upstream_addr"), NULL, ngx_stream_mcd_variable_str,
      offsetof(ngx_stream_mcd_ctx_t, upstream_addr), 0, 0 },

    { ngx_string("mcd_reason"), NULL, ngx_stream_mcd_variable_reason,
      0, 0, 0 },

    { ngx_string("mcd_user"), NULL, ngx_stream_mcd_variable_str,
      offsetof(ngx_stream_mcd_ctx_t, user), NGX_STREAM_VAR_NOCACHEABLE, 0 },

    { ngx_string("mcd_sni"), NULL, ngx_stream_mcd_variable_str,
      offsetof(ngx_stream_mcd_ctx_t, sni), 0, 0 },

    { ngx_string("mcd_alpn"), NULL, ngx_stream_mcd_variable_str,
      offsetof(ngx_stream_mcd_ctx_t, alpn), 0, 0 },

    { ngx_string("mcd_ech"), NULL, ngx_stream_mcd_variable_ech,
      0, 0, 0 },

    { ngx_string("mcd_original_dst"), NULL, ngx_stream_mcd_variable_str,
      offsetof(ngx_stream_mcd_ctx_t, original_dst), 0, 0 },

      ngx_stream_null_variable
};


/* a session starts */


static void
ngx_stream_mcd_handler(ngx_stream_session_t *s)
{
    ngx_connection_t            *c;
    ngx_pool_cleanup_t          *cln;
    ngx_stream_mcd_ctx_t        *ctx;
    ngx_stream_core_srv_conf_t  *cscf;

    c = s->connection;

    if (c->buffer != NULL && c->buffer->last > c->buffer->pos) {

        /*
         * a preread phase handler consumed bytes that must stay in the
         * socket for the front door; "nginx -t" refuses the known ones
         */

        ngx_log_error(NGX_LOG_ALERT, c->log, 0,
                      "mcd_proxy cannot be used with a module that reads "
                      "the client's first bytes (ssl_preread)");
        ngx_stream_finalize_session(s, NGX_STREAM_INTERNAL_SERVER_ERROR);
        return;
    }

    ctx = ngx_pcalloc(c->pool, sizeof(ngx_stream_mcd_ctx_t));
    if (ctx == NULL) {
        ngx_stream_finalize_session(s, NGX_STREAM_INTERNAL_SERVER_ERROR);
        return;
    }

    ctx->session = s;
    ctx->conf = ngx_stream_get_module_srv_conf(s, ngx_stream_mcd_module);

    ctx->upstream_pipe.fd[0] = -1;
    ctx->upstream_pipe.fd[1] = -1;
    ctx->downstream_pipe.fd[0] = -1;
    ctx->downstream_pipe.fd[1] = -1;

    cln = ngx_pool_cleanup_add(c->pool, 0);
    if (cln == NULL) {
        ngx_stream_finalize_session(s, NGX_STREAM_INTERNAL_SERVER_ERROR);
        return;
    }

    cln->handler = ngx_stream_mcd_cleanup;
    cln->data = ctx;

    ngx_stream_set_ctx(s, ctx, ngx_stream_mcd_module);

    s->log_handler = ngx_stream_mcd_log_error;

    cscf = ngx_stream_get_module_srv_conf(s, ngx_stream_core_module);

    ctx->peek_size = cscf->preread_buffer_size;

    /* large allocations: freed or reused as a relay buffer later */

    ctx->peek = ngx_palloc(c->pool, ctx->peek_size);
    if (ctx->peek == NULL) {
        ngx_stream_finalize_session(s, NGX_STREAM_INTERNAL_SERVER_ERROR);
        return;
    }

    c->write->handler = ngx_stream_mcd_idle_handler;

    ngx_add_timer(c->read, cscf->preread_timeout);

    if (ctx->conf->mode == NGX_MCD_MODE_EXPLICIT) {
        c->log->action = "reading CONNECT request";
        c->read->handler = ngx_stream_mcd_explicit_handler;

    } else {
        c->log->action = "reading ClientHello";
        c->read->handler = ngx_stream_mcd_transparent_handler;
    }

    if (!c->read->ready) {
        /* nothing yet: no need for a peek that would only say EAGAIN */

        if (ngx_handle_read_event(c->read, 0) != NGX_OK) {
            ngx_stream_mcd_finalize(s, NGX_STREAM_INTERNAL_SERVER_ERROR);
        }

        return;
    }

    c->read->handler(c->read);
}


void
ngx_stream_mcd_idle_handler(ngx_event_t *ev)
{
    ngx_connection_t      *c;
    ngx_stream_session_t  *s;

    if (!ev->timedout) {
        return;
    }

    c = ev->data;
    s = c->data;

    ngx_stream_mcd_finalize(s, NGX_STREAM_OK);
}


void
ngx_stream_mcd_finalize(ngx_stream_session_t *s, ngx_uint_t status)
{
    ngx_stream_mcd_ctx_t  *ctx;

    ctx = ngx_stream_get_module_ctx(s, ngx_stream_mcd_module);

    if (ctx != NULL) {
        if (ctx->finalized) {
            return;
        }

        ctx->finalized = 1;

        if (ctx->state && ctx->state->response_time == (ngx_msec_t) -1) {
            ctx->state->response_time = ngx_current_msec
                                        - ctx->connect_start;
        }

        if (ctx->state && ctx->upstream_step.peer.connection) {
            ctx->state->bytes_received = ctx->upstream_received;
            ctx->state->bytes_sent = ctx->upstream_step.peer.connection->sent;
        }

        if (ctx->connected) {
            ngx_mcd_metric_add(tunnels[ctx->conf->mode], -1);

            if (ctx->upstream_step.peer.connection) {
                ngx_mcd_metric_add(bytes[NGX_MCD_METRICS_UPSTREAM],
                                   ctx->upstream_step.peer.connection->sent);
            }

            ngx_mcd_metric_add(bytes[NGX_MCD_METRICS_DOWNSTREAM],
                               ctx->upstream_received);
        }

        if (ctx->reason == NGX_MCD_REASON_NONE
            && status == NGX_STREAM_INTERNAL_SERVER_ERROR)
        {
            ctx->reason = NGX_MCD_REASON_INTERNAL;
        }

        ngx_stream_mcd_count(s);

        ngx_mcd_upstream_cancel(&ctx->upstream_step);
        ngx_stream_mcd_close_pipes(ctx);
    }

    ngx_stream_finalize_session(s, status);
}


static void
ngx_stream_mcd_cleanup(void *data)
{
    ngx_stream_mcd_ctx_t  *ctx = data;

    ngx_mcd_upstream_cancel(&ctx->upstream_step);
    ngx_stream_mcd_close_pipes(ctx);
}


static u_char *
ngx_stream_mcd_log_error(ngx_log_t *log, u_char *buf, size_t len)
{
    u_char                *p;
    ngx_stream_session_t  *s;
    ngx_stream_mcd_ctx_t  *ctx;

    s = log->data;
    p = buf;

    ctx = ngx_stream_get_module_ctx(s, ngx_stream_mcd_module);

    if (ctx == NULL) {
        return p;
    }

    /* a valid, normalised name and an address: nothing to escape */

    if (ctx->upstream.len) {
        p = ngx_snprintf(p, len, ", upstream: \"%V\"", &ctx->upstream);
        len -= p - buf;
        buf = p;
    }

    if (ctx->upstream_addr.len) {
        p = ngx_snprintf(p, len, ", upstream address: %V",
                         &ctx->upstream_addr);
    }

    return p;
}


/* variables */


static ngx_int_t
ngx_stream_mcd_variable_str(ngx_stream_session_t *s,
    ngx_stream_variable_value_t *v, uintptr_t data)
{
    ngx_str_t             *str;
    ngx_stream_mcd_ctx_t  *ctx;

    ctx = ngx_stream_get_module_ctx(s, ngx_stream_mcd_module);

    if (ctx == NULL) {
        v->not_found = 1;
        return NGX_OK;
    }

    str = (ngx_str_t *) ((char *) ctx + data);

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
ngx_stream_mcd_variable_port(ngx_stream_session_t *s,
    ngx_stream_variable_value_t *v, uintptr_t data)
{
    u_char                *p;
    ngx_stream_mcd_ctx_t  *ctx;

    ctx = ngx_stream_get_module_ctx(s, ngx_stream_mcd_module);

    if (ctx == NULL || ctx->port == 0) {
        v->not_found = 1;
        return NGX_OK;
    }

    p = ngx_pnalloc(s->connection->pool, sizeof("65535") - 1);
    if (p == NULL) {
        return NGX_ERROR;
    }

    v->len = ngx_sprintf(p, "%ui", (ngx_uint_t) ctx->port) - p;
    v->valid = 1;
    v->no_cacheable = 0;
    v->not_found = 0;
    v->data = p;

    return NGX_OK;
}


static ngx_int_t
ngx_stream_mcd_variable_action(ngx_stream_session_t *s,
    ngx_stream_variable_value_t *v, uintptr_t data)
{
    ngx_stream_mcd_ctx_t  *ctx;

    ctx = ngx_stream_get_module_ctx(s, ngx_stream_mcd_module);

    if (ctx == NULL || !ctx->decided) {
        v->not_found = 1;
        return NGX_OK;
    }

    v->data = (u_char *) ngx_mcd_action_name(ctx->action);
    v->len = ngx_strlen(v->data);
    v->valid = 1;
    v->no_cacheable = 0;
    v->not_found = 0;

    return NGX_OK;
}


static ngx_int_t
ngx_stream_mcd_variable_reason(ngx_stream_session_t *s,
    ngx_stream_variable_value_t *v, uintptr_t data)
{
    ngx_str_t             *name;
    ngx_stream_mcd_ctx_t  *ctx;

    ctx = ngx_stream_get_module_ctx(s, ngx_stream_mcd_module);

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


static ngx_int_t
ngx_stream_mcd_variable_profile(ngx_stream_session_t *s,
    ngx_stream_variable_value_t *v, uintptr_t data)
{
    ngx_stream_mcd_ctx_t       *ctx;
    ngx_stream_mcd_srv_conf_t  *mscf;

    mscf = ngx_stream_get_module_srv_conf(s, ngx_stream_mcd_module);
    ctx = ngx_stream_get_module_ctx(s, ngx_stream_mcd_module);

    if (ctx != NULL && ctx->profile_name.len) {
        v->data = ctx->profile_name.data;
        v->len = ctx->profile_name.len;

    } else if (mscf->profile != NULL) {
        v->data = mscf->profile->name.data;
        v->len = mscf->profile->name.len;

    } else {
        v->not_found = 1;
        return NGX_OK;
    }

    v->valid = 1;
    v->no_cacheable = 0;
    v->not_found = 0;

    return NGX_OK;
}


static ngx_int_t
ngx_stream_mcd_variable_mode(ngx_stream_session_t *s,
    ngx_stream_variable_value_t *v, uintptr_t data)
{
    ngx_stream_mcd_srv_conf_t  *mscf;

    mscf = ngx_stream_get_module_srv_conf(s, ngx_stream_mcd_module);

    if (mscf->mode == NGX_CONF_UNSET_UINT || mscf->mode == 0) {
        v->not_found = 1;
        return NGX_OK;
    }

    v->data = ngx_mcd_modes[mscf->mode].data;
    v->len = ngx_mcd_modes[mscf->mode].len;
    v->valid = 1;
    v->no_cacheable = 0;
    v->not_found = 0;

    return NGX_OK;
}


static ngx_int_t
ngx_stream_mcd_variable_ech(ngx_stream_session_t *s,
    ngx_stream_variable_value_t *v, uintptr_t data)
{
    ngx_stream_mcd_ctx_t  *ctx;

    ctx = ngx_stream_get_module_ctx(s, ngx_stream_mcd_module);

    if (ctx == NULL || !ctx->hello) {
        v->not_found = 1;
        return NGX_OK;
    }

    v->data = (u_char *) (ctx->ech ? "1" : "0");
    v->len = 1;
    v->valid = 1;
    v->no_cacheable = 0;
    v->not_found = 0;

    return NGX_OK;
}


static ngx_int_t
ngx_stream_mcd_add_variables(ngx_conf_t *cf)
{
    ngx_stream_variable_t  *var, *v;

    for (v = ngx_stream_mcd_vars; v->name.len; v++) {
        var = ngx_stream_add_variable(cf, &v->name, v->flags);
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

    return ngx_mcd_wrap_values(cf, NGX_MCD_VALUES_STREAM);
}


/* configuration */


/*
 * "ssl_preread on" consumes the bytes the front door must leave in the
 * socket (nginx < 1.25.5) or peeks them itself; either way it is not what
 * an mcd_proxy server wants, so it is refused at "nginx -t" on every
 * version; its server configuration starts with its "enabled" flag
 */

static ngx_int_t
ngx_stream_mcd_init(ngx_conf_t *cf)
{
    ngx_flag_t                    *preread;
    ngx_uint_t                     i, m;
    ngx_module_t                  *module;
    ngx_stream_mcd_srv_conf_t     *mscf;
    ngx_stream_core_srv_conf_t   **cscfp;
    ngx_stream_core_main_conf_t   *cmcf;

    ngx_mcd_unwrap_values(NGX_MCD_VALUES_STREAM);

    module = NULL;

    for (m = 0; cf->cycle->modules[m]; m++) {
        if (cf->cycle->modules[m]->type == NGX_STREAM_MODULE
            && cf->cycle->modules[m]->name != NULL
            && ngx_strcmp(cf->cycle->modules[m]->name,
                          "ngx_stream_ssl_preread_module") == 0)
        {
            module = cf->cycle->modules[m];
            break;
        }
    }

    if (module == NULL) {
        return NGX_OK;
    }

    cmcf = ngx_stream_conf_get_module_main_conf(cf, ngx_stream_core_module);
    cscfp = cmcf->servers.elts;

    for (i = 0; i < cmcf->servers.nelts; i++) {

        mscf = cscfp[i]->ctx->srv_conf[ngx_stream_mcd_module.ctx_index];
        preread = cscfp[i]->ctx->srv_conf[module->ctx_index];

        if (mscf->mode != 0 && preread != NULL && *preread == 1) {
            ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                          "\"mcd_proxy\" cannot be used with "
                          "\"ssl_preread on\" in the same server in %s:%ui",
                          mscf->file, mscf->line);
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


static void *
ngx_stream_mcd_create_srv_conf(ngx_conf_t *cf)
{
    ngx_stream_mcd_srv_conf_t  *conf;

    conf = ngx_pcalloc(cf->pool, sizeof(ngx_stream_mcd_srv_conf_t));
    if (conf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     conf->profile_name = { 0, NULL };
     *     conf->profile = NULL;
     *     conf->file = NULL;
     */

    conf->mode = NGX_CONF_UNSET_UINT;
    conf->connect_ports = NGX_CONF_UNSET_PTR;
    conf->destination = NGX_CONF_UNSET_PTR;
    conf->connect_timeout = NGX_CONF_UNSET_MSEC;
    conf->idle_timeout = NGX_CONF_UNSET_MSEC;
    conf->next_upstream_timeout = NGX_CONF_UNSET_MSEC;
    conf->next_upstream_tries = NGX_CONF_UNSET_UINT;
    conf->buffer_size = NGX_CONF_UNSET_SIZE;
    conf->verify_destination = NGX_CONF_UNSET;
    conf->splice = NGX_CONF_UNSET;
    conf->auth_users = NGX_CONF_UNSET_PTR;

    return conf;
}


static char *
ngx_stream_mcd_merge_srv_conf(ngx_conf_t *cf, void *parent, void *child)
{
    ngx_stream_mcd_srv_conf_t *prev = parent;
    ngx_stream_mcd_srv_conf_t *conf = child;

    in_port_t  *port;

    ngx_conf_merge_msec_value(conf->connect_timeout, prev->connect_timeout,
                              10000);
    ngx_conf_merge_msec_value(conf->idle_timeout, prev->idle_timeout,
                              600000);
    ngx_conf_merge_msec_value(conf->next_upstream_timeout,
                              prev->next_upstream_timeout, 30000);
    ngx_conf_merge_uint_value(conf->next_upstream_tries,
                              prev->next_upstream_tries, 0);
    ngx_conf_merge_size_value(conf->buffer_size, prev->buffer_size, 16384);
    ngx_conf_merge_value(conf->verify_destination, prev->verify_destination,
                         0);
    ngx_conf_merge_value(conf->splice, prev->splice, 0);

    ngx_conf_merge_ptr_value(conf->destination, prev->destination, NULL);
    ngx_conf_merge_ptr_value(conf->auth_users, prev->auth_users, NULL);

    if (conf->auth_realm.data == NULL) {
        conf->auth_realm = prev->auth_realm;
        conf->auth_file = prev->auth_file;
        conf->auth_line = prev->auth_line;
    }

    if (conf->auth_realm.len && conf->auth_users == NULL) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "\"mcd_proxy_auth\" needs \"mcd_proxy_auth_user_file\" "
                      "in %s:%ui", conf->auth_file, conf->auth_line);
        return NGX_CONF_ERROR;
    }
    ngx_conf_merge_ptr_value(conf->connect_ports, prev->connect_ports, NULL);

    if (conf->connect_ports == NULL) {
        conf->connect_ports = ngx_array_create(cf->pool, 1,
                                               sizeof(in_port_t));
        if (conf->connect_ports == NULL) {
            return NGX_CONF_ERROR;
        }

        port = ngx_array_push(conf->connect_ports);
        if (port == NULL) {
            return NGX_CONF_ERROR;
        }

        *port = 443;
    }

    if (conf->mode == NGX_CONF_UNSET_UINT) {
        conf->mode = 0;
        return NGX_CONF_OK;
    }

    if (conf->profile_name.len == 0) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "\"mcd_proxy\" needs \"mcd_fqdn_filter\" in the same "
                      "server in %s:%ui", conf->file, conf->line);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static char *
ngx_stream_mcd_proxy(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_stream_mcd_srv_conf_t  *mscf = conf;

    ngx_str_t                   *value;
    ngx_stream_core_srv_conf_t  *cscf;

    if (mscf->mode != NGX_CONF_UNSET_UINT) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (ngx_strcmp(value[1].data, "explicit") == 0) {
        mscf->mode = NGX_MCD_MODE_EXPLICIT;

    } else if (ngx_strcmp(value[1].data, "transparent") == 0) {
        mscf->mode = NGX_MCD_MODE_TRANSPARENT;

    } else {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid value \"%V\", it must be "
                           "\"explicit\" or \"transparent\"", &value[1]);
        return NGX_CONF_ERROR;
    }

    mscf->file = cf->conf_file->file.name.data;
    mscf->line = cf->conf_file->line;

    cscf = ngx_stream_conf_get_module_srv_conf(cf, ngx_stream_core_module);

    if (cscf->handler != NULL) {
        return "conflicts with another content handler (e.g. proxy_pass)";
    }

    cscf->handler = ngx_stream_mcd_handler;

    return NGX_CONF_OK;
}


static char *
ngx_stream_mcd_fqdn_filter(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_stream_mcd_srv_conf_t  *mscf = conf;

    ngx_str_t                           *value;
    ngx_stream_compile_complex_value_t   ccv;

    if (mscf->profile_name.data != NULL) {
        return "is duplicate";
    }

    value = cf->args->elts;

    mscf->profile_name = value[1];

    if (ngx_stream_script_variables_count(&value[1]) == 0) {
        if (ngx_mcd_add_profile_ref(cf, &value[1], &mscf->profile)
            != NGX_OK)
        {
            return NGX_CONF_ERROR;
        }

        return NGX_CONF_OK;
    }

    /* "$group": the profile is the one the value names, per connection */

    mscf->profile_value = ngx_palloc(cf->pool,
                                     sizeof(ngx_stream_complex_value_t));
    if (mscf->profile_value == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_memzero(&ccv, sizeof(ngx_stream_compile_complex_value_t));

    ccv.cf = cf;
    ccv.value = &value[1];
    ccv.complex_value = mscf->profile_value;

    if (ngx_stream_compile_complex_value(&ccv) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    mscf->profile_file = cf->conf_file->file.name.data;
    mscf->profile_line = cf->conf_file->line;

    return NGX_CONF_OK;
}


static char *
ngx_stream_mcd_connect_ports(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_stream_mcd_srv_conf_t  *mscf = conf;

    return ngx_mcd_ports(cf, &mscf->connect_ports);
}


static char *
ngx_stream_mcd_destination(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_stream_mcd_srv_conf_t  *mscf = conf;

    return ngx_mcd_destination(cf, &mscf->destination);
}


/* the relay buffer also carries the 39-byte "200" line and TLS records */

static char *
ngx_stream_mcd_buffer_size(ngx_conf_t *cf, void *post, void *data)
{
    size_t  *sp = data;

    if (*sp < NGX_STREAM_MCD_MIN_BUFFER) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"mcd_buffer_size\" must be at least %uz",
                           (size_t) NGX_STREAM_MCD_MIN_BUFFER);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static char *
ngx_stream_mcd_pass(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    char  *p = conf;

    ngx_url_t               u;
    ngx_str_t              *value;
    ngx_stream_mcd_pass_t  *pass;

    pass = (ngx_stream_mcd_pass_t *) (p + cmd->offset);

    if (pass->addr != NULL) {
        return "is duplicate";
    }

    value = cf->args->elts;

    ngx_memzero(&u, sizeof(ngx_url_t));

    u.url = value[1];
    u.no_resolve = 1;

    if (ngx_parse_url(cf->pool, &u) != NGX_OK) {
        if (u.err) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "%s in \"%V\" of \"%V\"",
                               u.err, &u.url, &cmd->name);
        }

        return NGX_CONF_ERROR;
    }

    if (u.naddrs == 0 || u.no_port) {
        return "needs an address and a port";
    }

    pass->addr = &u.addrs[0];
    pass->file = cf->conf_file->file.name.data;
    pass->line = cf->conf_file->line;

    return NGX_CONF_OK;
}


/*
 * the listening sockets exist now (also for "nginx -t"), and the profiles
 * are known: a server whose profile can decrypt needs mcd_decrypt_pass,
 * which must name an http "listen ... ssl" with mcd_intercept; an
 * mcd_http_pass must name a plain http listener with mcd_fqdn_filter
 */

static ngx_int_t
ngx_stream_mcd_init_module(ngx_cycle_t *cycle)
{
    ngx_mcd_check_t                check;
    ngx_uint_t                     i;
    ngx_stream_mcd_srv_conf_t     *mscf;
    ngx_stream_core_srv_conf_t   **cscfp;
    ngx_stream_core_main_conf_t   *cmcf;

    if (ngx_stream_cycle_get_module_main_conf(cycle, ngx_stream_core_module)
        == NULL)
    {
        return NGX_OK;
    }

    cmcf = ngx_stream_cycle_get_module_main_conf(cycle, ngx_stream_core_module);
    cscfp = cmcf->servers.elts;

    for (i = 0; i < cmcf->servers.nelts; i++) {

        mscf = cscfp[i]->ctx->srv_conf[ngx_stream_mcd_module.ctx_index];

        if (mscf->mode == 0) {
            continue;
        }

        ngx_memzero(&check, sizeof(ngx_mcd_check_t));
        check.cycle = cycle;

        if (mscf->profile_value != NULL
            && ngx_mcd_values(cycle, NGX_MCD_VALUES_STREAM,
                              &mscf->profile_name, ngx_mcd_check_value,
                              &check)
               == NGX_ERROR)
        {
            ngx_log_error(NGX_LOG_EMERG, cycle->log, 0,
                          "\"%V\" may be \"%V\", which names no "
                          "mcd_fqdn_filter profile, in %s:%ui",
                          &mscf->profile_name, &check.bad,
                          mscf->profile_file, mscf->profile_line);
            return NGX_ERROR;
        }

        if (mscf->decrypt_pass.addr == NULL) {

            if (check.decrypt != NULL) {
                ngx_log_error(NGX_LOG_EMERG, cycle->log, 0,
                              "mcd_fqdn_filter \"%V\" can decrypt, but "
                              "the server of \"mcd_proxy\" in %s:%ui has no "
                              "\"mcd_decrypt_pass\"", &check.decrypt->name,
                              mscf->file, mscf->line);
                return NGX_ERROR;
            }

            if (mscf->profile != NULL && mscf->profile->can_decrypt) {
                ngx_log_error(NGX_LOG_EMERG, cycle->log, 0,
                              "mcd_fqdn_filter \"%V\" can decrypt, but "
                              "the server of \"mcd_proxy\" in %s:%ui has no "
                              "\"mcd_decrypt_pass\"", &mscf->profile->name,
                              mscf->file, mscf->line);
                return NGX_ERROR;
            }

        } else if (ngx_stream_mcd_http_listener(cycle, mscf->decrypt_pass.addr,
                                                1)
                   == NULL)
        {
            ngx_log_error(NGX_LOG_EMERG, cycle->log, 0,
                          "\"mcd_decrypt_pass\" %V names no http "
                          "\"listen ... ssl\" with \"mcd_intercept on\" "
                          "in %s:%ui", &mscf->decrypt_pass.addr->name,
                          mscf->decrypt_pass.file, mscf->decrypt_pass.line);
            return NGX_ERROR;
        }

        if (mscf->http_pass.addr == NULL) {
            continue;
        }

        if (mscf->mode != NGX_MCD_MODE_EXPLICIT) {
            ngx_log_error(NGX_LOG_EMERG, cycle->log, 0,
                          "\"mcd_http_pass\" is for \"mcd_proxy explicit\" "
                          "in %s:%ui", mscf->http_pass.file,
                          mscf->http_pass.line);
            return NGX_ERROR;
        }

        if (ngx_stream_mcd_http_listener(cycle, mscf->http_pass.addr, 0)
            == NULL)
        {
            ngx_log_error(NGX_LOG_EMERG, cycle->log, 0,
                          "\"mcd_http_pass\" %V names no plain http "
                          "\"listen\" whose server has \"mcd_fqdn_filter\" "
                          "in %s:%ui", &mscf->http_pass.addr->name,
                          mscf->http_pass.file, mscf->http_pass.line);
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


/* "mcd_proxy_auth REALM | off" */

static char *
ngx_stream_mcd_proxy_auth(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_stream_mcd_srv_conf_t  *mscf = conf;

    ngx_str_t   *value;
    ngx_uint_t   i;

    if (mscf->auth_realm.data != NULL) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (ngx_strcmp(value[1].data, "off") == 0) {
        ngx_str_set(&mscf->auth_realm, "");
        return NGX_CONF_OK;
    }

    /* the realm goes into a quoted string of the 407 answer as it is */

    for (i = 0; i < value[1].len; i++) {
        if (value[1].data[i] < 0x20 || value[1].data[i] == 0x7f
            || value[1].data[i] == '"' || value[1].data[i] == '\\')
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid realm \"%V\" in \"mcd_proxy_auth\": "
                               "quotes, backslashes and control characters "
                               "are not allowed", &value[1]);
            return NGX_CONF_ERROR;
        }
    }

    if (value[1].len == 0) {
        return "needs a realm";
    }

    mscf->auth_realm = value[1];
    mscf->auth_file = cf->conf_file->file.name.data;
    mscf->auth_line = cf->conf_file->line;

    return NGX_CONF_OK;
}


/* "mcd_proxy_auth_user_file FILE": read now, and again on every reload */

static char *
ngx_stream_mcd_proxy_auth_user_file(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_stream_mcd_srv_conf_t  *mscf = conf;

    ngx_str_t  *value;

    if (mscf->auth_users != NGX_CONF_UNSET_PTR) {
        return "is duplicate";
    }

    value = cf->args->elts;

    mscf->auth_users = ngx_mcd_users_load(cf, &value[1]);

    if (mscf->auth_users == NULL) {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/*
 * the session's decision, once, in the shared counters: by mode, profile
 * (none when it was refused before one was known), action and reason
 */

void
ngx_stream_mcd_count(ngx_stream_session_t *s)
{
    ngx_stream_mcd_ctx_t  *ctx;

    ctx = ngx_stream_get_module_ctx(s, ngx_stream_mcd_module);

    if (ctx == NULL || ctx->counted) {
        return;
    }

    ctx->counted = 1;

    ngx_mcd_metrics_decision(ctx->profile, ctx->conf->mode, ctx->action,
                             ctx->reason);
    ngx_mcd_metrics_outcome(ctx->reason);
}
