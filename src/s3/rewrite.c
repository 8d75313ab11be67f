/*
 * Pure pieces of the upstream re-signing: which client headers go upstream,
 * what is left of a presigned query and of Content-Encoding, and where the
 * resource's endpoint is. See s3_int.h.
 */
#include "s3/s3_int.h"

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
    "connection",          "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding",
    "upgrade",             "proxy-authenticate", "proxy-authorization", NULL,
};

bool pc__s3_drop_request_header(const char *name, size_t len)
{
    static const char *const ours[] = {
        "host",           "authorization",        "x-amz-date",
        "x-amz-security-token", "x-amz-content-sha256", "content-length",
        "expect",         "date",                 NULL,
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
        n = snprintf(out->host_header, sizeof out->host_header, v6 ? "[%s]:%d" : "%s:%d",
                     out->host, out->port);
    return n > 0 && (size_t)n < sizeof out->host_header;
}
