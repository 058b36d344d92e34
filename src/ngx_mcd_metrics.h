
/*
 * Copyright (C) ngx_mcd authors
 *
 * The gateway's counters in shared memory (ngx_mcd_metrics.c).
 */


#ifndef _NGX_MCD_METRICS_H_INCLUDED_
#define _NGX_MCD_METRICS_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>

#include "ngx_mcd.h"


#define NGX_MCD_METRICS_PROFILES   256       /* names with counters */
#define NGX_MCD_METRICS_NAME_LEN   64
#define NGX_MCD_METRICS_REASONS    32        /* > NGX_MCD_REASON_LAST */
#define NGX_MCD_METRICS_MODES      4         /* NGX_MCD_MODE_* + 1 */
#define NGX_MCD_METRICS_SLOT                                                  \
    (NGX_MCD_METRICS_MODES * 3 * NGX_MCD_METRICS_REASONS)

#define ngx_mcd_metrics_index(mode, action, reason)                           \
    (((mode) * 3 + (action)) * NGX_MCD_METRICS_REASONS + (reason))

#define NGX_MCD_METRICS_UPSTREAM   0         /* bytes[]: client_to_upstream */
#define NGX_MCD_METRICS_DOWNSTREAM 1         /* upstream_to_client */


typedef struct {
    size_t                    len;
    u_char                    data[NGX_MCD_METRICS_NAME_LEN];
} ngx_mcd_metrics_name_t;


typedef struct {
    ngx_uint_t                layout;
    ngx_uint_t                nprofiles;
    ngx_mcd_metrics_name_t    profiles[NGX_MCD_METRICS_PROFILES];
    ngx_atomic_t              decisions[NGX_MCD_METRICS_PROFILES]
                                       [NGX_MCD_METRICS_SLOT];
    ngx_atomic_t              tunnels[NGX_MCD_METRICS_MODES];
    ngx_atomic_t              bytes[2];
    ngx_atomic_t              failures[NGX_MCD_METRICS_REASONS];
    ngx_atomic_t              dst_refused[NGX_MCD_METRICS_REASONS];
    ngx_atomic_t              minted;
    ngx_atomic_t              hits;
    ngx_atomic_t              misses;
    ngx_atomic_t              evictions;
} ngx_mcd_metrics_t;


/* one atomic add, nothing when the zone does not exist (nginx -t) */

#define ngx_mcd_metric_add(field, n)                                          \
    if (ngx_mcd_metrics != NULL) {                                            \
        (void) ngx_atomic_fetch_add(&ngx_mcd_metrics->field,                  \
                                    (ngx_atomic_int_t) (n));                  \
    }


ngx_int_t ngx_mcd_metrics_zone(ngx_conf_t *cf);
void ngx_mcd_metrics_assign(ngx_cycle_t *cycle);
void ngx_mcd_metrics_decision(ngx_mcd_profile_t *profile, ngx_uint_t mode,
    ngx_uint_t action, ngx_uint_t reason);
void ngx_mcd_metrics_outcome(ngx_uint_t reason);
ngx_chain_t *ngx_mcd_metrics_render(ngx_pool_t *pool);


extern ngx_mcd_metrics_t  *ngx_mcd_metrics;


#endif /* _NGX_MCD_METRICS_H_INCLUDED_ */
