/*
 * cmd_sign.c - `isoflow sign KEY FILE [-o FILE.sig] [--stage S] [--version
 * N]` and `isoflow verify --trust DIR FILE [FILE.sig]`: detached module
 * signatures (deploy.h: dp_sign, dp_verify; format in docs/DEPLOY.md).
 *
 * Output (stable; tests assert on it): sign prints "wrote SIG (module
 * SHA256, N bytes, key ID)"; verify prints "FILE: ok (key NAME ID, sha256
 * SHA256, N bytes[, stage S][, version N])".  Failures: "isoflow: sign:
 * <reason>" / "isoflow: verify: FILE: <reason>" on stderr, exit 1; usage
 * errors exit 2.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "deploy.h"

void cli_cmd_sign_help(FILE *out)
{
    fprintf(out,
            "usage: isoflow sign KEY FILE [-o FILE.sig] [--stage S] "
            "[--version N]\n\n"
            "Signs the module FILE (.wasm or .so) with the Ed25519 private\n"
            "key KEY (from 'isoflow key gen') and writes a detached\n"
            "signature: the signer's key id, the module's SHA-256 and size,\n"
            "and optionally the stage and version it is meant for.\n\n"
            "options:\n"
            "  -o FILE.sig    where to write it (default: FILE.sig)\n"
            "  --stage S      the stage the module is meant for\n"
            "  --version N    its version number (1 to %llu)\n"
            "  -h, --help     show this help\n\n"
            "example: isoflow sign keys/release.key co2.wasm --stage co2 "
            "--version 3\n",
            DP_MAX_VERSION);
}

void cli_cmd_verify_help(FILE *out)
{
    fprintf(out,
            "usage: isoflow verify --trust DIR FILE [FILE.sig]\n\n"
            "Checks the module FILE against its detached signature (default\n"
            "FILE.sig) and the trusted public keys in DIR (every *.pub file;\n"
            "DIR may also be a .pub file or a comma-separated list of both).\n"
            "Exit 0 when it is signed by a trusted key and unchanged;\n"
            "otherwise exit 1 with the reason: unsigned, malformed\n"
            "signature: ..., unknown key ID, bad signature, tampered\n"
            "(SHA-256 mismatch).\n\n"
            "options:\n"
            "  --trust DIR   the trusted keys (required)\n"
            "  -h, --help    show this help\n\n"
            "example: isoflow verify --trust trusted co2.wasm\n");
}

/* The value of option argv[*i]; NULL with a usage message if missing. */
static const char *opt_value(int argc, char **argv, int *i)
{
    if (*i + 1 >= argc) {
        cli_errf("option '%s' needs a value", argv[*i]);
        return NULL;
    }
    return argv[++*i];
}

int cli_cmd_sign(int argc, char **argv)
{
    const char *key = NULL, *file = NULL, *out = NULL, *stage = NULL;
    const char *ver_s = NULL;
    char err[512], defout[4096];
    unsigned long long version = 0;
    dp_sig_info info;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char **slot = NULL;
        if (cli_streq(a, "--help") || cli_streq(a, "-h")) {
            cli_cmd_sign_help(stdout);
            return CLI_EXIT_OK;
        }
        if (cli_streq(a, "-o"))
            slot = &out;
        else if (cli_streq(a, "--stage"))
            slot = &stage;
        else if (cli_streq(a, "--version"))
            slot = &ver_s;
        if (slot != NULL) {
            if ((*slot = opt_value(argc, argv, &i)) == NULL)
                return CLI_EXIT_USAGE;
            continue;
        }
        if (a[0] == '-' && a[1] != '\0') {
            cli_errf("unknown option '%s' (see 'isoflow sign --help')", a);
            return CLI_EXIT_USAGE;
        }
        if (key == NULL)
            key = a;
        else if (file == NULL)
            file = a;
        else {
            cli_errf("sign takes a key and a file (extra '%s')", a);
            return CLI_EXIT_USAGE;
        }
    }
    if (key == NULL || file == NULL) {
        cli_cmd_sign_help(stderr);
        return CLI_EXIT_USAGE;
    }
    if (stage != NULL && !dp_name_ok(stage)) {
        cli_errf("invalid stage name '%s' (1-%u characters of A-Z a-z 0-9 . "
                 "_ -, starting with a letter or digit)",
                 stage, DP_MAX_NAME);
        return CLI_EXIT_USAGE;
    }
    if (ver_s != NULL) {
        char *end;
        errno = 0;
        version = strtoull(ver_s, &end, 10);
        if (end == ver_s || *end != '\0' || errno != 0 || ver_s[0] == '-' ||
            ver_s[0] == '+' || version < 1 || version > DP_MAX_VERSION) {
            cli_errf("option '--version': N must be from 1 to %llu, got "
                     "'%s'",
                     DP_MAX_VERSION, ver_s);
            return CLI_EXIT_USAGE;
        }
    }
    if (out == NULL) {
        int n = snprintf(defout, sizeof defout, "%s.sig", file);
        if (n < 0 || (size_t)n >= sizeof defout) {
            cli_errf("sign: path too long: '%s'", file);
            return CLI_EXIT_USAGE;
        }
        out = defout;
    }
    if (dp_sign(key, file, out, stage, version, &info, err, sizeof err) !=
        DP_OK) {
        cli_errf("sign: %s", err);
        return CLI_EXIT_FAIL;
    }
    printf("wrote %s (module %s, %llu bytes, key %s)\n", out, info.sha256,
           (unsigned long long)info.size, info.key_id);
    return CLI_EXIT_OK;
}

int cli_cmd_verify(int argc, char **argv)
{
    const char *trust_s = NULL, *file = NULL, *sigfile = NULL;
    char err[512], defsig[4096];
    uint8_t *mod = NULL, *sig = NULL;
    size_t len = 0, slen = 0;
    dp_trust *trust = NULL;
    dp_sig_info info;
    dp_status st;
    int rc = CLI_EXIT_FAIL;
    FILE *probe;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (cli_streq(a, "--help") || cli_streq(a, "-h")) {
            cli_cmd_verify_help(stdout);
            return CLI_EXIT_OK;
        }
        if (cli_streq(a, "--trust")) {
            if ((trust_s = opt_value(argc, argv, &i)) == NULL)
                return CLI_EXIT_USAGE;
            continue;
        }
        if (a[0] == '-' && a[1] != '\0') {
            cli_errf("unknown option '%s' (see 'isoflow verify --help')", a);
            return CLI_EXIT_USAGE;
        }
        if (file == NULL)
            file = a;
        else if (sigfile == NULL)
            sigfile = a;
        else {
            cli_errf("verify takes a file and a signature (extra '%s')", a);
            return CLI_EXIT_USAGE;
        }
    }
    if (file == NULL) {
        cli_cmd_verify_help(stderr);
        return CLI_EXIT_USAGE;
    }
    if (trust_s == NULL) {
        cli_errf("verify needs --trust DIR (the trusted public keys)");
        return CLI_EXIT_USAGE;
    }
    trust = dp_trust_new();
    if (trust == NULL) {
        cli_errf("verify: out of memory");
        return CLI_EXIT_FAIL;
    }
    if (dp_trust_load(trust, trust_s, err, sizeof err) != DP_OK) {
        cli_errf("verify: %s", err);
        goto out;
    }
    if (cli_read_file(file, DP_DEFAULT_MAX_MODULE, &mod, &len) != 0)
        goto out;
    if (sigfile == NULL) {
        int n = snprintf(defsig, sizeof defsig, "%s.sig", file);
        if (n < 0 || (size_t)n >= sizeof defsig) {
            cli_errf("verify: path too long: '%s'", file);
            goto out;
        }
        sigfile = defsig;
        /* A module without its .sig beside it is "unsigned". */
        probe = fopen(sigfile, "rb");
        if (probe == NULL && errno == ENOENT)
            sigfile = NULL;
        if (probe != NULL)
            fclose(probe);
    }
    if (sigfile != NULL &&
        cli_read_file(sigfile, DP_SIG_MAX * 4, &sig, &slen) != 0)
        goto out;
    st = dp_verify(trust, mod, len, sig, slen, &info, err, sizeof err);
    if (st != DP_OK) {
        cli_errf("verify: %s: %s", file, err);
        goto out;
    }
    printf("%s: ok (key %s %s, sha256 %s, %llu bytes", file, info.key_name,
           info.key_id, info.sha256, (unsigned long long)info.size);
    if (info.stage[0])
        printf(", stage %s", info.stage);
    if (info.version)
        printf(", version %llu", (unsigned long long)info.version);
    printf(")\n");
    rc = CLI_EXIT_OK;
out:
    free(mod);
    free(sig);
    dp_trust_free(trust);
    return rc;
}
