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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_same_series_same_pointer),
        cmocka_unit_test(test_add_set_get),
        cmocka_unit_test(test_render_groups_families),
        cmocka_unit_test(test_concurrent_updates),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
