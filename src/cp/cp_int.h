/* Internal to src/cp: the state shared by the store (store.c) and the API (api.c). */
#ifndef PC_CP_CP_INT_H
#define PC_CP_CP_INT_H

#include "cp/cp.h"

#include <pthread.h>
#include <sqlite3.h>

struct pc_cp {
    pthread_mutex_t mu; /* guards everything below */
    pthread_cond_t changed; /* new revision, connector deleted, shutdown */
    sqlite3 *db;
    uint64_t revision;
    char *snapshot;        /* current snapshot JSON with secrets (one line), never logged */
    size_t snapshot_len;
    uint64_t connectors_epoch; /* bumped when a connector is deleted */
    uint8_t admin_hash[32];
    bool stopping;
};

/* The object kinds, in snapshot order, and the key that names each. */
#define PC__CP_KINDS 4
extern const char *const pc__cp_kinds[PC__CP_KINDS];
int pc__cp_kind_index(const char *kind);
const char *pc__cp_name_key(int kind);

/* One change in a write: obj NULL deletes (kind, name). */
typedef struct pc__cp_op {
    int kind;
    const char *name;
    json_t *obj; /* borrowed */
} pc__cp_op_t;

/**
 * Apply ops as one new revision (all or nothing) after validating the whole
 * resulting snapshot. Fills out with an error on refusal; on success writes
 * the new revision to *rev.
 */
bool pc__cp_write(pc_cp_t *cp, const pc__cp_op_t *ops, size_t n, uint64_t *rev,
                  pc_cp_response_t *out);

/** Current wall clock in microseconds. */
int64_t pc__cp_now_us(void);
/** SHA-256 of a token as lowercase hex (65 bytes with NUL). */
void pc__cp_token_hash(const char *token, size_t len, char out[65]);

/** A watch stream for the connector whose token hashes to token_hash. */
pc_cp_watch_t *pc__cp_watch_new(pc_cp_t *cp, const char *token_hash, uint64_t since);
/** GET /v1/connector/config?watch=1 (served by a stream, not pc_cp_handle). */
bool pc__cp_is_watch(const pc_cp_request_t *req);

/** Migrations (migrations.c): brings the schema to the latest version. */
bool pc__cp_migrate(sqlite3 *db, char *err, size_t errlen) PC_WUR;

#endif
