/*
 * JWS keys and signatures on OpenSSL 3. JWK members are base64url big-endian
 * integers; keys are assembled with EVP_PKEY_fromdata. ECDSA signatures are
 * the fixed-width r||s of RFC 7518, converted to and from DER here.
 */
#include "policy/lib/jose.h"

#include "policy/lib/encoding.h"

#include <jansson.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/param_build.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void set_err(char *err, size_t errlen, const char *msg)
{
    if (err && errlen) snprintf(err, errlen, "%s", msg);
}

static const EVP_MD *md_by_name(const char *alg)
{
    if (!strcmp(alg, "md5")) return EVP_md5();
    if (!strcmp(alg, "sha1")) return EVP_sha1();
    if (!strcmp(alg, "sha256")) return EVP_sha256();
    if (!strcmp(alg, "sha384")) return EVP_sha384();
    if (!strcmp(alg, "sha512")) return EVP_sha512();
    return NULL;
}

bool pc_plib_digest(const char *alg, const void *data, size_t n, unsigned char *out,
                    size_t *out_len)
{
    const EVP_MD *md = md_by_name(alg);
    unsigned int len = 0;
    if (!md || !EVP_Digest(data, n, out, &len, md, NULL)) return false;
    *out_len = len;
    return true;
}

bool pc_plib_hmac(const char *alg, const void *key, size_t kn, const void *data, size_t n,
                  unsigned char *out, size_t *out_len)
{
    const EVP_MD *md = md_by_name(alg);
    unsigned int len = 0;
    static const unsigned char empty = 0;
    if (!md) return false;
    if (!HMAC(md, kn ? key : &empty, (int)kn, n ? data : &empty, n, out, &len)) return false;
    *out_len = len;
    return true;
}

bool pc_plib_ct_equal(const void *a, size_t an, const void *b, size_t bn)
{
    if (an != bn) return false;
    if (an == 0) return true;
    return CRYPTO_memcmp(a, b, an) == 0;
}

/* ---- JWS algorithms ------------------------------------------------------ */

typedef enum { FAM_HS, FAM_RS, FAM_PS, FAM_ES, FAM_ED } family_t;

static bool alg_info(const char *alg, family_t *fam, const char **md, int *ec_bytes)
{
    static const struct {
        const char *name;
        family_t fam;
        const char *md;
        int ec;
    } algs[] = {
        {"HS256", FAM_HS, "sha256", 0}, {"HS384", FAM_HS, "sha384", 0}, {"HS512", FAM_HS, "sha512", 0},
        {"RS256", FAM_RS, "sha256", 0}, {"RS384", FAM_RS, "sha384", 0}, {"RS512", FAM_RS, "sha512", 0},
        {"PS256", FAM_PS, "sha256", 0}, {"PS384", FAM_PS, "sha384", 0}, {"PS512", FAM_PS, "sha512", 0},
        {"ES256", FAM_ES, "sha256", 32}, {"ES384", FAM_ES, "sha384", 48}, {"ES512", FAM_ES, "sha512", 66},
        {"EdDSA", FAM_ED, NULL, 0},
    };
    for (size_t i = 0; i < sizeof(algs) / sizeof(algs[0]); i++)
        if (!strcmp(alg, algs[i].name)) {
            *fam = algs[i].fam;
            *md = algs[i].md;
            *ec_bytes = algs[i].ec;
            return true;
        }
    return false;
}

bool pc_plib_jws_alg_known(const char *alg, size_t n)
{
    char buf[16];
    if (n >= sizeof(buf)) return false;
    memcpy(buf, alg, n);
    buf[n] = '\0';
    family_t f;
    const char *md;
    int ec;
    return alg_info(buf, &f, &md, &ec);
}

bool pc_plib_jws_verify_secret(const void *secret, size_t sl, const char *alg, const void *data,
                               size_t n, const void *sig, size_t sn)
{
    family_t fam;
    const char *md;
    int ec;
    if (!alg_info(alg, &fam, &md, &ec) || fam != FAM_HS) return false;
    unsigned char mac[PC_PLIB_MAX_DIGEST];
    size_t ml;
    if (!pc_plib_hmac(md, secret, sl, data, n, mac, &ml)) return false;
    return pc_plib_ct_equal(mac, ml, sig, sn);
}

/* r||s (fixed width) -> DER */
static unsigned char *ec_raw_to_der(const unsigned char *sig, size_t sn, size_t *der_len)
{
    if (sn == 0 || sn % 2) return NULL;
    ECDSA_SIG *es = ECDSA_SIG_new();
    BIGNUM *r = BN_bin2bn(sig, (int)(sn / 2), NULL), *s = BN_bin2bn(sig + sn / 2, (int)(sn / 2), NULL);
    unsigned char *der = NULL;
    if (!es || !r || !s || !ECDSA_SIG_set0(es, r, s)) {
        BN_free(r);
        BN_free(s);
        ECDSA_SIG_free(es);
        return NULL;
    }
    int len = i2d_ECDSA_SIG(es, &der);
    ECDSA_SIG_free(es);
    if (len <= 0) return NULL;
    *der_len = (size_t)len;
    return der;
}

static int pkey_kind(EVP_PKEY *k)
{
    return EVP_PKEY_get_base_id(k);
}

bool pc_plib_jws_verify(const pc_plib_jwk_t *key, const char *alg, const void *data, size_t n,
                        const void *sig, size_t sn)
{
    family_t fam;
    const char *mdn;
    int ec;
    if (!alg_info(alg, &fam, &mdn, &ec)) return false;
    if (fam == FAM_HS)
        return key->secret && pc_plib_jws_verify_secret(key->secret, key->secret_len, alg, data, n, sig, sn);
    EVP_PKEY *pk = key->pkey;
    if (!pk) return false;
    int kind = pkey_kind(pk);
    if ((fam == FAM_RS || fam == FAM_PS) && kind != EVP_PKEY_RSA) return false;
    if (fam == FAM_ES && kind != EVP_PKEY_EC) return false;
    if (fam == FAM_ED && kind != EVP_PKEY_ED25519) return false;
    EVP_MD_CTX *mctx = EVP_MD_CTX_new();
    EVP_PKEY_CTX *pctx = NULL;
    bool ok = false;
    unsigned char *der = NULL;
    if (!mctx) return false;
    if (EVP_DigestVerifyInit(mctx, &pctx, mdn ? md_by_name(mdn) : NULL, NULL, pk) != 1) goto out;
    if (fam == FAM_PS) {
        /* Go's rsa.VerifyPSS with nil options: salt length detected */
        if (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) != 1 ||
            EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_AUTO) != 1)
            goto out;
    }
    const unsigned char *s = sig;
    size_t slen = sn;
    if (fam == FAM_ES) {
        der = ec_raw_to_der(sig, sn, &slen);
        if (!der) goto out;
        s = der;
    }
    ok = EVP_DigestVerify(mctx, s, slen, data, n) == 1;
out:
    OPENSSL_free(der);
    EVP_MD_CTX_free(mctx);
    return ok;
}

bool pc_plib_jws_sign(const pc_plib_jwk_t *key, const char *alg, const void *data, size_t n,
                      unsigned char **sig, size_t *sn, char *err, size_t errlen)
{
    family_t fam;
    const char *mdn;
    int ec;
    if (!alg_info(alg, &fam, &mdn, &ec)) {
        set_err(err, errlen, "unsupported signature algorithm");
        return false;
    }
    if (fam == FAM_HS) {
        if (!key->secret) {
            set_err(err, errlen, "invalid key type for HMAC signing");
            return false;
        }
        unsigned char mac[PC_PLIB_MAX_DIGEST];
        size_t ml;
        if (!pc_plib_hmac(mdn, key->secret, key->secret_len, data, n, mac, &ml)) return false;
        *sig = malloc(ml);
        if (!*sig) return false;
        memcpy(*sig, mac, ml);
        *sn = ml;
        return true;
    }
    EVP_PKEY *pk = key->pkey;
    if (!pk) {
        set_err(err, errlen, "invalid key type for signing");
        return false;
    }
    EVP_MD_CTX *mctx = EVP_MD_CTX_new();
    EVP_PKEY_CTX *pctx = NULL;
    unsigned char *buf = NULL;
    size_t len = 0;
    bool ok = false;
    if (!mctx) return false;
    if (EVP_DigestSignInit(mctx, &pctx, mdn ? md_by_name(mdn) : NULL, NULL, pk) != 1) goto fail;
    if (fam == FAM_PS &&
        (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) != 1 ||
         EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) != 1))
        goto fail;
    if (EVP_DigestSign(mctx, NULL, &len, data, n) != 1) goto fail;
    buf = malloc(len);
    if (!buf || EVP_DigestSign(mctx, buf, &len, data, n) != 1) goto fail;
    if (fam == FAM_ES) {
        const unsigned char *p = buf;
        ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &p, (long)len);
        if (!es) goto fail;
        unsigned char *raw = calloc(1, (size_t)ec * 2);
        if (!raw || BN_bn2binpad(ECDSA_SIG_get0_r(es), raw, ec) < 0 ||
            BN_bn2binpad(ECDSA_SIG_get0_s(es), raw + ec, ec) < 0) {
            free(raw);
            ECDSA_SIG_free(es);
            goto fail;
        }
        ECDSA_SIG_free(es);
        free(buf);
        buf = raw;
        len = (size_t)ec * 2;
    }
    *sig = buf;
    *sn = len;
    buf = NULL;
    ok = true;
fail:
    if (!ok) set_err(err, errlen, "failed to sign the token");
    free(buf);
    EVP_MD_CTX_free(mctx);
    return ok;
}

/* ---- key sets ------------------------------------------------------------ */

static void jwk_clear(pc_plib_jwk_t *k)
{
    EVP_PKEY_free(k->pkey);
    free(k->secret);
    free(k->kid);
    memset(k, 0, sizeof(*k));
}

void pc_plib_keyset_free(pc_plib_keyset_t *ks)
{
    if (!ks) return;
    for (size_t i = 0; i < ks->n; i++) jwk_clear(&ks->keys[i]);
    free(ks->keys);
    ks->keys = NULL;
    ks->n = 0;
}

/* base64url member of a JWK as bytes */
static unsigned char *b64_member(json_t *o, const char *name, size_t *len)
{
    json_t *v = json_object_get(o, name);
    if (!json_is_string(v)) return NULL;
    const char *s = json_string_value(v);
    size_t sl = json_string_length(v);
    /* tolerate padding and the standard alphabet as some producers emit them */
    char *norm = malloc(sl + 1);
    if (!norm) return NULL;
    size_t k = 0;
    for (size_t i = 0; i < sl; i++) {
        char c = s[i];
        if (c == '=') continue;
        if (c == '+') c = '-';
        if (c == '/') c = '_';
        norm[k++] = c;
    }
    char *out = pc_plib_base64_decode(PC_PLIB_B64_RAW_URL, norm, k, len, NULL, 0);
    free(norm);
    return (unsigned char *)out;
}

static EVP_PKEY *pkey_from_params(const char *type, OSSL_PARAM_BLD *bld, bool priv)
{
    OSSL_PARAM *params = OSSL_PARAM_BLD_to_param(bld);
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, type, NULL);
    EVP_PKEY *pk = NULL;
    if (params && ctx && EVP_PKEY_fromdata_init(ctx) == 1)
        EVP_PKEY_fromdata(ctx, &pk, priv ? EVP_PKEY_KEYPAIR : EVP_PKEY_PUBLIC_KEY, params);
    EVP_PKEY_CTX_free(ctx);
    OSSL_PARAM_free(params);
    return pk;
}

static bool push_bn(OSSL_PARAM_BLD *bld, const char *param, json_t *o, const char *name,
                    BIGNUM **keep, bool required)
{
    size_t len;
    unsigned char *b = b64_member(o, name, &len);
    if (!b) return !required;
    BIGNUM *bn = BN_bin2bn(b, (int)len, NULL);
    free(b);
    if (!bn) return false;
    *keep = bn;
    return OSSL_PARAM_BLD_push_BN(bld, param, bn) == 1;
}

static const char *jwk_parse_one(json_t *o, pc_plib_jwk_t *k)
{
    memset(k, 0, sizeof(*k));
    if (!json_is_object(o)) return "key is not an object";
    json_t *kty = json_object_get(o, "kty");
    if (!json_is_string(kty)) return "invalid key: missing \"kty\"";
    const char *t = json_string_value(kty);
    json_t *alg = json_object_get(o, "alg");
    if (json_is_string(alg)) snprintf(k->alg, sizeof(k->alg), "%s", json_string_value(alg));
    json_t *kid = json_object_get(o, "kid");
    if (json_is_string(kid)) k->kid = strdup(json_string_value(kid));
    if (!strcmp(t, "oct")) {
        k->secret = b64_member(o, "k", &k->secret_len);
        return k->secret ? NULL : "invalid oct key: missing \"k\"";
    }
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    BIGNUM *bns[8] = {0};
    const char *why = NULL;
    if (!bld) return "out of memory";
    if (!strcmp(t, "RSA")) {
        bool priv = json_object_get(o, "d") != NULL;
        if (!push_bn(bld, OSSL_PKEY_PARAM_RSA_N, o, "n", &bns[0], true) ||
            !push_bn(bld, OSSL_PKEY_PARAM_RSA_E, o, "e", &bns[1], true)) {
            why = "invalid RSA key";
            goto out;
        }
        if (priv && (!push_bn(bld, OSSL_PKEY_PARAM_RSA_D, o, "d", &bns[2], true) ||
                     !push_bn(bld, OSSL_PKEY_PARAM_RSA_FACTOR1, o, "p", &bns[3], false) ||
                     !push_bn(bld, OSSL_PKEY_PARAM_RSA_FACTOR2, o, "q", &bns[4], false) ||
                     !push_bn(bld, OSSL_PKEY_PARAM_RSA_EXPONENT1, o, "dp", &bns[5], false) ||
                     !push_bn(bld, OSSL_PKEY_PARAM_RSA_EXPONENT2, o, "dq", &bns[6], false) ||
                     !push_bn(bld, OSSL_PKEY_PARAM_RSA_COEFFICIENT1, o, "qi", &bns[7], false))) {
            why = "invalid RSA private key";
            goto out;
        }
        k->pkey = pkey_from_params("RSA", bld, priv);
        if (!k->pkey) why = "invalid RSA key";
    } else if (!strcmp(t, "EC")) {
        json_t *crv = json_object_get(o, "crv");
        const char *group = NULL;
        size_t width = 0;
        if (json_is_string(crv)) {
            const char *c = json_string_value(crv);
            if (!strcmp(c, "P-256")) group = "prime256v1", width = 32;
            if (!strcmp(c, "P-384")) group = "secp384r1", width = 48;
            if (!strcmp(c, "P-521")) group = "secp521r1", width = 66;
        }
        size_t xl, yl;
        unsigned char *x = b64_member(o, "x", &xl), *y = b64_member(o, "y", &yl);
        if (!group || !x || !y || xl > width || yl > width) {
            free(x);
            free(y);
            why = "invalid EC key";
            goto out;
        }
        unsigned char pt[1 + 2 * 66] = {0x04};
        memcpy(pt + 1 + (width - xl), x, xl);
        memcpy(pt + 1 + width + (width - yl), y, yl);
        free(x);
        free(y);
        bool priv = json_object_get(o, "d") != NULL;
        if (OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, group, 0) != 1 ||
            OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, pt, 1 + 2 * width) != 1 ||
            (priv && !push_bn(bld, OSSL_PKEY_PARAM_PRIV_KEY, o, "d", &bns[0], true))) {
            why = "invalid EC key";
            goto out;
        }
        k->pkey = pkey_from_params("EC", bld, priv);
        if (!k->pkey) why = "invalid EC key";
    } else if (!strcmp(t, "OKP")) {
        json_t *crv = json_object_get(o, "crv");
        if (!json_is_string(crv) || strcmp(json_string_value(crv), "Ed25519") != 0) {
            why = "unsupported OKP curve";
            goto out;
        }
        size_t dl = 0, xl = 0;
        unsigned char *d = b64_member(o, "d", &dl), *x = b64_member(o, "x", &xl);
        if (d)
            k->pkey = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, d, dl);
        else if (x)
            k->pkey = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, x, xl);
        free(d);
        free(x);
        if (!k->pkey) why = "invalid OKP key";
    } else {
        why = "unsupported key type";
    }
out:
    for (size_t i = 0; i < 8; i++) BN_free(bns[i]);
    OSSL_PARAM_BLD_free(bld);
    return why;
}

bool pc_plib_keyset_parse_jwk(const char *s, size_t n, pc_plib_keyset_t *out, char *err,
                              size_t errlen)
{
    memset(out, 0, sizeof(*out));
    json_error_t je;
    json_t *root = json_loadb(s, n, 0, &je);
    char msg[300];
    if (!root) {
        snprintf(msg, sizeof(msg), "failed to parse a JWK key (set): %s", je.text);
        set_err(err, errlen, msg);
        return false;
    }
    json_t *keys = json_object_get(root, "keys");
    size_t count = json_is_array(keys) ? json_array_size(keys) : 1;
    out->keys = calloc(count ? count : 1, sizeof(pc_plib_jwk_t));
    if (!out->keys) {
        json_decref(root);
        return false;
    }
    for (size_t i = 0; i < count; i++) {
        json_t *o = json_is_array(keys) ? json_array_get(keys, i) : root;
        pc_plib_jwk_t k;
        const char *why = jwk_parse_one(o, &k);
        if (why) {
            jwk_clear(&k);
            snprintf(msg, sizeof(msg), "failed to parse a JWK key (set): %s", why);
            set_err(err, errlen, msg);
            pc_plib_keyset_free(out);
            json_decref(root);
            return false;
        }
        /* keys naming an algorithm we do not know are skipped, like OPA */
        if (k.alg[0] && !pc_plib_jws_alg_known(k.alg, strlen(k.alg))) {
            jwk_clear(&k);
            continue;
        }
        out->keys[out->n++] = k;
    }
    json_decref(root);
    return true;
}

/* PEM: the next block, Go's pem.Decode rules for what belongs to it */
bool pc__pem_next(const char *s, size_t n, char *type, size_t tcap, unsigned char **der,
                  size_t *dlen, size_t *consumed)
{
    const char *b = memmem(s, n, "-----BEGIN ", 11);
    if (!b) return false;
    const char *te = memmem(b + 11, (size_t)(s + n - b - 11), "-----", 5);
    if (!te) return false;
    size_t tl = (size_t)(te - b - 11);
    if (tl >= tcap) tl = tcap - 1;
    memcpy(type, b + 11, tl);
    type[tl] = '\0';
    const char *body = te + 5;
    char endm[96];
    snprintf(endm, sizeof(endm), "-----END %s-----", type);
    const char *e = memmem(body, (size_t)(s + n - body), endm, strlen(endm));
    if (!e) return false;
    /* base64 body without whitespace; header lines ("Key: value") are skipped */
    char *b64 = malloc((size_t)(e - body) + 1);
    if (!b64) return false;
    size_t k = 0;
    const char *line = body;
    while (line < e) {
        const char *nl = memchr(line, '\n', (size_t)(e - line));
        const char *le = nl ? nl : e;
        if (!memchr(line, ':', (size_t)(le - line)))
            for (const char *p = line; p < le; p++)
                if (*p != ' ' && *p != '\t' && *p != '\r') b64[k++] = *p;
        line = nl ? nl + 1 : e;
    }
    char *d = pc_plib_base64_decode(PC_PLIB_B64_STD, b64, k, dlen, NULL, 0);
    free(b64);
    if (!d) return false;
    *der = (unsigned char *)d;
    const char *rest = e + strlen(endm);
    /* the rest of the END line (including its newline) belongs to the block */
    while (rest < s + n && *rest != '\n') rest++;
    if (rest < s + n) rest++;
    *consumed = (size_t)(rest - s);
    return true;
}

bool pc_plib_keyset_parse(const char *s, size_t n, pc_plib_keyset_t *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof(*out));
    char type[64];
    unsigned char *der = NULL;
    size_t dlen, used;
    if (!pc__pem_next(s, n, type, sizeof(type), &der, &dlen, &used))
        return pc_plib_keyset_parse_jwk(s, n, out, err, errlen);
    bool extra = used < n;
    out->from_pem = true;
    EVP_PKEY *pk = NULL;
    bool ok = false;
    if (extra) {
        set_err(err, errlen, "extra data after a PEM certificate block");
        goto done;
    }
    const unsigned char *p = der;
    if (!strcmp(type, "CERTIFICATE")) {
        X509 *x = d2i_X509(NULL, &p, (long)dlen);
        if (!x || p != der + dlen) {
            X509_free(x);
            set_err(err, errlen, "failed to parse a PEM certificate: x509: malformed certificate");
            goto done;
        }
        pk = X509_get_pubkey(x);
        X509_free(x);
    } else if (!strcmp(type, "PUBLIC KEY")) {
        pk = d2i_PUBKEY(NULL, &p, (long)dlen);
        if (!pk) {
            set_err(err, errlen, "failed to parse a PEM public key: asn1: structure error");
            goto done;
        }
    } else {
        set_err(err, errlen, "failed to extract a Key from the PEM certificate");
        goto done;
    }
    if (!pk) {
        set_err(err, errlen, "failed to extract a Key from the PEM certificate");
        goto done;
    }
    out->keys = calloc(1, sizeof(pc_plib_jwk_t));
    if (!out->keys) {
        EVP_PKEY_free(pk);
        goto done;
    }
    out->keys[0].pkey = pk;
    out->n = 1;
    ok = true;
done:
    free(der);
    return ok;
}
