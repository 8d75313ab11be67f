/*
 * SigV4 against AWS's published S3 examples (GET object, PUT object, bucket
 * lifecycle / list, presigned URL, chunked uploads with and without signed
 * trailers), plus the refusals: forged, skewed, expired, malformed, unsigned
 * x-amz-* headers, tampered chunks and checksums.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "core/crypto.h"
#include "http/http1.h"
#include "s3/sigv4.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define AK "AKIAIOSFODNN7EXAMPLE"
#define SECRET "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
#define T20130524 1369353600 /* 2013-05-24T00:00:00Z */

/* A parsed request head kept alive with its bytes. */
typedef struct {
    char *raw;
    pc_http1_t p;
    pc_sigv4_request_t req;
} parsed_t;

static parsed_t *parse(const char *raw)
{
    parsed_t *r = calloc(1, sizeof(*r));
    assert_non_null(r);
    r->raw = strdup(raw);
    pc_http1_init(&r->p, false);
    size_t used = 0;
    pc_http1_span_t data;
    assert_int_equal(pc_http1_feed(&r->p, r->raw, strlen(r->raw), &used, &data), PC_HTTP1_HEAD);
    const pc_http1_msg_t *m = &r->p.msg;
    r->req = (pc_sigv4_request_t){m->method_name, m->path, m->query, m->headers, m->nheaders};
    return r;
}

static void done(parsed_t *r)
{
    free(r->raw);
    free(r);
}

static pc_sigv4_result_t check(const char *raw, int64_t now, pc_sigv4_verified_t *v)
{
    parsed_t *r = parse(raw);
    pc_sigv4_auth_t auth;
    pc_sigv4_result_t res = pc_sigv4_parse(&r->req, &auth);
    if (res == PC_SIGV4_OK) {
        assert_string_equal(auth.access_key, AK);
        pc_sigv4_verified_t tmp;
        res = pc_sigv4_verify(&auth, &r->req, SECRET, now, NULL, v ? v : &tmp);
    }
    done(r);
    return res;
}

#define EMPTY PC_SIGV4_EMPTY_SHA256

static const char get_object[] =
    "GET /test.txt HTTP/1.1\r\n"
    "Host: examplebucket.s3.amazonaws.com\r\n"
    "Authorization: AWS4-HMAC-SHA256 Credential=" AK "/20130524/us-east-1/s3/aws4_request,"
    "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date,"
    "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41\r\n"
    "Range: bytes=0-9\r\n"
    "x-amz-content-sha256: " EMPTY "\r\n"
    "x-amz-date: 20130524T000000Z\r\n\r\n";

static void test_documented_header_examples(void **state)
{
    (void)state;
    pc_sigv4_verified_t v;
    assert_int_equal(check(get_object, T20130524 + 60, &v), PC_SIGV4_OK);
    assert_int_equal(v.payload, PC_SIGV4_PAYLOAD_HASH);
    assert_int_equal(v.request_time_s, T20130524);
    assert_string_equal(v.scope, "20130524/us-east-1/s3/aws4_request");

    /* PUT /test$file.text with a Date header and a body hash */
    assert_int_equal(
        check("PUT /test%24file.text HTTP/1.1\r\n"
              "Host: examplebucket.s3.amazonaws.com\r\n"
              "Date: Fri, 24 May 2013 00:00:00 GMT\r\n"
              "Authorization: AWS4-HMAC-SHA256 Credential=" AK
              "/20130524/us-east-1/s3/aws4_request,"
              "SignedHeaders=date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class,"
              "Signature=98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd\r\n"
              "x-amz-date: 20130524T000000Z\r\n"
              "x-amz-storage-class: REDUCED_REDUNDANCY\r\n"
              "x-amz-content-sha256: "
              "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072\r\n"
              "Content-Length: 21\r\n\r\n",
              T20130524, &v),
        PC_SIGV4_OK);
    uint8_t want[32];
    pc_sha256("Welcome to Amazon S3.", 21, want);
    assert_memory_equal(v.payload_sha256, want, 32);

    /* the body is checked against the signed hash while it streams */
    pc_sigv4_body_hash_t bh;
    assert_true(pc_sigv4_body_hash_init(&bh, v.payload_sha256));
    pc_sigv4_body_hash_update(&bh, "Welcome to ", 11);
    pc_sigv4_body_hash_update(&bh, "Amazon S3.", 10);
    assert_int_equal(bh.bytes, 21);
    assert_true(pc_sigv4_body_hash_final(&bh));
    assert_true(pc_sigv4_body_hash_init(&bh, v.payload_sha256));
    pc_sigv4_body_hash_update(&bh, "Welcome to Amazon S3!", 21);
    assert_false(pc_sigv4_body_hash_final(&bh));
    assert_true(pc_sigv4_body_hash_init(&bh, v.payload_sha256));
    pc_sigv4_body_hash_free(&bh);
    pc_sigv4_body_hash_free(&bh);

    /* GET ?lifecycle: a value-less query parameter */
    assert_int_equal(
        check("GET /?lifecycle HTTP/1.1\r\n"
              "Host: examplebucket.s3.amazonaws.com\r\n"
              "Authorization: AWS4-HMAC-SHA256 Credential=" AK
              "/20130524/us-east-1/s3/aws4_request,"
              "SignedHeaders=host;x-amz-content-sha256;x-amz-date,"
              "Signature=fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543\r\n"
              "x-amz-date: 20130524T000000Z\r\n"
              "x-amz-content-sha256: " EMPTY "\r\n\r\n",
              T20130524, NULL),
        PC_SIGV4_OK);

    /* GET ?prefix=J&max-keys=2: parameters sorted into the canonical query */
    assert_int_equal(
        check("GET /?prefix=J&max-keys=2 HTTP/1.1\r\n"
              "Host: examplebucket.s3.amazonaws.com\r\n"
              "Authorization: AWS4-HMAC-SHA256 Credential=" AK
              "/20130524/us-east-1/s3/aws4_request, "
              "SignedHeaders=host;x-amz-content-sha256;x-amz-date, "
              "Signature=34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7\r\n"
              "x-amz-date: 20130524T000000Z\r\n"
              "x-amz-content-sha256: " EMPTY "\r\n\r\n",
              T20130524, NULL),
        PC_SIGV4_OK);
}

static char *replace(const char *s, const char *from, const char *to)
{
    const char *at = strstr(s, from);
    assert_non_null(at);
    size_t n = strlen(s) - strlen(from) + strlen(to);
    char *r = malloc(n + 1);
    size_t pre = (size_t)(at - s);
    memcpy(r, s, pre);
    memcpy(r + pre, to, strlen(to));
    memcpy(r + pre + strlen(to), at + strlen(from), strlen(at + strlen(from)) + 1);
    return r;
}

static void expect_variant(const char *base, const char *from, const char *to, int64_t now,
                           pc_sigv4_result_t want)
{
    char *r = replace(base, from, to);
    assert_int_equal(check(r, now, NULL), want);
    free(r);
}

static void test_header_refusals(void **state)
{
    (void)state;
    /* forged signature, other secret, other header value, other path */
    expect_variant(get_object, "Signature=f0e8", "Signature=f0e9", T20130524, PC_SIGV4_MISMATCH);
    expect_variant(get_object, "bytes=0-9", "bytes=0-10", T20130524, PC_SIGV4_MISMATCH);
    expect_variant(get_object, "GET /test.txt", "GET /test.tx", T20130524, PC_SIGV4_MISMATCH);
    expect_variant(get_object, "GET /test.txt", "GET /test.txt?a=b", T20130524, PC_SIGV4_MISMATCH);
    /* the value's spacing is normalised, so this still verifies */
    expect_variant(get_object, "Range: bytes=0-9", "Range:   bytes=0-9  ", T20130524, PC_SIGV4_OK);
    /* clock skew: 15 minutes is fine, 15 minutes and a second is not */
    assert_int_equal(check(get_object, T20130524 + 900, NULL), PC_SIGV4_OK);
    assert_int_equal(check(get_object, T20130524 - 900, NULL), PC_SIGV4_OK);
    assert_int_equal(check(get_object, T20130524 + 901, NULL), PC_SIGV4_SKEWED);
    assert_int_equal(check(get_object, T20130524 - 901, NULL), PC_SIGV4_SKEWED);
    /* malformed */
    expect_variant(get_object, "/aws4_request,", "/aws4_requesx,", T20130524, PC_SIGV4_MALFORMED);
    expect_variant(get_object, "us-east-1/s3/", "us-east-1/ec2/", T20130524, PC_SIGV4_MALFORMED);
    expect_variant(get_object, "SignedHeaders=host;range;", "SignedHeaders=range;host;", T20130524,
                   PC_SIGV4_MALFORMED);
    expect_variant(get_object, "SignedHeaders=host;range;", "SignedHeaders=Host;range;", T20130524,
                   PC_SIGV4_MALFORMED);
    expect_variant(get_object, "SignedHeaders=host;range;", "SignedHeaders=range;", T20130524,
                   PC_SIGV4_MALFORMED);
    expect_variant(get_object, "Signature=f0e8bdb8", "Signature=f0e8bdb", T20130524,
                   PC_SIGV4_MALFORMED);
    expect_variant(get_object, "/20130524/us-east-1", "/20130525/us-east-1", T20130524,
                   PC_SIGV4_MALFORMED);
    expect_variant(get_object, "x-amz-date: 20130524T000000Z", "x-amz-date: 20130524T250000Z",
                   T20130524, PC_SIGV4_MALFORMED);
    expect_variant(get_object, "AWS4-HMAC-SHA256 Cred", "AWS AKIA:sig Cred", T20130524,
                   PC_SIGV4_UNSUPPORTED);
    expect_variant(get_object, "AWS4-HMAC-SHA256 Cred", "AWS4-ECDSA-P256-SHA256 Cred", T20130524,
                   PC_SIGV4_UNSUPPORTED);
    /* content hash header */
    expect_variant(get_object, "x-amz-content-sha256: " EMPTY "\r\n", "", T20130524,
                   PC_SIGV4_MISSING_CONTENT_SHA256);
    expect_variant(get_object, "x-amz-content-sha256: " EMPTY, "x-amz-content-sha256: nope",
                   T20130524, PC_SIGV4_BAD_CONTENT_SHA256);
    /* an x-amz-* header nobody signed */
    expect_variant(get_object, "Range: bytes=0-9\r\n",
                   "Range: bytes=0-9\r\nx-amz-copy-source: /other/key\r\n", T20130524,
                   PC_SIGV4_UNSIGNED_HEADERS);
    /* a signed header that is missing */
    expect_variant(get_object, "Range: bytes=0-9\r\n", "", T20130524, PC_SIGV4_MISMATCH);
    /* no credentials at all */
    assert_int_equal(check("GET /x HTTP/1.1\r\nHost: h\r\n\r\n", T20130524, NULL),
                     PC_SIGV4_NO_AUTH);
}

static const char presigned[] =
    "GET /test.txt?X-Amz-Algorithm=AWS4-HMAC-SHA256"
    "&X-Amz-Credential=" AK "%2F20130524%2Fus-east-1%2Fs3%2Faws4_request"
    "&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host"
    "&X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404 HTTP/1.1\r\n"
    "Host: examplebucket.s3.amazonaws.com\r\n\r\n";

static void test_presigned(void **state)
{
    (void)state;
    pc_sigv4_verified_t v;
    assert_int_equal(check(presigned, T20130524 + 3600, &v), PC_SIGV4_OK);
    assert_int_equal(v.payload, PC_SIGV4_PAYLOAD_UNSIGNED);
    assert_int_equal(check(presigned, T20130524 + 86400, NULL), PC_SIGV4_OK);
    assert_int_equal(check(presigned, T20130524 + 86401, NULL), PC_SIGV4_EXPIRED);
    assert_int_equal(check(presigned, T20130524 - 900, NULL), PC_SIGV4_OK);
    assert_int_equal(check(presigned, T20130524 - 901, NULL), PC_SIGV4_SKEWED);
    /* the query's order does not matter; its content does */
    expect_variant(presigned, "&X-Amz-Expires=86400", "", T20130524, PC_SIGV4_MALFORMED);
    expect_variant(presigned, "X-Amz-Expires=86400", "X-Amz-Expires=86400&X-Amz-Expires=1",
                   T20130524, PC_SIGV4_MALFORMED);
    expect_variant(presigned, "X-Amz-Expires=86400", "X-Amz-Expires=604801", T20130524,
                   PC_SIGV4_MALFORMED);
    expect_variant(presigned, "X-Amz-Expires=86400", "X-Amz-Expires=86401", T20130524,
                   PC_SIGV4_MISMATCH);
    expect_variant(presigned, "test.txt?", "test.txt?response-content-type=x&", T20130524,
                   PC_SIGV4_MISMATCH);
    expect_variant(presigned, "Host: examplebucket.s3", "Host: otherbucket.s3", T20130524,
                   PC_SIGV4_MISMATCH);
    expect_variant(presigned, "\r\n\r\n", "\r\nx-amz-copy-source: b/k\r\n\r\n", T20130524,
                   PC_SIGV4_UNSIGNED_HEADERS);
    expect_variant(presigned, "\r\n\r\n", "\r\nAuthorization: AWS4-HMAC-SHA256 x\r\n\r\n",
                   T20130524, PC_SIGV4_MALFORMED);
    expect_variant(presigned, "AWS4-HMAC-SHA256&", "AWS4-HMAC-SHA1&", T20130524,
                   PC_SIGV4_UNSUPPORTED);
    assert_string_equal(pc_sigv4_result_code(PC_SIGV4_MALFORMED, true),
                        "AuthorizationQueryParametersError");
    assert_string_equal(pc_sigv4_result_code(PC_SIGV4_EXPIRED, true), "AccessDenied");
    assert_string_equal(pc_sigv4_result_message(PC_SIGV4_EXPIRED), "Request has expired");
}

/* ---------- signing ---------- */

static void test_sign_matches_documented(void **state)
{
    (void)state;
    pc_http1_header_t h[] = {
        {{"Host", 4}, {"examplebucket.s3.amazonaws.com", 30}},
        {{"Range", 5}, {"bytes=0-9", 9}},
        {{"x-amz-content-sha256", 20}, {EMPTY, 64}},
        {{"X-Amz-Date", 10}, {"20130524T000000Z", 16}},
    };
    char date[PC_SIGV4_AMZ_DATE_LEN + 1];
    pc_sigv4_amz_date(T20130524, date);
    assert_string_equal(date, "20130524T000000Z");
    char other[PC_SIGV4_AMZ_DATE_LEN + 1]; /* every field non-zero, then single digits */
    pc_sigv4_amz_date(1700000000, other);
    assert_string_equal(other, "20231114T221320Z");
    pc_sigv4_amz_date(T20130524 + 9 * 3600 + 5 * 60 + 7, other);
    assert_string_equal(other, "20130524T090507Z");
    pc_sigv4_sign_in_t in = {
        .method = "GET",
        .path = {"/test.txt", 9},
        .query = {"", 0},
        .headers = h,
        .nheaders = 4,
        .payload_hash = EMPTY,
        .access_key = AK,
        .secret = SECRET,
        .region = "us-east-1",
        .service = "s3",
        .amz_date = date,
    };
    char authz[PC_SIGV4_AUTHZ_MAX];
    pc_sigv4_key_cache_t cache;
    pc_sigv4_key_cache_init(&cache);
    for (int round = 0; round < 2; round++) { /* the second comes from the key cache */
        assert_true(pc_sigv4_sign(&in, &cache, authz, sizeof(authz), NULL));
        assert_string_equal(
            authz, "AWS4-HMAC-SHA256 Credential=" AK "/20130524/us-east-1/s3/aws4_request,"
                   "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date,"
                   "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
    }
    /* query parameters are canonicalised (sorted) when signing too */
    in.path = (pc_http1_span_t){"/", 1};
    in.query = (pc_http1_span_t){"prefix=J&max-keys=2", 19};
    in.headers = (pc_http1_header_t[]){h[0], h[2], h[3]};
    in.nheaders = 3;
    assert_true(pc_sigv4_sign(&in, &cache, authz, sizeof(authz), NULL));
    assert_non_null(strstr(
        authz, "Signature=34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7"));
    /* too small an output buffer is refused, not truncated */
    assert_false(pc_sigv4_sign(&in, &cache, authz, 40, NULL));
    assert_string_equal(authz, "");
    pc_sigv4_key_cache_wipe(&cache);
}

/* sign a request with our signer, then verify it: encodings round-trip */
static void test_sign_then_verify(void **state)
{
    (void)state;
    const char *path = "/bucket/dir/%E2%82%AC%20a+b%3D~x(1).txt";
    const char *query = "uploadId=a%2Fb%2Bc&partNumber=3&x-id=UploadPart&empty=&flag";
    char date[PC_SIGV4_AMZ_DATE_LEN + 1];
    pc_sigv4_amz_date(1700000000, date);
    pc_http1_header_t h[] = {
        {{"host", 4}, {"127.0.0.1:9000", 14}},
        {{"x-amz-date", 10}, {date, 16}},
        {{"x-amz-content-sha256", 20}, {"UNSIGNED-PAYLOAD", 16}},
        {{"x-amz-meta-a", 12}, {"one  two", 8}},
    };
    pc_sigv4_sign_in_t in = {
        .method = "PUT",
        .path = {path, strlen(path)},
        .query = {query, strlen(query)},
        .headers = h,
        .nheaders = 4,
        .payload_hash = "UNSIGNED-PAYLOAD",
        .access_key = "AKPORT",
        .secret = "s3cr3t",
        .region = "eu-west-1",
        .service = "s3",
        .amz_date = date,
    };
    char authz[PC_SIGV4_AUTHZ_MAX];
    assert_true(pc_sigv4_sign(&in, NULL, authz, sizeof(authz), NULL));
    char raw[4096 + PC_SIGV4_AUTHZ_MAX];
    snprintf(raw, sizeof(raw),
             "PUT %s?%s HTTP/1.1\r\nHost: 127.0.0.1:9000\r\nx-amz-date: %s\r\n"
             "x-amz-content-sha256: UNSIGNED-PAYLOAD\r\nx-amz-meta-a:  one two \r\n"
             "Authorization: %s\r\nContent-Length: 0\r\n\r\n",
             path, query, date, authz);
    parsed_t *r = parse(raw);
    pc_sigv4_auth_t auth;
    assert_int_equal(pc_sigv4_parse(&r->req, &auth), PC_SIGV4_OK);
    assert_string_equal(auth.access_key, "AKPORT");
    assert_string_equal(auth.region, "eu-west-1");
    pc_sigv4_verified_t v;
    assert_int_equal(pc_sigv4_verify(&auth, &r->req, "s3cr3t", 1700000000, NULL, &v), PC_SIGV4_OK);
    assert_int_equal(pc_sigv4_verify(&auth, &r->req, "s3cr3T", 1700000000, NULL, &v),
                     PC_SIGV4_MISMATCH);
    done(r);
}

/* A Date header instead of x-amz-date, and a repeated header joined with ','. */
static void test_date_header_and_repeats(void **state)
{
    (void)state;
    pc_http1_header_t h[] = {
        {{"Host", 4}, {"b.s3.local", 10}},
        {{"Date", 4}, {"Fri, 24 May 2013 00:10:00 GMT", 29}},
        {{"x-amz-content-sha256", 20}, {"UNSIGNED-PAYLOAD", 16}},
        {{"x-amz-meta-tag", 14}, {"a", 1}},
        {{"X-Amz-Meta-Tag", 14}, {"b  c", 4}},
    };
    pc_sigv4_sign_in_t in = {
        .method = "GET",
        .path = {"/k", 2},
        .query = {"", 0},
        .headers = h,
        .nheaders = 5,
        .payload_hash = "UNSIGNED-PAYLOAD",
        .access_key = AK,
        .secret = SECRET,
        .region = "us-east-1",
        .service = "s3",
        .amz_date = "20130524T001000Z",
    };
    char authz[PC_SIGV4_AUTHZ_MAX];
    assert_true(pc_sigv4_sign(&in, NULL, authz, sizeof(authz), NULL));
    assert_non_null(strstr(authz, "SignedHeaders=date;host;x-amz-content-sha256;x-amz-meta-tag,"));
    char raw[4096];
    snprintf(raw, sizeof(raw),
             "GET /k HTTP/1.1\r\nHost: b.s3.local\r\nDate: Fri, 24 May 2013 00:10:00 GMT\r\n"
             "x-amz-content-sha256: UNSIGNED-PAYLOAD\r\nx-amz-meta-tag: a\r\n"
             "X-Amz-Meta-Tag: b c\r\nAuthorization: %s\r\n\r\n",
             authz);
    pc_sigv4_verified_t v;
    assert_int_equal(check(raw, T20130524 + 600, &v), PC_SIGV4_OK);
    assert_int_equal(v.request_time_s, T20130524 + 600);
    assert_string_equal(v.amz_date, "20130524T001000Z");
    /* the repeated header's order is part of what was signed */
    char *swapped = replace(raw, "x-amz-meta-tag: a\r\nX-Amz-Meta-Tag: b c",
                            "x-amz-meta-tag: b c\r\nX-Amz-Meta-Tag: a");
    assert_int_equal(check(swapped, T20130524 + 600, NULL), PC_SIGV4_MISMATCH);
    free(swapped);
    /* an unparsable Date is malformed, a stale one skewed */
    expect_variant(raw, "Fri, 24 May 2013 00:10:00 GMT", "Fri, 24 May 2013 00:10:00 UTC", T20130524,
                   PC_SIGV4_MALFORMED);
    assert_int_equal(check(raw, T20130524 + 600 + 901, NULL), PC_SIGV4_SKEWED);
}

/* ---------- aws-chunked ---------- */

static char *chunked_body(const char *const sigs[3], const char *trailer, size_t *len)
{
    size_t cap = 70000;
    char *b = malloc(cap);
    size_t n = 0;
    n += (size_t)snprintf(b + n, cap - n, "10000;chunk-signature=%s\r\n", sigs[0]);
    memset(b + n, 'a', 65536);
    n += 65536;
    n += (size_t)snprintf(b + n, cap - n, "\r\n400;chunk-signature=%s\r\n", sigs[1]);
    memset(b + n, 'a', 1024);
    n += 1024;
    n += (size_t)snprintf(b + n, cap - n, "\r\n0;chunk-signature=%s\r\n%s\r\n", sigs[2], trailer);
    *len = n;
    return b;
}

/* Decode body in pieces of `step`; returns the final status and the data count. */
static pc_sigv4_chunked_status_t decode(pc_sigv4_chunked_t *d, const char *b, size_t n, size_t step,
                                        uint64_t *out_bytes, bool *all_a)
{
    size_t off = 0;
    uint64_t got = 0;
    *all_a = true;
    for (;;) {
        size_t avail = n - off < step ? n - off : step;
        size_t used = 0;
        pc_http1_span_t data = {0};
        pc_sigv4_chunked_status_t st = pc_sigv4_chunked_feed(d, b + off, avail, &used, &data);
        off += used;
        if (st == PC_SIGV4_CHUNKED_DATA) {
            got += data.n;
            for (size_t i = 0; i < data.n; i++)
                *all_a = *all_a && data.p[i] == 'a';
            continue;
        }
        if (st != PC_SIGV4_CHUNKED_NEED_MORE || off == n) {
            *out_bytes = got;
            return st;
        }
    }
}

static const char seed_request[] =
    "PUT /examplebucket/chunkObject.txt HTTP/1.1\r\n"
    "Host: s3.amazonaws.com\r\n"
    "x-amz-date: 20130524T000000Z\r\n"
    "x-amz-storage-class: REDUCED_REDUNDANCY\r\n"
    "Authorization: AWS4-HMAC-SHA256 Credential=" AK "/20130524/us-east-1/s3/aws4_request,"
    "SignedHeaders=content-encoding;content-length;host;x-amz-content-sha256;x-amz-date;"
    "x-amz-decoded-content-length;x-amz-storage-class,"
    "Signature=4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9\r\n"
    "x-amz-content-sha256: STREAMING-AWS4-HMAC-SHA256-PAYLOAD\r\n"
    "Content-Encoding: aws-chunked\r\n"
    "x-amz-decoded-content-length: 66560\r\n"
    "Content-Length: 66824\r\n\r\n";

static const char *const doc_sigs[3] = {
    "ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648",
    "0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497",
    "b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9",
};

static void test_streaming_documented(void **state)
{
    (void)state;
    pc_sigv4_verified_t v;
    assert_int_equal(check(seed_request, T20130524, &v), PC_SIGV4_OK);
    assert_int_equal(v.payload, PC_SIGV4_PAYLOAD_STREAMING);
    size_t n;
    char *body = chunked_body(doc_sigs, "", &n);
    assert_int_equal(n, 66824); /* the documented Content-Length */
    static const size_t steps[] = {1, 7, 100, 4096, 70000};
    for (size_t s = 0; s < PC_ARRAY_LEN(steps); s++) {
        pc_sigv4_chunked_t d;
        assert_true(pc_sigv4_chunked_init(&d, &v, 66560, (pc_http1_span_t){NULL, 0}));
        uint64_t got;
        bool all_a;
        assert_int_equal(decode(&d, body, n, steps[s], &got, &all_a), PC_SIGV4_CHUNKED_END);
        assert_int_equal(got, 66560);
        assert_int_equal(d.decoded_bytes, 66560);
        assert_true(all_a);
        pc_sigv4_chunked_free(&d);
    }
    /* tampered data, reordered or forged signatures, wrong lengths */
    struct {
        size_t at;
        char c;
        pc_sigv4_chunked_status_t want;
    } flips[] = {
        {200, 'b', PC_SIGV4_CHUNKED_ERR_SIGNATURE},    /* first chunk's data */
        {n - 3, 'b', PC_SIGV4_CHUNKED_ERR_FRAMING},    /* final CRLF */
        {30, '0', PC_SIGV4_CHUNKED_ERR_SIGNATURE},     /* first chunk's signature */
        {n - 10, '0', PC_SIGV4_CHUNKED_ERR_SIGNATURE}, /* last chunk's signature */
        {0, '2', PC_SIGV4_CHUNKED_ERR_FRAMING},        /* size 20000 > decoded length */
    };
    for (size_t f = 0; f < PC_ARRAY_LEN(flips); f++) {
        char *t = malloc(n);
        memcpy(t, body, n);
        if (t[flips[f].at] == flips[f].c) flips[f].c = '1';
        t[flips[f].at] = flips[f].c;
        pc_sigv4_chunked_t d;
        assert_true(pc_sigv4_chunked_init(&d, &v, 66560, (pc_http1_span_t){NULL, 0}));
        uint64_t got;
        bool all_a;
        assert_int_equal(decode(&d, t, n, 5000, &got, &all_a), flips[f].want);
        /* errors are sticky */
        size_t used;
        pc_http1_span_t data;
        assert_int_equal(pc_sigv4_chunked_feed(&d, "x", 1, &used, &data), flips[f].want);
        pc_sigv4_chunked_free(&d);
        free(t);
    }
    /* swapped chunk signatures break the chain */
    const char *swapped[3] = {doc_sigs[1], doc_sigs[0], doc_sigs[2]};
    free(body);
    body = chunked_body(swapped, "", &n);
    pc_sigv4_chunked_t d;
    assert_true(pc_sigv4_chunked_init(&d, &v, UINT64_MAX, (pc_http1_span_t){NULL, 0}));
    uint64_t got;
    bool all_a;
    assert_int_equal(decode(&d, body, n, 70000, &got, &all_a), PC_SIGV4_CHUNKED_ERR_SIGNATURE);
    pc_sigv4_chunked_free(&d);
    /* a declared length the chunks do not add up to */
    free(body);
    body = chunked_body(doc_sigs, "", &n);
    assert_true(pc_sigv4_chunked_init(&d, &v, 66561, (pc_http1_span_t){NULL, 0}));
    assert_int_equal(decode(&d, body, n, 70000, &got, &all_a), PC_SIGV4_CHUNKED_ERR_FRAMING);
    pc_sigv4_chunked_free(&d);
    free(body);
}

static const char seed_trailer_request[] =
    "PUT /examplebucket/chunkObject.txt HTTP/1.1\r\n"
    "Host: s3.amazonaws.com\r\n"
    "x-amz-date: 20130524T000000Z\r\n"
    "x-amz-storage-class: REDUCED_REDUNDANCY\r\n"
    "Authorization: AWS4-HMAC-SHA256 Credential=" AK "/20130524/us-east-1/s3/aws4_request,"
    "SignedHeaders=content-encoding;host;x-amz-content-sha256;x-amz-date;"
    "x-amz-decoded-content-length;x-amz-storage-class;x-amz-trailer,"
    "Signature=106e2a8a18243abcf37539882f36619c00e2dfc72633413f02d3b74544bfeb8e\r\n"
    "x-amz-content-sha256: STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER\r\n"
    "Content-Encoding: aws-chunked\r\n"
    "x-amz-decoded-content-length: 66560\r\n"
    "x-amz-trailer: x-amz-checksum-crc32c\r\n"
    "Content-Length: 66946\r\n\r\n";

static void test_streaming_trailer_documented(void **state)
{
    (void)state;
    pc_sigv4_verified_t v;
    assert_int_equal(check(seed_trailer_request, T20130524, &v), PC_SIGV4_OK);
    assert_int_equal(v.payload, PC_SIGV4_PAYLOAD_STREAMING_TRAILER);
    const char *sigs[3] = {"b474d8862b1487a5145d686f57f013e54db672cee1c953b3010fb58501ef5aa2",
                           "1c1344b170168f8e65b41376b44b20fe354e373826ccbbe2c1d40a8cae51e5c7",
                           "2ca2aba2005185cf7159c6277faf83795951dd77a3a99e6e65d5c9f85863f992"};
    const char *good = "x-amz-checksum-crc32c:sOO8/Q==\r\n"
                       "x-amz-trailer-signature:"
                       "d81f82fc3505edab99d459891051a732e8730629a2e4a59689829ca17fe2e435\r\n";
    const pc_http1_span_t announced = {"x-amz-checksum-crc32c", 21};
    struct {
        const char *trailer;
        pc_sigv4_chunked_status_t want;
    } cases[] = {
        {good, PC_SIGV4_CHUNKED_END},
        /* an empty line before the trailer is tolerated */
        {"\r\nx-amz-checksum-crc32c:sOO8/Q==\r\nx-amz-trailer-signature:"
         "d81f82fc3505edab99d459891051a732e8730629a2e4a59689829ca17fe2e435\r\n",
         PC_SIGV4_CHUNKED_END},
        /* a different checksum value: the trailer signature no longer matches */
        {"x-amz-checksum-crc32c:AAAAAA==\r\nx-amz-trailer-signature:"
         "d81f82fc3505edab99d459891051a732e8730629a2e4a59689829ca17fe2e435\r\n",
         PC_SIGV4_CHUNKED_ERR_SIGNATURE},
        {"x-amz-checksum-crc32c:sOO8/Q==\r\nx-amz-trailer-signature:"
         "d81f82fc3505edab99d459891051a732e8730629a2e4a59689829ca17fe2e436\r\n",
         PC_SIGV4_CHUNKED_ERR_SIGNATURE},
        /* the signature is required, the checksum must be the announced one */
        {"x-amz-checksum-crc32c:sOO8/Q==\r\n", PC_SIGV4_CHUNKED_ERR_FRAMING},
        {"x-amz-checksum-crc32:sOO8/Q==\r\n", PC_SIGV4_CHUNKED_ERR_FRAMING},
        {"x-amz-meta-x:1\r\n", PC_SIGV4_CHUNKED_ERR_FRAMING},
    };
    for (size_t c = 0; c < PC_ARRAY_LEN(cases); c++) {
        size_t n;
        char *body = chunked_body(sigs, cases[c].trailer, &n);
        if (c == 0) assert_int_equal(n, 66946);
        pc_sigv4_chunked_t d;
        assert_true(pc_sigv4_chunked_init(&d, &v, 66560, announced));
        uint64_t got;
        bool all_a;
        assert_int_equal(decode(&d, body, n, c == 0 ? 1 : 9000, &got, &all_a), cases[c].want);
        if (cases[c].want == PC_SIGV4_CHUNKED_END) {
            assert_int_equal(d.checksum, PC_SIGV4_CK_CRC32C);
            assert_string_equal(d.checksum_b64, "sOO8/Q==");
        }
        pc_sigv4_chunked_free(&d);
        free(body);
    }
    /* an unknown trailer name in x-amz-trailer is refused up front */
    pc_sigv4_chunked_t d;
    assert_false(pc_sigv4_chunked_init(&d, &v, 66560, (pc_http1_span_t){"x-amz-foo", 9}));
    pc_sigv4_chunked_free(&d);
}

/* STREAMING-UNSIGNED-PAYLOAD-TRAILER: the SDKs' default; checksum verified by us. */
static void test_unsigned_trailer(void **state)
{
    (void)state;
    pc_sigv4_verified_t v = {.payload = PC_SIGV4_PAYLOAD_STREAMING_UNSIGNED_TRAILER};
    struct {
        const char *hdr, *value;
    } sums[] = {
        /* checksums of "123456789" */
        {"x-amz-checksum-crc32", "y/Q5Jg=="},
        {"x-amz-checksum-crc32c", "4waSgw=="},
        {"x-amz-checksum-crc64nvme", "rosUhgp5mIg="},
        {"x-amz-checksum-sha1", "98O8HYCOBHMq32eZZczDTKeuNEE="},
        {"x-amz-checksum-sha256", "FeKw08M4keuw8e9gnsQZQgwg4yDOlMZfvIwzEkSOsiU="},
    };
    for (size_t i = 0; i < PC_ARRAY_LEN(sums); i++) {
        for (int bad = 0; bad < 2; bad++) {
            char body[256];
            int n = snprintf(body, sizeof(body), "4\r\n1234\r\n5\r\n56789\r\n0\r\n%s:%s\r\n\r\n",
                             sums[i].hdr, bad ? "AAAAAAAAAAA=" : sums[i].value);
            pc_sigv4_chunked_t d;
            assert_true(pc_sigv4_chunked_init(&d, &v, 9,
                                              (pc_http1_span_t){sums[i].hdr, strlen(sums[i].hdr)}));
            uint64_t got;
            bool all_a;
            pc_sigv4_chunked_status_t st = decode(&d, body, (size_t)n, 3, &got, &all_a);
            assert_int_equal(st, bad ? PC_SIGV4_CHUNKED_ERR_CHECKSUM : PC_SIGV4_CHUNKED_END);
            assert_int_equal(got, 9);
            pc_sigv4_chunked_free(&d);
        }
    }
    /* 1000 bytes in one chunk, fed whole: the sliced (8 bytes at a time) CRC paths */
    struct {
        const char *hdr, *value;
    } big[] = {
        {"x-amz-checksum-crc32", "BNqGUQ=="},
        {"x-amz-checksum-crc32c", "o0U3eg=="},
        {"x-amz-checksum-crc64nvme", "95nizBLCE4s="},
    };
    for (size_t i = 0; i < PC_ARRAY_LEN(big); i++) {
        char body[1200];
        size_t n = (size_t)snprintf(body, sizeof(body), "3e8\r\n");
        for (int k = 0; k < 1000; k++)
            body[n++] = (char)((k * 7) % 251);
        n += (size_t)snprintf(body + n, sizeof(body) - n, "\r\n0\r\n%s:%s\r\n\r\n", big[i].hdr,
                              big[i].value);
        pc_sigv4_chunked_t d;
        assert_true(
            pc_sigv4_chunked_init(&d, &v, 1000, (pc_http1_span_t){big[i].hdr, strlen(big[i].hdr)}));
        uint64_t got;
        bool all_a;
        assert_int_equal(decode(&d, body, n, n, &got, &all_a), PC_SIGV4_CHUNKED_END);
        pc_sigv4_chunked_free(&d);
    }

    /* no trailer announced: plain framing; trailing bytes are not consumed */
    const char body[] = "3\r\nabc\r\n0\r\n\r\nNEXT";
    pc_sigv4_chunked_t d;
    assert_true(pc_sigv4_chunked_init(&d, &v, UINT64_MAX, (pc_http1_span_t){NULL, 0}));
    size_t used, off = 0;
    pc_http1_span_t data;
    assert_int_equal(pc_sigv4_chunked_feed(&d, body, sizeof(body) - 1, &used, &data),
                     PC_SIGV4_CHUNKED_DATA);
    assert_int_equal(data.n, 3);
    off += used;
    assert_int_equal(pc_sigv4_chunked_feed(&d, body + off, sizeof(body) - 1 - off, &used, &data),
                     PC_SIGV4_CHUNKED_END);
    off += used;
    assert_string_equal(body + off, "NEXT");
    pc_sigv4_chunked_free(&d);
    /* chunk signatures are not allowed here, nor bare LF */
    const char *badbodies[] = {"3;chunk-signature=00\r\nabc\r\n0\r\n\r\n", "3\nabc\r\n0\r\n\r\n",
                               "3\r\nabcd\r\n0\r\n\r\n", "g\r\n", "1000000000000000\r\n"};
    for (size_t i = 0; i < PC_ARRAY_LEN(badbodies); i++) {
        assert_true(pc_sigv4_chunked_init(&d, &v, UINT64_MAX, (pc_http1_span_t){NULL, 0}));
        uint64_t got;
        bool all_a;
        assert_int_equal(decode(&d, badbodies[i], strlen(badbodies[i]), 64, &got, &all_a),
                         PC_SIGV4_CHUNKED_ERR_FRAMING);
        pc_sigv4_chunked_free(&d);
    }
}

static void test_payload_kinds(void **state)
{
    (void)state;
    uint8_t h[32];
    assert_int_equal(pc_sigv4_payload_kind(EMPTY, 64, h), PC_SIGV4_PAYLOAD_HASH);
    assert_int_equal(h[0], 0xe3);
    assert_int_equal(pc_sigv4_payload_kind("UNSIGNED-PAYLOAD", 16, NULL),
                     PC_SIGV4_PAYLOAD_UNSIGNED);
    assert_int_equal(pc_sigv4_payload_kind("STREAMING-UNSIGNED-PAYLOAD-TRAILER", 34, NULL),
                     PC_SIGV4_PAYLOAD_STREAMING_UNSIGNED_TRAILER);
    assert_int_equal(pc_sigv4_payload_kind("STREAMING-AWS4-ECDSA-P256-SHA256-PAYLOAD", 40, NULL),
                     PC_SIGV4_PAYLOAD_INVALID);
    assert_int_equal(pc_sigv4_payload_kind(EMPTY, 63, NULL), PC_SIGV4_PAYLOAD_INVALID);
    char hx[65];
    pc_sigv4_sha256_hex("", 0, hx);
    assert_string_equal(hx, EMPTY);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_documented_header_examples),
        cmocka_unit_test(test_header_refusals),
        cmocka_unit_test(test_presigned),
        cmocka_unit_test(test_sign_matches_documented),
        cmocka_unit_test(test_sign_then_verify),
        cmocka_unit_test(test_date_header_and_repeats),
        cmocka_unit_test(test_streaming_documented),
        cmocka_unit_test(test_streaming_trailer_documented),
        cmocka_unit_test(test_unsigned_trailer),
        cmocka_unit_test(test_payload_kinds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
