/*
 * Body ordering: OPA evaluates expressions after the ones that bind their
 * variables, whatever order they were written in. We reorder each body once
 * at compile time so that an expression reading a variable comes after an
 * expression that binds it. Then every body is checked in its final order:
 * a variable read before anything can bind it is rego_unsafe_var_error at
 * compile time, as in OPA (the evaluator still guards at run time).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/common.h"
#include "policy/internal.h"

#define MAXV 4096

typedef struct {
    uint8_t *bits;
} vset;

static void add(vset *s, int slot)
{
    if (slot >= 0 && slot < MAXV) s->bits[slot] = 1;
}

/* Variables an expression must read (value positions). */
static void needs_term(const pc_term *t, vset *s, bool pattern)
{
    if (!t) return;
    switch (t->kind) {
    case T_VAR:
        if (t->vkind == V_LOCAL && !pattern) add(s, t->slot);
        return;
    case T_REF:
        needs_term(t->items[0], s, false);
        for (uint32_t i = 1; i < t->n; i++)
            if (t->items[i]->kind != T_VAR) needs_term(t->items[i], s, false);
        return;
    case T_CALL: {
        uint32_t nin = t->is_output_call ? t->n - 1 : t->n;
        for (uint32_t i = 0; i < nin; i++) needs_term(t->items[i], s, false);
        if (t->is_output_call) needs_term(t->items[nin], s, true);
        return;
    }
    case T_ARRAY:
    case T_SET:
        for (uint32_t i = 0; i < t->n; i++) needs_term(t->items[i], s, pattern && t->kind == T_ARRAY);
        return;
    case T_OBJECT:
        for (uint32_t i = 0; i < t->n; i++) {
            needs_term(t->keys[i], s, false);
            needs_term(t->items[i], s, pattern);
        }
        return;
    default: return;
    }
}

static void all_vars(const pc_term *t, vset *s)
{
    if (!t) return;
    switch (t->kind) {
    case T_VAR:
        if (t->vkind == V_LOCAL) add(s, t->slot);
        return;
    case T_REF:
    case T_CALL:
    case T_ARRAY:
    case T_SET:
        for (uint32_t i = 0; i < t->n; i++) all_vars(t->items[i], s);
        return;
    case T_OBJECT:
        for (uint32_t i = 0; i < t->n; i++) {
            all_vars(t->keys[i], s);
            all_vars(t->items[i], s);
        }
        return;
    default: return;
    }
}

static void expr_vars(const pc_expr *e, vset *s)
{
    switch (e->kind) {
    case E_TERM: all_vars(e->a, s); break;
    case E_UNIFY:
    case E_ASSIGN: all_vars(e->a, s); all_vars(e->b, s); break;
    case E_SOMEIN: all_vars(e->a, s); all_vars(e->b, s); all_vars(e->c, s); break;
    case E_EVERY: all_vars(e->c, s); break;
    case E_NOT: break; /* binds nothing */
    default: break;
    }
}

static bool subset_ok(const vset *need, const vset *bound, const vset *later, int nslots)
{
    for (int i = 0; i < nslots && i < MAXV; i++)
        if (need->bits[i] && !bound->bits[i] && later->bits[i]) return false;
    return true;
}

static bool all_bound(const vset *need, const vset *bound, int nslots)
{
    for (int i = 0; i < nslots && i < MAXV; i++)
        if (need->bits[i] && !bound->bits[i]) return false;
    return true;
}

static bool expr_ready(const pc_expr *e, const vset *bound, const vset *later, int nslots, uint8_t *scratch)
{
    vset need = {scratch};
    if (nslots < 0) nslots = 0; /* lets the compiler bound the memsets below */
    memset(scratch, 0, (size_t)nslots);
    switch (e->kind) {
    case E_TERM: needs_term(e->a, &need, false); break;
    case E_UNIFY:
    case E_ASSIGN: {
        needs_term(e->b, &need, true);
        needs_term(e->a, &need, true);
        if (!subset_ok(&need, bound, later, nslots)) return false;
        /* at least one side must be evaluable: all its variables bound */
        memset(scratch, 0, (size_t)nslots);
        needs_term(e->b, &need, false);
        if (all_bound(&need, bound, nslots)) return true;
        memset(scratch, 0, (size_t)nslots);
        needs_term(e->a, &need, false);
        if (all_bound(&need, bound, nslots)) return true;
        /* two patterns of the same shape unify element by element */
        return e->a->kind == e->b->kind && (e->a->kind == T_ARRAY || e->a->kind == T_OBJECT);
    }
    case E_SOMEIN:
    case E_EVERY: needs_term(e->c, &need, false); break;
    case E_NOT: {
        if (!e->inner) return true;
        /* every variable of a negated expression must be bound before it */
        if (!expr_ready(e->inner, bound, later, nslots, scratch)) return false;
        vset all = {scratch};
        memset(scratch, 0, (size_t)nslots);
        expr_vars(e->inner, &all);
        if (e->inner->kind == E_NOT && e->inner->inner) all_vars(e->inner->inner->a, &all);
        return subset_ok(&all, bound, later, nslots);
    }
    default: return true;
    }
    for (uint32_t i = 0; i < e->nwith; i++) needs_term(e->withs[i].value, &need, false);
    return subset_ok(&need, bound, later, nslots);
}

static void reorder(pc_body *b, int nslots, uint8_t *mem)
{
    if (!b || b->n < 2 || nslots <= 0 || nslots > MAXV) return;
    uint8_t *bound_bits = mem, *later_bits = mem + MAXV, *scratch = mem + 2 * MAXV;
    memset(bound_bits, 0, (size_t)nslots);
    vset bound = {bound_bits}, later = {later_bits};
    bool *used = (bool *)(mem + 3 * MAXV);
    memset(used, 0, b->n);
    pc_expr **res = (pc_expr **)(mem + 4 * MAXV);
    uint32_t nres = 0;
    while (nres < b->n) {
        /* variables bound by the expressions still to place */
        memset(later_bits, 0, (size_t)nslots);
        for (uint32_t i = 0; i < b->n; i++)
            if (!used[i]) expr_vars(b->exprs[i], &later);
        uint32_t pick = UINT32_MAX;
        for (uint32_t i = 0; i < b->n; i++) {
            if (used[i]) continue;
            /* an expression's own vars are not "later" for itself */
            memset(later_bits, 0, (size_t)nslots);
            for (uint32_t j = 0; j < b->n; j++)
                if (!used[j] && j != i) expr_vars(b->exprs[j], &later);
            if (expr_ready(b->exprs[i], &bound, &later, nslots, scratch)) {
                pick = i;
                break;
            }
        }
        if (pick == UINT32_MAX)
            for (uint32_t i = 0; i < b->n; i++)
                if (!used[i]) {
                    pick = i;
                    break;
                }
        used[pick] = true;
        res[nres++] = b->exprs[pick];
        if (b->exprs[pick]->kind != E_NOT) expr_vars(b->exprs[pick], &bound);
    }
    memcpy(b->exprs, res, b->n * sizeof(*res));
}

static void walk_body(pc_body *b, int nslots, uint8_t *mem);

static void walk_term(pc_term *t, int nslots, uint8_t *mem)
{
    if (!t) return;
    switch (t->kind) {
    case T_ARRCOMP:
    case T_SETCOMP:
    case T_OBJCOMP: walk_body(t->body, nslots, mem); return;
    case T_REF:
    case T_CALL:
    case T_ARRAY:
    case T_SET:
        for (uint32_t i = 0; i < t->n; i++) walk_term(t->items[i], nslots, mem);
        return;
    case T_OBJECT:
        for (uint32_t i = 0; i < t->n; i++) {
            walk_term(t->keys[i], nslots, mem);
            walk_term(t->items[i], nslots, mem);
        }
        return;
    default: return;
    }
}

static void walk_body(pc_body *b, int nslots, uint8_t *mem)
{
    if (!b) return;
    for (uint32_t i = 0; i < b->n; i++) {
        pc_expr *e = b->exprs[i];
        walk_term(e->a, nslots, mem);
        walk_term(e->b, nslots, mem);
        walk_term(e->c, nslots, mem);
        if (e->body) walk_body(e->body, nslots, mem);
        if (e->inner) walk_term(e->inner->a, nslots, mem);
    }
    if (b->n <= MAXV) reorder(b, nslots, mem);
}

static uint8_t *scratch_mem(void) { return pc_xcalloc(1, 4 * MAXV + MAXV * sizeof(pc_expr *)); }

/* ---- safety check ------------------------------------------------------ */

typedef struct {
    uint8_t *bound; /* per slot */
    int nslots;
    pc_policy_error *err;
    const pc_term *unsafe; /* first unsafe variable found */
} S;

/* First variable of t in a value position that is not bound (NULL if none). */
static const pc_term *first_unbound(const S *s, const pc_term *t, bool pattern)
{
    if (!t) return NULL;
    switch (t->kind) {
    case T_VAR:
        if (t->vkind == V_LOCAL && !pattern && t->slot >= 0 && t->slot < s->nslots && !s->bound[t->slot]) return t;
        return NULL;
    case T_REF: {
        /* operands are patterns: x[i], data.r[[1, y]] bind i and y */
        const pc_term *u = first_unbound(s, t->items[0], false);
        for (uint32_t i = 1; i < t->n && !u; i++) u = first_unbound(s, t->items[i], true);
        return u;
    }
    case T_CALL: {
        uint32_t nin = t->is_output_call ? t->n - 1 : t->n;
        const pc_term *u = NULL;
        for (uint32_t i = 0; i < nin && !u; i++) u = first_unbound(s, t->items[i], false);
        if (!u && t->is_output_call) u = first_unbound(s, t->items[nin], true);
        return u;
    }
    case T_ARRAY:
    case T_SET: {
        const pc_term *u = NULL;
        for (uint32_t i = 0; i < t->n && !u; i++) u = first_unbound(s, t->items[i], pattern && t->kind == T_ARRAY);
        return u;
    }
    case T_OBJECT: {
        const pc_term *u = NULL;
        for (uint32_t i = 0; i < t->n && !u; i++) {
            u = first_unbound(s, t->keys[i], false);
            if (!u) u = first_unbound(s, t->items[i], pattern);
        }
        return u;
    }
    default: return NULL;
    }
}

static void bind_all(S *s, const pc_term *t)
{
    if (!t) return;
    switch (t->kind) {
    case T_VAR:
        if (t->vkind == V_LOCAL && t->slot >= 0 && t->slot < s->nslots) s->bound[t->slot] = 1;
        return;
    case T_REF:
    case T_CALL:
    case T_ARRAY:
    case T_SET:
        for (uint32_t i = 0; i < t->n; i++) bind_all(s, t->items[i]);
        return;
    case T_OBJECT:
        for (uint32_t i = 0; i < t->n; i++) {
            bind_all(s, t->keys[i]);
            bind_all(s, t->items[i]);
        }
        return;
    default: return;
    }
}

static void check_body(S *s, const pc_body *b);

/* Variables in ref operands are bound by the expression's own iteration
 * (foo == input.foos[foo] binds foo before the comparison runs). */
static void bind_ref_outputs(S *s, const pc_term *t)
{
    if (!t) return;
    switch (t->kind) {
    case T_REF:
        bind_ref_outputs(s, t->items[0]);
        for (uint32_t i = 1; i < t->n; i++) bind_all(s, t->items[i]);
        return;
    case T_CALL:
    case T_ARRAY:
    case T_SET:
        for (uint32_t i = 0; i < t->n; i++) bind_ref_outputs(s, t->items[i]);
        return;
    case T_OBJECT:
        for (uint32_t i = 0; i < t->n; i++) {
            bind_ref_outputs(s, t->keys[i]);
            bind_ref_outputs(s, t->items[i]);
        }
        return;
    default: return;
    }
}

/* `with count as object.union_n`: a function name, not a variable. */
static bool names_function(const pc_term *t)
{
    char name[256];
    size_t o;
    if (t->kind == T_VAR && t->vkind == V_LOCAL) {
        o = (size_t)snprintf(name, sizeof(name), "%s", t->name);
    } else if (t->kind == T_REF && t->items[0]->kind == T_VAR && t->items[0]->vkind == V_LOCAL) {
        o = (size_t)snprintf(name, sizeof(name), "%s", t->items[0]->name);
        for (uint32_t i = 1; i < t->n && o < sizeof(name); i++) {
            if (t->items[i]->kind != T_VALUE || t->items[i]->value->kind != PC_STRING) return false;
            o += (size_t)snprintf(name + o, sizeof(name) - o, ".%s", t->items[i]->value->u.s);
        }
    } else {
        return false;
    }
    return o < sizeof(name) && pc_builtin_lookup(name, o) != NULL;
}

/* Comprehensions inside a term see the variables bound so far. */
static void check_nested(S *s, const pc_term *t)
{
    if (!t || s->unsafe) return;
    switch (t->kind) {
    case T_ARRCOMP:
    case T_SETCOMP:
    case T_OBJCOMP: {
        uint8_t *saved = pc_xmalloc((size_t)s->nslots + 1);
        memcpy(saved, s->bound, (size_t)s->nslots);
        check_body(s, t->body);
        if (!s->unsafe) s->unsafe = first_unbound(s, t->khead, false);
        if (!s->unsafe) s->unsafe = first_unbound(s, t->head, false);
        memcpy(s->bound, saved, (size_t)s->nslots);
        free(saved);
        return;
    }
    case T_REF:
    case T_CALL:
    case T_ARRAY:
    case T_SET:
        for (uint32_t i = 0; i < t->n; i++) check_nested(s, t->items[i]);
        return;
    case T_OBJECT:
        for (uint32_t i = 0; i < t->n; i++) {
            check_nested(s, t->keys[i]);
            check_nested(s, t->items[i]);
        }
        return;
    default: return;
    }
}

static bool same_shape(const pc_term *a, const pc_term *b)
{
    return a->kind == b->kind && (a->kind == T_ARRAY || a->kind == T_OBJECT);
}

static void check_expr(S *s, const pc_expr *e)
{
    for (uint32_t i = 0; i < e->nwith && !s->unsafe; i++) {
        if (names_function(e->withs[i].value)) continue;
        check_nested(s, e->withs[i].value);
        if (!s->unsafe) s->unsafe = first_unbound(s, e->withs[i].value, false);
    }
    if (s->unsafe) return;
    if (e->kind != E_NOT) {
        bind_ref_outputs(s, e->a);
        bind_ref_outputs(s, e->b);
        bind_ref_outputs(s, e->c);
    }
    switch (e->kind) {
    case E_TERM:
        check_nested(s, e->a);
        if (!s->unsafe) s->unsafe = first_unbound(s, e->a, false);
        if (!s->unsafe) bind_all(s, e->a);
        return;
    case E_UNIFY:
    case E_ASSIGN: {
        check_nested(s, e->a);
        check_nested(s, e->b);
        if (s->unsafe) return;
        /* the non-pattern parts of both sides (ref heads, object keys) */
        const pc_term *u = first_unbound(s, e->a, true);
        if (!u) u = first_unbound(s, e->b, true);
        if (u) {
            s->unsafe = u;
            return;
        }
        const pc_term *ub = first_unbound(s, e->b, false);
        const pc_term *ua = first_unbound(s, e->a, false);
        if (ub && ua && !same_shape(e->a, e->b)) {
            s->unsafe = ub;
            return;
        }
        bind_all(s, e->a);
        bind_all(s, e->b);
        return;
    }
    case E_SOME: return;
    case E_SOMEIN:
        check_nested(s, e->c);
        if (!s->unsafe) s->unsafe = first_unbound(s, e->c, false);
        bind_all(s, e->a);
        bind_all(s, e->b);
        return;
    case E_EVERY: {
        check_nested(s, e->c);
        if (!s->unsafe) s->unsafe = first_unbound(s, e->c, false);
        if (s->unsafe) return;
        uint8_t *saved = pc_xmalloc((size_t)s->nslots + 1);
        memcpy(saved, s->bound, (size_t)s->nslots);
        bind_all(s, e->a);
        bind_all(s, e->b);
        check_body(s, e->body);
        memcpy(s->bound, saved, (size_t)s->nslots);
        free(saved);
        return;
    }
    case E_NOT: {
        /* nothing a negation binds is visible after it */
        uint8_t *saved = pc_xmalloc((size_t)s->nslots + 1);
        memcpy(saved, s->bound, (size_t)s->nslots);
        if (e->body)
            check_body(s, e->body);
        else
            check_expr(s, e->inner);
        memcpy(s->bound, saved, (size_t)s->nslots);
        free(saved);
        return;
    }
    }
}

static void check_body(S *s, const pc_body *b)
{
    for (uint32_t i = 0; b && i < b->n && !s->unsafe; i++) check_expr(s, b->exprs[i]);
}

static bool report(S *s)
{
    if (!s->unsafe) return true;
    const pc_term *v = s->unsafe;
    snprintf(s->err->code, sizeof(s->err->code), "rego_unsafe_var_error");
    snprintf(s->err->message, sizeof(s->err->message), "var %s is unsafe",
             v->name && v->name[0] != '$' ? v->name : "_");
    snprintf(s->err->file, sizeof(s->err->file), "%s", v->loc.file ? v->loc.file : "");
    s->err->row = v->loc.row;
    s->err->col = v->loc.col;
    return false;
}

static bool check_rule(pc_rule *r, pc_term **args, uint32_t nargs, pc_policy_error *err)
{
    S s = {.nslots = r->nslots, .err = err};
    s.bound = pc_xcalloc(1, (size_t)r->nslots + 1);
    for (uint32_t i = 0; i < nargs; i++) bind_all(&s, args[i]);
    check_body(&s, r->body);
    for (uint32_t i = r->nground; i < r->npath && !s.unsafe; i++) {
        check_nested(&s, r->path[i]);
        if (!s.unsafe) s.unsafe = first_unbound(&s, r->path[i], false);
    }
    if (!s.unsafe) check_nested(&s, r->key);
    if (!s.unsafe) s.unsafe = first_unbound(&s, r->key, false);
    if (!s.unsafe) check_nested(&s, r->value);
    if (!s.unsafe) s.unsafe = first_unbound(&s, r->value, false);
    bool ok = report(&s);
    free(s.bound);
    return ok;
}

bool pc__check_body_safety(pc_body *b, pc_policy_error *err, pc_term **args, uint32_t nargs)
{
    (void)args;
    (void)nargs;
    uint8_t *mem = scratch_mem();
    walk_body(b, MAXV, mem);
    free(mem);
    S s = {.nslots = MAXV, .err = err};
    s.bound = pc_xcalloc(1, MAXV + 1);
    check_body(&s, b);
    bool ok = report(&s);
    free(s.bound);
    return ok;
}

bool pc__check_safety(pc_policy_set *ps, pc_policy_error *err)
{
    uint8_t *mem = scratch_mem();
    for (size_t i = 0; i < ps->nmods; i++) {
        pc_module *m = ps->mods[i];
        for (uint32_t j = 0; j < m->nrules; j++)
            for (pc_rule *r = m->rules[j]; r; r = r->els) {
                walk_body(r->body, r->nslots, mem);
                if (!check_rule(r, r->args, r->nargs, err)) {
                    free(mem);
                    return false;
                }
            }
    }
    free(mem);
    return true;
}
