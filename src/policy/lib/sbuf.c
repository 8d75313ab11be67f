/* Growable buffer and UTF-8 decoding shared by the policy built-in helpers. */
#include "policy/lib/sbuf.h"

#include <stdlib.h>
#include <string.h>

bool pc__sbuf_reserve(pc__sbuf_t *b, size_t n)
{
    if (b->oom) return false;
    if (n > SIZE_MAX - b->len - 1) goto fail;
    size_t need = b->len + n + 1;
    if (need <= b->cap) return true;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need) cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    char *p;
    if (b->borrowed) {
        p = malloc(cap);
        if (!p) goto fail;
        if (b->len) memcpy(p, b->data, b->len);
        b->borrowed = false;
    } else {
        p = realloc(b->data, cap);
        if (!p) goto fail;
    }
    b->data = p;
    b->cap = cap;
    return true;
fail:
    b->oom = true;
    return false;
}

void pc__sbuf_add(pc__sbuf_t *b, const void *p, size_t n)
{
    if (!pc__sbuf_reserve(b, n)) return;
    if (n) memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
}

void pc__sbuf_addc(pc__sbuf_t *b, char c)
{
    pc__sbuf_add(b, &c, 1);
}

void pc__sbuf_adds(pc__sbuf_t *b, const char *s)
{
    pc__sbuf_add(b, s, strlen(s));
}

void pc__sbuf_addrep(pc__sbuf_t *b, char c, size_t n)
{
    if (!pc__sbuf_reserve(b, n)) return;
    memset(b->data + b->len, c, n);
    b->len += n;
    b->data[b->len] = '\0';
}

void pc__sbuf_addrune(pc__sbuf_t *b, uint32_t r)
{
    unsigned char u[4];
    size_t n;
    if (r > 0x10FFFF || (r >= 0xD800 && r <= 0xDFFF)) r = 0xFFFD;
    if (r < 0x80) {
        u[0] = (unsigned char)r;
        n = 1;
    } else if (r < 0x800) {
        u[0] = (unsigned char)(0xC0 | (r >> 6));
        u[1] = (unsigned char)(0x80 | (r & 0x3F));
        n = 2;
    } else if (r < 0x10000) {
        u[0] = (unsigned char)(0xE0 | (r >> 12));
        u[1] = (unsigned char)(0x80 | ((r >> 6) & 0x3F));
        u[2] = (unsigned char)(0x80 | (r & 0x3F));
        n = 3;
    } else {
        u[0] = (unsigned char)(0xF0 | (r >> 18));
        u[1] = (unsigned char)(0x80 | ((r >> 12) & 0x3F));
        u[2] = (unsigned char)(0x80 | ((r >> 6) & 0x3F));
        u[3] = (unsigned char)(0x80 | (r & 0x3F));
        n = 4;
    }
    pc__sbuf_add(b, u, n);
}

char *pc__sbuf_take(pc__sbuf_t *b, size_t *len)
{
    char *out = NULL;
    if (!b->oom) {
        if (!b->data) pc__sbuf_reserve(b, 0);
        if (!b->oom) {
            b->data[b->len] = '\0';
            out = b->data;
            if (len) *len = b->len;
            b->data = NULL;
            b->borrowed = false;
        }
    }
    pc__sbuf_free(b);
    return out;
}

void pc__sbuf_free(pc__sbuf_t *b)
{
    if (!b) return;
    if (!b->borrowed) free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
    b->oom = false;
}

uint32_t pc__utf8_decode(const char *s, size_t n, size_t *width)
{
    const unsigned char *u = (const unsigned char *)s;
    *width = 1;
    if (n == 0) return 0xFFFD;
    if (u[0] < 0x80) return u[0];
    size_t need;
    uint32_t r, min;
    if (u[0] >= 0xC2 && u[0] <= 0xDF) {
        need = 2;
        r = u[0] & 0x1F;
        min = 0x80;
    } else if (u[0] >= 0xE0 && u[0] <= 0xEF) {
        need = 3;
        r = u[0] & 0x0F;
        min = 0x800;
    } else if (u[0] >= 0xF0 && u[0] <= 0xF4) {
        need = 4;
        r = u[0] & 0x07;
        min = 0x10000;
    } else {
        return 0xFFFD;
    }
    if (n < need) return 0xFFFD;
    for (size_t i = 1; i < need; i++) {
        if ((u[i] & 0xC0) != 0x80) return 0xFFFD;
        r = (r << 6) | (u[i] & 0x3F);
    }
    if (r < min || r > 0x10FFFF || (r >= 0xD800 && r <= 0xDFFF)) return 0xFFFD;
    *width = need;
    return r;
}

void pc__sbuf_json_str(pc__sbuf_t *b, const char *s, size_t n)
{
    static const char hx[] = "0123456789abcdef";
    pc__sbuf_addc(b, '"');
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            pc__sbuf_addc(b, '\\');
            pc__sbuf_addc(b, (char)c);
        } else if (c < 0x20) {
            char e[7] = {'\\', 'u', '0', '0', hx[c >> 4], hx[c & 15], 0};
            pc__sbuf_adds(b, e);
        } else {
            pc__sbuf_addc(b, (char)c);
        }
    }
    pc__sbuf_addc(b, '"');
}

void pc__sbuf_json_key(pc__sbuf_t *b, bool *first, const char *k)
{
    if (!*first) pc__sbuf_addc(b, ',');
    *first = false;
    pc__sbuf_json_str(b, k, strlen(k));
    pc__sbuf_addc(b, ':');
}
