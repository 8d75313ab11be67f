/* semver and uuid helpers (OPA's semver rules, google/uuid's parser). */
#include "plib_test.h"

#include "policy/lib/semver.h"
#include "policy/lib/uuid.h"

#define SV(s) pc_plib_semver_valid(s, strlen(s))
#define CMP(a, b) pc_plib_semver_compare(a, strlen(a), b, strlen(b))

static void test_semver(void **state)
{
    (void)state;
    assert_true(SV("1.0.0"));
    assert_true(SV("1.2.3-alpha.1+build.5"));
    assert_true(SV("01.2.3")); /* ParseInt accepts leading zeros */
    assert_false(SV("1"));
    assert_false(SV("1.0"));
    assert_false(SV("1.0.0.0"));
    assert_true(SV("1.0.0-")); /* an empty pre-release passes OPA's check */
    assert_false(SV("1.0.0-a..b"));
    assert_false(SV("1.0.x"));
    assert_int_equal(CMP("1.0.0", "2.0.0"), -1);
    assert_int_equal(CMP("2.0.0", "1.0.0"), 1);
    assert_int_equal(CMP("1.0.0", "1.0.0"), 0);
    assert_int_equal(CMP("1.0.0-alpha", "1.0.0"), -1);
    assert_int_equal(CMP("1.0.0-alpha", "1.0.0-alpha.1"), -1);
    assert_int_equal(CMP("1.0.0-alpha.1", "1.0.0-alpha.beta"), -1);
    assert_int_equal(CMP("1.0.0-beta.2", "1.0.0-beta.11"), -1);
    assert_int_equal(CMP("1.0.0-rc.1", "1.0.0-beta.11"), 1);
    assert_int_equal(CMP("1.0.0+a", "1.0.0+b"), 0);
    assert_int_equal(CMP("1.10.0", "1.9.0"), 1);
}

static void test_uuid(void **state)
{
    (void)state;
    pc_plib_uuid_info_t u;
    const char *v4 = "00000000-0000-4000-8000-000000000000";
    assert_true(pc_plib_uuid_parse(v4, strlen(v4), &u));
    assert_int_equal(u.version, 4);
    assert_string_equal(u.variant, "RFC4122");
    assert_false(u.has_time);
    const char *v2 = "urn:uuid:000003e8-48b9-21ee-b200-325096b39f47";
    assert_true(pc_plib_uuid_parse(v2, strlen(v2), &u));
    assert_int_equal(u.version, 2);
    assert_true(u.time_ns == 1693566990121469600LL);
    assert_string_equal(u.nodeid, "32-50-96-b3-9f-47");
    assert_string_equal(u.macvariables, "local:unicast");
    assert_int_equal(u.clock_sequence, 12800);
    assert_int_equal(u.id, 1000);
    assert_string_equal(u.domain, "Person");
    const char *up = "URN:UUID:000003e8-48b9-21ee-b200-325096b39f47";
    assert_true(pc_plib_uuid_parse(up, strlen(up), &u));
    const char *br = "(00000000-0000-4000-8000-000000000000)";
    assert_true(pc_plib_uuid_parse(br, strlen(br), &u));
    const char *raw = "6bea8ef2d3d33cd184e09bab06a52ece";
    assert_true(pc_plib_uuid_parse(raw, strlen(raw), &u));
    assert_int_equal(u.version, 3);
    assert_false(pc_plib_uuid_parse("123", 3, &u));
    const char *bad = "00000000-0000-4000-8000_000000000000";
    assert_false(pc_plib_uuid_parse(bad, strlen(bad), &u));
    unsigned char b[16];
    memset(b, 0xff, sizeof(b));
    char s[37];
    pc_plib_uuid_v4_format(b, s);
    assert_string_equal(s, "ffffffff-ffff-4fff-bfff-ffffffffffff");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_semver),
        cmocka_unit_test(test_uuid),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
