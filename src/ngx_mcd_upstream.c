
/*
 * Copyright (C) ngx_mcd authors
 *
 * The upstream step: resolve -> guard -> connect, shared by the stream front
 * door and the http side; the reasons; log escaping.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>
#include <ngx_event_connect.h>

#include <ifaddrs.h>

#include "ngx_mcd.h"
#include "ngx_mcd_upstream.h"


#define NGX_MCD_LOCAL_ADDRS_TTL  1000


static void ngx_mcd_upstream_resolve_handler(ngx_resolver_ctx_t *rctx);
static void ngx_mcd_upstream_timeout_handler(ngx_event_t *ev);
static void ngx_mcd_upstream_connect(ngx_mcd_upstream_t *u);
static void ngx_mcd_upstream_connect_handler(ngx_event_t *ev);
static void ngx_mcd_upstream_next(ngx_mcd_upstream_t *u, ngx_uint_t timedout);
static void ngx_mcd_upstream_finish(ngx_mcd_upstream_t *u, ngx_int_t rc,
    ngx_mcd_reason_e reason);
static ngx_int_t ngx_mcd_upstream_test_connect(ngx_connection_t *c);
static void ngx_mcd_upstream_close_peer(ngx_mcd_upstream_t *u);
static ngx_int_t ngx_mcd_guard(ngx_mcd_upstream_t *u, ngx_addr_t *addr);
static ngx_int_t ngx_mcd_sockaddr_bytes(struct sockaddr *sa, int *family,
    u_char *bytes);
static ngx_int_t ngx_mcd_is_listener(struct sockaddr *sa, socklen_t len);
static ngx_int_t ngx_mcd_is_local(int family, u_char *bytes);
static void ngx_mcd_handoff_cleanup(void *data);


static ngx_str_t  ngx_mcd_reasons[] = {
    ngx_null_string,
    ngx_string("policy"),
    ngx_string("port"),
    ngx_string("bad_name"),
    ngx_string("no_sni"),
    ngx_string("bad_request"),
    ngx_string("dns"),
    ngx_string("connect"),
    ngx_string("timeout"),
    ngx_string("dst_mismatch"),
    ngx_string("dst_blocked"),
    ngx_string("loop"),
    ngx_string("upstream_reset"),
    ngx_string("client_closed"),
    ngx_string("shutdown"),
    ngx_string("overload"),
    ngx_string("internal"),
    ngx_string("decrypt_unavailable"),
    ngx_string("sni_mismatch"),
    ngx_string("host_mismatch"),
    ngx_string("upstream_cert"),
    ngx_string("no_profile"),
    ngx_string("auth")
};


ngx_str_t *
ngx_mcd_reason_name(ngx_mcd_reason_e reason)
{
    if (reason >= NGX_MCD_REASON_LAST) {
        reason = NGX_MCD_REASON_INTERNAL;
    }

    return &ngx_mcd_reasons[reason];
}


/*
 * client-supplied bytes for a log line: '"', '\' and bytes outside
 * printable ASCII become \xHH, so a client can neither end the quoted
 * string nor start a line of its own; returns the end of dst, which must
 * hold 4 * size bytes
 */

u_char *
ngx_mcd_escape(u_char *dst, u_char *src, size_t size)
{
    u_char  c;

    static u_char  hex[] = "0123456789ABCDEF";

    while (size--) {
        c = *src++;

        if (c < 0x20 || c >= 0x7f || c == '"' || c == '\\') {
            *dst++ = '\\';
            *dst++ = 'x';
            *dst++ = hex[c >> 4];
            *dst++ = hex[c & 0xf];
            continue;
        }

        *dst++ = c;
    }

    return dst;
}


ngx_int_t
ngx_mcd_escape_str(ngx_pool_t *pool, ngx_str_t *src, ngx_str_t *dst)
{
    u_char  *p;

    if (src->len == 0) {
        *dst = *src;
        return NGX_OK;
    }

    p = ngx_pnalloc(pool, src->len * 4);
    if (p == NULL) {
        return NGX_ERROR;
    }

    dst->len = ngx_mcd_escape(p, src->data, src->len) - p;
    dst->data = p;

    return NGX_OK;
}


/* "mcd_connect_ports PORT ...;", "mcd_http_ports PORT ...;" */

char *
ngx_mcd_ports(ngx_conf_t *cf, ngx_array_t **ports)
{
    ngx_int_t    n;
    ngx_str_t   *value;
    in_port_t   *port;
    ngx_uint_t   i;

    if (*ports != NGX_CONF_UNSET_PTR) {
        return "is duplicate";
    }

    *ports = ngx_array_create(cf->pool, cf->args->nelts - 1,
                              sizeof(in_port_t));
    if (*ports == NULL) {
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

        port = ngx_array_push(*ports);
        if (port == NULL) {
            return NGX_CONF_ERROR;
        }

        *port = (in_port_t) n;
    }

    return NGX_CONF_OK;
}


/* "mcd_destination allow|deny ADDRESS|CIDR|CLASS ...;" */

char *
ngx_mcd_destination(ngx_conf_t *cf, ngx_mcd_destination_t **dest)
{
    unsigned                action;
    ngx_str_t              *value;
    ngx_uint_t              i;
    const char             *err;
    mcd_addr_rule_t        *rule;
    ngx_mcd_where_t        *where;
    ngx_mcd_destination_t  *d;

    value = cf->args->elts;

    if (ngx_strcmp(value[1].data, "allow") == 0) {
        action = MCD_ADDR_ALLOW;

    } else if (ngx_strcmp(value[1].data, "deny") == 0) {
        action = MCD_ADDR_DENY;

    } else {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid action \"%V\" in \"mcd_destination\", "
                           "it must be \"allow\" or \"deny\"", &value[1]);
        return NGX_CONF_ERROR;
    }

    d = *dest;

    if (d == NULL || d == NGX_CONF_UNSET_PTR) {
        d = ngx_pcalloc(cf->pool, sizeof(ngx_mcd_destination_t));
        if (d == NULL) {
            return NGX_CONF_ERROR;
        }

        if (ngx_array_init(&d->rules, cf->pool, 4, sizeof(mcd_addr_rule_t))
            != NGX_OK
            || ngx_array_init(&d->where, cf->pool, 4, sizeof(ngx_mcd_where_t))
               != NGX_OK)
        {
            return NGX_CONF_ERROR;
        }

        *dest = d;
    }

    for (i = 2; i < cf->args->nelts; i++) {

        rule = ngx_array_push(&d->rules);
        where = ngx_array_push(&d->where);
        if (rule == NULL || where == NULL) {
            return NGX_CONF_ERROR;
        }

        where->file = cf->conf_file->file.name.data;
        where->line = cf->conf_file->line;

        err = NULL;

        if (mcd_addr_rule_parse(action, value[i].data, value[i].len, rule,
                                &err)
            != 0)
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid value \"%V\" in "
                               "\"mcd_destination\"%s%s", &value[i],
                               err ? ": " : "", err ? err : "");
            return NGX_CONF_ERROR;
        }
    }

    return NGX_CONF_OK;
}


/* the step */


void
ngx_mcd_upstream_start(ngx_mcd_upstream_t *u)
{
    ngx_int_t                rc;
    ngx_addr_t               addr;
    ngx_resolver_ctx_t      *rctx, temp;
    ngx_mcd_hosts_entry_t   *entry;

    u->detail = ngx_pnalloc(u->pool, NGX_MCD_DETAIL_LEN);
    if (u->detail == NULL) {
        ngx_mcd_upstream_finish(u, NGX_ERROR, NGX_MCD_REASON_INTERNAL);
        return;
    }

    u->detail[0] = '\0';

    if (u->next_timeout) {
        u->timer.handler = ngx_mcd_upstream_timeout_handler;
        u->timer.data = u;
        u->timer.log = u->log;
        ngx_add_timer(&u->timer, u->next_timeout);
    }

    if (u->fixed) {
        ngx_mcd_upstream_set_addrs(u, u->fixed, 1);
        return;
    }

    if (u->name_type == MCD_NAME_IPV4 || u->name_type == MCD_NAME_IPV6) {

        rc = ngx_parse_addr(u->pool, &addr, u->fqdn.data, u->fqdn.len);

        if (rc != NGX_OK) {
            ngx_mcd_upstream_finish(u, NGX_ERROR, NGX_MCD_REASON_INTERNAL);
            return;
        }

        ngx_mcd_upstream_set_addrs(u, &addr, 1);
        return;
    }

    entry = ngx_mcd_hosts_lookup((ngx_cycle_t *) ngx_cycle, &u->fqdn);

    if (entry != NULL) {
        ngx_mcd_upstream_set_addrs(u, entry->addrs, entry->naddrs);
        return;
    }

    temp.name = u->fqdn;

    rctx = ngx_resolve_start(u->resolver, &temp);

    if (rctx == NULL) {
        ngx_mcd_upstream_finish(u, NGX_ERROR, NGX_MCD_REASON_INTERNAL);
        return;
    }

    if (rctx == NGX_NO_RESOLVER) {
        ngx_cpystrn(u->detail, (u_char *) "name not in mcd_hosts_file and "
                    "no resolver configured", NGX_MCD_DETAIL_LEN);
        ngx_mcd_upstream_finish(u, NGX_DECLINED, NGX_MCD_REASON_DNS);
        return;
    }

    rctx->name = u->fqdn;
    rctx->handler = ngx_mcd_upstream_resolve_handler;
    rctx->data = u;
    rctx->timeout = u->resolver_timeout;

    u->resolver_ctx = rctx;

    if (ngx_resolve_name(rctx) != NGX_OK) {
        u->resolver_ctx = NULL;
        ngx_cpystrn(u->detail, (u_char *) "name resolution failed",
                    NGX_MCD_DETAIL_LEN);
        ngx_mcd_upstream_finish(u, NGX_DECLINED, NGX_MCD_REASON_DNS);
        return;
    }
}


static void
ngx_mcd_upstream_resolve_handler(ngx_resolver_ctx_t *rctx)
{
    ngx_uint_t           i, n;
    ngx_addr_t          *addrs;
    ngx_mcd_upstream_t  *u;

    u = rctx->data;

    if (rctx->state) {
        *ngx_snprintf(u->detail, NGX_MCD_DETAIL_LEN - 1,
                      "name resolution failed (%i: %s)", rctx->state,
                      ngx_resolver_strerror(rctx->state))
            = '\0';

        ngx_resolve_name_done(rctx);
        u->resolver_ctx = NULL;

        ngx_mcd_upstream_finish(u, NGX_DECLINED, NGX_MCD_REASON_DNS);
        return;
    }

    n = rctx->naddrs;

    addrs = ngx_palloc(u->pool, n * sizeof(ngx_addr_t));
    if (addrs == NULL) {
        ngx_resolve_name_done(rctx);
        u->resolver_ctx = NULL;
        ngx_mcd_upstream_finish(u, NGX_ERROR, NGX_MCD_REASON_INTERNAL);
        return;
    }

    /* the answer lives in the resolver's memory: copied below */

    for (i = 0; i < n; i++) {
        addrs[i].sockaddr = rctx->addrs[i].sockaddr;
        addrs[i].socklen = rctx->addrs[i].socklen;
        ngx_str_null(&addrs[i].name);
    }

    u->resolver_ctx = NULL;

    ngx_mcd_upstream_set_addrs(u, addrs, n);

    ngx_resolve_name_done(rctx);
}


/*
 * the addresses are known: copy them with the port set, judge each with the
 * destination guard, keep the allowed ones in order
 */

void
ngx_mcd_upstream_set_addrs(ngx_mcd_upstream_t *u, ngx_addr_t *addrs,
    ngx_uint_t naddrs)
{
    u_char           *p;
    size_t            len;
    ngx_int_t         rc;
    ngx_uint_t        i, n;
    ngx_addr_t       *a;
    struct sockaddr  *sa;

    u->resolved = ngx_palloc(u->pool,
                             (naddrs ? naddrs : 1) * sizeof(ngx_addr_t));
    u->addrs = ngx_palloc(u->pool, (naddrs ? naddrs : 1) * sizeof(ngx_addr_t));
    if (u->resolved == NULL || u->addrs == NULL) {
        ngx_mcd_upstream_finish(u, NGX_ERROR, NGX_MCD_REASON_INTERNAL);
        return;
    }

    n = 0;
    rc = NGX_MCD_REASON_NONE;

    for (i = 0; i < naddrs; i++) {

        sa = ngx_palloc(u->pool, addrs[i].socklen);
        if (sa == NULL) {
            ngx_mcd_upstream_finish(u, NGX_ERROR, NGX_MCD_REASON_INTERNAL);
            return;
        }

        ngx_memcpy(sa, addrs[i].sockaddr, addrs[i].socklen);
        ngx_inet_set_port(sa, u->port);

        p = ngx_pnalloc(u->pool, NGX_SOCKADDR_STRLEN);
        if (p == NULL) {
            ngx_mcd_upstream_finish(u, NGX_ERROR, NGX_MCD_REASON_INTERNAL);
            return;
        }

        len = ngx_sock_ntop(sa, addrs[i].socklen, p, NGX_SOCKADDR_STRLEN, 1);

        a = &u->resolved[i];

        a->sockaddr = sa;
        a->socklen = addrs[i].socklen;
        a->name.len = len;
        a->name.data = p;

        switch (ngx_mcd_guard(u, a)) {

        case NGX_OK:
            u->addrs[n++] = *a;
            break;

        case NGX_BUSY:
            rc = NGX_MCD_REASON_LOOP;
            break;

        case NGX_DECLINED:
            if (rc == NGX_MCD_REASON_NONE) {
                rc = NGX_MCD_REASON_DST_BLOCKED;
            }
            break;

        default:
            ngx_mcd_upstream_finish(u, NGX_ERROR, NGX_MCD_REASON_INTERNAL);
            return;
        }
    }

    u->nresolved = naddrs;
    u->naddrs = n;
    u->next = 0;

    if (n == 0) {
        if (naddrs == 0) {
            ngx_cpystrn(u->detail, (u_char *) "the name has no address",
                        NGX_MCD_DETAIL_LEN);
            ngx_mcd_upstream_finish(u, NGX_DECLINED, NGX_MCD_REASON_DNS);
            return;
        }

        ngx_mcd_upstream_finish(u, NGX_DECLINED, rc);
        return;
    }

    if (u->check && u->check(u) != NGX_OK) {
        /* the owner has set the reason */
        ngx_mcd_upstream_finish(u, NGX_DECLINED, u->reason);
        return;
    }

    if (u->resolve_only) {
        /* decryption: the http side connects to this very address */
        u->current = &u->addrs[0];
        ngx_mcd_upstream_finish(u, NGX_OK, NGX_MCD_REASON_NONE);
        return;
    }

    ngx_mcd_upstream_connect(u);
}


/*
 * NGX_OK: connect; NGX_DECLINED: refused by a rule; NGX_BUSY: one of the
 * gateway's own listening sockets; the detail names the last refusal
 */

static ngx_int_t
ngx_mcd_guard(ngx_mcd_upstream_t *u, ngx_addr_t *addr)
{
    int                     family, builtin;
    u_char                  bytes[16];
    ngx_uint_t              n;
    ngx_mcd_where_t        *where;
    const mcd_addr_rule_t  *rule, *rules;

    if (ngx_mcd_sockaddr_bytes(addr->sockaddr, &family, bytes) != NGX_OK) {
        *ngx_snprintf(u->detail, NGX_MCD_DETAIL_LEN - 1,
                     "%V: not an internet address", &addr->name)
            = '\0';
        return NGX_DECLINED;
    }

    if (ngx_mcd_is_listener(addr->sockaddr, addr->socklen) == NGX_OK) {
        *ngx_snprintf(u->detail, NGX_MCD_DETAIL_LEN - 1,
                     "%V is a listening socket of this gateway",
                     &addr->name)
            = '\0';

        ngx_log_error(NGX_LOG_INFO, u->log, 0,
                      "mcd: destination %V skipped: %s", &addr->name,
                      u->detail);
        return NGX_BUSY;
    }

    rule = NULL;
    builtin = 0;

    rules = u->destination ? u->destination->rules.elts : NULL;
    n = u->destination ? u->destination->rules.nelts : 0;

    if (mcd_addr_judge(rules, n, family, bytes, &rule, &builtin)
        == MCD_ADDR_ALLOW)
    {
        return NGX_OK;
    }

    if (builtin || rule == NULL || rules == NULL) {
        *ngx_snprintf(u->detail, NGX_MCD_DETAIL_LEN - 1,
                      "%V refused by \"%s\" (built-in)", &addr->name,
                      rule ? rule->text : "deny")
            = '\0';

    } else {
        where = u->destination->where.elts;
        where += rule - rules;

        *ngx_snprintf(u->detail, NGX_MCD_DETAIL_LEN - 1,
                      "%V refused by \"%s\" (%s:%ui)", &addr->name,
                      rule->text, where->file, where->line)
            = '\0';
    }

    ngx_log_error(NGX_LOG_INFO, u->log, 0,
                  "mcd: destination %s", u->detail);

    return NGX_DECLINED;
}


static ngx_int_t
ngx_mcd_sockaddr_bytes(struct sockaddr *sa, int *family, u_char *bytes)
{
    struct sockaddr_in   *sin;
#if (NGX_HAVE_INET6)
    struct sockaddr_in6  *sin6;
#endif

    switch (sa->sa_family) {

    case AF_INET:
        sin = (struct sockaddr_in *) sa;
        *family = AF_INET;
        ngx_memcpy(bytes, &sin->sin_addr, 4);
        return NGX_OK;

#if (NGX_HAVE_INET6)
    case AF_INET6:
        sin6 = (struct sockaddr_in6 *) sa;
        *family = AF_INET6;
        ngx_memcpy(bytes, &sin6->sin6_addr, 16);
        return NGX_OK;
#endif

    default:
        return NGX_DECLINED;
    }
}


/*
 * the loop guard: is addr:port one of the gateway's listening sockets?  A
 * wildcard listener counts for every address of this host on its port.
 * IPv4-mapped IPv6 addresses are compared as IPv4.
 */

static ngx_int_t
ngx_mcd_is_listener(struct sockaddr *sa, socklen_t len)
{
    int               family, lfamily;
    u_char            bytes[16], lbytes[16];
    in_port_t         port;
    ngx_uint_t        i;
    ngx_listening_t  *ls;

    static u_char  mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
    static u_char  zero[16];

    if (ngx_mcd_sockaddr_bytes(sa, &family, bytes) != NGX_OK) {
        return NGX_DECLINED;
    }

    if (family == AF_INET6 && ngx_memcmp(bytes, mapped, 12) == 0) {
        family = AF_INET;
        ngx_memmove(bytes, bytes + 12, 4);
    }

    port = ngx_inet_get_port(sa);

    ls = ngx_cycle->listening.elts;

    for (i = 0; i < ngx_cycle->listening.nelts; i++) {

        if (ls[i].type != SOCK_STREAM
            || ngx_inet_get_port(ls[i].sockaddr) != port
            || ngx_mcd_sockaddr_bytes(ls[i].sockaddr, &lfamily, lbytes)
               != NGX_OK)
        {
            continue;
        }

        if (lfamily == AF_INET6 && ngx_memcmp(lbytes, mapped, 12) == 0) {
            lfamily = AF_INET;
            ngx_memmove(lbytes, lbytes + 12, 4);
        }

        if (ngx_memcmp(lbytes, zero, lfamily == AF_INET ? 4 : 16) == 0) {

            /* a wildcard: [::] may also accept IPv4 (no ipv6only) */

            if ((lfamily == family || lfamily == AF_INET6)
                && ngx_mcd_is_local(family, bytes) == NGX_OK)
            {
                return NGX_OK;
            }

            continue;
        }

        if (lfamily == family
            && ngx_memcmp(lbytes, bytes, family == AF_INET ? 4 : 16) == 0)
        {
            return NGX_OK;
        }
    }

    return NGX_DECLINED;
}


/* an address of this host: loopback, unspecified, or an interface's */

static ngx_int_t
ngx_mcd_is_local(int family, u_char *bytes)
{
    int                    f;
    u_char                 b[16];
    ngx_uint_t             i;
    struct ifaddrs        *ifa, *p;

    static ngx_msec_t      updated;
    static ngx_uint_t      n, loaded;
    static struct {
        int                family;
        u_char             bytes[16];
    }                      local[64];

    if (mcd_addr_classes(family, bytes)
        & (MCD_ADDR_CLASS_LOOPBACK|MCD_ADDR_CLASS_UNSPECIFIED))
    {
        return NGX_OK;
    }

    /* the interfaces' addresses, refreshed at most once a second */

    if (!loaded || ngx_current_msec - updated > NGX_MCD_LOCAL_ADDRS_TTL) {

        if (getifaddrs(&ifa) == 0) {
            n = 0;

            for (p = ifa; p && n < 64; p = p->ifa_next) {
                if (p->ifa_addr == NULL
                    || ngx_mcd_sockaddr_bytes(p->ifa_addr, &f, b) != NGX_OK)
                {
                    continue;
                }

                local[n].family = f;
                ngx_memcpy(local[n].bytes, b, 16);
                n++;
            }

            freeifaddrs(ifa);
        }

        loaded = 1;
        updated = ngx_current_msec;
    }

    for (i = 0; i < n; i++) {
        if (local[i].family == family
            && ngx_memcmp(local[i].bytes, bytes, family == AF_INET ? 4 : 16)
               == 0)
        {
            return NGX_OK;
        }
    }

    return NGX_DECLINED;
}


static void
ngx_mcd_upstream_connect(ngx_mcd_upstream_t *u)
{
    ngx_int_t          rc;
    ngx_addr_t        *addr;
    ngx_connection_t  *pc;

    if (u->next >= u->naddrs || (u->tries && u->tried >= u->tries)) {
        ngx_mcd_upstream_finish(u, NGX_DECLINED,
                                u->timed_out ? NGX_MCD_REASON_TIMEOUT
                                             : NGX_MCD_REASON_CONNECT);
        return;
    }

    if (ngx_cycle->free_connection_n == 0) {
        ngx_log_error(NGX_LOG_WARN, u->log, 0,
                      "mcd: worker_connections are not enough for an "
                      "upstream connection");
        ngx_cpystrn(u->detail, (u_char *) "the gateway is out of "
                    "connections", NGX_MCD_DETAIL_LEN);
        ngx_mcd_upstream_finish(u, NGX_DECLINED, NGX_MCD_REASON_OVERLOAD);
        return;
    }

    addr = &u->addrs[u->next++];
    u->tried++;
    u->current = addr;

    if (u->attempt && u->attempt(u, addr) != NGX_OK) {
        ngx_mcd_upstream_finish(u, NGX_ERROR, NGX_MCD_REASON_INTERNAL);
        return;
    }

    ngx_memzero(&u->peer, sizeof(ngx_peer_connection_t));

    u->peer.sockaddr = addr->sockaddr;
    u->peer.socklen = addr->socklen;
    u->peer.name = &addr->name;
    u->peer.get = ngx_event_get_peer;
    u->peer.log = u->log;
    u->peer.log_error = NGX_ERROR_INFO;
    u->peer.type = SOCK_STREAM;
    u->peer.tries = 1;

    rc = ngx_event_connect_peer(&u->peer);

    ngx_log_debug2(NGX_LOG_DEBUG_EVENT, u->log, 0,
                   "mcd connect to %V: %i", &addr->name, rc);

    if (rc == NGX_ERROR || rc == NGX_BUSY || rc == NGX_DECLINED) {
        u->peer.connection = NULL;

        ngx_cpystrn(u->detail, (u_char *) "upstream connect failed",
                    NGX_MCD_DETAIL_LEN);

        ngx_mcd_upstream_next(u, 0);
        return;
    }

    /* rc == NGX_OK || rc == NGX_AGAIN */

    pc = u->peer.connection;

    pc->data = u;
    pc->pool = u->pool;
    pc->log = u->log;
    pc->read->log = u->log;
    pc->write->log = u->log;

    if (rc == NGX_OK) {
        ngx_mcd_upstream_finish(u, NGX_OK, NGX_MCD_REASON_NONE);
        return;
    }

    pc->read->handler = ngx_mcd_upstream_connect_handler;
    pc->write->handler = ngx_mcd_upstream_connect_handler;

    ngx_add_timer(pc->write, u->connect_timeout);
}


static void
ngx_mcd_upstream_connect_handler(ngx_event_t *ev)
{
    ngx_connection_t    *pc;
    ngx_mcd_upstream_t  *u;

    pc = ev->data;
    u = pc->data;

    if (pc->close) {
        /* the worker is shutting down: the connect did not complete */
        ngx_cpystrn(u->detail, (u_char *) "the worker is shutting down",
                    NGX_MCD_DETAIL_LEN);
        ngx_mcd_upstream_finish(u, NGX_DECLINED, NGX_MCD_REASON_SHUTDOWN);
        return;
    }

    if (ev->timedout) {
        ngx_log_error(NGX_LOG_INFO, u->log, NGX_ETIMEDOUT,
                      "mcd: upstream connect timed out (%V)", u->peer.name);

        ngx_cpystrn(u->detail, (u_char *) "upstream connect timed out",
                    NGX_MCD_DETAIL_LEN);

        ngx_mcd_upstream_next(u, 1);
        return;
    }

    if (!ev->ready && !ev->eof && !ev->error) {
        /* not an event of the socket: nothing is known yet */
        return;
    }

    if (ngx_mcd_upstream_test_connect(pc) != NGX_OK) {
        ngx_cpystrn(u->detail, (u_char *) "upstream connect failed",
                    NGX_MCD_DETAIL_LEN);
        ngx_mcd_upstream_next(u, 0);
        return;
    }

    if (pc->write->timer_set) {
        ngx_del_timer(pc->write);
    }

    ngx_mcd_upstream_finish(u, NGX_OK, NGX_MCD_REASON_NONE);
}


static ngx_int_t
ngx_mcd_upstream_test_connect(ngx_connection_t *c)
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
ngx_mcd_upstream_next(ngx_mcd_upstream_t *u, ngx_uint_t timedout)
{
    u->timed_out = timedout;

    ngx_mcd_upstream_close_peer(u);
    ngx_mcd_upstream_connect(u);
}


static void
ngx_mcd_upstream_timeout_handler(ngx_event_t *ev)
{
    ngx_mcd_upstream_t  *u;

    u = ev->data;

    ngx_log_error(NGX_LOG_INFO, u->log, NGX_ETIMEDOUT,
                  "mcd: mcd_next_upstream_timeout expired");

    *ngx_snprintf(u->detail, NGX_MCD_DETAIL_LEN - 1,
                  "no connection within %M ms (mcd_next_upstream_timeout)",
                  u->next_timeout)
        = '\0';

    ngx_mcd_upstream_finish(u, NGX_DECLINED, NGX_MCD_REASON_TIMEOUT);
}


static void
ngx_mcd_upstream_finish(ngx_mcd_upstream_t *u, ngx_int_t rc,
    ngx_mcd_reason_e reason)
{
    if (u->done) {
        return;
    }

    u->done = 1;
    u->reason = reason;

    if (u->timer.timer_set) {
        ngx_del_timer(&u->timer);
    }

    if (u->resolver_ctx) {
        ngx_resolve_name_done(u->resolver_ctx);
        u->resolver_ctx = NULL;
    }

    if (rc != NGX_OK) {
        ngx_mcd_upstream_close_peer(u);

        if (u->detail && u->detail[0] == '\0') {
            ngx_cpystrn(u->detail, ngx_mcd_reason_name(reason)->data,
                        NGX_MCD_DETAIL_LEN);
        }
    }

    u->handler(u, rc);
}


/* the owner gives up: nothing is called back any more */

void
ngx_mcd_upstream_cancel(ngx_mcd_upstream_t *u)
{
    u->done = 1;

    if (u->timer.timer_set) {
        ngx_del_timer(&u->timer);
    }

    if (u->resolver_ctx) {
        ngx_resolve_name_done(u->resolver_ctx);
        u->resolver_ctx = NULL;
    }

    ngx_mcd_upstream_close_peer(u);
}


static void
ngx_mcd_upstream_close_peer(ngx_mcd_upstream_t *u)
{
    if (u->peer.connection) {
        ngx_close_connection(u->peer.connection);
        u->peer.connection = NULL;
    }
}


/* the hand-off record: a pool cleanup of its own marks it on the pool */

ngx_mcd_handoff_t *
ngx_mcd_handoff_add(ngx_connection_t *c)
{
    ngx_pool_cleanup_t  *cln;

    cln = ngx_pool_cleanup_add(c->pool, sizeof(ngx_mcd_handoff_t));
    if (cln == NULL) {
        return NULL;
    }

    ngx_memzero(cln->data, sizeof(ngx_mcd_handoff_t));
    cln->handler = ngx_mcd_handoff_cleanup;

    return cln->data;
}


ngx_mcd_handoff_t *
ngx_mcd_handoff_get(ngx_connection_t *c)
{
    ngx_pool_cleanup_t  *cln;

    for (cln = c->pool->cleanup; cln; cln = cln->next) {
        if (cln->handler == ngx_mcd_handoff_cleanup) {
            return cln->data;
        }
    }

    return NULL;
}


static void
ngx_mcd_handoff_cleanup(void *data)
{
    /* nothing to release: the record only marks the connection */
}
