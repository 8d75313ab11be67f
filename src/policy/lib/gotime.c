/*
 * Go time layouts. The layout scanner mirrors Go's nextStdChunk so that a
 * layout is split into the same literal and element runs; formatting and
 * parsing then follow Time.appendFormat and time.parse element by element.
 */
#include "policy/lib/gotime.h"

#include "policy/lib/sbuf.h"

#include <ctype.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum {
    STD_NONE = 0,
    STD_LONG_MONTH,
    STD_MONTH,
    STD_NUM_MONTH,
    STD_ZERO_MONTH,
    STD_LONG_WEEKDAY,
    STD_WEEKDAY,
    STD_DAY,
    STD_UNDER_DAY,
    STD_ZERO_DAY,
    STD_UNDER_YEARDAY,
    STD_ZERO_YEARDAY,
    STD_HOUR,
    STD_HOUR12,
    STD_ZERO_HOUR12,
    STD_MINUTE,
    STD_ZERO_MINUTE,
    STD_SECOND,
    STD_ZERO_SECOND,
    STD_LONG_YEAR,
    STD_YEAR,
    STD_PM_UPPER,
    STD_PM_LOWER,
    STD_TZ,
    STD_ISO8601_TZ,
    STD_ISO8601_SECONDS_TZ,
    STD_ISO8601_SHORT_TZ,
    STD_ISO8601_COLON_TZ,
    STD_ISO8601_COLON_SECONDS_TZ,
    STD_NUM_TZ,
    STD_NUM_SECONDS_TZ,
    STD_NUM_SHORT_TZ,
    STD_NUM_COLON_TZ,
    STD_NUM_COLON_SECONDS_TZ,
    STD_FRAC0,
    STD_FRAC9,
};

typedef struct {
    size_t prefix_len; /* literal bytes before the element */
    int std;
    size_t std_len;  /* bytes of the element in the layout */
    int frac_digits; /* STD_FRAC*: number of digits */
    char frac_sep;   /* '.' or ',' */
} chunk_t;

static const char *LONG_MONTHS[] = {"January", "February", "March",     "April",
                                    "May",     "June",     "July",      "August",
                                    "September", "October", "November", "December"};
static const char *LONG_DAYS[] = {"Sunday",   "Monday", "Tuesday", "Wednesday",
                                  "Thursday", "Friday", "Saturday"};

const char *pc_plib_weekday_name(int wday)
{
    return LONG_DAYS[((wday % 7) + 7) % 7];
}

const char *pc_plib_time_layout_const(const char *name, size_t n)
{
    static const struct {
        const char *name, *layout;
    } consts[] = {
        {"ANSIC", "Mon Jan _2 15:04:05 2006"},
        {"UnixDate", "Mon Jan _2 15:04:05 MST 2006"},
        {"RubyDate", "Mon Jan 02 15:04:05 -0700 2006"},
        {"RFC822", "02 Jan 06 15:04 MST"},
        {"RFC822Z", "02 Jan 06 15:04 -0700"},
        {"RFC850", "Monday, 02-Jan-06 15:04:05 MST"},
        {"RFC1123", "Mon, 02 Jan 2006 15:04:05 MST"},
        {"RFC1123Z", "Mon, 02 Jan 2006 15:04:05 -0700"},
        {"RFC3339", "2006-01-02T15:04:05Z07:00"},
        {"RFC3339Nano", "2006-01-02T15:04:05.999999999Z07:00"},
    };
    for (size_t i = 0; i < sizeof(consts) / sizeof(consts[0]); i++)
        if (strlen(consts[i].name) == n && memcmp(consts[i].name, name, n) == 0)
            return consts[i].layout;
    return NULL;
}

static bool starts_lower(const char *s, size_t n)
{
    return n > 0 && s[0] >= 'a' && s[0] <= 'z';
}

static bool has(const char *l, size_t n, size_t i, const char *lit)
{
    size_t k = strlen(lit);
    return n >= i + k && memcmp(l + i, lit, k) == 0;
}

typedef struct {
    const char *lit;
    int std;
} std_lit_t;

/* The first of t's layout literals found at l[i]: it becomes c's std chunk. */
static bool match_lit(chunk_t *c, const char *l, size_t n, size_t i, const std_lit_t *t,
                      size_t nt)
{
    for (size_t k = 0; k < nt; k++)
        if (has(l, n, i, t[k].lit)) {
            c->std = t[k].std;
            c->std_len = strlen(t[k].lit);
            return true;
        }
    return false;
}

/* Go's nextStdChunk */
static void next_chunk(const char *l, size_t n, chunk_t *c)
{
    memset(c, 0, sizeof(*c));
    for (size_t i = 0; i < n; i++) {
        c->prefix_len = i;
        switch (l[i]) {
        case 'J':
            if (has(l, n, i, "Jan")) {
                if (has(l, n, i, "January")) {
                    c->std = STD_LONG_MONTH;
                    c->std_len = 7;
                    return;
                }
                if (!starts_lower(l + i + 3, n - i - 3)) {
                    c->std = STD_MONTH;
                    c->std_len = 3;
                    return;
                }
            }
            break;
        case 'M':
            if (has(l, n, i, "Mon")) {
                if (has(l, n, i, "Monday")) {
                    c->std = STD_LONG_WEEKDAY;
                    c->std_len = 6;
                    return;
                }
                if (!starts_lower(l + i + 3, n - i - 3)) {
                    c->std = STD_WEEKDAY;
                    c->std_len = 3;
                    return;
                }
            }
            if (has(l, n, i, "MST")) {
                c->std = STD_TZ;
                c->std_len = 3;
                return;
            }
            break;
        case '0':
            if (i + 1 < n && l[i + 1] >= '1' && l[i + 1] <= '6') {
                static const int z[] = {STD_ZERO_MONTH,  STD_ZERO_DAY,    STD_ZERO_HOUR12,
                                        STD_ZERO_MINUTE, STD_ZERO_SECOND, STD_YEAR};
                c->std = z[l[i + 1] - '1'];
                c->std_len = 2;
                return;
            }
            if (has(l, n, i, "002")) {
                c->std = STD_ZERO_YEARDAY;
                c->std_len = 3;
                return;
            }
            break;
        case '1':
            if (i + 1 < n && l[i + 1] == '5') {
                c->std = STD_HOUR;
                c->std_len = 2;
                return;
            }
            c->std = STD_NUM_MONTH;
            c->std_len = 1;
            return;
        case '2':
            if (has(l, n, i, "2006")) {
                c->std = STD_LONG_YEAR;
                c->std_len = 4;
                return;
            }
            c->std = STD_DAY;
            c->std_len = 1;
            return;
        case '_':
            if (i + 1 < n && l[i + 1] == '2') {
                if (has(l, n, i + 1, "2006")) {
                    c->prefix_len = i + 1;
                    c->std = STD_LONG_YEAR;
                    c->std_len = 4;
                    return;
                }
                c->std = STD_UNDER_DAY;
                c->std_len = 2;
                return;
            }
            if (has(l, n, i, "__2")) {
                c->std = STD_UNDER_YEARDAY;
                c->std_len = 3;
                return;
            }
            break;
        case '3':
            c->std = STD_HOUR12;
            c->std_len = 1;
            return;
        case '4':
            c->std = STD_MINUTE;
            c->std_len = 1;
            return;
        case '5':
            c->std = STD_SECOND;
            c->std_len = 1;
            return;
        case 'P':
            if (i + 1 < n && l[i + 1] == 'M') {
                c->std = STD_PM_UPPER;
                c->std_len = 2;
                return;
            }
            break;
        case 'p':
            if (i + 1 < n && l[i + 1] == 'm') {
                c->std = STD_PM_LOWER;
                c->std_len = 2;
                return;
            }
            break;
        case '-': {
            static const std_lit_t t[] = {{"-070000", STD_NUM_SECONDS_TZ},
                                          {"-07:00:00", STD_NUM_COLON_SECONDS_TZ},
                                          {"-0700", STD_NUM_TZ},
                                          {"-07:00", STD_NUM_COLON_TZ},
                                          {"-07", STD_NUM_SHORT_TZ}};
            if (match_lit(c, l, n, i, t, 5)) return;
            break;
        }
        case 'Z': {
            static const std_lit_t t[] = {{"Z070000", STD_ISO8601_SECONDS_TZ},
                                          {"Z07:00:00", STD_ISO8601_COLON_SECONDS_TZ},
                                          {"Z0700", STD_ISO8601_TZ},
                                          {"Z07:00", STD_ISO8601_COLON_TZ},
                                          {"Z07", STD_ISO8601_SHORT_TZ}};
            if (match_lit(c, l, n, i, t, 5)) return;
            break;
        }
        case '.':
        case ',':
            if (i + 1 < n && (l[i + 1] == '0' || l[i + 1] == '9')) {
                char ch = l[i + 1];
                size_t j = i + 1;
                while (j < n && l[j] == ch) j++;
                if (!(j < n && isdigit((unsigned char)l[j]))) {
                    c->std = ch == '0' ? STD_FRAC0 : STD_FRAC9;
                    c->std_len = j - i;
                    c->frac_digits = (int)(j - i - 1);
                    c->frac_sep = l[i];
                    return;
                }
            }
            break;
        }
    }
    c->prefix_len = n;
    c->std = STD_NONE;
}

/* ---- civil time ----------------------------------------------------------- */

void pc_plib_time_civil(int64_t ns, const pc_plib_tz_t *tz, pc_plib_civil_t *out)
{
    /* floor division without overflow at INT64_MIN */
    int64_t rem = ns % 1000000000;
    int64_t sec = ns / 1000000000 - (rem < 0 ? 1 : 0);
    int64_t nsec = rem < 0 ? rem + 1000000000 : rem;
    pc_plib_tz_info_t zi;
    pc_plib_tz_lookup(tz, sec, &zi);
    int64_t local = sec + zi.offset;
    int64_t days = pc__floor_div(local, 86400);
    int64_t sod = local - days * 86400;
    pc__civil_from_days(days, &out->year, &out->month, &out->day);
    out->hour = (int)(sod / 3600);
    out->min = (int)(sod % 3600 / 60);
    out->sec = (int)(sod % 60);
    out->nsec = (int)nsec;
    out->wday = (int)(((days % 7) + 7 + 4) % 7); /* 1970-01-01 was a Thursday */
    out->yday = (int)(days - pc__days_from_civil(out->year, 1, 1)) + 1;
    out->offset = zi.offset;
    memcpy(out->abbr, zi.abbr, sizeof(out->abbr));
}

/* ---- format -------------------------------------------------------------- */

static void add_int(pc__sbuf_t *b, int64_t v, int width)
{
    char buf[32];
    if (v < 0) {
        pc__sbuf_addc(b, '-');
        v = -v;
    }
    int k = snprintf(buf, sizeof(buf), "%lld", (long long)v);
    if (k < width) pc__sbuf_addrep(b, '0', (size_t)(width - k));
    pc__sbuf_add(b, buf, (size_t)k);
}

static void add_nano(pc__sbuf_t *b, int nsec, const chunk_t *c)
{
    char digs[10];
    snprintf(digs, sizeof(digs), "%09d", nsec);
    int n = c->frac_digits > 9 ? 9 : c->frac_digits;
    if (c->std == STD_FRAC9) {
        while (n > 0 && digs[n - 1] == '0') n--;
        if (n == 0) return;
    }
    pc__sbuf_addc(b, c->frac_sep);
    pc__sbuf_add(b, digs, (size_t)n);
}

static void format_chunks(pc__sbuf_t *b, const pc_plib_civil_t *t, const char *l, size_t n)
{
    while (n > 0) {
        chunk_t c;
        next_chunk(l, n, &c);
        pc__sbuf_add(b, l, c.prefix_len);
        if (c.std == STD_NONE) break;
        switch (c.std) {
        case STD_YEAR: add_int(b, ((t->year % 100) + 100) % 100, 2); break;
        case STD_LONG_YEAR: add_int(b, t->year, 4); break;
        case STD_MONTH: pc__sbuf_add(b, LONG_MONTHS[t->month - 1], 3); break;
        case STD_LONG_MONTH: pc__sbuf_adds(b, LONG_MONTHS[t->month - 1]); break;
        case STD_NUM_MONTH: add_int(b, t->month, 0); break;
        case STD_ZERO_MONTH: add_int(b, t->month, 2); break;
        case STD_WEEKDAY: pc__sbuf_add(b, LONG_DAYS[t->wday], 3); break;
        case STD_LONG_WEEKDAY: pc__sbuf_adds(b, LONG_DAYS[t->wday]); break;
        case STD_DAY: add_int(b, t->day, 0); break;
        case STD_UNDER_DAY:
            if (t->day < 10) pc__sbuf_addc(b, ' ');
            add_int(b, t->day, 0);
            break;
        case STD_ZERO_DAY: add_int(b, t->day, 2); break;
        case STD_UNDER_YEARDAY:
            if (t->yday < 100) pc__sbuf_addc(b, ' ');
            if (t->yday < 10) pc__sbuf_addc(b, ' ');
            add_int(b, t->yday, 0);
            break;
        case STD_ZERO_YEARDAY: add_int(b, t->yday, 3); break;
        case STD_HOUR: add_int(b, t->hour, 2); break;
        case STD_HOUR12: add_int(b, t->hour % 12 == 0 ? 12 : t->hour % 12, 0); break;
        case STD_ZERO_HOUR12: add_int(b, t->hour % 12 == 0 ? 12 : t->hour % 12, 2); break;
        case STD_MINUTE: add_int(b, t->min, 0); break;
        case STD_ZERO_MINUTE: add_int(b, t->min, 2); break;
        case STD_SECOND: add_int(b, t->sec, 0); break;
        case STD_ZERO_SECOND: add_int(b, t->sec, 2); break;
        case STD_PM_UPPER: pc__sbuf_adds(b, t->hour >= 12 ? "PM" : "AM"); break;
        case STD_PM_LOWER: pc__sbuf_adds(b, t->hour >= 12 ? "pm" : "am"); break;
        case STD_ISO8601_TZ:
        case STD_ISO8601_COLON_TZ:
        case STD_ISO8601_SECONDS_TZ:
        case STD_ISO8601_SHORT_TZ:
        case STD_ISO8601_COLON_SECONDS_TZ:
        case STD_NUM_TZ:
        case STD_NUM_COLON_TZ:
        case STD_NUM_SECONDS_TZ:
        case STD_NUM_SHORT_TZ:
        case STD_NUM_COLON_SECONDS_TZ: {
            bool iso = c.std >= STD_ISO8601_TZ && c.std <= STD_ISO8601_COLON_SECONDS_TZ;
            if (t->offset == 0 && iso) {
                pc__sbuf_addc(b, 'Z');
                break;
            }
            int zone = t->offset / 60, abs = t->offset;
            if (zone < 0) {
                pc__sbuf_addc(b, '-');
                zone = -zone;
                abs = -abs;
            } else {
                pc__sbuf_addc(b, '+');
            }
            add_int(b, zone / 60, 2);
            bool colon = c.std == STD_ISO8601_COLON_TZ || c.std == STD_NUM_COLON_TZ ||
                         c.std == STD_ISO8601_COLON_SECONDS_TZ || c.std == STD_NUM_COLON_SECONDS_TZ;
            if (colon) pc__sbuf_addc(b, ':');
            if (c.std != STD_NUM_SHORT_TZ && c.std != STD_ISO8601_SHORT_TZ) add_int(b, zone % 60, 2);
            if (c.std == STD_ISO8601_SECONDS_TZ || c.std == STD_NUM_SECONDS_TZ ||
                c.std == STD_NUM_COLON_SECONDS_TZ || c.std == STD_ISO8601_COLON_SECONDS_TZ) {
                if (c.std == STD_NUM_COLON_SECONDS_TZ || c.std == STD_ISO8601_COLON_SECONDS_TZ)
                    pc__sbuf_addc(b, ':');
                add_int(b, abs % 60, 2);
            }
            break;
        }
        case STD_TZ:
            if (t->abbr[0]) {
                pc__sbuf_adds(b, t->abbr);
                break;
            }
            {
                int zone = t->offset / 60;
                if (zone < 0) {
                    pc__sbuf_addc(b, '-');
                    zone = -zone;
                } else {
                    pc__sbuf_addc(b, '+');
                }
                add_int(b, zone / 60, 2);
                add_int(b, zone % 60, 2);
            }
            break;
        case STD_FRAC0:
        case STD_FRAC9: add_nano(b, t->nsec, &c); break;
        }
        l += c.prefix_len + c.std_len;
        n -= c.prefix_len + c.std_len;
    }
}

char *pc_plib_time_format(int64_t ns, const pc_plib_tz_t *tz, const char *layout, size_t ln,
                          size_t *out_len)
{
    pc_plib_civil_t t;
    pc_plib_time_civil(ns, tz, &t);
    pc__sbuf_t b = {0};
    pc__sbuf_reserve(&b, ln + 16);
    format_chunks(&b, &t, layout, ln);
    return pc__sbuf_take(&b, out_len);
}

/* ---- parse --------------------------------------------------------------- */

typedef struct {
    const char *v; /* remaining value */
    size_t n;
} cur_t;

static void cutspace(const char **s, size_t *n)
{
    while (*n > 0 && **s == ' ') {
        (*s)++;
        (*n)--;
    }
}

/* Go's skip(): literal text, where a run of spaces matches a run of spaces */
static bool skip_lit(cur_t *c, const char *p, size_t pn)
{
    while (pn > 0) {
        if (*p == ' ') {
            if (c->n > 0 && c->v[0] != ' ') return false;
            cutspace(&p, &pn);
            cutspace(&c->v, &c->n);
            continue;
        }
        if (c->n == 0 || c->v[0] != *p) return false;
        p++;
        pn--;
        c->v++;
        c->n--;
    }
    return true;
}

/* getnum: one or two digits (exactly two when fixed) */
static bool getnum(cur_t *c, bool fixed, int *out)
{
    if (c->n == 0 || !isdigit((unsigned char)c->v[0])) return false;
    if (c->n < 2 || !isdigit((unsigned char)c->v[1])) {
        if (fixed) return false;
        *out = c->v[0] - '0';
        c->v++;
        c->n--;
        return true;
    }
    *out = (c->v[0] - '0') * 10 + (c->v[1] - '0');
    c->v += 2;
    c->n -= 2;
    return true;
}

static bool getnum3(cur_t *c, bool fixed, int *out)
{
    int v = 0, i = 0;
    for (; i < 3 && (size_t)i < c->n && isdigit((unsigned char)c->v[i]); i++) v = v * 10 + (c->v[i] - '0');
    if (i == 0 || (fixed && i != 3)) return false;
    c->v += i;
    c->n -= (size_t)i;
    *out = v;
    return true;
}

static int lookup_name(cur_t *c, const char *const *names, size_t count, size_t len)
{
    for (size_t i = 0; i < count; i++) {
        size_t k = len ? len : strlen(names[i]);
        if (c->n >= k && strncasecmp(c->v, names[i], k) == 0) {
            c->v += k;
            c->n -= k;
            return (int)i;
        }
    }
    return -1;
}

/* Go's parseTimeZone: length of a zone abbreviation at the start of v, or 0 */
static size_t tz_abbr_len(const char *v, size_t n)
{
    if (n < 3) return 0;
    if (n >= 4 && (memcmp(v, "ChST", 4) == 0 || memcmp(v, "MeST", 4) == 0)) return 4;
    if (memcmp(v, "GMT", 3) == 0) {
        size_t k = 3;
        if (k < n && (v[k] == '+' || v[k] == '-')) {
            size_t j = k + 1;
            int x = 0;
            while (j < n && isdigit((unsigned char)v[j]) && x < 100) x = x * 10 + (v[j++] - '0');
            if (j == k + 1 || x > 23 || (x == 0 && v[k] == '+')) return 3;
            return j;
        }
        return 3;
    }
    if (n >= 3 && v[0] == 'U' && v[1] == 'T' && v[2] == 'C') return 3;
    size_t k = 0;
    while (k < n && isupper((unsigned char)v[k])) k++;
    switch (k) {
    case 0:
    case 1:
    case 2: return 0;
    case 5:
        if (v[4] == 'T') return 5;
        return 0;
    case 4:
        if (v[3] == 'T' || memcmp(v, "WITA", 4) == 0) return 4;
        return 0;
    case 3: return 3;
    }
    return 0;
}

static void parse_err(char *err, size_t errlen, const char *value, size_t vn, const char *layout,
                      size_t ln, const char *rest, size_t rn, const char *elem, size_t en,
                      const char *msg)
{
    if (!err || !errlen) return;
    if (msg)
        snprintf(err, errlen, "parsing time \"%.*s\"%s", (int)vn, value, msg);
    else
        snprintf(err, errlen, "parsing time \"%.*s\" as \"%.*s\": cannot parse \"%.*s\" as \"%.*s\"",
                 (int)vn, value, (int)ln, layout, (int)rn, rest, (int)en, elem);
}

bool pc_plib_time_parse_ns(const char *layout, size_t ln, const char *value, size_t vn,
                           int64_t *ns, char *err, size_t errlen)
{
    static const char *SHORT_MONTHS[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                         "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    static const char *SHORT_DAYS[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    cur_t c = {value, vn};
    const char *l = layout;
    size_t lrem = ln;
    int64_t year = 1;
    int month = -1, day = -1, yday = -1, hour = 0, min = 0, sec = 0, nsec = 0;
    bool pm_set = false, am_set = false, have_off = false, have_name = false;
    int zone_off = 0;
    for (;;) {
        chunk_t ch;
        next_chunk(l, lrem, &ch);
        const char *stdstr = l + ch.prefix_len;
        if (!skip_lit(&c, l, ch.prefix_len)) {
            parse_err(err, errlen, value, vn, layout, ln, c.v, c.n, l, ch.prefix_len, NULL);
            return false;
        }
        if (ch.std == STD_NONE) {
            if (c.n > 0) {
                char msg[300];
                snprintf(msg, sizeof(msg), ": extra text: \"%.*s\"", (int)c.n, c.v);
                parse_err(err, errlen, value, vn, layout, ln, NULL, 0, NULL, 0, msg);
                return false;
            }
            break;
        }
        l += ch.prefix_len + ch.std_len;
        lrem -= ch.prefix_len + ch.std_len;
        cur_t hold = c;
        bool ok = true;
        const char *range = NULL;
        switch (ch.std) {
        case STD_YEAR: {
            int y;
            if (c.n < 2 || !getnum(&c, true, &y)) {
                ok = false;
                break;
            }
            year = y >= 69 ? 1900 + y : 2000 + y;
            break;
        }
        case STD_LONG_YEAR:
            if (c.n < 4 || !isdigit((unsigned char)c.v[0]) || !isdigit((unsigned char)c.v[1]) ||
                !isdigit((unsigned char)c.v[2]) || !isdigit((unsigned char)c.v[3])) {
                ok = false;
                break;
            }
            year = (c.v[0] - '0') * 1000 + (c.v[1] - '0') * 100 + (c.v[2] - '0') * 10 + (c.v[3] - '0');
            c.v += 4;
            c.n -= 4;
            break;
        case STD_MONTH:
            month = lookup_name(&c, SHORT_MONTHS, 12, 3) + 1;
            ok = month > 0;
            break;
        case STD_LONG_MONTH:
            month = lookup_name(&c, LONG_MONTHS, 12, 0) + 1;
            ok = month > 0;
            break;
        case STD_NUM_MONTH:
        case STD_ZERO_MONTH:
            ok = getnum(&c, ch.std == STD_ZERO_MONTH, &month);
            if (ok && (month <= 0 || month > 12)) range = "month";
            break;
        case STD_WEEKDAY: ok = lookup_name(&c, SHORT_DAYS, 7, 3) >= 0; break;
        case STD_LONG_WEEKDAY: ok = lookup_name(&c, LONG_DAYS, 7, 0) >= 0; break;
        case STD_DAY:
        case STD_UNDER_DAY:
        case STD_ZERO_DAY:
            if (ch.std == STD_UNDER_DAY && c.n > 0 && c.v[0] == ' ') {
                c.v++;
                c.n--;
            }
            ok = getnum(&c, ch.std == STD_ZERO_DAY, &day);
            break;
        case STD_UNDER_YEARDAY:
        case STD_ZERO_YEARDAY:
            for (int i = 0; i < 2; i++)
                if (ch.std == STD_UNDER_YEARDAY && c.n > 0 && c.v[0] == ' ') {
                    c.v++;
                    c.n--;
                }
            ok = getnum3(&c, ch.std == STD_ZERO_YEARDAY, &yday);
            if (ok && (yday < 1 || yday > 366)) range = "day-of-year";
            break;
        case STD_HOUR:
            ok = getnum(&c, false, &hour);
            if (ok && (hour < 0 || hour >= 24)) range = "hour";
            break;
        case STD_HOUR12:
        case STD_ZERO_HOUR12:
            ok = getnum(&c, ch.std == STD_ZERO_HOUR12, &hour);
            if (ok && (hour < 0 || hour > 12)) range = "hour";
            break;
        case STD_MINUTE:
        case STD_ZERO_MINUTE:
            ok = getnum(&c, ch.std == STD_ZERO_MINUTE, &min);
            if (ok && (min < 0 || min >= 60)) range = "minute";
            break;
        case STD_SECOND:
        case STD_ZERO_SECOND:
            ok = getnum(&c, ch.std == STD_ZERO_SECOND, &sec);
            if (ok && (sec < 0 || sec >= 60)) {
                range = "second";
                break;
            }
            /* a fractional second in the value that the layout does not name */
            if (ok && c.n >= 2 && (c.v[0] == '.' || c.v[0] == ',') && isdigit((unsigned char)c.v[1])) {
                chunk_t nx;
                next_chunk(l, lrem, &nx);
                if (nx.prefix_len == 0 && (nx.std == STD_FRAC0 || nx.std == STD_FRAC9)) break;
                size_t k = 1;
                while (k < c.n && isdigit((unsigned char)c.v[k])) k++;
                int64_t scale = 1000000000, v = 0;
                for (size_t j = 1; j < k; j++) {
                    if (j <= 9) {
                        v = v * 10 + (c.v[j] - '0');
                        scale /= 10;
                    }
                }
                nsec = (int)(v * scale);
                c.v += k;
                c.n -= k;
            }
            break;
        case STD_PM_UPPER:
        case STD_PM_LOWER:
            if (c.n < 2) {
                ok = false;
                break;
            }
            if ((ch.std == STD_PM_UPPER && memcmp(c.v, "PM", 2) == 0) ||
                (ch.std == STD_PM_LOWER && memcmp(c.v, "pm", 2) == 0))
                pm_set = true;
            else if ((ch.std == STD_PM_UPPER && memcmp(c.v, "AM", 2) == 0) ||
                     (ch.std == STD_PM_LOWER && memcmp(c.v, "am", 2) == 0))
                am_set = true;
            else
                ok = false;
            if (ok) {
                c.v += 2;
                c.n -= 2;
            }
            break;
        case STD_ISO8601_TZ:
        case STD_ISO8601_COLON_TZ:
        case STD_ISO8601_SECONDS_TZ:
        case STD_ISO8601_SHORT_TZ:
        case STD_ISO8601_COLON_SECONDS_TZ:
            if (c.n >= 1 && c.v[0] == 'Z') {
                c.v++;
                c.n--;
                have_off = true;
                zone_off = 0;
                break;
            }
            /* fall through */
        case STD_NUM_TZ:
        case STD_NUM_COLON_TZ:
        case STD_NUM_SECONDS_TZ:
        case STD_NUM_SHORT_TZ:
        case STD_NUM_COLON_SECONDS_TZ: {
            int s = ch.std;
            bool colon = s == STD_ISO8601_COLON_TZ || s == STD_NUM_COLON_TZ;
            bool colsec = s == STD_ISO8601_COLON_SECONDS_TZ || s == STD_NUM_COLON_SECONDS_TZ;
            bool secs = s == STD_ISO8601_SECONDS_TZ || s == STD_NUM_SECONDS_TZ;
            bool shrt = s == STD_ISO8601_SHORT_TZ || s == STD_NUM_SHORT_TZ;
            size_t need = colon ? 6 : colsec ? 9 : secs ? 7 : shrt ? 3 : 5;
            if (c.n < need || (c.v[0] != '+' && c.v[0] != '-')) {
                ok = false;
                break;
            }
            const char *v = c.v;
            int hh, mm = 0, ss = 0;
            cur_t t = {v + 1, need - 1};
            if (!getnum(&t, true, &hh)) ok = false;
            if (ok && !shrt) {
                if ((colon || colsec) && (t.n == 0 || *t.v++ != ':' || !t.n--)) ok = false;
                if (ok && !getnum(&t, true, &mm)) ok = false;
            }
            if (ok && (secs || colsec)) {
                if (colsec && (t.n == 0 || *t.v++ != ':' || !t.n--)) ok = false;
                if (ok && !getnum(&t, true, &ss)) ok = false;
            }
            if (!ok) break;
            if (hh > 24 || mm > 60 || ss > 60) {
                range = "time zone offset";
                break;
            }
            zone_off = (hh * 60 + mm) * 60 + ss;
            if (v[0] == '-') zone_off = -zone_off;
            have_off = true;
            c.v += need;
            c.n -= need;
            break;
        }
        case STD_TZ: {
            if (c.n >= 3 && memcmp(c.v, "UTC", 3) == 0) {
                c.v += 3;
                c.n -= 3;
                have_off = true;
                zone_off = 0;
                break;
            }
            size_t k = tz_abbr_len(c.v, c.n);
            if (k == 0) {
                ok = false;
                break;
            }
            if (k > 3 && memcmp(c.v, "GMT", 3) == 0) {
                /* digits after "GMT±", within the abbreviation: the value is
                 * not NUL-terminated, so no atoi */
                int x = 0;
                for (size_t j = 4; j < k && c.v[j] >= '0' && c.v[j] <= '9' && x < 1000; j++)
                    x = x * 10 + (c.v[j] - '0');
                zone_off = (c.v[3] == '-' ? -x : x) * 3600;
                have_off = true;
            } else {
                have_name = true; /* unknown abbreviation: zero offset */
            }
            c.v += k;
            c.n -= k;
            break;
        }
        case STD_FRAC0: {
            size_t nd = 1 + (size_t)ch.frac_digits;
            if (c.n < nd || c.v[0] != ch.frac_sep) {
                ok = false;
                break;
            }
            int64_t v = 0, scale = 1000000000;
            for (size_t j = 1; j < nd; j++) {
                if (!isdigit((unsigned char)c.v[j])) {
                    ok = false;
                    break;
                }
                if (j <= 9) {
                    v = v * 10 + (c.v[j] - '0');
                    scale /= 10;
                }
            }
            if (!ok) break;
            nsec = (int)(v * scale);
            c.v += nd;
            c.n -= nd;
            break;
        }
        case STD_FRAC9: {
            if (c.n < 2 || (c.v[0] != '.' && c.v[0] != ',') || !isdigit((unsigned char)c.v[1]))
                break; /* fractional second omitted */
            size_t k = 1;
            while (k < c.n && isdigit((unsigned char)c.v[k])) k++;
            int64_t v = 0, scale = 1000000000;
            for (size_t j = 1; j < k; j++) {
                if (j <= 9) {
                    v = v * 10 + (c.v[j] - '0');
                    scale /= 10;
                }
            }
            nsec = (int)(v * scale);
            c.v += k;
            c.n -= k;
            break;
        }
        }
        if (range) {
            char msg[64];
            snprintf(msg, sizeof(msg), ": %s out of range", range);
            parse_err(err, errlen, value, vn, layout, ln, NULL, 0, NULL, 0, msg);
            return false;
        }
        if (!ok) {
            parse_err(err, errlen, value, vn, layout, ln, hold.v, hold.n, stdstr, ch.std_len, NULL);
            return false;
        }
    }
    if (pm_set && hour < 12)
        hour += 12;
    else if (am_set && hour == 12)
        hour = 0;
    if (yday >= 0) {
        int m = 0, d = 0;
        if (pc__is_leap(year)) {
            if (yday == 31 + 29) {
                m = 2;
                d = 29;
            } else if (yday > 31 + 29) {
                yday--;
            }
        } else if (yday > 365) {
            parse_err(err, errlen, value, vn, layout, ln, NULL, 0, NULL, 0, ": day-of-year out of range");
            return false;
        }
        if (m == 0) {
            static const int before[] = {0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334, 365};
            m = (yday - 1) / 31 + 1;
            if (before[m] < yday) m++;
            d = yday - before[m - 1];
        }
        if ((month >= 0 && month != m) || (day >= 0 && day != d)) {
            parse_err(err, errlen, value, vn, layout, ln, NULL, 0, NULL, 0, ": day-of-year does not match month");
            return false;
        }
        month = m;
        day = d;
    } else {
        if (month < 0) month = 1;
        if (day < 0) day = 1;
    }
    if (day < 1 || day > pc__days_in(month, year)) {
        parse_err(err, errlen, value, vn, layout, ln, NULL, 0, NULL, 0, ": day out of range");
        return false;
    }
    (void)have_name;
    int64_t days = pc__days_from_civil(year, month, day);
    int64_t s = days * 86400 + hour * 3600 + min * 60 + sec - (have_off ? zone_off : 0);
    /* fits int64 nanoseconds? */
    if (s < INT64_MIN / 1000000000 - 1 || s > INT64_MAX / 1000000000) goto range;
    __int128 total = (__int128)s * 1000000000 + nsec;
    if (total < INT64_MIN || total > INT64_MAX) goto range;
    *ns = (int64_t)total;
    return true;
range:
    if (err && errlen) snprintf(err, errlen, "time outside of valid range");
    return false;
}

/* ---- AddDate / diff ------------------------------------------------------- */

/* Go's Date(): normalise and resolve local time in tz; false on overflow */
static bool go_date(int64_t year, int64_t month, int64_t day, int hour, int min, int sec, int nsec,
                    const pc_plib_tz_t *tz, __int128 *ns_out)
{
    /* month 1..12 */
    int64_t m = month - 1;
    year += pc__floor_div(m, 12);
    m -= pc__floor_div(m, 12) * 12;
    if (year > 1000000000LL || year < -1000000000LL) return false;
    __int128 days = (__int128)pc__days_from_civil(year, (int)m + 1, 1) + (day - 1);
    __int128 unix = days * 86400 + hour * 3600 + min * 60 + sec;
    if (unix > ((__int128)1 << 100) || unix < -((__int128)1 << 100)) return false;
    if (unix > INT64_MAX / 2 || unix < INT64_MIN / 2) return false;
    pc_plib_tz_info_t zi;
    pc_plib_tz_lookup(tz, (int64_t)unix, &zi);
    if (zi.offset != 0) {
        __int128 utc = unix - zi.offset;
        if (utc < zi.start || utc >= zi.end) pc_plib_tz_lookup(tz, (int64_t)utc, &zi);
        unix -= zi.offset;
    }
    *ns_out = unix * 1000000000 + nsec;
    return true;
}

bool pc_plib_time_add_date(int64_t ns, const pc_plib_tz_t *tz, int64_t years, int64_t months,
                           int64_t days, int64_t *out, char *err, size_t errlen)
{
    pc_plib_civil_t t;
    pc_plib_time_civil(ns, tz, &t);
    __int128 r;
    bool ok = years < 1000000000LL && years > -1000000000LL && months < 100000000000LL &&
              months > -100000000000LL && days < 1000000000000LL && days > -1000000000000LL;
    if (ok)
        ok = go_date(t.year + years, t.month + months, t.day + days, t.hour, t.min, t.sec, t.nsec,
                     tz, &r);
    if (!ok || r < INT64_MIN || r > INT64_MAX) {
        if (err && errlen) snprintf(err, errlen, "time outside of valid range");
        return false;
    }
    *out = (int64_t)r;
    return true;
}

void pc_plib_time_diff(int64_t ns1, const pc_plib_tz_t *tz1, int64_t ns2, const pc_plib_tz_t *tz2,
                       int64_t out[6])
{
    (void)tz2; /* both are viewed in the first one's zone */
    if (ns1 > ns2) {
        int64_t t = ns1;
        ns1 = ns2;
        ns2 = t;
    }
    pc_plib_civil_t a, b;
    pc_plib_time_civil(ns1, tz1, &a);
    pc_plib_time_civil(ns2, tz1, &b);
    int64_t year = b.year - a.year, month = b.month - a.month, day = b.day - a.day,
            hour = b.hour - a.hour, min = b.min - a.min, sec = b.sec - a.sec;
    if (sec < 0) {
        sec += 60;
        min--;
    }
    if (min < 0) {
        min += 60;
        hour--;
    }
    if (hour < 0) {
        hour += 24;
        day--;
    }
    if (day < 0) {
        /* days in a's month: Date(y1, M1, 32) normalised */
        day += pc__days_in(a.month, a.year);
        month--;
    }
    if (month < 0) {
        month += 12;
        year--;
    }
    out[0] = year;
    out[1] = month;
    out[2] = day;
    out[3] = hour;
    out[4] = min;
    out[5] = sec;
}

/* ---- durations -------------------------------------------------------------- */

static void quote_into(char *buf, size_t cap, const char *s, size_t n)
{
    snprintf(buf, cap, "\"%.*s\"", (int)(n > 200 ? 200 : n), s);
}

bool pc_plib_duration_parse(const char *s, size_t n, int64_t *out, char *err, size_t errlen)
{
    const char *orig = s;
    size_t on = n;
    char q[256];
    uint64_t d = 0;
    bool neg = false;
    if (n > 0 && (s[0] == '-' || s[0] == '+')) {
        neg = s[0] == '-';
        s++;
        n--;
    }
    if (n == 1 && s[0] == '0') {
        *out = 0;
        return true;
    }
    if (n == 0) goto invalid;
    while (n > 0) {
        uint64_t v = 0, f = 0;
        double scale = 1;
        if (!(s[0] == '.' || isdigit((unsigned char)s[0]))) goto invalid;
        size_t pl = n;
        while (n > 0 && isdigit((unsigned char)s[0])) {
            if (v > (1ULL << 63) / 10) goto invalid;
            v = v * 10 + (uint64_t)(s[0] - '0');
            if (v > (1ULL << 63)) goto invalid;
            s++;
            n--;
        }
        bool pre = pl != n, post = false;
        if (n > 0 && s[0] == '.') {
            s++;
            n--;
            size_t pl2 = n;
            bool overflow = false;
            while (n > 0 && isdigit((unsigned char)s[0])) {
                if (!overflow) {
                    if (f > (1ULL << 63) / 10) {
                        overflow = true;
                    } else {
                        uint64_t y = f * 10 + (uint64_t)(s[0] - '0');
                        if (y > (1ULL << 63)) {
                            overflow = true;
                        } else {
                            f = y;
                            scale *= 10;
                        }
                    }
                }
                s++;
                n--;
            }
            post = pl2 != n;
        }
        if (!pre && !post) goto invalid;
        size_t i = 0;
        while (i < n && s[i] != '.' && !isdigit((unsigned char)s[i])) i++;
        if (i == 0) {
            quote_into(q, sizeof(q), orig, on);
            if (err && errlen) snprintf(err, errlen, "time: missing unit in duration %s", q);
            return false;
        }
        uint64_t unit = 0;
        static const struct {
            const char *u;
            uint64_t v;
        } units[] = {{"ns", 1},          {"us", 1000},          {"\xc2\xb5s", 1000},
                     {"\xce\xbcs", 1000}, {"ms", 1000000},       {"s", 1000000000},
                     {"m", 60000000000ULL}, {"h", 3600000000000ULL}};
        for (size_t k = 0; k < sizeof(units) / sizeof(units[0]); k++)
            if (strlen(units[k].u) == i && memcmp(units[k].u, s, i) == 0) unit = units[k].v;
        if (!unit) {
            char uq[128];
            quote_into(uq, sizeof(uq), s, i);
            quote_into(q, sizeof(q), orig, on);
            if (err && errlen) snprintf(err, errlen, "time: unknown unit %s in duration %s", uq, q);
            return false;
        }
        s += i;
        n -= i;
        if (v > (1ULL << 63) / unit) goto invalid;
        v *= unit;
        if (f > 0) {
            v += (uint64_t)((double)f * ((double)unit / scale));
            if (v > (1ULL << 63)) goto invalid;
        }
        d += v;
        if (d > (1ULL << 63)) goto invalid;
    }
    if (neg) {
        *out = d == (1ULL << 63) ? INT64_MIN : -(int64_t)d;
        return true;
    }
    if (d > (uint64_t)INT64_MAX) goto invalid;
    *out = (int64_t)d;
    return true;
invalid:
    quote_into(q, sizeof(q), orig, on);
    if (err && errlen) snprintf(err, errlen, "time: invalid duration %s", q);
    return false;
}
