/*
 * The PostgreSQL session state machine end to end inside one process: the real
 * worker pool and pg module, a scripted fake upstream on a thread, and a test
 * client speaking the wire protocol byte by byte (SCRAM with the config
 * module's client side). Covers split frames in both directions, the
 * connector's own BackendKeyData and cancel forwarding, oversize rejection,
 * wrong passwords.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "net/pool.h"
#include "pg/pg.h"
#include "pg/proto.h"
#include "pg/scram.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define USER_PW "alice-pw"

/* ---------- fake upstream ---------- */

static int up_listen_fd;
static int up_port;
static atomic_int up_cancels;      /* cancel requests with the right key */
static atomic_int up_bad_startups; /* startup packets without the expected user/db */
static atomic_int up_terminates;

static uint32_t be32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

static bool read_full(int fd, void *buf, size_t n)
{
    uint8_t *p = buf;
    while (n) {
        ssize_t r = read(fd, p, n);
        if (r <= 0) return false;
        p += r;
        n -= (size_t)r;
    }
    return true;
}

static void write_all(int fd, const void *buf, size_t n, bool bytewise)
{
    const uint8_t *p = buf;
    while (n) {
        ssize_t w = write(fd, p, bytewise ? 1 : n);
        if (w <= 0) return;
        p += w;
        n -= (size_t)w;
    }
}

static void *upstream_conn(void *arg)
{
    int fd = (int)(intptr_t)arg;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    uint8_t hdr[5];
    if (!read_full(fd, hdr, 4)) goto out;
    uint32_t len = be32(hdr);
    if (len < 8 || len > 10000) goto out;
    uint8_t body[10000];
    if (!read_full(fd, body, len - 4)) goto out;
    pc_pg_startup_t su;
    if (!pc_pg_parse_startup(body, len - 4, &su)) goto out;
    if (su.kind == PC_PG_STARTUP_CANCEL) {
        if (su.cancel_pid == 4242 && su.cancel_key == 99) atomic_fetch_add(&up_cancels, 1);
        goto out;
    }
    const char *u = pc_pg_startup_param(&su, "user"), *d = pc_pg_startup_param(&su, "database");
    if (!u || strcmp(u, "app") != 0 || !d || strcmp(d, "app") != 0)
        atomic_fetch_add(&up_bad_startups, 1);
    pc_pg_buf_t b = {0};
    pc_pg_build_auth(&b, 0, NULL, 0);
    pc_pg_build_parameter_status(&b, "server_version", "15.0");
    pc_pg_build_backend_key(&b, 4242, 99);
    pc_pg_build_ready(&b, 'I');
    write_all(fd, b.data, b.len, false);
    for (;;) {
        if (!read_full(fd, hdr, 5)) break;
        len = be32(hdr + 1);
        if (len < 4 || len > sizeof body) break;
        if (!read_full(fd, body, len - 4)) break;
        if (hdr[0] == 'X') {
            atomic_fetch_add(&up_terminates, 1);
            break;
        }
        if (hdr[0] != 'Q') continue;
        const char *q;
        size_t qlen;
        if (!pc_pg_parse_query(body, len - 4, &q, &qlen)) break;
        /* One text column echoing the query. */
        pc_pg_buf_reset(&b);
        size_t off = pc_pg_msg_begin(&b, 'T');
        pc_pg_buf_put_u16(&b, 1);
        pc_pg_buf_put_cstr(&b, "echo");
        pc_pg_buf_put_u32(&b, 0);
        pc_pg_buf_put_u16(&b, 0);
        pc_pg_buf_put_u32(&b, 25);
        pc_pg_buf_put_u16(&b, 0xffff);
        pc_pg_buf_put_u32(&b, 0xffffffff);
        pc_pg_buf_put_u16(&b, 0);
        pc_pg_msg_end(&b, off);
        off = pc_pg_msg_begin(&b, 'D');
        pc_pg_buf_put_u16(&b, 1);
        pc_pg_buf_put_u32(&b, (uint32_t)qlen);
        pc_pg_buf_put(&b, q, qlen);
        pc_pg_msg_end(&b, off);
        pc_pg_build_command_complete(&b, "SELECT 1");
        pc_pg_build_ready(&b, 'I');
        write_all(fd, b.data, b.len, strncmp(q, "split", 5) == 0);
    }
    pc_pg_buf_free(&b);
out:
    close(fd);
    return NULL;
}

static void *upstream_main(void *arg)
{
    (void)arg;
    for (;;) {
        int fd = accept(up_listen_fd, NULL, NULL);
        if (fd < 0) return NULL;
        pthread_t t;
        pthread_create(&t, NULL, upstream_conn, (void *)(intptr_t)fd);
        pthread_detach(t);
    }
}

/* ---------- harness ---------- */

static uv_loop_t loop;
static pc_workers_t *workers;
static int pg_port;
static pc_config_t cfg;
static pc_ctx_t ctx;

static void on_notify(void *arg)
{
    (void)arg;
}

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET};
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    socklen_t sl = sizeof sa;
    getsockname(fd, (struct sockaddr *)&sa, &sl);
    close(fd);
    return ntohs(sa.sin_port);
}

static int setup(void **state)
{
    (void)state;
    up_listen_fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET};
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    if (bind(up_listen_fd, (struct sockaddr *)&sa, sizeof sa) != 0) return -1;
    listen(up_listen_fd, 64);
    socklen_t sl = sizeof sa;
    getsockname(up_listen_fd, (struct sockaddr *)&sa, &sl);
    up_port = ntohs(sa.sin_port);
    pthread_t t;
    pthread_create(&t, NULL, upstream_main, NULL);
    pthread_detach(t);

    pc_pg_register();
    uv_loop_init(&loop);
    cfg.listen_address = "127.0.0.1";
    ctx.cfg = &cfg;
    ctx.instance_name = "t";
    char err[256];
    workers = pc_workers_start(&loop, &ctx, 1, on_notify, NULL, err, sizeof err);
    if (!workers) return -1;
    pg_port = free_port();
    char yaml[1024];
    snprintf(yaml, sizeof yaml,
             "resources:\n"
             "  - {name: r, technology: postgres, hostname: 127.0.0.1, port: %d,"
             " database: app, tls: disable, credentials: {username: app, password: p}}\n"
             "listeners:\n"
             "  - {name: pg, port: %d, resource: r, tls: disabled}\n"
             "users:\n"
             "  - {username: alice, password: %s}\n",
             up_port, pg_port, USER_PW);
    pc_snapshot_t *snap = pc_snapshot_load_yaml(yaml, strlen(yaml), "test", 1, err, sizeof err);
    if (!snap) {
        fprintf(stderr, "snapshot: %s\n", err);
        return -1;
    }
    pc_workers_publish(workers, snap);
    pc_snapshot_unref(snap);
    for (int i = 0; i < 5000 && !pc_workers_ready(workers, 1, NULL); i++) {
        uv_run(&loop, UV_RUN_NOWAIT);
        usleep(1000);
    }
    return pc_workers_ready(workers, 1, NULL) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    pc_workers_stop(workers);
    uv_run(&loop, UV_RUN_NOWAIT);
    uv_loop_close(&loop);
    return 0;
}

/* ---------- test client ---------- */

typedef struct client {
    int fd;
    uint8_t type;
    uint8_t body[70000];
    uint32_t len;
} client_t;

static void client_open(client_t *c)
{
    c->fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)pg_port)};
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    assert_int_equal(connect(c->fd, (struct sockaddr *)&sa, sizeof sa), 0);
    struct timeval tv = {.tv_sec = 5};
    setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

static void client_send(client_t *c, const pc_pg_buf_t *b, bool bytewise)
{
    assert_false(b->oom);
    write_all(c->fd, b->data, b->len, bytewise);
}

/* Next message; false on close or timeout. */
static bool client_read(client_t *c)
{
    uint8_t hdr[5];
    if (!read_full(c->fd, hdr, 5)) return false;
    c->type = hdr[0];
    c->len = be32(hdr + 1) - 4;
    if (c->len > sizeof c->body) return false;
    return read_full(c->fd, c->body, c->len);
}

static uint32_t auth_code(const client_t *c)
{
    return c->type == 'R' && c->len >= 4 ? be32(c->body) : 0xffffffffu;
}

static const char *error_code(client_t *c)
{
    pc_pg_error_fields_t ef;
    if (c->type != 'E' || !pc_pg_parse_error(c->body, c->len, &ef)) return "";
    return ef.code ? ef.code : "";
}

/* SCRAM login; returns the ReadyForQuery-terminated result: true if logged in. */
static bool client_login(client_t *c, const char *password, uint32_t *pid, uint32_t *key)
{
    client_open(c);
    pc_pg_buf_t b = {0};
    const char *names[] = {"user", "database"}, *values[] = {"alice", "app"};
    pc_pg_build_startup(&b, names, values, 2);
    client_send(c, &b, false);
    assert_true(client_read(c));
    assert_int_equal(auth_code(c), 10);
    pc_scram_client_t sc;
    assert_true(pc_scram_client_init(&sc, password, strlen(password), NULL));
    char out[PC_SCRAM_MAX_OUT];
    size_t n = pc_scram_client_first(&sc, out, sizeof out);
    pc_pg_buf_reset(&b);
    pc_pg_build_sasl_initial(&b, PC_SCRAM_MECHANISM, out, n);
    client_send(c, &b, false);
    assert_true(client_read(c));
    assert_int_equal(auth_code(c), 11);
    const char *problem;
    assert_int_equal(pc_scram_client_final(&sc, (const char *)c->body + 4, c->len - 4, out,
                                           sizeof out, &n, &problem),
                     PC_SCRAM_OK);
    pc_pg_buf_reset(&b);
    pc_pg_build_sasl_response(&b, out, n);
    client_send(c, &b, false);
    pc_pg_buf_free(&b);
    assert_true(client_read(c));
    if (c->type == 'E') {
        pc_scram_client_clear(&sc);
        return false;
    }
    assert_int_equal(auth_code(c), 12);
    assert_int_equal(pc_scram_client_verify(&sc, (const char *)c->body + 4, c->len - 4, &problem),
                     PC_SCRAM_OK);
    pc_scram_client_clear(&sc);
    assert_true(client_read(c));
    assert_int_equal(auth_code(c), 0);
    bool saw_key = false, saw_version = false;
    for (;;) {
        assert_true(client_read(c));
        if (c->type == 'K') {
            saw_key = pc_pg_parse_backend_key(c->body, c->len, pid, key);
        } else if (c->type == 'S') {
            const char *k, *v;
            if (pc_pg_parse_parameter_status(c->body, c->len, &k, &v) &&
                !strcmp(k, "server_version"))
                saw_version = !strcmp(v, "15.0");
        } else if (c->type == 'Z') {
            break;
        } else {
            fail_msg("unexpected message '%c' during login", c->type);
        }
    }
    assert_true(saw_key && saw_version);
    return true;
}

static void query(client_t *c, const char *sql, bool bytewise)
{
    pc_pg_buf_t b = {0};
    size_t off = pc_pg_msg_begin(&b, 'Q');
    pc_pg_buf_put_cstr(&b, sql);
    pc_pg_msg_end(&b, off);
    client_send(c, &b, bytewise);
    pc_pg_buf_free(&b);
    bool got_row = false;
    for (;;) {
        assert_true(client_read(c));
        if (c->type == 'D') {
            pc_pg_datarow_iter_t it;
            const uint8_t *v;
            int32_t vl;
            assert_true(pc_pg_datarow_begin(c->body, c->len, &it));
            assert_int_equal(pc_pg_datarow_next(&it, &v, &vl), 1);
            assert_int_equal(vl, (int32_t)strlen(sql));
            assert_memory_equal(v, sql, (size_t)vl);
            got_row = true;
        }
        if (c->type == 'Z') break;
    }
    assert_true(got_row);
}

/* ---------- tests ---------- */

static void test_login_and_split_frames(void **state)
{
    (void)state;
    client_t *c = calloc(1, sizeof *c);
    uint32_t pid = 0, key = 0;
    assert_true(client_login(c, USER_PW, &pid, &key));
    assert_int_not_equal(pid, 4242); /* the connector's own key, never the server's */
    assert_int_equal(atomic_load(&up_bad_startups), 0);
    query(c, "select 1", false);
    query(c, "select 'sent one byte at a time'", true); /* client -> connector split */
    query(c, "split: the server answers one byte at a time", false);
    /* two queries in one write (pipelining) */
    pc_pg_buf_t b = {0};
    for (int i = 0; i < 2; i++) {
        size_t off = pc_pg_msg_begin(&b, 'Q');
        pc_pg_buf_put_cstr(&b, "pipelined");
        pc_pg_msg_end(&b, off);
    }
    client_send(c, &b, false);
    pc_pg_buf_free(&b);
    int ready = 0;
    while (ready < 2) {
        assert_true(client_read(c));
        if (c->type == 'Z') ready++;
    }
    /* Terminate reaches the server */
    int before = atomic_load(&up_terminates);
    static const uint8_t x[5] = {'X', 0, 0, 0, 4};
    write_all(c->fd, x, 5, false);
    assert_false(client_read(c)); /* closed */
    for (int i = 0; i < 500 && atomic_load(&up_terminates) == before; i++)
        usleep(10000);
    assert_int_equal(atomic_load(&up_terminates), before + 1);
    close(c->fd);
    free(c);
}

static void test_cancel_forwarding(void **state)
{
    (void)state;
    client_t *c = calloc(1, sizeof *c);
    uint32_t pid, key;
    assert_true(client_login(c, USER_PW, &pid, &key));
    int before = atomic_load(&up_cancels);
    /* a wrong key is dropped */
    client_t *k = calloc(1, sizeof *k);
    pc_pg_buf_t b = {0};
    pc_pg_build_cancel(&b, pid, key ^ 1);
    client_open(k);
    client_send(k, &b, false);
    assert_false(client_read(k));
    close(k->fd);
    usleep(200000);
    assert_int_equal(atomic_load(&up_cancels), before);
    /* the right one reaches the server with the server's own key */
    pc_pg_buf_reset(&b);
    pc_pg_build_cancel(&b, pid, key);
    client_open(k);
    client_send(k, &b, true);
    assert_false(client_read(k));
    close(k->fd);
    for (int i = 0; i < 500 && atomic_load(&up_cancels) == before; i++)
        usleep(10000);
    assert_int_equal(atomic_load(&up_cancels), before + 1);
    pc_pg_buf_free(&b);
    close(c->fd);
    free(c);
    free(k);
}

static void test_oversize_and_bad_password(void **state)
{
    (void)state;
    client_t *c = calloc(1, sizeof *c);
    uint32_t pid, key;
    assert_true(client_login(c, USER_PW, &pid, &key));
    static const uint8_t huge[5] = {'Q', 0x40, 0, 0, 1}; /* 1 GiB + 1 */
    write_all(c->fd, huge, 5, false);
    assert_true(client_read(c));
    assert_string_equal(error_code(c), "08P01");
    assert_false(client_read(c));
    close(c->fd);

    assert_false(client_login(c, "wrong", &pid, &key));
    assert_string_equal(error_code(c), "28P01");
    assert_false(client_read(c));
    close(c->fd);

    /* a startup packet over the 10000-byte limit, told from its header */
    client_open(c);
    static const uint8_t big_startup[8] = {0, 0, 0x27, 0x11, 0, 3, 0, 0};
    write_all(c->fd, big_startup, sizeof big_startup, false);
    assert_true(client_read(c));
    assert_string_equal(error_code(c), "08P01");
    close(c->fd);
    free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_login_and_split_frames),
        cmocka_unit_test(test_cancel_forwarding),
        cmocka_unit_test(test_oversize_and_bad_password),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
