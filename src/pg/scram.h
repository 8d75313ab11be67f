/*
 * SCRAM-SHA-256 (RFC 5802, RFC 7677) as PostgreSQL uses it in SASL
 * authentication, both sides, plus PostgreSQL's MD5 password response.
 *
 * Pure functions without I/O: the PostgreSQL session code carries the message
 * bytes (SASLInitialResponse / SASLResponse data, AuthenticationSASLContinue /
 * SASLFinal data) and calls these. Every input is length-bounded and parsed
 * strictly. Passwords go through SASLprep as PostgreSQL does (see
 * pc_scram_saslprep). Nothing here logs; problem strings never hold secrets.
 *
 * Result convention: PC_SCRAM_OK (send `out` if any and go on), PC_SCRAM_MALFORMED
 * (protocol violation: FATAL 08P01), PC_SCRAM_FAILED (authentication failed:
 * FATAL 28P01 "password authentication failed for user ...").
 */
#ifndef PC_PG_SCRAM_H
#define PC_PG_SCRAM_H

#include "core/config.h" /* pc_scram_verifier_t */
#include "core/crypto.h" /* PC_B64_ENCODED_LEN */

#define PC_SCRAM_MECHANISM "SCRAM-SHA-256"
#define PC_SCRAM_DEFAULT_ITERATIONS 4096
#define PC_SCRAM_SALT_LEN 16
/* Longest SCRAM message either side accepts. */
#define PC_SCRAM_MAX_MESSAGE 1024
/* Longest message either side produces (size the out buffers with this). */
#define PC_SCRAM_MAX_OUT 512
/* Longest text of a verifier in PostgreSQL's format, with NUL. */
#define PC_SCRAM_VERIFIER_TEXT_MAX 192

typedef enum { PC_SCRAM_OK, PC_SCRAM_MALFORMED, PC_SCRAM_FAILED } pc_scram_result_t;

/* Channel binding (SCRAM-SHA-256-PLUS): the only type PostgreSQL supports. */
#define PC_SCRAM_MECHANISM_PLUS "SCRAM-SHA-256-PLUS"
#define PC_SCRAM_CB_TYPE "tls-server-end-point"
#define PC_SCRAM_CB_MAX 64 /* largest certificate hash (SHA-512) */

struct x509_st; /* OpenSSL's X509 */
/**
 * tls-server-end-point binding data (RFC 5929): the hash of the server's
 * certificate. The server side passes its own certificate, the client side
 * the peer's. False if the certificate's signature has no single hash
 * (e.g. Ed25519): then do not offer or use PLUS.
 */
bool pc_scram_tls_server_end_point(const struct x509_st *cert, uint8_t *out, size_t cap,
                                   size_t *out_len) PC_WUR;

/* ---------- verifiers ---------- */

/**
 * SASLprep (RFC 4013) the way PostgreSQL's pg_saslprep applies it to
 * passwords: pure ASCII is used unchanged; invalid UTF-8 or a prohibited
 * character means the raw bytes are used unchanged. For other non-ASCII input
 * non-ASCII spaces (C.1.2) map to U+0020 and "commonly mapped to nothing"
 * characters (B.1) are removed; NFKC normalisation is NOT applied, so a
 * non-ASCII password must already be in NFKC form (true for ordinary
 * precomposed text) to match what PostgreSQL computes. Returns a new string
 * (caller wipes and frees) and its length.
 */
char *pc_scram_saslprep(const char *password, size_t len, size_t *out_len) PC_WUR;

/** New verifier with a random salt of PC_SCRAM_SALT_LEN bytes. */
bool pc_scram_verifier_new(const char *password, size_t len, uint32_t iterations,
                           pc_scram_verifier_t *out) PC_WUR;
/** Same with a given salt (1..32 bytes). */
bool pc_scram_verifier_from_salt(const char *password, size_t len, const uint8_t *salt,
                                 size_t salt_len, uint32_t iterations,
                                 pc_scram_verifier_t *out) PC_WUR;
/**
 * PostgreSQL's text form "SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>"
 * (what pg_authid.rolpassword holds). Parse is strict.
 */
bool pc_scram_verifier_parse(const char *text, size_t len, pc_scram_verifier_t *out) PC_WUR;
/** Writes the text form (NUL-terminated); returns its length or 0 if cap is too small. */
size_t pc_scram_verifier_format(const pc_scram_verifier_t *v, char *out, size_t cap);
/** Whether password matches the verifier (constant time in the key comparison). */
bool pc_scram_verifier_check(const pc_scram_verifier_t *v, const char *password, size_t len);

/* ---------- server side (the connector authenticating a client) ---------- */

typedef struct pc_scram_server {
    int state;
    bool mock;          /* unknown user: run the exchange, then fail (no user enumeration) */
    bool cb_offered;    /* we listed SCRAM-SHA-256-PLUS (TLS connection) */
    bool cb_chose_plus; /* the client picked SCRAM-SHA-256-PLUS */
    uint8_t cb_data[PC_SCRAM_CB_MAX];
    size_t cb_len;
    char expected_c[PC_B64_ENCODED_LEN(64 + PC_SCRAM_CB_MAX) + 1]; /* c= of the final message */
    pc_scram_verifier_t verifier;
    char nonce[256]; /* client nonce + server nonce */
    size_t nonce_len;
    size_t client_nonce_len;
    char client_first_bare[PC_SCRAM_MAX_MESSAGE];
    size_t client_first_bare_len;
    char server_first[PC_SCRAM_MAX_OUT];
    size_t server_first_len;
    char fixed_server_nonce[64]; /* tests only; empty = random */
} pc_scram_server_t;

/**
 * Start an exchange. v = the user's verifier, or NULL for an unknown user or a
 * user without a password: the exchange then runs with a fake salt derived
 * from mock_username (stable per process) and always ends in PC_SCRAM_FAILED.
 * server_nonce: NULL = random (always, except in tests).
 */
void pc_scram_server_init(pc_scram_server_t *s, const pc_scram_verifier_t *v,
                          const char *mock_username, const char *server_nonce);
/**
 * Channel binding for this exchange, before pc_scram_server_first. offered:
 * SCRAM-SHA-256-PLUS was in the mechanism list (TLS with a certificate that
 * has binding data); chose_plus: the SASLInitialResponse named it; cb_data:
 * pc_scram_tls_server_end_point of our certificate. Without this call no
 * binding is offered: "p=" is refused and "y" accepted. With offered, "y" is
 * refused as a downgrade, as PostgreSQL does.
 */
bool pc_scram_server_set_channel_binding(pc_scram_server_t *s, bool offered, bool chose_plus,
                                         const uint8_t *cb_data, size_t cb_len) PC_WUR;
/** client-first-message in, server-first-message out. */
pc_scram_result_t pc_scram_server_first(pc_scram_server_t *s, const char *msg, size_t len,
                                        char *out, size_t cap, size_t *out_len,
                                        const char **problem) PC_WUR;
/** client-final-message in, server-final-message ("v=...") out on PC_SCRAM_OK. */
pc_scram_result_t pc_scram_server_final(pc_scram_server_t *s, const char *msg, size_t len,
                                        char *out, size_t cap, size_t *out_len,
                                        const char **problem) PC_WUR;
/** Wipe the state (holds keys derived from the verifier). */
void pc_scram_server_clear(pc_scram_server_t *s);

/* ---------- client side (the connector authenticating to an upstream) ---------- */

typedef struct pc_scram_client {
    int state;
    char *password; /* SASLprep'd, wiped on clear */
    size_t password_len;
    char client_nonce[64];
    size_t client_nonce_len;
    char client_first_bare[PC_SCRAM_MAX_OUT];
    size_t client_first_bare_len;
    uint8_t server_signature[32];
    uint8_t cb_data[PC_SCRAM_CB_MAX];
    size_t cb_len; /* 0 = no channel binding ("n,,") */
} pc_scram_client_t;

/**
 * Start an exchange sending an empty SCRAM user name, as libpq does
 * (PostgreSQL ignores it and uses the startup packet's). client_nonce: NULL =
 * random (always, except in tests). False if the nonce is unusable.
 */
bool pc_scram_client_init(pc_scram_client_t *c, const char *password, size_t len,
                          const char *client_nonce) PC_WUR;
/** Same with a SCRAM user name (escaped as RFC 5802 saslname; NULL = empty). */
bool pc_scram_client_init_user(pc_scram_client_t *c, const char *password, size_t len,
                               const char *username, const char *client_nonce) PC_WUR;
/**
 * Use SCRAM-SHA-256-PLUS with tls-server-end-point data computed from the
 * upstream's certificate (before pc_scram_client_first; the caller then names
 * PC_SCRAM_MECHANISM_PLUS in SASLInitialResponse).
 */
bool pc_scram_client_set_channel_binding(pc_scram_client_t *c, const uint8_t *cb_data,
                                         size_t cb_len) PC_WUR;
/** The client-first-message "n,,n=<user>,r=<nonce>"; 0 if called out of order. */
size_t pc_scram_client_first(pc_scram_client_t *c, char *out, size_t cap);
/** server-first-message in, client-final-message out. */
pc_scram_result_t pc_scram_client_final(pc_scram_client_t *c, const char *msg, size_t len,
                                        char *out, size_t cap, size_t *out_len,
                                        const char **problem) PC_WUR;
/** server-final-message in: PC_SCRAM_OK only if the server proved it knows the verifier. */
pc_scram_result_t pc_scram_client_verify(pc_scram_client_t *c, const char *msg, size_t len,
                                         const char **problem) PC_WUR;
void pc_scram_client_clear(pc_scram_client_t *c);

/** Client exchanges whose SaltedPassword came from the process-wide cache (tests). */
uint64_t pc__scram_salted_cache_hits(void);

/* ---------- MD5 ---------- */

/**
 * PostgreSQL's AuthenticationMD5Password response:
 * "md5" + md5hex(md5hex(password + user) + salt), NUL-terminated in out[36].
 */
void pc_pg_md5_response(const char *user, const char *password, const uint8_t salt[4],
                        char out[36]);

#endif
