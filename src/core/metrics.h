/*
 * Metrics registry: counters and gauges updated lock-free from any thread,
 * rendered as Prometheus text on /metrics (and later exported over OTLP).
 *
 * Registration (pc_metric_counter / pc_metric_gauge) takes a lock and is for
 * start-up or for a new listener; it returns the same pointer for the same
 * name + labels, valid for the life of the process. Updates are one relaxed
 * atomic operation.
 */
#ifndef PC_CORE_METRICS_H
#define PC_CORE_METRICS_H

#include "core/common.h"

#include <stdatomic.h>

typedef struct pc_metric pc_metric_t;

/** labels: Prometheus label text without braces, e.g. `listener="pg"`, or NULL. */
pc_metric_t *pc_metric_counter(const char *name, const char *help, const char *labels);
pc_metric_t *pc_metric_gauge(const char *name, const char *help, const char *labels);

void pc_metric_add(pc_metric_t *m, int64_t delta);
void pc_metric_set(pc_metric_t *m, int64_t value);
int64_t pc_metric_get(const pc_metric_t *m);

/** Gauges computed when rendered (e.g. RSS, spool pending). */
typedef int64_t (*pc_metric_probe_fn)(void *arg);
void pc_metric_probe(const char *name, const char *help, const char *labels,
                     pc_metric_probe_fn fn, void *arg);

/** Prometheus text exposition format; returns a malloc'd string. */
char *pc_metrics_render_prometheus(void);

#endif
