/*
 * The health server's sockets: one listening TCP handle and a bounded set of
 * keep-alive connections on the main loop. Everything here is small and
 * bounded (connection count, request size, idle time) so that a misbehaving
 * prober cannot starve the process or the readiness answer.
 */
#include "health/http.h"

#include "core/log.h"

#include <stdio.h>
#include <string.h>

#define MAX_CONNS 128
/* A connection must complete a request within this time of its previous one
 * (or of connecting): bytes trickled slowly do not keep it alive. */
#define IDLE_TIMEOUT_MS 10000
#define READ_BUF 4096
/* A client that pipelines without reading is cut off rather than buffered for. */
#define MAX_PENDING_WRITES 32

typedef struct conn conn_t;

struct pc_health {
    uv_loop_t *loop;
    uv_tcp_t server;
    pc_health_view_fn view;
    void *view_arg;
    conn_t *conns;
    unsigned n_conns;
    int port;
    bool server_closed;
};

struct conn {
    conn_t *next, **pprev;
    pc_health_t *h;
    uv_tcp_t tcp;
    uv_timer_t idle;
    pc__health_reader_t reader;
    char buf[READ_BUF];
    bool closing;
    bool close_after_write;
    unsigned pending_writes;
    int handles_open;
};

typedef struct write_req {
    uv_write_t req;
    conn_t *c;
    char *data;
} write_req_t;

static void on_conn_handle_closed(uv_handle_t *handle)
{
    conn_t *c = handle->data;
    if (--c->handles_open == 0) free(c);
}

static void conn_close(conn_t *c)
{
    if (c->closing) return;
    c->closing = true;
    *c->pprev = c->next;
    if (c->next) c->next->pprev = c->pprev;
    c->h->n_conns--;
    uv_close((uv_handle_t *)&c->tcp, on_conn_handle_closed);
    uv_close((uv_handle_t *)&c->idle, on_conn_handle_closed);
}

static void on_idle(uv_timer_t *t)
{
    conn_close(t->data);
}

static void on_written(uv_write_t *req, int status)
{
    write_req_t *wr = (write_req_t *)req;
    conn_t *c = wr->c;
    free(wr->data);
    free(wr);
    c->pending_writes--;
    if (status < 0 || (c->close_after_write && c->pending_writes == 0)) conn_close(c);
}

static void send_response(conn_t *c, char *data, size_t len)
{
    write_req_t *wr = c->pending_writes < MAX_PENDING_WRITES ? malloc(sizeof *wr) : NULL;
    if (!wr) {
        free(data);
        conn_close(c);
        return;
    }
    wr->c = c;
    wr->data = data;
    uv_buf_t b = uv_buf_init(data, (unsigned)len);
    c->pending_writes++;
    if (uv_write(&wr->req, (uv_stream_t *)&c->tcp, &b, 1, on_written) != 0) {
        c->pending_writes--;
        free(data);
        free(wr);
        conn_close(c);
    }
}

static void on_alloc(uv_handle_t *handle, size_t suggested, uv_buf_t *buf)
{
    conn_t *c = handle->data;
    *buf = uv_buf_init(c->buf, sizeof c->buf);
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    conn_t *c = stream->data;
    if (nread < 0) {
        conn_close(c);
        return;
    }
    if (nread == 0 || c->closing || c->close_after_write) return;
    const char *p = buf->base;
    size_t left = (size_t)nread;
    while (left > 0 && !c->close_after_write && !c->closing) {
        size_t used = 0;
        pc__health_req_t req;
        pc__health_read_t r = pc__health_read(&c->reader, p, left, &used, &req);
        p += used;
        left -= used;
        size_t len = 0;
        if (r == PC__HEALTH_REQUEST) {
            pc_health_view_t view = {0};
            c->h->view(c->h->view_arg, &view);
            bool close_after = !req.keep_alive;
            char *resp = pc__health_respond(&req, &view, close_after, &len);
            c->close_after_write = close_after;
            send_response(c, resp, len);
            uv_timer_again(&c->idle);
            continue;
        }
        if (r == PC__HEALTH_NEED_MORE) break;
        /* Malformed or oversized: answer once and hang up. */
        c->close_after_write = true;
        char *resp = pc__health_error_response(r == PC__HEALTH_TOO_LARGE ? 431 : 400, &len);
        send_response(c, resp, len);
    }
    if (c->close_after_write && !c->closing) uv_read_stop((uv_stream_t *)&c->tcp);
}

static void on_connection(uv_stream_t *server, int status)
{
    pc_health_t *h = server->data;
    if (status < 0) return;
    conn_t *c = calloc(1, sizeof *c);
    if (!c) return;
    uv_tcp_init(h->loop, &c->tcp);
    c->tcp.data = c;
    c->h = h;
    c->handles_open = 1;
    if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0 || h->n_conns >= MAX_CONNS) {
        /* Over the cap: shed the newest prober rather than grow. */
        uv_close((uv_handle_t *)&c->tcp, on_conn_handle_closed);
        return;
    }
    uv_timer_init(h->loop, &c->idle);
    c->idle.data = c;
    c->handles_open = 2;
    c->next = h->conns;
    if (h->conns) h->conns->pprev = &c->next;
    c->pprev = &h->conns;
    h->conns = c;
    h->n_conns++;
    pc__health_reader_init(&c->reader);
    uv_tcp_nodelay(&c->tcp, 1);
    uv_timer_start(&c->idle, on_idle, IDLE_TIMEOUT_MS, IDLE_TIMEOUT_MS);
    uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
}

/* "host:port", "[v6]:port", ":port" (all addresses). */
static bool parse_listen(const char *s, struct sockaddr_storage *ss)
{
    char host[128];
    const char *colon;
    if (s[0] == '[') {
        const char *end = strchr(s, ']');
        if (!end || end[1] != ':' || (size_t)(end - s - 1) >= sizeof host) return false;
        memcpy(host, s + 1, (size_t)(end - s - 1));
        host[end - s - 1] = '\0';
        colon = end + 1;
    } else {
        colon = strrchr(s, ':');
        if (!colon || (size_t)(colon - s) >= sizeof host) return false;
        memcpy(host, s, (size_t)(colon - s));
        host[colon - s] = '\0';
        if (host[0] == '\0') snprintf(host, sizeof host, "0.0.0.0");
    }
    char *end = NULL;
    long port = strtol(colon + 1, &end, 10);
    if (colon[1] == '\0' || *end != '\0' || port < 0 || port > 65535) return false;
    if (strcmp(host, "localhost") == 0) snprintf(host, sizeof host, "127.0.0.1");
    if (uv_ip4_addr(host, (int)port, (struct sockaddr_in *)ss) == 0) return true;
    return uv_ip6_addr(host, (int)port, (struct sockaddr_in6 *)ss) == 0;
}

static void free_server(uv_handle_t *handle)
{
    free(handle->data);
}

pc_health_t *pc_health_start(uv_loop_t *loop, const char *listen, pc_health_view_fn view,
                             void *arg, char *err, size_t errlen)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    if (!listen || !parse_listen(listen, &ss)) {
        snprintf(err, errlen, "health.listen: bad address '%s' (want host:port)",
                 listen ? listen : "");
        return NULL;
    }
    pc_health_t *h = pc_xcalloc(1, sizeof *h);
    h->loop = loop;
    h->view = view;
    h->view_arg = arg;
    uv_tcp_init(loop, &h->server);
    h->server.data = h;
    int rc = uv_tcp_bind(&h->server, (const struct sockaddr *)&ss, 0);
    if (rc == 0) rc = uv_listen((uv_stream_t *)&h->server, 64, on_connection);
    if (rc != 0) {
        snprintf(err, errlen, "health.listen: cannot listen on %s: %s", listen, uv_strerror(rc));
        h->server_closed = true;
        uv_close((uv_handle_t *)&h->server, free_server);
        return NULL;
    }
    struct sockaddr_storage bound;
    int blen = sizeof bound;
    if (uv_tcp_getsockname(&h->server, (struct sockaddr *)&bound, &blen) == 0)
        h->port = ntohs(bound.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&bound)->sin6_port
                                                    : ((struct sockaddr_in *)&bound)->sin_port);
    pc_log_info("health server listening", PC_LSTR("listen", listen), PC_LINT("port", h->port));
    return h;
}

int pc_health_port(const pc_health_t *h)
{
    return h ? h->port : 0;
}

void pc_health_stop(pc_health_t *h)
{
    if (!h) return;
    while (h->conns) conn_close(h->conns);
    uv_close((uv_handle_t *)&h->server, free_server);
}
