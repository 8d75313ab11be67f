/*
 * Internals shared by worker.c (threads, messages, pool) and listener.c (the
 * per-worker accept sockets). Not API: nothing outside src/net/ includes this.
 */
#ifndef PC_NET_WORKER_INT_H
#define PC_NET_WORKER_INT_H

#include "core/metrics.h"
#include "net/pool.h"

#include <pthread.h>
#include <stdatomic.h>

#define PC__N_TECH 3

/* Commands from the main thread, set under pc_worker.lock then uv_async_send. */
enum {
    PC__CMD_STOP_ACCEPT = 1u << 0,
    PC__CMD_POLL = 1u << 1,
    PC__CMD_TERMINATE = 1u << 2,
    PC__CMD_EXIT = 1u << 3,
};

typedef struct pc__wlistener pc__wlistener_t;

struct pc_worker {
    unsigned index;
    pc_workers_t *pool;
    const pc_ctx_t *ctx;
    uv_loop_t loop;
    uv_thread_t thread;
    uv_async_t wakeup;
    uv_timer_t retry_timer; /* re-binds listeners that failed */

    /* Mailbox from the main thread; held only for pointer swaps. */
    pthread_mutex_t lock;
    pc_snapshot_t *pending_snap;
    unsigned pending_cmds;
    uint64_t pending_poll_seq;
    /* Snapshots the worker is done with, released by the main thread: freeing
     * a large snapshot (compiled policies) is work the request path skips. */
    pc_snapshot_t *retired[8];
    unsigned n_retired;

    /* Worker-thread state. */
    pc_snapshot_t *snap;
    pc__wlistener_t *listeners;
    void *proto_slots[PC__N_TECH];
    atomic_bool draining;

    /* Reported to the main thread. */
    _Atomic uint64_t applied_revision;
    atomic_uint unbound;
    _Atomic size_t active_sessions;
    _Atomic uint64_t answered_poll_seq;
};

/* listener.c: make w's listeners match w->snap (open new, close removed, re-bind moved). */
void pc__listeners_reconcile(pc_worker_t *w);
/* listener.c: try again to bind listeners that failed; returns how many are still unbound. */
unsigned pc__listeners_retry(pc_worker_t *w);
/* listener.c: close every listener (shutdown or exit). */
void pc__listeners_close_all(pc_worker_t *w);

/* worker.c: tell the main thread something changed. */
void pc__worker_notify(pc_worker_t *w);

#endif
