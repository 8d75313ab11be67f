/* HTTP/1.1 message parser: see http1.h for the feeding contract and rules. */
#include "http/http1.h"

#include <string.h>

enum {
    S_HEAD = 0,
    S_BODY_LEN,
    S_CHUNK_SIZE,    /* hex digits */
    S_CHUNK_EXT,     /* after the size: BWS, ';' extensions, until CR */
    S_CHUNK_SIZE_LF, /* CR seen after the size line */
    S_CHUNK_DATA,
    S_CHUNK_DATA_CR,  /* data done, expect CR */
    S_CHUNK_DATA_LF,  /* expect LF */
    S_TRAILER_START,  /* start of a trailer line, or the final CRLF */
    S_TRAILER_LINE,   /* inside a trailer field line */
    S_TRAILER_LF,     /* CR seen inside the trailer section */
    S_TRAILER_END_LF, /* CR of the final empty line seen */
    S_UNTIL_CLOSE,
    S_DONE, /* message complete, END not reported yet */
    S_ERROR,
};

/* Leading empty lines tolerated before a request line (RFC 9112 §2.2). */
#define MAX_LEADING_CRLF 2
/* 16^15 - 1 fits in 64 bits with room: no overflow check needed per digit. */
#define MAX_CHUNK_DIGITS 15

/* tchar of RFC 9110 §5.6.2 */
static const uint8_t tchar[256] = {
    ['!'] = 1, ['#'] = 1, ['$'] = 1, ['%'] = 1, ['&'] = 1, ['\''] = 1, ['*'] = 1, ['+'] = 1,
    ['-'] = 1, ['.'] = 1, ['^'] = 1, ['_'] = 1, ['`'] = 1, ['|'] = 1,  ['~'] = 1, ['0'] = 1,
    ['1'] = 1, ['2'] = 1, ['3'] = 1, ['4'] = 1, ['5'] = 1, ['6'] = 1,  ['7'] = 1, ['8'] = 1,
    ['9'] = 1, ['A'] = 1, ['B'] = 1, ['C'] = 1, ['D'] = 1, ['E'] = 1,  ['F'] = 1, ['G'] = 1,
    ['H'] = 1, ['I'] = 1, ['J'] = 1, ['K'] = 1, ['L'] = 1, ['M'] = 1,  ['N'] = 1, ['O'] = 1,
    ['P'] = 1, ['Q'] = 1, ['R'] = 1, ['S'] = 1, ['T'] = 1, ['U'] = 1,  ['V'] = 1, ['W'] = 1,
    ['X'] = 1, ['Y'] = 1, ['Z'] = 1, ['a'] = 1, ['b'] = 1, ['c'] = 1,  ['d'] = 1, ['e'] = 1,
    ['f'] = 1, ['g'] = 1, ['h'] = 1, ['i'] = 1, ['j'] = 1, ['k'] = 1,  ['l'] = 1, ['m'] = 1,
    ['n'] = 1, ['o'] = 1, ['p'] = 1, ['q'] = 1, ['r'] = 1, ['s'] = 1,  ['t'] = 1, ['u'] = 1,
    ['v'] = 1, ['w'] = 1, ['x'] = 1, ['y'] = 1, ['z'] = 1,
};

static bool is_tchar(unsigned char c)
{
    return tchar[c] != 0;
}
/* field-vchar / obs-text, SP, HTAB: what may appear inside a field value */
static bool is_field_char(unsigned char c)
{
    return c >= 0x20 ? c != 0x7f : c == '\t';
}

static int hexval(unsigned char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static pc_http1_event_t fail(pc_http1_t *p, int status, const char *why)
{
    p->pc__state = S_ERROR;
    /* A broken upstream response is the proxy's 502, whatever the cause. */
    p->error_status = p->pc__response ? 502 : status;
    p->error = why;
    return PC_HTTP1_ERROR;
}

static void to_head_state(pc_http1_t *p)
{
    p->pc__state = S_HEAD;
    p->pc__scanned = 0;
    p->pc__remaining = 0;
    p->pc__line = 0;
    p->pc__sub = 0;
}

void pc_http1_init(pc_http1_t *p, bool is_response)
{
    memset(p, 0, sizeof(*p));
    p->pc__response = is_response;
    to_head_state(p);
}

void pc_http1_reset(pc_http1_t *p)
{
    p->error_status = 0;
    p->error = NULL;
    p->pc__head_response = false;
    to_head_state(p);
}

void pc_http1_expect_head_response(pc_http1_t *p)
{
    p->pc__head_response = true;
}

bool pc_http1_idle(const pc_http1_t *p)
{
    return p->pc__state == S_HEAD && p->pc__scanned == 0;
}

bool pc_http1_span_ieq(pc_http1_span_t s, const char *lit)
{
    /* Most names differ in the first byte: settle those before strlen. */
    if (s.n == 0) return lit[0] == '\0';
    if ((s.p[0] | 0x20) != (lit[0] | 0x20)) return false;
    size_t n = strlen(lit);
    if (s.n != n) return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char a = (unsigned char)s.p[i], b = (unsigned char)lit[i];
        if (a >= 'A' && a <= 'Z') a = (unsigned char)(a + 32);
        if (b >= 'A' && b <= 'Z') b = (unsigned char)(b + 32);
        if (a != b) return false;
    }
    return true;
}

int pc_http1_find(const pc_http1_msg_t *m, const char *name, size_t from)
{
    for (size_t i = from; i < m->nheaders; i++)
        if (pc_http1_span_ieq(m->headers[i].name, name)) return (int)i;
    return -1;
}

const pc_http1_span_t *pc_http1_get(const pc_http1_msg_t *m, const char *name)
{
    int i = pc_http1_find(m, name, 0);
    return i < 0 ? NULL : &m->headers[i].value;
}

/* ---------- comma-separated lists (RFC 9110 §5.6.1) ---------- */

typedef struct {
    const char *p, *end;
} list_iter_t;

/* Next element with OWS trimmed; empty elements are returned as empty spans. */
static bool list_next(list_iter_t *it, pc_http1_span_t *out)
{
    if (!it->p) return false;
    const char *s = it->p;
    const char *comma = memchr(s, ',', (size_t)(it->end - s));
    const char *e = comma ? comma : it->end;
    it->p = comma ? comma + 1 : NULL;
    while (s < e && (*s == ' ' || *s == '\t'))
        s++;
    while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
        e--;
    *out = (pc_http1_span_t){s, (size_t)(e - s)};
    return true;
}

static list_iter_t list_of(pc_http1_span_t v)
{
    return (list_iter_t){v.p, v.p + v.n};
}

/* ---------- head parsing ---------- */

static const struct {
    const char *name;
    pc_http1_method_t m;
} methods[] = {
    {"GET", PC_HTTP1_M_GET},     {"HEAD", PC_HTTP1_M_HEAD},       {"PUT", PC_HTTP1_M_PUT},
    {"POST", PC_HTTP1_M_POST},   {"DELETE", PC_HTTP1_M_DELETE},   {"OPTIONS", PC_HTTP1_M_OPTIONS},
    {"PATCH", PC_HTTP1_M_PATCH}, {"CONNECT", PC_HTTP1_M_CONNECT}, {"TRACE", PC_HTTP1_M_TRACE},
};

static pc_http1_method_t method_of(pc_http1_span_t s)
{
    for (size_t i = 0; i < PC_ARRAY_LEN(methods); i++)
        if (strlen(methods[i].name) == s.n && memcmp(methods[i].name, s.p, s.n) == 0)
            return methods[i].m;
    return PC_HTTP1_M_OTHER;
}

/* "HTTP/1.x" → minor version; -2 = not HTTP/1.x but HTTP/d.d (505), -1 = garbage */
static int parse_version(const char *s, size_t n)
{
    if (n != 8 || memcmp(s, "HTTP/", 5) != 0 || s[6] != '.') return -1;
    if (s[5] < '0' || s[5] > '9' || s[7] < '0' || s[7] > '9') return -1;
    if (s[5] == '1' && (s[7] == '0' || s[7] == '1')) return s[7] - '0';
    return -2;
}

/* Parse "1*DIGIT *(OWS "," OWS 1*DIGIT)", all equal, into *out. */
static bool parse_content_length(pc_http1_span_t v, bool *seen, uint64_t *out)
{
    list_iter_t it = list_of(v);
    pc_http1_span_t e;
    while (list_next(&it, &e)) {
        if (e.n == 0 || e.n > 19) return false; /* 19 digits < 2^64 always */
        uint64_t x = 0;
        for (size_t i = 0; i < e.n; i++) {
            if (e.p[i] < '0' || e.p[i] > '9') return false;
            x = x * 10 + (uint64_t)(e.p[i] - '0');
        }
        if (*seen && x != *out) return false;
        *seen = true;
        *out = x;
    }
    return true;
}

static pc_http1_event_t parse_start_line(pc_http1_t *p, const char *s, size_t n)
{
    pc_http1_msg_t *m = &p->msg;
    if (!p->pc__response) {
        const char *sp1 = memchr(s, ' ', n);
        if (!sp1 || sp1 == s) return fail(p, 400, "bad request line");
        const char *sp2 = memchr(sp1 + 1, ' ', n - (size_t)(sp1 + 1 - s));
        if (!sp2) return fail(p, 400, "bad request line");
        m->method_name = (pc_http1_span_t){s, (size_t)(sp1 - s)};
        for (size_t i = 0; i < m->method_name.n; i++)
            if (!is_tchar((unsigned char)s[i])) return fail(p, 400, "bad method");
        m->method = method_of(m->method_name);
        m->target = (pc_http1_span_t){sp1 + 1, (size_t)(sp2 - sp1 - 1)};
        if (m->target.n == 0) return fail(p, 400, "empty request target");
        if (m->target.n > PC_HTTP1_MAX_TARGET) return fail(p, 414, "request target too long");
        for (size_t i = 0; i < m->target.n; i++) {
            unsigned char c = (unsigned char)m->target.p[i];
            if (c <= 0x20 || c == 0x7f) return fail(p, 400, "bad character in request target");
        }
        const char *q = memchr(m->target.p, '?', m->target.n);
        m->has_query = q != NULL;
        if (q) {
            m->path = (pc_http1_span_t){m->target.p, (size_t)(q - m->target.p)};
            m->query = (pc_http1_span_t){q + 1, m->target.n - m->path.n - 1};
        } else {
            m->path = m->target;
            m->query = (pc_http1_span_t){m->target.p + m->target.n, 0};
        }
        int v = parse_version(sp2 + 1, n - (size_t)(sp2 + 1 - s));
        if (v == -2) return fail(p, 505, "HTTP version not supported");
        if (v < 0) return fail(p, 400, "bad HTTP version");
        m->version_minor = v;
        return PC_HTTP1_HEAD;
    }
    /* status-line = HTTP-version SP 3DIGIT SP [ reason-phrase ] */
    if (n < 12 || s[8] != ' ') return fail(p, 502, "bad status line");
    int v = parse_version(s, 8);
    if (v < 0) return fail(p, 502, "bad HTTP version");
    m->version_minor = v;
    int st = 0;
    for (int i = 9; i < 12; i++) {
        if (s[i] < '0' || s[i] > '9') return fail(p, 502, "bad status code");
        st = st * 10 + (s[i] - '0');
    }
    if (st < 100) return fail(p, 502, "bad status code");
    m->status = st;
    if (n > 12 && s[12] != ' ') return fail(p, 502, "bad status line");
    m->reason = n > 13 ? (pc_http1_span_t){s + 13, n - 13} : (pc_http1_span_t){s + n, 0};
    for (size_t i = 0; i < m->reason.n; i++)
        if (!is_field_char((unsigned char)m->reason.p[i])) return fail(p, 502, "bad reason phrase");
    return PC_HTTP1_HEAD;
}

static pc_http1_event_t parse_field_line(pc_http1_t *p, const char *s, size_t n)
{
    pc_http1_msg_t *m = &p->msg;
    if (s[0] == ' ' || s[0] == '\t') return fail(p, 400, "obsolete line folding");
    size_t i = 0;
    while (i < n && is_tchar((unsigned char)s[i]))
        i++;
    if (i == 0 || i == n || s[i] != ':') return fail(p, 400, "bad header field name");
    if (m->nheaders == PC_HTTP1_MAX_HEADERS) return fail(p, 431, "too many header fields");
    const char *v = s + i + 1, *e = s + n;
    for (const char *c = v; c < e; c++)
        if (!is_field_char((unsigned char)*c)) return fail(p, 400, "bad character in header value");
    while (v < e && (*v == ' ' || *v == '\t'))
        v++;
    while (e > v && (e[-1] == ' ' || e[-1] == '\t'))
        e--;
    m->headers[m->nheaders++] = (pc_http1_header_t){{s, i}, {v, (size_t)(e - v)}};
    return PC_HTTP1_HEAD;
}

/* Framing, keep-alive and expectations from the parsed fields. */
static pc_http1_event_t interpret_head(pc_http1_t *p)
{
    pc_http1_msg_t *m = &p->msg;
    bool cl_seen = false, te_seen = false, chunked = false, close = false, ka = false;
    size_t hosts = 0;
    uint64_t cl = 0;
    for (size_t i = 0; i < m->nheaders; i++) {
        pc_http1_span_t n = m->headers[i].name, v = m->headers[i].value;
        if (pc_http1_span_ieq(n, "content-length")) {
            if (!parse_content_length(v, &cl_seen, &cl)) return fail(p, 400, "bad Content-Length");
        } else if (pc_http1_span_ieq(n, "transfer-encoding")) {
            te_seen = true;
            list_iter_t it = list_of(v);
            pc_http1_span_t e;
            while (list_next(&it, &e)) {
                if (!pc_http1_span_ieq(e, "chunked"))
                    return e.n == 0 ? fail(p, 400, "bad Transfer-Encoding")
                                    : fail(p, 501, "unsupported transfer coding");
                if (chunked) return fail(p, 400, "chunked applied twice");
                chunked = true;
            }
        } else if (pc_http1_span_ieq(n, "connection")) {
            list_iter_t it = list_of(v);
            pc_http1_span_t e;
            while (list_next(&it, &e)) {
                if (pc_http1_span_ieq(e, "close"))
                    close = true;
                else if (pc_http1_span_ieq(e, "keep-alive"))
                    ka = true;
            }
        } else if (pc_http1_span_ieq(n, "host")) {
            hosts++;
        } else if (pc_http1_span_ieq(n, "expect") && !p->pc__response) {
            if (pc_http1_span_ieq(v, "100-continue") && m->version_minor == 1)
                m->expect_continue = true;
        }
    }
    if (te_seen && cl_seen) return fail(p, 400, "both Transfer-Encoding and Content-Length");
    if (te_seen && m->version_minor == 0) return fail(p, 400, "Transfer-Encoding in HTTP/1.0");
    if (!p->pc__response && (hosts > 1 || (hosts == 0 && m->version_minor == 1)))
        return fail(p, 400, "a request needs exactly one Host");
    m->keep_alive = m->version_minor == 1 ? !close : (ka && !close);

    bool no_body = false;
    if (p->pc__response)
        no_body = (m->status >= 100 && m->status < 200) || m->status == 204 || m->status == 304 ||
                  p->pc__head_response;
    if (no_body) {
        m->body = PC_HTTP1_BODY_NONE;
    } else if (chunked) {
        m->body = PC_HTTP1_BODY_CHUNKED;
    } else if (cl_seen) {
        m->body = cl ? PC_HTTP1_BODY_LENGTH : PC_HTTP1_BODY_NONE;
        m->content_length = cl;
    } else if (p->pc__response) {
        m->body = PC_HTTP1_BODY_UNTIL_CLOSE;
        m->keep_alive = false;
    } else {
        m->body = PC_HTTP1_BODY_NONE;
    }
    return PC_HTTP1_HEAD;
}

static void clear_msg(pc_http1_msg_t *m, bool is_request)
{
    /* Not the header array: nheaders bounds what is read. */
    m->is_request = is_request;
    m->method = PC_HTTP1_M_OTHER;
    m->method_name = m->target = m->path = m->query = m->reason = (pc_http1_span_t){NULL, 0};
    m->has_query = false;
    m->status = 0;
    m->version_minor = 1;
    m->nheaders = 0;
    m->body = PC_HTTP1_BODY_NONE;
    m->content_length = 0;
    m->keep_alive = false;
    m->expect_continue = false;
    m->head_len = 0;
}

static pc_http1_event_t feed_head(pc_http1_t *p, const char *buf, size_t len, size_t *consumed)
{
    /* Skip tolerated leading empty lines: they become part of the head. */
    size_t start = 0;
    if (!p->pc__response)
        while (start + 2 <= len && buf[start] == '\r' && buf[start + 1] == '\n' &&
               start < 2 * MAX_LEADING_CRLF)
            start += 2;
    size_t from = p->pc__scanned > start + 3 ? p->pc__scanned - 3 : start;
    const char *end = NULL;
    size_t lim = len < PC_HTTP1_MAX_HEAD ? len : PC_HTTP1_MAX_HEAD;
    for (size_t i = from; i + 4 <= lim; i++) {
        const char *cr = memchr(buf + i, '\r', lim - i);
        if (!cr) break;
        i = (size_t)(cr - buf);
        if (i + 4 <= lim && cr[1] == '\n' && cr[2] == '\r' && cr[3] == '\n') {
            end = cr;
            break;
        }
    }
    if (!end) {
        if (len >= PC_HTTP1_MAX_HEAD) {
            if (!p->pc__response && !memchr(buf + start, '\n', len - start))
                return fail(p, 414, "request line too long");
            return fail(p, 431, "request head too large");
        }
        /* pc__line remembers that the request line ended: a head trickling in
         * byte by byte must not be rescanned for it on every call. */
        if (!p->pc__response && !p->pc__line && len - start > PC_HTTP1_MAX_TARGET + 64) {
            if (!memchr(buf + start, '\n', len - start))
                return fail(p, 414, "request line too long");
            p->pc__line = 1;
        }
        p->pc__scanned = len;
        return PC_HTTP1_NEED_MORE;
    }
    size_t head_len = (size_t)(end - buf) + 4;
    pc_http1_msg_t *m = &p->msg;
    clear_msg(m, !p->pc__response);
    m->head_len = head_len;
    /* Lines: CRLF-terminated, no bare CR or LF anywhere. */
    const char *s = buf + start, *stop = end + 2;
    bool first = true;
    while (s < stop) {
        const char *lf = memchr(s, '\n', (size_t)(stop - s));
        PC_ASSERT(lf != NULL); /* stop is just past a CRLF */
        if (lf == s || lf[-1] != '\r') return fail(p, 400, "bare LF in head");
        size_t n = (size_t)(lf - 1 - s);
        if (memchr(s, '\r', n)) return fail(p, 400, "bare CR in head");
        if (n == 0) return fail(p, 400, "empty line in head");
        pc_http1_event_t ev = first ? parse_start_line(p, s, n) : parse_field_line(p, s, n);
        if (ev == PC_HTTP1_ERROR) return ev;
        first = false;
        s = lf + 1;
    }
    if (interpret_head(p) == PC_HTTP1_ERROR) return PC_HTTP1_ERROR;
    *consumed = head_len;
    p->pc__scanned = 0;
    switch (m->body) {
    case PC_HTTP1_BODY_NONE:
        p->pc__state = S_DONE;
        break;
    case PC_HTTP1_BODY_LENGTH:
        p->pc__state = S_BODY_LEN;
        p->pc__remaining = m->content_length;
        break;
    case PC_HTTP1_BODY_CHUNKED:
        p->pc__state = S_CHUNK_SIZE;
        p->pc__line = 0;
        p->pc__sub = 0;
        break;
    case PC_HTTP1_BODY_UNTIL_CLOSE:
        p->pc__state = S_UNTIL_CLOSE;
        break;
    }
    return PC_HTTP1_HEAD;
}

static pc_http1_event_t finish(pc_http1_t *p)
{
    /* An interim 1xx answers the same request as the final response to come. */
    if (!(p->pc__response && p->msg.status >= 100 && p->msg.status < 200))
        p->pc__head_response = false;
    to_head_state(p);
    return PC_HTTP1_END;
}

pc_http1_event_t pc_http1_feed(pc_http1_t *p, const char *buf, size_t len, size_t *consumed,
                               pc_http1_span_t *data)
{
    *consumed = 0;
    if (p->pc__state == S_ERROR) return PC_HTTP1_ERROR;
    if (p->pc__state == S_HEAD) return feed_head(p, buf, len, consumed);
    if (p->pc__state == S_DONE) return finish(p);
    if (p->pc__state == S_UNTIL_CLOSE) {
        if (len == 0) return PC_HTTP1_NEED_MORE;
        *data = (pc_http1_span_t){buf, len};
        *consumed = len;
        return PC_HTTP1_DATA;
    }
    if (p->pc__state == S_BODY_LEN) {
        size_t n = p->pc__remaining < len ? (size_t)p->pc__remaining : len;
        if (n == 0) return PC_HTTP1_NEED_MORE;
        p->pc__remaining -= n;
        if (p->pc__remaining == 0) p->pc__state = S_DONE;
        *data = (pc_http1_span_t){buf, n};
        *consumed = n;
        return PC_HTTP1_DATA;
    }
    /* chunked framing, byte by byte outside the data */
    size_t i = 0;
    while (i < len) {
        unsigned char c = (unsigned char)buf[i];
        switch (p->pc__state) {
        case S_CHUNK_SIZE: {
            int h = hexval(c);
            if (h >= 0) {
                if (++p->pc__sub > MAX_CHUNK_DIGITS) return fail(p, 400, "chunk size too large");
                p->pc__remaining = (p->pc__remaining << 4) | (uint64_t)h;
                p->pc__line++;
                i++;
                break;
            }
            if (p->pc__sub == 0) return fail(p, 400, "bad chunk size");
            p->pc__state = S_CHUNK_EXT;
            break; /* re-read c as extension / CR */
        }
        case S_CHUNK_EXT:
            if (++p->pc__line > PC_HTTP1_MAX_CHUNK_LINE) return fail(p, 400, "chunk line too long");
            if (c == '\r') {
                p->pc__state = S_CHUNK_SIZE_LF;
            } else if (!is_field_char(c)) {
                return fail(p, 400, "bad chunk extension");
            } else if (p->pc__sub != 0xff) {
                /* Before the first ';' only BWS may follow the size. */
                if (c == ';')
                    p->pc__sub = 0xff;
                else if (c != ' ' && c != '\t')
                    return fail(p, 400, "bad chunk size");
            }
            i++;
            break;
        case S_CHUNK_SIZE_LF:
            if (c != '\n') return fail(p, 400, "bad chunk line ending");
            i++;
            p->pc__line = 0;
            p->pc__sub = 0;
            p->pc__state = p->pc__remaining ? S_CHUNK_DATA : S_TRAILER_START;
            break;
        case S_CHUNK_DATA: {
            size_t avail = len - i;
            size_t n = p->pc__remaining < avail ? (size_t)p->pc__remaining : avail;
            p->pc__remaining -= n;
            if (p->pc__remaining == 0) p->pc__state = S_CHUNK_DATA_CR;
            *data = (pc_http1_span_t){buf + i, n};
            *consumed = i + n;
            return PC_HTTP1_DATA;
        }
        case S_CHUNK_DATA_CR:
            if (c != '\r') return fail(p, 400, "chunk data longer than its size");
            p->pc__state = S_CHUNK_DATA_LF;
            i++;
            break;
        case S_CHUNK_DATA_LF:
            if (c != '\n') return fail(p, 400, "bad chunk line ending");
            p->pc__state = S_CHUNK_SIZE;
            p->pc__remaining = 0;
            p->pc__line = 0;
            p->pc__sub = 0;
            i++;
            break;
        case S_TRAILER_START:
            if (c == '\r') {
                p->pc__state = S_TRAILER_END_LF;
                i++;
                break;
            }
            if (c == ' ' || c == '\t' || c == ':') return fail(p, 400, "bad trailer field");
            p->pc__state = S_TRAILER_LINE;
            break;
        case S_TRAILER_LINE:
            /* Trailers are discarded; only bounded and well-formed. */
            if (++p->pc__line > PC_HTTP1_MAX_HEAD) return fail(p, 431, "trailer section too large");
            if (c == '\r')
                p->pc__state = S_TRAILER_LF;
            else if (!is_field_char(c))
                return fail(p, 400, "bad character in trailer");
            i++;
            break;
        case S_TRAILER_LF:
            if (c != '\n') return fail(p, 400, "bad trailer line ending");
            p->pc__state = S_TRAILER_START;
            i++;
            break;
        case S_TRAILER_END_LF:
            if (c != '\n') return fail(p, 400, "bad trailer line ending");
            *consumed = i + 1;
            return finish(p);
        default:
            PC_BUG_ON(1);
        }
    }
    *consumed = len;
    return PC_HTTP1_NEED_MORE;
}

pc_http1_event_t pc_http1_eof(pc_http1_t *p)
{
    switch (p->pc__state) {
    case S_ERROR:
        return PC_HTTP1_ERROR;
    case S_UNTIL_CLOSE:
    case S_DONE:
        return finish(p);
    case S_HEAD:
        if (p->pc__scanned == 0) return PC_HTTP1_NEED_MORE;
        /* fall through */
    default:
        return fail(p, 400, "connection closed inside a message");
    }
}

const char *pc_http1_reason(int status)
{
    switch (status) {
    case 100:
        return "Continue";
    case 101:
        return "Switching Protocols";
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 202:
        return "Accepted";
    case 204:
        return "No Content";
    case 206:
        return "Partial Content";
    case 301:
        return "Moved Permanently";
    case 302:
        return "Found";
    case 304:
        return "Not Modified";
    case 307:
        return "Temporary Redirect";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 408:
        return "Request Timeout";
    case 409:
        return "Conflict";
    case 411:
        return "Length Required";
    case 412:
        return "Precondition Failed";
    case 413:
        return "Content Too Large";
    case 414:
        return "URI Too Long";
    case 416:
        return "Range Not Satisfiable";
    case 417:
        return "Expectation Failed";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    case 505:
        return "HTTP Version Not Supported";
    default:
        return "Unknown";
    }
}

size_t pc_http1_chunk_header(char out[PC_HTTP1_CHUNK_HEADER_MAX], size_t len)
{
    static const char hex[] = "0123456789abcdef";
    char tmp[2 * sizeof(size_t)];
    size_t n = 0;
    do {
        tmp[n++] = hex[len & 15];
        len >>= 4;
    } while (len);
    size_t o = 0;
    while (n)
        out[o++] = tmp[--n];
    out[o++] = '\r';
    out[o++] = '\n';
    return o;
}
