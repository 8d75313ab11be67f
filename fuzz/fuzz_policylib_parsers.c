/* Fuzz the byte parsers behind the long-tail built-ins: units, CIDRs, base64,
 * hex, URL queries, semver, uuid, Go sprintf, globs, regexes, JWK/PEM keys and YAML.
 * The first byte picks the parser; the rest is its input. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "policy/lib/encoding.h"
#include "policy/lib/gofmt.h"
#include "policy/lib/gourl.h"
#include "policy/lib/graphql.h"
#include "policy/lib/jose.h"
#include "policy/lib/net.h"
#include "policy/lib/regex.h"
#include "policy/lib/semver.h"
#include "policy/lib/units.h"
#include "policy/lib/uuid.h"
#include "policy/lib/yamlconv.h"

static bool keep(void *ud, const char *s, size_t n)
{
    (void)s;
    (void)n;
    return ++*(int *)ud < 64;
}

static void on_pair(void *ud, const char *k, size_t kn, const char *v, size_t vn)
{
    (void)ud, (void)k, (void)kn, (void)v, (void)vn;
}

static bool on_match(void *ud, const size_t *ov, size_t np)
{
    (void)ov, (void)np;
    return ++*(int *)ud < 64;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    const char *s = (const char *)data + 1;
    size_t n = size - 1;
    char err[512];
    size_t ol;
    char *o = NULL;
    int cnt = 0;
    switch (data[0] % 17) {
    case 0:
        free(pc_plib_units_parse(s, n, err, sizeof(err)));
        o = pc_plib_units_parse_bytes(s, n, err, sizeof(err));
        break;
    case 1: {
        const char *slash = memchr(s, ' ', n);
        size_t an = slash ? (size_t)(slash - s) : n;
        (void)pc_plib_cidr_contains(s, an, slash ? slash + 1 : s, slash ? n - an - 1 : n, err, sizeof(err));
        (void)pc_plib_cidr_intersects(s, an, slash ? slash + 1 : s, slash ? n - an - 1 : n, err, sizeof(err));
        (void)pc_plib_cidr_expand(s, n, keep, &cnt, err, sizeof(err));
        break;
    }
    case 2: {
        const char *items[8];
        size_t lens[8], k = 0, st = 0;
        for (size_t i = 0; i <= n && k < 8; i++)
            if (i == n || s[i] == ',') {
                items[k] = s + st;
                lens[k++] = i - st;
                st = i + 1;
            }
        (void)pc_plib_cidr_merge(items, lens, k, keep, &cnt, err, sizeof(err));
        break;
    }
    case 3:
        free(pc_plib_base64_decode(PC_PLIB_B64_STD, s, n, &ol, err, sizeof(err)));
        free(pc_plib_base64url_decode_lenient(s, n, &ol, err, sizeof(err)));
        o = pc_plib_hex_decode(s, n, &ol, err, sizeof(err));
        break;
    case 4:
        free(pc_plib_query_unescape(s, n, &ol, err, sizeof(err)));
        (void)pc_plib_parse_query(s, n, on_pair, NULL, err, sizeof(err));
        break;
    case 5: {
        pc_plib_uuid_info_t u;
        (void)pc_plib_uuid_parse(s, n, &u);
        if (pc_plib_semver_valid(s, n)) (void)pc_plib_semver_compare(s, n, "1.0.0-rc.1", 10);
        break;
    }
    case 6: {
        pc_plib_fmt_arg_t args[4] = {
            {.kind = PC_PLIB_FMT_STR, .s = "x", .len = 1},
            {.kind = PC_PLIB_FMT_INT, .i = -42},
            {.kind = PC_PLIB_FMT_FLOAT, .f = 3.25},
            {.kind = PC_PLIB_FMT_BIGINT, .s = "-123456789012345678901234567890", .len = 31},
        };
        if (n < 4096) o = pc_plib_sprintf(s, n, args, 4, &ol);
        break;
    }
    case 7:
        free(pc_plib_format_int(s, n, 16));
        o = pc_plib_num_trunc(s, n, 4096);
        break;
    case 8: {
        const uint32_t d[] = {'.', '/'};
        const char *sp = memchr(s, ' ', n);
        size_t pn = sp ? (size_t)(sp - s) : n;
        if (pn < 1024) (void)pc_plib_glob_match(s, pn, d, size % 3, sp ? sp + 1 : "", sp ? n - pn - 1 : 0, err, sizeof(err));
        break;
    }
    case 9: {
        const char *sp = memchr(s, '\n', n);
        size_t pn = sp ? (size_t)(sp - s) : n;
        if (pn > 512) break;
        pc_plib_re_t *re = pc_plib_re_get(s, pn, err, sizeof(err));
        if (re) {
            const char *subj = sp ? sp + 1 : "";
            size_t sn = sp ? n - pn - 1 : 0;
            (void)pc_plib_re_find_all(re, subj, sn, -1, on_match, &cnt);
            free(pc_plib_re_replace_all(re, subj, sn, "<$1>", 4, &ol));
            pc_plib_re_release(re);
        }
        break;
    }
    case 10: {
        pc_plib_keyset_t ks;
        if (pc_plib_keyset_parse(s, n, &ks, err, sizeof(err))) pc_plib_keyset_free(&ks);
        break;
    }
    case 12: {
        char *j = pc_plib_yaml_to_json(s, n, &ol, err, sizeof(err));
        if (j) o = pc_plib_json_to_yaml(j, ol, &ol, err, sizeof(err));
        free(j);
        break;
    }
    case 14: {
        pc_plib_url_t u;
        if (pc_plib_url_parse(s, n, &u, err, sizeof(err))) pc_plib_url_free(&u);
        break;
    }
    case 15: {
        char *q = pc__graphql_parse_query_ex(s, n, true, err, sizeof(err));
        if (q) {
            static const char schema[] = "{\"Definitions\":[{\"Kind\":\"OBJECT\",\"Name\":\"Query\",\"Fields\":"
                                         "[{\"Name\":\"a\",\"Type\":{\"NamedType\":\"Int\",\"NonNull\":false}}]}]}";
            (void)pc_plib_graphql_validate(q, strlen(q), schema, sizeof(schema) - 1, err, sizeof(err));
        }
        free(q);
        break;
    }
    case 16:
        (void)pc_plib_graphql_schema_valid(s, n, err, sizeof(err));
        break;
    case 13:
        (void)pc_plib_globs_intersect(s, n / 2, s + n / 2, n - n / 2, err, sizeof(err));
        break;
    case 11: {
        const char *t = memchr(s, '|', n);
        if (t && n < 1024)
            (void)pc_plib_re_template_match(s, (size_t)(t - s), t + 1, n - (size_t)(t - s) - 1, '{', '}', err, sizeof(err));
        break;
    }
    }
    free(o);
    return 0;
}
