/*
 * Internal: Rego syntax tree shared by the parser, compiler and evaluator.
 * Not a public surface (policy.h is); nodes live in the policy set's arena.
 */
#ifndef PC_POLICY_AST_H
#define PC_POLICY_AST_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "policy/builtins.h"
#include "policy/policy.h"
#include "policy/value.h"

typedef struct pc_term pc_term;
typedef struct pc_expr pc_expr;
typedef struct pc_body pc_body;
typedef struct pc_rule pc_rule;
typedef struct pc_node pc_node;

typedef struct pc_loc {
    const char *file;
    int row, col;
} pc_loc;

typedef enum {
    T_VALUE,   /* constant scalar (or ground composite folded at compile time) */
    T_VAR,
    T_REF,
    T_ARRAY,
    T_OBJECT,
    T_SET,
    T_ARRCOMP,
    T_SETCOMP,
    T_OBJCOMP,
    T_CALL,
} pc_term_kind;

/* Where a variable lives after compilation. */
typedef enum {
    V_UNRESOLVED = 0,
    V_LOCAL,  /* slot in the current frame */
    V_INPUT,  /* the global `input` */
    V_DATA,   /* the global `data` */
} pc_var_kind;

struct pc_term {
    uint8_t kind;
    uint8_t vkind;     /* pc_var_kind for T_VAR */
    bool wildcard;     /* `_` or generated */
    bool ground;       /* no variables at all (after compilation) */
    int slot;          /* T_VAR V_LOCAL */
    uint32_t n;        /* items / ref operands / call args / object pairs */
    pc_loc loc;
    const char *name;  /* T_VAR name; T_CALL dotted name when static */
    const pc_value *value; /* T_VALUE; also folded constant of ground composites */
    pc_term **items;   /* array/set items, ref operands (items[0] is head), call args */
    pc_term **keys;    /* object keys (values in items) */
    pc_term *head;     /* comprehension head (value); T_CALL: operator ref term */
    pc_term *khead;    /* object comprehension key */
    pc_body *body;     /* comprehension body */
    /* T_CALL resolved target */
    const pc_builtin *bi;
    pc_node *fn;       /* user function node */
    bool is_output_call; /* called with one extra arg that receives the result */
};

typedef enum {
    E_TERM,
    E_UNIFY,  /* a = b */
    E_ASSIGN, /* a := b */
    E_SOME,   /* some x, y */
    E_SOMEIN, /* some [k,] v in coll */
    E_EVERY,  /* every [k,] v in coll { body } */
    E_NOT,
} pc_expr_kind;

typedef struct pc_with {
    pc_term *target; /* ref: input..., data..., or a function name */
    pc_term *value;
    pc_loc loc;
} pc_with;

struct pc_expr {
    uint8_t kind;
    pc_loc loc;
    pc_term *a, *b, *c; /* E_TERM: a; UNIFY/ASSIGN: a,b; SOMEIN/EVERY: a=key (opt), b=val, c=coll */
    pc_term **vars;     /* E_SOME declared vars */
    uint32_t nvars;
    pc_body *body;      /* E_EVERY body */
    pc_expr *inner;     /* E_NOT */
    pc_with *withs;
    uint32_t nwith;
    const char *text;   /* source text (queries) */
    uint32_t textlen;
};

struct pc_body {
    pc_expr **exprs;
    uint32_t n;
};

typedef enum { R_COMPLETE, R_PSET, R_POBJ, R_FUNC } pc_rule_kind;

struct pc_rule {
    uint8_t kind;
    bool is_default;
    pc_loc loc;
    /* head path: ref terms (items[0] is the rule name var) */
    pc_term **path;
    uint32_t npath;
    uint32_t nground;  /* leading elements that are constant strings */
    pc_term **args;    /* function args */
    uint32_t nargs;
    pc_term *key;      /* partial set element / partial object key (last path elem) */
    pc_term *value;    /* NULL means true */
    pc_body *body;     /* NULL means empty */
    pc_rule *els;      /* else chain */
    int nslots;
    struct pc_module *mod;
    const char *name;  /* for messages */
    const pc_value *annot; /* METADATA annotation, or NULL */
};

typedef struct pc_import {
    pc_term *path; /* ref */
    const char *alias;
    pc_loc loc;
} pc_import;

typedef struct pc_module {
    const char *file;
    pc_term *pkg;       /* ref data.a.b */
    pc_import *imports;
    uint32_t nimports;
    pc_rule **rules;
    uint32_t nrules;
    bool v0;
    const pc_value *pkg_annot; /* METADATA above `package`, or NULL */
} pc_module;

/* Parser (parse.c). Returns NULL on error with err filled (rego_parse_error). */
typedef struct pc_intern pc_intern;
pc_module *pc__parse_module(pc_arena *a, pc_intern *in, const char *file, const char *text,
                            size_t len, bool v0, pc_policy_error *err);
pc_body *pc__parse_query(pc_arena *a, pc_intern *in, const char *text, size_t len,
                         pc_policy_error *err);

/* Interning of compile-time strings (one table per policy set). */
pc_intern *pc__intern_new(pc_arena *a);
const pc_value *pc__intern(pc_intern *t, const char *s, size_t n);

/* Fills an error (compile.c); used by the compiler and the evaluator. */
void pc__set_errorv(pc_policy_error *err, const char *code, pc_loc loc, const char *fmt, va_list ap)
    __attribute__((format(printf, 4, 0)));

/* Shared decoders in value.c */
char *pc__unquote(pc_arena *a, const char *s, size_t n, size_t *pos, size_t *outlen,
                  const char **err);
size_t pc__utf8_encode(char *out, uint32_t cp);

#endif
