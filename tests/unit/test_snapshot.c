/* Configuration snapshots: merge of files, .rego policies, validation, refs, verifiers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/config.h"
#include "pg/scram.h"

static char dir[256];

static int setup(void **state)
{
    snprintf(dir, sizeof dir, "/tmp/pc_test_snapshot_XXXXXX");
    assert_non_null(mkdtemp(dir));
    return 0;
}

static int teardown(void **state)
{
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
    pc_snapshot_set_compile_hook(NULL);
    return 0;
}

static void write_file(const char *name, const char *text)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void remove_file(const char *name)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    unlink(path);
}

static pc_snapshot_t *load(const char *yaml, char *err, size_t errlen)
{
    return pc_snapshot_load_yaml(yaml, strlen(yaml), "objects.yaml", 1, err, errlen);
}

static void expect_error(const char *yaml, const char *message)
{
    char err[512] = "";
    pc_snapshot_t *s = load(yaml, err, sizeof err);
    if (s) pc_snapshot_unref(s);
    assert_null(s);
    assert_string_equal(err, message);
}

#define PG_RES                                                                                     \
    "resources:\n"                                                                                 \
    "  - {name: pg-main, technology: postgres, hostname: 127.0.0.1, port: 5432,\n"                 \
    "     database: app, credentials: {username: app, password: upw}, tls: require}\n"

static void test_full_snapshot(void **state)
{
    const char *yaml =
        PG_RES "  - {name: s3-main, technology: s3, endpoint: 'http://127.0.0.1:4569',\n"
               "     region: eu-west-1, credentials: {access_key_id: AK, secret_access_key: SK}}\n"
               "  - {name: bq-main, technology: bigquery, credentials: {token: T}}\n"
               "listeners:\n"
               "  - {name: pg, port: 5433, resource: pg-main, tls: required}\n"
               "  - {name: s3, port: 9000, resource: s3-main, hostname: s3.local}\n"
               "users:\n"
               "  - username: alice\n"
               "    email: alice@example.com\n"
               "    groups: [analysts, admins]\n"
               "    password: pencil\n"
               "    access_keys: [{id: AKIAALICE, secret: alice-secret}]\n"
               "  - {username: bot, type: machine}\n"
               "policies:\n"
               "  - {name: p1, status: dry-run, module: 'package p1'}\n";
    char err[512] = "";
    pc_snapshot_t *s = load(yaml, err, sizeof err);
    assert_non_null(s);
    assert_string_equal(err, "");
    assert_int_equal(s->revision, 1);
    assert_int_equal(s->n_resources, 3);
    const pc_resource_t *r = pc_snapshot_resource(s, "pg-main");
    assert_non_null(r);
    assert_int_equal(r->technology, PC_TECH_POSTGRES);
    assert_string_equal(r->hostname, "127.0.0.1");
    assert_int_equal(r->port, 5432);
    assert_string_equal(r->database, "app");
    assert_string_equal(r->credentials.username, "app");
    assert_string_equal(r->credentials.password, "upw");
    assert_int_equal(r->tls, PC_UPSTREAM_TLS_REQUIRE);
    r = pc_snapshot_resource(s, "s3-main");
    assert_string_equal(r->endpoint, "http://127.0.0.1:4569");
    assert_string_equal(r->region, "eu-west-1");
    assert_string_equal(r->credentials.secret_access_key, "SK");
    r = pc_snapshot_resource(s, "bq-main");
    assert_string_equal(r->endpoint, "https://bigquery.googleapis.com");
    assert_string_equal(r->credentials.token, "T");
    assert_null(pc_snapshot_resource(s, "nope"));

    const pc_listener_cfg_t *l = pc_snapshot_listener(s, "pg");
    assert_int_equal(l->port, 5433);
    assert_int_equal(l->tls, PC_LISTENER_TLS_REQUIRED);
    assert_null(l->hostname);
    l = pc_snapshot_listener(s, "s3");
    assert_int_equal(l->tls, PC_LISTENER_TLS_OPTIONAL);
    assert_string_equal(l->hostname, "s3.local");

    const pc_user_t *u = pc_snapshot_user(s, "alice");
    assert_non_null(u);
    assert_string_equal(u->email, "alice@example.com");
    assert_string_equal(u->type, "human");
    assert_int_equal(u->n_groups, 2);
    assert_string_equal(u->groups[1], "admins");
    assert_true(u->has_password);
    assert_int_equal(u->scram.iterations, 4096);
    assert_int_equal(u->scram.salt_len, 16);
    assert_true(pc_scram_verifier_check(&u->scram, "pencil", 6));
    assert_false(pc_scram_verifier_check(&u->scram, "pencil2", 7));
    const pc_access_key_t *k;
    assert_ptr_equal(pc_snapshot_user_by_access_key(s, "AKIAALICE", &k), u);
    assert_string_equal(k->secret, "alice-secret");
    assert_null(pc_snapshot_user_by_access_key(s, "AKIAOTHER", &k));
    assert_null(k);
    u = pc_snapshot_user(s, "bot");
    assert_string_equal(u->type, "machine");
    assert_false(u->has_password);
    assert_null(pc_snapshot_user(s, "carol"));

    assert_int_equal(s->n_policies, 1);
    assert_int_equal(s->policies[0].status, PC_POLICY_DRY_RUN);
    assert_string_equal(s->policies[0].module, "package p1");
    assert_string_equal(s->policies[0].origin, "objects.yaml");

    /* Reference counting. */
    assert_ptr_equal(pc_snapshot_ref(s), s);
    assert_int_equal(atomic_load(&s->refcount), 2);
    pc_snapshot_unref(s);
    assert_int_equal(atomic_load(&s->refcount), 1);
    pc_snapshot_unref(s);
    pc_snapshot_unref(NULL);
}

static void test_no_plaintext_password_kept(void **state)
{
    /* The password text must not survive anywhere in the user object. */
    char err[512];
    pc_snapshot_t *s =
        load("users: [{username: u, password: Zebra-Plaintext-77}]\n", err, sizeof err);
    assert_non_null(s);
    const pc_user_t *u = pc_snapshot_user(s, "u");
    assert_true(u->has_password);
    const char *needle = "Zebra-Plaintext-77";
    assert_null(memmem(u, sizeof *u, needle, strlen(needle)));
    assert_null(memmem(&u->scram, sizeof u->scram, needle, strlen(needle)));
    pc_snapshot_unref(s);

    /* A ready verifier in PostgreSQL's format is taken as is. */
    s = load("users: [{username: u, password: 'SCRAM-SHA-256$4096:NQ6CX/MmgtYnl5XwYN5o/Q==$"
             "rZnn6sZ53w3L4jJfFkLZ0QnCa/6iS8/BdH0RF2mhgIc=:"
             "9yRvznfZPcjveKXplKp7LFrZU6C7/UwsgjKg/GLN494='}]\n",
             err, sizeof err);
    assert_non_null(s);
    assert_true(pc_scram_verifier_check(&pc_snapshot_user(s, "u")->scram, "secret", 6));
    pc_snapshot_unref(s);
    expect_error("users:\n  - {username: u, password: 'SCRAM-SHA-256$4096:xx'}\n",
                 "objects.yaml:2: users[0].password: invalid SCRAM-SHA-256 verifier");
}

static void test_validation_errors(void **state)
{
    expect_error("resource: []\n", "objects.yaml:1: resource: unknown key (expected one of: "
                                   "resources, listeners, users, policies)");
    expect_error("resources: {name: x}\n",
                 "objects.yaml:1: resources: expected a list, got a mapping");
    expect_error("resources:\n  - name: x\n",
                 "objects.yaml:2: resources[0].technology: required (postgres|s3|bigquery)");
    expect_error("resources:\n  - {name: x, technology: mysql}\n",
                 "objects.yaml:2: resources[0].technology: invalid value \"mysql\" (expected "
                 "postgres|s3|bigquery)");
    expect_error("resources:\n  - {name: x, technology: postgres, port: 1, credentials: "
                 "{username: u}}\n",
                 "objects.yaml:2: resources[0].hostname: required");
    expect_error("resources:\n  - {name: x, technology: postgres, hostname: h, credentials: "
                 "{username: u}}\n",
                 "objects.yaml:2: resources[0].port: required");
    expect_error("resources:\n  - {name: x, technology: postgres, hostname: h, port: 70000}\n",
                 "objects.yaml:2: resources[0].port: \"70000\" out of range 1..65535");
    expect_error("resources:\n  - {name: x, technology: postgres, hostname: h, port: 1}\n",
                 "objects.yaml:2: resources[0].credentials: required (username, password)");
    expect_error("resources:\n  - {name: x, technology: postgres, hostname: h, port: 1,\n"
                 "     credentials: {password: p}}\n",
                 "objects.yaml:3: resources[0].credentials.username: required");
    expect_error("resources:\n  - {name: x, technology: postgres, hostname: h, port: 1,\n"
                 "     credentials: {username: u, token: t}}\n",
                 "objects.yaml:3: resources[0].credentials.token: unknown key (expected one of: "
                 "username, password)");
    expect_error("resources:\n  - {name: x, technology: s3, hostname: h,\n"
                 "     credentials: {access_key_id: a, secret_access_key: b}}\n",
                 "objects.yaml:2: resources[0].hostname: not valid for technology \"s3\"");
    expect_error("resources:\n  - {name: x, technology: postgres, hostname: h, port: 1,\n"
                 "     tls: sometimes, credentials: {username: u}}\n",
                 "objects.yaml:3: resources[0].tls: invalid value \"sometimes\" (expected "
                 "disable|require|verify-full)");
    expect_error("resources:\n  - {name: 'bad name', technology: bigquery, credentials: {token: "
                 "t}}\n",
                 "objects.yaml:2: resources[0].name: invalid name \"bad name\" (letters, digits, "
                 "'-', '_', '.'; 1-128 characters)");
    expect_error("resources:\n  - {name: x, technology: bigquery, credentials: {token: t},\n"
                 "     endpoint: 'bigquery.googleapis.com'}\n",
                 "objects.yaml:3: resources[0].endpoint: invalid URL "
                 "\"bigquery.googleapis.com\"");
    expect_error("resources:\n  - {name: x, technology: postgres, hostname: h, port: 1,\n"
                 "     tls: require, tls_ca_file: ca.pem, credentials: {username: u}}\n",
                 "objects.yaml:3: resources[0].tls_ca_file: only used with tls: verify-full");
    expect_error("resources:\n  - {name: x, technology: postgres, hostname: h, port: 1,\n"
                 "     database: '', credentials: {username: u}}\n",
                 "objects.yaml:3: resources[0].database: must not be empty");
    expect_error(PG_RES "listeners:\n  - {name: pg, port: 5433, resource: nope}\n",
                 "objects.yaml:5: listeners[0].resource: unknown resource \"nope\"");
    expect_error(PG_RES "listeners:\n  - {name: pg, port: 5433, resource: pg-main, tls: yes}\n",
                 "objects.yaml:5: listeners[0].tls: invalid value \"yes\" (expected "
                 "optional|required|disabled)");
    expect_error(PG_RES "listeners:\n  - {name: pg, resource: pg-main}\n",
                 "objects.yaml:5: listeners[0].port: required");
    expect_error(PG_RES "listeners:\n  - {name: pg, port: 1, resource: pg-main, hostname: h}\n",
                 "objects.yaml:5: listeners[0].hostname: only valid for s3 resources");
    expect_error(PG_RES "listeners:\n"
                        "  - {name: a, port: 5433, resource: pg-main}\n"
                        "  - {name: b, port: 5433, resource: pg-main}\n",
                 "objects.yaml:6: listeners[1].port: port 5433 already used by listener \"a\" "
                 "(objects.yaml:5)");
    expect_error(PG_RES "listeners:\n"
                        "  - {name: a, port: 5433, resource: pg-main}\n"
                        "  - {name: a, port: 5434, resource: pg-main}\n",
                 "objects.yaml:6: listeners[1]: duplicate listener \"a\" (first defined at "
                 "objects.yaml:5)");
    expect_error("users:\n  - {username: alice}\n  - {username: alice}\n",
                 "objects.yaml:3: users[1].username: duplicate user \"alice\" (first defined at "
                 "objects.yaml:2)");
    expect_error("users:\n  - {username: a, access_keys: [{id: K, secret: s}]}\n"
                 "  - {username: b, access_keys: [{id: K, secret: t}]}\n",
                 "objects.yaml:3: users[1].access_keys[0].id: access key id \"K\" is also used "
                 "by user \"a\"");
    expect_error("users:\n  - {username: a, access_keys: [{id: K}]}\n",
                 "objects.yaml:2: users[0].access_keys[0].secret: required");
    expect_error("users:\n  - {username: a, type: robot}\n",
                 "objects.yaml:2: users[0].type: invalid value \"robot\" (expected "
                 "human|machine)");
    expect_error("users:\n  - {username: a, groups: analysts}\n",
                 "objects.yaml:2: users[0].groups: expected a list, got a scalar");
    expect_error("users:\n  - {username: a, password: ''}\n",
                 "objects.yaml:2: users[0].password: must not be empty");
    expect_error("users:\n  - {username: 'a b'}\n",
                 "objects.yaml:2: users[0].username: invalid user name \"a b\" (no spaces or "
                 "control characters, 1-256 bytes)");
    expect_error("users:\n  - {email: x}\n", "objects.yaml:2: users[0].username: required");
    expect_error("users:\n  - {username: a, pasword: x}\n",
                 "objects.yaml:2: users[0].pasword: unknown key (expected one of: username, "
                 "email, type, groups, password, scram_verifier, access_keys)");
    expect_error("users:\n  - alice\n",
                 "objects.yaml:2: users[0]: expected a mapping, got a scalar");
    expect_error("policies:\n  - {name: p, status: on}\n",
                 "objects.yaml:2: policies[0].status: invalid value \"on\" (expected "
                 "active|dry-run|draft)");
    expect_error("policies:\n  - {name: p}\n",
                 "objects.yaml:2: policies[0].module: required (Rego source text)");
    expect_error("policies:\n  - {name: p, module: a}\n  - {name: p, module: b}\n",
                 "objects.yaml:3: policies[1]: duplicate policy \"p\" (first defined at "
                 "objects.yaml:2)");
}

static void test_secrets_not_in_errors(void **state)
{
    char err[512];
    const char *secrets[] = {
        "resources:\n  - {name: x, technology: postgres, hostname: h, port: 1,\n"
        "     credentials: {username: u, password: [TopSecret1]}}\n",
        "resources:\n  - {name: x, technology: s3, credentials: {access_key_id: a, "
        "secret_access_key: {v: TopSecret1}}}\n",
        "users:\n  - {username: a, password: TopSecret1, bogus: 1}\n",
        "users:\n  - {username: a, password: 'SCRAM-SHA-256$TopSecret1'}\n",
        "users:\n  - {username: a, access_keys: [{id: K, secret: [TopSecret1]}]}\n",
        NULL,
    };
    for (size_t i = 0; secrets[i]; i++) {
        err[0] = '\0';
        assert_null(load(secrets[i], err, sizeof err));
        assert_true(err[0] != '\0');
        assert_null(strstr(err, "TopSecret1"));
    }
}

static void test_dir_merge_and_rego(void **state)
{
    char err[512] = "";
    write_file("10-resources.yaml", PG_RES);
    write_file("20-listeners.yml", "listeners:\n  - {name: pg, port: 5433, resource: pg-main}\n");
    write_file("30-users.yaml", "users:\n  - {username: alice, password: a}\n"
                                "---\n"
                                "users:\n  - {username: bob, password: b}\n");
    write_file("40-empty.yaml", "");
    write_file("deny_all.rego", "package portcullis\ndefault allow := false\n");
    write_file("README.md", "not config");
    write_file(".hidden.yaml", "garbage: [");
    pc_snapshot_t *s = pc_snapshot_load_dir(dir, 7, err, sizeof err);
    assert_string_equal(err, "");
    assert_non_null(s);
    assert_int_equal(s->revision, 7);
    assert_int_equal(s->n_resources, 1);
    assert_int_equal(s->n_listeners, 1);
    assert_int_equal(s->n_users, 2);
    assert_true(pc_scram_verifier_check(&pc_snapshot_user(s, "bob")->scram, "b", 1));
    assert_int_equal(s->n_policies, 1);
    assert_string_equal(s->policies[0].name, "deny_all");
    assert_int_equal(s->policies[0].status, PC_POLICY_ACTIVE);
    assert_string_equal(s->policies[0].module, "package portcullis\ndefault allow := false\n");
    char origin[512];
    snprintf(origin, sizeof origin, "%s/deny_all.rego", dir);
    assert_string_equal(s->policies[0].origin, origin);
    pc_snapshot_unref(s);

    /* An error in one file names that file and line, and a duplicate names both files. */
    write_file("50-dup.yaml", "# comment\nusers:\n  - {username: alice}\n");
    assert_null(pc_snapshot_load_dir(dir, 8, err, sizeof err));
    char expect[1024];
    snprintf(expect, sizeof expect,
             "%s/50-dup.yaml:3: users[0].username: duplicate user \"alice\" (first defined at "
             "%s/30-users.yaml:2)",
             dir, dir);
    assert_string_equal(err, expect);
    remove_file("50-dup.yaml");

    /* Listener in an earlier file than its resource still resolves (checks run after merge). */
    write_file("05-listener.yaml", "listeners:\n  - {name: pg2, port: 6000, resource: pg-main}\n");
    s = pc_snapshot_load_dir(dir, 9, err, sizeof err);
    assert_non_null(s);
    assert_int_equal(s->n_listeners, 2);
    pc_snapshot_unref(s);
    remove_file("05-listener.yaml");

    /* A policy named in YAML and by a .rego file collides. */
    write_file("60-pol.yaml", "policies:\n  - {name: deny_all, module: x}\n");
    assert_null(pc_snapshot_load_dir(dir, 10, err, sizeof err));
    assert_non_null(strstr(err, "duplicate policy \"deny_all\""));
    remove_file("60-pol.yaml");

    write_file("70-bad.yaml", "users: [\n");
    assert_null(pc_snapshot_load_dir(dir, 11, err, sizeof err));
    snprintf(expect, sizeof expect, "%s/70-bad.yaml:2: invalid YAML:", dir);
    assert_memory_equal(err, expect, strlen(expect));
    remove_file("70-bad.yaml");

    assert_null(pc_snapshot_load_dir("/nonexistent/dir", 1, err, sizeof err));
    assert_string_equal(err, "/nonexistent/dir: cannot open directory: No such file or directory");
}

static void test_dir_env_expansion(void **state)
{
    char err[512] = "";
    setenv("PC_TEST_PG_PASSWORD", "from-env", 1);
    write_file("a.yaml", "resources:\n"
                         "  - {name: pg, technology: postgres, hostname: h, port: 5432,\n"
                         "     credentials: {username: u, password: '${PC_TEST_PG_PASSWORD}'}}\n");
    pc_snapshot_t *s = pc_snapshot_load_dir(dir, 1, err, sizeof err);
    assert_non_null(s);
    assert_string_equal(pc_snapshot_resource(s, "pg")->credentials.password, "from-env");
    pc_snapshot_unref(s);
    /* Pushed snapshots (load_yaml) are not expanded: the text is taken literally. */
    const char *pushed = "users: [{username: '${PC_TEST_PG_PASSWORD}'}]\n";
    s = pc_snapshot_load_yaml(pushed, strlen(pushed), "push", 2, err, sizeof err);
    assert_non_null(s);
    assert_non_null(pc_snapshot_user(s, "${PC_TEST_PG_PASSWORD}"));
    pc_snapshot_unref(s);
    remove_file("a.yaml");

    /* tls_ca_file is relative to its file's directory and must be readable. */
    write_file("b.yaml",
               "resources:\n"
               "  - {name: pg, technology: postgres, hostname: h, port: 5432,\n"
               "     tls: verify-full, tls_ca_file: ca.pem, credentials: {username: u}}\n");
    assert_null(pc_snapshot_load_dir(dir, 1, err, sizeof err));
    char expect[1024];
    snprintf(expect, sizeof expect,
             "%s/b.yaml:3: resources[0].tls_ca_file: cannot read \"%s/ca.pem\"", dir, dir);
    assert_string_equal(err, expect);
    write_file("ca.pem", "-----BEGIN CERTIFICATE-----\n");
    s = pc_snapshot_load_dir(dir, 1, err, sizeof err);
    assert_non_null(s);
    snprintf(expect, sizeof expect, "%s/ca.pem", dir);
    assert_string_equal(pc_snapshot_resource(s, "pg")->tls_ca_file, expect);
    pc_snapshot_unref(s);
    remove_file("b.yaml");
    remove_file("ca.pem");
}

static int hook_calls;
static bool policy_freed;

static void fake_policy_free(void *p)
{
    policy_freed = true;
    free(p);
}

static bool compile_hook(pc_snapshot_t *s, char *err, size_t errlen)
{
    hook_calls++;
    for (size_t i = 0; i < s->n_policies; i++)
        if (strstr(s->policies[i].module, "syntax error")) {
            snprintf(err, errlen, "%s:1:1: rego_parse_error: unexpected token",
                     s->policies[i].origin ? s->policies[i].origin : "?");
            return false;
        }
    s->policy_set = malloc(16);
    s->policy_free = fake_policy_free;
    return true;
}

static void test_compile_hook(void **state)
{
    char err[512] = "";
    pc_snapshot_set_compile_hook(compile_hook);
    hook_calls = 0;
    policy_freed = false;
    pc_snapshot_t *s = load("policies: [{name: p, module: 'package ok'}]\n", err, sizeof err);
    assert_non_null(s);
    assert_int_equal(hook_calls, 1);
    assert_non_null(s->policy_set);
    pc_snapshot_unref(s);
    assert_true(policy_freed);

    s = load("policies: [{name: p, module: 'syntax error'}]\n", err, sizeof err);
    assert_null(s);
    assert_int_equal(hook_calls, 2);
    assert_string_equal(err, "objects.yaml:1:1: rego_parse_error: unexpected token");

    /* Validation errors stop the load before the hook runs. */
    s = load("policies: [{name: p}]\n", err, sizeof err);
    assert_null(s);
    assert_int_equal(hook_calls, 2);
    pc_snapshot_set_compile_hook(NULL);
}

static void test_many_users_index(void **state)
{
    /* Thousands of users with ready verifiers load fast and are found through the index. */
    enum { N = 3000 };
    size_t cap = (size_t)N * 200 + 64, pos = 0;
    char *yaml = malloc(cap);
    pos += (size_t)snprintf(yaml + pos, cap - pos, "users:\n");
    for (int i = 0; i < N; i++)
        pos += (size_t)snprintf(yaml + pos, cap - pos,
                                "  - {username: user%d, access_keys: [{id: KEY%d, secret: s%d}]}\n",
                                i, i, i);
    char err[512] = "";
    pc_snapshot_t *s = pc_snapshot_load_yaml(yaml, pos, "many.yaml", 1, err, sizeof err);
    free(yaml);
    assert_non_null(s);
    assert_int_equal(s->n_users, N);
    for (int i = 0; i < N; i += 97) {
        char name[32], key[32];
        snprintf(name, sizeof name, "user%d", i);
        snprintf(key, sizeof key, "KEY%d", i);
        const pc_user_t *u = pc_snapshot_user(s, name);
        assert_non_null(u);
        assert_string_equal(u->username, name);
        const pc_access_key_t *k;
        assert_ptr_equal(pc_snapshot_user_by_access_key(s, key, &k), u);
    }
    assert_null(pc_snapshot_user(s, "user3000"));
    pc_snapshot_unref(s);

    /* 200 users with passwords go through the parallel hashing path. */
    cap = 200 * 64 + 16;
    pos = 0;
    yaml = malloc(cap);
    pos += (size_t)snprintf(yaml + pos, cap - pos, "users:\n");
    for (int i = 0; i < 200; i++)
        pos +=
            (size_t)snprintf(yaml + pos, cap - pos, "  - {username: u%d, password: pw%d}\n", i, i);
    s = pc_snapshot_load_yaml(yaml, pos, "pw.yaml", 1, err, sizeof err);
    free(yaml);
    assert_non_null(s);
    assert_true(pc_scram_verifier_check(&pc_snapshot_user(s, "u0")->scram, "pw0", 3));
    assert_true(pc_scram_verifier_check(&pc_snapshot_user(s, "u199")->scram, "pw199", 5));
    assert_false(pc_scram_verifier_check(&pc_snapshot_user(s, "u199")->scram, "pw0", 3));
    pc_snapshot_unref(s);
}

/* A reload with an unchanged password reuses the verifier; a changed one gets a new one. */
static void test_reload_reuses_verifiers(void **state)
{
    char err[512];
    pc_snapshot_t *a = load("users: [{username: u, password: one}, {username: v, password: one}]\n",
                            err, sizeof err);
    pc_snapshot_t *b = load("users: [{username: u, password: one}, {username: v, password: two}]\n",
                            err, sizeof err);
    assert_non_null(a);
    assert_non_null(b);
    const pc_user_t *au = pc_snapshot_user(a, "u"), *bu = pc_snapshot_user(b, "u");
    const pc_user_t *av = pc_snapshot_user(a, "v"), *bv = pc_snapshot_user(b, "v");
    /* Same user and password: same salt and keys. */
    assert_memory_equal(&au->scram, &bu->scram, sizeof au->scram);
    /* Same password, other user: its own salt. */
    assert_memory_not_equal(au->scram.salt, av->scram.salt, au->scram.salt_len);
    /* Changed password: new verifier that accepts only the new password. */
    assert_memory_not_equal(av->scram.salt, bv->scram.salt, av->scram.salt_len);
    assert_true(pc_scram_verifier_check(&bv->scram, "two", 3));
    assert_false(pc_scram_verifier_check(&bv->scram, "one", 3));
    pc_snapshot_unref(a);
    pc_snapshot_unref(b);
}

/* Many resources and listeners: duplicate and reference checks on large sets. */
static void test_many_listeners(void **state)
{
    enum { N = 5000 };
    size_t cap = (size_t)N * 260 + 256, pos = 0;
    char *yaml = malloc(cap);
    pos += (size_t)snprintf(yaml + pos, cap - pos, "resources:\n");
    for (int i = 0; i < N; i++)
        pos +=
            (size_t)snprintf(yaml + pos, cap - pos,
                             "  - {name: r%d, technology: bigquery, credentials: {token: t}}\n", i);
    pos += (size_t)snprintf(yaml + pos, cap - pos, "listeners:\n");
    for (int i = 0; i < N; i++)
        pos += (size_t)snprintf(yaml + pos, cap - pos, "  - {name: l%d, port: %d, resource: r%d}\n",
                                i, 10000 + i, N - 1 - i);
    char err[512] = "";
    pc_snapshot_t *s = pc_snapshot_load_yaml(yaml, pos, "big.yaml", 1, err, sizeof err);
    assert_non_null(s);
    assert_int_equal(s->n_listeners, N);
    pc_snapshot_unref(s);
    /* One more listener on an existing port, and then one naming a missing resource. */
    size_t base = pos;
    pos += (size_t)snprintf(yaml + pos, cap - pos, "  - {name: dup, port: 10007, resource: r1}\n");
    assert_null(pc_snapshot_load_yaml(yaml, pos, "big.yaml", 1, err, sizeof err));
    char expect[256];
    snprintf(expect, sizeof expect,
             "big.yaml:%d: listeners[%d].port: port 10007 already used by listener \"l7\" "
             "(big.yaml:%d)",
             2 * N + 3, N, N + 3 + 7);
    assert_string_equal(err, expect);
    pos = base;
    pos += (size_t)snprintf(yaml + pos, cap - pos, "  - {name: l3, port: 9999, resource: r1}\n");
    assert_null(pc_snapshot_load_yaml(yaml, pos, "big.yaml", 1, err, sizeof err));
    snprintf(expect, sizeof expect,
             "big.yaml:%d: listeners[%d]: duplicate listener \"l3\" (first defined at big.yaml:%d)",
             2 * N + 3, N, N + 3 + 3);
    assert_string_equal(err, expect);
    pos = base;
    pos +=
        (size_t)snprintf(yaml + pos, cap - pos, "  - {name: lx, port: 9999, resource: r%d}\n", N);
    assert_null(pc_snapshot_load_yaml(yaml, pos, "big.yaml", 1, err, sizeof err));
    snprintf(expect, sizeof expect, "big.yaml:%d: listeners[%d].resource: unknown resource \"r%d\"",
             2 * N + 3, N, N);
    assert_string_equal(err, expect);
    free(yaml);
}

/* YAML 1.1 merge keys for shared defaults. */
static void test_merge_keys(void **state)
{
    char err[512] = "";
    pc_snapshot_t *s = load("resources:\n"
                            "  - &base {name: a, technology: postgres, hostname: db, port: 5432,\n"
                            "           credentials: {username: app}}\n"
                            "  - {<<: *base, name: b, port: 6432}\n"
                            "  - <<: [{name: c}, *base]\n"
                            "    hostname: other\n",
                            err, sizeof err);
    assert_non_null(s);
    const pc_resource_t *b = pc_snapshot_resource(s, "b"), *c = pc_snapshot_resource(s, "c");
    assert_non_null(b);
    assert_string_equal(b->hostname, "db");
    assert_int_equal(b->port, 6432);
    assert_string_equal(b->credentials.username, "app");
    assert_non_null(c);
    assert_string_equal(c->hostname, "other");
    assert_int_equal(c->port, 5432);
    pc_snapshot_unref(s);
    expect_error("users:\n  - {<<: 5, username: a}\n",
                 "objects.yaml:2: the value of a merge key (<<) must be a mapping or a list of "
                 "mappings");
    /* A merged key that is wrong is reported where it was written. */
    expect_error("users:\n  - &u {username: a, tpye: human}\n  - {<<: *u, username: b}\n",
                 "objects.yaml:2: users[0].tpye: unknown key (expected one of: username, email, "
                 "type, groups, password, scram_verifier, access_keys)");
}

static void test_empty(void **state)
{
    /* A snapshot built by hand (no index) is still searchable. */
    pc_user_t user = {.username = "hand"};
    pc_resource_t res = {.name = "r"};
    pc_listener_cfg_t lis = {.name = "l"};
    pc_snapshot_t hand = {.users = &user,
                          .n_users = 1,
                          .resources = &res,
                          .n_resources = 1,
                          .listeners = &lis,
                          .n_listeners = 1};
    assert_ptr_equal(pc_snapshot_user(&hand, "hand"), &user);
    assert_null(pc_snapshot_user(&hand, "x"));
    assert_ptr_equal(pc_snapshot_resource(&hand, "r"), &res);
    assert_ptr_equal(pc_snapshot_listener(&hand, "l"), &lis);
    assert_null(pc_snapshot_listener(&hand, "r"));

    char err[64];
    pc_snapshot_t *s = pc_snapshot_empty(3);
    assert_int_equal(s->revision, 3);
    assert_null(pc_snapshot_user(s, "x"));
    assert_null(pc_snapshot_user_by_access_key(s, "x", NULL));
    pc_snapshot_unref(s);
    s = load("", err, sizeof err);
    assert_non_null(s);
    assert_int_equal(s->n_users + s->n_resources + s->n_listeners + s->n_policies, 0);
    pc_snapshot_unref(s);
    s = load("resources: ~\nusers: []\n", err, sizeof err);
    assert_non_null(s);
    pc_snapshot_unref(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_full_snapshot),
        cmocka_unit_test(test_no_plaintext_password_kept),
        cmocka_unit_test(test_validation_errors),
        cmocka_unit_test(test_secrets_not_in_errors),
        cmocka_unit_test(test_dir_merge_and_rego),
        cmocka_unit_test(test_dir_env_expansion),
        cmocka_unit_test(test_compile_hook),
        cmocka_unit_test(test_many_users_index),
        cmocka_unit_test(test_reload_reuses_verifiers),
        cmocka_unit_test(test_many_listeners),
        cmocka_unit_test(test_merge_keys),
        cmocka_unit_test(test_empty),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
