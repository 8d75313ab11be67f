/*
 * AWS Signature Version 4 for S3: verifying what clients send (Authorization
 * header, presigned query), decoding and verifying aws-chunked bodies, and
 * signing requests to the upstream. Pure: no I/O, no clock (callers pass the
 * time), no logging. Nothing here ever copies a secret or a signature into an
 * error text.
 *
 * This is the only SigV4 canonical-request/signing implementation in the tree
 * (policy/lib/sigv4.c, OPA's providers.aws.sign_req, calls pc_sigv4_sign()).
 *
 * Verification flow for one request:
 *   1. pc_sigv4_parse(req, &auth)            → NO_AUTH / MALFORMED / OK
 *   2. caller: auth.access_key → user, secret (unknown → InvalidAccessKeyId)
 *   3. pc_sigv4_verify(&auth, req, secret, now, cache, &v)
 *        → OK / MISMATCH / SKEWED / EXPIRED / MALFORMED / *_CONTENT_SHA256
 *   4. body, by v.payload:
 *        HASH      → hash the body while streaming; compare with
 *                    v.payload_sha256 at the end (XAmzContentSHA256Mismatch)
 *        UNSIGNED  → nothing to check
 *        STREAMING_* → feed the (HTTP-de-framed) body to a pc_sigv4_chunked_t
 *
 * Canonical request (both directions):
 *   method \n canonical URI \n canonical query \n canonical headers \n
 *   signed header list \n payload hash
 * S3 rules: the URI is percent-decoded once and re-encoded (unreserved
 * A-Z a-z 0-9 - _ . ~ kept, '/' kept, everything else %XX upper case), never
 * normalised (no dot-segment removal, no slash merging) and never double
 * encoded. The query is split on '&', each name/value decoded ('+' = space)
 * and re-encoded the same way ('/' encoded too), sorted by encoded name then
 * value; a presigned request's X-Amz-Signature is excluded. Header names are
 * lower-cased, values trimmed with inner runs of spaces collapsed to one,
 * repeated headers joined with ','.
 */
#ifndef PC_S3_SIGV4_H
#define PC_S3_SIGV4_H

#include "core/common.h"
#include "http/http1.h"

#include <openssl/sha.h> /* SHA256_CTX in the key cache */

#define PC_SIGV4_ALGORITHM "AWS4-HMAC-SHA256"
#define PC_SIGV4_MAX_SKEW_S 900       /* ±15 minutes */
#define PC_SIGV4_MAX_EXPIRES_S 604800 /* presign: 7 days, as S3 */
#define PC_SIGV4_MAX_ACCESS_KEY 128
#define PC_SIGV4_MAX_REGION 63
#define PC_SIGV4_MAX_SERVICE 15
#define PC_SIGV4_MAX_SIGNED_LIST 2047 /* "host;x-amz-date;..." */
#define PC_SIGV4_MAX_SIGNED_HEADERS 64
#define PC_SIGV4_AMZ_DATE_LEN 16 /* YYYYMMDDTHHMMSSZ */
#define PC_SIGV4_SCOPE_MAX 127   /* YYYYMMDD/region/service/aws4_request */
#define PC_SIGV4_SIG_LEN 32      /* raw HMAC-SHA256 */
#define PC_SIGV4_SIG_HEX_LEN 64
/* Enough for any Authorization value pc_sigv4_sign() writes with the limits above. */
#define PC_SIGV4_AUTHZ_MAX                                                                         \
    (64 + PC_SIGV4_MAX_ACCESS_KEY + PC_SIGV4_SCOPE_MAX + PC_SIGV4_MAX_SIGNED_LIST +                \
     PC_SIGV4_SIG_HEX_LEN)

typedef enum {
    PC_SIGV4_OK = 0,
    PC_SIGV4_NO_AUTH,   /* neither Authorization nor X-Amz-Algorithm: anonymous */
    PC_SIGV4_MALFORMED, /* 400 AuthorizationHeaderMalformed / AuthorizationQueryParametersError */
    PC_SIGV4_MISMATCH,  /* 403 SignatureDoesNotMatch */
    PC_SIGV4_SKEWED,    /* 403 RequestTimeTooSkewed */
    PC_SIGV4_EXPIRED,   /* 403 AccessDenied "Request has expired" */
    PC_SIGV4_MISSING_CONTENT_SHA256, /* 400 InvalidRequest (header auth without
                                        x-amz-content-sha256) */
    PC_SIGV4_BAD_CONTENT_SHA256, /* 400 InvalidArgument (x-amz-content-sha256 not a hash nor a known
                                    keyword) */
    PC_SIGV4_UNSUPPORTED, /* 400 InvalidArgument: e.g. AWS4-ECDSA-P256-SHA256 (SigV4a), SigV2 */
    PC_SIGV4_UNSIGNED_HEADERS, /* 403 AccessDenied: x-amz-* headers present but not signed */
} pc_sigv4_result_t;

/** S3 error code for a result (presigned selects the query-parameter variant); NULL for OK. */
const char *pc_sigv4_result_code(pc_sigv4_result_t r, bool presigned);
/** S3-style message for a result (static, safe to send to the client). */
const char *pc_sigv4_result_message(pc_sigv4_result_t r);

/** The request as received. Spans point into the caller's buffer (http1 msg). */
typedef struct pc_sigv4_request {
    pc_http1_span_t method;
    pc_http1_span_t path;  /* raw, as on the wire, without the query */
    pc_http1_span_t query; /* raw, without '?'; {NULL,0} when none */
    const pc_http1_header_t *headers;
    size_t nheaders;
} pc_sigv4_request_t;

/** Parsed credentials. Self-contained (copies), no pointers into the request. */
typedef struct pc_sigv4_auth {
    bool presigned;
    char access_key[PC_SIGV4_MAX_ACCESS_KEY + 1];
    char scope_date[9]; /* YYYYMMDD */
    char region[PC_SIGV4_MAX_REGION + 1];
    char service[PC_SIGV4_MAX_SERVICE + 1];
    char signed_headers[PC_SIGV4_MAX_SIGNED_LIST + 1]; /* as received, e.g. "host;x-amz-date" */
    uint8_t signature[PC_SIGV4_SIG_LEN];
    /* presigned only */
    char amz_date[PC_SIGV4_AMZ_DATE_LEN + 1]; /* X-Amz-Date */
    uint32_t expires_s;                       /* X-Amz-Expires, 1..PC_SIGV4_MAX_EXPIRES_S */
    bool has_security_token;                  /* X-Amz-Security-Token / x-amz-security-token */
} pc_sigv4_auth_t;

/**
 * Find and parse the credentials of a request: the Authorization header, or
 * the presigned query (X-Amz-Algorithm present). Both present → MALFORMED.
 * Returns OK, NO_AUTH, MALFORMED or UNSUPPORTED (another algorithm, "AWS ak:sig").
 * Checks syntax only: the signed header list must be lower case, sorted,
 * without duplicates and include "host"; service/terminator must be
 * "s3"/"aws4_request"; the scope date must be 8 digits.
 */
pc_sigv4_result_t pc_sigv4_parse(const pc_sigv4_request_t *req, pc_sigv4_auth_t *out) PC_WUR;
/** The Authorization header value alone (what pc_sigv4_parse uses). */
pc_sigv4_result_t pc_sigv4_parse_header(const char *v, size_t n, pc_sigv4_auth_t *out) PC_WUR;
/** The raw query alone; NO_AUTH when it carries no X-Amz-Algorithm. */
pc_sigv4_result_t pc_sigv4_parse_query(const char *q, size_t n, pc_sigv4_auth_t *out) PC_WUR;

typedef enum {
    PC_SIGV4_PAYLOAD_INVALID = 0,
    PC_SIGV4_PAYLOAD_HASH,                       /* 64 hex digits: the body's SHA-256 */
    PC_SIGV4_PAYLOAD_UNSIGNED,                   /* UNSIGNED-PAYLOAD */
    PC_SIGV4_PAYLOAD_STREAMING,                  /* STREAMING-AWS4-HMAC-SHA256-PAYLOAD */
    PC_SIGV4_PAYLOAD_STREAMING_TRAILER,          /* STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER */
    PC_SIGV4_PAYLOAD_STREAMING_UNSIGNED_TRAILER, /* STREAMING-UNSIGNED-PAYLOAD-TRAILER */
} pc_sigv4_payload_t;

/**
 * Classify an x-amz-content-sha256 value. HASH fills sha256_out (may be NULL).
 * Hex digits of a hash may be either case (the value is signed verbatim).
 */
pc_sigv4_payload_t pc_sigv4_payload_kind(const char *v, size_t n, uint8_t *sha256_out);

/**
 * Signing keys cached per (secret, date, region, service): one per worker,
 * not thread-safe. It holds derived keys (secret material): wipe it when done.
 */
#define PC_SIGV4_KEY_CACHE_SLOTS 8
typedef struct pc_sigv4_key_cache {
    struct {
        uint8_t secret_id[32]; /* SHA-256 of the secret, not the secret */
        char date[9];
        char region[PC_SIGV4_MAX_REGION + 1];
        char service[PC_SIGV4_MAX_SERVICE + 1];
        uint8_t key[32];
        SHA256_CTX pc__ipad, pc__opad; /* HMAC(key, .) after its pad blocks (sigv4.c) */
        bool used;
    } slot[PC_SIGV4_KEY_CACHE_SLOTS];
    unsigned next;
} pc_sigv4_key_cache_t;

void pc_sigv4_key_cache_init(pc_sigv4_key_cache_t *c);
/** Zero every derived key (also fine on a never-initialised zeroed struct). */
void pc_sigv4_key_cache_wipe(pc_sigv4_key_cache_t *c);

/** What a successful verification established. Holds key material: do not log. */
typedef struct pc_sigv4_verified {
    pc_sigv4_payload_t payload;
    uint8_t payload_sha256[32]; /* PAYLOAD_HASH only */
    int64_t request_time_s;     /* Unix seconds of x-amz-date / X-Amz-Date */
    char amz_date[PC_SIGV4_AMZ_DATE_LEN + 1];
    char scope[PC_SIGV4_SCOPE_MAX + 1]; /* date/region/s3/aws4_request */
    uint8_t signing_key[32];
    uint8_t seed_signature[PC_SIGV4_SIG_LEN]; /* the request's own signature: chains chunk 1 */
} pc_sigv4_verified_t;

/**
 * Verify a parsed request against the user's secret at time now_s (Unix s).
 * Header auth: the time is x-amz-date (else a Date header, IMF-fixdate
 * "Fri, 24 May 2013 00:00:00 GMT" or YYYYMMDDTHHMMSSZ) and
 * must be within PC_SIGV4_MAX_SKEW_S of now (else SKEWED); the scope date must
 * be its date (else MALFORMED); x-amz-content-sha256 is required (MISSING_/
 * BAD_CONTENT_SHA256). Both kinds: "host" must be signed (else MALFORMED) and
 * every x-amz-* header present must be signed (else UNSIGNED_HEADERS: an
 * unsigned x-amz-copy-source must not turn a presigned PUT into a copy).
 * Presigned: now must be within
 * [X-Amz-Date - PC_SIGV4_MAX_SKEW_S, X-Amz-Date + X-Amz-Expires] (before:
 * SKEWED, after: EXPIRED); the payload hash is the X-Amz-Content-Sha256 query
 * parameter if present, else UNSIGNED-PAYLOAD.
 * A signed header missing from the request → MISMATCH. Signatures are compared
 * in constant time. cache may be NULL. *out is filled only on OK.
 * Cost: about 32k instructions (callgrind) for a presigned GET with the key cached
 * (one canonical-request hash, one HMAC from the cached pad states and the
 * secret's SHA-256 for the cache lookup; the key derivation, four HMACs,
 * only on a cache miss).
 */
pc_sigv4_result_t pc_sigv4_verify(const pc_sigv4_auth_t *auth, const pc_sigv4_request_t *req,
                                  const char *secret, int64_t now_s, pc_sigv4_key_cache_t *cache,
                                  pc_sigv4_verified_t *out) PC_WUR;

/* ---------- a body with a signed hash (PAYLOAD_HASH) ---------- */

/**
 * Streaming check of a body against the SHA-256 its request signed. The body
 * is forwarded as it arrives; a mismatch at the end means the caller must
 * abort the upstream request and answer 400 XAmzContentSHA256Mismatch.
 */
typedef struct pc_sigv4_body_hash {
    uint64_t bytes; /* fed so far */
    void *pc__md;   /* EVP_MD_CTX */
    uint8_t pc__want[32];
} pc_sigv4_body_hash_t;

/** Start; want is v->payload_sha256. False (nothing to free) if out of memory. */
bool pc_sigv4_body_hash_init(pc_sigv4_body_hash_t *h, const uint8_t want[32]) PC_WUR;
void pc_sigv4_body_hash_update(pc_sigv4_body_hash_t *h, const void *data, size_t n);
/** True if the bytes fed hash to the signed value. Releases the context either way. */
bool pc_sigv4_body_hash_final(pc_sigv4_body_hash_t *h) PC_WUR;
/** Release without checking (request abandoned). NULL-safe, idempotent. */
void pc_sigv4_body_hash_free(pc_sigv4_body_hash_t *h);

/* ---------- aws-chunked bodies (STREAMING-* payloads) ---------- */

typedef enum {
    PC_SIGV4_CK_NONE = 0,
    PC_SIGV4_CK_CRC32,     /* x-amz-checksum-crc32 */
    PC_SIGV4_CK_CRC32C,    /* x-amz-checksum-crc32c */
    PC_SIGV4_CK_CRC64NVME, /* x-amz-checksum-crc64nvme */
    PC_SIGV4_CK_SHA1,      /* x-amz-checksum-sha1 */
    PC_SIGV4_CK_SHA256,    /* x-amz-checksum-sha256 */
} pc_sigv4_checksum_t;

typedef enum {
    PC_SIGV4_CHUNKED_NEED_MORE = 0, /* all input consumed */
    PC_SIGV4_CHUNKED_DATA,          /* *data: decoded bytes (a span of the input) */
    PC_SIGV4_CHUNKED_END,           /* body complete and verified; trailing input is not ours */
    PC_SIGV4_CHUNKED_ERR_FRAMING,   /* 400 IncompleteBody / InvalidRequest: bad aws-chunked syntax,
                                       length differs from x-amz-decoded-content-length, ... */
    PC_SIGV4_CHUNKED_ERR_SIGNATURE, /* 403 SignatureDoesNotMatch: a chunk or trailer signature */
    PC_SIGV4_CHUNKED_ERR_CHECKSUM,  /* 400 BadDigest: trailing checksum differs from the data */
} pc_sigv4_chunked_status_t;

#define PC_SIGV4_CHECKSUM_B64_MAX 44 /* base64 of a SHA-256 */

/**
 * Incremental decoder+verifier of an aws-chunked body. Data of a chunk is
 * yielded BEFORE that chunk's signature can be checked (the signature covers
 * the whole chunk): a caller streaming upstream must abort the upstream
 * request (never complete it) on any ERR_*. ERR_* are final.
 * The public fields are valid after END; the rest is private.
 */
typedef struct pc_sigv4_chunked {
    uint64_t decoded_bytes;       /* data bytes yielded so far */
    pc_sigv4_checksum_t checksum; /* trailing checksum received (NONE if none) */
    char checksum_b64[PC_SIGV4_CHECKSUM_B64_MAX + 1]; /* its value as sent */
    /* private */
    pc_sigv4_payload_t pc__kind;
    uint8_t pc__key[32];
    uint8_t pc__prev_sig[PC_SIGV4_SIG_LEN];
    uint8_t pc__chunk_sig[PC_SIGV4_SIG_LEN];
    char pc__amz_date[PC_SIGV4_AMZ_DATE_LEN + 1];
    char pc__scope[PC_SIGV4_SCOPE_MAX + 1];
    pc_sigv4_checksum_t pc__announced; /* from x-amz-trailer */
    uint64_t pc__expect_len;
    uint64_t pc__remaining;
    void *pc__sha; /* EVP_MD_CTX for the chunk's SHA-256 */
    void *pc__ck;  /* EVP_MD_CTX for sha1/sha256 checksums */
    uint64_t pc__crc;
    uint8_t pc__state;
    uint8_t pc__sub;
    uint16_t pc__line_len;
    char pc__line[256];
} pc_sigv4_chunked_t;

/**
 * Start decoding a body whose request verified as v (v->payload must be one
 * of the STREAMING_* kinds). decoded_len: x-amz-decoded-content-length, or
 * UINT64_MAX when the request had none (the length is then not enforced).
 * trailer: the x-amz-trailer header value ({NULL,0} if absent); it must name
 * one supported checksum when present (else false). A trailer kind without
 * x-amz-trailer is accepted (the trailer is then optional).
 * Returns false (nothing to free) on a bad trailer name or out of memory.
 */
bool pc_sigv4_chunked_init(pc_sigv4_chunked_t *d, const pc_sigv4_verified_t *v,
                           uint64_t decoded_len, pc_http1_span_t trailer) PC_WUR;
/** Feed raw body bytes (already de-framed from HTTP). Same contract as pc_http1_feed. */
pc_sigv4_chunked_status_t pc_sigv4_chunked_feed(pc_sigv4_chunked_t *d, const char *buf, size_t len,
                                                size_t *consumed, pc_http1_span_t *data);
/** Release hash contexts and wipe the key. NULL-safe, idempotent. */
void pc_sigv4_chunked_free(pc_sigv4_chunked_t *d);
/** Header name of a checksum kind ("x-amz-checksum-crc32", ...), NULL for NONE. */
const char *pc_sigv4_checksum_header(pc_sigv4_checksum_t c);

/* ---------- signing (upstream requests, OPA's sign_req) ---------- */

typedef struct pc_sigv4_sign_in {
    const char *method;
    pc_http1_span_t path;  /* as it will be sent (already percent-encoded); empty = "/" */
    pc_http1_span_t query; /* as it will be sent, without '?'; may be empty */
    /* Every header to sign (include host, x-amz-date, x-amz-content-sha256,
     * x-amz-security-token as they will be sent), any case, any order. */
    const pc_http1_header_t *headers;
    size_t nheaders;
    const char *payload_hash; /* hex SHA-256, UNSIGNED-PAYLOAD, STREAMING-... */
    const char *access_key, *secret, *region, *service;
    const char *amz_date; /* YYYYMMDDTHHMMSSZ, the x-amz-date value */
    /* OPA sign_req compatibility: path (even empty) and query are used
     * verbatim as the canonical URI / query, header values untrimmed. */
    bool verbatim;
} pc_sigv4_sign_in_t;

/**
 * Sign: writes the Authorization value ("AWS4-HMAC-SHA256 Credential=...,
 * SignedHeaders=...,Signature=...", NUL-terminated) into authz[cap]; the
 * raw signature into sig_out when non-NULL. cache may be NULL.
 * False on bad input (too many headers, fields over the limits, cap too small).
 */
bool pc_sigv4_sign(const pc_sigv4_sign_in_t *in, pc_sigv4_key_cache_t *cache, char *authz,
                   size_t cap, uint8_t *sig_out) PC_WUR;
/** Format Unix seconds as YYYYMMDDTHHMMSSZ (UTC). */
void pc_sigv4_amz_date(int64_t unix_s, char out[PC_SIGV4_AMZ_DATE_LEN + 1]);
/** Lower-case hex of a SHA-256 of data into out[65] (NUL-terminated): payload hashes. */
void pc_sigv4_sha256_hex(const void *data, size_t len, char out[65]);
/** The hex SHA-256 of the empty string (payload hash of bodiless requests). */
#define PC_SIGV4_EMPTY_SHA256 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
#define PC_SIGV4_UNSIGNED_PAYLOAD "UNSIGNED-PAYLOAD"

#endif
