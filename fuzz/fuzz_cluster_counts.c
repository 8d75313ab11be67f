/* libFuzzer: the decoder of counter values published by other instances (bytes from etcd). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/cluster.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    pc__cluster_buckets_t b, d;
    if (!pc__cluster_buckets_decode((const char *)data, size, &b)) return 0;
    /* What decodes must encode and decode back to the same sums. */
    int64_t now = 0;
    for (unsigned i = 0; i < PC__CLUSTER_SLOTS; i++)
        if (b.sec_t[i] > now) now = b.sec_t[i];
    char text[PC__CLUSTER_VALUE_MAX];
    size_t n = pc__cluster_buckets_encode(&b, now, text, sizeof text);
    if (!pc__cluster_buckets_decode(text, n, &d)) abort();
    if (pc__cluster_buckets_sum(&b, now, PC_CLUSTER_LAST_MINUTE) !=
        pc__cluster_buckets_sum(&d, now, PC_CLUSTER_LAST_MINUTE))
        abort();
    return 0;
}
