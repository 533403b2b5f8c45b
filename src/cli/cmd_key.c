/*
 * cmd_key.c - `isoflow key gen NAME [--dir DIR]`: creates an Ed25519 signing
 * key pair for modules (deploy.h: dp_key_gen).
 *
 * Output (stable; tests assert on it): "wrote DIR/NAME.key (...)", "wrote
 * DIR/NAME.pub (...)" and "key id ID", exit 0.  Failures: "isoflow: key
 * gen: <reason>" on stderr, exit 1; usage errors exit 2.
 */
#include "cli.h"
#include "deploy.h"

static void key_gen_help(FILE *out)
{
    fprintf(out,
            "usage: isoflow key gen NAME [--dir DIR]\n\n"
            "Creates an Ed25519 key pair for signing modules: DIR/NAME.key\n"
            "(private, mode 0600: keep it secret) and DIR/NAME.pub (public:\n"
            "copy it into the trusted keys directory of every node).  Prints\n"
            "the key id (the first 16 bytes of the SHA-256 of the public\n"
            "key, hex), which signatures name.  Existing files are not\n"
            "overwritten.\n\n"
            "options:\n"
            "  --dir DIR   where to write the files (default: .; created if\n"
            "              missing)\n"
            "  -h, --help  show this help\n\n"
            "example: isoflow key gen release --dir keys\n");
}

void cli_cmd_key_help(FILE *out)
{
    fprintf(out, "usage: isoflow key gen NAME [--dir DIR]\n\n"
                 "Module signing keys:\n"
                 "  gen   create an Ed25519 key pair (NAME.key, NAME.pub)\n\n"
                 "Run 'isoflow key gen --help' for details.\n");
}

/* `isoflow key gen NAME [--dir DIR]`; argv[0] is "gen". */
static int key_gen(int argc, char **argv)
{
    const char *name = NULL, *dir = ".";
    char err[512], id[DP_KEY_ID_HEX + 1];

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (cli_streq(a, "--help") || cli_streq(a, "-h")) {
            key_gen_help(stdout);
            return CLI_EXIT_OK;
        }
        if (cli_streq(a, "--dir")) {
            if (i + 1 >= argc) {
                cli_errf("option '--dir' needs a value");
                return CLI_EXIT_USAGE;
            }
            dir = argv[++i];
            continue;
        }
        if (a[0] == '-' && a[1] != '\0') {
            cli_errf("unknown option '%s' (see 'isoflow key gen --help')", a);
            return CLI_EXIT_USAGE;
        }
        if (name != NULL) {
            cli_errf("key gen takes one name (got '%s' and '%s')", name, a);
            return CLI_EXIT_USAGE;
        }
        name = a;
    }
    if (name == NULL) {
        key_gen_help(stderr);
        return CLI_EXIT_USAGE;
    }
    if (dp_key_gen(dir, name, id, err, sizeof err) != DP_OK) {
        cli_errf("key gen: %s", err);
        return CLI_EXIT_FAIL;
    }
    printf("wrote %s/%s.key (private key, mode 0600: keep it secret)\n", dir,
           name);
    printf("wrote %s/%s.pub (public key: give it to the nodes that trust "
           "it)\n",
           dir, name);
    printf("key id %s\n", id);
    return CLI_EXIT_OK;
}

int cli_cmd_key(int argc, char **argv)
{
    if (argc < 2) {
        cli_cmd_key_help(stderr);
        return CLI_EXIT_USAGE;
    }
    if (cli_streq(argv[1], "--help") || cli_streq(argv[1], "-h")) {
        cli_cmd_key_help(stdout);
        return CLI_EXIT_OK;
    }
    if (cli_streq(argv[1], "gen"))
        return key_gen(argc - 1, argv + 1);
    cli_errf("unknown key command '%s' (see 'isoflow key --help')", argv[1]);
    return CLI_EXIT_USAGE;
}
