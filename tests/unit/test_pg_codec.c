/* PostgreSQL codec: framing (whole, split, byte by byte), limits, readers, builders. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "pg/proto.h"

static pc_pg_buf_t startup_packet(void)
{
    pc_pg_buf_t b = {0};
    const char *names[] = {"user", "database", "application_name"};
    const char *values[] = {"alice", "app", "psql"};
    pc_pg_build_startup(&b, names, values, 3);
    return b;
}

static void test_startup_roundtrip(void **state)
{
    (void)state;
    pc_pg_buf_t b = startup_packet();
    pc_pg_msg_t m;
    const char *err = NULL;
    assert_int_equal(pc_pg_frame_next(b.data, b.len, true, PC_PG_MAX_STARTUP_LEN, &m, &err),
                     PC_PG_OK);
    assert_int_equal(m.total_len, b.len);
    pc_pg_startup_t su;
    assert_true(pc_pg_parse_startup(m.body, m.body_len, &su));
    assert_int_equal(su.kind, PC_PG_STARTUP_V3);
    assert_int_equal(su.n_params, 3);
    assert_string_equal(pc_pg_startup_param(&su, "user"), "alice");
    assert_string_equal(pc_pg_startup_param(&su, "database"), "app");
    assert_null(pc_pg_startup_param(&su, "options"));
    /* a missing terminator is malformed */
    assert_false(pc_pg_parse_startup(m.body, m.body_len - 1, &su));
    pc_pg_buf_free(&b);
}

static void test_split_byte_by_byte(void **state)
{
    (void)state;
    pc_pg_buf_t b = {0};
    size_t off = pc_pg_msg_begin(&b, 'Q');
    pc_pg_buf_put_cstr(&b, "select 1");
    pc_pg_msg_end(&b, off);
    off = pc_pg_msg_begin(&b, 'S');
    pc_pg_msg_end(&b, off);
    /* Feed a growing prefix: NEED_MORE until the first message is complete. */
    size_t first = 1 + 4 + 9;
    for (size_t n = 0; n <= b.len; n++) {
        pc_pg_msg_t m;
        const char *err = NULL;
        pc_pg_status_t st = pc_pg_frame_next(b.data, n, false, PC_PG_MAX_MSG_LEN, &m, &err);
        if (n < first) {
            assert_int_equal(st, PC_PG_NEED_MORE);
            if (n >= 5) assert_int_equal(m.total_len, first); /* header known early */
        } else {
            assert_int_equal(st, PC_PG_OK);
            assert_int_equal(m.type, 'Q');
            const char *q;
            size_t ql;
            assert_true(pc_pg_parse_query(m.body, m.body_len, &q, &ql));
            assert_string_equal(q, "select 1");
            assert_int_equal(ql, 8);
        }
    }
    pc_pg_msg_t m;
    const char *err;
    assert_int_equal(
        pc_pg_frame_next(b.data + first, b.len - first, false, PC_PG_MAX_MSG_LEN, &m, &err),
        PC_PG_OK);
    assert_int_equal(m.type, 'S');
    assert_int_equal(m.body_len, 0);
    pc_pg_buf_free(&b);
}

static void test_length_limits(void **state)
{
    (void)state;
    pc_pg_msg_t m;
    const char *err = NULL;
    uint8_t small[5] = {'Q', 0, 0, 0, 3};
    assert_int_equal(pc_pg_frame_next(small, 5, false, PC_PG_MAX_MSG_LEN, &m, &err), PC_PG_ERROR);
    assert_non_null(err);
    /* 1 GiB + 1: rejected from the header alone (no body present) */
    uint8_t huge[5] = {'Q', 0x40, 0, 0, 1};
    assert_int_equal(pc_pg_frame_next(huge, 5, false, PC_PG_MAX_MSG_LEN, &m, &err), PC_PG_ERROR);
    uint8_t neg[5] = {'D', 0xff, 0xff, 0xff, 0xff};
    assert_int_equal(pc_pg_frame_next(neg, 5, false, PC_PG_MAX_MSG_LEN, &m, &err), PC_PG_ERROR);
    /* exactly 1 GiB is allowed (NEED_MORE, header known) */
    uint8_t max[5] = {'D', 0x40, 0, 0, 0};
    assert_int_equal(pc_pg_frame_next(max, 5, false, PC_PG_MAX_MSG_LEN, &m, &err), PC_PG_NEED_MORE);
    assert_int_equal(m.body_len, (1u << 30) - 4);
    /* startup: over 10000 bytes, and under 8 */
    uint8_t st_big[4] = {0, 0, 0x27, 0x11};
    assert_int_equal(pc_pg_frame_next(st_big, 4, true, PC_PG_MAX_STARTUP_LEN, &m, &err),
                     PC_PG_ERROR);
    uint8_t st_ok[4] = {0, 0, 0x27, 0x10};
    assert_int_equal(pc_pg_frame_next(st_ok, 4, true, PC_PG_MAX_STARTUP_LEN, &m, &err),
                     PC_PG_NEED_MORE);
    uint8_t st_small[4] = {0, 0, 0, 7};
    assert_int_equal(pc_pg_frame_next(st_small, 4, true, PC_PG_MAX_STARTUP_LEN, &m, &err),
                     PC_PG_ERROR);
    /* fewer than header bytes: need more, nothing known */
    assert_int_equal(pc_pg_frame_next(small, 4, false, PC_PG_MAX_MSG_LEN, &m, &err),
                     PC_PG_NEED_MORE);
    assert_int_equal(m.total_len, 0);
}

static void test_special_startup_codes(void **state)
{
    (void)state;
    pc_pg_buf_t b = {0};
    pc_pg_build_ssl_request(&b);
    pc_pg_startup_t su;
    assert_int_equal(b.len, 8);
    assert_true(pc_pg_parse_startup(b.data + 4, 4, &su));
    assert_int_equal(su.kind, PC_PG_STARTUP_SSL);
    pc_pg_buf_reset(&b);
    pc_pg_build_cancel(&b, 1234, 0xdeadbeef);
    assert_int_equal(b.len, 16);
    assert_true(pc_pg_parse_startup(b.data + 4, 12, &su));
    assert_int_equal(su.kind, PC_PG_STARTUP_CANCEL);
    assert_int_equal(su.cancel_pid, 1234);
    assert_int_equal(su.cancel_key, 0xdeadbeef);
    /* cancel with a wrong length */
    assert_false(pc_pg_parse_startup(b.data + 4, 8, &su));
    uint8_t gss[4] = {0x04, 0xd2, 0x16, 0x30};
    assert_true(pc_pg_parse_startup(gss, 4, &su));
    assert_int_equal(su.kind, PC_PG_STARTUP_GSSENC);
    uint8_t v2[6] = {0, 2, 0, 0, 0, 0};
    assert_true(pc_pg_parse_startup(v2, 6, &su));
    assert_int_equal(su.kind, PC_PG_STARTUP_UNSUPPORTED_VERSION);
    pc_pg_buf_free(&b);
}

static void test_extended_messages(void **state)
{
    (void)state;
    pc_pg_buf_t b = {0};
    size_t off = pc_pg_msg_begin(&b, 'P');
    pc_pg_buf_put_cstr(&b, "s1");
    pc_pg_buf_put_cstr(&b, "select $1");
    pc_pg_buf_put_u16(&b, 1);
    pc_pg_buf_put_u32(&b, 23);
    pc_pg_msg_end(&b, off);
    pc_pg_parse_msg_t p;
    assert_true(pc_pg_parse_parse(b.data + 5, (uint32_t)b.len - 5, &p));
    assert_string_equal(p.stmt, "s1");
    assert_string_equal(p.query, "select $1");
    assert_int_equal(p.n_param_types, 1);
    /* declared param types beyond the body */
    b.data[b.len - 5] = 2;
    assert_false(pc_pg_parse_parse(b.data + 5, (uint32_t)b.len - 5, &p));

    pc_pg_buf_reset(&b);
    off = pc_pg_msg_begin(&b, 'B');
    pc_pg_buf_put_cstr(&b, "");
    pc_pg_buf_put_cstr(&b, "s1");
    pc_pg_buf_put_u16(&b, 0);
    pc_pg_msg_end(&b, off);
    const char *portal, *stmt;
    assert_true(pc_pg_parse_bind(b.data + 5, (uint32_t)b.len - 5, &portal, &stmt));
    assert_string_equal(portal, "");
    assert_string_equal(stmt, "s1");

    pc_pg_buf_reset(&b);
    off = pc_pg_msg_begin(&b, 'E');
    pc_pg_buf_put_cstr(&b, "p");
    pc_pg_buf_put_u32(&b, 10);
    pc_pg_msg_end(&b, off);
    uint32_t maxrows;
    assert_true(pc_pg_parse_execute(b.data + 5, (uint32_t)b.len - 5, &portal, &maxrows));
    assert_string_equal(portal, "p");
    assert_int_equal(maxrows, 10);
    assert_false(pc_pg_parse_execute(b.data + 5, (uint32_t)b.len - 6, &portal, &maxrows));

    char kind;
    const char *name;
    uint8_t d[] = {'S', 'x', 0};
    assert_true(pc_pg_parse_describe_close(d, 3, &kind, &name));
    assert_int_equal(kind, 'S');
    assert_string_equal(name, "x");
    d[0] = 'Q';
    assert_false(pc_pg_parse_describe_close(d, 3, &kind, &name));

    pc_pg_buf_reset(&b);
    pc_pg_build_sasl_initial(&b, "SCRAM-SHA-256", "n,,n=,r=abc", 11);
    const char *mech;
    const uint8_t *data;
    uint32_t dlen;
    assert_true(pc_pg_parse_sasl_initial(b.data + 5, (uint32_t)b.len - 5, &mech, &data, &dlen));
    assert_string_equal(mech, "SCRAM-SHA-256");
    assert_int_equal(dlen, 11);
    assert_memory_equal(data, "n,,n=,r=abc", 11);
    /* data length larger than the message */
    assert_false(pc_pg_parse_sasl_initial(b.data + 5, (uint32_t)b.len - 6, &mech, &data, &dlen));
    pc_pg_buf_free(&b);
}

static void test_backend_messages(void **state)
{
    (void)state;
    pc_pg_buf_t b = {0};
    pc_pg_build_error(&b, "FATAL", "28P01", "password authentication failed", NULL);
    pc_pg_msg_t m;
    const char *err;
    assert_int_equal(pc_pg_frame_next(b.data, b.len, false, PC_PG_MAX_MSG_LEN, &m, &err), PC_PG_OK);
    assert_int_equal(m.type, 'E');
    pc_pg_error_fields_t ef;
    assert_true(pc_pg_parse_error(m.body, m.body_len, &ef));
    assert_string_equal(ef.severity, "FATAL");
    assert_string_equal(ef.code, "28P01");
    assert_string_equal(ef.message, "password authentication failed");
    assert_false(pc_pg_parse_error(m.body, m.body_len - 1, &ef));

    const char *tag;
    int64_t rows;
    uint8_t cc[] = "INSERT 0 42";
    assert_true(pc_pg_parse_command_complete(cc, sizeof cc, &tag, &rows));
    assert_int_equal(rows, 42);
    uint8_t cc2[] = "CREATE TABLE";
    assert_true(pc_pg_parse_command_complete(cc2, sizeof cc2, &tag, &rows));
    assert_int_equal(rows, -1);

    uint8_t rd[] = {0, 1, 'i', 'd', 0, 0,    0,    0x40, 0,    0, 1, 0,
                    0, 0, 23,  0,   4, 0xff, 0xff, 0xff, 0xff, 0, 0};
    pc_pg_rowdesc_iter_t it;
    pc_pg_column_t col;
    assert_true(pc_pg_rowdesc_begin(rd, sizeof rd, &it));
    assert_int_equal(pc_pg_rowdesc_next(&it, &col), 1);
    assert_string_equal(col.name, "id");
    assert_int_equal(col.type_oid, 23);
    assert_int_equal(col.table_oid, 0x4000);
    assert_int_equal(pc_pg_rowdesc_next(&it, &col), 0);
    assert_true(pc_pg_rowdesc_begin(rd, sizeof rd - 1, &it));
    assert_int_equal(pc_pg_rowdesc_next(&it, &col), -1);

    uint8_t dr[] = {0, 2, 0, 0, 0, 2, 'h', 'i', 0xff, 0xff, 0xff, 0xff};
    pc_pg_datarow_iter_t di;
    const uint8_t *v;
    int32_t vl;
    assert_true(pc_pg_datarow_begin(dr, sizeof dr, &di));
    assert_int_equal(pc_pg_datarow_next(&di, &v, &vl), 1);
    assert_int_equal(vl, 2);
    assert_memory_equal(v, "hi", 2);
    assert_int_equal(pc_pg_datarow_next(&di, &v, &vl), 1);
    assert_int_equal(vl, -1);
    assert_int_equal(pc_pg_datarow_next(&di, &v, &vl), 0);
    /* a value length past the end */
    dr[5] = 9;
    assert_true(pc_pg_datarow_begin(dr, sizeof dr, &di));
    assert_int_equal(pc_pg_datarow_next(&di, &v, &vl), -1);

    uint32_t pid, key;
    uint8_t k[8] = {0, 0, 0, 7, 0, 0, 0, 9};
    assert_true(pc_pg_parse_backend_key(k, 8, &pid, &key));
    assert_int_equal(pid, 7);
    assert_int_equal(key, 9);
    assert_false(pc_pg_parse_backend_key(k, 7, &pid, &key));

    char tx;
    uint8_t z = 'T';
    assert_true(pc_pg_parse_ready(&z, 1, &tx));
    assert_int_equal(tx, 'T');
    z = 'x';
    assert_false(pc_pg_parse_ready(&z, 1, &tx));

    pc_pg_auth_t a;
    uint8_t sasl[] = {0,   0,   0,   10,  'S', 'C', 'R', 'A', 'M', '-',
                      'S', 'H', 'A', '-', '2', '5', '6', 0,   0};
    assert_true(pc_pg_parse_auth(sasl, sizeof sasl, &a));
    assert_int_equal(a.code, 10);
    assert_true(pc_pg_sasl_has_mechanism(a.data, a.data_len, "SCRAM-SHA-256"));
    assert_false(pc_pg_sasl_has_mechanism(a.data, a.data_len, "SCRAM-SHA-256-PLUS"));
    uint8_t md5[] = {0, 0, 0, 5, 1, 2, 3};
    assert_false(pc_pg_parse_auth(md5, sizeof md5, &a)); /* salt must be 4 bytes */

    const char *name, *value, *payload;
    uint8_t ps[] = "TimeZone\0UTC";
    assert_true(pc_pg_parse_parameter_status(ps, sizeof ps, &name, &value));
    assert_string_equal(value, "UTC");
    uint8_t nt[] = {0, 0, 0, 5, 'c', 0, 'p', 0};
    assert_true(pc_pg_parse_notification(nt, sizeof nt, &pid, &name, &payload));
    assert_string_equal(name, "c");
    assert_string_equal(payload, "p");
    uint8_t copy[] = {0, 0, 2, 0, 0, 0, 0};
    uint8_t fmt;
    uint16_t ncols;
    assert_true(pc_pg_parse_copy_response(copy, sizeof copy, &fmt, &ncols));
    assert_int_equal(ncols, 2);
    assert_false(pc_pg_parse_copy_response(copy, sizeof copy - 1, &fmt, &ncols));
    pc_pg_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_startup_roundtrip), cmocka_unit_test(test_split_byte_by_byte),
        cmocka_unit_test(test_length_limits),     cmocka_unit_test(test_special_startup_codes),
        cmocka_unit_test(test_extended_messages), cmocka_unit_test(test_backend_messages),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
