/*
 * The control plane's state: the SQLite database, the cached current snapshot
 * and the write path that turns a set of object changes into one validated
 * revision; plus the watch streams that wait for new revisions.
 *
 * A write happens under the one mutex: read the current snapshot, apply the
 * changes, compile policies, load the whole result with the connector's own
 * snapshot loader (so no connector is ever sent a snapshot it must refuse),
 * then one short transaction stores the objects and the revision. Only then
 * does the cached snapshot change and the watchers wake up.
 */
#include "cp/cp_int.h"
#include "core/config.h"
#include "core/crypto.h"
#include "core/log.h"
#include "pg/scram.h"
#include "policy/policy.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

const char *const pc__cp_kinds[PC__CP_KINDS] = {"resources", "listeners", "users", "policies"};

int pc__cp_kind_index(const char *kind)
{
    for (int i = 0; i < PC__CP_KINDS; i++)
        if (!strcmp(kind, pc__cp_kinds[i])) return i;
    return -1;
}

const char *pc__cp_name_key(int kind)
{
    return kind == 2 ? "username" : "name";
}

int64_t pc__cp_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

void pc__cp_token_hash(const char *token, size_t len, char out[65])
{
    uint8_t h[PC_SHA256_LEN];
    pc_sha256(token, len, h);
    for (size_t i = 0; i < sizeof h; i++) snprintf(out + 2 * i, 3, "%02x", h[i]);
}

/* ---------- open / close ---------- */

static bool load_current(pc_cp_t *cp, char *err, size_t errlen)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(cp->db,
                           "SELECT revision, snapshot FROM revisions ORDER BY revision DESC LIMIT 1",
                           -1, &st, NULL) != SQLITE_OK) {
        snprintf(err, errlen, "cannot read revisions: %s", sqlite3_errmsg(cp->db));
        return false;
    }
    if (sqlite3_step(st) == SQLITE_ROW) {
        cp->revision = (uint64_t)sqlite3_column_int64(st, 0);
        const char *text = (const char *)sqlite3_column_text(st, 1);
        cp->snapshot_len = (size_t)sqlite3_column_bytes(st, 1);
        cp->snapshot = pc_xstrndup(text ? text : "", cp->snapshot_len);
    } else {
        cp->revision = 0;
        cp->snapshot = pc_xstrdup(
            "{\"revision\": 0, \"resources\": [], \"listeners\": [], \"users\": [], "
            "\"policies\": []}");
        cp->snapshot_len = strlen(cp->snapshot);
    }
    sqlite3_finalize(st);
    return true;
}

pc_cp_t *pc_cp_open(const char *db_path, const char *admin_token, char *err, size_t errlen)
{
    pc_cp_t *cp = pc_xcalloc(1, sizeof *cp);
    pthread_mutex_init(&cp->mu, NULL);
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&cp->changed, &attr);
    pthread_condattr_destroy(&attr);
    pc_sha256(admin_token, strlen(admin_token), cp->admin_hash);
    if (sqlite3_open_v2(db_path, &cp->db,
                        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX,
                        NULL) != SQLITE_OK) {
        snprintf(err, errlen, "%s: cannot open database: %s", db_path,
                 cp->db ? sqlite3_errmsg(cp->db) : "out of memory");
        goto fail;
    }
    sqlite3_busy_timeout(cp->db, 5000);
    char *msg = NULL;
    if (sqlite3_exec(cp->db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"
                             "PRAGMA foreign_keys=ON;",
                     NULL, NULL, &msg) != SQLITE_OK) {
        snprintf(err, errlen, "%s: %s", db_path, msg ? msg : "cannot configure the database");
        sqlite3_free(msg);
        goto fail;
    }
    if (!pc__cp_migrate(cp->db, err, errlen) || !load_current(cp, err, errlen)) goto fail;
    return cp;
fail:
    pc_cp_close(cp);
    return NULL;
}

void pc_cp_shutdown(pc_cp_t *cp)
{
    pthread_mutex_lock(&cp->mu);
    cp->stopping = true;
    pthread_cond_broadcast(&cp->changed);
    pthread_mutex_unlock(&cp->mu);
}

void pc_cp_close(pc_cp_t *cp)
{
    if (!cp) return;
    if (cp->db) sqlite3_close(cp->db);
    if (cp->snapshot) explicit_bzero(cp->snapshot, cp->snapshot_len);
    free(cp->snapshot);
    pthread_cond_destroy(&cp->changed);
    pthread_mutex_destroy(&cp->mu);
    free(cp);
}

/* ---------- secrets ---------- */

/* Paths of secret fields: "credentials.password", "access_keys[].secret", "scram_verifier". */
static const char *const resource_secrets[] = {"password", "secret_access_key", "token", NULL};

/*
 * Split a full object into what GET returns (secrets replaced by "***", the
 * verifier dropped) and the secrets alone. Either output may be NULL.
 */
static void split_secrets(int kind, const json_t *full, json_t **pub_out, json_t **sec_out)
{
    json_t *pub = json_deep_copy(full);
    json_t *sec = json_object();
    if (kind == 0) {
        json_t *cred = json_object_get(pub, "credentials");
        if (json_is_object(cred)) {
            json_t *scred = json_object();
            for (const char *const *k = resource_secrets; *k; k++) {
                json_t *v = json_object_get(cred, *k);
                if (!v || json_is_null(v)) continue;
                json_object_set(scred, *k, v);
                json_object_set_new(cred, *k, json_string("***"));
            }
            json_object_set_new(sec, "credentials", scred);
        }
    } else if (kind == 2) {
        json_t *v = json_object_get(pub, "scram_verifier");
        if (v) {
            json_object_set(sec, "scram_verifier", v);
            json_object_del(pub, "scram_verifier");
            json_object_set_new(pub, "password", json_string("***"));
        }
        json_t *keys = json_object_get(pub, "access_keys");
        if (json_is_array(keys)) {
            json_t *skeys = json_array();
            size_t i;
            json_t *k;
            json_array_foreach(keys, i, k) {
                json_t *s = json_object_get(k, "secret");
                json_array_append_new(skeys, s ? json_pack("{sO}", "secret", s) : json_object());
                if (s) json_object_set_new(k, "secret", json_string("***"));
            }
            json_object_set_new(sec, "access_keys", skeys);
        }
    }
    if (pub_out) *pub_out = pub;
    else json_decref(pub);
    if (sec_out) *sec_out = sec;
    else json_decref(sec);
}

static bool is_placeholder(const json_t *v)
{
    return json_is_string(v) && !strcmp(json_string_value(v), "***");
}

/*
 * Make the object a connector receives: "***" keeps the secret already stored
 * (so GET-edit-PUT round trips work), a user password becomes a verifier.
 * false with out filled when the object cannot be prepared.
 */
static bool prepare_object(int kind, json_t *obj, const json_t *old, pc_cp_response_t *out)
{
    if (kind == 0) {
        json_t *cred = json_object_get(obj, "credentials");
        const json_t *ocred = old ? json_object_get(old, "credentials") : NULL;
        for (const char *const *k = resource_secrets; json_is_object(cred) && *k; k++) {
            json_t *v = json_object_get(cred, *k);
            if (!is_placeholder(v)) continue;
            json_t *prev = ocred ? json_object_get(ocred, *k) : NULL;
            if (!prev || is_placeholder(prev)) {
                pc_cp_error(out, 400, "invalid_object", "credentials.%s: \"***\" stands for the "
                            "stored secret, and there is none", *k);
                return false;
            }
            json_object_set(cred, *k, prev);
        }
        return true;
    }
    if (kind != 2) return true;
    json_t *pw = json_object_get(obj, "password");
    json_t *ver = json_object_get(obj, "scram_verifier");
    if (pw && ver) {
        pc_cp_error(out, 400, "invalid_object", "set either password or scram_verifier");
        return false;
    }
    if (is_placeholder(pw)) {
        json_object_del(obj, "password");
        json_t *prev = old ? json_object_get(old, "scram_verifier") : NULL;
        if (prev) json_object_set(obj, "scram_verifier", prev);
    } else if (pw && !json_is_null(pw)) {
        if (!json_is_string(pw) || !json_string_length(pw)) {
            pc_cp_error(out, 400, "invalid_object", "password: must be a non-empty string");
            return false;
        }
        const char *p = json_string_value(pw);
        pc_scram_verifier_t v;
        bool ok = strncmp(p, "SCRAM-SHA-256$", 14) == 0
                      ? pc_scram_verifier_parse(p, json_string_length(pw), &v)
                      : pc_scram_verifier_new(p, json_string_length(pw),
                                              PC_SCRAM_DEFAULT_ITERATIONS, &v);
        char text[PC_SCRAM_VERIFIER_TEXT_MAX];
        if (ok) ok = pc_scram_verifier_format(&v, text, sizeof text) > 0;
        explicit_bzero(&v, sizeof v);
        json_object_del(obj, "password"); /* jansson frees it; nothing else holds the text */
        if (!ok) {
            pc_cp_error(out, 400, "invalid_object", "password: cannot compute the verifier");
            return false;
        }
        json_object_set_new(obj, "scram_verifier", json_string(text));
        explicit_bzero(text, sizeof text);
    } else if (pw) {
        json_object_del(obj, "password");
    }
    json_t *keys = json_object_get(obj, "access_keys");
    const json_t *okeys = old ? json_object_get(old, "access_keys") : NULL;
    size_t i;
    json_t *k;
    json_array_foreach(keys, i, k) {
        json_t *s = json_object_get(k, "secret");
        if (!is_placeholder(s)) continue;
        /* Same key id in the stored object: keep its secret. */
        const char *id = json_string_value(json_object_get(k, "id"));
        json_t *prev = NULL;
        size_t j;
        json_t *ok_;
        json_array_foreach(okeys, j, ok_) {
            const char *oid = json_string_value(json_object_get(ok_, "id"));
            if (id && oid && !strcmp(id, oid)) prev = json_object_get(ok_, "secret");
        }
        if (!prev) {
            pc_cp_error(out, 400, "invalid_object",
                        "access_keys[%zu].secret: \"***\" stands for the stored secret, and there "
                        "is none",
                        i);
            return false;
        }
        json_object_set(k, "secret", prev);
    }
    return true;
}

/* Compile one policy module; v1 first, then v0 (design §4 accepts both). */
static bool compile_policy(const json_t *obj, pc_cp_response_t *out)
{
    const char *name = json_string_value(json_object_get(obj, "name"));
    json_t *mod = json_object_get(obj, "module");
    if (!json_is_string(mod)) {
        pc_cp_error(out, 400, "invalid_policy", "%s: module: required (Rego source text)",
                    name ? name : "?");
        return false;
    }
    char file[300];
    snprintf(file, sizeof file, "%s.rego", name ? name : "policy");
    pc_policy_module m = {.name = file, .text = json_string_value(mod),
                          .len = json_string_length(mod)};
    pc_policy_error e1 = {0}, e0 = {0};
    pc_policy_set *ps = pc_policy_compile(&m, 1, NULL, 0, &e1);
    if (!ps) ps = pc_policy_compile(&m, 1, NULL, PC_POLICY_V0, &e0);
    if (ps) {
        pc_policy_set_unref(ps);
        return true;
    }
    if (e1.row > 0)
        pc_cp_error(out, 400, "invalid_policy", "%s:%d:%d: %s", e1.file[0] ? e1.file : file,
                    e1.row, e1.col, e1.message);
    else
        pc_cp_error(out, 400, "invalid_policy", "%s:1:1: %s", file, e1.message);
    return false;
}

/*
 * Policies compile on one long-lived thread: the engine keeps per-thread
 * scratch memory, and the server's connection threads are short-lived, so
 * compiling on them would leave that memory behind with every upload.
 */
typedef struct compile_job {
    const json_t *obj;
    pc_cp_response_t *out;
    bool ok, done;
} compile_job_t;

static pthread_mutex_t compiler_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t compiler_wake = PTHREAD_COND_INITIALIZER;
static pthread_cond_t compiler_done = PTHREAD_COND_INITIALIZER;
static compile_job_t *compiler_job;
static pthread_once_t compiler_once = PTHREAD_ONCE_INIT;
static bool compiler_running;

static void *compiler_main(void *arg)
{
    pthread_mutex_lock(&compiler_mu);
    for (;;) {
        while (!compiler_job) pthread_cond_wait(&compiler_wake, &compiler_mu);
        compile_job_t *j = compiler_job;
        pthread_mutex_unlock(&compiler_mu);
        bool ok = compile_policy(j->obj, j->out);
        pthread_mutex_lock(&compiler_mu);
        j->ok = ok;
        j->done = true;
        compiler_job = NULL;
        pthread_cond_broadcast(&compiler_done);
    }
    return NULL;
}

static void compiler_start(void)
{
    pthread_t t;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    /* Signals stay with the thread that waits for them. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    compiler_running = pthread_create(&t, &attr, compiler_main, NULL) == 0;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_attr_destroy(&attr);
}

static bool compile_policy_shared(const json_t *obj, pc_cp_response_t *out)
{
    pthread_once(&compiler_once, compiler_start);
    if (!compiler_running) return compile_policy(obj, out);
    compile_job_t j = {.obj = obj, .out = out};
    pthread_mutex_lock(&compiler_mu);
    while (compiler_job) pthread_cond_wait(&compiler_done, &compiler_mu);
    compiler_job = &j;
    pthread_cond_signal(&compiler_wake);
    while (!j.done) pthread_cond_wait(&compiler_done, &compiler_mu);
    pthread_mutex_unlock(&compiler_mu);
    return j.ok;
}

/* ---------- the write path ---------- */

static int cmp_by_name(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* {"revision":N, kind: [objects sorted by name], ...} as one JSON line. */
static char *render_snapshot(json_t *const maps[PC__CP_KINDS], uint64_t rev, size_t *len)
{
    json_t *snap = json_object();
    json_object_set_new(snap, "revision", json_integer((json_int_t)rev));
    for (int k = 0; k < PC__CP_KINDS; k++) {
        size_t n = json_object_size(maps[k]), i = 0;
        const char **names = pc_xcalloc(n ? n : 1, sizeof *names);
        const char *key;
        json_t *v;
        json_object_foreach(maps[k], key, v) names[i++] = key;
        qsort(names, n, sizeof *names, cmp_by_name);
        json_t *arr = json_array();
        for (i = 0; i < n; i++) json_array_append(arr, json_object_get(maps[k], names[i]));
        free(names);
        json_object_set_new(snap, pc__cp_kinds[k], arr);
    }
    /* Not compact: "key": value with a space is JSON that YAML 1.1 parsers read too. */
    char *text = json_dumps(snap, JSON_INDENT(0) | JSON_PRESERVE_ORDER);
    json_decref(snap);
    *len = strlen(text);
    return text;
}

static bool exec_ok(pc_cp_t *cp, sqlite3_stmt *st)
{
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return rc == SQLITE_DONE;
}

static bool store_revision(pc_cp_t *cp, const pc__cp_op_t *ops, size_t n, uint64_t rev,
                           json_t *const maps[PC__CP_KINDS], const char *snapshot,
                           size_t snapshot_len)
{
    sqlite3_stmt *up = NULL, *del = NULL, *ins = NULL;
    bool ok = sqlite3_exec(cp->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) == SQLITE_OK;
    if (!ok) return false;
    ok = sqlite3_prepare_v2(cp->db,
                            "INSERT INTO objects (kind, name, body, secrets, revision) "
                            "VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (kind, name) DO UPDATE SET "
                            "body = ?3, secrets = ?4, revision = ?5",
                            -1, &up, NULL) == SQLITE_OK &&
         sqlite3_prepare_v2(cp->db, "DELETE FROM objects WHERE kind = ?1 AND name = ?2", -1, &del,
                            NULL) == SQLITE_OK &&
         sqlite3_prepare_v2(cp->db,
                            "INSERT INTO revisions (revision, created_us, summary, snapshot) "
                            "VALUES (?1, ?2, ?3, ?4)",
                            -1, &ins, NULL) == SQLITE_OK;
    json_t *summary = json_array();
    for (size_t i = 0; ok && i < n; i++) {
        const char *kind = pc__cp_kinds[ops[i].kind];
        json_array_append_new(summary, json_pack("{ssssss}", "op", ops[i].obj ? "put" : "delete",
                                                 "kind", kind, "name", ops[i].name));
        if (!ops[i].obj) {
            sqlite3_bind_text(del, 1, kind, -1, SQLITE_STATIC);
            sqlite3_bind_text(del, 2, ops[i].name, -1, SQLITE_TRANSIENT);
            ok = exec_ok(cp, del);
            continue;
        }
        json_t *full = json_object_get(maps[ops[i].kind], ops[i].name), *pub, *sec;
        split_secrets(ops[i].kind, full, &pub, &sec);
        char *body = json_dumps(pub, JSON_COMPACT | JSON_PRESERVE_ORDER);
        char *secrets = json_dumps(sec, JSON_COMPACT | JSON_PRESERVE_ORDER);
        sqlite3_bind_text(up, 1, kind, -1, SQLITE_STATIC);
        sqlite3_bind_text(up, 2, ops[i].name, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(up, 3, body, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(up, 4, secrets, -1, SQLITE_TRANSIENT);
        sqlite3_bind_int64(up, 5, (sqlite3_int64)rev);
        ok = exec_ok(cp, up);
        if (secrets) explicit_bzero(secrets, strlen(secrets));
        free(body);
        free(secrets);
        json_decref(pub);
        json_decref(sec);
    }
    char *sum = json_dumps(summary, JSON_COMPACT);
    json_decref(summary);
    if (ok) {
        sqlite3_bind_int64(ins, 1, (sqlite3_int64)rev);
        sqlite3_bind_int64(ins, 2, pc__cp_now_us());
        sqlite3_bind_text(ins, 3, sum, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(ins, 4, snapshot, (int)snapshot_len, SQLITE_STATIC);
        ok = exec_ok(cp, ins);
    }
    free(sum);
    sqlite3_finalize(up);
    sqlite3_finalize(del);
    sqlite3_finalize(ins);
    ok = ok && sqlite3_exec(cp->db, "COMMIT", NULL, NULL, NULL) == SQLITE_OK;
    if (!ok) sqlite3_exec(cp->db, "ROLLBACK", NULL, NULL, NULL);
    return ok;
}

bool pc__cp_write(pc_cp_t *cp, const pc__cp_op_t *ops, size_t n, uint64_t *rev,
                  pc_cp_response_t *out)
{
    json_t *maps[PC__CP_KINDS] = {0};
    char *text = NULL;
    size_t text_len = 0;
    bool ok = false;
    pthread_mutex_lock(&cp->mu);
    json_error_t jerr;
    json_t *cur = json_loadb(cp->snapshot, cp->snapshot_len, 0, &jerr);
    if (!cur) {
        pc_cp_error(out, 500, "internal", "stored snapshot unreadable");
        goto done;
    }
    for (int k = 0; k < PC__CP_KINDS; k++) {
        maps[k] = json_object();
        size_t i;
        json_t *o;
        json_array_foreach(json_object_get(cur, pc__cp_kinds[k]), i, o) {
            const char *name = json_string_value(json_object_get(o, pc__cp_name_key(k)));
            if (name) json_object_set(maps[k], name, o);
        }
    }
    json_decref(cur);
    for (size_t i = 0; i < n; i++) {
        const pc__cp_op_t *op = &ops[i];
        json_t *old = json_object_get(maps[op->kind], op->name);
        if (!op->obj) {
            if (!old) {
                pc_cp_error(out, 404, "not_found", "%s/%s: no such object",
                            pc__cp_kinds[op->kind], op->name);
                goto done;
            }
            json_object_del(maps[op->kind], op->name);
            continue;
        }
        json_t *obj = json_deep_copy(op->obj);
        if (!prepare_object(op->kind, obj, old, out) ||
            (op->kind == 3 && !compile_policy_shared(obj, out))) {
            json_decref(obj);
            goto done;
        }
        json_object_set_new(maps[op->kind], op->name, obj);
    }
    uint64_t next = cp->revision + 1;
    text = render_snapshot(maps, next, &text_len);
    /* The connector's loader is the judge of a snapshot: refuse what it would refuse. */
    char err[512];
    char origin[64];
    snprintf(origin, sizeof origin, "revision %llu", (unsigned long long)next);
    pc_snapshot_t *s = pc_snapshot_load_yaml(text, text_len, origin, next, err, sizeof err);
    if (!s) {
        pc_cp_error(out, 400, "invalid_snapshot", "%s", err);
        goto done;
    }
    pc_snapshot_unref(s);
    if (!store_revision(cp, ops, n, next, maps, text, text_len)) {
        pc_log_error("cannot store revision", PC_LSTR("error", sqlite3_errmsg(cp->db)));
        pc_cp_error(out, 500, "storage", "cannot store the revision");
        goto done;
    }
    explicit_bzero(cp->snapshot, cp->snapshot_len);
    free(cp->snapshot);
    cp->snapshot = text;
    cp->snapshot_len = text_len;
    text = NULL;
    cp->revision = next;
    *rev = next;
    pthread_cond_broadcast(&cp->changed);
    ok = true;
done:
    pthread_mutex_unlock(&cp->mu);
    for (int k = 0; k < PC__CP_KINDS; k++) json_decref(maps[k]);
    if (text) {
        explicit_bzero(text, text_len);
        free(text);
    }
    return ok;
}

/* ---------- watch streams ---------- */

struct pc_cp_watch {
    pc_cp_t *cp;
    char token_hash[65];
    uint64_t sent;          /* last revision sent */
    uint64_t epoch;         /* connectors_epoch when the token was last checked */
    struct timespec next_heartbeat; /* CLOCK_MONOTONIC */
};

static void mono_after(struct timespec *t, long ms)
{
    clock_gettime(CLOCK_MONOTONIC, t);
    t->tv_sec += ms / 1000;
    t->tv_nsec += (ms % 1000) * 1000000L;
    if (t->tv_nsec >= 1000000000L) {
        t->tv_sec++;
        t->tv_nsec -= 1000000000L;
    }
}

static bool mono_passed(const struct timespec *t)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return now.tv_sec > t->tv_sec || (now.tv_sec == t->tv_sec && now.tv_nsec >= t->tv_nsec);
}

/* Caller holds cp->mu. */
static bool token_still_valid(pc_cp_t *cp, const char *hash)
{
    sqlite3_stmt *st = NULL;
    bool ok = sqlite3_prepare_v2(cp->db, "SELECT 1 FROM connectors WHERE token_hash = ?1", -1,
                                 &st, NULL) == SQLITE_OK;
    if (ok) {
        sqlite3_bind_text(st, 1, hash, -1, SQLITE_STATIC);
        ok = sqlite3_step(st) == SQLITE_ROW;
    }
    sqlite3_finalize(st);
    return ok;
}

pc_cp_watch_t *pc__cp_watch_new(pc_cp_t *cp, const char *token_hash, uint64_t since)
{
    pc_cp_watch_t *w = pc_xcalloc(1, sizeof *w);
    w->cp = cp;
    snprintf(w->token_hash, sizeof w->token_hash, "%s", token_hash);
    w->sent = since;
    pthread_mutex_lock(&cp->mu);
    w->epoch = cp->connectors_epoch;
    pthread_mutex_unlock(&cp->mu);
    /* The first heartbeat goes out at once when there is no snapshot to send. */
    clock_gettime(CLOCK_MONOTONIC, &w->next_heartbeat);
    return w;
}

char *pc_cp_watch_next(pc_cp_watch_t *w, size_t *len)
{
    pc_cp_t *cp = w->cp;
    char *line = NULL;
    pthread_mutex_lock(&cp->mu);
    for (;;) {
        if (cp->stopping) break;
        if (w->epoch != cp->connectors_epoch) {
            w->epoch = cp->connectors_epoch;
            if (!token_still_valid(cp, w->token_hash)) break;
        }
        if (cp->revision > w->sent) {
            static const char head[] = "{\"type\": \"snapshot\", \"revision\": ";
            char num[32];
            int nl = snprintf(num, sizeof num, "%llu, \"snapshot\": ",
                              (unsigned long long)cp->revision);
            *len = sizeof head - 1 + (size_t)nl + cp->snapshot_len + 2;
            line = pc_xmalloc(*len + 1);
            memcpy(line, head, sizeof head - 1);
            memcpy(line + sizeof head - 1, num, (size_t)nl);
            memcpy(line + sizeof head - 1 + nl, cp->snapshot, cp->snapshot_len);
            memcpy(line + *len - 2, "}\n", 3);
            w->sent = cp->revision;
            mono_after(&w->next_heartbeat, PC_CP_HEARTBEAT_MS);
            break;
        }
        if (mono_passed(&w->next_heartbeat)) {
            char ts[40];
            pc_cp_format_rfc3339(pc__cp_now_us(), ts, sizeof ts);
            line = pc_xmalloc(128);
            int n = snprintf(line, 128, "{\"type\": \"heartbeat\", \"revision\": %llu, \"ts\": \"%s\"}\n",
                             (unsigned long long)cp->revision, ts);
            *len = (size_t)n;
            mono_after(&w->next_heartbeat, PC_CP_HEARTBEAT_MS);
            break;
        }
        pthread_cond_timedwait(&cp->changed, &cp->mu, &w->next_heartbeat);
    }
    pthread_mutex_unlock(&cp->mu);
    return line;
}

void pc_cp_watch_close(pc_cp_watch_t *w)
{
    free(w);
}
