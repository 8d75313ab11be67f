/* OPA's semver: dotted triple of int64 (strconv.ParseInt rules), optional
 * pre-release and metadata made of [0-9A-Za-z-] dot-separated identifiers. */
#include "policy/lib/semver.h"

#include <ctype.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    int64_t v[3];
    const char *pre;
    size_t pre_len;
} ver_t;

static bool ident_ok(const char *s, size_t n)
{
    if (n == 0) return true;
    bool need = true; /* an identifier must not be empty */
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '.') {
            if (need) return false;
            need = true;
        } else if (isalnum((unsigned char)s[i]) || s[i] == '-') {
            need = false;
        } else {
            return false;
        }
    }
    return !need;
}

/* strconv.ParseInt(s, 10, 64) */
static bool parse_int(const char *s, size_t n, int64_t *out)
{
    size_t i = 0;
    bool neg = false;
    if (n == 0) return false;
    if (s[0] == '+' || s[0] == '-') {
        neg = s[0] == '-';
        i = 1;
    }
    if (i == n) return false;
    uint64_t v = 0;
    for (; i < n; i++) {
        if (s[i] == '_' || !isdigit((unsigned char)s[i])) return false;
        if (v > (UINT64_MAX - 9) / 10) return false;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    if (neg ? v > (uint64_t)INT64_MAX + 1 : v > (uint64_t)INT64_MAX) return false;
    *out = neg ? (int64_t)(0 - v) : (int64_t)v;
    return true;
}

static bool parse(const char *s, size_t n, ver_t *v)
{
    memset(v, 0, sizeof(*v));
    const char *plus = memchr(s, '+', n);
    size_t core = plus ? (size_t)(plus - s) : n;
    if (plus && !ident_ok(plus + 1, n - core - 1)) return false;
    const char *dash = memchr(s, '-', core);
    if (dash) {
        v->pre = dash + 1;
        v->pre_len = core - (size_t)(dash - s) - 1;
        core = (size_t)(dash - s);
        if (!ident_ok(v->pre, v->pre_len)) return false;
    }
    /* SplitN(core, ".", 3): the third part keeps any further dots (and fails ParseInt) */
    const char *p = s;
    size_t left = core;
    for (int i = 0; i < 3; i++) {
        const char *dot = i < 2 ? memchr(p, '.', left) : NULL;
        if (i < 2 && !dot) return false;
        size_t len = dot ? (size_t)(dot - p) : left;
        if (!parse_int(p, len, &v->v[i])) return false;
        if (dot) {
            left -= len + 1;
            p = dot + 1;
        }
    }
    return true;
}

bool pc_plib_semver_valid(const char *s, size_t n)
{
    ver_t v;
    return parse(s, n, &v);
}

static bool atoi_ok(const char *s, size_t n, long long *out)
{
    int64_t v;
    if (!parse_int(s, n, &v)) return false;
    *out = v;
    return true;
}

static int pre_compare(const char *a, size_t an, const char *b, size_t bn)
{
    if (an == 0 && bn > 0) return 1;
    if (bn == 0 && an > 0) return -1;
    for (;;) {
        if (an == 0) return bn > 0 ? -1 : 0;
        if (bn == 0) return 1;
        const char *da = memchr(a, '.', an), *db = memchr(b, '.', bn);
        size_t la = da ? (size_t)(da - a) : an, lb = db ? (size_t)(db - b) : bn;
        long long ia, ib;
        bool na = atoi_ok(a, la, &ia), nb = atoi_ok(b, lb, &ib);
        if (na && !nb) return -1;
        if (!na && nb) return 1;
        if (na && nb && ia != ib) return ia > ib ? 1 : -1;
        size_t m = la < lb ? la : lb;
        int c = memcmp(a, b, m);
        if (c) return c > 0 ? 1 : -1;
        if (la != lb) return la > lb ? 1 : -1;
        a += la + (da ? 1 : 0);
        an -= la + (da ? 1 : 0);
        b += lb + (db ? 1 : 0);
        bn -= lb + (db ? 1 : 0);
        /* "1.0.0-a." style trailing dots cannot occur: identifiers were validated */
    }
}

int pc_plib_semver_compare(const char *a, size_t an, const char *b, size_t bn)
{
    ver_t x, y;
    if (!parse(a, an, &x) || !parse(b, bn, &y)) return 0;
    for (int i = 0; i < 3; i++)
        if (x.v[i] != y.v[i]) return x.v[i] > y.v[i] ? 1 : -1;
    return pre_compare(x.pre, x.pre_len, y.pre, y.pre_len);
}
