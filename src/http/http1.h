/*
 * HTTP/1.1 message parser (requests and responses): pure and incremental, no
 * I/O, no allocation. One pc_http1_t per direction of a connection (the client's
 * requests, the upstream's responses).
 *
 * Feeding. The caller owns the bytes. pc_http1_feed() is called with the bytes
 * the caller holds that the parser has not consumed yet (buf[0..len)); it
 * reports how many it consumed and one event:
 *
 *   NEED_MORE  everything useful was consumed; call again with more bytes.
 *              While a HEAD is incomplete nothing is consumed (*consumed == 0):
 *              the caller keeps the partial head buffered and calls again with
 *              the same bytes (they may have moved in memory) followed by new
 *              ones. The parser remembers how far it scanned, so re-presenting
 *              is cheap. A head can never exceed PC_HTTP1_MAX_HEAD bytes.
 *   HEAD       a complete head is in p->msg; *consumed = p->msg.head_len. The
 *              spans in p->msg point into buf of THIS call: they stay valid as
 *              long as the caller keeps those bytes in place, and p->msg itself
 *              stays valid until the next HEAD event (or pc_http1_reset()).
 *   DATA       *data is a span of body bytes (zero-copy, inside buf; for
 *              chunked bodies the framing is removed). Not yet END.
 *   END        the message (head + body) is complete. Bytes after it belong to
 *              the next message (pipelining): keep feeding them; the parser has
 *              already reset itself to expect the next head. END may come with
 *              *consumed == 0: after a HEAD without body, or after the DATA that
 *              carried a Content-Length body's last byte, the next call (len
 *              may be 0) returns END at once. So: after HEAD, call feed until
 *              END (or until there are no more bytes and it says NEED_MORE).
 *   ERROR      p->error_status holds the HTTP status to answer (requests: 400,
 *              414, 431, 501, 505) and p->error a static text (never echoes
 *              input). Fatal for the connection: answer and close. The parser
 *              stays in ERROR until pc_http1_reset().
 *
 * A caller wanting to stop after the head (e.g. to send `100 Continue`, to run
 * a policy, or to apply backpressure) simply does not call feed again until it
 * is ready; nothing is lost.
 *
 * Framing rules (RFC 9112 §6), strict where laxity enables request smuggling:
 *  - requests: Transfer-Encoding (only exactly `chunked`, once, and only in
 *    HTTP/1.1) → CHUNKED; else Content-Length → LENGTH; else no body.
 *    Other transfer codings → 501. TE with CL, or differing CL values, or a
 *    malformed / overflowing CL → 400. Identical repeated CL values (also
 *    "5, 5") are accepted.
 *  - responses: no body for 1xx, 204, 304 and answers to HEAD
 *    (pc_http1_expect_head_response()); else TE chunked / CL as above; else
 *    UNTIL_CLOSE (body ends at pc_http1_eof(), keep_alive = false).
 *  - CRLF line endings only (bare LF / bare CR → 400); no obs-fold; no
 *    whitespace between field name and colon; field names are tokens; values
 *    must not contain CTLs other than HTAB.
 *  - HTTP/1.1 requests need exactly one Host header; more than one → 400.
 *  - chunk sizes: hex, at most 15 digits (no overflow), chunk extensions are
 *    skipped (bounded), trailers skipped (bounded by PC_HTTP1_MAX_HEAD).
 *  - up to 2 empty lines before a request line are ignored (RFC 9112 §2.2).
 */
#ifndef PC_HTTP_HTTP1_H
#define PC_HTTP_HTTP1_H

#include "core/common.h"

#define PC_HTTP1_MAX_HEAD (64u * 1024u) /* request/status line + fields + final CRLF */
#define PC_HTTP1_MAX_HEADERS 128u
#define PC_HTTP1_MAX_TARGET (16u * 1024u) /* longer request-target → 414 */
#define PC_HTTP1_MAX_CHUNK_LINE 4096u     /* chunk size + extensions */

/** A byte range inside the caller's buffer. Not NUL-terminated. */
typedef struct pc_http1_span {
    const char *p;
    size_t n;
} pc_http1_span_t;

typedef struct pc_http1_header {
    pc_http1_span_t name;  /* as received (case preserved) */
    pc_http1_span_t value; /* leading/trailing OWS removed */
} pc_http1_header_t;

typedef enum {
    PC_HTTP1_NEED_MORE = 0,
    PC_HTTP1_HEAD,
    PC_HTTP1_DATA,
    PC_HTTP1_END,
    PC_HTTP1_ERROR,
} pc_http1_event_t;

typedef enum {
    PC_HTTP1_BODY_NONE = 0,    /* no body bytes follow the head */
    PC_HTTP1_BODY_LENGTH,      /* exactly msg.content_length bytes */
    PC_HTTP1_BODY_CHUNKED,     /* Transfer-Encoding: chunked */
    PC_HTTP1_BODY_UNTIL_CLOSE, /* responses only: ends with the connection */
} pc_http1_body_t;

typedef enum {
    PC_HTTP1_M_OTHER = 0, /* any other token method: see msg.method_name */
    PC_HTTP1_M_GET,
    PC_HTTP1_M_HEAD,
    PC_HTTP1_M_PUT,
    PC_HTTP1_M_POST,
    PC_HTTP1_M_DELETE,
    PC_HTTP1_M_OPTIONS,
    PC_HTTP1_M_PATCH,
    PC_HTTP1_M_CONNECT,
    PC_HTTP1_M_TRACE,
} pc_http1_method_t;

/** One parsed head. Every span points into the buffer of the HEAD call. */
typedef struct pc_http1_msg {
    bool is_request;
    /* requests */
    pc_http1_method_t method;
    pc_http1_span_t method_name; /* exact method token (case-sensitive per RFC) */
    pc_http1_span_t target;      /* raw request-target, exactly as received */
    pc_http1_span_t path;        /* target up to (not including) '?' */
    pc_http1_span_t query;       /* after '?' (may be empty); raw, not decoded */
    bool has_query;              /* a '?' was present */
    /* responses */
    int status; /* 100..999 */
    pc_http1_span_t reason;
    /* both */
    int version_minor; /* HTTP/1.<version_minor>: 0 or 1 */
    size_t nheaders;
    pc_http1_header_t headers[PC_HTTP1_MAX_HEADERS];
    pc_http1_body_t body;
    uint64_t content_length; /* BODY_LENGTH only; 0 otherwise */
    bool keep_alive;         /* connection may carry another message after this one */
    bool expect_continue;    /* request has `Expect: 100-continue` */
    size_t head_len;         /* bytes of the head including the final CRLF CRLF */
} pc_http1_msg_t;

typedef struct pc_http1 {
    pc_http1_msg_t msg;
    int error_status;  /* set with ERROR: 400, 414, 431, 501, 505 (502 fits responses) */
    const char *error; /* set with ERROR: static text */
    /* private state below: do not touch */
    bool pc__response;
    bool pc__head_response;
    uint8_t pc__state;
    uint8_t pc__sub;
    size_t pc__scanned;
    uint64_t pc__remaining;
    size_t pc__line;
} pc_http1_t;

/** Initialise for a stream of requests (is_response = false) or responses. */
void pc_http1_init(pc_http1_t *p, bool is_response);
/** Back to "expecting a head", clearing an ERROR. Same direction as before. */
void pc_http1_reset(pc_http1_t *p);
/**
 * Responses: the NEXT response answers a HEAD request (so it has no body,
 * whatever its headers say). Call before feeding that response's head; it is
 * cleared when that response ends. A 1xx interim response does not clear it.
 */
void pc_http1_expect_head_response(pc_http1_t *p);

/**
 * Feed bytes; see the file comment. len may be 0. consumed and data must be
 * non-NULL; *data is set only for DATA.
 */
pc_http1_event_t pc_http1_feed(pc_http1_t *p, const char *buf, size_t len, size_t *consumed,
                               pc_http1_span_t *data);

/**
 * The peer closed its side. Returns END if that completes an UNTIL_CLOSE body,
 * NEED_MORE if the parser was idle between messages (clean close), ERROR
 * (error_status 400/502) if a message was cut short.
 */
pc_http1_event_t pc_http1_eof(pc_http1_t *p);

/** True between messages (no partial head or body pending). */
bool pc_http1_idle(const pc_http1_t *p);

/* ---------- helpers on parsed heads ---------- */

/** Case-insensitive equality of a span and a NUL-terminated ASCII string. */
bool pc_http1_span_ieq(pc_http1_span_t s, const char *lit);
/**
 * Index of the first header named `name` (case-insensitive) at index >= from,
 * or -1. Iterate duplicates with from = previous + 1.
 */
int pc_http1_find(const pc_http1_msg_t *m, const char *name, size_t from);
/** Value of the first header named `name`, or NULL (pointer into m). */
const pc_http1_span_t *pc_http1_get(const pc_http1_msg_t *m, const char *name);
/** Canonical reason phrase for a status ("OK", "Not Found", ...; "Unknown" otherwise). */
const char *pc_http1_reason(int status);

/* ---------- chunked output ---------- */

/** Enough for "%zx\r\n" of any size_t. */
#define PC_HTTP1_CHUNK_HEADER_MAX 20u
/** What ends every chunk's data. */
#define PC_HTTP1_CHUNK_END "\r\n"
/** The last chunk with no trailers: ends a chunked body. */
#define PC_HTTP1_CHUNK_LAST "0\r\n\r\n"
/**
 * Write the chunk header "<hex len>\r\n" for a chunk of len > 0 bytes into out
 * (not NUL-terminated); returns its length. The caller then writes the data
 * and PC_HTTP1_CHUNK_END. (len == 0 would be the last chunk: use CHUNK_LAST.)
 */
size_t pc_http1_chunk_header(char out[PC_HTTP1_CHUNK_HEADER_MAX], size_t len);

#endif
