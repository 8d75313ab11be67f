/*
 * X.509 certificates, CSRs and RSA keys for OPA's crypto.x509.* and
 * crypto.parse_private_keys built-ins, on OpenSSL. Results are JSON text in
 * the shape of Go's encoding of x509.Certificate (Subject, Issuer, NotBefore,
 * DNSNames, URIStrings, ...; the fields policies read), malloc'd, NUL-terminated;
 * errors carry Go's texts ("x509: malformed certificate").
 */
#ifndef PC_POLICY_LIB_X509_H
#define PC_POLICY_LIB_X509_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/** JSON array of the certificates in PEM, base64 PEM or base64 DER input. */
char *pc_plib_x509_parse_certs(const char *s, size_t n, char *err, size_t errlen);
/** First certificate is the root, last the leaf: *valid and the verified
 *  chain (leaf first) as a JSON array; "[]" when not valid. NULL on OOM. */
char *pc_plib_x509_verify_chain(const char *s, size_t n, bool *valid);
/** Verification options of crypto.x509.parse_and_verify_certificates_with_options. */
typedef struct pc_plib_x509_opts {
    const char *dns_name; /* NULL: no host check */
    bool have_time;
    int64_t time_ns; /* CurrentTime */
    /* Go ExtKeyUsage numbers (0 = any); none given means server auth, as in Go */
    const int *key_usages;
    size_t nkey_usages;
} pc_plib_x509_opts_t;

/** Like pc_plib_x509_verify_chain with Go's VerifyOptions. */
char *pc_plib_x509_verify_chain_opts(const char *s, size_t n, const pc_plib_x509_opts_t *o, bool *valid);
/** Go's ExtKeyUsage number for "KeyUsageServerAuth" and friends; -1 if unknown. */
int pc_plib_x509_key_usage(const char *name);

/** JSON object of a PEM or base64 PEM/DER certificate request. */
char *pc_plib_x509_parse_csr(const char *s, size_t n, char *err, size_t errlen);
/** RSA private key (PEM or base64 PEM) as a JWK JSON object. */
char *pc_plib_x509_rsa_key_jwk(const char *s, size_t n, char *err, size_t errlen);
/** JSON array of the private keys found in PEM / base64 PEM text (one object
 *  per key, JWK members); "null" for empty input, "[]" when none parse. */
char *pc_plib_parse_private_keys(const char *s, size_t n);
/** tls.X509KeyPair: {"Certificate": [base64 DER...], "Leaf": {...}} or NULL with err. */
char *pc_plib_x509_keypair(const char *cert, size_t cn, const char *key, size_t kn, char *err,
                           size_t errlen);

#endif
