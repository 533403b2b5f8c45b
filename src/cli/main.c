/*
 * main.c - entry point of the `isoflow` command: dispatches the first word of
 * the command line to a subcommand from a constant table and handles
 * `--help`, `--version` and `help CMD`.
 */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "net.h"

static int cmd_help(int argc, char **argv);
static void cmd_help_help(FILE *out);

#ifdef ISOFLOW_FIRMWARE
/* Firmware-style build (isoflow-fw, bench/deploy/CMakeLists.txt): defined
 * in a generated file, registers the stage modules compiled into the
 * binary (fl_embed_module); returns 0, or -1 after printing why. */
int cli_firmware_init(void);
#endif

/* The subcommands, in the order `isoflow --help` lists them.  New
 * subcommands (run, check, node, deploy, ...) are added here. */
static const cli_command commands[] = {
    {"wasm", "validate, inspect and run WebAssembly modules", cli_cmd_wasm,
     cli_cmd_wasm_help},
    {"check", "check a .flow file and print its graph per layer",
     cli_cmd_check, cli_cmd_check_help},
    {"build", "compile a stage (C) to .wasm, or to a native .so",
     cli_cmd_build, cli_cmd_build_help},
    {"run", "run a .flow file: every layer in this process", cli_cmd_run,
     cli_cmd_run_help},
    {"node", "run one node of a flow, linked to the others over mutual TLS",
     cli_cmd_node, cli_cmd_node_help},
    {"demo", "the home system as processes: cloud, edge, N devices",
     cli_cmd_demo, cli_cmd_demo_help},
    {"stages", "list the stage kinds (builtins) and their documentation",
     cli_cmd_stages, cli_cmd_stages_help},
    {"ca", "create a certificate authority, issue node certificates",
     cli_cmd_ca, cli_cmd_ca_help},
    {"key", "create Ed25519 keys for signing modules", cli_cmd_key,
     cli_cmd_key_help},
    {"sign", "sign a module (detached signature FILE.sig)", cli_cmd_sign,
     cli_cmd_sign_help},
    {"verify", "check a module's signature against trusted keys",
     cli_cmd_verify, cli_cmd_verify_help},
    {"deploy", "send a signed stage module to running nodes (live update)",
     cli_cmd_deploy, cli_cmd_deploy_help},
    {"versions", "list a stage's version history on a running node",
     cli_cmd_versions, cli_cmd_versions_help},
    {"rollback", "swap a stage on a running node back to an earlier version",
     cli_cmd_rollback, cli_cmd_rollback_help},
    {"agent", "keep an operator's connections to nodes open (fast deploys)",
     cli_cmd_agent, cli_cmd_agent_help},
    {"help", "show help for a command", cmd_help, cmd_help_help},
};

#define NCOMMANDS (sizeof commands / sizeof commands[0])

static const cli_command *find_command(const char *name)
{
    for (size_t i = 0; i < NCOMMANDS; i++)
        if (cli_streq(commands[i].name, name))
            return &commands[i];
    return NULL;
}

static void usage(FILE *out)
{
    fprintf(out,
            "isoflow %s - an IoT dataflow runtime built on its own "
            "WebAssembly engine\n\n"
            "usage: isoflow [--help | --version] COMMAND [ARGS...]\n\n"
            "commands:\n",
            ISOFLOW_VERSION);
    for (size_t i = 0; i < NCOMMANDS; i++)
        fprintf(out, "  %-10s %s\n", commands[i].name, commands[i].summary);
    fprintf(out, "\nRun 'isoflow help COMMAND' or 'isoflow COMMAND --help' "
                 "for details.\n");
}

static void cmd_help_help(FILE *out)
{
    fprintf(out, "usage: isoflow help [COMMAND]\n\n"
                 "Shows the list of commands, or the usage of COMMAND.\n"
                 "example: isoflow help wasm\n");
}

/* `isoflow help [CMD]`: general usage or the usage of one command. */
static int cmd_help(int argc, char **argv)
{
    const cli_command *c;
    if (argc < 2) {
        usage(stdout);
        return CLI_EXIT_OK;
    }
    if (argc > 2) {
        cli_errf("help takes at most one command name");
        return CLI_EXIT_USAGE;
    }
    if (cli_streq(argv[1], "--help") || cli_streq(argv[1], "-h")) {
        cmd_help_help(stdout);
        return CLI_EXIT_OK;
    }
    c = find_command(argv[1]);
    if (!c) {
        cli_errf("unknown command '%s' (see 'isoflow --help')", argv[1]);
        return CLI_EXIT_USAGE;
    }
    c->help(stdout);
    return CLI_EXIT_OK;
}

int main(int argc, char **argv)
{
    const cli_command *c;
    int rc;

    /* The operator commands do this on the thread that starts OpenSSL
     * (cmd_deploy.c), off their critical path, or not at all through an
     * agent. */
    if (argc < 2 || (!cli_streq(argv[1], "deploy") &&
                     !cli_streq(argv[1], "rollback") &&
                     !cli_streq(argv[1], "versions")))
        nt_tls_process_init();
#ifdef ISOFLOW_FIRMWARE
    if (cli_firmware_init() != 0)
        return CLI_EXIT_FAIL;
#endif
    if (argc < 2) {
        usage(stderr);
        return CLI_EXIT_USAGE;
    }
    if (cli_streq(argv[1], "--help") || cli_streq(argv[1], "-h")) {
        usage(stdout);
        return CLI_EXIT_OK;
    }
    if (cli_streq(argv[1], "--version") || cli_streq(argv[1], "-V")) {
        printf("isoflow %s\n", ISOFLOW_VERSION);
        return CLI_EXIT_OK;
    }
    if (argv[1][0] == '-') {
        cli_errf("unknown option '%s' (see 'isoflow --help')", argv[1]);
        return CLI_EXIT_USAGE;
    }
    c = find_command(argv[1]);
    if (!c) {
        cli_errf("unknown command '%s' (see 'isoflow --help')", argv[1]);
        return CLI_EXIT_USAGE;
    }
    rc = c->fn(argc - 1, argv + 1);
    if (fflush(stdout) != 0 && rc == CLI_EXIT_OK) {
        cli_errf("cannot write output");
        rc = CLI_EXIT_FAIL;
    }
    return rc;
}
