/*
 * Metrics registry: counters, gauges and histograms updated lock-free from any
 * thread, rendered as Prometheus text on /metrics and exported over OTLP
 * (src/telemetry/) from one collection of the same series.
 *
 * Registration (pc_metric_counter / _gauge / _histogram / _probe) takes a lock
 * and is for start-up or for a new listener; it returns the same pointer for
 * the same name + labels, valid for the life of the process. Updates are one
 * relaxed atomic operation (a histogram observation: two, plus a CAS for the
 * sum).
 *
 * Probes run when the registry is collected or rendered, on the caller's
 * thread: in the connector that is always the main loop (the health server's
 * /metrics and the telemetry timer), so a probe may read main-thread state.
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
/** Counter or gauge value; a probe's current value; a histogram's count. */
int64_t pc_metric_get(const pc_metric_t *m);

/** Gauges computed when collected (e.g. RSS, spool pending). */
typedef int64_t (*pc_metric_probe_fn)(void *arg);
void pc_metric_probe(const char *name, const char *help, const char *labels,
                     pc_metric_probe_fn fn, void *arg);
/** Same for a fractional value (a percentage, an age in seconds). */
typedef double (*pc_metric_probe_f64_fn)(void *arg);
void pc_metric_probe_f64(const char *name, const char *help, const char *labels,
                         pc_metric_probe_f64_fn fn, void *arg);

/**
 * Histogram with n_bounds ascending upper bounds (copied) plus +Inf. Name it
 * without _bucket/_sum/_count: the renderers add them. The same name + labels
 * returns the same histogram (the bounds of the first registration win).
 */
pc_metric_t *pc_metric_histogram(const char *name, const char *help, const char *labels,
                                 const double *bounds, size_t n_bounds);
/** Count v into its bucket (v <= bound) and add it to the sum; NULL tolerated. */
void pc_metric_observe(pc_metric_t *h, double v);

/* ---------- collection (renderers, exporter, tests) ---------- */

typedef enum { PC_METRIC_COUNTER, PC_METRIC_GAUGE, PC_METRIC_HISTOGRAM } pc_metric_type_t;

typedef struct pc_metric_sample {
    const char *name, *help, *labels; /* owned by the registry: valid for the process; labels may be NULL */
    pc_metric_type_t type;
    bool is_double; /* gauges from pc_metric_probe_f64: dvalue, else value */
    int64_t value;
    double dvalue;
    /* Histograms: buckets[i] counts observations in (bounds[i-1], bounds[i]] (not
     * cumulative); buckets[n_bounds] is (last bound, +Inf]. count = sum of buckets. */
    size_t n_bounds;
    const double *bounds;
    uint64_t *buckets; /* owned by the sample set */
    uint64_t count;
    double sum;
} pc_metric_sample_t;

typedef struct pc_metric_samples {
    pc_metric_sample_t *items;
    size_t n;
} pc_metric_samples_t;

/**
 * Read every series now (probes run on this thread). Series of one name are
 * adjacent, families in first-registration order. Free with
 * pc_metric_samples_free (accepts an empty or zeroed set).
 */
void pc_metrics_collect(pc_metric_samples_t *out);
void pc_metric_samples_free(pc_metric_samples_t *s);

/** Prometheus text exposition format (0.0.4); returns a malloc'd string. */
char *pc_metrics_render_prometheus(void);

/* ---------- the connector's shared metric set (design §9) ----------
 *
 * Registered once, by pc_metrics_register_standard (the connector calls it at
 * start-up so every series is visible from the first scrape) or on first use of
 * any helper below. Each helper is a relaxed atomic update, safe on any thread.
 */
void pc_metrics_register_standard(void);

/** portcullis_requests_total{decision}: "allow", "block", "mask"; anything else counts as "other". */
void pc_metrics_request(const char *decision);

/**
 * portcullis_policy_evaluation_duration_seconds{stage}: one policy evaluation
 * (all active policies of one stage). stage: "session", "pre_request",
 * "post_request"; anything else counts as "other".
 */
void pc_metrics_policy_eval_observe(const char *stage, uint64_t duration_ns);

/** portcullis_control_plane_connected: 1 while the control-plane stream is up. */
void pc_metrics_cp_connected(bool connected);
/** portcullis_control_plane_pings_received_total + 1; also marks contact. */
void pc_metrics_cp_ping(void);
/** Any message from the control plane: resets portcullis_control_plane_last_contact_age_seconds. */
void pc_metrics_cp_contact(void);

/** portcullis_cluster_members: etcd members this instance sees (0 while clustering is off). */
void pc_metrics_cluster_members(int64_t n);

#endif
