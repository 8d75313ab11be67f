/* regex.* and glob.* helpers: Go regexp semantics on PCRE2 (OPA's cases). */
#include "plib_test.h"

#include "policy/lib/regex.h"

static pc_plib_re_t *get(const char *p)
{
    char err[256];
    pc_plib_re_t *re = pc_plib_re_get(p, strlen(p), err, sizeof(err));
    if (!re) fail_msg("%s: %s", p, err);
    return re;
}

static int match(const char *p, const char *s)
{
    pc_plib_re_t *re = get(p);
    int rc = pc_plib_re_match(re, s, strlen(s));
    pc_plib_re_release(re);
    return rc;
}

static void test_match_valid(void **state)
{
    (void)state;
    assert_int_equal(match("", ""), 1);
    assert_int_equal(match("", "x"), 1);
    assert_int_equal(match("^$", ""), 1);
    assert_int_equal(match("^$", "something"), 0);
    assert_int_equal(match("^[a-z]+\\[[0-9]+\\]$", "foo[1]"), 1);
    assert_int_equal(match("a$", "a\n"), 0); /* Go: $ is end of text */
    assert_int_equal(match("(?i)HELLO", "hello"), 1);
    assert_int_equal(match("(?P<x>a)b", "ab"), 1);
    assert_true(pc_plib_re_is_valid(".+", 2));
    assert_false(pc_plib_re_is_valid("++", 2));
    assert_false(pc_plib_re_is_valid("$^[[[", 5));
    assert_false(pc_plib_re_is_valid("(a)\\1", 5));
    assert_false(pc_plib_re_is_valid("a(?=b)", 6));
    assert_false(pc_plib_re_is_valid("a++", 3));
    assert_true(pc_plib_re_is_valid("[\\d]+", 5));
    /* cached handles are shared */
    pc_plib_re_t *a = get("x+y"), *b = get("x+y");
    assert_ptr_equal(a, b);
    pc_plib_re_release(a);
    pc_plib_re_release(b);
}

static char out[512];
static bool collect(void *ud, const size_t *ov, size_t npairs)
{
    const char *s = ud;
    size_t l = strlen(out);
    l += (size_t)snprintf(out + l, sizeof(out) - l, "[");
    for (size_t k = 0; k < npairs; k++) {
        if (ov[2 * k] == PC_PLIB_RE_UNSET)
            l += (size_t)snprintf(out + l, sizeof(out) - l, "%s-", k ? "," : "");
        else
            l += (size_t)snprintf(out + l, sizeof(out) - l, "%s%.*s", k ? "," : "",
                                  (int)(ov[2 * k + 1] - ov[2 * k]), s + ov[2 * k]);
    }
    snprintf(out + l, sizeof(out) - l, "]");
    return true;
}

static const char *find(const char *p, const char *s, long max)
{
    out[0] = '\0';
    pc_plib_re_t *re = get(p);
    assert_true(pc_plib_re_find_all(re, s, strlen(s), max, collect, (void *)s) >= 0);
    pc_plib_re_release(re);
    return out;
}

static void test_find(void **state)
{
    (void)state;
    assert_string_equal(find("a.", "paranormal", -1), "[ar][an][al]");
    assert_string_equal(find("a.", "paranormal", 2), "[ar][an]");
    assert_string_equal(find("a.", "paranormal", 0), "");
    assert_string_equal(find("^a.", "abacadaeaf", -1), "[ab]");
    assert_string_equal(find(".$", "abacadaeaf", -1), "[f]");
    assert_string_equal(find("[abcdef]{2}", "abacadaeaf", -1), "[ab][ac][ad][ae][af]");
    assert_string_equal(find("a(x*)b", "-ab-axb-", -1), "[ab,][axb,x]");
    assert_string_equal(find("[^aouiye]([aouiye])([^aouiye])?", "somestri", -1),
                        "[som,o,m][ri,i,-]");
    assert_string_equal(find("a*", "baaab", -1), "[][aaa][]");
}

static char pieces[256];
static const char *split_s;
static bool piece(void *ud, size_t a, size_t b)
{
    (void)ud;
    size_t l = strlen(pieces);
    snprintf(pieces + l, sizeof(pieces) - l, "<%.*s>", (int)(b - a), split_s + a);
    return true;
}

static const char *split(const char *p, const char *s)
{
    pieces[0] = '\0';
    split_s = s;
    pc_plib_re_t *re = get(p);
    assert_true(pc_plib_re_split(re, s, strlen(s), piece, NULL) >= 0);
    pc_plib_re_release(re);
    return pieces;
}

static const char *replace(const char *s, const char *p, const char *r)
{
    static char buf[256];
    size_t n;
    pc_plib_re_t *re = get(p);
    char *o = pc_plib_re_replace_all(re, s, strlen(s), r, strlen(r), &n);
    pc_plib_re_release(re);
    assert_non_null(o);
    snprintf(buf, sizeof(buf), "%s", o);
    free(o);
    return buf;
}

static void test_split_replace(void **state)
{
    (void)state;
    assert_string_equal(split("a", "banana"), "<b><n><n><>");
    assert_string_equal(split("z+", "pizza"), "<pi><a>");
    assert_string_equal(split("^[a-z]+", "foobar baz"), "<>< baz>");
    assert_string_equal(split("[a-z]+$", "foobar baz"), "<foobar ><>");
    assert_string_equal(split("^[a-z]+$", "foobar baz"), "<foobar baz>");
    assert_string_equal(split("^[a-z ]+$", "foobar baz"), "<><>");
    assert_string_equal(replace("-wy-wxxy-", "w(x*)y", "0"), "-0-0-");
    assert_string_equal(replace("foo bar", "[a-z]", "_"), "___ ___");
    assert_string_equal(replace("foo barx", "[a-z]{2}", "_"), "_o __");
    assert_string_equal(replace("foo", "(foo)", "$1$1"), "foofoo");
    assert_string_equal(replace("foo", "[a-z]$", "F"), "foF");
    assert_string_equal(replace("foo", "^[a-z]+$", "M"), "M");
    assert_string_equal(replace("abc", "(?P<l>b)", "[${l}$1x$$]"), "a[b$]c");
    assert_string_equal(replace("abc", "", "-"), "-a-b-c-");
}

static void test_template_glob(void **state)
{
    (void)state;
    char err[256];
    const char *t = "urn:foo:{.*}", *s = "urn:foo:bar:baz";
    assert_int_equal(pc_plib_re_template_match(t, strlen(t), s, strlen(s), '{', '}', err, 256), 1);
    t = "urn:foo:<.*>";
    assert_int_equal(pc_plib_re_template_match(t, strlen(t), s, strlen(s), '<', '>', err, 256), 1);
    t = "urn:foo.{bar}";
    assert_int_equal(pc_plib_re_template_match(t, strlen(t), s, strlen(s), '{', '}', err, 256), 0);
    t = "urn:{x";
    assert_int_equal(pc_plib_re_template_match(t, strlen(t), s, strlen(s), '{', '}', err, 256), -1);

    const uint32_t dot[] = {'.'}, f[] = {'f'};
#define G(p, d, nd, s) pc_plib_glob_match(p, strlen(p), d, nd, s, strlen(s), err, sizeof(err))
    assert_int_equal(G("*", dot, 1, "foo"), 1);
    assert_int_equal(G("*", dot, 1, "foo.bar"), 0);
    assert_int_equal(G("*", NULL, 0, "foo.bar"), 1);
    assert_int_equal(G("*.github.com", dot, 1, "api.github.com"), 1);
    assert_int_equal(G("*.github.com", dot, 1, "api.not-github.com"), 0);
    assert_int_equal(G("?at", f, 1, "fat"), 0);
    assert_int_equal(G("?at", f, 1, "bat"), 1);
    assert_int_equal(G("[!a-c]at", NULL, 0, "fat"), 1);
    assert_int_equal(G("[!a-c]at", NULL, 0, "bat"), 0);
    assert_int_equal(G("[abc]at", NULL, 0, "cat"), 1);
    assert_int_equal(G("api.**.com", dot, 1, "api.cdn.github.com"), 1);
    assert_int_equal(G("{cat,bat,[fr]at}", NULL, 0, "rat"), 1);
    assert_int_equal(G("{cat,bat,[fr]at}", NULL, 0, "at"), 0);
    assert_int_equal(G("a\\*b", NULL, 0, "a*b"), 1);
    assert_int_equal(G("a\\*b", NULL, 0, "axb"), 0);
    assert_int_equal(G("[abc", NULL, 0, "a"), -1);
    size_t n;
    char *q = pc_plib_glob_quote_meta("*.github.com", 12, &n);
    assert_string_equal(q, "\\*.github.com");
    free(q);
}

static int gi(const char *x, const char *y)
{
    char err[256];
    return pc_plib_globs_intersect(x, strlen(x), y, strlen(y), err, sizeof(err));
}

static void test_globs_intersect(void **state)
{
    (void)state;
    assert_int_equal(gi("a.a.[0-9]+z", ".b.b2359825792*594823z"), 1);
    assert_int_equal(gi("[a-z]+", "[0-9]*"), 0);
    assert_int_equal(gi("[a-z]+\\[[0-9]+\\]", "foo\\[1\\]"), 1);
    assert_int_equal(gi("[a-z]+\\[[0-9]+\\]", "foo[\"bar\"]"), 0);
    assert_int_equal(gi("b.*", "bar"), 1);
    assert_int_equal(gi("b.*", "car"), 0);
    char err[256];
    assert_int_equal(pc_plib_globs_intersect("pqrs]", 5, "[a-b]+", 6, err, sizeof(err)), -1);
    assert_string_equal(err, "input:pqrs], pos:5, set-close ']' with no preceding '[': the input provided is invalid");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_match_valid),
        cmocka_unit_test(test_find),
        cmocka_unit_test(test_split_replace),
        cmocka_unit_test(test_template_glob),
        cmocka_unit_test(test_globs_intersect),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
