/* Private: the counter exchange with etcd (publisher and watch threads). */
#ifndef PC_CLUSTER_SYNC_H
#define PC_CLUSTER_SYNC_H

#include "cluster/cluster.h"

#include <stdatomic.h>

/* Every instance's counts live under this prefix, one key per (member, counter key). */
#define PC__CLUSTER_PREFIX "/portcullis/"
#define PC__CLUSTER_COUNTS_PREFIX "/portcullis/c/"
#define PC__CLUSTER_CACHE_PREFIX "/portcullis/k/"

typedef struct pc__sync pc__sync_t;

/*
 * Start the publisher and the watch; both idle until *running is true (etcd
 * answers at base). member names this instance's keys. cluster is touched
 * (pc__cluster_touch) on every successful exchange.
 */
pc__sync_t *pc__sync_start(pc_cluster_t *cluster, const char *base, const char *member,
                           atomic_bool *running);
/* Publish what is pending one last time and stop both threads. Accepts NULL. */
void pc__sync_stop(pc__sync_t *s);

void pc__cluster_touch(pc_cluster_t *c);

#endif
