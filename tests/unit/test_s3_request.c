/* S3 addressing (path / virtual-hosted style), keys, copy sources, operation names. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "http/http1.h"
#include "s3/request.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static pc_http1_span_t sp(const char *s)
{
    return (pc_http1_span_t){s, s ? strlen(s) : 0};
}

static pc_s3_req_result_t parse(const char *method, const char *target, const char *host,
                                const char *copy, const char *hostname, pc_s3_request_t *r)
{
    pc_s3_request_in_t in = {sp(method), sp(target), sp(host), sp(copy), hostname};
    return pc_s3_request_parse(&in, r);
}

/* method, target, copy source → operation name (path style) */
static void expect_op(const char *method, const char *target, const char *copy, const char *op)
{
    pc_s3_request_t r;
    assert_int_equal(parse(method, target, "localhost:9000", copy, NULL, &r), PC_S3_REQ_OK);
    if (strcmp(r.op_name, op) != 0)
        fail_msg("%s %s: got %s, want %s", method, target, r.op_name, op);
}

static void test_operations(void **state)
{
    (void)state;
    expect_op("GET", "/", NULL, "ListBuckets");
    expect_op("GET", "/?x-id=ListBuckets", NULL, "ListBuckets");
    expect_op("PUT", "/", NULL, "UnknownServiceOperation");
    expect_op("PUT", "/bkt", NULL, "CreateBucket");
    expect_op("DELETE", "/bkt/", NULL, "DeleteBucket");
    expect_op("HEAD", "/bkt", NULL, "HeadBucket");
    expect_op("GET", "/bkt", NULL, "ListObjects");
    expect_op("GET", "/bkt?prefix=a&delimiter=%2F", NULL, "ListObjects");
    expect_op("GET", "/bkt?list-type=2&prefix=x", NULL, "ListObjectsV2");
    expect_op("GET", "/bkt?list-type=1", NULL, "ListObjects");
    expect_op("GET", "/bkt?versions", NULL, "ListObjectVersions");
    expect_op("GET", "/bkt?uploads", NULL, "ListMultipartUploads");
    expect_op("GET", "/bkt?location", NULL, "GetBucketLocation");
    expect_op("POST", "/bkt?delete", NULL, "DeleteObjects");
    expect_op("POST", "/bkt", NULL, "PostObject");
    expect_op("GET", "/bkt?policy", NULL, "GetBucketPolicy");
    expect_op("PUT", "/bkt?policy", NULL, "PutBucketPolicy");
    expect_op("DELETE", "/bkt?policy", NULL, "DeleteBucketPolicy");
    expect_op("DELETE", "/bkt?lifecycle", NULL, "DeleteBucketLifecycle");
    expect_op("GET", "/bkt?tagging", NULL, "GetBucketTagging");
    expect_op("PUT", "/bkt?versioning", NULL, "PutBucketVersioning");
    expect_op("DELETE", "/bkt?acl", NULL, "UnknownBucketOperation");
    expect_op("PATCH", "/bkt", NULL, "UnknownBucketOperation");
    expect_op("GET", "/bkt/k", NULL, "GetObject");
    expect_op("GET", "/bkt/k?x-id=GetObject&response-content-type=a", NULL, "GetObject");
    expect_op("HEAD", "/bkt/k", NULL, "HeadObject");
    expect_op("PUT", "/bkt/k", NULL, "PutObject");
    expect_op("PUT", "/bkt/k", "/src/obj", "CopyObject");
    expect_op("DELETE", "/bkt/k", NULL, "DeleteObject");
    expect_op("POST", "/bkt/k?uploads", NULL, "CreateMultipartUpload");
    expect_op("PUT", "/bkt/k?partNumber=1&uploadId=abc", NULL, "UploadPart");
    expect_op("PUT", "/bkt/k?uploadId=abc&partNumber=2", "src/obj", "UploadPartCopy");
    expect_op("POST", "/bkt/k?uploadId=abc", NULL, "CompleteMultipartUpload");
    expect_op("DELETE", "/bkt/k?uploadId=abc", NULL, "AbortMultipartUpload");
    expect_op("GET", "/bkt/k?uploadId=abc&max-parts=5", NULL, "ListParts");
    expect_op("GET", "/bkt/k?tagging", NULL, "GetObjectTagging");
    expect_op("PUT", "/bkt/k?tagging", NULL, "PutObjectTagging");
    expect_op("DELETE", "/bkt/k?tagging", NULL, "DeleteObjectTagging");
    expect_op("GET", "/bkt/k?acl", NULL, "GetObjectAcl");
    expect_op("PUT", "/bkt/k?acl", NULL, "PutObjectAcl");
    expect_op("POST", "/bkt/k?restore", NULL, "RestoreObject");
    expect_op("POST", "/bkt/k", NULL, "UnknownObjectOperation");
    expect_op("PUT", "/bkt/k?uploadId=abc", NULL, "UnknownObjectOperation");
    expect_op("OPTIONS", "/bkt/k", NULL, "UnknownObjectOperation");
    /* a subresource name inside a value is not a subresource */
    expect_op("GET", "/bkt/k?response-content-disposition=acl", NULL, "GetObject");
}

static void test_path_style(void **state)
{
    (void)state;
    pc_s3_request_t r;
    assert_int_equal(
        parse("GET", "/my-bucket/dir/a%20b%2Bc+d.txt?x=1", "s3.local", NULL, "s3.local", &r),
        PC_S3_REQ_OK);
    assert_false(r.virtual_hosted);
    assert_string_equal(r.bucket, "my-bucket");
    assert_string_equal(r.key, "dir/a b+c+d.txt"); /* '+' stays '+' in a path */
    assert_int_equal(r.key_len, 15);
    /* keys are not normalised */
    assert_int_equal(parse("GET", "/b1b/a//b/../c/", NULL, NULL, NULL, &r), PC_S3_REQ_OK);
    assert_string_equal(r.key, "a//b/../c/");
    assert_string_equal(r.op_name, "GetObject");
    /* UTF-8 keys */
    assert_int_equal(parse("PUT", "/bkt/%E2%82%AC", NULL, NULL, NULL, &r), PC_S3_REQ_OK);
    assert_string_equal(r.key, "\xE2\x82\xAC");
    /* refusals */
    assert_int_equal(parse("GET", "/bkt/a%00b", NULL, NULL, NULL, &r), PC_S3_REQ_INVALID_URI);
    assert_string_equal(r.bucket, "");
    assert_int_equal(parse("GET", "/bkt/a%4", NULL, NULL, NULL, &r), PC_S3_REQ_INVALID_URI);
    assert_int_equal(parse("GET", "/bkt/a%zz", NULL, NULL, NULL, &r), PC_S3_REQ_INVALID_URI);
    assert_int_equal(parse("GET", "http://h/bkt/k", NULL, NULL, NULL, &r), PC_S3_REQ_INVALID_URI);
    assert_int_equal(parse("GET", "*", NULL, NULL, NULL, &r), PC_S3_REQ_INVALID_URI);
    assert_int_equal(parse("GET", "/ab/k", NULL, NULL, NULL, &r), PC_S3_REQ_INVALID_BUCKET);
    assert_int_equal(parse("GET", "/../k", NULL, NULL, NULL, &r), PC_S3_REQ_INVALID_BUCKET);
    assert_int_equal(parse("GET", "/b%2Fc/k", NULL, NULL, NULL, &r), PC_S3_REQ_INVALID_BUCKET);
    assert_int_equal(parse("GET", "//k", NULL, NULL, NULL, &r), PC_S3_REQ_INVALID_BUCKET);
    char target[1200] = "/bkt/";
    memset(target + 5, 'k', 1024);
    target[5 + 1024] = '\0';
    assert_int_equal(parse("GET", target, NULL, NULL, NULL, &r), PC_S3_REQ_OK);
    assert_int_equal(r.key_len, 1024);
    target[5 + 1024] = 'k';
    target[5 + 1025] = '\0';
    assert_int_equal(parse("GET", target, NULL, NULL, NULL, &r), PC_S3_REQ_KEY_TOO_LONG);
    assert_string_equal(pc_s3_req_result_code(PC_S3_REQ_KEY_TOO_LONG), "KeyTooLongError");
}

static void test_virtual_hosted(void **state)
{
    (void)state;
    pc_s3_request_t r;
    assert_int_equal(parse("GET", "/dir/k.txt", "photos.s3.local:8443", NULL, "s3.local", &r),
                     PC_S3_REQ_OK);
    assert_true(r.virtual_hosted);
    assert_string_equal(r.bucket, "photos");
    assert_string_equal(r.key, "dir/k.txt");
    assert_string_equal(r.op_name, "GetObject");
    /* dotted bucket names, host case ignored */
    assert_int_equal(parse("GET", "/", "My.Dotted.Bucket.S3.Local", NULL, "s3.local", &r),
                     PC_S3_REQ_OK);
    assert_string_equal(r.bucket, "my.dotted.bucket");
    assert_string_equal(r.key, "");
    assert_string_equal(r.op_name, "ListObjects");
    /* the bare hostname, or a host that only ends like it, is path style */
    assert_int_equal(parse("GET", "/b1b/k", "s3.local", NULL, "s3.local", &r), PC_S3_REQ_OK);
    assert_false(r.virtual_hosted);
    assert_string_equal(r.bucket, "b1b");
    assert_int_equal(parse("GET", "/b1b/k", "evils3.local", NULL, "s3.local", &r), PC_S3_REQ_OK);
    assert_false(r.virtual_hosted);
    assert_string_equal(r.bucket, "b1b");
    /* no hostname configured: always path style */
    assert_int_equal(parse("GET", "/b1b/k", "photos.s3.local", NULL, NULL, &r), PC_S3_REQ_OK);
    assert_string_equal(r.bucket, "b1b");
    assert_int_equal(parse("GET", "/k", "-x.s3.local", NULL, "s3.local", &r),
                     PC_S3_REQ_INVALID_BUCKET);
    assert_int_equal(parse("GET", "/k", "a_b%c.s3.local", NULL, "s3.local", &r),
                     PC_S3_REQ_INVALID_BUCKET);
}

static void test_copy_source(void **state)
{
    (void)state;
    pc_s3_request_t r;
    assert_int_equal(parse("PUT", "/dst/k", NULL, "/src-bkt/a/b%20c.txt?versionId=v1", NULL, &r),
                     PC_S3_REQ_OK);
    assert_string_equal(r.op_name, "CopyObject");
    assert_true(r.has_copy_source);
    assert_string_equal(r.copy_bucket, "src-bkt");
    assert_string_equal(r.copy_key, "a/b c.txt");
    assert_int_equal(r.copy_key_len, 9);
    assert_int_equal(parse("PUT", "/dst/k?partNumber=1&uploadId=u", NULL, "src/x%3Fy", NULL, &r),
                     PC_S3_REQ_OK);
    assert_string_equal(r.op_name, "UploadPartCopy");
    assert_string_equal(r.copy_key, "x?y");
    assert_int_equal(parse("PUT", "/dst/k", NULL, "nobucketonly", NULL, &r),
                     PC_S3_REQ_INVALID_COPY_SOURCE);
    assert_int_equal(parse("PUT", "/dst/k", NULL, "/src/", NULL, &r),
                     PC_S3_REQ_INVALID_COPY_SOURCE);
    assert_int_equal(parse("PUT", "/dst/k", NULL, "/s/k", NULL, &r), PC_S3_REQ_INVALID_COPY_SOURCE);
    /* ignored where S3 ignores it */
    assert_int_equal(parse("GET", "/dst/k", NULL, "junk", NULL, &r), PC_S3_REQ_OK);
    assert_false(r.has_copy_source);
}

static void test_from_msg(void **state)
{
    (void)state;
    const char raw[] = "PUT /k HTTP/1.1\r\nHost: dst.s3.local\r\nX-Amz-Copy-Source: src/obj\r\n"
                       "Content-Length: 0\r\n\r\n";
    pc_http1_t p;
    pc_http1_init(&p, false);
    size_t used;
    pc_http1_span_t data;
    assert_int_equal(pc_http1_feed(&p, raw, sizeof(raw) - 1, &used, &data), PC_HTTP1_HEAD);
    pc_s3_request_t r;
    assert_int_equal(pc_s3_request_from_msg(&p.msg, "s3.local", &r), PC_S3_REQ_OK);
    assert_string_equal(r.bucket, "dst");
    assert_string_equal(r.key, "k");
    assert_string_equal(r.op_name, "CopyObject");
    assert_string_equal(r.copy_bucket, "src");
    assert_string_equal(r.copy_key, "obj");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_operations),     cmocka_unit_test(test_path_style),
        cmocka_unit_test(test_virtual_hosted), cmocka_unit_test(test_copy_source),
        cmocka_unit_test(test_from_msg),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
