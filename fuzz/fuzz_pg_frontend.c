/*
 * Client-message parser: the first byte picks the framing (startup packet or
 * regular messages), then every framed message goes through the field reader
 * the session would use for it.
 */
#include "pg/proto.h"

#include <string.h>

static void read_fields(const pc_pg_msg_t *m)
{
    const char *a, *b;
    size_t n;
    uint32_t u;
    char kind;
    const uint8_t *d;
    pc_pg_parse_msg_t p;
    switch (m->type) {
    case 'Q':
        if (pc_pg_parse_query(m->body, m->body_len, &a, &n)) (void)strlen(a);
        break;
    case 'P':
        if (pc_pg_parse_parse(m->body, m->body_len, &p)) (void)strlen(p.query);
        break;
    case 'B':
        if (pc_pg_parse_bind(m->body, m->body_len, &a, &b)) (void)(strlen(a) + strlen(b));
        break;
    case 'E':
        (void)pc_pg_parse_execute(m->body, m->body_len, &a, &u);
        break;
    case 'D':
    case 'C':
        (void)pc_pg_parse_describe_close(m->body, m->body_len, &kind, &a);
        break;
    case 'p':
        if (pc_pg_parse_sasl_initial(m->body, m->body_len, &a, &d, &u) && u)
            (void)(d[u - 1] + strlen(a));
        pc_pg_parse_sasl_response(m->body, m->body_len, &d, &u);
        break;
    case 'f':
        (void)pc_pg_parse_copy_fail(m->body, m->body_len, &a);
        break;
    default:
        break;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    bool startup = data[0] & 1;
    data++;
    size--;
    size_t off = 0;
    while (off < size) {
        pc_pg_msg_t m;
        const char *err = NULL;
        pc_pg_status_t st =
            pc_pg_frame_next(data + off, size - off, startup,
                             startup ? PC_PG_MAX_STARTUP_LEN : PC_PG_MAX_MSG_LEN, &m, &err);
        if (st != PC_PG_OK) break;
        if (startup) {
            pc_pg_startup_t su;
            if (pc_pg_parse_startup(m.body, m.body_len, &su) && su.kind == PC_PG_STARTUP_V3) {
                for (size_t i = 0; i < su.n_params; i++)
                    (void)(strlen(su.names[i]) + strlen(su.values[i]));
                (void)pc_pg_startup_param(&su, "user");
            }
            startup = false; /* after the first packet come regular messages */
        } else {
            read_fields(&m);
        }
        off += m.total_len;
    }
    return 0;
}
