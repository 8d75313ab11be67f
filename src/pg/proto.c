/* PostgreSQL protocol 3.0 codec; see proto.h. */
#include "pg/proto.h"

#include <string.h>

static uint32_t rd32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

static uint16_t rd16(const uint8_t *p)
{
    return (uint16_t)(((uint16_t)p[0] << 8) | p[1]);
}

pc_pg_status_t pc_pg_frame_next(const uint8_t *buf, size_t n, bool startup, uint32_t max_len,
                                pc_pg_msg_t *out, const char **err)
{
    size_t hdr = startup ? 4 : 5;
    memset(out, 0, sizeof *out);
    if (n < hdr) return PC_PG_NEED_MORE;
    uint32_t len = rd32(buf + hdr - 4);
    /* Validate the declared length from the header alone, before the caller
     * buffers or allocates anything for the body. */
    if (len < 4) {
        *err = "message length below 4";
        return PC_PG_ERROR;
    }
    if (startup && len < 8) {
        *err = "startup packet too short";
        return PC_PG_ERROR;
    }
    if (len > max_len) {
        *err = startup ? "startup packet too long" : "message length over limit";
        return PC_PG_ERROR;
    }
    out->type = startup ? 0 : buf[0];
    out->body_len = len - 4;
    out->total_len = hdr + out->body_len;
    if (n < out->total_len) return PC_PG_NEED_MORE;
    out->body = buf + hdr;
    return PC_PG_OK;
}

/* A NUL-terminated string starting at *p inside [*p, end): advance past it. */
static const char *take_cstr(const uint8_t **p, const uint8_t *end)
{
    const uint8_t *s = *p;
    const uint8_t *nul = memchr(s, 0, (size_t)(end - s));
    if (!nul) return NULL;
    *p = nul + 1;
    return (const char *)s;
}

bool pc_pg_parse_startup(const uint8_t *body, uint32_t len, pc_pg_startup_t *out)
{
    memset(out, 0, sizeof *out);
    if (len < 4) return false;
    out->code = rd32(body);
    const uint8_t *p = body + 4, *end = body + len;
    switch (out->code) {
    case PC_PG_SSL_REQUEST_CODE:
        out->kind = PC_PG_STARTUP_SSL;
        return len == 4;
    case PC_PG_GSSENC_REQUEST_CODE:
        out->kind = PC_PG_STARTUP_GSSENC;
        return len == 4;
    case PC_PG_CANCEL_REQUEST_CODE:
        out->kind = PC_PG_STARTUP_CANCEL;
        if (len != 12) return false;
        out->cancel_pid = rd32(body + 4);
        out->cancel_key = rd32(body + 8);
        return true;
    default:
        break;
    }
    if (out->code >> 16 != 3) {
        out->kind = PC_PG_STARTUP_UNSUPPORTED_VERSION;
        return true;
    }
    out->kind = PC_PG_STARTUP_V3;
    /* Pairs, then one terminating NUL. */
    for (;;) {
        if (p >= end) return false;
        if (*p == 0) return p + 1 == end;
        const char *name = take_cstr(&p, end);
        if (!name || p >= end) return false;
        const char *value = take_cstr(&p, end);
        if (!value) return false;
        if (out->n_params == PC_PG_MAX_STARTUP_PARAMS) return false;
        out->names[out->n_params] = name;
        out->values[out->n_params] = value;
        out->n_params++;
    }
}

const char *pc_pg_startup_param(const pc_pg_startup_t *s, const char *name)
{
    for (size_t i = 0; i < s->n_params; i++)
        if (strcmp(s->names[i], name) == 0) return s->values[i];
    return NULL;
}

bool pc_pg_parse_query(const uint8_t *body, uint32_t len, const char **query, size_t *qlen)
{
    const uint8_t *p = body, *end = body + len;
    const char *q = take_cstr(&p, end);
    if (!q) return false;
    *query = q;
    *qlen = (size_t)(p - body) - 1;
    return true;
}

bool pc_pg_parse_parse(const uint8_t *body, uint32_t len, pc_pg_parse_msg_t *out)
{
    const uint8_t *p = body, *end = body + len;
    memset(out, 0, sizeof *out);
    if (!(out->stmt = take_cstr(&p, end))) return false;
    const uint8_t *q = p;
    if (!(out->query = take_cstr(&p, end))) return false;
    out->query_len = (size_t)(p - q) - 1;
    if (end - p < 2) return false;
    out->n_param_types = rd16(p);
    p += 2;
    return (size_t)(end - p) == (size_t)out->n_param_types * 4;
}

bool pc_pg_parse_bind(const uint8_t *body, uint32_t len, const char **portal, const char **stmt)
{
    const uint8_t *p = body, *end = body + len;
    if (!(*portal = take_cstr(&p, end))) return false;
    if (!(*stmt = take_cstr(&p, end))) return false;
    return true;
}

bool pc_pg_parse_execute(const uint8_t *body, uint32_t len, const char **portal, uint32_t *max_rows)
{
    const uint8_t *p = body, *end = body + len;
    if (!(*portal = take_cstr(&p, end))) return false;
    if (end - p != 4) return false;
    *max_rows = rd32(p);
    return true;
}

bool pc_pg_parse_describe_close(const uint8_t *body, uint32_t len, char *kind, const char **name)
{
    if (len < 2 || (body[0] != 'S' && body[0] != 'P')) return false;
    *kind = (char)body[0];
    const uint8_t *p = body + 1, *end = body + len;
    if (!(*name = take_cstr(&p, end))) return false;
    return p == end;
}

bool pc_pg_parse_sasl_initial(const uint8_t *body, uint32_t len, const char **mechanism,
                              const uint8_t **data, uint32_t *data_len)
{
    const uint8_t *p = body, *end = body + len;
    if (!(*mechanism = take_cstr(&p, end))) return false;
    if (end - p < 4) return false;
    uint32_t n = rd32(p);
    p += 4;
    if (n == 0xFFFFFFFFu) {
        *data = p;
        *data_len = 0;
        return p == end;
    }
    if ((size_t)(end - p) != n) return false;
    *data = p;
    *data_len = n;
    return true;
}

void pc_pg_parse_sasl_response(const uint8_t *body, uint32_t len, const uint8_t **data,
                               uint32_t *data_len)
{
    *data = body;
    *data_len = len;
}

bool pc_pg_parse_copy_fail(const uint8_t *body, uint32_t len, const char **reason)
{
    const uint8_t *p = body, *end = body + len;
    return (*reason = take_cstr(&p, end)) != NULL;
}

bool pc_pg_parse_auth(const uint8_t *body, uint32_t len, pc_pg_auth_t *out)
{
    if (len < 4) return false;
    out->code = rd32(body);
    out->data = body + 4;
    out->data_len = len - 4;
    switch (out->code) {
    case 0:
    case 3:
        return out->data_len == 0;
    case 5:
        return out->data_len == 4;
    default:
        return true;
    }
}

bool pc_pg_sasl_has_mechanism(const uint8_t *list, uint32_t len, const char *mech)
{
    const uint8_t *p = list, *end = list + len;
    while (p < end && *p) {
        const char *m = take_cstr(&p, end);
        if (!m) return false;
        if (strcmp(m, mech) == 0) return true;
    }
    return false;
}

bool pc_pg_parse_backend_key(const uint8_t *body, uint32_t len, uint32_t *pid, uint32_t *key)
{
    if (len != 8) return false;
    *pid = rd32(body);
    *key = rd32(body + 4);
    return true;
}

bool pc_pg_parse_parameter_status(const uint8_t *body, uint32_t len, const char **name,
                                  const char **value)
{
    const uint8_t *p = body, *end = body + len;
    if (!(*name = take_cstr(&p, end))) return false;
    if (!(*value = take_cstr(&p, end))) return false;
    return p == end;
}

bool pc_pg_parse_ready(const uint8_t *body, uint32_t len, char *tx_status)
{
    if (len != 1) return false;
    if (body[0] != 'I' && body[0] != 'T' && body[0] != 'E') return false;
    *tx_status = (char)body[0];
    return true;
}

bool pc_pg_parse_error(const uint8_t *body, uint32_t len, pc_pg_error_fields_t *out)
{
    const uint8_t *p = body, *end = body + len;
    memset(out, 0, sizeof *out);
    while (p < end && *p) {
        uint8_t field = *p++;
        const char *v = take_cstr(&p, end);
        if (!v) return false;
        switch (field) {
        case 'S':
            if (!out->severity) out->severity = v;
            break;
        case 'V':
            out->severity = v;
            break;
        case 'C':
            out->code = v;
            break;
        case 'M':
            out->message = v;
            break;
        case 'D':
            out->detail = v;
            break;
        default:
            break;
        }
    }
    return p + 1 == end;
}

bool pc_pg_parse_command_complete(const uint8_t *body, uint32_t len, const char **tag,
                                  int64_t *rows)
{
    const uint8_t *p = body, *end = body + len;
    const char *t = take_cstr(&p, end);
    if (!t || p != end) return false;
    *tag = t;
    *rows = -1;
    /* "SELECT 5", "INSERT 0 5", "UPDATE 3", "COPY 10", "FETCH 2", "MOVE 1" */
    const char *sp = strrchr(t, ' ');
    if (!sp || !sp[1]) return true;
    int64_t v = 0;
    for (const char *c = sp + 1; *c; c++) {
        if (*c < '0' || *c > '9' || v > (INT64_MAX - 9) / 10) return true;
        v = v * 10 + (*c - '0');
    }
    *rows = v;
    return true;
}

bool pc_pg_rowdesc_begin(const uint8_t *body, uint32_t len, pc_pg_rowdesc_iter_t *it)
{
    if (len < 2) return false;
    it->n_fields = rd16(body);
    it->next = 0;
    it->p = body + 2;
    it->end = body + len;
    return true;
}

int pc_pg_rowdesc_next(pc_pg_rowdesc_iter_t *it, pc_pg_column_t *col)
{
    if (it->next == it->n_fields) return it->p == it->end ? 0 : -1;
    const uint8_t *p = it->p;
    if (!(col->name = take_cstr(&p, it->end))) return -1;
    if (it->end - p < 18) return -1;
    col->table_oid = rd32(p);
    col->attnum = (int16_t)rd16(p + 4);
    col->type_oid = rd32(p + 6);
    col->type_len = (int16_t)rd16(p + 10);
    col->type_mod = (int32_t)rd32(p + 12);
    col->format = (int16_t)rd16(p + 16);
    it->p = p + 18;
    it->next++;
    return 1;
}

bool pc_pg_datarow_begin(const uint8_t *body, uint32_t len, pc_pg_datarow_iter_t *it)
{
    if (len < 2) return false;
    it->n_fields = rd16(body);
    it->next = 0;
    it->p = body + 2;
    it->end = body + len;
    return true;
}

int pc_pg_datarow_next(pc_pg_datarow_iter_t *it, const uint8_t **val, int32_t *val_len)
{
    if (it->next == it->n_fields) return it->p == it->end ? 0 : -1;
    if (it->end - it->p < 4) return -1;
    int32_t n = (int32_t)rd32(it->p);
    it->p += 4;
    if (n < -1) return -1;
    if (n >= 0) {
        if (it->end - it->p < n) return -1;
        *val = it->p;
        it->p += n;
    } else {
        *val = NULL;
    }
    *val_len = n;
    it->next++;
    return 1;
}

bool pc_pg_parse_notification(const uint8_t *body, uint32_t len, uint32_t *pid,
                              const char **channel, const char **payload)
{
    if (len < 4) return false;
    *pid = rd32(body);
    const uint8_t *p = body + 4, *end = body + len;
    if (!(*channel = take_cstr(&p, end))) return false;
    if (!(*payload = take_cstr(&p, end))) return false;
    return p == end;
}

bool pc_pg_parse_copy_response(const uint8_t *body, uint32_t len, uint8_t *format, uint16_t *n_cols)
{
    if (len < 3) return false;
    *format = body[0];
    *n_cols = rd16(body + 1);
    return len == 3u + 2u * *n_cols;
}

/* ---------- builders ---------- */

void pc_pg_buf_free(pc_pg_buf_t *b)
{
    if (!b) return;
    free(b->data);
    memset(b, 0, sizeof *b);
}

void pc_pg_buf_reset(pc_pg_buf_t *b)
{
    b->len = 0;
    b->oom = false;
}

static bool reserve(pc_pg_buf_t *b, size_t n)
{
    if (b->oom) return false;
    if (b->cap - b->len >= n) return true;
    size_t cap = b->cap ? b->cap : 256;
    while (cap - b->len < n)
        cap *= 2;
    uint8_t *d = realloc(b->data, cap);
    if (!d) {
        b->oom = true;
        return false;
    }
    b->data = d;
    b->cap = cap;
    return true;
}

void pc_pg_buf_put(pc_pg_buf_t *b, const void *p, size_t n)
{
    if (!n || !reserve(b, n)) return;
    memcpy(b->data + b->len, p, n);
    b->len += n;
}

void pc_pg_buf_put_u8(pc_pg_buf_t *b, uint8_t v)
{
    pc_pg_buf_put(b, &v, 1);
}

void pc_pg_buf_put_u16(pc_pg_buf_t *b, uint16_t v)
{
    uint8_t x[2] = {(uint8_t)(v >> 8), (uint8_t)v};
    pc_pg_buf_put(b, x, 2);
}

void pc_pg_buf_put_u32(pc_pg_buf_t *b, uint32_t v)
{
    uint8_t x[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
    pc_pg_buf_put(b, x, 4);
}

void pc_pg_buf_put_cstr(pc_pg_buf_t *b, const char *s)
{
    pc_pg_buf_put(b, s, strlen(s) + 1);
}

size_t pc_pg_msg_begin(pc_pg_buf_t *b, uint8_t type)
{
    if (type) pc_pg_buf_put_u8(b, type);
    size_t off = b->len;
    pc_pg_buf_put_u32(b, 0);
    return off;
}

void pc_pg_msg_end(pc_pg_buf_t *b, size_t off)
{
    if (b->oom || off + 4 > b->len) return;
    uint32_t n = (uint32_t)(b->len - off);
    b->data[off] = (uint8_t)(n >> 24);
    b->data[off + 1] = (uint8_t)(n >> 16);
    b->data[off + 2] = (uint8_t)(n >> 8);
    b->data[off + 3] = (uint8_t)n;
}

void pc_pg_build_error(pc_pg_buf_t *b, const char *severity, const char *sqlstate,
                       const char *message, const char *detail)
{
    size_t off = pc_pg_msg_begin(b, 'E');
    pc_pg_buf_put_u8(b, 'S');
    pc_pg_buf_put_cstr(b, severity);
    pc_pg_buf_put_u8(b, 'V');
    pc_pg_buf_put_cstr(b, severity);
    pc_pg_buf_put_u8(b, 'C');
    pc_pg_buf_put_cstr(b, sqlstate);
    pc_pg_buf_put_u8(b, 'M');
    pc_pg_buf_put_cstr(b, message);
    if (detail) {
        pc_pg_buf_put_u8(b, 'D');
        pc_pg_buf_put_cstr(b, detail);
    }
    pc_pg_buf_put_u8(b, 0);
    pc_pg_msg_end(b, off);
}

void pc_pg_build_auth(pc_pg_buf_t *b, uint32_t code, const void *data, size_t len)
{
    size_t off = pc_pg_msg_begin(b, 'R');
    pc_pg_buf_put_u32(b, code);
    pc_pg_buf_put(b, data, len);
    pc_pg_msg_end(b, off);
}

void pc_pg_build_ready(pc_pg_buf_t *b, char tx_status)
{
    size_t off = pc_pg_msg_begin(b, 'Z');
    pc_pg_buf_put_u8(b, (uint8_t)tx_status);
    pc_pg_msg_end(b, off);
}

void pc_pg_build_backend_key(pc_pg_buf_t *b, uint32_t pid, uint32_t key)
{
    size_t off = pc_pg_msg_begin(b, 'K');
    pc_pg_buf_put_u32(b, pid);
    pc_pg_buf_put_u32(b, key);
    pc_pg_msg_end(b, off);
}

void pc_pg_build_parameter_status(pc_pg_buf_t *b, const char *name, const char *value)
{
    size_t off = pc_pg_msg_begin(b, 'S');
    pc_pg_buf_put_cstr(b, name);
    pc_pg_buf_put_cstr(b, value);
    pc_pg_msg_end(b, off);
}

void pc_pg_build_command_complete(pc_pg_buf_t *b, const char *tag)
{
    size_t off = pc_pg_msg_begin(b, 'C');
    pc_pg_buf_put_cstr(b, tag);
    pc_pg_msg_end(b, off);
}

void pc_pg_build_startup(pc_pg_buf_t *b, const char *const *names, const char *const *values,
                         size_t n)
{
    size_t off = pc_pg_msg_begin(b, 0);
    pc_pg_buf_put_u32(b, PC_PG_PROTO_3_0);
    for (size_t i = 0; i < n; i++) {
        pc_pg_buf_put_cstr(b, names[i]);
        pc_pg_buf_put_cstr(b, values[i]);
    }
    pc_pg_buf_put_u8(b, 0);
    pc_pg_msg_end(b, off);
}

void pc_pg_build_ssl_request(pc_pg_buf_t *b)
{
    size_t off = pc_pg_msg_begin(b, 0);
    pc_pg_buf_put_u32(b, PC_PG_SSL_REQUEST_CODE);
    pc_pg_msg_end(b, off);
}

void pc_pg_build_cancel(pc_pg_buf_t *b, uint32_t pid, uint32_t key)
{
    size_t off = pc_pg_msg_begin(b, 0);
    pc_pg_buf_put_u32(b, PC_PG_CANCEL_REQUEST_CODE);
    pc_pg_buf_put_u32(b, pid);
    pc_pg_buf_put_u32(b, key);
    pc_pg_msg_end(b, off);
}

void pc_pg_build_password(pc_pg_buf_t *b, const char *password)
{
    size_t off = pc_pg_msg_begin(b, 'p');
    pc_pg_buf_put_cstr(b, password);
    pc_pg_msg_end(b, off);
}

void pc_pg_build_sasl_initial(pc_pg_buf_t *b, const char *mechanism, const void *data, size_t len)
{
    size_t off = pc_pg_msg_begin(b, 'p');
    pc_pg_buf_put_cstr(b, mechanism);
    pc_pg_buf_put_u32(b, (uint32_t)len);
    pc_pg_buf_put(b, data, len);
    pc_pg_msg_end(b, off);
}

void pc_pg_build_sasl_response(pc_pg_buf_t *b, const void *data, size_t len)
{
    size_t off = pc_pg_msg_begin(b, 'p');
    pc_pg_buf_put(b, data, len);
    pc_pg_msg_end(b, off);
}
