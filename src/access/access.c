/* Sliding-window access counters; see access.h. */
#include "access/access.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SHARDS 64
#define SLOTS 60

typedef struct entry {
    struct entry *next;
    uint64_t hash;
    int64_t last_sec; /* newest second counted into the buckets */
    uint32_t sec_n[SLOTS];
    uint32_t min_n[SLOTS];
    uint64_t sum_min, sum_hour;
    char key[];
} entry_t;

typedef struct shard {
    pthread_mutex_t mu;
    entry_t **tab;
    size_t cap, len;
    char pad[64];
} shard_t;

static shard_t shards[SHARDS];
static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static _Atomic(pc_access_note_fn) note_hook;
static _Atomic(pc_access_remote_fn) remote_hook;

static void init_shards(void)
{
    for (size_t i = 0; i < SHARDS; i++)
        pthread_mutex_init(&shards[i].mu, NULL);
}

void pc_access_set_remote(pc_access_note_fn note, pc_access_remote_fn remote)
{
    atomic_store(&note_hook, note);
    atomic_store(&remote_hook, remote);
}

static uint64_t fnv1a(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (uint8_t)s[i]) * 1099511628211ull;
    return h;
}

static int64_t wall_sec(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return ts.tv_sec;
}

/* Moves the windows of e forward to now, clearing the buckets that fell out. */
static void advance(entry_t *e, int64_t now)
{
    if (now <= e->last_sec) return;
    int64_t d = now - e->last_sec;
    if (d >= SLOTS) {
        memset(e->sec_n, 0, sizeof e->sec_n);
        e->sum_min = 0;
    } else {
        for (int64_t t = e->last_sec + 1; t <= now; t++) {
            uint32_t *b = &e->sec_n[t % SLOTS];
            e->sum_min -= *b;
            *b = 0;
        }
    }
    int64_t old_m = e->last_sec / 60, now_m = now / 60;
    if (now_m - old_m >= SLOTS) {
        memset(e->min_n, 0, sizeof e->min_n);
        e->sum_hour = 0;
    } else {
        for (int64_t m = old_m + 1; m <= now_m; m++) {
            uint32_t *b = &e->min_n[m % SLOTS];
            e->sum_hour -= *b;
            *b = 0;
        }
    }
    e->last_sec = now;
}

static bool grow(shard_t *sh)
{
    size_t ncap = sh->cap ? sh->cap * 2 : 16;
    entry_t **nt = calloc(ncap, sizeof *nt);
    if (!nt) return false;
    for (size_t i = 0; i < sh->cap; i++) {
        entry_t *e = sh->tab[i];
        while (e) {
            entry_t *next = e->next;
            size_t j = e->hash & (ncap - 1);
            e->next = nt[j];
            nt[j] = e;
            e = next;
        }
    }
    free(sh->tab);
    sh->tab = nt;
    sh->cap = ncap;
    return true;
}

/* Shard locked. NULL when absent and !create, or out of memory. */
static entry_t *lookup(shard_t *sh, uint64_t h, const char *key, size_t klen, bool create,
                       int64_t now)
{
    if (sh->cap) {
        for (entry_t *e = sh->tab[h & (sh->cap - 1)]; e; e = e->next)
            if (e->hash == h && strcmp(e->key, key) == 0) return e;
    }
    if (!create) return NULL;
    if (sh->len + 1 > sh->cap / 4 * 3 && !grow(sh)) return NULL;
    entry_t *e = calloc(1, sizeof *e + klen + 1);
    if (!e) return NULL;
    memcpy(e->key, key, klen + 1);
    e->hash = h;
    e->last_sec = now;
    size_t j = h & (sh->cap - 1);
    e->next = sh->tab[j];
    sh->tab[j] = e;
    sh->len++;
    return e;
}

static void count(const char *user, const char *resource, int64_t now, bool hit,
                  pc_access_counts_t *out)
{
    pthread_once(&init_once, init_shards);
    if (now <= 0) now = wall_sec();
    char key[512];
    size_t ul = strnlen(user ? user : "", 255), rl = strnlen(resource ? resource : "", 255);
    memcpy(key, user ? user : "", ul);
    key[ul] = PC_ACCESS_KEY_SEP;
    memcpy(key + ul + 1, resource ? resource : "", rl);
    key[ul + 1 + rl] = '\0';
    size_t klen = ul + 1 + rl;
    uint64_t h = fnv1a(key, klen);
    shard_t *sh = &shards[(h >> 58) % SHARDS];
    out->last_minute = out->last_hour = 0;

    pthread_mutex_lock(&sh->mu);
    entry_t *e = lookup(sh, h, key, klen, hit, now);
    if (e) {
        advance(e, now);
        if (hit) {
            /* A clock stepping back counts into the newest bucket. */
            e->sec_n[e->last_sec % SLOTS]++;
            e->min_n[(e->last_sec / 60) % SLOTS]++;
            e->sum_min++;
            e->sum_hour++;
        }
        out->last_minute = e->sum_min;
        out->last_hour = e->sum_hour;
    } else if (hit) {
        /* Out of memory: still count this access (fail closed for limits). */
        out->last_minute = out->last_hour = 1;
    }
    pthread_mutex_unlock(&sh->mu);

    pc_access_note_fn note = atomic_load(&note_hook);
    if (hit && note) note(key, 1);
    pc_access_remote_fn remote = atomic_load(&remote_hook);
    if (remote) {
        out->last_minute += remote(key, PC_ACCESS_LAST_MINUTE);
        out->last_hour += remote(key, PC_ACCESS_LAST_HOUR);
    }
}

void pc_access_hit(const char *user, const char *resource, int64_t now_sec, pc_access_counts_t *out)
{
    count(user, resource, now_sec, true, out);
}

void pc_access_peek(const char *user, const char *resource, int64_t now_sec,
                    pc_access_counts_t *out)
{
    count(user, resource, now_sec, false, out);
}

void pc_access_reset(void)
{
    pthread_once(&init_once, init_shards);
    for (size_t i = 0; i < SHARDS; i++) {
        shard_t *sh = &shards[i];
        pthread_mutex_lock(&sh->mu);
        for (size_t j = 0; j < sh->cap; j++) {
            entry_t *e = sh->tab[j];
            while (e) {
                entry_t *next = e->next;
                free(e);
                e = next;
            }
        }
        free(sh->tab);
        sh->tab = NULL;
        sh->cap = sh->len = 0;
        pthread_mutex_unlock(&sh->mu);
    }
}
