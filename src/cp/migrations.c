/*
 * Schema versions of the control plane's SQLite database. PRAGMA user_version
 * holds the version applied; each entry below moves the schema one version
 * forward inside one transaction. Never edit a released entry: append one.
 */
#include "cp/cp_int.h"

#include <stdio.h>

static const char *const migrations[] = {
    /* 1: objects (secrets kept in their own column), revisions with the full
     * snapshot of each, connectors (token hashes), instances, audit records. */
    "CREATE TABLE objects ("
    "  kind TEXT NOT NULL, name TEXT NOT NULL,"
    "  body TEXT NOT NULL,"    /* the object without its secrets: what GET returns */
    "  secrets TEXT,"          /* only the secret fields, same shape */
    "  revision INTEGER NOT NULL,"
    "  PRIMARY KEY (kind, name));"
    "CREATE TABLE revisions ("
    "  revision INTEGER PRIMARY KEY,"
    "  created_us INTEGER NOT NULL,"
    "  summary TEXT NOT NULL,"
    "  snapshot TEXT NOT NULL);" /* exactly what connectors received for this revision */
    "CREATE TABLE connectors ("
    "  name TEXT PRIMARY KEY,"
    "  token_hash TEXT NOT NULL UNIQUE,"
    "  created_us INTEGER NOT NULL,"
    "  last_seen_us INTEGER);"
    "CREATE TABLE instances ("
    "  instance TEXT PRIMARY KEY,"
    "  connector TEXT NOT NULL,"
    "  version TEXT, address TEXT, cluster_role TEXT, health TEXT,"
    "  first_seen_us INTEGER NOT NULL,"
    "  last_seen_us INTEGER NOT NULL);"
    "CREATE TABLE audit ("
    "  id TEXT PRIMARY KEY,"
    "  ts_us INTEGER NOT NULL,"
    "  instance TEXT, connector TEXT, user TEXT, resource TEXT, decision TEXT,"
    "  received_us INTEGER NOT NULL,"
    "  record TEXT NOT NULL);"
    "CREATE INDEX audit_by_ts ON audit (ts_us, id);"
    "CREATE INDEX audit_by_user ON audit (user, ts_us, id);"
    "CREATE INDEX audit_by_resource ON audit (resource, ts_us, id);"
    "CREATE INDEX audit_by_decision ON audit (decision, ts_us, id);",
};

bool pc__cp_migrate(sqlite3 *db, char *err, size_t errlen)
{
    sqlite3_stmt *st = NULL;
    int version = 0;
    if (sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL) != SQLITE_OK) goto fail;
    if (sqlite3_step(st) == SQLITE_ROW) version = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    int latest = (int)PC_ARRAY_LEN(migrations);
    if (version > latest) {
        snprintf(err, errlen, "database schema version %d is newer than this binary's (%d)",
                 version, latest);
        return false;
    }
    for (int v = version; v < latest; v++) {
        char sql[64];
        snprintf(sql, sizeof sql, "PRAGMA user_version = %d", v + 1);
        char *msg = NULL;
        if (sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, &msg) != SQLITE_OK ||
            sqlite3_exec(db, migrations[v], NULL, NULL, &msg) != SQLITE_OK ||
            sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK ||
            sqlite3_exec(db, "COMMIT", NULL, NULL, &msg) != SQLITE_OK) {
            snprintf(err, errlen, "migration to schema version %d failed: %s", v + 1,
                     msg ? msg : "?");
            sqlite3_free(msg);
            sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
            return false;
        }
    }
    return true;
fail:
    snprintf(err, errlen, "cannot read the schema version: %s", sqlite3_errmsg(db));
    return false;
}
