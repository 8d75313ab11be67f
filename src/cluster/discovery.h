/*
 * Private: peer discovery through an orchestrator's API (kubernetes, ecs).
 *
 * pc__discovery_* run only on the cluster's supervisor thread: they block on
 * HTTP calls (each bounded by PC__DISCOVERY_CALL_MS). The parsers below are
 * pure (bytes in, peers out, no I/O) so the unit test and the fuzz target
 * can drive them with what an API server might send.
 */
#ifndef PC_CLUSTER_DISCOVERY_H
#define PC_CLUSTER_DISCOVERY_H

#include "core/common.h"
#include "core/config.h"

#include <jansson.h>

#define PC__PEERS_MAX 64
#define PC__DISCOVERY_CALL_MS 5000L

/* Peer addresses (numeric IPv4/IPv6 text), no duplicates. */
typedef struct pc__peers {
    char addr[PC__PEERS_MAX][64];
    size_t n;
} pc__peers_t;

/** Adds a copy of a unless present; false when the list is full. */
bool pc__peers_add(pc__peers_t *p, const char *a);
/** Same for an address from outside: ignored (false) unless a numeric IPv4/IPv6 address. */
bool pc__peers_add_ip(pc__peers_t *p, const char *a);

typedef struct pc__discovery pc__discovery_t;

/** State for the kubernetes or ecs mode of cfg (NULL for other modes). */
pc__discovery_t *pc__discovery_new(const pc_config_t *cfg);
void pc__discovery_free(pc__discovery_t *d);

/**
 * Adds the current peers to out. Calls the API at most once per
 * cluster.discovery.interval and returns the last good answer in between.
 * When the API fails, logs one warning per failure streak (never a
 * credential) and returns the previous good answer; false only when there
 * has never been one.
 */
bool pc__discovery_run(pc__discovery_t *d, pc__peers_t *out) PC_WUR;

/**
 * How long a first formation waits before bootstrapping (0 for NULL): an
 * orchestrator lists a new instance with some lag, so two instances started
 * together could each see only itself, or one see the other before it
 * answers, and both bootstrap. Two fresh reads (2 x interval) let the views
 * converge so that only the lowest address bootstraps.
 */
int64_t pc__discovery_settle_ms(const pc__discovery_t *d);

/* ---- pure parsers (JSON bodies as the public APIs document them) ---- */

/**
 * Kubernetes Endpoints object: subsets[].addresses[].ip, plus
 * notReadyAddresses[].ip when include_not_ready. false if body is not an
 * Endpoints-shaped JSON object.
 */
bool pc__k8s_parse_endpoints(const char *body, size_t len, bool include_not_ready,
                             pc__peers_t *out) PC_WUR;
/**
 * Kubernetes PodList: status.podIP of items in phase Running or Pending that
 * have an IP and no metadata.deletionTimestamp.
 */
bool pc__k8s_parse_pods(const char *body, size_t len, pc__peers_t *out) PC_WUR;

/** ECS ListTasks response: malloc'd taskArns (*n of them) and nextToken (or NULL). */
bool pc__ecs_parse_list_tasks(const char *body, size_t len, char ***arns, size_t *n,
                              char **next_token) PC_WUR;
/**
 * ECS DescribeTasks response: each task's private IP (awsvpc attachment
 * detail privateIPv4Address, else containers[].networkInterfaces[]
 * privateIpv4Address). If own_task_arn is non-NULL and that task is in the
 * answer, its group's service name ("service:NAME") goes to *own_service
 * (malloc'd).
 */
bool pc__ecs_parse_describe_tasks(const char *body, size_t len, pc__peers_t *out,
                                  const char *own_task_arn, char **own_service) PC_WUR;

typedef struct pc__aws_creds {
    char *access_key, *secret_key, *token; /* token may be NULL (long-term keys) */
    int64_t expires_unix;                  /* 0 = never */
} pc__aws_creds_t;
/** Container credentials endpoint answer (AccessKeyId, SecretAccessKey, Token, Expiration). */
bool pc__ecs_parse_credentials(const char *body, size_t len, pc__aws_creds_t *out) PC_WUR;
void pc__aws_creds_clear(pc__aws_creds_t *c);

/** Task metadata v4 /task: Cluster, TaskARN and ServiceName (each malloc'd or NULL). */
bool pc__ecs_parse_task_metadata(const char *body, size_t len, char **cluster, char **task_arn,
                                 char **service) PC_WUR;

/* ---- glue between discovery.c and the per-mode files ---- */

/*
 * Parses body: the root if it is a JSON object whose array_key is an array
 * or absent (APIs omit empty lists); *arr is that array or NULL. NULL if not.
 */
json_t *pc__disc_load(const char *body, size_t len, const char *array_key, const json_t **arr);

/* One HTTP exchange; the response body (NUL-terminated) is malloc'd. */
typedef struct pc__disc_http {
    const char *method, *url;
    const char *const *headers; /* "Name: value", NULL-terminated; may hold secrets */
    const char *body;
    size_t body_len;
    const char *ca_file; /* NULL = system CAs */
    long status;         /* out: HTTP status, 0 on a transport error */
    char *resp;          /* out */
    size_t resp_len;
} pc__disc_http_t;
/** false on a transport error (err says why, without headers or bodies). */
bool pc__disc_http(pc__disc_http_t *h, char *err, size_t errlen) PC_WUR;

typedef struct pc__k8s pc__k8s_t;
pc__k8s_t *pc__k8s_new(const pc_config_t *cfg);
bool pc__k8s_discover(pc__k8s_t *k, pc__peers_t *out, char *err, size_t errlen) PC_WUR;
void pc__k8s_free(pc__k8s_t *k);

typedef struct pc__ecs pc__ecs_t;
pc__ecs_t *pc__ecs_new(const pc_config_t *cfg);
bool pc__ecs_discover(pc__ecs_t *e, pc__peers_t *out, char *err, size_t errlen) PC_WUR;
void pc__ecs_free(pc__ecs_t *e);

#endif
