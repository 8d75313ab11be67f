/*
 * Built-in functions: how to write one and register it.
 *
 * A builtin is a C function over immutable values (value.h):
 *
 *     static bool f(pc_eval_ctx *ctx, const pc_value *const *args, size_t nargs,
 *                   const pc_value **out);
 *
 *   - return true with *out set: the call is defined with that value;
 *   - return false without raising: the call is undefined (no error);
 *   - return pc_builtin_error(...) / pc_builtin_type_error(...) (both return
 *     false): the call failed. With --strict-builtin-errors (or for errors
 *     OPA always raises) evaluation stops with eval_builtin_error /
 *     eval_type_error; otherwise the expression is simply undefined.
 *
 * Arguments are already evaluated to ground values; nargs equals the
 * registered arity (or any count for a variadic builtin). Results must be
 * allocated in pc_builtin_arena(ctx) (or be constants, or be one of the
 * arguments): the evaluation arena is reset after each decision. Never call
 * malloc for a result. When the arena's memory budget is exhausted a
 * constructor returns NULL: return pc_builtin_oom(ctx).
 *
 * Registration is keyed by the dotted name ("strings.any_prefix_match"). It
 * happens once at start-up, before any policy is compiled (pc_policy_init()
 * runs it; it is idempotent and thread-safe). Registering a name twice
 * replaces the earlier entry, so the long tail of builtins
 * (src/policy/builtins_ext*.c) is registered from pc__builtins_ext_register(),
 * which pc_builtins_init() calls after the core set.
 */
#ifndef PC_POLICY_BUILTINS_H
#define PC_POLICY_BUILTINS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "policy/value.h"

typedef struct pc_eval_ctx pc_eval_ctx;

typedef bool (*pc_builtin_fn)(pc_eval_ctx *ctx, const pc_value *const *args, size_t nargs,
                              const pc_value **out);

/* Flags of a builtin. */
#define PC_BUILTIN_VARIADIC 0x1u     /* any number of arguments (print) */
#define PC_BUILTIN_NONDET 0x2u       /* result may differ between calls (time.now_ns, rand) */
#define PC_BUILTIN_RELATION 0x4u     /* *out is an array; each element is one solution (walk) */
#define PC_BUILTIN_ALWAYS_RAISE 0x8u /* errors stop evaluation even when not strict */

typedef struct pc_builtin {
    const char *name; /* dotted name, e.g. "regex.match" */
    int arity;        /* number of arguments (ignored when VARIADIC) */
    pc_builtin_fn fn;
    unsigned flags;
} pc_builtin;

/** Adds or replaces a builtin (name and struct are copied). Start-up only. */
void pc_builtin_register(const char *name, int arity, pc_builtin_fn fn, unsigned flags);
/** Registers a NULL-name-terminated table. */
void pc_builtin_register_table(const pc_builtin *table);
/** Looks a builtin up by dotted name; NULL when unknown. */
const pc_builtin *pc_builtin_lookup(const char *name, size_t len);
/** Registers the core set and, when linked, the extended set. Idempotent. */
void pc_builtins_init(void);

/** Defined by src/policy/builtins_ext*.c: registers the extended set. */
void pc__builtins_ext_register(void);

/* ---- inside a builtin ------------------------------------------------- */

/** Arena for result values (reset after the decision). */
pc_arena *pc_builtin_arena(pc_eval_ctx *ctx);
/** Name of the builtin being called (for messages). */
const char *pc_builtin_name(pc_eval_ctx *ctx);
/** Wall-clock time fixed for the whole evaluation (time.now_ns). */
int64_t pc_builtin_now_ns(pc_eval_ctx *ctx);
/* The raising functions are macros around void functions so that the
 * compiler sees `return pc_builtin_error(...)` yield a literal false (no
 * maybe-uninitialized warnings in callers that return early). */
void pc__builtin_error(pc_eval_ctx *ctx, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void pc__builtin_type_error(pc_eval_ctx *ctx, int pos, const char *expected, const pc_value *got);
void pc__builtin_type_errorf(pc_eval_ctx *ctx, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void pc__builtin_oom(pc_eval_ctx *ctx);
static inline bool pc__false(void) { return false; }

/** Raises eval_builtin_error "<name>: <message>"; evaluates to false. */
#define pc_builtin_error(ctx, ...) (pc__builtin_error((ctx), __VA_ARGS__), pc__false())
/** Raises eval_type_error "<name>: operand <pos> must be <expected> but got <type of got>";
 *  pos counts from 1; evaluates to false. */
#define pc_builtin_type_error(ctx, pos, expected, got)                                            \
    (pc__builtin_type_error((ctx), (pos), (expected), (got)), pc__false())
/** Raises eval_type_error with a free message "<name>: <message>"; evaluates to false. */
#define pc_builtin_type_errorf(ctx, ...) (pc__builtin_type_errorf((ctx), __VA_ARGS__), pc__false())
/** Out of evaluation memory: stops the evaluation (budget error); evaluates to false. */
#define pc_builtin_oom(ctx) (pc__builtin_oom(ctx), pc__false())

/* Argument helpers: each returns false after raising an operand type error. */
bool pc_arg_string(pc_eval_ctx *ctx, const pc_value *const *args, int pos, const char **s,
                   size_t *len);
bool pc_arg_int(pc_eval_ctx *ctx, const pc_value *const *args, int pos, int64_t *out);
bool pc_arg_number(pc_eval_ctx *ctx, const pc_value *const *args, int pos, double *out);
bool pc_arg_kind(pc_eval_ctx *ctx, const pc_value *const *args, int pos, pc_kind kind);

#endif
