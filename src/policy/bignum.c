/*
 * Exact integer arithmetic beyond int64 for + - * % (OPA uses math/big):
 * decimal digit strings, schoolbook algorithms. Operands are small in
 * practice (policies, not cryptography), so clarity wins over speed.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy/bignum.h"

typedef struct {
    bool neg;
    char *d; /* most significant first, no leading zeros ("0" for zero) */
    size_t n;
} big;

static bool big_from(pc_arena *a, const pc_value *v, big *out)
{
    char buf[32];
    const char *s;
    if (v->kind != PC_NUMBER) return false;
    if (v->num == PC_NUM_INT) {
        snprintf(buf, sizeof(buf), "%lld", (long long)v->u.i);
        s = buf;
    } else {
        s = v->u.f.text;
        if (!s || strpbrk(s, ".eE")) return false;
    }
    out->neg = *s == '-';
    if (*s == '-' || *s == '+') s++;
    while (*s == '0' && s[1]) s++;
    out->n = strlen(s);
    out->d = pc_arena_strndup(a, s, out->n);
    if (!out->d) return false;
    if (out->n == 1 && out->d[0] == '0') out->neg = false;
    return true;
}

static int mag_cmp(const big *x, const big *y)
{
    if (x->n != y->n) return x->n < y->n ? -1 : 1;
    int c = memcmp(x->d, y->d, x->n);
    return c < 0 ? -1 : c > 0;
}

static char *trim(char *p, size_t *n)
{
    while (*n > 1 && *p == '0') {
        p++;
        (*n)--;
    }
    return p;
}

static bool mag_add(pc_arena *a, const big *x, const big *y, big *r)
{
    size_t n = (x->n > y->n ? x->n : y->n) + 1;
    char *p = pc_arena_alloc(a, n + 1);
    if (!p) return false;
    int carry = 0;
    for (size_t i = 0; i < n; i++) {
        int dx = i < x->n ? x->d[x->n - 1 - i] - '0' : 0;
        int dy = i < y->n ? y->d[y->n - 1 - i] - '0' : 0;
        int s = dx + dy + carry;
        p[n - 1 - i] = (char)('0' + s % 10);
        carry = s / 10;
    }
    p[n] = 0;
    r->d = trim(p, &n);
    r->n = n;
    return true;
}

/* |x| >= |y| */
static bool mag_sub(pc_arena *a, const big *x, const big *y, big *r)
{
    size_t n = x->n;
    char *p = pc_arena_alloc(a, n + 1);
    if (!p) return false;
    int borrow = 0;
    for (size_t i = 0; i < n; i++) {
        int dx = x->d[x->n - 1 - i] - '0';
        int dy = i < y->n ? y->d[y->n - 1 - i] - '0' : 0;
        int s = dx - dy - borrow;
        borrow = s < 0;
        if (s < 0) s += 10;
        p[n - 1 - i] = (char)('0' + s);
    }
    p[n] = 0;
    r->d = trim(p, &n);
    r->n = n;
    return true;
}

static bool add_signed(pc_arena *a, const big *x, const big *y, big *r)
{
    if (x->neg == y->neg) {
        r->neg = x->neg;
        return mag_add(a, x, y, r);
    }
    if (mag_cmp(x, y) >= 0) {
        r->neg = x->neg;
        return mag_sub(a, x, y, r);
    }
    r->neg = y->neg;
    return mag_sub(a, y, x, r);
}

static bool mag_mul(pc_arena *a, const big *x, const big *y, big *r)
{
    size_t n = x->n + y->n;
    int *acc = pc_arena_alloc(a, n * sizeof(int));
    char *p = pc_arena_alloc(a, n + 1);
    if (!acc || !p) return false;
    memset(acc, 0, n * sizeof(int));
    for (size_t i = 0; i < x->n; i++)
        for (size_t j = 0; j < y->n; j++) acc[i + j + 1] += (x->d[i] - '0') * (y->d[j] - '0');
    for (size_t k = n; k-- > 1;) {
        acc[k - 1] += acc[k] / 10;
        acc[k] %= 10;
    }
    for (size_t k = 0; k < n; k++) p[k] = (char)('0' + acc[k]);
    p[n] = 0;
    r->d = trim(p, &n);
    r->n = n;
    return true;
}

/* Remainder with the sign of the dividend (Go's big.Int.Rem, as OPA). */
static bool mag_rem(pc_arena *a, const big *x, const big *y, big *r)
{
    char *cur = pc_arena_alloc(a, y->n + 2);
    if (!cur) return false;
    big rem = {false, cur, 1};
    cur[0] = '0';
    cur[1] = 0;
    for (size_t i = 0; i < x->n; i++) {
        /* rem = rem * 10 + digit */
        char *nx = pc_arena_alloc(a, rem.n + 2);
        if (!nx) return false;
        memcpy(nx, rem.d, rem.n);
        nx[rem.n] = x->d[i];
        size_t nn = rem.n + 1;
        nx[nn] = 0;
        rem.d = trim(nx, &nn);
        rem.n = nn;
        while (mag_cmp(&rem, y) >= 0) {
            big t;
            if (!mag_sub(a, &rem, y, &t)) return false;
            rem.d = t.d;
            rem.n = t.n;
        }
    }
    r->d = rem.d;
    r->n = rem.n;
    return true;
}

static const pc_value *to_value(pc_arena *a, const big *r)
{
    size_t n = r->n + (r->neg ? 1 : 0);
    char *s = pc_arena_alloc(a, n + 1);
    if (!s) return NULL;
    size_t o = 0;
    if (r->neg && !(r->n == 1 && r->d[0] == '0')) s[o++] = '-';
    memcpy(s + o, r->d, r->n);
    s[o + r->n] = 0;
    return pc_value_number_text(a, s, o + r->n);
}

bool pc__bignum_op(pc_arena *a, char op, const pc_value *x, const pc_value *y, const pc_value **out)
{
    big bx, by, r = {0};
    if (!big_from(a, x, &bx) || !big_from(a, y, &by)) return false;
    bool ok;
    switch (op) {
    case '+': ok = add_signed(a, &bx, &by, &r); break;
    case '-':
        by.neg = !by.neg && !(by.n == 1 && by.d[0] == '0');
        ok = add_signed(a, &bx, &by, &r);
        break;
    case '*':
        r.neg = bx.neg != by.neg;
        ok = mag_mul(a, &bx, &by, &r);
        break;
    case '%':
        if (by.n == 1 && by.d[0] == '0') return false;
        r.neg = bx.neg;
        ok = mag_rem(a, &bx, &by, &r);
        break;
    default: return false;
    }
    if (!ok) return false;
    *out = to_value(a, &r);
    return *out != NULL;
}

bool pc__bignum_is_big(const pc_value *v)
{
    return v->kind == PC_NUMBER && v->num == PC_NUM_FLOAT && v->u.f.text && !strpbrk(v->u.f.text, ".eE");
}
