
/*
 * Copyright (C) ngx_mcd authors
 *
 * The upstream step shared by the stream front door and the http side:
 * resolve a name (IP literal, hosts file, resolver), judge every address
 * with the destination guard, connect to the allowed ones in turn, all
 * bounded by mcd_next_upstream_tries and mcd_next_upstream_timeout.  It
 * knows nothing of stream sessions or http requests: its owner fills in an
 * ngx_mcd_upstream_t and is called back once, with the peer connected or
 * with the reason why not.
 */


#ifndef _NGX_MCD_UPSTREAM_H_INCLUDED_
#define _NGX_MCD_UPSTREAM_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>
#include <ngx_event_connect.h>

#include "mcd_addr.h"
#include "ngx_mcd.h"


/* why a connection was refused or failed; "" for none */

typedef enum {
    NGX_MCD_REASON_NONE = 0,
    NGX_MCD_REASON_POLICY,
    NGX_MCD_REASON_PORT,
    NGX_MCD_REASON_BAD_NAME,
    NGX_MCD_REASON_NO_SNI,
    NGX_MCD_REASON_BAD_REQUEST,
    NGX_MCD_REASON_DNS,
    NGX_MCD_REASON_CONNECT,
    NGX_MCD_REASON_TIMEOUT,
    NGX_MCD_REASON_DST_MISMATCH,
    NGX_MCD_REASON_DST_BLOCKED,
    NGX_MCD_REASON_LOOP,
    NGX_MCD_REASON_UPSTREAM_RESET,
    NGX_MCD_REASON_CLIENT_CLOSED,
    NGX_MCD_REASON_SHUTDOWN,
    NGX_MCD_REASON_OVERLOAD,
    NGX_MCD_REASON_INTERNAL,
    NGX_MCD_REASON_DECRYPT_UNAVAILABLE,
    NGX_MCD_REASON_SNI_MISMATCH,
    NGX_MCD_REASON_HOST_MISMATCH,
    NGX_MCD_REASON_UPSTREAM_CERT,
    NGX_MCD_REASON_NO_PROFILE,
    NGX_MCD_REASON_AUTH,
    NGX_MCD_REASON_LAST
} ngx_mcd_reason_e;


#define NGX_MCD_DETAIL_LEN  256


/* the mcd_destination rules of a server, with where each was written */

typedef struct {
    u_char                      *file;
    ngx_uint_t                   line;
} ngx_mcd_where_t;


typedef struct {
    ngx_array_t                  rules;          /* mcd_addr_rule_t */
    ngx_array_t                  where;          /* ngx_mcd_where_t */
} ngx_mcd_destination_t;


/*
 * the decision, handed over with a live connection from the stream front
 * door to an http server (mcd_decrypt_pass: the interception server, after
 * a "decrypt" verdict; mcd_http_pass: a plain http server, mode "http",
 * no verdict yet); found on the connection's pool
 */

typedef struct {
    ngx_str_t                    fqdn;           /* authorized, normalised */
    ngx_str_t                    sni;            /* as the client sent it */
    ngx_str_t                    rule;
    ngx_str_t                    profile;
    ngx_mcd_profile_t           *profile_conf;   /* that decided */
    ngx_str_t                    upstream;       /* fqdn:port */
    ngx_str_t                    upstream_addr;  /* address:port resolved */
    ngx_str_t                    alpn;           /* as the client sent it */
    ngx_str_t                    original_dst;   /* address:port */
    ngx_str_t                    user;           /* mcd_proxy_auth */
    ngx_str_t                    auth_realm;     /* mcd_http_pass: the */
    ngx_mcd_users_t             *auth_users;     /* front door's auth */
    ngx_uint_t                   mode;           /* NGX_MCD_MODE_* */
    ngx_uint_t                   action;         /* MCD_ACTION_* */
    in_port_t                    port;
    unsigned                     ech:1;
} ngx_mcd_handoff_t;


typedef struct ngx_mcd_upstream_s  ngx_mcd_upstream_t;

typedef void (*ngx_mcd_upstream_handler_pt)(ngx_mcd_upstream_t *u,
    ngx_int_t rc);
typedef ngx_int_t (*ngx_mcd_upstream_check_pt)(ngx_mcd_upstream_t *u);
typedef ngx_int_t (*ngx_mcd_upstream_attempt_pt)(ngx_mcd_upstream_t *u,
    ngx_addr_t *addr);


struct ngx_mcd_upstream_s {
    /* filled in by the owner */
    ngx_pool_t                  *pool;
    ngx_log_t                   *log;
    void                        *data;

    ngx_str_t                    fqdn;           /* normalised name */
    ngx_uint_t                   name_type;      /* MCD_NAME_* */
    in_port_t                    port;
    ngx_addr_t                  *fixed;          /* use this address */

    ngx_resolver_t              *resolver;
    ngx_msec_t                   resolver_timeout;
    ngx_msec_t                   connect_timeout;
    ngx_msec_t                   next_timeout;   /* 0: none */
    ngx_uint_t                   tries;          /* 0: every address */
    ngx_mcd_destination_t       *destination;    /* NULL: built-in only */

    ngx_mcd_upstream_handler_pt  handler;        /* called once */
    ngx_mcd_upstream_check_pt    check;          /* addresses known */
    ngx_mcd_upstream_attempt_pt  attempt;        /* before each connect */

    /* results */
    ngx_peer_connection_t        peer;           /* .connection on NGX_OK */
    ngx_addr_t                  *resolved;       /* all, port set */
    ngx_uint_t                   nresolved;
    ngx_addr_t                  *addrs;          /* the guard allowed */
    ngx_uint_t                   naddrs;
    ngx_uint_t                   next;           /* next address to try */
    ngx_uint_t                   tried;
    ngx_addr_t                  *current;        /* being connected to */
    ngx_mcd_reason_e             reason;
    u_char                      *detail;         /* NUL-terminated */

    ngx_resolver_ctx_t          *resolver_ctx;
    ngx_event_t                  timer;          /* next_timeout */

    unsigned                     resolve_only:1; /* no connect */
    unsigned                     timed_out:1;    /* last attempt */
    unsigned                     done:1;
};


void ngx_mcd_upstream_start(ngx_mcd_upstream_t *u);
void ngx_mcd_upstream_set_addrs(ngx_mcd_upstream_t *u, ngx_addr_t *addrs,
    ngx_uint_t naddrs);
void ngx_mcd_upstream_cancel(ngx_mcd_upstream_t *u);

char *ngx_mcd_destination(ngx_conf_t *cf, ngx_mcd_destination_t **dest);
char *ngx_mcd_ports(ngx_conf_t *cf, ngx_array_t **ports);

ngx_mcd_handoff_t *ngx_mcd_handoff_add(ngx_connection_t *c);
ngx_mcd_handoff_t *ngx_mcd_handoff_get(ngx_connection_t *c);

ngx_str_t *ngx_mcd_reason_name(ngx_mcd_reason_e reason);
u_char *ngx_mcd_escape(u_char *dst, u_char *src, size_t size);
ngx_int_t ngx_mcd_escape_str(ngx_pool_t *pool, ngx_str_t *src,
    ngx_str_t *dst);


#endif /* _NGX_MCD_UPSTREAM_H_INCLUDED_ */
