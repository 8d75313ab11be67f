/*
 * The health server (design §5): GET /health, /ready and /metrics over
 * HTTP/1.1 on health.listen, served from the main thread's loop.
 *
 * The server knows nothing about the connector: it asks a view callback for
 * the readiness state on every /ready request, and renders /metrics from the
 * metrics registry (core/metrics.h).
 */
#ifndef PC_HEALTH_HEALTH_H
#define PC_HEALTH_HEALTH_H

#include "core/common.h"

#include <uv.h>

typedef struct pc_health pc_health_t;

/** What /ready reports. reason is a short static phrase, shown when !ready. */
typedef struct pc_health_view {
    bool ready;
    const char *reason;
    uint64_t revision;
    const char *instance;
    unsigned workers;
    unsigned listeners;
    unsigned unbound; /* (worker, listener) pairs not listening; shown when non-zero */
    /* More members for the body, already JSON (e.g. `"control_plane":"connected"`), or NULL. */
    const char *extra;
} pc_health_view_t;

typedef void (*pc_health_view_fn)(void *arg, pc_health_view_t *out);

/**
 * Bind listen ("host:port", "[v6]:port" or ":port") on loop and start serving.
 * NULL with a message in err when the address is bad or cannot be bound.
 */
pc_health_t *pc_health_start(uv_loop_t *loop, const char *listen, pc_health_view_fn view,
                             void *arg, char *err, size_t errlen) PC_WUR;

/** Port actually bound (useful with port 0). */
int pc_health_port(const pc_health_t *h);

/** Close the listening socket and every connection; memory goes with the loop's close callbacks. Accepts NULL. */
void pc_health_stop(pc_health_t *h);

#endif
