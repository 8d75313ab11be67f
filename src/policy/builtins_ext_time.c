/* time.* built-ins over the Go time helpers (zones from the system tz database). */
#include "policy/builtins_ext.h"

#include "policy/lib/gotime.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define A pc_builtin_arena(ctx)

#define TZ_EXPECTED "either number (ns) or [number (ns), string (tz)]"

/* OPA's tzTime: a number of ns, or [ns, tz] / [ns, tz, layout]. The number
 * must be an exact int64 ("timestamp too big" otherwise). */
static bool tz_time(pc_eval_ctx *ctx, const pc_value *v, int64_t *ns, const pc_plib_tz_t **tz,
                    const char **layout, size_t *ll)
{
    const pc_value *num = v;
    *tz = pc_plib_tz_utc();
    if (layout) {
        *layout = NULL;
        *ll = 0;
    }
    if (v->kind == PC_ARRAY) {
        if (v->len == 0) return pc_builtin_type_error(ctx, 1, TZ_EXPECTED, v);
        num = v->u.items[0];
        if (num->kind != PC_NUMBER) return pc_builtin_type_error(ctx, 1, "number", num);
        if (v->len > 1) {
            const pc_value *z = v->u.items[1];
            if (z->kind != PC_STRING) return pc_builtin_type_error(ctx, 1, "string", z);
            char err[256];
            const pc_plib_tz_t *t = pc_plib_tz_load(z->u.s, z->len, err, sizeof(err));
            if (!t) return pc_builtin_error(ctx, "%s", err);
            *tz = t;
        }
        if (v->len > 2) {
            const pc_value *l = v->u.items[2];
            if (l->kind != PC_STRING) return pc_builtin_type_error(ctx, 1, "string", l);
            if (layout) {
                *layout = l->u.s;
                *ll = l->len;
            }
        }
    } else if (v->kind != PC_NUMBER) {
        return pc_builtin_type_error(ctx, 1, TZ_EXPECTED, v);
    }
    if (num->num == PC_NUM_INT) {
        *ns = num->u.i;
        return true;
    }
    double d = num->u.f.d;
    if (!(d >= -9223372036854775808.0 && d < 9223372036854775808.0) || d != floor(d))
        return pc_builtin_error(ctx, "timestamp too big");
    *ns = (int64_t)d;
    return true;
}

static bool t_parse_ns(EXT_ARGS)
{
    (void)n;
    const char *l, *v;
    size_t ll, vl;
    if (!pc_arg_string(ctx, a, 0, &l, &ll) || !pc_arg_string(ctx, a, 1, &v, &vl)) return false;
    const char *c = pc_plib_time_layout_const(l, ll);
    if (c) {
        l = c;
        ll = strlen(c);
    }
    char err[512];
    int64_t ns;
    if (!pc_plib_time_parse_ns(l, ll, v, vl, &ns, err, sizeof(err))) return pc__ext_err(ctx, err);
    return pc__ext_ret(ctx, out, pc_value_int(A, ns));
}

static bool t_parse_rfc3339_ns(EXT_ARGS)
{
    (void)n;
    const char *v;
    size_t vl;
    if (!pc_arg_string(ctx, a, 0, &v, &vl)) return false;
    const char *l = pc_plib_time_layout_const("RFC3339", 7);
    char err[512];
    int64_t ns;
    if (!pc_plib_time_parse_ns(l, strlen(l), v, vl, &ns, err, sizeof(err))) return pc__ext_err(ctx, err);
    return pc__ext_ret(ctx, out, pc_value_int(A, ns));
}

static bool t_parse_duration_ns(EXT_ARGS)
{
    (void)n;
    const char *v;
    size_t vl;
    if (!pc_arg_string(ctx, a, 0, &v, &vl)) return false;
    char err[512];
    int64_t d;
    if (!pc_plib_duration_parse(v, vl, &d, err, sizeof(err))) return pc__ext_err(ctx, err);
    return pc__ext_ret(ctx, out, pc_value_int(A, d));
}

static bool t_format(EXT_ARGS)
{
    (void)n;
    int64_t ns;
    const pc_plib_tz_t *tz;
    const char *l;
    size_t ll;
    if (!tz_time(ctx, a[0], &ns, &tz, &l, &ll)) return false;
    if (!l || ll == 0) {
        l = pc_plib_time_layout_const("RFC3339Nano", 11);
        ll = strlen(l);
    } else {
        const char *c = pc_plib_time_layout_const(l, ll);
        if (c) {
            l = c;
            ll = strlen(c);
        }
    }
    size_t ol;
    char *o = pc_plib_time_format(ns, tz, l, ll, &ol);
    return pc__ext_ret_str(ctx, out, o, ol);
}

/* [a, b, c] of a time's civil fields (time.date, time.clock). */
static bool civil_triple(EXT_ARGS, bool date)
{
    (void)n;
    int64_t ns;
    const pc_plib_tz_t *tz;
    if (!tz_time(ctx, a[0], &ns, &tz, NULL, NULL)) return false;
    pc_plib_civil_t c;
    pc_plib_time_civil(ns, tz, &c);
    const pc_value *items[3] = {pc_value_int(A, date ? c.year : c.hour),
                                pc_value_int(A, date ? c.month : c.min),
                                pc_value_int(A, date ? c.day : c.sec)};
    if (!items[0] || !items[1] || !items[2]) return pc_builtin_oom(ctx);
    return pc__ext_ret(ctx, out, pc_value_array(A, items, 3));
}

static bool t_date(EXT_ARGS)
{
    return civil_triple(ctx, a, n, out, true);
}

static bool t_clock(EXT_ARGS)
{
    return civil_triple(ctx, a, n, out, false);
}

static bool t_weekday(EXT_ARGS)
{
    (void)n;
    int64_t ns;
    const pc_plib_tz_t *tz;
    if (!tz_time(ctx, a[0], &ns, &tz, NULL, NULL)) return false;
    pc_plib_civil_t c;
    pc_plib_time_civil(ns, tz, &c);
    return pc__ext_ret(ctx, out, pc_value_cstring(A, pc_plib_weekday_name(c.wday)));
}

static bool t_add_date(EXT_ARGS)
{
    (void)n;
    int64_t ns, y, m, d, r;
    const pc_plib_tz_t *tz;
    if (!tz_time(ctx, a[0], &ns, &tz, NULL, NULL)) return false;
    if (!pc_arg_int(ctx, a, 1, &y) || !pc_arg_int(ctx, a, 2, &m) || !pc_arg_int(ctx, a, 3, &d))
        return false;
    char err[128];
    if (!pc_plib_time_add_date(ns, tz, y, m, d, &r, err, sizeof(err))) return pc__ext_err(ctx, err);
    return pc__ext_ret(ctx, out, pc_value_int(A, r));
}

static bool t_diff(EXT_ARGS)
{
    (void)n;
    int64_t n1, n2, d[6];
    const pc_plib_tz_t *z1, *z2;
    if (!tz_time(ctx, a[0], &n1, &z1, NULL, NULL) || !tz_time(ctx, a[1], &n2, &z2, NULL, NULL))
        return false;
    pc_plib_time_diff(n1, z1, n2, z2, d);
    const pc_value *items[6];
    for (int i = 0; i < 6; i++)
        if (!(items[i] = pc_value_int(A, d[i]))) return pc_builtin_oom(ctx);
    return pc__ext_ret(ctx, out, pc_value_array(A, items, 6));
}

static const pc_builtin TIME_TABLE[] = {
    {"time.parse_ns", 2, t_parse_ns, 0},
    {"time.parse_rfc3339_ns", 1, t_parse_rfc3339_ns, 0},
    {"time.parse_duration_ns", 1, t_parse_duration_ns, 0},
    {"time.format", 1, t_format, 0},
    {"time.date", 1, t_date, 0},
    {"time.clock", 1, t_clock, 0},
    {"time.weekday", 1, t_weekday, 0},
    {"time.add_date", 4, t_add_date, 0},
    {"time.diff", 2, t_diff, 0},
    {NULL, 0, NULL, 0},
};

void pc__builtins_ext_time_register(void)
{
    pc_builtin_register_table(TIME_TABLE);
}
