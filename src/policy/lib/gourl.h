/*
 * Go's net/url.Parse for OPA's uri.parse / uri.is_valid: same acceptance
 * rules and error texts ("parse \"x\": net/url: invalid userinfo").
 * Component strings are malloc'd (NULL when empty); free with
 * pc_plib_url_free().
 */
#ifndef PC_POLICY_LIB_GOURL_H
#define PC_POLICY_LIB_GOURL_H

#include <stdbool.h>
#include <stddef.h>

typedef struct pc_plib_url {
    char *scheme;
    char *opaque;
    char *host;     /* authority host as written, with port (URL.Host) */
    char *hostname; /* Host without port and IPv6 brackets */
    char *port;
    char *path;     /* decoded */
    char *raw_path; /* the original encoding when it differs from the default one */
    char *escaped_path; /* URL.EscapedPath() */
    char *raw_query;
    char *fragment; /* decoded */
    bool has_user;
} pc_plib_url_t;

bool pc_plib_url_parse(const char *s, size_t n, pc_plib_url_t *out, char *err, size_t errlen);
void pc_plib_url_free(pc_plib_url_t *u);

#endif
