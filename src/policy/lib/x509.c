/*
 * Certificates to Go-shaped JSON. Inputs follow OPA: text starting with
 * "-----BEGIN" is PEM, anything else is base64 of either PEM or DER.
 */
#include "policy/lib/x509.h"

#include "policy/lib/encoding.h"
#include "policy/lib/jose.h"
#include "policy/lib/sbuf.h"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void set_err(char *err, size_t errlen, const char *msg)
{
    if (err && errlen) snprintf(err, errlen, "%s", msg);
}

/* ---- JSON writing ---------------------------------------------------------- */

static void j_b64(pc__sbuf_t *b, const unsigned char *d, size_t n)
{
    size_t l;
    char *e = pc_plib_base64_encode(PC_PLIB_B64_STD, d, n, &l);
    if (!e) {
        b->oom = true;
        return;
    }
    pc__sbuf_json_str(b, e, l);
    free(e);
}

static void j_bn(pc__sbuf_t *b, const BIGNUM *bn)
{
    char *d = BN_bn2dec(bn);
    if (!d) {
        pc__sbuf_adds(b, "null");
        return;
    }
    pc__sbuf_adds(b, d);
    OPENSSL_free(d);
}

/* list of strings; Go marshals a nil slice as null */
typedef struct {
    char **v;
    size_t n, cap;
} strlist_t;

static void sl_add(strlist_t *l, const char *s, size_t n)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 4;
        char **p = realloc(l->v, cap * sizeof(char *));
        if (!p) return;
        l->v = p;
        l->cap = cap;
    }
    char *c = strndup(s, n);
    if (c) l->v[l->n++] = c;
}

static void sl_json(pc__sbuf_t *b, const strlist_t *l)
{
    if (l->n == 0) {
        pc__sbuf_adds(b, "null");
        return;
    }
    pc__sbuf_addc(b, '[');
    for (size_t i = 0; i < l->n; i++) {
        if (i) pc__sbuf_addc(b, ',');
        pc__sbuf_json_str(b, l->v[i], strlen(l->v[i]));
    }
    pc__sbuf_addc(b, ']');
}

static void sl_free(strlist_t *l)
{
    for (size_t i = 0; i < l->n; i++) free(l->v[i]);
    free(l->v);
    memset(l, 0, sizeof(*l));
}

/* pkix.Name */
static void j_name(pc__sbuf_t *b, const X509_NAME *name)
{
    static const struct {
        int nid;
        const char *field;
    } fields[] = {
        {NID_countryName, "Country"},       {NID_organizationName, "Organization"},
        {NID_organizationalUnitName, "OrganizationalUnit"},
        {NID_localityName, "Locality"},     {NID_stateOrProvinceName, "Province"},
        {NID_streetAddress, "StreetAddress"}, {NID_postalCode, "PostalCode"},
    };
    strlist_t lists[7] = {{0}};
    const char *cn = "", *serial = "";
    char *cn_own = NULL, *serial_own = NULL;
    pc__sbuf_t names = {0};
    pc__sbuf_addc(&names, '[');
    int count = name ? X509_NAME_entry_count(name) : 0;
    for (int i = 0; i < count; i++) {
        const X509_NAME_ENTRY *e = X509_NAME_get_entry(name, i);
        const ASN1_OBJECT *obj = X509_NAME_ENTRY_get_object(e);
        const ASN1_STRING *val = X509_NAME_ENTRY_get_data(e);
        unsigned char *utf8 = NULL;
        int ul = ASN1_STRING_to_UTF8(&utf8, val);
        if (ul < 0) continue;
        int nid = OBJ_obj2nid(obj);
        for (size_t f = 0; f < 7; f++)
            if (fields[f].nid == nid) sl_add(&lists[f], (char *)utf8, (size_t)ul);
        if (nid == NID_commonName) {
            free(cn_own);
            cn = cn_own = strndup((char *)utf8, (size_t)ul);
        } else if (nid == NID_serialNumber) {
            free(serial_own);
            serial = serial_own = strndup((char *)utf8, (size_t)ul);
        }
        /* {"Type": [2,5,4,3], "Value": "..."} */
        char oid[128];
        OBJ_obj2txt(oid, sizeof(oid), obj, 1);
        if (i) pc__sbuf_addc(&names, ',');
        pc__sbuf_adds(&names, "{\"Type\":[");
        for (char *p = oid; *p; p++) pc__sbuf_addc(&names, *p == '.' ? ',' : *p);
        pc__sbuf_adds(&names, "],\"Value\":");
        pc__sbuf_json_str(&names, (char *)utf8, (size_t)ul);
        pc__sbuf_addc(&names, '}');
        OPENSSL_free(utf8);
    }
    pc__sbuf_addc(&names, ']');
    bool first = true;
    pc__sbuf_addc(b, '{');
    for (size_t f = 0; f < 7; f++) {
        pc__sbuf_json_key(b, &first, fields[f].field);
        sl_json(b, &lists[f]);
        sl_free(&lists[f]);
    }
    pc__sbuf_json_key(b, &first, "SerialNumber");
    pc__sbuf_json_str(b, serial ? serial : "", serial ? strlen(serial) : 0);
    pc__sbuf_json_key(b, &first, "CommonName");
    pc__sbuf_json_str(b, cn ? cn : "", cn ? strlen(cn) : 0);
    pc__sbuf_json_key(b, &first, "Names");
    if (count)
        pc__sbuf_add(b, names.data, names.len);
    else
        pc__sbuf_adds(b, "[]");
    pc__sbuf_json_key(b, &first, "ExtraNames");
    pc__sbuf_adds(b, "null");
    pc__sbuf_addc(b, '}');
    pc__sbuf_free(&names);
    free(cn_own);
    free(serial_own);
}

static void j_time(pc__sbuf_t *b, const ASN1_TIME *t)
{
    struct tm tm;
    if (!t || ASN1_TIME_to_tm(t, &tm) != 1) {
        pc__sbuf_adds(b, "\"0001-01-01T00:00:00Z\"");
        return;
    }
    char buf[64];
    strftime(buf, sizeof(buf), "\"%Y-%m-%dT%H:%M:%SZ\"", &tm);
    pc__sbuf_adds(b, buf);
}

/* subjectAltName entries into Go's lists */
static void alt_names(const GENERAL_NAMES *gens, strlist_t *dns, strlist_t *email, strlist_t *ips,
                      strlist_t *uris)
{
    int n = gens ? sk_GENERAL_NAME_num(gens) : 0;
    for (int i = 0; i < n; i++) {
        const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);
        int type;
        const ASN1_STRING *s = GENERAL_NAME_get0_value(g, &type);
        if (!s) continue;
        const char *d = (const char *)ASN1_STRING_get0_data(s);
        size_t l = (size_t)ASN1_STRING_length(s);
        switch (type) {
        case GEN_DNS: sl_add(dns, d, l); break;
        case GEN_EMAIL: sl_add(email, d, l); break;
        case GEN_URI: sl_add(uris, d, l); break;
        case GEN_IPADD: {
            char buf[64] = "";
            const unsigned char *u = (const unsigned char *)d;
            if (l == 4) {
                snprintf(buf, sizeof(buf), "%u.%u.%u.%u", u[0], u[1], u[2], u[3]);
            } else if (l == 16) {
                size_t k = 0;
                for (int j = 0; j < 16; j += 2)
                    k += (size_t)snprintf(buf + k, sizeof(buf) - k, "%s%x", j ? ":" : "", u[j] << 8 | u[j + 1]);
            }
            if (buf[0]) sl_add(ips, buf, strlen(buf));
            break;
        }
        default: break;
        }
    }
}

static int go_sig_alg(int nid)
{
    switch (nid) {
    case NID_md2WithRSAEncryption: return 1;
    case NID_md5WithRSAEncryption: return 2;
    case NID_sha1WithRSAEncryption: return 3;
    case NID_sha256WithRSAEncryption: return 4;
    case NID_sha384WithRSAEncryption: return 5;
    case NID_sha512WithRSAEncryption: return 6;
    case NID_dsaWithSHA1: return 7;
    case NID_dsa_with_SHA256: return 8;
    case NID_ecdsa_with_SHA1: return 9;
    case NID_ecdsa_with_SHA256: return 10;
    case NID_ecdsa_with_SHA384: return 11;
    case NID_ecdsa_with_SHA512: return 12;
    case NID_rsassaPss: return 13;
    case NID_ED25519: return 16;
    default: return 0;
    }
}

static int go_pk_alg(const EVP_PKEY *pk)
{
    switch (pk ? EVP_PKEY_get_base_id(pk) : 0) {
    case EVP_PKEY_RSA: return 1;
    case EVP_PKEY_DSA: return 2;
    case EVP_PKEY_EC: return 3;
    case EVP_PKEY_ED25519: return 4;
    default: return 0;
    }
}

static void j_pubkey(pc__sbuf_t *b, const EVP_PKEY *pk)
{
    BIGNUM *x = NULL, *y = NULL;
    if (pk && EVP_PKEY_get_base_id(pk) == EVP_PKEY_RSA &&
        EVP_PKEY_get_bn_param(pk, OSSL_PKEY_PARAM_RSA_N, &x) == 1 &&
        EVP_PKEY_get_bn_param(pk, OSSL_PKEY_PARAM_RSA_E, &y) == 1) {
        pc__sbuf_adds(b, "{\"N\":");
        j_bn(b, x);
        pc__sbuf_adds(b, ",\"E\":");
        j_bn(b, y);
        pc__sbuf_addc(b, '}');
    } else if (pk && EVP_PKEY_get_base_id(pk) == EVP_PKEY_EC &&
               EVP_PKEY_get_bn_param(pk, OSSL_PKEY_PARAM_EC_PUB_X, &x) == 1 &&
               EVP_PKEY_get_bn_param(pk, OSSL_PKEY_PARAM_EC_PUB_Y, &y) == 1) {
        pc__sbuf_adds(b, "{\"Curve\":{},\"X\":");
        j_bn(b, x);
        pc__sbuf_adds(b, ",\"Y\":");
        j_bn(b, y);
        pc__sbuf_addc(b, '}');
    } else {
        pc__sbuf_adds(b, "null");
    }
    BN_free(x);
    BN_free(y);
}

static void j_cert(pc__sbuf_t *b, X509 *x)
{
    bool first = true;
    unsigned char *der = NULL;
    int dl = i2d_X509(x, &der);
    pc__sbuf_addc(b, '{');
    pc__sbuf_json_key(b, &first, "Raw");
    if (dl > 0) j_b64(b, der, (size_t)dl);
    else pc__sbuf_adds(b, "null");
    OPENSSL_free(der);
    pc__sbuf_json_key(b, &first, "SignatureAlgorithm");
    char num[32];
    snprintf(num, sizeof(num), "%d", go_sig_alg(X509_get_signature_nid(x)));
    pc__sbuf_adds(b, num);
    EVP_PKEY *pk = X509_get0_pubkey(x);
    pc__sbuf_json_key(b, &first, "PublicKeyAlgorithm");
    snprintf(num, sizeof(num), "%d", go_pk_alg(pk));
    pc__sbuf_adds(b, num);
    pc__sbuf_json_key(b, &first, "PublicKey");
    j_pubkey(b, pk);
    pc__sbuf_json_key(b, &first, "Version");
    snprintf(num, sizeof(num), "%ld", X509_get_version(x) + 1);
    pc__sbuf_adds(b, num);
    pc__sbuf_json_key(b, &first, "SerialNumber");
    BIGNUM *sn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(x), NULL);
    if (sn) j_bn(b, sn);
    else pc__sbuf_adds(b, "null");
    BN_free(sn);
    pc__sbuf_json_key(b, &first, "Issuer");
    j_name(b, X509_get_issuer_name(x));
    pc__sbuf_json_key(b, &first, "Subject");
    j_name(b, X509_get_subject_name(x));
    pc__sbuf_json_key(b, &first, "NotBefore");
    j_time(b, X509_get0_notBefore(x));
    pc__sbuf_json_key(b, &first, "NotAfter");
    j_time(b, X509_get0_notAfter(x));
    /* Go's KeyUsage bits are the X.509 bit string read LSB-first */
    uint32_t ku = X509_get_key_usage(x), gku = 0;
    if (ku != UINT32_MAX) {
        static const uint32_t map[9] = {KU_DIGITAL_SIGNATURE, KU_NON_REPUDIATION, KU_KEY_ENCIPHERMENT,
                                        KU_DATA_ENCIPHERMENT, KU_KEY_AGREEMENT,   KU_KEY_CERT_SIGN,
                                        KU_CRL_SIGN,          KU_ENCIPHER_ONLY,   KU_DECIPHER_ONLY};
        for (int i = 0; i < 9; i++)
            if (ku & map[i]) gku |= 1u << i;
    }
    pc__sbuf_json_key(b, &first, "KeyUsage");
    snprintf(num, sizeof(num), "%u", gku);
    pc__sbuf_adds(b, num);
    uint32_t xku = X509_get_extended_key_usage(x);
    pc__sbuf_json_key(b, &first, "ExtKeyUsage");
    if (xku == UINT32_MAX || !(X509_get_extension_flags(x) & EXFLAG_XKUSAGE)) {
        pc__sbuf_adds(b, "null");
    } else {
        static const struct {
            uint32_t bit;
            int go;
        } xm[] = {{XKU_ANYEKU, 0},  {XKU_SSL_SERVER, 1}, {XKU_SSL_CLIENT, 2}, {XKU_CODE_SIGN, 3},
                  {XKU_SMIME, 4},   {XKU_TIMESTAMP, 8},  {XKU_OCSP_SIGN, 9},  {XKU_SGC, 11}};
        bool f2 = true;
        pc__sbuf_addc(b, '[');
        for (size_t i = 0; i < sizeof(xm) / sizeof(xm[0]); i++)
            if (xku & xm[i].bit) {
                snprintf(num, sizeof(num), "%s%d", f2 ? "" : ",", xm[i].go);
                pc__sbuf_adds(b, num);
                f2 = false;
            }
        pc__sbuf_addc(b, ']');
    }
    uint32_t fl = X509_get_extension_flags(x);
    bool bc = (fl & EXFLAG_BCONS) != 0;
    pc__sbuf_json_key(b, &first, "BasicConstraintsValid");
    pc__sbuf_adds(b, bc ? "true" : "false");
    pc__sbuf_json_key(b, &first, "IsCA");
    pc__sbuf_adds(b, (fl & EXFLAG_CA) && bc ? "true" : "false");
    long plen = X509_get_pathlen(x);
    pc__sbuf_json_key(b, &first, "MaxPathLen");
    snprintf(num, sizeof(num), "%ld", bc ? (plen >= 0 ? plen : -1) : 0);
    pc__sbuf_adds(b, num);
    pc__sbuf_json_key(b, &first, "MaxPathLenZero");
    pc__sbuf_adds(b, bc && plen == 0 ? "true" : "false");
    const ASN1_OCTET_STRING *skid = X509_get0_subject_key_id(x);
    pc__sbuf_json_key(b, &first, "SubjectKeyId");
    if (skid) j_b64(b, ASN1_STRING_get0_data(skid), (size_t)ASN1_STRING_length(skid));
    else pc__sbuf_adds(b, "null");
    const ASN1_OCTET_STRING *akid = X509_get0_authority_key_id(x);
    pc__sbuf_json_key(b, &first, "AuthorityKeyId");
    if (akid) j_b64(b, ASN1_STRING_get0_data(akid), (size_t)ASN1_STRING_length(akid));
    else pc__sbuf_adds(b, "null");
    strlist_t dns = {0}, email = {0}, ips = {0}, uris = {0};
    GENERAL_NAMES *gens = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
    alt_names(gens, &dns, &email, &ips, &uris);
    GENERAL_NAMES_free(gens);
    pc__sbuf_json_key(b, &first, "DNSNames");
    sl_json(b, &dns);
    pc__sbuf_json_key(b, &first, "EmailAddresses");
    sl_json(b, &email);
    pc__sbuf_json_key(b, &first, "IPAddresses");
    sl_json(b, &ips);
    pc__sbuf_json_key(b, &first, "URIStrings");
    sl_json(b, &uris);
    sl_free(&dns);
    sl_free(&email);
    sl_free(&ips);
    sl_free(&uris);
    pc__sbuf_addc(b, '}');
}

/* ---- input ----------------------------------------------------------------- */

typedef struct {
    X509 **v;
    size_t n, cap;
} certs_t;

static void certs_free(certs_t *c)
{
    for (size_t i = 0; i < c->n; i++) X509_free(c->v[i]);
    free(c->v);
    memset(c, 0, sizeof(*c));
}

static bool certs_add(certs_t *c, X509 *x)
{
    if (c->n == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 4;
        X509 **p = realloc(c->v, cap * sizeof(X509 *));
        if (!p) return false;
        c->v = p;
        c->cap = cap;
    }
    c->v[c->n++] = x;
    return true;
}

/* x509.ParseCertificates: concatenated DER */
static bool parse_der_certs(const unsigned char *d, size_t n, certs_t *out, char *err, size_t errlen)
{
    const unsigned char *p = d;
    while (p < d + n) {
        const unsigned char *start = p;
        X509 *x = d2i_X509(NULL, &p, (long)(d + n - p));
        if (!x || p == start) {
            X509_free(x);
            set_err(err, errlen, "x509: malformed certificate");
            return false;
        }
        if (!certs_add(out, x)) {
            X509_free(x);
            return false;
        }
    }
    return true;
}

static bool parse_pem_certs(const char *s, size_t n, certs_t *out, char *err, size_t errlen)
{
    pc__sbuf_t all = {0};
    size_t off = 0;
    char type[64];
    unsigned char *der;
    size_t dl, used;
    while (off < n && pc__pem_next(s + off, n - off, type, sizeof(type), &der, &dl, &used)) {
        pc__sbuf_add(&all, der, dl);
        free(der);
        off += used;
    }
    bool ok = parse_der_certs((unsigned char *)(all.data ? all.data : ""), all.len, out, err, errlen);
    pc__sbuf_free(&all);
    return ok;
}

/* OPA's getX509CertsFromString */
static bool certs_from_string(const char *s, size_t n, certs_t *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof(*out));
    if (n >= 10 && memcmp(s, "-----BEGIN", 10) == 0) {
        /* certificates parsed before a malformed one are released here too */
        bool ok = parse_pem_certs(s, n, out, err, errlen);
        if (!ok) certs_free(out);
        return ok;
    }
    size_t dl;
    char *d = pc_plib_base64_decode(PC_PLIB_B64_STD, s, n, &dl, err, errlen);
    if (!d) return false;
    bool ok = dl >= 10 && memcmp(d, "-----BEGIN", 10) == 0
                  ? parse_pem_certs(d, dl, out, err, errlen)
                  : parse_der_certs((unsigned char *)d, dl, out, err, errlen);
    free(d);
    if (!ok) certs_free(out);
    return ok;
}

char *pc_plib_x509_parse_certs(const char *s, size_t n, char *err, size_t errlen)
{
    certs_t c;
    if (!certs_from_string(s, n, &c, err, errlen)) return NULL;
    pc__sbuf_t b = {0};
    pc__sbuf_addc(&b, '[');
    for (size_t i = 0; i < c.n; i++) {
        if (i) pc__sbuf_addc(&b, ',');
        j_cert(&b, c.v[i]);
    }
    pc__sbuf_addc(&b, ']');
    certs_free(&c);
    return pc__sbuf_take(&b, NULL);
}

int pc_plib_x509_key_usage(const char *name)
{
    static const char *names[] = {"KeyUsageAny", "KeyUsageServerAuth", "KeyUsageClientAuth", "KeyUsageCodeSigning",
                                  "KeyUsageEmailProtection", "KeyUsageIPSECEndSystem", "KeyUsageIPSECTunnel",
                                  "KeyUsageIPSECUser", "KeyUsageTimeStamping", "KeyUsageOCSPSigning",
                                  "KeyUsageMicrosoftServerGatedCrypto", "KeyUsageNetscapeServerGatedCrypto",
                                  "KeyUsageMicrosoftCommercialCodeSigning", "KeyUsageMicrosoftKernelCodeSigning", NULL};
    for (int i = 0; names[i]; i++)
        if (!strcmp(names[i], name)) return i;
    return -1;
}

/* the leaf's extended key usages admit one of the wanted ones (Go ExtKeyUsage numbers) */
static bool eku_ok(X509 *leaf, const int *want, size_t n)
{
    static const int default_usage = 1; /* ServerAuth */
    if (n == 0) {
        want = &default_usage;
        n = 1;
    }
    for (size_t i = 0; i < n; i++)
        if (want[i] == 0) return true;
    if (!(X509_get_extension_flags(leaf) & EXFLAG_XKUSAGE)) return true; /* no EKU: any usage */
    uint32_t xku = X509_get_extended_key_usage(leaf);
    if (xku & XKU_ANYEKU) return true;
    static const struct {
        int go;
        uint32_t bit;
    } m[] = {{1, XKU_SSL_SERVER}, {2, XKU_SSL_CLIENT}, {3, XKU_CODE_SIGN}, {4, XKU_SMIME},
             {8, XKU_TIMESTAMP}, {9, XKU_OCSP_SIGN}, {11, XKU_SGC}};
    for (size_t i = 0; i < n; i++)
        for (size_t k = 0; k < sizeof(m) / sizeof(m[0]); k++)
            if (m[k].go == want[i] && (xku & m[k].bit)) return true;
    return false;
}

char *pc_plib_x509_verify_chain(const char *s, size_t n, bool *valid)
{
    static const int any = 0;
    pc_plib_x509_opts_t o = {.key_usages = &any, .nkey_usages = 1};
    return pc_plib_x509_verify_chain_opts(s, n, &o, valid);
}

char *pc_plib_x509_verify_chain_opts(const char *s, size_t n, const pc_plib_x509_opts_t *o, bool *valid)
{
    certs_t c;
    *valid = false;
    if (!certs_from_string(s, n, &c, NULL, 0) || c.n < 2) {
        if (c.v) certs_free(&c);
        return strdup("[]");
    }
    X509_STORE *store = X509_STORE_new();
    STACK_OF(X509) *inter = sk_X509_new_null();
    X509_STORE_CTX *ctx = X509_STORE_CTX_new();
    pc__sbuf_t b = {0};
    if (!store || !inter || !ctx) goto out;
    X509_STORE_add_cert(store, c.v[0]);
    for (size_t i = 1; i + 1 < c.n; i++) sk_X509_push(inter, c.v[i]);
    if (X509_STORE_CTX_init(ctx, store, c.v[c.n - 1], inter) != 1) goto out;
    X509_VERIFY_PARAM *vp = X509_STORE_CTX_get0_param(ctx);
    if (o->dns_name && X509_VERIFY_PARAM_set1_host(vp, o->dns_name, 0) != 1) goto out;
    if (o->have_time) X509_VERIFY_PARAM_set_time(vp, (time_t)(o->time_ns / 1000000000));
    if (X509_verify_cert(ctx) == 1 && eku_ok(c.v[c.n - 1], o->key_usages, o->nkey_usages)) {
        STACK_OF(X509) *chain = X509_STORE_CTX_get0_chain(ctx);
        *valid = true;
        pc__sbuf_addc(&b, '[');
        for (int i = 0; i < sk_X509_num(chain); i++) {
            if (i) pc__sbuf_addc(&b, ',');
            j_cert(&b, sk_X509_value(chain, i));
        }
        pc__sbuf_addc(&b, ']');
    }
out:
    X509_STORE_CTX_free(ctx);
    sk_X509_free(inter);
    X509_STORE_free(store);
    certs_free(&c);
    if (!*valid) {
        pc__sbuf_free(&b);
        return strdup("[]");
    }
    return pc__sbuf_take(&b, NULL);
}

char *pc_plib_x509_parse_csr(const char *s, size_t n, char *err, size_t errlen)
{
    unsigned char *bytes = NULL;
    size_t bl = 0;
    const char *hdr = "-----BEGIN CERTIFICATE REQUEST-----";
    if (n >= strlen(hdr) && memcmp(s, hdr, strlen(hdr)) == 0) {
        bytes = (unsigned char *)strndup(s, n);
        bl = n;
    } else {
        bytes = (unsigned char *)pc_plib_base64_decode(PC_PLIB_B64_STD, s, n, &bl, err, errlen);
    }
    if (!bytes) return NULL;
    char type[64];
    unsigned char *der = NULL;
    size_t dl, used;
    if (pc__pem_next((char *)bytes, bl, type, sizeof(type), &der, &dl, &used)) {
        if (strcmp(type, "CERTIFICATE REQUEST") != 0) {
            free(der);
            free(bytes);
            set_err(err, errlen, "invalid PEM-encoded certificate signing request");
            return NULL;
        }
        free(bytes);
        bytes = der;
        bl = dl;
    }
    const unsigned char *p = bytes;
    X509_REQ *req = d2i_X509_REQ(NULL, &p, (long)bl);
    free(bytes);
    if (!req) {
        set_err(err, errlen, "asn1: structure error");
        return NULL;
    }
    pc__sbuf_t b = {0};
    bool first = true;
    char num[32];
    pc__sbuf_addc(&b, '{');
    pc__sbuf_json_key(&b, &first, "Version");
    snprintf(num, sizeof(num), "%ld", X509_REQ_get_version(req));
    pc__sbuf_adds(&b, num);
    pc__sbuf_json_key(&b, &first, "SignatureAlgorithm");
    snprintf(num, sizeof(num), "%d", go_sig_alg(X509_REQ_get_signature_nid(req)));
    pc__sbuf_adds(&b, num);
    EVP_PKEY *pk = X509_REQ_get0_pubkey(req);
    pc__sbuf_json_key(&b, &first, "PublicKeyAlgorithm");
    snprintf(num, sizeof(num), "%d", go_pk_alg(pk));
    pc__sbuf_adds(&b, num);
    pc__sbuf_json_key(&b, &first, "PublicKey");
    j_pubkey(&b, pk);
    pc__sbuf_json_key(&b, &first, "Subject");
    j_name(&b, X509_REQ_get_subject_name(req));
    strlist_t dns = {0}, email = {0}, ips = {0}, uris = {0};
    STACK_OF(X509_EXTENSION) *exts = X509_REQ_get_extensions(req);
    for (int i = 0; exts && i < sk_X509_EXTENSION_num(exts); i++) {
        X509_EXTENSION *e = sk_X509_EXTENSION_value(exts, i);
        if (OBJ_obj2nid(X509_EXTENSION_get_object(e)) != NID_subject_alt_name) continue;
        GENERAL_NAMES *g = X509V3_EXT_d2i(e);
        alt_names(g, &dns, &email, &ips, &uris);
        GENERAL_NAMES_free(g);
    }
    sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
    pc__sbuf_json_key(&b, &first, "DNSNames");
    sl_json(&b, &dns);
    pc__sbuf_json_key(&b, &first, "EmailAddresses");
    sl_json(&b, &email);
    pc__sbuf_json_key(&b, &first, "IPAddresses");
    sl_json(&b, &ips);
    pc__sbuf_json_key(&b, &first, "URIStrings");
    sl_json(&b, &uris);
    sl_free(&dns);
    sl_free(&email);
    sl_free(&ips);
    sl_free(&uris);
    pc__sbuf_addc(&b, '}');
    X509_REQ_free(req);
    return pc__sbuf_take(&b, NULL);
}

/* ---- private keys ------------------------------------------------------------- */

static void jwk_bn(pc__sbuf_t *b, bool *first, const char *k, const EVP_PKEY *pk, const char *param)
{
    BIGNUM *bn = NULL;
    if (EVP_PKEY_get_bn_param(pk, param, &bn) != 1) return;
    int len = BN_num_bytes(bn);
    unsigned char *buf = malloc(len > 0 ? (size_t)len : 1);
    if (buf) {
        BN_bn2bin(bn, buf);
        size_t el;
        char *e = pc_plib_base64_encode(PC_PLIB_B64_RAW_URL, buf, (size_t)len, &el);
        if (e) {
            pc__sbuf_json_key(b, first, k);
            pc__sbuf_json_str(b, e, el);
            free(e);
        }
        free(buf);
    }
    BN_free(bn);
}

static void key_jwk(pc__sbuf_t *b, const EVP_PKEY *pk)
{
    bool first = true;
    pc__sbuf_addc(b, '{');
    if (EVP_PKEY_get_base_id(pk) == EVP_PKEY_RSA) {
        pc__sbuf_json_key(b, &first, "kty");
        pc__sbuf_adds(b, "\"RSA\"");
        jwk_bn(b, &first, "n", pk, OSSL_PKEY_PARAM_RSA_N);
        jwk_bn(b, &first, "e", pk, OSSL_PKEY_PARAM_RSA_E);
        jwk_bn(b, &first, "d", pk, OSSL_PKEY_PARAM_RSA_D);
        jwk_bn(b, &first, "p", pk, OSSL_PKEY_PARAM_RSA_FACTOR1);
        jwk_bn(b, &first, "q", pk, OSSL_PKEY_PARAM_RSA_FACTOR2);
        jwk_bn(b, &first, "dp", pk, OSSL_PKEY_PARAM_RSA_EXPONENT1);
        jwk_bn(b, &first, "dq", pk, OSSL_PKEY_PARAM_RSA_EXPONENT2);
        jwk_bn(b, &first, "qi", pk, OSSL_PKEY_PARAM_RSA_COEFFICIENT1);
    } else if (EVP_PKEY_get_base_id(pk) == EVP_PKEY_EC) {
        char group[64] = "";
        size_t gl;
        EVP_PKEY_get_utf8_string_param(pk, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof(group), &gl);
        const char *crv = !strcmp(group, "prime256v1") ? "P-256" : !strcmp(group, "secp384r1") ? "P-384"
                          : !strcmp(group, "secp521r1") ? "P-521" : group;
        pc__sbuf_json_key(b, &first, "kty");
        pc__sbuf_adds(b, "\"EC\"");
        pc__sbuf_json_key(b, &first, "crv");
        pc__sbuf_json_str(b, crv, strlen(crv));
        jwk_bn(b, &first, "x", pk, OSSL_PKEY_PARAM_EC_PUB_X);
        jwk_bn(b, &first, "y", pk, OSSL_PKEY_PARAM_EC_PUB_Y);
        jwk_bn(b, &first, "d", pk, OSSL_PKEY_PARAM_PRIV_KEY);
    } else {
        pc__sbuf_json_key(b, &first, "kty");
        pc__sbuf_json_str(b, OBJ_nid2sn(EVP_PKEY_get_base_id(pk)), strlen(OBJ_nid2sn(EVP_PKEY_get_base_id(pk))));
    }
    pc__sbuf_addc(b, '}');
}

/* PEM text, or base64 of PEM text */
static char *pem_text(const char *s, size_t n, size_t *out_len, char *err, size_t errlen)
{
    if (n >= 10 && memcmp(s, "-----BEGIN", 10) == 0) {
        *out_len = n;
        return strndup(s, n);
    }
    return pc_plib_base64_decode(PC_PLIB_B64_STD, s, n, out_len, err, errlen);
}

static EVP_PKEY *private_key_der(const unsigned char *der, size_t dl, const char *type)
{
    const unsigned char *p = der;
    if (!strcmp(type, "RSA PRIVATE KEY")) return d2i_PrivateKey(EVP_PKEY_RSA, NULL, &p, (long)dl);
    if (!strcmp(type, "EC PRIVATE KEY")) return d2i_PrivateKey(EVP_PKEY_EC, NULL, &p, (long)dl);
    if (!strcmp(type, "PRIVATE KEY")) return d2i_AutoPrivateKey(NULL, &p, (long)dl);
    return NULL;
}

char *pc_plib_x509_rsa_key_jwk(const char *s, size_t n, char *err, size_t errlen)
{
    size_t tl;
    char *t = pem_text(s, n, &tl, err, errlen);
    if (!t) return NULL;
    char type[64];
    unsigned char *der;
    size_t dl, used;
    EVP_PKEY *pk = NULL;
    if (pc__pem_next(t, tl, type, sizeof(type), &der, &dl, &used)) {
        pk = private_key_der(der, dl, type);
        free(der);
    }
    free(t);
    if (!pk || EVP_PKEY_get_base_id(pk) != EVP_PKEY_RSA) {
        EVP_PKEY_free(pk);
        set_err(err, errlen, "failed to parse RSA private key");
        return NULL;
    }
    pc__sbuf_t b = {0};
    key_jwk(&b, pk);
    EVP_PKEY_free(pk);
    return pc__sbuf_take(&b, NULL);
}

char *pc_plib_parse_private_keys(const char *s, size_t n)
{
    if (n == 0) return strdup("null");
    size_t tl;
    char *t = pem_text(s, n, &tl, NULL, 0);
    pc__sbuf_t b = {0};
    pc__sbuf_addc(&b, '[');
    bool first = true;
    if (t) {
        size_t off = 0, used, dl;
        char type[64];
        unsigned char *der;
        while (off < tl && pc__pem_next(t + off, tl - off, type, sizeof(type), &der, &dl, &used)) {
            EVP_PKEY *pk = private_key_der(der, dl, type);
            free(der);
            off += used;
            if (!pk) continue;
            if (!first) pc__sbuf_addc(&b, ',');
            first = false;
            key_jwk(&b, pk);
            EVP_PKEY_free(pk);
        }
        free(t);
    }
    pc__sbuf_addc(&b, ']');
    return pc__sbuf_take(&b, NULL);
}

char *pc_plib_x509_keypair(const char *cert, size_t cn, const char *key, size_t kn, char *err,
                           size_t errlen)
{
    size_t ctl, ktl;
    char *ct = pem_text(cert, cn, &ctl, err, errlen);
    if (!ct) return NULL;
    char *kt = pem_text(key, kn, &ktl, err, errlen);
    if (!kt) {
        free(ct);
        return NULL;
    }
    certs_t c;
    memset(&c, 0, sizeof(c));
    char *out = NULL;
    EVP_PKEY *pk = NULL;
    if (!parse_pem_certs(ct, ctl, &c, err, errlen) || c.n == 0) {
        if (err && errlen && c.n == 0) set_err(err, errlen, "tls: failed to find any PEM data in certificate input");
        goto done;
    }
    char type[64];
    unsigned char *der;
    size_t dl, used;
    if (pc__pem_next(kt, ktl, type, sizeof(type), &der, &dl, &used)) {
        pk = private_key_der(der, dl, type);
        free(der);
    }
    if (!pk) {
        set_err(err, errlen, "tls: failed to find any PEM data in key input");
        goto done;
    }
    if (X509_check_private_key(c.v[0], pk) != 1) {
        set_err(err, errlen, "tls: private key does not match public key");
        goto done;
    }
    pc__sbuf_t b = {0};
    pc__sbuf_adds(&b, "{\"Certificate\":[");
    for (size_t i = 0; i < c.n; i++) {
        unsigned char *d = NULL;
        int l = i2d_X509(c.v[i], &d);
        if (i) pc__sbuf_addc(&b, ',');
        if (l > 0) j_b64(&b, d, (size_t)l);
        OPENSSL_free(d);
    }
    pc__sbuf_adds(&b, "],\"PrivateKey\":");
    key_jwk(&b, pk);
    pc__sbuf_adds(&b, ",\"Leaf\":");
    j_cert(&b, c.v[0]);
    pc__sbuf_addc(&b, '}');
    out = pc__sbuf_take(&b, NULL);
done:
    EVP_PKEY_free(pk);
    certs_free(&c);
    free(ct);
    free(kt);
    return out;
}
