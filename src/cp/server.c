/*
 * HTTP/1.1 transport of the control plane over Debian's libmicrohttpd, one
 * thread per connection: a watch stream's body reader blocks on the state's
 * condition variable until there is a snapshot or a heartbeat to send, which
 * keeps each stream's state in one place and lets a write reach every open
 * watch at once. Connections idle for PC_CP_DEAD_PEER_MS (a watcher that stops
 * reading stalls our writes) are closed by the library; write errors end a
 * stream at the next heartbeat at the latest.
 *
 * Request bodies are bounded at PC_CP_MAX_BODY (413); TLS (GnuTLS inside the
 * library) when a certificate is configured.
 */
#include "cp/cp_int.h"
#include "core/log.h"
#include "core/yaml_tree.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct pc_cp_server {
    struct MHD_Daemon *daemon;
    pc_cp_t *cp;
    char *console_dir;
    char *cert_pem, *key_pem;
    int port;
};

typedef struct conn_ctx {
    char *uri; /* raw request target, query string included */
    char *body;
    size_t len, cap;
    bool started; /* headers seen */
    bool too_large;
} conn_ctx_t;

typedef struct watch_stream {
    pc_cp_watch_t *watch;
    char *line;
    size_t len, off;
} watch_stream_t;

static void *on_uri(void *cls, const char *uri, struct MHD_Connection *c)
{
    conn_ctx_t *ctx = pc_xcalloc(1, sizeof *ctx);
    ctx->uri = pc_xstrdup(uri ? uri : "/");
    return ctx;
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    conn_ctx_t *ctx = *con_cls;
    if (!ctx) return;
    if (ctx->body) explicit_bzero(ctx->body, ctx->len); /* may hold secrets */
    free(ctx->body);
    free(ctx->uri);
    free(ctx);
    *con_cls = NULL;
}

static enum MHD_Result send_buffer(struct MHD_Connection *c, int status, const char *type,
                                   const char *body, size_t len)
{
    struct MHD_Response *r =
        MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
    if (!r) return MHD_NO;
    MHD_add_response_header(r, "Content-Type", type);
    MHD_add_response_header(r, "Cache-Control", "no-store");
    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
    enum MHD_Result ret = MHD_queue_response(c, (unsigned)status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result send_response(struct MHD_Connection *c, pc_cp_response_t *resp)
{
    enum MHD_Result ret = send_buffer(c, resp->status, resp->content_type, resp->body, resp->len);
    pc_cp_response_free(resp);
    return ret;
}

static enum MHD_Result send_error(struct MHD_Connection *c, int status, const char *code,
                                  const char *msg)
{
    pc_cp_response_t r = {0};
    pc_cp_error(&r, status, code, "%s", msg);
    return send_response(c, &r);
}

/* ---------- watch streams ---------- */

static ssize_t watch_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    watch_stream_t *ws = cls;
    if (ws->off == ws->len) {
        if (ws->line) explicit_bzero(ws->line, ws->len);
        free(ws->line);
        ws->line = pc_cp_watch_next(ws->watch, &ws->len);
        ws->off = 0;
        if (!ws->line) return MHD_CONTENT_READER_END_OF_STREAM;
    }
    size_t n = ws->len - ws->off < max ? ws->len - ws->off : max;
    memcpy(buf, ws->line + ws->off, n);
    ws->off += n;
    return (ssize_t)n;
}

static void watch_free(void *cls)
{
    watch_stream_t *ws = cls;
    if (ws->line) explicit_bzero(ws->line, ws->len);
    free(ws->line);
    pc_cp_watch_close(ws->watch);
    free(ws);
    pc_log_info("watch closed");
}

static enum MHD_Result start_watch(pc_cp_server_t *s, struct MHD_Connection *c,
                                   const pc_cp_request_t *req)
{
    pc_cp_response_t err;
    pc_cp_watch_t *w = pc_cp_watch_open(s->cp, req, &err);
    if (!w) return send_response(c, &err);
    watch_stream_t *ws = pc_xcalloc(1, sizeof *ws);
    ws->watch = w;
    struct MHD_Response *r =
        MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 64 * 1024, watch_read, ws, watch_free);
    if (!r) {
        watch_free(ws);
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", "application/x-ndjson");
    MHD_add_response_header(r, "Cache-Control", "no-store");
    enum MHD_Result ret = MHD_queue_response(c, MHD_HTTP_OK, r);
    MHD_destroy_response(r);
    return ret;
}

/* ---------- console ---------- */

static const char *content_type_for(const char *name)
{
    const char *dot = strrchr(name, '.');
    if (!dot) return "application/octet-stream";
    if (!strcmp(dot, ".html")) return "text/html; charset=utf-8";
    if (!strcmp(dot, ".js")) return "text/javascript; charset=utf-8";
    if (!strcmp(dot, ".css")) return "text/css; charset=utf-8";
    if (!strcmp(dot, ".svg")) return "image/svg+xml";
    if (!strcmp(dot, ".png")) return "image/png";
    if (!strcmp(dot, ".ico")) return "image/x-icon";
    return "application/octet-stream";
}

static enum MHD_Result serve_console(pc_cp_server_t *s, struct MHD_Connection *c,
                                     const char *path)
{
    const char *name = !strcmp(path, "/") ? "index.html" : path + 1;
    /* One flat directory: a name is letters, digits, '-', '_' and one inner '.'. */
    if (!s->console_dir || !*name || strlen(name) > 64 ||
        strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.") !=
            strlen(name) ||
        name[0] == '.' || strstr(name, ".."))
        return send_error(c, 404, "not_found", "no such page");
    char file[4096], err[256];
    snprintf(file, sizeof file, "%s/%s", s->console_dir, name);
    size_t len;
    char *text = pc__read_file(file, 4u << 20, &len, err, sizeof err);
    if (!text) return send_error(c, 404, "not_found", "no such page");
    struct MHD_Response *r = MHD_create_response_from_buffer(len, text, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(text);
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", content_type_for(name));
    MHD_add_response_header(r, "Cache-Control", "no-cache");
    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(r, "X-Frame-Options", "DENY");
    MHD_add_response_header(r, "Content-Security-Policy",
                            "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'");
    enum MHD_Result ret = MHD_queue_response(c, MHD_HTTP_OK, r);
    MHD_destroy_response(r);
    return ret;
}

/* ---------- requests ---------- */

static void peer_of(struct MHD_Connection *c, char *out, size_t cap)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    out[0] = '\0';
    if (!ci || !ci->client_addr) return;
    char host[INET6_ADDRSTRLEN] = "";
    const struct sockaddr *sa = ci->client_addr;
    int port = 0;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)(const void *)sa;
        inet_ntop(AF_INET, &in->sin_addr, host, sizeof host);
        port = ntohs(in->sin_port);
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)(const void *)sa;
        inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host);
        port = ntohs(in6->sin6_port);
    }
    snprintf(out, cap, "%s:%d", host, port);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_size, void **con_cls)
{
    pc_cp_server_t *s = cls;
    conn_ctx_t *ctx = *con_cls;
    if (!ctx) return MHD_NO;
    if (!ctx->started) {
        /*
         * First call: headers only. A body somewhat over the limit is read and dropped so
         * that the client, still sending, gets the 413 rather than a reset; an absurd one
         * is refused at once and the connection closed.
         */
        ctx->started = true;
        const char *clen = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");
        if (clen && strtoull(clen, NULL, 10) > 16 * (uint64_t)PC_CP_MAX_BODY)
            return send_error(c, 413, "body_too_large", "request bodies are limited to 4 MiB");
        return MHD_YES;
    }
    if (*upload_size) {
        /* Body bytes: keep them up to the limit, then drop the rest and answer 413. */
        if (ctx->len + *upload_size > PC_CP_MAX_BODY) ctx->too_large = true;
        if (!ctx->too_large) {
            if (ctx->len + *upload_size > ctx->cap) {
                size_t cap = ctx->cap ? ctx->cap : 4096;
                while (cap < ctx->len + *upload_size) cap *= 2;
                ctx->body = pc_xrealloc(ctx->body, cap);
                ctx->cap = cap;
            }
            memcpy(ctx->body + ctx->len, upload_data, *upload_size);
            ctx->len += *upload_size;
        }
        *upload_size = 0;
        return MHD_YES;
    }
    if (ctx->too_large)
        return send_error(c, 413, "body_too_large", "request bodies are limited to 4 MiB");

    char peer[80];
    peer_of(c, peer, sizeof peer);
    const char *q = strchr(ctx->uri, '?');
    pc_cp_request_t req = {
        .method = method,
        .path = url,
        .query = q ? q + 1 : NULL,
        .authorization = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization"),
        .content_type = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Type"),
        .body = ctx->body ? ctx->body : "",
        .body_len = ctx->len,
        .peer = peer,
    };
    if (pc__cp_is_watch(&req)) return start_watch(s, c, &req);
    if (strncmp(url, "/v1/", 4) != 0 && strcmp(url, "/health") != 0) {
        if (strcmp(method, "GET") && strcmp(method, "HEAD"))
            return send_error(c, 405, "method_not_allowed", "the console is read-only");
        return serve_console(s, c, url);
    }
    pc_cp_response_t resp;
    pc_cp_handle(s->cp, &req, &resp);
    if (strcmp(method, "GET") || resp.status >= 400)
        pc_log_info("request", PC_LSTR("method", method), PC_LSTR("path", url),
                    PC_LINT("status", resp.status), PC_LSTR("peer", peer));
    return send_response(c, &resp);
}

/*
 * A watcher that vanished without closing (host down, cable cut) leaves our
 * heartbeats unacknowledged: the kernel then fails the connection after
 * PC_CP_DEAD_PEER_MS, and the next write ends the stream.
 */
static void on_connection(void *cls, struct MHD_Connection *c, void **socket_context,
                          enum MHD_ConnectionNotificationCode code)
{
    if (code != MHD_CONNECTION_NOTIFY_STARTED) return;
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (!ci) return;
    int fd = ci->connect_fd, on = 1, idle = 5, intvl = 5, cnt = 3;
    unsigned user_timeout = PC_CP_DEAD_PEER_MS;
    (void)setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof on);
    (void)setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle);
    (void)setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof intvl);
    (void)setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof cnt);
    (void)setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &user_timeout, sizeof user_timeout);
}

/* ---------- start / stop ---------- */

static char *find_console_dir(const char *configured)
{
    struct stat st;
    char path[4200];
    if (configured) return pc_xstrdup(configured);
    char exe[4000];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    const char *rel[] = {"/../web/console", "/../share/portcullis/console", "/web/console"};
    if (n > 0) {
        exe[n] = '\0';
        char *slash = strrchr(exe, '/');
        if (slash) *slash = '\0';
        for (size_t i = 0; i < PC_ARRAY_LEN(rel); i++) {
            snprintf(path, sizeof path, "%s%s/index.html", exe, rel[i]);
            if (stat(path, &st) == 0) {
                path[strlen(path) - strlen("/index.html")] = '\0';
                return pc_xstrdup(path);
            }
        }
    }
    if (stat("web/console/index.html", &st) == 0) return pc_xstrdup("web/console");
    return NULL;
}

static bool resolve_listen(const char *listen, struct sockaddr_storage *ss, bool *v6, char *err,
                           size_t errlen)
{
    char host[256];
    const char *colon = strrchr(listen, ':');
    if (!colon || colon == listen || (size_t)(colon - listen) >= sizeof host) {
        snprintf(err, errlen, "listen: expected host:port");
        return false;
    }
    memcpy(host, listen, (size_t)(colon - listen));
    host[colon - listen] = '\0';
    if (host[0] == '[' && host[strlen(host) - 1] == ']') {
        memmove(host, host + 1, strlen(host));
        host[strlen(host) - 1] = '\0';
    }
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *res = NULL;
    int rc = getaddrinfo(host, colon + 1, &hints, &res);
    if (rc != 0 || !res) {
        snprintf(err, errlen, "listen: cannot resolve %s: %s", listen, gai_strerror(rc));
        return false;
    }
    memcpy(ss, res->ai_addr, res->ai_addrlen);
    *v6 = res->ai_family == AF_INET6;
    freeaddrinfo(res);
    return true;
}

pc_cp_server_t *pc_cp_server_start(pc_cp_t *cp, const pc_cp_config_t *cfg, char *err,
                                   size_t errlen)
{
    pc_cp_server_t *s = pc_xcalloc(1, sizeof *s);
    s->cp = cp;
    s->console_dir = find_console_dir(cfg->console_dir);
    struct sockaddr_storage ss;
    bool v6 = false;
    if (!resolve_listen(cfg->listen, &ss, &v6, err, errlen)) goto fail;
    unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD |
                     MHD_USE_POLL | (v6 ? MHD_USE_IPv6 : 0);
    if (cfg->tls_cert) {
        size_t n;
        if (MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES) {
            snprintf(err, errlen, "tls: this libmicrohttpd has no TLS support");
            goto fail;
        }
        if (!(s->cert_pem = pc__read_file(cfg->tls_cert, 1u << 20, &n, err, errlen)) ||
            !(s->key_pem = pc__read_file(cfg->tls_key, 1u << 20, &n, err, errlen)))
            goto fail;
        flags |= MHD_USE_TLS;
    }
    struct MHD_OptionItem tls_opts[] = {
        {MHD_OPTION_HTTPS_MEM_CERT, 0, s->cert_pem},
        {MHD_OPTION_HTTPS_MEM_KEY, 0, s->key_pem},
        {MHD_OPTION_END, 0, NULL},
    };
    s->daemon = MHD_start_daemon(
        flags, 0, NULL, NULL, on_request, s, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
        MHD_OPTION_URI_LOG_CALLBACK, on_uri, NULL, MHD_OPTION_NOTIFY_CONNECTION, on_connection,
        NULL, MHD_OPTION_NOTIFY_COMPLETED, on_completed,
        NULL, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)(PC_CP_DEAD_PEER_MS / 1000),
        MHD_OPTION_CONNECTION_LIMIT, 1000u,
        MHD_OPTION_ARRAY, cfg->tls_cert ? tls_opts : tls_opts + 2, MHD_OPTION_END);
    if (!s->daemon) {
        snprintf(err, errlen, "listen: cannot listen on %s (in use, or bad TLS files)",
                 cfg->listen);
        goto fail;
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(s->daemon, MHD_DAEMON_INFO_BIND_PORT);
    s->port = di ? di->port : 0;
    if (!s->console_dir) pc_log_warn("console files not found; the console is off");
    return s;
fail:
    pc_cp_server_stop(s);
    return NULL;
}

int pc_cp_server_port(const pc_cp_server_t *s)
{
    return s->port;
}

void pc_cp_server_stop(pc_cp_server_t *s)
{
    if (!s) return;
    if (s->daemon) {
        pc_cp_shutdown(s->cp); /* watch streams end, so their threads can be joined */
        MHD_stop_daemon(s->daemon);
    }
    free(s->console_dir);
    if (s->key_pem) explicit_bzero(s->key_pem, strlen(s->key_pem));
    free(s->key_pem);
    free(s->cert_pem);
    free(s);
}
