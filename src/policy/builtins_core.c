/* Builtin registry and the builtins the core language needs. */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "core/common.h"
#include "policy/bignum.h"
#include "policy/builtins.h"

/* ---- registry --------------------------------------------------------- */

static pc_builtin *g_tab;
static size_t g_len, g_cap;


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
    *s = "";
    *len = 0;
    if (v->kind != PC_STRING) return pc_builtin_type_error(ctx, pos + 1, "string", v);
    *s = v->u.s;
    *len = v->len;
    return true;
}

bool pc_arg_number(pc_eval_ctx *ctx, const pc_value *const *args, int pos, double *out)
{
    const pc_value *v = args[pos];
    *out = 0;
    if (v->kind != PC_NUMBER) return pc_builtin_type_error(ctx, pos + 1, "number", v);
    *out = pc_value_get_double(v);
    return true;
}

bool pc_arg_int(pc_eval_ctx *ctx, const pc_value *const *args, int pos, int64_t *out)
{
    const pc_value *v = args[pos];
    *out = 0;
    if (v->kind != PC_NUMBER) return pc_builtin_type_error(ctx, pos + 1, "number", v);
    if (!pc_value_is_integral(v) || !pc_value_get_int(v, out))
        return pc_builtin_type_errorf(ctx, "operand %d must be integer number but got floating-point number", pos + 1);
    return true;
}

bool pc_arg_kind(pc_eval_ctx *ctx, const pc_value *const *args, int pos, pc_kind kind)
{
    static const char *names[] = {"null", "boolean", "number", "string", "array", "object", "set"};
    if (args[pos]->kind != kind) return pc_builtin_type_error(ctx, pos + 1, names[kind], args[pos]);
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

/* Length in bytes of the UTF-8 sequence at s[i], Go's way: an invalid or
 * truncated sequence counts as one rune of one byte. */
static size_t utf8_len(const char *s, size_t len, size_t i)
{
    unsigned char c = (unsigned char)s[i];
    size_t need;
    uint32_t min;
    if (c < 0x80) return 1;
    if (c >= 0xC2 && c <= 0xDF) {
        need = 1;
        min = 0x80;
    } else if (c >= 0xE0 && c <= 0xEF) {
        need = 2;
        min = 0x800;
    } else if (c >= 0xF0 && c <= 0xF4) {
        need = 3;
        min = 0x10000;
    } else {
        return 1;
    }
    if (i + need >= len) return 1; /* truncated */
    uint32_t cp = c & (0x3F >> need);
    for (size_t k = 1; k <= need; k++) {
        unsigned char d = (unsigned char)s[i + k];
        if ((d & 0xC0) != 0x80) return 1;
        cp = (cp << 6) | (d & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 1;
    return need + 1;
}

static int64_t rune_count(const char *s, size_t len)
{
    int64_t c = 0;
    for (size_t i = 0; i < len; i += utf8_len(s, len, i)) c++;
    return c;
}

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
    const pc_value *big;
    if (pc__bignum_op(A, '+', a[0], a[1], &big)) RET(big);
    RET(pc_value_float(A, pc_value_get_double(a[0]) + pc_value_get_double(a[1])));
}

static bool b_minus(ARGS)
{
    (void)n;
    if (a[0]->kind == PC_SET && a[1]->kind == PC_SET) RET(set_diff(A, a[0], a[1]));
    if (a[0]->kind == PC_SET) return pc_builtin_type_error(ctx, 2, "set", a[1]);
    if (a[0]->kind != PC_NUMBER) return pc_builtin_type_error(ctx, 1, "one of {number, set}", a[0]);
    if (a[1]->kind != PC_NUMBER) return pc_builtin_type_error(ctx, 2, "number", a[1]);
    int64_t r;
    if (is_int(a[0]) && is_int(a[1]) && !__builtin_sub_overflow(a[0]->u.i, a[1]->u.i, &r))
        RET(pc_value_int(A, r));
    const pc_value *big;
    if (pc__bignum_op(A, '-', a[0], a[1], &big)) RET(big);
    RET(pc_value_float(A, pc_value_get_double(a[0]) - pc_value_get_double(a[1])));
}

static bool b_mul(ARGS)
{
    (void)n;
    if (!num2(ctx, a)) return false;
    int64_t r;
    if (is_int(a[0]) && is_int(a[1]) && !__builtin_mul_overflow(a[0]->u.i, a[1]->u.i, &r))
        RET(pc_value_int(A, r));
    const pc_value *big;
    if (pc__bignum_op(A, '*', a[0], a[1], &big)) RET(big);
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
    if (pc__bignum_is_big(a[0]) || pc__bignum_is_big(a[1])) {
        const pc_value *big;
        if (pc_value_get_double(a[1]) == 0) return pc_builtin_error(ctx, "modulo by zero");
        if (pc__bignum_op(A, '%', a[0], a[1], &big)) RET(big);
    }
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
    uint64_t span = lo <= hi ? (uint64_t)hi - (uint64_t)lo : (uint64_t)lo - (uint64_t)hi;
    uint64_t count = span / (uint64_t)stepv + 1;
    if (count > 10000000) return pc_builtin_oom(ctx);
    /* sized once: no growth copies left behind in the arena */
    const pc_value **items = pc_arena_alloc(A, (size_t)count * sizeof(*items) + 1);
    if (!items) return pc_builtin_oom(ctx);
    int64_t i = lo;
    size_t k = 0;
    while (k < count) {
        if (!(items[k++] = pc_value_int(A, i))) return pc_builtin_oom(ctx);
        if (__builtin_add_overflow(i, lo <= hi ? stepv : -stepv, &i)) break;
    }
    RET(pc_value_array(A, items, k));
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
    if (pc__bignum_is_big(a[2]) && pc_value_get_double(a[2]) > 0)
        st = INT64_MAX; /* a step beyond int64 reaches only the first number */
    else if (!pc_value_is_integral(a[2]) || !pc_value_get_int(a[2], &st))
        return pc_builtin_error(ctx, "step must be a positive integer");
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
    if (v->kind == PC_STRING) RET(pc_value_int(A, rune_count(v->u.s, v->len)));
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

static bool b_array_flatten(ARGS)
{
    (void)n;
    if (!pc_arg_kind(ctx, a, 0, PC_ARRAY)) return false;
    pc_vbuf b;
    pc_vbuf_init(&b, A);
    for (uint32_t i = 0; i < a[0]->len; i++) {
        const pc_value *x = a[0]->u.items[i];
        if (x->kind == PC_ARRAY)
            for (uint32_t j = 0; j < x->len; j++) pc_vbuf_push(&b, x->u.items[j]);
        else
            pc_vbuf_push(&b, x);
    }
    RET(pc_vbuf_array(&b));
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
        return pc_builtin_type_error(ctx, 2, "one of {object, set, array}", a[1]);
    pc_obuf b;
    pc_obuf_init(&b, A);
    for (uint32_t i = 0; i < a[0]->len; i++)
        if (key_in(a[1], a[0]->u.kvs[i].key) == keep) pc_obuf_put(&b, a[0]->u.kvs[i].key, a[0]->u.kvs[i].val);
    RET(pc_obuf_object(&b));
}

static bool b_object_remove(ARGS) { (void)n; return filter_obj(ctx, a, out, false); }
static bool b_object_filter(ARGS) { (void)n; return filter_obj(ctx, a, out, true); }


static bool b_object_union(ARGS)
{
    (void)n;
    if (!pc_arg_kind(ctx, a, 0, PC_OBJECT) || !pc_arg_kind(ctx, a, 1, PC_OBJECT)) return false;
    RET(pc_value_merge(A, a[0], a[1]));
}

static bool b_object_union_n(ARGS)
{
    (void)n;
    if (!pc_arg_kind(ctx, a, 0, PC_ARRAY)) return false;
    const pc_value *acc = pc_value_empty_object();
    for (uint32_t i = 0; i < a[0]->len; i++) {
        if (a[0]->u.items[i]->kind != PC_OBJECT)
            return pc_builtin_type_errorf(ctx, "operand 1 must be array of objects");
        acc = pc_value_merge(A, acc, a[0]->u.items[i]);
        if (!acc) return pc_builtin_oom(ctx);
    }
    RET(acc);
}

static bool subset_of(const pc_value *super, const pc_value *sub)
{
    if (super->kind == PC_OBJECT && sub->kind == PC_OBJECT) {
        for (uint32_t i = 0; i < sub->len; i++) {
            const pc_value *sv = pc_value_object_get(super, sub->u.kvs[i].key);
            const pc_value *bv = sub->u.kvs[i].val;
            if (!sv) return false;
            bool coll = (sv->kind == bv->kind && (sv->kind == PC_OBJECT || sv->kind == PC_SET || sv->kind == PC_ARRAY)) ||
                        (sv->kind == PC_ARRAY && bv->kind == PC_SET);
            if (coll) {
                if (!subset_of(sv, bv)) return false;
            } else if (!pc_value_equal(sv, bv)) {
                return false;
            }
        }
        return true;
    }
    if (super->kind == PC_SET && sub->kind == PC_SET) {
        for (uint32_t i = 0; i < sub->len; i++)
            if (!pc_value_set_contains(super, sub->u.items[i])) return false;
        return true;
    }
    if (super->kind == PC_ARRAY && sub->kind == PC_ARRAY) {
        /* a contiguous run of super */
        if (sub->len == 0) return true;
        for (uint32_t st = 0; st + sub->len <= super->len; st++) {
            uint32_t j = 0;
            while (j < sub->len && pc_value_equal(super->u.items[st + j], sub->u.items[j])) j++;
            if (j == sub->len) return true;
        }
        return false;
    }
    if (super->kind == PC_ARRAY && sub->kind == PC_SET) {
        for (uint32_t i = 0; i < sub->len; i++) {
            bool found = false;
            for (uint32_t j = 0; j < super->len && !found; j++) found = pc_value_equal(super->u.items[j], sub->u.items[i]);
            if (!found) return false;
        }
        return true;
    }
    return false;
}

static bool b_object_subset(ARGS)
{
    (void)n;
    const pc_value *sup = a[0], *sub = a[1];
    if (sup->kind != PC_OBJECT && sup->kind != PC_SET && sup->kind != PC_ARRAY)
        return pc_builtin_type_error(ctx, 1, "one of {object, set, array}", sup);
    if (sub->kind != PC_OBJECT && sub->kind != PC_SET && sub->kind != PC_ARRAY)
        return pc_builtin_type_error(ctx, 2, "one of {object, set, array}", sub);
    if (sup->kind == PC_OBJECT && sub->kind != PC_OBJECT)
        return pc_builtin_type_errorf(ctx, "if operand 1 is an object, operand 2 must be an object");
    if (sup->kind == PC_SET && sub->kind != PC_SET)
        return pc_builtin_type_errorf(ctx, "if operand 1 is a set, operand 2 must be a set");
    if (sup->kind == PC_ARRAY && sub->kind == PC_OBJECT)
        return pc_builtin_type_errorf(ctx, "if operand 1 is an array, operand 2 must be an array or a set");
    RET(pc_value_bool(subset_of(sup, sub)));
}

/* ---- json.filter / json.remove ---------------------------------------- */

typedef struct {
    const pc_value *const *segs;
    uint32_t n;
} jpath;

/* Paths are "a/b/0" strings or arrays of segments. */
static bool json_paths(pc_eval_ctx *ctx, const pc_value *arg, jpath **out, size_t *np)
{
    if (arg->kind != PC_SET && arg->kind != PC_ARRAY) return pc_builtin_type_error(ctx, 2, "one of {set, array}", arg);
    jpath *ps = pc_arena_alloc(A, (arg->len + 1) * sizeof(*ps));
    if (!ps) return pc_builtin_oom(ctx);
    for (uint32_t i = 0; i < arg->len; i++) {
        const pc_value *p = arg->u.items[i];
        if (p->kind == PC_ARRAY) {
            ps[i].segs = p->u.items;
            ps[i].n = p->len;
        } else if (p->kind == PC_STRING) {
            const char *str = p->u.s;
            size_t len = p->len;
            while (len && *str == '/') {
                str++;
                len--;
            }
            pc_vbuf b;
            pc_vbuf_init(&b, A);
            size_t st = 0;
            for (size_t k = 0; k <= len; k++)
                if (k == len || str[k] == '/') {
                    if (k > st || len) pc_vbuf_push(&b, pc_value_string(A, str + st, k - st));
                    st = k + 1;
                }
            if (b.oom) return pc_builtin_oom(ctx);
            ps[i].segs = b.items;
            ps[i].n = (uint32_t)b.len;
        } else {
            return pc_builtin_type_errorf(ctx,
                                          "operand 2 must be one of {set, array} containing string paths or array of "
                                          "path segments but got %s",
                                          pc_value_type_name(p));
        }
    }
    *out = ps;
    *np = arg->len;
    return true;
}

static bool seg_match(const pc_value *seg, const pc_value *key)
{
    if (pc_value_equal(seg, key)) return true;
    if (seg->kind == PC_STRING && key->kind == PC_NUMBER) {
        int64_t k;
        if (!pc_value_get_int(key, &k)) return false;
        char buf[32];
        int l = snprintf(buf, sizeof(buf), "%lld", (long long)k);
        return (size_t)l == seg->len && memcmp(buf, seg->u.s, seg->len) == 0;
    }
    return false;
}

/* keep: json.filter; otherwise json.remove. depth: segment index. */
static const pc_value *json_select(pc_eval_ctx *ctx, const pc_value *v, const jpath *ps, size_t np, uint32_t depth,
                                   bool keep)
{
    bool is_obj = v->kind == PC_OBJECT;
    if (!is_obj && v->kind != PC_ARRAY) return v;
    pc_obuf ob;
    pc_vbuf ab;
    pc_obuf_init(&ob, A);
    pc_vbuf_init(&ab, A);
    jpath *sub = pc_arena_alloc(A, (np + 1) * sizeof(*sub));
    if (!sub) return NULL;
    for (uint32_t i = 0; i < v->len; i++) {
        const pc_value *key = is_obj ? v->u.kvs[i].key : pc_value_int(A, i);
        const pc_value *val = is_obj ? v->u.kvs[i].val : v->u.items[i];
        if (!key) return NULL;
        size_t ns = 0;
        bool terminal = false;
        for (size_t j = 0; j < np; j++) {
            if (ps[j].n <= depth || !seg_match(ps[j].segs[depth], key)) continue;
            if (ps[j].n == depth + 1) terminal = true;
            sub[ns++] = ps[j];
        }
        const pc_value *nv;
        if (keep) {
            if (!ns) continue;
            nv = terminal ? val : json_select(ctx, val, sub, ns, depth + 1, true);
        } else {
            if (terminal) continue;
            nv = ns ? json_select(ctx, val, sub, ns, depth + 1, false) : val;
        }
        if (!nv) return NULL;
        if (is_obj)
            pc_obuf_put(&ob, key, nv);
        else
            pc_vbuf_push(&ab, nv);
    }
    return is_obj ? pc_obuf_object(&ob) : pc_vbuf_array(&ab);
}

static bool json_filter_remove(pc_eval_ctx *ctx, const pc_value *const *a, const pc_value **out, bool keep)
{
    if (!pc_arg_kind(ctx, a, 0, PC_OBJECT)) return false;
    jpath *ps = NULL;
    size_t np = 0;
    if (!json_paths(ctx, a[1], &ps, &np)) return false;
    RET(json_select(ctx, a[0], ps, np, 0, keep));
}

static bool b_json_filter(ARGS) { (void)n; return json_filter_remove(ctx, a, out, true); }
static bool b_json_remove(ARGS) { (void)n; return json_filter_remove(ctx, a, out, false); }

/* ---- graphs ----------------------------------------------------------- */

static bool b_graph_reachable(ARGS)
{
    (void)n;
    if (!pc_arg_kind(ctx, a, 0, PC_OBJECT)) return false;
    const pc_value *init = a[1];
    if (init->kind != PC_SET && init->kind != PC_ARRAY)
        return pc_builtin_type_error(ctx, 2, "one of {set, array}", init);
    pc_vbuf queue, reached;
    pc_vbuf_init(&queue, A);
    pc_vbuf_init(&reached, A);
    for (uint32_t i = 0; i < init->len; i++) pc_vbuf_push(&queue, init->u.items[i]);
    for (size_t qi = 0; qi < queue.len; qi++) {
        const pc_value *node = queue.items[qi];
        bool seen = false;
        for (size_t j = 0; j < reached.len && !seen; j++) seen = pc_value_equal(reached.items[j], node);
        if (seen) continue;
        const pc_value *edges = pc_value_object_get(a[0], node);
        if (!edges) continue;
        pc_vbuf_push(&reached, node);
        if (edges->kind == PC_ARRAY || edges->kind == PC_SET)
            for (uint32_t k = 0; k < edges->len; k++) pc_vbuf_push(&queue, edges->u.items[k]);
        if (queue.oom || reached.oom) return pc_builtin_oom(ctx);
    }
    RET(pc_vbuf_set(&reached));
}

static bool paths_from(pc_eval_ctx *ctx, const pc_value *g, const pc_value *root, pc_vbuf *path, pc_vbuf *out,
                       pc_vbuf *reached, int depth)
{
    const pc_value *edges = pc_value_object_get(g, root);
    if (!edges || depth > 10000) return true;
    size_t saved = path->len;
    pc_vbuf_push(path, root);
    (void)reached;
    bool any = false;
    if (edges->kind == PC_ARRAY || edges->kind == PC_SET) {
        for (uint32_t i = 0; i < edges->len; i++) {
            const pc_value *nb = edges->u.items[i];
            bool seen = false;
            /* a neighbour already on this path closes a cycle: the path ends */
            for (size_t j = 0; j < path->len && !seen; j++) seen = pc_value_equal(path->items[j], nb);
            any = true;
            if (seen) {
                pc_vbuf_push(out, pc_value_array(A, path->items, path->len));
            } else {
                pc_vbuf cp;
                pc_vbuf_init(&cp, A);
                for (size_t j = 0; j < path->len; j++) pc_vbuf_push(&cp, path->items[j]);
                if (!paths_from(ctx, g, nb, &cp, out, reached, depth + 1)) return false;
                if (!pc_value_object_get(g, nb)) pc_vbuf_push(out, pc_value_array(A, path->items, path->len));
            }
        }
    }
    if (!any) pc_vbuf_push(out, pc_value_array(A, path->items, path->len));
    path->len = saved;
    return !out->oom && !path->oom;
}

static bool b_graph_reachable_paths(ARGS)
{
    (void)n;
    if (!pc_arg_kind(ctx, a, 0, PC_OBJECT)) return false;
    const pc_value *init = a[1];
    if (init->kind != PC_SET && init->kind != PC_ARRAY)
        return pc_builtin_type_error(ctx, 2, "one of {set, array}", init);
    pc_vbuf res;
    pc_vbuf_init(&res, A);
    for (uint32_t i = 0; i < init->len; i++) {
        pc_vbuf path, reached;
        pc_vbuf_init(&path, A);
        pc_vbuf_init(&reached, A);
        if (!paths_from(ctx, a[0], init->u.items[i], &path, &res, &reached, 0)) return pc_builtin_oom(ctx);
    }
    RET(pc_vbuf_set(&res));
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
            static const char *nonfinite[] = {"inf", "+inf", "-inf", "infinity", "+infinity", "-infinity",
                                              "nan", "+nan", "-nan", NULL};
            for (int i = 0; nonfinite[i]; i++)
                if (strlen(nonfinite[i]) == v->len && strncasecmp(nonfinite[i], v->u.s, v->len) == 0)
                    return pc_builtin_type_errorf(ctx, "operand 1 must be a finite number but got %.*s",
                                                  (int)v->len, v->u.s);
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
        for (size_t i = 0; i < xl;) {
            size_t l = utf8_len(x, xl, i);
            pc_vbuf_push(&b, pc_value_string(A, x + i, l));
            i += l;
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
        i += utf8_len(s, len, i);
        idx--;
    }
    return i;
}

static int64_t char_count(const char *s, size_t len) { return rune_count(s, len); }

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
    int64_t r;
    if (y < 62 && !__builtin_mul_overflow(x, (int64_t)1 << y, &r)) RET(pc_value_int(A, r));
    if (y > 4096) return pc_builtin_error(ctx, "shift too large");
    /* exact: x * 2^y as a big integer */
    const pc_value *acc = pc_value_int(A, x), *two = pc_value_int(A, 2);
    for (int64_t k = 0; k < y && acc; k++) {
        const pc_value *args2[2] = {acc, two};
        if (!b_mul(ctx, args2, 2, &acc)) return false;
    }
    RET(acc);
}
static bool b_bits_rsh(ARGS)
{
    (void)n;
    int64_t x, y;
    if (!ints2(ctx, a, &x, &y)) return false;
    if (y < 0) return pc_builtin_type_errorf(ctx, "operand 2 must be an unsigned integer number but got a negative integer");
    RET(pc_value_int(A, y >= 63 ? (x < 0 ? -1 : 0) : x >> y));
}

/* $"..." strings: parts are literal strings or the set of values of an expression. */
static bool b_template_string(ARGS)
{
    (void)n;
    if (!pc_arg_kind(ctx, a, 0, PC_ARRAY)) return false;
    pc_str s = {0};
    for (uint32_t i = 0; i < a[0]->len; i++) {
        const pc_value *part = a[0]->u.items[i];
        if (part->kind == PC_STRING) {
            pc_str_append(&s, part->u.s, part->len);
            continue;
        }
        if (part->kind != PC_SET || part->len > 1) {
            pc_str_free(&s);
            return pc_builtin_error(ctx, "template-strings must not produce multiple outputs");
        }
        if (part->len == 0) {
            pc_str_append(&s, "<undefined>", 11);
            continue;
        }
        const pc_value *v = part->u.items[0];
        if (v->kind == PC_STRING)
            pc_str_append(&s, v->u.s, v->len);
        else
            pc_value_to_rego(&s, v);
    }
    const pc_value *r = pc_value_string(A, s.p ? s.p : "", s.len);
    pc_str_free(&s);
    RET(r);
}

/* Policies run inside the proxy's request path: they may not reach out over
 * HTTP (a slow or hostile endpoint would stall every session). The request is
 * validated like OPA does, then refused; `with http.send as ...` mocks work. */
static bool b_http_send(ARGS)
{
    (void)n;
    static const char *allowed[] = {
        "body", "cache", "cache_ignored_headers", "caching_mode", "enable_redirect", "force_cache",
        "force_cache_duration_seconds", "force_json_decode", "force_yaml_decode", "headers",
        "max_retry_attempts", "method", "raise_error", "raw_body", "timeout", "tls_ca_cert",
        "tls_ca_cert_env_variable", "tls_ca_cert_file", "tls_client_cert", "tls_client_cert_env_variable",
        "tls_client_cert_file", "tls_client_key", "tls_client_key_env_variable", "tls_client_key_file",
        "tls_insecure_skip_verify", "tls_server_name", "tls_use_system_certs", "url", NULL};
    if (!pc_arg_kind(ctx, a, 0, PC_OBJECT)) return false;
    pc_vbuf bad;
    pc_vbuf_init(&bad, A);
    for (uint32_t i = 0; i < a[0]->len; i++) {
        const pc_value *k = a[0]->u.kvs[i].key;
        bool ok = false;
        for (int j = 0; allowed[j] && !ok; j++)
            ok = k->kind == PC_STRING && strlen(allowed[j]) == k->len && memcmp(allowed[j], k->u.s, k->len) == 0;
        if (!ok) pc_vbuf_push(&bad, k);
    }
    pc_str msg = {0};
    if (bad.len) {
        pc_value_to_rego(&msg, pc_vbuf_set(&bad));
        pc_builtin_type_errorf(ctx, "invalid request parameters(s): %s", msg.p);
        pc_str_free(&msg);
        return false;
    }
    pc_vbuf missing;
    pc_vbuf_init(&missing, A);
    if (!pc_value_object_get_str(a[0], "method", 6)) pc_vbuf_push(&missing, pc_value_cstring(A, "method"));
    if (!pc_value_object_get_str(a[0], "url", 3)) pc_vbuf_push(&missing, pc_value_cstring(A, "url"));
    if (missing.len) {
        pc_value_to_rego(&msg, pc_vbuf_set(&missing));
        pc_builtin_type_errorf(ctx, "missing required request parameters(s): %s", msg.p);
        pc_str_free(&msg);
        return false;
    }
    return pc_builtin_error(ctx, "outbound HTTP requests are disabled in Portcullis policies");
}

/* No runtime information reaches policies: the environment of a proxy holds
 * credentials. An empty object, as OPA returns when it has no runtime. */
static bool b_opa_runtime(ARGS)
{
    (void)n;
    (void)a;
    (void)ctx;
    *out = pc_value_empty_object();
    return true;
}

static bool b_time_now_ns(ARGS)
{
    (void)n;
    (void)a;
    RET(pc_value_int(A, pc_builtin_now_ns(ctx)));
}

static const pc_builtin k_core[] = {
    {"time.now_ns", 0, b_time_now_ns, PC_BUILTIN_NONDET},
    {"http.send", 1, b_http_send, PC_BUILTIN_NONDET},
    {"opa.runtime", 0, b_opa_runtime, 0},
    {"internal.template_string", 1, b_template_string, PC_BUILTIN_ALWAYS_RAISE},
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
    {"array.flatten", 1, b_array_flatten, 0},
    {"object.get", 3, b_object_get, 0},
    {"object.keys", 1, b_object_keys, 0},
    {"object.remove", 2, b_object_remove, 0},
    {"object.filter", 2, b_object_filter, 0},
    {"object.union", 2, b_object_union, 0},
    {"object.union_n", 1, b_object_union_n, 0},
    {"object.subset", 2, b_object_subset, 0},
    {"json.filter", 2, b_json_filter, 0},
    {"json.remove", 2, b_json_remove, 0},
    {"graph.reachable", 2, b_graph_reachable, 0},
    {"graph.reachable_paths", 2, b_graph_reachable_paths, 0},
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

void pc__parse_module_register(void);

static void init_once(void)
{
    pc_builtin_register_table(k_core);
    pc__parse_module_register();
    /* a strong reference: it also pulls the extended set out of libpc.a
     * into every program that evaluates policies (tests, bench, connector) */
    pc__builtins_ext_register();
}

void pc_builtins_init(void) { pthread_once(&g_once, init_once); }
