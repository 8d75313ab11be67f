/* Sliding-window access counters: window edges, isolation by key, remote hook. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "access/access.h"

#define T0 1800000000 /* a minute boundary: 1800000000 % 60 == 0 */

static int reset(void **state)
{
    (void)state;
    pc_access_set_remote(NULL, NULL);
    pc_access_reset();
    return 0;
}

static void test_minute_edges(void **state)
{
    (void)state;
    pc_access_counts_t c;
    for (int i = 0; i < 5; i++)
        pc_access_hit("alice", "pg", T0, &c);
    assert_int_equal(c.last_minute, 5);
    pc_access_hit("alice", "pg", T0 + 59, &c); /* still within T0's minute window */
    assert_int_equal(c.last_minute, 6);
    pc_access_peek("alice", "pg", T0 + 59, &c);
    assert_int_equal(c.last_minute, 6);
    pc_access_peek("alice", "pg", T0 + 60, &c); /* T0's second left the window */
    assert_int_equal(c.last_minute, 1);
    assert_int_equal(c.last_hour, 6);
    pc_access_peek("alice", "pg", T0 + 119, &c);
    assert_int_equal(c.last_minute, 0);
    pc_access_hit("alice", "pg", T0 + 1000, &c);
    assert_int_equal(c.last_minute, 1);
    assert_int_equal(c.last_hour, 7);
}

static void test_hour_edges(void **state)
{
    (void)state;
    pc_access_counts_t c;
    pc_access_hit("bob", "pg", T0, &c);
    pc_access_hit("bob", "pg", T0 + 30 * 60, &c);
    assert_int_equal(c.last_hour, 2);
    pc_access_peek("bob", "pg", T0 + 59 * 60 + 59, &c);
    assert_int_equal(c.last_hour, 2);
    pc_access_peek("bob", "pg", T0 + 60 * 60, &c); /* T0's minute left */
    assert_int_equal(c.last_hour, 1);
    pc_access_peek("bob", "pg", T0 + 3 * 3600, &c); /* long gap: everything cleared */
    assert_int_equal(c.last_hour, 0);
    assert_int_equal(c.last_minute, 0);
    /* A clock stepping back counts into the newest bucket. */
    pc_access_hit("bob", "pg", T0 + 3 * 3600 - 5, &c);
    assert_int_equal(c.last_minute, 1);
}

static void test_keys_isolated(void **state)
{
    (void)state;
    pc_access_counts_t c;
    pc_access_hit("u", "r1", T0, &c);
    pc_access_hit("u", "r1", T0, &c);
    pc_access_hit("u", "r2", T0, &c);
    assert_int_equal(c.last_minute, 1);
    pc_access_peek("v", "r1", T0, &c);
    assert_int_equal(c.last_minute, 0);
    /* many keys: the shard tables grow */
    char name[32];
    for (int i = 0; i < 5000; i++) {
        snprintf(name, sizeof name, "user%d", i);
        pc_access_hit(name, "r", T0, &c);
        assert_int_equal(c.last_minute, 1);
    }
    pc_access_hit("user4321", "r", T0 + 1, &c);
    assert_int_equal(c.last_minute, 2);
}

static char noted[64];
static uint32_t noted_n;
static void note(const char *key, uint32_t n)
{
    snprintf(noted, sizeof noted, "%s", key);
    noted_n += n;
}
static uint32_t remote(const char *key, pc_access_window_t w)
{
    (void)key;
    return w == PC_ACCESS_LAST_MINUTE ? 10 : 100;
}

static void test_remote_hook(void **state)
{
    (void)state;
    pc_access_set_remote(note, remote);
    pc_access_counts_t c;
    pc_access_hit("alice", "pg", T0, &c);
    assert_int_equal(c.last_minute, 11);
    assert_int_equal(c.last_hour, 101);
    assert_memory_equal(noted, "alice\x1fpg", 9);
    assert_int_equal(noted_n, 1);
    pc_access_peek("alice", "pg", T0, &c); /* a peek is not published */
    assert_int_equal(noted_n, 1);
    assert_int_equal(c.last_minute, 11);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_minute_edges, reset),
        cmocka_unit_test_setup(test_hour_edges, reset),
        cmocka_unit_test_setup(test_keys_isolated, reset),
        cmocka_unit_test_setup(test_remote_hook, reset),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    reset(NULL);
    return rc;
}
