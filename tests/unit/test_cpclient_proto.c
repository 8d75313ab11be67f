/* Control-plane client, pure parts: NDJSON splitting, stream messages, backoff, log batches. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "core/config.h"
#include "cpclient/cpclient_int.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Feed text in chunks of `step` bytes; collect the lines joined by '|'. Returns the last result. */
static pc__ndjson_res_t split_all(pc__ndjson_t *p, const char *text, size_t step, char *out,
                                  size_t cap)
{
    size_t len = strlen(text), off = 0, o = 0;
    pc__ndjson_res_t r = PC__NDJSON_NEED_MORE;
    out[0] = '\0';
    while (off < len) {
        size_t n = len - off < step ? len - off : step;
        size_t base = off;
        size_t done = 0;
        while (done < n) {
            size_t used;
            const char *line;
            size_t ll;
            r = pc__ndjson_feed(p, text + base + done, n - done, &used, &line, &ll);
            done += used;
            if (r == PC__NDJSON_ERROR) return r;
            if (r == PC__NDJSON_LINE) {
                assert_true(o + ll + 2 < cap);
                memcpy(out + o, line, ll);
                o += ll;
                out[o++] = '|';
                out[o] = '\0';
            } else {
                assert_int_equal(done, n); /* NEED_MORE consumes everything */
            }
        }
        off += n;
    }
    return r;
}

static void test_ndjson_chunking(void **state)
{
    (void)state;
    const char *text = "{\"a\":1}\n\r\n\n{\"b\":2}\r\n{\"c\":\"x y\"}\npartial";
    for (size_t step = 1; step <= strlen(text); step++) {
        pc__ndjson_t p;
        char out[256];
        pc__ndjson_init(&p, 64);
        pc__ndjson_res_t r = split_all(&p, text, step, out, sizeof out);
        assert_int_not_equal(r, PC__NDJSON_ERROR);
        assert_string_equal(out, "{\"a\":1}|{\"b\":2}|{\"c\":\"x y\"}|");
        /* The partial tail is carried, completed by the next feed. */
        size_t used;
        const char *line;
        size_t ll;
        assert_int_equal(pc__ndjson_feed(&p, "!\n", 2, &used, &line, &ll), PC__NDJSON_LINE);
        assert_int_equal(used, 2);
        assert_int_equal(ll, 8);
        assert_memory_equal(line, "partial!", 8);
        pc__ndjson_free(&p);
    }
}

static void test_ndjson_max_line(void **state)
{
    (void)state;
    pc__ndjson_t p;
    char out[256];
    pc__ndjson_init(&p, 8);
    /* Exactly max_line bytes is accepted, one more is not. */
    assert_int_not_equal(split_all(&p, "12345678\n", 3, out, sizeof out), PC__NDJSON_ERROR);
    assert_string_equal(out, "12345678|");
    assert_int_equal(split_all(&p, "123456789\n", 2, out, sizeof out), PC__NDJSON_ERROR);
    /* Sticky until reset, and nothing buffered beyond the limit. */
    size_t used = 99;
    const char *line;
    size_t ll;
    assert_int_equal(pc__ndjson_feed(&p, "x\n", 2, &used, &line, &ll), PC__NDJSON_ERROR);
    assert_int_equal(used, 0);
    assert_true(p.cap <= 9);
    pc__ndjson_reset(&p);
    assert_int_equal(pc__ndjson_feed(&p, "x\n", 2, &used, &line, &ll), PC__NDJSON_LINE);
    assert_int_equal(ll, 1);
    pc__ndjson_free(&p);
}

static void test_msg_decode(void **state)
{
    (void)state;
    pc__cpmsg_t m;
    char err[160];
    const char *hb = "{\"type\":\"heartbeat\",\"revision\":7,\"ts\":\"2026-01-01T00:00:00Z\"}";
    assert_true(pc__cpmsg_decode(hb, strlen(hb), &m, err, sizeof err));
    assert_int_equal(m.type, PC__CPMSG_HEARTBEAT);
    assert_int_equal(m.revision, 7);
    assert_null(m.snapshot_text);

    const char *snap = "{\"type\":\"snapshot\",\"revision\":12,\"snapshot\":{\"revision\":12,"
                       "\"resources\":[],\"listeners\":[],\"users\":[],\"policies\":[]}}";
    assert_true(pc__cpmsg_decode(snap, strlen(snap), &m, err, sizeof err));
    assert_int_equal(m.type, PC__CPMSG_SNAPSHOT);
    assert_int_equal(m.revision, 12);
    assert_non_null(m.snapshot_text);
    assert_null(strstr(m.snapshot_text, "revision"));
    pc__cpmsg_free(&m);

    const char *future = "{\"type\":\"something-new\",\"x\":[1]}";
    assert_true(pc__cpmsg_decode(future, strlen(future), &m, err, sizeof err));
    assert_int_equal(m.type, PC__CPMSG_OTHER);

    static const char *const bad[] = {
        "not json",
        "[1,2]",
        "{\"revision\":1}",
        "{\"type\":3}",
        "{\"type\":\"snapshot\",\"revision\":1}",
        "{\"type\":\"snapshot\",\"revision\":-1,\"snapshot\":{}}",
        "{\"type\":\"snapshot\",\"revision\":\"1\",\"snapshot\":{}}",
        "{\"type\":\"snapshot\",\"revision\":1,\"snapshot\":[]}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        err[0] = '\0';
        assert_false(pc__cpmsg_decode(bad[i], strlen(bad[i]), &m, err, sizeof err));
        assert_true(err[0] != '\0');
        assert_null(m.snapshot_text);
    }
}

/* What the control plane pushes must load through the same loader config_dir uses. */
static void test_snapshot_text_loads(void **state)
{
    (void)state;
    json_t *line = json_pack(
        "{s:s, s:i, s:{s:i, s:[{s:s, s:s, s:s, s:i, s:s, s:{s:s, s:s}}], s:[{s:s, s:i, s:s}],"
        " s:[{s:s, s:s, s:[s]}], s:[{s:s, s:s, s:s}]}}",
        "type", "snapshot", "revision", 42, "snapshot", "revision", 42, "resources", "name",
        "pg-main", "technology", "postgres", "hostname", "127.0.0.1", "port", 5432, "database",
        "app/db: \"quoted\" \xc3\xa9 \xf0\x9f\x94\x92", "credentials", "username", "app",
        "password", "p\\w: #x", "listeners", "name", "pg", "port", 15433, "resource", "pg-main",
        "users", "username", "alice", "email", "a@example.com", "groups", "analysts", "policies",
        "name", "p1", "status", "active", "module",
        "package formal.v2\n\n# comment: with \"quotes\"\tand tab\ndefault allow := true\n");
    assert_non_null(line);
    char *text = json_dumps(line, JSON_COMPACT);
    json_decref(line);
    pc__cpmsg_t m;
    char err[1024] = "";
    assert_true(pc__cpmsg_decode(text, strlen(text), &m, err, sizeof err));
    free(text);
    pc_snapshot_t *s =
        pc_snapshot_load_yaml(m.snapshot_text, m.snapshot_len, "push", m.revision, err, sizeof err);
    if (!s) fail_msg("loader refused the pushed snapshot: %s", err);
    assert_int_equal(s->revision, 42);
    assert_int_equal(s->n_resources, 1);
    assert_string_equal(s->resources[0].database, "app/db: \"quoted\" \xc3\xa9 \xf0\x9f\x94\x92");
    assert_string_equal(s->resources[0].credentials.password, "p\\w: #x");
    assert_int_equal(s->n_listeners, 1);
    assert_int_equal(s->listeners[0].port, 15433);
    assert_int_equal(s->n_users, 1);
    assert_string_equal(s->users[0].groups[0], "analysts");
    assert_int_equal(s->n_policies, 1);
    assert_non_null(strstr(s->policies[0].module, "\tand tab\n"));
    pc_snapshot_unref(s);
    pc__cpmsg_free(&m);
}

static void test_backoff(void **state)
{
    (void)state;
    pc__backoff_t b;
    pc__backoff_init(&b, 250, 30000);
    uint64_t expect[] = {250, 500, 1000, 2000, 4000, 8000, 16000, 30000, 30000};
    for (size_t i = 0; i < sizeof expect / sizeof *expect; i++) {
        assert_int_equal(pc__backoff_ceiling(&b), expect[i]);
        /* Full jitter: anything in [0, ceiling], including both ends. */
        pc__backoff_t copy = b;
        assert_int_equal(pc__backoff_next(&copy, expect[i]), expect[i]);
        copy = b;
        assert_int_equal(pc__backoff_next(&copy, expect[i] + 1), 0);
        assert_true(pc__backoff_next(&b, UINT64_MAX) <= expect[i]);
    }
    for (int i = 0; i < 200; i++)
        assert_true(pc__backoff_next(&b, (uint64_t)i * 7919u) <= 30000);
    assert_int_equal(pc__backoff_ceiling(&b), 30000);
    pc__backoff_reset(&b);
    assert_int_equal(pc__backoff_ceiling(&b), 250);
}

static void test_batch(void **state)
{
    (void)state;
    pc__batch_t b;
    size_t len;
    pc__batch_init(&b, 3, 64);
    assert_null(pc__batch_body(&b, &len));
    assert_int_equal(pc__batch_add(&b, "{\"id\":\"a\"}", 10), PC__BATCH_ADDED);
    const char *body = pc__batch_body(&b, &len);
    assert_int_equal(len, strlen("{\"records\":[{\"id\":\"a\"}]}"));
    assert_memory_equal(body, "{\"records\":[{\"id\":\"a\"}]}", len);
    /* Garbage and non-objects are never shipped. */
    assert_int_equal(pc__batch_add(&b, "{\"id\":", 6), PC__BATCH_INVALID);
    assert_int_equal(pc__batch_add(&b, "[1]", 3), PC__BATCH_INVALID);
    assert_int_equal(pc__batch_add(&b, "{} {}", 5), PC__BATCH_INVALID);
    assert_int_equal(pc__batch_add(&b, "{\"id\":\"b\"}", 10), PC__BATCH_ADDED);
    assert_int_equal(pc__batch_add(&b, "{\"id\":\"c\"}", 10), PC__BATCH_ADDED);
    assert_int_equal(pc__batch_add(&b, "{\"id\":\"d\"}", 10), PC__BATCH_FULL); /* 3 records */
    body = pc__batch_body(&b, &len);
    json_t *v = json_loadb(body, len, 0, NULL);
    assert_non_null(v);
    assert_int_equal(json_array_size(json_object_get(v, "records")), 3);
    json_decref(v);
    assert_true(len <= 64);
    pc__batch_clear(&b);
    /* Byte limit: 12 + 2 framing bytes; a record that can never fit is INVALID. */
    char big[64];
    memset(big, 'x', sizeof big);
    memcpy(big, "{\"k\":\"", 6);
    memcpy(big + 48, "\"}", 2);
    assert_int_equal(pc__batch_add(&b, big, 50), PC__BATCH_ADDED); /* 64 bytes */
    assert_int_equal(pc__batch_add(&b, "{}", 2), PC__BATCH_FULL);
    pc__batch_clear(&b);
    memcpy(big + 49, "\"}", 2);
    assert_int_equal(pc__batch_add(&b, big, 51), PC__BATCH_INVALID);
    pc__batch_free(&b);
}

static void test_url(void **state)
{
    (void)state;
    char out[64];
    assert_true(pc__cp_url(out, sizeof out, "http://h:1//", "/v1/x"));
    assert_string_equal(out, "http://h:1/v1/x");
    assert_true(pc__cp_url(out, sizeof out, "https://h", "/v1/x?y=1"));
    assert_string_equal(out, "https://h/v1/x?y=1");
    assert_false(pc__cp_url(out, 10, "https://h", "/v1/x"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ndjson_chunking),
        cmocka_unit_test(test_ndjson_max_line),
        cmocka_unit_test(test_msg_decode),
        cmocka_unit_test(test_snapshot_text_loads),
        cmocka_unit_test(test_backoff),
        cmocka_unit_test(test_batch),
        cmocka_unit_test(test_url),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
