/* config_dir watching: fingerprint semantics and the debounced change callback. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "connector/configdir.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void write_file(const char *dir, const char *name, const char *text)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static uint64_t fp(const char *dir)
{
    uint64_t v = 0;
    assert_true(pc__configdir_fingerprint(dir, &v));
    return v;
}

static void test_fingerprint(void **state)
{
    char dir[] = "/tmp/pc-configdir-XXXXXX";
    assert_non_null(mkdtemp(dir));
    uint64_t empty = fp(dir);
    write_file(dir, "a.yaml", "users: []\n");
    uint64_t one = fp(dir);
    assert_true(one != empty);
    assert_true(fp(dir) == one); /* stable */

    write_file(dir, ".a.yaml.swp", "editor junk");
    assert_true(fp(dir) == one); /* hidden files do not count */

    write_file(dir, "a.yaml", "users: [] \n");
    assert_true(fp(dir) != one); /* content counts */
    write_file(dir, "a.yaml", "users: []\n");
    assert_true(fp(dir) == one);

    /* Same bytes under another name is another configuration. */
    char p1[512], p2[512];
    snprintf(p1, sizeof p1, "%s/a.yaml", dir);
    snprintf(p2, sizeof p2, "%s/b.yaml", dir);
    assert_int_equal(rename(p1, p2), 0);
    assert_true(fp(dir) != one);

    uint64_t v;
    char missing[600];
    snprintf(missing, sizeof missing, "%s/none", dir);
    assert_false(pc__configdir_fingerprint(missing, &v));

    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

static int changes;

static void on_changed(void *arg, uint64_t fingerprint)
{
    changes++;
}

static void run_for_ms(uv_loop_t *loop, int ms)
{
    for (int i = 0; i < ms; i++) {
        uv_run(loop, UV_RUN_NOWAIT);
        usleep(1000);
    }
}

static void test_watch_debounces_and_ignores_no_ops(void **state)
{
    char dir[] = "/tmp/pc-configdir-XXXXXX";
    assert_non_null(mkdtemp(dir));
    write_file(dir, "a.yaml", "users: []\n");
    uv_loop_t loop;
    uv_loop_init(&loop);
    char err[256];
    pc__configdir_t *cd = pc__configdir_watch(&loop, dir, on_changed, NULL, err, sizeof err);
    assert_non_null(cd);
    pc__configdir_set_applied(cd, fp(dir));

    /* A burst of writes: reported (coalesced by the debounce, which a slow
     * machine may split, so only "at least once" is asserted). */
    for (int i = 0; i < 5; i++) {
        char text[64];
        snprintf(text, sizeof text, "users: [] # %d\n", i);
        write_file(dir, "a.yaml", text);
        run_for_ms(&loop, 10);
    }
    for (int i = 0; i < 3000 && changes == 0; i++) run_for_ms(&loop, 1);
    run_for_ms(&loop, 300);
    int base = changes;
    assert_true(base >= 1);

    /* Rewriting identical bytes is no change, even after the events fire. */
    write_file(dir, "a.yaml", "users: [] # 4\n");
    run_for_ms(&loop, 400);
    assert_int_equal(changes, base);

    /* check_now with nothing new: no change either. */
    pc__configdir_check_now(cd);
    assert_int_equal(changes, base);

    write_file(dir, "b.rego", "package x\n");
    for (int i = 0; i < 3000 && changes == base; i++) run_for_ms(&loop, 1);
    assert_int_equal(changes, base + 1);

    pc__configdir_stop(cd);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

static void test_watch_missing_dir_fails(void **state)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    char err[256];
    assert_null(pc__configdir_watch(&loop, "/nonexistent/pc-dir", on_changed, NULL, err,
                                    sizeof err));
    assert_non_null(strstr(err, "config_dir"));
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fingerprint),
        cmocka_unit_test(test_watch_debounces_and_ignores_no_ops),
        cmocka_unit_test(test_watch_missing_dir_fails),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
