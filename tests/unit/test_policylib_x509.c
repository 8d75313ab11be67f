/* X.509 helpers: certificates built here with OpenSSL, parsed back as Go-shaped JSON. */
#include "plib_test.h"

#include "policy/lib/encoding.h"
#include "policy/lib/x509.h"

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

static X509 *make_cert(EVP_PKEY *key, EVP_PKEY *signer, X509 *issuer, const char *cn, const char *san,
                       bool ca, long serial)
{
    X509 *x = X509_new();
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), serial);
    X509_gmtime_adj(X509_getm_notBefore(x), -3600);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600L * 24 * 365);
    X509_set_pubkey(x, key);
    X509_NAME *name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(name, "C", MBSTRING_ASC, (const unsigned char *)"GB", -1, -1, 0);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
    X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : name);
    X509V3_CTX v3;
    X509V3_set_ctx_nodb(&v3);
    X509V3_set_ctx(&v3, issuer ? issuer : x, x, NULL, NULL, 0);
    X509_EXTENSION *e = X509V3_EXT_conf_nid(NULL, &v3, NID_basic_constraints, ca ? "critical,CA:TRUE" : "CA:FALSE");
    X509_add_ext(x, e, -1);
    X509_EXTENSION_free(e);
    if (ca) {
        e = X509V3_EXT_conf_nid(NULL, &v3, NID_key_usage, "critical,keyCertSign,cRLSign");
        X509_add_ext(x, e, -1);
        X509_EXTENSION_free(e);
    }
    if (san) {
        e = X509V3_EXT_conf_nid(NULL, &v3, NID_subject_alt_name, san);
        X509_add_ext(x, e, -1);
        X509_EXTENSION_free(e);
    }
    assert_true(X509_sign(x, signer, EVP_sha256()) > 0);
    return x;
}

static void append_pem(char *buf, size_t cap, X509 *x)
{
    BIO *bio = BIO_new(BIO_s_mem());
    PEM_write_bio_X509(bio, x);
    char *p;
    long n = BIO_get_mem_data(bio, &p);
    size_t l = strlen(buf);
    snprintf(buf + l, cap - l, "%.*s", (int)n, p);
    BIO_free(bio);
}

static void test_certs(void **state)
{
    (void)state;
    EVP_PKEY *rk = EVP_EC_gen("P-256"), *lk = EVP_EC_gen("P-256");
    X509 *root = make_cert(rk, rk, NULL, "Test Root", NULL, true, 1);
    X509 *leaf = make_cert(lk, rk, root, "leaf.example",
                           "DNS:leaf.example,URI:spiffe://example.com/opa,IP:10.1.2.3", false, 12345);
    char pem[16384] = "";
    append_pem(pem, sizeof(pem), leaf);
    char err[256];
    char *j = pc_plib_x509_parse_certs(pem, strlen(pem), err, sizeof(err));
    if (!j) fail_msg("%s", err);
    assert_non_null(strstr(j, "\"CommonName\":\"leaf.example\""));
    assert_non_null(strstr(j, "\"DNSNames\":[\"leaf.example\"]"));
    assert_non_null(strstr(j, "\"URIStrings\":[\"spiffe://example.com/opa\"]"));
    assert_non_null(strstr(j, "\"IPAddresses\":[\"10.1.2.3\"]"));
    assert_non_null(strstr(j, "\"SerialNumber\":12345"));
    assert_non_null(strstr(j, "\"Country\":[\"GB\"]"));
    free(j);

    /* the same as base64 of the PEM text */
    size_t bl;
    char *b64 = pc_plib_base64_encode(PC_PLIB_B64_STD, pem, strlen(pem), &bl);
    j = pc_plib_x509_parse_certs(b64, bl, err, sizeof(err));
    assert_non_null(j);
    assert_non_null(strstr(j, "leaf.example"));
    free(j);
    free(b64);

    /* chain: root first, leaf last */
    char chain[32768] = "";
    append_pem(chain, sizeof(chain), root);
    append_pem(chain, sizeof(chain), leaf);
    bool valid;
    j = pc_plib_x509_verify_chain(chain, strlen(chain), &valid);
    assert_true(valid);
    /* the leaf comes first: its subject precedes the second certificate */
    const char *second = strstr(strstr(j, "\"Raw\"") + 1, "\"Raw\"");
    const char *leaf_cn = strstr(j, "\"CommonName\":\"leaf.example\"");
    assert_non_null(second);
    assert_non_null(leaf_cn);
    assert_true(leaf_cn < second);
    free(j);
    /* options: host name and key usages */
    pc_plib_x509_opts_t o = {.dns_name = "leaf.example"};
    j = pc_plib_x509_verify_chain_opts(chain, strlen(chain), &o, &valid);
    assert_true(valid); /* no EKU extension: any usage */
    free(j);
    o.dns_name = "other.example";
    j = pc_plib_x509_verify_chain_opts(chain, strlen(chain), &o, &valid);
    assert_false(valid);
    free(j);
    o.dns_name = NULL;
    o.have_time = true;
    o.time_ns = 1000000000LL * 86400 * 365 * 80; /* 2049: past notAfter */
    j = pc_plib_x509_verify_chain_opts(chain, strlen(chain), &o, &valid);
    assert_false(valid);
    free(j);
    assert_int_equal(pc_plib_x509_key_usage("KeyUsageClientAuth"), 2);
    assert_int_equal(pc_plib_x509_key_usage("nope"), -1);
    /* a leaf signed by someone else does not verify */
    EVP_PKEY *other = EVP_EC_gen("P-256");
    X509 *rogue = make_cert(lk, other, root, "rogue", NULL, false, 7);
    char bad[32768] = "";
    append_pem(bad, sizeof(bad), root);
    append_pem(bad, sizeof(bad), rogue);
    j = pc_plib_x509_verify_chain(bad, strlen(bad), &valid);
    assert_false(valid);
    assert_string_equal(j, "[]");
    free(j);

    assert_null(pc_plib_x509_parse_certs("YmFkc3RyaW5n", 12, err, sizeof(err)));
    assert_string_equal(err, "x509: malformed certificate");
    assert_null(pc_plib_x509_parse_certs("foobar", 6, err, sizeof(err)));
    assert_non_null(strstr(err, "illegal base64"));

    X509_free(root);
    X509_free(leaf);
    X509_free(rogue);
    EVP_PKEY_free(rk);
    EVP_PKEY_free(lk);
    EVP_PKEY_free(other);
}

static void test_keys(void **state)
{
    (void)state;
    EVP_PKEY *k = EVP_RSA_gen(2048);
    BIO *bio = BIO_new(BIO_s_mem());
    PEM_write_bio_PrivateKey(bio, k, NULL, NULL, 0, NULL, NULL);
    char *p;
    long n = BIO_get_mem_data(bio, &p);
    char err[256];
    char *j = pc_plib_x509_rsa_key_jwk(p, (size_t)n, err, sizeof(err));
    if (!j) fail_msg("%s", err);
    assert_non_null(strstr(j, "\"kty\":\"RSA\""));
    assert_non_null(strstr(j, "\"qi\":"));
    free(j);
    j = pc_plib_parse_private_keys(p, (size_t)n);
    assert_true(j[0] == '[' && strstr(j, "RSA"));
    free(j);
    BIO_free(bio);
    j = pc_plib_parse_private_keys("nope", 4);
    assert_string_equal(j, "[]");
    free(j);
    j = pc_plib_parse_private_keys("", 0);
    assert_string_equal(j, "null");
    free(j);
    EVP_PKEY_free(k);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_certs),
        cmocka_unit_test(test_keys),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
