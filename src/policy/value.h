/*
 * Rego values and the arenas that hold them.
 *
 * OWNERSHIP (the one rule, in the spirit of jq's jv.h):
 *   - Every pc_value lives in exactly one pc_arena (or is a static constant
 *     such as pc_value_null()). Nobody frees a single value; the arena is
 *     reset or freed as a whole.
 *   - Values are immutable once a constructor returned them. A value may point
 *     at values of the same arena or of any arena that outlives it (a policy
 *     set's constants, the caller's input arena), never at a shorter-lived one.
 *   - Constructors copy what they are given (bytes of a string, the pointer
 *     list of an array) into the arena; the caller keeps its own buffers.
 *   - An evaluation's results live in the evaluation arena and stay valid
 *     until pc_eval_reset()/pc_eval_free() (see policy.h).
 *
 * Term order follows OPA: null < boolean < number < string < array < object
 * < set. Numbers compare by value (1 == 1.0). Objects are kept sorted by key
 * and sets sorted and deduplicated, so equal values have equal layouts and
 * printing is canonical.
 */
#ifndef PC_POLICY_VALUE_H
#define PC_POLICY_VALUE_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct pc_arena pc_arena;
typedef struct pc_value pc_value;

/* ---- arenas ----------------------------------------------------------- */

/** New arena; limit_bytes 0 means unlimited. Never returns NULL. */
pc_arena *pc_arena_new(size_t limit_bytes);
/** Frees the arena and every value in it. NULL is fine. */
void pc_arena_free(pc_arena *a);
/** Forgets every allocation but keeps the first block for reuse. */
void pc_arena_reset(pc_arena *a);
/** 8-byte aligned memory, or NULL once the arena's limit would be exceeded. */
void *pc_arena_alloc(pc_arena *a, size_t n);
/** Bytes handed out since the last reset. */
size_t pc_arena_used(const pc_arena *a);
/** Copy of s[0..n) plus a NUL; NULL when over the limit. */
char *pc_arena_strndup(pc_arena *a, const char *s, size_t n);

/* ---- the value -------------------------------------------------------- */

typedef enum pc_kind {
    PC_NULL = 0,
    PC_BOOL = 1,
    PC_NUMBER = 2,
    PC_STRING = 3,
    PC_ARRAY = 4,
    PC_OBJECT = 5,
    PC_SET = 6,
} pc_kind;

typedef struct pc_kv {
    const pc_value *key;
    const pc_value *val;
} pc_kv;

/* Number flavours: an int64, or a double that may also carry its exact
 * decimal text (big integers and decimals read from policy/JSON print back
 * exactly as written, like OPA). */
#define PC_NUM_INT 0
#define PC_NUM_FLOAT 1

struct pc_value {
    uint8_t kind;  /* pc_kind */
    uint8_t num;   /* PC_NUM_* when kind == PC_NUMBER */
    uint32_t len;  /* bytes of a string, items of an array/set, pairs of an object */
    union {
        bool b;
        int64_t i;
        struct {
            double d;
            const char *text; /* exact decimal text, or NULL */
        } f;
        const char *s;              /* NUL-terminated, len bytes */
        const pc_value *const *items; /* array (in order) or set (sorted, unique) */
        const pc_kv *kvs;           /* object, sorted by key */
    } u;
};

/* Constants: never NULL, never freed. */
const pc_value *pc_value_null(void);
const pc_value *pc_value_bool(bool b);
const pc_value *pc_value_empty_string(void);
const pc_value *pc_value_empty_array(void);
const pc_value *pc_value_empty_object(void);
const pc_value *pc_value_empty_set(void);

/* Constructors return NULL only when the arena's memory limit is reached. */
const pc_value *pc_value_int(pc_arena *a, int64_t i);
const pc_value *pc_value_float(pc_arena *a, double d);
/** Parses a JSON/Rego number literal; exact text kept for big/decimal values.
 *  NULL if the text is not a number (or out of memory). */
const pc_value *pc_value_number_text(pc_arena *a, const char *s, size_t n);
const pc_value *pc_value_string(pc_arena *a, const char *s, size_t n);
const pc_value *pc_value_cstring(pc_arena *a, const char *s);
/** Like pc_value_cstring but borrows s instead of copying it: only the value
 *  lives in a; s must stay unchanged (and NUL-terminated) for as long as the
 *  value or anything built from it is used. */
const pc_value *pc_value_cstring_borrow(pc_arena *a, const char *s);
/** Array of n values, copied pointer list. */
const pc_value *pc_value_array(pc_arena *a, const pc_value *const *items, size_t n);
/** Set of n values (sorted and deduplicated here). */
const pc_value *pc_value_set(pc_arena *a, const pc_value *const *items, size_t n);
/** Object from n pairs (sorted here; for a repeated key the last one wins). */
const pc_value *pc_value_object(pc_arena *a, const pc_kv *kvs, size_t n);

/* Growable list used to build arrays, sets and objects in an arena. */
typedef struct pc_vbuf {
    pc_arena *arena;
    const pc_value **items;
    size_t len, cap;
    bool oom;
} pc_vbuf;

void pc_vbuf_init(pc_vbuf *b, pc_arena *a);
void pc_vbuf_push(pc_vbuf *b, const pc_value *v);
/** Each finishes the buffer; NULL when out of memory. */
const pc_value *pc_vbuf_array(pc_vbuf *b);
const pc_value *pc_vbuf_set(pc_vbuf *b);

typedef struct pc_obuf {
    pc_arena *arena;
    pc_kv *kvs;
    size_t len, cap;
    bool oom;
} pc_obuf;

void pc_obuf_init(pc_obuf *b, pc_arena *a);
void pc_obuf_put(pc_obuf *b, const pc_value *key, const pc_value *val);
/** Convenience: key given as a C string. */
void pc_obuf_put_str(pc_obuf *b, const char *key, const pc_value *val);
const pc_value *pc_obuf_object(pc_obuf *b);
/** pc_obuf_init with room for n entries allocated at once (oom set when that
 *  fails), for pc_obuf_put_reserved. */
void pc_obuf_init_cap(pc_obuf *b, pc_arena *a, size_t n);
/** pc_obuf_put into a buffer from pc_obuf_init_cap, inline and without
 *  growing: one entry more than reserved (or a NULL value) sets oom. */
static inline void pc_obuf_put_reserved(pc_obuf *b, const pc_value *key, const pc_value *val)
{
    if (!key || !val || b->len >= b->cap) {
        b->oom = true;
        return;
    }
    b->kvs[b->len].key = key;
    b->kvs[b->len].val = val;
    b->len++;
}
/** pc_obuf_object for keys put in strictly ascending order (pc_value_compare):
 *  takes the buffer's entries as they are, no sorting and no copy. Debug
 *  builds check the order and return NULL when it is wrong. */
const pc_value *pc_obuf_object_sorted(pc_obuf *b);

/* ---- access ----------------------------------------------------------- */

static inline pc_kind pc_value_kind(const pc_value *v) { return (pc_kind)v->kind; }
/** "null", "boolean", "number", "string", "array", "object", "set" (OPA's type_name). */
const char *pc_value_type_name(const pc_value *v);

/** True and *out set when v is a number holding an integer that fits int64. */
bool pc_value_get_int(const pc_value *v, int64_t *out);
/** Number as a double (NaN if v is not a number). */
double pc_value_get_double(const pc_value *v);
/** True when v is a number whose value is integral (e.g. 2, 2.0, 1e30). */
bool pc_value_is_integral(const pc_value *v);

/** Object member by key, or NULL. */
const pc_value *pc_value_object_get(const pc_value *obj, const pc_value *key);
/** Object member by string key, or NULL. */
const pc_value *pc_value_object_get_str(const pc_value *obj, const char *key, size_t n);
/** Membership in a set. */
bool pc_value_set_contains(const pc_value *set, const pc_value *v);

/** Deep merge of two objects (members of y win, nested objects merge); if
 *  either is not an object the result is y. NULL when out of memory. */
const pc_value *pc_value_merge(pc_arena *a, const pc_value *x, const pc_value *y);

/* ---- order, equality, hashing ----------------------------------------- */

/** OPA term order: <0, 0, >0. */
int pc_value_compare(const pc_value *a, const pc_value *b);
bool pc_value_equal(const pc_value *a, const pc_value *b);
uint64_t pc_value_hash(const pc_value *v);

/* ---- text ------------------------------------------------------------- */

/* A growable heap string (not arena: used for output and error text). */
typedef struct pc_str {
    char *p;
    size_t len, cap;
} pc_str;

void pc_str_append(pc_str *s, const char *p, size_t n);
void pc_str_appendf(pc_str *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void pc_str_free(pc_str *s);

/** Writes v as JSON (sets as arrays in term order; non-string object keys are
 *  written as their JSON text, as OPA does). */
void pc_value_to_json(pc_str *out, const pc_value *v);
/** Writes v in Rego syntax (sets as {a, b}, empty set as set()). */
void pc_value_to_rego(pc_str *out, const pc_value *v);
/** Writes a number the way OPA prints it. */
void pc_value_number_to_str(pc_str *out, const pc_value *v);

/** Parses one JSON document (whitespace around it allowed). On error returns
 *  NULL and, if errbuf is non-NULL, writes a message into it. */
const pc_value *pc_json_parse(pc_arena *a, const char *s, size_t n, char *errbuf, size_t errlen);

/** Parses one YAML document (plain scalars: null, true/false, numbers; other
 *  scalars are strings). NULL on error with a message in errbuf. */
const pc_value *pc_yaml_parse(pc_arena *a, const char *s, size_t n, char *errbuf, size_t errlen);

#endif
