/*
 * Encodings behind OPA's base64.*, base64url.*, hex.* and urlquery.*
 * built-ins, with Go's exact acceptance rules and error texts.
 *
 * Every function returns a malloc'd NUL-terminated result (caller frees; the
 * decoded bytes may contain NULs, so use *out_len), or NULL with Go's error
 * message in err (e.g. "illegal base64 data at input byte 4").
 */
#ifndef PC_POLICY_LIB_ENCODING_H
#define PC_POLICY_LIB_ENCODING_H

#include <stdbool.h>
#include <stddef.h>

typedef enum {
    PC_PLIB_B64_STD,        /* base64.StdEncoding */
    PC_PLIB_B64_URL,        /* base64.URLEncoding */
    PC_PLIB_B64_RAW_URL,    /* base64.RawURLEncoding (no padding) */
} pc_plib_b64_t;

char *pc_plib_base64_encode(pc_plib_b64_t enc, const void *src, size_t n, size_t *out_len);
char *pc_plib_base64_decode(pc_plib_b64_t enc, const char *src, size_t n, size_t *out_len,
                            char *err, size_t errlen);
/** base64url.decode: adds missing padding first (RFC 7515 appendix C) like OPA. */
char *pc_plib_base64url_decode_lenient(const char *src, size_t n, size_t *out_len, char *err,
                                       size_t errlen);

char *pc_plib_hex_encode(const void *src, size_t n, size_t *out_len);
char *pc_plib_hex_decode(const char *src, size_t n, size_t *out_len, char *err, size_t errlen);

/** url.QueryEscape / url.QueryUnescape. */
char *pc_plib_query_escape(const char *src, size_t n, size_t *out_len);
char *pc_plib_query_unescape(const char *src, size_t n, size_t *out_len, char *err,
                             size_t errlen);

/**
 * url.ParseQuery: calls cb(key, value) for each pair in order. Pairs that fail
 * to decode are skipped; the first error is reported in err and the return
 * value is false (Go returns the parsed pairs and that error).
 */
typedef void (*pc_plib_query_cb)(void *ud, const char *k, size_t kn, const char *v, size_t vn);
bool pc_plib_parse_query(const char *src, size_t n, pc_plib_query_cb cb, void *ud, char *err,
                         size_t errlen);

#endif
