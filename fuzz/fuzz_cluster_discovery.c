/*
 * libFuzzer: the cluster discovery parsers, fed what a Kubernetes API server,
 * the ECS API, the container credentials endpoint or the task metadata
 * endpoint might answer. The first byte picks the parser.
 */
#include <arpa/inet.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/discovery.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Every peer must be a numeric address that fits and appears once. */
static void check(const pc__peers_t *p)
{
    unsigned char bin[16];
    if (p->n > PC__PEERS_MAX) abort();
    for (size_t i = 0; i < p->n; i++) {
        if (inet_pton(AF_INET, p->addr[i], bin) != 1 && inet_pton(AF_INET6, p->addr[i], bin) != 1)
            abort();
        for (size_t k = 0; k < i; k++)
            if (!strcmp(p->addr[i], p->addr[k])) abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    const char *body = (const char *)data + 1;
    size_t len = size - 1;
    pc__peers_t p = {.n = 0};
    switch (data[0] % 6) {
    case 0:
        (void)pc__k8s_parse_endpoints(body, len, data[0] & 0x80, &p);
        break;
    case 1:
        (void)pc__k8s_parse_pods(body, len, &p);
        break;
    case 2: {
        char **arns, *next;
        size_t n;
        if (pc__ecs_parse_list_tasks(body, len, &arns, &n, &next)) {
            for (size_t i = 0; i < n; i++)
                free(arns[i]);
            free(arns);
            free(next);
        }
        break;
    }
    case 3: {
        char *svc = NULL;
        (void)pc__ecs_parse_describe_tasks(body, len, &p, "arn:t/1", &svc);
        free(svc);
        break;
    }
    case 4: {
        pc__aws_creds_t c;
        if (pc__ecs_parse_credentials(body, len, &c)) {
            if (!c.access_key || !c.secret_key) abort();
            pc__aws_creds_clear(&c);
        }
        break;
    }
    default: {
        char *cl, *arn, *svc;
        if (pc__ecs_parse_task_metadata(body, len, &cl, &arn, &svc)) {
            if (!cl) abort();
            free(cl);
            free(arn);
            free(svc);
        }
        break;
    }
    }
    check(&p);
    return 0;
}
