/* Rego lexer and parser: accepted syntax, and rejected syntax with its location. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "policy/ast.h"

static pc_module *parse(const char *src, pc_policy_error *err)
{
    static pc_arena *a;
    if (!a) a = pc_arena_new(0);
    memset(err, 0, sizeof(*err));
    return pc__parse_module(a, pc__intern_new(a), "t.rego", src, strlen(src), false, err);
}

static void test_accepts(void **st)
{
    (void)st;
    const char *ok[] = {
        "package a.b\nimport rego.v1\np := 1",
        "package a\nimport data.x.y as z\nimport input.q\np if { z == q }",
        "package a\np contains x if { some x in [1, 2] }",
        "package a\nq[k] := v if { some k, v in {\"a\": 1} }",
        "package a\nf(x, [y, _]) := x + y\nf(x, y) := 0 if x > 1",
        "package a\ndefault allow := false\nallow if input.user == \"alice\"",
        "package a\np := 1 if false else := 2 if true else := 3",
        "package a\np if { every x in [1] { x > 0 } }",
        "package a\np if { not q; x := {y | y := [1][_]}; z := {k: v | some k, v in {\"a\": 1}} }",
        "package a\np if { x := [y | y := 1]; s := {1, 2} | {3}; t := s & {1}; u := s - {1} }",
        "package a\np if { x := `raw\nstring`; y := \"esc\\t\\u00e9\" }",
        "package a\np if { x := -1.5e3; y := 1 + 2 * 3 % 4 / 5 }",
        "package a\np if { data.x.y with input as {} with data.q as 1 }",
        "package a\np if { x = set(); y := {} }",
        "package a\nas.foo := 1\nfoo.every := 2",
        "package a\np if { contains(\"abc\", \"b\") }  # comment\n# other",
        "package a\np.q[r].s := 1 if r := \"x\"",
        "package a\np if { 1 in [1]; 0, 1 in [1] }",
    };
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        pc_policy_error err;
        if (!parse(ok[i], &err)) fail_msg("rejected #%zu: %s (%d:%d)", i, err.message, err.row, err.col);
    }
}

static void test_structure(void **st)
{
    (void)st;
    pc_policy_error err;
    pc_module *m = parse("package x.y\n\np contains v if {\n  v := 1\n}\nq[k] := 2 if k := \"a\"\nf(a) := a\n", &err);
    assert_non_null(m);
    assert_int_equal(m->pkg->n, 3);
    assert_int_equal(m->nrules, 3);
    assert_int_equal(m->rules[0]->kind, R_PSET);
    assert_int_equal(m->rules[0]->loc.row, 3);
    assert_int_equal(m->rules[1]->kind, R_POBJ);
    assert_int_equal(m->rules[2]->kind, R_FUNC);
    assert_int_equal(m->rules[2]->nargs, 1);
    assert_non_null(m->rules[0]->body);
    assert_int_equal(m->rules[0]->body->n, 1);
    assert_int_equal(m->rules[0]->body->exprs[0]->kind, E_ASSIGN);
}

static void test_rejects_with_location(void **st)
{
    (void)st;
    struct {
        const char *src;
        int row, col;
    } bad[] = {
        {"p := 1", 1, 1},                           /* no package */
        {"package a\np := ", 2, 6},                 /* eof */
        {"package a\np if { x := \"abc }", 2, 13},  /* unterminated string */
        {"package a\np if {\n  x := 1 +\n}", 4, 1}, /* missing operand */
        {"package a\np if { }", 2, 8},              /* empty body */
        {"package a\np if { x ! y }", 2, 10},       /* illegal token */
        {"package a\ndefault p if { true }", 2, 1},
        {"package a\np := 1\nimport data.x", 3, 1},
        {"package a\np if { x := 1 y := 2 }", 2, 15},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        pc_policy_error err;
        if (parse(bad[i].src, &err)) fail_msg("accepted #%zu", i);
        assert_string_equal(err.code, "rego_parse_error");
        assert_string_equal(err.file, "t.rego");
        if (err.row != bad[i].row || err.col != bad[i].col)
            fail_msg("#%zu: %s at %d:%d, want %d:%d", i, err.message, err.row, err.col, bad[i].row, bad[i].col);
    }
}

static void test_query(void **st)
{
    (void)st;
    pc_arena *a = pc_arena_new(0);
    pc_policy_error err;
    const char *q = "x := 1; y = x\nz := [x, y]";
    pc_body *b = pc__parse_query(a, pc__intern_new(a), q, strlen(q), &err);
    assert_non_null(b);
    assert_int_equal(b->n, 3);
    assert_int_equal(b->exprs[2]->loc.row, 2);
    assert_null(pc__parse_query(a, pc__intern_new(a), "x :=", 4, &err));
    pc_arena_free(a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_accepts),
        cmocka_unit_test(test_structure),
        cmocka_unit_test(test_rejects_with_location),
        cmocka_unit_test(test_query),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
