/* Metrics registry: identity of series, updates, Prometheus rendering. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "core/metrics.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

static void test_same_series_same_pointer(void **state)
{
    pc_metric_t *a = pc_metric_counter("t_requests_total", "Requests.", "listener=\"a\"");
    pc_metric_t *b = pc_metric_counter("t_requests_total", "Requests.", "listener=\"a\"");
    pc_metric_t *c = pc_metric_counter("t_requests_total", "Requests.", "listener=\"b\"");
    assert_ptr_equal(a, b);
    assert_ptr_not_equal(a, c);
    pc_metric_t *n1 = pc_metric_gauge("t_plain", "Plain.", NULL);
    pc_metric_t *n2 = pc_metric_gauge("t_plain", "Plain.", "");
    assert_ptr_equal(n1, n2);
}

static void test_add_set_get(void **state)
{
    pc_metric_t *m = pc_metric_counter("t_adds_total", "Adds.", NULL);
    pc_metric_add(m, 3);
    pc_metric_add(m, 4);
    assert_int_equal(pc_metric_get(m), 7);
    pc_metric_t *g = pc_metric_gauge("t_level", "Level.", NULL);
    pc_metric_set(g, -5);
    assert_int_equal(pc_metric_get(g), -5);
    pc_metric_add(NULL, 1); /* tolerated */
    assert_int_equal(pc_metric_get(NULL), 0);
}

static int64_t probe_fn(void *arg)
{
    return *(int64_t *)arg;
}

static void test_render_groups_families(void **state)
{
    pc_metric_t *x = pc_metric_counter("t_fam_total", "Family\nwith newline.", "k=\"1\"");
    pc_metric_gauge("t_other", "Other.", NULL);
    pc_metric_t *y = pc_metric_counter("t_fam_total", "Family\nwith newline.", "k=\"2\"");
    pc_metric_add(x, 11);
    pc_metric_add(y, 22);
    static int64_t v = 42;
    pc_metric_probe("t_probe", "Probe.", NULL, probe_fn, &v);

    char *text = pc_metrics_render_prometheus();
    assert_non_null(text);
    assert_non_null(strstr(text, "# HELP t_fam_total Family\\nwith newline.\n"));
    assert_non_null(strstr(text, "# TYPE t_fam_total counter\n"));
    /* Both series of the family follow its one TYPE line, before any other family. */
    const char *type = strstr(text, "# TYPE t_fam_total counter\n");
    const char *s1 = strstr(text, "t_fam_total{k=\"1\"} 11\n");
    const char *s2 = strstr(text, "t_fam_total{k=\"2\"} 22\n");
    const char *other = strstr(text, "# TYPE t_other gauge\n");
    assert_non_null(s1);
    assert_non_null(s2);
    assert_non_null(other);
    assert_true(type < s1 && s1 < s2 && s2 < other);
    /* Exactly one HELP line for the family. */
    const char *help = strstr(text, "# HELP t_fam_total");
    assert_null(strstr(help + 1, "# HELP t_fam_total"));
    assert_non_null(strstr(text, "# TYPE t_probe gauge\nt_probe 42\n"));
    free(text);
    v = 43;
    text = pc_metrics_render_prometheus();
    assert_non_null(strstr(text, "t_probe 43\n"));
    free(text);
}

#define THREADS 4
#define ITER 100000

static void *hammer(void *arg)
{
    pc_metric_t *m = pc_metric_counter("t_concurrent_total", "Concurrent adds.", NULL);
    for (int i = 0; i < ITER; i++) pc_metric_add(m, 1);
    /* Registration from many threads while others render. */
    char labels[32];
    snprintf(labels, sizeof labels, "t=\"%ld\"", (long)(intptr_t)arg);
    pc_metric_gauge("t_per_thread", "Per thread.", labels);
    return NULL;
}

static void test_concurrent_updates(void **state)
{
    pthread_t th[THREADS];
    for (intptr_t i = 0; i < THREADS; i++) pthread_create(&th[i], NULL, hammer, (void *)i);
    for (int r = 0; r < 20; r++) free(pc_metrics_render_prometheus());
    for (int i = 0; i < THREADS; i++) pthread_join(th[i], NULL);
    pc_metric_t *m = pc_metric_counter("t_concurrent_total", "Concurrent adds.", NULL);
    assert_int_equal(pc_metric_get(m), THREADS * ITER);
    char *text = pc_metrics_render_prometheus();
    for (int i = 0; i < THREADS; i++) {
        char line[64];
        snprintf(line, sizeof line, "t_per_thread{t=\"%d\"} 0\n", i);
        assert_non_null(strstr(text, line));
    }
    free(text);
}


static double probe_f64_fn(void *arg)
{
    return *(double *)arg;
}

static void test_histogram_render_and_collect(void **state)
{
    static const double bounds[] = {0.5, 1, 2.5};
    pc_metric_t *h = pc_metric_histogram("t_lat_seconds", "Latency.", "k=\"x\"", bounds, 3);
    assert_ptr_equal(h, pc_metric_histogram("t_lat_seconds", "Latency.", "k=\"x\"", bounds, 3));
    pc_metric_observe(h, 0.25); /* le 0.5 */
    pc_metric_observe(h, 0.5);  /* le 0.5: bounds are inclusive */
    pc_metric_observe(h, 2.0);  /* le 2.5 */
    pc_metric_observe(h, 100);  /* +Inf */
    pc_metric_observe(NULL, 1); /* tolerated */
    assert_int_equal(pc_metric_get(h), 4);

    char *text = pc_metrics_render_prometheus();
    assert_non_null(strstr(text, "# TYPE t_lat_seconds histogram\n"
                                 "t_lat_seconds_bucket{k=\"x\",le=\"0.5\"} 2\n"
                                 "t_lat_seconds_bucket{k=\"x\",le=\"1\"} 2\n"
                                 "t_lat_seconds_bucket{k=\"x\",le=\"2.5\"} 3\n"
                                 "t_lat_seconds_bucket{k=\"x\",le=\"+Inf\"} 4\n"
                                 "t_lat_seconds_sum{k=\"x\"} 102.75\n"
                                 "t_lat_seconds_count{k=\"x\"} 4\n"));
    free(text);

    pc_metric_samples_t s;
    pc_metrics_collect(&s);
    bool found = false;
    for (size_t i = 0; i < s.n; i++) {
        if (strcmp(s.items[i].name, "t_lat_seconds") != 0) continue;
        found = true;
        assert_int_equal(s.items[i].type, PC_METRIC_HISTOGRAM);
        assert_int_equal(s.items[i].n_bounds, 3);
        assert_int_equal(s.items[i].buckets[0], 2);
        assert_int_equal(s.items[i].buckets[1], 0);
        assert_int_equal(s.items[i].buckets[2], 1);
        assert_int_equal(s.items[i].buckets[3], 1);
        assert_int_equal(s.items[i].count, 4);
        assert_true(s.items[i].sum == 102.75);
    }
    assert_true(found);
    pc_metric_samples_free(&s);
    pc_metric_samples_free(NULL);
}

static void test_f64_probe_and_families_adjacent(void **state)
{
    static double v = 37.5;
    pc_metric_probe_f64("t_ratio_percent", "Ratio.", NULL, probe_f64_fn, &v);
    pc_metric_counter("t_split_total", "Split.", "a=\"1\"");
    pc_metric_gauge("t_between", "Between.", NULL);
    pc_metric_counter("t_split_total", "Split.", "a=\"2\"");
    char *text = pc_metrics_render_prometheus();
    assert_non_null(strstr(text, "# TYPE t_ratio_percent gauge\nt_ratio_percent 37.5\n"));
    free(text);
    pc_metric_samples_t s;
    pc_metrics_collect(&s);
    size_t first = s.n, second = s.n;
    for (size_t i = 0; i < s.n; i++) {
        if (strcmp(s.items[i].name, "t_split_total") != 0) continue;
        if (first == s.n)
            first = i;
        else
            second = i;
    }
    assert_true(second == first + 1); /* one family, one contiguous run */
    for (size_t i = 0; i < s.n; i++)
        if (strcmp(s.items[i].name, "t_ratio_percent") == 0) {
            assert_true(s.items[i].is_double);
            assert_true(s.items[i].dvalue == 37.5);
        }
    pc_metric_samples_free(&s);
}

static void test_standard_set(void **state)
{
    pc_metrics_register_standard();
    pc_metrics_request("allow");
    pc_metrics_request("allow");
    pc_metrics_request("weird");
    pc_metrics_policy_eval_observe("session", 5000000); /* 5 ms */
    pc_metrics_cp_connected(true);
    pc_metrics_cp_ping();
    pc_metrics_cluster_members(3);
    char *text = pc_metrics_render_prometheus();
    assert_non_null(strstr(text, "portcullis_requests_total{decision=\"allow\"} 2\n"));
    assert_non_null(strstr(text, "portcullis_requests_total{decision=\"block\"} 0\n"));
    assert_non_null(strstr(text, "portcullis_requests_total{decision=\"other\"} 1\n"));
    assert_non_null(strstr(text, "portcullis_policy_evaluation_duration_seconds_bucket{stage=\"session\",le=\"0.0025\"} 0\n"));
    assert_non_null(strstr(text, "portcullis_policy_evaluation_duration_seconds_bucket{stage=\"session\",le=\"0.005\"} 1\n"));
    assert_non_null(strstr(text, "portcullis_policy_evaluation_duration_seconds_count{stage=\"pre_request\"} 0\n"));
    assert_non_null(strstr(text, "portcullis_control_plane_connected 1\n"));
    assert_non_null(strstr(text, "portcullis_control_plane_pings_received_total 1\n"));
    assert_non_null(strstr(text, "portcullis_cluster_members 3\n"));
    /* Contact just happened: the age is small and not the "never" value. */
    const char *age = strstr(text, "portcullis_control_plane_last_contact_age_seconds ");
    assert_non_null(age);
    assert_true(strtod(age + strlen("portcullis_control_plane_last_contact_age_seconds "), NULL) >= 0);
    free(text);
    pc_metrics_cp_connected(false);
    text = pc_metrics_render_prometheus();
    assert_non_null(strstr(text, "portcullis_control_plane_connected 0\n"));
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_same_series_same_pointer),
        cmocka_unit_test(test_add_set_get),
        cmocka_unit_test(test_render_groups_families),
        cmocka_unit_test(test_concurrent_updates),
        cmocka_unit_test(test_histogram_render_and_collect),
        cmocka_unit_test(test_f64_probe_and_families_adjacent),
        cmocka_unit_test(test_standard_set),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
