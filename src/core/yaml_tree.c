#include "core/yaml_tree.h"
#include "core/config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <yaml.h>

/* Anchors seen so far in the stream: name -> node (aliases share the node). */
typedef struct anchor {
    char *name;
    pc__ynode_t *node;
} anchor_t;

typedef struct builder {
    pc__ydoc_t *doc;
    pc__ynode_t *stack[PC__YAML_MAX_DEPTH + 1];
    char *stack_anchor[PC__YAML_MAX_DEPTH + 1];
    size_t depth;
    anchor_t *anchors;
    size_t n_anchors, cap_anchors;
    uint64_t total_weight;
} builder_t;

static pc__ynode_t *node_new(pc__ydoc_t *doc, pc__ynode_kind_t kind, unsigned line)
{
    pc__ynode_t *n = pc_xcalloc(1, sizeof *n);
    n->kind = kind;
    n->line = line;
    n->weight = 1;
    if (doc->n_all == doc->cap_all) {
        doc->cap_all = doc->cap_all ? doc->cap_all * 2 : 64;
        doc->all = pc_xrealloc(doc->all, doc->cap_all * sizeof *doc->all);
    }
    doc->all[doc->n_all++] = n;
    return n;
}

static void node_add(pc__ynode_t *parent, pc__ynode_t *child)
{
    if (parent->n_items == parent->cap_items) {
        parent->cap_items = parent->cap_items ? parent->cap_items * 2 : 8;
        parent->items = pc_xrealloc(parent->items, parent->cap_items * sizeof *parent->items);
    }
    parent->items[parent->n_items++] = child;
    parent->weight += child->weight;
}

static void anchor_add(builder_t *b, const char *name, pc__ynode_t *node)
{
    /* A later anchor with the same name shadows the earlier one (YAML 1.2 §3.2.2.2). */
    if (b->n_anchors == b->cap_anchors) {
        b->cap_anchors = b->cap_anchors ? b->cap_anchors * 2 : 8;
        b->anchors = pc_xrealloc(b->anchors, b->cap_anchors * sizeof *b->anchors);
    }
    b->anchors[b->n_anchors].name = pc_xstrdup(name);
    b->anchors[b->n_anchors].node = node;
    b->n_anchors++;
}

static pc__ynode_t *anchor_find(const builder_t *b, const char *name)
{
    for (size_t i = b->n_anchors; i-- > 0;)
        if (strcmp(b->anchors[i].name, name) == 0) return b->anchors[i].node;
    return NULL;
}

static bool is_merge_key(const pc__ynode_t *k)
{
    return k->kind == PC__Y_SCALAR && k->plain && k->len == 2 && memcmp(k->str, "<<", 2) == 0;
}

static bool map_has_key(const pc__ynode_t **items, size_t n, const pc__ynode_t *key)
{
    for (size_t i = 0; i < n; i += 2)
        if (items[i]->kind == PC__Y_SCALAR && key->kind == PC__Y_SCALAR &&
            items[i]->len == key->len && memcmp(items[i]->str, key->str, key->len) == 0)
            return true;
    return false;
}

/*
 * YAML 1.1 merge keys (`<<: *defaults`, `<<: [*a, *b]`), which libyaml leaves
 * to the application: the mapping's own keys win, then each merged mapping in
 * order adds the keys not present yet.
 */
static bool apply_merge_keys(pc__ynode_t *n, const char *origin, char *err, size_t errlen)
{
    bool any = false;
    for (size_t i = 0; i < n->n_items; i += 2)
        any |= is_merge_key(n->items[i]);
    if (!any) return true;
    size_t cap = n->n_items, count = 0;
    for (size_t i = 0; i < n->n_items; i += 2) {
        if (!is_merge_key(n->items[i])) continue;
        const pc__ynode_t *v = n->items[i + 1];
        bool ok = v->kind == PC__Y_MAP;
        if (v->kind == PC__Y_SEQ) {
            ok = true;
            for (size_t j = 0; j < v->n_items; j++) {
                ok &= v->items[j]->kind == PC__Y_MAP;
                if (ok) cap += v->items[j]->n_items;
            }
        } else if (ok) {
            cap += v->n_items;
        }
        if (!ok) {
            snprintf(err, errlen,
                     "%s:%u: the value of a merge key (<<) must be a mapping or a list "
                     "of mappings",
                     origin, v->line);
            return false;
        }
    }
    if (cap > 8192) { /* merging is quadratic; configuration mappings are small */
        snprintf(err, errlen, "%s:%u: mapping too large for merge keys (<<)", origin, n->line);
        return false;
    }
    const pc__ynode_t **items = pc_xcalloc(cap ? cap : 1, sizeof *items);
    for (size_t i = 0; i < n->n_items; i += 2)
        if (!is_merge_key(n->items[i])) {
            items[count++] = n->items[i];
            items[count++] = n->items[i + 1];
        }
    for (size_t i = 0; i < n->n_items; i += 2) {
        if (!is_merge_key(n->items[i])) continue;
        const pc__ynode_t *v = n->items[i + 1];
        size_t n_src = v->kind == PC__Y_SEQ ? v->n_items : 1;
        for (size_t j = 0; j < n_src; j++) {
            const pc__ynode_t *src = v->kind == PC__Y_SEQ ? v->items[j] : v;
            for (size_t k = 0; k < src->n_items; k += 2)
                if (!map_has_key(items, count, src->items[k])) {
                    items[count++] = src->items[k];
                    items[count++] = src->items[k + 1];
                }
        }
    }
    free(n->items);
    n->items = (pc__ynode_t **)items;
    n->n_items = n->cap_items = count;
    if (cap > count) n->cap_items = cap;
    n->weight = 1;
    for (size_t i = 0; i < count; i++)
        n->weight += n->items[i]->weight;
    return true;
}

/* Attach a finished node to its parent (or make it the document root). */
static bool attach(builder_t *b, pc__ynode_t *n, const char *origin, char *err, size_t errlen)
{
    if (b->depth == 0) b->total_weight += n->weight;
    if (n->weight > PC__YAML_MAX_WEIGHT || b->total_weight > PC__YAML_MAX_WEIGHT) {
        snprintf(err, errlen, "%s:%u: document too large (alias expansion limit)", origin, n->line);
        return false;
    }
    if (b->depth == 0) {
        pc__ydoc_t *d = b->doc;
        d->roots = pc_xrealloc(d->roots, (d->n_roots + 1) * sizeof *d->roots);
        d->roots[d->n_roots++] = n;
    } else {
        node_add(b->stack[b->depth - 1], n);
    }
    return true;
}

/* Scalars may be passwords: clear libyaml's copy before it is freed. */
static void wipe_event(yaml_event_t *ev)
{
    if (ev->type == YAML_SCALAR_EVENT && ev->data.scalar.value)
        explicit_bzero(ev->data.scalar.value, ev->data.scalar.length);
}

bool pc__yaml_parse(const char *text, size_t len, const char *origin, pc__ydoc_t *out, char *err,
                    size_t errlen)
{
    memset(out, 0, sizeof *out);
    builder_t b = {.doc = out};
    yaml_parser_t parser;
    bool ok = false;
    if (!yaml_parser_initialize(&parser)) {
        snprintf(err, errlen, "%s: cannot initialise YAML parser", origin);
        return false;
    }
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);

    for (;;) {
        yaml_event_t ev;
        if (!yaml_parser_parse(&parser, &ev)) {
            snprintf(err, errlen, "%s:%zu: invalid YAML: %s", origin,
                     (size_t)parser.problem_mark.line + 1,
                     parser.problem ? parser.problem : "syntax error");
            goto out;
        }
        unsigned line = (unsigned)ev.start_mark.line + 1;
        bool step_ok = true;
        switch (ev.type) {
        case YAML_STREAM_END_EVENT:
            yaml_event_delete(&ev);
            ok = true;
            goto out;
        case YAML_SCALAR_EVENT: {
            pc__ynode_t *n = node_new(out, PC__Y_SCALAR, line);
            n->str = pc_xstrndup((const char *)ev.data.scalar.value, ev.data.scalar.length);
            n->len = ev.data.scalar.length;
            n->plain = ev.data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
            if (ev.data.scalar.anchor) anchor_add(&b, (const char *)ev.data.scalar.anchor, n);
            step_ok = attach(&b, n, origin, err, errlen);
            break;
        }
        case YAML_ALIAS_EVENT: {
            pc__ynode_t *target = anchor_find(&b, (const char *)ev.data.alias.anchor);
            if (!target) {
                snprintf(err, errlen, "%s:%u: unknown alias *%s", origin, line,
                         (const char *)ev.data.alias.anchor);
                step_ok = false;
                break;
            }
            /* An alias to a collection still being built would make a cycle. */
            for (size_t i = 0; i < b.depth; i++)
                if (b.stack[i] == target) {
                    snprintf(err, errlen, "%s:%u: recursive alias *%s", origin, line,
                             (const char *)ev.data.alias.anchor);
                    step_ok = false;
                }
            if (step_ok) step_ok = attach(&b, target, origin, err, errlen);
            break;
        }
        case YAML_SEQUENCE_START_EVENT:
        case YAML_MAPPING_START_EVENT: {
            if (b.depth >= PC__YAML_MAX_DEPTH) {
                snprintf(err, errlen, "%s:%u: nesting deeper than %d levels", origin, line,
                         PC__YAML_MAX_DEPTH);
                step_ok = false;
                break;
            }
            bool seq = ev.type == YAML_SEQUENCE_START_EVENT;
            pc__ynode_t *n = node_new(out, seq ? PC__Y_SEQ : PC__Y_MAP, line);
            const yaml_char_t *anchor =
                seq ? ev.data.sequence_start.anchor : ev.data.mapping_start.anchor;
            b.stack_anchor[b.depth] = anchor ? pc_xstrdup((const char *)anchor) : NULL;
            b.stack[b.depth++] = n;
            break;
        }
        case YAML_SEQUENCE_END_EVENT:
        case YAML_MAPPING_END_EVENT: {
            pc__ynode_t *n = b.stack[--b.depth];
            char *anchor = b.stack_anchor[b.depth];
            b.stack_anchor[b.depth] = NULL;
            if (n->kind == PC__Y_MAP && !apply_merge_keys(n, origin, err, errlen)) {
                free(anchor);
                step_ok = false;
                break;
            }
            /* Registered only when complete so that an alias cannot point into itself. */
            if (anchor) anchor_add(&b, anchor, n);
            free(anchor);
            step_ok = attach(&b, n, origin, err, errlen);
            break;
        }
        case YAML_DOCUMENT_START_EVENT:
            /* Anchors are scoped to their document. */
            for (size_t i = 0; i < b.n_anchors; i++)
                free(b.anchors[i].name);
            b.n_anchors = 0;
            break;
        default: /* stream start and document end carry nothing we keep */
            break;
        }
        wipe_event(&ev);
        yaml_event_delete(&ev);
        if (!step_ok) goto out;
    }
out:
    for (size_t i = 0; i < b.depth; i++)
        free(b.stack_anchor[i]);
    for (size_t i = 0; i < b.n_anchors; i++)
        free(b.anchors[i].name);
    free(b.anchors);
    /* libyaml frees its copies of the input without clearing them. */
    if (parser.raw_buffer.start)
        explicit_bzero(parser.raw_buffer.start,
                       (size_t)(parser.raw_buffer.end - parser.raw_buffer.start));
    if (parser.buffer.start)
        explicit_bzero(parser.buffer.start, (size_t)(parser.buffer.end - parser.buffer.start));
    yaml_parser_delete(&parser);
    if (!ok) pc__yaml_free(out);
    return ok;
}

void pc__yaml_free(pc__ydoc_t *doc)
{
    if (!doc) return;
    for (size_t i = 0; i < doc->n_all; i++) {
        pc__ynode_t *n = doc->all[i];
        if (n->str) {
            explicit_bzero(n->str, n->len);
            free(n->str);
        }
        free(n->items);
        free(n);
    }
    free(doc->all);
    free(doc->roots);
    memset(doc, 0, sizeof *doc);
}

bool pc__yaml_is_null(const pc__ynode_t *n)
{
    if (n->kind != PC__Y_SCALAR || !n->plain) return false;
    return n->len == 0 || strcmp(n->str, "~") == 0 || strcmp(n->str, "null") == 0 ||
           strcmp(n->str, "Null") == 0 || strcmp(n->str, "NULL") == 0;
}

const char *pc__yaml_kind_name(const pc__ynode_t *n)
{
    switch (n->kind) {
    case PC__Y_MAP:
        return "a mapping";
    case PC__Y_SEQ:
        return "a list";
    case PC__Y_SCALAR:
        break;
    }
    if (pc__yaml_is_null(n)) return "null";
    return "a scalar";
}

size_t pc__ypath_push_key(pc__ypath_t *p, const char *key)
{
    size_t prev = p->len;
    int w = snprintf(p->buf + p->len, sizeof p->buf - p->len, "%s%s", p->len ? "." : "", key);
    if (w > 0)
        p->len += (size_t)w < sizeof p->buf - p->len ? (size_t)w : sizeof p->buf - p->len - 1;
    return prev;
}

size_t pc__ypath_push_index(pc__ypath_t *p, size_t index)
{
    size_t prev = p->len;
    int w = snprintf(p->buf + p->len, sizeof p->buf - p->len, "[%zu]", index);
    if (w > 0)
        p->len += (size_t)w < sizeof p->buf - p->len ? (size_t)w : sizeof p->buf - p->len - 1;
    return prev;
}

void pc__ypath_pop(pc__ypath_t *p, size_t prev_len)
{
    p->len = prev_len;
    p->buf[prev_len] = '\0';
}

static bool var_name_char(char c, bool first)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_' ||
           (!first && c >= '0' && c <= '9');
}

typedef struct sbuf {
    char *p;
    size_t len, cap;
} sbuf_t;

static void sbuf_add(sbuf_t *b, const char *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->len + n + 1)
            cap *= 2;
        /* Grow by copy so that a secret never lingers in a realloc'd-away block. */
        char *q = pc_xmalloc(cap);
        if (b->p) {
            memcpy(q, b->p, b->len);
            explicit_bzero(b->p, b->cap);
            free(b->p);
        }
        b->p = q;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

char *pc__env_expand(const char *s, size_t len, char *problem, size_t problem_len)
{
    sbuf_t out = {0};
    sbuf_add(&out, "", 0);
    size_t i = 0;
    while (i < len) {
        if (s[i] == '$' && i + 2 < len && s[i + 1] == '$' && s[i + 2] == '{') {
            sbuf_add(&out, "${", 2);
            i += 3;
            continue;
        }
        if (!(s[i] == '$' && i + 1 < len && s[i + 1] == '{')) {
            sbuf_add(&out, s + i, 1);
            i++;
            continue;
        }
        size_t name_start = i + 2, j = name_start;
        while (j < len && var_name_char(s[j], j == name_start))
            j++;
        size_t name_len = j - name_start;
        if (name_len == 0 || name_len > 255) {
            snprintf(problem, problem_len, "invalid variable reference (expected ${NAME})");
            goto fail;
        }
        char name[256];
        memcpy(name, s + name_start, name_len);
        name[name_len] = '\0';
        const char *def = NULL;
        size_t def_len = 0;
        if (j + 1 < len && s[j] == ':' && s[j + 1] == '-') {
            size_t k = j + 2;
            while (k < len && s[k] != '}')
                k++;
            if (k >= len) {
                snprintf(problem, problem_len, "unterminated ${%s:-...}", name);
                goto fail;
            }
            def = s + j + 2;
            def_len = k - (j + 2);
            j = k;
        }
        if (j >= len || s[j] != '}') {
            snprintf(problem, problem_len, "invalid variable reference ${%s (missing '}')", name);
            goto fail;
        }
        const char *val = getenv(name);
        if (val && (*val || !def)) {
            sbuf_add(&out, val, strlen(val));
        } else if (def) {
            /* ${VAR:-default}: the default also applies to an empty variable, as in sh. */
            sbuf_add(&out, def, def_len);
        } else {
            snprintf(problem, problem_len, "environment variable %s is not set", name);
            goto fail;
        }
        i = j + 1;
    }
    return out.p;
fail:
    if (out.p) explicit_bzero(out.p, out.cap);
    free(out.p);
    return NULL;
}

bool pc__valid_http_url(const char *s)
{
    const char *rest;
    if (strncmp(s, "http://", 7) == 0)
        rest = s + 7;
    else if (strncmp(s, "https://", 8) == 0)
        rest = s + 8;
    else
        return false;
    if (!*rest || *rest == '/' || *rest == ':') return false;
    for (const char *q = s; *q; q++)
        if ((unsigned char)*q <= ' ' || *q == 0x7f) return false;
    return true;
}

char *pc__read_file(const char *path, size_t max, size_t *len, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    char *buf = pc_xmalloc(max + 1);
    errno = 0;
    size_t n = fread(buf, 1, max + 1, f);
    int read_errno = errno;
    bool bad = ferror(f);
    fclose(f);
    if (bad || n > max) {
        if (bad)
            snprintf(err, errlen, "%s: cannot read: %s", path,
                     read_errno ? strerror(read_errno) : "I/O error");
        else
            snprintf(err, errlen, "%s: file larger than %zu MiB", path, max >> 20);
        explicit_bzero(buf, n < max ? n : max);
        free(buf);
        return NULL;
    }
    buf[n] = '\0';
    *len = n;
    return buf;
}

void pc__free_secret(char *s)
{
    if (!s) return;
    explicit_bzero(s, strlen(s));
    free(s);
}

void pc__quote_value(char *out, size_t cap, const char *s, size_t len)
{
    size_t pos = 0;
    if (cap < 16) { /* too small for a useful quote: nothing */
        if (cap) out[0] = '\0';
        return;
    }
    out[pos++] = '"';
    size_t i = 0;
    for (; i < len && pos + 8 < cap; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7f || c == '"' || c == '\\') {
            int w = snprintf(out + pos, cap - pos, "\\x%02x", c);
            if (w > 0) pos += (size_t)w;
        } else {
            out[pos++] = (char)c;
        }
    }
    if (i < len) {
        memcpy(out + pos, "...", 3);
        pos += 3;
    }
    out[pos++] = '"';
    out[pos] = '\0';
}

/* ---------- typed, strictly checked access ---------- */

bool pc__yfail(pc__yctx_t *c, unsigned line, const char *fmt, ...)
{
    char msg[384];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (c->path.len)
        snprintf(c->err, c->errlen, "%s:%u: %s: %s", c->origin, line, c->path.buf, msg);
    else
        snprintf(c->err, c->errlen, "%s:%u: %s", c->origin, line, msg);
    return false;
}

static const char *expected_name(pc__ynode_kind_t kind)
{
    return kind == PC__Y_MAP ? "a mapping" : kind == PC__Y_SEQ ? "a list" : "a scalar";
}

bool pc__yexpect(pc__yctx_t *c, const pc__ynode_t *n, pc__ynode_kind_t kind)
{
    if (n->kind == kind) return true;
    return pc__yfail(c, n->line, "expected %s, got %s", expected_name(kind), pc__yaml_kind_name(n));
}

bool pc__ymap_check(pc__yctx_t *c, const pc__ynode_t *n, const char *const *allowed)
{
    if (!pc__yexpect(c, n, PC__Y_MAP)) return false;
    for (size_t i = 0; i < n->n_items; i += 2) {
        const pc__ynode_t *k = n->items[i];
        if (k->kind != PC__Y_SCALAR)
            return pc__yfail(c, k->line, "mapping keys must be strings, got %s",
                             pc__yaml_kind_name(k));
        bool known = false;
        for (size_t a = 0; allowed[a]; a++)
            if (strlen(allowed[a]) == k->len && memcmp(allowed[a], k->str, k->len) == 0)
                known = true;
        /* The key goes into the path as is only when it is a plain identifier. */
        bool simple = k->len > 0 && k->len <= 64;
        for (size_t j = 0; j < k->len && simple; j++) {
            char ch = k->str[j];
            simple = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                     (ch >= '0' && ch <= '9') || ch == '_' || ch == '-';
        }
        char q[96];
        pc__quote_value(q, sizeof q, k->str, k->len);
        size_t prev = pc__ypath_push_key(&c->path, simple ? k->str : q);
        if (!known) {
            char choices[384];
            size_t pos = 0;
            choices[0] = '\0';
            for (size_t a = 0; allowed[a] && pos < sizeof choices; a++) {
                int w = snprintf(choices + pos, sizeof choices - pos, "%s%s", a ? ", " : "",
                                 allowed[a]);
                if (w > 0) pos += (size_t)w;
            }
            bool r = pc__yfail(c, k->line, "unknown key (expected one of: %s)", choices);
            pc__ypath_pop(&c->path, prev);
            return r;
        }
        for (size_t j = 0; j < i; j += 2)
            if (n->items[j]->len == k->len && memcmp(n->items[j]->str, k->str, k->len) == 0) {
                bool r =
                    pc__yfail(c, k->line, "duplicate key (first at line %u)", n->items[j]->line);
                pc__ypath_pop(&c->path, prev);
                return r;
            }
        pc__ypath_pop(&c->path, prev);
    }
    return true;
}

const pc__ynode_t *pc__ymap_get(const pc__ynode_t *map, const char *key)
{
    if (!map || map->kind != PC__Y_MAP) return NULL;
    size_t klen = strlen(key);
    for (size_t i = 0; i < map->n_items; i += 2) {
        const pc__ynode_t *k = map->items[i];
        if (k->kind == PC__Y_SCALAR && k->len == klen && memcmp(k->str, key, klen) == 0)
            return pc__yaml_is_null(map->items[i + 1]) ? NULL : map->items[i + 1];
    }
    return NULL;
}

unsigned pc__ymap_line(const pc__ynode_t *map, const char *key)
{
    const pc__ynode_t *v = pc__ymap_get(map, key);
    return v ? v->line : map ? map->line : 1;
}

char *pc__yscalar(pc__yctx_t *c, const pc__ynode_t *n)
{
    if (!pc__yexpect(c, n, PC__Y_SCALAR)) return NULL;
    if (memchr(n->str, '\0', n->len)) {
        pc__yfail(c, n->line, "value contains a NUL character");
        return NULL;
    }
    if (!c->expand_env) return pc_xstrndup(n->str, n->len);
    char problem[320];
    char *v = pc__env_expand(n->str, n->len, problem, sizeof problem);
    if (!v) pc__yfail(c, n->line, "%s", problem);
    return v;
}

/* Look up key, push it on the path; *node NULL when absent or null. */
static size_t enter(pc__yctx_t *c, const pc__ynode_t *map, const char *key,
                    const pc__ynode_t **node)
{
    *node = pc__ymap_get(map, key);
    return pc__ypath_push_key(&c->path, key);
}

static bool leave(pc__yctx_t *c, size_t prev, bool ok)
{
    pc__ypath_pop(&c->path, prev);
    return ok;
}

bool pc__yget_str(pc__yctx_t *c, const pc__ynode_t *map, const char *key, char **out)
{
    const pc__ynode_t *n;
    size_t prev = enter(c, map, key, &n);
    if (!n) return leave(c, prev, true);
    char *v = pc__yscalar(c, n);
    if (!v) return leave(c, prev, false);
    pc__free_secret(*out);
    *out = v;
    return leave(c, prev, true);
}

static bool parse_int(const char *s, int64_t *out)
{
    const char *p = s;
    bool neg = false;
    if (*p == '-' || *p == '+') neg = *p++ == '-';
    if (*p < '0' || *p > '9') return false;
    uint64_t v = 0;
    for (; *p; p++) {
        if (*p == '_') continue; /* YAML 1.1 digit separators: 1_000 */
        if (*p < '0' || *p > '9') return false;
        if (v > (UINT64_MAX - 9) / 10) return false;
        v = v * 10 + (uint64_t)(*p - '0');
        if (v > (uint64_t)INT64_MAX) return false;
    }
    *out = neg ? -(int64_t)v : (int64_t)v;
    return true;
}

bool pc__yget_int(pc__yctx_t *c, const pc__ynode_t *map, const char *key, int64_t min, int64_t max,
                  int64_t *out)
{
    const pc__ynode_t *n;
    size_t prev = enter(c, map, key, &n);
    if (!n) return leave(c, prev, true);
    if (n->kind != PC__Y_SCALAR || !n->plain)
        return leave(
            c, prev,
            pc__yfail(c, n->line, "expected an integer, got %s",
                      n->kind == PC__Y_SCALAR ? "a quoted string" : pc__yaml_kind_name(n)));
    char *v = pc__yscalar(c, n);
    if (!v) return leave(c, prev, false);
    int64_t x;
    char q[96];
    pc__quote_value(q, sizeof q, v, strlen(v));
    bool ok = parse_int(v, &x);
    free(v);
    if (!ok) return leave(c, prev, pc__yfail(c, n->line, "invalid integer %s", q));
    if (x < min || x > max)
        return leave(
            c, prev,
            pc__yfail(c, n->line, "%s out of range %lld..%lld", q, (long long)min, (long long)max));
    *out = x;
    return leave(c, prev, true);
}

bool pc__yget_bool(pc__yctx_t *c, const pc__ynode_t *map, const char *key, bool *out)
{
    static const char *const truthy[] = {"true", "True", "TRUE", "yes", "Yes",
                                         "YES",  "on",   "On",   "ON",  NULL};
    static const char *const falsy[] = {"false", "False", "FALSE", "no",  "No",
                                        "NO",    "off",   "Off",   "OFF", NULL};
    const pc__ynode_t *n;
    size_t prev = enter(c, map, key, &n);
    if (!n) return leave(c, prev, true);
    if (n->kind != PC__Y_SCALAR || !n->plain)
        return leave(
            c, prev,
            pc__yfail(c, n->line, "expected true or false, got %s",
                      n->kind == PC__Y_SCALAR ? "a quoted string" : pc__yaml_kind_name(n)));
    char *v = pc__yscalar(c, n);
    if (!v) return leave(c, prev, false);
    int found = -1;
    for (size_t i = 0; truthy[i]; i++) {
        if (strcmp(v, truthy[i]) == 0) found = 1;
        if (strcmp(v, falsy[i]) == 0) found = 0;
    }
    char q[96];
    pc__quote_value(q, sizeof q, v, strlen(v));
    free(v);
    if (found < 0)
        return leave(c, prev, pc__yfail(c, n->line, "expected true or false, got %s", q));
    *out = found == 1;
    return leave(c, prev, true);
}

/* Shared shape of duration and size: a scalar string run through a parser. */
static bool get_parsed(pc__yctx_t *c, const pc__ynode_t *map, const char *key, uint64_t *out,
                       bool (*parse)(const char *, uint64_t *), const char *what)
{
    const pc__ynode_t *n;
    size_t prev = enter(c, map, key, &n);
    if (!n) return leave(c, prev, true);
    char *v = pc__yscalar(c, n);
    if (!v) return leave(c, prev, false);
    uint64_t x;
    bool ok = parse(v, &x);
    char q[96];
    pc__quote_value(q, sizeof q, v, strlen(v));
    free(v);
    if (!ok) return leave(c, prev, pc__yfail(c, n->line, "invalid %s %s", what, q));
    *out = x;
    return leave(c, prev, true);
}

bool pc__yget_duration(pc__yctx_t *c, const pc__ynode_t *map, const char *key, uint64_t *out_ms)
{
    return get_parsed(c, map, key, out_ms, pc_parse_duration_ms, "duration");
}

bool pc__yget_size(pc__yctx_t *c, const pc__ynode_t *map, const char *key, uint64_t *out_bytes)
{
    return get_parsed(c, map, key, out_bytes, pc_parse_size, "size");
}

bool pc__yget_enum(pc__yctx_t *c, const pc__ynode_t *map, const char *key, const char *const *names,
                   int *out)
{
    const pc__ynode_t *n;
    size_t prev = enter(c, map, key, &n);
    if (!n) return leave(c, prev, true);
    char *v = pc__yscalar(c, n);
    if (!v) return leave(c, prev, false);
    for (int i = 0; names[i]; i++)
        if (strcmp(v, names[i]) == 0) {
            free(v);
            *out = i;
            return leave(c, prev, true);
        }
    char q[96], choices[256];
    size_t pos = 0;
    choices[0] = '\0';
    for (int i = 0; names[i] && pos < sizeof choices; i++) {
        int w = snprintf(choices + pos, sizeof choices - pos, "%s%s", i ? "|" : "", names[i]);
        if (w > 0) pos += (size_t)w;
    }
    pc__quote_value(q, sizeof q, v, strlen(v));
    free(v);
    return leave(c, prev, pc__yfail(c, n->line, "invalid value %s (expected %s)", q, choices));
}

bool pc__yget_str_list(pc__yctx_t *c, const pc__ynode_t *map, const char *key, char ***out,
                       size_t *n_out)
{
    const pc__ynode_t *n;
    size_t prev = enter(c, map, key, &n);
    if (!n) return leave(c, prev, true);
    if (!pc__yexpect(c, n, PC__Y_SEQ)) return leave(c, prev, false);
    char **list = pc_xcalloc(n->n_items ? n->n_items : 1, sizeof *list);
    for (size_t i = 0; i < n->n_items; i++) {
        size_t p2 = pc__ypath_push_index(&c->path, i);
        list[i] = pc__yscalar(c, n->items[i]);
        pc__ypath_pop(&c->path, p2);
        if (!list[i]) {
            for (size_t j = 0; j < i; j++)
                free(list[j]);
            free(list);
            return leave(c, prev, false);
        }
    }
    for (size_t j = 0; j < *n_out; j++)
        free((*out)[j]);
    free(*out);
    *out = list;
    *n_out = n->n_items;
    return leave(c, prev, true);
}
