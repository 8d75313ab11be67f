/*
 * aws-chunked bodies: "<hex size>[;chunk-signature=<64 hex>]\r\n<data>\r\n"
 * repeated, a zero-size chunk, then trailer lines (checksum, trailer
 * signature) and an empty line. Each chunk signature chains from the previous
 * one, the first from the request's own (seed) signature.
 */
#include "s3/sigv4.h"

#include "core/crypto.h"
#include "s3/sigv4_int.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <pthread.h>
#include <string.h>
#include <strings.h>

enum {
    CK_HEADER = 0, /* chunk header line */
    CK_DATA,
    CK_DATA_DONE, /* data complete: check the signature before anything else */
    CK_DATA_CR,
    CK_DATA_LF,
    CK_TRAILER, /* trailer lines after the zero-size chunk */
    CK_END,
    CK_ERROR,
};

#define MAX_SIZE_DIGITS 15
#define CHUNK_SIG_EXT ";chunk-signature="

/*
 * Checksums of the decoded data, slicing-by-8 (eight table lookups per eight
 * bytes): a 1 GB upload must not spend seconds of a worker's time on its CRC.
 */
/* CRC-32 values fit in the low half: one routine serves all three. */
static uint64_t crc32_tab[8][256], crc32c_tab[8][256], crc64_tab[8][256];
static pthread_once_t tables_once = PTHREAD_ONCE_INIT;

static void make_tables(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint64_t a = i, b = i, c = i;
        for (int k = 0; k < 8; k++) {
            a = a & 1 ? (a >> 1) ^ 0xEDB88320u : a >> 1;           /* CRC-32 (IEEE) */
            b = b & 1 ? (b >> 1) ^ 0x82F63B78u : b >> 1;           /* CRC-32C */
            c = c & 1 ? (c >> 1) ^ 0x9A6C9329AC4BC9B5ull : c >> 1; /* CRC-64/NVME */
        }
        crc32_tab[0][i] = a;
        crc32c_tab[0][i] = b;
        crc64_tab[0][i] = c;
    }
    uint64_t(*const all[])[256] = {crc32_tab, crc32c_tab, crc64_tab};
    for (size_t k = 0; k < PC_ARRAY_LEN(all); k++)
        for (int t = 1; t < 8; t++)
            for (int i = 0; i < 256; i++)
                all[k][t][i] = (all[k][t - 1][i] >> 8) ^ all[k][0][all[k][t - 1][i] & 0xff];
}

static uint64_t le64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

/* Reflected CRC with table set t; crc is the running (pre-inverted) value. */
static uint64_t crc_update(uint64_t (*t)[256], uint64_t crc, const uint8_t *p, size_t n)
{
    for (; n >= 8; p += 8, n -= 8) {
        uint64_t v = le64(p) ^ crc;
        crc = t[7][v & 0xff] ^ t[6][(v >> 8) & 0xff] ^ t[5][(v >> 16) & 0xff] ^
              t[4][(v >> 24) & 0xff] ^ t[3][(v >> 32) & 0xff] ^ t[2][(v >> 40) & 0xff] ^
              t[1][(v >> 48) & 0xff] ^ t[0][v >> 56];
    }
    for (; n; p++, n--)
        crc = t[0][(crc ^ *p) & 0xff] ^ (crc >> 8);
    return crc;
}

static const struct {
    const char *header;
    pc_sigv4_checksum_t kind;
} checksums[] = {
    {"x-amz-checksum-crc32", PC_SIGV4_CK_CRC32},
    {"x-amz-checksum-crc32c", PC_SIGV4_CK_CRC32C},
    {"x-amz-checksum-crc64nvme", PC_SIGV4_CK_CRC64NVME},
    {"x-amz-checksum-sha1", PC_SIGV4_CK_SHA1},
    {"x-amz-checksum-sha256", PC_SIGV4_CK_SHA256},
};

const char *pc_sigv4_checksum_header(pc_sigv4_checksum_t c)
{
    for (size_t i = 0; i < PC_ARRAY_LEN(checksums); i++)
        if (checksums[i].kind == c) return checksums[i].header;
    return NULL;
}

static pc_sigv4_checksum_t checksum_of(const char *name, size_t n)
{
    for (size_t i = 0; i < PC_ARRAY_LEN(checksums); i++)
        if (strlen(checksums[i].header) == n && strncasecmp(name, checksums[i].header, n) == 0)
            return checksums[i].kind;
    return PC_SIGV4_CK_NONE;
}

static bool is_signed_kind(pc_sigv4_payload_t k)
{
    return k == PC_SIGV4_PAYLOAD_STREAMING || k == PC_SIGV4_PAYLOAD_STREAMING_TRAILER;
}

static bool has_trailer(pc_sigv4_payload_t k)
{
    return k == PC_SIGV4_PAYLOAD_STREAMING_TRAILER ||
           k == PC_SIGV4_PAYLOAD_STREAMING_UNSIGNED_TRAILER;
}

void pc_sigv4_chunked_free(pc_sigv4_chunked_t *d)
{
    if (!d) return;
    EVP_MD_CTX_free(d->pc__sha);
    EVP_MD_CTX_free(d->pc__ck);
    d->pc__sha = d->pc__ck = NULL;
    OPENSSL_cleanse(d->pc__key, sizeof(d->pc__key));
}

bool pc_sigv4_chunked_init(pc_sigv4_chunked_t *d, const pc_sigv4_verified_t *v,
                           uint64_t decoded_len, pc_http1_span_t trailer)
{
    memset(d, 0, sizeof(*d));
    if (!is_signed_kind(v->payload) && v->payload != PC_SIGV4_PAYLOAD_STREAMING_UNSIGNED_TRAILER)
        return false;
    pthread_once(&tables_once, make_tables);
    d->pc__kind = v->payload;
    memcpy(d->pc__key, v->signing_key, 32);
    memcpy(d->pc__prev_sig, v->seed_signature, PC_SIGV4_SIG_LEN);
    memcpy(d->pc__amz_date, v->amz_date, sizeof(d->pc__amz_date));
    memcpy(d->pc__scope, v->scope, sizeof(d->pc__scope));
    d->pc__expect_len = decoded_len;
    if (trailer.n) {
        /* x-amz-trailer names the one checksum the client will send */
        const char *s = trailer.p, *e = trailer.p + trailer.n;
        while (s < e && (*s == ' ' || *s == '\t'))
            s++;
        while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
            e--;
        d->pc__announced = checksum_of(s, (size_t)(e - s));
        if (d->pc__announced == PC_SIGV4_CK_NONE || !has_trailer(v->payload)) goto fail;
    }
    if (is_signed_kind(v->payload) && !(d->pc__sha = EVP_MD_CTX_new())) goto fail;
    if (d->pc__announced == PC_SIGV4_CK_SHA1 || d->pc__announced == PC_SIGV4_CK_SHA256) {
        d->pc__ck = EVP_MD_CTX_new();
        const EVP_MD *md = d->pc__announced == PC_SIGV4_CK_SHA1 ? EVP_sha1() : EVP_sha256();
        if (!d->pc__ck || EVP_DigestInit_ex(d->pc__ck, md, NULL) != 1) goto fail;
    }
    d->pc__crc = d->pc__announced == PC_SIGV4_CK_CRC64NVME ? ~0ull : 0xFFFFFFFFull;
    d->pc__state = CK_HEADER;
    return true;
fail:
    pc_sigv4_chunked_free(d);
    return false;
}

static pc_sigv4_chunked_status_t fail(pc_sigv4_chunked_t *d, pc_sigv4_chunked_status_t st)
{
    d->pc__state = CK_ERROR;
    d->pc__line_len = (uint16_t)st; /* remembered so later calls repeat it */
    return st;
}

static void checksum_update(pc_sigv4_chunked_t *d, const uint8_t *p, size_t n)
{
    switch (d->pc__announced) {
    case PC_SIGV4_CK_CRC32:
        d->pc__crc = crc_update(crc32_tab, d->pc__crc, p, n);
        break;
    case PC_SIGV4_CK_CRC32C:
        d->pc__crc = crc_update(crc32c_tab, d->pc__crc, p, n);
        break;
    case PC_SIGV4_CK_CRC64NVME:
        d->pc__crc = crc_update(crc64_tab, d->pc__crc, p, n);
        break;
    case PC_SIGV4_CK_SHA1:
    case PC_SIGV4_CK_SHA256:
        EVP_DigestUpdate(d->pc__ck, p, n);
        break;
    case PC_SIGV4_CK_NONE:
        break;
    }
}

/* Base64 of the checksum of everything decoded, as S3 spells it. */
static bool checksum_final(pc_sigv4_chunked_t *d, char out[PC_SIGV4_CHECKSUM_B64_MAX + 1])
{
    uint8_t raw[32];
    size_t n = 0;
    switch (d->pc__announced) {
    case PC_SIGV4_CK_CRC32:
    case PC_SIGV4_CK_CRC32C: {
        uint32_t c = ~(uint32_t)d->pc__crc;
        for (int i = 0; i < 4; i++)
            raw[i] = (uint8_t)(c >> (24 - 8 * i));
        n = 4;
        break;
    }
    case PC_SIGV4_CK_CRC64NVME: {
        uint64_t c = ~d->pc__crc;
        for (int i = 0; i < 8; i++)
            raw[i] = (uint8_t)(c >> (56 - 8 * i));
        n = 8;
        break;
    }
    case PC_SIGV4_CK_SHA1:
    case PC_SIGV4_CK_SHA256: {
        unsigned int l = 0;
        if (EVP_DigestFinal_ex(d->pc__ck, raw, &l) != 1) return false;
        n = l;
        break;
    }
    case PC_SIGV4_CK_NONE:
        return false;
    }
    return pc_b64_encode(raw, n, out, PC_SIGV4_CHECKSUM_B64_MAX + 1) > 0;
}

static bool chunk_sig_ok(pc_sigv4_chunked_t *d, const uint8_t data_hash[32])
{
    /* the second-to-last line is the hash of the (empty) chunk headers */
    char tail[sizeof(PC_SIGV4_EMPTY_SHA256) + 65];
    memcpy(tail, PC_SIGV4_EMPTY_SHA256 "\n", sizeof(PC_SIGV4_EMPTY_SHA256));
    pc__sigv4_hex(data_hash, 32, tail + sizeof(PC_SIGV4_EMPTY_SHA256));
    uint8_t sig[PC_SIGV4_SIG_LEN];
    pc__sigv4_chained(d->pc__key, "AWS4-HMAC-SHA256-PAYLOAD", d->pc__amz_date, d->pc__scope,
                      d->pc__prev_sig, tail, sig);
    if (!pc_ct_equal(sig, d->pc__chunk_sig, PC_SIGV4_SIG_LEN)) return false;
    memcpy(d->pc__prev_sig, sig, PC_SIGV4_SIG_LEN);
    return true;
}

/* "<hex>[;chunk-signature=<sig>]" (CRLF already removed) */
static pc_sigv4_chunked_status_t chunk_header(pc_sigv4_chunked_t *d, const char *s, size_t n)
{
    size_t i = 0;
    uint64_t size = 0;
    while (i < n && i < MAX_SIZE_DIGITS + 1) {
        char c = s[i];
        int h = c >= '0' && c <= '9'                     ? c - '0'
                : (c | 0x20) >= 'a' && (c | 0x20) <= 'f' ? (c | 0x20) - 'a' + 10
                                                         : -1;
        if (h < 0) break;
        size = size << 4 | (uint64_t)h;
        i++;
    }
    if (i == 0 || i > MAX_SIZE_DIGITS) return fail(d, PC_SIGV4_CHUNKED_ERR_FRAMING);
    if (is_signed_kind(d->pc__kind)) {
        size_t el = sizeof(CHUNK_SIG_EXT) - 1;
        if (n - i != el + 64 || memcmp(s + i, CHUNK_SIG_EXT, el) != 0 ||
            !pc__sigv4_unhex(s + i + el, 64, d->pc__chunk_sig, PC_SIGV4_SIG_LEN))
            return fail(d, PC_SIGV4_CHUNKED_ERR_FRAMING);
    } else if (i != n) {
        return fail(d, PC_SIGV4_CHUNKED_ERR_FRAMING);
    }
    if (d->pc__expect_len != UINT64_MAX && size > d->pc__expect_len - d->decoded_bytes)
        return fail(d, PC_SIGV4_CHUNKED_ERR_FRAMING);
    d->pc__remaining = size;
    if (size == 0) {
        if (d->pc__expect_len != UINT64_MAX && d->decoded_bytes != d->pc__expect_len)
            return fail(d, PC_SIGV4_CHUNKED_ERR_FRAMING);
        if (is_signed_kind(d->pc__kind)) {
            uint8_t empty[32];
            pc_sha256("", 0, empty);
            if (!chunk_sig_ok(d, empty)) return fail(d, PC_SIGV4_CHUNKED_ERR_SIGNATURE);
        }
        d->pc__state = CK_TRAILER;
        d->pc__sub = 0;
        return PC_SIGV4_CHUNKED_NEED_MORE;
    }
    if (d->pc__sha && EVP_DigestInit_ex(d->pc__sha, EVP_sha256(), NULL) != 1)
        return fail(d, PC_SIGV4_CHUNKED_ERR_SIGNATURE);
    d->pc__state = CK_DATA;
    return PC_SIGV4_CHUNKED_NEED_MORE;
}

/* pc__sub bits in the trailer section */
enum { TR_CHECKSUM = 1, TR_SIGNATURE = 2, TR_ANY = 4 };

static bool trailer_complete(const pc_sigv4_chunked_t *d)
{
    if (d->pc__announced != PC_SIGV4_CK_NONE && !(d->pc__sub & TR_CHECKSUM)) return false;
    if (d->pc__kind == PC_SIGV4_PAYLOAD_STREAMING_TRAILER && d->pc__announced != PC_SIGV4_CK_NONE &&
        !(d->pc__sub & TR_SIGNATURE))
        return false;
    return true;
}

static pc_sigv4_chunked_status_t finish(pc_sigv4_chunked_t *d)
{
    if (d->pc__announced != PC_SIGV4_CK_NONE) {
        char mine[PC_SIGV4_CHECKSUM_B64_MAX + 1];
        if (!checksum_final(d, mine)) return fail(d, PC_SIGV4_CHUNKED_ERR_CHECKSUM);
        if (strcmp(mine, d->checksum_b64) != 0) return fail(d, PC_SIGV4_CHUNKED_ERR_CHECKSUM);
    }
    d->pc__state = CK_END;
    return PC_SIGV4_CHUNKED_END;
}

/* One trailer line, without its line ending. */
static pc_sigv4_chunked_status_t trailer_line(pc_sigv4_chunked_t *d, const char *s, size_t n)
{
    if (n == 0) {
        if (trailer_complete(d)) return finish(d);
        /* Some clients put an empty line between the last chunk and the trailer. */
        if (!(d->pc__sub & TR_ANY)) return PC_SIGV4_CHUNKED_NEED_MORE;
        return fail(d, PC_SIGV4_CHUNKED_ERR_FRAMING);
    }
    if (d->pc__kind == PC_SIGV4_PAYLOAD_STREAMING) return fail(d, PC_SIGV4_CHUNKED_ERR_FRAMING);
    d->pc__sub |= TR_ANY;
    const char *colon = memchr(s, ':', n);
    if (!colon || colon == s) return fail(d, PC_SIGV4_CHUNKED_ERR_FRAMING);
    const char *v = colon + 1, *e = s + n;
    while (v < e && (*v == ' ' || *v == '\t'))
        v++;
    while (e > v && (e[-1] == ' ' || e[-1] == '\t'))
        e--;
    size_t nl = (size_t)(colon - s), vl = (size_t)(e - v);
    static const char sig_name[] = "x-amz-trailer-signature";
    if (nl == sizeof(sig_name) - 1 && strncasecmp(s, sig_name, nl) == 0) {
        if (d->pc__kind != PC_SIGV4_PAYLOAD_STREAMING_TRAILER || (d->pc__sub & TR_SIGNATURE))
            return fail(d, PC_SIGV4_CHUNKED_ERR_FRAMING);
        uint8_t claimed[PC_SIGV4_SIG_LEN], mine[PC_SIGV4_SIG_LEN], th[32];
        if (!pc__sigv4_unhex(v, vl, claimed, PC_SIGV4_SIG_LEN))
            return fail(d, PC_SIGV4_CHUNKED_ERR_FRAMING);
        /* The signed form of the trailer: "name:value\n" per header, lower-case names. */
        char canon[64 + PC_SIGV4_CHECKSUM_B64_MAX + 2];
        size_t cl = 0;
        if (d->checksum != PC_SIGV4_CK_NONE) {
            const char *hn = pc_sigv4_checksum_header(d->checksum);
            int w = snprintf(canon, sizeof(canon), "%s:%s\n", hn, d->checksum_b64);
            PC_BUG_ON(w < 0 || (size_t)w >= sizeof(canon));
            cl = (size_t)w;
        }
        pc_sha256(canon, cl, th);
        char tail[65];
        pc__sigv4_hex(th, 32, tail);
        pc__sigv4_chained(d->pc__key, "AWS4-HMAC-SHA256-TRAILER", d->pc__amz_date, d->pc__scope,
                          d->pc__prev_sig, tail, mine);
        if (!pc_ct_equal(mine, claimed, PC_SIGV4_SIG_LEN))
            return fail(d, PC_SIGV4_CHUNKED_ERR_SIGNATURE);
        d->pc__sub |= TR_SIGNATURE;
        return PC_SIGV4_CHUNKED_NEED_MORE;
    }
    pc_sigv4_checksum_t ck = checksum_of(s, nl);
    /* Only the announced checksum, once, and never after the signature that covers it. */
    if (ck == PC_SIGV4_CK_NONE || ck != d->pc__announced ||
        (d->pc__sub & (TR_CHECKSUM | TR_SIGNATURE)))
        return fail(d, PC_SIGV4_CHUNKED_ERR_FRAMING);
    if (vl == 0 || vl > PC_SIGV4_CHECKSUM_B64_MAX) return fail(d, PC_SIGV4_CHUNKED_ERR_FRAMING);
    memcpy(d->checksum_b64, v, vl);
    d->checksum_b64[vl] = '\0';
    d->checksum = ck;
    d->pc__sub |= TR_CHECKSUM;
    return PC_SIGV4_CHUNKED_NEED_MORE;
}

pc_sigv4_chunked_status_t pc_sigv4_chunked_feed(pc_sigv4_chunked_t *d, const char *buf, size_t len,
                                                size_t *consumed, pc_http1_span_t *data)
{
    *consumed = 0;
    if (d->pc__state == CK_ERROR) return (pc_sigv4_chunked_status_t)d->pc__line_len;
    if (d->pc__state == CK_END) return PC_SIGV4_CHUNKED_END;
    size_t i = 0;
    for (;;) {
        if (d->pc__state == CK_DATA_DONE) {
            if (d->pc__sha) {
                uint8_t h[32];
                unsigned int hl = 0;
                if (EVP_DigestFinal_ex(d->pc__sha, h, &hl) != 1 || !chunk_sig_ok(d, h)) {
                    *consumed = i;
                    return fail(d, PC_SIGV4_CHUNKED_ERR_SIGNATURE);
                }
            }
            d->pc__state = CK_DATA_CR;
        }
        if (i == len) break;
        char c = buf[i];
        switch (d->pc__state) {
        case CK_DATA: {
            size_t n = len - i < d->pc__remaining ? len - i : (size_t)d->pc__remaining;
            const uint8_t *p = (const uint8_t *)buf + i;
            if (d->pc__sha) EVP_DigestUpdate(d->pc__sha, p, n);
            checksum_update(d, p, n);
            d->pc__remaining -= n;
            d->decoded_bytes += n;
            if (d->pc__remaining == 0) d->pc__state = CK_DATA_DONE;
            *data = (pc_http1_span_t){buf + i, n};
            *consumed = i + n;
            return PC_SIGV4_CHUNKED_DATA;
        }
        case CK_DATA_CR:
            if (c != '\r') return fail(d, PC_SIGV4_CHUNKED_ERR_FRAMING);
            d->pc__state = CK_DATA_LF;
            i++;
            break;
        case CK_DATA_LF:
            if (c != '\n') return fail(d, PC_SIGV4_CHUNKED_ERR_FRAMING);
            d->pc__state = CK_HEADER;
            d->pc__line_len = 0;
            i++;
            break;
        case CK_HEADER:
        case CK_TRAILER: {
            i++;
            if (c != '\n') {
                if (d->pc__line_len == sizeof(d->pc__line))
                    return fail(d, PC_SIGV4_CHUNKED_ERR_FRAMING);
                d->pc__line[d->pc__line_len++] = c;
                break;
            }
            size_t n = d->pc__line_len;
            bool cr = n && d->pc__line[n - 1] == '\r';
            if (cr) n--;
            d->pc__line_len = 0;
            if (memchr(d->pc__line, '\r', n) || memchr(d->pc__line, '\0', n))
                return fail(d, PC_SIGV4_CHUNKED_ERR_FRAMING);
            pc_sigv4_chunked_status_t st;
            if (d->pc__state == CK_HEADER) {
                /* chunk lines are strictly CRLF-terminated */
                st = cr ? chunk_header(d, d->pc__line, n) : fail(d, PC_SIGV4_CHUNKED_ERR_FRAMING);
            } else {
                st = trailer_line(d, d->pc__line, n);
            }
            if (st != PC_SIGV4_CHUNKED_NEED_MORE) {
                *consumed = i;
                return st;
            }
            break;
        }
        default:
            PC_BUG_ON(1);
        }
    }
    *consumed = len;
    return PC_SIGV4_CHUNKED_NEED_MORE;
}
