/*
 * Internal to src/policy/builtins_ext*.c: helpers the adapters share to turn
 * values into C types and helper results back into values, and the
 * per-group registration functions called by pc__builtins_ext_register().
 */
#ifndef PC_POLICY_BUILTINS_EXT_H
#define PC_POLICY_BUILTINS_EXT_H

#include "policy/builtins.h"
#include "policy/value.h"

#define EXT_ARGS pc_eval_ctx *ctx, const pc_value *const *a, size_t n, const pc_value **out

/** Sets *out = v (NULL means the arena is exhausted). */
bool pc__ext_ret(pc_eval_ctx *ctx, const pc_value **out, const pc_value *v);
/** Copies a malloc'd helper result into the arena, frees it, sets *out. */
bool pc__ext_ret_str(pc_eval_ctx *ctx, const pc_value **out, char *s, size_t len);
/** Builtin error with a helper's text; the engine adds "<name>: " (a leading copy of the
 *  name in msg is dropped so it is not doubled). */
bool pc__ext_err(pc_eval_ctx *ctx, const char *msg);
/** The string of a set/array of strings; false (type error raised) otherwise. */
bool pc__ext_strings(pc_eval_ctx *ctx, const pc_value *v, int pos, const char ***s, size_t **lens,
                     size_t *count);
/** Exact decimal text of a number (ints, big/decimal literals, doubles). Arena copy. */
const char *pc__ext_num_text(pc_eval_ctx *ctx, const pc_value *v, size_t *len);

void pc__builtins_ext_strings_register(void);
void pc__builtins_ext_regex_register(void);
void pc__builtins_ext_time_register(void);
void pc__builtins_ext_net_register(void);
void pc__builtins_ext_crypto_register(void);
void pc__builtins_ext_misc_register(void);
void pc__builtins_ext_template_register(void);
void pc__builtins_ext_schema_register(void);

#endif
