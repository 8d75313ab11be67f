/*
 * PostgreSQL session: one client connection relayed to one upstream
 * connection (see pg.h for the behaviour). Layers: transport (plain / TLS
 * memory BIOs) under the codec (proto.h) under this state machine; the client
 * side and the upstream side use the same `side_t` plumbing.
 *
 * Memory: the 64 KiB read buffers are per worker thread (a read callback
 * consumes its buffer before returning); a session keeps only the bytes of a
 * message that is not complete yet. Output is batched per side into pooled
 * chunks, one uv_write per batch. Large DataRow / CopyData messages are
 * streamed through without being held whole. Reading from one side pauses
 * while the other side's write queue is above WQ_HIGH (backpressure).
 */
#include "pg/pg.h"

#include "audit/audit.h"
#include "core/log.h"
#include "core/metrics.h"
#include "decision/decision.h"
#include "net/session.h"
#include "net/tls.h"
#include "pg/pg_int.h"
#include "pg/proto.h"
#include "pg/scram.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#define READ_BUF_SIZE (64 * 1024)
#define OUT_CHUNK (32 * 1024)
#define OUT_FLUSH_AT (64 * 1024)
#define STREAM_THRESHOLD (32 * 1024) /* messages larger than this may be streamed */
#define WQ_HIGH (512 * 1024)
#define WQ_LOW (128 * 1024)
#define AUTH_TIMEOUT_MS 60000
#define UPSTREAM_TIMEOUT_MS 30000
#define MAX_STATEMENTS 4096 /* remembered per session (statements, portals) for audit */
#define MAX_PENDING 65536   /* requests in flight before reading from the client pauses */
#define POOL_KEEP 256

/* ---------- states ---------- */

typedef enum {
    ST_STARTUP,    /* waiting for the client's startup packet */
    ST_CLIENT_TLS, /* client TLS handshake */
    ST_SASL_INIT,  /* sent AuthenticationSASL, waiting for SASLInitialResponse */
    ST_SASL_CONT,  /* sent SASLContinue, waiting for SASLResponse */
    ST_UP_CONNECT, /* resolving / connecting upstream */
    ST_UP_SSL,     /* sent SSLRequest upstream, waiting for 'S' / 'N' */
    ST_UP_TLS,     /* upstream TLS handshake */
    ST_UP_AUTH,    /* sent StartupMessage upstream, authenticating */
    ST_UP_INIT,    /* upstream authenticated: ParameterStatus.. until ReadyForQuery */
    ST_READY,      /* relaying */
    ST_CLOSING,    /* handles closing; nothing more is processed */
} state_t;

/* Requests in flight, in the order the upstream answers them. */
typedef enum {
    IT_SIMPLE,   /* Query: done at ReadyForQuery */
    IT_FUNC,     /* FunctionCall: done at ReadyForQuery */
    IT_PARSE,    /* ParseComplete */
    IT_BIND,     /* BindComplete */
    IT_DESCRIBE, /* RowDescription or NoData */
    IT_CLOSE,    /* CloseComplete */
    IT_EXECUTE,  /* CommandComplete / EmptyQueryResponse / PortalSuspended */
    IT_SYNC,     /* ReadyForQuery */
    IT_SYNTH,    /* a response the connector makes itself (a blocked request) */
} item_kind_t;

/* Ref-counted query text shared by statements, portals and items. */
typedef struct qstr {
    uint32_t refs;
    uint32_t len;
    uint8_t *rowdesc; /* the statement's last RowDescription body, for post_request */
    uint32_t rowdesc_len;
    char text[];
} qstr_t;

typedef struct item {
    struct item *next;
    item_kind_t kind;
    char describe_kind; /* IT_DESCRIBE: 'S' statement or 'P' portal */
    qstr_t *query;
    uint64_t start_ns;
    int64_t rows;
    char *error;
    uint8_t *synth;
    size_t synth_len;
    pc_decision_t *dec; /* decisions that named policies (audit), NULL = none */
} item_t;

typedef struct named {
    struct named *next;
    char *name;
    qstr_t *query;
} named_t;

typedef struct session session_t;

typedef struct side {
    uv_tcp_t *tcp; /* client: the worker's accepted handle; upstream: session->up_tcp */
    session_t *s;
    pc_tls_t *tls;
    bool is_client;
    bool inited; /* tcp handle initialised (must be closed) */
    bool reading;
    uint8_t *in; /* bytes of an incomplete message */
    size_t in_len, in_cap;
    uint64_t stream_left; /* body bytes of a streamed message still to pass through */
    size_t rest_after;    /* bytes after the message being dispatched, in the same read */
    pc_pg_buf_t out;      /* batch being built */
} side_t;

typedef struct pg_worker {
    pc_net_conns_t conns;
} pg_worker_t;

struct session {
    pc_net_conn_t conn;  /* the worker's list and the connection metrics */
    session_t *pool_next; /* the thread's pool of released sessions */
    pc_worker_t *w;
    pg_worker_t *pw;
    state_t state;
    side_t client, up;
    uv_tcp_t up_tcp;
    uv_timer_t timer;
    bool client_closing;
    uv_connect_t connect_req;
    uv_getaddrinfo_t gai_req;
    int open_handles;
    uint64_t id;
    uint64_t start_ns;

    pc_snapshot_t *snap;
    const pc_listener_cfg_t *listener;
    const pc_resource_t *resource;
    const pc_user_t *user;
    char *username; /* as the client sent it */
    char *database;
    char *application;
    uint8_t *startup_body; /* the client's startup packet, for the upstream one */
    uint32_t startup_len;
    char client_ip[64];

    pc_scram_server_t *scram_srv;
    pc_scram_client_t *scram_cli;

    struct sockaddr_storage up_addr;
    uint32_t up_pid, up_key;
    uint32_t our_pid; /* 0 = not registered in the cancel map */
    bool started;     /* session-start audit record written */
    bool client_gone;
    bool up_ready; /* the upstream session was established */
    bool up_gone;  /* the upstream connection failed or was closed by the server */
    bool up_fatal; /* the server sent a FATAL/PANIC before closing */
    char tx_status;

    item_t *q_head, *q_tail;
    bool skip_until_sync; /* a blocked extended-protocol message: drop until Sync */
    bool ext_error;       /* upstream failed an extended batch: it skips until Sync */
    named_t *stmts, *portals;
    size_t n_stmts, n_portals;
    size_t n_pending;

    /* post_request state of the current result set */
    pc_decision_t result_decision;
    uint32_t *result_types; /* type OID of each column, for masking (heap) */
    uint16_t result_ncols, result_types_cap;
    uint8_t result_salt[32]; /* hash.with_salt key of this resource */
    bool result_decided; /* post_request has judged the current result set */
    bool result_active;  /* ... and rows need looking at (mask / filter) */
    /* post_request blocked a result set and the client got an ErrorResponse in
     * its place: the server's answers up to the ReadyForQuery that ends this
     * request are dropped, as a client skips them after a server error. */
    bool result_suppress;
    int64_t result_rows_seen;
    int64_t result_rows_sent;

    pc_metric_t *m_queries;
};

static void session_close(session_t *s);
static void fatal_and_close(session_t *s, const char *sqlstate, const char *message);
static void side_flush(side_t *sd);
static void update_reading(session_t *s);
static void side_input(side_t *sd, const uint8_t *p, size_t n);
static void process_buffered(side_t *sd);
static void start_upstream(session_t *s);

/* ---------- per-worker pools (one worker = one thread) ---------- */

typedef struct wreq {
    uv_write_t req;
    side_t *side;
    uint8_t *data;
    size_t cap;
    struct wreq *next_free;
} wreq_t;

static _Thread_local uint8_t tl_read_buf[READ_BUF_SIZE];
static _Thread_local uint8_t tl_plain_buf[READ_BUF_SIZE];
static _Thread_local uint8_t *tl_chunks[POOL_KEEP];
static _Thread_local size_t tl_n_chunks;
static _Thread_local wreq_t *tl_wreqs;
static _Thread_local size_t tl_n_wreqs;
static _Thread_local session_t *tl_sessions;
static _Thread_local size_t tl_n_sessions;

static uint8_t *chunk_get(void)
{
    if (tl_n_chunks) return tl_chunks[--tl_n_chunks];
    return malloc(OUT_CHUNK);
}

static void chunk_put(uint8_t *p, size_t cap)
{
    if (p && cap == OUT_CHUNK && tl_n_chunks < POOL_KEEP) {
        tl_chunks[tl_n_chunks++] = p;
        return;
    }
    free(p);
}

static wreq_t *wreq_get(void)
{
    wreq_t *r = tl_wreqs;
    if (r) {
        tl_wreqs = r->next_free;
        tl_n_wreqs--;
        return r;
    }
    return malloc(sizeof *r);
}

static void wreq_put(wreq_t *r)
{
    if (tl_n_wreqs < POOL_KEEP) {
        r->next_free = tl_wreqs;
        tl_wreqs = r;
        tl_n_wreqs++;
        return;
    }
    free(r);
}

static session_t *session_alloc(void)
{
    session_t *s = tl_sessions;
    if (s) {
        tl_sessions = s->pool_next;
        tl_n_sessions--;
    } else {
        s = malloc(sizeof *s);
        if (!s) return NULL;
    }
    memset(s, 0, sizeof *s);
    return s;
}

static void session_release(session_t *s)
{
    if (tl_n_sessions < POOL_KEEP) {
        s->pool_next = tl_sessions;
        tl_sessions = s;
        tl_n_sessions++;
        return;
    }
    free(s);
}

/* ---------- small helpers ---------- */

static qstr_t *qstr_new(const char *text, size_t len)
{
    if (len > UINT32_MAX - 1) len = UINT32_MAX - 1;
    qstr_t *q = malloc(sizeof *q + len + 1);
    if (!q) return NULL;
    q->refs = 1;
    q->len = (uint32_t)len;
    q->rowdesc = NULL;
    q->rowdesc_len = 0;
    memcpy(q->text, text, len);
    q->text[len] = 0;
    return q;
}

static qstr_t *qstr_ref(qstr_t *q)
{
    if (q) q->refs++;
    return q;
}

static void qstr_unref(qstr_t *q)
{
    if (q && --q->refs == 0) {
        free(q->rowdesc);
        free(q);
    }
}

static const char *state_name(state_t st)
{
    static const char *const names[] = {"startup",    "client_tls", "sasl_init", "sasl_cont",
                                        "up_connect", "up_ssl",     "up_tls",    "up_auth",
                                        "up_init",    "ready",      "closing"};
    return (size_t)st < PC_ARRAY_LEN(names) ? names[st] : "?";
}


/* ---------- output ---------- */

static void out_put(side_t *sd, const void *p, size_t n)
{
    pc_pg_buf_t *b = &sd->out;
    if (!b->data) {
        b->data = chunk_get();
        b->cap = b->data ? OUT_CHUNK : 0;
        b->len = 0;
    }
    pc_pg_buf_put(b, p, n);
    if (b->len >= OUT_FLUSH_AT) side_flush(sd);
}

static void on_write(uv_write_t *req, int status)
{
    wreq_t *r = (wreq_t *)req;
    side_t *sd = r->side;
    session_t *s = sd->s;
    chunk_put(r->data, r->cap);
    wreq_put(r);
    if (status < 0) {
        if (s->state != ST_CLOSING) {
            pc_log_debug("pg write failed", PC_LUINT("session", s->id),
                         PC_LSTR("side", sd->is_client ? "client" : "upstream"),
                         PC_LSTR("error", uv_strerror(status)));
            if (sd->is_client) {
                s->client_gone = true;
                session_close(s);
            } else {
                s->up_gone = true;
                fatal_and_close(s, "08006", "upstream connection lost");
            }
        }
        return;
    }
    if (s->state == ST_CLOSING) return;
    update_reading(s);
}

static void write_raw(side_t *sd, uint8_t *data, size_t len, size_t cap)
{
    session_t *s = sd->s;
    /* Only a remainder the kernel would not take goes through uv_write
     * (errors included: it reports them through on_write). */
    size_t done = pc_net_write_now((uv_stream_t *)sd->tcp, data, len);
    if (done == len) {
        chunk_put(data, cap);
        return;
    }
    wreq_t *r = wreq_get();
    if (!r) {
        chunk_put(data, cap);
        session_close(s);
        return;
    }
    r->side = sd;
    r->data = data;
    r->cap = cap;
    uv_buf_t b = uv_buf_init((char *)data + done, (unsigned)(len - done));
    int rc = uv_write(&r->req, (uv_stream_t *)sd->tcp, &b, 1, on_write);
    if (rc < 0) {
        chunk_put(data, cap);
        wreq_put(r);
        if (sd->is_client) s->client_gone = true;
        session_close(s);
    }
}

/* Send what the TLS engine has produced (handshake records or ciphertext). */
static void tls_drain(side_t *sd)
{
    while (sd->tls && pc_tls_pending(sd->tls) > 0) {
        uint8_t *c = chunk_get();
        if (!c) {
            session_close(sd->s);
            return;
        }
        size_t n = pc_tls_take(sd->tls, c, OUT_CHUNK);
        if (!n) {
            chunk_put(c, OUT_CHUNK);
            return;
        }
        write_raw(sd, c, n, OUT_CHUNK);
    }
}

static void side_flush(side_t *sd)
{
    pc_pg_buf_t *b = &sd->out;
    if (!sd->inited || !b->data || b->len == 0) return;
    if (b->oom) {
        chunk_put(b->data, b->cap);
        memset(b, 0, sizeof *b);
        session_close(sd->s);
        return;
    }
    if (sd->tls) {
        bool ok = pc_tls_write(sd->tls, b->data, b->len);
        chunk_put(b->data, b->cap); /* plaintext is in the engine now */
        memset(b, 0, sizeof *b);
        if (!ok) {
            session_close(sd->s);
            return;
        }
        tls_drain(sd);
        return;
    }
    uint8_t *data = b->data;
    size_t len = b->len, cap = b->cap;
    memset(b, 0, sizeof *b);
    write_raw(sd, data, len, cap);
}

static void send_msg_buf(side_t *sd, pc_pg_buf_t *m)
{
    if (m->oom) {
        session_close(sd->s);
        return;
    }
    out_put(sd, m->data, m->len);
}

/* An error to the client. FATAL ends the session once it is written. */
static void client_error(session_t *s, const char *severity, const char *sqlstate,
                         const char *message)
{
    pc_pg_buf_t m = {0};
    pc_pg_build_error(&m, severity, sqlstate, message, NULL);
    send_msg_buf(&s->client, &m);
    pc_pg_buf_free(&m);
}

static void fatal_and_close(session_t *s, const char *sqlstate, const char *message)
{
    if (s->state == ST_CLOSING) return;
    client_error(s, "FATAL", sqlstate, message);
    side_flush(&s->client);
    session_close(s);
}

/* ---------- audit ---------- */

static void audit_base(session_t *s, pc_audit_rec_t *r, pc_audit_kind_t kind)
{
    memset(r, 0, sizeof *r);
    r->kind = kind;
    r->user = s->user ? s->user->username : s->username;
    r->resource = s->resource ? s->resource->name : NULL;
    r->technology = "postgres";
    r->session_id = s->id;
    r->client_ip = s->client_ip;
    r->db_name = s->database;
    r->application = s->application;
    r->rows = -1;
    r->bytes = -1;
    r->status = -1;
}

static void audit_emit(session_t *s, const pc_audit_rec_t *r)
{
    pc_spool_t *sp = pc_worker_ctx(s->w)->spool;
    if (sp) (void)pc_audit_emit(sp, r);
}

static void audit_session(session_t *s, pc_audit_kind_t kind, const char *decision,
                          const char *reason, const char *error)
{
    pc_audit_rec_t r;
    audit_base(s, &r, kind);
    r.decision = decision;
    r.reason = reason;
    r.error = error;
    if (kind == PC_AUDIT_SESSION_END) r.duration_us = (pc_now_mono_ns() - s->start_ns) / 1000;
    audit_emit(s, &r);
}

static const char *item_stage(item_kind_t k)
{
    switch (k) {
    case IT_PARSE:
        return "parse";
    case IT_EXECUTE:
        return "execute";
    default:
        return "simple";
    }
}

static void audit_item(session_t *s, const item_t *it)
{
    if (it->kind != IT_SIMPLE && it->kind != IT_PARSE && it->kind != IT_EXECUTE) return;
    pc_audit_rec_t r;
    audit_base(s, &r, PC_AUDIT_REQUEST);
    r.query = it->query ? it->query->text : "";
    r.stage = item_stage(it->kind);
    r.decision = "allow";
    if (it->dec) {
        if (it->dec->action == PC_DECISION_BLOCK)
            r.decision = "block"; /* post_request failed closed: rows withheld */
        else if (it->dec->n_masked)
            r.decision = "mask";
        r.policies = it->dec->policies[0] ? it->dec->policies : NULL;
        r.masked_columns = it->dec->masked_columns[0] ? it->dec->masked_columns : NULL;
        r.reason = it->dec->reason[0] ? it->dec->reason : NULL;
    }
    r.rows = it->kind == IT_PARSE ? -1 : it->rows;
    r.duration_us = (pc_now_mono_ns() - it->start_ns) / 1000;
    r.error = it->error;
    audit_emit(s, &r);
}

static void audit_blocked(session_t *s, const char *query, const char *stage,
                          const pc_decision_t *d)
{
    pc_audit_rec_t r;
    audit_base(s, &r, PC_AUDIT_REQUEST);
    r.query = query;
    r.stage = stage;
    r.decision = "block";
    r.policies = d->policies[0] ? d->policies : NULL;
    r.reason = d->reason;
    r.duration_us = 0;
    audit_emit(s, &r);
}

/* ---------- request queue ---------- */

static item_t *item_push(session_t *s, item_kind_t kind, qstr_t *query)
{
    item_t *it = calloc(1, sizeof *it);
    if (!it) return NULL;
    it->kind = kind;
    it->query = qstr_ref(query);
    it->start_ns = pc_now_mono_ns();
    it->rows = -1;
    s->n_pending++;
    if (s->q_tail)
        s->q_tail->next = it;
    else
        s->q_head = it;
    s->q_tail = it;
    return it;
}

static void item_free(item_t *it)
{
    qstr_unref(it->query);
    free(it->error);
    free(it->synth);
    free(it->dec);
    free(it);
}

static void item_pop(session_t *s, bool audit)
{
    item_t *it = s->q_head;
    if (!it) return;
    s->q_head = it->next;
    if (!s->q_head) s->q_tail = NULL;
    s->n_pending--;
    if (audit) audit_item(s, it);
    item_free(it);
}

static void items_free_all(session_t *s)
{
    while (s->q_head)
        item_pop(s, false);
}

/* Connector-made responses go out once everything before them has. */
static void drain_synth(session_t *s)
{
    while (s->q_head && s->q_head->kind == IT_SYNTH) {
        /* In a batch the upstream already failed, the server skips to Sync:
         * so would the client, so our response is not due. */
        if (!s->ext_error && !s->result_suppress)
            out_put(&s->client, s->q_head->synth, s->q_head->synth_len);
        item_pop(s, false);
    }
}

static void named_set(session_t *s, named_t **list, const char *name, qstr_t *q, bool is_stmt)
{
    for (named_t *n = *list; n; n = n->next) {
        if (strcmp(n->name, name) == 0) {
            qstr_unref(n->query);
            n->query = qstr_ref(q);
            return;
        }
    }
    size_t *count = is_stmt ? &s->n_stmts : &s->n_portals;
    if (*count >= MAX_STATEMENTS) return; /* audit falls back to "" */
    named_t *n = malloc(sizeof *n);
    if (!n) return;
    n->name = strdup(name);
    if (!n->name) {
        free(n);
        return;
    }
    n->query = qstr_ref(q);
    n->next = *list;
    *list = n;
    (*count)++;
}

/* Move-to-front: the statements a session runs over and over stay at the head. */
static qstr_t *named_get(named_t **list, const char *name)
{
    for (named_t **pp = list; *pp; pp = &(*pp)->next) {
        named_t *n = *pp;
        if (strcmp(n->name, name) == 0) {
            *pp = n->next;
            n->next = *list;
            *list = n;
            return n->query;
        }
    }
    return NULL;
}

static void named_del(session_t *s, named_t **list, const char *name, bool is_stmt)
{
    for (named_t **pp = list; *pp; pp = &(*pp)->next) {
        if (strcmp((*pp)->name, name) == 0) {
            named_t *n = *pp;
            *pp = n->next;
            qstr_unref(n->query);
            free(n->name);
            free(n);
            if (is_stmt)
                s->n_stmts--;
            else
                s->n_portals--;
            return;
        }
    }
}

static void named_free_all(named_t **list)
{
    while (*list) {
        named_t *n = *list;
        *list = n->next;
        qstr_unref(n->query);
        free(n->name);
        free(n);
    }
}

/* ---------- lifecycle ---------- */

/* A worker's pools and state go when its thread ends (the runtime has no
 * per-module worker teardown): a thread-specific key with a destructor. */
static pthread_key_t worker_key;
static pthread_once_t worker_key_once = PTHREAD_ONCE_INIT;

static void worker_thread_end(void *arg)
{
    pg_worker_t *pw = arg;
    while (tl_n_chunks)
        free(tl_chunks[--tl_n_chunks]);
    while (tl_wreqs) {
        wreq_t *r = tl_wreqs;
        tl_wreqs = r->next_free;
        free(r);
    }
    tl_n_wreqs = 0;
    while (tl_sessions) {
        session_t *s = tl_sessions;
        tl_sessions = s->pool_next;
        free(s);
    }
    tl_n_sessions = 0;
    /* Sessions still listed were ended by terminate_all; their handles died
     * with the loop, so only the bookkeeping remains. */
    free(pw);
}

static void worker_key_init(void)
{
    PC_BUG_ON(pthread_key_create(&worker_key, worker_thread_end) != 0);
}

static pg_worker_t *pg_worker(pc_worker_t *w)
{
    void **slot = pc_worker_proto_slot(w, PC_TECH_POSTGRES);
    if (!*slot) {
        pthread_once(&worker_key_once, worker_key_init);
        *slot = pc_xcalloc(1, sizeof(pg_worker_t));
        pthread_setspecific(worker_key, *slot);
    }
    return *slot;
}

static void handle_gone(session_t *s)
{
    if (--s->open_handles > 0) return;
    pc_net_conn_gone(&s->pw->conns, &s->conn);
    pc_snapshot_unref(s->snap);
    session_release(s);
}

static void on_timer_closed(uv_handle_t *h)
{
    handle_gone(h->data);
}

static void on_tcp_closed(uv_handle_t *h)
{
    side_t *sd = h->data;
    session_t *s = sd->s;
    if (sd->is_client) free(h); /* the worker allocated the accepted handle */
    handle_gone(s);
}

static void close_client_now(session_t *s)
{
    if (s->client_closing) return;
    s->client_closing = true;
    uv_close((uv_handle_t *)s->client.tcp, on_tcp_closed);
    uv_close((uv_handle_t *)&s->timer, on_timer_closed);
}

static void on_client_shutdown(uv_shutdown_t *req, int status)
{
    session_t *s = req->data;
    (void)status;
    free(req);
    close_client_now(s);
}

static void on_linger_timeout(uv_timer_t *t)
{
    close_client_now(t->data); /* a client that does not read its FATAL */
}

static void side_cleanup(side_t *sd)
{
    pc_tls_free(sd->tls);
    sd->tls = NULL;
    free(sd->in);
    sd->in = NULL;
    sd->in_len = sd->in_cap = 0;
    chunk_put(sd->out.data, sd->out.cap);
    memset(&sd->out, 0, sizeof sd->out);
}

static void session_close(session_t *s)
{
    if (s->state == ST_CLOSING) return;
    pc_log_debug("pg session closing", PC_LUINT("session", s->id),
                 PC_LSTR("state", state_name(s->state)));
    s->state = ST_CLOSING;
    if (s->started) audit_session(s, PC_AUDIT_SESSION_END, NULL, NULL, NULL);
    if (s->our_pid) pc__pg_cancel_unregister(s->our_pid);
    s->our_pid = 0;
    if (s->client.inited && !s->client_gone) side_flush(&s->client);
    if (s->up_ready && !s->up_gone) {
        /* Terminate, so the server ends the backend cleanly (best effort:
         * what the socket does not take at once goes with the close). */
        static const uint8_t terminate[5] = {'X', 0, 0, 0, 4};
        out_put(&s->up, terminate, sizeof terminate);
        side_flush(&s->up);
    }
    items_free_all(s);
    named_free_all(&s->stmts);
    named_free_all(&s->portals);
    if (s->scram_srv) {
        pc_scram_server_clear(s->scram_srv);
        free(s->scram_srv);
        s->scram_srv = NULL;
    }
    if (s->scram_cli) {
        pc_scram_client_clear(s->scram_cli);
        free(s->scram_cli);
        s->scram_cli = NULL;
    }
    free(s->username);
    free(s->database);
    free(s->application);
    free(s->startup_body);
    free(s->result_types);
    s->username = s->database = s->application = NULL;
    s->startup_body = NULL;
    side_cleanup(&s->client);
    side_cleanup(&s->up);
    if (s->up.inited) uv_close((uv_handle_t *)s->up.tcp, on_tcp_closed);
    if (!s->client.inited) {
        uv_close((uv_handle_t *)&s->timer, on_timer_closed);
        return;
    }
    uv_read_stop((uv_stream_t *)s->client.tcp);
    /* uv_close would cancel queued writes (e.g. a FATAL): shut the write side
     * down first (libuv completes queued writes before it), close after. The
     * timer bounds how long a client that does not read can hold us. */
    uv_shutdown_t *req = s->client_gone ? NULL : malloc(sizeof *req);
    if (req) {
        req->data = s;
        if (uv_shutdown(req, (uv_stream_t *)s->client.tcp, on_client_shutdown) == 0) {
            uv_timer_stop(&s->timer);
            uv_timer_start(&s->timer, on_linger_timeout, 5000, 0);
            return;
        }
        free(req);
    }
    close_client_now(s);
}

static void on_timeout(uv_timer_t *t)
{
    session_t *s = t->data;
    if (s->state == ST_READY || s->state == ST_CLOSING) return;
    pc_log_warn("pg session timed out", PC_LUINT("session", s->id),
                PC_LSTR("state", state_name(s->state)), PC_LSTR("client_ip", s->client_ip));
    if (s->state >= ST_UP_CONNECT)
        fatal_and_close(s, "08006", "upstream unavailable: timed out");
    else
        fatal_and_close(s, "08006", "authentication timed out");
}

/* ---------- reading ---------- */

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)h;
    (void)suggested;
    *buf = uv_buf_init((char *)tl_read_buf, sizeof tl_read_buf);
}

static bool side_wants_read(const side_t *sd)
{
    const session_t *s = sd->s;
    if (s->state == ST_CLOSING || !sd->inited) return false;
    if (sd->is_client) {
        switch (s->state) {
        case ST_STARTUP:
        case ST_CLIENT_TLS:
        case ST_SASL_INIT:
        case ST_SASL_CONT:
            return true;
        case ST_READY:
            /* A client pipelining faster than the server answers waits. */
            if (s->n_pending >= MAX_PENDING) return false;
            break;
        default:
            return false; /* queries wait until the upstream session is ready */
        }
    } else if (s->state < ST_UP_SSL) {
        return false;
    }
    const side_t *peer = sd->is_client ? &s->up : &s->client;
    if (!peer->inited) return true;
    size_t q = uv_stream_get_write_queue_size((const uv_stream_t *)peer->tcp);
    return q < (sd->reading ? WQ_HIGH : WQ_LOW);
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf);

static void side_set_reading(side_t *sd, bool want)
{
    if (want == sd->reading) return;
    if (want) {
        if (uv_read_start((uv_stream_t *)sd->tcp, on_alloc, on_read) == 0) sd->reading = true;
    } else {
        uv_read_stop((uv_stream_t *)sd->tcp);
        sd->reading = false;
    }
}

static void update_reading(session_t *s)
{
    if (s->state == ST_CLOSING) return;
    if (s->client.inited) side_set_reading(&s->client, side_wants_read(&s->client));
    if (s->up.inited) side_set_reading(&s->up, side_wants_read(&s->up));
}

static void side_buffer(side_t *sd, const uint8_t *p, size_t n)
{
    if (!n) return;
    if (sd->in_cap - sd->in_len < n) {
        size_t cap = sd->in_cap ? sd->in_cap : 512;
        while (cap - sd->in_len < n)
            cap *= 2;
        uint8_t *q = realloc(sd->in, cap);
        if (!q) {
            session_close(sd->s);
            return;
        }
        sd->in = q;
        sd->in_cap = cap;
    }
    memcpy(sd->in + sd->in_len, p, n);
    sd->in_len += n;
}

static void on_peer_eof(side_t *sd, ssize_t err)
{
    session_t *s = sd->s;
    if (sd->is_client) {
        s->client_gone = true;
        session_close(s);
        return;
    }
    s->up_gone = true;
    if (s->state == ST_READY) {
        /* A server that dies without a word would leave the client guessing. */
        if (!s->up_fatal)
            client_error(s, "FATAL", "08006", "upstream connection closed unexpectedly");
        session_close(s);
        return;
    }
    char msg[160];
    snprintf(msg, sizeof msg, "upstream unavailable: %s",
             err == UV_EOF ? "connection closed by server" : uv_strerror((int)err));
    fatal_and_close(s, "08006", msg);
}

static void tls_handshake_done(side_t *sd);

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    side_t *sd = stream->data;
    session_t *s = sd->s;
    if (s->state == ST_CLOSING) return;
    if (nread < 0) {
        on_peer_eof(sd, nread);
        return;
    }
    if (nread == 0) return;
    const uint8_t *data = (const uint8_t *)buf->base;
    if (!sd->tls) {
        side_input(sd, data, (size_t)nread);
    } else {
        if (!pc_tls_feed(sd->tls, data, (size_t)nread)) {
            session_close(s);
            return;
        }
        if (!pc_tls_handshake_done(sd->tls)) {
            pc_tls_status_t st = pc_tls_handshake(sd->tls);
            tls_drain(sd);
            if (st == PC_TLS_ERROR) {
                if (sd->is_client) {
                    pc_log_info("pg client tls handshake failed", PC_LUINT("session", s->id),
                                PC_LSTR("error", pc_tls_error(sd->tls)));
                    session_close(s);
                } else {
                    char msg[220];
                    snprintf(msg, sizeof msg, "upstream unavailable: %s", pc_tls_error(sd->tls));
                    fatal_and_close(s, "08006", msg);
                }
                return;
            }
            if (st != PC_TLS_OK) return;
            tls_handshake_done(sd);
            if (s->state == ST_CLOSING) return;
        }
        for (;;) {
            size_t got = 0;
            pc_tls_status_t st = pc_tls_read(sd->tls, tl_plain_buf, sizeof tl_plain_buf, &got);
            if (st == PC_TLS_OK) {
                side_input(sd, tl_plain_buf, got);
                if (s->state == ST_CLOSING) return;
                continue;
            }
            tls_drain(sd);
            if (st == PC_TLS_WANT) break;
            on_peer_eof(sd, UV_EOF);
            return;
        }
    }
    if (s->state == ST_CLOSING) return;
    side_flush(&s->client);
    if (s->up.inited) side_flush(&s->up);
    update_reading(s);
}

/* ---------- startup and client authentication ---------- */


static void send_auth(session_t *s, uint32_t code, const void *data, size_t len)
{
    pc_pg_buf_t m = {0};
    pc_pg_build_auth(&m, code, data, len);
    send_msg_buf(&s->client, &m);
    pc_pg_buf_free(&m);
}

static void handle_cancel(session_t *s, uint32_t pid, uint32_t key);

static void handle_startup(session_t *s, const pc_pg_msg_t *m)
{
    pc_pg_startup_t su;
    if (!pc_pg_parse_startup(m->body, m->body_len, &su)) {
        pc_log_info("pg bad startup packet", PC_LUINT("session", s->id),
                    PC_LSTR("client_ip", s->client_ip));
        fatal_and_close(s, "08P01", "invalid startup packet layout");
        return;
    }
    switch (su.kind) {
    case PC_PG_STARTUP_SSL: {
        SSL_CTX *ctx = s->listener->tls == PC_LISTENER_TLS_DISABLED || s->client.tls
                           ? NULL
                           : pc_net_server_tls_ctx(pc_worker_ctx(s->w)->cfg);
        if (s->client.rest_after != 0) {
            /* Bytes after SSLRequest would be taken as plaintext that
             * seemed to come through TLS (CVE-2021-23214 class). */
            fatal_and_close(s, "08P01", "received unencrypted data after SSL request");
            return;
        }
        out_put(&s->client, ctx ? "S" : "N", 1);
        side_flush(&s->client);
        if (ctx) {
            s->client.tls = pc_tls_new_server(ctx);
            if (!s->client.tls) {
                session_close(s);
                return;
            }
            s->state = ST_CLIENT_TLS;
        }
        return;
    }
    case PC_PG_STARTUP_GSSENC:
        out_put(&s->client, "N", 1);
        return;
    case PC_PG_STARTUP_CANCEL:
        handle_cancel(s, su.cancel_pid, su.cancel_key);
        return;
    case PC_PG_STARTUP_UNSUPPORTED_VERSION: {
        char msg[128];
        snprintf(msg, sizeof msg, "unsupported frontend protocol %u.%u: server supports 3.0 to 3.0",
                 su.code >> 16, su.code & 0xffff);
        fatal_and_close(s, "0A000", msg);
        return;
    }
    case PC_PG_STARTUP_V3:
        break;
    }
    if (s->listener->tls == PC_LISTENER_TLS_REQUIRED && !s->client.tls) {
        fatal_and_close(s, "28000", "this listener requires TLS (connect with sslmode=require)");
        return;
    }
    const char *user = pc_pg_startup_param(&su, "user");
    if (!user || !*user) {
        fatal_and_close(s, "28000", "no PostgreSQL user name specified in startup packet");
        return;
    }
    if (pc_pg_startup_param(&su, "replication")) {
        const char *r = pc_pg_startup_param(&su, "replication");
        if (strcmp(r, "false") != 0 && strcmp(r, "0") != 0 && strcmp(r, "off") != 0 &&
            strcmp(r, "no") != 0) {
            fatal_and_close(s, "0A000", "replication connections are not supported");
            return;
        }
    }
    const char *db = pc_pg_startup_param(&su, "database");
    const char *app = pc_pg_startup_param(&su, "application_name");
    s->username = strdup(user);
    s->database = (db && *db)                              ? strdup(db)
                  : (s->resource && s->resource->database) ? strdup(s->resource->database)
                                                           : strdup(user);
    s->application = app ? strdup(app) : NULL;
    s->startup_body = malloc(m->body_len);
    if (!s->username || !s->database || (app && !s->application) || !s->startup_body) {
        session_close(s);
        return;
    }
    memcpy(s->startup_body, m->body, m->body_len);
    s->startup_len = m->body_len;

    s->user = pc_snapshot_user(s->snap, user);
    s->scram_srv = malloc(sizeof *s->scram_srv);
    if (!s->scram_srv) {
        session_close(s);
        return;
    }
    /* An unknown user (or one without a password) runs the same exchange
     * against a mock verifier and fails the same way: no user enumeration. */
    const pc_scram_verifier_t *v = s->user && s->user->has_password ? &s->user->scram : NULL;
    pc_scram_server_init(s->scram_srv, v, user, NULL);
    static const char mechs[] = PC_SCRAM_MECHANISM "\0";
    send_auth(s, 10, mechs, sizeof mechs);
    s->state = ST_SASL_INIT;
}

static void auth_failed(session_t *s, const char *why)
{
    char msg[200];
    pc_log_info("pg authentication failed", PC_LUINT("session", s->id),
                PC_LSTR("user", s->username), PC_LSTR("client_ip", s->client_ip),
                PC_LSTR("reason", why));
    audit_session(s, PC_AUDIT_SESSION_START, "block", NULL, "password authentication failed");
    snprintf(msg, sizeof msg, "password authentication failed for user \"%s\"", s->username);
    fatal_and_close(s, "28P01", msg);
}

static void session_stage_passed(session_t *s);

static void handle_sasl(session_t *s, const pc_pg_msg_t *m)
{
    if (m->type != 'p') {
        fatal_and_close(s, "08P01", "expected SASL response");
        return;
    }
    char out[PC_SCRAM_MAX_OUT];
    size_t out_len = 0;
    const char *problem = NULL;
    pc_scram_result_t r;
    if (s->state == ST_SASL_INIT) {
        const char *mech;
        const uint8_t *data;
        uint32_t dlen;
        if (!pc_pg_parse_sasl_initial(m->body, m->body_len, &mech, &data, &dlen)) {
            fatal_and_close(s, "08P01", "malformed SASLInitialResponse message");
            return;
        }
        if (strcmp(mech, PC_SCRAM_MECHANISM) != 0) {
            fatal_and_close(s, "28000", "client selected an invalid SASL authentication mechanism");
            return;
        }
        r = pc_scram_server_first(s->scram_srv, (const char *)data, dlen, out, sizeof out, &out_len,
                                  &problem);
        if (r == PC_SCRAM_OK) {
            send_auth(s, 11, out, out_len);
            s->state = ST_SASL_CONT;
            return;
        }
    } else {
        const uint8_t *data;
        uint32_t dlen;
        pc_pg_parse_sasl_response(m->body, m->body_len, &data, &dlen);
        r = pc_scram_server_final(s->scram_srv, (const char *)data, dlen, out, sizeof out, &out_len,
                                  &problem);
        if (r == PC_SCRAM_OK) {
            send_auth(s, 12, out, out_len);
            send_auth(s, 0, NULL, 0);
            pc_scram_server_clear(s->scram_srv);
            free(s->scram_srv);
            s->scram_srv = NULL;
            session_stage_passed(s);
            return;
        }
    }
    if (r == PC_SCRAM_MALFORMED) {
        pc_log_info("pg malformed SCRAM message", PC_LUINT("session", s->id),
                    PC_LSTR("problem", problem ? problem : "?"));
        fatal_and_close(s, "08P01", "malformed SCRAM message");
        return;
    }
    auth_failed(s, problem ? problem : "wrong password or unknown user");
}

static void fill_ctx(session_t *s, pc_decision_ctx_t *c, pc_decision_stage_t stage)
{
    memset(c, 0, sizeof *c);
    c->stage = stage;
    /* Policies come from the newest snapshot, so an edit applies from the
     * next statement of open sessions; the session's identity objects stay
     * those it logged in with. */
    c->snapshot = pc_worker_snapshot(s->w);
    if (!c->snapshot) c->snapshot = s->snap;
    c->user = s->user;
    c->resource = s->resource;
    c->listener = s->listener;
    c->client_ip = s->client_ip;
    c->db_name = s->database;
    c->application = s->application;
    c->tls = s->client.tls != NULL;
    c->session_id = s->id;
    c->instance = pc_worker_ctx(s->w)->instance_name;
}

/* Keep what a decision named for the item's audit record. */
static void item_note_decision(item_t *it, const pc_decision_t *d)
{
    if (!it || (!d->policies[0] && !d->n_masked)) return;
    if (!it->dec) {
        it->dec = calloc(1, sizeof *it->dec);
        if (!it->dec) return;
        it->dec->limit = -1;
    }
    pc_decision_combine(it->dec, d);
    if (d->limit >= 0 && !it->dec->reason[0])
        snprintf(it->dec->reason, sizeof it->dec->reason, "rows limited to %lld by policy",
                 (long long)d->limit);
}

static void session_stage_passed(session_t *s)
{
    pc_decision_ctx_t c;
    pc_decision_t d;
    fill_ctx(s, &c, PC_STAGE_SESSION);
    pc_decision_eval(&c, &d);
    if (d.action == PC_DECISION_BLOCK) {
        pc_log_info("pg session blocked", PC_LUINT("session", s->id), PC_LSTR("user", s->username),
                    PC_LSTR("reason", d.reason));
        audit_session(s, PC_AUDIT_SESSION_START, "block", d.reason, NULL);
        if (d.block_type == PC_BLOCK_SILENTLY) {
            session_close(s);
            return;
        }
        char msg[600];
        snprintf(msg, sizeof msg, "%s",
                 d.block_type == PC_BLOCK_CUSTOM_MESSAGE && d.message[0] ? d.message
                 : d.reason[0]                                           ? d.reason
                               : "access denied by policy");
        fatal_and_close(s, "42501", msg);
        return;
    }
    if (!s->resource) {
        fatal_and_close(s, "08006", "upstream unavailable: listener has no resource");
        return;
    }
    start_upstream(s);
}

/* ---------- cancel requests ---------- */

typedef struct cancel_conn {
    uv_tcp_t tcp;
    uv_connect_t req;
    uv_write_t wreq;
    uint8_t msg[16];
} cancel_conn_t;

static void cancel_closed(uv_handle_t *h)
{
    free(h->data);
}

static void cancel_written(uv_write_t *req, int status)
{
    cancel_conn_t *c = req->data;
    (void)status;
    uv_close((uv_handle_t *)&c->tcp, cancel_closed);
}

static void cancel_connected(uv_connect_t *req, int status)
{
    cancel_conn_t *c = req->data;
    if (status < 0) {
        pc_log_info("pg cancel forward failed", PC_LSTR("error", uv_strerror(status)));
        uv_close((uv_handle_t *)&c->tcp, cancel_closed);
        return;
    }
    uv_buf_t b = uv_buf_init((char *)c->msg, sizeof c->msg);
    c->wreq.data = c;
    if (uv_write(&c->wreq, (uv_stream_t *)&c->tcp, &b, 1, cancel_written) < 0)
        uv_close((uv_handle_t *)&c->tcp, cancel_closed);
}

static void handle_cancel(session_t *s, uint32_t pid, uint32_t key)
{
    pc__pg_cancel_target_t t;
    /* PostgreSQL answers nothing to a cancel request either way. */
    if (pc__pg_cancel_lookup(pid, key, &t)) {
        cancel_conn_t *c = calloc(1, sizeof *c);
        if (c && uv_tcp_init(pc_worker_loop(s->w), &c->tcp) == 0) {
            c->tcp.data = c;
            c->req.data = c;
            pc_pg_buf_t b = {0};
            pc_pg_build_cancel(&b, t.pid, t.key);
            if (!b.oom && b.len == sizeof c->msg) memcpy(c->msg, b.data, sizeof c->msg);
            pc_pg_buf_free(&b);
            if (uv_tcp_connect(&c->req, &c->tcp, (const struct sockaddr *)&t.addr,
                               cancel_connected) < 0)
                uv_close((uv_handle_t *)&c->tcp, cancel_closed);
        } else {
            free(c);
        }
        pc_log_info("pg cancel forwarded", PC_LUINT("session", s->id));
    } else {
        pc_log_info("pg cancel for unknown session", PC_LUINT("session", s->id));
    }
    session_close(s);
}

/* ---------- upstream ---------- */

static SSL_CTX *upstream_tls_ctx(const pc_resource_t *r, char *err, size_t errlen)
{
    /* One context per (verify, CA file), shared by all workers. */
    static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
    static struct ctx_entry {
        struct ctx_entry *next;
        bool verify;
        char *ca;
        SSL_CTX *ctx;
    } * cache;
    bool verify = r->tls == PC_UPSTREAM_TLS_VERIFY_FULL;
    const char *ca = verify ? r->tls_ca_file : NULL;
    SSL_CTX *ctx = NULL;
    pthread_mutex_lock(&mu);
    for (struct ctx_entry *e = cache; e; e = e->next) {
        if (e->verify == verify && ((!e->ca && !ca) || (e->ca && ca && !strcmp(e->ca, ca)))) {
            ctx = e->ctx;
            break;
        }
    }
    if (!ctx) {
        ctx = pc_tls_client_ctx(verify, ca, err, errlen);
        if (ctx) {
            struct ctx_entry *e = pc_xcalloc(1, sizeof *e);
            e->verify = verify;
            e->ca = ca ? pc_xstrdup(ca) : NULL;
            e->ctx = ctx;
            e->next = cache;
            cache = e;
        }
    }
    pthread_mutex_unlock(&mu);
    return ctx;
}

static void upstream_fail(session_t *s, const char *what)
{
    char msg[300];
    snprintf(msg, sizeof msg, "upstream unavailable: %s", what);
    pc_log_warn("pg upstream failed", PC_LUINT("session", s->id),
                PC_LSTR("resource", s->resource ? s->resource->name : ""), PC_LSTR("error", what));
    audit_session(s, PC_AUDIT_SESSION_START, "allow", NULL, msg);
    fatal_and_close(s, "08006", msg);
}

static void send_upstream_startup(session_t *s)
{
    pc_pg_startup_t su;
    if (!pc_pg_parse_startup(s->startup_body, s->startup_len, &su)) {
        session_close(s);
        return;
    }
    const char *names[PC_PG_MAX_STARTUP_PARAMS + 2];
    const char *values[PC_PG_MAX_STARTUP_PARAMS + 2];
    size_t n = 0;
    names[n] = "user";
    values[n++] = s->resource->credentials.username ? s->resource->credentials.username : "";
    names[n] = "database";
    values[n++] = s->database;
    for (size_t i = 0; i < su.n_params; i++) {
        if (!strcmp(su.names[i], "user") || !strcmp(su.names[i], "database") ||
            !strcmp(su.names[i], "replication"))
            continue;
        names[n] = su.names[i];
        values[n++] = su.values[i];
    }
    pc_pg_buf_t m = {0};
    pc_pg_build_startup(&m, names, values, n);
    send_msg_buf(&s->up, &m);
    pc_pg_buf_free(&m);
    side_flush(&s->up);
    s->state = ST_UP_AUTH;
}

static void tls_handshake_done(side_t *sd)
{
    session_t *s = sd->s;
    if (sd->is_client) {
        s->state = ST_STARTUP;
        return;
    }
    send_upstream_startup(s);
}

static void on_up_connected(uv_connect_t *req, int status)
{
    session_t *s = req->data;
    if (s->state == ST_CLOSING) return;
    if (status < 0) {
        upstream_fail(s, uv_strerror(status));
        return;
    }
    uv_tcp_nodelay(s->up.tcp, 1);
    if (s->resource->tls != PC_UPSTREAM_TLS_DISABLE) {
        pc_pg_buf_t m = {0};
        pc_pg_build_ssl_request(&m);
        send_msg_buf(&s->up, &m);
        pc_pg_buf_free(&m);
        side_flush(&s->up);
        s->state = ST_UP_SSL;
    } else {
        send_upstream_startup(s);
    }
    update_reading(s);
}

static void connect_to(session_t *s, const struct sockaddr *sa)
{
    memset(&s->up_addr, 0, sizeof s->up_addr);
    memcpy(&s->up_addr, sa,
           sa->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in));
    s->connect_req.data = s;
    int rc = uv_tcp_connect(&s->connect_req, s->up.tcp, sa, on_up_connected);
    if (rc < 0) upstream_fail(s, uv_strerror(rc));
}

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    session_t *s = req->data;
    if (s->state == ST_CLOSING || status < 0 || !res) {
        if (s->state != ST_CLOSING)
            upstream_fail(s, status < 0 ? uv_strerror(status) : "host not found");
        uv_freeaddrinfo(res);
        return;
    }
    connect_to(s, res->ai_addr);
    uv_freeaddrinfo(res);
}

static void start_upstream(session_t *s)
{
    const pc_resource_t *r = s->resource;
    s->state = ST_UP_CONNECT;
    uv_timer_start(&s->timer, on_timeout, UPSTREAM_TIMEOUT_MS, 0);
    if (uv_tcp_init(pc_worker_loop(s->w), s->up.tcp) < 0) {
        upstream_fail(s, "out of resources");
        return;
    }
    s->up.tcp->data = &s->up;
    s->up.inited = true;
    s->open_handles++;
    update_reading(s); /* client input now waits for the upstream session */
    const char *host = r->hostname ? r->hostname : "127.0.0.1";
    int port = r->port ? r->port : 5432;
    struct sockaddr_in a4;
    struct sockaddr_in6 a6;
    if (uv_ip4_addr(host, port, &a4) == 0) {
        connect_to(s, (const struct sockaddr *)&a4);
        return;
    }
    if (uv_ip6_addr(host, port, &a6) == 0) {
        connect_to(s, (const struct sockaddr *)&a6);
        return;
    }
    char portstr[16];
    snprintf(portstr, sizeof portstr, "%d", port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    s->gai_req.data = s;
    int rc = uv_getaddrinfo(pc_worker_loop(s->w), &s->gai_req, on_resolved, host, portstr, &hints);
    if (rc < 0) upstream_fail(s, uv_strerror(rc));
}

static void handle_up_ssl_answer(session_t *s, uint8_t ans, size_t rest)
{
    side_t *up = &s->up;
    if (ans == 'S') {
        if (rest != 0) {
            upstream_fail(s, "server sent unencrypted data after SSL response");
            return;
        }
        char err[256];
        SSL_CTX *ctx = upstream_tls_ctx(s->resource, err, sizeof err);
        if (!ctx) {
            upstream_fail(s, err);
            return;
        }
        up->tls = pc_tls_new_client(ctx, s->resource->hostname);
        if (!up->tls) {
            upstream_fail(s, "tls setup failed");
            return;
        }
        s->state = ST_UP_TLS;
        (void)pc_tls_handshake(up->tls); /* ClientHello */
        tls_drain(up);
        return;
    }
    if (ans == 'N') {
        upstream_fail(s, "server does not support TLS but the resource requires it");
        return;
    }
    upstream_fail(s, "unexpected answer to SSL request");
}

/* Upstream errors during login: pass on what helps and holds no secret. */
static void upstream_login_error(session_t *s, const pc_pg_msg_t *m)
{
    pc_pg_error_fields_t ef;
    if (!pc_pg_parse_error(m->body, m->body_len, &ef) || !ef.code) {
        upstream_fail(s, "server rejected the connection");
        return;
    }
    if (!strncmp(ef.code, "28", 2)) {
        /* Class 28 names the upstream role: the client must not see it. */
        upstream_fail(s, "upstream authentication failed");
        return;
    }
    pc_log_warn("pg upstream refused session", PC_LUINT("session", s->id),
                PC_LSTR("sqlstate", ef.code), PC_LSTR("error", ef.message ? ef.message : ""));
    audit_session(s, PC_AUDIT_SESSION_START, "allow", NULL, ef.message);
    fatal_and_close(s, ef.code, ef.message ? ef.message : "upstream refused the connection");
}

static void handle_up_auth(session_t *s, const pc_pg_msg_t *m)
{
    if (m->type == 'E') {
        upstream_login_error(s, m);
        return;
    }
    if (m->type == 'v' || m->type == 'N') return; /* NegotiateProtocolVersion, notices */
    pc_pg_auth_t a;
    if (m->type != 'R' || !pc_pg_parse_auth(m->body, m->body_len, &a)) {
        upstream_fail(s, "protocol violation during authentication");
        return;
    }
    const char *user = s->resource->credentials.username ? s->resource->credentials.username : "";
    const char *pw = s->resource->credentials.password ? s->resource->credentials.password : "";
    char out[PC_SCRAM_MAX_OUT];
    size_t out_len = 0;
    const char *problem = NULL;
    pc_pg_buf_t b = {0};
    switch (a.code) {
    case 0:
        if (s->scram_cli) {
            /* AuthenticationOk without SASLFinal would skip server proof. */
            upstream_fail(s, "server skipped SCRAM verification");
            return;
        }
        s->state = ST_UP_INIT;
        return;
    case 3:
        pc_pg_build_password(&b, pw);
        break;
    case 5: {
        char md5[36];
        pc_pg_md5_response(user, pw, a.data, md5);
        pc_pg_build_password(&b, md5);
        break;
    }
    case 10:
        if (!pc_pg_sasl_has_mechanism(a.data, a.data_len, PC_SCRAM_MECHANISM)) {
            upstream_fail(s, "server offers no supported SASL mechanism");
            return;
        }
        s->scram_cli = calloc(1, sizeof *s->scram_cli);
        if (!s->scram_cli || !pc_scram_client_init(s->scram_cli, pw, strlen(pw), NULL)) {
            upstream_fail(s, "scram setup failed");
            return;
        }
        out_len = pc_scram_client_first(s->scram_cli, out, sizeof out);
        pc_pg_build_sasl_initial(&b, PC_SCRAM_MECHANISM, out, out_len);
        break;
    case 11:
        if (!s->scram_cli ||
            pc_scram_client_final(s->scram_cli, (const char *)a.data, a.data_len, out, sizeof out,
                                  &out_len, &problem) != PC_SCRAM_OK) {
            upstream_fail(s, "upstream SCRAM exchange failed");
            return;
        }
        pc_pg_build_sasl_response(&b, out, out_len);
        break;
    case 12: {
        bool ok = s->scram_cli && pc_scram_client_verify(s->scram_cli, (const char *)a.data,
                                                         a.data_len, &problem) == PC_SCRAM_OK;
        if (s->scram_cli) {
            pc_scram_client_clear(s->scram_cli);
            free(s->scram_cli);
            s->scram_cli = NULL;
        }
        if (!ok) {
            upstream_fail(s, "upstream server failed SCRAM verification");
            return;
        }
        /* Server proven: the AuthenticationOk that follows is accepted (scram_cli is gone). */
        return;
    }
    default: {
        char what[80];
        snprintf(what, sizeof what, "unsupported upstream authentication method %u", a.code);
        upstream_fail(s, what);
        return;
    }
    }
    send_msg_buf(&s->up, &b);
    pc_pg_buf_free(&b);
    side_flush(&s->up);
}

static void become_ready(session_t *s, const pc_pg_msg_t *z)
{
    uv_timer_stop(&s->timer);
    if (!s->our_pid) {
        /* The server sent no BackendKeyData: cancel cannot work, but the
         * client still needs a key; give one that maps nowhere. */
        pc__pg_cancel_target_t t = {.addr = s->up_addr, .pid = 0, .key = 0};
        pc__pg_cancel_register(&t, &s->our_pid, &(uint32_t){0});
    }
    s->state = ST_READY;
    s->started = true;
    s->up_ready = true;
    audit_session(s, PC_AUDIT_SESSION_START, "allow", NULL, NULL);
    pc_log_debug("pg session ready", PC_LUINT("session", s->id), PC_LSTR("user", s->username));
    out_put(&s->client, z->body - 5, z->total_len);
    char tx;
    s->tx_status = pc_pg_parse_ready(z->body, z->body_len, &tx) ? tx : 'I';
    /* Queries the client sent before the upstream session was ready. */
    process_buffered(&s->client);
    if (s->state == ST_READY) side_flush(&s->up);
}

static void handle_up_init(session_t *s, const pc_pg_msg_t *m)
{
    switch (m->type) {
    case 'K': {
        uint32_t pid, key;
        if (!pc_pg_parse_backend_key(m->body, m->body_len, &pid, &key)) {
            upstream_fail(s, "protocol violation: bad BackendKeyData");
            return;
        }
        pc__pg_cancel_target_t t = {.addr = s->up_addr, .pid = pid, .key = key};
        if (s->our_pid) pc__pg_cancel_unregister(s->our_pid);
        uint32_t our_key;
        pc__pg_cancel_register(&t, &s->our_pid, &our_key);
        pc_pg_buf_t b = {0};
        pc_pg_build_backend_key(&b, s->our_pid, our_key);
        send_msg_buf(&s->client, &b);
        pc_pg_buf_free(&b);
        return;
    }
    case 'Z':
        become_ready(s, m);
        return;
    case 'E':
        upstream_login_error(s, m);
        return;
    case 'S':
    case 'N':
        out_put(&s->client, m->body - 5, m->total_len);
        return;
    default:
        upstream_fail(s, "protocol violation after authentication");
        return;
    }
}

/* ---------- relay: client -> upstream ---------- */

static void forward(side_t *to, const pc_pg_msg_t *m)
{
    out_put(to, m->body - 5, m->total_len);
}

/* The ErrorResponse text of a block decision. */
static const char *block_message(const pc_decision_t *d)
{
    if (d->block_type == PC_BLOCK_CUSTOM_MESSAGE && d->message[0]) return d->message;
    return d->reason[0] ? d->reason : "access denied by policy";
}

/* A blocked request: the error goes to the client in its place in the
 * response order. Simple queries also get their ReadyForQuery. */
static void block_request(session_t *s, const pc_decision_t *d, const char *query,
                          const char *stage, bool simple)
{
    audit_blocked(s, query, stage, d);
    pc_log_info("pg request blocked", PC_LUINT("session", s->id), PC_LSTR("stage", stage),
                PC_LSTR("reason", d->reason));
    if (d->block_type == PC_BLOCK_SILENTLY) {
        session_close(s);
        return;
    }
    pc_pg_buf_t b = {0};
    pc_pg_build_error(&b, "ERROR", "42501", block_message(d), NULL);
    if (simple) pc_pg_build_ready(&b, s->tx_status ? s->tx_status : 'I');
    if (b.oom) {
        pc_pg_buf_free(&b);
        session_close(s);
        return;
    }
    item_t *it = item_push(s, IT_SYNTH, NULL);
    if (!it) {
        pc_pg_buf_free(&b);
        session_close(s);
        return;
    }
    it->synth = b.data;
    it->synth_len = b.len;
    if (!simple) s->skip_until_sync = true;
    drain_synth(s);
}

static bool pre_request(session_t *s, const char *query, size_t qlen, const char *stage,
                        bool simple, pc_decision_t *d)
{
    pc_decision_ctx_t c;
    fill_ctx(s, &c, PC_STAGE_PRE_REQUEST);
    c.query = query;
    c.query_len = qlen;
    c.pg_stage = stage;
    pc_decision_eval(&c, d);
    if (d->action != PC_DECISION_BLOCK) return true;
    block_request(s, d, query, stage, simple);
    return false;
}

static void client_protocol_error(session_t *s, const char *what)
{
    pc_log_info("pg client protocol violation", PC_LUINT("session", s->id),
                PC_LSTR("client_ip", s->client_ip), PC_LSTR("error", what));
    fatal_and_close(s, "08P01", what);
}

static void handle_client_ready(session_t *s, const pc_pg_msg_t *m)
{
    if (s->skip_until_sync && m->type != 'S') return;
    if (m->type == 'Q' || m->type == 'E') pc_metric_add(s->m_queries, 1);
    switch (m->type) {
    case 'Q': {
        const char *q;
        size_t qlen;
        if (!pc_pg_parse_query(m->body, m->body_len, &q, &qlen)) {
            client_protocol_error(s, "malformed Query message");
            return;
        }
        pc_decision_t d;
        if (!pre_request(s, q, qlen, "simple", true, &d)) return;
        qstr_t *qs = qstr_new(q, qlen);
        item_t *it = qs ? item_push(s, IT_SIMPLE, qs) : NULL;
        if (!it) {
            qstr_unref(qs);
            session_close(s);
            return;
        }
        item_note_decision(it, &d);
        qstr_unref(qs);
        break;
    }
    case 'P': {
        pc_pg_parse_msg_t p;
        if (!pc_pg_parse_parse(m->body, m->body_len, &p)) {
            client_protocol_error(s, "malformed Parse message");
            return;
        }
        pc_decision_t d;
        if (!pre_request(s, p.query, p.query_len, "parse", false, &d)) return;
        qstr_t *qs = qstr_new(p.query, p.query_len);
        item_t *it = qs ? item_push(s, IT_PARSE, qs) : NULL;
        if (!it) {
            qstr_unref(qs);
            session_close(s);
            return;
        }
        item_note_decision(it, &d);
        named_set(s, &s->stmts, p.stmt, qs, true);
        qstr_unref(qs);
        break;
    }
    case 'B': {
        const char *portal, *stmt;
        if (!pc_pg_parse_bind(m->body, m->body_len, &portal, &stmt)) {
            client_protocol_error(s, "malformed Bind message");
            return;
        }
        qstr_t *qs = named_get(&s->stmts, stmt);
        if (qs)
            named_set(s, &s->portals, portal, qs, false);
        else
            named_del(s, &s->portals, portal, false);
        if (!item_push(s, IT_BIND, NULL)) {
            session_close(s);
            return;
        }
        break;
    }
    case 'E': {
        const char *portal;
        uint32_t max_rows;
        if (!pc_pg_parse_execute(m->body, m->body_len, &portal, &max_rows)) {
            client_protocol_error(s, "malformed Execute message");
            return;
        }
        qstr_t *qs = named_get(&s->portals, portal);
        pc_decision_t d;
        if (!pre_request(s, qs ? qs->text : "", qs ? qs->len : 0, "execute", false, &d)) return;
        item_t *it = item_push(s, IT_EXECUTE, qs);
        if (!it) {
            session_close(s);
            return;
        }
        item_note_decision(it, &d);
        break;
    }
    case 'D':
    case 'C': {
        char kind;
        const char *name;
        if (!pc_pg_parse_describe_close(m->body, m->body_len, &kind, &name)) {
            client_protocol_error(s, m->type == 'D' ? "malformed Describe message"
                                                    : "malformed Close message");
            return;
        }
        if (m->type == 'C') {
            if (kind == 'S')
                named_del(s, &s->stmts, name, true);
            else
                named_del(s, &s->portals, name, false);
        }
        /* Describe carries the statement text so post_request sees the query. */
        qstr_t *dq = m->type == 'D' ? named_get(kind == 'S' ? &s->stmts : &s->portals, name) : NULL;
        item_t *it = item_push(s, m->type == 'D' ? IT_DESCRIBE : IT_CLOSE, dq);
        if (!it) {
            session_close(s);
            return;
        }
        it->describe_kind = kind;
        break;
    }
    case 'S':
        s->skip_until_sync = false;
        if (!item_push(s, IT_SYNC, NULL)) {
            session_close(s);
            return;
        }
        break;
    case 'F':
        if (!item_push(s, IT_FUNC, NULL)) {
            session_close(s);
            return;
        }
        break;
    case 'X':
        s->client_gone = true;
        session_close(s); /* sends Terminate upstream */
        return;
    case 'd':
    case 'c':
    case 'f':
    case 'H':
        break;
    default:
        client_protocol_error(s, "invalid frontend message type");
        return;
    }
    forward(&s->up, m);
}

/* ---------- relay: upstream -> client ---------- */

static const char *type_name(uint32_t oid)
{
    switch (oid) {
    case 16:
        return "bool";
    case 17:
        return "bytea";
    case 18:
        return "char";
    case 19:
        return "name";
    case 20:
        return "int8";
    case 21:
        return "int2";
    case 23:
        return "int4";
    case 25:
        return "text";
    case 26:
        return "oid";
    case 114:
        return "json";
    case 700:
        return "float4";
    case 701:
        return "float8";
    case 1042:
        return "bpchar";
    case 1043:
        return "varchar";
    case 1082:
        return "date";
    case 1083:
        return "time";
    case 1114:
        return "timestamp";
    case 1184:
        return "timestamptz";
    case 1700:
        return "numeric";
    case 2950:
        return "uuid";
    case 3802:
        return "jsonb";
    default:
        return NULL;
    }
}

/* The request a result set belongs to: the Query or Execute at the head, or
 * the Execute right after a Describe of its portal (judged at the Describe). */
static item_t *result_item(session_t *s)
{
    for (item_t *it = s->q_head; it; it = it->next) {
        if (it->kind == IT_SIMPLE || it->kind == IT_EXECUTE) return it;
        if (it->kind != IT_DESCRIBE) return NULL;
    }
    return NULL;
}

/* post_request: judge the result set about to stream, from its
 * RowDescription body (NULL when the client did not ask for one and none is
 * cached: the engine then sees no columns but still judges). */
static void judge_result(session_t *s, const uint8_t *rd, uint32_t rd_len, const qstr_t *query)
{
    /* Every column is described (a policy must be able to mask any of them);
     * wide results take a heap array. */
    pc_decision_column_t small[64], *cols = small;
    size_t n = 0, cap = PC_ARRAY_LEN(small);
    pc_pg_rowdesc_iter_t it;
    pc_pg_column_t c;
    if (rd && pc_pg_rowdesc_begin(rd, rd_len, &it)) {
        if (it.n_fields > cap) {
            cols = malloc(it.n_fields * sizeof *cols);
            cap = it.n_fields;
            if (!cols) { /* fail closed: no row of this result reaches the client */
                memset(&s->result_decision, 0, sizeof s->result_decision);
                s->result_decision.action = PC_DECISION_BLOCK;
                s->result_decision.limit = -1;
                snprintf(s->result_decision.reason, sizeof s->result_decision.reason,
                         "policy evaluation failed");
                s->result_decided = s->result_active = true;
                s->result_rows_seen = s->result_rows_sent = 0;
                return;
            }
        }
        while (n < cap && pc_pg_rowdesc_next(&it, &c) == 1) {
            cols[n].name = c.name;
            cols[n].type_oid = c.type_oid;
            cols[n].data_type = type_name(c.type_oid);
            cols[n].table = NULL;
            cols[n].table_oid = c.table_oid;
            n++;
        }
    }
    pc_decision_ctx_t ctx;
    fill_ctx(s, &ctx, PC_STAGE_POST_REQUEST);
    if (query) {
        ctx.query = query->text;
        ctx.query_len = query->len;
    }
    ctx.columns = cols;
    ctx.n_columns = n;
    pc_decision_eval(&ctx, &s->result_decision);
    /* Column types for masking; only kept when something is masked. Without
     * them (out of memory) every masked column becomes NULL, the stronger
     * outcome. */
    s->result_ncols = 0;
    if (s->result_decision.n_masked && n) {
        if (n > s->result_types_cap) {
            uint32_t *t = realloc(s->result_types, n * sizeof *t);
            if (t) {
                s->result_types = t;
                s->result_types_cap = (uint16_t)n;
            }
        }
        if (n <= s->result_types_cap) {
            for (size_t i = 0; i < n; i++) s->result_types[i] = cols[i].type_oid;
            s->result_ncols = (uint16_t)n;
        }
    }
    if (cols != small) free(cols);
    for (size_t i = 0; i < s->result_decision.n_masked; i++) {
        if (s->result_decision.masked[i].type == PC_MASK_HASH_WITH_SALT) {
            pc_decision_resource_salt(s->resource, s->result_salt);
            break;
        }
    }
    item_note_decision(result_item(s), &s->result_decision);
    s->result_decided = true;
    s->result_active = s->result_decision.action == PC_DECISION_MASK ||
                       s->result_decision.action == PC_DECISION_FILTER ||
                       s->result_decision.action == PC_DECISION_BLOCK;
    s->result_rows_seen = s->result_rows_sent = 0;
}

static void result_done(session_t *s)
{
    s->result_decided = false;
    s->result_active = false;
}

/* post_request blocked the result set about to stream (a block decision or
 * an evaluation that failed closed): the client gets an ErrorResponse in its
 * place, never a silently empty result, and the session stays usable. */
static void block_result(session_t *s)
{
    const pc_decision_t *d = &s->result_decision;
    pc_log_info("pg result blocked", PC_LUINT("session", s->id), PC_LSTR("stage", "post_request"),
                PC_LSTR("reason", d->reason));
    if (d->block_type == PC_BLOCK_SILENTLY) {
        session_close(s);
        return;
    }
    item_t *it = result_item(s);
    if (it && !it->error) it->error = strdup(block_message(d));
    pc_pg_buf_t b = {0};
    pc_pg_build_error(&b, "ERROR", "42501", block_message(d), NULL);
    send_msg_buf(&s->client, &b);
    pc_pg_buf_free(&b);
    s->result_suppress = true;
}

/* Judge a result set; false when it is blocked (already answered). */
static bool judge_and_enforce(session_t *s, const uint8_t *rd, uint32_t rd_len, const qstr_t *query)
{
    if (s->result_suppress) return false; /* the request already failed */
    judge_result(s, rd, rd_len, query);
    if (s->result_decision.action != PC_DECISION_BLOCK) return true;
    block_result(s);
    return false;
}

static void on_row_description(session_t *s, const pc_pg_msg_t *m)
{
    item_t *head = s->q_head;
    if (head && head->kind == IT_DESCRIBE && head->query) {
        /* Remember the shape for executions the client does not describe. */
        qstr_t *q = head->query;
        uint8_t *copy = malloc(m->body_len ? m->body_len : 1);
        if (copy) {
            memcpy(copy, m->body, m->body_len);
            free(q->rowdesc);
            q->rowdesc = copy;
            q->rowdesc_len = m->body_len;
        }
        /* A statement's description is not a result set yet. */
        if (head->describe_kind == 'S') return;
    }
    (void)judge_and_enforce(s, m->body, m->body_len, head ? head->query : NULL);
}

/* Rewrite a DataRow under a mask decision. Text types are the same bytes in
 * the text and binary formats, so one rewrite serves both; other types
 * become NULL under every mask (pc_decision_mask_value), and a column whose
 * type is unknown (beyond the described ones) too: fail closed. */
static void forward_masked_row(session_t *s, const pc_pg_msg_t *m)
{
    pc_pg_datarow_iter_t it;
    if (!pc_pg_datarow_begin(m->body, m->body_len, &it)) return;
    pc_pg_buf_t b = {0};
    size_t off = pc_pg_msg_begin(&b, 'D');
    pc_pg_buf_put_u16(&b, it.n_fields);
    const uint8_t *v;
    int32_t vlen;
    uint16_t col = 0;
    int rc;
    uint8_t small[256];
    while ((rc = pc_pg_datarow_next(&it, &v, &vlen)) == 1) {
        pc_mask_type_t mt = PC_MASK_NONE;
        for (size_t i = 0; i < s->result_decision.n_masked; i++)
            if (s->result_decision.masked[i].column == col) mt = s->result_decision.masked[i].type;
        if (mt == PC_MASK_NONE || vlen < 0) {
            if (vlen < 0) {
                pc_pg_buf_put_u32(&b, 0xFFFFFFFFu);
            } else {
                pc_pg_buf_put_u32(&b, (uint32_t)vlen);
                pc_pg_buf_put(&b, v, (size_t)vlen);
            }
        } else {
            size_t cap = (size_t)vlen > 64 ? (size_t)vlen : 64;
            uint8_t *out = cap <= sizeof small ? small : malloc(cap);
            uint32_t oid = col < s->result_ncols ? s->result_types[col] : 0;
            int32_t olen = out ? pc_decision_mask_value(mt, oid, v, vlen, s->result_salt, out, cap)
                               : -1;
            if (olen < 0) {
                pc_pg_buf_put_u32(&b, 0xFFFFFFFFu);
            } else {
                pc_pg_buf_put_u32(&b, (uint32_t)olen);
                pc_pg_buf_put(&b, out, (size_t)olen);
            }
            if (out != small) free(out);
        }
        col++;
    }
    pc_pg_msg_end(&b, off);
    if (rc == 0) send_msg_buf(&s->client, &b);
    pc_pg_buf_free(&b);
}

static bool row_allowed(session_t *s)
{
    s->result_rows_seen++;
    if (!s->result_active) return true;
    if (s->result_decision.action == PC_DECISION_BLOCK) return false;
    if (s->result_decision.limit >= 0 && s->result_rows_sent >= s->result_decision.limit)
        return false;
    s->result_rows_sent++;
    return true;
}

/* CommandComplete after a filter: the count the client saw. */
static void forward_command_complete(session_t *s, const pc_pg_msg_t *m, const char *tag,
                                     int64_t *rows)
{
    if (!s->result_active || *rows < 0 || s->result_rows_sent == s->result_rows_seen) {
        forward(&s->client, m);
        return;
    }
    const char *sp = strrchr(tag, ' ');
    char buf[128];
    snprintf(buf, sizeof buf, "%.*s %lld", (int)(sp ? sp - tag : 0), tag,
             (long long)s->result_rows_sent);
    pc_pg_buf_t b = {0};
    pc_pg_build_command_complete(&b, buf);
    send_msg_buf(&s->client, &b);
    pc_pg_buf_free(&b);
    *rows = s->result_rows_sent;
}

static void item_set_error(item_t *it, const pc_pg_msg_t *m)
{
    pc_pg_error_fields_t ef;
    if (it->error || !pc_pg_parse_error(m->body, m->body_len, &ef) || !ef.message) return;
    it->error = strdup(ef.message);
}

static void handle_up_ready(session_t *s, const pc_pg_msg_t *m)
{
    item_t *head = s->q_head;
    switch (m->type) {
    case 'T':
        on_row_description(s, m);
        if (head && head->kind == IT_DESCRIBE) item_pop(s, false);
        break;
    case 'n':
        if (head && head->kind == IT_DESCRIBE) item_pop(s, false);
        break;
    case 'D':
        if (s->result_suppress) return;
        if (!s->result_decided && head &&
            !judge_and_enforce(s, head->query ? head->query->rowdesc : NULL,
                               head->query ? head->query->rowdesc_len : 0, head->query))
            return;
        if (!row_allowed(s)) return;
        if (s->result_active && s->result_decision.action == PC_DECISION_MASK) {
            forward_masked_row(s, m);
            return;
        }
        break;
    case 'C': {
        const char *tag;
        int64_t rows;
        if (!pc_pg_parse_command_complete(m->body, m->body_len, &tag, &rows)) {
            upstream_fail(s, "protocol violation: bad CommandComplete");
            return;
        }
        if (!s->result_suppress) forward_command_complete(s, m, tag, &rows);
        result_done(s);
        if (head && (head->kind == IT_SIMPLE || head->kind == IT_EXECUTE)) {
            if (rows >= 0) head->rows = (head->rows < 0 ? 0 : head->rows) + rows;
            if (head->kind == IT_EXECUTE) item_pop(s, true);
        }
        drain_synth(s);
        return;
    }
    case 'I':
    case 's':
        result_done(s);
        if (head && head->kind == IT_EXECUTE) item_pop(s, true);
        break;
    case '1':
        if (head && head->kind == IT_PARSE) item_pop(s, true);
        break;
    case '2':
        if (head && head->kind == IT_BIND) item_pop(s, false);
        break;
    case '3':
        if (head && head->kind == IT_CLOSE) item_pop(s, false);
        break;
    case 't':
        break; /* ParameterDescription: RowDescription/NoData completes Describe */
    case 'E': {
        pc_pg_error_fields_t ef;
        if (pc_pg_parse_error(m->body, m->body_len, &ef) && ef.severity &&
            (!strcmp(ef.severity, "FATAL") || !strcmp(ef.severity, "PANIC")))
            s->up_fatal = true;
        result_done(s);
        if (head) {
            item_set_error(head, m);
            if (head->kind != IT_SIMPLE && head->kind != IT_FUNC && head->kind != IT_SYNC) {
                item_pop(s, true);
                s->ext_error = true;
            }
        }
        break;
    }
    case 'Z': {
        char tx;
        if (pc_pg_parse_ready(m->body, m->body_len, &tx)) s->tx_status = tx;
        result_done(s);
        /* Everything up to the Sync / Query this answers is over; requests
         * the server skipped after an error are recorded with it. */
        while (s->q_head) {
            item_t *it = s->q_head;
            bool last = it->kind == IT_SYNC || it->kind == IT_SIMPLE || it->kind == IT_FUNC;
            if (it->kind == IT_SYNTH) {
                if (!s->ext_error) break;
                item_pop(s, false);
                continue;
            }
            if (!last && !it->error)
                it->error = strdup("not executed: an earlier message in the batch failed");
            item_pop(s, true);
            if (last) break;
        }
        s->ext_error = false;
        s->result_suppress = false;
        forward(&s->client, m);
        drain_synth(s);
        return;
    }
    case 'K':
        return; /* never pass upstream keys to the client */
    default:
        break; /* S, N, A, G, H, W, d, c, V, v: pass through */
    }
    if (s->result_suppress && m->type == 'G') {
        /* A later statement of the failed request wants COPY data the client
         * will never send (it saw the error): end the COPY for it. */
        static const char why[] = "not executed: an earlier statement was blocked by policy";
        pc_pg_buf_t b = {0};
        size_t off = pc_pg_msg_begin(&b, 'f');
        pc_pg_buf_put(&b, why, sizeof why);
        pc_pg_msg_end(&b, off);
        send_msg_buf(&s->up, &b);
        pc_pg_buf_free(&b);
        return;
    }
    if (s->result_suppress && m->type != 'N' && m->type != 'A' && m->type != 'S') return;
    forward(&s->client, m);
    drain_synth(s);
}

/* ---------- message pump ---------- */

static bool client_phase_startup(const session_t *s)
{
    return s->state == ST_STARTUP;
}

static bool streamable(const side_t *sd, uint8_t type)
{
    const session_t *s = sd->s;
    if (s->state != ST_READY) return false;
    if (sd->is_client) return type == 'd' && !s->skip_until_sync;
    if (type == 'd') return true;
    /* A DataRow may pass in pieces when nothing needs to see it whole. */
    return type == 'D' && s->result_decided && !s->result_active;
}

static void dispatch(side_t *sd, const pc_pg_msg_t *m)
{
    session_t *s = sd->s;
    if (sd->is_client) {
        switch (s->state) {
        case ST_STARTUP:
            handle_startup(s, m);
            return;
        case ST_SASL_INIT:
        case ST_SASL_CONT:
            if (m->type == 'X') {
                s->client_gone = true;
                session_close(s);
                return;
            }
            handle_sasl(s, m);
            return;
        case ST_READY:
            handle_client_ready(s, m);
            return;
        default:
            PC_BUG_ON(1);
        }
    }
    switch (s->state) {
    case ST_UP_AUTH:
        handle_up_auth(s, m);
        return;
    case ST_UP_INIT:
        handle_up_init(s, m);
        return;
    case ST_READY:
        handle_up_ready(s, m);
        return;
    default:
        upstream_fail(s, "unexpected data from server");
        return;
    }
}

static bool side_can_process(const side_t *sd)
{
    const session_t *s = sd->s;
    if (sd->is_client)
        return s->state == ST_STARTUP || s->state == ST_SASL_INIT || s->state == ST_SASL_CONT ||
               s->state == ST_READY;
    return s->state == ST_UP_SSL || s->state == ST_UP_AUTH || s->state == ST_UP_INIT ||
           s->state == ST_READY;
}

/* Frame and handle the messages in buf[0..len); returns the bytes consumed
 * (the rest is the start of an incomplete message). */
static size_t process_bytes(side_t *sd, const uint8_t *buf, size_t len)
{
    session_t *s = sd->s;
    side_t *peer = sd->is_client ? &s->up : &s->client;
    size_t off = 0;
    while (off < len) {
        if (s->state == ST_CLOSING) return len;
        if (sd->stream_left) {
            size_t k = len - off;
            if (k > sd->stream_left) k = (size_t)sd->stream_left;
            out_put(peer, buf + off, k);
            sd->stream_left -= k;
            off += k;
            continue;
        }
        if (!side_can_process(sd)) break;
        if (!sd->is_client && s->state == ST_UP_SSL) {
            /* A single byte, not a message. */
            off++;
            handle_up_ssl_answer(s, buf[off - 1], len - off);
            continue;
        }
        bool startup = sd->is_client && client_phase_startup(s);
        uint32_t max =
            sd->is_client && s->state != ST_READY ? PC_PG_MAX_STARTUP_LEN : PC_PG_MAX_MSG_LEN;
        pc_pg_msg_t m;
        const char *err = NULL;
        pc_pg_status_t st = pc_pg_frame_next(buf + off, len - off, startup, max, &m, &err);
        if (st == PC_PG_ERROR) {
            if (sd->is_client)
                client_protocol_error(s, err);
            else
                upstream_fail(s, "invalid message from server");
            return len;
        }
        if (st == PC_PG_NEED_MORE) {
            if (m.total_len > STREAM_THRESHOLD && streamable(sd, m.type)) {
                if (!sd->is_client && m.type == 'D') (void)row_allowed(s);
                out_put(peer, buf + off, len - off);
                sd->stream_left = m.total_len - (len - off);
                off = len;
            }
            break;
        }
        sd->rest_after = len - off - m.total_len;
        dispatch(sd, &m);
        off += m.total_len;
        /* A state change may hand the rest of the bytes to TLS. */
        if (sd->tls && !pc_tls_handshake_done(sd->tls)) break;
    }
    return s->state == ST_CLOSING ? len : off;
}

/* Messages held back (incomplete, or waiting for the upstream session). */
static void process_buffered(side_t *sd)
{
    session_t *s = sd->s;
    if (!sd->in_len) return;
    size_t used = process_bytes(sd, sd->in, sd->in_len);
    if (s->state == ST_CLOSING) return;
    memmove(sd->in, sd->in + used, sd->in_len - used);
    sd->in_len -= used;
    if (sd->in_len == 0) {
        /* idle sessions hold no input memory */
        free(sd->in);
        sd->in = NULL;
        sd->in_cap = 0;
    }
}

static void side_input(side_t *sd, const uint8_t *p, size_t n)
{
    session_t *s = sd->s;
    if (sd->in_len == 0) {
        /* Straight from the read buffer; keep only an incomplete tail. */
        size_t used = process_bytes(sd, p, n);
        if (s->state != ST_CLOSING) side_buffer(sd, p + used, n - used);
        return;
    }
    side_buffer(sd, p, n);
    if (s->state != ST_CLOSING) process_buffered(sd);
}

/* ---------- module entry points ---------- */

static void on_accept(pc_worker_t *w, uv_tcp_t *client, pc_snapshot_t *snap,
                      const pc_listener_cfg_t *listener)
{
    session_t *s = session_alloc();
    if (!s) {
        client->data = NULL;
        uv_close((uv_handle_t *)client, (uv_close_cb)(void (*)(void))free);
        return;
    }
    s->w = w;
    s->pw = pg_worker(w);
    s->id = pc_net_session_id();
    s->start_ns = pc_now_mono_ns();
    s->snap = pc_snapshot_ref(snap);
    s->listener = listener;
    s->resource = pc_snapshot_resource(snap, listener->resource);
    s->client.s = s;
    s->client.is_client = true;
    s->client.tcp = client;
    s->client.inited = true;
    client->data = &s->client;
    s->up.s = s;
    s->up.tcp = &s->up_tcp;
    s->state = ST_STARTUP;
    uv_loop_t *loop = pc_worker_loop(w);
    uv_timer_init(loop, &s->timer);
    s->timer.data = s;
    s->open_handles = 2; /* timer + client */
    pc_net_conn_open(&s->pw->conns, &s->conn, s, listener->name);
    char labels[200];
    snprintf(labels, sizeof labels, "listener=\"%s\"", listener->name);
    s->m_queries = pc_metric_counter("portcullis_queries_total",
                                     "Queries (simple Query and extended Execute)", labels);

    pc_net_peer_ip(client, s->client_ip, sizeof s->client_ip);
    if (!s->resource || s->resource->technology != PC_TECH_POSTGRES) {
        pc_log_error("pg listener has no postgres resource", PC_LSTR("listener", listener->name));
    }
    uv_timer_start(&s->timer, on_timeout, AUTH_TIMEOUT_MS, 0);
    update_reading(s);
}

static void terminate_all(pc_worker_t *w)
{
    pg_worker_t *pw = pg_worker(w);
    for (pc_net_conn_t *c = pw->conns.head; c; c = c->next) {
        session_t *s = c->session;
        if (s->state == ST_CLOSING) continue;
        fatal_and_close(s, "57P01", "terminating connection due to administrator command");
    }
}

static size_t active_sessions(pc_worker_t *w)
{
    return pg_worker(w)->conns.count;
}

const pc_proto_t pc_pg_proto = {
    .technology = PC_TECH_POSTGRES,
    .on_accept = on_accept,
    .terminate_all = terminate_all,
    .active_sessions = active_sessions,
};

void pc_pg_register(void)
{
    static atomic_bool done;
    if (!atomic_exchange(&done, true)) pc_proto_register(&pc_pg_proto);
}
