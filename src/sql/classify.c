#include "sql/classify.h"

#include <ctype.h>
#include <jansson.h>
#include <pg_query.h>
#include <string.h>

/* ---------- statement type from the parse-tree node name ---------- */

typedef struct {
    const char *node;
    const char *type;
} node_type_t;

/* Node names whose command tag is not their CamelCase words. */
static const node_type_t special_nodes[] = {
    {"CreateStmt", "CREATE TABLE"},
    {"IndexStmt", "CREATE INDEX"},
    {"ViewStmt", "CREATE VIEW"},
    {"AlterTableStmt", "ALTER TABLE"},
    {"CheckPointStmt", "CHECKPOINT"},
    {"RefreshMatViewStmt", "REFRESH MATERIALIZED VIEW"},
    {"ClosePortalStmt", "CLOSE"},
    {"DeclareCursorStmt", "DECLARE CURSOR"},
    {"VariableShowStmt", "SHOW"},
    {"CreateSeqStmt", "CREATE SEQUENCE"},
    {"AlterSeqStmt", "ALTER SEQUENCE"},
    {"CreateFunctionStmt", "CREATE FUNCTION"},
    {"CreatedbStmt", "CREATE DATABASE"},
    {"DropdbStmt", "DROP DATABASE"},
    {"CreateTrigStmt", "CREATE TRIGGER"},
    {"RenameStmt", "ALTER"},
    {"CommentStmt", "COMMENT"},
    {"GrantRoleStmt", "GRANT ROLE"},
    {"CallStmt", "CALL"},
    {"DoStmt", "DO"},
};

/* Interned statement-type strings, so pc_sql_stmt_t can point at constants. */
#define MAX_DYNAMIC_TYPES 256
static const char *dynamic_types[MAX_DYNAMIC_TYPES];

static const char *camel_to_tag(const char *node, char *buf, size_t cap)
{
    size_t nlen = strlen(node);
    if (nlen > 4 && strcmp(node + nlen - 4, "Stmt") == 0) nlen -= 4;
    size_t p = 0;
    for (size_t i = 0; i < nlen && p + 2 < cap; i++) {
        unsigned char c = (unsigned char)node[i];
        if (i > 0 && isupper(c) && p + 3 < cap) buf[p++] = ' ';
        buf[p++] = (char)toupper(c);
    }
    buf[p] = '\0';
    return buf;
}

static const char *intern_type(const char *tag)
{
    /* Types come from a finite set of parse-node names; a static table with a
     * linear probe is enough and keeps the strings alive for the process. */
    for (size_t i = 0; i < MAX_DYNAMIC_TYPES; i++) {
        const char *cur = __atomic_load_n(&dynamic_types[i], __ATOMIC_ACQUIRE);
        if (cur == NULL) {
            char *copy = pc_xstrdup(tag);
            const char *expected = NULL;
            if (__atomic_compare_exchange_n(&dynamic_types[i], &expected, copy, false,
                                            __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
                return copy;
            free(copy);
            cur = expected;
        }
        if (strcmp(cur, tag) == 0) return cur;
    }
    return "UNKNOWN";
}

static const char *transaction_type(json_t *stmt)
{
    const char *kind = json_string_value(json_object_get(stmt, "kind"));
    if (!kind) return "UNKNOWN";
    static const node_type_t kinds[] = {
        {"TRANS_STMT_BEGIN", "BEGIN"},
        {"TRANS_STMT_START", "BEGIN"},
        {"TRANS_STMT_COMMIT", "COMMIT"},
        {"TRANS_STMT_ROLLBACK", "ROLLBACK"},
        {"TRANS_STMT_SAVEPOINT", "SAVEPOINT"},
        {"TRANS_STMT_RELEASE", "RELEASE"},
        {"TRANS_STMT_ROLLBACK_TO", "ROLLBACK"},
        {"TRANS_STMT_PREPARE", "PREPARE TRANSACTION"},
        {"TRANS_STMT_COMMIT_PREPARED", "COMMIT PREPARED"},
        {"TRANS_STMT_ROLLBACK_PREPARED", "ROLLBACK PREPARED"},
    };
    for (size_t i = 0; i < PC_ARRAY_LEN(kinds); i++)
        if (strcmp(kind, kinds[i].node) == 0) return kinds[i].type;
    return "UNKNOWN";
}

static const char *statement_type(const char *node, json_t *stmt)
{
    char buf[96];
    if (strcmp(node, "TransactionStmt") == 0) return transaction_type(stmt);
    if (strcmp(node, "GrantStmt") == 0)
        return json_is_true(json_object_get(stmt, "is_grant")) ? "GRANT" : "REVOKE";
    if (strcmp(node, "VariableSetStmt") == 0) {
        const char *kind = json_string_value(json_object_get(stmt, "kind"));
        return kind && strncmp(kind, "VAR_RESET", 9) == 0 ? "RESET" : "SET";
    }
    if (strcmp(node, "VacuumStmt") == 0)
        return json_is_true(json_object_get(stmt, "is_vacuumcmd")) ? "VACUUM" : "ANALYZE";
    if (strcmp(node, "CreateTableAsStmt") == 0) {
        const char *objtype = json_string_value(json_object_get(stmt, "objtype"));
        return objtype && strcmp(objtype, "OBJECT_MATVIEW") == 0 ? "CREATE MATERIALIZED VIEW"
                                                                 : "CREATE TABLE AS";
    }
    if (strcmp(node, "DropStmt") == 0) {
        const char *rt = json_string_value(json_object_get(stmt, "removeType"));
        if (rt && strncmp(rt, "OBJECT_", 7) == 0) {
            char obj[64];
            size_t p = 0;
            for (const char *s = rt + 7; *s && p + 1 < sizeof obj; s++) obj[p++] = *s == '_' ? ' ' : *s;
            obj[p] = '\0';
            if (strcmp(obj, "MATVIEW") == 0) return "DROP MATERIALIZED VIEW";
            snprintf(buf, sizeof buf, "DROP %s", obj);
            return intern_type(buf);
        }
        return "DROP";
    }
    for (size_t i = 0; i < PC_ARRAY_LEN(special_nodes); i++)
        if (strcmp(node, special_nodes[i].node) == 0) return special_nodes[i].type;
    return intern_type(camel_to_tag(node, buf, sizeof buf));
}

static const char *command_type(const char *type)
{
    static const char *const dml[] = {"INSERT", "UPDATE", "DELETE", "MERGE", "COPY"};
    static const char *const tcl[] = {"BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE",
                                      "PREPARE TRANSACTION", "COMMIT PREPARED",
                                      "ROLLBACK PREPARED"};
    if (strcmp(type, "SELECT") == 0 || strcmp(type, "EXPLAIN") == 0) return "query";
    if (strcmp(type, "UNKNOWN") == 0) return "unknown";
    for (size_t i = 0; i < PC_ARRAY_LEN(dml); i++)
        if (strcmp(type, dml[i]) == 0) return "dml";
    for (size_t i = 0; i < PC_ARRAY_LEN(tcl); i++)
        if (strcmp(type, tcl[i]) == 0) return "tcl";
    if (strncmp(type, "GRANT", 5) == 0 || strcmp(type, "REVOKE") == 0 ||
        strstr(type, " ROLE") || strstr(type, " USER") || strstr(type, " POLICY"))
        return "dcl";
    if (strncmp(type, "CREATE", 6) == 0 || strncmp(type, "ALTER", 5) == 0 ||
        strncmp(type, "DROP", 4) == 0 || strcmp(type, "TRUNCATE") == 0 ||
        strcmp(type, "COMMENT") == 0)
        return "ddl";
    return "utility";
}

/* ---------- tables ---------- */

typedef struct {
    char **names;
    size_t n, cap;
    const char **ctes;
    size_t n_ctes, cap_ctes;
} collect_t;

static void add_name(collect_t *c, const char *schema, const char *rel)
{
    size_t need = strlen(schema) + 1 + strlen(rel) + 1;
    char *full = pc_xmalloc(need);
    snprintf(full, need, "%s.%s", schema, rel);
    for (size_t i = 0; i < c->n; i++) {
        if (strcmp(c->names[i], full) == 0) {
            free(full);
            return;
        }
    }
    if (c->n == c->cap) {
        c->cap = c->cap ? c->cap * 2 : 4;
        c->names = pc_xrealloc(c->names, c->cap * sizeof *c->names);
    }
    c->names[c->n++] = full;
}

static bool is_cte(const collect_t *c, const char *name)
{
    for (size_t i = 0; i < c->n_ctes; i++)
        if (strcmp(c->ctes[i], name) == 0) return true;
    return false;
}

/* CTE names first: a reference to one is not a table. */
static void collect_ctes(json_t *node, collect_t *c)
{
    if (json_is_object(node)) {
        json_t *cte = json_object_get(node, "CommonTableExpr");
        const char *name = cte ? json_string_value(json_object_get(cte, "ctename")) : NULL;
        if (name) {
            if (c->n_ctes == c->cap_ctes) {
                c->cap_ctes = c->cap_ctes ? c->cap_ctes * 2 : 4;
                c->ctes = pc_xrealloc(c->ctes, c->cap_ctes * sizeof *c->ctes);
            }
            c->ctes[c->n_ctes++] = name;
        }
        const char *key;
        json_t *val;
        json_object_foreach(node, key, val) collect_ctes(val, c);
    } else if (json_is_array(node)) {
        size_t i;
        json_t *val;
        json_array_foreach(node, i, val) collect_ctes(val, c);
    }
}

static void collect_tables(json_t *node, collect_t *c)
{
    if (json_is_object(node)) {
        /* A RangeVar appears wrapped ({"RangeVar":{...}}) where the field is a
         * generic node, bare where the field is typed (InsertStmt.relation). */
        json_t *rv = json_object_get(node, "RangeVar");
        if (!rv && json_is_string(json_object_get(node, "relname")) &&
            json_object_get(node, "relpersistence"))
            rv = node;
        if (json_is_object(rv)) {
            const char *rel = json_string_value(json_object_get(rv, "relname"));
            const char *schema = json_string_value(json_object_get(rv, "schemaname"));
            if (rel && (schema || !is_cte(c, rel))) add_name(c, schema ? schema : "public", rel);
        }
        const char *key;
        json_t *val;
        json_object_foreach(node, key, val) collect_tables(val, c);
    } else if (json_is_array(node)) {
        size_t i;
        json_t *val;
        json_array_foreach(node, i, val) collect_tables(val, c);
    }
}

static const char *item_name(json_t *item)
{
    return json_string_value(json_object_get(json_object_get(item, "String"), "sval"));
}

/* DROP TABLE a, s.b: the objects are lists of name strings, not RangeVars. */
static void collect_drop_tables(json_t *drop, collect_t *c)
{
    const char *rt = json_string_value(json_object_get(drop, "removeType"));
    if (!rt || (strcmp(rt, "OBJECT_TABLE") && strcmp(rt, "OBJECT_VIEW") &&
                strcmp(rt, "OBJECT_MATVIEW") && strcmp(rt, "OBJECT_FOREIGN_TABLE")))
        return;
    size_t i;
    json_t *obj;
    json_array_foreach(json_object_get(drop, "objects"), i, obj) {
        json_t *items = json_object_get(json_object_get(obj, "List"), "items");
        size_t n = json_array_size(items);
        /* [catalog.]schema.table: the last two names matter. */
        const char *rel = n ? item_name(json_array_get(items, n - 1)) : NULL;
        const char *schema = n >= 2 ? item_name(json_array_get(items, n - 2)) : "public";
        if (rel && schema) add_name(c, schema, rel);
    }
}

/* ---------- classification ---------- */

static void set_unknown(pc_sql_stmt_t *st, size_t len)
{
    memset(st, 0, sizeof *st);
    st->statement_type = "UNKNOWN";
    st->command_type = "unknown";
    st->len = len;
}

static pc_sql_class_t *unknown_class(size_t len)
{
    pc_sql_class_t *cls = pc_xcalloc(1, sizeof *cls);
    cls->refcount = 1;
    cls->parsed = false;
    cls->n_stmts = 1;
    cls->stmts = pc_xcalloc(1, sizeof *cls->stmts);
    set_unknown(&cls->stmts[0], len);
    return cls;
}

pc_sql_class_t *pc_sql_classify(const char *sql, size_t len)
{
    char *text = pc_xstrndup(sql, len);
    if (strlen(text) != len) { /* embedded NUL: PostgreSQL would reject it too */
        free(text);
        return unknown_class(len);
    }
    PgQueryParseResult res = pg_query_parse(text);
    json_t *root = NULL;
    if (!res.error && res.parse_tree) root = json_loads(res.parse_tree, 0, NULL);
    pg_query_free_parse_result(res);
    free(text);
    json_t *stmts = root ? json_object_get(root, "stmts") : NULL;
    if (!json_is_array(stmts)) {
        json_decref(root);
        return unknown_class(len);
    }

    pc_sql_class_t *cls = pc_xcalloc(1, sizeof *cls);
    cls->refcount = 1;
    cls->parsed = true;
    size_t n = json_array_size(stmts);
    if (n == 0) { /* an empty query string: PostgreSQL answers EmptyQueryResponse */
        json_decref(root);
        return cls;
    }
    cls->stmts = pc_xcalloc(n, sizeof *cls->stmts);
    cls->n_stmts = n;
    for (size_t i = 0; i < n; i++) {
        json_t *raw = json_array_get(stmts, i);
        pc_sql_stmt_t *st = &cls->stmts[i];
        set_unknown(st, 0);
        json_int_t loc = json_integer_value(json_object_get(raw, "stmt_location"));
        json_int_t slen = json_integer_value(json_object_get(raw, "stmt_len"));
        st->offset = loc >= 0 && (size_t)loc <= len ? (size_t)loc : 0;
        st->len = slen > 0 && (size_t)slen <= len - st->offset ? (size_t)slen : len - st->offset;

        json_t *node = json_object_get(raw, "stmt");
        const char *name = NULL;
        json_t *body = NULL;
        if (json_is_object(node) && json_object_size(node) == 1) {
            void *it = json_object_iter(node);
            name = json_object_iter_key(it);
            body = json_object_iter_value(it);
        }
        if (!name) continue;
        st->statement_type = statement_type(name, body);
        st->command_type = command_type(st->statement_type);

        collect_t c = {0};
        collect_ctes(body, &c);
        collect_tables(body, &c);
        if (strcmp(name, "DropStmt") == 0) collect_drop_tables(body, &c);
        st->tables = (const char **)c.names;
        st->n_tables = c.n;
        free(c.ctes);
    }
    json_decref(root);
    return cls;
}

pc_sql_class_t *pc_sql_class_ref(pc_sql_class_t *c)
{
    if (c) c->refcount++;
    return c;
}

void pc_sql_class_unref(pc_sql_class_t *c)
{
    if (!c || --c->refcount > 0) return;
    for (size_t i = 0; i < c->n_stmts; i++) {
        for (size_t k = 0; k < c->stmts[i].n_tables; k++) free((char *)c->stmts[i].tables[k]);
        free(c->stmts[i].tables);
    }
    free(c->stmts);
    free(c);
}

/* ---------- per-worker cache ---------- */

typedef struct cache_entry {
    struct cache_entry *next_in_bucket;
    struct cache_entry *lru_prev, *lru_next;
    uint64_t hash;
    size_t len;
    pc_sql_class_t *cls;
    char text[];
} cache_entry_t;

struct pc_sql_cache {
    cache_entry_t **buckets;
    size_t n_buckets; /* power of two */
    size_t capacity, entries;
    cache_entry_t *lru_head, *lru_tail; /* head = most recently used */
    pc_sql_cache_stats_t stats;
};

static uint64_t hash_text(const char *s, size_t len)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)s[i];
        h *= 1099511628211ull;
    }
    return h;
}

pc_sql_cache_t *pc_sql_cache_new(size_t capacity)
{
    pc_sql_cache_t *c = pc_xcalloc(1, sizeof *c);
    c->capacity = capacity ? capacity : 1;
    c->n_buckets = 16;
    while (c->n_buckets < c->capacity * 2) c->n_buckets <<= 1;
    c->buckets = pc_xcalloc(c->n_buckets, sizeof *c->buckets);
    return c;
}

static void lru_unlink(pc_sql_cache_t *c, cache_entry_t *e)
{
    if (e->lru_prev) e->lru_prev->lru_next = e->lru_next;
    else c->lru_head = e->lru_next;
    if (e->lru_next) e->lru_next->lru_prev = e->lru_prev;
    else c->lru_tail = e->lru_prev;
    e->lru_prev = e->lru_next = NULL;
}

static void lru_push_front(pc_sql_cache_t *c, cache_entry_t *e)
{
    e->lru_prev = NULL;
    e->lru_next = c->lru_head;
    if (c->lru_head) c->lru_head->lru_prev = e;
    c->lru_head = e;
    if (!c->lru_tail) c->lru_tail = e;
}

static void evict_one(pc_sql_cache_t *c)
{
    cache_entry_t *victim = c->lru_tail;
    if (!victim) return;
    lru_unlink(c, victim);
    cache_entry_t **pp = &c->buckets[victim->hash & (c->n_buckets - 1)];
    while (*pp && *pp != victim) pp = &(*pp)->next_in_bucket;
    if (*pp) *pp = victim->next_in_bucket;
    pc_sql_class_unref(victim->cls);
    free(victim);
    c->entries--;
    c->stats.evictions++;
}

pc_sql_class_t *pc_sql_cache_classify(pc_sql_cache_t *c, const char *sql, size_t len)
{
    uint64_t h = hash_text(sql, len);
    cache_entry_t **bucket = &c->buckets[h & (c->n_buckets - 1)];
    for (cache_entry_t *e = *bucket; e; e = e->next_in_bucket) {
        if (e->hash == h && e->len == len && memcmp(e->text, sql, len) == 0) {
            c->stats.hits++;
            lru_unlink(c, e);
            lru_push_front(c, e);
            return pc_sql_class_ref(e->cls);
        }
    }
    c->stats.misses++;
    pc_sql_class_t *cls = pc_sql_classify(sql, len);
    if (c->entries >= c->capacity) evict_one(c);
    bucket = &c->buckets[h & (c->n_buckets - 1)];
    cache_entry_t *e = pc_xmalloc(sizeof *e + len);
    e->hash = h;
    e->len = len;
    e->cls = pc_sql_class_ref(cls);
    memcpy(e->text, sql, len);
    e->next_in_bucket = *bucket;
    *bucket = e;
    lru_push_front(c, e);
    c->entries++;
    return cls;
}

void pc_sql_cache_get_stats(const pc_sql_cache_t *c, pc_sql_cache_stats_t *out)
{
    *out = c->stats;
    out->entries = c->entries;
}

void pc_sql_cache_free(pc_sql_cache_t *c)
{
    if (!c) return;
    while (c->lru_tail) evict_one(c);
    free(c->buckets);
    free(c);
}
