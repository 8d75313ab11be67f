#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdbool.h>
#include <string.h>

#include "sql/classify.h"

static pc_sql_class_t *classify(const char *sql)
{
    return pc_sql_classify(sql, strlen(sql));
}

static void assert_tables(const pc_sql_stmt_t *st, const char *const *want, size_t n)
{
    /* Order follows the parse tree and is not part of the contract. */
    assert_int_equal(st->n_tables, n);
    for (size_t i = 0; i < n; i++) {
        bool found = false;
        for (size_t k = 0; k < st->n_tables; k++) found |= strcmp(st->tables[k], want[i]) == 0;
        if (!found) fail_msg("table %s missing", want[i]);
    }
}

static void test_select_tables_and_ctes(void **state)
{
    (void)state;
    pc_sql_class_t *c = classify(
        "WITH x AS (SELECT * FROM a.b) SELECT * FROM x JOIN users u ON true, s.t WHERE id IN "
        "(SELECT id FROM Orders)");
    assert_true(c->parsed);
    assert_int_equal(c->n_stmts, 1);
    assert_string_equal(c->stmts[0].statement_type, "SELECT");
    assert_string_equal(c->stmts[0].command_type, "query");
    const char *want[] = {"a.b", "public.users", "s.t", "public.orders"};
    assert_tables(&c->stmts[0], want, 4);
    pc_sql_class_unref(c);
}

static void test_multi_statement_offsets(void **state)
{
    (void)state;
    const char *sql = "BEGIN; INSERT INTO t VALUES (1); drop table foo, s.bar; COMMIT";
    pc_sql_class_t *c = classify(sql);
    assert_int_equal(c->n_stmts, 4);
    assert_string_equal(c->stmts[0].statement_type, "BEGIN");
    assert_string_equal(c->stmts[0].command_type, "tcl");
    assert_string_equal(c->stmts[1].statement_type, "INSERT");
    assert_string_equal(c->stmts[1].command_type, "dml");
    const char *ins[] = {"public.t"};
    assert_tables(&c->stmts[1], ins, 1);
    assert_string_equal(c->stmts[2].statement_type, "DROP TABLE");
    assert_string_equal(c->stmts[2].command_type, "ddl");
    const char *drop[] = {"public.foo", "s.bar"};
    assert_tables(&c->stmts[2], drop, 2);
    assert_string_equal(c->stmts[3].statement_type, "COMMIT");
    /* Each statement's text is recoverable from offset/len. */
    assert_memory_equal(sql + c->stmts[1].offset, " INSERT INTO t VALUES (1)", c->stmts[1].len);
    pc_sql_class_unref(c);
}

static void test_statement_types(void **state)
{
    (void)state;
    static const struct {
        const char *sql, *type, *command;
    } cases[] = {
        {"update t set a=1", "UPDATE", "dml"},
        {"delete from t", "DELETE", "dml"},
        {"copy t from stdin", "COPY", "dml"},
        {"create table t (a int)", "CREATE TABLE", "ddl"},
        {"create index i on t(a)", "CREATE INDEX", "ddl"},
        {"create function f() returns int as 'select 1' language sql", "CREATE FUNCTION", "ddl"},
        {"alter table t add column b int", "ALTER TABLE", "ddl"},
        {"truncate t", "TRUNCATE", "ddl"},
        {"grant select on t to bob", "GRANT", "dcl"},
        {"revoke select on t from bob", "REVOKE", "dcl"},
        {"create role r", "CREATE ROLE", "dcl"},
        {"set search_path = x", "SET", "utility"},
        {"show search_path", "SHOW", "utility"},
        {"explain select 1", "EXPLAIN", "query"},
        {"vacuum t", "VACUUM", "utility"},
        {"rollback", "ROLLBACK", "tcl"},
        {"listen chan", "LISTEN", "utility"},
        {"create materialized view v as select 1", "CREATE MATERIALIZED VIEW", "ddl"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        pc_sql_class_t *c = classify(cases[i].sql);
        assert_int_equal(c->n_stmts, 1);
        assert_string_equal(c->stmts[0].statement_type, cases[i].type);
        assert_string_equal(c->stmts[0].command_type, cases[i].command);
        pc_sql_class_unref(c);
    }
}

static void test_unparsable_is_unknown(void **state)
{
    (void)state;
    pc_sql_class_t *c = classify("SELEC * FROM nowhere");
    assert_false(c->parsed);
    assert_int_equal(c->n_stmts, 1);
    assert_string_equal(c->stmts[0].statement_type, "UNKNOWN");
    assert_int_equal(c->stmts[0].n_tables, 0);
    pc_sql_class_unref(c);

    const char nul[] = "select 1\0; drop table x";
    c = pc_sql_classify(nul, sizeof nul - 1);
    assert_false(c->parsed);
    pc_sql_class_unref(c);
}

static void test_cache_hits_and_eviction(void **state)
{
    (void)state;
    pc_sql_cache_t *cache = pc_sql_cache_new(2);
    const char *a = "select * from a", *b = "select * from b", *d = "select * from d";
    pc_sql_class_t *c1 = pc_sql_cache_classify(cache, a, strlen(a));
    pc_sql_class_t *c2 = pc_sql_cache_classify(cache, a, strlen(a));
    assert_ptr_equal(c1, c2);
    pc_sql_class_unref(c2);
    pc_sql_class_unref(pc_sql_cache_classify(cache, b, strlen(b)));
    pc_sql_class_unref(pc_sql_cache_classify(cache, d, strlen(d))); /* evicts a */
    pc_sql_cache_stats_t st;
    pc_sql_cache_get_stats(cache, &st);
    assert_int_equal(st.hits, 1);
    assert_int_equal(st.misses, 3);
    assert_int_equal(st.evictions, 1);
    assert_int_equal(st.entries, 2);
    /* The evicted class is still valid for its holder. */
    assert_string_equal(c1->stmts[0].tables[0], "public.a");
    pc_sql_class_unref(c1);
    pc_sql_cache_free(cache);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_select_tables_and_ctes),
        cmocka_unit_test(test_multi_statement_offsets),
        cmocka_unit_test(test_statement_types),
        cmocka_unit_test(test_unparsable_is_unknown),
        cmocka_unit_test(test_cache_hits_and_eviction),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
