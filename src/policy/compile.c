/* Rego compiler: modules -> rule tree with resolved variables and calls. */
#include <stdio.h>
#include <string.h>

#include "core/common.h"
#include "policy/ast.h"
#include "policy/internal.h"

static void set_err(pc_policy_error *err, const char *code, pc_loc loc, const char *fmt, ...)
    PC_PRINTF(4, 5);
void pc__set_errorv(pc_policy_error *err, const char *code, pc_loc loc, const char *fmt, va_list ap)
{
    snprintf(err->code, sizeof(err->code), "%s", code);
    vsnprintf(err->message, sizeof(err->message), fmt, ap);
    snprintf(err->file, sizeof(err->file), "%s", loc.file ? loc.file : "");
    err->row = loc.row;
    err->col = loc.col;
}

static void set_err(pc_policy_error *err, const char *code, pc_loc loc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    pc__set_errorv(err, code, loc, fmt, ap);
    va_end(ap);
}

/* ---- rule tree -------------------------------------------------------- */

pc_node *pc__node_child(const pc_node *n, const pc_value *key)
{
    size_t lo = 0, hi = n->nkids;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = pc_value_compare(n->kids[mid]->key, key);
        if (c == 0) return n->kids[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

static pc_node *node_get(pc_policy_set *ps, pc_node *n, const pc_value *key)
{
    pc_node *c = pc__node_child(n, key);
    if (c) return c;
    c = pc_arena_alloc(ps->arena, sizeof(*c));
    memset(c, 0, sizeof(*c));
    c->key = key;
    c->parent = n;
    c->depth = n->depth + 1;
    c->kind = -1;
    c->id = ps->nnodes++;
    c->path = pc_arena_alloc(ps->arena, c->depth * sizeof(*c->path));
    if (n->depth) memcpy(c->path, n->path, n->depth * sizeof(*c->path));
    c->path[c->depth - 1] = key;
    if (n->base && n->base->kind == PC_OBJECT) c->base = pc_value_object_get(n->base, key);
    pc_node **nk = pc_arena_alloc(ps->arena, (n->nkids + 1) * sizeof(*nk));
    size_t pos = 0;
    while (pos < n->nkids && pc_value_compare(n->kids[pos]->key, key) < 0) pos++;
    if (pos) memcpy(nk, n->kids, pos * sizeof(*nk));
    nk[pos] = c;
    if (n->nkids > pos) memcpy(nk + pos + 1, n->kids + pos, (n->nkids - pos) * sizeof(*nk));
    n->kids = nk;
    n->nkids++;
    return c;
}

/* ---- scopes ----------------------------------------------------------- */

typedef struct scope {
    struct scope *up;
    const char **names;
    int *slots;
    bool *explicit_; /* declared by := / some, not just used */
    size_t len, cap;
} scope;

typedef struct {
    pc_policy_set *ps;
    pc_module *mod;
    pc_rule *rule;
    int nslots;
    pc_policy_error *err;
    bool failed;
    pc_node *pkgnode;
    int rule_args_declared;
    pc_arena *arena; /* where new nodes go: the set's, or a query's own */
    pc_intern *in;
} C;

static void sc_add(C *c, scope *s, const char *name, int slot)
{
    if (s->len == s->cap) {
        size_t nc = s->cap ? s->cap * 2 : 8;
        const char **nn = pc_arena_alloc(c->arena, nc * sizeof(*nn));
        int *ns = pc_arena_alloc(c->arena, nc * sizeof(*ns));
        bool *ne = pc_arena_alloc(c->arena, nc * sizeof(*ne));
        if (s->len) {
            memcpy(nn, s->names, s->len * sizeof(*nn));
            memcpy(ns, s->slots, s->len * sizeof(*ns));
            memcpy(ne, s->explicit_, s->len * sizeof(*ne));
        }
        s->names = nn;
        s->slots = ns;
        s->explicit_ = ne;
        s->cap = nc;
    }
    s->names[s->len] = name;
    s->slots[s->len] = slot;
    s->explicit_[s->len] = false;
    s->len++;
}

static int sc_find(scope *s, const char *name, bool local_only)
{
    for (; s; s = local_only ? NULL : s->up)
        for (size_t i = s->len; i-- > 0;)
            if (strcmp(s->names[i], name) == 0) return s->slots[i];
    return -1;
}

static int new_slot(C *c) { return c->nslots++; }

/* Is name a rule of the current package? */
static bool is_pkg_rule(C *c, const char *name)
{
    if (!c->pkgnode) return false;
    pc_value k = {.kind = PC_STRING, .len = (uint32_t)strlen(name), .u.s = name};
    pc_node *n = pc__node_child(c->pkgnode, &k);
    return n && n->has_rules_below;
}

static const pc_import *find_import(C *c, const char *name)
{
    if (!c->mod) return NULL;
    for (uint32_t i = 0; i < c->mod->nimports; i++) {
        const pc_import *im = &c->mod->imports[i];
        const char *alias = im->alias;
        if (!alias) {
            pc_term *p = im->path;
            if (p->kind != T_REF) continue; /* `import data` / `import input` */
            pc_term *last = p->items[p->n - 1];
            if (last->kind != T_VALUE || last->value->kind != PC_STRING) continue;
            alias = last->value->u.s;
        }
        if (strcmp(alias, name) == 0) return im;
    }
    return NULL;
}

static pc_term *mk(C *c, pc_term_kind k, pc_loc loc)
{
    pc_term *t = pc_arena_alloc(c->arena, sizeof(*t));
    memset(t, 0, sizeof(*t));
    t->kind = (uint8_t)k;
    t->slot = -1;
    t->loc = loc;
    return t;
}

/* Builds the ref data.<pkg>.<name>. */
static pc_term *pkg_ref(C *c, const char *name, pc_loc loc)
{
    pc_term *pkg = c->mod->pkg;
    pc_term *r = mk(c, T_REF, loc);
    r->n = pkg->n + 1;
    r->items = pc_arena_alloc(c->arena, r->n * sizeof(pc_term *));
    pc_term *d = mk(c, T_VAR, loc);
    d->name = "data";
    d->vkind = V_DATA;
    r->items[0] = d;
    for (uint32_t i = 1; i < pkg->n; i++) r->items[i] = pkg->items[i];
    pc_term *k = mk(c, T_VALUE, loc);
    k->value = pc__intern(c->in, name, strlen(name));
    k->ground = true;
    r->items[pkg->n] = k;
    return r;
}

/* Replaces a var that names a rule/import by its ref; returns the term to use. */
static pc_term *resolve_global(C *c, pc_term *v)
{
    if (strcmp(v->name, "input") == 0) {
        v->vkind = V_INPUT;
        return v;
    }
    if (strcmp(v->name, "data") == 0) {
        v->vkind = V_DATA;
        return v;
    }
    const pc_import *im = find_import(c, v->name);
    if (im) {
        pc_term *p = im->path;
        if (p->kind == T_VAR) {
            pc_term *g = mk(c, T_VAR, v->loc);
            g->name = p->name;
            g->vkind = strcmp(p->name, "input") == 0 ? V_INPUT : V_DATA;
            return g;
        }
        pc_term *r = mk(c, T_REF, v->loc);
        r->n = p->n;
        r->items = pc_arena_alloc(c->arena, r->n * sizeof(pc_term *));
        memcpy(r->items, p->items, r->n * sizeof(pc_term *));
        pc_term *h = mk(c, T_VAR, v->loc);
        h->name = p->items[0]->name;
        h->vkind = strcmp(h->name, "input") == 0 ? V_INPUT : V_DATA;
        r->items[0] = h;
        return r;
    }
    if (is_pkg_rule(c, v->name)) return pkg_ref(c, v->name, v->loc);
    return NULL;
}

static void resolve_body(C *c, scope *s, pc_body *b);
static pc_term *resolve_term(C *c, scope *s, pc_term *t);

static void declare_var(C *c, scope *s, pc_term *v)
{
    if (v->kind != T_VAR) return;
    v->slot = new_slot(c);
    v->vkind = V_LOCAL;
    sc_add(c, s, v->name, v->slot);
    s->explicit_[s->len - 1] = true;
}

/* Collect the implicit (unification) variables of a term at this scope level. */
static void collect_vars(C *c, scope *s, pc_term *t)
{
    if (!t) return;
    switch (t->kind) {
    case T_VAR:
        if (t->wildcard) return;
        if (sc_find(s, t->name, false) >= 0) return;
        if (!strcmp(t->name, "input") || !strcmp(t->name, "data")) return;
        if (find_import(c, t->name) || is_pkg_rule(c, t->name)) return;
        sc_add(c, s, t->name, new_slot(c));
        return;
    case T_REF:
        for (uint32_t i = 0; i < t->n; i++) collect_vars(c, s, t->items[i]);
        return;
    case T_CALL:
        for (uint32_t i = 0; i < t->n; i++) collect_vars(c, s, t->items[i]);
        return;
    case T_ARRAY:
    case T_SET:
        for (uint32_t i = 0; i < t->n; i++) collect_vars(c, s, t->items[i]);
        return;
    case T_OBJECT:
        for (uint32_t i = 0; i < t->n; i++) {
            collect_vars(c, s, t->keys[i]);
            collect_vars(c, s, t->items[i]);
        }
        return;
    default: return; /* comprehensions have their own scope */
    }
}

static void collect_expr(C *c, scope *s, pc_expr *e)
{
    switch (e->kind) {
    case E_TERM:
    case E_UNIFY: collect_vars(c, s, e->a); collect_vars(c, s, e->b); break;
    case E_NOT:
        if (e->inner) collect_expr(c, s, e->inner);
        break;
    default: break; /* declarations handled in order */
    }
    for (uint32_t i = 0; i < e->nwith; i++) collect_vars(c, s, e->withs[i].value);
}

static bool same_package(const pc_module *a, const pc_module *b)
{
    if (a->pkg->n != b->pkg->n) return false;
    for (uint32_t i = 1; i < a->pkg->n; i++)
        if (!pc_value_equal(a->pkg->items[i]->value, b->pkg->items[i]->value)) return false;
    return true;
}

/* rego.metadata.rule(): the annotation above the rule being compiled. */
static const pc_value *rule_metadata(C *c)
{
    if (c->rule && c->rule->annot) return c->rule->annot;
    return pc_value_empty_object();
}

static const pc_value *chain_entry(C *c, const pc_value *path, const pc_value *annot)
{
    pc_obuf ob;
    pc_obuf_init(&ob, c->arena);
    pc_obuf_put_str(&ob, "path", path);
    if (annot) pc_obuf_put_str(&ob, "annotations", annot);
    return pc_obuf_object(&ob);
}

/* rego.metadata.chain(): the rule's annotation, document-scope annotations
 * of the other definitions, then the package's (from any of its modules). */
static const pc_value *metadata_chain(C *c)
{
    pc_vbuf chain, path;
    pc_vbuf_init(&chain, c->arena);
    pc_vbuf_init(&path, c->arena);
    if (!c->mod || !c->rule) return pc_value_empty_array();
    for (uint32_t i = 1; i < c->mod->pkg->n; i++) pc_vbuf_push(&path, c->mod->pkg->items[i]->value);
    const pc_value *pkg_path = pc_vbuf_array(&path);
    pc_vbuf_push(&path, pc__intern(c->in, c->rule->name, strlen(c->rule->name)));
    const pc_value *rule_path = pc_vbuf_array(&path);
    pc_vbuf_push(&chain, chain_entry(c, rule_path, c->rule->annot));
    for (size_t i = 0; i < c->ps->nmods; i++) {
        pc_module *m = c->ps->mods[i];
        if (!same_package(m, c->mod)) continue;
        for (uint32_t j = 0; j < m->nrules; j++) {
            pc_rule *r = m->rules[j];
            if (r == c->rule || !r->annot || strcmp(r->name, c->rule->name)) continue;
            const pc_value *sc = pc_value_object_get_str(r->annot, "scope", 5);
            if (sc && sc->kind == PC_STRING && !strcmp(sc->u.s, "document"))
                pc_vbuf_push(&chain, chain_entry(c, rule_path, r->annot));
        }
    }
    for (size_t i = 0; i < c->ps->nmods; i++) {
        pc_module *m = c->ps->mods[i];
        if (m->pkg_annot && same_package(m, c->mod)) pc_vbuf_push(&chain, chain_entry(c, pkg_path, m->pkg_annot));
    }
    return pc_vbuf_array(&chain);
}

static void resolve_call(C *c, scope *s, pc_term *t)
{
    /* the callee: a static dotted name or a ref */
    const char *name = t->name;
    char buf[512];
    pc_term *h = t->head;
    if (!name && h) {
        if (h->kind == T_VAR) {
            name = h->name;
        } else if (h->kind == T_REF && h->items[0]->kind == T_VAR) {
            size_t o = 0;
            o += (size_t)snprintf(buf + o, sizeof(buf) - o, "%s", h->items[0]->name);
            for (uint32_t i = 1; i < h->n && o < sizeof(buf); i++) {
                pc_term *k = h->items[i];
                if (k->kind != T_VALUE || k->value->kind != PC_STRING) {
                    set_err(c->err, "rego_type_error", t->loc, "invalid function reference");
                    c->failed = true;
                    return;
                }
                o += (size_t)snprintf(buf + o, sizeof(buf) - o, ".%s", k->value->u.s);
            }
            name = buf;
        }
    }
    if (!name) {
        set_err(c->err, "rego_type_error", t->loc, "invalid function call");
        c->failed = true;
        return;
    }
    for (uint32_t i = 0; i < t->n; i++) t->items[i] = resolve_term(c, s, t->items[i]);
    if ((!strcmp(name, "rego.metadata.rule") || !strcmp(name, "rego.metadata.chain")) && t->n == 0) {
        /* annotations are known at compile time: the call is a constant */
        const pc_value *v = !strcmp(name, "rego.metadata.rule") ? rule_metadata(c) : metadata_chain(c);
        if (!v) {
            set_err(c->err, "rego_compile_error", t->loc, "out of memory");
            c->failed = true;
            return;
        }
        t->kind = T_VALUE;
        t->value = v;
        t->ground = true;
        t->n = 0;
        return;
    }
    /* user function? resolve first segment against locals-free globals */
    const char *dot = strchr(name, '.');
    size_t flen = dot ? (size_t)(dot - name) : strlen(name);
    char first[256];
    snprintf(first, sizeof(first), "%.*s", (int)flen, name);
    pc_node *fn = NULL;
    pc_node *n = NULL;
    const char *rest = dot;
    if (strcmp(first, "data") == 0) {
        n = c->ps->root;
    } else {
        const pc_import *im = find_import(c, first);
        if (im && im->path->kind == T_REF && !strcmp(im->path->items[0]->name, "data")) {
            n = c->ps->root;
            for (uint32_t i = 1; i < im->path->n && n; i++) n = pc__node_child(n, im->path->items[i]->value);
        } else if (is_pkg_rule(c, first)) {
            pc_value k = {.kind = PC_STRING, .len = (uint32_t)flen, .u.s = first};
            n = pc__node_child(c->pkgnode, &k);
        }
    }
    while (n && rest && *rest == '.') {
        const char *seg = rest + 1;
        const char *e2 = strchr(seg, '.');
        size_t sl = e2 ? (size_t)(e2 - seg) : strlen(seg);
        pc_value k = {.kind = PC_STRING, .len = (uint32_t)sl, .u.s = seg};
        char tmp[256];
        snprintf(tmp, sizeof(tmp), "%.*s", (int)sl, seg);
        k.u.s = tmp;
        n = pc__node_child(n, &k);
        rest = e2;
    }
    if (n && n->kind == R_FUNC) fn = n;
    if (fn) {
        t->fn = fn;
        int arity = (int)fn->arity;
        if ((int)t->n == arity + 1)
            t->is_output_call = true;
        else if ((int)t->n != arity) {
            set_err(c->err, "rego_type_error", t->loc, "%s: arity mismatch", name);
            c->failed = true;
        }
        t->name = pc_arena_strndup(c->arena, name, strlen(name));
        return;
    }
    if (n && n->kind >= 0 && n->kind != R_FUNC) {
        set_err(c->err, "rego_type_error", t->loc, "undefined function %s", name);
        c->failed = true;
        return;
    }
    const pc_builtin *bi = pc_builtin_lookup(name, strlen(name));
    if (!bi) {
        set_err(c->err, "rego_type_error", t->loc, "undefined function %s", name);
        c->failed = true;
        return;
    }
    t->bi = bi;
    t->name = bi->name;
    if (!(bi->flags & PC_BUILTIN_VARIADIC)) {
        if ((int)t->n == bi->arity + 1)
            t->is_output_call = true;
        else if ((int)t->n != bi->arity) {
            set_err(c->err, "rego_type_error", t->loc, "%s: arity mismatch\n\thave: (%u args)\n\twant: (%d args)",
                    bi->name, t->n, bi->arity);
            c->failed = true;
        }
    }
}

static pc_term *resolve_term(C *c, scope *s, pc_term *t)
{
    if (!t || c->failed) return t;
    switch (t->kind) {
    case T_VALUE: return t;
    case T_VAR: {
        if (t->wildcard) {
            int sl = sc_find(s, t->name, false);
            if (sl < 0) {
                sl = new_slot(c);
                sc_add(c, s, t->name, sl);
            }
            t->slot = sl;
            t->vkind = V_LOCAL;
            return t;
        }
        int sl = sc_find(s, t->name, false);
        if (sl >= 0) {
            t->slot = sl;
            t->vkind = V_LOCAL;
            return t;
        }
        pc_term *g = resolve_global(c, t);
        if (g) return g;
        sl = new_slot(c);
        sc_add(c, s, t->name, sl);
        t->slot = sl;
        t->vkind = V_LOCAL;
        return t;
    }
    case T_REF: {
        pc_term *h = resolve_term(c, s, t->items[0]);
        for (uint32_t i = 1; i < t->n; i++) t->items[i] = resolve_term(c, s, t->items[i]);
        if (h->kind == T_REF) {
            /* splice: alias.rest */
            pc_term *r = mk(c, T_REF, t->loc);
            r->n = h->n + t->n - 1;
            r->items = pc_arena_alloc(c->arena, r->n * sizeof(pc_term *));
            memcpy(r->items, h->items, h->n * sizeof(pc_term *));
            memcpy(r->items + h->n, t->items + 1, (t->n - 1) * sizeof(pc_term *));
            return r;
        }
        t->items[0] = h;
        return t;
    }
    case T_CALL: resolve_call(c, s, t); return t;
    case T_ARRAY:
    case T_SET:
        for (uint32_t i = 0; i < t->n; i++) t->items[i] = resolve_term(c, s, t->items[i]);
        return t;
    case T_OBJECT:
        for (uint32_t i = 0; i < t->n; i++) {
            t->keys[i] = resolve_term(c, s, t->keys[i]);
            t->items[i] = resolve_term(c, s, t->items[i]);
        }
        return t;
    case T_ARRCOMP:
    case T_SETCOMP:
    case T_OBJCOMP: {
        scope sub = {.up = s};
        resolve_body(c, &sub, t->body);
        t->khead = resolve_term(c, &sub, t->khead);
        t->head = resolve_term(c, &sub, t->head);
        return t;
    }
    }
    return t;
}

/* Declares the plain variables of a pattern term (for := and some-in). */
static void declare_pattern(C *c, scope *s, pc_term *t, bool check_redecl)
{
    if (!t) return;
    if (t->kind == T_VAR) {
        if (t->wildcard) {
            declare_var(c, s, t);
            return;
        }
        if (check_redecl) {
            for (size_t i = s->len; i-- > 0;)
                if (!strcmp(s->names[i], t->name)) {
                    if (s->explicit_[i] || (int)i < c->rule_args_declared) {
                        set_err(c->err, "rego_compile_error", t->loc, "var %s assigned above", t->name);
                        c->failed = true;
                        return;
                    }
                    /* used before in this body: the same variable */
                    s->explicit_[i] = true;
                    t->slot = s->slots[i];
                    t->vkind = V_LOCAL;
                    return;
                }
        }
        declare_var(c, s, t);
        return;
    }
    if (t->kind == T_ARRAY)
        for (uint32_t i = 0; i < t->n; i++) declare_pattern(c, s, t->items[i], check_redecl);
    if (t->kind == T_OBJECT)
        for (uint32_t i = 0; i < t->n; i++) declare_pattern(c, s, t->items[i], check_redecl);
}

static void resolve_expr(C *c, scope *s, pc_expr *e)
{
    if (c->failed) return;
    for (uint32_t i = 0; i < e->nwith; i++) {
        pc_term *tg = e->withs[i].target;
        /* targets: input..., data..., or function names (not local vars) */
        if (tg->kind == T_VAR && strcmp(tg->name, "input") && strcmp(tg->name, "data")) {
            pc_term *g = resolve_global(c, tg);
            if (g) e->withs[i].target = g;
        } else if (tg->kind == T_REF && tg->items[0]->kind == T_VAR &&
                   strcmp(tg->items[0]->name, "input") && strcmp(tg->items[0]->name, "data")) {
            pc_term *g = resolve_global(c, tg->items[0]);
            if (g) {
                tg->items[0] = g;
                e->withs[i].target = resolve_term(c, s, tg);
            }
        } else {
            e->withs[i].target = resolve_term(c, s, tg);
        }
        e->withs[i].value = resolve_term(c, s, e->withs[i].value);
    }
    switch (e->kind) {
    case E_TERM: e->a = resolve_term(c, s, e->a); break;
    case E_UNIFY:
        e->a = resolve_term(c, s, e->a);
        e->b = resolve_term(c, s, e->b);
        break;
    case E_ASSIGN:
        e->b = resolve_term(c, s, e->b);
        if (e->a->kind == T_VAR && !e->a->wildcard && (is_pkg_rule(c, e->a->name) && false)) {
        }
        declare_pattern(c, s, e->a, true);
        e->a = resolve_term(c, s, e->a);
        break;
    case E_SOME:
        for (uint32_t i = 0; i < e->nvars; i++) declare_var(c, s, e->vars[i]);
        break;
    case E_SOMEIN:
        e->c = resolve_term(c, s, e->c);
        declare_pattern(c, s, e->a, false);
        declare_pattern(c, s, e->b, false);
        e->a = resolve_term(c, s, e->a);
        e->b = resolve_term(c, s, e->b);
        break;
    case E_EVERY: {
        e->c = resolve_term(c, s, e->c);
        scope sub = {.up = s};
        if (e->a) declare_var(c, &sub, e->a);
        declare_var(c, &sub, e->b);
        resolve_body(c, &sub, e->body);
        break;
    }
    case E_NOT: {
        if (e->body) {
            scope sub = {.up = s};
            resolve_body(c, &sub, e->body);
        } else {
            resolve_expr(c, s, e->inner);
        }
        break;
    }
    }
}

static void resolve_body(C *c, scope *s, pc_body *b)
{
    if (!b) return;
    /* Implicit variables of this body are visible in nested comprehensions. */
    for (uint32_t i = 0; i < b->n; i++) collect_expr(c, s, b->exprs[i]);
    for (uint32_t i = 0; i < b->n && !c->failed; i++) resolve_expr(c, s, b->exprs[i]);
}

/* Function arguments are always local variables, whatever rules exist. */
static void declare_args(C *c, scope *s, pc_term *t)
{
    if (!t) return;
    switch (t->kind) {
    case T_VAR:
        if (sc_find(s, t->name, true) < 0 || t->wildcard) sc_add(c, s, t->name, new_slot(c));
        return;
    case T_ARRAY:
    case T_SET:
        for (uint32_t i = 0; i < t->n; i++) declare_args(c, s, t->items[i]);
        return;
    case T_OBJECT:
        for (uint32_t i = 0; i < t->n; i++) declare_args(c, s, t->items[i]);
        return;
    default: return;
    }
}

static bool has_call(const pc_term *t)
{
    if (!t) return false;
    if (t->kind == T_CALL) return true;
    if (t->kind == T_ARRAY || t->kind == T_SET || t->kind == T_OBJECT)
        for (uint32_t i = 0; i < t->n; i++)
            if (has_call(t->items[i]) || (t->kind == T_OBJECT && has_call(t->keys[i]))) return true;
    return false;
}

/* A function argument that computes (f($"{x}") := ...) is matched after the
 * body, as OPA does: the argument becomes a variable and the body ends with
 * `var = <argument>`. */
static void rewrite_call_args(C *c, pc_rule *r)
{
    for (uint32_t i = 0; i < r->nargs; i++) {
        if (!has_call(r->args[i])) continue;
        pc_term *orig = r->args[i];
        char name[32];
        snprintf(name, sizeof(name), "$arg%u", i);
        pc_term *v = mk(c, T_VAR, orig->loc);
        v->name = pc_arena_strndup(c->arena, name, strlen(name));
        r->args[i] = v; /* shared with the else chain */
        for (pc_rule *e = r; e; e = e->els) {
            pc_term *v2 = mk(c, T_VAR, orig->loc);
            v2->name = v->name;
            pc_expr *x = pc_arena_alloc(c->arena, sizeof(*x));
            memset(x, 0, sizeof(*x));
            x->kind = E_UNIFY;
            x->loc = orig->loc;
            x->a = v2;
            x->b = orig;
            pc_body *b = pc_arena_alloc(c->arena, sizeof(*b));
            uint32_t n = e->body ? e->body->n : 0;
            b->exprs = pc_arena_alloc(c->arena, (n + 1) * sizeof(pc_expr *));
            if (n) memcpy(b->exprs, e->body->exprs, n * sizeof(pc_expr *));
            b->exprs[n] = x;
            b->n = n + 1;
            e->body = b;
        }
    }
}

static bool compile_rule(C *c, pc_rule *r)
{
    if (r->kind == R_FUNC) rewrite_call_args(c, r);
    c->rule = r;
    c->nslots = 0;
    scope s = {0};
    c->rule_args_declared = 0;
    for (uint32_t i = 0; i < r->nargs; i++) declare_args(c, &s, r->args[i]);
    c->rule_args_declared = (int)s.len;
    for (uint32_t i = 0; i < r->nargs; i++) r->args[i] = resolve_term(c, &s, r->args[i]);
    resolve_body(c, &s, r->body);
    /* vars of the head come from the body (or are new, making them unsafe) */
    for (uint32_t i = r->nground; i < r->npath; i++) r->path[i] = resolve_term(c, &s, r->path[i]);
    r->key = resolve_term(c, &s, r->key);
    r->value = resolve_term(c, &s, r->value);
    r->nslots = c->nslots;
    for (pc_rule *e = r->els; e && !c->failed; e = e->els) {
        C sub = *c;
        sub.nslots = 0;
        scope es = {0};
        for (uint32_t i = 0; i < e->nargs; i++) declare_args(&sub, &es, e->args[i]);
        sub.rule_args_declared = (int)es.len;
        resolve_body(&sub, &es, e->body);
        e->value = resolve_term(&sub, &es, e->value);
        e->nslots = sub.nslots;
        if (sub.failed) c->failed = true;
    }
    return !c->failed;
}

/* ---- constant folding ------------------------------------------------- */

/* Array, set and object literals made only of constants become constants, so
 * that `{"action": "block"}` is built once at compile time, not per decision. */
static void fold_body(pc_arena *a, pc_body *b);

static void fold_term(pc_arena *a, pc_term *t)
{
    if (!t) return;
    switch (t->kind) {
    case T_ARRAY:
    case T_SET:
    case T_OBJECT: {
        bool all = true;
        for (uint32_t i = 0; i < t->n; i++) {
            fold_term(a, t->items[i]);
            if (t->kind == T_OBJECT) fold_term(a, t->keys[i]);
            if (t->items[i]->kind != T_VALUE || (t->kind == T_OBJECT && t->keys[i]->kind != T_VALUE)) all = false;
        }
        if (!all) return;
        const pc_value *v;
        if (t->kind == T_OBJECT) {
            pc_obuf ob;
            pc_obuf_init(&ob, a);
            for (uint32_t i = 0; i < t->n; i++) pc_obuf_put(&ob, t->keys[i]->value, t->items[i]->value);
            /* a literal with a repeated key keeps its run-time check */
            v = pc_obuf_object(&ob);
            if (v && v->len != t->n) return;
        } else {
            pc_vbuf vb;
            pc_vbuf_init(&vb, a);
            for (uint32_t i = 0; i < t->n; i++) pc_vbuf_push(&vb, t->items[i]->value);
            v = t->kind == T_ARRAY ? pc_vbuf_array(&vb) : pc_vbuf_set(&vb);
        }
        if (!v) return;
        t->kind = T_VALUE;
        t->value = v;
        t->ground = true;
        return;
    }
    case T_REF:
    case T_CALL:
        for (uint32_t i = 0; i < t->n; i++) fold_term(a, t->items[i]);
        return;
    case T_ARRCOMP:
    case T_SETCOMP:
    case T_OBJCOMP:
        fold_term(a, t->head);
        fold_term(a, t->khead);
        fold_body(a, t->body);
        return;
    default: return;
    }
}

static void fold_expr(pc_arena *a, pc_expr *e)
{
    fold_term(a, e->a);
    fold_term(a, e->b);
    fold_term(a, e->c);
    if (e->body) fold_body(a, e->body);
    if (e->inner) fold_expr(a, e->inner);
    for (uint32_t i = 0; i < e->nwith; i++) fold_term(a, e->withs[i].value);
}

static void fold_body(pc_arena *a, pc_body *b)
{
    if (!b) return;
    for (uint32_t i = 0; i < b->n; i++) fold_expr(a, b->exprs[i]);
}

static void fold_rule(pc_arena *a, pc_rule *r)
{
    for (; r; r = r->els) {
        fold_body(a, r->body);
        fold_term(a, r->value);
        fold_term(a, r->key);
        for (uint32_t i = r->nground; i < r->npath; i++) fold_term(a, r->path[i]);
    }
}

/* Complete rules that all yield the same constant (allow := true) cannot
 * conflict, so evaluation may stop at the first rule that holds. */
static void mark_const(pc_node *n)
{
    if (n->kind == R_COMPLETE && n->nrules) {
        const pc_value *v0 = NULL;
        bool ok = true;
        for (uint32_t i = 0; i < n->nrules && ok; i++)
            for (pc_rule *r = n->rules[i]; r && ok; r = r->els) {
                const pc_value *v = !r->value ? pc_value_bool(true)
                                    : r->value->kind == T_VALUE ? r->value->value
                                                                : NULL;
                if (!v || (v0 && !pc_value_equal(v0, v))) ok = false;
                v0 = v;
            }
        n->const_all = ok;
    }
    for (uint32_t i = 0; i < n->nkids; i++) mark_const(n->kids[i]);
}

/* ---- policy set ------------------------------------------------------- */

static const pc_value *deep_copy(pc_arena *a, pc_intern *in, const pc_value *v)
{
    switch (v->kind) {
    case PC_STRING: return pc__intern(in, v->u.s, v->len);
    case PC_NUMBER:
        if (v->num == PC_NUM_INT) return pc_value_int(a, v->u.i);
        if (v->u.f.text) return pc_value_number_text(a, v->u.f.text, strlen(v->u.f.text));
        return pc_value_float(a, v->u.f.d);
    case PC_ARRAY:
    case PC_SET: {
        pc_vbuf b;
        pc_vbuf_init(&b, a);
        for (size_t i = 0; i < v->len; i++) pc_vbuf_push(&b, deep_copy(a, in, v->u.items[i]));
        return v->kind == PC_ARRAY ? pc_vbuf_array(&b) : pc_vbuf_set(&b);
    }
    case PC_OBJECT: {
        pc_obuf b;
        pc_obuf_init(&b, a);
        for (size_t i = 0; i < v->len; i++)
            pc_obuf_put(&b, deep_copy(a, in, v->u.kvs[i].key), deep_copy(a, in, v->u.kvs[i].val));
        return pc_obuf_object(&b);
    }
    default: return v;
    }
}

static pc_node *rule_node(pc_policy_set *ps, pc_module *m, pc_rule *r)
{
    pc_node *n = ps->root;
    for (uint32_t i = 1; i < m->pkg->n; i++) n = node_get(ps, n, m->pkg->items[i]->value);
    n = node_get(ps, n, pc__intern(ps->in, r->name, strlen(r->name)));
    r->nground = 1;
    for (uint32_t i = 1; i < r->npath; i++) {
        pc_term *k = r->path[i];
        if (k->kind != T_VALUE || k->value->kind != PC_STRING) break;
        n = node_get(ps, n, k->value);
        r->nground++;
    }
    for (pc_rule *e = r->els; e; e = e->els) e->nground = r->nground;
    return n;
}

static void node_add_rule(pc_policy_set *ps, pc_node *n, pc_rule *r)
{
    pc_rule **nr = pc_arena_alloc(ps->arena, (n->nrules + 1) * sizeof(*nr));
    if (n->nrules) memcpy(nr, n->rules, n->nrules * sizeof(*nr));
    nr[n->nrules++] = r;
    n->rules = nr;
}

static void mark_rules_below(pc_node *n)
{
    for (pc_node *p = n; p; p = p->parent) p->has_rules_below = true;
}

void pc_policy_init(void) { pc_builtins_init(); }

pc_policy_set *pc_policy_compile(const pc_policy_module *mods, size_t nmods, const pc_value *data,
                                 unsigned flags, pc_policy_error *err)
{
    pc_policy_init();
    memset(err, 0, sizeof(*err));
    pc_policy_set *ps = pc_xcalloc(1, sizeof(*ps));
    ps->refs = 1;
    ps->arena = pc_arena_new(0);
    ps->in = pc__intern_new(ps->arena);
    ps->root = pc_arena_alloc(ps->arena, sizeof(*ps->root));
    memset(ps->root, 0, sizeof(*ps->root));
    ps->root->kind = -1;
    ps->root->id = ps->nnodes++;
    ps->data = data ? deep_copy(ps->arena, ps->in, data) : pc_value_empty_object();
    if (!ps->data) goto oom;
    if (ps->data->kind != PC_OBJECT) {
        set_err(err, "rego_compile_error", (pc_loc){0}, "data document must be an object");
        goto fail;
    }
    ps->root->base = ps->data;
    ps->mods = pc_arena_alloc(ps->arena, (nmods + 1) * sizeof(pc_module *));
    for (size_t i = 0; i < nmods; i++) {
        const char *fname = pc_arena_strndup(ps->arena, mods[i].name, strlen(mods[i].name));
        char *text = pc_arena_strndup(ps->arena, mods[i].text, mods[i].len);
        if (!fname || !text) goto oom;
        pc_module *m = pc__parse_module(ps->arena, ps->in, fname, text, mods[i].len,
                                        (flags & PC_POLICY_V0) != 0, err);
        if (!m) goto fail;
        ps->mods[ps->nmods++] = m;
    }
    /* build the tree */
    for (size_t i = 0; i < ps->nmods; i++) {
        pc_module *m = ps->mods[i];
        pc_node *pn = ps->root;
        for (uint32_t k = 1; k < m->pkg->n; k++) pn = node_get(ps, pn, m->pkg->items[k]->value);
        pn->is_pkg = true;
        mark_rules_below(pn);
        for (uint32_t j = 0; j < m->nrules; j++) {
            pc_rule *r = m->rules[j];
            pc_node *n = rule_node(ps, m, r);
            if (n->kind >= 0 && n->kind != r->kind && !(r->is_default)) {
                bool fn_mix = (n->kind == R_FUNC) != (r->kind == R_FUNC);
                set_err(err, "rego_type_error", r->loc,
                        fn_mix ? "conflicting rules %s found" : "conflicting rules %s found",
                        r->name);
                goto fail;
            }
            if (r->kind == R_FUNC) {
                if (n->kind == R_FUNC && n->arity != r->nargs) {
                    set_err(err, "rego_type_error", r->loc, "conflicting rules %s found", r->name);
                    goto fail;
                }
                n->arity = r->nargs;
            }
            if (r->is_default) {
                if (n->dflt) {
                    set_err(err, "rego_type_error", r->loc, "multiple default rules %s found", r->name);
                    goto fail;
                }
                n->dflt = r;
                if (n->kind < 0) n->kind = r->kind;
            } else {
                n->kind = r->kind;
                node_add_rule(ps, n, r);
            }
            n->mod = m;
            mark_rules_below(n);
        }
    }
    /* compile every rule */
    for (size_t i = 0; i < ps->nmods; i++) {
        pc_module *m = ps->mods[i];
        C c = {.ps = ps, .mod = m, .err = err, .arena = ps->arena, .in = ps->in};
        c.pkgnode = ps->root;
        for (uint32_t k = 1; k < m->pkg->n && c.pkgnode; k++)
            c.pkgnode = pc__node_child(c.pkgnode, m->pkg->items[k]->value);
        for (uint32_t j = 0; j < m->nrules; j++)
            if (!compile_rule(&c, m->rules[j])) goto fail;
    }
    if (!pc__check_safety(ps, err)) goto fail;
    for (size_t i = 0; i < ps->nmods; i++)
        for (uint32_t j = 0; j < ps->mods[i]->nrules; j++) fold_rule(ps->arena, ps->mods[i]->rules[j]);
    mark_const(ps->root);
    return ps;
oom:
    set_err(err, "rego_compile_error", (pc_loc){0}, "out of memory");
fail:
    pc_policy_set_unref(ps);
    return NULL;
}

pc_body *pc__compile_query(pc_policy_set *ps, pc_arena *a, const char *q, pc_policy_error *err,
                           int *nslots, const char ***names, int **slots, int *nnames)
{
    /* The policy set is shared by threads: a query interns and allocates in
     * the evaluation's own arena, never in the set. */
    pc_intern *qin = pc__intern_new(a);
    if (!qin) return NULL;
    pc_body *b = pc__parse_query(a, qin, q, strlen(q), err);
    if (!b) return NULL;
    pc_module qm = {0};
    pc_term pkg = {.kind = T_REF};
    pc_term *items[1];
    pc_term d = {.kind = T_VAR, .name = "data", .vkind = V_DATA};
    items[0] = &d;
    pkg.items = items;
    pkg.n = 1;
    qm.pkg = &pkg;
    C c = {.ps = ps, .mod = &qm, .err = err, .arena = a, .in = qin};
    c.pkgnode = NULL;
    scope s = {0};
    resolve_body(&c, &s, b);
    if (c.failed) return NULL;
    if (!pc__check_body_safety(b, err, NULL, 0)) return NULL;
    fold_body(a, b);
    *nslots = c.nslots;
    *names = s.names;
    *slots = s.slots;
    *nnames = (int)s.len;
    return b;
}

pc_policy_set *pc_policy_set_ref(pc_policy_set *ps)
{
    __atomic_add_fetch(&ps->refs, 1, __ATOMIC_RELAXED);
    return ps;
}

void pc_policy_set_unref(pc_policy_set *ps)
{
    if (!ps) return;
    if (__atomic_sub_fetch(&ps->refs, 1, __ATOMIC_ACQ_REL) != 0) return;
    pc_arena_free(ps->arena);
    free(ps);
}

const pc_policy_rule *pc_policy_rule_find(const pc_policy_set *ps, const char *path)
{
    if (strncmp(path, "data.", 5) != 0) return NULL;
    const pc_node *n = ps->root;
    const char *p = path + 5;
    while (n && *p) {
        const char *dot = strchr(p, '.');
        size_t l = dot ? (size_t)(dot - p) : strlen(p);
        char tmp[256];
        if (l >= sizeof(tmp)) return NULL;
        memcpy(tmp, p, l);
        tmp[l] = 0;
        pc_value k = {.kind = PC_STRING, .len = (uint32_t)l, .u.s = tmp};
        n = pc__node_child(n, &k);
        p = dot ? dot + 1 : p + l;
    }
    return n && n->kind >= 0 ? n : NULL;
}

bool pc_policy_has_rule(const pc_policy_set *ps, const char *path)
{
    return pc_policy_rule_find(ps, path) != NULL;
}
