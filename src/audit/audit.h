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

/** Largest record pc_audit_format can produce; pc_audit_emit's stack buffer. */
#define PC_AUDIT_MAX_RECORD (64u * 1024u)
/** Escaped bytes of `query` kept; longer ones are cut and get "query_truncated":true. */
#define PC_AUDIT_QUERY_MAX (16u * 1024u)

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
    /* s3: the split of `bytes` (request body read from the client, response
     * body sent to it); written only together with bytes (bytes >= 0). Last,
     * so positional initialisers of the fields above stay valid. */
    int64_t bytes_in, bytes_out;
} pc_audit_rec_t;

/*
 * Record layout, in this order (absent fields are left out):
 *   id "<instance>-<seq>", ts (RFC 3339 UTC, microseconds), instance, version,
 *   type ("session_start" | "session_end" | "request"), user, resource,
 *   technology, session_id (omitted when 0), client_ip, db_name, application,
 *   stage, query, query_truncated, operation, bucket, key, decision,
 *   policies (always present on requests), reason, masked_columns,
 *   rows/bytes/bytes_in/bytes_out/status (omitted when < 0; bytes_in/out also
 *   when bytes is), duration_us (not on session_start),
 *   error.
 * Strings are JSON-escaped; invalid UTF-8 becomes U+FFFD. Each string has a
 * cap (query PC_AUDIT_QUERY_MAX, error 4 KiB, others smaller) so that a record
 * always fits PC_AUDIT_MAX_RECORD. policies / masked_columns must be JSON
 * arrays of strings (copied without whitespace between elements, so a record
 * is always one line); anything else is recorded as one escaped string inside
 * an array so that the record stays valid JSON.
 */

/** Identity fields every record carries; set once at start-up, before any emit. */
void pc_audit_set_identity(const char *instance, const char *version);

/**
 * Format rec as one JSON line (id, ts, instance, version, kind-specific
 * fields) and append it to sp. Returns false if the spool dropped it.
 * Any thread; no allocation, no I/O: formatting into a stack buffer
 * (typically ~1-2 us for a 1 KB record) plus pc_spool_append.
 */
bool pc_audit_emit(pc_spool_t *sp, const pc_audit_rec_t *rec);

/**
 * Format only (used by tests and by pc_audit_emit); returns the length
 * (excluding the NUL it also writes) or 0 if cap is too small.
 * ts_ns is wall-clock nanoseconds since the epoch.
 */
size_t pc_audit_format(char *buf, size_t cap, uint64_t seq, uint64_t ts_ns,
                       const pc_audit_rec_t *rec);

#endif
