/*
 * What every protocol module's client session needs the same way: one id
 * space for sessions of all protocols (the decision engine and the audit log
 * key per-session state by id, so a PostgreSQL and an S3 session must never
 * share one), the peer's address as text, and the process-wide server TLS
 * context built from the connector's tls.cert/key.
 */
#ifndef PC_NET_SESSION_H
#define PC_NET_SESSION_H

#include "core/common.h"
#include "core/config.h"
#include "core/metrics.h"

#include <openssl/ssl.h>
#include <uv.h>

/*
 * A client connection as the worker keeps it, whatever its protocol: a node of
 * the worker's list of open sessions (drain, terminate_all and the session
 * count walk it) and its listener's connection metrics
 * (portcullis_connections_active / _opened_total / _closed_total). A protocol
 * module embeds one in its session and keeps one pc_net_conns_t per worker;
 * both are touched on that worker's thread only.
 */
typedef struct pc_net_conn {
    struct pc_net_conn *prev, *next;
    void *session; /* the protocol module's session owning this node */
    pc_metric_t *m_active, *m_closed;
} pc_net_conn_t;

typedef struct pc_net_conns {
    pc_net_conn_t *head;
    size_t count;
} pc_net_conns_t;

/** Link c (owned by session) into l and count it as open on listener. */
void pc_net_conn_open(pc_net_conns_t *l, pc_net_conn_t *c, void *session, const char *listener);
/** Unlink c from l and count it as closed; once, after its last handle closed. */
void pc_net_conn_gone(pc_net_conns_t *l, pc_net_conn_t *c);

/** A new session id, unique in this process and, thanks to the start-time
 *  prefix, across restarts of the instance. Any thread. */
uint64_t pc_net_session_id(void);

/**
 * Write what the kernel takes now when nothing is queued on stream, and return
 * how many bytes went out (0 when something is queued or on any error: the
 * caller then queues the rest with uv_write, which reports errors). A uv_write
 * that completes at once still re-arms the socket in epoll and defers its
 * callback to another loop pass; this skips both for the common small write.
 */
size_t pc_net_write_now(uv_stream_t *stream, const uint8_t *data, size_t n);

/** The peer address of tcp as text ("" when unknown) into out. */
void pc_net_peer_ip(uv_tcp_t *tcp, char *out, size_t cap);

/**
 * The server TLS context of cfg's tls.cert/key, loaded once (NULL when none is
 * configured, or when loading failed: that is logged once and client TLS is
 * then refused). Any thread; the context lives until the process exits.
 */
SSL_CTX *pc_net_server_tls_ctx(const pc_config_t *cfg);

#endif
