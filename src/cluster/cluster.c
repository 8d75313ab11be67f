/*
 * The cluster supervisor (design §8): runs an etcd member as a child process,
 * forms or joins the cluster through discovery, removes members that stay
 * dead, and leaves gracefully. Counter exchange lives in sync.c.
 *
 * One background thread does all of this; it is also the thread that forks
 * etcd, and etcd gets PR_SET_PDEATHSIG from it, so the thread lives until
 * etcd is stopped (pc_cluster_leave asks it to finish).
 */
#include "cluster/cluster.h"

#include "cluster/cluster_int.h"
#include "cluster/discovery.h"
#include "cluster/etcd.h"
#include "cluster/sync.h"
#include "core/log.h"
#include "core/metrics.h"

#include <arpa/inet.h>
#include <inttypes.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netdb.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_MEMBERS 16
#define CALL_MS 2000L
#define MEMBER_CALL_MS 9000L /* above etcd's own 7 s request timeout */

typedef struct {
    char id[24];
    int64_t down_since_ms; /* 0 = reachable at the last probe */
} seen_t;

struct pc_cluster {
    const pc_config_t *cfg;
    char name[96];
    char client_url[160], peer_url[160];
    char etcd_bin[512];
    pthread_t sup;
    bool sup_started;
    pthread_t logt;
    atomic_bool leave_requested;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    /* supervisor-only */
    pid_t pid;
    bool log_thread;
    int64_t started_ms;
    unsigned fast_failures;
    unsigned spawns;
    bool start_error_logged;
    seen_t seen[MAX_MEMBERS];
    atomic_bool removed_seen; /* etcd said "permanently removed" */
    /* shared with readers (status) */
    atomic_bool fatal;   /* cannot ever run etcd (data dir, binary) */
    atomic_bool running; /* etcd answers */
    atomic_bool forming; /* first formation not finished */
    atomic_int role;     /* 0 unknown, 1 leader, 2 follower, 3 learner */
    atomic_uint members;
    atomic_uint_fast64_t leader_id;
    atomic_int_fast64_t last_sync_ms;
    pc__sync_t *sync;
    pc__discovery_t *disc; /* kubernetes / ecs; supervisor thread only */
};

static pc_cluster_t g_cluster; /* one per process; metrics probes point at it for good */

static int64_t mono_ms(void)
{
    return (int64_t)(pc_now_mono_ns() / 1000000u);
}

static void set_members(pc_cluster_t *c, unsigned n)
{
    atomic_store(&c->members, n);
    pc_metrics_cluster_members(n);
}

void pc__cluster_touch(pc_cluster_t *c)
{
    atomic_store(&c->last_sync_ms, mono_ms());
}

/* Sleeps up to ms, waking early when leave is requested; false then. */
static bool nap(pc_cluster_t *c, int64_t ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&c->mu);
    while (!atomic_load(&c->leave_requested))
        if (pthread_cond_timedwait(&c->cv, &c->mu, &ts) == ETIMEDOUT) break;
    pthread_mutex_unlock(&c->mu);
    return !atomic_load(&c->leave_requested);
}

static void host_url(char *out, size_t cap, const char *host, int port)
{
    if (strchr(host, ':'))
        snprintf(out, cap, "http://[%s]:%d", host, port);
    else
        snprintf(out, cap, "http://%s:%d", host, port);
}

/* ---- data dir --------------------------------------------------------------------- */

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

static void wipe_data_dir(pc_cluster_t *c)
{
    if (nftw(c->cfg->cluster.data_dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS) != 0 && errno != ENOENT)
        pc_log_warn("cannot wipe the etcd data dir", PC_LSTR("dir", c->cfg->cluster.data_dir),
                    PC_LSTR("error", strerror(errno)));
}

static bool has_member_data(pc_cluster_t *c)
{
    char p[1024];
    struct stat st;
    snprintf(p, sizeof p, "%s/member", c->cfg->cluster.data_dir);
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

/* mkdir -p, then prove we can write: the one clear error comes from here. */
static bool prepare_data_dir(pc_cluster_t *c, char *err, size_t errlen)
{
    const char *dir = c->cfg->cluster.data_dir;
    char path[1024];
    if (snprintf(path, sizeof path, "%s", dir) >= (int)sizeof path) {
        snprintf(err, errlen, "path too long");
        return false;
    }
    for (char *p = path + 1; *p; p++)
        if (*p == '/') {
            *p = '\0';
            if (mkdir(path, 0700) != 0 && errno != EEXIST) goto fail;
            *p = '/';
        }
    if (mkdir(path, 0700) != 0 && errno != EEXIST) goto fail;
    char probe[1100];
    snprintf(probe, sizeof probe, "%s/.portcullis-write-test", dir);
    int fd = open(probe, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) goto fail;
    bool ok = write(fd, "ok", 2) == 2;
    close(fd);
    unlink(probe);
    if (ok) return true;
fail:
    snprintf(err, errlen, "%s: %s", path, strerror(errno ? errno : EIO));
    return false;
}

static bool find_binary(pc_cluster_t *c)
{
    const char *want = c->cfg->cluster.etcd_binary ? c->cfg->cluster.etcd_binary : "etcd";
    if (strchr(want, '/')) {
        snprintf(c->etcd_bin, sizeof c->etcd_bin, "%s", want);
        return access(want, X_OK) == 0;
    }
    const char *path = getenv("PATH");
    char *dup = pc_xstrdup(path && *path ? path : "/usr/local/bin:/usr/bin:/bin");
    bool found = false;
    char *save = NULL;
    for (char *d = strtok_r(dup, ":", &save); d && !found; d = strtok_r(NULL, ":", &save)) {
        snprintf(c->etcd_bin, sizeof c->etcd_bin, "%s/%s", d, want);
        found = access(c->etcd_bin, X_OK) == 0;
    }
    free(dup);
    return found;
}

/* ---- the etcd child ------------------------------------------------------------------ */

static pc_log_level_t etcd_level(const char *lvl)
{
    if (!lvl) return PC_LOG_INFO;
    if (!strcmp(lvl, "debug")) return PC_LOG_DEBUG;
    if (!strcmp(lvl, "warn")) return PC_LOG_WARN;
    if (!strcmp(lvl, "error") || !strcmp(lvl, "panic") || !strcmp(lvl, "fatal"))
        return PC_LOG_ERROR;
    return PC_LOG_INFO;
}

typedef struct {
    pc_cluster_t *c;
    int fd;
} logarg_t;

static void log_etcd_line(pc_cluster_t *c, const char *line, size_t len)
{
    if (!len) return;
    if (memmem(line, len, "permanently removed", 19)) atomic_store(&c->removed_seen, true);
    json_t *j = json_loadb(line, len, 0, NULL);
    char *msg = json_string_value(json_object_get(j, "msg"))
                    ? pc_xstrdup(json_string_value(json_object_get(j, "msg")))
                    : NULL;
    pc_log_level_t lvl = etcd_level(json_string_value(json_object_get(j, "level")));
    if (lvl < pc_log_level) {
        json_decref(j);
        free(msg);
        return;
    }
    if (j && msg) {
        json_object_del(j, "msg");
        json_object_del(j, "ts");
        json_object_del(j, "level");
        char *raw = json_dumps(j, JSON_COMPACT);
        pc_log(lvl, msg, PC_LSTR("component", "etcd"), PC_LRAW("etcd", raw ? raw : "{}"));
        free(raw);
    } else {
        pc_log(lvl, "etcd output", PC_LSTR("component", "etcd"), PC_LSTRN("line", line, len));
    }
    free(msg);
    json_decref(j);
}

static void *log_main(void *arg)
{
    logarg_t *la = arg;
    char buf[16384];
    size_t have = 0;
    for (;;) {
        ssize_t n = read(la->fd, buf + have, sizeof buf - have);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        have += (size_t)n;
        size_t start = 0;
        for (size_t i = 0; i < have; i++)
            if (buf[i] == '\n') {
                log_etcd_line(la->c, buf + start, i - start);
                start = i + 1;
            }
        if (start == 0 && have == sizeof buf) { /* an absurd line: log it cut */
            log_etcd_line(la->c, buf, have);
            have = 0;
        } else {
            memmove(buf, buf + start, have - start);
            have -= start;
        }
    }
    close(la->fd);
    free(la);
    return NULL;
}

static bool spawn_etcd(pc_cluster_t *c, const char *initial_cluster, const char *state)
{
    char listen_c[200], listen_p[200];
    snprintf(listen_c, sizeof listen_c, "--listen-client-urls=%s", c->client_url);
    snprintf(listen_p, sizeof listen_p, "--listen-peer-urls=%s", c->peer_url);
    char adv_c[200], adv_p[200], ic[4096], st[64], name[128], data[1100];
    snprintf(adv_c, sizeof adv_c, "--advertise-client-urls=%s", c->client_url);
    snprintf(adv_p, sizeof adv_p, "--initial-advertise-peer-urls=%s", c->peer_url);
    snprintf(ic, sizeof ic, "--initial-cluster=%s", initial_cluster);
    snprintf(st, sizeof st, "--initial-cluster-state=%s", state);
    snprintf(name, sizeof name, "--name=%s", c->name);
    snprintf(data, sizeof data, "--data-dir=%s", c->cfg->cluster.data_dir);
    char *argv[] = {c->etcd_bin,
                    name,
                    data,
                    listen_c,
                    adv_c,
                    listen_p,
                    adv_p,
                    ic,
                    st,
                    "--initial-cluster-token=portcullis",
                    "--enable-v2=false",
                    "--logger=zap",
                    "--log-level=info",
                    "--auto-compaction-mode=revision",
                    "--auto-compaction-retention=1000",
                    "--quota-backend-bytes=268435456",
                    "--heartbeat-interval=100",
                    "--election-timeout=1000",
                    "--experimental-watch-progress-notify-interval=2s",
                    NULL};
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0) return false;
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        close(fds[0]);
        close(fds[1]);
        return false;
    }
    if (pid == 0) {
        /* Only async-signal-safe calls until exec. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent) _exit(1);
        setpgid(0, 0); /* a terminal's Ctrl-C must not kill etcd before we leave */
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        signal(SIGPIPE, SIG_DFL);
        int devnull = open("/dev/null", O_RDWR);
        if (devnull >= 0) {
            dup2(devnull, 0);
            dup2(devnull, 1);
        }
        dup2(fds[1], 2);
        execv(c->etcd_bin, argv);
        _exit(127);
    }
    close(fds[1]);
    c->pid = pid;
    c->spawns++;
    c->started_ms = mono_ms();
    atomic_store(&c->removed_seen, false);
    logarg_t *la = pc_xmalloc(sizeof *la);
    la->c = c;
    la->fd = fds[0];
    if (pthread_create(&c->logt, NULL, log_main, la) != 0) {
        close(fds[0]);
        free(la);
        c->log_thread = false;
    } else {
        c->log_thread = true;
    }
    pc_log_info("etcd started", PC_LSTR("component", "cluster"), PC_LINT("pid", pid),
                PC_LSTR("state", state), PC_LSTR("client_url", c->client_url),
                PC_LSTR("peer_url", c->peer_url));
    return true;
}

/* Reaps etcd if it exited; returns true if it is gone (and reports how). */
static bool reap(pc_cluster_t *c, bool block, int *code)
{
    if (c->pid <= 0) return true;
    int status;
    pid_t r = waitpid(c->pid, &status, block ? 0 : WNOHANG);
    if (r == 0) return false;
    if (r < 0 && errno == EINTR) return false;
    *code = r < 0 ? -1 : WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    c->pid = 0;
    if (c->log_thread) pthread_join(c->logt, NULL);
    c->log_thread = false;
    atomic_store(&c->running, false);
    set_members(c, 0); /* unknown until etcd answers again */
    /* Exit 0 without our asking means "removed from the cluster": etcd refuses that dir for good.
     */
    if (*code == 0 || atomic_load(&c->removed_seen)) wipe_data_dir(c);
    return true;
}

/* Waits up to ms for etcd to exit. */
static bool wait_exit(pc_cluster_t *c, int64_t ms, int *code)
{
    int64_t end = mono_ms() + ms;
    while (mono_ms() < end) {
        if (reap(c, false, code)) return true;
        usleep(50 * 1000);
    }
    return reap(c, false, code);
}

static void stop_etcd(pc_cluster_t *c)
{
    int code = 0;
    if (c->pid <= 0) return;
    kill(c->pid, SIGTERM);
    /* A leader with no peers waits ~7 s for a leadership transfer before exiting. */
    if (!wait_exit(c, 12000, &code)) {
        kill(c->pid, SIGKILL);
        (void)reap(c, true, &code);
    }
    pc_log_info("etcd stopped", PC_LSTR("component", "cluster"), PC_LINT("exit_code", code));
}

/* ---- discovery --------------------------------------------------------------------- */

static int cmp_addr(const void *a, const void *b)
{
    return strcmp(a, b);
}

/* Addresses of every instance that should be in the cluster, self included, sorted. */
static bool discover(pc_cluster_t *c, pc__peers_t *out)
{
    const pc_config_t *cfg = c->cfg;
    out->n = 0;
    (void)pc__peers_add(out, cfg->cluster.advertise_address);
    if (cfg->cluster.discovery_mode == PC_DISCOVERY_STATIC) {
        for (size_t i = 0; i < cfg->cluster.n_peers; i++)
            (void)pc__peers_add(out, cfg->cluster.peers[i]);
    } else if (cfg->cluster.discovery_mode == PC_DISCOVERY_DNS) {
        struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL;
        int rc = getaddrinfo(cfg->cluster.dns_name, NULL, &hints, &res);
        if (rc != 0) {
            pc_log_warn("cluster discovery: DNS lookup failed", PC_LSTR("component", "cluster"),
                        PC_LSTR("name", cfg->cluster.dns_name), PC_LSTR("error", gai_strerror(rc)));
            return false;
        }
        for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
            char a[64];
            const void *src = ai->ai_family == AF_INET
                                  ? (const void *)&((struct sockaddr_in *)ai->ai_addr)->sin_addr
                                  : (const void *)&((struct sockaddr_in6 *)ai->ai_addr)->sin6_addr;
            if (inet_ntop(ai->ai_family, src, a, sizeof a)) (void)pc__peers_add(out, a);
        }
        freeaddrinfo(res);
    } else if (!pc__discovery_run(c->disc, out)) {
        return false; /* never answered yet; it logged why */
    }
    qsort(out->addr, out->n, sizeof out->addr[0], cmp_addr);
    return true;
}

static bool in_discovery(const pc__peers_t *p, const char *url)
{
    for (size_t i = 0; i < p->n; i++) {
        char u[160];
        host_url(u, sizeof u, p->addr[i], 0);
        size_t ul = strlen(u) - 1; /* "http://host:" */
        if (!strncmp(url, u, ul)) return true;
    }
    return false;
}

/* ---- formation ------------------------------------------------------------------------- */

static const char *member_peer_url(const json_t *m)
{
    return json_string_value(json_array_get(json_object_get(m, "peerURLs"), 0));
}

static const json_t *find_member_by_peer(const json_t *members, const char *purl)
{
    size_t i;
    const json_t *m;
    json_array_foreach(members, i, m)
    {
        const json_t *urls = json_object_get(m, "peerURLs");
        size_t k;
        const json_t *u;
        json_array_foreach(urls, k, u)
        {
            if (json_string_value(u) && !strcmp(json_string_value(u), purl)) return m;
        }
    }
    return NULL;
}

static void build_initial_cluster(pc_cluster_t *c, const json_t *members, char *out, size_t cap)
{
    size_t pos = 0, i;
    const json_t *m;
    out[0] = '\0';
    json_array_foreach(members, i, m)
    {
        const char *purl = member_peer_url(m);
        if (!purl) continue;
        const char *nm = json_string_value(json_object_get(m, "name"));
        char ph[32];
        if (!strcmp(purl, c->peer_url))
            nm = c->name;
        else if (!nm || !*nm) {
            snprintf(ph, sizeof ph, "m%zu", i); /* etcd does not check other members' names */
            nm = ph;
        }
        int n = snprintf(out + pos, cap - pos, "%s%s=%s", pos ? "," : "", nm, purl);
        if (n < 0 || (size_t)n >= cap - pos) break;
        pos += (size_t)n;
    }
}

static bool wait_running(pc_cluster_t *c, int64_t ms)
{
    int64_t end = mono_ms() + ms;
    int code;
    while (mono_ms() < end && !atomic_load(&c->leave_requested)) {
        if (reap(c, false, &code)) {
            pc_log_warn("etcd exited while starting", PC_LSTR("component", "cluster"),
                        PC_LINT("exit_code", code));
            return false;
        }
        json_t *r = NULL;
        long st = pc__etcd_post(c->client_url, "/v3/maintenance/status", json_object(), &r, 1000);
        json_decref(r);
        if (st == 200) {
            atomic_store(&c->running, true);
            pc__cluster_touch(c);
            return true;
        }
        usleep(100 * 1000);
    }
    return false;
}

/* Join the cluster that base answers for: add as learner, start, promote. */
static bool join_via(pc_cluster_t *c, const char *base, json_t *members)
{
    const json_t *me = find_member_by_peer(members, c->peer_url);
    json_t *resp = NULL;
    char id[24] = "";
    if (me && json_string_length(json_object_get(me, "name")) > 0) {
        /* A former self whose data is gone: remove it so we can join afresh. */
        snprintf(id, sizeof id, "%s", json_string_value(json_object_get(me, "ID")));
        json_t *b = json_pack("{s:s}", "ID", id);
        long st = pc__etcd_post(base, "/v3/cluster/member/remove", b, NULL, MEMBER_CALL_MS);
        pc_log_info("removed a stale member with our peer URL", PC_LSTR("component", "cluster"),
                    PC_LSTR("id", id), PC_LINT("status", st));
        if (st != 200) return false;
        me = NULL;
        id[0] = '\0';
    }
    if (me) { /* added before, never started: reuse the entry */
        snprintf(id, sizeof id, "%s", json_string_value(json_object_get(me, "ID")));
        resp = json_incref(members);
    } else {
        json_t *b = json_pack("{s:[s],s:b}", "peerURLs", c->peer_url, "isLearner", 1);
        json_t *r = NULL;
        long st = pc__etcd_post(base, "/v3/cluster/member/add", b, &r, MEMBER_CALL_MS);
        if (st != 200) {
            pc_log_info("cluster join: member add refused, will retry",
                        PC_LSTR("component", "cluster"), PC_LSTR("via", base),
                        PC_LINT("status", st),
                        PC_LSTR("error", json_string_value(json_object_get(r, "message"))));
            json_decref(r);
            return false;
        }
        const char *nid = json_string_value(json_object_get(json_object_get(r, "member"), "ID"));
        snprintf(id, sizeof id, "%s", nid ? nid : "");
        resp = json_incref(json_object_get(r, "members"));
        json_decref(r);
    }
    char ic[4000];
    build_initial_cluster(c, resp, ic, sizeof ic);
    json_decref(resp);
    pc_log_info("joining the cluster", PC_LSTR("component", "cluster"), PC_LSTR("via", base),
                PC_LSTR("id", id), PC_LSTR("initial_cluster", ic));
    if (!spawn_etcd(c, ic, "existing")) return false;
    if (!wait_running(c, 30000)) return false;
    /* Promote once the learner has caught up (412 until then). */
    int64_t end = mono_ms() + 60000;
    while (mono_ms() < end && !atomic_load(&c->leave_requested)) {
        json_t *r = NULL;
        long st = pc__etcd_post(base, "/v3/cluster/member/promote", json_pack("{s:s}", "ID", id),
                                &r, MEMBER_CALL_MS);
        const char *msg = json_string_value(json_object_get(r, "message"));
        bool done = st == 200 || (msg && strstr(msg, "not a learner"));
        json_decref(r);
        if (done) {
            pc_log_info("promoted to voting member", PC_LSTR("component", "cluster"),
                        PC_LSTR("id", id));
            return true;
        }
        int code;
        if (reap(c, false, &code)) return false;
        usleep(200 * 1000);
    }
    return c->pid > 0; /* still a learner: it keeps trying from the status loop */
}

/* One formation attempt; true when etcd runs. */
static bool form(pc_cluster_t *c, int64_t forming_since)
{
    pc__peers_t peers;
    if (!discover(c, &peers)) return false;
    for (size_t i = 0; i < peers.n; i++) {
        if (!strcmp(peers.addr[i], c->cfg->cluster.advertise_address)) continue;
        char base[160];
        host_url(base, sizeof base, peers.addr[i], c->cfg->cluster.client_port);
        json_t *r = NULL;
        long st = pc__etcd_post(base, "/v3/cluster/member/list", json_object(), &r, 1500);
        json_t *members = json_object_get(r, "members");
        if (st == 200 && json_array_size(members) > 0) {
            bool ok = join_via(c, base, members);
            json_decref(r);
            if (!ok && c->pid > 0) stop_etcd(c);
            if (!ok && !has_member_data(c)) wipe_data_dir(c);
            return ok;
        }
        json_decref(r);
    }
    /*
     * Nobody runs a cluster. The lowest address bootstraps; the k-th lowest
     * only after k dead_member_timeouts without a cluster appearing, so a
     * dead lowest peer cannot block formation and two clusters need k
     * timeouts' worth of partition to form.
     */
    size_t rank = 0;
    while (rank < peers.n && strcmp(peers.addr[rank], c->cfg->cluster.advertise_address))
        rank++;
    int64_t waited = mono_ms() - forming_since;
    if (waited < pc__discovery_settle_ms(c->disc)) return false;
    if (rank > 0 && waited < (int64_t)rank * (int64_t)c->cfg->cluster.dead_member_timeout_ms)
        return false;
    char ic[400];
    snprintf(ic, sizeof ic, "%s=%s", c->name, c->peer_url);
    pc_log_info("bootstrapping a new cluster", PC_LSTR("component", "cluster"),
                PC_LUINT("rank", rank), PC_LUINT("discovered", peers.n));
    if (!spawn_etcd(c, ic, "new")) return false;
    if (wait_running(c, 30000)) return true;
    if (c->pid > 0) stop_etcd(c);
    wipe_data_dir(c);
    return false;
}

/* ---- status, dead members ------------------------------------------------------- */

static void refresh_status(pc_cluster_t *c)
{
    json_t *r = NULL;
    long st = pc__etcd_post(c->client_url, "/v3/maintenance/status", json_object(), &r, CALL_MS);
    if (st != 200) {
        json_decref(r);
        return;
    }
    uint64_t self = pc__etcd_u64(json_object_get(r, "header"), "member_id");
    uint64_t leader = pc__etcd_u64(r, "leader");
    bool learner = json_is_true(json_object_get(r, "isLearner"));
    json_decref(r);
    atomic_store(&c->leader_id, leader);
    atomic_store(&c->role, learner ? 3 : leader && leader == self ? 1 : 2);
    pc__cluster_touch(c);
    r = NULL;
    st = pc__etcd_post(c->client_url, "/v3/cluster/member/list", json_object(), &r, CALL_MS);
    json_t *members = json_object_get(r, "members");
    if (st == 200) set_members(c, (unsigned)json_array_size(members));
    if (st == 200 && learner && leader) {
        /* Still a learner (the join's promote loop gave up): ask the leader again. */
        size_t k;
        json_t *m;
        json_array_foreach(members, k, m)
        {
            const char *lurl =
                json_string_value(json_array_get(json_object_get(m, "clientURLs"), 0));
            if (pc__etcd_u64(m, "ID") != leader || !lurl) continue;
            char id[24];
            snprintf(id, sizeof id, "%" PRIu64, self);
            long ps = pc__etcd_post(lurl, "/v3/cluster/member/promote",
                                    json_pack("{s:s}", "ID", id), NULL, CALL_MS);
            if (ps == 200)
                pc_log_info("promoted to voting member", PC_LSTR("component", "cluster"),
                            PC_LSTR("id", id));
        }
    }
    if (st != 200 || leader != self || !leader) goto out;

    /* The leader alone removes dead members, so removals are serialized. */
    pc__peers_t peers;
    bool have_peers = c->cfg->cluster.discovery_mode != PC_DISCOVERY_STATIC && discover(c, &peers);
    size_t i;
    json_t *m;
    json_array_foreach(members, i, m)
    {
        const char *id = json_string_value(json_object_get(m, "ID"));
        if (!id || pc__etcd_u64(m, "ID") == self) continue;
        const char *curl = json_string_value(json_array_get(json_object_get(m, "clientURLs"), 0));
        json_t *pr = NULL;
        long ps =
            curl ? pc__etcd_post(curl, "/v3/maintenance/status", json_object(), &pr, 1000) : -1;
        json_decref(pr);
        seen_t *s = NULL, *free_slot = NULL;
        for (size_t k = 0; k < MAX_MEMBERS; k++) {
            if (!strcmp(c->seen[k].id, id)) s = &c->seen[k];
            if (!c->seen[k].id[0] && !free_slot) free_slot = &c->seen[k];
        }
        if (!s && free_slot) {
            s = free_slot;
            snprintf(s->id, sizeof s->id, "%s", id);
            s->down_since_ms = 0;
        }
        if (!s) continue;
        if (ps == 200) {
            s->down_since_ms = 0;
            continue;
        }
        if (!s->down_since_ms) s->down_since_ms = mono_ms();
        const char *purl = member_peer_url(m);
        /*
         * Static discovery lists peers whether they live or not, so there the
         * timeout alone decides; dynamic modes also require absence.
         */
        bool absent = !have_peers || !purl || !in_discovery(&peers, purl);
        if (mono_ms() - s->down_since_ms < (int64_t)c->cfg->cluster.dead_member_timeout_ms ||
            !absent)
            continue;
        long rs = pc__etcd_post(c->client_url, "/v3/cluster/member/remove",
                                json_pack("{s:s}", "ID", id), NULL, MEMBER_CALL_MS);
        pc_log_warn("removed a dead cluster member", PC_LSTR("component", "cluster"),
                    PC_LSTR("id", id), PC_LSTR("peer_url", purl ? purl : ""),
                    PC_LINT("status", rs));
        if (rs == 200) s->id[0] = '\0';
    }
out:
    json_decref(r);
}

/* ---- leave -------------------------------------------------------------------------- */

static void leave(pc_cluster_t *c)
{
    if (c->pid <= 0) return;
    json_t *r = NULL;
    long st = pc__etcd_post(c->client_url, "/v3/maintenance/status", json_object(), &r, CALL_MS);
    uint64_t self = pc__etcd_u64(json_object_get(r, "header"), "member_id");
    uint64_t leader = pc__etcd_u64(r, "leader");
    json_decref(r);
    r = NULL;
    long ls = pc__etcd_post(c->client_url, "/v3/cluster/member/list", json_object(), &r, CALL_MS);
    json_t *members = json_object_get(r, "members");
    size_t n = json_array_size(members);
    bool removed = false;
    if (st == 200 && ls == 200 && n > 1) {
        if (leader == self) {
            /* Without a transfer the rest of the cluster stalls ~3 s for writes. */
            size_t i;
            json_t *m;
            json_array_foreach(members, i, m)
            {
                if (pc__etcd_u64(m, "ID") == self || json_is_true(json_object_get(m, "isLearner")))
                    continue;
                long ts = pc__etcd_post(
                    c->client_url, "/v3/maintenance/transfer-leadership",
                    json_pack("{s:s}", "targetID", json_string_value(json_object_get(m, "ID"))),
                    NULL, MEMBER_CALL_MS);
                pc_log_info("leadership transferred", PC_LSTR("component", "cluster"),
                            PC_LINT("status", ts));
                if (ts == 200) break;
            }
        }
        char id[24];
        snprintf(id, sizeof id, "%" PRIu64, self);
        /* Right after a leader change etcd answers 503 for a moment: retry. */
        long rs = -1;
        int64_t end = mono_ms() + 15000;
        int code = -1;
        do {
            json_t *er = NULL;
            rs = pc__etcd_post(c->client_url, "/v3/cluster/member/remove",
                               json_pack("{s:s}", "ID", id), &er, MEMBER_CALL_MS);
            if (rs != 200)
                pc_log_info("removing own member", PC_LSTR("component", "cluster"),
                            PC_LINT("status", rs),
                            PC_LSTR("error", json_string_value(json_object_get(er, "message"))));
            json_decref(er);
            if (rs == 200 || rs < 0 || reap(c, false, &code)) break;
            usleep(300 * 1000);
        } while (mono_ms() < end);
        /*
         * A member that removed itself exits with 0 on its own, sometimes
         * before the answer reaches us: the exit proves the removal.
         */
        bool exited = c->pid <= 0 || wait_exit(c, rs == 200 || rs < 0 ? 5000 : 0, &code);
        removed = rs == 200 || (exited && (code == 0 || atomic_load(&c->removed_seen)));
        if (removed)
            pc_log_info("left the cluster", PC_LSTR("component", "cluster"), PC_LINT("status", rs),
                        PC_LINT("exit_code", code));
        else
            pc_log_warn("could not remove own member; keeping the data dir for a rejoin",
                        PC_LSTR("component", "cluster"), PC_LINT("status", rs));
    }
    json_decref(r);
    stop_etcd(c);
    if (removed || n <= 1) wipe_data_dir(c);
}

/* ---- the supervisor thread ------------------------------------------------------------ */

static void note_start_failure(pc_cluster_t *c, const char *why)
{
    c->fast_failures++;
    if (!c->start_error_logged) {
        pc_log_error("etcd cannot start; serving with local state only (cluster degraded)",
                     PC_LSTR("component", "cluster"), PC_LSTR("reason", why),
                     PC_LSTR("binary", c->etcd_bin), PC_LSTR("data_dir", c->cfg->cluster.data_dir));
        c->start_error_logged = true;
    }
}

static void *sup_main(void *arg)
{
    pc_cluster_t *c = arg;
    char err[1200];
    if (!prepare_data_dir(c, err, sizeof err)) {
        pc_log_error("etcd data dir is not writable; serving with local state only "
                     "(cluster degraded)",
                     PC_LSTR("component", "cluster"), PC_LSTR("error", err));
        atomic_store(&c->fatal, true);
        return NULL;
    }
    if (!find_binary(c)) {
        pc_log_error("etcd binary not found; serving with local state only (cluster degraded)",
                     PC_LSTR("component", "cluster"), PC_LSTR("binary", c->etcd_bin));
        atomic_store(&c->fatal, true);
        return NULL;
    }
    int64_t forming_since = mono_ms(), next_status = 0;
    while (!atomic_load(&c->leave_requested)) {
        int code;
        if (c->pid > 0 && reap(c, false, &code)) {
            bool removed = atomic_load(&c->removed_seen) || code == 0;
            pc_log_warn("etcd exited", PC_LSTR("component", "cluster"), PC_LINT("exit_code", code),
                        PC_LBOOL("removed_from_cluster", removed));
            if (mono_ms() - c->started_ms < 10000) note_start_failure(c, "etcd exited at once");
            forming_since = mono_ms();
        }
        if (c->pid <= 0) {
            unsigned spawns = c->spawns;
            bool ok;
            if (has_member_data(c)) {
                char ic[400];
                snprintf(ic, sizeof ic, "%s=%s", c->name, c->peer_url); /* ignored: data exists */
                ok = spawn_etcd(c, ic, "existing") && wait_running(c, 30000);
                if (!ok && c->pid > 0) stop_etcd(c);
            } else {
                ok = form(c, forming_since);
            }
            if (ok) {
                atomic_store(&c->forming, false);
                c->fast_failures = 0;
                if (c->start_error_logged)
                    pc_log_info("etcd running again; cluster no longer degraded",
                                PC_LSTR("component", "cluster"));
                c->start_error_logged = false;
            } else if (c->pid <= 0) {
                if (c->spawns != spawns) note_start_failure(c, "etcd did not come up");
                unsigned shift = c->fast_failures < 5 ? c->fast_failures : 5;
                (void)nap(c, c->fast_failures ? 1000LL << shift : 500);
            }
            continue;
        }
        if (mono_ms() >= next_status) {
            refresh_status(c);
            next_status = mono_ms() + 1000;
        }
        (void)nap(c, 200);
    }
    pc__sync_stop(c->sync);
    c->sync = NULL;
    leave(c);
    atomic_store(&c->running, false);
    return NULL;
}

/* ---- public ----------------------------------------------------------------------------- */

static const char *role_name(pc_cluster_t *c)
{
    if (atomic_load(&c->fatal)) return "degraded";
    if (!atomic_load(&c->running)) return atomic_load(&c->forming) ? "starting" : "degraded";
    switch (atomic_load(&c->role)) {
    case 1:
        return "leader";
    case 2:
        return "follower";
    case 3:
        return "learner";
    default:
        return "starting";
    }
}

void pc_cluster_get_status(pc_cluster_t *c, pc_cluster_status_t *out)
{
    memset(out, 0, sizeof *out);
    out->role = "off";
    out->last_sync_age_ms = -1;
    if (!c) return;
    out->enabled = true;
    out->role = role_name(c);
    out->degraded =
        !strcmp(out->role, "degraded") || (c->fast_failures > 0 && !atomic_load(&c->running));
    out->members = atomic_load(&c->members);
    out->leader_id = atomic_load(&c->leader_id);
    int64_t t = atomic_load(&c->last_sync_ms);
    out->last_sync_age_ms = t ? mono_ms() - t : -1;
}

static int64_t probe_degraded(void *arg)
{
    pc_cluster_status_t s;
    pc_cluster_get_status(arg, &s);
    return s.degraded;
}

static int64_t probe_leader(void *arg)
{
    pc_cluster_status_t s;
    pc_cluster_get_status(arg, &s);
    return !strcmp(s.role, "leader");
}

static int64_t probe_sync_age(void *arg)
{
    pc_cluster_status_t s;
    pc_cluster_get_status(arg, &s);
    return s.last_sync_age_ms;
}

pc_cluster_t *pc_cluster_start(const pc_config_t *cfg)
{
    if (!cfg->cluster.enabled) return NULL;
    pc_cluster_t *c = &g_cluster;
    if (c->cfg) return NULL; /* once per process */
    c->cfg = cfg;
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->cv, NULL);
    atomic_store(&c->forming, true);
    const char *addr = cfg->cluster.advertise_address;
    snprintf(c->name, sizeof c->name, "pc-%s", addr);
    for (char *p = c->name; *p; p++)
        if (*p == ':') *p = '-';
    host_url(c->client_url, sizeof c->client_url, addr, cfg->cluster.client_port);
    host_url(c->peer_url, sizeof c->peer_url, addr, cfg->cluster.peer_port);
    curl_global_init(CURL_GLOBAL_DEFAULT);

    /*
     * portcullis_cluster_members is one of the standard metrics (a gauge that
     * telemetry registers first): set it, do not register a probe under the
     * same name, which the registry would ignore.
     */
    set_members(c, 0);
    pc_metric_probe("portcullis_cluster_degraded",
                    "1 when clustering is on but etcd does not run (local state only).", NULL,
                    probe_degraded, c);
    pc_metric_probe("portcullis_cluster_leader", "1 when this instance's etcd member leads.", NULL,
                    probe_leader, c);
    pc_metric_probe("portcullis_cluster_last_sync_age_ms",
                    "Milliseconds since the last successful exchange with etcd (-1 never).", NULL,
                    probe_sync_age, c);

    c->disc = pc__discovery_new(cfg);
    pc__counts_enable(true);
    c->sync = pc__sync_start(c, c->client_url, c->name, &c->running);
    if (pthread_create(&c->sup, NULL, sup_main, c) != 0) {
        pc_log_error("cannot start the cluster thread; cluster degraded",
                     PC_LSTR("component", "cluster"));
        atomic_store(&c->fatal, true);
        pc__sync_stop(c->sync);
        c->sync = NULL;
        return c;
    }
    c->sup_started = true;
    return c;
}

void pc_cluster_leave(pc_cluster_t *c)
{
    if (!c || !c->cfg) return;
    pthread_mutex_lock(&c->mu);
    atomic_store(&c->leave_requested, true);
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
    if (c->sup_started) pthread_join(c->sup, NULL);
    c->sup_started = false;
    pc__discovery_free(c->disc);
    c->disc = NULL;
    pc__sync_stop(c->sync); /* still there when the supervisor gave up early (degraded) */
    c->sync = NULL;
    c->cfg = NULL;
    pc__counts_enable(false);
}
