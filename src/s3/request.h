/*
 * What an S3 request asks for: bucket, key and operation name, from the
 * request line and a few headers. Pure; no allocation (the result holds
 * fixed-size copies, so it outlives the request buffer).
 *
 * Addressing:
 *  - virtual-hosted style when the listener has a hostname H and the Host
 *    header (port ignored, case-insensitive) is "<bucket>.H": the bucket is
 *    the label(s) before ".H" and the whole path is the key;
 *  - otherwise path style: "/<bucket>/<key...>"; a Host equal to H (or any
 *    other Host) is path style.
 * The key is percent-decoded once (never '+' → space in paths); an empty key
 * with a trailing slash ("/bucket/") is the bucket itself. Keys are never
 * normalised: "a//b/../c" is a valid S3 key and is kept as is.
 */
#ifndef PC_S3_REQUEST_H
#define PC_S3_REQUEST_H

#include "core/common.h"
#include "http/http1.h"

#define PC_S3_MAX_BUCKET 255 /* S3 allows 63 for new buckets; legacy names up to 255 */
#define PC_S3_MAX_KEY 1024   /* bytes after decoding, S3's limit */

typedef enum {
    PC_S3_OP_UNKNOWN = 0,
    /* service */
    PC_S3_OP_LIST_BUCKETS,
    /* bucket */
    PC_S3_OP_CREATE_BUCKET,
    PC_S3_OP_DELETE_BUCKET,
    PC_S3_OP_HEAD_BUCKET,
    PC_S3_OP_LIST_OBJECTS,
    PC_S3_OP_LIST_OBJECTS_V2,
    PC_S3_OP_LIST_OBJECT_VERSIONS,
    PC_S3_OP_LIST_MULTIPART_UPLOADS,
    PC_S3_OP_DELETE_OBJECTS,
    PC_S3_OP_GET_BUCKET_LOCATION,
    PC_S3_OP_BUCKET_SUBRESOURCE, /* Get/Put/DeleteBucket<Acl|Policy|Tagging|...>: see op_name */
    /* object */
    PC_S3_OP_GET_OBJECT,
    PC_S3_OP_HEAD_OBJECT,
    PC_S3_OP_PUT_OBJECT,
    PC_S3_OP_COPY_OBJECT,
    PC_S3_OP_DELETE_OBJECT,
    PC_S3_OP_POST_OBJECT,
    PC_S3_OP_CREATE_MULTIPART_UPLOAD,
    PC_S3_OP_UPLOAD_PART,
    PC_S3_OP_UPLOAD_PART_COPY,
    PC_S3_OP_COMPLETE_MULTIPART_UPLOAD,
    PC_S3_OP_ABORT_MULTIPART_UPLOAD,
    PC_S3_OP_LIST_PARTS,
    PC_S3_OP_OBJECT_SUBRESOURCE, /* Get/PutObject<Tagging|Acl|Retention|...>, RestoreObject, ... */
} pc_s3_op_t;

typedef enum {
    PC_S3_REQ_OK = 0,
    PC_S3_REQ_INVALID_URI,         /* 400 InvalidURI: not origin-form, bad %-escape, %00 */
    PC_S3_REQ_INVALID_BUCKET,      /* 400 InvalidBucketName */
    PC_S3_REQ_KEY_TOO_LONG,        /* 400 KeyTooLongError */
    PC_S3_REQ_INVALID_COPY_SOURCE, /* 400 InvalidArgument: x-amz-copy-source unusable */
} pc_s3_req_result_t;

/** S3 error code of a failed parse ("InvalidURI", ...); NULL for OK. */
const char *pc_s3_req_result_code(pc_s3_req_result_t r);

typedef struct pc_s3_request {
    pc_s3_op_t op;
    /* Stable operation name: S3's own API names ("GetObject", "ListObjectsV2",
     * "PutBucketPolicy", ...). Requests no rule recognises get
     * "Unknown<Service|Bucket|Object>Operation". Static storage. */
    const char *op_name;
    bool virtual_hosted;
    char bucket[PC_S3_MAX_BUCKET + 1]; /* "" when the request names no bucket */
    char key[PC_S3_MAX_KEY + 1];       /* decoded, NUL-terminated; "" when none */
    size_t key_len;
    /* CopyObject / UploadPartCopy: x-amz-copy-source "[/]bucket/key[?versionId=v]" */
    bool has_copy_source;
    char copy_bucket[PC_S3_MAX_BUCKET + 1];
    char copy_key[PC_S3_MAX_KEY + 1]; /* decoded */
    size_t copy_key_len;
} pc_s3_request_t;

typedef struct pc_s3_request_in {
    pc_http1_span_t method;      /* e.g. "GET" */
    pc_http1_span_t target;      /* raw request-target, "/path?query" */
    pc_http1_span_t host;        /* Host header value; {NULL,0} if none */
    pc_http1_span_t copy_source; /* x-amz-copy-source value; {NULL,0} if none */
    const char *hostname;        /* listener's hostname; NULL or "" = path style only */
} pc_s3_request_in_t;

/** Parse; *out is fully written (also on error, with op UNKNOWN). */
pc_s3_req_result_t pc_s3_request_parse(const pc_s3_request_in_t *in, pc_s3_request_t *out) PC_WUR;
/** Same, taking method/target/Host/x-amz-copy-source from a parsed request head. */
pc_s3_req_result_t pc_s3_request_from_msg(const pc_http1_msg_t *m, const char *hostname,
                                          pc_s3_request_t *out) PC_WUR;
/** True if a bucket name is acceptable (3..255 of [a-z0-9.-_], legacy rules included). */
bool pc_s3_bucket_name_ok(const char *name, size_t n);

#endif
