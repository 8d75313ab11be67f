/*
 * OTLP JSON encoding of a metrics collection (ExportMetricsServiceRequest,
 * opentelemetry-proto metrics/v1, with the protobuf JSON mapping the OTLP/HTTP
 * specification prescribes: lowerCamelCase keys, 64-bit integers as decimal
 * strings, enums as integers).
 *
 * Counters become cumulative monotonic sums, gauges gauges, histograms
 * cumulative explicit-bucket histograms. A metric family (one name) is one
 * OTLP metric whose data points carry the Prometheus labels as attributes.
 */
#include "telemetry/telemetry.h"

#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#define AGGREGATION_TEMPORALITY_CUMULATIVE 2

static json_t *u64_string(uint64_t v)
{
    char buf[24];
    snprintf(buf, sizeof buf, "%" PRIu64, v);
    return json_string(buf);
}

static json_t *i64_string(int64_t v)
{
    char buf[24];
    snprintf(buf, sizeof buf, "%" PRId64, v);
    return json_string(buf);
}

/* jansson refuses non-finite reals; OTLP JSON has no spelling for them either. */
static json_t *finite_real(double v)
{
    return json_real(isfinite(v) ? v : 0.0);
}

static json_t *string_attr(const char *key, const char *value, size_t value_len)
{
    return json_pack("{s:s, s:{s:s%}}", "key", key, "value", "stringValue", value, value_len);
}

/*
 * Prometheus label text (`a="x",b="y\"z"`, escapes \\ \" \n) to OTLP
 * attributes. The text comes from our own registrations; anything malformed
 * ends the list rather than guessing.
 */
static json_t *label_attrs(const char *labels)
{
    json_t *arr = json_array();
    if (!labels) return arr;
    size_t cap = strlen(labels) + 1;
    char *key = pc_xmalloc(cap), *val = pc_xmalloc(cap);
    const char *p = labels;
    while (*p) {
        const char *eq = strchr(p, '=');
        if (!eq || eq == p || eq[1] != '"') break;
        memcpy(key, p, (size_t)(eq - p));
        key[eq - p] = '\0';
        size_t n = 0;
        for (p = eq + 2; *p && *p != '"'; p++) {
            if (*p == '\\' && p[1]) {
                p++;
                val[n++] = *p == 'n' ? '\n' : *p;
            } else {
                val[n++] = *p;
            }
        }
        if (*p != '"') break;
        json_array_append_new(arr, string_attr(key, val, n));
        p++;
        if (*p == ',') p++;
    }
    free(key);
    free(val);
    return arr;
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* UCUM units from the Prometheus naming conventions' unit suffixes. */
static const char *unit_of(const char *name)
{
    if (ends_with(name, "_seconds")) return "s";
    if (ends_with(name, "_bytes")) return "By";
    if (ends_with(name, "_percent")) return "%";
    return "1";
}

static json_t *data_point(const pc_metric_sample_t *s, json_t *start, json_t *now)
{
    json_t *dp = json_object();
    json_object_set_new(dp, "attributes", label_attrs(s->labels));
    if (s->type != PC_METRIC_GAUGE) json_object_set(dp, "startTimeUnixNano", start);
    json_object_set(dp, "timeUnixNano", now);
    switch (s->type) {
    case PC_METRIC_COUNTER:
        /* A counter that went below zero is a caller's bug; never report a decrease. */
        json_object_set_new(dp, "asInt", i64_string(s->value < 0 ? 0 : s->value));
        break;
    case PC_METRIC_GAUGE:
        if (s->is_double)
            json_object_set_new(dp, "asDouble", finite_real(s->dvalue));
        else
            json_object_set_new(dp, "asInt", i64_string(s->value));
        break;
    case PC_METRIC_HISTOGRAM: {
        json_object_set_new(dp, "count", u64_string(s->count));
        json_object_set_new(dp, "sum", finite_real(s->sum));
        json_t *counts = json_array(), *bounds = json_array();
        for (size_t i = 0; i <= s->n_bounds; i++)
            json_array_append_new(counts, u64_string(s->buckets[i]));
        for (size_t i = 0; i < s->n_bounds; i++)
            json_array_append_new(bounds, finite_real(s->bounds[i]));
        json_object_set_new(dp, "bucketCounts", counts);
        json_object_set_new(dp, "explicitBounds", bounds);
        break;
    }
    }
    return dp;
}

static json_t *metric_of(const pc_metric_sample_t *s, json_t **points)
{
    *points = json_array();
    json_t *m = json_pack("{s:s, s:s, s:s}", "name", s->name, "description", s->help, "unit",
                          unit_of(s->name));
    json_t *body = json_object();
    json_object_set_new(body, "dataPoints", *points);
    if (s->type != PC_METRIC_GAUGE)
        json_object_set_new(body, "aggregationTemporality",
                            json_integer(AGGREGATION_TEMPORALITY_CUMULATIVE));
    if (s->type == PC_METRIC_COUNTER) json_object_set_new(body, "isMonotonic", json_true());
    const char *kind = s->type == PC_METRIC_COUNTER ? "sum"
                       : s->type == PC_METRIC_GAUGE ? "gauge"
                                                    : "histogram";
    json_object_set_new(m, kind, body);
    return m;
}

static json_t *resource_attrs(const pc_telemetry_opts_t *o)
{
    const char *version = o->version ? o->version : "";
    const char *instance = o->instance ? o->instance : "";
    json_t *a = json_array();
    json_array_append_new(a, string_attr("service.name", "portcullis-connector",
                                         strlen("portcullis-connector")));
    json_array_append_new(a, string_attr("service.version", version, strlen(version)));
    json_array_append_new(a, string_attr("service.instance.id", instance, strlen(instance)));
    return a;
}

char *pc__telemetry_encode(const pc_metric_samples_t *s, const pc_telemetry_opts_t *o,
                           uint64_t start_ns, uint64_t now_ns)
{
    json_t *start = u64_string(start_ns), *now = u64_string(now_ns);
    json_t *metrics = json_array();
    json_t *points = NULL;
    for (size_t i = 0; i < s->n; i++) {
        const pc_metric_sample_t *x = &s->items[i];
        /* A family's series are adjacent; a type clash under one name (a
         * registration bug) starts a new metric rather than mixing kinds. */
        if (i == 0 || strcmp(s->items[i - 1].name, x->name) != 0 ||
            s->items[i - 1].type != x->type)
            json_array_append_new(metrics, metric_of(x, &points));
        json_array_append_new(points, data_point(x, start, now));
    }
    json_t *root = json_pack(
        "{s:[{s:{s:o}, s:[{s:{s:s, s:s}, s:o}]}]}", "resourceMetrics", "resource", "attributes",
        resource_attrs(o), "scopeMetrics", "scope", "name", "portcullis", "version",
        o->version ? o->version : "", "metrics", metrics);
    json_decref(start);
    json_decref(now);
    char *text = root ? json_dumps(root, JSON_COMPACT) : NULL;
    json_decref(root);
    return text;
}
