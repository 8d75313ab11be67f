/* `portcullis policy eval|test|check`: the Rego engine from the command line (design §1). */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "cmd/commands.h"
#include "core/common.h"
#include "policy/policy.h"
#include "policy/value.h"

typedef struct {
    pc_policy_module *mods;
    size_t nmods, cap;
    pc_arena *arena;
    const pc_value *data;
    char err[480];
} loaded;

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    pc_str s = {0};
    char buf[65536];
    size_t n;
    while ((n = fread(buf, 1, sizeof(buf), f)) > 0) pc_str_append(&s, buf, n);
    fclose(f);
    if (!s.p) pc_str_append(&s, "", 0);
    *len = s.len;
    return s.p;
}

static bool ends_with(const char *s, const char *suf)
{
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && strcmp(s + a - b, suf) == 0;
}

static bool load_path(loaded *L, const char *path, bool tests_only, int depth, const char *prefix);

/* Wraps v in objects along prefix ("a/b" -> {"a": {"b": v}}): like opa, a data
 * file in a sub-directory of a -d directory is mounted at that directory. */
static const pc_value *mount(pc_arena *a, const char *prefix, const pc_value *v)
{
    if (!prefix || !*prefix || !v) return v;
    const char *slash = strrchr(prefix, '/');
    const char *last = slash ? slash + 1 : prefix;
    pc_obuf ob;
    pc_obuf_init(&ob, a);
    pc_obuf_put(&ob, pc_value_cstring(a, last), v);
    const pc_value *w = pc_obuf_object(&ob);
    if (!slash) return w;
    char *head = pc_arena_strndup(a, prefix, (size_t)(slash - prefix));
    return head ? mount(a, head, w) : NULL;
}

static bool load_file(loaded *L, const char *path, const char *prefix)
{
    size_t len;
    char *text = read_file(path, &len);
    if (!text) {
        snprintf(L->err, sizeof(L->err), "%s: %s", path, strerror(errno));
        return false;
    }
    if (ends_with(path, ".rego")) {
        if (L->nmods == L->cap) {
            L->cap = L->cap ? L->cap * 2 : 8;
            L->mods = pc_xrealloc(L->mods, L->cap * sizeof(*L->mods));
        }
        L->mods[L->nmods++] = (pc_policy_module){pc_xstrdup(path), text, len};
        return true;
    }
    const pc_value *v;
    char err[256] = "";
    if (ends_with(path, ".json"))
        v = pc_json_parse(L->arena, text, len, err, sizeof(err));
    else
        v = pc_yaml_parse(L->arena, text, len, err, sizeof(err));
    free(text);
    if (!v) {
        snprintf(L->err, sizeof(L->err), "%s: %s", path, err);
        return false;
    }
    L->data = L->data ? pc_value_merge(L->arena, L->data, mount(L->arena, prefix, v))
                      : mount(L->arena, prefix, v);
    return true;
}

static bool load_path(loaded *L, const char *path, bool tests_only, int depth, const char *prefix)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        snprintf(L->err, sizeof(L->err), "%s: %s", path, strerror(errno));
        return false;
    }
    if (!S_ISDIR(st.st_mode)) return load_file(L, path, prefix);
    if (depth > 32) return true;
    DIR *d = opendir(path);
    if (!d) {
        snprintf(L->err, sizeof(L->err), "%s: %s", path, strerror(errno));
        return false;
    }
    struct dirent *de;
    char **names = NULL;
    size_t n = 0;
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.') continue;
        names = pc_xrealloc(names, (n + 1) * sizeof(*names));
        names[n++] = pc_xstrdup(de->d_name);
    }
    closedir(d);
    bool ok = true;
    for (size_t i = 0; i < n; i++) {
        char full[4096];
        snprintf(full, sizeof(full), "%s/%s", path, names[i]);
        struct stat cs;
        if (ok && stat(full, &cs) == 0) {
            if (S_ISDIR(cs.st_mode)) {
                char sub[4096];
                snprintf(sub, sizeof(sub), "%s%s%s", prefix ? prefix : "", prefix && *prefix ? "/" : "", names[i]);
                ok = load_path(L, full, tests_only, depth + 1, sub);
            } else if (ends_with(full, ".rego") || (!tests_only && (ends_with(full, ".json") ||
                                                                    ends_with(full, ".yaml") ||
                                                                    ends_with(full, ".yml")))) {
                ok = load_file(L, full, prefix);
            }
        }
        free(names[i]);
    }
    free(names);
    return ok;
}

static void loaded_free(loaded *L)
{
    for (size_t i = 0; i < L->nmods; i++) {
        free((char *)L->mods[i].name);
        free((char *)L->mods[i].text);
    }
    free(L->mods);
    pc_arena_free(L->arena);
}

/* opa eval prints errors as JSON on stdout; a one-line copy goes to stderr. */
static void print_error_json(FILE *out, const pc_policy_error *e)
{
    if (out == stderr) {
        fprintf(stderr, "%s%s%d: %s: %s\n", e->file, e->file[0] ? ":" : "", e->row, e->code, e->message);
        out = stdout;
    }
    pc_str s = {0};
    pc_arena *a = pc_arena_new(0);
    pc_str_append(&s, "{\n  \"errors\": [\n    {\n      \"code\": ", strlen("{\n  \"errors\": [\n    {\n      \"code\": "));
    pc_value_to_json(&s, pc_value_cstring(a, e->code));
    pc_str_append(&s, ",\n      \"message\": ", strlen(",\n      \"message\": "));
    pc_value_to_json(&s, pc_value_cstring(a, e->message));
    if (e->row > 0) {
        pc_str_append(&s, ",\n      \"location\": {\n        \"file\": ", strlen(",\n      \"location\": {\n        \"file\": "));
        pc_value_to_json(&s, pc_value_cstring(a, e->file));
        pc_str_appendf(&s, ",\n        \"row\": %d,\n        \"col\": %d\n      }", e->row, e->col);
    }
    pc_str_append(&s, "\n    }\n  ]\n}\n", strlen("\n    }\n  ]\n}\n"));
    fwrite(s.p, 1, s.len, out);
    pc_str_free(&s);
    pc_arena_free(a);
}

/* Re-indents compact JSON the way opa prints it (two spaces, "key": value),
 * keeping the member order. */
static void pretty(pc_str *o, const char *s, size_t n)
{
    int depth = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '"') {
            size_t j = i + 1;
            while (j < n && s[j] != '"') j += s[j] == '\\' ? 2 : 1;
            pc_str_append(o, s + i, j + 1 - i);
            i = j;
        } else if (c == '{' || c == '[') {
            char close = c == '{' ? '}' : ']';
            if (i + 1 < n && s[i + 1] == close) {
                pc_str_append(o, s + i, 2);
                i++;
                continue;
            }
            depth++;
            pc_str_append(o, &c, 1);
            pc_str_append(o, "\n", 1);
            for (int k = 0; k < depth; k++) pc_str_append(o, "  ", 2);
        } else if (c == '}' || c == ']') {
            depth--;
            pc_str_append(o, "\n", 1);
            for (int k = 0; k < depth; k++) pc_str_append(o, "  ", 2);
            pc_str_append(o, &c, 1);
        } else if (c == ',') {
            pc_str_append(o, ",\n", 2);
            for (int k = 0; k < depth; k++) pc_str_append(o, "  ", 2);
        } else if (c == ':') {
            pc_str_append(o, ": ", 2);
        } else {
            pc_str_append(o, &c, 1);
        }
    }
}

typedef struct {
    pc_str out;
    int n;
} eval_out;

static void on_result(const pc_query_result *r, void *ud)
{
    eval_out *o = ud;
    pc_arena *a = pc_arena_new(0);
    if (o->n++) pc_str_append(&o->out, ",", 1);
    pc_str_append(&o->out, "{\"expressions\":[", 16);
    for (size_t i = 0; i < r->nexprs; i++) {
        if (i) pc_str_append(&o->out, ",", 1);
        pc_str_append(&o->out, "{\"value\":", 9);
        pc_value_to_json(&o->out, r->exprs[i]);
        pc_str_append(&o->out, ",\"text\":", 8);
        pc_value_to_json(&o->out, pc_value_cstring(a, r->expr_texts[i]));
        pc_str_appendf(&o->out, ",\"location\":{\"row\":%d,\"col\":%d}}", r->expr_rows[i], r->expr_cols[i]);
    }
    pc_str_append(&o->out, "]", 1);
    if (r->nbindings) {
        pc_str_append(&o->out, ",\"bindings\":{", 13);
        for (size_t i = 0; i < r->nbindings; i++) {
            if (i) pc_str_append(&o->out, ",", 1);
            pc_value_to_json(&o->out, pc_value_cstring(a, r->names[i]));
            pc_str_append(&o->out, ":", 1);
            pc_value_to_json(&o->out, r->values[i]);
        }
        pc_str_append(&o->out, "}", 1);
    }
    pc_str_append(&o->out, "}", 1);
    pc_arena_free(a);
}

static int usage(const char *msg)
{
    if (msg) fprintf(stderr, "portcullis policy: %s\n", msg);
    fprintf(stderr,
            "usage: portcullis policy eval [--format json] [-d FILE|DIR]... [-i FILE] [--strict-builtin-errors] QUERY\n"
            "       portcullis policy test PATH...\n"
            "       portcullis policy check PATH...\n");
    return msg ? PC_EXIT_USAGE : PC_EXIT_OK;
}

static int cmd_eval(int argc, char **argv)
{
    loaded L = {.arena = pc_arena_new(0)};
    const char *input_path = NULL, *query = NULL;
    bool strict = false, v0 = false;
    int rc = PC_EXIT_FAILURE;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if ((!strcmp(a, "-d") || !strcmp(a, "--data")) && i + 1 < argc) {
            if (!load_path(&L, argv[++i], false, 0, NULL)) {
                pc_policy_error e = {0};
                snprintf(e.code, sizeof(e.code), "rego_parse_error");
                snprintf(e.message, sizeof(e.message), "%s", L.err);
                print_error_json(stderr, &e);
                goto out;
            }
        } else if ((!strcmp(a, "-i") || !strcmp(a, "--input")) && i + 1 < argc) {
            input_path = argv[++i];
        } else if ((!strcmp(a, "-f") || !strcmp(a, "--format")) && i + 1 < argc) {
            const char *fmt = argv[++i];
            if (strcmp(fmt, "json")) {
                rc = usage("only --format json is supported");
                goto out;
            }
        } else if (!strcmp(a, "--strict-builtin-errors")) {
            strict = true;
        } else if (!strcmp(a, "--v0-compatible")) {
            v0 = true;
        } else if (a[0] == '-' && a[1]) {
            rc = usage("unknown option");
            goto out;
        } else if (!query) {
            query = a;
        } else {
            rc = usage("more than one query");
            goto out;
        }
    }
    if (!query) {
        rc = usage("missing QUERY");
        goto out;
    }
    pc_policy_error err;
    pc_policy_set *ps = pc_policy_compile(L.mods, L.nmods, L.data, v0 ? PC_POLICY_V0 : 0, &err);
    if (!ps) {
        print_error_json(stderr, &err);
        goto out;
    }
    pc_eval_limits lim = {.strict_builtin_errors = strict, .max_steps = 100000000ull,
                          .max_bytes = 1024u * 1024u * 1024u};
    pc_eval *ev = pc_eval_new(ps, &lim);
    pc_policy_set_unref(ps);
    const pc_value *input = NULL;
    if (input_path) {
        size_t len;
        char *text = read_file(input_path, &len);
        char perr[256] = "";
        if (text) {
            input = ends_with(input_path, ".json")
                        ? pc_json_parse(pc_eval_input_arena(ev), text, len, perr, sizeof(perr))
                        : pc_yaml_parse(pc_eval_input_arena(ev), text, len, perr, sizeof(perr));
            free(text);
        } else {
            snprintf(perr, sizeof(perr), "%s", strerror(errno));
        }
        if (!input) {
            pc_policy_error e = {0};
            snprintf(e.code, sizeof(e.code), "rego_parse_error");
            snprintf(e.message, sizeof(e.message), "%s: %s", input_path, perr);
            print_error_json(stderr, &e);
            pc_eval_free(ev);
            goto out;
        }
    }
    eval_out o = {0};
    int n = pc_eval_query(ev, query, input, on_result, &o, &err);
    if (n < 0) {
        print_error_json(stderr, &err);
        pc_str_free(&o.out);
        pc_eval_free(ev);
        goto out;
    }
    if (n == 0) {
        fputs("{}\n", stdout);
    } else {
        pc_str compact = {0}, pr = {0};
        pc_str_appendf(&compact, "{\"result\":[%s]}", o.out.p);
        pretty(&pr, compact.p, compact.len);
        pc_str_append(&pr, "\n", 1);
        fwrite(pr.p, 1, pr.len, stdout);
        pc_str_free(&compact);
        pc_str_free(&pr);
    }
    pc_str_free(&o.out);
    pc_eval_free(ev);
    rc = PC_EXIT_OK;
out:
    loaded_free(&L);
    return rc;
}

static int cmd_check(int argc, char **argv)
{
    loaded L = {.arena = pc_arena_new(0)};
    int rc = PC_EXIT_OK;
    if (argc == 0) {
        loaded_free(&L);
        return usage("missing PATH");
    }
    for (int i = 0; i < argc; i++)
        if (!load_path(&L, argv[i], true, 0, NULL)) {
            fprintf(stderr, "%s\n", L.err);
            loaded_free(&L);
            return PC_EXIT_FAILURE;
        }
    pc_policy_error err;
    pc_policy_set *ps = pc_policy_compile(L.mods, L.nmods, NULL, 0, &err);
    if (!ps) {
        fprintf(stderr, "%s:%d:%d: %s: %s\n", err.file[0] ? err.file : "-", err.row, err.col, err.code,
                err.message);
        rc = PC_EXIT_FAILURE;
    }
    pc_policy_set_unref(ps);
    loaded_free(&L);
    return rc;
}

/* Collects data.<pkg>.test_* rule paths from module text (package + rule names). */
static void collect_tests(const pc_policy_module *m, char ***paths, size_t *n)
{
    const char *t = m->text;
    const char *pkg = strstr(t, "package ");
    if (!pkg) return;
    pkg += 8;
    size_t pl = strcspn(pkg, " \t\r\n#");
    const char *p = t;
    while ((p = strstr(p, "test_"))) {
        bool line_start = p == t || p[-1] == '\n';
        size_t nl = strspn(p, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_");
        if (line_start) {
            char buf[512];
            snprintf(buf, sizeof(buf), "data.%.*s.%.*s", (int)pl, pkg, (int)nl, p);
            bool dup = false;
            for (size_t i = 0; i < *n; i++)
                if (!strcmp((*paths)[i], buf)) dup = true;
            if (!dup) {
                *paths = pc_xrealloc(*paths, (*n + 1) * sizeof(char *));
                (*paths)[(*n)++] = pc_xstrdup(buf);
            }
        }
        p += nl;
    }
}

static int cmd_test(int argc, char **argv)
{
    loaded L = {.arena = pc_arena_new(0)};
    if (argc == 0) {
        loaded_free(&L);
        return usage("missing PATH");
    }
    for (int i = 0; i < argc; i++)
        if (!load_path(&L, argv[i], false, 0, NULL)) {
            fprintf(stderr, "%s\n", L.err);
            loaded_free(&L);
            return PC_EXIT_FAILURE;
        }
    pc_policy_error err;
    pc_policy_set *ps = pc_policy_compile(L.mods, L.nmods, L.data, 0, &err);
    if (!ps) {
        fprintf(stderr, "%s:%d:%d: %s: %s\n", err.file[0] ? err.file : "-", err.row, err.col, err.code,
                err.message);
        loaded_free(&L);
        return PC_EXIT_FAILURE;
    }
    char **paths = NULL;
    size_t np = 0;
    for (size_t i = 0; i < L.nmods; i++)
        if (ends_with(L.mods[i].name, "_test.rego")) collect_tests(&L.mods[i], &paths, &np);
    pc_eval *ev = pc_eval_new(ps, NULL);
    pc_policy_set_unref(ps);
    size_t pass = 0, failn = 0;
    for (size_t i = 0; i < np; i++) {
        const pc_value *v;
        uint64_t t0 = pc_now_mono_ns();
        int r = pc_eval_rule(ev, paths[i], NULL, &v, &err);
        double ms = (double)(pc_now_mono_ns() - t0) / 1e6;
        bool ok = r == 1 && !(v->kind == PC_BOOL && !v->u.b);
        if (r < 0)
            printf("%s: ERROR (%.3fms)\n  %s: %s\n", paths[i], ms, err.code, err.message);
        else
            printf("%s: %s (%.3fms)\n", paths[i], ok ? "PASS" : "FAIL", ms);
        if (ok)
            pass++;
        else
            failn++;
        pc_eval_reset(ev);
        free(paths[i]);
    }
    free(paths);
    pc_eval_free(ev);
    printf("--------------------------------------------------------------------------------\n");
    if (failn)
        printf("PASS: %zu/%zu\nFAIL: %zu/%zu\n", pass, np, failn, np);
    else
        printf("PASS: %zu/%zu\n", pass, np);
    loaded_free(&L);
    return failn ? PC_EXIT_FAILURE : PC_EXIT_OK;
}

int pc_cmd_policy(int argc, char **argv)
{
    /* argv[0] is "policy" */
    if (argc < 2) return usage("missing sub-command");
    const char *sub = argv[1];
    if (!strcmp(sub, "--help") || !strcmp(sub, "-h")) return usage(NULL);
    if (pc_cmd_wants_help(argc, argv)) return usage(NULL);
    if (!strcmp(sub, "eval")) return cmd_eval(argc - 2, argv + 2);
    if (!strcmp(sub, "check")) return cmd_check(argc - 2, argv + 2);
    if (!strcmp(sub, "test")) return cmd_test(argc - 2, argv + 2);
    return usage("unknown sub-command");
}
