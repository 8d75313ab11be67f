/* libFuzzer: parse and compile arbitrary bytes as a Rego module, then
 * evaluate the package under a small budget when it compiles. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "policy/policy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    pc_policy_module m = {"fuzz.rego", (const char *)data, size};
    pc_policy_error err;
    pc_policy_set *ps = pc_policy_compile(&m, 1, NULL, 0, &err);
    if (!ps) return 0;
    pc_eval_limits lim = {.max_steps = 20000, .max_bytes = 4u << 20};
    pc_eval *ev = pc_eval_new(ps, &lim);
    pc_policy_set_unref(ps);
    const pc_value *out;
    (void)pc_eval_rule(ev, "data", NULL, &out, &err);
    pc_eval_free(ev);
    return 0;
}
