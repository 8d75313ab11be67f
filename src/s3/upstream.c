/*
 * Upstream HTTP connections of the S3 module: connect (plain TCP, or TLS over
 * memory BIOs for https endpoints, verifying the server against the system
 * CAs), move bytes, and keep idle keep-alive connections per worker and
 * endpoint for the next request. HTTP framing is the session's job: this file
 * only carries bytes and tells the owner what happened.
 *
 * Lifetime: a connection belongs to one request at a time (its owner) or to
 * the pool's idle list. Its memory goes in the close callback of its last
 * handle; once released, the owner never hears from it again.
 */
#include "s3/s3_int.h"

#include "core/log.h"
#include "net/session.h"
#include "net/tls.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#define UP_CHUNK (64 * 1024)
#define IDLE_KEEP_PER_POOL 64
#define IDLE_TIMEOUT_MS 30000
#define CONNECT_TIMEOUT_MS 15000

typedef enum { UP_RESOLVING, UP_CONNECTING, UP_TLS, UP_BUSY, UP_IDLE, UP_CLOSING } up_state_t;

struct pc__s3_upool {
    uv_loop_t *loop;
    pc__s3_up_t *idle; /* most recently used first */
    size_t n_idle, n_open;
    bool closing;
};

struct pc__s3_up {
    pc__s3_up_t *prev, *next; /* idle list */
    pc__s3_upool_t *pool;
    up_state_t state;
    pc__s3_endpoint_t ep;
    uv_tcp_t tcp;
    uv_timer_t timer; /* connect timeout / idle expiry */
    uv_connect_t connect_req;
    uv_getaddrinfo_t gai;
    int open_handles; /* and the resolver request while `resolving` */
    bool resolving;
    bool reading;
    pc_tls_t *tls;
    const pc__s3_up_cbs_t *cbs;
    void *arg;
};

typedef struct up_wreq {
    uv_write_t req;
    pc__s3_up_t *u;
    uint8_t *data;
} up_wreq_t;

static _Thread_local uint8_t tl_read_buf[UP_CHUNK];
static _Thread_local uint8_t tl_plain_buf[UP_CHUNK];

static void up_fail(pc__s3_up_t *u, const char *err);

/* ---------- TLS context (process-wide) ---------- */

static SSL_CTX *client_tls_ctx(char *err, size_t errlen)
{
    static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
    static SSL_CTX *ctx;
    pthread_mutex_lock(&mu);
    if (!ctx) ctx = pc_tls_client_ctx(true, NULL, err, errlen);
    SSL_CTX *c = ctx;
    pthread_mutex_unlock(&mu);
    return c;
}

/* ---------- pool ---------- */

pc__s3_upool_t *pc__s3_upool_new(uv_loop_t *loop)
{
    pc__s3_upool_t *p = calloc(1, sizeof *p);
    if (p) p->loop = loop;
    return p;
}

static void idle_unlink(pc__s3_up_t *u)
{
    pc__s3_upool_t *p = u->pool;
    if (u->prev)
        u->prev->next = u->next;
    else
        p->idle = u->next;
    if (u->next) u->next->prev = u->prev;
    u->prev = u->next = NULL;
    p->n_idle--;
}

/* Handles and a resolver request in flight keep u alive. */
static void up_unref(pc__s3_up_t *u)
{
    if (--u->open_handles > 0) return;
    pc__s3_upool_t *p = u->pool;
    p->n_open--;
    pc_tls_free(u->tls);
    free(u);
    if (p->closing && p->n_open == 0) free(p);
}

static void up_handle_closed(uv_handle_t *h)
{
    up_unref(h->data);
}

static void up_close_how(pc__s3_up_t *u, bool reset)
{
    if (u->state == UP_CLOSING) return;
    if (u->state == UP_IDLE) idle_unlink(u);
    u->state = UP_CLOSING;
    u->cbs = NULL;
    u->arg = NULL;
    uv_close((uv_handle_t *)&u->timer, up_handle_closed);
    /* uv_close cancels a pending connect; a resolver request still holds a
     * reference and its callback sees UP_CLOSING. */
    if (u->resolving) (void)uv_cancel((uv_req_t *)&u->gai);
    /* A reset, unlike a FIN, cannot be mistaken for the end of a body by a
     * server that reads "until the connection ends". */
    if (!reset || uv_tcp_close_reset(&u->tcp, up_handle_closed) != 0)
        uv_close((uv_handle_t *)&u->tcp, up_handle_closed);
}

static void up_close(pc__s3_up_t *u)
{
    up_close_how(u, false);
}

void pc__s3_up_abort(pc__s3_up_t *u)
{
    if (u) up_close_how(u, true);
}

void pc__s3_upool_close(pc__s3_upool_t *p)
{
    if (!p) return;
    p->closing = true;
    while (p->idle)
        up_close(p->idle);
    if (p->n_open == 0) free(p);
    /* Busy connections are closed by their sessions (terminate_all ran first);
     * the last close frees the pool. */
}

size_t pc__s3_upool_open(const pc__s3_upool_t *p)
{
    return p ? p->n_open : 0;
}

size_t pc__s3_upool_idle(const pc__s3_upool_t *p)
{
    return p ? p->n_idle : 0;
}

/* ---------- I/O ---------- */

static void up_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)h;
    (void)suggested;
    *buf = uv_buf_init((char *)tl_read_buf, sizeof tl_read_buf);
}

static void up_on_write(uv_write_t *req, int status)
{
    up_wreq_t *r = (up_wreq_t *)req;
    pc__s3_up_t *u = r->u;
    free(r->data);
    free(r);
    if (u->state == UP_CLOSING) return;
    if (status < 0) {
        up_fail(u, uv_strerror(status));
        return;
    }
    if (u->state == UP_BUSY && u->cbs && u->cbs->written) u->cbs->written(u, u->arg);
}

static bool raw_write(pc__s3_up_t *u, uint8_t *data, size_t n)
{
    /* Nothing queued: write at once (see pc_net_write_now); the callback that
     * resumes a paused body only matters for bytes that had to queue. */
    size_t done = pc_net_write_now((uv_stream_t *)&u->tcp, data, n);
    if (done == n) {
        free(data);
        return true;
    }
    up_wreq_t *r = malloc(sizeof *r);
    if (!r) {
        free(data);
        return false;
    }
    r->u = u;
    r->data = data;
    uv_buf_t b = uv_buf_init((char *)data + done, (unsigned)(n - done));
    if (uv_write(&r->req, (uv_stream_t *)&u->tcp, &b, 1, up_on_write) < 0) {
        free(data);
        free(r);
        return false;
    }
    return true;
}

static bool tls_flush(pc__s3_up_t *u)
{
    while (u->tls && pc_tls_pending(u->tls) > 0) {
        size_t want = pc_tls_pending(u->tls);
        if (want > UP_CHUNK) want = UP_CHUNK;
        uint8_t *c = malloc(want);
        if (!c) return false;
        size_t n = pc_tls_take(u->tls, c, want);
        if (!n) {
            free(c);
            break;
        }
        if (!raw_write(u, c, n)) return false;
    }
    return true;
}

bool pc__s3_up_write(pc__s3_up_t *u, const void *p, size_t n)
{
    if (u->state != UP_BUSY) return false;
    if (!n) return true;
    bool ok;
    if (u->tls) {
        ok = pc_tls_write(u->tls, p, n) && tls_flush(u);
    } else {
        uint8_t *c = malloc(n);
        ok = c != NULL;
        if (ok) {
            memcpy(c, p, n);
            ok = raw_write(u, c, n);
        }
    }
    if (!ok) up_close(u); /* the owner learns it from the false return */
    return ok;
}

size_t pc__s3_up_queued(const pc__s3_up_t *u)
{
    return uv_stream_get_write_queue_size((const uv_stream_t *)&u->tcp);
}

static void up_on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf);

static void set_reading(pc__s3_up_t *u, bool on)
{
    if (on == u->reading || u->state == UP_CLOSING) return;
    if (on) {
        if (uv_read_start((uv_stream_t *)&u->tcp, up_alloc, up_on_read) == 0) u->reading = true;
    } else {
        uv_read_stop((uv_stream_t *)&u->tcp);
        u->reading = false;
    }
}

void pc__s3_up_set_reading(pc__s3_up_t *u, bool on)
{
    if (u->state == UP_BUSY) set_reading(u, on);
}

/* Tell the owner (if any) and close. */
static void up_fail(pc__s3_up_t *u, const char *err)
{
    if (u->state == UP_CLOSING) return;
    const pc__s3_up_cbs_t *cbs = u->cbs;
    void *arg = u->arg;
    bool was_setup = u->state < UP_BUSY;
    up_close(u);
    if (!cbs) return;
    if (was_setup)
        cbs->ready(u, arg, err);
    else
        cbs->closed(u, arg, err);
}

static void became_ready(pc__s3_up_t *u)
{
    uv_timer_stop(&u->timer);
    u->state = UP_BUSY;
    if (u->cbs) u->cbs->ready(u, u->arg, NULL);
}

static void deliver(pc__s3_up_t *u, const uint8_t *p, size_t n)
{
    if (u->state == UP_IDLE) {
        /* A server talking without a request: nothing can make sense of it. */
        up_close(u);
        return;
    }
    if (u->state == UP_BUSY && u->cbs) u->cbs->data(u, u->arg, p, n);
}

static void up_on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    pc__s3_up_t *u = stream->data;
    if (u->state == UP_CLOSING) return;
    if (nread < 0) {
        up_fail(u, nread == UV_EOF ? "connection closed by server" : uv_strerror((int)nread));
        return;
    }
    if (nread == 0) return;
    if (!u->tls) {
        deliver(u, (const uint8_t *)buf->base, (size_t)nread);
        return;
    }
    if (!pc_tls_feed(u->tls, buf->base, (size_t)nread)) {
        up_fail(u, "tls error");
        return;
    }
    if (!pc_tls_handshake_done(u->tls)) {
        pc_tls_status_t st = pc_tls_handshake(u->tls);
        if (!tls_flush(u)) {
            up_fail(u, "out of memory");
            return;
        }
        if (st == PC_TLS_ERROR) {
            char msg[300];
            snprintf(msg, sizeof msg, "tls handshake failed: %s", pc_tls_error(u->tls));
            up_fail(u, msg);
            return;
        }
        if (st != PC_TLS_OK) return;
        became_ready(u);
        if (u->state == UP_CLOSING) return;
    }
    for (;;) {
        /* The owner may release (pool or close) u from its data callback. */
        if (u->state != UP_BUSY && u->state != UP_IDLE) return;
        size_t got = 0;
        pc_tls_status_t st = pc_tls_read(u->tls, tl_plain_buf, sizeof tl_plain_buf, &got);
        if (st == PC_TLS_OK) {
            deliver(u, tl_plain_buf, got);
            continue;
        }
        if (!tls_flush(u)) {
            up_fail(u, "out of memory");
            return;
        }
        if (st == PC_TLS_WANT) return;
        up_fail(u, st == PC_TLS_CLOSED ? "connection closed by server" : "tls error");
        return;
    }
}

/* ---------- connecting ---------- */

static void on_timer(uv_timer_t *t)
{
    pc__s3_up_t *u = t->data;
    if (u->state == UP_IDLE) {
        up_close(u);
        return;
    }
    if (u->state < UP_BUSY) up_fail(u, "connect timed out");
}

static void on_connected(uv_connect_t *req, int status)
{
    pc__s3_up_t *u = req->data;
    if (u->state == UP_CLOSING) return;
    if (status < 0) {
        up_fail(u, uv_strerror(status));
        return;
    }
    uv_tcp_nodelay(&u->tcp, 1);
    set_reading(u, true);
    if (!u->ep.https) {
        became_ready(u);
        return;
    }
    char err[256];
    SSL_CTX *ctx = client_tls_ctx(err, sizeof err);
    u->tls = ctx ? pc_tls_new_client(ctx, u->ep.host) : NULL;
    if (!u->tls) {
        up_fail(u, ctx ? "tls setup failed" : err);
        return;
    }
    u->state = UP_TLS;
    (void)pc_tls_handshake(u->tls); /* ClientHello */
    if (!tls_flush(u)) up_fail(u, "out of memory");
}

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    pc__s3_up_t *u = req->data;
    u->resolving = false;
    if (u->state != UP_CLOSING) {
        if (status < 0 || !res)
            up_fail(u, status < 0 ? uv_strerror(status) : "host not found");
        else {
            u->state = UP_CONNECTING;
            u->connect_req.data = u;
            int rc = uv_tcp_connect(&u->connect_req, &u->tcp, res->ai_addr, on_connected);
            if (rc < 0) up_fail(u, uv_strerror(rc));
        }
    }
    uv_freeaddrinfo(res);
    up_unref(u);
}

pc__s3_up_t *pc__s3_up_acquire(pc__s3_upool_t *p, const pc__s3_endpoint_t *ep,
                               const pc__s3_up_cbs_t *cbs, void *arg, bool *reused, char *err,
                               size_t errlen)
{
    *reused = false;
    for (pc__s3_up_t *u = p->idle; u; u = u->next) {
        if (u->ep.https != ep->https || u->ep.port != ep->port || strcmp(u->ep.host, ep->host))
            continue;
        idle_unlink(u);
        uv_timer_stop(&u->timer);
        u->state = UP_BUSY;
        u->cbs = cbs;
        u->arg = arg;
        set_reading(u, true);
        *reused = true;
        return u;
    }
    pc__s3_up_t *u = calloc(1, sizeof *u);
    if (!u) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    u->pool = p;
    u->ep = *ep;
    u->cbs = cbs;
    u->arg = arg;
    u->state = UP_RESOLVING;
    if (uv_tcp_init(p->loop, &u->tcp) < 0 || uv_timer_init(p->loop, &u->timer) < 0) {
        /* uv_tcp_init only fails before touching the loop's handle queue. */
        free(u);
        snprintf(err, errlen, "out of resources");
        return NULL;
    }
    u->tcp.data = u;
    u->timer.data = u;
    u->open_handles = 2;
    p->n_open++;
    uv_timer_start(&u->timer, on_timer, CONNECT_TIMEOUT_MS, 0);

    struct sockaddr_in a4;
    struct sockaddr_in6 a6;
    const struct sockaddr *sa = uv_ip4_addr(ep->host, ep->port, &a4) == 0   ? (void *)&a4
                                : uv_ip6_addr(ep->host, ep->port, &a6) == 0 ? (void *)&a6
                                                                            : NULL;
    if (sa) {
        u->state = UP_CONNECTING;
        u->connect_req.data = u;
        if (uv_tcp_connect(&u->connect_req, &u->tcp, sa, on_connected) < 0) goto fail_now;
        return u;
    }
    char port[16];
    snprintf(port, sizeof port, "%d", ep->port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    u->gai.data = u;
    if (uv_getaddrinfo(p->loop, &u->gai, on_resolved, ep->host, port, &hints) < 0) goto fail_now;
    u->resolving = true;
    u->open_handles++;
    return u;

fail_now:
    snprintf(err, errlen, "cannot connect to %s:%d", ep->host, ep->port);
    up_close(u);
    return NULL;
}

void pc__s3_up_release(pc__s3_up_t *u, bool reusable)
{
    if (!u || u->state == UP_CLOSING) return;
    pc__s3_upool_t *p = u->pool;
    u->cbs = NULL;
    u->arg = NULL;
    if (!reusable || u->state != UP_BUSY || p->closing || p->n_idle >= IDLE_KEEP_PER_POOL ||
        pc__s3_up_queued(u) > 0) {
        up_close(u);
        return;
    }
    u->state = UP_IDLE;
    u->prev = NULL;
    u->next = p->idle;
    if (p->idle) p->idle->prev = u;
    p->idle = u;
    p->n_idle++;
    set_reading(u, true); /* notice a server that closes an idle connection */
    uv_timer_start(&u->timer, on_timer, IDLE_TIMEOUT_MS, 0);
}
