/*
 * The watch thread: one curl multi carrying the snapshot stream and the
 * periodic heartbeat, and the hand-off of snapshots to the loop's thread.
 *
 * State shared with the loop's thread sits under `lock` (status, the pending
 * snapshot); the thread itself owns every curl handle. A newer snapshot
 * replaces one the loop has not picked up yet: only the latest matters.
 */
#include "cpclient/cpclient.h"

#include "core/log.h"
#include "core/metrics.h"
#include "cpclient/cpclient_int.h"

#include <curl/curl.h>
#include <inttypes.h>
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#define BACKOFF_BASE_MS 250
#define BACKOFF_CAP_MS 30000
#define DEAD_STREAM_MS 15000 /* CP-API.md: no line for 15 s = dead */
#define HEARTBEAT_MS 10000
#define HEARTBEAT_TIMEOUT_MS 10000
#define MAX_LINE (64u * 1024u * 1024u) /* a snapshot is one line */
#define ERROR_BODY_MAX 256

struct pc_cpclient {
    /* immutable after start */
    uv_loop_t *loop;
    uv_async_t async;
    pc_cpclient_snapshot_fn on_snapshot;
    void *arg;
    char *url, *token, *instance, *address, *ca_file;
    pthread_t thread;
    bool thread_started;
    pc__shipper_t *shipper;

    atomic_bool stopping;
    atomic_bool ready;
    atomic_bool heartbeat_now; /* readiness changed: tell the control plane without waiting */

    pthread_mutex_t lock; /* guards the fields below */
    pc_cpclient_state_t state;
    uint64_t last_contact_ms; /* monotonic; 0 = never */
    uint64_t revision;        /* last snapshot received */
    char last_error[160];
    char *pending_text; /* snapshot the loop has not taken yet */
    size_t pending_len;
    uint64_t pending_rev;

    /* watch thread only */
    CURLM *multi;
    CURL *watch, *hb;
    struct curl_slist *watch_hdrs, *hb_hdrs;
    char watch_err[CURL_ERROR_SIZE], hb_err[CURL_ERROR_SIZE];
    char *hb_body;
    pc__ndjson_t splitter;
    pc__backoff_t backoff;
    bool stream_live;    /* a line arrived on the current stream */
    bool stream_aborted; /* we cut it (bad line): reason in abort_reason */
    char abort_reason[160];
    char error_body[ERROR_BODY_MAX];
    size_t error_body_len;
    uint64_t watch_started_ms, last_line_ms, reconnect_at_ms, next_hb_ms, lost_at_ms;

    pc_metric_t *m_connected, *m_age, *m_stream_hb, *m_snapshots, *m_reconnects, *m_hb_ok,
        *m_hb_failed;
};

const char *pc_cpclient_state_name(pc_cpclient_state_t s)
{
    switch (s) {
    case PC_CPCLIENT_CONNECTING:
        return "connecting";
    case PC_CPCLIENT_UNREACHABLE:
        return "unreachable";
    case PC_CPCLIENT_CONNECTED:
        return "connected";
    case PC_CPCLIENT_DISCONNECTED:
        return "disconnected";
    }
    return "unknown";
}

/* ---------- loop side ---------- */

static void on_async(uv_async_t *a)
{
    pc_cpclient_t *cp = a->data;
    pthread_mutex_lock(&cp->lock);
    char *text = cp->pending_text;
    size_t len = cp->pending_len;
    uint64_t rev = cp->pending_rev;
    cp->pending_text = NULL;
    pthread_mutex_unlock(&cp->lock);
    if (!text) return;
    cp->on_snapshot(cp->arg, text, len, rev);
    free(text);
}

void pc_cpclient_status(pc_cpclient_t *cp, pc_cpclient_status_t *out)
{
    memset(out, 0, sizeof *out);
    uint64_t now = pc__cp_now_ms();
    pthread_mutex_lock(&cp->lock);
    out->state = cp->state;
    out->last_contact_age_ms = cp->last_contact_ms ? (int64_t)(now - cp->last_contact_ms) : -1;
    out->revision = cp->revision;
    snprintf(out->last_error, sizeof out->last_error, "%s", cp->last_error);
    pthread_mutex_unlock(&cp->lock);
    out->records_shipped = cp->shipper ? pc__shipper_shipped(cp->shipper) : 0;
}

void pc_cpclient_set_ready(pc_cpclient_t *cp, bool ready)
{
    if (!cp || atomic_exchange(&cp->ready, ready) == ready) return;
    atomic_store(&cp->heartbeat_now, true);
    curl_multi_wakeup(cp->multi);
}

/* ---------- watch thread: contact bookkeeping ---------- */

static void touch_contact(pc_cpclient_t *cp)
{
    pthread_mutex_lock(&cp->lock);
    cp->last_contact_ms = pc__cp_now_ms();
    pthread_mutex_unlock(&cp->lock);
}

/* First line on a fresh stream: the control plane is back (logged once per outage). */
static void stream_up(pc_cpclient_t *cp)
{
    cp->stream_live = true;
    pc__backoff_reset(&cp->backoff);
    pthread_mutex_lock(&cp->lock);
    pc_cpclient_state_t was = cp->state;
    cp->state = PC_CPCLIENT_CONNECTED;
    cp->last_error[0] = '\0';
    uint64_t rev = cp->revision;
    pthread_mutex_unlock(&cp->lock);
    pc_metric_set(cp->m_connected, 1);
    pc__shipper_kick(cp->shipper); /* its backoff may be long by now: ship the backlog */
    if (was == PC_CPCLIENT_DISCONNECTED)
        pc_log_info("control plane connection restored", PC_LUINT("revision", rev),
                    PC_LUINT("down_ms", pc__cp_now_ms() - cp->lost_at_ms));
    else
        pc_log_info("control plane connected", PC_LUINT("revision", rev));
}

/* The stream ended or never started: log a change of state once, schedule a retry. */
static void stream_down(pc_cpclient_t *cp, const char *why)
{
    uint64_t now = pc__cp_now_ms();
    uint64_t delay = pc__backoff_next(&cp->backoff, pc__cp_random());
    cp->reconnect_at_ms = now + delay;
    pc_metric_add(cp->m_reconnects, 1);
    pc_metric_set(cp->m_connected, 0);
    pthread_mutex_lock(&cp->lock);
    pc_cpclient_state_t was = cp->state;
    if (was == PC_CPCLIENT_CONNECTED) cp->state = PC_CPCLIENT_DISCONNECTED;
    if (was == PC_CPCLIENT_CONNECTING) cp->state = PC_CPCLIENT_UNREACHABLE;
    snprintf(cp->last_error, sizeof cp->last_error, "%s", why);
    uint64_t rev = cp->revision;
    pthread_mutex_unlock(&cp->lock);
    if (was == PC_CPCLIENT_CONNECTED) {
        cp->lost_at_ms = now;
        pc_log_warn("control plane connection lost; serving with the last snapshot",
                    PC_LSTR("error", why), PC_LUINT("revision", rev),
                    PC_LUINT("retry_in_ms", delay));
    } else if (was == PC_CPCLIENT_CONNECTING) {
        pc_log_warn("control plane unreachable; retrying with backoff", PC_LSTR("error", why),
                    PC_LUINT("retry_in_ms", delay));
    } else {
        pc_log_debug("control plane still unreachable", PC_LSTR("error", why),
                     PC_LUINT("retry_in_ms", delay));
    }
}

/* ---------- watch thread: the stream ---------- */

static void deliver_snapshot(pc_cpclient_t *cp, pc__cpmsg_t *m)
{
    pthread_mutex_lock(&cp->lock);
    free(cp->pending_text);
    cp->pending_text = m->snapshot_text;
    cp->pending_len = m->snapshot_len;
    cp->pending_rev = m->revision;
    cp->revision = m->revision;
    pthread_mutex_unlock(&cp->lock);
    m->snapshot_text = NULL;
    pc_metric_add(cp->m_snapshots, 1);
    pc_log_debug("control plane snapshot received", PC_LUINT("revision", m->revision));
    uv_async_send(&cp->async);
}

static bool handle_line(pc_cpclient_t *cp, const char *line, size_t len)
{
    pc__cpmsg_t m;
    char err[160];
    if (!pc__cpmsg_decode(line, len, &m, err, sizeof err)) {
        snprintf(cp->abort_reason, sizeof cp->abort_reason, "%s", err);
        return false;
    }
    cp->last_line_ms = pc__cp_now_ms();
    if (!cp->stream_live) stream_up(cp);
    touch_contact(cp);
    if (m.type == PC__CPMSG_SNAPSHOT)
        deliver_snapshot(cp, &m);
    else if (m.type == PC__CPMSG_HEARTBEAT)
        pc_metric_add(cp->m_stream_hb, 1);
    pc__cpmsg_free(&m);
    return true;
}

static size_t on_watch_data(char *data, size_t size, size_t nmemb, void *arg)
{
    pc_cpclient_t *cp = arg;
    size_t len = size * nmemb;
    long code = 0;
    curl_easy_getinfo(cp->watch, CURLINFO_RESPONSE_CODE, &code);
    if (code != 200) {
        /* An error answer: keep its start for the log line. */
        size_t room = sizeof cp->error_body - 1 - cp->error_body_len;
        size_t n = len < room ? len : room;
        memcpy(cp->error_body + cp->error_body_len, data, n);
        cp->error_body_len += n;
        cp->error_body[cp->error_body_len] = '\0';
        return len;
    }
    size_t off = 0;
    while (off < len) {
        size_t used = 0;
        const char *line;
        size_t line_len;
        pc__ndjson_res_t r =
            pc__ndjson_feed(&cp->splitter, data + off, len - off, &used, &line, &line_len);
        off += used;
        if (r == PC__NDJSON_NEED_MORE) break;
        if (r == PC__NDJSON_ERROR) {
            snprintf(cp->abort_reason, sizeof cp->abort_reason, "stream line longer than %u bytes",
                     MAX_LINE);
            cp->stream_aborted = true;
            return 0; /* curl ends the transfer with CURLE_WRITE_ERROR */
        }
        if (!handle_line(cp, line, line_len)) {
            cp->stream_aborted = true;
            return 0;
        }
    }
    return len;
}

static void start_watch(pc_cpclient_t *cp)
{
    char path[96], url[2048];
    pthread_mutex_lock(&cp->lock);
    uint64_t since = cp->revision;
    pthread_mutex_unlock(&cp->lock);
    snprintf(path, sizeof path, "/v1/connector/config?watch=1&since=%" PRIu64, since);
    cp->watch_started_ms = cp->last_line_ms = pc__cp_now_ms();
    cp->stream_live = cp->stream_aborted = false;
    cp->error_body_len = 0;
    cp->error_body[0] = '\0';
    pc__ndjson_reset(&cp->splitter);
    if (!pc__cp_url(url, sizeof url, cp->url, path) || !(cp->watch = curl_easy_init())) {
        stream_down(cp, "cannot build the watch request");
        return;
    }
    pc__cp_easy_defaults(cp->watch, cp->watch_err, cp->ca_file);
    curl_easy_setopt(cp->watch, CURLOPT_URL, url);
    curl_easy_setopt(cp->watch, CURLOPT_HTTPHEADER, cp->watch_hdrs);
    curl_easy_setopt(cp->watch, CURLOPT_WRITEFUNCTION, on_watch_data);
    curl_easy_setopt(cp->watch, CURLOPT_WRITEDATA, cp);
    curl_multi_add_handle(cp->multi, cp->watch);
}

static void end_watch(pc_cpclient_t *cp)
{
    curl_multi_remove_handle(cp->multi, cp->watch);
    curl_easy_cleanup(cp->watch);
    cp->watch = NULL;
}

/* The watch transfer finished (it never should): say why and schedule a retry. */
static void watch_done(pc_cpclient_t *cp, CURLcode rc)
{
    long code = 0;
    char why[160];
    curl_easy_getinfo(cp->watch, CURLINFO_RESPONSE_CODE, &code);
    if (cp->stream_aborted)
        snprintf(why, sizeof why, "%s", cp->abort_reason);
    else if (rc != CURLE_OK)
        snprintf(why, sizeof why, "%.150s",
                 cp->watch_err[0] ? cp->watch_err : curl_easy_strerror(rc));
    else if (code != 200)
        snprintf(why, sizeof why, "HTTP %ld: %.120s", code, cp->error_body);
    else
        snprintf(why, sizeof why, "the control plane ended the stream");
    /* Strip a trailing newline from a server's error body. */
    size_t n = strlen(why);
    while (n > 0 && (why[n - 1] == '\n' || why[n - 1] == '\r'))
        why[--n] = '\0';
    end_watch(cp);
    stream_down(cp, why);
}

/* ---------- watch thread: heartbeats ---------- */

static char *heartbeat_body(pc_cpclient_t *cp)
{
    pthread_mutex_lock(&cp->lock);
    const char *cps = pc_cpclient_state_name(cp->state);
    pthread_mutex_unlock(&cp->lock);
    json_t *o = json_pack("{s:s, s:s, s:s, s:{s:b, s:s, s:s}, s:s}", "instance", cp->instance,
                          "version", PC_VERSION, "address", cp->address, "health", "ready",
                          (int)atomic_load(&cp->ready), "control_plane", cps, "cluster", "disabled",
                          "cluster_role", "none");
    char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    return s;
}

static void start_heartbeat(pc_cpclient_t *cp)
{
    char url[2048];
    cp->next_hb_ms = pc__cp_now_ms() + HEARTBEAT_MS;
    free(cp->hb_body);
    cp->hb_body = heartbeat_body(cp);
    if (!cp->hb_body || !pc__cp_url(url, sizeof url, cp->url, "/v1/connector/heartbeat") ||
        !(cp->hb = curl_easy_init()))
        return;
    pc__cp_easy_defaults(cp->hb, cp->hb_err, cp->ca_file);
    curl_easy_setopt(cp->hb, CURLOPT_URL, url);
    curl_easy_setopt(cp->hb, CURLOPT_HTTPHEADER, cp->hb_hdrs);
    curl_easy_setopt(cp->hb, CURLOPT_POSTFIELDS, cp->hb_body);
    curl_easy_setopt(cp->hb, CURLOPT_POSTFIELDSIZE, (long)strlen(cp->hb_body));
    curl_easy_setopt(cp->hb, CURLOPT_TIMEOUT_MS, (long)HEARTBEAT_TIMEOUT_MS);
    curl_easy_setopt(cp->hb, CURLOPT_WRITEFUNCTION, pc__cp_discard);
    curl_multi_add_handle(cp->multi, cp->hb);
}

static void heartbeat_done(pc_cpclient_t *cp, CURLcode rc)
{
    long code = 0;
    curl_easy_getinfo(cp->hb, CURLINFO_RESPONSE_CODE, &code);
    bool ok = rc == CURLE_OK && code >= 200 && code < 300;
    pc_metric_add(ok ? cp->m_hb_ok : cp->m_hb_failed, 1);
    if (ok)
        touch_contact(cp);
    else
        pc_log_debug("heartbeat failed", PC_LINT("status", code),
                     PC_LSTR("error", cp->hb_err[0] ? cp->hb_err : curl_easy_strerror(rc)));
    curl_multi_remove_handle(cp->multi, cp->hb);
    curl_easy_cleanup(cp->hb);
    cp->hb = NULL;
}

/* ---------- watch thread: main loop ---------- */

static void update_age_metric(pc_cpclient_t *cp, uint64_t now)
{
    pthread_mutex_lock(&cp->lock);
    uint64_t last = cp->last_contact_ms;
    pthread_mutex_unlock(&cp->lock);
    pc_metric_set(cp->m_age, last ? (int64_t)((now - last) / 1000u) : -1);
}

static void *watch_main(void *arg)
{
    pc_cpclient_t *cp = arg;
    while (!atomic_load(&cp->stopping)) {
        uint64_t now = pc__cp_now_ms();
        if (atomic_exchange(&cp->heartbeat_now, false)) cp->next_hb_ms = now;
        if (!cp->watch && now >= cp->reconnect_at_ms) start_watch(cp);
        if (!cp->hb && now >= cp->next_hb_ms) start_heartbeat(cp);
        int running = 0;
        curl_multi_perform(cp->multi, &running);
        CURLMsg *msg;
        int left;
        while ((msg = curl_multi_info_read(cp->multi, &left))) {
            if (msg->msg != CURLMSG_DONE) continue;
            CURL *e = msg->easy_handle;
            CURLcode rc = msg->data.result;
            if (e == cp->watch)
                watch_done(cp, rc);
            else if (e == cp->hb)
                heartbeat_done(cp, rc);
        }
        now = pc__cp_now_ms();
        /* Covers a silent peer at any stage: connecting, before the headers, mid-stream. */
        if (cp->watch && now - cp->last_line_ms >= DEAD_STREAM_MS) {
            end_watch(cp);
            stream_down(cp, cp->stream_live ? "no line from the control plane for 15 s"
                                            : "no answer from the control plane within 15 s");
        }
        update_age_metric(cp, now);
        uint64_t wait = 1000;
        if (!cp->watch && cp->reconnect_at_ms > now && cp->reconnect_at_ms - now < wait)
            wait = cp->reconnect_at_ms - now;
        if (!cp->watch && cp->reconnect_at_ms <= now) wait = 0;
        if (!cp->hb && cp->next_hb_ms > now && cp->next_hb_ms - now < wait)
            wait = cp->next_hb_ms - now;
        curl_multi_poll(cp->multi, NULL, 0, (int)wait, NULL);
    }
    if (cp->watch) end_watch(cp);
    if (cp->hb) {
        curl_multi_remove_handle(cp->multi, cp->hb);
        curl_easy_cleanup(cp->hb);
        cp->hb = NULL;
    }
    return NULL;
}

/* ---------- start / close ---------- */

static void free_cp(pc_cpclient_t *cp)
{
    if (cp->multi) curl_multi_cleanup(cp->multi);
    curl_slist_free_all(cp->watch_hdrs);
    curl_slist_free_all(cp->hb_hdrs);
    pc__ndjson_free(&cp->splitter);
    free(cp->hb_body);
    free(cp->pending_text);
    free(cp->url);
    free(cp->ca_file);
    if (cp->token) memset(cp->token, 0, strlen(cp->token));
    free(cp->token);
    free(cp->instance);
    free(cp->address);
    pthread_mutex_destroy(&cp->lock);
    free(cp);
}

static void on_async_closed(uv_handle_t *h)
{
    free_cp(h->data);
}

static void register_metrics(pc_cpclient_t *cp)
{
    cp->m_connected = pc_metric_gauge("portcullis_control_plane_connected",
                                      "1 while the control plane's watch stream is alive.", NULL);
    cp->m_age = pc_metric_gauge("portcullis_control_plane_last_contact_age_seconds",
                                "Seconds since the control plane last answered (-1: never).", NULL);
    cp->m_stream_hb = pc_metric_counter("portcullis_control_plane_pings_received_total",
                                        "Heartbeat lines received on the watch stream.", NULL);
    cp->m_snapshots =
        pc_metric_counter("portcullis_control_plane_snapshots_received_total",
                          "Configuration snapshots received from the control plane.", NULL);
    cp->m_reconnects = pc_metric_counter("portcullis_control_plane_reconnects_total",
                                         "Watch streams that ended or failed to start.", NULL);
    cp->m_hb_ok =
        pc_metric_counter("portcullis_control_plane_heartbeats_total",
                          "Heartbeats posted to the control plane by result.", "result=\"ok\"");
    cp->m_hb_failed =
        pc_metric_counter("portcullis_control_plane_heartbeats_total",
                          "Heartbeats posted to the control plane by result.", "result=\"failed\"");
    pc_metric_set(cp->m_connected, 0);
    pc_metric_set(cp->m_age, -1);
}

pc_cpclient_t *pc_cpclient_start(uv_loop_t *loop, const pc_cpclient_opts_t *o,
                                 pc_cpclient_snapshot_fn on_snapshot, void *arg, char *err,
                                 size_t errlen)
{
    if (strncmp(o->url, "http://", 7) != 0 && strncmp(o->url, "https://", 8) != 0) {
        snprintf(err, errlen, "control_plane.url: must start with http:// or https://");
        return NULL;
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        snprintf(err, errlen, "cannot initialise libcurl");
        return NULL;
    }
    pc_cpclient_t *cp = calloc(1, sizeof *cp);
    if (!cp) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    pthread_mutex_init(&cp->lock, NULL);
    cp->loop = loop;
    cp->on_snapshot = on_snapshot;
    cp->arg = arg;
    cp->url = strdup(o->url);
    cp->token = strdup(o->token ? o->token : "");
    cp->ca_file = o->ca_file ? strdup(o->ca_file) : NULL;
    cp->instance = strdup(o->instance ? o->instance : "");
    cp->address = strdup(o->address ? o->address : "");
    cp->state = PC_CPCLIENT_CONNECTING;
    pc__ndjson_init(&cp->splitter, MAX_LINE);
    pc__backoff_init(&cp->backoff, BACKOFF_BASE_MS, BACKOFF_CAP_MS);
    cp->watch_hdrs = pc__cp_headers(cp->token, false);
    cp->hb_hdrs = pc__cp_headers(cp->token, true);
    cp->multi = curl_multi_init();
    if (!cp->url || !cp->token || !cp->instance || !cp->address || !cp->watch_hdrs ||
        !cp->hb_hdrs || !cp->multi || (o->ca_file && !cp->ca_file)) {
        snprintf(err, errlen, "out of memory");
        free_cp(cp);
        return NULL;
    }
    register_metrics(cp);
    if (o->spool_dir) {
        cp->shipper = pc__shipper_start(cp->url, cp->token, cp->ca_file, o->spool_dir, err, errlen);
        if (!cp->shipper) {
            free_cp(cp);
            return NULL;
        }
    }
    if (uv_async_init(loop, &cp->async, on_async) != 0) {
        snprintf(err, errlen, "cannot create the snapshot hand-off");
        (void)pc__shipper_stop(cp->shipper, 0);
        free_cp(cp);
        return NULL;
    }
    cp->async.data = cp;
    int rc = pthread_create(&cp->thread, NULL, watch_main, cp);
    if (rc != 0) {
        snprintf(err, errlen, "cannot start the control-plane thread: %s", strerror(rc));
        (void)pc__shipper_stop(cp->shipper, 0);
        cp->shipper = NULL;
        uv_close((uv_handle_t *)&cp->async, on_async_closed);
        return NULL;
    }
    cp->thread_started = true;
    return cp;
}

uint64_t pc_cpclient_close(pc_cpclient_t *cp, uint64_t flush_timeout_ms)
{
    if (!cp) return 0;
    atomic_store(&cp->stopping, true);
    curl_multi_wakeup(cp->multi);
    if (cp->thread_started) pthread_join(cp->thread, NULL);
    pc_metric_set(cp->m_connected, 0);
    uint64_t shipped = pc__shipper_stop(cp->shipper, flush_timeout_ms);
    cp->shipper = NULL;
    uv_close((uv_handle_t *)&cp->async, on_async_closed);
    return shipped;
}
