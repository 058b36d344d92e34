
/*
 * Copyright (C) ngx_mcd authors
 *
 * Declarations shared by the core module (profiles, hosts file, CA) and
 * the stream front door.
 */


#ifndef _NGX_MCD_H_INCLUDED_
#define _NGX_MCD_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>

#include <openssl/x509.h>
#include <openssl/evp.h>

#include "mcd_fqdn.h"
#include "mcd_cert.h"


#define NGX_MCD_NO_SNI_DENY       0
#define NGX_MCD_NO_SNI_ALLOW      1

#define NGX_MCD_MODE_EXPLICIT     1
#define NGX_MCD_MODE_TRANSPARENT  2
#define NGX_MCD_MODE_HTTP         3


typedef struct {
    ngx_str_t                 name;
    ngx_uint_t                default_action;    /* MCD_ACTION_* */
    ngx_uint_t                no_sni;            /* NGX_MCD_NO_SNI_* */
    mcd_filter_t             *filter;

    u_char                   *file;              /* where it is declared */
    ngx_uint_t                line;

    ngx_atomic_t             *metrics;           /* its decision counters */

    unsigned                  can_decrypt:1;
    unsigned                  used:1;
} ngx_mcd_profile_t;


typedef struct {
    ngx_str_t                 name;
    u_char                   *file;
    ngx_uint_t                line;
    ngx_mcd_profile_t       **target;
} ngx_mcd_profile_ref_t;


typedef struct {
    ngx_uint_t                naddrs;
    ngx_addr_t               *addrs;             /* port 0 */
} ngx_mcd_hosts_entry_t;


typedef struct {
    ngx_array_t               profiles;          /* ngx_mcd_profile_t * */
    ngx_array_t               refs;              /* ngx_mcd_profile_ref_t */

    ngx_str_t                 hosts_file;
    u_char                   *hosts_conf_file;
    ngx_uint_t                hosts_conf_line;
    ngx_hash_t                hosts;             /* ngx_mcd_hosts_entry_t */
    ngx_uint_t                nhosts;

    ngx_str_t                 ca_certificate;
    ngx_str_t                 ca_certificate_key;
    u_char                   *ca_conf_file;
    ngx_uint_t                ca_conf_line;
    X509                     *ca;
    EVP_PKEY                 *ca_key;
    STACK_OF(X509)           *ca_chain;

    ngx_flag_t                metrics;           /* "mcd_metrics" */
    ngx_uint_t                cert_cache_max;
    time_t                    cert_cache_valid;

    ngx_str_t                 ca_password_file;
    ngx_array_t              *ca_passwords;      /* ngx_str_t, wiped */

    mcd_cert_key_spec_t       leaf_key;          /* "mcd_leaf_key" */
    ngx_str_t                 leaf_key_name;
    mcd_cert_ca_t             mint_ca;           /* .cert: CA usable */
    STACK_OF(X509)           *mint_chain;        /* CA + intermediates */
} ngx_mcd_conf_t;


/* the users of an mcd_proxy_auth_user_file */

typedef struct {
    ngx_str_t                 file;
    ngx_hash_t                hash;              /* user -> ngx_str_t hash */
    ngx_uint_t                n;
} ngx_mcd_users_t;


/* the verdict of a profile for one name */

typedef struct {
    ngx_uint_t                action;            /* MCD_ACTION_* */
    ngx_uint_t                type;              /* MCD_NAME_* */
    ngx_str_t                 fqdn;              /* normalised; empty if bad */
    ngx_str_t                 rule;              /* pattern, or "default" */
} ngx_mcd_decision_t;


ngx_int_t ngx_mcd_add_profile_ref(ngx_conf_t *cf, ngx_str_t *name,
    ngx_mcd_profile_t **target);
ngx_int_t ngx_mcd_decide(ngx_pool_t *pool, ngx_mcd_profile_t *profile,
    u_char *name, size_t len, ngx_mcd_decision_t *d);
ngx_mcd_hosts_entry_t *ngx_mcd_hosts_lookup(ngx_cycle_t *cycle,
    ngx_str_t *fqdn);
ngx_int_t ngx_mcd_ca_configured(ngx_cycle_t *cycle);
ngx_mcd_profile_t *ngx_mcd_profile_find(ngx_cycle_t *cycle, u_char *name,
    size_t len);
X509 *ngx_mcd_certificate(ngx_str_t *name, EVP_PKEY **key,
    STACK_OF(X509) **chain, ngx_uint_t *minted, const char **err);
const char *ngx_mcd_action_name(ngx_uint_t action);
ngx_mcd_users_t *ngx_mcd_users_load(ngx_conf_t *cf, ngx_str_t *name);
ngx_int_t ngx_mcd_basic_auth(ngx_pool_t *pool, ngx_mcd_users_t *users,
    u_char *value, size_t len, ngx_str_t *user, const char **detail);


/* ngx_stream_mcd_values.c: the values of map and geo blocks, nginx -t */

#define NGX_MCD_VALUES_STREAM     0
#define NGX_MCD_VALUES_HTTP       1

typedef ngx_int_t (*ngx_mcd_visit_pt)(ngx_variable_value_t *v, void *data);

ngx_int_t ngx_mcd_wrap_values(ngx_conf_t *cf, ngx_uint_t kind);
void ngx_mcd_unwrap_values(ngx_uint_t kind);
ngx_int_t ngx_mcd_values(ngx_cycle_t *cycle, ngx_uint_t kind,
    ngx_str_t *name, ngx_mcd_visit_pt visit, void *data);
ngx_int_t ngx_mcd_check_value(ngx_variable_value_t *v, void *data);


/* what ngx_mcd_check_value() found */

typedef struct {
    ngx_cycle_t              *cycle;
    ngx_str_t                 bad;               /* names no profile */
    ngx_mcd_profile_t        *decrypt;           /* the first that can */
} ngx_mcd_check_t;


extern ngx_module_t  ngx_mcd_module;
extern ngx_str_t     ngx_mcd_modes[];


#endif /* _NGX_MCD_H_INCLUDED_ */
