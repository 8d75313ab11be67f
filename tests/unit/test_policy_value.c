/* Rego value model: term order, 1 == 1.0, big numbers, sets/objects canonical, JSON in/out. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "policy/value.h"

static pc_arena *A;

static const pc_value *J(const char *s)
{
    char err[128];
    const pc_value *v = pc_json_parse(A, s, strlen(s), err, sizeof(err));
    if (!v) fail_msg("json %s: %s", s, err);
    return v;
}

static char *S(const pc_value *v)
{
    static char buf[4][512];
    static int k;
    pc_str s = {0};
    pc_value_to_json(&s, v);
    char *b = buf[k++ & 3];
    snprintf(b, 512, "%s", s.p);
    pc_str_free(&s);
    return b;
}

static void test_term_order(void **st)
{
    (void)st;
    const char *ordered[] = {"null", "false", "true", "-1", "0", "1.5", "2", "\"\"", "\"a\"", "\"b\"",
                             "[]", "[1]", "[1,2]", "[2]", "{}", "{\"a\":1}", "{\"b\":0}"};
    size_t n = sizeof(ordered) / sizeof(ordered[0]);
    for (size_t i = 0; i + 1 < n; i++) {
        const pc_value *x = J(ordered[i]), *y = J(ordered[i + 1]);
        if (pc_value_compare(x, y) >= 0) fail_msg("%s should sort before %s", ordered[i], ordered[i + 1]);
        assert_true(pc_value_compare(y, x) > 0);
    }
    /* sets sort after objects */
    const pc_value *items[1] = {pc_value_int(A, 1)};
    assert_true(pc_value_compare(J("{\"z\":1}"), pc_value_set(A, items, 1)) < 0);
}

static void test_numbers(void **st)
{
    (void)st;
    assert_true(pc_value_equal(J("1"), J("1.0")));
    assert_int_equal(pc_value_compare(J("1"), J("1.0")), 0);
    assert_true(pc_value_compare(J("1"), J("1.5")) < 0);
    assert_true(pc_value_hash(J("1")) == pc_value_hash(J("1.0")));
    /* big integers and decimals keep their text */
    assert_string_equal(S(J("12345678901234567890")), "12345678901234567890");
    assert_string_equal(S(J("3.14")), "3.14");
    assert_string_equal(S(J("-0.5e3")), "-0.5e3");
    int64_t i;
    assert_true(pc_value_get_int(J("42"), &i));
    assert_int_equal(i, 42);
    assert_true(pc_value_is_integral(J("2.0")));
    assert_false(pc_value_is_integral(J("2.5")));
    assert_string_equal(S(pc_value_float(A, 0.1)), "0.1");
    assert_string_equal(S(pc_value_float(A, 6.0)), "6");
    assert_null(pc_value_number_text(A, "01", 2));
    assert_null(pc_value_number_text(A, "1.", 2));
}

static void test_sets_and_objects(void **st)
{
    (void)st;
    const pc_value *items[] = {pc_value_int(A, 3), pc_value_int(A, 1), pc_value_int(A, 3),
                               pc_value_cstring(A, "x"), pc_value_float(A, 1.0)};
    const pc_value *set = pc_value_set(A, items, 5);
    assert_int_equal(set->len, 3);
    assert_string_equal(S(set), "[1,3,\"x\"]");
    assert_true(pc_value_set_contains(set, pc_value_int(A, 3)));
    assert_false(pc_value_set_contains(set, pc_value_int(A, 2)));

    pc_obuf ob;
    pc_obuf_init(&ob, A);
    pc_obuf_put_str(&ob, "b", pc_value_int(A, 2));
    pc_obuf_put_str(&ob, "a", pc_value_int(A, 1));
    pc_obuf_put_str(&ob, "b", pc_value_int(A, 3)); /* last wins */
    const pc_value *o = pc_obuf_object(&ob);
    assert_string_equal(S(o), "{\"a\":1,\"b\":3}");
    assert_non_null(pc_value_object_get_str(o, "a", 1));
    assert_null(pc_value_object_get_str(o, "c", 1));
    assert_true(pc_value_equal(o, J("{\"b\":3,\"a\":1}")));
    /* keys put in order: the same object without sorting */
    pc_obuf so;
    pc_obuf_init(&so, A);
    pc_obuf_put_str(&so, "a", pc_value_int(A, 1));
    pc_obuf_put_str(&so, "b", pc_value_int(A, 3));
    const pc_value *sorted = pc_obuf_object_sorted(&so);
    assert_non_null(sorted);
    assert_true(pc_value_equal(sorted, o));
    assert_int_equal(pc_value_object_get_str(sorted, "b", 1)->u.i, 3);
#ifndef NDEBUG
    /* out of order or duplicate: refused in debug builds (callers fail closed) */
    pc_obuf bad;
    pc_obuf_init(&bad, A);
    pc_obuf_put_str(&bad, "b", pc_value_int(A, 2));
    pc_obuf_put_str(&bad, "a", pc_value_int(A, 1));
    assert_null(pc_obuf_object_sorted(&bad));
    pc_obuf_init(&bad, A);
    pc_obuf_put_str(&bad, "a", pc_value_int(A, 2));
    pc_obuf_put_str(&bad, "a", pc_value_int(A, 1));
    assert_null(pc_obuf_object_sorted(&bad));
#endif
    /* reserved room: filled exactly it builds, one entry more is refused */
    pc_obuf rb;
    pc_obuf_init_cap(&rb, A, 2);
    pc_obuf_put_reserved(&rb, pc_value_cstring(A, "a"), pc_value_int(A, 1));
    pc_obuf_put_reserved(&rb, pc_value_cstring(A, "b"), pc_value_int(A, 3));
    assert_true(pc_value_equal(pc_obuf_object_sorted(&rb), o));
    pc_obuf_init_cap(&rb, A, 1);
    pc_obuf_put_reserved(&rb, pc_value_cstring(A, "a"), pc_value_int(A, 1));
    pc_obuf_put_reserved(&rb, pc_value_cstring(A, "b"), pc_value_int(A, 3));
    assert_null(pc_obuf_object_sorted(&rb));
    pc_obuf_init_cap(&rb, A, 1);
    pc_obuf_put_reserved(&rb, pc_value_cstring(A, "a"), NULL);
    assert_null(pc_obuf_object_sorted(&rb));
    /* borrowed strings: not copied, same value as a copied one */
    static const char text[] = "borrowed";
    const pc_value *bs = pc_value_cstring_borrow(A, text);
    assert_ptr_equal(bs->u.s, text);
    assert_true(pc_value_equal(bs, pc_value_cstring(A, "borrowed")));
    assert_int_equal(pc_value_cstring_borrow(A, "")->len, 0);
    /* non-string keys print as their JSON text */
    pc_kv kv = {pc_value_int(A, 1), pc_value_bool(true)};
    assert_string_equal(S(pc_value_object(A, &kv, 1)), "{\"1\":true}");
}

static void test_json(void **st)
{
    (void)st;
    assert_string_equal(S(J(" {\"a\" : [1, \"\\u00e9\\n\", null, true]} ")), "{\"a\":[1,\"\xc3\xa9\\n\",null,true]}");
    assert_string_equal(S(J("\"\\ud83d\\ude00\"")), "\"\xf0\x9f\x98\x80\"");
    assert_string_equal(S(J("\"<&>\"")), "\"\\u003c\\u0026\\u003e\"");
    char err[128];
    const char *bad[] = {"", "{", "[1,]", "{\"a\"}", "tru", "1 2", "\"\\x\"", "{1:2}", "01"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (pc_json_parse(A, bad[i], strlen(bad[i]), err, sizeof(err))) fail_msg("accepted %s", bad[i]);
    /* deep nesting is refused, not a stack overflow */
    char deep[5000];
    memset(deep, '[', sizeof(deep));
    assert_null(pc_json_parse(A, deep, sizeof(deep), err, sizeof(err)));
}

static void test_rego_text(void **st)
{
    (void)st;
    pc_str s = {0};
    const pc_value *items[] = {pc_value_int(A, 2), pc_value_cstring(A, "a")};
    pc_value_to_rego(&s, pc_value_set(A, items, 2));
    assert_string_equal(s.p, "{2, \"a\"}");
    pc_str_free(&s);
    pc_value_to_rego(&s, pc_value_empty_set());
    assert_string_equal(s.p, "set()");
    pc_str_free(&s);
}

static void test_arena_limit(void **st)
{
    (void)st;
    pc_arena *small = pc_arena_new(1024);
    int n = 0;
    while (pc_value_int(small, n)) n++;
    assert_true(n > 10 && n < 100);
    assert_true(pc_arena_used(small) <= 1024);
    pc_arena_reset(small);
    assert_non_null(pc_value_int(small, 1));
    pc_arena_free(small);
    pc_arena_free(NULL);
}

static int setup(void **st)
{
    (void)st;
    A = pc_arena_new(0);
    return 0;
}

static int teardown(void **st)
{
    (void)st;
    pc_arena_free(A);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_term_order),   cmocka_unit_test(test_numbers),
        cmocka_unit_test(test_sets_and_objects), cmocka_unit_test(test_json),
        cmocka_unit_test(test_rego_text),    cmocka_unit_test(test_arena_limit),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
