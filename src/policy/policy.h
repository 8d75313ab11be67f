/*
 * Rego policy engine: compile modules + data into an immutable policy set,
 * then evaluate rules or queries against an input value.
 *
 *   pc_policy_set *ps = pc_policy_compile(mods, n, data, 0, &err);   // once
 *   pc_eval *ev = pc_eval_new(ps, NULL);                            // per thread
 *   pc_arena *in = pc_eval_input_arena(ev);                          // build input natively
 *   ... input = pc_obuf_object(...) ...
 *   const pc_value *v; int rc = pc_eval_rule(ev, "data.formal.v2.pre_request", input, &v, &err);
 *   ... use v ...
 *   pc_eval_reset(ev);                                               // frees v and input
 *
 * Ownership: see value.h. A policy set owns its compiled modules and data and
 * is shared read-only by any number of threads (ref-counted). A pc_eval is
 * single-threaded; its arena holds input built through pc_eval_input_arena()
 * and every result until pc_eval_reset(). Each evaluation runs under a budget
 * (steps and bytes); exceeding it ends the evaluation with an error, never a
 * hang.
 *
 * Return convention: pc_eval_* return 1 (defined), 0 (undefined) or -1 (error,
 * with *err filled).
 */
#ifndef PC_POLICY_POLICY_H
#define PC_POLICY_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "policy/value.h"

typedef struct pc_policy_set pc_policy_set;
typedef struct pc_eval pc_eval;

typedef struct pc_policy_module {
    const char *name; /* file name used in error locations */
    const char *text;
    size_t len;
} pc_policy_module;

typedef struct pc_policy_error {
    char code[40];     /* rego_parse_error, eval_type_error, ... */
    char message[512];
    char file[256];    /* empty when unknown */
    int row, col;      /* 0 when unknown */
} pc_policy_error;

/* Compile flags. */
#define PC_POLICY_V0 0x1u /* parse modules as Rego v0 unless they import rego.v1 */

/** Registers builtins; called by pc_policy_compile too. Idempotent. */
void pc_policy_init(void);

/** Compiles modules and a data document (NULL for {}); the data value is deep
 *  copied. Returns NULL on error with *err filled. */
pc_policy_set *pc_policy_compile(const pc_policy_module *mods, size_t n, const pc_value *data,
                                 unsigned flags, pc_policy_error *err);
pc_policy_set *pc_policy_set_ref(pc_policy_set *ps);
/** Drops a reference; the last one frees. NULL is fine. */
void pc_policy_set_unref(pc_policy_set *ps);
/** True if the set defines any rule at dotted path (e.g. "data.formal.v2.session"). */
bool pc_policy_has_rule(const pc_policy_set *ps, const char *path);

/** A rule of a compiled set, resolved once so evaluating it skips the path
 *  walk; valid as long as the set is. */
typedef struct pc_node pc_policy_rule;
/** The rule at dotted path ("data.pkg.rule"), NULL when the set defines none
 *  there (same test as pc_policy_has_rule). */
const pc_policy_rule *pc_policy_rule_find(const pc_policy_set *ps, const char *path);

typedef struct pc_eval_limits {
    uint64_t max_steps; /* 0: default (10 million) */
    size_t max_bytes;   /* 0: default (64 MiB) */
    bool strict_builtin_errors;
} pc_eval_limits;

/** New evaluation context (takes a reference on ps). limits may be NULL. */
pc_eval *pc_eval_new(pc_policy_set *ps, const pc_eval_limits *limits);
void pc_eval_free(pc_eval *ev);
/** Arena for building the input of the next evaluation (reset by pc_eval_reset). */
pc_arena *pc_eval_input_arena(pc_eval *ev);
/** Frees everything the last evaluations allocated (results, input). */
void pc_eval_reset(pc_eval *ev);

/** Evaluates the document at a dotted ref ("data.pkg.rule"). input may be NULL. */
int pc_eval_rule(pc_eval *ev, const char *path, const pc_value *input, const pc_value **out,
                 pc_policy_error *err);

/** pc_eval_rule for a rule found in the set ev evaluates (pc_policy_rule_find
 *  on that same set); same result, no path lookup. */
int pc_eval_rule_ref(pc_eval *ev, const pc_policy_rule *rule, const pc_value *input,
                     const pc_value **out, pc_policy_error *err);

/** One result of a query: the value of each expression and each named binding. */
typedef struct pc_query_result {
    size_t nexprs;
    const pc_value *const *exprs; /* value of each top-level expression */
    const char *const *expr_texts;
    const int *expr_rows, *expr_cols;
    size_t nbindings;
    const char *const *names; /* user variable names, in first-seen order */
    const pc_value *const *values;
} pc_query_result;

typedef void (*pc_query_cb)(const pc_query_result *r, void *ud);

/** Parses, compiles and evaluates a query (";" or newline separated
 *  expressions); calls cb for each solution. Returns the number of solutions
 *  or -1 on error. */
int pc_eval_query(pc_eval *ev, const char *query, const pc_value *input, pc_query_cb cb, void *ud,
                  pc_policy_error *err);

#endif
