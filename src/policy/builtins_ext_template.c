/*
 * strings.render_template: a Go text/template subset evaluated directly over
 * Rego values — text and {{actions}} with {{- -}} trimming, comments, fields
 * (.a.b), variables ($x, $x := ...), literals, pipelines with the functions
 * len, index, print, printf, eq, ne, lt, le, gt, ge, and, or, not, and the
 * if / else if / else, range (with $i, $v :=), with and end controls.
 * A missing key renders as "<undefined>", like OPA.
 */
#include "policy/builtins_ext.h"

#include "policy/lib/gofmt.h"
#include "policy/lib/sbuf.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define A pc_builtin_arena(ctx)
#define MAX_DEPTH 64
#define MAX_VARS 64

/* a missing value, distinct from null */
static const pc_value UNDEF = {.kind = 0xff};

typedef struct {
    const char *name;
    size_t len;
    const pc_value *v;
} var_t;

typedef struct {
    pc_eval_ctx *ctx;
    const char *src;
    size_t n;
    pc__sbuf_t out;
    var_t vars[MAX_VARS];
    size_t nvars;
    long steps;
    const char *err;
} tpl_t;

/* ---- lexing actions --------------------------------------------------------- */

typedef struct {
    size_t start, end; /* action body [start, end) inside {{ }} after trim markers */
    size_t next;       /* position after }} (and trimmed space) */
    bool trim_left;
} action_t;

/* Finds the next action at or after pos; text before it is [pos, text_end). */
static bool next_action(tpl_t *t, size_t pos, size_t *text_end, action_t *a)
{
    const char *p = NULL;
    for (size_t i = pos; i + 1 < t->n; i++)
        if (t->src[i] == '{' && t->src[i + 1] == '{') {
            p = t->src + i;
            break;
        }
    if (!p) {
        *text_end = t->n;
        return false;
    }
    size_t open = (size_t)(p - t->src);
    size_t body = open + 2;
    a->trim_left = body + 1 < t->n && t->src[body] == '-' && isspace((unsigned char)t->src[body + 1]);
    if (a->trim_left) body += 2;
    size_t close = body;
    bool in_str = false;
    while (close + 1 < t->n) {
        char c = t->src[close];
        if (in_str) {
            if (c == '\\') close++;
            else if (c == '"') in_str = false;
        } else if (c == '"') {
            in_str = true;
        } else if (c == '}' && t->src[close + 1] == '}') {
            break;
        }
        close++;
    }
    if (close + 1 >= t->n) {
        t->err = "unclosed action";
        *text_end = t->n;
        return false;
    }
    size_t bend = close;
    bool trim_right = bend >= body + 2 && t->src[bend - 1] == '-' && isspace((unsigned char)t->src[bend - 2]);
    if (trim_right) bend -= 2;
    size_t te = open;
    if (a->trim_left)
        while (te > pos && isspace((unsigned char)t->src[te - 1])) te--;
    *text_end = te;
    a->start = body;
    a->end = bend;
    a->next = close + 2;
    if (trim_right)
        while (a->next < t->n && isspace((unsigned char)t->src[a->next])) a->next++;
    return true;
}

/* ---- tokens within an action --------------------------------------------------- */

typedef struct {
    const char *s;
    size_t n;
} tok_t;

static size_t tokenize(const char *s, size_t n, tok_t *toks, size_t cap)
{
    size_t k = 0, i = 0;
    while (i < n && k < cap) {
        if (isspace((unsigned char)s[i])) {
            i++;
            continue;
        }
        size_t st = i;
        if (s[i] == '"') {
            i++;
            while (i < n && s[i] != '"') i += s[i] == '\\' ? 2 : 1;
            i++;
        } else if (s[i] == '`') {
            i++;
            while (i < n && s[i] != '`') i++;
            i++;
        } else if (s[i] == '|' || s[i] == '(' || s[i] == ')' || s[i] == ',') {
            i++;
        } else if (s[i] == ':' && i + 1 < n && s[i + 1] == '=') {
            i += 2;
        } else if (s[i] == '=') {
            i++;
        } else {
            while (i < n && !isspace((unsigned char)s[i]) && s[i] != '|' && s[i] != '(' && s[i] != ')' &&
                   s[i] != ',' && !(s[i] == ':' && i + 1 < n && s[i + 1] == '=') && s[i] != '=')
                i++;
        }
        if (i > n) i = n;
        toks[k++] = (tok_t){s + st, i - st};
    }
    return k;
}

static bool tok_is(const tok_t *t, const char *w)
{
    return t->n == strlen(w) && memcmp(t->s, w, t->n) == 0;
}

/* ---- values ------------------------------------------------------------------ */

static bool truthy(const pc_value *v)
{
    if (v == &UNDEF) return false;
    switch (v->kind) {
    case PC_NULL: return false;
    case PC_BOOL: return v->u.b;
    case PC_NUMBER: return pc_value_get_double(v) != 0;
    case PC_STRING:
    case PC_ARRAY:
    case PC_OBJECT:
    case PC_SET: return v->len > 0;
    default: return false;
    }
}

/* Go's %v of the JSON form of a value */
static void print_value(tpl_t *t, pc__sbuf_t *b, const pc_value *v)
{
    if (v == &UNDEF) {
        pc__sbuf_adds(b, "<undefined>");
        return;
    }
    switch (v->kind) {
    case PC_NULL: pc__sbuf_adds(b, "<nil>"); break;
    case PC_BOOL: pc__sbuf_adds(b, v->u.b ? "true" : "false"); break;
    case PC_NUMBER: {
        pc_str s = {0};
        pc_value_number_to_str(&s, v);
        pc__sbuf_add(b, s.p ? s.p : "", s.len);
        pc_str_free(&s);
        break;
    }
    case PC_STRING: pc__sbuf_add(b, v->u.s, v->len); break;
    case PC_ARRAY:
    case PC_SET:
        pc__sbuf_addc(b, '[');
        for (uint32_t i = 0; i < v->len; i++) {
            if (i) pc__sbuf_addc(b, ' ');
            print_value(t, b, v->u.items[i]);
        }
        pc__sbuf_addc(b, ']');
        break;
    case PC_OBJECT:
        pc__sbuf_adds(b, "map[");
        for (uint32_t i = 0; i < v->len; i++) {
            if (i) pc__sbuf_addc(b, ' ');
            print_value(t, b, v->u.kvs[i].key);
            pc__sbuf_addc(b, ':');
            print_value(t, b, v->u.kvs[i].val);
        }
        pc__sbuf_addc(b, ']');
        break;
    }
}

static const pc_value *field(const pc_value *v, const char *name, size_t n)
{
    if (v == &UNDEF || v->kind != PC_OBJECT) return &UNDEF;
    const pc_value *r = pc_value_object_get_str(v, name, n);
    return r ? r : &UNDEF;
}

/* .a.b or $x.a.b applied to a base */
static const pc_value *path(const pc_value *base, const char *s, size_t n)
{
    size_t i = 0;
    const pc_value *v = base;
    while (i < n) {
        if (s[i] != '.') return &UNDEF;
        i++;
        size_t st = i;
        while (i < n && s[i] != '.') i++;
        if (i == st) return v; /* a lone "." */
        v = field(v, s + st, i - st);
    }
    return v;
}

static const pc_value *lookup_var(tpl_t *t, const char *s, size_t n)
{
    for (size_t i = t->nvars; i-- > 0;)
        if (t->vars[i].len == n && memcmp(t->vars[i].name, s, n) == 0) return t->vars[i].v;
    t->err = "undefined variable";
    return &UNDEF;
}

static const pc_value *eval_cmd(tpl_t *t, tok_t *toks, size_t n, const pc_value *dot, const pc_value *piped);
static const pc_value *eval_pipeline(tpl_t *t, tok_t *tk, size_t n, const pc_value *dot);

static const pc_value *operand(tpl_t *t, tok_t *tk, size_t *i, size_t n, const pc_value *dot)
{
    tok_t *x = &tk[*i];
    (*i)++;
    pc_arena *ar = pc_builtin_arena(t->ctx);
    if (tok_is(x, "(")) {
        size_t depth = 1, st = *i;
        while (*i < n && depth) {
            if (tok_is(&tk[*i], "(")) depth++;
            if (tok_is(&tk[*i], ")")) depth--;
            (*i)++;
        }
        if (depth) {
            t->err = "unclosed left paren";
            return &UNDEF;
        }
        return eval_pipeline(t, tk + st, *i - st - 1, dot);
    }
    if (x->s[0] == '.') return path(dot, x->s, x->n);
    if (x->s[0] == '$') {
        size_t k = 1;
        while (k < x->n && x->s[k] != '.') k++;
        const pc_value *v = lookup_var(t, x->s, k);
        return k < x->n ? path(v, x->s + k, x->n - k) : v;
    }
    if (x->s[0] == '"' || x->s[0] == '`') {
        pc__sbuf_t b = {0};
        for (size_t k = 1; k + 1 < x->n; k++) {
            char c = x->s[k];
            if (x->s[0] == '"' && c == '\\' && k + 2 < x->n) {
                c = x->s[++k];
                c = c == 'n' ? '\n' : c == 't' ? '\t' : c;
            }
            pc__sbuf_addc(&b, c);
        }
        const pc_value *v = pc_value_string(ar, b.data ? b.data : "", b.len);
        pc__sbuf_free(&b);
        return v ? v : &UNDEF;
    }
    if (tok_is(x, "true") || tok_is(x, "false")) return pc_value_bool(x->s[0] == 't');
    if (tok_is(x, "nil")) return pc_value_null();
    if (isdigit((unsigned char)x->s[0]) || x->s[0] == '-') {
        const pc_value *v = pc_value_number_text(ar, x->s, x->n);
        if (v) return v;
    }
    t->err = "unsupported operand";
    return &UNDEF;
}

static int compare_values(const pc_value *a, const pc_value *b)
{
    if (a == &UNDEF || b == &UNDEF) return a == b ? 0 : 1;
    return pc_value_compare(a, b);
}

/* one command: a function call with arguments, or a single operand */
static const pc_value *eval_cmd(tpl_t *t, tok_t *tk, size_t n, const pc_value *dot, const pc_value *piped)
{
    if (n == 0) return piped ? piped : &UNDEF;
    if (++t->steps > 100000) {
        t->err = "template too expensive";
        return &UNDEF;
    }
    static const char *fns[] = {"len", "index", "print", "printf", "println", "eq", "ne", "lt",
                                "le",  "gt",    "ge",    "and",    "or",      "not", NULL};
    int fn = -1;
    for (int k = 0; fns[k]; k++)
        if (tok_is(&tk[0], fns[k])) fn = k;
    if (fn < 0) {
        size_t i = 0;
        const pc_value *v = operand(t, tk, &i, n, dot);
        return v;
    }
    const pc_value *args[16];
    size_t na = 0;
    for (size_t i = 1; i < n && na < 15;) args[na++] = operand(t, tk, &i, n, dot);
    if (piped && na < 16) args[na++] = piped;
    pc_arena *ar = pc_builtin_arena(t->ctx);
    switch (fn) {
    case 0:
        if (na != 1 || args[0] == &UNDEF || args[0]->kind < PC_STRING) break;
        return pc_value_int(ar, args[0]->len);
    case 1: {
        if (na < 1) break;
        const pc_value *v = args[0];
        for (size_t k = 1; k < na && v != &UNDEF; k++) {
            if (v->kind == PC_ARRAY) {
                int64_t ix;
                v = pc_value_get_int(args[k], &ix) && ix >= 0 && ix < v->len ? v->u.items[ix] : &UNDEF;
            } else if (v->kind == PC_OBJECT) {
                const pc_value *r = pc_value_object_get(v, args[k]);
                v = r ? r : &UNDEF;
            } else {
                v = &UNDEF;
            }
        }
        return v;
    }
    case 2:
    case 4: {
        pc__sbuf_t b = {0};
        for (size_t k = 0; k < na; k++) {
            /* print adds spaces between operands when neither is a string */
            if (k && (fn == 4 || (args[k]->kind != PC_STRING && args[k - 1]->kind != PC_STRING)))
                pc__sbuf_addc(&b, ' ');
            print_value(t, &b, args[k]);
        }
        if (fn == 4) pc__sbuf_addc(&b, '\n');
        const pc_value *v = pc_value_string(ar, b.data ? b.data : "", b.len);
        pc__sbuf_free(&b);
        return v ? v : &UNDEF;
    }
    case 3: {
        if (na < 1 || args[0]->kind != PC_STRING) break;
        pc_plib_fmt_arg_t fa[15];
        for (size_t k = 1; k < na; k++) {
            const pc_value *v = args[k];
            memset(&fa[k - 1], 0, sizeof(fa[0]));
            if (v != &UNDEF && v->kind == PC_NUMBER && v->num == PC_NUM_INT) {
                fa[k - 1].kind = PC_PLIB_FMT_INT;
                fa[k - 1].i = v->u.i;
            } else if (v != &UNDEF && v->kind == PC_NUMBER) {
                fa[k - 1].kind = PC_PLIB_FMT_FLOAT;
                fa[k - 1].f = v->u.f.d;
            } else {
                pc__sbuf_t b = {0};
                print_value(t, &b, v);
                fa[k - 1].kind = PC_PLIB_FMT_STR;
                fa[k - 1].s = pc_arena_strndup(ar, b.data ? b.data : "", b.len);
                fa[k - 1].len = b.len;
                pc__sbuf_free(&b);
                if (!fa[k - 1].s) return &UNDEF;
            }
        }
        size_t ol;
        char *o = pc_plib_sprintf(args[0]->u.s, args[0]->len, fa, na - 1, &ol);
        const pc_value *v = o ? pc_value_string(ar, o, ol) : NULL;
        free(o);
        return v ? v : &UNDEF;
    }
    case 5:
    case 6:
    case 7:
    case 8:
    case 9:
    case 10: {
        if (na < 2) break;
        int c = compare_values(args[0], args[1]);
        bool r = fn == 5 ? c == 0 : fn == 6 ? c != 0 : fn == 7 ? c < 0 : fn == 8 ? c <= 0 : fn == 9 ? c > 0 : c >= 0;
        if (fn == 5)
            for (size_t k = 2; k < na && !r; k++) r = compare_values(args[0], args[k]) == 0;
        return pc_value_bool(r);
    }
    case 11:
    case 12: {
        if (na < 1) break;
        for (size_t k = 0; k < na; k++)
            if (truthy(args[k]) == (fn == 12)) return args[k];
        return args[na - 1];
    }
    case 13:
        if (na != 1) break;
        return pc_value_bool(!truthy(args[0]));
    }
    t->err = "wrong number or type of arguments";
    return &UNDEF;
}

/* pipeline: cmd | cmd | ..., optionally after "$x :=" (returned in *decl) */
static const pc_value *eval_pipeline(tpl_t *t, tok_t *tk, size_t n, const pc_value *dot)
{
    const pc_value *v = NULL;
    size_t st = 0;
    int depth = 0;
    for (size_t i = 0; i <= n; i++) {
        if (i < n) {
            if (tok_is(&tk[i], "(")) depth++;
            if (tok_is(&tk[i], ")")) depth--;
            if (depth != 0 || !tok_is(&tk[i], "|")) continue;
        }
        v = eval_cmd(t, tk + st, i - st, dot, v);
        st = i + 1;
    }
    return v ? v : &UNDEF;
}

static void push_var(tpl_t *t, const tok_t *name, const pc_value *v)
{
    for (size_t i = t->nvars; i-- > 0;)
        if (t->vars[i].len == name->n && memcmp(t->vars[i].name, name->s, name->n) == 0) {
            t->vars[i].v = v;
            return;
        }
    if (t->nvars < MAX_VARS) t->vars[t->nvars++] = (var_t){name->s, name->n, v};
}

/* ---- execution ------------------------------------------------------------------- */

enum { STOP_EOF, STOP_END, STOP_ELSE };

/* Runs the template from *pos until {{end}} / {{else ...}} / EOF. When emit is
 * false the text is only skipped (an untaken branch). *else_at receives the
 * else action for the caller to interpret. */
static int run(tpl_t *t, size_t *pos, const pc_value *dot, bool emit, int depth, action_t *else_at)
{
    if (depth > MAX_DEPTH) {
        t->err = "template nested too deeply";
        return STOP_EOF;
    }
    while (!t->err) {
        size_t te;
        action_t a;
        bool have = next_action(t, *pos, &te, &a);
        if (emit) pc__sbuf_add(&t->out, t->src + *pos, te - *pos);
        if (!have) {
            *pos = t->n;
            return STOP_EOF;
        }
        *pos = a.next;
        tok_t tk[64];
        const char *body = t->src + a.start;
        size_t blen = a.end > a.start ? a.end - a.start : 0;
        while (blen && isspace((unsigned char)*body)) body++, blen--;
        if (blen >= 2 && body[0] == '/' && body[1] == '*') continue; /* comment */
        size_t nt = tokenize(body, blen, tk, 64);
        if (nt == 0) {
            t->err = "missing value for command";
            return STOP_EOF;
        }
        if (tok_is(&tk[0], "end")) return STOP_END;
        if (tok_is(&tk[0], "else")) {
            *else_at = a;
            return STOP_ELSE;
        }
        bool is_if = tok_is(&tk[0], "if"), is_with = tok_is(&tk[0], "with"), is_range = tok_is(&tk[0], "range");
        if (is_if || is_with) {
            const pc_value *v = emit ? eval_pipeline(t, tk + 1, nt - 1, dot) : &UNDEF;
            bool taken = emit && truthy(v);
            bool done = taken;
            action_t el;
            int r = run(t, pos, is_with && taken ? v : dot, taken, depth + 1, &el);
            while (r == STOP_ELSE && !t->err) {
                tok_t et[64];
                size_t en = tokenize(t->src + el.start, el.end > el.start ? el.end - el.start : 0, et, 64);
                bool cond = true;
                if (en >= 2 && (tok_is(&et[1], "if") || tok_is(&et[1], "with"))) {
                    const pc_value *ev = emit && !done ? eval_pipeline(t, et + 2, en - 2, dot) : &UNDEF;
                    cond = truthy(ev);
                }
                bool take = emit && !done && cond;
                done |= take;
                r = run(t, pos, dot, take, depth + 1, &el);
            }
            if (r != STOP_END && !t->err) t->err = "unexpected EOF";
            continue;
        }
        if (is_range) {
            /* range [$i[, $v] :=] pipeline */
            size_t p = 1;
            tok_t *v1 = NULL, *v2 = NULL;
            if (nt > 2 && tk[1].s[0] == '$') {
                if (tok_is(&tk[2], ":=") || tok_is(&tk[2], "=")) {
                    v1 = &tk[1];
                    p = 3;
                } else if (nt > 4 && tok_is(&tk[2], ",") && (tok_is(&tk[4], ":=") || tok_is(&tk[4], "="))) {
                    v1 = &tk[1];
                    v2 = &tk[3];
                    p = 5;
                }
            }
            const pc_value *coll = emit ? eval_pipeline(t, tk + p, nt - p, dot) : &UNDEF;
            size_t body_pos = *pos, end_pos = *pos;
            size_t count = emit && coll != &UNDEF && (coll->kind == PC_ARRAY || coll->kind == PC_SET ||
                                                      coll->kind == PC_OBJECT)
                               ? coll->len
                               : 0;
            size_t saved_vars = t->nvars;
            action_t el;
            int r = STOP_END;
            if (count == 0) {
                r = run(t, &end_pos, dot, false, depth + 1, &el);
            }
            for (size_t i = 0; i < count && !t->err; i++) {
                const pc_value *key, *val;
                if (coll->kind == PC_OBJECT) {
                    key = coll->u.kvs[i].key;
                    val = coll->u.kvs[i].val;
                } else {
                    key = pc_value_int(pc_builtin_arena(t->ctx), (int64_t)i);
                    val = coll->u.items[i];
                }
                if (v1 && v2) {
                    push_var(t, v1, key);
                    push_var(t, v2, val);
                } else if (v1) {
                    push_var(t, v1, val);
                }
                end_pos = body_pos;
                r = run(t, &end_pos, val, true, depth + 1, &el);
                t->nvars = saved_vars;
            }
            *pos = end_pos;
            if (r == STOP_ELSE) r = run(t, pos, dot, emit && count == 0, depth + 1, &el);
            if (r != STOP_END && !t->err) t->err = "unexpected EOF";
            continue;
        }
        /* {{$x := pipeline}} or a pipeline to print */
        if (nt >= 2 && tk[0].s[0] == '$' && (tok_is(&tk[1], ":=") || tok_is(&tk[1], "="))) {
            if (emit) push_var(t, &tk[0], eval_pipeline(t, tk + 2, nt - 2, dot));
            continue;
        }
        if (emit) print_value(t, &t->out, eval_pipeline(t, tk, nt, dot));
    }
    return STOP_EOF;
}

static bool s_render_template(EXT_ARGS)
{
    (void)n;
    const char *s;
    size_t sl;
    if (!pc_arg_string(ctx, a, 0, &s, &sl)) return false;
    if (a[1]->kind != PC_OBJECT) return pc_builtin_type_error(ctx, 2, "object", a[1]);
    tpl_t t = {.ctx = ctx, .src = s, .n = sl};
    t.vars[t.nvars++] = (var_t){"$", 1, a[1]};
    size_t pos = 0;
    action_t el;
    int r = run(&t, &pos, a[1], true, 0, &el);
    if (!t.err && r != STOP_EOF) t.err = r == STOP_END ? "unexpected {{end}}" : "unexpected {{else}}";
    if (t.err) {
        pc__sbuf_free(&t.out);
        return pc_builtin_error(ctx, "template: %s", t.err);
    }
    size_t ol;
    char *o = pc__sbuf_take(&t.out, &ol);
    if (!o) return pc__ext_ret(ctx, out, pc_value_empty_string());
    return pc__ext_ret_str(ctx, out, o, ol);
}

static const pc_builtin TEMPLATE_TABLE[] = {
    {"strings.render_template", 2, s_render_template, 0},
    {NULL, 0, NULL, 0},
};

void pc__builtins_ext_template_register(void)
{
    pc_builtin_register_table(TEMPLATE_TABLE);
}
