/* units.parse / units.parse_bytes helpers: cases from OPA's conformance suite. */
#include "plib_test.h"

#include "policy/lib/units.h"

static void check(bool bytes, const char *in, const char *want)
{
    char err[256] = "";
    char *got = bytes ? pc_plib_units_parse_bytes(in, strlen(in), err, sizeof(err))
                      : pc_plib_units_parse(in, strlen(in), err, sizeof(err));
    if (!got) fail_msg("%s: unexpected error %s", in, err);
    if (strcmp(got, want) != 0) fail_msg("%s: got %s want %s", in, got, want);
    free(got);
}

static void check_err(bool bytes, const char *in, const char *want)
{
    char err[256] = "";
    char *got = bytes ? pc_plib_units_parse_bytes(in, strlen(in), err, sizeof(err))
                      : pc_plib_units_parse(in, strlen(in), err, sizeof(err));
    if (got) fail_msg("%s: expected error, got %s", in, got);
    assert_string_equal(err, want);
}

static void test_parse(void **state)
{
    (void)state;
    check(false, "\"100TI\"", "109951162777600");
    check(false, "0", "0");
    check(false, "0.0", "0");
    check(false, ".0", "0");
    check(false, "12345", "12345");
    check(false, "10K", "10000");
    check(false, "10KI", "10240");
    check(false, "1.1K", "1100");
    check(false, "1.1Ki", "1126.4000000000");
    check(false, ".5K", "500");
    check(false, "100m", "0.1000000000");
    check(false, "500m", "0.5000000000");
    check(false, "0.0005K", "0.5000000000");
    check(false, "0.0000005M", "0.5000000000");
    check(false, "200M", "200000000");
    check(false, "100mi", "104857600");
    check(false, "10e", "10000000000000000000");
    check(false, "10Ei", "11529215046068469760");
    check(false, "1e10", "10000000000");
    check(false, "3.2E4", "32000");
    check(false, "2.5e3K", "2500000");
    check(false, "5e1Gi", "53687091200");
    check(false, "1e-2", "0.0100000000");
    check(false, "7.8E-1", "0.7800000000");
    check(false, "-3.5E2m", "-0.3500000000");
    check(false, "1G", "1000000000");
    check(false, "1e-11", "0.0000000000");
    check(false, "5e-11", "0.0000000001");
    check(false, "9.99999999995", "10.0000000000");
}

static void test_parse_errors(void **state)
{
    (void)state;
    check_err(false, "", "units.parse: no amount provided");
    check_err(false, "G", "units.parse: no amount provided");
    check_err(false, "foo", "units.parse: no amount provided");
    check_err(false, "0.0.0", "units.parse: could not parse amount to a number");
    check_err(false, ".5.2", "units.parse: could not parse amount to a number");
    check_err(false, "100 k", "units.parse: spaces not allowed in resource strings");
    check_err(false, "10e10000000Ei", "units.parse: exponent too large");
    check(false, "5E", "5000000000000000000");
    check_err(false, "5x", "units.parse: unit x not recognized");
}

static void test_parse_bytes(void **state)
{
    (void)state;
    check(true, "\"100TIB\"", "109951162777600");
    check(true, "1.1KiB", "1126");
    check(true, "10Kib", "10240");
    check(true, "100m", "100000000");
    check(true, "10eib", "11529215046068469760");
    check(true, "3.2E2MiB", "335544320");
    check(true, "1e-2KB", "10");
    check(true, "7.5e1TiB", "82463372083200");
    check(true, ".0", "0");
    check(true, "-1.5kb", "-1500");
    check_err(true, "", "units.parse_bytes: no byte amount provided");
    check_err(true, "0.0.0", "units.parse_bytes: could not parse byte amount to a number");
    check_err(true, " 327MiB ", "units.parse_bytes: spaces not allowed in resource strings");
    check_err(true, "10e10000000EiB", "units.parse_bytes: exponent too large");
    check(true, "5E", "5000000000000000000");
    check_err(true, "5x", "units.parse_bytes: byte unit x not recognized");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse),
        cmocka_unit_test(test_parse_errors),
        cmocka_unit_test(test_parse_bytes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
