#include "pg/scram.h"
#include "core/crypto.h"

#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/x509.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#define RAW_NONCE_LEN 18 /* as PostgreSQL: 18 random bytes, 24 base64 chars */
#define MAX_SALT_LEN 128
#ifdef PC_FUZZING
#define MAX_CLIENT_ITERATIONS 4096u /* keep each fuzz input fast */
#else
#define MAX_CLIENT_ITERATIONS 10000000u /* an upstream cannot make us spin for minutes */
#endif

/*
 * Upstream logins: the server sends the same salt and iteration count every
 * time, so the SaltedPassword (PBKDF2, 4096+ rounds of HMAC: ~10 ms of CPU)
 * is derived once per (password, salt, iterations) and kept here, as
 * PgBouncer does. Keyed by the password's SHA-256 (the password itself is not
 * copied); wiped when an entry is replaced. Process-wide, under a mutex: the
 * workers share it.
 */
#define SALTED_CACHE_SLOTS 16

static struct salted_entry {
    bool used;
    uint8_t password_hash[PC_SHA256_LEN];
    uint8_t salt[128];
    size_t salt_len;
    uint32_t iterations;
    uint8_t salted[32];
} salted_cache[SALTED_CACHE_SLOTS];
static unsigned salted_next;
static uint64_t salted_hits;
static pthread_mutex_t salted_mu = PTHREAD_MUTEX_INITIALIZER;

static bool salted_password(const char *password, size_t plen, const uint8_t *salt, size_t salt_len,
                            uint32_t iterations, uint8_t out[32])
{
    uint8_t ph[PC_SHA256_LEN];
    pc_sha256(password, plen, ph);
    bool cacheable = salt_len <= sizeof salted_cache[0].salt;
    pthread_mutex_lock(&salted_mu);
    for (size_t i = 0; cacheable && i < SALTED_CACHE_SLOTS; i++) {
        const struct salted_entry *e = &salted_cache[i];
        if (e->used && e->iterations == iterations && e->salt_len == salt_len &&
            memcmp(e->salt, salt, salt_len) == 0 && pc_ct_equal(e->password_hash, ph, sizeof ph)) {
            memcpy(out, e->salted, 32);
            salted_hits++;
            pthread_mutex_unlock(&salted_mu);
            OPENSSL_cleanse(ph, sizeof ph);
            return true;
        }
    }
    pthread_mutex_unlock(&salted_mu);
    /* Derived outside the lock: other logins need not wait for it. */
    if (!pc_pbkdf2_sha256(password, plen, salt, salt_len, iterations, out, 32)) {
        OPENSSL_cleanse(ph, sizeof ph);
        return false;
    }
    if (cacheable) {
        pthread_mutex_lock(&salted_mu);
        struct salted_entry *e = &salted_cache[salted_next++ % SALTED_CACHE_SLOTS];
        OPENSSL_cleanse(e, sizeof *e);
        e->used = true;
        memcpy(e->password_hash, ph, sizeof ph);
        memcpy(e->salt, salt, salt_len);
        e->salt_len = salt_len;
        e->iterations = iterations;
        memcpy(e->salted, out, 32);
        pthread_mutex_unlock(&salted_mu);
    }
    OPENSSL_cleanse(ph, sizeof ph);
    return true;
}

uint64_t pc__scram_salted_cache_hits(void)
{
    pthread_mutex_lock(&salted_mu);
    uint64_t n = salted_hits;
    pthread_mutex_unlock(&salted_mu);
    return n;
}

enum { S_INIT, S_SENT_FIRST, S_DONE };
enum { C_INIT, C_SENT_FIRST, C_SENT_FINAL, C_DONE };

/* ---------- SASLprep ---------- */

/* Decode one UTF-8 sequence; returns its length or 0 if invalid. */
static size_t utf8_decode(const unsigned char *s, size_t n, uint32_t *cp)
{
    if (s[0] < 0x80) {
        *cp = s[0];
        return 1;
    }
    size_t len;
    uint32_t c, min;
    if ((s[0] & 0xe0) == 0xc0) {
        len = 2, c = s[0] & 0x1f, min = 0x80;
    } else if ((s[0] & 0xf0) == 0xe0) {
        len = 3, c = s[0] & 0x0f, min = 0x800;
    } else if ((s[0] & 0xf8) == 0xf0) {
        len = 4, c = s[0] & 0x07, min = 0x10000;
    } else {
        return 0;
    }
    if (n < len) return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80) return 0;
        c = (c << 6) | (s[i] & 0x3f);
    }
    if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff)) return 0;
    *cp = c;
    return len;
}

static size_t utf8_encode(uint32_t cp, char *out)
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xc0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xe0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        out[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    out[0] = (char)(0xf0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
    out[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

/* RFC 3454 C.1.2: non-ASCII space characters. */
static bool is_non_ascii_space(uint32_t c)
{
    return c == 0xa0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200b) || c == 0x202f || c == 0x205f ||
           c == 0x3000;
}

/* RFC 3454 B.1: commonly mapped to nothing. */
static bool is_mapped_to_nothing(uint32_t c)
{
    return c == 0xad || c == 0x34f || c == 0x1806 || (c >= 0x180b && c <= 0x180d) ||
           (c >= 0x200b && c <= 0x200d) || c == 0x2060 || (c >= 0xfe00 && c <= 0xfe0f) ||
           c == 0xfeff;
}

/* RFC 4013 §2.3 prohibited output (RFC 3454 C.1.2, C.2.1-2, C.3-C.9). */
static bool is_prohibited(uint32_t c)
{
    return is_non_ascii_space(c) || c < 0x20 || c == 0x7f || (c >= 0x80 && c <= 0x9f) ||
           c == 0x6dd || c == 0x70f || c == 0x180e || c == 0x200c || c == 0x200d || c == 0x2028 ||
           c == 0x2029 || (c >= 0x2060 && c <= 0x2063) || (c >= 0x206a && c <= 0x206f) ||
           c == 0xfeff || (c >= 0xfff9 && c <= 0xfffd) || (c >= 0x1d173 && c <= 0x1d17a) ||
           (c >= 0xe000 && c <= 0xf8ff) || (c >= 0xf0000 && c <= 0xffffd) ||
           (c >= 0x100000 && c <= 0x10fffd) || (c >= 0xfdd0 && c <= 0xfdef) ||
           (c & 0xfffe) == 0xfffe || c == 0x340 || c == 0x341 || c == 0x200e || c == 0x200f ||
           (c >= 0x202a && c <= 0x202e) || (c >= 0x2ff0 && c <= 0x2ffb) || c == 0xe0001 ||
           (c >= 0xe0020 && c <= 0xe007f);
}

char *pc_scram_saslprep(const char *password, size_t len, size_t *out_len)
{
    const unsigned char *p = (const unsigned char *)password;
    bool ascii = true;
    for (size_t i = 0; i < len && ascii; i++)
        ascii = p[i] < 0x80;
    char *raw = pc_xstrndup(password, len);
    if (ascii) {
        *out_len = len;
        return raw;
    }
    char *out = pc_xmalloc(len + 1);
    size_t o = 0;
    for (size_t i = 0; i < len;) {
        uint32_t cp;
        size_t n = utf8_decode(p + i, len - i, &cp);
        if (n == 0) goto use_raw; /* not UTF-8: PostgreSQL uses the bytes as they are */
        i += n;
        if (is_mapped_to_nothing(cp)) continue;
        if (is_non_ascii_space(cp)) cp = ' ';
        if (is_prohibited(cp)) goto use_raw;
        o += utf8_encode(cp, out + o); /* never longer than the input sequence */
    }
    if (o == 0) goto use_raw; /* PostgreSQL refuses an empty result: raw bytes again */
    out[o] = '\0';
    explicit_bzero(raw, len);
    free(raw);
    *out_len = o;
    return out;
use_raw:
    explicit_bzero(out, len + 1);
    free(out);
    *out_len = len;
    return raw;
}

/* ---------- verifiers ---------- */

static bool derive_keys(const char *password, size_t len, const uint8_t *salt, size_t salt_len,
                        uint32_t iterations, uint8_t salted[32])
{
    size_t plen;
    char *prepped = pc_scram_saslprep(password, len, &plen);
    bool ok = pc_pbkdf2_sha256(prepped, plen, salt, salt_len, iterations, salted, 32);
    explicit_bzero(prepped, plen);
    free(prepped);
    return ok;
}

static void keys_from_salted(const uint8_t salted[32], uint8_t client_key[32],
                             uint8_t stored_key[32], uint8_t server_key[32])
{
    pc_hmac_sha256(salted, 32, "Client Key", 10, client_key);
    pc_sha256(client_key, 32, stored_key);
    pc_hmac_sha256(salted, 32, "Server Key", 10, server_key);
}

bool pc_scram_verifier_from_salt(const char *password, size_t len, const uint8_t *salt,
                                 size_t salt_len, uint32_t iterations, pc_scram_verifier_t *out)
{
    if (salt_len == 0 || salt_len > sizeof out->salt || iterations == 0) return false;
    uint8_t salted[32], client_key[32];
    memset(out, 0, sizeof *out);
    if (!derive_keys(password, len, salt, salt_len, iterations, salted)) return false;
    memcpy(out->salt, salt, salt_len);
    out->salt_len = salt_len;
    out->iterations = iterations;
    keys_from_salted(salted, client_key, out->stored_key, out->server_key);
    explicit_bzero(salted, sizeof salted);
    explicit_bzero(client_key, sizeof client_key);
    return true;
}

bool pc_scram_verifier_new(const char *password, size_t len, uint32_t iterations,
                           pc_scram_verifier_t *out)
{
    uint8_t salt[PC_SCRAM_SALT_LEN];
    if (!pc_random_bytes(salt, sizeof salt)) return false;
    return pc_scram_verifier_from_salt(password, len, salt, sizeof salt, iterations, out);
}

bool pc_scram_verifier_check(const pc_scram_verifier_t *v, const char *password, size_t len)
{
    pc_scram_verifier_t w;
    bool ok = pc_scram_verifier_from_salt(password, len, v->salt, v->salt_len, v->iterations, &w) &&
              pc_ct_equal(w.stored_key, v->stored_key, 32) &&
              pc_ct_equal(w.server_key, v->server_key, 32);
    explicit_bzero(&w, sizeof w);
    return ok;
}

/* Position of c in s[0..n), or n. */
static size_t find(const char *s, size_t n, char c)
{
    const char *p = memchr(s, c, n);
    return p ? (size_t)(p - s) : n;
}

bool pc_scram_verifier_parse(const char *text, size_t len, pc_scram_verifier_t *out)
{
    static const char prefix[] = "SCRAM-SHA-256$";
    const size_t plen = sizeof prefix - 1;
    pc_scram_verifier_t v;
    memset(&v, 0, sizeof v);
    if (len <= plen || len >= PC_SCRAM_VERIFIER_TEXT_MAX || memcmp(text, prefix, plen) != 0)
        return false;
    const char *p = text + plen;
    size_t n = len - plen;
    /* <iterations>:<salt>$<StoredKey>:<ServerKey> */
    size_t colon = find(p, n, ':');
    if (colon == 0 || colon > 10 || colon == n) return false;
    uint64_t it = 0;
    for (size_t i = 0; i < colon; i++) {
        if (p[i] < '0' || p[i] > '9') return false;
        it = it * 10 + (uint64_t)(p[i] - '0');
    }
    if (it == 0 || it > INT32_MAX) return false;
    v.iterations = (uint32_t)it;
    p += colon + 1, n -= colon + 1;
    size_t dollar = find(p, n, '$');
    if (dollar == n || !pc_b64_decode(p, dollar, v.salt, sizeof v.salt, &v.salt_len) ||
        v.salt_len == 0)
        return false;
    p += dollar + 1, n -= dollar + 1;
    size_t colon2 = find(p, n, ':');
    size_t klen;
    if (colon2 == n || !pc_b64_decode(p, colon2, v.stored_key, 32, &klen) || klen != 32)
        return false;
    p += colon2 + 1, n -= colon2 + 1;
    if (!pc_b64_decode(p, n, v.server_key, 32, &klen) || klen != 32) return false;
    *out = v;
    return true;
}

size_t pc_scram_verifier_format(const pc_scram_verifier_t *v, char *out, size_t cap)
{
    char salt[PC_B64_ENCODED_LEN(32) + 1], sk[PC_B64_ENCODED_LEN(32) + 1],
        svk[PC_B64_ENCODED_LEN(32) + 1];
    if (v->salt_len == 0 || v->salt_len > sizeof v->salt) return 0;
    pc_b64_encode(v->salt, v->salt_len, salt, sizeof salt);
    pc_b64_encode(v->stored_key, 32, sk, sizeof sk);
    pc_b64_encode(v->server_key, 32, svk, sizeof svk);
    int w = snprintf(out, cap, "SCRAM-SHA-256$%u:%s$%s:%s", v->iterations, salt, sk, svk);
    return w > 0 && (size_t)w < cap ? (size_t)w : 0;
}

/* ---------- message parsing helpers ---------- */

/* A cursor over one SCRAM message: "a=value,b=value,...". */
typedef struct cursor {
    const char *p;
    size_t n;
} cursor_t;

/* iterations ":" salt "$" StoredKey ":" ServerKey */
static bool read_attr(cursor_t *c, char want, char *got, const char **val, size_t *vlen)
{
    if (c->n < 2 || c->p[1] != '=') return false;
    char a = c->p[0];
    if (!((a >= 'a' && a <= 'z') || (a >= 'A' && a <= 'Z'))) return false;
    if (want && a != want) return false;
    size_t end = find(c->p, c->n, ',');
    *val = c->p + 2;
    *vlen = end - 2;
    if (got) *got = a;
    c->p += end;
    c->n -= end;
    if (c->n) { /* consume the comma; a trailing comma leaves an empty attribute: invalid */
        c->p++;
        c->n--;
        if (c->n == 0) return false;
    }
    return true;
}

/* RFC 5802 printable: %x21-2B / %x2D-7E (no comma). */
static bool valid_nonce(const char *s, size_t n)
{
    if (n == 0) return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x21 || (unsigned char)s[i] > 0x7e || s[i] == ',') return false;
    return true;
}

static bool has_nul(const char *s, size_t n)
{
    return memchr(s, '\0', n) != NULL;
}

static void make_nonce(char *out, size_t cap)
{
    uint8_t raw[RAW_NONCE_LEN];
    PC_BUG_ON(!pc_random_bytes(raw, sizeof raw));
    PC_BUG_ON(pc_b64_encode(raw, sizeof raw, out, cap) == 0);
}

/* ---------- server ---------- */

static pthread_once_t mock_once = PTHREAD_ONCE_INIT;
static uint8_t mock_secret[32];

static void mock_init(void)
{
    PC_BUG_ON(!pc_random_bytes(mock_secret, sizeof mock_secret));
}

void pc_scram_server_init(pc_scram_server_t *s, const pc_scram_verifier_t *v,
                          const char *mock_username, const char *server_nonce)
{
    memset(s, 0, sizeof *s);
    s->state = S_INIT;
    if (v) {
        s->verifier = *v;
    } else {
        /* Same salt for the same unknown name every time, as PostgreSQL's mock
         * authentication does, so probing cannot tell users apart. */
        uint8_t h[32];
        const char *u = mock_username ? mock_username : "";
        pthread_once(&mock_once, mock_init);
        pc_hmac_sha256(mock_secret, sizeof mock_secret, u, strlen(u), h);
        s->mock = true;
        memcpy(s->verifier.salt, h, PC_SCRAM_SALT_LEN);
        s->verifier.salt_len = PC_SCRAM_SALT_LEN;
        s->verifier.iterations = PC_SCRAM_DEFAULT_ITERATIONS;
        PC_BUG_ON(!pc_random_bytes(s->verifier.stored_key, 32));
        PC_BUG_ON(!pc_random_bytes(s->verifier.server_key, 32));
    }
    if (server_nonce) {
        size_t n = strlen(server_nonce);
        if (n < sizeof s->fixed_server_nonce && valid_nonce(server_nonce, n))
            memcpy(s->fixed_server_nonce, server_nonce, n + 1);
    }
}

bool pc_scram_server_set_channel_binding(pc_scram_server_t *s, bool offered, bool chose_plus,
                                         const uint8_t *cb_data, size_t cb_len)
{
    if (s->state != S_INIT || (chose_plus && !offered) || cb_len > sizeof s->cb_data ||
        (offered && cb_len == 0))
        return false;
    s->cb_offered = offered;
    s->cb_chose_plus = chose_plus;
    if (cb_len) memcpy(s->cb_data, cb_data, cb_len);
    s->cb_len = cb_len;
    return true;
}

void pc_scram_server_clear(pc_scram_server_t *s)
{
    explicit_bzero(s, sizeof *s);
}

#define FAIL(result, text)                                                                         \
    do {                                                                                           \
        *problem = (text);                                                                         \
        s->state = S_DONE;                                                                         \
        return (result);                                                                           \
    } while (0)

pc_scram_result_t pc_scram_server_first(pc_scram_server_t *s, const char *msg, size_t len,
                                        char *out, size_t cap, size_t *out_len,
                                        const char **problem)
{
    *out_len = 0;
    *problem = NULL;
    if (s->state != S_INIT) FAIL(PC_SCRAM_MALFORMED, "unexpected SCRAM message");
    if (len == 0 || len >= PC_SCRAM_MAX_MESSAGE || has_nul(msg, len))
        FAIL(PC_SCRAM_MALFORMED, "malformed SCRAM message (length or NUL byte)");
    cursor_t c = {msg, len};
    /* gs2-header: cbind-flag "," [authzid] ","; cbind-flag is n, y or p=<type> */
    char flag = c.p[0];
    if (flag == 'p') {
        static const char type[] = "p=" PC_SCRAM_CB_TYPE ",";
        if (!s->cb_chose_plus)
            FAIL(PC_SCRAM_MALFORMED, "the client selected SCRAM-SHA-256 without channel binding, "
                                     "but the SCRAM message includes channel binding data");
        if (c.n < sizeof type - 1 || memcmp(c.p, type, sizeof type - 1) != 0)
            FAIL(PC_SCRAM_MALFORMED, "unsupported SCRAM channel-binding type");
        c.p += sizeof type - 2, c.n -= sizeof type - 2; /* now at the comma */
    } else if (flag == 'n' || flag == 'y') {
        if (s->cb_chose_plus)
            FAIL(PC_SCRAM_MALFORMED, "the client selected SCRAM-SHA-256-PLUS, but the SCRAM "
                                     "message does not include channel binding data");
        /* "y": the client could bind but believes we cannot. If we offered
         * PLUS, someone removed it from the list on the way: a downgrade. */
        if (flag == 'y' && s->cb_offered)
            FAIL(PC_SCRAM_MALFORMED, "SCRAM channel binding negotiation error");
        c.p += 1, c.n -= 1;
    } else {
        FAIL(PC_SCRAM_MALFORMED, "malformed SCRAM message (unexpected channel-binding flag)");
    }
    if (c.n < 2 || c.p[0] != ',')
        FAIL(PC_SCRAM_MALFORMED, "malformed SCRAM message (comma expected)");
    if (c.p[1] == 'a')
        FAIL(PC_SCRAM_MALFORMED, "client uses authorization identity, but it is not supported");
    if (c.p[1] != ',') FAIL(PC_SCRAM_MALFORMED, "malformed SCRAM message (comma expected)");
    c.p += 2, c.n -= 2;
    /* c= in the final message is base64(gs2-header [cb-data]). */
    {
        uint8_t raw[64 + PC_SCRAM_CB_MAX];
        size_t gs2_len = (size_t)(c.p - msg), raw_len = gs2_len;
        memcpy(raw, msg, gs2_len);
        if (flag == 'p') {
            memcpy(raw + gs2_len, s->cb_data, s->cb_len);
            raw_len += s->cb_len;
        }
        PC_BUG_ON(pc_b64_encode(raw, raw_len, s->expected_c, sizeof s->expected_c) == 0);
    }
    const char *bare = c.p;
    size_t bare_len = c.n;
    const char *val;
    size_t vlen;
    if (c.n >= 2 && c.p[0] == 'm' && c.p[1] == '=')
        FAIL(PC_SCRAM_MALFORMED, "client requires an unsupported SCRAM extension");
    /* The user name is ignored, as PostgreSQL does: the startup packet named the user. */
    if (!read_attr(&c, 'n', NULL, &val, &vlen))
        FAIL(PC_SCRAM_MALFORMED, "malformed SCRAM message (user name expected)");
    if (!read_attr(&c, 'r', NULL, &val, &vlen) || !valid_nonce(val, vlen))
        FAIL(PC_SCRAM_MALFORMED, "malformed SCRAM message (nonce expected)");
    const char *cnonce = val;
    size_t cnonce_len = vlen;
    while (c.n) { /* extensions: attr=value, ignored */
        const char *ev;
        size_t evl;
        if (!read_attr(&c, '\0', NULL, &ev, &evl))
            FAIL(PC_SCRAM_MALFORMED, "malformed SCRAM message (bad attribute)");
    }
    char snonce[64];
    if (s->fixed_server_nonce[0])
        memcpy(snonce, s->fixed_server_nonce, sizeof snonce);
    else
        make_nonce(snonce, sizeof snonce);
    size_t sn_len = strlen(snonce);
    if (cnonce_len + sn_len >= sizeof s->nonce)
        FAIL(PC_SCRAM_MALFORMED, "malformed SCRAM message (nonce too long)");
    memcpy(s->nonce, cnonce, cnonce_len);
    memcpy(s->nonce + cnonce_len, snonce, sn_len);
    s->nonce_len = cnonce_len + sn_len;
    s->client_nonce_len = cnonce_len;
    memcpy(s->client_first_bare, bare, bare_len);
    s->client_first_bare_len = bare_len;

    char salt[PC_B64_ENCODED_LEN(32) + 1];
    pc_b64_encode(s->verifier.salt, s->verifier.salt_len, salt, sizeof salt);
    int w = snprintf(s->server_first, sizeof s->server_first, "r=%.*s,s=%s,i=%u", (int)s->nonce_len,
                     s->nonce, salt, s->verifier.iterations);
    if (w <= 0 || (size_t)w >= sizeof s->server_first || (size_t)w >= cap)
        FAIL(PC_SCRAM_MALFORMED, "SCRAM output buffer too small");
    s->server_first_len = (size_t)w;
    memcpy(out, s->server_first, (size_t)w + 1);
    *out_len = (size_t)w;
    s->state = S_SENT_FIRST;
    return PC_SCRAM_OK;
}

pc_scram_result_t pc_scram_server_final(pc_scram_server_t *s, const char *msg, size_t len,
                                        char *out, size_t cap, size_t *out_len,
                                        const char **problem)
{
    *out_len = 0;
    *problem = NULL;
    if (s->state != S_SENT_FIRST) FAIL(PC_SCRAM_MALFORMED, "unexpected SCRAM message");
    if (len == 0 || len >= PC_SCRAM_MAX_MESSAGE || has_nul(msg, len))
        FAIL(PC_SCRAM_MALFORMED, "malformed SCRAM message (length or NUL byte)");
    cursor_t c = {msg, len};
    const char *val;
    size_t vlen;
    if (!read_attr(&c, 'c', NULL, &val, &vlen))
        FAIL(PC_SCRAM_MALFORMED, "malformed SCRAM message (channel binding expected)");
    if (vlen != strlen(s->expected_c) || !pc_ct_equal(val, s->expected_c, vlen))
        FAIL(PC_SCRAM_MALFORMED, "SCRAM channel binding check failed");
    if (!read_attr(&c, 'r', NULL, &val, &vlen))
        FAIL(PC_SCRAM_MALFORMED, "malformed SCRAM message (nonce expected)");
    if (vlen != s->nonce_len || memcmp(val, s->nonce, vlen) != 0)
        FAIL(PC_SCRAM_MALFORMED, "SCRAM nonce does not match");
    const char *proof_b64 = NULL;
    size_t proof_b64_len = 0, without_proof_len = 0;
    while (c.n) {
        char attr;
        size_t at = (size_t)(c.p - msg);
        if (!read_attr(&c, '\0', &attr, &val, &vlen))
            FAIL(PC_SCRAM_MALFORMED, "malformed SCRAM message (bad attribute)");
        if (attr == 'p') {
            if (c.n) FAIL(PC_SCRAM_MALFORMED, "malformed SCRAM message (proof must be last)");
            proof_b64 = val;
            proof_b64_len = vlen;
            without_proof_len = at - 1; /* drop the comma before "p=" */
        }
    }
    uint8_t proof[32];
    size_t proof_len = 0;
    if (!proof_b64 || !pc_b64_decode(proof_b64, proof_b64_len, proof, sizeof proof, &proof_len) ||
        proof_len != 32)
        FAIL(PC_SCRAM_MALFORMED, "malformed SCRAM message (invalid proof)");

    /* AuthMessage = client-first-bare "," server-first "," client-final-without-proof */
    char auth[PC_SCRAM_MAX_MESSAGE * 2 + PC_SCRAM_MAX_OUT];
    size_t an = 0;
    memcpy(auth + an, s->client_first_bare, s->client_first_bare_len);
    an += s->client_first_bare_len;
    auth[an++] = ',';
    memcpy(auth + an, s->server_first, s->server_first_len);
    an += s->server_first_len;
    auth[an++] = ',';
    memcpy(auth + an, msg, without_proof_len);
    an += without_proof_len;

    uint8_t client_sig[32], client_key[32], stored[32], server_sig[32];
    pc_hmac_sha256(s->verifier.stored_key, 32, auth, an, client_sig);
    for (int i = 0; i < 32; i++)
        client_key[i] = proof[i] ^ client_sig[i];
    pc_sha256(client_key, 32, stored);
    bool match = pc_ct_equal(stored, s->verifier.stored_key, 32);
    explicit_bzero(client_key, sizeof client_key);
    if (!match || s->mock) FAIL(PC_SCRAM_FAILED, "password authentication failed");

    pc_hmac_sha256(s->verifier.server_key, 32, auth, an, server_sig);
    char sig[PC_B64_ENCODED_LEN(32) + 1];
    pc_b64_encode(server_sig, 32, sig, sizeof sig);
    int w = snprintf(out, cap, "v=%s", sig);
    if (w <= 0 || (size_t)w >= cap) FAIL(PC_SCRAM_MALFORMED, "SCRAM output buffer too small");
    *out_len = (size_t)w;
    s->state = S_DONE;
    return PC_SCRAM_OK;
}

#undef FAIL

/* ---------- client ---------- */

#define FAIL(result, text)                                                                         \
    do {                                                                                           \
        *problem = (text);                                                                         \
        c->state = C_DONE;                                                                         \
        return (result);                                                                           \
    } while (0)

bool pc_scram_client_init(pc_scram_client_t *c, const char *password, size_t len,
                          const char *client_nonce)
{
    return pc_scram_client_init_user(c, password, len, NULL, client_nonce);
}

bool pc_scram_client_init_user(pc_scram_client_t *c, const char *password, size_t len,
                               const char *username, const char *client_nonce)
{
    memset(c, 0, sizeof *c);
    /* saslname: ',' and '=' are escaped as =2C and =3D (RFC 5802 §5.1). */
    char user[256];
    size_t u = 0;
    for (const char *p = username ? username : ""; *p; p++) {
        if (u + 4 >= sizeof user) return false;
        if (*p == ',' || *p == '=') {
            memcpy(user + u, *p == ',' ? "=2C" : "=3D", 3);
            u += 3;
        } else {
            user[u++] = *p;
        }
    }
    user[u] = '\0';
    if (client_nonce) {
        size_t n = strlen(client_nonce);
        if (n >= sizeof c->client_nonce || !valid_nonce(client_nonce, n)) return false;
        memcpy(c->client_nonce, client_nonce, n + 1);
    } else {
        make_nonce(c->client_nonce, sizeof c->client_nonce);
    }
    c->client_nonce_len = strlen(c->client_nonce);
    int w = snprintf(c->client_first_bare, sizeof c->client_first_bare, "n=%s,r=%s", user,
                     c->client_nonce);
    if (w <= 0 || (size_t)w >= sizeof c->client_first_bare) return false;
    c->client_first_bare_len = (size_t)w;
    c->password = pc_scram_saslprep(password, len, &c->password_len);
    c->state = C_INIT;
    return true;
}

void pc_scram_client_clear(pc_scram_client_t *c)
{
    if (c->password) {
        explicit_bzero(c->password, c->password_len);
        free(c->password);
    }
    explicit_bzero(c, sizeof *c);
}

bool pc_scram_client_set_channel_binding(pc_scram_client_t *c, const uint8_t *cb_data,
                                         size_t cb_len)
{
    if (c->state != C_INIT || cb_len == 0 || cb_len > sizeof c->cb_data) return false;
    memcpy(c->cb_data, cb_data, cb_len);
    c->cb_len = cb_len;
    return true;
}

bool pc_scram_tls_server_end_point(const struct x509_st *cert, uint8_t *out, size_t cap,
                                   size_t *out_len)
{
    /* RFC 5929 §4.1: the certificate's signature hash, with MD5 and SHA-1
     * replaced by SHA-256; no single hash (Ed25519, RSA-PSS...) means no binding. */
    int md_nid = NID_undef, pk_nid;
    if (!cert || !OBJ_find_sigid_algs(X509_get_signature_nid(cert), &md_nid, &pk_nid)) return false;
    const EVP_MD *md = md_nid == NID_md5 || md_nid == NID_sha1 ? EVP_sha256()
                       : md_nid == NID_undef                   ? NULL
                                                               : EVP_get_digestbynid(md_nid);
    unsigned char buf[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    if (!md || !X509_digest(cert, md, buf, &n) || n > cap) return false;
    memcpy(out, buf, n);
    *out_len = n;
    return true;
}

size_t pc_scram_client_first(pc_scram_client_t *c, char *out, size_t cap)
{
    if (c->state != C_INIT || !c->password) return 0;
    int w2 = snprintf(out, cap, "%s%s", c->cb_len ? "p=" PC_SCRAM_CB_TYPE ",," : "n,,",
                      c->client_first_bare);
    if (w2 <= 0 || (size_t)w2 >= cap) return 0;
    c->state = C_SENT_FIRST;
    return (size_t)w2;
}

pc_scram_result_t pc_scram_client_final(pc_scram_client_t *c, const char *msg, size_t len,
                                        char *out, size_t cap, size_t *out_len,
                                        const char **problem)
{
    *out_len = 0;
    *problem = NULL;
    if (c->state != C_SENT_FIRST) FAIL(PC_SCRAM_MALFORMED, "unexpected SCRAM message");
    if (len == 0 || len >= PC_SCRAM_MAX_MESSAGE || has_nul(msg, len))
        FAIL(PC_SCRAM_MALFORMED, "malformed SCRAM server-first-message");
    cursor_t cur = {msg, len};
    const char *nonce, *salt_b64, *iter;
    size_t nonce_len, salt_b64_len, iter_len;
    if (len >= 2 && msg[0] == 'm' && msg[1] == '=')
        FAIL(PC_SCRAM_MALFORMED, "server requires an unsupported SCRAM extension");
    if (!read_attr(&cur, 'r', NULL, &nonce, &nonce_len) || !valid_nonce(nonce, nonce_len) ||
        !read_attr(&cur, 's', NULL, &salt_b64, &salt_b64_len) ||
        !read_attr(&cur, 'i', NULL, &iter, &iter_len))
        FAIL(PC_SCRAM_MALFORMED, "malformed SCRAM server-first-message");
    while (cur.n) {
        const char *ev;
        size_t evl;
        if (!read_attr(&cur, '\0', NULL, &ev, &evl))
            FAIL(PC_SCRAM_MALFORMED, "malformed SCRAM server-first-message");
    }
    /* The server's nonce must extend ours. */
    if (nonce_len <= c->client_nonce_len ||
        memcmp(nonce, c->client_nonce, c->client_nonce_len) != 0)
        FAIL(PC_SCRAM_MALFORMED, "SCRAM server nonce does not extend the client nonce");
    uint8_t salt[MAX_SALT_LEN];
    size_t salt_len;
    if (!pc_b64_decode(salt_b64, salt_b64_len, salt, sizeof salt, &salt_len) || salt_len == 0)
        FAIL(PC_SCRAM_MALFORMED, "malformed SCRAM salt");
    uint64_t iterations = 0;
    if (iter_len == 0 || iter_len > 10) FAIL(PC_SCRAM_MALFORMED, "malformed SCRAM iteration count");
    for (size_t i = 0; i < iter_len; i++) {
        if (iter[i] < '0' || iter[i] > '9')
            FAIL(PC_SCRAM_MALFORMED, "malformed SCRAM iteration count");
        iterations = iterations * 10 + (uint64_t)(iter[i] - '0');
    }
    if (iterations == 0 || iterations > MAX_CLIENT_ITERATIONS)
        FAIL(PC_SCRAM_MALFORMED, "SCRAM iteration count out of range");

    uint8_t salted[32], client_key[32], stored[32], server_key[32], client_sig[32], proof[32];
    if (!salted_password(c->password, c->password_len, salt, salt_len, (uint32_t)iterations,
                         salted))
        FAIL(PC_SCRAM_MALFORMED, "SCRAM key derivation failed");
    keys_from_salted(salted, client_key, stored, server_key);

    char without_proof[PC_SCRAM_MAX_MESSAGE];
    /* c= is base64 of the gs2 header we sent, plus the binding data with PLUS. */
    uint8_t cb_raw[64 + PC_SCRAM_CB_MAX];
    size_t cb_raw_len;
    if (c->cb_len) {
        static const char gs2[] = "p=" PC_SCRAM_CB_TYPE ",,";
        memcpy(cb_raw, gs2, sizeof gs2 - 1);
        memcpy(cb_raw + sizeof gs2 - 1, c->cb_data, c->cb_len);
        cb_raw_len = sizeof gs2 - 1 + c->cb_len;
    } else {
        memcpy(cb_raw, "n,,", 3);
        cb_raw_len = 3;
    }
    char cb_b64[PC_B64_ENCODED_LEN(sizeof cb_raw) + 1];
    PC_BUG_ON(pc_b64_encode(cb_raw, cb_raw_len, cb_b64, sizeof cb_b64) == 0);
    int wp =
        snprintf(without_proof, sizeof without_proof, "c=%s,r=%.*s", cb_b64, (int)nonce_len, nonce);
    char auth[PC_SCRAM_MAX_MESSAGE * 3];
    int an = wp > 0 ? snprintf(auth, sizeof auth, "%.*s,%.*s,%s", (int)c->client_first_bare_len,
                               c->client_first_bare, (int)len, msg, without_proof)
                    : -1;
    if (wp <= 0 || (size_t)wp >= sizeof without_proof || an <= 0 || (size_t)an >= sizeof auth)
        FAIL(PC_SCRAM_MALFORMED, "malformed SCRAM server-first-message");
    pc_hmac_sha256(stored, 32, auth, (size_t)an, client_sig);
    for (int i = 0; i < 32; i++)
        proof[i] = client_key[i] ^ client_sig[i];
    pc_hmac_sha256(server_key, 32, auth, (size_t)an, c->server_signature);
    explicit_bzero(salted, sizeof salted);
    explicit_bzero(client_key, sizeof client_key);
    explicit_bzero(server_key, sizeof server_key);

    char proof_b64[PC_B64_ENCODED_LEN(32) + 1];
    pc_b64_encode(proof, 32, proof_b64, sizeof proof_b64);
    int w = snprintf(out, cap, "%s,p=%s", without_proof, proof_b64);
    if (w <= 0 || (size_t)w >= cap) FAIL(PC_SCRAM_MALFORMED, "SCRAM output buffer too small");
    *out_len = (size_t)w;
    c->state = C_SENT_FINAL;
    return PC_SCRAM_OK;
}

pc_scram_result_t pc_scram_client_verify(pc_scram_client_t *c, const char *msg, size_t len,
                                         const char **problem)
{
    *problem = NULL;
    if (c->state != C_SENT_FINAL) FAIL(PC_SCRAM_MALFORMED, "unexpected SCRAM message");
    if (len == 0 || len >= PC_SCRAM_MAX_MESSAGE || has_nul(msg, len))
        FAIL(PC_SCRAM_MALFORMED, "malformed SCRAM server-final-message");
    cursor_t cur = {msg, len};
    const char *val;
    size_t vlen;
    char attr;
    if (!read_attr(&cur, '\0', &attr, &val, &vlen))
        FAIL(PC_SCRAM_MALFORMED, "malformed SCRAM server-final-message");
    if (attr == 'e') FAIL(PC_SCRAM_FAILED, "upstream server reported a SCRAM error");
    uint8_t sig[32];
    size_t sig_len;
    if (attr != 'v' || !pc_b64_decode(val, vlen, sig, sizeof sig, &sig_len) || sig_len != 32)
        FAIL(PC_SCRAM_MALFORMED, "malformed SCRAM server-final-message");
    if (!pc_ct_equal(sig, c->server_signature, 32))
        FAIL(PC_SCRAM_FAILED, "invalid SCRAM server signature");
    c->state = C_DONE;
    return PC_SCRAM_OK;
}

#undef FAIL

/* ---------- MD5 ---------- */

void pc_pg_md5_response(const char *user, const char *password, const uint8_t salt[4], char out[36])
{
    size_t pl = strlen(password), ul = strlen(user);
    char *buf = pc_xmalloc(pl + ul + 1);
    memcpy(buf, password, pl);
    memcpy(buf + pl, user, ul);
    char inner[33 + 4];
    pc_md5_hex(buf, pl + ul, inner);
    explicit_bzero(buf, pl + ul);
    free(buf);
    memcpy(inner + 32, salt, 4);
    memcpy(out, "md5", 3);
    pc_md5_hex(inner, 36, out + 3);
    explicit_bzero(inner, sizeof inner);
}
