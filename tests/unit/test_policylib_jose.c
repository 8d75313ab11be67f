/* Hashes, HMAC, JWK/PEM keys and JWS sign/verify helpers. */
#include "plib_test.h"

#include "policy/lib/encoding.h"
#include "policy/lib/jose.h"

#include <openssl/evp.h>
#include <openssl/pem.h>

static const char *hexd(const char *alg, const char *data)
{
    static char buf[2 * PC_PLIB_MAX_DIGEST + 1];
    unsigned char d[PC_PLIB_MAX_DIGEST];
    size_t dl, hl;
    assert_true(pc_plib_digest(alg, data, strlen(data), d, &dl));
    char *h = pc_plib_hex_encode(d, dl, &hl);
    snprintf(buf, sizeof(buf), "%s", h);
    free(h);
    return buf;
}

static void test_hashes(void **state)
{
    (void)state;
    assert_string_equal(hexd("md5", ""), "d41d8cd98f00b204e9800998ecf8427e");
    assert_string_equal(hexd("sha1", "abc"), "a9993e364706816aba3e25717850c26c9cd0d89d");
    assert_string_equal(hexd("sha256", "abc"),
                        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    unsigned char d[PC_PLIB_MAX_DIGEST];
    size_t dl, hl;
    const char *msg = "what do ya want for nothing?";
    assert_true(pc_plib_hmac("sha256", "Jefe", 4, msg, strlen(msg), d, &dl));
    char *h = pc_plib_hex_encode(d, dl, &hl);
    assert_string_equal(h, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    free(h);
    assert_false(pc_plib_digest("sha3", "x", 1, d, &dl));
    assert_true(pc_plib_ct_equal("abc", 3, "abc", 3));
    assert_false(pc_plib_ct_equal("abc", 3, "abd", 3));
    assert_false(pc_plib_ct_equal("abc", 3, "ab", 2));
}

/* verify a compact JWS with a secret */
static bool hs_verify(const char *tok, const char *secret, const char *alg)
{
    const char *d2 = strrchr(tok, '.');
    size_t sl;
    char *sig = pc_plib_base64_decode(PC_PLIB_B64_RAW_URL, d2 + 1, strlen(d2 + 1), &sl, NULL, 0);
    assert_non_null(sig);
    bool ok = pc_plib_jws_verify_secret(secret, strlen(secret), alg, tok, (size_t)(d2 - tok), sig, sl);
    free(sig);
    return ok;
}

static void test_hs(void **state)
{
    (void)state;
    const char *t = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJ1c2VyIjoiYWxpY2UiLCJhenAiOiJhbGljZSIsInN1Ym9yZGluYXRlcyI6W10sImhyIjpmYWxzZX0.rz3jTY033z-NrKfwrK89_dcLF7TN4gwCMj-fVBDyLoM";
    assert_true(hs_verify(t, "secret", "HS256"));
    assert_false(hs_verify(t, "Secret", "HS256"));
    assert_false(hs_verify(t, "secret", "HS384"));
    assert_false(hs_verify(t, "secret", "RS256"));
    assert_true(pc_plib_jws_alg_known("EdDSA", 5));
    assert_false(pc_plib_jws_alg_known("none", 4));
}

static char *b64u(const unsigned char *d, size_t n)
{
    size_t l;
    return pc_plib_base64_encode(PC_PLIB_B64_RAW_URL, d, n, &l);
}

static char *bn_b64u(const EVP_PKEY *pk, const char *param)
{
    BIGNUM *bn = NULL;
    assert_int_equal(EVP_PKEY_get_bn_param(pk, param, &bn), 1);
    unsigned char buf[1024];
    int n = BN_bn2bin(bn, buf);
    BN_free(bn);
    return b64u(buf, (size_t)n);
}

static char *pubkey_pem(EVP_PKEY *pk)
{
    BIO *bio = BIO_new(BIO_s_mem());
    assert_int_equal(PEM_write_bio_PUBKEY(bio, pk), 1);
    char *p;
    long n = BIO_get_mem_data(bio, &p);
    char *s = strndup(p, (size_t)n);
    BIO_free(bio);
    return s;
}

static void sign_verify(const char *jwk, const char *alg, const char *pem)
{
    char err[256];
    pc_plib_keyset_t ks, pub;
    if (!pc_plib_keyset_parse_jwk(jwk, strlen(jwk), &ks, err, sizeof(err))) fail_msg("%s: %s", alg, err);
    assert_int_equal(ks.n, 1);
    const char *data = "eyJhbGciOiJFUzI1NiJ9.eyJmb28iOiJiYXIifQ";
    unsigned char *sig;
    size_t sn;
    if (!pc_plib_jws_sign(&ks.keys[0], alg, data, strlen(data), &sig, &sn, err, sizeof(err)))
        fail_msg("sign %s: %s", alg, err);
    assert_true(pc_plib_jws_verify(&ks.keys[0], alg, data, strlen(data), sig, sn));
    assert_false(pc_plib_jws_verify(&ks.keys[0], alg, data, strlen(data) - 1, sig, sn));
    if (pem) {
        if (!pc_plib_keyset_parse(pem, strlen(pem), &pub, err, sizeof(err))) fail_msg("pem: %s", err);
        assert_true(pub.from_pem);
        assert_true(pc_plib_jws_verify(&pub.keys[0], alg, data, strlen(data), sig, sn));
        sig[0] ^= 1;
        assert_false(pc_plib_jws_verify(&pub.keys[0], alg, data, strlen(data), sig, sn));
        pc_plib_keyset_free(&pub);
    }
    free(sig);
    pc_plib_keyset_free(&ks);
}

static void test_rsa_ec_ed(void **state)
{
    (void)state;
    char jwk[8192];
    /* RSA: private JWK from a fresh key, public side as PEM */
    EVP_PKEY *rsa = EVP_RSA_gen(2048);
    assert_non_null(rsa);
    char *n = bn_b64u(rsa, "n"), *e = bn_b64u(rsa, "e"), *d = bn_b64u(rsa, "d"),
         *p = bn_b64u(rsa, "rsa-factor1"), *q = bn_b64u(rsa, "rsa-factor2"),
         *dp = bn_b64u(rsa, "rsa-exponent1"), *dq = bn_b64u(rsa, "rsa-exponent2"),
         *qi = bn_b64u(rsa, "rsa-coefficient1");
    snprintf(jwk, sizeof(jwk),
             "{\"kty\":\"RSA\",\"n\":\"%s\",\"e\":\"%s\",\"d\":\"%s\",\"p\":\"%s\",\"q\":\"%s\","
             "\"dp\":\"%s\",\"dq\":\"%s\",\"qi\":\"%s\"}",
             n, e, d, p, q, dp, dq, qi);
    char *pem = pubkey_pem(rsa);
    sign_verify(jwk, "RS256", pem);
    sign_verify(jwk, "PS384", pem);
    sign_verify(jwk, "RS512", NULL);
    free(pem);
    free(n), free(e), free(d), free(p), free(q), free(dp), free(dq), free(qi);
    EVP_PKEY_free(rsa);

    /* EC P-256 */
    EVP_PKEY *ec = EVP_EC_gen("P-256");
    assert_non_null(ec);
    char *x = bn_b64u(ec, "qx"), *y = bn_b64u(ec, "qy"), *ed = bn_b64u(ec, "priv");
    snprintf(jwk, sizeof(jwk),
             "{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"%s\",\"y\":\"%s\",\"d\":\"%s\",\"alg\":\"ES256\",\"kid\":\"k1\"}]}",
             x, y, ed);
    pem = pubkey_pem(ec);
    sign_verify(jwk, "ES256", pem);
    free(pem);
    free(x), free(y), free(ed);
    EVP_PKEY_free(ec);

    /* Ed25519 */
    EVP_PKEY *edk = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    assert_non_null(edk);
    unsigned char raw[32];
    size_t rl = sizeof(raw);
    assert_int_equal(EVP_PKEY_get_raw_private_key(edk, raw, &rl), 1);
    char *dd = b64u(raw, rl);
    rl = sizeof(raw);
    assert_int_equal(EVP_PKEY_get_raw_public_key(edk, raw, &rl), 1);
    char *xx = b64u(raw, rl);
    snprintf(jwk, sizeof(jwk), "{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"%s\",\"d\":\"%s\"}", xx, dd);
    pem = pubkey_pem(edk);
    sign_verify(jwk, "EdDSA", pem);
    free(pem);
    free(dd), free(xx);
    EVP_PKEY_free(edk);

    /* symmetric JWK */
    sign_verify("{\"kty\":\"oct\",\"k\":\"c2VjcmV0\"}", "HS256", NULL);
}

static void test_key_errors(void **state)
{
    (void)state;
    char err[256];
    pc_plib_keyset_t ks;
    assert_false(pc_plib_keyset_parse("nope", 4, &ks, err, sizeof(err)));
    assert_non_null(strstr(err, "failed to parse a JWK key (set)"));
    const char *bad = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
    assert_false(pc_plib_keyset_parse(bad, strlen(bad), &ks, err, sizeof(err)));
    assert_string_equal(err, "failed to parse a PEM certificate: x509: malformed certificate");
    const char *other = "-----BEGIN FOO-----\nAAAA\n-----END FOO-----";
    assert_false(pc_plib_keyset_parse(other, strlen(other), &ks, err, sizeof(err)));
    assert_string_equal(err, "failed to extract a Key from the PEM certificate");
    const char *extra = "-----BEGIN FOO-----\nAAAA\n-----END FOO-----\nmore";
    assert_false(pc_plib_keyset_parse(extra, strlen(extra), &ks, err, sizeof(err)));
    assert_string_equal(err, "extra data after a PEM certificate block");
    /* keys naming an unknown algorithm are skipped */
    const char *set = "{\"keys\":[{\"kty\":\"oct\",\"k\":\"AA\",\"alg\":\"XX1\"},{\"kty\":\"oct\",\"k\":\"AA\",\"kid\":\"a\"}]}";
    assert_true(pc_plib_keyset_parse(set, strlen(set), &ks, err, sizeof(err)));
    assert_int_equal(ks.n, 1);
    assert_string_equal(ks.keys[0].kid, "a");
    pc_plib_keyset_free(&ks);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hashes),
        cmocka_unit_test(test_hs),
        cmocka_unit_test(test_rsa_ec_ed),
        cmocka_unit_test(test_key_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
