/*
 * Audit records (design §6): one JSON object per session start/end and per
 * request, built on the request path into a stack buffer (no allocation) and
 * handed to the spool.
 *
 * Fields that are NULL / negative are omitted. Never put a password, secret
 * or upstream credential into a record.
 */
#ifndef PC_AUDIT_AUDIT_H
#define PC_AUDIT_AUDIT_H

#include "core/common.h"
#include "spool/spool.h"

typedef enum { PC_AUDIT_SESSION_START, PC_AUDIT_SESSION_END, PC_AUDIT_REQUEST } pc_audit_kind_t;

typedef struct pc_audit_rec {
    pc_audit_kind_t kind;
    const char *user;
    const char *resource;
    const char *technology; /* "postgres", "s3", "bigquery" */
    uint64_t session_id;
    const char *client_ip;
    const char *db_name;     /* postgres */
    const char *application; /* postgres application_name */
    const char *query;       /* postgres / bigquery */
    const char *stage;       /* "parse", "execute", "simple" for postgres */
    const char *operation;   /* s3 */
    const char *bucket;
    const char *key;
    const char *decision; /* "allow", "block", "mask"; NULL = not judged */
    const char *policies; /* JSON array text, e.g. ["p1","p2"]; NULL = [] */
    const char *reason;
    const char *masked_columns; /* JSON array text or NULL */
    int64_t rows;               /* -1 = unknown */
    int64_t bytes;              /* -1 = unknown */
    int64_t status;             /* s3 HTTP status, -1 = none */
    uint64_t duration_us;
    const char *error;
} pc_audit_rec_t;

/** Identity fields every record carries; set once at start-up. */
void pc_audit_set_identity(const char *instance, const char *version);

/**
 * Format rec as one JSON line (id, ts, instance, version, kind-specific
 * fields) and append it to sp. Returns false if the spool dropped it.
 */
bool pc_audit_emit(pc_spool_t *sp, const pc_audit_rec_t *rec);

/** Format only (used by tests and by pc_audit_emit); returns length or 0. */
size_t pc_audit_format(char *buf, size_t cap, uint64_t seq, uint64_t ts_ns,
                       const pc_audit_rec_t *rec);

#endif
