/*
 * Go's time package as OPA's time.* built-ins use it: layouts
 * ("2006-01-02T15:04:05Z07:00" and the named constants), time.Parse,
 * Time.Format, Date/Clock/Weekday, AddDate, OPA's time.diff and
 * time.ParseDuration. Instants are Unix nanoseconds (int64) plus a zone.
 *
 * Functions returning char* give malloc'd NUL-terminated text (caller
 * frees); failures put Go's error text in err.
 */
#ifndef PC_POLICY_LIB_GOTIME_H
#define PC_POLICY_LIB_GOTIME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "policy/lib/tz.h"

/** Layout of a named constant ("RFC3339", "ANSIC", ...) or NULL. */
const char *pc_plib_time_layout_const(const char *name, size_t n);

typedef struct pc_plib_civil {
    int64_t year;
    int month, day, hour, min, sec, nsec;
    int wday; /* 0 = Sunday */
    int yday; /* 1..366 */
    int32_t offset;
    char abbr[16];
} pc_plib_civil_t;

void pc_plib_time_civil(int64_t ns, const pc_plib_tz_t *tz, pc_plib_civil_t *out);
const char *pc_plib_weekday_name(int wday);

/** Time.Format(layout) of ns in tz. */
char *pc_plib_time_format(int64_t ns, const pc_plib_tz_t *tz, const char *layout, size_t ln,
                          size_t *out_len);

/**
 * time.Parse(layout, value) then UnixNano: false with err on a parse error,
 * or "time outside of valid range" when the instant does not fit int64 ns.
 */
bool pc_plib_time_parse_ns(const char *layout, size_t ln, const char *value, size_t vn,
                           int64_t *ns, char *err, size_t errlen);

/** t.AddDate(y, m, d) in t's zone; false ("time outside of valid range") on overflow. */
bool pc_plib_time_add_date(int64_t ns, const pc_plib_tz_t *tz, int64_t years, int64_t months,
                           int64_t days, int64_t *out, char *err, size_t errlen);

/** OPA's time.diff: [years, months, days, hours, minutes, seconds] between two instants. */
void pc_plib_time_diff(int64_t ns1, const pc_plib_tz_t *tz1, int64_t ns2, const pc_plib_tz_t *tz2,
                       int64_t out[6]);

/** time.ParseDuration. */
bool pc_plib_duration_parse(const char *s, size_t n, int64_t *out, char *err, size_t errlen);

#endif
