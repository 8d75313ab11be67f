/*
 * Small cryptographic helpers over OpenSSL shared by SCRAM, the snapshot
 * loader and any module that needs hashing or base64 (S3 SigV4, tokens).
 * All functions are pure and thread-safe.
 */
#ifndef PC_CORE_CRYPTO_H
#define PC_CORE_CRYPTO_H

#include "core/common.h"

#define PC_SHA256_LEN 32
/** Characters of the base64 form of n bytes (padded), without the NUL. */
#define PC_B64_ENCODED_LEN(n) ((((n) + 2) / 3) * 4)

/** Cryptographically secure random bytes; false only if the RNG fails. */
bool pc_random_bytes(void *buf, size_t n) PC_WUR;
void pc_sha256(const void *data, size_t len, uint8_t out[PC_SHA256_LEN]);
void pc_hmac_sha256(const void *key, size_t key_len, const void *data, size_t len,
                    uint8_t out[PC_SHA256_LEN]);
/** PBKDF2-HMAC-SHA-256 producing out_len bytes. */
bool pc_pbkdf2_sha256(const void *password, size_t password_len, const uint8_t *salt,
                      size_t salt_len, uint32_t iterations, uint8_t *out, size_t out_len) PC_WUR;
/** Lower-case hex MD5 of data into out[33] (NUL-terminated). */
void pc_md5_hex(const void *data, size_t len, char out[33]);
/** Constant-time comparison of two equal-length buffers. */
bool pc_ct_equal(const void *a, const void *b, size_t n);

/**
 * Standard base64 with padding. Encode writes PC_B64_ENCODED_LEN(n) chars and
 * a NUL (cap must allow it) and returns the length, or 0 if cap is too small.
 */
size_t pc_b64_encode(const uint8_t *in, size_t n, char *out, size_t cap);
/**
 * Strict decode: padding required, no whitespace, canonical trailing bits.
 * Returns false on any malformed input or if the result exceeds cap.
 */
bool pc_b64_decode(const char *in, size_t n, uint8_t *out, size_t cap, size_t *out_len) PC_WUR;

#endif
