/* Private glue between the cluster's files (not API). */
#ifndef PC_CLUSTER_CLUSTER_INT_H
#define PC_CLUSTER_CLUSTER_INT_H

#include "cluster/cluster.h"

/* FNV-1a of a string, and "a<sep>b" malloc'd (counts.c). */
uint32_t pc__cluster_hash(const char *s);
char *pc__cluster_join(const char *a, char sep, const char *b);

/* counts.c: the local table (noted accesses) and the remote replica. */
void pc__counts_enable(bool on);
/* Calls fn for every key noted since the last call, with its encoded value. */
typedef void (*pc__counts_dirty_fn)(void *arg, const char *key, const char *value, size_t vlen);
void pc__counts_take_dirty(int64_t now_sec, pc__counts_dirty_fn fn, void *arg);
/* Put back keys whose publish failed (they are published again later). */
void pc__counts_mark_dirty(const char *key);
/* Own counts published by a previous run of this member: merged into the local table. */
void pc__counts_restore_local(const char *key, const char *value, size_t vlen);

/* Remote replica: single writer (the watch thread); commit makes changes visible. */
void pc__counts_remote_reset(void);
void pc__counts_remote_put(const char *member, const char *key, const char *value, size_t vlen);
void pc__counts_remote_del(const char *member, const char *key);
void pc__counts_remote_commit(void);

/* cache.c: local table fed by put() and by the watch. Keys here are "<ns>/<key>". */
typedef void (*pc__cache_dirty_fn)(void *arg, const char *key, const char *wire, size_t wlen,
                                   uint32_t ttl_s);
void pc__cache_take_dirty(pc__cache_dirty_fn fn, void *arg);
void pc__cache_mark_dirty(const char *key);
/* An entry seen on the watch ("<expires ms>:<bytes>"); false if malformed. */
bool pc__cache_apply(const char *key, const char *wire, size_t wlen, bool deleted);

#endif
