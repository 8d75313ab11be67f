#include "core/crypto.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include <limits.h>
#include <pthread.h>
#include <string.h>

bool pc_random_bytes(void *buf, size_t n)
{
    return n <= INT_MAX && RAND_bytes(buf, (int)n) == 1;
}

/*
 * OpenSSL 3 looks a digest up in its provider store (a lock and a hash lookup)
 * every time EVP_sha256() is used by SHA256(), HMAC() or EVP_DigestInit; on
 * the S3 path, where one request verifies and re-signs with about ten HMACs,
 * that lookup was a tenth of the CPU. Fetch it once and hand the fetched
 * object to every call instead.
 */
static EVP_MD *sha256_md;
static pthread_once_t sha256_once = PTHREAD_ONCE_INIT;

static void sha256_fetch(void)
{
    sha256_md = EVP_MD_fetch(NULL, "SHA256", NULL);
}

static const EVP_MD *sha256(void)
{
    pthread_once(&sha256_once, sha256_fetch);
    PC_BUG_ON(!sha256_md);
    return sha256_md;
}

void pc_sha256(const void *data, size_t len, uint8_t out[PC_SHA256_LEN])
{
    unsigned int n = 0;
    PC_BUG_ON(EVP_Digest(data, len, out, &n, sha256(), NULL) != 1 || n != PC_SHA256_LEN);
}

void pc_hmac_sha256(const void *key, size_t key_len, const void *data, size_t len,
                    uint8_t out[PC_SHA256_LEN])
{
    /* RFC 2104 over the fetched digest: H((K ^ opad) || H((K ^ ipad) || data)). */
    enum { BLOCK = 64 };
    uint8_t k[BLOCK] = {0}, pad[BLOCK], inner[PC_SHA256_LEN];
    if (key_len > BLOCK)
        pc_sha256(key, key_len, k);
    else if (key_len)
        memcpy(k, key, key_len);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    unsigned int n = 0;
    for (unsigned i = 0; i < BLOCK; i++) pad[i] = k[i] ^ 0x36;
    bool ok = ctx && EVP_DigestInit_ex(ctx, sha256(), NULL) && EVP_DigestUpdate(ctx, pad, BLOCK) &&
              EVP_DigestUpdate(ctx, data, len) && EVP_DigestFinal_ex(ctx, inner, &n);
    for (unsigned i = 0; i < BLOCK; i++) pad[i] = k[i] ^ 0x5c;
    ok = ok && EVP_DigestInit_ex(ctx, sha256(), NULL) && EVP_DigestUpdate(ctx, pad, BLOCK) &&
         EVP_DigestUpdate(ctx, inner, sizeof inner) && EVP_DigestFinal_ex(ctx, out, &n);
    EVP_MD_CTX_free(ctx);
    explicit_bzero(k, sizeof k);
    explicit_bzero(pad, sizeof pad);
    /* Only an allocation failure inside OpenSSL gets here. */
    PC_BUG_ON(!ok);
}

/*
 * PBKDF2-HMAC-SHA-256 (RFC 8018) with the HMAC pads hashed once and their
 * digest states copied per iteration: about twice as fast as OpenSSL's
 * PKCS5_PBKDF2_HMAC, which re-keys HMAC on every iteration. That matters
 * because every user password in a configuration reload costs 4096 of them.
 */
bool pc_pbkdf2_sha256(const void *password, size_t password_len, const uint8_t *salt,
                      size_t salt_len, uint32_t iterations, uint8_t *out, size_t out_len)
{
    enum { BLOCK = 64 };
    if (iterations == 0 || out_len == 0 || out_len > (size_t)UINT32_MAX * PC_SHA256_LEN)
        return false;
    uint8_t key[BLOCK] = {0}, pad[BLOCK], u[PC_SHA256_LEN], t[PC_SHA256_LEN];
    if (password_len > BLOCK)
        pc_sha256(password, password_len, key);
    else if (password_len)
        memcpy(key, password, password_len);
    EVP_MD_CTX *inner = EVP_MD_CTX_new(), *outer = EVP_MD_CTX_new(), *work = EVP_MD_CTX_new();
    const EVP_MD *md = sha256();
    bool ok = inner && outer && work;
    for (int i = 0; i < BLOCK; i++)
        pad[i] = key[i] ^ 0x36;
    ok = ok && EVP_DigestInit_ex(inner, md, NULL) && EVP_DigestUpdate(inner, pad, BLOCK);
    for (int i = 0; i < BLOCK; i++)
        pad[i] = key[i] ^ 0x5c;
    ok = ok && EVP_DigestInit_ex(outer, md, NULL) && EVP_DigestUpdate(outer, pad, BLOCK);
    unsigned int n;
    for (uint32_t block = 1; ok && out_len > 0; block++) {
        uint8_t be[4] = {(uint8_t)(block >> 24), (uint8_t)(block >> 16), (uint8_t)(block >> 8),
                         (uint8_t)block};
        /* U1 = HMAC(P, salt || INT(block)); Ui = HMAC(P, Ui-1); T = U1 ^ ... ^ Uc */
        ok = EVP_MD_CTX_copy_ex(work, inner) && EVP_DigestUpdate(work, salt, salt_len) &&
             EVP_DigestUpdate(work, be, 4) && EVP_DigestFinal_ex(work, u, &n) &&
             EVP_MD_CTX_copy_ex(work, outer) && EVP_DigestUpdate(work, u, sizeof u) &&
             EVP_DigestFinal_ex(work, u, &n);
        memcpy(t, u, sizeof t);
        for (uint32_t i = 1; ok && i < iterations; i++) {
            ok = EVP_MD_CTX_copy_ex(work, inner) && EVP_DigestUpdate(work, u, sizeof u) &&
                 EVP_DigestFinal_ex(work, u, &n) && EVP_MD_CTX_copy_ex(work, outer) &&
                 EVP_DigestUpdate(work, u, sizeof u) && EVP_DigestFinal_ex(work, u, &n);
            for (size_t k = 0; k < sizeof t; k++)
                t[k] ^= u[k];
        }
        size_t take = out_len < sizeof t ? out_len : sizeof t;
        memcpy(out, t, take);
        out += take;
        out_len -= take;
    }
    EVP_MD_CTX_free(inner); /* frees wipe the digest state */
    EVP_MD_CTX_free(outer);
    EVP_MD_CTX_free(work);
    explicit_bzero(key, sizeof key);
    explicit_bzero(pad, sizeof pad);
    explicit_bzero(u, sizeof u);
    explicit_bzero(t, sizeof t);
    return ok;
}

void pc_md5_hex(const void *data, size_t len, char out[33])
{
    static const char hex[] = "0123456789abcdef";
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;
    PC_BUG_ON(EVP_Digest(data, len, md, &md_len, EVP_md5(), NULL) != 1 || md_len != 16);
    for (unsigned i = 0; i < 16; i++) {
        out[2 * i] = hex[md[i] >> 4];
        out[2 * i + 1] = hex[md[i] & 15];
    }
    out[32] = '\0';
}

bool pc_ct_equal(const void *a, const void *b, size_t n)
{
    return CRYPTO_memcmp(a, b, n) == 0;
}

static const char b64chars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

size_t pc_b64_encode(const uint8_t *in, size_t n, char *out, size_t cap)
{
    size_t need = PC_B64_ENCODED_LEN(n);
    if (n > SIZE_MAX / 2 || cap < need + 1) return 0;
    size_t o = 0, i = 0;
    for (; i + 2 < n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        out[o++] = b64chars[v >> 18];
        out[o++] = b64chars[(v >> 12) & 63];
        out[o++] = b64chars[(v >> 6) & 63];
        out[o++] = b64chars[v & 63];
    }
    if (i < n) {
        uint32_t v = (uint32_t)in[i] << 16 | (i + 1 < n ? (uint32_t)in[i + 1] << 8 : 0);
        out[o++] = b64chars[v >> 18];
        out[o++] = b64chars[(v >> 12) & 63];
        out[o++] = i + 1 < n ? b64chars[(v >> 6) & 63] : '=';
        out[o++] = '=';
    }
    out[o] = '\0';
    return o;
}

static int b64val(unsigned char c)
{
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
}

bool pc_b64_decode(const char *in, size_t n, uint8_t *out, size_t cap, size_t *out_len)
{
    if (n % 4 != 0) return false;
    size_t o = 0;
    for (size_t i = 0; i < n; i += 4) {
        bool last = i + 4 == n;
        int v[4];
        int pad = 0;
        for (int k = 0; k < 4; k++) {
            unsigned char ch = (unsigned char)in[i + (size_t)k];
            if (ch == '=' && last && k >= 2) {
                v[k] = 0;
                pad++;
                continue;
            }
            if (pad) return false; /* data after padding */
            v[k] = b64val(ch);
            if (v[k] < 0) return false;
        }
        /* Non-canonical encodings (stray low bits before padding) are refused. */
        if (pad == 2 && (v[1] & 15)) return false;
        if (pad == 1 && (v[2] & 3)) return false;
        uint32_t w =
            (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 | (uint32_t)v[2] << 6 | (uint32_t)v[3];
        size_t bytes = 3 - (size_t)pad;
        if (o + bytes > cap) return false;
        out[o++] = (uint8_t)(w >> 16);
        if (bytes > 1) out[o++] = (uint8_t)(w >> 8);
        if (bytes > 2) out[o++] = (uint8_t)w;
    }
    *out_len = o;
    return true;
}
