/* S3 addressing and operation names: see request.h. */
#include "s3/request.h"

#include <string.h>
#include <strings.h>

const char *pc_s3_req_result_code(pc_s3_req_result_t r)
{
    switch (r) {
    case PC_S3_REQ_OK:
        return NULL;
    case PC_S3_REQ_INVALID_URI:
        return "InvalidURI";
    case PC_S3_REQ_INVALID_BUCKET:
        return "InvalidBucketName";
    case PC_S3_REQ_KEY_TOO_LONG:
        return "KeyTooLongError";
    case PC_S3_REQ_INVALID_COPY_SOURCE:
        return "InvalidArgument";
    }
    return "InvalidRequest";
}

static int hexval(unsigned char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/*
 * Percent-decode s[0..n) into out[cap] (NUL-terminated). -1: bad escape or a
 * NUL byte; -2: longer than cap - 1.
 */
static int decode(const char *s, size_t n, char *out, size_t cap, size_t *out_len)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '%') {
            if (i + 2 >= n) return -1;
            int a = hexval((unsigned char)s[i + 1]), b = hexval((unsigned char)s[i + 2]);
            if (a < 0 || b < 0) return -1;
            c = (unsigned char)(a << 4 | b);
            i += 2;
        }
        if (c == 0) return -1;
        if (o + 1 >= cap) return -2;
        out[o++] = (char)c;
    }
    out[o] = '\0';
    *out_len = o;
    return 0;
}

bool pc_s3_bucket_name_ok(const char *name, size_t n)
{
    if (n < 3 || n > PC_S3_MAX_BUCKET) return false;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
        if (!alnum && !(i > 0 && (c == '.' || c == '-' || c == '_'))) return false;
    }
    return true;
}

static pc_s3_req_result_t set_bucket(char *dst, const char *s, size_t n)
{
    size_t len;
    if (decode(s, n, dst, PC_S3_MAX_BUCKET + 1, &len) != 0 || !pc_s3_bucket_name_ok(dst, len)) {
        dst[0] = '\0';
        return PC_S3_REQ_INVALID_BUCKET;
    }
    return PC_S3_REQ_OK;
}

static pc_s3_req_result_t set_key(char *dst, size_t *dst_len, const char *s, size_t n)
{
    int r = decode(s, n, dst, PC_S3_MAX_KEY + 1, dst_len);
    if (r == 0) return PC_S3_REQ_OK;
    dst[0] = '\0';
    *dst_len = 0;
    return r == -2 ? PC_S3_REQ_KEY_TOO_LONG : PC_S3_REQ_INVALID_URI;
}

/* Host without ":port"; IPv6 literals keep their brackets. */
static pc_http1_span_t strip_port(pc_http1_span_t h)
{
    for (size_t i = h.n; i > 0; i--) {
        char c = h.p[i - 1];
        if (c == ':') return (pc_http1_span_t){h.p, i - 1};
        if (c < '0' || c > '9') break;
    }
    return h;
}

/* ---------- operation names ---------- */

typedef struct {
    bool any;
    bool uploads, upload_id, part_number, delete_, versions, location, list_v2, restore, select;
    const char *sub; /* the first other subresource seen (static name) */
} query_t;

/* Subresources that name bucket-level operations: GET / PUT / DELETE names. */
static const struct {
    const char *param, *get, *put, *del;
} bucket_subs[] = {
    {"acl", "GetBucketAcl", "PutBucketAcl", NULL},
    {"policy", "GetBucketPolicy", "PutBucketPolicy", "DeleteBucketPolicy"},
    {"policyStatus", "GetBucketPolicyStatus", NULL, NULL},
    {"cors", "GetBucketCors", "PutBucketCors", "DeleteBucketCors"},
    {"lifecycle", "GetBucketLifecycleConfiguration", "PutBucketLifecycleConfiguration",
     "DeleteBucketLifecycle"},
    {"versioning", "GetBucketVersioning", "PutBucketVersioning", NULL},
    {"website", "GetBucketWebsite", "PutBucketWebsite", "DeleteBucketWebsite"},
    {"encryption", "GetBucketEncryption", "PutBucketEncryption", "DeleteBucketEncryption"},
    {"logging", "GetBucketLogging", "PutBucketLogging", NULL},
    {"notification", "GetBucketNotificationConfiguration", "PutBucketNotificationConfiguration",
     NULL},
    {"replication", "GetBucketReplication", "PutBucketReplication", "DeleteBucketReplication"},
    {"requestPayment", "GetBucketRequestPayment", "PutBucketRequestPayment", NULL},
    {"ownershipControls", "GetBucketOwnershipControls", "PutBucketOwnershipControls",
     "DeleteBucketOwnershipControls"},
    {"publicAccessBlock", "GetPublicAccessBlock", "PutPublicAccessBlock",
     "DeletePublicAccessBlock"},
    {"object-lock", "GetObjectLockConfiguration", "PutObjectLockConfiguration", NULL},
    {"tagging", "GetBucketTagging", "PutBucketTagging", "DeleteBucketTagging"},
    {"accelerate", "GetBucketAccelerateConfiguration", "PutBucketAccelerateConfiguration", NULL},
    {"analytics", "GetBucketAnalyticsConfiguration", "PutBucketAnalyticsConfiguration",
     "DeleteBucketAnalyticsConfiguration"},
    {"intelligent-tiering", "GetBucketIntelligentTieringConfiguration",
     "PutBucketIntelligentTieringConfiguration", "DeleteBucketIntelligentTieringConfiguration"},
    {"inventory", "GetBucketInventoryConfiguration", "PutBucketInventoryConfiguration",
     "DeleteBucketInventoryConfiguration"},
    {"metrics", "GetBucketMetricsConfiguration", "PutBucketMetricsConfiguration",
     "DeleteBucketMetricsConfiguration"},
};

static const struct {
    const char *param, *get, *put, *del;
} object_subs[] = {
    {"acl", "GetObjectAcl", "PutObjectAcl", NULL},
    {"tagging", "GetObjectTagging", "PutObjectTagging", "DeleteObjectTagging"},
    {"retention", "GetObjectRetention", "PutObjectRetention", NULL},
    {"legal-hold", "GetObjectLegalHold", "PutObjectLegalHold", NULL},
    {"attributes", "GetObjectAttributes", NULL, NULL},
    {"torrent", "GetObjectTorrent", NULL, NULL},
};

static bool name_is(const char *p, size_t n, const char *lit)
{
    return strlen(lit) == n && memcmp(p, lit, n) == 0;
}

static void scan_query(const char *q, size_t n, query_t *out)
{
    memset(out, 0, sizeof(*out));
    const char *p = q, *end = q + n;
    while (p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *e = amp ? amp : end;
        const char *eq = memchr(p, '=', (size_t)(e - p));
        size_t nl = (size_t)((eq ? eq : e) - p);
        const char *v = eq ? eq + 1 : e;
        size_t vl = (size_t)(e - v);
        if (nl) out->any = true;
        /* Signing parameters (X-Amz-*) and the like are never subresources. */
        if (nl == 0 || (p[0] >= 'A' && p[0] <= 'Z')) {
            p = amp ? amp + 1 : end;
            continue;
        }
        if (name_is(p, nl, "uploads"))
            out->uploads = true;
        else if (name_is(p, nl, "uploadId"))
            out->upload_id = true;
        else if (name_is(p, nl, "partNumber"))
            out->part_number = true;
        else if (name_is(p, nl, "delete"))
            out->delete_ = true;
        else if (name_is(p, nl, "versions"))
            out->versions = true;
        else if (name_is(p, nl, "location"))
            out->location = true;
        else if (name_is(p, nl, "restore"))
            out->restore = true;
        else if (name_is(p, nl, "select"))
            out->select = true;
        else if (name_is(p, nl, "list-type"))
            out->list_v2 = name_is(v, vl, "2");
        else if (!out->sub) {
            for (size_t i = 0; i < PC_ARRAY_LEN(bucket_subs); i++)
                if (name_is(p, nl, bucket_subs[i].param)) out->sub = bucket_subs[i].param;
            for (size_t i = 0; i < PC_ARRAY_LEN(object_subs); i++)
                if (name_is(p, nl, object_subs[i].param)) out->sub = object_subs[i].param;
        }
        p = amp ? amp + 1 : end;
    }
}

typedef enum { M_GET, M_HEAD, M_PUT, M_POST, M_DELETE, M_OTHER } method_t;

static method_t method_of(pc_http1_span_t m)
{
    if (name_is(m.p, m.n, "GET")) return M_GET;
    if (name_is(m.p, m.n, "HEAD")) return M_HEAD;
    if (name_is(m.p, m.n, "PUT")) return M_PUT;
    if (name_is(m.p, m.n, "POST")) return M_POST;
    if (name_is(m.p, m.n, "DELETE")) return M_DELETE;
    return M_OTHER;
}

static const char *sub_name(method_t m, const char *get, const char *put, const char *del)
{
    return m == M_GET ? get : m == M_PUT ? put : m == M_DELETE ? del : NULL;
}

static void name_op(pc_s3_request_t *r, method_t m, const query_t *q, bool copy)
{
    static const char *const names[] = {
        [PC_S3_OP_LIST_BUCKETS] = "ListBuckets",
        [PC_S3_OP_CREATE_BUCKET] = "CreateBucket",
        [PC_S3_OP_DELETE_BUCKET] = "DeleteBucket",
        [PC_S3_OP_HEAD_BUCKET] = "HeadBucket",
        [PC_S3_OP_LIST_OBJECTS] = "ListObjects",
        [PC_S3_OP_LIST_OBJECTS_V2] = "ListObjectsV2",
        [PC_S3_OP_LIST_OBJECT_VERSIONS] = "ListObjectVersions",
        [PC_S3_OP_LIST_MULTIPART_UPLOADS] = "ListMultipartUploads",
        [PC_S3_OP_DELETE_OBJECTS] = "DeleteObjects",
        [PC_S3_OP_GET_BUCKET_LOCATION] = "GetBucketLocation",
        [PC_S3_OP_GET_OBJECT] = "GetObject",
        [PC_S3_OP_HEAD_OBJECT] = "HeadObject",
        [PC_S3_OP_PUT_OBJECT] = "PutObject",
        [PC_S3_OP_COPY_OBJECT] = "CopyObject",
        [PC_S3_OP_DELETE_OBJECT] = "DeleteObject",
        [PC_S3_OP_POST_OBJECT] = "PostObject",
        [PC_S3_OP_CREATE_MULTIPART_UPLOAD] = "CreateMultipartUpload",
        [PC_S3_OP_UPLOAD_PART] = "UploadPart",
        [PC_S3_OP_UPLOAD_PART_COPY] = "UploadPartCopy",
        [PC_S3_OP_COMPLETE_MULTIPART_UPLOAD] = "CompleteMultipartUpload",
        [PC_S3_OP_ABORT_MULTIPART_UPLOAD] = "AbortMultipartUpload",
        [PC_S3_OP_LIST_PARTS] = "ListParts",
    };
    pc_s3_op_t op = PC_S3_OP_UNKNOWN;
    const char *sub = NULL;
    if (!r->bucket[0]) {
        /* any query (?x-id=ListBuckets, max-buckets, prefix, ...) is still ListBuckets */
        if (m == M_GET) op = PC_S3_OP_LIST_BUCKETS;
        r->op = op;
        r->op_name = op ? names[op] : "UnknownServiceOperation";
        return;
    }
    if (!r->key_len) {
        for (size_t i = 0; q->sub && i < PC_ARRAY_LEN(bucket_subs); i++)
            if (!strcmp(q->sub, bucket_subs[i].param))
                sub = sub_name(m, bucket_subs[i].get, bucket_subs[i].put, bucket_subs[i].del);
        switch (m) {
        case M_GET:
            op = q->location   ? PC_S3_OP_GET_BUCKET_LOCATION
                 : q->uploads  ? PC_S3_OP_LIST_MULTIPART_UPLOADS
                 : q->versions ? PC_S3_OP_LIST_OBJECT_VERSIONS
                 : q->sub      ? PC_S3_OP_BUCKET_SUBRESOURCE
                 : q->list_v2  ? PC_S3_OP_LIST_OBJECTS_V2
                               : PC_S3_OP_LIST_OBJECTS;
            break;
        case M_HEAD:
            op = PC_S3_OP_HEAD_BUCKET;
            break;
        case M_PUT:
            op = q->sub ? PC_S3_OP_BUCKET_SUBRESOURCE : PC_S3_OP_CREATE_BUCKET;
            break;
        case M_DELETE:
            op = q->sub ? PC_S3_OP_BUCKET_SUBRESOURCE : PC_S3_OP_DELETE_BUCKET;
            break;
        case M_POST:
            op = q->delete_ ? PC_S3_OP_DELETE_OBJECTS
                 : q->any   ? PC_S3_OP_UNKNOWN
                            : PC_S3_OP_POST_OBJECT;
            break;
        case M_OTHER:
            break;
        }
        if (op == PC_S3_OP_BUCKET_SUBRESOURCE && !sub) op = PC_S3_OP_UNKNOWN;
        r->op = op;
        r->op_name = op == PC_S3_OP_BUCKET_SUBRESOURCE ? sub
                     : op                              ? names[op]
                                                       : "UnknownBucketOperation";
        return;
    }
    for (size_t i = 0; q->sub && i < PC_ARRAY_LEN(object_subs); i++)
        if (!strcmp(q->sub, object_subs[i].param))
            sub = sub_name(m, object_subs[i].get, object_subs[i].put, object_subs[i].del);
    switch (m) {
    case M_GET:
        op = q->upload_id ? PC_S3_OP_LIST_PARTS
             : q->sub     ? PC_S3_OP_OBJECT_SUBRESOURCE
                          : PC_S3_OP_GET_OBJECT;
        break;
    case M_HEAD:
        op = PC_S3_OP_HEAD_OBJECT;
        break;
    case M_PUT:
        if (q->upload_id && q->part_number)
            op = copy ? PC_S3_OP_UPLOAD_PART_COPY : PC_S3_OP_UPLOAD_PART;
        else if (q->sub)
            op = PC_S3_OP_OBJECT_SUBRESOURCE;
        else if (q->upload_id || q->part_number)
            op = PC_S3_OP_UNKNOWN;
        else
            op = copy ? PC_S3_OP_COPY_OBJECT : PC_S3_OP_PUT_OBJECT;
        break;
    case M_DELETE:
        op = q->upload_id ? PC_S3_OP_ABORT_MULTIPART_UPLOAD
             : q->sub     ? PC_S3_OP_OBJECT_SUBRESOURCE
                          : PC_S3_OP_DELETE_OBJECT;
        break;
    case M_POST:
        if (q->uploads)
            op = PC_S3_OP_CREATE_MULTIPART_UPLOAD;
        else if (q->upload_id)
            op = PC_S3_OP_COMPLETE_MULTIPART_UPLOAD;
        else if (q->restore)
            sub = "RestoreObject", op = PC_S3_OP_OBJECT_SUBRESOURCE;
        else if (q->select)
            sub = "SelectObjectContent", op = PC_S3_OP_OBJECT_SUBRESOURCE;
        break;
    case M_OTHER:
        break;
    }
    if (op == PC_S3_OP_OBJECT_SUBRESOURCE && !sub) op = PC_S3_OP_UNKNOWN;
    r->op = op;
    r->op_name = op == PC_S3_OP_OBJECT_SUBRESOURCE ? sub
                 : op                              ? names[op]
                                                   : "UnknownObjectOperation";
}

/* x-amz-copy-source: "[/]bucket/key[?versionId=...]", percent-encoded. */
static bool parse_copy_source(pc_s3_request_t *r, pc_http1_span_t v)
{
    const char *p = v.p, *end = v.p + v.n;
    const char *q = memchr(p, '?', v.n);
    if (q) end = q;
    if (p < end && *p == '/') p++;
    const char *slash = memchr(p, '/', (size_t)(end - p));
    if (!slash || slash == p || slash + 1 == end) return false;
    if (set_bucket(r->copy_bucket, p, (size_t)(slash - p)) != PC_S3_REQ_OK) return false;
    if (set_key(r->copy_key, &r->copy_key_len, slash + 1, (size_t)(end - slash - 1)) !=
        PC_S3_REQ_OK) {
        r->copy_bucket[0] = '\0';
        return false;
    }
    return true;
}

pc_s3_req_result_t pc_s3_request_parse(const pc_s3_request_in_t *in, pc_s3_request_t *out)
{
    out->op = PC_S3_OP_UNKNOWN;
    out->op_name = "UnknownOperation";
    out->virtual_hosted = false;
    out->bucket[0] = out->key[0] = out->copy_bucket[0] = out->copy_key[0] = '\0';
    out->key_len = out->copy_key_len = 0;
    out->has_copy_source = false;

    pc_http1_span_t t = in->target;
    if (!t.p || t.n == 0 || t.p[0] != '/') return PC_S3_REQ_INVALID_URI;
    const char *qm = memchr(t.p, '?', t.n);
    pc_http1_span_t path = {t.p, qm ? (size_t)(qm - t.p) : t.n};
    pc_http1_span_t query = {qm ? qm + 1 : t.p + t.n, qm ? t.n - path.n - 1 : 0};

    /* virtual-hosted style: Host = <bucket>.<hostname> */
    size_t hl = in->hostname ? strlen(in->hostname) : 0;
    pc_http1_span_t hn = strip_port((pc_http1_span_t){in->hostname, hl});
    pc_http1_span_t host = in->host.p ? strip_port(in->host) : (pc_http1_span_t){NULL, 0};
    pc_s3_req_result_t res = PC_S3_REQ_OK;
    if (hn.n && host.n > hn.n + 1 && host.p[host.n - hn.n - 1] == '.' &&
        strncasecmp(host.p + host.n - hn.n, hn.p, hn.n) == 0) {
        out->virtual_hosted = true;
        size_t bl = host.n - hn.n - 1;
        if (bl > PC_S3_MAX_BUCKET) return PC_S3_REQ_INVALID_BUCKET;
        char lc[PC_S3_MAX_BUCKET + 1];
        for (size_t i = 0; i < bl; i++)
            lc[i] = host.p[i] >= 'A' && host.p[i] <= 'Z' ? (char)(host.p[i] + 32) : host.p[i];
        res = set_bucket(out->bucket, lc, bl);
        if (res == PC_S3_REQ_OK && path.n > 1)
            res = set_key(out->key, &out->key_len, path.p + 1, path.n - 1);
    } else if (path.n > 1) {
        const char *b = path.p + 1, *pend = path.p + path.n;
        const char *slash = memchr(b, '/', (size_t)(pend - b));
        res = set_bucket(out->bucket, b, (size_t)((slash ? slash : pend) - b));
        if (res == PC_S3_REQ_OK && slash && slash + 1 < pend)
            res = set_key(out->key, &out->key_len, slash + 1, (size_t)(pend - slash - 1));
    }
    if (res != PC_S3_REQ_OK) {
        out->bucket[0] = '\0';
        return res;
    }
    query_t q;
    scan_query(query.p, query.n, &q);
    bool copy = in->copy_source.p && in->copy_source.n;
    name_op(out, method_of(in->method), &q, copy);
    if (copy && (out->op == PC_S3_OP_COPY_OBJECT || out->op == PC_S3_OP_UPLOAD_PART_COPY)) {
        if (!parse_copy_source(out, in->copy_source)) return PC_S3_REQ_INVALID_COPY_SOURCE;
        out->has_copy_source = true;
    }
    return PC_S3_REQ_OK;
}

pc_s3_req_result_t pc_s3_request_from_msg(const pc_http1_msg_t *m, const char *hostname,
                                          pc_s3_request_t *out)
{
    const pc_http1_span_t *host = pc_http1_get(m, "host");
    const pc_http1_span_t *copy = pc_http1_get(m, "x-amz-copy-source");
    pc_s3_request_in_t in = {
        .method = m->method_name,
        .target = m->target,
        .host = host ? *host : (pc_http1_span_t){NULL, 0},
        .copy_source = copy ? *copy : (pc_http1_span_t){NULL, 0},
        .hostname = hostname,
    };
    return pc_s3_request_parse(&in, out);
}
