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

static bool in_list(const char *name, size_t len, const char *const *list)
{
    for (size_t i = 0; list[i]; i++)
        if (ieq(name, len, list[i])) return true;
    return false;
}

/* Hop-by-hop (RFC 9110 §7.6.1) plus the pre-standard Proxy-Connection. */
static const char *const hop_by_hop[] = {
    "connection", "keep-alive",         "proxy-connection",    "te", "trailer", "transfer-encoding",
    "upgrade",    "proxy-authenticate", "proxy-authorization", NULL,
};

bool pc__s3_drop_request_header(const char *name, size_t len)
{
    static const char *const ours[] = {
        "host",
        "authorization",
        "x-amz-date",
        "x-amz-security-token",
        "x-amz-content-sha256",
        "content-length",
        "expect",
        "date",
        NULL,
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
    static const char *const names[] = {
        "X-Amz-Algorithm",     "X-Amz-Credential", "X-Amz-Date",           "X-Amz-Expires",
        "X-Amz-SignedHeaders", "X-Amz-Signature",  "X-Amz-Security-Token", NULL,
    };
    /* Exact case, as S3 itself only treats these spellings as authentication. */
    for (size_t i = 0; names[i]; i++)
        if (strlen(names[i]) == n && memcmp(names[i], name, n) == 0) return true;
    return false;
}

size_t pc__s3_strip_presign_params(const char *query, size_t len, char *out, size_t cap)
{
    size_t o = 0;
    size_t i = 0;
    if (!cap) return 0;
    while (i < len) {
        size_t j = i;
        while (j < len && query[j] != '&')
            j++;
        size_t eq = i;
        while (eq < j && query[eq] != '=')
            eq++;
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
    char *path = malloc(tcap);
    char *query = malloc(m->query.n + 1);
    char *ce = NULL;
    uint8_t *out = NULL;
    hdr_list_t *all = malloc(sizeof *all);
    hdr_list_t *sign = malloc(sizeof *sign);
    bool ok = false;
    char authz[PC_SIGV4_AUTHZ_MAX + 1];
    authz[0] = 0;
    if (!path || !query || !all || !sign || !in->access_key || !in->secret) goto out;
    all->n = sign->n = 0;

    /* Path style on the endpoint: a virtual-hosted request's path is the key. */
    size_t pl = (size_t)snprintf(path, tcap, "%s%s%.*s", in->bucket ? "/" : "",
                                 in->bucket ? in->bucket : "", (int)m->path.n, m->path.p);
    size_t ql = m->has_query
                    ? pc__s3_strip_presign_params(m->query.p, m->query.n, query, m->query.n + 1)
                    : 0;
    query[ql] = 0;

    char clen[24] = "";
    if (in->framing == PC__S3_FRAME_LENGTH)
        snprintf(clen, sizeof clen, "%llu", (unsigned long long)in->content_length);
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
    snprintf(method, sizeof method, "%.*s", (int)m->method_name.n, m->method_name.p);
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
    size_t cap = strlen(method) + pl + ql + strlen(authz) + 160;
    for (size_t i = 0; i < all->n; i++)
        cap += all->h[i].name.n + all->h[i].value.n + 4;
    *err_code = "RequestHeaderSectionTooLarge";
    if (cap > UP_HEAD_MAX) goto out;
    *err_code = "InternalError";
    out = malloc(cap);
    if (!out) goto out;
    int n =
        snprintf((char *)out, cap, "%s %s%s%s HTTP/1.1\r\n", method, path, ql ? "?" : "", query);
    if (n < 0 || (size_t)n >= cap) goto out;
    size_t o = (size_t)n;
    for (size_t i = 0; i < all->n; i++)
        put_line(out, &o, all->h[i].name, all->h[i].value);
    n = snprintf((char *)out + o, cap - o, "Authorization: %s\r\n%s%s%s%s\r\n", authz,
                 clen[0] ? "Content-Length: " : "", clen, clen[0] ? "\r\n" : "",
                 in->framing == PC__S3_FRAME_CHUNKED ? "Transfer-Encoding: chunked\r\n" : "");
    if (n < 0 || (size_t)n >= cap - o) goto out;
    *len = o + (size_t)n;
    *err_code = NULL;
    ok = true;

out:
    OPENSSL_cleanse(authz, sizeof authz);
    free(sign);
    free(all);
    free(ce);
    free(query);
    free(path);
    if (ok) return out;
    free(out);
    return NULL;
}
