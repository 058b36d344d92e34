
/*
 * Copyright (C) ngx_mcd authors
 *
 * The tunnel: bytes both ways between the client and the upstream, with
 * backpressure, half-close in each direction, an idle timer, and for bulk
 * tunnels an optional zero-copy path through a pipe (splice(2)).  A reset
 * from one side is passed on to the other as a reset.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_stream.h>

#include "ngx_stream_mcd.h"


#define NGX_STREAM_MCD_SPLICE_AFTER    65536
#define NGX_STREAM_MCD_SPLICE_MAX      65536


static void ngx_stream_mcd_relay_handler(ngx_event_t *ev);
static void ngx_stream_mcd_relay(ngx_stream_session_t *s);
static ngx_int_t ngx_stream_mcd_pump(ngx_stream_mcd_ctx_t *ctx,
    ngx_connection_t *src, ngx_connection_t *dst, ngx_buf_t *b,
    ngx_stream_mcd_pipe_t *pp, off_t *received, unsigned *moved);
static ssize_t ngx_stream_mcd_recv(ngx_connection_t *c, u_char *buf,
    size_t size, unsigned *reset);
#if (NGX_LINUX)
static ngx_int_t ngx_stream_mcd_splice(ngx_connection_t *src,
    ngx_connection_t *dst, ngx_stream_mcd_pipe_t *pp, unsigned *eof,
    unsigned *src_reset, unsigned *dst_reset, off_t *received,
    unsigned *moved);
#endif
static void ngx_stream_mcd_reset(ngx_connection_t *c);


void
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
    pc = ctx->upstream_step.peer.connection;

    /* the peer is the session's from now on */

    pc->data = s;

    cscf = ngx_stream_get_module_srv_conf(s, ngx_stream_core_module);

    if (cscf->tcp_nodelay && ngx_tcp_nodelay(pc) != NGX_OK) {
        ngx_stream_mcd_finalize(s, NGX_STREAM_INTERNAL_SERVER_ERROR);
        return;
    }

    ctx->state->connect_time = ngx_current_msec - ctx->connect_start;
    ctx->connected = 1;

    ngx_mcd_metric_add(tunnels[ctx->conf->mode], 1);

    ngx_log_debug1(NGX_LOG_DEBUG_STREAM, c->log, 0,
                   "mcd connected to %V", &ctx->upstream_addr);

    /* the head buffer, no longer needed, carries client bytes upstream */

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
        /* mcd_buffer_size is at least NGX_STREAM_MCD_MIN_BUFFER */
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
    ngx_int_t              rc;
    ngx_connection_t      *c, *pc;
    ngx_stream_mcd_ctx_t  *ctx;

    c = s->connection;
    ctx = ngx_stream_get_module_ctx(s, ngx_stream_mcd_module);
    pc = ctx->upstream_step.peer.connection;

    moved = 0;

    rc = ngx_stream_mcd_pump(ctx, c, pc, &ctx->upstream_buf,
                             &ctx->upstream_pipe, &s->received, &moved);

    if (rc == NGX_OK) {
        rc = ngx_stream_mcd_pump(ctx, pc, c, &ctx->downstream_buf,
                                 &ctx->downstream_pipe,
                                 &ctx->upstream_received, &moved);
    }

    if (rc != NGX_OK) {

        if (ctx->upstream_reset) {
            /* what a direct connection would have shown the client */

            ngx_log_error(NGX_LOG_WARN, c->log, 0,
                          "mcd %V: tunnel \"%V\" from %V reset by the "
                          "upstream, the client's connection is reset too, "
                          "reason \"upstream_reset\"",
                          &ngx_mcd_modes[ctx->conf->mode],
                          &ctx->upstream, &c->addr_text);

            ctx->reason = NGX_MCD_REASON_UPSTREAM_RESET;
            ngx_stream_mcd_reset(c);
            ngx_stream_mcd_finalize(s, NGX_STREAM_BAD_GATEWAY);
            return;
        }

        if (ctx->client_reset) {
            ngx_log_error(NGX_LOG_INFO, c->log, 0,
                          "mcd: client reset the connection, resetting "
                          "the upstream's");
            ngx_stream_mcd_reset(pc);
        }

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


/* close with SO_LINGER {1, 0}: the peer sees a reset, not a FIN */

static void
ngx_stream_mcd_reset(ngx_connection_t *c)
{
    struct linger  l;

    l.l_onoff = 1;
    l.l_linger = 0;

    if (setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &l, sizeof(struct linger))
        == -1)
    {
        ngx_connection_error(c, ngx_socket_errno,
                             "setsockopt(SO_LINGER) failed");
    }
}


/*
 * move bytes from src to dst through b (and, for bulk tunnels, the pipe);
 * on EOF from src, once everything is passed on, pass the FIN on with
 * shutdown(SHUT_WR); NGX_ERROR ends the tunnel, with the reset flags set
 * when a side reset its connection
 */

static ngx_int_t
ngx_stream_mcd_pump(ngx_stream_mcd_ctx_t *ctx, ngx_connection_t *src,
    ngx_connection_t *dst, ngx_buf_t *b, ngx_stream_mcd_pipe_t *pp,
    off_t *received, unsigned *moved)
{
    size_t     size;
    ssize_t    n;
    ngx_err_t  err;
    unsigned  *eof, *shut, *src_reset, *dst_reset;

    if (src == ctx->session->connection) {
        eof = &ctx->client_eof;
        shut = &ctx->upstream_shut;
        src_reset = &ctx->client_reset;
        dst_reset = &ctx->upstream_reset;

    } else {
        eof = &ctx->upstream_eof;
        shut = &ctx->client_shut;
        src_reset = &ctx->upstream_reset;
        dst_reset = &ctx->client_reset;
    }

    for ( ;; ) {

        if (b->pos < b->last && dst->write->ready) {

            n = send(dst->fd, b->pos, b->last - b->pos, 0);

            if (n == -1) {
                err = ngx_socket_errno;

                if (err == NGX_EAGAIN) {
                    dst->write->ready = 0;

                } else if (err != NGX_EINTR) {
                    dst->write->error = 1;

                    if (err == NGX_ECONNRESET || err == NGX_EPIPE) {
                        *dst_reset = 1;
                    }

                    ngx_connection_error(dst, err, "send() failed");
                    return NGX_ERROR;
                }

            } else {
                b->pos += n;
                dst->sent += n;
                *moved = 1;
            }
        }

        if (b->pos == b->last) {
            b->pos = b->start;
            b->last = b->start;

#if (NGX_LINUX)
            if (pp->fd[0] != -1) {
                /* the buffer is drained: the pipe takes over */

                if (ngx_stream_mcd_splice(src, dst, pp, eof, src_reset,
                                          dst_reset, received, moved)
                    != NGX_OK)
                {
                    return NGX_ERROR;
                }

                break;
            }
#endif
        }

        if (b->pos < b->last && dst->write->ready) {
            /* a short send: try again before reading more */
            continue;
        }

        size = b->end - b->last;

        if (size == 0 || *eof || !src->read->ready) {
            break;
        }

        n = ngx_stream_mcd_recv(src, b->last, size, src_reset);

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
            err = ngx_socket_errno;

            if (err == NGX_ECONNRESET || err == NGX_ENOTCONN) {
                *dst_reset = 1;
            }

            ngx_connection_error(dst, err, ngx_shutdown_socket_n " failed");
            return NGX_ERROR;
        }

        *shut = 1;
    }

    return NGX_OK;
}


/*
 * recv() that tells a reset apart: > 0 bytes, 0 for EOF, NGX_AGAIN (the
 * readiness is cleared only then), NGX_ERROR (with *reset set for
 * ECONNRESET)
 */

static ssize_t
ngx_stream_mcd_recv(ngx_connection_t *c, u_char *buf, size_t size,
    unsigned *reset)
{
    ssize_t    n;
    ngx_err_t  err;

    for ( ;; ) {
        n = recv(c->fd, buf, size, 0);

        if (n > 0) {
            return n;
        }

        if (n == 0) {
            c->read->ready = 0;
            c->read->eof = 1;
            return 0;
        }

        err = ngx_socket_errno;

        if (err == NGX_EINTR) {
            continue;
        }

        if (err == NGX_EAGAIN) {
            c->read->ready = 0;
            return NGX_AGAIN;
        }

        c->read->ready = 0;
        c->read->error = 1;

        if (err == NGX_ECONNRESET) {
            *reset = 1;
        }

        ngx_connection_error(c, err, "recv() failed");

        return NGX_ERROR;
    }
}


#if (NGX_LINUX)

static ngx_int_t
ngx_stream_mcd_splice(ngx_connection_t *src, ngx_connection_t *dst,
    ngx_stream_mcd_pipe_t *pp, unsigned *eof, unsigned *src_reset,
    unsigned *dst_reset, off_t *received, unsigned *moved)
{
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

                    if (err == NGX_ECONNRESET || err == NGX_EPIPE) {
                        *dst_reset = 1;
                    }

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

                if (err == NGX_ECONNRESET) {
                    *src_reset = 1;
                }

                ngx_connection_error(src, err, "splice() from socket failed");
                return NGX_ERROR;
            }

            /*
             * EAGAIN: the socket is empty, or the pipe, which holds bytes,
             * has no room for more.  Only an empty pipe proves the first:
             * with bytes in the pipe the readiness stays, and the socket is
             * read again once the pipe drained (a FIN waiting behind a full
             * pipe raises no other event)
             */

            if (pp->pending == 0) {
                src->read->ready = 0;
                break;
            }

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


void
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
