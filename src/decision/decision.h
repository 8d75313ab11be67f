/*
 * Policy call points, protocol-agnostic (design §4).
 *
 * Protocol modules describe each decision point in a pc_decision_ctx_t and call
 * pc_decision_eval(); the policy engine plugs in with pc_decision_set_engine().
 * The Rego engine is wired in a later issue: until an engine is registered,
 * every call point returns ALLOW. That is the intended behaviour of this
 * stage of the product, not a placeholder result: the call points, the
 * result type and the enforcement of block results in each protocol module
 * are real and tested (see PORTCULLIS_TEST_DECISION below).
 *
 * Ownership: everything in the context is borrowed for the duration of the
 * call. The result is a plain value filled by the engine; strings are copied
 * into its fixed buffers (truncated), so it needs no freeing.
 *
 * Threads: pc_decision_eval runs on the worker thread of the session; an
 * engine must be thread-safe and must not block on I/O.
 */
#ifndef PC_DECISION_DECISION_H
#define PC_DECISION_DECISION_H

#include "core/common.h"
#include "core/config.h"

typedef enum {
    PC_STAGE_SESSION,      /* after authentication, before upstream is contacted */
    PC_STAGE_PRE_REQUEST,  /* before each query / API request goes upstream */
    PC_STAGE_POST_REQUEST, /* on each result set */
} pc_decision_stage_t;

/** One result column (post_request). */
typedef struct pc_decision_column {
    const char *name;
    const char *data_type; /* e.g. "text", "int4"; NULL if unknown */
    uint32_t type_oid;     /* PostgreSQL type OID, 0 elsewhere */
    const char *table;     /* NULL if unknown */
    uint32_t table_oid;
} pc_decision_column_t;

typedef struct pc_decision_ctx {
    pc_decision_stage_t stage;
    /* The worker's newest snapshot: its compiled policy set is what judges
     * (a policy edit applies from the next statement of open sessions). */
    const pc_snapshot_t *snapshot;
    /* From the snapshot the session started with (kept alive by it). */
    const pc_user_t *user;
    const pc_resource_t *resource;
    const pc_listener_cfg_t *listener;
    const char *client_ip;
    const char *db_name;
    const char *application;
    bool tls;
    uint64_t session_id;
    const char *instance; /* connector instance name; NULL if unset */
    /* postgres / bigquery */
    const char *query; /* NUL-terminated */
    size_t query_len;
    const char *pg_stage; /* "simple", "parse", "execute" */
    /* post_request */
    const pc_decision_column_t *columns;
    size_t n_columns;
    /* s3 */
    const char *bucket;
    const char *object_key;
    const char *method;
    const char *operation;
    const char *path;
} pc_decision_ctx_t;

typedef enum {
    PC_DECISION_ALLOW,
    PC_DECISION_BLOCK,
    PC_DECISION_MASK,
    PC_DECISION_FILTER,
} pc_decision_action_t;

typedef enum {
    PC_BLOCK_FORMAL_MESSAGE, /* "block_with_formal_message" */
    PC_BLOCK_CUSTOM_MESSAGE, /* "block_with_custom_message": message goes to the client */
    PC_BLOCK_SILENTLY,       /* "block_silently": close the connection */
} pc_block_type_t;

typedef enum {
    PC_MASK_NONE,
    PC_MASK_HASH_NO_SALT,
    PC_MASK_REDACT_PARTIAL,
    PC_MASK_REDACT_FULL,
    PC_MASK_HASH_WITH_SALT,
    PC_MASK_NULLIFY,
} pc_mask_type_t;

/* More masked columns than this block the result set (fail closed). */
#define PC_DECISION_MAX_MASKED 64

typedef struct pc_decision {
    pc_decision_action_t action;
    pc_block_type_t block_type;
    char reason[256];
    char message[256];
    /* mask: per column index of the result set */
    size_t n_masked;
    struct {
        uint16_t column;
        pc_mask_type_t type;
    } masked[PC_DECISION_MAX_MASKED];
    /* filter: at most `limit` rows reach the client; -1 = no limit */
    int64_t limit;
    char policies[256];       /* JSON array text of the policies that decided, "" = none */
    char masked_columns[256]; /* JSON array text of masked column names, "" = none */
} pc_decision_t;

/** Engine: fill *out (pre-set to ALLOW). Returning false means evaluation failed: blocked. */
typedef bool (*pc_decision_engine_fn)(const pc_decision_ctx_t *ctx, pc_decision_t *out);

/** Register the engine (at start-up, before workers run). NULL = none (allow). */
void pc_decision_set_engine(pc_decision_engine_fn fn);

/**
 * Judge one call point. Always returns a well-formed decision; an engine
 * failure is a block (fail closed) with reason "policy evaluation failed".
 *
 * Test hook (debug builds only, compiled out with NDEBUG): the environment
 * variable PORTCULLIS_TEST_DECISION="stage:action:needle" forces a block for
 * the given stage ("session", "pre_request") when needle occurs in the query
 * text (pre_request, post_request) or equals the username (session); action
 * is "block", "block_silently", and at post_request "limit=N" (filter) or
 * "mask=COLUMN" (nullify). It exists to prove the enforcement paths end to end.
 */
void pc_decision_eval(const pc_decision_ctx_t *ctx, pc_decision_t *out);

const char *pc_decision_stage_name(pc_decision_stage_t s);

/*
 * The Rego engine (engine.c). pc_decision_rego_install() registers, once at
 * start-up before workers run, the snapshot compile hook (every non-draft
 * policy compiled as its own policy set; a snapshot with a policy that does
 * not compile is refused with "file:row:col: message") and the engine.
 *
 * Per policy, the package named by its `package` line is queried for the
 * stage's rule: data.<pkg>.session; data.<pkg>.pre_request (else .request);
 * data.<pkg>.post_request (else .response). A rule's value is one decision
 * object or an array/set of them. Decisions of every active policy are
 * combined (block wins; per column the strongest mask; the smallest limit);
 * dry-run policies are evaluated and logged ("policy dry-run decision") and
 * named in `policies`, never enforced. An evaluation error, or a value that is
 * not a decision, blocks with reason "policy evaluation failed: <name>"
 * (logged with the error) unless the policy is dry-run.
 *
 * pre_request judges each statement of a multi-statement query separately
 * (classification through a per-thread src/sql cache) and combines them, so
 * any blocked statement blocks the message. Access counts (src/access) are
 * incremented at pre_request of "simple" and "execute" stages (and every S3 /
 * BigQuery request), read without counting elsewhere.
 *
 * Each worker thread keeps its own pc_eval per policy and one input arena
 * (thread-local, freed at thread exit); nothing else is allocated per request.
 */
void pc_decision_rego_install(void);

/** Fold one decision into an accumulated one (design §4 combining rules). */
void pc_decision_combine(pc_decision_t *acc, const pc_decision_t *one);

/** Mask strength order (nullify = hash.with_salt > redact.* > hash.no_salt): <0, 0, >0. */
int pc_decision_mask_cmp(pc_mask_type_t a, pc_mask_type_t b);

/** "nullify", "redact.full", ... -> type; PC_MASK_NONE if unknown. */
pc_mask_type_t pc_decision_mask_parse(const char *s, size_t n);

/** True for PostgreSQL types whose text and binary formats are both the raw
 *  characters (text, varchar, bpchar, name, citext-like unknown 705). */
bool pc_decision_pg_text_type(uint32_t type_oid);

/**
 * Mask one value: v[0..vlen) (vlen < 0: NULL) of a column of PostgreSQL type
 * type_oid, in text or binary format. Writes the replacement into out (cap
 * bytes; max(vlen, 64) always suffices: redaction never grows a value) and
 * returns its length, or -1 for NULL (non-text types, except nullify which is
 * NULL for all). redact.partial replaces every UTF-8 character but the last 4
 * with one '*'.
 * salt (32 bytes) is used by hash.with_salt only: HMAC-SHA-256(salt, value).
 */
int32_t pc_decision_mask_value(pc_mask_type_t t, uint32_t type_oid, const uint8_t *v, int32_t vlen,
                               const uint8_t salt[32], uint8_t *out, size_t cap);

/** The per-resource salt of hash.with_salt: SHA-256 of a fixed label, the
 *  resource name and its upstream credential secrets, so it is stable across
 *  instances and restarts and cannot be recomputed without the secret. */
void pc_decision_resource_salt(const pc_resource_t *r, uint8_t out[32]);

#endif
