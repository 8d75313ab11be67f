/* The control plane's API handlers on an in-memory database: CRUD and revisions, secrets,
 * policy errors, logs paging, watch lines; plus the YAML -> JSON and RFC 3339 helpers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cp/cp.h"

#define ADMIN "admin-token-unit-0123456789"
#define AUTH "Bearer " ADMIN

typedef struct {
    pc_cp_t *cp;
} fx_t;

static int setup(void **state)
{
    char err[256];
    fx_t *f = calloc(1, sizeof *f);
    f->cp = pc_cp_open(":memory:", ADMIN, err, sizeof err);
    assert_non_null(f->cp);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx_t *f = *state;
    pc_cp_close(f->cp);
    free(f);
    return 0;
}

/* One request; returns the status and the parsed body (caller decrefs). */
static int call(pc_cp_t *cp, const char *method, const char *path, const char *query,
                const char *auth, const char *body, json_t **out)
{
    pc_cp_request_t req = {.method = method, .path = path, .query = query, .authorization = auth,
                           .body = body ? body : "", .body_len = body ? strlen(body) : 0,
                           .peer = "127.0.0.1:1"};
    pc_cp_response_t r;
    pc_cp_handle(cp, &req, &r);
    json_t *v = json_loadb(r.body, r.len, 0, NULL);
    assert_non_null(v); /* every answer, errors included, is JSON */
    int status = r.status;
    pc_cp_response_free(&r);
    if (out) *out = v;
    else json_decref(v);
    return status;
}

static const char *error_message(const json_t *v)
{
    return json_string_value(json_object_get(json_object_get(v, "error"), "message"));
}

static const char objects[] =
    "{\"resources\": [{\"name\": \"pg-main\", \"technology\": \"postgres\", \"hostname\": "
    "\"127.0.0.1\", \"port\": 5432, \"credentials\": {\"username\": \"app\", \"password\": "
    "\"upstream-secret\"}}], \"listeners\": [{\"name\": \"pg\", \"port\": 15433, \"resource\": "
    "\"pg-main\"}], \"users\": [{\"username\": \"alice\", \"password\": \"alice-secret\"}]}";

static void test_auth(void **state)
{
    fx_t *f = *state;
    assert_int_equal(call(f->cp, "GET", "/v1/resources", NULL, NULL, NULL, NULL), 401);
    assert_int_equal(call(f->cp, "GET", "/v1/resources", NULL, "Bearer nope", NULL, NULL), 401);
    assert_int_equal(call(f->cp, "GET", "/v1/resources", NULL, "Basic " ADMIN, NULL, NULL), 401);
    assert_int_equal(call(f->cp, "GET", "/v1/resources", NULL, AUTH "x", NULL, NULL), 401);
    assert_int_equal(call(f->cp, "GET", "/v1/resources", NULL, AUTH, NULL, NULL), 200);
    assert_int_equal(call(f->cp, "GET", "/v1/connector/config", NULL, AUTH, NULL, NULL), 401);
}

static void test_apply_revisions_and_secrets(void **state)
{
    fx_t *f = *state;
    json_t *v;
    assert_int_equal(call(f->cp, "POST", "/v1/apply", NULL, AUTH, objects, &v), 200);
    assert_int_equal(json_integer_value(json_object_get(v, "revision")), 1);
    json_decref(v);
    /* GET never returns a secret. */
    pc_cp_request_t req = {.method = "GET", .path = "/v1/users/alice", .authorization = AUTH};
    pc_cp_response_t r;
    pc_cp_handle(f->cp, &req, &r);
    assert_int_equal(r.status, 200);
    assert_null(strstr(r.body, "alice-secret"));
    assert_null(strstr(r.body, "SCRAM"));
    pc_cp_response_free(&r);
    req.path = "/v1/resources";
    pc_cp_handle(f->cp, &req, &r);
    assert_null(strstr(r.body, "upstream-secret"));
    assert_non_null(strstr(r.body, "\"***\""));
    pc_cp_response_free(&r);
    /* Invalid snapshot: nothing changes. */
    assert_int_equal(call(f->cp, "PUT", "/v1/listeners/x", NULL, AUTH,
                          "{\"port\": 1000, \"resource\": \"missing\"}", &v),
                     400);
    assert_non_null(strstr(error_message(v), "missing"));
    json_decref(v);
    assert_int_equal(call(f->cp, "GET", "/v1/revision", NULL, AUTH, NULL, &v), 200);
    assert_int_equal(json_integer_value(json_object_get(v, "revision")), 1);
    json_decref(v);
    /* The connector snapshot has the verifier, not the password. */
    assert_int_equal(call(f->cp, "POST", "/v1/connectors", NULL, AUTH, "{\"name\": \"c1\"}", &v),
                     201);
    char auth[128];
    snprintf(auth, sizeof auth, "Bearer %s", json_string_value(json_object_get(v, "token")));
    json_decref(v);
    req = (pc_cp_request_t){.method = "GET", .path = "/v1/connector/config", .authorization = auth};
    pc_cp_handle(f->cp, &req, &r);
    assert_int_equal(r.status, 200);
    assert_null(strstr(r.body, "alice-secret"));
    assert_non_null(strstr(r.body, "\"scram_verifier\": \"SCRAM-SHA-256$4096:"));
    assert_non_null(strstr(r.body, "upstream-secret"));
    pc_cp_response_free(&r);
    /* A watch from 0 gets revision 1 at once. */
    req.query = "watch=1&since=0";
    pc_cp_watch_t *w = pc_cp_watch_open(f->cp, &req, &r);
    assert_non_null(w);
    size_t len;
    char *line = pc_cp_watch_next(w, &len);
    assert_non_null(line);
    assert_int_equal(line[len - 1], '\n');
    json_t *obj = json_loadb(line, len, 0, NULL);
    assert_string_equal(json_string_value(json_object_get(obj, "type")), "snapshot");
    assert_int_equal(json_integer_value(json_object_get(obj, "revision")), 1);
    json_decref(obj);
    free(line);
    pc_cp_watch_close(w);
    req.query = "watch=1&since=-1";
    assert_null(pc_cp_watch_open(f->cp, &req, &r));
    assert_int_equal(r.status, 400);
    pc_cp_response_free(&r);
}

static void test_invalid_policy(void **state)
{
    fx_t *f = *state;
    json_t *v;
    assert_int_equal(call(f->cp, "PUT", "/v1/policies/p1", NULL, AUTH,
                          "{\"module\": \"package p\\n\\nallow if {\\n  input.x ==\\n}\\n\"}", &v),
                     400);
    const char *m = error_message(v);
    assert_non_null(m);
    assert_memory_equal(m, "p1.rego:", 8);
    int row = 0, col = 0;
    assert_int_equal(sscanf(m + 8, "%d:%d:", &row, &col), 2);
    assert_true(row >= 4);
    json_decref(v);
    assert_int_equal(call(f->cp, "PUT", "/v1/policies/p2", NULL, AUTH,
                          "{\"module\": \"package p\\ndefault allow := false\\n\"}", &v),
                     200);
    json_decref(v);
}

static void test_logs_paging(void **state)
{
    fx_t *f = *state;
    json_t *v;
    assert_int_equal(call(f->cp, "POST", "/v1/connectors", NULL, AUTH, "{\"name\": \"c\"}", &v),
                     201);
    char auth[128];
    snprintf(auth, sizeof auth, "Bearer %s", json_string_value(json_object_get(v, "token")));
    json_decref(v);
    char body[4096] = "{\"records\": [";
    for (int i = 0; i < 7; i++) {
        char rec[200];
        snprintf(rec, sizeof rec,
                 "%s{\"id\": \"r%d\", \"ts\": \"2026-03-01T10:00:0%d+01:00\", \"user\": \"u%d\"}",
                 i ? ", " : "", i, i, i % 2);
        strncat(body, rec, sizeof body - strlen(body) - 1);
    }
    strncat(body, "]}", sizeof body - strlen(body) - 1);
    assert_int_equal(call(f->cp, "POST", "/v1/connector/logs", NULL, auth, body, &v), 200);
    assert_int_equal(json_integer_value(json_object_get(v, "accepted")), 7);
    json_decref(v);
    assert_int_equal(call(f->cp, "POST", "/v1/connector/logs", NULL, auth, body, &v), 200);
    assert_int_equal(json_integer_value(json_object_get(v, "duplicates")), 7);
    json_decref(v);
    char query[512] = "limit=2&user=u0";
    int seen = 0;
    for (int page = 0; page < 10; page++) {
        assert_int_equal(call(f->cp, "GET", "/v1/logs", query, AUTH, NULL, &v), 200);
        json_t *items = json_object_get(v, "items");
        for (size_t i = 0; i < json_array_size(items); i++) {
            char want[16];
            snprintf(want, sizeof want, "r%d", 2 * seen);
            assert_string_equal(json_string_value(json_object_get(json_array_get(items, i), "id")),
                                want);
            seen++;
        }
        const char *next = json_string_value(json_object_get(v, "next"));
        if (!next) {
            json_decref(v);
            break;
        }
        snprintf(query, sizeof query, "limit=2&user=u0&after=%s", next);
        json_decref(v);
    }
    assert_int_equal(seen, 4);
    /* since is inclusive, until exclusive, offsets honoured (10:00:02+01:00 = 09:00:02Z). */
    assert_int_equal(call(f->cp, "GET", "/v1/logs",
                          "since=2026-03-01T09:00:02Z&until=2026-03-01T09:00:04Z", AUTH, NULL, &v),
                     200);
    assert_int_equal(json_array_size(json_object_get(v, "items")), 2);
    json_decref(v);
}

static void test_yaml_to_json(void **state)
{
    char err[256];
    const char *y = "a: 5\nb: '5'\nc: true\nd: ~\ne: [1.5, x, -3]\nf: {g: \"h\"}\n";
    json_t *v = pc_cp_yaml_to_json(y, strlen(y), "t.yaml", false, err, sizeof err);
    assert_non_null(v);
    char *s = json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS);
    assert_string_equal(s, "{\"a\":5,\"b\":\"5\",\"c\":true,\"d\":null,\"e\":[1.5,\"x\",-3],"
                           "\"f\":{\"g\":\"h\"}}");
    free(s);
    json_decref(v);
    assert_null(pc_cp_yaml_to_json("a: [", 4, "t.yaml", false, err, sizeof err));
    assert_non_null(strstr(err, "t.yaml:"));
}

static void test_rfc3339(void **state)
{
    int64_t us;
    assert_true(pc_cp_parse_rfc3339("1970-01-01T00:00:01Z", &us));
    assert_int_equal(us, 1000000);
    assert_true(pc_cp_parse_rfc3339("1970-01-01T01:00:00.5+01:00", &us));
    assert_int_equal(us, 500000);
    assert_false(pc_cp_parse_rfc3339("1970-01-01 00:00:01", &us));
    assert_false(pc_cp_parse_rfc3339("yesterday", &us));
    assert_false(pc_cp_parse_rfc3339("1970-13-01T00:00:00Z", &us));
    char out[40];
    pc_cp_format_rfc3339(1000001, out, sizeof out);
    assert_string_equal(out, "1970-01-01T00:00:01.000001Z");
}

static void test_config(void **state)
{
    pc_cp_config_t c;
    char err[256];
    const char *ok = "admin_token: 0123456789abcdef01\n";
    assert_true(pc_cp_config_load_yaml(ok, strlen(ok), "cp.yaml", &c, err, sizeof err));
    assert_string_equal(c.listen, "127.0.0.1:8443");
    assert_string_equal(c.db, "./portcullis.db");
    pc_cp_config_free(&c);
    const char *bad = "admin_token: 0123456789abcdef01\nlisten_address: x\n";
    assert_false(pc_cp_config_load_yaml(bad, strlen(bad), "cp.yaml", &c, err, sizeof err));
    assert_non_null(strstr(err, "listen_address"));
    assert_false(pc_cp_config_load_yaml("db: x\n", 6, "cp.yaml", &c, err, sizeof err));
    assert_non_null(strstr(err, "admin_token"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_auth, setup, teardown),
        cmocka_unit_test_setup_teardown(test_apply_revisions_and_secrets, setup, teardown),
        cmocka_unit_test_setup_teardown(test_invalid_policy, setup, teardown),
        cmocka_unit_test_setup_teardown(test_logs_paging, setup, teardown),
        cmocka_unit_test(test_yaml_to_json),
        cmocka_unit_test(test_rfc3339),
        cmocka_unit_test(test_config),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
