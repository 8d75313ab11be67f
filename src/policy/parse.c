/* Rego lexer and parser: text -> syntax tree (ast.h), in the caller's arena. */
#include <setjmp.h>
#include <stdio.h>
#include <string.h>

#include "core/common.h"
#include "policy/ast.h"

/* ---- interning -------------------------------------------------------- */

struct pc_intern {
    pc_arena *a;
    const pc_value **slots;
    size_t cap, len;
};

pc_intern *pc__intern_new(pc_arena *a)
{
    pc_intern *t = pc_arena_alloc(a, sizeof(*t));
    if (!t) return NULL;
    t->a = a;
    t->cap = 256;
    t->len = 0;
    t->slots = pc_arena_alloc(a, t->cap * sizeof(*t->slots));
    if (!t->slots) return NULL;
    memset(t->slots, 0, t->cap * sizeof(*t->slots));
    return t;
}

static uint64_t strhash(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    return h;
}

const pc_value *pc__intern(pc_intern *t, const char *s, size_t n)
{
    if (t->len * 2 >= t->cap) {
        size_t nc = t->cap * 2;
        const pc_value **ns = pc_arena_alloc(t->a, nc * sizeof(*ns));
        if (!ns) return NULL;
        memset(ns, 0, nc * sizeof(*ns));
        for (size_t i = 0; i < t->cap; i++) {
            const pc_value *v = t->slots[i];
            if (!v) continue;
            size_t j = strhash(v->u.s, v->len) & (nc - 1);
            while (ns[j]) j = (j + 1) & (nc - 1);
            ns[j] = v;
        }
        t->slots = ns;
        t->cap = nc;
    }
    size_t j = strhash(s, n) & (t->cap - 1);
    while (t->slots[j]) {
        const pc_value *v = t->slots[j];
        if (v->len == n && memcmp(v->u.s, s, n) == 0) return v;
        j = (j + 1) & (t->cap - 1);
    }
    const pc_value *v = pc_value_string(t->a, s, n);
    if (!v) return NULL;
    if (n == 0) return v;
    t->slots[j] = v;
    t->len++;
    return v;
}

/* ---- lexer ------------------------------------------------------------ */

typedef enum {
    K_EOF,
    K_IDENT,
    K_STRING,
    K_NUMBER,
    K_LBRACE,
    K_RBRACE,
    K_LBRACK,
    K_RBRACK,
    K_LPAREN,
    K_RPAREN,
    K_DOT,
    K_COMMA,
    K_SEMI,
    K_COLON,
    K_ASSIGN, /* := */
    K_UNIFY,  /* = */
    K_EQ,
    K_NE,
    K_LT,
    K_LE,
    K_GT,
    K_GE,
    K_PLUS,
    K_MINUS,
    K_STAR,
    K_SLASH,
    K_PERCENT,
    K_AMP,
    K_BAR,
    K_TEMPLATE, /* $"...{expr}..." or $`...` */
} tok_kind;

typedef struct {
    tok_kind k;
    uint32_t off, len;
    int row, col;
    bool ws;  /* whitespace (or comment) before */
    bool nl;  /* newline before */
    const char *sval; /* decoded string */
    size_t slen;
} tok;

typedef struct {
    pc_arena *a;
    const char *file;
    const char *src;
    size_t n;
    tok *toks;
    size_t ntok, cap, pos;
    pc_policy_error *err;
    jmp_buf jb;
    pc_intern *in;
    bool v0;
    int gen; /* generated var counter */
    int depth;
    /* `# METADATA` comment blocks: YAML text and the row of their last line */
    pc_str meta[64];
    int meta_end[64];
    int nmeta;
} P;

static PC_NORETURN void perr(P *p, const tok *t, const char *fmt, ...) PC_PRINTF(3, 4);
static PC_NORETURN void perr(P *p, const tok *t, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    snprintf(p->err->code, sizeof(p->err->code), "rego_parse_error");
    vsnprintf(p->err->message, sizeof(p->err->message), fmt, ap);
    va_end(ap);
    snprintf(p->err->file, sizeof(p->err->file), "%s", p->file ? p->file : "");
    p->err->row = t ? t->row : 0;
    p->err->col = t ? t->col : 0;
    longjmp(p->jb, 1);
}

static void *palloc(P *p, size_t n)
{
    void *m = pc_arena_alloc(p->a, n);
    if (!m) perr(p, NULL, "out of memory");
    memset(m, 0, n);
    return m;
}

static void push_tok(P *p, tok t)
{
    if (p->ntok == p->cap) {
        size_t nc = p->cap ? p->cap * 2 : 256;
        tok *nt = palloc(p, nc * sizeof(tok));
        if (p->ntok) memcpy(nt, p->toks, p->ntok * sizeof(tok));
        p->toks = nt;
        p->cap = nc;
    }
    p->toks[p->ntok++] = t;
}

static bool is_ident_start(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
static bool is_digit(char c) { return c >= '0' && c <= '9'; }

/* Skips a string, raw string or template starting at s[i] (the quote, or '$').
 * Returns the offset after it, or 0 when it does not end. */
static size_t scan_template(const char *s, size_t n, size_t i);

static size_t skip_string(const char *s, size_t n, size_t i)
{
    if (s[i] == '$') return scan_template(s, n, i + 1);
    char q = s[i++];
    while (i < n && s[i] != q) {
        if (q == '"' && s[i] == '\\') i++;
        if (q == '"' && i < n && s[i] == '\n') return 0;
        i++;
    }
    return i < n ? i + 1 : 0;
}

/* s[i] is the opening quote of a template; `{...}` parts may nest braces,
 * strings and templates; `\{` is a literal brace. */
static size_t scan_template(const char *s, size_t n, size_t i)
{
    char q = s[i++];
    while (i < n && s[i] != q) {
        if (s[i] == '\\') {
            i += 2;
            continue;
        }
        if (s[i] == '{') {
            int depth = 1;
            i++;
            while (i < n && depth > 0) {
                char c = s[i];
                if (c == '"' || c == '`' || (c == '$' && i + 1 < n && (s[i + 1] == '"' || s[i + 1] == '`'))) {
                    size_t e = skip_string(s, n, i);
                    if (!e) return 0;
                    i = e;
                    continue;
                }
                if (c == '{') depth++;
                if (c == '}') depth--;
                i++;
            }
            if (depth) return 0;
            continue;
        }
        if (q == '"' && s[i] == '\n') return 0;
        i++;
    }
    return i < n ? i + 1 : 0;
}

/* Collects `# METADATA` blocks: the marker line, then the comment lines
 * right below it (their text after "# " is YAML). */
static void lex_comment(P *p, const char *c, size_t n, int row)
{
    const char *t = c;
    size_t l = n;
    while (l && (*t == ' ' || *t == '\t')) {
        t++;
        l--;
    }
    while (l && (t[l - 1] == ' ' || t[l - 1] == '\r')) l--;
    if (l == 8 && memcmp(t, "METADATA", 8) == 0) {
        if (p->nmeta >= 64) return;
        memset(&p->meta[p->nmeta], 0, sizeof(pc_str));
        p->meta_end[p->nmeta] = row;
        p->nmeta++;
        return;
    }
    if (p->nmeta == 0 || p->meta_end[p->nmeta - 1] != row - 1) return;
    if (n && c[0] == ' ') {
        c++;
        n--;
    }
    pc_str_append(&p->meta[p->nmeta - 1], c, n);
    pc_str_append(&p->meta[p->nmeta - 1], "\n", 1);
    p->meta_end[p->nmeta - 1] = row;
}

/* The annotation block ending on the line above `row`, as a value; NULL if none. */
static const pc_value *annotation_for(P *p, int row, const char *default_scope);

static void lex(P *p)
{
    const char *s = p->src;
    size_t n = p->n, i = 0;
    int row = 1;
    size_t line_start = 0;
    bool ws = true, nl = true;
    while (i <= n) {
        if (i == n) {
            tok t = {.k = K_EOF, .off = (uint32_t)i, .row = row, .col = (int)(i - line_start) + 1, .ws = ws, .nl = nl};
            push_tok(p, t);
            break;
        }
        char c = s[i];
        if (c == '\n') {
            row++;
            i++;
            line_start = i;
            ws = nl = true;
            continue;
        }
        if (c == ' ' || c == '\t' || c == '\r') {
            i++;
            ws = true;
            continue;
        }
        if (c == '#') {
            size_t st = i + 1;
            while (i < n && s[i] != '\n') i++;
            ws = true;
            lex_comment(p, s + st, i - st, row);
            continue;
        }
        tok t = {.off = (uint32_t)i, .row = row, .col = (int)(i - line_start) + 1, .ws = ws, .nl = nl};
        ws = nl = false;
        if (is_ident_start(c)) {
            size_t st = i;
            while (i < n && (is_ident_start(s[i]) || is_digit(s[i]))) i++;
            t.k = K_IDENT;
            t.len = (uint32_t)(i - st);
        } else if (is_digit(c) || (c == '.' && i + 1 < n && is_digit(s[i + 1]) && p->ntok &&
                                   p->toks[p->ntok - 1].k != K_IDENT &&
                                   p->toks[p->ntok - 1].k != K_RBRACK &&
                                   p->toks[p->ntok - 1].k != K_RPAREN)) {
            size_t st = i;
            while (i < n && is_digit(s[i])) i++;
            if (i < n && s[i] == '.' && i + 1 < n && is_digit(s[i + 1])) {
                i++;
                while (i < n && is_digit(s[i])) i++;
            }
            if (i < n && (s[i] == 'e' || s[i] == 'E')) {
                size_t j = i + 1;
                if (j < n && (s[j] == '+' || s[j] == '-')) j++;
                if (j < n && is_digit(s[j])) {
                    i = j;
                    while (i < n && is_digit(s[i])) i++;
                }
            }
            if (i < n && (is_ident_start(s[i]) || s[i] == '.')) {
                if (s[i] == '.' && !(i + 1 < n && is_digit(s[i + 1]))) {
                    /* `1.` then something: let the parser complain */
                } else if (is_ident_start(s[i])) {
                    t.len = (uint32_t)(i - st);
                    perr(p, &t, "unexpected identifier after number");
                }
            }
            t.k = K_NUMBER;
            t.len = (uint32_t)(i - st);
        } else if (c == '"') {
            size_t pos = i + 1, len;
            const char *e = NULL;
            /* strings may not span lines */
            size_t j = i + 1;
            while (j < n && s[j] != '"' && s[j] != '\n') j += (s[j] == '\\' && j + 1 < n) ? 2 : 1;
            if (j >= n || s[j] == '\n') perr(p, &t, "non-terminated string");
            char *v = pc__unquote(p->a, s, j + 1, &pos, &len, &e);
            if (!v) perr(p, &t, "%s", e ? e : "invalid string");
            t.k = K_STRING;
            t.sval = v;
            t.slen = len;
            i = pos;
            t.len = (uint32_t)(i - t.off);
        } else if (c == '$' && i + 1 < n && (s[i + 1] == '"' || s[i + 1] == '`')) {
            size_t end = scan_template(s, n, i + 1);
            if (end == 0) perr(p, &t, "non-terminated template string");
            for (size_t q = i; q < end; q++)
                if (s[q] == '\n') {
                    row++;
                    line_start = q + 1;
                }
            t.k = K_TEMPLATE;
            i = end;
            t.len = (uint32_t)(i - t.off);
        } else if (c == '`') {
            size_t j = i + 1;
            while (j < n && s[j] != '`') j++;
            if (j >= n) perr(p, &t, "non-terminated raw string");
            t.k = K_STRING;
            t.sval = pc_arena_strndup(p->a, s + i + 1, j - i - 1);
            t.slen = j - i - 1;
            for (size_t q = i; q < j; q++)
                if (s[q] == '\n') {
                    row++;
                    line_start = q + 1;
                }
            i = j + 1;
            t.len = (uint32_t)(i - t.off);
        } else {
            i++;
            t.len = 1;
            char d = i < n ? s[i] : 0;
            switch (c) {
            case '{': t.k = K_LBRACE; break;
            case '}': t.k = K_RBRACE; break;
            case '[': t.k = K_LBRACK; break;
            case ']': t.k = K_RBRACK; break;
            case '(': t.k = K_LPAREN; break;
            case ')': t.k = K_RPAREN; break;
            case '.': t.k = K_DOT; break;
            case ',': t.k = K_COMMA; break;
            case ';': t.k = K_SEMI; break;
            case '+': t.k = K_PLUS; break;
            case '-': t.k = K_MINUS; break;
            case '*': t.k = K_STAR; break;
            case '/': t.k = K_SLASH; break;
            case '%': t.k = K_PERCENT; break;
            case '&': t.k = K_AMP; break;
            case '|': t.k = K_BAR; break;
            case ':':
                if (d == '=') {
                    t.k = K_ASSIGN;
                    i++;
                    t.len = 2;
                } else
                    t.k = K_COLON;
                break;
            case '=':
                if (d == '=') {
                    t.k = K_EQ;
                    i++;
                    t.len = 2;
                } else
                    t.k = K_UNIFY;
                break;
            case '!':
                if (d != '=') perr(p, &t, "illegal token");
                t.k = K_NE;
                i++;
                t.len = 2;
                break;
            case '<':
                if (d == '=') {
                    t.k = K_LE;
                    i++;
                    t.len = 2;
                } else
                    t.k = K_LT;
                break;
            case '>':
                if (d == '=') {
                    t.k = K_GE;
                    i++;
                    t.len = 2;
                } else
                    t.k = K_GT;
                break;
            default: perr(p, &t, "illegal token");
            }
        }
        push_tok(p, t);
    }
}

/* ---- parser helpers --------------------------------------------------- */

static tok *cur(P *p) { return &p->toks[p->pos]; }
static tok *peek(P *p, size_t k)
{
    size_t i = p->pos + k;
    return &p->toks[i < p->ntok ? i : p->ntok - 1];
}
static tok *next(P *p)
{
    tok *t = cur(p);
    if (t->k != K_EOF) p->pos++;
    return t;
}
static bool kw_as_ref(P *p, const tok *t);
static bool is_kw(P *p, const tok *t, const char *kw)
{
    size_t l = strlen(kw);
    return t->k == K_IDENT && t->len == l && memcmp(p->src + t->off, kw, l) == 0 && !kw_as_ref(p, t);
}
static bool accept(P *p, tok_kind k)
{
    if (cur(p)->k == k) {
        next(p);
        return true;
    }
    return false;
}
static tok *expect(P *p, tok_kind k, const char *what)
{
    tok *t = cur(p);
    if (t->k != k) {
        if (t->k == K_EOF) perr(p, t, "unexpected eof token: expected %s", what);
        perr(p, t, "unexpected %.*s token: expected %s", (int)(t->len ? t->len : 1),
             p->src + t->off, what);
    }
    return next(p);
}

static pc_loc tloc(P *p, const tok *t) { return (pc_loc){p->file, t->row, t->col}; }

static const char *tstr(P *p, const tok *t) { return pc_arena_strndup(p->a, p->src + t->off, t->len); }

static pc_term *mk_term(P *p, pc_term_kind k, const tok *t)
{
    pc_term *x = palloc(p, sizeof(*x));
    x->kind = (uint8_t)k;
    x->slot = -1;
    if (t) x->loc = tloc(p, t);
    return x;
}

static pc_term *mk_str(P *p, const char *s, size_t n, const tok *t)
{
    pc_term *x = mk_term(p, T_VALUE, t);
    x->value = pc__intern(p->in, s, n);
    if (!x->value) perr(p, t, "out of memory");
    x->ground = true;
    return x;
}

static pc_term *mk_var(P *p, const char *name, const tok *t)
{
    pc_term *x = mk_term(p, T_VAR, t);
    x->name = name;
    return x;
}


typedef struct {
    pc_term **items;
    size_t len, cap;
} tlist;

static void tl_push(P *p, tlist *l, pc_term *t)
{
    if (l->len == l->cap) {
        size_t nc = l->cap ? l->cap * 2 : 4;
        pc_term **ni = palloc(p, nc * sizeof(*ni));
        if (l->len) memcpy(ni, l->items, l->len * sizeof(*ni));
        l->items = ni;
        l->cap = nc;
    }
    l->items[l->len++] = t;
}

static pc_term *mk_call(P *p, const char *name, const tok *t, pc_term *a, pc_term *b)
{
    pc_term *c = mk_term(p, T_CALL, t);
    c->name = name;
    c->n = b ? 2 : 1;
    c->items = palloc(p, 2 * sizeof(pc_term *));
    c->items[0] = a;
    c->items[1] = b;
    return c;
}

static pc_body *parse_body_until(P *p, tok_kind end);
static pc_expr *parse_expr(P *p);
static pc_expr *mk_expr(P *p, pc_expr_kind k, const tok *t);
static pc_term *parse_template(P *p, const tok *t);
static pc_term *member3(P *p, const tok *it, pc_term *k, pc_term *v, pc_term *coll);
static pc_term *chain_in(P *p, pc_term *l);
static pc_term *parse_binary(P *p, int level);
static void parse_withs(P *p, pc_expr *e);
static pc_term *parse_term_in(P *p);
static pc_term *parse_term_or(P *p);

/* A keyword directly followed by `.` or `[` is a reference (`as.foo`). */
static bool kw_as_ref(P *p, const tok *t)
{
    const tok *n = t + 1;
    return (size_t)(n - p->toks) < p->ntok && !n->ws &&
           (n->k == K_DOT || n->k == K_LBRACK || n->k == K_LPAREN);
}

static bool is_reserved(P *p, const tok *t)
{
    if (kw_as_ref(p, t)) return false;
    static const char *kws[] = {"package", "import", "not", "with", "as", "some", "every",
                                "in", "if", "contains", "else", "default", NULL};
    for (int i = 0; kws[i]; i++)
        if (is_kw(p, t, kws[i])) return true;
    return false;
}

/* Parses `.name` / `[term]` suffixes onto head (no whitespace allowed before them). */
static pc_term *parse_ref_suffix(P *p, pc_term *head)
{
    tlist ops = {0};
    tl_push(p, &ops, head);
    for (;;) {
        tok *t = cur(p);
        if (t->ws) break;
        if (t->k == K_DOT) {
            next(p);
            tok *id = cur(p);
            if (id->k != K_IDENT || id->ws) perr(p, id, "unexpected %s token: expected ident",
                                                  id->k == K_EOF ? "eof" : "non-identifier");
            next(p);
            tl_push(p, &ops, mk_str(p, p->src + id->off, id->len, id));
        } else if (t->k == K_LBRACK) {
            next(p);
            pc_term *x = parse_term_in(p);
            expect(p, K_RBRACK, "]");
            tl_push(p, &ops, x);
        } else if (t->k == K_LPAREN && ops.len >= 1) {
            /* call on a ref: f(x), a.b.c(x) */
            next(p);
            tlist args = {0};
            if (!accept(p, K_RPAREN)) {
                for (;;) {
                    tl_push(p, &args, parse_term_in(p));
                    if (accept(p, K_COMMA)) {
                        if (accept(p, K_RPAREN)) break;
                        continue;
                    }
                    expect(p, K_RPAREN, ")");
                    break;
                }
            }
            pc_term *c = mk_term(p, T_CALL, t);
            c->loc = ops.items[0]->loc;
            if (ops.len == 1) {
                c->head = ops.items[0];
            } else {
                pc_term *r = mk_term(p, T_REF, NULL);
                r->loc = ops.items[0]->loc;
                r->items = ops.items;
                r->n = (uint32_t)ops.len;
                c->head = r;
            }
            c->items = args.items;
            c->n = (uint32_t)args.len;
            ops.len = 0;
            ops.cap = 0;
            ops.items = NULL;
            tl_push(p, &ops, c);
        } else {
            break;
        }
    }
    if (ops.len == 1) return ops.items[0];
    pc_term *r = mk_term(p, T_REF, NULL);
    r->loc = ops.items[0]->loc;
    r->items = ops.items;
    r->n = (uint32_t)ops.len;
    return r;
}

static pc_term *parse_braces(P *p, tok *open)
{
    /* { } object, {a, b} set, {k: v}, {x | body}, {k: v | body} */
    if (accept(p, K_RBRACE)) {
        pc_term *o = mk_term(p, T_OBJECT, open);
        return o;
    }
    pc_term *first = parse_term_or(p);
    if (cur(p)->k == K_COLON) {
        next(p);
        pc_term *val = parse_term_or(p);
        if (accept(p, K_BAR)) {
            pc_term *c = mk_term(p, T_OBJCOMP, open);
            c->khead = first;
            c->head = val;
            c->body = parse_body_until(p, K_RBRACE);
            expect(p, K_RBRACE, "}");
            return c;
        }
        tlist ks = {0}, vs = {0};
        tl_push(p, &ks, first);
        tl_push(p, &vs, val);
        while (accept(p, K_COMMA)) {
            if (cur(p)->k == K_RBRACE) break;
            tl_push(p, &ks, parse_term_in(p));
            expect(p, K_COLON, ":");
            tl_push(p, &vs, parse_term_in(p));
        }
        expect(p, K_RBRACE, "}");
        pc_term *o = mk_term(p, T_OBJECT, open);
        o->keys = ks.items;
        o->items = vs.items;
        o->n = (uint32_t)ks.len;
        return o;
    }
    if (accept(p, K_BAR)) {
        pc_term *c = mk_term(p, T_SETCOMP, open);
        c->head = first;
        c->body = parse_body_until(p, K_RBRACE);
        expect(p, K_RBRACE, "}");
        return c;
    }
    tlist it = {0};
    tl_push(p, &it, first);
    while (accept(p, K_COMMA)) {
        if (cur(p)->k == K_RBRACE) break;
        tl_push(p, &it, parse_term_in(p));
    }
    expect(p, K_RBRACE, "}");
    pc_term *s = mk_term(p, T_SET, open);
    s->items = it.items;
    s->n = (uint32_t)it.len;
    return s;
}

static pc_term *parse_primary(P *p)
{
    if (++p->depth > 500) perr(p, cur(p), "nesting too deep");
    tok *t = cur(p);
    pc_term *x = NULL;
    switch (t->k) {
    case K_NUMBER: {
        next(p);
        x = mk_term(p, T_VALUE, t);
        x->value = pc_value_number_text(p->a, p->src + t->off, t->len);
        if (!x->value) perr(p, t, "invalid number");
        x->ground = true;
        break;
    }
    case K_STRING:
        next(p);
        x = mk_str(p, t->sval, t->slen, t);
        break;
    case K_TEMPLATE:
        next(p);
        x = parse_template(p, t);
        break;
    case K_MINUS: {
        next(p);
        tok *nt = cur(p);
        if (nt->k == K_NUMBER && !nt->ws) {
            next(p);
            char buf[128];
            if (nt->len + 2 > sizeof(buf)) perr(p, nt, "number too long");
            buf[0] = '-';
            memcpy(buf + 1, p->src + nt->off, nt->len);
            x = mk_term(p, T_VALUE, t);
            x->value = pc_value_number_text(p->a, buf, nt->len + 1);
            if (!x->value) perr(p, nt, "invalid number");
            x->ground = true;
            x = parse_ref_suffix(p, x);
        } else {
            pc_term *operand = parse_primary(p);
            pc_term *zero = mk_term(p, T_VALUE, t);
            zero->value = pc_value_int(p->a, 0);
            zero->ground = true;
            x = mk_call(p, "minus", t, zero, operand);
        }
        break;
    }
    case K_LBRACK: {
        next(p);
        if (accept(p, K_RBRACK)) {
            x = mk_term(p, T_ARRAY, t);
            x = parse_ref_suffix(p, x);
            break;
        }
        pc_term *first = parse_term_or(p);
        if (accept(p, K_BAR)) {
            x = mk_term(p, T_ARRCOMP, t);
            x->head = first;
            x->body = parse_body_until(p, K_RBRACK);
            expect(p, K_RBRACK, "]");
        } else {
            tlist it = {0};
            tl_push(p, &it, first);
            while (accept(p, K_COMMA)) {
                if (cur(p)->k == K_RBRACK) break;
                tl_push(p, &it, parse_term_in(p));
            }
            expect(p, K_RBRACK, "]");
            x = mk_term(p, T_ARRAY, t);
            x->items = it.items;
            x->n = (uint32_t)it.len;
        }
        x = parse_ref_suffix(p, x);
        break;
    }
    case K_LBRACE:
        next(p);
        x = parse_braces(p, t);
        x = parse_ref_suffix(p, x);
        break;
    case K_LPAREN: {
        next(p);
        x = parse_term_in(p);
        if (cur(p)->k == K_COMMA) {
            /* (k, v in coll) */
            next(p);
            pc_term *v = parse_binary(p, 0);
            if (!is_kw(p, cur(p), "in")) perr(p, cur(p), "unexpected , token: expected )");
            tok *it = next(p);
            x = member3(p, it, x, v, parse_binary(p, 0));
            x = chain_in(p, x);
        }
        expect(p, K_RPAREN, ")");
        x = parse_ref_suffix(p, x);
        break;
    }
    case K_IDENT: {
        next(p);
        if (is_kw(p, t, "true") || is_kw(p, t, "false")) {
            x = mk_term(p, T_VALUE, t);
            x->value = pc_value_bool(is_kw(p, t, "true"));
            x->ground = true;
        } else if (is_kw(p, t, "null")) {
            x = mk_term(p, T_VALUE, t);
            x->value = pc_value_null();
            x->ground = true;
        } else if (t->len == 3 && memcmp(p->src + t->off, "set", 3) == 0 && cur(p)->k == K_LPAREN && !cur(p)->ws &&
                   peek(p, 1)->k == K_RPAREN) {
            next(p);
            next(p);
            x = mk_term(p, T_SET, t);
        } else {
            if (is_reserved(p, t))
                perr(p, t, "unexpected %.*s keyword", (int)t->len, p->src + t->off);
            x = mk_var(p, tstr(p, t), t);
            if (t->len == 1 && p->src[t->off] == '_') {
                x->wildcard = true;
                char buf[32];
                snprintf(buf, sizeof(buf), "$_%d", p->gen++);
                x->name = pc_arena_strndup(p->a, buf, strlen(buf));
            }
        }
        x = parse_ref_suffix(p, x);
        break;
    }
    case K_EOF: perr(p, t, "unexpected eof token");
    default:
        perr(p, t, "unexpected %.*s token", (int)(t->len ? t->len : 1), p->src + t->off);
    }
    p->depth--;
    return x;
}

/* $"a {x} b": internal.template_string([ "a ", {v | v = x}, " b" ]); each
 * expression becomes a set comprehension so that undefined shows as
 * <undefined> instead of making the whole string undefined. */
static pc_term *parse_template(P *p, const tok *t)
{
    const char *s = p->src + t->off;
    size_t n = t->len;
    char q = s[1];
    size_t i = 2, end = n - 1;
    tlist parts = {0};
    /* literal text never grows past the template's own length; the arena
     * holds it so that a parse error (longjmp) leaks nothing */
    struct {
        char *p;
        size_t len;
    } lit = {palloc(p, n + 8), 0};
    while (i < end) {
        char c = s[i];
        if (c == '\\' && i + 1 < end) {
            char d = s[i + 1];
            if (d == '{') {
                lit.p[lit.len++] = '{';
                i += 2;
                continue;
            }
            if (q == '`') {
                lit.p[lit.len++] = s[i];
                i++;
                continue;
            }
            /* JSON escapes: decode one through the string decoder */
            size_t j = i + 2;
            if (d == 'u') j = i + 6 <= end ? i + 6 : end;
            char buf[16];
            size_t bl = j - i;
            if (bl > 12) bl = 12;
            memcpy(buf, s + i, bl);
            buf[bl] = '"';
            size_t pos = 0, outl;
            const char *e = NULL;
            char *dec = pc__unquote(p->a, buf, bl + 1, &pos, &outl, &e);
            if (!dec) perr(p, t, "invalid escape in template string");
            memcpy(lit.p + lit.len, dec, outl);
            lit.len += outl;
            i = j;
            continue;
        }
        if (c == '{') {
            if (lit.len) tl_push(p, &parts, mk_str(p, lit.p, lit.len, t));
            lit.len = 0;
            size_t st = i + 1, j = st;
            int depth = 1;
            while (j < end && depth > 0) {
                char cc = s[j];
                if (cc == '"' || cc == '`' || (cc == '$' && j + 1 < end && (s[j + 1] == '"' || s[j + 1] == '`'))) {
                    size_t e2 = skip_string(s, end, j);
                    if (!e2) break;
                    j = e2;
                    continue;
                }
                if (cc == '{') depth++;
                if (cc == '}') depth--;
                if (depth) j++;
            }
            if (depth) perr(p, t, "unterminated template expression");
            P *sub = palloc(p, sizeof(P));
            *sub = *p;
            sub->src = s + st;
            sub->n = j - st;
            sub->toks = NULL;
            sub->ntok = sub->cap = sub->pos = 0;
            sub->nmeta = 0; /* annotation blocks belong to the module */
            memcpy(sub->jb, p->jb, sizeof(jmp_buf));
            lex(sub);
            pc_term *ex = parse_term_in(sub);
            char vn[32];
            snprintf(vn, sizeof(vn), "$t%d", sub->gen++);
            pc_term *v = mk_var(p, pc_arena_strndup(p->a, vn, strlen(vn)), t);
            pc_term *v2 = mk_var(p, v->name, t);
            pc_expr *u = mk_expr(p, E_UNIFY, t);
            u->a = v2;
            u->b = ex;
            parse_withs(sub, u); /* {a with input as {...}} */
            if (cur(sub)->k != K_EOF) perr(sub, cur(sub), "unexpected token in template expression");
            p->gen = sub->gen;
            pc_body *b = palloc(p, sizeof(*b));
            b->exprs = palloc(p, sizeof(pc_expr *));
            b->exprs[0] = u;
            b->n = 1;
            pc_term *comp = mk_term(p, T_SETCOMP, t);
            comp->head = v;
            comp->body = b;
            tl_push(p, &parts, comp);
            i = j + 1;
            continue;
        }
        lit.p[lit.len++] = s[i];
        i++;
    }
    if (lit.len || parts.len == 0) tl_push(p, &parts, mk_str(p, lit.p, lit.len, t));
    pc_term *arr = mk_term(p, T_ARRAY, t);
    arr->items = parts.items;
    arr->n = (uint32_t)parts.len;
    pc_term *c = mk_call(p, "internal.template_string", t, arr, NULL);
    return c;
}

typedef struct {
    tok_kind k;
    const char *fn;
} binop;

static pc_term *parse_binary(P *p, int level);

static const binop *find_op(int level, tok_kind k)
{
    static const binop rel[] = {{K_EQ, "equal"}, {K_NE, "neq"}, {K_LT, "lt"}, {K_LE, "lte"},
                                {K_GT, "gt"},    {K_GE, "gte"}, {K_EOF, NULL}};
    static const binop orr[] = {{K_BAR, "or"}, {K_EOF, NULL}};
    static const binop andd[] = {{K_AMP, "and"}, {K_EOF, NULL}};
    static const binop arith[] = {{K_PLUS, "plus"}, {K_MINUS, "minus"}, {K_EOF, NULL}};
    static const binop fact[] = {{K_STAR, "mul"}, {K_SLASH, "div"}, {K_PERCENT, "rem"}, {K_EOF, NULL}};
    static const binop *levels[] = {rel, orr, andd, arith, fact};
    for (const binop *b = levels[level]; b->fn; b++)
        if (b->k == k) return b;
    return NULL;
}

static pc_term *parse_binary(P *p, int level)
{
    if (level > 4) return parse_primary(p);
    pc_term *l = parse_binary(p, level + 1);
    for (;;) {
        tok *t = cur(p);
        if (t->nl) break;
        const binop *op = find_op(level, t->k);
        if (!op) break;
        next(p);
        pc_term *r = parse_binary(p, level + 1);
        l = mk_call(p, op->fn, t, l, r);
        l->loc = l->items[0]->loc;
    }
    return l;
}

static pc_term *parse_term_or(P *p)
{
    /* relation level without `|` at the outermost: used for comprehension
     * heads where `|` separates the body. */
    pc_term *l = parse_binary(p, 2);
    for (;;) {
        tok *t = cur(p);
        if (t->nl) break;
        const binop *op = find_op(0, t->k);
        if (!op) break;
        next(p);
        pc_term *r = parse_binary(p, 2);
        l = mk_call(p, op->fn, t, l, r);
    }
    return l;
}

static pc_term *member3(P *p, const tok *it, pc_term *k, pc_term *v, pc_term *coll)
{
    pc_term *c = mk_term(p, T_CALL, it);
    c->name = "internal.member_3";
    c->n = 3;
    c->items = palloc(p, 3 * sizeof(pc_term *));
    c->items[0] = k;
    c->items[1] = v;
    c->items[2] = coll;
    c->loc = k->loc;
    return c;
}

/* x in a in b: membership chains to the left. */
static pc_term *chain_in(P *p, pc_term *l)
{
    while (is_kw(p, cur(p), "in") && !cur(p)->nl) {
        tok *t = next(p);
        pc_term *r = parse_binary(p, 0);
        l = mk_call(p, "internal.member_2", t, l, r);
    }
    return l;
}

/* term [in term]: membership binds loosest among terms. */
static pc_term *parse_term_in(P *p)
{
    pc_term *l = parse_binary(p, 0);
    while (is_kw(p, cur(p), "in") && !cur(p)->nl) {
        tok *t = next(p);
        pc_term *r = parse_binary(p, 0);
        l = mk_call(p, "internal.member_2", t, l, r);
    }
    return l;
}

/* ---- expressions ------------------------------------------------------ */

static pc_expr *mk_expr(P *p, pc_expr_kind k, const tok *t)
{
    pc_expr *e = palloc(p, sizeof(*e));
    e->kind = (uint8_t)k;
    e->loc = tloc(p, t);
    return e;
}

static void parse_withs(P *p, pc_expr *e)
{
    size_t cap = 0;
    while (is_kw(p, cur(p), "with")) {
        tok *t = next(p);
        pc_term *target = parse_primary(p);
        if (!is_kw(p, cur(p), "as")) perr(p, cur(p), "expected as");
        next(p);
        pc_term *val = parse_term_in(p);
        if (e->nwith == cap) {
            size_t nc = cap ? cap * 2 : 2;
            pc_with *nw = palloc(p, nc * sizeof(*nw));
            if (e->nwith) memcpy(nw, e->withs, e->nwith * sizeof(*nw));
            e->withs = nw;
            cap = nc;
        }
        e->withs[e->nwith].target = target;
        e->withs[e->nwith].value = val;
        e->withs[e->nwith].loc = tloc(p, t);
        e->nwith++;
    }
}

static pc_expr *parse_expr(P *p)
{
    tok *t = cur(p);
    pc_expr *e;
    size_t startoff = t->off;
    if (is_kw(p, t, "some")) {
        next(p);
        tlist vars = {0};
        for (;;) {
            tl_push(p, &vars, parse_term_or(p));
            if (!accept(p, K_COMMA)) break;
        }
        if (is_kw(p, cur(p), "in")) {
            next(p);
            if (vars.len > 2) perr(p, t, "unexpected , token: expected at most two vars");
            e = mk_expr(p, E_SOMEIN, t);
            if (vars.len == 2) {
                e->a = vars.items[0];
                e->b = vars.items[1];
            } else {
                e->b = vars.items[0];
            }
            e->c = parse_binary(p, 0);
        } else {
            e = mk_expr(p, E_SOME, t);
            for (size_t i = 0; i < vars.len; i++)
                if (vars.items[i]->kind != T_VAR)
                    perr(p, t, "expected var but got %s", "term");
            e->vars = vars.items;
            e->nvars = (uint32_t)vars.len;
        }
    } else if (is_kw(p, t, "every")) {
        next(p);
        e = mk_expr(p, E_EVERY, t);
        pc_term *v1 = parse_primary(p);
        if (accept(p, K_COMMA)) {
            e->a = v1;
            e->b = parse_primary(p);
        } else {
            e->b = v1;
        }
        if (!is_kw(p, cur(p), "in")) perr(p, cur(p), "unexpected token: expected in");
        next(p);
        e->c = parse_binary(p, 0);
        expect(p, K_LBRACE, "{");
        e->body = parse_body_until(p, K_RBRACE);
        expect(p, K_RBRACE, "}");
    } else if (is_kw(p, t, "not")) {
        next(p);
        e = mk_expr(p, E_NOT, t);
        if (cur(p)->k == K_LBRACE) {
            /* not { body } (future.keywords.not) */
            next(p);
            e->body = parse_body_until(p, K_RBRACE);
            expect(p, K_RBRACE, "}");
            parse_withs(p, e);
            return e;
        }
        e->inner = parse_expr(p);
        return e;
    } else {
        pc_term *l = parse_term_in(p);
        tok *o = cur(p);
        if (o->k == K_COMMA && !o->nl) {
            /* k, v in coll */
            next(p);
            pc_term *v = parse_binary(p, 0);
            if (!is_kw(p, cur(p), "in")) perr(p, cur(p), "unexpected , token");
            tok *it = next(p);
            pc_term *coll = parse_binary(p, 0);
            pc_term *c = chain_in(p, member3(p, it, l, v, coll));
            e = mk_expr(p, E_TERM, t);
            e->a = c;
        } else if ((o->k == K_ASSIGN || o->k == K_UNIFY) && !o->nl) {
            next(p);
            e = mk_expr(p, o->k == K_ASSIGN ? E_ASSIGN : E_UNIFY, t);
            e->a = l;
            e->b = parse_term_in(p);
        } else {
            e = mk_expr(p, E_TERM, t);
            e->a = l;
        }
    }
    parse_withs(p, e);
    tok *last = &p->toks[p->pos ? p->pos - 1 : 0];
    e->text = p->src + startoff;
    e->textlen = (uint32_t)(last->off + last->len - startoff);
    return e;
}

typedef struct {
    pc_expr **items;
    size_t len, cap;
} elist;

static void el_push(P *p, elist *l, pc_expr *e)
{
    if (l->len == l->cap) {
        size_t nc = l->cap ? l->cap * 2 : 4;
        pc_expr **ni = palloc(p, nc * sizeof(*ni));
        if (l->len) memcpy(ni, l->items, l->len * sizeof(*ni));
        l->items = ni;
        l->cap = nc;
    }
    l->items[l->len++] = e;
}

/* Body: expressions separated by ';' or newlines, up to (not including) end. */
static pc_body *parse_body_until(P *p, tok_kind end)
{
    elist l = {0};
    for (;;) {
        while (accept(p, K_SEMI)) {
        }
        tok *t = cur(p);
        if (t->k == end || t->k == K_EOF) break;
        pc_expr *e = parse_expr(p);
        el_push(p, &l, e);
        tok *n = cur(p);
        if (n->k == K_SEMI || n->k == end || n->nl) continue;
        if (n->k == K_EOF) break;
        perr(p, n, "unexpected %.*s token", (int)(n->len ? n->len : 1), p->src + n->off);
    }
    if (l.len == 0 && end == K_RBRACE) perr(p, cur(p), "found empty body");
    pc_body *b = palloc(p, sizeof(*b));
    b->exprs = l.items;
    b->n = (uint32_t)l.len;
    return b;
}

/* ---- rules ------------------------------------------------------------ */

static pc_body *parse_rule_body(P *p, bool *had_if)
{
    *had_if = false;
    if (is_kw(p, cur(p), "if")) {
        next(p);
        *had_if = true;
        if (cur(p)->k == K_LBRACE) {
            /* `if {` opens a body, unless what follows only parses as a
             * term (`if {x: i | ...}`): try the body, then the term. */
            size_t save = p->pos;
            jmp_buf outer;
            memcpy(outer, p->jb, sizeof(jmp_buf));
            pc_policy_error saved_err = *p->err;
            if (setjmp(p->jb) == 0) {
                next(p);
                pc_body *b = parse_body_until(p, K_RBRACE);
                expect(p, K_RBRACE, "}");
                memcpy(p->jb, outer, sizeof(jmp_buf));
                return b;
            }
            memcpy(p->jb, outer, sizeof(jmp_buf));
            if (p->toks[save + 1].k == K_RBRACE) longjmp(p->jb, 1); /* `if {}`: empty body */
            p->pos = save;
            pc_policy_error body_err = *p->err;
            *p->err = saved_err;
            /* if the term fails too, report the body's error */
            jmp_buf outer2;
            memcpy(outer2, p->jb, sizeof(jmp_buf));
            if (setjmp(p->jb) != 0) {
                memcpy(p->jb, outer2, sizeof(jmp_buf));
                *p->err = body_err;
                longjmp(p->jb, 1);
            }
            elist l1 = {0};
            el_push(p, &l1, parse_expr(p));
            memcpy(p->jb, outer2, sizeof(jmp_buf));
            pc_body *b1 = palloc(p, sizeof(*b1));
            b1->exprs = l1.items;
            b1->n = 1;
            return b1;
        }
        elist l = {0};
        el_push(p, &l, parse_expr(p));
        pc_body *b = palloc(p, sizeof(*b));
        b->exprs = l.items;
        b->n = 1;
        return b;
    }
    if (cur(p)->k == K_LBRACE) {
        next(p);
        pc_body *b = parse_body_until(p, K_RBRACE);
        expect(p, K_RBRACE, "}");
        return b;
    }
    return NULL;
}

/* authors: "Name <email>" strings become {name, email}; related_resources:
 * strings become {ref}; scope defaults to the place of the block. */
static const pc_value *normalize_annotation(P *p, const pc_value *v, const char *default_scope)
{
    pc_obuf ob;
    pc_obuf_init(&ob, p->a);
    bool has_scope = false;
    for (uint32_t i = 0; i < v->len; i++) {
        const pc_value *k = v->u.kvs[i].key, *val = v->u.kvs[i].val;
        if (k->kind == PC_STRING && !strcmp(k->u.s, "scope")) has_scope = true;
        if (k->kind == PC_STRING && !strcmp(k->u.s, "authors") && val->kind == PC_ARRAY) {
            pc_vbuf vb;
            pc_vbuf_init(&vb, p->a);
            for (uint32_t j = 0; j < val->len; j++) {
                const pc_value *au = val->u.items[j];
                if (au->kind != PC_STRING) {
                    pc_vbuf_push(&vb, au);
                    continue;
                }
                pc_obuf ao;
                pc_obuf_init(&ao, p->a);
                const char *lt = strchr(au->u.s, '<');
                const char *gt = lt ? strchr(lt, '>') : NULL;
                if (lt && gt) {
                    size_t nl = (size_t)(lt - au->u.s);
                    while (nl && au->u.s[nl - 1] == ' ') nl--;
                    if (nl) pc_obuf_put_str(&ao, "name", pc_value_string(p->a, au->u.s, nl));
                    pc_obuf_put_str(&ao, "email", pc_value_string(p->a, lt + 1, (size_t)(gt - lt - 1)));
                } else {
                    pc_obuf_put_str(&ao, "name", au);
                }
                pc_vbuf_push(&vb, pc_obuf_object(&ao));
            }
            val = pc_vbuf_array(&vb);
        } else if (k->kind == PC_STRING && !strcmp(k->u.s, "related_resources") && val->kind == PC_ARRAY) {
            pc_vbuf vb;
            pc_vbuf_init(&vb, p->a);
            for (uint32_t j = 0; j < val->len; j++) {
                if (val->u.items[j]->kind != PC_STRING) {
                    pc_vbuf_push(&vb, val->u.items[j]);
                    continue;
                }
                pc_obuf ro;
                pc_obuf_init(&ro, p->a);
                pc_obuf_put_str(&ro, "ref", val->u.items[j]);
                pc_vbuf_push(&vb, pc_obuf_object(&ro));
            }
            val = pc_vbuf_array(&vb);
        }
        pc_obuf_put(&ob, k, val);
    }
    if (!has_scope) pc_obuf_put_str(&ob, "scope", pc_value_cstring(p->a, default_scope));
    const pc_value *r = pc_obuf_object(&ob);
    if (!r) perr(p, NULL, "out of memory");
    return r;
}

static const pc_value *annotation_for(P *p, int row, const char *default_scope)
{
    for (int i = 0; i < p->nmeta; i++) {
        if (p->meta_end[i] != row - 1) continue;
        char err[200] = "";
        const pc_str *m = &p->meta[i];
        const pc_value *v = pc_yaml_parse(p->a, m->p ? m->p : "{}", m->p ? m->len : 2, err, sizeof(err));
        if (!v || v->kind != PC_OBJECT) {
            tok t = {.row = row - 1, .col = 1};
            perr(p, &t, "invalid METADATA block: %s", v ? "expected a YAML mapping" : err);
        }
        return normalize_annotation(p, v, default_scope);
    }
    return NULL;
}

static pc_rule *parse_rule(P *p, pc_module *m)
{
    tok *start = cur(p);
    pc_rule *r = palloc(p, sizeof(*r));
    r->mod = m;
    r->loc = tloc(p, start);
    r->annot = annotation_for(p, start->row, "rule");
    if (is_kw(p, start, "default")) {
        next(p);
        r->is_default = true;
    }
    tok *nt = cur(p);
    if (nt->k != K_IDENT || is_reserved(p, nt)) perr(p, nt, "unexpected %s token: expected rule head",
                                                     nt->k == K_EOF ? "eof" : "non-identifier");
    pc_term *head = parse_primary(p);
    pc_term *ref = head;
    if (head->kind == T_CALL) {
        r->kind = R_FUNC;
        r->args = head->items;
        r->nargs = head->n;
        ref = head->head;
    }
    if (ref->kind == T_VAR) {
        r->path = palloc(p, sizeof(pc_term *));
        r->path[0] = ref;
        r->npath = 1;
    } else if (ref->kind == T_REF && ref->items[0]->kind == T_VAR) {
        r->path = ref->items;
        r->npath = ref->n;
    } else {
        perr(p, nt, "invalid rule head");
    }
    r->name = r->path[0]->name;
    if (is_kw(p, cur(p), "contains")) {
        next(p);
        if (r->kind == R_FUNC) perr(p, cur(p), "function cannot use contains");
        r->kind = R_PSET;
        r->key = parse_term_in(p);
    } else if (cur(p)->k == K_ASSIGN || cur(p)->k == K_UNIFY) {
        next(p);
        r->value = parse_term_in(p);
    }
    bool had_if;
    r->body = parse_rule_body(p, &had_if);
    if (r->is_default) {
        if (r->body) perr(p, start, "default rules must not have a body");
        if (!r->value) perr(p, start, "default rules must have a value");
    }
    if (r->kind != R_PSET && r->kind != R_FUNC) {
        pc_term *last = r->path[r->npath - 1];
        bool last_var = r->npath > 1 && last->kind != T_VALUE;
        bool dynamic = false;
        for (uint32_t i = 1; i < r->npath; i++)
            if (r->path[i]->kind != T_VALUE || r->path[i]->value->kind != PC_STRING) dynamic = true;
        if (p->v0 && !r->value && last_var && r->npath == 2) {
            r->kind = R_PSET; /* v0: p[x] { ... } */
            r->key = last;
            r->npath--;
        } else if (dynamic) {
            r->kind = R_POBJ; /* keys are the path elements after the constant prefix */
        } else {
            r->kind = R_COMPLETE;
        }
    }
    if (!r->body && !r->value && r->kind != R_PSET && r->kind != R_POBJ && !r->is_default) {
        /* a bare `p` or `p.q` (v1): value true */
        if (!had_if && r->kind == R_FUNC) perr(p, start, "function must have a body or value");
    }
    /* else chains */
    pc_rule *prev = r;
    while (is_kw(p, cur(p), "else")) {
        tok *et = next(p);
        if (r->kind != R_COMPLETE && r->kind != R_FUNC) perr(p, et, "else keyword cannot be used on multi-value rules");
        pc_rule *e = palloc(p, sizeof(*e));
        *e = *r;
        e->els = NULL;
        e->loc = tloc(p, et);
        e->value = NULL;
        if (cur(p)->k == K_ASSIGN || cur(p)->k == K_UNIFY) {
            next(p);
            e->value = parse_term_in(p);
        }
        e->body = parse_rule_body(p, &had_if);
        prev->els = e;
        prev = e;
    }
    /* v0 allows several bodies p { } { } : treat as separate rules is rare; reject */
    return r;
}

static pc_term *parse_pkg_ref(P *p)
{
    tok *t = cur(p);
    if (t->k != K_IDENT) perr(p, t, "unexpected %s token: expected ident", t->k == K_EOF ? "eof" : "non-identifier");
    pc_term *x = parse_primary(p);
    return x;
}

pc_module *pc__parse_module(pc_arena *a, pc_intern *in, const char *file, const char *text,
                            size_t len, bool v0, pc_policy_error *err)
{
    P *p = pc_arena_alloc(a, sizeof(P));
    if (!p) return NULL;
    memset(p, 0, sizeof(*p));
    p->a = a;
    p->file = file;
    p->src = text;
    p->n = len;
    p->err = err;
    p->v0 = v0;
    p->in = in;
    if (setjmp(p->jb)) {
        for (int i = 0; i < p->nmeta; i++) pc_str_free(&p->meta[i]);
        return NULL;
    }
    lex(p);
    pc_module *m = palloc(p, sizeof(*m));
    m->file = file;
    tok *t = cur(p);
    if (!is_kw(p, t, "package")) perr(p, t, "package expected");
    m->pkg_annot = annotation_for(p, t->row, "package");
    next(p);
    pc_term *pkg = parse_pkg_ref(p);
    /* package path: data + elements */
    tlist path = {0};
    tl_push(p, &path, mk_var(p, "data", t));
    if (pkg->kind == T_VAR) {
        tl_push(p, &path, mk_str(p, pkg->name, strlen(pkg->name), t));
    } else if (pkg->kind == T_REF && pkg->items[0]->kind == T_VAR) {
        tl_push(p, &path, mk_str(p, pkg->items[0]->name, strlen(pkg->items[0]->name), t));
        for (uint32_t i = 1; i < pkg->n; i++) {
            if (pkg->items[i]->kind != T_VALUE || pkg->items[i]->value->kind != PC_STRING)
                perr(p, t, "invalid package path");
            tl_push(p, &path, pkg->items[i]);
        }
    } else {
        perr(p, t, "invalid package path");
    }
    m->pkg = mk_term(p, T_REF, t);
    m->pkg->items = path.items;
    m->pkg->n = (uint32_t)path.len;
    size_t icap = 0, rcap = 0;
    while (is_kw(p, cur(p), "import")) {
        tok *it = next(p);
        pc_term *ip = parse_primary(p);
        const char *alias = NULL;
        if (is_kw(p, cur(p), "as")) {
            next(p);
            tok *at = expect(p, K_IDENT, "identifier");
            alias = tstr(p, at);
        }
        pc_term *h = ip->kind == T_REF ? ip->items[0] : ip;
        if (h->kind != T_VAR || (strcmp(h->name, "data") && strcmp(h->name, "input") &&
                                 strcmp(h->name, "future") && strcmp(h->name, "rego")))
            perr(p, it, "invalid import path");
        if (!strcmp(h->name, "future") || !strcmp(h->name, "rego")) continue;
        if (m->nimports == icap) {
            size_t nc = icap ? icap * 2 : 4;
            pc_import *ni = palloc(p, nc * sizeof(*ni));
            if (m->nimports) memcpy(ni, m->imports, m->nimports * sizeof(*ni));
            m->imports = ni;
            icap = nc;
        }
        m->imports[m->nimports].path = ip;
        m->imports[m->nimports].alias = alias;
        m->imports[m->nimports].loc = tloc(p, it);
        m->nimports++;
    }
    while (cur(p)->k != K_EOF) {
        if (is_kw(p, cur(p), "import")) perr(p, cur(p), "unexpected import keyword");
        if (is_kw(p, cur(p), "package")) perr(p, cur(p), "unexpected package keyword");
        pc_rule *r = parse_rule(p, m);
        if (m->nrules == rcap) {
            size_t nc = rcap ? rcap * 2 : 8;
            pc_rule **nr = palloc(p, nc * sizeof(*nr));
            if (m->nrules) memcpy(nr, m->rules, m->nrules * sizeof(*nr));
            m->rules = nr;
            rcap = nc;
        }
        m->rules[m->nrules++] = r;
        tok *n = cur(p);
        if (n->k != K_EOF && !n->nl && n->k != K_SEMI)
            perr(p, n, "unexpected %.*s token", (int)(n->len ? n->len : 1), p->src + n->off);
        while (accept(p, K_SEMI)) {
        }
    }
    for (int i = 0; i < p->nmeta; i++) pc_str_free(&p->meta[i]);
    return m;
}

pc_body *pc__parse_query(pc_arena *a, pc_intern *in, const char *text, size_t len,
                         pc_policy_error *err)
{
    P *p = pc_arena_alloc(a, sizeof(P));
    if (!p) return NULL;
    memset(p, 0, sizeof(*p));
    p->a = a;
    p->file = "";
    p->src = text;
    p->n = len;
    p->err = err;
    p->in = in;
    if (setjmp(p->jb)) {
        for (int i = 0; i < p->nmeta; i++) pc_str_free(&p->meta[i]);
        return NULL;
    }
    lex(p);
    for (int i = 0; i < p->nmeta; i++) pc_str_free(&p->meta[i]);
    p->nmeta = 0;
    pc_body *b = parse_body_until(p, K_EOF);
    if (b->n == 0) perr(p, cur(p), "empty query");
    return b;
}
