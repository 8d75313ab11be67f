/*
 * Cluster cache (design §8): small values with a TTL, shared by every
 * instance. put() stores locally at once and queues the entry for the
 * publisher; the watch fills in other instances' entries. Values travel as
 * "<expires unix ms>:<bytes>" under /portcullis/k/<namespace>/<key>, on a
 * lease of the TTL, so etcd forgets them too.
 */
#include "cluster/cluster_int.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NHEADS 256u
#define MAX_ENTRIES 100000u /* bound memory: expired entries are swept first */

typedef struct centry {
    struct centry *next;
    uint64_t expires_ms; /* wall clock */
    uint32_t ttl_s;
    bool dirty;
    size_t len;
    char *value;
    char key[]; /* "<ns>/<key>" */
} centry_t;

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static centry_t *heads[NHEADS];
static size_t count;

static uint64_t wall_ms(void)
{
    return pc_now_wall_ns() / 1000000u;
}

static void free_entry(centry_t *e)
{
    if (!e) return;
    free(e->value);
    free(e);
}

/* Under mu: drop expired entries (all of them; called when the table is full). */
static void sweep(uint64_t now)
{
    for (unsigned i = 0; i < NHEADS; i++)
        for (centry_t **pp = &heads[i]; *pp;) {
            centry_t *e = *pp;
            if (e->expires_ms <= now && !e->dirty) {
                *pp = e->next;
                free_entry(e);
                count--;
            } else {
                pp = &e->next;
            }
        }
}

/* Under mu. */
static void store(const char *full, const char *value, size_t len, uint64_t expires, uint32_t ttl_s,
                  bool dirty)
{
    uint32_t h = pc__cluster_hash(full) % NHEADS;
    centry_t *e = heads[h];
    while (e && strcmp(e->key, full))
        e = e->next;
    if (!e) {
        if (count >= MAX_ENTRIES) sweep(wall_ms());
        if (count >= MAX_ENTRIES) return; /* full of live entries: a cache may forget */
        size_t kl = strlen(full);
        e = pc_xcalloc(1, sizeof *e + kl + 1);
        memcpy(e->key, full, kl + 1);
        e->next = heads[h];
        heads[h] = e;
        count++;
    }
    free(e->value);
    e->value = pc_xmalloc(len + 1);
    memcpy(e->value, value, len);
    e->value[len] = '\0';
    e->len = len;
    e->expires_ms = expires;
    e->ttl_s = ttl_s;
    e->dirty = dirty;
}

static char *full_key(const char *ns, const char *key)
{
    if (!ns || !key || !*ns || strchr(ns, '/')) return NULL;
    return pc__cluster_join(ns, '/', key);
}

bool pc_cluster_cache_put(const char *ns, const char *key, const void *value, size_t len,
                          uint32_t ttl_s)
{
    char *full = full_key(ns, key);
    if (!full || !ttl_s || len > PC_CLUSTER_CACHE_VALUE_MAX) {
        free(full);
        return false;
    }
    pthread_mutex_lock(&mu);
    store(full, value, len, wall_ms() + (uint64_t)ttl_s * 1000u, ttl_s, true);
    pthread_mutex_unlock(&mu);
    free(full);
    return true;
}

char *pc_cluster_cache_get(const char *ns, const char *key, size_t *len)
{
    char *full = full_key(ns, key);
    char *out = NULL;
    if (len) *len = 0;
    if (!full) return NULL;
    uint64_t now = wall_ms();
    pthread_mutex_lock(&mu);
    for (centry_t *e = heads[pc__cluster_hash(full) % NHEADS]; e; e = e->next)
        if (!strcmp(e->key, full)) {
            if (e->expires_ms > now) {
                out = pc_xmalloc(e->len + 1);
                memcpy(out, e->value, e->len + 1);
                if (len) *len = e->len;
            }
            break;
        }
    pthread_mutex_unlock(&mu);
    free(full);
    return out;
}

void pc__cache_take_dirty(pc__cache_dirty_fn fn, void *arg)
{
    typedef struct {
        char *key, *wire;
        size_t wlen;
        uint32_t ttl_s;
    } item_t;
    item_t *items = NULL;
    size_t n = 0, cap = 0;
    uint64_t now = wall_ms();
    pthread_mutex_lock(&mu);
    for (unsigned i = 0; i < NHEADS; i++)
        for (centry_t *e = heads[i]; e; e = e->next) {
            if (!e->dirty) continue;
            e->dirty = false;
            if (e->expires_ms <= now) continue;
            if (n == cap) {
                cap = cap ? cap * 2 : 8;
                items = pc_xrealloc(items, cap * sizeof *items);
            }
            items[n].key = pc_xstrdup(e->key);
            items[n].wire = pc_xmalloc(e->len + 32);
            int hl = snprintf(items[n].wire, 32, "%" PRIu64 ":", e->expires_ms);
            memcpy(items[n].wire + hl, e->value, e->len);
            items[n].wlen = (size_t)hl + e->len;
            items[n].ttl_s = (uint32_t)((e->expires_ms - now + 999) / 1000);
            n++;
        }
    pthread_mutex_unlock(&mu);
    for (size_t i = 0; i < n; i++) {
        fn(arg, items[i].key, items[i].wire, items[i].wlen, items[i].ttl_s);
        free(items[i].key);
        free(items[i].wire);
    }
    free(items);
}

void pc__cache_mark_dirty(const char *full)
{
    pthread_mutex_lock(&mu);
    for (centry_t *e = heads[pc__cluster_hash(full) % NHEADS]; e; e = e->next)
        if (!strcmp(e->key, full)) e->dirty = true;
    pthread_mutex_unlock(&mu);
}

bool pc__cache_apply(const char *full, const char *wire, size_t wlen, bool deleted)
{
    if (!strchr(full, '/')) return false;
    pthread_mutex_lock(&mu);
    if (deleted) {
        uint32_t h = pc__cluster_hash(full) % NHEADS;
        for (centry_t **pp = &heads[h]; *pp; pp = &(*pp)->next)
            if (!strcmp((*pp)->key, full)) {
                centry_t *e = *pp;
                if (!e->dirty) { /* a newer local put wins over an old delete */
                    *pp = e->next;
                    free_entry(e);
                    count--;
                }
                break;
            }
        pthread_mutex_unlock(&mu);
        return true;
    }
    pthread_mutex_unlock(&mu);
    /* "<expires ms>:<bytes>" */
    uint64_t exp = 0;
    size_t i = 0;
    while (i < wlen && i < 20 && wire[i] >= '0' && wire[i] <= '9')
        exp = exp * 10 + (uint64_t)(wire[i++] - '0');
    if (i == 0 || i >= wlen || wire[i] != ':' || wlen - i - 1 > PC_CLUSTER_CACHE_VALUE_MAX)
        return false;
    pthread_mutex_lock(&mu);
    store(full, wire + i + 1, wlen - i - 1, exp, 0, false);
    pthread_mutex_unlock(&mu);
    return true;
}
