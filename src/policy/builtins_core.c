/* Builtin registry and the builtins the core language needs. */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "core/common.h"
#include "policy/builtins.h"

/* ---- registry --------------------------------------------------------- */

static pc_builtin *g_tab;
static size_t g_len, g_cap;

#pragma weak pc__builtins_ext_register

void pc_builtin_register(const char *name, int arity, pc_builtin_fn fn, unsigned flags)
{
    for (size_t i = 0; i < g_len; i++)
        if (strcmp(g_tab[i].name, name) == 0) {
            g_tab[i].arity = arity;
            g_tab[i].fn = fn;
            g_tab[i].flags = flags;
            return;
        }
    if (g_len == g_cap) {
        g_cap = g_cap ? g_cap * 2 : 128;
        g_tab = pc_xrealloc(g_tab, g_cap * sizeof(*g_tab));
    }
    g_tab[g_len++] = (pc_builtin){pc_xstrdup(name), arity, fn, flags};
}

void pc_builtin_register_table(const pc_builtin *t)
{
    for (; t->name; t++) pc_builtin_register(t->name, t->arity, t->fn, t->flags);
}

const pc_builtin *pc_builtin_lookup(const char *name, size_t len)
{
    for (size_t i = 0; i < g_len; i++)
        if (strlen(g_tab[i].name) == len && memcmp(g_tab[i].name, name, len) == 0) return &g_tab[i];
    return NULL;
}

/* ---- argument helpers ------------------------------------------------- */

bool pc_arg_string(pc_eval_ctx *ctx, const pc_value *const *args, int pos, const char **s, size_t *len)
{
    const pc_value *v = args[pos];
    if (v->kind != PC_STRING) {
        pc_builtin_type_error(ctx, pos + 1, "string", v);
        return false; /* explicit, so callers' outputs are provably set on true */
    }
    *s = v->u.s;
    *len = v->len;
    return true;
}

bool pc_arg_number(pc_eval_ctx *ctx, const pc_value *const *args, int pos, double *out)
{
    const pc_value *v = args[pos];
    if (v->kind != PC_NUMBER) {
        pc_builtin_type_error(ctx, pos + 1, "number", v);
        return false; /* explicit, so callers' outputs are provably set on true */
    }
    *out = pc_value_get_double(v);
    return true;
}

bool pc_arg_int(pc_eval_ctx *ctx, const pc_value *const *args, int pos, int64_t *out)
{
    const pc_value *v = args[pos];
    if (v->kind != PC_NUMBER) {
        pc_builtin_type_error(ctx, pos + 1, "number", v);
        return false; /* explicit, so callers' outputs are provably set on true */
    }
    if (!pc_value_is_integral(v) || !pc_value_get_int(v, out))
        return pc_builtin_type_errorf(ctx, "operand %d must be integer number but got floating-point number", pos + 1);
    return true;
}

bool pc_arg_kind(pc_eval_ctx *ctx, const pc_value *const *args, int pos, pc_kind kind)
{
    static const char *names[] = {"null", "boolean", "number", "string", "array", "object", "set"};
    if (args[pos]->kind != kind) {
        pc_builtin_type_error(ctx, pos + 1, names[kind], args[pos]);
        return false; /* explicit, so callers' outputs are provably set on true */
    }
    return true;
}

#define ARGS pc_eval_ctx *ctx, const pc_value *const *a, size_t n, const pc_value **out
#define A pc_builtin_arena(ctx)
#define RET(v)                                                                                     \
    do {                                                                                           \
        const pc_value *r_ = (v);                                                                  \
        if (!r_) return pc_builtin_oom(ctx);                                                       \
        *out = r_;                                                                                 \
        return true;                                                                               \
    } while (0)

/* ---- comparison ------------------------------------------------------- */

static bool b_equal(ARGS) { (void)n; RET(pc_value_bool(pc_value_equal(a[0], a[1]))); }
static bool b_neq(ARGS) { (void)n; RET(pc_value_bool(!pc_value_equal(a[0], a[1]))); }
static bool b_lt(ARGS) { (void)n; RET(pc_value_bool(pc_value_compare(a[0], a[1]) < 0)); }
static bool b_lte(ARGS) { (void)n; RET(pc_value_bool(pc_value_compare(a[0], a[1]) <= 0)); }
static bool b_gt(ARGS) { (void)n; RET(pc_value_bool(pc_value_compare(a[0], a[1]) > 0)); }
static bool b_gte(ARGS) { (void)n; RET(pc_value_bool(pc_value_compare(a[0], a[1]) >= 0)); }

/* ---- arithmetic ------------------------------------------------------- */

static bool is_int(const pc_value *v) { return v->kind == PC_NUMBER && v->num == PC_NUM_INT; }

static const pc_value *set_diff(pc_arena *ar, const pc_value *x, const pc_value *y)
{
    pc_vbuf b;
    pc_vbuf_init(&b, ar);
    for (uint32_t i = 0; i < x->len; i++)
        if (!pc_value_set_contains(y, x->u.items[i])) pc_vbuf_push(&b, x->u.items[i]);
    return pc_vbuf_set(&b);
}

static bool num2(pc_eval_ctx *ctx, const pc_value *const *a)
{
    if (a[0]->kind != PC_NUMBER) return pc_builtin_type_error(ctx, 1, "number", a[0]);
    if (a[1]->kind != PC_NUMBER) return pc_builtin_type_error(ctx, 2, "number", a[1]);
    return true;
}

static bool b_plus(ARGS)
{
    (void)n;
    if (!num2(ctx, a)) return false;
    int64_t r;
    if (is_int(a[0]) && is_int(a[1]) && !__builtin_add_overflow(a[0]->u.i, a[1]->u.i, &r))
        RET(pc_value_int(A, r));
    RET(pc_value_float(A, pc_value_get_double(a[0]) + pc_value_get_double(a[1])));
}

static bool b_minus(ARGS)
{
    (void)n;
    if (a[0]->kind == PC_SET && a[1]->kind == PC_SET) RET(set_diff(A, a[0], a[1]));
    if (a[0]->kind == PC_SET || a[1]->kind == PC_SET) {
        const pc_value *bad = a[0]->kind == PC_SET ? a[1] : a[0];
        return pc_builtin_type_error(ctx, a[0]->kind == PC_SET ? 2 : 1, "set", bad);
    }
    if (a[0]->kind != PC_NUMBER) return pc_builtin_type_error(ctx, 1, "one of {number, set}", a[0]);
    if (a[1]->kind != PC_NUMBER) return pc_builtin_type_error(ctx, 2, "one of {number, set}", a[1]);
    int64_t r;
    if (is_int(a[0]) && is_int(a[1]) && !__builtin_sub_overflow(a[0]->u.i, a[1]->u.i, &r))
        RET(pc_value_int(A, r));
    RET(pc_value_float(A, pc_value_get_double(a[0]) - pc_value_get_double(a[1])));
}

static bool b_mul(ARGS)
{
    (void)n;
    if (!num2(ctx, a)) return false;
    int64_t r;
    if (is_int(a[0]) && is_int(a[1]) && !__builtin_mul_overflow(a[0]->u.i, a[1]->u.i, &r))
        RET(pc_value_int(A, r));
    RET(pc_value_float(A, pc_value_get_double(a[0]) * pc_value_get_double(a[1])));
}

static bool b_div(ARGS)
{
    (void)n;
    if (!num2(ctx, a)) return false;
    double y = pc_value_get_double(a[1]);
    if (y == 0) return pc_builtin_error(ctx, "divide by zero");
    if (is_int(a[0]) && is_int(a[1]) && a[1]->u.i != -1 && a[0]->u.i % a[1]->u.i == 0)
        RET(pc_value_int(A, a[0]->u.i / a[1]->u.i));
    RET(pc_value_float(A, pc_value_get_double(a[0]) / y));
}

static bool b_rem(ARGS)
{
    (void)n;
    if (!num2(ctx, a)) return false;
    int64_t x, y;
    if (!pc_value_is_integral(a[0]) || !pc_value_is_integral(a[1]) || !pc_value_get_int(a[0], &x) ||
        !pc_value_get_int(a[1], &y))
        return pc_builtin_error(ctx, "modulo on floating-point number");
    if (y == 0) return pc_builtin_error(ctx, "modulo by zero");
    if (y == -1) RET(pc_value_int(A, 0));
    RET(pc_value_int(A, x % y));
}

static bool b_abs(ARGS)
{
    (void)n;
    if (!pc_arg_kind(ctx, a, 0, PC_NUMBER)) return false;
    if (is_int(a[0]) && a[0]->u.i != INT64_MIN) RET(pc_value_int(A, a[0]->u.i < 0 ? -a[0]->u.i : a[0]->u.i));
    RET(pc_value_float(A, fabs(pc_value_get_double(a[0]))));
}

static bool rounder(pc_eval_ctx *ctx, const pc_value *const *a, const pc_value **out, double (*f)(double))
{
    if (!pc_arg_kind(ctx, a, 0, PC_NUMBER)) return false;
    if (is_int(a[0])) RET(a[0]);
    RET(pc_value_float(A, f(pc_value_get_double(a[0]))));
}

static bool b_round(ARGS) { (void)n; return rounder(ctx, a, out, round); }
static bool b_ceil(ARGS) { (void)n; return rounder(ctx, a, out, ceil); }
static bool b_floor(ARGS) { (void)n; return rounder(ctx, a, out, floor); }

static bool range_impl(pc_eval_ctx *ctx, int64_t lo, int64_t hi, int64_t stepv, const pc_value **out)
{
    pc_vbuf b;
    pc_vbuf_init(&b, A);
    uint64_t count = (uint64_t)((lo <= hi ? hi - lo : lo - hi) / stepv) + 1;
    if (count > 10000000) return pc_builtin_oom(ctx);
    if (lo <= hi)
        for (int64_t i = lo; i <= hi; i += stepv) pc_vbuf_push(&b, pc_value_int(A, i));
    else
        for (int64_t i = lo; i >= hi; i -= stepv) pc_vbuf_push(&b, pc_value_int(A, i));
    RET(pc_vbuf_array(&b));
}

static bool b_numbers_range(ARGS)
{
    (void)n;
    int64_t lo, hi;
    if (!pc_arg_int(ctx, a, 0, &lo) || !pc_arg_int(ctx, a, 1, &hi)) return false;
    return range_impl(ctx, lo, hi, 1, out);
}

static bool b_numbers_range_step(ARGS)
{
    (void)n;
    int64_t lo, hi, st;
    if (!pc_arg_int(ctx, a, 0, &lo) || !pc_arg_int(ctx, a, 1, &hi)) return false;
    if (a[2]->kind != PC_NUMBER) return pc_builtin_type_error(ctx, 3, "number", a[2]);
    if (!pc_value_is_integral(a[2]) || !pc_value_get_int(a[2], &st)) return pc_builtin_error(ctx, "step must be a positive integer");
    if (st <= 0) return pc_builtin_error(ctx, "step must be a positive integer");
    return range_impl(ctx, lo, hi, st, out);
}

/* ---- sets ------------------------------------------------------------- */

static bool b_and(ARGS)
{
    (void)n;
    if (!pc_arg_kind(ctx, a, 0, PC_SET) || !pc_arg_kind(ctx, a, 1, PC_SET)) return false;
    pc_vbuf b;
    pc_vbuf_init(&b, A);
    for (uint32_t i = 0; i < a[0]->len; i++)
        if (pc_value_set_contains(a[1], a[0]->u.items[i])) pc_vbuf_push(&b, a[0]->u.items[i]);
    RET(pc_vbuf_set(&b));
}

static bool b_or(ARGS)
{
    (void)n;
    if (!pc_arg_kind(ctx, a, 0, PC_SET) || !pc_arg_kind(ctx, a, 1, PC_SET)) return false;
    pc_vbuf b;
    pc_vbuf_init(&b, A);
    for (uint32_t i = 0; i < a[0]->len; i++) pc_vbuf_push(&b, a[0]->u.items[i]);
    for (uint32_t i = 0; i < a[1]->len; i++) pc_vbuf_push(&b, a[1]->u.items[i]);
    RET(pc_vbuf_set(&b));
}

static bool b_union(ARGS)
{
    (void)n;
    if (!pc_arg_kind(ctx, a, 0, PC_SET)) return false;
    pc_vbuf b;
    pc_vbuf_init(&b, A);
    for (uint32_t i = 0; i < a[0]->len; i++) {
        const pc_value *s = a[0]->u.items[i];
        if (s->kind != PC_SET) return pc_builtin_type_error(ctx, 1, "set of sets", a[0]);
        for (uint32_t j = 0; j < s->len; j++) pc_vbuf_push(&b, s->u.items[j]);
    }
    RET(pc_vbuf_set(&b));
}

static bool b_intersection(ARGS)
{
    (void)n;
    if (!pc_arg_kind(ctx, a, 0, PC_SET)) return false;
    if (a[0]->len == 0) RET(pc_value_empty_set());
    const pc_value *acc = a[0]->u.items[0];
    for (uint32_t i = 0; i < a[0]->len; i++)
        if (a[0]->u.items[i]->kind != PC_SET) return pc_builtin_type_error(ctx, 1, "set of sets", a[0]);
    for (uint32_t i = 1; i < a[0]->len; i++) {
        const pc_value *args2[2] = {acc, a[0]->u.items[i]};
        if (!b_and(ctx, args2, 2, &acc)) return false;
    }
    RET(acc);
}

/* ---- aggregates ------------------------------------------------------- */

static bool b_count(ARGS)
{
    (void)n;
    const pc_value *v = a[0];
    if (v->kind == PC_STRING) {
        int64_t c = 0;
        for (uint32_t i = 0; i < v->len; i++)
            if (((unsigned char)v->u.s[i] & 0xC0) != 0x80) c++;
        RET(pc_value_int(A, c));
    }
    if (v->kind == PC_ARRAY || v->kind == PC_SET || v->kind == PC_OBJECT) RET(pc_value_int(A, v->len));
    return pc_builtin_type_error(ctx, 1, "one of {array, object, set, string}", v);
}

static bool coll_items(pc_eval_ctx *ctx, const pc_value *v, const char *want)
{
    if (v->kind == PC_ARRAY || v->kind == PC_SET) return true;
    return pc_builtin_type_error(ctx, 1, want, v);
}

static bool b_sum(ARGS)
{
    (void)n;
    if (!coll_items(ctx, a[0], "one of {array, set}")) return false;
    const pc_value *acc = pc_value_int(A, 0);
    for (uint32_t i = 0; i < a[0]->len; i++) {
        const pc_value *x = a[0]->u.items[i];
        if (x->kind != PC_NUMBER) return pc_builtin_type_errorf(ctx, "operand 1 must be one of {array, set} containing numbers");
        const pc_value *args2[2] = {acc, x};
        if (!b_plus(ctx, args2, 2, &acc)) return false;
    }
    RET(acc);
}

static bool b_product(ARGS)
{
    (void)n;
    if (!coll_items(ctx, a[0], "one of {array, set}")) return false;
    const pc_value *acc = pc_value_int(A, 1);
    for (uint32_t i = 0; i < a[0]->len; i++) {
        const pc_value *x = a[0]->u.items[i];
        if (x->kind != PC_NUMBER) return pc_builtin_type_errorf(ctx, "operand 1 must be one of {array, set} containing numbers");
        const pc_value *args2[2] = {acc, x};
        if (!b_mul(ctx, args2, 2, &acc)) return false;
    }
    RET(acc);
}

static bool b_max(ARGS)
{
    (void)n;
    if (!coll_items(ctx, a[0], "one of {array, set}")) return false;
    if (a[0]->len == 0) return false;
    const pc_value *m = a[0]->u.items[0];
    for (uint32_t i = 1; i < a[0]->len; i++)
        if (pc_value_compare(a[0]->u.items[i], m) > 0) m = a[0]->u.items[i];
    RET(m);
}

static bool b_min(ARGS)
{
    (void)n;
    if (!coll_items(ctx, a[0], "one of {array, set}")) return false;
    if (a[0]->len == 0) return false;
    const pc_value *m = a[0]->u.items[0];
    for (uint32_t i = 1; i < a[0]->len; i++)
        if (pc_value_compare(a[0]->u.items[i], m) < 0) m = a[0]->u.items[i];
    RET(m);
}

static int cmp_vp(const void *x, const void *y)
{
    return pc_value_compare(*(const pc_value *const *)x, *(const pc_value *const *)y);
}

static bool b_sort(ARGS)
{
    (void)n;
    if (!coll_items(ctx, a[0], "one of {array, set}")) return false;
    if (a[0]->kind == PC_SET) RET(pc_value_array(A, a[0]->u.items, a[0]->len));
    const pc_value **tmp = pc_arena_alloc(A, (a[0]->len + 1) * sizeof(*tmp));
    if (!tmp) return pc_builtin_oom(ctx);
    memcpy(tmp, a[0]->u.items, a[0]->len * sizeof(*tmp));
    qsort(tmp, a[0]->len, sizeof(*tmp), cmp_vp);
    RET(pc_value_array(A, tmp, a[0]->len));
}

static bool b_all(ARGS)
{
    (void)n;
    if (!coll_items(ctx, a[0], "one of {array, set}")) return false;
    for (uint32_t i = 0; i < a[0]->len; i++)
        if (a[0]->u.items[i]->kind != PC_BOOL || !a[0]->u.items[i]->u.b) RET(pc_value_bool(false));
    RET(pc_value_bool(true));
}

static bool b_any(ARGS)
{
    (void)n;
    if (!coll_items(ctx, a[0], "one of {array, set}")) return false;
    for (uint32_t i = 0; i < a[0]->len; i++)
        if (a[0]->u.items[i]->kind == PC_BOOL && a[0]->u.items[i]->u.b) RET(pc_value_bool(true));
    RET(pc_value_bool(false));
}

/* ---- arrays ----------------------------------------------------------- */

static bool b_array_concat(ARGS)
{
    (void)n;
    if (!pc_arg_kind(ctx, a, 0, PC_ARRAY) || !pc_arg_kind(ctx, a, 1, PC_ARRAY)) return false;
    pc_vbuf b;
    pc_vbuf_init(&b, A);
    for (uint32_t i = 0; i < a[0]->len; i++) pc_vbuf_push(&b, a[0]->u.items[i]);
    for (uint32_t i = 0; i < a[1]->len; i++) pc_vbuf_push(&b, a[1]->u.items[i]);
    RET(pc_vbuf_array(&b));
}

static bool b_array_slice(ARGS)
{
    (void)n;
    int64_t lo, hi;
    if (!pc_arg_kind(ctx, a, 0, PC_ARRAY) || !pc_arg_int(ctx, a, 1, &lo) || !pc_arg_int(ctx, a, 2, &hi))
        return false;
    int64_t len = a[0]->len;
    if (lo < 0) lo = 0;
    if (hi > len) hi = len;
    if (lo >= hi) RET(pc_value_empty_array());
    RET(pc_value_array(A, a[0]->u.items + lo, (size_t)(hi - lo)));
}

static bool b_array_reverse(ARGS)
{
    (void)n;
    if (!pc_arg_kind(ctx, a, 0, PC_ARRAY)) return false;
    pc_vbuf b;
    pc_vbuf_init(&b, A);
    for (uint32_t i = a[0]->len; i-- > 0;) pc_vbuf_push(&b, a[0]->u.items[i]);
    RET(pc_vbuf_array(&b));
}

/* ---- objects ---------------------------------------------------------- */

static bool b_object_get(ARGS)
{
    (void)n;
    if (!pc_arg_kind(ctx, a, 0, PC_OBJECT)) return false;
    const pc_value *key = a[1];
    if (key->kind == PC_ARRAY) {
        const pc_value *cur = a[0];
        for (uint32_t i = 0; i < key->len; i++) {
            const pc_value *k = key->u.items[i], *nx = NULL;
            if (cur->kind == PC_OBJECT)
                nx = pc_value_object_get(cur, k);
            else if (cur->kind == PC_ARRAY) {
                int64_t idx;
                if (pc_value_get_int(k, &idx) && idx >= 0 && (uint64_t)idx < cur->len) nx = cur->u.items[idx];
            } else if (cur->kind == PC_SET && pc_value_set_contains(cur, k))
                nx = k;
            if (!nx) RET(a[2]);
            cur = nx;
        }
        RET(cur);
    }
    const pc_value *v = pc_value_object_get(a[0], key);
    RET(v ? v : a[2]);
}

static bool b_object_keys(ARGS)
{
    (void)n;
    if (!pc_arg_kind(ctx, a, 0, PC_OBJECT)) return false;
    pc_vbuf b;
    pc_vbuf_init(&b, A);
    for (uint32_t i = 0; i < a[0]->len; i++) pc_vbuf_push(&b, a[0]->u.kvs[i].key);
    RET(pc_vbuf_set(&b));
}

static bool key_in(const pc_value *keys, const pc_value *k)
{
    if (keys->kind == PC_SET) return pc_value_set_contains(keys, k);
    if (keys->kind == PC_ARRAY) {
        for (uint32_t i = 0; i < keys->len; i++)
            if (pc_value_equal(keys->u.items[i], k)) return true;
        return false;
    }
    if (keys->kind == PC_OBJECT) return pc_value_object_get(keys, k) != NULL;
    return false;
}

static bool filter_obj(pc_eval_ctx *ctx, const pc_value *const *a, const pc_value **out, bool keep)
{
    if (!pc_arg_kind(ctx, a, 0, PC_OBJECT)) return false;
    if (a[1]->kind != PC_ARRAY && a[1]->kind != PC_SET && a[1]->kind != PC_OBJECT)
        return pc_builtin_type_error(ctx, 2, "one of {array, object, set}", a[1]);
    pc_obuf b;
    pc_obuf_init(&b, A);
    for (uint32_t i = 0; i < a[0]->len; i++)
        if (key_in(a[1], a[0]->u.kvs[i].key) == keep) pc_obuf_put(&b, a[0]->u.kvs[i].key, a[0]->u.kvs[i].val);
    RET(pc_obuf_object(&b));
}

static bool b_object_remove(ARGS) { (void)n; return filter_obj(ctx, a, out, false); }
static bool b_object_filter(ARGS) { (void)n; return filter_obj(ctx, a, out, true); }

static const pc_value *merge(pc_arena *ar, const pc_value *x, const pc_value *y)
{
    if (x->kind != PC_OBJECT || y->kind != PC_OBJECT) return y;
    pc_obuf b;
    pc_obuf_init(&b, ar);
    for (uint32_t i = 0; i < x->len; i++) {
        const pc_value *yv = pc_value_object_get(y, x->u.kvs[i].key);
        pc_obuf_put(&b, x->u.kvs[i].key, yv ? merge(ar, x->u.kvs[i].val, yv) : x->u.kvs[i].val);
    }
    for (uint32_t i = 0; i < y->len; i++)
        if (!pc_value_object_get(x, y->u.kvs[i].key)) pc_obuf_put(&b, y->u.kvs[i].key, y->u.kvs[i].val);
    return pc_obuf_object(&b);
}

static bool b_object_union(ARGS)
{
    (void)n;
    if (!pc_arg_kind(ctx, a, 0, PC_OBJECT) || !pc_arg_kind(ctx, a, 1, PC_OBJECT)) return false;
    RET(merge(A, a[0], a[1]));
}

static bool b_object_union_n(ARGS)
{
    (void)n;
    if (!pc_arg_kind(ctx, a, 0, PC_ARRAY)) return false;
    const pc_value *acc = pc_value_empty_object();
    for (uint32_t i = 0; i < a[0]->len; i++) {
        if (a[0]->u.items[i]->kind != PC_OBJECT)
            return pc_builtin_type_errorf(ctx, "operand 1 must be array of objects");
        acc = merge(A, acc, a[0]->u.items[i]);
        if (!acc) return pc_builtin_oom(ctx);
    }
    RET(acc);
}

/* ---- types ------------------------------------------------------------ */

static bool b_is_number(ARGS) { (void)n; (void)ctx; *out = pc_value_bool(a[0]->kind == PC_NUMBER); return true; }
static bool b_is_string(ARGS) { (void)n; (void)ctx; *out = pc_value_bool(a[0]->kind == PC_STRING); return true; }
static bool b_is_boolean(ARGS) { (void)n; (void)ctx; *out = pc_value_bool(a[0]->kind == PC_BOOL); return true; }
static bool b_is_array(ARGS) { (void)n; (void)ctx; *out = pc_value_bool(a[0]->kind == PC_ARRAY); return true; }
static bool b_is_set(ARGS) { (void)n; (void)ctx; *out = pc_value_bool(a[0]->kind == PC_SET); return true; }
static bool b_is_object(ARGS) { (void)n; (void)ctx; *out = pc_value_bool(a[0]->kind == PC_OBJECT); return true; }
static bool b_is_null(ARGS) { (void)n; (void)ctx; *out = pc_value_bool(a[0]->kind == PC_NULL); return true; }
static bool b_type_name(ARGS) { (void)n; RET(pc_value_cstring(A, pc_value_type_name(a[0]))); }

static bool b_to_number(ARGS)
{
    (void)n;
    const pc_value *v = a[0];
    switch (v->kind) {
    case PC_NULL: RET(pc_value_int(A, 0));
    case PC_BOOL: RET(pc_value_int(A, v->u.b ? 1 : 0));
    case PC_NUMBER: RET(v);
    case PC_STRING: {
        const pc_value *r = pc_value_number_text(A, v->u.s, v->len);
        if (!r) {
            char *end = NULL;
            double d = strtod(v->u.s, &end);
            if (v->len && end == v->u.s + v->len && isfinite(d) && v->u.s[0] != ' ' && strncmp(v->u.s, "0x", 2) &&
                strpbrk(v->u.s, "xXnNiI_") == NULL)
                RET(pc_value_float(A, d));
            return pc_builtin_error(ctx, "strconv.ParseFloat: parsing %s: invalid syntax", "\"string\"");
        }
        RET(r);
    }
    default: return pc_builtin_type_error(ctx, 1, "one of {boolean, null, number, string}", v);
    }
}

/* ---- strings ---------------------------------------------------------- */

static bool b_concat(ARGS)
{
    (void)n;
    const char *sep;
    size_t seplen;
    if (!pc_arg_string(ctx, a, 0, &sep, &seplen)) return false;
    if (a[1]->kind != PC_ARRAY && a[1]->kind != PC_SET) return pc_builtin_type_error(ctx, 2, "one of {array, set}", a[1]);
    size_t total = 0;
    for (uint32_t i = 0; i < a[1]->len; i++) {
        if (a[1]->u.items[i]->kind != PC_STRING)
            return pc_builtin_type_errorf(ctx, "operand 2 must be one of {array, set} of strings");
        total += a[1]->u.items[i]->len + seplen;
    }
    char *buf = pc_arena_alloc(A, total + 1);
    if (!buf) return pc_builtin_oom(ctx);
    size_t o = 0;
    for (uint32_t i = 0; i < a[1]->len; i++) {
        if (i) {
            memcpy(buf + o, sep, seplen);
            o += seplen;
        }
        memcpy(buf + o, a[1]->u.items[i]->u.s, a[1]->u.items[i]->len);
        o += a[1]->u.items[i]->len;
    }
    RET(pc_value_string(A, buf, o));
}

static bool str2(pc_eval_ctx *ctx, const pc_value *const *a, const char **x, size_t *xl, const char **y, size_t *yl)
{
    return pc_arg_string(ctx, a, 0, x, xl) && pc_arg_string(ctx, a, 1, y, yl);
}

static const char *memmem_(const char *h, size_t hl, const char *nd, size_t nl)
{
    if (nl == 0) return h;
    if (nl > hl) return NULL;
    return memmem(h, hl, nd, nl);
}

static bool b_contains(ARGS)
{
    (void)n;
    const char *x, *y;
    size_t xl, yl;
    if (!str2(ctx, a, &x, &xl, &y, &yl)) return false;
    RET(pc_value_bool(memmem_(x, xl, y, yl) != NULL));
}

static bool b_startswith(ARGS)
{
    (void)n;
    const char *x, *y;
    size_t xl, yl;
    if (!str2(ctx, a, &x, &xl, &y, &yl)) return false;
    RET(pc_value_bool(yl <= xl && memcmp(x, y, yl) == 0));
}

static bool b_endswith(ARGS)
{
    (void)n;
    const char *x, *y;
    size_t xl, yl;
    if (!str2(ctx, a, &x, &xl, &y, &yl)) return false;
    RET(pc_value_bool(yl <= xl && memcmp(x + xl - yl, y, yl) == 0));
}

static bool casefn(pc_eval_ctx *ctx, const pc_value *const *a, const pc_value **out, bool up)
{
    const char *x;
    size_t xl;
    if (!pc_arg_string(ctx, a, 0, &x, &xl)) return false;
    char *b = pc_arena_alloc(A, xl + 1);
    if (!b) return pc_builtin_oom(ctx);
    for (size_t i = 0; i < xl; i++) {
        char c = x[i];
        if (up && c >= 'a' && c <= 'z') c = (char)(c - 32);
        if (!up && c >= 'A' && c <= 'Z') c = (char)(c + 32);
        b[i] = c;
    }
    RET(pc_value_string(A, b, xl));
}

static bool b_lower(ARGS) { (void)n; return casefn(ctx, a, out, false); }
static bool b_upper(ARGS) { (void)n; return casefn(ctx, a, out, true); }

static bool b_split(ARGS)
{
    (void)n;
    const char *x, *y;
    size_t xl, yl;
    if (!str2(ctx, a, &x, &xl, &y, &yl)) return false;
    pc_vbuf b;
    pc_vbuf_init(&b, A);
    if (yl == 0) {
        /* split into UTF-8 characters */
        size_t i = 0;
        while (i < xl) {
            size_t j = i + 1;
            while (j < xl && ((unsigned char)x[j] & 0xC0) == 0x80) j++;
            pc_vbuf_push(&b, pc_value_string(A, x + i, j - i));
            i = j;
        }
        RET(pc_vbuf_array(&b));
    }
    size_t st = 0;
    for (;;) {
        const char *p = memmem_(x + st, xl - st, y, yl);
        if (!p) {
            pc_vbuf_push(&b, pc_value_string(A, x + st, xl - st));
            break;
        }
        pc_vbuf_push(&b, pc_value_string(A, x + st, (size_t)(p - (x + st))));
        st = (size_t)(p - x) + yl;
    }
    RET(pc_vbuf_array(&b));
}

static bool in_cutset(const char *cs, size_t cl, const char *s, size_t rem, size_t *clen)
{
    /* compare one UTF-8 character of s against the characters of cs */
    size_t l = 1;
    while (l < rem && ((unsigned char)s[l] & 0xC0) == 0x80) l++;
    *clen = l;
    size_t i = 0;
    while (i < cl) {
        size_t m = 1;
        while (i + m < cl && ((unsigned char)cs[i + m] & 0xC0) == 0x80) m++;
        if (m == l && memcmp(cs + i, s, l) == 0) return true;
        i += m;
    }
    return false;
}

static bool trim_impl(pc_eval_ctx *ctx, const char *x, size_t xl, const char *cs, size_t cl, const pc_value **out)
{
    size_t st = 0, en = xl, l;
    while (st < en && in_cutset(cs, cl, x + st, en - st, &l)) st += l;
    while (en > st) {
        size_t p = en - 1;
        while (p > st && ((unsigned char)x[p] & 0xC0) == 0x80) p--;
        if (!in_cutset(cs, cl, x + p, en - p, &l)) break;
        en = p;
    }
    RET(pc_value_string(A, x + st, en - st));
}

static bool b_trim(ARGS)
{
    (void)n;
    const char *x, *y;
    size_t xl, yl;
    if (!str2(ctx, a, &x, &xl, &y, &yl)) return false;
    return trim_impl(ctx, x, xl, y, yl, out);
}

static bool b_trim_space(ARGS)
{
    (void)n;
    const char *x;
    size_t xl;
    if (!pc_arg_string(ctx, a, 0, &x, &xl)) return false;
    return trim_impl(ctx, x, xl, " \t\n\r\v\f", 6, out);
}

static bool b_replace(ARGS)
{
    (void)n;
    const char *x, *o, *nw;
    size_t xl, ol, nl;
    if (!pc_arg_string(ctx, a, 0, &x, &xl) || !pc_arg_string(ctx, a, 1, &o, &ol) || !pc_arg_string(ctx, a, 2, &nw, &nl))
        return false;
    if (ol == 0) RET(a[0]);
    pc_str s = {0};
    size_t st = 0;
    for (;;) {
        const char *p = memmem_(x + st, xl - st, o, ol);
        if (!p) break;
        pc_str_append(&s, x + st, (size_t)(p - (x + st)));
        pc_str_append(&s, nw, nl);
        st = (size_t)(p - x) + ol;
    }
    pc_str_append(&s, x + st, xl - st);
    const pc_value *r = pc_value_string(A, s.p, s.len);
    pc_str_free(&s);
    RET(r);
}

/* UTF-8 aware helpers: byte offset of the idx-th character. */
static size_t char_off(const char *s, size_t len, int64_t idx)
{
    size_t i = 0;
    while (idx > 0 && i < len) {
        i++;
        while (i < len && ((unsigned char)s[i] & 0xC0) == 0x80) i++;
        idx--;
    }
    return i;
}

static int64_t char_count(const char *s, size_t len)
{
    int64_t c = 0;
    for (size_t i = 0; i < len; i++)
        if (((unsigned char)s[i] & 0xC0) != 0x80) c++;
    return c;
}

static bool b_substring(ARGS)
{
    (void)n;
    const char *x;
    size_t xl;
    int64_t st, ln;
    if (!pc_arg_string(ctx, a, 0, &x, &xl) || !pc_arg_int(ctx, a, 1, &st) || !pc_arg_int(ctx, a, 2, &ln)) return false;
    if (st < 0) return pc_builtin_error(ctx, "negative offset");
    int64_t total = char_count(x, xl);
    if (st >= total) RET(pc_value_empty_string());
    size_t b0 = char_off(x, xl, st);
    size_t b1 = (ln < 0 || st + ln >= total) ? xl : char_off(x, xl, st + ln);
    RET(pc_value_string(A, x + b0, b1 - b0));
}

static bool b_indexof(ARGS)
{
    (void)n;
    const char *x, *y;
    size_t xl, yl;
    if (!str2(ctx, a, &x, &xl, &y, &yl)) return false;
    if (yl == 0) return pc_builtin_error(ctx, "empty search character");
    const char *p = memmem_(x, xl, y, yl);
    RET(pc_value_int(A, p ? char_count(x, (size_t)(p - x)) : -1));
}

/* ---- membership, print, walk ------------------------------------------ */

static bool b_member2(ARGS)
{
    (void)n;
    const pc_value *x = a[0], *c = a[1];
    bool found = false;
    if (c->kind == PC_SET)
        found = pc_value_set_contains(c, x);
    else if (c->kind == PC_ARRAY) {
        for (uint32_t i = 0; i < c->len && !found; i++) found = pc_value_equal(c->u.items[i], x);
    } else if (c->kind == PC_OBJECT) {
        for (uint32_t i = 0; i < c->len && !found; i++) found = pc_value_equal(c->u.kvs[i].val, x);
    }
    RET(pc_value_bool(found));
}

static bool b_member3(ARGS)
{
    (void)n;
    const pc_value *k = a[0], *x = a[1], *c = a[2];
    bool found = false;
    if (c->kind == PC_ARRAY) {
        int64_t idx;
        if (k->kind == PC_NUMBER && pc_value_is_integral(k) && pc_value_get_int(k, &idx) && idx >= 0 &&
            (uint64_t)idx < c->len)
            found = pc_value_equal(c->u.items[idx], x);
    } else if (c->kind == PC_OBJECT) {
        const pc_value *v = pc_value_object_get(c, k);
        found = v && pc_value_equal(v, x);
    } else if (c->kind == PC_SET) {
        found = pc_value_equal(k, x) && pc_value_set_contains(c, x);
    }
    RET(pc_value_bool(found));
}

static bool b_print(ARGS)
{
    pc_str s = {0};
    for (size_t i = 0; i < n; i++) {
        if (i) pc_str_append(&s, " ", 1);
        if (a[i]->kind == PC_STRING)
            pc_str_append(&s, a[i]->u.s, a[i]->len);
        else
            pc_value_to_rego(&s, a[i]);
    }
    pc_str_append(&s, "\n", 1);
    ssize_t w = write(2, s.p, s.len);
    (void)w;
    pc_str_free(&s);
    (void)ctx;
    *out = pc_value_bool(true);
    return true;
}

static bool walk_rec(pc_eval_ctx *ctx, pc_vbuf *res, pc_vbuf *path, const pc_value *v)
{
    const pc_value *p = pc_value_array(A, path->items, path->len);
    const pc_value *pair[2] = {p, v};
    pc_vbuf_push(res, pc_value_array(A, pair, 2));
    if (res->oom) return false;
    size_t saved = path->len;
    if (v->kind == PC_ARRAY) {
        for (uint32_t i = 0; i < v->len; i++) {
            path->len = saved;
            pc_vbuf_push(path, pc_value_int(A, i));
            if (!walk_rec(ctx, res, path, v->u.items[i])) return false;
        }
    } else if (v->kind == PC_OBJECT) {
        for (uint32_t i = 0; i < v->len; i++) {
            path->len = saved;
            pc_vbuf_push(path, v->u.kvs[i].key);
            if (!walk_rec(ctx, res, path, v->u.kvs[i].val)) return false;
        }
    } else if (v->kind == PC_SET) {
        for (uint32_t i = 0; i < v->len; i++) {
            path->len = saved;
            pc_vbuf_push(path, v->u.items[i]);
            if (!walk_rec(ctx, res, path, v->u.items[i])) return false;
        }
    }
    path->len = saved;
    return !path->oom;
}

static bool b_walk(ARGS)
{
    (void)n;
    pc_vbuf res, path;
    pc_vbuf_init(&res, A);
    pc_vbuf_init(&path, A);
    if (!walk_rec(ctx, &res, &path, a[0])) return pc_builtin_oom(ctx);
    RET(pc_vbuf_array(&res));
}

/* ---- bits ------------------------------------------------------------- */

static bool ints2(pc_eval_ctx *ctx, const pc_value *const *a, int64_t *x, int64_t *y)
{
    return pc_arg_int(ctx, a, 0, x) && pc_arg_int(ctx, a, 1, y);
}
static bool b_bits_and(ARGS) { (void)n; int64_t x, y; if (!ints2(ctx, a, &x, &y)) return false; RET(pc_value_int(A, x & y)); }
static bool b_bits_or(ARGS) { (void)n; int64_t x, y; if (!ints2(ctx, a, &x, &y)) return false; RET(pc_value_int(A, x | y)); }
static bool b_bits_xor(ARGS) { (void)n; int64_t x, y; if (!ints2(ctx, a, &x, &y)) return false; RET(pc_value_int(A, x ^ y)); }
static bool b_bits_negate(ARGS) { (void)n; int64_t x; if (!pc_arg_int(ctx, a, 0, &x)) return false; RET(pc_value_int(A, ~x)); }
static bool b_bits_lsh(ARGS)
{
    (void)n;
    int64_t x, y;
    if (!ints2(ctx, a, &x, &y)) return false;
    if (y < 0) return pc_builtin_type_errorf(ctx, "operand 2 must be an unsigned integer number but got a negative integer");
    if (y >= 63) RET(pc_value_float(A, (double)x * pow(2, (double)y)));
    int64_t r;
    if (__builtin_mul_overflow(x, (int64_t)1 << y, &r)) RET(pc_value_float(A, (double)x * pow(2, (double)y)));
    RET(pc_value_int(A, r));
}
static bool b_bits_rsh(ARGS)
{
    (void)n;
    int64_t x, y;
    if (!ints2(ctx, a, &x, &y)) return false;
    if (y < 0) return pc_builtin_type_errorf(ctx, "operand 2 must be an unsigned integer number but got a negative integer");
    RET(pc_value_int(A, y >= 63 ? (x < 0 ? -1 : 0) : x >> y));
}

static const pc_builtin k_core[] = {
    {"equal", 2, b_equal, 0},
    {"neq", 2, b_neq, 0},
    {"lt", 2, b_lt, 0},
    {"lte", 2, b_lte, 0},
    {"gt", 2, b_gt, 0},
    {"gte", 2, b_gte, 0},
    {"plus", 2, b_plus, 0},
    {"minus", 2, b_minus, 0},
    {"mul", 2, b_mul, 0},
    {"div", 2, b_div, 0},
    {"rem", 2, b_rem, 0},
    {"abs", 1, b_abs, 0},
    {"round", 1, b_round, 0},
    {"ceil", 1, b_ceil, 0},
    {"floor", 1, b_floor, 0},
    {"numbers.range", 2, b_numbers_range, 0},
    {"numbers.range_step", 3, b_numbers_range_step, 0},
    {"and", 2, b_and, 0},
    {"or", 2, b_or, 0},
    {"union", 1, b_union, 0},
    {"intersection", 1, b_intersection, 0},
    {"count", 1, b_count, 0},
    {"sum", 1, b_sum, 0},
    {"product", 1, b_product, 0},
    {"max", 1, b_max, 0},
    {"min", 1, b_min, 0},
    {"sort", 1, b_sort, 0},
    {"all", 1, b_all, 0},
    {"any", 1, b_any, 0},
    {"array.concat", 2, b_array_concat, 0},
    {"array.slice", 3, b_array_slice, 0},
    {"array.reverse", 1, b_array_reverse, 0},
    {"object.get", 3, b_object_get, 0},
    {"object.keys", 1, b_object_keys, 0},
    {"object.remove", 2, b_object_remove, 0},
    {"object.filter", 2, b_object_filter, 0},
    {"object.union", 2, b_object_union, 0},
    {"object.union_n", 1, b_object_union_n, 0},
    {"is_number", 1, b_is_number, 0},
    {"is_string", 1, b_is_string, 0},
    {"is_boolean", 1, b_is_boolean, 0},
    {"is_array", 1, b_is_array, 0},
    {"is_set", 1, b_is_set, 0},
    {"is_object", 1, b_is_object, 0},
    {"is_null", 1, b_is_null, 0},
    {"type_name", 1, b_type_name, 0},
    {"to_number", 1, b_to_number, 0},
    {"concat", 2, b_concat, 0},
    {"contains", 2, b_contains, 0},
    {"startswith", 2, b_startswith, 0},
    {"endswith", 2, b_endswith, 0},
    {"lower", 1, b_lower, 0},
    {"upper", 1, b_upper, 0},
    {"split", 2, b_split, 0},
    {"trim", 2, b_trim, 0},
    {"trim_space", 1, b_trim_space, 0},
    {"replace", 3, b_replace, 0},
    {"substring", 3, b_substring, 0},
    {"indexof", 2, b_indexof, 0},
    {"internal.member_2", 2, b_member2, 0},
    {"internal.member_3", 3, b_member3, 0},
    {"print", 0, b_print, PC_BUILTIN_VARIADIC},
    {"walk", 1, b_walk, PC_BUILTIN_RELATION},
    {"bits.and", 2, b_bits_and, 0},
    {"bits.or", 2, b_bits_or, 0},
    {"bits.xor", 2, b_bits_xor, 0},
    {"bits.negate", 1, b_bits_negate, 0},
    {"bits.lsh", 2, b_bits_lsh, 0},
    {"bits.rsh", 2, b_bits_rsh, 0},
    {NULL, 0, NULL, 0},
};

static pthread_once_t g_once = PTHREAD_ONCE_INIT;

static void init_once(void)
{
    pc_builtin_register_table(k_core);
    if (pc__builtins_ext_register) pc__builtins_ext_register();
}

void pc_builtins_init(void) { pthread_once(&g_once, init_once); }
