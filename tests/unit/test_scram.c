/* SCRAM-SHA-256 (RFC 7677 vectors, both sides), verifiers, SASLprep, MD5, base64. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <openssl/x509.h>

#include "core/crypto.h"
#include "pg/scram.h"

/* RFC 7677 §3 */
#define RFC_CLIENT_NONCE "rOprNGfwEbeRWgbNEkqO"
#define RFC_SERVER_NONCE "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
#define RFC_SALT "W22ZaJ0SNY7soEsUEjb6gQ=="
#define RFC_CLIENT_FIRST "n,,n=user,r=" RFC_CLIENT_NONCE
#define RFC_SERVER_FIRST "r=" RFC_CLIENT_NONCE RFC_SERVER_NONCE ",s=" RFC_SALT ",i=4096"
#define RFC_CLIENT_FINAL                                                                           \
    "c=biws,r=" RFC_CLIENT_NONCE RFC_SERVER_NONCE ",p=dHzbZapWIk4jUhN+"                            \
    "Ute9ytag9zjfMHgsqmmiz7AndVQ="
#define RFC_SERVER_FINAL "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="

static pc_scram_verifier_t rfc_verifier(const char *password)
{
    uint8_t salt[32];
    size_t salt_len;
    assert_true(pc_b64_decode(RFC_SALT, strlen(RFC_SALT), salt, sizeof salt, &salt_len));
    pc_scram_verifier_t v;
    assert_true(pc_scram_verifier_from_salt(password, strlen(password), salt, salt_len, 4096, &v));
    return v;
}

static pc_scram_result_t server_run(pc_scram_server_t *s, const pc_scram_verifier_t *v,
                                    const char *first, const char *final, char *out,
                                    const char **problem)
{
    size_t n;
    char buf[PC_SCRAM_MAX_OUT];
    pc_scram_server_init(s, v, "user", RFC_SERVER_NONCE);
    pc_scram_result_t r =
        pc_scram_server_first(s, first, strlen(first), buf, sizeof buf, &n, problem);
    if (r != PC_SCRAM_OK) return r;
    assert_string_equal(buf, RFC_SERVER_FIRST);
    return pc_scram_server_final(s, final, strlen(final), out, PC_SCRAM_MAX_OUT, &n, problem);
}

static void test_rfc7677_server(void **state)
{
    pc_scram_verifier_t v = rfc_verifier("pencil");
    pc_scram_server_t s;
    char out[PC_SCRAM_MAX_OUT];
    const char *problem;
    assert_int_equal(server_run(&s, &v, RFC_CLIENT_FIRST, RFC_CLIENT_FINAL, out, &problem),
                     PC_SCRAM_OK);
    assert_string_equal(out, RFC_SERVER_FINAL);
    pc_scram_server_clear(&s);

    /* Wrong password: same messages against another verifier. */
    pc_scram_verifier_t wrong = rfc_verifier("pencil2");
    assert_int_equal(server_run(&s, &wrong, RFC_CLIENT_FIRST, RFC_CLIENT_FINAL, out, &problem),
                     PC_SCRAM_FAILED);
    assert_string_equal(problem, "password authentication failed");

    /* A message after the end is refused. */
    size_t n;
    assert_int_equal(pc_scram_server_final(&s, RFC_CLIENT_FINAL, strlen(RFC_CLIENT_FINAL), out,
                                           sizeof out, &n, &problem),
                     PC_SCRAM_MALFORMED);
}

/* RFC client through client-first and client-final, awaiting server-final. */
static void client_up_to_final(pc_scram_client_t *c)
{
    char out[PC_SCRAM_MAX_OUT];
    size_t n;
    const char *problem;
    assert_true(pc_scram_client_init_user(c, "pencil", 6, "user", RFC_CLIENT_NONCE));
    assert_int_not_equal(pc_scram_client_first(c, out, sizeof out), 0);
    assert_int_equal(pc_scram_client_final(c, RFC_SERVER_FIRST, strlen(RFC_SERVER_FIRST), out,
                                           sizeof out, &n, &problem),
                     PC_SCRAM_OK);
    assert_string_equal(out, RFC_CLIENT_FINAL);
}

/* The client-final-message for the RFC's exchange with this password. */
static void rfc_client_final(const char *password, char *out, size_t cap)
{
    pc_scram_client_t c;
    size_t n;
    const char *problem;
    assert_true(
        pc_scram_client_init_user(&c, password, strlen(password), "user", RFC_CLIENT_NONCE));
    assert_true(pc_scram_client_first(&c, out, cap) > 0);
    assert_int_equal(pc_scram_client_final(&c, RFC_SERVER_FIRST, strlen(RFC_SERVER_FIRST), out, cap,
                                           &n, &problem),
                     PC_SCRAM_OK);
    pc_scram_client_clear(&c);
}

static void test_rfc7677_client(void **state)
{
    pc_scram_client_t c;
    char out[PC_SCRAM_MAX_OUT];
    size_t n;
    const char *problem;
    assert_true(pc_scram_client_init_user(&c, "pencil", 6, "user", RFC_CLIENT_NONCE));
    n = pc_scram_client_first(&c, out, sizeof out);
    assert_int_equal(n, strlen(RFC_CLIENT_FIRST));
    assert_string_equal(out, RFC_CLIENT_FIRST);
    assert_int_equal(pc_scram_client_final(&c, RFC_SERVER_FIRST, strlen(RFC_SERVER_FIRST), out,
                                           sizeof out, &n, &problem),
                     PC_SCRAM_OK);
    assert_string_equal(out, RFC_CLIENT_FINAL);
    assert_int_equal(
        pc_scram_client_verify(&c, RFC_SERVER_FINAL, strlen(RFC_SERVER_FINAL), &problem),
        PC_SCRAM_OK);
    pc_scram_client_clear(&c);

    /* The same exchange again: the SaltedPassword comes from the cache and
     * the proof is still the RFC's; another password with the same salt is
     * not served from it. */
    uint64_t hits = pc__scram_salted_cache_hits();
    rfc_client_final("pencil", out, sizeof out);
    assert_string_equal(out, RFC_CLIENT_FINAL);
    assert_true(pc__scram_salted_cache_hits() == hits + 1);
    rfc_client_final("pencil2", out, sizeof out);
    assert_string_not_equal(out, RFC_CLIENT_FINAL);
    assert_true(pc__scram_salted_cache_hits() == hits + 1);

    /* A server that does not know the password cannot produce the signature. */
    client_up_to_final(&c);
    const char *forged = "v=7rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=";
    assert_int_equal(pc_scram_client_verify(&c, forged, strlen(forged), &problem), PC_SCRAM_FAILED);
    pc_scram_client_clear(&c);

    /* Server error attribute. */
    client_up_to_final(&c);
    assert_int_equal(pc_scram_client_verify(&c, "e=invalid-proof", 15, &problem), PC_SCRAM_FAILED);
    pc_scram_client_clear(&c);
}

/* Our client against our server with random nonces and salts, like a real login. */
static void test_round_trip(void **state)
{
    static const char *const passwords[] = {"secret", "", "p@ss,w=rd", "pässwörd", NULL};
    for (size_t i = 0; passwords[i]; i++) {
        const char *pw = passwords[i];
        pc_scram_verifier_t v;
        assert_true(pc_scram_verifier_new(pw, strlen(pw), 4096, &v));
        assert_true(pc_scram_verifier_check(&v, pw, strlen(pw)));
        assert_false(pc_scram_verifier_check(&v, "other", 5));
        for (int good = 0; good < 2; good++) {
            pc_scram_client_t c;
            pc_scram_server_t s;
            char m1[PC_SCRAM_MAX_OUT], m2[PC_SCRAM_MAX_OUT], m3[PC_SCRAM_MAX_OUT],
                m4[PC_SCRAM_MAX_OUT];
            size_t n1, n2, n3, n4;
            const char *problem;
            const char *cpw = good ? pw : "wrong";
            assert_true(pc_scram_client_init(&c, cpw, strlen(cpw), NULL));
            pc_scram_server_init(&s, &v, NULL, NULL);
            n1 = pc_scram_client_first(&c, m1, sizeof m1);
            assert_int_not_equal(n1, 0);
            assert_memory_equal(m1, "n,,n=,r=", 8);
            assert_int_equal(pc_scram_server_first(&s, m1, n1, m2, sizeof m2, &n2, &problem),
                             PC_SCRAM_OK);
            assert_int_equal(pc_scram_client_final(&c, m2, n2, m3, sizeof m3, &n3, &problem),
                             PC_SCRAM_OK);
            pc_scram_result_t r = pc_scram_server_final(&s, m3, n3, m4, sizeof m4, &n4, &problem);
            if (good) {
                assert_int_equal(r, PC_SCRAM_OK);
                assert_int_equal(pc_scram_client_verify(&c, m4, n4, &problem), PC_SCRAM_OK);
            } else {
                assert_int_equal(r, PC_SCRAM_FAILED);
            }
            pc_scram_client_clear(&c);
            pc_scram_server_clear(&s);
        }
    }
}

static void test_mock_user_always_fails(void **state)
{
    /* Unknown user: the exchange looks normal, the salt is stable per name, and it fails. */
    pc_scram_server_t s1, s2, s3;
    char a[PC_SCRAM_MAX_OUT], b[PC_SCRAM_MAX_OUT], c[PC_SCRAM_MAX_OUT];
    size_t n;
    const char *problem;
    pc_scram_server_init(&s1, NULL, "ghost", "nonce1");
    pc_scram_server_init(&s2, NULL, "ghost", "nonce1");
    pc_scram_server_init(&s3, NULL, "phantom", "nonce1");
    assert_int_equal(pc_scram_server_first(&s1, RFC_CLIENT_FIRST, strlen(RFC_CLIENT_FIRST), a,
                                           sizeof a, &n, &problem),
                     PC_SCRAM_OK);
    assert_int_equal(pc_scram_server_first(&s2, RFC_CLIENT_FIRST, strlen(RFC_CLIENT_FIRST), b,
                                           sizeof b, &n, &problem),
                     PC_SCRAM_OK);
    assert_int_equal(pc_scram_server_first(&s3, RFC_CLIENT_FIRST, strlen(RFC_CLIENT_FIRST), c,
                                           sizeof c, &n, &problem),
                     PC_SCRAM_OK);
    assert_string_equal(a, b);
    assert_string_not_equal(a, c);
    assert_non_null(strstr(a, ",i=4096"));
    char final[256];
    snprintf(final, sizeof final,
             "c=biws,r=%snonce1,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=", RFC_CLIENT_NONCE);
    assert_int_equal(pc_scram_server_final(&s1, final, strlen(final), a, sizeof a, &n, &problem),
                     PC_SCRAM_FAILED);
}

static void expect_first_malformed(const char *msg, size_t len)
{
    pc_scram_verifier_t v = rfc_verifier("pencil");
    pc_scram_server_t s;
    char out[PC_SCRAM_MAX_OUT];
    size_t n = 99;
    const char *problem = NULL;
    pc_scram_server_init(&s, &v, NULL, NULL);
    assert_int_equal(pc_scram_server_first(&s, msg, len, out, sizeof out, &n, &problem),
                     PC_SCRAM_MALFORMED);
    assert_non_null(problem);
    assert_int_equal(n, 0);
}

static void test_malformed_client_first(void **state)
{
    static const char *const bad[] = {
        "",
        "n",
        "n,",
        "n,,",
        "x,,n=user,r=abc",
        "p=tls-server-end-point,,n=user,r=abc",
        "n,a=admin,n=user,r=abc",
        "n,,m=ext,n=user,r=abc",
        "n,,r=abc",
        "n,,n=user",
        "n,,n=user,r=",
        "n,,n=user,r=a b",
        "n,,n=user,r=abc,",
        "n,,n=user,r=abc,=x",
        "n,,n=user,x=abc",
        "n;,n=user,r=abc",
        NULL,
    };
    for (size_t i = 0; bad[i]; i++)
        expect_first_malformed(bad[i], strlen(bad[i]));
    expect_first_malformed("n,,n=user,r=a\0b", 15); /* NUL byte */
    char big[PC_SCRAM_MAX_MESSAGE + 10];
    memset(big, 'a', sizeof big);
    memcpy(big, "n,,n=user,r=", 12);
    expect_first_malformed(big, sizeof big);
    /* y,, is accepted (client could bind, believes we cannot: true). */
    pc_scram_verifier_t v = rfc_verifier("pencil");
    pc_scram_server_t s;
    char out[PC_SCRAM_MAX_OUT];
    size_t n;
    const char *problem;
    pc_scram_server_init(&s, &v, NULL, RFC_SERVER_NONCE);
    assert_int_equal(pc_scram_server_first(&s, "y,,n=user,r=" RFC_CLIENT_NONCE ",x=ext",
                                           strlen("y,,n=user,r=" RFC_CLIENT_NONCE ",x=ext"), out,
                                           sizeof out, &n, &problem),
                     PC_SCRAM_OK);
    /* ... and then the final message must carry c=eSws, not c=biws. */
    assert_int_equal(pc_scram_server_final(&s, RFC_CLIENT_FINAL, strlen(RFC_CLIENT_FINAL), out,
                                           sizeof out, &n, &problem),
                     PC_SCRAM_MALFORMED);
    assert_string_equal(problem, "SCRAM channel binding check failed");
}

static void test_tampered_client_final(void **state)
{
    pc_scram_verifier_t v = rfc_verifier("pencil");
    static const struct {
        const char *msg;
        pc_scram_result_t want;
    } cases[] = {
        /* proof of a different message: nonce changed */
        {"c=biws,r=" RFC_CLIENT_NONCE "X,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
         PC_SCRAM_MALFORMED},
        /* extension added: the proof no longer covers the message */
        {"c=biws,r=" RFC_CLIENT_NONCE RFC_SERVER_NONCE
         ",x=1,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
         PC_SCRAM_FAILED},
        /* one bit of the proof flipped */
        {"c=biws,r=" RFC_CLIENT_NONCE RFC_SERVER_NONCE
         ",p=eHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
         PC_SCRAM_FAILED},
        {"c=eSws,r=" RFC_CLIENT_NONCE RFC_SERVER_NONCE
         ",p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
         PC_SCRAM_MALFORMED},
        {"c=biws,r=" RFC_CLIENT_NONCE RFC_SERVER_NONCE ",p=dHzbZapWIk4jUhN", PC_SCRAM_MALFORMED},
        {"c=biws,r=" RFC_CLIENT_NONCE RFC_SERVER_NONCE, PC_SCRAM_MALFORMED},
        {"c=biws,r=" RFC_CLIENT_NONCE RFC_SERVER_NONCE
         ",p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=,x=1",
         PC_SCRAM_MALFORMED},
        {"r=" RFC_CLIENT_NONCE RFC_SERVER_NONCE ",p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
         PC_SCRAM_MALFORMED},
        {"c=biws,r=" RFC_CLIENT_NONCE RFC_SERVER_NONCE
         ",p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ",
         PC_SCRAM_MALFORMED},
        {"", PC_SCRAM_MALFORMED},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        pc_scram_server_t s;
        char out[PC_SCRAM_MAX_OUT];
        const char *problem = NULL;
        assert_int_equal(server_run(&s, &v, RFC_CLIENT_FIRST, cases[i].msg, out, &problem),
                         cases[i].want);
        assert_non_null(problem);
    }
}

static void test_malformed_server_messages(void **state)
{
    static const char *const bad_first[] = {
        "",
        "r=" RFC_CLIENT_NONCE ",s=" RFC_SALT ",i=4096",           /* nonce not extended */
        "r=XXX" RFC_SERVER_NONCE ",s=" RFC_SALT ",i=4096",        /* not our nonce */
        "r=" RFC_CLIENT_NONCE "abc,s=" RFC_SALT,                  /* no iterations */
        "r=" RFC_CLIENT_NONCE "abc,s=%%%,i=4096",                 /* bad base64 */
        "r=" RFC_CLIENT_NONCE "abc,s=,i=4096",                    /* empty salt */
        "r=" RFC_CLIENT_NONCE "abc,s=" RFC_SALT ",i=0",           /* zero iterations */
        "r=" RFC_CLIENT_NONCE "abc,s=" RFC_SALT ",i=99999999999", /* absurd */
        "r=" RFC_CLIENT_NONCE "abc,s=" RFC_SALT ",i=40x6",
        "m=x,r=" RFC_CLIENT_NONCE "abc,s=" RFC_SALT ",i=4096",
        "s=" RFC_SALT ",r=" RFC_CLIENT_NONCE "abc,i=4096",
        NULL,
    };
    for (size_t i = 0; bad_first[i]; i++) {
        pc_scram_client_t c;
        char out[PC_SCRAM_MAX_OUT];
        size_t n;
        const char *problem = NULL;
        assert_true(pc_scram_client_init_user(&c, "pencil", 6, "user", RFC_CLIENT_NONCE));
        assert_int_not_equal(pc_scram_client_first(&c, out, sizeof out), 0);
        assert_int_equal(pc_scram_client_final(&c, bad_first[i], strlen(bad_first[i]), out,
                                               sizeof out, &n, &problem),
                         PC_SCRAM_MALFORMED);
        assert_non_null(problem);
        pc_scram_client_clear(&c);
    }
    /* Out of order calls. */
    pc_scram_client_t c;
    const char *problem;
    assert_true(pc_scram_client_init(&c, "pencil", 6, NULL));
    assert_int_equal(
        pc_scram_client_verify(&c, RFC_SERVER_FINAL, strlen(RFC_SERVER_FINAL), &problem),
        PC_SCRAM_MALFORMED);
    pc_scram_client_clear(&c);
    assert_false(pc_scram_client_init(&c, "pencil", 6, "bad,nonce"));
    pc_scram_client_clear(&c);
}

static void test_verifier_text(void **state)
{
    /* PostgreSQL stores exactly this form in pg_authid.rolpassword. */
    pc_scram_verifier_t v = rfc_verifier("pencil");
    char text[PC_SCRAM_VERIFIER_TEXT_MAX];
    size_t n = pc_scram_verifier_format(&v, text, sizeof text);
    assert_int_not_equal(n, 0);
    assert_memory_equal(text, "SCRAM-SHA-256$4096:" RFC_SALT "$", 19 + strlen(RFC_SALT) + 1);
    pc_scram_verifier_t w;
    assert_true(pc_scram_verifier_parse(text, n, &w));
    assert_memory_equal(&w, &v, sizeof v);
    assert_true(pc_scram_verifier_check(&w, "pencil", 6));
    assert_int_equal(pc_scram_verifier_format(&v, text, 20), 0);

    static const char *const bad[] = {
        "SCRAM-SHA-256$",
        "SCRAM-SHA-256$4096:",
        "SCRAM-SHA-256$0:W22ZaJ0SNY7soEsUEjb6gQ==$a:b",
        "SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$AAAA:AAAA",
        "SCRAM-SHA-1$4096:W22ZaJ0SNY7soEsUEjb6gQ==$a:b",
        "md5abcdef",
        NULL,
    };
    for (size_t i = 0; bad[i]; i++)
        assert_false(pc_scram_verifier_parse(bad[i], strlen(bad[i]), &w));
}

/* Verifiers PostgreSQL 15 stored (SELECT rolpassword FROM pg_authid) for three passwords. */
static void test_verifier_matches_postgres(void **state)
{
    static const struct {
        const char *password, *verifier;
    } cases[] = {
        {"secret", "SCRAM-SHA-256$4096:NQ6CX/MmgtYnl5XwYN5o/Q==$rZnn6sZ53w3L4jJfFkLZ0QnCa/6iS8/"
                   "BdH0RF2mhgIc=:9yRvznfZPcjveKXplKp7LFrZU6C7/UwsgjKg/GLN494="},
        {"p\xc3\xa4ssw\xc3\xb6rd", "SCRAM-SHA-256$4096:Cxsms/Nr9Jp+MZKhQZUnwA==$"
                                   "yxX5vA7bIEyv2tZURQc5FJIBzLTIzqu1/c4G/LJbVfE=:"
                                   "cUsEftbDmtF+cCsNvGAH5NXF9gJfAutToxYvHSmyRgQ="},
        /* E'a\u00A0b\u00ADc': SASLprep maps the no-break space and drops the soft hyphen */
        {"a\xc2\xa0"
         "b\xc2\xad"
         "c",
         "SCRAM-SHA-256$4096:SbDN/wGcCbI1lK3BqoYqow==$"
         "3eTh9soYQVyQ0FzbCd5SHQsPQvsd7T9S1jvspjrtOP4=:"
         "gcEQkj23rnE1AQw97RpZKWW1iJc1TOFaiArYSVuzAfE="},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        pc_scram_verifier_t v;
        const char *t = cases[i].verifier;
        assert_true(pc_scram_verifier_parse(t, strlen(t), &v));
        assert_true(pc_scram_verifier_check(&v, cases[i].password, strlen(cases[i].password)));
        assert_false(pc_scram_verifier_check(&v, "wrong", 5));
        char back[PC_SCRAM_VERIFIER_TEXT_MAX];
        assert_int_equal(pc_scram_verifier_format(&v, back, sizeof back), strlen(t));
        assert_string_equal(back, t);
    }
    pc_scram_verifier_t v;
    const char *t = cases[2].verifier;
    assert_true(pc_scram_verifier_parse(t, strlen(t), &v));
    assert_true(pc_scram_verifier_check(&v, "a bc", 4));
}

static void test_saslprep(void **state)
{
    size_t n;
    char *p = pc_scram_saslprep("plain ascii\x01", 12, &n);
    assert_int_equal(n, 12);
    assert_memory_equal(p, "plain ascii\x01", 12);
    free(p);
    /* U+00A0 NO-BREAK SPACE -> space; U+00AD SOFT HYPHEN removed. */
    p = pc_scram_saslprep("a\xc2\xa0"
                          "b\xc2\xad"
                          "c",
                          7, &n);
    assert_int_equal(n, 4);
    assert_memory_equal(p, "a bc", 4);
    free(p);
    /* Invalid UTF-8: raw bytes. */
    p = pc_scram_saslprep("\xff\xfe", 2, &n);
    assert_int_equal(n, 2);
    assert_memory_equal(p, "\xff\xfe", 2);
    free(p);
    /* Prohibited (private use U+E000): raw bytes. */
    p = pc_scram_saslprep("x\xee\x80\x80", 4, &n);
    assert_int_equal(n, 4);
    free(p);
}

static void test_md5(void **state)
{
    /* md5(md5("secret" + "alice") + salt), checked with Python's hashlib. */
    const uint8_t salt[4] = {0x01, 0x02, 0x03, 0x04};
    char out[36];
    pc_pg_md5_response("alice", "secret", salt, out);
    assert_string_equal(out, "md598a0412b9c31436fc53776e863350083");
    char expect[33];
    pc_md5_hex("", 0, expect);
    assert_string_equal(expect, "d41d8cd98f00b204e9800998ecf8427e");
}

static void test_base64(void **state)
{
    static const struct {
        const char *raw, *b64;
    } v[] = {{"", ""},
             {"f", "Zg=="},
             {"fo", "Zm8="},
             {"foo", "Zm9v"},
             {"foob", "Zm9vYg=="},
             {"fooba", "Zm9vYmE="},
             {"foobar", "Zm9vYmFy"}};
    for (size_t i = 0; i < sizeof v / sizeof *v; i++) {
        char enc[32];
        uint8_t dec[32];
        size_t n;
        assert_int_equal(
            pc_b64_encode((const uint8_t *)v[i].raw, strlen(v[i].raw), enc, sizeof enc),
            strlen(v[i].b64));
        assert_string_equal(enc, v[i].b64);
        assert_true(pc_b64_decode(v[i].b64, strlen(v[i].b64), dec, sizeof dec, &n));
        assert_int_equal(n, strlen(v[i].raw));
        assert_memory_equal(dec, v[i].raw, n);
    }
    static const char *const bad[] = {
        "Zg=", "Zh==", "Zm9=", "Z===", "Zg==Zg==", "Zm9v\n", "Zm 9", "Zm9*", NULL};
    for (size_t i = 0; bad[i]; i++) {
        uint8_t dec[32];
        size_t n;
        assert_false(pc_b64_decode(bad[i], strlen(bad[i]), dec, sizeof dec, &n));
    }
    uint8_t small[2];
    size_t n;
    assert_false(pc_b64_decode("Zm9v", 4, small, sizeof small, &n));
}

/* Our PBKDF2 against OpenSSL's for awkward shapes: long keys, several blocks, one iteration. */
static void test_pbkdf2_matches_openssl(void **state)
{
    static const size_t pw_lens[] = {0, 1, 8, 63, 64, 65, 200};
    static const uint32_t iters[] = {1, 2, 4096};
    static const size_t out_lens[] = {1, 32, 33, 64, 100};
    char pw[200];
    for (size_t i = 0; i < sizeof pw; i++)
        pw[i] = (char)('a' + i % 26);
    const uint8_t salt[] = "NaCl-salt";
    for (size_t a = 0; a < sizeof pw_lens / sizeof *pw_lens; a++)
        for (size_t b = 0; b < sizeof iters / sizeof *iters; b++)
            for (size_t c = 0; c < sizeof out_lens / sizeof *out_lens; c++) {
                uint8_t mine[100], ref[100];
                assert_true(pc_pbkdf2_sha256(pw, pw_lens[a], salt, sizeof salt - 1, iters[b], mine,
                                             out_lens[c]));
                assert_int_equal(PKCS5_PBKDF2_HMAC(pw, (int)pw_lens[a], salt, (int)sizeof salt - 1,
                                                   (int)iters[b], EVP_sha256(), (int)out_lens[c],
                                                   ref),
                                 1);
                assert_memory_equal(mine, ref, out_lens[c]);
            }
    uint8_t out[32];
    assert_false(pc_pbkdf2_sha256("x", 1, salt, 4, 0, out, sizeof out));
}

/* One PLUS exchange: client binding data vs what the server expects. */
static pc_scram_result_t plus_exchange(const uint8_t *client_cb, size_t client_len,
                                       const uint8_t *server_cb, size_t server_len, bool offered,
                                       bool chose_plus, const char **problem)
{
    pc_scram_verifier_t v = rfc_verifier("pencil");
    pc_scram_client_t c;
    pc_scram_server_t s;
    char m1[PC_SCRAM_MAX_OUT], m2[PC_SCRAM_MAX_OUT], m3[PC_SCRAM_MAX_OUT], m4[PC_SCRAM_MAX_OUT];
    size_t n1, n2, n3, n4;
    assert_true(pc_scram_client_init(&c, "pencil", 6, NULL));
    if (client_len) assert_true(pc_scram_client_set_channel_binding(&c, client_cb, client_len));
    pc_scram_server_init(&s, &v, NULL, NULL);
    assert_true(
        pc_scram_server_set_channel_binding(&s, offered, chose_plus, server_cb, server_len));
    n1 = pc_scram_client_first(&c, m1, sizeof m1);
    assert_int_not_equal(n1, 0);
    pc_scram_result_t r = pc_scram_server_first(&s, m1, n1, m2, sizeof m2, &n2, problem);
    if (r == PC_SCRAM_OK) {
        assert_int_equal(pc_scram_client_final(&c, m2, n2, m3, sizeof m3, &n3, problem),
                         PC_SCRAM_OK);
        r = pc_scram_server_final(&s, m3, n3, m4, sizeof m4, &n4, problem);
        if (r == PC_SCRAM_OK) r = pc_scram_client_verify(&c, m4, n4, problem);
    }
    pc_scram_client_clear(&c);
    pc_scram_server_clear(&s);
    return r;
}

static void test_channel_binding(void **state)
{
    uint8_t cb[32], other[32];
    memset(cb, 0xab, sizeof cb);
    memset(other, 0xcd, sizeof other);
    const char *problem = NULL;
    /* PLUS end to end. */
    assert_int_equal(plus_exchange(cb, 32, cb, 32, true, true, &problem), PC_SCRAM_OK);
    /* A man in the middle terminating TLS has another certificate: binding fails. */
    assert_int_equal(plus_exchange(other, 32, cb, 32, true, true, &problem), PC_SCRAM_MALFORMED);
    assert_string_equal(problem, "SCRAM channel binding check failed");
    /* Client binds but server did not agree on PLUS. */
    assert_int_equal(plus_exchange(cb, 32, cb, 32, true, false, &problem), PC_SCRAM_MALFORMED);
    /* Server expects PLUS (client named it) but the message has no binding. */
    assert_int_equal(plus_exchange(NULL, 0, cb, 32, true, true, &problem), PC_SCRAM_MALFORMED);
    /* PLUS offered, client chose plain SCRAM with "n": fine. */
    assert_int_equal(plus_exchange(NULL, 0, cb, 32, true, false, &problem), PC_SCRAM_OK);
    /* PLUS offered and client says "y" (thinks we cannot bind): downgrade, refused. */
    pc_scram_verifier_t v = rfc_verifier("pencil");
    pc_scram_server_t s;
    char out[PC_SCRAM_MAX_OUT];
    size_t n;
    pc_scram_server_init(&s, &v, NULL, NULL);
    assert_true(pc_scram_server_set_channel_binding(&s, true, false, cb, 32));
    assert_int_equal(pc_scram_server_first(&s, "y,,n=,r=abc", 11, out, sizeof out, &n, &problem),
                     PC_SCRAM_MALFORMED);
    assert_string_equal(problem, "SCRAM channel binding negotiation error");
    /* Unknown binding type. */
    pc_scram_server_init(&s, &v, NULL, NULL);
    assert_true(pc_scram_server_set_channel_binding(&s, true, true, cb, 32));
    const char *unique = "p=tls-unique,,n=,r=abc";
    assert_int_equal(
        pc_scram_server_first(&s, unique, strlen(unique), out, sizeof out, &n, &problem),
        PC_SCRAM_MALFORMED);
    assert_string_equal(problem, "unsupported SCRAM channel-binding type");
    /* Invalid set-ups are refused. */
    pc_scram_server_init(&s, &v, NULL, NULL);
    assert_false(pc_scram_server_set_channel_binding(&s, false, true, cb, 32));
    assert_false(pc_scram_server_set_channel_binding(&s, true, true, cb, 0));
    pc_scram_client_t c;
    assert_true(pc_scram_client_init(&c, "x", 1, NULL));
    assert_false(pc_scram_client_set_channel_binding(&c, cb, PC_SCRAM_CB_MAX + 1));
    pc_scram_client_clear(&c);
}

/* A self-signed certificate signed with the given digest. */
static X509 *make_cert(const EVP_MD *md)
{
    EVP_PKEY *key = EVP_EC_gen("P-256");
    assert_non_null(key);
    X509 *x = X509_new();
    assert_non_null(x);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), 0);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600);
    X509_set_pubkey(x, key);
    X509_NAME *name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"test", -1, -1, 0);
    X509_set_issuer_name(x, name);
    assert_true(X509_sign(x, key, md) > 0);
    EVP_PKEY_free(key);
    return x;
}

static void test_tls_server_end_point(void **state)
{
    static const struct {
        const EVP_MD *(*md)(void);
        const EVP_MD *(*expect)(void);
        size_t len;
    } cases[] = {{EVP_sha256, EVP_sha256, 32},
                 {EVP_sha384, EVP_sha384, 48},
                 {EVP_sha512, EVP_sha512, 64},
                 {EVP_sha1, EVP_sha256, 32}};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        X509 *x = make_cert(cases[i].md());
        uint8_t got[PC_SCRAM_CB_MAX], want[EVP_MAX_MD_SIZE];
        size_t n = 0;
        unsigned int wn = 0;
        assert_true(pc_scram_tls_server_end_point(x, got, sizeof got, &n));
        assert_int_equal(n, cases[i].len);
        /* RFC 5929: the hash of the DER certificate. */
        unsigned char *der = NULL;
        int der_len = i2d_X509(x, &der);
        assert_true(der_len > 0);
        assert_true(EVP_Digest(der, (size_t)der_len, want, &wn, cases[i].expect(), NULL));
        assert_int_equal(wn, n);
        assert_memory_equal(got, want, n);
        OPENSSL_free(der);
        assert_false(pc_scram_tls_server_end_point(x, got, 16, &n)); /* too small */
        X509_free(x);
    }
    uint8_t out[64];
    size_t n;
    assert_false(pc_scram_tls_server_end_point(NULL, out, sizeof out, &n));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rfc7677_server),
        cmocka_unit_test(test_rfc7677_client),
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_mock_user_always_fails),
        cmocka_unit_test(test_malformed_client_first),
        cmocka_unit_test(test_tampered_client_final),
        cmocka_unit_test(test_malformed_server_messages),
        cmocka_unit_test(test_verifier_text),
        cmocka_unit_test(test_verifier_matches_postgres),
        cmocka_unit_test(test_saslprep),
        cmocka_unit_test(test_md5),
        cmocka_unit_test(test_base64),
        cmocka_unit_test(test_pbkdf2_matches_openssl),
        cmocka_unit_test(test_channel_binding),
        cmocka_unit_test(test_tls_server_end_point),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
