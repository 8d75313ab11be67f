/*
 * The counter store against a real etcd: pc_cluster_start bootstraps a
 * one-member cluster (Debian's etcd on 127.0.0.1, free ports); counts noted
 * here appear in etcd, and counts another instance publishes (written to etcd
 * the way its publisher does) appear in pc_cluster_remote_count.
 * Waits poll with generous limits; nothing asserts on timing.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "cluster/cluster.h"
#include "cluster/etcd.h"
#include "cluster/sync.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static int free_port(void)
{
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t l = sizeof a;
    assert_int_equal(bind(s, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(getsockname(s, (struct sockaddr *)&a, &l), 0);
    close(s);
    return ntohs(a.sin_port);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static char base[64];

/* Value of key in etcd (malloc'd) or NULL. */
static char *etcd_get(const char *key, size_t *len)
{
    json_t *r = NULL;
    long st = pc__etcd_post(base, "/v3/kv/range",
                            json_pack("{s:o}", "key", pc__etcd_b64(key, strlen(key))), &r, 5000);
    char *v = NULL;
    if (st == 200)
        v = pc__etcd_unb64(json_object_get(json_array_get(json_object_get(r, "kvs"), 0), "value"),
                           len);
    json_decref(r);
    return v;
}

static void test_publish_and_watch(void **state)
{
    (void)state;
    char dir[] = "/tmp/pc-cluster-store-XXXXXX";
    assert_non_null(mkdtemp(dir));
    int cport = free_port(), pport = free_port();
    char yaml[1024];
    snprintf(yaml, sizeof yaml,
             "control_plane: {config_dir: .}\ncluster:\n  enabled: true\n  advertise_address: "
             "127.0.0.1\n"
             "  discovery: {mode: static, peers: [127.0.0.1]}\n"
             "  client_port: %d\n  peer_port: %d\n  data_dir: %s/etcd\n",
             cport, pport, dir);
    pc_config_t cfg;
    char err[512];
    bool loaded =
        pc_config_load_yaml(yaml, strlen(yaml), "test", dir, false, &cfg, err, sizeof err);
    if (!loaded) fprintf(stderr, "%s\n", err);
    assert_true(loaded);
    snprintf(base, sizeof base, "http://127.0.0.1:%d", cport);

    double t0 = now_s();
    pc_cluster_t *c = pc_cluster_start(&cfg);
    assert_non_null(c);
    pc_cluster_status_t st;
    for (int i = 0; i < 600; i++) { /* up to 60 s */
        pc_cluster_get_status(c, &st);
        if (!strcmp(st.role, "leader") && st.members == 1) break;
        usleep(100 * 1000);
    }
    assert_string_equal(st.role, "leader");
    assert_false(st.degraded);
    printf("# single member up after %.2fs\n", now_s() - t0);

    /* This instance's accesses reach etcd under its member's key. */
    pc_cluster_counts_note("alice\x1fsensitive-bucket", 3);
    const char *own = PC__CLUSTER_COUNTS_PREFIX "pc-127.0.0.1/alice\x1fsensitive-bucket";
    char *v = NULL;
    size_t vlen = 0;
    for (int i = 0; i < 300 && !v; i++) {
        v = etcd_get(own, &vlen);
        if (!v) usleep(100 * 1000);
    }
    assert_non_null(v);
    pc__cluster_buckets_t b;
    assert_true(pc__cluster_buckets_decode(v, vlen, &b));
    assert_int_equal(pc__cluster_buckets_sum(&b, (int64_t)time(NULL), PC_CLUSTER_LAST_MINUTE), 3);
    free(v);
    /* Own counts are never counted as remote. */
    assert_int_equal(pc_cluster_remote_count("alice\x1fsensitive-bucket", PC_CLUSTER_LAST_MINUTE),
                     0);

    /* Another instance publishes 4 accesses: the watch makes them visible here. */
    memset(&b, 0, sizeof b);
    pc__cluster_buckets_add(&b, (int64_t)time(NULL), 4);
    char text[PC__CLUSTER_VALUE_MAX];
    size_t n = pc__cluster_buckets_encode(&b, (int64_t)time(NULL), text, sizeof text);
    const char *other = PC__CLUSTER_COUNTS_PREFIX "pc-127.0.0.9/alice\x1fsensitive-bucket";
    double tp = now_s();
    long put = pc__etcd_post(base, "/v3/kv/put",
                             json_pack("{s:o,s:o}", "key", pc__etcd_b64(other, strlen(other)),
                                       "value", pc__etcd_b64(text, n)),
                             NULL, 5000);
    assert_int_equal(put, 200);
    uint32_t seen = 0;
    for (int i = 0; i < 30000 && seen != 4; i++) {
        seen = pc_cluster_remote_count("alice\x1fsensitive-bucket", PC_CLUSTER_LAST_MINUTE);
        if (seen != 4) usleep(1000);
    }
    assert_int_equal(seen, 4);
    printf("# remote count visible %.1f ms after the put returned\n", (now_s() - tp) * 1000);
    assert_int_equal(pc_cluster_remote_count("alice\x1fsensitive-bucket", PC_CLUSTER_LAST_HOUR), 4);
    assert_int_equal(pc_cluster_remote_count("bob\x1fsensitive-bucket", PC_CLUSTER_LAST_MINUTE), 0);

    /* Its key deleted: gone from the replica. */
    long del =
        pc__etcd_post(base, "/v3/kv/deleterange",
                      json_pack("{s:o}", "key", pc__etcd_b64(other, strlen(other))), NULL, 5000);
    assert_int_equal(del, 200);
    for (int i = 0; i < 30000 && seen != 0; i++) {
        seen = pc_cluster_remote_count("alice\x1fsensitive-bucket", PC_CLUSTER_LAST_MINUTE);
        if (seen) usleep(1000);
    }
    assert_int_equal(seen, 0);

    /* Cache: a local put reaches etcd; another instance's entry reaches get(). */
    assert_true(pc_cluster_cache_put("bq", "job-1", "owner=alice", 11, 600));
    const char *ck = PC__CLUSTER_CACHE_PREFIX "bq/job-1";
    v = NULL;
    for (int i = 0; i < 300 && !v; i++) {
        v = etcd_get(ck, &vlen);
        if (!v) usleep(100 * 1000);
    }
    assert_non_null(v);
    assert_non_null(strstr(v, ":owner=alice"));
    free(v);
    char wire[64];
    int wl = snprintf(wire, sizeof wire, "%llu:owner=bob",
                      (unsigned long long)(time(NULL) + 600) * 1000ull);
    const char *ok2 = PC__CLUSTER_CACHE_PREFIX "bq/job-2";
    assert_int_equal(pc__etcd_post(base, "/v3/kv/put",
                                   json_pack("{s:o,s:o}", "key", pc__etcd_b64(ok2, strlen(ok2)),
                                             "value", pc__etcd_b64(wire, (size_t)wl)),
                                   NULL, 5000),
                     200);
    char *got = NULL;
    for (int i = 0; i < 3000 && !got; i++) {
        got = pc_cluster_cache_get("bq", "job-2", &vlen);
        if (!got) usleep(10 * 1000);
    }
    assert_non_null(got);
    assert_string_equal(got, "owner=bob");
    free(got);

    /* Leaving as the only member stops etcd and wipes the data dir. */
    pc_cluster_leave(c);
    char member[600];
    snprintf(member, sizeof member, "%s/etcd/member", dir);
    struct stat sb;
    assert_int_not_equal(stat(member, &sb), 0);
    pc_config_free(&cfg);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_publish_and_watch),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
