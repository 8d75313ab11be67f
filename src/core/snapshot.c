/*
 * Configuration snapshots (design §3): built from YAML documents and .rego
 * files, validated whole, then immutable and shared by reference count.
 *
 * A load goes: parse every file into a builder (types, enums, required keys,
 * per-file checks) -> cross-object checks (duplicates, listener -> resource)
 * -> SCRAM verifiers from plaintext passwords (wiped right after) -> lookup
 * index -> compile hook. Any failure discards everything built so far.
 */
#include "core/config.h"
#include "core/yaml_tree.h"
#include "core/crypto.h"
#include "pg/scram.h"

#include <dirent.h>
#include <stdarg.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Where an object came from, for "first defined at" messages. */
typedef struct origin {
    size_t file; /* index into builder.files */
    unsigned line;
    size_t index; /* position in its file's list, as error paths show it */
} origin_t;

typedef struct builder {
    pc_snapshot_t *s;
    size_t cap_resources, cap_listeners, cap_users, cap_policies;
    origin_t *res_origin, *lis_origin, *lis_port_origin, *lis_res_origin, *user_origin, *pol_origin;
    char **passwords; /* plaintext per user until hashed; NULL = none */
    char **files;
    size_t n_files;
    bool local; /* config_dir files: ${VAR} expansion and file checks */
} builder_t;

static _Atomic(pc_snapshot_compile_fn) compile_hook;

void pc_snapshot_set_compile_hook(pc_snapshot_compile_fn fn)
{
    atomic_store(&compile_hook, fn);
}

/* ---------- freeing ---------- */

static void free_resource(pc_resource_t *r)
{
    free(r->name);
    free(r->hostname);
    free(r->database);
    free(r->tls_ca_file);
    free(r->endpoint);
    free(r->region);
    free(r->credentials.username);
    pc__free_secret(r->credentials.password);
    free(r->credentials.access_key_id);
    pc__free_secret(r->credentials.secret_access_key);
    pc__free_secret(r->credentials.token);
}

static void free_user(pc_user_t *u)
{
    free(u->username);
    free(u->email);
    free(u->type);
    for (size_t i = 0; i < u->n_groups; i++)
        free(u->groups[i]);
    free(u->groups);
    for (size_t i = 0; i < u->n_access_keys; i++) {
        free(u->access_keys[i].id);
        pc__free_secret(u->access_keys[i].secret);
    }
    free(u->access_keys);
    explicit_bzero(&u->scram, sizeof u->scram);
}

/* Open-addressing table of positions (+1; 0 = empty) keyed by an object's name. */
typedef struct name_table {
    uint32_t *slots;
    size_t mask;
} name_table_t;

struct pc__snapshot_index {
    name_table_t users, resources, listeners;
    struct key_slot {
        uint32_t user, key; /* user + 1 (0 = empty), index in access_keys */
    } * key_slots;
    size_t key_mask;
};

static void snapshot_free(pc_snapshot_t *s)
{
    if (s->policy_free) s->policy_free(s->policy_set);
    for (size_t i = 0; i < s->n_resources; i++)
        free_resource(&s->resources[i]);
    free(s->resources);
    for (size_t i = 0; i < s->n_listeners; i++) {
        free(s->listeners[i].name);
        free(s->listeners[i].resource);
        free(s->listeners[i].hostname);
    }
    free(s->listeners);
    for (size_t i = 0; i < s->n_users; i++)
        free_user(&s->users[i]);
    free(s->users);
    for (size_t i = 0; i < s->n_policies; i++) {
        free(s->policies[i].name);
        free(s->policies[i].module);
        free(s->policies[i].origin);
    }
    free(s->policies);
    if (s->index) {
        free(s->index->users.slots);
        free(s->index->resources.slots);
        free(s->index->listeners.slots);
        free(s->index->key_slots);
        free(s->index);
    }
    free(s);
}

pc_snapshot_t *pc_snapshot_ref(pc_snapshot_t *s)
{
    if (s) atomic_fetch_add_explicit(&s->refcount, 1, memory_order_relaxed);
    return s;
}

void pc_snapshot_unref(pc_snapshot_t *s)
{
    if (!s) return;
    unsigned prev = atomic_fetch_sub_explicit(&s->refcount, 1, memory_order_acq_rel);
    PC_BUG_ON(prev == 0);
    if (prev == 1) snapshot_free(s);
}

/* ---------- lookups ---------- */

static uint64_t hash_str(const char *s)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h ^ (h >> 29);
}

typedef const char *(*name_at_fn)(const pc_snapshot_t *s, size_t i);

static const char *user_name_at(const pc_snapshot_t *s, size_t i)
{
    return s->users[i].username;
}

static const char *resource_name_at(const pc_snapshot_t *s, size_t i)
{
    return s->resources[i].name;
}

static const char *listener_name_at(const pc_snapshot_t *s, size_t i)
{
    return s->listeners[i].name;
}

/* Position of name among n objects, or n; scans when there is no table (a
 * snapshot built by hand). */
static size_t find_name(const pc_snapshot_t *s, const name_table_t *t, size_t n, name_at_fn at,
                        const char *name)
{
    if (!t || !t->slots) {
        for (size_t i = 0; i < n; i++)
            if (strcmp(at(s, i), name) == 0) return i;
        return n;
    }
    for (size_t h = hash_str(name) & t->mask;; h = (h + 1) & t->mask) {
        uint32_t slot = t->slots[h];
        if (!slot) return n;
        if (strcmp(at(s, slot - 1), name) == 0) return slot - 1;
    }
}

const pc_resource_t *pc_snapshot_resource(const pc_snapshot_t *s, const char *name)
{
    if (!s || !name) return NULL;
    size_t i = find_name(s, s->index ? &s->index->resources : NULL, s->n_resources,
                         resource_name_at, name);
    return i < s->n_resources ? &s->resources[i] : NULL;
}

const pc_listener_cfg_t *pc_snapshot_listener(const pc_snapshot_t *s, const char *name)
{
    if (!s || !name) return NULL;
    size_t i = find_name(s, s->index ? &s->index->listeners : NULL, s->n_listeners,
                         listener_name_at, name);
    return i < s->n_listeners ? &s->listeners[i] : NULL;
}

const pc_user_t *pc_snapshot_user(const pc_snapshot_t *s, const char *username)
{
    if (!s || !username) return NULL;
    size_t i = find_name(s, s->index ? &s->index->users : NULL, s->n_users, user_name_at, username);
    return i < s->n_users ? &s->users[i] : NULL;
}

const pc_user_t *pc_snapshot_user_by_access_key(const pc_snapshot_t *s, const char *key_id,
                                                const pc_access_key_t **key_out)
{
    if (key_out) *key_out = NULL;
    if (!s || !key_id) return NULL;
    if (!s->index) {
        for (size_t i = 0; i < s->n_users; i++)
            for (size_t k = 0; k < s->users[i].n_access_keys; k++)
                if (strcmp(s->users[i].access_keys[k].id, key_id) == 0) {
                    if (key_out) *key_out = &s->users[i].access_keys[k];
                    return &s->users[i];
                }
        return NULL;
    }
    const struct pc__snapshot_index *ix = s->index;
    for (size_t h = hash_str(key_id) & ix->key_mask;; h = (h + 1) & ix->key_mask) {
        const struct key_slot *slot = &ix->key_slots[h];
        if (!slot->user) return NULL;
        const pc_user_t *u = &s->users[slot->user - 1];
        if (strcmp(u->access_keys[slot->key].id, key_id) == 0) {
            if (key_out) *key_out = &u->access_keys[slot->key];
            return u;
        }
    }
}

static size_t table_size(size_t n)
{
    size_t cap = 16;
    while (cap < n * 2 + 1)
        cap *= 2;
    return cap;
}

static void table_build(name_table_t *t, const pc_snapshot_t *s, size_t n, name_at_fn at)
{
    size_t cap = table_size(n);
    t->slots = pc_xcalloc(cap, sizeof *t->slots);
    t->mask = cap - 1;
    for (size_t i = 0; i < n; i++) {
        size_t h = hash_str(at(s, i)) & t->mask;
        while (t->slots[h])
            h = (h + 1) & t->mask;
        t->slots[h] = (uint32_t)i + 1;
    }
}

static void build_index(pc_snapshot_t *s)
{
    struct pc__snapshot_index *ix = pc_xcalloc(1, sizeof *ix);
    table_build(&ix->users, s, s->n_users, user_name_at);
    table_build(&ix->resources, s, s->n_resources, resource_name_at);
    table_build(&ix->listeners, s, s->n_listeners, listener_name_at);
    size_t n_keys = 0;
    for (size_t i = 0; i < s->n_users; i++)
        n_keys += s->users[i].n_access_keys;
    size_t kcap = table_size(n_keys);
    ix->key_slots = pc_xcalloc(kcap, sizeof *ix->key_slots);
    ix->key_mask = kcap - 1;
    for (size_t i = 0; i < s->n_users; i++)
        for (size_t k = 0; k < s->users[i].n_access_keys; k++) {
            size_t h = hash_str(s->users[i].access_keys[k].id) & ix->key_mask;
            while (ix->key_slots[h].user)
                h = (h + 1) & ix->key_mask;
            ix->key_slots[h].user = (uint32_t)i + 1;
            ix->key_slots[h].key = (uint32_t)k;
        }
    s->index = ix;
}

/* ---------- building ---------- */

#define GROW(arr, n, cap)                                                                          \
    do {                                                                                           \
        if ((n) == (cap)) {                                                                        \
            (cap) = (cap) ? (cap)*2 : 8;                                                           \
            (arr) = pc_xrealloc((arr), (cap) * sizeof *(arr));                                     \
        }                                                                                          \
    } while (0)

#define NAME_RULE " (letters, digits, '-', '_', '.'; 1-128 characters)"

static const char *const technologies[] = {"postgres", "s3", "bigquery", NULL};
static const char *const upstream_tls[] = {"disable", "require", "verify-full", NULL};
static const char *const listener_tls[] = {"optional", "required", "disabled", NULL};
static const char *const policy_status[] = {"active", "dry-run", "draft", NULL};
static const char *const user_types[] = {"human", "machine", NULL};

/* Object names: what appears in URLs, logs and metric labels. */
static bool valid_name(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 128) return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_' || c == '.'))
            return false;
    }
    return true;
}

/* User names and access key ids: printable, no spaces, bounded. */
static bool valid_identity(const char *s, size_t max)
{
    size_t n = strlen(s);
    if (n == 0 || n > max) return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] <= ' ' || s[i] == 0x7f) return false;
    return true;
}

/* Read a required string key; a missing one is reported at the object's line. */
static bool get_required(pc__yctx_t *c, const pc__ynode_t *m, const char *key, char **out,
                         const char *why)
{
    if (!pc__yget_str(c, m, key, out)) return false;
    if (*out && **out) return true;
    size_t prev = pc__ypath_push_key(&c->path, key);
    pc__yfail(c, pc__ymap_line(m, key), *out ? "must not be empty" : "required%s", why ? why : "");
    pc__ypath_pop(&c->path, prev);
    return false;
}

/* "<before><quoted arg><after>" at key's line; arg is never a secret. */
static bool key_fail(pc__yctx_t *c, const pc__ynode_t *m, const char *key, const char *before,
                     const char *arg, const char *after)
{
    size_t prev = pc__ypath_push_key(&c->path, key);
    char q[320] = "";
    if (arg) pc__quote_value(q, sizeof q, arg, strlen(arg));
    pc__yfail(c, pc__ymap_line(m, key), "%s%s%s", before, q, after);
    pc__ypath_pop(&c->path, prev);
    return false;
}

/* An optional string given as "" is a mistake, not a default. */
static bool non_empty(pc__yctx_t *c, const pc__ynode_t *m, const char *key, const char *value)
{
    return !value || *value || key_fail(c, m, key, "must not be empty", NULL, "");
}

static bool parse_resource(builder_t *b, pc__yctx_t *c, const pc__ynode_t *m, pc_resource_t *r)
{
    static const char *const any_keys[] = {"name",     "technology",  "hostname",    "port",
                                           "database", "tls",         "tls_ca_file", "endpoint",
                                           "region",   "credentials", NULL};
    static const char *const pg_keys[] = {"name", "technology",  "hostname",    "port", "database",
                                          "tls",  "tls_ca_file", "credentials", NULL};
    static const char *const s3_keys[] = {"name",   "technology",  "endpoint",
                                          "region", "credentials", NULL};
    static const char *const bq_keys[] = {"name", "technology", "endpoint", "credentials", NULL};
    static const char *const pg_cred[] = {"username", "password", NULL};
    static const char *const s3_cred[] = {"access_key_id", "secret_access_key", NULL};
    static const char *const bq_cred[] = {"token", NULL};
    static const char *const *const keys_by_tech[] = {pg_keys, s3_keys, bq_keys};
    static const char *const *const cred_by_tech[] = {pg_cred, s3_cred, bq_cred};

    if (!pc__ymap_check(c, m, any_keys) || !get_required(c, m, "name", &r->name, NULL))
        return false;
    if (!valid_name(r->name)) return key_fail(c, m, "name", "invalid name ", r->name, NAME_RULE);
    if (!pc__ymap_get(m, "technology"))
        return key_fail(c, m, "technology", "required (postgres|s3|bigquery)", NULL, "");
    int tech = 0;
    if (!pc__yget_enum(c, m, "technology", technologies, &tech)) return false;
    r->technology = (pc_technology_t)tech;
    /* Keys that belong to another technology are mistakes, not extras. */
    for (size_t i = 0; i < m->n_items; i += 2) {
        const char *k = m->items[i]->str;
        bool ok = false;
        for (size_t j = 0; keys_by_tech[tech][j]; j++)
            ok |= strcmp(k, keys_by_tech[tech][j]) == 0;
        if (!ok) {
            return key_fail(c, m, k, "not valid for technology ", technologies[tech], "");
        }
    }
    int64_t port = 0;
    int tls = PC_UPSTREAM_TLS_DISABLE;
    if (!pc__yget_str(c, m, "hostname", &r->hostname) ||
        !pc__yget_int(c, m, "port", 1, 65535, &port) ||
        !pc__yget_str(c, m, "database", &r->database) ||
        !pc__yget_enum(c, m, "tls", upstream_tls, &tls) ||
        !pc__yget_str(c, m, "tls_ca_file", &r->tls_ca_file) ||
        !pc__yget_str(c, m, "endpoint", &r->endpoint) || !pc__yget_str(c, m, "region", &r->region))
        return false;
    if (!non_empty(c, m, "hostname", r->hostname) || !non_empty(c, m, "database", r->database) ||
        !non_empty(c, m, "tls_ca_file", r->tls_ca_file) || !non_empty(c, m, "region", r->region))
        return false;
    r->port = (int)port;
    r->tls = (pc_upstream_tls_t)tls;

    const pc__ynode_t *cred = pc__ymap_get(m, "credentials");
    if (!cred)
        return key_fail(c, m, "credentials",
                        tech == PC_TECH_POSTGRES ? "required (username, password)"
                        : tech == PC_TECH_S3     ? "required (access_key_id, secret_access_key)"
                                                 : "required (token)",
                        NULL, "");
    size_t prev = pc__ypath_push_key(&c->path, "credentials");
    bool ok = pc__ymap_check(c, cred, cred_by_tech[tech]) &&
              pc__yget_str(c, cred, "username", &r->credentials.username) &&
              pc__yget_str(c, cred, "password", &r->credentials.password) &&
              pc__yget_str(c, cred, "access_key_id", &r->credentials.access_key_id) &&
              pc__yget_str(c, cred, "secret_access_key", &r->credentials.secret_access_key) &&
              pc__yget_str(c, cred, "token", &r->credentials.token);
    if (ok && tech == PC_TECH_POSTGRES)
        ok = get_required(c, cred, "username", &r->credentials.username, NULL);
    if (ok && tech == PC_TECH_S3)
        ok = get_required(c, cred, "access_key_id", &r->credentials.access_key_id, NULL) &&
             get_required(c, cred, "secret_access_key", &r->credentials.secret_access_key, NULL);
    if (ok && tech == PC_TECH_BIGQUERY)
        ok = get_required(c, cred, "token", &r->credentials.token, NULL);
    pc__ypath_pop(&c->path, prev);
    if (!ok) return false;

    switch (r->technology) {
    case PC_TECH_POSTGRES:
        if (!get_required(c, m, "hostname", &r->hostname, NULL)) return false;
        if (!r->port) return key_fail(c, m, "port", "required", NULL, "");
        if (r->tls_ca_file && r->tls != PC_UPSTREAM_TLS_VERIFY_FULL)
            return key_fail(c, m, "tls_ca_file", "only used with tls: verify-full", NULL, "");
        if (r->tls_ca_file && b->local) {
            /* Relative to the directory of the file that names it. */
            const char *slash = strrchr(c->origin, '/');
            if (r->tls_ca_file[0] != '/' && slash) {
                size_t n = (size_t)(slash - c->origin) + 1 + strlen(r->tls_ca_file) + 1;
                char *full = pc_xmalloc(n);
                snprintf(full, n, "%.*s/%s", (int)(slash - c->origin), c->origin, r->tls_ca_file);
                free(r->tls_ca_file);
                r->tls_ca_file = full;
            }
            if (access(r->tls_ca_file, R_OK) != 0)
                return key_fail(c, m, "tls_ca_file", "cannot read ", r->tls_ca_file, "");
        }
        break;
    case PC_TECH_S3:
        if (!r->region) r->region = pc_xstrdup("us-east-1");
        if (!r->endpoint) {
            size_t n = strlen(r->region) + 32;
            r->endpoint = pc_xmalloc(n);
            snprintf(r->endpoint, n, "https://s3.%s.amazonaws.com", r->region);
        }
        break;
    case PC_TECH_BIGQUERY:
        if (!r->endpoint) r->endpoint = pc_xstrdup("https://bigquery.googleapis.com");
        break;
    }
    if (r->endpoint && !pc__valid_http_url(r->endpoint))
        return key_fail(c, m, "endpoint", "invalid URL ", r->endpoint, "");
    return true;
}

static bool parse_listener(pc__yctx_t *c, const pc__ynode_t *m, pc_listener_cfg_t *l,
                           unsigned *port_line, unsigned *res_line)
{
    static const char *const keys[] = {"name", "port", "resource", "tls", "hostname", NULL};
    int64_t port = 0;
    int tls = PC_LISTENER_TLS_OPTIONAL;
    if (!pc__ymap_check(c, m, keys) || !get_required(c, m, "name", &l->name, NULL)) return false;
    if (!valid_name(l->name)) return key_fail(c, m, "name", "invalid name ", l->name, NAME_RULE);
    if (!pc__yget_int(c, m, "port", 1, 65535, &port) ||
        !get_required(c, m, "resource", &l->resource, NULL) ||
        !pc__yget_enum(c, m, "tls", listener_tls, &tls) ||
        !pc__yget_str(c, m, "hostname", &l->hostname))
        return false;
    if (!port) return key_fail(c, m, "port", "required", NULL, "");
    if (!non_empty(c, m, "hostname", l->hostname)) return false;
    l->port = (int)port;
    l->tls = (pc_listener_tls_t)tls;
    *port_line = pc__ymap_line(m, "port");
    *res_line = pc__ymap_line(m, "resource");
    return true;
}

static bool parse_user(pc__yctx_t *c, const pc__ynode_t *m, pc_user_t *u, char **password)
{
    static const char *const keys[] = {"username", "email", "type", "groups", "password",
                                       "scram_verifier", "access_keys", NULL};
    static const char *const key_keys[] = {"id", "secret", NULL};
    int type = 0;
    if (!pc__ymap_check(c, m, keys) || !get_required(c, m, "username", &u->username, NULL))
        return false;
    if (!valid_identity(u->username, 256))
        return key_fail(c, m, "username", "invalid user name ", u->username,
                        " (no spaces or control characters, 1-256 bytes)");
    if (!pc__yget_str(c, m, "email", &u->email) ||
        !pc__yget_enum(c, m, "type", user_types, &type) ||
        !pc__yget_str_list(c, m, "groups", &u->groups, &u->n_groups) ||
        !pc__yget_str(c, m, "password", password))
        return false;
    u->type = pc_xstrdup(user_types[type]);
    for (size_t i = 0; i < u->n_groups; i++)
        if (!valid_identity(u->groups[i], 256)) {
            size_t prev = pc__ypath_push_key(&c->path, "groups");
            pc__ypath_push_index(&c->path, i);
            char q[96];
            pc__quote_value(q, sizeof q, u->groups[i], strlen(u->groups[i]));
            pc__yfail(c, pc__ymap_line(m, "groups"), "invalid group %s", q);
            pc__ypath_pop(&c->path, prev);
            return false;
        }
    if (*password && !**password) return key_fail(c, m, "password", "must not be empty", NULL, "");
    /* What a control plane sends instead of a password: the verifier it computed on upload. */
    char *verifier = NULL;
    if (!pc__yget_str(c, m, "scram_verifier", &verifier)) return false;
    if (verifier) {
        bool both = *password != NULL;
        bool parsed = !both && pc_scram_verifier_parse(verifier, strlen(verifier), &u->scram);
        pc__free_secret(verifier);
        if (both)
            return key_fail(c, m, "scram_verifier", "set either password or scram_verifier", NULL,
                            "");
        if (!parsed)
            return key_fail(c, m, "scram_verifier",
                            "invalid SCRAM-SHA-256 verifier (SCRAM-SHA-256$<iterations>:<salt>"
                            "$<StoredKey>:<ServerKey>)",
                            NULL, "");
        u->has_password = true;
    }
    const pc__ynode_t *keys_node = pc__ymap_get(m, "access_keys");
    if (!keys_node) return true;
    size_t prev = pc__ypath_push_key(&c->path, "access_keys");
    if (!pc__yexpect(c, keys_node, PC__Y_SEQ)) return false;
    u->access_keys = pc_xcalloc(keys_node->n_items, sizeof *u->access_keys);
    for (size_t i = 0; i < keys_node->n_items; i++) {
        const pc__ynode_t *k = keys_node->items[i];
        size_t p2 = pc__ypath_push_index(&c->path, i);
        pc_access_key_t *ak = &u->access_keys[i];
        u->n_access_keys = i + 1;
        if (!pc__ymap_check(c, k, key_keys) || !get_required(c, k, "id", &ak->id, NULL) ||
            !get_required(c, k, "secret", &ak->secret, NULL))
            return false;
        if (!valid_identity(ak->id, 128))
            return key_fail(c, k, "id", "invalid access key id ", ak->id, "");
        for (size_t j = 0; j < i; j++)
            if (strcmp(u->access_keys[j].id, ak->id) == 0)
                return key_fail(c, k, "id", "duplicate access key id ", ak->id, "");
        pc__ypath_pop(&c->path, p2);
    }
    pc__ypath_pop(&c->path, prev);
    return true;
}

static bool parse_policy(pc__yctx_t *c, const pc__ynode_t *m, pc_policy_cfg_t *p)
{
    static const char *const keys[] = {"name", "status", "module", NULL};
    int status = PC_POLICY_ACTIVE;
    if (!pc__ymap_check(c, m, keys) || !get_required(c, m, "name", &p->name, NULL)) return false;
    if (!valid_name(p->name)) return key_fail(c, m, "name", "invalid name ", p->name, NAME_RULE);
    if (!pc__yget_enum(c, m, "status", policy_status, &status) ||
        !get_required(c, m, "module", &p->module, " (Rego source text)"))
        return false;
    p->status = (pc_policy_status_t)status;
    p->origin = pc_xstrdup(c->origin);
    return true;
}

static size_t add_file(builder_t *b, const char *name)
{
    b->files = pc_xrealloc(b->files, (b->n_files + 1) * sizeof *b->files);
    b->files[b->n_files] = pc_xstrdup(name);
    return b->n_files++;
}

/* One list section of one document. */
static bool load_list(builder_t *b, pc__yctx_t *c, size_t file, const pc__ynode_t *root,
                      const char *section)
{
    const pc__ynode_t *list = pc__ymap_get(root, section);
    if (!list) return true;
    size_t prev = pc__ypath_push_key(&c->path, section);
    if (!pc__yexpect(c, list, PC__Y_SEQ)) return false;
    pc_snapshot_t *s = b->s;
    for (size_t i = 0; i < list->n_items; i++) {
        const pc__ynode_t *item = list->items[i];
        size_t p2 = pc__ypath_push_index(&c->path, i);
        if (!pc__yexpect(c, item, PC__Y_MAP)) return false;
        origin_t o = {file, item->line, i};
        bool ok;
        if (strcmp(section, "resources") == 0) {
            size_t cap = b->cap_resources;
            GROW(s->resources, s->n_resources, b->cap_resources);
            if (cap != b->cap_resources)
                b->res_origin = pc_xrealloc(b->res_origin, b->cap_resources * sizeof(origin_t));
            memset(&s->resources[s->n_resources], 0, sizeof *s->resources);
            b->res_origin[s->n_resources] = o;
            ok = parse_resource(b, c, item, &s->resources[s->n_resources++]);
        } else if (strcmp(section, "listeners") == 0) {
            size_t cap = b->cap_listeners;
            GROW(s->listeners, s->n_listeners, b->cap_listeners);
            if (cap != b->cap_listeners) {
                size_t sz = b->cap_listeners * sizeof(origin_t);
                b->lis_origin = pc_xrealloc(b->lis_origin, sz);
                b->lis_port_origin = pc_xrealloc(b->lis_port_origin, sz);
                b->lis_res_origin = pc_xrealloc(b->lis_res_origin, sz);
            }
            size_t n = s->n_listeners++;
            memset(&s->listeners[n], 0, sizeof *s->listeners);
            b->lis_origin[n] = b->lis_port_origin[n] = b->lis_res_origin[n] = o;
            ok = parse_listener(c, item, &s->listeners[n], &b->lis_port_origin[n].line,
                                &b->lis_res_origin[n].line);
        } else if (strcmp(section, "users") == 0) {
            size_t cap = b->cap_users;
            GROW(s->users, s->n_users, b->cap_users);
            if (cap != b->cap_users) {
                b->user_origin = pc_xrealloc(b->user_origin, b->cap_users * sizeof(origin_t));
                b->passwords = pc_xrealloc(b->passwords, b->cap_users * sizeof(char *));
            }
            size_t n = s->n_users++;
            memset(&s->users[n], 0, sizeof *s->users);
            b->user_origin[n] = o;
            b->passwords[n] = NULL;
            ok = parse_user(c, item, &s->users[n], &b->passwords[n]);
        } else {
            size_t cap = b->cap_policies;
            GROW(s->policies, s->n_policies, b->cap_policies);
            if (cap != b->cap_policies)
                b->pol_origin = pc_xrealloc(b->pol_origin, b->cap_policies * sizeof(origin_t));
            memset(&s->policies[s->n_policies], 0, sizeof *s->policies);
            b->pol_origin[s->n_policies] = o;
            ok = parse_policy(c, item, &s->policies[s->n_policies++]);
        }
        if (!ok) return false;
        pc__ypath_pop(&c->path, p2);
    }
    pc__ypath_pop(&c->path, prev);
    return true;
}

static bool load_document_text(builder_t *b, const char *text, size_t len, const char *origin,
                               char *err, size_t errlen)
{
    static const char *const sections[] = {"resources", "listeners", "users", "policies", NULL};
    pc__yctx_t c = {.origin = origin, .err = err, .errlen = errlen, .expand_env = b->local};
    pc__ydoc_t doc;
    if (!pc__yaml_parse(text, len, origin, &doc, err, errlen)) return false;
    size_t file = add_file(b, origin);
    bool ok = true;
    for (size_t d = 0; d < doc.n_roots && ok; d++) {
        const pc__ynode_t *root = doc.roots[d];
        if (pc__yaml_is_null(root)) continue;
        /* A control-plane push also says its revision (the caller passes it as an
         * argument): skip that key, so messages about the others stay the same. */
        pc__ynode_t view;
        const pc__ynode_t *rev = b->local ? NULL : pc__ymap_get(root, "revision");
        if (rev && root->kind == PC__Y_MAP) {
            view = *root;
            view.items = pc_xcalloc(root->n_items, sizeof *view.items);
            view.n_items = 0;
            for (size_t i = 0; i + 1 < root->n_items; i += 2)
                if (root->items[i + 1] != rev) {
                    view.items[view.n_items++] = root->items[i];
                    view.items[view.n_items++] = root->items[i + 1];
                }
            ok = pc__ymap_check(&c, &view, sections);
            free(view.items);
        } else {
            ok = pc__ymap_check(&c, root, sections);
        }
        for (size_t i = 0; sections[i] && ok; i++)
            ok = load_list(b, &c, file, root, sections[i]);
    }
    pc__yaml_free(&doc);
    return ok;
}

static bool fail_at(builder_t *b, origin_t o, char *err, size_t errlen, const char *fmt, ...)
    PC_PRINTF(5, 6);

static bool fail_at(builder_t *b, origin_t o, char *err, size_t errlen, const char *fmt, ...)
{
    char msg[384];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    snprintf(err, errlen, "%s:%u: %s", b->files[o.file], o.line, msg);
    return false;
}

/* Sort keys for duplicate detection in O(n log n): by name (or number), then position. */
typedef struct name_ref {
    const char *name; /* NULL: compare num */
    long num;
    size_t idx;
} name_ref_t;

static int cmp_ref(const void *pa, const void *pb)
{
    const name_ref_t *a = pa, *b = pb;
    int c = a->name ? strcmp(a->name, b->name) : (a->num > b->num) - (a->num < b->num);
    return c ? c : (a->idx > b->idx) - (a->idx < b->idx);
}

static bool same_ref(const name_ref_t *a, const name_ref_t *b)
{
    return a->name ? strcmp(a->name, b->name) == 0 : a->num == b->num;
}

/* Sorts refs; finds the repeated entry that comes first in load order and the
 * entry it repeats. */
static bool first_duplicate(name_ref_t *refs, size_t n, size_t *dup, size_t *first)
{
    if (n) qsort(refs, n, sizeof *refs, cmp_ref);
    bool found = false;
    for (size_t k = 1, group = 0; k < n; k++) {
        if (!same_ref(&refs[k], &refs[group])) {
            group = k;
            continue;
        }
        if (!found || refs[k].idx < *dup) {
            *dup = refs[k].idx;
            *first = refs[group].idx;
            found = true;
        }
    }
    return found;
}

/* Cross-object checks, once every file is in. */
static bool check_all(builder_t *b, char *err, size_t errlen)
{
    pc_snapshot_t *s = b->s;
    char q[96];
    size_t max = s->n_resources > s->n_listeners ? s->n_resources : s->n_listeners;
    if (s->n_policies > max) max = s->n_policies;
    name_ref_t *refs = pc_xcalloc(max ? max : 1, sizeof *refs);
    name_ref_t *res_sorted = pc_xcalloc(s->n_resources ? s->n_resources : 1, sizeof *refs);
    bool ok = false;
    size_t dup, orig;
    static const char *const kinds[] = {"resource", "listener", "policy"};
    static const char *const lists[] = {"resources", "listeners", "policies"};
    for (int kind = 0; kind < 3; kind++) {
        size_t n = kind == 0 ? s->n_resources : kind == 1 ? s->n_listeners : s->n_policies;
        const origin_t *o = kind == 0 ? b->res_origin : kind == 1 ? b->lis_origin : b->pol_origin;
        for (size_t i = 0; i < n; i++)
            refs[i] = (name_ref_t){kind == 0   ? s->resources[i].name
                                   : kind == 1 ? s->listeners[i].name
                                               : s->policies[i].name,
                                   0, i};
        if (first_duplicate(refs, n, &dup, &orig)) {
            const char *name = refs[0].name; /* any: find the duplicate's own name */
            for (size_t i = 0; i < n; i++)
                if (refs[i].idx == dup) name = refs[i].name;
            pc__quote_value(q, sizeof q, name, strlen(name));
            fail_at(b, o[dup], err, errlen, "%s[%zu]: duplicate %s %s (first defined at %s:%u)",
                    lists[kind], o[dup].index, kinds[kind], q, b->files[o[orig].file],
                    o[orig].line);
            goto out;
        }
        if (kind == 0) memcpy(res_sorted, refs, n * sizeof *refs); /* sorted by name now */
    }
    for (size_t i = 0; i < s->n_listeners; i++)
        refs[i] = (name_ref_t){NULL, s->listeners[i].port, i};
    if (first_duplicate(refs, s->n_listeners, &dup, &orig)) {
        fail_at(b, b->lis_port_origin[dup], err, errlen,
                "listeners[%zu].port: port %d already used by listener \"%s\" (%s:%u)",
                b->lis_origin[dup].index, s->listeners[dup].port, s->listeners[orig].name,
                b->files[b->lis_port_origin[orig].file], b->lis_port_origin[orig].line);
        goto out;
    }
    for (size_t i = 0; i < s->n_listeners; i++) {
        const pc_listener_cfg_t *l = &s->listeners[i];
        name_ref_t key = {l->resource, 0, 0};
        size_t lo = 0, hi = s->n_resources;
        while (lo < hi) { /* first resource with name >= l->resource */
            size_t mid = lo + (hi - lo) / 2;
            if (strcmp(res_sorted[mid].name, key.name) < 0)
                lo = mid + 1;
            else
                hi = mid;
        }
        if (lo == s->n_resources || strcmp(res_sorted[lo].name, l->resource) != 0) {
            pc__quote_value(q, sizeof q, l->resource, strlen(l->resource));
            fail_at(b, b->lis_res_origin[i], err, errlen,
                    "listeners[%zu].resource: unknown resource %s", b->lis_origin[i].index, q);
            goto out;
        }
        if (l->hostname && s->resources[res_sorted[lo].idx].technology != PC_TECH_S3) {
            fail_at(b, b->lis_origin[i], err, errlen,
                    "listeners[%zu].hostname: only valid for s3 resources", b->lis_origin[i].index);
            goto out;
        }
    }
    ok = true;
out:
    free(refs);
    free(res_sorted);
    if (!ok) return false;
    /* Users and access keys: build the index, then look for collisions in it. */
    build_index(s);
    for (size_t i = 0; i < s->n_users; i++) {
        const pc_user_t *first = pc_snapshot_user(s, s->users[i].username);
        if (first != &s->users[i]) {
            size_t j = (size_t)(first - s->users);
            /* The index keeps whichever came first in its probe order; report the later one. */
            size_t later = i > j ? i : j, earlier = i > j ? j : i;
            pc__quote_value(q, sizeof q, s->users[i].username, strlen(s->users[i].username));
            return fail_at(b, b->user_origin[later], err, errlen,
                           "users[%zu].username: duplicate user %s (first defined at %s:%u)",
                           b->user_origin[later].index, q, b->files[b->user_origin[earlier].file],
                           b->user_origin[earlier].line);
        }
        for (size_t k = 0; k < s->users[i].n_access_keys; k++) {
            const pc_access_key_t *key;
            const pc_user_t *owner =
                pc_snapshot_user_by_access_key(s, s->users[i].access_keys[k].id, &key);
            if (owner != &s->users[i] || key != &s->users[i].access_keys[k]) {
                pc__quote_value(q, sizeof q, key->id, strlen(key->id));
                return fail_at(b, b->user_origin[i], err, errlen,
                               "users[%zu].access_keys[%zu].id: access key id %s is also used "
                               "by user \"%s\"",
                               b->user_origin[i].index, k, q, owner->username);
            }
        }
    }
    return true;
}

/* ---------- SCRAM verifiers, in parallel when there are many ---------- */

#ifdef PC_FUZZING
#define VERIFIER_ITERATIONS 2 /* the fuzzer explores parsing, not PBKDF2 */
#else
#define VERIFIER_ITERATIONS PC_SCRAM_DEFAULT_ITERATIONS
#endif

/*
 * Verifier cache across reloads. A reload re-reads every password, and 4096
 * PBKDF2 iterations per user would make a directory of thousands of users
 * take seconds to apply. The previous load's verifiers are kept keyed by
 * HMAC-SHA-256(process-random key, user name NUL password): an unchanged
 * password reuses its verifier (and salt), a changed one gets a new verifier.
 * The key never leaves the process and the plaintext is still not kept; the
 * files (or environment) the plaintext came from hold it anyway.
 */
typedef struct vcache_entry {
    uint8_t key[32];
    bool used;
    pc_scram_verifier_t v;
} vcache_entry_t;

static pthread_mutex_t vcache_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t vcache_once = PTHREAD_ONCE_INIT;
static uint8_t vcache_secret[32];
static bool vcache_enabled;
static vcache_entry_t *vcache;
static size_t vcache_mask;

static void vcache_init(void)
{
    vcache_enabled = pc_random_bytes(vcache_secret, sizeof vcache_secret);
}

static void vcache_key(const char *user, const char *pw, uint8_t out[32])
{
    size_t ul = strlen(user), pl = strlen(pw);
    char *buf = pc_xmalloc(ul + 1 + pl);
    memcpy(buf, user, ul + 1);
    memcpy(buf + ul + 1, pw, pl);
    pc_hmac_sha256(vcache_secret, sizeof vcache_secret, buf, ul + 1 + pl, out);
    explicit_bzero(buf, ul + 1 + pl);
    free(buf);
}

static size_t vcache_slot(const uint8_t key[32], size_t mask)
{
    uint64_t h;
    memcpy(&h, key, sizeof h);
    return (size_t)h & mask;
}

static bool vcache_get(const uint8_t key[32], pc_scram_verifier_t *out)
{
    bool found = false;
    pthread_mutex_lock(&vcache_lock);
    for (size_t i = vcache ? vcache_slot(key, vcache_mask) : 0; vcache && vcache[i].used;
         i = (i + 1) & vcache_mask)
        if (pc_ct_equal(vcache[i].key, key, 32)) {
            *out = vcache[i].v;
            found = true;
            break;
        }
    pthread_mutex_unlock(&vcache_lock);
    return found;
}

/* Replace the cache with this load's verifiers (old passwords drop out). */
static void vcache_replace(const pc_snapshot_t *s, uint8_t (*keys)[32], const bool *keyed)
{
    size_t n = 0;
    for (size_t i = 0; i < s->n_users; i++)
        n += keyed[i] && s->users[i].has_password;
    size_t cap = table_size(n), mask = cap - 1;
    vcache_entry_t *table = pc_xcalloc(cap, sizeof *table);
    for (size_t i = 0; i < s->n_users; i++) {
        if (!keyed[i] || !s->users[i].has_password) continue;
        size_t j = vcache_slot(keys[i], mask);
        while (table[j].used && !pc_ct_equal(table[j].key, keys[i], 32))
            j = (j + 1) & mask;
        memcpy(table[j].key, keys[i], 32);
        table[j].v = s->users[i].scram;
        table[j].used = true;
    }
    pthread_mutex_lock(&vcache_lock);
    vcache_entry_t *old = vcache;
    size_t old_cap = vcache ? vcache_mask + 1 : 0;
    vcache = table;
    vcache_mask = mask;
    pthread_mutex_unlock(&vcache_lock);
    if (old) explicit_bzero(old, old_cap * sizeof *old);
    free(old);
}

typedef struct hash_job {
    builder_t *b;
    size_t from, to;
    uint8_t (*keys)[32]; /* cache key per user */
    bool *keyed;         /* keys[i] is set (plaintext password) */
    bool ok;
    size_t failed_at;
} hash_job_t;

static void *hash_range(void *arg)
{
    hash_job_t *j = arg;
    pc_snapshot_t *s = j->b->s;
    j->ok = true;
    for (size_t i = j->from; i < j->to && j->ok; i++) {
        char *pw = j->b->passwords[i];
        if (!pw) continue;
        size_t len = strlen(pw);
        pc_user_t *u = &s->users[i];
        if (len > 14 && strncmp(pw, "SCRAM-SHA-256$", 14) == 0) {
            /* A ready verifier (PostgreSQL's pg_authid format): taken as is. */
            j->ok = pc_scram_verifier_parse(pw, len, &u->scram);
        } else {
            if (vcache_enabled) {
                vcache_key(u->username, pw, j->keys[i]);
                j->keyed[i] = true;
            }
            j->ok = (j->keyed[i] && vcache_get(j->keys[i], &u->scram)) ||
                    pc_scram_verifier_new(pw, len, VERIFIER_ITERATIONS, &u->scram);
        }
        if (!j->ok) j->failed_at = i;
        u->has_password = j->ok;
    }
    return NULL;
}

static bool hash_passwords(builder_t *b, char *err, size_t errlen)
{
    enum { MAX_THREADS = 8, PER_THREAD_MIN = 32 };
    pc_snapshot_t *s = b->s;
    size_t n = s->n_users;
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    size_t threads = cpus > 1 ? (size_t)cpus : 1;
    if (threads > MAX_THREADS) threads = MAX_THREADS;
    if (threads > n / PER_THREAD_MIN) threads = n / PER_THREAD_MIN;
    if (threads < 1) threads = 1;
    pthread_once(&vcache_once, vcache_init);
    uint8_t(*keys)[32] = pc_xcalloc(n ? n : 1, sizeof *keys);
    bool *keyed = pc_xcalloc(n ? n : 1, sizeof *keyed);
    hash_job_t jobs[MAX_THREADS];
    pthread_t tids[MAX_THREADS];
    bool started[MAX_THREADS] = {false};
    for (size_t t = 0; t < threads; t++) {
        jobs[t] = (hash_job_t){.b = b,
                               .from = n * t / threads,
                               .to = n * (t + 1) / threads,
                               .keys = keys,
                               .keyed = keyed};
        if (t > 0) started[t] = pthread_create(&tids[t], NULL, hash_range, &jobs[t]) == 0;
        if (t > 0 && !started[t]) hash_range(&jobs[t]);
    }
    hash_range(&jobs[0]);
    bool ok = true;
    for (size_t t = 0; t < threads; t++) {
        if (started[t]) pthread_join(tids[t], NULL);
        if (!jobs[t].ok && ok) {
            ok = false;
            size_t i = jobs[t].failed_at;
            bool looks_verifier = strncmp(b->passwords[i], "SCRAM-SHA-256$", 14) == 0;
            fail_at(b, b->user_origin[i], err, errlen, "users[%zu].password: %s",
                    b->user_origin[i].index,
                    looks_verifier ? "invalid SCRAM-SHA-256 verifier"
                                   : "cannot compute the SCRAM verifier");
        }
    }
    if (ok && vcache_enabled) vcache_replace(s, keys, keyed);
    explicit_bzero(keys, (n ? n : 1) * sizeof *keys);
    free(keys);
    free(keyed);
    return ok;
}

/* ---------- entry points ---------- */

static void builder_free(builder_t *b)
{
    for (size_t i = 0; b->s && i < b->s->n_users; i++)
        pc__free_secret(b->passwords[i]);
    free(b->passwords);
    free(b->res_origin);
    free(b->lis_origin);
    free(b->lis_port_origin);
    free(b->lis_res_origin);
    free(b->user_origin);
    free(b->pol_origin);
    for (size_t i = 0; i < b->n_files; i++)
        free(b->files[i]);
    free(b->files);
}

static pc_snapshot_t *new_snapshot(uint64_t revision)
{
    pc_snapshot_t *s = pc_xcalloc(1, sizeof *s);
    atomic_init(&s->refcount, 1);
    s->revision = revision;
    return s;
}

pc_snapshot_t *pc_snapshot_empty(uint64_t revision)
{
    pc_snapshot_t *s = new_snapshot(revision);
    build_index(s);
    return s;
}

/* Finish a builder: checks, verifiers, compile hook. Consumes b. */
static pc_snapshot_t *finish(builder_t *b, bool ok, char *err, size_t errlen)
{
    pc_snapshot_t *s = b->s;
    if (ok) ok = check_all(b, err, errlen) && hash_passwords(b, err, errlen);
    builder_free(b);
    if (ok) {
        pc_snapshot_compile_fn hook = atomic_load(&compile_hook);
        if (hook && !hook(s, err, errlen)) {
            if (!err[0] && errlen) snprintf(err, errlen, "policy compilation failed");
            ok = false;
        }
    }
    if (!ok) {
        pc_snapshot_unref(s);
        return NULL;
    }
    return s;
}

pc_snapshot_t *pc_snapshot_load_yaml(const char *yaml, size_t len, const char *origin,
                                     uint64_t revision, char *err, size_t errlen)
{
    builder_t b = {.s = new_snapshot(revision), .local = false};
    if (errlen) err[0] = '\0';
    bool ok = load_document_text(&b, yaml, len, origin ? origin : "<snapshot>", err, errlen);
    return finish(&b, ok, err, errlen);
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool has_suffix(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n > m && strcmp(s + n - m, suffix) == 0;
}

pc_snapshot_t *pc_snapshot_load_dir(const char *dir, uint64_t revision, char *err, size_t errlen)
{
    builder_t b = {.s = new_snapshot(revision), .local = true};
    char **names = NULL;
    size_t n_names = 0;
    bool ok = false;
    if (errlen) err[0] = '\0';
    DIR *d = opendir(dir);
    if (!d) {
        snprintf(err, errlen, "%s: cannot open directory: %s", dir, strerror(errno));
        return finish(&b, false, err, errlen);
    }
    for (struct dirent *e; (e = readdir(d));) {
        /* Dot files are editor droppings and Kubernetes ConfigMap internals. */
        if (e->d_name[0] == '.') continue;
        if (!has_suffix(e->d_name, ".yaml") && !has_suffix(e->d_name, ".yml") &&
            !has_suffix(e->d_name, ".rego"))
            continue;
        names = pc_xrealloc(names, (n_names + 1) * sizeof *names);
        names[n_names++] = pc_xstrdup(e->d_name);
    }
    closedir(d);
    if (n_names) qsort(names, n_names, sizeof *names, cmp_names); /* qsort(NULL, 0) is UB */

    size_t cap_pol = 0;
    for (size_t i = 0; i < n_names; i++) {
        size_t plen = strlen(dir) + strlen(names[i]) + 2;
        char *path = pc_xmalloc(plen);
        snprintf(path, plen, "%s/%s", dir, names[i]);
        struct stat st;
        if (stat(path, &st) != 0 || !S_ISREG(st.st_mode)) { /* dangling link, directory */
            free(path);
            continue;
        }
        size_t len;
        char *text = pc__read_file(path, 16u << 20, &len, err, errlen);
        bool file_ok = text != NULL;
        if (file_ok && has_suffix(names[i], ".rego")) {
            pc_snapshot_t *s = b.s;
            cap_pol = b.cap_policies;
            GROW(s->policies, s->n_policies, b.cap_policies);
            if (cap_pol != b.cap_policies)
                b.pol_origin = pc_xrealloc(b.pol_origin, b.cap_policies * sizeof(origin_t));
            pc_policy_cfg_t *p = &s->policies[s->n_policies];
            memset(p, 0, sizeof *p);
            b.pol_origin[s->n_policies] = (origin_t){add_file(&b, path), 1, 0};
            s->n_policies++;
            p->name = pc_xstrndup(names[i], strlen(names[i]) - 5);
            p->status = PC_POLICY_ACTIVE;
            p->module = text;
            p->origin = pc_xstrdup(path);
            text = NULL;
            if (!valid_name(p->name)) {
                snprintf(err, errlen,
                         "%s: invalid policy name \"%s\" from the file name (letters, digits, "
                         "'-', '_', '.')",
                         path, p->name);
                file_ok = false;
            }
        } else if (file_ok) {
            file_ok = load_document_text(&b, text, len, path, err, errlen);
            explicit_bzero(text, len); /* may hold passwords */
        }
        free(text);
        free(path);
        if (!file_ok) goto out;
    }
    ok = true;
out:
    for (size_t i = 0; i < n_names; i++)
        free(names[i]);
    free(names);
    return finish(&b, ok, err, errlen);
}
