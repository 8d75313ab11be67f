/*
 * Metrics registry. Metrics live in an append-only list: registration takes a
 * mutex (registrants only), publishes the new node with a release store, and
 * the renderer walks the list without any lock. So a worker that registers a
 * metric for a new listener never waits on a /metrics render, and an update is
 * one relaxed atomic add.
 */
#include "core/metrics.h"

#include "core/log.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

typedef enum { METRIC_COUNTER, METRIC_GAUGE, METRIC_PROBE } metric_kind_t;

struct pc_metric {
    _Atomic(struct pc_metric *) next;
    metric_kind_t kind;
    char *name;
    char *help;
    char *labels; /* NULL or "" = none */
    _Atomic int64_t value;
    pc_metric_probe_fn probe;
    void *probe_arg;
};

static _Atomic(pc_metric_t *) registry_head;
static pc_metric_t *registry_tail; /* guarded by registry_lock */
static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;

static bool same_labels(const char *a, const char *b)
{
    return strcmp(a ? a : "", b ? b : "") == 0;
}

/* Caller holds registry_lock. */
static pc_metric_t *find_locked(const char *name, const char *labels)
{
    for (pc_metric_t *m = atomic_load_explicit(&registry_head, memory_order_acquire); m;
         m = atomic_load_explicit(&m->next, memory_order_acquire)) {
        if (strcmp(m->name, name) == 0 && same_labels(m->labels, labels)) return m;
    }
    return NULL;
}

static pc_metric_t *register_metric(metric_kind_t kind, const char *name, const char *help,
                                    const char *labels, pc_metric_probe_fn fn, void *arg)
{
    pthread_mutex_lock(&registry_lock);
    pc_metric_t *m = find_locked(name, labels);
    if (m) {
        /* Same name + labels: the caller gets the existing series. A probe
         * re-registered (e.g. after a restart of its subsystem) takes the new
         * callback. */
        if (kind == METRIC_PROBE && m->kind == METRIC_PROBE) {
            m->probe_arg = arg;
            m->probe = fn;
        }
        pthread_mutex_unlock(&registry_lock);
        return m;
    }
    m = pc_xcalloc(1, sizeof *m);
    m->kind = kind;
    m->name = pc_xstrdup(name);
    m->help = pc_xstrdup(help ? help : "");
    m->labels = (labels && labels[0]) ? pc_xstrdup(labels) : NULL;
    m->probe = fn;
    m->probe_arg = arg;
    atomic_init(&m->value, 0);
    atomic_init(&m->next, NULL);
    if (registry_tail)
        atomic_store_explicit(&registry_tail->next, m, memory_order_release);
    else
        atomic_store_explicit(&registry_head, m, memory_order_release);
    registry_tail = m;
    pthread_mutex_unlock(&registry_lock);
    return m;
}

pc_metric_t *pc_metric_counter(const char *name, const char *help, const char *labels)
{
    return register_metric(METRIC_COUNTER, name, help, labels, NULL, NULL);
}

pc_metric_t *pc_metric_gauge(const char *name, const char *help, const char *labels)
{
    return register_metric(METRIC_GAUGE, name, help, labels, NULL, NULL);
}

void pc_metric_probe(const char *name, const char *help, const char *labels,
                     pc_metric_probe_fn fn, void *arg)
{
    (void)register_metric(METRIC_PROBE, name, help, labels, fn, arg);
}

void pc_metric_add(pc_metric_t *m, int64_t delta)
{
    if (m) atomic_fetch_add_explicit(&m->value, delta, memory_order_relaxed);
}

void pc_metric_set(pc_metric_t *m, int64_t value)
{
    if (m) atomic_store_explicit(&m->value, value, memory_order_relaxed);
}

int64_t pc_metric_get(const pc_metric_t *m)
{
    if (!m) return 0;
    if (m->kind == METRIC_PROBE && m->probe) return m->probe(m->probe_arg);
    return atomic_load_explicit(&((pc_metric_t *)m)->value, memory_order_relaxed);
}

/* ---------- rendering ---------- */

typedef struct outbuf {
    char *p;
    size_t len, cap;
} outbuf_t;

static void out_append(outbuf_t *o, const char *s, size_t n)
{
    if (o->len + n + 1 > o->cap) {
        size_t cap = o->cap ? o->cap : 4096;
        while (o->len + n + 1 > cap) cap *= 2;
        o->p = pc_xrealloc(o->p, cap);
        o->cap = cap;
    }
    memcpy(o->p + o->len, s, n);
    o->len += n;
    o->p[o->len] = '\0';
}

static void out_str(outbuf_t *o, const char *s)
{
    out_append(o, s, strlen(s));
}

/* HELP text escapes backslash and newline (exposition format 0.0.4). */
static void out_help(outbuf_t *o, const char *s)
{
    for (; *s; s++) {
        if (*s == '\\')
            out_append(o, "\\\\", 2);
        else if (*s == '\n')
            out_append(o, "\\n", 2);
        else
            out_append(o, s, 1);
    }
}

static const char *type_name(metric_kind_t k)
{
    return k == METRIC_COUNTER ? "counter" : "gauge";
}

char *pc_metrics_render_prometheus(void)
{
    outbuf_t o = {0};
    out_append(&o, "", 0);
    /* Families are rendered in first-registration order with every series of
     * the same name grouped under one HELP/TYPE, as the format requires. */
    for (pc_metric_t *fam = atomic_load_explicit(&registry_head, memory_order_acquire); fam;
         fam = atomic_load_explicit(&fam->next, memory_order_acquire)) {
        bool first_of_name = true;
        for (pc_metric_t *p = atomic_load_explicit(&registry_head, memory_order_acquire);
             p != fam; p = atomic_load_explicit(&p->next, memory_order_acquire)) {
            if (strcmp(p->name, fam->name) == 0) {
                first_of_name = false;
                break;
            }
        }
        if (!first_of_name) continue;
        out_str(&o, "# HELP ");
        out_str(&o, fam->name);
        out_str(&o, " ");
        out_help(&o, fam->help);
        out_str(&o, "\n# TYPE ");
        out_str(&o, fam->name);
        out_str(&o, " ");
        out_str(&o, type_name(fam->kind));
        out_str(&o, "\n");
        for (pc_metric_t *m = fam; m; m = atomic_load_explicit(&m->next, memory_order_acquire)) {
            if (strcmp(m->name, fam->name) != 0) continue;
            char num[32];
            snprintf(num, sizeof num, " %" PRId64 "\n", pc_metric_get(m));
            out_str(&o, m->name);
            if (m->labels) {
                out_str(&o, "{");
                out_str(&o, m->labels);
                out_str(&o, "}");
            }
            out_str(&o, num);
        }
    }
    return o.p;
}
