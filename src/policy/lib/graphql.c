/*
 * gqlparser's lexer and recursive-descent parser, emitting JSON as it goes.
 * Members that would be null or empty are simply not written, which is what
 * OPA's pruning leaves of gqlparser's structs.
 */
#include "policy/lib/graphql.h"

#include "policy/lib/sbuf.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_DEPTH 128

typedef enum {
    T_INVALID, T_EOF, T_BANG, T_DOLLAR, T_AMP, T_PAREN_L, T_PAREN_R, T_SPREAD, T_COLON, T_EQUALS,
    T_AT, T_BRACKET_L, T_BRACKET_R, T_BRACE_L, T_BRACE_R, T_PIPE, T_NAME, T_INT, T_FLOAT, T_STRING,
    T_BLOCK_STRING,
} tkind_t;

static const char *KIND_NAMES[] = {"<Invalid>", "<EOF>", "!", "$", "&", "(", ")", "...", ":", "=", "@",
                                   "[", "]", "{", "}", "|", "Name", "Int", "Float", "String", "BlockString"};

typedef struct {
    tkind_t kind;
    char *value; /* malloc'd (unescaped for strings); NULL for punctuators */
    size_t len;
    int line, col;
} tok_t;

typedef struct {
    const char *s;
    size_t n, pos;
    int line;
    size_t line_start;
    tok_t cur, prev;
    bool have;
    char *err;
    size_t errlen;
    bool failed;
    int depth;
    pc__sbuf_t *out;
} parser_t;

static void tok_free(tok_t *t)
{
    free(t->value);
    t->value = NULL;
}

static void fail_at(parser_t *p, int line, int col, const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void fail_at(parser_t *p, int line, int col, const char *fmt, ...)
{
    if (p->failed) return;
    p->failed = true;
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (p->err && p->errlen)
        snprintf(p->err, p->errlen, "%s in GraphQL string at location %d:%d", msg, line, col);
}

/* Token.String(): Kind, plus the quoted value when there is one */
static void tok_desc(const tok_t *t, char *buf, size_t cap)
{
    if (t->value && t->len) {
        pc__sbuf_t b = {0};
        pc__sbuf_adds(&b, KIND_NAMES[t->kind]);
        pc__sbuf_adds(&b, " \"");
        for (size_t i = 0; i < t->len; i++) {
            char c = t->value[i];
            if (c == '"' || c == '\\') pc__sbuf_addc(&b, '\\');
            if (c == '\n') {
                pc__sbuf_adds(&b, "\\n");
                continue;
            }
            pc__sbuf_addc(&b, c);
        }
        pc__sbuf_addc(&b, '"');
        snprintf(buf, cap, "%s", b.data ? b.data : "");
        pc__sbuf_free(&b);
    } else {
        snprintf(buf, cap, "%s", KIND_NAMES[t->kind]);
    }
}

/* ---- lexer -------------------------------------------------------------------- */

static bool blank_line(const char *raw, size_t from, size_t to)
{
    while (from < to && (raw[from] == ' ' || raw[from] == '\t')) from++;
    return from == to;
}

static void block_string_value(pc__sbuf_t *out, const char *raw, size_t n)
{
    /* split lines, find common indent (ignoring the first line), drop blank edges */
    size_t nl = 1;
    for (size_t i = 0; i < n; i++) nl += raw[i] == '\n';
    size_t *st = malloc(nl * sizeof(size_t)), *en = malloc(nl * sizeof(size_t));
    if (!st || !en) {
        free(st);
        free(en);
        out->oom = true;
        return;
    }
    size_t k = 0, b = 0;
    for (size_t i = 0; i <= n; i++)
        if (i == n || raw[i] == '\n') {
            st[k] = b;
            en[k] = i > b && raw[i - 1] == '\r' ? i - 1 : i;
            k++;
            b = i + 1;
        }
    size_t common = (size_t)-1;
    for (size_t l = 1; l < k; l++) {
        size_t ind = 0;
        while (st[l] + ind < en[l] && (raw[st[l] + ind] == ' ' || raw[st[l] + ind] == '\t')) ind++;
        if (st[l] + ind < en[l] && ind < common) common = ind;
    }
    size_t first = 0, last = k;
    /* a line is blank when it holds only spaces and tabs */
    while (first < last && blank_line(raw, st[first], en[first])) first++;
    while (last > first && blank_line(raw, st[last - 1], en[last - 1])) last--;
    for (size_t l = first; l < last; l++) {
        if (l > first) pc__sbuf_addc(out, '\n');
        size_t s0 = st[l];
        if (l > 0 && common != (size_t)-1) s0 = s0 + common > en[l] ? en[l] : s0 + common;
        pc__sbuf_add(out, raw + s0, en[l] - s0);
    }
    free(st);
    free(en);
}

static void lex(parser_t *p)
{
    tok_free(&p->prev);
    p->prev = p->cur;
    memset(&p->cur, 0, sizeof(p->cur));
    const char *s = p->s;
    size_t n = p->n;
    for (;;) {
        if (p->pos >= n) break;
        char c = s[p->pos];
        if (c == '\n') {
            p->pos++;
            p->line++;
            p->line_start = p->pos;
        } else if (c == '\r') {
            p->pos++;
            if (p->pos < n && s[p->pos] == '\n') p->pos++;
            p->line++;
            p->line_start = p->pos;
        } else if (c == ' ' || c == '\t' || c == ',') {
            p->pos++;
        } else if (c == '#') {
            while (p->pos < n && s[p->pos] != '\n' && s[p->pos] != '\r') p->pos++;
        } else if ((unsigned char)c == 0xEF && p->pos + 2 < n && (unsigned char)s[p->pos + 1] == 0xBB &&
                   (unsigned char)s[p->pos + 2] == 0xBF) {
            p->pos += 3;
        } else {
            break;
        }
    }
    tok_t *t = &p->cur;
    t->line = p->line;
    t->col = (int)(p->pos - p->line_start) + 1;
    if (p->pos >= n) {
        t->kind = T_EOF;
        return;
    }
    char c = s[p->pos];
    static const char punct[] = "!$&():=@[]{}|";
    static const tkind_t pk[] = {T_BANG, T_DOLLAR, T_AMP, T_PAREN_L, T_PAREN_R, T_COLON, T_EQUALS, T_AT,
                                 T_BRACKET_L, T_BRACKET_R, T_BRACE_L, T_BRACE_R, T_PIPE};
    const char *pp = strchr(punct, c);
    if (c && pp) {
        t->kind = pk[pp - punct];
        p->pos++;
        return;
    }
    if (c == '.') {
        if (p->pos + 2 < n + 0 && s[p->pos + 1] == '.' && s[p->pos + 2] == '.') {
            t->kind = T_SPREAD;
            p->pos += 3;
            return;
        }
        fail_at(p, t->line, t->col, "Unexpected character \".\"");
        t->kind = T_INVALID;
        return;
    }
    if (c == '_' || isalpha((unsigned char)c)) {
        size_t st = p->pos;
        while (p->pos < n && (s[p->pos] == '_' || isalnum((unsigned char)s[p->pos]))) p->pos++;
        t->kind = T_NAME;
        t->len = p->pos - st;
        t->value = strndup(s + st, t->len);
        return;
    }
    if (c == '-' || isdigit((unsigned char)c)) {
        size_t st = p->pos;
        bool is_float = false;
        if (s[p->pos] == '-') p->pos++;
        if (p->pos < n && s[p->pos] == '0') {
            p->pos++;
            if (p->pos < n && isdigit((unsigned char)s[p->pos])) {
                fail_at(p, t->line, t->col, "Invalid number, unexpected digit after 0");
                t->kind = T_INVALID;
                return;
            }
        } else {
            if (p->pos >= n || !isdigit((unsigned char)s[p->pos])) {
                fail_at(p, t->line, t->col, "Invalid number, expected digit");
                t->kind = T_INVALID;
                return;
            }
            while (p->pos < n && isdigit((unsigned char)s[p->pos])) p->pos++;
        }
        if (p->pos < n && s[p->pos] == '.') {
            is_float = true;
            p->pos++;
            if (p->pos >= n || !isdigit((unsigned char)s[p->pos])) {
                fail_at(p, t->line, t->col, "Invalid number, expected digit");
                t->kind = T_INVALID;
                return;
            }
            while (p->pos < n && isdigit((unsigned char)s[p->pos])) p->pos++;
        }
        if (p->pos < n && (s[p->pos] == 'e' || s[p->pos] == 'E')) {
            is_float = true;
            p->pos++;
            if (p->pos < n && (s[p->pos] == '+' || s[p->pos] == '-')) p->pos++;
            if (p->pos >= n || !isdigit((unsigned char)s[p->pos])) {
                fail_at(p, t->line, t->col, "Invalid number, expected digit");
                t->kind = T_INVALID;
                return;
            }
            while (p->pos < n && isdigit((unsigned char)s[p->pos])) p->pos++;
        }
        t->kind = is_float ? T_FLOAT : T_INT;
        t->len = p->pos - st;
        t->value = strndup(s + st, t->len);
        return;
    }
    if (c == '"') {
        pc__sbuf_t v = {0};
        if (p->pos + 2 < n && s[p->pos + 1] == '"' && s[p->pos + 2] == '"') {
            size_t st = p->pos + 3, i = st;
            while (i + 2 < n && !(s[i] == '"' && s[i + 1] == '"' && s[i + 2] == '"')) {
                if (s[i] == '\\' && i + 3 < n && s[i + 1] == '"' && s[i + 2] == '"' && s[i + 3] == '"') i += 3;
                if (s[i] == '\n' || (s[i] == '\r' && !(i + 1 < n && s[i + 1] == '\n'))) {
                    p->line++;
                    p->line_start = i + 1;
                }
                i++;
            }
            if (i + 2 >= n) {
                /* gqlparser hands the parser an Invalid token where the input ends */
                for (; i < n; i++)
                    if (s[i] == '\n' || (s[i] == '\r' && !(i + 1 < n && s[i + 1] == '\n'))) {
                        p->line++;
                        p->line_start = i + 1;
                    }
                p->pos = n;
                t->kind = T_INVALID;
                t->line = p->line;
                t->col = (int)(n - p->line_start) + 1;
                return;
            }
            /* \""" inside a block string stands for """ */
            pc__sbuf_t raw = {0};
            for (size_t j = st; j < i; j++) {
                if (s[j] == '\\' && j + 3 < i + 1 && !strncmp(s + j + 1, "\"\"\"", 3)) {
                    pc__sbuf_adds(&raw, "\"\"\"");
                    j += 3;
                    continue;
                }
                pc__sbuf_addc(&raw, s[j]);
            }
            block_string_value(&v, raw.data ? raw.data : "", raw.len);
            pc__sbuf_free(&raw);
            p->pos = i + 3;
            t->kind = T_BLOCK_STRING;
            t->col += 3; /* positions point past the opening quotes */
        } else {
            size_t i = p->pos + 1;
            while (i < n && s[i] != '"') {
                if (s[i] == '\n' || s[i] == '\r') {
                    fail_at(p, t->line, t->col, "Unterminated string.");
                    pc__sbuf_free(&v);
                    t->kind = T_INVALID;
                    return;
                }
                if (s[i] == '\\' && i + 1 < n) {
                    char e = s[i + 1];
                    i += 2;
                    switch (e) {
                    case 'n': pc__sbuf_addc(&v, '\n'); break;
                    case 't': pc__sbuf_addc(&v, '\t'); break;
                    case 'r': pc__sbuf_addc(&v, '\r'); break;
                    case 'b': pc__sbuf_addc(&v, '\b'); break;
                    case 'f': pc__sbuf_addc(&v, '\f'); break;
                    case 'u': {
                        unsigned cp = 0;
                        for (int k = 0; k < 4 && i < n; k++, i++) {
                            char h = s[i];
                            cp = cp * 16 + (unsigned)(isdigit((unsigned char)h) ? h - '0' : (tolower((unsigned char)h) - 'a' + 10));
                        }
                        pc__sbuf_addrune(&v, cp);
                        break;
                    }
                    default: pc__sbuf_addc(&v, e);
                    }
                    continue;
                }
                pc__sbuf_addc(&v, s[i]);
                i++;
            }
            if (i >= n) {
                fail_at(p, t->line, t->col, "Unterminated string.");
                pc__sbuf_free(&v);
                t->kind = T_INVALID;
                return;
            }
            p->pos = i + 1;
            t->kind = T_STRING;
            t->col += 1;
        }
        t->value = pc__sbuf_take(&v, &t->len);
        if (!t->value) t->value = strdup("");
        return;
    }
    char ch[8];
    snprintf(ch, sizeof(ch), "%c", c);
    fail_at(p, t->line, t->col, "Unexpected character \"%s\"", ch);
    t->kind = T_INVALID;
}

static tok_t *peek(parser_t *p)
{
    return &p->cur;
}

static void next(parser_t *p)
{
    lex(p);
}

static bool is_name(parser_t *p, const char *v)
{
    return p->cur.kind == T_NAME && p->cur.value && !strcmp(p->cur.value, v);
}

static void unexpected_tok(parser_t *p, const tok_t *t)
{
    char d[256];
    tok_desc(t, d, sizeof(d));
    fail_at(p, t->line, t->col, "Unexpected %s", d);
}

static bool expect(parser_t *p, tkind_t k)
{
    if (p->failed) return false;
    if (p->cur.kind == k) {
        next(p);
        return true;
    }
    char d[256];
    tok_desc(&p->cur, d, sizeof(d));
    fail_at(p, p->cur.line, p->cur.col, "Expected %s, found %s", KIND_NAMES[k], d);
    return false;
}

static bool expect_keyword(parser_t *p, const char *kw)
{
    if (p->failed) return false;
    if (is_name(p, kw)) {
        next(p);
        return true;
    }
    char d[256], q[64];
    tok_desc(&p->cur, d, sizeof(d));
    snprintf(q, sizeof(q), "\"%s\"", kw);
    fail_at(p, p->cur.line, p->cur.col, "Expected %s, found %s", q, d);
    return false;
}

static bool skip(parser_t *p, tkind_t k)
{
    if (p->failed || p->cur.kind != k) return false;
    next(p);
    return true;
}

/* ---- JSON output ------------------------------------------------------------ */

static void jstr(pc__sbuf_t *b, const char *s, size_t n)
{
    static const char hx[] = "0123456789abcdef";
    pc__sbuf_addc(b, '"');
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            pc__sbuf_addc(b, '\\');
            pc__sbuf_addc(b, (char)c);
        } else if (c < 0x20) {
            char e[7] = {'\\', 'u', '0', '0', hx[c >> 4], hx[c & 15], 0};
            pc__sbuf_adds(b, e);
        } else {
            pc__sbuf_addc(b, (char)c);
        }
    }
    pc__sbuf_addc(b, '"');
}

/* object writer: members are comma-separated; *first tracks the state */
static void key(pc__sbuf_t *b, bool *first, const char *k)
{
    if (!*first) pc__sbuf_addc(b, ',');
    *first = false;
    jstr(b, k, strlen(k));
    pc__sbuf_addc(b, ':');
}

static void kv_str(pc__sbuf_t *b, bool *first, const char *k, const char *v, size_t n)
{
    key(b, first, k);
    jstr(b, v ? v : "", v ? n : 0);
}

/* Parses a name and writes it as member k (or just consumes it when k is NULL). */
static bool name_member(parser_t *p, pc__sbuf_t *b, bool *first, const char *k)
{
    if (p->cur.kind != T_NAME) return expect(p, T_NAME);
    if (k) kv_str(b, first, k, p->cur.value, p->cur.len);
    next(p);
    return true;
}

/* A list member written only if at least one item follows; returns items written. */
typedef struct {
    pc__sbuf_t *b;
    bool *first;
    const char *k;
    int count;
} list_t;

static void list_item(list_t *l)
{
    if (l->count == 0) {
        key(l->b, l->first, l->k);
        pc__sbuf_addc(l->b, '[');
    } else {
        pc__sbuf_addc(l->b, ',');
    }
    l->count++;
}

static void list_end(list_t *l)
{
    if (l->count) pc__sbuf_addc(l->b, ']');
}

/* ---- shared grammar ------------------------------------------------------------ */

static void parse_value(parser_t *p, pc__sbuf_t *b, bool is_const);

static void parse_type(parser_t *p, pc__sbuf_t *b)
{
    if (++p->depth > MAX_DEPTH) {
        fail_at(p, p->cur.line, p->cur.col, "nesting too deep");
        return;
    }
    bool first = true;
    pc__sbuf_addc(b, '{');
    if (skip(p, T_BRACKET_L)) {
        key(b, &first, "Elem");
        parse_type(p, b);
        expect(p, T_BRACKET_R);
        kv_str(b, &first, "NamedType", "", 0);
    } else {
        name_member(p, b, &first, "NamedType");
    }
    key(b, &first, "NonNull");
    pc__sbuf_adds(b, skip(p, T_BANG) ? "true" : "false");
    pc__sbuf_addc(b, '}');
    p->depth--;
}

static void value_obj(pc__sbuf_t *b, int kind, const char *raw, size_t rl)
{
    char k[32];
    snprintf(k, sizeof(k), "%d", kind);
    pc__sbuf_adds(b, ",\"ExpectedTypeHasDefault\":false,\"Kind\":");
    pc__sbuf_adds(b, k);
    pc__sbuf_adds(b, ",\"Raw\":");
    jstr(b, raw, rl);
    pc__sbuf_addc(b, '}');
}

static void parse_value(parser_t *p, pc__sbuf_t *b, bool is_const)
{
    if (p->failed) return;
    if (++p->depth > MAX_DEPTH) {
        fail_at(p, p->cur.line, p->cur.col, "nesting too deep");
        return;
    }
    tok_t *t = peek(p);
    int kind = -1;
    switch (t->kind) {
    case T_BRACKET_L:
    case T_BRACE_L: {
        bool list = t->kind == T_BRACKET_L;
        next(p);
        pc__sbuf_addc(b, '{');
        bool first = true;
        list_t l = {b, &first, "Children", 0};
        tkind_t end = list ? T_BRACKET_R : T_BRACE_R;
        while (!p->failed && p->cur.kind != end) {
            list_item(&l);
            bool f2 = true;
            pc__sbuf_addc(b, '{');
            if (list) {
                kv_str(b, &f2, "Name", "", 0);
            } else {
                name_member(p, b, &f2, "Name");
                expect(p, T_COLON);
            }
            key(b, &f2, "Value");
            parse_value(p, b, is_const);
            pc__sbuf_addc(b, '}');
            if (p->cur.kind == T_EOF) break;
        }
        list_end(&l);
        if (!p->failed) expect(p, end);
        if (first) { /* no children: start the object with a dummy-free member list */
            pc__sbuf_adds(b, "\"ExpectedTypeHasDefault\":false,\"Kind\":");
            pc__sbuf_adds(b, list ? "8" : "9");
            pc__sbuf_adds(b, ",\"Raw\":\"\"}");
        } else {
            value_obj(b, list ? 8 : 9, "", 0);
        }
        p->depth--;
        return;
    }
    case T_DOLLAR:
        if (is_const) {
            unexpected_tok(p, t);
            p->depth--;
            return;
        }
        next(p);
        if (p->cur.kind != T_NAME) {
            expect(p, T_NAME);
            p->depth--;
            return;
        }
        pc__sbuf_addc(b, '{');
        pc__sbuf_adds(b, "\"ExpectedTypeHasDefault\":false,\"Kind\":0,\"Raw\":");
        jstr(b, p->cur.value, p->cur.len);
        pc__sbuf_addc(b, '}');
        next(p);
        p->depth--;
        return;
    case T_INT: kind = 1; break;
    case T_FLOAT: kind = 2; break;
    case T_STRING: kind = 3; break;
    case T_BLOCK_STRING: kind = 4; break;
    case T_NAME:
        kind = !strcmp(t->value, "true") || !strcmp(t->value, "false") ? 5 : !strcmp(t->value, "null") ? 6 : 7;
        break;
    default:
        unexpected_tok(p, t);
        p->depth--;
        return;
    }
    pc__sbuf_addc(b, '{');
    pc__sbuf_adds(b, "\"ExpectedTypeHasDefault\":false,\"Kind\":");
    char k[8];
    snprintf(k, sizeof(k), "%d", kind);
    pc__sbuf_adds(b, k);
    pc__sbuf_adds(b, ",\"Raw\":");
    jstr(b, t->value ? t->value : "", t->value ? t->len : 0);
    pc__sbuf_addc(b, '}');
    next(p);
    p->depth--;
}

static void parse_arguments(parser_t *p, pc__sbuf_t *b, bool *first, bool is_const)
{
    if (!skip(p, T_PAREN_L)) return;
    list_t l = {b, first, "Arguments", 0};
    while (!p->failed && p->cur.kind != T_PAREN_R) {
        list_item(&l);
        bool f = true;
        pc__sbuf_addc(b, '{');
        name_member(p, b, &f, "Name");
        expect(p, T_COLON);
        key(b, &f, "Value");
        parse_value(p, b, is_const);
        pc__sbuf_addc(b, '}');
        if (p->cur.kind == T_EOF) {
            expect(p, T_PAREN_R);
            break;
        }
    }
    list_end(&l);
    if (!p->failed) next(p);
}

static void parse_directives(parser_t *p, pc__sbuf_t *b, bool *first, bool is_const)
{
    list_t l = {b, first, "Directives", 0};
    while (!p->failed && p->cur.kind == T_AT) {
        next(p);
        list_item(&l);
        bool f = true;
        pc__sbuf_addc(b, '{');
        name_member(p, b, &f, "Name");
        parse_arguments(p, b, &f, is_const);
        kv_str(b, &f, "Location", "", 0);
        pc__sbuf_addc(b, '}');
    }
    list_end(&l);
}

/* ---- queries -------------------------------------------------------------------- */

static void parse_selection_set(parser_t *p, pc__sbuf_t *b, bool *first, bool required);

static void parse_variable_definitions(parser_t *p, pc__sbuf_t *b, bool *first, const char *k)
{
    if (!skip(p, T_PAREN_L)) return;
    list_t l = {b, first, k, 0};
    while (!p->failed && p->cur.kind != T_PAREN_R) {
        list_item(&l);
        bool f = true;
        pc__sbuf_addc(b, '{');
        expect(p, T_DOLLAR);
        name_member(p, b, &f, "Variable");
        expect(p, T_COLON);
        key(b, &f, "Type");
        parse_type(p, b);
        if (skip(p, T_EQUALS)) {
            key(b, &f, "DefaultValue");
            parse_value(p, b, true);
        }
        parse_directives(p, b, &f, false);
        key(b, &f, "Used");
        pc__sbuf_adds(b, "false");
        pc__sbuf_addc(b, '}');
        if (p->cur.kind == T_EOF) {
            expect(p, T_PAREN_R);
            break;
        }
    }
    list_end(&l);
    if (!p->failed) next(p);
}

static void parse_selection(parser_t *p, pc__sbuf_t *b)
{
    bool f = true;
    pc__sbuf_addc(b, '{');
    if (skip(p, T_SPREAD)) {
        if (p->cur.kind == T_NAME && strcmp(p->cur.value, "on") != 0) {
            name_member(p, b, &f, "Name");
            parse_directives(p, b, &f, false);
        } else {
            if (is_name(p, "on")) {
                next(p);
                name_member(p, b, &f, "TypeCondition");
            } else {
                kv_str(b, &f, "TypeCondition", "", 0);
            }
            parse_directives(p, b, &f, false);
            parse_selection_set(p, b, &f, true);
        }
    } else {
        /* alias: name, or name: name */
        if (p->cur.kind != T_NAME) {
            expect(p, T_NAME);
        } else {
            char *first_name = strndup(p->cur.value, p->cur.len);
            size_t fl = p->cur.len;
            next(p);
            kv_str(b, &f, "Alias", first_name, fl);
            if (skip(p, T_COLON))
                name_member(p, b, &f, "Name");
            else
                kv_str(b, &f, "Name", first_name, fl);
            free(first_name);
            parse_arguments(p, b, &f, false);
            parse_directives(p, b, &f, false);
            if (p->cur.kind == T_BRACE_L) parse_selection_set(p, b, &f, false);
        }
    }
    pc__sbuf_addc(b, '}');
}

static void parse_selection_set(parser_t *p, pc__sbuf_t *b, bool *first, bool required)
{
    if (p->failed) return;
    if (++p->depth > MAX_DEPTH) {
        fail_at(p, p->cur.line, p->cur.col, "nesting too deep");
        return;
    }
    if (p->cur.kind != T_BRACE_L) {
        if (required) expect(p, T_BRACE_L);
        p->depth--;
        return;
    }
    next(p);
    list_t l = {b, first, "SelectionSet", 0};
    while (!p->failed && p->cur.kind != T_BRACE_R) {
        list_item(&l);
        parse_selection(p, b);
    }
    if (!p->failed && l.count == 0)
        fail_at(p, p->cur.line, p->cur.col, "expected at least one definition, found %s", KIND_NAMES[p->cur.kind]);
    list_end(&l);
    if (!p->failed) next(p);
    p->depth--;
}

static void parse_operation(parser_t *p, pc__sbuf_t *b)
{
    bool f = true;
    pc__sbuf_addc(b, '{');
    if (p->cur.kind == T_BRACE_L) {
        kv_str(b, &f, "Operation", "query", 5);
        kv_str(b, &f, "Name", "", 0);
        parse_selection_set(p, b, &f, true);
        pc__sbuf_addc(b, '}');
        return;
    }
    if (is_name(p, "query") || is_name(p, "mutation") || is_name(p, "subscription")) {
        kv_str(b, &f, "Operation", p->cur.value, p->cur.len);
        next(p);
    } else {
        unexpected_tok(p, &p->cur);
    }
    if (p->cur.kind == T_NAME) {
        name_member(p, b, &f, "Name");
    } else {
        kv_str(b, &f, "Name", "", 0);
    }
    parse_variable_definitions(p, b, &f, "VariableDefinitions");
    parse_directives(p, b, &f, false);
    parse_selection_set(p, b, &f, true);
    pc__sbuf_addc(b, '}');
}

static void parse_fragment(parser_t *p, pc__sbuf_t *b)
{
    bool f = true;
    pc__sbuf_addc(b, '{');
    expect_keyword(p, "fragment");
    if (is_name(p, "on"))
        unexpected_tok(p, &p->cur);
    else
        name_member(p, b, &f, "Name");
    parse_variable_definitions(p, b, &f, "VariableDefinition");
    expect_keyword(p, "on");
    name_member(p, b, &f, "TypeCondition");
    parse_directives(p, b, &f, false);
    parse_selection_set(p, b, &f, true);
    pc__sbuf_addc(b, '}');
}

static void init(parser_t *p, const char *s, size_t n, char *err, size_t errlen)
{
    memset(p, 0, sizeof(*p));
    p->s = s;
    p->n = n;
    p->line = 1;
    p->err = err;
    p->errlen = errlen;
    lex(p);
}

static char *finish(parser_t *p, pc__sbuf_t *ops, pc__sbuf_t *frags, const char *k1, const char *k2,
                    pc__sbuf_t *more, size_t nmore, const char *const *more_keys)
{
    tok_free(&p->cur);
    tok_free(&p->prev);
    char *res = NULL;
    if (!p->failed) {
        pc__sbuf_t out = {0};
        bool first = true;
        pc__sbuf_addc(&out, '{');
        pc__sbuf_t *parts[8] = {ops, frags};
        const char *keys[8] = {k1, k2};
        size_t np = 2;
        for (size_t i = 0; i < nmore && np < 8; i++) {
            parts[np] = &more[i];
            keys[np++] = more_keys[i];
        }
        for (size_t i = 0; i < np; i++) {
            if (!parts[i] || parts[i]->len == 0) continue;
            key(&out, &first, keys[i]);
            pc__sbuf_addc(&out, '[');
            pc__sbuf_add(&out, parts[i]->data, parts[i]->len);
            pc__sbuf_addc(&out, ']');
        }
        pc__sbuf_addc(&out, '}');
        res = pc__sbuf_take(&out, NULL);
    }
    pc__sbuf_free(ops);
    pc__sbuf_free(frags);
    for (size_t i = 0; i < nmore; i++) pc__sbuf_free(&more[i]);
    return res;
}

char *pc_plib_graphql_parse_query(const char *s, size_t n, char *err, size_t errlen)
{
    parser_t p;
    init(&p, s, n, err, errlen);
    pc__sbuf_t ops = {0}, frags = {0};
    while (!p.failed && p.cur.kind != T_EOF) {
        if (p.cur.kind == T_BRACE_L || is_name(&p, "query") || is_name(&p, "mutation") || is_name(&p, "subscription")) {
            if (ops.len) pc__sbuf_addc(&ops, ',');
            parse_operation(&p, &ops);
        } else if (is_name(&p, "fragment")) {
            if (frags.len) pc__sbuf_addc(&frags, ',');
            parse_fragment(&p, &frags);
        } else {
            unexpected_tok(&p, &p.cur);
        }
    }
    return finish(&p, &ops, &frags, "Operations", "Fragments", NULL, 0, NULL);
}

/* ---- schemas ---------------------------------------------------------------------- */

static bool description(parser_t *p, pc__sbuf_t *b, bool *first)
{
    if (p->cur.kind == T_STRING || p->cur.kind == T_BLOCK_STRING) {
        kv_str(b, first, "Description", p->cur.value, p->cur.len);
        next(p);
        return true;
    }
    kv_str(b, first, "Description", "", 0);
    return false;
}

static void input_value_def(parser_t *p, pc__sbuf_t *b)
{
    bool f = true;
    pc__sbuf_addc(b, '{');
    description(p, b, &f);
    name_member(p, b, &f, "Name");
    expect(p, T_COLON);
    key(b, &f, "Type");
    parse_type(p, b);
    if (skip(p, T_EQUALS)) {
        key(b, &f, "DefaultValue");
        parse_value(p, b, true);
    }
    parse_directives(p, b, &f, true);
    pc__sbuf_addc(b, '}');
}

static void argument_defs(parser_t *p, pc__sbuf_t *b, bool *first)
{
    if (!skip(p, T_PAREN_L)) return;
    list_t l = {b, first, "Arguments", 0};
    while (!p->failed && p->cur.kind != T_PAREN_R) {
        if (p->cur.kind == T_EOF) {
            expect(p, T_NAME);
            break;
        }
        list_item(&l);
        input_value_def(p, b);
    }
    list_end(&l);
    if (!p->failed) next(p);
}

/* some(): at least one item between braces; returns the number written */
static int fields_def(parser_t *p, pc__sbuf_t *b, bool *first, const char *k, int mode)
{
    if (p->cur.kind != T_BRACE_L) return 0;
    next(p);
    list_t l = {b, first, k, 0};
    while (!p->failed && p->cur.kind != T_BRACE_R) {
        if (p->cur.kind == T_EOF) {
            expect(p, T_NAME);
            break;
        }
        list_item(&l);
        if (mode == 1) { /* input fields */
            input_value_def(p, b);
        } else if (mode == 2) { /* enum values */
            bool f = true;
            pc__sbuf_addc(b, '{');
            description(p, b, &f);
            name_member(p, b, &f, "Name");
            parse_directives(p, b, &f, true);
            pc__sbuf_addc(b, '}');
        } else {
            bool f = true;
            pc__sbuf_addc(b, '{');
            description(p, b, &f);
            name_member(p, b, &f, "Name");
            argument_defs(p, b, &f);
            expect(p, T_COLON);
            key(b, &f, "Type");
            parse_type(p, b);
            parse_directives(p, b, &f, true);
            pc__sbuf_addc(b, '}');
        }
    }
    if (!p->failed && l.count == 0)
        fail_at(p, p->cur.line, p->cur.col, "expected at least one definition, found %s", KIND_NAMES[p->cur.kind]);
    list_end(&l);
    if (!p->failed) next(p);
    return l.count;
}

static int name_list(parser_t *p, pc__sbuf_t *b, bool *first, const char *k, tkind_t sep)
{
    list_t l = {b, first, k, 0};
    skip(p, sep);
    do {
        if (p->cur.kind != T_NAME) {
            expect(p, T_NAME);
            break;
        }
        list_item(&l);
        jstr(b, p->cur.value, p->cur.len);
        next(p);
    } while (skip(p, sep));
    list_end(&l);
    return l.count;
}

static int implements(parser_t *p, pc__sbuf_t *b, bool *first)
{
    if (!is_name(p, "implements")) return 0;
    next(p);
    return name_list(p, b, first, "Interfaces", T_AMP);
}

static int directives_count(parser_t *p, pc__sbuf_t *b, bool *first)
{
    size_t before = b->len;
    parse_directives(p, b, first, true);
    return b->len != before;
}

/* type definitions and extensions; returns false when an extension added nothing */
static bool type_def(parser_t *p, pc__sbuf_t *b, bool extension)
{
    bool f = true;
    pc__sbuf_addc(b, '{');
    if (!extension) {
        /* the description was already written by the caller's buffer */
    }
    const char *kw = p->cur.value;
    const char *kind = !strcmp(kw, "scalar") ? "SCALAR" : !strcmp(kw, "type") ? "OBJECT" : !strcmp(kw, "interface") ? "INTERFACE"
                     : !strcmp(kw, "union") ? "UNION" : !strcmp(kw, "enum") ? "ENUM" : "INPUT_OBJECT";
    char kwc[16];
    snprintf(kwc, sizeof(kwc), "%s", kw);
    next(p);
    kv_str(b, &f, "Kind", kind, strlen(kind));
    name_member(p, b, &f, "Name");
    int items = 0;
    if (!strcmp(kwc, "type") || !strcmp(kwc, "interface")) {
        items += implements(p, b, &f);
        items += directives_count(p, b, &f);
        items += fields_def(p, b, &f, "Fields", 0);
    } else if (!strcmp(kwc, "union")) {
        items += directives_count(p, b, &f);
        if (skip(p, T_EQUALS)) items += name_list(p, b, &f, "Types", T_PIPE);
    } else if (!strcmp(kwc, "enum")) {
        items += directives_count(p, b, &f);
        items += fields_def(p, b, &f, "EnumValues", 2);
    } else if (!strcmp(kwc, "input")) {
        items += directives_count(p, b, &f);
        items += fields_def(p, b, &f, "Fields", 1);
    } else {
        items += directives_count(p, b, &f);
    }
    key(b, &f, "BuiltIn");
    pc__sbuf_adds(b, "false");
    return !extension || items > 0;
}

char *pc_plib_graphql_parse_schema(const char *s, size_t n, char *err, size_t errlen)
{
    parser_t p;
    init(&p, s, n, err, errlen);
    /* Definitions, Extensions, Schema, SchemaExtension, Directives */
    pc__sbuf_t defs = {0}, exts = {0}, more[3] = {{0}};
    static const char *const more_keys[3] = {"Schema", "SchemaExtension", "Directives"};
    while (!p.failed && p.cur.kind != T_EOF) {
        pc__sbuf_t d = {0};
        bool f = true;
        pc__sbuf_t desc = {0};
        bool has_desc = description(&p, &desc, &f);
        if (p.cur.kind != T_NAME) {
            unexpected_tok(&p, &p.cur);
            pc__sbuf_free(&desc);
            break;
        }
        const char *kw = p.cur.value;
        if (!strcmp(kw, "scalar") || !strcmp(kw, "type") || !strcmp(kw, "interface") || !strcmp(kw, "union") ||
            !strcmp(kw, "enum") || !strcmp(kw, "input")) {
            type_def(&p, &d, false);
            pc__sbuf_addc(&d, ',');
            pc__sbuf_add(&d, desc.data, desc.len);
            pc__sbuf_addc(&d, '}');
            if (defs.len) pc__sbuf_addc(&defs, ',');
            pc__sbuf_add(&defs, d.data, d.len);
        } else if (!strcmp(kw, "schema")) {
            next(&p);
            bool g = true;
            pc__sbuf_addc(&d, '{');
            pc__sbuf_add(&d, desc.data, desc.len);
            g = false;
            parse_directives(&p, &d, &g, true);
            if (p.cur.kind == T_BRACE_L) {
                next(&p);
                list_t l = {&d, &g, "OperationTypes", 0};
                while (!p.failed && p.cur.kind != T_BRACE_R) {
                    if (p.cur.kind == T_EOF) {
                        expect(&p, T_NAME);
                        break;
                    }
                    list_item(&l);
                    bool h = true;
                    pc__sbuf_addc(&d, '{');
                    if (is_name(&p, "query") || is_name(&p, "mutation") || is_name(&p, "subscription")) {
                        kv_str(&d, &h, "Operation", p.cur.value, p.cur.len);
                        next(&p);
                    } else {
                        unexpected_tok(&p, &p.cur);
                    }
                    expect(&p, T_COLON);
                    name_member(&p, &d, &h, "Type");
                    pc__sbuf_addc(&d, '}');
                }
                if (!p.failed && l.count == 0)
                    fail_at(&p, p.cur.line, p.cur.col, "expected at least one definition, found %s", KIND_NAMES[p.cur.kind]);
                list_end(&l);
                if (!p.failed) next(&p);
            }
            pc__sbuf_addc(&d, '}');
            if (more[0].len) pc__sbuf_addc(&more[0], ',');
            pc__sbuf_add(&more[0], d.data, d.len);
        } else if (!strcmp(kw, "directive")) {
            next(&p);
            expect(&p, T_AT);
            bool g = false;
            pc__sbuf_addc(&d, '{');
            pc__sbuf_add(&d, desc.data, desc.len);
            name_member(&p, &d, &g, "Name");
            argument_defs(&p, &d, &g);
            bool rep = false;
            if (is_name(&p, "repeatable")) {
                rep = true;
                next(&p);
            }
            key(&d, &g, "IsRepeatable");
            pc__sbuf_adds(&d, rep ? "true" : "false");
            expect_keyword(&p, "on");
            static const char *locs[] = {"QUERY", "MUTATION", "SUBSCRIPTION", "FIELD", "FRAGMENT_DEFINITION",
                                         "FRAGMENT_SPREAD", "INLINE_FRAGMENT", "VARIABLE_DEFINITION", "SCHEMA",
                                         "SCALAR", "OBJECT", "FIELD_DEFINITION", "ARGUMENT_DEFINITION", "INTERFACE",
                                         "UNION", "ENUM", "ENUM_VALUE", "INPUT_OBJECT", "INPUT_FIELD_DEFINITION", NULL};
            list_t l = {&d, &g, "Locations", 0};
            skip(&p, T_PIPE);
            do {
                if (p.cur.kind != T_NAME) {
                    expect(&p, T_NAME);
                    break;
                }
                bool ok = false;
                for (int i = 0; locs[i]; i++) ok |= !strcmp(locs[i], p.cur.value);
                if (!ok) {
                    unexpected_tok(&p, &p.cur);
                    break;
                }
                list_item(&l);
                jstr(&d, p.cur.value, p.cur.len);
                next(&p);
            } while (skip(&p, T_PIPE));
            list_end(&l);
            pc__sbuf_addc(&d, '}');
            if (more[2].len) pc__sbuf_addc(&more[2], ',');
            pc__sbuf_add(&more[2], d.data, d.len);
        } else if (!strcmp(kw, "extend")) {
            if (has_desc) {
                unexpected_tok(&p, &p.prev);
                pc__sbuf_free(&desc);
                break;
            }
            next(&p);
            if (is_name(&p, "schema")) {
                next(&p);
                bool g = true;
                pc__sbuf_addc(&d, '{');
                kv_str(&d, &g, "Description", "", 0);
                int items = directives_count(&p, &d, &g);
                if (p.cur.kind == T_BRACE_L) {
                    next(&p);
                    list_t l = {&d, &g, "OperationTypes", 0};
                    while (!p.failed && p.cur.kind != T_BRACE_R) {
                        if (p.cur.kind == T_EOF) {
                            expect(&p, T_NAME);
                            break;
                        }
                        list_item(&l);
                        bool h = true;
                        pc__sbuf_addc(&d, '{');
                        if (is_name(&p, "query") || is_name(&p, "mutation") || is_name(&p, "subscription")) {
                            kv_str(&d, &h, "Operation", p.cur.value, p.cur.len);
                            next(&p);
                        } else {
                            unexpected_tok(&p, &p.cur);
                        }
                        expect(&p, T_COLON);
                        name_member(&p, &d, &h, "Type");
                        pc__sbuf_addc(&d, '}');
                    }
                    items += l.count;
                    list_end(&l);
                    if (!p.failed) next(&p);
                }
                if (!items) unexpected_tok(&p, &p.cur);
                pc__sbuf_addc(&d, '}');
                if (more[1].len) pc__sbuf_addc(&more[1], ',');
                pc__sbuf_add(&more[1], d.data, d.len);
            } else if (is_name(&p, "scalar") || is_name(&p, "type") || is_name(&p, "interface") ||
                       is_name(&p, "union") || is_name(&p, "enum") || is_name(&p, "input")) {
                if (!type_def(&p, &d, true)) unexpected_tok(&p, &p.cur);
                pc__sbuf_adds(&d, ",\"Description\":\"\"}");
                if (exts.len) pc__sbuf_addc(&exts, ',');
                pc__sbuf_add(&exts, d.data, d.len);
            } else {
                unexpected_tok(&p, &p.cur);
            }
        } else {
            unexpected_tok(&p, &p.cur);
        }
        pc__sbuf_free(&d);
        pc__sbuf_free(&desc);
    }
    return finish(&p, &defs, &exts, "Definitions", "Extensions", more, 3, more_keys);
}
