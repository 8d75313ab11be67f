/*
 * Request reading and routing for the health server. The reader stops
 * http-parser at the end of each message (pause in on_message_complete), so
 * pipelined requests come out one at a time with the exact byte count each
 * used; a request is bounded by PC__HEALTH_MAX_REQUEST whatever its shape.
 */
#include "health/http.h"

#include "core/log.h"
#include "core/metrics.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

static pc__health_reader_t *reader_of(http_parser *p)
{
    return p->data;
}

static int on_message_begin(http_parser *p)
{
    pc__health_reader_t *r = reader_of(p);
    memset(&r->cur, 0, sizeof r->cur);
    r->url_len = 0;
    r->complete = false;
    return 0;
}

static int on_url(http_parser *p, const char *at, size_t len)
{
    pc__health_reader_t *r = reader_of(p);
    /* The URL may arrive in pieces; the query string is not part of the route. */
    for (size_t i = 0; i < len && r->url_len != SIZE_MAX; i++) {
        if (at[i] == '?' || at[i] == '#') {
            r->url_len = SIZE_MAX; /* path complete */
            break;
        }
        if (r->url_len + 1 >= sizeof r->cur.path) {
            r->cur.path_too_long = true;
            r->url_len = SIZE_MAX;
            r->cur.path[0] = '\0';
            break;
        }
        r->cur.path[r->url_len++] = at[i];
        r->cur.path[r->url_len] = '\0';
    }
    return 0;
}

static int on_message_complete(http_parser *p)
{
    pc__health_reader_t *r = reader_of(p);
    r->cur.method = (enum http_method)p->method;
    r->cur.keep_alive = http_should_keep_alive(p) != 0;
    r->complete = true;
    http_parser_pause(p, 1);
    return 0;
}

static const http_parser_settings settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_message_complete = on_message_complete,
};

void pc__health_reader_init(pc__health_reader_t *r)
{
    memset(r, 0, sizeof *r);
    http_parser_init(&r->parser, HTTP_REQUEST);
    r->parser.data = r;
}

pc__health_read_t pc__health_read(pc__health_reader_t *r, const char *data, size_t len,
                                  size_t *consumed, pc__health_req_t *out)
{
    *consumed = 0;
    if (len == 0) return PC__HEALTH_NEED_MORE;
    /* Never hand the parser more than the request may still grow by. */
    size_t room = PC__HEALTH_MAX_REQUEST - r->request_bytes;
    size_t feed = len < room ? len : room;
    size_t n = http_parser_execute(&r->parser, &settings, data, feed);
    enum http_errno e = HTTP_PARSER_ERRNO(&r->parser);
    if (e == HPE_PAUSED && r->complete) {
        http_parser_pause(&r->parser, 0);
        *out = r->cur;
        *consumed = n;
        r->request_bytes = 0;
        r->complete = false;
        return PC__HEALTH_REQUEST;
    }
    /* Stopping short without an error means an upgrade/CONNECT: not for us. */
    if (e != HPE_OK || n < feed) return PC__HEALTH_BAD;
    r->request_bytes += n;
    *consumed = n;
    if (feed < len || r->request_bytes >= PC__HEALTH_MAX_REQUEST) return PC__HEALTH_TOO_LARGE;
    return PC__HEALTH_NEED_MORE;
}

/* ---------- responses ---------- */

static const char *status_text(int status)
{
    switch (status) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 414: return "URI Too Long";
    case 431: return "Request Header Fields Too Large";
    case 503: return "Service Unavailable";
    default: return "Error";
    }
}

static char *build(int status, const char *ctype, const char *body, size_t body_len,
                   bool head_only, bool close_after, const char *extra_header, size_t *len)
{
    char head[512];
    int hl = snprintf(head, sizeof head,
                      "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                      "Cache-Control: no-store\r\n%s%sConnection: %s\r\n\r\n",
                      status, status_text(status), ctype, body_len,
                      extra_header ? extra_header : "", extra_header ? "\r\n" : "",
                      close_after ? "close" : "keep-alive");
    PC_BUG_ON(hl < 0 || (size_t)hl >= sizeof head);
    size_t total = (size_t)hl + (head_only ? 0 : body_len);
    char *out = pc_xmalloc(total + 1);
    memcpy(out, head, (size_t)hl);
    if (!head_only && body_len) memcpy(out + hl, body, body_len);
    out[total] = '\0';
    *len = total;
    return out;
}

char *pc__health_error_response(int status, size_t *len)
{
    char body[96];
    int bl = snprintf(body, sizeof body, "{\"error\":\"%s\"}\n", status_text(status));
    return build(status, "application/json", body, (size_t)bl, false, true, NULL, len);
}

static int ready_body(const pc_health_view_t *v, char *body, size_t cap)
{
    char inst[160];
    size_t pos = 0;
    const char *name = v->instance ? v->instance : "";
    const char *ex = v->extra ? v->extra : "", *ex_sep = v->extra ? "," : "";
    pc_json_escape_into(inst, sizeof inst - 1, &pos, name, strlen(name));
    inst[pos] = '\0';
    if (v->ready)
        return snprintf(body, cap,
                        "{\"ready\":true,\"revision\":%" PRIu64 ",\"instance\":\"%s\","
                        "\"workers\":%u,\"listeners\":%u%s%s}\n",
                        v->revision, inst, v->workers, v->listeners, ex_sep, ex);
    char reason[128];
    pos = 0;
    const char *rs = v->reason ? v->reason : "not ready";
    pc_json_escape_into(reason, sizeof reason - 1, &pos, rs, strlen(rs));
    reason[pos] = '\0';
    if (v->unbound)
        return snprintf(body, cap,
                        "{\"ready\":false,\"reason\":\"%s\",\"revision\":%" PRIu64
                        ",\"unbound\":%u%s%s}\n",
                        reason, v->revision, v->unbound, ex_sep, ex);
    return snprintf(body, cap,
                    "{\"ready\":false,\"reason\":\"%s\",\"revision\":%" PRIu64 "%s%s}\n",
                    reason, v->revision, ex_sep, ex);
}

char *pc__health_respond(const pc__health_req_t *req, const pc_health_view_t *view,
                         bool close_after, size_t *len)
{
    static const char json[] = "application/json";
    bool head = req->method == HTTP_HEAD;
    bool get_like = req->method == HTTP_GET || head;
    if (req->path_too_long) {
        static const char b[] = "{\"error\":\"URI Too Long\"}\n";
        return build(414, json, b, sizeof b - 1, head, close_after, NULL, len);
    }
    enum { R_NONE, R_HEALTH, R_READY, R_METRICS } route = R_NONE;
    if (strcmp(req->path, "/health") == 0 || strcmp(req->path, "/healthz") == 0) route = R_HEALTH;
    else if (strcmp(req->path, "/ready") == 0 || strcmp(req->path, "/readyz") == 0) route = R_READY;
    else if (strcmp(req->path, "/metrics") == 0) route = R_METRICS;

    if (route == R_NONE) {
        static const char b[] = "{\"error\":\"Not Found\"}\n";
        return build(404, json, b, sizeof b - 1, head, close_after, NULL, len);
    }
    if (!get_like) {
        static const char b[] = "{\"error\":\"Method Not Allowed\"}\n";
        return build(405, json, b, sizeof b - 1, false, close_after, "Allow: GET, HEAD", len);
    }
    if (route == R_HEALTH) {
        static const char b[] = "{\"status\":\"ok\"}\n";
        return build(200, json, b, sizeof b - 1, head, close_after, NULL, len);
    }
    if (route == R_READY) {
        char body[1024];
        int bl = ready_body(view, body, sizeof body);
        if (bl < 0 || (size_t)bl >= sizeof body) bl = (int)strlen(body);
        return build(view->ready ? 200 : 503, json, body, (size_t)bl, head, close_after, NULL,
                     len);
    }
    char *text = pc_metrics_render_prometheus();
    char *out = build(200, "text/plain; version=0.0.4; charset=utf-8", text, strlen(text), head,
                      close_after, NULL, len);
    free(text);
    return out;
}
