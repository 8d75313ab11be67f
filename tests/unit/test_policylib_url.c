/* Go net/url.Parse helper behind uri.parse / uri.is_valid. */
#include "plib_test.h"

#include "policy/lib/gourl.h"

static void parse_ok(const char *s, const char *scheme, const char *host, const char *port,
                     const char *path, const char *raw_path, const char *query, const char *frag)
{
    pc_plib_url_t u;
    char err[256];
    if (!pc_plib_url_parse(s, strlen(s), &u, err, sizeof(err))) fail_msg("%s: %s", s, err);
#define EQ(got, want)                                                                              \
    do {                                                                                           \
        if ((want) == NULL ? (got) != NULL : ((got) == NULL || strcmp((got), (want)) != 0))        \
            fail_msg("%s: %s is %s want %s", s, #got, (got) ? (got) : "NULL", (want) ? (want) : "NULL"); \
    } while (0)
    EQ(u.scheme, scheme);
    EQ(u.hostname, host);
    EQ(u.port, port);
    EQ(u.path, path);
    EQ(u.raw_path, raw_path);
    EQ(u.raw_query, query);
    EQ(u.fragment, frag);
    pc_plib_url_free(&u);
}

static void parse_err(const char *s, const char *want)
{
    pc_plib_url_t u;
    char err[256];
    assert_false(pc_plib_url_parse(s, strlen(s), &u, err, sizeof(err)));
    assert_string_equal(err, want);
}

static void test_parse(void **state)
{
    (void)state;
    parse_ok("https://example.com:8080/api?q=1#top", "https", "example.com", "8080", "/api", NULL, "q=1", "top");
    parse_ok("http://[::1]:8080/path", "http", "::1", "8080", "/path", NULL, NULL, NULL);
    parse_ok("https://example.com/path%2Fwith%2Fslashes", "https", "example.com", NULL,
             "/path/with/slashes", "/path%2Fwith%2Fslashes", NULL, NULL);
    parse_ok("https://example.com/a%21b", "https", "example.com", NULL, "/a!b", NULL, NULL, NULL);
    parse_ok("http://foo]bar/", "http", "foo]bar", NULL, "/", NULL, NULL, NULL);
    parse_ok("mailto:user@example.com", "mailto", NULL, NULL, NULL, NULL, NULL, NULL);
    parse_ok("HTTP://u:p@h/x?#f%20g", "http", "h", NULL, "/x", NULL, NULL, "f g");
    parse_ok("", NULL, NULL, NULL, NULL, NULL, NULL, NULL);
}

static void test_errors(void **state)
{
    (void)state;
    parse_err("http://exa%6dple.com/", "parse \"http://exa%6dple.com/\": invalid URL escape \"%6d\"");
    parse_err("http://a<b@example.com/", "parse \"http://a<b@example.com/\": net/url: invalid userinfo");
    parse_err("http://example.com:\xd9\xa3\xd9\xa4/",
              "parse \"http://example.com:\xd9\xa3\xd9\xa4/\": invalid port \":\xd9\xa3\xd9\xa4\" after host");
    parse_err("http://[invalid", "parse \"http://[invalid\": missing ']' in host");
    parse_err(":x", "parse \":x\": missing protocol scheme");
    parse_err("1a:b", "parse \"1a:b\": first path segment in URL cannot contain colon");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
