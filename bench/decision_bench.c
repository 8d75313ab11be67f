/* Cost of one policy decision on the worker thread: pc_decision_eval at
 * pre_request and post_request with five active policies (the set
 * bench/pgbench.sh POLICIES=1 uses), and the access counter alone.
 *
 *   build-release/decision_bench [iterations]
 */
#include "access/access.h"
#include "decision/decision.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *YAML =
    "policies:\n"
    "  - name: ddl\n    module: |\n      package formal.v2\n      import rego.v1\n"
    "      pre_request := {\"action\": \"block\", \"reason\": \"ddl\"} if "
    "input.query.command_type == \"ddl\"\n"
    "  - name: delete\n    module: |\n      package formal.v2\n      import rego.v1\n"
    "      pre_request := {\"action\": \"block\", \"reason\": \"delete\"} if {\n"
    "        input.query.statement_type == \"DELETE\"\n"
    "        not \"admins\" in input.user.groups\n      }\n"
    "  - name: ip\n    module: |\n      package formal.v2\n      import rego.v1\n"
    "      pre_request := {\"action\": \"block\", \"reason\": \"ip\"} if "
    "input.client_ip_address == \"10.9.9.9\"\n"
    "  - name: rate\n    module: |\n      package formal.v2\n      import rego.v1\n"
    "      pre_request := {\"action\": \"block\", \"reason\": \"rate\"} if "
    "input.user.access_count.last_minute > 100000000\n"
    "  - name: mask\n    module: |\n      package formal.v2\n      import rego.v1\n"
    "      post_request := {\"action\": \"mask\", \"type\": \"nullify\", \"columns\": "
    "[\"abalance\"]} if input.user.type == \"machine\"\n";

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 200000;
    char err[512];
    pc_decision_rego_install();
    pc_snapshot_t *s = pc_snapshot_load_yaml(YAML, strlen(YAML), "bench.yaml", 1, err, sizeof err);
    if (!s) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    char *groups[] = {"analysts"};
    pc_user_t u = {.username = "app",
                   .email = "bench@example.com",
                   .type = "machine",
                   .groups = groups,
                   .n_groups = 1};
    pc_resource_t r = {
        .name = "pg-bench", .technology = PC_TECH_POSTGRES, .hostname = "127.0.0.1", .port = 5432};
    const char *q = "SELECT abalance FROM pgbench_accounts WHERE aid = 4711;";
    pc_decision_column_t col = {.name = "abalance", .data_type = "int4", .type_oid = 23};
    pc_decision_ctx_t c = {.stage = PC_STAGE_PRE_REQUEST,
                           .snapshot = s,
                           .user = &u,
                           .resource = &r,
                           .client_ip = "127.0.0.1",
                           .db_name = "app",
                           .application = "pgbench",
                           .query = q,
                           .query_len = strlen(q),
                           .pg_stage = "simple",
                           .instance = "bench",
                           .session_id = 1};
    pc_decision_t d;
    for (int stage = 0; stage < 2; stage++) {
        c.stage = stage ? PC_STAGE_POST_REQUEST : PC_STAGE_PRE_REQUEST;
        c.columns = stage ? &col : NULL;
        c.n_columns = stage ? 1 : 0;
        for (long i = 0; i < 1000; i++)
            pc_decision_eval(&c, &d);
        double t0 = now_s();
        for (long i = 0; i < n; i++)
            pc_decision_eval(&c, &d);
        double t = now_s() - t0;
        printf("%-13s %8.2f us/decision (%s)\n", stage ? "post_request" : "pre_request",
               t / (double)n * 1e6, stage ? "1 policy has the rule, masks" : "4 policies");
    }
    /* pgbench -S in simple mode: a different text every time (classification
     * cache misses, libpg_query parses each one). */
    c.stage = PC_STAGE_PRE_REQUEST;
    c.columns = NULL;
    c.n_columns = 0;
    char qb[128];
    double t1 = now_s();
    for (long i = 0; i < n; i++) {
        int len = snprintf(qb, sizeof qb, "SELECT abalance FROM pgbench_accounts WHERE aid = %ld;",
                           (i * 7919) % 1000000 + 1);
        c.query = qb;
        c.query_len = (size_t)len;
        pc_decision_eval(&c, &d);
    }
    printf("%-13s %8.2f us/decision (unique query texts: parsed each time)\n", "pre_request",
           (now_s() - t1) / (double)n * 1e6);
    pc_access_counts_t ac;
    double t0 = now_s();
    for (long i = 0; i < n * 10; i++)
        pc_access_hit("app", "pg-bench", 0, &ac);
    printf("%-13s %8.3f us/hit\n", "access_count", (now_s() - t0) / (double)(n * 10) * 1e6);
    pc_snapshot_unref(s);
    return 0;
}
