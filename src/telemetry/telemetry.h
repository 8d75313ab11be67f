/*
 * Telemetry (design §9): the connector's heartbeat and process metrics, and
 * the OTLP/HTTP metrics exporter.
 *
 * Every telemetry.interval a timer on the main loop counts a heartbeat and,
 * when telemetry.otlp_endpoint is set, collects the metrics registry (probes
 * run on the main loop, like /metrics) and hands that snapshot to the exporter
 * thread, which encodes it as OTLP JSON and POSTs it to {endpoint}/v1/metrics
 * with libcurl. Workers never wait on any of this: they only update atomics.
 *
 * Export failures (connection errors, 429, 502, 503, 504) are retried with a
 * jittered exponential backoff capped at 4 x interval (1 s .. 5 min), honouring
 * Retry-After. Every export carries cumulative values, so a retry sends the
 * newest snapshot and nothing is lost by skipping stale ones. Other HTTP
 * errors drop that snapshot. The log says when exporting starts failing and
 * when it resumes, once each.
 */
#ifndef PC_TELEMETRY_TELEMETRY_H
#define PC_TELEMETRY_TELEMETRY_H

#include "core/common.h"
#include "core/metrics.h"

#include <uv.h>

typedef struct pc_telemetry pc_telemetry_t;

typedef struct pc_telemetry_opts {
    const char *otlp_endpoint; /* base URL, e.g. http://127.0.0.1:4318; NULL = no export */
    uint64_t interval_ms;      /* heartbeat and export period (> 0) */
    const char *instance;      /* service.instance.id */
    const char *version;       /* service.version */
} pc_telemetry_opts_t;

typedef struct pc_telemetry_report {
    bool exporting;      /* an endpoint was configured */
    bool final_flush_ok; /* the export made at stop was accepted */
    uint64_t exports_ok, exports_failed;
} pc_telemetry_report_t;

/**
 * Register the heartbeat, memory and shared metric set (core/metrics.h), start
 * the heartbeat timer on loop and, with an endpoint, the exporter thread.
 * Main thread. NULL with a message in err if the thread cannot be started.
 * Metric names: portcullis_heartbeats_total, portcullis_process_memory_limit_bytes
 * and portcullis_process_memory_limit_percent (only under a cgroup memory
 * limit), portcullis_telemetry_exports_total{result} (only when exporting).
 */
pc_telemetry_t *pc_telemetry_start(uv_loop_t *loop, const pc_telemetry_opts_t *o, char *err,
                                   size_t errlen) PC_WUR;

/**
 * Shutdown step 3: stop the timer, collect a last snapshot, abandon any retry in
 * progress, send the snapshot once (at most ~5 s) and join the thread. Main
 * thread; accepts NULL; out may be NULL. The memory goes with the timer's close
 * callback, so the loop must run once more.
 */
void pc_telemetry_stop(pc_telemetry_t *t, pc_telemetry_report_t *out);

/* ---------- internals shared with the unit tests ---------- */

/** OTLP ExportMetricsServiceRequest as JSON (malloc'd); start_ns/now_ns are wall-clock ns. */
char *pc__telemetry_encode(const pc_metric_samples_t *s, const pc_telemetry_opts_t *o,
                           uint64_t start_ns, uint64_t now_ns);

/** A cgroup memory.max / memory.limit_in_bytes text: true with the limit, false for none. */
bool pc__telemetry_parse_memory_limit(const char *text, uint64_t *limit);

#endif
