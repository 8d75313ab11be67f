/*
 * Cluster (design §8): a supervised etcd member per connector, formation and
 * graceful leave, and a shared counter store for cluster-wide access counts.
 *
 * Threads: pc_cluster_start() spawns the background threads (supervisor,
 * counter sync, counter watch, etcd log reader). Nothing here ever runs etcd
 * I/O on a caller's thread except pc_cluster_leave(), which the connector
 * calls once during shutdown (step 2) and which may block for a few seconds.
 *
 * Counter store, for the policy path (policypg):
 *
 *   - pc_cluster_counts_note(key, n): this instance served n accesses to key
 *     (e.g. "alice\x1fpg-main") now. Cheap and non-blocking in practice (one
 *     short mutex hold, no I/O); any thread. The sync thread publishes the
 *     per-second and per-minute buckets of dirty keys at most 100 ms later,
 *     under "/portcullis/c/<member>/<key>" (key: any bytes but NUL), with a
 *     lease that outlives the hour window (62 min), so an instance's accesses
 *     keep counting after it dies or leaves. A restarted member merges its
 *     previously published counts back before publishing again.
 *   - pc_cluster_remote_count(key, window): accesses by the OTHER instances
 *     within the window, from a local replica kept by a watch. Lock-free
 *     (RCU-style snapshot, readers never wait), no I/O; any thread, including
 *     workers. Returns 0 when clustering is off or degraded.
 *   access_count = local count (policypg's own buckets) + remote count.
 *
 * Buckets are one second wide for PC_CLUSTER_LAST_MINUTE and one minute wide
 * for PC_CLUSTER_LAST_HOUR, by wall clock (instances should run NTP).
 * Without a started cluster both functions are valid no-ops.
 */
#ifndef PC_CLUSTER_CLUSTER_H
#define PC_CLUSTER_CLUSTER_H

#include "core/common.h"
#include "core/config.h"

typedef struct pc_cluster pc_cluster_t;

typedef enum { PC_CLUSTER_LAST_MINUTE, PC_CLUSTER_LAST_HOUR } pc_cluster_window_t;

typedef struct pc_cluster_status {
    bool enabled;
    bool degraded;            /* etcd could not start / is not running: local state only */
    const char *role;         /* "leader", "follower", "learner", "starting", "degraded", "off" */
    unsigned members;         /* members in the etcd member list, 0 when unknown */
    uint64_t leader_id;       /* 0 when unknown */
    int64_t last_sync_age_ms; /* since the last successful exchange with etcd; -1 never */
} pc_cluster_status_t;

/**
 * Start clustering as cfg->cluster says (cfg must outlive the handle). Returns
 * NULL when clustering is disabled. Never fails otherwise: when etcd cannot
 * run, the handle reports degraded and the connector keeps local state only.
 */
pc_cluster_t *pc_cluster_start(const pc_config_t *cfg);

/** Snapshot of the cluster's state for /ready and metrics; any thread. Accepts NULL. */
void pc_cluster_get_status(pc_cluster_t *c, pc_cluster_status_t *out);

/**
 * Leave gracefully and free: hand leadership over if leading, remove own
 * member, stop etcd and wipe its data dir. Blocks (bounded, ~25 s worst
 * case). Accepts NULL.
 */
void pc_cluster_leave(pc_cluster_t *c);

/** Record n accesses to key by this instance, now. Any thread; no-op without a cluster. */
void pc_cluster_counts_note(const char *key, uint32_t n);

/** Accesses to key by the other instances within the window. Lock-free; any thread. */
uint32_t pc_cluster_remote_count(const char *key, pc_cluster_window_t window);

/*
 * Cache (design §8, e.g. BigQuery job id -> owner and masking decision):
 * small values with a TTL shared by every instance. put stores locally at
 * once (so it works without a cluster too) and is published within ~100 ms;
 * other instances' entries arrive through the watch. ns must be non-empty
 * without '/'; key is any string. Both take a short mutex; no I/O; any thread.
 */
#define PC_CLUSTER_CACHE_VALUE_MAX (64u * 1024u)
/** false on a bad namespace, ttl 0 or a value above PC_CLUSTER_CACHE_VALUE_MAX. */
bool pc_cluster_cache_put(const char *ns, const char *key, const void *value, size_t len,
                          uint32_t ttl_s);
/** malloc'd copy (NUL-terminated) with its length, or NULL if absent or expired. */
char *pc_cluster_cache_get(const char *ns, const char *key, size_t *len);

/*
 * Internal, exposed for unit tests and the fuzz target: the published value
 * of one key is text "S <sec>:<n> ...;M <min>:<n> ..." (only non-zero buckets
 * within their window). pc__cluster_buckets_t holds it decoded.
 */
#define PC__CLUSTER_SLOTS 60
typedef struct pc__cluster_buckets {
    int64_t sec_t[PC__CLUSTER_SLOTS]; /* epoch second of the slot, 0 = empty */
    uint32_t sec_n[PC__CLUSTER_SLOTS];
    int64_t min_t[PC__CLUSTER_SLOTS]; /* epoch minute */
    uint32_t min_n[PC__CLUSTER_SLOTS];
} pc__cluster_buckets_t;

void pc__cluster_buckets_add(pc__cluster_buckets_t *b, int64_t now_sec, uint32_t n);
/** Sum within the window ending at now_sec. */
uint32_t pc__cluster_buckets_sum(const pc__cluster_buckets_t *b, int64_t now_sec,
                                 pc_cluster_window_t w);
/** Merge src into dst (adds equal slots, newer slot wins). */
void pc__cluster_buckets_merge(pc__cluster_buckets_t *dst, const pc__cluster_buckets_t *src);
#define PC__CLUSTER_VALUE_MAX 3072 /* encode never needs more, even with every slot full */
/** Encode into out (cap >= PC__CLUSTER_VALUE_MAX is always enough); returns length. */
size_t pc__cluster_buckets_encode(const pc__cluster_buckets_t *b, int64_t now_sec, char *out,
                                  size_t cap);
/** Decode text of len bytes; false on malformed input (b is then zeroed). */
bool pc__cluster_buckets_decode(const char *s, size_t len, pc__cluster_buckets_t *b) PC_WUR;

#endif
