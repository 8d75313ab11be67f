/*
 * Hashes, HMAC and JSON Web Signature keys for OPA's crypto.* and io.jwt.*
 * built-ins, on OpenSSL 3 (keys) and jansson (JWK parsing).
 *
 * A key set comes from the text OPA accepts as a verification key: a PEM
 * certificate or public key, or a JWK / JWK set (JSON). Keys built from a
 * JWK may be private (for io.jwt.encode_sign). Free a set with
 * pc_plib_keyset_free().
 */
#ifndef PC_POLICY_LIB_JOSE_H
#define PC_POLICY_LIB_JOSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PC_PLIB_MAX_DIGEST 64

/** alg: "md5", "sha1", "sha256", "sha384", "sha512". False for an unknown alg. */
bool pc_plib_digest(const char *alg, const void *data, size_t n, unsigned char *out,
                    size_t *out_len);
bool pc_plib_hmac(const char *alg, const void *key, size_t kn, const void *data, size_t n,
                  unsigned char *out, size_t *out_len);
/** Constant-time comparison of equal-length buffers (false when lengths differ). */
bool pc_plib_ct_equal(const void *a, size_t an, const void *b, size_t bn);

typedef struct pc_plib_jwk {
    void *pkey;             /* EVP_PKEY *, NULL for a symmetric key */
    unsigned char *secret;  /* "oct" keys */
    size_t secret_len;
    char alg[16];           /* "" when the key does not name one */
    char *kid;              /* NULL when absent */
} pc_plib_jwk_t;

typedef struct pc_plib_keyset {
    pc_plib_jwk_t *keys;
    size_t n;
    bool from_pem;
} pc_plib_keyset_t;

/** Parses PEM or JWK(S) text; false with OPA's error text in err. */
bool pc_plib_keyset_parse(const char *s, size_t n, pc_plib_keyset_t *out, char *err,
                          size_t errlen);
/** Parses JWK(S) JSON only (io.jwt.encode_sign). */
bool pc_plib_keyset_parse_jwk(const char *s, size_t n, pc_plib_keyset_t *out, char *err,
                              size_t errlen);
void pc_plib_keyset_free(pc_plib_keyset_t *ks);

/** True when alg is one of RS/PS/ES 256/384/512, HS256/384/512, EdDSA. */
bool pc_plib_jws_alg_known(const char *alg, size_t n);

/** Verifies sig over data with key for alg (HS* use the key's secret). */
bool pc_plib_jws_verify(const pc_plib_jwk_t *key, const char *alg, const void *data, size_t n,
                        const void *sig, size_t sn);
/** Verifies an HMAC signature with a raw secret. */
bool pc_plib_jws_verify_secret(const void *secret, size_t sl, const char *alg, const void *data,
                               size_t n, const void *sig, size_t sn);

/** Signs data; *sig is malloc'd (JWS encoding: ECDSA as r||s). */
bool pc_plib_jws_sign(const pc_plib_jwk_t *key, const char *alg, const void *data, size_t n,
                      unsigned char **sig, size_t *sn, char *err, size_t errlen);

/* Internal to the policy helpers: decode the next PEM block of s (DER is
 * malloc'd); *consumed is the offset just past the block's END line. */
bool pc__pem_next(const char *s, size_t n, char *type, size_t tcap, unsigned char **der,
                  size_t *dlen, size_t *consumed);

#endif
