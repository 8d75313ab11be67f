/* Internals shared by sigv4.c and sigv4_chunked.c; not API. */
#ifndef PC_S3_SIGV4_INT_H
#define PC_S3_SIGV4_INT_H

#include "s3/sigv4.h"

/** Lower-case hex of n bytes into out (2n chars, then a NUL). */
void pc__sigv4_hex(const uint8_t *in, size_t n, char *out);
/** Exactly 2n hex digits (either case) into out[n]. */
bool pc__sigv4_unhex(const char *in, size_t hex_len, uint8_t *out, size_t n);
/**
 * The signature of a "string to sign" with the given algorithm line:
 * algo \n amz_date \n scope \n hex(prev) \n tail, where tail is one or two
 * already-formatted lines. Used by chunk and trailer signatures.
 */
void pc__sigv4_chained(const uint8_t key[32], const char *algo, const char *amz_date,
                       const char *scope, const uint8_t prev[PC_SIGV4_SIG_LEN], const char *tail,
                       uint8_t out[PC_SIGV4_SIG_LEN]);

#endif
