/* SigV4: credentials parsing, canonical requests, verification and signing. */

/*
 * The hashing below uses OpenSSL's low-level SHA-256 (deprecated in 3.0, still
 * shipped, and the very code the EVP layer ends up in): its context is a plain
 * struct, so an HMAC key's two padded blocks are hashed once per cached
 * signing key and the state copied per use, with no allocation, provider
 * dispatch or key schedule per request.
 */
#define OPENSSL_SUPPRESS_DEPRECATED
#include "s3/sigv4.h"

#include "core/crypto.h"
#include "s3/sigv4_int.h"

#include <openssl/evp.h>
#include <openssl/crypto.h>
#include <openssl/sha.h>

#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_QUERY_PARAMS 256

/* ---------- small helpers ---------- */

void pc__sigv4_hex(const uint8_t *in, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 15];
    }
    out[2 * n] = '\0';
}

static int hexval(unsigned char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

bool pc__sigv4_unhex(const char *in, size_t hex_len, uint8_t *out, size_t n)
{
    if (hex_len != 2 * n) return false;
    for (size_t i = 0; i < n; i++) {
        int h = hexval((unsigned char)in[2 * i]), l = hexval((unsigned char)in[2 * i + 1]);
        if (h < 0 || l < 0) return false;
        out[i] = (uint8_t)(h << 4 | l);
    }
    return true;
}

void pc_sigv4_sha256_hex(const void *data, size_t len, char out[65])
{
    uint8_t md[32];
    pc_sha256(data, len, md);
    pc__sigv4_hex(md, 32, out);
}

static bool span_eq(const char *p, size_t n, const char *lit)
{
    return strlen(lit) == n && memcmp(p, lit, n) == 0;
}

static char lower(char c)
{
    return c >= 'A' && c <= 'Z' ? (char)(c + 32) : c;
}

/* Copy p[0..n) into a NUL-terminated fixed buffer; false if it does not fit. */
static bool copy_field(char *dst, size_t cap, const char *p, size_t n)
{
    if (n >= cap) return false;
    memcpy(dst, p, n);
    dst[n] = '\0';
    return true;
}

/* ---------- time ---------- */

static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    const int64_t era = (y >= 0 ? y : y - 399) / 400;
    const unsigned yoe = (unsigned)(y - era * 400);
    const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static bool digits(const char *s, size_t n, unsigned *out)
{
    unsigned v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return false;
        v = v * 10 + (unsigned)(s[i] - '0');
    }
    *out = v;
    return true;
}

static bool valid_civil(unsigned y, unsigned mo, unsigned d, unsigned h, unsigned mi, unsigned s)
{
    static const unsigned mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (y < 1970 || mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] || h > 23 || mi > 59 || s > 60)
        return false;
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return !(mo == 2 && d == 29 && !leap);
}

/* YYYYMMDDTHHMMSSZ → Unix seconds */
static bool parse_amz_date(const char *s, size_t n, int64_t *out)
{
    unsigned y, mo, d, h, mi, sec;
    if (n != PC_SIGV4_AMZ_DATE_LEN || s[8] != 'T' || s[15] != 'Z') return false;
    if (!digits(s, 4, &y) || !digits(s + 4, 2, &mo) || !digits(s + 6, 2, &d) ||
        !digits(s + 9, 2, &h) || !digits(s + 11, 2, &mi) || !digits(s + 13, 2, &sec))
        return false;
    if (!valid_civil(y, mo, d, h, mi, sec)) return false;
    *out = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec;
    return true;
}

/* IMF-fixdate "Sun, 06 Nov 1994 08:49:37 GMT" → Unix seconds */
static bool parse_http_date(const char *s, size_t n, int64_t *out)
{
    static const char months[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
    unsigned y, mo = 0, d, h, mi, sec;
    if (n != 29 || s[3] != ',' || s[4] != ' ' || s[7] != ' ' || s[11] != ' ' || s[16] != ' ' ||
        s[19] != ':' || s[22] != ':' || s[25] != ' ' || memcmp(s + 26, "GMT", 3) != 0)
        return false;
    for (unsigned i = 0; i < 12; i++)
        if (memcmp(s + 8, months + 3 * i, 3) == 0) mo = i + 1;
    if (!mo || !digits(s + 5, 2, &d) || !digits(s + 12, 4, &y) || !digits(s + 17, 2, &h) ||
        !digits(s + 20, 2, &mi) || !digits(s + 23, 2, &sec))
        return false;
    if (!valid_civil(y, mo, d, h, mi, sec)) return false;
    *out = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec;
    return true;
}

void pc_sigv4_amz_date(int64_t unix_s, char out[PC_SIGV4_AMZ_DATE_LEN + 1])
{
    time_t t = (time_t)unix_s;
    struct tm tm;
    if (!gmtime_r(&t, &tm)) memset(&tm, 0, sizeof(tm));
    int year = tm.tm_year + 1900;
    if (year < 0 || year > 9999) {
        strftime(out, PC_SIGV4_AMZ_DATE_LEN + 1, "%Y%m%dT%H%M%SZ", &tm);
        return;
    }
    /* By hand: strftime's locale machinery is a few hundred instructions per request. */
    const int f[] = {year / 100, year % 100, tm.tm_mon + 1, tm.tm_mday,
                     -1,         tm.tm_hour, tm.tm_min,     tm.tm_sec};
    size_t o = 0;
    for (size_t i = 0; i < PC_ARRAY_LEN(f); i++) {
        if (f[i] < 0) {
            out[o++] = 'T';
            continue;
        }
        out[o++] = (char)('0' + f[i] / 10);
        out[o++] = (char)('0' + f[i] % 10);
    }
    out[o++] = 'Z';
    out[o] = '\0';
}

/* ---------- percent-encoding (SigV4's UriEncode) ---------- */

/* A table: every byte of every path and query goes through here twice per request. */
/* clang-format off */
static const uint8_t unreserved_tab[256] = {
    ['-'] = 1, ['.'] = 1, ['_'] = 1, ['~'] = 1,
    ['0'] = 1, ['1'] = 1, ['2'] = 1, ['3'] = 1, ['4'] = 1, ['5'] = 1, ['6'] = 1, ['7'] = 1,
    ['8'] = 1, ['9'] = 1,
    ['A'] = 1, ['B'] = 1, ['C'] = 1, ['D'] = 1, ['E'] = 1, ['F'] = 1, ['G'] = 1, ['H'] = 1,
    ['I'] = 1, ['J'] = 1, ['K'] = 1, ['L'] = 1, ['M'] = 1, ['N'] = 1, ['O'] = 1, ['P'] = 1,
    ['Q'] = 1, ['R'] = 1, ['S'] = 1, ['T'] = 1, ['U'] = 1, ['V'] = 1, ['W'] = 1, ['X'] = 1,
    ['Y'] = 1, ['Z'] = 1,
    ['a'] = 1, ['b'] = 1, ['c'] = 1, ['d'] = 1, ['e'] = 1, ['f'] = 1, ['g'] = 1, ['h'] = 1,
    ['i'] = 1, ['j'] = 1, ['k'] = 1, ['l'] = 1, ['m'] = 1, ['n'] = 1, ['o'] = 1, ['p'] = 1,
    ['q'] = 1, ['r'] = 1, ['s'] = 1, ['t'] = 1, ['u'] = 1, ['v'] = 1, ['w'] = 1, ['x'] = 1,
    ['y'] = 1, ['z'] = 1,
};
/* clang-format on */

static inline bool unreserved(unsigned char c)
{
    return unreserved_tab[c] != 0;
}

/*
 * Decode s[0..n) once ('+' → ' ' when plus_is_space) and re-encode it into
 * out (capacity 3n is always enough), keeping '/' when keep_slash. Returns the
 * length, or (size_t)-1 on a malformed %-escape.
 */
static size_t reencode(const char *s, size_t n, bool plus_is_space, bool keep_slash, char *out)
{
    static const char hx[] = "0123456789ABCDEF";
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '%') {
            if (i + 2 >= n) return (size_t)-1;
            int a = hexval((unsigned char)s[i + 1]), b = hexval((unsigned char)s[i + 2]);
            if (a < 0 || b < 0) return (size_t)-1;
            c = (unsigned char)(a << 4 | b);
            i += 2;
        } else if (c == '+' && plus_is_space) {
            c = ' ';
        }
        if (unreserved(c) || (c == '/' && keep_slash)) {
            out[o++] = (char)c;
        } else {
            out[o++] = '%';
            out[o++] = hx[c >> 4];
            out[o++] = hx[c & 15];
        }
    }
    return o;
}

/* ---------- hashing ---------- */

static void sha256_2(const void *a, size_t an, const void *b, size_t bn, uint8_t out[32])
{
    SHA256_CTX c;
    SHA256_Init(&c);
    SHA256_Update(&c, a, an);
    if (bn) SHA256_Update(&c, b, bn);
    SHA256_Final(out, &c);
}

/* An HMAC-SHA256 key (32 bytes) as the states after its inner and outer pad blocks. */
typedef struct {
    SHA256_CTX ipad, opad;
} hmac_key_t;

static void hmac_key_init(hmac_key_t *k, const uint8_t key[32])
{
    uint8_t pad[64];
    for (int i = 0; i < 64; i++)
        pad[i] = (uint8_t)((i < 32 ? key[i] : 0) ^ 0x36);
    SHA256_Init(&k->ipad);
    SHA256_Update(&k->ipad, pad, 64);
    for (int i = 0; i < 64; i++)
        pad[i] ^= 0x36 ^ 0x5c;
    SHA256_Init(&k->opad);
    SHA256_Update(&k->opad, pad, 64);
    OPENSSL_cleanse(pad, sizeof(pad));
}

/* RFC 2104 from the prepared pad states. */
static void hmac_run(const hmac_key_t *k, const void *msg, size_t n, uint8_t out[32])
{
    uint8_t inner[32];
    SHA256_CTX c = k->ipad;
    SHA256_Update(&c, msg, n);
    SHA256_Final(inner, &c);
    c = k->opad;
    SHA256_Update(&c, inner, sizeof(inner));
    SHA256_Final(out, &c);
    /* Final leaves the digest, not the keyed mid-state, in c. */
}

/* ---------- canonical request ---------- */

/* The canonical request is built in one buffer (on the stack when small) and hashed once. */
typedef struct {
    char *p;
    size_t n, cap;
    bool oom;
    char local[2048];
} cbuf_t;

static void cb_init(cbuf_t *b)
{
    b->p = b->local;
    b->n = 0;
    b->cap = sizeof(b->local);
    b->oom = false;
}

static void cb_free(cbuf_t *b)
{
    if (b->p != b->local) free(b->p);
}

/* Room for `extra` more bytes at b->p + b->n, or NULL (and oom) if none. */
static char *cb_reserve(cbuf_t *b, size_t extra)
{
    if (b->oom) return NULL;
    if (b->cap - b->n >= extra) return b->p + b->n;
    size_t cap = b->cap;
    while (cap - b->n < extra) {
        if (cap > SIZE_MAX / 2) {
            b->oom = true;
            return NULL;
        }
        cap *= 2;
    }
    char *np = malloc(cap);
    if (!np) {
        b->oom = true;
        return NULL;
    }
    memcpy(np, b->p, b->n);
    cb_free(b);
    b->p = np;
    b->cap = cap;
    return b->p + b->n;
}

/* put/putc_ run ~50 times per request: the common case (room left) stays inline. */
static inline void put(cbuf_t *b, const void *p, size_t n)
{
    char *d = b->cap - b->n >= n && !b->oom ? b->p + b->n : cb_reserve(b, n);
    if (!d) return;
    memcpy(d, p, n);
    b->n += n;
}

static inline void putc_(cbuf_t *b, char c)
{
    if (b->n < b->cap && !b->oom)
        b->p[b->n++] = c;
    else
        put(b, &c, 1);
}

typedef struct {
    const char *name, *value; /* encoded, into the scratch buffer */
    size_t name_len, value_len;
} qparam_t;

static int qparam_cmp(const void *a, const void *b)
{
    const qparam_t *x = a, *y = b;
    size_t n = x->name_len < y->name_len ? x->name_len : y->name_len;
    int c = memcmp(x->name, y->name, n);
    if (c || x->name_len != y->name_len) return c ? c : (x->name_len < y->name_len ? -1 : 1);
    n = x->value_len < y->value_len ? x->value_len : y->value_len;
    c = memcmp(x->value, y->value, n);
    if (c || x->value_len != y->value_len) return c ? c : (x->value_len < y->value_len ? -1 : 1);
    return 0;
}

/* Canonical query string into b; false on a malformed query. */
static bool put_canonical_query(cbuf_t *b, const char *q, size_t n, bool drop_signature)
{
    if (n == 0) return true;
    char local_scratch[1536];
    qparam_t local_params[32];
    size_t count = 1;
    for (size_t i = 0; i < n; i++)
        count += q[i] == '&';
    if (count > MAX_QUERY_PARAMS) return false;
    char *scratch = 3 * n <= sizeof(local_scratch) ? local_scratch : malloc(3 * n);
    qparam_t *params =
        count <= PC_ARRAY_LEN(local_params) ? local_params : malloc(count * sizeof(*params));
    size_t np = 0, o = 0;
    bool ok = scratch && params;
    const char *p = q, *end = q + n;
    while (ok && p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *e = amp ? amp : end;
        if (e > p) {
            const char *eq = memchr(p, '=', (size_t)(e - p));
            const char *ne = eq ? eq : e;
            qparam_t *qp = &params[np];
            size_t nl = reencode(p, (size_t)(ne - p), true, false, scratch + o);
            if (nl == (size_t)-1) {
                ok = false;
                break;
            }
            qp->name = scratch + o;
            qp->name_len = nl;
            o += nl;
            size_t vl = 0;
            if (eq) {
                vl = reencode(eq + 1, (size_t)(e - eq - 1), true, false, scratch + o);
                if (vl == (size_t)-1) {
                    ok = false;
                    break;
                }
            }
            qp->value = scratch + o;
            qp->value_len = vl;
            o += vl;
            if (!(drop_signature && span_eq(qp->name, qp->name_len, "X-Amz-Signature"))) np++;
        }
        p = amp ? amp + 1 : end;
    }
    if (ok) {
        qsort(params, np, sizeof(*params), qparam_cmp);
        for (size_t i = 0; i < np; i++) {
            if (i) putc_(b, '&');
            put(b, params[i].name, params[i].name_len);
            putc_(b, '=');
            put(b, params[i].value, params[i].value_len);
        }
    }
    if (scratch != local_scratch) free(scratch);
    if (params != local_params) free(params);
    return ok;
}

/* Trimmed value with runs of spaces collapsed to one. */
static void put_header_value(cbuf_t *s, const char *v, size_t n, bool verbatim)
{
    if (verbatim) {
        put(s, v, n);
        return;
    }
    while (n && (*v == ' ' || *v == '\t'))
        v++, n--;
    while (n && (v[n - 1] == ' ' || v[n - 1] == '\t'))
        n--;
    size_t i = 0;
    while (i < n) {
        size_t j = i;
        while (j < n && v[j] != ' ')
            j++;
        put(s, v + i, j - i);
        if (j == n) break;
        putc_(s, ' ');
        while (j < n && v[j] == ' ')
            j++;
        i = j;
    }
}

typedef struct {
    const char *method;
    size_t method_len;
    const char *path, *query;
    size_t path_len, query_len;
    bool verbatim;       /* OPA: path/query/value as given */
    bool drop_signature; /* presigned: X-Amz-Signature is not part of the query */
    const char *names;   /* signed header list "a;b;c" (lower case, sorted) */
    size_t names_len;
    const pc_http1_header_t *headers;
    size_t nheaders;
    const char *payload_hash;
    size_t payload_hash_len;
} canon_t;

typedef enum { CANON_OK, CANON_MALFORMED, CANON_MISSING_HEADER, CANON_OOM } canon_res_t;

/* SHA-256 of the canonical request. */
static canon_res_t canonical_hash(const canon_t *c, uint8_t out[32])
{
    cbuf_t b;
    cb_init(&b);
    canon_res_t res = CANON_OK;
    put(&b, c->method, c->method_len);
    putc_(&b, '\n');
    if (c->verbatim) {
        put(&b, c->path, c->path_len);
    } else if (c->path_len == 0) {
        putc_(&b, '/');
    } else {
        char *d = c->path_len <= SIZE_MAX / 3 ? cb_reserve(&b, 3 * c->path_len) : NULL;
        size_t n = d ? reencode(c->path, c->path_len, false, true, d) : 0;
        if (n == (size_t)-1)
            res = CANON_MALFORMED;
        else
            b.n += n;
    }
    putc_(&b, '\n');
    if (c->verbatim)
        put(&b, c->query, c->query_len);
    else if (res == CANON_OK && !put_canonical_query(&b, c->query, c->query_len, c->drop_signature))
        res = CANON_MALFORMED;
    putc_(&b, '\n');
    /* canonical headers, in the order of the (sorted) signed list */
    const char *p = c->names, *end = c->names + c->names_len;
    while (res == CANON_OK && p < end) {
        const char *semi = memchr(p, ';', (size_t)(end - p));
        const char *e = semi ? semi : end;
        size_t nl = (size_t)(e - p);
        put(&b, p, nl);
        putc_(&b, ':');
        bool found = false;
        for (size_t i = 0; i < c->nheaders; i++) {
            const pc_http1_header_t *h = &c->headers[i];
            if (h->name.n != nl) continue;
            size_t k = 0;
            while (k < nl && lower(h->name.p[k]) == p[k])
                k++;
            if (k != nl) continue;
            if (found) putc_(&b, ',');
            put_header_value(&b, h->value.p, h->value.n, c->verbatim);
            found = true;
        }
        if (!found) res = CANON_MISSING_HEADER;
        putc_(&b, '\n');
        p = semi ? semi + 1 : end;
    }
    putc_(&b, '\n');
    put(&b, c->names, c->names_len);
    putc_(&b, '\n');
    put(&b, c->payload_hash, c->payload_hash_len);
    if (res == CANON_OK && b.oom) res = CANON_OOM;
    if (res == CANON_OK) sha256_2(b.p, b.n, NULL, 0, out);
    cb_free(&b);
    return res;
}

/* ---------- signing key ---------- */

/* False only when a (very long) secret cannot be buffered: callers fail closed. */
static bool derive_key(const char *secret, const char *date, const char *region,
                       const char *service, uint8_t out[32])
{
    char small[4 + 256], *k0 = small;
    size_t sl = strlen(secret);
    if (4 + sl > sizeof(small) && !(k0 = malloc(4 + sl))) return false;
    memcpy(k0, "AWS4", 4);
    memcpy(k0 + 4, secret, sl);
    uint8_t k1[32], k2[32], k3[32];
    pc_hmac_sha256(k0, 4 + sl, date, strlen(date), k1);
    OPENSSL_cleanse(k0, 4 + sl);
    if (k0 != small) free(k0);
    pc_hmac_sha256(k1, 32, region, strlen(region), k2);
    pc_hmac_sha256(k2, 32, service, strlen(service), k3);
    pc_hmac_sha256(k3, 32, "aws4_request", 12, out);
    OPENSSL_cleanse(k1, 32);
    OPENSSL_cleanse(k2, 32);
    OPENSSL_cleanse(k3, 32);
    return true;
}

void pc_sigv4_key_cache_init(pc_sigv4_key_cache_t *c)
{
    memset(c, 0, sizeof(*c));
}

void pc_sigv4_key_cache_wipe(pc_sigv4_key_cache_t *c)
{
    if (c) OPENSSL_cleanse(c, sizeof(*c));
}

/* The signing key into out and its HMAC pad states into hk, from the cache when there. */
static bool signing_key(pc_sigv4_key_cache_t *c, const char *secret, const char *date,
                        const char *region, const char *service, uint8_t out[32], hmac_key_t *hk)
{
    if (!c || strlen(region) > PC_SIGV4_MAX_REGION || strlen(service) > PC_SIGV4_MAX_SERVICE ||
        strlen(date) != 8) {
        if (!derive_key(secret, date, region, service, out)) return false;
        hmac_key_init(hk, out);
        return true;
    }
    uint8_t id[32];
    sha256_2(secret, strlen(secret), NULL, 0, id);
    for (unsigned i = 0; i < PC_SIGV4_KEY_CACHE_SLOTS; i++) {
        if (c->slot[i].used && pc_ct_equal(c->slot[i].secret_id, id, 32) &&
            !strcmp(c->slot[i].date, date) && !strcmp(c->slot[i].region, region) &&
            !strcmp(c->slot[i].service, service)) {
            memcpy(out, c->slot[i].key, 32);
            hk->ipad = c->slot[i].pc__ipad;
            hk->opad = c->slot[i].pc__opad;
            return true;
        }
    }
    if (!derive_key(secret, date, region, service, out)) return false;
    hmac_key_init(hk, out);
    unsigned i = c->next++ % PC_SIGV4_KEY_CACHE_SLOTS;
    memcpy(c->slot[i].secret_id, id, 32);
    memcpy(c->slot[i].date, date, 9);
    memcpy(c->slot[i].region, region, strlen(region) + 1);
    memcpy(c->slot[i].service, service, strlen(service) + 1);
    memcpy(c->slot[i].key, out, 32);
    c->slot[i].pc__ipad = hk->ipad;
    c->slot[i].pc__opad = hk->opad;
    c->slot[i].used = true;
    return true;
}

/* "<date>/<region>/<service>/aws4_request" into out; false when it does not fit. */
static bool make_scope(char *out, size_t cap, const char *date, const char *region,
                       const char *service)
{
    const char *parts[] = {date, "/", region, "/", service, "/aws4_request"};
    size_t n = 0;
    for (size_t i = 0; i < PC_ARRAY_LEN(parts); i++) {
        size_t l = strlen(parts[i]);
        if (n + l >= cap) return false;
        memcpy(out + n, parts[i], l);
        n += l;
    }
    out[n] = '\0';
    return true;
}

/* HMAC(key, "AWS4-HMAC-SHA256\n<date>\n<scope>\n<hex(canonical hash)>") */
static void request_signature(const hmac_key_t *key, const char *amz_date, const char *scope,
                              const uint8_t canon[32], uint8_t out[32])
{
    char sts[32 + PC_SIGV4_AMZ_DATE_LEN + PC_SIGV4_SCOPE_MAX + 2 * 32 + 8];
    size_t al = sizeof(PC_SIGV4_ALGORITHM) - 1, dl = strlen(amz_date), sl = strlen(scope), o = 0;
    PC_BUG_ON(al + dl + sl + 3 + 65 > sizeof(sts));
    memcpy(sts, PC_SIGV4_ALGORITHM, al);
    o += al;
    sts[o++] = '\n';
    memcpy(sts + o, amz_date, dl);
    o += dl;
    sts[o++] = '\n';
    memcpy(sts + o, scope, sl);
    o += sl;
    sts[o++] = '\n';
    pc__sigv4_hex(canon, 32, sts + o); /* writes 64 digits and a NUL */
    o += 64;
    hmac_run(key, sts, o, out);
}

void pc__sigv4_chained(const uint8_t key[32], const char *algo, const char *amz_date,
                       const char *scope, const uint8_t prev[PC_SIGV4_SIG_LEN], const char *tail,
                       uint8_t out[PC_SIGV4_SIG_LEN])
{
    char sts[64 + PC_SIGV4_AMZ_DATE_LEN + PC_SIGV4_SCOPE_MAX + 3 * 64 + 8];
    char hx[65];
    pc__sigv4_hex(prev, PC_SIGV4_SIG_LEN, hx);
    int n = snprintf(sts, sizeof(sts), "%s\n%s\n%s\n%s\n%s", algo, amz_date, scope, hx, tail);
    PC_BUG_ON(n < 0 || (size_t)n >= sizeof(sts));
    pc_hmac_sha256(key, 32, sts, (size_t)n, out);
}

/* ---------- parsing credentials ---------- */

const char *pc_sigv4_result_code(pc_sigv4_result_t r, bool presigned)
{
    switch (r) {
    case PC_SIGV4_OK:
        return NULL;
    case PC_SIGV4_NO_AUTH:
        return "AccessDenied";
    case PC_SIGV4_MALFORMED:
        return presigned ? "AuthorizationQueryParametersError" : "AuthorizationHeaderMalformed";
    case PC_SIGV4_MISMATCH:
        return "SignatureDoesNotMatch";
    case PC_SIGV4_SKEWED:
        return "RequestTimeTooSkewed";
    case PC_SIGV4_EXPIRED:
        return "AccessDenied";
    case PC_SIGV4_MISSING_CONTENT_SHA256:
        return "InvalidRequest";
    case PC_SIGV4_BAD_CONTENT_SHA256:
        return "InvalidArgument";
    case PC_SIGV4_UNSUPPORTED:
        return "InvalidArgument";
    case PC_SIGV4_UNSIGNED_HEADERS:
        return "AccessDenied";
    }
    return "AccessDenied";
}

const char *pc_sigv4_result_message(pc_sigv4_result_t r)
{
    switch (r) {
    case PC_SIGV4_OK:
        return "";
    case PC_SIGV4_NO_AUTH:
        return "Access Denied";
    case PC_SIGV4_MALFORMED:
        return "The authorization information provided is malformed.";
    case PC_SIGV4_MISMATCH:
        return "The request signature we calculated does not match the signature you provided. "
               "Check your key and signing method.";
    case PC_SIGV4_SKEWED:
        return "The difference between the request time and the current time is too large.";
    case PC_SIGV4_EXPIRED:
        return "Request has expired";
    case PC_SIGV4_MISSING_CONTENT_SHA256:
        return "Missing required header for this request: x-amz-content-sha256";
    case PC_SIGV4_BAD_CONTENT_SHA256:
        return "x-amz-content-sha256 must be UNSIGNED-PAYLOAD, STREAMING-UNSIGNED-PAYLOAD-TRAILER, "
               "STREAMING-AWS4-HMAC-SHA256-PAYLOAD, STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER "
               "or a valid sha256 value.";
    case PC_SIGV4_UNSUPPORTED:
        return "Unsupported Authorization Type";
    case PC_SIGV4_UNSIGNED_HEADERS:
        return "There were headers present in the request which were not signed";
    }
    return "Access Denied";
}

/* "AK/YYYYMMDD/region/service/aws4_request" into out. */
static bool parse_credential(const char *s, size_t n, pc_sigv4_auth_t *out)
{
    const char *slash[4];
    size_t found = 0;
    for (size_t i = n; i > 0 && found < 4; i--)
        if (s[i - 1] == '/') slash[found++] = s + i - 1;
    if (found < 4) return false;
    /* slash[3] is the first of the last four */
    const char *ak = s, *date = slash[3] + 1, *region = slash[2] + 1, *svc = slash[1] + 1,
               *term = slash[0] + 1;
    size_t akl = (size_t)(slash[3] - ak), dl = (size_t)(slash[2] - date),
           rl = (size_t)(slash[1] - region), sl = (size_t)(slash[0] - svc),
           tl = (size_t)(s + n - term);
    unsigned dummy;
    if (akl == 0 || dl != 8 || !digits(date, 8, &dummy) || rl == 0) return false;
    if (!span_eq(term, tl, "aws4_request")) return false;
    for (size_t i = 0; i < akl; i++)
        if ((unsigned char)ak[i] <= 0x20 || ak[i] == 0x7f) return false;
    for (size_t i = 0; i < rl; i++)
        if (!unreserved((unsigned char)region[i])) return false;
    if (!copy_field(out->access_key, sizeof(out->access_key), ak, akl) ||
        !copy_field(out->scope_date, sizeof(out->scope_date), date, dl) ||
        !copy_field(out->region, sizeof(out->region), region, rl) ||
        !copy_field(out->service, sizeof(out->service), svc, sl))
        return false;
    return !strcmp(out->service, "s3");
}

/* Lower case, sorted, unique, non-empty names, "host" among them. */
static bool parse_signed_headers(const char *s, size_t n, pc_sigv4_auth_t *out)
{
    if (n == 0 || !copy_field(out->signed_headers, sizeof(out->signed_headers), s, n)) return false;
    const char *p = s, *end = s + n, *prev = NULL;
    size_t prev_len = 0, count = 0;
    bool host = false;
    while (p <= end) {
        const char *semi = memchr(p, ';', (size_t)(end - p));
        const char *e = semi ? semi : end;
        size_t l = (size_t)(e - p);
        if (l == 0 || ++count > PC_SIGV4_MAX_SIGNED_HEADERS) return false;
        for (size_t i = 0; i < l; i++) {
            unsigned char c = (unsigned char)p[i];
            if (c <= 0x20 || c >= 0x7f || (c >= 'A' && c <= 'Z') || c == ':' || c == ',')
                return false;
        }
        if (prev) {
            size_t m = prev_len < l ? prev_len : l;
            int c = memcmp(prev, p, m);
            if (c > 0 || (c == 0 && prev_len >= l)) return false;
        }
        if (span_eq(p, l, "host")) host = true;
        prev = p;
        prev_len = l;
        if (!semi) break;
        p = semi + 1;
    }
    return host;
}

pc_sigv4_result_t pc_sigv4_parse_header(const char *v, size_t n, pc_sigv4_auth_t *out)
{
    memset(out, 0, sizeof(*out));
    static const char alg[] = PC_SIGV4_ALGORITHM " ";
    if (n < sizeof(alg) - 1 || memcmp(v, alg, sizeof(alg) - 1) != 0) {
        if ((n >= 4 && memcmp(v, "AWS ", 4) == 0) || (n >= 5 && memcmp(v, "AWS4-", 5) == 0))
            return PC_SIGV4_UNSUPPORTED;
        return PC_SIGV4_MALFORMED;
    }
    const char *p = v + sizeof(alg) - 1, *end = v + n;
    bool have_cred = false, have_sh = false, have_sig = false;
    while (p < end) {
        while (p < end && (*p == ' ' || *p == ','))
            p++;
        if (p == end) break;
        const char *comma = memchr(p, ',', (size_t)(end - p));
        const char *e = comma ? comma : end;
        while (e > p && e[-1] == ' ')
            e--;
        const char *eq = memchr(p, '=', (size_t)(e - p));
        if (!eq) return PC_SIGV4_MALFORMED;
        const char *val = eq + 1;
        size_t kl = (size_t)(eq - p), vl = (size_t)(e - val);
        if (span_eq(p, kl, "Credential")) {
            if (have_cred || !parse_credential(val, vl, out)) return PC_SIGV4_MALFORMED;
            have_cred = true;
        } else if (span_eq(p, kl, "SignedHeaders")) {
            if (have_sh || !parse_signed_headers(val, vl, out)) return PC_SIGV4_MALFORMED;
            have_sh = true;
        } else if (span_eq(p, kl, "Signature")) {
            if (have_sig || !pc__sigv4_unhex(val, vl, out->signature, PC_SIGV4_SIG_LEN))
                return PC_SIGV4_MALFORMED;
            have_sig = true;
        } else {
            return PC_SIGV4_MALFORMED;
        }
        p = comma ? comma + 1 : end;
    }
    return have_cred && have_sh && have_sig ? PC_SIGV4_OK : PC_SIGV4_MALFORMED;
}

/* Percent-decode (with '+' as space) into out[cap]; false if malformed or too long. */
static bool query_decode(const char *s, size_t n, char *out, size_t cap, size_t *out_len)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '%') {
            if (i + 2 >= n) return false;
            int a = hexval((unsigned char)s[i + 1]), b = hexval((unsigned char)s[i + 2]);
            if (a < 0 || b < 0) return false;
            c = (char)(a << 4 | b);
            i += 2;
        } else if (c == '+') {
            c = ' ';
        }
        if (o + 1 >= cap) return false;
        out[o++] = c;
    }
    out[o] = '\0';
    *out_len = o;
    return true;
}

pc_sigv4_result_t pc_sigv4_parse_query(const char *q, size_t n, pc_sigv4_auth_t *out)
{
    memset(out, 0, sizeof(*out));
    out->presigned = true;
    enum { ALG, CRED, DATE, EXP, SH, SIG, TOK, NKEYS };
#define KEY(x)                                                                                     \
    {                                                                                              \
        x, sizeof(x) - 1                                                                           \
    }
    static const struct {
        const char *s;
        size_t n;
    } keys[NKEYS] = {KEY("X-Amz-Algorithm"),     KEY("X-Amz-Credential"),    KEY("X-Amz-Date"),
                     KEY("X-Amz-Expires"),       KEY("X-Amz-SignedHeaders"), KEY("X-Amz-Signature"),
                     KEY("X-Amz-Security-Token")};
#undef KEY
    bool seen[NKEYS] = {0};
    char val[PC_SIGV4_MAX_SIGNED_LIST + 1];
    pc_sigv4_result_t res = PC_SIGV4_OK;
    const char *p = q, *end = q + n;
    while (p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *e = amp ? amp : end;
        const char *eq = memchr(p, '=', (size_t)(e - p));
        const char *ne = eq ? eq : e;
        int k = -1;
        size_t kl = (size_t)(ne - p);
        for (int i = 0; i < NKEYS && k < 0; i++)
            if (keys[i].n == kl && memcmp(p, keys[i].s, kl) == 0) k = i;
        p = amp ? amp + 1 : end;
        if (k < 0) continue;
        if (seen[k]) {
            res = PC_SIGV4_MALFORMED;
            continue;
        }
        seen[k] = true;
        size_t vl = 0;
        if (k == TOK) continue; /* its value is the caller's business; only presence matters */
        if (!eq || !query_decode(eq + 1, (size_t)(e - eq - 1), val, sizeof(val), &vl)) {
            res = PC_SIGV4_MALFORMED;
            continue;
        }
        bool ok = true;
        switch (k) {
        case ALG:
            if (strcmp(val, PC_SIGV4_ALGORITHM) != 0 && res == PC_SIGV4_OK)
                res = PC_SIGV4_UNSUPPORTED;
            break;
        case CRED:
            ok = parse_credential(val, vl, out);
            break;
        case DATE: {
            int64_t t;
            ok = parse_amz_date(val, vl, &t) &&
                 copy_field(out->amz_date, sizeof(out->amz_date), val, vl);
            break;
        }
        case EXP: {
            unsigned x = 0;
            ok = vl > 0 && vl <= 6 && digits(val, vl, &x) && x >= 1 && x <= PC_SIGV4_MAX_EXPIRES_S;
            out->expires_s = x;
            break;
        }
        case SH:
            ok = parse_signed_headers(val, vl, out);
            break;
        case SIG:
            ok = pc__sigv4_unhex(val, vl, out->signature, PC_SIGV4_SIG_LEN);
            break;
        }
        if (!ok) res = PC_SIGV4_MALFORMED;
    }
    out->has_security_token = seen[TOK];
    if (!seen[ALG]) {
        memset(out, 0, sizeof(*out));
        return PC_SIGV4_NO_AUTH;
    }
    if (res == PC_SIGV4_OK && !(seen[CRED] && seen[DATE] && seen[EXP] && seen[SH] && seen[SIG]))
        res = PC_SIGV4_MALFORMED;
    return res;
}

static const pc_http1_span_t *find_header(const pc_sigv4_request_t *req, const char *name)
{
    for (size_t i = 0; i < req->nheaders; i++)
        if (pc_http1_span_ieq(req->headers[i].name, name)) return &req->headers[i].value;
    return NULL;
}

static bool query_has_algorithm(const char *q, size_t n)
{
    static const char key[] = "X-Amz-Algorithm";
    const char *p = q, *end = q + n;
    while (p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *e = amp ? amp : end;
        const char *eq = memchr(p, '=', (size_t)(e - p));
        if (span_eq(p, (size_t)((eq ? eq : e) - p), key)) return true;
        p = amp ? amp + 1 : end;
    }
    return false;
}

pc_sigv4_result_t pc_sigv4_parse(const pc_sigv4_request_t *req, pc_sigv4_auth_t *out)
{
    const pc_http1_span_t *authz = find_header(req, "authorization");
    bool presign = req->query.p && query_has_algorithm(req->query.p, req->query.n);
    if (authz && presign) {
        memset(out, 0, sizeof(*out));
        return PC_SIGV4_MALFORMED;
    }
    if (authz) {
        pc_sigv4_result_t r = pc_sigv4_parse_header(authz->p, authz->n, out);
        if (r == PC_SIGV4_OK) out->has_security_token = find_header(req, "x-amz-security-token");
        return r;
    }
    if (presign) return pc_sigv4_parse_query(req->query.p, req->query.n, out);
    memset(out, 0, sizeof(*out));
    return PC_SIGV4_NO_AUTH;
}

pc_sigv4_payload_t pc_sigv4_payload_kind(const char *v, size_t n, uint8_t *sha256_out)
{
    if (span_eq(v, n, "UNSIGNED-PAYLOAD")) return PC_SIGV4_PAYLOAD_UNSIGNED;
    if (span_eq(v, n, "STREAMING-AWS4-HMAC-SHA256-PAYLOAD")) return PC_SIGV4_PAYLOAD_STREAMING;
    if (span_eq(v, n, "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER"))
        return PC_SIGV4_PAYLOAD_STREAMING_TRAILER;
    if (span_eq(v, n, "STREAMING-UNSIGNED-PAYLOAD-TRAILER"))
        return PC_SIGV4_PAYLOAD_STREAMING_UNSIGNED_TRAILER;
    uint8_t tmp[32];
    if (pc__sigv4_unhex(v, n, sha256_out ? sha256_out : tmp, 32)) return PC_SIGV4_PAYLOAD_HASH;
    return PC_SIGV4_PAYLOAD_INVALID;
}

/* ---------- verification ---------- */

static bool signed_list_has(const char *list, const char *name, size_t nl)
{
    const char *p = list;
    for (;;) {
        const char *semi = strchr(p, ';');
        size_t l = semi ? (size_t)(semi - p) : strlen(p);
        if (l == nl) {
            size_t k = 0;
            while (k < nl && lower(name[k]) == p[k])
                k++;
            if (k == nl) return true;
        }
        if (!semi) return false;
        p = semi + 1;
    }
}

/* Every x-amz-* header present must be signed. */
static bool amz_headers_signed(const pc_sigv4_auth_t *auth, const pc_sigv4_request_t *req)
{
    for (size_t i = 0; i < req->nheaders; i++) {
        pc_http1_span_t n = req->headers[i].name;
        if (n.n < 6 || !pc_http1_span_ieq((pc_http1_span_t){n.p, 6}, "x-amz-")) continue;
        if (!signed_list_has(auth->signed_headers, n.p, n.n)) return false;
    }
    return true;
}

/* The value of a decoded query parameter (presign's X-Amz-Content-Sha256). */
static bool query_param(const pc_sigv4_request_t *req, const char *key, char *out, size_t cap,
                        size_t *out_len)
{
    const char *p = req->query.p, *end = p ? p + req->query.n : NULL;
    while (p && p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *e = amp ? amp : end;
        const char *eq = memchr(p, '=', (size_t)(e - p));
        if (eq && span_eq(p, (size_t)(eq - p), key))
            return query_decode(eq + 1, (size_t)(e - eq - 1), out, cap, out_len);
        p = amp ? amp + 1 : end;
    }
    return false;
}

pc_sigv4_result_t pc_sigv4_verify(const pc_sigv4_auth_t *auth, const pc_sigv4_request_t *req,
                                  const char *secret, int64_t now_s, pc_sigv4_key_cache_t *cache,
                                  pc_sigv4_verified_t *out)
{
    pc_sigv4_verified_t v;
    memset(&v, 0, sizeof(v));
    char payload[80];
    size_t payload_len = 0;

    if (!auth->presigned) {
        const pc_http1_span_t *d = find_header(req, "x-amz-date");
        if (d) {
            if (!parse_amz_date(d->p, d->n, &v.request_time_s)) return PC_SIGV4_MALFORMED;
        } else if ((d = find_header(req, "date"))) {
            /* S3 also takes a Date header, either form. */
            if (!parse_http_date(d->p, d->n, &v.request_time_s) &&
                !parse_amz_date(d->p, d->n, &v.request_time_s))
                return PC_SIGV4_MALFORMED;
        } else {
            return PC_SIGV4_MALFORMED;
        }
        pc_sigv4_amz_date(v.request_time_s, v.amz_date);
        if (memcmp(v.amz_date, auth->scope_date, 8) != 0) return PC_SIGV4_MALFORMED;
        int64_t skew = now_s - v.request_time_s;
        if (skew > PC_SIGV4_MAX_SKEW_S || skew < -PC_SIGV4_MAX_SKEW_S) return PC_SIGV4_SKEWED;
        const pc_http1_span_t *h = find_header(req, "x-amz-content-sha256");
        if (!h) return PC_SIGV4_MISSING_CONTENT_SHA256;
        v.payload = pc_sigv4_payload_kind(h->p, h->n, v.payload_sha256);
        if (v.payload == PC_SIGV4_PAYLOAD_INVALID) return PC_SIGV4_BAD_CONTENT_SHA256;
        memcpy(payload, h->p, h->n); /* valid kinds are at most 64 bytes */
        payload_len = h->n;
    } else {
        if (!parse_amz_date(auth->amz_date, strlen(auth->amz_date), &v.request_time_s))
            return PC_SIGV4_MALFORMED;
        memcpy(v.amz_date, auth->amz_date, sizeof(v.amz_date));
        if (memcmp(v.amz_date, auth->scope_date, 8) != 0) return PC_SIGV4_MALFORMED;
        if (now_s < v.request_time_s - PC_SIGV4_MAX_SKEW_S) return PC_SIGV4_SKEWED;
        if (now_s > v.request_time_s + (int64_t)auth->expires_s) return PC_SIGV4_EXPIRED;
        if (query_param(req, "X-Amz-Content-Sha256", payload, sizeof(payload), &payload_len)) {
            v.payload = pc_sigv4_payload_kind(payload, payload_len, v.payload_sha256);
            if (v.payload == PC_SIGV4_PAYLOAD_INVALID) return PC_SIGV4_BAD_CONTENT_SHA256;
        } else {
            v.payload = PC_SIGV4_PAYLOAD_UNSIGNED;
            payload_len = strlen(PC_SIGV4_UNSIGNED_PAYLOAD);
            memcpy(payload, PC_SIGV4_UNSIGNED_PAYLOAD, payload_len);
        }
    }
    if (!amz_headers_signed(auth, req)) return PC_SIGV4_UNSIGNED_HEADERS;
    if (!make_scope(v.scope, sizeof(v.scope), auth->scope_date, auth->region, auth->service))
        return PC_SIGV4_MALFORMED;

    canon_t c = {
        .method = req->method.p,
        .method_len = req->method.n,
        .path = req->path.p,
        .path_len = req->path.n,
        .query = req->query.p,
        .query_len = req->query.p ? req->query.n : 0,
        .drop_signature = auth->presigned,
        .names = auth->signed_headers,
        .names_len = strlen(auth->signed_headers),
        .headers = req->headers,
        .nheaders = req->nheaders,
        .payload_hash = payload,
        .payload_hash_len = payload_len,
    };
    uint8_t canon[32];
    hmac_key_t hk;
    pc_sigv4_result_t res = PC_SIGV4_OK;
    switch (canonical_hash(&c, canon)) {
    case CANON_OK:
        break;
    case CANON_MALFORMED:
        res = PC_SIGV4_MALFORMED;
        break;
    case CANON_MISSING_HEADER:
        res = PC_SIGV4_MISMATCH;
        break;
    case CANON_OOM:
        res = PC_SIGV4_MISMATCH;
        break; /* fail closed */
    }
    if (res == PC_SIGV4_OK && !signing_key(cache, secret, auth->scope_date, auth->region,
                                           auth->service, v.signing_key, &hk))
        res = PC_SIGV4_MISMATCH; /* fail closed */
    if (res == PC_SIGV4_OK) {
        request_signature(&hk, v.amz_date, v.scope, canon, v.seed_signature);
        if (!pc_ct_equal(v.seed_signature, auth->signature, PC_SIGV4_SIG_LEN))
            res = PC_SIGV4_MISMATCH;
    }
    OPENSSL_cleanse(&hk, sizeof(hk));
    if (res != PC_SIGV4_OK) {
        OPENSSL_cleanse(&v, sizeof(v));
        return res;
    }
    *out = v;
    OPENSSL_cleanse(&v, sizeof(v));
    return PC_SIGV4_OK;
}

/* ---------- body hash ---------- */

bool pc_sigv4_body_hash_init(pc_sigv4_body_hash_t *h, const uint8_t want[32])
{
    memset(h, 0, sizeof(*h));
    memcpy(h->pc__want, want, 32);
    h->pc__md = EVP_MD_CTX_new();
    if (h->pc__md && EVP_DigestInit_ex(h->pc__md, EVP_sha256(), NULL) == 1) return true;
    pc_sigv4_body_hash_free(h);
    return false;
}

void pc_sigv4_body_hash_update(pc_sigv4_body_hash_t *h, const void *data, size_t n)
{
    h->bytes += n;
    /* A failed update leaves a wrong digest, which final() reports as a mismatch. */
    if (h->pc__md && n) (void)EVP_DigestUpdate(h->pc__md, data, n);
}

bool pc_sigv4_body_hash_final(pc_sigv4_body_hash_t *h)
{
    uint8_t md[32];
    unsigned int len = 0;
    bool ok = h->pc__md && EVP_DigestFinal_ex(h->pc__md, md, &len) == 1 && len == 32 &&
              pc_ct_equal(md, h->pc__want, 32);
    pc_sigv4_body_hash_free(h);
    return ok;
}

void pc_sigv4_body_hash_free(pc_sigv4_body_hash_t *h)
{
    if (!h) return;
    EVP_MD_CTX_free(h->pc__md);
    h->pc__md = NULL;
}

/* ---------- signing ---------- */

bool pc_sigv4_sign(const pc_sigv4_sign_in_t *in, pc_sigv4_key_cache_t *cache, char *authz,
                   size_t cap, uint8_t *sig_out)
{
    if (in->nheaders > PC_SIGV4_MAX_SIGNED_HEADERS || !in->amz_date ||
        strlen(in->amz_date) != PC_SIGV4_AMZ_DATE_LEN || strlen(in->region) > PC_SIGV4_MAX_REGION ||
        strlen(in->service) > PC_SIGV4_MAX_SERVICE ||
        strlen(in->access_key) > PC_SIGV4_MAX_ACCESS_KEY)
        return false;
    /* signed header list: lower-cased names, sorted, unique */
    const char *names[PC_SIGV4_MAX_SIGNED_HEADERS];
    char store[PC_SIGV4_MAX_SIGNED_LIST + 1];
    size_t used = 0, nn = 0;
    for (size_t i = 0; i < in->nheaders; i++) {
        pc_http1_span_t n = in->headers[i].name;
        if (n.n == 0 || used + n.n + 1 > sizeof(store)) return false;
        char *dst = store + used;
        for (size_t k = 0; k < n.n; k++)
            dst[k] = lower(n.p[k]);
        dst[n.n] = '\0';
        bool dup = false;
        for (size_t j = 0; j < nn; j++)
            dup = dup || !strcmp(names[j], dst);
        if (dup) continue;
        names[nn++] = dst;
        used += n.n + 1;
    }
    /* insertion sort: a handful of names */
    for (size_t i = 1; i < nn; i++)
        for (size_t j = i; j > 0 && strcmp(names[j - 1], names[j]) > 0; j--) {
            const char *t = names[j];
            names[j] = names[j - 1];
            names[j - 1] = t;
        }
    char list[PC_SIGV4_MAX_SIGNED_LIST + 1];
    size_t ll = 0;
    for (size_t i = 0; i < nn; i++) {
        size_t l = strlen(names[i]);
        if (ll + l + 1 > sizeof(list)) return false;
        if (i) list[ll++] = ';';
        memcpy(list + ll, names[i], l);
        ll += l;
    }
    list[ll] = '\0';

    char date[9], scope[PC_SIGV4_SCOPE_MAX + 1];
    memcpy(date, in->amz_date, 8);
    date[8] = '\0';
    if (!make_scope(scope, sizeof(scope), date, in->region, in->service)) return false;

    canon_t c = {
        .method = in->method,
        .method_len = strlen(in->method),
        .path = in->path.p,
        .path_len = in->path.n,
        .query = in->query.p,
        .query_len = in->query.p ? in->query.n : 0,
        .verbatim = in->verbatim,
        .names = list,
        .names_len = ll,
        .headers = in->headers,
        .nheaders = in->nheaders,
        .payload_hash = in->payload_hash,
        .payload_hash_len = strlen(in->payload_hash),
    };
    uint8_t canon[32], key[32], sig[32];
    hmac_key_t hk;
    bool ok = canonical_hash(&c, canon) == CANON_OK &&
              signing_key(cache, in->secret, date, in->region, in->service, key, &hk);
    if (ok) request_signature(&hk, in->amz_date, scope, canon, sig);
    OPENSSL_cleanse(key, sizeof(key));
    OPENSSL_cleanse(&hk, sizeof(hk));
    if (!ok) return false;
    /* "<algorithm> Credential=<key>/<scope>,SignedHeaders=<list>,Signature=<hex>" */
    const char *parts[] = {PC_SIGV4_ALGORITHM " Credential=",
                           in->access_key,
                           "/",
                           scope,
                           ",SignedHeaders=",
                           list,
                           ",Signature="};
    size_t n = 0;
    bool fits = true;
    for (size_t i = 0; fits && i < PC_ARRAY_LEN(parts); i++) {
        size_t l = strlen(parts[i]);
        fits = n + l < cap;
        if (fits) memcpy(authz + n, parts[i], l);
        n += l;
    }
    if (!fits || n + 64 >= cap) {
        if (cap) authz[0] = '\0';
        return false;
    }
    pc__sigv4_hex(sig, 32, authz + n);
    if (sig_out) memcpy(sig_out, sig, 32);
    return true;
}
