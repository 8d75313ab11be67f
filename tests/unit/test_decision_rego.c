/* The Rego engine behind the decision call points: compile hook, combining,
 * dry-run, fail closed, per-statement judging, masking functions. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "access/access.h"
#include "core/crypto.h"
#include "decision/decision.h"

static pc_snapshot_t *load(const char *yaml, char *err, size_t errlen)
{
    err[0] = '\0';
    return pc_snapshot_load_yaml(yaml, strlen(yaml), "test.yaml", 1, err, errlen);
}

static const char *POLICIES =
    "policies:\n"
    "  - name: nodelete\n"
    "    module: |\n"
    "      package formal.v2\n"
    "      import rego.v1\n"
    "      pre_request := {\"action\": \"block\", \"reason\": \"no delete\"} if "
    "input.query.statement_type == \"DELETE\"\n"
    "  - name: dry\n"
    "    status: dry-run\n"
    "    module: |\n"
    "      package dry\n"
    "      import rego.v1\n"
    "      request := {\"action\": \"block\", \"reason\": \"dry\"} if "
    "input.query.statement_type == \"SELECT\"\n"
    "      response := {\"action\": \"filter\", \"limit\": 0}\n"
    "  - name: m1\n"
    "    module: |\n"
    "      package m1\n"
    "      import rego.v1\n"
    "      post_request contains {\"action\": \"mask\", \"type\": \"hash.no_salt\", \"columns\": "
    "[\"a\", \"b\"]}\n"
    "      post_request contains {\"action\": \"filter\", \"limit\": 7}\n"
    "  - name: m2\n"
    "    module: |\n"
    "      package m2\n"
    "      post_request = {\"action\": \"mask\", \"type\": \"redact.partial\", \"columns\": "
    "[\"b\", \"c\"]} { true }\n"
    "      session = {\"action\": \"allow\"} { true }\n"
    "  - name: m3\n"
    "    module: |\n"
    "      package m3\n"
    "      import rego.v1\n"
    "      post_request := {\"action\": \"filter\", \"limit\": 3}\n"
    "  - name: off\n"
    "    status: draft\n"
    "    module: this is not rego\n";

static void eval_at(pc_snapshot_t *s, pc_decision_stage_t st, const char *q, pc_decision_t *d,
                    const pc_decision_column_t *cols, size_t n)
{
    pc_user_t u = {.username = "alice", .type = "human"};
    pc_resource_t r = {.name = "pg-main", .technology = PC_TECH_POSTGRES};
    pc_decision_ctx_t c = {.stage = st,
                           .snapshot = s,
                           .user = &u,
                           .resource = &r,
                           .query = q,
                           .query_len = q ? strlen(q) : 0,
                           .pg_stage = "simple",
                           .columns = cols,
                           .n_columns = n};
    pc_decision_eval(&c, d);
}

static void test_combining(void **state)
{
    (void)state;
    char err[512];
    pc_snapshot_t *s = load(POLICIES, err, sizeof err);
    assert_non_null(s);
    assert_non_null(s->policy_set);
    pc_decision_t d;

    eval_at(s, PC_STAGE_PRE_REQUEST, "select 1", &d, NULL, 0);
    assert_int_equal(d.action, PC_DECISION_ALLOW); /* dry-run never enforced */
    assert_string_equal(d.policies, "[\"dry\"]");

    eval_at(s, PC_STAGE_PRE_REQUEST, "select 1; delete from t; select 2", &d, NULL, 0);
    assert_int_equal(d.action, PC_DECISION_BLOCK); /* one statement blocks the message */
    assert_string_equal(d.reason, "no delete");
    assert_non_null(strstr(d.policies, "\"nodelete\""));

    eval_at(s, PC_STAGE_PRE_REQUEST, "insert into t values (1)", &d, NULL, 0);
    assert_int_equal(d.action, PC_DECISION_ALLOW);
    assert_string_equal(d.policies, "");

    pc_decision_column_t cols[] = {{.name = "a"}, {.name = "b"}, {.name = "c"}, {.name = "d"}};
    eval_at(s, PC_STAGE_POST_REQUEST, "select a, b, c, d from t", &d, cols, 4);
    assert_int_equal(d.action, PC_DECISION_MASK);
    assert_int_equal(d.limit, 3); /* smallest of the enforced limits (dry-run's 0 is not) */
    assert_int_equal(d.n_masked, 3);
    pc_mask_type_t want[] = {PC_MASK_HASH_NO_SALT, PC_MASK_REDACT_PARTIAL, PC_MASK_REDACT_PARTIAL};
    for (size_t i = 0; i < d.n_masked; i++)
        assert_int_equal(d.masked[i].type, want[d.masked[i].column]);
    assert_non_null(strstr(d.masked_columns, "\"a\""));
    assert_non_null(strstr(d.masked_columns, "\"c\""));
    assert_null(strstr(d.masked_columns, "\"d\""));

    eval_at(s, PC_STAGE_SESSION, NULL, &d, NULL, 0);
    assert_int_equal(d.action, PC_DECISION_ALLOW);
    pc_snapshot_unref(s);
}

static void test_refused_and_fail_closed(void **state)
{
    (void)state;
    char err[512];
    pc_snapshot_t *s = load("policies:\n  - name: bad\n    module: |\n"
                            "      package p\n      allow := {\n",
                            err, sizeof err);
    assert_null(s);
    /* file:row:col: message */
    assert_non_null(strstr(err, "test.yaml:"));
    assert_non_null(strstr(err, ": "));

    s = load("policies:\n  - name: conflict\n    module: |\n"
             "      package p\n      import rego.v1\n"
             "      pre_request := {\"action\": \"allow\"} if true\n"
             "      pre_request := {\"action\": \"allow\", \"x\": 1} if true\n"
             "      session := 7\n",
             err, sizeof err);
    assert_non_null(s);
    pc_decision_t d;
    eval_at(s, PC_STAGE_PRE_REQUEST, "select 1", &d, NULL, 0);
    assert_int_equal(d.action, PC_DECISION_BLOCK);
    assert_string_equal(d.reason, "policy evaluation failed: conflict");
    eval_at(s, PC_STAGE_SESSION, NULL, &d, NULL, 0); /* not a decision: fail closed */
    assert_int_equal(d.action, PC_DECISION_BLOCK);
    pc_snapshot_unref(s);
}

static void test_unknown_sql_still_judged(void **state)
{
    (void)state;
    char err[512];
    pc_snapshot_t *s = load("policies:\n  - name: u\n    module: |\n"
                            "      package p\n      import rego.v1\n"
                            "      pre_request := {\"action\": \"block\", \"reason\": \"u\"} if "
                            "input.query.statement_type == \"UNKNOWN\"\n",
                            err, sizeof err);
    assert_non_null(s);
    pc_decision_t d;
    eval_at(s, PC_STAGE_PRE_REQUEST, "selec oops from", &d, NULL, 0);
    assert_int_equal(d.action, PC_DECISION_BLOCK);
    eval_at(s, PC_STAGE_PRE_REQUEST, "select 1", &d, NULL, 0);
    assert_int_equal(d.action, PC_DECISION_ALLOW);
    pc_snapshot_unref(s);
}

static void test_shared_classification_keeps_tables(void **state)
{
    (void)state;
    char err[512];
    pc_snapshot_t *s = load("policies:\n  - name: t1\n    module: |\n"
                            "      package p\n      import rego.v1\n"
                            "      pre_request := {\"action\": \"block\"} if "
                            "\"public.t1\" in input.query.tables\n",
                            err, sizeof err);
    assert_non_null(s);
    pc_decision_t d;
    const char *allowed[] = {"select * from t2 where x = 1", "select * from \"t2\" where x = 5",
                             "select 1 from t0 where x = 7", "select 'from t1 9' from t2"};
    const char *blocked[] = {"select * from t1 where x = 2", "select * from \"t1\" where x = 3",
                             "select 1 from t1 where x = 8", "select 'from t2 9' from t1"};
    for (int round = 0; round < 2; round++) {
        for (size_t i = 0; i < PC_ARRAY_LEN(allowed); i++) {
            eval_at(s, PC_STAGE_PRE_REQUEST, allowed[i], &d, NULL, 0);
            assert_int_equal(d.action, PC_DECISION_ALLOW);
            eval_at(s, PC_STAGE_PRE_REQUEST, blocked[i], &d, NULL, 0);
            assert_int_equal(d.action, PC_DECISION_BLOCK);
        }
    }
    pc_snapshot_unref(s);
}

static void test_mask_order(void **state)
{
    (void)state;
    assert_true(pc_decision_mask_cmp(PC_MASK_NULLIFY, PC_MASK_REDACT_FULL) > 0);
    assert_true(pc_decision_mask_cmp(PC_MASK_HASH_WITH_SALT, PC_MASK_REDACT_PARTIAL) > 0);
    assert_true(pc_decision_mask_cmp(PC_MASK_REDACT_PARTIAL, PC_MASK_HASH_NO_SALT) > 0);
    assert_true(pc_decision_mask_cmp(PC_MASK_NULLIFY, PC_MASK_HASH_WITH_SALT) >= 0);
    assert_int_equal(pc_decision_mask_parse("redact.full", 11), PC_MASK_REDACT_FULL);
    assert_int_equal(pc_decision_mask_parse("redact", 6), PC_MASK_NONE);

    pc_decision_t acc, one;
    memset(&acc, 0, sizeof acc);
    acc.limit = -1;
    memset(&one, 0, sizeof one);
    one.limit = 4;
    one.action = PC_DECISION_MASK;
    one.n_masked = 1;
    one.masked[0].column = 2;
    one.masked[0].type = PC_MASK_REDACT_FULL;
    pc_decision_combine(&acc, &one);
    one.masked[0].type = PC_MASK_HASH_NO_SALT; /* weaker: ignored */
    one.limit = 9;
    pc_decision_combine(&acc, &one);
    assert_int_equal(acc.masked[0].type, PC_MASK_REDACT_FULL);
    assert_int_equal(acc.limit, 4);
    one.action = PC_DECISION_BLOCK;
    snprintf(one.reason, sizeof one.reason, "stop");
    pc_decision_combine(&acc, &one);
    assert_int_equal(acc.action, PC_DECISION_BLOCK);
    assert_string_equal(acc.reason, "stop");

    /* name lists: taken whole into an empty list, merged without duplicates after */
    pc_decision_t a2, o2;
    memset(&a2, 0, sizeof a2);
    a2.limit = -1;
    memset(&o2, 0, sizeof o2);
    o2.limit = -1;
    o2.action = PC_DECISION_FILTER;
    o2.limit = 1;
    snprintf(o2.policies, sizeof o2.policies, "[\"p\\\"q\",\"b\"]");
    snprintf(o2.masked_columns, sizeof o2.masked_columns, "[\"c1\"]");
    pc_decision_combine(&a2, &o2);
    assert_string_equal(a2.policies, "[\"p\\\"q\",\"b\"]");
    assert_string_equal(a2.masked_columns, "[\"c1\"]");
    snprintf(o2.policies, sizeof o2.policies, "[\"b\",\"c\"]");
    pc_decision_combine(&a2, &o2);
    assert_string_equal(a2.policies, "[\"p\\\"q\",\"b\",\"c\"]");
    assert_string_equal(a2.masked_columns, "[\"c1\"]");
}

static int32_t mask(pc_mask_type_t t, uint32_t oid, const char *v, char *out)
{
    static const uint8_t salt[32] = {1, 2, 3};
    return pc_decision_mask_value(t, oid, (const uint8_t *)v, v ? (int32_t)strlen(v) : -1, salt,
                                  (uint8_t *)out, 256);
}

static void test_mask_values(void **state)
{
    (void)state;
    char out[257];
    int32_t n;
    assert_int_equal(mask(PC_MASK_NULLIFY, 25, "abc", out), -1);
    assert_int_equal(mask(PC_MASK_REDACT_FULL, 25, NULL, out), -1); /* NULL stays NULL */
    n = mask(PC_MASK_REDACT_FULL, 1043, "secret", out);
    assert_int_equal(n, 4);
    assert_memory_equal(out, "****", 4);
    assert_int_equal(mask(PC_MASK_REDACT_FULL, 23, "42", out), -1); /* int4: NULL */
    n = mask(PC_MASK_REDACT_PARTIAL, 25, "4111111111111234", out);
    out[n] = '\0';
    assert_string_equal(out, "************1234");
    n = mask(PC_MASK_REDACT_PARTIAL, 25, "abc", out); /* 4 or fewer: nothing to hide */
    out[n] = '\0';
    assert_string_equal(out, "abc");
    n = mask(PC_MASK_REDACT_PARTIAL, 25, "h\xc3\xa9llo w\xc3\xb6rld", out); /* UTF-8 */
    out[n] = '\0';
    assert_string_equal(out, "*******\xc3\xb6rld");
    n = mask(PC_MASK_HASH_NO_SALT, 25, "abc", out);
    out[n] = '\0';
    assert_string_equal(out, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    n = mask(PC_MASK_HASH_WITH_SALT, 25, "abc", out);
    assert_int_equal(n, 64);
    out[n] = '\0';
    assert_string_not_equal(out,
                            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    assert_int_equal(mask(PC_MASK_HASH_WITH_SALT, 20, "1", out), -1);
    n = mask(PC_MASK_NONE, 23, "42", out);
    assert_int_equal(n, 2);

    pc_resource_t r1 = {.name = "a"}, r2 = {.name = "b"};
    r1.credentials.password = "pw";
    r2.credentials.password = "pw";
    uint8_t s1[32], s2[32], s1b[32];
    pc_decision_resource_salt(&r1, s1);
    pc_decision_resource_salt(&r2, s2);
    pc_decision_resource_salt(&r1, s1b);
    assert_memory_not_equal(s1, s2, 32);
    assert_memory_equal(s1, s1b, 32);
}

size_t pc__decision_literal_key(const char *q, size_t n, char *out, size_t cap);

static void key_is(const char *q, const char *want)
{
    char out[512];
    size_t n = pc__decision_literal_key(q, strlen(q), out, sizeof out);
    if (!want) {
        assert_int_equal(n, 0);
        return;
    }
    out[n] = '\0';
    assert_string_equal(out, want);
}

static void test_literal_key(void **state)
{
    (void)state;
    key_is("select * from t where id = 42", "select * from t where id = 0");
    key_is("select 0", NULL); /* nothing changes */
    /* quoted text, identifiers, parameters and odd numerals stay as written */
    key_is("select 'a1', \"t1\", \"1\", $1, 1e5, 0x1F, 1.5, 1_000, t2.c3", NULL);
    key_is("select 7 /* 8 /* 9 */ 10 */, 11 -- 12\n, 13",
           "select 0 /* 8 /* 9 */ 10 */, 0 -- 12\n, 0");
    key_is("select E'\\'' , 5", "select E'\\'' , 0");
    key_is("select 'it''s 3', 4", "select 'it''s 3', 0");
    key_is("select $q$ 5 $q$, 6, a$1", "select $q$ 5 $q$, 0, a$1");
    key_is("select 'open 5", NULL); /* unterminated: exact text */
    key_is("select /* open 5", NULL);
    key_is("select $x$ 5", NULL);
}

/* input.columns[].table: known when the judged query is one statement reading
 * one table and the server says the column comes from a table (OID set). */
static void test_column_table(void **state)
{
    (void)state;
    char err[512];
    pc_snapshot_t *s =
        load("policies:\n  - name: bytable\n    module: |\n"
             "      package bytable\n      import rego.v1\n"
             "      post_request := {\"action\": \"mask\", \"type\": \"nullify\", "
             "\"columns\": cols} if {\n"
             "        cols := [c.name | some c in input.columns; c.table == \"public.people\"]\n"
             "        count(cols) > 0\n      }\n",
             err, sizeof err);
    assert_non_null(s);
    pc_decision_t d;
    pc_decision_column_t cols[] = {{.name = "id", .table_oid = 16384},
                                   {.name = "email", .table_oid = 16384},
                                   {.name = "n", .table_oid = 0}};
    eval_at(s, PC_STAGE_POST_REQUEST, "select id, email, 1 as n from people where id > 7", &d, cols,
            3);
    assert_int_equal(d.action, PC_DECISION_MASK);
    assert_int_equal(d.n_masked, 2); /* not the expression column */
    assert_string_equal(d.masked_columns, "[\"id\",\"email\"]");

    const char *unknown[] = {
        "select p.id, p.email, 1 as n from people p join orders o on o.pid = p.id", /* 2 tables */
        "select 1; select id, email, 1 as n from people", /* which statement's result? */
        "select id, email, 1 as n from other.people",     /* another table */
    };
    for (size_t i = 0; i < PC_ARRAY_LEN(unknown); i++) {
        eval_at(s, PC_STAGE_POST_REQUEST, unknown[i], &d, cols, 3);
        assert_int_equal(d.action, PC_DECISION_ALLOW);
    }
    /* a table the caller knows wins */
    pc_decision_column_t named[] = {{.name = "id", .table = "public.people", .table_oid = 1}};
    eval_at(s, PC_STAGE_POST_REQUEST, "select 1; select 2", &d, named, 1);
    assert_int_equal(d.action, PC_DECISION_MASK);
    pc_snapshot_unref(s);
}

/* The seed policy of design §4 verbatim: input.bucket.access_count counts this
 * user's requests to this bucket only, while input.user.access_count counts
 * every request to the resource. */
static void s3_request(pc_snapshot_t *s, const char *user, const char *bucket, pc_decision_t *d)
{
    pc_user_t u = {.username = (char *)user, .type = "human"};
    pc_resource_t r = {.name = "s3-main", .technology = PC_TECH_S3};
    pc_decision_ctx_t c = {.stage = PC_STAGE_PRE_REQUEST,
                           .snapshot = s,
                           .user = &u,
                           .resource = &r,
                           .bucket = bucket,
                           .object_key = "k",
                           .method = "GET",
                           .operation = "GetObject",
                           .path = "/k"};
    pc_decision_eval(&c, d);
}

static void test_bucket_access_count(void **state)
{
    (void)state;
    pc_access_reset();
    char err[512];
    pc_snapshot_t *s = load("policies:\n  - name: seed\n    module: |\n"
                            "      package formal.v2\n"
                            "      import future.keywords.if\n"
                            "      pre_request := { \"action\": \"block\", \"type\": "
                            "\"block_with_formal_message\" } if {\n"
                            "        input.bucket.name == \"sensitive-bucket\"\n"
                            "        input.bucket.access_count.last_minute > 5\n"
                            "      }\n"
                            "  - name: resource-wide\n    module: |\n"
                            "      package wide\n      import rego.v1\n"
                            "      pre_request := {\"action\": \"block\", \"reason\": \"wide\"} if "
                            "input.user.access_count.last_minute > 20\n",
                            err, sizeof err);
    assert_non_null(s);
    pc_decision_t d;
    /* Accesses to another bucket do not count towards sensitive-bucket. */
    for (int i = 0; i < 8; i++) {
        s3_request(s, "alice", "public-bucket", &d);
        assert_int_equal(d.action, PC_DECISION_ALLOW);
    }
    for (int i = 1; i <= 5; i++) {
        s3_request(s, "alice", "sensitive-bucket", &d);
        assert_int_equal(d.action, PC_DECISION_ALLOW);
    }
    s3_request(s, "alice", "sensitive-bucket", &d); /* the 6th */
    assert_int_equal(d.action, PC_DECISION_BLOCK);
    assert_string_equal(d.policies, "[\"seed\"]");
    s3_request(s, "bob", "sensitive-bucket", &d); /* another user */
    assert_int_equal(d.action, PC_DECISION_ALLOW);
    /* The resource-wide count saw all 14 of alice's requests: 7 more pass it. */
    for (int i = 0; i < 6; i++) s3_request(s, "alice", "public-bucket", &d);
    assert_int_equal(d.action, PC_DECISION_ALLOW);
    s3_request(s, "alice", "public-bucket", &d); /* the 21st to the resource */
    assert_int_equal(d.action, PC_DECISION_BLOCK);
    assert_string_equal(d.reason, "wide");
    pc_snapshot_unref(s);
    pc_access_reset();
}

int main(void)
{
    pc_decision_rego_install();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_combining),
        cmocka_unit_test(test_column_table),
        cmocka_unit_test(test_refused_and_fail_closed),
        cmocka_unit_test(test_unknown_sql_still_judged),
        cmocka_unit_test(test_mask_order),
        cmocka_unit_test(test_mask_values),
        cmocka_unit_test(test_literal_key),
        cmocka_unit_test(test_shared_classification_keeps_tables),
        cmocka_unit_test(test_bucket_access_count),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
