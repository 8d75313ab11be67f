/* The snapshot loader's `scram_verifier` user field (what the control plane pushes) and the
 * pushed snapshot's `revision` key. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/config.h"
#include "pg/scram.h"

static pc_snapshot_t *load(const char *yaml, char *err, size_t errlen)
{
    return pc_snapshot_load_yaml(yaml, strlen(yaml), "push", 7, err, errlen);
}

static void test_verifier_is_taken_as_is(void **state)
{
    static const uint8_t salt[] = "0123456789abcdef";
    pc_scram_verifier_t v;
    assert_true(pc_scram_verifier_from_salt("pencil", 6, salt, 16, 4096, &v));
    char text[PC_SCRAM_VERIFIER_TEXT_MAX];
    assert_true(pc_scram_verifier_format(&v, text, sizeof text) > 0);
    char yaml[512], err[512] = "";
    snprintf(yaml, sizeof yaml,
             "{\"revision\": 7, \"users\": [{\"username\": \"alice\", \"scram_verifier\": \"%s\"}]}",
             text);
    pc_snapshot_t *s = load(yaml, err, sizeof err);
    assert_non_null(s);
    assert_int_equal(s->revision, 7);
    const pc_user_t *u = pc_snapshot_user(s, "alice");
    assert_non_null(u);
    assert_true(u->has_password);
    assert_int_equal(u->scram.iterations, 4096);
    assert_int_equal(u->scram.salt_len, 16);
    assert_memory_equal(u->scram.salt, salt, 16);
    assert_memory_equal(u->scram.stored_key, v.stored_key, 32);
    assert_memory_equal(u->scram.server_key, v.server_key, 32);
    assert_true(pc_scram_verifier_check(&u->scram, "pencil", 6));
    assert_false(pc_scram_verifier_check(&u->scram, "pencil2", 7));
    pc_snapshot_unref(s);
}

static void test_postgres_text_form(void **state)
{
    /* A verifier as PostgreSQL stores it (pg_authid.rolpassword). */
    const char *yaml = "users:\n  - username: bob\n    scram_verifier: "
                       "\"SCRAM-SHA-256$4096:c2FsdHNhbHRzYWx0c2FsdA==$"
                       "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=:"
                       "ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8=\"\n";
    char err[512] = "";
    pc_snapshot_t *s = load(yaml, err, sizeof err);
    assert_non_null(s);
    const pc_user_t *u = pc_snapshot_user(s, "bob");
    assert_true(u->has_password);
    assert_int_equal(u->scram.salt_len, 16);
    assert_memory_equal(u->scram.salt, "saltsaltsaltsalt", 16);
    for (int i = 0; i < 32; i++) {
        assert_int_equal(u->scram.stored_key[i], i);
        assert_int_equal(u->scram.server_key[i], 32 + i);
    }
    pc_snapshot_unref(s);
}

static void test_bad_verifiers_are_refused(void **state)
{
    char err[512];
    const char *bad[] = {
        "users: [{username: a, scram_verifier: 'SCRAM-SHA-256$4096:c2FsdA==$xx:yy'}]\n",
        "users: [{username: a, scram_verifier: 'md5abcdef'}]\n",
        "users: [{username: a, scram_verifier: ''}]\n",
        "users: [{username: a, scram_verifier: 'SCRAM-SHA-256$0:c2FsdA==$"
        "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=:"
        "ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8='}]\n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        err[0] = '\0';
        assert_null(load(bad[i], err, sizeof err));
        assert_non_null(strstr(err, "users[0].scram_verifier: "));
        assert_null(strstr(err, "md5abcdef")); /* the value is never echoed */
    }
    err[0] = '\0';
    assert_null(load("users: [{username: a, password: pw-secret, scram_verifier: 'x'}]\n", err,
                     sizeof err));
    assert_non_null(strstr(err, "either password or scram_verifier"));
    assert_null(strstr(err, "pw-secret"));
}

static void test_revision_key_only_in_pushes(void **state)
{
    char err[512] = "";
    /* Pushed: accepted (the revision argument is authoritative). */
    pc_snapshot_t *s = load("revision: 3\nusers: []\n", err, sizeof err);
    assert_non_null(s);
    assert_int_equal(s->revision, 7);
    pc_snapshot_unref(s);
    /* Other unknown keys are still refused, with the usual message. */
    assert_null(load("revision: 3\nwidgets: []\n", err, sizeof err));
    assert_string_equal(err, "push:2: widgets: unknown key (expected one of: resources, "
                             "listeners, users, policies)");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_verifier_is_taken_as_is),
        cmocka_unit_test(test_postgres_text_form),
        cmocka_unit_test(test_bad_verifiers_are_refused),
        cmocka_unit_test(test_revision_key_only_in_pushes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
