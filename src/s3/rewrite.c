/*
 * Pure pieces of the upstream re-signing: which client headers go upstream,
 * what is left of a presigned query and of Content-Encoding, and where the
 * resource's endpoint is. See s3_int.h.
 */
#include "s3/s3_int.h"

#include <openssl/crypto.h>

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static bool ieq(const char *a, size_t n, const char *lit)
{
    return strlen(lit) == n && strncasecmp(a, lit, n) == 0;
}

/* Names with their lengths: every header of every request is looked up here. */
typedef struct {
    const char *s;
    size_t n;
} lit_t;
#define LIT(x)                                                                                     \
    {                                                                                              \
        x, sizeof(x) - 1                                                                           \
    }

static bool in_list(const char *name, size_t len, const lit_t *list)
{
    for (size_t i = 0; list[i].s; i++)
        if (list[i].n == len && strncasecmp(name, list[i].s, len) == 0) return true;
    return false;
}

/* Hop-by-hop (RFC 9110 §7.6.1) plus the pre-standard Proxy-Connection. */
static const lit_t hop_by_hop[] = {
    LIT("connection"),
    LIT("keep-alive"),
    LIT("proxy-connection"),
    LIT("te"),
    LIT("trailer"),
    LIT("transfer-encoding"),
    LIT("upgrade"),
    LIT("proxy-authenticate"),
    LIT("proxy-authorization"),
    {NULL, 0},
};

bool pc__s3_drop_request_header(const char *name, size_t len)
{
    static const lit_t ours[] = {
        LIT("host"),
        LIT("authorization"),
        LIT("x-amz-date"),
        LIT("x-amz-security-token"),
        LIT("x-amz-content-sha256"),
        LIT("content-length"),
        LIT("expect"),
        LIT("date"),
        {NULL, 0},
    };
    return in_list(name, len, hop_by_hop) || in_list(name, len, ours);
}

bool pc__s3_drop_response_header(const char *name, size_t len)
{
    return in_list(name, len, hop_by_hop);
}

size_t pc__s3_strip_aws_chunked(const char *value, size_t len, char *out, size_t cap)
{
    size_t o = 0;
    size_t i = 0;
    while (i < len) {
        size_t j = i;
        while (j < len && value[j] != ',')
            j++;
        size_t a = i, b = j;
        while (a < b && (value[a] == ' ' || value[a] == '\t'))
            a++;
        while (b > a && (value[b - 1] == ' ' || value[b - 1] == '\t'))
            b--;
        if (b > a && !ieq(value + a, b - a, "aws-chunked")) {
            size_t need = (o ? 1 : 0) + (b - a);
            if (o + need >= cap) return 0; /* cannot happen with cap > len */
            if (o) out[o++] = ',';
            memcpy(out + o, value + a, b - a);
            o += b - a;
        }
        i = j + 1;
    }
    if (cap) out[o < cap ? o : cap - 1] = 0;
    return o;
}

static bool presign_param(const char *name, size_t n)
{
    static const lit_t names[] = {
        LIT("X-Amz-Algorithm"),      LIT("X-Amz-Credential"),
        LIT("X-Amz-Date"),           LIT("X-Amz-Expires"),
        LIT("X-Amz-SignedHeaders"),  LIT("X-Amz-Signature"),
        LIT("X-Amz-Security-Token"), {NULL, 0},
    };
    /* Exact case, as S3 itself only treats these spellings as authentication. */
    if (n < 10 || memcmp(name, "X-Amz-", 6) != 0) return false;
    for (size_t i = 0; names[i].s; i++)
        if (names[i].n == n && memcmp(names[i].s, name, n) == 0) return true;
    return false;
}

size_t pc__s3_strip_presign_params(const char *query, size_t len, char *out, size_t cap)
{
    size_t o = 0;
    size_t i = 0;
    if (!cap) return 0;
    while (i < len) {
        /* memchr, not a byte loop: a presigned query is ~500 bytes of which we keep few. */
        const char *amp = memchr(query + i, '&', len - i);
        size_t j = amp ? (size_t)(amp - query) : len;
        const char *eqp = memchr(query + i, '=', j - i);
        size_t eq = eqp ? (size_t)(eqp - query) : j;
        if (j > i && !presign_param(query + i, eq - i)) {
            size_t need = (o ? 1 : 0) + (j - i);
            if (o + need >= cap) break;
            if (o) out[o++] = '&';
            memcpy(out + o, query + i, j - i);
            o += j - i;
        }
        i = j + 1;
    }
    out[o] = 0;
    return o;
}

bool pc__s3_endpoint_parse(const char *url, pc__s3_endpoint_t *out)
{
    memset(out, 0, sizeof *out);
    if (!url) return false;
    const char *p;
    if (strncasecmp(url, "http://", 7) == 0) {
        p = url + 7;
        out->port = 80;
    } else if (strncasecmp(url, "https://", 8) == 0) {
        p = url + 8;
        out->https = true;
        out->port = 443;
    } else {
        return false;
    }
    const char *end = p + strcspn(p, "/?#");
    if (*end == '?' || *end == '#' || (*end == '/' && end[1] != 0)) return false;
    if (memchr(p, '@', (size_t)(end - p))) return false;
    const char *host = p, *host_end, *port = NULL;
    if (*p == '[') {
        host = p + 1;
        host_end = memchr(host, ']', (size_t)(end - host));
        if (!host_end) return false;
        if (host_end + 1 < end) {
            if (host_end[1] != ':') return false;
            port = host_end + 2;
        }
    } else {
        host_end = memchr(p, ':', (size_t)(end - p));
        if (host_end)
            port = host_end + 1;
        else
            host_end = end;
    }
    size_t hl = (size_t)(host_end - host);
    if (hl == 0 || hl >= sizeof out->host) return false;
    for (size_t i = 0; i < hl; i++) {
        unsigned char c = (unsigned char)host[i];
        if (!isalnum(c) && c != '.' && c != '-' && c != ':' && c != '_') return false;
    }
    memcpy(out->host, host, hl);
    out->host[hl] = 0;
    if (port) {
        if (port == end) return false;
        long v = 0;
        for (const char *q = port; q < end; q++) {
            if (!isdigit((unsigned char)*q)) return false;
            v = v * 10 + (*q - '0');
            if (v > 65535) return false;
        }
        if (v == 0) return false;
        out->port = (int)v;
    }
    bool deflt = out->port == (out->https ? 443 : 80);
    bool v6 = strchr(out->host, ':') != NULL;
    int n;
    if (deflt)
        n = snprintf(out->host_header, sizeof out->host_header, v6 ? "[%s]" : "%s", out->host);
    else
        n = snprintf(out->host_header, sizeof out->host_header, v6 ? "[%s]:%d" : "%s:%d", out->host,
                     out->port);
    return n > 0 && (size_t)n < sizeof out->host_header;
}

/* ---------- the re-signed upstream head ---------- */

#define UP_HEAD_MAX (PC_HTTP1_MAX_HEAD + 8192)

typedef struct hdr_list {
    pc_http1_header_t h[PC_HTTP1_MAX_HEADERS + 8];
    size_t n;
} hdr_list_t;

static void hdr_add(hdr_list_t *l, const char *name, size_t nl, const char *value, size_t vl)
{
    if (l->n >= PC_ARRAY_LEN(l->h)) return;
    l->h[l->n].name = (pc_http1_span_t){name, nl};
    l->h[l->n].value = (pc_http1_span_t){value, vl};
    l->n++;
}

static bool signs_header(pc_http1_span_t n)
{
    return pc_http1_span_ieq(n, "host") || pc_http1_span_ieq(n, "content-type") ||
           pc_http1_span_ieq(n, "content-md5") || (n.n >= 6 && strncasecmp(n.p, "x-amz-", 6) == 0);
}

static void put_bytes(uint8_t *out, size_t *o, const char *p, size_t n)
{
    memcpy(out + *o, p, n);
    *o += n;
}

size_t pc__s3_u64_dec(uint64_t v, char out[21])
{
    char tmp[20];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    for (size_t i = 0; i < n; i++)
        out[i] = tmp[n - 1 - i];
    out[n] = 0;
    return n;
}

static void put_line(uint8_t *out, size_t *o, pc_http1_span_t name, pc_http1_span_t value)
{
    memcpy(out + *o, name.p, name.n);
    *o += name.n;
    out[(*o)++] = ':';
    out[(*o)++] = ' ';
    memcpy(out + *o, value.p, value.n);
    *o += value.n;
    out[(*o)++] = '\r';
    out[(*o)++] = '\n';
}

uint8_t *pc__s3_upstream_head(const pc__s3_upstream_req_t *in, size_t *len, const char **err_code)
{
    const pc_http1_msg_t *m = in->msg;
    *err_code = "InternalError";
    *len = 0;
    size_t tcap = m->path.n + (in->bucket ? strlen(in->bucket) : 0) + 2;
    /* One allocation for all the scratch: both header lists, the path and the query. */
    struct scratch {
        hdr_list_t all, sign;
        char text[];
    } *sc = malloc(sizeof *sc + tcap + m->query.n + 1);
    char *ce = NULL;
    uint8_t *out = NULL;
    bool ok = false;
    char authz[PC_SIGV4_AUTHZ_MAX + 1];
    authz[0] = 0;
    if (!sc || !in->access_key || !in->secret) goto out;
    char *path = sc->text, *query = sc->text + tcap;
    hdr_list_t *all = &sc->all, *sign = &sc->sign;
    all->n = sign->n = 0;

    /* Path style on the endpoint: a virtual-hosted request's path is the key. */
    size_t pl = 0;
    if (in->bucket) {
        size_t bl = strlen(in->bucket);
        path[pl++] = '/';
        memcpy(path + pl, in->bucket, bl);
        pl += bl;
    }
    memcpy(path + pl, m->path.p, m->path.n);
    pl += m->path.n;
    path[pl] = 0;
    size_t ql = m->has_query
                    ? pc__s3_strip_presign_params(m->query.p, m->query.n, query, m->query.n + 1)
                    : 0;
    query[ql] = 0;

    char clen[24] = "";
    if (in->framing == PC__S3_FRAME_LENGTH) pc__s3_u64_dec(in->content_length, clen);
    hdr_add(all, "Host", 4, in->ep->host_header, strlen(in->ep->host_header));
    hdr_add(all, "x-amz-date", 10, in->amz_date, strlen(in->amz_date));
    hdr_add(all, "x-amz-content-sha256", 20, in->payload_hash, strlen(in->payload_hash));
    for (size_t i = 0; i < m->nheaders; i++) {
        const pc_http1_header_t *h = &m->headers[i];
        if (pc__s3_drop_request_header(h->name.p, h->name.n)) continue;
        if (in->decoded_aws_chunked) {
            if (pc_http1_span_ieq(h->name, "x-amz-decoded-content-length") ||
                pc_http1_span_ieq(h->name, "x-amz-trailer") ||
                pc_http1_span_ieq(h->name, "x-amz-sdk-checksum-algorithm"))
                continue;
            if (pc_http1_span_ieq(h->name, "content-encoding") && !ce) {
                ce = malloc(h->value.n + 1);
                if (!ce) goto out;
                size_t cl = pc__s3_strip_aws_chunked(h->value.p, h->value.n, ce, h->value.n + 1);
                if (cl) hdr_add(all, h->name.p, h->name.n, ce, cl);
                continue;
            }
        }
        hdr_add(all, h->name.p, h->name.n, h->value.p, h->value.n);
    }
    for (size_t i = 0; i < all->n; i++)
        if (signs_header(all->h[i].name)) sign->h[sign->n++] = all->h[i];

    char method[32];
    size_t ml = m->method_name.n < sizeof method - 1 ? m->method_name.n : sizeof method - 1;
    memcpy(method, m->method_name.p, ml);
    method[ml] = 0;
    pc_sigv4_sign_in_t si = {
        .method = method,
        .path = {path, pl},
        .query = {query, ql},
        .headers = sign->h,
        .nheaders = sign->n,
        .payload_hash = in->payload_hash,
        .access_key = in->access_key,
        .secret = in->secret,
        .region = in->region,
        .service = "s3",
        .amz_date = in->amz_date,
    };
    if (!pc_sigv4_sign(&si, in->cache, authz, sizeof authz, NULL)) goto out;

    /* Exactly what is needed: the request line and fixed lines take < 128 + the rest. */
    size_t al = strlen(authz), cl = strlen(clen);
    size_t cap = ml + pl + ql + al + cl + 160;
    for (size_t i = 0; i < all->n; i++)
        cap += all->h[i].name.n + all->h[i].value.n + 4;
    *err_code = "RequestHeaderSectionTooLarge";
    if (cap > UP_HEAD_MAX) goto out;
    *err_code = "InternalError";
    out = malloc(cap);
    if (!out) goto out;
    /* cap covers every byte below: the fixed texts are < 160 together. */
    size_t o = 0;
    put_bytes(out, &o, method, ml);
    put_bytes(out, &o, " ", 1);
    put_bytes(out, &o, path, pl);
    if (ql) {
        put_bytes(out, &o, "?", 1);
        put_bytes(out, &o, query, ql);
    }
    put_bytes(out, &o, " HTTP/1.1\r\n", 11);
    for (size_t i = 0; i < all->n; i++)
        put_line(out, &o, all->h[i].name, all->h[i].value);
    put_line(out, &o, (pc_http1_span_t){"Authorization", 13}, (pc_http1_span_t){authz, al});
    if (cl) put_line(out, &o, (pc_http1_span_t){"Content-Length", 14}, (pc_http1_span_t){clen, cl});
    if (in->framing == PC__S3_FRAME_CHUNKED)
        put_line(out, &o, (pc_http1_span_t){"Transfer-Encoding", 17},
                 (pc_http1_span_t){"chunked", 7});
    put_bytes(out, &o, "\r\n", 2);
    PC_BUG_ON(o > cap);
    *len = o;
    *err_code = NULL;
    ok = true;

out:
    OPENSSL_cleanse(authz, strlen(authz)); /* the part written; authz[0] is set up front */
    free(ce);
    free(sc);
    if (ok) return out;
    free(out);
    return NULL;
}
