/*
 * semver.*, uuid.*, uri.*, rand.intn, providers.aws.sign_req and json.patch
 * (RFC 6902 over Rego values, sets included).
 */
#include "policy/builtins_ext.h"

#include "policy/lib/gourl.h"
#include "policy/lib/graphql.h"
#include "policy/lib/jose.h"
#include "policy/lib/semver.h"
#include "policy/lib/sigv4.h"
#include "policy/lib/uuid.h"

#include <openssl/rand.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define A pc_builtin_arena(ctx)

/* ---- semver ---------------------------------------------------------------- */

static bool sv_is_valid(EXT_ARGS)
{
    (void)n;
    bool ok = a[0]->kind == PC_STRING && pc_plib_semver_valid(a[0]->u.s, a[0]->len);
    return pc__ext_ret(ctx, out, pc_value_bool(ok));
}

static bool sv_compare(EXT_ARGS)
{
    (void)n;
    const char *x, *y;
    size_t xl, yl;
    if (!pc_arg_string(ctx, a, 0, &x, &xl) || !pc_arg_string(ctx, a, 1, &y, &yl)) return false;
    if (!pc_plib_semver_valid(x, xl))
        return pc_builtin_error(ctx, "operand 1: string \"%.*s\" is not a valid SemVer", (int)xl, x);
    if (!pc_plib_semver_valid(y, yl))
        return pc_builtin_error(ctx, "operand 2: string \"%.*s\" is not a valid SemVer", (int)yl, y);
    return pc__ext_ret(ctx, out, pc_value_int(A, pc_plib_semver_compare(x, xl, y, yl)));
}

/* ---- uuid ------------------------------------------------------------------- */

static bool u_parse(EXT_ARGS)
{
    (void)n;
    const char *s;
    size_t sl;
    if (!pc_arg_string(ctx, a, 0, &s, &sl)) return false;
    pc_plib_uuid_info_t u;
    if (!pc_plib_uuid_parse(s, sl, &u)) return false; /* undefined, like OPA */
    pc_obuf ob;
    pc_obuf_init(&ob, A);
    pc_obuf_put_str(&ob, "version", pc_value_int(A, u.version));
    pc_obuf_put_str(&ob, "variant", pc_value_cstring(A, u.variant));
    if (u.has_time) {
        pc_obuf_put_str(&ob, "time", pc_value_int(A, u.time_ns));
        pc_obuf_put_str(&ob, "nodeid", pc_value_cstring(A, u.nodeid));
        pc_obuf_put_str(&ob, "macvariables", pc_value_cstring(A, u.macvariables));
        pc_obuf_put_str(&ob, "clocksequence", pc_value_int(A, u.clock_sequence));
    }
    if (u.has_domain) {
        pc_obuf_put_str(&ob, "id", pc_value_int(A, u.id));
        pc_obuf_put_str(&ob, "domain", pc_value_cstring(A, u.domain));
    }
    return pc__ext_ret(ctx, out, pc_obuf_object(&ob));
}

static unsigned char uuid_secret[32];
static pthread_once_t uuid_once = PTHREAD_ONCE_INIT;

static void uuid_secret_init(void)
{
    if (RAND_bytes(uuid_secret, sizeof(uuid_secret)) != 1) {
        /* no entropy source: fall back to the clock; uniqueness, not secrecy, is wanted */
        uint64_t t = (uint64_t)pc_value_hash(pc_value_null()) ^ (uint64_t)(uintptr_t)&uuid_secret;
        memcpy(uuid_secret, &t, sizeof(t));
    }
}

/* uuid.rfc4122(k): random, yet the same for the same key within one
 * evaluation (OPA caches per query): derived from a process secret, the
 * evaluation's fixed clock and the key. */
static bool u_rfc4122(EXT_ARGS)
{
    (void)n;
    pthread_once(&uuid_once, uuid_secret_init);
    pc_str s = {0};
    pc_value_to_json(&s, a[0]);
    int64_t now = pc_builtin_now_ns(ctx);
    pc_str_append(&s, (const char *)&now, sizeof(now));
    unsigned char mac[PC_PLIB_MAX_DIGEST];
    size_t ml;
    bool ok = pc_plib_hmac("sha256", uuid_secret, sizeof(uuid_secret), s.p ? s.p : "", s.len, mac, &ml);
    pc_str_free(&s);
    if (!ok) return pc_builtin_error(ctx, "cannot generate a UUID");
    char buf[37];
    pc_plib_uuid_v4_format(mac, buf);
    return pc__ext_ret(ctx, out, pc_value_string(A, buf, 36));
}

/* rand.intn(str, n): random, yet fixed for the same arguments within one
 * evaluation (OPA caches per query), derived like uuid.rfc4122 */
static bool r_intn(EXT_ARGS)
{
    (void)n;
    const char *s;
    size_t sl;
    int64_t lim;
    if (!pc_arg_string(ctx, a, 0, &s, &sl) || !pc_arg_int(ctx, a, 1, &lim)) return false;
    if (lim == 0) return pc__ext_ret(ctx, out, pc_value_int(A, 0));
    if (lim < 0) lim = -lim;
    pthread_once(&uuid_once, uuid_secret_init);
    pc_str m = {0};
    int64_t now = pc_builtin_now_ns(ctx);
    pc_str_append(&m, "rand.intn", 9);
    pc_str_append(&m, (const char *)&now, sizeof(now));
    pc_str_append(&m, (const char *)&lim, sizeof(lim));
    pc_str_append(&m, s, sl);
    unsigned char mac[PC_PLIB_MAX_DIGEST];
    size_t ml;
    bool ok = pc_plib_hmac("sha256", uuid_secret, sizeof(uuid_secret), m.p, m.len, mac, &ml);
    pc_str_free(&m);
    if (!ok) return pc_builtin_error(ctx, "cannot generate a random number");
    uint64_t v;
    memcpy(&v, mac, sizeof(v));
    return pc__ext_ret(ctx, out, pc_value_int(A, (int64_t)(v % (uint64_t)lim)));
}

/* ---- uri -------------------------------------------------------------------------- */

static bool uri_parse(EXT_ARGS)
{
    (void)n;
    const char *s;
    size_t sl;
    if (!pc_arg_string(ctx, a, 0, &s, &sl)) return false;
    pc_plib_url_t u;
    char err[600];
    if (!pc_plib_url_parse(s, sl, &u, err, sizeof(err))) return pc__ext_err(ctx, err);
    pc_obuf ob;
    pc_obuf_init(&ob, A);
    const struct {
        const char *k;
        const char *v;
    } f[] = {{"scheme", u.scheme},       {"hostname", u.hostname},
             {"port", u.port},           {"path", u.path},
             {"raw_path", u.raw_path ? u.raw_path : u.path},
             {"raw_query", u.raw_query}, {"fragment", u.fragment}};
    for (size_t i = 0; i < sizeof(f) / sizeof(f[0]); i++)
        if (f[i].v && *f[i].v) pc_obuf_put_str(&ob, f[i].k, pc_value_cstring(A, f[i].v));
    pc_plib_url_free(&u);
    return pc__ext_ret(ctx, out, pc_obuf_object(&ob));
}

static bool uri_is_valid(EXT_ARGS)
{
    (void)n;
    if (a[0]->kind != PC_STRING || a[0]->len == 0) return pc__ext_ret(ctx, out, pc_value_bool(false));
    pc_plib_url_t u;
    bool ok = pc_plib_url_parse(a[0]->u.s, a[0]->len, &u, NULL, 0);
    if (ok) pc_plib_url_free(&u);
    return pc__ext_ret(ctx, out, pc_value_bool(ok));
}

/* ---- graphql ------------------------------------------------------------------------ */

static bool gql_parse(EXT_ARGS, bool schema)
{
    (void)n;
    const char *s;
    size_t sl;
    if (!pc_arg_string(ctx, a, 0, &s, &sl)) return false;
    char err[600];
    char *j = schema ? pc_plib_graphql_parse_schema(s, sl, err, sizeof(err))
                     : pc_plib_graphql_parse_query(s, sl, err, sizeof(err));
    if (!j) return pc_builtin_error(ctx, "%s", err);
    char perr[256] = "";
    const pc_value *v = pc_json_parse(A, j, strlen(j), perr, sizeof(perr));
    free(j);
    if (!v) return pc_builtin_error(ctx, "%s", perr);
    return pc__ext_ret(ctx, out, v);
}

static bool gql_parse_query(EXT_ARGS)
{
    return gql_parse(ctx, a, n, out, false);
}

static bool gql_parse_schema(EXT_ARGS)
{
    return gql_parse(ctx, a, n, out, true);
}

/* A query/schema operand as AST JSON text (malloc'd): strings are parsed,
 * objects taken as they are. Returns NULL with err set. */
static char *gql_ast(const pc_value *v, bool schema, bool positions, char *err, size_t errlen)
{
    if (v->kind == PC_STRING)
        return schema ? pc_plib_graphql_parse_schema(v->u.s, v->len, err, errlen)
                      : pc__graphql_parse_query_ex(v->u.s, v->len, positions, err, errlen);
    if (v->kind == PC_OBJECT) {
        pc_str j = {0};
        pc_value_to_json(&j, v);
        char *r = j.p ? strndup(j.p, j.len) : strdup("{}");
        pc_str_free(&j);
        return r;
    }
    snprintf(err, errlen, "operand must be string or object");
    return NULL;
}

/* 1 valid (both ASTs returned as values), 0 invalid with err set */
static int gql_check(pc_eval_ctx *ctx, const pc_value *const *a, const pc_value **qv, const pc_value **sv,
                     char *err, size_t errlen)
{
    char *qpos = gql_ast(a[0], false, true, err, errlen);
    if (!qpos) return 0;
    char *sj = gql_ast(a[1], true, false, err, errlen);
    if (!sj) {
        free(qpos);
        return 0;
    }
    char serr[512] = "";
    int rc = pc_plib_graphql_validate(qpos, strlen(qpos), sj, strlen(sj), serr, sizeof(serr));
    free(qpos);
    if (rc < 0) {
        snprintf(err, errlen, "Error in gqlparser SchemaDocument to Schema conversion: %s", serr);
        free(sj);
        return 0;
    }
    if (rc == 0) {
        snprintf(err, errlen, "%s", serr);
        free(sj);
        return 0;
    }
    char *qj = gql_ast(a[0], false, false, err, errlen);
    char perr[256];
    *qv = qj ? pc_json_parse(A, qj, strlen(qj), perr, sizeof(perr)) : NULL;
    *sv = pc_json_parse(A, sj, strlen(sj), perr, sizeof(perr));
    free(qj);
    free(sj);
    if (!*qv || !*sv) {
        snprintf(err, errlen, "invalid GraphQL AST");
        return 0;
    }
    return 1;
}

static bool gql_is_valid(EXT_ARGS)
{
    (void)n;
    const pc_value *q, *s;
    char err[600];
    return pc__ext_ret(ctx, out, pc_value_bool(gql_check(ctx, a, &q, &s, err, sizeof(err)) == 1));
}

static bool gql_parse_both(EXT_ARGS)
{
    (void)n;
    const pc_value *q, *s;
    char err[600];
    if (a[0]->kind != PC_STRING && a[0]->kind != PC_OBJECT)
        return pc_builtin_type_error(ctx, 0, "one of {string, object}", a[0]);
    if (a[1]->kind != PC_STRING && a[1]->kind != PC_OBJECT)
        return pc_builtin_type_error(ctx, 1, "one of {string, object}", a[1]);
    if (gql_check(ctx, a, &q, &s, err, sizeof(err)) != 1) return pc_builtin_error(ctx, "%s", err);
    const pc_value *items[2] = {q, s};
    return pc__ext_ret(ctx, out, pc_value_array(A, items, 2));
}

static bool gql_parse_and_verify(EXT_ARGS)
{
    (void)n;
    const pc_value *q, *s;
    char err[600];
    if (gql_check(ctx, a, &q, &s, err, sizeof(err)) != 1) {
        const pc_value *items[3] = {pc_value_bool(false), pc_value_empty_object(), pc_value_empty_object()};
        return pc__ext_ret(ctx, out, pc_value_array(A, items, 3));
    }
    const pc_value *items[3] = {pc_value_bool(true), q, s};
    return pc__ext_ret(ctx, out, pc_value_array(A, items, 3));
}

static bool gql_schema_is_valid(EXT_ARGS)
{
    (void)n;
    const pc_value *v = a[0];
    bool ok = false;
    if (v->kind == PC_STRING) {
        ok = pc_plib_graphql_schema_valid(v->u.s, v->len, NULL, 0);
    } else if (v->kind == PC_OBJECT) {
        pc_str j = {0};
        pc_value_to_json(&j, v);
        ok = pc_plib_graphql_schema_ast_valid(j.p ? j.p : "{}", j.p ? j.len : 2, NULL, 0);
        pc_str_free(&j);
    }
    return pc__ext_ret(ctx, out, pc_value_bool(ok));
}

/* ---- providers.aws.sign_req ------------------------------------------------------- */

/* the names among `keys` for which pred fails, as a Rego set text {"a", "b"} */
static void key_set_text(pc_str *o, const char *const *keys, const bool *bad, size_t n)
{
    bool first = true;
    pc_str_append(o, "{", 1);
    for (size_t i = 0; i < n; i++) {
        if (!bad[i]) continue;
        pc_str_appendf(o, "%s\"%s\"", first ? "" : ", ", keys[i]);
        first = false;
    }
    pc_str_append(o, "}", 1);
}

static const char *str_or_empty(const pc_value *o, const char *k)
{
    const pc_value *v = pc_value_object_get_str(o, k, strlen(k));
    return v && v->kind == PC_STRING ? v->u.s : "";
}

static bool aws_sign_req(EXT_ARGS)
{
    (void)n;
    const pc_value *req = a[0], *cfg = a[1];
    if (req->kind != PC_OBJECT) return pc_builtin_type_error(ctx, 1, "object", req);
    if (cfg->kind != PC_OBJECT) return pc_builtin_type_error(ctx, 1, "object", cfg);
    /* required config keys, in set (sorted) order */
    static const char *const cfg_keys[] = {"aws_access_key", "aws_region", "aws_secret_access_key", "aws_service"};
    bool missing[4], invalid[4], any_missing = false, any_invalid = false;
    for (int i = 0; i < 4; i++) {
        const pc_value *v = pc_value_object_get_str(cfg, cfg_keys[i], strlen(cfg_keys[i]));
        missing[i] = !v;
        invalid[i] = v && v->kind != PC_STRING;
        any_missing |= missing[i];
        any_invalid |= invalid[i];
    }
    if (any_missing || any_invalid) {
        pc_str t = {0};
        key_set_text(&t, cfg_keys, any_missing ? missing : invalid, 4);
        bool r = pc_builtin_type_errorf(ctx, "operand 2 %s required AWS config parameters(s): %s",
                                        any_missing ? "missing" : "invalid values for", t.p ? t.p : "{}");
        pc_str_free(&t);
        return r;
    }
    if (a[2]->kind != PC_NUMBER) return pc_builtin_type_error(ctx, 1, "number", a[2]);
    if (a[2]->num != PC_NUM_INT)
        return pc_builtin_type_errorf(ctx, "operand 3 could not convert time_ns value into a unix timestamp");
    static const char *const req_keys[] = {"method", "url"};
    bool rmiss[2], rbad[2], any_rmiss = false, any_rbad = false;
    for (int i = 0; i < 2; i++) {
        const pc_value *v = pc_value_object_get_str(req, req_keys[i], strlen(req_keys[i]));
        rmiss[i] = !v;
        rbad[i] = v && v->kind != PC_STRING;
        any_rmiss |= rmiss[i];
        any_rbad |= rbad[i];
    }
    if (any_rmiss || any_rbad) {
        pc_str t = {0};
        key_set_text(&t, req_keys, any_rmiss ? rmiss : rbad, 2);
        bool r = pc_builtin_type_errorf(ctx, "operand 1 %s request parameters(s): %s",
                                        any_rmiss ? "missing required" : "invalid values for required",
                                        t.p ? t.p : "{}");
        pc_str_free(&t);
        return r;
    }
    const pc_value *headers = pc_value_object_get_str(req, "headers", 7);
    if (headers && headers->kind != PC_OBJECT) return pc_builtin_type_error(ctx, 0, "object", headers);
    const pc_value *dps = pc_value_object_get_str(cfg, "disable_payload_signing", 23);
    if (dps && dps->kind != PC_BOOL)
        return pc_builtin_type_errorf(ctx, "operand 2 invalid value for 'disable_payload_signing' in AWS config");
    const char *url = str_or_empty(req, "url");
    pc_plib_url_t u;
    char err[600];
    if (!pc_plib_url_parse(url, strlen(url), &u, err, sizeof(err))) return pc__ext_err(ctx, err);
    /* body: raw_body as is, else body as JSON */
    const pc_value *raw = pc_value_object_get_str(req, "raw_body", 8);
    const pc_value *body = pc_value_object_get_str(req, "body", 4);
    pc_str bj = {0};
    const char *bp = "";
    size_t bl = 0;
    if (raw) {
        bp = raw->kind == PC_STRING ? raw->u.s : "";
        bl = raw->kind == PC_STRING ? raw->len : 0;
    } else if (body) {
        pc_value_to_json(&bj, body);
        bp = bj.p ? bj.p : "";
        bl = bj.len;
    }
    size_t nh = headers ? headers->len : 0;
    const char **hn = pc_arena_alloc(A, sizeof(char *) * (nh ? nh : 1));
    const char **hv = pc_arena_alloc(A, sizeof(char *) * (nh ? nh : 1));
    if (!hn || !hv) {
        pc_str_free(&bj);
        pc_plib_url_free(&u);
        return pc_builtin_oom(ctx);
    }
    for (size_t i = 0; i < nh; i++) {
        const pc_value *k = headers->u.kvs[i].key, *v = headers->u.kvs[i].val;
        hn[i] = k->kind == PC_STRING ? k->u.s : "";
        hv[i] = v->kind == PC_STRING ? v->u.s : "";
    }
    const pc_value *tok = pc_value_object_get_str(cfg, "aws_session_token", 17);
    pc_plib_sigv4_in_t in = {
        .hdr_names = hn, .hdr_values = hv, .nhdrs = nh,
        .method = str_or_empty(req, "method"),
        .host = u.host ? u.host : "", .escaped_path = u.escaped_path ? u.escaped_path : "",
        .raw_query = u.raw_query ? u.raw_query : "",
        .body = bp, .body_len = bl,
        .service = str_or_empty(cfg, "aws_service"), .access_key = str_or_empty(cfg, "aws_access_key"),
        .secret_key = str_or_empty(cfg, "aws_secret_access_key"), .region = str_or_empty(cfg, "aws_region"),
        .session_token = tok && tok->kind == PC_STRING ? tok->u.s : NULL,
        .time_ns = a[2]->u.i,
        .disable_payload_signing = dps && dps->u.b,
    };
    pc_plib_sigv4_out_t so;
    bool ok = pc_plib_sigv4_sign(&in, &so);
    pc_str_free(&bj);
    pc_plib_url_free(&u);
    if (!ok) return pc_builtin_error(ctx, "signing failed");
    /* headers: the request's, then Authorization, then the AWS ones (which win) */
    pc_obuf hb;
    pc_obuf_init(&hb, A);
    for (size_t i = 0; i < nh; i++)
        if (headers->u.kvs[i].key->kind == PC_STRING)
            pc_obuf_put(&hb, headers->u.kvs[i].key,
                        headers->u.kvs[i].val->kind == PC_STRING ? headers->u.kvs[i].val : pc_value_empty_string());
    pc_obuf_put_str(&hb, "Authorization", pc_value_cstring(A, so.authorization));
    pc_obuf_put_str(&hb, "host", pc_value_cstring(A, so.host));
    pc_obuf_put_str(&hb, "x-amz-date", pc_value_cstring(A, so.amz_date));
    if (so.content_sha256) pc_obuf_put_str(&hb, "x-amz-content-sha256", pc_value_cstring(A, so.content_sha256));
    if (so.security_token) pc_obuf_put_str(&hb, "x-amz-security-token", pc_value_cstring(A, so.security_token));
    pc_plib_sigv4_free(&so);
    pc_obuf ob;
    pc_obuf_init(&ob, A);
    for (uint32_t i = 0; i < req->len; i++)
        if (!(req->u.kvs[i].key->kind == PC_STRING && !strcmp(req->u.kvs[i].key->u.s, "headers")))
            pc_obuf_put(&ob, req->u.kvs[i].key, req->u.kvs[i].val);
    pc_obuf_put_str(&ob, "headers", pc_obuf_object(&hb));
    return pc__ext_ret(ctx, out, pc_obuf_object(&ob));
}

/* ---- JSON paths ---------------------------------------------------------------- */

/* A path: "/a/b" (JSON pointer, ~1 and ~0 unescaped) or an array of segments. */
static bool parse_path(pc_eval_ctx *ctx, const pc_value *p, const pc_value ***segs, size_t *nseg)
{
    pc_arena *ar = A;
    if (p->kind == PC_ARRAY) {
        *segs = (const pc_value **)p->u.items;
        *nseg = p->len;
        return true;
    }
    if (p->kind != PC_STRING)
        return pc_builtin_type_errorf(ctx, "operand 2 must be one of {set, array} containing string paths or array of path segments but got %s",
                                      pc_value_type_name(p));
    *nseg = 0;
    if (p->len == 0) return true;
    const char *s = p->u.s;
    size_t n = p->len;
    while (n > 0 && *s == '/') s++, n--;
    size_t count = 1;
    for (size_t i = 0; i < n; i++) count += s[i] == '/';
    const pc_value **out = pc_arena_alloc(ar, sizeof(*out) * count);
    if (!out) return pc_builtin_oom(ctx);
    size_t st = 0, k = 0;
    for (size_t i = 0; i <= n; i++) {
        if (i < n && s[i] != '/') continue;
        char *seg = pc_arena_alloc(ar, i - st + 1);
        if (!seg) return pc_builtin_oom(ctx);
        size_t sl = 0;
        for (size_t j = st; j < i; j++) {
            if (s[j] == '~' && j + 1 < i && s[j + 1] == '1') {
                seg[sl++] = '/';
                j++;
            } else if (s[j] == '~' && j + 1 < i && s[j + 1] == '0') {
                seg[sl++] = '~';
                j++;
            } else {
                seg[sl++] = s[j];
            }
        }
        out[k] = pc_value_string(ar, seg, sl);
        if (!out[k++]) return pc_builtin_oom(ctx);
        st = i + 1;
    }
    *segs = out;
    *nseg = k;
    return true;
}

/* ---- json.patch ------------------------------------------------------------------ */

/* Parse an array index segment: digits only, or "-" (append) when allow_end. */
static bool array_index(const pc_value *seg, uint32_t len, bool allow_end, uint32_t *out)
{
    if (seg->kind == PC_NUMBER) {
        int64_t i;
        if (!pc_value_get_int(seg, &i) || i < 0 || i > (int64_t)len) return false;
        if ((uint32_t)i == len && !allow_end) return false;
        *out = (uint32_t)i;
        return true;
    }
    if (seg->kind != PC_STRING || seg->len == 0) return false;
    if (seg->len == 1 && seg->u.s[0] == '-') {
        if (!allow_end) return false;
        *out = len;
        return true;
    }
    if (seg->len > 1 && seg->u.s[0] == '0') return false; /* JSON Pointer: no leading zeros */
    uint64_t v = 0;
    for (uint32_t i = 0; i < seg->len; i++) {
        char c = seg->u.s[i];
        if (c < '0' || c > '9' || v > 0xFFFFFFFFu) return false;
        v = v * 10 + (uint64_t)(c - '0');
    }
    if (v > len || (v == len && !allow_end)) return false;
    *out = (uint32_t)v;
    return true;
}

typedef enum { P_ADD, P_REMOVE, P_GET } pop_t;

/* Returns the document with the operation applied at segs (or NULL if the
 * path is invalid). For P_GET, *got receives the value and doc is returned. */
static const pc_value *patch_at(pc_arena *ar, const pc_value *doc, const pc_value **segs, size_t ns,
                                pop_t op, const pc_value *val, const pc_value **got)
{
    if (ns == 0) {
        if (op == P_ADD) return val;
        if (op == P_GET) {
            *got = doc;
            return doc;
        }
        return NULL; /* removing the root */
    }
    const pc_value *seg = segs[0];
    bool last = ns == 1;
    switch (doc->kind) {
    case PC_OBJECT: {
        const pc_value *cur = pc_value_object_get(doc, seg);
        if (last && op == P_ADD) {
            pc_obuf ob;
            pc_obuf_init(&ob, ar);
            for (uint32_t i = 0; i < doc->len; i++) pc_obuf_put(&ob, doc->u.kvs[i].key, doc->u.kvs[i].val);
            pc_obuf_put(&ob, seg, val);
            return pc_obuf_object(&ob);
        }
        if (!cur) return NULL;
        if (last && op == P_GET) {
            *got = cur;
            return doc;
        }
        const pc_value *nv = NULL;
        if (!(last && op == P_REMOVE)) {
            nv = patch_at(ar, cur, segs + 1, ns - 1, op, val, got);
            if (!nv) return NULL;
            if (op == P_GET) return doc;
        }
        pc_obuf ob;
        pc_obuf_init(&ob, ar);
        for (uint32_t i = 0; i < doc->len; i++) {
            if (pc_value_equal(doc->u.kvs[i].key, seg)) {
                if (nv) pc_obuf_put(&ob, seg, nv);
            } else {
                pc_obuf_put(&ob, doc->u.kvs[i].key, doc->u.kvs[i].val);
            }
        }
        return pc_obuf_object(&ob);
    }
    case PC_ARRAY: {
        uint32_t idx;
        if (!array_index(seg, doc->len, last && op == P_ADD, &idx)) return NULL;
        if (last && op == P_GET) {
            *got = doc->u.items[idx];
            return doc;
        }
        pc_vbuf vb;
        pc_vbuf_init(&vb, ar);
        const pc_value *nv = NULL;
        if (!last) {
            nv = patch_at(ar, doc->u.items[idx], segs + 1, ns - 1, op, val, got);
            if (!nv) return NULL;
            if (op == P_GET) return doc;
        }
        for (uint32_t i = 0; i <= doc->len; i++) {
            if (i == idx) {
                if (last && op == P_ADD) pc_vbuf_push(&vb, val);
                if (!last) pc_vbuf_push(&vb, nv);
                if (!last || op == P_REMOVE) continue;
            }
            if (i < doc->len) pc_vbuf_push(&vb, doc->u.items[i]);
        }
        return pc_vbuf_array(&vb);
    }
    case PC_SET: {
        /* set members are addressed by value; an added member must equal its key */
        bool has = pc_value_set_contains(doc, seg);
        if (last && op == P_ADD) {
            if (!pc_value_equal(seg, val)) return NULL;
            pc_vbuf vb;
            pc_vbuf_init(&vb, ar);
            for (uint32_t i = 0; i < doc->len; i++) pc_vbuf_push(&vb, doc->u.items[i]);
            pc_vbuf_push(&vb, val);
            return pc_vbuf_set(&vb);
        }
        if (!has) return NULL;
        if (last && op == P_GET) {
            *got = seg;
            return doc;
        }
        const pc_value *nv = NULL;
        if (!last) {
            nv = patch_at(ar, seg, segs + 1, ns - 1, op, val, got);
            if (!nv) return NULL;
            if (op == P_GET) return doc;
        }
        pc_vbuf vb;
        pc_vbuf_init(&vb, ar);
        for (uint32_t i = 0; i < doc->len; i++)
            if (!pc_value_equal(doc->u.items[i], seg)) pc_vbuf_push(&vb, doc->u.items[i]);
        if (nv) pc_vbuf_push(&vb, nv);
        return pc_vbuf_set(&vb);
    }
    default: return NULL;
    }
}

static bool j_patch(EXT_ARGS)
{
    (void)n;
    if (a[1]->kind != PC_ARRAY) return pc_builtin_type_error(ctx, 2, "array", a[1]);
    const pc_value *doc = a[0];
    for (uint32_t i = 0; i < a[1]->len; i++) {
        const pc_value *p = a[1]->u.items[i];
        if (p->kind != PC_OBJECT) return false;
        const pc_value *opv = pc_value_object_get_str(p, "op", 2);
        const pc_value *path = pc_value_object_get_str(p, "path", 4);
        if (!opv || opv->kind != PC_STRING || !path) return false;
        const char *op = opv->u.s;
        const pc_value *from = pc_value_object_get_str(p, "from", 4);
        const pc_value *val = pc_value_object_get_str(p, "value", 5);
        const pc_value **segs, **fsegs = NULL;
        size_t ns, nf = 0;
        if ((path->kind != PC_STRING && path->kind != PC_ARRAY) || !parse_path(ctx, path, &segs, &ns))
            return false;
        const pc_value *got = NULL;
        if (!strcmp(op, "add")) {
            if (!val) return false;
            doc = patch_at(A, doc, segs, ns, P_ADD, val, NULL);
        } else if (!strcmp(op, "remove")) {
            doc = patch_at(A, doc, segs, ns, P_REMOVE, NULL, NULL);
        } else if (!strcmp(op, "replace")) {
            if (!val) return false;
            /* replacing the root replaces the whole document */
            if (ns == 0) {
                doc = val;
            } else {
                doc = patch_at(A, doc, segs, ns, P_REMOVE, NULL, NULL);
                if (doc) doc = patch_at(A, doc, segs, ns, P_ADD, val, NULL);
            }
        } else if (!strcmp(op, "move") || !strcmp(op, "copy")) {
            if (!from || (from->kind != PC_STRING && from->kind != PC_ARRAY) ||
                !parse_path(ctx, from, &fsegs, &nf))
                return false;
            if (!patch_at(A, doc, fsegs, nf, P_GET, NULL, &got) || !got) return false;
            if (op[0] == 'm') doc = patch_at(A, doc, fsegs, nf, P_REMOVE, NULL, NULL);
            if (doc) doc = patch_at(A, doc, segs, ns, P_ADD, got, NULL);
        } else if (!strcmp(op, "test")) {
            if (!val) return false;
            if (!patch_at(A, doc, segs, ns, P_GET, NULL, &got) || !got || !pc_value_equal(got, val))
                return false;
        } else {
            return false;
        }
        if (!doc) return false; /* OPA: any failing operation makes the call undefined */
    }
    return pc__ext_ret(ctx, out, doc);
}

static const pc_builtin MISC_TABLE[] = {
    {"semver.is_valid", 1, sv_is_valid, 0},
    {"semver.compare", 2, sv_compare, 0},
    {"uuid.parse", 1, u_parse, 0},
    {"uuid.rfc4122", 1, u_rfc4122, PC_BUILTIN_NONDET},
    {"rand.intn", 2, r_intn, PC_BUILTIN_NONDET},
    {"uri.parse", 1, uri_parse, 0},
    {"graphql.parse_query", 1, gql_parse_query, 0},
    {"graphql.parse_schema", 1, gql_parse_schema, 0},
    {"graphql.schema_is_valid", 1, gql_schema_is_valid, 0},
    {"graphql.is_valid", 2, gql_is_valid, 0},
    {"graphql.parse", 2, gql_parse_both, 0},
    {"graphql.parse_and_verify", 2, gql_parse_and_verify, 0},
    {"providers.aws.sign_req", 3, aws_sign_req, 0},
    {"uri.is_valid", 1, uri_is_valid, 0},
    {"json.patch", 2, j_patch, 0},
    {NULL, 0, NULL, 0},
};

void pc__builtins_ext_misc_register(void)
{
    pc_builtin_register_table(MISC_TABLE);
}
