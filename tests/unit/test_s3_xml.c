/* S3 error documents: statuses, escaping, bounds. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "s3/xml.h"

#include <string.h>

static void test_statuses(void **state)
{
    (void)state;
    assert_int_equal(pc_s3_error_status("AccessDenied"), 403);
    assert_int_equal(pc_s3_error_status("SignatureDoesNotMatch"), 403);
    assert_int_equal(pc_s3_error_status("InvalidAccessKeyId"), 403);
    assert_int_equal(pc_s3_error_status("RequestTimeTooSkewed"), 403);
    assert_int_equal(pc_s3_error_status("AuthorizationHeaderMalformed"), 400);
    assert_int_equal(pc_s3_error_status("XAmzContentSHA256Mismatch"), 400);
    assert_int_equal(pc_s3_error_status("NoSuchKey"), 404);
    assert_int_equal(pc_s3_error_status("MethodNotAllowed"), 405);
    assert_int_equal(pc_s3_error_status("NotImplemented"), 501);
    assert_int_equal(pc_s3_error_status("SlowDown"), 503);
    assert_int_equal(pc_s3_error_status("NoSuchThing"), 500);
    assert_int_equal(pc_s3_error_status(NULL), 500);
    assert_string_equal(pc_s3_error_default_message("AccessDenied"), "Access Denied");
    assert_string_equal(pc_s3_error_default_message("NoSuchThing"), "");
}

static void test_document(void **state)
{
    (void)state;
    char out[1024];
    size_t n = pc_s3_error_xml(out, sizeof(out), "AccessDenied", "blocked: <policy> \"a\" & 'b'",
                               "/bkt/k&1", "req-1");
    assert_int_equal(n, strlen(out));
    assert_string_equal(
        out, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
             "<Error><Code>AccessDenied</Code>"
             "<Message>blocked: &lt;policy&gt; &quot;a&quot; &amp; &apos;b&apos;</Message>"
             "<Resource>/bkt/k&amp;1</Resource><RequestId>req-1</RequestId></Error>");
    n = pc_s3_error_xml(out, sizeof(out), "NoSuchKey", NULL, NULL, NULL);
    assert_string_equal(out, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
                             "<Error><Code>NoSuchKey</Code>"
                             "<Message>The specified key does not exist.</Message></Error>");
    /* exactly fitting, and one byte short */
    size_t need = n + 1;
    assert_int_equal(pc_s3_error_xml(out, need, "NoSuchKey", NULL, NULL, NULL), n);
    assert_int_equal(pc_s3_error_xml(out, need - 1, "NoSuchKey", NULL, NULL, NULL), 0);
    assert_string_equal(out, "");
}

static void test_escaping(void **state)
{
    (void)state;
    char out[64];
    /* valid UTF-8 kept; invalid bytes, controls and non-characters replaced */
    assert_int_equal(pc_s3_xml_escape(out, sizeof(out), "\xE2\x82\xAC", 3), 3);
    assert_string_equal(out, "\xE2\x82\xAC");
    assert_int_equal(pc_s3_xml_escape(out, sizeof(out),
                                      "a\xFF"
                                      "b",
                                      3),
                     5);
    assert_string_equal(out, "a\xEF\xBF\xBD"
                             "b");
    assert_int_equal(pc_s3_xml_escape(out, sizeof(out), "\x01", 1), 3);
    assert_int_equal(pc_s3_xml_escape(out, sizeof(out), "\xC0\x80", 2), 6);     /* overlong NUL */
    assert_int_equal(pc_s3_xml_escape(out, sizeof(out), "\xED\xA0\x80", 3), 3); /* surrogate */
    assert_int_equal(pc_s3_xml_escape(out, sizeof(out), "\xEF\xBF\xBF", 3), 3); /* U+FFFF */
    assert_string_equal(out, "\xEF\xBF\xBD");
    assert_int_equal(pc_s3_xml_escape(out, sizeof(out), "\xE2\x82", 2), 6); /* truncated */
    assert_int_equal(pc_s3_xml_escape(out, sizeof(out), "a\r\n\tb", 5), 9);
    assert_string_equal(out, "a&#13;\n\tb");
    assert_int_equal(pc_s3_xml_escape(out, 5, "&", 1), (size_t)-1);
    assert_int_equal(pc_s3_xml_escape(out, 6, "&", 1), 5);
    /* the documented bound holds for the worst case */
    char text[100];
    memset(text, '\'', sizeof(text) - 1);
    text[99] = '\0';
    char big[PC_S3_ERROR_XML_BOUND(4 * 99)];
    assert_true(pc_s3_error_xml(big, sizeof(big), text, text, text, text) > 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_statuses),
        cmocka_unit_test(test_document),
        cmocka_unit_test(test_escaping),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
