/*
 * SQL classification for policies (design §4 input.query): statement type,
 * command class and the schema-qualified tables each statement touches,
 * using PostgreSQL's own parser (libpg_query).
 *
 * A pc_sql_class_t is immutable and ref-counted with a plain counter: it is
 * shared only within one worker thread (each worker has its own cache).
 * Strings inside belong to the object.
 */
#ifndef PC_SQL_CLASSIFY_H
#define PC_SQL_CLASSIFY_H

#include "core/common.h"

typedef struct pc_sql_stmt {
    const char *statement_type; /* "SELECT", "INSERT", "CREATE TABLE", ...; "UNKNOWN" */
    const char *command_type;   /* "query", "dml", "ddl", "dcl", "tcl", "utility", "unknown" */
    const char **tables;        /* "schema.table"; unqualified names get "public." */
    size_t n_tables;
    size_t offset, len; /* the statement's text within the original query */
} pc_sql_stmt_t;

typedef struct pc_sql_class {
    unsigned refcount;
    bool parsed; /* false: the text did not parse; one UNKNOWN statement */
    pc_sql_stmt_t *stmts;
    size_t n_stmts;
} pc_sql_class_t;

/** Classify sql[0..len). Never fails: unparsable SQL yields one UNKNOWN statement. */
pc_sql_class_t *pc_sql_classify(const char *sql, size_t len);

pc_sql_class_t *pc_sql_class_ref(pc_sql_class_t *c);
void pc_sql_class_unref(pc_sql_class_t *c);

/*
 * Per-worker cache keyed by query text, so repeated and prepared statements
 * are not parsed again. Bounded (least recently used entries are evicted).
 */
typedef struct pc_sql_cache pc_sql_cache_t;

pc_sql_cache_t *pc_sql_cache_new(size_t capacity);
void pc_sql_cache_free(pc_sql_cache_t *cache);
/** Returns a new reference (caller unrefs). */
pc_sql_class_t *pc_sql_cache_classify(pc_sql_cache_t *cache, const char *sql, size_t len);

typedef struct pc_sql_cache_stats {
    uint64_t hits, misses, evictions;
    size_t entries;
} pc_sql_cache_stats_t;
void pc_sql_cache_get_stats(const pc_sql_cache_t *cache, pc_sql_cache_stats_t *out);

#endif
