
/*
 * Copyright (C) ngx_mcd authors
 *
 * The stream front door.  "mcd_proxy explicit" reads an HTTP CONNECT head
 * with MSG_PEEK and consumes exactly the head; "mcd_proxy transparent"
 * reads the ClientHello with MSG_PEEK and consumes nothing.  Both decide
 * with the FQDN filter profile, resolve the name (hosts file, then
 * resolver), connect, and relay bytes both ways; explicit answers 200 once
 * connected, transparent lets the untouched ClientHello follow.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_stream.h>

#include "ngx_mcd.h"
#include "mcd_connect.h"
#include "mcd_tls.h"


#if (NGX_LINUX)
#ifndef SO_ORIGINAL_DST
#define SO_ORIGINAL_DST                80
#endif
#ifndef IP6T_SO_ORIGINAL_DST
#define IP6T_SO_ORIGINAL_DST           80
#endif
#endif


#define NGX_STREAM_MCD_LINGER_TIME     5000
#define NGX_STREAM_MCD_LINGER_BYTES    65536
#define NGX_STREAM_MCD_LINGER_BUFFER   4096
#define NGX_STREAM_MCD_MAX_ADDRS       16
#define NGX_STREAM_MCD_DETAIL          96
#define NGX_STREAM_MCD_SPLICE_AFTER    65536
#define NGX_STREAM_MCD_SPLICE_MAX      65536

#define NGX_STREAM_MCD_CONNECT_FAILURE 1
#define NGX_STREAM_MCD_TIMEOUT_FAILURE 2


typedef struct {
    ngx_uint_t                   mode;
    ngx_str_t                    profile_name;
    ngx_mcd_profile_t           *profile;
    ngx_array_t                 *connect_ports;     /* in_port_t */
    ngx_msec_t                   connect_timeout;
    ngx_msec_t                   idle_timeout;
    size_t                       buffer_size;
    ngx_flag_t                   verify_destination;
    ngx_flag_t                   splice;

    u_char                      *file;              /* of "mcd_proxy" */
    ngx_uint_t                   line;
} ngx_stream_mcd_srv_conf_t;


/*
 * a zero-copy path for bulk tunnels: after NGX_STREAM_MCD_SPLICE_AFTER
 * bytes in one direction, bytes move socket -> pipe -> socket with
 * splice(2), without a copy through user space
 */

typedef struct {
    ngx_fd_t                     fd[2];             /* -1: not (yet) used */
    size_t                       pending;           /* bytes in the pipe */
    size_t                       size;              /* the pipe's capacity */
    off_t                        relayed;
    unsigned                     failed:1;          /* no pipe: copy */
} ngx_stream_mcd_pipe_t;


typedef struct {
    ngx_stream_session_t        *session;
    ngx_stream_mcd_srv_conf_t   *conf;

    ngx_uint_t                   action;
    ngx_str_t                    host;              /* as the client sent it */
    ngx_str_t                    fqdn;              /* normalised */
    ngx_str_t                    rule;
    ngx_str_t                    reason;
    ngx_str_t                    upstream;          /* fqdn:port */
    ngx_str_t                    upstream_addr;     /* address:port */
    ngx_str_t                    sni;               /* as the client sent it */
    ngx_str_t                    alpn;
    ngx_str_t                    original_dst;      /* address:port */
    struct sockaddr             *orig_sockaddr;
    socklen_t                    orig_socklen;
    in_port_t                    port;
    ngx_uint_t                   name_type;

    u_char                      *peek;
    size_t                       peek_size;

    ngx_resolver_ctx_t          *resolver_ctx;
    ngx_addr_t                  *addrs;
    ngx_uint_t                   naddrs;
    ngx_uint_t                   next_addr;
    ngx_peer_connection_t        peer;
    ngx_stream_upstream_state_t *state;
    ngx_msec_t                   connect_start;
    ngx_uint_t                   failure;           /* 502 or 504 */

    ngx_buf_t                    upstream_buf;      /* client -> upstream */
    ngx_buf_t                    downstream_buf;    /* upstream -> client */
    ngx_stream_mcd_pipe_t        upstream_pipe;
    ngx_stream_mcd_pipe_t        downstream_pipe;
    off_t                        upstream_received;

    ngx_buf_t                    answer;
    size_t                       lingered;

    unsigned                     client_eof;        /* client sent FIN */
    unsigned                     upstream_eof;      /* upstream sent FIN */
    unsigned                     upstream_shut;     /* FIN passed upstream */
    unsigned                     client_shut;       /* FIN passed to client */

    unsigned                     decided:1;
    unsigned                     connected:1;
    unsigned                     finalized:1;
    unsigned                     hello:1;           /* a ClientHello parsed */
    unsigned                     ech:1;
    unsigned                     silent:1;          /* refuse without a byte */
} ngx_stream_mcd_ctx_t;


static void ngx_stream_mcd_handler(ngx_stream_session_t *s);
static void ngx_stream_mcd_peek_handler(ngx_event_t *rev);
static void ngx_stream_mcd_explicit_request(ngx_stream_session_t *s,
    mcd_connect_t *req);
static ssize_t ngx_stream_mcd_peek(ngx_stream_session_t *s);
static void ngx_stream_mcd_peek_more(ngx_stream_session_t *s,
    const char *truncated);
static ngx_int_t ngx_stream_mcd_decide(ngx_stream_session_t *s, u_char *name,
    size_t len, const char *what);
static void ngx_stream_mcd_act(ngx_stream_session_t *s);
static void ngx_stream_mcd_tls_peek_handler(ngx_event_t *rev);
static void ngx_stream_mcd_transparent_request(ngx_stream_session_t *s,
    mcd_tls_hello_t *h);
static u_char *ngx_stream_mcd_scratch(ngx_log_t *log, size_t size);
static ngx_int_t ngx_stream_mcd_original_dst(ngx_stream_session_t *s);
static ngx_int_t ngx_stream_mcd_set_upstream(ngx_stream_session_t *s);
static void ngx_stream_mcd_resolve(ngx_stream_session_t *s);
static void ngx_stream_mcd_addrs_ready(ngx_stream_session_t *s);
static void ngx_stream_mcd_resolve_handler(ngx_resolver_ctx_t *rctx);
static ngx_int_t ngx_stream_mcd_set_addrs(ngx_stream_session_t *s,
    ngx_addr_t *addrs, ngx_uint_t naddrs);
static void ngx_stream_mcd_connect(ngx_stream_session_t *s);
static void ngx_stream_mcd_connect_handler(ngx_event_t *ev);
static ngx_int_t ngx_stream_mcd_test_connect(ngx_connection_t *c);
static void ngx_stream_mcd_next_addr(ngx_stream_session_t *s,
    ngx_uint_t failure);
static void ngx_stream_mcd_close_peer(ngx_stream_session_t *s);
static void ngx_stream_mcd_connected(ngx_stream_session_t *s);
static void ngx_stream_mcd_relay_handler(ngx_event_t *ev);
static void ngx_stream_mcd_relay(ngx_stream_session_t *s);
static ngx_int_t ngx_stream_mcd_pump(ngx_stream_mcd_ctx_t *ctx,
    ngx_connection_t *src, ngx_connection_t *dst, ngx_buf_t *b,
    ngx_stream_mcd_pipe_t *pp, off_t *received, unsigned *moved);
#if (NGX_LINUX)
static ngx_int_t ngx_stream_mcd_splice(ngx_connection_t *src,
    ngx_connection_t *dst, ngx_stream_mcd_pipe_t *pp, unsigned *eof,
    off_t *received, unsigned *moved);
#endif
static void ngx_stream_mcd_close_pipes(ngx_stream_mcd_ctx_t *ctx);
static void ngx_stream_mcd_refuse(ngx_stream_session_t *s,
    ngx_uint_t status, const char *reason, const char *detail);
static unsigned ngx_stream_mcd_alert(const char *reason);
static ngx_int_t ngx_stream_mcd_http_answer(ngx_stream_session_t *s,
    ngx_uint_t status, const char *text, const char *detail);
static void ngx_stream_mcd_answer_handler(ngx_event_t *ev);
static void ngx_stream_mcd_linger_handler(ngx_event_t *rev);
static void ngx_stream_mcd_idle_handler(ngx_event_t *ev);
static void ngx_stream_mcd_finalize(ngx_stream_session_t *s,
    ngx_uint_t status);
static void ngx_stream_mcd_cleanup(void *data);
static u_char *ngx_stream_mcd_log_error(ngx_log_t *log, u_char *buf,
    size_t len);

static ngx_int_t ngx_stream_mcd_variable_str(ngx_stream_session_t *s,
    ngx_stream_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_stream_mcd_variable_port(ngx_stream_session_t *s,
    ngx_stream_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_stream_mcd_variable_action(ngx_stream_session_t *s,
    ngx_stream_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_stream_mcd_variable_profile(ngx_stream_session_t *s,
    ngx_stream_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_stream_mcd_variable_mode(ngx_stream_session_t *s,
    ngx_stream_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_stream_mcd_variable_ech(ngx_stream_session_t *s,
    ngx_stream_variable_value_t *v, uintptr_t data);

static ngx_int_t ngx_stream_mcd_add_variables(ngx_conf_t *cf);
static void *ngx_stream_mcd_create_srv_conf(ngx_conf_t *cf);
static char *ngx_stream_mcd_merge_srv_conf(ngx_conf_t *cf, void *parent,
    void *child);
static char *ngx_stream_mcd_proxy(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_stream_mcd_fqdn_filter(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_stream_mcd_connect_ports(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);


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

    { ngx_string("mcd_connect_timeout"),
      NGX_STREAM_MAIN_CONF|NGX_STREAM_SRV_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_STREAM_SRV_CONF_OFFSET,
      offsetof(ngx_stream_mcd_srv_conf_t, connect_timeout),
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
      NULL },

      ngx_null_command
};


static ngx_stream_module_t  ngx_stream_mcd_module_ctx = {
    ngx_stream_mcd_add_variables,          /* preconfiguration */
    NULL,                                  /* postconfiguration */

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
    NULL,                                  /* init module */
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
      0, 0, 0 },

    { ngx_string("mcd_mode"), NULL, ngx_stream_mcd_variable_mode,
      0, 0, 0 },

    { ngx_string("mcd_upstream"), NULL, ngx_stream_mcd_variable_str,
      offsetof(ngx_stream_mcd_ctx_t, upstream), 0, 0 },

    { ngx_string("mcd_upstream_addr"), NULL, ngx_stream_mcd_variable_str,
      offsetof(ngx_stream_mcd_ctx_t, upstream_addr), 0, 0 },

    { ngx_string("mcd_reason"), NULL, ngx_stream_mcd_variable_str,
      offsetof(ngx_stream_mcd_ctx_t, reason), 0, 0 },

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


static ngx_str_t  ngx_stream_mcd_modes[] = {
    ngx_null_string,
    ngx_string("explicit"),
    ngx_string("transparent"),
    ngx_string("http")
};


/* the front door */


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
         * a preread phase handler (e.g. "ssl_preread on") consumed bytes
         * that must stay in the socket for the front door
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
        c->read->handler = ngx_stream_mcd_peek_handler;

    } else {
        c->log->action = "reading ClientHello";
        c->read->handler = ngx_stream_mcd_tls_peek_handler;
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


static void
ngx_stream_mcd_peek_handler(ngx_event_t *rev)
{
    ssize_t                n, got, peeked;
    ngx_int_t              rc;
    mcd_connect_t          req;
    ngx_connection_t      *c;
    ngx_stream_session_t  *s;
    ngx_stream_mcd_ctx_t  *ctx;

    c = rev->data;
    s = c->data;
    ctx = ngx_stream_get_module_ctx(s, ngx_stream_mcd_module);

    if (rev->timedout) {
        ngx_stream_mcd_refuse(s, 408, "bad_request",
                              "timed out reading the CONNECT request");
        return;
    }

    n = ngx_stream_mcd_peek(s);

    if (n <= 0) {
        return;
    }

    rc = mcd_connect_parse(ctx->peek, n, ctx->peek_size, &req);

    switch (rc) {

    case MCD_CONNECT_AGAIN:
        ngx_stream_mcd_peek_more(s, "truncated CONNECT request");
        return;

    case MCD_CONNECT_OTHER:
        ngx_stream_mcd_refuse(s, 405, "bad_request",
                              "only CONNECT is supported on this port");
        return;

    case MCD_CONNECT_OK:
        break;

    default: /* MCD_CONNECT_ERROR */
        ngx_stream_mcd_refuse(s, req.status, req.reason, req.detail);
        return;
    }

    /* consume exactly the head: what follows stays in the socket */

    peeked = n;

    for (got = 0; got < (ssize_t) req.head_len; /* void */) {

        n = recv(c->fd, ctx->peek + got, req.head_len - got, 0);

        if (n > 0) {
            got += n;
            continue;
        }

        if (n == -1 && ngx_socket_errno == NGX_EINTR) {
            continue;
        }

        ngx_connection_error(c, ngx_socket_errno,
                             "recv() of a peeked CONNECT head failed");
        ngx_stream_mcd_finalize(s, NGX_STREAM_BAD_REQUEST);
        return;
    }

    s->received += req.head_len;

    c->log->action = "deciding";

    if (rev->timer_set) {
        ngx_del_timer(rev);
    }

    /* what the client sends now waits in the socket for the relay */

    rev->handler = ngx_stream_mcd_idle_handler;

    /*
     * bytes pipelined after the head were already there when we peeked and
     * will raise no other edge: the relay must read them without waiting;
     * bytes that arrive later raise their own event
     */

    rev->ready = ((size_t) peeked > req.head_len);
    rev->available = -1;

    ngx_stream_mcd_explicit_request(s, &req);
}


/*
 * peek at what the client sent so far: > 0 bytes to parse, or 0 when
 * there is nothing to do now (waiting for bytes, or the session is over)
 */

static ssize_t
ngx_stream_mcd_peek(ngx_stream_session_t *s)
{
    ssize_t                n;
    ngx_err_t              err;
    ngx_connection_t      *c;
    ngx_stream_mcd_ctx_t  *ctx;

    c = s->connection;
    ctx = ngx_stream_get_module_ctx(s, ngx_stream_mcd_module);

    n = recv(c->fd, ctx->peek, ctx->peek_size, MSG_PEEK);

    if (n > 0) {
        return n;
    }

    if (n == 0) {
        ngx_log_error(NGX_LOG_INFO, c->log, 0,
                      "client closed connection before its first request");
        ngx_str_set(&ctx->reason, "bad_request");
        ngx_stream_mcd_finalize(s, NGX_STREAM_BAD_REQUEST);
        return 0;
    }

    err = ngx_socket_errno;

    if (err == NGX_EAGAIN || err == NGX_EINTR) {
        c->read->ready = 0;

        if (ngx_handle_read_event(c->read, 0) != NGX_OK) {
            ngx_stream_mcd_finalize(s, NGX_STREAM_INTERNAL_SERVER_ERROR);
        }

        return 0;
    }

    ngx_connection_error(c, err, "recv(MSG_PEEK) failed");
    ngx_stream_mcd_finalize(s, NGX_STREAM_BAD_REQUEST);

    return 0;
}


/*
 * an incomplete request: wait for more bytes, unless the client already
 * sent its FIN (a peek cannot see it, epoll's EPOLLRDHUP can)
 */

static void
ngx_stream_mcd_peek_more(ngx_stream_session_t *s, const char *truncated)
{
    ngx_event_t  *rev;

    rev = s->connection->read;

#if (NGX_HAVE_EPOLLRDHUP)
    if ((ngx_event_flags & NGX_USE_EPOLL_EVENT) && ngx_use_epoll_rdhup
        && rev->pending_eof)
    {
        ngx_stream_mcd_refuse(s, NGX_STREAM_BAD_REQUEST, "bad_request",
                              truncated);
        return;
    }
#endif

    rev->ready = 0;

    if (ngx_handle_read_event(rev, 0) != NGX_OK) {
        ngx_stream_mcd_finalize(s, NGX_STREAM_INTERNAL_SERVER_ERROR);
    }
}


static void
ngx_stream_mcd_explicit_request(ngx_stream_session_t *s, mcd_connect_t *req)
{
    in_port_t                  *ports;
    ngx_uint_t                  i;
    ngx_connection_t           *c;
    ngx_stream_mcd_ctx_t       *ctx;
    ngx_stream_mcd_srv_conf_t  *mscf;

    c = s->connection;
    ctx = ngx_stream_get_module_ctx(s, ngx_stream_mcd_module);
    mscf = ctx->conf;

    ctx->port = (in_port_t) req->port;

    ctx->host.len = req->host_len;
    ctx->host.data = ngx_pnalloc(c->pool, req->host_len);
    if (ctx->host.data == NULL) {
        ngx_stream_mcd_finalize(s, NGX_STREAM_INTERNAL_SERVER_ERROR);
        return;
    }

    ngx_memcpy(ctx->host.data, req->host, req->host_len);

    if (ngx_stream_mcd_decide(s, ctx->host.data, ctx->host.len,
                              "not a valid host name")
        != NGX_OK)
    {
        return;
    }

    ports = mscf->connect_ports->elts;

    for (i = 0; i < mscf->connect_ports->nelts; i++) {
        if (ports[i] == ctx->port) {
            break;
        }
    }

    if (i == mscf->connect_ports->nelts) {
        ctx->action = MCD_ACTION_DENY;
        ngx_str_set(&ctx->rule, "mcd_connect_ports");
        ngx_stream_mcd_refuse(s, NGX_STREAM_FORBIDDEN, "port",
                              "port not allowed");
        return;
    }

    ngx_stream_mcd_act(s);
}


/* the verdict of the profile for the name the client asked for */

static ngx_int_t
ngx_stream_mcd_decide(ngx_stream_session_t *s, u_char *name, size_t len,
    const char *what)
{
    ngx_int_t              rc;
    ngx_mcd_decision_t     d;
    ngx_stream_mcd_ctx_t  *ctx;

    ctx = ngx_stream_get_module_ctx(s, ngx_stream_mcd_module);

    rc = ngx_mcd_decide(s->connection->pool, ctx->conf->profile, name, len,
                        &d);

    if (rc == NGX_ERROR) {
        ngx_stream_mcd_finalize(s, NGX_STREAM_INTERNAL_SERVER_ERROR);
        return NGX_ERROR;
    }

    ctx->decided = 1;
    ctx->action = d.action;
    ctx->fqdn = d.fqdn;
    ctx->rule = d.rule;
    ctx->name_type = d.type;

    if (rc == NGX_DECLINED) {
        ngx_stream_mcd_refuse(s, NGX_STREAM_BAD_REQUEST, "bad_name", what);
        return NGX_DECLINED;
    }

    if (ngx_stream_mcd_set_upstream(s) != NGX_OK) {
        ngx_stream_mcd_finalize(s, NGX_STREAM_INTERNAL_SERVER_ERROR);
        return NGX_ERROR;
    }

    return NGX_OK;
}


static void
ngx_stream_mcd_act(ngx_stream_session_t *s)
{
    ngx_stream_mcd_ctx_t  *ctx;

    ctx = ngx_stream_get_module_ctx(s, ngx_stream_mcd_module);

    switch (ctx->action) {

    case MCD_ACTION_ALLOW:
        ngx_stream_mcd_resolve(s);
        return;

    case MCD_ACTION_DECRYPT:
        ngx_stream_mcd_refuse(s, 501, "decrypt_unavailable",
                              "decryption is not available");
        return;

    default: /* MCD_ACTION_DENY */
        ngx_stream_mcd_refuse(s, NGX_STREAM_FORBIDDEN, "policy",
                              "denied by policy");
        return;
    }
}


static ngx_int_t
ngx_stream_mcd_set_upstream(ngx_stream_session_t *s)
{
    u_char                *p;
    ngx_stream_mcd_ctx_t  *ctx;

    ctx = ngx_stream_get_module_ctx(s, ngx_stream_mcd_module);

    ctx->upstream.data = ngx_pnalloc(s->connection->pool,
                                     ctx->fqdn.len + sizeof("[]:65535") - 1);
    if (ctx->upstream.data == NULL) {
        return NGX_ERROR;
    }

    if (ctx->name_type == MCD_NAME_IPV6) {
        p = ngx_sprintf(ctx->upstream.data, "[%V]:%ui", &ctx->fqdn,
                        (ngx_uint_t) ctx->port);

    } else {
        p = ngx_sprintf(ctx->upstream.data, "%V:%ui", &ctx->fqdn,
                        (ngx_uint_t) ctx->port);
    }

    ctx->upstream.len = p - ctx->upstream.data;

    return NGX_OK;
}


/* transparent: the ClientHello, peeked and left in the socket */


static void
ngx_stream_mcd_tls_peek_handler(ngx_event_t *rev)
{
    u_char                *scratch;
    ssize_t                n;
    ngx_int_t              rc;
    mcd_tls_hello_t        h;
    ngx_connection_t      *c;
    ngx_stream_session_t  *s;
    ngx_stream_mcd_ctx_t  *ctx;

    c = rev->data;
    s = c->data;
    ctx = ngx_stream_get_module_ctx(s, ngx_stream_mcd_module);

    if (rev->timedout) {
        ctx->silent = 1;
        ngx_stream_mcd_refuse(s, NGX_STREAM_BAD_REQUEST, "bad_request",
                              "timed out reading the ClientHello");
        return;
    }

    n = ngx_stream_mcd_peek(s);

    if (n <= 0) {
        return;
    }

    scratch = ngx_stream_mcd_scratch(c->log, ctx->peek_size);
    if (scratch == NULL) {
        ngx_stream_mcd_finalize(s, NGX_STREAM_INTERNAL_SERVER_ERROR);
        return;
    }

    rc = mcd_tls_parse_client_hello(ctx->peek, n, scratch, ctx->peek_size,
                                    &h);

    switch (rc) {

    case MCD_TLS_AGAIN:

        if ((size_t) n == ctx->peek_size) {
            ngx_stream_mcd_refuse(s, NGX_STREAM_BAD_REQUEST, "bad_request",
                                  "ClientHello larger than "
                                  "preread_buffer_size");
            return;
        }

        ngx_stream_mcd_peek_more(s, "truncated ClientHello");
        return;

    case MCD_TLS_OK:
        break;

    case MCD_TLS_NOT_TLS:
        ctx->silent = 1;
        ngx_stream_mcd_refuse(s, NGX_STREAM_BAD_REQUEST, "bad_request",
                              "not a TLS handshake");
        return;

    case MCD_TLS_TOO_BIG:
        ngx_stream_mcd_refuse(s, NGX_STREAM_BAD_REQUEST, "bad_request",
                              "ClientHello larger than preread_buffer_size");
        return;

    default: /* MCD_TLS_ERROR */
        ngx_stream_mcd_refuse(s, NGX_STREAM_BAD_REQUEST, "bad_request",
                              h.detail ? h.detail : "malformed ClientHello");
        return;
    }

    if (rev->timer_set) {
        ngx_del_timer(rev);
    }

    c->log->action = "deciding";

    /* the ClientHello, and whatever follows, waits in the socket */

    rev->handler = ngx_stream_mcd_idle_handler;

    rev->ready = 1;
    rev->available = -1;

    ngx_stream_mcd_transparent_request(s, &h);
}


static void
ngx_stream_mcd_transparent_request(ngx_stream_session_t *s,
    mcd_tls_hello_t *h)
{
    u_char                *p;
    size_t                 len;
    ngx_int_t              rc;
    ngx_addr_t             addr;
    ngx_connection_t      *c;
    ngx_stream_mcd_ctx_t  *ctx;

    c = s->connection;
    ctx = ngx_stream_get_module_ctx(s, ngx_stream_mcd_module);

    ctx->hello = 1;
    ctx->ech = h->ech;

    if (h->alpn) {
        len = h->alpn_len * 4 + 1;

        p = ngx_pnalloc(c->pool, len);
        if (p == NULL) {
            ngx_stream_mcd_finalize(s, NGX_STREAM_INTERNAL_SERVER_ERROR);
            return;
        }

        ctx->alpn.len = mcd_tls_alpn_format(h->alpn, h->alpn_len, p, len);
        ctx->alpn.data = p;
    }

    rc = ngx_stream_mcd_original_dst(s);
    if (rc == NGX_ERROR) {
        ngx_stream_mcd_finalize(s, NGX_STREAM_INTERNAL_SERVER_ERROR);
        return;
    }

    ctx->port = ctx->orig_sockaddr ? ngx_inet_get_port(ctx->orig_sockaddr)
                                   : 443;

    if (!h->has_sni) {

        ctx->decided = 1;

        if (ctx->conf->profile->no_sni == NGX_MCD_NO_SNI_DENY) {
            ctx->action = MCD_ACTION_DENY;
            ngx_str_set(&ctx->rule, "no_sni");
            ngx_stream_mcd_refuse(s, NGX_STREAM_FORBIDDEN, "no_sni",
                                  "ClientHello without SNI");
            return;
        }

        ctx->action = MCD_ACTION_ALLOW;
        ngx_str_set(&ctx->rule, "no_sni");

        if (ctx->orig_sockaddr == NULL) {
            ngx_stream_mcd_refuse(s, NGX_STREAM_FORBIDDEN, "no_sni",
                                  "ClientHello without SNI and "
                                  "no original destination");
            return;
        }

        /* the only case where the client's destination is used */

        ctx->upstream = ctx->original_dst;

        addr.sockaddr = ctx->orig_sockaddr;
        addr.socklen = ctx->orig_socklen;
        ngx_str_null(&addr.name);

        if (ngx_stream_mcd_set_addrs(s, &addr, 1) != NGX_OK) {
            ngx_stream_mcd_finalize(s, NGX_STREAM_INTERNAL_SERVER_ERROR);
            return;
        }

        ngx_stream_mcd_connect(s);
        return;
    }

    ctx->sni.len = h->sni_len;
    ctx->sni.data = ngx_pnalloc(c->pool, h->sni_len);
    if (ctx->sni.data == NULL) {
        ngx_stream_mcd_finalize(s, NGX_STREAM_INTERNAL_SERVER_ERROR);
        return;
    }

    ngx_memcpy(ctx->sni.data, h->sni, h->sni_len);

    ctx->host = ctx->sni;

    if (ngx_stream_mcd_decide(s, ctx->sni.data, ctx->sni.len,
                              "SNI is not a valid host name")
        != NGX_OK)
    {
        return;
    }

    ngx_stream_mcd_act(s);
}


/*
 * the ClientHello is reassembled into a buffer of the worker: the parser
 * keeps no state between calls and what the decision needs (SNI, ALPN) is
 * copied out before the handler returns, so one buffer serves every
 * connection and no connection pays for one
 */

static u_char *
ngx_stream_mcd_scratch(ngx_log_t *log, size_t size)
{
    static u_char  *scratch;
    static size_t   scratch_size;

    if (size > scratch_size) {
        if (scratch != NULL) {
            ngx_free(scratch);
            scratch_size = 0;
        }

        scratch = ngx_alloc(size, log);
        if (scratch == NULL) {
            return NULL;
        }

        scratch_size = size;
    }

    return scratch;
}


/*
 * the client's original destination: SO_ORIGINAL_DST of a REDIRECTed or
 * DNATed connection, when it differs from the listener's own address
 */

static ngx_int_t
ngx_stream_mcd_original_dst(ngx_stream_session_t *s)
{
#if (NGX_LINUX)
    int                    level, name;
    u_char                *p;
    socklen_t              len;
    ngx_sockaddr_t         sa;
    ngx_connection_t      *c;
    ngx_stream_mcd_ctx_t  *ctx;

    c = s->connection;
    ctx = ngx_stream_get_module_ctx(s, ngx_stream_mcd_module);

    if (ngx_connection_local_sockaddr(c, NULL, 0) != NGX_OK) {
        return NGX_ERROR;
    }

    switch (c->local_sockaddr->sa_family) {

    case AF_INET:
        level = SOL_IP;
        name = SO_ORIGINAL_DST;
        break;

#if (NGX_HAVE_INET6)
    case AF_INET6:
        level = SOL_IPV6;
        name = IP6T_SO_ORIGINAL_DST;
        break;
#endif

    default:
        return NGX_DECLINED;
    }

    len = sizeof(ngx_sockaddr_t);
    ngx_memzero(&sa, sizeof(ngx_sockaddr_t));

    if (getsockopt(c->fd, level, name, &sa, &len) == -1) {
        ngx_log_debug1(NGX_LOG_DEBUG_STREAM, c->log, ngx_socket_errno,
                       "mcd: no SO_ORIGINAL_DST (%d)", ngx_socket_errno);
        return NGX_DECLINED;
    }

    if (ngx_cmp_sockaddr(&sa.sockaddr, len, c->local_sockaddr,
                         c->local_socklen, 1)
        == NGX_OK)
    {
        return NGX_DECLINED;
    }

    ctx->orig_sockaddr = ngx_palloc(c->pool, len);
    if (ctx->orig_sockaddr == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(ctx->orig_sockaddr, &sa, len);
    ctx->orig_socklen = len;

    p = ngx_pnalloc(c->pool, NGX_SOCKADDR_STRLEN);
    if (p == NULL) {
        return NGX_ERROR;
    }

    ctx->original_dst.len = ngx_sock_ntop(ctx->orig_sockaddr, len, p,
                                          NGX_SOCKADDR_STRLEN, 1);
    ctx->original_dst.data = p;

    return NGX_OK;
#else
    return NGX_DECLINED;
#endif
}


/* resolution: IP literal, hosts file, then the resolver */


static void
ngx_stream_mcd_resolve(ngx_stream_session_t *s)
{
    ngx_int_t                    rc;
    ngx_addr_t                   addr;
    ngx_connection_t            *c;
    ngx_resolver_ctx_t          *rctx, temp;
    ngx_stream_mcd_ctx_t        *ctx;
    ngx_mcd_hosts_entry_t       *entry;
    ngx_stream_core_srv_conf_t  *cscf;

    c = s->connection;
    ctx = ngx_stream_get_module_ctx(s, ngx_stream_mcd_module);

    c->log->action = "resolving";

    if (ctx->name_type == MCD_NAME_IPV4 || ctx->name_type == MCD_NAME_IPV6) {

        rc = ngx_parse_addr(c->pool, &addr, ctx->fqdn.data, ctx->fqdn.len);

        if (rc != NGX_OK) {
            ngx_stream_mcd_finalize(s, NGX_STREAM_INTERNAL_SERVER_ERROR);
            return;
        }

        if (ngx_stream_mcd_set_addrs(s, &addr, 1) != NGX_OK) {
            ngx_stream_mcd_finalize(s, NGX_STREAM_INTERNAL_SERVER_ERROR);
            return;
        }

        ngx_stream_mcd_addrs_ready(s);
        return;
    }

    entry = ngx_mcd_hosts_lookup((ngx_cycle_t *) ngx_cycle, &ctx->fqdn);

    if (entry != NULL) {
        if (ngx_stream_mcd_set_addrs(s, entry->addrs, entry->naddrs)
            != NGX_OK)
        {
            ngx_stream_mcd_finalize(s, NGX_STREAM_INTERNAL_SERVER_ERROR);
            return;
        }

        ngx_stream_mcd_addrs_ready(s);
        return;
    }

    cscf = ngx_stream_get_module_srv_conf(s, ngx_stream_core_module);

    temp.name = ctx->fqdn;

    rctx = ngx_resolve_start(cscf->resolver, &temp);

    if (rctx == NULL) {
        ngx_stream_mcd_finalize(s, NGX_STREAM_INTERNAL_SERVER_ERROR);
        return;
    }

    if (rctx == NGX_NO_RESOLVER) {
        ngx_stream_mcd_refuse(s, NGX_STREAM_BAD_GATEWAY, "dns",
                              "name not in mcd_hosts_file and "
                              "no resolver configured");
        return;
    }

    rctx->name = ctx->fqdn;
    rctx->handler = ngx_stream_mcd_resolve_handler;
    rctx->data = s;
    rctx->timeout = cscf->resolver_timeout;

    ctx->resolver_ctx = rctx;

    if (ngx_resolve_name(rctx) != NGX_OK) {
        ctx->resolver_ctx = NULL;
        ngx_stream_mcd_refuse(s, NGX_STREAM_BAD_GATEWAY, "dns",
                              "name resolution failed");
        return;
    }
}


static void
ngx_stream_mcd_resolve_handler(ngx_resolver_ctx_t *rctx)
{
    u_char                *detail;
    ngx_int_t              rc;
    ngx_uint_t             i, n;
    ngx_addr_t             addrs[NGX_STREAM_MCD_MAX_ADDRS];
    ngx_stream_session_t  *s;
    ngx_stream_mcd_ctx_t  *ctx;

    s = rctx->data;
    ctx = ngx_stream_get_module_ctx(s, ngx_stream_mcd_module);

    if (rctx->state) {

        /* the reason goes into the one refusal line and the answer */

        detail = ngx_pnalloc(s->connection->pool, NGX_STREAM_MCD_DETAIL);
        if (detail != NULL) {
            *ngx_snprintf(detail, NGX_STREAM_MCD_DETAIL - 1,
                          "name resolution failed (%i: %s)", rctx->state,
                          ngx_resolver_strerror(rctx->state))
                = '\0';
        }

        ngx_resolve_name_done(rctx);
        ctx->resolver_ctx = NULL;

        ngx_stream_mcd_refuse(s, NGX_STREAM_BAD_GATEWAY, "dns",
                              detail ? (char *) detail
                                     : "name resolution failed");
        return;
    }

    n = ngx_min(rctx->naddrs, NGX_STREAM_MCD_MAX_ADDRS);

    for (i = 0; i < n; i++) {
        addrs[i].sockaddr = rctx->addrs[i].sockaddr;
        addrs[i].socklen = rctx->addrs[i].socklen;
        ngx_str_null(&addrs[i].name);
    }

    rc = ngx_stream_mcd_set_addrs(s, addrs, n);

    ngx_resolve_name_done(rctx);
    ctx->resolver_ctx = NULL;

    if (rc != NGX_OK) {
        ngx_stream_mcd_finalize(s, NGX_STREAM_INTERNAL_SERVER_ERROR);
        return;
    }

    ngx_stream_mcd_addrs_ready(s);
}


static ngx_int_t
ngx_stream_mcd_set_addrs(ngx_stream_session_t *s, ngx_addr_t *addrs,
    ngx_uint_t naddrs)
{
    u_char                *p;
    size_t                 len;
    ngx_uint_t             i;
    struct sockaddr       *sa;
    ngx_connection_t      *c;
    ngx_stream_mcd_ctx_t  *ctx;

    c = s->connection;
    ctx = ngx_stream_get_module_ctx(s, ngx_stream_mcd_module);

    if (naddrs > NGX_STREAM_MCD_MAX_ADDRS) {
        naddrs = NGX_STREAM_MCD_MAX_ADDRS;
    }

    ctx->addrs = ngx_palloc(c->pool, naddrs * sizeof(ngx_addr_t));
    if (ctx->addrs == NULL) {
        return NGX_ERROR;
    }

    for (i = 0; i < naddrs; i++) {

        sa = ngx_palloc(c->pool, addrs[i].socklen);
        if (sa == NULL) {
            return NGX_ERROR;
        }

        ngx_memcpy(sa, addrs[i].sockaddr, addrs[i].socklen);
        ngx_inet_set_port(sa, ctx->port);

        p = ngx_pnalloc(c->pool, NGX_SOCKADDR_STRLEN);
        if (p == NULL) {
            return NGX_ERROR;
        }

        len = ngx_sock_ntop(sa, addrs[i].socklen, p, NGX_SOCKADDR_STRLEN, 1);

        ctx->addrs[i].sockaddr = sa;
        ctx->addrs[i].socklen = addrs[i].socklen;
        ctx->addrs[i].name.len = len;
        ctx->addrs[i].name.data = p;
    }

    ctx->naddrs = naddrs;
    ctx->next_addr = 0;

    return NGX_OK;
}


/*
 * with "mcd_verify_destination on", the client's original destination must
 * be one of the addresses the name resolved to
 */

static void
ngx_stream_mcd_addrs_ready(ngx_stream_session_t *s)
{
    ngx_uint_t             i;
    ngx_stream_mcd_ctx_t  *ctx;

    ctx = ngx_stream_get_module_ctx(s, ngx_stream_mcd_module);

    if (ctx->conf->mode == NGX_MCD_MODE_TRANSPARENT
        && ctx->conf->verify_destination
        && ctx->orig_sockaddr != NULL)
    {
        for (i = 0; i < ctx->naddrs; i++) {
            if (ngx_cmp_sockaddr(ctx->addrs[i].sockaddr,
                                 ctx->addrs[i].socklen,
                                 ctx->orig_sockaddr, ctx->orig_socklen, 0)
                == NGX_OK)
            {
                break;
            }
        }

        if (i == ctx->naddrs) {
            ctx->action = MCD_ACTION_DENY;
            ngx_stream_mcd_refuse(s, NGX_STREAM_FORBIDDEN, "dst_mismatch",
                                  "original destination is not an address "
                                  "of the SNI");
            return;
        }
    }

    ngx_stream_mcd_connect(s);
}


/* connect: each resolved address in turn */


static void
ngx_stream_mcd_connect(ngx_stream_session_t *s)
{
    ngx_int_t                   rc;
    ngx_addr_t                 *addr;
    ngx_connection_t           *c, *pc;
    ngx_stream_mcd_ctx_t       *ctx;

    c = s->connection;
    ctx = ngx_stream_get_module_ctx(s, ngx_stream_mcd_module);

    c->log->action = "connecting to upstream";

    if (ctx->next_addr >= ctx->naddrs) {
        if (ctx->failure == NGX_STREAM_MCD_TIMEOUT_FAILURE) {
            ngx_stream_mcd_refuse(s, 504, "timeout",
                                  "upstream connect timed out");

        } else {
            ngx_stream_mcd_refuse(s, NGX_STREAM_BAD_GATEWAY, "connect",
                                  "upstream connect failed");
        }

        return;
    }

    addr = &ctx->addrs[ctx->next_addr++];

    ctx->upstream_addr = addr->name;

    if (s->upstream_states == NULL) {
        s->upstream_states = ngx_array_create(c->pool, 1,
                                        sizeof(ngx_stream_upstream_state_t));
        if (s->upstream_states == NULL) {
            ngx_stream_mcd_finalize(s, NGX_STREAM_INTERNAL_SERVER_ERROR);
            return;
        }
    }

    ctx->state = ngx_array_push(s->upstream_states);
    if (ctx->state == NULL) {
        ngx_stream_mcd_finalize(s, NGX_STREAM_INTERNAL_SERVER_ERROR);
        return;
    }

    ngx_memzero(ctx->state, sizeof(ngx_stream_upstream_state_t));

    ctx->state->connect_time = (ngx_msec_t) -1;
    ctx->state->first_byte_time = (ngx_msec_t) -1;
    ctx->state->response_time = (ngx_msec_t) -1;
    ctx->state->peer = &addr->name;

    ctx->connect_start = ngx_current_msec;

    ngx_memzero(&ctx->peer, sizeof(ngx_peer_connection_t));

    ctx->peer.sockaddr = addr->sockaddr;
    ctx->peer.socklen = addr->socklen;
    ctx->peer.name = &addr->name;
    ctx->peer.get = ngx_event_get_peer;
    ctx->peer.log = c->log;
    ctx->peer.log_error = NGX_ERROR_INFO;   /* the refusal line says it */
    ctx->peer.type = SOCK_STREAM;
    ctx->peer.tries = 1;

    rc = ngx_event_connect_peer(&ctx->peer);

    ngx_log_debug2(NGX_LOG_DEBUG_STREAM, c->log, 0,
                   "mcd connect to %V: %i", &addr->name, rc);

    if (rc == NGX_ERROR || rc == NGX_BUSY || rc == NGX_DECLINED) {
        ngx_stream_mcd_next_addr(s, NGX_STREAM_MCD_CONNECT_FAILURE);
        return;
    }

    /* rc == NGX_OK || rc == NGX_AGAIN */

    pc = ctx->peer.connection;

    pc->data = s;
    pc->log = c->log;
    pc->pool = c->pool;
    pc->read->log = c->log;
    pc->write->log = c->log;

    if (rc == NGX_OK) {
        ngx_stream_mcd_connected(s);
        return;
    }

    pc->read->handler = ngx_stream_mcd_connect_handler;
    pc->write->handler = ngx_stream_mcd_connect_handler;

    ngx_add_timer(pc->write, ctx->conf->connect_timeout);
}


static void
ngx_stream_mcd_connect_handler(ngx_event_t *ev)
{
    ngx_connection_t      *pc;
    ngx_stream_session_t  *s;

    pc = ev->data;
    s = pc->data;

    if (ev->timedout) {
        ngx_log_error(NGX_LOG_INFO, pc->log, NGX_ETIMEDOUT,
                      "mcd: upstream connect timed out");
        ngx_stream_mcd_next_addr(s, NGX_STREAM_MCD_TIMEOUT_FAILURE);
        return;
    }

    if (pc->write->timer_set) {
        ngx_del_timer(pc->write);
    }

    if (ngx_stream_mcd_test_connect(pc) != NGX_OK) {
        ngx_stream_mcd_next_addr(s, NGX_STREAM_MCD_CONNECT_FAILURE);
        return;
    }

    ngx_stream_mcd_connected(s);
}


static ngx_int_t
ngx_stream_mcd_test_connect(ngx_connection_t *c)
{
    int        err;
    socklen_t  len;

    err = 0;
    len = sizeof(int);

    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, (void *) &err, &len) == -1) {
        err = ngx_socket_errno;
    }

    if (err) {
        (void) ngx_connection_error(c, err, "connect() failed");
        return NGX_ERROR;
    }

    return NGX_OK;
}


static void
ngx_stream_mcd_next_addr(ngx_stream_session_t *s, ngx_uint_t failure)
{
    ngx_stream_mcd_ctx_t  *ctx;

    ctx = ngx_stream_get_module_ctx(s, ngx_stream_mcd_module);

    ctx->failure = failure;

    if (ctx->state) {
        ctx->state->response_time = ngx_current_msec - ctx->connect_start;
    }

    ngx_stream_mcd_close_peer(s);
    ngx_stream_mcd_connect(s);
}


static void
ngx_stream_mcd_close_peer(ngx_stream_session_t *s)
{
    ngx_connection_t      *pc;
    ngx_stream_mcd_ctx_t  *ctx;

    ctx = ngx_stream_get_module_ctx(s, ngx_stream_mcd_module);

    pc = ctx->peer.connection;

    if (pc == NULL) {
        return;
    }

    if (ctx->state) {
        ctx->state->bytes_received = ctx->upstream_received;
        ctx->state->bytes_sent = pc->sent;
    }

    ngx_close_connection(pc);
    ctx->peer.connection = NULL;
}


static void
ngx_stream_mcd_connected(ngx_stream_session_t *s)
{
    u_char                      *p;
    ngx_connection_t            *c, *pc;
    ngx_stream_mcd_ctx_t        *ctx;
    ngx_stream_core_srv_conf_t  *cscf;

    static u_char  established[] =
        "HTTP/1.1 200 Connection established" CRLF CRLF;

    c = s->connection;
    ctx = ngx_stream_get_module_ctx(s, ngx_stream_mcd_module);
    pc = ctx->peer.connection;

    cscf = ngx_stream_get_module_srv_conf(s, ngx_stream_core_module);

    if (cscf->tcp_nodelay && ngx_tcp_nodelay(pc) != NGX_OK) {
        ngx_stream_mcd_next_addr(s, NGX_STREAM_MCD_CONNECT_FAILURE);
        return;
    }

    ctx->state->connect_time = ngx_current_msec - ctx->connect_start;
    ctx->connected = 1;

    ngx_log_debug1(NGX_LOG_DEBUG_STREAM, c->log, 0,
                   "mcd connected to %V", &ctx->upstream_addr);

    /* the peek buffer, no longer needed, carries client bytes upstream */

    if (ctx->peek != NULL && ctx->peek_size >= ctx->conf->buffer_size) {
        p = ctx->peek;

    } else {
        if (ctx->peek != NULL) {
            ngx_pfree(c->pool, ctx->peek);
        }

        p = ngx_palloc(c->pool, ctx->conf->buffer_size);
        if (p == NULL) {
            ngx_stream_mcd_finalize(s, NGX_STREAM_INTERNAL_SERVER_ERROR);
            return;
        }
    }

    ctx->peek = NULL;

    ctx->upstream_buf.start = p;
    ctx->upstream_buf.pos = p;
    ctx->upstream_buf.last = p;
    ctx->upstream_buf.end = p + ctx->conf->buffer_size;

    p = ngx_palloc(c->pool, ctx->conf->buffer_size);
    if (p == NULL) {
        ngx_stream_mcd_finalize(s, NGX_STREAM_INTERNAL_SERVER_ERROR);
        return;
    }

    ctx->downstream_buf.start = p;
    ctx->downstream_buf.pos = p;
    ctx->downstream_buf.last = p;
    ctx->downstream_buf.end = p + ctx->conf->buffer_size;

    if (ctx->conf->mode == NGX_MCD_MODE_EXPLICIT) {
        ctx->downstream_buf.last = ngx_cpymem(p, established,
                                              sizeof(established) - 1);
    }

    c->log->action = "relaying";

    c->read->handler = ngx_stream_mcd_relay_handler;
    c->write->handler = ngx_stream_mcd_relay_handler;
    pc->read->handler = ngx_stream_mcd_relay_handler;
    pc->write->handler = ngx_stream_mcd_relay_handler;

    ngx_stream_mcd_relay(s);
}


/* the relay */


static void
ngx_stream_mcd_relay_handler(ngx_event_t *ev)
{
    ngx_connection_t           *c;
    ngx_stream_session_t       *s;
    ngx_stream_mcd_srv_conf_t  *mscf;

    c = ev->data;
    s = c->data;

    if (ev->timedout) {
        ev->timedout = 0;

        mscf = ngx_stream_get_module_srv_conf(s, ngx_stream_mcd_module);

        ngx_log_error(NGX_LOG_INFO, s->connection->log, 0,
                      "mcd: tunnel idle for %M ms, closing",
                      mscf->idle_timeout);

        ngx_stream_mcd_finalize(s, NGX_STREAM_OK);
        return;
    }

    if (c->close) {
        ngx_log_error(NGX_LOG_INFO, s->connection->log, 0,
                      "mcd: tunnel closed on worker shutdown");
        ngx_stream_mcd_finalize(s, NGX_STREAM_OK);
        return;
    }

    ngx_stream_mcd_relay(s);
}


static void
ngx_stream_mcd_relay(ngx_stream_session_t *s)
{
    unsigned               moved;
    ngx_connection_t      *c, *pc;
    ngx_stream_mcd_ctx_t  *ctx;

    c = s->connection;
    ctx = ngx_stream_get_module_ctx(s, ngx_stream_mcd_module);
    pc = ctx->peer.connection;

    moved = 0;

    if (ngx_stream_mcd_pump(ctx, c, pc, &ctx->upstream_buf,
                            &ctx->upstream_pipe, &s->received, &moved)
        != NGX_OK)
    {
        ngx_stream_mcd_finalize(s, NGX_STREAM_OK);
        return;
    }

    if (ngx_stream_mcd_pump(ctx, pc, c, &ctx->downstream_buf,
                            &ctx->downstream_pipe, &ctx->upstream_received,
                            &moved)
        != NGX_OK)
    {
        ngx_stream_mcd_finalize(s, NGX_STREAM_OK);
        return;
    }

    if (ctx->upstream_received && ctx->state->first_byte_time
                                  == (ngx_msec_t) -1)
    {
        ctx->state->first_byte_time = ngx_current_msec - ctx->connect_start;
    }

    if (ctx->upstream_shut && ctx->client_shut) {
        ngx_log_error(NGX_LOG_INFO, c->log, 0,
                      "mcd: tunnel done, bytes from/to client:%O/%O, "
                      "bytes from/to upstream:%O/%O",
                      s->received, c->sent, ctx->upstream_received, pc->sent);

        ngx_stream_mcd_finalize(s, NGX_STREAM_OK);
        return;
    }

    if (ngx_handle_read_event(c->read, 0) != NGX_OK
        || ngx_handle_read_event(pc->read, 0) != NGX_OK
        || ngx_handle_write_event(c->write, 0) != NGX_OK
        || ngx_handle_write_event(pc->write, 0) != NGX_OK)
    {
        ngx_stream_mcd_finalize(s, NGX_STREAM_INTERNAL_SERVER_ERROR);
        return;
    }

    /* the idle timer lives on the client's read event */

    if (moved || !c->read->timer_set) {
        ngx_add_timer(c->read, ctx->conf->idle_timeout);
    }
}


/*
 * move bytes from src to dst through b (and, for bulk tunnels, the pipe);
 * on EOF from src, once everything is passed on, pass the FIN on with
 * shutdown(SHUT_WR)
 */

static ngx_int_t
ngx_stream_mcd_pump(ngx_stream_mcd_ctx_t *ctx, ngx_connection_t *src,
    ngx_connection_t *dst, ngx_buf_t *b, ngx_stream_mcd_pipe_t *pp,
    off_t *received, unsigned *moved)
{
    size_t     size;
    ssize_t    n;
    unsigned  *eof, *shut;

    if (src == ctx->session->connection) {
        eof = &ctx->client_eof;
        shut = &ctx->upstream_shut;

    } else {
        eof = &ctx->upstream_eof;
        shut = &ctx->client_shut;
    }

    for ( ;; ) {

        if (b->pos < b->last && dst->write->ready) {

            n = dst->send(dst, b->pos, b->last - b->pos);

            if (n == NGX_ERROR) {
                return NGX_ERROR;
            }

            if (n > 0) {
                b->pos += n;
                *moved = 1;
            }
        }

        if (b->pos == b->last) {
            b->pos = b->start;
            b->last = b->start;

#if (NGX_LINUX)
            if (pp->fd[0] != -1) {
                /* the buffer is drained: the pipe takes over */

                if (ngx_stream_mcd_splice(src, dst, pp, eof, received, moved)
                    != NGX_OK)
                {
                    return NGX_ERROR;
                }

                break;
            }
#endif
        }

        size = b->end - b->last;

        if (size == 0 || *eof || !src->read->ready) {
            break;
        }

        n = src->recv(src, b->last, size);

        if (n == NGX_AGAIN) {
            break;
        }

        if (n == NGX_ERROR) {
            return NGX_ERROR;
        }

        if (n == 0) {
            *eof = 1;
            break;
        }

        b->last += n;
        *received += n;
        *moved = 1;

#if (NGX_LINUX)
        pp->relayed += n;

        if (ctx->conf->splice && pp->fd[0] == -1 && !pp->failed
            && pp->relayed >= NGX_STREAM_MCD_SPLICE_AFTER)
        {
            if (pipe2(pp->fd, O_NONBLOCK|O_CLOEXEC) == -1) {
                ngx_log_error(NGX_LOG_ALERT, src->log, ngx_errno,
                              "pipe2() failed, relaying without splice");
                pp->fd[0] = -1;
                pp->fd[1] = -1;
                pp->failed = 1;

            } else {
                /* fewer, larger moves; the default 64 KiB if refused */
                n = fcntl(pp->fd[1], F_SETPIPE_SZ, NGX_STREAM_MCD_SPLICE_MAX);
                pp->size = (n > 0) ? (size_t) n : 65536;
            }
        }
#endif
    }

    if (*eof && !*shut && b->pos == b->last && pp->pending == 0) {

        if (ngx_shutdown_socket(dst->fd, NGX_WRITE_SHUTDOWN) == -1) {
            ngx_connection_error(dst, ngx_socket_errno,
                                 ngx_shutdown_socket_n " failed");
            return NGX_ERROR;
        }

        *shut = 1;
    }

    return NGX_OK;
}


#if (NGX_LINUX)

static ngx_int_t
ngx_stream_mcd_splice(ngx_connection_t *src, ngx_connection_t *dst,
    ngx_stream_mcd_pipe_t *pp, unsigned *eof, off_t *received,
    unsigned *moved)
{
    int        avail;
    ssize_t    n;
    ngx_err_t  err;

    for ( ;; ) {

        if (pp->pending && dst->write->ready) {

            n = splice(pp->fd[0], NULL, dst->fd, NULL, pp->pending,
                       SPLICE_F_MOVE|SPLICE_F_NONBLOCK);

            if (n == -1) {
                err = ngx_socket_errno;

                if (err == NGX_EAGAIN) {
                    dst->write->ready = 0;

                } else if (err != NGX_EINTR) {
                    dst->write->error = 1;
                    ngx_connection_error(dst, err, "splice() to socket failed");
                    return NGX_ERROR;
                }

            } else {
                pp->pending -= n;
                dst->sent += n;
                *moved = 1;
            }
        }

        if (*eof || !src->read->ready || pp->pending >= pp->size) {
            break;
        }

        /* fill the pipe from the socket, also while the client drains it */

        n = splice(src->fd, NULL, pp->fd[1], NULL, pp->size - pp->pending,
                   SPLICE_F_MOVE|SPLICE_F_NONBLOCK);

        if (n == -1) {
            err = ngx_socket_errno;

            if (err == NGX_EINTR) {
                continue;
            }

            if (err != NGX_EAGAIN) {
                src->read->error = 1;
                ngx_connection_error(src, err, "splice() from socket failed");
                return NGX_ERROR;
            }

            /*
             * EAGAIN: the socket is empty, or a pipe that holds bytes has
             * no free slot; only the first may clear the edge-triggered
             * readiness
             */

            if (pp->pending == 0
                || ioctl(src->fd, FIONREAD, &avail) == -1
                || avail == 0)
            {
                src->read->ready = 0;
                break;
            }

            /* the pipe is full: drain it first, or wait for the client */

            if (dst->write->ready) {
                continue;
            }

            break;
        }

        if (n == 0) {
            *eof = 1;
            src->read->ready = 0;
            src->read->eof = 1;
            break;
        }

        pp->pending += n;
        *received += n;
        *moved = 1;
    }

    return NGX_OK;
}

#endif


static void
ngx_stream_mcd_close_pipes(ngx_stream_mcd_ctx_t *ctx)
{
    ngx_uint_t              i;
    ngx_stream_mcd_pipe_t  *pp[2];

    pp[0] = &ctx->upstream_pipe;
    pp[1] = &ctx->downstream_pipe;

    for (i = 0; i < 2; i++) {
        if (pp[i]->fd[0] != -1) {
            (void) close(pp[i]->fd[0]);
            (void) close(pp[i]->fd[1]);
            pp[i]->fd[0] = -1;
            pp[i]->fd[1] = -1;
        }
    }
}


/* refusals: an answer, a lingering close, one log line */


static unsigned
ngx_stream_mcd_alert(const char *reason)
{
    if (ngx_strcmp(reason, "bad_request") == 0) {
        return MCD_TLS_ALERT_DECODE_ERROR;
    }

    if (ngx_strcmp(reason, "no_sni") == 0) {
        return MCD_TLS_ALERT_UNRECOGNIZED_NAME;
    }

    if (ngx_strcmp(reason, "dns") == 0
        || ngx_strcmp(reason, "connect") == 0
        || ngx_strcmp(reason, "timeout") == 0)
    {
        return MCD_TLS_ALERT_INTERNAL_ERROR;
    }

    if (ngx_strcmp(reason, "decrypt_unavailable") == 0) {
        return MCD_TLS_ALERT_HANDSHAKE_FAILURE;
    }

    /* policy, bad_name, dst_mismatch */

    return MCD_TLS_ALERT_ACCESS_DENIED;
}


static ngx_int_t
ngx_stream_mcd_http_answer(ngx_stream_session_t *s, ngx_uint_t status,
    const char *text, const char *detail)
{
    u_char                *p;
    size_t                 len, body;
    ngx_stream_mcd_ctx_t  *ctx;

    ctx = ngx_stream_get_module_ctx(s, ngx_stream_mcd_module);

    body = ngx_strlen(detail) + ctx->reason.len + sizeof(": \n") - 1;

    len = sizeof("HTTP/1.1 999 " CRLF) - 1 + ngx_strlen(text)
          + sizeof("Content-Type: text/plain" CRLF) - 1
          + sizeof("Content-Length: " CRLF) - 1 + NGX_SIZE_T_LEN
          + sizeof("Connection: close" CRLF CRLF) - 1
          + body;

    p = ngx_pnalloc(s->connection->pool, len);
    if (p == NULL) {
        return NGX_ERROR;
    }

    ctx->answer.start = p;
    ctx->answer.pos = p;

    p = ngx_sprintf(p, "HTTP/1.1 %ui %s" CRLF
                       "Content-Type: text/plain" CRLF
                       "Content-Length: %uz" CRLF
                       "Connection: close" CRLF CRLF
                       "%V: %s\n",
                    status, text, body, &ctx->reason, detail);

    ctx->answer.last = p;
    ctx->answer.end = p;

    return NGX_OK;
}


static void
ngx_stream_mcd_refuse(ngx_stream_session_t *s, ngx_uint_t status,
    const char *reason, const char *detail)
{
    u_char                *p;
    ngx_uint_t             level, log_status;
    ngx_connection_t      *c;
    ngx_stream_mcd_ctx_t  *ctx;
    const char            *text;

    c = s->connection;
    ctx = ngx_stream_get_module_ctx(s, ngx_stream_mcd_module);

    ctx->reason.data = (u_char *) reason;
    ctx->reason.len = ngx_strlen(reason);

    if (!ctx->decided) {
        ctx->decided = 1;
        ctx->action = MCD_ACTION_DENY;
    }

    switch (status) {
    case 400: text = "Bad Request"; break;
    case 403: text = "Forbidden"; break;
    case 405: text = "Method Not Allowed"; break;
    case 408: text = "Request Timeout"; break;
    case 431: text = "Request Header Fields Too Large"; break;
    case 501: text = "Not Implemented"; break;
    case 502: text = "Bad Gateway"; break;
    case 504: text = "Gateway Timeout"; break;
    default:  text = "Internal Server Error"; break;
    }

    switch (status) {
    case 405:
    case 408:
    case 431:
        log_status = NGX_STREAM_BAD_REQUEST;
        break;
    default:
        log_status = status;
    }

    level = (status == 403 || status >= 500) ? NGX_LOG_WARN : NGX_LOG_INFO;

    ngx_log_error(level, c->log, 0,
                  "mcd %V: refused \"%V\" from %V: %d, fqdn \"%V\", "
                  "rule \"%V\", profile \"%V\", reason \"%s\": %s",
                  &ngx_stream_mcd_modes[ctx->conf->mode],
                  ctx->upstream.len ? &ctx->upstream : &ctx->host,
                  &c->addr_text, (int) status, &ctx->fqdn, &ctx->rule,
                  &ctx->conf->profile->name, reason, detail);

    if (ctx->conf->mode == NGX_MCD_MODE_EXPLICIT) {
        if (ngx_stream_mcd_http_answer(s, status, text, detail) != NGX_OK) {
            ngx_stream_mcd_finalize(s, NGX_STREAM_INTERNAL_SERVER_ERROR);
            return;
        }

    } else if (!ctx->silent) {
        p = ngx_pnalloc(c->pool, MCD_TLS_ALERT_LEN);
        if (p == NULL) {
            ngx_stream_mcd_finalize(s, NGX_STREAM_INTERNAL_SERVER_ERROR);
            return;
        }

        ctx->answer.start = p;
        ctx->answer.pos = p;
        ctx->answer.last = p + mcd_tls_alert(p,
                                           ngx_stream_mcd_alert(reason));
        ctx->answer.end = ctx->answer.last;
    }

    s->status = log_status;

    if (ctx->peer.connection) {
        ngx_stream_mcd_close_peer(s);
    }

    c->log->action = "sending refusal";

    c->read->handler = ngx_stream_mcd_linger_handler;
    c->write->handler = ngx_stream_mcd_answer_handler;

    if (c->read->timer_set) {
        ngx_del_timer(c->read);
    }

    c->read->timedout = 0;

    ngx_add_timer(c->read, NGX_STREAM_MCD_LINGER_TIME);

    ngx_stream_mcd_answer_handler(c->write);
}


static void
ngx_stream_mcd_answer_handler(ngx_event_t *wev)
{
    ssize_t                n;
    ngx_connection_t      *c;
    ngx_stream_session_t  *s;
    ngx_stream_mcd_ctx_t  *ctx;

    c = wev->data;
    s = c->data;
    ctx = ngx_stream_get_module_ctx(s, ngx_stream_mcd_module);

    while (ctx->answer.pos < ctx->answer.last) {

        n = c->send(c, ctx->answer.pos, ctx->answer.last - ctx->answer.pos);

        if (n == NGX_AGAIN) {
            if (ngx_handle_write_event(wev, 0) != NGX_OK) {
                ngx_stream_mcd_finalize(s, s->status);
            }

            return;
        }

        if (n == NGX_ERROR) {
            ngx_stream_mcd_finalize(s, s->status);
            return;
        }

        ctx->answer.pos += n;
    }

    /* all sent: pass a FIN and read what the client still sends */

    wev->handler = ngx_stream_mcd_idle_handler;

    if (ngx_shutdown_socket(c->fd, NGX_WRITE_SHUTDOWN) == -1) {
        ngx_stream_mcd_finalize(s, s->status);
        return;
    }

    c->read->ready = 1;
    ngx_stream_mcd_linger_handler(c->read);
}


static void
ngx_stream_mcd_linger_handler(ngx_event_t *rev)
{
    ssize_t                n;
    u_char                 buf[NGX_STREAM_MCD_LINGER_BUFFER];
    ngx_connection_t      *c;
    ngx_stream_session_t  *s;
    ngx_stream_mcd_ctx_t  *ctx;

    c = rev->data;
    s = c->data;
    ctx = ngx_stream_get_module_ctx(s, ngx_stream_mcd_module);

    if (rev->timedout) {
        ngx_stream_mcd_finalize(s, s->status);
        return;
    }

    if (ctx->answer.pos < ctx->answer.last) {
        /* still sending: the bytes stay in the socket for now */
        return;
    }

    while (rev->ready) {

        n = recv(c->fd, buf, sizeof(buf), 0);

        if (n == 0) {
            ngx_stream_mcd_finalize(s, s->status);
            return;
        }

        if (n == -1) {
            if (ngx_socket_errno == NGX_EAGAIN) {
                rev->ready = 0;
                break;
            }

            if (ngx_socket_errno == NGX_EINTR) {
                continue;
            }

            ngx_stream_mcd_finalize(s, s->status);
            return;
        }

        ctx->lingered += n;

        if (ctx->lingered > NGX_STREAM_MCD_LINGER_BYTES) {
            ngx_stream_mcd_finalize(s, s->status);
            return;
        }
    }

    if (ngx_handle_read_event(rev, 0) != NGX_OK) {
        ngx_stream_mcd_finalize(s, s->status);
    }
}


static void
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


static void
ngx_stream_mcd_finalize(ngx_stream_session_t *s, ngx_uint_t status)
{
    ngx_stream_mcd_ctx_t  *ctx;

    ctx = ngx_stream_get_module_ctx(s, ngx_stream_mcd_module);

    if (ctx != NULL) {
        if (ctx->finalized) {
            return;
        }

        ctx->finalized = 1;

        if (ctx->resolver_ctx) {
            ngx_resolve_name_done(ctx->resolver_ctx);
            ctx->resolver_ctx = NULL;
        }

        if (ctx->state && ctx->state->response_time == (ngx_msec_t) -1) {
            ctx->state->response_time = ngx_current_msec
                                        - ctx->connect_start;
        }

        ngx_stream_mcd_close_peer(s);
        ngx_stream_mcd_close_pipes(ctx);

        if (ctx->reason.len == 0 && status == NGX_STREAM_INTERNAL_SERVER_ERROR)
        {
            ngx_str_set(&ctx->reason, "internal");
        }
    }

    ngx_stream_finalize_session(s, status);
}


static void
ngx_stream_mcd_cleanup(void *data)
{
    ngx_stream_mcd_ctx_t  *ctx = data;

    if (ctx->resolver_ctx) {
        ngx_resolve_name_done(ctx->resolver_ctx);
        ctx->resolver_ctx = NULL;
    }

    if (ctx->peer.connection) {
        ngx_close_connection(ctx->peer.connection);
        ctx->peer.connection = NULL;
    }

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
ngx_stream_mcd_variable_profile(ngx_stream_session_t *s,
    ngx_stream_variable_value_t *v, uintptr_t data)
{
    ngx_stream_mcd_srv_conf_t  *mscf;

    mscf = ngx_stream_get_module_srv_conf(s, ngx_stream_mcd_module);

    if (mscf->profile == NULL) {
        v->not_found = 1;
        return NGX_OK;
    }

    v->data = mscf->profile->name.data;
    v->len = mscf->profile->name.len;
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

    v->data = ngx_stream_mcd_modes[mscf->mode].data;
    v->len = ngx_stream_mcd_modes[mscf->mode].len;
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

    return NGX_OK;
}


/* configuration */


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
    conf->connect_timeout = NGX_CONF_UNSET_MSEC;
    conf->idle_timeout = NGX_CONF_UNSET_MSEC;
    conf->buffer_size = NGX_CONF_UNSET_SIZE;
    conf->verify_destination = NGX_CONF_UNSET;
    conf->splice = NGX_CONF_UNSET;

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
    ngx_conf_merge_size_value(conf->buffer_size, prev->buffer_size, 16384);
    ngx_conf_merge_value(conf->verify_destination, prev->verify_destination,
                         0);
    ngx_conf_merge_value(conf->splice, prev->splice, 0);

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

    ngx_str_t  *value;

    if (mscf->profile_name.data != NULL) {
        return "is duplicate";
    }

    value = cf->args->elts;

    mscf->profile_name = value[1];

    if (ngx_mcd_add_profile_ref(cf, &value[1], &mscf->profile) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static char *
ngx_stream_mcd_connect_ports(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_stream_mcd_srv_conf_t  *mscf = conf;

    ngx_int_t    n;
    ngx_str_t   *value;
    in_port_t   *port;
    ngx_uint_t   i;

    if (mscf->connect_ports != NGX_CONF_UNSET_PTR) {
        return "is duplicate";
    }

    mscf->connect_ports = ngx_array_create(cf->pool, cf->args->nelts - 1,
                                           sizeof(in_port_t));
    if (mscf->connect_ports == NULL) {
        return NGX_CONF_ERROR;
    }

    value = cf->args->elts;

    for (i = 1; i < cf->args->nelts; i++) {
        n = ngx_atoi(value[i].data, value[i].len);

        if (n < 1 || n > 65535) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid port \"%V\"", &value[i]);
            return NGX_CONF_ERROR;
        }

        port = ngx_array_push(mscf->connect_ports);
        if (port == NULL) {
            return NGX_CONF_ERROR;
        }

        *port = (in_port_t) n;
    }

    return NGX_CONF_OK;
}
