/*
 * The embedded control plane's source: a directory of *.yaml and *.rego files
 * watched with inotify (uv_fs_event). Events are debounced (an editor's save
 * is several events) and the directory's content is fingerprinted, so a
 * reload happens only when what the loader would read has really changed;
 * that also keeps a refused configuration to one log line, not one per event.
 */
#include "connector/configdir.h"

#include "core/log.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#define DEBOUNCE_MS 100
/* inotify can miss changes behind a replaced directory (ConfigMap-style
 * symlink swaps of the dir itself); a slow poll of the fingerprint catches them. */
#define SAFETY_POLL_MS 2000

struct pc__configdir {
    uv_loop_t *loop;
    char *dir;
    uv_fs_event_t event;
    uv_timer_t debounce;
    uv_timer_t poll;
    pc__configdir_changed_fn changed;
    void *arg;
    uint64_t last_fingerprint;
    bool have_fingerprint;
    bool watching;
    bool watch_lost; /* the watched directory itself was deleted or moved */
    const char *base; /* basename of dir: how libuv names events on the dir itself */
    dev_t watched_dev; /* identity of the directory the inotify watch is on */
    ino_t watched_ino;
    int open_handles;
};

static uint64_t fnv1a(uint64_t h, const void *data, size_t len)
{
    const unsigned char *p = data;
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

static int visible(const struct dirent *d)
{
    return d->d_name[0] != '.';
}

bool pc__configdir_fingerprint(const char *dir, uint64_t *out)
{
    struct dirent **names = NULL;
    int n = scandir(dir, &names, visible, alphasort);
    if (n < 0) return false;
    uint64_t h = 0xcbf29ce484222325ULL;
    char path[4096];
    char buf[8192];
    for (int i = 0; i < n; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, names[i]->d_name);
        struct stat st;
        if (stat(path, &st) != 0 || !S_ISREG(st.st_mode)) continue;
        h = fnv1a(h, names[i]->d_name, strlen(names[i]->d_name) + 1);
        FILE *f = fopen(path, "rb");
        if (!f) {
            /* Unreadable now: make the fingerprint differ so the loader reports why. */
            h = fnv1a(h, &errno, sizeof errno);
            continue;
        }
        size_t got;
        while ((got = fread(buf, 1, sizeof buf, f)) > 0) h = fnv1a(h, buf, got);
        fclose(f);
        h = fnv1a(h, "\0", 1);
    }
    for (int i = 0; i < n; i++) free(names[i]);
    free(names);
    *out = h;
    return true;
}

static void check(pc__configdir_t *cd)
{
    uint64_t fp = 0;
    bool ok = pc__configdir_fingerprint(cd->dir, &fp);
    if (ok && cd->have_fingerprint && fp == cd->last_fingerprint) return;
    if (!ok && cd->have_fingerprint && cd->last_fingerprint == 0) return;
    cd->last_fingerprint = ok ? fp : 0;
    cd->have_fingerprint = true;
    cd->changed(cd->arg, cd->last_fingerprint);
}

void pc__configdir_check_now(pc__configdir_t *cd)
{
    if (cd) check(cd);
}

static void on_debounce(uv_timer_t *t)
{
    check(t->data);
}

static void on_event(uv_fs_event_t *e, const char *filename, int events, int status);

/* Watch dir again when it is a different directory than the one watched. */
static void rewatch_if_replaced(pc__configdir_t *cd)
{
    struct stat st;
    if (stat(cd->dir, &st) != 0 || !S_ISDIR(st.st_mode)) return;
    /* Inode numbers are reused at once after rm -r + mkdir: trust the event too. */
    if (cd->watching && !cd->watch_lost && st.st_dev == cd->watched_dev &&
        st.st_ino == cd->watched_ino)
        return;
    cd->watch_lost = false;
    uv_fs_event_stop(&cd->event);
    int rc = uv_fs_event_start(&cd->event, on_event, cd->dir, 0);
    cd->watching = rc == 0;
    cd->watched_dev = st.st_dev;
    cd->watched_ino = st.st_ino;
    if (rc == 0)
        pc_log_info("config_dir replaced; watching the new directory", PC_LSTR("dir", cd->dir));
}

static void on_poll(uv_timer_t *t)
{
    rewatch_if_replaced(t->data);
    check(t->data);
}

static void on_event(uv_fs_event_t *e, const char *filename, int events, int status)
{
    pc__configdir_t *cd = e->data;
    if (status < 0) {
        pc_log_warn("config_dir watch error", PC_LSTR("dir", cd->dir),
                    PC_LSTR("error", uv_strerror(status)));
        return;
    }
    if (filename && strcmp(filename, cd->base) == 0) cd->watch_lost = true;
    /* Restarting the timer coalesces a burst of events into one reload. */
    uv_timer_start(&cd->debounce, on_debounce, DEBOUNCE_MS, 0);
}

pc__configdir_t *pc__configdir_watch(uv_loop_t *loop, const char *dir,
                                     pc__configdir_changed_fn changed, void *arg, char *err,
                                     size_t errlen)
{
    pc__configdir_t *cd = pc_xcalloc(1, sizeof *cd);
    cd->loop = loop;
    cd->dir = pc_xstrdup(dir);
    size_t dl = strlen(cd->dir);
    while (dl > 1 && cd->dir[dl - 1] == '/') cd->dir[--dl] = '\0';
    const char *slash = strrchr(cd->dir, '/');
    cd->base = slash ? slash + 1 : cd->dir;
    cd->changed = changed;
    cd->arg = arg;
    uv_fs_event_init(loop, &cd->event);
    uv_timer_init(loop, &cd->debounce);
    uv_timer_init(loop, &cd->poll);
    cd->event.data = cd->debounce.data = cd->poll.data = cd;
    cd->open_handles = 3;
    int rc = uv_fs_event_start(&cd->event, on_event, dir, 0);
    if (rc != 0) {
        snprintf(err, errlen, "control_plane.config_dir: cannot watch '%s': %s", dir,
                 uv_strerror(rc));
        pc__configdir_stop(cd);
        return NULL;
    }
    cd->watching = true;
    struct stat st;
    if (stat(dir, &st) == 0) {
        cd->watched_dev = st.st_dev;
        cd->watched_ino = st.st_ino;
    }
    uv_timer_start(&cd->poll, on_poll, SAFETY_POLL_MS, SAFETY_POLL_MS);
    return cd;
}

void pc__configdir_set_applied(pc__configdir_t *cd, uint64_t fingerprint)
{
    cd->last_fingerprint = fingerprint;
    cd->have_fingerprint = true;
}

static void on_closed(uv_handle_t *h)
{
    pc__configdir_t *cd = h->data;
    if (--cd->open_handles == 0) {
        free(cd->dir);
        free(cd);
    }
}

void pc__configdir_stop(pc__configdir_t *cd)
{
    if (!cd) return;
    uv_close((uv_handle_t *)&cd->event, on_closed);
    uv_close((uv_handle_t *)&cd->debounce, on_closed);
    uv_close((uv_handle_t *)&cd->poll, on_closed);
}
