/*
 * Worker threads: one libuv loop per thread, each with its own accept socket
 * per listener (SO_REUSEPORT), so sessions never cross threads. Protocol
 * modules (PostgreSQL now, S3 and BigQuery later) plug in through pc_proto_t.
 *
 * Threading rule: everything reached through a pc_worker_t is touched only on
 * that worker's thread, except where a function says otherwise.
 */
#ifndef PC_NET_WORKER_H
#define PC_NET_WORKER_H

#include "core/common.h"
#include "core/config.h"
#include "spool/spool.h"

#include <uv.h>

typedef struct pc_worker pc_worker_t;

/** Process-wide context shared read-only by every worker. */
typedef struct pc_ctx {
    const pc_config_t *cfg;
    pc_spool_t *spool;
    const char *instance_name;
} pc_ctx_t;

uv_loop_t *pc_worker_loop(pc_worker_t *w);
unsigned pc_worker_index(const pc_worker_t *w);
const pc_ctx_t *pc_worker_ctx(const pc_worker_t *w);

/**
 * The newest snapshot this worker has seen. Borrowed: valid until control
 * returns to the loop; a session that keeps objects from it takes its own
 * reference (pc_snapshot_ref) and drops it when it ends.
 */
pc_snapshot_t *pc_worker_snapshot(pc_worker_t *w);

/** Per-worker slot for a protocol module's own state (e.g. its session list). */
void **pc_worker_proto_slot(pc_worker_t *w, pc_technology_t tech);

/** True once shutdown has begun (listeners closed, sessions draining). */
bool pc_worker_draining(const pc_worker_t *w);

/* A protocol module: registered once at start-up, before workers start. */
typedef struct pc_proto {
    pc_technology_t technology;
    /**
     * A client connected to a listener whose resource has this technology.
     * `client` is initialised on w's loop and accepted; the module owns it from
     * now on (and must uv_close it). `listener` belongs to `snap`; the module
     * takes its own reference on snap if it keeps pointers into it.
     */
    void (*on_accept)(pc_worker_t *w, uv_tcp_t *client, pc_snapshot_t *snap,
                      const pc_listener_cfg_t *listener);
    /** Drain deadline passed: end every session on w now (PostgreSQL: FATAL 57P01). */
    void (*terminate_all)(pc_worker_t *w);
    /** Sessions still open on w. */
    size_t (*active_sessions)(pc_worker_t *w);
    /**
     * Optional (NULL = nothing to do): w is stopping, on w's thread, after the
     * drain and terminate_all; release the module's per-worker state (its
     * pc_worker_proto_slot). The loop is not run again afterwards.
     */
    void (*worker_stop)(pc_worker_t *w);
} pc_proto_t;

void pc_proto_register(const pc_proto_t *proto);
const pc_proto_t *pc_proto_find(pc_technology_t tech);

#endif
