/*
 * cluster_probe: one cluster instance (etcd member + counter store) without a
 * proxy, to measure how fast an access noted on one instance shows up on the
 * others. Used by bench/cluster.sh and tests/integration/test_cluster_counts.py.
 *
 *   cluster_probe CONFIG.yaml publish N INTERVAL_MS   note one access to "probe" N times
 *   cluster_probe CONFIG.yaml observe N               wait until N remote accesses are seen
 *   cluster_probe CONFIG.yaml cache-put N INTERVAL_MS put cache entries probe/job-1..N
 *   cluster_probe CONFIG.yaml cache-get N             wait until job-1..N are readable
 *
 * Prints JSON lines on stdout: {"event":"up"}, then {"sent":i,"t_ns":...} or
 * {"seen":i,"t_ns":...} (wall clock, same host), then {"event":"done"}. For
 * the cache, "seen" means the entry's value arrived intact (value-i).
 * Waits for "go" (a file named CONFIG.yaml.go) before publishing, so both
 * sides are up and watching first.
 */
#include "cluster/cluster.h"
#include "core/config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void emit(const char *what, unsigned i)
{
    printf("{\"%s\":%u,\"t_ns\":%llu}\n", what, i, (unsigned long long)pc_now_wall_ns());
    fflush(stdout);
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: %s CONFIG publish N INTERVAL_MS | CONFIG observe N\n", argv[0]);
        return 2;
    }
    pc_config_t cfg;
    char err[1024];
    if (!pc_config_load(argv[1], &cfg, err, sizeof err)) {
        fprintf(stderr, "%s\n", err);
        return 2;
    }
    bool cache = !strncmp(argv[2], "cache-", 6);
    bool publish = !strcmp(argv[2], cache ? "cache-put" : "publish");
    unsigned n = (unsigned)atoi(argv[3]);
    unsigned interval = argc > 4 ? (unsigned)atoi(argv[4]) : 300;
    pc_cluster_t *c = pc_cluster_start(&cfg);
    if (!c) {
        fprintf(stderr, "cluster.enabled is false\n");
        return 2;
    }
    pc_cluster_status_t st;
    for (int i = 0; i < 1200; i++) {
        pc_cluster_get_status(c, &st);
        if (!strcmp(st.role, "leader") || !strcmp(st.role, "follower")) break;
        usleep(100 * 1000);
    }
    printf("{\"event\":\"up\",\"role\":\"%s\"}\n", st.role);
    fflush(stdout);
    int rc = 0;
    if (publish) {
        char go[1100];
        snprintf(go, sizeof go, "%s.go", argv[1]);
        for (int i = 0; i < 1200 && access(go, F_OK) != 0; i++)
            usleep(100 * 1000);
        for (unsigned i = 1; i <= n; i++) {
            if (cache) {
                char key[32], val[32];
                snprintf(key, sizeof key, "job-%u", i);
                int vl = snprintf(val, sizeof val, "value-%u", i);
                if (!pc_cluster_cache_put("probe", key, val, (size_t)vl, 600)) rc = 1;
            } else {
                pc_cluster_counts_note("probe", 1);
            }
            emit("sent", i);
            usleep(interval * 1000);
        }
        usleep(500 * 1000); /* let the last batch go out */
    } else if (cache) {
        unsigned seen = 0;
        for (long spins = 0; seen < n && spins < 600000; spins++) {
            char key[32], want[32];
            snprintf(key, sizeof key, "job-%u", seen + 1);
            snprintf(want, sizeof want, "value-%u", seen + 1);
            size_t len = 0;
            char *v = pc_cluster_cache_get("probe", key, &len);
            if (v && len == strlen(want) && !memcmp(v, want, len))
                emit("seen", ++seen);
            else
                usleep(500);
            free(v);
        }
        rc = seen >= n ? 0 : 1;
    } else {
        uint32_t seen = 0;
        for (long spins = 0; seen < n && spins < 600000; spins++) {
            uint32_t now = pc_cluster_remote_count("probe", PC_CLUSTER_LAST_MINUTE);
            for (uint32_t k = seen + 1; k <= now; k++)
                emit("seen", k);
            if (now > seen) seen = now;
            usleep(500);
        }
        rc = seen >= n ? 0 : 1;
    }
    printf("{\"event\":\"done\"}\n");
    fflush(stdout);
    pc_cluster_leave(c);
    pc_config_free(&cfg);
    return rc;
}
