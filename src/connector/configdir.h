/*
 * Watching control_plane.config_dir (internal to src/connector/): calls
 * changed(arg) on the loop, at most once per debounce window, whenever the
 * content of the directory's visible regular files differs from the last
 * fingerprint seen.
 */
#ifndef PC_CONNECTOR_CONFIGDIR_H
#define PC_CONNECTOR_CONFIGDIR_H

#include "core/common.h"

#include <uv.h>

typedef struct pc__configdir pc__configdir_t;
/* fingerprint: of the content that changed (0 if the directory is unreadable). */
typedef void (*pc__configdir_changed_fn)(void *arg, uint64_t fingerprint);

pc__configdir_t *pc__configdir_watch(uv_loop_t *loop, const char *dir,
                                     pc__configdir_changed_fn changed, void *arg, char *err,
                                     size_t errlen) PC_WUR;

/** Hash of names and contents of dir's visible regular files; false if dir is unreadable. */
bool pc__configdir_fingerprint(const char *dir, uint64_t *out) PC_WUR;

/** Record the fingerprint of what was just loaded (so it is not reloaded). */
void pc__configdir_set_applied(pc__configdir_t *cd, uint64_t fingerprint);

/** Compare the fingerprint now (SIGHUP) instead of waiting for an event. */
void pc__configdir_check_now(pc__configdir_t *cd);

/** Stop watching; memory goes with the close callbacks. Accepts NULL. */
void pc__configdir_stop(pc__configdir_t *cd);

#endif
