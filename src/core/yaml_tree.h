/*
 * Internal: a small YAML tree with line numbers, built from libyaml events,
 * shared by the connector configuration loader (config.c) and the snapshot
 * loader (snapshot.c). Not a public module surface.
 *
 * Aliases are resolved by sharing the anchored node; the total size of the
 * expanded tree is bounded so that an alias bomb fails instead of exploding,
 * and nesting depth is bounded so that walking the tree cannot overflow the
 * stack. Scalar buffers are wiped when the tree is freed because they may hold
 * secrets (passwords, tokens).
 */
#ifndef PC_CORE_YAML_TREE_H
#define PC_CORE_YAML_TREE_H

#include "core/common.h"

typedef enum { PC__Y_SCALAR, PC__Y_SEQ, PC__Y_MAP } pc__ynode_kind_t;

typedef struct pc__ynode pc__ynode_t;
struct pc__ynode {
    pc__ynode_kind_t kind;
    unsigned line; /* 1-based */
    bool plain;    /* scalar written without quotes (so `null`, `5` are not strings) */
    char *str;     /* scalar text, NUL-terminated (may contain NUL: see len) */
    size_t len;
    pc__ynode_t **items; /* SEQ: the items; MAP: key, value, key, value, ... */
    size_t n_items;      /* SEQ: items; MAP: 2 * pairs */
    size_t cap_items;
    uint64_t weight; /* nodes in the expanded subtree (bounds alias expansion) */
};

/* Limits on what a configuration file may be. */
#define PC__YAML_MAX_DEPTH 64
#define PC__YAML_MAX_WEIGHT 2000000u

typedef struct pc__ydoc {
    pc__ynode_t **roots; /* one per YAML document in the stream */
    size_t n_roots;
    pc__ynode_t **all; /* every node, for freeing */
    size_t n_all, cap_all;
} pc__ydoc_t;

/**
 * Parse a whole YAML stream. On failure returns false with
 * "origin:line: problem" in err.
 */
bool pc__yaml_parse(const char *text, size_t len, const char *origin, pc__ydoc_t *out, char *err,
                    size_t errlen) PC_WUR;
void pc__yaml_free(pc__ydoc_t *doc);

/** A plain scalar meaning "no value": empty, `~`, `null`, `Null`, `NULL`. */
bool pc__yaml_is_null(const pc__ynode_t *n);
/** "a mapping", "a list", "a string" ... for type error messages. */
const char *pc__yaml_kind_name(const pc__ynode_t *n);

/*
 * A dotted key path such as `resources[2].credentials.username`, built while
 * walking the tree, for error messages.
 */
typedef struct pc__ypath {
    char buf[256];
    size_t len;
} pc__ypath_t;

/** Append ".key" (or "key" at the root); returns the previous length for pc__ypath_pop. */
size_t pc__ypath_push_key(pc__ypath_t *p, const char *key);
size_t pc__ypath_push_index(pc__ypath_t *p, size_t index);
void pc__ypath_pop(pc__ypath_t *p, size_t prev_len);

/*
 * Typed access to mappings with strict checking. Every failure writes
 * "origin:line: dotted.key: problem" into the context's err and returns false.
 * A key that is absent or null leaves the output untouched (the default).
 */
typedef struct pc__yctx {
    const char *origin; /* file name used in messages */
    char *err;
    size_t errlen;
    pc__ypath_t path;
    bool expand_env; /* ${VAR} in scalar values */
} pc__yctx_t;

bool pc__yfail(pc__yctx_t *c, unsigned line, const char *fmt, ...) PC_PRINTF(3, 4);
/** Check n is a mapping of plain string keys, each in allowed (NULL-terminated), no repeats. */
bool pc__ymap_check(pc__yctx_t *c, const pc__ynode_t *n, const char *const *allowed) PC_WUR;
bool pc__yexpect(pc__yctx_t *c, const pc__ynode_t *n, pc__ynode_kind_t kind) PC_WUR;
/** Value for key in a mapping, or NULL if absent or null. */
const pc__ynode_t *pc__ymap_get(const pc__ynode_t *map, const char *key);
/** The scalar's text after ${VAR} expansion (caller frees; pc__free_secret for secrets). */
char *pc__yscalar(pc__yctx_t *c, const pc__ynode_t *n) PC_WUR;

bool pc__yget_str(pc__yctx_t *c, const pc__ynode_t *map, const char *key, char **out) PC_WUR;
bool pc__yget_int(pc__yctx_t *c, const pc__ynode_t *map, const char *key, int64_t min, int64_t max,
                  int64_t *out) PC_WUR;
bool pc__yget_bool(pc__yctx_t *c, const pc__ynode_t *map, const char *key, bool *out) PC_WUR;
bool pc__yget_duration(pc__yctx_t *c, const pc__ynode_t *map, const char *key,
                       uint64_t *out_ms) PC_WUR;
bool pc__yget_size(pc__yctx_t *c, const pc__ynode_t *map, const char *key,
                   uint64_t *out_bytes) PC_WUR;
/** out = index of the value in names (NULL-terminated). */
bool pc__yget_enum(pc__yctx_t *c, const pc__ynode_t *map, const char *key, const char *const *names,
                   int *out) PC_WUR;
bool pc__yget_str_list(pc__yctx_t *c, const pc__ynode_t *map, const char *key, char ***out,
                       size_t *n_out) PC_WUR;
/** Line of key's value in map (or of the map itself when absent), for messages. */
unsigned pc__ymap_line(const pc__ynode_t *map, const char *key);

/**
 * Expand ${VAR} and ${VAR:-default} from the environment in s; `$${` stands
 * for a literal `${`. Returns a new string, or NULL with the problem written
 * to problem (naming the variable, never a value).
 */
char *pc__env_expand(const char *s, size_t len, char *problem, size_t problem_len);

/** "http://host..." or "https://host..." without spaces or control characters. */
bool pc__valid_http_url(const char *s);

/**
 * Whole file into memory, NUL-terminated, at most max bytes; on failure NULL
 * with "path: problem" in err. Callers wipe the buffer (it may hold secrets).
 */
char *pc__read_file(const char *path, size_t max, size_t *len, char *err, size_t errlen) PC_WUR;

/** Wipe then free a secret string. */
void pc__free_secret(char *s);

/** Append a quoted, escaped, length-capped copy of a (non-secret) value to a message. */
void pc__quote_value(char *out, size_t cap, const char *s, size_t len);

#endif
