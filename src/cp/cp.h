/*
 * Control plane (design §7, wire API in docs/controlplane.md): configuration
 * objects with revisions, connector tokens, the watch stream of snapshots,
 * audit-log ingestion and Connected Instances, stored in SQLite.
 *
 * pc_cp_t is the state without any transport: pc_cp_handle answers one
 * complete request (what the HTTP server, the unit tests and the fuzz target
 * call); watch streams read pc_cp_watch_next. Every function is thread-safe:
 * one mutex guards the database connection and the cached current snapshot,
 * and every transaction is short.
 *
 * Secrets (upstream credentials, access-key secrets, SCRAM verifiers) are
 * write-only through the admin API; only connector snapshots carry them, and
 * no log line or error message ever holds one. User passwords are never
 * stored: they become SCRAM-SHA-256 verifiers on upload.
 */
#ifndef PC_CP_CP_H
#define PC_CP_CP_H

#include "core/common.h"

#include <jansson.h>

/* Largest request body accepted (413 above). */
#define PC_CP_MAX_BODY (4u * 1024 * 1024)
/* Watch heartbeat period; a peer that sees nothing for 3 of them drops the stream. */
#define PC_CP_HEARTBEAT_MS 5000
#define PC_CP_DEAD_PEER_MS 15000

typedef struct pc_cp_config {
    char *listen;      /* "host:port", default 127.0.0.1:8443 */
    char *db;          /* SQLite file, default ./portcullis.db */
    char *admin_token; /* secret, required */
    char *tls_cert;    /* PEM files; NULL = plain HTTP */
    char *tls_key;
    char *console_dir; /* static console files; NULL = found next to the binary */
    char *log_level;
} pc_cp_config_t;

/** Strict YAML load (unknown key -> false with "file:line: key: problem"); caller exits 2. */
bool pc_cp_config_load(const char *path, pc_cp_config_t *out, char *err, size_t errlen) PC_WUR;
bool pc_cp_config_load_yaml(const char *yaml, size_t len, const char *origin,
                            pc_cp_config_t *out, char *err, size_t errlen) PC_WUR;
void pc_cp_config_free(pc_cp_config_t *cfg);

typedef struct pc_cp pc_cp_t;

/** Open (or create) the database, apply migrations, load the current snapshot. */
pc_cp_t *pc_cp_open(const char *db_path, const char *admin_token, char *err,
                    size_t errlen) PC_WUR;
/** Wake every watcher (they end their streams) before the server stops. */
void pc_cp_shutdown(pc_cp_t *cp);
void pc_cp_close(pc_cp_t *cp);

typedef struct pc_cp_request {
    const char *method;        /* "GET", "PUT", ... */
    const char *path;          /* decoded, without the query string */
    const char *query;         /* raw query string without '?', or NULL */
    const char *authorization; /* the Authorization header, or NULL */
    const char *content_type;  /* or NULL */
    const char *body;
    size_t body_len;
    const char *peer; /* client address "ip:port" (for instances without one) */
} pc_cp_request_t;

typedef struct pc_cp_response {
    int status;
    const char *content_type; /* static string */
    char *body;               /* malloc'd */
    size_t len;
} pc_cp_response_t;

/** Answer one request (everything but watch streams and console files). */
void pc_cp_handle(pc_cp_t *cp, const pc_cp_request_t *req, pc_cp_response_t *out);
void pc_cp_response_free(pc_cp_response_t *r);

/** Error body {"error":{"code":..,"message":..}} with status. */
void pc_cp_error(pc_cp_response_t *out, int status, const char *code, const char *fmt, ...)
    PC_PRINTF(4, 5);

/* ---------- watch streams ---------- */

typedef struct pc_cp_watch pc_cp_watch_t;

/**
 * Authorise and parse a watch request (GET /v1/connector/config?watch=1).
 * NULL with *out filled (401, 400) when refused.
 */
pc_cp_watch_t *pc_cp_watch_open(pc_cp_t *cp, const pc_cp_request_t *req, pc_cp_response_t *out);
/**
 * Block until there is a line to send (a snapshot newer than the last one
 * sent, or a heartbeat when PC_CP_HEARTBEAT_MS passed) and return it
 * (malloc'd, ending in '\n'). NULL: the stream is over (shutdown, connector
 * deleted).
 */
char *pc_cp_watch_next(pc_cp_watch_t *w, size_t *len);
void pc_cp_watch_close(pc_cp_watch_t *w);

/* ---------- helpers shared with `portcullis ctl` ---------- */

/**
 * YAML text -> JSON value (plain scalars typed: null, booleans, integers,
 * floats; everything quoted stays a string). expand_env: ${VAR} in values.
 * NULL with "origin:line: problem" in err.
 */
json_t *pc_cp_yaml_to_json(const char *text, size_t len, const char *origin, bool expand_env,
                           char *err, size_t errlen) PC_WUR;

/** "2026-01-02T03:04:05.123456Z" / "+01:00" -> microseconds since the epoch. */
bool pc_cp_parse_rfc3339(const char *s, int64_t *out_us) PC_WUR;
/** Microseconds since the epoch -> "2026-01-02T03:04:05.123456Z" (out >= 32 bytes). */
void pc_cp_format_rfc3339(int64_t us, char *out, size_t cap);

/* ---------- HTTP server ---------- */

typedef struct pc_cp_server pc_cp_server_t;

pc_cp_server_t *pc_cp_server_start(pc_cp_t *cp, const pc_cp_config_t *cfg, char *err,
                                   size_t errlen) PC_WUR;
/** The bound port (useful with port 0). */
int pc_cp_server_port(const pc_cp_server_t *s);
void pc_cp_server_stop(pc_cp_server_t *s);

#endif
