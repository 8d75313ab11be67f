/* Health server: request reader, router, and one live socket round trip. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "health/http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static pc__health_read_t read_all(pc__health_reader_t *r, const char *s, size_t *used,
                                  pc__health_req_t *req)
{
    return pc__health_read(r, s, strlen(s), used, req);
}

static void test_simple_get(void **state)
{
    pc__health_reader_t r;
    pc__health_reader_init(&r);
    pc__health_req_t req;
    size_t used;
    const char *s = "GET /ready?verbose=1 HTTP/1.1\r\nHost: x\r\n\r\n";
    assert_int_equal(read_all(&r, s, &used, &req), PC__HEALTH_REQUEST);
    assert_int_equal(used, strlen(s));
    assert_int_equal(req.method, HTTP_GET);
    assert_string_equal(req.path, "/ready");
    assert_true(req.keep_alive);
}

static void test_pipelined_and_split(void **state)
{
    const char *s = "GET /health HTTP/1.1\r\n\r\nHEAD /metrics HTTP/1.0\r\n\r\n";
    pc__health_reader_t r;
    pc__health_reader_init(&r);
    pc__health_req_t req;
    size_t used, off = 0;
    assert_int_equal(pc__health_read(&r, s, strlen(s), &used, &req), PC__HEALTH_REQUEST);
    assert_string_equal(req.path, "/health");
    off += used;
    assert_int_equal(pc__health_read(&r, s + off, strlen(s) - off, &used, &req),
                     PC__HEALTH_REQUEST);
    assert_string_equal(req.path, "/metrics");
    assert_int_equal(req.method, HTTP_HEAD);
    assert_false(req.keep_alive); /* HTTP/1.0 without keep-alive */
    off += used;
    assert_int_equal(off, strlen(s));

    /* One byte at a time gives the same request. */
    pc__health_reader_init(&r);
    const char *t = "GET /ready HTTP/1.1\r\nConnection: close\r\n\r\n";
    int got = 0;
    for (size_t i = 0; t[i]; i++) {
        pc__health_read_t rc = pc__health_read(&r, t + i, 1, &used, &req);
        assert_int_equal(used, 1);
        if (rc == PC__HEALTH_REQUEST) got++;
        else assert_int_equal(rc, PC__HEALTH_NEED_MORE);
    }
    assert_int_equal(got, 1);
    assert_string_equal(req.path, "/ready");
    assert_false(req.keep_alive);
}

static void test_oversized_and_garbage(void **state)
{
    pc__health_reader_t r;
    pc__health_reader_init(&r);
    pc__health_req_t req;
    size_t used;
    char big[PC__HEALTH_MAX_REQUEST + 100];
    int n = snprintf(big, sizeof big, "GET /health HTTP/1.1\r\nX-Pad: ");
    memset(big + n, 'a', sizeof big - (size_t)n);
    pc__health_read_t rc = PC__HEALTH_NEED_MORE;
    size_t off = 0;
    while (rc == PC__HEALTH_NEED_MORE && off < sizeof big) {
        size_t chunk = sizeof big - off < 1000 ? sizeof big - off : 1000;
        rc = pc__health_read(&r, big + off, chunk, &used, &req);
        off += used;
    }
    assert_int_equal(rc, PC__HEALTH_TOO_LARGE);

    pc__health_reader_init(&r);
    assert_int_equal(read_all(&r, "\x16\x03\x01\x02\x00garbage\r\n\r\n", &used, &req),
                     PC__HEALTH_BAD);
}

static void test_long_path(void **state)
{
    pc__health_reader_t r;
    pc__health_reader_init(&r);
    pc__health_req_t req;
    size_t used;
    char s[1024];
    int n = snprintf(s, sizeof s, "GET /");
    memset(s + n, 'x', 600);
    snprintf(s + n + 600, sizeof s - (size_t)n - 600, " HTTP/1.1\r\n\r\n");
    assert_int_equal(read_all(&r, s, &used, &req), PC__HEALTH_REQUEST);
    assert_true(req.path_too_long);
    pc_health_view_t v = {.ready = true};
    size_t len;
    char *resp = pc__health_respond(&req, &v, false, &len);
    assert_memory_equal(resp, "HTTP/1.1 414 ", 13);
    free(resp);
}

static char *respond(const char *method_path, const pc_health_view_t *v, size_t *len)
{
    pc__health_reader_t r;
    pc__health_reader_init(&r);
    pc__health_req_t req;
    size_t used;
    char s[256];
    snprintf(s, sizeof s, "%s HTTP/1.1\r\nHost: x\r\n\r\n", method_path);
    assert_int_equal(read_all(&r, s, &used, &req), PC__HEALTH_REQUEST);
    return pc__health_respond(&req, v, !req.keep_alive, len);
}

static void test_routes(void **state)
{
    size_t len;
    pc_health_view_t down = {.ready = false, .reason = "listeners not bound", .revision = 3};
    pc_health_view_t up = {.ready = true, .revision = 7, .instance = "i\"1", .workers = 2,
                           .listeners = 1};

    char *r = respond("GET /health", &down, &len);
    assert_memory_equal(r, "HTTP/1.1 200 OK\r\n", 17);
    assert_non_null(strstr(r, "\r\n\r\n{\"status\":\"ok\"}\n"));
    assert_non_null(strstr(r, "Connection: keep-alive\r\n"));
    free(r);

    r = respond("GET /ready", &down, &len);
    assert_memory_equal(r, "HTTP/1.1 503 ", 13);
    assert_non_null(strstr(r, "{\"ready\":false,\"reason\":\"listeners not bound\""));
    free(r);

    r = respond("GET /ready", &up, &len);
    assert_memory_equal(r, "HTTP/1.1 200 ", 13);
    assert_non_null(strstr(r, "\"ready\":true,\"revision\":7,\"instance\":\"i\\\"1\""));
    free(r);

    r = respond("GET /nope", &up, &len);
    assert_memory_equal(r, "HTTP/1.1 404 ", 13);
    free(r);

    r = respond("POST /ready", &up, &len);
    assert_memory_equal(r, "HTTP/1.1 405 ", 13);
    assert_non_null(strstr(r, "Allow: GET, HEAD\r\n"));
    free(r);

    r = respond("HEAD /health", &up, &len);
    assert_memory_equal(r, "HTTP/1.1 200 ", 13);
    /* HEAD: headers with the GET's length, no body. */
    assert_non_null(strstr(r, "Content-Length: 16\r\n"));
    assert_int_equal(r[len - 1], '\n');
    assert_int_equal(r[len - 2], '\r');
    free(r);

    r = respond("GET /metrics", &up, &len);
    assert_non_null(strstr(r, "Content-Type: text/plain; version=0.0.4"));
    free(r);
}

/* ---------- a live round trip on a real socket ---------- */

static int view_calls;

static void live_view(void *arg, pc_health_view_t *out)
{
    view_calls++;
    out->ready = *(bool *)arg;
    out->reason = "configuration not loaded";
}

static size_t pump(uv_loop_t *loop, int fd, char *buf, size_t cap, const char *until, int count)
{
    size_t got = 0;
    for (int i = 0; i < 2000; i++) {
        uv_run(loop, UV_RUN_NOWAIT);
        ssize_t r = recv(fd, buf + got, cap - 1 - got, MSG_DONTWAIT);
        if (r > 0) got += (size_t)r;
        if (r == 0) break;
        buf[got] = '\0';
        int seen = 0;
        for (const char *p = buf; (p = strstr(p, until)); p++) seen++;
        if (seen >= count) break;
        usleep(1000);
    }
    buf[got] = '\0';
    return got;
}

static void test_live_keepalive_and_close(void **state)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    bool ready = false;
    char err[256];
    pc_health_t *h = pc_health_start(&loop, "127.0.0.1:0", live_view, &ready, err, sizeof err);
    assert_non_null(h);
    int port = pc_health_port(h);
    assert_true(port > 0);

    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);

    const char *two = "GET /ready HTTP/1.1\r\n\r\nGET /health HTTP/1.1\r\n\r\n";
    assert_int_equal(send(fd, two, strlen(two), 0), (ssize_t)strlen(two));
    char buf[8192];
    pump(&loop, fd, buf, sizeof buf, "HTTP/1.1 ", 2);
    assert_non_null(strstr(buf, "HTTP/1.1 503 "));
    assert_non_null(strstr(buf, "HTTP/1.1 200 "));
    assert_true(strstr(buf, "503") < strstr(buf, "200 OK"));

    /* Same connection, state flipped: keep-alive really kept it. */
    ready = true;
    const char *one = "GET /ready HTTP/1.1\r\nConnection: close\r\n\r\n";
    assert_int_equal(send(fd, one, strlen(one), 0), (ssize_t)strlen(one));
    pump(&loop, fd, buf, sizeof buf, "\"ready\":true", 1);
    assert_non_null(strstr(buf, "HTTP/1.1 200 "));
    /* Connection: close was honoured: the server hangs up. */
    char tmp[16];
    ssize_t r = -1;
    for (int i = 0; i < 2000 && r != 0; i++) {
        uv_run(&loop, UV_RUN_NOWAIT);
        r = recv(fd, tmp, sizeof tmp, MSG_DONTWAIT);
        if (r < 0) usleep(1000);
    }
    assert_int_equal(r, 0);
    close(fd);

    /* Garbage gets a 400 and a close, and the server keeps serving. */
    fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    const char *junk = "\x01\x02\x03 garbage\r\n\r\n";
    assert_int_equal(send(fd, junk, strlen(junk), 0), (ssize_t)strlen(junk));
    size_t got400 = pump(&loop, fd, buf, sizeof buf, "HTTP/1.1 400", 1);
    if (!strstr(buf, "HTTP/1.1 400 ")) fprintf(stderr, "got %zu: %s\n", got400, buf);
    assert_non_null(strstr(buf, "HTTP/1.1 400 "));
    close(fd);
    assert_int_equal(view_calls, 3); /* one per request answered */

    pc_health_stop(h);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
}

static void test_bad_listen(void **state)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    char err[256];
    assert_null(pc_health_start(&loop, "nonsense", live_view, NULL, err, sizeof err));
    assert_non_null(strstr(err, "health.listen"));
    assert_null(pc_health_start(&loop, "127.0.0.1:99999", live_view, NULL, err, sizeof err));
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_simple_get),
        cmocka_unit_test(test_pipelined_and_split),
        cmocka_unit_test(test_oversized_and_garbage),
        cmocka_unit_test(test_long_path),
        cmocka_unit_test(test_routes),
        cmocka_unit_test(test_live_keepalive_and_close),
        cmocka_unit_test(test_bad_listen),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
