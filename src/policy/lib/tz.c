/*
 * TZif reader and Go-compatible zone lookup. Only the 64-bit (v2+) data is
 * used when present; the footer rule covers instants after the last
 * transition, computed per year exactly like Go's tzset().
 */
#include "policy/lib/tz.h"

#include <ctype.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ZONEINFO_DIR "/usr/share/zoneinfo/"
#define MAX_TZFILE (1u << 20)
#define ALPHA INT64_MIN
#define OMEGA INT64_MAX

typedef struct {
    int32_t offset;
    bool dst;
    char abbr[16];
} zone_t;

typedef struct {
    int64_t when;
    uint8_t idx;
} trans_t;

struct pc_plib_tz {
    char *name;
    zone_t *zones;
    size_t nzones;
    trans_t *tx;
    size_t ntx;
    char *extend; /* POSIX TZ footer, or NULL */
    struct pc_plib_tz *next;
};

static pc_plib_tz_t utc_zone = {.name = (char *)"UTC"};
static pthread_mutex_t tz_lock = PTHREAD_MUTEX_INITIALIZER;
static pc_plib_tz_t *loaded;

const pc_plib_tz_t *pc_plib_tz_utc(void)
{
    return &utc_zone;
}

/* ---- calendar helpers --------------------------------------------------- */

bool pc__is_leap(int64_t y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

int pc__days_in(int m, int64_t y)
{
    static const int d[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return m == 2 && pc__is_leap(y) ? 29 : d[m - 1];
}

int64_t pc__days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

int64_t pc__floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    if ((a % b != 0) && ((a < 0) != (b < 0))) q--;
    return q;
}

void pc__civil_from_days(int64_t z, int64_t *y, int *m, int *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = yoe + era * 400 + (*m <= 2);
}

/* ---- POSIX TZ rules (Go's tzset) --------------------------------------- */

typedef struct {
    int kind; /* 0 julian (Jn), 1 day of year (n), 2 month/week/day (Mm.w.d) */
    int day, week, mon;
    int time;
} rule_t;

static const char *parse_name(const char *s, char *out, size_t cap)
{
    size_t k = 0;
    if (*s == '<') {
        s++;
        while (*s && *s != '>') {
            if (k + 1 < cap) out[k++] = *s;
            s++;
        }
        if (*s != '>') return NULL;
        s++;
    } else {
        while (*s && isalpha((unsigned char)*s)) {
            if (k + 1 < cap) out[k++] = *s;
            s++;
        }
        if (k < 3) return NULL;
    }
    out[k] = '\0';
    return s;
}

/* [+-]hh[:mm[:ss]] in seconds */
static const char *parse_hms(const char *s, int *out)
{
    int sign = 1;
    if (*s == '+' || *s == '-') sign = *s++ == '-' ? -1 : 1;
    int parts[3] = {0, 0, 0};
    for (int i = 0; i < 3; i++) {
        if (i > 0) {
            if (*s != ':') break;
            s++;
        }
        if (!isdigit((unsigned char)*s)) return NULL;
        int v = 0;
        while (isdigit((unsigned char)*s)) v = v * 10 + (*s++ - '0');
        if (v > 168) return NULL;
        parts[i] = v;
    }
    *out = sign * (parts[0] * 3600 + parts[1] * 60 + parts[2]);
    return s;
}

static const char *parse_rule(const char *s, rule_t *r)
{
    memset(r, 0, sizeof(*r));
    if (*s == 'J') {
        s++;
        r->kind = 0;
        r->day = 0;
        while (isdigit((unsigned char)*s)) r->day = r->day * 10 + (*s++ - '0');
        if (r->day < 1 || r->day > 365) return NULL;
    } else if (*s == 'M') {
        s++;
        r->kind = 2;
        int v[3] = {0, 0, 0};
        for (int i = 0; i < 3; i++) {
            if (i > 0 && *s++ != '.') return NULL;
            if (!isdigit((unsigned char)*s)) return NULL;
            while (isdigit((unsigned char)*s)) v[i] = v[i] * 10 + (*s++ - '0');
        }
        r->mon = v[0];
        r->week = v[1];
        r->day = v[2];
        if (r->mon < 1 || r->mon > 12 || r->week < 1 || r->week > 5 || r->day > 6) return NULL;
    } else if (isdigit((unsigned char)*s)) {
        r->kind = 1;
        while (isdigit((unsigned char)*s)) r->day = r->day * 10 + (*s++ - '0');
        if (r->day > 365) return NULL;
    } else {
        return NULL;
    }
    r->time = 7200;
    if (*s == '/') {
        s = parse_hms(s + 1, &r->time);
        if (!s) return NULL;
    }
    return s;
}

/* seconds since the start of `year` (UTC) at which the rule fires */
static int64_t rule_time(int64_t year, const rule_t *r, int off)
{
    int64_t s = 0;
    switch (r->kind) {
    case 0:
        s = (int64_t)(r->day - 1) * 86400;
        if (pc__is_leap(year) && r->day >= 60) s += 86400;
        break;
    case 1: s = (int64_t)r->day * 86400; break;
    default: {
        int m1 = (r->mon + 9) % 12 + 1;
        int64_t yy0 = year;
        if (r->mon <= 2) yy0--;
        int64_t yy1 = yy0 / 100, yy2 = yy0 % 100;
        int64_t dow = ((26 * m1 - 2) / 10 + 1 + yy2 + yy2 / 4 + yy1 / 4 - 2 * yy1) % 7;
        if (dow < 0) dow += 7;
        int64_t d = r->day - dow;
        if (d < 0) d += 7;
        for (int i = 1; i < r->week; i++) {
            if (d + 7 >= pc__days_in(r->mon, year)) break;
            d += 7;
        }
        static const int before[] = {0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334};
        d += before[r->mon - 1];
        if (pc__is_leap(year) && r->mon > 2) d++;
        s = d * 86400;
    }
    }
    return s + r->time - off;
}

bool pc_plib_tz_rule(const char *rule, int64_t sec, pc_plib_tz_info_t *out)
{
    char std_name[16], dst_name[16];
    int std_off, dst_off;
    const char *s = parse_name(rule, std_name, sizeof(std_name));
    if (!s) return false;
    s = parse_hms(s, &std_off);
    if (!s) return false;
    std_off = -std_off;
    if (*s == '\0' || *s == ',') {
        snprintf(out->abbr, sizeof(out->abbr), "%s", std_name);
        out->offset = std_off;
        out->start = ALPHA;
        out->end = OMEGA;
        out->dst = false;
        return true;
    }
    s = parse_name(s, dst_name, sizeof(dst_name));
    if (!s) return false;
    if (*s != ',' && *s != '\0') {
        s = parse_hms(s, &dst_off);
        if (!s) return false;
        dst_off = -dst_off;
    } else {
        dst_off = std_off + 3600;
    }
    rule_t r1, r2;
    if (*s == '\0') s = ",M3.2.0,M11.1.0";
    if (*s != ',') return false;
    s = parse_rule(s + 1, &r1);
    if (!s || *s != ',') return false;
    s = parse_rule(s + 1, &r2);
    if (!s || *s != '\0') return false;

    int64_t days = pc__floor_div(sec, 86400);
    int64_t y;
    int m, d;
    pc__civil_from_days(days, &y, &m, &d);
    int64_t year_start = pc__days_from_civil(y, 1, 1) * 86400;
    int64_t ysec = sec - year_start;
    int64_t start = rule_time(y, &r1, std_off), end = rule_time(y, &r2, dst_off);
    const char *sn = std_name, *dn = dst_name;
    int so = std_off, dso = dst_off;
    bool std_dst = false, dst_dst = true;
    if (end < start) {
        int64_t t = start;
        start = end;
        end = t;
        sn = dst_name;
        dn = std_name;
        so = dst_off;
        dso = std_off;
        std_dst = true;
        dst_dst = false;
    }
    if (ysec < start) {
        snprintf(out->abbr, sizeof(out->abbr), "%s", sn);
        out->offset = so;
        out->start = year_start;
        out->end = start + year_start;
        out->dst = std_dst;
    } else if (ysec >= end) {
        snprintf(out->abbr, sizeof(out->abbr), "%s", sn);
        out->offset = so;
        out->start = end + year_start;
        out->end = year_start + 365 * 86400;
        out->dst = std_dst;
    } else {
        snprintf(out->abbr, sizeof(out->abbr), "%s", dn);
        out->offset = dso;
        out->start = start + year_start;
        out->end = end + year_start;
        out->dst = dst_dst;
    }
    return true;
}

/* ---- TZif --------------------------------------------------------------- */

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int64_t be64(const unsigned char *p)
{
    return (int64_t)((uint64_t)be32(p) << 32 | be32(p + 4));
}

static pc_plib_tz_t *parse_tzif(const unsigned char *b, size_t n)
{
    if (n < 44 || memcmp(b, "TZif", 4) != 0) return NULL;
    int version = b[4] ? b[4] - '0' : 1;
    size_t cnt[6];
    for (int i = 0; i < 6; i++) cnt[i] = be32(b + 20 + 4 * i);
    /* isutcnt isstdcnt leapcnt timecnt typecnt charcnt */
    size_t tsize = 4;
    const unsigned char *p = b + 44;
    size_t v1len = cnt[3] * 4 + cnt[3] + cnt[4] * 6 + cnt[5] + cnt[2] * 8 + cnt[1] + cnt[0];
    if (v1len > n - 44) return NULL;
    if (version >= 2) {
        p += v1len;
        if ((size_t)(p - b) + 44 > n || memcmp(p, "TZif", 4) != 0) return NULL;
        for (int i = 0; i < 6; i++) cnt[i] = be32(p + 20 + 4 * i);
        p += 44;
        tsize = 8;
    }
    size_t need = cnt[3] * tsize + cnt[3] + cnt[4] * 6 + cnt[5] + cnt[2] * (tsize + 4) + cnt[1] +
                  cnt[0];
    if (need > n - (size_t)(p - b) || cnt[4] == 0 || cnt[4] > 256) return NULL;
    pc_plib_tz_t *tz = calloc(1, sizeof(*tz));
    if (!tz) return NULL;
    tz->ntx = cnt[3];
    tz->nzones = cnt[4];
    tz->tx = calloc(tz->ntx ? tz->ntx : 1, sizeof(trans_t));
    tz->zones = calloc(tz->nzones, sizeof(zone_t));
    if (!tz->tx || !tz->zones) goto bad;
    const unsigned char *times = p, *idx = p + cnt[3] * tsize, *types = idx + cnt[3],
                        *chars = types + cnt[4] * 6;
    for (size_t i = 0; i < tz->ntx; i++) {
        tz->tx[i].when = tsize == 8 ? be64(times + 8 * i) : (int32_t)be32(times + 4 * i);
        tz->tx[i].idx = idx[i];
        if (idx[i] >= tz->nzones) goto bad;
    }
    for (size_t i = 0; i < tz->nzones; i++) {
        const unsigned char *t = types + 6 * i;
        tz->zones[i].offset = (int32_t)be32(t);
        tz->zones[i].dst = t[4] != 0;
        size_t ai = t[5];
        if (ai >= cnt[5]) goto bad;
        size_t k = 0;
        while (ai + k < cnt[5] && chars[ai + k] && k + 1 < sizeof(tz->zones[i].abbr)) {
            tz->zones[i].abbr[k] = (char)chars[ai + k];
            k++;
        }
    }
    const unsigned char *end = p + need;
    if (version >= 2 && end < b + n && *end == '\n') {
        const unsigned char *nl = memchr(end + 1, '\n', (size_t)(b + n - end - 1));
        if (nl && nl > end + 1) {
            tz->extend = strndup((const char *)end + 1, (size_t)(nl - end - 1));
        }
    }
    return tz;
bad:
    free(tz->tx);
    free(tz->zones);
    free(tz);
    return NULL;
}

static bool valid_name(const char *name, size_t n)
{
    if (n == 0 || n > 255 || name[0] == '/' || name[0] == '\\') return false;
    for (size_t i = 0; i < n; i++) {
        if (name[i] == '\0') return false;
        if (name[i] == '.' && i + 1 < n && name[i + 1] == '.') return false;
    }
    return true;
}

static pc_plib_tz_t *load_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    unsigned char *buf = malloc(MAX_TZFILE);
    pc_plib_tz_t *tz = NULL;
    if (buf) {
        size_t n = fread(buf, 1, MAX_TZFILE, f);
        tz = parse_tzif(buf, n);
        free(buf);
    }
    fclose(f);
    return tz;
}

const pc_plib_tz_t *pc_plib_tz_load(const char *name, size_t n, char *err, size_t errlen)
{
    if (n == 0 || (n == 3 && memcmp(name, "UTC", 3) == 0)) return &utc_zone;
    bool local = n == 5 && memcmp(name, "Local", 5) == 0;
    pthread_mutex_lock(&tz_lock);
    for (pc_plib_tz_t *z = loaded; z; z = z->next) {
        if (strlen(z->name) == n && memcmp(z->name, name, n) == 0) {
            pthread_mutex_unlock(&tz_lock);
            return z;
        }
    }
    pthread_mutex_unlock(&tz_lock);
    pc_plib_tz_t *tz = NULL;
    char path[512];
    if (local) {
        const char *env = getenv("TZ");
        if (env && *env == ':') env++;
        if (env && *env && valid_name(env, strlen(env))) {
            snprintf(path, sizeof(path), "%s%s", ZONEINFO_DIR, env);
            tz = load_file(path);
        } else if (!env) {
            tz = load_file("/etc/localtime");
        }
        if (!tz) return &utc_zone;
    } else {
        if (!valid_name(name, n)) {
            if (err && errlen) snprintf(err, errlen, "time: invalid location name");
            return NULL;
        }
        snprintf(path, sizeof(path), "%s%.*s", ZONEINFO_DIR, (int)n, name);
        tz = load_file(path);
        if (!tz) {
            if (err && errlen)
                snprintf(err, errlen, "unknown time zone %.*s", (int)(n > 200 ? 200 : n), name);
            return NULL;
        }
    }
    tz->name = strndup(name, n);
    if (!tz->name) {
        free(tz->tx);
        free(tz->zones);
        free(tz->extend);
        free(tz);
        return NULL;
    }
    pthread_mutex_lock(&tz_lock);
    tz->next = loaded;
    loaded = tz;
    pthread_mutex_unlock(&tz_lock);
    return tz;
}

void pc_plib_tz_lookup(const pc_plib_tz_t *tz, int64_t sec, pc_plib_tz_info_t *out)
{
    if (tz->nzones == 0) {
        snprintf(out->abbr, sizeof(out->abbr), "UTC");
        out->offset = 0;
        out->start = ALPHA;
        out->end = OMEGA;
        out->dst = false;
        return;
    }
    if (tz->ntx == 0 || sec < tz->tx[0].when) {
        const zone_t *z = &tz->zones[0];
        memcpy(out->abbr, z->abbr, sizeof(out->abbr));
        out->offset = z->offset;
        out->dst = z->dst;
        out->start = ALPHA;
        out->end = tz->ntx ? tz->tx[0].when : OMEGA;
        return;
    }
    size_t lo = 0, hi = tz->ntx;
    int64_t end = OMEGA;
    while (hi - lo > 1) {
        size_t m = (lo + hi) / 2;
        if (sec < tz->tx[m].when) {
            end = tz->tx[m].when;
            hi = m;
        } else {
            lo = m;
        }
    }
    const zone_t *z = &tz->zones[tz->tx[lo].idx];
    memcpy(out->abbr, z->abbr, sizeof(out->abbr));
    out->offset = z->offset;
    out->dst = z->dst;
    out->start = tz->tx[lo].when;
    out->end = end;
    if (lo == tz->ntx - 1 && tz->extend) {
        pc_plib_tz_info_t r;
        if (pc_plib_tz_rule(tz->extend, sec, &r)) {
            *out = r;
            if (out->start < tz->tx[lo].when) out->start = tz->tx[lo].when;
        }
    }
}
