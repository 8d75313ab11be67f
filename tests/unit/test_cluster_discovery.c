/* Cluster discovery: peer extraction from Kubernetes and ECS API answers (pure parsers). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "cluster/discovery.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S(lit) lit, sizeof(lit) - 1

static bool has(const pc__peers_t *p, const char *a)
{
    for (size_t i = 0; i < p->n; i++)
        if (!strcmp(p->addr[i], a)) return true;
    return false;
}

static const char endpoints[] =
    "{\"kind\":\"Endpoints\",\"apiVersion\":\"v1\",\"metadata\":{\"name\":\"pc\"},"
    "\"subsets\":[{\"addresses\":[{\"ip\":\"10.1.0.4\",\"targetRef\":{\"kind\":\"Pod\"}},"
    "{\"ip\":\"fd00::5\"},{\"ip\":\"10.1.0.4\"}],"
    "\"notReadyAddresses\":[{\"ip\":\"10.1.0.6\"},{\"ip\":\"pod.example\"},{\"ip\":7},"
    "{\"ip\":\"10.1.0.7/32\"}],\"ports\":[{\"port\":2380}]},"
    "{\"addresses\":[{\"ip\":\"10.2.0.1\"}]}]}";

static void test_k8s_endpoints(void **state)
{
    (void)state;
    pc__peers_t p = {.n = 0};
    assert_true(pc__k8s_parse_endpoints(S(endpoints), true, &p));
    /* Duplicates once; names, numbers and CIDRs are not addresses. */
    assert_int_equal(p.n, 4);
    assert_true(has(&p, "10.1.0.4") && has(&p, "fd00::5") && has(&p, "10.1.0.6") &&
                has(&p, "10.2.0.1"));
    pc__peers_t ready = {.n = 0};
    assert_true(pc__k8s_parse_endpoints(S(endpoints), false, &ready));
    assert_int_equal(ready.n, 3);
    assert_false(has(&ready, "10.1.0.6"));
    /* A Service without endpoints has no subsets: no peers, not an error. */
    pc__peers_t none = {.n = 0};
    assert_true(
        pc__k8s_parse_endpoints(S("{\"kind\":\"Endpoints\",\"metadata\":{}}"), true, &none));
    assert_int_equal(none.n, 0);
    assert_false(pc__k8s_parse_endpoints(S("{\"subsets\":{}}"), true, &none));
    assert_false(pc__k8s_parse_endpoints(S("[]"), true, &none));
    assert_false(pc__k8s_parse_endpoints(S("{\"subsets\":["), true, &none));
    assert_false(pc__k8s_parse_endpoints(S(""), true, &none));
    assert_int_equal(none.n, 0);
}

static void test_k8s_pods(void **state)
{
    (void)state;
    const char body[] =
        "{\"kind\":\"PodList\",\"items\":["
        "{\"metadata\":{\"name\":\"a\"},\"status\":{\"phase\":\"Running\",\"podIP\":\"10.0.0.1\"}},"
        "{\"metadata\":{\"name\":\"b\"},\"status\":{\"phase\":\"Pending\",\"podIP\":\"10.0.0.2\"}},"
        "{\"metadata\":{\"name\":\"c\"},\"status\":{\"phase\":\"Pending\"}},"
        "{\"metadata\":{\"name\":\"d\"},\"status\":{\"phase\":\"Succeeded\",\"podIP\":\"10.0.0.4\"}"
        "},"
        "{\"metadata\":{\"name\":\"e\"},\"status\":{\"phase\":\"Failed\",\"podIP\":\"10.0.0.5\"}},"
        "{\"metadata\":{\"name\":\"f\",\"deletionTimestamp\":\"2026-01-01T00:00:00Z\"},"
        "\"status\":{\"phase\":\"Running\",\"podIP\":\"10.0.0.6\"}},"
        "{\"metadata\":{\"name\":\"g\",\"deletionTimestamp\":null},"
        "\"status\":{\"phase\":\"Running\",\"podIP\":\"10.0.0.7\"}},"
        "{\"status\":{\"phase\":\"Running\",\"podIP\":\"\"}},"
        "\"junk\",{}]}";
    pc__peers_t p = {.n = 0};
    assert_true(pc__k8s_parse_pods(S(body), &p));
    assert_int_equal(p.n, 3);
    assert_true(has(&p, "10.0.0.1") && has(&p, "10.0.0.2") && has(&p, "10.0.0.7"));
    pc__peers_t none = {.n = 0};
    assert_true(pc__k8s_parse_pods(S("{\"kind\":\"PodList\",\"items\":[]}"), &none));
    assert_true(pc__k8s_parse_pods(S("{\"kind\":\"PodList\"}"), &none));
    assert_false(pc__k8s_parse_pods(S("{\"items\":\"x\"}"), &none));
    assert_int_equal(none.n, 0);
}

static void test_ecs_list_tasks(void **state)
{
    (void)state;
    char **arns, *next;
    size_t n;
    assert_true(pc__ecs_parse_list_tasks(
        S("{\"taskArns\":[\"arn:aws:ecs:us-west-2:1:task/pc/a\",\"\",5,"
          "\"arn:aws:ecs:us-west-2:1:task/pc/b\"],\"nextToken\":\"tok==\"}"),
        &arns, &n, &next));
    assert_int_equal(n, 2);
    assert_string_equal(arns[0], "arn:aws:ecs:us-west-2:1:task/pc/a");
    assert_string_equal(arns[1], "arn:aws:ecs:us-west-2:1:task/pc/b");
    assert_string_equal(next, "tok==");
    for (size_t i = 0; i < n; i++)
        free(arns[i]);
    free(arns);
    free(next);
    assert_true(pc__ecs_parse_list_tasks(S("{\"taskArns\":[]}"), &arns, &n, &next));
    assert_int_equal(n, 0);
    assert_null(next);
    free(arns);
    assert_false(pc__ecs_parse_list_tasks(S("{\"taskArns\":{}}"), &arns, &n, &next));
    assert_null(arns);
    assert_false(pc__ecs_parse_list_tasks(S("null"), &arns, &n, &next));
}

static const char describe[] =
    "{\"failures\":[{\"arn\":\"x\",\"reason\":\"MISSING\"}],\"tasks\":["
    /* awsvpc: the ENI attachment's detail */
    "{\"taskArn\":\"arn:t/1\",\"group\":\"service:portcullis\",\"lastStatus\":\"RUNNING\","
    "\"attachments\":[{\"type\":\"ElasticNetworkInterface\",\"details\":["
    "{\"name\":\"subnetId\",\"value\":\"subnet-1\"},"
    "{\"name\":\"privateIPv4Address\",\"value\":\"10.0.1.10\"}]}],"
    "\"containers\":[{\"networkInterfaces\":[{\"privateIpv4Address\":\"10.0.9.9\"}]}]},"
    /* no attachment: the container's network interface */
    "{\"taskArn\":\"arn:t/2\",\"group\":\"service:portcullis\",\"lastStatus\":\"PROVISIONING\","
    "\"attachments\":[],\"containers\":[{\"name\":\"side\"},"
    "{\"networkInterfaces\":[{\"attachmentId\":\"a\",\"privateIpv4Address\":\"10.0.1.11\"}]}]},"
    /* stopped, and one without any address yet */
    "{\"taskArn\":\"arn:t/3\",\"lastStatus\":\"STOPPED\",\"containers\":[{\"networkInterfaces\":"
    "[{\"privateIpv4Address\":\"10.0.1.12\"}]}]},"
    "{\"taskArn\":\"arn:t/4\",\"group\":\"family:pc\",\"lastStatus\":\"PENDING\"}]}";

static void test_ecs_describe_tasks(void **state)
{
    (void)state;
    pc__peers_t p = {.n = 0};
    char *svc = NULL;
    assert_true(pc__ecs_parse_describe_tasks(S(describe), &p, "arn:t/2", &svc));
    assert_int_equal(p.n, 2);
    assert_true(has(&p, "10.0.1.10") && has(&p, "10.0.1.11"));
    assert_string_equal(svc, "portcullis");
    free(svc);
    /* A task started outside a service has no "service:" group. */
    svc = NULL;
    pc__peers_t q = {.n = 0};
    assert_true(pc__ecs_parse_describe_tasks(S(describe), &q, "arn:t/4", &svc));
    assert_null(svc);
    assert_true(pc__ecs_parse_describe_tasks(S("{\"tasks\":[{\"taskArn\":\"arn:t/5\","
                                               "\"group\":\"service:\"}]}"),
                                             &q, "arn:t/5", &svc));
    assert_null(svc);
    assert_false(pc__ecs_parse_describe_tasks(S("{\"tasks\":1}"), &q, NULL, NULL));
}

static void test_ecs_credentials(void **state)
{
    (void)state;
    pc__aws_creds_t c;
    assert_true(pc__ecs_parse_credentials(
        S("{\"AccessKeyId\":\"ASIAXX\",\"SecretAccessKey\":\"s/e+c\",\"Token\":\"IQo=\","
          "\"Expiration\":\"2026-11-22T05:20:00Z\",\"RoleArn\":\"arn:aws:iam::1:role/r\"}"),
        &c));
    assert_string_equal(c.access_key, "ASIAXX");
    assert_string_equal(c.secret_key, "s/e+c");
    assert_string_equal(c.token, "IQo=");
    assert_int_equal(c.expires_unix, 1795324800); /* date -u -d 2026-11-22T05:20:00Z +%s */
    pc__aws_creds_clear(&c);
    assert_null(c.access_key);
    assert_true(pc__ecs_parse_credentials(S("{\"AccessKeyId\":\"A\",\"SecretAccessKey\":\"B\","
                                            "\"Expiration\":\"2026-11-22T05:20:00.123Z\"}"),
                                          &c));
    assert_null(c.token);
    assert_int_equal(c.expires_unix, 1795324800);
    pc__aws_creds_clear(&c);
    /* Long-term keys have no Expiration. */
    assert_true(
        pc__ecs_parse_credentials(S("{\"AccessKeyId\":\"A\",\"SecretAccessKey\":\"B\"}"), &c));
    assert_int_equal(c.expires_unix, 0);
    pc__aws_creds_clear(&c);
    assert_false(pc__ecs_parse_credentials(S("{\"AccessKeyId\":\"A\"}"), &c));
    assert_false(pc__ecs_parse_credentials(
        S("{\"AccessKeyId\":\"A\",\"SecretAccessKey\":\"B\",\"Expiration\":\"soon\"}"), &c));
    /* Header injection through a value that goes into a header line. */
    assert_false(pc__ecs_parse_credentials(
        S("{\"AccessKeyId\":\"A\",\"SecretAccessKey\":\"B\",\"Token\":\"x\\r\\nHost: evil\"}"),
        &c));
    assert_false(pc__ecs_parse_credentials(S("{\"code\":\"Error\",\"message\":\"no role\"}"), &c));
    assert_null(c.access_key);
}

static void test_ecs_task_metadata(void **state)
{
    (void)state;
    char *cluster, *arn, *svc;
    assert_true(pc__ecs_parse_task_metadata(
        S("{\"Cluster\":\"arn:aws:ecs:eu-west-1:1:cluster/pc\",\"TaskARN\":\"arn:t/1\","
          "\"ServiceName\":\"portcullis\",\"Containers\":[]}"),
        &cluster, &arn, &svc));
    assert_string_equal(cluster, "arn:aws:ecs:eu-west-1:1:cluster/pc");
    assert_string_equal(arn, "arn:t/1");
    assert_string_equal(svc, "portcullis");
    free(cluster);
    free(arn);
    free(svc);
    assert_true(pc__ecs_parse_task_metadata(S("{\"Cluster\":\"default\"}"), &cluster, &arn, &svc));
    assert_null(arn);
    assert_null(svc);
    free(cluster);
    assert_false(pc__ecs_parse_task_metadata(S("{\"TaskARN\":\"arn:t/1\"}"), &cluster, &arn, &svc));
    assert_null(arn);
}

static void test_peers_bounded(void **state)
{
    (void)state;
    pc__peers_t p = {.n = 0};
    char a[32];
    for (int i = 0; i < PC__PEERS_MAX; i++) {
        snprintf(a, sizeof a, "10.0.%d.%d", i / 200, i % 200);
        assert_true(pc__peers_add_ip(&p, a));
    }
    assert_false(pc__peers_add_ip(&p, "10.9.9.9"));
    assert_true(pc__peers_add_ip(&p, "10.0.0.0")); /* already there */
    assert_int_equal(p.n, PC__PEERS_MAX);
    assert_false(pc__peers_add_ip(&p, NULL));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_k8s_endpoints),   cmocka_unit_test(test_k8s_pods),
        cmocka_unit_test(test_ecs_list_tasks),  cmocka_unit_test(test_ecs_describe_tasks),
        cmocka_unit_test(test_ecs_credentials), cmocka_unit_test(test_ecs_task_metadata),
        cmocka_unit_test(test_peers_bounded),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
