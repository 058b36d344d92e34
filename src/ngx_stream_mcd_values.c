
/*
 * Copyright (C) ngx_mcd authors
 *
 * "mcd_fqdn_filter $group;": nginx -t checks that every literal value a
 * "map" or "geo" (stream or http) can give the variable names a profile.
 *
 * nginx keeps what a map or geo block made in its modules' private
 * structures and gives no way to list a variable's values.  So, while a
 * stream or http block is read, its "map" and "geo" directives are
 * wrapped: after nginx's own handler built the block, the wrapper notes
 * which variable it made and the data nginx attached to it.  At the end
 * of the configuration the values are read out of that data: a map's
 * exact, wildcard and regex hashes and its default; a geo's radix trees
 * (CIDR) or ranges and its default.  The layouts used are those of nginx
 * 1.22 to the current mainline, declared below; they are the same in
 * stream and http (http's geo has more fields after the ones read).  The
 * wrappers are removed when the block ends (or when a configuration that
 * failed is thrown away), so nginx's command tables never point into a
 * module that may be unloaded.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_stream.h>

#include "ngx_stream_mcd.h"

#if (NGX_HTTP_SSL)
#include <ngx_http.h>
#endif


/* ngx_{stream,http}_map_module.c's ngx_*_map_ctx_t */

typedef struct {
    ngx_stream_map_t                 map;
    ngx_stream_complex_value_t       value;
    ngx_variable_value_t            *default_value;
    ngx_uint_t                       hostnames;
} ngx_stream_mcd_map_ctx_t;


/* ngx_{stream,http}_geo_module.c's ngx_*_geo_range_t and ctx */

typedef struct {
    ngx_variable_value_t            *value;
    u_short                          start;
    u_short                          end;
} ngx_stream_mcd_geo_range_t;


typedef struct {
    union {
        struct {
            ngx_radix_tree_t        *tree;
#if (NGX_HAVE_INET6)
            ngx_radix_tree_t        *tree6;
#endif
        } trees;

        struct {
            ngx_stream_mcd_geo_range_t  **low;
            ngx_variable_value_t         *default_value;
        } high;
    } u;
} ngx_stream_mcd_geo_ctx_t;


typedef struct {
    ngx_str_t                        name;          /* without '$' */
    ngx_uint_t                       geo;           /* else map */
    void                            *data;          /* nginx's ctx */
} ngx_stream_mcd_made_t;


typedef char *(*ngx_stream_mcd_set_pt)(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);


typedef struct {
    char                            *map_module;
    char                            *geo_module;
    ngx_stream_mcd_set_pt            map_wrap;
    ngx_stream_mcd_set_pt            geo_wrap;
    ngx_command_t                   *map_cmd;
    ngx_command_t                   *geo_cmd;
    ngx_stream_mcd_set_pt            map_set;
    ngx_stream_mcd_set_pt            geo_set;
    ngx_array_t                     *made;          /* ngx_stream_mcd_made_t */
} ngx_stream_mcd_kind_t;


static ngx_command_t *ngx_stream_mcd_find_command(ngx_cycle_t *cycle,
    char *module, char *name);
static char *ngx_stream_mcd_map(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_stream_mcd_geo(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_stream_mcd_http_map(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_stream_mcd_http_geo(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_stream_mcd_wrapped(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf, ngx_uint_t kind, ngx_uint_t geo);
static char *ngx_stream_mcd_made(ngx_conf_t *cf, ngx_str_t *var,
    ngx_uint_t kind, ngx_uint_t geo);
static void ngx_stream_mcd_unwrap(void *data);
static ngx_int_t ngx_stream_mcd_walk(ngx_cycle_t *cycle,
    ngx_stream_mcd_made_t *made, ngx_mcd_visit_pt visit, void *data);
static ngx_int_t ngx_stream_mcd_walk_hash(ngx_hash_t *hash,
    ngx_mcd_visit_pt visit, void *data);
static ngx_int_t ngx_stream_mcd_walk_wc(ngx_hash_wildcard_t *hwc,
    ngx_mcd_visit_pt visit, void *data);
static ngx_int_t ngx_stream_mcd_walk_radix(ngx_radix_node_t *node,
    ngx_mcd_visit_pt visit, void *data);


static ngx_stream_mcd_kind_t  ngx_stream_mcd_kinds[] = {

    /* NGX_MCD_VALUES_STREAM */
    { "ngx_stream_map_module", "ngx_stream_geo_module",
      ngx_stream_mcd_map, ngx_stream_mcd_geo,
      NULL, NULL, NULL, NULL, NULL },

    /* NGX_MCD_VALUES_HTTP */
    { "ngx_http_map_module", "ngx_http_geo_module",
      ngx_stream_mcd_http_map, ngx_stream_mcd_http_geo,
      NULL, NULL, NULL, NULL, NULL }
};


static ngx_command_t *
ngx_stream_mcd_find_command(ngx_cycle_t *cycle, char *module, char *name)
{
    ngx_uint_t      i;
    ngx_command_t  *cmd;

    for (i = 0; cycle->modules[i]; i++) {

        if (ngx_strcmp(cycle->modules[i]->name, module) != 0) {
            continue;
        }

        for (cmd = cycle->modules[i]->commands; cmd->name.len; cmd++) {
            if (ngx_strcmp(cmd->name.data, name) == 0) {
                return cmd;
            }
        }
    }

    return NULL;
}


/* at the start of a stream or http block */

ngx_int_t
ngx_mcd_wrap_values(ngx_conf_t *cf, ngx_uint_t kind)
{
    ngx_pool_cleanup_t     *cln;
    ngx_stream_mcd_kind_t  *k;

    k = &ngx_stream_mcd_kinds[kind];

    k->made = ngx_array_create(cf->pool, 4, sizeof(ngx_stream_mcd_made_t));
    if (k->made == NULL) {
        return NGX_ERROR;
    }

    cln = ngx_pool_cleanup_add(cf->pool, 0);
    if (cln == NULL) {
        return NGX_ERROR;
    }

    cln->handler = ngx_stream_mcd_unwrap;
    cln->data = k;

    k->map_cmd = ngx_stream_mcd_find_command(cf->cycle, k->map_module, "map");
    k->geo_cmd = ngx_stream_mcd_find_command(cf->cycle, k->geo_module, "geo");

    if (k->map_cmd && k->map_cmd->set != k->map_wrap) {
        k->map_set = k->map_cmd->set;
        k->map_cmd->set = k->map_wrap;
    }

    if (k->geo_cmd && k->geo_cmd->set != k->geo_wrap) {
        k->geo_set = k->geo_cmd->set;
        k->geo_cmd->set = k->geo_wrap;
    }

    return NGX_OK;
}


/* at the end of the block, and when the configuration's pool goes */

void
ngx_mcd_unwrap_values(ngx_uint_t kind)
{
    ngx_stream_mcd_unwrap(&ngx_stream_mcd_kinds[kind]);
}


static void
ngx_stream_mcd_unwrap(void *data)
{
    ngx_stream_mcd_kind_t  *k = data;

    if (k->map_cmd && k->map_cmd->set == k->map_wrap) {
        k->map_cmd->set = k->map_set;
    }

    if (k->geo_cmd && k->geo_cmd->set == k->geo_wrap) {
        k->geo_cmd->set = k->geo_set;
    }

    k->map_cmd = NULL;
    k->geo_cmd = NULL;
}


static char *
ngx_stream_mcd_map(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    return ngx_stream_mcd_wrapped(cf, cmd, conf, NGX_MCD_VALUES_STREAM, 0);
}


static char *
ngx_stream_mcd_geo(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    return ngx_stream_mcd_wrapped(cf, cmd, conf, NGX_MCD_VALUES_STREAM, 1);
}


static char *
ngx_stream_mcd_http_map(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    return ngx_stream_mcd_wrapped(cf, cmd, conf, NGX_MCD_VALUES_HTTP, 0);
}


static char *
ngx_stream_mcd_http_geo(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    return ngx_stream_mcd_wrapped(cf, cmd, conf, NGX_MCD_VALUES_HTTP, 1);
}


/*
 * the block's variable is its last argument ("map $a $b", "geo [$a] $b"),
 * taken before nginx's handler reads the block (which reuses cf->args)
 */

static char *
ngx_stream_mcd_wrapped(ngx_conf_t *cf, ngx_command_t *cmd, void *conf,
    ngx_uint_t kind, ngx_uint_t geo)
{
    char                   *rv;
    ngx_str_t               name, *value;
    ngx_stream_mcd_kind_t  *k;

    k = &ngx_stream_mcd_kinds[kind];

    value = cf->args->elts;
    name = value[cf->args->nelts - 1];

    rv = geo ? k->geo_set(cf, cmd, conf) : k->map_set(cf, cmd, conf);

    if (rv != NGX_CONF_OK) {
        return rv;
    }

    return ngx_stream_mcd_made(cf, &name, kind, geo);
}


static char *
ngx_stream_mcd_made(ngx_conf_t *cf, ngx_str_t *var, ngx_uint_t kind,
    ngx_uint_t geo)
{
    void                         *data;
    ngx_str_t                     name;
    ngx_uint_t                    i;
    ngx_hash_key_t               *key;
    ngx_hash_keys_arrays_t       *keys;
    ngx_stream_mcd_made_t        *made;
    ngx_stream_mcd_kind_t        *k;
    ngx_stream_core_main_conf_t  *scmcf;
#if (NGX_HTTP_SSL)
    ngx_http_core_main_conf_t    *hcmcf;
#endif

    k = &ngx_stream_mcd_kinds[kind];
    name = *var;

    if (name.len < 2 || name.data[0] != '$' || k->made == NULL) {
        return NGX_CONF_OK;
    }

    name.data++;
    name.len--;

    if (kind == NGX_MCD_VALUES_STREAM) {
        scmcf = ngx_stream_conf_get_module_main_conf(cf,
                                                     ngx_stream_core_module);
        keys = scmcf->variables_keys;

    } else {
#if (NGX_HTTP_SSL)
        hcmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_core_module);
        keys = hcmcf->variables_keys;
#else
        return NGX_CONF_OK;
#endif
    }

    key = keys->keys.elts;

    for (i = 0; i < keys->keys.nelts; i++) {

        if (key[i].key.len != name.len
            || ngx_strncasecmp(key[i].key.data, name.data, name.len) != 0)
        {
            continue;
        }

        /* the variable: ngx_stream_variable_t or ngx_http_variable_t */

        if (kind == NGX_MCD_VALUES_STREAM) {
            data = (void *) ((ngx_stream_variable_t *) key[i].value)->data;

        } else {
#if (NGX_HTTP_SSL)
            data = (void *) ((ngx_http_variable_t *) key[i].value)->data;
#else
            return NGX_CONF_OK;
#endif
        }

        made = ngx_array_push(k->made);
        if (made == NULL) {
            return NGX_CONF_ERROR;
        }

        made->name.len = name.len;
        made->name.data = ngx_pstrdup(cf->pool, &name);
        if (made->name.data == NULL) {
            return NGX_CONF_ERROR;
        }

        made->geo = geo;
        made->data = data;

        break;
    }

    return NGX_CONF_OK;
}


/* the values of the map or geo that makes "$name", NGX_DECLINED if none */

ngx_int_t
ngx_mcd_values(ngx_cycle_t *cycle, ngx_uint_t kind, ngx_str_t *name,
    ngx_mcd_visit_pt visit, void *data)
{
    ngx_uint_t              i;
    ngx_array_t            *list;
    ngx_stream_mcd_made_t  *made;

    list = ngx_stream_mcd_kinds[kind].made;

    if (list == NULL || name->len < 2 || name->data[0] != '$') {
        return NGX_DECLINED;
    }

    made = list->elts;

    for (i = list->nelts; i > 0; i--) {

        /* the last block that made the variable is the one in force */

        if (made[i - 1].name.len == name->len - 1
            && ngx_strncasecmp(made[i - 1].name.data, name->data + 1,
                               name->len - 1)
               == 0)
        {
            return ngx_stream_mcd_walk(cycle, &made[i - 1], visit, data);
        }
    }

    return NGX_DECLINED;
}


static ngx_int_t
ngx_stream_mcd_walk(ngx_cycle_t *cycle, ngx_stream_mcd_made_t *made,
    ngx_mcd_visit_pt visit, void *data)
{
    ngx_uint_t                    i;
    ngx_radix_tree_t             *tree;
    ngx_stream_map_regex_t       *re;
    ngx_stream_mcd_map_ctx_t     *map;
    ngx_stream_mcd_geo_ctx_t     *geo;
    ngx_stream_mcd_geo_range_t   *range;

    if (!made->geo) {
        map = made->data;

        if (ngx_stream_mcd_walk_hash(&map->map.hash.hash, visit, data)
               != NGX_OK
            || ngx_stream_mcd_walk_wc(map->map.hash.wc_head, visit, data)
               != NGX_OK
            || ngx_stream_mcd_walk_wc(map->map.hash.wc_tail, visit, data)
               != NGX_OK)
        {
            return NGX_ERROR;
        }

#if (NGX_PCRE)
        re = map->map.regex;

        for (i = 0; i < map->map.nregex; i++) {
            if (visit(re[i].value, data) != NGX_OK) {
                return NGX_ERROR;
            }
        }
#endif

        if (map->default_value) {
            return visit(map->default_value, data);
        }

        return NGX_OK;
    }

    geo = made->data;

    /*
     * CIDR or ranges (a union): a radix tree made for the block lives in
     * the configuration's pool and says so; the ranges' first word is an
     * array of 65536 pointers into that pool's memory, never the pool
     */

    tree = geo->u.trees.tree;

    if (tree != NULL && tree->pool == cycle->pool) {

        if (ngx_stream_mcd_walk_radix(tree->root, visit, data) != NGX_OK) {
            return NGX_ERROR;
        }

#if (NGX_HAVE_INET6)
        if (geo->u.trees.tree6
            && ngx_stream_mcd_walk_radix(geo->u.trees.tree6->root, visit,
                                         data)
               != NGX_OK)
        {
            return NGX_ERROR;
        }
#endif

        return NGX_OK;
    }

    if (geo->u.high.low) {
        for (i = 0; i < 0x10000; i++) {
            for (range = geo->u.high.low[i];
                 range && range->value;
                 range++)
            {
                if (visit(range->value, data) != NGX_OK) {
                    return NGX_ERROR;
                }
            }
        }
    }

    if (geo->u.high.default_value) {
        return visit(geo->u.high.default_value, data);
    }

    return NGX_OK;
}


static ngx_int_t
ngx_stream_mcd_walk_hash(ngx_hash_t *hash, ngx_mcd_visit_pt visit,
    void *data)
{
    ngx_uint_t       i;
    ngx_hash_elt_t  *elt;

    if (hash->buckets == NULL) {
        return NGX_OK;
    }

    for (i = 0; i < hash->size; i++) {

        for (elt = hash->buckets[i];
             elt && elt->value;
             elt = (ngx_hash_elt_t *) ngx_align_ptr(&elt->name[0] + elt->len,
                                                    sizeof(void *)))
        {
            if (visit(elt->value, data) != NGX_OK) {
                return NGX_ERROR;
            }
        }
    }

    return NGX_OK;
}


/*
 * a wildcard hash's values carry flags in their two low bits: 2 marks a
 * nested wildcard hash (whose own value counts too), 1 a value that
 * matches only with more labels
 */

static ngx_int_t
ngx_stream_mcd_walk_wc(ngx_hash_wildcard_t *hwc, ngx_mcd_visit_pt visit,
    void *data)
{
    void                 *value;
    ngx_uint_t            i;
    ngx_hash_elt_t       *elt;
    ngx_hash_wildcard_t  *nested;

    if (hwc == NULL) {
        return NGX_OK;
    }

    if (hwc->value && visit(hwc->value, data) != NGX_OK) {
        return NGX_ERROR;
    }

    if (hwc->hash.buckets == NULL) {
        return NGX_OK;
    }

    for (i = 0; i < hwc->hash.size; i++) {

        for (elt = hwc->hash.buckets[i];
             elt && elt->value;
             elt = (ngx_hash_elt_t *) ngx_align_ptr(&elt->name[0] + elt->len,
                                                    sizeof(void *)))
        {
            value = elt->value;

            if ((uintptr_t) value & 2) {
                nested = (ngx_hash_wildcard_t *)
                             ((uintptr_t) value & (uintptr_t) ~3);

                if (ngx_stream_mcd_walk_wc(nested, visit, data) != NGX_OK) {
                    return NGX_ERROR;
                }

                continue;
            }

            value = (void *) ((uintptr_t) value & (uintptr_t) ~3);

            if (visit(value, data) != NGX_OK) {
                return NGX_ERROR;
            }
        }
    }

    return NGX_OK;
}


static ngx_int_t
ngx_stream_mcd_walk_radix(ngx_radix_node_t *node,
    ngx_mcd_visit_pt visit, void *data)
{
    if (node == NULL) {
        return NGX_OK;
    }

    if (node->value != NGX_RADIX_NO_VALUE
        && visit((ngx_variable_value_t *) node->value, data) != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (ngx_stream_mcd_walk_radix(node->left, visit, data) != NGX_OK) {
        return NGX_ERROR;
    }

    return ngx_stream_mcd_walk_radix(node->right, visit, data);
}
