/*
 * The heartbeat timer (main loop) and the OTLP exporter thread.
 *
 * Hand-over between them is one mutex-guarded slot: the timer replaces the
 * pending snapshot (the newest cumulative values make older ones redundant),
 * the thread takes it. The thread owns the curl handle; the main loop never
 * waits on the network except for the bounded final flush at shutdown.
 */
#include "telemetry/telemetry.h"

#include "core/log.h"

#include <curl/curl.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define FIRST_RETRY_MAX_MS 1000u
#define BACKOFF_CAP_MIN_MS 1000u
#define BACKOFF_CAP_MAX_MS 300000u
#define REQUEST_TIMEOUT_MAX_MS 10000u
#define CONNECT_TIMEOUT_MAX_MS 3000u
#define FINAL_TIMEOUT_MS 5000u
#define FINAL_CONNECT_TIMEOUT_MS 2000u
#define RESPONSE_KEEP_MAX 4096u

typedef struct snapshot {
    pc_metric_samples_t samples;
    uint64_t wall_ns;
} snapshot_t;

typedef enum { SEND_OK, SEND_RETRY, SEND_DROP } send_result_t;

struct pc_telemetry {
    uv_timer_t timer;
    pc_telemetry_opts_t opts; /* strings owned */
    uint64_t start_wall_ns;
    pc_metric_t *heartbeats, *exports_ok, *exports_failed;

    /* exporter */
    bool exporting;
    char *url, *endpoint_shown; /* endpoint_shown: scheme://host[:port], for logs */
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    snapshot_t *pending;    /* guarded by mu */
    snapshot_t *final_snap; /* guarded by mu; set by stop */
    bool stopping;          /* guarded by mu */
    _Atomic bool abort_transfer;
    bool final_flush_ok;   /* written by the thread before it exits */
    uint32_t jitter_state; /* thread only */
};

/* ---------- process memory ---------- */

/* Process-wide, read once at start; the probes outlive any pc_telemetry_t. */
static _Atomic uint64_t memory_limit_bytes; /* 0 = none */

bool pc__telemetry_parse_memory_limit(const char *text, uint64_t *limit)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(text, &end, 10);
    if (end == text || errno != 0 || (*end != '\0' && *end != '\n')) return false; /* "max" */
    /* cgroup v1 spells "no limit" as a page-rounded LLONG_MAX. */
    if (v == 0 || v >= (1ull << 62)) return false;
    *limit = (uint64_t)v;
    return true;
}

static bool limit_from_file(const char *path, bool *exists, uint64_t *limit)
{
    FILE *f = fopen(path, "r");
    *exists = f != NULL;
    if (!f) return false;
    char buf[64] = "";
    bool ok = fgets(buf, sizeof buf, f) && pc__telemetry_parse_memory_limit(buf, limit);
    fclose(f);
    return ok;
}

/*
 * The memory limit of this process's cgroup: v2 (memory.max) or v1
 * (memory.limit_in_bytes), at the path /proc/self/cgroup names or, inside a
 * container with its own cgroup namespace view, at the mount's root. The
 * first file that exists decides.
 */
static uint64_t cgroup_memory_limit(void)
{
    char v2[512] = "", v1[512] = "", line[512];
    FILE *f = fopen("/proc/self/cgroup", "r");
    while (f && fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = '\0';
        char *c1 = strchr(line, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
        if (!c2) continue;
        *c2 = '\0';
        const char *controllers = c1 + 1, *path = c2 + 1;
        if (strcmp(line, "0") == 0 && controllers[0] == '\0')
            snprintf(v2, sizeof v2, "/sys/fs/cgroup%s/memory.max", path);
        else if (strstr(controllers, "memory"))
            snprintf(v1, sizeof v1, "/sys/fs/cgroup/memory%s/memory.limit_in_bytes", path);
    }
    if (f) fclose(f);
    const char *candidates[] = {v2, "/sys/fs/cgroup/memory.max", v1,
                                "/sys/fs/cgroup/memory/memory.limit_in_bytes"};
    for (size_t i = 0; i < PC_ARRAY_LEN(candidates); i++) {
        bool exists;
        uint64_t limit;
        if (!candidates[i][0]) continue;
        if (limit_from_file(candidates[i], &exists, &limit)) return limit;
        if (exists) return 0;
    }
    return 0;
}

static uint64_t resident_bytes(void)
{
    unsigned long size = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f) return 0;
    int n = fscanf(f, "%lu %lu", &size, &resident);
    fclose(f);
    return n == 2 ? (uint64_t)resident * (uint64_t)sysconf(_SC_PAGESIZE) : 0;
}

static int64_t probe_memory_limit(void *arg)
{
    (void)arg;
    return (int64_t)atomic_load(&memory_limit_bytes);
}

static double probe_memory_percent(void *arg)
{
    (void)arg;
    uint64_t limit = atomic_load(&memory_limit_bytes);
    return limit ? 100.0 * (double)resident_bytes() / (double)limit : 0.0;
}

/* ---------- snapshots ---------- */

static snapshot_t *snapshot_take(void)
{
    snapshot_t *s = pc_xcalloc(1, sizeof *s);
    pc_metrics_collect(&s->samples);
    s->wall_ns = pc_now_wall_ns();
    return s;
}

static void snapshot_free(snapshot_t *s)
{
    if (!s) return;
    pc_metric_samples_free(&s->samples);
    free(s);
}

/* ---------- HTTP ---------- */

static size_t discard_body(char *p, size_t size, size_t n, void *arg)
{
    (void)p;
    (void)arg;
    return size * n;
}

static int on_progress(void *arg, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un)
{
    (void)dt, (void)dn, (void)ut, (void)un;
    pc_telemetry_t *t = arg;
    return atomic_load(&t->abort_transfer) ? 1 : 0;
}

static uint64_t clamp_u64(uint64_t v, uint64_t lo, uint64_t hi)
{
    return v < lo ? lo : v > hi ? hi : v;
}

/*
 * One POST. On failure writes a short reason (curl's error text or the HTTP
 * status) and the server's Retry-After in ms (0 = none).
 */
static send_result_t post_once(pc_telemetry_t *t, CURL *curl, const snapshot_t *s, bool final,
                               char *why, size_t whylen, uint64_t *retry_after_ms)
{
    *retry_after_ms = 0;
    char *body = pc__telemetry_encode(&s->samples, &t->opts, t->start_wall_ns, s->wall_ns);
    if (!body) {
        snprintf(why, whylen, "cannot encode the metrics");
        return SEND_DROP;
    }
    uint64_t timeout = final ? FINAL_TIMEOUT_MS
                             : clamp_u64(t->opts.interval_ms, 1000, REQUEST_TIMEOUT_MAX_MS);
    uint64_t connect = final ? FINAL_CONNECT_TIMEOUT_MS
                             : clamp_u64(timeout, 1, CONNECT_TIMEOUT_MAX_MS);
    struct curl_slist *headers = curl_slist_append(NULL, "Content-Type: application/json");
    char errbuf[CURL_ERROR_SIZE] = "";
    curl_easy_setopt(curl, CURLOPT_URL, t->url);
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(body));
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, (long)timeout);
    curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, (long)connect);
    curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, errbuf);
    CURLcode rc = curl_easy_perform(curl);
    curl_slist_free_all(headers);
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, NULL);
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, NULL);
    curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, NULL);
    free(body);
    if (rc != CURLE_OK) {
        snprintf(why, whylen, "%s", errbuf[0] ? errbuf : curl_easy_strerror(rc));
        return SEND_RETRY;
    }
    long status = 0;
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
    if (status >= 200 && status < 300) return SEND_OK;
    snprintf(why, whylen, "HTTP %ld", status);
    /* The OTLP/HTTP specification's retryable statuses. */
    if (status == 429 || status == 502 || status == 503 || status == 504) {
        curl_off_t ra = 0;
        if (curl_easy_getinfo(curl, CURLINFO_RETRY_AFTER, &ra) == CURLE_OK && ra > 0)
            *retry_after_ms = (uint64_t)ra * 1000u;
        return SEND_RETRY;
    }
    return SEND_DROP;
}

static CURL *curl_for(pc_telemetry_t *t)
{
    CURL *curl = curl_easy_init();
    if (!curl) return NULL;
    char ua[64];
    snprintf(ua, sizeof ua, "portcullis/%s", t->opts.version ? t->opts.version : "");
    curl_easy_setopt(curl, CURLOPT_USERAGENT, ua);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, discard_body);
    curl_easy_setopt(curl, CURLOPT_MAXFILESIZE, (long)RESPONSE_KEEP_MAX * 256);
    curl_easy_setopt(curl, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(curl, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(curl, CURLOPT_XFERINFODATA, t);
    return curl;
}

/* ---------- exporter thread ---------- */

static uint64_t backoff_cap_ms(const pc_telemetry_t *t)
{
    uint64_t four = t->opts.interval_ms > BACKOFF_CAP_MAX_MS ? BACKOFF_CAP_MAX_MS
                                                             : 4 * t->opts.interval_ms;
    return clamp_u64(four, BACKOFF_CAP_MIN_MS, BACKOFF_CAP_MAX_MS);
}

/* delay * [0.8, 1.2): retries of many connectors restarted together spread out. */
static uint64_t jittered(pc_telemetry_t *t, uint64_t delay_ms)
{
    uint32_t x = t->jitter_state;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    t->jitter_state = x;
    return delay_ms * (800u + x % 400u) / 1000u;
}

static void deadline_in(struct timespec *ts, uint64_t ms)
{
    clock_gettime(CLOCK_MONOTONIC, ts);
    uint64_t ns = (uint64_t)ts->tv_nsec + (ms % 1000u) * 1000000u;
    ts->tv_sec += (time_t)(ms / 1000u + ns / 1000000000u);
    ts->tv_nsec = (long)(ns % 1000000000u);
}

static bool past(const struct timespec *ts)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return now.tv_sec > ts->tv_sec || (now.tv_sec == ts->tv_sec && now.tv_nsec >= ts->tv_nsec);
}

typedef struct export_state {
    snapshot_t *failed; /* kept for a retry when nothing newer arrives */
    struct timespec retry_at;
    uint64_t backoff_ms;
    uint64_t failed_attempts; /* since the last success */
} export_state_t;

static void note_result(pc_telemetry_t *t, export_state_t *st, send_result_t r, const char *why,
                        uint64_t retry_after_ms, snapshot_t *snap)
{
    if (r == SEND_OK) {
        pc_metric_add(t->exports_ok, 1);
        if (st->failed_attempts)
            pc_log_info("telemetry export resumed", PC_LSTR("endpoint", t->endpoint_shown),
                        PC_LUINT("failed_attempts", st->failed_attempts));
        st->failed_attempts = 0;
        st->backoff_ms = 0;
        snapshot_free(snap);
        return;
    }
    pc_metric_add(t->exports_failed, 1);
    uint64_t first = t->opts.interval_ms < FIRST_RETRY_MAX_MS ? t->opts.interval_ms
                                                              : FIRST_RETRY_MAX_MS;
    st->backoff_ms = st->backoff_ms ? st->backoff_ms * 2 : first;
    if (st->backoff_ms > backoff_cap_ms(t)) st->backoff_ms = backoff_cap_ms(t);
    uint64_t delay = jittered(t, st->backoff_ms);
    if (retry_after_ms > delay) delay = retry_after_ms < BACKOFF_CAP_MAX_MS ? retry_after_ms
                                                                            : BACKOFF_CAP_MAX_MS;
    const char *fate = r == SEND_RETRY ? "retrying" : "dropped (not retryable)";
    if (st->failed_attempts++ == 0)
        pc_log_warn("telemetry export failed", PC_LSTR("endpoint", t->endpoint_shown),
                    PC_LSTR("error", why), PC_LSTR("snapshot", fate),
                    PC_LUINT("retry_in_ms", r == SEND_RETRY ? delay : 0));
    else
        pc_log_debug("telemetry export failed again", PC_LSTR("error", why),
                     PC_LUINT("failed_attempts", st->failed_attempts));
    if (r == SEND_RETRY) {
        st->failed = snap;
        deadline_in(&st->retry_at, delay);
    } else {
        snapshot_free(snap);
    }
}

static void final_flush(pc_telemetry_t *t, CURL *curl)
{
    pthread_mutex_lock(&t->mu);
    snapshot_t *snap = t->final_snap;
    t->final_snap = NULL;
    pthread_mutex_unlock(&t->mu);
    if (!snap) return;
    atomic_store(&t->abort_transfer, false);
    char why[CURL_ERROR_SIZE + 32] = "";
    uint64_t retry_after;
    send_result_t r = curl ? post_once(t, curl, snap, true, why, sizeof why, &retry_after)
                           : SEND_DROP;
    t->final_flush_ok = r == SEND_OK;
    pc_metric_add(r == SEND_OK ? t->exports_ok : t->exports_failed, 1);
    if (r != SEND_OK)
        pc_log_warn("telemetry final flush failed", PC_LSTR("endpoint", t->endpoint_shown),
                    PC_LSTR("error", curl ? why : "no HTTP client"));
    snapshot_free(snap);
}

static void *export_main(void *arg)
{
    pc_telemetry_t *t = arg;
    CURL *curl = curl_for(t);
    if (!curl) pc_log_error("telemetry: cannot create an HTTP client; nothing will be exported");
    export_state_t st = {0};
    pthread_mutex_lock(&t->mu);
    for (;;) {
        if (t->stopping) break;
        bool retry_due = st.failed && past(&st.retry_at);
        if (!retry_due) {
            if (st.failed)
                pthread_cond_timedwait(&t->cv, &t->mu, &st.retry_at);
            else if (!t->pending)
                pthread_cond_wait(&t->cv, &t->mu);
            if (t->stopping || (st.failed ? !past(&st.retry_at) : !t->pending)) continue;
        }
        /* Newest values win: a pending snapshot supersedes the failed one. */
        snapshot_t *snap = t->pending ? t->pending : st.failed;
        if (snap == t->pending) {
            snapshot_free(st.failed);
            t->pending = NULL;
        }
        st.failed = NULL;
        pthread_mutex_unlock(&t->mu);

        char why[CURL_ERROR_SIZE + 32] = "";
        uint64_t retry_after = 0;
        send_result_t r = curl ? post_once(t, curl, snap, false, why, sizeof why, &retry_after)
                               : SEND_DROP;
        if (r != SEND_OK && atomic_load(&t->abort_transfer)) {
            snapshot_free(snap); /* stopping: the final flush carries newer values */
            pthread_mutex_lock(&t->mu);
            continue;
        }
        note_result(t, &st, r, curl ? why : "no HTTP client", retry_after, snap);
        pthread_mutex_lock(&t->mu);
    }
    pthread_mutex_unlock(&t->mu);
    snapshot_free(st.failed);
    final_flush(t, curl);
    if (curl) curl_easy_cleanup(curl);
    return NULL;
}

/* ---------- main loop side ---------- */

static void on_tick(uv_timer_t *timer)
{
    pc_telemetry_t *t = timer->data;
    pc_metric_add(t->heartbeats, 1);
    if (!t->exporting) return;
    snapshot_t *s = snapshot_take();
    pthread_mutex_lock(&t->mu);
    snapshot_t *old = t->pending;
    t->pending = s;
    pthread_cond_signal(&t->cv);
    pthread_mutex_unlock(&t->mu);
    snapshot_free(old);
}

static void free_telemetry(pc_telemetry_t *t)
{
    free((char *)t->opts.otlp_endpoint);
    free((char *)t->opts.instance);
    free((char *)t->opts.version);
    free(t->url);
    free(t->endpoint_shown);
    free(t);
}

static void on_timer_closed(uv_handle_t *h)
{
    free_telemetry(h->data);
}

/* scheme://host[:port] of the endpoint: what logs show (no user info, path or query). */
static char *shown_endpoint(const char *url)
{
    CURLU *u = curl_url();
    char *scheme = NULL, *host = NULL, *port = NULL, *out = NULL;
    if (u && curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK) {
        (void)curl_url_get(u, CURLUPART_PORT, &port, 0);
        size_t n = strlen(scheme) + strlen(host) + (port ? strlen(port) : 0) + 8;
        out = pc_xmalloc(n);
        snprintf(out, n, "%s://%s%s%s", scheme, host, port ? ":" : "", port ? port : "");
    }
    curl_free(scheme);
    curl_free(host);
    curl_free(port);
    curl_url_cleanup(u);
    return out ? out : pc_xstrdup("(unparsable URL)");
}

static char *metrics_url(const char *endpoint)
{
    size_t n = strlen(endpoint);
    while (n > 0 && endpoint[n - 1] == '/') n--;
    size_t cap = n + sizeof "/v1/metrics";
    char *url = pc_xmalloc(cap);
    snprintf(url, cap, "%.*s/v1/metrics", (int)n, endpoint);
    return url;
}

static void init_curl(void)
{
    (void)curl_global_init(CURL_GLOBAL_DEFAULT);
}

static bool start_exporter(pc_telemetry_t *t, char *err, size_t errlen)
{
    static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
    pthread_once(&curl_once, init_curl);
    t->url = metrics_url(t->opts.otlp_endpoint);
    t->endpoint_shown = shown_endpoint(t->opts.otlp_endpoint);
    t->jitter_state = (uint32_t)(pc_now_wall_ns() ^ (uint64_t)getpid()) | 1u;
    t->exports_ok = pc_metric_counter("portcullis_telemetry_exports_total",
                                      "OTLP metric exports by result.", "result=\"ok\"");
    t->exports_failed = pc_metric_counter("portcullis_telemetry_exports_total",
                                          "OTLP metric exports by result.", "result=\"failed\"");
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&t->cv, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_init(&t->mu, NULL);
    atomic_init(&t->abort_transfer, false);
    int rc = pthread_create(&t->thread, NULL, export_main, t);
    if (rc != 0) {
        snprintf(err, errlen, "cannot start the telemetry exporter thread: %s", strerror(rc));
        pthread_cond_destroy(&t->cv);
        pthread_mutex_destroy(&t->mu);
        return false;
    }
    t->exporting = true;
    pc_log_info("telemetry exporter started", PC_LSTR("endpoint", t->endpoint_shown),
                PC_LUINT("interval_ms", t->opts.interval_ms));
    return true;
}

pc_telemetry_t *pc_telemetry_start(uv_loop_t *loop, const pc_telemetry_opts_t *o, char *err,
                                   size_t errlen)
{
    pc_telemetry_t *t = pc_xcalloc(1, sizeof *t);
    t->opts.interval_ms = o->interval_ms ? o->interval_ms : 10000;
    t->opts.otlp_endpoint = o->otlp_endpoint ? pc_xstrdup(o->otlp_endpoint) : NULL;
    t->opts.instance = pc_xstrdup(o->instance ? o->instance : "");
    t->opts.version = pc_xstrdup(o->version ? o->version : "");
    t->start_wall_ns = pc_now_wall_ns();

    pc_metrics_register_standard();
    t->heartbeats = pc_metric_counter("portcullis_heartbeats_total",
                                      "Heartbeats: one per telemetry interval while the main "
                                      "loop runs.",
                                      NULL);
    atomic_store(&memory_limit_bytes, cgroup_memory_limit());
    if (atomic_load(&memory_limit_bytes)) {
        pc_metric_probe("portcullis_process_memory_limit_bytes",
                        "Memory limit of the process's cgroup.", NULL, probe_memory_limit, NULL);
        pc_metric_probe_f64("portcullis_process_memory_limit_percent",
                            "Resident set size as a percentage of the cgroup memory limit.", NULL,
                            probe_memory_percent, NULL);
    }
    if (t->opts.otlp_endpoint && !start_exporter(t, err, errlen)) {
        free_telemetry(t);
        return NULL;
    }
    uv_timer_init(loop, &t->timer);
    t->timer.data = t;
    uv_timer_start(&t->timer, on_tick, t->opts.interval_ms, t->opts.interval_ms);
    return t;
}

void pc_telemetry_stop(pc_telemetry_t *t, pc_telemetry_report_t *out)
{
    if (out) memset(out, 0, sizeof *out);
    if (!t) return;
    uv_timer_stop(&t->timer);
    if (t->exporting) {
        snapshot_t *last = snapshot_take();
        pthread_mutex_lock(&t->mu);
        t->final_snap = last;
        t->stopping = true;
        atomic_store(&t->abort_transfer, true);
        pthread_cond_signal(&t->cv);
        pthread_mutex_unlock(&t->mu);
        pthread_join(t->thread, NULL);
        snapshot_free(t->pending);
        t->pending = NULL;
        pthread_cond_destroy(&t->cv);
        pthread_mutex_destroy(&t->mu);
        if (out) {
            out->exporting = true;
            out->final_flush_ok = t->final_flush_ok;
            out->exports_ok = (uint64_t)pc_metric_get(t->exports_ok);
            out->exports_failed = (uint64_t)pc_metric_get(t->exports_failed);
        }
    }
    uv_close((uv_handle_t *)&t->timer, on_timer_closed);
}
