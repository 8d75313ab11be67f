/*
 * S3 session: one client HTTP/1.1 connection whose requests are checked,
 * judged, re-signed and relayed one at a time to the listener's resource (see
 * s3.h). Layers: transport (plain / TLS memory BIOs) under the HTTP/1.1 codec
 * (http/http1.h) under this state machine; the upstream side is upstream.c's
 * pooled connection with its own response codec.
 *
 * Memory: read buffers are per worker thread; a session keeps only the bytes
 * it has not been able to process yet (a partial head, or one read's worth of
 * body while the upstream is busy). Body bytes are copied once into the write
 * request of the other side. Reading a side pauses while the other side's
 * write queue is above WQ_HIGH and resumes below WQ_LOW.
 */
#include "s3/s3.h"

#include "audit/audit.h"
#include "core/log.h"
#include "core/metrics.h"
#include "decision/decision.h"
#include "http/http1.h"
#include "net/session.h"
#include "net/tls.h"
#include "s3/request.h"
#include "s3/s3_int.h"
#include "s3/sigv4.h"
#include "s3/xml.h"

#include <openssl/evp.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#define READ_BUF_SIZE (64 * 1024)
#define OUT_FLUSH_AT (64 * 1024)
#define WQ_HIGH (256 * 1024)
#define WQ_LOW (64 * 1024)
#define IDLE_TIMEOUT_MS 60000 /* between requests */
#define HEAD_TIMEOUT_MS 30000 /* a request head that does not complete */
#define IO_TIMEOUT_MS 300000  /* a request in flight with no byte moving either way */
#define LINGER_MS 5000        /* a closing client that does not read its answer */
#define SHA_MISMATCH_MSG                                                                           \
    "The provided 'x-amz-content-sha256' header does not match what was computed."

typedef enum {
    CS_TLS,      /* client TLS handshake (or sniffing the first byte) */
    CS_HEAD,     /* waiting for a request head */
    CS_UPSTREAM, /* request allowed; waiting for an upstream connection */
    CS_BODY,     /* streaming the request body upstream */
    CS_RESPONSE, /* request sent; relaying the response */
    CS_CLOSING,
} cstate_t;

typedef enum { UPB_NONE, UPB_LENGTH, UPB_CHUNKED } upbody_t;
typedef enum { V_NONE, V_HASH, V_AWS_CHUNKED } verify_t;

typedef struct s3_worker {
    pc_net_conns_t conns;
    pc__s3_upool_t *pool;
    bool stopping;             /* worker_stop ran: the last session frees this */
    pc_sigv4_key_cache_t keys; /* derived signing keys: verification and upstream signing */
} s3_worker_t;

typedef struct session {
    struct session *prev, *next;
    pc_worker_t *w;
    s3_worker_t *sw;
    cstate_t state;
    uint64_t id;
    uint64_t start_ns;
    int open_handles;
    uv_tcp_t *tcp;
    uv_timer_t timer;
    pc_tls_t *tls;
    bool tls_sniffing; /* tls: optional, first byte not seen yet */
    bool reading;
    bool client_gone;
    bool client_closing;
    bool processing; /* inside process_bytes */
    bool started;    /* session_start audit record written */
    char client_ip[64];

    pc_snapshot_t *snap;
    const pc_listener_cfg_t *listener;
    const pc_resource_t *resource;
    pc__s3_endpoint_t ep;
    bool ep_ok;
    char *session_user; /* user of the session_start record */

    /* client input not processed yet */
    uint8_t *in;
    size_t in_len, in_cap;
    pc_http1_t req_parser;
    /* client output batch */
    uint8_t *out;
    size_t out_len, out_cap;

    /* ---- the current request ---- */
    uint64_t req_start_ns;
    char request_id[17];
    bool req_active;
    bool is_head;
    bool client_keep_alive;
    bool close_after;  /* answer with Connection: close and end the connection */
    bool client_eof;   /* the client half-closed after its request: answer, then close */
    bool body_done;    /* the request body was read completely (or there is none) */
    bool resp_started; /* response head sent to the client */
    bool resp_done;
    pc_s3_request_t rq;
    const pc_user_t *user;
    const char *method_name;
    char method[16];
    pc_decision_t dec;
    bool judged;
    int status;
    uint64_t bytes_in, bytes_out;
    uint64_t body_len; /* request body length (BODY_LENGTH) */
    char *error;       /* audit error text */

    verify_t verify;
    EVP_MD_CTX *sha;
    uint8_t want_sha[32];
    pc_sigv4_verified_t ver;
    pc_sigv4_chunked_t ck;
    bool ck_inited;
    bool ck_ended;
    uint64_t decoded_len; /* x-amz-decoded-content-length or UINT64_MAX */
    uint8_t *held;        /* last decoded piece, sent after the final chunk verified */
    size_t held_len;

    upbody_t upbody;
    uint8_t *up_head; /* the upstream request head, kept until a response starts */
    size_t up_head_len;
    uint64_t up_sent; /* body bytes sent upstream */
    pc__s3_up_t *up;
    bool up_ready;
    bool up_reused;
    bool up_retried;
    bool up_reading; /* as last asked of upstream.c (it starts reading when connected) */
    pc_http1_t resp_parser;
    uint8_t *up_in; /* partial response head */
    size_t up_in_len, up_in_cap;
    bool resp_chunked_out; /* re-chunk the response body to the client */

    pc_net_conn_t conn; /* the worker's list and the connection metrics */
} session_t;

static void session_close(session_t *s);
static void on_idle_timeout(uv_timer_t *t);
static void io_progress(session_t *s);
static void update_reading(session_t *s);
static void client_flush(session_t *s);
static void process_client(session_t *s);
static void request_finish(session_t *s);
static void up_send_head(session_t *s);

static const pc__s3_up_cbs_t up_cbs;

static _Thread_local uint8_t tl_read_buf[READ_BUF_SIZE];
static _Thread_local uint8_t tl_plain_buf[READ_BUF_SIZE];

/* ---------- small helpers ---------- */


/*
 * Request ids only need to be unique and unguessable enough not to collide:
 * splitmix64 over a per-thread state seeded once from the CSPRNG (RAND_bytes
 * per request takes OpenSSL's locks on the hot path).
 */
static void new_request_id(char out[17])
{
    static const char hex[] = "0123456789ABCDEF";
    static _Thread_local uint64_t state;
    if (!state && RAND_bytes((unsigned char *)&state, sizeof state) != 1)
        state = pc_now_wall_ns() ^ (uint64_t)(uintptr_t)&state;
    uint64_t z = (state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    for (int i = 15; i >= 0; i--, z >>= 4)
        out[i] = hex[z & 15];
    out[16] = 0;
}

/* Room for n more bytes after *len (the buffer doubles from 4 KiB). */
static bool buf_reserve(uint8_t **b, size_t *len, size_t *cap, size_t n)
{
    if (*cap - *len >= n) return true;
    size_t c = *cap ? *cap : 4096;
    while (c - *len < n)
        c *= 2;
    uint8_t *q = realloc(*b, c);
    if (!q) return false;
    *b = q;
    *cap = c;
    return true;
}

static bool buf_append(uint8_t **b, size_t *len, size_t *cap, const void *p, size_t n)
{
    if (!n) return true;
    if (!buf_reserve(b, len, cap, n)) return false;
    memcpy(*b + *len, p, n);
    *len += n;
    return true;
}

static void buf_consume(uint8_t *b, size_t *len, size_t n)
{
    if (n >= *len) {
        *len = 0;
        return;
    }
    memmove(b, b + n, *len - n);
    *len -= n;
}

/* ---------- client output ---------- */

typedef struct wreq {
    uv_write_t req;
    session_t *s;
    uint8_t *data;
} wreq_t;

static void on_client_write(uv_write_t *req, int status)
{
    wreq_t *r = (wreq_t *)req;
    session_t *s = r->s;
    free(r->data);
    free(r);
    if (s->state == CS_CLOSING) return;
    if (status < 0) {
        s->client_gone = true;
        session_close(s);
        return;
    }
    io_progress(s);
    update_reading(s);
}

static void client_write_raw(session_t *s, uint8_t *data, size_t len)
{
    size_t done = pc_net_write_now((uv_stream_t *)s->tcp, data, len);
    if (done == len) {
        free(data);
        return;
    }
    wreq_t *r = malloc(sizeof *r);
    if (!r) {
        free(data);
        session_close(s);
        return;
    }
    r->s = s;
    r->data = data;
    uv_buf_t b = uv_buf_init((char *)data + done, (unsigned)(len - done));
    if (uv_write(&r->req, (uv_stream_t *)s->tcp, &b, 1, on_client_write) < 0) {
        free(data);
        free(r);
        s->client_gone = true;
        session_close(s);
    }
}

static void tls_drain(session_t *s)
{
    while (s->tls && pc_tls_pending(s->tls) > 0) {
        size_t want = pc_tls_pending(s->tls);
        if (want > READ_BUF_SIZE) want = READ_BUF_SIZE;
        uint8_t *c = malloc(want);
        if (!c) {
            session_close(s);
            return;
        }
        size_t n = pc_tls_take(s->tls, c, want);
        if (!n) {
            free(c);
            return;
        }
        client_write_raw(s, c, n);
        if (s->state == CS_CLOSING && s->client_gone) return;
    }
}

static void client_flush(session_t *s)
{
    if (!s->out_len || s->client_gone) return;
    uint8_t *data = s->out;
    size_t len = s->out_len;
    s->out = NULL;
    s->out_len = s->out_cap = 0;
    if (s->tls) {
        bool ok = pc_tls_write(s->tls, data, len);
        free(data);
        if (!ok) {
            s->client_gone = true;
            session_close(s);
            return;
        }
        tls_drain(s);
        return;
    }
    client_write_raw(s, data, len);
}

static void client_put(session_t *s, const void *p, size_t n)
{
    if (s->client_gone) return;
    if (!buf_append(&s->out, &s->out_len, &s->out_cap, p, n)) {
        session_close(s);
        return;
    }
    if (s->out_len >= OUT_FLUSH_AT) client_flush(s);
}

static size_t client_queued(const session_t *s)
{
    return uv_stream_get_write_queue_size((const uv_stream_t *)s->tcp) + s->out_len;
}

/* ---------- audit ---------- */

static void audit_emit(session_t *s, const pc_audit_rec_t *r)
{
    pc_spool_t *sp = pc_worker_ctx(s->w)->spool;
    if (sp) (void)pc_audit_emit(sp, r);
}

static void audit_base(session_t *s, pc_audit_rec_t *r, pc_audit_kind_t kind, const char *user)
{
    memset(r, 0, sizeof *r);
    r->kind = kind;
    r->user = user;
    r->resource = s->resource ? s->resource->name : NULL;
    r->technology = "s3";
    r->session_id = s->id;
    r->client_ip = s->client_ip;
    r->rows = -1;
    r->bytes = -1;
    r->status = -1;
}

/* A blocked session gets its start record but no session_end (as PostgreSQL). */
static void audit_session_start(session_t *s, const pc_decision_t *d)
{
    bool blocked = d->action == PC_DECISION_BLOCK;
    pc_audit_rec_t r;
    audit_base(s, &r, PC_AUDIT_SESSION_START, s->user->username);
    r.decision = blocked ? "block" : "allow";
    r.policies = d->policies[0] ? d->policies : NULL;
    r.reason = d->reason[0] ? d->reason : NULL;
    audit_emit(s, &r);
    if (!blocked) s->started = true;
}

static void audit_request(session_t *s)
{
    pc_audit_rec_t r;
    audit_base(s, &r, PC_AUDIT_REQUEST, s->user ? s->user->username : NULL);
    r.operation = s->rq.op_name ? s->rq.op_name : "Unknown";
    r.bucket = s->rq.bucket[0] ? s->rq.bucket : NULL;
    r.key = s->rq.key[0] ? s->rq.key : NULL;
    if (s->judged) {
        r.decision = s->dec.action == PC_DECISION_BLOCK ? "block" : "allow";
        r.policies = s->dec.policies[0] ? s->dec.policies : NULL;
        r.reason = s->dec.reason[0] ? s->dec.reason : NULL;
    } else {
        /* Refused before the policies (authentication, a bad request): counted
         * here, as pc_decision_eval counts the judged ones. */
        r.decision = "block";
        pc_metrics_request("block");
    }
    r.status = s->status;
    r.bytes = (int64_t)(s->bytes_in + s->bytes_out);
    r.bytes_in = (int64_t)s->bytes_in;
    r.bytes_out = (int64_t)s->bytes_out;
    r.duration_us = (pc_now_mono_ns() - s->req_start_ns) / 1000;
    r.error = s->error;
    audit_emit(s, &r);
}

/* ---------- lifecycle ---------- */

static s3_worker_t *s3_worker(pc_worker_t *w)
{
    void **slot = pc_worker_proto_slot(w, PC_TECH_S3);
    if (!*slot) {
        s3_worker_t *sw = pc_xcalloc(1, sizeof *sw);
        sw->pool = pc__s3_upool_new(pc_worker_loop(w));
        PC_BUG_ON(!sw->pool);
        pc_sigv4_key_cache_init(&sw->keys);
        *slot = sw;
    }
    return *slot;
}

static void handle_gone(session_t *s)
{
    if (--s->open_handles > 0) return;
    s3_worker_t *sw = s->sw;
    pc_net_conn_gone(&sw->conns, &s->conn);
    pc_snapshot_unref(s->snap);
    free(s);
    if (sw->stopping && !sw->conns.head) free(sw);
}

static void on_handle_closed(uv_handle_t *h)
{
    session_t *s = h->data;
    if ((uv_handle_t *)s->tcp == h) free(h); /* the worker allocated the accepted handle */
    handle_gone(s);
}

static void close_client_now(session_t *s)
{
    if (s->client_closing) return;
    s->client_closing = true;
    uv_close((uv_handle_t *)s->tcp, on_handle_closed);
    uv_close((uv_handle_t *)&s->timer, on_handle_closed);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf);

/* Lingering close: what the client still sends (a body we refused) is read
 * and dropped until it closes or the linger timer fires. Closing with unread
 * bytes would send a reset, and the client could lose the answer we wrote. */
static void on_linger_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    (void)buf;
    if (nread < 0) close_client_now(stream->data);
}

static void on_client_shutdown(uv_shutdown_t *req, int status)
{
    session_t *s = req->data;
    free(req);
    if (status < 0 || s->client_closing ||
        uv_read_start((uv_stream_t *)s->tcp, on_alloc, on_linger_read) != 0)
        close_client_now(s);
}

static void on_linger_timeout(uv_timer_t *t)
{
    close_client_now(t->data);
}

/* No request head (or no next request) in time. */
static void on_idle_timeout(uv_timer_t *t)
{
    session_close(t->data);
}

static void up_fail_answer(session_t *s, const char *err);

/* A request in flight where neither side moved a byte for IO_TIMEOUT_MS. */
static void on_io_timeout(uv_timer_t *t)
{
    session_t *s = t->data;
    if (!s->req_active || s->state == CS_CLOSING) return;
    if (s->up) pc__s3_up_abort(s->up);
    up_fail_answer(s, "timed out");
}

/* Some progress on the request in flight: push its inactivity deadline back. */
static void io_progress(session_t *s)
{
    if (s->req_active && s->state != CS_CLOSING)
        uv_timer_start(&s->timer, on_io_timeout, IO_TIMEOUT_MS, 0);
}

static void request_clear(session_t *s)
{
    if (s->sha) EVP_MD_CTX_free(s->sha);
    s->sha = NULL;
    if (s->ck_inited) pc_sigv4_chunked_free(&s->ck);
    s->ck_inited = false;
    OPENSSL_cleanse(&s->ver, sizeof s->ver);
    free(s->held);
    s->held = NULL;
    s->held_len = 0;
    free(s->up_head);
    s->up_head = NULL;
    s->up_head_len = 0;
    free(s->error);
    s->error = NULL;
    s->req_active = false;
}

static void session_close(session_t *s)
{
    if (s->state == CS_CLOSING) return;
    if (s->req_active) {
        if (!s->status) s->status = 499; /* the client left before an answer (nginx's code) */
        if (!s->error) s->error = strdup("connection closed before the response completed");
        audit_request(s);
    }
    s->state = CS_CLOSING;
    if (s->started) {
        pc_audit_rec_t r;
        audit_base(s, &r, PC_AUDIT_SESSION_END, s->session_user);
        r.duration_us = (pc_now_mono_ns() - s->start_ns) / 1000;
        audit_emit(s, &r);
    }
    if (s->up) pc__s3_up_release(s->up, false);
    s->up = NULL;
    request_clear(s);
    if (!s->client_gone) client_flush(s);
    if (s->tls && !s->client_gone) {
        pc_tls_shutdown(s->tls);
        tls_drain(s);
    }
    pc_tls_free(s->tls);
    s->tls = NULL;
    free(s->in);
    free(s->out);
    free(s->up_in);
    free(s->session_user);
    s->in = s->out = s->up_in = NULL;
    s->session_user = NULL;
    uv_read_stop((uv_stream_t *)s->tcp);
    /* uv_close would drop a queued error answer: shut the write side down
     * first (libuv completes queued writes before it), close after. */
    uv_shutdown_t *req = s->client_gone ? NULL : malloc(sizeof *req);
    if (req) {
        req->data = s;
        if (uv_shutdown(req, (uv_stream_t *)s->tcp, on_client_shutdown) == 0) {
            uv_timer_stop(&s->timer);
            uv_timer_start(&s->timer, on_linger_timeout, LINGER_MS, 0);
            return;
        }
        free(req);
    }
    close_client_now(s);
}

/* ---------- answers made by the connector ---------- */

/*
 * An S3 error document for the current request. The connection ends after it
 * when the request body was not read (we cannot tell where the next request
 * starts without reading it, and a client that sent Expect: 100-continue may
 * still send the body).
 */
static void send_error(session_t *s, const char *code, const char *message)
{
    if (s->state == CS_CLOSING) return;
    int status = pc_s3_error_status(code);
    s->status = status;
    if (!s->error) {
        char e[300];
        snprintf(e, sizeof e, "%s: %s", code,
                 message && *message ? message : pc_s3_error_default_message(code));
        s->error = strdup(e);
    }
    if (!s->body_done) s->close_after = true;
    if (pc_worker_draining(s->w)) s->close_after = true;
    char resource[PC_S3_MAX_BUCKET + PC_S3_MAX_KEY + 4];
    snprintf(resource, sizeof resource, "/%s%s%s", s->rq.bucket, s->rq.key[0] ? "/" : "",
             s->rq.key);
    size_t cap = PC_S3_ERROR_XML_BOUND(strlen(code) + (message ? strlen(message) : 64) +
                                       strlen(resource) + 16);
    char *xml = malloc(cap);
    size_t xl = xml ? pc_s3_error_xml(xml, cap, code, message, resource, s->request_id) : 0;
    char head[512];
    int hl = snprintf(head, sizeof head,
                      "HTTP/1.1 %d %s\r\nx-amz-request-id: %s\r\nServer: Portcullis\r\n"
                      "Content-Type: application/xml\r\nContent-Length: %zu\r\n%s\r\n",
                      status, pc_http1_reason(status), s->request_id, s->is_head ? 0 : xl,
                      s->close_after ? "Connection: close\r\n" : "");
    client_put(s, head, (size_t)hl);
    if (!s->is_head && xl) {
        client_put(s, xml, xl);
        s->bytes_out += xl;
    }
    free(xml);
    s->resp_started = true;
    s->resp_done = true;
    client_flush(s);
    request_finish(s);
}

/* A request that cannot be parsed at all: 400 and close. */
static void send_bad_request(session_t *s, int status, const char *why)
{
    if (!s->req_active) {
        s->req_active = true;
        s->req_start_ns = pc_now_mono_ns();
        new_request_id(s->request_id);
        memset(&s->rq, 0, sizeof s->rq);
    }
    s->body_done = false; /* close after */
    const char *code = status == 414   ? "KeyTooLongError"
                       : status == 431 ? "RequestHeaderSectionTooLarge"
                       : status == 501 ? "NotImplemented"
                                       : "InvalidRequest";
    send_error(s, code, why);
}

/* ---------- the request is over: audit, then the next one or close ---------- */

static void request_finish(session_t *s)
{
    if (!s->req_active || s->state == CS_CLOSING) return;
    audit_request(s);
    s->req_active = false;
    bool reusable = s->body_done && s->resp_done && pc_http1_idle(&s->resp_parser) &&
                    s->resp_parser.msg.keep_alive;
    if (s->up) pc__s3_up_release(s->up, reusable && s->up_ready);
    s->up = NULL;
    s->up_ready = false;
    s->up_in_len = 0;
    request_clear(s);
    if (s->close_after || !s->client_keep_alive || pc_worker_draining(s->w) ||
        (s->client_eof && !s->in_len)) {
        session_close(s);
        return;
    }
    s->state = CS_HEAD;
    uv_timer_stop(&s->timer);
    uv_timer_start(&s->timer, on_idle_timeout, IDLE_TIMEOUT_MS, 0);
    process_client(s);
    if (s->state != CS_CLOSING) update_reading(s);
}

/* ---------- authentication and policy ---------- */

static void fill_ctx(session_t *s, pc_decision_ctx_t *c, const pc_http1_msg_t *m, char *path,
                     size_t path_cap)
{
    memset(c, 0, sizeof *c);
    c->stage = PC_STAGE_PRE_REQUEST;
    c->snapshot = pc_worker_snapshot(s->w);
    if (!c->snapshot) c->snapshot = s->snap;
    c->user = s->user;
    c->resource = s->resource;
    c->listener = s->listener;
    c->client_ip = s->client_ip;
    c->tls = s->tls != NULL;
    c->session_id = s->id;
    c->instance = pc_worker_ctx(s->w)->instance_name;
    c->bucket = s->rq.bucket;
    c->object_key = s->rq.key;
    c->method = s->method;
    c->operation = s->rq.op_name;
    size_t n = m->path.n < path_cap - 1 ? m->path.n : path_cap - 1;
    memcpy(path, m->path.p, n);
    path[n] = 0;
    c->path = path;
}

static int64_t now_s(void)
{
    return (int64_t)(pc_now_wall_ns() / 1000000000ull);
}

/* Check the client's signature; false when an error was answered. */
static bool authenticate(session_t *s, const pc_http1_msg_t *m)
{
    pc_sigv4_request_t sr = {
        .method = m->method_name,
        .path = m->path,
        .query = m->has_query ? m->query : (pc_http1_span_t){NULL, 0},
        .headers = m->headers,
        .nheaders = m->nheaders,
    };
    pc_sigv4_auth_t auth;
    pc_sigv4_result_t r = pc_sigv4_parse(&sr, &auth);
    if (r == PC_SIGV4_NO_AUTH) {
        send_error(s, "AccessDenied", "Anonymous access is not allowed");
        return false;
    }
    if (r != PC_SIGV4_OK) {
        const char *code = pc_sigv4_result_code(r, auth.presigned);
        send_error(s, code, pc_sigv4_result_message(r));
        return false;
    }
    const pc_access_key_t *key = NULL;
    s->user = pc_snapshot_user_by_access_key(s->snap, auth.access_key, &key);
    if (!s->user || !key || !key->secret) {
        s->user = NULL;
        pc_log_info("s3 unknown access key", PC_LUINT("session", s->id),
                    PC_LSTR("client_ip", s->client_ip));
        send_error(s, "InvalidAccessKeyId",
                   "The AWS Access Key Id you provided does not exist in our records.");
        return false;
    }
    r = pc_sigv4_verify(&auth, &sr, key->secret, now_s(), &s->sw->keys, &s->ver);
    if (r != PC_SIGV4_OK) {
        pc_log_info("s3 authentication failed", PC_LUINT("session", s->id),
                    PC_LSTR("user", s->user->username), PC_LSTR("client_ip", s->client_ip),
                    PC_LSTR("reason", pc_sigv4_result_message(r)));
        send_error(s, pc_sigv4_result_code(r, auth.presigned), pc_sigv4_result_message(r));
        return false;
    }
    return true;
}

static void block_request(session_t *s);

/*
 * The session stage (design §4): judged for the connection's user at its
 * first authenticated request, and again when a later request on the same
 * connection comes from another user. False when the request was answered.
 */
static bool session_stage(session_t *s)
{
    if (s->session_user && strcmp(s->session_user, s->user->username) == 0) return true;
    pc_decision_ctx_t c;
    memset(&c, 0, sizeof c);
    c.stage = PC_STAGE_SESSION;
    c.snapshot = pc_worker_snapshot(s->w);
    if (!c.snapshot) c.snapshot = s->snap;
    c.user = s->user;
    c.resource = s->resource;
    c.listener = s->listener;
    c.client_ip = s->client_ip;
    c.tls = s->tls != NULL;
    c.session_id = s->id;
    c.instance = pc_worker_ctx(s->w)->instance_name;
    pc_decision_eval(&c, &s->dec);
    if (!s->started) audit_session_start(s, &s->dec);
    if (s->dec.action == PC_DECISION_BLOCK) {
        s->judged = true;
        s->close_after = true;
        block_request(s);
        return false;
    }
    free(s->session_user);
    s->session_user = strdup(s->user->username);
    if (!s->session_user) {
        session_close(s);
        return false;
    }
    return true;
}

/* Set up body verification per the verified payload kind; false when answered. */
static bool body_setup(session_t *s, const pc_http1_msg_t *m)
{
    s->decoded_len = UINT64_MAX;
    switch (s->ver.payload) {
    case PC_SIGV4_PAYLOAD_HASH:
        if (m->body == PC_HTTP1_BODY_NONE ||
            (m->body == PC_HTTP1_BODY_LENGTH && m->content_length == 0)) {
            uint8_t empty[32];
            unsigned int n = 0;
            EVP_Digest("", 0, empty, &n, EVP_sha256(), NULL);
            if (CRYPTO_memcmp(empty, s->ver.payload_sha256, 32) != 0) {
                send_error(s, "XAmzContentSHA256Mismatch", SHA_MISMATCH_MSG);
                return false;
            }
            s->verify = V_NONE;
            return true;
        }
        s->verify = V_HASH;
        memcpy(s->want_sha, s->ver.payload_sha256, 32);
        s->sha = EVP_MD_CTX_new();
        if (!s->sha || EVP_DigestInit_ex(s->sha, EVP_sha256(), NULL) != 1) {
            send_error(s, "InternalError", NULL);
            return false;
        }
        return true;
    case PC_SIGV4_PAYLOAD_STREAMING:
    case PC_SIGV4_PAYLOAD_STREAMING_TRAILER:
    case PC_SIGV4_PAYLOAD_STREAMING_UNSIGNED_TRAILER: {
        const pc_http1_span_t *dl = pc_http1_get(m, "x-amz-decoded-content-length");
        if (dl) {
            uint64_t v = 0;
            bool ok = dl->n > 0 && dl->n <= 19;
            for (size_t i = 0; ok && i < dl->n; i++) {
                ok = dl->p[i] >= '0' && dl->p[i] <= '9';
                v = v * 10 + (uint64_t)(dl->p[i] - '0');
            }
            if (!ok) {
                send_error(s, "InvalidArgument", "Invalid x-amz-decoded-content-length");
                return false;
            }
            s->decoded_len = v;
        }
        const pc_http1_span_t *tr = pc_http1_get(m, "x-amz-trailer");
        if (!pc_sigv4_chunked_init(&s->ck, &s->ver, s->decoded_len,
                                   tr ? *tr : (pc_http1_span_t){NULL, 0})) {
            send_error(s, "InvalidArgument", "Unsupported x-amz-trailer");
            return false;
        }
        s->ck_inited = true;
        s->verify = V_AWS_CHUNKED;
        return true;
    }
    default:
        s->verify = V_NONE;
        return true;
    }
}

/* ---------- the upstream request ---------- */

/*
 * Decide the payload hash and framing of the body we send, then build the
 * re-signed head (rewrite.c). False when an error was answered.
 */
static bool build_upstream_head(session_t *s, const pc_http1_msg_t *m)
{
    const pc_resource_t *r = s->resource;
    char amz_date[PC_SIGV4_AMZ_DATE_LEN + 1];
    pc_sigv4_amz_date(now_s(), amz_date);

    char hash_hex[65];
    pc__s3_upstream_req_t in = {
        .msg = m,
        .bucket = s->rq.virtual_hosted ? s->rq.bucket : NULL,
        .ep = &s->ep,
        .payload_hash = PC_SIGV4_UNSIGNED_PAYLOAD,
        .decoded_aws_chunked = s->verify == V_AWS_CHUNKED,
        .access_key = r->credentials.access_key_id,
        .secret = r->credentials.secret_access_key,
        .region = r->region ? r->region : "us-east-1",
        .amz_date = amz_date,
        .cache = &s->sw->keys,
    };
    if (s->verify == V_HASH) {
        static const char hx[] = "0123456789abcdef";
        for (size_t i = 0; i < 32; i++) {
            hash_hex[2 * i] = hx[s->ver.payload_sha256[i] >> 4];
            hash_hex[2 * i + 1] = hx[s->ver.payload_sha256[i] & 15];
        }
        hash_hex[64] = 0;
        in.payload_hash = hash_hex;
    } else if (m->body == PC_HTTP1_BODY_NONE && s->ver.payload == PC_SIGV4_PAYLOAD_HASH) {
        in.payload_hash = PC_SIGV4_EMPTY_SHA256;
    }

    if (s->verify == V_AWS_CHUNKED) {
        in.content_length = s->decoded_len;
        s->upbody = s->decoded_len != UINT64_MAX ? UPB_LENGTH : UPB_CHUNKED;
    } else if (m->body == PC_HTTP1_BODY_CHUNKED) {
        s->upbody = UPB_CHUNKED;
    } else if (m->body == PC_HTTP1_BODY_LENGTH) {
        s->upbody = UPB_LENGTH;
        in.content_length = m->content_length;
    } else if (m->method == PC_HTTP1_M_PUT || m->method == PC_HTTP1_M_POST) {
        s->upbody = UPB_LENGTH; /* S3 wants a length on these, also when it is 0 */
        in.content_length = 0;
    } else {
        s->upbody = UPB_NONE;
    }
    in.framing = s->upbody == UPB_LENGTH    ? PC__S3_FRAME_LENGTH
                 : s->upbody == UPB_CHUNKED ? PC__S3_FRAME_CHUNKED
                                            : PC__S3_FRAME_NONE;
    const char *code = NULL;
    s->up_head = pc__s3_upstream_head(&in, &s->up_head_len, &code);
    if (s->up_head) return true;
    if (!strcmp(code, "InternalError"))
        pc_log_warn("s3 upstream signing failed", PC_LUINT("session", s->id),
                    PC_LSTR("resource", r->name));
    send_error(s, code, NULL);
    return false;
}

/* ---------- upstream connection events ---------- */

static void up_fail_answer(session_t *s, const char *err)
{
    uv_timer_stop(&s->timer);
    pc_log_warn("s3 upstream failed", PC_LUINT("session", s->id),
                PC_LSTR("resource", s->resource ? s->resource->name : ""), PC_LSTR("error", err));
    s->up = NULL;
    s->up_ready = false;
    if (s->resp_started) {
        /* The client has part of a response: only closing tells it. */
        if (!s->error) {
            char e[300];
            snprintf(e, sizeof e, "upstream: %s", err);
            s->error = strdup(e);
        }
        session_close(s);
        return;
    }
    char msg[300];
    snprintf(msg, sizeof msg, "upstream unavailable: %s", err);
    s->close_after = s->close_after || !s->body_done;
    send_error(s, "ServiceUnavailable", msg);
}

static bool up_connect(session_t *s);

static void on_up_ready(pc__s3_up_t *u, void *arg, const char *err)
{
    session_t *s = arg;
    (void)u;
    if (err) {
        up_fail_answer(s, err);
        return;
    }
    s->up_ready = true;
    up_send_head(s);
}

static void on_up_closed(pc__s3_up_t *u, void *arg, const char *err)
{
    session_t *s = arg;
    (void)u;
    /* A pooled connection the server closed as we reused it: once more on a
     * new one, when nothing of the body went out yet. */
    bool retry = s->up_reused && !s->up_retried && s->up_sent == 0 && s->up_in_len == 0 &&
                 !s->resp_started && pc_http1_idle(&s->resp_parser);
    s->up = NULL;
    s->up_ready = false;
    if (retry && s->up_head) {
        s->up_retried = true;
        if (!up_connect(s)) return;
        update_reading(s);
        return;
    }
    if (s->resp_started && !s->resp_done && pc_http1_eof(&s->resp_parser) == PC_HTTP1_END) {
        /* A body delimited by the close. */
        if (s->resp_chunked_out) client_put(s, PC_HTTP1_CHUNK_LAST, strlen(PC_HTTP1_CHUNK_LAST));
        s->resp_done = true;
        s->close_after = true;
        client_flush(s);
        if (s->body_done) request_finish(s);
        return;
    }
    up_fail_answer(s, err ? err : "connection closed");
}

static void on_up_written(pc__s3_up_t *u, void *arg)
{
    (void)u;
    session_t *s = arg;
    if (s->state == CS_BODY) process_client(s);
    if (s->state != CS_CLOSING) update_reading(s);
}

static void up_response_data(session_t *s, const uint8_t *p, size_t n);

static void on_up_data(pc__s3_up_t *u, void *arg, const uint8_t *p, size_t n)
{
    (void)u;
    io_progress(arg);
    up_response_data(arg, p, n);
}

static const pc__s3_up_cbs_t up_cbs = {
    .ready = on_up_ready,
    .data = on_up_data,
    .closed = on_up_closed,
    .written = on_up_written,
};

static bool up_connect(session_t *s)
{
    char err[256];
    bool reused = false;
    pc_http1_init(&s->resp_parser, true);
    if (s->is_head) pc_http1_expect_head_response(&s->resp_parser);
    s->up_in_len = 0;
    s->up = pc__s3_up_acquire(s->sw->pool, &s->ep, &up_cbs, s, &reused, err, sizeof err);
    if (!s->up) {
        up_fail_answer(s, err);
        return false;
    }
    s->up_reused = reused;
    s->up_reading = true;
    if (reused) {
        s->up_ready = true;
        up_send_head(s);
    }
    return s->state != CS_CLOSING;
}

static void up_send_head(session_t *s)
{
    if (!pc__s3_up_write(s->up, s->up_head, s->up_head_len)) {
        s->up = NULL;
        up_fail_answer(s, "write failed");
        return;
    }
    if (s->state == CS_UPSTREAM) s->state = s->body_done ? CS_RESPONSE : CS_BODY;
    if (s->state == CS_BODY) process_client(s);
    if (s->state != CS_CLOSING) update_reading(s);
}

/* ---------- request body ---------- */

static bool up_body_write(session_t *s, const void *p, size_t n)
{
    if (!n) return true;
    if (s->upbody == UPB_CHUNKED) {
        char h[PC_HTTP1_CHUNK_HEADER_MAX];
        size_t hl = pc_http1_chunk_header(h, n);
        if (!pc__s3_up_write(s->up, h, hl)) return false;
    }
    if (!pc__s3_up_write(s->up, p, n)) return false;
    if (s->upbody == UPB_CHUNKED && !pc__s3_up_write(s->up, "\r\n", 2)) return false;
    s->up_sent += n;
    return true;
}

/* The body failed verification: the upstream request must never complete. */
static void body_abort(session_t *s, const char *code, const char *message)
{
    pc_log_info("s3 request body rejected", PC_LUINT("session", s->id), PC_LSTR("code", code));
    pc__s3_up_abort(s->up);
    s->up = NULL;
    s->up_ready = false;
    s->close_after = true;
    send_error(s, code, message);
}

/* The whole body has been hashed: compare; a mismatch aborts (false). */
static bool hash_matches(session_t *s)
{
    uint8_t got[32];
    unsigned int gl = 0;
    EVP_DigestFinal_ex(s->sha, got, &gl);
    s->verify = V_NONE;
    if (CRYPTO_memcmp(got, s->want_sha, 32) == 0) return true;
    body_abort(s, "XAmzContentSHA256Mismatch", SHA_MISMATCH_MSG);
    return false;
}

static void body_data(session_t *s, const uint8_t *p, size_t n)
{
    s->bytes_in += n;
    if (s->verify == V_HASH) {
        EVP_DigestUpdate(s->sha, p, n);
        /* Last piece: verify before the upstream sees a complete body. */
        if (s->body_len && s->bytes_in >= s->body_len && !hash_matches(s)) return;
    }
    if (s->verify != V_AWS_CHUNKED) {
        if (!up_body_write(s, p, n)) up_fail_answer(s, "write failed");
        return;
    }
    size_t off = 0;
    while (off < n || !s->ck_ended) {
        size_t used = 0;
        pc_http1_span_t d = {NULL, 0};
        pc_sigv4_chunked_status_t st =
            pc_sigv4_chunked_feed(&s->ck, (const char *)p + off, n - off, &used, &d);
        off += used;
        if (st == PC_SIGV4_CHUNKED_NEED_MORE) break;
        if (st == PC_SIGV4_CHUNKED_DATA) {
            /* Send the previous piece; hold this one while it may be the last. */
            if (s->held_len && !up_body_write(s, s->held, s->held_len)) {
                up_fail_answer(s, "write failed");
                return;
            }
            s->held_len = 0;
            if (s->ck.decoded_bytes == s->decoded_len || s->upbody == UPB_CHUNKED) {
                uint8_t *h = realloc(s->held, d.n ? d.n : 1);
                if (!h) {
                    body_abort(s, "InternalError", NULL);
                    return;
                }
                s->held = h;
                memcpy(h, d.p, d.n);
                s->held_len = d.n;
            } else if (!up_body_write(s, d.p, d.n)) {
                up_fail_answer(s, "write failed");
                return;
            }
            continue;
        }
        if (st == PC_SIGV4_CHUNKED_END) {
            s->ck_ended = true;
            if (off < n) {
                body_abort(s, "IncompleteBody", "Bytes after the final aws-chunked chunk.");
                return;
            }
            break;
        }
        body_abort(s,
                   st == PC_SIGV4_CHUNKED_ERR_SIGNATURE  ? "SignatureDoesNotMatch"
                   : st == PC_SIGV4_CHUNKED_ERR_CHECKSUM ? "BadDigest"
                                                         : "IncompleteBody",
                   st == PC_SIGV4_CHUNKED_ERR_SIGNATURE
                       ? "The chunk signature we calculated does not match the signature you "
                         "provided."
                   : st == PC_SIGV4_CHUNKED_ERR_CHECKSUM
                       ? "The checksum you specified did not match what we received."
                       : "The request body is not valid aws-chunked encoding.");
        return;
    }
}

static void body_end(session_t *s)
{
    if (s->verify == V_HASH && !hash_matches(s)) return;
    if (s->verify == V_AWS_CHUNKED) {
        if (!s->ck_ended) {
            body_abort(s, "IncompleteBody",
                       "You did not provide the number of bytes specified by the "
                       "x-amz-decoded-content-length HTTP header.");
            return;
        }
        if (s->held_len && !up_body_write(s, s->held, s->held_len)) {
            up_fail_answer(s, "write failed");
            return;
        }
        s->held_len = 0;
    }
    if (s->upbody == UPB_CHUNKED &&
        !pc__s3_up_write(s->up, PC_HTTP1_CHUNK_LAST, strlen(PC_HTTP1_CHUNK_LAST))) {
        up_fail_answer(s, "write failed");
        return;
    }
    s->body_done = true;
    if (s->resp_done) {
        request_finish(s);
        return;
    }
    s->state = CS_RESPONSE;
}

/* A block decision (s->dec) for the current request: AccessDenied with the
 * reason, or for block_silently the connection closes without an answer. */
static void block_request(session_t *s)
{
    pc_log_info("s3 request blocked", PC_LUINT("session", s->id),
                PC_LSTR("user", s->user->username), PC_LSTR("operation", s->rq.op_name),
                PC_LSTR("bucket", s->rq.bucket), PC_LSTR("reason", s->dec.reason));
    if (s->dec.block_type == PC_BLOCK_SILENTLY) {
        s->status = 0;
        s->error = strdup("blocked silently: connection closed");
        audit_request(s);
        s->req_active = false;
        session_close(s);
        return;
    }
    const char *msg = s->dec.block_type == PC_BLOCK_CUSTOM_MESSAGE && s->dec.message[0]
                          ? s->dec.message
                      : s->dec.reason[0] ? s->dec.reason
                                         : "Access Denied";
    send_error(s, "AccessDenied", msg);
}

/* ---------- request head ---------- */

static void bind_resource(session_t *s)
{
    s->ep_ok = false;
    if (!s->resource || s->resource->technology != PC_TECH_S3) {
        pc_log_error("s3 listener has no s3 resource", PC_LSTR("listener", s->listener->name));
        s->resource = NULL;
        return;
    }
    s->ep_ok = pc__s3_endpoint_parse(s->resource->endpoint, &s->ep);
    if (!s->ep_ok)
        pc_log_error("s3 resource endpoint unusable", PC_LSTR("resource", s->resource->name));
}

/*
 * Each request of a keep-alive connection sees the newest configuration
 * (keys revoked, resource moved): the session moves to the worker's newest
 * snapshot between requests. False when its listener is gone.
 */
static bool refresh_snapshot(session_t *s)
{
    pc_snapshot_t *cur = pc_worker_snapshot(s->w);
    if (!cur || cur == s->snap) return true;
    const pc_listener_cfg_t *l = pc_snapshot_listener(cur, s->listener->name);
    if (!l) return false;
    pc_snapshot_ref(cur);
    pc_snapshot_unref(s->snap);
    s->snap = cur;
    s->listener = l;
    s->resource = pc_snapshot_resource(cur, l->resource);
    bind_resource(s);
    return true;
}

static void handle_head(session_t *s, const pc_http1_msg_t *m)
{
    s->req_active = true;
    s->req_start_ns = pc_now_mono_ns();
    new_request_id(s->request_id);
    memset(&s->rq, 0, sizeof s->rq);
    memset(&s->dec, 0, sizeof s->dec);
    s->user = NULL;
    s->judged = false;
    s->status = 0;
    s->bytes_in = s->bytes_out = 0;
    s->up_sent = 0;
    s->close_after = false;
    s->resp_started = s->resp_done = false;
    s->resp_chunked_out = false;
    s->up_retried = false;
    s->verify = V_NONE;
    s->ck_ended = false;
    s->upbody = UPB_NONE;
    s->is_head = m->method == PC_HTTP1_M_HEAD;
    s->client_keep_alive = m->keep_alive;
    s->body_done = m->body == PC_HTTP1_BODY_NONE;
    s->body_len = m->body == PC_HTTP1_BODY_LENGTH ? m->content_length : 0;
    if (m->body == PC_HTTP1_BODY_LENGTH && m->content_length == 0) s->body_done = true;
    size_t ml = m->method_name.n < sizeof s->method - 1 ? m->method_name.n : sizeof s->method - 1;
    memcpy(s->method, m->method_name.p, ml);
    s->method[ml] = 0;
    uv_timer_stop(&s->timer);
    s->state = CS_UPSTREAM; /* nothing more is read until the request is judged */
    if (!refresh_snapshot(s)) {
        s->close_after = true;
        send_error(s, "ServiceUnavailable", "This listener has been removed.");
        return;
    }

    pc_s3_req_result_t rr =
        pc_s3_request_from_msg(m, s->listener ? s->listener->hostname : NULL, &s->rq);
    if (rr != PC_S3_REQ_OK) {
        send_error(s, pc_s3_req_result_code(rr), NULL);
        return;
    }
    if (!authenticate(s, m)) return;
    if (!session_stage(s)) return;
    if (!body_setup(s, m)) return;

    pc_decision_ctx_t c;
    char path[1024];
    fill_ctx(s, &c, m, path, sizeof path);
    pc_decision_eval(&c, &s->dec);
    s->judged = true;
    if (s->dec.action == PC_DECISION_BLOCK) {
        block_request(s);
        return;
    }
    if (!s->resource || !s->ep_ok) {
        send_error(s, "ServiceUnavailable", "The listener's resource has no usable endpoint.");
        return;
    }
    if (!build_upstream_head(s, m)) return;
    io_progress(s);
    if (m->expect_continue && !s->body_done) {
        static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
        client_put(s, cont, sizeof cont - 1);
        client_flush(s);
        if (s->state == CS_CLOSING) return;
    }
    (void)up_connect(s);
}

/* ---------- client input ---------- */

/* Process bytes; returns how many were consumed (the rest waits). */
static size_t process_bytes(session_t *s, const uint8_t *buf, size_t len)
{
    size_t off = 0;
    for (;;) {
        if (s->state == CS_HEAD) {
            size_t used = 0;
            pc_http1_span_t d;
            pc_http1_event_t ev =
                pc_http1_feed(&s->req_parser, (const char *)buf + off, len - off, &used, &d);
            if (ev == PC_HTTP1_NEED_MORE) {
                off += used;
                if (off < len && !uv_is_active((uv_handle_t *)&s->timer)) {
                    uv_timer_start(&s->timer, on_idle_timeout, HEAD_TIMEOUT_MS, 0);
                }
                return off;
            }
            if (ev == PC_HTTP1_ERROR) {
                send_bad_request(s, s->req_parser.error_status, s->req_parser.error);
                return len;
            }
            if (ev == PC_HTTP1_END) {
                /* The end of a bodiless request, reported on the feed after its head. */
                off += used;
                continue;
            }
            if (ev != PC_HTTP1_HEAD) { /* body bytes between requests: cannot happen */
                session_close(s);
                return len;
            }
            handle_head(s, &s->req_parser.msg);
            off += used;
            if (s->state == CS_CLOSING) return len;
            continue;
        }
        if (s->state == CS_BODY && !s->body_done) {
            if (!s->up_ready || !s->up) return off;
            if (pc__s3_up_queued(s->up) >= WQ_HIGH) return off;
            size_t used = 0;
            pc_http1_span_t d;
            pc_http1_event_t ev =
                pc_http1_feed(&s->req_parser, (const char *)buf + off, len - off, &used, &d);
            off += used;
            if (ev == PC_HTTP1_NEED_MORE) return off;
            if (ev == PC_HTTP1_DATA) {
                body_data(s, (const uint8_t *)d.p, d.n);
            } else if (ev == PC_HTTP1_END) {
                body_end(s);
            } else {
                if (s->up) pc__s3_up_release(s->up, false);
                s->up = NULL;
                s->up_ready = false;
                send_bad_request(s, s->req_parser.error_status, s->req_parser.error);
                return len;
            }
            if (s->state == CS_CLOSING) return len;
            continue;
        }
        return off;
    }
}

/* Nested calls (an answer finishing a request from inside process_bytes)
 * return at once: the running loop sees the new state and continues. */
static void process_client(session_t *s)
{
    if (s->state == CS_CLOSING || !s->in_len || s->processing) return;
    s->processing = true;
    size_t used = process_bytes(s, s->in, s->in_len);
    s->processing = false;
    if (s->state == CS_CLOSING) return;
    buf_consume(s->in, &s->in_len, used);
}

static void client_input(session_t *s, const uint8_t *p, size_t n)
{
    io_progress(s);
    if (s->in_len) {
        if (!buf_append(&s->in, &s->in_len, &s->in_cap, p, n)) {
            session_close(s);
            return;
        }
        process_client(s);
        return;
    }
    s->processing = true;
    size_t used = process_bytes(s, p, n);
    s->processing = false;
    if (s->state == CS_CLOSING) return;
    if (used < n && !buf_append(&s->in, &s->in_len, &s->in_cap, p + used, n - used))
        session_close(s);
}

/* ---------- response from the upstream ---------- */

static void put_mem(uint8_t *out, size_t *o, const void *p, size_t n)
{
    memcpy(out + *o, p, n);
    *o += n;
}

static void send_response_head(session_t *s, const pc_http1_msg_t *m)
{
    bool has_body = m->body != PC_HTTP1_BODY_NONE;
    if (m->body == PC_HTTP1_BODY_CHUNKED ||
        (m->body == PC_HTTP1_BODY_UNTIL_CLOSE && s->client_keep_alive))
        s->resp_chunked_out = true;
    if (m->body == PC_HTTP1_BODY_UNTIL_CLOSE && !s->resp_chunked_out) s->close_after = true;
    if (!s->body_done || pc_worker_draining(s->w)) s->close_after = true;
    bool chunked_out = s->resp_chunked_out; /* as decided before a body-less answer resets it */
    if (!has_body) s->resp_chunked_out = false;
    s->resp_started = true;
    if (s->client_gone) return;
    /*
     * The whole head straight into the output buffer, sized once for the worst
     * case: the status line (< 96 bytes), every header, and ours (< 128).
     */
    size_t cap = 96 + 128 + sizeof(s->request_id);
    for (size_t i = 0; i < m->nheaders; i++)
        cap += m->headers[i].name.n + m->headers[i].value.n + 4;
    if (!buf_reserve(&s->out, &s->out_len, &s->out_cap, cap)) {
        session_close(s);
        return;
    }
    uint8_t *out = s->out + s->out_len;
    size_t o = 0;
    char status[21];
    size_t rl = m->reason.n < 64 ? m->reason.n : 64;
    put_mem(out, &o, "HTTP/1.1 ", 9);
    put_mem(out, &o, status, pc__s3_u64_dec((uint64_t)(m->status < 0 ? 0 : m->status), status));
    put_mem(out, &o, " ", 1);
    put_mem(out, &o, m->reason.p, rl);
    put_mem(out, &o, "\r\n", 2);
    bool has_rid = false;
    for (size_t i = 0; i < m->nheaders; i++) {
        const pc_http1_header_t *h = &m->headers[i];
        if (pc__s3_drop_response_header(h->name.p, h->name.n)) continue;
        if (chunked_out && pc_http1_span_ieq(h->name, "content-length")) continue;
        if (pc_http1_span_ieq(h->name, "x-amz-request-id")) has_rid = true;
        put_mem(out, &o, h->name.p, h->name.n);
        put_mem(out, &o, ": ", 2);
        put_mem(out, &o, h->value.p, h->value.n);
        put_mem(out, &o, "\r\n", 2);
    }
    if (!has_rid) {
        put_mem(out, &o, "x-amz-request-id: ", 18);
        put_mem(out, &o, s->request_id, strlen(s->request_id));
        put_mem(out, &o, "\r\n", 2);
    }
    if (chunked_out && has_body) put_mem(out, &o, "Transfer-Encoding: chunked\r\n", 28);
    if (s->close_after || !s->client_keep_alive) put_mem(out, &o, "Connection: close\r\n", 19);
    put_mem(out, &o, "\r\n", 2);
    PC_BUG_ON(o > cap);
    s->out_len += o;
    if (s->out_len >= OUT_FLUSH_AT) client_flush(s);
}

static void response_end(session_t *s)
{
    if (s->resp_chunked_out) client_put(s, PC_HTTP1_CHUNK_LAST, strlen(PC_HTTP1_CHUNK_LAST));
    s->resp_done = true;
    client_flush(s);
    if (s->state == CS_CLOSING) return;
    if (s->body_done) {
        request_finish(s);
        return;
    }
    /* The server answered before the body ended (an error): the rest of the
     * body cannot go anywhere useful; end the connection after the answer. */
    if (s->up) pc__s3_up_release(s->up, false);
    s->up = NULL;
    s->up_ready = false;
    s->close_after = true;
    request_finish(s);
}

static void up_response_data(session_t *s, const uint8_t *p, size_t n)
{
    if (s->state == CS_CLOSING) return;
    if (s->resp_done) {
        /* Bytes after a complete response: the connection is unusable. */
        if (s->up) pc__s3_up_release(s->up, false);
        s->up = NULL;
        return;
    }
    const uint8_t *buf = p;
    size_t len = n;
    if (s->up_in_len) {
        if (!buf_append(&s->up_in, &s->up_in_len, &s->up_in_cap, p, n)) {
            session_close(s);
            return;
        }
        buf = s->up_in;
        len = s->up_in_len;
    }
    size_t off = 0;
    while (!s->resp_done) {
        size_t used = 0;
        pc_http1_span_t d;
        pc_http1_event_t ev =
            pc_http1_feed(&s->resp_parser, (const char *)buf + off, len - off, &used, &d);
        if (ev == PC_HTTP1_NEED_MORE) {
            off += used;
            break;
        }
        if (ev == PC_HTTP1_ERROR) {
            if (s->up) pc__s3_up_release(s->up, false);
            s->up = NULL;
            up_fail_answer(s, "malformed response");
            return;
        }
        if (ev == PC_HTTP1_HEAD) {
            const pc_http1_msg_t *m = &s->resp_parser.msg;
            if (m->status >= 100 && m->status < 200) {
                off += used; /* interim (we never send Expect upstream) */
                continue;
            }
            s->status = m->status;
            free(s->up_head); /* no retry from here on */
            s->up_head = NULL;
            send_response_head(s, m);
            off += used;
            if (s->state == CS_CLOSING) return;
            continue;
        }
        off += used;
        if (ev == PC_HTTP1_DATA) {
            s->bytes_out += d.n;
            if (s->resp_chunked_out) {
                char h[PC_HTTP1_CHUNK_HEADER_MAX];
                size_t hl = pc_http1_chunk_header(h, d.n);
                client_put(s, h, hl);
                client_put(s, d.p, d.n);
                client_put(s, "\r\n", 2);
            } else {
                client_put(s, d.p, d.n);
            }
            if (s->state == CS_CLOSING) return;
            continue;
        }
        if (ev == PC_HTTP1_END) {
            bool trailing = off < len;
            if (trailing && s->up) {
                pc__s3_up_release(s->up, false);
                s->up = NULL;
            }
            s->up_in_len = 0;
            response_end(s);
            return;
        }
    }
    if (s->state == CS_CLOSING) return;
    /* Keep an incomplete head (the parser needs it whole). */
    if (buf == s->up_in) {
        buf_consume(s->up_in, &s->up_in_len, off);
    } else if (off < len &&
               !buf_append(&s->up_in, &s->up_in_len, &s->up_in_cap, buf + off, len - off)) {
        session_close(s);
        return;
    }
    client_flush(s);
    update_reading(s);
}

/* ---------- reading and backpressure ---------- */

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)h;
    (void)suggested;
    *buf = uv_buf_init((char *)tl_read_buf, sizeof tl_read_buf);
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf);

static bool client_wants_read(const session_t *s)
{
    if (s->client_eof) return false;
    switch (s->state) {
    case CS_TLS:
        return true;
    case CS_HEAD:
        /* Pipelined requests wait while a previous answer is still queued. */
        return client_queued(s) < WQ_HIGH && s->in_len < PC_HTTP1_MAX_HEAD + 1;
    case CS_BODY:
        if (!s->body_done) {
            if (!s->up_ready || !s->up || s->in_len) return false;
            return pc__s3_up_queued(s->up) < (s->reading ? WQ_HIGH : WQ_LOW);
        }
        /* The request is complete: only its answer is awaited. */
        /* fall through */
    case CS_UPSTREAM:
    case CS_RESPONSE:
        /*
         * Keep the read side armed while the answer is awaited: whatever a
         * client pipelines is buffered (up to one head) and parsed once the
         * answer is done. Stopping and restarting the read watcher around
         * every request cost two epoll_ctl calls per request on keep-alive
         * connections.
         */
        return client_queued(s) < WQ_HIGH && s->in_len < PC_HTTP1_MAX_HEAD + 1;
    default:
        return false;
    }
}

static void update_reading(session_t *s)
{
    if (s->state == CS_CLOSING) return;
    bool want = client_wants_read(s);
    if (want != s->reading) {
        if (want) {
            if (uv_read_start((uv_stream_t *)s->tcp, on_alloc, on_read) == 0) s->reading = true;
        } else {
            uv_read_stop((uv_stream_t *)s->tcp);
            s->reading = false;
        }
    }
    if (s->up && s->up_ready) {
        size_t q = client_queued(s);
        bool up_want = q < (s->up_reading ? WQ_HIGH : WQ_LOW);
        if (up_want != s->up_reading) {
            pc__s3_up_set_reading(s->up, up_want);
            s->up_reading = up_want;
        }
    }
}


static void on_peer_eof(session_t *s, ssize_t why)
{
    bool awaiting_answer = s->state == CS_UPSTREAM || s->state == CS_RESPONSE ||
                           (s->state == CS_BODY && s->body_done);
    if (why == UV_EOF && awaiting_answer) {
        /* A half-close after a complete request still gets its answer. */
        s->client_eof = true;
        update_reading(s);
        return;
    }
    s->client_gone = true;
    if (s->req_active && !s->error) s->error = strdup("client closed the connection");
    session_close(s);
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    session_t *s = stream->data;
    if (s->state == CS_CLOSING) return;
    if (nread < 0) {
        on_peer_eof(s, nread);
        return;
    }
    if (nread == 0) return;
    const uint8_t *data = (const uint8_t *)buf->base;
    if (s->tls_sniffing) {
        s->tls_sniffing = false;
        if (data[0] != 0x16) { /* not a TLS handshake record: plaintext HTTP */
            s->state = CS_HEAD;
            pc_tls_free(s->tls);
            s->tls = NULL;
        }
    }
    if (!s->tls) {
        client_input(s, data, (size_t)nread);
    } else {
        if (!pc_tls_feed(s->tls, data, (size_t)nread)) {
            session_close(s);
            return;
        }
        if (!pc_tls_handshake_done(s->tls)) {
            pc_tls_status_t st = pc_tls_handshake(s->tls);
            tls_drain(s);
            if (st == PC_TLS_ERROR) {
                pc_log_info("s3 client tls handshake failed", PC_LUINT("session", s->id),
                            PC_LSTR("error", pc_tls_error(s->tls)));
                s->client_gone = true;
                session_close(s);
                return;
            }
            if (st != PC_TLS_OK) return;
            s->state = CS_HEAD;
        }
        for (;;) {
            size_t got = 0;
            pc_tls_status_t st = pc_tls_read(s->tls, tl_plain_buf, sizeof tl_plain_buf, &got);
            if (st == PC_TLS_OK) {
                client_input(s, tl_plain_buf, got);
                if (s->state == CS_CLOSING) return;
                continue;
            }
            tls_drain(s);
            if (st == PC_TLS_WANT) break;
            on_peer_eof(s, UV_EPROTO); /* no half-close over TLS */
            return;
        }
    }
    if (s->state == CS_CLOSING) return;
    client_flush(s);
    update_reading(s);
}

/* ---------- module entry points ---------- */

static void on_accept(pc_worker_t *w, uv_tcp_t *client, pc_snapshot_t *snap,
                      const pc_listener_cfg_t *listener)
{
    session_t *s = calloc(1, sizeof *s);
    if (!s) {
        client->data = NULL;
        uv_close((uv_handle_t *)client, (uv_close_cb)(void (*)(void))free);
        return;
    }
    s->w = w;
    s->sw = s3_worker(w);
    s->id = pc_net_session_id();
    s->start_ns = pc_now_mono_ns();
    s->snap = pc_snapshot_ref(snap);
    s->listener = listener;
    s->resource = pc_snapshot_resource(snap, listener->resource);
    s->tcp = client;
    client->data = s;
    uv_timer_init(pc_worker_loop(w), &s->timer);
    s->timer.data = s;
    s->open_handles = 2;
    pc_net_conn_open(&s->sw->conns, &s->conn, s, listener->name);
    pc_http1_init(&s->req_parser, false);
    uv_tcp_nodelay(client, 1);

    pc_net_peer_ip(client, s->client_ip, sizeof s->client_ip);
    bind_resource(s);

    s->state = CS_HEAD;
    if (listener->tls != PC_LISTENER_TLS_DISABLED) {
        SSL_CTX *ctx = pc_net_server_tls_ctx(pc_worker_ctx(w)->cfg);
        if (!ctx && listener->tls == PC_LISTENER_TLS_REQUIRED) {
            pc_log_error("s3 listener requires tls but the connector has no tls.cert/key",
                         PC_LSTR("listener", listener->name));
            s->client_gone = true;
            session_close(s);
            return;
        }
        if (ctx) {
            s->tls = pc_tls_new_server(ctx);
            if (!s->tls) {
                s->client_gone = true;
                session_close(s);
                return;
            }
            s->state = CS_TLS;
            s->tls_sniffing = listener->tls == PC_LISTENER_TLS_OPTIONAL;
        }
    }
    uv_timer_start(&s->timer, on_idle_timeout, HEAD_TIMEOUT_MS, 0);
    update_reading(s);
}

static void terminate_all(pc_worker_t *w)
{
    s3_worker_t *sw = s3_worker(w);
    for (pc_net_conn_t *c = sw->conns.head; c; c = c->next) {
        session_t *s = c->session;
        if (s->state == CS_CLOSING) continue;
        if (!s->error) s->error = strdup("terminated at shutdown");
        session_close(s);
    }
}

/*
 * Polled on the worker's thread (also while draining): a keep-alive
 * connection waiting for its next request has nothing to finish, so during
 * the drain it is closed here rather than held until the deadline.
 */
static size_t active_sessions(pc_worker_t *w)
{
    s3_worker_t *sw = s3_worker(w);
    if (pc_worker_draining(w)) {
        for (pc_net_conn_t *c = sw->conns.head; c; c = c->next) {
            session_t *s = c->session;
            /* No request and no byte of the next one (a partial head would be in `in`). */
            if (s->state == CS_HEAD && !s->req_active && s->in_len == 0) session_close(s);
        }
    }
    size_t n = 0;
    for (pc_net_conn_t *c = sw->conns.head; c; c = c->next)
        if (((session_t *)c->session)->state != CS_CLOSING) n++;
    return n;
}

/*
 * The loop runs once more after this, for close callbacks: every session
 * still listed (ended by terminate_all, or lingering after its last answer)
 * has its handles closed now, and the last one to go frees sw.
 */
static void worker_stop(pc_worker_t *w)
{
    void **slot = pc_worker_proto_slot(w, PC_TECH_S3);
    s3_worker_t *sw = *slot;
    if (!sw) return;
    *slot = NULL;
    sw->stopping = true;
    for (pc_net_conn_t *c = sw->conns.head; c; c = c->next) {
        session_t *s = c->session;
        if (s->state != CS_CLOSING) {
            s->client_gone = true;
            session_close(s);
        }
        close_client_now(s);
    }
    pc__s3_upool_close(sw->pool);
    sw->pool = NULL;
    pc_sigv4_key_cache_wipe(&sw->keys);
    if (!sw->conns.head) free(sw);
}

const pc_proto_t pc_s3_proto = {
    .technology = PC_TECH_S3,
    .on_accept = on_accept,
    .terminate_all = terminate_all,
    .active_sessions = active_sessions,
    .worker_stop = worker_stop,
};

void pc_s3_register(void)
{
    static atomic_bool done;
    if (!atomic_exchange(&done, true)) pc_proto_register(&pc_s3_proto);
}
