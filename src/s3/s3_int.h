/* Internals shared by the files of src/s3/ (session.c, upstream.c, rewrite.c). Not API. */
#ifndef PC_S3_S3_INT_H
#define PC_S3_S3_INT_H

#include "core/common.h"
#include "core/config.h"
#include "http/http1.h"
#include "s3/sigv4.h"

#include <uv.h>

/* ---------- upstream endpoints (rewrite.c) ---------- */

/** A resource's `endpoint` URL split up: scheme, host, port, Host header value. */
typedef struct pc__s3_endpoint {
    bool https;
    char host[256]; /* without brackets for IPv6 */
    int port;
    char host_header[280]; /* host[:port], the port only when not the scheme's default */
} pc__s3_endpoint_t;

/** "http(s)://host[:port][/]" -> *out. A path, user info, query or fragment is refused. */
bool pc__s3_endpoint_parse(const char *url, pc__s3_endpoint_t *out) PC_WUR;

/*
 * Client headers that do not go upstream as they are: hop-by-hop headers
 * (RFC 9110 §7.6.1), everything the client's signature consists of (it is
 * re-created with the resource's credentials), Host (the endpoint's),
 * framing (Content-Length / Transfer-Encoding are re-created for the body we
 * send) and Expect (the connector answers 100-continue itself).
 * name: any case, not NUL-terminated.
 */
bool pc__s3_drop_request_header(const char *name, size_t len);
/** Upstream response headers not passed to the client (hop-by-hop). */
bool pc__s3_drop_response_header(const char *name, size_t len);

/**
 * Content-Encoding without the "aws-chunked" token (the body we send upstream
 * is decoded). Writes into out (cap bytes) and returns the length; 0 = the
 * header goes away entirely.
 */
size_t pc__s3_strip_aws_chunked(const char *value, size_t len, char *out, size_t cap);

/**
 * Query string without presigned-URL authentication parameters (X-Amz-Algorithm,
 * X-Amz-Credential, X-Amz-Date, X-Amz-Expires, X-Amz-SignedHeaders,
 * X-Amz-Signature, X-Amz-Security-Token). The rest keeps its order and bytes.
 * Returns the length written to out (cap must be >= len + 1; NUL-terminated).
 */
size_t pc__s3_strip_presign_params(const char *query, size_t len, char *out, size_t cap);

/** v in decimal into out, NUL-terminated; returns the digit count (no printf on hot paths). */
size_t pc__s3_u64_dec(uint64_t v, char out[21]);

typedef enum { PC__S3_FRAME_NONE, PC__S3_FRAME_LENGTH, PC__S3_FRAME_CHUNKED } pc__s3_framing_t;

/** What the re-signed upstream request is made of. Everything is borrowed. */
typedef struct pc__s3_upstream_req {
    const pc_http1_msg_t *msg; /* the client's request head */
    const char *bucket; /* virtual-hosted request: its bucket (path gets "/bucket"); else NULL */
    const pc__s3_endpoint_t *ep;
    const char *payload_hash; /* x-amz-content-sha256 to send and sign */
    bool decoded_aws_chunked; /* the body goes decoded: drop the aws-chunked headers */
    pc__s3_framing_t framing;
    uint64_t content_length;                  /* FRAME_LENGTH */
    const char *access_key, *secret, *region; /* the resource's */
    const char *amz_date;                     /* YYYYMMDDTHHMMSSZ */
    pc_sigv4_key_cache_t *cache;              /* may be NULL */
} pc__s3_upstream_req_t;

/**
 * The upstream request head (malloc'd, *len bytes, not NUL-terminated):
 * "<method> <path-style target without presign parameters> HTTP/1.1", Host
 * of the endpoint, fresh x-amz-date / x-amz-content-sha256, the client's
 * end-to-end headers (pc__s3_drop_request_header), framing per `framing`,
 * and an Authorization signed with the resource's key over host, x-amz-*,
 * content-type and content-md5. NULL with *err_code set to an S3 error code
 * ("InternalError": missing credentials or signing failed;
 * "RequestHeaderSectionTooLarge").
 */
uint8_t *pc__s3_upstream_head(const pc__s3_upstream_req_t *in, size_t *len, const char **err_code);

/* ---------- upstream connection pool (upstream.c) ---------- */

typedef struct pc__s3_upool pc__s3_upool_t;
typedef struct pc__s3_up pc__s3_up_t;

/* What a connection's current owner (one request of a client session) hears. */
typedef struct pc__s3_up_cbs {
    /** The connection is usable (connected, TLS done), or failed (err set; it is gone). */
    void (*ready)(pc__s3_up_t *u, void *arg, const char *err);
    /** Plaintext bytes from the server. The owner may release u from here. */
    void (*data)(pc__s3_up_t *u, void *arg, const uint8_t *p, size_t n);
    /** The server closed or the connection failed; u is gone when this returns. */
    void (*closed)(pc__s3_up_t *u, void *arg, const char *err);
    /** A write finished: the owner may resume reading its client. */
    void (*written)(pc__s3_up_t *u, void *arg);
} pc__s3_up_cbs_t;

/** Per-worker pool (idle keep-alive connections per endpoint). */
pc__s3_upool_t *pc__s3_upool_new(uv_loop_t *loop);
/** Close idle connections and free the pool once their handles are closed. NULL ok. */
void pc__s3_upool_close(pc__s3_upool_t *p);

/**
 * A connection to ep for one request: an idle pooled one (*reused = true,
 * ready at once: no `ready` call) or a new one (`ready` comes later).
 * NULL with err on immediate failure.
 */
pc__s3_up_t *pc__s3_up_acquire(pc__s3_upool_t *p, const pc__s3_endpoint_t *ep,
                               const pc__s3_up_cbs_t *cbs, void *arg, bool *reused, char *err,
                               size_t errlen);
/** Queue bytes (copied) to the server. False: the connection failed (it closes). */
bool pc__s3_up_write(pc__s3_up_t *u, const void *p, size_t n) PC_WUR;
/** Bytes queued to the server and not yet written to the socket. */
size_t pc__s3_up_queued(const pc__s3_up_t *u);

/** Pause / resume reading from the server (backpressure). */
void pc__s3_up_set_reading(pc__s3_up_t *u, bool on);
/**
 * The owner is done: reusable (a complete response was read and the request
 * fully sent) puts it back into the pool, else it is closed. No callback
 * reaches the owner afterwards.
 */
void pc__s3_up_release(pc__s3_up_t *u, bool reusable);
/**
 * Abort the request in progress: the connection is reset (RST, not FIN) so
 * the server never sees a complete body. No callback reaches the owner.
 */
void pc__s3_up_abort(pc__s3_up_t *u);
/** Connections of this pool: open in total / idle. */
size_t pc__s3_upool_open(const pc__s3_upool_t *p);
size_t pc__s3_upool_idle(const pc__s3_upool_t *p);

#endif
