/*
 * The connector's side of the remote control plane (design §7, CP-API.md):
 *
 *  - a watch thread holds the long-lived NDJSON stream of configuration
 *    snapshots (GET /v1/connector/config?watch=1&since=REV), treats 15 s
 *    without a line as a dead stream, reconnects with capped, fully jittered
 *    exponential backoff (250 ms .. 30 s) resuming from the last revision it
 *    received, and posts a heartbeat every 10 s from the same curl multi;
 *  - a shipper thread reads the audit spool from its durable shipped cursor,
 *    POSTs batches (<= 500 records, <= 1 MiB) to /v1/connector/logs, and
 *    advances the cursor (fsynced) only after a 2xx: at-least-once delivery,
 *    the server de-duplicates by record id.
 *
 * Snapshots are handed to the loop's thread (uv_async): the callback runs
 * there with the snapshot as text for pc_snapshot_load_yaml, so loading and
 * publishing stay where config_dir reloads happen. Neither thread ever touches
 * a worker loop or the request path.
 *
 * Threads: start, status, close and the snapshot callback run on the loop's
 * thread; set_ready may be called from any thread.
 */
#ifndef PC_CPCLIENT_CPCLIENT_H
#define PC_CPCLIENT_CPCLIENT_H

#include "core/common.h"

#include <uv.h>

typedef struct pc_cpclient pc_cpclient_t;

/** Called on the loop's thread; text is valid only during the call. */
typedef void (*pc_cpclient_snapshot_fn)(void *arg, const char *text, size_t len, uint64_t revision);

typedef struct pc_cpclient_opts {
    const char *url;       /* base URL, http:// or https:// (TLS through libcurl) */
    const char *token;     /* connector token (secret: never logged) */
    const char *ca_file;   /* https: CA bundle (PEM) to verify the control plane; NULL = system store */
    const char *instance;  /* heartbeat: instance name */
    const char *address;   /* heartbeat: advertised health address host:port */
    const char *spool_dir; /* audit spool to ship; NULL = no shipper */
} pc_cpclient_opts_t;

/**
 * Start both threads (and register the control-plane metrics). Strings are
 * copied. NULL with a message in err if a thread or curl cannot start.
 */
pc_cpclient_t *pc_cpclient_start(uv_loop_t *loop, const pc_cpclient_opts_t *opts,
                                 pc_cpclient_snapshot_fn on_snapshot, void *arg, char *err,
                                 size_t errlen) PC_WUR;

typedef enum {
    PC_CPCLIENT_CONNECTING,   /* never reached yet, no failure so far */
    PC_CPCLIENT_UNREACHABLE,  /* never reached; the last attempt failed */
    PC_CPCLIENT_CONNECTED,    /* the watch stream is alive */
    PC_CPCLIENT_DISCONNECTED, /* was connected; lost since */
} pc_cpclient_state_t;

typedef struct pc_cpclient_status {
    pc_cpclient_state_t state;
    int64_t last_contact_age_ms; /* -1: never */
    uint64_t revision;           /* last snapshot revision received */
    uint64_t records_shipped;    /* acknowledged by the control plane */
    char last_error[160];        /* last connection error ("" when none) */
} pc_cpclient_status_t;

void pc_cpclient_status(pc_cpclient_t *cp, pc_cpclient_status_t *out);

/** "connecting", "unreachable", "connected", "disconnected". */
const char *pc_cpclient_state_name(pc_cpclient_state_t s);

/** The readiness the next heartbeats report (any thread). */
void pc_cpclient_set_ready(pc_cpclient_t *cp, bool ready);

/**
 * Stop receiving snapshots and heartbeating, give the shipper up to
 * flush_timeout_ms to send what the spool holds (call after pc_spool_flush so
 * that it is readable), join both threads. Memory goes with the async
 * handle's close callback. Returns the records shipped during the flush.
 * Accepts NULL.
 */
uint64_t pc_cpclient_close(pc_cpclient_t *cp, uint64_t flush_timeout_ms);

#endif
