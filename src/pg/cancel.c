/* Cancel map; see pg_int.h. */
#include "pg/pg_int.h"

#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <string.h>

#define SHARDS 16

typedef struct entry {
    struct entry *next;
    uint32_t pid, key;
    pc__pg_cancel_target_t target;
} entry_t;

static struct shard {
    pthread_mutex_t mu;
    entry_t *head;
} shards[SHARDS] = {
#define S                                                                                          \
    {                                                                                              \
        PTHREAD_MUTEX_INITIALIZER, NULL                                                            \
    }
    S, S, S, S, S, S, S, S, S, S, S, S, S, S, S, S,
#undef S
};

static uint32_t random_u32(void)
{
    uint32_t v;
    if (RAND_bytes((unsigned char *)&v, sizeof v) != 1) {
        /* The cancel key guards against cancelling other users' queries:
         * without a CSPRNG we must not hand out guessable keys. */
        PC_BUG_ON(1);
    }
    return v;
}

static bool pid_in_use(struct shard *sh, uint32_t pid)
{
    for (entry_t *e = sh->head; e; e = e->next)
        if (e->pid == pid) return true;
    return false;
}

void pc__pg_cancel_register(const pc__pg_cancel_target_t *t, uint32_t *pid, uint32_t *key)
{
    entry_t *e = pc_xmalloc(sizeof *e);
    e->target = *t;
    e->key = random_u32();
    for (;;) {
        /* Positive 31-bit pids, like PostgreSQL's, and unique among live sessions. */
        e->pid = (random_u32() & 0x7fffffffu) | 1u;
        struct shard *sh = &shards[e->pid % SHARDS];
        pthread_mutex_lock(&sh->mu);
        if (!pid_in_use(sh, e->pid)) {
            e->next = sh->head;
            sh->head = e;
            pthread_mutex_unlock(&sh->mu);
            break;
        }
        pthread_mutex_unlock(&sh->mu);
    }
    *pid = e->pid;
    *key = e->key;
}

void pc__pg_cancel_unregister(uint32_t pid)
{
    struct shard *sh = &shards[pid % SHARDS];
    entry_t *dead = NULL;
    pthread_mutex_lock(&sh->mu);
    for (entry_t **pp = &sh->head; *pp; pp = &(*pp)->next) {
        if ((*pp)->pid == pid) {
            dead = *pp;
            *pp = dead->next;
            break;
        }
    }
    pthread_mutex_unlock(&sh->mu);
    free(dead);
}

bool pc__pg_cancel_lookup(uint32_t pid, uint32_t key, pc__pg_cancel_target_t *out)
{
    struct shard *sh = &shards[pid % SHARDS];
    bool found = false;
    pthread_mutex_lock(&sh->mu);
    for (entry_t *e = sh->head; e; e = e->next) {
        if (e->pid == pid) {
            /* constant-time compare: the key is a secret */
            if (CRYPTO_memcmp(&e->key, &key, sizeof key) == 0) {
                *out = e->target;
                found = true;
            }
            break;
        }
    }
    pthread_mutex_unlock(&sh->mu);
    return found;
}
