/*
 * units.parse / units.parse_bytes. OPA splits the text into a number and a
 * unit, maps the unit to a multiplier and multiplies with arbitrary
 * precision; we do the same on a decimal digit string (value = digits x
 * 10^exp), which is exact for every multiplier involved.
 */
#include "policy/lib/units.h"

#include "policy/lib/sbuf.h"

#include <ctype.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_EXPONENT_DIGITS 6
/* A result past this many digits is refused instead of allocated. */
#define MAX_RESULT_DIGITS 100000

enum { SPLIT_OK, SPLIT_EXPONENT };

typedef struct {
    bool neg;
    char *digits; /* most significant first, ASCII '0'..'9' */
    size_t nd;
    long exp; /* value = digits * 10^exp */
} decimal_t;

static void set_err(char *err, size_t errlen, const char *fn, const char *msg)
{
    if (err && errlen) snprintf(err, errlen, "%s: %s", fn, msg);
}

/* OPA's extractNumAndUnit: the number runs over digits, '.', '+', '-' and an
 * 'e'/'E' followed by a digit or a sign. */
static int split_num_unit(const char *s, size_t n, size_t *num_len)
{
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        bool numeric = isdigit((unsigned char)c) || c == '.';
        if (!numeric && c != 'e' && c != 'E' && c != '+' && c != '-') {
            *num_len = i;
            return SPLIT_OK;
        }
        if (c == 'e' || c == 'E') {
            if (i == n - 1 ||
                (!isdigit((unsigned char)s[i + 1]) && s[i + 1] != '+' && s[i + 1] != '-')) {
                *num_len = i;
                return SPLIT_OK;
            }
            if (s[i + 1] == '+' || s[i + 1] == '-') i++;
            size_t e = i + 1;
            while (e < n && isdigit((unsigned char)s[e])) e++;
            if (e - (i + 1) > MAX_EXPONENT_DIGITS) return SPLIT_EXPONENT;
        }
    }
    *num_len = n;
    return SPLIT_OK;
}

/* Go's big.Rat/big.Float SetString for [+-]digits[.digits][(e|E)[+-]digits]. */
static bool parse_decimal(const char *s, size_t n, decimal_t *d)
{
    size_t i = 0;
    memset(d, 0, sizeof(*d));
    if (i < n && (s[i] == '+' || s[i] == '-')) d->neg = s[i++] == '-';
    d->digits = malloc(n + 1);
    if (!d->digits) return false;
    size_t mant = 0;
    bool dot = false;
    long frac = 0;
    for (; i < n; i++) {
        if (isdigit((unsigned char)s[i])) {
            d->digits[d->nd++] = s[i];
            mant++;
            if (dot) frac++;
        } else if (s[i] == '.' && !dot) {
            dot = true;
        } else {
            break;
        }
    }
    if (mant == 0) return false;
    long e = 0;
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        bool eneg = false;
        if (i < n && (s[i] == '+' || s[i] == '-')) eneg = s[i++] == '-';
        size_t start = i;
        while (i < n && isdigit((unsigned char)s[i])) {
            if (e < 100000000) e = e * 10 + (s[i] - '0');
            i++;
        }
        if (i == start) return false;
        if (eneg) e = -e;
    }
    if (i != n) return false;
    d->exp = e - frac;
    return true;
}

static bool mul_u64(decimal_t *d, uint64_t m)
{
    /* at most 20 more digits */
    char *out = malloc(d->nd + 21);
    if (!out) return false;
    size_t k = d->nd + 21;
    unsigned __int128 carry = 0;
    for (size_t i = d->nd; i-- > 0;) {
        carry += (unsigned __int128)(d->digits[i] - '0') * m;
        out[--k] = (char)('0' + (int)(carry % 10));
        carry /= 10;
    }
    while (carry) {
        out[--k] = (char)('0' + (int)(carry % 10));
        carry /= 10;
    }
    size_t len = d->nd + 21 - k;
    memmove(out, out + k, len);
    free(d->digits);
    d->digits = out;
    d->nd = len;
    return true;
}

/* Render the value: as an integer when whole (or when truncate is set),
 * otherwise with exactly ten decimals, halves rounded away from zero. */
static char *render(decimal_t *d, bool truncate, char *err, size_t errlen, const char *fn)
{
    /* strip leading zeros */
    size_t lead = 0;
    while (lead < d->nd && d->digits[lead] == '0') lead++;
    const char *dg = d->digits + lead;
    size_t nd = d->nd - lead;
    if (nd == 0) return strdup("0");
    if (d->exp > 0 && (size_t)d->exp > MAX_RESULT_DIGITS) {
        set_err(err, errlen, fn, "exponent too large");
        return NULL;
    }
    pc__sbuf_t b = {0};
    if (d->exp >= 0) {
        if (d->neg) pc__sbuf_addc(&b, '-');
        pc__sbuf_add(&b, dg, nd);
        pc__sbuf_addrep(&b, '0', (size_t)d->exp);
        return pc__sbuf_take(&b, NULL);
    }
    size_t scale = (size_t)(-d->exp);
    /* integer part = dg[0 .. nd-scale), fraction = the rest, left-padded */
    size_t int_len = nd > scale ? nd - scale : 0;
    const char *frac = dg + int_len;
    size_t frac_len = nd - int_len; /* digits present; scale - frac_len leading zeros */
    size_t frac_zeros = scale - frac_len;
    bool frac_nonzero = false;
    for (size_t i = 0; i < frac_len; i++) frac_nonzero |= frac[i] != '0';
    if (truncate || !frac_nonzero) {
        if (int_len == 0) {
            pc__sbuf_free(&b);
            return strdup("0");
        }
        if (d->neg) pc__sbuf_addc(&b, '-');
        pc__sbuf_add(&b, dg, int_len);
        return pc__sbuf_take(&b, NULL);
    }
    /* ten decimals: digit at position p (0-based after the point) */
    char ten[11];
    for (size_t p = 0; p < 11; p++) {
        if (p < frac_zeros)
            ten[p] = '0';
        else if (p - frac_zeros < frac_len)
            ten[p] = frac[p - frac_zeros];
        else
            ten[p] = '0';
    }
    /* integer digits with room for a carry */
    char *ip = malloc(int_len + 2);
    if (!ip) return NULL;
    ip[0] = '0';
    memcpy(ip + 1, dg, int_len);
    size_t il = int_len + 1;
    if (ten[10] >= '5') {
        int p = 9;
        while (p >= 0 && ten[p] == '9') ten[p--] = '0';
        if (p >= 0) {
            ten[p]++;
        } else {
            size_t q = il; /* ip[0] is '0', so the carry always stops in range */
            while (q > 0 && ip[q - 1] == '9') ip[--q] = '0';
            if (q > 0) ip[q - 1]++;
        }
    }
    size_t skip = 0;
    while (skip + 1 < il && ip[skip] == '0') skip++;
    if (d->neg) pc__sbuf_addc(&b, '-');
    pc__sbuf_add(&b, ip + skip, il - skip);
    pc__sbuf_addc(&b, '.');
    pc__sbuf_add(&b, ten, 10);
    free(ip);
    return pc__sbuf_take(&b, NULL);
}

typedef struct {
    const char *name;
    uint64_t mult;
} unit_t;

static char *parse_common(const char *s, size_t n, bool bytes, char *err, size_t errlen)
{
    const char *fn = bytes ? "units.parse_bytes" : "units.parse";
    char *str = malloc(n + 1);
    char *out = NULL;
    decimal_t d = {0};
    if (!str) return NULL;
    /* drop quotes; parse_bytes also lower-cases everything */
    size_t len = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '"') continue;
        str[len++] = bytes ? (char)tolower((unsigned char)s[i]) : s[i];
    }
    str[len] = '\0';
    if (memchr(str, ' ', len)) {
        set_err(err, errlen, fn, "spaces not allowed in resource strings");
        goto out;
    }
    size_t num_len;
    if (split_num_unit(str, len, &num_len) != SPLIT_OK) {
        set_err(err, errlen, fn, "exponent too large");
        goto out;
    }
    if (num_len == 0) {
        set_err(err, errlen, fn, bytes ? "no byte amount provided" : "no amount provided");
        goto out;
    }
    char *unit = str + num_len;
    size_t ulen = len - num_len;
    uint64_t mult = 1;
    bool milli = false;
    static const unit_t byte_units[] = {
        {"", 1},
        {"kb", 1000ULL},
        {"k", 1000ULL},
        {"kib", 1ULL << 10},
        {"ki", 1ULL << 10},
        {"mb", 1000000ULL},
        {"m", 1000000ULL},
        {"mib", 1ULL << 20},
        {"mi", 1ULL << 20},
        {"gb", 1000000000ULL},
        {"g", 1000000000ULL},
        {"gib", 1ULL << 30},
        {"gi", 1ULL << 30},
        {"tb", 1000000000000ULL},
        {"t", 1000000000000ULL},
        {"tib", 1ULL << 40},
        {"ti", 1ULL << 40},
        {"pb", 1000000000000000ULL},
        {"p", 1000000000000000ULL},
        {"pib", 1ULL << 50},
        {"pi", 1ULL << 50},
        {"eb", 1000000000000000000ULL},
        {"e", 1000000000000000000ULL},
        {"eib", 1ULL << 60},
        {"ei", 1ULL << 60},
    };
    static const unit_t si_units[] = {
        {"", 1},
        {"k", 1000ULL},
        {"K", 1000ULL},
        {"ki", 1ULL << 10},
        {"Ki", 1ULL << 10},
        {"M", 1000000ULL},
        {"mi", 1ULL << 20},
        {"Mi", 1ULL << 20},
        {"g", 1000000000ULL},
        {"G", 1000000000ULL},
        {"gi", 1ULL << 30},
        {"Gi", 1ULL << 30},
        {"t", 1000000000000ULL},
        {"T", 1000000000000ULL},
        {"ti", 1ULL << 40},
        {"Ti", 1ULL << 40},
        {"p", 1000000000000000ULL},
        {"P", 1000000000000000ULL},
        {"pi", 1ULL << 50},
        {"Pi", 1ULL << 50},
        {"e", 1000000000000000000ULL},
        {"E", 1000000000000000000ULL},
        {"ei", 1ULL << 60},
        {"Ei", 1ULL << 60},
    };
    bool found = false;
    if (bytes) {
        for (size_t i = 0; i < sizeof(byte_units) / sizeof(byte_units[0]); i++) {
            if (strcmp(unit, byte_units[i].name) == 0) {
                mult = byte_units[i].mult;
                found = true;
                break;
            }
        }
    } else {
        /* only the letters after the first are lower-cased: 'm' vs 'M' */
        for (size_t i = 1; i < ulen; i++) unit[i] = (char)tolower((unsigned char)unit[i]);
        if (strcmp(unit, "m") == 0) {
            milli = found = true;
        } else {
            for (size_t i = 0; i < sizeof(si_units) / sizeof(si_units[0]); i++) {
                if (strcmp(unit, si_units[i].name) == 0) {
                    mult = si_units[i].mult;
                    found = true;
                    break;
                }
            }
        }
    }
    if (!found) {
        char msg[128];
        snprintf(msg, sizeof(msg), "%sunit %.*s not recognized", bytes ? "byte " : "",
                 (int)(ulen > 64 ? 64 : ulen), unit);
        set_err(err, errlen, fn, msg);
        goto out;
    }
    if (!parse_decimal(str, num_len, &d)) {
        set_err(err, errlen, fn,
                bytes ? "could not parse byte amount to a number"
                      : "could not parse amount to a number");
        goto out;
    }
    if (milli)
        d.exp -= 3;
    else if (!mul_u64(&d, mult))
        goto out;
    out = render(&d, bytes, err, errlen, fn);
out:
    free(d.digits);
    free(str);
    return out;
}

char *pc_plib_units_parse(const char *s, size_t n, char *err, size_t errlen)
{
    return parse_common(s, n, false, err, errlen);
}

char *pc_plib_units_parse_bytes(const char *s, size_t n, char *err, size_t errlen)
{
    return parse_common(s, n, true, err, errlen);
}
