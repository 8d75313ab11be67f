/*
 * Internals of the health server, split out so that unit tests and the fuzz
 * target drive them without sockets: an incremental HTTP/1.x request reader
 * (over Debian's http-parser) and the router that turns a request and a view
 * into a response.
 */
#ifndef PC_HEALTH_HTTP_H
#define PC_HEALTH_HTTP_H

#include "health/health.h"

#include <http_parser.h>

/* A request, headers included, larger than this is refused (431) and the connection closed. */
#define PC__HEALTH_MAX_REQUEST 8192
#define PC__HEALTH_MAX_PATH 256

typedef struct pc__health_req {
    enum http_method method;
    char path[PC__HEALTH_MAX_PATH]; /* without the query string */
    bool path_too_long;
    bool keep_alive;
} pc__health_req_t;

typedef struct pc__health_reader {
    http_parser parser;
    pc__health_req_t cur;
    size_t url_len;
    size_t request_bytes; /* bytes of the current request seen so far */
    bool complete;
} pc__health_reader_t;

typedef enum { PC__HEALTH_NEED_MORE, PC__HEALTH_REQUEST, PC__HEALTH_TOO_LARGE,
               PC__HEALTH_BAD } pc__health_read_t;

void pc__health_reader_init(pc__health_reader_t *r);

/**
 * Feed bytes. REQUEST: *out holds one complete request and *consumed says how
 * many bytes it used (call again with the rest: pipelining). NEED_MORE: all
 * bytes consumed. TOO_LARGE / BAD: answer with an error and close.
 */
pc__health_read_t pc__health_read(pc__health_reader_t *r, const char *data, size_t len,
                                  size_t *consumed, pc__health_req_t *out);

/**
 * Build the full HTTP/1.1 response for req (malloc'd, length in *len).
 * close_after: the connection is closed once it is written.
 */
char *pc__health_respond(const pc__health_req_t *req, const pc_health_view_t *view,
                         bool close_after, size_t *len);

/** A canned error response (400, 431) that ends with Connection: close. */
char *pc__health_error_response(int status, size_t *len);

#endif
