/*
 * Audit record formatting. Runs on the request path of every session, so it
 * writes straight into the caller's buffer: no allocation, no snprintf in the
 * common case, and the date part of the timestamp is cached per thread.
 */
#include "audit/audit.h"
#include "core/log.h"

#include <string.h>
#include <time.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#define IDENT_MAX 256 /* escaped instance / version */
#define SHORT_MAX 512 /* escaped user, resource, ip, ... */
#define KEY_MAX 2048  /* S3 keys are up to 1024 bytes */
#define REASON_MAX 2048
#define ERROR_MAX 4096
#define ARRAY_MAX 4096   /* policies, masked_columns */
#define TAIL_RESERVE 512 /* fixed keys, numbers, flags and the closing brace */

/* Every cap together stays well under the largest record. */
_Static_assert(IDENT_MAX * 3 + SHORT_MAX * 10 + KEY_MAX + REASON_MAX + ERROR_MAX + ARRAY_MAX * 2 +
                       PC_AUDIT_QUERY_MAX + TAIL_RESERVE + 1024 <
                   PC_AUDIT_MAX_RECORD,
               "audit field caps exceed PC_AUDIT_MAX_RECORD");

static char ident_instance[IDENT_MAX];
static size_t ident_instance_len;
static char ident_version[IDENT_MAX];
static size_t ident_version_len;

struct out {
    char *buf;
    size_t cap; /* usable bytes, one kept for the NUL */
    size_t pos;
    bool ok;
};

static void lit(struct out *o, const char *s, size_t n)
{
    if (!o->ok || o->pos + n > o->cap) {
        o->ok = false;
        return;
    }
    memcpy(o->buf + o->pos, s, n);
    o->pos += n;
}

#define LIT(o, s) lit((o), (s), sizeof(s) - 1)

static void put_u64(struct out *o, uint64_t v)
{
    char tmp[20];
    size_t n = 0;
    do {
        tmp[sizeof tmp - 1 - n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    lit(o, tmp + sizeof tmp - n, n);
}

/* Length of the valid UTF-8 sequence at s[0..n), or 0 if it is not one. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    size_t len;
    uint32_t min, cp;
    if (c < 0x80) return 1;
    if (c >= 0xc2 && c <= 0xdf) {
        len = 2, min = 0x80, cp = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
        len = 3, min = 0x800, cp = c & 0x0f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4, min = 0x10000, cp = c & 0x07;
    } else {
        return 0;
    }
    if (n < len) return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80) return 0;
        cp = cp << 6 | (s[i] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
    return len;
}

/* Printable ASCII that JSON takes as is. */
static inline bool plain(unsigned char c)
{
    return (unsigned)(c - 0x20) < 0x5f && c != '"' && c != '\\';
}

/* Length of the run of plain bytes at the start of u[0..n), 16 at a time where we can. */
static size_t plain_run(const unsigned char *u, size_t n)
{
    size_t j = 0;
#if defined(__SSE2__)
    const __m128i ctrl_max = _mm_set1_epi8(0x1f), high_min = _mm_set1_epi8(0x7f);
    const __m128i quote = _mm_set1_epi8('"'), bslash = _mm_set1_epi8('\\');
    while (j + 16 <= n) {
        __m128i v = _mm_loadu_si128((const __m128i *)(const void *)(u + j));
        __m128i ctrl = _mm_cmpeq_epi8(_mm_min_epu8(v, ctrl_max), v); /* <= 0x1f */
        __m128i high = _mm_cmpeq_epi8(_mm_max_epu8(v, high_min), v); /* >= 0x7f */
        __m128i special = _mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, bslash));
        int mask = _mm_movemask_epi8(_mm_or_si128(_mm_or_si128(ctrl, high), special));
        if (mask) return j + (size_t)__builtin_ctz((unsigned)mask);
        j += 16;
    }
#endif
    while (j < n && plain(u[j]))
        j++;
    return j;
}

/*
 * Escaped s[0..n) without quotes, at most max bytes of output, never cutting
 * inside an escape or a UTF-8 sequence. Returns false if s was cut to fit
 * max; a cut forced by the buffer itself clears o->ok.
 */
static bool escape(struct out *o, const char *s, size_t n, size_t max)
{
    if (!o->ok) return false;
    size_t limit = o->pos + max;
    bool buffer_bound = limit > o->cap;
    if (buffer_bound) limit = o->cap;
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0;
    while (i < n) {
        /* The common case, runs of plain ASCII, is one memcpy. */
        size_t j = i + plain_run(u + i, n - i);
        if (j > i) {
            size_t room = limit - o->pos;
            bool cut = j - i > room;
            size_t take = cut ? room : j - i;
            memcpy(o->buf + o->pos, s + i, take);
            o->pos += take;
            if (cut) goto cut;
            i = j;
            if (i == n) break;
        }
        if (u[i] < 0x80) {
            /* Quote, backslash, control character: the shared escaper's job
             * (it keeps one byte of its cap free). */
            if (!pc_json_escape_into(o->buf, limit + 1, &o->pos, s + i, 1)) goto cut;
            i++;
            continue;
        }
        size_t l = utf8_len(u + i, n - i);
        const char *bytes = l ? s + i : "\\ufffd";
        size_t blen = l ? l : 6;
        if (o->pos + blen > limit) goto cut;
        memcpy(o->buf + o->pos, bytes, blen);
        o->pos += blen;
        i += l ? l : 1;
    }
    return true;
cut:
    if (buffer_bound) o->ok = false;
    return false;
}

static void key(struct out *o, const char *k, size_t n)
{
    LIT(o, ",\"");
    lit(o, k, n);
    LIT(o, "\":");
}

#define KEY(o, k) key((o), (k), sizeof(k) - 1)

static bool str_field(struct out *o, const char *k, size_t klen, const char *v, size_t max)
{
    if (!v) return true;
    key(o, k, klen);
    LIT(o, "\"");
    bool whole = escape(o, v, strlen(v), max);
    LIT(o, "\"");
    return whole;
}

#define STR(o, k, v, max) str_field((o), (k), sizeof(k) - 1, (v), (max))

static void int_field(struct out *o, const char *k, size_t klen, int64_t v)
{
    if (v < 0) return;
    key(o, k, klen);
    put_u64(o, (uint64_t)v);
}

#define INT(o, k, v) int_field((o), (k), sizeof(k) - 1, (v))

/* The 4 hex digits at u[0..n) as a number, or -1. */
static long hex4(const unsigned char *u, size_t n)
{
    if (n < 4) return -1;
    long v = 0;
    for (int i = 0; i < 4; i++) {
        unsigned char c = u[i];
        int d = c >= '0' && c <= '9'   ? c - '0'
                : c >= 'a' && c <= 'f' ? c - 'a' + 10
                : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                       : -1;
        if (d < 0) return -1;
        v = v << 4 | d;
    }
    return v;
}

/* True if s is exactly a JSON array of strings (whitespace allowed). */
static bool is_string_array(const char *s, size_t n)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0;
#define WS()                                                                                       \
    while (i < n && (u[i] == ' ' || u[i] == '\t' || u[i] == '\n' || u[i] == '\r'))                 \
    i++
    WS();
    if (i >= n || u[i++] != '[') return false;
    WS();
    if (i < n && u[i] == ']') {
        i++;
        WS();
        return i == n;
    }
    for (;;) {
        if (i >= n || u[i++] != '"') return false;
        for (;;) {
            if (i >= n || u[i] < 0x20) return false;
            if (u[i] == '"') break;
            if (u[i] == '\\') {
                if (++i >= n) return false;
                if (u[i] == 'u') {
                    /* Only escapes every JSON parser takes: no NUL, no lone surrogate. */
                    long cp = hex4(u + i + 1, n - i - 1);
                    if (cp <= 0 || (cp >= 0xdc00 && cp <= 0xdfff)) return false;
                    i += 5;
                    if (cp >= 0xd800 && cp <= 0xdbff) {
                        long lo = i + 1 < n && u[i] == '\\' && u[i + 1] == 'u'
                                      ? hex4(u + i + 2, n - i - 2)
                                      : -1;
                        if (lo < 0xdc00 || lo > 0xdfff) return false;
                        i += 6;
                    }
                } else if (strchr("\"\\/bfnrt", u[i]) && u[i] != '\0') {
                    i++;
                } else {
                    return false;
                }
                continue;
            }
            size_t l = utf8_len(u + i, n - i);
            if (!l) return false;
            i += l;
        }
        i++;
        WS();
        if (i < n && u[i] == ',') {
            i++;
            WS();
            continue;
        }
        if (i >= n || u[i++] != ']') return false;
        WS();
        return i == n;
    }
#undef WS
}

static void array_field(struct out *o, const char *k, size_t klen, const char *v, bool required)
{
    if (!v && !required) return;
    key(o, k, klen);
    if (!v) {
        LIT(o, "[]");
        return;
    }
    size_t n = strlen(v);
    if (n <= ARRAY_MAX && is_string_array(v, n)) {
        /* Copied without the whitespace between elements: a record stays one line. */
        bool in_str = false;
        for (size_t i = 0; i < n && o->ok; i++) {
            char c = v[i];
            if (!in_str && (c == ' ' || c == '\t' || c == '\n' || c == '\r')) continue;
            if (in_str && c == '\\') {
                lit(o, v + i, 2); /* validated: an escape is never the last byte */
                i++;
                continue;
            }
            if (c == '"') in_str = !in_str;
            lit(o, &c, 1);
        }
        return;
    }
    /* Not what the contract promises: keep it, readable, as one string. */
    LIT(o, "[\"");
    escape(o, v, n, ARRAY_MAX);
    LIT(o, "\"]");
}

#define ARRAY(o, k, v, req) array_field((o), (k), sizeof(k) - 1, (v), (req))

/* "YYYY-MM-DDTHH:MM:SS.uuuuuuZ" */
static void put_ts(struct out *o, uint64_t ts_ns)
{
    static _Thread_local uint64_t cached_sec = UINT64_MAX;
    static _Thread_local char cached[20];
    uint64_t sec = ts_ns / 1000000000u;
    if (sec != cached_sec) {
        struct tm tm;
        time_t t = (time_t)sec;
        if (!gmtime_r(&t, &tm) || tm.tm_year + 1900 > 9999 || tm.tm_year + 1900 < 0) {
            memset(&tm, 0, sizeof tm);
            tm.tm_year = 70;
            tm.tm_mday = 1;
        }
        unsigned v[6] = {(unsigned)tm.tm_year + 1900, (unsigned)tm.tm_mon + 1, (unsigned)tm.tm_mday,
                         (unsigned)tm.tm_hour,        (unsigned)tm.tm_min,     (unsigned)tm.tm_sec};
        char *p = cached;
        p[0] = (char)('0' + v[0] / 1000);
        p[1] = (char)('0' + v[0] / 100 % 10);
        p[2] = (char)('0' + v[0] / 10 % 10);
        p[3] = (char)('0' + v[0] % 10);
        static const char seps[] = "--T::";
        for (int i = 1; i < 6; i++) {
            p[4 + (i - 1) * 3] = seps[i - 1];
            p[5 + (i - 1) * 3] = (char)('0' + v[i] / 10);
            p[6 + (i - 1) * 3] = (char)('0' + v[i] % 10);
        }
        cached_sec = sec;
    }
    lit(o, cached, 19);
    char frac[8];
    uint64_t us = ts_ns / 1000u % 1000000u;
    frac[0] = '.';
    for (int i = 6; i >= 1; i--) {
        frac[i] = (char)('0' + us % 10);
        us /= 10;
    }
    frac[7] = 'Z';
    lit(o, frac, 8);
}

void pc_audit_set_identity(const char *instance, const char *version)
{
    /* The same escaping as every field: an odd hostname must not break records. */
    struct out o = {ident_instance, sizeof ident_instance - 1, 0, true};
    if (instance) (void)escape(&o, instance, strlen(instance), IDENT_MAX - 1);
    ident_instance_len = o.ok ? o.pos : 0;
    o = (struct out){ident_version, sizeof ident_version - 1, 0, true};
    if (version) (void)escape(&o, version, strlen(version), IDENT_MAX - 1);
    ident_version_len = o.ok ? o.pos : 0;
}

static const char *kind_name(pc_audit_kind_t k)
{
    switch (k) {
    case PC_AUDIT_SESSION_START:
        return "session_start";
    case PC_AUDIT_SESSION_END:
        return "session_end";
    case PC_AUDIT_REQUEST:
        return "request";
    }
    return "unknown";
}

size_t pc_audit_format(char *buf, size_t cap, uint64_t seq, uint64_t ts_ns,
                       const pc_audit_rec_t *rec)
{
    if (!buf || cap < 2) return 0;
    struct out o = {buf, cap - 1, 0, true};
    LIT(&o, "{\"id\":\"");
    lit(&o, ident_instance, ident_instance_len);
    LIT(&o, "-");
    put_u64(&o, seq);
    LIT(&o, "\",\"ts\":\"");
    put_ts(&o, ts_ns);
    LIT(&o, "\",\"instance\":\"");
    lit(&o, ident_instance, ident_instance_len);
    LIT(&o, "\",\"version\":\"");
    lit(&o, ident_version, ident_version_len);
    LIT(&o, "\",\"type\":\"");
    const char *kind = kind_name(rec->kind);
    lit(&o, kind, strlen(kind));
    LIT(&o, "\"");

    STR(&o, "user", rec->user, SHORT_MAX);
    STR(&o, "resource", rec->resource, SHORT_MAX);
    STR(&o, "technology", rec->technology, SHORT_MAX);
    if (rec->session_id) {
        KEY(&o, "session_id");
        put_u64(&o, rec->session_id);
    }
    STR(&o, "client_ip", rec->client_ip, SHORT_MAX);
    STR(&o, "db_name", rec->db_name, SHORT_MAX);
    STR(&o, "application", rec->application, SHORT_MAX);
    STR(&o, "stage", rec->stage, SHORT_MAX);
    if (!STR(&o, "query", rec->query, PC_AUDIT_QUERY_MAX) && o.ok)
        LIT(&o, ",\"query_truncated\":true");
    STR(&o, "operation", rec->operation, SHORT_MAX);
    STR(&o, "bucket", rec->bucket, SHORT_MAX);
    STR(&o, "key", rec->key, KEY_MAX);
    STR(&o, "decision", rec->decision, SHORT_MAX);
    ARRAY(&o, "policies", rec->policies, rec->kind == PC_AUDIT_REQUEST);
    STR(&o, "reason", rec->reason, REASON_MAX);
    ARRAY(&o, "masked_columns", rec->masked_columns, false);
    INT(&o, "rows", rec->rows);
    INT(&o, "bytes", rec->bytes);
    if (rec->bytes >= 0) {
        INT(&o, "bytes_in", rec->bytes_in);
        INT(&o, "bytes_out", rec->bytes_out);
    }
    INT(&o, "status", rec->status);
    if (rec->kind != PC_AUDIT_SESSION_START) {
        KEY(&o, "duration_us");
        put_u64(&o, rec->duration_us);
    }
    STR(&o, "error", rec->error, ERROR_MAX);
    LIT(&o, "}");
    if (!o.ok) return 0;
    buf[o.pos] = '\0';
    return o.pos;
}

bool pc_audit_emit(pc_spool_t *sp, const pc_audit_rec_t *rec)
{
    if (!sp) return false;
    char buf[PC_AUDIT_MAX_RECORD];
    uint64_t seq = pc_spool_next_seq(sp);
    size_t n = pc_audit_format(buf, sizeof buf, seq, pc_now_wall_ns(), rec);
    /* n == 0 cannot happen with the caps above; the spool counts it if it does. */
    return pc_spool_append_seq(sp, seq, buf, n);
}
