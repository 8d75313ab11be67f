/*
 * Cluster-wide access counters: time buckets, the local table of accesses
 * noted by this instance, and the replica of the other instances' counts.
 *
 * Readers (workers) see the replica through an immutable snapshot swapped
 * with an atomic pointer. Reclamation is a two-counter grace period in the
 * style of userspace RCU: a reader bumps the counter of the current phase,
 * the writer flips the phase and waits for each counter to drain before it
 * frees the old snapshot. Readers never wait; only the watch thread does.
 */
#include "cluster/cluster_int.h"

#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NHEADS 1024u

/* ---- buckets ---------------------------------------------------------------- */

void pc__cluster_buckets_add(pc__cluster_buckets_t *b, int64_t now_sec, uint32_t n)
{
    int64_t m = now_sec / 60;
    unsigned si = (unsigned)(now_sec % PC__CLUSTER_SLOTS), mi = (unsigned)(m % PC__CLUSTER_SLOTS);
    if (b->sec_t[si] != now_sec) {
        b->sec_t[si] = now_sec;
        b->sec_n[si] = 0;
    }
    b->sec_n[si] += n;
    if (b->min_t[mi] != m) {
        b->min_t[mi] = m;
        b->min_n[mi] = 0;
    }
    b->min_n[mi] += n;
}

uint32_t pc__cluster_buckets_sum(const pc__cluster_buckets_t *b, int64_t now_sec,
                                 pc_cluster_window_t w)
{
    uint64_t sum = 0;
    if (w == PC_CLUSTER_LAST_MINUTE) {
        for (unsigned i = 0; i < PC__CLUSTER_SLOTS; i++)
            if (b->sec_t[i] > now_sec - 60 && b->sec_t[i] <= now_sec) sum += b->sec_n[i];
    } else {
        int64_t m = now_sec / 60;
        for (unsigned i = 0; i < PC__CLUSTER_SLOTS; i++)
            if (b->min_t[i] > m - 60 && b->min_t[i] <= m) sum += b->min_n[i];
    }
    return sum > UINT32_MAX ? UINT32_MAX : (uint32_t)sum;
}

static void merge_slot(int64_t *dt, uint32_t *dn, int64_t st, uint32_t sn)
{
    if (!st || st < *dt) return;
    if (st > *dt) {
        *dt = st;
        *dn = 0;
    }
    uint64_t v = (uint64_t)*dn + sn;
    *dn = v > UINT32_MAX ? UINT32_MAX : (uint32_t)v;
}

void pc__cluster_buckets_merge(pc__cluster_buckets_t *dst, const pc__cluster_buckets_t *src)
{
    for (unsigned i = 0; i < PC__CLUSTER_SLOTS; i++) {
        merge_slot(&dst->sec_t[i], &dst->sec_n[i], src->sec_t[i], src->sec_n[i]);
        merge_slot(&dst->min_t[i], &dst->min_n[i], src->min_t[i], src->min_n[i]);
    }
}

size_t pc__cluster_buckets_encode(const pc__cluster_buckets_t *b, int64_t now_sec, char *out,
                                  size_t cap)
{
    size_t pos = 0;
    int n = snprintf(out, cap, "S");
    pos = n > 0 ? (size_t)n : 0;
    for (unsigned i = 0; i < PC__CLUSTER_SLOTS && pos < cap; i++)
        if (b->sec_n[i] && b->sec_t[i] > now_sec - 60) {
            n = snprintf(out + pos, cap - pos, " %" PRId64 ":%" PRIu32, b->sec_t[i], b->sec_n[i]);
            if (n > 0) pos += (size_t)n;
        }
    if (pos < cap) {
        n = snprintf(out + pos, cap - pos, ";M");
        if (n > 0) pos += (size_t)n;
    }
    for (unsigned i = 0; i < PC__CLUSTER_SLOTS && pos < cap; i++)
        if (b->min_n[i] && b->min_t[i] > now_sec / 60 - 60) {
            n = snprintf(out + pos, cap - pos, " %" PRId64 ":%" PRIu32, b->min_t[i], b->min_n[i]);
            if (n > 0) pos += (size_t)n;
        }
    return pos < cap ? pos : cap - 1;
}

/* Parses a decimal number of at most 18 digits; advances *p. */
static bool parse_num(const char **p, const char *end, int64_t *out)
{
    const char *s = *p;
    int64_t v = 0;
    int digits = 0;
    while (s < end && *s >= '0' && *s <= '9' && digits < 18) {
        v = v * 10 + (*s - '0');
        s++;
        digits++;
    }
    if (!digits || (s < end && *s >= '0' && *s <= '9')) return false;
    *p = s;
    *out = v;
    return true;
}

static bool parse_section(const char **p, const char *end, char tag, int64_t *t, uint32_t *cnt)
{
    const char *s = *p;
    if (s >= end || *s != tag) return false;
    s++;
    while (s < end && *s == ' ') {
        s++;
        int64_t when, n;
        if (!parse_num(&s, end, &when) || s >= end || *s != ':') return false;
        s++;
        if (!parse_num(&s, end, &n) || n > UINT32_MAX || when == 0) return false;
        unsigned i = (unsigned)(when % PC__CLUSTER_SLOTS);
        merge_slot(&t[i], &cnt[i], when, (uint32_t)n);
    }
    *p = s;
    return true;
}

bool pc__cluster_buckets_decode(const char *s, size_t len, pc__cluster_buckets_t *b)
{
    memset(b, 0, sizeof *b);
    const char *p = s, *end = s + len;
    if (!parse_section(&p, end, 'S', b->sec_t, b->sec_n)) goto bad;
    if (p >= end || *p != ';') goto bad;
    p++;
    if (!parse_section(&p, end, 'M', b->min_t, b->min_n) || p != end) goto bad;
    return true;
bad:
    memset(b, 0, sizeof *b);
    return false;
}

/* ---- hash tables ---------------------------------------------------------------- */

typedef struct entry {
    struct entry *next;
    bool dirty;
    pc__cluster_buckets_t b;
    char key[]; /* for the remote map: "member\x1ekey" */
} entry_t;

uint32_t pc__cluster_hash(const char *s)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (uint8_t)*s) * 16777619u;
    return h;
}

static entry_t *find(entry_t **heads, const char *key, bool create)
{
    uint32_t h = pc__cluster_hash(key) % NHEADS;
    for (entry_t *e = heads[h]; e; e = e->next)
        if (!strcmp(e->key, key)) return e;
    if (!create) return NULL;
    size_t kl = strlen(key);
    entry_t *e = pc_xcalloc(1, sizeof *e + kl + 1);
    memcpy(e->key, key, kl + 1);
    e->next = heads[h];
    heads[h] = e;
    return e;
}

static void free_table(entry_t **heads)
{
    if (!heads) return;
    for (unsigned i = 0; i < NHEADS; i++)
        for (entry_t *e = heads[i], *n; e; e = n) {
            n = e->next;
            free(e);
        }
    free(heads);
}

static int64_t now_sec(void)
{
    return (int64_t)(pc_now_wall_ns() / 1000000000ull);
}

/* ---- local table ------------------------------------------------------------------- */

/* Striped like src/access: a worker noting an access locks only the stripe of
 * its key, and the publisher holds one stripe at a time while it encodes, so a
 * worker never waits for more than one stripe's worth of encoding. Head i is
 * guarded by stripe i % NSTRIPES (NHEADS is a multiple of NSTRIPES). */
#define NSTRIPES 64u
static pthread_mutex_t local_mu[NSTRIPES];
static pthread_once_t local_once = PTHREAD_ONCE_INIT;
static entry_t *local_heads[NHEADS];
static atomic_bool counts_on;

static void local_init(void)
{
    for (unsigned i = 0; i < NSTRIPES; i++)
        pthread_mutex_init(&local_mu[i], NULL);
}

static pthread_mutex_t *stripe_of(const char *key)
{
    return &local_mu[(pc__cluster_hash(key) % NHEADS) % NSTRIPES];
}

void pc__counts_enable(bool on)
{
    pthread_once(&local_once, local_init);
    atomic_store(&counts_on, on);
}

void pc_cluster_counts_note(const char *key, uint32_t n)
{
    if (!key || !atomic_load_explicit(&counts_on, memory_order_acquire)) return;
    int64_t t = now_sec();
    pthread_mutex_t *mu = stripe_of(key);
    pthread_mutex_lock(mu);
    entry_t *e = find(local_heads, key, true);
    pc__cluster_buckets_add(&e->b, t, n);
    e->dirty = true;
    pthread_mutex_unlock(mu);
}

void pc__counts_take_dirty(int64_t now, pc__counts_dirty_fn fn, void *arg)
{
    /* Encode under the stripe locks, publish outside them: workers never wait on etcd. */
    typedef struct {
        char *key;
        char val[PC__CLUSTER_VALUE_MAX];
        size_t len;
    } item_t;
    size_t n = 0, cap = 0;
    item_t *items = NULL;
    pthread_once(&local_once, local_init);
    for (unsigned s = 0; s < NSTRIPES; s++) {
        pthread_mutex_lock(&local_mu[s]);
        for (unsigned i = s; i < NHEADS; i += NSTRIPES)
            for (entry_t *e = local_heads[i]; e; e = e->next) {
                if (!e->dirty) continue;
                if (n == cap) {
                    cap = cap ? cap * 2 : 16;
                    items = pc_xrealloc(items, cap * sizeof *items);
                }
                items[n].key = pc_xstrdup(e->key);
                items[n].len =
                    pc__cluster_buckets_encode(&e->b, now, items[n].val, sizeof items[n].val);
                e->dirty = false;
                n++;
            }
        pthread_mutex_unlock(&local_mu[s]);
    }
    for (size_t i = 0; i < n; i++) {
        fn(arg, items[i].key, items[i].val, items[i].len);
        free(items[i].key);
    }
    free(items);
}

void pc__counts_mark_dirty(const char *key)
{
    pthread_once(&local_once, local_init);
    pthread_mutex_t *mu = stripe_of(key);
    pthread_mutex_lock(mu);
    find(local_heads, key, true)->dirty = true;
    pthread_mutex_unlock(mu);
}

void pc__counts_restore_local(const char *key, const char *value, size_t vlen)
{
    pc__cluster_buckets_t b;
    if (!pc__cluster_buckets_decode(value, vlen, &b)) return;
    pthread_once(&local_once, local_init);
    pthread_mutex_t *mu = stripe_of(key);
    pthread_mutex_lock(mu);
    entry_t *e = find(local_heads, key, true);
    pc__cluster_buckets_merge(&e->b, &b);
    e->dirty = true;
    pthread_mutex_unlock(mu);
}

/* ---- remote replica ------------------------------------------------------------- */

static entry_t **remote_heads; /* watch thread only */
static _Atomic(entry_t **) snapshot;
static atomic_uint phase;
static atomic_uint readers[2];

void pc__counts_remote_reset(void)
{
    free_table(remote_heads);
    remote_heads = NULL;
}

char *pc__cluster_join(const char *a, char sep, const char *b)
{
    size_t al = strlen(a), bl = strlen(b);
    char *s = pc_xmalloc(al + bl + 2);
    memcpy(s, a, al);
    s[al] = sep;
    memcpy(s + al + 1, b, bl + 1);
    return s;
}

static char *member_key(const char *member, const char *key)
{
    return pc__cluster_join(member, '\x1e', key);
}

void pc__counts_remote_put(const char *member, const char *key, const char *value, size_t vlen)
{
    pc__cluster_buckets_t b;
    if (!pc__cluster_buckets_decode(value, vlen, &b)) return;
    if (!remote_heads) remote_heads = pc_xcalloc(NHEADS, sizeof *remote_heads);
    char *mk = member_key(member, key);
    find(remote_heads, mk, true)->b = b;
    free(mk);
}

void pc__counts_remote_del(const char *member, const char *key)
{
    if (!remote_heads) return;
    char *mk = member_key(member, key);
    uint32_t h = pc__cluster_hash(mk) % NHEADS;
    for (entry_t **pp = &remote_heads[h]; *pp; pp = &(*pp)->next)
        if (!strcmp((*pp)->key, mk)) {
            entry_t *e = *pp;
            *pp = e->next;
            free(e);
            break;
        }
    free(mk);
}

void pc__counts_remote_commit(void)
{
    entry_t **next = pc_xcalloc(NHEADS, sizeof *next);
    for (unsigned i = 0; remote_heads && i < NHEADS; i++)
        for (entry_t *e = remote_heads[i]; e; e = e->next) {
            const char *key = strchr(e->key, '\x1e');
            if (key) pc__cluster_buckets_merge(&find(next, key + 1, true)->b, &e->b);
        }
    entry_t **old = atomic_exchange(&snapshot, next);
    /* Grace period: a reader that may still hold old counted itself in one phase. */
    for (int k = 0; k < 2; k++) {
        unsigned p = atomic_fetch_xor(&phase, 1u);
        while (atomic_load(&readers[p]) != 0)
            sched_yield();
    }
    free_table(old);
}

uint32_t pc_cluster_remote_count(const char *key, pc_cluster_window_t window)
{
    if (!key || !atomic_load_explicit(&counts_on, memory_order_relaxed)) return 0;
    unsigned p = atomic_load(&phase) & 1u;
    atomic_fetch_add(&readers[p], 1u);
    entry_t **heads = atomic_load(&snapshot);
    uint32_t n = 0;
    if (heads) {
        entry_t *e = find(heads, key, false);
        if (e) n = pc__cluster_buckets_sum(&e->b, now_sec(), window);
    }
    atomic_fetch_sub(&readers[p], 1u);
    return n;
}
