/* regex.* and glob.* built-ins over the PCRE2-backed helpers. */
#include "policy/builtins_ext.h"

#include "policy/lib/regex.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define A pc_builtin_arena(ctx)

static pc_plib_re_t *compile_arg(pc_eval_ctx *ctx, const char *p, size_t n)
{
    char err[512];
    pc_plib_re_t *re = pc_plib_re_get(p, n, err, sizeof(err));
    if (!re) pc__ext_err(ctx, err);
    return re;
}

static bool r_match(EXT_ARGS)
{
    (void)n;
    const char *p, *s;
    size_t pl, sl;
    if (!pc_arg_string(ctx, a, 0, &p, &pl) || !pc_arg_string(ctx, a, 1, &s, &sl)) return false;
    pc_plib_re_t *re = compile_arg(ctx, p, pl);
    if (!re) return false;
    int rc = pc_plib_re_match(re, s, sl);
    pc_plib_re_release(re);
    if (rc < 0) return pc_builtin_error(ctx, "regular expression match failed");
    return pc__ext_ret(ctx, out, pc_value_bool(rc == 1));
}

static bool r_is_valid(EXT_ARGS)
{
    (void)n;
    if (a[0]->kind != PC_STRING) return pc__ext_ret(ctx, out, pc_value_bool(false));
    return pc__ext_ret(ctx, out, pc_value_bool(pc_plib_re_is_valid(a[0]->u.s, a[0]->len)));
}

typedef struct {
    pc_eval_ctx *ctx;
    const char *s;
    pc_vbuf *vb;
    bool groups;
} find_t;

static bool on_match(void *ud, const size_t *ov, size_t npairs)
{
    find_t *f = ud;
    pc_arena *ar = pc_builtin_arena(f->ctx);
    if (!f->groups) {
        pc_vbuf_push(f->vb, pc_value_string(ar, f->s + ov[0], ov[1] - ov[0]));
        return !f->vb->oom;
    }
    pc_vbuf g;
    pc_vbuf_init(&g, ar);
    for (size_t k = 0; k < npairs; k++) {
        if (ov[2 * k] == PC_PLIB_RE_UNSET)
            pc_vbuf_push(&g, pc_value_empty_string());
        else
            pc_vbuf_push(&g, pc_value_string(ar, f->s + ov[2 * k], ov[2 * k + 1] - ov[2 * k]));
    }
    pc_vbuf_push(f->vb, pc_vbuf_array(&g));
    return !f->vb->oom;
}

static bool find_common(EXT_ARGS, bool groups)
{
    (void)n;
    const char *p, *s;
    size_t pl, sl;
    int64_t max;
    if (!pc_arg_string(ctx, a, 0, &p, &pl) || !pc_arg_string(ctx, a, 1, &s, &sl) ||
        !pc_arg_int(ctx, a, 2, &max))
        return false;
    pc_plib_re_t *re = compile_arg(ctx, p, pl);
    if (!re) return false;
    pc_vbuf vb;
    pc_vbuf_init(&vb, A);
    find_t f = {ctx, s, &vb, groups};
    long rc = pc_plib_re_find_all(re, s, sl, max < 0 ? -1 : (long)max, on_match, &f);
    pc_plib_re_release(re);
    if (vb.oom) return pc_builtin_oom(ctx);
    if (rc < 0) return pc_builtin_error(ctx, "regular expression match failed");
    return pc__ext_ret(ctx, out, pc_vbuf_array(&vb));
}

static bool r_find_n(EXT_ARGS)
{
    return find_common(ctx, a, n, out, false);
}

static bool r_find_all_submatch(EXT_ARGS)
{
    return find_common(ctx, a, n, out, true);
}

typedef struct {
    pc_eval_ctx *ctx;
    const char *s;
    pc_vbuf *vb;
} split_t;

static bool on_piece(void *ud, size_t st, size_t en)
{
    split_t *sp = ud;
    pc_vbuf_push(sp->vb, pc_value_string(pc_builtin_arena(sp->ctx), sp->s + st, en - st));
    return !sp->vb->oom;
}

static bool r_split(EXT_ARGS)
{
    (void)n;
    const char *p, *s;
    size_t pl, sl;
    if (!pc_arg_string(ctx, a, 0, &p, &pl) || !pc_arg_string(ctx, a, 1, &s, &sl)) return false;
    pc_plib_re_t *re = compile_arg(ctx, p, pl);
    if (!re) return false;
    pc_vbuf vb;
    pc_vbuf_init(&vb, A);
    split_t sp = {ctx, s, &vb};
    long rc = pc_plib_re_split(re, s, sl, on_piece, &sp);
    pc_plib_re_release(re);
    if (vb.oom) return pc_builtin_oom(ctx);
    if (rc < 0) return pc_builtin_error(ctx, "regular expression match failed");
    return pc__ext_ret(ctx, out, pc_vbuf_array(&vb));
}

static bool r_replace(EXT_ARGS)
{
    (void)n;
    const char *s, *p, *r;
    size_t sl, pl, rl;
    if (!pc_arg_string(ctx, a, 0, &s, &sl) || !pc_arg_string(ctx, a, 1, &p, &pl) ||
        !pc_arg_string(ctx, a, 2, &r, &rl))
        return false;
    pc_plib_re_t *re = compile_arg(ctx, p, pl);
    if (!re) return false;
    size_t ol;
    char *o = pc_plib_re_replace_all(re, s, sl, r, rl, &ol);
    pc_plib_re_release(re);
    return pc__ext_ret_str(ctx, out, o, ol);
}

static bool r_template_match(EXT_ARGS)
{
    (void)n;
    const char *t, *s, *ds, *de;
    size_t tl, sl, dsl, del;
    if (!pc_arg_string(ctx, a, 0, &t, &tl) || !pc_arg_string(ctx, a, 1, &s, &sl) ||
        !pc_arg_string(ctx, a, 2, &ds, &dsl) || !pc_arg_string(ctx, a, 3, &de, &del))
        return false;
    if (dsl != 1)
        return pc_builtin_error(ctx, "start delimiter has to be exactly one character long but is %zu long", dsl);
    if (del != 1)
        return pc_builtin_error(ctx, "end delimiter has to be exactly one character long but is %zu long", dsl);
    char err[512];
    int rc = pc_plib_re_template_match(t, tl, s, sl, ds[0], de[0], err, sizeof(err));
    if (rc < 0) return pc__ext_err(ctx, err);
    return pc__ext_ret(ctx, out, pc_value_bool(rc == 1));
}

static bool r_globs_match(EXT_ARGS)
{
    (void)n;
    const char *x, *y;
    size_t xl, yl;
    if (!pc_arg_string(ctx, a, 0, &x, &xl) || !pc_arg_string(ctx, a, 1, &y, &yl)) return false;
    char err[512];
    int rc = pc_plib_globs_intersect(x, xl, y, yl, err, sizeof(err));
    if (rc < 0) return pc__ext_err(ctx, err);
    return pc__ext_ret(ctx, out, pc_value_bool(rc == 1));
}

static bool g_match(EXT_ARGS)
{
    (void)n;
    const char *p, *s;
    size_t pl, sl;
    if (!pc_arg_string(ctx, a, 0, &p, &pl)) return false;
    const pc_value *d = a[1];
    uint32_t delims[64];
    size_t nd = 0;
    if (d->kind == PC_NULL) {
        nd = 0;
    } else if (d->kind == PC_ARRAY) {
        for (uint32_t i = 0; i < d->len; i++) {
            const pc_value *e = d->u.items[i];
            if (e->kind != PC_STRING)
                return pc_builtin_type_errorf(ctx, "operand 2 must be array of strings but got array containing %s",
                                              pc_value_type_name(e));
            if (e->len == 0 || nd >= 64) continue;
            /* each delimiter is one rune: its first */
            const unsigned char *u = (const unsigned char *)e->u.s;
            uint32_t r = u[0];
            if (u[0] >= 0xC0 && e->len >= 2) {
                int extra = u[0] >= 0xF0 ? 3 : u[0] >= 0xE0 ? 2 : 1;
                r = u[0] & (0x3F >> extra);
                for (int k = 1; k <= extra && (size_t)k < e->len; k++) r = r << 6 | (u[k] & 0x3F);
            }
            delims[nd++] = r;
        }
        if (d->len == 0) delims[nd++] = '.';
    } else {
        return pc_builtin_type_error(ctx, 2, "one of {array, null}", d);
    }
    if (!pc_arg_string(ctx, a, 2, &s, &sl)) return false;
    char err[256];
    int rc = pc_plib_glob_match(p, pl, delims, nd, s, sl, err, sizeof(err));
    if (rc < 0) return pc__ext_err(ctx, err);
    return pc__ext_ret(ctx, out, pc_value_bool(rc == 1));
}

static bool g_quote_meta(EXT_ARGS)
{
    (void)n;
    const char *s;
    size_t sl, ol;
    if (!pc_arg_string(ctx, a, 0, &s, &sl)) return false;
    char *o = pc_plib_glob_quote_meta(s, sl, &ol);
    return pc__ext_ret_str(ctx, out, o, ol);
}

static const pc_builtin REGEX_TABLE[] = {
    {"regex.match", 2, r_match, 0},
    {"re_match", 2, r_match, 0},
    {"regex.is_valid", 1, r_is_valid, 0},
    {"regex.find_n", 3, r_find_n, 0},
    {"regex.find_all_string_submatch_n", 3, r_find_all_submatch, 0},
    {"regex.split", 2, r_split, 0},
    {"regex.replace", 3, r_replace, 0},
    {"regex.template_match", 4, r_template_match, 0},
    {"regex.globs_match", 2, r_globs_match, 0},
    {"glob.match", 3, g_match, 0},
    {"glob.quote_meta", 1, g_quote_meta, 0},
    {NULL, 0, NULL, 0},
};

void pc__builtins_ext_regex_register(void)
{
    pc_builtin_register_table(REGEX_TABLE);
}
