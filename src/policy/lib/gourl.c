/* net/url.Parse: scheme, authority (userinfo, host, port), path with
 * RawPath, query and fragment, each unescaped with Go's per-part rules. */
#include "policy/lib/gourl.h"

#include "policy/lib/sbuf.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef enum { ENC_PATH, ENC_HOST, ENC_USER, ENC_QUERY, ENC_FRAGMENT } enc_t;

static int unhex(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static bool should_escape(unsigned char c, enc_t mode)
{
    if (isalnum(c)) return false;
    if (mode == ENC_HOST && strchr("!$&'()*+,;=:[]<>\"", c) && c) return false;
    if (c == '-' || c == '_' || c == '.' || c == '~') return false;
    if (c && strchr("$&+,/:;=?@", c)) {
        switch (mode) {
        case ENC_PATH: return c == '?';
        case ENC_USER: return c == '@' || c == '/' || c == '?' || c == ':';
        case ENC_QUERY: return true;
        case ENC_FRAGMENT: return false;
        default: break;
        }
    }
    if (mode == ENC_FRAGMENT && (c == '!' || c == '(' || c == ')' || c == '*')) return false;
    return true;
}

/* Go's quote of a short string for messages (printable UTF-8 kept). */
static void add_quoted(pc__sbuf_t *b, const char *s, size_t n)
{
    pc__sbuf_addc(b, '"');
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            pc__sbuf_addc(b, '\\');
            pc__sbuf_addc(b, (char)c);
        } else if (c < 0x20 || c == 0x7f) {
            char e[8];
            snprintf(e, sizeof(e), "\\x%02x", c);
            pc__sbuf_adds(b, e);
        } else {
            pc__sbuf_addc(b, (char)c);
        }
    }
    pc__sbuf_addc(b, '"');
}

static void set_msg(pc__sbuf_t *m, const char *prefix, const char *s, size_t n, const char *suffix)
{
    pc__sbuf_adds(m, prefix);
    add_quoted(m, s, n);
    pc__sbuf_adds(m, suffix);
}

/* url.unescape: NULL with the error message in *msg */
static char *unescape(const char *s, size_t n, enc_t mode, pc__sbuf_t *msg)
{
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '%') {
            if (i + 2 >= n || unhex(s[i + 1]) < 0 || unhex(s[i + 2]) < 0) {
                set_msg(msg, "invalid URL escape ", s + i, n - i < 3 ? n - i : 3, "");
                return NULL;
            }
            if (mode == ENC_HOST && unhex(s[i + 1]) < 8 && memcmp(s + i, "%25", 3) != 0) {
                set_msg(msg, "invalid URL escape ", s + i, 3, "");
                return NULL;
            }
            i += 2;
        } else if (mode == ENC_HOST && (unsigned char)s[i] < 0x80 && should_escape((unsigned char)s[i], mode)) {
            set_msg(msg, "invalid character ", s + i, 1, " in host name");
            return NULL;
        }
    }
    pc__sbuf_t b = {0};
    pc__sbuf_reserve(&b, n);
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '%') {
            pc__sbuf_addc(&b, (char)(unhex(s[i + 1]) << 4 | unhex(s[i + 2])));
            i += 2;
        } else if (s[i] == '+' && mode == ENC_QUERY) {
            pc__sbuf_addc(&b, ' ');
        } else {
            pc__sbuf_addc(&b, s[i]);
        }
    }
    return pc__sbuf_take(&b, NULL);
}

static char *escape(const char *s, size_t n, enc_t mode)
{
    static const char hx[] = "0123456789ABCDEF";
    pc__sbuf_t b = {0};
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (should_escape(c, mode)) {
            char e[3] = {'%', hx[c >> 4], hx[c & 15]};
            pc__sbuf_add(&b, e, 3);
        } else {
            pc__sbuf_addc(&b, (char)c);
        }
    }
    char *r = pc__sbuf_take(&b, NULL);
    return r ? r : strdup("");
}

static bool valid_port(const char *p, size_t n)
{
    if (n == 0) return true;
    if (p[0] != ':') return false;
    for (size_t i = 1; i < n; i++)
        if (p[i] < '0' || p[i] > '9') return false;
    return true;
}

static bool valid_userinfo(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (isalnum(c)) continue;
        if (c && strchr("-._:~!$&'()*+,;=%@", c)) continue;
        return false;
    }
    return true;
}

static char *dupn(const char *s, size_t n)
{
    return n ? strndup(s, n) : NULL;
}

void pc_plib_url_free(pc_plib_url_t *u)
{
    if (!u) return;
    free(u->scheme);
    free(u->opaque);
    free(u->host);
    free(u->hostname);
    free(u->escaped_path);
    free(u->port);
    free(u->path);
    free(u->raw_path);
    free(u->raw_query);
    free(u->fragment);
    memset(u, 0, sizeof(*u));
}

static const char *memrchr_c(const char *s, size_t n, char c)
{
    while (n-- > 0)
        if (s[n] == c) return s + n;
    return NULL;
}

static bool parse_host(const char *h, size_t n, pc_plib_url_t *u, pc__sbuf_t *msg)
{
    const char *hp = h;
    size_t hn = n;
    const char *port = NULL;
    size_t pn = 0;
    if (n > 0 && h[0] == '[') {
        const char *rb = memrchr_c(h, n, ']');
        if (!rb) {
            pc__sbuf_adds(msg, "missing ']' in host");
            return false;
        }
        const char *cp = rb + 1;
        size_t cl = (size_t)(h + n - cp);
        if (!valid_port(cp, cl)) {
            set_msg(msg, "invalid port ", cp, cl, " after host");
            return false;
        }
        hp = h + 1;
        hn = (size_t)(rb - h - 1);
        if (cl > 1) {
            port = cp + 1;
            pn = cl - 1;
        }
    } else {
        const char *c = memrchr_c(h, n, ':');
        if (c) {
            size_t cl = (size_t)(h + n - c);
            if (!valid_port(c, cl)) {
                set_msg(msg, "invalid port ", c, cl, " after host");
                return false;
            }
            hn = (size_t)(c - h);
            if (cl > 1) {
                port = c + 1;
                pn = cl - 1;
            }
        }
    }
    char *host = unescape(h, n, ENC_HOST, msg);
    if (!host) return false;
    if (*host)
        u->host = host;
    else
        free(host);
    /* Hostname(): the host without port and brackets, unescaped */
    char *hn_dec = unescape(hp, hn, ENC_HOST, msg);
    if (!hn_dec) return false;
    if (*hn_dec)
        u->hostname = hn_dec;
    else
        free(hn_dec);
    u->port = dupn(port, pn);
    return true;
}

bool pc_plib_url_parse(const char *s, size_t n, pc_plib_url_t *u, char *err, size_t errlen)
{
    memset(u, 0, sizeof(*u));
    pc__sbuf_t msg = {0};
    const char *hash = memchr(s, '#', n);
    size_t un = hash ? (size_t)(hash - s) : n;
    const char *rest;
    size_t rn;
    bool ok = false;
    for (size_t i = 0; i < un; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f) {
            pc__sbuf_adds(&msg, "net/url: invalid control character in URL");
            goto fail;
        }
    /* scheme */
    rest = s;
    rn = un;
    for (size_t i = 0; i < un; i++) {
        char c = s[i];
        if (isalpha((unsigned char)c)) continue;
        if (isdigit((unsigned char)c) || c == '+' || c == '-' || c == '.') {
            if (i == 0) break;
            continue;
        }
        if (c == ':') {
            if (i == 0) {
                pc__sbuf_adds(&msg, "missing protocol scheme");
                goto fail;
            }
            u->scheme = strndup(s, i);
            for (char *p = u->scheme; p && *p; p++) *p = (char)tolower((unsigned char)*p);
            rest = s + i + 1;
            rn = un - i - 1;
        }
        break;
    }
    /* query */
    size_t qcount = 0;
    for (size_t i = 0; i < rn; i++) qcount += rest[i] == '?';
    if (rn > 0 && rest[rn - 1] == '?' && qcount == 1) {
        rn--;
    } else {
        const char *q = memchr(rest, '?', rn);
        if (q) {
            u->raw_query = dupn(q + 1, rn - (size_t)(q - rest) - 1);
            rn = (size_t)(q - rest);
        }
    }
    if (rn == 0 || rest[0] != '/') {
        if (u->scheme) {
            u->opaque = dupn(rest, rn);
            goto fragment;
        }
        const char *slash = memchr(rest, '/', rn);
        size_t seg = slash ? (size_t)(slash - rest) : rn;
        if (memchr(rest, ':', seg)) {
            pc__sbuf_adds(&msg, "first path segment in URL cannot contain colon");
            goto fail;
        }
    }
    if ((u->scheme || !(rn >= 3 && memcmp(rest, "///", 3) == 0)) && rn >= 2 && rest[0] == '/' && rest[1] == '/') {
        const char *auth = rest + 2;
        size_t an = rn - 2;
        const char *slash = memchr(auth, '/', an);
        size_t al = slash ? (size_t)(slash - auth) : an;
        rest = auth + al;
        rn = an - al;
        const char *at = memrchr_c(auth, al, '@');
        if (at) {
            if (!parse_host(at + 1, al - (size_t)(at - auth) - 1, u, &msg)) goto fail;
            size_t ul = (size_t)(at - auth);
            if (!valid_userinfo(auth, ul)) {
                pc__sbuf_adds(&msg, "net/url: invalid userinfo");
                goto fail;
            }
            char *ui = unescape(auth, ul, ENC_USER, &msg);
            if (!ui) goto fail;
            free(ui);
            u->has_user = true;
        } else if (!parse_host(auth, al, u, &msg)) {
            goto fail;
        }
    }
    /* path and RawPath */
    if (rn > 0) {
        char *p = unescape(rest, rn, ENC_PATH, &msg);
        if (!p) goto fail;
        char *e = escape(p, strlen(p), ENC_PATH);
        if (strlen(e) != rn || memcmp(e, rest, rn) != 0) u->raw_path = strndup(rest, rn);
        /* EscapedPath: the original when it decodes to Path, else the default encoding */
        if (u->raw_path) {
            u->escaped_path = strndup(rest, rn);
            free(e);
        } else {
            u->escaped_path = e;
        }
        if (*p)
            u->path = p;
        else
            free(p);
    }
fragment:
    if (hash) {
        char *f = unescape(hash + 1, n - un - 1, ENC_FRAGMENT, &msg);
        if (!f) {
            /* Go reports the whole input for fragment errors */
            un = n;
            goto fail;
        }
        if (*f)
            u->fragment = f;
        else
            free(f);
    }
    ok = true;
fail:
    if (!ok) {
        if (err && errlen) {
            pc__sbuf_t m = {0};
            pc__sbuf_adds(&m, "parse ");
            add_quoted(&m, s, un);
            pc__sbuf_adds(&m, ": ");
            pc__sbuf_add(&m, msg.data ? msg.data : "", msg.len);
            snprintf(err, errlen, "%s", m.data ? m.data : "invalid URL");
            pc__sbuf_free(&m);
        }
        pc_plib_url_free(u);
    }
    pc__sbuf_free(&msg);
    return ok;
}
