/* net.cidr_* helpers (Go net semantics, OPA's merge): cases from OPA. */
#include "plib_test.h"

#include "policy/lib/net.h"

#include <unistd.h>

static char acc[1024];
static bool add(void *ud, const char *s, size_t n)
{
    (void)ud;
    size_t l = strlen(acc);
    snprintf(acc + l, sizeof(acc) - l, "%s%.*s", l ? " " : "", (int)n, s);
    return true;
}

#define CONTAINS(a, b) pc_plib_cidr_contains(a, strlen(a), b, strlen(b), err, sizeof(err))
#define INTERSECTS(a, b) pc_plib_cidr_intersects(a, strlen(a), b, strlen(b), err, sizeof(err))

static void test_contains(void **state)
{
    (void)state;
    char err[256];
    assert_int_equal(CONTAINS("10.0.0.0/8", "10.1.2.3"), 1);
    assert_int_equal(CONTAINS("10.0.0.0/8", "11.1.2.3"), 0);
    assert_int_equal(CONTAINS("10.0.0.0/8", "10.1.0.0/16"), 1);
    assert_int_equal(CONTAINS("10.0.0.0/16", "10.0.0.0/8"), 0);
    assert_int_equal(CONTAINS("10.0.0.0/8", "::ffff:10.1.2.3"), 1);
    assert_int_equal(CONTAINS("2001:4860:4860::8888/32", "2001:4860:4860:1234::8888"), 1);
    assert_int_equal(CONTAINS("2001:4860:4860::8888/32", "2001:4861::1"), 0);
    assert_int_equal(CONTAINS("fd1e:5bfe:8af3:9ddc::/64", "fd1e:5bfe:8af3:9ddc:1111::/72"), 1);
    assert_int_equal(CONTAINS("10.0.0.0/8", "1.2.3"), -1);
    assert_string_equal(err, "not a valid textual representation of an IP address or CIDR: 1.2.3");
    assert_int_equal(CONTAINS("10.0.0.0/33", "10.0.0.1"), -1);
    assert_string_equal(err, "invalid CIDR address: 10.0.0.0/33");
    assert_int_equal(CONTAINS("10.0.0.0/8", "010.0.0.1"), -1);
    assert_int_equal(INTERSECTS("192.168.0.0/16", "192.168.1.0/24"), 1);
    assert_int_equal(INTERSECTS("192.168.0.0/24", "192.168.1.0/24"), 0);
    assert_int_equal(INTERSECTS("fd1e:5bfe:8af3:9ddc::/64", "fd1e:5bfe:8af3:9ddc:1111::/72"), 1);
}

static void test_format_expand(void **state)
{
    (void)state;
    char err[256], buf[64];
    unsigned __int128 ip;
    int bits;
    const char *ins[] = {"2001:db8::1", "::", "::1", "1::", "2001:db8:0:0:1:0:0:1", "::ffff:1.2.3.4",
                         "fe80:0:1:2:3:4:5:6"};
    const char *outs[] = {"2001:db8::1", "::", "::1", "1::", "2001:db8::1:0:0:1", "1.2.3.4",
                          "fe80:0:1:2:3:4:5:6"};
    for (size_t i = 0; i < sizeof(ins) / sizeof(ins[0]); i++) {
        if (!pc_plib_ip_parse(ins[i], strlen(ins[i]), &ip, &bits)) fail_msg("parse %s", ins[i]);
        pc_plib_ip_format(ip, bits, buf, sizeof(buf));
        assert_string_equal(buf, outs[i]);
    }
    assert_false(pc_plib_ip_parse("1.2.3.256", 9, &ip, &bits));
    assert_false(pc_plib_ip_parse("1:2:3:4:5:6:7:8:9", 17, &ip, &bits));
    assert_false(pc_plib_ip_parse("1::2::3", 7, &ip, &bits));
    acc[0] = '\0';
    assert_true(pc_plib_cidr_expand("192.168.1.1/30", 14, add, NULL, err, sizeof(err)));
    assert_string_equal(acc, "192.168.1.0 192.168.1.1 192.168.1.2 192.168.1.3");
    acc[0] = '\0';
    assert_true(pc_plib_cidr_expand("1::/127", 7, add, NULL, err, sizeof(err)));
    assert_string_equal(acc, "1:: 1::1");
    assert_false(pc_plib_cidr_expand("192.168.1.1/33", 14, add, NULL, err, sizeof(err)));
    assert_string_equal(err, "invalid CIDR address: 192.168.1.1/33");
}

static const char *merge(const char **items, size_t n)
{
    size_t lens[32];
    char err[256];
    for (size_t i = 0; i < n; i++) lens[i] = strlen(items[i]);
    acc[0] = '\0';
    if (!pc_plib_cidr_merge(items, lens, n, add, NULL, err, sizeof(err))) {
        snprintf(acc, sizeof(acc), "ERR %s", err);
    }
    return acc;
}

#define MERGE(want, ...)                                                                           \
    do {                                                                                           \
        const char *it_[] = {__VA_ARGS__};                                                         \
        assert_string_equal(merge(it_, sizeof(it_) / sizeof(it_[0])), want);                       \
    } while (0)

static void test_merge(void **state)
{
    (void)state;
    MERGE("192.0.128.0/23", "192.0.128.0/24", "192.0.129.0/24");
    MERGE("0.0.0.0/0", "192.0.128.0/24", "0.0.0.0/0");
    MERGE("192.0.2.112/29", "192.0.2.112/30", "192.0.2.116/31", "192.0.2.118/31");
    MERGE("192.0.2.112/30 192.0.2.116/32 192.0.2.118/31", "192.0.2.112/30", "192.0.2.116/32",
          "192.0.2.118/31");
    MERGE("192.0.2.112/31 192.0.2.116/30", "192.0.2.112/31", "192.0.2.116/31", "192.0.2.118/31");
    MERGE("192.0.2.0/24", "192.0.2.112", "192.0.2.116/31", "192.0.2.118/31");
    MERGE("192.0.128.0/23", "192.0.128.0", "192.0.129.0");
    MERGE("::/0", "::/0", "::192.0.2.0/124", "ff00::101/128");
    MERGE("2601:600:8a80:207e::/64", "2601:600:8a80:207e:a57d:7567:e2c9:e7b3/64",
          "2601:600:8a80:207e:a57d:7567:e2c9:e7b3/128");
    MERGE("192.0.2.0/23 192.0.4.0/24 fe80::/120", "fe80::/120", "192.0.2.0/24", "192.0.3.0/24",
          "192.0.4.0/25", "192.0.4.128/25");
    MERGE("ERR IPv6 invalid: needs prefix length", "2601:600:8a80:207e:a57d:7567:e2c9:e7b3");
    MERGE("192.0.1.254/31 192.0.2.0/24 192.0.3.0/28", "192.0.1.254/31", "192.0.2.0/28",
          "192.0.2.16/28", "192.0.2.32/28", "192.0.2.48/28", "192.0.2.64/28", "192.0.2.80/28",
          "192.0.2.96/28", "192.0.2.112/28", "192.0.2.128/28", "192.0.2.144/28", "192.0.2.160/28",
          "192.0.2.176/28", "192.0.2.192/28", "192.0.2.208/28", "192.0.2.224/28", "192.0.2.240/28",
          "192.0.3.0/28");
}

static void test_lookup(void **state)
{
    (void)state;
    char path[] = "/tmp/pc_hosts_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    const char *hosts = "127.0.0.1 localhost\n::1 localhost ip6-localhost # comment\n10.1.2.3 db.internal\n";
    assert_int_equal(write(fd, hosts, strlen(hosts)), (ssize_t)strlen(hosts));
    close(fd);
    acc[0] = '\0';
    assert_int_equal(pc_plib_lookup_ip_addr("localhost", 9, path, add, NULL), 2);
    assert_string_equal(acc, "127.0.0.1 ::1");
    acc[0] = '\0';
    assert_int_equal(pc_plib_lookup_ip_addr("DB.internal", 11, path, add, NULL), 1);
    assert_string_equal(acc, "10.1.2.3");
    acc[0] = '\0';
    assert_int_equal(pc_plib_lookup_ip_addr("::", 2, path, add, NULL), 1);
    assert_string_equal(acc, "::");
    assert_int_equal(pc_plib_lookup_ip_addr("nowhere", 7, path, add, NULL), 0);
    unlink(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_contains),
        cmocka_unit_test(test_format_expand),
        cmocka_unit_test(test_merge),
        cmocka_unit_test(test_lookup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
