/*
 * The pure pieces of the control-plane client: splitting the watch stream
 * into lines, decoding its messages, backoff arithmetic and log batches.
 * Everything here sees bytes from the network or the disk and nothing else,
 * which is what lets fuzz/fuzz_cpclient_stream.c drive it directly.
 */
#include "cpclient/cpclient_int.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>

/* ---------- NDJSON ---------- */

void pc__ndjson_init(pc__ndjson_t *p, size_t max_line)
{
    memset(p, 0, sizeof *p);
    p->max_line = max_line;
}

void pc__ndjson_reset(pc__ndjson_t *p)
{
    p->len = 0;
    p->failed = false;
}

void pc__ndjson_free(pc__ndjson_t *p)
{
    free(p->buf);
    p->buf = NULL;
    p->len = p->cap = 0;
}

static bool carry(pc__ndjson_t *p, const char *data, size_t n)
{
    if (p->len + n > p->cap) {
        size_t cap = p->cap ? p->cap : 4096;
        while (cap < p->len + n)
            cap *= 2;
        if (cap > p->max_line + 1) cap = p->max_line + 1;
        char *nb = realloc(p->buf, cap);
        if (!nb) return false;
        p->buf = nb;
        p->cap = cap;
    }
    memcpy(p->buf + p->len, data, n);
    p->len += n;
    return true;
}

pc__ndjson_res_t pc__ndjson_feed(pc__ndjson_t *p, const char *data, size_t len, size_t *used,
                                 const char **line, size_t *line_len)
{
    size_t off = 0;
    *used = 0;
    if (p->failed) return PC__NDJSON_ERROR;
    while (off < len) {
        const char *nl = memchr(data + off, '\n', len - off);
        size_t chunk = nl ? (size_t)(nl - (data + off)) : len - off;
        /* Checked before copying: an endless line costs at most max_line bytes. */
        if (p->len + chunk > p->max_line) {
            p->failed = true;
            *used = off;
            return PC__NDJSON_ERROR;
        }
        if (!nl) {
            if (!carry(p, data + off, chunk)) goto oom;
            off = len;
            break;
        }
        const char *l = data + off;
        size_t ll = chunk;
        if (p->len > 0) {
            /* Complete the carried line; it stays in buf until the next call. */
            if (!carry(p, data + off, chunk)) goto oom;
            l = p->buf;
            ll = p->len;
            p->len = 0;
        }
        off += chunk + 1;
        if (ll > 0 && l[ll - 1] == '\r') ll--;
        if (ll == 0) continue;
        *used = off;
        *line = l;
        *line_len = ll;
        return PC__NDJSON_LINE;
    }
    *used = off;
    return PC__NDJSON_NEED_MORE;
oom:
    p->failed = true;
    *used = off;
    return PC__NDJSON_ERROR;
}

/* ---------- watch-stream messages ---------- */

void pc__cpmsg_free(pc__cpmsg_t *m)
{
    if (!m) return;
    free(m->snapshot_text);
    m->snapshot_text = NULL;
    m->snapshot_len = 0;
}

static bool revision_of(json_t *v, uint64_t *out)
{
    if (!json_is_integer(v) || json_integer_value(v) < 0) return false;
    *out = (uint64_t)json_integer_value(v);
    return true;
}

bool pc__cpmsg_decode(const char *line, size_t len, pc__cpmsg_t *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    json_error_t jerr;
    json_t *root = json_loadb(line, len, 0, &jerr);
    bool ok = false;
    if (!root || !json_is_object(root)) {
        snprintf(err, errlen, "stream line is not a JSON object%s%s", root ? "" : ": ",
                 root ? "" : jerr.text);
        goto out;
    }
    const char *type = json_string_value(json_object_get(root, "type"));
    if (!type) {
        snprintf(err, errlen, "stream line has no \"type\"");
        goto out;
    }
    json_t *rev = json_object_get(root, "revision");
    if (strcmp(type, "heartbeat") == 0) {
        out->type = PC__CPMSG_HEARTBEAT;
        (void)revision_of(rev, &out->revision); /* informative only */
        ok = true;
        goto out;
    }
    if (strcmp(type, "snapshot") != 0) {
        out->type = PC__CPMSG_OTHER;
        ok = true;
        goto out;
    }
    out->type = PC__CPMSG_SNAPSHOT;
    json_t *snap = json_object_get(root, "snapshot");
    if (!json_is_object(snap)) {
        snprintf(err, errlen, "snapshot message without a \"snapshot\" object");
        goto out;
    }
    if (!revision_of(rev, &out->revision) &&
        !revision_of(json_object_get(snap, "revision"), &out->revision)) {
        snprintf(err, errlen, "snapshot message without a valid \"revision\"");
        goto out;
    }
    /* The loader takes the revision as an argument and knows only the four lists. */
    (void)json_object_del(snap, "revision");
    /* ", " and ": " separators (not compact): flow YAML needs the space after ':'
     * in some parsers; raw UTF-8 rather than \u escapes, which YAML limits. */
    out->snapshot_text = json_dumps(snap, 0);
    if (!out->snapshot_text) {
        snprintf(err, errlen, "out of memory re-encoding the snapshot");
        goto out;
    }
    out->snapshot_len = strlen(out->snapshot_text);
    ok = true;
out:
    json_decref(root);
    return ok;
}

/* ---------- backoff ---------- */

void pc__backoff_init(pc__backoff_t *b, uint64_t base_ms, uint64_t cap_ms)
{
    b->base_ms = base_ms ? base_ms : 1;
    b->cap_ms = cap_ms < b->base_ms ? b->base_ms : cap_ms;
    b->attempt = 0;
}

uint64_t pc__backoff_ceiling(const pc__backoff_t *b)
{
    if (b->attempt >= 63 || b->base_ms > (b->cap_ms >> b->attempt)) return b->cap_ms;
    uint64_t c = b->base_ms << b->attempt;
    return c < b->cap_ms ? c : b->cap_ms;
}

uint64_t pc__backoff_next(pc__backoff_t *b, uint64_t rnd)
{
    uint64_t c = pc__backoff_ceiling(b);
    if (b->attempt < 64) b->attempt++;
    return rnd % (c + 1);
}

void pc__backoff_reset(pc__backoff_t *b)
{
    b->attempt = 0;
}

/* ---------- batches ---------- */

static const char batch_head[] = "{\"records\":[";
#define BATCH_HEAD_LEN (sizeof batch_head - 1)
#define BATCH_TAIL_LEN 2 /* "]}" */

void pc__batch_init(pc__batch_t *b, size_t max_records, size_t max_bytes)
{
    memset(b, 0, sizeof *b);
    b->max_records = max_records ? max_records : 1;
    b->max_bytes = max_bytes;
}

void pc__batch_clear(pc__batch_t *b)
{
    b->len = 0;
    b->n = 0;
}

void pc__batch_free(pc__batch_t *b)
{
    free(b->buf);
    memset(b, 0, sizeof *b);
}

static bool batch_reserve(pc__batch_t *b, size_t need)
{
    if (need <= b->cap) return true;
    size_t cap = b->cap ? b->cap : 16384;
    while (cap < need)
        cap *= 2;
    char *nb = realloc(b->buf, cap);
    if (!nb) return false;
    b->buf = nb;
    b->cap = cap;
    return true;
}

pc__batch_add_t pc__batch_add(pc__batch_t *b, const char *rec, size_t len)
{
    /* Never ship what the server cannot store: exactly one JSON object. */
    json_t *v = json_loadb(rec, len, 0, NULL);
    bool object = v && json_is_object(v);
    json_decref(v);
    if (!object) return PC__BATCH_INVALID;
    if (BATCH_HEAD_LEN + len + BATCH_TAIL_LEN > b->max_bytes) return PC__BATCH_INVALID;
    size_t base = b->n ? b->len : BATCH_HEAD_LEN;
    size_t need = base + (b->n ? 1 : 0) + len + BATCH_TAIL_LEN;
    if (b->n >= b->max_records || need > b->max_bytes) return PC__BATCH_FULL;
    if (!batch_reserve(b, need)) return PC__BATCH_FULL;
    if (b->n == 0) {
        memcpy(b->buf, batch_head, BATCH_HEAD_LEN);
        b->len = BATCH_HEAD_LEN;
    } else {
        b->buf[b->len++] = ',';
    }
    memcpy(b->buf + b->len, rec, len);
    b->len += len;
    b->n++;
    return PC__BATCH_ADDED;
}

const char *pc__batch_body(pc__batch_t *b, size_t *len)
{
    if (b->n == 0) return NULL;
    /* The tail goes after len without becoming part of it: adding continues. */
    b->buf[b->len] = ']';
    b->buf[b->len + 1] = '}';
    *len = b->len + BATCH_TAIL_LEN;
    return b->buf;
}

/* ---------- helpers ---------- */

bool pc__cp_url(char *out, size_t cap, const char *base, const char *path)
{
    size_t bl = strlen(base);
    while (bl > 0 && base[bl - 1] == '/')
        bl--;
    int n = snprintf(out, cap, "%.*s%s", (int)bl, base, path);
    return n > 0 && (size_t)n < cap;
}
