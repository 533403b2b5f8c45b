/*
 * cmd_ca.c - `isoflow ca init DIR [--name NAME]` and `isoflow ca issue DIR
 * NAME --role ROLE [--days N] [--out DIR]`: the certificate authority of a
 * deployment and the certificates of its nodes and operators (net.h:
 * nt_ca_init, nt_ca_issue).
 *
 * Output (stable; tests assert on it): one "wrote PATH (what)" line per file
 * written, exit 0.  Failures: "isoflow: ca init: <reason>" on stderr, exit 1.
 * Usage errors ("isoflow: ..." on stderr) exit 2.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "net.h"

#define CA_MAX_DAYS 36500

static void ca_init_help(FILE *out)
{
    fprintf(out,
            "usage: isoflow ca init DIR [--name NAME]\n\n"
            "Creates a certificate authority in DIR (created if missing):\n"
            "an Ed25519 key DIR/ca.key (mode 0600, keep it secret) and a\n"
            "self-signed certificate DIR/ca.crt (\"CN=NAME isoflow CA\",\n"
            "valid 10 years) that every node trusts.  Refuses a DIR that\n"
            "already holds a CA.\n\n"
            "options:\n"
            "  --name NAME   the CA's name (default: DIR's last component)\n"
            "  -h, --help    show this help\n\n"
            "example: isoflow ca init certs --name home\n");
}

static void ca_issue_help(FILE *out)
{
    fprintf(out,
            "usage: isoflow ca issue DIR NAME --role ROLE [--days N] "
            "[--out OUTDIR]\n\n"
            "Issues NAME's Ed25519 key and certificate, signed by the CA in\n"
            "DIR: OUTDIR/NAME.crt and OUTDIR/NAME.key (mode 0600).  The\n"
            "certificate carries CN=NAME and OU=role:ROLE, is valid for TLS\n"
            "clients and servers, and names NAME, localhost and 127.0.0.1.\n"
            "Nodes accept a peer only if its certificate chains to their CA\n"
            "and its role fits the link.  Existing files are not\n"
            "overwritten.\n\n"
            "options:\n"
            "  --role ROLE   device, edge, cloud or operator (required)\n"
            "  --days N      validity in days, 1 to %d (default 825)\n"
            "  --out OUTDIR  where to write the files (default: DIR)\n"
            "  -h, --help    show this help\n\n"
            "example: isoflow ca issue certs edge-1 --role edge --out "
            "nodes/edge-1\n",
            CA_MAX_DAYS);
}

void cli_cmd_ca_help(FILE *out)
{
    fprintf(out, "usage: isoflow ca init DIR [--name NAME]\n"
                 "       isoflow ca issue DIR NAME --role ROLE [--days N] "
                 "[--out OUTDIR]\n\n"
                 "The certificate authority for mutual TLS between nodes:\n"
                 "  init    create a CA (ca.crt, ca.key) in DIR\n"
                 "  issue   issue a node or operator certificate and key\n\n"
                 "Run 'isoflow ca init --help' or 'isoflow ca issue --help' "
                 "for details.\n");
}

/* The value of option argv[*i] (the next argument); NULL with a usage
 * message when it is missing. */
static const char *opt_value(int argc, char **argv, int *i)
{
    if (*i + 1 >= argc) {
        cli_errf("option '%s' needs a value", argv[*i]);
        return NULL;
    }
    return argv[++*i];
}

/* `isoflow ca init DIR [--name NAME]`; argv[0] is "init". */
static int ca_init(int argc, char **argv)
{
    const char *dir = NULL, *name = NULL;
    char err[512];
    nt_status st;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (cli_streq(a, "--help") || cli_streq(a, "-h")) {
            ca_init_help(stdout);
            return CLI_EXIT_OK;
        }
        if (cli_streq(a, "--name")) {
            if ((name = opt_value(argc, argv, &i)) == NULL)
                return CLI_EXIT_USAGE;
            continue;
        }
        if (a[0] == '-' && a[1] != '\0') {
            cli_errf("unknown option '%s' (see 'isoflow ca init --help')",
                     a);
            return CLI_EXIT_USAGE;
        }
        if (dir != NULL) {
            cli_errf("ca init takes one directory (got '%s' and '%s')", dir,
                     a);
            return CLI_EXIT_USAGE;
        }
        dir = a;
    }
    if (dir == NULL) {
        ca_init_help(stderr);
        return CLI_EXIT_USAGE;
    }
    st = nt_ca_init(dir, name, err, sizeof err);
    if (st != NT_OK) {
        cli_errf("ca init: %s", err);
        return CLI_EXIT_FAIL;
    }
    printf("wrote %s/ca.key (CA private key, mode 0600: keep it secret)\n",
           dir);
    printf("wrote %s/ca.crt (CA certificate, valid 10 years: give it to "
           "every node)\n",
           dir);
    return CLI_EXIT_OK;
}

/* `isoflow ca issue DIR NAME --role ROLE [--days N] [--out DIR]`; argv[0]
 * is "issue". */
static int ca_issue(int argc, char **argv)
{
    const char *dir = NULL, *name = NULL, *rolestr = NULL, *out = NULL;
    const char *days_s = NULL;
    long days = 825;
    int role;
    char err[512];
    nt_status st;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char **slot = NULL;
        if (cli_streq(a, "--help") || cli_streq(a, "-h")) {
            ca_issue_help(stdout);
            return CLI_EXIT_OK;
        }
        if (cli_streq(a, "--role"))
            slot = &rolestr;
        else if (cli_streq(a, "--days"))
            slot = &days_s;
        else if (cli_streq(a, "--out"))
            slot = &out;
        if (slot != NULL) {
            if ((*slot = opt_value(argc, argv, &i)) == NULL)
                return CLI_EXIT_USAGE;
            continue;
        }
        if (a[0] == '-' && a[1] != '\0') {
            cli_errf("unknown option '%s' (see 'isoflow ca issue --help')",
                     a);
            return CLI_EXIT_USAGE;
        }
        if (dir == NULL)
            dir = a;
        else if (name == NULL)
            name = a;
        else {
            cli_errf("ca issue takes a CA directory and a name (extra '%s')",
                     a);
            return CLI_EXIT_USAGE;
        }
    }
    if (dir == NULL || name == NULL) {
        ca_issue_help(stderr);
        return CLI_EXIT_USAGE;
    }
    if (rolestr == NULL) {
        cli_errf("ca issue needs --role (device, edge, cloud or operator)");
        return CLI_EXIT_USAGE;
    }
    role = nt_role_parse(rolestr);
    if (role == 0) {
        cli_errf("unknown role '%s' (device, edge, cloud or operator)",
                 rolestr);
        return CLI_EXIT_USAGE;
    }
    if (days_s != NULL) {
        char *end;
        errno = 0;
        days = strtol(days_s, &end, 10);
        if (end == days_s || *end != '\0' || errno != 0 || days < 1 ||
            days > CA_MAX_DAYS) {
            cli_errf("option '--days': N must be from 1 to %d, got '%s'",
                     CA_MAX_DAYS, days_s);
            return CLI_EXIT_USAGE;
        }
    }
    if (out == NULL)
        out = dir;
    st = nt_ca_issue(dir, name, role, (int)days, 0, out, err, sizeof err);
    if (st != NT_OK) {
        cli_errf("ca issue: %s", err);
        return CLI_EXIT_FAIL;
    }
    printf("wrote %s/%s.key (private key, mode 0600)\n", out, name);
    printf("wrote %s/%s.crt (CN=%s, OU=role:%s, valid %ld days, signed by "
           "%s/ca.crt)\n",
           out, name, name, nt_role_name(role), days, dir);
    return CLI_EXIT_OK;
}

/* `isoflow ca init|issue ...`: argv[0] is "ca".  Returns a CLI_EXIT_*
 * code. */
int cli_cmd_ca(int argc, char **argv)
{
    if (argc < 2) {
        cli_cmd_ca_help(stderr);
        return CLI_EXIT_USAGE;
    }
    if (cli_streq(argv[1], "--help") || cli_streq(argv[1], "-h")) {
        cli_cmd_ca_help(stdout);
        return CLI_EXIT_OK;
    }
    if (cli_streq(argv[1], "init"))
        return ca_init(argc - 1, argv + 1);
    if (cli_streq(argv[1], "issue"))
        return ca_issue(argc - 1, argv + 1);
    cli_errf("unknown ca command '%s' (init or issue; see 'isoflow ca "
             "--help')",
             argv[1]);
    return CLI_EXIT_USAGE;
}
