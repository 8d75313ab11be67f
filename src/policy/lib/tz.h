/*
 * Time zones from the system tz database (/usr/share/zoneinfo, TZif v1-v3,
 * with the POSIX TZ footer rule for times past the last transition), looked
 * up the way Go's time package does. Loaded zones are cached for the life of
 * the process (thread-safe) and are immutable, so a handle needs no release.
 */
#ifndef PC_POLICY_LIB_TZ_H
#define PC_POLICY_LIB_TZ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct pc_plib_tz pc_plib_tz_t;

/** The UTC zone (never NULL). */
const pc_plib_tz_t *pc_plib_tz_utc(void);
/** Go's time.LoadLocation: "" and "UTC" give UTC, "Local" the TZ/localtime zone.
 *  NULL with Go's message ("unknown time zone X") in err. */
const pc_plib_tz_t *pc_plib_tz_load(const char *name, size_t n, char *err, size_t errlen);

typedef struct pc_plib_tz_info {
    char abbr[16]; /* "UTC", "IST", "EST", "+0530"... */
    int32_t offset;   /* seconds east of UTC */
    int64_t start, end; /* period [start, end) in Unix seconds containing the instant */
    bool dst;
} pc_plib_tz_info_t;

/** Zone in effect at Unix second `sec`. */
void pc_plib_tz_lookup(const pc_plib_tz_t *tz, int64_t sec, pc_plib_tz_info_t *out);
/** Evaluate a POSIX TZ rule string (e.g. "EST5EDT,M3.2.0,M11.1.0") at sec; false if invalid. */
bool pc_plib_tz_rule(const char *rule, int64_t sec, pc_plib_tz_info_t *out);

/* Proleptic Gregorian calendar helpers shared with the time helpers. */
bool pc__is_leap(int64_t year);
int pc__days_in(int month, int64_t year);
int64_t pc__days_from_civil(int64_t year, int month, int day);
void pc__civil_from_days(int64_t days, int64_t *year, int *month, int *day);
int64_t pc__floor_div(int64_t a, int64_t b);

#endif
