/*
 * Rego evaluator: top-down search with backtracking in continuation-passing
 * style. Every step returns 0 to keep searching or 1 to stop (error, or a
 * caller that needs no more solutions). Bindings live in per-rule frames of
 * slots; a binding is undone when the continuation returns.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "core/common.h"
#include "policy/internal.h"

#define DEFAULT_STEPS 10000000ull
#define DEFAULT_BYTES (64u * 1024u * 1024u)

typedef struct override {
    const pc_value **path; /* data path keys */
    uint32_t len;
    const pc_value *value;
} override;

typedef struct fn_override {
    const pc_builtin *bi;
    pc_node *fn;
    pc_term *repl;            /* replacement function term (T_CALL-able name) */
    const pc_value *value;    /* or a constant value */
    struct F *frame;
} fn_override;

struct pc_eval_ctx {
    pc_policy_set *ps;
    pc_arena *arena;
    const pc_value *input;
    uint64_t steps, max_steps;
    bool strict;
    pc_policy_error *err;
    bool failed;
    const pc_value **cache; /* per node */
    uint8_t *busy;          /* per node: being evaluated (recursion) */
    override *dov;
    uint32_t ndov;
    fn_override *fov;
    uint32_t nfov;
    const char *bname;
    int64_t now_ns;
    bool have_now;
    pc_loc cur_loc;
};

struct pc_eval {
    pc_eval_ctx c;
    pc_eval_limits lim;
};

typedef pc_eval_ctx E;

typedef struct F {
    const pc_value **s;
} F;

typedef struct K K;
struct K {
    int (*fn)(E *e, K *k, const pc_value *v);
};

static const pc_value UNDEF_MARK = {.kind = PC_NULL};

/* ---- errors ----------------------------------------------------------- */

static int fail(E *e, const char *code, pc_loc loc, const char *fmt, ...) PC_PRINTF(4, 5);
static int fail(E *e, const char *code, pc_loc loc, const char *fmt, ...)
{
    if (e->failed) return 1;
    e->failed = true;
    va_list ap;
    va_start(ap, fmt);
    pc__set_errorv(e->err, code, loc, fmt, ap);
    va_end(ap);
    return 1;
}

static int oom(E *e) { return fail(e, "eval_memory_error", e->cur_loc, "evaluation memory budget exceeded"); }

static inline int step(E *e)
{
    if (PC_UNLIKELY(++e->steps > e->max_steps))
        return fail(e, "eval_budget_error", e->cur_loc, "evaluation step budget exceeded");
    return 0;
}

/* ---- forward ---------------------------------------------------------- */

static int eval_body(E *e, F *f, pc_body *b, uint32_t i, K *k);
static int eval_term(E *e, F *f, pc_term *t, K *k);
static int unify_val(E *e, F *f, pc_term *t, const pc_value *v, K *k);
static int eval_ref_from(E *e, F *f, pc_term *ref, uint32_t i, const pc_value *cur, K *k);
static int eval_data(E *e, F *f, pc_term *ref, uint32_t i, pc_node *n, K *k);
static const pc_value *node_value(E *e, pc_node *n, bool *err);
static const pc_value *node_full(E *e, pc_node *n, bool *err);
static const pc_value *patch_below(E *e, const pc_value *const *path, uint32_t depth, const pc_value *v);

/* ---- helpers ---------------------------------------------------------- */

static inline const pc_value *var_val(E *e, F *f, const pc_term *t)
{
    switch (t->vkind) {
    case V_LOCAL: return f->s[t->slot];
    case V_INPUT: return e->input;
    default: return NULL;
    }
}

/* True if the term has a variable that is not bound yet in a pattern spot. */
static bool unbound_pattern(E *e, F *f, const pc_term *t)
{
    switch (t->kind) {
    case T_VAR: return t->vkind == V_LOCAL && !f->s[t->slot];
    case T_ARRAY:
        for (uint32_t i = 0; i < t->n; i++)
            if (unbound_pattern(e, f, t->items[i])) return true;
        return false;
    case T_OBJECT:
        for (uint32_t i = 0; i < t->n; i++)
            if (unbound_pattern(e, f, t->items[i]) || unbound_pattern(e, f, t->keys[i])) return true;
        return false;
    default: return false;
    }
}

/* ---- value collection helper ------------------------------------------ */

typedef struct {
    K k;
    pc_vbuf *buf;
    pc_term *term; /* evaluated per solution */
    F *f;
} collect_k;



/* ---- terms ------------------------------------------------------------ */

typedef struct {
    K k;
    F *f;
    pc_term *t;
    uint32_t i;
    const pc_value **vals;
    K *next;
} seq_k;

static int array_item_cb(E *e, K *k, const pc_value *v);

static int eval_items(E *e, F *f, pc_term *t, uint32_t i, const pc_value **vals, K *next)
{
    uint32_t total = t->kind == T_OBJECT ? t->n * 2 : t->n;
    if (i == total) {
        const pc_value *r;
        if (t->kind == T_ARRAY)
            r = pc_value_array(e->arena, vals, t->n);
        else if (t->kind == T_SET)
            r = pc_value_set(e->arena, vals, t->n);
        else {
            pc_kv *kv = pc_arena_alloc(e->arena, t->n * sizeof(*kv) + 1);
            if (!kv) return oom(e);
            for (uint32_t j = 0; j < t->n; j++) {
                kv[j].key = vals[2 * j];
                kv[j].val = vals[2 * j + 1];
            }
            /* duplicate keys with different values: OPA rejects; keep last */
            r = pc_value_object(e->arena, kv, t->n);
        }
        if (!r) return oom(e);
        return next->fn(e, next, r);
    }
    pc_term *sub = t->kind == T_OBJECT ? ((i & 1) ? t->items[i / 2] : t->keys[i / 2]) : t->items[i];
    seq_k c = {.k.fn = array_item_cb, .f = f, .t = t, .i = i, .vals = vals, .next = next};
    return eval_term(e, f, sub, &c.k);
}

static int array_item_cb(E *e, K *k, const pc_value *v)
{
    seq_k *c = (seq_k *)k;
    c->vals[c->i] = v;
    return eval_items(e, c->f, c->t, c->i + 1, c->vals, c->next);
}

typedef struct {
    K k;
    F *f;
    pc_term *t;
    pc_vbuf *vb;
    pc_obuf *ob;
    const pc_value *key;
} comp_k;

static int comp_val_cb(E *e, K *k, const pc_value *v)
{
    comp_k *c = (comp_k *)k;
    if (c->ob) {
        /* conflicting values for one key are an error */
        for (size_t i = 0; i < c->ob->len; i++)
            if (pc_value_equal(c->ob->kvs[i].key, c->key)) {
                if (!pc_value_equal(c->ob->kvs[i].val, v))
                    return fail(e, "eval_conflict_error", c->t->loc, "object keys must be unique");
                return 0;
            }
        pc_obuf_put(c->ob, c->key, v);
        return c->ob->oom ? oom(e) : 0;
    }
    pc_vbuf_push(c->vb, v);
    return c->vb->oom ? oom(e) : 0;
}

static int comp_key_cb(E *e, K *k, const pc_value *v)
{
    comp_k *c = (comp_k *)k;
    comp_k h = *c;
    h.key = v;
    h.k.fn = comp_val_cb;
    return eval_term(e, c->f, c->t->head, &h.k);
}

static int comp_body_cb(E *e, K *k, const pc_value *v)
{
    (void)v;
    comp_k *c = (comp_k *)k;
    comp_k h = *c;
    h.k.fn = c->ob ? comp_key_cb : comp_val_cb;
    return eval_term(e, c->f, c->ob ? c->t->khead : c->t->head, &h.k);
}

static int eval_comprehension(E *e, F *f, pc_term *t, K *k)
{
    pc_vbuf vb;
    pc_obuf ob;
    pc_vbuf_init(&vb, e->arena);
    pc_obuf_init(&ob, e->arena);
    comp_k c = {.k.fn = comp_body_cb, .f = f, .t = t, .vb = &vb,
                .ob = t->kind == T_OBJCOMP ? &ob : NULL};
    if (eval_body(e, f, t->body, 0, &c.k) || e->failed) return 1;
    const pc_value *r;
    if (t->kind == T_ARRCOMP)
        r = pc_vbuf_array(&vb);
    else if (t->kind == T_SETCOMP)
        r = pc_vbuf_set(&vb);
    else
        r = pc_obuf_object(&ob);
    if (!r) return oom(e);
    return k->fn(e, k, r);
}

/* ---- calls ------------------------------------------------------------ */

typedef struct {
    K k;
    F *f;
    pc_term *t;
    uint32_t i, nin;
    const pc_value **args;
    const uint8_t *order; /* evaluation order of the arguments */
    K *next;
} call_k;

static int call_dispatch(E *e, F *f, pc_term *t, const pc_value **args, uint32_t nin, K *k);

static int call_arg_cb(E *e, K *k, const pc_value *v)
{
    call_k *c = (call_k *)k;
    c->args[c->order[c->i]] = v;
    if (c->i + 1 == c->nin) return call_dispatch(e, c->f, c->t, c->args, c->nin, c->next);
    call_k n = *c;
    n.i = c->i + 1;
    return eval_term(e, c->f, c->t->items[c->order[n.i]], &n.k);
}

typedef struct {
    K k;
    F *f;
    pc_term *out;
    K *next;
} out_k;

/* A call with an output argument is an expression whose value is true. */
typedef struct {
    K k;
    K *next;
} true_k;

static int true_cb(E *e, K *k, const pc_value *v)
{
    (void)v;
    true_k *t = (true_k *)k;
    return t->next->fn(e, t->next, pc_value_bool(true));
}

static int out_cb(E *e, K *k, const pc_value *v)
{
    out_k *o = (out_k *)k;
    true_k t = {.k.fn = true_cb, .next = o->next};
    return unify_val(e, o->f, o->out, v, &t.k);
}

static int call_user(E *e, pc_node *fn, const pc_value **args, uint32_t nargs, pc_loc loc, K *k);

static int call_builtin(E *e, const pc_builtin *bi, const pc_value **args, uint32_t nin, pc_loc loc, K *k)
{
    const pc_value *out = NULL;
    const char *saved = e->bname;
    e->bname = bi->name;
    e->cur_loc = loc;
    bool ok = bi->fn(e, args, nin, &out);
    e->bname = saved;
    if (!ok) {
        if (e->failed) {
            const char *code = e->err->code;
            bool is_mem = !strcmp(code, "eval_memory_error") || !strcmp(code, "eval_budget_error");
            if (e->strict || is_mem || (bi->flags & PC_BUILTIN_ALWAYS_RAISE) ||
                !strcmp(code, "eval_conflict_error"))
                return 1;
            /* not strict: the call is undefined and the message is dropped */
            e->failed = false;
            e->err->code[0] = 0;
            e->err->message[0] = 0;
        }
        return 0;
    }
    if (!out) return 0;
    if (bi->flags & PC_BUILTIN_RELATION) {
        if (out->kind != PC_ARRAY) return 0;
        for (uint32_t i = 0; i < out->len; i++)
            if (k->fn(e, k, out->u.items[i])) return 1;
        return 0;
    }
    return k->fn(e, k, out);
}

static const fn_override *find_fov(E *e, pc_term *t)
{
    for (uint32_t i = e->nfov; i-- > 0;) {
        const fn_override *o = &e->fov[i];
        if ((t->bi && o->bi == t->bi) || (t->fn && o->fn == t->fn)) return o;
    }
    return NULL;
}

static int call_dispatch(E *e, F *f, pc_term *t, const pc_value **args, uint32_t nin, K *k)
{
    K *target = k;
    out_k ok;
    if (t->is_output_call) {
        ok = (out_k){.k.fn = out_cb, .f = f, .out = t->items[nin], .next = k};
        target = &ok.k;
    }
    if (e->nfov) {
        const fn_override *o = find_fov(e, t);
        if (o) {
            if (o->value) return target->fn(e, target, o->value);
            pc_term *r = o->repl;
            if (r->bi) return call_builtin(e, r->bi, args, nin, t->loc, target);
            if (r->fn) {
                /* the replacement must not see itself replaced */
                uint32_t saved = e->nfov;
                e->nfov = 0;
                int rc = call_user(e, r->fn, args, nin, t->loc, target);
                e->nfov = saved;
                return rc;
            }
        }
    }
    if (t->fn) return call_user(e, t->fn, args, nin, t->loc, target);
    return call_builtin(e, t->bi, args, nin, t->loc, target);
}

static int eval_call(E *e, F *f, pc_term *t, K *k)
{
    uint32_t nin = t->is_output_call ? t->n - 1 : t->n;
    const pc_value **args = pc_arena_alloc(e->arena, (nin + 1) * sizeof(*args));
    if (!args) return oom(e);
    if (nin == 0) return call_dispatch(e, f, t, args, 0, k);
    /* Arguments that are refs go first: iterating `input.xs[i]` binds i,
     * which a plain-variable argument may need (x == input.xs[x]). */
    static const uint8_t ident[8] = {0, 1, 2, 3, 4, 5, 6, 7};
    const uint8_t *order = ident;
    uint8_t ord[8];
    if (nin <= 8) {
        bool need = false;
        for (uint32_t i = 0; i < nin; i++)
            if (t->items[i]->kind == T_VAR && t->items[i]->vkind == V_LOCAL && !f->s[t->items[i]->slot]) need = true;
        if (need) {
            uint32_t o = 0;
            for (uint32_t i = 0; i < nin; i++)
                if (t->items[i]->kind == T_REF || t->items[i]->kind == T_CALL) ord[o++] = (uint8_t)i;
            for (uint32_t i = 0; i < nin; i++)
                if (t->items[i]->kind != T_REF && t->items[i]->kind != T_CALL) ord[o++] = (uint8_t)i;
            order = ord;
        }
    } else {
        uint8_t *big = pc_arena_alloc(e->arena, nin);
        if (!big) return oom(e);
        for (uint32_t i = 0; i < nin; i++) big[i] = (uint8_t)i;
        order = big;
    }
    call_k c = {.k.fn = call_arg_cb, .f = f, .t = t, .i = 0, .nin = nin, .args = args, .order = order, .next = k};
    return eval_term(e, f, t->items[order[0]], &c.k);
}

/* ---- refs over values ------------------------------------------------- */

typedef struct {
    K k;
    F *f;
    pc_term *ref;
    uint32_t i;
    const pc_value *cur;
    K *next;
} ref_k;

static int ref_after_key(E *e, K *k, const pc_value *v)
{
    ref_k *r = (ref_k *)k;
    (void)v;
    return eval_ref_from(e, r->f, r->ref, r->i + 1, r->cur, r->next);
}

static int ref_key_cb(E *e, K *k, const pc_value *key)
{
    ref_k *r = (ref_k *)k;
    const pc_value *cur = r->cur, *nv = NULL;
    switch (cur->kind) {
    case PC_OBJECT: {
        nv = pc_value_object_get(cur, key);
        int64_t ik;
        if (!nv && key->kind == PC_NUMBER && r->ref->items[0]->kind == T_VAR &&
            r->ref->items[0]->vkind == V_DATA && pc_value_get_int(key, &ik) && pc_value_is_integral(key)) {
            /* data documents have string keys: data.x[2] finds "2" */
            char kb[32];
            int kl = snprintf(kb, sizeof(kb), "%lld", (long long)ik);
            nv = pc_value_object_get_str(cur, kb, (size_t)kl);
        }
        break;
    }
    case PC_ARRAY: {
        int64_t idx;
        if (key->kind == PC_NUMBER && pc_value_get_int(key, &idx) && pc_value_is_integral(key) &&
            idx >= 0 && (uint64_t)idx < cur->len)
            nv = cur->u.items[idx];
        break;
    }
    case PC_SET:
        if (pc_value_set_contains(cur, key)) nv = key;
        break;
    default: break;
    }
    if (!nv) return 0;
    return eval_ref_from(e, r->f, r->ref, r->i + 1, nv, r->next);
}

static int eval_ref_from(E *e, F *f, pc_term *ref, uint32_t i, const pc_value *cur, K *k)
{
    if (i == ref->n) return k->fn(e, k, cur);
    if (step(e)) return 1;
    pc_term *op = ref->items[i];
    if (op->kind == T_VALUE) {
        ref_k r = {.f = f, .ref = ref, .i = i, .cur = cur, .next = k};
        return ref_key_cb(e, &r.k, op->value);
    }
    if (unbound_pattern(e, f, op)) {
        ref_k r = {.k.fn = ref_after_key, .f = f, .ref = ref, .i = i, .cur = cur, .next = k};
        switch (cur->kind) {
        case PC_OBJECT:
            for (uint32_t j = 0; j < cur->len; j++) {
                r.cur = cur->u.kvs[j].val;
                if (unify_val(e, f, op, cur->u.kvs[j].key, &r.k)) return 1;
            }
            return 0;
        case PC_ARRAY:
            for (uint32_t j = 0; j < cur->len; j++) {
                const pc_value *idx = pc_value_int(e->arena, j);
                if (!idx) return oom(e);
                r.cur = cur->u.items[j];
                if (unify_val(e, f, op, idx, &r.k)) return 1;
            }
            return 0;
        case PC_SET:
            for (uint32_t j = 0; j < cur->len; j++) {
                r.cur = cur->u.items[j];
                if (unify_val(e, f, op, cur->u.items[j], &r.k)) return 1;
            }
            return 0;
        default: return 0;
        }
    }
    ref_k r = {.k.fn = ref_key_cb, .f = f, .ref = ref, .i = i, .cur = cur, .next = k};
    return eval_term(e, f, op, &r.k);
}

/* ---- data tree -------------------------------------------------------- */

static const pc_value *upsert(E *e, const pc_value *obj, const pc_value *const *keys, uint32_t n,
                              const pc_value *v)
{
    if (n == 0) return v;
    const pc_value *child = obj && obj->kind == PC_OBJECT ? pc_value_object_get(obj, keys[0]) : NULL;
    const pc_value *nc = upsert(e, child, keys + 1, n - 1, v);
    if (!nc) return NULL;
    pc_obuf b;
    pc_obuf_init(&b, e->arena);
    if (obj && obj->kind == PC_OBJECT)
        for (uint32_t i = 0; i < obj->len; i++)
            if (!pc_value_equal(obj->u.kvs[i].key, keys[0])) pc_obuf_put(&b, obj->u.kvs[i].key, obj->u.kvs[i].val);
    pc_obuf_put(&b, keys[0], nc);
    return pc_obuf_object(&b);
}

/* Applies data overrides strictly below `path` to v. */
static const pc_value *patch_below(E *e, const pc_value *const *path, uint32_t depth, const pc_value *v)
{
    for (uint32_t i = 0; i < e->ndov && v; i++) {
        override *o = &e->dov[i];
        if (o->len <= depth) continue;
        bool match = true;
        for (uint32_t j = 0; j < depth && match; j++)
            if (!pc_value_equal(o->path[j], path[j])) match = false;
        if (!match) continue;
        v = upsert(e, v, o->path + depth, o->len - depth, o->value);
    }
    return v;
}

/* Override exactly at path, if any (latest wins). */
static const pc_value *override_at(E *e, const pc_value *const *path, uint32_t depth)
{
    for (uint32_t i = e->ndov; i-- > 0;) {
        override *o = &e->dov[i];
        if (o->len != depth) continue;
        bool match = true;
        for (uint32_t j = 0; j < depth && match; j++)
            if (!pc_value_equal(o->path[j], path[j])) match = false;
        if (match) return o->value;
    }
    return NULL;
}

/* An override at or above path replaces the whole subtree. */

typedef struct {
    K k;
    F *f;
    pc_term *ref;
    uint32_t i;
    pc_node *n;
    K *next;
} data_k;

static int data_key_cb(E *e, K *k, const pc_value *key)
{
    data_k *d = (data_k *)k;
    pc_node *n = d->n;
    pc_node *c = key->kind == PC_STRING ? pc__node_child(n, key) : NULL;
    if (c) return eval_data(e, d->f, d->ref, d->i + 1, c, d->next);
    if ((!n->base || n->base->kind != PC_OBJECT) && !e->ndov) return 0;
    const pc_value *v = n->base && n->base->kind == PC_OBJECT ? pc_value_object_get(n->base, key) : NULL;
    int64_t ik;
    if (!v && n->base && key->kind == PC_NUMBER && pc_value_get_int(key, &ik) && pc_value_is_integral(key)) {
        /* data documents have string keys: data.x[2] finds "2" */
        char kb[32];
        int kl = snprintf(kb, sizeof(kb), "%lld", (long long)ik);
        v = pc_value_object_get_str(n->base, kb, (size_t)kl);
        if (v) key = pc_value_string(e->arena, kb, (size_t)kl);
    }
    if (e->ndov) {
        const pc_value **path = pc_arena_alloc(e->arena, (n->depth + 1) * sizeof(*path));
        if (!path) return oom(e);
        if (n->depth) memcpy(path, n->path, n->depth * sizeof(*path));
        path[n->depth] = key;
        const pc_value *ov = override_at(e, path, n->depth + 1);
        if (ov) v = ov;
        else if (v) v = patch_below(e, path, n->depth + 1, v);
        else {
            v = patch_below(e, path, n->depth + 1, pc_value_empty_object());
            if (v && v->len == 0) v = NULL;
        }
    }
    if (!v) return 0;
    return eval_ref_from(e, d->f, d->ref, d->i + 1, v, d->next);
}

typedef struct {
    K k;
    data_k *d;
    const pc_value *key;
} data_iter_k;

static int data_iter_cb(E *e, K *k, const pc_value *v)
{
    (void)v;
    data_iter_k *it = (data_iter_k *)k;
    return data_key_cb(e, &it->d->k, it->key);
}

static int eval_data(E *e, F *f, pc_term *ref, uint32_t i, pc_node *n, K *k)
{
    if (step(e)) return 1;
    if (e->ndov && n->depth) {
        const pc_value *ov = override_at(e, n->path, n->depth);
        if (ov) return eval_ref_from(e, f, ref, i, ov, k);
    }
    if (n->kind >= 0 && n->kind != R_FUNC && n->base) {
        /* a base document at a rule's path shadows the rule, as in OPA */
        return eval_ref_from(e, f, ref, i, n->base, k);
    }
    if (n->kind >= 0) {
        if (n->kind == R_FUNC) return 0;
        bool err = false;
        const pc_value *v = node_value(e, n, &err);
        if (err) return 1;
        if (!v) return 0;
        if (e->ndov) v = patch_below(e, n->path, n->depth, v);
        if (!v) return oom(e);
        return eval_ref_from(e, f, ref, i, v, k);
    }
    if (i == ref->n) {
        bool err = false;
        const pc_value *v = node_full(e, n, &err);
        if (err) return 1;
        if (!v) return 0;
        return k->fn(e, k, v);
    }
    pc_term *op = ref->items[i];
    data_k d = {.k.fn = data_key_cb, .f = f, .ref = ref, .i = i, .n = n, .next = k};
    if (op->kind == T_VALUE) return data_key_cb(e, &d.k, op->value);
    if (!unbound_pattern(e, f, op)) return eval_term(e, f, op, &d.k);
    /* iterate children and base keys in key order */
    bool err = false;
    const pc_value *full = node_full(e, n, &err);
    if (err) return 1;
    if (!full || full->kind != PC_OBJECT) return 0;
    for (uint32_t j = 0; j < full->len; j++) {
        data_iter_k it = {.k.fn = data_iter_cb, .d = &d, .key = full->u.kvs[j].key};
        if (unify_val(e, f, op, full->u.kvs[j].key, &it.k)) return 1;
    }
    return 0;
}

/* Whole document at a node without rules: base data merged with children. */
static const pc_value *node_full(E *e, pc_node *n, bool *err)
{
    if (e->ndov && n->depth) {
        const pc_value *ov = override_at(e, n->path, n->depth);
        if (ov) return ov;
    }
    if (n->kind >= 0) {
        if (n->kind == R_FUNC) return NULL;
        const pc_value *v = node_value(e, n, err);
        if (v && e->ndov) v = patch_below(e, n->path, n->depth, v);
        return v;
    }
    if (n->nkids == 0) {
        const pc_value *v = n->base;
        if (!v && n->is_pkg) v = pc_value_empty_object();
        if (e->ndov) {
            v = patch_below(e, n->path, n->depth, v ? v : pc_value_empty_object());
            if (!n->base && v && v->kind == PC_OBJECT && v->len == 0 && n->depth) v = NULL;
        }
        return v;
    }
    pc_obuf b;
    pc_obuf_init(&b, e->arena);
    if (n->base && n->base->kind == PC_OBJECT)
        for (uint32_t i = 0; i < n->base->len; i++) {
            const pc_node *c = pc__node_child(n, n->base->u.kvs[i].key);
            if (!c || (c->kind >= 0 && c->kind != R_FUNC))
                pc_obuf_put(&b, n->base->u.kvs[i].key, n->base->u.kvs[i].val);
        }
    for (uint32_t i = 0; i < n->nkids; i++) {
        pc_node *c = n->kids[i];
        if (c->kind == R_FUNC) continue;
        if (c->kind >= 0 && c->base) continue; /* shadowed by the base document */
        const pc_value *v = node_full(e, c, err);
        if (*err) return NULL;
        if (!v) continue;
        pc_obuf_put(&b, c->key, v);
    }
    const pc_value *v = pc_obuf_object(&b);
    if (!v) {
        oom(e);
        *err = true;
        return NULL;
    }
    if (e->ndov) v = patch_below(e, n->path, n->depth, v);
    return v;
}

/* ---- rules ------------------------------------------------------------ */

static F *new_frame(E *e, int nslots)
{
    F *f = pc_arena_alloc(e->arena, sizeof(F) + (size_t)(nslots + 1) * sizeof(pc_value *));
    if (!f) return NULL;
    f->s = (const pc_value **)(f + 1);
    memset(f->s, 0, (size_t)(nslots + 1) * sizeof(pc_value *));
    return f;
}

typedef struct {
    K k;
    F *f;
    pc_rule *r;
    const pc_value *result; /* complete rules / functions */
    pc_vbuf *entries;       /* partial rules: [k1..kn, v] arrays */
    const pc_value **keys;
    uint32_t nkeys, ki;
    bool conflict_fn;
    bool stop_first; /* constant value: the first solution decides */
    bool direct;     /* partial set without ref-head keys: elements go straight to entries */
} rule_k;

static int rule_value_cb(E *e, K *k, const pc_value *v)
{
    rule_k *r = (rule_k *)k;
    if (r->direct) {
        pc_vbuf_push(r->entries, v);
        return r->entries->oom ? oom(e) : 0;
    }
    if (r->entries) {
        r->keys[r->nkeys] = v;
        const pc_value *ent = pc_value_array(e->arena, r->keys, r->nkeys + 1);
        pc_vbuf_push(r->entries, ent);
        return r->entries->oom ? oom(e) : 0;
    }
    if (r->result) {
        if (!pc_value_equal(r->result, v)) {
            if (r->conflict_fn)
                return fail(e, "eval_conflict_error", r->r->loc,
                            "functions must not produce multiple outputs for same inputs");
            return fail(e, "eval_conflict_error", r->r->loc,
                        "complete rules must not produce multiple outputs");
        }
        return 0;
    }
    r->result = v;
    return r->stop_first ? 1 : 0;
}

static int rule_key_cb(E *e, K *k, const pc_value *v);

static int rule_next_key(E *e, rule_k *r)
{
    pc_rule *rule = r->r;
    uint32_t nsuffix = rule->npath - rule->nground;
    uint32_t total = nsuffix + (rule->key && rule->kind == R_POBJ ? 1 : 0);
    rule_k n = *r;
    int rc;
    if (r->ki < total) {
        pc_term *t = r->ki < nsuffix ? rule->path[rule->nground + r->ki] : rule->key;
        n.k.fn = rule_key_cb;
        rc = eval_term(e, r->f, t, &n.k);
    } else {
        n.k.fn = rule_value_cb;
        n.nkeys = r->ki;
        if (rule->kind == R_PSET)
            rc = eval_term(e, r->f, rule->key, &n.k);
        else if (!rule->value)
            rc = rule_value_cb(e, &n.k, pc_value_bool(true));
        else
            rc = eval_term(e, r->f, rule->value, &n.k);
    }
    r->result = n.result;
    return rc;
}

static int rule_key_cb(E *e, K *k, const pc_value *v)
{
    rule_k *r = (rule_k *)k;
    r->keys[r->ki] = v;
    rule_k n = *r;
    n.ki = r->ki + 1;
    int rc = rule_next_key(e, &n);
    r->result = n.result;
    return rc;
}

static int rule_body_cb(E *e, K *k, const pc_value *v)
{
    (void)v;
    rule_k *r = (rule_k *)k;
    rule_k n = *r;
    n.ki = 0;
    int rc = rule_next_key(e, &n);
    r->result = n.result;
    return rc;
}

/* Runs one rule (not its else chain); complete: returns via rk->result. */
static int run_rule(E *e, pc_rule *r, rule_k *rk)
{
    F *f = new_frame(e, r->nslots);
    if (!f) return oom(e);
    rk->f = f;
    rk->r = r;
    rk->k.fn = rule_body_cb;
    if (!rk->entries && (!r->value || r->value->kind == T_VALUE)) rk->stop_first = true;
    if (!r->body) return rule_body_cb(e, &rk->k, NULL);
    return eval_body(e, f, r->body, 0, &rk->k);
}

/* Builds the nested document of partial rules from entries [k1..kn, v]. */
static const pc_value *build_partial(E *e, pc_node *n, const pc_value *const *ents, size_t nents,
                                     uint32_t depth, bool *err)
{
    bool set_leaf = n->kind == R_PSET;
    /* group by key at depth; leaves have len == depth + 1 (value only) */
    if (nents == 0) return set_leaf && depth == 0 ? pc_value_empty_set() : pc_value_empty_object();
    bool any_leaf = false, any_inner = false;
    for (size_t i = 0; i < nents; i++) {
        if (ents[i]->len == depth + 1)
            any_leaf = true;
        else
            any_inner = true;
    }
    if (any_leaf && any_inner) {
        fail(e, "eval_conflict_error", n->rules[0]->loc, "object keys must be unique");
        *err = true;
        return NULL;
    }
    if (any_leaf) {
        if (set_leaf) {
            pc_vbuf b;
            pc_vbuf_init(&b, e->arena);
            for (size_t i = 0; i < nents; i++) pc_vbuf_push(&b, ents[i]->u.items[depth]);
            return pc_vbuf_set(&b);
        }
        const pc_value *v = ents[0]->u.items[depth];
        for (size_t i = 1; i < nents; i++)
            if (!pc_value_equal(v, ents[i]->u.items[depth])) {
                fail(e, "eval_conflict_error", n->rules[0]->loc, "object keys must be unique");
                *err = true;
                return NULL;
            }
        return v;
    }
    /* sort entries by key at depth (stable insertion is fine: entries are few) */
    const pc_value **sorted = pc_arena_alloc(e->arena, nents * sizeof(*sorted));
    if (!sorted) {
        oom(e);
        *err = true;
        return NULL;
    }
    memcpy(sorted, ents, nents * sizeof(*sorted));
    for (size_t i = 1; i < nents; i++) {
        const pc_value *x = sorted[i];
        size_t j = i;
        while (j > 0 && pc_value_compare(sorted[j - 1]->u.items[depth], x->u.items[depth]) > 0) {
            sorted[j] = sorted[j - 1];
            j--;
        }
        sorted[j] = x;
    }
    pc_obuf b;
    pc_obuf_init(&b, e->arena);
    for (size_t i = 0; i < nents;) {
        size_t j = i + 1;
        while (j < nents && pc_value_equal(sorted[j]->u.items[depth], sorted[i]->u.items[depth])) j++;
        const pc_value *sub = build_partial(e, n, sorted + i, j - i, depth + 1, err);
        if (*err) return NULL;
        pc_obuf_put(&b, sorted[i]->u.items[depth], sub);
        i = j;
    }
    const pc_value *v = pc_obuf_object(&b);
    if (!v) {
        oom(e);
        *err = true;
    }
    return v;
}

/* Two rules contribute to one document: objects merge, sets unite, equal
 * values agree, anything else is a conflict. */
/* depth: how many levels of x were built from rule keys; below that, x is a
 * rule's value, which another rule may not extend (only a set may grow). */
static const pc_value *merge_docs(E *e, const pc_value *x, const pc_value *y, pc_node *n, int depth, bool *err)
{
    if (pc_value_equal(x, y)) return x;
    if (x->kind == PC_SET && y->kind == PC_SET) {
        pc_vbuf b;
        pc_vbuf_init(&b, e->arena);
        for (uint32_t i = 0; i < x->len; i++) pc_vbuf_push(&b, x->u.items[i]);
        for (uint32_t i = 0; i < y->len; i++) pc_vbuf_push(&b, y->u.items[i]);
        const pc_value *r = pc_vbuf_set(&b);
        if (!r) {
            oom(e);
            *err = true;
        }
        return r;
    }
    if (x->kind == PC_OBJECT && y->kind == PC_OBJECT && depth > 0) {
        const pc_value *r = x;
        for (uint32_t i = 0; i < y->len; i++) {
            const pc_value *k = y->u.kvs[i].key;
            const pc_value *xv = pc_value_object_get(x, k);
            const pc_value *v = xv ? merge_docs(e, xv, y->u.kvs[i].val, n, depth - 1, err) : y->u.kvs[i].val;
            if (*err) return NULL;
            r = upsert(e, r, &k, 1, v);
            if (!r) {
                oom(e);
                *err = true;
                return NULL;
            }
        }
        return r;
    }
    pc_rule *r = n->nrules ? n->rules[0] : NULL;
    fail(e, "eval_conflict_error", r ? r->loc : (pc_loc){0}, "object keys must be unique");
    *err = true;
    return NULL;
}

static const pc_value *node_value(E *e, pc_node *n, bool *err)
{
    const pc_value *c = e->cache[n->id];
    if (c) return c == &UNDEF_MARK ? NULL : c;
    if (e->busy[n->id]) {
        pc_rule *r = n->nrules ? n->rules[0] : n->dflt;
        fail(e, "rego_recursion_error", r ? r->loc : (pc_loc){0}, "rego_recursion_error: rule %s is recursive",
             r ? r->name : "?");
        *err = true;
        return NULL;
    }
    e->busy[n->id] = 1;
    const pc_value *result = NULL;
    if (n->kind == R_COMPLETE) {
        const pc_value *found = NULL;
        for (uint32_t i = 0; i < n->nrules; i++) {
            for (pc_rule *r = n->rules[i]; r; r = r->els) {
                rule_k rk = {0};
                run_rule(e, r, &rk);
                if (e->failed) goto error;
                if (rk.result) {
                    if (found && !pc_value_equal(found, rk.result)) {
                        fail(e, "eval_conflict_error", r->loc, "complete rules must not produce multiple outputs");
                        goto error;
                    }
                    found = rk.result;
                    break;
                }
            }
            if (found && n->const_all) break; /* other rules can only agree */
        }
        if (!found && n->dflt) {
            rule_k rk = {0};
            run_rule(e, n->dflt, &rk);
            if (e->failed) goto error;
            found = rk.result;
        }
        result = found;
    } else {
        pc_vbuf ents;
        pc_vbuf_init(&ents, e->arena);
        bool direct = n->kind == R_PSET;
        for (uint32_t i = 0; i < n->nrules; i++)
            if (n->rules[i]->npath != n->rules[i]->nground) direct = false;
        for (uint32_t i = 0; i < n->nrules; i++) {
            pc_rule *r = n->rules[i];
            uint32_t nk = r->npath - r->nground + 2;
            rule_k rk = {0};
            rk.entries = &ents;
            rk.direct = direct;
            rk.keys = pc_arena_alloc(e->arena, nk * sizeof(pc_value *));
            if (!rk.keys) {
                oom(e);
                goto error;
            }
            run_rule(e, r, &rk);
                if (e->failed) goto error;
        }
        if (ents.oom) {
            oom(e);
            goto error;
        }
        if (direct) {
            result = pc_vbuf_set(&ents);
            if (!result) {
                oom(e);
                goto error;
            }
        } else {
            result = build_partial(e, n, ents.items, ents.len, 0, err);
        }
        if (*err) goto error;
        /* rules defined below this node (p.q.r := ...) add to the same document */
        for (uint32_t i = 0; i < n->nkids && result; i++) {
            pc_node *kid = n->kids[i];
            if (!kid->has_rules_below || kid->kind == R_FUNC) continue;
            const pc_value *cv = node_full(e, kid, err);
            if (*err) goto error;
            if (!cv) continue;
            const pc_value *mine = result->kind == PC_OBJECT ? pc_value_object_get(result, kid->key) : NULL;
            const pc_value *merged = cv;
            if (mine) {
                int depth = INT32_MAX;
                for (uint32_t j = 0; j < n->nrules; j++) {
                    int d = (int)(n->rules[j]->npath - n->rules[j]->nground) - 1;
                    if (d < depth) depth = d;
                }
                merged = merge_docs(e, mine, cv, n, depth, err);
                if (*err) goto error;
            }
            const pc_value *key = kid->key;
            result = upsert(e, result, &key, 1, merged);
            if (!result) {
                oom(e);
                goto error;
            }
        }
        if (!result && n->dflt) {
            rule_k rk = {0};
            run_rule(e, n->dflt, &rk);
            if (e->failed) goto error;
            result = rk.result;
        }
    }
    e->busy[n->id] = 0;
    e->cache[n->id] = result ? result : &UNDEF_MARK;
    return result;
error:
    e->busy[n->id] = 0;
    *err = true;
    return NULL;
}

typedef struct {
    K k;
    F *f;
    pc_rule *r;
    const pc_value **args;
    uint32_t i, n;
    rule_k *rk;
} fnarg_k;

static int fnarg_cb(E *e, K *k, const pc_value *v)
{
    (void)v;
    fnarg_k *a = (fnarg_k *)k;
    if (a->i == a->n) {
        if (!a->r->body) return rule_body_cb(e, &a->rk->k, NULL);
        return eval_body(e, a->f, a->r->body, 0, &a->rk->k);
    }
    fnarg_k n = *a;
    n.i = a->i + 1;
    return unify_val(e, a->f, a->r->args[a->i], a->args[a->i], &n.k);
}

static int call_user(E *e, pc_node *fn, const pc_value **args, uint32_t nargs, pc_loc loc, K *k)
{
    if (e->busy[fn->id])
        return fail(e, "rego_recursion_error", loc, "rego_recursion_error: function %s is recursive",
                    fn->nrules ? fn->rules[0]->name : "?");
    e->busy[fn->id] = 1;
    const pc_value *found = NULL;
    pc_rule *found_rule = NULL;
    for (uint32_t i = 0; i < fn->nrules; i++) {
        for (pc_rule *r = fn->rules[i]; r; r = r->els) {
            F *f = new_frame(e, r->nslots);
            if (!f) {
                e->busy[fn->id] = 0;
                return oom(e);
            }
            rule_k rk = {.k.fn = rule_body_cb, .f = f, .r = r, .conflict_fn = true,
                         .stop_first = !r->value || r->value->kind == T_VALUE};
            fnarg_k a = {.k.fn = fnarg_cb, .f = f, .r = r, .args = args, .i = 0, .n = nargs, .rk = &rk};
            fnarg_cb(e, &a.k, NULL);
            if (e->failed) {
                e->busy[fn->id] = 0;
                return 1;
            }
            if (rk.result) {
                if (found && !pc_value_equal(found, rk.result)) {
                    e->busy[fn->id] = 0;
                    return fail(e, "eval_conflict_error", r->loc,
                                "functions must not produce multiple outputs for same inputs");
                }
                found = rk.result;
                found_rule = r;
                break;
            }
        }
    }
    (void)found_rule;
    if (!found && fn->dflt) {
        rule_k rk = {0};
        run_rule(e, fn->dflt, &rk);
        if (e->failed) {
            e->busy[fn->id] = 0;
            return 1;
        }
        found = rk.result;
    }
    e->busy[fn->id] = 0;
    if (!found) return 0;
    return k->fn(e, k, found);
}

/* ---- term evaluation -------------------------------------------------- */

typedef struct {
    K k;
    F *f;
    pc_term *ref;
    K *next;
} refhead_k;

static int refhead_cb(E *e, K *k, const pc_value *v)
{
    refhead_k *r = (refhead_k *)k;
    return eval_ref_from(e, r->f, r->ref, 1, v, r->next);
}

static int eval_term(E *e, F *f, pc_term *t, K *k)
{
    switch (t->kind) {
    case T_VALUE: return k->fn(e, k, t->value);
    case T_VAR: {
        if (t->vkind == V_DATA) {
            pc_term tmp = {.kind = T_REF, .n = 1};
            pc_term *items[1] = {t};
            tmp.items = items;
            return eval_data(e, f, &tmp, 1, e->ps->root, k);
        }
        const pc_value *v = var_val(e, f, t);
        if (!v) {
            if (t->vkind == V_INPUT) return 0;
            return fail(e, "rego_unsafe_var_error", t->loc, "var %s is unsafe",
                        t->name[0] == '$' ? "_" : t->name);
        }
        return k->fn(e, k, v);
    }
    case T_REF: {
        pc_term *h = t->items[0];
        if (h->kind == T_VAR && h->vkind == V_DATA) return eval_data(e, f, t, 1, e->ps->root, k);
        if (h->kind == T_VAR && h->vkind == V_INPUT) {
            if (!e->input) return 0;
            return eval_ref_from(e, f, t, 1, e->input, k);
        }
        refhead_k r = {.k.fn = refhead_cb, .f = f, .ref = t, .next = k};
        return eval_term(e, f, h, &r.k);
    }
    case T_ARRAY:
    case T_SET:
    case T_OBJECT: {
        if (t->n == 0) {
            return k->fn(e, k, t->kind == T_ARRAY ? pc_value_empty_array()
                               : t->kind == T_SET ? pc_value_empty_set()
                                                  : pc_value_empty_object());
        }
        uint32_t total = t->kind == T_OBJECT ? t->n * 2 : t->n;
        const pc_value **vals = pc_arena_alloc(e->arena, total * sizeof(*vals));
        if (!vals) return oom(e);
        return eval_items(e, f, t, 0, vals, k);
    }
    case T_ARRCOMP:
    case T_SETCOMP:
    case T_OBJCOMP: return eval_comprehension(e, f, t, k);
    case T_CALL: return eval_call(e, f, t, k);
    }
    return 0;
}

/* ---- unification ------------------------------------------------------ */

typedef struct {
    K k;
    F *f;
    pc_term *t;
    const pc_value *v;
    uint32_t i;
    K *next;
} uni_k;

static int unify_items_from(E *e, K *k, const pc_value *unused)
{
    (void)unused;
    uni_k *u = (uni_k *)k;
    pc_term *t = u->t;
    const pc_value *v = u->v;
    if (u->i == t->n) return u->next->fn(e, u->next, v);
    uni_k n = *u;
    n.i = u->i + 1;
    if (t->kind == T_ARRAY) return unify_val(e, u->f, t->items[u->i], v->u.items[u->i], &n.k);
    /* object: keys must be ground */
    pc_term *kt = t->keys[u->i];
    const pc_value *kv = NULL;
    if (kt->kind == T_VALUE)
        kv = kt->value;
    else if (kt->kind == T_VAR && kt->vkind == V_LOCAL)
        kv = u->f->s[kt->slot];
    if (!kv) {
        /* evaluate the key term */
        typedef struct {
            K k;
            uni_k *n;
        } kk;
        (void)sizeof(kk);
        return fail(e, "rego_unsafe_var_error", kt->loc, "var %s is unsafe", kt->name ? kt->name : "key");
    }
    const pc_value *mv = pc_value_object_get(v, kv);
    if (!mv) return 0;
    return unify_val(e, u->f, t->items[u->i], mv, &n.k);
}

typedef struct {
    K k;
    const pc_value *v;
    K *next;
} eq_k;

static int eq_cb(E *e, K *k, const pc_value *x)
{
    eq_k *q = (eq_k *)k;
    if (!pc_value_equal(x, q->v)) return 0;
    return q->next->fn(e, q->next, q->v);
}

static int unify_val(E *e, F *f, pc_term *t, const pc_value *v, K *k)
{
    switch (t->kind) {
    case T_VAR:
        if (t->vkind == V_LOCAL) {
            const pc_value *cur = f->s[t->slot];
            if (!cur) {
                f->s[t->slot] = v;
                int rc = k->fn(e, k, v);
                f->s[t->slot] = NULL;
                return rc;
            }
            if (!pc_value_equal(cur, v)) return 0;
            return k->fn(e, k, v);
        }
        break;
    case T_VALUE:
        if (!pc_value_equal(t->value, v)) return 0;
        return k->fn(e, k, v);
    case T_ARRAY:
        if (unbound_pattern(e, f, t)) {
            if (v->kind != PC_ARRAY || v->len != t->n) return 0;
            uni_k u = {.k.fn = unify_items_from, .f = f, .t = t, .v = v, .i = 0, .next = k};
            return unify_items_from(e, &u.k, NULL);
        }
        break;
    case T_OBJECT:
        if (unbound_pattern(e, f, t)) {
            if (v->kind != PC_OBJECT || v->len != t->n) return 0;
            uni_k u = {.k.fn = unify_items_from, .f = f, .t = t, .v = v, .i = 0, .next = k};
            return unify_items_from(e, &u.k, NULL);
        }
        break;
    default: break;
    }
    eq_k q = {.k.fn = eq_cb, .v = v, .next = k};
    return eval_term(e, f, t, &q.k);
}

typedef struct {
    K k;
    F *f;
    pc_term *other;
    K *next;
} uni2_k;

static int uni2_cb(E *e, K *k, const pc_value *v)
{
    uni2_k *u = (uni2_k *)k;
    return unify_val(e, u->f, u->other, v, u->next);
}

/* Element-wise unification of two patterns: [x, 1] = [2, y]. */
typedef struct {
    K k;
    F *f;
    pc_term **as, **bs;
    uint32_t i, n;
    K *next;
} pair_k;

static int unify_terms(E *e, F *f, pc_term *a, pc_term *b, K *k);

static int pair_cb(E *e, K *k, const pc_value *unused)
{
    (void)unused;
    pair_k *p = (pair_k *)k;
    if (p->i == p->n) return p->next->fn(e, p->next, NULL);
    pair_k n = *p;
    n.i = p->i + 1;
    return unify_terms(e, p->f, p->as[p->i], p->bs[p->i], &n.k);
}

static int unify_terms(E *e, F *f, pc_term *a, pc_term *b, K *k)
{
    bool pa = unbound_pattern(e, f, a), pb = unbound_pattern(e, f, b);
    if (!pb) {
        uni2_k u = {.k.fn = uni2_cb, .f = f, .other = a, .next = k};
        return eval_term(e, f, b, &u.k);
    }
    if (!pa) {
        uni2_k u = {.k.fn = uni2_cb, .f = f, .other = b, .next = k};
        return eval_term(e, f, a, &u.k);
    }
    if (a->kind == T_ARRAY && b->kind == T_ARRAY) {
        if (a->n != b->n) return 0;
        pair_k p = {.k.fn = pair_cb, .f = f, .as = a->items, .bs = b->items, .n = a->n, .next = k};
        return pair_cb(e, &p.k, NULL);
    }
    if (a->kind == T_OBJECT && b->kind == T_OBJECT) {
        /* match values by constant keys */
        if (a->n != b->n) return 0;
        pc_term **bs = pc_arena_alloc(e->arena, (a->n + 1) * sizeof(*bs));
        if (!bs) return oom(e);
        for (uint32_t i = 0; i < a->n; i++) {
            bs[i] = NULL;
            if (a->keys[i]->kind != T_VALUE) break;
            for (uint32_t j = 0; j < b->n; j++)
                if (b->keys[j]->kind == T_VALUE && pc_value_equal(a->keys[i]->value, b->keys[j]->value)) bs[i] = b->items[j];
            if (!bs[i]) return 0;
        }
        pair_k p = {.k.fn = pair_cb, .f = f, .as = a->items, .bs = bs, .n = a->n, .next = k};
        return pair_cb(e, &p.k, NULL);
    }
    pc_term *bad = a->kind == T_VAR ? a : b;
    return fail(e, "rego_unsafe_var_error", bad->loc, "var %s is unsafe",
                bad->kind == T_VAR && bad->name && bad->name[0] != '$' ? bad->name : "_");
}

/* ---- expressions ------------------------------------------------------ */

typedef struct {
    K k;
    F *f;
    pc_body *b;
    uint32_t i;
    K *next;
} body_k;

static int body_next_cb(E *e, K *k, const pc_value *v)
{
    (void)v;
    body_k *b = (body_k *)k;
    return eval_body(e, b->f, b->b, b->i + 1, b->next);
}


typedef struct {
    K k;
    bool found;
} found_k;

static int found_cb(E *e, K *k, const pc_value *v)
{
    (void)e;
    (void)v;
    ((found_k *)k)->found = true;
    return 1; /* one solution is enough */
}

typedef struct {
    K k;
    F *f;
    pc_expr *x;
    const pc_value *coll;
    uint32_t idx;
    K *next;
} somein_k;

static int somein_key_cb(E *e, K *k, const pc_value *unused)
{
    (void)unused;
    somein_k *s = (somein_k *)k;
    const pc_value *c = s->coll;
    const pc_value *val = c->kind == PC_OBJECT ? c->u.kvs[s->idx].val : c->u.items[s->idx];
    return unify_val(e, s->f, s->x->b, val, s->next);
}

static int eval_somein(E *e, F *f, pc_expr *x, const pc_value *coll, K *next)
{
    if (coll->kind != PC_ARRAY && coll->kind != PC_OBJECT && coll->kind != PC_SET) return 0;
    for (uint32_t i = 0; i < coll->len; i++) {
        if (step(e)) return 1;
        somein_k s = {.k.fn = somein_key_cb, .f = f, .x = x, .coll = coll, .idx = i, .next = next};
        if (x->a) {
            const pc_value *key = coll->kind == PC_OBJECT ? coll->u.kvs[i].key
                                 : coll->kind == PC_SET   ? coll->u.items[i]
                                                          : pc_value_int(e->arena, i);
            if (!key) return oom(e);
            if (unify_val(e, f, x->a, key, &s.k)) return 1;
        } else {
            if (somein_key_cb(e, &s.k, NULL)) return 1;
        }
    }
    return 0;
}

typedef struct {
    K k;
    F *f;
    pc_expr *x;
    K *next;
} coll_k;

static int somein_coll_cb(E *e, K *k, const pc_value *coll)
{
    coll_k *c = (coll_k *)k;
    return eval_somein(e, c->f, c->x, coll, c->next);
}

static int every_coll_cb(E *e, K *k, const pc_value *coll)
{
    coll_k *c = (coll_k *)k;
    pc_expr *x = c->x;
    if (coll->kind != PC_ARRAY && coll->kind != PC_OBJECT && coll->kind != PC_SET) return 0;
    {
        for (uint32_t i = 0; i < coll->len; i++) {
            const pc_value *key = coll->kind == PC_OBJECT ? coll->u.kvs[i].key
                                 : coll->kind == PC_SET   ? coll->u.items[i]
                                                          : pc_value_int(e->arena, i);
            const pc_value *val = coll->kind == PC_OBJECT ? coll->u.kvs[i].val : coll->u.items[i];
            if (!key) return oom(e);
            if (x->a) c->f->s[x->a->slot] = key;
            c->f->s[x->b->slot] = val;
            found_k fk = {.k.fn = found_cb};
            eval_body(e, c->f, x->body, 0, &fk.k);
            if (x->a) c->f->s[x->a->slot] = NULL;
            c->f->s[x->b->slot] = NULL;
            if (e->failed) return 1;
            if (!fk.found) return 0;
        }
    }
    return c->next->fn(e, c->next, NULL);
}

static int eval_expr_core(E *e, F *f, pc_expr *x, K *k);

/* A term expression holds when its value is not false. */
typedef struct {
    K k;
    K *next;
} truth_k;

static int truth_cb(E *e, K *k, const pc_value *v)
{
    truth_k *t = (truth_k *)k;
    if (v && v->kind == PC_BOOL && !v->u.b) return 0;
    return t->next->fn(e, t->next, v);
}

/* `with`: evaluate the value terms, install overrides, run, restore. */
typedef struct {
    K k;
    F *f;
    pc_expr *x;
    uint32_t i;
    const pc_value **vals;
    pc_term **repls;
    K *next;
} with_k;

static int keys_of_ref(E *e, F *f, pc_term *t, const pc_value ***out, uint32_t *n)
{
    *n = t->kind == T_REF ? t->n - 1 : 0;
    *out = pc_arena_alloc(e->arena, (*n + 1) * sizeof(pc_value *));
    if (!*out) return oom(e);
    for (uint32_t i = 0; i < *n; i++) {
        pc_term *it = t->items[i + 1];
        const pc_value *v = NULL;
        if (it->kind == T_VALUE)
            v = it->value;
        else if (it->kind == T_VAR && it->vkind == V_LOCAL)
            v = f->s[it->slot];
        if (!v) return fail(e, "rego_compile_error", it->loc, "with keyword target must be a ground reference");
        (*out)[i] = v;
    }
    return 0;
}

static int install_withs(E *e, F *f, pc_expr *x, const pc_value **vals, pc_term **repls)
{
    bool data_touched = false;
    uint32_t nfov0 = e->nfov;
    for (uint32_t i = 0; i < x->nwith; i++) {
        pc_with *w = &x->withs[i];
        pc_term *tg = w->target;
        pc_term *h = tg->kind == T_REF ? tg->items[0] : tg;
        pc_node *fnode = NULL;
        if (h->kind == T_VAR && h->vkind == V_DATA) {
            fnode = e->ps->root;
            for (uint32_t j = 1; tg->kind == T_REF && j < tg->n && fnode; j++)
                fnode = tg->items[j]->kind == T_VALUE ? pc__node_child(fnode, tg->items[j]->value) : NULL;
            if (fnode && fnode->kind != R_FUNC) fnode = NULL;
        }
        if (h->kind == T_VAR && h->vkind == V_INPUT) {
            const pc_value **keys;
            uint32_t n;
            if (keys_of_ref(e, f, tg, &keys, &n)) return 1;
            const pc_value *ni = n == 0 ? vals[i]
                                        : upsert(e, e->input ? e->input : pc_value_empty_object(), keys, n, vals[i]);
            if (!ni) return oom(e);
            e->input = ni;
            data_touched = true;
        } else if (h->kind == T_VAR && h->vkind == V_DATA && !fnode) {
            const pc_value **keys;
            uint32_t n;
            if (keys_of_ref(e, f, tg, &keys, &n)) return 1;
            override *nd = pc_arena_alloc(e->arena, (e->ndov + 1) * sizeof(*nd));
            if (!nd) return oom(e);
            if (e->ndov) memcpy(nd, e->dov, e->ndov * sizeof(*nd));
            nd[e->ndov].path = keys;
            nd[e->ndov].len = n;
            nd[e->ndov].value = vals[i];
            e->dov = nd;
            e->ndov++;
            data_touched = true;
        } else {
            fn_override *nf = pc_arena_alloc(e->arena, (e->nfov + 1) * sizeof(*nf));
            if (!nf) return oom(e);
            if (e->nfov) memcpy(nf, e->fov, e->nfov * sizeof(*nf));
            memset(&nf[e->nfov], 0, sizeof(*nf));
            if (fnode) {
                nf[e->nfov].fn = fnode;
            } else {
                char name[256];
                size_t o;
                if (tg->kind == T_VAR) {
                    o = (size_t)snprintf(name, sizeof(name), "%s", tg->name);
                } else {
                    o = (size_t)snprintf(name, sizeof(name), "%s", tg->items[0]->name ? tg->items[0]->name : "");
                    for (uint32_t j = 1; j < tg->n && o < sizeof(name); j++)
                        if (tg->items[j]->kind == T_VALUE && tg->items[j]->value->kind == PC_STRING)
                            o += (size_t)snprintf(name + o, sizeof(name) - o, ".%s", tg->items[j]->value->u.s);
                }
                nf[e->nfov].bi = pc_builtin_lookup(name, strlen(name));
                if (!nf[e->nfov].bi)
                    return fail(e, "rego_compile_error", w->loc,
                                "with keyword replacing built-in function: target must be a function");
            }
            if (vals[i])
                nf[e->nfov].value = vals[i];
            else
                nf[e->nfov].repl = repls[i];
            e->fov = nf;
            e->nfov++;
        }
    }
    if (data_touched || e->nfov != nfov0) {
        size_t nn = (size_t)e->ps->nnodes;
        e->cache = pc_arena_alloc(e->arena, nn * sizeof(*e->cache));
        e->busy = pc_arena_alloc(e->arena, nn);
        if (!e->cache || !e->busy) return oom(e);
        memset(e->cache, 0, nn * sizeof(*e->cache));
        memset(e->busy, 0, nn);
    }
    return 0;
}

typedef struct {
    const pc_value *input;
    override *dov;
    uint32_t ndov;
    fn_override *fov;
    uint32_t nfov;
    const pc_value **cache;
    uint8_t *busy;
} env;

static void env_save(E *e, env *s)
{
    *s = (env){e->input, e->dov, e->ndov, e->fov, e->nfov, e->cache, e->busy};
}

static void env_load(E *e, const env *s)
{
    e->input = s->input;
    e->dov = s->dov;
    e->ndov = s->ndov;
    e->fov = s->fov;
    e->nfov = s->nfov;
    e->cache = s->cache;
    e->busy = s->busy;
}

typedef struct {
    K k;
    K *next;
    env outer;
} restore_k;

static int restore_cb(E *e, K *k, const pc_value *v)
{
    restore_k *r = (restore_k *)k;
    env inner;
    env_save(e, &inner);
    env_load(e, &r->outer);
    int rc = r->next->fn(e, r->next, v);
    env_load(e, &inner);
    return rc;
}

/* A function used as a with value is a replacement, not a value. */
static bool is_fn_ref(E *e, pc_term *t, pc_term **as_call)
{
    char name[256];
    size_t o = 0;
    pc_node *n = NULL;
    if (t->kind == T_VAR && t->vkind == V_LOCAL) {
        o = (size_t)snprintf(name, sizeof(name), "%s", t->name);
    } else if (t->kind == T_REF && t->items[0]->kind == T_VAR) {
        if (t->items[0]->vkind == V_DATA) {
            n = e->ps->root;
            for (uint32_t j = 1; j < t->n && n; j++)
                n = t->items[j]->kind == T_VALUE ? pc__node_child(n, t->items[j]->value) : NULL;
            if (n && n->kind == R_FUNC) {
                pc_term *c = pc_arena_alloc(e->arena, sizeof(*c));
                if (!c) return false;
                memset(c, 0, sizeof(*c));
                c->kind = T_CALL;
                c->fn = n;
                *as_call = c;
                return true;
            }
            return false;
        }
        o = (size_t)snprintf(name, sizeof(name), "%s", t->items[0]->name);
        for (uint32_t j = 1; j < t->n && o < sizeof(name); j++) {
            if (t->items[j]->kind != T_VALUE || t->items[j]->value->kind != PC_STRING) return false;
            o += (size_t)snprintf(name + o, sizeof(name) - o, ".%s", t->items[j]->value->u.s);
        }
    } else {
        return false;
    }
    const pc_builtin *bi = pc_builtin_lookup(name, o);
    if (!bi) return false;
    pc_term *c = pc_arena_alloc(e->arena, sizeof(*c));
    if (!c) return false;
    memset(c, 0, sizeof(*c));
    c->kind = T_CALL;
    c->bi = bi;
    *as_call = c;
    return true;
}

static int with_run(E *e, F *f, pc_expr *x, const pc_value **vals, pc_term **repls, K *next)
{
    env outer;
    env_save(e, &outer);
    if (install_withs(e, f, x, vals, repls)) {
        env_load(e, &outer);
        return 1;
    }
    restore_k r = {.k.fn = restore_cb, .next = next, .outer = outer};
    int rc = eval_expr_core(e, f, x, &r.k);
    env_load(e, &outer);
    return rc;
}

static int with_vals_cb(E *e, K *k, const pc_value *v);

static int with_eval_value(E *e, with_k *w)
{
    pc_term *vt = w->x->withs[w->i].value;
    pc_term *call = NULL;
    if (is_fn_ref(e, vt, &call)) {
        w->repls[w->i] = call;
        w->vals[w->i] = NULL;
        if (w->i + 1 < w->x->nwith) {
            with_k n = *w;
            n.i = w->i + 1;
            return with_eval_value(e, &n);
        }
        return with_run(e, w->f, w->x, w->vals, w->repls, w->next);
    }
    return eval_term(e, w->f, vt, &w->k);
}

static int with_vals_cb(E *e, K *k, const pc_value *v)
{
    with_k *w = (with_k *)k;
    w->vals[w->i] = v;
    if (w->i + 1 < w->x->nwith) {
        with_k n = *w;
        n.i = w->i + 1;
        return with_eval_value(e, &n);
    }
    return with_run(e, w->f, w->x, w->vals, w->repls, w->next);
}

static int eval_expr(E *e, F *f, pc_expr *x, K *k)
{
    if (step(e)) return 1;
    if (!x->nwith) return eval_expr_core(e, f, x, k);
    const pc_value **vals = pc_arena_alloc(e->arena, x->nwith * sizeof(*vals));
    pc_term **repls = pc_arena_alloc(e->arena, x->nwith * sizeof(*repls));
    if (!vals || !repls) return oom(e);
    memset(repls, 0, x->nwith * sizeof(*repls));
    with_k w = {.k.fn = with_vals_cb, .f = f, .x = x, .i = 0, .vals = vals, .repls = repls, .next = k};
    return with_eval_value(e, &w);
}

static int eval_expr_core(E *e, F *f, pc_expr *x, K *k)
{
    e->cur_loc = x->loc;
    switch (x->kind) {
    case E_TERM: {
        body_k *b = (body_k *)k;
        (void)b;
        typedef struct {
            K k;
            K *next;
        } tk;
        (void)sizeof(tk);
        return eval_term(e, f, x->a, k);
    }
    case E_UNIFY:
    case E_ASSIGN: return unify_terms(e, f, x->a, x->b, k);
    case E_SOME: return k->fn(e, k, NULL);
    case E_SOMEIN: {
        coll_k c = {.k.fn = somein_coll_cb, .f = f, .x = x, .next = k};
        return eval_term(e, f, x->c, &c.k);
    }
    case E_EVERY: {
        coll_k c = {.k.fn = every_coll_cb, .f = f, .x = x, .next = k};
        found_k any = {.k.fn = found_cb};
        (void)any;
        /* an undefined domain makes `every` true */
        typedef struct {
            K k;
            coll_k *c;
            bool seen;
        } dk;
        (void)sizeof(dk);
        return eval_term(e, f, x->c, &c.k);
    }
    case E_NOT: {
        found_k fk = {.k.fn = found_cb};
        truth_k tk = {.k.fn = truth_cb, .next = &fk.k};
        if (x->body)
            eval_body(e, f, x->body, 0, &fk.k);
        else
            eval_expr(e, f, x->inner, x->inner->kind == E_TERM ? &tk.k : &fk.k);
        if (e->failed) return 1;
        if (fk.found) return 0;
        return k->fn(e, k, NULL);
    }
    }
    return 0;
}


static int eval_body(E *e, F *f, pc_body *b, uint32_t i, K *k)
{
    if (step(e)) return 1;
    if (i == b->n) return k->fn(e, k, NULL);
    body_k n = {.k.fn = body_next_cb, .f = f, .b = b, .i = i, .next = k};
    pc_expr *x = b->exprs[i];
    if (x->kind == E_TERM) {
        truth_k t = {.k.fn = truth_cb, .next = &n.k};
        return eval_expr(e, f, x, &t.k);
    }
    return eval_expr(e, f, x, &n.k);
}

/* ---- public API ------------------------------------------------------- */

pc_eval *pc_eval_new(pc_policy_set *ps, const pc_eval_limits *limits)
{
    pc_eval *ev = pc_xcalloc(1, sizeof(*ev));
    if (limits) ev->lim = *limits;
    if (!ev->lim.max_steps) ev->lim.max_steps = DEFAULT_STEPS;
    if (!ev->lim.max_bytes) ev->lim.max_bytes = DEFAULT_BYTES;
    ev->c.ps = pc_policy_set_ref(ps);
    ev->c.arena = pc_arena_new(ev->lim.max_bytes);
    return ev;
}

void pc_eval_free(pc_eval *ev)
{
    if (!ev) return;
    pc_arena_free(ev->c.arena);
    pc_policy_set_unref(ev->c.ps);
    free(ev);
}

pc_arena *pc_eval_input_arena(pc_eval *ev) { return ev->c.arena; }

void pc_eval_reset(pc_eval *ev) { pc_arena_reset(ev->c.arena); }

static bool eval_begin(pc_eval *ev, const pc_value *input, pc_policy_error *err)
{
    E *e = &ev->c;
    e->input = input;
    e->steps = 0;
    e->max_steps = ev->lim.max_steps;
    e->strict = ev->lim.strict_builtin_errors;
    e->err = err;
    e->failed = false;
    e->ndov = e->nfov = 0;
    e->dov = NULL;
    e->fov = NULL;
    e->have_now = false;
    e->bname = NULL;
    err->code[0] = 0;
    err->message[0] = 0;
    err->file[0] = 0;
    err->row = err->col = 0;
    size_t nn = (size_t)e->ps->nnodes;
    void *mem = pc_arena_alloc(e->arena, nn * (sizeof(*e->cache) + 1) + 8);
    if (!mem) {
        oom(e);
        return false;
    }
    memset(mem, 0, nn * (sizeof(*e->cache) + 1));
    e->cache = mem;
    e->busy = (uint8_t *)(e->cache + nn);
    return true;
}



/* The full value of node n, evaluation already begun. */
static int eval_node(E *e, pc_node *n, const pc_value **out)
{
    bool ferr = false;
    const pc_value *v = node_full(e, n, &ferr);
    if (ferr || e->failed) return -1;
    *out = v;
    return v ? 1 : 0;
}

int pc_eval_rule(pc_eval *ev, const char *path, const pc_value *input, const pc_value **out,
                 pc_policy_error *err)
{
    E *e = &ev->c;
    *out = NULL;
    if (!eval_begin(ev, input, err)) return -1;
    if (strncmp(path, "data", 4) != 0 || (path[4] && path[4] != '.')) {
        snprintf(err->code, sizeof(err->code), "rego_parse_error");
        snprintf(err->message, sizeof(err->message), "rule path must start with data.");
        return -1;
    }
    pc_node *n = e->ps->root;
    const char *p = path[4] ? path + 5 : path + 4;
    while (*p) {
        const char *dot = strchr(p, '.');
        size_t l = dot ? (size_t)(dot - p) : strlen(p);
        pc_value k = {.kind = PC_STRING, .len = (uint32_t)l};
        char tmp[256];
        if (l >= sizeof(tmp)) return 0;
        memcpy(tmp, p, l);
        tmp[l] = 0;
        k.u.s = tmp;
        pc_node *c = pc__node_child(n, &k);
        if (!c) {
            /* into base data or a rule's value */
            bool ferr = false;
            const pc_value *v = node_full(e, n, &ferr);
            if (ferr) return -1;
            while (v && *p) {
                dot = strchr(p, '.');
                l = dot ? (size_t)(dot - p) : strlen(p);
                v = v->kind == PC_OBJECT ? pc_value_object_get_str(v, p, l) : NULL;
                p = dot ? dot + 1 : p + l;
            }
            *out = v;
            return v ? 1 : 0;
        }
        n = c;
        p = dot ? dot + 1 : p + l;
    }
    return eval_node(e, n, out);
}

int pc_eval_rule_ref(pc_eval *ev, const pc_policy_rule *rule, const pc_value *input,
                     const pc_value **out, pc_policy_error *err)
{
    *out = NULL;
    if (!eval_begin(ev, input, err)) return -1;
    /* Evaluation caches by node; the node itself is never written. */
    return eval_node(&ev->c, (pc_node *)rule, out);
}

typedef struct {
    K k;
    F *f;
    pc_body *b;
    const char **names;
    int *slots;
    int nnames;
    pc_query_cb cb;
    void *ud;
    int count;
    const pc_value **exprvals;
} query_k;

static int query_cb(E *e, K *k, const pc_value *v)
{
    (void)v;
    query_k *q = (query_k *)k;
    const pc_value **vals = pc_arena_alloc(e->arena, (size_t)(q->nnames + 1) * sizeof(*vals));
    const char **names = pc_arena_alloc(e->arena, (size_t)(q->nnames + 1) * sizeof(*names));
    const char **texts = pc_arena_alloc(e->arena, (q->b->n + 1) * sizeof(*texts));
    int *rows = pc_arena_alloc(e->arena, (q->b->n + 1) * sizeof(int));
    int *cols = pc_arena_alloc(e->arena, (q->b->n + 1) * sizeof(int));
    if (!vals || !names || !texts || !rows || !cols) return oom(e);
    size_t nb = 0;
    for (int i = 0; i < q->nnames; i++) {
        const char *nm = q->names[i];
        if (nm[0] == '$' || nm[0] == '_') continue;
        const pc_value *bv = q->f->s[q->slots[i]];
        if (!bv) continue;
        names[nb] = nm;
        vals[nb] = bv;
        nb++;
    }
    for (uint32_t i = 0; i < q->b->n; i++) {
        texts[i] = pc_arena_strndup(e->arena, q->b->exprs[i]->text ? q->b->exprs[i]->text : "",
                                    q->b->exprs[i]->textlen);
        rows[i] = q->b->exprs[i]->loc.row;
        cols[i] = q->b->exprs[i]->loc.col;
        if (!texts[i]) return oom(e);
    }
    pc_query_result r = {.nexprs = q->b->n, .exprs = q->exprvals, .expr_texts = texts,
                         .expr_rows = rows, .expr_cols = cols, .nbindings = nb,
                         .names = names, .values = vals};
    q->count++;
    if (q->cb) q->cb(&r, q->ud);
    return 0;
}

/* Query bodies are like rule bodies, except that each expression's value is
 * recorded and a term that is false is reported (as opa eval does). */
typedef struct {
    K k;
    F *f;
    pc_body *b;
    uint32_t i;
    const pc_value **vals;
    K *next;
} qb_k;

static int eval_qbody(E *e, F *f, pc_body *b, uint32_t i, const pc_value **vals, K *k);

static int qb_cb(E *e, K *k, const pc_value *v)
{
    qb_k *q = (qb_k *)k;
    q->vals[q->i] = (q->b->exprs[q->i]->kind == E_TERM && v) ? v : pc_value_bool(true);
    return eval_qbody(e, q->f, q->b, q->i + 1, q->vals, q->next);
}

static int eval_qbody(E *e, F *f, pc_body *b, uint32_t i, const pc_value **vals, K *k)
{
    if (i == b->n) return k->fn(e, k, NULL);
    qb_k q = {.k.fn = qb_cb, .f = f, .b = b, .i = i, .vals = vals, .next = k};
    return eval_expr(e, f, b->exprs[i], &q.k);
}

int pc_eval_query(pc_eval *ev, const char *query, const pc_value *input, pc_query_cb cb, void *ud,
                  pc_policy_error *err)
{
    E *e = &ev->c;
    if (!eval_begin(ev, input, err)) return -1;
    int nslots = 0, nnames = 0;
    const char **names = NULL;
    int *slots = NULL;
    pc_body *b = pc__compile_query(e->ps, e->arena, query, err, &nslots, &names, &slots, &nnames);
    if (!b) return -1;
    F *f = new_frame(e, nslots);
    const pc_value **exprvals = pc_arena_alloc(e->arena, (b->n + 1) * sizeof(*exprvals));
    if (!f || !exprvals) {
        oom(e);
        return -1;
    }
    /* wrap each expression to capture its value: evaluate expression by expression */
    query_k q = {.k.fn = query_cb, .f = f, .b = b, .names = names, .slots = slots,
                 .nnames = nnames, .cb = cb, .ud = ud, .exprvals = exprvals};
    for (uint32_t i = 0; i < b->n; i++) exprvals[i] = pc_value_bool(true);
    eval_qbody(e, f, b, 0, exprvals, &q.k);
    if (e->failed) return -1;
    return q.count;
}

/* ---- builtin context -------------------------------------------------- */

pc_arena *pc_builtin_arena(pc_eval_ctx *ctx) { return ctx->arena; }
const char *pc_builtin_name(pc_eval_ctx *ctx) { return ctx->bname ? ctx->bname : "builtin"; }

int64_t pc_builtin_now_ns(pc_eval_ctx *ctx)
{
    if (!ctx->have_now) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ctx->now_ns = (int64_t)ts.tv_sec * 1000000000ll + ts.tv_nsec;
        ctx->have_now = true;
    }
    return ctx->now_ns;
}

static bool raise(pc_eval_ctx *ctx, const char *code, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));
static bool raise(pc_eval_ctx *ctx, const char *code, const char *fmt, va_list ap)
{
    if (ctx->failed) return false;
    char msg[400];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    fail(ctx, code, ctx->cur_loc, "%s: %s", pc_builtin_name(ctx), msg);
    return false;
}

void pc__builtin_error(pc_eval_ctx *ctx, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    raise(ctx, "eval_builtin_error", fmt, ap);
    va_end(ap);
}

void pc__builtin_type_errorf(pc_eval_ctx *ctx, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    raise(ctx, "eval_type_error", fmt, ap);
    va_end(ap);
}

void pc__builtin_type_error(pc_eval_ctx *ctx, int pos, const char *expected, const pc_value *got)
{
    pc__builtin_type_errorf(ctx, "operand %d must be %s but got %s", pos, expected,
                            got ? pc_value_type_name(got) : "undefined");
}

void pc__builtin_oom(pc_eval_ctx *ctx) { oom(ctx); }
