/* Cluster counter store: time buckets, the value codec, and the lock-free remote replica. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "cluster/cluster_int.h"

#include <pthread.h>
#include <stdlib.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static void test_minute_window_slides(void **state)
{
    (void)state;
    pc__cluster_buckets_t b;
    memset(&b, 0, sizeof b);
    int64_t t0 = 1800000000; /* a multiple of 60 */
    pc__cluster_buckets_add(&b, t0, 2);
    pc__cluster_buckets_add(&b, t0 + 30, 3);
    assert_int_equal(pc__cluster_buckets_sum(&b, t0 + 30, PC_CLUSTER_LAST_MINUTE), 5);
    assert_int_equal(pc__cluster_buckets_sum(&b, t0 + 59, PC_CLUSTER_LAST_MINUTE), 5);
    /* 60 s later the first access has left the window. */
    assert_int_equal(pc__cluster_buckets_sum(&b, t0 + 60, PC_CLUSTER_LAST_MINUTE), 3);
    assert_int_equal(pc__cluster_buckets_sum(&b, t0 + 90, PC_CLUSTER_LAST_MINUTE), 0);
    /* The same slot one minute later is reused, not added to. */
    pc__cluster_buckets_add(&b, t0 + 60, 1);
    assert_int_equal(pc__cluster_buckets_sum(&b, t0 + 60, PC_CLUSTER_LAST_MINUTE), 4);
    /* The hour window keeps all of them, by minute. */
    assert_int_equal(pc__cluster_buckets_sum(&b, t0 + 60, PC_CLUSTER_LAST_HOUR), 6);
    assert_int_equal(pc__cluster_buckets_sum(&b, t0 + 3599, PC_CLUSTER_LAST_HOUR), 6);
    assert_int_equal(pc__cluster_buckets_sum(&b, t0 + 3600, PC_CLUSTER_LAST_HOUR), 1);
    assert_int_equal(pc__cluster_buckets_sum(&b, t0 + 3660, PC_CLUSTER_LAST_HOUR), 0);
}

static void test_codec_round_trip(void **state)
{
    (void)state;
    pc__cluster_buckets_t b, d;
    memset(&b, 0, sizeof b);
    int64_t t0 = 1800000007;
    for (int i = 0; i < 200; i++)
        pc__cluster_buckets_add(&b, t0 + i * 17, (uint32_t)i + 1);
    int64_t now = t0 + 199 * 17;
    char text[PC__CLUSTER_VALUE_MAX];
    size_t n = pc__cluster_buckets_encode(&b, now, text, sizeof text);
    assert_true(n > 0 && n < sizeof text);
    assert_true(pc__cluster_buckets_decode(text, n, &d));
    for (int w = 0; w < 2; w++)
        assert_int_equal(pc__cluster_buckets_sum(&b, now, (pc_cluster_window_t)w),
                         pc__cluster_buckets_sum(&d, now, (pc_cluster_window_t)w));
    assert_true(pc__cluster_buckets_sum(&d, now, PC_CLUSTER_LAST_HOUR) > 0);
    /* Worst case (every slot full, large counts) still fits PC__CLUSTER_VALUE_MAX. */
    memset(&b, 0xff, sizeof b);
    for (unsigned i = 0; i < PC__CLUSTER_SLOTS; i++) {
        b.sec_t[i] = now - i;
        b.min_t[i] = now / 60 - i;
    }
    n = pc__cluster_buckets_encode(&b, now, text, sizeof text);
    assert_true(n < sizeof text - 1);
    assert_true(pc__cluster_buckets_decode(text, n, &d));
}

static void test_decode_rejects_garbage(void **state)
{
    (void)state;
    static const char *bad[] = {
        "",         "S",         "S;",          "S 1:2;N",  "S 1:;M",
        "S :2;M",   "S 1:2;M 3", "S 0:1;M",     "S 1:2 ;M", "S 1:99999999999;M",
        "S 1:2;M ", "X;M",       "S 1:2;M 1:2x"};
    pc__cluster_buckets_t d;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        memset(&d, 0x55, sizeof d);
        assert_false(pc__cluster_buckets_decode(bad[i], strlen(bad[i]), &d));
        assert_int_equal(d.sec_n[0], 0);
    }
    assert_true(pc__cluster_buckets_decode("S;M", 3, &d));
    assert_true(pc__cluster_buckets_decode("S 5:1 65:2;M 1:3", 16, &d));
    /* Slots 5 and 65 collide: the newer second wins. */
    assert_int_equal(pc__cluster_buckets_sum(&d, 65, PC_CLUSTER_LAST_MINUTE), 2);
}

static int64_t wall_sec(void)
{
    return (int64_t)time(NULL);
}

static void put_remote(const char *member, const char *key, uint32_t n)
{
    pc__cluster_buckets_t b;
    memset(&b, 0, sizeof b);
    pc__cluster_buckets_add(&b, wall_sec(), n);
    char text[PC__CLUSTER_VALUE_MAX];
    size_t len = pc__cluster_buckets_encode(&b, wall_sec(), text, sizeof text);
    pc__counts_remote_put(member, key, text, len);
}

static void test_remote_replica_sums_other_members(void **state)
{
    (void)state;
    pc__counts_enable(true);
    pc__counts_remote_reset();
    put_remote("m1", "alice\x1fs3", 2);
    put_remote("m2", "alice\x1fs3", 3);
    put_remote("m2", "bob\x1fs3", 7);
    /* Not visible before the commit. */
    assert_int_equal(pc_cluster_remote_count("alice\x1fs3", PC_CLUSTER_LAST_MINUTE), 0);
    pc__counts_remote_commit();
    assert_int_equal(pc_cluster_remote_count("alice\x1fs3", PC_CLUSTER_LAST_MINUTE), 5);
    assert_int_equal(pc_cluster_remote_count("alice\x1fs3", PC_CLUSTER_LAST_HOUR), 5);
    assert_int_equal(pc_cluster_remote_count("bob\x1fs3", PC_CLUSTER_LAST_MINUTE), 7);
    assert_int_equal(pc_cluster_remote_count("carol\x1fs3", PC_CLUSTER_LAST_MINUTE), 0);
    /* A member's newer value replaces its older one; a delete drops it. */
    put_remote("m1", "alice\x1fs3", 4);
    pc__counts_remote_del("m2", "alice\x1fs3");
    pc__counts_remote_commit();
    assert_int_equal(pc_cluster_remote_count("alice\x1fs3", PC_CLUSTER_LAST_MINUTE), 4);
    /* A malformed value from the wire is ignored. */
    pc__counts_remote_put("m3", "alice\x1fs3", "S garbage", 9);
    pc__counts_remote_commit();
    assert_int_equal(pc_cluster_remote_count("alice\x1fs3", PC_CLUSTER_LAST_MINUTE), 4);
    pc__counts_enable(false);
    assert_int_equal(pc_cluster_remote_count("alice\x1fs3", PC_CLUSTER_LAST_MINUTE), 0);
}

typedef struct {
    atomic_bool stop;
    atomic_ulong reads;
    atomic_bool bad;
} readers_t;

static void *reader_main(void *arg)
{
    readers_t *r = arg;
    while (!atomic_load(&r->stop)) {
        uint32_t v = pc_cluster_remote_count("k", PC_CLUSTER_LAST_MINUTE);
        /* The writer only ever publishes 10 or 20. */
        if (v != 10 && v != 20) atomic_store(&r->bad, true);
        atomic_fetch_add(&r->reads, 1);
    }
    return NULL;
}

static void test_readers_during_commits(void **state)
{
    (void)state;
    pc__counts_enable(true);
    pc__counts_remote_reset();
    put_remote("m", "k", 10);
    pc__counts_remote_commit();
    readers_t r = {0};
    pthread_t th[3];
    for (int i = 0; i < 3; i++)
        assert_int_equal(pthread_create(&th[i], NULL, reader_main, &r), 0);
    for (int i = 0; i < 2000; i++) {
        put_remote("m", "k", i % 2 ? 10 : 20);
        pc__counts_remote_commit(); /* frees the previous snapshot under the readers' feet */
    }
    atomic_store(&r.stop, true);
    for (int i = 0; i < 3; i++)
        pthread_join(th[i], NULL);
    assert_false(atomic_load(&r.bad));
    assert_true(atomic_load(&r.reads) > 0);
    pc__counts_enable(false);
}

typedef struct {
    char keys[8][64];
    char vals[8][PC__CLUSTER_VALUE_MAX];
    int n;
} taken_t;

static void take(void *arg, const char *key, const char *value, size_t vlen)
{
    taken_t *t = arg;
    if (t->n >= 8) return;
    snprintf(t->keys[t->n], sizeof t->keys[0], "%s", key);
    snprintf(t->vals[t->n], sizeof t->vals[0], "%.*s", (int)vlen, value);
    t->n++;
}

static void take_cache(void *arg, const char *key, const char *wire, size_t wlen, uint32_t ttl)
{
    assert_true(ttl > 0 && ttl <= 600);
    take(arg, key, wire, wlen);
}

static void test_local_notes_become_dirty_once(void **state)
{
    (void)state;
    pc__counts_enable(true);
    pc_cluster_counts_note("alice\x1fpg", 1);
    pc_cluster_counts_note("alice\x1fpg", 2);
    taken_t t = {0};
    pc__counts_take_dirty(wall_sec(), take, &t);
    assert_int_equal(t.n, 1);
    assert_string_equal(t.keys[0], "alice\x1fpg");
    pc__cluster_buckets_t b;
    assert_true(pc__cluster_buckets_decode(t.vals[0], strlen(t.vals[0]), &b));
    assert_int_equal(pc__cluster_buckets_sum(&b, wall_sec(), PC_CLUSTER_LAST_MINUTE), 3);
    /* Nothing new: nothing to publish; a failed publish puts it back. */
    t.n = 0;
    pc__counts_take_dirty(wall_sec(), take, &t);
    assert_int_equal(t.n, 0);
    pc__counts_mark_dirty("alice\x1fpg");
    pc__counts_take_dirty(wall_sec(), take, &t);
    assert_int_equal(t.n, 1);
    pc__counts_enable(false);
    pc_cluster_counts_note("alice\x1fpg", 1); /* off: ignored */
    t.n = 0;
    pc__counts_take_dirty(wall_sec(), take, &t);
    assert_int_equal(t.n, 0);
}

static void test_cache_local_semantics(void **state)
{
    (void)state;
    size_t len = 0;
    assert_null(pc_cluster_cache_get("bq", "job-1", &len));
    assert_true(pc_cluster_cache_put("bq", "job-1", "alice", 5, 600));
    char *v = pc_cluster_cache_get("bq", "job-1", &len);
    assert_non_null(v);
    assert_int_equal(len, 5);
    assert_string_equal(v, "alice");
    free(v);
    /* Bad namespace, zero TTL, oversized value: refused. */
    assert_false(pc_cluster_cache_put("b/q", "k", "x", 1, 10));
    assert_false(pc_cluster_cache_put("", "k", "x", 1, 10));
    assert_false(pc_cluster_cache_put("bq", "k", "x", 1, 0));
    assert_false(pc_cluster_cache_put("bq", "k", "x", PC_CLUSTER_CACHE_VALUE_MAX + 1, 10));
    /* An entry from another instance that has already expired is never served. */
    assert_true(pc__cache_apply("bq/old", "1000:stale", 10, false));
    assert_null(pc_cluster_cache_get("bq", "old", &len));
    char wire[64];
    int n =
        snprintf(wire, sizeof wire, "%llu:bob", (unsigned long long)(time(NULL) + 600) * 1000ull);
    assert_true(pc__cache_apply("bq/job-2", wire, (size_t)n, false));
    v = pc_cluster_cache_get("bq", "job-2", &len);
    assert_non_null(v);
    assert_string_equal(v, "bob");
    free(v);
    /* Malformed wire values are refused; a delete removes. */
    assert_false(pc__cache_apply("bq/job-3", "abc", 3, false));
    assert_false(pc__cache_apply("bq/job-3", "123", 3, false));
    assert_true(pc__cache_apply("bq/job-2", NULL, 0, true));
    assert_null(pc_cluster_cache_get("bq", "job-2", &len));
    /* The local put is queued for publishing once, with its expiry on the wire. */
    taken_t t = {0};
    pc__cache_take_dirty(take_cache, &t);
    assert_int_equal(t.n, 1);
    assert_string_equal(t.keys[0], "bq/job-1");
    assert_non_null(strstr(t.vals[0], ":alice"));
    t.n = 0;
    pc__cache_take_dirty(take_cache, &t);
    assert_int_equal(t.n, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_minute_window_slides),
        cmocka_unit_test(test_codec_round_trip),
        cmocka_unit_test(test_decode_rejects_garbage),
        cmocka_unit_test(test_remote_replica_sums_other_members),
        cmocka_unit_test(test_readers_during_commits),
        cmocka_unit_test(test_local_notes_become_dirty_once),
        cmocka_unit_test(test_cache_local_semantics),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
