/*
 * Configuration: the connector's own YAML file (design §2) and the snapshot of
 * configuration objects (design §3) that the control plane or config_dir
 * provides.
 *
 * Ownership: pc_config_t belongs to the caller of pc_config_load and is freed
 * with pc_config_free. A pc_snapshot_t is immutable once published and
 * ref-counted: readers take a reference with pc_snapshot_ref, drop it with
 * pc_snapshot_unref; the last unref frees it. Every string inside is owned by
 * the object that holds it. Secrets (upstream passwords and keys, user
 * passwords) never leave these structs through a log line or error message.
 */
#ifndef PC_CORE_CONFIG_H
#define PC_CORE_CONFIG_H

#include "core/common.h"

#include <stdatomic.h>

/* ---------- connector configuration (design §2) ---------- */

typedef enum { PC_DISCOVERY_STATIC, PC_DISCOVERY_DNS, PC_DISCOVERY_KUBERNETES,
               PC_DISCOVERY_ECS } pc_discovery_mode_t;

typedef struct pc_config {
    char *instance_name;  /* default: $HOSTNAME, else gethostname() */
    char *listen_address; /* default "0.0.0.0" */
    struct {
        char *url;        /* remote control plane, or NULL */
        char *token;      /* secret */
        char *config_dir; /* embedded control plane, or NULL */
        char *ca_file;    /* https control plane: CA bundle (PEM); NULL = system store */
    } control_plane;
    struct {
        char *listen; /* "host:port", default "0.0.0.0:8080" */
    } health;
    struct {
        uint64_t drain_timeout_ms; /* default 30 s */
    } shutdown;
    struct {
        char *dir;          /* default /var/lib/portcullis/logs */
        uint64_t max_bytes; /* default 10 GiB */
    } log_spool;
    struct {
        bool enabled;
        char *advertise_address;
        pc_discovery_mode_t discovery_mode;
        char **peers; /* static discovery */
        size_t n_peers;
        char *dns_name;           /* dns discovery */
        char *k8s_namespace;      /* kubernetes: namespace of the Endpoints/pods (NULL = own) */
        char *k8s_service;        /* kubernetes: Service/Endpoints name, or */
        char *k8s_label_selector; /* kubernetes: pods matching this label selector */
        char *k8s_api_url;        /* kubernetes: API server (NULL = from KUBERNETES_SERVICE_*) */
        char *k8s_sa_dir;         /* kubernetes: token, ca.crt, namespace (service account) */
        char *ecs_cluster;        /* ecs: cluster name or ARN (NULL = from task metadata) */
        char *ecs_service;        /* ecs: service name (NULL = this task's service) */
        char *ecs_endpoint;       /* ecs: API endpoint URL (NULL = https://ecs.<region>...) */
        char *ecs_region;         /* ecs: region (NULL = AWS_REGION / AWS_DEFAULT_REGION) */
        uint64_t discovery_interval_ms; /* kubernetes/ecs: API called at most this often */
        char *etcd_binary;
        int client_port; /* 2379 */
        int peer_port;   /* 2380 */
        char *data_dir;  /* ./default.etcd */
        uint64_t dead_member_timeout_ms;
    } cluster;
    struct {
        char *otlp_endpoint;
        uint64_t interval_ms;
    } telemetry;
    struct {
        char *cert; /* PEM files for client-facing TLS; NULL when absent */
        char *key;
    } tls;
    unsigned workers; /* worker threads; 0 = number of CPUs */
    char *log_level;  /* "info" by default */
} pc_config_t;

/**
 * Load and strictly validate the connector's YAML file. ${VAR} expands from
 * the environment. On failure returns false and writes one message naming the
 * key and line into err (e.g. "config.yaml:7: shutdown.drain_timeout: bad
 * duration '3x'"); the caller exits 2.
 */
bool pc_config_load(const char *path, pc_config_t *out, char *err, size_t errlen) PC_WUR;
/**
 * Same from YAML text in memory (tests, fuzzing). origin names the text in
 * messages; relative paths (control_plane.config_dir) resolve against base_dir
 * (NULL = current directory). check_files = false skips the existence checks
 * of tls.cert/key and config_dir.
 */
bool pc_config_load_yaml(const char *yaml, size_t len, const char *origin, const char *base_dir,
                         bool check_files, pc_config_t *out, char *err, size_t errlen) PC_WUR;
void pc_config_free(pc_config_t *cfg);

/** "30s", "500ms", "2m", "1h", "1h30m", "1.5s" -> milliseconds (a unit is required). */
bool pc_parse_duration_ms(const char *s, uint64_t *out_ms) PC_WUR;
/** "10GiB", "512MiB", "1000", "10GB", "1KB" -> bytes (KB/MB/GB/TB decimal, KiB... binary). */
bool pc_parse_size(const char *s, uint64_t *out_bytes) PC_WUR;

/* ---------- configuration objects (design §3) ---------- */

typedef enum { PC_TECH_POSTGRES, PC_TECH_S3, PC_TECH_BIGQUERY } pc_technology_t;
typedef enum { PC_UPSTREAM_TLS_DISABLE, PC_UPSTREAM_TLS_REQUIRE,
               PC_UPSTREAM_TLS_VERIFY_FULL } pc_upstream_tls_t;
typedef enum { PC_LISTENER_TLS_OPTIONAL, PC_LISTENER_TLS_REQUIRED,
               PC_LISTENER_TLS_DISABLED } pc_listener_tls_t;
typedef enum { PC_POLICY_ACTIVE, PC_POLICY_DRY_RUN, PC_POLICY_DRAFT } pc_policy_status_t;

typedef struct pc_resource {
    char *name;
    pc_technology_t technology;
    char *hostname;
    int port;
    char *database;
    pc_upstream_tls_t tls;
    char *tls_ca_file; /* verify-full: CA bundle (PEM); NULL = system default */
    char *endpoint;    /* s3, bigquery */
    char *region;      /* s3 */
    struct {
        char *username; /* postgres */
        char *password; /* postgres, secret */
        char *access_key_id;
        char *secret_access_key; /* secret */
        char *token;             /* bigquery, secret */
    } credentials;
} pc_resource_t;

typedef struct pc_listener_cfg {
    char *name;
    int port;
    char *resource; /* name of a pc_resource_t in the same snapshot */
    pc_listener_tls_t tls;
    char *hostname; /* s3 virtual-hosted-style addressing; may be NULL */
} pc_listener_cfg_t;

/* SCRAM-SHA-256 verifier (RFC 5802/7677); the password itself is not kept. */
typedef struct pc_scram_verifier {
    uint8_t salt[32];
    size_t salt_len;
    uint32_t iterations;
    uint8_t stored_key[32];
    uint8_t server_key[32];
} pc_scram_verifier_t;

typedef struct pc_access_key {
    char *id;
    char *secret; /* secret: needed to verify SigV4 */
} pc_access_key_t;

typedef struct pc_user {
    char *username;
    char *email;
    char *type; /* "human" | "machine" */
    char **groups;
    size_t n_groups;
    bool has_password;
    pc_scram_verifier_t scram;
    pc_access_key_t *access_keys;
    size_t n_access_keys;
} pc_user_t;

typedef struct pc_policy_cfg {
    char *name;
    pc_policy_status_t status;
    char *module; /* Rego source */
    char *origin; /* file it came from (for file:row:col errors), or NULL */
} pc_policy_cfg_t;

typedef struct pc_snapshot {
    atomic_uint refcount;
    uint64_t revision;
    pc_resource_t *resources;
    size_t n_resources;
    pc_listener_cfg_t *listeners;
    size_t n_listeners;
    pc_user_t *users;
    size_t n_users;
    pc_policy_cfg_t *policies;
    size_t n_policies;
    /* Compiled policy set built from `policies` when the snapshot is made;
     * owned by the snapshot, released through policy_free. NULL = none. */
    void *policy_set;
    void (*policy_free)(void *policy_set);
    /* Lookup tables built by the loader (users by name and by access key id);
     * NULL in a snapshot built by hand: lookups then scan linearly. */
    struct pc__snapshot_index *index;
} pc_snapshot_t;

/**
 * Build a snapshot from every *.yaml file (lists under resources, listeners,
 * users, policies, merged) and every *.rego file (an active policy named after
 * its file) in dir. Validates references (listener -> resource), duplicate
 * names and value types; user passwords become SCRAM verifiers. On failure
 * returns NULL and writes one clear message (file:line: key: problem) to err.
 * The result has refcount 1.
 */
pc_snapshot_t *pc_snapshot_load_dir(const char *dir, uint64_t revision, char *err,
                                    size_t errlen) PC_WUR;
/** Same from one YAML document in memory (control-plane pushes, tests). */
pc_snapshot_t *pc_snapshot_load_yaml(const char *yaml, size_t len, const char *origin,
                                     uint64_t revision, char *err, size_t errlen) PC_WUR;

/** An empty snapshot (no objects) with refcount 1, e.g. before the first push. */
pc_snapshot_t *pc_snapshot_empty(uint64_t revision);

pc_snapshot_t *pc_snapshot_ref(pc_snapshot_t *s);
void pc_snapshot_unref(pc_snapshot_t *s);

const pc_resource_t *pc_snapshot_resource(const pc_snapshot_t *s, const char *name);
const pc_listener_cfg_t *pc_snapshot_listener(const pc_snapshot_t *s, const char *name);
const pc_user_t *pc_snapshot_user(const pc_snapshot_t *s, const char *username);
const pc_user_t *pc_snapshot_user_by_access_key(const pc_snapshot_t *s, const char *key_id,
                                                const pc_access_key_t **key_out);

/*
 * Hook run on every new snapshot before it is published: the policy module
 * registers one that compiles snapshot->policies into snapshot->policy_set and
 * fails with a file:row:col message to refuse the snapshot. NULL = none.
 */
typedef bool (*pc_snapshot_compile_fn)(pc_snapshot_t *s, char *err, size_t errlen);
void pc_snapshot_set_compile_hook(pc_snapshot_compile_fn fn);

#endif
