/* SigV4: canonical request -> string to sign -> derived key -> signature. */
#include "policy/lib/sigv4.h"

#include "policy/lib/encoding.h"
#include "policy/lib/jose.h"
#include "policy/lib/sbuf.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct {
    char *name; /* lower case */
    const char *value;
} hdr_t;

static int hdr_cmp(const void *a, const void *b)
{
    return strcmp(((const hdr_t *)a)->name, ((const hdr_t *)b)->name);
}

static char *hex_sha256(const void *d, size_t n)
{
    unsigned char md[PC_PLIB_MAX_DIGEST];
    size_t ml, hl;
    if (!pc_plib_digest("sha256", d, n, md, &ml)) return NULL;
    return pc_plib_hex_encode(md, ml, &hl);
}

static bool hmac256(const void *key, size_t kn, const char *msg, unsigned char out[32])
{
    size_t ml;
    return pc_plib_hmac("sha256", key, kn, msg, strlen(msg), out, &ml);
}

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
    bool ok = false;
    char *body_hash = in->disable_payload_signing ? strdup("UNSIGNED-PAYLOAD")
                                                  : hex_sha256(in->body ? in->body : "", in->body_len);
    hdr_t *h = calloc(in->nhdrs + 4, sizeof(hdr_t));
    pc__sbuf_t canon = {0}, list = {0}, sts = {0}, auth = {0};
    char *canon_hash = NULL;
    if (!body_hash || !h) goto out;
    time_t t = (time_t)(in->time_ns / 1000000000 - (in->time_ns % 1000000000 < 0 ? 1 : 0));
    struct tm tm;
    gmtime_r(&t, &tm);
    char date[16], iso[32];
    strftime(date, sizeof(date), "%Y%m%d", &tm);
    strftime(iso, sizeof(iso), "%Y%m%dT%H%M%SZ", &tm);
    out->host = strdup(in->host ? in->host : "");
    out->amz_date = strdup(iso);
    bool s3 = !strcmp(in->service, "s3") || !strcmp(in->service, "glacier");
    if (s3) out->content_sha256 = strdup(body_hash);
    if (in->session_token && *in->session_token) out->security_token = strdup(in->session_token);
    /* headers to sign: OPA's own first, then the request's (which win) */
    size_t nh = 0;
    const char *own_names[4] = {"host", "x-amz-date", "x-amz-content-sha256", "x-amz-security-token"};
    const char *own_vals[4] = {out->host, out->amz_date, out->content_sha256, out->security_token};
    for (int i = 0; i < 4; i++)
        if (own_vals[i]) h[nh++] = (hdr_t){strdup(own_names[i]), own_vals[i]};
    for (size_t i = 0; i < in->nhdrs; i++) {
        char *lc = strdup(in->hdr_names[i]);
        if (!lc) goto out;
        for (char *p = lc; *p; p++) *p = (char)tolower((unsigned char)*p);
        if (!strcmp(lc, "authorization") || !strcmp(lc, "user-agent") || !strcmp(lc, "x-amzn-trace-id")) {
            free(lc);
            continue;
        }
        size_t j = 0;
        while (j < nh && strcmp(h[j].name, lc) != 0) j++;
        if (j < nh) {
            free(h[j].name);
        } else {
            nh++;
        }
        h[j] = (hdr_t){lc, in->hdr_values[i]};
    }
    qsort(h, nh, sizeof(hdr_t), hdr_cmp);
    pc__sbuf_adds(&canon, in->method);
    pc__sbuf_addc(&canon, '\n');
    pc__sbuf_adds(&canon, in->escaped_path ? in->escaped_path : "");
    pc__sbuf_addc(&canon, '\n');
    pc__sbuf_adds(&canon, in->raw_query ? in->raw_query : "");
    pc__sbuf_addc(&canon, '\n');
    for (size_t i = 0; i < nh; i++) {
        pc__sbuf_adds(&canon, h[i].name);
        pc__sbuf_addc(&canon, ':');
        pc__sbuf_adds(&canon, h[i].value ? h[i].value : "");
        pc__sbuf_addc(&canon, '\n');
        if (i) pc__sbuf_addc(&list, ';');
        pc__sbuf_adds(&list, h[i].name);
    }
    pc__sbuf_addc(&canon, '\n');
    pc__sbuf_add(&canon, list.data ? list.data : "", list.len);
    pc__sbuf_addc(&canon, '\n');
    pc__sbuf_adds(&canon, body_hash);
    if (canon.oom || list.oom) goto out;
    canon_hash = hex_sha256(canon.data, canon.len);
    if (!canon_hash) goto out;
    pc__sbuf_adds(&sts, "AWS4-HMAC-SHA256\n");
    pc__sbuf_adds(&sts, iso);
    pc__sbuf_addc(&sts, '\n');
    char scope[512];
    snprintf(scope, sizeof(scope), "%s/%s/%s/aws4_request", date, in->region, in->service);
    pc__sbuf_adds(&sts, scope);
    pc__sbuf_addc(&sts, '\n');
    pc__sbuf_adds(&sts, canon_hash);
    if (sts.oom) goto out;
    /* signing key: HMAC chain over date, region, service, "aws4_request" */
    pc__sbuf_t k0 = {0};
    pc__sbuf_adds(&k0, "AWS4");
    pc__sbuf_adds(&k0, in->secret_key);
    unsigned char k1[32], k2[32], k3[32], k4[32], sig[32];
    bool hm = !k0.oom && hmac256(k0.data, k0.len, date, k1) && hmac256(k1, 32, in->region, k2) &&
              hmac256(k2, 32, in->service, k3) && hmac256(k3, 32, "aws4_request", k4) &&
              hmac256(k4, 32, sts.data, sig);
    memset(k1, 0, sizeof(k1));
    pc__sbuf_free(&k0);
    if (!hm) goto out;
    size_t hl;
    char *sighex = pc_plib_hex_encode(sig, 32, &hl);
    if (!sighex) goto out;
    pc__sbuf_adds(&auth, "AWS4-HMAC-SHA256 Credential=");
    pc__sbuf_adds(&auth, in->access_key);
    pc__sbuf_addc(&auth, '/');
    pc__sbuf_adds(&auth, scope);
    pc__sbuf_adds(&auth, ",SignedHeaders=");
    pc__sbuf_add(&auth, list.data ? list.data : "", list.len);
    pc__sbuf_adds(&auth, ",Signature=");
    pc__sbuf_adds(&auth, sighex);
    free(sighex);
    out->authorization = pc__sbuf_take(&auth, NULL);
    ok = out->authorization != NULL;
out:
    if (h)
        for (size_t i = 0; i < in->nhdrs + 4; i++) free(h[i].name);
    free(h);
    free(body_hash);
    free(canon_hash);
    pc__sbuf_free(&canon);
    pc__sbuf_free(&list);
    pc__sbuf_free(&sts);
    pc__sbuf_free(&auth);
    if (!ok) pc_plib_sigv4_free(out);
    return ok;
}
