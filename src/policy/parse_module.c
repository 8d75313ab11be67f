/*
 * rego.parse_module(filename, text): the module's syntax tree as a value, in
 * OPA's JSON layout (package, imports, rules with head and body; terms as
 * {"type": ..., "value": ...}). Variables the parser generates ($_0 for `_`)
 * keep their generated names.
 */
#include <stdio.h>
#include <string.h>

#include "policy/ast.h"
#include "policy/builtins.h"

typedef struct {
    pc_arena *a;
    bool oom;
} W;

static const pc_value *str(W *w, const char *s) { return pc_value_cstring(w->a, s ? s : ""); }

static const pc_value *typed(W *w, const char *type, const pc_value *value)
{
    pc_obuf ob;
    pc_obuf_init(&ob, w->a);
    pc_obuf_put_str(&ob, "type", str(w, type));
    if (value) pc_obuf_put_str(&ob, "value", value);
    const pc_value *r = pc_obuf_object(&ob);
    if (!r) w->oom = true;
    return r ? r : pc_value_null();
}

static const pc_value *body_value(W *w, const pc_body *b);

/* The tree lives in a scratch arena: everything returned is copied out. */
static const pc_value *copy_value(W *w, const pc_value *v)
{
    switch (v->kind) {
    case PC_STRING: return pc_value_string(w->a, v->u.s, v->len);
    case PC_NUMBER:
        if (v->num == PC_NUM_INT) return pc_value_int(w->a, v->u.i);
        if (v->u.f.text) return pc_value_number_text(w->a, v->u.f.text, strlen(v->u.f.text));
        return pc_value_float(w->a, v->u.f.d);
    case PC_ARRAY:
    case PC_SET: {
        pc_vbuf vb;
        pc_vbuf_init(&vb, w->a);
        for (uint32_t i = 0; i < v->len; i++) pc_vbuf_push(&vb, copy_value(w, v->u.items[i]));
        return v->kind == PC_ARRAY ? pc_vbuf_array(&vb) : pc_vbuf_set(&vb);
    }
    case PC_OBJECT: {
        pc_obuf ob;
        pc_obuf_init(&ob, w->a);
        for (uint32_t i = 0; i < v->len; i++)
            pc_obuf_put(&ob, copy_value(w, v->u.kvs[i].key), copy_value(w, v->u.kvs[i].val));
        return pc_obuf_object(&ob);
    }
    default: return v; /* null and booleans are static */
    }
}

static const pc_value *term_value(W *w, const pc_term *t)
{
    if (!t) return pc_value_null();
    pc_vbuf vb;
    pc_vbuf_init(&vb, w->a);
    switch (t->kind) {
    case T_VALUE: {
        const pc_value *v = t->value;
        switch (v->kind) {
        case PC_NULL: return typed(w, "null", NULL);
        case PC_BOOL: return typed(w, "boolean", v);
        case PC_NUMBER: return typed(w, "number", copy_value(w, v));
        case PC_STRING: return typed(w, "string", copy_value(w, v));
        default: {
            /* a folded composite literal: spell it out item by item */
            const char *type = v->kind == PC_ARRAY ? "array" : v->kind == PC_SET ? "set" : "object";
            for (uint32_t i = 0; i < v->len; i++) {
                pc_term it = {.kind = T_VALUE};
                if (v->kind == PC_OBJECT) {
                    pc_term k = {.kind = T_VALUE, .value = v->u.kvs[i].key};
                    it.value = v->u.kvs[i].val;
                    const pc_value *pair[2] = {term_value(w, &k), term_value(w, &it)};
                    pc_vbuf_push(&vb, pc_value_array(w->a, pair, 2));
                } else {
                    it.value = v->u.items[i];
                    pc_vbuf_push(&vb, term_value(w, &it));
                }
            }
            return typed(w, type, pc_vbuf_array(&vb));
        }
        }
    }
    case T_VAR: return typed(w, "var", str(w, t->name));
    case T_REF:
        for (uint32_t i = 0; i < t->n; i++) pc_vbuf_push(&vb, term_value(w, t->items[i]));
        return typed(w, "ref", pc_vbuf_array(&vb));
    case T_ARRAY:
    case T_SET:
        for (uint32_t i = 0; i < t->n; i++) pc_vbuf_push(&vb, term_value(w, t->items[i]));
        return typed(w, t->kind == T_ARRAY ? "array" : "set", pc_vbuf_array(&vb));
    case T_OBJECT:
        for (uint32_t i = 0; i < t->n; i++) {
            const pc_value *pair[2] = {term_value(w, t->keys[i]), term_value(w, t->items[i])};
            pc_vbuf_push(&vb, pc_value_array(w->a, pair, 2));
        }
        return typed(w, "object", pc_vbuf_array(&vb));
    case T_ARRCOMP:
    case T_SETCOMP:
    case T_OBJCOMP: {
        pc_obuf ob;
        pc_obuf_init(&ob, w->a);
        if (t->kind == T_OBJCOMP) {
            pc_obuf_put_str(&ob, "key", term_value(w, t->khead));
            pc_obuf_put_str(&ob, "value", term_value(w, t->head));
        } else {
            pc_obuf_put_str(&ob, "term", term_value(w, t->head));
        }
        pc_obuf_put_str(&ob, "body", body_value(w, t->body));
        return typed(w,
                     t->kind == T_ARRCOMP   ? "arraycomprehension"
                     : t->kind == T_SETCOMP ? "setcomprehension"
                                            : "objectcomprehension",
                     pc_obuf_object(&ob));
    }
    case T_CALL: {
        if (t->head) {
            pc_vbuf_push(&vb, term_value(w, t->head));
        } else {
            /* operators and builtins by name: a ref of its dotted parts */
            pc_vbuf parts;
            pc_vbuf_init(&parts, w->a);
            const char *n = t->name ? t->name : "";
            const char *dot;
            bool first = true;
            while (1) {
                dot = strchr(n, '.');
                size_t l = dot ? (size_t)(dot - n) : strlen(n);
                const pc_value *seg = pc_value_string(w->a, n, l);
                pc_vbuf_push(&parts, typed(w, first ? "var" : "string", seg));
                first = false;
                if (!dot) break;
                n = dot + 1;
            }
            pc_vbuf_push(&vb, typed(w, "ref", pc_vbuf_array(&parts)));
        }
        for (uint32_t i = 0; i < t->n; i++) pc_vbuf_push(&vb, term_value(w, t->items[i]));
        return typed(w, "call", pc_vbuf_array(&vb));
    }
    }
    return pc_value_null();
}

static const pc_value *expr_value(W *w, const pc_expr *e, uint32_t index)
{
    pc_obuf ob;
    pc_obuf_init(&ob, w->a);
    pc_obuf_put_str(&ob, "index", pc_value_int(w->a, index));
    const pc_value *terms = NULL;
    pc_vbuf vb;
    pc_vbuf_init(&vb, w->a);
    switch (e->kind) {
    case E_TERM:
        if (e->a && e->a->kind == T_CALL) {
            /* a call expression: [operator, args...] */
            const pc_value *call = term_value(w, e->a);
            terms = pc_value_object_get_str(call, "value", 5);
        } else {
            terms = term_value(w, e->a);
        }
        break;
    case E_UNIFY:
    case E_ASSIGN: {
        pc_term op = {.kind = T_CALL, .name = e->kind == E_ASSIGN ? "assign" : "eq", .n = 2};
        pc_term *args[2] = {e->a, e->b};
        op.items = args;
        terms = pc_value_object_get_str(term_value(w, &op), "value", 5);
        break;
    }
    case E_SOME: {
        for (uint32_t i = 0; i < e->nvars; i++) pc_vbuf_push(&vb, term_value(w, e->vars[i]));
        terms = typed(w, "some", pc_vbuf_array(&vb));
        break;
    }
    case E_SOMEIN: {
        pc_term op = {.kind = T_CALL, .name = e->a ? "internal.member_3" : "internal.member_2"};
        pc_term *args[3];
        uint32_t n = 0;
        if (e->a) args[n++] = e->a;
        args[n++] = e->b;
        args[n++] = e->c;
        op.items = args;
        op.n = n;
        pc_vbuf_push(&vb, term_value(w, &op));
        terms = typed(w, "some", pc_vbuf_array(&vb));
        break;
    }
    case E_EVERY: {
        pc_obuf eo;
        pc_obuf_init(&eo, w->a);
        if (e->a) pc_obuf_put_str(&eo, "key", term_value(w, e->a));
        pc_obuf_put_str(&eo, "value", term_value(w, e->b));
        pc_obuf_put_str(&eo, "domain", term_value(w, e->c));
        pc_obuf_put_str(&eo, "body", body_value(w, e->body));
        terms = typed(w, "every", pc_obuf_object(&eo));
        break;
    }
    case E_NOT:
        pc_obuf_put_str(&ob, "negated", pc_value_bool(true));
        if (e->inner) {
            const pc_value *in = expr_value(w, e->inner, index);
            terms = pc_value_object_get_str(in, "terms", 5);
        } else {
            terms = typed(w, "body", body_value(w, e->body));
        }
        break;
    }
    pc_obuf_put_str(&ob, "terms", terms ? terms : pc_value_null());
    if (e->nwith) {
        pc_vbuf wv;
        pc_vbuf_init(&wv, w->a);
        for (uint32_t i = 0; i < e->nwith; i++) {
            pc_obuf wo;
            pc_obuf_init(&wo, w->a);
            pc_obuf_put_str(&wo, "target", term_value(w, e->withs[i].target));
            pc_obuf_put_str(&wo, "value", term_value(w, e->withs[i].value));
            pc_vbuf_push(&wv, pc_obuf_object(&wo));
        }
        pc_obuf_put_str(&ob, "with", pc_vbuf_array(&wv));
    }
    const pc_value *r = pc_obuf_object(&ob);
    if (!r) w->oom = true;
    return r ? r : pc_value_null();
}

static const pc_value *body_value(W *w, const pc_body *b)
{
    pc_vbuf vb;
    pc_vbuf_init(&vb, w->a);
    for (uint32_t i = 0; b && i < b->n; i++) pc_vbuf_push(&vb, expr_value(w, b->exprs[i], i));
    if (!b || b->n == 0) {
        /* an empty body is `true` */
        pc_term t = {.kind = T_VALUE, .value = pc_value_bool(true)};
        pc_expr e = {.kind = E_TERM, .a = &t};
        pc_vbuf_push(&vb, expr_value(w, &e, 0));
    }
    return pc_vbuf_array(&vb);
}

static const pc_value *rule_value(W *w, const pc_rule *r)
{
    pc_obuf head, rule;
    pc_obuf_init(&head, w->a);
    pc_obuf_init(&rule, w->a);
    pc_obuf_put_str(&head, "name", str(w, r->name));
    pc_vbuf ref;
    pc_vbuf_init(&ref, w->a);
    for (uint32_t i = 0; i < r->npath; i++) pc_vbuf_push(&ref, term_value(w, r->path[i]));
    pc_obuf_put_str(&head, "ref", pc_vbuf_array(&ref));
    if (r->nargs) {
        pc_vbuf args;
        pc_vbuf_init(&args, w->a);
        for (uint32_t i = 0; i < r->nargs; i++) pc_vbuf_push(&args, term_value(w, r->args[i]));
        pc_obuf_put_str(&head, "args", pc_vbuf_array(&args));
    }
    if (r->key) pc_obuf_put_str(&head, "key", term_value(w, r->key));
    if (r->value) {
        pc_obuf_put_str(&head, "value", term_value(w, r->value));
    } else if (r->kind != R_PSET) {
        pc_term t = {.kind = T_VALUE, .value = pc_value_bool(true)};
        pc_obuf_put_str(&head, "value", term_value(w, &t));
    }
    pc_obuf_put_str(&rule, "head", pc_obuf_object(&head));
    pc_obuf_put_str(&rule, "body", body_value(w, r->body));
    if (r->is_default) pc_obuf_put_str(&rule, "default", pc_value_bool(true));
    if (r->els) pc_obuf_put_str(&rule, "else", rule_value(w, r->els));
    if (r->annot) {
        const pc_value *an[1] = {copy_value(w, r->annot)};
        pc_obuf_put_str(&rule, "annotations", pc_value_array(w->a, an, 1));
    }
    const pc_value *v = pc_obuf_object(&rule);
    if (!v) w->oom = true;
    return v ? v : pc_value_null();
}

static bool b_parse_module(pc_eval_ctx *ctx, const pc_value *const *a, size_t n, const pc_value **out)
{
    (void)n;
    const char *file, *text;
    size_t fl, tl;
    if (!pc_arg_string(ctx, a, 0, &file, &fl) || !pc_arg_string(ctx, a, 1, &text, &tl)) return false;
    pc_arena *tmp = pc_arena_new(64u << 20);
    pc_policy_error err = {0};
    pc_intern *in = pc__intern_new(tmp);
    pc_module *m = in ? pc__parse_module(tmp, in, file, text, tl, false, &err) : NULL;
    if (!m) {
        pc_arena_free(tmp);
        return pc_builtin_error(ctx, "%s:%d: %s: %s", file, err.row, err.code[0] ? err.code : "rego_parse_error",
                                err.message[0] ? err.message : "out of memory");
    }
    W w = {.a = pc_builtin_arena(ctx)};
    pc_obuf mod, pkg;
    pc_obuf_init(&mod, w.a);
    pc_obuf_init(&pkg, w.a);
    pc_vbuf path;
    pc_vbuf_init(&path, w.a);
    for (uint32_t i = 0; i < m->pkg->n; i++) pc_vbuf_push(&path, term_value(&w, m->pkg->items[i]));
    pc_obuf_put_str(&pkg, "path", pc_vbuf_array(&path));
    pc_obuf_put_str(&mod, "package", pc_obuf_object(&pkg));
    if (m->nimports) {
        pc_vbuf imps;
        pc_vbuf_init(&imps, w.a);
        for (uint32_t i = 0; i < m->nimports; i++) {
            pc_obuf io;
            pc_obuf_init(&io, w.a);
            pc_obuf_put_str(&io, "path", term_value(&w, m->imports[i].path));
            if (m->imports[i].alias) pc_obuf_put_str(&io, "alias", str(&w, m->imports[i].alias));
            pc_vbuf_push(&imps, pc_obuf_object(&io));
        }
        pc_obuf_put_str(&mod, "imports", pc_vbuf_array(&imps));
    }
    pc_vbuf rules;
    pc_vbuf_init(&rules, w.a);
    for (uint32_t i = 0; i < m->nrules; i++) pc_vbuf_push(&rules, rule_value(&w, m->rules[i]));
    if (m->nrules) pc_obuf_put_str(&mod, "rules", pc_vbuf_array(&rules));
    const pc_value *r = pc_obuf_object(&mod);
    pc_arena_free(tmp);
    if (!r || w.oom) return pc_builtin_oom(ctx);
    *out = r;
    return true;
}

void pc__parse_module_register(void);
void pc__parse_module_register(void) { pc_builtin_register("rego.parse_module", 2, b_parse_module, 0); }
