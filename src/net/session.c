#include "net/session.h"

#include "core/log.h"
#include "net/tls.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>

uint64_t pc_net_session_id(void)
{
    static atomic_uint_fast64_t seq;
    static atomic_uint_fast64_t base;
    uint64_t b = atomic_load(&base);
    if (!b) {
        uint64_t want = (pc_now_wall_ns() / 1000000000ull) << 24;
        uint64_t zero = 0;
        atomic_compare_exchange_strong(&base, &zero, want);
        b = atomic_load(&base);
    }
    return b + atomic_fetch_add(&seq, 1) + 1;
}

void pc_net_conn_open(pc_net_conns_t *l, pc_net_conn_t *c, void *session, const char *listener)
{
    c->session = session;
    c->prev = NULL;
    c->next = l->head;
    if (c->next) c->next->prev = c;
    l->head = c;
    l->count++;
    char labels[200];
    snprintf(labels, sizeof labels, "listener=\"%s\"", listener);
    c->m_active =
        pc_metric_gauge("portcullis_connections_active", "Open client connections", labels);
    c->m_closed = pc_metric_counter("portcullis_connections_closed_total",
                                    "Client connections closed", labels);
    pc_metric_add(c->m_active, 1);
    pc_metric_add(pc_metric_counter("portcullis_connections_opened_total",
                                    "Client connections accepted", labels),
                  1);
}

void pc_net_conn_gone(pc_net_conns_t *l, pc_net_conn_t *c)
{
    if (c->prev)
        c->prev->next = c->next;
    else
        l->head = c->next;
    if (c->next) c->next->prev = c->prev;
    l->count--;
    if (c->m_active) pc_metric_add(c->m_active, -1);
    if (c->m_closed) pc_metric_add(c->m_closed, 1);
}

size_t pc_net_write_now(uv_stream_t *stream, const uint8_t *data, size_t n)
{
    if (uv_stream_get_write_queue_size(stream) != 0) return 0;
    uv_buf_t b = uv_buf_init((char *)data, (unsigned)n);
    int w = uv_try_write(stream, &b, 1);
    return w > 0 ? (size_t)w : 0;
}

void pc_net_peer_ip(uv_tcp_t *tcp, char *out, size_t cap)
{
    struct sockaddr_storage peer;
    int plen = sizeof peer;
    if (cap) out[0] = '\0';
    if (uv_tcp_getpeername(tcp, (struct sockaddr *)&peer, &plen) != 0) return;
    if (peer.ss_family == AF_INET6)
        uv_ip6_name((struct sockaddr_in6 *)&peer, out, cap);
    else
        uv_ip4_name((struct sockaddr_in *)&peer, out, cap);
}

SSL_CTX *pc_net_server_tls_ctx(const pc_config_t *cfg)
{
    static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
    static SSL_CTX *ctx;
    static bool tried;
    if (!cfg || !cfg->tls.cert || !cfg->tls.key) return NULL;
    pthread_mutex_lock(&mu);
    if (!tried) {
        tried = true;
        char err[256];
        ctx = pc_tls_server_ctx(cfg->tls.cert, cfg->tls.key, err, sizeof err);
        if (!ctx) pc_log_error("client tls disabled", PC_LSTR("error", err));
    }
    pthread_mutex_unlock(&mu);
    return ctx;
}
