/* Fuzz strings.render_template (the Go text/template subset) through the engine:
 * the input bytes are the template, rendered over a small fixed document. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "policy/builtins.h"
#include "policy/policy.h"

static pc_eval *ev;

static void ignore(const pc_query_result *r, void *ud)
{
    (void)r;
    (void)ud;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!ev) {
        pc__builtins_ext_register();
        pc_policy_init();
        static const char mod[] = "package f\nx := 1\n";
        pc_policy_module m = {"f.rego", mod, sizeof(mod) - 1};
        pc_policy_error err;
        pc_policy_set *ps = pc_policy_compile(&m, 1, NULL, 0, &err);
        if (!ps) abort();
        pc_eval_limits lim = {.max_steps = 100000, .max_bytes = 16u << 20};
        ev = pc_eval_new(ps, &lim);
        pc_policy_set_unref(ps);
    }
    if (size > 4096) return 0;
    pc_arena *a = pc_eval_input_arena(ev);
    pc_obuf ob;
    pc_obuf_init(&ob, a);
    pc_obuf_put_str(&ob, "t", pc_value_string(a, (const char *)data, size));
    const pc_value *input = pc_obuf_object(&ob);
    pc_policy_error err;
    (void)pc_eval_query(ev, "x := strings.render_template(input.t, {\"a\": [1, \"b\", {\"c\": null}], \"m\": {\"k\": 1.5}, \"s\": \"str\"})",
                        input, ignore, NULL, &err);
    pc_eval_reset(ev);
    return 0;
}
