
/*
 * Copyright (C) ngx_mcd authors
 *
 * The gateway's counters, summed over all workers: one shared memory zone
 * ("mcd_metrics"), kept across reloads (nginx hands the zone of the old
 * cycle to the new one when its name, size and tag are the same).  The
 * master lays it out when a configuration is loaded: a slot of decision
 * counters per profile name, found again by name after a reload.  Workers
 * only add to counters, with one atomic add each: no lock.  "mcd_status"
 * (http) prints them in the Prometheus text format.
 */


#include <ngx_config.h>
#include <ngx_core.h>

#include "ngx_mcd.h"
#include "ngx_mcd_upstream.h"
#include "ngx_mcd_metrics.h"


#define NGX_MCD_METRICS_ZONE_SIZE  (2 * 1024 * 1024)
#define NGX_MCD_METRICS_LAYOUT     0x6d636401    /* "mcd", 1 */


static ngx_int_t ngx_mcd_metrics_init_zone(ngx_shm_zone_t *shm_zone,
    void *data);
static ngx_uint_t ngx_mcd_metrics_slot(ngx_mcd_metrics_t *m,
    ngx_str_t *name);
static u_char *ngx_mcd_metrics_label(u_char *p, u_char *src, size_t len);


ngx_mcd_metrics_t  *ngx_mcd_metrics;

static ngx_str_t  ngx_mcd_metrics_zone_name = ngx_string("mcd_metrics");


/* from the stream and http blocks: the zone is added once per cycle */

ngx_int_t
ngx_mcd_metrics_zone(ngx_conf_t *cf)
{
    ngx_shm_zone_t  *shm_zone;

    shm_zone = ngx_shared_memory_add(cf, &ngx_mcd_metrics_zone_name,
                                     NGX_MCD_METRICS_ZONE_SIZE,
                                     &ngx_mcd_module);
    if (shm_zone == NULL) {
        return NGX_ERROR;
    }

    shm_zone->init = ngx_mcd_metrics_init_zone;
    shm_zone->noreuse = 0;

    return NGX_OK;
}


/*
 * in the master, for every configuration loaded: the counters of the
 * previous one are kept (same layout), each profile gets the slot of its
 * name
 */

static ngx_int_t
ngx_mcd_metrics_init_zone(ngx_shm_zone_t *shm_zone, void *data)
{
    ngx_mcd_metrics_t  *m = data;

    ngx_slab_pool_t  *shpool;

    shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;

    if (m == NULL && shm_zone->shm.exists) {
        m = shpool->data;
    }

    if (m == NULL || m->layout != NGX_MCD_METRICS_LAYOUT) {

        m = ngx_slab_alloc(shpool, sizeof(ngx_mcd_metrics_t));
        if (m == NULL) {
            ngx_log_error(NGX_LOG_EMERG, shm_zone->shm.log, 0,
                          "no room for the gateway's counters in the "
                          "\"%V\" zone", &shm_zone->shm.name);
            return NGX_ERROR;
        }

        ngx_memzero(m, sizeof(ngx_mcd_metrics_t));

        m->layout = NGX_MCD_METRICS_LAYOUT;

        /* slot 0: no profile (yet); slot 1: names beyond the table */

        m->nprofiles = 2;
        m->profiles[1].len = sizeof("(other)") - 1;
        ngx_memcpy(m->profiles[1].data, "(other)", sizeof("(other)") - 1);

        shpool->data = m;
    }

    shm_zone->data = m;
    ngx_mcd_metrics = m;

    return NGX_OK;
}


/*
 * called by the core module once the profiles are known (init_module of
 * the cycle whose zone was just initialized)
 */

void
ngx_mcd_metrics_assign(ngx_cycle_t *cycle)
{
    ngx_uint_t           i;
    ngx_mcd_conf_t      *mcf;
    ngx_mcd_profile_t  **profiles;

    mcf = (ngx_mcd_conf_t *) ngx_get_conf(cycle->conf_ctx, ngx_mcd_module);

    if (mcf == NULL || ngx_mcd_metrics == NULL) {
        return;
    }

    if (!mcf->metrics) {
        /* "mcd_metrics off": nothing is counted, mcd_status shows zeros */
        ngx_mcd_metrics = NULL;
        return;
    }

    profiles = mcf->profiles.elts;

    for (i = 0; i < mcf->profiles.nelts; i++) {
        profiles[i]->metrics = ngx_mcd_metrics->decisions[
                                   ngx_mcd_metrics_slot(ngx_mcd_metrics,
                                                        &profiles[i]->name)];
    }
}


static ngx_uint_t
ngx_mcd_metrics_slot(ngx_mcd_metrics_t *m, ngx_str_t *name)
{
    size_t      len;
    ngx_uint_t  i;

    len = ngx_min(name->len, NGX_MCD_METRICS_NAME_LEN);

    for (i = 2; i < m->nprofiles; i++) {
        if (m->profiles[i].len == len
            && ngx_memcmp(m->profiles[i].data, name->data, len) == 0)
        {
            return i;
        }
    }

    if (m->nprofiles == NGX_MCD_METRICS_PROFILES) {
        return 1;
    }

    i = m->nprofiles;

    ngx_memcpy(m->profiles[i].data, name->data, len);
    m->profiles[i].len = len;

    m->nprofiles++;

    return i;
}


void
ngx_mcd_metrics_decision(ngx_mcd_profile_t *profile, ngx_uint_t mode,
    ngx_uint_t action, ngx_uint_t reason)
{
    ngx_atomic_t  *slot;

    if (ngx_mcd_metrics == NULL) {
        return;
    }

    slot = (profile != NULL && profile->metrics != NULL)
           ? profile->metrics : ngx_mcd_metrics->decisions[0];

    if (mode > NGX_MCD_MODE_HTTP || action > MCD_ACTION_DECRYPT
        || reason >= NGX_MCD_METRICS_REASONS)
    {
        return;
    }

    (void) ngx_atomic_fetch_add(&slot[ngx_mcd_metrics_index(mode, action,
                                                             reason)], 1);
}


/*
 * how an upstream attempt ended, by reason: failures of the upstream
 * (dns, connect, timeout, upstream_reset, upstream_cert) and refusals of
 * the destination guard (dst_blocked, loop)
 */

void
ngx_mcd_metrics_outcome(ngx_uint_t reason)
{
    if (ngx_mcd_metrics == NULL || reason >= NGX_MCD_METRICS_REASONS) {
        return;
    }

    switch (reason) {

    case NGX_MCD_REASON_DNS:
    case NGX_MCD_REASON_CONNECT:
    case NGX_MCD_REASON_TIMEOUT:
    case NGX_MCD_REASON_UPSTREAM_RESET:
    case NGX_MCD_REASON_UPSTREAM_CERT:
        (void) ngx_atomic_fetch_add(&ngx_mcd_metrics->failures[reason], 1);
        break;

    case NGX_MCD_REASON_DST_BLOCKED:
    case NGX_MCD_REASON_LOOP:
        (void) ngx_atomic_fetch_add(&ngx_mcd_metrics->dst_refused[reason], 1);
        break;

    default:
        break;
    }
}


/* the Prometheus text exposition format, version 0.0.4 */

static ngx_str_t  ngx_mcd_metrics_actions[] = {
    ngx_string("deny"),
    ngx_string("allow"),
    ngx_string("decrypt")
};


static ngx_str_t  ngx_mcd_metrics_directions[] = {
    ngx_string("client_to_upstream"),
    ngx_string("upstream_to_client")
};


ngx_chain_t *
ngx_mcd_metrics_render(ngx_pool_t *pool)
{
    u_char             *p;
    size_t              size;
    ngx_buf_t          *b;
    ngx_str_t          *reason;
    ngx_uint_t          i, mode, action, r, n;
    ngx_atomic_uint_t   v;
    ngx_chain_t        *cl;
    ngx_mcd_metrics_t  *m;

    m = ngx_mcd_metrics;

    n = (m != NULL) ? m->nprofiles : 0;

    /* an upper bound: every series printed, every byte of a name escaped */

    size = 4096
           + n * (NGX_MCD_MODE_HTTP + 1) * 3 * NGX_MCD_METRICS_REASONS
             * (160 + 2 * NGX_MCD_METRICS_NAME_LEN + NGX_ATOMIC_T_LEN)
           + 2 * NGX_MCD_METRICS_REASONS * (96 + NGX_ATOMIC_T_LEN);

    b = ngx_create_temp_buf(pool, size);
    if (b == NULL) {
        return NULL;
    }

    p = b->last;

    p = ngx_cpymem(p, "# HELP mcd_decisions_total Connections (and plain "
                      "HTTP requests) the gateway decided on.\n"
                      "# TYPE mcd_decisions_total counter\n",
                   sizeof("# HELP mcd_decisions_total Connections (and plain "
                          "HTTP requests) the gateway decided on.\n"
                          "# TYPE mcd_decisions_total counter\n") - 1);

    for (i = 0; i < n; i++) {
        for (mode = 1; mode <= NGX_MCD_MODE_HTTP; mode++) {
            for (action = 0; action <= MCD_ACTION_DECRYPT; action++) {
                for (r = 0; r < NGX_MCD_METRICS_REASONS; r++) {

                    v = m->decisions[i][ngx_mcd_metrics_index(mode, action,
                                                              r)];
                    if (v == 0) {
                        continue;
                    }

                    reason = ngx_mcd_reason_name(r);

                    p = ngx_sprintf(p, "mcd_decisions_total{mode=\"%V\","
                                    "profile=\"", &ngx_mcd_modes[mode]);
                    p = ngx_mcd_metrics_label(p, m->profiles[i].data,
                                              m->profiles[i].len);
                    p = ngx_sprintf(p, "\",action=\"%V\",reason=\"%V\"} "
                                    "%uA\n",
                                    &ngx_mcd_metrics_actions[action],
                                    reason, v);
                }
            }
        }
    }

    p = ngx_sprintf(p, "# HELP mcd_tunnels_active Pass-through tunnels open "
                       "now.\n"
                       "# TYPE mcd_tunnels_active gauge\n");

    for (mode = 1; mode <= NGX_MCD_MODE_TRANSPARENT; mode++) {
        p = ngx_sprintf(p, "mcd_tunnels_active{mode=\"%V\"} %A\n",
                        &ngx_mcd_modes[mode],
                        m ? (ngx_atomic_int_t) m->tunnels[mode] : 0);
    }

    p = ngx_sprintf(p, "# HELP mcd_bytes_total Bytes relayed by "
                       "pass-through tunnels, counted when a tunnel "
                       "ends.\n"
                       "# TYPE mcd_bytes_total counter\n");

    for (i = 0; i < 2; i++) {
        p = ngx_sprintf(p, "mcd_bytes_total{direction=\"%V\"} %uA\n",
                        &ngx_mcd_metrics_directions[i],
                        m ? m->bytes[i] : 0);
    }

    p = ngx_sprintf(p, "# HELP mcd_upstream_failures_total Upstream "
                       "failures by reason.\n"
                       "# TYPE mcd_upstream_failures_total counter\n");

    for (r = 0; r < NGX_MCD_METRICS_REASONS; r++) {
        if (m && m->failures[r]) {
            p = ngx_sprintf(p, "mcd_upstream_failures_total{reason=\"%V\"} "
                            "%uA\n", ngx_mcd_reason_name(r), m->failures[r]);
        }
    }

    p = ngx_sprintf(p, "# HELP mcd_destination_refused_total Connections "
                       "refused by the destination guard.\n"
                       "# TYPE mcd_destination_refused_total counter\n");

    for (r = 0; r < NGX_MCD_METRICS_REASONS; r++) {
        if (m && m->dst_refused[r]) {
            p = ngx_sprintf(p, "mcd_destination_refused_total{reason=\"%V\"} "
                            "%uA\n", ngx_mcd_reason_name(r),
                            m->dst_refused[r]);
        }
    }

    p = ngx_sprintf(p, "# HELP mcd_certificates_minted_total Leaf "
                       "certificates minted.\n"
                       "# TYPE mcd_certificates_minted_total counter\n"
                       "mcd_certificates_minted_total %uA\n"
                       "# HELP mcd_certificate_cache_hits_total Handshakes "
                       "served from a worker's certificate cache.\n"
                       "# TYPE mcd_certificate_cache_hits_total counter\n"
                       "mcd_certificate_cache_hits_total %uA\n"
                       "# HELP mcd_certificate_cache_misses_total "
                       "Certificate cache lookups that found nothing "
                       "usable.\n"
                       "# TYPE mcd_certificate_cache_misses_total counter\n"
                       "mcd_certificate_cache_misses_total %uA\n"
                       "# HELP mcd_certificate_cache_evictions_total "
                       "Certificates dropped to make room.\n"
                       "# TYPE mcd_certificate_cache_evictions_total "
                       "counter\n"
                       "mcd_certificate_cache_evictions_total %uA\n",
                    m ? m->minted : 0, m ? m->hits : 0, m ? m->misses : 0,
                    m ? m->evictions : 0);

    b->last = p;
    b->last_buf = 1;
    b->last_in_chain = 1;

    cl = ngx_alloc_chain_link(pool);
    if (cl == NULL) {
        return NULL;
    }

    cl->buf = b;
    cl->next = NULL;

    return cl;
}


/* a label value: '\', '"' and LF escaped as the format requires */

static u_char *
ngx_mcd_metrics_label(u_char *p, u_char *src, size_t len)
{
    while (len--) {
        switch (*src) {
        case '\\':
        case '"':
            *p++ = '\\';
            *p++ = *src;
            break;
        case '\n':
            *p++ = '\\';
            *p++ = 'n';
            break;
        default:
            *p++ = *src;
        }

        src++;
    }

    return p;
}
