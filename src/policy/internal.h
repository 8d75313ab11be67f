/* Internal: policy set and rule tree layout shared by compile.c and eval.c. */
#ifndef PC_POLICY_INTERNAL_H
#define PC_POLICY_INTERNAL_H

#include "policy/ast.h"

struct pc_node {
    const pc_value *key; /* key in the parent */
    pc_node *parent;
    pc_node **kids;      /* sorted by key */
    uint32_t nkids;
    uint32_t depth;
    const pc_value **path; /* keys from the root (depth of them) */
    pc_rule **rules;
    uint32_t nrules;
    pc_rule *dflt;
    int kind;            /* pc_rule_kind, -1 when no rule is defined here */
    uint32_t arity;      /* functions */
    int id;              /* index in the per-evaluation caches */
    bool has_rules_below;
    bool is_pkg;
    bool const_all;      /* complete rules all with one constant value */         /* a module declares this package: {} at least */
    const pc_value *base; /* base document (data) at this path, or NULL */
    pc_module *mod;
};

struct pc_policy_set {
    int refs;
    pc_arena *arena;
    pc_intern *in;
    pc_node *root;
    int nnodes;
    const pc_value *data;
    pc_module **mods;
    size_t nmods;
};

pc_node *pc__node_child(const pc_node *n, const pc_value *key);
/* Orders each body so variables are bound before use; reports unsafe vars. */
bool pc__check_safety(pc_policy_set *ps, pc_policy_error *err);
bool pc__check_body_safety(pc_body *b, pc_policy_error *err, pc_term **args, uint32_t nargs);
pc_body *pc__compile_query(pc_policy_set *ps, pc_arena *a, const char *q, pc_policy_error *err,
                           int *nslots, const char ***names, int **slots, int *nnames);

#endif
