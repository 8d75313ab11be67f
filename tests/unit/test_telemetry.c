/* Telemetry: OTLP JSON encoding of a collection, cgroup memory-limit parsing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "telemetry/telemetry.h"

#include <jansson.h>
#include <string.h>

static const pc_telemetry_opts_t OPTS = {
    .otlp_endpoint = "http://127.0.0.1:4318", .interval_ms = 1000, .instance = "node-1",
    .version = "9.8.7"};

static json_t *encode(const pc_metric_samples_t *s)
{
    char *text = pc__telemetry_encode(s, &OPTS, 1000, 2000);
    assert_non_null(text);
    json_error_t e;
    json_t *root = json_loads(text, 0, &e);
    free(text);
    assert_non_null(root);
    return root;
}

static json_t *metrics_of(json_t *root)
{
    json_t *rm = json_array_get(json_object_get(root, "resourceMetrics"), 0);
    json_t *sm = json_array_get(json_object_get(rm, "scopeMetrics"), 0);
    return json_object_get(sm, "metrics");
}

static const char *attr(json_t *attrs, const char *key)
{
    size_t i;
    json_t *kv;
    json_array_foreach(attrs, i, kv)
    {
        if (strcmp(json_string_value(json_object_get(kv, "key")), key) == 0)
            return json_string_value(
                json_object_get(json_object_get(kv, "value"), "stringValue"));
    }
    return NULL;
}

static void test_resource_and_scope(void **state)
{
    pc_metric_samples_t s = {0};
    json_t *root = encode(&s);
    json_t *rm = json_array_get(json_object_get(root, "resourceMetrics"), 0);
    json_t *ra = json_object_get(json_object_get(rm, "resource"), "attributes");
    assert_string_equal(attr(ra, "service.name"), "portcullis-connector");
    assert_string_equal(attr(ra, "service.version"), "9.8.7");
    assert_string_equal(attr(ra, "service.instance.id"), "node-1");
    json_t *scope = json_object_get(json_array_get(json_object_get(rm, "scopeMetrics"), 0), "scope");
    assert_string_equal(json_string_value(json_object_get(scope, "name")), "portcullis");
    assert_int_equal(json_array_size(metrics_of(root)), 0);
    json_decref(root);
}

static void test_counter_gauge_families(void **state)
{
    pc_metric_sample_t items[] = {
        {.name = "x_total", .help = "X.", .labels = "listener=\"a\\\"b\",k=\"v\"",
         .type = PC_METRIC_COUNTER, .value = 5},
        {.name = "x_total", .help = "X.", .labels = "listener=\"c\"", .type = PC_METRIC_COUNTER,
         .value = 9000000000LL},
        {.name = "mem_bytes", .help = "Mem.", .type = PC_METRIC_GAUGE, .value = -3},
        {.name = "load_percent", .help = "Load.", .type = PC_METRIC_GAUGE, .is_double = true,
         .dvalue = 12.5},
    };
    pc_metric_samples_t s = {.items = items, .n = PC_ARRAY_LEN(items)};
    json_t *root = encode(&s);
    json_t *ms = metrics_of(root);
    assert_int_equal(json_array_size(ms), 3);

    json_t *x = json_array_get(ms, 0);
    assert_string_equal(json_string_value(json_object_get(x, "name")), "x_total");
    assert_string_equal(json_string_value(json_object_get(x, "description")), "X.");
    json_t *sum = json_object_get(x, "sum");
    assert_non_null(sum);
    assert_true(json_is_true(json_object_get(sum, "isMonotonic")));
    assert_int_equal(json_integer_value(json_object_get(sum, "aggregationTemporality")), 2);
    json_t *dps = json_object_get(sum, "dataPoints");
    assert_int_equal(json_array_size(dps), 2);
    json_t *p0 = json_array_get(dps, 0);
    assert_string_equal(json_string_value(json_object_get(p0, "asInt")), "5");
    assert_string_equal(json_string_value(json_object_get(p0, "startTimeUnixNano")), "1000");
    assert_string_equal(json_string_value(json_object_get(p0, "timeUnixNano")), "2000");
    json_t *a0 = json_object_get(p0, "attributes");
    assert_string_equal(attr(a0, "listener"), "a\"b"); /* Prometheus escape undone */
    assert_string_equal(attr(a0, "k"), "v");
    json_t *p1 = json_array_get(dps, 1);
    assert_string_equal(json_string_value(json_object_get(p1, "asInt")), "9000000000");

    json_t *mem = json_array_get(ms, 1);
    assert_string_equal(json_string_value(json_object_get(mem, "unit")), "By");
    json_t *g = json_object_get(mem, "gauge");
    assert_non_null(g);
    assert_null(json_object_get(g, "isMonotonic"));
    json_t *gp = json_array_get(json_object_get(g, "dataPoints"), 0);
    assert_string_equal(json_string_value(json_object_get(gp, "asInt")), "-3");
    assert_int_equal(json_array_size(json_object_get(gp, "attributes")), 0);

    json_t *load = json_array_get(ms, 2);
    assert_string_equal(json_string_value(json_object_get(load, "unit")), "%");
    json_t *lp = json_array_get(json_object_get(json_object_get(load, "gauge"), "dataPoints"), 0);
    assert_true(json_is_real(json_object_get(lp, "asDouble")));
    assert_true(json_real_value(json_object_get(lp, "asDouble")) == 12.5);
    json_decref(root);
}

static void test_histogram(void **state)
{
    static const double bounds[] = {0.001, 0.01, 0.1};
    uint64_t buckets[] = {2, 0, 1, 4};
    pc_metric_sample_t items[] = {{.name = "lat_seconds", .help = "Latency.",
                                   .labels = "stage=\"session\"", .type = PC_METRIC_HISTOGRAM,
                                   .n_bounds = 3, .bounds = bounds, .buckets = buckets,
                                   .count = 7, .sum = 3.25}};
    pc_metric_samples_t s = {.items = items, .n = 1};
    json_t *root = encode(&s);
    json_t *m = json_array_get(metrics_of(root), 0);
    assert_string_equal(json_string_value(json_object_get(m, "unit")), "s");
    json_t *h = json_object_get(m, "histogram");
    assert_non_null(h);
    assert_int_equal(json_integer_value(json_object_get(h, "aggregationTemporality")), 2);
    json_t *p = json_array_get(json_object_get(h, "dataPoints"), 0);
    assert_string_equal(json_string_value(json_object_get(p, "count")), "7");
    assert_true(json_real_value(json_object_get(p, "sum")) == 3.25);
    json_t *bc = json_object_get(p, "bucketCounts");
    json_t *eb = json_object_get(p, "explicitBounds");
    assert_int_equal(json_array_size(bc), 4);
    assert_int_equal(json_array_size(eb), 3);
    const char *want[] = {"2", "0", "1", "4"};
    for (size_t i = 0; i < 4; i++)
        assert_string_equal(json_string_value(json_array_get(bc, i)), want[i]);
    assert_true(json_real_value(json_array_get(eb, 1)) == 0.01);
    assert_string_equal(attr(json_object_get(p, "attributes"), "stage"), "session");
    json_decref(root);
}

static void test_collected_registry_encodes(void **state)
{
    /* The real path: registry -> collection -> OTLP, with the shared metric set. */
    pc_metrics_register_standard();
    pc_metrics_policy_eval_observe("pre_request", 30000);   /* 30 us */
    pc_metrics_policy_eval_observe("pre_request", 2000000); /* 2 ms */
    pc_metrics_request("block");
    pc_metric_samples_t s;
    pc_metrics_collect(&s);
    json_t *root = encode(&s);
    pc_metric_samples_free(&s);
    size_t i;
    json_t *m;
    bool saw_hist = false, saw_req = false;
    json_array_foreach(metrics_of(root), i, m)
    {
        const char *name = json_string_value(json_object_get(m, "name"));
        size_t j;
        json_t *p;
        if (strcmp(name, "portcullis_policy_evaluation_duration_seconds") == 0) {
            json_array_foreach(json_object_get(json_object_get(m, "histogram"), "dataPoints"), j,
                               p)
            {
                if (strcmp(attr(json_object_get(p, "attributes"), "stage"), "pre_request") != 0)
                    continue;
                saw_hist = true;
                assert_string_equal(json_string_value(json_object_get(p, "count")), "2");
            }
        }
        if (strcmp(name, "portcullis_requests_total") == 0) {
            json_array_foreach(json_object_get(json_object_get(m, "sum"), "dataPoints"), j, p)
            {
                if (strcmp(attr(json_object_get(p, "attributes"), "decision"), "block") == 0) {
                    saw_req = true;
                    assert_string_equal(json_string_value(json_object_get(p, "asInt")), "1");
                }
            }
        }
    }
    assert_true(saw_hist);
    assert_true(saw_req);
    json_decref(root);
}

static void test_memory_limit_parse(void **state)
{
    uint64_t v = 0;
    assert_true(pc__telemetry_parse_memory_limit("536870912\n", &v));
    assert_int_equal(v, 536870912u);
    assert_true(pc__telemetry_parse_memory_limit("1073741824", &v));
    assert_int_equal(v, 1073741824u);
    assert_false(pc__telemetry_parse_memory_limit("max\n", &v));                 /* v2 none */
    assert_false(pc__telemetry_parse_memory_limit("9223372036854771712\n", &v)); /* v1 none */
    assert_false(pc__telemetry_parse_memory_limit("", &v));
    assert_false(pc__telemetry_parse_memory_limit("0\n", &v));
    assert_false(pc__telemetry_parse_memory_limit("12abc\n", &v));
    assert_false(pc__telemetry_parse_memory_limit("99999999999999999999999\n", &v));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_resource_and_scope),
        cmocka_unit_test(test_counter_gauge_families),
        cmocka_unit_test(test_histogram),
        cmocka_unit_test(test_collected_registry_encodes),
        cmocka_unit_test(test_memory_limit_parse),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
