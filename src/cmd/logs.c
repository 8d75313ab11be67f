/*
 * `portcullis logs --spool DIR [--follow]`: print the audit records held in a
 * spool directory as JSON lines. Safe on a live spool (it only reads), so it
 * can follow a running connector's spool like `tail -f`.
 */
#include "cmd/commands.h"
#include "core/config.h"
#include "spool/spool.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/signalfd.h>
#include <unistd.h>

#define POLL_FALLBACK_MS 1000 /* inotify misses nothing, but stay safe on odd filesystems */

static void usage(FILE *out)
{
    fprintf(out, "usage: portcullis logs (--spool DIR | -c FILE) [--follow]\n"
                 "\n"
                 "Print the audit records held in a log spool as JSON lines on stdout,\n"
                 "oldest first. Corrupt or incomplete records are never printed.\n"
                 "Safe on the spool of a running connector: it only reads.\n"
                 "\n"
                 "  --spool DIR        the connector's log_spool.dir\n"
                 "  -c, --config FILE  or take log_spool.dir from the connector's config\n"
                 "  -f, --follow       keep printing new records until SIGINT/SIGTERM\n"
                 "  -h, --help         this text\n");
}

/* Print every complete record; false on a read or write error. */
static bool drain(pc_spool_reader_t *r, const char *dir)
{
    const char *rec;
    size_t len;
    pc_spool_read_t res;
    while ((res = pc_spool_reader_next(r, &rec, &len, NULL)) == PC_SPOOL_READ_OK) {
        fwrite(rec, 1, len, stdout);
        putchar('\n');
    }
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, "portcullis logs: writing stdout: %s\n", strerror(errno));
        return false;
    }
    if (res == PC_SPOOL_READ_ERROR) {
        fprintf(stderr, "portcullis logs: reading spool %s: %s\n", dir, strerror(errno));
        return false;
    }
    return true;
}

static int follow(pc_spool_reader_t *r, const char *dir)
{
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGTERM);
    if (sigprocmask(SIG_BLOCK, &mask, NULL) != 0) return PC_EXIT_FAILURE;
    int sfd = signalfd(-1, &mask, SFD_CLOEXEC);
    if (sfd < 0) {
        fprintf(stderr, "portcullis logs: signalfd: %s\n", strerror(errno));
        return PC_EXIT_FAILURE;
    }
    /* Without inotify we still follow, by polling. */
    int ifd = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
    if (ifd >= 0 &&
        inotify_add_watch(ifd, dir, IN_MODIFY | IN_CREATE | IN_MOVED_TO | IN_CLOSE_WRITE) < 0) {
        close(ifd);
        ifd = -1;
    }
    int rc = PC_EXIT_OK;
    for (;;) {
        if (!drain(r, dir)) {
            rc = PC_EXIT_FAILURE;
            break;
        }
        struct pollfd pfd[2] = {{.fd = sfd, .events = POLLIN}, {.fd = ifd, .events = POLLIN}};
        int n = poll(pfd, ifd >= 0 ? 2 : 1, ifd >= 0 ? POLL_FALLBACK_MS : 200);
        if (n < 0 && errno != EINTR) {
            rc = PC_EXIT_FAILURE;
            break;
        }
        if (n > 0 && (pfd[0].revents & POLLIN)) break; /* SIGINT / SIGTERM: clean exit */
        if (n > 0 && ifd >= 0 && (pfd[1].revents & POLLIN)) {
            char ev[4096];
            while (read(ifd, ev, sizeof ev) > 0) {
            }
        }
    }
    if (ifd >= 0) close(ifd);
    close(sfd);
    return rc;
}

int pc_cmd_logs(int argc, char **argv)
{
    const char *dir = NULL, *config = NULL;
    bool follow_mode = false;
    if (pc_cmd_wants_help(argc, argv)) {
        usage(stdout);
        return PC_EXIT_OK;
    }
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--spool") == 0) {
            if (i + 1 >= argc) {
                fprintf(stderr, "portcullis logs: --spool needs a directory\n");
                usage(stderr);
                return PC_EXIT_USAGE;
            }
            dir = argv[++i];
        } else if (strncmp(a, "--spool=", 8) == 0) {
            dir = a + 8;
        } else if (strcmp(a, "-c") == 0 || strcmp(a, "--config") == 0) {
            if (i + 1 >= argc) {
                fprintf(stderr, "portcullis logs: %s needs a file\n", a);
                usage(stderr);
                return PC_EXIT_USAGE;
            }
            config = argv[++i];
        } else if (strncmp(a, "--config=", 9) == 0) {
            config = a + 9;
        } else if (strcmp(a, "--follow") == 0 || strcmp(a, "-f") == 0) {
            follow_mode = true;
        } else {
            fprintf(stderr, "portcullis logs: unknown argument '%s'\n", a);
            usage(stderr);
            return PC_EXIT_USAGE;
        }
    }
    if ((dir && config) || (!dir && !config) || (dir && !*dir)) {
        fprintf(stderr, "portcullis logs: give one of --spool DIR or -c FILE\n");
        usage(stderr);
        return PC_EXIT_USAGE;
    }
    char err[512];
    pc_config_t cfg;
    bool have_cfg = false;
    if (config) {
        if (!pc_config_load(config, &cfg, err, sizeof err)) {
            fprintf(stderr, "portcullis logs: %s\n", err);
            return PC_EXIT_USAGE;
        }
        have_cfg = true;
        dir = cfg.log_spool.dir;
    }
    pc_spool_reader_t *r = pc_spool_reader_open(dir, NULL, err, sizeof err);
    if (!r) {
        fprintf(stderr, "portcullis logs: %s\n", err);
        if (have_cfg) pc_config_free(&cfg);
        return PC_EXIT_FAILURE;
    }
    int rc = follow_mode ? follow(r, dir) : (drain(r, dir) ? PC_EXIT_OK : PC_EXIT_FAILURE);
    uint64_t skipped = pc_spool_reader_skipped(r);
    if (skipped)
        fprintf(stderr, "portcullis logs: skipped %llu corrupt record(s)\n",
                (unsigned long long)skipped);
    pc_spool_reader_close(r);
    if (have_cfg) pc_config_free(&cfg);
    return rc;
}
