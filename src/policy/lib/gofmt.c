/*
 * A faithful subset of Go's fmt: flags (+ - # space 0), width, precision,
 * '*' arguments and the verbs OPA policies use; integers follow math/big's
 * Int.Format padding rules, which match fmt's own for plain ints.
 */
#include "policy/lib/gofmt.h"

#include "policy/lib/sbuf.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    bool plus, minus, sharp, space, zero;
    bool wid_set, prec_set;
    int wid, prec;
} spec_t;

static size_t rune_count(const char *s, size_t n)
{
    size_t c = 0, w;
    for (size_t i = 0; i < n; i += w) {
        pc__utf8_decode(s + i, n - i, &w);
        c++;
    }
    return c;
}

/* fmt.pad: width counted in runes, zeros only when asked and not left-aligned */
static void pad(pc__sbuf_t *b, const spec_t *sp, const char *s, size_t n)
{
    size_t rc = rune_count(s, n);
    size_t fill = sp->wid_set && (size_t)sp->wid > rc ? (size_t)sp->wid - rc : 0;
    if (!sp->minus) pc__sbuf_addrep(b, sp->zero ? '0' : ' ', fill);
    pc__sbuf_add(b, s, n);
    if (sp->minus) pc__sbuf_addrep(b, ' ', fill);
}

/* ---- big decimal helpers ------------------------------------------------- */

/* digits (no sign) in `base`; returns malloc'd string */
static char *dec_to_base(const char *dig, size_t n, int base, bool upper)
{
    const char *alpha = upper ? "0123456789ABCDEF" : "0123456789abcdef";
    if (base == 10) return strndup(dig, n);
    unsigned char *work = malloc(n ? n : 1);
    /* log2(10) < 3.33 so base-2 output needs at most 4n digits */
    char *out = malloc(4 * n + 2);
    if (!work || !out) {
        free(work);
        free(out);
        return NULL;
    }
    for (size_t i = 0; i < n; i++) work[i] = (unsigned char)(dig[i] - '0');
    size_t start = 0, k = 0;
    while (start < n && work[start] == 0) start++;
    while (start < n) {
        unsigned rem = 0;
        for (size_t i = start; i < n; i++) {
            unsigned cur = rem * 10 + work[i];
            work[i] = (unsigned char)(cur / (unsigned)base);
            rem = cur % (unsigned)base;
        }
        out[k++] = alpha[rem];
        while (start < n && work[start] == 0) start++;
    }
    if (k == 0) out[k++] = '0';
    for (size_t i = 0; i < k / 2; i++) {
        char t = out[i];
        out[i] = out[k - 1 - i];
        out[k - 1 - i] = t;
    }
    out[k] = '\0';
    free(work);
    return out;
}

char *pc_plib_num_trunc(const char *s, size_t n, size_t max_digits)
{
    size_t i = 0;
    bool neg = false;
    if (i < n && (s[i] == '-' || s[i] == '+')) neg = s[i++] == '-';
    const char *ip = s + i;
    size_t il = 0, fl = 0;
    while (i < n && isdigit((unsigned char)s[i])) i++, il++;
    const char *fp = s + i;
    if (i < n && s[i] == '.') {
        i++;
        fp = s + i;
        while (i < n && isdigit((unsigned char)s[i])) i++, fl++;
    }
    if (il + fl == 0) return NULL;
    long e = 0;
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        bool en = false;
        if (i < n && (s[i] == '+' || s[i] == '-')) en = s[i++] == '-';
        size_t st = i;
        while (i < n && isdigit((unsigned char)s[i])) {
            if (e < 1000000000L) e = e * 10 + (s[i] - '0');
            i++;
        }
        if (i == st) return NULL;
        if (en) e = -e;
    }
    if (i != n) return NULL;
    /* all digits: ip[0..il) fp[0..fl), point after il digits, shifted by e */
    long point = (long)il + e;
    size_t total = il + fl;
    size_t fz = 0; /* first non-zero digit */
    while (fz < total && (fz < il ? ip[fz] : fp[fz - il]) == '0') fz++;
    if (fz == total || point <= (long)fz) return strdup("0");
    if ((unsigned long)(point - (long)fz) > max_digits) return NULL;
    pc__sbuf_t b = {0};
    if (neg) pc__sbuf_addc(&b, '-');
    for (long p = (long)fz; p < point; p++) {
        char c = (size_t)p < il ? ip[p] : ((size_t)p < total ? fp[p - (long)il] : '0');
        pc__sbuf_addc(&b, c);
    }
    return pc__sbuf_take(&b, NULL);
}

char *pc_plib_format_int(const char *num, size_t n, int base)
{
    if (base != 2 && base != 8 && base != 10 && base != 16) return NULL;
    char *t = pc_plib_num_trunc(num, n, 4096);
    if (!t) return NULL;
    bool neg = t[0] == '-';
    char *d = dec_to_base(t + neg, strlen(t + neg), base, false);
    free(t);
    if (!d || !neg) return d;
    size_t dl = strlen(d);
    char *out = malloc(dl + 2);
    if (out) {
        out[0] = '-';
        memcpy(out + 1, d, dl + 1);
    }
    free(d);
    return out;
}

/* ---- integers ------------------------------------------------------------ */

/* Print digits with sign/prefix/precision/width like math/big Int.Format. */
static void fmt_integer(pc__sbuf_t *b, const spec_t *sp, char verb, bool neg, const char *dec,
                        size_t decn)
{
    int base = 10;
    switch (verb) {
    case 'b': base = 2; break;
    case 'o':
    case 'O': base = 8; break;
    case 'x':
    case 'X': base = 16; break;
    default: base = 10;
    }
    char *digits = dec_to_base(dec, decn, base, verb == 'X');
    if (!digits) {
        b->oom = true;
        return;
    }
    size_t nd = strlen(digits);
    const char *sign = neg ? "-" : sp->plus ? "+" : sp->space ? " " : "";
    const char *prefix = "";
    if (sp->sharp) {
        switch (verb) {
        case 'b': prefix = "0b"; break;
        case 'o': prefix = "0"; break;
        case 'x': prefix = "0x"; break;
        case 'X': prefix = "0X"; break;
        }
    }
    if (verb == 'O') prefix = "0o";
    size_t left = 0, zeros = 0, right = 0;
    if (sp->prec_set) {
        if (nd < (size_t)sp->prec)
            zeros = (size_t)sp->prec - nd;
        else if (nd == 1 && digits[0] == '0' && sp->prec == 0) {
            free(digits);
            if (sp->wid_set) pc__sbuf_addrep(b, ' ', (size_t)sp->wid);
            return;
        }
    }
    size_t length = strlen(sign) + strlen(prefix) + zeros + nd;
    if (sp->wid_set && length < (size_t)sp->wid) {
        size_t d = (size_t)sp->wid - length;
        if (sp->minus)
            right = d;
        else if (sp->zero && !sp->prec_set)
            zeros = d;
        else
            left = d;
    }
    pc__sbuf_addrep(b, ' ', left);
    pc__sbuf_adds(b, sign);
    pc__sbuf_adds(b, prefix);
    pc__sbuf_addrep(b, '0', zeros);
    pc__sbuf_add(b, digits, nd);
    pc__sbuf_addrep(b, ' ', right);
    free(digits);
}

/* ---- floats -------------------------------------------------------------- */

/* Shortest round-tripping digits: digs (no dot), nd digits, decimal point position dp. */
static void shortest_digits(double v, char *digs, int *nd, int *dp)
{
    char tmp[40];
    for (int p = 1; p <= 17; p++) {
        snprintf(tmp, sizeof(tmp), "%.*e", p - 1, v);
        if (strtod(tmp, NULL) == v || p == 17) break;
    }
    /* tmp = d.ddddde[+-]XX */
    int k = 0;
    const char *q = tmp;
    if (*q == '-') q++;
    for (; *q && *q != 'e'; q++)
        if (isdigit((unsigned char)*q)) digs[k++] = *q;
    int e = atoi(q + 1);
    while (k > 1 && digs[k - 1] == '0') k--;
    digs[k] = '\0';
    *nd = k;
    *dp = e + 1;
    if (k == 1 && digs[0] == '0') *dp = 1;
}

static void fmt_e_digits(pc__sbuf_t *b, const char *digs, int nd, int dp, int prec, char ech)
{
    pc__sbuf_addc(b, digs[0]);
    if (prec > 0) {
        pc__sbuf_addc(b, '.');
        for (int i = 1; i <= prec; i++) pc__sbuf_addc(b, i < nd ? digs[i] : '0');
    }
    int exp = (nd == 1 && digs[0] == '0') ? 0 : dp - 1;
    char eb[16];
    snprintf(eb, sizeof(eb), "%c%c%02d", ech, exp < 0 ? '-' : '+', exp < 0 ? -exp : exp);
    pc__sbuf_adds(b, eb);
}

static void fmt_f_digits(pc__sbuf_t *b, const char *digs, int nd, int dp, int prec)
{
    if (dp > 0) {
        for (int i = 0; i < dp; i++) pc__sbuf_addc(b, i < nd ? digs[i] : '0');
    } else {
        pc__sbuf_addc(b, '0');
    }
    if (prec > 0) {
        pc__sbuf_addc(b, '.');
        for (int i = 0; i < prec; i++) {
            int j = dp + i;
            pc__sbuf_addc(b, (j < 0 || j >= nd) ? '0' : digs[j]);
        }
    }
}

/* C's fixed-precision conversions agree with strconv's for e, f and g */
static int c_float(char *buf, size_t cap, char verb, int prec, double v)
{
    switch (verb) {
    case 'e': return snprintf(buf, cap, "%.*e", prec, v);
    case 'E': return snprintf(buf, cap, "%.*E", prec, v);
    case 'f':
    case 'F': return snprintf(buf, cap, "%.*f", prec, v);
    case 'G': return snprintf(buf, cap, "%.*G", prec, v);
    default: return snprintf(buf, cap, "%.*g", prec, v);
    }
}

/* strconv.AppendFloat(v, verb, prec) without the sign; prec -1 = shortest */
static void strconv_float(pc__sbuf_t *b, double v, char verb, int prec)
{
    char tmp[512];
    if (prec >= 0) {
        if (prec > 300) prec = 300;
        int n = c_float(tmp, sizeof(tmp), verb, prec, v);
        if (n < 0) return;
        if ((size_t)n >= sizeof(tmp)) {
            char *big = malloc((size_t)n + 1);
            if (!big) {
                b->oom = true;
                return;
            }
            c_float(big, (size_t)n + 1, verb, prec, v);
            pc__sbuf_add(b, big, (size_t)n);
            free(big);
            return;
        }
        pc__sbuf_add(b, tmp, (size_t)n);
        return;
    }
    char digs[32];
    int nd, dp;
    shortest_digits(v, digs, &nd, &dp);
    switch (verb) {
    case 'e':
    case 'E': fmt_e_digits(b, digs, nd, dp, nd - 1, verb); return;
    case 'f':
    case 'F': fmt_f_digits(b, digs, nd, dp, nd - dp > 0 ? nd - dp : 0); return;
    default: {
        int exp = dp - 1;
        if (nd == 1 && digs[0] == '0') exp = 0;
        /* shortest %g switches to an exponent at Go's fixed threshold of 6 */
        if (exp < -4 || exp >= 6) {
            fmt_e_digits(b, digs, nd, dp, nd - 1, verb == 'G' ? 'E' : 'e');
            return;
        }
        fmt_f_digits(b, digs, nd, dp, nd - dp > 0 ? nd - dp : 0);
    }
    }
}

size_t pc_plib_fmt_float_shortest(double v, char verb, char *buf, size_t cap)
{
    pc__sbuf_t b = {0};
    if (signbit(v) && !isnan(v)) pc__sbuf_addc(&b, '-');
    strconv_float(&b, fabs(v), verb == 'v' ? 'g' : verb, -1);
    size_t n = 0;
    char *s = pc__sbuf_take(&b, &n);
    if (!s) return 0;
    if (cap) {
        size_t c = n < cap - 1 ? n : cap - 1;
        memcpy(buf, s, c);
        buf[c] = '\0';
    }
    free(s);
    return n;
}

static void fmt_float(pc__sbuf_t *b, const spec_t *sp, char verb, double v)
{
    int prec = -1;
    char cv = verb;
    if (verb == 'v') cv = 'g';
    if (verb == 'e' || verb == 'E' || verb == 'f' || verb == 'F') prec = 6;
    if (sp->prec_set) prec = sp->prec;
    pc__sbuf_t num = {0};
    if (isinf(v) || isnan(v)) {
        const char *t = isnan(v) ? "NaN" : v < 0 ? "-Inf" : sp->plus ? "+Inf" : sp->space ? " Inf" : "Inf";
        if (isnan(v) && (sp->plus || sp->space)) t = sp->plus ? "+NaN" : " NaN";
        spec_t s2 = *sp;
        s2.zero = false;
        pad(b, &s2, t, strlen(t));
        return;
    }
    bool neg = signbit(v);
    strconv_float(&num, fabs(v), cv, prec);
    if (num.oom) {
        b->oom = true;
        pc__sbuf_free(&num);
        return;
    }
    char sign = neg ? '-' : '+';
    if (sp->space && sign == '+' && !sp->plus) sign = ' ';
    const char *digits = num.data ? num.data : "";
    if (sp->plus || sign != '+') {
        size_t full = num.len + 1;
        if (sp->zero && !sp->minus && sp->wid_set && (size_t)sp->wid > full) {
            pc__sbuf_addc(b, sign);
            pc__sbuf_addrep(b, '0', (size_t)sp->wid - full);
            pc__sbuf_add(b, digits, num.len);
        } else {
            pc__sbuf_t t = {0};
            pc__sbuf_addc(&t, sign);
            pc__sbuf_add(&t, digits, num.len);
            pad(b, sp, t.data ? t.data : "", t.len);
            pc__sbuf_free(&t);
        }
    } else {
        pad(b, sp, digits, num.len);
    }
    pc__sbuf_free(&num);
}

/* ---- strings ------------------------------------------------------------- */

/* strconv.Quote: Go escapes, keeping printable UTF-8 as is */
static void go_quote(pc__sbuf_t *b, const char *s, size_t n, char q)
{
    pc__sbuf_addc(b, q);
    size_t w;
    for (size_t i = 0; i < n; i += w) {
        uint32_t r = pc__utf8_decode(s + i, n - i, &w);
        if (r == 0xFFFD && w == 1 && !(n - i >= 3 && memcmp(s + i, "\xEF\xBF\xBD", 3) == 0)) {
            char e[8];
            snprintf(e, sizeof(e), "\\x%02x", (unsigned char)s[i]);
            pc__sbuf_adds(b, e);
            continue;
        }
        if (r == (uint32_t)q || r == '\\') {
            pc__sbuf_addc(b, '\\');
            pc__sbuf_addc(b, (char)r);
            continue;
        }
        if (r >= 0x20 && r != 0x7F && !(r >= 0x80 && r < 0xA0)) {
            pc__sbuf_add(b, s + i, w);
            continue;
        }
        char e[16];
        switch (r) {
        case '\a': pc__sbuf_adds(b, "\\a"); break;
        case '\b': pc__sbuf_adds(b, "\\b"); break;
        case '\f': pc__sbuf_adds(b, "\\f"); break;
        case '\n': pc__sbuf_adds(b, "\\n"); break;
        case '\r': pc__sbuf_adds(b, "\\r"); break;
        case '\t': pc__sbuf_adds(b, "\\t"); break;
        case '\v': pc__sbuf_adds(b, "\\v"); break;
        default:
            if (r < 0x80)
                snprintf(e, sizeof(e), "\\x%02x", r);
            else
                snprintf(e, sizeof(e), "\\u%04x", r);
            pc__sbuf_adds(b, e);
        }
    }
    pc__sbuf_addc(b, q);
}

static void fmt_string(pc__sbuf_t *b, const spec_t *sp, char verb, const char *s, size_t n)
{
    pc__sbuf_t t = {0};
    switch (verb) {
    case 'v':
    case 's': {
        size_t use = n;
        if (sp->prec_set) {
            size_t w, i = 0;
            int r = 0;
            while (i < n && r < sp->prec) {
                pc__utf8_decode(s + i, n - i, &w);
                i += w;
                r++;
            }
            use = i;
        }
        pad(b, sp, s, use);
        return;
    }
    case 'q':
        go_quote(&t, s, n, '"');
        break;
    case 'x':
    case 'X': {
        const char *hx = verb == 'x' ? "0123456789abcdef" : "0123456789ABCDEF";
        size_t lim = n;
        if (sp->prec_set && (size_t)sp->prec < lim) lim = (size_t)sp->prec;
        for (size_t i = 0; i < lim; i++) {
            if (sp->space && i > 0) pc__sbuf_addc(&t, ' ');
            if (sp->sharp && (sp->space || i == 0)) pc__sbuf_adds(&t, verb == 'x' ? "0x" : "0X");
            pc__sbuf_addc(&t, hx[(unsigned char)s[i] >> 4]);
            pc__sbuf_addc(&t, hx[(unsigned char)s[i] & 15]);
        }
        break;
    }
    }
    pad(b, sp, t.data ? t.data : "", t.len);
    pc__sbuf_free(&t);
}

/* ---- dispatch ------------------------------------------------------------ */

static const char *type_name(const pc_plib_fmt_arg_t *a)
{
    switch (a->kind) {
    case PC_PLIB_FMT_STR: return "string";
    case PC_PLIB_FMT_INT: return "int";
    case PC_PLIB_FMT_BIGINT: return "*big.Int";
    case PC_PLIB_FMT_FLOAT: return "float64";
    }
    return "?";
}

static void print_arg(pc__sbuf_t *b, const spec_t *sp, char verb, const pc_plib_fmt_arg_t *a);

static void bad_verb(pc__sbuf_t *b, char verb, const pc_plib_fmt_arg_t *a)
{
    spec_t plain = {0};
    pc__sbuf_adds(b, "%!");
    pc__sbuf_addc(b, verb);
    pc__sbuf_addc(b, '(');
    if (a) {
        if (a->kind == PC_PLIB_FMT_BIGINT) {
            /* big.Int prints its own complaint */
            pc__sbuf_adds(b, "big.Int=");
        } else {
            pc__sbuf_adds(b, type_name(a));
            pc__sbuf_addc(b, '=');
        }
        print_arg(b, &plain, 'v', a);
    } else {
        pc__sbuf_adds(b, "<nil>");
    }
    pc__sbuf_addc(b, ')');
}

static void print_arg(pc__sbuf_t *b, const spec_t *sp, char verb, const pc_plib_fmt_arg_t *a)
{
    if (verb == 'T') {
        pad(b, sp, type_name(a), strlen(type_name(a)));
        return;
    }
    switch (a->kind) {
    case PC_PLIB_FMT_STR:
        if (verb == 'v' || verb == 's' || verb == 'q' || verb == 'x' || verb == 'X')
            fmt_string(b, sp, verb, a->s, a->len);
        else
            bad_verb(b, verb, a);
        return;
    case PC_PLIB_FMT_FLOAT:
        if (strchr("vgGeEfF", verb))
            fmt_float(b, sp, verb, a->f);
        else
            bad_verb(b, verb, a);
        return;
    case PC_PLIB_FMT_BIGINT: {
        if (!strchr("bdosvxXO", verb)) {
            bad_verb(b, verb, a);
            return;
        }
        bool neg = a->len && a->s[0] == '-';
        fmt_integer(b, sp, verb, neg, a->s + neg, a->len - neg);
        return;
    }
    case PC_PLIB_FMT_INT: {
        char dec[32];
        uint64_t u = a->i < 0 ? (uint64_t)0 - (uint64_t)a->i : (uint64_t)a->i;
        int n = snprintf(dec, sizeof(dec), "%llu", (unsigned long long)u);
        switch (verb) {
        case 'v':
        case 'd':
        case 'b':
        case 'o':
        case 'O':
        case 'x':
        case 'X': fmt_integer(b, sp, verb, a->i < 0, dec, (size_t)n); return;
        case 'c': {
            pc__sbuf_t t = {0};
            pc__sbuf_addrune(&t, (a->i < 0 || a->i > 0x10FFFF) ? 0xFFFD : (uint32_t)a->i);
            pad(b, sp, t.data ? t.data : "", t.len);
            pc__sbuf_free(&t);
            return;
        }
        case 'q': {
            pc__sbuf_t t = {0}, r = {0};
            pc__sbuf_addrune(&r, (a->i < 0 || a->i > 0x10FFFF) ? 0xFFFD : (uint32_t)a->i);
            go_quote(&t, r.data ? r.data : "", r.len, '\'');
            pad(b, sp, t.data ? t.data : "", t.len);
            pc__sbuf_free(&t);
            pc__sbuf_free(&r);
            return;
        }
        case 'U': {
            char u8[32];
            int k = snprintf(u8, sizeof(u8), "U+%04llX", (unsigned long long)u);
            pad(b, sp, u8, (size_t)k);
            return;
        }
        default: bad_verb(b, verb, a); return;
        }
    }
    }
}

static char *sprintf_into(pc__sbuf_t b, const char *fmt, size_t n, const pc_plib_fmt_arg_t *args,
                          size_t nargs, size_t *out_len);

char *pc_plib_sprintf(const char *fmt, size_t n, const pc_plib_fmt_arg_t *args, size_t nargs,
                      size_t *out_len)
{
    return sprintf_into((pc__sbuf_t){0}, fmt, n, args, nargs, out_len);
}

char *pc_plib_sprintf_buf(char *buf, size_t cap, const char *fmt, size_t n,
                          const pc_plib_fmt_arg_t *args, size_t nargs, size_t *out_len)
{
    return sprintf_into(PC__SBUF_ON(buf, cap), fmt, n, args, nargs, out_len);
}

static char *sprintf_into(pc__sbuf_t b, const char *fmt, size_t n, const pc_plib_fmt_arg_t *args,
                          size_t nargs, size_t *out_len)
{
    size_t argi = 0;
    bool reordered = false;
    pc__sbuf_reserve(&b, n);
    for (size_t i = 0; i < n;) {
        size_t j = i;
        while (j < n && fmt[j] != '%') j++;
        pc__sbuf_add(&b, fmt + i, j - i);
        if (j >= n) break;
        i = j + 1;
        spec_t sp = {0};
        for (; i < n; i++) {
            char c = fmt[i];
            if (c == '#')
                sp.sharp = true;
            else if (c == '0')
                sp.zero = !sp.minus;
            else if (c == '+')
                sp.plus = true;
            else if (c == '-') {
                sp.minus = true;
                sp.zero = false;
            } else if (c == ' ')
                sp.space = true;
            else
                break;
        }
        /* explicit argument index [n] */
        if (i < n && fmt[i] == '[') {
            size_t k = i + 1;
            size_t idx = 0;
            while (k < n && isdigit((unsigned char)fmt[k]) && idx < 100000)
                idx = idx * 10 + (size_t)(fmt[k++] - '0');
            if (k < n && fmt[k] == ']' && idx >= 1) {
                argi = idx - 1;
                reordered = true;
                i = k + 1;
            }
        }
        /* width */
        if (i < n && fmt[i] == '*') {
            i++;
            if (argi < nargs && args[argi].kind == PC_PLIB_FMT_INT && args[argi].i > -1000000 &&
                args[argi].i < 1000000) {
                long w = (long)args[argi].i;
                sp.wid_set = true;
                if (w < 0) {
                    sp.minus = true;
                    sp.zero = false;
                    w = -w;
                }
                sp.wid = (int)w;
            } else {
                pc__sbuf_adds(&b, "%!(BADWIDTH)");
            }
            argi++;
        } else {
            while (i < n && isdigit((unsigned char)fmt[i])) {
                if (sp.wid < 1000000) sp.wid = sp.wid * 10 + (fmt[i] - '0');
                sp.wid_set = true;
                i++;
            }
        }
        /* precision */
        if (i < n && fmt[i] == '.') {
            i++;
            sp.prec_set = true;
            if (i < n && fmt[i] == '*') {
                i++;
                if (argi < nargs && args[argi].kind == PC_PLIB_FMT_INT && args[argi].i >= 0 &&
                    args[argi].i < 1000000) {
                    sp.prec = (int)args[argi].i;
                } else {
                    sp.prec_set = false;
                    pc__sbuf_adds(&b, "%!(BADPREC)");
                }
                argi++;
            } else {
                while (i < n && isdigit((unsigned char)fmt[i])) {
                    if (sp.prec < 1000000) sp.prec = sp.prec * 10 + (fmt[i] - '0');
                    i++;
                }
            }
        }
        if (i >= n) {
            pc__sbuf_adds(&b, "%!(NOVERB)");
            break;
        }
        size_t vw;
        uint32_t verb = pc__utf8_decode(fmt + i, n - i, &vw);
        i += vw;
        if (verb == '%') {
            pc__sbuf_addc(&b, '%');
            continue;
        }
        if (argi >= nargs) {
            pc__sbuf_adds(&b, "%!");
            pc__sbuf_addrune(&b, verb);
            pc__sbuf_adds(&b, "(MISSING)");
            continue;
        }
        if (verb > 0x7F) {
            pc__sbuf_adds(&b, "%!");
            pc__sbuf_addrune(&b, verb);
            pc__sbuf_addc(&b, '(');
            spec_t plain = {0};
            pc__sbuf_adds(&b, type_name(&args[argi]));
            pc__sbuf_addc(&b, '=');
            print_arg(&b, &plain, 'v', &args[argi]);
            pc__sbuf_addc(&b, ')');
            argi++;
            continue;
        }
        /* %#v of a string prints it Go-quoted */
        if (verb == 'v' && sp.sharp && args[argi].kind == PC_PLIB_FMT_STR) {
            sp.sharp = false;
            print_arg(&b, &sp, 'q', &args[argi++]);
            continue;
        }
        print_arg(&b, &sp, (char)verb, &args[argi++]);
    }
    if (!reordered && argi < nargs) {
        spec_t plain = {0};
        pc__sbuf_adds(&b, "%!(EXTRA ");
        for (size_t k = argi; k < nargs; k++) {
            if (k > argi) pc__sbuf_adds(&b, ", ");
            pc__sbuf_adds(&b, type_name(&args[k]));
            pc__sbuf_addc(&b, '=');
            print_arg(&b, &plain, 'v', &args[k]);
        }
        pc__sbuf_addc(&b, ')');
    }
    return pc__sbuf_take(&b, out_len);
}
