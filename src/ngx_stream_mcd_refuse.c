
/*
 * Copyright (C) ngx_mcd authors
 *
 * Refusals: one error-log line naming client, name, rule, profile and
 * reason; an answer (an HTTP status with a short text body for explicit,
 * a fatal TLS alert for transparent, nothing for bytes that are not TLS);
 * then a lingering close, so that the client reads the answer instead of
 * a reset.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_stream.h>

#include "ngx_stream_mcd.h"


#define NGX_STREAM_MCD_LINGER_TIME     5000
#define NGX_STREAM_MCD_LINGER_BYTES    65536
#define NGX_STREAM_MCD_LINGER_BUFFER   4096


static unsigned ngx_stream_mcd_alert(ngx_mcd_reason_e reason);
static ngx_int_t ngx_stream_mcd_http_answer(ngx_stream_session_t *s,
    ngx_uint_t status, const char *text, const char *detail);
static void ngx_stream_mcd_answer_handler(ngx_event_t *ev);
static void ngx_stream_mcd_linger_handler(ngx_event_t *rev);


static unsigned
ngx_stream_mcd_alert(ngx_mcd_reason_e reason)
{
    switch (reason) {

    case NGX_MCD_REASON_BAD_REQUEST:
        return MCD_TLS_ALERT_DECODE_ERROR;

    case NGX_MCD_REASON_NO_SNI:
        return MCD_TLS_ALERT_UNRECOGNIZED_NAME;

    case NGX_MCD_REASON_DECRYPT_UNAVAILABLE:
        return MCD_TLS_ALERT_HANDSHAKE_FAILURE;

    case NGX_MCD_REASON_POLICY:
    case NGX_MCD_REASON_PORT:
    case NGX_MCD_REASON_BAD_NAME:
    case NGX_MCD_REASON_DST_MISMATCH:
    case NGX_MCD_REASON_DST_BLOCKED:
    case NGX_MCD_REASON_LOOP:
    case NGX_MCD_REASON_NO_PROFILE:
        return MCD_TLS_ALERT_ACCESS_DENIED;

    default: /* dns, connect, timeout, shutdown, overload, internal */
        return MCD_TLS_ALERT_INTERNAL_ERROR;
    }
}


static ngx_int_t
ngx_stream_mcd_http_answer(ngx_stream_session_t *s, ngx_uint_t status,
    const char *text, const char *detail)
{
    u_char                *p;
    size_t                 len, body;
    ngx_str_t             *reason;
    ngx_stream_mcd_ctx_t  *ctx;

    ctx = ngx_stream_get_module_ctx(s, ngx_stream_mcd_module);

    reason = ngx_mcd_reason_name(ctx->reason);

    body = ngx_strlen(detail) + reason->len + sizeof(": \n") - 1;

    len = sizeof("HTTP/1.1 999 " CRLF) - 1 + ngx_strlen(text)
          + sizeof("Proxy-Authenticate: Basic realm=\"\"" CRLF) - 1
          + ctx->conf->auth_realm.len
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

    p = ngx_sprintf(p, "HTTP/1.1 %ui %s" CRLF, status, text);

    if (status == NGX_STREAM_MCD_AUTH_REQUIRED) {
        p = ngx_sprintf(p, "Proxy-Authenticate: Basic realm=\"%V\"" CRLF,
                        &ctx->conf->auth_realm);
    }

    p = ngx_sprintf(p, "Content-Type: text/plain" CRLF
                       "Content-Length: %uz" CRLF
                       "%s" CRLF
                       "%V: %s\n",
                    body, ctx->auth_retry ? "" : "Connection: close" CRLF,
                    reason, detail);

    ctx->answer.last = p;
    ctx->answer.end = p;

    return NGX_OK;
}


void
ngx_stream_mcd_refuse(ngx_stream_session_t *s, ngx_uint_t status,
    ngx_mcd_reason_e reason, const char *detail)
{
    u_char                *p;
    ngx_str_t              host, fqdn, rule, user, *name;
    ngx_uint_t             level, log_status;
    ngx_connection_t      *c;
    ngx_stream_mcd_ctx_t  *ctx;
    const char            *text, *body;

    c = s->connection;
    ctx = ngx_stream_get_module_ctx(s, ngx_stream_mcd_module);

    ctx->reason = reason;

    if (!ctx->decided) {
        ctx->decided = 1;
        ctx->action = MCD_ACTION_DENY;
    }

    if (detail == NULL) {
        detail = (char *) ngx_mcd_reason_name(reason)->data;
    }

    switch (status) {
    case 400: text = "Bad Request"; break;
    case 403: text = "Forbidden"; break;
    case 405: text = "Method Not Allowed"; break;
    case 407: text = "Proxy Authentication Required"; break;
    case 408: text = "Request Timeout"; break;
    case 431: text = "Request Header Fields Too Large"; break;
    case 501: text = "Not Implemented"; break;
    case 502: text = "Bad Gateway"; break;
    case 503: text = "Service Unavailable"; break;
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

    /*
     * the name as the client sent it when it was not a valid one: escaped,
     * so that it can neither end the quoted string nor start a log line
     */

    if (ctx->host.len == 0 && ctx->peek != NULL && ctx->peeked) {

        /* a request refused before its host was known: its first line */

        host.data = ctx->peek;

        for (host.len = 0;
             host.len < ctx->peeked && host.len < NGX_STREAM_MCD_LOG_LINE;
             host.len++)
        {
            if (host.data[host.len] == CR || host.data[host.len] == LF) {
                break;
            }
        }

        ctx->host = host;
    }

    if (ctx->upstream.len) {
        host = ctx->upstream;

    } else if (ngx_mcd_escape_str(c->pool, &ctx->host, &host) != NGX_OK) {
        ngx_str_set(&host, "?");
    }

    name = ctx->profile_name.len ? &ctx->profile_name
           : ctx->conf->profile ? &ctx->conf->profile->name : &host;

    /* "%V" of { 0, NULL } would pass NULL to memcpy() */

    fqdn = ctx->fqdn;
    rule = ctx->rule;

    if (fqdn.data == NULL) {
        ngx_str_set(&fqdn, "");
    }

    if (rule.data == NULL) {
        ngx_str_set(&rule, "");
    }

    if (host.data == NULL) {
        ngx_str_set(&host, "");
    }

    level = (status == 403 || status == 407 || status >= 500) ? NGX_LOG_WARN
                                                               : NGX_LOG_INFO;

    /* the user as sent (never the password), escaped like every name */

    if (ngx_mcd_escape_str(c->pool, &ctx->user, &user) != NGX_OK
        || user.data == NULL)
    {
        ngx_str_set(&user, "");
    }

    ngx_log_error(level, c->log, 0,
                  "mcd %V: refused \"%V\" from %V: %d, fqdn \"%V\", "
                  "rule \"%V\", profile \"%V\", reason \"%V\": %s%s%V%s",
                  &ngx_mcd_modes[ctx->conf->mode], &host,
                  &c->addr_text, (int) status, &fqdn, &rule,
                  name, ngx_mcd_reason_name(reason), detail,
                  user.len ? ", user \"" : "", &user, user.len ? "\"" : "");

    /* the addresses behind a name and the rules are not the client's */

    switch (reason) {
    case NGX_MCD_REASON_DST_BLOCKED:
        body = "destination address not allowed";
        break;
    case NGX_MCD_REASON_LOOP:
        body = "destination is this gateway";
        break;
    default:
        body = detail;
    }

    if (ctx->conf->mode == NGX_MCD_MODE_EXPLICIT) {
        if (ngx_stream_mcd_http_answer(s, status, text, body) != NGX_OK) {
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
        ctx->answer.last = p + mcd_tls_alert(p, ngx_stream_mcd_alert(reason));
        ctx->answer.end = ctx->answer.last;
    }

    s->status = log_status;

    ngx_mcd_upstream_cancel(&ctx->upstream_step);

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
            if (c->close) {
                /* the worker is shutting down: no waiting */
                ngx_stream_mcd_finalize(s, s->status);
                return;
            }

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

    /* a 407 the client may answer on this connection: read its next try */

    if (ctx->auth_retry && !c->close) {
        ngx_stream_mcd_retry(s);
        return;
    }

    /* all sent: pass a FIN and read what the client still sends */

    wev->handler = ngx_stream_mcd_idle_handler;

    if (c->close
        || ngx_shutdown_socket(c->fd, NGX_WRITE_SHUTDOWN) == -1)
    {
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

    if (rev->timedout || c->close) {
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
