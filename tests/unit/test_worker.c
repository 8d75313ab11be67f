/*
 * Worker pool with a fake protocol module: accepts reach the module on a
 * worker thread, snapshots re-bind moved listeners, a busy port keeps the pool
 * not ready until it frees up, stop/poll/terminate behave as shutdown needs.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "net/pool.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* ---------- fake protocol module: keeps every client open until terminated ---------- */

typedef struct fake_session {
    uv_tcp_t *tcp;
    struct fake_session *next;
} fake_session_t;

static atomic_int accepted;
static atomic_int accepted_off_main;
static atomic_int terminated;
static atomic_int bad_accepts;
static pthread_t main_thread;

static void free_handle(uv_handle_t *h)
{
    free(h);
}

static void fake_accept(pc_worker_t *w, uv_tcp_t *client, pc_snapshot_t *snap,
                        const pc_listener_cfg_t *listener)
{
    /* cmocka asserts must not longjmp across threads: count, check on main. */
    if (!listener || client->loop != pc_worker_loop(w) || snap != pc_worker_snapshot(w) ||
        pc_worker_draining(w))
        atomic_fetch_add(&bad_accepts, 1);
    fake_session_t **head = (fake_session_t **)pc_worker_proto_slot(w, PC_TECH_POSTGRES);
    fake_session_t *s = calloc(1, sizeof *s);
    s->tcp = client;
    s->next = *head;
    *head = s;
    atomic_fetch_add(&accepted, 1);
    if (!pthread_equal(pthread_self(), main_thread)) atomic_fetch_add(&accepted_off_main, 1);
}

static size_t fake_active(pc_worker_t *w)
{
    size_t n = 0;
    for (fake_session_t *s = *(fake_session_t **)pc_worker_proto_slot(w, PC_TECH_POSTGRES); s;
         s = s->next)
        n++;
    return n;
}

static void fake_terminate(pc_worker_t *w)
{
    fake_session_t **head = (fake_session_t **)pc_worker_proto_slot(w, PC_TECH_POSTGRES);
    while (*head) {
        fake_session_t *s = *head;
        *head = s->next;
        uv_close((uv_handle_t *)s->tcp, free_handle);
        free(s);
        atomic_fetch_add(&terminated, 1);
    }
}

static const pc_proto_t fake_proto = {
    .technology = PC_TECH_POSTGRES,
    .on_accept = fake_accept,
    .terminate_all = fake_terminate,
    .active_sessions = fake_active,
};

/* ---------- helpers ---------- */

static uv_loop_t loop;
static atomic_int notified;

static void on_notify(void *arg)
{
    atomic_fetch_add(&notified, 1);
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

static int connect_to(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        close(fd);
        return -errno;
    }
    return fd;
}

/* Drive the main loop until pred() or about 5 s. */
static bool pump_until(bool (*pred)(void *), void *arg)
{
    for (int i = 0; i < 5000; i++) {
        uv_run(&loop, UV_RUN_NOWAIT);
        if (pred(arg)) return true;
        usleep(1000);
    }
    return false;
}

typedef struct ready_arg {
    pc_workers_t *ws;
    uint64_t revision;
} ready_arg_t;

static bool is_ready(void *p)
{
    ready_arg_t *a = p;
    return pc_workers_ready(a->ws, a->revision, NULL);
}

static int want_accepted;
static bool accepted_enough(void *p)
{
    return atomic_load(&accepted) >= want_accepted;
}

static size_t want_active;
static bool active_is(void *p)
{
    pc_workers_t *ws = p;
    bool complete = false;
    size_t n = pc_workers_active_sessions(ws, &complete);
    if (complete && n == want_active) return true;
    pc_workers_poll_sessions(ws);
    return false;
}

static pc_snapshot_t *snapshot(uint64_t revision, int port_a, int port_b)
{
    char yaml[1024];
    int n = snprintf(yaml, sizeof yaml,
                     "resources:\n"
                     "  - {name: r, technology: postgres, hostname: 127.0.0.1, port: 1,"
                     " database: d, credentials: {username: u, password: p}}\n"
                     "listeners:\n"
                     "  - {name: a, port: %d, resource: r}\n",
                     port_a);
    if (port_b)
        snprintf(yaml + n, sizeof yaml - (size_t)n, "  - {name: b, port: %d, resource: r}\n",
                 port_b);
    char err[512];
    pc_snapshot_t *s = pc_snapshot_load_yaml(yaml, strlen(yaml), "test", revision, err, sizeof err);
    if (!s) fprintf(stderr, "snapshot: %s\n", err);
    assert_non_null(s);
    return s;
}

static void test_pool_lifecycle(void **state)
{
    main_thread = pthread_self();
    pc_proto_register(&fake_proto);
    assert_ptr_equal(pc_proto_find(PC_TECH_POSTGRES), &fake_proto);
    assert_null(pc_proto_find(PC_TECH_S3));

    uv_loop_init(&loop);
    pc_config_t cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.listen_address = "127.0.0.1";
    pc_ctx_t ctx = {.cfg = &cfg, .instance_name = "t"};
    char err[256];
    pc_workers_t *ws = pc_workers_start(&loop, &ctx, 2, on_notify, NULL, err, sizeof err);
    assert_non_null(ws);
    assert_int_equal(pc_workers_count(ws), 2);
    assert_false(pc_workers_ready(ws, 1, NULL)); /* nothing published yet */

    int p1 = free_port(), p2 = free_port(), p3 = free_port();
    pc_snapshot_t *s1 = snapshot(1, p1, 0);
    pc_workers_publish(ws, s1);
    pc_snapshot_unref(s1); /* the workers hold their own references */
    ready_arg_t r1 = {ws, 1};
    assert_true(pump_until(is_ready, &r1));
    assert_true(atomic_load(&notified) > 0);

    /* Several clients: every one reaches the module on a worker thread. */
    int fds[8];
    for (int i = 0; i < 8; i++) {
        fds[i] = connect_to(p1);
        assert_true(fds[i] >= 0);
    }
    want_accepted = 8;
    assert_true(pump_until(accepted_enough, NULL));
    assert_int_equal(atomic_load(&accepted_off_main), 8);
    assert_int_equal(atomic_load(&bad_accepts), 0);
    want_active = 8;
    pc_workers_poll_sessions(ws);
    assert_true(pump_until(active_is, ws));

    /* Move listener a to p2 and add b on p3: a's old port closes, sessions stay. */
    pc_snapshot_t *s2 = snapshot(2, p2, p3);
    pc_workers_publish(ws, s2);
    pc_snapshot_unref(s2);
    ready_arg_t r2 = {ws, 2};
    assert_true(pump_until(is_ready, &r2));
    assert_int_equal(connect_to(p1), -ECONNREFUSED);
    int fa = connect_to(p2), fb = connect_to(p3);
    assert_true(fa >= 0 && fb >= 0);
    want_accepted = 10;
    assert_true(pump_until(accepted_enough, NULL));
    want_active = 10;
    assert_true(pump_until(active_is, ws));

    /* A busy port: not ready (two workers unbound) until it frees up. */
    int p4 = free_port();
    int blocker = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)p4)};
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    assert_int_equal(bind(blocker, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(listen(blocker, 1), 0);
    pc_snapshot_t *s3 = snapshot(3, p2, p4);
    pc_workers_publish(ws, s3);
    pc_snapshot_unref(s3);
    ready_arg_t r3 = {ws, 3};
    for (int i = 0; i < 300; i++) {
        uv_run(&loop, UV_RUN_NOWAIT);
        usleep(1000);
    }
    unsigned unbound = 0;
    assert_false(pc_workers_ready(ws, 3, &unbound));
    assert_int_equal(unbound, 2);
    close(blocker);
    assert_true(pump_until(is_ready, &r3)); /* the 1 s retry binds it */
    assert_int_equal(connect_to(p3), -ECONNREFUSED); /* b moved from p3 to p4 */

    /* Shutdown: stop accepting, sessions stay until terminated. */
    pc_workers_stop_accepting(ws);
    for (int i = 0; i < 200 && connect_to(p2) >= 0; i++) usleep(1000);
    assert_int_equal(connect_to(p2), -ECONNREFUSED);
    assert_int_equal(connect_to(p4), -ECONNREFUSED);
    want_active = 10;
    assert_true(pump_until(active_is, ws));
    pc_workers_terminate_all(ws);
    want_active = 0;
    assert_true(pump_until(active_is, ws));
    assert_int_equal(atomic_load(&terminated), 10);

    /* Clients see their connection closed. */
    char b;
    assert_int_equal(recv(fds[0], &b, 1, 0), 0);
    for (int i = 0; i < 8; i++) close(fds[i]);
    close(fa);
    close(fb);

    pc_workers_stop(ws);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pool_lifecycle),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
