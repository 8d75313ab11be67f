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

/* ---------- the re-signed upstream head ---------- */

#define T_NOW 1795300000 /* 2026-11-21T...: any fixed time */

static pc_http1_t parse_req(const char *raw)
{
    pc_http1_t p;
    pc_http1_init(&p, false);
    size_t used = 0;
    pc_http1_span_t d;
    assert_int_equal(pc_http1_feed(&p, raw, strlen(raw), &used, &d), PC_HTTP1_HEAD);
    return p;
}

static char *head_for(const char *raw, const char *bucket, pc__s3_framing_t framing, uint64_t clen,
                      bool decoded, const char *payload)
{
    pc_http1_t p = parse_req(raw);
    pc__s3_endpoint_t ep;
    assert_true(pc__s3_endpoint_parse("http://127.0.0.1:4569", &ep));
    char date[PC_SIGV4_AMZ_DATE_LEN + 1];
    pc_sigv4_amz_date(T_NOW, date);
    pc__s3_upstream_req_t in = {
        .msg = &p.msg,
        .bucket = bucket,
        .ep = &ep,
        .payload_hash = payload,
        .decoded_aws_chunked = decoded,
        .framing = framing,
        .content_length = clen,
        .access_key = "UPSTREAMKEY",
        .secret = "upstream-secret",
        .region = "eu-central-1",
        .amz_date = date,
    };
    size_t len = 0;
    const char *code = "x";
    uint8_t *h = pc__s3_upstream_head(&in, &len, &code);
    assert_non_null(h);
    assert_null(code);
    char *z = malloc(len + 1);
    memcpy(z, h, len);
    z[len] = 0;
    free(h);
    return z;
}

/* The head we send must verify with the resource's key, as the store will. */
static void verify_upstream(const char *head)
{
    pc_http1_t p = parse_req(head);
    pc_sigv4_request_t sr = {.method = p.msg.method_name,
                             .path = p.msg.path,
                             .query = p.msg.has_query ? p.msg.query : (pc_http1_span_t){NULL, 0},
                             .headers = p.msg.headers,
                             .nheaders = p.msg.nheaders};
    pc_sigv4_auth_t auth;
    assert_int_equal(pc_sigv4_parse(&sr, &auth), PC_SIGV4_OK);
    assert_string_equal(auth.access_key, "UPSTREAMKEY");
    assert_string_equal(auth.region, "eu-central-1");
    pc_sigv4_verified_t v;
    assert_int_equal(pc_sigv4_verify(&auth, &sr, "upstream-secret", T_NOW, NULL, &v), PC_SIGV4_OK);
    assert_int_equal(pc_sigv4_verify(&auth, &sr, "client-secret", T_NOW, NULL, &v),
                     PC_SIGV4_MISMATCH);
}

static void test_upstream_head_path_style_resigned(void **state)
{
    (void)state;
    const char *raw =
        "PUT /photos/2026/a%20b.jpg?X-Amz-Algorithm=AWS4-HMAC-SHA256&partNumber=2&"
        "X-Amz-Signature=deadbeef&uploadId=u1 HTTP/1.1\r\n"
        "Host: photos.s3.example\r\n"
        "Authorization: AWS4-HMAC-SHA256 Credential=CLIENT/20261121/us-east-1/s3/aws4_request, "
        "SignedHeaders=host, Signature=0000\r\n"
        "X-Amz-Date: 20200101T000000Z\r\n"
        "x-amz-security-token: client-token\r\n"
        "X-Amz-Content-SHA256: UNSIGNED-PAYLOAD\r\n"
        "x-amz-meta-owner: Alice  Smith\r\n"
        "Content-Type: image/jpeg\r\n"
        "Expect: 100-continue\r\n"
        "Connection: keep-alive\r\n"
        "Content-Length: 11\r\n"
        "\r\n";
    char *h = head_for(raw, "photos", PC__S3_FRAME_LENGTH, 11, false, "UNSIGNED-PAYLOAD");
    /* virtual-hosted -> path style; presign parameters gone, the rest kept in order */
    assert_true(strncmp(h,
                        "PUT /photos/photos/2026/a%20b.jpg?partNumber=2&uploadId=u1 HTTP/1.1\r\n",
                        69) == 0);
    assert_non_null(strstr(h, "\r\nHost: 127.0.0.1:4569\r\n"));
    assert_non_null(strstr(h, "\r\nContent-Length: 11\r\n"));
    assert_non_null(strstr(h, "\r\nx-amz-meta-owner: Alice  Smith\r\n"));
    assert_null(strstr(h, "CLIENT"));
    assert_null(strstr(h, "client-token"));
    assert_null(strstr(h, "20200101T000000Z"));
    assert_null(strstr(h, "Expect"));
    assert_null(strstr(h, "Connection"));
    assert_null(strstr(h, "photos.s3.example"));
    verify_upstream(h);
    free(h);
}

static void test_upstream_head_aws_chunked_decoded(void **state)
{
    (void)state;
    const char *raw = "PUT /bkt/key HTTP/1.1\r\n"
                      "Host: 127.0.0.1:9000\r\n"
                      "x-amz-content-sha256: STREAMING-UNSIGNED-PAYLOAD-TRAILER\r\n"
                      "Content-Encoding: aws-chunked, gzip\r\n"
                      "x-amz-decoded-content-length: 300000\r\n"
                      "x-amz-trailer: x-amz-checksum-crc32\r\n"
                      "x-amz-sdk-checksum-algorithm: CRC32\r\n"
                      "Transfer-Encoding: chunked\r\n"
                      "\r\n";
    char *h = head_for(raw, NULL, PC__S3_FRAME_LENGTH, 300000, true, "UNSIGNED-PAYLOAD");
    assert_true(strncmp(h, "PUT /bkt/key HTTP/1.1\r\n", 23) == 0);
    assert_non_null(strstr(h, "\r\nContent-Length: 300000\r\n"));
    assert_non_null(strstr(h, "\r\nContent-Encoding: gzip\r\n"));
    assert_non_null(strstr(h, "\r\nx-amz-content-sha256: UNSIGNED-PAYLOAD\r\n"));
    assert_null(strstr(h, "aws-chunked"));
    assert_null(strstr(h, "decoded-content-length"));
    assert_null(strstr(h, "x-amz-trailer"));
    assert_null(strstr(h, "checksum-algorithm"));
    assert_null(strstr(h, "Transfer-Encoding"));
    verify_upstream(h);
    free(h);

    /* Unknown decoded length: chunked upstream, no Content-Length. */
    h = head_for(raw, NULL, PC__S3_FRAME_CHUNKED, 0, true, "UNSIGNED-PAYLOAD");
    assert_non_null(strstr(h, "\r\nTransfer-Encoding: chunked\r\n"));
    assert_null(strstr(h, "Content-Length"));
    verify_upstream(h);
    free(h);
}

static void test_upstream_head_get_signed_hash(void **state)
{
    (void)state;
    const char *raw = "GET /bkt?list-type=2&prefix=a%2Fb HTTP/1.1\r\nHost: x\r\n\r\n";
    char *h = head_for(raw, NULL, PC__S3_FRAME_NONE, 0, false, PC_SIGV4_EMPTY_SHA256);
    assert_true(strncmp(h, "GET /bkt?list-type=2&prefix=a%2Fb HTTP/1.1\r\n", 44) == 0);
    assert_null(strstr(h, "Content-Length"));
    assert_non_null(strstr(h, PC_SIGV4_EMPTY_SHA256));
    verify_upstream(h);
    free(h);

    /* No resource credentials: refused, never sent unsigned. */
    pc_http1_t p = parse_req(raw);
    pc__s3_endpoint_t ep;
    assert_true(pc__s3_endpoint_parse("http://h:1", &ep));
    pc__s3_upstream_req_t in = {.msg = &p.msg,
                                .ep = &ep,
                                .payload_hash = "UNSIGNED-PAYLOAD",
                                .region = "r",
                                .amz_date = "20260101T000000Z"};
    size_t len = 1;
    const char *code = NULL;
    assert_null(pc__s3_upstream_head(&in, &len, &code));
    assert_string_equal(code, "InternalError");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_endpoint_parse),
        cmocka_unit_test(test_request_headers),
        cmocka_unit_test(test_presign_strip),
        cmocka_unit_test(test_aws_chunked_strip),
        cmocka_unit_test(test_upstream_head_path_style_resigned),
        cmocka_unit_test(test_upstream_head_aws_chunked_decoded),
        cmocka_unit_test(test_upstream_head_get_signed_hash),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
