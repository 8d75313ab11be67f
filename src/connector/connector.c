/*
 * The connector's main thread: start-up in the order operators can reason
 * about (config, logging, spool, health, snapshot, workers, listeners), the
 * embedded control plane, and the five-step graceful shutdown of design §5.
 *
 * Everything here runs on the main loop. Slow work (reading config_dir,
 * compiling a snapshot, flushing the spool) happens here and never on a
 * worker's loop; workers only ever swap a pointer to a finished snapshot.
 */
#include "connector/connector.h"

#include "access/access.h"
#include "audit/audit.h"
#include "cluster/cluster.h"
#include "cmd/commands.h"
#include "connector/configdir.h"
#include "core/config.h"
#include "core/log.h"
#include "core/metrics.h"
#include "cpclient/cpclient.h"
#include "decision/decision.h"
#include "health/health.h"
#include "net/pool.h"
#include "spool/spool.h"
#include "telemetry/telemetry.h"

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* After terminate_all, how long sessions get to send their goodbye and close. */
#define TERMINATE_GRACE_MS 3000
#define DRAIN_POLL_MS 100
/* cpclient: at shutdown, how long the log shipper may keep sending. */
#define CP_FLUSH_MS 5000

/*
 * Protocol modules register their pc_proto_t before the workers start. A
 * module not in this build is simply absent (weak reference); its listeners
 * still bind, and connections to them are closed with a log line.
 */
#pragma weak pc_pg_register
void pc_pg_register(void);
#pragma weak pc_s3_register
void pc_s3_register(void);

typedef enum { DRAIN_IDLE, DRAIN_WAITING, DRAIN_TERMINATING, DRAIN_DONE } drain_phase_t;

typedef struct connector {
    uv_loop_t *loop;
    const char *config_path;
    pc_config_t cfg;
    pc_ctx_t ctx;
    pc_spool_t *spool;
    pc_health_t *health;
    pc_workers_t *workers;
    pc__configdir_t *configdir;
    pc_cluster_t *cluster; /* NULL when clustering is off */
    uv_work_t cluster_leave; /* shutdown step 2 runs off the loop: a second signal still works */
    pc_cpclient_t *cp;      /* remote control plane (control_plane.url), or NULL */
    char ready_extra[320];  /* /ready's control-plane members (main thread only) */
    char ready_body_extra[512]; /* control plane + cluster members of /ready's body */

    pc_snapshot_t *current; /* main thread's reference; NULL until one is loaded */
    uint64_t revision;      /* of current; 0 = none */
    const char *not_ready_reason;
    uint64_t applied_fp; /* config_dir fingerprint of `current` */
    bool have_applied_fp;
    bool was_ready;
    bool shutting_down;

    uv_signal_t sigterm, sigint, sighup;
    uv_timer_t drain_timer;
    drain_phase_t drain_phase;
    uint64_t drain_started_ms, drain_deadline_ms, terminate_deadline_ms;
    size_t sessions_at_terminate;

    pc_metric_t *m_revision, *m_reload_ok, *m_reload_failed;
    pc_telemetry_t *telemetry; /* heartbeat timer and OTLP exporter */
    uint64_t started_ms;
    int exit_code;
} connector_t;

static uint64_t now_ms(void)
{
    return pc_now_mono_ns() / 1000000u;
}

/* ---------- readiness ---------- */

/* cpclient: why a connector with control_plane.url has no snapshot yet. */
static const char *cp_wait_reason(pc_cpclient_t *cp)
{
    pc_cpclient_status_t st;
    pc_cpclient_status(cp, &st);
    if (st.state == PC_CPCLIENT_CONNECTING) return "waiting for the control plane";
    if (st.state == PC_CPCLIENT_CONNECTED) return "waiting for a snapshot from the control plane";
    return "control plane unreachable";
}

/* cpclient: the control-plane members of /ready's body. */
static const char *cp_ready_extra(connector_t *c)
{
    pc_cpclient_status_t st;
    char e[200];
    size_t pos = 0;
    pc_cpclient_status(c->cp, &st);
    pc_json_escape_into(e, sizeof e - 1, &pos, st.last_error, strlen(st.last_error));
    e[pos] = '\0';
    snprintf(c->ready_extra, sizeof c->ready_extra,
             "\"control_plane\":\"%s\",\"control_plane_last_contact_ms\":%" PRId64
             "%s%s%s",
             pc_cpclient_state_name(st.state), st.last_contact_age_ms,
             e[0] ? ",\"control_plane_error\":\"" : "", e, e[0] ? "\"" : "");
    return c->ready_extra;
}

static bool compute_ready(connector_t *c, const char **reason)
{
    if (c->shutting_down) {
        *reason = "shutting down";
        return false;
    }
    if (!c->current) {
        *reason = c->not_ready_reason ? c->not_ready_reason : "configuration not loaded";
        if (c->cp && !c->not_ready_reason) *reason = cp_wait_reason(c->cp);
        return false;
    }
    if (!pc_workers_ready(c->workers, c->revision, NULL)) {
        *reason = "listeners not bound";
        return false;
    }
    *reason = NULL;
    return true;
}

static void health_view(void *arg, pc_health_view_t *out)
{
    connector_t *c = arg;
    out->ready = compute_ready(c, &out->reason);
    out->revision = c->revision;
    out->instance = c->cfg.instance_name;
    out->workers = pc_workers_count(c->workers);
    out->listeners = c->current ? (unsigned)c->current->n_listeners : 0;
    if (c->cp) out->extra = cp_ready_extra(c);
    if (!out->ready && c->current && !c->shutting_down)
        (void)pc_workers_ready(c->workers, c->revision, &out->unbound);
    if (c->cluster) {
        pc_cluster_status_t cs;
        pc_cluster_get_status(c->cluster, &cs);
        snprintf(c->ready_body_extra, sizeof c->ready_body_extra,
                 "%s%s\"cluster\":\"%s\",\"cluster_role\":\"%s\",\"cluster_members\":%u",
                 out->extra ? out->extra : "", out->extra ? "," : "",
                 cs.degraded ? "degraded" : "ok", cs.role, cs.members);
        out->extra = c->ready_body_extra;
    }
}

/* Workers reported something: log readiness transitions once. */
static void on_workers_notify(void *arg)
{
    connector_t *c = arg;
    const char *reason;
    bool ready = compute_ready(c, &reason);
    if (ready && !c->was_ready)
        pc_log_info("ready", PC_LUINT("revision", c->revision),
                    PC_LUINT("listeners", c->current->n_listeners),
                    PC_LUINT("workers", pc_workers_count(c->workers)),
                    PC_LUINT("startup_ms", now_ms() - c->started_ms));
    else if (!ready && c->was_ready && !c->shutting_down)
        pc_log_warn("not ready", PC_LSTR("reason", reason), PC_LUINT("revision", c->revision));
    c->was_ready = ready;
    pc_cpclient_set_ready(c->cp, ready);
}

/* ---------- snapshots ---------- */

static void log_applied(const pc_snapshot_t *s, const char *what)
{
    pc_log_info(what, PC_LUINT("revision", s->revision), PC_LUINT("resources", s->n_resources),
                PC_LUINT("listeners", s->n_listeners), PC_LUINT("users", s->n_users),
                PC_LUINT("policies", s->n_policies));
}

/* Publish a loaded snapshot (s NULL: refused, err says why); config_dir and control plane alike. */
static bool apply_snapshot(connector_t *c, pc_snapshot_t *s, const char *err, bool initial)
{
    if (!s) {
        pc_metric_add(c->m_reload_failed, 1);
        /* One line: the loader's file:line message; the previous snapshot stays. */
        pc_log_error(initial ? "configuration refused; connector stays not ready"
                             : "configuration refused; previous revision stays in force",
                     PC_LSTR("error", err[0] ? err : "invalid configuration"),
                     PC_LUINT("revision_in_force", c->revision));
        return false;
    }
    pc_snapshot_t *old = c->current;
    c->current = s;
    c->revision = s->revision;
    pc_metric_set(c->m_revision, (int64_t)s->revision);
    if (!initial) pc_metric_add(c->m_reload_ok, 1);
    log_applied(s, initial ? "configuration loaded" : "configuration applied");
    if (c->workers) pc_workers_publish(c->workers, s);
    pc_snapshot_unref(old);
    return true;
}

/* Load config_dir as the next revision; on success publish it. */
static bool load_and_apply(connector_t *c, bool initial)
{
    char err[1024] = "";
    pc_snapshot_t *s = pc_snapshot_load_dir(c->cfg.control_plane.config_dir, c->revision + 1,
                                            err, sizeof err);
    return apply_snapshot(c, s, err, initial);
}

/* cpclient: a snapshot pushed by the control plane (on this thread, via uv_async). */
static void on_cp_snapshot(void *arg, const char *text, size_t len, uint64_t revision)
{
    connector_t *c = arg;
    if (c->shutting_down || (c->current && revision == c->revision)) return;
    char err[1024] = "", origin[64];
    snprintf(origin, sizeof origin, "control-plane revision %" PRIu64, revision);
    pc_snapshot_t *s = pc_snapshot_load_yaml(text, len, origin, revision, err, sizeof err);
    bool initial = c->current == NULL;
    bool ok = apply_snapshot(c, s, err, initial);
    if (initial) c->not_ready_reason = ok ? NULL : "configuration from the control plane refused";
    on_workers_notify(c);
}

/*
 * Record which directory content the snapshot in force came from, unless the
 * directory changed while it was being loaded (then what was read is unknown,
 * and the change's own event triggers another load anyway).
 */
static void remember_applied(connector_t *c, uint64_t before)
{
    uint64_t after = 0;
    bool ok = pc__configdir_fingerprint(c->cfg.control_plane.config_dir, &after);
    c->have_applied_fp = ok && before != 0 && after == before;
    c->applied_fp = before;
}

static void on_configdir_changed(void *arg, uint64_t fingerprint)
{
    connector_t *c = arg;
    if (c->shutting_down) return;
    /* Reverted to exactly what is in force (e.g. a refused edit undone): nothing to apply. */
    if (c->current && c->have_applied_fp && fingerprint == c->applied_fp) {
        pc_log_info("config_dir matches the revision in force", PC_LUINT("revision", c->revision));
        return;
    }
    if (load_and_apply(c, c->current == NULL)) remember_applied(c, fingerprint);
    on_workers_notify(c);
}

/* ---------- metrics ---------- */

static int64_t probe_rss(void *arg)
{
    (void)arg;
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f) return 0;
    unsigned long size = 0, resident = 0;
    int n = fscanf(f, "%lu %lu", &size, &resident);
    fclose(f);
    return n == 2 ? (int64_t)resident * sysconf(_SC_PAGESIZE) : 0;
}

static int64_t probe_ready(void *arg)
{
    const char *reason;
    return compute_ready(arg, &reason) ? 1 : 0;
}

static int64_t probe_uptime(void *arg)
{
    connector_t *c = arg;
    return (int64_t)((now_ms() - c->started_ms) / 1000u);
}

#define SPOOL_PROBE(field)                                                                         \
    static int64_t probe_spool_##field(void *arg)                                                  \
    {                                                                                              \
        connector_t *c = arg;                                                                      \
        if (!c->spool) return 0;                                                                   \
        pc_spool_stats_t st;                                                                       \
        pc_spool_get_stats(c->spool, &st);                                                         \
        return (int64_t)st.field;                                                                  \
    }
SPOOL_PROBE(records_appended)
SPOOL_PROBE(records_written)
SPOOL_PROBE(records_pending)
SPOOL_PROBE(records_dropped)
SPOOL_PROBE(torn_records_cut)
SPOOL_PROBE(bytes_on_disk)
SPOOL_PROBE(segments)

static void register_metrics(connector_t *c)
{
    char labels[64];
    snprintf(labels, sizeof labels, "version=\"%s\"", PC_VERSION);
    pc_metric_set(pc_metric_gauge("portcullis_build_info", "Build version of this connector.",
                                  labels),
                  1);
    c->m_revision = pc_metric_gauge("portcullis_config_revision",
                                    "Revision of the configuration snapshot in force.", NULL);
    c->m_reload_ok = pc_metric_counter("portcullis_config_reloads_total",
                                       "Configuration reloads by result.", "result=\"ok\"");
    c->m_reload_failed = pc_metric_counter("portcullis_config_reloads_total",
                                           "Configuration reloads by result.", "result=\"failed\"");
    pc_metric_probe("portcullis_ready", "1 when /ready answers 200.", NULL, probe_ready, c);
    pc_metric_probe("portcullis_uptime_seconds", "Seconds since start.", NULL, probe_uptime, c);
    pc_metric_probe("portcullis_process_resident_memory_bytes", "Resident set size.", NULL,
                    probe_rss, c);
    pc_metric_probe("portcullis_spool_records_appended", "Audit records accepted by the spool.",
                    NULL, probe_spool_records_appended, c);
    pc_metric_probe("portcullis_spool_records_written", "Audit records made durable.", NULL,
                    probe_spool_records_written, c);
    pc_metric_probe("portcullis_spool_records_pending", "Audit records queued, not yet durable.",
                    NULL, probe_spool_records_pending, c);
    pc_metric_probe("portcullis_spool_records_dropped",
                    "Audit records lost to max_bytes or a full queue.", NULL,
                    probe_spool_records_dropped, c);
    pc_metric_probe("portcullis_spool_torn_records_cut",
                    "Corrupt tail records cut when the spool was opened.", NULL,
                    probe_spool_torn_records_cut, c);
    pc_metric_probe("portcullis_spool_bytes", "Bytes held by spool segments.", NULL,
                    probe_spool_bytes_on_disk, c);
    pc_metric_probe("portcullis_spool_segments", "Spool segment files.", NULL,
                    probe_spool_segments, c);
}

/* ---------- shutdown (design §5) ---------- */

static void log_step(int step, const char *name, const char *status, const char *reason)
{
    if (reason)
        pc_log_info("shutdown", PC_LINT("step", step), PC_LSTR("name", name),
                    PC_LSTR("status", status), PC_LSTR("reason", reason));
    else
        pc_log_info("shutdown", PC_LINT("step", step), PC_LSTR("name", name),
                    PC_LSTR("status", status));
}

static void close_quietly(uv_handle_t *h)
{
    if (!uv_is_closing(h)) uv_close(h, NULL);
}

static void finish_shutdown_after_leave(connector_t *c);

static void leave_cluster_work(uv_work_t *w)
{
    connector_t *c = w->data;
    pc_cluster_leave(c->cluster);
}

static void leave_cluster_done(uv_work_t *w, int status)
{
    (void)status;
    connector_t *c = w->data;
    c->cluster = NULL;
    log_step(2, "leave cluster", "done", NULL);
    finish_shutdown_after_leave(c);
}

/* Step 3: the exporter sends one last snapshot (bounded) before its thread ends. */
static void stop_telemetry(connector_t *c)
{
    pc_telemetry_report_t r;
    pc_telemetry_stop(c->telemetry, &r);
    c->telemetry = NULL;
    if (!r.exporting)
        log_step(3, "stop telemetry", "skipped", "telemetry.otlp_endpoint is not set");
    else
        pc_log_info("shutdown", PC_LINT("step", 3), PC_LSTR("name", "stop telemetry"),
                    PC_LSTR("status", "done"), PC_LBOOL("final_flush", r.final_flush_ok),
                    PC_LUINT("exports_ok", r.exports_ok),
                    PC_LUINT("exports_failed", r.exports_failed));
}

static void finish_shutdown(connector_t *c)
{
    uv_timer_stop(&c->drain_timer);
    pc_workers_stop(c->workers);
    c->workers = NULL;

    if (c->cluster) {
        /* Leaving can take seconds (leadership transfer, member removal). */
        log_step(2, "leave cluster", "started", NULL);
        c->cluster_leave.data = c;
        if (uv_queue_work(c->loop, &c->cluster_leave, leave_cluster_work, leave_cluster_done) == 0)
            return;
        pc_cluster_leave(c->cluster);
        c->cluster = NULL;
        log_step(2, "leave cluster", "done", NULL);
    } else {
        log_step(2, "leave cluster", "skipped", "clustering is disabled");
    }
    finish_shutdown_after_leave(c);
}

static void finish_shutdown_after_leave(connector_t *c)
{
    stop_telemetry(c);

    /* Step 4: the cache does not exist yet; the spool is flushed and closed. */
    if (c->spool) {
        pc_spool_stats_t st;
        pc_spool_flush(c->spool);
        /* cpclient: ship what the spool holds, best effort, within a short window. */
        if (c->cp) {
            uint64_t shipped = pc_cpclient_close(c->cp, CP_FLUSH_MS);
            c->cp = NULL;
            pc_log_info("shutdown", PC_LINT("step", 4), PC_LSTR("name", "flush log shipping"),
                        PC_LSTR("status", "done"), PC_LUINT("records_shipped", shipped));
        }
        pc_spool_get_stats(c->spool, &st);
        pc_spool_close(c->spool);
        c->spool = NULL;
        c->ctx.spool = NULL;
        pc_log_info("shutdown", PC_LINT("step", 4), PC_LSTR("name", "close cache and spool"),
                    PC_LSTR("status", "done"), PC_LSTR("cache", "skipped (no cache in this version)"),
                    PC_LUINT("records_written", st.records_written),
                    PC_LUINT("records_dropped", st.records_dropped));
    } else {
        log_step(4, "close cache and spool", "done", "no spool was open");
    }

    log_step(5, "stop health server", "done", NULL);
    pc_health_stop(c->health);
    c->health = NULL;
    close_quietly((uv_handle_t *)&c->drain_timer);
    close_quietly((uv_handle_t *)&c->sigterm);
    close_quietly((uv_handle_t *)&c->sigint);
    close_quietly((uv_handle_t *)&c->sighup);
    c->exit_code = PC_EXIT_OK;
}

static void end_drain(connector_t *c, size_t left)
{
    c->drain_phase = DRAIN_DONE;
    pc_log_info("drain finished", PC_LUINT("waited_ms", now_ms() - c->drain_started_ms),
                PC_LUINT("terminated", c->sessions_at_terminate),
                PC_LUINT("sessions_left", left));
    finish_shutdown(c);
}

static void on_drain_tick(uv_timer_t *t)
{
    connector_t *c = t->data;
    bool complete = false;
    size_t active = pc_workers_active_sessions(c->workers, &complete);
    uint64_t now = now_ms();
    if (complete && active == 0) {
        end_drain(c, 0);
        return;
    }
    if (c->drain_phase == DRAIN_WAITING && now >= c->drain_deadline_ms) {
        c->drain_phase = DRAIN_TERMINATING;
        c->sessions_at_terminate = active;
        c->terminate_deadline_ms = now + TERMINATE_GRACE_MS;
        pc_log_info("drain timeout; terminating sessions", PC_LUINT("sessions", active),
                    PC_LUINT("drain_timeout_ms", c->cfg.shutdown.drain_timeout_ms));
        pc_workers_terminate_all(c->workers);
    } else if (c->drain_phase == DRAIN_TERMINATING && now >= c->terminate_deadline_ms) {
        pc_log_warn("sessions still open after terminate; stopping workers anyway",
                    PC_LUINT("sessions", active));
        end_drain(c, active);
        return;
    }
    pc_workers_poll_sessions(c->workers);
}

static void on_signal(uv_signal_t *s, int signum)
{
    connector_t *c = s->data;
    if (c->shutting_down) {
        pc_log_warn("second signal: exiting at once", PC_LSTR("signal", strsignal(signum)),
                    PC_LINT("exit_code", PC_EXIT_FAILURE));
        _exit(PC_EXIT_FAILURE);
    }
    c->shutting_down = true; /* /ready answers 503 from here on */
    c->was_ready = false;
    pc_cpclient_set_ready(c->cp, false); /* cpclient: heartbeats say so */
    pc_log_info("shutdown requested", PC_LSTR("signal", strsignal(signum)));
    pc__configdir_stop(c->configdir);
    c->configdir = NULL;

    pc_log_info("shutdown", PC_LINT("step", 1), PC_LSTR("name", "stop accepting"),
                PC_LSTR("status", "started"),
                PC_LUINT("drain_timeout_ms", c->cfg.shutdown.drain_timeout_ms));
    c->drain_started_ms = now_ms();
    c->drain_deadline_ms = c->drain_started_ms + c->cfg.shutdown.drain_timeout_ms;
    c->drain_phase = DRAIN_WAITING;
    if (!c->workers) {
        end_drain(c, 0);
        return;
    }
    pc_workers_stop_accepting(c->workers);
    pc_workers_poll_sessions(c->workers);
    uv_timer_start(&c->drain_timer, on_drain_tick, DRAIN_POLL_MS, DRAIN_POLL_MS);
}

/* SIGHUP: re-read config_dir now (and never die of a terminal hang-up). */
static void on_sighup(uv_signal_t *s, int signum)
{
    connector_t *c = s->data;
    if (c->shutting_down) return;
    pc_log_info("reload requested", PC_LSTR("signal", "SIGHUP"));
    pc__configdir_check_now(c->configdir);
}

/* ---------- start-up ---------- */

static uint32_t cluster_remote_count(const char *key, pc_access_window_t window)
{
    return pc_cluster_remote_count(key, window == PC_ACCESS_LAST_MINUTE ? PC_CLUSTER_LAST_MINUTE
                                                                        : PC_CLUSTER_LAST_HOUR);
}

static void emit_starting_line(const connector_t *c)
{
    /* Always the first line, whatever log_level says. */
    const pc_log_field_t fields[] = {
        PC_LSTR("version", PC_VERSION),
        PC_LSTR("instance", c->cfg.instance_name),
        PC_LINT("pid", getpid()),
        PC_LSTR("config", c->config_path),
        PC__LEND,
    };
    pc__log_emit(PC_LOG_INFO, "starting", fields);
}

/* cpclient: the address heartbeats advertise: the health listener, reachable from outside. */
static void advertised_health_address(const connector_t *c, char *out, size_t cap)
{
    const char *listen = c->cfg.health.listen ? c->cfg.health.listen : "";
    const char *colon = strrchr(listen, ':');
    size_t hl = colon ? (size_t)(colon - listen) : 0;
    char host[256];
    snprintf(host, sizeof host, "%.*s", (int)hl, listen);
    bool wildcard = hl == 0 || strcmp(host, "0.0.0.0") == 0 || strcmp(host, "[::]") == 0;
    if (wildcard)
        snprintf(host, sizeof host, "%s",
                 c->cfg.cluster.advertise_address ? c->cfg.cluster.advertise_address
                 : c->cfg.instance_name           ? c->cfg.instance_name
                                                  : "");
    snprintf(out, cap, "%s:%d", host, pc_health_port(c->health));
}

static bool start_cpclient(connector_t *c, char *err, size_t errlen)
{
    char address[300];
    advertised_health_address(c, address, sizeof address);
    pc_cpclient_opts_t o = {
        .url = c->cfg.control_plane.url,
        .token = c->cfg.control_plane.token,
        .ca_file = c->cfg.control_plane.ca_file,
        .instance = c->cfg.instance_name,
        .address = address,
        .spool_dir = c->cfg.log_spool.dir,
    };
    c->cp = pc_cpclient_start(c->loop, &o, on_cp_snapshot, c, err, errlen);
    if (c->cp) pc_log_info("control plane client started", PC_LSTR("address", address));
    return c->cp != NULL;
}

static void fatal_config(const char *what, const char *err)
{
    pc_log(PC_LOG_FATAL, what, PC_LSTR("error", err));
}

int pc_connector_run(const char *config_path)
{
    connector_t c_, *c = &c_;
    memset(c, 0, sizeof *c);
    c->config_path = config_path;
    c->exit_code = PC_EXIT_FAILURE;
    c->started_ms = now_ms();
    char err[1024] = "";

    if (!pc_config_load(config_path, &c->cfg, err, sizeof err)) {
        fatal_config("invalid configuration", err);
        return PC_EXIT_USAGE;
    }
    if (c->cfg.log_level && !pc_log_set_level_name(c->cfg.log_level)) {
        snprintf(err, sizeof err, "%s: log_level: unknown level '%s'", config_path,
                 c->cfg.log_level);
        fatal_config("invalid configuration", err);
        pc_config_free(&c->cfg);
        return PC_EXIT_USAGE;
    }
    const char *cdir = c->cfg.control_plane.config_dir;
    struct stat st;
    if (cdir && !c->cfg.control_plane.url && (stat(cdir, &st) != 0 || !S_ISDIR(st.st_mode))) {
        snprintf(err, sizeof err, "%s: control_plane.config_dir: '%s' is not a directory",
                 config_path, cdir);
        fatal_config("invalid configuration", err);
        pc_config_free(&c->cfg);
        return PC_EXIT_USAGE;
    }

    emit_starting_line(c);
    pc_log_set_global_field("instance", c->cfg.instance_name ? c->cfg.instance_name : "");
    pc_audit_set_identity(c->cfg.instance_name, PC_VERSION);
    pc_decision_rego_install(); /* before the first snapshot: policies compile on load */
    /* access_count = this instance's accesses + the other members' (0 without a cluster) */
    pc_access_set_remote(pc_cluster_counts_note, cluster_remote_count);
    signal(SIGPIPE, SIG_IGN);

    c->loop = uv_default_loop();
    c->ctx.cfg = &c->cfg;
    c->ctx.instance_name = c->cfg.instance_name;

    c->spool = pc_spool_open(c->cfg.log_spool.dir, c->cfg.log_spool.max_bytes, err, sizeof err);
    if (!c->spool) {
        pc_log_error("cannot open the audit spool", PC_LSTR("dir", c->cfg.log_spool.dir),
                     PC_LSTR("error", err));
        goto out;
    }
    c->ctx.spool = c->spool;
    register_metrics(c);

    c->health = pc_health_start(c->loop, c->cfg.health.listen, health_view, c, err, sizeof err);
    if (!c->health) {
        pc_log_error("cannot start the health server", PC_LSTR("error", err));
        goto out_spool;
    }
    pc_telemetry_opts_t topts = {.otlp_endpoint = c->cfg.telemetry.otlp_endpoint,
                                 .interval_ms = c->cfg.telemetry.interval_ms,
                                 .instance = c->cfg.instance_name,
                                 .version = PC_VERSION};
    c->telemetry = pc_telemetry_start(c->loop, &topts, err, sizeof err);
    if (!c->telemetry) {
        pc_log_error("cannot start telemetry", PC_LSTR("error", err));
        pc_health_stop(c->health);
        goto out_spool;
    }
    /* After the spool and health server: etcd's trouble must never stop the connector. */
    c->cluster = pc_cluster_start(&c->cfg);

    uv_signal_init(c->loop, &c->sigterm);
    uv_signal_init(c->loop, &c->sigint);
    uv_signal_init(c->loop, &c->sighup);
    uv_timer_init(c->loop, &c->drain_timer);
    c->sigterm.data = c->sigint.data = c->sighup.data = c->drain_timer.data = c;
    uv_signal_start(&c->sigterm, on_signal, SIGTERM);
    uv_signal_start(&c->sigint, on_signal, SIGINT);
    uv_signal_start(&c->sighup, on_sighup, SIGHUP);

    if (pc_pg_register) pc_pg_register();
    if (pc_s3_register) pc_s3_register();

    if (c->cfg.control_plane.url) {
        if (!start_cpclient(c, err, sizeof err)) {
            pc_log_error("cannot start the control-plane client", PC_LSTR("error", err));
            goto out_handles;
        }
    } else if (!cdir) {
        c->not_ready_reason = "no control plane configured";
        pc_log_error("no control plane configured (control_plane.config_dir); staying not ready");
    } else {
        uint64_t fp = 0;
        bool have_fp = pc__configdir_fingerprint(cdir, &fp);
        if (load_and_apply(c, true) && have_fp) remember_applied(c, fp);
        c->configdir = pc__configdir_watch(c->loop, cdir, on_configdir_changed, c, err,
                                           sizeof err);
        if (!c->configdir)
            pc_log_warn("config_dir changes will not be picked up", PC_LSTR("error", err));
        else if (have_fp)
            pc__configdir_set_applied(c->configdir, fp);
    }

    c->workers = pc_workers_start(c->loop, &c->ctx, c->cfg.workers, on_workers_notify, c, err,
                                  sizeof err);
    if (!c->workers) {
        pc_log_error("cannot start workers", PC_LSTR("error", err));
        goto out_handles;
    }
    if (c->current) pc_workers_publish(c->workers, c->current);

    uv_run(c->loop, UV_RUN_DEFAULT);
    pc_log_info("stopped", PC_LINT("exit_code", c->exit_code));
    goto out_snapshot;

out_handles:
    pc_cluster_leave(c->cluster);
    c->cluster = NULL;
    (void)pc_cpclient_close(c->cp, 0);
    c->cp = NULL;
    pc__configdir_stop(c->configdir);
    pc_health_stop(c->health);
    close_quietly((uv_handle_t *)&c->drain_timer);
    close_quietly((uv_handle_t *)&c->sigterm);
    close_quietly((uv_handle_t *)&c->sigint);
    close_quietly((uv_handle_t *)&c->sighup);
    pc_telemetry_stop(c->telemetry, NULL);
    uv_run(c->loop, UV_RUN_DEFAULT);
out_spool:
    pc_spool_close(c->spool);
    c->spool = NULL;
out_snapshot:
    pc_snapshot_unref(c->current);
out:
    if (c->loop) {
        uv_run(c->loop, UV_RUN_DEFAULT); /* close callbacks still queued */
        (void)uv_loop_close(c->loop);
    }
    pc_config_free(&c->cfg);
    return c->exit_code;
}
