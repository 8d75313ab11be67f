/* time.* helpers: Go layouts, zones from /usr/share/zoneinfo, OPA's cases. */
#include "plib_test.h"

#include "policy/lib/gotime.h"

static const pc_plib_tz_t *zone(const char *name)
{
    char err[128];
    const pc_plib_tz_t *tz = pc_plib_tz_load(name, strlen(name), err, sizeof(err));
    if (!tz) fail_msg("%s: %s", name, err);
    return tz;
}

static void fmt_is(int64_t ns, const char *tzname, const char *layout, const char *want)
{
    size_t n;
    char *s = pc_plib_time_format(ns, zone(tzname), layout, strlen(layout), &n);
    assert_non_null(s);
    if (strcmp(s, want) != 0) fail_msg("%s: got [%s] want [%s]", layout, s, want);
    free(s);
}

static void test_format(void **state)
{
    (void)state;
    const int64_t t = 1670006453141828752LL;
    const char *nano = pc_plib_time_layout_const("RFC3339Nano", 11);
    fmt_is(t, "", nano, "2022-12-02T18:40:53.141828752Z");
    fmt_is(t, "Asia/Kolkata", nano, "2022-12-03T00:10:53.141828752+05:30");
    fmt_is(t, "Asia/Kolkata", "Mon Jan 02 15:04:05 -0700 2006", "Sat Dec 03 00:10:53 +0530 2022");
    fmt_is(t, "Asia/Kolkata", pc_plib_time_layout_const("RFC1123Z", 8),
           "Sat, 03 Dec 2022 00:10:53 +0530");
    fmt_is(t, "Asia/Kolkata", pc_plib_time_layout_const("RFC1123", 7),
           "Sat, 03 Dec 2022 00:10:53 IST");
    fmt_is(t, "UTC", "Monday January 2 3:4:5 pm .000 ,00 .999 __2 002 Z07 -07", 
           "Friday December 2 6:40:53 pm .141 ,14 .141 336 336 Z +00");
    fmt_is(0, "UTC", "2006-01-02T15:04:05.999999999Z07:00", "1970-01-01T00:00:00Z");
    /* far future: the zone's footer rule decides (US DST in July 2100) */
    fmt_is(4118169600000000000LL, "America/New_York", "2006-01-02 15:04 MST", "2100-07-01 20:00 EDT");
    fmt_is(4102444800000000000LL, "America/New_York", "2006-01-02 15:04 MST", "2099-12-31 19:00 EST");
}

static void parse_is(const char *layout, const char *value, int64_t want)
{
    char err[256];
    int64_t ns;
    const char *l = pc_plib_time_layout_const(layout, strlen(layout));
    if (!l) l = layout;
    if (!pc_plib_time_parse_ns(l, strlen(l), value, strlen(value), &ns, err, sizeof(err)))
        fail_msg("%s / %s: %s", layout, value, err);
    if (ns != want) fail_msg("%s / %s: got %lld want %lld", layout, value, (long long)ns, (long long)want);
}

static void parse_err(const char *layout, const char *value, const char *want)
{
    char err[256];
    int64_t ns;
    const char *l = pc_plib_time_layout_const(layout, strlen(layout));
    if (!l) l = layout;
    assert_false(pc_plib_time_parse_ns(l, strlen(l), value, strlen(value), &ns, err, sizeof(err)));
    assert_string_equal(err, want);
}

static void test_parse(void **state)
{
    (void)state;
    parse_is("RFC3339", "2017-06-02T19:00:00-07:00", 1496455200000000000LL);
    parse_is("RFC3339", "1677-09-21T00:12:43.145224192-00:00", INT64_MIN);
    parse_is("RFC3339", "2262-04-11T23:47:16.854775807-00:00", INT64_MAX);
    parse_is("01/02 03:04:05PM '06 -0700", "06/02 07:00:00PM '17 -0700", 1496455200000000000LL);
    parse_is("02 Jan 06 15:04 -0700", "02 Jun 17 19:00 -0700", 1496455200000000000LL);
    parse_is("RFC822Z", "02 Jun 17 19:00 -0700", 1496455200000000000LL);
    parse_is("2006-01-02", "2020-02-02", 1580601600000000000LL);
    parse_is("RFC1123", "Fri, 02 Jun 2017 19:00:00 UTC", 1496430000000000000LL);
    parse_is("2006-01-02 15:04:05", "2017-06-02 19:00:00.5", 1496430000500000000LL);
    parse_err("RFC3339", "1677-09-21T00:12:43.145224191-00:00", "time outside of valid range");
    parse_err("RFC3339", "2262-04-11T23:47:16.854775808-00:00", "time outside of valid range");
    parse_err("2006-01-02", "2020-13-02", "parsing time \"2020-13-02\": month out of range");
    parse_err("2006-01-02", "2021-02-29", "parsing time \"2021-02-29\": day out of range");
    parse_err("2006-01-02", "2020-02-02x", "parsing time \"2020-02-02x\": extra text: \"x\"");
    parse_err("2006-01-02", "20-02-02",
              "parsing time \"20-02-02\" as \"2006-01-02\": cannot parse \"20-02-02\" as \"2006\"");
}

static void test_civil(void **state)
{
    (void)state;
    pc_plib_civil_t c;
    pc_plib_time_civil(1517814000000000000LL, zone("UTC"), &c);
    assert_true(c.year == 2018 && c.month == 2 && c.day == 5);
    pc_plib_time_civil(1517814000000000000LL, zone("America/Los_Angeles"), &c);
    assert_true(c.year == 2018 && c.month == 2 && c.day == 4);
    pc_plib_time_civil(1582977600000000000LL, zone("UTC"), &c);
    assert_true(c.year == 2020 && c.month == 2 && c.day == 29 && c.hour == 12);
    pc_plib_time_civil(1517832000000000000LL, zone("America/New_York"), &c);
    assert_true(c.hour == 7 && c.min == 0 && c.sec == 0);
    static const char *days[] = {"Monday", "Tuesday", "Wednesday", "Thursday", "Friday",
                                 "Saturday", "Sunday"};
    for (int i = 0; i < 7; i++) {
        pc_plib_time_civil(1517832000000000000LL + (int64_t)i * 86400000000000LL, zone("UTC"), &c);
        assert_string_equal(pc_plib_weekday_name(c.wday), days[i]);
    }
    pc_plib_time_civil(-1, zone("UTC"), &c);
    assert_true(c.year == 1969 && c.month == 12 && c.day == 31 && c.nsec == 999999999);
}

static void test_add_diff(void **state)
{
    (void)state;
    char err[128];
    int64_t r;
    assert_true(pc_plib_time_add_date(1585852421593912000LL, zone("UTC"), 3, 9, 12, &r, err, 128));
    assert_true(r == 1705257221593912000LL);
    assert_true(pc_plib_time_add_date(1585852421593912000LL, zone("UTC"), -1, -1, -1, &r, err, 128));
    assert_true(r == 1551465221593912000LL);
    assert_false(pc_plib_time_add_date(0, zone("UTC"), 2262, 1, 1, &r, err, 128));
    assert_string_equal(err, "time outside of valid range");
    assert_false(pc_plib_time_add_date(INT64_MIN, zone("UTC"), 0, 0, -1, &r, err, 128));

    int64_t d[6];
    pc_plib_time_diff(1580601600000000000LL, zone("UTC"), 1583020800000000000LL, zone("UTC"), d);
    assert_true(d[0] == 0 && d[1] == 0 && d[2] == 28);
    pc_plib_time_diff(1612224000000000000LL, zone("UTC"), 1614556800000000000LL, zone("UTC"), d);
    assert_true(d[0] == 0 && d[1] == 0 && d[2] == 27);
    pc_plib_time_diff(1078012800000000000LL, zone("UTC"), 1109635200000000000LL, zone("UTC"), d);
    assert_true(d[0] == 1 && d[1] == 0 && d[2] == 1);
    pc_plib_time_diff(61000000000LL, zone("UTC"), 0, zone("Asia/Shanghai"), d);
    assert_true(d[4] == 1 && d[5] == 1);
}

static void test_duration(void **state)
{
    (void)state;
    char err[128];
    int64_t v;
    static const struct {
        const char *s;
        int64_t want;
    } ok[] = {{"100ms", 100000000},       {"0", 0},       {"1h2m3.5s", 3723500000000LL},
              {"-1.5h", -5400000000000LL}, {"1\xc2\xb5s", 1000}, {".5s", 500000000},
              {"2562047h47m16.854775807s", INT64_MAX}, {"-2562047h47m16.854775808s", INT64_MIN}};
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        if (!pc_plib_duration_parse(ok[i].s, strlen(ok[i].s), &v, err, sizeof(err)))
            fail_msg("%s: %s", ok[i].s, err);
        if (v != ok[i].want) fail_msg("%s: got %lld", ok[i].s, (long long)v);
    }
    assert_false(pc_plib_duration_parse("1", 1, &v, err, sizeof(err)));
    assert_string_equal(err, "time: missing unit in duration \"1\"");
    assert_false(pc_plib_duration_parse("1x", 2, &v, err, sizeof(err)));
    assert_string_equal(err, "time: unknown unit \"x\" in duration \"1x\"");
    assert_false(pc_plib_duration_parse("", 0, &v, err, sizeof(err)));
    assert_string_equal(err, "time: invalid duration \"\"");
    assert_false(pc_plib_duration_parse("9223372036854775808ns", 21, &v, err, sizeof(err)));
}

static void test_zones(void **state)
{
    (void)state;
    char err[128];
    assert_null(pc_plib_tz_load("Nowhere/City", 12, err, sizeof(err)));
    assert_string_equal(err, "unknown time zone Nowhere/City");
    assert_null(pc_plib_tz_load("../etc/passwd", 13, err, sizeof(err)));
    assert_ptr_equal(pc_plib_tz_load("UTC", 3, err, sizeof(err)), pc_plib_tz_utc());
    assert_ptr_equal(zone("Europe/Paris"), zone("Europe/Paris"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_format),   cmocka_unit_test(test_parse),
        cmocka_unit_test(test_civil),    cmocka_unit_test(test_add_diff),
        cmocka_unit_test(test_duration), cmocka_unit_test(test_zones),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
