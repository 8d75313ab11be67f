/*
 * Per-user sliding-window access counters (design §4 input.user.access_count,
 * input.bucket.access_count): how many requests a user made to a resource in
 * the last minute and the last hour, including the current one.
 *
 * Storage: 64 shards by key hash, each its own mutex and hash table, so
 * workers touching different users never contend. Per key, 60 one-second
 * buckets (minute window: this second and the 59 before) and 60 one-minute
 * buckets (hour window: this minute and the 59 before, so up to 59 s more
 * than an hour at the old edge), with running sums: a hit is O(1) amortised
 * (each bucket is cleared once per lap), never more than 120 bucket writes.
 * Wall-clock seconds, like the cluster's buckets; a clock stepping back
 * counts into the newest bucket.
 *
 * Cluster (design §8): the counts of other instances are added through a
 * registered hook, so this module does not depend on the cluster module and
 * the request path never waits on it:
 *   - note(key, n): called on every hit (after the shard lock is released);
 *     must be non-blocking (the cluster's pc_cluster_counts_note is).
 *   - remote(key, window): accesses by OTHER instances; must be a
 *     non-blocking load (the cluster's pc_cluster_remote_count is).
 * The key is "<user>\x1f<resource>" (PC_ACCESS_KEY_SEP). Register at start-up,
 * before workers run, e.g. in the connector:
 *     static uint32_t remote(const char *k, pc_access_window_t w)
 *     { return pc_cluster_remote_count(k, w == PC_ACCESS_LAST_MINUTE
 *                                         ? PC_CLUSTER_LAST_MINUTE : PC_CLUSTER_LAST_HOUR); }
 *     pc_access_set_remote(pc_cluster_counts_note, remote);
 */
#ifndef PC_ACCESS_ACCESS_H
#define PC_ACCESS_ACCESS_H

#include "core/common.h"

#define PC_ACCESS_KEY_SEP '\x1f'

typedef enum { PC_ACCESS_LAST_MINUTE, PC_ACCESS_LAST_HOUR } pc_access_window_t;

typedef struct pc_access_counts {
    uint64_t last_minute;
    uint64_t last_hour;
} pc_access_counts_t;

typedef void (*pc_access_note_fn)(const char *key, uint32_t n);
typedef uint32_t (*pc_access_remote_fn)(const char *key, pc_access_window_t window);

/** Register the cluster hooks (either may be NULL). At start-up, before workers run. */
void pc_access_set_remote(pc_access_note_fn note, pc_access_remote_fn remote);

/**
 * Count one access by user to resource at wall-clock second now_sec (0 =
 * now) and return the counts including it (local + remote). Any thread.
 */
void pc_access_hit(const char *user, const char *resource, int64_t now_sec,
                   pc_access_counts_t *out);

/** The counts without recording an access. Any thread. */
void pc_access_peek(const char *user, const char *resource, int64_t now_sec,
                    pc_access_counts_t *out);

/** Forget every counter (tests). Not concurrent with hits. */
void pc_access_reset(void);

#endif
