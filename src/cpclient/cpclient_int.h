/*
 * Internals of the control-plane client shared between its files, the unit
 * tests and the fuzz target: the NDJSON line splitter, the watch-stream
 * message decoder, reconnect backoff and log-batch assembly. All pure: no
 * I/O, no threads, no clock (callers pass time and randomness in).
 */
#ifndef PC_CPCLIENT_CPCLIENT_INT_H
#define PC_CPCLIENT_CPCLIENT_INT_H

#include "core/common.h"

/* ---------- NDJSON line splitter ---------- */

typedef enum { PC__NDJSON_NEED_MORE, PC__NDJSON_LINE, PC__NDJSON_ERROR } pc__ndjson_res_t;

typedef struct pc__ndjson {
    char *buf; /* partial line carried between feeds */
    size_t len, cap;
    size_t max_line; /* longest line accepted, excluding the newline */
    bool failed;     /* sticky: a line exceeded max_line */
} pc__ndjson_t;

void pc__ndjson_init(pc__ndjson_t *p, size_t max_line);
void pc__ndjson_reset(pc__ndjson_t *p); /* forget a partial line (new connection) */
void pc__ndjson_free(pc__ndjson_t *p);  /* accepts a zeroed struct */

/**
 * Consume bytes from data[0..len) and stop after the first complete,
 * non-empty line. *used tells how many bytes were consumed (call again with
 * the rest). LINE: *line / *line_len hold the line without "\n" or "\r\n",
 * valid until the next call. NEED_MORE: everything was consumed (a partial
 * line may be buffered). ERROR: a line is longer than max_line; sticky until
 * reset. Fails also (ERROR) if memory runs out.
 */
pc__ndjson_res_t pc__ndjson_feed(pc__ndjson_t *p, const char *data, size_t len, size_t *used,
                                 const char **line, size_t *line_len) PC_WUR;

/* ---------- watch-stream messages (CP-API.md) ---------- */

typedef enum { PC__CPMSG_SNAPSHOT, PC__CPMSG_HEARTBEAT, PC__CPMSG_OTHER } pc__cpmsg_type_t;

typedef struct pc__cpmsg {
    pc__cpmsg_type_t type;
    uint64_t revision;
    /* SNAPSHOT: the snapshot object re-encoded as text that the YAML loader
     * reads (the "revision" member removed: it is passed separately);
     * malloc'd, freed by pc__cpmsg_free. */
    char *snapshot_text;
    size_t snapshot_len;
} pc__cpmsg_t;

/**
 * Decode one stream line. false with a message in err when the line is not a
 * JSON object, has no string "type", or a snapshot lacks a non-negative
 * integer revision or a "snapshot" object. Unknown types decode as OTHER
 * (newer servers may add some).
 */
bool pc__cpmsg_decode(const char *line, size_t len, pc__cpmsg_t *out, char *err,
                      size_t errlen) PC_WUR;
void pc__cpmsg_free(pc__cpmsg_t *m);

/* ---------- reconnect backoff: capped exponential, full jitter ---------- */

typedef struct pc__backoff {
    uint64_t base_ms, cap_ms;
    unsigned attempt; /* failures since the last success */
} pc__backoff_t;

void pc__backoff_init(pc__backoff_t *b, uint64_t base_ms, uint64_t cap_ms);
/** Delay before the next attempt: uniform in [0, min(cap, base * 2^attempt)]; rnd is random bits.
 */
uint64_t pc__backoff_next(pc__backoff_t *b, uint64_t rnd);
void pc__backoff_reset(pc__backoff_t *b);
/** Upper bound of the delay the next call would draw from (for logs and tests). */
uint64_t pc__backoff_ceiling(const pc__backoff_t *b);

/* ---------- log batches: {"records":[r1,r2,...]} ---------- */

typedef struct pc__batch {
    char *buf;
    size_t len, cap;
    size_t max_bytes; /* whole body, brackets included */
    size_t max_records;
    size_t n;
} pc__batch_t;

void pc__batch_init(pc__batch_t *b, size_t max_records, size_t max_bytes);
void pc__batch_clear(pc__batch_t *b);
void pc__batch_free(pc__batch_t *b);

typedef enum { PC__BATCH_ADDED, PC__BATCH_FULL, PC__BATCH_INVALID } pc__batch_add_t;

/**
 * Append one record. INVALID: the record is not one JSON object (it must not
 * be shipped; skip it). FULL: it does not fit next to what the batch holds
 * (send the batch first); a record too big for an empty batch is INVALID.
 */
pc__batch_add_t pc__batch_add(pc__batch_t *b, const char *rec, size_t len);

/** The request body (valid until the next change); NULL when empty. */
const char *pc__batch_body(pc__batch_t *b, size_t *len);

/* ---------- helpers ---------- */

/** base URL (no trailing slash) + path into out; false if it does not fit. */
bool pc__cp_url(char *out, size_t cap, const char *base, const char *path) PC_WUR;

/* ---------- the shipper thread (shipper.c) ---------- */

typedef struct pc__shipper pc__shipper_t;

/** Start shipping dir's spool to url's /v1/connector/logs. NULL + err on failure. */
pc__shipper_t *pc__shipper_start(const char *url, const char *token, const char *ca_file,
                                 const char *dir, char *err,
                                 size_t errlen) PC_WUR;
/** The control plane answers again: end a backoff wait now (any thread). */
void pc__shipper_kick(pc__shipper_t *sh);
/** Records acknowledged since start (any thread). */
uint64_t pc__shipper_shipped(pc__shipper_t *sh);
/** Ship what is readable for up to timeout_ms, stop, free; returns records shipped meanwhile. */
uint64_t pc__shipper_stop(pc__shipper_t *sh, uint64_t timeout_ms);

/* ---------- curl plumbing shared by both threads (curl.c) ---------- */

/** "Authorization: Bearer ..." (+ JSON content type when json); NULL on OOM. */
struct curl_slist *pc__cp_headers(const char *token, bool json);
/** Options every request gets: no signals, TCP keep-alive, error buffer, TLS defaults. */
void pc__cp_easy_defaults(void *easy, char *errbuf, const char *ca_file);
/** CURLOPT_WRITEFUNCTION for answers whose body does not matter. */
size_t pc__cp_discard(char *data, size_t size, size_t nmemb, void *arg);
/** Monotonic milliseconds. */
uint64_t pc__cp_now_ms(void);
/** 64 random bits for jitter (never fails: falls back to the clock). */
uint64_t pc__cp_random(void);

#endif
