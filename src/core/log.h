/*
 * Operational logs: one JSON object per line on stderr, {"ts","level","msg",...fields}.
 *
 *   pc_log_info("listener opened", PC_LSTR("name", l->name), PC_LINT("port", l->port));
 *
 * The level is tested before any argument is evaluated. Fields are typed so
 * that values are always escaped correctly. Never pass a secret as a field.
 */
#ifndef PC_CORE_LOG_H
#define PC_CORE_LOG_H

#include "core/common.h"

typedef enum { PC_LOG_DEBUG, PC_LOG_INFO, PC_LOG_WARN, PC_LOG_ERROR, PC_LOG_FATAL } pc_log_level_t;

typedef enum { PC_LF_END, PC_LF_STR, PC_LF_STRN, PC_LF_INT, PC_LF_UINT, PC_LF_DBL, PC_LF_BOOL,
               PC_LF_RAW } pc_log_field_type_t;

typedef struct pc_log_field {
    const char *key;
    pc_log_field_type_t type;
    size_t len; /* PC_LF_STRN only */
    union {
        const char *s;
        int64_t i;
        uint64_t u;
        double d;
        bool b;
    } v;
} pc_log_field_t;

#define PC_LSTR(k, val) ((pc_log_field_t){.key = (k), .type = PC_LF_STR, .v.s = (val)})
#define PC_LSTRN(k, val, n)                                                                        \
    ((pc_log_field_t){.key = (k), .type = PC_LF_STRN, .len = (n), .v.s = (val)})
#define PC_LINT(k, val) ((pc_log_field_t){.key = (k), .type = PC_LF_INT, .v.i = (int64_t)(val)})
#define PC_LUINT(k, val) ((pc_log_field_t){.key = (k), .type = PC_LF_UINT, .v.u = (uint64_t)(val)})
#define PC_LDBL(k, val) ((pc_log_field_t){.key = (k), .type = PC_LF_DBL, .v.d = (double)(val)})
#define PC_LBOOL(k, val) ((pc_log_field_t){.key = (k), .type = PC_LF_BOOL, .v.b = (val)})
/* A value that is already valid JSON (an object or array built by the caller). */
#define PC_LRAW(k, val) ((pc_log_field_t){.key = (k), .type = PC_LF_RAW, .v.s = (val)})
#define PC__LEND ((pc_log_field_t){.key = NULL, .type = PC_LF_END})

extern pc_log_level_t pc_log_level;

/** Set the minimum level; "debug", "info", "warn", "error". Returns false if unknown. */
bool pc_log_set_level_name(const char *name) PC_WUR;

/** Fields added to every line from now on (e.g. "instance"); copied. */
void pc_log_set_global_field(const char *key, const char *value);

void pc__log_emit(pc_log_level_t level, const char *msg, const pc_log_field_t *fields);

#define pc_log(level, msg, ...)                                                                    \
    do {                                                                                           \
        if ((level) >= pc_log_level) {                                                             \
            const pc_log_field_t pc__f[] = {__VA_ARGS__ __VA_OPT__(, ) PC__LEND};                  \
            pc__log_emit((level), (msg), pc__f);                                                   \
        }                                                                                          \
    } while (0)

#define pc_log_debug(msg, ...) pc_log(PC_LOG_DEBUG, msg __VA_OPT__(, ) __VA_ARGS__)
#define pc_log_info(msg, ...) pc_log(PC_LOG_INFO, msg __VA_OPT__(, ) __VA_ARGS__)
#define pc_log_warn(msg, ...) pc_log(PC_LOG_WARN, msg __VA_OPT__(, ) __VA_ARGS__)
#define pc_log_error(msg, ...) pc_log(PC_LOG_ERROR, msg __VA_OPT__(, ) __VA_ARGS__)

/*
 * JSON string escaping shared by every module that writes JSON by hand.
 * Appends the escaped form of s[0..n) (without quotes) to out[*pos..cap),
 * truncating safely; returns false if it had to truncate.
 */
bool pc_json_escape_into(char *out, size_t cap, size_t *pos, const char *s, size_t n);

#endif
