/*
 * Worker threads and the protocol registry.
 *
 * The main thread talks to a worker through a mailbox (a pending snapshot and
 * a command bit set) guarded by a mutex that is only ever held for a pointer
 * swap, then wakes it with uv_async_send. The worker answers through atomics
 * and wakes the main loop the same way. So neither side ever waits for the
 * other's slow work, and the request path never waits on disk.
 */
#include "net/worker_int.h"

#include "core/log.h"

#include <pthread.h>
#include <string.h>

/* ---------- protocol registry ---------- */

static const pc_proto_t *protos[PC__N_TECH];

void pc_proto_register(const pc_proto_t *proto)
{
    PC_BUG_ON(!proto || (unsigned)proto->technology >= PC__N_TECH);
    protos[proto->technology] = proto;
}

const pc_proto_t *pc_proto_find(pc_technology_t tech)
{
    if ((unsigned)tech >= PC__N_TECH) return NULL;
    return protos[tech];
}

/* ---------- worker accessors (worker thread) ---------- */

uv_loop_t *pc_worker_loop(pc_worker_t *w)
{
    return &w->loop;
}

unsigned pc_worker_index(const pc_worker_t *w)
{
    return w->index;
}

const pc_ctx_t *pc_worker_ctx(const pc_worker_t *w)
{
    return w->ctx;
}

pc_snapshot_t *pc_worker_snapshot(pc_worker_t *w)
{
    return w->snap;
}

void **pc_worker_proto_slot(pc_worker_t *w, pc_technology_t tech)
{
    PC_BUG_ON((unsigned)tech >= PC__N_TECH);
    return &w->proto_slots[tech];
}

bool pc_worker_draining(const pc_worker_t *w)
{
    return atomic_load_explicit(&((pc_worker_t *)w)->draining, memory_order_acquire);
}

/* ---------- the pool ---------- */

struct pc_workers {
    pc_worker_t *workers;
    unsigned n;
    uv_async_t notify_async; /* on the main loop */
    void (*notify)(void *arg);
    void *notify_arg;
    uint64_t poll_seq; /* main thread: polls sent */
};

void pc__worker_notify(pc_worker_t *w)
{
    uv_async_send(&w->pool->notify_async);
}

static size_t count_sessions(pc_worker_t *w)
{
    size_t n = 0;
    for (unsigned t = 0; t < PC__N_TECH; t++) {
        if (protos[t] && protos[t]->active_sessions) n += protos[t]->active_sessions(w);
    }
    return n;
}

static void on_retry_timer(uv_timer_t *t)
{
    pc_worker_t *w = t->data;
    unsigned left = pc__listeners_retry(w);
    if (left == 0) uv_timer_stop(&w->retry_timer);
}

static void arm_retry_if_needed(pc_worker_t *w)
{
    if (atomic_load(&w->unbound) > 0 && !pc_worker_draining(w) &&
        !uv_is_active((uv_handle_t *)&w->retry_timer))
        uv_timer_start(&w->retry_timer, on_retry_timer, 1000, 1000);
}

static void retire(pc_worker_t *w, pc_snapshot_t *old)
{
    if (!old) return;
    pthread_mutex_lock(&w->lock);
    bool queued = w->n_retired < PC_ARRAY_LEN(w->retired);
    if (queued) w->retired[w->n_retired++] = old;
    pthread_mutex_unlock(&w->lock);
    /* Main thread behind by 8 reloads: release it here rather than grow. */
    if (!queued) pc_snapshot_unref(old);
}

static void on_wakeup(uv_async_t *a)
{
    pc_worker_t *w = a->data;
    pthread_mutex_lock(&w->lock);
    pc_snapshot_t *snap = w->pending_snap;
    unsigned cmds = w->pending_cmds;
    uint64_t poll_seq = w->pending_poll_seq;
    w->pending_snap = NULL;
    w->pending_cmds = 0;
    pthread_mutex_unlock(&w->lock);

    if (snap) {
        pc_snapshot_t *old = w->snap;
        w->snap = snap;
        if (!pc_worker_draining(w)) pc__listeners_reconcile(w);
        retire(w, old);
        atomic_store(&w->applied_revision, snap->revision);
        arm_retry_if_needed(w);
        pc__worker_notify(w);
    }
    if (cmds & PC__CMD_STOP_ACCEPT) {
        atomic_store_explicit(&w->draining, true, memory_order_release);
        uv_timer_stop(&w->retry_timer);
        pc__listeners_close_all(w);
    }
    if (cmds & PC__CMD_TERMINATE) {
        for (unsigned t = 0; t < PC__N_TECH; t++) {
            if (protos[t] && protos[t]->terminate_all) protos[t]->terminate_all(w);
        }
    }
    if (cmds & PC__CMD_POLL) {
        atomic_store(&w->active_sessions, count_sessions(w));
        atomic_store(&w->answered_poll_seq, poll_seq);
        pc__worker_notify(w);
    }
    if (cmds & PC__CMD_EXIT) {
        atomic_store_explicit(&w->draining, true, memory_order_release);
        pc__listeners_close_all(w);
        for (unsigned t = 0; t < PC__N_TECH; t++) {
            if (protos[t] && protos[t]->worker_stop) protos[t]->worker_stop(w);
        }
        uv_close((uv_handle_t *)&w->retry_timer, NULL);
        uv_close((uv_handle_t *)&w->wakeup, NULL);
        /* Sessions a module failed to end must not keep the thread alive. */
        uv_stop(&w->loop);
    }
}

static void worker_main(void *arg)
{
    pc_worker_t *w = arg;
    /* Named for top -H, perf and /proc/PID/task/TID/comm. */
    char name[16];
    snprintf(name, sizeof name, "pc-worker-%u", w->index % 1000u);
    (void)pthread_setname_np(pthread_self(), name);
    uv_run(&w->loop, UV_RUN_DEFAULT);
    /* Let the close callbacks queued by the EXIT command run. */
    uv_run(&w->loop, UV_RUN_NOWAIT);
}

static void free_pool(uv_handle_t *h)
{
    free(h->data);
}

static void release_retired(pc_worker_t *w)
{
    pc_snapshot_t *batch[PC_ARRAY_LEN(w->retired)];
    pthread_mutex_lock(&w->lock);
    unsigned n = w->n_retired;
    memcpy(batch, w->retired, n * sizeof batch[0]);
    w->n_retired = 0;
    pthread_mutex_unlock(&w->lock);
    for (unsigned i = 0; i < n; i++) pc_snapshot_unref(batch[i]);
}

static void on_notify(uv_async_t *a)
{
    pc_workers_t *ws = a->data;
    for (unsigned i = 0; i < ws->n; i++) release_retired(&ws->workers[i]);
    if (ws->notify) ws->notify(ws->notify_arg);
}

static void post(pc_worker_t *w, pc_snapshot_t *snap, unsigned cmds)
{
    pc_snapshot_t *superseded = NULL;
    pthread_mutex_lock(&w->lock);
    if (cmds & PC__CMD_POLL) w->pending_poll_seq = w->pool->poll_seq;
    if (snap) {
        superseded = w->pending_snap;
        w->pending_snap = snap;
    }
    w->pending_cmds |= cmds;
    pthread_mutex_unlock(&w->lock);
    /* A snapshot the worker never picked up is released here, on the main thread. */
    pc_snapshot_unref(superseded);
    uv_async_send(&w->wakeup);
}

pc_workers_t *pc_workers_start(uv_loop_t *main_loop, const pc_ctx_t *ctx, unsigned n,
                               void (*notify)(void *arg), void *arg, char *err, size_t errlen)
{
    if (n == 0) n = uv_available_parallelism();
    if (n == 0) n = 1;
    pc_workers_t *ws = pc_xcalloc(1, sizeof *ws);
    ws->workers = pc_xcalloc(n, sizeof *ws->workers);
    ws->notify = notify;
    ws->notify_arg = arg;
    uv_async_init(main_loop, &ws->notify_async, on_notify);
    ws->notify_async.data = ws;

    unsigned started = 0;
    for (unsigned i = 0; i < n; i++) {
        pc_worker_t *w = &ws->workers[i];
        w->index = i;
        w->pool = ws;
        w->ctx = ctx;
        pthread_mutex_init(&w->lock, NULL);
        int rc = uv_loop_init(&w->loop);
        if (rc == 0) rc = uv_async_init(&w->loop, &w->wakeup, on_wakeup);
        if (rc == 0) rc = uv_timer_init(&w->loop, &w->retry_timer);
        if (rc != 0) {
            snprintf(err, errlen, "worker %u: event loop: %s", i, uv_strerror(rc));
            goto fail;
        }
        w->wakeup.data = w;
        w->retry_timer.data = w;
        uv_unref((uv_handle_t *)&w->retry_timer);
        rc = uv_thread_create(&w->thread, worker_main, w);
        if (rc != 0) {
            snprintf(err, errlen, "worker %u: thread: %s", i, uv_strerror(rc));
            goto fail;
        }
        started++;
        ws->n = started;
    }
    pc_log_info("workers started", PC_LUINT("workers", n));
    return ws;

fail:
    /* The failed worker's loop may be half initialised; stop the started ones. */
    ws->n = started;
    pc_workers_stop(ws);
    return NULL;
}

unsigned pc_workers_count(const pc_workers_t *ws)
{
    return ws ? ws->n : 0;
}

void pc_workers_publish(pc_workers_t *ws, pc_snapshot_t *snap)
{
    for (unsigned i = 0; i < ws->n; i++) post(&ws->workers[i], pc_snapshot_ref(snap), 0);
}

bool pc_workers_ready(const pc_workers_t *ws, uint64_t revision, unsigned *unbound)
{
    bool ok = ws && ws->n > 0;
    unsigned missing = 0;
    for (unsigned i = 0; ws && i < ws->n; i++) {
        pc_worker_t *w = &ws->workers[i];
        if (atomic_load(&w->applied_revision) != revision) ok = false;
        unsigned u = atomic_load(&w->unbound);
        missing += u;
        if (u) ok = false;
    }
    if (unbound) *unbound = missing;
    return ok;
}

void pc_workers_stop_accepting(pc_workers_t *ws)
{
    for (unsigned i = 0; ws && i < ws->n; i++) post(&ws->workers[i], NULL, PC__CMD_STOP_ACCEPT);
}

void pc_workers_poll_sessions(pc_workers_t *ws)
{
    if (!ws) return;
    ws->poll_seq++;
    for (unsigned i = 0; i < ws->n; i++) post(&ws->workers[i], NULL, PC__CMD_POLL);
}

size_t pc_workers_active_sessions(const pc_workers_t *ws, bool *complete)
{
    size_t n = 0;
    bool all = true;
    for (unsigned i = 0; ws && i < ws->n; i++) {
        pc_worker_t *w = &ws->workers[i];
        /* Polls coalesce in the mailbox: the answer names the newest it covers. */
        if (atomic_load(&w->answered_poll_seq) != ws->poll_seq) all = false;
        n += atomic_load(&w->active_sessions);
    }
    if (complete) *complete = all;
    return n;
}

void pc_workers_terminate_all(pc_workers_t *ws)
{
    for (unsigned i = 0; ws && i < ws->n; i++) post(&ws->workers[i], NULL, PC__CMD_TERMINATE);
}

void pc_workers_stop(pc_workers_t *ws)
{
    if (!ws) return;
    for (unsigned i = 0; i < ws->n; i++) post(&ws->workers[i], NULL, PC__CMD_EXIT);
    for (unsigned i = 0; i < ws->n; i++) {
        pc_worker_t *w = &ws->workers[i];
        uv_thread_join(&w->thread);
        release_retired(w);
        pc_snapshot_unref(w->pending_snap);
        pc_snapshot_unref(w->snap);
        /* EBUSY when a module left sessions behind: the process is exiting anyway. */
        (void)uv_loop_close(&w->loop);
        pthread_mutex_destroy(&w->lock);
    }
    free(ws->workers);
    ws->workers = NULL;
    ws->n = 0;
    /* The async handle lives in ws: free it only once libuv is done with it. */
    uv_close((uv_handle_t *)&ws->notify_async, free_pool);
}
