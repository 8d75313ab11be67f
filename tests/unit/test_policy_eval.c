/* Engine API: native input, rule evaluation, budgets, builtin registration,
 * strict builtin errors, and one policy set shared by several threads. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "policy/builtins.h"
#include "policy/policy.h"

static pc_policy_set *compile1(const char *src, const char *data_json)
{
    pc_policy_module m = {"t.rego", src, strlen(src)};
    pc_policy_error err;
    pc_arena *a = pc_arena_new(0);
    const pc_value *data = data_json ? pc_json_parse(a, data_json, strlen(data_json), NULL, 0) : NULL;
    pc_policy_set *ps = pc_policy_compile(&m, 1, data, 0, &err);
    pc_arena_free(a);
    if (!ps) fail_msg("compile: %s: %s (%d:%d)", err.code, err.message, err.row, err.col);
    return ps;
}

static const pc_value *seed_input(pc_arena *a, int64_t last_minute)
{
    pc_obuf ac, b, in;
    pc_obuf_init(&ac, a);
    pc_obuf_put_str(&ac, "last_minute", pc_value_int(a, last_minute));
    pc_obuf_init(&b, a);
    pc_obuf_put_str(&b, "name", pc_value_cstring(a, "sensitive-bucket"));
    pc_obuf_put_str(&b, "access_count", pc_obuf_object(&ac));
    pc_obuf_init(&in, a);
    pc_obuf_put_str(&in, "bucket", pc_obuf_object(&b));
    return pc_obuf_object(&in);
}

static const char *k_seed = "package formal.v2\n"
                            "pre_request := {\"action\": \"block\"} if {\n"
                            "  input.bucket.name == \"sensitive-bucket\"\n"
                            "  input.bucket.access_count.last_minute > 5\n"
                            "}\n";

static void test_rule_with_native_input(void **st)
{
    (void)st;
    pc_policy_set *ps = compile1(k_seed, NULL);
    assert_true(pc_policy_has_rule(ps, "data.formal.v2.pre_request"));
    assert_false(pc_policy_has_rule(ps, "data.formal.v2.session"));
    pc_eval *ev = pc_eval_new(ps, NULL);
    pc_policy_set_unref(ps); /* the evaluator keeps its own reference */
    pc_policy_error err;
    const pc_value *out;
    for (int64_t n = 4; n <= 7; n++) {
        int rc = pc_eval_rule(ev, "data.formal.v2.pre_request", seed_input(pc_eval_input_arena(ev), n), &out, &err);
        if (n > 5) {
            assert_int_equal(rc, 1);
            const pc_value *action = pc_value_object_get_str(out, "action", 6);
            assert_non_null(action);
            assert_string_equal(action->u.s, "block");
        } else {
            assert_int_equal(rc, 0);
        }
        pc_eval_reset(ev);
    }
    /* missing input: undefined, not an error */
    assert_int_equal(pc_eval_rule(ev, "data.formal.v2.pre_request", NULL, &out, &err), 0);
    pc_eval_free(ev);
}

/* A rule resolved once evaluates exactly as its path does. */
static void test_rule_handle(void **st)
{
    (void)st;
    pc_policy_set *ps = compile1(k_seed, "{\"formal\": {\"limits\": {\"x\": 1}}}");
    const pc_policy_rule *pre = pc_policy_rule_find(ps, "data.formal.v2.pre_request");
    assert_non_null(pre);
    assert_null(pc_policy_rule_find(ps, "data.formal.v2.session"));
    assert_null(pc_policy_rule_find(ps, "data.formal.v2"));          /* a package, no rule */
    assert_null(pc_policy_rule_find(ps, "data.formal.limits.x"));    /* base data, no rule */
    assert_null(pc_policy_rule_find(ps, "formal.v2.pre_request"));
    pc_eval *ev = pc_eval_new(ps, NULL);
    pc_policy_error err;
    for (int64_t n = 4; n <= 7; n++) {
        const pc_value *by_path, *by_ref;
        pc_arena *a = pc_eval_input_arena(ev);
        const pc_value *in = seed_input(a, n);
        int rp = pc_eval_rule(ev, "data.formal.v2.pre_request", in, &by_path, &err);
        int rr = pc_eval_rule_ref(ev, pre, in, &by_ref, &err);
        assert_int_equal(rp, n > 5 ? 1 : 0);
        assert_int_equal(rr, rp);
        if (rp == 1) assert_true(pc_value_equal(by_path, by_ref));
        else assert_null(by_ref);
        pc_eval_reset(ev);
    }
    /* the budget still applies */
    pc_policy_set *loop = compile1("package p\n"
                                   "r := count([x | some x in numbers.range(1, 100000)])\n",
                                   NULL);
    pc_eval_limits lim = {.max_steps = 1000};
    pc_eval *lev = pc_eval_new(loop, &lim);
    const pc_value *out;
    assert_int_equal(pc_eval_rule_ref(lev, pc_policy_rule_find(loop, "data.p.r"), NULL, &out, &err), -1);
    assert_true(err.code[0] != '\0');
    pc_eval_free(lev);
    pc_policy_set_unref(loop);
    pc_eval_free(ev);
    pc_policy_set_unref(ps);
}

static void test_budgets(void **st)
{
    (void)st;
    pc_policy_set *ps = compile1("package t\n"
                                 "spin := count([x | some x in numbers.range(1, 200000)])\n"
                                 "f(x) := y if { y := x + 1 }\n",
                                 NULL);
    pc_eval_limits small_steps = {.max_steps = 10000};
    pc_eval *ev = pc_eval_new(ps, &small_steps);
    pc_policy_error err;
    const pc_value *out;
    assert_int_equal(pc_eval_rule(ev, "data.t.spin", NULL, &out, &err), -1);
    assert_string_equal(err.code, "eval_budget_error");
    pc_eval_reset(ev);
    pc_eval_free(ev);
    pc_eval_limits small_mem = {.max_bytes = 1024 * 1024};
    ev = pc_eval_new(ps, &small_mem);
    assert_int_equal(pc_eval_rule(ev, "data.t.spin", NULL, &out, &err), -1);
    assert_string_equal(err.code, "eval_memory_error");
    pc_eval_reset(ev);
    /* the same evaluator works again after a reset */
    assert_int_equal(pc_eval_query(ev, "x := data.t.f(1)", NULL, NULL, NULL, &err), 1);
    pc_eval_free(ev);
    pc_policy_set_unref(ps);
}

static bool b_test_twice(pc_eval_ctx *ctx, const pc_value *const *args, size_t nargs, const pc_value **out)
{
    (void)nargs;
    int64_t i;
    if (!pc_arg_int(ctx, args, 0, &i)) return false;
    if (i < 0) return pc_builtin_error(ctx, "negative: %lld", (long long)i);
    *out = pc_value_int(pc_builtin_arena(ctx), 2 * i);
    return *out != NULL || pc_builtin_oom(ctx);
}

typedef struct {
    int n;
    const pc_value *first;
} rows;

static void on_row(const pc_query_result *r, void *ud)
{
    rows *x = ud;
    if (x->n++ == 0 && r->nbindings) x->first = r->values[0];
}

static void test_builtin_registration_and_strict(void **st)
{
    (void)st;
    pc_policy_init();
    pc_builtin_register("test.twice", 1, b_test_twice, 0);
    const pc_builtin *bi = pc_builtin_lookup("test.twice", 10);
    assert_non_null(bi);
    assert_int_equal(bi->arity, 1);
    pc_policy_set *ps = compile1("package t\nok := test.twice(21)\nbad := test.twice(-1)\nwrong := test.twice(\"x\")\n", NULL);
    pc_eval *ev = pc_eval_new(ps, NULL);
    pc_policy_error err;
    const pc_value *out;
    int64_t v;
    assert_int_equal(pc_eval_rule(ev, "data.t.ok", NULL, &out, &err), 1);
    assert_true(pc_value_get_int(out, &v));
    assert_int_equal(v, 42);
    /* not strict: a builtin error makes the call undefined */
    assert_int_equal(pc_eval_rule(ev, "data.t.bad", NULL, &out, &err), 0);
    pc_eval_free(ev);
    pc_eval_limits strict = {.strict_builtin_errors = true};
    ev = pc_eval_new(ps, &strict);
    assert_int_equal(pc_eval_rule(ev, "data.t.bad", NULL, &out, &err), -1);
    assert_string_equal(err.code, "eval_builtin_error");
    assert_string_equal(err.message, "test.twice: negative: -1");
    assert_int_equal(pc_eval_rule(ev, "data.t.wrong", NULL, &out, &err), -1);
    assert_string_equal(err.code, "eval_type_error");
    assert_string_equal(err.message, "test.twice: operand 1 must be number but got string");
    /* compile errors carry a location */
    pc_policy_module m = {"x.rego", "package t\np := nope(1)\n", 22};
    assert_null(pc_policy_compile(&m, 1, NULL, 0, &err));
    assert_string_equal(err.code, "rego_type_error");
    assert_int_equal(err.row, 2);
    rows r = {0};
    assert_int_equal(pc_eval_query(ev, "x := test.twice(4)", NULL, on_row, &r, &err), 1);
    assert_int_equal(r.n, 1);
    assert_true(pc_value_get_int(r.first, &v));
    assert_int_equal(v, 8);
    pc_eval_free(ev);
    pc_policy_set_unref(ps);
}

typedef struct {
    pc_policy_set *ps;
    int blocked;
} worker_arg;

static void *worker(void *p)
{
    worker_arg *w = p;
    pc_eval *ev = pc_eval_new(w->ps, NULL);
    pc_policy_error err;
    const pc_value *out;
    for (int i = 0; i < 2000; i++) {
        if (pc_eval_rule(ev, "data.formal.v2.pre_request", seed_input(pc_eval_input_arena(ev), i % 10), &out, &err) == 1)
            w->blocked++;
        if (i % 100 == 0) (void)pc_eval_query(ev, "x := data.formal.v2.pre_request", NULL, NULL, NULL, &err);
        pc_eval_reset(ev);
    }
    pc_eval_free(ev);
    return NULL;
}

static void test_shared_between_threads(void **st)
{
    (void)st;
    pc_policy_set *ps = compile1(k_seed, NULL);
    pthread_t th[4];
    worker_arg args[4];
    for (int i = 0; i < 4; i++) {
        args[i] = (worker_arg){ps, 0};
        assert_int_equal(pthread_create(&th[i], NULL, worker, &args[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(args[i].blocked, 800); /* last_minute 6..9 of every 10 */
    }
    pc_policy_set_unref(ps);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rule_with_native_input),
        cmocka_unit_test(test_rule_handle),
        cmocka_unit_test(test_budgets),
        cmocka_unit_test(test_builtin_registration_and_strict),
        cmocka_unit_test(test_shared_between_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
