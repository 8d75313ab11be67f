/*
 * The long tail of OPA built-ins, registered after the core set: shared
 * adapter helpers and the strings/units/encoding/json group. Each adapter
 * converts values to the plain C types of src/policy/lib/ and back, with
 * OPA's error texts.
 */
#include "policy/builtins_ext.h"

#include "policy/lib/encoding.h"
#include "policy/lib/gofmt.h"
#include "policy/lib/sbuf.h"
#include "policy/lib/units.h"
#include "policy/lib/yamlconv.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define A pc_builtin_arena(ctx)

bool pc__ext_ret(pc_eval_ctx *ctx, const pc_value **out, const pc_value *v)
{
    if (!v) return pc_builtin_oom(ctx);
    *out = v;
    return true;
}

bool pc__ext_ret_str(pc_eval_ctx *ctx, const pc_value **out, char *s, size_t len)
{
    if (!s) return pc_builtin_oom(ctx);
    const pc_value *v = pc_value_string(A, s, len);
    free(s);
    return pc__ext_ret(ctx, out, v);
}

bool pc__ext_err(pc_eval_ctx *ctx, const char *msg)
{
    const char *name = pc_builtin_name(ctx);
    size_t nl = strlen(name);
    if (strncmp(msg, name, nl) == 0 && msg[nl] == ':' && msg[nl + 1] == ' ') msg += nl + 2;
    return pc_builtin_error(ctx, "%s", msg);
}

bool pc__ext_strings(pc_eval_ctx *ctx, const pc_value *v, int pos, const char ***s, size_t **lens,
                     size_t *count)
{
    if (v->kind != PC_ARRAY && v->kind != PC_SET)
        return pc_builtin_type_error(ctx, pos, "set or array", v);
    const char **ss = pc_arena_alloc(A, sizeof(char *) * (v->len ? v->len : 1));
    size_t *ls = pc_arena_alloc(A, sizeof(size_t) * (v->len ? v->len : 1));
    if (!ss || !ls) return pc_builtin_oom(ctx);
    for (uint32_t i = 0; i < v->len; i++) {
        const pc_value *e = v->u.items[i];
        if (e->kind != PC_STRING)
            return pc_builtin_type_errorf(ctx, "operand %d must be %s of strings but got %s containing %s",
                                          pos, pc_value_type_name(v), pc_value_type_name(v),
                                          pc_value_type_name(e));
        ss[i] = e->u.s;
        ls[i] = e->len;
    }
    *s = ss;
    *lens = ls;
    *count = v->len;
    return true;
}

const char *pc__ext_num_text(pc_eval_ctx *ctx, const pc_value *v, size_t *len)
{
    char buf[64];
    const char *t;
    if (v->num == PC_NUM_INT) {
        *len = (size_t)snprintf(buf, sizeof(buf), "%lld", (long long)v->u.i);
        t = buf;
    } else if (v->u.f.text) {
        t = v->u.f.text;
        *len = strlen(t);
    } else {
        *len = pc_plib_fmt_float_shortest(v->u.f.d, 'e', buf, sizeof(buf));
        t = buf;
    }
    return pc_arena_strndup(A, t, *len);
}

/* ---- strings -------------------------------------------------------------- */

static bool s_reverse(EXT_ARGS)
{
    (void)n;
    const char *s;
    size_t len;
    if (!pc_arg_string(ctx, a, 0, &s, &len)) return false;
    /* rune by rune, like Go; invalid bytes become U+FFFD */
    pc__sbuf_t b = {0};
    size_t w;
    size_t *starts = malloc(sizeof(size_t) * (len + 1));
    if (!starts) return pc_builtin_oom(ctx);
    size_t k = 0;
    for (size_t i = 0; i < len; i += w) {
        starts[k++] = i;
        pc__utf8_decode(s + i, len - i, &w);
    }
    for (size_t j = k; j-- > 0;) {
        size_t st = starts[j];
        uint32_t rr = pc__utf8_decode(s + st, len - st, &w);
        pc__sbuf_addrune(&b, rr);
    }
    free(starts);
    size_t ol;
    char *o = pc__sbuf_take(&b, &ol);
    return pc__ext_ret_str(ctx, out, o ? o : strdup(""), o ? ol : 0);
}

static size_t count_sub(const char *s, size_t n, const char *sub, size_t m)
{
    if (m == 0) {
        /* Go: utf8.RuneCount(s) + 1 */
        size_t c = 0, w;
        for (size_t i = 0; i < n; i += w) {
            pc__utf8_decode(s + i, n - i, &w);
            c++;
        }
        return c + 1;
    }
    size_t c = 0;
    for (size_t i = 0; i + m <= n;) {
        if (memcmp(s + i, sub, m) == 0) {
            c++;
            i += m;
        } else {
            i++;
        }
    }
    return c;
}

static bool s_count(EXT_ARGS)
{
    (void)n;
    const char *s, *sub;
    size_t sl, ml;
    if (!pc_arg_string(ctx, a, 0, &s, &sl) || !pc_arg_string(ctx, a, 1, &sub, &ml)) return false;
    return pc__ext_ret(ctx, out, pc_value_int(A, (int64_t)count_sub(s, sl, sub, ml)));
}

static bool str_or_list(pc_eval_ctx *ctx, const pc_value *v, int pos, const char ***s,
                        size_t **l, size_t *c)
{
    if (v->kind == PC_STRING) {
        const char **ss = pc_arena_alloc(A, sizeof(char *));
        size_t *ls = pc_arena_alloc(A, sizeof(size_t));
        if (!ss || !ls) return pc_builtin_oom(ctx);
        ss[0] = v->u.s;
        ls[0] = v->len;
        *s = ss;
        *l = ls;
        *c = 1;
        return true;
    }
    if (v->kind != PC_ARRAY && v->kind != PC_SET)
        return pc_builtin_type_error(ctx, pos, "one of {string, set, array}", v);
    return pc__ext_strings(ctx, v, pos, s, l, c);
}

static bool any_match(EXT_ARGS, bool suffix)
{
    (void)n;
    const char **s, **p;
    size_t *sl, *pl, sc, pc;
    if (!str_or_list(ctx, a[0], 1, &s, &sl, &sc) || !str_or_list(ctx, a[1], 2, &p, &pl, &pc))
        return false;
    for (size_t i = 0; i < sc; i++)
        for (size_t j = 0; j < pc; j++) {
            if (pl[j] > sl[i]) continue;
            const char *at = suffix ? s[i] + sl[i] - pl[j] : s[i];
            if (memcmp(at, p[j], pl[j]) == 0) return pc__ext_ret(ctx, out, pc_value_bool(true));
        }
    return pc__ext_ret(ctx, out, pc_value_bool(false));
}

static bool s_any_prefix(EXT_ARGS)
{
    return any_match(ctx, a, n, out, false);
}

static bool s_any_suffix(EXT_ARGS)
{
    return any_match(ctx, a, n, out, true);
}

/* Go's strings.TrimLeft/TrimRight: cutset is a set of runes */
static bool in_cutset(uint32_t r, const char *cs, size_t cn)
{
    size_t w;
    for (size_t i = 0; i < cn; i += w)
        if (pc__utf8_decode(cs + i, cn - i, &w) == r) return true;
    return false;
}

static bool trim_side(EXT_ARGS, bool left, bool right)
{
    (void)n;
    const char *s, *cs;
    size_t sl, cl;
    if (!pc_arg_string(ctx, a, 0, &s, &sl) || !pc_arg_string(ctx, a, 1, &cs, &cl)) return false;
    size_t st = 0, en = sl, w;
    if (left)
        while (st < en && in_cutset(pc__utf8_decode(s + st, en - st, &w), cs, cl)) st += w;
    if (right)
        while (en > st) {
            size_t b = en - 1;
            while (b > st && ((unsigned char)s[b] & 0xC0) == 0x80 && en - b < 4) b--;
            uint32_t r = pc__utf8_decode(s + b, en - b, &w);
            if (b + w != en) {
                b = en - 1;
                r = 0xFFFD;
            }
            if (!in_cutset(r, cs, cl)) break;
            en = b;
        }
    if (st == 0 && en == sl) return pc__ext_ret(ctx, out, a[0]);
    return pc__ext_ret(ctx, out, pc_value_string(A, s + st, en - st));
}

static bool s_trim_left(EXT_ARGS)
{
    return trim_side(ctx, a, n, out, true, false);
}

static bool s_trim_right(EXT_ARGS)
{
    return trim_side(ctx, a, n, out, false, true);
}

static bool trim_affix(EXT_ARGS, bool prefix)
{
    (void)n;
    const char *s, *p;
    size_t sl, pl;
    if (!pc_arg_string(ctx, a, 0, &s, &sl) || !pc_arg_string(ctx, a, 1, &p, &pl)) return false;
    if (pl > sl) return pc__ext_ret(ctx, out, a[0]);
    if (prefix && memcmp(s, p, pl) == 0)
        return pc__ext_ret(ctx, out, pc_value_string(A, s + pl, sl - pl));
    if (!prefix && memcmp(s + sl - pl, p, pl) == 0)
        return pc__ext_ret(ctx, out, pc_value_string(A, s, sl - pl));
    return pc__ext_ret(ctx, out, a[0]);
}

static bool s_trim_prefix(EXT_ARGS)
{
    return trim_affix(ctx, a, n, out, true);
}

static bool s_trim_suffix(EXT_ARGS)
{
    return trim_affix(ctx, a, n, out, false);
}

/* strings.replace_n: Go's strings.NewReplacer with keys in term order; at each
 * position the first pattern (in that order) that matches wins. */
static bool s_replace_n(EXT_ARGS)
{
    (void)n;
    const pc_value *obj = a[0];
    if (obj->kind != PC_OBJECT) return pc_builtin_type_error(ctx, 1, "object", obj);
    const char *s;
    size_t sl;
    if (!pc_arg_string(ctx, a, 1, &s, &sl)) return false;
    for (uint32_t i = 0; i < obj->len; i++) {
        if (obj->u.kvs[i].key->kind != PC_STRING)
            return pc_builtin_type_errorf(ctx, "operand 1 non-string key found in pattern object");
        if (obj->u.kvs[i].val->kind != PC_STRING)
            return pc_builtin_type_errorf(ctx, "operand 1 non-string value found in pattern object");
    }
    pc__sbuf_t b = {0};
    bool any_empty = false;
    for (uint32_t k = 0; k < obj->len; k++) any_empty |= obj->u.kvs[k].key->len == 0;
    for (size_t i = 0; i <= sl;) {
        bool hit = false;
        for (uint32_t k = 0; k < obj->len; k++) {
            const pc_value *key = obj->u.kvs[k].key, *val = obj->u.kvs[k].val;
            if (key->len == 0) continue;
            if (key->len <= sl - i && memcmp(s + i, key->u.s, key->len) == 0) {
                pc__sbuf_add(&b, val->u.s, val->len);
                i += key->len;
                hit = true;
                break;
            }
        }
        if (hit) continue;
        if (any_empty) {
            /* Go's generic replacer: an empty old string matches between runes */
            for (uint32_t k = 0; k < obj->len; k++)
                if (obj->u.kvs[k].key->len == 0) {
                    pc__sbuf_add(&b, obj->u.kvs[k].val->u.s, obj->u.kvs[k].val->len);
                    break;
                }
        }
        if (i == sl) break;
        size_t w;
        pc__utf8_decode(s + i, sl - i, &w);
        pc__sbuf_add(&b, s + i, w);
        i += w;
    }
    size_t ol;
    char *o = pc__sbuf_take(&b, &ol);
    return pc__ext_ret_str(ctx, out, o, ol);
}

/* strings.split_n: Go's strings.Split, then the first n (n > 0) or last -n parts */
static bool s_split_n(EXT_ARGS)
{
    (void)n;
    const char *s, *d;
    size_t sl, dl;
    int64_t k;
    if (!pc_arg_string(ctx, a, 0, &s, &sl) || !pc_arg_string(ctx, a, 1, &d, &dl) ||
        !pc_arg_int(ctx, a, 2, &k))
        return false;
    size_t cap = dl ? count_sub(s, sl, d, dl) + 1 : count_sub(s, sl, "", 0);
    const pc_value **parts = pc_arena_alloc(A, sizeof(*parts) * (cap ? cap : 1));
    if (!parts) return pc_builtin_oom(ctx);
    size_t np = 0, w;
    if (dl == 0) {
        for (size_t i = 0; i < sl; i += w) {
            pc__utf8_decode(s + i, sl - i, &w);
            parts[np++] = pc_value_string(A, s + i, w);
        }
    } else {
        size_t st = 0;
        for (size_t i = 0; i + dl <= sl;) {
            if (memcmp(s + i, d, dl) == 0) {
                parts[np++] = pc_value_string(A, s + st, i - st);
                i += dl;
                st = i;
            } else {
                i++;
            }
        }
        parts[np++] = pc_value_string(A, s + st, sl - st);
    }
    for (size_t i = 0; i < np; i++)
        if (!parts[i]) return pc_builtin_oom(ctx);
    size_t from = 0, cnt = np;
    if (k >= 0 && (uint64_t)k < np) cnt = (size_t)k;
    if (k < 0 && (uint64_t)(-(k + 1)) + 1 < np) {
        cnt = (size_t)(-(k + 1)) + 1;
        from = np - cnt;
    }
    return pc__ext_ret(ctx, out, pc_value_array(A, parts + from, cnt));
}

static bool s_indexof_n(EXT_ARGS)
{
    (void)n;
    const char *s, *sub;
    size_t sl, ml;
    if (!pc_arg_string(ctx, a, 0, &s, &sl) || !pc_arg_string(ctx, a, 1, &sub, &ml)) return false;
    if (ml == 0) return pc_builtin_error(ctx, "empty search character");
    pc_vbuf vb;
    pc_vbuf_init(&vb, A);
    size_t rune = 0, w;
    for (size_t i = 0; i < sl; i += w, rune++) {
        pc__utf8_decode(s + i, sl - i, &w);
        if (ml <= sl - i && memcmp(s + i, sub, ml) == 0) pc_vbuf_push(&vb, pc_value_int(A, (int64_t)rune));
    }
    return pc__ext_ret(ctx, out, pc_vbuf_array(&vb));
}

static bool s_format_int(EXT_ARGS)
{
    (void)n;
    if (a[0]->kind != PC_NUMBER) return pc_builtin_type_error(ctx, 1, "number", a[0]);
    if (a[1]->kind != PC_NUMBER) return pc_builtin_type_error(ctx, 2, "number", a[1]);
    int64_t base;
    if (!pc_value_get_int(a[1], &base) || (base != 2 && base != 8 && base != 10 && base != 16))
        return pc_builtin_type_errorf(ctx, "operand 2 must be one of {2, 8, 10, 16}");
    size_t tl;
    const char *t = pc__ext_num_text(ctx, a[0], &tl);
    if (!t) return pc_builtin_oom(ctx);
    char *r = pc_plib_format_int(t, tl, (int)base);
    if (!r) return pc_builtin_error(ctx, "invalid number");
    return pc__ext_ret_str(ctx, out, r, strlen(r));
}

static bool digits_only(const char *t, size_t n)
{
    size_t i = t[0] == '-' ? 1 : 0;
    if (i >= n) return false;
    for (; i < n; i++)
        if (t[i] < '0' || t[i] > '9') return false;
    return true;
}

static bool s_sprintf(EXT_ARGS)
{
    (void)n;
    const char *f;
    size_t fl;
    if (!pc_arg_string(ctx, a, 0, &f, &fl)) return false;
    if (a[1]->kind != PC_ARRAY) return pc_builtin_type_error(ctx, 2, "array", a[1]);
    const pc_value *arr = a[1];
    pc_plib_fmt_arg_t *args = pc_arena_alloc(A, sizeof(*args) * (arr->len ? arr->len : 1));
    if (!args) return pc_builtin_oom(ctx);
    for (uint32_t i = 0; i < arr->len; i++) {
        const pc_value *v = arr->u.items[i];
        pc_plib_fmt_arg_t *g = &args[i];
        memset(g, 0, sizeof(*g));
        if (v->kind == PC_STRING) {
            g->kind = PC_PLIB_FMT_STR;
            g->s = v->u.s;
            g->len = v->len;
        } else if (v->kind == PC_NUMBER && v->num == PC_NUM_INT) {
            g->kind = PC_PLIB_FMT_INT;
            g->i = v->u.i;
        } else if (v->kind == PC_NUMBER) {
            size_t tl;
            const char *t = pc__ext_num_text(ctx, v, &tl);
            if (!t) return pc_builtin_oom(ctx);
            if (v->u.f.text && digits_only(t, tl)) {
                g->kind = PC_PLIB_FMT_BIGINT;
                g->s = t;
                g->len = tl;
            } else if (isinf(v->u.f.d) || isnan(v->u.f.d)) {
                g->kind = PC_PLIB_FMT_STR;
                g->s = t;
                g->len = tl;
            } else {
                g->kind = PC_PLIB_FMT_FLOAT;
                g->f = v->u.f.d;
            }
        } else {
            pc_str s = {0};
            pc_value_to_rego(&s, v);
            g->kind = PC_PLIB_FMT_STR;
            g->s = s.p ? pc_arena_strndup(A, s.p, s.len) : "";
            g->len = s.len;
            pc_str_free(&s);
            if (!g->s) return pc_builtin_oom(ctx);
        }
    }
    /* short results never touch the heap */
    char stack[512];
    size_t ol;
    char *o = pc_plib_sprintf_buf(stack, sizeof(stack), f, fl, args, arr->len, &ol);
    if (!o) return pc_builtin_oom(ctx);
    const pc_value *r = pc_value_string(A, o, ol);
    if (o != stack) free(o);
    return pc__ext_ret(ctx, out, r);
}

/* ---- units ---------------------------------------------------------------- */

static bool units_common(EXT_ARGS, bool bytes)
{
    (void)n;
    const char *s;
    size_t sl;
    if (!pc_arg_string(ctx, a, 0, &s, &sl)) return false;
    char err[256];
    char *r = bytes ? pc_plib_units_parse_bytes(s, sl, err, sizeof(err))
                    : pc_plib_units_parse(s, sl, err, sizeof(err));
    if (!r) return pc__ext_err(ctx, err);
    const pc_value *v = pc_value_number_text(A, r, strlen(r));
    free(r);
    return pc__ext_ret(ctx, out, v);
}

static bool u_parse(EXT_ARGS)
{
    return units_common(ctx, a, n, out, false);
}

static bool u_parse_bytes(EXT_ARGS)
{
    return units_common(ctx, a, n, out, true);
}

/* ---- encodings ------------------------------------------------------------- */

#define STR_ARG0(s, sl)                                                                            \
    const char *s;                                                                                 \
    size_t sl;                                                                                     \
    (void)n;                                                                                       \
    if (!pc_arg_string(ctx, a, 0, &s, &sl)) return false

static bool e_b64_encode(EXT_ARGS)
{
    STR_ARG0(s, sl);
    size_t ol;
    char *o = pc_plib_base64_encode(PC_PLIB_B64_STD, s, sl, &ol);
    return pc__ext_ret_str(ctx, out, o, ol);
}

static bool e_b64_decode(EXT_ARGS)
{
    STR_ARG0(s, sl);
    size_t ol;
    char err[128];
    char *o = pc_plib_base64_decode(PC_PLIB_B64_STD, s, sl, &ol, err, sizeof(err));
    if (!o) return pc__ext_err(ctx, err);
    return pc__ext_ret_str(ctx, out, o, ol);
}

static bool e_b64_is_valid(EXT_ARGS)
{
    (void)n;
    if (a[0]->kind != PC_STRING) return pc__ext_ret(ctx, out, pc_value_bool(false));
    size_t ol;
    char *o = pc_plib_base64_decode(PC_PLIB_B64_STD, a[0]->u.s, a[0]->len, &ol, NULL, 0);
    free(o);
    return pc__ext_ret(ctx, out, pc_value_bool(o != NULL));
}

static bool e_b64url_encode(EXT_ARGS)
{
    STR_ARG0(s, sl);
    size_t ol;
    char *o = pc_plib_base64_encode(PC_PLIB_B64_URL, s, sl, &ol);
    return pc__ext_ret_str(ctx, out, o, ol);
}

static bool e_b64url_encode_no_pad(EXT_ARGS)
{
    STR_ARG0(s, sl);
    size_t ol;
    char *o = pc_plib_base64_encode(PC_PLIB_B64_RAW_URL, s, sl, &ol);
    return pc__ext_ret_str(ctx, out, o, ol);
}

static bool e_b64url_decode(EXT_ARGS)
{
    STR_ARG0(s, sl);
    size_t ol;
    char err[300];
    char *o = pc_plib_base64url_decode_lenient(s, sl, &ol, err, sizeof(err));
    if (!o) return pc__ext_err(ctx, err);
    return pc__ext_ret_str(ctx, out, o, ol);
}

static bool e_hex_encode(EXT_ARGS)
{
    STR_ARG0(s, sl);
    size_t ol;
    char *o = pc_plib_hex_encode(s, sl, &ol);
    return pc__ext_ret_str(ctx, out, o, ol);
}

static bool e_hex_decode(EXT_ARGS)
{
    STR_ARG0(s, sl);
    size_t ol;
    char err[128];
    char *o = pc_plib_hex_decode(s, sl, &ol, err, sizeof(err));
    if (!o) return pc__ext_err(ctx, err);
    return pc__ext_ret_str(ctx, out, o, ol);
}

static bool e_query_encode(EXT_ARGS)
{
    STR_ARG0(s, sl);
    size_t ol;
    char *o = pc_plib_query_escape(s, sl, &ol);
    return pc__ext_ret_str(ctx, out, o, ol);
}

static bool e_query_decode(EXT_ARGS)
{
    STR_ARG0(s, sl);
    size_t ol;
    char err[128];
    char *o = pc_plib_query_unescape(s, sl, &ol, err, sizeof(err));
    if (!o) return pc__ext_err(ctx, err);
    return pc__ext_ret_str(ctx, out, o, ol);
}

typedef struct {
    const char *k;
    size_t kn;
    const char *v;
    size_t vn;
} qpair_t;

static int qpair_cmp(const void *x, const void *y)
{
    const qpair_t *p = x, *q = y;
    size_t m = p->kn < q->kn ? p->kn : q->kn;
    int c = memcmp(p->k, q->k, m);
    if (c) return c;
    return p->kn < q->kn ? -1 : p->kn > q->kn;
}

static bool e_query_encode_object(EXT_ARGS)
{
    (void)n;
    const pc_value *o = a[0];
    if (o->kind != PC_OBJECT) return pc_builtin_type_error(ctx, 1, "object", o);
    size_t cap = 0;
    for (uint32_t i = 0; i < o->len; i++) {
        const pc_value *v = o->u.kvs[i].val;
        cap += v->kind == PC_STRING ? 1 : v->len;
    }
    qpair_t *ps = pc_arena_alloc(A, sizeof(qpair_t) * (cap ? cap : 1));
    if (!ps) return pc_builtin_oom(ctx);
    size_t np = 0;
    for (uint32_t i = 0; i < o->len; i++) {
        const pc_value *k = o->u.kvs[i].key, *v = o->u.kvs[i].val;
        if (k->kind != PC_STRING)
            return pc_builtin_type_error(ctx, 1, "object", o); /* ast.JSON would fail */
        if (v->kind == PC_STRING) {
            ps[np++] = (qpair_t){k->u.s, k->len, v->u.s, v->len};
        } else if (v->kind == PC_ARRAY || v->kind == PC_SET) {
            for (uint32_t j = 0; j < v->len; j++) {
                if (v->u.items[j]->kind != PC_STRING)
                    return pc_builtin_type_errorf(
                        ctx, "operand 1 values must be string, array[string], or set[string]");
                ps[np++] = (qpair_t){k->u.s, k->len, v->u.items[j]->u.s, v->u.items[j]->len};
            }
        } else {
            return pc_builtin_type_errorf(
                ctx, "operand 1 values must be string, array[string], or set[string]");
        }
    }
    /* url.Values.Encode: keys sorted, values in insertion order (stable sort) */
    for (size_t i = 1; i < np; i++)
        for (size_t j = i; j > 0 && qpair_cmp(&ps[j - 1], &ps[j]) > 0; j--) {
            qpair_t t = ps[j];
            ps[j] = ps[j - 1];
            ps[j - 1] = t;
        }
    pc__sbuf_t b = {0};
    for (size_t i = 0; i < np; i++) {
        size_t l1, l2;
        char *ek = pc_plib_query_escape(ps[i].k, ps[i].kn, &l1);
        char *ev = pc_plib_query_escape(ps[i].v, ps[i].vn, &l2);
        if (i) pc__sbuf_addc(&b, '&');
        if (ek) pc__sbuf_add(&b, ek, l1);
        pc__sbuf_addc(&b, '=');
        if (ev) pc__sbuf_add(&b, ev, l2);
        if (!ek || !ev) b.oom = true;
        free(ek);
        free(ev);
    }
    size_t ol;
    char *r = pc__sbuf_take(&b, &ol);
    return pc__ext_ret_str(ctx, out, r, ol);
}

typedef struct {
    pc_eval_ctx *ctx;
    qpair_t *ps;
    size_t n, cap;
    bool oom;
} qcollect_t;

static void q_collect(void *ud, const char *k, size_t kn, const char *v, size_t vn)
{
    qcollect_t *c = ud;
    if (c->oom) return;
    if (c->n == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 16;
        qpair_t *p = pc_arena_alloc(pc_builtin_arena(c->ctx), sizeof(qpair_t) * cap);
        if (!p) {
            c->oom = true;
            return;
        }
        if (c->n) memcpy(p, c->ps, sizeof(qpair_t) * c->n);
        c->ps = p;
        c->cap = cap;
    }
    char *kk = pc_arena_strndup(pc_builtin_arena(c->ctx), k, kn);
    char *vv = pc_arena_strndup(pc_builtin_arena(c->ctx), v, vn);
    if (!kk || !vv) {
        c->oom = true;
        return;
    }
    c->ps[c->n++] = (qpair_t){kk, kn, vv, vn};
}

static bool e_query_decode_object(EXT_ARGS)
{
    STR_ARG0(s, sl);
    qcollect_t c = {.ctx = ctx};
    char err[128];
    if (!pc_plib_parse_query(s, sl, q_collect, &c, err, sizeof(err))) return pc__ext_err(ctx, err);
    if (c.oom) return pc_builtin_oom(ctx);
    /* group values by key, keeping their order */
    pc_obuf ob;
    pc_obuf_init(&ob, A);
    bool *used = pc_arena_alloc(A, c.n ? c.n : 1);
    if (!used) return pc_builtin_oom(ctx);
    memset(used, 0, c.n ? c.n : 1);
    for (size_t i = 0; i < c.n; i++) {
        if (used[i]) continue;
        pc_vbuf vb;
        pc_vbuf_init(&vb, A);
        for (size_t j = i; j < c.n; j++)
            if (!used[j] && c.ps[j].kn == c.ps[i].kn && memcmp(c.ps[j].k, c.ps[i].k, c.ps[i].kn) == 0) {
                used[j] = true;
                pc_vbuf_push(&vb, pc_value_string(A, c.ps[j].v, c.ps[j].vn));
            }
        pc_obuf_put(&ob, pc_value_string(A, c.ps[i].k, c.ps[i].kn), pc_vbuf_array(&vb));
    }
    return pc__ext_ret(ctx, out, pc_obuf_object(&ob));
}

/* ---- json ------------------------------------------------------------------- */

static bool j_marshal(EXT_ARGS)
{
    (void)n;
    pc_str s = {0};
    pc_value_to_json(&s, a[0]);
    const pc_value *v = pc_value_string(A, s.p ? s.p : "", s.len);
    pc_str_free(&s);
    return pc__ext_ret(ctx, out, v);
}

static bool j_unmarshal(EXT_ARGS)
{
    STR_ARG0(s, sl);
    char err[256] = "";
    const pc_value *v = pc_json_parse(A, s, sl, err, sizeof(err));
    if (!v) return pc_builtin_error(ctx, "%s", err[0] ? err : "invalid JSON");
    return pc__ext_ret(ctx, out, v);
}

static bool j_is_valid(EXT_ARGS)
{
    (void)n;
    if (a[0]->kind != PC_STRING) return pc__ext_ret(ctx, out, pc_value_bool(false));
    pc_arena *tmp = pc_arena_new(0);
    bool ok = pc_json_parse(tmp, a[0]->u.s, a[0]->len, NULL, 0) != NULL;
    pc_arena_free(tmp);
    return pc__ext_ret(ctx, out, pc_value_bool(ok));
}

/* Go's json.MarshalIndent layout: one member per line, prefix then indent per level */
static void json_pretty(pc_arena *ar, pc_str *o, const pc_value *v, const char *pre, size_t pl,
                        const char *ind, size_t il, int depth)
{
    bool obj = v->kind == PC_OBJECT;
    if ((v->kind != PC_ARRAY && v->kind != PC_SET && !obj) || v->len == 0) {
        pc_value_to_json(o, v);
        return;
    }
    pc_str_append(o, obj ? "{" : "[", 1);
    for (uint32_t i = 0; i < v->len; i++) {
        if (i) pc_str_append(o, ",", 1);
        pc_str_append(o, "\n", 1);
        pc_str_append(o, pre, pl);
        for (int d = 0; d <= depth; d++) pc_str_append(o, ind, il);
        if (obj) {
            const pc_value *k = v->u.kvs[i].key;
            if (k->kind == PC_STRING) {
                pc_value_to_json(o, k);
            } else {
                /* non-string keys become their JSON text, as a string */
                pc_str t = {0};
                pc_value_to_json(&t, k);
                const pc_value *ks = pc_value_string(ar, t.p ? t.p : "", t.len);
                pc_str_free(&t);
                if (ks) pc_value_to_json(o, ks);
            }
            pc_str_append(o, ": ", 2);
            json_pretty(ar, o, v->u.kvs[i].val, pre, pl, ind, il, depth + 1);
        } else {
            json_pretty(ar, o, v->u.items[i], pre, pl, ind, il, depth + 1);
        }
    }
    pc_str_append(o, "\n", 1);
    pc_str_append(o, pre, pl);
    for (int d = 0; d < depth; d++) pc_str_append(o, ind, il);
    pc_str_append(o, obj ? "}" : "]", 1);
}

static bool j_marshal_with_options(EXT_ARGS)
{
    (void)n;
    const pc_value *opts = a[1];
    if (opts->kind != PC_OBJECT) return pc_builtin_type_error(ctx, 2, "object", opts);
    const char *indent = "\t", *prefix = "";
    size_t il = 1, pl = 0;
    bool implicit = false, explicit_set = false, pretty = false;
    for (uint32_t i = 0; i < opts->len; i++) {
        const pc_value *k = opts->u.kvs[i].key, *v = opts->u.kvs[i].val;
        if (k->kind != PC_STRING)
            return pc_builtin_type_errorf(ctx, "operand 2 failed to stringify key");
        if (!strcmp(k->u.s, "prefix") || !strcmp(k->u.s, "indent")) {
            if (v->kind != PC_STRING)
                return pc_builtin_type_errorf(ctx, "operand 2 key \"%s\" failed cast to string", k->u.s);
            if (k->u.s[0] == 'p') {
                prefix = v->u.s;
                pl = v->len;
            } else {
                indent = v->u.s;
                il = v->len;
            }
            implicit = true;
        } else if (!strcmp(k->u.s, "pretty")) {
            if (v->kind != PC_BOOL) return pc_builtin_type_errorf(ctx, "operand 2 key \"%s\" failed cast to bool", k->u.s);
            explicit_set = true;
            pretty = v->u.b;
        } else {
            return pc_builtin_type_errorf(ctx, "operand 2 object contained unknown key \"%s\"", k->u.s);
        }
    }
    if (!explicit_set) pretty = implicit;
    pc_str s = {0};
    if (pretty) {
        pc_str_append(&s, prefix, pl);
        json_pretty(A, &s, a[0], prefix, pl, indent, il, 0);
    } else {
        pc_value_to_json(&s, a[0]);
    }
    const pc_value *r = pc_value_string(A, s.p ? s.p : "", s.len);
    pc_str_free(&s);
    return pc__ext_ret(ctx, out, r);
}

static bool y_marshal(EXT_ARGS)
{
    (void)n;
    pc_str s = {0};
    pc_value_to_json(&s, a[0]);
    char err[256];
    size_t ol;
    char *y = pc_plib_json_to_yaml(s.p ? s.p : "null", s.p ? s.len : 4, &ol, err, sizeof(err));
    pc_str_free(&s);
    if (!y) return pc_builtin_error(ctx, "%s", err);
    return pc__ext_ret_str(ctx, out, y, ol);
}

static bool y_unmarshal(EXT_ARGS)
{
    STR_ARG0(s, sl);
    char err[256];
    size_t jl;
    char *j = pc_plib_yaml_to_json(s, sl, &jl, err, sizeof(err));
    if (!j) return pc_builtin_error(ctx, "%s", err);
    char perr[256] = "";
    const pc_value *v = pc_json_parse(A, j, jl, perr, sizeof(perr));
    free(j);
    if (!v) return pc_builtin_error(ctx, "%s", perr[0] ? perr : "invalid YAML");
    return pc__ext_ret(ctx, out, v);
}

static bool y_is_valid(EXT_ARGS)
{
    (void)n;
    if (a[0]->kind != PC_STRING) return pc__ext_ret(ctx, out, pc_value_bool(false));
    size_t jl;
    char *j = pc_plib_yaml_to_json(a[0]->u.s, a[0]->len, &jl, NULL, 0);
    free(j);
    return pc__ext_ret(ctx, out, pc_value_bool(j != NULL));
}

static const pc_builtin STRINGS_TABLE[] = {
    {"strings.reverse", 1, s_reverse, 0},
    {"strings.count", 2, s_count, 0},
    {"strings.any_prefix_match", 2, s_any_prefix, 0},
    {"strings.any_suffix_match", 2, s_any_suffix, 0},
    {"strings.replace_n", 2, s_replace_n, 0},
    {"trim_left", 2, s_trim_left, 0},
    {"trim_right", 2, s_trim_right, 0},
    {"trim_prefix", 2, s_trim_prefix, 0},
    {"trim_suffix", 2, s_trim_suffix, 0},
    {"indexof_n", 2, s_indexof_n, 0},
    {"strings.split_n", 3, s_split_n, 0},
    {"format_int", 2, s_format_int, 0},
    {"sprintf", 2, s_sprintf, 0},
    {"units.parse", 1, u_parse, 0},
    {"units.parse_bytes", 1, u_parse_bytes, 0},
    {"base64.encode", 1, e_b64_encode, 0},
    {"base64.decode", 1, e_b64_decode, 0},
    {"base64.is_valid", 1, e_b64_is_valid, 0},
    {"base64url.encode", 1, e_b64url_encode, 0},
    {"base64url.encode_no_pad", 1, e_b64url_encode_no_pad, 0},
    {"base64url.decode", 1, e_b64url_decode, 0},
    {"hex.encode", 1, e_hex_encode, 0},
    {"hex.decode", 1, e_hex_decode, 0},
    {"urlquery.encode", 1, e_query_encode, 0},
    {"urlquery.decode", 1, e_query_decode, 0},
    {"urlquery.encode_object", 1, e_query_encode_object, 0},
    {"urlquery.decode_object", 1, e_query_decode_object, 0},
    {"json.marshal", 1, j_marshal, 0},
    {"json.unmarshal", 1, j_unmarshal, 0},
    {"json.is_valid", 1, j_is_valid, 0},
    {"json.marshal_with_options", 2, j_marshal_with_options, 0},
    {"yaml.marshal", 1, y_marshal, 0},
    {"yaml.unmarshal", 1, y_unmarshal, 0},
    {"yaml.is_valid", 1, y_is_valid, 0},
    {NULL, 0, NULL, 0},
};

void pc__builtins_ext_strings_register(void)
{
    pc_builtin_register_table(STRINGS_TABLE);
}

void pc__builtins_ext_register(void)
{
    pc__builtins_ext_strings_register();
    pc__builtins_ext_regex_register();
    pc__builtins_ext_time_register();
    pc__builtins_ext_net_register();
    pc__builtins_ext_crypto_register();
    pc__builtins_ext_misc_register();
    pc__builtins_ext_template_register();
    pc__builtins_ext_schema_register();
}
