/* `portcullis controlplane -c FILE`: run the control-plane server until SIGTERM / SIGINT. */
#include "cmd/commands.h"
#include "core/log.h"
#include "cp/cp.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>

static void usage(FILE *out)
{
    fprintf(out,
            "usage: portcullis controlplane -c FILE\n"
            "\n"
            "Run the control plane (docs/controlplane.md): configuration objects and\n"
            "revisions, connector tokens and watch streams, audit logs, Connected\n"
            "Instances and the web console, stored in SQLite.\n"
            "\n"
            "options:\n"
            "  -c, --config FILE   YAML with listen (default 127.0.0.1:8443), db (default\n"
            "                      ./portcullis.db), admin_token (required, ${VAR} allowed),\n"
            "                      tls: {cert, key}, console_dir, log_level\n"
            "  -h, --help          show this help\n"
            "\n"
            "Logs are JSON lines on stderr. SIGTERM or SIGINT stops it (exit 0).\n"
            "Exit codes: 0 ok, 1 runtime failure, 2 usage or configuration error.\n");
}

int pc_cmd_controlplane(int argc, char **argv)
{
    if (pc_cmd_wants_help(argc, argv)) {
        usage(stdout);
        return PC_EXIT_OK;
    }
    const char *path = pc_cmd_config_arg(argc, argv, "controlplane", usage);
    if (!path) return PC_EXIT_USAGE;
    char err[1024];
    pc_cp_config_t cfg;
    if (!pc_cp_config_load(path, &cfg, err, sizeof err)) {
        pc_log_error("invalid configuration", PC_LSTR("error", err));
        return PC_EXIT_USAGE;
    }
    if (cfg.log_level && !pc_log_set_level_name(cfg.log_level)) {
        pc_log_error("invalid configuration", PC_LSTR("error", "log_level: unknown level"));
        pc_cp_config_free(&cfg);
        return PC_EXIT_USAGE;
    }
    pc_log_info("starting", PC_LSTR("version", PC_VERSION), PC_LSTR("component", "controlplane"),
                PC_LSTR("db", cfg.db));
    /* Signals go to sigwait below, never to the server's threads (they inherit this mask). */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    int rc = PC_EXIT_FAILURE;
    pc_cp_server_t *srv = NULL;
    pc_cp_t *cp = pc_cp_open(cfg.db, cfg.admin_token, err, sizeof err);
    if (!cp) {
        pc_log_error("cannot open the database", PC_LSTR("error", err));
        goto done;
    }
    srv = pc_cp_server_start(cp, &cfg, err, sizeof err);
    if (!srv) {
        pc_log_error("cannot start the server", PC_LSTR("error", err));
        goto done;
    }
    pc_log_info("listening", PC_LSTR("listen", cfg.listen), PC_LINT("port", pc_cp_server_port(srv)),
                PC_LSTR("tls", cfg.tls_cert ? "on" : "off"));
    int sig = 0;
    sigwait(&set, &sig);
    pc_log_info("shutting down", PC_LSTR("signal", sig == SIGTERM ? "SIGTERM" : "SIGINT"));
    rc = PC_EXIT_OK;
done:
    pc_cp_server_stop(srv);
    pc_cp_close(cp);
    pc_cp_config_free(&cfg);
    if (rc == PC_EXIT_OK) pc_log_info("stopped");
    return rc;
}
