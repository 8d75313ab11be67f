/* Policy call points; see decision.h. */
#include "decision/decision.h"

#include "core/metrics.h"

#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

static _Atomic(pc_decision_engine_fn) engine;

void pc_decision_set_engine(pc_decision_engine_fn fn)
{
    atomic_store(&engine, fn);
}

const char *pc_decision_stage_name(pc_decision_stage_t s)
{
    switch (s) {
    case PC_STAGE_SESSION:
        return "session";
    case PC_STAGE_PRE_REQUEST:
        return "pre_request";
    case PC_STAGE_POST_REQUEST:
        return "post_request";
    }
    return "unknown";
}

#ifndef NDEBUG
/* Debug-build test hook, see decision.h. */
static bool test_hook(const pc_decision_ctx_t *ctx, pc_decision_t *out)
{
    const char *spec = getenv("PORTCULLIS_TEST_DECISION");
    if (!spec) return false;
    const char *c1 = strchr(spec, ':');
    const char *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
    if (!c2) return false;
    const char *stage = pc_decision_stage_name(ctx->stage);
    if (strlen(stage) != (size_t)(c1 - spec) || strncmp(spec, stage, (size_t)(c1 - spec)) != 0)
        return false;
    const char *needle = c2 + 1;
    bool hit = false;
    if (ctx->stage == PC_STAGE_SESSION)
        hit = ctx->user && strcmp(ctx->user->username, needle) == 0;
    else if (ctx->query)
        hit = *needle && strstr(ctx->query, needle) != NULL;
    if (!hit) return false;
    const char *act = c1 + 1;
    size_t act_len = (size_t)(c2 - c1 - 1);
    if (act_len > 6 && strncmp(act, "limit=", 6) == 0) {
        out->action = PC_DECISION_FILTER;
        out->limit = strtoll(act + 6, NULL, 10);
        snprintf(out->policies, sizeof out->policies, "[\"test\"]");
        return true;
    }
    if (act_len > 5 && strncmp(act, "mask=", 5) == 0) {
        out->action = PC_DECISION_MASK;
        for (size_t i = 0; i < ctx->n_columns && out->n_masked < PC_DECISION_MAX_MASKED; i++) {
            if (strlen(ctx->columns[i].name) == act_len - 5 &&
                strncmp(ctx->columns[i].name, act + 5, act_len - 5) == 0) {
                out->masked[out->n_masked].column = (uint16_t)i;
                out->masked[out->n_masked].type = PC_MASK_NULLIFY;
                out->n_masked++;
            }
        }
        snprintf(out->policies, sizeof out->policies, "[\"test\"]");
        return true;
    }
    out->action = PC_DECISION_BLOCK;
    bool silent = (size_t)(c2 - c1 - 1) == strlen("block_silently") &&
                  strncmp(c1 + 1, "block_silently", (size_t)(c2 - c1 - 1)) == 0;
    out->block_type = silent ? PC_BLOCK_SILENTLY : PC_BLOCK_FORMAL_MESSAGE;
    snprintf(out->reason, sizeof out->reason, "blocked by test policy at %s", stage);
    snprintf(out->policies, sizeof out->policies, "[\"test\"]");
    return true;
}
#endif

/*
 * portcullis_requests_total{decision}: a request is counted once, when it is
 * judged before going upstream (allow / block); a result set that a policy
 * masked, filtered or withheld is counted again under that decision.
 */
static void count_request(pc_decision_stage_t stage, pc_decision_action_t action)
{
    static const char *const names[] = {
        [PC_DECISION_ALLOW] = "allow",
        [PC_DECISION_BLOCK] = "block",
        [PC_DECISION_MASK] = "mask",
        [PC_DECISION_FILTER] = "other",
    };
    if (stage == PC_STAGE_PRE_REQUEST || (stage == PC_STAGE_POST_REQUEST && action != PC_DECISION_ALLOW))
        pc_metrics_request(names[action]);
}

void pc_decision_eval(const pc_decision_ctx_t *ctx, pc_decision_t *out)
{
    memset(out, 0, sizeof *out);
    out->action = PC_DECISION_ALLOW;
    out->limit = -1;
#ifndef NDEBUG
    if (test_hook(ctx, out)) return;
#endif
    pc_decision_engine_fn fn = atomic_load(&engine);
    if (!fn) return;
    uint64_t started = pc_now_mono_ns();
    if (!fn(ctx, out)) {
        memset(out, 0, sizeof *out);
        out->action = PC_DECISION_BLOCK;
        out->block_type = PC_BLOCK_FORMAL_MESSAGE;
        out->limit = -1;
        snprintf(out->reason, sizeof out->reason, "policy evaluation failed");
    }
    pc_metrics_policy_eval_observe(pc_decision_stage_name(ctx->stage),
                                   pc_now_mono_ns() - started);
    count_request(ctx->stage, out->action);
}
