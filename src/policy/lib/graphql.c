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
    bool positions; /* record field positions (for validation messages) */
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

static void kv_str(pc__sbuf_t *b, bool *first, const char *k, const char *v, size_t n)
{
    pc__sbuf_json_key(b, first, k);
    pc__sbuf_json_str(b, v ? v : "", v ? n : 0);
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
        pc__sbuf_json_key(l->b, l->first, l->k);
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
        pc__sbuf_json_key(b, &first, "Elem");
        parse_type(p, b);
        expect(p, T_BRACKET_R);
        kv_str(b, &first, "NamedType", "", 0);
    } else {
        name_member(p, b, &first, "NamedType");
    }
    pc__sbuf_json_key(b, &first, "NonNull");
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
    pc__sbuf_json_str(b, raw, rl);
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
            pc__sbuf_json_key(b, &f2, "Value");
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
        pc__sbuf_json_str(b, p->cur.value, p->cur.len);
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
    pc__sbuf_json_str(b, t->value ? t->value : "", t->value ? t->len : 0);
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
        pc__sbuf_json_key(b, &f, "Value");
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
char *pc__graphql_parse_query_ex(const char *s, size_t n, bool positions, char *err, size_t errlen);

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
        pc__sbuf_json_key(b, &f, "Type");
        parse_type(p, b);
        if (skip(p, T_EQUALS)) {
            pc__sbuf_json_key(b, &f, "DefaultValue");
            parse_value(p, b, true);
        }
        parse_directives(p, b, &f, false);
        pc__sbuf_json_key(b, &f, "Used");
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
            if (p->positions) {
                char pos[64];
                snprintf(pos, sizeof(pos), "{\"Line\":%d,\"Column\":%d}", p->cur.line, p->cur.col);
                pc__sbuf_json_key(b, &f, "Position");
                pc__sbuf_adds(b, pos);
            }
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
            pc__sbuf_json_key(&out, &first, keys[i]);
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
    return pc__graphql_parse_query_ex(s, n, false, err, errlen);
}

char *pc__graphql_parse_query_ex(const char *s, size_t n, bool positions, char *err, size_t errlen)
{
    parser_t p;
    init(&p, s, n, err, errlen);
    p.positions = positions;
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
    pc__sbuf_json_key(b, &f, "Type");
    parse_type(p, b);
    if (skip(p, T_EQUALS)) {
        pc__sbuf_json_key(b, &f, "DefaultValue");
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
            pc__sbuf_json_key(b, &f, "Type");
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
        pc__sbuf_json_str(b, p->cur.value, p->cur.len);
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
    pc__sbuf_json_key(b, &f, "BuiltIn");
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
            pc__sbuf_json_key(&d, &g, "IsRepeatable");
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
                pc__sbuf_json_str(&d, p.cur.value, p.cur.len);
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

/* ---- schema validation --------------------------------------------------------- */

#include <jansson.h>

typedef struct {
    const char *name;
    const char *kind; /* OBJECT, INTERFACE, UNION, ENUM, INPUT_OBJECT, SCALAR */
    json_t *fields;   /* merged array (borrowed) */
    json_t *interfaces, *types, *values, *directives;
} gtype_t;

typedef struct {
    gtype_t *t;
    size_t n, cap;
    json_t *keep; /* arrays built while merging */
    json_t *dirdefs;
    char *err;
    size_t errlen;
} gschema_t;

static bool gs_fail(gschema_t *g, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static bool gs_fail(gschema_t *g, const char *fmt, ...)
{
    if (g->err && g->errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(g->err, g->errlen, fmt, ap);
        va_end(ap);
    }
    return false;
}

static gtype_t *gs_find(gschema_t *g, const char *name)
{
    for (size_t i = 0; i < g->n; i++)
        if (!strcmp(g->t[i].name, name)) return &g->t[i];
    return NULL;
}

static gtype_t *gs_add(gschema_t *g, const char *name, const char *kind)
{
    if (g->n == g->cap) {
        size_t cap = g->cap ? g->cap * 2 : 32;
        gtype_t *p = realloc(g->t, cap * sizeof(gtype_t));
        if (!p) return NULL;
        g->t = p;
        g->cap = cap;
    }
    gtype_t *t = &g->t[g->n++];
    memset(t, 0, sizeof(*t));
    t->name = name;
    t->kind = kind;
    return t;
}

/* append the items of src to *dst (a fresh array kept alive by g->keep) */
static void gs_append(gschema_t *g, json_t **dst, json_t *src)
{
    if (!json_is_array(src)) return;
    if (!*dst) {
        *dst = json_array();
        json_array_append_new(g->keep, *dst);
    }
    json_array_extend(*dst, src);
}

static const char *jstr_of(json_t *o, const char *k)
{
    json_t *v = json_object_get(o, k);
    return json_is_string(v) ? json_string_value(v) : "";
}

/* the named type at the bottom of a Type {NamedType, Elem} */
static const char *base_type(json_t *type)
{
    for (int i = 0; i < 64 && type; i++) {
        const char *nt = jstr_of(type, "NamedType");
        if (*nt) return nt;
        type = json_object_get(type, "Elem");
    }
    return "";
}

static bool is_input_kind(const char *k)
{
    return !strcmp(k, "SCALAR") || !strcmp(k, "ENUM") || !strcmp(k, "INPUT_OBJECT");
}

static bool check_directives(gschema_t *g, json_t *dirs, const char *location)
{
    size_t i;
    json_t *d;
    json_array_foreach(dirs, i, d) {
        const char *name = jstr_of(d, "Name");
        json_t *def = NULL, *dd;
        size_t j;
        json_array_foreach(g->dirdefs, j, dd) if (!strcmp(jstr_of(dd, "Name"), name)) def = dd;
        if (!def) return gs_fail(g, "Undefined directive %s.", name);
        bool ok = false;
        json_t *loc;
        size_t k;
        json_array_foreach(json_object_get(def, "Locations"), k, loc) ok |= !strcmp(json_string_value(loc), location);
        if (!ok) return gs_fail(g, "Directive %s is not applicable here.", name);
    }
    return true;
}

static bool check_args(gschema_t *g, json_t *args)
{
    size_t i;
    json_t *a;
    json_array_foreach(args, i, a) {
        const char *tn = base_type(json_object_get(a, "Type"));
        gtype_t *t = gs_find(g, tn);
        if (!t) return gs_fail(g, "Undefined type %s.", tn);
        if (!is_input_kind(t->kind)) return gs_fail(g, "cannot use %s as argument type: it is not an input type.", tn);
        if (!check_directives(g, json_object_get(a, "Directives"), "ARGUMENT_DEFINITION")) return false;
    }
    return true;
}

static bool implements_iface(gschema_t *g, gtype_t *t, const char *iface, int depth)
{
    if (depth > 32) return false;
    size_t i;
    json_t *x;
    json_array_foreach(t->interfaces, i, x) if (!strcmp(json_string_value(x), iface)) return true;
    (void)g;
    return false;
}

static bool check_type(gschema_t *g, gtype_t *t)
{
    const char *k = t->kind;
    const char *loc = !strcmp(k, "OBJECT") ? "OBJECT" : !strcmp(k, "INTERFACE") ? "INTERFACE" : !strcmp(k, "UNION") ? "UNION"
                    : !strcmp(k, "ENUM") ? "ENUM" : !strcmp(k, "INPUT_OBJECT") ? "INPUT_OBJECT" : "SCALAR";
    if (!check_directives(g, t->directives, loc)) return false;
    if (!strcmp(k, "OBJECT") || !strcmp(k, "INTERFACE") || !strcmp(k, "INPUT_OBJECT")) {
        if (json_array_size(t->fields) == 0) return gs_fail(g, "must define one or more fields: %s", t->name);
        size_t i;
        json_t *f;
        json_array_foreach(t->fields, i, f) {
            const char *fname = jstr_of(f, "Name");
            size_t j;
            json_t *f2;
            json_array_foreach(t->fields, j, f2) if (j > i && !strcmp(jstr_of(f2, "Name"), fname))
                return gs_fail(g, "Field %s can only be defined once.", fname);
            const char *tn = base_type(json_object_get(f, "Type"));
            gtype_t *ft = gs_find(g, tn);
            if (!ft) return gs_fail(g, "Undefined type %s.", tn);
            bool input = !strcmp(k, "INPUT_OBJECT");
            if (input && !is_input_kind(ft->kind))
                return gs_fail(g, "cannot use %s as input field type: it is not an input type.", tn);
            if (!input && !strcmp(ft->kind, "INPUT_OBJECT"))
                return gs_fail(g, "cannot use %s as field type: it is an input type.", tn);
            if (!input && !check_args(g, json_object_get(f, "Arguments"))) return false;
            if (!check_directives(g, json_object_get(f, "Directives"), input ? "INPUT_FIELD_DEFINITION" : "FIELD_DEFINITION"))
                return false;
        }
    }
    if (!strcmp(k, "OBJECT") || !strcmp(k, "INTERFACE")) {
        size_t i;
        json_t *x;
        json_array_foreach(t->interfaces, i, x) {
            const char *in = json_string_value(x);
            gtype_t *it = gs_find(g, in);
            if (!it) return gs_fail(g, "Undefined type %s.", in);
            if (strcmp(it->kind, "INTERFACE") != 0) return gs_fail(g, "%s is a non interface type and cannot be implemented.", in);
            /* every field of the interface, and every interface it implements */
            size_t j;
            json_t *f;
            json_array_foreach(it->fields, j, f) {
                bool found = false;
                size_t m;
                json_t *own;
                json_array_foreach(t->fields, m, own) found |= !strcmp(jstr_of(own, "Name"), jstr_of(f, "Name"));
                if (!found) return gs_fail(g, "For %s to implement an interface it must define its fields.", t->name);
            }
            json_t *y;
            json_array_foreach(it->interfaces, j, y)
                if (!implements_iface(g, t, json_string_value(y), 0))
                    return gs_fail(g, "%s must also implement the interfaces of its interfaces.", t->name);
        }
    }
    if (!strcmp(k, "UNION")) {
        if (json_array_size(t->types) == 0) return gs_fail(g, "UNION %s must define one or more member types.", t->name);
        size_t i;
        json_t *x;
        json_array_foreach(t->types, i, x) {
            gtype_t *mt = gs_find(g, json_string_value(x));
            if (!mt) return gs_fail(g, "Undefined type %s.", json_string_value(x));
            if (strcmp(mt->kind, "OBJECT") != 0) return gs_fail(g, "UNION type %s must be an OBJECT.", json_string_value(x));
        }
    }
    if (!strcmp(k, "ENUM") && json_array_size(t->values) == 0)
        return gs_fail(g, "ENUM %s must define one or more unique enum values.", t->name);
    if (!strcmp(k, "ENUM")) {
        size_t i;
        json_t *v;
        json_array_foreach(t->values, i, v) if (!check_directives(g, json_object_get(v, "Directives"), "ENUM_VALUE")) return false;
    }
    return true;
}

static const char PRELUDE[] =
    "scalar Int scalar Float scalar String scalar Boolean scalar ID\n"
    "directive @include(if: Boolean!) on FIELD | FRAGMENT_SPREAD | INLINE_FRAGMENT\n"
    "directive @skip(if: Boolean!) on FIELD | FRAGMENT_SPREAD | INLINE_FRAGMENT\n"
    "directive @deprecated(reason: String = \"No longer supported\") on FIELD_DEFINITION | "
    "ARGUMENT_DEFINITION | INPUT_FIELD_DEFINITION | ENUM_VALUE\n"
    "directive @specifiedBy(url: String!) on SCALAR\n"
    "directive @defer(if: Boolean = true, label: String) on FRAGMENT_SPREAD | INLINE_FRAGMENT\n"
    "directive @oneOf on INPUT_OBJECT\n";

bool pc_plib_graphql_schema_valid(const char *s, size_t n, char *err, size_t errlen)
{
    char *user = pc_plib_graphql_parse_schema(s, n, err, errlen);
    if (!user) return false;
    bool ok = pc_plib_graphql_schema_ast_valid(user, strlen(user), err, errlen);
    free(user);
    return ok;
}

static void gs_free(gschema_t *g)
{
    free(g->t);
    json_decref(g->keep);
    json_decref(g->dirdefs);
    memset(g, 0, sizeof(*g));
}

/* Builds and checks the schema model; on success g stays filled (free with gs_free). */
static bool gs_build(gschema_t *gp, json_t *u, char *err, size_t errlen)
{
    char *pre = pc_plib_graphql_parse_schema(PRELUDE, sizeof(PRELUDE) - 1, NULL, 0);
    json_t *p = pre ? json_loads(pre, 0, NULL) : NULL;
    free(pre);
    gschema_t g = {.keep = json_array(), .dirdefs = json_array(), .err = err, .errlen = errlen};
    bool ok = false;
    if (!u || !json_is_object(u) || !p || !g.keep || !g.dirdefs) goto out;
    json_array_append(g.keep, u);
    json_array_append(g.keep, p);
    json_t *docs[2] = {p, u};
    for (int d = 0; d < 2; d++) {
        size_t i;
        json_t *def;
        json_array_foreach(json_object_get(docs[d], "Directives"), i, def) {
            size_t j;
            json_t *dd;
            json_array_foreach(g.dirdefs, j, dd) if (!strcmp(jstr_of(dd, "Name"), jstr_of(def, "Name"))) {
                gs_fail(&g, "Cannot redeclare directive %s.", jstr_of(def, "Name"));
                goto out;
            }
            json_array_append(g.dirdefs, def);
            if (!check_args(&g, NULL)) goto out;
        }
        json_array_foreach(json_object_get(docs[d], "Definitions"), i, def) {
            const char *name = jstr_of(def, "Name");
            if (gs_find(&g, name)) {
                gs_fail(&g, "Cannot redeclare type %s.", name);
                goto out;
            }
            gtype_t *t = gs_add(&g, name, jstr_of(def, "Kind"));
            if (!t) goto out;
            gs_append(&g, &t->fields, json_object_get(def, "Fields"));
            gs_append(&g, &t->interfaces, json_object_get(def, "Interfaces"));
            gs_append(&g, &t->types, json_object_get(def, "Types"));
            gs_append(&g, &t->values, json_object_get(def, "EnumValues"));
            gs_append(&g, &t->directives, json_object_get(def, "Directives"));
        }
    }
    /* extensions: merge into the type, creating it when absent */
    size_t i;
    json_t *ext;
    json_array_foreach(json_object_get(u, "Extensions"), i, ext) {
        gtype_t *t = gs_find(&g, jstr_of(ext, "Name"));
        if (!t) t = gs_add(&g, jstr_of(ext, "Name"), jstr_of(ext, "Kind"));
        if (!t) goto out;
        if (strcmp(t->kind, jstr_of(ext, "Kind")) != 0) {
            gs_fail(&g, "Cannot extend type %s because the base type is a different kind.", t->name);
            goto out;
        }
        gs_append(&g, &t->fields, json_object_get(ext, "Fields"));
        gs_append(&g, &t->interfaces, json_object_get(ext, "Interfaces"));
        gs_append(&g, &t->types, json_object_get(ext, "Types"));
        gs_append(&g, &t->values, json_object_get(ext, "EnumValues"));
        gs_append(&g, &t->directives, json_object_get(ext, "Directives"));
    }
    /* directive definitions' arguments */
    json_t *dd;
    json_array_foreach(g.dirdefs, i, dd) if (!check_args(&g, json_object_get(dd, "Arguments"))) goto out;
    for (size_t k = 0; k < g.n; k++)
        if (!check_type(&g, &g.t[k])) goto out;
    /* schema definitions and extensions: operation types must be objects */
    const char *sk[2] = {"Schema", "SchemaExtension"};
    for (int d = 0; d < 2; d++) {
        json_t *sd;
        json_array_foreach(json_object_get(u, sk[d]), i, sd) {
            if (!check_directives(&g, json_object_get(sd, "Directives"), "SCHEMA")) goto out;
            size_t j;
            json_t *op;
            json_array_foreach(json_object_get(sd, "OperationTypes"), j, op) {
                gtype_t *t = gs_find(&g, jstr_of(op, "Type"));
                if (!t || strcmp(t->kind, "OBJECT") != 0) {
                    gs_fail(&g, "%s root type must be an OBJECT that is defined.", jstr_of(op, "Operation"));
                    goto out;
                }
            }
        }
    }
    ok = true;
out:
    json_decref(p);
    if (ok)
        *gp = g;
    else
        gs_free(&g);
    return ok;
}

bool pc_plib_graphql_schema_ast_valid(const char *ast, size_t n, char *err, size_t errlen)
{
    json_t *u = json_loadb(ast, n, 0, NULL);
    gschema_t g;
    bool ok = gs_build(&g, u, err, errlen);
    if (ok) gs_free(&g);
    json_decref(u);
    return ok;
}

/* ---- query validation ----------------------------------------------------------- */

typedef struct {
    gschema_t *g;
    json_t *query; /* the query document */
    char *err;
    size_t errlen;
    int depth;
} qv_t;

static bool qv_fail(qv_t *q, json_t *at, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static bool qv_fail(qv_t *q, json_t *at, const char *fmt, ...)
{
    if (q->err && q->errlen) {
        char msg[512];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        json_t *pos = json_object_get(at, "Position");
        int line = (int)json_integer_value(json_object_get(pos, "Line"));
        int col = (int)json_integer_value(json_object_get(pos, "Column"));
        if (pos)
            snprintf(q->err, q->errlen, "%s in GraphQL string at location %d:%d", msg, line, col);
        else
            snprintf(q->err, q->errlen, "%s", msg);
    }
    return false;
}

static void type_text(pc__sbuf_t *b, json_t *t, int depth)
{
    if (!t || depth > 64) return;
    const char *nt = jstr_of(t, "NamedType");
    if (*nt) {
        pc__sbuf_adds(b, nt);
    } else {
        pc__sbuf_addc(b, '[');
        type_text(b, json_object_get(t, "Elem"), depth + 1);
        pc__sbuf_addc(b, ']');
    }
    if (json_is_true(json_object_get(t, "NonNull"))) pc__sbuf_addc(b, '!');
}

static json_t *find_field(gtype_t *t, const char *name)
{
    size_t i;
    json_t *f;
    json_array_foreach(t->fields, i, f) if (!strcmp(jstr_of(f, "Name"), name)) return f;
    return NULL;
}

static json_t *find_fragment(qv_t *q, const char *name)
{
    size_t i;
    json_t *f;
    json_array_foreach(json_object_get(q->query, "Fragments"), i, f) if (!strcmp(jstr_of(f, "Name"), name)) return f;
    return NULL;
}

static bool qv_directives(qv_t *q, json_t *dirs)
{
    size_t i;
    json_t *d;
    json_array_foreach(dirs, i, d) {
        const char *name = jstr_of(d, "Name");
        bool known = false;
        size_t j;
        json_t *dd;
        json_array_foreach(q->g->dirdefs, j, dd) known |= !strcmp(jstr_of(dd, "Name"), name);
        if (!known) return qv_fail(q, d, "Unknown directive \"@%s\"", name);
    }
    return true;
}

static bool qv_selection_set(qv_t *q, json_t *set, gtype_t *type);

static bool qv_field(qv_t *q, json_t *sel, gtype_t *type)
{
    const char *name = jstr_of(sel, "Name");
    if (!qv_directives(q, json_object_get(sel, "Directives"))) return false;
    if (!strcmp(name, "__typename")) return true;
    json_t *def = NULL;
    if (!strcmp(type->kind, "OBJECT") || !strcmp(type->kind, "INTERFACE")) def = find_field(type, name);
    if (!def) return qv_fail(q, sel, "Cannot query field \"%s\" on type \"%s\"", name, type->name);
    /* arguments: known, and required ones present */
    size_t i;
    json_t *a;
    json_array_foreach(json_object_get(sel, "Arguments"), i, a) {
        bool known = false;
        size_t j;
        json_t *ad;
        json_array_foreach(json_object_get(def, "Arguments"), j, ad) known |= !strcmp(jstr_of(ad, "Name"), jstr_of(a, "Name"));
        if (!known)
            return qv_fail(q, sel, "Unknown argument \"%s\" on field \"%s.%s\"", jstr_of(a, "Name"), type->name, name);
    }
    json_array_foreach(json_object_get(def, "Arguments"), i, a) {
        json_t *t = json_object_get(a, "Type");
        if (!json_is_true(json_object_get(t, "NonNull")) || json_object_get(a, "DefaultValue")) continue;
        bool given = false;
        size_t j;
        json_t *ga;
        json_array_foreach(json_object_get(sel, "Arguments"), j, ga) given |= !strcmp(jstr_of(ga, "Name"), jstr_of(a, "Name"));
        if (!given) {
            pc__sbuf_t tt = {0};
            type_text(&tt, t, 0);
            bool r = qv_fail(q, sel, "Field \"%s\" argument \"%s\" of type \"%s\" is required, but it was not provided",
                             name, jstr_of(a, "Name"), tt.data ? tt.data : "");
            pc__sbuf_free(&tt);
            return r;
        }
    }
    gtype_t *ft = gs_find(q->g, base_type(json_object_get(def, "Type")));
    if (!ft) return qv_fail(q, sel, "Undefined type for field \"%s\"", name);
    json_t *sub = json_object_get(sel, "SelectionSet");
    bool composite = !strcmp(ft->kind, "OBJECT") || !strcmp(ft->kind, "INTERFACE") || !strcmp(ft->kind, "UNION");
    if (composite && json_array_size(sub) == 0)
        return qv_fail(q, sel, "Field \"%s\" of type \"%s\" must have a selection of subfields", name, ft->name);
    if (!composite && json_array_size(sub) > 0)
        return qv_fail(q, sel, "Field \"%s\" must not have a selection since type \"%s\" has no subfields", name, ft->name);
    return composite ? qv_selection_set(q, sub, ft) : true;
}

static bool qv_selection_set(qv_t *q, json_t *set, gtype_t *type)
{
    if (++q->depth > 64) return qv_fail(q, NULL, "selection too deep");
    size_t i;
    json_t *sel;
    bool ok = true;
    json_array_foreach(set, i, sel) {
        if (!ok) break;
        /* fields always carry an Alias, inline fragments a TypeCondition */
        if (json_object_get(sel, "Alias")) {
            ok = qv_field(q, sel, type);
            continue;
        }
        if (json_object_get(sel, "TypeCondition")) {
            const char *tc = jstr_of(sel, "TypeCondition");
            gtype_t *t = *tc ? gs_find(q->g, tc) : type;
            if (!t) {
                ok = qv_fail(q, sel, "Unknown type \"%s\"", tc);
                continue;
            }
            ok = qv_directives(q, json_object_get(sel, "Directives")) &&
                 qv_selection_set(q, json_object_get(sel, "SelectionSet"), t);
            continue;
        }
        /* fragment spread */
        const char *fname = jstr_of(sel, "Name");
        json_t *frag = find_fragment(q, fname);
        if (!frag) {
            ok = qv_fail(q, sel, "Unknown fragment \"%s\"", fname);
            continue;
        }
        gtype_t *t = gs_find(q->g, jstr_of(frag, "TypeCondition"));
        if (!t) {
            ok = qv_fail(q, frag, "Unknown type \"%s\"", jstr_of(frag, "TypeCondition"));
            continue;
        }
        ok = qv_directives(q, json_object_get(sel, "Directives")) &&
             qv_selection_set(q, json_object_get(frag, "SelectionSet"), t);
    }
    q->depth--;
    return ok;
}

static gtype_t *root_type(qv_t *q, json_t *schema_doc, const char *op)
{
    const char *sk[2] = {"Schema", "SchemaExtension"};
    for (int d = 0; d < 2; d++) {
        size_t i;
        json_t *sd;
        json_array_foreach(json_object_get(schema_doc, sk[d]), i, sd) {
            size_t j;
            json_t *ot;
            json_array_foreach(json_object_get(sd, "OperationTypes"), j, ot) if (!strcmp(jstr_of(ot, "Operation"), op))
                return gs_find(q->g, jstr_of(ot, "Type"));
        }
    }
    const char *def = !strcmp(op, "mutation") ? "Mutation" : !strcmp(op, "subscription") ? "Subscription" : "Query";
    return gs_find(q->g, def);
}

int pc_plib_graphql_validate(const char *query_ast, size_t qn, const char *schema_ast, size_t sn,
                             char *err, size_t errlen)
{
    json_t *qd = json_loadb(query_ast, qn, 0, NULL), *sd = json_loadb(schema_ast, sn, 0, NULL);
    gschema_t g;
    int rc = -1;
    if (!qd || !sd || !json_is_object(qd)) {
        if (err && errlen) snprintf(err, errlen, "invalid GraphQL AST");
        goto out;
    }
    if (!gs_build(&g, sd, err, errlen)) goto out;
    qv_t q = {.g = &g, .query = qd, .err = err, .errlen = errlen};
    rc = 1;
    size_t i;
    json_t *op;
    json_array_foreach(json_object_get(qd, "Operations"), i, op) {
        const char *kind = jstr_of(op, "Operation");
        gtype_t *root = root_type(&q, sd, *kind ? kind : "query");
        if (!root) {
            qv_fail(&q, op, "Schema does not support operation type \"%s\"", *kind ? kind : "query");
            rc = 0;
            break;
        }
        if (!qv_directives(&q, json_object_get(op, "Directives")) ||
            !qv_selection_set(&q, json_object_get(op, "SelectionSet"), root)) {
            rc = 0;
            break;
        }
    }
    gs_free(&g);
out:
    json_decref(qd);
    json_decref(sd);
    return rc;
}
