/* OPA's providers.aws.sign_req over the one SigV4 implementation (s3/sigv4.c). */
#include "policy/lib/sigv4.h"

#include "s3/sigv4.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

void pc_plib_sigv4_free(pc_plib_sigv4_out_t *o)
{
    if (!o) return;
    free(o->authorization);
    free(o->host);
    free(o->amz_date);
    free(o->content_sha256);
    free(o->security_token);
    memset(o, 0, sizeof(*o));
}

bool pc_plib_sigv4_sign(const pc_plib_sigv4_in_t *in, pc_plib_sigv4_out_t *out)
{
    memset(out, 0, sizeof(*out));
    if (in->nhdrs + 4 > PC_SIGV4_MAX_SIGNED_HEADERS) return false;
    char body_hash[65], iso[PC_SIGV4_AMZ_DATE_LEN + 1];
    if (in->disable_payload_signing)
        memcpy(body_hash, PC_SIGV4_UNSIGNED_PAYLOAD, sizeof(PC_SIGV4_UNSIGNED_PAYLOAD));
    else
        pc_sigv4_sha256_hex(in->body ? in->body : "", in->body_len, body_hash);
    int64_t secs = in->time_ns / 1000000000 - (in->time_ns % 1000000000 < 0 ? 1 : 0);
    pc_sigv4_amz_date(secs, iso);
    out->host = strdup(in->host ? in->host : "");
    out->amz_date = strdup(iso);
    bool s3 = !strcmp(in->service, "s3") || !strcmp(in->service, "glacier");
    if (s3) out->content_sha256 = strdup(body_hash);
    if (in->session_token && *in->session_token) out->security_token = strdup(in->session_token);
    if (!out->host || !out->amz_date || (s3 && !out->content_sha256) ||
        (in->session_token && *in->session_token && !out->security_token))
        goto fail;
    /* Headers to sign: OPA's own first, then the request's (which win over them). */
    pc_http1_header_t h[PC_SIGV4_MAX_SIGNED_HEADERS];
    size_t nh = 0;
    const char *own_names[4] = {"host", "x-amz-date", "x-amz-content-sha256",
                                "x-amz-security-token"};
    const char *own_vals[4] = {out->host, out->amz_date, out->content_sha256, out->security_token};
    for (int i = 0; i < 4; i++)
        if (own_vals[i])
            h[nh++] = (pc_http1_header_t){{own_names[i], strlen(own_names[i])},
                                          {own_vals[i], strlen(own_vals[i])}};
    for (size_t i = 0; i < in->nhdrs; i++) {
        pc_http1_span_t name = {in->hdr_names[i], strlen(in->hdr_names[i])};
        if (pc_http1_span_ieq(name, "authorization") || pc_http1_span_ieq(name, "user-agent") ||
            pc_http1_span_ieq(name, "x-amzn-trace-id"))
            continue;
        const char *val = in->hdr_values[i] ? in->hdr_values[i] : "";
        size_t j = 0;
        while (j < nh && !(h[j].name.n == name.n && !strncasecmp(h[j].name.p, name.p, name.n)))
            j++;
        h[j] = (pc_http1_header_t){name, {val, strlen(val)}};
        if (j == nh) nh++;
    }
    const char *path = in->escaped_path ? in->escaped_path : "";
    const char *query = in->raw_query ? in->raw_query : "";
    pc_sigv4_sign_in_t si = {
        .method = in->method,
        .path = {path, strlen(path)},
        .query = {query, strlen(query)},
        .headers = h,
        .nheaders = nh,
        .payload_hash = body_hash,
        .access_key = in->access_key,
        .secret = in->secret_key,
        .region = in->region,
        .service = in->service,
        .amz_date = iso,
        .verbatim = true, /* OPA signs the URL's escaped path and raw query as they are */
    };
    char authz[PC_SIGV4_AUTHZ_MAX];
    if (!pc_sigv4_sign(&si, NULL, authz, sizeof(authz), NULL)) goto fail;
    out->authorization = strdup(authz);
    if (!out->authorization) goto fail;
    return true;
fail:
    pc_plib_sigv4_free(out);
    return false;
}
