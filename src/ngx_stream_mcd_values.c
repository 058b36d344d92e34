
/*
 * Copyright (C) ngx_mcd authors
 *
 * "mcd_fqdn_filter $group;": nginx -t checks that every literal value a
 * stream "map" or "geo" can give the variable names a profile.
 *
 * nginx keeps what a map or geo block made in its modules' private
 * structures and gives no way to list a variable's values.  So, while the
 * stream block is read, the "map" and "geo" directives are wrapped: after
 * nginx's own handler built the block, the wrapper notes which variable it
 * made and the data nginx attached to it.  At the end of the configuration
 * the values are read out of that data: a map's exact, wildcard and regex
 * hashes and its default; a geo's radix trees (CIDR) or ranges and its
 * default.  The layouts used are those of nginx 1.22 to the current
 * mainline, declared below; the wrappers are removed when the stream block
 * ends (or when a configuration that failed is thrown away), so nginx's
 * command table never points into a module that may be unloaded.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_stream.h>

#include "ngx_stream_mcd.h"


/* ngx_stream_map_module.c's ngx_stream_map_ctx_t */

typedef struct {
    ngx_stream_map_t                 map;
    ngx_stream_complex_value_t       value;
    ngx_stream_variable_value_t     *default_value;
    ngx_uint_t                       hostnames;
} ngx_stream_mcd_map_ctx_t;


/* ngx_stream_geo_module.c's ngx_stream_geo_range_t and ctx */

typedef struct {
    ngx_stream_variable_value_t     *value;
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
            ngx_stream_variable_value_t  *default_value;
        } high;
    } u;

    ngx_int_t                        index;
} ngx_stream_mcd_geo_ctx_t;


typedef struct {
    ngx_str_t                        name;          /* without '$' */
    ngx_uint_t                       geo;           /* else map */
    void                            *data;          /* nginx's ctx */
} ngx_stream_mcd_made_t;


static char *ngx_stream_mcd_map(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_stream_mcd_geo(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_stream_mcd_made(ngx_conf_t *cf, ngx_str_t *name,
    ngx_uint_t geo);
static void ngx_stream_mcd_unwrap(void *data);
static ngx_int_t ngx_stream_mcd_walk_hash(ngx_hash_t *hash,
    ngx_stream_mcd_visit_pt visit, void *data);
static ngx_int_t ngx_stream_mcd_walk_wc(ngx_hash_wildcard_t *hwc,
    ngx_stream_mcd_visit_pt visit, void *data);
static ngx_int_t ngx_stream_mcd_walk_radix(ngx_radix_node_t *node,
    ngx_stream_mcd_visit_pt visit, void *data);
static ngx_int_t ngx_stream_mcd_walk(ngx_cycle_t *cycle,
    ngx_stream_mcd_made_t *made, ngx_stream_mcd_visit_pt visit, void *data);


static ngx_command_t  *ngx_stream_mcd_map_cmd;
static ngx_command_t  *ngx_stream_mcd_geo_cmd;
static char *(*ngx_stream_mcd_map_set)(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *(*ngx_stream_mcd_geo_set)(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);

/* what the blocks of the configuration being read made */
static ngx_array_t    *ngx_stream_mcd_made_list;


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


/* at the start of the stream block */

ngx_int_t
ngx_stream_mcd_wrap_values(ngx_conf_t *cf)
{
    ngx_pool_cleanup_t  *cln;

    ngx_stream_mcd_made_list = ngx_array_create(cf->pool, 4,
                                                sizeof(ngx_stream_mcd_made_t));
    if (ngx_stream_mcd_made_list == NULL) {
        return NGX_ERROR;
    }

    cln = ngx_pool_cleanup_add(cf->pool, 0);
    if (cln == NULL) {
        return NGX_ERROR;
    }

    cln->handler = ngx_stream_mcd_unwrap;
    cln->data = NULL;

    ngx_stream_mcd_map_cmd = ngx_stream_mcd_find_command(cf->cycle,
                                                  "ngx_stream_map_module",
                                                  "map");
    ngx_stream_mcd_geo_cmd = ngx_stream_mcd_find_command(cf->cycle,
                                                  "ngx_stream_geo_module",
                                                  "geo");

    if (ngx_stream_mcd_map_cmd
        && ngx_stream_mcd_map_cmd->set != ngx_stream_mcd_map)
    {
        ngx_stream_mcd_map_set = ngx_stream_mcd_map_cmd->set;
        ngx_stream_mcd_map_cmd->set = ngx_stream_mcd_map;
    }

    if (ngx_stream_mcd_geo_cmd
        && ngx_stream_mcd_geo_cmd->set != ngx_stream_mcd_geo)
    {
        ngx_stream_mcd_geo_set = ngx_stream_mcd_geo_cmd->set;
        ngx_stream_mcd_geo_cmd->set = ngx_stream_mcd_geo;
    }

    return NGX_OK;
}


/* at the end of the stream block, and when the cycle's pool goes */

void
ngx_stream_mcd_unwrap_values(void)
{
    ngx_stream_mcd_unwrap(NULL);
}


static void
ngx_stream_mcd_unwrap(void *data)
{
    if (ngx_stream_mcd_map_cmd
        && ngx_stream_mcd_map_cmd->set == ngx_stream_mcd_map)
    {
        ngx_stream_mcd_map_cmd->set = ngx_stream_mcd_map_set;
    }

    if (ngx_stream_mcd_geo_cmd
        && ngx_stream_mcd_geo_cmd->set == ngx_stream_mcd_geo)
    {
        ngx_stream_mcd_geo_cmd->set = ngx_stream_mcd_geo_set;
    }

    ngx_stream_mcd_map_cmd = NULL;
    ngx_stream_mcd_geo_cmd = NULL;
}


/*
 * the block's variable is its last argument ("map $a $b", "geo [$a] $b"),
 * taken before nginx's handler reads the block (which reuses cf->args)
 */

static char *
ngx_stream_mcd_map(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    char       *rv;
    ngx_str_t   name, *value;

    value = cf->args->elts;
    name = value[cf->args->nelts - 1];

    rv = ngx_stream_mcd_map_set(cf, cmd, conf);

    if (rv != NGX_CONF_OK) {
        return rv;
    }

    return ngx_stream_mcd_made(cf, &name, 0);
}


static char *
ngx_stream_mcd_geo(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    char       *rv;
    ngx_str_t   name, *value;

    value = cf->args->elts;
    name = value[cf->args->nelts - 1];

    rv = ngx_stream_mcd_geo_set(cf, cmd, conf);

    if (rv != NGX_CONF_OK) {
        return rv;
    }

    return ngx_stream_mcd_made(cf, &name, 1);
}


static char *
ngx_stream_mcd_made(ngx_conf_t *cf, ngx_str_t *var, ngx_uint_t geo)
{
    ngx_str_t                     name;
    ngx_uint_t                    i;
    ngx_hash_key_t               *key;
    ngx_stream_variable_t        *v;
    ngx_stream_mcd_made_t        *made;
    ngx_stream_core_main_conf_t  *cmcf;

    name = *var;

    if (name.len < 2 || name.data[0] != '$' || ngx_stream_mcd_made_list == NULL)
    {
        return NGX_CONF_OK;
    }

    name.data++;
    name.len--;

    cmcf = ngx_stream_conf_get_module_main_conf(cf, ngx_stream_core_module);

    key = cmcf->variables_keys->keys.elts;

    for (i = 0; i < cmcf->variables_keys->keys.nelts; i++) {

        if (key[i].key.len != name.len
            || ngx_strncasecmp(key[i].key.data, name.data, name.len) != 0)
        {
            continue;
        }

        v = key[i].value;

        made = ngx_array_push(ngx_stream_mcd_made_list);
        if (made == NULL) {
            return NGX_CONF_ERROR;
        }

        made->name = v->name;
        made->geo = geo;
        made->data = (void *) v->data;

        break;
    }

    return NGX_CONF_OK;
}


/* the values of the map or geo that makes "$name", NGX_DECLINED if none */

ngx_int_t
ngx_stream_mcd_values(ngx_cycle_t *cycle, ngx_str_t *name,
    ngx_stream_mcd_visit_pt visit, void *data)
{
    ngx_uint_t              i;
    ngx_stream_mcd_made_t  *made;

    if (ngx_stream_mcd_made_list == NULL || name->len < 2
        || name->data[0] != '$')
    {
        return NGX_DECLINED;
    }

    made = ngx_stream_mcd_made_list->elts;

    for (i = ngx_stream_mcd_made_list->nelts; i > 0; i--) {

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
    ngx_stream_mcd_visit_pt visit, void *data)
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
ngx_stream_mcd_walk_hash(ngx_hash_t *hash, ngx_stream_mcd_visit_pt visit,
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
ngx_stream_mcd_walk_wc(ngx_hash_wildcard_t *hwc, ngx_stream_mcd_visit_pt visit,
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
    ngx_stream_mcd_visit_pt visit, void *data)
{
    if (node == NULL) {
        return NGX_OK;
    }

    if (node->value != NGX_RADIX_NO_VALUE
        && visit((ngx_stream_variable_value_t *) node->value, data) != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (ngx_stream_mcd_walk_radix(node->left, visit, data) != NGX_OK) {
        return NGX_ERROR;
    }

    return ngx_stream_mcd_walk_radix(node->right, visit, data);
}
