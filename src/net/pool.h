/*
 * The worker pool as the main thread sees it: start N worker threads, publish
 * snapshots to them, ask them to stop accepting / report open sessions /
 * terminate sessions, and stop them. Every function here is called on the
 * main thread only; the workers answer through atomics and a notify callback
 * (run on the main loop through a uv_async_t).
 *
 * Each worker binds its own socket per listener (SO_REUSEADDR + SO_REUSEPORT)
 * so the kernel spreads connections across the workers; a listener that cannot
 * be bound (port in use) is logged once (by worker 0) and retried every second,
 * and the pool is not "bound" until every listener is listening on every worker.
 */
#ifndef PC_NET_POOL_H
#define PC_NET_POOL_H

#include "net/worker.h"

typedef struct pc_workers pc_workers_t;

/**
 * Start n worker threads (n = 0: one per CPU). notify(arg) runs on main_loop
 * whenever a worker reports something (snapshot applied, listener bound,
 * session count polled). Returns NULL with a message in err on failure.
 */
pc_workers_t *pc_workers_start(uv_loop_t *main_loop, const pc_ctx_t *ctx, unsigned n,
                               void (*notify)(void *arg), void *arg, char *err,
                               size_t errlen) PC_WUR;

unsigned pc_workers_count(const pc_workers_t *ws);

/** Hand snap to every worker (each takes its own reference); they reconcile listeners. */
void pc_workers_publish(pc_workers_t *ws, pc_snapshot_t *snap);

/**
 * True when every worker runs `revision` and every listener of it is listening
 * on every worker. *unbound (optional) receives the number of (worker, listener)
 * pairs not yet bound.
 */
bool pc_workers_ready(const pc_workers_t *ws, uint64_t revision, unsigned *unbound);

/** Close every listener on every worker and mark the workers draining. */
void pc_workers_stop_accepting(pc_workers_t *ws);

/** Ask every worker to count its open sessions; results arrive via notify. */
void pc_workers_poll_sessions(pc_workers_t *ws);

/**
 * Sum of the latest counts; *complete says whether every worker has answered
 * the latest poll (a count from before the poll is not proof of an empty worker).
 */
size_t pc_workers_active_sessions(const pc_workers_t *ws, bool *complete);

/** Drain deadline: every protocol module ends its sessions (terminate_all). */
void pc_workers_terminate_all(pc_workers_t *ws);

/** Stop the loops, join the threads and free. Accepts NULL. */
void pc_workers_stop(pc_workers_t *ws);

#endif
