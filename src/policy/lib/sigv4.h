/*
 * AWS Signature Version 4 as OPA's providers.aws.sign_req computes it.
 * The caller passes the request pieces; the result is the Authorization
 * header and the x-amz-* / host headers to set (malloc'd strings).
 */
#ifndef PC_POLICY_LIB_SIGV4_H
#define PC_POLICY_LIB_SIGV4_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct pc_plib_sigv4_in {
    const char *const *hdr_names; /* request headers (any case) */
    const char *const *hdr_values;
    size_t nhdrs;
    const char *method;
    const char *host;         /* URL.Host */
    const char *escaped_path; /* URL.EscapedPath() */
    const char *raw_query;
    const void *body;
    size_t body_len;
    const char *service, *access_key, *secret_key, *region, *session_token;
    int64_t time_ns;
    bool disable_payload_signing;
} pc_plib_sigv4_in_t;

typedef struct pc_plib_sigv4_out {
    char *authorization;
    /* headers OPA adds: host, x-amz-date, x-amz-content-sha256 (s3/glacier),
     * x-amz-security-token (with a session token); NULL when absent */
    char *host, *amz_date, *content_sha256, *security_token;
} pc_plib_sigv4_out_t;

bool pc_plib_sigv4_sign(const pc_plib_sigv4_in_t *in, pc_plib_sigv4_out_t *out);
void pc_plib_sigv4_free(pc_plib_sigv4_out_t *out);

#endif
