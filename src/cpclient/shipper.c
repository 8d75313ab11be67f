/*
 * The log shipper: its own thread reads the spool from the durable shipped
 * cursor, POSTs batches to /v1/connector/logs and moves the cursor (fsynced by
 * pc_spool_cursor_store) only after a 2xx. A crash between the POST and the
 * cursor store re-sends that batch after the restart; the control plane
 * de-duplicates by record id, so the stored log stays exactly-once.
 *
 * The request path never waits for this thread: it only ever appends to the
 * spool, and the shipper reads the spool's files.
 */
#include "core/log.h"
#include "core/metrics.h"
#include "cpclient/cpclient_int.h"
#include "spool/spool.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define BATCH_RECORDS 500
#define BATCH_BYTES (1024u * 1024u)
#define IDLE_POLL_MS 200 /* how soon a new record is noticed */
#define POST_TIMEOUT_MS 30000
#define BACKOFF_BASE_MS 250
#define BACKOFF_CAP_MS 30000

struct pc__shipper {
    char *url, *token, *dir, *ca_file;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    bool stop;              /* under lock */
    bool kicked;            /* under lock: the control plane is back, retry now */
    uint64_t stop_deadline; /* under lock: monotonic ms, valid when stop */
    atomic_uint_fast64_t shipped;

    /* shipper thread only */
    CURL *easy;
    struct curl_slist *hdrs;
    char curl_err[CURL_ERROR_SIZE];
    pc_spool_reader_t *reader;
    pc_spool_pos_t acked; /* durable cursor */
    bool have_acked;
    pc_spool_pos_t batch_end; /* position after the last record in the batch */
    bool have_batch_end;
    char *held; /* a record read that did not fit the previous batch */
    size_t held_len;
    pc_spool_pos_t held_end;
    pc_spool_pos_t seen; /* furthest record taken so far: re-reads after a rewind are not new */
    bool have_seen;
    pc__batch_t batch;
    size_t batch_limit; /* shrinks when the server refuses a batch as too big or bad */
    pc__backoff_t backoff;
    bool failing; /* logged the start of an outage */
    uint64_t failing_since_ms;

    pc_metric_t *m_records, *m_batches, *m_failed, *m_rejected;
};

/* ---------- waiting ---------- */

static bool stop_requested(pc__shipper_t *sh, uint64_t *deadline)
{
    pthread_mutex_lock(&sh->lock);
    bool s = sh->stop;
    if (deadline) *deadline = sh->stop_deadline;
    pthread_mutex_unlock(&sh->lock);
    return s;
}

/* Sleep up to ms, or until stop is requested. */
static void nap(pc__shipper_t *sh, uint64_t ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += (time_t)(ms / 1000u);
    ts.tv_nsec += (long)(ms % 1000u) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&sh->lock);
    while (!sh->stop && !sh->kicked) {
        if (pthread_cond_timedwait(&sh->wake, &sh->lock, &ts) != 0) break;
    }
    bool kicked = sh->kicked;
    sh->kicked = false;
    pthread_mutex_unlock(&sh->lock);
    if (kicked) pc__backoff_reset(&sh->backoff);
}

/* ---------- reading the spool into a batch ---------- */

static bool reopen_reader(pc__shipper_t *sh)
{
    char err[256];
    pc_spool_reader_close(sh->reader);
    free(sh->held);
    sh->held = NULL;
    sh->reader = pc_spool_reader_open(sh->dir, sh->have_acked ? &sh->acked : NULL, err, sizeof err);
    if (!sh->reader) pc_log_warn("log shipper cannot read the spool", PC_LSTR("error", err));
    return sh->reader != NULL;
}

/* Forget the batch and what was read ahead: the next fill re-reads from the cursor. */
static void rewind_to_cursor(pc__shipper_t *sh)
{
    pc__batch_clear(&sh->batch);
    sh->have_batch_end = false;
    free(sh->held);
    sh->held = NULL;
    pc_spool_reader_close(sh->reader);
    sh->reader = NULL;
}

/* A record that must never be shipped: step over it, durably. */
static void skip_record(pc__shipper_t *sh, const pc_spool_pos_t *after, const char *why, bool count)
{
    if (count) {
        pc_metric_add(sh->m_rejected, 1);
        pc_log_error("audit record not shipped", PC_LSTR("reason", why),
                     PC_LUINT("segment", after->segment), PC_LUINT("offset", after->offset));
    }
    if (sh->batch.n == 0) {
        char err[256];
        sh->acked = *after;
        sh->have_acked = true;
        if (!pc_spool_cursor_store(sh->dir, after, err, sizeof err))
            pc_log_warn("cannot store the shipped cursor", PC_LSTR("error", err));
    } else {
        sh->batch_end = *after; /* acknowledged together with the batch */
    }
}

/* Add one record read at `after`; false when the batch is full (record held). */
static bool take(pc__shipper_t *sh, const char *rec, size_t len, const pc_spool_pos_t *after)
{
    /* Re-reading after a refused batch meets the same records again: count them once. */
    bool fresh = !sh->have_seen || after->segment > sh->seen.segment ||
                 (after->segment == sh->seen.segment && after->offset > sh->seen.offset);
    switch (pc__batch_add(&sh->batch, rec, len)) {
    case PC__BATCH_ADDED:
        sh->batch_end = *after;
        sh->have_batch_end = true;
        break;
    case PC__BATCH_INVALID:
        skip_record(sh, after, "not one JSON object of at most 1 MiB", fresh);
        break;
    case PC__BATCH_FULL:
        goto full;
    }
    if (fresh) {
        sh->seen = *after;
        sh->have_seen = true;
    }
    return true;
full:
    if (sh->batch.n == 0) { /* out of memory with nothing to send: try again later */
        return false;
    }
    sh->held = malloc(len);
    if (sh->held) {
        memcpy(sh->held, rec, len);
        sh->held_len = len;
        sh->held_end = *after;
    } else {
        /* Lose nothing: send this batch, then re-read from the cursor. */
        pc_spool_reader_close(sh->reader);
        sh->reader = NULL;
    }
    return false;
}

/* Fill the batch from what the spool holds now. */
static void fill(pc__shipper_t *sh)
{
    sh->batch.max_records = sh->batch_limit;
    if (sh->held) {
        char *h = sh->held;
        sh->held = NULL;
        bool more = take(sh, h, sh->held_len, &sh->held_end);
        free(h);
        if (!more) return;
    }
    if (!sh->reader && !reopen_reader(sh)) return;
    for (;;) {
        const char *rec;
        size_t len;
        pc_spool_pos_t after;
        pc_spool_read_t r = pc_spool_reader_next(sh->reader, &rec, &len, &after);
        if (r == PC_SPOOL_READ_END) return;
        if (r == PC_SPOOL_READ_ERROR) {
            pc_log_warn("log shipper read error; reopening the spool at the cursor");
            rewind_to_cursor(sh);
            return;
        }
        if (!take(sh, rec, len, &after)) return;
    }
}

/* ---------- sending ---------- */

static int on_progress(void *arg, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un)
{
    (void)dt, (void)dn, (void)ut, (void)un;
    pc__shipper_t *sh = arg;
    uint64_t deadline;
    /* At shutdown, the flush window bounds a request already under way. */
    return stop_requested(sh, &deadline) && pc__cp_now_ms() >= deadline;
}

typedef enum { SEND_OK, SEND_RETRY, SEND_REFUSED } send_res_t;

static send_res_t post_batch(pc__shipper_t *sh, long *status, char *why, size_t whylen)
{
    char url[2048];
    size_t len = 0;
    const char *body = pc__batch_body(&sh->batch, &len);
    *status = 0;
    if (!pc__cp_url(url, sizeof url, sh->url, "/v1/connector/logs")) {
        snprintf(why, whylen, "control_plane.url too long");
        return SEND_RETRY;
    }
    uint64_t deadline, timeout = POST_TIMEOUT_MS;
    if (stop_requested(sh, &deadline)) {
        uint64_t now = pc__cp_now_ms();
        timeout = deadline > now ? deadline - now : 1;
    }
    CURL *e = sh->easy;
    curl_easy_reset(e);
    pc__cp_easy_defaults(e, sh->curl_err, sh->ca_file);
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, sh->hdrs);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)timeout);
    if ((long)timeout < 10000L) curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)timeout);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, pc__cp_discard);
    curl_easy_setopt(e, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(e, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(e, CURLOPT_XFERINFODATA, sh);
    CURLcode rc = curl_easy_perform(e);
    if (rc != CURLE_OK) {
        snprintf(why, whylen, "%s", sh->curl_err[0] ? sh->curl_err : curl_easy_strerror(rc));
        return SEND_RETRY;
    }
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, status);
    if (*status >= 200 && *status < 300) return SEND_OK;
    snprintf(why, whylen, "HTTP %ld", *status);
    /* The batch itself was refused (malformed or too large), not the connector. */
    return *status == 400 || *status == 413 ? SEND_REFUSED : SEND_RETRY;
}

static void acknowledged(pc__shipper_t *sh)
{
    char err[256];
    size_t n = sh->batch.n;
    if (!pc_spool_cursor_store(sh->dir, &sh->batch_end, err, sizeof err))
        /* Shipped but not recorded: they are sent again later (the server de-duplicates). */
        pc_log_warn("cannot store the shipped cursor", PC_LSTR("error", err));
    sh->acked = sh->batch_end;
    sh->have_acked = true;
    atomic_fetch_add(&sh->shipped, n);
    pc_metric_add(sh->m_records, (int64_t)n);
    pc_metric_add(sh->m_batches, 1);
    pc__batch_clear(&sh->batch);
    sh->have_batch_end = false;
    pc__backoff_reset(&sh->backoff);
    sh->batch_limit = BATCH_RECORDS;
    if (sh->failing) {
        sh->failing = false;
        pc_log_info("log shipping resumed",
                    PC_LUINT("down_ms", pc__cp_now_ms() - sh->failing_since_ms));
    }
}

/* A batch refused as a whole: halve it (re-read from the cursor) down to the one bad record. */
static void refused(pc__shipper_t *sh, const char *why)
{
    if (sh->batch.n <= 1) {
        pc_spool_pos_t end = sh->batch_end;
        pc__batch_clear(&sh->batch);
        sh->have_batch_end = false;
        skip_record(sh, &end, why, true); /* the batch is empty: this stores the cursor */
        return;
    }
    sh->batch_limit = sh->batch.n / 2;
    pc_log_warn("control plane refused a log batch; retrying in smaller batches",
                PC_LSTR("error", why), PC_LUINT("records", sh->batch.n),
                PC_LUINT("next_batch", sh->batch_limit));
    rewind_to_cursor(sh);
}

static void failed(pc__shipper_t *sh, const char *why)
{
    pc_metric_add(sh->m_failed, 1);
    if (!sh->failing) {
        sh->failing = true;
        sh->failing_since_ms = pc__cp_now_ms();
        pc_log_warn("log shipping failed; records stay in the spool and are retried",
                    PC_LSTR("error", why), PC_LUINT("batch", sh->batch.n));
    }
}

static void *ship_main(void *arg)
{
    pc__shipper_t *sh = arg;
    for (;;) {
        uint64_t deadline;
        bool stopping = stop_requested(sh, &deadline);
        if (stopping && pc__cp_now_ms() >= deadline) break;
        if (sh->batch.n == 0) fill(sh); /* a failed batch is retried as it was */
        if (sh->batch.n == 0) {
            if (stopping) break; /* everything readable is shipped */
            nap(sh, IDLE_POLL_MS);
            continue;
        }
        long status;
        char why[256];
        switch (post_batch(sh, &status, why, sizeof why)) {
        case SEND_OK:
            acknowledged(sh);
            continue;
        case SEND_REFUSED:
            refused(sh, why);
            continue;
        case SEND_RETRY:
            failed(sh, why);
            if (stopping) goto out; /* one attempt in the flush window */
            nap(sh, pc__backoff_next(&sh->backoff, pc__cp_random()));
            continue;
        }
    }
out:
    return NULL;
}

/* ---------- start / stop ---------- */

static void free_shipper(pc__shipper_t *sh)
{
    pc_spool_reader_close(sh->reader);
    pc__batch_free(&sh->batch);
    free(sh->held);
    curl_slist_free_all(sh->hdrs);
    if (sh->easy) curl_easy_cleanup(sh->easy);
    free(sh->url);
    free(sh->ca_file);
    if (sh->token) memset(sh->token, 0, strlen(sh->token));
    free(sh->token);
    free(sh->dir);
    pthread_cond_destroy(&sh->wake);
    pthread_mutex_destroy(&sh->lock);
    free(sh);
}

pc__shipper_t *pc__shipper_start(const char *url, const char *token, const char *ca_file,
                                 const char *dir, char *err,
                                 size_t errlen)
{
    pc__shipper_t *sh = calloc(1, sizeof *sh);
    if (!sh) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&sh->wake, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_init(&sh->lock, NULL);
    sh->url = strdup(url);
    sh->token = strdup(token);
    sh->ca_file = ca_file ? strdup(ca_file) : NULL;
    sh->dir = strdup(dir);
    sh->hdrs = pc__cp_headers(token, true);
    sh->easy = curl_easy_init();
    pc__batch_init(&sh->batch, BATCH_RECORDS, BATCH_BYTES);
    sh->batch_limit = BATCH_RECORDS;
    pc__backoff_init(&sh->backoff, BACKOFF_BASE_MS, BACKOFF_CAP_MS);
    if (!sh->url || !sh->token || !sh->dir || !sh->hdrs || !sh->easy || (ca_file && !sh->ca_file)) {
        snprintf(err, errlen, "out of memory");
        free_shipper(sh);
        return NULL;
    }
    sh->have_acked = pc_spool_cursor_load(dir, &sh->acked);
    sh->m_records = pc_metric_counter("portcullis_log_shipped_records_total",
                                      "Audit records acknowledged by the control plane.", NULL);
    sh->m_batches = pc_metric_counter("portcullis_log_shipped_batches_total",
                                      "Log batches acknowledged by the control plane.", NULL);
    sh->m_failed = pc_metric_counter("portcullis_log_ship_failures_total",
                                     "Log batch posts that failed and will be retried.", NULL);
    sh->m_rejected =
        pc_metric_counter("portcullis_log_records_rejected_total",
                          "Spool records never shipped (not valid, or refused).", NULL);
    int rc = pthread_create(&sh->thread, NULL, ship_main, sh);
    if (rc != 0) {
        snprintf(err, errlen, "cannot start the log shipper thread: %s", strerror(rc));
        free_shipper(sh);
        return NULL;
    }
    if (sh->have_acked)
        pc_log_info("log shipper started", PC_LUINT("cursor_segment", sh->acked.segment),
                    PC_LUINT("cursor_offset", sh->acked.offset));
    else
        pc_log_info("log shipper started", PC_LSTR("cursor", "none (from the oldest record)"));
    return sh;
}

void pc__shipper_kick(pc__shipper_t *sh)
{
    if (!sh) return;
    pthread_mutex_lock(&sh->lock);
    sh->kicked = true;
    pthread_cond_broadcast(&sh->wake);
    pthread_mutex_unlock(&sh->lock);
}

uint64_t pc__shipper_shipped(pc__shipper_t *sh)
{
    return atomic_load(&sh->shipped);
}

uint64_t pc__shipper_stop(pc__shipper_t *sh, uint64_t timeout_ms)
{
    if (!sh) return 0;
    uint64_t before = atomic_load(&sh->shipped);
    pthread_mutex_lock(&sh->lock);
    sh->stop = true;
    sh->stop_deadline = pc__cp_now_ms() + timeout_ms;
    pthread_cond_broadcast(&sh->wake);
    pthread_mutex_unlock(&sh->lock);
    pthread_join(sh->thread, NULL);
    uint64_t flushed = atomic_load(&sh->shipped) - before;
    free_shipper(sh);
    return flushed;
}
