/*
 * Metrics registry. Metrics live in an append-only list: registration takes a
 * mutex (registrants only), publishes the new node with a release store, and
 * collectors walk the list without any lock. So a worker that registers a
 * metric for a new listener never waits on a /metrics render, and an update is
 * one relaxed atomic add.
 */
#include "core/metrics.h"

#include "core/log.h"

#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

typedef enum { KIND_COUNTER, KIND_GAUGE, KIND_PROBE, KIND_PROBE_F64, KIND_HISTOGRAM } metric_kind_t;

struct pc_metric {
    _Atomic(struct pc_metric *) next;
    metric_kind_t kind;
    char *name;
    char *help;
    char *labels; /* NULL = none */
    _Atomic int64_t value;
    pc_metric_probe_fn probe;
    pc_metric_probe_f64_fn probe_f64;
    void *probe_arg;
    /* histograms */
    size_t n_bounds;
    double *bounds;
    _Atomic uint64_t *buckets; /* n_bounds + 1 */
    _Atomic uint64_t sum_bits; /* the double sum, updated by CAS */
};

static _Atomic(pc_metric_t *) registry_head;
static pc_metric_t *registry_tail; /* guarded by registry_lock */
static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;

static bool same_labels(const char *a, const char *b)
{
    return strcmp(a ? a : "", b ? b : "") == 0;
}

static pc_metric_t *first_metric(void)
{
    return atomic_load_explicit(&registry_head, memory_order_acquire);
}

static pc_metric_t *next_metric(const pc_metric_t *m)
{
    return atomic_load_explicit(&((pc_metric_t *)m)->next, memory_order_acquire);
}

/* Caller holds registry_lock. */
static pc_metric_t *find_locked(const char *name, const char *labels)
{
    for (pc_metric_t *m = first_metric(); m; m = next_metric(m)) {
        if (strcmp(m->name, name) == 0 && same_labels(m->labels, labels)) return m;
    }
    return NULL;
}

typedef struct reg_args {
    metric_kind_t kind;
    pc_metric_probe_fn probe;
    pc_metric_probe_f64_fn probe_f64;
    void *arg;
    const double *bounds;
    size_t n_bounds;
} reg_args_t;

static pc_metric_t *register_metric(const char *name, const char *help, const char *labels,
                                    const reg_args_t *a)
{
    pthread_mutex_lock(&registry_lock);
    pc_metric_t *m = find_locked(name, labels);
    if (m) {
        /* Same name + labels: the caller gets the existing series. A probe
         * re-registered (e.g. after a restart of its subsystem) takes the new
         * callback. */
        if (a->kind == m->kind && (a->kind == KIND_PROBE || a->kind == KIND_PROBE_F64)) {
            m->probe_arg = a->arg;
            m->probe = a->probe;
            m->probe_f64 = a->probe_f64;
        }
        pthread_mutex_unlock(&registry_lock);
        return m;
    }
    m = pc_xcalloc(1, sizeof *m);
    m->kind = a->kind;
    m->name = pc_xstrdup(name);
    m->help = pc_xstrdup(help ? help : "");
    m->labels = (labels && labels[0]) ? pc_xstrdup(labels) : NULL;
    m->probe = a->probe;
    m->probe_f64 = a->probe_f64;
    m->probe_arg = a->arg;
    if (a->kind == KIND_HISTOGRAM) {
        m->n_bounds = a->n_bounds;
        m->bounds = pc_xcalloc(a->n_bounds ? a->n_bounds : 1, sizeof *m->bounds);
        if (a->n_bounds) memcpy(m->bounds, a->bounds, a->n_bounds * sizeof *m->bounds);
        m->buckets = pc_xcalloc(a->n_bounds + 1, sizeof *m->buckets);
        for (size_t i = 0; i <= a->n_bounds; i++) atomic_init(&m->buckets[i], 0);
    }
    atomic_init(&m->sum_bits, 0); /* all-zero bits are 0.0 */
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
    return register_metric(name, help, labels, &(reg_args_t){.kind = KIND_COUNTER});
}

pc_metric_t *pc_metric_gauge(const char *name, const char *help, const char *labels)
{
    return register_metric(name, help, labels, &(reg_args_t){.kind = KIND_GAUGE});
}

void pc_metric_probe(const char *name, const char *help, const char *labels,
                     pc_metric_probe_fn fn, void *arg)
{
    (void)register_metric(name, help, labels,
                          &(reg_args_t){.kind = KIND_PROBE, .probe = fn, .arg = arg});
}

void pc_metric_probe_f64(const char *name, const char *help, const char *labels,
                         pc_metric_probe_f64_fn fn, void *arg)
{
    (void)register_metric(name, help, labels,
                          &(reg_args_t){.kind = KIND_PROBE_F64, .probe_f64 = fn, .arg = arg});
}

pc_metric_t *pc_metric_histogram(const char *name, const char *help, const char *labels,
                                 const double *bounds, size_t n_bounds)
{
    return register_metric(
        name, help, labels,
        &(reg_args_t){.kind = KIND_HISTOGRAM, .bounds = bounds, .n_bounds = n_bounds});
}

void pc_metric_add(pc_metric_t *m, int64_t delta)
{
    if (m) atomic_fetch_add_explicit(&m->value, delta, memory_order_relaxed);
}

void pc_metric_set(pc_metric_t *m, int64_t value)
{
    if (m) atomic_store_explicit(&m->value, value, memory_order_relaxed);
}

static double bits_to_double(uint64_t bits)
{
    double d;
    memcpy(&d, &bits, sizeof d);
    return d;
}

static uint64_t double_to_bits(double d)
{
    uint64_t bits;
    memcpy(&bits, &d, sizeof bits);
    return bits;
}

void pc_metric_observe(pc_metric_t *h, double v)
{
    if (!h || h->kind != KIND_HISTOGRAM || isnan(v)) return;
    size_t i = 0;
    while (i < h->n_bounds && v > h->bounds[i]) i++;
    atomic_fetch_add_explicit(&h->buckets[i], 1, memory_order_relaxed);
    uint64_t old = atomic_load_explicit(&h->sum_bits, memory_order_relaxed);
    while (!atomic_compare_exchange_weak_explicit(&h->sum_bits, &old,
                                                  double_to_bits(bits_to_double(old) + v),
                                                  memory_order_relaxed, memory_order_relaxed)) {
    }
}

int64_t pc_metric_get(const pc_metric_t *m)
{
    if (!m) return 0;
    pc_metric_t *mm = (pc_metric_t *)m;
    switch (m->kind) {
    case KIND_PROBE:
        return m->probe ? m->probe(m->probe_arg) : 0;
    case KIND_PROBE_F64:
        return m->probe_f64 ? (int64_t)m->probe_f64(m->probe_arg) : 0;
    case KIND_HISTOGRAM: {
        uint64_t n = 0;
        for (size_t i = 0; i <= m->n_bounds; i++)
            n += atomic_load_explicit(&mm->buckets[i], memory_order_relaxed);
        return (int64_t)n;
    }
    default:
        return atomic_load_explicit(&mm->value, memory_order_relaxed);
    }
}

/* ---------- collection ---------- */

static void sample_of(const pc_metric_t *m, pc_metric_sample_t *s)
{
    pc_metric_t *mm = (pc_metric_t *)m;
    memset(s, 0, sizeof *s);
    s->name = m->name;
    s->help = m->help;
    s->labels = m->labels;
    switch (m->kind) {
    case KIND_COUNTER:
        s->type = PC_METRIC_COUNTER;
        s->value = pc_metric_get(m);
        break;
    case KIND_GAUGE:
    case KIND_PROBE:
        s->type = PC_METRIC_GAUGE;
        s->value = pc_metric_get(m);
        break;
    case KIND_PROBE_F64:
        s->type = PC_METRIC_GAUGE;
        s->is_double = true;
        s->dvalue = m->probe_f64 ? m->probe_f64(m->probe_arg) : 0.0;
        break;
    case KIND_HISTOGRAM:
        s->type = PC_METRIC_HISTOGRAM;
        s->n_bounds = m->n_bounds;
        s->bounds = m->bounds;
        s->buckets = pc_xcalloc(m->n_bounds + 1, sizeof *s->buckets);
        for (size_t i = 0; i <= m->n_bounds; i++) {
            s->buckets[i] = atomic_load_explicit(&mm->buckets[i], memory_order_relaxed);
            s->count += s->buckets[i];
        }
        s->sum = bits_to_double(atomic_load_explicit(&mm->sum_bits, memory_order_relaxed));
        break;
    }
}

static bool name_seen_before(const pc_metric_t *fam)
{
    for (const pc_metric_t *p = first_metric(); p && p != fam; p = next_metric(p))
        if (strcmp(p->name, fam->name) == 0) return true;
    return false;
}

void pc_metrics_collect(pc_metric_samples_t *out)
{
    size_t cap = 64;
    out->n = 0;
    out->items = pc_xmalloc(cap * sizeof *out->items);
    /* Each family starts at its first registration; its later series are
     * pulled up behind it, so renderers see one contiguous run per name. */
    for (pc_metric_t *fam = first_metric(); fam; fam = next_metric(fam)) {
        if (name_seen_before(fam)) continue;
        for (pc_metric_t *m = fam; m; m = next_metric(m)) {
            if (strcmp(m->name, fam->name) != 0) continue;
            if (out->n == cap) {
                cap *= 2;
                out->items = pc_xrealloc(out->items, cap * sizeof *out->items);
            }
            sample_of(m, &out->items[out->n++]);
        }
    }
}

void pc_metric_samples_free(pc_metric_samples_t *s)
{
    if (!s) return;
    for (size_t i = 0; i < s->n; i++) free(s->items[i].buckets);
    free(s->items);
    s->items = NULL;
    s->n = 0;
}

/* ---------- Prometheus rendering ---------- */

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

/* Shortest text that reads back as the same double; +Inf/-Inf/NaN as Prometheus spells them. */
static void fmt_double(char *buf, size_t cap, double v)
{
    if (isnan(v)) {
        snprintf(buf, cap, "NaN");
        return;
    }
    if (isinf(v)) {
        snprintf(buf, cap, v > 0 ? "+Inf" : "-Inf");
        return;
    }
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(buf, cap, "%.*g", prec, v);
        if (strtod(buf, NULL) == v) return;
    }
}

static const char *type_name(pc_metric_type_t t)
{
    return t == PC_METRIC_COUNTER ? "counter" : t == PC_METRIC_GAUGE ? "gauge" : "histogram";
}

/* name{labels[,extra]} value */
static void out_series(outbuf_t *o, const char *name, const char *suffix, const char *labels,
                       const char *extra, const char *value)
{
    out_str(o, name);
    out_str(o, suffix);
    if (labels || extra) {
        out_str(o, "{");
        if (labels) out_str(o, labels);
        if (labels && extra) out_str(o, ",");
        if (extra) out_str(o, extra);
        out_str(o, "}");
    }
    out_str(o, " ");
    out_str(o, value);
    out_str(o, "\n");
}

static void out_histogram(outbuf_t *o, const pc_metric_sample_t *s)
{
    char le[64], num[64];
    uint64_t cum = 0;
    for (size_t i = 0; i <= s->n_bounds; i++) {
        cum += s->buckets[i];
        char bound[40];
        if (i < s->n_bounds)
            fmt_double(bound, sizeof bound, s->bounds[i]);
        else
            snprintf(bound, sizeof bound, "+Inf");
        snprintf(le, sizeof le, "le=\"%s\"", bound);
        snprintf(num, sizeof num, "%" PRIu64, cum);
        out_series(o, s->name, "_bucket", s->labels, le, num);
    }
    fmt_double(num, sizeof num, s->sum);
    out_series(o, s->name, "_sum", s->labels, NULL, num);
    snprintf(num, sizeof num, "%" PRIu64, s->count);
    out_series(o, s->name, "_count", s->labels, NULL, num);
}

char *pc_metrics_render_prometheus(void)
{
    pc_metric_samples_t all;
    pc_metrics_collect(&all);
    outbuf_t o = {0};
    out_append(&o, "", 0);
    for (size_t i = 0; i < all.n; i++) {
        const pc_metric_sample_t *s = &all.items[i];
        if (i == 0 || strcmp(all.items[i - 1].name, s->name) != 0) {
            out_str(&o, "# HELP ");
            out_str(&o, s->name);
            out_str(&o, " ");
            out_help(&o, s->help);
            out_str(&o, "\n# TYPE ");
            out_str(&o, s->name);
            out_str(&o, " ");
            out_str(&o, type_name(s->type));
            out_str(&o, "\n");
        }
        char num[40];
        if (s->type == PC_METRIC_HISTOGRAM) {
            out_histogram(&o, s);
            continue;
        }
        if (s->is_double)
            fmt_double(num, sizeof num, s->dvalue);
        else
            snprintf(num, sizeof num, "%" PRId64, s->value);
        out_series(&o, s->name, "", s->labels, NULL, num);
    }
    pc_metric_samples_free(&all);
    return o.p;
}

/* ---------- the connector's shared metric set ---------- */

/* Policy evaluation: a compiled policy set answers in microseconds; the top
 * buckets catch pathological policies running into their evaluation budget. */
static const double POLICY_EVAL_BOUNDS[] = {0.00001, 0.000025, 0.00005, 0.0001, 0.00025,
                                            0.0005,  0.001,    0.0025,  0.005,  0.01,
                                            0.025,   0.05,     0.1,     0.25,   1.0};

static const char *const DECISIONS[] = {"allow", "block", "mask", "other"};
static const char *const STAGES[] = {"session", "pre_request", "post_request", "other"};

static struct {
    pc_metric_t *requests[PC_ARRAY_LEN(DECISIONS)];
    pc_metric_t *policy_eval[PC_ARRAY_LEN(STAGES)];
    pc_metric_t *cp_connected, *cp_pings, *cluster_members;
    _Atomic uint64_t cp_last_contact_ns; /* monotonic; 0 = never */
} std_set;
static pthread_once_t std_once = PTHREAD_ONCE_INIT;

static double probe_cp_contact_age(void *arg)
{
    (void)arg;
    uint64_t last = atomic_load_explicit(&std_set.cp_last_contact_ns, memory_order_relaxed);
    if (last == 0) return -1.0;
    uint64_t now = pc_now_mono_ns();
    return now > last ? (double)(now - last) / 1e9 : 0.0;
}

static void register_standard_once(void)
{
    char labels[64];
    for (size_t i = 0; i < PC_ARRAY_LEN(DECISIONS); i++) {
        snprintf(labels, sizeof labels, "decision=\"%s\"", DECISIONS[i]);
        std_set.requests[i] = pc_metric_counter(
            "portcullis_requests_total", "Requests judged by the policies, by decision.", labels);
    }
    for (size_t i = 0; i < PC_ARRAY_LEN(STAGES); i++) {
        snprintf(labels, sizeof labels, "stage=\"%s\"", STAGES[i]);
        std_set.policy_eval[i] = pc_metric_histogram(
            "portcullis_policy_evaluation_duration_seconds",
            "Time to evaluate the active policies of one stage.", labels, POLICY_EVAL_BOUNDS,
            PC_ARRAY_LEN(POLICY_EVAL_BOUNDS));
    }
    std_set.cp_connected = pc_metric_gauge("portcullis_control_plane_connected",
                                           "1 while connected to the control plane.", NULL);
    std_set.cp_pings = pc_metric_counter("portcullis_control_plane_pings_received_total",
                                         "Pings received from the control plane.", NULL);
    pc_metric_probe_f64("portcullis_control_plane_last_contact_age_seconds",
                        "Seconds since the last message from the control plane; -1 = never.",
                        NULL, probe_cp_contact_age, NULL);
    std_set.cluster_members =
        pc_metric_gauge("portcullis_cluster_members",
                        "etcd cluster members this instance sees (0 when clustering is off).", NULL);
}

void pc_metrics_register_standard(void)
{
    pthread_once(&std_once, register_standard_once);
}

static size_t index_of(const char *const *names, size_t n, const char *v)
{
    for (size_t i = 0; i + 1 < n; i++)
        if (v && strcmp(names[i], v) == 0) return i;
    return n - 1; /* "other" */
}

void pc_metrics_request(const char *decision)
{
    pc_metrics_register_standard();
    pc_metric_add(std_set.requests[index_of(DECISIONS, PC_ARRAY_LEN(DECISIONS), decision)], 1);
}

void pc_metrics_policy_eval_observe(const char *stage, uint64_t duration_ns)
{
    pc_metrics_register_standard();
    pc_metric_observe(std_set.policy_eval[index_of(STAGES, PC_ARRAY_LEN(STAGES), stage)],
                      (double)duration_ns / 1e9);
}

void pc_metrics_cp_connected(bool connected)
{
    pc_metrics_register_standard();
    pc_metric_set(std_set.cp_connected, connected ? 1 : 0);
    if (connected) pc_metrics_cp_contact();
}

void pc_metrics_cp_contact(void)
{
    uint64_t now = pc_now_mono_ns();
    atomic_store_explicit(&std_set.cp_last_contact_ns, now ? now : 1, memory_order_relaxed);
}

void pc_metrics_cp_ping(void)
{
    pc_metrics_register_standard();
    pc_metric_add(std_set.cp_pings, 1);
    pc_metrics_cp_contact();
}

void pc_metrics_cluster_members(int64_t n)
{
    pc_metrics_register_standard();
    pc_metric_set(std_set.cluster_members, n);
}
