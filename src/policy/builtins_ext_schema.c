/*
 * json.match_schema / json.verify_schema: a JSON Schema (draft 4-7) validator
 * over Rego values with gojsonschema's error shapes and texts — type, enum,
 * const, numeric and string bounds, pattern (Go regexp), items,
 * additionalItems, properties, patternProperties, additionalProperties,
 * required, dependencies, property counts, uniqueItems, allOf / anyOf /
 * oneOf / not, and local $ref ("#/definitions/x", "#/$defs/x", "#").
 */
#include "policy/builtins_ext.h"

#include "policy/lib/gofmt.h"
#include "policy/lib/regex.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define A pc_builtin_arena(ctx)
#define MAX_DEPTH 64

typedef struct {
    pc_eval_ctx *ctx;
    const pc_value *root; /* the schema document, for $ref */
    pc_vbuf *errors;      /* NULL: only count */
    size_t nerr;
    int depth;
    bool oom;
} sv_t;

static const char *TYPES[] = {"array", "boolean", "integer", "number", "null", "object", "string", NULL};

static const pc_value *get(const pc_value *o, const char *k)
{
    return o && o->kind == PC_OBJECT ? pc_value_object_get_str(o, k, strlen(k)) : NULL;
}

static bool is_integer(const pc_value *v)
{
    return v->kind == PC_NUMBER && pc_value_is_integral(v);
}

static const char *json_type(const pc_value *v)
{
    switch (v->kind) {
    case PC_NULL: return "null";
    case PC_BOOL: return "boolean";
    case PC_NUMBER: return is_integer(v) ? "integer" : "number";
    case PC_STRING: return "string";
    case PC_ARRAY:
    case PC_SET: return "array";
    default: return "object";
    }
}

static void add_error(sv_t *s, const char *field, const char *type, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void add_error(sv_t *s, const char *field, const char *type, const char *fmt, ...)
{
    s->nerr++;
    if (!s->errors) return;
    char desc[512], err[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(desc, sizeof(desc), fmt, ap);
    va_end(ap);
    snprintf(err, sizeof(err), "%s: %s", field, desc);
    pc_arena *ar = pc_builtin_arena(s->ctx);
    pc_obuf ob;
    pc_obuf_init(&ob, ar);
    pc_obuf_put_str(&ob, "desc", pc_value_cstring(ar, desc));
    pc_obuf_put_str(&ob, "error", pc_value_cstring(ar, err));
    pc_obuf_put_str(&ob, "field", pc_value_cstring(ar, field));
    pc_obuf_put_str(&ob, "type", pc_value_cstring(ar, type));
    const pc_value *o = pc_obuf_object(&ob);
    if (!o) s->oom = true;
    pc_vbuf_push(s->errors, o);
}

static void child_field(char *out, size_t cap, const char *field, const char *key, size_t kl)
{
    if (!strcmp(field, "(root)"))
        snprintf(out, cap, "%.*s", (int)kl, key);
    else
        snprintf(out, cap, "%s.%.*s", field, (int)kl, key);
}

static void text_of(pc_str *o, const pc_value *v)
{
    pc_value_to_json(o, v);
}

static const pc_value *resolve_ref(sv_t *s, const pc_value *schema)
{
    for (int hops = 0; hops < 16; hops++) {
        const pc_value *ref = get(schema, "$ref");
        if (!ref || ref->kind != PC_STRING) return schema;
        const char *r = ref->u.s;
        if (r[0] != '#') return NULL;
        const pc_value *cur = s->root;
        const char *p = r + 1;
        while (*p == '/') {
            p++;
            const char *e = strchr(p, '/');
            size_t l = e ? (size_t)(e - p) : strlen(p);
            char key[256];
            size_t k = 0;
            for (size_t i = 0; i < l && k + 1 < sizeof(key); i++) {
                if (p[i] == '~' && i + 1 < l && (p[i + 1] == '0' || p[i + 1] == '1')) {
                    key[k++] = p[i + 1] == '0' ? '~' : '/';
                    i++;
                } else {
                    key[k++] = p[i];
                }
            }
            key[k] = '\0';
            cur = get(cur, key);
            if (!cur) return NULL;
            p += l;
        }
        schema = cur;
    }
    return NULL;
}

static void validate(sv_t *s, const pc_value *schema, const pc_value *v, const char *field);

/* a sub-validation that only reports whether v passes */
static bool passes(sv_t *s, const pc_value *schema, const pc_value *v, const char *field)
{
    sv_t sub = {.ctx = s->ctx, .root = s->root, .errors = NULL, .depth = s->depth};
    validate(&sub, schema, v, field);
    return sub.nerr == 0;
}

static bool type_matches(const char *t, const pc_value *v)
{
    const char *jt = json_type(v);
    if (!strcmp(t, jt)) return true;
    return !strcmp(t, "number") && !strcmp(jt, "integer");
}

static void validate(sv_t *s, const pc_value *schema, const pc_value *v, const char *field)
{
    if (++s->depth > MAX_DEPTH) {
        add_error(s, field, "internal", "schema nested too deeply");
        s->depth--;
        return;
    }
    if (schema->kind == PC_BOOL) {
        if (!schema->u.b) add_error(s, field, "false", "False always fails validation");
        s->depth--;
        return;
    }
    schema = resolve_ref(s, schema);
    if (!schema || schema->kind != PC_OBJECT) {
        s->depth--;
        return;
    }
    pc_str t = {0};
    const pc_value *kw;
    if ((kw = get(schema, "type"))) {
        bool ok = false;
        if (kw->kind == PC_STRING) ok = type_matches(kw->u.s, v);
        else if (kw->kind == PC_ARRAY)
            for (uint32_t i = 0; i < kw->len && !ok; i++)
                ok = kw->u.items[i]->kind == PC_STRING && type_matches(kw->u.items[i]->u.s, v);
        if (!ok) {
            pc_str exp = {0};
            if (kw->kind == PC_STRING) {
                pc_str_append(&exp, kw->u.s, kw->len);
            } else {
                for (uint32_t i = 0; i < kw->len; i++) {
                    if (i) pc_str_append(&exp, ",", 1);
                    if (kw->u.items[i]->kind == PC_STRING) pc_str_append(&exp, kw->u.items[i]->u.s, kw->u.items[i]->len);
                }
            }
            add_error(s, field, "invalid_type", "Invalid type. Expected: %.*s, given: %s", (int)exp.len,
                      exp.p ? exp.p : "", json_type(v));
            pc_str_free(&exp);
            s->depth--;
            return; /* gojsonschema stops at a type mismatch */
        }
    }
    if ((kw = get(schema, "enum")) && (kw->kind == PC_ARRAY)) {
        bool ok = false;
        for (uint32_t i = 0; i < kw->len && !ok; i++) ok = pc_value_equal(kw->u.items[i], v);
        if (!ok) {
            for (uint32_t i = 0; i < kw->len; i++) {
                if (i) pc_str_append(&t, ", ", 2);
                text_of(&t, kw->u.items[i]);
            }
            add_error(s, field, "enum", "must be one of the following: %.*s", (int)t.len, t.p ? t.p : "");
            t.len = 0;
        }
    }
    if ((kw = get(schema, "const")) && !pc_value_equal(kw, v)) {
        text_of(&t, kw);
        add_error(s, field, "const", "does not match: %.*s", (int)t.len, t.p ? t.p : "");
        t.len = 0;
    }
    if (v->kind == PC_NUMBER) {
        double d = pc_value_get_double(v);
        char buf[64];
        if ((kw = get(schema, "multipleOf")) && kw->kind == PC_NUMBER && pc_value_get_double(kw) > 0) {
            double q = d / pc_value_get_double(kw);
            if (fabs(q - round(q)) > 1e-9) {
                pc_plib_fmt_float_shortest(pc_value_get_double(kw), 'v', buf, sizeof(buf));
                add_error(s, field, "multiple_of", "Must be a multiple of %s", buf);
            }
        }
        const pc_value *xmin = get(schema, "exclusiveMinimum"), *xmax = get(schema, "exclusiveMaximum");
        if ((kw = get(schema, "minimum")) && kw->kind == PC_NUMBER) {
            bool excl = xmin && xmin->kind == PC_BOOL && xmin->u.b; /* draft 4 */
            pc_plib_fmt_float_shortest(pc_value_get_double(kw), 'v', buf, sizeof(buf));
            if (excl ? !(d > pc_value_get_double(kw)) : !(d >= pc_value_get_double(kw)))
                add_error(s, field, excl ? "number_gt" : "number_gte", "Must be greater than %s%s",
                          excl ? "" : "or equal to ", buf);
        }
        if ((kw = get(schema, "maximum")) && kw->kind == PC_NUMBER) {
            bool excl = xmax && xmax->kind == PC_BOOL && xmax->u.b;
            pc_plib_fmt_float_shortest(pc_value_get_double(kw), 'v', buf, sizeof(buf));
            if (excl ? !(d < pc_value_get_double(kw)) : !(d <= pc_value_get_double(kw)))
                add_error(s, field, excl ? "number_lt" : "number_lte", "Must be less than %s%s",
                          excl ? "" : "or equal to ", buf);
        }
        if (xmin && xmin->kind == PC_NUMBER && !(d > pc_value_get_double(xmin))) {
            pc_plib_fmt_float_shortest(pc_value_get_double(xmin), 'v', buf, sizeof(buf));
            add_error(s, field, "number_gt", "Must be greater than %s", buf);
        }
        if (xmax && xmax->kind == PC_NUMBER && !(d < pc_value_get_double(xmax))) {
            pc_plib_fmt_float_shortest(pc_value_get_double(xmax), 'v', buf, sizeof(buf));
            add_error(s, field, "number_lt", "Must be less than %s", buf);
        }
    }
    if (v->kind == PC_STRING) {
        /* lengths count runes */
        int64_t runes = 0;
        for (uint32_t i = 0; i < v->len; i++) runes += ((unsigned char)v->u.s[i] & 0xC0) != 0x80;
        int64_t lim;
        if ((kw = get(schema, "minLength")) && pc_value_get_int(kw, &lim) && runes < lim)
            add_error(s, field, "string_gte", "String length must be greater than or equal to %lld", (long long)lim);
        if ((kw = get(schema, "maxLength")) && pc_value_get_int(kw, &lim) && runes > lim)
            add_error(s, field, "string_lte", "String length must be less than or equal to %lld", (long long)lim);
        if ((kw = get(schema, "pattern")) && kw->kind == PC_STRING) {
            pc_plib_re_t *re = pc_plib_re_get(kw->u.s, kw->len, NULL, 0);
            if (re && pc_plib_re_match(re, v->u.s, v->len) == 0)
                add_error(s, field, "pattern", "Does not match pattern '%s'", kw->u.s);
            pc_plib_re_release(re);
        }
    }
    if (v->kind == PC_ARRAY || v->kind == PC_SET) {
        int64_t lim;
        if ((kw = get(schema, "minItems")) && pc_value_get_int(kw, &lim) && (int64_t)v->len < lim)
            add_error(s, field, "array_min_items", "Array must have at least %lld items", (long long)lim);
        if ((kw = get(schema, "maxItems")) && pc_value_get_int(kw, &lim) && (int64_t)v->len > lim)
            add_error(s, field, "array_max_items", "Array must have at most %lld items", (long long)lim);
        if ((kw = get(schema, "uniqueItems")) && kw->kind == PC_BOOL && kw->u.b)
            for (uint32_t i = 0; i < v->len; i++)
                for (uint32_t j = i + 1; j < v->len; j++)
                    if (pc_value_equal(v->u.items[i], v->u.items[j]))
                        add_error(s, field, "unique", "array items[%u,%u] must be unique", i, j);
        const pc_value *items = get(schema, "items");
        char cf[512];
        for (uint32_t i = 0; items && i < v->len; i++) {
            char idx[16];
            int il = snprintf(idx, sizeof(idx), "%u", i);
            child_field(cf, sizeof(cf), field, idx, (size_t)il);
            if (items->kind == PC_ARRAY) {
                if (i < items->len) {
                    validate(s, items->u.items[i], v->u.items[i], cf);
                } else {
                    const pc_value *ai = get(schema, "additionalItems");
                    if (ai && ai->kind == PC_BOOL && !ai->u.b) {
                        add_error(s, field, "array_no_additional_items", "No additional items allowed on array");
                        break;
                    }
                    if (ai && ai->kind == PC_OBJECT) validate(s, ai, v->u.items[i], cf);
                }
            } else {
                validate(s, items, v->u.items[i], cf);
            }
        }
        if ((kw = get(schema, "contains"))) {
            bool any = false;
            for (uint32_t i = 0; i < v->len && !any; i++) any = passes(s, kw, v->u.items[i], field);
            if (!any) add_error(s, field, "contains", "At least one of the items must match");
        }
    }
    if (v->kind == PC_OBJECT) {
        int64_t lim;
        if ((kw = get(schema, "required")) && kw->kind == PC_ARRAY)
            for (uint32_t i = 0; i < kw->len; i++) {
                const pc_value *k = kw->u.items[i];
                if (k->kind == PC_STRING && !pc_value_object_get(v, k))
                    add_error(s, field, "required", "%s is required", k->u.s);
            }
        if ((kw = get(schema, "minProperties")) && pc_value_get_int(kw, &lim) && (int64_t)v->len < lim)
            add_error(s, field, "array_min_properties", "Must have at least %lld properties", (long long)lim);
        if ((kw = get(schema, "maxProperties")) && pc_value_get_int(kw, &lim) && (int64_t)v->len > lim)
            add_error(s, field, "array_max_properties", "Must have at most %lld properties", (long long)lim);
        const pc_value *props = get(schema, "properties"), *pprops = get(schema, "patternProperties"),
                       *addl = get(schema, "additionalProperties");
        char cf[512];
        for (uint32_t i = 0; i < v->len; i++) {
            const pc_value *k = v->u.kvs[i].key, *val = v->u.kvs[i].val;
            if (k->kind != PC_STRING) continue;
            child_field(cf, sizeof(cf), field, k->u.s, k->len);
            bool matched = false;
            const pc_value *ps = props ? pc_value_object_get(props, k) : NULL;
            if (ps) {
                matched = true;
                validate(s, ps, val, cf);
            }
            for (uint32_t j = 0; pprops && pprops->kind == PC_OBJECT && j < pprops->len; j++) {
                const pc_value *pat = pprops->u.kvs[j].key;
                if (pat->kind != PC_STRING) continue;
                pc_plib_re_t *re = pc_plib_re_get(pat->u.s, pat->len, NULL, 0);
                if (re && pc_plib_re_match(re, k->u.s, k->len) == 1) {
                    matched = true;
                    validate(s, pprops->u.kvs[j].val, val, cf);
                }
                pc_plib_re_release(re);
            }
            if (!matched && addl) {
                if (addl->kind == PC_BOOL && !addl->u.b)
                    add_error(s, field, "additional_property_not_allowed", "Additional property %s is not allowed", k->u.s);
                else if (addl->kind == PC_OBJECT)
                    validate(s, addl, val, cf);
            }
        }
        if ((kw = get(schema, "dependencies")) && kw->kind == PC_OBJECT)
            for (uint32_t i = 0; i < kw->len; i++) {
                const pc_value *k = kw->u.kvs[i].key, *dep = kw->u.kvs[i].val;
                if (!pc_value_object_get(v, k)) continue;
                if (dep->kind == PC_ARRAY) {
                    for (uint32_t j = 0; j < dep->len; j++)
                        if (!pc_value_object_get(v, dep->u.items[j]) && dep->u.items[j]->kind == PC_STRING)
                            add_error(s, field, "missing_dependency", "Has a dependency on %s", dep->u.items[j]->u.s);
                } else {
                    validate(s, dep, v, field);
                }
            }
    }
    if ((kw = get(schema, "allOf")) && kw->kind == PC_ARRAY) {
        bool all = true;
        for (uint32_t i = 0; i < kw->len; i++) all &= passes(s, kw->u.items[i], v, field);
        if (!all) {
            for (uint32_t i = 0; i < kw->len; i++) validate(s, kw->u.items[i], v, field);
            add_error(s, field, "number_all_of", "Must validate all the schemas (allOf)");
        }
    }
    if ((kw = get(schema, "anyOf")) && kw->kind == PC_ARRAY) {
        bool any = false;
        for (uint32_t i = 0; i < kw->len && !any; i++) any = passes(s, kw->u.items[i], v, field);
        if (!any) add_error(s, field, "number_any_of", "Must validate at least one schema (anyOf)");
    }
    if ((kw = get(schema, "oneOf")) && kw->kind == PC_ARRAY) {
        int n = 0;
        for (uint32_t i = 0; i < kw->len; i++) n += passes(s, kw->u.items[i], v, field);
        if (n != 1) add_error(s, field, "number_one_of", "Must validate one and only one schema (oneOf)");
    }
    if ((kw = get(schema, "not")) && passes(s, kw, v, field))
        add_error(s, field, "number_not", "Must not validate the schema (not)");
    if ((kw = get(schema, "if"))) {
        const pc_value *branch = passes(s, kw, v, field) ? get(schema, "then") : get(schema, "else");
        if (branch) validate(s, branch, v, field);
    }
    pc_str_free(&t);
    s->depth--;
}

/* Checks the schema document itself: every "type" names a JSON type. */
static bool check_schema(const pc_value *sch, char *err, size_t errlen, int depth)
{
    if (depth > MAX_DEPTH || !sch) return true;
    if (sch->kind == PC_OBJECT) {
        for (uint32_t i = 0; i < sch->len; i++) {
            const pc_value *k = sch->u.kvs[i].key, *v = sch->u.kvs[i].val;
            if (k->kind == PC_STRING && !strcmp(k->u.s, "type")) {
                const pc_value *const *items = v->kind == PC_ARRAY ? v->u.items : &v;
                uint32_t n = v->kind == PC_ARRAY ? v->len : 1;
                for (uint32_t j = 0; j < n; j++) {
                    const pc_value *tv = items[j];
                    bool ok = false;
                    for (int t = 0; TYPES[t] && tv->kind == PC_STRING; t++) ok |= !strcmp(TYPES[t], tv->u.s);
                    if (!ok) {
                        pc_str s = {0};
                        if (tv->kind == PC_STRING)
                            pc_str_append(&s, tv->u.s, tv->len);
                        else
                            pc_value_to_json(&s, tv);
                        snprintf(err, errlen,
                                 "has a primitive type that is NOT VALID -- given: /%.*s/ Expected valid values "
                                 "are:[array boolean integer number null object string]",
                                 (int)s.len, s.p ? s.p : "");
                        pc_str_free(&s);
                        return false;
                    }
                }
                continue;
            }
            if (k->kind == PC_STRING && (!strcmp(k->u.s, "enum") || !strcmp(k->u.s, "const") ||
                                         !strcmp(k->u.s, "default") || !strcmp(k->u.s, "examples")))
                continue;
            if (!check_schema(v, err, errlen, depth + 1)) return false;
        }
    } else if (sch->kind == PC_ARRAY) {
        for (uint32_t i = 0; i < sch->len; i++)
            if (!check_schema(sch->u.items[i], err, errlen, depth + 1)) return false;
    }
    return true;
}

/* operand: an object, or a JSON string */
static bool doc_arg(pc_eval_ctx *ctx, const pc_value *v, int pos, const pc_value **out)
{
    if (v->kind == PC_STRING) {
        char err[256] = "";
        const pc_value *p = pc_json_parse(A, v->u.s, v->len, err, sizeof(err));
        if (!p) return pc_builtin_error(ctx, "%s", err[0] ? err : "invalid JSON");
        *out = p;
        return true;
    }
    if (v->kind != PC_OBJECT && v->kind != PC_BOOL)
        return pc_builtin_type_error(ctx, pos, "one of {string, object}", v);
    *out = v;
    return true;
}

static bool s_match_schema(EXT_ARGS)
{
    (void)n;
    const pc_value *doc, *sch;
    if (!doc_arg(ctx, a[0], 1, &doc) || !doc_arg(ctx, a[1], 2, &sch)) return false;
    char err[512];
    if (!check_schema(sch, err, sizeof(err), 0)) return pc_builtin_error(ctx, "%s", err);
    pc_vbuf errors;
    pc_vbuf_init(&errors, A);
    sv_t s = {.ctx = ctx, .root = sch, .errors = &errors};
    validate(&s, sch, doc, "(root)");
    if (s.oom || errors.oom) return pc_builtin_oom(ctx);
    const pc_value *items[2] = {pc_value_bool(s.nerr == 0), pc_vbuf_array(&errors)};
    if (!items[1]) return pc_builtin_oom(ctx);
    return pc__ext_ret(ctx, out, pc_value_array(A, items, 2));
}

static bool s_verify_schema(EXT_ARGS)
{
    (void)n;
    const pc_value *sch;
    if (a[0]->kind == PC_STRING) {
        char perr[256] = "";
        sch = pc_json_parse(A, a[0]->u.s, a[0]->len, perr, sizeof(perr));
        if (!sch) {
            const pc_value *items[2] = {pc_value_bool(false), pc_value_cstring(A, perr[0] ? perr : "invalid JSON")};
            return pc__ext_ret(ctx, out, pc_value_array(A, items, 2));
        }
    } else if (a[0]->kind == PC_OBJECT || a[0]->kind == PC_BOOL) {
        sch = a[0];
    } else {
        return pc_builtin_type_error(ctx, 1, "one of {string, object}", a[0]);
    }
    char err[512], msg[600];
    bool ok = check_schema(sch, err, sizeof(err), 0);
    if (!ok) snprintf(msg, sizeof(msg), "jsonschema: %s", err);
    const pc_value *items[2] = {pc_value_bool(ok), ok ? pc_value_null() : pc_value_cstring(A, msg)};
    return pc__ext_ret(ctx, out, pc_value_array(A, items, 2));
}

static const pc_builtin SCHEMA_TABLE[] = {
    {"json.match_schema", 2, s_match_schema, 0},
    {"json.verify_schema", 1, s_verify_schema, 0},
    {NULL, 0, NULL, 0},
};

void pc__builtins_ext_schema_register(void)
{
    pc_builtin_register_table(SCHEMA_TABLE);
}
