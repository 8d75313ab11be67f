/*
 * The builtins_ext adapters end to end through the engine: value conversion
 * in and out, OPA's error texts, and strings.render_template.
 */
#include "plib_test.h"

#include "policy/builtins.h"
#include "policy/policy.h"

static pc_eval *ev;

static int setup(void **state)
{
    (void)state;
    /* a strong reference: links the extended set into this test program */
    pc__builtins_ext_register();
    pc_policy_init();
    static const char mod[] = "package t\nimport rego.v1\nx := 1\n";
    pc_policy_module m = {"t.rego", mod, sizeof(mod) - 1};
    pc_policy_error err;
    pc_policy_set *ps = pc_policy_compile(&m, 1, NULL, 0, &err);
    if (!ps) fail_msg("compile: %s", err.message);
    pc_eval_limits lim = {.strict_builtin_errors = true};
    ev = pc_eval_new(ps, &lim);
    pc_policy_set_unref(ps);
    return ev ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    pc_eval_free(ev);
    return 0;
}

typedef struct {
    char json[4096];
    int n;
} got_t;

static void on_result(const pc_query_result *r, void *ud)
{
    got_t *g = ud;
    pc_str s = {0};
    for (size_t i = 0; i < r->nbindings; i++)
        if (!strcmp(r->names[i], "x")) pc_value_to_json(&s, r->values[i]);
    snprintf(g->json, sizeof(g->json), "%.*s", (int)s.len, s.p ? s.p : "");
    pc_str_free(&s);
    g->n++;
}

static void eval_is(const char *query, const char *want)
{
    got_t g = {.n = 0};
    pc_policy_error err;
    int rc = pc_eval_query(ev, query, NULL, on_result, &g, &err);
    if (rc < 0) fail_msg("%s: %s: %s", query, err.code, err.message);
    if (rc != 1) fail_msg("%s: %d results", query, rc);
    if (strcmp(g.json, want) != 0) fail_msg("%s: got %s want %s", query, g.json, want);
    pc_eval_reset(ev);
}

static void eval_err(const char *query, const char *code, const char *msg)
{
    got_t g = {.n = 0};
    pc_policy_error err;
    int rc = pc_eval_query(ev, query, NULL, on_result, &g, &err);
    if (rc >= 0) fail_msg("%s: expected an error, got %s", query, g.json);
    assert_string_equal(err.code, code);
    if (!strstr(err.message, msg)) fail_msg("%s: message %s lacks %s", query, err.message, msg);
    pc_eval_reset(ev);
}

static void test_values(void **state)
{
    (void)state;
    /* OPA keeps the exact decimal text (json.Number) */
    eval_is("x := units.parse(\"1.1Ki\")", "1126.4000000000");
    eval_is("x := units.parse_bytes(\"10Ei\")", "11529215046068469760");
    eval_is("x := sprintf(\"%s|%d|%v|%.2f\", [\"a\", 7, [1, \"b\"], 3.14159])", "\"a|7|[1, \\\"b\\\"]|3.14\"");
    eval_is("x := format_int(18446744073709551617, 16)", "\"10000000000000001\"");
    eval_is("x := regex.find_all_string_submatch_n(\"a(x*)b\", \"-ab-axb-\", -1)", "[[\"ab\",\"\"],[\"axb\",\"x\"]]");
    eval_is("x := glob.match(\"*.github.com\", [\".\"], \"api.github.com\")", "true");
    eval_is("x := time.date([1517814000000000000, \"America/Los_Angeles\"])", "[2018,2,4]");
    eval_is("x := net.cidr_merge([\"192.0.128.0/24\", \"192.0.129.0/24\"])", "[\"192.0.128.0/23\"]");
    eval_is("x := net.cidr_contains_matches({\"a\": \"10.0.0.0/8\"}, [\"10.1.1.1\", \"11.0.0.1\"])", "[[\"a\",0]]");
    eval_is("x := urlquery.decode_object(\"a=1&b=2&a=3\")", "{\"a\":[\"1\",\"3\"],\"b\":[\"2\"]}");
    eval_is("x := json.remove({\"a\": {\"b\": 1, \"c\": 2}}, [\"a/b\"])", "{\"a\":{\"c\":2}}");
    eval_is("x := json.patch({\"a\": [1]}, [{\"op\": \"add\", \"path\": \"/a/-\", \"value\": 2}])", "{\"a\":[1,2]}");
    eval_is("x := uuid.parse(\"00000000-0000-4000-8000-000000000000\")", "{\"variant\":\"RFC4122\",\"version\":4}");
    eval_is("x := yaml.unmarshal(\"a: [1, yes]\")", "{\"a\":[1,true]}");
    eval_is("x := io.jwt.verify_hs256(\"eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJ1c2VyIjoiYWxpY2UiLCJhenAiOiJhbGljZSIsInN1Ym9yZGluYXRlcyI6W10sImhyIjpmYWxzZX0.rz3jTY033z-NrKfwrK89_dcLF7TN4gwCMj-fVBDyLoM\", \"secret\")", "true");
    eval_is("x := uuid.rfc4122(\"k\") == uuid.rfc4122(\"k\")", "true");
}

static void test_errors(void **state)
{
    (void)state;
    eval_err("x := units.parse(\"100 k\")", "eval_builtin_error", "units.parse: spaces not allowed in resource strings");
    eval_err("x := net.cidr_expand(\"192.168.1.1/33\")", "eval_builtin_error", "net.cidr_expand: invalid CIDR address: 192.168.1.1/33");
    eval_err("x := semver.compare(\"1\", \"1.0.0\")", "eval_builtin_error", "operand 1: string \"1\" is not a valid SemVer");
    eval_err("x := strings.any_prefix_match(1, \"a\")", "eval_type_error", "operand 1 must be one of {string, set, array} but got number");
    eval_err("x := time.parse_rfc3339_ns(\"2262-04-11T23:47:16.854775808-00:00\")", "eval_builtin_error", "time outside of valid range");
    eval_err("x := io.jwt.decode(\"abc\")", "eval_builtin_error", "encoded JWT had no period separators");
}

static void test_template(void **state)
{
    (void)state;
    eval_is("x := strings.render_template(\"{{.test}}\", {\"test\": 2023})", "\"2023\"");
    eval_is("x := strings.render_template(\"{{range $i, $n := .names}}{{if $i}},{{end}}hi {{$n}}{{end}}\", {\"names\": [\"a\", \"b\"]})",
            "\"hi a,hi b\"");
    eval_is("x := strings.render_template(\"t {{.foo}} {{.baz}}\", {\"baz\": 1})", "\"t \\u003cundefined\\u003e 1\"");
    eval_is("x := strings.render_template(\"{{- if eq .a 1 }} one {{- else if gt .a 1 -}} many {{- else}}none{{end -}}\", {\"a\": 5})",
            "\"many\"");
    eval_is("x := strings.render_template(\"{{$x := len .l}}{{printf \\\"%03d\\\" $x}} {{index .l 1}} {{.m | len}}\", {\"l\": [4, 5], \"m\": {\"k\": 1}})",
            "\"002 5 1\"");
    eval_is("x := strings.render_template(\"{{with .o}}{{.k}}{{end}}{{/* c */}}{{range .e}}x{{else}}empty{{end}}\", {\"o\": {\"k\": \"v\"}, \"e\": []})",
            "\"vempty\"");
    eval_err("x := strings.render_template(\"{{if .a}}\", {\"a\": 1})", "eval_builtin_error", "template: unexpected EOF");
    eval_err("x := strings.render_template(\"{{- (}}\", {})", "eval_builtin_error", "template: unclosed left paren");
    eval_is("x := strings.render_template(\"{{(.l | len)}}\", {\"l\": [1, 2, 3]})", "\"3\"");
}

static void test_schema(void **state)
{
    (void)state;
    eval_is("x := json.match_schema({\"id\": 5}, {\"properties\": {\"id\": {\"type\": \"integer\"}}, \"required\": [\"id\"]})",
            "[true,[]]");
    eval_is("x := json.match_schema({\"id\": \"foo\"}, {\"properties\": {\"id\": {\"type\": \"integer\"}}})",
            "[false,[{\"desc\":\"Invalid type. Expected: integer, given: string\",\"error\":\"id: Invalid type. Expected: integer, given: string\",\"field\":\"id\",\"type\":\"invalid_type\"}]]");
    eval_is("x := json.match_schema({}, {\"required\": [\"a\"]})[1][0].error", "\"(root): a is required\"");
    eval_is("x := json.match_schema({\"a\": [1, 1]}, {\"properties\": {\"a\": {\"uniqueItems\": true, \"maxItems\": 1}}})[1][0].desc",
            "\"Array must have at most 1 items\"");
    eval_is("x := json.match_schema(\"{\\\"n\\\": 7}\", {\"$defs\": {\"small\": {\"maximum\": 5}}, \"properties\": {\"n\": {\"$ref\": \"#/$defs/small\"}}})[1][0].desc",
            "\"Must be less than or equal to 5\"");
    eval_is("x := json.match_schema({\"s\": \"ab\", \"z\": 1}, {\"additionalProperties\": false, \"properties\": {\"s\": {\"pattern\": \"^a+$\"}}})[1][0].desc",
            "\"Does not match pattern '^a+$'\"");
    eval_is("x := json.verify_schema({\"type\": \"boolean\"})", "[true,null]");
    eval_is("x := json.verify_schema(\"{\\\"type\\\": \\\"nope\\\"}\")[0]", "false");
    eval_err("x := json.match_schema({}, {\"type\": \"nope\"})", "eval_builtin_error", "has a primitive type that is NOT VALID");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_values),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_template),
        cmocka_unit_test(test_schema),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
