/*
 * The connector's own configuration file (design §2): defaults, strict
 * validation, ${VAR} expansion. Every failure is one message of the form
 * "file:line: dotted.key: problem" that never contains a secret value.
 */
#include "core/config.h"
#include "core/yaml_tree.h"

#include <arpa/inet.h>
#include <errno.h>
#include <ifaddrs.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---------- durations and sizes ---------- */

/* Parse "<digits>[.<digits>]" at *p into an integer part and a fraction in
 * parts per 10^9; advances *p. */
static bool parse_decimal(const char **p, uint64_t *whole, uint64_t *nano)
{
    const char *s = *p;
    uint64_t w = 0, f = 0, scale = 100000000;
    bool digits = false;
    while (*s >= '0' && *s <= '9') {
        uint64_t d = (uint64_t)(*s++ - '0');
        if (w > (UINT64_MAX - d) / 10) return false;
        w = w * 10 + d;
        digits = true;
    }
    if (*s == '.') {
        s++;
        bool frac_digits = false;
        while (*s >= '0' && *s <= '9') {
            f += (uint64_t)(*s++ - '0') * scale;
            scale /= 10;
            frac_digits = true;
        }
        if (!frac_digits) return false;
        digits = true;
    }
    if (!digits) return false;
    *whole = w;
    *nano = f;
    *p = s;
    return true;
}

/* whole.nano * unit, checked; fractions below one unit of the result are dropped. */
static bool scale_checked(uint64_t whole, uint64_t nano, uint64_t unit, uint64_t *out)
{
    if (whole && unit > UINT64_MAX / whole) return false;
    uint64_t v = whole * unit;
    /* nano < 1e9 and unit may be large: split to avoid overflow. */
    uint64_t frac = (unit / 1000000000u) * nano + ((unit % 1000000000u) * nano) / 1000000000u;
    if (v > UINT64_MAX - frac) return false;
    *out = v + frac;
    return true;
}

bool pc_parse_duration_ms(const char *s, uint64_t *out_ms)
{
    static const struct {
        const char *name;
        uint64_t ms;
    } units[] = {{"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}, {"d", 86400000}};
    if (!s || !*s) return false;
    uint64_t total = 0;
    const char *p = s;
    while (*p) {
        uint64_t whole, nano;
        if (!parse_decimal(&p, &whole, &nano)) return false;
        const char *u = p;
        while ((*p >= 'a' && *p <= 'z'))
            p++;
        size_t ulen = (size_t)(p - u);
        uint64_t unit = 0;
        for (size_t i = 0; i < PC_ARRAY_LEN(units); i++)
            if (strlen(units[i].name) == ulen && memcmp(units[i].name, u, ulen) == 0)
                unit = units[i].ms;
        if (!unit) return false; /* a unit is required: "30" is ambiguous */
        uint64_t part;
        if (!scale_checked(whole, nano, unit, &part)) return false;
        if (total > UINT64_MAX - part) return false;
        total += part;
    }
    *out_ms = total;
    return true;
}

bool pc_parse_size(const char *s, uint64_t *out_bytes)
{
    static const struct {
        const char *name;
        uint64_t mult;
    } units[] = {
        {"", 1},
        {"b", 1},
        {"k", 1000ull},
        {"kb", 1000ull},
        {"ki", 1ull << 10},
        {"kib", 1ull << 10},
        {"m", 1000000ull},
        {"mb", 1000000ull},
        {"mi", 1ull << 20},
        {"mib", 1ull << 20},
        {"g", 1000000000ull},
        {"gb", 1000000000ull},
        {"gi", 1ull << 30},
        {"gib", 1ull << 30},
        {"t", 1000000000000ull},
        {"tb", 1000000000000ull},
        {"ti", 1ull << 40},
        {"tib", 1ull << 40},
    };
    if (!s || !*s) return false;
    const char *p = s;
    uint64_t whole, nano;
    if (!parse_decimal(&p, &whole, &nano)) return false;
    if (*p == ' ') p++;
    char unit[4];
    size_t ulen = strlen(p);
    if (ulen >= sizeof unit) return false;
    for (size_t i = 0; i < ulen; i++) {
        char c = p[i];
        if (c >= 'A' && c <= 'Z') c = (char)(c - 'A' + 'a');
        if (c < 'a' || c > 'z') return false;
        unit[i] = c;
    }
    unit[ulen] = '\0';
    for (size_t i = 0; i < PC_ARRAY_LEN(units); i++)
        if (strcmp(units[i].name, unit) == 0) {
            if (units[i].mult == 1 && nano) return false; /* "1.5" bytes */
            return scale_checked(whole, nano, units[i].mult, out_bytes);
        }
    return false;
}

/* ---------- helpers ---------- */

static char *join_path(const char *base_dir, const char *p)
{
    if (p[0] == '/' || !base_dir || !*base_dir || strcmp(base_dir, ".") == 0) return pc_xstrdup(p);
    size_t n = strlen(base_dir) + 1 + strlen(p) + 1;
    char *out = pc_xmalloc(n);
    snprintf(out, n, "%s/%s", base_dir, p);
    return out;
}

static bool valid_ip(const char *s)
{
    unsigned char buf[sizeof(struct in6_addr)];
    return inet_pton(AF_INET, s, buf) == 1 || inet_pton(AF_INET6, s, buf) == 1;
}

/* "host:port" or "[v6]:port" with port 1..65535. */
static bool valid_host_port(const char *s)
{
    const char *colon = strrchr(s, ':');
    if (!colon || colon == s) return false;
    if (s[0] == '[') {
        if (colon[-1] != ']' || colon - s < 3) return false;
        char host[INET6_ADDRSTRLEN + 1];
        size_t hl = (size_t)(colon - 1 - (s + 1));
        if (hl >= sizeof host) return false;
        memcpy(host, s + 1, hl);
        host[hl] = '\0';
        unsigned char buf[sizeof(struct in6_addr)];
        if (inet_pton(AF_INET6, host, buf) != 1) return false;
    } else {
        for (const char *h = s; h < colon; h++)
            if (*h == ':' || *h == ' ' || *h == '/') return false;
    }
    const char *port = colon + 1;
    if (!*port || strlen(port) > 5) return false;
    long v = 0;
    for (const char *q = port; *q; q++) {
        if (*q < '0' || *q > '9') return false;
        v = v * 10 + (*q - '0');
    }
    return v >= 1 && v <= 65535;
}

/* The first non-loopback address: IPv4 preferred, then global IPv6. */
static char *first_non_loopback_address(void)
{
    struct ifaddrs *ifs = NULL;
    if (getifaddrs(&ifs) != 0) return NULL;
    char best[INET6_ADDRSTRLEN] = "";
    for (int pass = 0; pass < 2 && !best[0]; pass++)
        for (struct ifaddrs *i = ifs; i && !best[0]; i = i->ifa_next) {
            if (!i->ifa_addr) continue;
            if (pass == 0 && i->ifa_addr->sa_family == AF_INET) {
                const struct sockaddr_in *a = (const struct sockaddr_in *)(void *)i->ifa_addr;
                if ((ntohl(a->sin_addr.s_addr) >> 24) == 127) continue;
                inet_ntop(AF_INET, &a->sin_addr, best, sizeof best);
            } else if (pass == 1 && i->ifa_addr->sa_family == AF_INET6) {
                const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)(void *)i->ifa_addr;
                if (IN6_IS_ADDR_LOOPBACK(&a->sin6_addr) || IN6_IS_ADDR_LINKLOCAL(&a->sin6_addr))
                    continue;
                inet_ntop(AF_INET6, &a->sin6_addr, best, sizeof best);
            }
        }
    freeifaddrs(ifs);
    return best[0] ? pc_xstrdup(best) : NULL;
}

static char *default_instance_name(void)
{
    const char *h = getenv("HOSTNAME");
    if (h && *h) return pc_xstrdup(h);
    char buf[HOST_NAME_MAX + 1];
    if (gethostname(buf, sizeof buf) == 0) {
        buf[sizeof buf - 1] = '\0';
        if (buf[0]) return pc_xstrdup(buf);
    }
    return pc_xstrdup("portcullis");
}

static void set_defaults(pc_config_t *c)
{
    memset(c, 0, sizeof *c);
    c->listen_address = pc_xstrdup("0.0.0.0");
    c->health.listen = pc_xstrdup("0.0.0.0:8080");
    c->shutdown.drain_timeout_ms = 30000;
    c->log_spool.dir = pc_xstrdup("/var/lib/portcullis/logs");
    c->log_spool.max_bytes = 10ull << 30;
    c->cluster.enabled = false;
    c->cluster.discovery_mode = PC_DISCOVERY_STATIC;
    c->cluster.client_port = 2379;
    c->cluster.peer_port = 2380;
    c->cluster.data_dir = pc_xstrdup("./default.etcd");
    c->cluster.dead_member_timeout_ms = 60000;
    c->cluster.discovery_interval_ms = 5000;
    c->telemetry.interval_ms = 10000;
    c->workers = 0;
    c->log_level = pc_xstrdup("info");
}

void pc_config_free(pc_config_t *c)
{
    if (!c) return;
    free(c->instance_name);
    free(c->listen_address);
    free(c->control_plane.url);
    pc__free_secret(c->control_plane.token);
    free(c->control_plane.config_dir);
    free(c->control_plane.ca_file);
    free(c->health.listen);
    free(c->log_spool.dir);
    free(c->cluster.advertise_address);
    for (size_t i = 0; i < c->cluster.n_peers; i++)
        free(c->cluster.peers[i]);
    free(c->cluster.peers);
    free(c->cluster.dns_name);
    free(c->cluster.k8s_namespace);
    free(c->cluster.k8s_service);
    free(c->cluster.ecs_cluster);
    free(c->cluster.ecs_service);
    free(c->cluster.k8s_label_selector);
    free(c->cluster.k8s_api_url);
    free(c->cluster.k8s_sa_dir);
    free(c->cluster.ecs_endpoint);
    free(c->cluster.ecs_region);
    free(c->cluster.etcd_binary);
    free(c->cluster.data_dir);
    free(c->telemetry.otlp_endpoint);
    free(c->tls.cert);
    free(c->tls.key);
    free(c->log_level);
    memset(c, 0, sizeof *c);
}

/* Run a check on a string option after it was read; names the key on failure. */
static bool check_str(pc__yctx_t *c, const pc__ynode_t *map, const char *key, const char *value,
                      bool (*ok)(const char *), const char *what)
{
    if (!value || ok(value)) return true;
    size_t prev = pc__ypath_push_key(&c->path, key);
    char q[96];
    pc__quote_value(q, sizeof q, value, strlen(value));
    pc__yfail(c, pc__ymap_line(map, key), "invalid %s %s", what, q);
    pc__ypath_pop(&c->path, prev);
    return false;
}

/* A path read from the file, made relative to the file's directory, checked to exist. */
static bool resolve_path(pc__yctx_t *c, const pc__ynode_t *map, const char *key,
                         const char *base_dir, bool check, bool want_dir, char **value)
{
    if (!*value) return true;
    char *full = join_path(base_dir, *value);
    free(*value);
    *value = full;
    if (!check) return true;
    struct stat st;
    const char *problem = NULL;
    int saved = 0;
    if (stat(full, &st) != 0) {
        saved = errno;
    } else if (want_dir && !S_ISDIR(st.st_mode)) {
        problem = "is not a directory";
    } else if (!want_dir && !S_ISREG(st.st_mode)) {
        problem = "is not a regular file";
    } else if (access(full, want_dir ? (R_OK | X_OK) : R_OK) != 0) {
        saved = errno;
    }
    if (!problem && !saved) return true;
    size_t prev = pc__ypath_push_key(&c->path, key);
    char q[300];
    pc__quote_value(q, sizeof q, full, strlen(full));
    if (problem)
        pc__yfail(c, pc__ymap_line(map, key), "%s %s", q, problem);
    else
        pc__yfail(c, pc__ymap_line(map, key), "cannot access %s: %s", q, strerror(saved));
    pc__ypath_pop(&c->path, prev);
    return false;
}

/* Strings in the connector file: "" is never meaningful (leave the key out for
 * the default), and an empty path would silently mean "the file's directory". */
static bool get_str(pc__yctx_t *c, const pc__ynode_t *map, const char *key, char **out)
{
    if (!pc__yget_str(c, map, key, out)) return false;
    if (!*out || **out) return true;
    size_t prev = pc__ypath_push_key(&c->path, key);
    pc__yfail(c, pc__ymap_line(map, key), "must not be empty");
    pc__ypath_pop(&c->path, prev);
    return false;
}

/* ---------- sections ---------- */

static bool load_control_plane(pc__yctx_t *c, const pc__ynode_t *root, const char *base_dir,
                               bool check_files, pc_config_t *out)
{
    static const char *const keys[] = {"url", "token", "config_dir", "ca_file", NULL};
    const pc__ynode_t *m = pc__ymap_get(root, "control_plane");
    size_t prev = pc__ypath_push_key(&c->path, "control_plane");
    bool ok = false;
    if (!m) {
        pc__yfail(c, root ? root->line : 1,
                  "required: set control_plane.url (remote control plane) or "
                  "control_plane.config_dir (local files)");
        goto out;
    }
    if (!pc__ymap_check(c, m, keys) || !get_str(c, m, "url", &out->control_plane.url) ||
        !get_str(c, m, "token", &out->control_plane.token) ||
        !get_str(c, m, "config_dir", &out->control_plane.config_dir) ||
        !get_str(c, m, "ca_file", &out->control_plane.ca_file))
        goto out;
    if (out->control_plane.url && out->control_plane.config_dir) {
        pc__yfail(c, pc__ymap_line(m, "config_dir"), "set either url or config_dir, not both");
        goto out;
    }
    if (!out->control_plane.url && !out->control_plane.config_dir) {
        pc__yfail(c, m->line, "one of url or config_dir is required");
        goto out;
    }
    if (!check_str(c, m, "url", out->control_plane.url, pc__valid_http_url, "URL")) goto out;
    if (out->control_plane.url && !out->control_plane.token) {
        size_t p2 = pc__ypath_push_key(&c->path, "token");
        pc__yfail(c, m->line, "required with control_plane.url");
        pc__ypath_pop(&c->path, p2);
        goto out;
    }
    if (out->control_plane.token && !*out->control_plane.token) {
        size_t p2 = pc__ypath_push_key(&c->path, "token");
        pc__yfail(c, pc__ymap_line(m, "token"), "must not be empty");
        pc__ypath_pop(&c->path, p2);
        goto out;
    }
    if (out->control_plane.config_dir && out->control_plane.token) {
        size_t p2 = pc__ypath_push_key(&c->path, "token");
        pc__yfail(c, pc__ymap_line(m, "token"), "only valid with control_plane.url");
        pc__ypath_pop(&c->path, p2);
        goto out;
    }
    if (out->control_plane.ca_file && !out->control_plane.url) {
        size_t p2 = pc__ypath_push_key(&c->path, "ca_file");
        pc__yfail(c, pc__ymap_line(m, "ca_file"), "only valid with control_plane.url");
        pc__ypath_pop(&c->path, p2);
        goto out;
    }
    ok = resolve_path(c, m, "config_dir", base_dir, check_files, true,
                      &out->control_plane.config_dir) &&
         resolve_path(c, m, "ca_file", base_dir, check_files, false, &out->control_plane.ca_file);
out:
    pc__ypath_pop(&c->path, prev);
    return ok;
}

/* Enter a sub-mapping of root: NULL node (absent/null) is fine and means defaults. */
static bool enter_section(pc__yctx_t *c, const pc__ynode_t *root, const char *key,
                          const char *const *keys, const pc__ynode_t **m, size_t *prev)
{
    *m = pc__ymap_get(root, key);
    *prev = pc__ypath_push_key(&c->path, key);
    return !*m || pc__ymap_check(c, *m, keys);
}

static bool nonempty(const char *s)
{
    return *s != '\0';
}

/* Instance names end up in metric labels, etcd member names and audit records. */
static bool valid_instance_name(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 253) return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] <= ' ' || s[i] == 0x7f || s[i] == '"' || s[i] == '\\') return false;
    return true;
}

static bool load_cluster(pc__yctx_t *c, const pc__ynode_t *root, const char *base_dir,
                         pc_config_t *out)
{
    static const char *const keys[] = {
        "enabled",  "advertise_address",   "discovery",   "client_port", "peer_port",
        "data_dir", "dead_member_timeout", "etcd_binary", NULL};
    static const char *const dkeys[] = {"mode",         "peers",
                                        "dns_name",     "namespace",
                                        "service",      "label_selector",
                                        "api_url",      "service_account_dir",
                                        "ecs_cluster",  "ecs_service",
                                        "ecs_endpoint", "ecs_region",
                                        "interval",     NULL};
    static const char *const modes[] = {"static", "dns", "kubernetes", "ecs", NULL};
    const pc__ynode_t *m, *d;
    size_t prev, dprev;
    int64_t cport = out->cluster.client_port, pport = out->cluster.peer_port;
    bool ok = false;
    char *data_dir = NULL;
    if (!enter_section(c, root, "cluster", keys, &m, &prev)) goto out;
    if (!pc__yget_bool(c, m, "enabled", &out->cluster.enabled) ||
        !get_str(c, m, "advertise_address", &out->cluster.advertise_address) ||
        !pc__yget_int(c, m, "client_port", 1, 65535, &cport) ||
        !pc__yget_int(c, m, "peer_port", 1, 65535, &pport) ||
        !get_str(c, m, "data_dir", &data_dir) ||
        !pc__yget_duration(c, m, "dead_member_timeout", &out->cluster.dead_member_timeout_ms) ||
        !get_str(c, m, "etcd_binary", &out->cluster.etcd_binary))
        goto out;
    if (data_dir) {
        free(out->cluster.data_dir);
        out->cluster.data_dir = join_path(base_dir, data_dir);
    }
    out->cluster.client_port = (int)cport;
    out->cluster.peer_port = (int)pport;
    if (cport == pport) {
        size_t p2 = pc__ypath_push_key(&c->path, "peer_port");
        pc__yfail(c, pc__ymap_line(m, "peer_port"), "must differ from cluster.client_port");
        pc__ypath_pop(&c->path, p2);
        goto out;
    }
    if (!check_str(c, m, "advertise_address", out->cluster.advertise_address, nonempty, "address"))
        goto out;
    if (!enter_section(c, m, "discovery", dkeys, &d, &dprev)) goto out_d;
    int mode = (int)out->cluster.discovery_mode;
    if (!pc__yget_enum(c, d, "mode", modes, &mode) ||
        !pc__yget_str_list(c, d, "peers", &out->cluster.peers, &out->cluster.n_peers) ||
        !get_str(c, d, "dns_name", &out->cluster.dns_name) ||
        !get_str(c, d, "namespace", &out->cluster.k8s_namespace) ||
        !get_str(c, d, "service", &out->cluster.k8s_service) ||
        !get_str(c, d, "ecs_cluster", &out->cluster.ecs_cluster) ||
        !get_str(c, d, "ecs_service", &out->cluster.ecs_service) ||
        !get_str(c, d, "label_selector", &out->cluster.k8s_label_selector) ||
        !get_str(c, d, "api_url", &out->cluster.k8s_api_url) ||
        !get_str(c, d, "ecs_endpoint", &out->cluster.ecs_endpoint) ||
        !get_str(c, d, "ecs_region", &out->cluster.ecs_region) ||
        !pc__yget_duration(c, d, "interval", &out->cluster.discovery_interval_ms) ||
        !get_str(c, d, "service_account_dir", &out->cluster.k8s_sa_dir) ||
        !resolve_path(c, d, "service_account_dir", base_dir, false, true, &out->cluster.k8s_sa_dir))
        goto out_d;
    out->cluster.discovery_mode = (pc_discovery_mode_t)mode;
    if (!check_str(c, d, "api_url", out->cluster.k8s_api_url, pc__valid_http_url, "URL") ||
        !check_str(c, d, "ecs_endpoint", out->cluster.ecs_endpoint, pc__valid_http_url, "URL"))
        goto out_d;
    for (size_t i = 0; i < out->cluster.n_peers; i++)
        if (!out->cluster.peers[i][0]) {
            size_t p2 = pc__ypath_push_key(&c->path, "peers");
            pc__ypath_push_index(&c->path, i);
            pc__yfail(c, pc__ymap_line(d, "peers"), "empty peer address");
            pc__ypath_pop(&c->path, p2);
            goto out_d;
        }
    if (out->cluster.discovery_interval_ms < 1000) {
        size_t p2 = pc__ypath_push_key(&c->path, "interval");
        pc__yfail(c, pc__ymap_line(d, "interval"), "must be at least 1s");
        pc__ypath_pop(&c->path, p2);
        goto out_d;
    }
    /* What each mode needs, checked only when the cluster is on. */
    const char *missing = NULL;
    if (out->cluster.enabled && mode == PC_DISCOVERY_DNS && !out->cluster.dns_name)
        missing = "dns_name";
    if (out->cluster.enabled && mode == PC_DISCOVERY_KUBERNETES &&
        !out->cluster.k8s_service == !out->cluster.k8s_label_selector) {
        (void)pc__ypath_push_key(&c->path, "service");
        pc__yfail(c,
                  d   ? d->line
                  : m ? m->line
                      : 1,
                  "exactly one of service and label_selector is required when discovery.mode "
                  "is kubernetes");
        goto out_d;
    }
    if (missing) {
        (void)pc__ypath_push_key(&c->path, missing);
        pc__yfail(c,
                  d   ? d->line
                  : m ? m->line
                      : 1,
                  "required when discovery.mode is %s", modes[mode]);
        goto out_d;
    }
    ok = true;
out_d:
    pc__ypath_pop(&c->path, dprev);
    if (!ok) goto out;
    if (!out->cluster.advertise_address)
        out->cluster.advertise_address = first_non_loopback_address();
    if (out->cluster.enabled && !out->cluster.advertise_address) {
        size_t p2 = pc__ypath_push_key(&c->path, "advertise_address");
        pc__yfail(c, m ? m->line : 1, "no non-loopback address found on this host; set it");
        pc__ypath_pop(&c->path, p2);
        ok = false;
    }
out:
    free(data_dir);
    pc__ypath_pop(&c->path, prev);
    return ok;
}

static bool load_root(pc__yctx_t *c, const pc__ynode_t *root, const char *base_dir,
                      bool check_files, pc_config_t *out)
{
    static const char *const keys[] = {
        "instance_name", "listen_address", "control_plane", "health",  "shutdown",  "log_spool",
        "cluster",       "telemetry",      "tls",           "workers", "log_level", NULL};
    static const char *const levels[] = {"debug", "info", "warn", "error", NULL};
    if (!pc__ymap_check(c, root, keys)) return false;
    int64_t workers = 0;
    int level = 1;
    if (!get_str(c, root, "instance_name", &out->instance_name) ||
        !get_str(c, root, "listen_address", &out->listen_address) ||
        !pc__yget_int(c, root, "workers", 0, 1024, &workers) ||
        !pc__yget_enum(c, root, "log_level", levels, &level))
        return false;
    out->workers = (unsigned)workers;
    free(out->log_level);
    out->log_level = pc_xstrdup(levels[level]);
    if (!check_str(c, root, "instance_name", out->instance_name, valid_instance_name,
                   "instance name (1-253 characters, no spaces, quotes or backslashes)") ||
        !check_str(c, root, "listen_address", out->listen_address, valid_ip,
                   "IP address (e.g. 0.0.0.0, ::, 127.0.0.1)"))
        return false;

    const pc__ynode_t *m;
    size_t prev;
    static const char *const health_keys[] = {"listen", NULL};
    if (!enter_section(c, root, "health", health_keys, &m, &prev) ||
        !get_str(c, m, "listen", &out->health.listen) ||
        !check_str(c, m, "listen", out->health.listen, valid_host_port,
                   "address (expected host:port)"))
        return false;
    pc__ypath_pop(&c->path, prev);

    static const char *const shutdown_keys[] = {"drain_timeout", NULL};
    if (!enter_section(c, root, "shutdown", shutdown_keys, &m, &prev) ||
        !pc__yget_duration(c, m, "drain_timeout", &out->shutdown.drain_timeout_ms))
        return false;
    pc__ypath_pop(&c->path, prev);

    static const char *const spool_keys[] = {"dir", "max_bytes", NULL};
    char *spool_dir = NULL;
    if (!enter_section(c, root, "log_spool", spool_keys, &m, &prev) ||
        !get_str(c, m, "dir", &spool_dir) ||
        !pc__yget_size(c, m, "max_bytes", &out->log_spool.max_bytes)) {
        free(spool_dir);
        return false;
    }
    if (spool_dir) {
        free(out->log_spool.dir);
        out->log_spool.dir = join_path(base_dir, spool_dir);
        free(spool_dir);
    }
    if (!check_str(c, m, "dir", out->log_spool.dir, nonempty, "directory")) return false;
    if (out->log_spool.max_bytes == 0) {
        (void)pc__ypath_push_key(&c->path, "max_bytes");
        pc__yfail(c, pc__ymap_line(m, "max_bytes"), "must be greater than 0");
        return false;
    }
    pc__ypath_pop(&c->path, prev);

    static const char *const telemetry_keys[] = {"otlp_endpoint", "interval", NULL};
    if (!enter_section(c, root, "telemetry", telemetry_keys, &m, &prev) ||
        !get_str(c, m, "otlp_endpoint", &out->telemetry.otlp_endpoint) ||
        !pc__yget_duration(c, m, "interval", &out->telemetry.interval_ms) ||
        !check_str(c, m, "otlp_endpoint", out->telemetry.otlp_endpoint, pc__valid_http_url, "URL"))
        return false;
    if (out->telemetry.interval_ms == 0) {
        pc__ypath_push_key(&c->path, "interval");
        return pc__yfail(c, pc__ymap_line(m, "interval"), "must be greater than 0");
    }
    pc__ypath_pop(&c->path, prev);

    static const char *const tls_keys[] = {"cert", "key", NULL};
    if (!enter_section(c, root, "tls", tls_keys, &m, &prev) ||
        !get_str(c, m, "cert", &out->tls.cert) || !get_str(c, m, "key", &out->tls.key))
        return false;
    if (!out->tls.cert != !out->tls.key) {
        pc__ypath_push_key(&c->path, out->tls.cert ? "key" : "cert");
        return pc__yfail(c, m->line, "tls.cert and tls.key must be set together");
    }
    if (!resolve_path(c, m, "cert", base_dir, check_files, false, &out->tls.cert) ||
        !resolve_path(c, m, "key", base_dir, check_files, false, &out->tls.key))
        return false;
    pc__ypath_pop(&c->path, prev);

    return load_control_plane(c, root, base_dir, check_files, out) &&
           load_cluster(c, root, base_dir, out);
}

bool pc_config_load_yaml(const char *yaml, size_t len, const char *origin, const char *base_dir,
                         bool check_files, pc_config_t *out, char *err, size_t errlen)
{
    pc__yctx_t c = {.origin = origin, .err = err, .errlen = errlen, .expand_env = true};
    pc__ydoc_t doc;
    set_defaults(out);
    if (errlen) err[0] = '\0';
    if (!pc__yaml_parse(yaml, len, origin, &doc, err, errlen)) goto fail;
    bool ok;
    if (doc.n_roots > 1) {
        ok =
            pc__yfail(&c, doc.roots[1]->line, "expected one YAML document, found %zu", doc.n_roots);
    } else if (doc.n_roots == 0 || pc__yaml_is_null(doc.roots[0])) {
        /* An empty file still needs a control plane: the check names it. */
        ok = load_control_plane(&c, NULL, base_dir, check_files, out);
    } else {
        ok = load_root(&c, doc.roots[0], base_dir, check_files, out);
    }
    pc__yaml_free(&doc);
    if (!ok) goto fail;
    if (!out->instance_name) out->instance_name = default_instance_name();
    return true;
fail:
    pc_config_free(out);
    return false;
}

bool pc_config_load(const char *path, pc_config_t *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    size_t n;
    char *buf = pc__read_file(path, 4u << 20, &n, err, errlen);
    if (!buf) return false;
    /* Relative paths inside the file are relative to the file's directory. */
    char *base = pc_xstrdup(path);
    char *slash = strrchr(base, '/');
    if (slash)
        slash == base ? (void)(slash[1] = '\0') : (void)(*slash = '\0');
    else
        memcpy(base, ".", 2); /* base holds strlen(path)+1 >= 2 bytes */
    bool ok = pc_config_load_yaml(buf, n, path, base, true, out, err, errlen);
    explicit_bzero(buf, n);
    free(buf);
    free(base);
    return ok;
}
