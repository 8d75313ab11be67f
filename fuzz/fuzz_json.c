/* libFuzzer: the JSON reader, and a write/read round trip of what it accepts. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "policy/value.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    pc_arena *a = pc_arena_new(16u << 20);
    char err[128];
    const pc_value *v = pc_json_parse(a, (const char *)data, size, err, sizeof(err));
    if (v) {
        pc_str s = {0};
        pc_value_to_json(&s, v);
        const pc_value *w = pc_json_parse(a, s.p, s.len, err, sizeof(err));
        if (!w || !pc_value_equal(v, w) || pc_value_hash(v) != pc_value_hash(w)) abort();
        pc_str_free(&s);
        pc_value_to_rego(&s, v);
        pc_str_free(&s);
    }
    pc_arena_free(a);
    return 0;
}
