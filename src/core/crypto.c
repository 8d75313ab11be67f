#include "core/crypto.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include <limits.h>
#include <string.h>

bool pc_random_bytes(void *buf, size_t n)
{
    return n <= INT_MAX && RAND_bytes(buf, (int)n) == 1;
}

void pc_sha256(const void *data, size_t len, uint8_t out[PC_SHA256_LEN])
{
    SHA256(data, len, out);
}

void pc_hmac_sha256(const void *key, size_t key_len, const void *data, size_t len,
                    uint8_t out[PC_SHA256_LEN])
{
    unsigned int out_len = PC_SHA256_LEN;
    /* HMAC() only fails on allocation failure inside OpenSSL. */
    PC_BUG_ON(key_len > INT_MAX ||
              !HMAC(EVP_sha256(), key, (int)key_len, data, len, out, &out_len));
}

bool pc_pbkdf2_sha256(const void *password, size_t password_len, const uint8_t *salt,
                      size_t salt_len, uint32_t iterations, uint8_t *out, size_t out_len)
{
    if (password_len > INT_MAX || salt_len > INT_MAX || out_len > INT_MAX || iterations == 0 ||
        iterations > INT_MAX)
        return false;
    return PKCS5_PBKDF2_HMAC(password, (int)password_len, salt, (int)salt_len, (int)iterations,
                             EVP_sha256(), (int)out_len, out) == 1;
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
        uint32_t w = (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 | (uint32_t)v[2] << 6 |
                     (uint32_t)v[3];
        size_t bytes = 3 - (size_t)pad;
        if (o + bytes > cap) return false;
        out[o++] = (uint8_t)(w >> 16);
        if (bytes > 1) out[o++] = (uint8_t)(w >> 8);
        if (bytes > 2) out[o++] = (uint8_t)w;
    }
    *out_len = o;
    return true;
}
