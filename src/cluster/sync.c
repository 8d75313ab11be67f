/*
 * Counter exchange: a publisher thread puts this instance's dirty counters
 * every 100 ms (one txn per 100 keys, all on one lease that outlives the hour
 * window), and a watch thread keeps the replica of everybody else's: read
 * the prefix, then watch from the next revision; on any break (compaction,
 * etcd restart, partition) read again, which also reconciles after a heal.
 */
#include "cluster/sync.h"

#include "cluster/cluster_int.h"
#include "cluster/etcd.h"
#include "core/log.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PUBLISH_MS 100
#define BATCH 100        /* etcd allows 128 ops per txn */
#define LEASE_TTL_S 3720 /* the hour window plus slack */
#define KEEPALIVE_MS 60000

struct pc__sync {
    pc_cluster_t *cl;
    char base[160];
    char member[96];
    atomic_bool *running;
    atomic_bool stop;
    pthread_t pub, watch;
    bool pub_started, watch_started;
    char lease[24];
    int64_t lease_renewed_ms;
    bool restored; /* own counts of a previous run merged back */
};

static int64_t mono_ms(void)
{
    return (int64_t)(pc_now_mono_ns() / 1000000u);
}

/* ---- publisher ------------------------------------------------------------------------- */

static bool ensure_lease(pc__sync_t *s)
{
    if (s->lease[0] && mono_ms() - s->lease_renewed_ms < KEEPALIVE_MS) return true;
    json_t *r = NULL;
    if (s->lease[0]) {
        long st = pc__etcd_post(s->base, "/v3/lease/keepalive", json_pack("{s:s}", "ID", s->lease),
                                &r, 3000);
        /* An expired lease answers 200 without a TTL. */
        if (st == 200 && pc__etcd_u64(json_object_get(r, "result"), "TTL") > 0) {
            s->lease_renewed_ms = mono_ms();
            json_decref(r);
            return true;
        }
        json_decref(r);
        if (st == 200) s->lease[0] = '\0';
        if (st != 200) return false;
        r = NULL;
    }
    long st =
        pc__etcd_post(s->base, "/v3/lease/grant", json_pack("{s:i}", "TTL", LEASE_TTL_S), &r, 3000);
    const char *id = json_string_value(json_object_get(r, "ID"));
    bool ok = st == 200 && id;
    if (ok) {
        snprintf(s->lease, sizeof s->lease, "%s", id);
        s->lease_renewed_ms = mono_ms();
    }
    json_decref(r);
    return ok;
}

typedef struct {
    pc__sync_t *s;
    json_t *ops;
    char **keys;
    size_t n;
} batch_t;

static void flush_batch(batch_t *b)
{
    if (!b->n) return;
    json_t *r = NULL;
    long st =
        pc__etcd_post(b->s->base, "/v3/kv/txn", json_pack("{s:O}", "success", b->ops), &r, 3000);
    if (st == 200) {
        pc__cluster_touch(b->s->cl);
    } else {
        /* Unknown outcome or refused: publish again later (puts are idempotent). */
        if (st == 404) b->s->lease[0] = '\0';
        for (size_t i = 0; i < b->n; i++)
            pc__counts_mark_dirty(b->keys[i]);
    }
    json_decref(r);
    for (size_t i = 0; i < b->n; i++)
        free(b->keys[i]);
    json_array_clear(b->ops);
    b->n = 0;
}

static void add_put(void *arg, const char *key, const char *value, size_t vlen)
{
    batch_t *b = arg;
    char *full = NULL;
    if (asprintf(&full, PC__CLUSTER_COUNTS_PREFIX "%s/%s", b->s->member, key) < 0) return;
    json_t *put = json_pack("{s:o,s:o,s:s}", "key", pc__etcd_b64(full, strlen(full)), "value",
                            pc__etcd_b64(value, vlen), "lease", b->s->lease);
    free(full);
    json_array_append_new(b->ops, json_pack("{s:o}", "request_put", put));
    b->keys[b->n++] = pc_xstrdup(key);
    if (b->n == BATCH) flush_batch(b);
}

/* One lease per cache entry, of its remaining TTL, so etcd drops it too. */
static void put_cache(void *arg, const char *key, const char *wire, size_t wlen, uint32_t ttl_s)
{
    pc__sync_t *s = arg;
    json_t *r = NULL;
    long st =
        pc__etcd_post(s->base, "/v3/lease/grant", json_pack("{s:i}", "TTL", (int)ttl_s), &r, 3000);
    const char *lease = json_string_value(json_object_get(r, "ID"));
    char *full = NULL;
    if (st == 200 && lease && asprintf(&full, PC__CLUSTER_CACHE_PREFIX "%s", key) >= 0) {
        st = pc__etcd_post(s->base, "/v3/kv/put",
                           json_pack("{s:o,s:o,s:s}", "key", pc__etcd_b64(full, strlen(full)),
                                     "value", pc__etcd_b64(wire, wlen), "lease", lease),
                           NULL, 3000);
        free(full);
    } else {
        st = -1;
    }
    json_decref(r);
    if (st != 200) pc__cache_mark_dirty(key);
}

static void publish(pc__sync_t *s)
{
    pc__cache_take_dirty(put_cache, s);
    if (!ensure_lease(s)) return;
    char *keys[BATCH];
    batch_t b = {.s = s, .ops = json_array(), .keys = keys};
    pc__counts_take_dirty((int64_t)(pc_now_wall_ns() / 1000000000ull), add_put, &b);
    flush_batch(&b);
    json_decref(b.ops);
}

static void *pub_main(void *arg)
{
    pc__sync_t *s = arg;
    while (!atomic_load(&s->stop)) {
        usleep(PUBLISH_MS * 1000);
        if (atomic_load(s->running) && s->restored) publish(s);
    }
    if (atomic_load(s->running)) publish(s); /* what was noted last still counts elsewhere */
    return NULL;
}

/* ---- watch ------------------------------------------------------------------------------ */

static void apply_kv(pc__sync_t *s, const json_t *kv, bool deleted, bool initial)
{
    size_t klen, vlen;
    char *key = pc__etcd_unb64(json_object_get(kv, "key"), &klen);
    const size_t plen = sizeof PC__CLUSTER_COUNTS_PREFIX - 1;
    if (!key || strlen(key) != klen) goto out; /* no NUL inside a key */
    if (klen > plen && !memcmp(key, PC__CLUSTER_CACHE_PREFIX, plen)) {
        char *wire = deleted ? NULL : pc__etcd_unb64(json_object_get(kv, "value"), &vlen);
        if (deleted || wire) (void)pc__cache_apply(key + plen, wire, wire ? vlen : 0, deleted);
        free(wire);
        goto out;
    }
    if (klen <= plen || memcmp(key, PC__CLUSTER_COUNTS_PREFIX, plen) != 0) goto out;
    char *member = key + plen, *slash = memchr(member, '/', klen - plen);
    if (!slash) goto out;
    *slash = '\0';
    const char *ckey = slash + 1;
    char *val = deleted ? NULL : pc__etcd_unb64(json_object_get(kv, "value"), &vlen);
    if (!strcmp(member, s->member)) {
        if (initial && val) pc__counts_restore_local(ckey, val, vlen);
    } else if (deleted) {
        pc__counts_remote_del(member, ckey);
    } else if (val) {
        pc__counts_remote_put(member, ckey, val, vlen);
    }
    free(val);
out:
    free(key);
}

typedef struct {
    pc__sync_t *s;
    bool created;
    bool compacted; /* cancelled because its start revision is compacted away */
} watch_ctx_t;

static bool on_watch_line(void *arg, const char *line, size_t len)
{
    watch_ctx_t *w = arg;
    json_t *j = json_loadb(line, len, 0, NULL);
    json_t *res = json_object_get(j, "result");
    bool keep = res != NULL;
    if (!res || json_is_true(json_object_get(res, "canceled"))) {
        keep = false; /* error or compacted: read the state again */
        const char *crev = json_string_value(json_object_get(res, "compact_revision"));
        w->compacted = crev != NULL;
        pc_log_warn("cluster watch cancelled; reading the state again",
                    PC_LSTR("component", "cluster"), PC_LSTR("compact_revision", crev ? crev : ""));
    } else {
        if (json_is_true(json_object_get(res, "created"))) w->created = true;
        size_t i;
        json_t *ev;
        json_t *events = json_object_get(res, "events");
        json_array_foreach(events, i, ev)
        {
            const char *type = json_string_value(json_object_get(ev, "type"));
            apply_kv(w->s, json_object_get(ev, "kv"), type && !strcmp(type, "DELETE"), false);
        }
        if (json_array_size(events)) pc__counts_remote_commit();
        pc__cluster_touch(w->s->cl);
    }
    json_decref(j);
    return keep && !atomic_load(&w->s->stop);
}

#ifndef NDEBUG
/*
 * Debug-build test hook (compiled out with NDEBUG): while the file named by
 * PORTCULLIS_TEST_SYNC_HOLD exists, hold between the read and the watch, so
 * that a test can compact etcd past the revision read and prove the
 * compacted-watch path (cancel, read again) end to end.
 */
static void test_hold(pc__sync_t *s, uint64_t rev)
{
    const char *path = getenv("PORTCULLIS_TEST_SYNC_HOLD");
    if (!path || access(path, F_OK) != 0) return;
    pc_log_info("test hook: holding the watch", PC_LSTR("component", "cluster"),
                PC_LUINT("revision", rev));
    while (!atomic_load(&s->stop) && access(path, F_OK) == 0)
        usleep(50 * 1000);
}
#else
static void test_hold(pc__sync_t *s, uint64_t rev)
{
    (void)s;
    (void)rev;
}
#endif

static void *watch_main(void *arg)
{
    pc__sync_t *s = arg;
    bool after_compaction = false;
    while (!atomic_load(&s->stop)) {
        if (!atomic_load(s->running)) {
            usleep(200 * 1000);
            continue;
        }
        json_t *r = NULL;
        /* Serializable: a learner (not yet promoted) answers it too. */
        long st = pc__etcd_post(
            s->base, "/v3/kv/range",
            json_pack("{s:o,s:o,s:b}", "key",
                      pc__etcd_b64(PC__CLUSTER_PREFIX, sizeof PC__CLUSTER_PREFIX - 1), "range_end",
                      pc__etcd_prefix_end(PC__CLUSTER_PREFIX), "serializable", 1),
            &r, 5000);
        uint64_t rev = pc__etcd_u64(json_object_get(r, "header"), "revision");
        if (st != 200 || !rev) {
            json_decref(r);
            usleep(500 * 1000);
            continue;
        }
        pc__counts_remote_reset();
        size_t i;
        json_t *kv;
        json_array_foreach(json_object_get(r, "kvs"), i, kv) apply_kv(s, kv, false, !s->restored);
        json_decref(r);
        pc__counts_remote_commit();
        s->restored = true;
        pc__cluster_touch(s->cl);
        if (after_compaction)
            pc_log_info("cluster state read again after compaction",
                        PC_LSTR("component", "cluster"), PC_LUINT("revision", rev));
        after_compaction = false;
        test_hold(s, rev);
        char start[32];
        snprintf(start, sizeof start, "%" PRIu64, rev + 1);
        json_t *req = json_pack("{s:{s:o,s:o,s:s,s:b}}", "create_request", "key",
                                pc__etcd_b64(PC__CLUSTER_PREFIX, sizeof PC__CLUSTER_PREFIX - 1),
                                "range_end", pc__etcd_prefix_end(PC__CLUSTER_PREFIX),
                                "start_revision", start, "progress_notify", 1);
        watch_ctx_t w = {.s = s};
        (void)pc__etcd_stream(s->base, "/v3/watch", req, on_watch_line, &w, &s->stop);
        after_compaction = w.compacted;
        if (!atomic_load(&s->stop)) usleep(300 * 1000);
    }
    return NULL;
}

pc__sync_t *pc__sync_start(pc_cluster_t *cluster, const char *base, const char *member,
                           atomic_bool *running)
{
    pc__sync_t *s = pc_xcalloc(1, sizeof *s);
    s->cl = cluster;
    s->running = running;
    snprintf(s->base, sizeof s->base, "%s", base);
    snprintf(s->member, sizeof s->member, "%s", member);
    s->pub_started = pthread_create(&s->pub, NULL, pub_main, s) == 0;
    s->watch_started = pthread_create(&s->watch, NULL, watch_main, s) == 0;
    if (!s->pub_started || !s->watch_started)
        pc_log_error("cannot start the cluster counter threads", PC_LSTR("component", "cluster"));
    return s;
}

void pc__sync_stop(pc__sync_t *s)
{
    if (!s) return;
    atomic_store(&s->stop, true);
    if (s->pub_started) pthread_join(s->pub, NULL);
    if (s->watch_started) pthread_join(s->watch, NULL);
    free(s);
}
