/*
 * The connector process (design §1, §5): start-up in order, the embedded
 * control plane (config_dir watched with inotify), snapshot distribution to
 * the workers, readiness, and the ordered graceful shutdown.
 */
#ifndef PC_CONNECTOR_CONNECTOR_H
#define PC_CONNECTOR_CONNECTOR_H

#include "core/common.h"

/**
 * Run a connector from the YAML file at config_path until it is shut down.
 * Returns the process exit code: 0 after a graceful shutdown, 1 on a runtime
 * failure (spool or health port unusable), 2 on a configuration error.
 */
int pc_connector_run(const char *config_path);

#endif
