/* crypto.* hashes/HMAC and io.jwt.* built-ins (OpenSSL via src/policy/lib/jose.c). */
#include "policy/builtins_ext.h"

#include "policy/lib/encoding.h"
#include "policy/lib/jose.h"
#include "policy/lib/x509.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define A pc_builtin_arena(ctx)

static bool hex_result(pc_eval_ctx *ctx, const pc_value **out, const unsigned char *d, size_t n)
{
    size_t hl;
    char *h = pc_plib_hex_encode(d, n, &hl);
    return pc__ext_ret_str(ctx, out, h, hl);
}

static bool digest_common(EXT_ARGS, const char *alg)
{
    (void)n;
    const char *s;
    size_t sl;
    if (!pc_arg_string(ctx, a, 0, &s, &sl)) return false;
    unsigned char d[PC_PLIB_MAX_DIGEST];
    size_t dl;
    if (!pc_plib_digest(alg, s, sl, d, &dl)) return pc_builtin_error(ctx, "digest failed");
    return hex_result(ctx, out, d, dl);
}

static bool c_md5(EXT_ARGS) { return digest_common(ctx, a, n, out, "md5"); }
static bool c_sha1(EXT_ARGS) { return digest_common(ctx, a, n, out, "sha1"); }
static bool c_sha256(EXT_ARGS) { return digest_common(ctx, a, n, out, "sha256"); }

static bool hmac_common(EXT_ARGS, const char *alg)
{
    (void)n;
    const char *s, *k;
    size_t sl, kl;
    if (!pc_arg_string(ctx, a, 0, &s, &sl) || !pc_arg_string(ctx, a, 1, &k, &kl)) return false;
    unsigned char d[PC_PLIB_MAX_DIGEST];
    size_t dl;
    if (!pc_plib_hmac(alg, k, kl, s, sl, d, &dl)) return pc_builtin_error(ctx, "hmac failed");
    return hex_result(ctx, out, d, dl);
}

static bool c_hmac_md5(EXT_ARGS) { return hmac_common(ctx, a, n, out, "md5"); }
static bool c_hmac_sha1(EXT_ARGS) { return hmac_common(ctx, a, n, out, "sha1"); }
static bool c_hmac_sha256(EXT_ARGS) { return hmac_common(ctx, a, n, out, "sha256"); }
static bool c_hmac_sha512(EXT_ARGS) { return hmac_common(ctx, a, n, out, "sha512"); }

static bool c_hmac_equal(EXT_ARGS)
{
    (void)n;
    const char *x, *y;
    size_t xl, yl;
    if (!pc_arg_string(ctx, a, 0, &x, &xl) || !pc_arg_string(ctx, a, 1, &y, &yl)) return false;
    return pc__ext_ret(ctx, out, pc_value_bool(pc_plib_ct_equal(x, xl, y, yl)));
}

/* ---- JWT --------------------------------------------------------------------- */

typedef struct {
    const char *header, *payload, *signature; /* base64url parts */
    size_t hl, pl, sl;
    const pc_value *hdr; /* decoded header object */
} jwt_t;

static bool jwt_split(pc_eval_ctx *ctx, const char *s, size_t n, jwt_t *t)
{
    memset(t, 0, sizeof(*t));
    const char *d1 = memchr(s, '.', n);
    if (!d1) return pc_builtin_error(ctx, "encoded JWT had no period separators");
    size_t parts = 1;
    for (size_t i = 0; i < n; i++) parts += s[i] == '.';
    if (parts != 3) return pc_builtin_error(ctx, "encoded JWT must have 3 sections, found %zu", parts);
    const char *d2 = memchr(d1 + 1, '.', (size_t)(s + n - d1 - 1));
    t->header = s;
    t->hl = (size_t)(d1 - s);
    t->payload = d1 + 1;
    t->pl = (size_t)(d2 - d1 - 1);
    t->signature = d2 + 1;
    t->sl = (size_t)(s + n - d2 - 1);
    return true;
}

/* base64url-decode into the arena; NULL (error raised with `what`) on failure */
static char *b64url(pc_eval_ctx *ctx, const char *s, size_t n, size_t *out_len, const char *what)
{
    char err[300];
    char *d = pc_plib_base64url_decode_lenient(s, n, out_len, err, sizeof(err));
    if (!d) {
        if (what)
            pc_builtin_error(ctx, "JWT %s had invalid encoding: %s", what, err);
        else
            pc__ext_err(ctx, err);
        return NULL;
    }
    char *r = pc_arena_strndup(A, d, *out_len);
    free(d);
    if (!r) pc_builtin_oom(ctx);
    return r;
}

static const pc_value *json_object_of(pc_eval_ctx *ctx, const char *s, size_t n, const char *prefix)
{
    char err[256] = "";
    const pc_value *v = pc_json_parse(A, s, n, err, sizeof(err));
    if (!v) {
        pc_builtin_error(ctx, "%sinvalid JSON: %s", prefix, err);
        return NULL;
    }
    if (v->kind != PC_OBJECT) {
        pc_builtin_error(ctx, "%sdecoded JSON type was not an Object", prefix);
        return NULL;
    }
    return v;
}

static bool jwt_header(pc_eval_ctx *ctx, jwt_t *t)
{
    size_t n;
    char *h = b64url(ctx, t->header, t->hl, &n, "header");
    if (!h) return false;
    const pc_value *o = json_object_of(ctx, h, n, "bad JWT header: ");
    if (!o) return false;
    if (pc_value_object_get_str(o, "enc", 3))
        return pc_builtin_error(ctx, "JWT is a JWE object, which is not supported");
    t->hdr = o;
    return true;
}

static const pc_value *str_member(const pc_value *o, const char *k)
{
    const pc_value *v = pc_value_object_get_str(o, k, strlen(k));
    return v && v->kind == PC_STRING ? v : NULL;
}

static bool j_decode(EXT_ARGS)
{
    (void)n;
    const char *s;
    size_t sl;
    if (!pc_arg_string(ctx, a, 0, &s, &sl)) return false;
    for (int depth = 0; depth < 32; depth++) {
        jwt_t t;
        if (!jwt_split(ctx, s, sl, &t) || !jwt_header(ctx, &t)) return false;
        size_t pl;
        char *p = b64url(ctx, t.payload, t.pl, &pl, "payload");
        if (!p) return false;
        const pc_value *cty = str_member(t.hdr, "cty");
        if (cty && cty->len == 3 && memcmp(cty->u.s, "JWT", 3) == 0) {
            /* nested token, quoted by some producers */
            while (pl > 0 && (p[0] == '"' || p[0] == '\'')) p++, pl--;
            while (pl > 0 && (p[pl - 1] == '"' || p[pl - 1] == '\'')) pl--;
            s = p;
            sl = pl;
            continue;
        }
        const pc_value *payload = json_object_of(ctx, p, pl, "");
        if (!payload) return false;
        size_t gl;
        char *sig = b64url(ctx, t.signature, t.sl, &gl, "signature");
        if (!sig) return false;
        size_t hl;
        char *hx = pc_plib_hex_encode(sig, gl, &hl);
        if (!hx) return pc_builtin_oom(ctx);
        const pc_value *items[3] = {t.hdr, payload, pc_value_string(A, hx, hl)};
        free(hx);
        if (!items[2]) return pc_builtin_oom(ctx);
        return pc__ext_ret(ctx, out, pc_value_array(A, items, 3));
    }
    return pc_builtin_error(ctx, "JWT nesting too deep");
}

typedef struct {
    const char *alg, *kid, *typ, *cty;
    size_t algl, kidl;
    bool valid;
} hdr_info_t;

/* OPA's parseTokenHeader + valid() */
static bool parse_header(pc_eval_ctx *ctx, const pc_value *h, hdr_info_t *hi)
{
    memset(hi, 0, sizeof(*hi));
    const pc_value *crit = NULL;
    for (uint32_t i = 0; i < h->len; i++) {
        const pc_value *k = h->u.kvs[i].key, *v = h->u.kvs[i].val;
        if (k->kind != PC_STRING) continue;
        static const char *names[] = {"alg", "kid", "typ", "cty"};
        for (int j = 0; j < 4; j++)
            if (k->len == 3 && memcmp(k->u.s, names[j], 3) == 0) {
                if (v->kind != PC_STRING) return pc_builtin_error(ctx, "%s: must be a string", names[j]);
                const char **dst[] = {&hi->alg, &hi->kid, &hi->typ, &hi->cty};
                *dst[j] = v->u.s;
                if (j == 0) hi->algl = v->len;
                if (j == 1) hi->kidl = v->len;
            }
        if (k->len == 4 && memcmp(k->u.s, "crit", 4) == 0) {
            if (v->kind != PC_ARRAY) return pc_builtin_error(ctx, "crit: must be a list");
            if (v->len == 0) return pc_builtin_error(ctx, "crit: must be a nonempty list");
            crit = v;
        }
    }
    hi->valid = hi->alg && hi->algl > 0;
    if (crit && hi->valid) {
        static const char *known[] = {"alg", "kid", "typ", "cty", "crit"};
        for (uint32_t i = 0; i < crit->len; i++) {
            const pc_value *c = crit->u.items[i];
            if (c->kind != PC_STRING) continue;
            bool k = false;
            for (int j = 0; j < 5; j++) k |= strlen(known[j]) == c->len && !memcmp(known[j], c->u.s, c->len);
            /* a critical parameter we do not understand, present in the header */
            if (!k && pc_value_object_get_str(h, c->u.s, c->len)) hi->valid = false;
        }
    }
    return true;
}

static bool kid_eq(const pc_plib_jwk_t *k, const char *kid, size_t kl)
{
    return k->kid && strlen(k->kid) == kl && memcmp(k->kid, kid, kl) == 0;
}

/* Verify with a key set the way OPA does: a kid match decides alone,
 * otherwise any key (whose alg, when named, matches) may verify. */
static bool keyset_verify(const pc_plib_keyset_t *ks, const hdr_info_t *hi, const char *alg,
                          const char *data, size_t dn, const char *sig, size_t sn)
{
    if (hi->kid && hi->kidl)
        for (size_t i = 0; i < ks->n; i++)
            if (kid_eq(&ks->keys[i], hi->kid, hi->kidl))
                return pc_plib_jws_verify(&ks->keys[i], alg, data, dn, sig, sn);
    for (size_t i = 0; i < ks->n; i++) {
        const pc_plib_jwk_t *k = &ks->keys[i];
        if (k->alg[0] && (!hi->alg || strlen(k->alg) != hi->algl || memcmp(k->alg, hi->alg, hi->algl)))
            continue;
        if (pc_plib_jws_verify(k, alg, data, dn, sig, sn)) return true;
    }
    return false;
}

static bool verify_common(EXT_ARGS, const char *alg)
{
    (void)n;
    const char *s, *key;
    size_t sl, kl;
    if (!pc_arg_string(ctx, a, 0, &s, &sl)) return false;
    jwt_t t;
    if (!jwt_split(ctx, s, sl, &t)) return false;
    if (!pc_arg_string(ctx, a, 1, &key, &kl)) return false;
    size_t data_len = t.hl + 1 + t.pl;
    if (alg[0] == 'H') {
        size_t gl;
        char *sig = b64url(ctx, t.signature, t.sl, &gl, NULL);
        if (!sig) return false;
        bool ok = pc_plib_jws_verify_secret(key, kl, alg, t.header, data_len, sig, gl);
        return pc__ext_ret(ctx, out, pc_value_bool(ok));
    }
    pc_plib_keyset_t ks;
    char err[300];
    if (!pc_plib_keyset_parse(key, kl, &ks, err, sizeof(err))) return pc__ext_err(ctx, err);
    size_t gl;
    char *sig = b64url(ctx, t.signature, t.sl, &gl, NULL);
    hdr_info_t hi;
    bool ok = sig && jwt_header(ctx, &t) && parse_header(ctx, t.hdr, &hi);
    if (!ok) {
        pc_plib_keyset_free(&ks);
        return false;
    }
    bool valid = keyset_verify(&ks, &hi, alg, t.header, data_len, sig, gl);
    pc_plib_keyset_free(&ks);
    return pc__ext_ret(ctx, out, pc_value_bool(valid));
}

#define VERIFY(fn, alg)                                                                            \
    static bool fn(EXT_ARGS) { return verify_common(ctx, a, n, out, alg); }
VERIFY(j_rs256, "RS256")
VERIFY(j_rs384, "RS384")
VERIFY(j_rs512, "RS512")
VERIFY(j_ps256, "PS256")
VERIFY(j_ps384, "PS384")
VERIFY(j_ps512, "PS512")
VERIFY(j_es256, "ES256")
VERIFY(j_es384, "ES384")
VERIFY(j_es512, "ES512")
VERIFY(j_eddsa, "EdDSA")
VERIFY(j_hs256, "HS256")
VERIFY(j_hs384, "HS384")
VERIFY(j_hs512, "HS512")

static bool unverified(pc_eval_ctx *ctx, const pc_value **out)
{
    const pc_value *items[3] = {pc_value_bool(false), pc_value_empty_object(), pc_value_empty_object()};
    return pc__ext_ret(ctx, out, pc_value_array(A, items, 3));
}

static bool j_decode_verify(EXT_ARGS)
{
    (void)n;
    const pc_value *c = a[1];
    if (c->kind != PC_OBJECT) return pc_builtin_type_error(ctx, 2, "object", c);
    pc_plib_keyset_t ks = {0};
    bool have_keys = false, ok = false;
    const pc_value *secret = NULL, *alg = NULL, *iss = NULL, *aud = NULL;
    double now = -1;
    char err[300];
    for (uint32_t i = 0; i < c->len; i++) {
        const pc_value *k = c->u.kvs[i].key, *v = c->u.kvs[i].val;
        const char *name = k->kind == PC_STRING ? k->u.s : "";
        if (!strcmp(name, "cert")) {
            if (v->kind != PC_STRING) {
                pc_builtin_error(ctx, "cert constraint: must be a string");
                goto done;
            }
            if (have_keys) pc_plib_keyset_free(&ks);
            if (!pc_plib_keyset_parse(v->u.s, v->len, &ks, err, sizeof(err))) {
                pc__ext_err(ctx, err);
                goto done;
            }
            have_keys = true;
        } else if (!strcmp(name, "secret") || !strcmp(name, "alg") || !strcmp(name, "iss") ||
                   !strcmp(name, "aud")) {
            if (v->kind != PC_STRING) {
                pc_builtin_error(ctx, "%s constraint: must be a string", name);
                goto done;
            }
            const pc_value **dst = name[0] == 's' ? &secret : name[0] == 'i' ? &iss : name[1] == 'l' ? &alg : &aud;
            *dst = v;
        } else if (!strcmp(name, "time")) {
            if (v->kind != PC_NUMBER) {
                pc_builtin_error(ctx, "token time constraint: must be a number");
                goto done;
            }
            now = pc_value_get_double(v);
            if (now < 0) {
                pc_builtin_error(ctx, "token time constraint: must not be negative");
                goto done;
            }
        } else {
            pc_builtin_error(ctx, "unknown token validation constraint: %s", name);
            goto done;
        }
    }
    if (now < 0) now = (double)pc_builtin_now_ns(ctx);
    if (secret && secret->len == 0) secret = NULL;
    if (have_keys && secret) {
        pc_builtin_error(ctx, "duplicate key constraints");
        goto done;
    }
    if (!have_keys && !secret) {
        pc_builtin_error(ctx, "no key constraint");
        goto done;
    }
    if (a[0]->kind != PC_STRING) {
        pc_builtin_type_error(ctx, 1, "string", a[0]);
        goto done;
    }
    const char *s = a[0]->u.s;
    size_t sl = a[0]->len;
    const pc_value *hdr = NULL, *payload = NULL;
    for (int depth = 0;; depth++) {
        if (depth >= 32) {
            pc_builtin_error(ctx, "JWT nesting too deep");
            goto done;
        }
        jwt_t t;
        if (!jwt_split(ctx, s, sl, &t) || !jwt_header(ctx, &t)) goto done;
        hdr_info_t hi;
        if (!parse_header(ctx, t.hdr, &hi)) goto done;
        if (!hi.valid) {
            ok = unverified(ctx, out);
            goto done;
        }
        if (alg && (alg->len != hi.algl || memcmp(alg->u.s, hi.alg, hi.algl))) {
            ok = unverified(ctx, out);
            goto done;
        }
        size_t gl;
        char *sig = b64url(ctx, t.signature, t.sl, &gl, NULL);
        if (!sig) goto done;
        char algz[16];
        snprintf(algz, sizeof(algz), "%.*s", (int)(hi.algl < 15 ? hi.algl : 15), hi.alg);
        size_t dn = t.hl + 1 + t.pl;
        bool valid = have_keys ? keyset_verify(&ks, &hi, algz, t.header, dn, sig, gl)
                               : pc_plib_jws_verify_secret(secret->u.s, secret->len, algz, t.header,
                                                           dn, sig, gl);
        if (!valid) {
            ok = unverified(ctx, out);
            goto done;
        }
        size_t pl;
        char *p = b64url(ctx, t.payload, t.pl, &pl, "payload");
        if (!p) goto done;
        if (hi.cty && strlen(hi.cty) == 3 && strncasecmp(hi.cty, "JWT", 3) == 0) {
            s = p;
            sl = pl;
            continue;
        }
        payload = json_object_of(ctx, p, pl, "");
        if (!payload) goto done;
        hdr = t.hdr;
        break;
    }
    if (iss) {
        const pc_value *v = pc_value_object_get_str(payload, "iss", 3);
        if (!v || v->kind != PC_STRING || v->len != iss->len || memcmp(v->u.s, iss->u.s, iss->len)) {
            ok = unverified(ctx, out);
            goto done;
        }
    }
    const pc_value *av = pc_value_object_get_str(payload, "aud", 3);
    if (av) {
        bool match = false;
        const char *want = aud ? aud->u.s : "";
        size_t wl = aud ? aud->len : 0;
        if (av->kind == PC_STRING)
            match = av->len == wl && !memcmp(av->u.s, want, wl);
        else if (av->kind == PC_ARRAY)
            for (uint32_t i = 0; i < av->len; i++) {
                const pc_value *e = av->u.items[i];
                if (e->kind == PC_STRING && e->len == wl && !memcmp(e->u.s, want, wl)) match = true;
            }
        if (!match) {
            ok = unverified(ctx, out);
            goto done;
        }
    } else if (aud && aud->len) {
        ok = unverified(ctx, out);
        goto done;
    }
    double secs = now / 1e9;
    const pc_value *exp = pc_value_object_get_str(payload, "exp", 3);
    if (exp) {
        if (exp->kind != PC_NUMBER) {
            pc_builtin_error(ctx, "exp value must be a number");
            goto done;
        }
        if (!(secs < pc_value_get_double(exp))) {
            ok = unverified(ctx, out);
            goto done;
        }
    }
    const pc_value *nbf = pc_value_object_get_str(payload, "nbf", 3);
    if (nbf) {
        if (nbf->kind != PC_NUMBER) {
            pc_builtin_error(ctx, "nbf value must be a number");
            goto done;
        }
        if (secs < pc_value_get_double(nbf)) {
            ok = unverified(ctx, out);
            goto done;
        }
    }
    {
        const pc_value *items[3] = {pc_value_bool(true), hdr, payload};
        ok = pc__ext_ret(ctx, out, pc_value_array(A, items, 3));
    }
done:
    pc_plib_keyset_free(&ks);
    return ok;
}

/* io.jwt.encode_sign_raw / encode_sign: sign header.payload with the first JWK */
static bool encode_sign(pc_eval_ctx *ctx, const pc_value **out, const char *h, size_t hl,
                        const char *p, size_t pl, const char *k, size_t kl)
{
    pc_plib_keyset_t ks;
    char err[300];
    if (!pc_plib_keyset_parse_jwk(k, kl, &ks, err, sizeof(err))) return pc__ext_err(ctx, err);
    bool ok = false;
    unsigned char *sig = NULL;
    char *hb = NULL, *pb = NULL, *sb = NULL;
    if (ks.n == 0) {
        pc_builtin_error(ctx, "no keys found in JWK set");
        goto done;
    }
    if (hl == 0) {
        pc_builtin_error(ctx, "missing or invalid 'alg' header: cannot parse JSON: cannot parse empty string");
        goto done;
    }
    char perr[256] = "";
    const pc_value *hdr = pc_json_parse(A, h, hl, perr, sizeof(perr));
    /* jwsbb looks "alg" up lazily: broken JSON objects fail to parse, other
     * text simply has no "alg" */
    size_t ws = 0;
    while (ws < hl && (h[ws] == ' ' || h[ws] == '\t' || h[ws] == '\r' || h[ws] == '\n')) ws++;
    if (!hdr && ws < hl && h[ws] == '{') {
        pc_builtin_error(ctx, "missing or invalid 'alg' header: cannot parse JSON");
        goto done;
    }
    const pc_value *alg = hdr && hdr->kind == PC_OBJECT ? pc_value_object_get_str(hdr, "alg", 3) : NULL;
    if (!alg || alg->kind != PC_STRING) {
        pc_builtin_error(ctx, "missing or invalid 'alg' header: jwsbb: header \"alg\" not found");
        goto done;
    }
    if (!pc_plib_jws_alg_known(alg->u.s, alg->len)) {
        pc_builtin_error(ctx, "unknown JWS algorithm: %s", alg->u.s);
        goto done;
    }
    const pc_value *typ = pc_value_object_get_str(hdr, "typ", 3);
    bool want_json = !typ || typ->kind != PC_STRING || (typ->len == 3 && !memcmp(typ->u.s, "JWT", 3));
    if (want_json) {
        pc_arena *tmp = pc_arena_new(0);
        bool valid = pc_json_parse(tmp, p, pl, NULL, 0) != NULL;
        pc_arena_free(tmp);
        if (!valid) {
            pc_builtin_error(ctx, "type is JWT but payload is not JSON");
            goto done;
        }
    }
    size_t hbl, pbl, sbl, sn;
    hb = pc_plib_base64_encode(PC_PLIB_B64_RAW_URL, h, hl, &hbl);
    pb = pc_plib_base64_encode(PC_PLIB_B64_RAW_URL, p, pl, &pbl);
    if (!hb || !pb) {
        pc_builtin_oom(ctx);
        goto done;
    }
    size_t il = hbl + 1 + pbl;
    char *input = pc_arena_alloc(A, il + 1);
    if (!input) {
        pc_builtin_oom(ctx);
        goto done;
    }
    memcpy(input, hb, hbl);
    input[hbl] = '.';
    memcpy(input + hbl + 1, pb, pbl);
    if (!pc_plib_jws_sign(&ks.keys[0], alg->u.s, input, il, &sig, &sn, err, sizeof(err))) {
        pc__ext_err(ctx, err);
        goto done;
    }
    sb = pc_plib_base64_encode(PC_PLIB_B64_RAW_URL, sig, sn, &sbl);
    char *tok = sb ? pc_arena_alloc(A, il + 1 + sbl + 1) : NULL;
    if (!tok) {
        pc_builtin_oom(ctx);
        goto done;
    }
    memcpy(tok, input, il);
    tok[il] = '.';
    memcpy(tok + il + 1, sb, sbl);
    ok = pc__ext_ret(ctx, out, pc_value_string(A, tok, il + 1 + sbl));
done:
    free(hb);
    free(pb);
    free(sb);
    free(sig);
    pc_plib_keyset_free(&ks);
    return ok;
}

static bool j_encode_sign_raw(EXT_ARGS)
{
    (void)n;
    const char *h, *p, *k;
    size_t hl, pl, kl;
    if (!pc_arg_string(ctx, a, 2, &k, &kl) || !pc_arg_string(ctx, a, 0, &h, &hl) ||
        !pc_arg_string(ctx, a, 1, &p, &pl))
        return false;
    return encode_sign(ctx, out, h, hl, p, pl, k, kl);
}

static bool j_encode_sign(EXT_ARGS)
{
    (void)n;
    pc_str hs = {0}, ps = {0}, ks = {0};
    pc_value_to_json(&hs, a[0]);
    pc_value_to_json(&ps, a[1]);
    pc_value_to_json(&ks, a[2]);
    bool ok = encode_sign(ctx, out, hs.p ? hs.p : "", hs.len, ps.p ? ps.p : "", ps.len,
                          ks.p ? ks.p : "", ks.len);
    pc_str_free(&hs);
    pc_str_free(&ps);
    pc_str_free(&ks);
    return ok;
}

/* ---- X.509 ---------------------------------------------------------------------- */

static bool json_result(pc_eval_ctx *ctx, const pc_value **out, char *json)
{
    if (!json) return pc_builtin_oom(ctx);
    char err[256] = "";
    const pc_value *v = pc_json_parse(A, json, strlen(json), err, sizeof(err));
    free(json);
    if (!v) return pc_builtin_error(ctx, "%s", err[0] ? err : "invalid result");
    return pc__ext_ret(ctx, out, v);
}

static bool x_parse_certs(EXT_ARGS)
{
    (void)n;
    const char *s;
    size_t sl;
    if (!pc_arg_string(ctx, a, 0, &s, &sl)) return false;
    char err[256];
    char *j = pc_plib_x509_parse_certs(s, sl, err, sizeof(err));
    if (!j) return pc__ext_err(ctx, err);
    return json_result(ctx, out, j);
}

static bool x_parse_and_verify(EXT_ARGS)
{
    (void)n;
    const char *s;
    size_t sl;
    if (!pc_arg_string(ctx, a, 0, &s, &sl)) return false;
    bool valid;
    char *j = pc_plib_x509_verify_chain(s, sl, &valid);
    const pc_value *chain;
    if (!json_result(ctx, &chain, j)) return false;
    const pc_value *items[2] = {pc_value_bool(valid), chain};
    return pc__ext_ret(ctx, out, pc_value_array(A, items, 2));
}

static bool x_parse_and_verify_opts(EXT_ARGS)
{
    (void)n;
    const char *s;
    size_t sl;
    if (!pc_arg_string(ctx, a, 0, &s, &sl)) return false;
    const pc_value *o = a[1];
    if (o->kind != PC_OBJECT) return pc_builtin_type_error(ctx, 2, "object", o);
    pc_plib_x509_opts_t opts = {0};
    int usages[16];
    for (uint32_t i = 0; i < o->len; i++) {
        const pc_value *k = o->u.kvs[i].key, *v = o->u.kvs[i].val;
        const char *name = k->kind == PC_STRING ? k->u.s : "";
        if (!strcmp(name, "DNSName")) {
            if (v->kind != PC_STRING) return pc_builtin_error(ctx, "'DNSName' should be a string");
            opts.dns_name = v->u.s;
        } else if (!strcmp(name, "CurrentTime")) {
            int64_t t;
            if (v->kind != PC_NUMBER || !pc_value_get_int(v, &t))
                return pc_builtin_error(ctx, "'CurrentTime' should be a number");
            opts.have_time = true;
            opts.time_ns = t;
        } else if (!strcmp(name, "MaxConstraintComparisons")) {
            if (v->kind != PC_NUMBER) return pc_builtin_error(ctx, "'MaxConstraintComparisons' should be a number");
        } else if (!strcmp(name, "KeyUsages")) {
            if (v->kind != PC_ARRAY && v->kind != PC_SET) return pc_builtin_error(ctx, "'KeyUsages' should be an Array or Set");
            for (uint32_t j = 0; j < v->len && opts.nkey_usages < 16; j++) {
                const pc_value *u = v->u.items[j];
                int ku = u->kind == PC_STRING ? pc_plib_x509_key_usage(u->u.s) : -1;
                if (ku < 0) return pc_builtin_error(ctx, "invalid entries for 'KeyUsages' found");
                usages[opts.nkey_usages++] = ku;
            }
            opts.key_usages = usages;
        } else {
            return pc_builtin_error(ctx, "invalid key option");
        }
    }
    bool valid;
    char *j = pc_plib_x509_verify_chain_opts(s, sl, &opts, &valid);
    const pc_value *chain;
    if (!json_result(ctx, &chain, j)) return false;
    const pc_value *items[2] = {pc_value_bool(valid), chain};
    return pc__ext_ret(ctx, out, pc_value_array(A, items, 2));
}

static bool x_parse_csr(EXT_ARGS)
{
    (void)n;
    const char *s;
    size_t sl;
    if (!pc_arg_string(ctx, a, 0, &s, &sl)) return false;
    char err[256];
    char *j = pc_plib_x509_parse_csr(s, sl, err, sizeof(err));
    if (!j) return pc__ext_err(ctx, err);
    return json_result(ctx, out, j);
}

static bool x_parse_rsa_key(EXT_ARGS)
{
    (void)n;
    const char *s;
    size_t sl;
    if (!pc_arg_string(ctx, a, 0, &s, &sl)) return false;
    char err[256];
    char *j = pc_plib_x509_rsa_key_jwk(s, sl, err, sizeof(err));
    if (!j) return pc__ext_err(ctx, err);
    return json_result(ctx, out, j);
}

static bool c_parse_private_keys(EXT_ARGS)
{
    (void)n;
    const char *s;
    size_t sl;
    if (!pc_arg_string(ctx, a, 0, &s, &sl)) return false;
    return json_result(ctx, out, pc_plib_parse_private_keys(s, sl));
}

static bool x_parse_keypair(EXT_ARGS)
{
    (void)n;
    const char *c, *k;
    size_t cl, kl;
    if (!pc_arg_string(ctx, a, 0, &c, &cl) || !pc_arg_string(ctx, a, 1, &k, &kl)) return false;
    char err[256];
    char *j = pc_plib_x509_keypair(c, cl, k, kl, err, sizeof(err));
    if (!j) return pc__ext_err(ctx, err);
    return json_result(ctx, out, j);
}

static const pc_builtin CRYPTO_TABLE[] = {
    {"crypto.md5", 1, c_md5, 0},
    {"crypto.sha1", 1, c_sha1, 0},
    {"crypto.sha256", 1, c_sha256, 0},
    {"crypto.hmac.md5", 2, c_hmac_md5, 0},
    {"crypto.hmac.sha1", 2, c_hmac_sha1, 0},
    {"crypto.hmac.sha256", 2, c_hmac_sha256, 0},
    {"crypto.hmac.sha512", 2, c_hmac_sha512, 0},
    {"crypto.hmac.equal", 2, c_hmac_equal, 0},
    {"crypto.x509.parse_certificates", 1, x_parse_certs, 0},
    {"crypto.x509.parse_and_verify_certificates", 1, x_parse_and_verify, PC_BUILTIN_NONDET},
    {"crypto.x509.parse_and_verify_certificates_with_options", 2, x_parse_and_verify_opts, PC_BUILTIN_NONDET},
    {"crypto.x509.parse_certificate_request", 1, x_parse_csr, 0},
    {"crypto.x509.parse_rsa_private_key", 1, x_parse_rsa_key, 0},
    {"crypto.x509.parse_keypair", 2, x_parse_keypair, 0},
    {"crypto.parse_private_keys", 1, c_parse_private_keys, 0},
    {"io.jwt.decode", 1, j_decode, 0},
    {"io.jwt.verify_rs256", 2, j_rs256, 0},
    {"io.jwt.verify_rs384", 2, j_rs384, 0},
    {"io.jwt.verify_rs512", 2, j_rs512, 0},
    {"io.jwt.verify_ps256", 2, j_ps256, 0},
    {"io.jwt.verify_ps384", 2, j_ps384, 0},
    {"io.jwt.verify_ps512", 2, j_ps512, 0},
    {"io.jwt.verify_es256", 2, j_es256, 0},
    {"io.jwt.verify_es384", 2, j_es384, 0},
    {"io.jwt.verify_es512", 2, j_es512, 0},
    {"io.jwt.verify_eddsa", 2, j_eddsa, 0},
    {"io.jwt.verify_hs256", 2, j_hs256, 0},
    {"io.jwt.verify_hs384", 2, j_hs384, 0},
    {"io.jwt.verify_hs512", 2, j_hs512, 0},
    {"io.jwt.decode_verify", 2, j_decode_verify, PC_BUILTIN_NONDET},
    {"io.jwt.encode_sign_raw", 3, j_encode_sign_raw, PC_BUILTIN_NONDET},
    {"io.jwt.encode_sign", 3, j_encode_sign, PC_BUILTIN_NONDET},
    {NULL, 0, NULL, 0},
};

void pc__builtins_ext_crypto_register(void)
{
    pc_builtin_register_table(CRYPTO_TABLE);
}
