/*
 * Golden policy cases: tests/policy/golden/<case>/ holds *.rego modules,
 * optional input.json and data.json, query.txt and expected.json — either the
 * list of binding sets (compared as a set, values in Rego term order) or
 * {"error": CODE} ("budget" matches either budget error).
 */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "policy/policy.h"

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *p = malloc((size_t)n + 1);
    assert_non_null(p);
    assert_int_equal(fread(p, 1, (size_t)n, f), (size_t)n);
    p[n] = 0;
    fclose(f);
    if (len) *len = (size_t)n;
    return p;
}

typedef struct {
    pc_arena *a;
    pc_vbuf rows;
} rows_t;

static void on_row(const pc_query_result *r, void *ud)
{
    rows_t *rows = ud;
    /* like OPA's own harness: a top-level expression that is false fails */
    for (size_t i = 0; i < r->nexprs; i++)
        if (r->exprs[i]->kind == PC_BOOL && !r->exprs[i]->u.b) return;
    pc_obuf ob;
    pc_obuf_init(&ob, rows->a);
    for (size_t i = 0; i < r->nbindings; i++) pc_obuf_put_str(&ob, r->names[i], r->values[i]);
    pc_vbuf_push(&rows->rows, pc_obuf_object(&ob));
}

/* Sets print as sorted arrays: compare through JSON text. */
static const pc_value *normalize(pc_arena *a, const pc_value *v)
{
    pc_str s = {0};
    pc_value_to_json(&s, v);
    const pc_value *r = pc_json_parse(a, s.p, s.len, NULL, 0);
    pc_str_free(&s);
    return r;
}

static void run_case(const char *dir, const char *name)
{
    char path[4096];
    pc_policy_module mods[8];
    size_t nmods = 0;
    DIR *d = opendir(dir);
    assert_non_null(d);
    struct dirent *de;
    while ((de = readdir(d))) {
        size_t l = strlen(de->d_name);
        if (l > 5 && strcmp(de->d_name + l - 5, ".rego") == 0 && nmods < 8) {
            snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
            size_t len;
            char *text = slurp(path, &len);
            mods[nmods++] = (pc_policy_module){strdup(de->d_name), text, len};
        }
    }
    closedir(d);
    pc_arena *a = pc_arena_new(0);
    size_t len;
    snprintf(path, sizeof(path), "%s/data.json", dir);
    char *data_text = slurp(path, &len);
    const pc_value *data = data_text ? pc_json_parse(a, data_text, len, NULL, 0) : NULL;
    snprintf(path, sizeof(path), "%s/expected.json", dir);
    char *exp_text = slurp(path, &len);
    assert_non_null(exp_text);
    const pc_value *expected = pc_json_parse(a, exp_text, len, NULL, 0);
    assert_non_null(expected);
    snprintf(path, sizeof(path), "%s/query.txt", dir);
    char *query = slurp(path, NULL);
    assert_non_null(query);

    pc_policy_error err;
    const char *got_error = NULL;
    rows_t rows = {.a = a};
    pc_vbuf_init(&rows.rows, a);
    pc_policy_set *ps = pc_policy_compile(mods, nmods, data, 0, &err);
    pc_eval *ev = NULL;
    if (!ps) {
        got_error = err.code;
    } else {
        pc_eval_limits lim = {.max_steps = 2000000, .max_bytes = 64u << 20};
        ev = pc_eval_new(ps, &lim);
        pc_policy_set_unref(ps);
        snprintf(path, sizeof(path), "%s/input.json", dir);
        char *in_text = slurp(path, &len);
        const pc_value *input = in_text ? pc_json_parse(pc_eval_input_arena(ev), in_text, len, NULL, 0) : NULL;
        free(in_text);
        if (pc_eval_query(ev, query, input, on_row, &rows, &err) < 0) got_error = err.code;
    }
    const pc_value *want_err = expected->kind == PC_OBJECT ? pc_value_object_get_str(expected, "error", 5) : NULL;
    if (want_err) {
        if (!got_error) fail_msg("%s: want error %s, got a result", name, want_err->u.s);
        bool ok = strcmp(got_error, want_err->u.s) == 0 ||
                  (strcmp(want_err->u.s, "budget") == 0 &&
                   (strcmp(got_error, "eval_budget_error") == 0 || strcmp(got_error, "eval_memory_error") == 0));
        if (!ok) fail_msg("%s: want error %s, got %s: %s", name, want_err->u.s, got_error, err.message);
    } else {
        if (got_error) fail_msg("%s: unexpected error %s: %s", name, got_error, err.message);
        const pc_value *got = normalize(a, pc_vbuf_set(&rows.rows));
        const pc_value *want = pc_value_set(a, expected->u.items, expected->len);
        if (!pc_value_equal(got, normalize(a, want))) {
            pc_str s = {0};
            pc_value_to_json(&s, got);
            fail_msg("%s: got %s", name, s.p);
        }
    }
    pc_eval_free(ev);
    for (size_t i = 0; i < nmods; i++) {
        free((char *)mods[i].name);
        free((char *)mods[i].text);
    }
    free(data_text);
    free(exp_text);
    free(query);
    pc_arena_free(a);
}

static void test_golden(void **st)
{
    (void)st;
    const char *src = getenv("PC_SOURCE_DIR");
    char root[512];
    snprintf(root, sizeof(root), "%s/tests/policy/golden", src ? src : ".");
    DIR *d = opendir(root);
    assert_non_null(d);
    struct dirent *de;
    int n = 0;
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.') continue;
        char dir[2048];
        snprintf(dir, sizeof(dir), "%s/%s", root, de->d_name);
        run_case(dir, de->d_name);
        n++;
    }
    closedir(d);
    assert_true(n >= 10);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_golden)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
