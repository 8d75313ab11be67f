/* Connector configuration: defaults, every validation error, ${VAR}, durations, sizes. */
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

static char tmpdir[256];

static int setup(void **state)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/pc_test_config_XXXXXX");
    assert_non_null(mkdtemp(tmpdir));
    return 0;
}

static int teardown(void **state)
{
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    assert_int_equal(system(cmd), 0);
    return 0;
}

static void write_file(const char *name, const char *text)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

/* Load from memory without file checks; returns success, err filled on failure. */
static bool load(const char *yaml, pc_config_t *cfg, char *err, size_t errlen)
{
    return pc_config_load_yaml(yaml, strlen(yaml), "portcullis.yaml", "/etc/pc", false, cfg, err,
                               errlen);
}

/* The load must fail with exactly this message. */
static void expect_error(const char *yaml, const char *message)
{
    pc_config_t cfg;
    char err[512] = "";
    bool ok = load(yaml, &cfg, err, sizeof err);
    if (ok) pc_config_free(&cfg);
    assert_false(ok);
    assert_string_equal(err, message);
}

static void test_defaults(void **state)
{
    pc_config_t cfg;
    char err[512];
    setenv("HOSTNAME", "host-a", 1);
    assert_true(load("control_plane: {config_dir: ./config}\n", &cfg, err, sizeof err));
    assert_string_equal(cfg.instance_name, "host-a");
    assert_string_equal(cfg.listen_address, "0.0.0.0");
    assert_null(cfg.control_plane.url);
    assert_null(cfg.control_plane.token);
    assert_string_equal(cfg.control_plane.config_dir, "/etc/pc/./config");
    assert_string_equal(cfg.health.listen, "0.0.0.0:8080");
    assert_int_equal(cfg.shutdown.drain_timeout_ms, 30000);
    assert_string_equal(cfg.log_spool.dir, "/var/lib/portcullis/logs");
    assert_int_equal(cfg.log_spool.max_bytes, 10ull << 30);
    assert_false(cfg.cluster.enabled);
    assert_int_equal(cfg.cluster.discovery_mode, PC_DISCOVERY_STATIC);
    assert_int_equal(cfg.cluster.n_peers, 0);
    assert_int_equal(cfg.cluster.client_port, 2379);
    assert_int_equal(cfg.cluster.peer_port, 2380);
    assert_string_equal(cfg.cluster.data_dir, "./default.etcd");
    assert_int_equal(cfg.cluster.dead_member_timeout_ms, 60000);
    assert_null(cfg.telemetry.otlp_endpoint);
    assert_int_equal(cfg.telemetry.interval_ms, 10000);
    assert_null(cfg.tls.cert);
    assert_null(cfg.tls.key);
    assert_int_equal(cfg.workers, 0);
    assert_string_equal(cfg.log_level, "info");
    pc_config_free(&cfg);
    pc_config_free(&cfg); /* idempotent after free */

    /* Without $HOSTNAME the host name is used. */
    unsetenv("HOSTNAME");
    assert_true(load("control_plane: {config_dir: /x}\n", &cfg, err, sizeof err));
    char host[256];
    assert_int_equal(gethostname(host, sizeof host), 0);
    assert_string_equal(cfg.instance_name, host);
    assert_string_equal(cfg.control_plane.config_dir, "/x");
    pc_config_free(&cfg);
}

static void test_full_file(void **state)
{
    const char *yaml = "instance_name: conn-1\n"
                       "listen_address: 127.0.0.1\n"
                       "control_plane:\n"
                       "  url: https://cp.example:8443\n"
                       "  token: s3cr3t\n"
                       "health: {listen: '127.0.0.1:9090'}\n"
                       "shutdown: {drain_timeout: 1m30s}\n"
                       "log_spool: {dir: spool, max_bytes: 512MiB}\n"
                       "cluster:\n"
                       "  enabled: true\n"
                       "  advertise_address: 10.0.0.5\n"
                       "  discovery: {mode: dns, dns_name: portcullis.internal, peers: [a, b]}\n"
                       "  client_port: 12379\n"
                       "  peer_port: 12380\n"
                       "  data_dir: /data/etcd\n"
                       "  dead_member_timeout: 2m\n"
                       "  etcd_binary: /usr/bin/etcd\n"
                       "telemetry: {otlp_endpoint: 'http://127.0.0.1:4318', interval: 500ms}\n"
                       "workers: 4\n"
                       "log_level: debug\n";
    pc_config_t cfg;
    char err[512];
    assert_true(load(yaml, &cfg, err, sizeof err));
    assert_string_equal(cfg.instance_name, "conn-1");
    assert_string_equal(cfg.listen_address, "127.0.0.1");
    assert_string_equal(cfg.control_plane.url, "https://cp.example:8443");
    assert_string_equal(cfg.control_plane.token, "s3cr3t");
    assert_null(cfg.control_plane.config_dir);
    assert_string_equal(cfg.health.listen, "127.0.0.1:9090");
    assert_int_equal(cfg.shutdown.drain_timeout_ms, 90000);
    assert_string_equal(cfg.log_spool.dir, "/etc/pc/spool");
    assert_int_equal(cfg.log_spool.max_bytes, 512ull << 20);
    assert_true(cfg.cluster.enabled);
    assert_string_equal(cfg.cluster.advertise_address, "10.0.0.5");
    assert_int_equal(cfg.cluster.discovery_mode, PC_DISCOVERY_DNS);
    assert_string_equal(cfg.cluster.dns_name, "portcullis.internal");
    assert_int_equal(cfg.cluster.n_peers, 2);
    assert_string_equal(cfg.cluster.peers[1], "b");
    assert_null(cfg.cluster.k8s_service);
    assert_int_equal(cfg.cluster.client_port, 12379);
    assert_int_equal(cfg.cluster.peer_port, 12380);
    assert_string_equal(cfg.cluster.data_dir, "/data/etcd");
    assert_int_equal(cfg.cluster.dead_member_timeout_ms, 120000);
    assert_string_equal(cfg.cluster.etcd_binary, "/usr/bin/etcd");
    assert_string_equal(cfg.telemetry.otlp_endpoint, "http://127.0.0.1:4318");
    assert_int_equal(cfg.telemetry.interval_ms, 500);
    assert_int_equal(cfg.workers, 4);
    assert_string_equal(cfg.log_level, "debug");
    pc_config_free(&cfg);
}

static void test_errors_name_key_and_line(void **state)
{
    expect_error("control_plane: {config_dir: /x}\n"
                 "shutdown:\n"
                 "  drain_timeout: 3x\n",
                 "portcullis.yaml:3: shutdown.drain_timeout: invalid duration \"3x\"");
    expect_error("control_plane: {config_dir: /x}\nshutdown: {drain_timeot: 3s}\n",
                 "portcullis.yaml:2: shutdown.drain_timeot: unknown key (expected one of: "
                 "drain_timeout)");
    expect_error("control_plane: {config_dir: /x}\nbogus: 1\n",
                 "portcullis.yaml:2: bogus: unknown key (expected one of: instance_name, "
                 "listen_address, control_plane, health, shutdown, log_spool, cluster, telemetry, "
                 "tls, workers, log_level)");
    expect_error("control_plane: {config_dir: /x}\nhealth: [1, 2]\n",
                 "portcullis.yaml:2: health: expected a mapping, got a list");
    expect_error("control_plane: {config_dir: /x}\nworkers: four\n",
                 "portcullis.yaml:2: workers: invalid integer \"four\"");
    expect_error("control_plane: {config_dir: /x}\nworkers: '4'\n",
                 "portcullis.yaml:2: workers: expected an integer, got a quoted string");
    expect_error("control_plane: {config_dir: /x}\nworkers: 5000\n",
                 "portcullis.yaml:2: workers: \"5000\" out of range 0..1024");
    expect_error("control_plane: {config_dir: /x}\nworkers: {a: 1}\n",
                 "portcullis.yaml:2: workers: expected an integer, got a mapping");
    expect_error("control_plane: {config_dir: /x}\nlog_spool:\n  max_bytes: 10 GiBs\n",
                 "portcullis.yaml:3: log_spool.max_bytes: invalid size \"10 GiBs\"");
    expect_error("control_plane: {config_dir: /x}\nlog_spool: {max_bytes: 0}\n",
                 "portcullis.yaml:2: log_spool.max_bytes: must be greater than 0");
    expect_error("control_plane: {config_dir: /x}\nhealth: {listen: '0.0.0.0:99999'}\n",
                 "portcullis.yaml:2: health.listen: invalid address (expected host:port) "
                 "\"0.0.0.0:99999\"");
    expect_error("control_plane: {config_dir: /x}\nhealth: {listen: 'localhost'}\n",
                 "portcullis.yaml:2: health.listen: invalid address (expected host:port) "
                 "\"localhost\"");
    expect_error("control_plane: {config_dir: /x}\nlisten_address: not-an-ip\n",
                 "portcullis.yaml:2: listen_address: invalid IP address (e.g. 0.0.0.0, ::, "
                 "127.0.0.1) \"not-an-ip\"");
    expect_error("control_plane: {config_dir: /x}\ncluster: {client_port: 0}\n",
                 "portcullis.yaml:2: cluster.client_port: \"0\" out of range 1..65535");
    expect_error("control_plane: {config_dir: /x}\ncluster: {client_port: 2380}\n",
                 "portcullis.yaml:2: cluster.peer_port: must differ from cluster.client_port");
    expect_error("control_plane: {config_dir: /x}\ncluster: {enabled: maybe}\n",
                 "portcullis.yaml:2: cluster.enabled: expected true or false, got \"maybe\"");
    expect_error("control_plane: {config_dir: /x}\ncluster:\n  discovery: {mode: gossip}\n",
                 "portcullis.yaml:3: cluster.discovery.mode: invalid value \"gossip\" (expected "
                 "static|dns|kubernetes|ecs)");
    expect_error("control_plane: {config_dir: /x}\n"
                 "cluster:\n  enabled: true\n  advertise_address: 10.0.0.1\n"
                 "  discovery: {mode: dns}\n",
                 "portcullis.yaml:5: cluster.discovery.dns_name: required when discovery.mode "
                 "is dns");
    expect_error("control_plane: {config_dir: /x}\n"
                 "cluster:\n  enabled: true\n  advertise_address: 10.0.0.1\n"
                 "  discovery: {mode: kubernetes}\n",
                 "portcullis.yaml:5: cluster.discovery.service: exactly one of service and "
                 "label_selector is required when discovery.mode is kubernetes");
    expect_error("control_plane: {config_dir: /x}\n"
                 "cluster:\n  enabled: true\n  advertise_address: 10.0.0.1\n"
                 "  discovery: {mode: kubernetes, service: a, label_selector: app=a}\n",
                 "portcullis.yaml:5: cluster.discovery.service: exactly one of service and "
                 "label_selector is required when discovery.mode is kubernetes");
    expect_error("control_plane: {config_dir: /x}\n"
                 "cluster:\n  discovery: {mode: ecs, interval: 10ms}\n",
                 "portcullis.yaml:3: cluster.discovery.interval: must be at least 1s");
    expect_error("control_plane: {config_dir: /x}\n"
                 "cluster:\n  discovery: {mode: ecs, ecs_endpoint: 'ecs.amazonaws.com'}\n",
                 "portcullis.yaml:3: cluster.discovery.ecs_endpoint: invalid URL "
                 "\"ecs.amazonaws.com\"");
    expect_error("control_plane: {config_dir: /x}\ncluster:\n  discovery: {peers: a}\n",
                 "portcullis.yaml:3: cluster.discovery.peers: expected a list, got a scalar");
    expect_error("control_plane: {config_dir: /x}\ninstance_name: 'a b'\n",
                 "portcullis.yaml:2: instance_name: invalid instance name (1-253 characters, no "
                 "spaces, quotes or backslashes) \"a b\"");
    expect_error("control_plane: {config_dir: ''}\n",
                 "portcullis.yaml:1: control_plane.config_dir: must not be empty");
    expect_error("control_plane: {config_dir: /x}\ncluster: {data_dir: \"\"}\n",
                 "portcullis.yaml:2: cluster.data_dir: must not be empty");
    expect_error("control_plane: {config_dir: /x}\nlog_level: verbose\n",
                 "portcullis.yaml:2: log_level: invalid value \"verbose\" (expected "
                 "debug|info|warn|error)");
    expect_error("control_plane: {config_dir: /x}\ntelemetry: {otlp_endpoint: 'ftp://x'}\n",
                 "portcullis.yaml:2: telemetry.otlp_endpoint: invalid URL \"ftp://x\"");
    expect_error("control_plane: {config_dir: /x}\ntelemetry: {interval: 0s}\n",
                 "portcullis.yaml:2: telemetry.interval: must be greater than 0");
    expect_error("control_plane: {config_dir: /x}\ntls: {cert: a.pem}\n",
                 "portcullis.yaml:2: tls.key: tls.cert and tls.key must be set together");
    expect_error("control_plane: {config_dir: /x}\ncontrol_plane: {config_dir: /y}\n",
                 "portcullis.yaml:2: control_plane: duplicate key (first at line 1)");
    expect_error("a: [1\n", "portcullis.yaml:2: invalid YAML: did not find expected ',' or ']'");
    expect_error("- 1\n", "portcullis.yaml:1: expected a mapping, got a list");
    expect_error("control_plane: {config_dir: /x}\n---\nworkers: 1\n",
                 "portcullis.yaml:3: expected one YAML document, found 2");
}

static void test_cluster_discovery(void **state)
{
    pc_config_t cfg;
    char err[512];
    assert_true(load("control_plane: {config_dir: /x}\n"
                     "cluster:\n  enabled: true\n  advertise_address: 10.0.0.1\n"
                     "  discovery: {mode: kubernetes, namespace: data, service: portcullis}\n",
                     &cfg, err, sizeof err));
    assert_int_equal(cfg.cluster.discovery_mode, PC_DISCOVERY_KUBERNETES);
    assert_string_equal(cfg.cluster.k8s_namespace, "data");
    assert_string_equal(cfg.cluster.k8s_service, "portcullis");
    pc_config_free(&cfg);
    assert_true(load("control_plane: {config_dir: /x}\n"
                     "cluster:\n  enabled: true\n  advertise_address: 10.0.0.1\n"
                     "  discovery: {mode: ecs, ecs_cluster: prod, ecs_service: pc}\n",
                     &cfg, err, sizeof err));
    assert_int_equal(cfg.cluster.discovery_mode, PC_DISCOVERY_ECS);
    assert_string_equal(cfg.cluster.ecs_cluster, "prod");
    assert_string_equal(cfg.cluster.ecs_service, "pc");
    assert_null(cfg.cluster.ecs_endpoint);
    assert_int_equal(cfg.cluster.discovery_interval_ms, 5000);
    pc_config_free(&cfg);
    /* ecs: cluster and service may come from the task metadata; overrides for tests. */
    assert_true(load("control_plane: {config_dir: /x}\n"
                     "cluster:\n  enabled: true\n  advertise_address: 10.0.0.1\n"
                     "  discovery: {mode: ecs, ecs_endpoint: 'http://127.0.0.1:9', "
                     "ecs_region: eu-west-1, interval: 2s}\n",
                     &cfg, err, sizeof err));
    assert_null(cfg.cluster.ecs_cluster);
    assert_string_equal(cfg.cluster.ecs_endpoint, "http://127.0.0.1:9");
    assert_string_equal(cfg.cluster.ecs_region, "eu-west-1");
    assert_int_equal(cfg.cluster.discovery_interval_ms, 2000);
    pc_config_free(&cfg);
    assert_true(load("control_plane: {config_dir: /x}\n"
                     "cluster:\n  enabled: true\n  advertise_address: 10.0.0.1\n"
                     "  discovery: {mode: kubernetes, label_selector: 'app=pc,tier in (a)', "
                     "api_url: 'https://127.0.0.1:6443', service_account_dir: /sa}\n",
                     &cfg, err, sizeof err));
    assert_null(cfg.cluster.k8s_service);
    assert_string_equal(cfg.cluster.k8s_label_selector, "app=pc,tier in (a)");
    assert_string_equal(cfg.cluster.k8s_api_url, "https://127.0.0.1:6443");
    assert_string_equal(cfg.cluster.k8s_sa_dir, "/sa");
    pc_config_free(&cfg);
    /* A disabled cluster may carry an incomplete discovery block. */
    assert_true(load("control_plane: {config_dir: /x}\ncluster: {discovery: {mode: dns}}\n", &cfg,
                     err, sizeof err));
    pc_config_free(&cfg);
}

static void test_control_plane_rules(void **state)
{
    expect_error("workers: 1\n", "portcullis.yaml:1: control_plane: required: set "
                                 "control_plane.url (remote control plane) or "
                                 "control_plane.config_dir (local files)");
    expect_error("", "portcullis.yaml:1: control_plane: required: set control_plane.url (remote "
                     "control plane) or control_plane.config_dir (local files)");
    expect_error("control_plane:\n  url: https://cp\n  token: t\n  config_dir: /x\n",
                 "portcullis.yaml:4: control_plane: set either url or config_dir, not both");
    expect_error("control_plane: {token: t}\n",
                 "portcullis.yaml:1: control_plane: one of url or config_dir is required");
    expect_error("control_plane: {url: 'https://cp'}\n",
                 "portcullis.yaml:1: control_plane.token: required with control_plane.url");
    expect_error("control_plane: {url: 'cp:8443', token: t}\n",
                 "portcullis.yaml:1: control_plane.url: invalid URL \"cp:8443\"");
    expect_error("control_plane: {config_dir: /x, token: t}\n",
                 "portcullis.yaml:1: control_plane.token: only valid with control_plane.url");
    expect_error("control_plane: {config_dir: /x, ca_file: /ca.pem}\n",
                 "portcullis.yaml:1: control_plane.ca_file: only valid with control_plane.url");
}

static void test_env_expansion(void **state)
{
    pc_config_t cfg;
    char err[512];
    setenv("PC_TEST_TOKEN", "tok-123", 1);
    setenv("PC_TEST_EMPTY", "", 1);
    unsetenv("PC_TEST_UNSET");
    assert_true(load("instance_name: pre-${PC_TEST_UNSET:-dflt}-post\n"
                     "control_plane: {url: 'https://cp', token: '${PC_TEST_TOKEN}'}\n"
                     "log_spool: {dir: '/a/$${literal}/${PC_TEST_EMPTY:-e}'}\n"
                     "workers: ${PC_TEST_UNSET:-3}\n",
                     &cfg, err, sizeof err));
    assert_string_equal(cfg.instance_name, "pre-dflt-post");
    assert_string_equal(cfg.control_plane.token, "tok-123");
    assert_string_equal(cfg.log_spool.dir, "/a/${literal}/e");
    assert_int_equal(cfg.workers, 3);
    pc_config_free(&cfg);

    expect_error("control_plane: {url: 'https://cp', token: '${PC_TEST_UNSET}'}\n",
                 "portcullis.yaml:1: control_plane.token: environment variable PC_TEST_UNSET is "
                 "not set");
    expect_error("control_plane: {config_dir: '/x'}\ninstance_name: ${PC_TEST_TOKEN\n",
                 "portcullis.yaml:2: instance_name: invalid variable reference ${PC_TEST_TOKEN "
                 "(missing '}')");
    expect_error("control_plane: {config_dir: '/x'}\ninstance_name: ${}\n",
                 "portcullis.yaml:2: instance_name: invalid variable reference (expected "
                 "${NAME})");
}

static void test_secret_never_in_error(void **state)
{
    pc_config_t cfg;
    char err[512] = "";
    setenv("PC_TEST_SECRET", "hunter2-very-secret", 1);
    /* A token of the wrong type or next to a bad key: the value must not leak. */
    assert_false(load("control_plane: {url: 'https://cp', token: [hunter2-very-secret]}\n", &cfg,
                      err, sizeof err));
    assert_null(strstr(err, "hunter2"));
    assert_false(load("control_plane: {config_dir: /x, token: '${PC_TEST_SECRET}'}\n", &cfg, err,
                      sizeof err));
    assert_null(strstr(err, "hunter2"));
    assert_false(load("control_plane: {url: 'https://cp', token: '${PC_TEST_SECRET}'}\n"
                      "workers: -1\n",
                      &cfg, err, sizeof err));
    assert_null(strstr(err, "hunter2"));
}

static void test_files_checked(void **state)
{
    pc_config_t cfg;
    char err[512], path[512], expect[1024];
    snprintf(path, sizeof path, "%s/objects", tmpdir);
    assert_int_equal(mkdir(path, 0700), 0);
    write_file("cert.pem", "x");
    write_file("key.pem", "x");
    write_file("a.yaml", "control_plane: {config_dir: objects}\n"
                         "tls: {cert: cert.pem, key: key.pem}\n");
    snprintf(path, sizeof path, "%s/a.yaml", tmpdir);
    assert_true(pc_config_load(path, &cfg, err, sizeof err));
    snprintf(expect, sizeof expect, "%s/objects", tmpdir);
    assert_string_equal(cfg.control_plane.config_dir, expect);
    snprintf(expect, sizeof expect, "%s/cert.pem", tmpdir);
    assert_string_equal(cfg.tls.cert, expect);
    pc_config_free(&cfg);

    write_file("b.yaml", "control_plane: {config_dir: missing}\n");
    snprintf(path, sizeof path, "%s/b.yaml", tmpdir);
    assert_false(pc_config_load(path, &cfg, err, sizeof err));
    snprintf(expect, sizeof expect,
             "%s/b.yaml:1: control_plane.config_dir: cannot access \"%s/missing\": No such file "
             "or directory",
             tmpdir, tmpdir);
    assert_string_equal(err, expect);

    write_file("c.yaml", "control_plane: {config_dir: cert.pem}\n");
    snprintf(path, sizeof path, "%s/c.yaml", tmpdir);
    assert_false(pc_config_load(path, &cfg, err, sizeof err));
    snprintf(expect, sizeof expect,
             "%s/c.yaml:1: control_plane.config_dir: \"%s/cert.pem\" is not a directory", tmpdir,
             tmpdir);
    assert_string_equal(err, expect);

    write_file("d.yaml", "control_plane: {config_dir: objects}\n\n"
                         "tls:\n  cert: cert.pem\n  key: nokey.pem\n");
    snprintf(path, sizeof path, "%s/d.yaml", tmpdir);
    assert_false(pc_config_load(path, &cfg, err, sizeof err));
    snprintf(expect, sizeof expect,
             "%s/d.yaml:5: tls.key: cannot access \"%s/nokey.pem\": No such file or directory",
             tmpdir, tmpdir);
    assert_string_equal(err, expect);

    assert_false(pc_config_load(tmpdir, &cfg, err, sizeof err));
    snprintf(expect, sizeof expect, "%s: cannot read: Is a directory", tmpdir);
    assert_string_equal(err, expect);

    snprintf(path, sizeof path, "%s/none.yaml", tmpdir);
    assert_false(pc_config_load(path, &cfg, err, sizeof err));
    snprintf(expect, sizeof expect, "%s: cannot open: No such file or directory", path);
    assert_string_equal(err, expect);
}

static void test_durations(void **state)
{
    static const struct {
        const char *s;
        uint64_t ms;
    } good[] = {{"500ms", 500},      {"30s", 30000},   {"2m", 120000},  {"1h", 3600000},
                {"1h30m", 5400000},  {"1.5s", 1500},   {"0s", 0},       {"1d", 86400000},
                {"2h0m3s", 7203000}, {"0.25m", 15000}, {"1m1ms", 60001}};
    for (size_t i = 0; i < sizeof good / sizeof *good; i++) {
        uint64_t ms = 12345;
        assert_true(pc_parse_duration_ms(good[i].s, &ms));
        assert_int_equal(ms, good[i].ms);
    }
    static const char *const bad[] = {"",
                                      "30",
                                      "3x",
                                      "s",
                                      "1.s",
                                      ".s",
                                      "-1s",
                                      "1 s",
                                      "1S",
                                      "1h30",
                                      "99999999999999999999s",
                                      "18446744073709551615h",
                                      "1e3s",
                                      "10ms5",
                                      NULL};
    for (size_t i = 0; bad[i]; i++) {
        uint64_t ms;
        assert_false(pc_parse_duration_ms(bad[i], &ms));
    }
}

static void test_sizes(void **state)
{
    static const struct {
        const char *s;
        uint64_t b;
    } good[] = {{"10GiB", 10ull << 30}, {"512MiB", 512ull << 20}, {"1KB", 1000},
                {"1000", 1000},         {"10GB", 10000000000ull}, {"1kib", 1024},
                {"2 MiB", 2ull << 20},  {"1.5KiB", 1536},         {"3B", 3},
                {"1TiB", 1ull << 40}};
    for (size_t i = 0; i < sizeof good / sizeof *good; i++) {
        uint64_t b = 0;
        assert_true(pc_parse_size(good[i].s, &b));
        assert_int_equal(b, good[i].b);
    }
    static const char *const bad[] = {
        "",      "GiB", "10XB", "1.5", "-1", "10 GiBs", "18446744073709551616", "20000000TiB",
        "1  KB", NULL};
    for (size_t i = 0; bad[i]; i++) {
        uint64_t b;
        assert_false(pc_parse_size(bad[i], &b));
    }
    uint64_t max;
    assert_true(pc_parse_size("18446744073709551615", &max));
    assert_int_equal(max, UINT64_MAX);
}

static void test_alias_bomb_and_depth(void **state)
{
    /* Billion laughs: must fail fast with a clear error, not explode. */
    char yaml[4096];
    size_t pos = (size_t)snprintf(yaml, sizeof yaml, "a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
    for (int i = 1; i < 12; i++)
        pos += (size_t)snprintf(yaml + pos, sizeof yaml - pos,
                                "a%d: &a%d [*a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d]\n", i,
                                i, i - 1, i - 1, i - 1, i - 1, i - 1, i - 1, i - 1, i - 1);
    pc_config_t cfg;
    char err[512];
    assert_false(load(yaml, &cfg, err, sizeof err));
    assert_non_null(strstr(err, "alias expansion limit"));

    char deep[512];
    memset(deep, '[', 200);
    deep[200] = '\0';
    assert_false(load(deep, &cfg, err, sizeof err));
    assert_non_null(strstr(err, "nesting deeper than"));

    /* Plain aliases within limits work. */
    assert_true(load("control_plane: &cp {config_dir: /x}\n", &cfg, err, sizeof err));
    pc_config_free(&cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_full_file),
        cmocka_unit_test(test_errors_name_key_and_line),
        cmocka_unit_test(test_control_plane_rules),
        cmocka_unit_test(test_cluster_discovery),
        cmocka_unit_test(test_env_expansion),
        cmocka_unit_test(test_secret_never_in_error),
        cmocka_unit_test(test_files_checked),
        cmocka_unit_test(test_durations),
        cmocka_unit_test(test_sizes),
        cmocka_unit_test(test_alias_bomb_and_depth),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
