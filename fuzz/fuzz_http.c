/*
 * The HTTP/1.1 parser on arbitrary bytes, as a connection would feed it: a
 * buffer of unconsumed bytes that grows by a fuzzer-chosen step. The same
 * stream is parsed twice, whole and in steps, and both runs must agree on
 * every event and every body byte (resumption must not change the meaning).
 * Request heads also go through S3 request addressing.
 *
 * First byte: bit 0 = responses, bit 1 = the first response answers a HEAD,
 * bits 2..7 = step - 1.
 */
#include "http/http1.h"
#include "s3/request.h"

#include <stdlib.h>
#include <string.h>

#define CHECK(c)                                                                                   \
    do {                                                                                           \
        if (!(c)) __builtin_trap();                                                                \
    } while (0)

typedef struct {
    uint64_t trace; /* rolling hash of events and data */
    size_t body;
    int heads, ends, error;
} summary_t;

static void mix(summary_t *s, uint64_t v)
{
    s->trace = (s->trace ^ v) * 0x100000001b3ull;
}

static bool is_tchar(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c && strchr("!#$%&'*+-.^_`|~", c));
}

static void check_head(const pc_http1_msg_t *m, const char *buf, size_t have, size_t used)
{
    CHECK(m->head_len == used && used <= have);
    CHECK(m->nheaders <= PC_HTTP1_MAX_HEADERS);
    for (size_t i = 0; i < m->nheaders; i++) {
        const pc_http1_header_t *h = &m->headers[i];
        CHECK(h->name.n > 0 && h->name.p >= buf && h->name.p + h->name.n <= buf + used);
        CHECK(h->value.p >= buf && h->value.p + h->value.n <= buf + used);
        for (size_t k = 0; k < h->name.n; k++)
            CHECK(is_tchar((unsigned char)h->name.p[k]));
        for (size_t k = 0; k < h->value.n; k++)
            CHECK(h->value.p[k] != '\r' && h->value.p[k] != '\n');
    }
    if (m->body == PC_HTTP1_BODY_LENGTH) CHECK(m->content_length > 0);
    if (m->is_request) {
        CHECK(m->target.n > 0 && m->target.n <= PC_HTTP1_MAX_TARGET);
        CHECK(m->path.n + (m->has_query ? 1 + m->query.n : 0) == m->target.n);
        CHECK(m->body != PC_HTTP1_BODY_UNTIL_CLOSE);
        pc_s3_request_t r;
        pc_s3_req_result_t rc =
            pc_s3_request_from_msg(m, (m->nheaders & 1) ? "s3.local" : NULL, &r);
        CHECK(r.op_name != NULL);
        if (rc == PC_S3_REQ_OK) {
            CHECK(strlen(r.bucket) <= PC_S3_MAX_BUCKET);
            CHECK(r.key_len <= PC_S3_MAX_KEY && strlen(r.key) == r.key_len);
            if (r.bucket[0]) CHECK(pc_s3_bucket_name_ok(r.bucket, strlen(r.bucket)));
            if (r.has_copy_source) CHECK(r.copy_bucket[0] && r.copy_key_len);
        } else {
            CHECK(pc_s3_req_result_code(rc) != NULL);
        }
    } else {
        CHECK(m->status >= 100 && m->status <= 999);
    }
}

static void parse(const uint8_t *in, size_t n, size_t step, bool response, bool head_first,
                  summary_t *s)
{
    memset(s, 0, sizeof(*s));
    pc_http1_t p;
    pc_http1_init(&p, response);
    if (head_first) pc_http1_expect_head_response(&p);
    char *buf = malloc(n + 1);
    if (!buf) return;
    size_t have = 0, fed = 0;
    for (int guard = 0; guard < 1 << 22; guard++) {
        size_t used = (size_t)-1;
        pc_http1_span_t data = {0};
        pc_http1_event_t ev = pc_http1_feed(&p, buf, have, &used, &data);
        CHECK(used <= have);
        switch (ev) {
        case PC_HTTP1_HEAD:
            check_head(&p.msg, buf, have, used);
            s->heads++;
            mix(s, 1000);
            mix(s, p.msg.body);
            mix(s, p.msg.content_length);
            mix(s, p.msg.keep_alive);
            mix(s, p.msg.nheaders);
            break;
        case PC_HTTP1_DATA:
            CHECK(data.n > 0 && data.p >= buf && data.p + data.n <= buf + used);
            for (size_t i = 0; i < data.n; i++)
                mix(s, (uint8_t)data.p[i]);
            s->body += data.n;
            break;
        case PC_HTTP1_END:
            s->ends++;
            mix(s, 2000);
            break;
        case PC_HTTP1_ERROR:
            CHECK(p.error && p.error_status >= 400 && p.error_status <= 505);
            s->error = p.error_status;
            CHECK(pc_http1_feed(&p, buf, have, &used, &data) == PC_HTTP1_ERROR);
            goto out;
        case PC_HTTP1_NEED_MORE:
            break;
        }
        memmove(buf, buf + used, have - used);
        have -= used;
        if (ev == PC_HTTP1_NEED_MORE) {
            if (fed == n) {
                pc_http1_event_t e = pc_http1_eof(&p);
                mix(s, 100 + (uint64_t)e);
                if (e == PC_HTTP1_ERROR) s->error = p.error_status;
                if (e == PC_HTTP1_END) s->ends++;
                goto out;
            }
            size_t k = n - fed < step ? n - fed : step;
            memcpy(buf + have, in + fed, k);
            have += k;
            fed += k;
        }
    }
    __builtin_trap(); /* the parser stopped making progress */
out:
    free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 200000) return 0;
    bool response = data[0] & 1, head_first = data[0] & 2;
    size_t step = (size_t)(data[0] >> 2) + 1;
    summary_t whole, pieces;
    parse(data + 1, size - 1, size, response, head_first, &whole);
    parse(data + 1, size - 1, step, response, head_first, &pieces);
    /* Which limit fires first (414 vs 431) may depend on how much was buffered. */
    bool limit =
        (whole.error == 414 || whole.error == 431) && (pieces.error == 414 || pieces.error == 431);
    if (!limit) {
        CHECK(whole.heads == pieces.heads && whole.ends == pieces.ends);
        CHECK(whole.body == pieces.body && whole.error == pieces.error);
        CHECK(whole.trace == pieces.trace);
    }
    return 0;
}
