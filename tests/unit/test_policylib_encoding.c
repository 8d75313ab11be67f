/* base64 / hex / urlquery helpers against Go's behaviour (OPA's cases). */
#include "plib_test.h"

#include "policy/lib/encoding.h"

static void expect(char *got, const size_t *lenp, const char *want)
{
    assert_non_null(got);
    size_t len = *lenp;
    assert_int_equal(len, strlen(want));
    assert_memory_equal(got, want, len);
    free(got);
}

static void test_base64(void **state)
{
    (void)state;
    size_t n;
    char err[128];
    expect(pc_plib_base64_encode(PC_PLIB_B64_STD, "hello", 5, &n), &n, "aGVsbG8=");
    expect(pc_plib_base64_encode(PC_PLIB_B64_STD, "there", 5, &n), &n, "dGhlcmU=");
    expect(pc_plib_base64_encode(PC_PLIB_B64_RAW_URL, "hello", 5, &n), &n, "aGVsbG8");
    expect(pc_plib_base64_encode(PC_PLIB_B64_URL, "\xfb\xff", 2, &n), &n, "-_8=");
    expect(pc_plib_base64_encode(PC_PLIB_B64_STD, "", 0, &n), &n, "");
    expect(pc_plib_base64_decode(PC_PLIB_B64_STD, "aGVsbG8=", 8, &n, err, sizeof(err)), &n,
           "hello");
    expect(pc_plib_base64_decode(PC_PLIB_B64_STD, "aGVs\nbG8=", 9, &n, err, sizeof(err)), &n,
           "hello");
    assert_null(pc_plib_base64_decode(PC_PLIB_B64_STD, "aGVsbG8", 7, &n, err, sizeof(err)));
    assert_string_equal(err, "illegal base64 data at input byte 4");
    assert_null(pc_plib_base64_decode(PC_PLIB_B64_STD, "a*", 2, &n, err, sizeof(err)));
    assert_string_equal(err, "illegal base64 data at input byte 1");
    expect(pc_plib_base64url_decode_lenient("aGVsbG8", 7, &n, err, sizeof(err)), &n, "hello");
    /* like Go's default (non-Strict) decoders, leftover bits may be non-zero */
    expect(pc_plib_base64_decode(PC_PLIB_B64_URL, "QR==", 4, &n, err, sizeof(err)), &n, "A");
    expect(pc_plib_base64url_decode_lenient("aGVsbG8=", 8, &n, err, sizeof(err)), &n, "hello");
    assert_null(pc_plib_base64url_decode_lenient("aGVsb", 5, &n, err, sizeof(err)));
    assert_string_equal(err, "illegal base64url string: aGVsb");
}

static void test_hex(void **state)
{
    (void)state;
    size_t n;
    char err[128];
    expect(pc_plib_hex_encode("hello", 5, &n), &n, "68656c6c6f");
    expect(pc_plib_hex_decode("68656C6c6f", 10, &n, err, sizeof(err)), &n, "hello");
    assert_null(pc_plib_hex_decode("fghijkl", 7, &n, err, sizeof(err)));
    assert_string_equal(err, "encoding/hex: invalid byte: U+0067 'g'");
    assert_null(pc_plib_hex_decode("abc", 3, &n, err, sizeof(err)));
    assert_string_equal(err, "encoding/hex: odd length hex string");
}

static char seen[256];
static void collect(void *ud, const char *k, size_t kn, const char *v, size_t vn)
{
    (void)ud;
    size_t l = strlen(seen);
    snprintf(seen + l, sizeof(seen) - l, "[%.*s=%.*s]", (int)kn, k, (int)vn, v);
}

static void test_query(void **state)
{
    (void)state;
    size_t n;
    char err[128];
    expect(pc_plib_query_escape("a=b+1", 5, &n), &n, "a%3Db%2B1");
    expect(pc_plib_query_escape("a b~", 4, &n), &n, "a+b~");
    expect(pc_plib_query_unescape("a%3Db%2B1+x", 11, &n, err, sizeof(err)), &n, "a=b+1 x");
    assert_null(pc_plib_query_unescape("a%zz", 4, &n, err, sizeof(err)));
    assert_string_equal(err, "invalid URL escape \"%zz\"");
    seen[0] = '\0';
    assert_true(pc_plib_parse_query("a=value_a1&b&a=x%20y", 20, collect, NULL, err, sizeof(err)));
    assert_string_equal(seen, "[a=value_a1][b=][a=x y]");
    seen[0] = '\0';
    assert_false(pc_plib_parse_query("a=1;b=2&c=3", 11, collect, NULL, err, sizeof(err)));
    assert_string_equal(err, "invalid semicolon separator in query");
    assert_string_equal(seen, "[c=3]");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_base64),
        cmocka_unit_test(test_hex),
        cmocka_unit_test(test_query),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
