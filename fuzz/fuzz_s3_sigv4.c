/*
 * SigV4 on arbitrary input. First byte selects:
 *   0: Authorization header value       1: presigned query string
 *   2: a whole request head: parse, verify against a fixed secret, and
 *      check that our own signature of it verifies (canonicalisation of
 *      arbitrary paths, queries and headers)
 *   3..5: an aws-chunked body (signed / signed+trailer / unsigned trailer)
 *      with the context of AWS's documented chunked example, fed in steps
 *      (second byte) and checked against a whole-buffer run
 *   6: S3 error XML of arbitrary text
 */
#include "core/crypto.h"
#include "http/http1.h"
#include "s3/sigv4.h"
#include "s3/xml.h"

#include <stdlib.h>
#include <string.h>

#define CHECK(c)                                                                                   \
    do {                                                                                           \
        if (!(c)) __builtin_trap();                                                                \
    } while (0)

#define SECRET "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
#define T20130524 1369353600

static void check_auth(pc_sigv4_result_t r, const pc_sigv4_auth_t *a)
{
    if (r != PC_SIGV4_OK) return;
    CHECK(a->access_key[0] && strlen(a->access_key) <= PC_SIGV4_MAX_ACCESS_KEY);
    CHECK(strlen(a->scope_date) == 8 && !strcmp(a->service, "s3"));
    CHECK(strstr(a->signed_headers, "host") != NULL);
    if (a->presigned) CHECK(a->expires_s >= 1 && a->expires_s <= PC_SIGV4_MAX_EXPIRES_S);
}

static void fuzz_request(const char *in, size_t n)
{
    pc_http1_t p;
    pc_http1_init(&p, false);
    size_t used;
    pc_http1_span_t data;
    if (pc_http1_feed(&p, in, n, &used, &data) != PC_HTTP1_HEAD) return;
    const pc_http1_msg_t *m = &p.msg;
    pc_sigv4_request_t req = {m->method_name, m->path, m->query, m->headers, m->nheaders};
    pc_sigv4_auth_t auth;
    pc_sigv4_result_t r = pc_sigv4_parse(&req, &auth);
    check_auth(r, &auth);
    CHECK(r == PC_SIGV4_OK || pc_sigv4_result_code(r, auth.presigned) != NULL);
    if (r == PC_SIGV4_OK) {
        pc_sigv4_verified_t v;
        pc_sigv4_key_cache_t cache;
        pc_sigv4_key_cache_init(&cache);
        r = pc_sigv4_verify(&auth, &req, SECRET, T20130524, &cache, &v);
        CHECK(r != PC_SIGV4_NO_AUTH);
        pc_sigv4_key_cache_wipe(&cache);
    }
    /*
     * Round trip: sign the request's own headers (minus any credentials) with
     * our signer, then verify what was signed. Both must agree on every
     * canonicalisation of paths, queries and header values.
     */
    if (m->nheaders + 3 > PC_SIGV4_MAX_SIGNED_HEADERS || m->method_name.n >= 16 ||
        !pc_http1_get(m, "host") ||
        (m->has_query && memmem(m->query.p, m->query.n, "X-Amz-Algorithm", 15)))
        return;
    pc_http1_header_t h[PC_SIGV4_MAX_SIGNED_HEADERS + 1];
    size_t nh = 0;
    for (size_t i = 0; i < m->nheaders; i++) {
        pc_http1_span_t name = m->headers[i].name;
        if (pc_http1_span_ieq(name, "authorization") || pc_http1_span_ieq(name, "x-amz-date") ||
            pc_http1_span_ieq(name, "x-amz-content-sha256") || pc_http1_span_ieq(name, "date"))
            continue;
        h[nh++] = m->headers[i];
    }
    h[nh++] = (pc_http1_header_t){{"x-amz-date", 10}, {"20130524T000000Z", 16}};
    h[nh++] = (pc_http1_header_t){{"x-amz-content-sha256", 20}, {"UNSIGNED-PAYLOAD", 16}};
    char method[16];
    memcpy(method, m->method_name.p, m->method_name.n);
    method[m->method_name.n] = '\0';
    pc_sigv4_sign_in_t in2 = {
        .method = method,
        .path = m->path,
        .query = m->query,
        .headers = h,
        .nheaders = nh,
        .payload_hash = PC_SIGV4_UNSIGNED_PAYLOAD,
        .access_key = "AKFUZZ",
        .secret = SECRET,
        .region = "us-east-1",
        .service = "s3",
        .amz_date = "20130524T000000Z",
    };
    char authz[PC_SIGV4_AUTHZ_MAX];
    if (!pc_sigv4_sign(&in2, NULL, authz, sizeof(authz), NULL)) return;
    CHECK(!strncmp(authz, "AWS4-HMAC-SHA256 Credential=AKFUZZ/20130524/", 44));
    h[nh++] = (pc_http1_header_t){{"Authorization", 13}, {authz, strlen(authz)}};
    pc_sigv4_request_t signed_req = {m->method_name, m->path, m->query, h, nh};
    r = pc_sigv4_parse(&signed_req, &auth);
    CHECK(r == PC_SIGV4_OK && !auth.presigned && !strcmp(auth.access_key, "AKFUZZ"));
    pc_sigv4_verified_t v;
    CHECK(pc_sigv4_verify(&auth, &signed_req, SECRET, T20130524 + 5, NULL, &v) == PC_SIGV4_OK);
    CHECK(v.payload == PC_SIGV4_PAYLOAD_UNSIGNED);
    CHECK(pc_sigv4_verify(&auth, &signed_req, SECRET "x", T20130524, NULL, &v) ==
          PC_SIGV4_MISMATCH);
}

typedef struct {
    pc_sigv4_chunked_status_t last;
    uint64_t bytes, hash;
} ck_run_t;

static void run_chunked(const pc_sigv4_verified_t *v, const char *in, size_t n, size_t step,
                        uint64_t decoded_len, pc_http1_span_t trailer, ck_run_t *out)
{
    memset(out, 0, sizeof(*out));
    pc_sigv4_chunked_t d;
    if (!pc_sigv4_chunked_init(&d, v, decoded_len, trailer)) {
        out->last = (pc_sigv4_chunked_status_t)99;
        return;
    }
    size_t off = 0;
    for (;;) {
        size_t avail = n - off < step ? n - off : step, used = (size_t)-1;
        pc_http1_span_t data = {0};
        pc_sigv4_chunked_status_t st = pc_sigv4_chunked_feed(&d, in + off, avail, &used, &data);
        CHECK(used <= avail);
        off += used;
        if (st == PC_SIGV4_CHUNKED_DATA) {
            CHECK(data.n > 0 && data.p >= in + off - used && data.p + data.n <= in + off);
            out->bytes += data.n;
            for (size_t i = 0; i < data.n; i++)
                out->hash = (out->hash ^ (uint8_t)data.p[i]) * 0x100000001b3ull;
            continue;
        }
        if (st == PC_SIGV4_CHUNKED_NEED_MORE) {
            CHECK(used == avail);
            if (off < n) continue;
        }
        out->last = st;
        CHECK(d.decoded_bytes == out->bytes);
        if (decoded_len != UINT64_MAX) CHECK(d.decoded_bytes <= decoded_len);
        if (st == PC_SIGV4_CHUNKED_END && decoded_len != UINT64_MAX)
            CHECK(d.decoded_bytes == decoded_len);
        if (st >= PC_SIGV4_CHUNKED_ERR_FRAMING) {
            size_t u2;
            CHECK(pc_sigv4_chunked_feed(&d, "0", 1, &u2, &data) == st);
        }
        break;
    }
    pc_sigv4_chunked_free(&d);
}

static void fuzz_chunked(int mode, const uint8_t *data, size_t size)
{
    if (size < 2) return;
    static const char *const seeds[] = {
        "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9",
        "106e2a8a18243abcf37539882f36619c00e2dfc72633413f02d3b74544bfeb8e",
        "0000000000000000000000000000000000000000000000000000000000000000",
    };
    static const pc_sigv4_payload_t kinds[] = {PC_SIGV4_PAYLOAD_STREAMING,
                                               PC_SIGV4_PAYLOAD_STREAMING_TRAILER,
                                               PC_SIGV4_PAYLOAD_STREAMING_UNSIGNED_TRAILER};
    static const char *const trailers[] = {NULL,
                                           "x-amz-checksum-crc32",
                                           "x-amz-checksum-crc32c",
                                           "x-amz-checksum-crc64nvme",
                                           "x-amz-checksum-sha1",
                                           "x-amz-checksum-sha256",
                                           "x-amz-checksum-crc32c",
                                           "bogus"};
    pc_sigv4_verified_t v = {.payload = kinds[mode - 3],
                             .amz_date = "20130524T000000Z",
                             .scope = "20130524/us-east-1/s3/aws4_request"};
    /* the documented example's signing key */
    uint8_t k[32];
    pc_hmac_sha256("AWS4" SECRET, 44, "20130524", 8, k);
    pc_hmac_sha256(k, 32, "us-east-1", 9, k);
    pc_hmac_sha256(k, 32, "s3", 2, k);
    pc_hmac_sha256(k, 32, "aws4_request", 12, v.signing_key);
    const char *seed = seeds[mode - 3];
    for (int i = 0; i < 32; i++) {
        unsigned hi = (unsigned)(seed[2 * i] <= '9' ? seed[2 * i] - '0' : seed[2 * i] - 'a' + 10);
        unsigned lo =
            (unsigned)(seed[2 * i + 1] <= '9' ? seed[2 * i + 1] - '0' : seed[2 * i + 1] - 'a' + 10);
        v.seed_signature[i] = (uint8_t)(hi << 4 | lo);
    }
    size_t step = (size_t)(data[0] & 0x3f) + 1;
    const char *tr = mode == 3 ? NULL : trailers[data[0] >> 5];
    pc_http1_span_t trailer = {tr, tr ? strlen(tr) : 0};
    /* the declared length, when given, comes from the body's own first chunk sizes */
    uint64_t decoded_len = (data[1] & 1) ? UINT64_MAX : (uint64_t)(data[1] >> 1) * 997;
    if (mode == 4 && (data[1] & 1)) decoded_len = 66560;
    const char *in = (const char *)data + 2;
    size_t n = size - 2;
    ck_run_t whole, pieces;
    run_chunked(&v, in, n, n ? n : 1, decoded_len, trailer, &whole);
    run_chunked(&v, in, n, step, decoded_len, trailer, &pieces);
    CHECK(whole.last == pieces.last && whole.bytes == pieces.bytes && whole.hash == pieces.hash);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 300000) return 0;
    int mode = data[0] % 7;
    const char *in = (const char *)data + 1;
    size_t n = size - 1;
    pc_sigv4_auth_t auth;
    switch (mode) {
    case 0:
        check_auth(pc_sigv4_parse_header(in, n, &auth), &auth);
        break;
    case 1:
        check_auth(pc_sigv4_parse_query(in, n, &auth), &auth);
        break;
    case 2:
        fuzz_request(in, n);
        break;
    case 3:
    case 4:
    case 5:
        fuzz_chunked(mode, data + 1, n);
        break;
    case 6: {
        size_t cap = PC_S3_ERROR_XML_BOUND(3 * n + 16);
        char *out = malloc(cap);
        char *text = malloc(n + 1);
        if (out && text) {
            memcpy(text, in, n);
            text[n] = '\0';
            size_t len = pc_s3_error_xml(out, cap, "AccessDenied", text, text, text);
            CHECK(len > 0 && len == strlen(out));
            /* no raw markup characters inside element text */
            const char *msg = strstr(out, "<Message>") + 9;
            const char *end = strstr(msg, "</Message>");
            CHECK(end != NULL);
            for (const char *c = msg; c < end; c++)
                CHECK(*c != '<' && *c != '>' && *c != '"');
        }
        free(out);
        free(text);
        break;
    }
    }
    return 0;
}
