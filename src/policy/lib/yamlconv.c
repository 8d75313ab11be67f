/*
 * YAML via libyaml's event parser into JSON text (YAML 1.1 plain-scalar
 * resolution as go-yaml does it: null/~, true/false/yes/no/on/off, ints,
 * floats, .inf/.nan), and JSON (jansson) to YAML in go-yaml's block style.
 */
#include "policy/lib/yamlconv.h"

#include "policy/lib/gofmt.h"
#include "policy/lib/sbuf.h"

#include <ctype.h>
#include <jansson.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <yaml.h>

#define MAX_DEPTH 256

static void json_str(pc__sbuf_t *b, const char *s, size_t n)
{
    static const char hx[] = "0123456789abcdef";
    pc__sbuf_addc(b, '"');
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            pc__sbuf_addc(b, '\\');
            pc__sbuf_addc(b, (char)c);
        } else if (c == '\n') {
            pc__sbuf_adds(b, "\\n");
        } else if (c == '\r') {
            pc__sbuf_adds(b, "\\r");
        } else if (c == '\t') {
            pc__sbuf_adds(b, "\\t");
        } else if (c < 0x20) {
            char e[7] = {'\\', 'u', '0', '0', hx[c >> 4], hx[c & 15], 0};
            pc__sbuf_adds(b, e);
        } else {
            pc__sbuf_addc(b, (char)c);
        }
    }
    pc__sbuf_addc(b, '"');
}

static bool is_int_text(const char *s, size_t n)
{
    size_t i = 0;
    if (n && (s[0] == '-' || s[0] == '+')) i++;
    if (i >= n) return false;
    for (; i < n; i++)
        if (!isdigit((unsigned char)s[i]) && s[i] != '_') return false;
    return true;
}

static bool is_float_text(const char *s, size_t n)
{
    size_t i = 0;
    bool digits = false, dot = false;
    if (n && (s[0] == '-' || s[0] == '+')) i++;
    for (; i < n && (isdigit((unsigned char)s[i]) || s[i] == '.' || s[i] == '_'); i++) {
        if (s[i] == '.') {
            if (dot) return false;
            dot = true;
        } else if (s[i] != '_') {
            digits = true;
        }
    }
    if (!digits) return false;
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < n && (s[i] == '+' || s[i] == '-')) i++;
        size_t st = i;
        while (i < n && isdigit((unsigned char)s[i])) i++;
        if (i == st) return false;
    }
    return i == n;
}

static bool eq_any(const char *s, size_t n, const char *const *words)
{
    for (; *words; words++)
        if (strlen(*words) == n && memcmp(*words, s, n) == 0) return true;
    return false;
}

/* plain scalar -> JSON (YAML 1.1 resolution, as go-yaml v2) */
static void plain_scalar(pc__sbuf_t *b, const char *s, size_t n)
{
    static const char *nulls[] = {"", "~", "null", "Null", "NULL", NULL};
    static const char *trues[] = {"true", "True", "TRUE", "y", "Y", "yes", "Yes", "YES", "on", "On", "ON", NULL};
    static const char *falses[] = {"false", "False", "FALSE", "n", "N", "no", "No", "NO", "off", "Off", "OFF", NULL};
    if (eq_any(s, n, nulls)) {
        pc__sbuf_adds(b, "null");
        return;
    }
    if (eq_any(s, n, trues)) {
        pc__sbuf_adds(b, "true");
        return;
    }
    if (eq_any(s, n, falses)) {
        pc__sbuf_adds(b, "false");
        return;
    }
    if (is_int_text(s, n) || is_float_text(s, n)) {
        /* normalise to JSON: no '+', no '_', no leading '.' */
        char tmp[128];
        size_t k = 0;
        bool ok = n < sizeof(tmp) - 2;
        for (size_t i = 0; ok && i < n; i++) {
            if (s[i] == '_' || (i == 0 && s[i] == '+')) continue;
            if (s[i] == '.' && (k == 0 || tmp[k - 1] == '-')) tmp[k++] = '0';
            tmp[k++] = s[i];
            if (s[i] == '.' && (i + 1 == n || !isdigit((unsigned char)s[i + 1]))) tmp[k++] = '0';
        }
        if (ok) {
            /* JSON forbids leading zeros: "0123" stays a number in YAML 1.1 octal; keep as string */
            size_t d = tmp[0] == '-' ? 1 : 0;
            if (!(k - d > 1 && tmp[d] == '0' && isdigit((unsigned char)tmp[d + 1]))) {
                pc__sbuf_add(b, tmp, k);
                return;
            }
        }
    }
    if (n >= 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X') && n < 18) {
        char *end;
        char tmp[32];
        memcpy(tmp, s, n);
        tmp[n] = '\0';
        long long v = strtoll(tmp, &end, 16);
        if (*end == '\0') {
            char o[32];
            snprintf(o, sizeof(o), "%lld", v);
            pc__sbuf_adds(b, o);
            return;
        }
    }
    json_str(b, s, n);
}

typedef struct {
    yaml_parser_t p;
    pc__sbuf_t b;
    char *err;
    size_t errlen;
    int depth;
} ystate_t;

/* go-yaml's parser.fail(): the context line if known, else the problem line */
static bool y_err(ystate_t *y)
{
    if (y->err && y->errlen) {
        const char *what = y->p.problem ? y->p.problem : "unknown problem parsing YAML content";
        size_t line = 0;
        if (y->p.context_mark.line != 0)
            line = y->p.context_mark.line;
        else if (y->p.problem_mark.line != 0)
            line = y->p.problem_mark.line;
        if (line != 0 && y->p.error == YAML_SCANNER_ERROR) line++;
        if (line)
            snprintf(y->err, y->errlen, "yaml: line %zu: %s", line, what);
        else
            snprintf(y->err, y->errlen, "yaml: %s", what);
    }
    return false;
}

static bool y_node(ystate_t *y, yaml_event_t *ev);

static bool y_next(ystate_t *y, yaml_event_t *ev)
{
    if (!yaml_parser_parse(&y->p, ev)) return y_err(y);
    return true;
}

static bool y_node(ystate_t *y, yaml_event_t *ev)
{
    if (++y->depth > MAX_DEPTH) {
        if (y->err && y->errlen) snprintf(y->err, y->errlen, "yaml: document too deeply nested");
        return false;
    }
    bool ok = true;
    switch (ev->type) {
    case YAML_SCALAR_EVENT: {
        const char *v = (const char *)ev->data.scalar.value;
        size_t n = ev->data.scalar.length;
        const char *tag = (const char *)ev->data.scalar.tag;
        if (ev->data.scalar.style != YAML_PLAIN_SCALAR_STYLE || (tag && strcmp(tag, "!!str") == 0 ) ||
            (tag && strcmp(tag, "tag:yaml.org,2002:str") == 0))
            json_str(&y->b, v, n);
        else
            plain_scalar(&y->b, v, n);
        break;
    }
    case YAML_ALIAS_EVENT:
        if (y->err && y->errlen) snprintf(y->err, y->errlen, "yaml: aliases are not supported");
        ok = false;
        break;
    case YAML_SEQUENCE_START_EVENT: {
        pc__sbuf_addc(&y->b, '[');
        bool first = true;
        for (;;) {
            yaml_event_t e;
            if (!y_next(y, &e)) return false;
            if (e.type == YAML_SEQUENCE_END_EVENT) {
                yaml_event_delete(&e);
                break;
            }
            if (!first) pc__sbuf_addc(&y->b, ',');
            first = false;
            bool r = y_node(y, &e);
            yaml_event_delete(&e);
            if (!r) return false;
        }
        pc__sbuf_addc(&y->b, ']');
        break;
    }
    case YAML_MAPPING_START_EVENT: {
        pc__sbuf_addc(&y->b, '{');
        bool first = true;
        for (;;) {
            yaml_event_t k;
            if (!y_next(y, &k)) return false;
            if (k.type == YAML_MAPPING_END_EVENT) {
                yaml_event_delete(&k);
                break;
            }
            if (!first) pc__sbuf_addc(&y->b, ',');
            first = false;
            /* JSON keys are strings: scalar keys as their text */
            if (k.type == YAML_SCALAR_EVENT) {
                json_str(&y->b, (const char *)k.data.scalar.value, k.data.scalar.length);
            } else {
                yaml_event_delete(&k);
                if (y->err && y->errlen) snprintf(y->err, y->errlen, "yaml: non-scalar mapping keys are not supported");
                return false;
            }
            yaml_event_delete(&k);
            pc__sbuf_addc(&y->b, ':');
            yaml_event_t v;
            if (!y_next(y, &v)) return false;
            bool r = y_node(y, &v);
            yaml_event_delete(&v);
            if (!r) return false;
        }
        pc__sbuf_addc(&y->b, '}');
        break;
    }
    default: ok = false;
    }
    y->depth--;
    return ok;
}

char *pc_plib_yaml_to_json(const char *s, size_t n, size_t *out_len, char *err, size_t errlen)
{
    ystate_t y = {.err = err, .errlen = errlen};
    if (!yaml_parser_initialize(&y.p)) return NULL;
    yaml_parser_set_input_string(&y.p, (const unsigned char *)s, n);
    bool ok = false, have_doc = false;
    for (;;) {
        yaml_event_t ev;
        if (!y_next(&y, &ev)) goto out;
        yaml_event_type_t t = ev.type;
        if (t == YAML_STREAM_END_EVENT) {
            yaml_event_delete(&ev);
            break;
        }
        if (t == YAML_DOCUMENT_START_EVENT || t == YAML_STREAM_START_EVENT || t == YAML_DOCUMENT_END_EVENT) {
            yaml_event_delete(&ev);
            if (t == YAML_DOCUMENT_END_EVENT && have_doc) break;
            continue;
        }
        bool r = y_node(&y, &ev);
        yaml_event_delete(&ev);
        if (!r) goto out;
        have_doc = true;
    }
    if (!have_doc) pc__sbuf_adds(&y.b, "null");
    ok = true;
out:
    yaml_parser_delete(&y.p);
    if (!ok) {
        pc__sbuf_free(&y.b);
        return NULL;
    }
    return pc__sbuf_take(&y.b, out_len);
}

/* ---- JSON -> YAML ------------------------------------------------------------ */

/* A string is emitted plain unless it would read back as something else. */
static bool needs_quotes(const char *s, size_t n)
{
    if (n == 0) return true;
    pc__sbuf_t t = {0};
    plain_scalar(&t, s, n);
    bool str = t.data && t.data[0] == '"';
    pc__sbuf_free(&t);
    if (!str) return true;
    if (strchr("-?:,[]{}#&*!|>'\"%@` ", s[0])) return true;
    if (s[n - 1] == ' ' || s[n - 1] == ':') return true;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '\n' || s[i] == '\t' || (unsigned char)s[i] < 0x20) return true;
        if (s[i] == ':' && i + 1 < n && s[i + 1] == ' ') return true;
        if (s[i] == '#' && i > 0 && s[i - 1] == ' ') return true;
    }
    return false;
}

static void y_scalar_str(pc__sbuf_t *b, const char *s, size_t n)
{
    if (!needs_quotes(s, n)) {
        pc__sbuf_add(b, s, n);
        return;
    }
    json_str(b, s, n);
}

static void y_emit(pc__sbuf_t *b, json_t *v, int indent, int depth);

static void y_scalar(pc__sbuf_t *b, json_t *v)
{
    char buf[64];
    switch (json_typeof(v)) {
    case JSON_NULL: pc__sbuf_adds(b, "null"); break;
    case JSON_TRUE: pc__sbuf_adds(b, "true"); break;
    case JSON_FALSE: pc__sbuf_adds(b, "false"); break;
    case JSON_INTEGER:
        snprintf(buf, sizeof(buf), "%lld", (long long)json_integer_value(v));
        pc__sbuf_adds(b, buf);
        break;
    case JSON_REAL:
        pc_plib_fmt_float_shortest(json_real_value(v), 'g', buf, sizeof(buf));
        pc__sbuf_adds(b, buf);
        break;
    case JSON_STRING: y_scalar_str(b, json_string_value(v), json_string_length(v)); break;
    default: break;
    }
}

static bool is_empty_coll(json_t *v)
{
    return (json_is_object(v) && json_object_size(v) == 0) || (json_is_array(v) && json_array_size(v) == 0);
}

static void y_emit(pc__sbuf_t *b, json_t *v, int indent, int depth)
{
    if (depth > MAX_DEPTH) return;
    if (json_is_object(v)) {
        if (json_object_size(v) == 0) {
            pc__sbuf_adds(b, "{}\n");
            return;
        }
        /* keys sorted, like go-yaml does for maps */
        size_t nk = json_object_size(v), k = 0;
        const char **keys = malloc(nk * sizeof(char *));
        if (!keys) {
            b->oom = true;
            return;
        }
        const char *key;
        json_t *val;
        json_object_foreach(v, key, val) keys[k++] = key;
        for (size_t i = 1; i < nk; i++)
            for (size_t j = i; j > 0 && strcmp(keys[j - 1], keys[j]) > 0; j--) {
                const char *t = keys[j];
                keys[j] = keys[j - 1];
                keys[j - 1] = t;
            }
        for (size_t i = 0; i < nk; i++) {
            if (i > 0) pc__sbuf_addrep(b, ' ', (size_t)indent);
            y_scalar_str(b, keys[i], strlen(keys[i]));
            pc__sbuf_addc(b, ':');
            json_t *c = json_object_get(v, keys[i]);
            if (json_is_object(c) && !is_empty_coll(c)) {
                pc__sbuf_addc(b, '\n');
                pc__sbuf_addrep(b, ' ', (size_t)indent + 2);
                y_emit(b, c, indent + 2, depth + 1);
            } else if (json_is_array(c) && !is_empty_coll(c)) {
                /* go-yaml does not indent a sequence under a mapping key */
                pc__sbuf_addc(b, '\n');
                pc__sbuf_addrep(b, ' ', (size_t)indent);
                y_emit(b, c, indent, depth + 1);
            } else {
                pc__sbuf_addc(b, ' ');
                y_emit(b, c, indent, depth + 1);
            }
        }
        free(keys);
        return;
    }
    if (json_is_array(v)) {
        if (json_array_size(v) == 0) {
            pc__sbuf_adds(b, "[]\n");
            return;
        }
        for (size_t i = 0; i < json_array_size(v); i++) {
            if (i > 0) pc__sbuf_addrep(b, ' ', (size_t)indent);
            pc__sbuf_adds(b, "- ");
            y_emit(b, json_array_get(v, i), indent + 2, depth + 1);
        }
        return;
    }
    y_scalar(b, v);
    pc__sbuf_addc(b, '\n');
}

char *pc_plib_json_to_yaml(const char *json, size_t n, size_t *out_len, char *err, size_t errlen)
{
    json_error_t je;
    json_t *root = json_loadb(json, n, JSON_DECODE_ANY, &je);
    if (!root) {
        if (err && errlen) snprintf(err, errlen, "%s", je.text);
        return NULL;
    }
    pc__sbuf_t b = {0};
    y_emit(&b, root, 0, 0);
    json_decref(root);
    return pc__sbuf_take(&b, out_len);
}
