/*
 * The log shipper against a scripted HTTP server in this process: the cursor
 * moves only after a 2xx, failures are retried, refused batches are halved
 * down to the one bad record, invalid spool records are never sent, and a
 * restarted shipper resumes from the cursor.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "cpclient/cpclient_int.h"
#include "spool/spool.h"

#include <arpa/inet.h>
#include <jansson.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_IDS 4096

typedef struct server {
    int lfd, port;
    pthread_t thread;
    atomic_bool stop;
    pthread_mutex_t lock;
    unsigned fail_first; /* answer 500 to this many requests first */
    unsigned requests;   /* every request seen */
    unsigned bad_auth;   /* requests without the expected token */
    unsigned refused;    /* 400 answers (batch held the "bad" record) */
    char *ids[MAX_IDS];  /* ids of accepted records, in arrival order (duplicates kept) */
    size_t n_ids;
} server_t;

static size_t read_request(int fd, char *buf, size_t cap, atomic_bool *stop, size_t *body_off,
                           size_t *body_len)
{
    size_t len = 0;
    for (;;) {
        buf[len] = '\0';
        char *end = strstr(buf, "\r\n\r\n");
        if (end) {
            *body_off = (size_t)(end + 4 - buf);
            char *cl = strcasestr(buf, "\r\nContent-Length:");
            *body_len = cl ? strtoul(cl + 17, NULL, 10) : 0;
            if (len >= *body_off + *body_len) return len;
        }
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 100) == 0) {
            if (atomic_load(stop)) return 0;
            continue;
        }
        if (len + 1 >= cap) return 0;
        ssize_t n = read(fd, buf + len, cap - 1 - len);
        if (n <= 0) return 0;
        len += (size_t)n;
    }
}

static int judge(server_t *s, const char *head, const char *body, size_t body_len)
{
    pthread_mutex_lock(&s->lock);
    int status = 200;
    s->requests++;
    if (!strstr(head, "Authorization: Bearer test-token\r\n")) {
        s->bad_auth++;
        status = 401;
    } else if (s->fail_first > 0) {
        s->fail_first--;
        status = 500;
    } else {
        json_t *v = json_loadb(body, body_len, 0, NULL);
        json_t *recs = json_object_get(v, "records");
        size_t i;
        json_t *r;
        json_array_foreach(recs, i, r)
        {
            const char *id = json_string_value(json_object_get(r, "id"));
            if (id && strcmp(id, "bad") == 0) status = 400;
        }
        if (status == 400) s->refused++;
        if (status == 200) json_array_foreach(recs, i, r)
            {
                if (s->n_ids < MAX_IDS)
                    s->ids[s->n_ids++] = strdup(json_string_value(json_object_get(r, "id")));
            }
        if (!json_is_array(recs)) status = 422;
        json_decref(v);
    }
    pthread_mutex_unlock(&s->lock);
    return status;
}

static void *serve(void *arg)
{
    server_t *s = arg;
    static char buf[4 << 20];
    while (!atomic_load(&s->stop)) {
        struct pollfd p = {.fd = s->lfd, .events = POLLIN};
        if (poll(&p, 1, 100) <= 0) continue;
        int fd = accept(s->lfd, NULL, NULL);
        if (fd < 0) continue;
        size_t off, blen, len;
        while ((len = read_request(fd, buf, sizeof buf, &s->stop, &off, &blen)) > 0) {
            buf[off - 2] = '\0'; /* head ends with its last \r\n */
            int status = judge(s, buf, buf + off, blen);
            char resp[256];
            const char *body = status == 200 ? "{\"accepted\":1,\"duplicates\":0}" : "{}";
            int n = snprintf(resp, sizeof resp,
                             "HTTP/1.1 %d X\r\nContent-Type: application/json\r\n"
                             "Content-Length: %zu\r\n\r\n%s",
                             status, strlen(body), body);
            if (write(fd, resp, (size_t)n) != n) break;
        }
        close(fd);
    }
    return NULL;
}

static void server_start(server_t *s, unsigned fail_first)
{
    memset(s, 0, sizeof *s);
    pthread_mutex_init(&s->lock, NULL);
    s->fail_first = fail_first;
    s->lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    assert_int_equal(bind(s->lfd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(s->lfd, 8), 0);
    assert_int_equal(getsockname(s->lfd, (struct sockaddr *)&a, &al), 0);
    s->port = ntohs(a.sin_port);
    assert_int_equal(pthread_create(&s->thread, NULL, serve, s), 0);
}

static void server_stop(server_t *s)
{
    atomic_store(&s->stop, true);
    pthread_join(s->thread, NULL);
    close(s->lfd);
    for (size_t i = 0; i < s->n_ids; i++)
        free(s->ids[i]);
    pthread_mutex_destroy(&s->lock);
}

static size_t ids_seen(server_t *s)
{
    pthread_mutex_lock(&s->lock);
    size_t n = s->n_ids;
    pthread_mutex_unlock(&s->lock);
    return n;
}

/* Bounded wait for a condition the shipper must reach (not a timing assertion). */
static void wait_ids(server_t *s, size_t n)
{
    for (int i = 0; i < 600 && ids_seen(s) < n; i++)
        usleep(50 * 1000);
    assert_int_equal(ids_seen(s), n);
}

static char *make_spool(size_t n_good, bool with_bad)
{
    static char dir[64];
    snprintf(dir, sizeof dir, "/tmp/pc-shipper-XXXXXX");
    assert_non_null(mkdtemp(dir));
    char err[256];
    pc_spool_t *sp = pc_spool_open(dir, 64u << 20, err, sizeof err);
    assert_non_null(sp);
    for (size_t i = 0; i < n_good; i++) {
        char rec[128];
        int len = snprintf(rec, sizeof rec, "{\"id\":\"r-%zu\",\"type\":\"request\"}", i);
        assert_true(pc_spool_append(sp, rec, (size_t)len));
        if (with_bad && i == n_good / 2) {
            assert_true(pc_spool_append(sp, "{\"id\":\"bad\"}", 12));
            assert_true(pc_spool_append(sp, "not json at all", 15));
        }
    }
    pc_spool_close(sp);
    return dir;
}

static void rm_spool(const char *dir)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

static void test_retries_then_ships_everything_once(void **state)
{
    (void)state;
    server_t s;
    server_start(&s, 3);
    char *dir = make_spool(1234, false);
    char url[64], err[256];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/", s.port);
    pc_spool_pos_t cur;
    pc__shipper_t *sh = pc__shipper_start(url, "test-token", NULL, dir, err, sizeof err);
    assert_non_null(sh);
    /* The server counts a batch before answering: wait for the shipper's side. */
    for (int i = 0; i < 600 && pc__shipper_shipped(sh) < 1234; i++)
        usleep(50 * 1000);
    assert_int_equal(pc__shipper_shipped(sh), 1234);
    assert_int_equal(ids_seen(&s), 1234);
    (void)pc__shipper_stop(sh, 1000);
    /* Batches of at most 500: 3 failures + 3 accepted posts. */
    assert_int_equal(s.requests, 6);
    assert_int_equal(s.bad_auth, 0);
    for (size_t i = 0; i < s.n_ids; i++) {
        char want[32];
        snprintf(want, sizeof want, "r-%zu", i);
        assert_string_equal(s.ids[i], want);
    }
    assert_true(pc_spool_cursor_load(dir, &cur));

    /* A restarted shipper resumes at the cursor: nothing is sent again. */
    sh = pc__shipper_start(url, "test-token", NULL, dir, err, sizeof err);
    assert_non_null(sh);
    assert_int_equal(pc__shipper_stop(sh, 2000), 0);
    assert_int_equal(s.requests, 6);
    server_stop(&s);
    rm_spool(dir);
}

static void test_cursor_stays_without_acknowledgement(void **state)
{
    (void)state;
    server_t s;
    server_start(&s, 1000000); /* never acknowledges */
    char *dir = make_spool(10, false);
    char url[64], err[256];
    snprintf(url, sizeof url, "http://127.0.0.1:%d", s.port);
    pc__shipper_t *sh = pc__shipper_start(url, "test-token", NULL, dir, err, sizeof err);
    assert_non_null(sh);
    for (int i = 0; i < 600; i++) {
        pthread_mutex_lock(&s.lock);
        unsigned r = s.requests;
        pthread_mutex_unlock(&s.lock);
        if (r >= 2) break;
        usleep(50 * 1000);
    }
    assert_int_equal(pc__shipper_stop(sh, 500), 0);
    assert_true(s.requests >= 2);
    pc_spool_pos_t cur;
    assert_false(pc_spool_cursor_load(dir, &cur));
    assert_int_equal(s.n_ids, 0);
    server_stop(&s);
    rm_spool(dir);
}

static void test_refused_record_is_isolated(void **state)
{
    (void)state;
    server_t s;
    server_start(&s, 0);
    char *dir = make_spool(40, true);
    char url[64], err[256];
    snprintf(url, sizeof url, "http://127.0.0.1:%d", s.port);
    pc__shipper_t *sh = pc__shipper_start(url, "test-token", NULL, dir, err, sizeof err);
    assert_non_null(sh);
    wait_ids(&s, 40);
    (void)pc__shipper_stop(sh, 1000);
    /* Every good record exactly once; "bad" refused, "not json" never sent. */
    for (size_t i = 0; i < 40; i++) {
        char want[32];
        snprintf(want, sizeof want, "r-%zu", i);
        size_t seen = 0;
        for (size_t j = 0; j < s.n_ids; j++)
            seen += strcmp(s.ids[j], want) == 0;
        assert_int_equal(seen, 1);
    }
    assert_true(s.refused >= 1);
    sh = pc__shipper_start(url, "test-token", NULL, dir, err, sizeof err);
    assert_non_null(sh);
    unsigned before = s.requests;
    assert_int_equal(pc__shipper_stop(sh, 2000), 0);
    assert_int_equal(s.requests, before); /* the bad record is behind the cursor now */
    server_stop(&s);
    rm_spool(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_retries_then_ships_everything_once),
        cmocka_unit_test(test_cursor_stays_without_acknowledgement),
        cmocka_unit_test(test_refused_record_is_isolated),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
