/*
 * Sub-commands of the single `portcullis` binary (design §1). Each lives in
 * src/cmd/<name>.c and is linked straight into the executable; main.c refers
 * to them weakly, so a command whose module is not in the tree is simply not
 * offered. Every command returns the process exit code: 0 ok, 1 runtime
 * failure, 2 usage or configuration error.
 */
#ifndef PC_CMD_COMMANDS_H
#define PC_CMD_COMMANDS_H

#include <stdio.h>

#define PC_EXIT_OK 0
#define PC_EXIT_FAILURE 1
#define PC_EXIT_USAGE 2

int pc_cmd_connector(int argc, char **argv);
int pc_cmd_controlplane(int argc, char **argv);
int pc_cmd_policy(int argc, char **argv);
int pc_cmd_ctl(int argc, char **argv);
int pc_cmd_logs(int argc, char **argv);
int pc_cmd_healthcheck(int argc, char **argv);

/** True if any argument is --help or -h (every command honours it). */
int pc_cmd_wants_help(int argc, char **argv);

/**
 * The `-c FILE` / `--config FILE` / `--config=FILE` command line shared by the
 * server commands: returns FILE, or NULL after printing the problem and the
 * command's usage to stderr (the caller exits PC_EXIT_USAGE). No other
 * argument is accepted.
 */
const char *pc_cmd_config_arg(int argc, char **argv, const char *command,
                              void (*print_usage)(FILE *out));

#endif
