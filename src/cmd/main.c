#include "cmd/commands.h"

#include <stdio.h>
#include <string.h>

/* Weak so that the binary links while a command's module is still absent. */
#pragma weak pc_cmd_connector
#pragma weak pc_cmd_controlplane
#pragma weak pc_cmd_policy
#pragma weak pc_cmd_ctl
#pragma weak pc_cmd_logs
#pragma weak pc_cmd_healthcheck

typedef int (*command_fn)(int argc, char **argv);

static const struct command {
    const char *name;
    command_fn fn;
    const char *summary;
} commands[] = {
    {"connector", pc_cmd_connector, "run a connector instance (-c FILE)"},
    {"controlplane", pc_cmd_controlplane, "run the control plane server (-c FILE)"},
    {"policy", pc_cmd_policy, "evaluate, test and check Rego policies (eval|test|check)"},
    {"ctl", pc_cmd_ctl, "control-plane client (apply, get, connectors, logs)"},
    {"logs", pc_cmd_logs, "print the audit records held in a spool (--spool DIR [--follow])"},
    {"healthcheck", pc_cmd_healthcheck, "exit 0 if /ready answers 200, else 1"},
};

static void usage(FILE *out)
{
    fprintf(out, "usage: portcullis COMMAND [OPTIONS]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
        if (commands[i].fn) fprintf(out, "  %-13s %s\n", commands[i].name, commands[i].summary);
    }
    fprintf(out, "  %-13s %s\n", "version", "print the version");
    fprintf(out, "\nEvery command accepts --help and --version.\n");
}

int pc_cmd_wants_help(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0) break;
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) return 1;
    }
    return 0;
}

const char *pc_cmd_config_arg(int argc, char **argv, const char *command,
                              void (*print_usage)(FILE *out))
{
    const char *path = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "-c") == 0 || strcmp(a, "--config") == 0) {
            if (i + 1 >= argc) {
                fprintf(stderr, "portcullis %s: %s needs a FILE\n\n", command, a);
                print_usage(stderr);
                return NULL;
            }
            path = argv[++i];
        } else if (strncmp(a, "--config=", 9) == 0) {
            path = a + 9;
        } else {
            fprintf(stderr, "portcullis %s: unexpected argument '%s'\n\n", command, a);
            print_usage(stderr);
            return NULL;
        }
    }
    if (!path || !path[0]) {
        fprintf(stderr, "portcullis %s: -c FILE is required\n\n", command);
        print_usage(stderr);
        return NULL;
    }
    return path;
}

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0) break;
        if (strcmp(argv[i], "--version") == 0) {
            printf("portcullis %s\n", PC_VERSION);
            return PC_EXIT_OK;
        }
    }
    if (argc < 2) {
        usage(stderr);
        return PC_EXIT_USAGE;
    }
    const char *name = argv[1];
    if (strcmp(name, "version") == 0) {
        printf("portcullis %s\n", PC_VERSION);
        return PC_EXIT_OK;
    }
    if (strcmp(name, "--help") == 0 || strcmp(name, "-h") == 0 || strcmp(name, "help") == 0) {
        usage(stdout);
        return PC_EXIT_OK;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
        if (strcmp(name, commands[i].name) == 0 && commands[i].fn)
            return commands[i].fn(argc - 1, argv + 1);
    }
    fprintf(stderr, "portcullis: unknown command '%s'\n\n", name);
    usage(stderr);
    return PC_EXIT_USAGE;
}
