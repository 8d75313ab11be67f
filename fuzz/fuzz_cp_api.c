/*
 * The control plane's body handlers on arbitrary bytes: the first byte picks
 * the endpoint (apply as JSON or YAML, PUT of each kind, connector logs and
 * heartbeats, log queries) and the rest is the body or query. Every answer
 * must be a JSON document with a sane status; the state lives in an in-memory
 * database that is recreated now and then so it cannot grow without bound.
 */
#include "core/log.h"
#include "cp/cp.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ADMIN "Bearer fuzz-admin-token-0123456789"

static pc_cp_t *cp;
static char connector_auth[128];
static unsigned runs;

static void reopen(void)
{
    char err[256];
    pc_cp_close(cp);
    cp = pc_cp_open(":memory:", "fuzz-admin-token-0123456789", err, sizeof err);
    if (!cp) __builtin_trap();
    pc_cp_request_t req = {.method = "POST", .path = "/v1/connectors",
                           .authorization = ADMIN, .body = "{\"name\": \"fz\"}",
                           .body_len = 14};
    pc_cp_response_t r;
    pc_cp_handle(cp, &req, &r);
    json_t *v = json_loadb(r.body, r.len, 0, NULL);
    const char *tok = json_string_value(json_object_get(v, "token"));
    if (r.status != 201 || !tok) __builtin_trap();
    snprintf(connector_auth, sizeof connector_auth, "Bearer %s", tok);
    json_decref(v);
    pc_cp_response_free(&r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!cp || ++runs % 2000 == 0) {
        if (!cp) (void)pc_log_set_level_name("fatal");
        reopen();
    }
    if (size < 1) return 0;
    static const struct {
        const char *method, *path, *type;
        bool connector, query;
    } eps[] = {
        {"POST", "/v1/apply", "application/json", false, false},
        {"POST", "/v1/apply", "application/yaml", false, false},
        {"PUT", "/v1/resources/r1", NULL, false, false},
        {"PUT", "/v1/listeners/l1", NULL, false, false},
        {"PUT", "/v1/users/u1", NULL, false, false},
        {"PUT", "/v1/policies/p1", NULL, false, false},
        {"POST", "/v1/connector/logs", NULL, true, false},
        {"POST", "/v1/connector/heartbeat", NULL, true, false},
        {"GET", "/v1/logs", NULL, false, true},
        {"POST", "/v1/connectors", NULL, false, false},
    };
    size_t which = data[0] % (sizeof eps / sizeof *eps);
    data++;
    size--;
    char *text = malloc(size + 1);
    memcpy(text, data, size);
    text[size] = '\0';
    pc_cp_request_t req = {
        .method = eps[which].method,
        .path = eps[which].path,
        .content_type = eps[which].type,
        .authorization = eps[which].connector ? connector_auth : ADMIN,
        .query = eps[which].query ? text : NULL,
        .body = eps[which].query ? "" : text,
        .body_len = eps[which].query ? 0 : size,
        .peer = "127.0.0.1:1",
    };
    pc_cp_response_t r;
    pc_cp_handle(cp, &req, &r);
    if (r.status < 200 || r.status > 599 || !r.body) __builtin_trap();
    json_t *v = json_loadb(r.body, r.len, 0, NULL);
    if (!v) __builtin_trap();
    if (r.status >= 400 && !json_is_object(json_object_get(v, "error"))) __builtin_trap();
    json_decref(v);
    pc_cp_response_free(&r);
    /* The YAML converter on the same bytes. */
    char err[256];
    json_decref(pc_cp_yaml_to_json(text, size, "fuzz", false, err, sizeof err));
    free(text);
    return 0;
}
