/* YAML <-> JSON helpers (go-yaml / sigs.k8s.io/yaml behaviour). */
#include "plib_test.h"

#include "policy/lib/yamlconv.h"

static void y2j(const char *y, const char *want)
{
    char err[256];
    size_t n;
    char *j = pc_plib_yaml_to_json(y, strlen(y), &n, err, sizeof(err));
    if (!j) fail_msg("%s: %s", y, err);
    if (strcmp(j, want) != 0) fail_msg("%s: got %s want %s", y, j, want);
    free(j);
}

static void j2y(const char *j, const char *want)
{
    char err[256];
    size_t n;
    char *y = pc_plib_json_to_yaml(j, strlen(j), &n, err, sizeof(err));
    if (!y) fail_msg("%s: %s", j, err);
    if (strcmp(y, want) != 0) fail_msg("%s: got [%s] want [%s]", j, y, want);
    free(y);
}

static void test_yaml_to_json(void **state)
{
    (void)state;
    y2j("a: 1\nb: [x, 'y', \"2\"]\nc: ~\nd: yes\ne: 1.5\nf: .5\n",
        "{\"a\":1,\"b\":[\"x\",\"y\",\"2\"],\"c\":null,\"d\":true,\"e\":1.5,\"f\":0.5}");
    y2j("- foo:\n  - 1\n  - 2\n", "[{\"foo\":[1,2]}]");
    y2j("", "null");
    y2j("0x1F", "31");
    y2j("012", "\"012\"");
    char err[256];
    size_t n;
    assert_null(pc_plib_yaml_to_json("[1,2,3", 6, &n, err, sizeof(err)));
    assert_non_null(strstr(err, "yaml: line 1: did not find"));
    assert_null(pc_plib_yaml_to_json("a: &x 1\nb: *x\n", 14, &n, err, sizeof(err)));
}

static void test_json_to_yaml(void **state)
{
    (void)state;
    j2y("[{\"foo\":[1,2,3]}]", "- foo:\n  - 1\n  - 2\n  - 3\n");
    j2y("{\"b\":{\"c\":\"x y\"},\"a\":[true,null]}", "a:\n- true\n- null\nb:\n  c: x y\n");
    /* "n" reads back as a YAML 1.1 boolean, so even the key is quoted */
    j2y("{\"s\":\"true\",\"e\":\"\",\"n\":\"12\"}", "e: \"\"\n\"n\": \"12\"\ns: \"true\"\n");
    j2y("{}", "{}\n");
    j2y("\"a: b\"", "\"a: b\"\n");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_yaml_to_json),
        cmocka_unit_test(test_json_to_yaml),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
