/*
 * Per-worker accept sockets. Every worker binds its own socket for every
 * listener with SO_REUSEADDR + SO_REUSEPORT (libuv 1.44 has no
 * UV_TCP_REUSEPORT, so the socket is made here and handed to uv_tcp_open):
 * the kernel then spreads new connections across workers and a session never
 * crosses threads.
 *
 * A listener is identified by its name; same name and port across snapshots
 * keeps the socket (so a reload never drops the accept queue), a new port
 * re-binds, a removed name closes. Sessions already accepted belong to their
 * protocol module and are not touched by any of this.
 */
#include "net/worker_int.h"

#include "core/log.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define LISTEN_BACKLOG 511

struct pc__wlistener {
    pc__wlistener_t *next;
    pc_worker_t *w;
    char *name;
    int port;
    uv_tcp_t *handle; /* own allocation: freed in its close callback, so l can go at once */
    bool listening;   /* bound and accepting */
    bool seen;      /* reconcile mark */
    int last_error; /* last bind error (negative errno), 0 = none */
    bool warned_no_module;
    pc_metric_t *accepted;
    pc_metric_t *refused;
};

static const pc_listener_cfg_t *find_cfg(const pc_snapshot_t *s, const char *name)
{
    for (size_t i = 0; s && i < s->n_listeners; i++) {
        if (strcmp(s->listeners[i].name, name) == 0) return &s->listeners[i];
    }
    return NULL;
}

static void free_handle(uv_handle_t *h)
{
    free(h);
}

static void on_connection(uv_stream_t *server, int status)
{
    pc__wlistener_t *l = server->data;
    pc_worker_t *w = l->w;
    if (status < 0) {
        /* EMFILE and friends: log and keep listening; the kernel keeps the queue. */
        pc_log_warn("accept failed", PC_LSTR("listener", l->name), PC_LSTR("error",
                    uv_strerror(status)), PC_LUINT("worker", w->index));
        return;
    }
    uv_tcp_t *client = malloc(sizeof *client);
    if (!client) {
        pc_log_error("accept: out of memory", PC_LSTR("listener", l->name));
        return;
    }
    uv_tcp_init(&w->loop, client);
    if (uv_accept(server, (uv_stream_t *)client) != 0) {
        uv_close((uv_handle_t *)client, free_handle);
        return;
    }
    /* Resolve the protocol against the snapshot in force right now: a reload
     * may have pointed this listener at another resource. */
    pc_snapshot_t *snap = w->snap;
    const pc_listener_cfg_t *cfg = find_cfg(snap, l->name);
    const pc_resource_t *res = cfg ? pc_snapshot_resource(snap, cfg->resource) : NULL;
    const pc_proto_t *proto = res ? pc_proto_find(res->technology) : NULL;
    if (!proto || !proto->on_accept || pc_worker_draining(w)) {
        /* Once per listener per worker: a client retry loop must not flood the log. */
        if (cfg && res && !proto && !l->warned_no_module && (l->warned_no_module = true))
            pc_log_warn("no protocol module for this technology in this build; connection closed",
                        PC_LSTR("listener", l->name), PC_LINT("technology", res->technology));
        pc_metric_add(l->refused, 1);
        uv_close((uv_handle_t *)client, free_handle);
        return;
    }
    uv_tcp_nodelay(client, 1);
    pc_metric_add(l->accepted, 1);
    proto->on_accept(w, client, snap, cfg);
}

/* Make, bind and listen a socket for l; 0 or a negative errno. */
static int bind_socket(pc_worker_t *w, pc__wlistener_t *l)
{
    const char *addr = w->ctx->cfg->listen_address ? w->ctx->cfg->listen_address : "0.0.0.0";
    struct sockaddr_storage ss;
    socklen_t sslen;
    memset(&ss, 0, sizeof ss);
    if (uv_ip4_addr(addr, l->port, (struct sockaddr_in *)&ss) == 0) {
        sslen = sizeof(struct sockaddr_in);
    } else if (uv_ip6_addr(addr, l->port, (struct sockaddr_in6 *)&ss) == 0) {
        sslen = sizeof(struct sockaddr_in6);
    } else {
        return -EINVAL;
    }
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return -errno;
    int one = 1;
    int rc = 0;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0 ||
        bind(fd, (struct sockaddr *)&ss, sslen) != 0 || listen(fd, LISTEN_BACKLOG) != 0) {
        rc = -errno;
        close(fd);
        return rc;
    }
    uv_tcp_t *h = malloc(sizeof *h);
    if (!h) {
        close(fd);
        return -ENOMEM;
    }
    uv_tcp_init(&w->loop, h);
    h->data = l;
    rc = uv_tcp_open(h, fd);
    if (rc == 0) rc = uv_listen((uv_stream_t *)h, LISTEN_BACKLOG, on_connection);
    if (rc != 0) {
        if (uv_fileno((uv_handle_t *)h, &(uv_os_fd_t){0}) != 0) close(fd);
        uv_close((uv_handle_t *)h, free_handle);
        return rc;
    }
    l->handle = h;
    l->listening = true;
    return 0;
}

/* No callback reaches l once its handle is closing, so l is freed now. */
static void destroy_listener(pc__wlistener_t *l)
{
    if (l->handle) uv_close((uv_handle_t *)l->handle, free_handle);
    free(l->name);
    free(l);
}

static void try_bind(pc_worker_t *w, pc__wlistener_t *l, bool retry)
{
    int rc = bind_socket(w, l);
    if (rc == 0) {
        l->last_error = 0;
        if (w->index == 0)
            pc_log_info(retry ? "listener bound after retry" : "listener opened",
                        PC_LSTR("listener", l->name), PC_LINT("port", l->port),
                        PC_LUINT("workers", pc_workers_count(w->pool)));
        return;
    }
    /* Only worker 0 logs, and only when the error changes, so a busy port is
     * one clear line rather than one per worker per second. */
    if (w->index == 0 && rc != l->last_error)
        pc_log_error("listener bind failed; connector stays not ready, retrying every second",
                     PC_LSTR("listener", l->name), PC_LINT("port", l->port),
                     PC_LSTR("error", uv_strerror(rc)));
    l->last_error = rc;
}

static unsigned count_unbound(pc_worker_t *w)
{
    unsigned n = 0;
    for (pc__wlistener_t *l = w->listeners; l; l = l->next) n += !l->listening;
    return n;
}

static void publish_unbound(pc_worker_t *w)
{
    atomic_store(&w->unbound, count_unbound(w));
}

void pc__listeners_reconcile(pc_worker_t *w)
{
    const pc_snapshot_t *snap = w->snap;
    for (pc__wlistener_t *l = w->listeners; l; l = l->next) l->seen = false;

    for (size_t i = 0; snap && i < snap->n_listeners; i++) {
        const pc_listener_cfg_t *cfg = &snap->listeners[i];
        pc__wlistener_t *l = w->listeners;
        while (l && strcmp(l->name, cfg->name) != 0) l = l->next;
        if (l && l->port == cfg->port) {
            l->seen = true;
            continue;
        }
        if (l) {
            /* Port changed: the old socket goes with the sweep below. */
            if (w->index == 0)
                pc_log_info("listener port changed; re-binding", PC_LSTR("listener", l->name),
                            PC_LINT("old_port", l->port), PC_LINT("port", cfg->port));
        }
        pc__wlistener_t *nl = pc_xcalloc(1, sizeof *nl);
        nl->w = w;
        nl->name = pc_xstrdup(cfg->name);
        nl->port = cfg->port;
        nl->seen = true;
        char labels[256];
        size_t pos = 0;
        char esc[200];
        pc_json_escape_into(esc, sizeof esc - 1, &pos, cfg->name, strlen(cfg->name));
        esc[pos] = '\0';
        snprintf(labels, sizeof labels, "listener=\"%s\"", esc);
        nl->accepted = pc_metric_counter("portcullis_listener_connections_accepted_total",
                                         "Client connections accepted and handed to a protocol module.",
                                         labels);
        nl->refused = pc_metric_counter("portcullis_listener_connections_refused_total",
                                        "Client connections closed at accept (no protocol module, shutting down).",
                                        labels);
        /* Append after the old entry of the same name so the sweep finds the old one. */
        nl->next = w->listeners;
        w->listeners = nl;
        if (l) l->seen = false;
        try_bind(w, nl, false);
    }

    pc__wlistener_t **pp = &w->listeners;
    while (*pp) {
        pc__wlistener_t *l = *pp;
        if (l->seen) {
            pp = &l->next;
            continue;
        }
        *pp = l->next;
        if (w->index == 0 && l->listening)
            pc_log_info("listener closed", PC_LSTR("listener", l->name), PC_LINT("port", l->port));
        destroy_listener(l);
    }
    publish_unbound(w);
}

unsigned pc__listeners_retry(pc_worker_t *w)
{
    for (pc__wlistener_t *l = w->listeners; l; l = l->next) {
        if (!l->listening) try_bind(w, l, true);
    }
    publish_unbound(w);
    pc__worker_notify(w);
    return atomic_load(&w->unbound);
}

void pc__listeners_close_all(pc_worker_t *w)
{
    bool any = w->listeners != NULL;
    while (w->listeners) {
        pc__wlistener_t *l = w->listeners;
        w->listeners = l->next;
        destroy_listener(l);
    }
    atomic_store(&w->unbound, 0);
    if (any && w->index == 0) pc_log_info("listeners closed", PC_LSTR("reason", "shutdown"));
}
