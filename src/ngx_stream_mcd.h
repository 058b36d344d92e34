
/*
 * Copyright (C) ngx_mcd authors
 *
 * The stream module's shared declarations.  The module is four files:
 *
 *   ngx_stream_mcd_module.c  directives, configuration, variables, the
 *                            content handler, finalization
 *   ngx_stream_mcd_front.c   the front door: CONNECT head or ClientHello,
 *                            the decision, the wait for the upstream step
 *   ngx_stream_mcd_relay.c   the tunnel: copy or splice, both ways
 *   ngx_stream_mcd_refuse.c  refusals: an answer, a lingering close
 *
 * The upstream step itself (resolve, guard, connect) is shared with the
 * http side: ngx_mcd_upstream.c.
 */


#ifndef _NGX_STREAM_MCD_H_INCLUDED_
#define _NGX_STREAM_MCD_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_stream.h>

#include "ngx_mcd.h"
#include "ngx_mcd_upstream.h"
#include "ngx_mcd_metrics.h"
#include "mcd_connect.h"
#include "mcd_tls.h"


#define NGX_STREAM_MCD_MIN_BUFFER      1024
#define NGX_STREAM_MCD_LOG_LINE        128

#define NGX_STREAM_CLIENT_CLOSED       499
#define NGX_STREAM_MCD_UNAVAILABLE     503
#define NGX_STREAM_MCD_TIMEOUT         504
#define NGX_STREAM_MCD_AUTH_REQUIRED   407
#define NGX_STREAM_MCD_AUTH_TRIES      3


/* mcd_decrypt_pass, mcd_http_pass: an http listener, where it was named */

typedef struct {
    ngx_addr_t                  *addr;
    u_char                      *file;
    ngx_uint_t                   line;
} ngx_stream_mcd_pass_t;


typedef struct {
    ngx_uint_t                   mode;
    ngx_str_t                    profile_name;
    ngx_mcd_profile_t           *profile;
    ngx_stream_complex_value_t  *profile_value;     /* "$variable" */
    ngx_array_t                 *connect_ports;     /* in_port_t */
    ngx_mcd_destination_t       *destination;
    ngx_msec_t                   connect_timeout;
    ngx_msec_t                   idle_timeout;
    ngx_msec_t                   next_upstream_timeout;
    ngx_uint_t                   next_upstream_tries;
    size_t                       buffer_size;
    ngx_flag_t                   verify_destination;
    ngx_flag_t                   splice;
    ngx_stream_mcd_pass_t        decrypt_pass;
    ngx_stream_mcd_pass_t        http_pass;
    ngx_str_t                    auth_realm;        /* mcd_proxy_auth */
    u_char                      *auth_file;         /* where it is set */
    ngx_uint_t                   auth_line;
    ngx_mcd_users_t             *auth_users;

    u_char                      *profile_file;      /* of "$variable" */
    ngx_uint_t                   profile_line;
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
    ngx_mcd_profile_t           *profile;           /* that decides */
    ngx_str_t                    profile_name;

    ngx_uint_t                   action;
    ngx_mcd_reason_e             reason;
    ngx_str_t                    host;              /* as the client sent it */
    ngx_str_t                    fqdn;              /* normalised */
    ngx_str_t                    rule;
    ngx_str_t                    upstream;          /* fqdn:port */
    ngx_str_t                    upstream_addr;     /* address:port */
    ngx_str_t                    sni;               /* as the client sent it */
    ngx_str_t                    alpn;
    ngx_str_t                    original_dst;      /* address:port */
    ngx_str_t                    user;              /* mcd_proxy_auth */
    ngx_uint_t                   auth_tries;
    struct sockaddr             *orig_sockaddr;
    socklen_t                    orig_socklen;
    in_port_t                    port;
    ngx_uint_t                   name_type;

    u_char                      *peek;              /* the head, consumed */
    size_t                       peek_size;
    size_t                       head_len;          /* consumed so far */
    size_t                       peeked;            /* valid in peek */
    mcd_connect_scan_t           scan;
    size_t                       need;              /* ClientHello bytes */
    int                          lowat;             /* SO_RCVLOWAT set */

    ngx_mcd_upstream_t           upstream_step;
    ngx_stream_upstream_state_t *state;
    ngx_msec_t                   connect_start;

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
    unsigned                     client_reset;      /* client sent RST */
    unsigned                     upstream_reset;    /* upstream sent RST */

    unsigned                     decided:1;
    unsigned                     request_eof:1;     /* FIN with the request */
    unsigned                     waiting:1;         /* in the upstream step */
    unsigned                     connected:1;
    unsigned                     finalized:1;
    unsigned                     hello:1;           /* a ClientHello parsed */
    unsigned                     ech:1;
    unsigned                     silent:1;          /* refuse without a byte */
    unsigned                     auth_retry:1;      /* 407, then read again */
    unsigned                     auth_pending:1;    /* waiting for a retry */
    unsigned                     counted:1;         /* in mcd_decisions */
} ngx_stream_mcd_ctx_t;


/* ngx_stream_mcd_module.c */
void ngx_stream_mcd_finalize(ngx_stream_session_t *s, ngx_uint_t status);
void ngx_stream_mcd_idle_handler(ngx_event_t *ev);

/* ngx_stream_mcd_front.c */
void ngx_stream_mcd_explicit_handler(ngx_event_t *rev);
void ngx_stream_mcd_transparent_handler(ngx_event_t *rev);
ngx_listening_t *ngx_stream_mcd_http_listener(ngx_cycle_t *cycle,
    ngx_addr_t *addr, ngx_uint_t intercept);

void ngx_stream_mcd_retry(ngx_stream_session_t *s);


void ngx_stream_mcd_log(ngx_stream_session_t *s);
void ngx_stream_mcd_count(ngx_stream_session_t *s);

/* ngx_stream_mcd_relay.c */
void ngx_stream_mcd_connected(ngx_stream_session_t *s);
void ngx_stream_mcd_close_pipes(ngx_stream_mcd_ctx_t *ctx);

/* ngx_stream_mcd_refuse.c */
void ngx_stream_mcd_refuse(ngx_stream_session_t *s, ngx_uint_t status,
    ngx_mcd_reason_e reason, const char *detail);


extern ngx_module_t  ngx_stream_mcd_module;


#endif /* _NGX_STREAM_MCD_H_INCLUDED_ */
