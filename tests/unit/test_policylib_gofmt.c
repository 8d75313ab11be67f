/* sprintf (Go fmt) and format_int helpers; expectations are Go's own output. */
#include "plib_test.h"

#include "policy/lib/gofmt.h"

#define S(x) {.kind = PC_PLIB_FMT_STR, .s = (x), .len = sizeof(x) - 1}
#define I(x) {.kind = PC_PLIB_FMT_INT, .i = (x)}
#define B(x) {.kind = PC_PLIB_FMT_BIGINT, .s = (x), .len = sizeof(x) - 1}
#define F(x) {.kind = PC_PLIB_FMT_FLOAT, .f = (x)}

static void check(const char *fmt, const pc_plib_fmt_arg_t *a, size_t n, const char *want)
{
    size_t len;
    char *got = pc_plib_sprintf(fmt, strlen(fmt), a, n, &len);
    assert_non_null(got);
    if (strcmp(got, want) != 0) fail_msg("%s: got [%s] want [%s]", fmt, got, want);
    assert_int_equal(len, strlen(want));
    free(got);
}

#define CHECK(fmt, want, ...)                                                                      \
    do {                                                                                           \
        const pc_plib_fmt_arg_t a_[] = {__VA_ARGS__};                                              \
        check(fmt, a_, PC_ARGN(a_), want);                                                         \
    } while (0)
#define PC_ARGN(a) (sizeof(a) / sizeof((a)[0]))

static void test_opa_cases(void **state)
{
    (void)state;
    check("hi", NULL, 0, "hi");
    CHECK("hi %s", "hi there", S("there"));
    CHECK("hi %02d", "hi 05", I(5));
    CHECK("hi %02X.%02X", "hi 7F.01", I(127), I(1));
    CHECK("hi %.2f", "hi 3.14", F(3.1415));
    CHECK("hi %v", "hi 2e308", S("2e308"));
    CHECK("hi %s", "hi true", S("true"));
    CHECK("hi %v", "hi [\"there\", 5, 3.14]", S("[\"there\", 5, 3.14]"));
    CHECK("%s", "123456789123456789123", B("123456789123456789123"));
    CHECK("%d", "-1208925819614629174706175", B("-1208925819614629174706175"));
}

static void test_verbs(void **state)
{
    (void)state;
    CHECK("%v %v %v %v", "1.5 1e+06 100000 1e-05", F(1.5), F(1e6), F(100000), F(0.00001));
    CHECK("%g %e %E", "0.1 1.000000e+00 2.500000E-03", F(0.1), F(1), F(0.0025));
    CHECK("%8.3f|%-8.2f|%+d", "   3.142|2.72    |+7", F(3.14159), F(2.718), I(7));
    CHECK("%08.3f", "-003.142", F(-3.14159));
    CHECK("%x %X %o %b %#x", "ff FF 10 101 0xff", I(255), I(255), I(8), I(5), I(255));
    CHECK("%x", "6869", S("hi"));
    CHECK("%q", "\"a\\\"b\\n\"", S("a\"b\n"));
    CHECK("%5s|%-5s|%.2s", "   ab|ab   |ab", S("ab"), S("ab"), S("abc"));
    CHECK("%t", "%!t(string=true)", S("true"));
    CHECK("%d", "%!d(string=x)", S("x"));
    CHECK("%s", "%!s(int=5)", I(5));
    CHECK("%d", "%!d(float64=1.5)", F(1.5));
    CHECK("%d %d", "1 %!d(MISSING)", I(1));
    CHECK("%d", "1%!(EXTRA string=x, int=2)", I(1), S("x"), I(2));
    CHECK("100%%", "100%%!(EXTRA int=0)", I(0));
    CHECK("%c%c", "hé", I('h'), I(0xE9));
    CHECK("%U", "U+00E9", I(0xE9));
    CHECK("%*d|%-*d", "   42|42   ", I(5), I(42), I(5), I(42));
    CHECK("%[2]s %[1]s", "b a", S("a"), S("b"));
    CHECK("%T %T", "string float64", S("a"), F(1));
    CHECK("%.3d|%6.2d", "007|    07", I(7), I(7));
    check("%", NULL, 0, "%!(NOVERB)");
}

static void test_sprintf_buf(void **state)
{
    (void)state;
    char buf[8];
    size_t n;
    const pc_plib_fmt_arg_t a[] = {I(42)};
    char *r = pc_plib_sprintf_buf(buf, sizeof(buf), "n=%d", 4, a, 1, &n);
    assert_ptr_equal(r, buf); /* fits: no heap */
    assert_string_equal(r, "n=42");
    r = pc_plib_sprintf_buf(buf, sizeof(buf), "number=%05d!", 12, a, 1, &n);
    assert_true(r != buf); /* outgrew the buffer: heap copy */
    assert_string_equal(r, "number=00042!");
    assert_int_equal(n, 13);
    free(r);
}

static void test_format_int(void **state)
{
    (void)state;
    static const struct {
        const char *num;
        int base;
        const char *want;
    } cases[] = {
        {"18446744073709551617", 16, "10000000000000001"},
        {"18446744073709551617", 8, "2000000000000000000001"},
        {"18446744073709551617", 2,
         "10000000000000000000000000000000000000000000000000000000000000001"},
        {"-18446744073709551617", 10, "-18446744073709551617"},
        {"15.9", 16, "f"},
        {"-15.9", 16, "-f"},
        {"15.5", 16, "f"},
        {"3.1", 10, "3"},
        {"-0.5", 10, "0"},
        {"1e3", 2, "1111101000"},
        {"0", 16, "0"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *got = pc_plib_format_int(cases[i].num, strlen(cases[i].num), cases[i].base);
        assert_non_null(got);
        if (strcmp(got, cases[i].want) != 0)
            fail_msg("%s/%d: got %s want %s", cases[i].num, cases[i].base, got, cases[i].want);
        free(got);
    }
    assert_null(pc_plib_format_int("10", 2, 3));
    assert_null(pc_plib_format_int("abc", 3, 10));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_opa_cases),
        cmocka_unit_test(test_verbs),
        cmocka_unit_test(test_sprintf_buf),
        cmocka_unit_test(test_format_int),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
