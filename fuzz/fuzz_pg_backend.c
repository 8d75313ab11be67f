/* Server-message parser: what an upstream (or something posing as one) sends. */
#include "pg/proto.h"

#include <string.h>

static void read_fields(const pc_pg_msg_t *m)
{
    const char *a, *b;
    uint32_t u1, u2;
    char c;
    int64_t rows;
    switch (m->type) {
    case 'R': {
        pc_pg_auth_t au;
        if (pc_pg_parse_auth(m->body, m->body_len, &au) && au.code == 10)
            (void)pc_pg_sasl_has_mechanism(au.data, au.data_len, "SCRAM-SHA-256");
        break;
    }
    case 'K':
        (void)pc_pg_parse_backend_key(m->body, m->body_len, &u1, &u2);
        break;
    case 'S':
        if (pc_pg_parse_parameter_status(m->body, m->body_len, &a, &b))
            (void)(strlen(a) + strlen(b));
        break;
    case 'Z':
        (void)pc_pg_parse_ready(m->body, m->body_len, &c);
        break;
    case 'E':
    case 'N': {
        pc_pg_error_fields_t ef;
        if (pc_pg_parse_error(m->body, m->body_len, &ef) && ef.message) (void)strlen(ef.message);
        break;
    }
    case 'C':
        (void)pc_pg_parse_command_complete(m->body, m->body_len, &a, &rows);
        break;
    case 'T': {
        pc_pg_rowdesc_iter_t it;
        pc_pg_column_t col;
        if (pc_pg_rowdesc_begin(m->body, m->body_len, &it))
            while (pc_pg_rowdesc_next(&it, &col) == 1)
                (void)strlen(col.name);
        break;
    }
    case 'D': {
        pc_pg_datarow_iter_t it;
        const uint8_t *v;
        int32_t vl;
        if (pc_pg_datarow_begin(m->body, m->body_len, &it))
            while (pc_pg_datarow_next(&it, &v, &vl) == 1)
                if (vl > 0) (void)v[vl - 1];
        break;
    }
    case 'A':
        (void)pc_pg_parse_notification(m->body, m->body_len, &u1, &a, &b);
        break;
    case 'G':
    case 'H':
    case 'W': {
        uint8_t fmt;
        uint16_t n;
        (void)pc_pg_parse_copy_response(m->body, m->body_len, &fmt, &n);
        break;
    }
    default:
        break;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t off = 0;
    while (off < size) {
        pc_pg_msg_t m;
        const char *err = NULL;
        if (pc_pg_frame_next(data + off, size - off, false, PC_PG_MAX_MSG_LEN, &m, &err) !=
            PC_PG_OK)
            break;
        read_fields(&m);
        off += m.total_len;
    }
    return 0;
}
