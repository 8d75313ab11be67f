/* Unit tests for audit record formatting; every record is parsed with jansson. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "audit/audit.h"
#include "core/log.h"
#include "spool/spool.h"

#include <ftw.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static char buf[PC_AUDIT_MAX_RECORD];

static json_t *parse(const char *s, size_t n)
{
    json_error_t e;
    json_t *j = json_loadb(s, n, JSON_REJECT_DUPLICATES, &e);
    if (!j)
        fail_msg("invalid JSON (%s at %d): %.*s", e.text, e.position, (int)(n > 300 ? 300 : n), s);
    assert_true(json_is_object(j));
    return j;
}

static json_t *format(const pc_audit_rec_t *rec, uint64_t seq)
{
    size_t n = pc_audit_format(buf, sizeof buf, seq, 1763771234567891000ull, rec);
    assert_true(n > 0);
    assert_int_equal(strlen(buf), n);
    return parse(buf, n);
}

static const char *str(json_t *j, const char *key)
{
    json_t *v = json_object_get(j, key);
    if (!v) fail_msg("missing %s", key);
    assert_true(json_is_string(v));
    return json_string_value(v);
}

static int setup(void **state)
{
    (void)state;
    pc_audit_set_identity("conn-1", "0.1.0");
    return 0;
}

static pc_audit_rec_t request(void)
{
    return (pc_audit_rec_t){.kind = PC_AUDIT_REQUEST,
                            .user = "alice",
                            .resource = "pg-main",
                            .technology = "postgres",
                            .session_id = 77,
                            .client_ip = "127.0.0.1",
                            .db_name = "app",
                            .application = "psql",
                            .query = "SELECT 1",
                            .stage = "simple",
                            .decision = "allow",
                            .policies = "[\"p1\",\"p2\"]",
                            .rows = 1,
                            .bytes = -1,
                            .status = -1,
                            .duration_us = 1234};
}

static void test_request_fields(void **state)
{
    (void)state;
    pc_audit_rec_t r = request();
    json_t *j = format(&r, 42);
    assert_string_equal(str(j, "id"), "conn-1-42");
    assert_string_equal(str(j, "ts"), "2025-11-22T00:27:14.567891Z");
    assert_string_equal(str(j, "instance"), "conn-1");
    assert_string_equal(str(j, "version"), "0.1.0");
    assert_string_equal(str(j, "type"), "request");
    assert_string_equal(str(j, "user"), "alice");
    assert_string_equal(str(j, "resource"), "pg-main");
    assert_string_equal(str(j, "technology"), "postgres");
    assert_int_equal(json_integer_value(json_object_get(j, "session_id")), 77);
    assert_string_equal(str(j, "client_ip"), "127.0.0.1");
    assert_string_equal(str(j, "db_name"), "app");
    assert_string_equal(str(j, "application"), "psql");
    assert_string_equal(str(j, "query"), "SELECT 1");
    assert_string_equal(str(j, "stage"), "simple");
    assert_string_equal(str(j, "decision"), "allow");
    json_t *p = json_object_get(j, "policies");
    assert_true(json_is_array(p));
    assert_int_equal(json_array_size(p), 2);
    assert_string_equal(json_string_value(json_array_get(p, 1)), "p2");
    assert_int_equal(json_integer_value(json_object_get(j, "rows")), 1);
    assert_int_equal(json_integer_value(json_object_get(j, "duration_us")), 1234);
    /* absent or unknown: omitted */
    const char *omitted[] = {"bytes",  "status",         "operation", "bucket",         "key",
                             "reason", "masked_columns", "error",     "query_truncated"};
    for (size_t i = 0; i < sizeof omitted / sizeof *omitted; i++)
        assert_null(json_object_get(j, omitted[i]));
    json_decref(j);
}

static void test_session_records(void **state)
{
    (void)state;
    pc_audit_rec_t r = {
        .kind = PC_AUDIT_SESSION_START, .user = "bob", .rows = -1, .bytes = -1, .status = -1};
    json_t *j = format(&r, 1);
    assert_string_equal(str(j, "type"), "session_start");
    assert_null(json_object_get(j, "duration_us"));
    assert_null(json_object_get(j, "policies"));
    assert_null(json_object_get(j, "session_id"));
    assert_null(json_object_get(j, "rows"));
    json_decref(j);

    r.kind = PC_AUDIT_SESSION_END;
    r.duration_us = 5;
    r.bytes = 0;
    r.error = "connection reset";
    j = format(&r, 2);
    assert_string_equal(str(j, "type"), "session_end");
    assert_int_equal(json_integer_value(json_object_get(j, "duration_us")), 5);
    assert_int_equal(json_integer_value(json_object_get(j, "bytes")), 0);
    assert_string_equal(str(j, "error"), "connection reset");
    json_decref(j);

    /* a request without policies still says which matched: none */
    pc_audit_rec_t q = request();
    q.policies = NULL;
    j = format(&q, 3);
    assert_int_equal(json_array_size(json_object_get(j, "policies")), 0);
    json_decref(j);
}

static void test_escaping(void **state)
{
    (void)state;
    pc_audit_rec_t r = request();
    r.query = "SELECT '\"q\"', E'\\\\', '\n\r\t', '\x01\x1f\x7f', 'h\xc3\xa9', '\xf0\x9f\x98\x80'";
    r.user = "evil\",\"decision\":\"allow";
    r.key = "a/\xff\xfe/b";    /* invalid UTF-8 */
    r.reason = "cut \xe2\x82"; /* truncated sequence at the end */
    r.error = "overlong \xc0\xaf and surrogate \xed\xa0\x80";
    json_t *j = format(&r, 9);
    assert_string_equal(str(j, "query"), r.query);
    assert_string_equal(str(j, "user"), r.user);
    assert_string_equal(str(j, "decision"), "allow");
    assert_string_equal(str(j, "key"), "a/\xef\xbf\xbd\xef\xbf\xbd/b");
    assert_string_equal(str(j, "reason"), "cut \xef\xbf\xbd\xef\xbf\xbd");
    assert_string_equal(str(j, "error"), "overlong \xef\xbf\xbd\xef\xbf\xbd and surrogate "
                                         "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");
    json_decref(j);
    /* no raw control character ever reaches the line */
    for (const char *p = buf; *p; p++)
        assert_true((unsigned char)*p >= 0x20);
}

/* Every special byte at every offset of the 16-byte scanning blocks. */
static void test_escaping_positions(void **state)
{
    (void)state;
    const char *specials[] = {"\"", "\\", "\x01", "\x1f", "\x7f", "\xc3\xa9", "\xff"};
    const char *decoded[] = {"\"", "\\", "\x01", "\x1f", "\x7f", "\xc3\xa9", "\xef\xbf\xbd"};
    for (size_t k = 0; k < sizeof specials / sizeof *specials; k++) {
        for (size_t at = 0; at < 40; at++) {
            char in[64], want[64];
            memset(in, 'a', at);
            memset(want, 'a', at);
            size_t sl = strlen(specials[k]), dl = strlen(decoded[k]);
            memcpy(in + at, specials[k], sl);
            memcpy(want + at, decoded[k], dl);
            memset(in + at + sl, 'b', 5);
            memset(want + at + dl, 'b', 5);
            in[at + sl + 5] = '\0';
            want[at + dl + 5] = '\0';
            pc_audit_rec_t r = request();
            r.query = in;
            json_t *j = format(&r, 1);
            assert_string_equal(str(j, "query"), want);
            json_decref(j);
        }
    }
}

static void test_identity_escaped(void **state)
{
    (void)state;
    pc_audit_set_identity("we\"ird\\host", "1.2.3");
    pc_audit_rec_t r = request();
    json_t *j = format(&r, 5);
    assert_string_equal(str(j, "id"), "we\"ird\\host-5");
    assert_string_equal(str(j, "instance"), "we\"ird\\host");
    json_decref(j);
    /* invalid UTF-8 and control characters in a hostname, and a very long one */
    pc_audit_set_identity("h\xb4st\n", "0.1.0\x01");
    j = format(&r, 6);
    assert_string_equal(str(j, "instance"), "h\xef\xbf\xbdst\n");
    assert_string_equal(str(j, "version"), "0.1.0\x01");
    json_decref(j);
    char longname[2000];
    memset(longname, 'n', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    pc_audit_set_identity(longname, "0.1.0");
    j = format(&r, 7);
    assert_true(strlen(str(j, "instance")) < 256);
    json_decref(j);
    pc_audit_set_identity("conn-1", "0.1.0");
}

static void test_query_truncation(void **state)
{
    (void)state;
    size_t big = 100 * 1024;
    char *q = pc_xmalloc(big + 1);
    pc_audit_rec_t r = request();
    r.query = q;

    /* Exactly at the cap: kept whole. */
    memset(q, 'a', PC_AUDIT_QUERY_MAX);
    q[PC_AUDIT_QUERY_MAX] = '\0';
    json_t *j = format(&r, 1);
    assert_int_equal(strlen(str(j, "query")), PC_AUDIT_QUERY_MAX);
    assert_null(json_object_get(j, "query_truncated"));
    json_decref(j);

    /* One over: cut and flagged. */
    q[PC_AUDIT_QUERY_MAX] = 'b';
    q[PC_AUDIT_QUERY_MAX + 1] = '\0';
    j = format(&r, 2);
    assert_int_equal(strlen(str(j, "query")), PC_AUDIT_QUERY_MAX);
    assert_true(json_is_true(json_object_get(j, "query_truncated")));
    assert_string_equal(str(j, "decision"), "allow"); /* later fields still there */
    json_decref(j);

    /* Multi-byte characters straddling the cut at every alignment stay valid UTF-8. */
    for (size_t shift = 0; shift < 4; shift++) {
        memset(q, 'x', shift);
        for (size_t i = shift; i + 4 <= big; i += 4)
            memcpy(q + i, "\xf0\x9f\x98\x80", 4);
        q[big - big % 4] = '\0';
        j = format(&r, 3);
        size_t len = strlen(str(j, "query"));
        assert_true(len <= PC_AUDIT_QUERY_MAX && len > PC_AUDIT_QUERY_MAX - 4);
        assert_true(json_is_true(json_object_get(j, "query_truncated")));
        json_decref(j);
    }

    /* Characters that escape to six bytes count by their escaped size. */
    memset(q, '\x01', big);
    q[big] = '\0';
    size_t n = pc_audit_format(buf, sizeof buf, 4, 0, &r);
    assert_true(n > 0 && n < PC_AUDIT_QUERY_MAX + 1024);
    j = parse(buf, n);
    assert_int_equal(strlen(str(j, "query")), PC_AUDIT_QUERY_MAX / 6);
    assert_string_equal(str(j, "ts"), "1970-01-01T00:00:00.000000Z");
    json_decref(j);
    free(q);
}

/* Every field at once, each far over its cap: still one valid record. */
static void test_everything_oversized(void **state)
{
    (void)state;
    size_t big = 200 * 1024;
    char *s = pc_xmalloc(big + 1);
    memset(s, '"', big);
    s[big] = '\0';
    /* (jansson stops at INT64_MAX; the formatter itself prints any uint64) */
    pc_audit_rec_t r = {
        PC_AUDIT_REQUEST, s,         s,   s,         INT64_MAX, s, s, s, s, s, s, s, s, s, s, s, s,
        INT64_MAX,        INT64_MAX, 599, INT64_MAX, s,           INT64_MAX, INT64_MAX};
    size_t n = pc_audit_format(buf, sizeof buf, UINT64_MAX, UINT64_MAX, &r);
    assert_non_null(strstr(buf, "\"id\":\"conn-1-18446744073709551615\""));
    assert_true(n > 0 && n < sizeof buf);
    json_t *j = parse(buf, n);
    assert_true(json_is_true(json_object_get(j, "query_truncated")));
    /* policies / masked_columns that are not arrays of strings are kept as one string */
    json_t *p = json_object_get(j, "policies");
    assert_true(json_is_array(p) && json_array_size(p) == 1);
    assert_true(json_is_string(json_array_get(p, 0)));
    json_decref(j);
    free(s);
}

static void test_raw_arrays(void **state)
{
    (void)state;
    pc_audit_rec_t r = request();
    const char *good[] = {"[]",
                          " [ ] ",
                          "[\"a\"]",
                          "[\"a\\\"b\", \"\\u00e9\\n\"]",
                          "[\"h\xc3\xa9\"]",
                          "[\"\\ud83d\\ude00\"]",
                          "[\"\\u00E9\"]"};
    for (size_t i = 0; i < sizeof good / sizeof *good; i++) {
        r.masked_columns = good[i];
        json_t *j = format(&r, 1);
        json_t *m = json_object_get(j, "masked_columns");
        assert_true(json_is_array(m));
        /* passed through verbatim, apart from whitespace between elements */
        if (!strchr(good[i], ' ')) assert_non_null(strstr(buf, good[i]));
        json_decref(j);
    }
    /* pretty-printed arrays come out on one line */
    r.masked_columns = "[\n  \"a b\",\r\n\t\"c\\\"\"\n]";
    json_t *pretty = format(&r, 1);
    assert_non_null(strstr(buf, "\"masked_columns\":[\"a b\",\"c\\\"\"]"));
    for (const char *p = buf; *p; p++)
        assert_true((unsigned char)*p >= 0x20);
    json_decref(pretty);
    const char *bad[] = {"",
                         "[",
                         "]",
                         "[1]",
                         "[\"a\",]",
                         "[\"a\"] x",
                         "{\"a\":1}",
                         "[\"\\x\"]",
                         "[\"\x01\"]",
                         "[\"\xff\"]",
                         "[\"a\"",
                         "[\"\\u12\"]",
                         "null",
                         "[\"a\"],[\"b\"]",
                         "[\"\\u0000\"]",
                         "[\"\\ud800\"]",
                         "[\"\\udc00\"]",
                         "[\"\\ud800\\u0041\"]",
                         "[\"\\u00g0\"]"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        r.masked_columns = bad[i];
        json_t *j = format(&r, 1);
        json_t *m = json_object_get(j, "masked_columns");
        assert_true(json_is_array(m));
        assert_int_equal(json_array_size(m), 1);
        assert_true(json_is_string(json_array_get(m, 0)));
        json_decref(j);
    }
}

static void test_small_buffer(void **state)
{
    (void)state;
    pc_audit_rec_t r = request();
    size_t n = pc_audit_format(buf, sizeof buf, 7, 0, &r);
    assert_true(n > 0);
    char copy[4096];
    memcpy(copy, buf, n + 1);
    char small[4096];
    assert_int_equal(pc_audit_format(small, n + 1, 7, 0, &r), n);
    assert_memory_equal(small, copy, n + 1);
    for (size_t cap = 0; cap <= n; cap++)
        assert_int_equal(pc_audit_format(small, cap, 7, 0, &r), 0);
}

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    return remove(path);
}

static void test_emit_to_spool(void **state)
{
    (void)state;
    pc_log_level = PC_LOG_WARN;
    char dir[] = "/tmp/pc-audit-test-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char err[256];
    pc_spool_t *sp = pc_spool_open(dir, 64u << 20, err, sizeof err);
    assert_non_null(sp);
    pc_audit_rec_t r = request();
    for (int i = 0; i < 3; i++)
        assert_true(pc_audit_emit(sp, &r));
    assert_false(pc_audit_emit(NULL, &r));
    pc_spool_close(sp);

    pc_spool_reader_t *rd = pc_spool_reader_open(dir, NULL, err, sizeof err);
    const char *rec;
    size_t len;
    int count = 0;
    char last_id[64] = "";
    while (pc_spool_reader_next(rd, &rec, &len, NULL) == PC_SPOOL_READ_OK) {
        json_t *j = parse(rec, len);
        const char *id = str(j, "id");
        assert_int_equal(strncmp(id, "conn-1-", 7), 0);
        assert_string_not_equal(id, last_id);
        snprintf(last_id, sizeof last_id, "%s", id);
        json_decref(j);
        count++;
    }
    assert_int_equal(count, 3);
    pc_spool_reader_close(rd);
    nftw(dir, rm_one, 8, FTW_DEPTH | FTW_PHYS);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_request_fields),
        cmocka_unit_test(test_session_records),
        cmocka_unit_test(test_escaping),
        cmocka_unit_test(test_escaping_positions),
        cmocka_unit_test(test_identity_escaped),
        cmocka_unit_test(test_query_truncation),
        cmocka_unit_test(test_everything_oversized),
        cmocka_unit_test(test_raw_arrays),
        cmocka_unit_test(test_small_buffer),
        cmocka_unit_test(test_emit_to_spool),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
