/*
 * Growable byte buffer shared by the policy built-in helpers (src/policy/lib/).
 * Internal to the helpers: results handed to callers are the malloc'd `data`
 * (always NUL-terminated), which the caller frees with free().
 */
#ifndef PC_POLICY_LIB_SBUF_H
#define PC_POLICY_LIB_SBUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct pc__sbuf {
    char *data;
    size_t len;
    size_t cap;
    bool oom;      /* sticky: any failed growth makes the result unusable */
    bool borrowed; /* data is caller storage (e.g. a stack buffer), never freed here */
} pc__sbuf_t;

/** A buffer that starts in caller storage and moves to the heap only if it outgrows it. */
#define PC__SBUF_ON(buf, size) ((pc__sbuf_t){.data = (buf), .cap = (size), .borrowed = true})

/** Make room for n more bytes (plus the terminating NUL); false on overflow/OOM. */
bool pc__sbuf_reserve(pc__sbuf_t *b, size_t n);
void pc__sbuf_add(pc__sbuf_t *b, const void *p, size_t n);
void pc__sbuf_addc(pc__sbuf_t *b, char c);
void pc__sbuf_adds(pc__sbuf_t *b, const char *s);
void pc__sbuf_addrep(pc__sbuf_t *b, char c, size_t n);
/** Append a code point as UTF-8 (invalid ones as U+FFFD). */
void pc__sbuf_addrune(pc__sbuf_t *b, uint32_t r);
/** Hand the bytes over: returns the NUL-terminated buffer (NULL after OOM) and resets b.
 *  A buffer still in borrowed storage is returned as is (not heap memory). */
char *pc__sbuf_take(pc__sbuf_t *b, size_t *len);
void pc__sbuf_free(pc__sbuf_t *b);

/** Append s[0..n) as a JSON string literal (quotes, \" \\ and \u00XX for control bytes;
 *  other bytes as they are). */
void pc__sbuf_json_str(pc__sbuf_t *b, const char *s, size_t n);
/** Object member key: a ',' before all but the first (*first tracks it), the key, ':'. */
void pc__sbuf_json_key(pc__sbuf_t *b, bool *first, const char *k);

/** Decode one UTF-8 sequence like Go does: invalid bytes yield U+FFFD with width 1. */
uint32_t pc__utf8_decode(const char *s, size_t n, size_t *width);

#endif
