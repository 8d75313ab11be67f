/* `portcullis connector -c FILE`: parse the command line, then run the connector. */
#include "cmd/commands.h"
#include "connector/connector.h"

#include <stdio.h>
#include <string.h>

static void usage(FILE *out)
{
    fprintf(out,
            "usage: portcullis connector -c FILE\n"
            "\n"
            "Run a connector instance configured by the YAML file FILE (design: docs/operations.md).\n"
            "\n"
            "options:\n"
            "  -c, --config FILE   connector configuration (required)\n"
            "  -h, --help          show this help\n"
            "\n"
            "Logs are JSON lines on stderr. SIGTERM or SIGINT shuts down gracefully (exit 0);\n"
            "a second signal exits at once with status 1.\n"
            "Exit codes: 0 ok, 1 runtime failure, 2 usage or configuration error.\n");
}

int pc_cmd_connector(int argc, char **argv)
{
    if (pc_cmd_wants_help(argc, argv)) {
        usage(stdout);
        return PC_EXIT_OK;
    }
    const char *path = pc_cmd_config_arg(argc, argv, "connector", usage);
    if (!path) return PC_EXIT_USAGE;
    return pc_connector_run(path);
}
