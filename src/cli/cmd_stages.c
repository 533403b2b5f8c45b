/*
 * cmd_stages.c - `isoflow stages [KIND]`: lists the stage kinds a flow can
 * use (wasm, native and the builtins) with their summaries, or prints the
 * full help of one kind (what it does and its configuration syntax).
 */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "flow.h"

void cli_cmd_stages_help(FILE *out)
{
    fprintf(out,
            "usage: isoflow stages [KIND]\n\n"
            "Without KIND, lists every stage kind a .flow file can use in a\n"
            "`stage NAME @PLACEMENT KIND ...` declaration.  With KIND, prints\n"
            "its documentation: what it does and its configuration.\n\n"
            "example: isoflow stages filter\n");
}

int cli_cmd_stages(int argc, char **argv)
{
    const char *const *kinds = fl_stage_kinds();

    if (argc > 2) {
        cli_errf("too many arguments (see 'isoflow stages --help')");
        return CLI_EXIT_USAGE;
    }
    if (argc == 2) {
        const char *help;
        if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
            cli_cmd_stages_help(stdout);
            return CLI_EXIT_OK;
        }
        help = fl_stage_help(argv[1]);
        if (!help) {
            cli_errf("unknown stage kind '%s' (see 'isoflow stages')",
                     argv[1]);
            return CLI_EXIT_USAGE;
        }
        printf("%s - %s\n\n%s", argv[1], fl_stage_summary(argv[1]), help);
        if (help[0] && help[strlen(help) - 1] != '\n')
            printf("\n");
        return CLI_EXIT_OK;
    }
    printf("stage kinds (isoflow stages KIND for details):\n");
    for (size_t i = 0; kinds[i]; i++)
        printf("  %-8s %s\n", kinds[i], fl_stage_summary(kinds[i]));
    return CLI_EXIT_OK;
}
