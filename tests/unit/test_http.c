/* HTTP/1.1 parser: heads, framing, pipelining, smuggling refusals, responses. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "http/http1.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const size_t steps[] = {1, 2, 3, 7, 64, 100000};

/* A request with a body, fed in pieces of every size. */
static void expect_body(const char *raw, const char *want_body)
{
    for (size_t s = 0; s < PC_ARRAY_LEN(steps); s++) {
        pc_http1_t p;
        pc_http1_init(&p, false);
        /* DATA spans are zero-copy: verify them by collecting directly */
        size_t n = strlen(raw), off = 0;
        char body[8192];
        size_t bl = 0;
        int heads = 0;
        pc_http1_event_t ev;
        char *buf = malloc(n + 1);
        size_t have = 0, fed = 0;
        for (;;) {
            size_t used = 0;
            pc_http1_span_t data = {0};
            ev = pc_http1_feed(&p, buf, have, &used, &data);
            if (ev == PC_HTTP1_DATA) {
                assert_true(data.p >= buf && data.p + data.n <= buf + have);
                memcpy(body + bl, data.p, data.n);
                bl += data.n;
            }
            if (ev == PC_HTTP1_HEAD) heads++;
            memmove(buf, buf + used, have - used);
            have -= used;
            off += used;
            if (ev == PC_HTTP1_END || ev == PC_HTTP1_ERROR) break;
            if (ev == PC_HTTP1_NEED_MORE) {
                if (fed == n) break;
                size_t k = n - fed < steps[s] ? n - fed : steps[s];
                memcpy(buf + have, raw + fed, k);
                have += k;
                fed += k;
            }
        }
        free(buf);
        if (ev != PC_HTTP1_END) fail_msg("step %zu: event %d (%s)", steps[s], ev, p.error);
        assert_int_equal(heads, 1);
        assert_int_equal(bl, strlen(want_body));
        assert_memory_equal(body, want_body, bl);
        assert_int_equal(off, n);
        assert_true(pc_http1_idle(&p));
    }
}

/* Feed the whole message; the error status, or 0 if it parsed to its end. */
static int error_of(const char *raw, bool response)
{
    pc_http1_t p;
    pc_http1_init(&p, response);
    size_t off = 0, n = strlen(raw);
    for (;;) {
        size_t used;
        pc_http1_span_t data;
        pc_http1_event_t ev = pc_http1_feed(&p, raw + off, n - off, &used, &data);
        off += used;
        if (ev == PC_HTTP1_ERROR) return p.error_status;
        if (ev == PC_HTTP1_END || ev == PC_HTTP1_NEED_MORE) return 0;
    }
}

static void test_simple_get(void **state)
{
    (void)state;
    const char raw[] = "GET /bkt/key%20x?list-type=2&prefix=a HTTP/1.1\r\n"
                       "Host: s3.local:9000\r\n"
                       "X-Amz-Date:20130524T000000Z \r\n"
                       "x-amz-meta-a: one\r\n"
                       "X-AMZ-META-A:  two\t\r\n"
                       "\r\n";
    pc_http1_t p;
    pc_http1_init(&p, false);
    size_t used;
    pc_http1_span_t data;
    assert_int_equal(pc_http1_feed(&p, raw, sizeof(raw) - 1, &used, &data), PC_HTTP1_HEAD);
    assert_int_equal(used, sizeof(raw) - 1);
    const pc_http1_msg_t *m = &p.msg;
    assert_true(m->is_request);
    assert_int_equal(m->method, PC_HTTP1_M_GET);
    assert_true(pc_http1_span_ieq(m->method_name, "GET"));
    assert_true(pc_http1_span_ieq(m->path, "/bkt/key%20x"));
    assert_true(m->has_query);
    assert_true(pc_http1_span_ieq(m->query, "list-type=2&prefix=a"));
    assert_int_equal(m->version_minor, 1);
    assert_int_equal(m->nheaders, 4);
    assert_true(m->keep_alive);
    assert_false(m->expect_continue);
    assert_int_equal(m->body, PC_HTTP1_BODY_NONE);
    assert_true(pc_http1_span_ieq(*pc_http1_get(m, "x-amz-date"), "20130524T000000Z"));
    int i = pc_http1_find(m, "X-Amz-Meta-A", 0);
    assert_int_equal(i, 2);
    i = pc_http1_find(m, "x-amz-meta-a", (size_t)i + 1);
    assert_int_equal(i, 3);
    assert_true(pc_http1_span_ieq(m->headers[i].value, "two"));
    assert_int_equal(pc_http1_find(m, "x-amz-meta-a", 4), -1);
    assert_null(pc_http1_get(m, "content-length"));
    /* no body: END right away, consuming nothing */
    assert_int_equal(pc_http1_feed(&p, "", 0, &used, &data), PC_HTTP1_END);
    assert_int_equal(used, 0);
    assert_true(pc_http1_idle(&p));
    assert_int_equal(pc_http1_eof(&p), PC_HTTP1_NEED_MORE); /* clean close */
}

static void test_incremental_head(void **state)
{
    (void)state;
    const char raw[] = "PUT /b/k HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc";
    pc_http1_t p;
    pc_http1_init(&p, false);
    size_t used;
    pc_http1_span_t data;
    size_t head_len = sizeof(raw) - 1 - 3;
    for (size_t n = 0; n < head_len; n++) {
        assert_int_equal(pc_http1_feed(&p, raw, n, &used, &data), PC_HTTP1_NEED_MORE);
        assert_int_equal(used, 0);
    }
    assert_int_equal(pc_http1_eof(&p), PC_HTTP1_ERROR); /* a cut head is an error... */
    pc_http1_reset(&p);                                 /* ...until reset */
    assert_int_equal(pc_http1_feed(&p, raw, sizeof(raw) - 1, &used, &data), PC_HTTP1_HEAD);
    assert_int_equal(used, head_len);
    assert_int_equal(p.msg.body, PC_HTTP1_BODY_LENGTH);
    assert_int_equal(p.msg.content_length, 3);
    assert_int_equal(pc_http1_feed(&p, raw + used, 2, &used, &data), PC_HTTP1_DATA);
    assert_int_equal(data.n, 2);
    assert_false(pc_http1_idle(&p));
    assert_int_equal(pc_http1_eof(&p), PC_HTTP1_ERROR);
    assert_int_equal(p.error_status, 400);
}

static void test_bodies(void **state)
{
    (void)state;
    expect_body("PUT /b/k HTTP/1.1\r\nHost: h\r\nContent-Length: 11\r\n\r\nhello world",
                "hello world");
    expect_body("PUT /b/k HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n", "");
    expect_body(
        "PUT /b/k HTTP/1.1\r\nHost: h\r\nContent-Length: 5, 5\r\nContent-Length: 5\r\n\r\n12345",
        "12345");
    expect_body("PUT /b/k HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
                "5\r\nhello\r\n1;ext=1;other=\"q\"\r\n \r\n"
                "A \t;x\r\n0123456789\r\n0\r\n\r\n",
                "hello 0123456789");
    /* trailers are read and dropped */
    expect_body("POST /b/k HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: Chunked\r\n\r\n"
                "3\r\nabc\r\n0\r\nx-amz-checksum-crc32: AAAAAA==\r\nOther: 1\r\n\r\n",
                "abc");
    /* leading empty lines before a request are tolerated */
    expect_body("\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n", "");
}

static void test_pipelining(void **state)
{
    (void)state;
    const char raw[] =
        "PUT /a HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\nxy"
        "GET /b HTTP/1.1\r\nHost: h\r\n\r\n"
        "POST /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nz\r\n0\r\n\r\n"
        "GET /d HTTP/1.0\r\n\r\n";
    const char *paths[] = {"/a", "/b", "/c", "/d"};
    pc_http1_t p;
    pc_http1_init(&p, false);
    size_t off = 0, n = sizeof(raw) - 1;
    int msgs = 0;
    char body[16];
    size_t bl = 0;
    while (off < n) {
        size_t used;
        pc_http1_span_t data;
        pc_http1_event_t ev = pc_http1_feed(&p, raw + off, n - off, &used, &data);
        off += used;
        if (ev == PC_HTTP1_HEAD) assert_true(pc_http1_span_ieq(p.msg.path, paths[msgs]));
        if (ev == PC_HTTP1_DATA) {
            memcpy(body + bl, data.p, data.n);
            bl += data.n;
        }
        if (ev == PC_HTTP1_END) msgs++;
        assert_true(ev != PC_HTTP1_ERROR);
    }
    size_t used;
    pc_http1_span_t data;
    assert_int_equal(pc_http1_feed(&p, raw + off, 0, &used, &data), PC_HTTP1_END);
    msgs++;
    assert_int_equal(msgs, 4);
    assert_int_equal(bl, 3);
    assert_memory_equal(body, "xyz", 3);
    assert_false(p.msg.keep_alive); /* the HTTP/1.0 one */
}

static void test_connection_semantics(void **state)
{
    (void)state;
    struct {
        const char *raw;
        bool keep_alive, expect;
    } cases[] = {
        {"GET / HTTP/1.1\r\nHost: h\r\n\r\n", true, false},
        {"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n", false, false},
        {"GET / HTTP/1.1\r\nHost: h\r\nConnection: Upgrade, Close\r\n\r\n", false, false},
        {"GET / HTTP/1.0\r\n\r\n", false, false},
        {"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", true, false},
        {"PUT / HTTP/1.1\r\nHost: h\r\nExpect: 100-Continue\r\nContent-Length: 1\r\n\r\n", true,
         true},
        {"PUT / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n", false, false},
    };
    for (size_t i = 0; i < PC_ARRAY_LEN(cases); i++) {
        pc_http1_t p;
        pc_http1_init(&p, false);
        size_t used;
        pc_http1_span_t data;
        assert_int_equal(pc_http1_feed(&p, cases[i].raw, strlen(cases[i].raw), &used, &data),
                         PC_HTTP1_HEAD);
        assert_int_equal(p.msg.keep_alive, cases[i].keep_alive);
        assert_int_equal(p.msg.expect_continue, cases[i].expect);
    }
}

static void test_refusals(void **state)
{
    (void)state;
    struct {
        const char *raw;
        int status;
    } cases[] = {
        /* smuggling */
        {"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
         400},
        {"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n", 400},
        {"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3, 4\r\n\r\n", 400},
        {"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: +3\r\n\r\n", 400},
        {"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: -1\r\n\r\n", 400},
        {"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 0x10\r\n\r\n", 400},
        {"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: \r\n\r\n", 400},
        {"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 99999999999999999999\r\n\r\n", 400},
        {"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501},
        {"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, chunked\r\n\r\n", 400},
        {"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: "
         "chunked\r\n\r\n",
         400},
        {"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: ,chunked\r\n\r\n", 400},
        {"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400},
        {"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding : chunked\r\n\r\n", 400},
        {"POST / HTTP/1.1\r\nHost: h\r\n Transfer-Encoding: chunked\r\n\r\n", 400},
        {"POST / HTTP/1.1\r\nHost: h\r\nX: a\r\n  folded\r\n\r\n", 400},
        {"GET / HTTP/1.1\nHost: h\r\n\r\n", 400},
        {"GET / HTTP/1.1\r\nHost: h\rX: y\r\n\r\n", 400},
        {"GET / HTTP/1.1\r\nHost: h\r\nX: a\x01"
         "b\r\n\r\n",
         400},
        {"GET / HTTP/1.1\r\n\r\n", 400},
        {"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400},
        {"GET / HTTP/2.0\r\nHost: h\r\n\r\n", 505},
        {"GET / HTTP/1.10\r\nHost: h\r\n\r\n", 400},
        {"GET  / HTTP/1.1\r\nHost: h\r\n\r\n", 400},
        {"GET /a b HTTP/1.1\r\nHost: h\r\n\r\n", 400},
        {"G(T / HTTP/1.1\r\nHost: h\r\n\r\n", 400},
        {"\r\n\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n", 400},
        /* chunked framing */
        {"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\nx\r\n", 400},
        {"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n;a\r\n", 400},
        {"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n1000000000000000\r\n",
         400},
        {"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nab\r\n", 400},
        {"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n1\nab\r\n", 400},
        {"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n1 x\r\na\r\n", 400},
        {"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n: x\r\n\r\n", 400},
    };
    for (size_t i = 0; i < PC_ARRAY_LEN(cases); i++) {
        int st = error_of(cases[i].raw, false);
        if (st != cases[i].status) fail_msg("case %zu: got %d, want %d", i, st, cases[i].status);
    }
}

static void test_limits(void **state)
{
    (void)state;
    size_t big = PC_HTTP1_MAX_HEAD + 100;
    char *raw = malloc(big + 1);
    /* a request line longer than the target limit */
    memcpy(raw, "GET /", 5);
    memset(raw + 5, 'a', big - 5);
    raw[big] = '\0';
    assert_int_equal(error_of(raw, false), 414);
    snprintf(raw, big, "GET /%0*d HTTP/1.1\r\nHost: h\r\n\r\n", (int)PC_HTTP1_MAX_TARGET, 0);
    assert_int_equal(error_of(raw, false), 414);
    snprintf(raw, big, "GET /%0*d HTTP/1.1\r\nHost: h\r\n\r\n", (int)PC_HTTP1_MAX_TARGET - 1, 0);
    assert_int_equal(error_of(raw, false), 0);
    /* a head over 64 KiB */
    size_t n = (size_t)snprintf(raw, big, "GET / HTTP/1.1\r\nHost: h\r\nX: ");
    memset(raw + n, 'v', big - n);
    raw[big] = '\0';
    assert_int_equal(error_of(raw, false), 431);
    /* 128 headers are fine, 129 are not */
    for (int extra = 0; extra < 2; extra++) {
        size_t o = (size_t)snprintf(raw, big, "GET / HTTP/1.1\r\nHost: h\r\n");
        for (int i = 0; i < 127 + extra; i++)
            o += (size_t)snprintf(raw + o, big - o, "X-%d: v\r\n", i);
        snprintf(raw + o, big - o, "\r\n");
        assert_int_equal(error_of(raw, false), extra ? 431 : 0);
    }
    free(raw);
}

static void test_responses(void **state)
{
    (void)state;
    pc_http1_t p;
    pc_http1_init(&p, true);
    size_t used;
    pc_http1_span_t data;
    /* 100 Continue, then the final answer, then a 204 and a 304 with lengths that do not count */
    const char raw[] = "HTTP/1.1 100 Continue\r\n\r\n"
                       "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nETag: \"x\"\r\n\r\nok"
                       "HTTP/1.1 204 No Content\r\nContent-Length: 10\r\n\r\n"
                       "HTTP/1.1 304\r\nContent-Length: 10\r\n\r\n";
    int expect_status[] = {100, 200, 204, 304};
    size_t off = 0, n = sizeof(raw) - 1;
    int ends = 0;
    for (;;) {
        pc_http1_event_t ev = pc_http1_feed(&p, raw + off, n - off, &used, &data);
        off += used;
        if (ev == PC_HTTP1_HEAD) {
            assert_false(p.msg.is_request);
            assert_int_equal(p.msg.status, expect_status[ends]);
        }
        if (ev == PC_HTTP1_DATA) assert_memory_equal(data.p, "ok", 2);
        if (ev == PC_HTTP1_END) ends++;
        if (ev == PC_HTTP1_NEED_MORE || ev == PC_HTTP1_ERROR) break;
    }
    assert_int_equal(ends, 4);
    assert_int_equal(off, n);
    assert_true(pc_http1_span_ieq(p.msg.reason, ""));

    /* the answer to a HEAD has no body whatever it says; the flag survives a 100 */
    pc_http1_expect_head_response(&p);
    const char head[] =
        "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n"
        "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nz";
    off = 0;
    n = sizeof(head) - 1;
    int heads = 0;
    size_t body = 0;
    for (;;) {
        pc_http1_event_t ev = pc_http1_feed(&p, head + off, n - off, &used, &data);
        off += used;
        if (ev == PC_HTTP1_HEAD) heads++;
        if (ev == PC_HTTP1_DATA) body += data.n;
        if (ev == PC_HTTP1_NEED_MORE || ev == PC_HTTP1_ERROR) break;
    }
    assert_int_equal(heads, 3);
    assert_int_equal(body, 1); /* only the third (a GET's answer) has a body */

    /* no length: the body runs until the connection closes */
    pc_http1_init(&p, true);
    const char close[] = "HTTP/1.0 200 OK\r\n\r\nall of it";
    assert_int_equal(pc_http1_feed(&p, close, sizeof(close) - 1, &used, &data), PC_HTTP1_HEAD);
    assert_int_equal(p.msg.body, PC_HTTP1_BODY_UNTIL_CLOSE);
    assert_false(p.msg.keep_alive);
    off = used;
    assert_int_equal(pc_http1_feed(&p, close + off, sizeof(close) - 1 - off, &used, &data),
                     PC_HTTP1_DATA);
    assert_int_equal(data.n, 9);
    assert_int_equal(pc_http1_eof(&p), PC_HTTP1_END);

    /* a chunked response cut short is a 502 */
    pc_http1_init(&p, true);
    const char cut[] = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab";
    off = 0;
    pc_http1_event_t ev;
    do {
        ev = pc_http1_feed(&p, cut + off, sizeof(cut) - 1 - off, &used, &data);
        off += used;
    } while (ev != PC_HTTP1_NEED_MORE);
    assert_int_equal(pc_http1_eof(&p), PC_HTTP1_ERROR);
    assert_int_equal(p.error_status, 502);
    /* broken responses are 502 */
    assert_int_equal(error_of("HTTP/1.1 20 OK\r\n\r\n", true), 502);
    assert_int_equal(
        error_of("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", true), 502);
    assert_int_equal(error_of("HTTP/1.1 200OK\r\n\r\n", true), 502);
    assert_int_equal(error_of("ICY 200 OK\r\n\r\n", true), 502);
}

static void test_chunk_writer(void **state)
{
    (void)state;
    char h[PC_HTTP1_CHUNK_HEADER_MAX];
    size_t n = pc_http1_chunk_header(h, 1);
    assert_int_equal(n, 3);
    assert_memory_equal(h, "1\r\n", 3);
    n = pc_http1_chunk_header(h, 65536);
    assert_memory_equal(h, "10000\r\n", n);
    n = pc_http1_chunk_header(h, SIZE_MAX);
    assert_int_equal(n, 2 * sizeof(size_t) + 2);
    /* what the writer produces, the parser reads back */
    char wire[256];
    size_t o = (size_t)snprintf(wire, sizeof(wire),
                                "PUT / HTTP/1.1\r\nHost: h\r\n"
                                "Transfer-Encoding: chunked\r\n\r\n");
    o += pc_http1_chunk_header(wire + o, 26);
    memcpy(wire + o, "abcdefghijklmnopqrstuvwxyz" PC_HTTP1_CHUNK_END PC_HTTP1_CHUNK_LAST,
           26 + 2 + 5);
    wire[o + 33] = '\0';
    expect_body(wire, "abcdefghijklmnopqrstuvwxyz");
    assert_string_equal(pc_http1_reason(404), "Not Found");
    assert_string_equal(pc_http1_reason(799), "Unknown");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_simple_get),
        cmocka_unit_test(test_incremental_head),
        cmocka_unit_test(test_bodies),
        cmocka_unit_test(test_pipelining),
        cmocka_unit_test(test_connection_semantics),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_responses),
        cmocka_unit_test(test_chunk_writer),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
