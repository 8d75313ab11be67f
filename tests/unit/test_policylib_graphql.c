/* GraphQL helpers: gqlparser-shaped ASTs, error texts, schema and query validation. */
#include "plib_test.h"

#include "policy/lib/graphql.h"

static void query_is(const char *q, const char *want)
{
    char err[512];
    char *j = pc_plib_graphql_parse_query(q, strlen(q), err, sizeof(err));
    if (!j) fail_msg("%s: %s", q, err);
    if (strcmp(j, want) != 0) fail_msg("%s:\n got %s\nwant %s", q, j, want);
    free(j);
}

static void query_err(const char *q, const char *want)
{
    char err[512];
    char *j = pc_plib_graphql_parse_query(q, strlen(q), err, sizeof(err));
    if (j) fail_msg("%s: expected an error, got %s", q, j);
    assert_string_equal(err, want);
}

static void test_query(void **state)
{
    (void)state;
    query_is("{ f(id: [1,2]) }",
             "{\"Operations\":[{\"Operation\":\"query\",\"Name\":\"\",\"SelectionSet\":[{\"Alias\":\"f\",\"Name\":\"f\","
             "\"Arguments\":[{\"Name\":\"id\",\"Value\":{\"Children\":[{\"Name\":\"\",\"Value\":{\"ExpectedTypeHasDefault\":false,"
             "\"Kind\":1,\"Raw\":\"1\"}},{\"Name\":\"\",\"Value\":{\"ExpectedTypeHasDefault\":false,\"Kind\":1,\"Raw\":\"2\"}}],"
             "\"ExpectedTypeHasDefault\":false,\"Kind\":8,\"Raw\":\"\"}}]}]}]}");
    query_is("query Q($v: [Int!]! = [1]) { a: b @skip(if: true) { ... on T { c } ...F } } fragment F on T { d }",
             "{\"Operations\":[{\"Operation\":\"query\",\"Name\":\"Q\",\"VariableDefinitions\":[{\"Variable\":\"v\",\"Type\":"
             "{\"Elem\":{\"NamedType\":\"Int\",\"NonNull\":true},\"NamedType\":\"\",\"NonNull\":true},\"DefaultValue\":{\"Children\":"
             "[{\"Name\":\"\",\"Value\":{\"ExpectedTypeHasDefault\":false,\"Kind\":1,\"Raw\":\"1\"}}],\"ExpectedTypeHasDefault\":false,"
             "\"Kind\":8,\"Raw\":\"\"},\"Used\":false}],\"SelectionSet\":[{\"Alias\":\"a\",\"Name\":\"b\",\"Directives\":[{\"Name\":"
             "\"skip\",\"Arguments\":[{\"Name\":\"if\",\"Value\":{\"ExpectedTypeHasDefault\":false,\"Kind\":5,\"Raw\":\"true\"}}],"
             "\"Location\":\"\"}],\"SelectionSet\":[{\"TypeCondition\":\"T\",\"SelectionSet\":[{\"Alias\":\"c\",\"Name\":\"c\"}]},"
             "{\"Name\":\"F\"}]}]}],\"Fragments\":[{\"Name\":\"F\",\"TypeCondition\":\"T\",\"SelectionSet\":[{\"Alias\":\"d\","
             "\"Name\":\"d\"}]}]}");
    query_err("{", "Expected Name, found <EOF> in GraphQL string at location 1:2");
    query_err("notanoperation Foo { field }", "Unexpected Name \"notanoperation\" in GraphQL string at location 1:1");
    query_err("{ ...MissingOn }\nfragment MissingOn Type",
              "Expected \"on\", found Name \"Type\" in GraphQL string at location 2:20");
    query_err("{...{__typename{...{}}}}", "expected at least one definition, found } in GraphQL string at location 1:21");
    query_err("query Foo($x: C = { a: [ $var ] }) { f }", "Unexpected $ in GraphQL string at location 1:26");
}

static void test_schema(void **state)
{
    (void)state;
    char err[512];
    const char *s = "\"\"\"\n  Doc\n  \"\"\"\ntype Hello implements & A & B @deprecated { world(flag: Boolean = true): [String!] }";
    char *j = pc_plib_graphql_parse_schema(s, strlen(s), err, sizeof(err));
    assert_non_null(j);
    assert_non_null(strstr(j, "\"Description\":\"Doc\""));
    assert_non_null(strstr(j, "\"Interfaces\":[\"A\",\"B\"]"));
    free(j);
    assert_null(pc_plib_graphql_parse_schema("union Hello = Wo || Rld", 23, err, sizeof(err)));
    assert_string_equal(err, "Expected Name, found | in GraphQL string at location 1:19");
    assert_null(pc_plib_graphql_parse_schema("  \"D\"\n  extend type H { a: Int }", 29, err, sizeof(err)));
    assert_string_equal(err, "Unexpected String \"D\" in GraphQL string at location 1:4");

#define VALID(x) pc_plib_graphql_schema_valid(x, strlen(x), err, sizeof(err))
    assert_true(VALID("type Query { a: Int } enum E { X } input I { e: E } union U = Query"));
    assert_true(VALID("extend type User { id: ID! } union U = User extend type Query { u: U }"));
    assert_false(VALID("type Hello implements World { field: String }"));
    assert_false(VALID("schema { query: Query }"));
    assert_false(VALID("type P { f: [P] } input I { p: P }"));
    assert_false(VALID("interface IA { id: ID! } interface IIA implements IA { id: ID! } type A implements IIA { id: ID! }"));
    assert_false(VALID("extend scalar Foo @deprecated"));
}

static int validate(const char *q, const char *s, char *err, size_t errlen)
{
    char *qa = pc__graphql_parse_query_ex(q, strlen(q), true, err, errlen);
    char *sa = pc_plib_graphql_parse_schema(s, strlen(s), err, errlen);
    assert_non_null(qa);
    assert_non_null(sa);
    int rc = pc_plib_graphql_validate(qa, strlen(qa), sa, strlen(sa), err, errlen);
    free(qa);
    free(sa);
    return rc;
}

static void test_validate(void **state)
{
    (void)state;
    char err[512];
    const char *schema = "type Query { a(n: Int!): R! b: String } type R { id: String } type Mutation { x: String! }";
    assert_int_equal(validate("{ a(n: 1) { id } b __typename }", schema, err, sizeof(err)), 1);
    assert_int_equal(validate("query Q {\n  a { id }\n}", schema, err, sizeof(err)), 0);
    assert_string_equal(err, "Field \"a\" argument \"n\" of type \"Int!\" is required, but it was not provided in GraphQL string at location 2:3");
    assert_int_equal(validate("mutation{x(a:b)}", schema, err, sizeof(err)), 0);
    assert_int_equal(validate("{ c }", schema, err, sizeof(err)), 0);
    assert_int_equal(validate("{ a(n: 1) }", schema, err, sizeof(err)), 0);
    assert_int_equal(validate("query($f: Boolean!) { ...F } fragment F on Query { b @include(if: $f) }", schema, err, sizeof(err)), 1);
    assert_int_equal(validate("{ b }", "type Query { a: Nope }", err, sizeof(err)), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_query),
        cmocka_unit_test(test_schema),
        cmocka_unit_test(test_validate),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
