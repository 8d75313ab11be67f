/* Internals shared by the files of src/pg/ (not API). */
#ifndef PC_PG_PG_INT_H
#define PC_PG_PG_INT_H

#include "core/common.h"

#include <sys/socket.h>

/* Process-wide cancel map: the key we gave a client -> its upstream session.
 * Cancel requests arrive on any worker, so the map is shared (sharded, one
 * mutex per shard). */
typedef struct pc__pg_cancel_target {
    struct sockaddr_storage addr; /* upstream server */
    uint32_t pid, key;            /* upstream's BackendKeyData */
} pc__pg_cancel_target_t;

/** Allocate a fresh (pid, key) pair for a client and remember the target. */
void pc__pg_cancel_register(const pc__pg_cancel_target_t *t, uint32_t *pid, uint32_t *key);
void pc__pg_cancel_unregister(uint32_t pid);
/** Look up a client's (pid, key); false if unknown or the key does not match. */
bool pc__pg_cancel_lookup(uint32_t pid, uint32_t key, pc__pg_cancel_target_t *out) PC_WUR;

#endif
