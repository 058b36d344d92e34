
/*
 * Copyright (C) ngx_mcd authors
 *
 * The core module: FQDN filter profiles, the static hosts map and the
 * gateway CA.  The stream front door (src/ngx_stream_mcd_module.c) asks it
 * for decisions and addresses.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_crypt.h>

#include <openssl/pem.h>
#include <openssl/err.h>

#include "src/ngx_mcd.h"
#include "src/ngx_mcd_metrics.h"


/* "nginx -t" warns when the CA expires within this many seconds */
#define NGX_MCD_CA_EXPIRY_WARN    (30 * 86400)


typedef struct {
    ngx_str_t                 name;
    ngx_addr_t                addr;
    ngx_uint_t                line;
} ngx_mcd_hosts_pair_t;


typedef struct {
    ngx_str_t                *phrase;            /* NULL: none configured */
    ngx_uint_t                asked;             /* unsigned  asked:1; */
} ngx_mcd_ca_pass_t;


static void *ngx_mcd_create_conf(ngx_cycle_t *cycle);
static char *ngx_mcd_init_conf(ngx_cycle_t *cycle, void *conf);

static char *ngx_mcd_fqdn_filter_block(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_mcd_fqdn_filter_entry(ngx_conf_t *cf, ngx_command_t *dummy,
    void *conf);
static ngx_int_t ngx_mcd_parse_action(ngx_str_t *value, ngx_uint_t *action);
static char *ngx_mcd_add_pattern(ngx_conf_t *cf, ngx_mcd_profile_t *profile,
    ngx_uint_t action, u_char *pattern, size_t len, u_char *source,
    ngx_uint_t line);
static char *ngx_mcd_add_list(ngx_conf_t *cf, ngx_mcd_profile_t *profile,
    ngx_uint_t action, ngx_str_t *name);
static u_char *ngx_mcd_source(ngx_conf_t *cf);
static ngx_int_t ngx_mcd_read_file(ngx_conf_t *cf, ngx_str_t *name,
    ngx_str_t *content, const char *what);
static void *ngx_mcd_pool_alloc(void *data, size_t size);
static void ngx_mcd_filter_cleanup(void *data);

static char *ngx_mcd_hosts_file(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static int ngx_libc_cdecl ngx_mcd_hosts_cmp(const void *one,
    const void *two);

static char *ngx_mcd_ca_certificate(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_mcd_ca_certificate_key(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_mcd_ca_password_file(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_mcd_certificate_cache(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_mcd_leaf_key(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static ngx_int_t ngx_mcd_mint_init(ngx_cycle_t *cycle, ngx_mcd_conf_t *mcf);
static ngx_int_t ngx_mcd_init_process(ngx_cycle_t *cycle);
static ngx_int_t ngx_mcd_init_module(ngx_cycle_t *cycle);
static void ngx_mcd_exit_process(ngx_cycle_t *cycle);
static ngx_int_t ngx_mcd_ca_check_dates(ngx_conf_t *cf, X509 *ca,
    ngx_str_t *file);
static ngx_int_t ngx_mcd_ca_load_key(ngx_cycle_t *cycle,
    ngx_mcd_conf_t *mcf);
static int ngx_mcd_ca_password_cb(char *buf, int size, int rwflag,
    void *userdata);
static void ngx_mcd_ca_passwords_wipe(void *data);
static void ngx_mcd_ca_cleanup(void *data);
static void ngx_mcd_ssl_error(ngx_conf_t *cf, const char *fmt,
    ngx_str_t *name);
static u_char *ngx_mcd_ssl_errors(u_char *p, u_char *last);


static ngx_command_t  ngx_mcd_commands[] = {

    { ngx_string("mcd_fqdn_filter"),
      NGX_MAIN_CONF|NGX_DIRECT_CONF|NGX_CONF_BLOCK|NGX_CONF_TAKE1,
      ngx_mcd_fqdn_filter_block,
      0,
      0,
      NULL },

    { ngx_string("mcd_hosts_file"),
      NGX_MAIN_CONF|NGX_DIRECT_CONF|NGX_CONF_TAKE1,
      ngx_mcd_hosts_file,
      0,
      0,
      NULL },

    { ngx_string("mcd_ca_certificate"),
      NGX_MAIN_CONF|NGX_DIRECT_CONF|NGX_CONF_TAKE1,
      ngx_mcd_ca_certificate,
      0,
      0,
      NULL },

    { ngx_string("mcd_ca_certificate_key"),
      NGX_MAIN_CONF|NGX_DIRECT_CONF|NGX_CONF_TAKE1,
      ngx_mcd_ca_certificate_key,
      0,
      0,
      NULL },

    { ngx_string("mcd_ca_password_file"),
      NGX_MAIN_CONF|NGX_DIRECT_CONF|NGX_CONF_TAKE1,
      ngx_mcd_ca_password_file,
      0,
      0,
      NULL },

    { ngx_string("mcd_leaf_key"),
      NGX_MAIN_CONF|NGX_DIRECT_CONF|NGX_CONF_TAKE1,
      ngx_mcd_leaf_key,
      0,
      0,
      NULL },

    { ngx_string("mcd_metrics"),
      NGX_MAIN_CONF|NGX_DIRECT_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      0,
      offsetof(ngx_mcd_conf_t, metrics),
      NULL },

    { ngx_string("mcd_certificate_cache"),
      NGX_MAIN_CONF|NGX_DIRECT_CONF|NGX_CONF_TAKE12,
      ngx_mcd_certificate_cache,
      0,
      0,
      NULL },

      ngx_null_command
};


static ngx_core_module_t  ngx_mcd_module_ctx = {
    ngx_string("mcd"),
    ngx_mcd_create_conf,
    ngx_mcd_init_conf
};


ngx_module_t  ngx_mcd_module = {
    NGX_MODULE_V1,
    &ngx_mcd_module_ctx,                   /* module context */
    ngx_mcd_commands,                      /* module directives */
    NGX_CORE_MODULE,                       /* module type */
    NULL,                                  /* init master */
    ngx_mcd_init_module,                   /* init module */
    ngx_mcd_init_process,                  /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    ngx_mcd_exit_process,                  /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};


static ngx_str_t  ngx_mcd_action_names[] = {
    ngx_string("deny"),
    ngx_string("allow"),
    ngx_string("decrypt")
};


/* $mcd_mode, by NGX_MCD_MODE_* */

ngx_str_t  ngx_mcd_modes[] = {
    ngx_null_string,
    ngx_string("explicit"),
    ngx_string("transparent"),
    ngx_string("http")
};


static void *
ngx_mcd_create_conf(ngx_cycle_t *cycle)
{
    ngx_mcd_conf_t  *mcf;

    mcf = ngx_pcalloc(cycle->pool, sizeof(ngx_mcd_conf_t));
    if (mcf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     mcf->hosts_file = { 0, NULL };
     *     mcf->ca_certificate = { 0, NULL };
     *     mcf->ca = NULL;
     *     mcf->ca_key = NULL;
     *     mcf->ca_password_file = { 0, NULL };
     *     mcf->ca_passwords = NULL;
     */

    if (ngx_array_init(&mcf->profiles, cycle->pool, 4,
                       sizeof(ngx_mcd_profile_t *))
        != NGX_OK)
    {
        return NULL;
    }

    if (ngx_array_init(&mcf->refs, cycle->pool, 4,
                       sizeof(ngx_mcd_profile_ref_t))
        != NGX_OK)
    {
        return NULL;
    }

    mcf->cert_cache_max = NGX_CONF_UNSET_UINT;
    mcf->cert_cache_valid = NGX_CONF_UNSET;
    mcf->metrics = NGX_CONF_UNSET;

    return mcf;
}


static char *
ngx_mcd_init_conf(ngx_cycle_t *cycle, void *conf)
{
    ngx_mcd_conf_t  *mcf = conf;

    ngx_int_t               rc;
    ngx_uint_t              i, j;
    const char             *err;
    ngx_mcd_profile_t     **profiles, *profile;
    ngx_mcd_profile_ref_t  *ref;

    ngx_conf_init_uint_value(mcf->cert_cache_max, 1000);
    ngx_conf_init_value(mcf->cert_cache_valid, 86400);
    ngx_conf_init_value(mcf->metrics, 1);

    profiles = mcf->profiles.elts;
    ref = mcf->refs.elts;

    for (i = 0; i < mcf->refs.nelts; i++) {

        profile = NULL;

        for (j = 0; j < mcf->profiles.nelts; j++) {
            if (profiles[j]->name.len == ref[i].name.len
                && ngx_strncmp(profiles[j]->name.data, ref[i].name.data,
                               ref[i].name.len)
                   == 0)
            {
                profile = profiles[j];
                break;
            }
        }

        if (profile == NULL) {
            ngx_log_error(NGX_LOG_EMERG, cycle->log, 0,
                          "unknown mcd_fqdn_filter \"%V\" in %s:%ui",
                          &ref[i].name, ref[i].file, ref[i].line);
            return NGX_CONF_ERROR;
        }

        profile->used = 1;
        *ref[i].target = profile;

        if (profile->can_decrypt && mcf->ca == NULL) {
            ngx_log_error(NGX_LOG_EMERG, cycle->log, 0,
                          "mcd_fqdn_filter \"%V\" (%s:%ui) can decrypt, "
                          "but no \"mcd_ca_certificate\" is configured, "
                          "used in %s:%ui",
                          &profile->name, profile->file, profile->line,
                          ref[i].file, ref[i].line);
            return NGX_CONF_ERROR;
        }
    }

    if (mcf->ca != NULL && mcf->ca_certificate_key.data == NULL) {
        ngx_log_error(NGX_LOG_EMERG, cycle->log, 0,
                      "no \"mcd_ca_certificate_key\" for "
                      "\"mcd_ca_certificate\" in %s:%ui",
                      mcf->ca_conf_file, mcf->ca_conf_line);
        return NGX_CONF_ERROR;
    }

    if (mcf->ca == NULL && mcf->ca_certificate_key.data != NULL) {
        ngx_log_error(NGX_LOG_EMERG, cycle->log, 0,
                      "\"mcd_ca_certificate_key\" without "
                      "\"mcd_ca_certificate\" in %s:%ui",
                      mcf->ca_conf_file, mcf->ca_conf_line);
        return NGX_CONF_ERROR;
    }

    /*
     * the key is loaded once the whole main context is read, so that
     * "mcd_ca_password_file" may come before or after it
     */

    if (mcf->ca_certificate_key.data != NULL) {
        rc = ngx_mcd_ca_load_key(cycle, mcf);

        ngx_mcd_ca_passwords_wipe(mcf->ca_passwords);

        if (rc != NGX_OK) {
            return NGX_CONF_ERROR;
        }
    }

    if (mcf->ca != NULL && X509_check_private_key(mcf->ca, mcf->ca_key) != 1)
    {
        ERR_clear_error();
        ngx_log_error(NGX_LOG_EMERG, cycle->log, 0,
                      "\"mcd_ca_certificate_key\" \"%V\" does not match "
                      "\"mcd_ca_certificate\" \"%V\" in %s:%ui",
                      &mcf->ca_certificate_key, &mcf->ca_certificate,
                      mcf->ca_conf_file, mcf->ca_conf_line);
        return NGX_CONF_ERROR;
    }

    if (mcf->leaf_key_name.data == NULL) {
        ngx_str_set(&mcf->leaf_key_name, MCD_CERT_KEY_SPEC_DEFAULT);

        if (mcd_cert_key_spec_parse(mcf->leaf_key_name.data,
                                    mcf->leaf_key_name.len, &mcf->leaf_key,
                                    &err)
            != 0)
        {
            return NGX_CONF_ERROR;
        }
    }

    if (mcf->ca != NULL && ngx_mcd_mint_init(cycle, mcf) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/*
 * what minting needs from the CA, prepared once per configuration: its key
 * identifier and dates, and the chain sent after every minted leaf (the CA,
 * then the intermediates that followed it in its file)
 */

static ngx_int_t
ngx_mcd_mint_init(ngx_cycle_t *cycle, ngx_mcd_conf_t *mcf)
{
    int          i;
    X509        *x509;
    const char  *err;

    err = NULL;

    if (mcd_cert_ca_init(&mcf->mint_ca, mcf->ca, mcf->ca_key, &err) != 0) {
        ngx_log_error(NGX_LOG_EMERG, cycle->log, 0,
                      "CA \"%V\" cannot sign certificates: %s in %s:%ui",
                      &mcf->ca_certificate, err ? err : "unknown error",
                      mcf->ca_conf_file, mcf->ca_conf_line);
        return NGX_ERROR;
    }

    mcf->mint_chain = sk_X509_new_null();
    if (mcf->mint_chain == NULL) {
        return NGX_ERROR;
    }

    if (sk_X509_push(mcf->mint_chain, mcf->ca) == 0) {
        return NGX_ERROR;
    }

    X509_up_ref(mcf->ca);

    for (i = 0; i < sk_X509_num(mcf->ca_chain); i++) {
        x509 = sk_X509_value(mcf->ca_chain, i);

        if (sk_X509_push(mcf->mint_chain, x509) == 0) {
            return NGX_ERROR;
        }

        X509_up_ref(x509);
    }

    return NGX_OK;
}


ngx_int_t
ngx_mcd_add_profile_ref(ngx_conf_t *cf, ngx_str_t *name,
    ngx_mcd_profile_t **target)
{
    ngx_mcd_conf_t         *mcf;
    ngx_mcd_profile_ref_t  *ref;

    mcf = (ngx_mcd_conf_t *) ngx_get_conf(cf->cycle->conf_ctx, ngx_mcd_module);

    ref = ngx_array_push(&mcf->refs);
    if (ref == NULL) {
        return NGX_ERROR;
    }

    ref->name = *name;
    ref->file = ngx_mcd_source(cf);
    ref->line = cf->conf_file->line;
    ref->target = target;

    if (ref->file == NULL) {
        return NGX_ERROR;
    }

    return NGX_OK;
}


const char *
ngx_mcd_action_name(ngx_uint_t action)
{
    if (action > MCD_ACTION_DECRYPT) {
        return "deny";
    }

    return (const char *) ngx_mcd_action_names[action].data;
}


ngx_int_t
ngx_mcd_decide(ngx_pool_t *pool, ngx_mcd_profile_t *profile, u_char *name,
    size_t len, ngx_mcd_decision_t *d)
{
    int                type;
    size_t             n;
    u_char             buf[MCD_FQDN_MAX + 1];
    const mcd_rule_t  *rule;

    ngx_str_null(&d->fqdn);
    ngx_str_null(&d->rule);

    d->action = MCD_ACTION_DENY;
    d->type = MCD_NAME_BAD;

    type = mcd_fqdn_normalize(name, len, buf, &n);

    if (type == MCD_NAME_BAD) {
        return NGX_DECLINED;
    }

    d->type = type;

    d->fqdn.data = ngx_pnalloc(pool, n + 1);
    if (d->fqdn.data == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(d->fqdn.data, buf, n);
    d->fqdn.data[n] = '\0';
    d->fqdn.len = n;

    rule = mcd_filter_match(profile->filter, d->fqdn.data, n, type);

    if (rule == NULL) {
        d->action = profile->default_action;
        ngx_str_set(&d->rule, "default");
        return NGX_OK;
    }

    d->action = rule->action;
    d->rule.data = (u_char *) rule->pattern;
    d->rule.len = rule->len;

    return NGX_OK;
}


ngx_mcd_hosts_entry_t *
ngx_mcd_hosts_lookup(ngx_cycle_t *cycle, ngx_str_t *fqdn)
{
    ngx_mcd_conf_t  *mcf;

    mcf = (ngx_mcd_conf_t *) ngx_get_conf(cycle->conf_ctx, ngx_mcd_module);

    if (mcf == NULL || mcf->nhosts == 0) {
        return NULL;
    }

    return ngx_hash_find(&mcf->hosts, ngx_hash_key(fqdn->data, fqdn->len),
                         fqdn->data, fqdn->len);
}


/*
 * a literal value of a map or geo that chooses the profile: it must name
 * one (nginx -t); values made of variables are known only per connection
 */

ngx_int_t
ngx_mcd_check_value(ngx_variable_value_t *v, void *data)
{
    ngx_mcd_check_t  *check = data;

    ngx_mcd_profile_t  *profile;

    if (!v->valid) {
        return NGX_OK;
    }

    profile = ngx_mcd_profile_find(check->cycle, v->data, v->len);

    if (profile == NULL) {
        check->bad.data = v->data;
        check->bad.len = v->len;
        return NGX_ERROR;
    }

    profile->used = 1;

    if (profile->can_decrypt && check->decrypt == NULL) {
        check->decrypt = profile;
    }

    return NGX_OK;
}


/* a profile by name, for "mcd_fqdn_filter $variable" */

ngx_mcd_profile_t *
ngx_mcd_profile_find(ngx_cycle_t *cycle, u_char *name, size_t len)
{
    ngx_uint_t           i;
    ngx_mcd_conf_t      *mcf;
    ngx_mcd_profile_t  **profiles;

    mcf = (ngx_mcd_conf_t *) ngx_get_conf(cycle->conf_ctx, ngx_mcd_module);

    if (mcf == NULL) {
        return NULL;
    }

    profiles = mcf->profiles.elts;

    for (i = 0; i < mcf->profiles.nelts; i++) {
        if (profiles[i]->name.len == len
            && ngx_strncmp(profiles[i]->name.data, name, len) == 0)
        {
            return profiles[i];
        }
    }

    return NULL;
}


ngx_int_t
ngx_mcd_ca_configured(ngx_cycle_t *cycle)
{
    ngx_mcd_conf_t  *mcf;

    mcf = (ngx_mcd_conf_t *) ngx_get_conf(cycle->conf_ctx, ngx_mcd_module);

    return (mcf != NULL && mcf->ca != NULL) ? NGX_OK : NGX_DECLINED;
}


/*
 * proxy authentication: an htpasswd file ("user:hash[:comment]" lines,
 * '#' comments), read when the configuration is loaded (by the master:
 * the file may be readable by root only), checked with nginx's own
 * ngx_crypt(), so every scheme of auth_basic_user_file works
 */

ngx_mcd_users_t *
ngx_mcd_users_load(ngx_conf_t *cf, ngx_str_t *name)
{
    u_char                *p, *q, *last, *line, *colon, *end;
    off_t                  size;
    ssize_t                n;
    ngx_str_t              user, *hash;
    ngx_uint_t             lineno;
    ngx_file_t             file;
    ngx_pool_t            *temp_pool;
    ngx_file_info_t        fi;
    ngx_mcd_users_t       *users;
    ngx_hash_init_t        hinit;
    ngx_hash_keys_arrays_t keys;

    users = ngx_pcalloc(cf->pool, sizeof(ngx_mcd_users_t));
    if (users == NULL) {
        return NULL;
    }

    users->file = *name;

    if (ngx_conf_full_name(cf->cycle, &users->file, 1) != NGX_OK) {
        return NULL;
    }

    ngx_memzero(&file, sizeof(ngx_file_t));

    file.name = users->file;
    file.log = cf->log;

    file.fd = ngx_open_file(file.name.data, NGX_FILE_RDONLY, NGX_FILE_OPEN, 0);

    if (file.fd == NGX_INVALID_FILE) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           ngx_open_file_n " \"%s\" failed", file.name.data);
        return NULL;
    }

    p = NULL;
    size = 0;

    if (ngx_fd_info(file.fd, &fi) == NGX_FILE_ERROR) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           ngx_fd_info_n " \"%s\" failed", file.name.data);
        goto failed;
    }

    size = ngx_file_size(&fi);

    if (size > 64 * 1024 * 1024) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%s\" is larger than 64M", file.name.data);
        goto failed;
    }

    temp_pool = ngx_create_pool(NGX_DEFAULT_POOL_SIZE, cf->log);
    if (temp_pool == NULL) {
        goto failed;
    }

    p = ngx_pnalloc(temp_pool, (size_t) size + 1);
    if (p == NULL) {
        ngx_destroy_pool(temp_pool);
        goto failed;
    }

    n = size ? ngx_read_file(&file, p, (size_t) size, 0) : 0;

    if (n != size) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "cannot read \"%s\"", file.name.data);
        ngx_destroy_pool(temp_pool);
        goto failed;
    }

    ngx_close_file(file.fd);
    file.fd = NGX_INVALID_FILE;

    keys.pool = cf->pool;
    keys.temp_pool = temp_pool;

    if (ngx_hash_keys_array_init(&keys, NGX_HASH_SMALL) != NGX_OK) {
        ngx_destroy_pool(temp_pool);
        return NULL;
    }

    last = p + size;
    lineno = 0;

    for (line = p; line < last; line = end + 1) {

        lineno++;

        end = ngx_strlchr(line, last, LF);
        if (end == NULL) {
            end = last;
        }

        n = end - line;

        if (n && line[n - 1] == CR) {
            n--;
        }

        if (n == 0 || line[0] == '#') {
            continue;
        }

        colon = ngx_strlchr(line, line + n, ':');

        if (colon == NULL || colon == line) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid line %ui in \"%s\"", lineno,
                               file.name.data);
            ngx_destroy_pool(temp_pool);
            return NULL;
        }

        user.len = colon - line;
        user.data = ngx_pnalloc(cf->pool, user.len);
        hash = ngx_palloc(cf->pool, sizeof(ngx_str_t));
        if (user.data == NULL || hash == NULL) {
            ngx_destroy_pool(temp_pool);
            return NULL;
        }

        ngx_memcpy(user.data, line, user.len);

        /* the hash: up to the next ':' (a comment may follow), NUL ended */

        colon++;
        hash->data = colon;
        hash->len = (line + n) - colon;

        q = ngx_strlchr(colon, line + n, ':');

        if (q != NULL) {
            hash->len = q - colon;
        }

        q = ngx_pnalloc(cf->pool, hash->len + 1);
        if (q == NULL) {
            ngx_destroy_pool(temp_pool);
            return NULL;
        }

        ngx_memcpy(q, hash->data, hash->len);
        q[hash->len] = '\0';
        hash->data = q;

        /* the first line of a user wins, as with auth_basic_user_file */

        switch (ngx_hash_add_key(&keys, &user, hash, NGX_HASH_READONLY_KEY)) {
        case NGX_OK:
            users->n++;
            break;
        case NGX_BUSY:
            break;
        default:
            ngx_destroy_pool(temp_pool);
            return NULL;
        }
    }

    hinit.hash = &users->hash;
    hinit.key = ngx_hash_key;
    hinit.max_size = 65536;
    hinit.bucket_size = ngx_align(64, ngx_cacheline_size);
    hinit.name = "mcd_proxy_auth_user_file";
    hinit.pool = cf->pool;
    hinit.temp_pool = NULL;

    if (ngx_hash_init(&hinit, keys.keys.elts, keys.keys.nelts) != NGX_OK) {
        ngx_destroy_pool(temp_pool);
        return NULL;
    }

    ngx_destroy_pool(temp_pool);

    return users;

failed:

    if (file.fd != NGX_INVALID_FILE) {
        ngx_close_file(file.fd);
    }

    return NULL;
}


/*
 * "Basic base64(user:password)" checked against the users: NGX_OK with
 * the user set, NGX_DECLINED with the reason in detail (and the user when
 * one was sent), NGX_ERROR; the password is never kept
 */

ngx_int_t
ngx_mcd_basic_auth(ngx_pool_t *pool, ngx_mcd_users_t *users, u_char *value,
    size_t len, ngx_str_t *user, const char **detail)
{
    u_char     *colon, *p, *encrypted;
    ngx_int_t   rc;
    ngx_str_t   src, dec, *hash;

    ngx_str_null(user);

    if (value == NULL || len == 0) {
        *detail = "proxy authentication required";
        return NGX_DECLINED;
    }

    *detail = "invalid credentials";

    if (len < sizeof("Basic ") - 1
        || ngx_strncasecmp(value, (u_char *) "Basic ", sizeof("Basic ") - 1)
           != 0)
    {
        return NGX_DECLINED;
    }

    src.data = value + sizeof("Basic ") - 1;
    src.len = len - (sizeof("Basic ") - 1);

    while (src.len && src.data[0] == ' ') {
        src.data++;
        src.len--;
    }

    if (src.len == 0 || src.len > 4096) {
        return NGX_DECLINED;
    }

    dec.data = ngx_pnalloc(pool, ngx_base64_decoded_length(src.len) + 1);
    if (dec.data == NULL) {
        return NGX_ERROR;
    }

    if (ngx_decode_base64(&dec, &src) != NGX_OK) {
        return NGX_DECLINED;
    }

    colon = ngx_strlchr(dec.data, dec.data + dec.len, ':');

    if (colon == NULL || colon == dec.data) {
        ngx_explicit_memzero(dec.data, dec.len);
        return NGX_DECLINED;
    }

    user->len = colon - dec.data;
    user->data = ngx_pnalloc(pool, user->len);
    if (user->data == NULL) {
        ngx_explicit_memzero(dec.data, dec.len);
        return NGX_ERROR;
    }

    ngx_memcpy(user->data, dec.data, user->len);

    /* the password, NUL-terminated in place for ngx_crypt() */

    p = colon + 1;
    dec.data[dec.len] = '\0';

    hash = ngx_hash_find(&users->hash, ngx_hash_key(user->data, user->len),
                         user->data, user->len);

    if (hash == NULL) {
        ngx_explicit_memzero(dec.data, dec.len);
        return NGX_DECLINED;
    }

    encrypted = NULL;

    rc = ngx_crypt(pool, p, hash->data, &encrypted);

    ngx_explicit_memzero(dec.data, dec.len);

    if (rc == NGX_OK && encrypted != NULL
        && ngx_strcmp(encrypted, hash->data) == 0)
    {
        return NGX_OK;
    }

    return NGX_DECLINED;
}


/* profiles */


static char *
ngx_mcd_fqdn_filter_block(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_mcd_conf_t  *mcf = conf;

    char                *rv;
    ngx_str_t           *value;
    ngx_uint_t           i;
    ngx_conf_t           save;
    mcd_allocator_t      allocator;
    mcd_filter_err_t     err;
    ngx_pool_cleanup_t  *cln;
    ngx_mcd_profile_t   *profile, **pp;

    value = cf->args->elts;

    if (value[1].len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "empty mcd_fqdn_filter name");
        return NGX_CONF_ERROR;
    }

    /* a name is a label of the counters, kept in shared memory */

    if (value[1].len > NGX_MCD_METRICS_NAME_LEN) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "mcd_fqdn_filter name \"%V\" is longer than %d "
                           "bytes", &value[1], NGX_MCD_METRICS_NAME_LEN);
        return NGX_CONF_ERROR;
    }

    pp = mcf->profiles.elts;

    for (i = 0; i < mcf->profiles.nelts; i++) {
        if (pp[i]->name.len == value[1].len
            && ngx_strncmp(pp[i]->name.data, value[1].data, value[1].len)
               == 0)
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "duplicate mcd_fqdn_filter \"%V\", "
                               "first declared in %s:%ui",
                               &value[1], pp[i]->file, pp[i]->line);
            return NGX_CONF_ERROR;
        }
    }

    profile = ngx_pcalloc(cf->pool, sizeof(ngx_mcd_profile_t));
    if (profile == NULL) {
        return NGX_CONF_ERROR;
    }

    profile->name = value[1];
    profile->default_action = NGX_CONF_UNSET_UINT;
    profile->no_sni = NGX_CONF_UNSET_UINT;
    profile->file = ngx_mcd_source(cf);
    profile->line = cf->conf_file->line;

    if (profile->file == NULL) {
        return NGX_CONF_ERROR;
    }

    allocator.alloc = ngx_mcd_pool_alloc;
    allocator.data = cf->pool;

    cln = ngx_pool_cleanup_add(cf->pool, 0);
    if (cln == NULL) {
        return NGX_CONF_ERROR;
    }

    profile->filter = mcd_filter_create(&allocator);
    if (profile->filter == NULL) {
        return NGX_CONF_ERROR;
    }

    cln->handler = ngx_mcd_filter_cleanup;
    cln->data = profile->filter;

    pp = ngx_array_push(&mcf->profiles);
    if (pp == NULL) {
        return NGX_CONF_ERROR;
    }

    *pp = profile;

    save = *cf;
    cf->handler = ngx_mcd_fqdn_filter_entry;
    cf->handler_conf = (char *) profile;

    rv = ngx_conf_parse(cf, NULL);

    *cf = save;

    if (rv != NGX_CONF_OK) {
        return rv;
    }

    if (mcd_filter_finalize(profile->filter, &err) != MCD_FILTER_OK) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "mcd_fqdn_filter \"%V\": %s",
                           &profile->name, err.msg);
        return NGX_CONF_ERROR;
    }

    if (profile->default_action == NGX_CONF_UNSET_UINT) {
        profile->default_action = MCD_ACTION_DENY;
    }

    if (profile->no_sni == NGX_CONF_UNSET_UINT) {
        profile->no_sni = NGX_MCD_NO_SNI_DENY;
    }

    if (profile->default_action == MCD_ACTION_DECRYPT) {
        profile->can_decrypt = 1;
    }

    return NGX_CONF_OK;
}


static char *
ngx_mcd_fqdn_filter_entry(ngx_conf_t *cf, ngx_command_t *dummy, void *conf)
{
    ngx_mcd_profile_t  *profile = (ngx_mcd_profile_t *) conf;

    char        *rv;
    u_char      *source;
    ngx_str_t   *value, *cmd;
    ngx_uint_t   i, n, action;

    value = cf->args->elts;
    n = cf->args->nelts;
    cmd = &value[0];

    if (cmd->len == 7 && ngx_strncmp(cmd->data, "default", 7) == 0) {

        if (n != 2) {
            goto invalid_number;
        }

        if (profile->default_action != NGX_CONF_UNSET_UINT) {
            return "is duplicate";
        }

        if (ngx_mcd_parse_action(&value[1], &profile->default_action)
            != NGX_OK)
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid value \"%V\" in \"default\", "
                               "it must be \"deny\", \"allow\" or "
                               "\"decrypt\"", &value[1]);
            return NGX_CONF_ERROR;
        }

        return NGX_CONF_OK;
    }

    if (cmd->len == 6 && ngx_strncmp(cmd->data, "no_sni", 6) == 0) {

        if (n != 2) {
            goto invalid_number;
        }

        if (profile->no_sni != NGX_CONF_UNSET_UINT) {
            return "is duplicate";
        }

        if (value[1].len == 4 && ngx_strncmp(value[1].data, "deny", 4) == 0) {
            profile->no_sni = NGX_MCD_NO_SNI_DENY;

        } else if (value[1].len == 5
                   && ngx_strncmp(value[1].data, "allow", 5) == 0)
        {
            profile->no_sni = NGX_MCD_NO_SNI_ALLOW;

        } else {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid value \"%V\" in \"no_sni\", "
                               "it must be \"deny\" or \"allow\"",
                               &value[1]);
            return NGX_CONF_ERROR;
        }

        return NGX_CONF_OK;
    }

    if (cmd->len > 5
        && ngx_strncmp(cmd->data + cmd->len - 5, "_list", 5) == 0)
    {
        cmd->len -= 5;

        if (ngx_mcd_parse_action(cmd, &action) != NGX_OK) {
            cmd->len += 5;
            goto unknown;
        }

        cmd->len += 5;

        if (n != 2) {
            goto invalid_number;
        }

        rv = ngx_mcd_add_list(cf, profile, action, &value[1]);

        if (rv == NGX_CONF_OK && action == MCD_ACTION_DECRYPT) {
            profile->can_decrypt = 1;
        }

        return rv;
    }

    if (ngx_mcd_parse_action(cmd, &action) != NGX_OK) {
        goto unknown;
    }

    if (n < 2) {
        goto invalid_number;
    }

    source = ngx_mcd_source(cf);
    if (source == NULL) {
        return NGX_CONF_ERROR;
    }

    for (i = 1; i < n; i++) {
        rv = ngx_mcd_add_pattern(cf, profile, action, value[i].data,
                                 value[i].len, source, cf->conf_file->line);
        if (rv != NGX_CONF_OK) {
            return rv;
        }
    }

    if (action == MCD_ACTION_DECRYPT) {
        profile->can_decrypt = 1;
    }

    return NGX_CONF_OK;

unknown:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "unknown directive \"%V\" in mcd_fqdn_filter \"%V\"",
                       cmd, &profile->name);
    return NGX_CONF_ERROR;

invalid_number:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "invalid number of arguments in \"%V\" "
                       "in mcd_fqdn_filter \"%V\"", cmd, &profile->name);
    return NGX_CONF_ERROR;
}


static ngx_int_t
ngx_mcd_parse_action(ngx_str_t *value, ngx_uint_t *action)
{
    ngx_uint_t  i;

    for (i = 0; i < sizeof(ngx_mcd_action_names) / sizeof(ngx_str_t); i++) {
        if (value->len == ngx_mcd_action_names[i].len
            && ngx_strncmp(value->data, ngx_mcd_action_names[i].data,
                           value->len)
               == 0)
        {
            *action = i;
            return NGX_OK;
        }
    }

    return NGX_ERROR;
}


static char *
ngx_mcd_add_pattern(ngx_conf_t *cf, ngx_mcd_profile_t *profile,
    ngx_uint_t action, u_char *pattern, size_t len, u_char *source,
    ngx_uint_t line)
{
    ngx_int_t         rc;
    mcd_filter_err_t  err;

    rc = mcd_filter_add(profile->filter, action, pattern, len, source, line,
                        &err);

    switch (rc) {

    case MCD_FILTER_OK:
        return NGX_CONF_OK;

    case MCD_FILTER_DUP:
        ngx_conf_log_error(NGX_LOG_WARN, cf, 0,
                           "duplicate pattern \"%*s\" in mcd_fqdn_filter "
                           "\"%V\" at %s:%ui, first in %s:%ui",
                           len, pattern, &profile->name, source, line,
                           (u_char *) err.conflict->source,
                           (ngx_uint_t) err.conflict->line);
        return NGX_CONF_OK;

    case MCD_FILTER_CONFLICT:
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "pattern \"%*s\" under \"%s\" at %s:%ui "
                           "conflicts with \"%s\" under \"%s\" at %s:%ui "
                           "in mcd_fqdn_filter \"%V\": %s",
                           len, pattern, ngx_mcd_action_name(action),
                           source, line, err.conflict->pattern,
                           ngx_mcd_action_name(err.conflict->action),
                           (u_char *) err.conflict->source,
                           (ngx_uint_t) err.conflict->line,
                           &profile->name, err.msg);
        return NGX_CONF_ERROR;

    case MCD_FILTER_INVALID:
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid pattern \"%*s\" at %s:%ui "
                           "in mcd_fqdn_filter \"%V\": %s",
                           len, pattern, source, line, &profile->name,
                           err.msg);
        return NGX_CONF_ERROR;

    default:
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "mcd_fqdn_filter \"%V\": %s",
                           &profile->name, err.msg);
        return NGX_CONF_ERROR;
    }
}


static char *
ngx_mcd_add_list(ngx_conf_t *cf, ngx_mcd_profile_t *profile,
    ngx_uint_t action, ngx_str_t *name)
{
    int                   rc;
    char                 *rv;
    size_t                len;
    unsigned              line;
    ngx_str_t             file, content;
    const unsigned char  *pos, *end, *pat;

    file = *name;

    if (ngx_conf_full_name(cf->cycle, &file, 1) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    if (ngx_mcd_read_file(cf, &file, &content, "list file") != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    pos = content.data;
    end = content.data + content.len;
    line = 0;
    rv = NGX_CONF_OK;

    for ( ;; ) {
        rc = mcd_list_next(&pos, end, &pat, &len, &line);

        if (rc == 0) {
            break;
        }

        if (rc < 0) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid entry in list file %s:%ui: "
                               "one pattern a line",
                               file.data, (ngx_uint_t) line);
            rv = NGX_CONF_ERROR;
            break;
        }

        rv = ngx_mcd_add_pattern(cf, profile, action, (u_char *) pat, len,
                                 file.data, line);
        if (rv != NGX_CONF_OK) {
            break;
        }
    }

    ngx_free(content.data);

    return rv;
}


static ngx_int_t
ngx_mcd_read_file(ngx_conf_t *cf, ngx_str_t *name, ngx_str_t *content,
    const char *what)
{
    size_t           size;
    ssize_t          n;
    ngx_fd_t         fd;
    ngx_file_info_t  fi;

    fd = ngx_open_file(name->data, NGX_FILE_RDONLY, NGX_FILE_OPEN, 0);

    if (fd == NGX_INVALID_FILE) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           "cannot open %s \"%V\"", what, name);
        return NGX_ERROR;
    }

    if (ngx_fd_info(fd, &fi) == NGX_FILE_ERROR) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           ngx_fd_info_n " %s \"%V\" failed", what, name);
        goto failed;
    }

    if (!ngx_is_file(&fi)) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "%s \"%V\" is not a regular file", what, name);
        goto failed;
    }

    size = (size_t) ngx_file_size(&fi);

    content->data = ngx_alloc(size + 1, cf->log);
    if (content->data == NULL) {
        goto failed;
    }

    content->len = 0;

    while (content->len < size) {
        n = read(fd, content->data + content->len, size - content->len);

        if (n == -1) {
            if (ngx_errno == NGX_EINTR) {
                continue;
            }

            ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                               "cannot read %s \"%V\"", what, name);
            ngx_free(content->data);
            goto failed;
        }

        if (n == 0) {
            break;
        }

        content->len += n;
    }

    content->data[content->len] = '\0';

    if (ngx_close_file(fd) == NGX_FILE_ERROR) {
        ngx_log_error(NGX_LOG_ALERT, cf->log, ngx_errno,
                      ngx_close_file_n " %V failed", name);
    }

    return NGX_OK;

failed:

    if (ngx_close_file(fd) == NGX_FILE_ERROR) {
        ngx_log_error(NGX_LOG_ALERT, cf->log, ngx_errno,
                      ngx_close_file_n " %V failed", name);
    }

    return NGX_ERROR;
}


/*
 * the name of the file being parsed, copied into the cycle pool so that
 * rules can point at it for as long as the configuration lives
 */

static u_char *
ngx_mcd_source(ngx_conf_t *cf)
{
    u_char     *p;
    ngx_str_t  *name;

    name = &cf->conf_file->file.name;

    p = ngx_pnalloc(cf->pool, name->len + 1);
    if (p == NULL) {
        return NULL;
    }

    ngx_memcpy(p, name->data, name->len);
    p[name->len] = '\0';

    return p;
}


static void *
ngx_mcd_pool_alloc(void *data, size_t size)
{
    return ngx_palloc((ngx_pool_t *) data, size);
}


static void
ngx_mcd_filter_cleanup(void *data)
{
    mcd_filter_cleanup(data);
}


/* mcd_hosts_file */


static char *
ngx_mcd_hosts_file(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_mcd_conf_t  *mcf = conf;

    int                     type;
    u_char                 *p, *end, *eol, *tok, *hash;
    size_t                  n;
    u_char                  name[MCD_FQDN_MAX + 1];
    ngx_str_t              *value, file, content, addr_text;
    ngx_int_t               rc;
    ngx_uint_t              line, names, i, j, k;
    ngx_addr_t              addr;
    ngx_array_t             pairs;
    ngx_hash_init_t         hash_init;
    ngx_hash_keys_arrays_t  ha;
    ngx_mcd_hosts_pair_t   *pair;
    ngx_mcd_hosts_entry_t  *entry;

    if (mcf->hosts_file.data != NULL) {
        return "is duplicate";
    }

    value = cf->args->elts;
    file = value[1];

    if (ngx_conf_full_name(cf->cycle, &file, 1) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    mcf->hosts_file = file;

    if (ngx_mcd_read_file(cf, &file, &content, "hosts file") != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    if (ngx_array_init(&pairs, cf->temp_pool, 64,
                       sizeof(ngx_mcd_hosts_pair_t))
        != NGX_OK)
    {
        goto failed;
    }

    p = content.data;
    end = content.data + content.len;

    for (line = 1; p < end; line++, p = eol + 1) {

        eol = ngx_strlchr(p, end, '\n');
        if (eol == NULL) {
            eol = end;
        }

        hash = ngx_strlchr(p, eol, '#');
        if (hash == NULL) {
            hash = eol;
        }

        addr_text.data = NULL;
        addr_text.len = 0;
        names = 0;

        for ( ;; ) {
            while (p < hash
                   && (*p == ' ' || *p == '\t' || *p == '\r'))
            {
                p++;
            }

            if (p == hash) {
                break;
            }

            tok = p;

            while (p < hash && *p != ' ' && *p != '\t' && *p != '\r') {
                p++;
            }

            if (addr_text.data == NULL) {
                addr_text.data = tok;
                addr_text.len = p - tok;

                rc = ngx_parse_addr(cf->pool, &addr, addr_text.data,
                                    addr_text.len);
                if (rc != NGX_OK) {
                    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                       "invalid address \"%V\" in "
                                       "hosts file %V:%ui",
                                       &addr_text, &file, line);
                    goto failed;
                }

                continue;
            }

            type = mcd_fqdn_normalize(tok, p - tok, name, &n);

            if (type != MCD_NAME_HOST) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid host name \"%*s\" in "
                                   "hosts file %V:%ui",
                                   p - tok, tok, &file, line);
                goto failed;
            }

            pair = ngx_array_push(&pairs);
            if (pair == NULL) {
                goto failed;
            }

            pair->name.data = ngx_pstrdup(cf->pool,
                                          &(ngx_str_t) { n, name });
            if (pair->name.data == NULL) {
                goto failed;
            }

            pair->name.len = n;
            pair->addr = addr;
            pair->addr.name = addr_text;
            pair->line = line;
            names++;
        }

        if (addr_text.data != NULL && names == 0) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "no host name after \"%V\" in "
                               "hosts file %V:%ui",
                               &addr_text, &file, line);
            goto failed;
        }

        if (eol == end) {
            break;
        }
    }

    /* names are case-insensitive and already normalised: sort to group */

    ngx_qsort(pairs.elts, pairs.nelts, sizeof(ngx_mcd_hosts_pair_t),
              ngx_mcd_hosts_cmp);

    ha.temp_pool = cf->temp_pool;
    ha.pool = cf->temp_pool;

    if (ngx_hash_keys_array_init(&ha, NGX_HASH_LARGE) != NGX_OK) {
        goto failed;
    }

    pair = pairs.elts;

    for (i = 0; i < pairs.nelts; i = j) {

        for (j = i + 1; j < pairs.nelts; j++) {
            if (pair[j].name.len != pair[i].name.len
                || ngx_strncmp(pair[j].name.data, pair[i].name.data,
                               pair[i].name.len)
                   != 0)
            {
                break;
            }
        }

        entry = ngx_palloc(cf->pool, sizeof(ngx_mcd_hosts_entry_t));
        if (entry == NULL) {
            goto failed;
        }

        entry->naddrs = j - i;
        entry->addrs = ngx_palloc(cf->pool, (j - i) * sizeof(ngx_addr_t));
        if (entry->addrs == NULL) {
            goto failed;
        }

        for (k = i; k < j; k++) {
            entry->addrs[k - i] = pair[k].addr;
        }

        rc = ngx_hash_add_key(&ha, &pair[i].name, entry,
                              NGX_HASH_READONLY_KEY);
        if (rc != NGX_OK) {
            goto failed;
        }
    }

    mcf->nhosts = ha.keys.nelts;

    hash_init.hash = &mcf->hosts;
    hash_init.key = ngx_hash_key;
    hash_init.max_size = ngx_max(1024, 4 * ha.keys.nelts);
    hash_init.bucket_size = ngx_align(128, ngx_cacheline_size);
    hash_init.name = "mcd_hosts_file_hash";
    hash_init.pool = cf->pool;
    hash_init.temp_pool = NULL;

    if (ngx_hash_init(&hash_init, ha.keys.elts, ha.keys.nelts) != NGX_OK) {
        goto failed;
    }

    ngx_free(content.data);

    return NGX_CONF_OK;

failed:

    ngx_free(content.data);

    return NGX_CONF_ERROR;
}


static int ngx_libc_cdecl
ngx_mcd_hosts_cmp(const void *one, const void *two)
{
    ngx_int_t                    rc;
    const ngx_mcd_hosts_pair_t  *a, *b;

    a = one;
    b = two;

    rc = ngx_memn2cmp(a->name.data, b->name.data, a->name.len, b->name.len);

    if (rc != 0) {
        return (int) rc;
    }

    /* keep the file order of addresses for one name */

    return (a->line > b->line) - (a->line < b->line);
}


/* the CA */


static char *
ngx_mcd_ca_certificate(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_mcd_conf_t  *mcf = conf;

    BIO                 *bio;
    X509                *x509;
    ngx_str_t           *value, file;
    ngx_pool_cleanup_t  *cln;

    if (mcf->ca != NULL) {
        return "is duplicate";
    }

    value = cf->args->elts;
    file = value[1];

    if (ngx_conf_full_name(cf->cycle, &file, 1) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    cln = ngx_pool_cleanup_add(cf->pool, 0);
    if (cln == NULL) {
        return NGX_CONF_ERROR;
    }

    cln->handler = ngx_mcd_ca_cleanup;
    cln->data = mcf;

    mcf->ca_certificate = file;

    if (mcf->ca_conf_file == NULL) {
        mcf->ca_conf_file = ngx_mcd_source(cf);
        mcf->ca_conf_line = cf->conf_file->line;
    }

    bio = BIO_new_file((char *) file.data, "r");
    if (bio == NULL) {
        ngx_mcd_ssl_error(cf, "cannot open CA certificate \"%V\"", &file);
        return NGX_CONF_ERROR;
    }

    mcf->ca = PEM_read_bio_X509_AUX(bio, NULL, NULL, NULL);

    if (mcf->ca == NULL) {
        BIO_free(bio);
        ngx_mcd_ssl_error(cf, "cannot load CA certificate \"%V\"", &file);
        return NGX_CONF_ERROR;
    }

    mcf->ca_chain = sk_X509_new_null();
    if (mcf->ca_chain == NULL) {
        BIO_free(bio);
        return NGX_CONF_ERROR;
    }

    for ( ;; ) {
        x509 = PEM_read_bio_X509(bio, NULL, NULL, NULL);

        if (x509 == NULL) {
            /* the end of the file */
            ERR_clear_error();
            break;
        }

        if (sk_X509_push(mcf->ca_chain, x509) == 0) {
            X509_free(x509);
            BIO_free(bio);
            return NGX_CONF_ERROR;
        }
    }

    BIO_free(bio);

    if (X509_check_ca(mcf->ca) == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%V\" is not a CA certificate "
                           "(no basicConstraints CA:TRUE or keyCertSign)",
                           &file);
        return NGX_CONF_ERROR;
    }

    if (ngx_mcd_ca_check_dates(cf, mcf->ca, &file) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/*
 * a CA that is not valid now cannot sign anything a client accepts: an
 * error; one that expires within NGX_MCD_CA_EXPIRY_WARN: a warning, at
 * every "nginx -t" and reload until it is replaced
 */

static ngx_int_t
ngx_mcd_ca_check_dates(ngx_conf_t *cf, X509 *ca, ngx_str_t *file)
{
    time_t           now, soon;
    struct tm        tm;
    const ASN1_TIME  *t;

    now = ngx_time();
    soon = now + NGX_MCD_CA_EXPIRY_WARN;

    t = X509_get0_notBefore(ca);

    if (X509_cmp_time(t, &now) > 0) {
        ngx_memzero(&tm, sizeof(struct tm));
        (void) ASN1_TIME_to_tm(t, &tm);

        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "CA certificate \"%V\" is not valid before "
                           "%4d-%02d-%02d %02d:%02d:%02d UTC", file,
                           tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                           tm.tm_hour, tm.tm_min, tm.tm_sec);
        return NGX_ERROR;
    }

    t = X509_get0_notAfter(ca);

    ngx_memzero(&tm, sizeof(struct tm));
    (void) ASN1_TIME_to_tm(t, &tm);

    if (X509_cmp_time(t, &now) < 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "CA certificate \"%V\" expired on "
                           "%4d-%02d-%02d %02d:%02d:%02d UTC", file,
                           tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                           tm.tm_hour, tm.tm_min, tm.tm_sec);
        return NGX_ERROR;
    }

    if (X509_cmp_time(t, &soon) < 0) {
        ngx_conf_log_error(NGX_LOG_WARN, cf, 0,
                           "CA certificate \"%V\" expires on "
                           "%4d-%02d-%02d %02d:%02d:%02d UTC, in less than "
                           "%d days", file,
                           tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                           tm.tm_hour, tm.tm_min, tm.tm_sec,
                           NGX_MCD_CA_EXPIRY_WARN / 86400);
    }

    return NGX_OK;
}


static char *
ngx_mcd_ca_certificate_key(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_mcd_conf_t  *mcf = conf;

    BIO                 *bio;
    ngx_str_t           *value, file;
    ngx_uint_t           mode;
    ngx_file_info_t      fi;
    ngx_pool_cleanup_t  *cln;

    if (mcf->ca_certificate_key.data != NULL) {
        return "is duplicate";
    }

    value = cf->args->elts;
    file = value[1];

    if (ngx_conf_full_name(cf->cycle, &file, 1) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    mcf->ca_certificate_key = file;

    /* the key line is the one named when the pair does not match */

    mcf->ca_conf_file = ngx_mcd_source(cf);
    mcf->ca_conf_line = cf->conf_file->line;

    if (mcf->ca == NULL) {
        cln = ngx_pool_cleanup_add(cf->pool, 0);
        if (cln == NULL) {
            return NGX_CONF_ERROR;
        }

        cln->handler = ngx_mcd_ca_cleanup;
        cln->data = mcf;
    }

    /* the key itself is loaded by ngx_mcd_init_conf() */

    bio = BIO_new_file((char *) file.data, "r");
    if (bio == NULL) {
        ngx_mcd_ssl_error(cf, "cannot open CA key \"%V\"", &file);
        return NGX_CONF_ERROR;
    }

    BIO_free(bio);

    /* whoever can read the key can mint certificates the clients trust */

    if (ngx_file_info(file.data, &fi) != NGX_FILE_ERROR
        && (ngx_file_access(&fi) & (S_IRWXG|S_IRWXO)))
    {
        mode = ngx_file_access(&fi);

        ngx_conf_log_error(NGX_LOG_WARN, cf, 0,
                           "CA key \"%V\" is accessible by group or others "
                           "(mode 0%ui%ui%ui): it should be readable by its "
                           "owner only", &file, (mode >> 6) & 7,
                           (mode >> 3) & 7, mode & 7);
    }

    return NGX_CONF_OK;
}


static char *
ngx_mcd_ca_password_file(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_mcd_conf_t  *mcf = conf;

    u_char              *p, *last, *end, *data;
    size_t               len;
    ngx_str_t           *value, file, content, *phrase;
    ngx_pool_cleanup_t  *cln;

    if (mcf->ca_password_file.data != NULL) {
        return "is duplicate";
    }

    value = cf->args->elts;
    file = value[1];

    if (ngx_conf_full_name(cf->cycle, &file, 1) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    mcf->ca_password_file = file;

    mcf->ca_passwords = ngx_array_create(cf->pool, 4, sizeof(ngx_str_t));
    if (mcf->ca_passwords == NULL) {
        return NGX_CONF_ERROR;
    }

    /* the phrases are wiped once the key is loaded, or with the pool */

    cln = ngx_pool_cleanup_add(cf->pool, 0);
    if (cln == NULL) {
        return NGX_CONF_ERROR;
    }

    cln->handler = ngx_mcd_ca_passwords_wipe;
    cln->data = mcf->ca_passwords;

    if (ngx_mcd_read_file(cf, &file, &content, "CA password file") != NGX_OK)
    {
        return NGX_CONF_ERROR;
    }

    /* one pass phrase a line; empty lines are skipped */

    p = content.data;
    last = content.data + content.len;

    while (p < last) {
        end = ngx_strlchr(p, last, LF);
        if (end == NULL) {
            end = last;
        }

        len = end - p;

        if (len > 0 && p[len - 1] == CR) {
            len--;
        }

        if (len > 0) {
            data = ngx_pnalloc(cf->pool, len);
            if (data == NULL) {
                goto failed;
            }

            ngx_memcpy(data, p, len);

            phrase = ngx_array_push(mcf->ca_passwords);
            if (phrase == NULL) {
                ngx_explicit_memzero(data, len);
                goto failed;
            }

            phrase->len = len;
            phrase->data = data;
        }

        p = end + 1;
    }

    ngx_explicit_memzero(content.data, content.len);
    ngx_free(content.data);

    if (mcf->ca_passwords->nelts == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "no pass phrase in CA password file \"%V\"",
                           &file);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;

failed:

    ngx_explicit_memzero(content.data, content.len);
    ngx_free(content.data);

    return NGX_CONF_ERROR;
}


static char *
ngx_mcd_certificate_cache(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_mcd_conf_t  *mcf = conf;

    ngx_str_t   *value, s;
    ngx_int_t    max;
    ngx_uint_t   i;
    time_t       valid;

    if (mcf->cert_cache_max != NGX_CONF_UNSET_UINT) {
        return "is duplicate";
    }

    value = cf->args->elts;
    max = NGX_ERROR;
    valid = 86400;

    for (i = 1; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "max=", 4) == 0) {
            max = ngx_atoi(value[i].data + 4, value[i].len - 4);
            if (max <= 0) {
                goto invalid;
            }

            continue;
        }

        if (ngx_strncmp(value[i].data, "valid=", 6) == 0) {
            s.len = value[i].len - 6;
            s.data = value[i].data + 6;

            valid = ngx_parse_time(&s, 1);
            if (valid == (time_t) NGX_ERROR || valid == 0) {
                goto invalid;
            }

            continue;
        }

        goto invalid;
    }

    if (max == NGX_ERROR) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"mcd_certificate_cache\" must have "
                           "the \"max\" parameter");
        return NGX_CONF_ERROR;
    }

    mcf->cert_cache_max = max;
    mcf->cert_cache_valid = valid;

    return NGX_CONF_OK;

invalid:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "invalid parameter \"%V\"", &value[i]);
    return NGX_CONF_ERROR;
}


/*
 * the CA key: each pass phrase of "mcd_ca_password_file" in turn; OpenSSL
 * never prompts for one (an encrypted key with no phrase configured fails)
 */

static ngx_int_t
ngx_mcd_ca_load_key(ngx_cycle_t *cycle, ngx_mcd_conf_t *mcf)
{
    BIO                *bio;
    u_char              errstr[NGX_MAX_CONF_ERRSTR], *p, *last;
    ngx_str_t          *phrases;
    ngx_uint_t          i, n;
    ngx_mcd_ca_pass_t   pass;

    if (mcf->ca_passwords != NULL) {
        phrases = mcf->ca_passwords->elts;
        n = mcf->ca_passwords->nelts;

    } else {
        phrases = NULL;
        n = 0;
    }

    bio = BIO_new_file((char *) mcf->ca_certificate_key.data, "r");
    if (bio == NULL) {
        goto failed;
    }

    pass.asked = 0;

    for (i = 0; /* void */ ; i++) {

        pass.phrase = (i < n) ? &phrases[i] : NULL;

        mcf->ca_key = PEM_read_bio_PrivateKey(bio, NULL,
                                              ngx_mcd_ca_password_cb, &pass);

        if (mcf->ca_key != NULL || !pass.asked || i + 1 >= n) {
            break;
        }

        /* a wrong pass phrase: the next one */

        ERR_clear_error();

        if (BIO_reset(bio) != 0) {
            break;
        }
    }

    BIO_free(bio);

    if (mcf->ca_key != NULL) {
        return NGX_OK;
    }

    if (pass.asked && n == 0) {
        ERR_clear_error();
        ngx_log_error(NGX_LOG_EMERG, cycle->log, 0,
                      "CA key \"%V\" is encrypted, but no "
                      "\"mcd_ca_password_file\" is configured in %s:%ui",
                      &mcf->ca_certificate_key,
                      mcf->ca_conf_file, mcf->ca_conf_line);
        return NGX_ERROR;
    }

    if (pass.asked) {
        ERR_clear_error();
        ngx_log_error(NGX_LOG_EMERG, cycle->log, 0,
                      "no pass phrase in \"%V\" decrypts CA key \"%V\" "
                      "in %s:%ui",
                      &mcf->ca_password_file, &mcf->ca_certificate_key,
                      mcf->ca_conf_file, mcf->ca_conf_line);
        return NGX_ERROR;
    }

failed:

    last = errstr + NGX_MAX_CONF_ERRSTR;

    p = ngx_snprintf(errstr, last - errstr - 1, "cannot load CA key \"%V\"",
                     &mcf->ca_certificate_key);
    p = ngx_mcd_ssl_errors(p, last);

    ngx_log_error(NGX_LOG_EMERG, cycle->log, 0, "%*s in %s:%ui",
                  p - errstr, errstr, mcf->ca_conf_file, mcf->ca_conf_line);

    return NGX_ERROR;
}


static int
ngx_mcd_ca_password_cb(char *buf, int size, int rwflag, void *userdata)
{
    ngx_mcd_ca_pass_t  *pass = userdata;

    pass->asked = 1;

    if (rwflag || pass->phrase == NULL || size <= 0
        || pass->phrase->len > (size_t) size)
    {
        /* no prompt, ever */
        return -1;
    }

    ngx_memcpy(buf, pass->phrase->data, pass->phrase->len);

    return (int) pass->phrase->len;
}


static void
ngx_mcd_ca_passwords_wipe(void *data)
{
    ngx_array_t  *passwords = data;

    ngx_str_t   *phrase;
    ngx_uint_t   i;

    if (passwords == NULL) {
        return;
    }

    phrase = passwords->elts;

    for (i = 0; i < passwords->nelts; i++) {
        ngx_explicit_memzero(phrase[i].data, phrase[i].len);
    }
}


static void
ngx_mcd_ca_cleanup(void *data)
{
    ngx_mcd_conf_t  *mcf = data;

    if (mcf->ca != NULL) {
        X509_free(mcf->ca);
        mcf->ca = NULL;
    }

    if (mcf->ca_chain != NULL) {
        sk_X509_pop_free(mcf->ca_chain, X509_free);
        mcf->ca_chain = NULL;
    }

    if (mcf->ca_key != NULL) {
        EVP_PKEY_free(mcf->ca_key);
        mcf->ca_key = NULL;
    }

    if (mcf->mint_chain != NULL) {
        sk_X509_pop_free(mcf->mint_chain, X509_free);
        mcf->mint_chain = NULL;
    }

    if (mcf->mint_ca.cert != NULL) {
        mcd_cert_ca_free(&mcf->mint_ca);
    }
}


static void
ngx_mcd_ssl_error(ngx_conf_t *cf, const char *fmt, ngx_str_t *name)
{
    u_char  errstr[NGX_MAX_CONF_ERRSTR], *p, *last;

    last = errstr + NGX_MAX_CONF_ERRSTR;

    p = ngx_snprintf(errstr, last - errstr - 1, fmt, name);
    p = ngx_mcd_ssl_errors(p, last);

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "%*s", p - errstr,
                       errstr);
}


/* OpenSSL's error queue, emptied, appended as " (SSL: ...)" */

static u_char *
ngx_mcd_ssl_errors(u_char *p, u_char *last)
{
    unsigned long  n;

    for ( ;; ) {
        n = ERR_get_error();

        if (n == 0) {
            break;
        }

        if (p < last - 3) {
            p = ngx_cpystrn(p, (u_char *) " (SSL: ", last - p);

            if (p < last - 2) {
                ERR_error_string_n(n, (char *) p, last - p - 2);
                p += ngx_strlen(p);
                p = ngx_cpystrn(p, (u_char *) ")", last - p);
            }
        }
    }

    return p;
}


static char *
ngx_mcd_leaf_key(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_mcd_conf_t  *mcf = conf;

    ngx_str_t   *value;
    const char  *err;

    if (mcf->leaf_key_name.data != NULL) {
        return "is duplicate";
    }

    value = cf->args->elts;

    err = NULL;

    if (mcd_cert_key_spec_parse(value[1].data, value[1].len, &mcf->leaf_key,
                                &err)
        != 0)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid value \"%V\" in \"mcd_leaf_key\": %s, "
                           "it must be \"ec:P-256\", \"ec:P-384\", "
                           "\"rsa:2048\", \"rsa:3072\" or \"rsa:4096\"",
                           &value[1], err ? err : "unknown key type");
        return NGX_CONF_ERROR;
    }

    mcf->leaf_key_name = value[1];

    return NGX_CONF_OK;
}


/*
 * per worker: one leaf key, made at worker start and used for every
 * certificate the worker mints (a signature per new name, no key
 * generation), and the cache of minted certificates
 */

static mcd_cert_key_t     ngx_mcd_leaf;
static mcd_cert_cache_t  *ngx_mcd_cert_cache;
static ngx_mcd_conf_t    *ngx_mcd_worker_conf;


static ngx_int_t
ngx_mcd_init_process(ngx_cycle_t *cycle)
{
    const char      *err;
    ngx_mcd_conf_t  *mcf;

    mcf = (ngx_mcd_conf_t *) ngx_get_conf(cycle->conf_ctx, ngx_mcd_module);

    if (mcf == NULL || mcf->mint_ca.cert == NULL) {
        return NGX_OK;
    }

    err = NULL;

    if (mcd_cert_key_generate(&mcf->leaf_key, &ngx_mcd_leaf, &err) != 0) {
        ngx_log_error(NGX_LOG_ALERT, cycle->log, 0,
                      "mcd: cannot generate the leaf key \"%V\": %s",
                      &mcf->leaf_key_name, err ? err : "unknown error");
        return NGX_ERROR;
    }

    ngx_mcd_cert_cache = mcd_cert_cache_create(mcf->cert_cache_max,
                                               mcf->cert_cache_valid, -1,
                                               &err);
    if (ngx_mcd_cert_cache == NULL) {
        ngx_log_error(NGX_LOG_ALERT, cycle->log, 0,
                      "mcd: cannot create the certificate cache: %s",
                      err ? err : "unknown error");
        mcd_cert_key_free(&ngx_mcd_leaf);
        return NGX_ERROR;
    }

    ngx_mcd_worker_conf = mcf;

    ngx_log_error(NGX_LOG_INFO, cycle->log, 0,
                  "mcd: worker leaf key %V generated, certificate cache "
                  "max=%ui valid=%T", &mcf->leaf_key_name,
                  mcf->cert_cache_max, mcf->cert_cache_valid);

    return NGX_OK;
}


static void
ngx_mcd_exit_process(ngx_cycle_t *cycle)
{
    if (ngx_mcd_cert_cache != NULL) {
        mcd_cert_cache_free(ngx_mcd_cert_cache);
        ngx_mcd_cert_cache = NULL;
    }

    if (ngx_mcd_worker_conf != NULL) {
        mcd_cert_key_free(&ngx_mcd_leaf);
        ngx_mcd_worker_conf = NULL;
    }
}


/*
 * the certificate for an authorized name, from the worker's cache or minted
 * now; the caller owns a reference to the certificate, the key and chain
 * are the worker's (SSL_use_cert_and_key() takes its own references)
 */

X509 *
ngx_mcd_certificate(ngx_str_t *name, EVP_PKEY **key, STACK_OF(X509) **chain,
    ngx_uint_t *minted, const char **err)
{
    int                            m;
    X509                          *x509;
    mcd_cert_cache_stats_t         before;
    const mcd_cert_cache_stats_t  *after;

    if (ngx_mcd_worker_conf == NULL) {
        *err = "no gateway CA in this worker";
        return NULL;
    }

    m = 0;

    before = *mcd_cert_cache_stats(ngx_mcd_cert_cache);

    x509 = mcd_cert_cache_get(ngx_mcd_cert_cache,
                              &ngx_mcd_worker_conf->mint_ca, &ngx_mcd_leaf,
                              name->data, name->len, ngx_time(), 0, &m, err);

    /* the worker's cache counts; the shared counters add what changed */

    after = mcd_cert_cache_stats(ngx_mcd_cert_cache);

    ngx_mcd_metric_add(hits, after->hits - before.hits);
    ngx_mcd_metric_add(misses, after->misses - before.misses);
    ngx_mcd_metric_add(evictions, after->evictions - before.evictions);
    ngx_mcd_metric_add(minted, after->minted - before.minted);

    if (x509 == NULL) {
        return NULL;
    }

    *key = ngx_mcd_leaf.pkey;
    *chain = ngx_mcd_worker_conf->mint_chain;
    *minted = m;

    return x509;
}


/* the configuration is in place: its profiles get their counters */

static ngx_int_t
ngx_mcd_init_module(ngx_cycle_t *cycle)
{
    ngx_mcd_metrics_assign(cycle);

    return NGX_OK;
}
