/* Go's net.ParseIP / ParseCIDR / IPNet.Contains and OPA's CIDR merging. */
#include "policy/lib/net.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

typedef unsigned __int128 u128;

static bool parse_v4(const char *s, size_t n, uint32_t *out)
{
    uint32_t v = 0;
    size_t i = 0;
    for (int part = 0; part < 4; part++) {
        if (part > 0) {
            if (i >= n || s[i] != '.') return false;
            i++;
        }
        size_t st = i;
        unsigned x = 0;
        while (i < n && isdigit((unsigned char)s[i]) && i - st < 4) x = x * 10 + (unsigned)(s[i++] - '0');
        if (i == st || i - st > 3 || x > 255) return false;
        if (i - st > 1 && s[st] == '0') return false; /* Go rejects leading zeros */
        v = v << 8 | x;
    }
    if (i != n) return false;
    *out = v;
    return true;
}

static bool parse_v6(const char *s, size_t n, u128 *out)
{
    uint16_t g[8] = {0};
    int ng = 0, ellipsis = -1;
    size_t i = 0;
    if (n >= 2 && s[0] == ':' && s[1] == ':') {
        ellipsis = 0;
        i = 2;
        if (i == n) goto done;
    }
    while (i < n) {
        size_t st = i;
        unsigned x = 0;
        while (i < n && isxdigit((unsigned char)s[i]) && i - st < 5) {
            int c = s[i];
            x = x * 16 + (unsigned)(isdigit(c) ? c - '0' : (tolower(c) - 'a' + 10));
            i++;
        }
        if (i == st || i - st > 4) return false;
        if (i < n && s[i] == '.') {
            /* embedded IPv4 in the last 32 bits */
            if (ng > 6) return false;
            uint32_t v4;
            if (!parse_v4(s + st, n - st, &v4)) return false;
            g[ng++] = (uint16_t)(v4 >> 16);
            g[ng++] = (uint16_t)v4;
            i = n;
            break;
        }
        if (ng >= 8) return false;
        g[ng++] = (uint16_t)x;
        if (i == n) break;
        if (s[i] != ':') return false;
        i++;
        if (i < n && s[i] == ':') {
            if (ellipsis >= 0) return false;
            ellipsis = ng;
            i++;
            if (i == n) break;
        } else if (i == n) {
            return false;
        }
    }
done:
    if (ellipsis >= 0) {
        if (ng >= 8) return false;
        int shift = 8 - ng;
        for (int k = ng - 1; k >= ellipsis; k--) g[k + shift] = g[k];
        for (int k = ellipsis; k < ellipsis + shift; k++) g[k] = 0;
    } else if (ng != 8) {
        return false;
    }
    u128 v = 0;
    for (int k = 0; k < 8; k++) v = v << 16 | g[k];
    *out = v;
    return true;
}

static bool is_v4_mapped(u128 v)
{
    return (v >> 32) == (u128)0xFFFF;
}

bool pc_plib_ip_parse(const char *s, size_t n, u128 *ip, int *bits)
{
    uint32_t v4;
    if (memchr(s, ':', n) == NULL) {
        if (!parse_v4(s, n, &v4)) return false;
        *ip = v4;
        *bits = 32;
        return true;
    }
    u128 v;
    if (!parse_v6(s, n, &v)) return false;
    if (is_v4_mapped(v)) {
        *ip = v & 0xFFFFFFFFu;
        *bits = 32;
    } else {
        *ip = v;
        *bits = 128;
    }
    return true;
}

static void cidr_err(char *err, size_t errlen, const char *s, size_t n)
{
    if (err && errlen) snprintf(err, errlen, "invalid CIDR address: %.*s", (int)(n > 200 ? 200 : n), s);
}

bool pc_plib_cidr_parse(const char *s, size_t n, pc_plib_cidr_t *out, char *err, size_t errlen)
{
    const char *slash = memchr(s, '/', n);
    if (!slash) goto bad;
    size_t an = (size_t)(slash - s);
    memset(out, 0, sizeof(*out));
    uint32_t v4;
    if (!memchr(s, ':', an)) {
        if (!parse_v4(s, an, &v4)) goto bad;
        out->ip = v4;
        out->bits = 32;
    } else {
        if (memchr(s, '%', an)) goto bad;
        if (!parse_v6(s, an, &out->ip)) goto bad;
        out->bits = 128;
    }
    size_t i = an + 1;
    if (i >= n) goto bad;
    long p = 0;
    for (; i < n; i++) {
        if (!isdigit((unsigned char)s[i]) || p > 1000) goto bad;
        p = p * 10 + (s[i] - '0');
    }
    if (p > out->bits) goto bad;
    out->prefix = (int)p;
    return true;
bad:
    cidr_err(err, errlen, s, n);
    return false;
}

static u128 mask_of(int bits, int prefix)
{
    if (prefix == 0) return 0;
    u128 all = bits == 32 ? (u128)0xFFFFFFFFu : ~(u128)0;
    return (all << (bits - prefix)) & all;
}

static u128 first_of(const pc_plib_cidr_t *c)
{
    return c->ip & mask_of(c->bits, c->prefix);
}

static u128 last_of(const pc_plib_cidr_t *c)
{
    u128 all = c->bits == 32 ? (u128)0xFFFFFFFFu : ~(u128)0;
    return first_of(c) | (all & ~mask_of(c->bits, c->prefix));
}

static bool contains_ip(const pc_plib_cidr_t *c, u128 ip, int bits)
{
    if (bits != c->bits) return false;
    u128 m = mask_of(c->bits, c->prefix);
    return (c->ip & m) == (ip & m);
}

size_t pc_plib_ip_format(u128 ip, int bits, char *buf, size_t cap)
{
    if (bits == 32 || is_v4_mapped(ip)) {
        uint32_t v = (uint32_t)ip;
        int k = snprintf(buf, cap, "%u.%u.%u.%u", v >> 24, (v >> 16) & 255, (v >> 8) & 255, v & 255);
        return k < 0 ? 0 : (size_t)k;
    }
    uint16_t g[8];
    for (int k = 7; k >= 0; k--) {
        g[k] = (uint16_t)ip;
        ip >>= 16;
    }
    /* longest run of zero groups (at least two), first one wins */
    int best = -1, best_len = 1;
    for (int k = 0; k < 8;) {
        if (g[k] != 0) {
            k++;
            continue;
        }
        int j = k;
        while (j < 8 && g[j] == 0) j++;
        if (j - k > best_len) {
            best = k;
            best_len = j - k;
        }
        k = j;
    }
    size_t len = 0;
    for (int k = 0; k < 8; k++) {
        if (k == best) {
            len += (size_t)snprintf(buf + len, cap - len, "::");
            k += best_len - 1;
            continue;
        }
        if (k > 0 && k != best + best_len)
            len += (size_t)snprintf(buf + len, cap - len, ":");
        else if (k > 0 && best < 0)
            len += (size_t)snprintf(buf + len, cap - len, ":");
        len += (size_t)snprintf(buf + len, cap - len, "%x", g[k]);
    }
    return len;
}

int pc_plib_cidr_contains(const char *a, size_t an, const char *b, size_t bn, char *err,
                          size_t errlen)
{
    pc_plib_cidr_t ca, cb;
    if (!pc_plib_cidr_parse(a, an, &ca, err, errlen)) return -1;
    u128 ip;
    int bits;
    if (pc_plib_ip_parse(b, bn, &ip, &bits)) return contains_ip(&ca, ip, bits);
    if (!pc_plib_cidr_parse(b, bn, &cb, NULL, 0)) {
        if (err && errlen)
            snprintf(err, errlen, "not a valid textual representation of an IP address or CIDR: %.*s",
                     (int)(bn > 200 ? 200 : bn), b);
        return -1;
    }
    return contains_ip(&ca, first_of(&cb), cb.bits) && contains_ip(&ca, last_of(&cb), cb.bits);
}

int pc_plib_cidr_intersects(const char *a, size_t an, const char *b, size_t bn, char *err,
                            size_t errlen)
{
    pc_plib_cidr_t ca, cb;
    if (!pc_plib_cidr_parse(a, an, &ca, err, errlen)) return -1;
    if (!pc_plib_cidr_parse(b, bn, &cb, err, errlen)) return -1;
    return contains_ip(&ca, first_of(&cb), cb.bits) || contains_ip(&cb, first_of(&ca), ca.bits);
}

bool pc_plib_cidr_expand(const char *s, size_t n, pc_plib_str_cb cb, void *ud, char *err,
                         size_t errlen)
{
    pc_plib_cidr_t c;
    if (!pc_plib_cidr_parse(s, n, &c, err, errlen)) return false;
    u128 ip = first_of(&c), last = last_of(&c);
    char buf[64];
    for (;;) {
        size_t k = pc_plib_ip_format(ip, c.bits, buf, sizeof(buf));
        if (!cb(ud, buf, k)) break;
        if (ip == last) break;
        ip++;
    }
    return true;
}

typedef struct {
    u128 first, last;
    int bits;
    const pc_plib_cidr_t *orig; /* unmerged: print as given */
} range_t;

static int range_cmp(const void *x, const void *y)
{
    const range_t *a = x, *b = y;
    if (a->bits != b->bits) return a->bits < b->bits ? -1 : 1;
    if (a->last != b->last) return a->last < b->last ? -1 : 1;
    if (a->first != b->first) return a->first < b->first ? -1 : 1;
    return 0;
}

static bool emit_cidr(u128 ip, int bits, int prefix, pc_plib_str_cb cb, void *ud)
{
    char buf[80];
    size_t k = pc_plib_ip_format(ip, bits, buf, sizeof(buf));
    k += (size_t)snprintf(buf + k, sizeof(buf) - k, "/%d", prefix);
    return cb(ud, buf, k);
}

/* Minimal CIDR cover of [first, last]: at each step the largest aligned block. */
static bool range_to_cidrs(u128 first, u128 last, int bits, pc_plib_str_cb cb, void *ud)
{
    for (;;) {
        int host = 0;
        while (host < bits) {
            int h = host + 1;
            u128 span = h >= 128 ? ~(u128)0 : ((u128)1 << h) - 1;
            if ((first & span) != 0 || last - first < span) break;
            host = h;
        }
        if (!emit_cidr(first, bits, bits - host, cb, ud)) return false;
        u128 span = host >= 128 ? ~(u128)0 : ((u128)1 << host) - 1;
        if (last - first <= span) return true;
        first += span + 1;
    }
}

bool pc_plib_cidr_merge(const char *const *items, const size_t *lens, size_t n, pc_plib_str_cb cb,
                        void *ud, char *err, size_t errlen)
{
    if (n == 0) return true;
    pc_plib_cidr_t *nets = calloc(n, sizeof(*nets));
    range_t *r = calloc(n, sizeof(*r));
    bool ok = false;
    if (!nets || !r) goto out;
    for (size_t i = 0; i < n; i++) {
        u128 ip;
        int bits;
        if (pc_plib_ip_parse(items[i], lens[i], &ip, &bits)) {
            if (bits != 32) {
                if (err && errlen) snprintf(err, errlen, "IPv6 invalid: needs prefix length");
                goto out;
            }
            uint32_t top = (uint32_t)(ip >> 24);
            nets[i].ip = ip;
            nets[i].bits = 32;
            nets[i].prefix = top < 0x80 ? 8 : top < 0xC0 ? 16 : 24;
            nets[i].plain_ip = true;
        } else if (!pc_plib_cidr_parse(items[i], lens[i], &nets[i], err, errlen)) {
            goto out;
        }
        r[i].first = first_of(&nets[i]);
        r[i].last = last_of(&nets[i]);
        r[i].bits = nets[i].bits;
        r[i].orig = &nets[i];
    }
    qsort(r, n, sizeof(*r), range_cmp);
    size_t m = n;
    for (size_t i = m - 1; i > 0; i--) {
        if (r[i].bits != r[i - 1].bits) continue;
        u128 prev = r[i].first - (r[i].first ? 1 : 0);
        if (prev <= r[i - 1].last) {
            u128 first = r[i - 1].first < r[i].first ? r[i - 1].first : r[i].first;
            r[i - 1].first = first;
            r[i - 1].last = r[i].last;
            r[i - 1].orig = NULL;
            memmove(&r[i], &r[i + 1], (m - i - 1) * sizeof(*r));
            m--;
        }
    }
    for (size_t i = 0; i < m; i++) {
        if (r[i].orig) {
            if (!emit_cidr(r[i].orig->plain_ip ? r[i].orig->ip : first_of(r[i].orig), r[i].bits,
                           r[i].orig->prefix, cb, ud))
                break;
        } else if (!range_to_cidrs(r[i].first, r[i].last, r[i].bits, cb, ud)) {
            break;
        }
    }
    ok = true;
out:
    free(nets);
    free(r);
    return ok;
}

long pc_plib_lookup_ip_addr(const char *name, size_t n, const char *hosts_path, pc_plib_str_cb cb,
                            void *ud)
{
    u128 ip;
    int bits;
    char buf[80];
    if (pc_plib_ip_parse(name, n, &ip, &bits)) {
        size_t k = pc_plib_ip_format(ip, bits, buf, sizeof(buf));
        cb(ud, buf, k);
        return 1;
    }
    FILE *f = fopen(hosts_path ? hosts_path : "/etc/hosts", "r");
    if (!f) return 0;
    char line[1024];
    long found = 0;
    while (fgets(line, sizeof(line), f)) {
        char *hash = strchr(line, '#');
        if (hash) *hash = '\0';
        char *save = NULL;
        char *addr = strtok_r(line, " \t\r\n", &save);
        if (!addr) continue;
        bool match = false;
        for (char *h = strtok_r(NULL, " \t\r\n", &save); h; h = strtok_r(NULL, " \t\r\n", &save))
            if (strlen(h) == n && strncasecmp(h, name, n) == 0) match = true;
        if (!match || !pc_plib_ip_parse(addr, strlen(addr), &ip, &bits)) continue;
        size_t k = pc_plib_ip_format(ip, bits, buf, sizeof(buf));
        found++;
        if (!cb(ud, buf, k)) break;
    }
    fclose(f);
    return found;
}
