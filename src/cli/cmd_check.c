/*
 * cmd_check.c - `isoflow check FILE.flow [--devices GROUP=N]...`: parses and
 * checks a flow file without running anything and prints its graph per
 * layer (flow.h: fl_graph_load, fl_graph_print).
 *
 * Output (stable; tests assert on it): the graph, then
 *   "FILE: ok (S stages, L links, D devices)"      exit 0
 * On a bad flow the positioned error of fl_graph_load on stderr, exit 1.
 * Usage errors ("isoflow: ..." on stderr) exit 2.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "flow.h"

void cli_cmd_check_help(FILE *out)
{
    fprintf(out,
            "usage: isoflow check [--devices GROUP=N]... FILE.flow\n\n"
            "Parses and checks a flow file (syntax, names, placements,\n"
            "devices, actuators, sources, cycles, stage files and their\n"
            "exports) without running it, prints the graph per layer and\n"
            "\"FILE: ok (S stages, L links, D devices)\".  Errors are shown\n"
            "as FILE:LINE:COL with the offending text underlined; exit 1.\n\n"
            "options:\n"
            "  --devices GROUP=N   use N devices in device group GROUP\n"
            "                      (repeatable)\n"
            "  -h, --help          show this help\n\n"
            "example: isoflow check examples/home/home.flow --devices "
            "rooms=100\n"
            "The language: docs/FLOW_LANGUAGE.md.\n");
}

/* `isoflow check`: argv[0] is "check".  Returns a CLI_EXIT_* code. */
int cli_cmd_check(int argc, char **argv)
{
    const char *file = NULL;
    const char *devs[64];
    int ndevs = 0, i;
    char err[4096];
    fl_graph *g = NULL;
    fl_status st;
    uint32_t ns, nl, nd;

    for (i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (cli_streq(a, "--help") || cli_streq(a, "-h")) {
            cli_cmd_check_help(stdout);
            return CLI_EXIT_OK;
        }
        if (cli_streq(a, "--devices") || strncmp(a, "--devices=", 10) == 0) {
            const char *v = a[9] == '=' ? a + 10 : NULL;
            if (v == NULL) {
                if (i + 1 >= argc) {
                    cli_errf("option '--devices' needs GROUP=N");
                    return CLI_EXIT_USAGE;
                }
                v = argv[++i];
            }
            if (ndevs == (int)(sizeof devs / sizeof devs[0])) {
                cli_errf("too many '--devices' options");
                return CLI_EXIT_USAGE;
            }
            devs[ndevs++] = v;
            continue;
        }
        if (a[0] == '-' && a[1] != '\0') {
            cli_errf("unknown option '%s' (see 'isoflow check --help')", a);
            return CLI_EXIT_USAGE;
        }
        if (file != NULL) {
            cli_errf("check takes one flow file (got '%s' and '%s')", file,
                     a);
            return CLI_EXIT_USAGE;
        }
        file = a;
    }
    if (file == NULL) {
        cli_cmd_check_help(stderr);
        return CLI_EXIT_USAGE;
    }
    /* Validate the --devices syntax before loading anything. */
    for (i = 0; i < ndevs; i++) {
        const char *eq = strchr(devs[i], '=');
        char *end;
        unsigned long n;
        if (eq == NULL || eq == devs[i] || eq[1] < '0' || eq[1] > '9') {
            cli_errf("option '--devices' needs GROUP=N, got '%s'", devs[i]);
            return CLI_EXIT_USAGE;
        }
        errno = 0;
        n = strtoul(eq + 1, &end, 10);
        if (*end != '\0' || errno != 0 || n == 0 || n > 100000) {
            cli_errf("option '--devices': N must be from 1 to 100000, got "
                     "'%s'",
                     eq + 1);
            return CLI_EXIT_USAGE;
        }
    }
    st = fl_graph_load(file, &g, err, sizeof err);
    if (st != FL_OK) {
        fprintf(stderr, "%s\n", err);
        return CLI_EXIT_FAIL;
    }
    for (i = 0; i < ndevs; i++) {
        const char *eq = strchr(devs[i], '=');
        char group[64];
        size_t gl = (size_t)(eq - devs[i]);
        if (gl >= sizeof group)
            gl = sizeof group - 1;
        memcpy(group, devs[i], gl);
        group[gl] = '\0';
        st = fl_graph_set_devices(g, group,
                                  (uint32_t)strtoul(eq + 1, NULL, 10));
        if (st != FL_OK) {
            cli_errf("option '--devices': cannot give device group '%s' %s "
                     "devices in %s (%s: no such device group, a single "
                     "named device, too many devices or duplicate names)",
                     group, eq + 1, file, fl_status_msg(st));
            fl_graph_free(g);
            return CLI_EXIT_FAIL;
        }
    }
    fl_graph_print(g, stdout);
    fl_graph_counts(g, &ns, &nl, &nd);
    printf("\n%s: ok (%u stage%s, %u link%s, %u device%s)\n", file, ns,
           ns == 1 ? "" : "s", nl, nl == 1 ? "" : "s", nd,
           nd == 1 ? "" : "s");
    fl_graph_free(g);
    return CLI_EXIT_OK;
}
