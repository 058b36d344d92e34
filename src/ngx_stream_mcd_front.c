
/*
 * Copyright (C) ngx_mcd authors
 *
 * The front door.  "mcd_proxy explicit" consumes an HTTP CONNECT head as it
 * arrives, never a byte past its end; "mcd_proxy transparent" peeks at the
 * ClientHello and consumes nothing.  Either way each byte is looked at a
 * bounded number of times, however the client cuts its bytes into
 * segments.  Both then decide with the FQDN filter profile and, for an
 * allowed name, run the upstream step while watching the client: one that
 * leaves, or a worker that shuts down, stops the step at once.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_stream.h>

#include "ngx_stream_mcd.h"

#if (NGX_HTTP_SSL)
#include <ngx_http.h>

ngx_int_t ngx_http_mcd_intercepts(ngx_listening_t *ls);
ngx_int_t ngx_http_mcd_forwards(ngx_listening_t *ls);
#endif


#if (NGX_LINUX)
#ifndef SO_ORIGINAL_DST
#define SO_ORIGINAL_DST                80
#endif
#ifndef IP6T_SO_ORIGINAL_DST
#define IP6T_SO_ORIGINAL_DST           80
#endif
#endif


/* the first token of a request is decided within this many bytes */
#define NGX_STREAM_MCD_METHOD_PEEK     64


static ngx_int_t ngx_stream_mcd_front_closed(ngx_stream_session_t *s);
static ngx_int_t ngx_stream_mcd_read_head(ngx_stream_session_t *s);
static void ngx_stream_mcd_explicit_request(ngx_stream_session_t *s,
    mcd_connect_t *req);
static ssize_t ngx_stream_mcd_peek(ngx_stream_session_t *s, size_t size);
static void ngx_stream_mcd_peek_more(ngx_stream_session_t *s,
    const char *truncated);
static void ngx_stream_mcd_lowat(ngx_stream_session_t *s, int lowat);
static ngx_int_t ngx_stream_mcd_decide(ngx_stream_session_t *s, u_char *name,
    size_t len, const char *what);
static ngx_int_t ngx_stream_mcd_set_upstream(ngx_stream_session_t *s);
static void ngx_stream_mcd_act(ngx_stream_session_t *s);
static void ngx_stream_mcd_transparent_request(ngx_stream_session_t *s,
    mcd_tls_hello_t *h);
static u_char *ngx_stream_mcd_scratch(ngx_log_t *log, size_t size);
static ngx_int_t ngx_stream_mcd_original_dst(ngx_stream_session_t *s);
static void ngx_stream_mcd_upstream(ngx_stream_session_t *s,
    ngx_addr_t *fixed);
static void ngx_stream_mcd_wait_handler(ngx_event_t *rev);
static ngx_int_t ngx_stream_mcd_check_addrs(ngx_mcd_upstream_t *u);
static ngx_int_t ngx_stream_mcd_attempt(ngx_mcd_upstream_t *u,
    ngx_addr_t *addr);
static void ngx_stream_mcd_upstream_done(ngx_mcd_upstream_t *u,
    ngx_int_t rc);
static void ngx_stream_mcd_decrypt(ngx_stream_session_t *s);
static void ngx_stream_mcd_http_pass(ngx_stream_session_t *s);
static void ngx_stream_mcd_rehome(ngx_stream_session_t *s,
    ngx_listening_t *ls);
static ngx_int_t ngx_stream_mcd_next_try(ngx_stream_session_t *s);
static ngx_int_t ngx_stream_mcd_profile(ngx_stream_session_t *s);


/* explicit: the CONNECT head */


void
ngx_stream_mcd_explicit_handler(ngx_event_t *rev)
{
    ssize_t                n;
    ngx_int_t              rc;
    mcd_connect_t          req;
    ngx_connection_t      *c;
    ngx_stream_session_t  *s;
    ngx_stream_mcd_ctx_t  *ctx;

    c = rev->data;
    s = c->data;
    ctx = ngx_stream_get_module_ctx(s, ngx_stream_mcd_module);

    if (ngx_stream_mcd_front_closed(s) != NGX_OK) {
        return;
    }

    if (ctx->auth_pending && ngx_stream_mcd_next_try(s) != NGX_OK) {
        return;
    }

    if (rev->timedout) {
        ngx_stream_mcd_refuse(s, 408, NGX_MCD_REASON_BAD_REQUEST,
                              "timed out reading the CONNECT request");
        return;
    }

    if (ctx->head_len == 0) {

        /* nothing is consumed before the first token says CONNECT */

        n = ngx_stream_mcd_peek(s, ngx_min(ctx->peek_size,
                                           NGX_STREAM_MCD_METHOD_PEEK));
        if (n <= 0) {
            return;
        }

        ctx->peeked = n;

        switch (mcd_connect_method(ctx->peek, n)) {

        case MCD_CONNECT_OK:
            break;

        case MCD_CONNECT_AGAIN:
            if (n == NGX_STREAM_MCD_METHOD_PEEK
                || (size_t) n == ctx->peek_size)
            {
                ngx_stream_mcd_refuse(s, NGX_STREAM_BAD_REQUEST,
                                      NGX_MCD_REASON_BAD_REQUEST,
                                      "malformed request line");
                return;
            }

            ngx_stream_mcd_peek_more(s, "truncated CONNECT request");
            return;

        case MCD_CONNECT_OTHER:
            if (ctx->conf->http_pass.addr != NULL) {
                ngx_stream_mcd_http_pass(s);
                return;
            }

            ngx_stream_mcd_refuse(s, 405, NGX_MCD_REASON_BAD_REQUEST,
                                  "only CONNECT is supported on this port");
            return;

        default: /* MCD_CONNECT_ERROR */
            ngx_stream_mcd_refuse(s, NGX_STREAM_BAD_REQUEST,
                                  NGX_MCD_REASON_BAD_REQUEST,
                                  "malformed request line");
            return;
        }
    }

    rc = ngx_stream_mcd_read_head(s);

    if (rc != NGX_OK) {
        return;
    }

    rc = mcd_connect_parse(ctx->peek, ctx->head_len, ctx->peek_size, &req);

    if (rc != MCD_CONNECT_OK) {
        if (rc == MCD_CONNECT_ERROR) {
            ngx_stream_mcd_refuse(s, req.status, NGX_MCD_REASON_BAD_REQUEST,
                                  req.detail);
            return;
        }

        ngx_stream_mcd_refuse(s, NGX_STREAM_BAD_REQUEST,
                              NGX_MCD_REASON_BAD_REQUEST,
                              "malformed CONNECT request");
        return;
    }

    s->received += ctx->head_len;

    c->log->action = "deciding";

    if (rev->timer_set) {
        ngx_del_timer(rev);
    }

    ngx_stream_mcd_explicit_request(s, &req);
}


/*
 * consume the head as it arrives: peek at what is new (everything before
 * it is consumed already), find how much of it is head, consume exactly
 * that; NGX_OK once the empty line ending the head is consumed
 */

static ngx_int_t
ngx_stream_mcd_read_head(ngx_stream_session_t *s)
{
    u_char                *p;
    size_t                 k, got;
    ssize_t                n;
    ngx_err_t              err;
    mcd_connect_t          req;
    ngx_connection_t      *c;
    ngx_stream_mcd_ctx_t  *ctx;

    c = s->connection;
    ctx = ngx_stream_get_module_ctx(s, ngx_stream_mcd_module);

    for ( ;; ) {

        if (ctx->head_len == ctx->peek_size) {
            /* the parser says what is wrong: a bad line, or 431 */

            (void) mcd_connect_parse(ctx->peek, ctx->head_len,
                                     ctx->peek_size, &req);

            ngx_stream_mcd_refuse(s, req.status ? req.status : 431,
                                  NGX_MCD_REASON_BAD_REQUEST,
                                  req.detail ? req.detail
                                             : "request head too large");
            return NGX_DECLINED;
        }

        p = ctx->peek + ctx->head_len;

        n = recv(c->fd, p, ctx->peek_size - ctx->head_len, MSG_PEEK);

        if (n == 0) {
            ngx_stream_mcd_refuse(s, NGX_STREAM_BAD_REQUEST,
                                  NGX_MCD_REASON_BAD_REQUEST,
                                  "truncated CONNECT request");
            return NGX_DECLINED;
        }

        if (n == -1) {
            err = ngx_socket_errno;

            if (err == NGX_EINTR) {
                continue;
            }

            if (err == NGX_EAGAIN) {
                c->read->ready = 0;

                if (ngx_handle_read_event(c->read, 0) != NGX_OK) {
                    ngx_stream_mcd_finalize(s,
                                            NGX_STREAM_INTERNAL_SERVER_ERROR);
                }

                return NGX_AGAIN;
            }

            ngx_connection_error(c, err, "recv(MSG_PEEK) failed");
            ctx->reason = NGX_MCD_REASON_CLIENT_CLOSED;
            ngx_stream_mcd_finalize(s, NGX_STREAM_CLIENT_CLOSED);
            return NGX_ERROR;
        }

        k = mcd_connect_scan(&ctx->scan, p, n);

        for (got = 0; got < k; /* void */) {

            n = recv(c->fd, p + got, k - got, 0);

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
            return NGX_ERROR;
        }

        ctx->head_len += k;
        ctx->peeked = ctx->head_len;

        if (!mcd_connect_scan_done(&ctx->scan)) {
            continue;
        }

        /*
         * the head is consumed; what follows waits in the socket for the
         * relay, which must read at once what is already there: pipelined
         * bytes, or the client's FIN (a request sent with a half-close)
         */

        n = recv(c->fd, ctx->peek + ctx->head_len, 1, MSG_PEEK);

        if (n == 0) {
            ctx->request_eof = 1;
            c->read->ready = 1;

        } else if (n > 0) {
            c->read->ready = 1;

            if (c->read->pending_eof) {
                ctx->request_eof = 1;
            }

        } else {
            c->read->ready = 0;
        }

        c->read->available = -1;

        return NGX_OK;
    }
}


static void
ngx_stream_mcd_explicit_request(ngx_stream_session_t *s, mcd_connect_t *req)
{
    in_port_t                  *ports;
    ngx_int_t                   rc;
    ngx_uint_t                  i;
    const char                 *detail;
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

    /* who asks comes first: a client without credentials learns nothing */

    if (mscf->auth_realm.len) {

        rc = ngx_mcd_basic_auth(c->pool, mscf->auth_users,
                                (u_char *) req->proxy_authorization,
                                req->proxy_authorization_len, &ctx->user,
                                &detail);

        if (rc == NGX_ERROR) {
            ngx_stream_mcd_finalize(s, NGX_STREAM_INTERNAL_SERVER_ERROR);
            return;
        }

        if (rc != NGX_OK) {
            ctx->auth_tries++;
            ctx->auth_retry = (ctx->auth_tries < NGX_STREAM_MCD_AUTH_TRIES
                               && !ctx->request_eof);

            ngx_stream_mcd_refuse(s, NGX_STREAM_MCD_AUTH_REQUIRED,
                                  NGX_MCD_REASON_AUTH, detail);
            return;
        }
    }

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
        ngx_stream_mcd_refuse(s, NGX_STREAM_FORBIDDEN, NGX_MCD_REASON_PORT,
                              "port not allowed");
        return;
    }

    ngx_stream_mcd_act(s);
}


/* transparent: the ClientHello, peeked and left in the socket */


void
ngx_stream_mcd_transparent_handler(ngx_event_t *rev)
{
    int                    avail;
    u_char                *scratch;
    size_t                 need;
    ssize_t                n;
    ngx_int_t              rc;
    mcd_tls_hello_t        h;
    ngx_connection_t      *c;
    ngx_stream_session_t  *s;
    ngx_stream_mcd_ctx_t  *ctx;

    c = rev->data;
    s = c->data;
    ctx = ngx_stream_get_module_ctx(s, ngx_stream_mcd_module);

    if (ngx_stream_mcd_front_closed(s) != NGX_OK) {
        return;
    }

    if (rev->timedout) {
        ngx_stream_mcd_lowat(s, 1);
        ctx->silent = 1;
        ngx_stream_mcd_refuse(s, NGX_STREAM_BAD_REQUEST,
                              NGX_MCD_REASON_BAD_REQUEST,
                              "timed out reading the ClientHello");
        return;
    }

    /*
     * a wakeup before the missing bytes are all there (the kernel wakes
     * early under receive memory pressure, e.g. for tiny segments) costs
     * one FIONREAD, not a peek of everything received so far
     */

    if (ctx->need
        && ioctl(c->fd, FIONREAD, &avail) == 0
        && avail >= 0 && (size_t) avail < ctx->need)
    {
        ngx_stream_mcd_peek_more(s, "truncated ClientHello");
        return;
    }

    n = ngx_stream_mcd_peek(s, ctx->peek_size);

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

    if (rc != MCD_TLS_AGAIN) {
        ngx_stream_mcd_lowat(s, 1);
    }

    switch (rc) {

    case MCD_TLS_AGAIN:

        if ((size_t) n == ctx->peek_size) {
            ngx_stream_mcd_lowat(s, 1);
            ngx_stream_mcd_refuse(s, NGX_STREAM_BAD_REQUEST,
                                  NGX_MCD_REASON_BAD_REQUEST,
                                  "ClientHello larger than "
                                  "preread_buffer_size");
            return;
        }

        /*
         * the record headers say how many bytes are still missing: the
         * kernel wakes the worker only when they are there, not for each
         * segment that brings a few of them
         */

        need = mcd_tls_hello_need(ctx->peek, n);

        if (need > (size_t) n) {
            ctx->need = ngx_min(need, ctx->peek_size);
            ngx_stream_mcd_lowat(s, (int) ctx->need);
        }

        ngx_stream_mcd_peek_more(s, "truncated ClientHello");
        return;

    case MCD_TLS_OK:
        break;

    case MCD_TLS_NOT_TLS:
        ctx->silent = 1;
        ngx_stream_mcd_refuse(s, NGX_STREAM_BAD_REQUEST,
                              NGX_MCD_REASON_BAD_REQUEST,
                              "not a TLS handshake");
        return;

    case MCD_TLS_TOO_BIG:
        ngx_stream_mcd_refuse(s, NGX_STREAM_BAD_REQUEST,
                              NGX_MCD_REASON_BAD_REQUEST,
                              "ClientHello larger than preread_buffer_size");
        return;

    default: /* MCD_TLS_ERROR */
        ngx_stream_mcd_refuse(s, NGX_STREAM_BAD_REQUEST,
                              NGX_MCD_REASON_BAD_REQUEST,
                              h.detail ? h.detail : "malformed ClientHello");
        return;
    }

    if (rev->timer_set) {
        ngx_del_timer(rev);
    }

    c->log->action = "deciding";

    /* the ClientHello, and whatever follows, waits in the socket */

    rev->ready = 1;
    rev->available = -1;

    ngx_stream_mcd_transparent_request(s, &h);
}


/* the worker is shutting down while the client has not decided yet */

static ngx_int_t
ngx_stream_mcd_front_closed(ngx_stream_session_t *s)
{
    ngx_stream_mcd_ctx_t  *ctx;

    if (!s->connection->close) {
        return NGX_OK;
    }

    ctx = ngx_stream_get_module_ctx(s, ngx_stream_mcd_module);

    ctx->reason = NGX_MCD_REASON_SHUTDOWN;
    ngx_stream_mcd_lowat(s, 1);
    ngx_stream_mcd_finalize(s, NGX_STREAM_MCD_UNAVAILABLE);

    return NGX_DONE;
}


static void
ngx_stream_mcd_lowat(ngx_stream_session_t *s, int lowat)
{
    ngx_connection_t      *c;
    ngx_stream_mcd_ctx_t  *ctx;

    c = s->connection;
    ctx = ngx_stream_get_module_ctx(s, ngx_stream_mcd_module);

    if (lowat == 1 && ctx->lowat <= 1) {
        return;
    }

    if (lowat == ctx->lowat) {
        return;
    }

    if (setsockopt(c->fd, SOL_SOCKET, SO_RCVLOWAT, &lowat, sizeof(int))
        == -1)
    {
        ngx_connection_error(c, ngx_socket_errno,
                             "setsockopt(SO_RCVLOWAT) failed");
        return;
    }

    ctx->lowat = lowat;
}


static void
ngx_stream_mcd_transparent_request(ngx_stream_session_t *s,
    mcd_tls_hello_t *h)
{
    u_char                *p;
    size_t                 len;
    ngx_int_t              rc;
    ngx_addr_t            *addr;
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

        if (ngx_stream_mcd_profile(s) != NGX_OK) {
            return;
        }

        ctx->decided = 1;

        if (ctx->profile->no_sni == NGX_MCD_NO_SNI_DENY) {
            ctx->action = MCD_ACTION_DENY;
            ngx_str_set(&ctx->rule, "no_sni");
            ngx_stream_mcd_refuse(s, NGX_STREAM_FORBIDDEN,
                                  NGX_MCD_REASON_NO_SNI,
                                  "ClientHello without SNI");
            return;
        }

        ctx->action = MCD_ACTION_ALLOW;
        ngx_str_set(&ctx->rule, "no_sni");

        if (ctx->orig_sockaddr == NULL) {
            ngx_stream_mcd_refuse(s, NGX_STREAM_FORBIDDEN,
                                  NGX_MCD_REASON_NO_SNI,
                                  "ClientHello without SNI and "
                                  "no original destination");
            return;
        }

        /*
         * the only case where the client's destination is used; the
         * destination guard judges it like any other address
         */

        ctx->upstream = ctx->original_dst;

        addr = ngx_pcalloc(c->pool, sizeof(ngx_addr_t));
        if (addr == NULL) {
            ngx_stream_mcd_finalize(s, NGX_STREAM_INTERNAL_SERVER_ERROR);
            return;
        }

        addr->sockaddr = ctx->orig_sockaddr;
        addr->socklen = ctx->orig_socklen;

        ngx_stream_mcd_upstream(s, addr);
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
 * peek at what the client sent so far: > 0 bytes to parse, or 0 when
 * there is nothing to do now (waiting for bytes, or the session is over)
 */

static ssize_t
ngx_stream_mcd_peek(ngx_stream_session_t *s, size_t size)
{
    ssize_t                n;
    ngx_err_t              err;
    ngx_connection_t      *c;
    ngx_stream_mcd_ctx_t  *ctx;

    c = s->connection;
    ctx = ngx_stream_get_module_ctx(s, ngx_stream_mcd_module);

    n = recv(c->fd, ctx->peek, size, MSG_PEEK);

    if (n > 0) {
        return n;
    }

    if (n == 0) {
        ngx_log_error(NGX_LOG_INFO, c->log, 0,
                      "client closed connection before its first request");
        ctx->reason = NGX_MCD_REASON_BAD_REQUEST;
        ngx_stream_mcd_lowat(s, 1);
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
        ngx_stream_mcd_lowat(s, 1);
        ngx_stream_mcd_refuse(s, NGX_STREAM_BAD_REQUEST,
                              NGX_MCD_REASON_BAD_REQUEST, truncated);
        return;
    }
#endif

    rev->ready = 0;

    if (ngx_handle_read_event(rev, 0) != NGX_OK) {
        ngx_stream_mcd_finalize(s, NGX_STREAM_INTERNAL_SERVER_ERROR);
    }
}


/*
 * the profile: the server's, or the one its "mcd_fqdn_filter $variable"
 * names for this connection (evaluated after the proxy user is known, so
 * that a map on $mcd_user works); a value that names no profile is
 * refused with reason "no_profile"
 */

static ngx_int_t
ngx_stream_mcd_profile(ngx_stream_session_t *s)
{
    ngx_str_t              name;
    ngx_stream_mcd_ctx_t  *ctx;

    ctx = ngx_stream_get_module_ctx(s, ngx_stream_mcd_module);

    if (ctx->profile != NULL) {
        return NGX_OK;
    }

    if (ctx->conf->profile_value == NULL) {
        ctx->profile = ctx->conf->profile;
        ctx->profile_name = ctx->profile->name;
        return NGX_OK;
    }

    if (ngx_stream_complex_value(s, ctx->conf->profile_value, &name)
        != NGX_OK)
    {
        ngx_stream_mcd_finalize(s, NGX_STREAM_INTERNAL_SERVER_ERROR);
        return NGX_ERROR;
    }

    ctx->profile = ngx_mcd_profile_find((ngx_cycle_t *) ngx_cycle,
                                        name.data, name.len);

    if (ctx->profile != NULL) {
        ctx->profile_name = ctx->profile->name;
        return NGX_OK;
    }

    /* the value may come from anything the client sends: escaped */

    if (ngx_mcd_escape_str(s->connection->pool, &name, &ctx->profile_name)
        != NGX_OK)
    {
        ngx_stream_mcd_finalize(s, NGX_STREAM_INTERNAL_SERVER_ERROR);
        return NGX_ERROR;
    }

    ctx->decided = 1;
    ctx->action = MCD_ACTION_DENY;

    ngx_stream_mcd_refuse(s, NGX_STREAM_FORBIDDEN, NGX_MCD_REASON_NO_PROFILE,
                          "no profile for this client");

    return NGX_DECLINED;
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

    if (ngx_stream_mcd_profile(s) != NGX_OK) {
        return NGX_DECLINED;
    }

    rc = ngx_mcd_decide(s->connection->pool, ctx->profile, name, len, &d);

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
        ngx_stream_mcd_refuse(s, NGX_STREAM_BAD_REQUEST,
                              NGX_MCD_REASON_BAD_NAME, what);
        return NGX_DECLINED;
    }

    if (ngx_stream_mcd_set_upstream(s) != NGX_OK) {
        ngx_stream_mcd_finalize(s, NGX_STREAM_INTERNAL_SERVER_ERROR);
        return NGX_ERROR;
    }

    return NGX_OK;
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


static void
ngx_stream_mcd_act(ngx_stream_session_t *s)
{
    ngx_stream_mcd_ctx_t  *ctx;

    ctx = ngx_stream_get_module_ctx(s, ngx_stream_mcd_module);

    switch (ctx->action) {

    case MCD_ACTION_ALLOW:
        ngx_stream_mcd_upstream(s, NULL);
        return;

    case MCD_ACTION_DECRYPT:

        if (ctx->conf->decrypt_pass.addr == NULL) {
            ngx_stream_mcd_refuse(s, 501, NGX_MCD_REASON_DECRYPT_UNAVAILABLE,
                                  "decryption is not available");
            return;
        }

        /* resolved here, connected to by the http side */

        ctx->upstream_step.resolve_only = 1;
        ngx_stream_mcd_upstream(s, NULL);
        return;

    default: /* MCD_ACTION_DENY */
        ngx_stream_mcd_refuse(s, NGX_STREAM_FORBIDDEN, NGX_MCD_REASON_POLICY,
                              "denied by policy");
        return;
    }
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


/* the upstream step, while the client is watched */


static void
ngx_stream_mcd_upstream(ngx_stream_session_t *s, ngx_addr_t *fixed)
{
    ngx_connection_t            *c;
    ngx_mcd_upstream_t          *u;
    ngx_stream_mcd_ctx_t        *ctx;
    ngx_stream_core_srv_conf_t  *cscf;

    c = s->connection;
    ctx = ngx_stream_get_module_ctx(s, ngx_stream_mcd_module);
    cscf = ngx_stream_get_module_srv_conf(s, ngx_stream_core_module);

    u = &ctx->upstream_step;

    u->pool = c->pool;
    u->log = c->log;
    u->data = s;

    u->fqdn = ctx->fqdn;
    u->name_type = ctx->name_type;
    u->port = ctx->port;
    u->fixed = fixed;

    u->resolver = cscf->resolver;
    u->resolver_timeout = cscf->resolver_timeout;
    u->connect_timeout = ctx->conf->connect_timeout;
    u->next_timeout = ctx->conf->next_upstream_timeout;
    u->tries = ctx->conf->next_upstream_tries;
    u->destination = ctx->conf->destination;

    u->handler = ngx_stream_mcd_upstream_done;
    u->attempt = ngx_stream_mcd_attempt;

    if (ctx->conf->mode == NGX_MCD_MODE_TRANSPARENT
        && ctx->conf->verify_destination
        && ctx->orig_sockaddr != NULL
        && fixed == NULL)
    {
        u->check = ngx_stream_mcd_check_addrs;
    }

    c->log->action = "resolving";

    /* from now on the client is only watched: leaving, or a shutdown */

    ctx->waiting = 1;
    c->read->handler = ngx_stream_mcd_wait_handler;

    ngx_mcd_upstream_start(u);
}


/*
 * between the decision and the relay: a client that sends its FIN (unless
 * it came with the request) or a reset has left, and a worker that shuts
 * down sets c->close; either stops the upstream step at once.  Bytes the
 * client sends meanwhile wait in the socket for the relay.
 */

static void
ngx_stream_mcd_wait_handler(ngx_event_t *rev)
{
    u_char                 buf[1];
    ssize_t                n;
    ngx_err_t              err;
    ngx_connection_t      *c;
    ngx_stream_session_t  *s;
    ngx_stream_mcd_ctx_t  *ctx;

    c = rev->data;
    s = c->data;
    ctx = ngx_stream_get_module_ctx(s, ngx_stream_mcd_module);

    if (!ctx->waiting) {
        return;
    }

    if (c->close) {
        ngx_mcd_upstream_cancel(&ctx->upstream_step);
        ctx->waiting = 0;
        ngx_stream_mcd_refuse(s, NGX_STREAM_MCD_UNAVAILABLE,
                              NGX_MCD_REASON_SHUTDOWN,
                              "the worker is shutting down");
        return;
    }

    if (rev->timedout) {
        rev->timedout = 0;
        return;
    }

    if (ctx->request_eof) {
        /* the FIN came with the request: it is for the upstream */
        return;
    }

    err = 0;

    if (!rev->pending_eof) {

        n = recv(c->fd, buf, 1, MSG_PEEK);

        if (n > 0) {
            /* pipelined bytes: they wait for the relay */
            return;
        }

        if (n == -1) {
            err = ngx_socket_errno;

            if (err == NGX_EAGAIN || err == NGX_EINTR) {
                rev->ready = 0;
                return;
            }
        }
    }

    /* FIN or reset */

    ngx_log_error(NGX_LOG_INFO, c->log, err,
                  "mcd: client closed the connection while %s",
                  c->log->action);

    ngx_mcd_upstream_cancel(&ctx->upstream_step);
    ctx->waiting = 0;
    ctx->reason = NGX_MCD_REASON_CLIENT_CLOSED;

    ngx_stream_mcd_finalize(s, NGX_STREAM_CLIENT_CLOSED);
}


/*
 * with "mcd_verify_destination on", the client's original destination must
 * be one of the addresses the name resolved to
 */

static ngx_int_t
ngx_stream_mcd_check_addrs(ngx_mcd_upstream_t *u)
{
    ngx_uint_t             i;
    ngx_stream_session_t  *s;
    ngx_stream_mcd_ctx_t  *ctx;

    s = u->data;
    ctx = ngx_stream_get_module_ctx(s, ngx_stream_mcd_module);

    for (i = 0; i < u->nresolved; i++) {
        if (ngx_cmp_sockaddr(u->resolved[i].sockaddr, u->resolved[i].socklen,
                             ctx->orig_sockaddr, ctx->orig_socklen, 0)
            == NGX_OK)
        {
            return NGX_OK;
        }
    }

    ngx_cpystrn(u->detail, (u_char *) "original destination is not an "
                "address of the SNI", NGX_MCD_DETAIL_LEN);
    u->reason = NGX_MCD_REASON_DST_MISMATCH;

    return NGX_DECLINED;
}


/* each connect attempt is one entry of $upstream_addr and friends */

static ngx_int_t
ngx_stream_mcd_attempt(ngx_mcd_upstream_t *u, ngx_addr_t *addr)
{
    ngx_connection_t      *c;
    ngx_stream_session_t  *s;
    ngx_stream_mcd_ctx_t  *ctx;

    s = u->data;
    c = s->connection;
    ctx = ngx_stream_get_module_ctx(s, ngx_stream_mcd_module);

    if (ctx->state && ctx->state->response_time == (ngx_msec_t) -1) {
        ctx->state->response_time = ngx_current_msec - ctx->connect_start;
    }

    if (s->upstream_states == NULL) {
        s->upstream_states = ngx_array_create(c->pool, 1,
                                        sizeof(ngx_stream_upstream_state_t));
        if (s->upstream_states == NULL) {
            return NGX_ERROR;
        }
    }

    ctx->state = ngx_array_push(s->upstream_states);
    if (ctx->state == NULL) {
        return NGX_ERROR;
    }

    ngx_memzero(ctx->state, sizeof(ngx_stream_upstream_state_t));

    ctx->state->connect_time = (ngx_msec_t) -1;
    ctx->state->first_byte_time = (ngx_msec_t) -1;
    ctx->state->response_time = (ngx_msec_t) -1;
    ctx->state->peer = &addr->name;

    ctx->upstream_addr = addr->name;
    ctx->connect_start = ngx_current_msec;

    c->log->action = "connecting to upstream";

    return NGX_OK;
}


static void
ngx_stream_mcd_upstream_done(ngx_mcd_upstream_t *u, ngx_int_t rc)
{
    ngx_uint_t             status;
    ngx_stream_session_t  *s;
    ngx_stream_mcd_ctx_t  *ctx;

    s = u->data;
    ctx = ngx_stream_get_module_ctx(s, ngx_stream_mcd_module);

    ctx->waiting = 0;

    if (rc == NGX_OK) {
        if (u->resolve_only) {
            ngx_stream_mcd_decrypt(s);
            return;
        }

        ngx_stream_mcd_connected(s);
        return;
    }

    switch (u->reason) {

    case NGX_MCD_REASON_DST_BLOCKED:
    case NGX_MCD_REASON_LOOP:
    case NGX_MCD_REASON_DST_MISMATCH:
        ctx->action = MCD_ACTION_DENY;
        status = NGX_STREAM_FORBIDDEN;
        break;

    case NGX_MCD_REASON_DNS:
    case NGX_MCD_REASON_CONNECT:
        status = NGX_STREAM_BAD_GATEWAY;
        break;

    case NGX_MCD_REASON_TIMEOUT:
        status = NGX_STREAM_MCD_TIMEOUT;
        break;

    case NGX_MCD_REASON_OVERLOAD:
    case NGX_MCD_REASON_SHUTDOWN:
        status = NGX_STREAM_MCD_UNAVAILABLE;
        break;

    default:
        status = NGX_STREAM_INTERNAL_SERVER_ERROR;
        break;
    }

    if (ctx->state && ctx->state->response_time == (ngx_msec_t) -1) {
        ctx->state->response_time = ngx_current_msec - ctx->connect_start;
    }

    ngx_stream_mcd_refuse(s, status, u->reason, (char *) u->detail);
}


/*
 * decryption: the name resolved; explicit answers 200, then the live
 * connection goes, in-process, to the http "listen ... ssl" server named by
 * mcd_decrypt_pass, with the decision on its pool; transparent hands it
 * over with the ClientHello still in the socket
 */

static void
ngx_stream_mcd_decrypt(ngx_stream_session_t *s)
{
    ssize_t                n;
    ngx_listening_t       *ls;
    ngx_connection_t      *c;
    ngx_mcd_handoff_t     *h;
    ngx_stream_mcd_ctx_t  *ctx;

    static u_char  established[] =
        "HTTP/1.1 200 Connection established" CRLF CRLF;

    c = s->connection;
    ctx = ngx_stream_get_module_ctx(s, ngx_stream_mcd_module);

    ctx->upstream_addr = ctx->upstream_step.current->name;

    ls = ngx_stream_mcd_http_listener((ngx_cycle_t *) ngx_cycle,
                                      ctx->conf->decrypt_pass.addr, 1);
    if (ls == NULL) {
        ngx_log_error(NGX_LOG_ALERT, c->log, 0,
                      "mcd: no interception listener at %V",
                      &ctx->conf->decrypt_pass.addr->name);
        ngx_stream_mcd_refuse(s, NGX_STREAM_INTERNAL_SERVER_ERROR,
                              NGX_MCD_REASON_INTERNAL,
                              "no interception listener");
        return;
    }

    h = ngx_mcd_handoff_add(c);
    if (h == NULL) {
        ngx_stream_mcd_finalize(s, NGX_STREAM_INTERNAL_SERVER_ERROR);
        return;
    }

    h->fqdn = ctx->fqdn;
    h->sni = ctx->sni;
    h->rule = ctx->rule;
    h->profile = ctx->profile->name;
    h->profile_conf = ctx->profile;
    h->upstream = ctx->upstream;
    h->upstream_addr = ctx->upstream_addr;
    h->alpn = ctx->alpn;
    h->original_dst = ctx->original_dst;
    h->user = ctx->user;
    h->mode = ctx->conf->mode;
    h->action = ctx->action;
    h->port = ctx->port;
    h->ech = ctx->ech;

    if (ctx->conf->mode == NGX_MCD_MODE_EXPLICIT) {

        /* 39 bytes into an empty socket buffer */

        n = send(c->fd, established, sizeof(established) - 1, 0);

        if (n != (ssize_t) sizeof(established) - 1) {
            ngx_connection_error(c, ngx_socket_errno,
                                 "send() of the 200 answer failed");
            ngx_stream_mcd_finalize(s, NGX_STREAM_OK);
            return;
        }

        c->sent += n;
    }

    ngx_stream_mcd_count(s);

    ngx_log_error(NGX_LOG_INFO, c->log, 0,
                  "mcd %V: \"%V\" from %V handed over for decryption to "
                  "%V, rule \"%V\", profile \"%V\", upstream address %V",
                  &ngx_mcd_modes[ctx->conf->mode], &ctx->upstream,
                  &c->addr_text, &ctx->conf->decrypt_pass.addr->name,
                  &ctx->rule, &h->profile, &ctx->upstream_addr);

    ngx_stream_mcd_rehome(s, ls);
}


/*
 * explicit: a request that is not CONNECT ("GET http://host/ HTTP/1.1")
 * goes, unconsumed, to the plain http server named by mcd_http_pass, where
 * mcd_fqdn_filter decides on its host
 */

static void
ngx_stream_mcd_http_pass(ngx_stream_session_t *s)
{
    ngx_listening_t       *ls;
    ngx_connection_t      *c;
    ngx_mcd_handoff_t     *h;
    ngx_stream_mcd_ctx_t  *ctx;

    c = s->connection;
    ctx = ngx_stream_get_module_ctx(s, ngx_stream_mcd_module);

    ls = ngx_stream_mcd_http_listener((ngx_cycle_t *) ngx_cycle,
                                      ctx->conf->http_pass.addr, 0);
    if (ls == NULL) {
        ngx_log_error(NGX_LOG_ALERT, c->log, 0,
                      "mcd: no http listener at %V",
                      &ctx->conf->http_pass.addr->name);
        ngx_stream_mcd_refuse(s, NGX_STREAM_INTERNAL_SERVER_ERROR,
                              NGX_MCD_REASON_INTERNAL, "no http listener");
        return;
    }

    h = ngx_mcd_handoff_add(c);
    if (h == NULL) {
        ngx_stream_mcd_finalize(s, NGX_STREAM_INTERNAL_SERVER_ERROR);
        return;
    }

    h->mode = NGX_MCD_MODE_HTTP;

    /* decided on the http side, request by request */

    ctx->counted = 1;

    /* the http side asks each request for the same credentials */

    h->auth_realm = ctx->conf->auth_realm;
    h->auth_users = ctx->conf->auth_users;

    ngx_log_debug1(NGX_LOG_DEBUG_STREAM, c->log, 0,
                   "mcd: http request handed over to %V",
                   &ctx->conf->http_pass.addr->name);

    ngx_stream_mcd_rehome(s, ls);
}


/*
 * the session ends here for the stream side, with its access log line
 * (status 200: handed over); the connection lives on as the http
 * listener's, the way nginx's stream "pass" re-homes one
 */

static void
ngx_stream_mcd_rehome(ngx_stream_session_t *s, ngx_listening_t *ls)
{
    ngx_connection_t      *c;
    ngx_stream_mcd_ctx_t  *ctx;

    c = s->connection;
    ctx = ngx_stream_get_module_ctx(s, ngx_stream_mcd_module);

    if (c->read->timer_set) {
        ngx_del_timer(c->read);
    }

    if (c->write->timer_set) {
        ngx_del_timer(c->write);
    }

    ctx->finalized = 1;

    s->status = NGX_STREAM_OK;

    ngx_stream_mcd_log(s);

    /* the http side counts its own bytes ($bytes_sent, $body_bytes_sent) */

    c->sent = 0;

    c->listening = ls;
    c->data = NULL;
    c->buffer = NULL;

    *c->log = ls->log;
    c->log->handler = NULL;
    c->log->data = NULL;

    c->local_sockaddr = ls->sockaddr;
    c->local_socklen = ls->socklen;

    ls->handler(c);
}


/* an access log line now, for a session that goes on (or on elsewhere) */

void
ngx_stream_mcd_log(ngx_stream_session_t *s)
{
    ngx_uint_t                    i, n;
    ngx_stream_handler_pt        *log_handler;
    ngx_stream_core_main_conf_t  *cmcf;

    s->connection->log->action = "logging";

    cmcf = ngx_stream_get_module_main_conf(s, ngx_stream_core_module);

    log_handler = cmcf->phases[NGX_STREAM_LOG_PHASE].handlers.elts;
    n = cmcf->phases[NGX_STREAM_LOG_PHASE].handlers.nelts;

    for (i = 0; i < n; i++) {
        log_handler[i](s);
    }
}


/*
 * after a 407 whose client may try again on the same connection: the head
 * of the refused try is consumed, the front door waits for the next one;
 * the refused try gets its access log line when the next one starts, or
 * as the session's own when the client goes away instead
 */

void
ngx_stream_mcd_retry(ngx_stream_session_t *s)
{
    ngx_connection_t            *c;
    ngx_stream_mcd_ctx_t        *ctx;
    ngx_stream_core_srv_conf_t  *cscf;

    c = s->connection;
    ctx = ngx_stream_get_module_ctx(s, ngx_stream_mcd_module);
    cscf = ngx_stream_get_module_srv_conf(s, ngx_stream_core_module);

    ctx->auth_retry = 0;
    ctx->auth_pending = 1;

    ctx->head_len = 0;
    ctx->peeked = 0;
    ctx->lingered = 0;
    ngx_memzero(&ctx->scan, sizeof(mcd_connect_scan_t));
    ngx_memzero(&ctx->answer, sizeof(ngx_buf_t));

    /* the refusal cancelled the upstream step: a fresh one */

    ngx_memzero(&ctx->upstream_step, sizeof(ngx_mcd_upstream_t));

    c->log->action = "reading CONNECT request";
    c->read->handler = ngx_stream_mcd_explicit_handler;
    c->write->handler = ngx_stream_mcd_idle_handler;

    if (c->read->timer_set) {
        ngx_del_timer(c->read);
    }

    c->read->timedout = 0;

    ngx_add_timer(c->read, cscf->preread_timeout);

    if (c->read->ready) {
        ngx_stream_mcd_explicit_handler(c->read);
        return;
    }

    if (ngx_handle_read_event(c->read, 0) != NGX_OK) {
        ngx_stream_mcd_finalize(s, NGX_STREAM_INTERNAL_SERVER_ERROR);
    }
}


/*
 * NGX_OK: the client sent the first byte of another try, the refused one
 * is logged and forgotten; NGX_AGAIN: nothing yet; NGX_DONE: the client
 * left, or did not try again in time, and the session ends as refused
 */

static ngx_int_t
ngx_stream_mcd_next_try(ngx_stream_session_t *s)
{
    u_char                        ch;
    ssize_t                       n;
    ngx_err_t                     err;
    ngx_connection_t             *c;
    ngx_stream_mcd_ctx_t         *ctx;
    ngx_stream_core_main_conf_t  *cmcf;

    c = s->connection;
    ctx = ngx_stream_get_module_ctx(s, ngx_stream_mcd_module);

    if (c->read->timedout) {
        ngx_stream_mcd_finalize(s, NGX_STREAM_MCD_AUTH_REQUIRED);
        return NGX_DONE;
    }

    n = recv(c->fd, &ch, 1, MSG_PEEK);

    if (n == -1) {
        err = ngx_socket_errno;

        if (err == NGX_EAGAIN || err == NGX_EINTR) {
            c->read->ready = 0;

            if (ngx_handle_read_event(c->read, 0) != NGX_OK) {
                ngx_stream_mcd_finalize(s, NGX_STREAM_INTERNAL_SERVER_ERROR);
                return NGX_DONE;
            }

            return NGX_AGAIN;
        }
    }

    if (n <= 0) {
        ngx_stream_mcd_finalize(s, NGX_STREAM_MCD_AUTH_REQUIRED);
        return NGX_DONE;
    }

    s->status = NGX_STREAM_MCD_AUTH_REQUIRED;

    ngx_stream_mcd_log(s);
    ngx_stream_mcd_count(s);

    /* the next line evaluates every variable again */

    cmcf = ngx_stream_get_module_main_conf(s, ngx_stream_core_module);

    ngx_memzero(s->variables,
                cmcf->variables.nelts * sizeof(ngx_stream_variable_value_t));

    ctx->auth_pending = 0;
    ctx->counted = 0;
    ctx->decided = 0;
    ctx->action = MCD_ACTION_DENY;
    ctx->reason = NGX_MCD_REASON_NONE;
    ngx_str_null(&ctx->host);
    ngx_str_null(&ctx->fqdn);
    ngx_str_null(&ctx->rule);
    ngx_str_null(&ctx->upstream);
    ngx_str_null(&ctx->user);
    ctx->profile = NULL;
    ngx_str_null(&ctx->profile_name);
    ctx->port = 0;

    s->status = 0;

    c->log->action = "reading CONNECT request";

    return NGX_OK;
}


/*
 * an http listener at the address given: with mcd_intercept on for
 * decryption, plain http with mcd_fqdn_filter for mcd_http_pass
 */

ngx_listening_t *
ngx_stream_mcd_http_listener(ngx_cycle_t *cycle, ngx_addr_t *addr,
    ngx_uint_t intercept)
{
#if (NGX_HTTP_SSL)
    ngx_uint_t        i;
    ngx_listening_t  *ls;

    ls = cycle->listening.elts;

    for (i = 0; i < cycle->listening.nelts; i++) {

        if (ls[i].type != SOCK_STREAM
            || ls[i].handler != ngx_http_init_connection)
        {
            continue;
        }

        if (ls[i].wildcard) {
            if (ls[i].sockaddr->sa_family != addr->sockaddr->sa_family
                || ngx_inet_get_port(ls[i].sockaddr)
                   != ngx_inet_get_port(addr->sockaddr))
            {
                continue;
            }

        } else if (ngx_cmp_sockaddr(ls[i].sockaddr, ls[i].socklen,
                                    addr->sockaddr, addr->socklen, 1)
                   != NGX_OK)
        {
            continue;
        }

        if ((intercept ? ngx_http_mcd_intercepts(&ls[i])
                       : ngx_http_mcd_forwards(&ls[i]))
            == NGX_OK)
        {
            return &ls[i];
        }
    }

#endif

    return NULL;
}
