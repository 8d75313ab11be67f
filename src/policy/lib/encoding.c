/* Base64 (three alphabets), hex and URL query escaping with Go's rules. */
#include "policy/lib/encoding.h"

#include "policy/lib/sbuf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char B64_STD[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static const char B64_URL[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static void set_err(char *err, size_t errlen, const char *msg)
{
    if (err && errlen) snprintf(err, errlen, "%s", msg);
}

char *pc_plib_base64_encode(pc_plib_b64_t enc, const void *srcv, size_t n, size_t *out_len)
{
    const unsigned char *src = srcv;
    const char *al = enc == PC_PLIB_B64_STD ? B64_STD : B64_URL;
    bool padding = enc != PC_PLIB_B64_RAW_URL;
    pc__sbuf_t b = {0};
    if (!pc__sbuf_reserve(&b, (n + 2) / 3 * 4)) return NULL;
    size_t i = 0;
    for (; i + 3 <= n; i += 3) {
        unsigned v = (unsigned)src[i] << 16 | (unsigned)src[i + 1] << 8 | src[i + 2];
        char q[4] = {al[v >> 18], al[(v >> 12) & 63], al[(v >> 6) & 63], al[v & 63]};
        pc__sbuf_add(&b, q, 4);
    }
    size_t rem = n - i;
    if (rem) {
        unsigned v = (unsigned)src[i] << 16 | (rem == 2 ? (unsigned)src[i + 1] << 8 : 0);
        pc__sbuf_addc(&b, al[v >> 18]);
        pc__sbuf_addc(&b, al[(v >> 12) & 63]);
        if (rem == 2) pc__sbuf_addc(&b, al[(v >> 6) & 63]);
        if (padding) pc__sbuf_addrep(&b, '=', 3 - rem);
    }
    return pc__sbuf_take(&b, out_len);
}

/* Go's base64.Encoding.Decode in strict-padding mode (raw: no padding allowed);
 * \r and \n are skipped anywhere. */
char *pc_plib_base64_decode(pc_plib_b64_t enc, const char *src, size_t n, size_t *out_len,
                            char *err, size_t errlen)
{
    const char *al = enc == PC_PLIB_B64_STD ? B64_STD : B64_URL;
    bool padding = enc != PC_PLIB_B64_RAW_URL;
    signed char map[256];
    memset(map, -1, sizeof(map));
    for (int k = 0; k < 64; k++) map[(unsigned char)al[k]] = (signed char)k;
    pc__sbuf_t b = {0};
    if (!pc__sbuf_reserve(&b, n / 4 * 3 + 3)) return NULL;
    size_t si = 0;
    char msg[96];
    for (;;) {
        unsigned char dbuf[4];
        size_t dlen = 4;
        /* read up to 4 symbols */
        size_t j = 0;
        for (; j < 4; j++) {
            while (si < n && (src[si] == '\n' || src[si] == '\r')) si++;
            if (si == n) {
                if (j == 0) goto done;
                if (j == 1 || padding) {
                    snprintf(msg, sizeof(msg), "illegal base64 data at input byte %zu",
                             si - j);
                    goto fail;
                }
                dlen = j;
                break;
            }
            unsigned char in = (unsigned char)src[si];
            size_t at = si;
            si++;
            if (in == '=' && padding) {
                /* padding: "=" at j==2 needs another '=', j==3 ends the quantum */
                if (j == 0 || j == 1) {
                    snprintf(msg, sizeof(msg), "illegal base64 data at input byte %zu", at);
                    goto fail;
                }
                if (j == 2) {
                    while (si < n && (src[si] == '\n' || src[si] == '\r')) si++;
                    if (si == n) {
                        snprintf(msg, sizeof(msg), "illegal base64 data at input byte %zu", n);
                        goto fail;
                    }
                    if (src[si] != '=') {
                        snprintf(msg, sizeof(msg), "illegal base64 data at input byte %zu",
                                 si - 1);
                        goto fail;
                    }
                    si++;
                }
                while (si < n && (src[si] == '\n' || src[si] == '\r')) si++;
                if (si < n) {
                    snprintf(msg, sizeof(msg), "illegal base64 data at input byte %zu", si);
                    goto fail;
                }
                dlen = j;
                break;
            }
            if (map[in] < 0) {
                snprintf(msg, sizeof(msg), "illegal base64 data at input byte %zu", at);
                goto fail;
            }
            dbuf[j] = (unsigned char)map[in];
        }
        unsigned v = 0;
        for (size_t k = 0; k < 4; k++) v = v << 6 | (k < dlen ? dbuf[k] : 0);
        unsigned char o[3] = {(unsigned char)(v >> 16), (unsigned char)(v >> 8),
                              (unsigned char)v};
        pc__sbuf_add(&b, o, dlen - 1);
        /* Go's decoders are not Strict(): leftover bits need not be zero */
        if (dlen < 4) break;
    }
done:
    return pc__sbuf_take(&b, out_len);
fail:
    pc__sbuf_free(&b);
    set_err(err, errlen, msg);
    return NULL;
}

char *pc_plib_base64url_decode_lenient(const char *src, size_t n, size_t *out_len, char *err,
                                       size_t errlen)
{
    if (n > 0 && src[n - 1] == '=')
        return pc_plib_base64_decode(PC_PLIB_B64_URL, src, n, out_len, err, errlen);
    switch (n % 4) {
    case 0:
    case 2:
    case 3: return pc_plib_base64_decode(PC_PLIB_B64_RAW_URL, src, n, out_len, err, errlen);
    default: {
        pc__sbuf_t m = {0};
        pc__sbuf_adds(&m, "illegal base64url string: ");
        pc__sbuf_add(&m, src, n > 200 ? 200 : n);
        set_err(err, errlen, m.data ? m.data : "illegal base64url string");
        pc__sbuf_free(&m);
        return NULL;
    }
    }
}

char *pc_plib_hex_encode(const void *srcv, size_t n, size_t *out_len)
{
    const unsigned char *src = srcv;
    static const char hx[] = "0123456789abcdef";
    pc__sbuf_t b = {0};
    if (!pc__sbuf_reserve(&b, n * 2)) return NULL;
    for (size_t i = 0; i < n; i++) {
        pc__sbuf_addc(&b, hx[src[i] >> 4]);
        pc__sbuf_addc(&b, hx[src[i] & 15]);
    }
    return pc__sbuf_take(&b, out_len);
}

static int hexval(unsigned char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static void hex_invalid(char *err, size_t errlen, const char *s, size_t n)
{
    (void)n;
    /* Go reports the byte as a rune: %#U */
    pc__sbuf_t m = {0};
    char head[64];
    snprintf(head, sizeof(head), "encoding/hex: invalid byte: U+%04X '", (unsigned char)s[0]);
    pc__sbuf_adds(&m, head);
    pc__sbuf_addrune(&m, (unsigned char)s[0]);
    pc__sbuf_addc(&m, '\'');
    set_err(err, errlen, m.data ? m.data : "encoding/hex: invalid byte");
    pc__sbuf_free(&m);
}

char *pc_plib_hex_decode(const char *src, size_t n, size_t *out_len, char *err, size_t errlen)
{
    pc__sbuf_t b = {0};
    if (!pc__sbuf_reserve(&b, n / 2)) return NULL;
    size_t i = 1;
    for (; i < n; i += 2) {
        int hi = hexval((unsigned char)src[i - 1]), lo = hexval((unsigned char)src[i]);
        if (hi < 0) {
            hex_invalid(err, errlen, src + i - 1, n - i + 1);
            goto fail;
        }
        if (lo < 0) {
            hex_invalid(err, errlen, src + i, n - i);
            goto fail;
        }
        pc__sbuf_addc(&b, (char)(hi << 4 | lo));
    }
    if (n % 2 == 1) {
        if (hexval((unsigned char)src[n - 1]) < 0)
            hex_invalid(err, errlen, src + n - 1, 1);
        else
            set_err(err, errlen, "encoding/hex: odd length hex string");
        goto fail;
    }
    return pc__sbuf_take(&b, out_len);
fail:
    pc__sbuf_free(&b);
    return NULL;
}

char *pc_plib_query_escape(const char *src, size_t n, size_t *out_len)
{
    static const char hx[] = "0123456789ABCDEF";
    pc__sbuf_t b = {0};
    if (!pc__sbuf_reserve(&b, n)) return NULL;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)src[i];
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
            c == '-' || c == '_' || c == '.' || c == '~') {
            pc__sbuf_addc(&b, (char)c);
        } else if (c == ' ') {
            pc__sbuf_addc(&b, '+');
        } else {
            char e[3] = {'%', hx[c >> 4], hx[c & 15]};
            pc__sbuf_add(&b, e, 3);
        }
    }
    return pc__sbuf_take(&b, out_len);
}

char *pc_plib_query_unescape(const char *src, size_t n, size_t *out_len, char *err, size_t errlen)
{
    pc__sbuf_t b = {0};
    if (!pc__sbuf_reserve(&b, n)) return NULL;
    for (size_t i = 0; i < n; i++) {
        if (src[i] == '%') {
            if (i + 2 >= n || hexval((unsigned char)src[i + 1]) < 0 ||
                hexval((unsigned char)src[i + 2]) < 0) {
                size_t rest = n - i > 3 ? 3 : n - i;
                pc__sbuf_t m = {0};
                pc__sbuf_adds(&m, "invalid URL escape \"");
                pc__sbuf_add(&m, src + i, rest);
                pc__sbuf_addc(&m, '"');
                set_err(err, errlen, m.data ? m.data : "invalid URL escape");
                pc__sbuf_free(&m);
                pc__sbuf_free(&b);
                return NULL;
            }
            pc__sbuf_addc(&b, (char)(hexval((unsigned char)src[i + 1]) << 4 |
                                     hexval((unsigned char)src[i + 2])));
            i += 2;
        } else if (src[i] == '+') {
            pc__sbuf_addc(&b, ' ');
        } else {
            pc__sbuf_addc(&b, src[i]);
        }
    }
    return pc__sbuf_take(&b, out_len);
}

bool pc_plib_parse_query(const char *src, size_t n, pc_plib_query_cb cb, void *ud, char *err,
                         size_t errlen)
{
    bool ok = true;
    size_t i = 0;
    while (i < n) {
        size_t j = i;
        while (j < n && src[j] != '&') j++;
        const char *part = src + i;
        size_t pn = j - i;
        i = j + 1;
        if (pn == 0) continue;
        if (memchr(part, ';', pn)) {
            if (ok) set_err(err, errlen, "invalid semicolon separator in query");
            ok = false;
            continue;
        }
        const char *eq = memchr(part, '=', pn);
        size_t kn = eq ? (size_t)(eq - part) : pn;
        const char *vp = eq ? eq + 1 : part + pn;
        size_t vn = eq ? pn - kn - 1 : 0;
        char e1[128];
        size_t kl, vl;
        char *k = pc_plib_query_unescape(part, kn, &kl, e1, sizeof(e1));
        if (!k) {
            if (ok) set_err(err, errlen, e1);
            ok = false;
            continue;
        }
        char *v = pc_plib_query_unescape(vp, vn, &vl, e1, sizeof(e1));
        if (!v) {
            if (ok) set_err(err, errlen, e1);
            ok = false;
            free(k);
            continue;
        }
        cb(ud, k, kl, v, vl);
        free(k);
        free(v);
    }
    return ok;
}
