/*
 * Body ordering: OPA evaluates expressions after the ones that bind their
 * variables, whatever order they were written in. We reorder each body once
 * at compile time so that an expression reading a variable comes after an
 * expression that binds it; what is still unbound at run time is reported as
 * rego_unsafe_var_error by the evaluator.
 */
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
        /* at least one side must be evaluable */
        memset(scratch, 0, (size_t)nslots);
        needs_term(e->b, &need, false);
        if (subset_ok(&need, bound, later, nslots)) return true;
        memset(scratch, 0, (size_t)nslots);
        needs_term(e->a, &need, false);
        return subset_ok(&need, bound, later, nslots);
    }
    case E_SOMEIN:
    case E_EVERY: needs_term(e->c, &need, false); break;
    case E_NOT: {
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

static uint8_t *scratch_mem(void)
{
    static _Thread_local uint8_t *mem;
    if (!mem) mem = pc_xcalloc(1, 4 * MAXV + MAXV * sizeof(pc_expr *));
    return mem;
}

bool pc__check_body_safety(pc_body *b, pc_policy_error *err, pc_term **args, uint32_t nargs)
{
    (void)err;
    (void)args;
    (void)nargs;
    int nslots = MAXV;
    walk_body(b, nslots, scratch_mem());
    return true;
}

bool pc__check_safety(pc_policy_set *ps, pc_policy_error *err)
{
    (void)err;
    uint8_t *mem = scratch_mem();
    for (size_t i = 0; i < ps->nmods; i++) {
        pc_module *m = ps->mods[i];
        for (uint32_t j = 0; j < m->nrules; j++)
            for (pc_rule *r = m->rules[j]; r; r = r->els) walk_body(r->body, r->nslots, mem);
    }
    return true;
}
