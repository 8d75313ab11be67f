/*
 * Spool throughput on this machine: cost of pc_audit_format and
 * pc_spool_append on the caller's thread, sustained durable records/s with
 * several appending threads, records per fsync (group commit), and the time
 * a restart takes to scan what was written.
 *
 *   spool_bench [DIR] [THREADS] [RECORDS]
 */
#include "audit/audit.h"
#include "core/log.h"
#include "spool/spool.h"

#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static pc_spool_t *spool;
static unsigned per_thread;
static char record[4096];
static size_t record_len;

static double secs(uint64_t ns)
{
    return (double)ns / 1e9;
}

static void *appender(void *arg)
{
    (void)arg;
    for (unsigned i = 0; i < per_thread; i++) {
        while (!pc_spool_append(spool, record, record_len))
            sched_yield();
    }
    return NULL;
}

static pc_audit_rec_t typical(const char *query)
{
    return (pc_audit_rec_t){.kind = PC_AUDIT_REQUEST,
                            .user = "alice@example.com",
                            .resource = "orders-db",
                            .technology = "postgres",
                            .session_id = 123456,
                            .client_ip = "10.1.2.3",
                            .db_name = "orders",
                            .application = "pgbench",
                            .query = query,
                            .stage = "execute",
                            .decision = "allow",
                            .policies = "[\"default-allow\",\"mask-pii\"]",
                            .rows = 1,
                            .bytes = 512,
                            .status = -1,
                            .duration_us = 250};
}

int main(int argc, char **argv)
{
    const char *dir = argc > 1 ? argv[1] : "/tmp/pc-spool-bench";
    unsigned threads = argc > 2 ? (unsigned)atoi(argv[2]) : 4;
    unsigned total = argc > 3 ? (unsigned)atoi(argv[3]) : 400000;
    pc_log_level = PC_LOG_WARN;
    pc_audit_set_identity("bench-host", "0.1.0");

    char query[700];
    memset(query, 'x', sizeof query - 1);
    memcpy(query, "SELECT abalance FROM pgbench_accounts WHERE aid = $1 /* ", 56);
    query[sizeof query - 1] = '\0';
    pc_audit_rec_t rec = typical(query);
    record_len = pc_audit_format(record, sizeof record, 1, pc_now_wall_ns(), &rec);
    if (record_len == 0) return 1;

    char buf[PC_AUDIT_MAX_RECORD];
    enum { FORMATS = 200000 };
    uint64_t t0 = pc_now_mono_ns();
    size_t sink = 0;
    for (unsigned i = 0; i < FORMATS; i++)
        sink += pc_audit_format(buf, sizeof buf, i, pc_now_wall_ns(), &rec);
    uint64_t t1 = pc_now_mono_ns();
    printf("pc_audit_format: %zu-byte record, %.0f ns each\n", record_len,
           (double)(t1 - t0) / FORMATS + (double)(sink == 0));

    char err[256];
    spool = pc_spool_open(dir, 10ull << 30, err, sizeof err);
    if (!spool) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    /* Append cost alone: bursts that fit the queue; the first one also pays
     * for faulting the queue's pages in, so the best of several counts. */
    enum { BURST = 8000 };
    double best = 1e18;
    for (int round = 0; round < 5; round++) {
        t0 = pc_now_mono_ns();
        for (unsigned i = 0; i < BURST; i++)
            (void)pc_spool_append(spool, record, record_len);
        t1 = pc_now_mono_ns();
        pc_spool_flush(spool);
        if ((double)(t1 - t0) / BURST < best) best = (double)(t1 - t0) / BURST;
    }
    printf("pc_spool_append: %.0f ns each (1 thread, best of 5 bursts of %u)\n", best, BURST);

    pc_spool_stats_t before, after;
    pc_spool_get_stats(spool, &before);
    per_thread = total / threads;
    pthread_t th[64];
    if (threads > 64) threads = 64;
    t0 = pc_now_mono_ns();
    for (unsigned i = 0; i < threads; i++)
        pthread_create(&th[i], NULL, appender, NULL);
    for (unsigned i = 0; i < threads; i++)
        pthread_join(th[i], NULL);
    pc_spool_flush(spool);
    t1 = pc_now_mono_ns();
    pc_spool_get_stats(spool, &after);
    uint64_t n = after.records_written - before.records_written;
    uint64_t batches = after.batches - before.batches;
    printf("sustained: %u threads, %llu records durable in %.2f s = %.0f records/s, %.1f MB/s, "
           "%llu fsync batches = %.1f records/fsync\n",
           threads, (unsigned long long)n, secs(t1 - t0), (double)n / secs(t1 - t0),
           (double)n * (double)(record_len + 16) / secs(t1 - t0) / 1e6, (unsigned long long)batches,
           batches ? (double)n / (double)batches : 0.0);

    /* A steady request rate, as a busy connector produces: group size follows
     * rate x fsync latency. */
    enum { RATE = 20000, PACED_SECONDS = 2 };
    pc_spool_get_stats(spool, &before);
    t0 = pc_now_mono_ns();
    for (unsigned i = 0; i < RATE * PACED_SECONDS; i++) {
        uint64_t due = t0 + (uint64_t)i * (1000000000u / RATE);
        uint64_t now;
        while ((now = pc_now_mono_ns()) < due) {
            if (due - now > 200000) {
                struct timespec ts = {0, 100000};
                nanosleep(&ts, NULL);
            }
        }
        (void)pc_spool_append(spool, record, record_len);
    }
    pc_spool_flush(spool);
    pc_spool_get_stats(spool, &after);
    n = after.records_written - before.records_written;
    batches = after.batches - before.batches;
    printf("paced %u records/s for %u s: %llu fsync batches = %.1f records/fsync, %llu dropped\n",
           RATE, PACED_SECONDS, (unsigned long long)batches,
           batches ? (double)n / (double)batches : 0.0,
           (unsigned long long)(after.records_dropped - before.records_dropped));

    /* A single appender waiting for durability each time: the fsync latency. */
    enum { SYNCS = 200 };
    t0 = pc_now_mono_ns();
    for (unsigned i = 0; i < SYNCS; i++) {
        (void)pc_spool_append(spool, record, record_len);
        pc_spool_flush(spool);
    }
    t1 = pc_now_mono_ns();
    printf("append+flush round trip: %.0f us\n", (double)(t1 - t0) / SYNCS / 1000);
    pc_spool_get_stats(spool, &after);
    uint64_t bytes = after.bytes_on_disk;
    pc_spool_close(spool);

    t0 = pc_now_mono_ns();
    spool = pc_spool_open(dir, 10ull << 30, err, sizeof err);
    t1 = pc_now_mono_ns();
    if (!spool) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    pc__spool_wait_verified(spool);
    uint64_t t2 = pc_now_mono_ns();
    printf("reopen of %.1f MB: open returned in %.3f s (newest segment scanned), background "
           "verification of the rest done after %.3f s = %.0f MB/s (page cache warm)\n",
           (double)bytes / 1e6, secs(t1 - t0), secs(t2 - t0), (double)bytes / 1e6 / secs(t2 - t0));
    pc_spool_close(spool);
    return 0;
}
