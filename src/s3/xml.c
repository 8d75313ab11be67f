/* S3 error documents and the status of each error code. */
#include "s3/xml.h"

#include <string.h>

static const struct {
    const char *code;
    int status;
    const char *message;
} errors[] = {
    {"AccessDenied", 403, "Access Denied"},
    {"AuthorizationHeaderMalformed", 400, "The authorization header is malformed."},
    {"AuthorizationQueryParametersError", 400, "The authorization query parameters are malformed."},
    {"BadDigest", 400,
     "The Content-MD5 or checksum value you specified did not match what we received."},
    {"BucketAlreadyExists", 409, "The requested bucket name is not available."},
    {"BucketAlreadyOwnedByYou", 409,
     "Your previous request to create the named bucket succeeded and you already own it."},
    {"BucketNotEmpty", 409, "The bucket you tried to delete is not empty."},
    {"EntityTooLarge", 400, "Your proposed upload exceeds the maximum allowed object size."},
    {"EntityTooSmall", 400,
     "Your proposed upload is smaller than the minimum allowed object size."},
    {"ExpiredToken", 400, "The provided token has expired."},
    {"IncompleteBody", 400,
     "You did not provide the number of bytes specified by the Content-Length HTTP header."},
    {"InternalError", 500, "We encountered an internal error. Please try again."},
    {"InvalidAccessKeyId", 403,
     "The AWS access key ID you provided does not exist in our records."},
    {"InvalidArgument", 400, "Invalid Argument"},
    {"InvalidBucketName", 400, "The specified bucket is not valid."},
    {"InvalidDigest", 400, "The Content-MD5 you specified is not valid."},
    {"InvalidPart", 400, "One or more of the specified parts could not be found."},
    {"InvalidPartOrder", 400, "The list of parts was not in ascending order."},
    {"InvalidRange", 416, "The requested range is not satisfiable"},
    {"InvalidRequest", 400, "Invalid Request"},
    {"InvalidToken", 400, "The provided token is malformed or otherwise invalid."},
    {"InvalidURI", 400, "Couldn't parse the specified URI."},
    {"KeyTooLongError", 400, "Your key is too long."},
    {"MalformedXML", 400,
     "The XML you provided was not well-formed or did not validate against our published schema."},
    {"MaxMessageLengthExceeded", 400, "Your request was too big."},
    {"MethodNotAllowed", 405, "The specified method is not allowed against this resource."},
    {"MissingContentLength", 411, "You must provide the Content-Length HTTP header."},
    {"MissingSecurityHeader", 400, "Your request is missing a required header."},
    {"NoSuchBucket", 404, "The specified bucket does not exist"},
    {"NoSuchKey", 404, "The specified key does not exist."},
    {"NoSuchUpload", 404, "The specified multipart upload does not exist."},
    {"NotImplemented", 501, "A header you provided implies functionality that is not implemented."},
    {"PreconditionFailed", 412, "At least one of the preconditions you specified did not hold."},
    {"RequestHeaderSectionTooLarge", 400,
     "Your request header section exceeds the maximum allowed size."},
    {"RequestTimeTooSkewed", 403,
     "The difference between the request time and the current time is too large."},
    {"RequestTimeout", 400,
     "Your socket connection to the server was not read from or written to within the timeout "
     "period."},
    {"ServiceUnavailable", 503, "Please reduce your request rate."},
    {"SignatureDoesNotMatch", 403,
     "The request signature we calculated does not match the signature you provided. Check your "
     "key and signing method."},
    {"SlowDown", 503, "Please reduce your request rate."},
    {"XAmzContentSHA256Mismatch", 400,
     "The provided 'x-amz-content-sha256' header does not match what was computed."},
};

static int find(const char *code)
{
    if (!code) return -1;
    for (size_t i = 0; i < PC_ARRAY_LEN(errors); i++)
        if (!strcmp(errors[i].code, code)) return (int)i;
    return -1;
}

int pc_s3_error_status(const char *code)
{
    int i = find(code);
    return i < 0 ? 500 : errors[i].status;
}

const char *pc_s3_error_default_message(const char *code)
{
    int i = find(code);
    return i < 0 ? "" : errors[i].message;
}

/*
 * Length of the UTF-8 sequence at s (1..4), or 0 if malformed. *xml_char says
 * whether the code point may appear in XML (a well-formed sequence for a
 * surrogate or U+FFFE/U+FFFF is replaced whole).
 */
static size_t utf8_char(const unsigned char *s, size_t n, bool *xml_char)
{
    *xml_char = true;
    unsigned char c = s[0];
    uint32_t cp;
    size_t len;
    if (c < 0x80) return 1;
    if (c >= 0xC2 && c <= 0xDF)
        len = 2, cp = c & 0x1F;
    else if (c >= 0xE0 && c <= 0xEF)
        len = 3, cp = c & 0x0F;
    else if (c >= 0xF0 && c <= 0xF4)
        len = 4, cp = c & 0x07;
    else
        return 0;
    if (n < len) return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0;
        cp = cp << 6 | (s[i] & 0x3F);
    }
    static const uint32_t min[] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < min[len] || cp > 0x10FFFF) return 0;
    *xml_char = !((cp >= 0xD800 && cp <= 0xDFFF) || cp == 0xFFFE || cp == 0xFFFF);
    return len;
}

size_t pc_s3_xml_escape(char *out, size_t cap, const char *s, size_t n)
{
    size_t o = 0;
    const unsigned char *u = (const unsigned char *)s;
    for (size_t i = 0; i < n;) {
        const char *rep = NULL;
        size_t take = 1;
        switch (u[i]) {
        case '&':
            rep = "&amp;";
            break;
        case '<':
            rep = "&lt;";
            break;
        case '>':
            rep = "&gt;";
            break;
        case '"':
            rep = "&quot;";
            break;
        case '\'':
            rep = "&apos;";
            break;
        case '\r':
            rep = "&#13;";
            break;
        case '\t':
        case '\n':
            break;
        default:
            if (u[i] < 0x20) {
                rep = "\xEF\xBF\xBD"; /* not an XML character at all */
            } else if (u[i] >= 0x80) {
                bool xml_char;
                take = utf8_char(u + i, n - i, &xml_char);
                if (!take || !xml_char) {
                    rep = "\xEF\xBF\xBD";
                    take = take ? take : 1;
                }
            }
        }
        const char *src = rep ? rep : s + i;
        size_t len = rep ? strlen(rep) : take;
        if (o + len >= cap) {
            if (cap) out[0] = '\0';
            return (size_t)-1;
        }
        memcpy(out + o, src, len);
        o += len;
        i += take;
    }
    if (cap == 0) return (size_t)-1;
    out[o] = '\0';
    return o;
}

/* Append lit or escaped text; false once out of room. */
static bool add(char *out, size_t cap, size_t *o, const char *text, bool escape)
{
    if (*o >= cap) return false;
    if (escape) {
        size_t n = pc_s3_xml_escape(out + *o, cap - *o, text, strlen(text));
        if (n == (size_t)-1) return false;
        *o += n;
        return true;
    }
    size_t n = strlen(text);
    if (*o + n >= cap) return false;
    memcpy(out + *o, text, n + 1);
    *o += n;
    return true;
}

size_t pc_s3_error_xml(char *out, size_t cap, const char *code, const char *message,
                       const char *resource, const char *request_id)
{
    if (!code) code = "InternalError";
    if (!message) message = pc_s3_error_default_message(code);
    size_t o = 0;
    bool ok =
        add(out, cap, &o, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>", false) &&
        add(out, cap, &o, code, true) && add(out, cap, &o, "</Code><Message>", false) &&
        add(out, cap, &o, message, true) && add(out, cap, &o, "</Message>", false);
    if (ok && resource)
        ok = add(out, cap, &o, "<Resource>", false) && add(out, cap, &o, resource, true) &&
             add(out, cap, &o, "</Resource>", false);
    if (ok && request_id)
        ok = add(out, cap, &o, "<RequestId>", false) && add(out, cap, &o, request_id, true) &&
             add(out, cap, &o, "</RequestId>", false);
    ok = ok && add(out, cap, &o, "</Error>", false);
    if (!ok) {
        if (cap) out[0] = '\0';
        return 0;
    }
    return o;
}
