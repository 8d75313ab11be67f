/* net.cidr_* built-ins over the Go-compatible IP/CIDR helpers. */
#include "policy/builtins_ext.h"

#include "policy/lib/net.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define A pc_builtin_arena(ctx)

static bool n_contains(EXT_ARGS)
{
    (void)n;
    const char *x, *y;
    size_t xl, yl;
    if (!pc_arg_string(ctx, a, 0, &x, &xl) || !pc_arg_string(ctx, a, 1, &y, &yl)) return false;
    char err[300];
    int rc = pc_plib_cidr_contains(x, xl, y, yl, err, sizeof(err));
    if (rc < 0) return pc__ext_err(ctx, err);
    return pc__ext_ret(ctx, out, pc_value_bool(rc == 1));
}

static bool n_intersects(EXT_ARGS)
{
    (void)n;
    const char *x, *y;
    size_t xl, yl;
    if (!pc_arg_string(ctx, a, 0, &x, &xl) || !pc_arg_string(ctx, a, 1, &y, &yl)) return false;
    char err[300];
    int rc = pc_plib_cidr_intersects(x, xl, y, yl, err, sizeof(err));
    if (rc < 0) return pc__ext_err(ctx, err);
    return pc__ext_ret(ctx, out, pc_value_bool(rc == 1));
}

static bool n_is_valid(EXT_ARGS)
{
    (void)n;
    if (a[0]->kind != PC_STRING) return pc__ext_ret(ctx, out, pc_value_bool(false));
    pc_plib_cidr_t c;
    return pc__ext_ret(ctx, out,
                       pc_value_bool(pc_plib_cidr_parse(a[0]->u.s, a[0]->len, &c, NULL, 0)));
}

typedef struct {
    pc_eval_ctx *ctx;
    pc_vbuf *vb;
} collect_t;

static bool push_str(void *ud, const char *s, size_t len)
{
    collect_t *c = ud;
    pc_vbuf_push(c->vb, pc_value_string(pc_builtin_arena(c->ctx), s, len));
    return !c->vb->oom;
}

static bool n_expand(EXT_ARGS)
{
    (void)n;
    const char *x;
    size_t xl;
    if (!pc_arg_string(ctx, a, 0, &x, &xl)) return false;
    pc_vbuf vb;
    pc_vbuf_init(&vb, A);
    collect_t c = {ctx, &vb};
    char err[300];
    if (!pc_plib_cidr_expand(x, xl, push_str, &c, err, sizeof(err))) return pc__ext_err(ctx, err);
    if (vb.oom) return pc_builtin_oom(ctx);
    return pc__ext_ret(ctx, out, pc_vbuf_set(&vb));
}

static bool n_merge(EXT_ARGS)
{
    (void)n;
    const pc_value *v = a[0];
    if (v->kind != PC_ARRAY && v->kind != PC_SET) return pc_builtin_error(ctx, "operand must be an array");
    const char **items = pc_arena_alloc(A, sizeof(char *) * (v->len ? v->len : 1));
    size_t *lens = pc_arena_alloc(A, sizeof(size_t) * (v->len ? v->len : 1));
    if (!items || !lens) return pc_builtin_oom(ctx);
    for (uint32_t i = 0; i < v->len; i++) {
        if (v->u.items[i]->kind != PC_STRING) return pc_builtin_error(ctx, "element must be string");
        items[i] = v->u.items[i]->u.s;
        lens[i] = v->u.items[i]->len;
    }
    pc_vbuf vb;
    pc_vbuf_init(&vb, A);
    collect_t c = {ctx, &vb};
    char err[300];
    if (!pc_plib_cidr_merge(items, lens, v->len, push_str, &c, err, sizeof(err)))
        return pc__ext_err(ctx, err);
    if (vb.oom) return pc_builtin_oom(ctx);
    return pc__ext_ret(ctx, out, pc_vbuf_set(&vb));
}

/* One operand of net.cidr_contains_matches: (cidr, key) pairs. */
typedef struct {
    const pc_value *cidr;
    const pc_value *key;
} match_item_t;

static bool match_items(pc_eval_ctx *ctx, const pc_value *v, int pos, match_item_t **items,
                        size_t *count)
{
    size_t len = v->kind == PC_STRING ? 1 : v->len;
    match_item_t *it = pc_arena_alloc(A, sizeof(*it) * (len ? len : 1));
    if (!it) return pc_builtin_oom(ctx);
    *items = it;
    *count = 0;
    if (v->kind == PC_STRING) {
        it[0] = (match_item_t){v, v};
        *count = 1;
        return true;
    }
    if (v->kind != PC_ARRAY && v->kind != PC_SET && v->kind != PC_OBJECT) {
        *count = 0; /* OPA ignores other operand types */
        return true;
    }
    for (uint32_t i = 0; i < v->len; i++) {
        const pc_value *e = v->kind == PC_OBJECT ? v->u.kvs[i].val : v->u.items[i];
        const pc_value *key = v->kind == PC_ARRAY ? pc_value_int(A, i)
                              : v->kind == PC_SET ? e
                                                  : v->u.kvs[i].key;
        if (!key) return pc_builtin_oom(ctx);
        const pc_value *c = e;
        if (e->kind == PC_ARRAY && e->len > 0)
            c = e->u.items[0];
        else if (e->kind != PC_STRING)
            return pc_builtin_error(ctx, "operand %d: element must be string or non-empty array", pos);
        it[(*count)++] = (match_item_t){c, key};
    }
    return true;
}

static bool n_contains_matches(EXT_ARGS)
{
    (void)n;
    match_item_t *x, *y;
    size_t xn, yn;
    if (!match_items(ctx, a[0], 1, &x, &xn) || !match_items(ctx, a[1], 2, &y, &yn)) return false;
    pc_vbuf vb;
    pc_vbuf_init(&vb, A);
    for (size_t i = 0; i < xn; i++)
        for (size_t j = 0; j < yn; j++) {
            if (x[i].cidr->kind != PC_STRING)
                return pc_builtin_type_error(ctx, 1, "string", x[i].cidr);
            if (y[j].cidr->kind != PC_STRING)
                return pc_builtin_type_error(ctx, 1, "string", y[j].cidr);
            char err[300];
            int rc = pc_plib_cidr_contains(x[i].cidr->u.s, x[i].cidr->len, y[j].cidr->u.s,
                                           y[j].cidr->len, err, sizeof(err));
            if (rc < 0) return pc__ext_err(ctx, err);
            if (rc == 1) {
                const pc_value *pair[2] = {x[i].key, y[j].key};
                pc_vbuf_push(&vb, pc_value_array(A, pair, 2));
            }
        }
    if (vb.oom) return pc_builtin_oom(ctx);
    return pc__ext_ret(ctx, out, pc_vbuf_set(&vb));
}

static bool n_lookup_ip_addr(EXT_ARGS)
{
    (void)n;
    const char *x;
    size_t xl;
    if (!pc_arg_string(ctx, a, 0, &x, &xl)) return false;
    pc_vbuf vb;
    pc_vbuf_init(&vb, A);
    collect_t c = {ctx, &vb};
    if (pc_plib_lookup_ip_addr(x, xl, NULL, push_str, &c) < 0) return pc_builtin_error(ctx, "lookup failed");
    if (vb.oom) return pc_builtin_oom(ctx);
    return pc__ext_ret(ctx, out, pc_vbuf_set(&vb));
}

static const pc_builtin NET_TABLE[] = {
    {"net.cidr_contains", 2, n_contains, 0},
    {"net.cidr_overlap", 2, n_contains, 0},
    {"net.cidr_intersects", 2, n_intersects, 0},
    {"net.cidr_is_valid", 1, n_is_valid, 0},
    {"net.cidr_expand", 1, n_expand, 0},
    {"net.cidr_merge", 1, n_merge, 0},
    {"net.cidr_contains_matches", 2, n_contains_matches, 0},
    {"net.lookup_ip_addr", 1, n_lookup_ip_addr, PC_BUILTIN_NONDET},
    {NULL, 0, NULL, 0},
};

void pc__builtins_ext_net_register(void)
{
    pc_builtin_register_table(NET_TABLE);
}
