/*
 * PostgreSQL wire protocol 3.0 codec: pure and incremental, no I/O.
 *
 * Framing: pc_pg_frame_next() looks at the bytes a caller has buffered and
 * either frames one message (returning pointers into the caller's buffer),
 * asks for more bytes, or rejects the header. Lengths below 4 or above
 * PC_PG_MAX_MSG_LEN (1 GiB), and startup packets above the caller's limit, are
 * rejected from the 4- or 5-byte header alone, before anything is allocated.
 * A caller that does not want to hold a large message may use the header
 * (PC_PG_HEADER) and stream the body through.
 *
 * Field readers (pc_pg_parse_*) take one framed body and fill a struct whose
 * pointers refer into that body; they return false for a malformed body.
 * Builders (pc_pg_build_*) append a complete message to a pc_pg_buf_t.
 *
 * Return conventions: pc_pg_status_t for the framer; bool for readers and
 * builders (false = malformed input, or builder out of memory).
 */
#ifndef PC_PG_PROTO_H
#define PC_PG_PROTO_H

#include "core/common.h"

#define PC_PG_MAX_MSG_LEN (1u << 30) /* PostgreSQL's own limit (PQ_LARGE_MESSAGE_LIMIT) */
#define PC_PG_MAX_STARTUP_LEN 10000u /* PostgreSQL's MAX_STARTUP_PACKET_LENGTH */
#define PC_PG_PROTO_3_0 196608u      /* 3 << 16 */
#define PC_PG_SSL_REQUEST_CODE 80877103u
#define PC_PG_GSSENC_REQUEST_CODE 80877104u
#define PC_PG_CANCEL_REQUEST_CODE 80877102u

typedef enum { PC_PG_NEED_MORE, PC_PG_OK, PC_PG_ERROR } pc_pg_status_t;

/** A framed message. For startup-phase packets `type` is 0. */
typedef struct pc_pg_msg {
    uint8_t type;
    uint32_t body_len;   /* bytes after the length word */
    size_t total_len;    /* header + body: what the caller consumes */
    const uint8_t *body; /* into the caller's buffer; valid only if complete */
} pc_pg_msg_t;

/**
 * Frame the next message in buf[0..n).
 *  startup: the untyped first packet of a connection (length word, then body).
 *  max_len: largest accepted body+4 length (PC_PG_MAX_MSG_LEN for regular
 *           messages, PC_PG_MAX_STARTUP_LEN for startup packets).
 * NEED_MORE: *out may still carry type/body_len if the header is complete
 * (out->total_len is then nonzero), so a caller can decide to stream the body.
 * ERROR: *err names the problem (static text, no input echoed).
 */
pc_pg_status_t pc_pg_frame_next(const uint8_t *buf, size_t n, bool startup, uint32_t max_len,
                                pc_pg_msg_t *out, const char **err);

/* ---------- startup-phase packets ---------- */

typedef enum {
    PC_PG_STARTUP_V3,
    PC_PG_STARTUP_SSL,
    PC_PG_STARTUP_GSSENC,
    PC_PG_STARTUP_CANCEL,
    PC_PG_STARTUP_UNSUPPORTED_VERSION,
} pc_pg_startup_kind_t;

#define PC_PG_MAX_STARTUP_PARAMS 64

typedef struct pc_pg_startup {
    pc_pg_startup_kind_t kind;
    uint32_t code; /* protocol version or request code */
    /* V3: NUL-terminated name/value pairs pointing into the body */
    size_t n_params;
    const char *names[PC_PG_MAX_STARTUP_PARAMS];
    const char *values[PC_PG_MAX_STARTUP_PARAMS];
    /* CANCEL */
    uint32_t cancel_pid;
    uint32_t cancel_key;
} pc_pg_startup_t;

bool pc_pg_parse_startup(const uint8_t *body, uint32_t len, pc_pg_startup_t *out) PC_WUR;
/** Value of a startup parameter, or NULL. */
const char *pc_pg_startup_param(const pc_pg_startup_t *s, const char *name);

/* ---------- frontend messages ---------- */

/** 'Q': the query text (NUL-terminated inside body). */
bool pc_pg_parse_query(const uint8_t *body, uint32_t len, const char **query, size_t *qlen) PC_WUR;

/** 'P' Parse. */
typedef struct pc_pg_parse_msg {
    const char *stmt; /* "" = unnamed */
    const char *query;
    size_t query_len;
    uint16_t n_param_types;
} pc_pg_parse_msg_t;
bool pc_pg_parse_parse(const uint8_t *body, uint32_t len, pc_pg_parse_msg_t *out) PC_WUR;

/** 'B' Bind: only the names are read (parameters pass through untouched). */
bool pc_pg_parse_bind(const uint8_t *body, uint32_t len, const char **portal,
                      const char **stmt) PC_WUR;
/** 'E' Execute. */
bool pc_pg_parse_execute(const uint8_t *body, uint32_t len, const char **portal,
                         uint32_t *max_rows) PC_WUR;
/** 'D' Describe and 'C' Close (frontend): kind 'S' or 'P' and a name. */
bool pc_pg_parse_describe_close(const uint8_t *body, uint32_t len, char *kind,
                                const char **name) PC_WUR;

/** 'p' in its three SASL / password shapes. */
bool pc_pg_parse_sasl_initial(const uint8_t *body, uint32_t len, const char **mechanism,
                              const uint8_t **data, uint32_t *data_len) PC_WUR;
/** SASLResponse and PasswordMessage: the raw bytes (password text includes its NUL). */
void pc_pg_parse_sasl_response(const uint8_t *body, uint32_t len, const uint8_t **data,
                               uint32_t *data_len);

/** 'f' CopyFail: the reason. */
bool pc_pg_parse_copy_fail(const uint8_t *body, uint32_t len, const char **reason) PC_WUR;

/* ---------- backend messages ---------- */

/** 'R' Authentication*: code (0 ok, 3 cleartext, 5 md5, 10 SASL, 11 continue, 12 final). */
typedef struct pc_pg_auth {
    uint32_t code;
    const uint8_t *data; /* md5: 4-byte salt; SASL: mechanism list; 11/12: SCRAM data */
    uint32_t data_len;
} pc_pg_auth_t;
bool pc_pg_parse_auth(const uint8_t *body, uint32_t len, pc_pg_auth_t *out) PC_WUR;
/** True if a NUL-separated SASL mechanism list contains mech. */
bool pc_pg_sasl_has_mechanism(const uint8_t *list, uint32_t len, const char *mech);

/** 'K' BackendKeyData. */
bool pc_pg_parse_backend_key(const uint8_t *body, uint32_t len, uint32_t *pid,
                             uint32_t *key) PC_WUR;
/** 'S' ParameterStatus. */
bool pc_pg_parse_parameter_status(const uint8_t *body, uint32_t len, const char **name,
                                  const char **value) PC_WUR;
/** 'Z' ReadyForQuery: 'I', 'T' or 'E'. */
bool pc_pg_parse_ready(const uint8_t *body, uint32_t len, char *tx_status) PC_WUR;

/** 'E' ErrorResponse / 'N' NoticeResponse: the fields callers use. */
typedef struct pc_pg_error_fields {
    const char *severity; /* localized S, or V */
    const char *code;     /* C: SQLSTATE */
    const char *message;  /* M */
    const char *detail;   /* D */
} pc_pg_error_fields_t;
bool pc_pg_parse_error(const uint8_t *body, uint32_t len, pc_pg_error_fields_t *out) PC_WUR;

/** 'C' CommandComplete: the tag and, when the tag ends in a count, the rows. */
bool pc_pg_parse_command_complete(const uint8_t *body, uint32_t len, const char **tag,
                                  int64_t *rows) PC_WUR;

/** 'T' RowDescription: iterate columns. */
typedef struct pc_pg_column {
    const char *name;
    uint32_t table_oid;
    int16_t attnum;
    uint32_t type_oid;
    int16_t type_len;
    int32_t type_mod;
    int16_t format;
} pc_pg_column_t;
typedef struct pc_pg_rowdesc_iter {
    const uint8_t *p, *end;
    uint16_t n_fields, next;
} pc_pg_rowdesc_iter_t;
bool pc_pg_rowdesc_begin(const uint8_t *body, uint32_t len, pc_pg_rowdesc_iter_t *it) PC_WUR;
/** Returns 1 with a column, 0 at the end, -1 if malformed. */
int pc_pg_rowdesc_next(pc_pg_rowdesc_iter_t *it, pc_pg_column_t *col);

/** 'D' DataRow: iterate values (len -1 = NULL). */
typedef struct pc_pg_datarow_iter {
    const uint8_t *p, *end;
    uint16_t n_fields, next;
} pc_pg_datarow_iter_t;
bool pc_pg_datarow_begin(const uint8_t *body, uint32_t len, pc_pg_datarow_iter_t *it) PC_WUR;
int pc_pg_datarow_next(pc_pg_datarow_iter_t *it, const uint8_t **val, int32_t *val_len);

/** 'A' NotificationResponse. */
bool pc_pg_parse_notification(const uint8_t *body, uint32_t len, uint32_t *pid,
                              const char **channel, const char **payload) PC_WUR;
/** 'G' / 'H' / 'W' CopyIn/Out/BothResponse: overall format and column count. */
bool pc_pg_parse_copy_response(const uint8_t *body, uint32_t len, uint8_t *format,
                               uint16_t *n_cols) PC_WUR;

/* ---------- builders ---------- */

/** Growable output buffer; free with pc_pg_buf_free. */
typedef struct pc_pg_buf {
    uint8_t *data;
    size_t len, cap;
    bool oom;
} pc_pg_buf_t;

void pc_pg_buf_free(pc_pg_buf_t *b);
void pc_pg_buf_reset(pc_pg_buf_t *b);
void pc_pg_buf_put(pc_pg_buf_t *b, const void *p, size_t n);
void pc_pg_buf_put_u8(pc_pg_buf_t *b, uint8_t v);
void pc_pg_buf_put_u16(pc_pg_buf_t *b, uint16_t v);
void pc_pg_buf_put_u32(pc_pg_buf_t *b, uint32_t v);
void pc_pg_buf_put_cstr(pc_pg_buf_t *b, const char *s);
/** Start a message of type (0 = untyped startup packet); returns its offset. */
size_t pc_pg_msg_begin(pc_pg_buf_t *b, uint8_t type);
/** Patch the length word of the message begun at off. */
void pc_pg_msg_end(pc_pg_buf_t *b, size_t off);

/**
 * ErrorResponse ('E') or, with notice, NoticeResponse. severity is the
 * non-localized one ("ERROR", "FATAL"); sqlstate five characters.
 */
void pc_pg_build_error(pc_pg_buf_t *b, const char *severity, const char *sqlstate,
                       const char *message, const char *detail);
void pc_pg_build_auth(pc_pg_buf_t *b, uint32_t code, const void *data, size_t len);
void pc_pg_build_ready(pc_pg_buf_t *b, char tx_status);
void pc_pg_build_backend_key(pc_pg_buf_t *b, uint32_t pid, uint32_t key);
void pc_pg_build_parameter_status(pc_pg_buf_t *b, const char *name, const char *value);
void pc_pg_build_command_complete(pc_pg_buf_t *b, const char *tag);
/** Startup packet v3.0 with n name/value pairs. */
void pc_pg_build_startup(pc_pg_buf_t *b, const char *const *names, const char *const *values,
                         size_t n);
void pc_pg_build_ssl_request(pc_pg_buf_t *b);
void pc_pg_build_cancel(pc_pg_buf_t *b, uint32_t pid, uint32_t key);
/** 'p' PasswordMessage with a NUL-terminated password (cleartext or md5 hash). */
void pc_pg_build_password(pc_pg_buf_t *b, const char *password);
void pc_pg_build_sasl_initial(pc_pg_buf_t *b, const char *mechanism, const void *data, size_t len);
void pc_pg_build_sasl_response(pc_pg_buf_t *b, const void *data, size_t len);

#endif
