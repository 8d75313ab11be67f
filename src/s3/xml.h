/*
 * S3 error responses: the XML body S3 sends and the HTTP status of each code.
 * Pure, no allocation: output goes into a caller buffer.
 *
 *   <?xml version="1.0" encoding="UTF-8"?>
 *   <Error><Code>C</Code><Message>M</Message><Resource>R</Resource>
 *   <RequestId>I</RequestId></Error>
 */
#ifndef PC_S3_XML_H
#define PC_S3_XML_H

#include "core/common.h"

/**
 * A buffer of this many bytes always fits the document for the given total
 * length of code + message + resource + request id (escaping grows a byte to
 * at most 6).
 */
#define PC_S3_ERROR_XML_BOUND(text_len) (160u + 6u * (size_t)(text_len))

/** HTTP status S3 answers with for an error code; 500 for codes it does not know. */
int pc_s3_error_status(const char *code);
/** S3's usual message for a code ("Access Denied", ...), or "" when unknown. */
const char *pc_s3_error_default_message(const char *code);

/**
 * Write the error document into out[cap], NUL-terminated. message NULL →
 * the code's default message; resource / request_id NULL → element omitted.
 * All text is XML-escaped (& < > " ' and control characters; invalid UTF-8
 * bytes are replaced by U+FFFD so the document stays well-formed).
 * Returns the length without the NUL, or 0 if cap is too small (out is then
 * an empty string when cap > 0).
 */
size_t pc_s3_error_xml(char *out, size_t cap, const char *code, const char *message,
                       const char *resource, const char *request_id);

/**
 * XML-escape s[0..n) into out[cap] (NUL-terminated), same rules. Returns the
 * length, or (size_t)-1 if it does not fit.
 */
size_t pc_s3_xml_escape(char *out, size_t cap, const char *s, size_t n);

#endif
