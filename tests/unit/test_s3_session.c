/* S3 session's pure pieces: endpoint URLs, which headers go upstream, presign
 * and aws-chunked stripping (src/s3/rewrite.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "s3/s3_int.h"

static void test_endpoint_parse(void **state)
{
    (void)state;
    pc__s3_endpoint_t ep;
    assert_true(pc__s3_endpoint_parse("http://127.0.0.1:4569", &ep));
    assert_false(ep.https);
    assert_string_equal(ep.host, "127.0.0.1");
    assert_int_equal(ep.port, 4569);
    assert_string_equal(ep.host_header, "127.0.0.1:4569");

    assert_true(pc__s3_endpoint_parse("https://s3.eu-west-1.amazonaws.com/", &ep));
    assert_true(ep.https);
    assert_int_equal(ep.port, 443);
    assert_string_equal(ep.host_header, "s3.eu-west-1.amazonaws.com");

    assert_true(pc__s3_endpoint_parse("HTTP://minio:80", &ep));
    assert_string_equal(ep.host_header, "minio"); /* default port not repeated */

    assert_true(pc__s3_endpoint_parse("http://[::1]:9000", &ep));
    assert_string_equal(ep.host, "::1");
    assert_int_equal(ep.port, 9000);
    assert_string_equal(ep.host_header, "[::1]:9000");

    assert_false(pc__s3_endpoint_parse(NULL, &ep));
    assert_false(pc__s3_endpoint_parse("ftp://x", &ep));
    assert_false(pc__s3_endpoint_parse("http://", &ep));
    assert_false(pc__s3_endpoint_parse("http://h:0", &ep));
    assert_false(pc__s3_endpoint_parse("http://h:65536", &ep));
    assert_false(pc__s3_endpoint_parse("http://h:12a", &ep));
    assert_false(pc__s3_endpoint_parse("http://h:", &ep));
    assert_false(pc__s3_endpoint_parse("http://user:pw@h", &ep));
    assert_false(pc__s3_endpoint_parse("http://h/prefix", &ep));
    assert_false(pc__s3_endpoint_parse("http://h?x=1", &ep));
    assert_false(pc__s3_endpoint_parse("http://h h", &ep));
}

static bool drop(const char *n)
{
    return pc__s3_drop_request_header(n, strlen(n));
}

static void test_request_headers(void **state)
{
    (void)state;
    /* The client's signature and everything it consists of is re-created. */
    assert_true(drop("Authorization"));
    assert_true(drop("X-Amz-Date"));
    assert_true(drop("x-amz-security-token"));
    assert_true(drop("X-AMZ-CONTENT-SHA256"));
    assert_true(drop("Host"));
    assert_true(drop("Date"));
    /* Framing and hop-by-hop. */
    assert_true(drop("Content-Length"));
    assert_true(drop("Transfer-Encoding"));
    assert_true(drop("Connection"));
    assert_true(drop("Keep-Alive"));
    assert_true(drop("Expect"));
    assert_true(drop("Proxy-Authorization"));
    /* End-to-end headers pass. */
    assert_false(drop("Content-Type"));
    assert_false(drop("Content-MD5"));
    assert_false(drop("x-amz-meta-owner"));
    assert_false(drop("x-amz-copy-source"));
    assert_false(drop("Range"));
    assert_false(drop("If-None-Match"));
    assert_false(drop("x-amz-date-extra"));
    assert_false(drop("Authorizationx"));
    /* Prefix of a dropped name is not dropped. */
    assert_false(pc__s3_drop_request_header("Authorization", 4));

    assert_true(pc__s3_drop_response_header("Connection", 10));
    assert_true(pc__s3_drop_response_header("transfer-encoding", 17));
    assert_false(pc__s3_drop_response_header("Content-Length", 14));
    assert_false(pc__s3_drop_response_header("ETag", 4));
}

static void strip_q(const char *in, const char *want)
{
    char out[256];
    size_t n = pc__s3_strip_presign_params(in, strlen(in), out, sizeof out);
    assert_int_equal(n, strlen(want));
    assert_string_equal(out, want);
}

static void test_presign_strip(void **state)
{
    (void)state;
    strip_q("X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AK%2F20260101%2Fus-east-1%2Fs3"
            "%2Faws4_request&X-Amz-Date=20260101T000000Z&X-Amz-Expires=60&X-Amz-SignedHeaders="
            "host&X-Amz-Signature=abcd",
            "");
    strip_q("versionId=3&X-Amz-Signature=ab&response-content-type=text%2Fplain",
            "versionId=3&response-content-type=text%2Fplain");
    strip_q("uploads", "uploads");
    strip_q("list-type=2&prefix=a&X-Amz-Security-Token=t", "list-type=2&prefix=a");
    strip_q("", "");
    strip_q("a&&b", "a&b");
    /* Only S3's exact spellings are authentication; others are the caller's. */
    strip_q("x-amz-signature=1&X-Amz-Signaturex=2", "x-amz-signature=1&X-Amz-Signaturex=2");
    char small[4];
    assert_int_equal(pc__s3_strip_presign_params("abcdef", 6, small, sizeof small), 0);
    assert_string_equal(small, "");
}

static void strip_ce(const char *in, const char *want)
{
    char out[128];
    size_t n = pc__s3_strip_aws_chunked(in, strlen(in), out, sizeof out);
    assert_int_equal(n, strlen(want));
    assert_string_equal(out, want);
}

static void test_aws_chunked_strip(void **state)
{
    (void)state;
    strip_ce("aws-chunked", "");
    strip_ce("aws-chunked,gzip", "gzip");
    strip_ce("gzip, aws-chunked", "gzip");
    strip_ce("gzip , AWS-Chunked , br", "gzip,br");
    strip_ce("identity", "identity");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_endpoint_parse),
        cmocka_unit_test(test_request_headers),
        cmocka_unit_test(test_presign_strip),
        cmocka_unit_test(test_aws_chunked_strip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
