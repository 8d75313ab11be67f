/* The Rego engine behind the policy call points; see decision.h. */
#include "access/access.h"
#include "core/log.h"
#include "decision/decision.h"
#include "policy/policy.h"
#include "sql/classify.h"

#include <ctype.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void pc__decision_list_add(char *list, size_t cap, const char *name);

enum { RULE_SESSION, RULE_PRE, RULE_POST, N_RULES };

typedef struct compiled_policy {
    char *name;
    bool dry_run;
    pc_policy_set *ps;
    char *rule[N_RULES]; /* "data.<pkg>.<rule>" or NULL: no say at that stage */
    /* rule[] resolved at compile time: evaluating needs no path walk per statement */
    const pc_policy_rule *ref[N_RULES];
} compiled_policy_t;

typedef struct compiled {
    uint64_t generation; /* identifies the set for per-thread eval caches */
    compiled_policy_t *p;
    size_t n;
} compiled_t;

static atomic_uint_fast64_t generations;

static void compiled_free(void *v)
{
    compiled_t *c = v;
    if (!c) return;
    for (size_t i = 0; i < c->n; i++) {
        free(c->p[i].name);
        pc_policy_set_unref(c->p[i].ps);
        for (int r = 0; r < N_RULES; r++)
            free(c->p[i].rule[r]);
    }
    free(c->p);
    free(c);
}

/* The module's package path ("formal.v2"), skipping comments; false if none. */
static bool package_of(const char *src, char *out, size_t cap)
{
    const char *p = src;
    for (;;) {
        while (*p && isspace((unsigned char)*p))
            p++;
        if (*p == '#') {
            while (*p && *p != '\n')
                p++;
            continue;
        }
        break;
    }
    if (strncmp(p, "package", 7) != 0 || !isspace((unsigned char)p[7])) return false;
    p += 7;
    while (*p == ' ' || *p == '\t')
        p++;
    size_t o = 0;
    while (*p && (isalnum((unsigned char)*p) || *p == '_' || *p == '.')) {
        if (o + 1 >= cap) return false;
        out[o++] = *p++;
    }
    out[o] = '\0';
    return o > 0;
}

static char *rule_path(const pc_policy_set *ps, const char *pkg, const char *a, const char *b)
{
    char path[400];
    snprintf(path, sizeof path, "data.%s.%s", pkg, a);
    if (pc_policy_has_rule(ps, path)) return strdup(path);
    if (!b) return NULL;
    snprintf(path, sizeof path, "data.%s.%s", pkg, b);
    if (pc_policy_has_rule(ps, path)) return strdup(path);
    return NULL;
}

static bool compile_hook(pc_snapshot_t *s, char *err, size_t errlen)
{
    compiled_t *c = calloc(1, sizeof *c);
    if (!c) goto oom;
    c->generation = atomic_fetch_add(&generations, 1) + 1;
    c->p = calloc(s->n_policies ? s->n_policies : 1, sizeof *c->p);
    if (!c->p) goto oom;
    for (size_t i = 0; i < s->n_policies; i++) {
        const pc_policy_cfg_t *pol = &s->policies[i];
        if (pol->status == PC_POLICY_DRAFT) continue;
        const char *file = pol->origin ? pol->origin : pol->name;
        pc_policy_module m = {.name = file, .text = pol->module, .len = strlen(pol->module)};
        pc_policy_error e1, e2;
        memset(&e1, 0, sizeof e1);
        memset(&e2, 0, sizeof e2);
        /* Rego v1 first; v0 modules (design §4) when v1 does not parse them. */
        pc_policy_set *ps = pc_policy_compile(&m, 1, NULL, 0, &e1);
        if (!ps) ps = pc_policy_compile(&m, 1, NULL, PC_POLICY_V0, &e2);
        if (!ps) {
            snprintf(err, errlen, "%s:%d:%d: %s", e1.file[0] ? e1.file : file, e1.row, e1.col,
                     e1.message);
            goto fail;
        }
        char pkg[256];
        if (!package_of(pol->module, pkg, sizeof pkg)) {
            pc_policy_set_unref(ps);
            snprintf(err, errlen, "%s:1:1: policy %s: no package declaration", file, pol->name);
            goto fail;
        }
        compiled_policy_t *cp = &c->p[c->n++];
        cp->name = strdup(pol->name);
        cp->dry_run = pol->status == PC_POLICY_DRY_RUN;
        cp->ps = ps;
        cp->rule[RULE_SESSION] = rule_path(ps, pkg, "session", NULL);
        cp->rule[RULE_PRE] = rule_path(ps, pkg, "pre_request", "request");
        cp->rule[RULE_POST] = rule_path(ps, pkg, "post_request", "response");
        if (!cp->name) goto oom;
        for (int r = 0; r < N_RULES; r++) {
            /* rule_path found a rule there, so this finds the same one */
            cp->ref[r] = cp->rule[r] ? pc_policy_rule_find(ps, cp->rule[r]) : NULL;
            if (cp->rule[r] && !cp->ref[r]) goto oom;
        }
    }
    if (s->policy_free) s->policy_free(s->policy_set);
    s->policy_set = c;
    s->policy_free = compiled_free;
    return true;
oom:
    snprintf(err, errlen, "out of memory compiling policies");
fail:
    compiled_free(c);
    return false;
}

/* ---------- per-thread state ---------- */

#define SESSION_SLOTS 64
#define SESSION_ARENA_MAX (4u << 20)

struct session_parts;

/* Classifications by exact query text (see classify). */
#define MEMO_SLOTS 64
#define MEMO_MAX_TEXT 1024

typedef struct tstate {
    uint64_t generation;
    pc_eval **evals;
    size_t n_evals;
    pc_arena *input;
    pc_sql_cache_t *sql;
    pc_arena *sessions; /* holds the cached session parts; reset when it grows too big */
    struct session_slot {
        uint64_t session_id; /* 0 = empty */
        const void *parts;
    } slots[SESSION_SLOTS];
    struct class_memo {
        uint64_t hash;
        size_t len;
        char *text;
        pc_sql_class_t *cls; /* NULL = empty */
    } memo[MEMO_SLOTS];
} tstate_t;

static pthread_key_t tkey;
static pthread_once_t tkey_once = PTHREAD_ONCE_INIT;

static void drop_evals(tstate_t *t)
{
    for (size_t i = 0; i < t->n_evals; i++)
        pc_eval_free(t->evals[i]);
    free(t->evals);
    t->evals = NULL;
    t->n_evals = 0;
    t->generation = 0;
}

static void tstate_free(void *v)
{
    tstate_t *t = v;
    if (!t) return;
    drop_evals(t);
    for (size_t i = 0; i < MEMO_SLOTS; i++) {
        free(t->memo[i].text);
        pc_sql_class_unref(t->memo[i].cls);
    }
    pc_arena_free(t->input);
    pc_arena_free(t->sessions);
    pc_sql_cache_free(t->sql);
    free(t);
}

static void tkey_init(void)
{
    (void)pthread_key_create(&tkey, tstate_free);
}

static tstate_t *tstate_get(const compiled_t *c)
{
    pthread_once(&tkey_once, tkey_init);
    tstate_t *t = pthread_getspecific(tkey);
    if (!t) {
        t = calloc(1, sizeof *t);
        if (!t) return NULL;
        t->input = pc_arena_new(0);
        t->sessions = pc_arena_new(0);
        t->sql = pc_sql_cache_new(1024);
        if (!t->sql || pthread_setspecific(tkey, t) != 0) {
            tstate_free(t);
            return NULL;
        }
    }
    if (c && t->generation != c->generation) {
        drop_evals(t);
        t->evals = calloc(c->n ? c->n : 1, sizeof *t->evals);
        if (!t->evals) return NULL;
        for (size_t i = 0; i < c->n; i++) {
            t->evals[i] = pc_eval_new(c->p[i].ps, NULL);
            if (!t->evals[i]) {
                t->n_evals = i;
                drop_evals(t);
                return NULL;
            }
        }
        t->n_evals = c->n;
        t->generation = c->generation;
    }
    return t;
}

/* ---------- input ---------- */

/* Object keys as static values, put in sorted order so building an
 * object needs no sort nor copy (pc_obuf_object_sorted). */
#define KEY(id, text)                                                                              \
    static const pc_value id = {.kind = PC_STRING, .len = sizeof text - 1, .u.s = text}
KEY(K_ACCESS_COUNT, "access_count");
KEY(K_APPLICATION, "application");
KEY(K_BUCKET, "bucket");
KEY(K_CLIENT_IP, "client_ip_address");
KEY(K_COLUMNS, "columns");
KEY(K_COMMAND_TYPE, "command_type");
KEY(K_CONNECTOR, "connector");
KEY(K_DATA_TYPE, "data_type");
KEY(K_DB_NAME, "db_name");
KEY(K_EMAIL, "email");
KEY(K_GROUPS, "groups");
KEY(K_HOSTNAME, "hostname");
KEY(K_INSTANCE, "instance");
KEY(K_KEY, "key");
KEY(K_LAST_HOUR, "last_hour");
KEY(K_LAST_MINUTE, "last_minute");
KEY(K_METHOD, "method");
KEY(K_NAME, "name");
KEY(K_OBJECT, "object");
KEY(K_OPERATION, "operation");
KEY(K_PATH, "path");
KEY(K_PORT, "port");
KEY(K_QUERY, "query");
KEY(K_REQUEST, "request");
KEY(K_RESOURCE, "resource");
KEY(K_RFC3339, "rfc3339");
KEY(K_SQL_QUERY, "sql_query");
KEY(K_STATEMENT_TYPE, "statement_type");
KEY(K_TABLE, "table");
KEY(K_TABLE_PATHS, "table_paths");
KEY(K_TABLES, "tables");
KEY(K_TECHNOLOGY, "technology");
KEY(K_TIME, "time");
KEY(K_TLS, "tls");
KEY(K_TYPE, "type");
KEY(K_UNIX_NS, "unix_ns");
KEY(K_USER, "user");
KEY(K_USERNAME, "username");
KEY(K_VERSION, "version");

#define S(a, str) ((str) ? pc_value_cstring((a), (str)) : pc_value_null())
/* Strings that outlive the input (the statement's classification, the
 * caller's context: both held until the input arena is reset) are borrowed,
 * not copied. */
#define B(a, str) ((str) ? pc_value_cstring_borrow((a), (str)) : pc_value_null())

static const char *tech_name(pc_technology_t t)
{
    switch (t) {
    case PC_TECH_POSTGRES:
        return "postgres";
    case PC_TECH_S3:
        return "s3";
    case PC_TECH_BIGQUERY:
        return "bigquery";
    }
    return "unknown";
}

/* The parts of the input fixed for a whole session, cached per thread by
 * session id (built in the thread's long-lived arena). */
struct session_parts {
    uint64_t session_id;
    const pc_value *email, *groups, *type, *username;
    const pc_value *application, *client_ip, *connector, *db_name, *resource;
};

static bool build_session_parts(pc_arena *a, const pc_decision_ctx_t *ctx, struct session_parts *sp)
{
    const pc_user_t *u = ctx->user;
    sp->email = S(a, u ? u->email : NULL);
    pc_vbuf g;
    pc_vbuf_init(&g, a);
    for (size_t i = 0; u && i < u->n_groups; i++)
        pc_vbuf_push(&g, S(a, u->groups[i]));
    sp->groups = pc_vbuf_array(&g);
    sp->type = S(a, u && u->type ? u->type : "human");
    sp->username = S(a, u ? u->username : NULL);

    const pc_resource_t *r = ctx->resource;
    pc_obuf ro;
    pc_obuf_init_cap(&ro, a, 4);
    pc_obuf_put_reserved(&ro, &K_HOSTNAME, S(a, r ? r->hostname : NULL));
    pc_obuf_put_reserved(&ro, &K_NAME, S(a, r ? r->name : NULL));
    pc_obuf_put_reserved(&ro, &K_PORT, r ? pc_value_int(a, r->port) : pc_value_null());
    pc_obuf_put_reserved(&ro, &K_TECHNOLOGY, S(a, r ? tech_name(r->technology) : NULL));
    sp->resource = pc_obuf_object_sorted(&ro);

    pc_obuf co;
    pc_obuf_init_cap(&co, a, 3);
    pc_obuf_put_reserved(&co, &K_INSTANCE, S(a, ctx->instance));
    pc_obuf_put_reserved(&co, &K_NAME, S(a, ctx->listener ? ctx->listener->name : NULL));
    pc_obuf_put_reserved(&co, &K_VERSION, S(a, PC_VERSION));
    sp->connector = pc_obuf_object_sorted(&co);

    sp->application = S(a, ctx->application);
    sp->client_ip = S(a, ctx->client_ip);
    sp->db_name = S(a, ctx->db_name);
    return sp->email && sp->groups && sp->type && sp->username && sp->resource && sp->connector &&
           sp->application && sp->client_ip && sp->db_name;
}

static const pc_value *counts_value(pc_arena *a, const pc_access_counts_t *n)
{
    pc_obuf o;
    pc_obuf_init_cap(&o, a, 2);
    pc_obuf_put_reserved(&o, &K_LAST_HOUR, pc_value_int(a, (int64_t)n->last_hour));
    pc_obuf_put_reserved(&o, &K_LAST_MINUTE, pc_value_int(a, (int64_t)n->last_minute));
    return pc_obuf_object_sorted(&o);
}

/* RFC 3339 with nanoseconds; the seconds part is formatted once per second. */
static const pc_value *time_value(pc_arena *a, uint64_t ns)
{
    static _Thread_local int64_t cached_sec = -1;
    static _Thread_local char text[96];
    int64_t sec = (int64_t)(ns / 1000000000u);
    if (sec != cached_sec) {
        time_t secs = (time_t)sec;
        struct tm tm;
        gmtime_r(&secs, &tm);
        snprintf(text, sizeof text, "%04d-%02d-%02dT%02d:%02d:%02d.", tm.tm_year + 1900,
                 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
        cached_sec = sec;
    }
    char buf[112];
    size_t n = strlen(text);
    memcpy(buf, text, n);
    uint32_t frac = (uint32_t)(ns % 1000000000u);
    for (int i = 8; i >= 0; i--) {
        buf[n + (size_t)i] = (char)('0' + frac % 10);
        frac /= 10;
    }
    buf[n + 9] = 'Z';
    pc_obuf to;
    pc_obuf_init_cap(&to, a, 2);
    pc_obuf_put_reserved(&to, &K_RFC3339, pc_value_string(a, buf, n + 10));
    pc_obuf_put_reserved(&to, &K_UNIX_NS, pc_value_int(a, (int64_t)ns));
    return pc_obuf_object_sorted(&to);
}

/* The whole input for one statement (stmt NULL: no query fields).
 * only_table: the one table the judged query reads, when it is a single
 * statement reading a single table; a result column the server says comes
 * from a table (table OID set) then comes from that table. */
static const pc_value *build_input(pc_arena *a, const pc_decision_ctx_t *ctx,
                                   const struct session_parts *sp, const pc_access_counts_t *counts,
                                   const pc_access_counts_t *bucket_counts, uint64_t now_ns,
                                   const pc_sql_stmt_t *stmt, const char *only_table)
{
    const pc_value *qv = NULL, *tables = NULL;
    if (stmt) {
        pc_obuf q;
        pc_obuf_init_cap(&q, a, 4);
        size_t off = stmt->offset <= ctx->query_len ? stmt->offset : 0;
        size_t len = off + stmt->len <= ctx->query_len ? stmt->len : ctx->query_len - off;
        pc_vbuf t;
        pc_vbuf_init(&t, a);
        for (size_t i = 0; i < stmt->n_tables; i++)
            pc_vbuf_push(&t, B(a, stmt->tables[i]));
        tables = pc_vbuf_array(&t);
        pc_obuf_put_reserved(&q, &K_COMMAND_TYPE, B(a, stmt->command_type));
        pc_obuf_put_reserved(&q, &K_QUERY, pc_value_string(a, ctx->query + off, len));
        pc_obuf_put_reserved(&q, &K_STATEMENT_TYPE, B(a, stmt->statement_type));
        pc_obuf_put_reserved(&q, &K_TABLES, tables);
        qv = pc_obuf_object_sorted(&q);
    }
    const pc_value *counts_v = counts_value(a, counts);

    pc_obuf o;
    pc_obuf_init_cap(&o, a, 15);
    pc_obuf_put_reserved(&o, &K_APPLICATION, sp->application);
    if (ctx->bucket) {
        pc_obuf bo;
        pc_obuf_init_cap(&bo, a, 2);
        pc_obuf_put_reserved(&bo, &K_ACCESS_COUNT, counts_value(a, bucket_counts));
        pc_obuf_put_reserved(&bo, &K_NAME, pc_value_cstring(a, ctx->bucket));
        pc_obuf_put_reserved(&o, &K_BUCKET, pc_obuf_object_sorted(&bo));
    }
    pc_obuf_put_reserved(&o, &K_CLIENT_IP, sp->client_ip);
    if (ctx->stage == PC_STAGE_POST_REQUEST) {
        pc_vbuf cols;
        pc_vbuf_init(&cols, a);
        for (size_t i = 0; i < ctx->n_columns; i++) {
            const pc_decision_column_t *c = &ctx->columns[i];
            pc_obuf cb;
            pc_obuf_init_cap(&cb, a, 3);
            pc_obuf_put_reserved(&cb, &K_DATA_TYPE, B(a, c->data_type));
            pc_obuf_put_reserved(&cb, &K_NAME, B(a, c->name));
            const char *table = c->table ? c->table : c->table_oid ? only_table : NULL;
            pc_obuf_put_reserved(&cb, &K_TABLE, B(a, table));
            pc_vbuf_push(&cols, pc_obuf_object_sorted(&cb));
        }
        pc_obuf_put_reserved(&o, &K_COLUMNS, pc_vbuf_array(&cols));
    }
    pc_obuf_put_reserved(&o, &K_CONNECTOR, sp->connector);
    pc_obuf_put_reserved(&o, &K_DB_NAME, sp->db_name);
    if (ctx->bucket) {
        pc_obuf ob;
        pc_obuf_init_cap(&ob, a, 1);
        pc_obuf_put_reserved(&ob, &K_KEY, S(a, ctx->object_key));
        pc_obuf_put_reserved(&o, &K_OBJECT, pc_obuf_object_sorted(&ob));
    }
    if (qv) pc_obuf_put_reserved(&o, &K_QUERY, qv);
    if (ctx->bucket) {
        pc_obuf rq;
        pc_obuf_init_cap(&rq, a, 3);
        pc_obuf_put_reserved(&rq, &K_METHOD, S(a, ctx->method));
        pc_obuf_put_reserved(&rq, &K_OPERATION, S(a, ctx->operation));
        pc_obuf_put_reserved(&rq, &K_PATH, S(a, ctx->path));
        pc_obuf_put_reserved(&o, &K_REQUEST, pc_obuf_object_sorted(&rq));
    }
    pc_obuf_put_reserved(&o, &K_RESOURCE, sp->resource);
    if (qv) {
        pc_obuf_put_reserved(&o, &K_SQL_QUERY, qv);
        pc_obuf_put_reserved(&o, &K_TABLE_PATHS, tables);
    }
    pc_obuf_put_reserved(&o, &K_TIME, time_value(a, now_ns));
    pc_obuf_put_reserved(&o, &K_TLS, pc_value_bool(ctx->tls));

    pc_obuf uo;
    pc_obuf_init_cap(&uo, a, 5);
    pc_obuf_put_reserved(&uo, &K_ACCESS_COUNT, counts_v);
    pc_obuf_put_reserved(&uo, &K_EMAIL, sp->email);
    pc_obuf_put_reserved(&uo, &K_GROUPS, sp->groups);
    pc_obuf_put_reserved(&uo, &K_TYPE, sp->type);
    pc_obuf_put_reserved(&uo, &K_USERNAME, sp->username);
    pc_obuf_put_reserved(&o, &K_USER, pc_obuf_object_sorted(&uo));
    return pc_obuf_object_sorted(&o);
}

/* ---------- decisions ---------- */

static const pc_value *get(const pc_value *o, const char *k)
{
    return pc_value_object_get_str(o, k, strlen(k));
}

static void copy_str(char *dst, size_t cap, const pc_value *v)
{
    if (v && pc_value_kind(v) == PC_STRING) snprintf(dst, cap, "%.*s", (int)v->len, v->u.s);
}

static bool is_str(const pc_value *v, const char *s)
{
    return v && pc_value_kind(v) == PC_STRING && v->len == strlen(s) &&
           memcmp(v->u.s, s, v->len) == 0;
}

/* An ALLOW decision with every field that readers look at set (the masked
 * entries beyond n_masked are never read). */
static void decision_clear(pc_decision_t *d)
{
    d->action = PC_DECISION_ALLOW;
    d->block_type = PC_BLOCK_FORMAL_MESSAGE;
    d->reason[0] = d->message[0] = d->policies[0] = d->masked_columns[0] = '\0';
    d->n_masked = 0;
    d->limit = -1;
}

/* One decision object into *d (pre-set to allow). False: not a decision. */
static bool read_decision(const pc_value *v, const pc_decision_ctx_t *ctx, pc_decision_t *d)
{
    if (pc_value_kind(v) != PC_OBJECT) return false;
    const pc_value *action = get(v, "action");
    if (is_str(action, "allow")) return true;
    if (is_str(action, "block")) {
        if (ctx->stage == PC_STAGE_POST_REQUEST) return false;
        const pc_value *type = get(v, "type");
        d->action = PC_DECISION_BLOCK;
        d->block_type = is_str(type, "block_silently")              ? PC_BLOCK_SILENTLY
                        : is_str(type, "block_with_custom_message") ? PC_BLOCK_CUSTOM_MESSAGE
                                                                    : PC_BLOCK_FORMAL_MESSAGE;
        copy_str(d->reason, sizeof d->reason, get(v, "reason"));
        copy_str(d->message, sizeof d->message, get(v, "message"));
        if (!d->reason[0]) snprintf(d->reason, sizeof d->reason, "access denied by policy");
        return true;
    }
    if (is_str(action, "filter")) {
        if (ctx->stage != PC_STAGE_POST_REQUEST) return false;
        int64_t lim;
        const pc_value *l = get(v, "limit");
        if (!l || !pc_value_get_int(l, &lim) || lim < 0) return false;
        d->action = PC_DECISION_FILTER;
        d->limit = lim;
        return true;
    }
    if (is_str(action, "mask")) {
        if (ctx->stage != PC_STAGE_POST_REQUEST) return false;
        const pc_value *type = get(v, "type"), *cols = get(v, "columns");
        pc_mask_type_t t = type && pc_value_kind(type) == PC_STRING
                               ? pc_decision_mask_parse(type->u.s, type->len)
                               : PC_MASK_NONE;
        if (t == PC_MASK_NONE) return false;
        if (!cols || (pc_value_kind(cols) != PC_ARRAY && pc_value_kind(cols) != PC_SET))
            return false;
        for (uint32_t i = 0; i < cols->len; i++) {
            const pc_value *cn = cols->u.items[i];
            if (pc_value_kind(cn) != PC_STRING) return false;
            for (size_t c = 0; c < ctx->n_columns; c++) {
                if (!ctx->columns[c].name || strcmp(ctx->columns[c].name, cn->u.s) != 0) continue;
                pc_decision_t one;
                decision_clear(&one);
                one.action = PC_DECISION_MASK;
                one.n_masked = 1;
                one.masked[0].column = (uint16_t)c;
                one.masked[0].type = t;
                pc__decision_list_add(one.masked_columns, sizeof one.masked_columns, cn->u.s);
                pc_decision_combine(d, &one);
            }
        }
        return true;
    }
    return false;
}

/* The rule's value: a decision object or a collection of them. */
static bool read_decisions(const pc_value *v, const pc_decision_ctx_t *ctx, pc_decision_t *d)
{
    if (pc_value_kind(v) == PC_ARRAY || pc_value_kind(v) == PC_SET) {
        for (uint32_t i = 0; i < v->len; i++) {
            pc_decision_t one;
            decision_clear(&one);
            if (!read_decision(v->u.items[i], ctx, &one)) return false;
            pc_decision_combine(d, &one);
        }
        return true;
    }
    pc_decision_t one;
    decision_clear(&one);
    if (!read_decision(v, ctx, &one)) return false;
    pc_decision_combine(d, &one);
    return true;
}

static const char *action_name(pc_decision_action_t a)
{
    switch (a) {
    case PC_DECISION_BLOCK:
        return "block";
    case PC_DECISION_MASK:
        return "mask";
    case PC_DECISION_FILTER:
        return "filter";
    default:
        return "allow";
    }
}

/* Every policy on one input, folded into acc. */
static void judge(const compiled_t *c, tstate_t *t, int rule, const pc_decision_ctx_t *ctx,
                  const pc_value *input, pc_decision_t *acc)
{
    for (size_t i = 0; i < c->n; i++) {
        const compiled_policy_t *p = &c->p[i];
        if (!p->ref[rule]) continue;
        pc_eval *ev = t->evals[i];
        const pc_value *v = NULL;
        /* Both are a few KB and judged per policy per statement: clear only
         * what is read (the engine fills the error when it fails). */
        pc_policy_error err;
        err.code[0] = err.message[0] = err.file[0] = '\0';
        err.row = err.col = 0;
        int rc = pc_eval_rule_ref(ev, p->ref[rule], input, &v, &err);
        pc_decision_t one;
        decision_clear(&one);
        bool failed = rc < 0;
        if (rc == 1 && !read_decisions(v, ctx, &one)) {
            failed = true;
            snprintf(err.message, sizeof err.message, "the rule's value is not a decision");
        }
        pc_eval_reset(ev);
        if (failed) {
            pc_log_warn("policy evaluation failed", PC_LSTR("policy", p->name),
                        PC_LSTR("stage", pc_decision_stage_name(ctx->stage)),
                        PC_LSTR("error", err.message), PC_LUINT("session", ctx->session_id),
                        PC_LINT("dry_run", p->dry_run));
            memset(&one, 0, sizeof one);
            one.limit = -1;
            one.action = PC_DECISION_BLOCK;
            one.block_type = PC_BLOCK_FORMAL_MESSAGE;
            snprintf(one.reason, sizeof one.reason, "policy evaluation failed: %s", p->name);
        }
        if (one.action == PC_DECISION_ALLOW) continue;
        pc__decision_list_add(one.policies, sizeof one.policies, p->name);
        if (p->dry_run) {
            pc_log_info("policy dry-run decision", PC_LSTR("policy", p->name),
                        PC_LSTR("stage", pc_decision_stage_name(ctx->stage)),
                        PC_LSTR("action", action_name(one.action)), PC_LSTR("reason", one.reason),
                        PC_LSTR("masked_columns", one.masked_columns), PC_LINT("limit", one.limit),
                        PC_LUINT("session", ctx->session_id));
            pc__decision_list_add(acc->policies, sizeof acc->policies, p->name);
            continue;
        }
        pc_decision_combine(acc, &one);
    }
}

/*
 * Classification cache key with numeric literals replaced by 0, so queries
 * that differ only in numbers (pgbench -S, ORMs without bind parameters) share
 * one parse. Replacing a numeric literal by another never changes the
 * statement type or the tables, provided the lexing here agrees with
 * PostgreSQL's about what is a numeric literal: quotes ('', E'' with
 * backslashes, "", $tag$), nested comments and identifier characters are
 * tracked, and anything unexpected (unterminated quote, too long) gives up
 * (returns 0: classify the exact text). The normalized text itself is what
 * gets classified. Returns the key length, 0 when there is nothing to gain.
 */
static bool ident_char(unsigned char c)
{
    return isalnum(c) || c == '_' || c == '$' || c >= 0x80;
}

/* The bytes literal_key looks at: anything else is copied as it is. */
static const bool k_lex_special[256] = {
    ['\0'] = true, ['-'] = true, ['/'] = true, ['\''] = true, ['"'] = true, ['$'] = true,
    ['0'] = true,  ['1'] = true, ['2'] = true, ['3'] = true,  ['4'] = true, ['5'] = true,
    ['6'] = true,  ['7'] = true, ['8'] = true, ['9'] = true,
};

static size_t literal_key(const char *q, size_t n, char *out, size_t cap)
{
    size_t o = 0;
    bool changed = false;
#define PUT(c)                                                                                     \
    do {                                                                                           \
        if (o >= cap) return 0;                                                                    \
        out[o++] = (c);                                                                            \
    } while (0)
    size_t i = 0;
    while (i < n) {
        size_t run = i;
        while (run < n && !k_lex_special[(unsigned char)q[run]])
            run++;
        if (run > i) {
            /* every branch below would only PUT these: copy the run at once */
            if (run - i > cap - o) return 0;
            memcpy(out + o, q + i, run - i);
            o += run - i;
            i = run;
            continue;
        }
        unsigned char c = (unsigned char)q[i];
        unsigned char prev = i ? (unsigned char)q[i - 1] : ' ';
        if (c == '\0') return 0;
        if (c == '-' && i + 1 < n && q[i + 1] == '-') {
            while (i < n && q[i] != '\n')
                PUT(q[i++]);
            continue;
        }
        if (c == '/' && i + 1 < n && q[i + 1] == '*') {
            int depth = 0;
            do {
                if (i + 1 < n && q[i] == '/' && q[i + 1] == '*') {
                    depth++;
                    PUT(q[i++]);
                } else if (i + 1 < n && q[i] == '*' && q[i + 1] == '/') {
                    depth--;
                    PUT(q[i++]);
                }
                PUT(q[i++]);
            } while (depth > 0 && i < n);
            if (depth > 0) return 0;
            continue;
        }
        if (c == '\'' || c == '"') {
            bool esc = c == '\'' && (prev == 'E' || prev == 'e') &&
                       (i < 2 || !ident_char((unsigned char)q[i - 2]));
            PUT(q[i++]);
            for (;;) {
                if (i >= n) return 0;
                if (esc && q[i] == '\\') {
                    PUT(q[i++]);
                    if (i >= n) return 0;
                    PUT(q[i++]);
                    continue;
                }
                if ((unsigned char)q[i] == c) {
                    PUT(q[i++]);
                    if (i < n && (unsigned char)q[i] == c) {
                        PUT(q[i++]);
                        continue;
                    }
                    break;
                }
                PUT(q[i++]);
            }
            continue;
        }
        if (c == '$' && !ident_char(prev)) {
            size_t j = i + 1;
            while (j < n &&
                   (isalnum((unsigned char)q[j]) || q[j] == '_' || (unsigned char)q[j] >= 0x80))
                j++;
            if (j < n && q[j] == '$' && !(j > i + 1 && isdigit((unsigned char)q[i + 1]))) {
                size_t tag = j + 1 - i; /* "$tag$" */
                size_t k = j + 1;
                while (k + tag <= n && memcmp(q + k, q + i, tag) != 0)
                    k++;
                if (k + tag > n) return 0;
                for (size_t m = i; m < k + tag; m++)
                    PUT(q[m]);
                i = k + tag;
                continue;
            }
            PUT(q[i++]); /* $1: a parameter */
            continue;
        }
        if (isdigit(c) && !ident_char(prev) && prev != '.') {
            size_t j = i;
            while (j < n && isdigit((unsigned char)q[j]))
                j++;
            if (j < n && (ident_char((unsigned char)q[j]) || q[j] == '.')) {
                /* 1e5, 0x1F, 1_000, 1.5, 12abc: keep as written */
                while (i < j)
                    PUT(q[i++]);
                continue;
            }
            PUT('0');
            changed = changed || j - i != 1 || c != '0';
            i = j;
            continue;
        }
        PUT(q[i++]);
    }
#undef PUT
    return changed ? o : 0;
}

/* Classification through the per-thread cache, sharing entries between
 * texts that differ only in numeric literals (single statements only: the
 * offsets of a multi-statement class belong to its own text). */
static pc_sql_class_t *classify_text(tstate_t *t, const char *q, size_t n)
{
    char key[2048];
    size_t kn = literal_key(q, n, key, sizeof key);
    if (kn) {
        pc_sql_class_t *cls = pc_sql_cache_classify(t->sql, key, kn);
        if (cls && cls->parsed && cls->n_stmts == 1) return cls;
        pc_sql_class_unref(cls);
    }
    return pc_sql_cache_classify(t->sql, q, n);
}

/* 64-bit hash of a query text, eight bytes at a time. */
static uint64_t text_hash(const char *q, size_t n)
{
    uint64_t h = 0x9e3779b97f4a7c15ull ^ n;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, q + i, 8);
        h = (h ^ w) * 0xff51afd7ed558ccdull;
        h ^= h >> 29;
    }
    uint64_t w = 0;
    memcpy(&w, q + i, n - i);
    h = (h ^ w) * 0xc4ceb9fe1a85ec53ull;
    return h ^ (h >> 32);
}

/* Every statement is judged at least twice (pre_request, then post_request
 * on its result; a prepared one at each Execute): a small direct-mapped memo
 * by exact text skips the literal scan and the cache lookup on repeats. The
 * classification of a text never changes, so a hit returns exactly what
 * classify_text would. */
static pc_sql_class_t *classify(tstate_t *t, const char *q, size_t n)
{
    if (n > MEMO_MAX_TEXT) return classify_text(t, q, n);
    uint64_t h = text_hash(q, n);
    struct class_memo *m = &t->memo[h % MEMO_SLOTS];
    if (m->cls && m->hash == h && m->len == n && memcmp(m->text, q, n) == 0)
        return pc_sql_class_ref(m->cls);
    pc_sql_class_t *cls = classify_text(t, q, n);
    if (!cls) return NULL;
    char *copy = malloc(n ? n : 1);
    if (copy) {
        memcpy(copy, q, n);
        free(m->text);
        pc_sql_class_unref(m->cls);
        m->text = copy;
        m->len = n;
        m->hash = h;
        m->cls = pc_sql_class_ref(cls);
    }
    return cls;
}

size_t pc__decision_literal_key(const char *q, size_t n, char *out, size_t cap);
size_t pc__decision_literal_key(const char *q, size_t n, char *out, size_t cap)
{
    return literal_key(q, n, out, cap);
}

/* The session's fixed input parts: cached per thread when the session has an
 * id (sessions never change user, resource or connection facts). */
static const struct session_parts *session_parts_get(tstate_t *t, const pc_decision_ctx_t *ctx)
{
    static _Thread_local struct session_parts scratch;
    if (!ctx->session_id) return build_session_parts(t->input, ctx, &scratch) ? &scratch : NULL;
    struct session_slot *slot = &t->slots[ctx->session_id % SESSION_SLOTS];
    if (slot->session_id == ctx->session_id) return slot->parts;
    if (pc_arena_used(t->sessions) > SESSION_ARENA_MAX) {
        pc_arena_reset(t->sessions);
        memset(t->slots, 0, sizeof t->slots);
    }
    struct session_parts *sp = pc_arena_alloc(t->sessions, sizeof *sp);
    if (!sp || !build_session_parts(t->sessions, ctx, sp)) return NULL;
    sp->session_id = ctx->session_id;
    slot->session_id = ctx->session_id;
    slot->parts = sp;
    return sp;
}

static bool engine(const pc_decision_ctx_t *ctx, pc_decision_t *out)
{
    const char *user = ctx->user ? ctx->user->username : "";
    const char *res = ctx->resource ? ctx->resource->name : "";
    pc_access_counts_t counts;
    bool counted = ctx->stage == PC_STAGE_PRE_REQUEST &&
                   (!ctx->pg_stage || strcmp(ctx->pg_stage, "simple") == 0 ||
                    strcmp(ctx->pg_stage, "execute") == 0);
    const compiled_t *c = ctx->snapshot ? ctx->snapshot->policy_set : NULL;
    uint64_t now_ns = pc_now_wall_ns();
    int64_t now_sec = (int64_t)(now_ns / 1000000000u);
    /* S3: input.bucket.access_count counts this user's requests to this bucket
     * of the resource; the key's resource part is "<resource>\x1e<bucket>" so it
     * never collides with the resource-wide count of input.user.access_count. */
    char bucket_res[512] = "";
    pc_access_counts_t bucket_counts = {0, 0};
    if (ctx->bucket) snprintf(bucket_res, sizeof bucket_res, "%s\x1e%s", res, ctx->bucket);
    if (counted) {
        pc_access_hit(user, res, now_sec, &counts);
        if (ctx->bucket) pc_access_hit(user, bucket_res, now_sec, &bucket_counts);
    }
    if (!c || !c->n) return true;
    int rule = ctx->stage == PC_STAGE_SESSION       ? RULE_SESSION
               : ctx->stage == PC_STAGE_PRE_REQUEST ? RULE_PRE
                                                    : RULE_POST;
    bool any = false;
    for (size_t i = 0; i < c->n && !any; i++)
        any = c->p[i].rule[rule] != NULL;
    if (!any) return true;
    if (!counted) {
        pc_access_peek(user, res, now_sec, &counts);
        if (ctx->bucket) pc_access_peek(user, bucket_res, now_sec, &bucket_counts);
    }
    tstate_t *t = tstate_get(c);
    if (!t) return false;
    pc_arena *a = t->input;
    const struct session_parts *sp = session_parts_get(t, ctx);
    if (!sp) {
        pc_arena_reset(a);
        return false;
    }
    bool ok = true;
    if (ctx->query && ctx->stage != PC_STAGE_SESSION) {
        pc_sql_class_t *cls = classify(t, ctx->query, ctx->query_len);
        if (!cls) return false;
        /* pre_request judges statement by statement; post_request sees the
         * whole query text with the first statement's classification. */
        size_t n = ctx->stage == PC_STAGE_PRE_REQUEST ? cls->n_stmts : (cls->n_stmts ? 1 : 0);
        for (size_t i = 0; i < n && ok; i++) {
            pc_sql_stmt_t st = cls->stmts[i];
            if (ctx->stage == PC_STAGE_POST_REQUEST || cls->n_stmts == 1) {
                st.offset = 0;
                st.len = ctx->query_len;
            }
            const char *only_table =
                cls->parsed && cls->n_stmts == 1 && st.n_tables == 1 ? st.tables[0] : NULL;
            const pc_value *in =
                build_input(a, ctx, sp, &counts, &bucket_counts, now_ns, &st, only_table);
            if (!in)
                ok = false;
            else
                judge(c, t, rule, ctx, in, out);
            pc_arena_reset(a);
        }
        pc_sql_class_unref(cls);
    } else {
        const pc_value *in = build_input(a, ctx, sp, &counts, &bucket_counts, now_ns, NULL, NULL);
        if (!in)
            ok = false;
        else
            judge(c, t, rule, ctx, in, out);
    }
    pc_arena_reset(a);
    return ok;
}

void pc_decision_rego_install(void)
{
    pc_policy_init();
    pc_snapshot_set_compile_hook(compile_hook);
    pc_decision_set_engine(engine);
}
