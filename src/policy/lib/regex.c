/*
 * Go regular expressions on PCRE2 with a process-wide compiled-pattern cache.
 *
 * The cache is an append-only open-addressing table guarded by a mutex:
 * entries are never evicted, so a handle from it stays valid for the life of
 * the process and can be used by any thread without further locking (PCRE2
 * compiled code is read-only). Once the table is full, patterns are compiled
 * per call and freed on release.
 */
#define PCRE2_CODE_UNIT_WIDTH 8
#include "policy/lib/regex.h"

#include "policy/lib/sbuf.h"

#include <pcre2.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CACHE_SLOTS 2048 /* power of two */
#define CACHE_MAX_ENTRIES 1024
#define CACHE_MAX_PATTERN 4096

struct pc_plib_re {
    pcre2_code *code;
    char *pattern;
    size_t plen;
    uint32_t groups;
    bool cached;
};

static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;
static pc_plib_re_t *cache[CACHE_SLOTS];
static size_t cache_count;

static uint64_t hash_bytes(const char *p, size_t n)
{
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)p[i]) * 1099511628211ULL;
    return h;
}

/* RE2 has no backreferences, lookaround, atomic/possessive groups or
 * recursion; PCRE2 would accept them, so refuse them here. */
static const char *re2_unsupported(const char *p, size_t n)
{
    bool in_class = false;
    for (size_t i = 0; i < n; i++) {
        char c = p[i];
        if (c == '\\') {
            if (i + 1 >= n) return "trailing backslash at end of expression";
            char d = p[i + 1];
            if (d == 'Q') {
                /* literal text up to \E */
                size_t j = i + 2;
                while (j + 1 < n && !(p[j] == '\\' && p[j + 1] == 'E')) j++;
                i = j + 1;
                continue;
            }
            if (!in_class && ((d >= '1' && d <= '9') || d == 'g' || d == 'k' || d == 'K' ||
                              d == 'G' || d == 'R' || d == 'X' || d == 'Z'))
                return "invalid escape sequence";
            i++;
            continue;
        }
        if (in_class) {
            if (c == ']') in_class = false;
            continue;
        }
        if (c == '[') {
            in_class = true;
            /* a ']' right after '[' or '[^' is literal */
            if (i + 1 < n && p[i + 1] == '^') i++;
            if (i + 1 < n && p[i + 1] == ']') i++;
            /* POSIX classes [[:alpha:]] stay inside */
            continue;
        }
        if (c == '(' && i + 1 < n && p[i + 1] == '?') {
            char d = i + 2 < n ? p[i + 2] : '\0';
            if (d == '=' || d == '!' || d == '>' || d == '|' || d == '#' || d == 'R' ||
                d == '&' || d == '(' || d == '+' || (d >= '0' && d <= '9'))
                return "invalid or unsupported Perl syntax";
            if (d == '<' && i + 3 < n && (p[i + 3] == '=' || p[i + 3] == '!'))
                return "invalid or unsupported Perl syntax";
            if (d == 'P' && i + 3 < n && (p[i + 3] == '=' || p[i + 3] == '>'))
                return "invalid or unsupported Perl syntax";
        }
        if ((c == '*' || c == '+' || c == '?' || c == '}') && i + 1 < n && p[i + 1] == '+')
            return "invalid nested repetition operator";
    }
    return NULL;
}

static pc_plib_re_t *compile(const char *pat, size_t n, char *err, size_t errlen)
{
    const char *why = re2_unsupported(pat, n);
    if (why) {
        if (err && errlen)
            snprintf(err, errlen, "error parsing regexp: %s: `%.*s`", why,
                     (int)(n > 200 ? 200 : n), pat);
        return NULL;
    }
    int ec;
    PCRE2_SIZE eo;
    uint32_t opts = PCRE2_UTF | PCRE2_DOLLAR_ENDONLY | PCRE2_MATCH_INVALID_UTF;
    pcre2_code *code = pcre2_compile((PCRE2_SPTR)pat, n, opts, &ec, &eo, NULL);
    if (!code) {
        PCRE2_UCHAR msg[160];
        pcre2_get_error_message(ec, msg, sizeof(msg));
        if (err && errlen)
            snprintf(err, errlen, "error parsing regexp: %s: `%.*s`", (const char *)msg,
                     (int)(n > 200 ? 200 : n), pat);
        return NULL;
    }
    pcre2_jit_compile(code, PCRE2_JIT_COMPLETE); /* best effort: interpreter otherwise */
    pc_plib_re_t *re = calloc(1, sizeof(*re));
    char *copy = malloc(n + 1);
    if (!re || !copy) {
        free(re);
        free(copy);
        pcre2_code_free(code);
        if (err && errlen) snprintf(err, errlen, "out of memory");
        return NULL;
    }
    memcpy(copy, pat, n);
    copy[n] = '\0';
    re->code = code;
    re->pattern = copy;
    re->plen = n;
    pcre2_pattern_info(code, PCRE2_INFO_CAPTURECOUNT, &re->groups);
    return re;
}

static void re_free(pc_plib_re_t *re)
{
    if (!re) return;
    pcre2_code_free(re->code);
    free(re->pattern);
    free(re);
}

pc_plib_re_t *pc_plib_re_get(const char *pat, size_t n, char *err, size_t errlen)
{
    uint64_t h = hash_bytes(pat, n);
    size_t slot = (size_t)h & (CACHE_SLOTS - 1);
    pthread_mutex_lock(&cache_lock);
    for (size_t k = 0; k < CACHE_SLOTS; k++) {
        pc_plib_re_t *e = cache[(slot + k) & (CACHE_SLOTS - 1)];
        if (!e) break;
        if (e->plen == n && memcmp(e->pattern, pat, n) == 0) {
            pthread_mutex_unlock(&cache_lock);
            return e;
        }
    }
    pthread_mutex_unlock(&cache_lock);
    /* compile outside the lock; a racing thread may insert the same pattern,
     * which only costs a duplicate entry */
    pc_plib_re_t *re = compile(pat, n, err, errlen);
    if (!re || n > CACHE_MAX_PATTERN) return re;
    pthread_mutex_lock(&cache_lock);
    if (cache_count < CACHE_MAX_ENTRIES) {
        size_t k = slot;
        while (cache[k]) k = (k + 1) & (CACHE_SLOTS - 1);
        re->cached = true;
        cache[k] = re;
        cache_count++;
    }
    pthread_mutex_unlock(&cache_lock);
    return re;
}

void pc_plib_re_release(pc_plib_re_t *re)
{
    if (re && !re->cached) re_free(re);
}

size_t pc_plib_re_groups(const pc_plib_re_t *re)
{
    return re->groups;
}

int pc_plib_re_group_index(const pc_plib_re_t *re, const char *name, size_t n)
{
    char buf[128];
    if (n == 0 || n >= sizeof(buf)) return -1;
    memcpy(buf, name, n);
    buf[n] = '\0';
    int rc = pcre2_substring_number_from_name(re->code, (PCRE2_SPTR)buf);
    return rc > 0 ? rc : -1;
}

bool pc_plib_re_is_valid(const char *pat, size_t n)
{
    pc_plib_re_t *re = pc_plib_re_get(pat, n, NULL, 0);
    pc_plib_re_release(re);
    return re != NULL;
}

/* One match starting the search at `start`: 1 found, 0 none, -1 error. */
static int exec_at(pc_plib_re_t *re, pcre2_match_data *md, const char *s, size_t n,
                   size_t start)
{
    int rc = pcre2_match(re->code, (PCRE2_SPTR)s, n, start, 0, md, NULL);
    if (rc == PCRE2_ERROR_NOMATCH) return 0;
    return rc < 0 ? -1 : 1;
}

int pc_plib_re_match(pc_plib_re_t *re, const char *s, size_t n)
{
    /* one small match block per thread: matching allocates nothing */
    static __thread pcre2_match_data *md;
    if (!md && !(md = pcre2_match_data_create(1, NULL))) return -1;
    return exec_at(re, md, s, n, 0);
}

static size_t rune_width(const char *s, size_t n, size_t pos)
{
    if (pos >= n) return 0;
    size_t w;
    pc__utf8_decode(s + pos, n - pos, &w);
    return w;
}

long pc_plib_re_find_all(pc_plib_re_t *re, const char *s, size_t n, long max, pc_plib_re_cb cb,
                         void *ud)
{
    size_t npairs = re->groups + 1;
    pcre2_match_data *md = pcre2_match_data_create((uint32_t)npairs, NULL);
    size_t *ov = malloc(sizeof(size_t) * 2 * npairs);
    long delivered = -1;
    if (!md || !ov) goto out;
    delivered = 0;
    size_t pos = 0;
    size_t prev_end = PC_PLIB_RE_UNSET;
    while ((max < 0 || delivered < max) && pos <= n) {
        int rc = exec_at(re, md, s, n, pos);
        if (rc < 0) {
            delivered = -1;
            goto out;
        }
        if (rc == 0) break;
        PCRE2_SIZE *o = pcre2_get_ovector_pointer(md);
        for (size_t k = 0; k < 2 * npairs; k++) ov[k] = o[k] == PCRE2_UNSET ? PC_PLIB_RE_UNSET : o[k];
        bool accept = true;
        if (ov[1] == pos && ov[0] == ov[1]) {
            /* an empty match right after the previous match does not count */
            if (ov[0] == prev_end) accept = false;
            size_t w = rune_width(s, n, pos);
            pos += w ? w : 1;
        } else {
            pos = ov[1];
        }
        prev_end = ov[1];
        if (accept) {
            delivered++;
            if (!cb(ud, ov, npairs)) break;
        }
    }
out:
    pcre2_match_data_free(md);
    free(ov);
    return delivered;
}

typedef struct {
    size_t *starts; /* pairs of match offsets */
    size_t len, cap;
    bool oom;
} spans_t;

static bool collect_span(void *ud, const size_t *ov, size_t npairs)
{
    (void)npairs;
    spans_t *sp = ud;
    if (sp->len + 2 > sp->cap) {
        size_t cap = sp->cap ? sp->cap * 2 : 16;
        size_t *p = realloc(sp->starts, cap * sizeof(size_t));
        if (!p) {
            sp->oom = true;
            return false;
        }
        sp->starts = p;
        sp->cap = cap;
    }
    sp->starts[sp->len++] = ov[0];
    sp->starts[sp->len++] = ov[1];
    return true;
}

long pc_plib_re_split(pc_plib_re_t *re, const char *s, size_t n, pc_plib_re_piece_cb cb, void *ud)
{
    if (re->plen > 0 && n == 0) {
        cb(ud, 0, 0);
        return 1;
    }
    spans_t sp = {0};
    long m = pc_plib_re_find_all(re, s, n, -1, collect_span, &sp);
    if (m < 0 || sp.oom) {
        free(sp.starts);
        return -1;
    }
    long pieces = 0;
    size_t beg = 0, end = 0;
    for (size_t k = 0; k < sp.len; k += 2) {
        end = sp.starts[k];
        if (sp.starts[k + 1] != 0) {
            pieces++;
            if (!cb(ud, beg, end)) goto done;
        }
        beg = sp.starts[k + 1];
    }
    if (end != n) {
        pieces++;
        cb(ud, beg, n);
    }
done:
    free(sp.starts);
    return pieces;
}

/* regexp.Expand for a string template */
static void expand(pc__sbuf_t *b, pc_plib_re_t *re, const char *tpl, size_t tn, const char *s,
                   const size_t *ov, size_t npairs)
{
    size_t i = 0;
    while (i < tn) {
        const char *d = memchr(tpl + i, '$', tn - i);
        if (!d) {
            pc__sbuf_add(b, tpl + i, tn - i);
            return;
        }
        size_t at = (size_t)(d - tpl);
        pc__sbuf_add(b, tpl + i, at - i);
        i = at + 1;
        if (i < tn && tpl[i] == '$') {
            pc__sbuf_addc(b, '$');
            i++;
            continue;
        }
        /* name: ${name} or the longest run of letters, digits, underscore */
        const char *name;
        size_t nl = 0;
        bool ok = false;
        size_t after = i;
        if (i < tn && tpl[i] == '{') {
            size_t j = i + 1;
            while (j < tn && tpl[j] != '}') j++;
            if (j < tn && j > i + 1) {
                name = tpl + i + 1;
                nl = j - i - 1;
                after = j + 1;
                ok = true;
                for (size_t k = 0; k < nl; k++) {
                    char c = name[k];
                    if (!(c == '_' || (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
                          (c >= 'A' && c <= 'Z')))
                        ok = false;
                }
            }
        } else {
            size_t j = i;
            while (j < tn && (tpl[j] == '_' || (tpl[j] >= '0' && tpl[j] <= '9') ||
                              (tpl[j] >= 'a' && tpl[j] <= 'z') || (tpl[j] >= 'A' && tpl[j] <= 'Z')))
                j++;
            name = tpl + i;
            nl = j - i;
            after = j;
            ok = nl > 0;
        }
        if (!ok) {
            /* malformed: the '$' is copied as is */
            pc__sbuf_addc(b, '$');
            continue;
        }
        i = after;
        long idx = -1;
        bool numeric = true;
        for (size_t k = 0; k < nl; k++) numeric &= name[k] >= '0' && name[k] <= '9';
        if (numeric) {
            idx = 0;
            for (size_t k = 0; k < nl && idx < 100000; k++) idx = idx * 10 + (name[k] - '0');
        } else {
            idx = pc_plib_re_group_index(re, name, nl);
        }
        if (idx >= 0 && (size_t)idx < npairs && ov[2 * idx] != PC_PLIB_RE_UNSET)
            pc__sbuf_add(b, s + ov[2 * idx], ov[2 * idx + 1] - ov[2 * idx]);
    }
}

char *pc_plib_re_replace_all(pc_plib_re_t *re, const char *s, size_t n, const char *repl,
                             size_t rn, size_t *out_len)
{
    size_t npairs = re->groups + 1;
    pcre2_match_data *md = pcre2_match_data_create((uint32_t)npairs, NULL);
    size_t *ov = malloc(sizeof(size_t) * 2 * npairs);
    pc__sbuf_t b = {0};
    char *out = NULL;
    if (!md || !ov) goto out;
    size_t last_end = 0, search = 0;
    while (search <= n) {
        int rc = exec_at(re, md, s, n, search);
        if (rc < 0) goto out;
        if (rc == 0) break;
        PCRE2_SIZE *o = pcre2_get_ovector_pointer(md);
        for (size_t k = 0; k < 2 * npairs; k++) ov[k] = o[k] == PCRE2_UNSET ? PC_PLIB_RE_UNSET : o[k];
        pc__sbuf_add(&b, s + last_end, ov[0] - last_end);
        if (ov[1] > last_end || ov[0] == 0) expand(&b, re, repl, rn, s, ov, npairs);
        last_end = ov[1];
        size_t w = rune_width(s, n, search);
        if (search + w > ov[1])
            search += w;
        else if (search + 1 > ov[1])
            search++;
        else
            search = ov[1];
    }
    pc__sbuf_add(&b, s + last_end, n - last_end);
    out = pc__sbuf_take(&b, out_len);
out:
    pc__sbuf_free(&b);
    pcre2_match_data_free(md);
    free(ov);
    return out;
}

char *pc_plib_re_quote_meta(const char *s, size_t n, size_t *out_len)
{
    pc__sbuf_t b = {0};
    for (size_t i = 0; i < n; i++) {
        if (strchr("\\.+*?()|[]{}^$", s[i]) && s[i]) pc__sbuf_addc(&b, '\\');
        pc__sbuf_addc(&b, s[i]);
    }
    return pc__sbuf_take(&b, out_len);
}

int pc_plib_re_template_match(const char *tpl, size_t tn, const char *s, size_t n, char dstart,
                              char dend, char *err, size_t errlen)
{
    /* first-level delimiter pairs */
    pc__sbuf_t pat = {0};
    int level = 0;
    size_t idx = 0, end = 0;
    int rc = -1;
    pc__sbuf_addc(&pat, '^');
    for (size_t i = 0; i < tn; i++) {
        if (tpl[i] == dstart) {
            if (++level == 1) idx = i;
        } else if (tpl[i] == dend) {
            if (--level == 0) {
                size_t ql;
                char *q = pc_plib_re_quote_meta(tpl + end, idx - end, &ql);
                if (!q) goto out;
                pc__sbuf_add(&pat, q, ql);
                free(q);
                pc__sbuf_addc(&pat, '(');
                pc__sbuf_add(&pat, tpl + idx + 1, i - idx - 1);
                pc__sbuf_addc(&pat, ')');
                /* each part must compile on its own too */
                pc__sbuf_t part = {0};
                pc__sbuf_addc(&part, '^');
                pc__sbuf_add(&part, tpl + idx + 1, i - idx - 1);
                pc__sbuf_addc(&part, '$');
                pc_plib_re_t *pr = part.data ? pc_plib_re_get(part.data, part.len, err, errlen) : NULL;
                pc__sbuf_free(&part);
                if (!pr) goto out;
                pc_plib_re_release(pr);
                end = i + 1;
            } else if (level < 0) {
                goto unbalanced;
            }
        }
    }
    if (level != 0) goto unbalanced;
    size_t ql;
    char *q = pc_plib_re_quote_meta(tpl + end, tn - end, &ql);
    if (!q) goto out;
    pc__sbuf_add(&pat, q, ql);
    free(q);
    pc__sbuf_addc(&pat, '$');
    if (pat.oom) goto out;
    pc_plib_re_t *re = pc_plib_re_get(pat.data, pat.len, err, errlen);
    if (!re) goto out;
    rc = pc_plib_re_match(re, s, n);
    pc_plib_re_release(re);
    goto out;
unbalanced:
    if (err && errlen) snprintf(err, errlen, "unbalanced braces in \"%.*s\"", (int)(tn > 200 ? 200 : tn), tpl);
out:
    pc__sbuf_free(&pat);
    return rc;
}

/* ---- glob ---------------------------------------------------------------- */

static void add_code_point(pc__sbuf_t *b, uint32_t r)
{
    char e[16];
    snprintf(e, sizeof(e), "\\x{%x}", r);
    pc__sbuf_adds(b, e);
}

static void add_not_delims(pc__sbuf_t *b, const uint32_t *delims, size_t nd)
{
    if (nd == 0) {
        pc__sbuf_addc(b, '.');
        return;
    }
    pc__sbuf_adds(b, "[^");
    for (size_t i = 0; i < nd; i++) add_code_point(b, delims[i]);
    pc__sbuf_addc(b, ']');
}

/* Translate one gobwas/glob pattern into a PCRE2 expression. depth counts
 * open '{' terms, where ',' separates alternatives. */
static bool glob_to_re(pc__sbuf_t *b, const char *p, size_t n, size_t *pos, const uint32_t *delims,
                       size_t nd, int depth, const char **why)
{
    while (*pos < n) {
        size_t w;
        uint32_t c = pc__utf8_decode(p + *pos, n - *pos, &w);
        if (depth > 0 && (c == ',' || c == '}')) return true;
        *pos += w;
        switch (c) {
        case '*':
            if (*pos < n && p[*pos] == '*') {
                while (*pos < n && p[*pos] == '*') (*pos)++;
                pc__sbuf_adds(b, "(?s:.*)");
            } else {
                add_not_delims(b, delims, nd);
                pc__sbuf_addc(b, '*');
            }
            break;
        case '?': add_not_delims(b, delims, nd); break;
        case '\\':
            if (*pos >= n) {
                *why = "unexpected end of input";
                return false;
            }
            c = pc__utf8_decode(p + *pos, n - *pos, &w);
            *pos += w;
            add_code_point(b, c);
            break;
        case '[': {
            bool neg = false;
            if (*pos < n && p[*pos] == '!') {
                neg = true;
                (*pos)++;
            }
            pc__sbuf_adds(b, neg ? "[^" : "[");
            bool any = false, closed = false;
            while (*pos < n) {
                uint32_t lo = pc__utf8_decode(p + *pos, n - *pos, &w);
                if (lo == ']') {
                    (*pos)++;
                    closed = true;
                    break;
                }
                *pos += w;
                add_code_point(b, lo);
                any = true;
                if (*pos + 1 < n && p[*pos] == '-' && p[*pos + 1] != ']') {
                    (*pos)++;
                    uint32_t hi = pc__utf8_decode(p + *pos, n - *pos, &w);
                    *pos += w;
                    if (hi < lo) {
                        *why = "hi character should be greater than lo character";
                        return false;
                    }
                    pc__sbuf_addc(b, '-');
                    add_code_point(b, hi);
                }
            }
            if (!closed || !any) {
                *why = closed ? "unexpected length of lo character" : "unexpected end of input";
                return false;
            }
            pc__sbuf_addc(b, ']');
            break;
        }
        case '{':
            pc__sbuf_adds(b, "(?:");
            for (;;) {
                if (!glob_to_re(b, p, n, pos, delims, nd, depth + 1, why)) return false;
                if (*pos >= n) {
                    *why = "unexpected end of input";
                    return false;
                }
                char sep = p[(*pos)++];
                if (sep == '}') break;
                pc__sbuf_addc(b, '|');
            }
            pc__sbuf_addc(b, ')');
            break;
        default: add_code_point(b, c);
        }
    }
    return true;
}

int pc_plib_glob_match(const char *pat, size_t pn, const uint32_t *delims, size_t ndelim,
                       const char *s, size_t n, char *err, size_t errlen)
{
    char stack[512];
    pc__sbuf_t b = PC__SBUF_ON(stack, sizeof(stack)); /* typical globs need no heap */
    const char *why = NULL;
    size_t pos = 0;
    int rc = -1;
    pc__sbuf_adds(&b, "\\A(?:");
    if (!glob_to_re(&b, pat, pn, &pos, delims, ndelim, 0, &why)) {
        if (err && errlen) snprintf(err, errlen, "%s", why ? why : "invalid glob pattern");
        goto out;
    }
    pc__sbuf_adds(&b, ")\\z");
    if (b.oom) goto out;
    pc_plib_re_t *re = pc_plib_re_get(b.data, b.len, err, errlen);
    if (!re) goto out;
    rc = pc_plib_re_match(re, s, n);
    pc_plib_re_release(re);
out:
    pc__sbuf_free(&b);
    return rc;
}

char *pc_plib_glob_quote_meta(const char *s, size_t n, size_t *out_len)
{
    pc__sbuf_t b = {0};
    for (size_t i = 0; i < n; i++) {
        if (s[i] && strchr("*?\\[]{}", s[i])) pc__sbuf_addc(&b, '\\');
        pc__sbuf_addc(&b, s[i]);
    }
    return pc__sbuf_take(&b, out_len);
}

/* ---- glob intersection (regex.globs_match) ------------------------------- */

enum { GT_CHAR, GT_DOT, GT_SET };
enum { GF_NONE, GF_PLUS, GF_STAR };

typedef struct {
    int type, flag;
    uint32_t r;        /* GT_CHAR */
    uint32_t *ranges;  /* GT_SET: lo,hi pairs */
    size_t nranges;
} gtok_t;

typedef struct {
    gtok_t *t;
    size_t n;
} glob_t2;

typedef struct {
    const uint32_t *in;
    size_t n;
    const char *text;
    size_t tn;
    char *err;
    size_t errlen;
} gtokenizer_t;

static int gi_fail(gtokenizer_t *z, size_t pos, const char *msg)
{
    if (z->err && z->errlen)
        snprintf(z->err, z->errlen, "input:%.*s, pos:%zu, %s: the input provided is invalid",
                 (int)(z->tn > 200 ? 200 : z->tn), z->text, pos, msg);
    return -1;
}

/* nextRune: 1 ok, 0 end of input, -1 error */
static int gi_next_rune(gtokenizer_t *z, size_t i, size_t *ni, uint32_t *r, bool *esc)
{
    if (i >= z->n) return 0;
    if (z->in[i] == '\\') {
        if (i + 1 < z->n) {
            *ni = i + 2;
            *r = z->in[i + 1];
            *esc = true;
            return 1;
        }
        return gi_fail(z, i, "input ends with a \\ (escape) character");
    }
    *ni = i + 1;
    *r = z->in[i];
    *esc = false;
    return 1;
}

static void gtok_free(glob_t2 *g)
{
    for (size_t i = 0; i < g->n; i++) free(g->t[i].ranges);
    free(g->t);
    g->t = NULL;
    g->n = 0;
}

static int gi_tokenize(gtokenizer_t *z, glob_t2 *g)
{
    g->t = calloc(z->n ? z->n : 1, sizeof(gtok_t));
    g->n = 0;
    if (!g->t) return -1;
    size_t i = 0;
    for (;;) {
        size_t ni;
        uint32_t r;
        bool esc;
        int rc = gi_next_rune(z, i, &ni, &r, &esc);
        if (rc == 0) return 0;
        if (rc < 0) return -1;
        gtok_t t = {0};
        if (!esc && r == '.') {
            t.type = GT_DOT;
        } else if (!esc && r == ']') {
            return gi_fail(z, ni, "set-close ']' with no preceding '['");
        } else if (!esc && r == '[') {
            t.type = GT_SET;
            size_t cap = 8;
            t.ranges = malloc(cap * 2 * sizeof(uint32_t));
            if (!t.ranges) return -1;
            bool complete = false, prev_ok = false;
            uint32_t prev = 0;
            size_t j = ni;
            for (;;) {
                rc = gi_next_rune(z, j, &ni, &r, &esc);
                if (rc < 0) {
                    free(t.ranges);
                    return -1;
                }
                if (rc == 0) break;
                j = ni;
                uint32_t lo = r, hi = r;
                if (!esc && r == ']') {
                    complete = true;
                    break;
                }
                if (!esc && r == '-') {
                    if (!prev_ok) {
                        free(t.ranges);
                        return gi_fail(z, ni, "range character '-' must be preceded by a Unicode character");
                    }
                    if (ni + 1 >= z->n) {
                        free(t.ranges);
                        return gi_fail(z, ni, "range character '-' must be followed by a Unicode character");
                    }
                    rc = gi_next_rune(z, j, &ni, &r, &esc);
                    if (rc <= 0) {
                        free(t.ranges);
                        return -1;
                    }
                    j = ni;
                    if (!esc && (r == ']' || r == '-')) {
                        free(t.ranges);
                        return gi_fail(z, ni, "range character '-' cannot be followed by a special symbol");
                    }
                    lo = prev;
                    hi = r;
                    prev_ok = false;
                } else {
                    prev = r;
                    prev_ok = true;
                }
                if (t.nranges == cap) {
                    cap *= 2;
                    uint32_t *nr = realloc(t.ranges, cap * 2 * sizeof(uint32_t));
                    if (!nr) {
                        free(t.ranges);
                        return -1;
                    }
                    t.ranges = nr;
                }
                if (lo <= hi) {
                    t.ranges[2 * t.nranges] = lo;
                    t.ranges[2 * t.nranges + 1] = hi;
                    t.nranges++;
                }
            }
            if (!complete) {
                free(t.ranges);
                return gi_fail(z, ni, "found [ without matching ]");
            }
            ni = j;
        } else if (!esc && (r == '*' || r == '+')) {
            char msg[64];
            snprintf(msg, sizeof(msg), "flag '%c' must be preceded by a non-flag", (char)r);
            return gi_fail(z, ni, msg);
        } else {
            t.type = GT_CHAR;
            t.r = r;
        }
        /* an optional flag right after the token */
        size_t fi;
        uint32_t fr;
        bool fesc;
        rc = gi_next_rune(z, ni, &fi, &fr, &fesc);
        if (rc < 0) {
            free(t.ranges);
            return -1;
        }
        if (rc == 1 && !fesc && (fr == '*' || fr == '+')) {
            t.flag = fr == '*' ? GF_STAR : GF_PLUS;
            ni = fi;
        }
        g->t[g->n++] = t;
        i = ni;
    }
}

static bool gi_match(const gtok_t *a, const gtok_t *b)
{
    if (a->type > b->type) {
        const gtok_t *t = a;
        a = b;
        b = t;
    }
    if (a->type == GT_CHAR) {
        if (b->type == GT_CHAR) return a->r == b->r;
        if (b->type == GT_DOT) return true;
        for (size_t i = 0; i < b->nranges; i++)
            if (a->r >= b->ranges[2 * i] && a->r <= b->ranges[2 * i + 1]) return true;
        return false;
    }
    if (a->type == GT_DOT) return true;
    for (size_t i = 0; i < a->nranges; i++)
        for (size_t j = 0; j < b->nranges; j++)
            if (a->ranges[2 * i] <= b->ranges[2 * j + 1] && b->ranges[2 * j] <= a->ranges[2 * i + 1])
                return true;
    return false;
}

typedef struct {
    long budget;
} gi_ctx_t;

static bool gi_normal(gi_ctx_t *c, const gtok_t *g1, size_t n1, const gtok_t *g2, size_t n2);

static bool gi_star(gi_ctx_t *c, const gtok_t *st, size_t ns, const gtok_t *o, size_t no)
{
    const gtok_t *star = &st[0], *next = ns > 1 ? &st[1] : NULL;
    for (size_t i = 0; i < no; i++) {
        if (--c->budget < 0) return false;
        if (next && gi_match(&o[i], next)) {
            if (gi_normal(c, st + 1, ns - 1, o + i, no - i)) return true;
            if (!gi_match(&o[i], star)) return false;
        } else if (!gi_match(&o[i], star)) {
            return false;
        }
    }
    return next == NULL;
}

static bool gi_plus(gi_ctx_t *c, const gtok_t *pl, size_t np, const gtok_t *o, size_t no)
{
    if (no == 0 || !gi_match(&pl[0], &o[0])) return false;
    if (gi_star(c, pl, np, o + 1, no - 1)) return true;
    return o[0].flag != GF_NONE && gi_normal(c, pl + 1, np - 1, o, no);
}

static bool gi_special(gi_ctx_t *c, const gtok_t *g1, size_t n1, const gtok_t *g2, size_t n2)
{
    if (g1[0].flag != GF_NONE)
        return g1[0].flag == GF_PLUS ? gi_plus(c, g1, n1, g2, n2) : gi_star(c, g1, n1, g2, n2);
    return g2[0].flag == GF_PLUS ? gi_plus(c, g2, n2, g1, n1) : gi_star(c, g2, n2, g1, n1);
}

static bool gi_normal(gi_ctx_t *c, const gtok_t *g1, size_t n1, const gtok_t *g2, size_t n2)
{
    size_t i = 0, j = 0;
    for (; i < n1 && j < n2; i++, j++) {
        if (--c->budget < 0) return false;
        if (g1[i].flag == GF_NONE && g2[j].flag == GF_NONE) {
            if (!gi_match(&g1[i], &g2[j])) return false;
        } else {
            return gi_special(c, g1 + i, n1 - i, g2 + j, n2 - j);
        }
    }
    return i == n1 && j == n2;
}

static uint32_t *to_runes(const char *s, size_t n, size_t *count)
{
    uint32_t *r = malloc(sizeof(uint32_t) * (n ? n : 1));
    size_t k = 0, w;
    if (!r) return NULL;
    for (size_t i = 0; i < n; i += w) r[k++] = pc__utf8_decode(s + i, n - i, &w);
    *count = k;
    return r;
}

int pc_plib_globs_intersect(const char *a, size_t an, const char *b, size_t bn, char *err,
                            size_t errlen)
{
    size_t ra, rb;
    uint32_t *ua = to_runes(a, an, &ra), *ub = to_runes(b, bn, &rb);
    glob_t2 g1 = {0}, g2 = {0};
    int rc = -1;
    if (!ua || !ub) goto out;
    gtokenizer_t z1 = {ua, ra, a, an, err, errlen}, z2 = {ub, rb, b, bn, err, errlen};
    if (gi_tokenize(&z1, &g1) < 0 || gi_tokenize(&z2, &g2) < 0) goto out;
    /* trimGlobs: matching unflagged prefixes/suffixes, one token kept on each side */
    size_t l = 0;
    for (; l < g1.n && l < g2.n && g1.t[l].flag == GF_NONE && g2.t[l].flag == GF_NONE; l++)
        if (!gi_match(&g1.t[l], &g2.t[l])) {
            rc = 0;
            goto out;
        }
    if (l > 0) l--;
    long r1 = (long)g1.n - 1, r2 = (long)g2.n - 1;
    for (; r1 >= 0 && r1 >= (long)l && r2 >= 0 && r2 >= (long)l && g1.t[r1].flag == GF_NONE &&
           g2.t[r2].flag == GF_NONE;
         r1--, r2--)
        if (!gi_match(&g1.t[r1], &g2.t[r2])) {
            rc = 0;
            goto out;
        }
    if (r1 < (long)g1.n - 1) {
        r1++;
        r2++;
    }
    gi_ctx_t c = {1000000};
    size_t n1 = r1 + 1 > (long)l ? (size_t)(r1 + 1) - l : 0, n2 = r2 + 1 > (long)l ? (size_t)(r2 + 1) - l : 0;
    rc = gi_normal(&c, g1.t + l, n1, g2.t + l, n2) ? 1 : 0;
out:
    gtok_free(&g1);
    gtok_free(&g2);
    free(ua);
    free(ub);
    return rc;
}
