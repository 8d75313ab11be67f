/*
 * The control plane's HTTP API without the transport: authentication, routing
 * and the handlers of every endpoint but the watch stream's body. Requests
 * arrive complete (the server bounds bodies at PC_CP_MAX_BODY); everything
 * from outside is checked before use and every failure is a JSON error.
 */
#include "cp/cp_int.h"
#include "core/crypto.h"
#include "core/log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MAX_NAME 256

void pc_cp_response_free(pc_cp_response_t *r)
{
    if (!r) return;
    free(r->body);
    r->body = NULL;
}

static void reply_json(pc_cp_response_t *out, int status, json_t *v)
{
    out->status = status;
    out->content_type = "application/json";
    char *text = json_dumps(v, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(v);
    out->body = pc_xmalloc(strlen(text) + 2);
    out->len = (size_t)snprintf(out->body, strlen(text) + 2, "%s\n", text);
    free(text);
}

void pc_cp_error(pc_cp_response_t *out, int status, const char *code, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    free(out->body);
    out->body = NULL;
    /* Messages quote user input; jansson refuses invalid UTF-8, so fall back to a plain one. */
    json_t *m = json_string(msg);
    if (!m) m = json_string("invalid input");
    reply_json(out, status, json_pack("{s{sssO}}", "error", "code", code, "message", m));
    json_decref(m);
}

/* ---------- request helpers ---------- */

static int hexval(int c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Value of key in a query string, percent-decoded into buf. false when absent or too long. */
static bool query_get(const char *q, const char *key, char *buf, size_t cap)
{
    size_t klen = strlen(key);
    while (q && *q) {
        const char *end = strchr(q, '&');
        size_t n = end ? (size_t)(end - q) : strlen(q);
        if (n >= klen && !strncmp(q, key, klen) && (n == klen || q[klen] == '=')) {
            const char *v = n == klen ? q + n : q + klen + 1;
            size_t o = 0;
            for (const char *p = v; p < q + n; p++) {
                int c = (unsigned char)*p;
                if (c == '+') c = ' ';
                else if (c == '%' && p + 2 < q + n && hexval(p[1]) >= 0 && hexval(p[2]) >= 0) {
                    c = hexval(p[1]) * 16 + hexval(p[2]);
                    p += 2;
                }
                if (o + 1 >= cap) return false;
                buf[o++] = (char)c;
            }
            buf[o] = '\0';
            return true;
        }
        q = end ? end + 1 : NULL;
    }
    return false;
}

static bool valid_name(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n > MAX_NAME) return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x21 || c == 0x7f || c == '/' || c == '?' || c == '#' || c == '%') return false;
    }
    return true;
}

static const char *bearer(const pc_cp_request_t *req, size_t *len)
{
    const char *a = req->authorization;
    if (!a || strncasecmp(a, "Bearer ", 7) != 0) return NULL;
    a += 7;
    while (*a == ' ') a++;
    *len = strlen(a);
    while (*len && a[*len - 1] == ' ') (*len)--;
    return *len ? a : NULL;
}

static bool is_admin(pc_cp_t *cp, const pc_cp_request_t *req)
{
    size_t len;
    const char *t = bearer(req, &len);
    if (!t) return false;
    uint8_t h[PC_SHA256_LEN];
    pc_sha256(t, len, h);
    /* Comparing hashes keeps the time independent of the token's length and content. */
    return pc_ct_equal(h, cp->admin_hash, sizeof h);
}

/* Connector name for the request's token into name (cap MAX_NAME+1), hash into hash. */
static bool connector_auth(pc_cp_t *cp, const pc_cp_request_t *req, char *name, char hash[65])
{
    size_t len;
    const char *t = bearer(req, &len);
    if (!t) return false;
    pc__cp_token_hash(t, len, hash);
    sqlite3_stmt *st = NULL;
    bool ok = false;
    pthread_mutex_lock(&cp->mu);
    if (sqlite3_prepare_v2(cp->db, "SELECT name, token_hash FROM connectors WHERE token_hash = ?1",
                           -1, &st, NULL) == SQLITE_OK) {
        sqlite3_bind_text(st, 1, hash, 64, SQLITE_STATIC);
        if (sqlite3_step(st) == SQLITE_ROW) {
            const char *stored = (const char *)sqlite3_column_text(st, 1);
            ok = stored && strlen(stored) == 64 && pc_ct_equal(stored, hash, 64);
            if (ok) snprintf(name, MAX_NAME + 1, "%s", (const char *)sqlite3_column_text(st, 0));
        }
    }
    sqlite3_finalize(st);
    if (ok && sqlite3_prepare_v2(cp->db, "UPDATE connectors SET last_seen_us = ?1 "
                                         "WHERE token_hash = ?2", -1, &st, NULL) == SQLITE_OK) {
        sqlite3_bind_int64(st, 1, pc__cp_now_us());
        sqlite3_bind_text(st, 2, hash, 64, SQLITE_STATIC);
        (void)sqlite3_step(st); /* last_seen is informative: a busy database may skip it */
        sqlite3_finalize(st);
    }
    pthread_mutex_unlock(&cp->mu);
    return ok;
}

static json_t *parse_body(const pc_cp_request_t *req, pc_cp_response_t *out)
{
    if (!req->body_len) {
        pc_cp_error(out, 400, "malformed_body", "a request body is required");
        return NULL;
    }
    if (req->content_type && strstr(req->content_type, "yaml")) {
        char err[512];
        json_t *v = pc_cp_yaml_to_json(req->body, req->body_len, "body", false, err, sizeof err);
        if (!v) pc_cp_error(out, 400, "malformed_body", "%s", err);
        return v;
    }
    json_error_t e;
    json_t *v = json_loadb(req->body, req->body_len, JSON_REJECT_DUPLICATES, &e);
    if (!v) pc_cp_error(out, 400, "malformed_json", "line %d column %d: %s", e.line, e.column,
                        e.text);
    return v;
}

static uint64_t current_revision(pc_cp_t *cp)
{
    pthread_mutex_lock(&cp->mu);
    uint64_t r = cp->revision;
    pthread_mutex_unlock(&cp->mu);
    return r;
}

static void reply_revision(pc_cp_response_t *out, int status, uint64_t rev)
{
    reply_json(out, status, json_pack("{sI}", "revision", (json_int_t)rev));
}

/* ---------- objects ---------- */

static void list_objects(pc_cp_t *cp, int kind, const char *name, pc_cp_response_t *out)
{
    sqlite3_stmt *st = NULL;
    json_t *items = json_array();
    pthread_mutex_lock(&cp->mu);
    uint64_t rev = cp->revision;
    int rc = sqlite3_prepare_v2(cp->db,
                                name ? "SELECT body FROM objects WHERE kind = ?1 AND name = ?2"
                                     : "SELECT body FROM objects WHERE kind = ?1 ORDER BY name",
                                -1, &st, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_bind_text(st, 1, pc__cp_kinds[kind], -1, SQLITE_STATIC);
        if (name) sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
            json_t *o = json_loads((const char *)sqlite3_column_text(st, 0), 0, NULL);
            if (o) json_array_append_new(items, o);
        }
    }
    sqlite3_finalize(st);
    pthread_mutex_unlock(&cp->mu);
    if (rc != SQLITE_DONE) {
        json_decref(items);
        pc_cp_error(out, 500, "storage", "cannot read objects");
        return;
    }
    if (!name) {
        reply_json(out, 200, json_pack("{sosI}", "items", items, "revision", (json_int_t)rev));
        return;
    }
    if (json_array_size(items) == 0)
        pc_cp_error(out, 404, "not_found", "%s/%s: no such object", pc__cp_kinds[kind], name);
    else
        reply_json(out, 200, json_incref(json_array_get(items, 0)));
    json_decref(items);
}

static void put_object(pc_cp_t *cp, int kind, const char *name, const pc_cp_request_t *req,
                       pc_cp_response_t *out)
{
    json_t *obj = parse_body(req, out);
    if (!obj) return;
    const char *key = pc__cp_name_key(kind);
    json_t *given = json_object_get(obj, key);
    uint64_t rev;
    if (!json_is_object(obj))
        pc_cp_error(out, 400, "invalid_object", "the body must be a JSON object");
    else if (given && (!json_is_string(given) || strcmp(json_string_value(given), name)))
        pc_cp_error(out, 400, "invalid_object", "%s in the body does not match the URL", key);
    else {
        if (!given) json_object_set_new(obj, key, json_string(name));
        pc__cp_op_t op = {kind, name, obj};
        if (pc__cp_write(cp, &op, 1, &rev, out)) reply_revision(out, 200, rev);
    }
    json_decref(obj);
}

static void apply(pc_cp_t *cp, const pc_cp_request_t *req, pc_cp_response_t *out)
{
    json_t *doc = parse_body(req, out);
    if (!doc) return;
    pc__cp_op_t *ops = NULL;
    size_t n = 0, cap = 0;
    json_t *seen = json_object();
    const char *key;
    json_t *list;
    if (!json_is_object(doc)) {
        pc_cp_error(out, 400, "invalid_object", "the body must be an object of lists");
        goto done;
    }
    json_object_foreach(doc, key, list) {
        int kind = pc__cp_kind_index(key);
        if (kind < 0 && !strcmp(key, "revision")) continue;
        if (kind < 0) {
            pc_cp_error(out, 400, "invalid_object", "%s: unknown kind (resources, listeners, "
                        "users, policies)", key);
            goto done;
        }
        if (json_is_null(list)) continue;
        if (!json_is_array(list)) {
            pc_cp_error(out, 400, "invalid_object", "%s: must be a list", key);
            goto done;
        }
        size_t i;
        json_t *o;
        json_array_foreach(list, i, o) {
            const char *name = json_string_value(json_object_get(o, pc__cp_name_key(kind)));
            if (!json_is_object(o) || !valid_name(name)) {
                pc_cp_error(out, 400, "invalid_object", "%s[%zu]: %s: required (1-%d printable "
                            "characters, no '/')", key, i, pc__cp_name_key(kind), MAX_NAME);
                goto done;
            }
            char id[MAX_NAME + 16];
            snprintf(id, sizeof id, "%d/%s", kind, name);
            if (json_object_get(seen, id)) {
                pc_cp_error(out, 400, "invalid_object", "%s[%zu]: %s appears twice", key, i, name);
                goto done;
            }
            json_object_set_new(seen, id, json_true());
            if (n == cap) {
                cap = cap ? cap * 2 : 16;
                ops = pc_xrealloc(ops, cap * sizeof *ops);
            }
            ops[n++] = (pc__cp_op_t){kind, name, o};
        }
    }
    uint64_t rev;
    if (n == 0)
        reply_revision(out, 200, current_revision(cp));
    else if (pc__cp_write(cp, ops, n, &rev, out))
        reply_revision(out, 200, rev);
done:
    free(ops);
    json_decref(seen);
    json_decref(doc);
}

static json_t *time_or_null(sqlite3_stmt *st, int col);

/* Revision history: number, time and what changed (never the snapshot: it holds secrets). */
static void list_revisions(pc_cp_t *cp, const pc_cp_request_t *req, pc_cp_response_t *out)
{
    char limit_s[16];
    long limit = 100;
    if (query_get(req->query, "limit", limit_s, sizeof limit_s)) {
        char *end;
        limit = strtol(limit_s, &end, 10);
        if (*end || limit < 1 || limit > 1000) {
            pc_cp_error(out, 400, "bad_query", "limit: 1-1000");
            return;
        }
    }
    json_t *items = json_array();
    sqlite3_stmt *st = NULL;
    pthread_mutex_lock(&cp->mu);
    if (sqlite3_prepare_v2(cp->db, "SELECT revision, created_us, summary FROM revisions "
                                   "ORDER BY revision DESC LIMIT ?1", -1, &st, NULL) == SQLITE_OK) {
        sqlite3_bind_int64(st, 1, limit);
        while (sqlite3_step(st) == SQLITE_ROW) {
            json_t *changes = json_loads((const char *)sqlite3_column_text(st, 2), 0, NULL);
            json_array_append_new(items, json_pack("{sIsoso}", "revision",
                                                   (json_int_t)sqlite3_column_int64(st, 0),
                                                   "created", time_or_null(st, 1), "changes",
                                                   changes ? changes : json_array()));
        }
    }
    sqlite3_finalize(st);
    pthread_mutex_unlock(&cp->mu);
    reply_json(out, 200, json_pack("{so}", "items", items));
}

/* ---------- connectors ---------- */

static json_t *time_or_null(sqlite3_stmt *st, int col)
{
    if (sqlite3_column_type(st, col) == SQLITE_NULL) return json_null();
    char ts[40];
    pc_cp_format_rfc3339(sqlite3_column_int64(st, col), ts, sizeof ts);
    return json_string(ts);
}

static void create_connector(pc_cp_t *cp, const pc_cp_request_t *req, pc_cp_response_t *out)
{
    json_t *body = parse_body(req, out);
    if (!body) return;
    const char *name = json_string_value(json_object_get(body, "name"));
    if (!valid_name(name)) {
        pc_cp_error(out, 400, "invalid_object", "name: required (1-%d printable characters)",
                    MAX_NAME);
        json_decref(body);
        return;
    }
    uint8_t raw[32];
    char token[4 + 2 * sizeof raw + 1] = "pct_", hash[65];
    if (!pc_random_bytes(raw, sizeof raw)) {
        pc_cp_error(out, 500, "internal", "no randomness");
        json_decref(body);
        return;
    }
    for (size_t i = 0; i < sizeof raw; i++) snprintf(token + 4 + 2 * i, 3, "%02x", raw[i]);
    explicit_bzero(raw, sizeof raw);
    pc__cp_token_hash(token, strlen(token), hash);
    sqlite3_stmt *st = NULL;
    int rc = SQLITE_ERROR;
    pthread_mutex_lock(&cp->mu);
    if (sqlite3_prepare_v2(cp->db,
                           "INSERT INTO connectors (name, token_hash, created_us) VALUES (?1, ?2, ?3)",
                           -1, &st, NULL) == SQLITE_OK) {
        sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, hash, 64, SQLITE_STATIC);
        sqlite3_bind_int64(st, 3, pc__cp_now_us());
        rc = sqlite3_step(st);
    }
    sqlite3_finalize(st);
    pthread_mutex_unlock(&cp->mu);
    if (rc == SQLITE_CONSTRAINT)
        pc_cp_error(out, 409, "conflict", "connector %s already exists", name);
    else if (rc != SQLITE_DONE)
        pc_cp_error(out, 500, "storage", "cannot store the connector");
    else {
        pc_log_info("connector created", PC_LSTR("name", name));
        reply_json(out, 201, json_pack("{ssss}", "name", name, "token", token));
    }
    explicit_bzero(token, sizeof token);
    json_decref(body);
}

static void list_connectors(pc_cp_t *cp, pc_cp_response_t *out)
{
    json_t *items = json_array();
    sqlite3_stmt *st = NULL;
    pthread_mutex_lock(&cp->mu);
    if (sqlite3_prepare_v2(cp->db, "SELECT name, created_us, last_seen_us FROM connectors "
                                   "ORDER BY name", -1, &st, NULL) == SQLITE_OK)
        while (sqlite3_step(st) == SQLITE_ROW)
            json_array_append_new(items, json_pack("{sssoso}", "name", sqlite3_column_text(st, 0),
                                                   "created", time_or_null(st, 1), "last_seen",
                                                   time_or_null(st, 2)));
    sqlite3_finalize(st);
    pthread_mutex_unlock(&cp->mu);
    reply_json(out, 200, json_pack("{so}", "items", items));
}

static void delete_connector(pc_cp_t *cp, const char *name, pc_cp_response_t *out)
{
    sqlite3_stmt *st = NULL;
    int changes = -1;
    pthread_mutex_lock(&cp->mu);
    if (sqlite3_prepare_v2(cp->db, "DELETE FROM connectors WHERE name = ?1", -1, &st, NULL) ==
        SQLITE_OK) {
        sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
        if (sqlite3_step(st) == SQLITE_DONE) changes = sqlite3_changes(cp->db);
    }
    sqlite3_finalize(st);
    if (changes > 0) {
        cp->connectors_epoch++; /* its open watch streams end */
        pthread_cond_broadcast(&cp->changed);
    }
    pthread_mutex_unlock(&cp->mu);
    if (changes < 0)
        pc_cp_error(out, 500, "storage", "cannot delete the connector");
    else if (changes == 0)
        pc_cp_error(out, 404, "not_found", "connectors/%s: no such connector", name);
    else
        reply_json(out, 200, json_pack("{sb}", "deleted", 1));
}

/* ---------- instances ---------- */

static void heartbeat(pc_cp_t *cp, const char *connector, const pc_cp_request_t *req,
                      pc_cp_response_t *out)
{
    json_t *b = parse_body(req, out);
    if (!b) return;
    const char *instance = json_string_value(json_object_get(b, "instance"));
    json_t *health = json_object_get(b, "health");
    const char *address = json_string_value(json_object_get(b, "address"));
    if (!json_is_object(b) || !valid_name(instance)) {
        pc_cp_error(out, 400, "invalid_object", "instance: required (1-%d printable characters)",
                    MAX_NAME);
        json_decref(b);
        return;
    }
    if (health && !json_is_object(health)) {
        pc_cp_error(out, 400, "invalid_object", "health: must be an object");
        json_decref(b);
        return;
    }
    char *health_text = health ? json_dumps(health, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    sqlite3_stmt *st = NULL;
    bool ok = false;
    int64_t now = pc__cp_now_us();
    pthread_mutex_lock(&cp->mu);
    uint64_t rev = cp->revision;
    if (sqlite3_prepare_v2(cp->db,
                           "INSERT INTO instances (instance, connector, version, address, "
                           "cluster_role, health, first_seen_us, last_seen_us) VALUES "
                           "(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7) ON CONFLICT (instance) DO UPDATE SET "
                           "connector = ?2, version = ?3, address = ?4, cluster_role = ?5, "
                           "health = ?6, last_seen_us = ?7",
                           -1, &st, NULL) == SQLITE_OK) {
        sqlite3_bind_text(st, 1, instance, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, connector, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 3, json_string_value(json_object_get(b, "version")), -1,
                          SQLITE_STATIC);
        sqlite3_bind_text(st, 4, address ? address : req->peer, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 5, json_string_value(json_object_get(b, "cluster_role")), -1,
                          SQLITE_STATIC);
        sqlite3_bind_text(st, 6, health_text, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 7, now);
        ok = sqlite3_step(st) == SQLITE_DONE;
    }
    sqlite3_finalize(st);
    pthread_mutex_unlock(&cp->mu);
    free(health_text);
    json_decref(b);
    if (!ok)
        pc_cp_error(out, 500, "storage", "cannot store the heartbeat");
    else
        reply_json(out, 200, json_pack("{sbsI}", "ok", 1, "revision", (json_int_t)rev));
}

static json_t *col_str(sqlite3_stmt *st, int col)
{
    const char *s = (const char *)sqlite3_column_text(st, col);
    return s ? json_string(s) : json_null();
}

static void list_instances(pc_cp_t *cp, pc_cp_response_t *out)
{
    json_t *items = json_array();
    sqlite3_stmt *st = NULL;
    int64_t now = pc__cp_now_us();
    pthread_mutex_lock(&cp->mu);
    if (sqlite3_prepare_v2(cp->db, "SELECT instance, connector, version, address, cluster_role, "
                                   "health, last_seen_us, first_seen_us FROM instances "
                                   "ORDER BY instance", -1, &st, NULL) == SQLITE_OK)
        while (sqlite3_step(st) == SQLITE_ROW) {
            int64_t age = now - sqlite3_column_int64(st, 6);
            const char *status = age <= 30 * 1000000LL ? "connected"
                                 : age <= 300 * 1000000LL ? "stale" : "gone";
            const char *h = (const char *)sqlite3_column_text(st, 5);
            json_t *health = h ? json_loads(h, 0, NULL) : NULL;
            json_array_append_new(
                items, json_pack("{sosososososososssoso}", "instance", col_str(st, 0), "connector",
                                 col_str(st, 1), "version", col_str(st, 2), "address",
                                 col_str(st, 3), "cluster_role", col_str(st, 4), "health",
                                 health ? health : json_object(), "last_seen",
                                 time_or_null(st, 6), "status", status, "first_seen",
                                 time_or_null(st, 7), "age_seconds",
                                 json_integer(age / 1000000)));
        }
    sqlite3_finalize(st);
    pthread_mutex_unlock(&cp->mu);
    reply_json(out, 200, json_pack("{so}", "items", items));
}

/* ---------- audit logs ---------- */

static const char *record_user(const json_t *r)
{
    const json_t *u = json_object_get(r, "user");
    if (json_is_object(u)) u = json_object_get(u, "username");
    return json_string_value(u);
}

static void ingest_logs(pc_cp_t *cp, const char *connector, const pc_cp_request_t *req,
                        pc_cp_response_t *out)
{
    json_t *b = parse_body(req, out);
    if (!b) return;
    json_t *records = json_object_get(b, "records");
    if (!json_is_array(records)) {
        pc_cp_error(out, 400, "invalid_object", "records: required (a list of audit records)");
        json_decref(b);
        return;
    }
    size_t accepted = 0, duplicates = 0, rejected = 0;
    sqlite3_stmt *st = NULL;
    bool ok = false;
    int64_t now = pc__cp_now_us();
    pthread_mutex_lock(&cp->mu);
    if (sqlite3_exec(cp->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK) goto unlock;
    if (sqlite3_prepare_v2(cp->db,
                           "INSERT OR IGNORE INTO audit (id, ts_us, instance, connector, user, "
                           "resource, decision, received_us, record) "
                           "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                           -1, &st, NULL) != SQLITE_OK)
        goto rollback;
    size_t i;
    json_t *r;
    json_array_foreach(records, i, r) {
        const char *id = json_string_value(json_object_get(r, "id"));
        if (!json_is_object(r) || !id || !*id || strlen(id) > 512) {
            /* Refusing the whole batch would wedge the shipper on one bad record forever. */
            rejected++;
            continue;
        }
        int64_t ts;
        if (!pc_cp_parse_rfc3339(json_string_value(json_object_get(r, "ts")), &ts)) ts = now;
        char *text = json_dumps(r, JSON_COMPACT | JSON_PRESERVE_ORDER);
        sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, ts);
        sqlite3_bind_text(st, 3, json_string_value(json_object_get(r, "instance")), -1,
                          SQLITE_STATIC);
        sqlite3_bind_text(st, 4, connector, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 5, record_user(r), -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 6, json_string_value(json_object_get(r, "resource")), -1,
                          SQLITE_STATIC);
        sqlite3_bind_text(st, 7, json_string_value(json_object_get(r, "decision")), -1,
                          SQLITE_STATIC);
        sqlite3_bind_int64(st, 8, now);
        sqlite3_bind_text(st, 9, text, -1, SQLITE_TRANSIENT);
        int rc = sqlite3_step(st);
        free(text);
        sqlite3_reset(st);
        sqlite3_clear_bindings(st);
        if (rc != SQLITE_DONE) goto rollback;
        if (sqlite3_changes(cp->db) > 0) accepted++;
        else duplicates++;
    }
    ok = sqlite3_exec(cp->db, "COMMIT", NULL, NULL, NULL) == SQLITE_OK;
    if (ok) goto unlock;
rollback:
    sqlite3_exec(cp->db, "ROLLBACK", NULL, NULL, NULL);
unlock:
    sqlite3_finalize(st);
    pthread_mutex_unlock(&cp->mu);
    json_decref(b);
    if (!ok) {
        pc_cp_error(out, 503, "storage", "cannot store the records; retry");
        return;
    }
    reply_json(out, 200, json_pack("{sIsIsI}", "accepted", (json_int_t)accepted, "duplicates",
                                   (json_int_t)duplicates, "rejected", (json_int_t)rejected));
}

/* Cursor "<ts_us>.<hex id>": opaque to clients, stable across restarts. */
static void make_cursor(sqlite3_stmt *st, char *out, size_t cap)
{
    const char *id = (const char *)sqlite3_column_text(st, 1);
    int n = snprintf(out, cap, "%lld.", (long long)sqlite3_column_int64(st, 0));
    for (size_t i = 0; id && id[i] && (size_t)n + 3 < cap; i++)
        n += snprintf(out + n, cap - (size_t)n, "%02x", (unsigned char)id[i]);
}

static bool parse_cursor(const char *s, int64_t *ts, char *id, size_t cap)
{
    char *dot;
    errno = 0;
    long long v = strtoll(s, &dot, 10);
    if (errno || *dot != '.') return false;
    size_t n = strlen(dot + 1);
    if (n % 2 || n / 2 >= cap) return false;
    for (size_t i = 0; i < n / 2; i++) {
        int hi = hexval(dot[1 + 2 * i]), lo = hexval(dot[2 + 2 * i]);
        if (hi < 0 || lo < 0) return false;
        id[i] = (char)(hi * 16 + lo);
    }
    id[n / 2] = '\0';
    *ts = v;
    return true;
}

static void query_logs(pc_cp_t *cp, const pc_cp_request_t *req, pc_cp_response_t *out)
{
    char user[MAX_NAME + 1], resource[MAX_NAME + 1], decision[32], since[64], until[64],
        limit_s[16], after[2 * 520], order[8], cursor_id[520];
    bool has_user = query_get(req->query, "user", user, sizeof user);
    bool has_res = query_get(req->query, "resource", resource, sizeof resource);
    bool has_dec = query_get(req->query, "decision", decision, sizeof decision);
    bool has_since = query_get(req->query, "since", since, sizeof since);
    bool has_until = query_get(req->query, "until", until, sizeof until);
    bool has_after = query_get(req->query, "after", after, sizeof after) && after[0];
    bool desc = query_get(req->query, "order", order, sizeof order) && !strcmp(order, "desc");
    long limit = 100;
    int64_t since_us = 0, until_us = 0, after_ts = 0;
    if (query_get(req->query, "limit", limit_s, sizeof limit_s)) {
        char *end;
        limit = strtol(limit_s, &end, 10);
        if (*end || limit < 1 || limit > 1000) {
            pc_cp_error(out, 400, "bad_query", "limit: 1-1000");
            return;
        }
    }
    if ((has_since && !pc_cp_parse_rfc3339(since, &since_us)) ||
        (has_until && !pc_cp_parse_rfc3339(until, &until_us))) {
        pc_cp_error(out, 400, "bad_query", "since/until: RFC 3339 times expected");
        return;
    }
    if (has_after && !parse_cursor(after, &after_ts, cursor_id, sizeof cursor_id)) {
        pc_cp_error(out, 400, "bad_query", "after: not a cursor returned by this API");
        return;
    }
    char sql[768];
    int n = snprintf(sql, sizeof sql, "SELECT ts_us, id, record FROM audit WHERE 1");
    if (has_user) n += snprintf(sql + n, sizeof sql - (size_t)n, " AND user = ?1");
    if (has_res) n += snprintf(sql + n, sizeof sql - (size_t)n, " AND resource = ?2");
    if (has_dec) n += snprintf(sql + n, sizeof sql - (size_t)n, " AND decision = ?3");
    if (has_since) n += snprintf(sql + n, sizeof sql - (size_t)n, " AND ts_us >= ?4");
    if (has_until) n += snprintf(sql + n, sizeof sql - (size_t)n, " AND ts_us < ?5");
    if (has_after)
        n += snprintf(sql + n, sizeof sql - (size_t)n,
                      desc ? " AND (ts_us < ?6 OR (ts_us = ?6 AND id < ?7))"
                           : " AND (ts_us > ?6 OR (ts_us = ?6 AND id > ?7))");
    snprintf(sql + n, sizeof sql - (size_t)n, desc ? " ORDER BY ts_us DESC, id DESC LIMIT ?8"
                                                   : " ORDER BY ts_us, id LIMIT ?8");
    json_t *items = json_array();
    char next[sizeof after] = "", last[sizeof after] = "";
    sqlite3_stmt *st = NULL;
    bool ok = false;
    pthread_mutex_lock(&cp->mu);
    if (sqlite3_prepare_v2(cp->db, sql, -1, &st, NULL) == SQLITE_OK) {
        if (has_user) sqlite3_bind_text(st, 1, user, -1, SQLITE_STATIC);
        if (has_res) sqlite3_bind_text(st, 2, resource, -1, SQLITE_STATIC);
        if (has_dec) sqlite3_bind_text(st, 3, decision, -1, SQLITE_STATIC);
        if (has_since) sqlite3_bind_int64(st, 4, since_us);
        if (has_until) sqlite3_bind_int64(st, 5, until_us);
        if (has_after) {
            sqlite3_bind_int64(st, 6, after_ts);
            sqlite3_bind_text(st, 7, cursor_id, -1, SQLITE_STATIC);
        }
        sqlite3_bind_int64(st, 8, limit + 1);
        int rc;
        long rows = 0;
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
            if (rows == limit) {
                snprintf(next, sizeof next, "%s", last);
                break;
            }
            json_t *r = json_loads((const char *)sqlite3_column_text(st, 2), 0, NULL);
            if (r) json_array_append_new(items, r);
            make_cursor(st, last, sizeof last);
            rows++;
        }
        ok = rc == SQLITE_ROW || rc == SQLITE_DONE;
    }
    sqlite3_finalize(st);
    pthread_mutex_unlock(&cp->mu);
    if (!ok) {
        json_decref(items);
        pc_cp_error(out, 500, "storage", "cannot read the audit log");
        return;
    }
    /* "last": where to resume (logs --follow) even when this page was not full. */
    reply_json(out, 200, json_pack("{sososo}", "items", items, "next",
                                   next[0] ? json_string(next) : json_null(), "last",
                                   last[0] ? json_string(last)
                                           : (has_after ? json_string(after) : json_null())));
}

/* ---------- routing ---------- */

static void snapshot_once(pc_cp_t *cp, pc_cp_response_t *out)
{
    pthread_mutex_lock(&cp->mu);
    out->status = 200;
    out->content_type = "application/json";
    out->body = pc_xmalloc(cp->snapshot_len + 2);
    memcpy(out->body, cp->snapshot, cp->snapshot_len);
    memcpy(out->body + cp->snapshot_len, "\n", 2);
    out->len = cp->snapshot_len + 1;
    pthread_mutex_unlock(&cp->mu);
}

/* "/v1/a/b" -> segs {"a","b"}; false when more than max segments or empty ones. */
static int split_path(const char *path, char segs[][MAX_NAME + 1], int max)
{
    if (strncmp(path, "/v1/", 4) != 0) return -1;
    const char *p = path + 4;
    int n = 0;
    while (*p) {
        const char *e = strchr(p, '/');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        if (n == max || len == 0 || len > MAX_NAME) return -1;
        memcpy(segs[n], p, len);
        segs[n++][len] = '\0';
        if (!e) break;
        p = e + 1;
        if (!*p) return -1;
    }
    return n;
}

static void handle_connector_api(pc_cp_t *cp, const pc_cp_request_t *req, const char *what,
                                 pc_cp_response_t *out)
{
    char name[MAX_NAME + 1], hash[65];
    if (!connector_auth(cp, req, name, hash)) {
        pc_cp_error(out, 401, "unauthorized", "a valid connector token is required");
        return;
    }
    bool get = !strcmp(req->method, "GET"), post = !strcmp(req->method, "POST");
    if (!strcmp(what, "config") && get)
        snapshot_once(cp, out);
    else if (!strcmp(what, "logs") && post)
        ingest_logs(cp, name, req, out);
    else if (!strcmp(what, "heartbeat") && post)
        heartbeat(cp, name, req, out);
    else
        pc_cp_error(out, 404, "not_found", "no such endpoint");
}

void pc_cp_handle(pc_cp_t *cp, const pc_cp_request_t *req, pc_cp_response_t *out)
{
    memset(out, 0, sizeof *out);
    char segs[3][MAX_NAME + 1];
    int n = split_path(req->path, segs, 3);
    const char *m = req->method;
    bool get = !strcmp(m, "GET"), put = !strcmp(m, "PUT"), post = !strcmp(m, "POST"),
         del = !strcmp(m, "DELETE");
    if (!strcmp(req->path, "/health")) {
        reply_json(out, 200, json_pack("{ss}", "status", "ok"));
        return;
    }
    if (n < 1) {
        pc_cp_error(out, 404, "not_found", "no such endpoint");
        return;
    }
    if (!strcmp(segs[0], "connector")) {
        if (n == 2) handle_connector_api(cp, req, segs[1], out);
        else pc_cp_error(out, 404, "not_found", "no such endpoint");
        return;
    }
    if (!is_admin(cp, req)) {
        pc_cp_error(out, 401, "unauthorized", "the admin token is required");
        return;
    }
    int kind = pc__cp_kind_index(segs[0]);
    if (kind >= 0 && n == 1 && get)
        list_objects(cp, kind, NULL, out);
    else if (kind >= 0 && n == 2 && get)
        list_objects(cp, kind, segs[1], out);
    else if (kind >= 0 && n == 2 && put)
        valid_name(segs[1]) ? put_object(cp, kind, segs[1], req, out)
                            : pc_cp_error(out, 400, "invalid_object", "invalid name");
    else if (kind >= 0 && n == 2 && del) {
        uint64_t rev;
        pc__cp_op_t op = {kind, segs[1], NULL};
        if (pc__cp_write(cp, &op, 1, &rev, out)) reply_revision(out, 200, rev);
    } else if (!strcmp(segs[0], "apply") && n == 1 && post)
        apply(cp, req, out);
    else if (!strcmp(segs[0], "revision") && n == 1 && get)
        reply_revision(out, 200, current_revision(cp));
    else if (!strcmp(segs[0], "revisions") && n == 1 && get)
        list_revisions(cp, req, out);
    else if (!strcmp(segs[0], "connectors") && n == 1 && post)
        create_connector(cp, req, out);
    else if (!strcmp(segs[0], "connectors") && n == 1 && get)
        list_connectors(cp, out);
    else if (!strcmp(segs[0], "connectors") && n == 2 && del)
        delete_connector(cp, segs[1], out);
    else if (!strcmp(segs[0], "instances") && n == 1 && get)
        list_instances(cp, out);
    else if (!strcmp(segs[0], "logs") && n == 1 && get)
        query_logs(cp, req, out);
    else {
        static const char *const known[] = {"apply", "revision", "revisions", "connectors",
                                            "instances", "logs", NULL};
        bool is_known = kind >= 0;
        for (size_t i = 0; known[i] && !is_known; i++) is_known = !strcmp(segs[0], known[i]);
        if (is_known && n <= 2)
            pc_cp_error(out, 405, "method_not_allowed", "%s %s: not allowed", m, req->path);
        else
            pc_cp_error(out, 404, "not_found", "%s %s: no such endpoint", m, req->path);
    }
}

/* ---------- watch ---------- */

pc_cp_watch_t *pc_cp_watch_open(pc_cp_t *cp, const pc_cp_request_t *req, pc_cp_response_t *out)
{
    memset(out, 0, sizeof *out);
    char name[MAX_NAME + 1], hash[65], since_s[32];
    if (!connector_auth(cp, req, name, hash)) {
        pc_cp_error(out, 401, "unauthorized", "a valid connector token is required");
        return NULL;
    }
    unsigned long long since = 0;
    if (query_get(req->query, "since", since_s, sizeof since_s) && since_s[0]) {
        char *end;
        errno = 0;
        since = strtoull(since_s, &end, 10);
        if (*end || errno || since_s[0] == '-') {
            pc_cp_error(out, 400, "bad_query", "since: a revision number");
            return NULL;
        }
    }
    pc_log_info("watch opened", PC_LSTR("connector", name), PC_LUINT("since", since),
                PC_LSTR("peer", req->peer ? req->peer : ""));
    return pc__cp_watch_new(cp, hash, since);
}

bool pc__cp_is_watch(const pc_cp_request_t *req)
{
    char v[8];
    return !strcmp(req->method, "GET") && !strcmp(req->path, "/v1/connector/config") &&
           query_get(req->query, "watch", v, sizeof v) && strcmp(v, "0") && strcmp(v, "false");
}
