/* Private: etcd v3 JSON gateway calls over plain HTTP (libcurl), and helpers. */
#ifndef PC_CLUSTER_ETCD_H
#define PC_CLUSTER_ETCD_H

#include "core/common.h"

#include <jansson.h>
#include <stdatomic.h>

/*
 * POST base+path with body (reference stolen). Returns the HTTP status, or
 * -1 on a transport error/timeout (an unknown outcome, per etcd-notes). On a
 * status, *resp (if non-NULL) gets the parsed JSON body or NULL.
 */
long pc__etcd_post(const char *base, const char *path, json_t *body, json_t **resp,
                   long timeout_ms);

/* A libcurl write callback collecting a body (NUL-terminated) up to 8 MiB; overflow aborts. */
typedef struct {
    char *buf;
    size_t len, cap;
    bool overflow;
} pc__etcd_membuf_t;
size_t pc__etcd_body_cb(char *p, size_t sz, size_t n, void *arg);

/* Base64 of bytes as a jansson string / decode a base64 JSON string (malloc'd, NUL-ended). */
json_t *pc__etcd_b64(const char *s, size_t n);
char *pc__etcd_unb64(const json_t *v, size_t *len);
/* The range_end that selects every key with this prefix. */
json_t *pc__etcd_prefix_end(const char *prefix);

/* A numeric field that the gateway sends as a string (IDs above 2^53). */
uint64_t pc__etcd_u64(const json_t *obj, const char *key);

/*
 * Follow a watch stream: calls on_line for every complete line of the body
 * (one JSON object each); returns when the stream ends, on_line returns
 * false, or *stop becomes true (checked about every second).
 */
typedef bool (*pc__etcd_line_fn)(void *arg, const char *line, size_t len);
long pc__etcd_stream(const char *base, const char *path, json_t *body, pc__etcd_line_fn on_line,
                     void *arg, atomic_bool *stop);

#endif
