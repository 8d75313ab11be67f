/* Policy call points: allow without an engine, engine results, fail closed, test hook. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "decision/decision.h"

static bool engine_block(const pc_decision_ctx_t *ctx, pc_decision_t *out)
{
    if (ctx->stage != PC_STAGE_PRE_REQUEST) return true;
    out->action = PC_DECISION_BLOCK;
    out->block_type = PC_BLOCK_CUSTOM_MESSAGE;
    snprintf(out->message, sizeof out->message, "no DDL");
    return true;
}

static bool engine_fails(const pc_decision_ctx_t *ctx, pc_decision_t *out)
{
    (void)ctx;
    out->action = PC_DECISION_ALLOW;
    return false;
}

static void test_allow_without_engine(void **state)
{
    (void)state;
    pc_decision_set_engine(NULL);
    unsetenv("PORTCULLIS_TEST_DECISION");
    pc_decision_ctx_t c = {.stage = PC_STAGE_PRE_REQUEST, .query = "drop table t"};
    pc_decision_t d;
    pc_decision_eval(&c, &d);
    assert_int_equal(d.action, PC_DECISION_ALLOW);
    assert_int_equal(d.limit, -1);
}

static void test_engine_result_and_fail_closed(void **state)
{
    (void)state;
    unsetenv("PORTCULLIS_TEST_DECISION");
    pc_decision_ctx_t c = {.stage = PC_STAGE_PRE_REQUEST, .query = "drop table t"};
    pc_decision_t d;
    pc_decision_set_engine(engine_block);
    pc_decision_eval(&c, &d);
    assert_int_equal(d.action, PC_DECISION_BLOCK);
    assert_int_equal(d.block_type, PC_BLOCK_CUSTOM_MESSAGE);
    assert_string_equal(d.message, "no DDL");
    c.stage = PC_STAGE_SESSION;
    pc_decision_eval(&c, &d);
    assert_int_equal(d.action, PC_DECISION_ALLOW);
    pc_decision_set_engine(engine_fails);
    pc_decision_eval(&c, &d);
    assert_int_equal(d.action, PC_DECISION_BLOCK);
    assert_string_equal(d.reason, "policy evaluation failed");
    pc_decision_set_engine(NULL);
}

static void test_hook(void **state)
{
    (void)state;
#ifdef NDEBUG
    skip();
#else
    pc_decision_set_engine(NULL);
    setenv("PORTCULLIS_TEST_DECISION", "pre_request:block:secret_table", 1);
    pc_decision_ctx_t c = {.stage = PC_STAGE_PRE_REQUEST, .query = "select * from secret_table"};
    pc_decision_t d;
    pc_decision_eval(&c, &d);
    assert_int_equal(d.action, PC_DECISION_BLOCK);
    assert_int_equal(d.block_type, PC_BLOCK_FORMAL_MESSAGE);
    c.query = "select 1";
    pc_decision_eval(&c, &d);
    assert_int_equal(d.action, PC_DECISION_ALLOW);
    pc_user_t u = {.username = "bob"};
    setenv("PORTCULLIS_TEST_DECISION", "session:block_silently:bob", 1);
    pc_decision_ctx_t s = {.stage = PC_STAGE_SESSION, .user = &u};
    pc_decision_eval(&s, &d);
    assert_int_equal(d.action, PC_DECISION_BLOCK);
    assert_int_equal(d.block_type, PC_BLOCK_SILENTLY);
    unsetenv("PORTCULLIS_TEST_DECISION");
#endif
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_allow_without_engine),
        cmocka_unit_test(test_engine_result_and_fail_closed),
        cmocka_unit_test(test_hook),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
