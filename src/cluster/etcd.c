/* etcd v3 JSON gateway client: one libcurl easy handle per call, plain HTTP. */
#include "cluster/etcd.h"

#include "core/crypto.h"

#include <curl/curl.h>
#include <stdlib.h>
#include <string.h>

#define MAX_RESPONSE (8u << 20)

size_t pc__etcd_body_cb(char *p, size_t sz, size_t n, void *arg)
{
    pc__etcd_membuf_t *m = arg;
    size_t add = sz * n;
    if (m->len + add > MAX_RESPONSE) {
        m->overflow = true;
        return 0;
    }
    if (m->len + add + 1 > m->cap) {
        m->cap = (m->len + add + 1) * 2;
        m->buf = pc_xrealloc(m->buf, m->cap);
    }
    memcpy(m->buf + m->len, p, add);
    m->len += add;
    m->buf[m->len] = '\0';
    return add;
}

static CURL *new_handle(const char *base, const char *path, const char *body,
                        struct curl_slist **hdrs)
{
    CURL *h = curl_easy_init();
    if (!h) return NULL;
    char url[512];
    snprintf(url, sizeof url, "%s%s", base, path);
    *hdrs = curl_slist_append(NULL, "Content-Type: application/json");
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, *hdrs);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, 1000L);
    curl_easy_setopt(h, CURLOPT_PROXY, ""); /* never route peer traffic through a proxy */
    return h;
}

long pc__etcd_post(const char *base, const char *path, json_t *body, json_t **resp, long timeout_ms)
{
    if (resp) *resp = NULL;
    char *text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    if (!text) return -1;
    struct curl_slist *hdrs = NULL;
    pc__etcd_membuf_t m = {0};
    long status = -1;
    CURL *h = new_handle(base, path, text, &hdrs);
    if (!h) goto out;
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, pc__etcd_body_cb);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &m);
    if (curl_easy_perform(h) == CURLE_OK) {
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
        if (resp && m.buf) *resp = json_loadb(m.buf, m.len, 0, NULL);
    }
out:
    curl_easy_cleanup(h);
    curl_slist_free_all(hdrs);
    free(m.buf);
    free(text);
    return status;
}

json_t *pc__etcd_b64(const char *s, size_t n)
{
    size_t cap = PC_B64_ENCODED_LEN(n) + 1;
    char *out = pc_xmalloc(cap);
    size_t len = pc_b64_encode((const uint8_t *)s, n, out, cap);
    json_t *v = json_stringn(out, len);
    free(out);
    return v;
}

char *pc__etcd_unb64(const json_t *v, size_t *len)
{
    const char *s = json_string_value(v);
    *len = 0;
    if (!s) return NULL;
    size_t n = json_string_length(v);
    char *out = pc_xmalloc(n + 1);
    if (!pc_b64_decode(s, n, (uint8_t *)out, n, len)) {
        free(out);
        return NULL;
    }
    out[*len] = '\0';
    return out;
}

json_t *pc__etcd_prefix_end(const char *prefix)
{
    size_t n = strlen(prefix);
    char *end = pc_xstrndup(prefix, n);
    /* Prefixes here are ASCII ending in '/', so incrementing the last byte cannot overflow. */
    end[n - 1]++;
    json_t *v = pc__etcd_b64(end, n);
    free(end);
    return v;
}

uint64_t pc__etcd_u64(const json_t *obj, const char *key)
{
    const json_t *v = json_object_get(obj, key);
    if (json_is_integer(v)) return (uint64_t)json_integer_value(v);
    const char *s = json_string_value(v);
    return s ? strtoull(s, NULL, 10) : 0;
}

typedef struct {
    pc__etcd_membuf_t m;
    pc__etcd_line_fn fn;
    void *arg;
    atomic_bool *stop;
    bool refused;
} stream_t;

static size_t on_stream(char *p, size_t sz, size_t n, void *arg)
{
    stream_t *s = arg;
    size_t add = sz * n;
    if (pc__etcd_body_cb(p, sz, n, &s->m) != add) return 0;
    /* Lines may span callbacks: consume only complete ones. */
    size_t start = 0;
    for (size_t i = 0; i < s->m.len; i++)
        if (s->m.buf[i] == '\n') {
            if (!s->fn(s->arg, s->m.buf + start, i - start)) {
                s->refused = true;
                return 0;
            }
            start = i + 1;
        }
    memmove(s->m.buf, s->m.buf + start, s->m.len - start);
    s->m.len -= start;
    return add;
}

static int on_progress(void *arg, curl_off_t a, curl_off_t b, curl_off_t c, curl_off_t d)
{
    (void)a, (void)b, (void)c, (void)d;
    stream_t *s = arg;
    return atomic_load(s->stop) ? 1 : 0;
}

long pc__etcd_stream(const char *base, const char *path, json_t *body, pc__etcd_line_fn on_line,
                     void *arg, atomic_bool *stop)
{
    char *text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    if (!text) return -1;
    struct curl_slist *hdrs = NULL;
    stream_t s = {.fn = on_line, .arg = arg, .stop = stop};
    long status = -1;
    CURL *h = new_handle(base, path, text, &hdrs);
    if (!h) goto out;
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_stream);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &s);
    curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(h, CURLOPT_XFERINFODATA, &s);
    /* A silent stream is a dead peer: progress notifications arrive every 2 s. */
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, 10L);
    (void)curl_easy_perform(h);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
out:
    curl_easy_cleanup(h);
    curl_slist_free_all(hdrs);
    free(s.m.buf);
    free(text);
    return status;
}
